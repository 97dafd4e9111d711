//! The reconcile: which CassandraDatacenters exist where, in which order they are created,
//! their seeds, the superuser Secret and its replication, and the K8ssandraCluster status.
//!
//! # Rollout order
//!
//! Datacenters are **created** one at a time, in spec order: `datacenters[i+1]` is created
//! only once every datacenter before it is Ready (and, when it joined a running cluster,
//! rebuilt). Within one Cassandra cluster only one node may bootstrap at a time (consistent
//! range movement); each datacenter's own policy already starts its nodes one by one, but
//! two datacenters created together would each start a first node at the same moment, and
//! the ring would see two concurrent bootstraps. Creating them in parallel could only be
//! made safe by a cluster-wide start lock the datacenter policies do not have, for a gain
//! limited to the first deployment; sequential creation is simple and provably safe.
//! Spec **updates** of datacenters that already exist are applied to all of them at once:
//! they are rolled out by each datacenter's policy, rack by rack, and never bootstrap.
//! No datacenter is created while another is being removed, for the same reason
//! (a decommission is a range movement too).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Secret;
use k8ssandra_api::cassandra::{
    CassandraDatacenter, CassandraDatacenterStatus, DatacenterConditionType as T, PROGRESS_READY,
};
use k8ssandra_api::k8ssandra::{
    CassandraDatacenterTemplate, K8ssandraCluster, K8ssandraClusterStatus, K8ssandraStatus,
    condition,
};
use k8ssandra_api::{labels, names};
use k8ssandra_policy_sdk::pods::PodView;
use k8ssandra_policy_sdk::{
    EventType, GeneratedSecret, NodeRef, Plan, PolicyError, Snapshot, error,
};
use serde_json::{Value, json};

use crate::dc::{self, DcInputs};
use crate::util::{self, is_subset};

/// Annotation on a generated CassandraDatacenter that joined a cluster which already had
/// data: `pending` until its keyspaces replicate to it and its nodes were rebuilt, then
/// `done`. Kept on the datacenter object so the progress survives an operator restart.
pub const JOIN_ANNOTATION: &str = "k8ssandra.io/join-state";
pub const JOIN_PENDING: &str = "pending";
pub const JOIN_DONE: &str = "done";

/// Condition types this policy sets besides KO's.
pub const VALID: &str = "Valid";
pub const REMOVAL_BLOCKED: &str = "DatacenterRemovalBlocked";
/// True while the Kubernetes cluster of a spec datacenter does not answer: that
/// datacenter keeps its last known status and nothing in its cluster is written.
pub const UNREACHABLE: &str = "DatacenterUnreachable";

/// Requeue while waiting for something that should announce itself anyway.
const WAIT_MS: u64 = 15_000;

/// One Cassandra pod of this cluster, in any Kubernetes cluster.
#[derive(Clone, Debug)]
pub struct PodInfo {
    pub cluster: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub ip: Option<String>,
    /// `cassandra.datastax.com/datacenter` label: the CassandraDatacenter's name.
    pub dc: String,
    pub rack: String,
    pub seed: bool,
    pub ready: bool,
}

impl PodInfo {
    pub fn node(&self) -> NodeRef {
        NodeRef {
            cluster: self.cluster.clone(),
            namespace: self.namespace.clone(),
            pod: self.name.clone(),
        }
    }
}

/// A CassandraDatacenter this policy owns, as observed.
#[derive(Clone, Debug)]
pub struct ChildDc {
    pub cluster: String,
    pub obj: CassandraDatacenter,
    pub raw: Value,
}

impl ChildDc {
    pub fn name(&self) -> &str {
        self.obj.metadata.name.as_deref().unwrap_or_default()
    }
    pub fn namespace(&self) -> &str {
        self.obj.metadata.namespace.as_deref().unwrap_or_default()
    }
    pub fn uid(&self) -> &str {
        self.obj.metadata.uid.as_deref().unwrap_or_default()
    }
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.obj
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .map(String::as_str)
    }
}

/// What is known about one `spec.cassandra.datacenters[]` entry.
#[derive(Clone, Debug, Default)]
pub struct DcState {
    pub index: usize,
    pub name: String,
    /// The datacenter's name inside Cassandra (datacenterName, else metadata.name).
    pub cass_name: String,
    pub context: String,
    pub namespace: String,
    pub size: i32,
    pub stopped: bool,
    pub known_context: bool,
    pub reachable: bool,
    /// The CassandraDatacenter exists (seen, or recorded while its cluster is unreachable).
    pub exists: bool,
    pub ready: bool,
    /// Has been ready once (cass-operator's Initialized): a member of the ring.
    pub initialized: bool,
    pub join: Option<String>,
    pub status: Option<CassandraDatacenterStatus>,
    pub rebuild_source: Option<String>,
    /// The object to apply, if any.
    pub object: Option<Value>,
}

impl DcState {
    /// Holds all its data: ready, and not still being rebuilt.
    pub fn complete(&self) -> bool {
        self.ready && self.join.as_deref() != Some(JOIN_PENDING)
    }
}

/// Everything one reconcile works with.
pub struct Ctx<'a> {
    pub s: &'a Snapshot,
    pub kc: K8ssandraCluster,
    pub name: String,
    pub namespace: String,
    pub cluster_name: String,
    pub prev: K8ssandraClusterStatus,
    pub plan: Plan,
    pub errors: Vec<String>,
    pub conditions: BTreeMap<String, bool>,
    /// Reason and message of a condition, for the conditions that have them.
    pub details: BTreeMap<String, (String, String)>,
    pub pods: Vec<PodInfo>,
    pub children: Vec<ChildDc>,
    pub dcs: Vec<DcState>,
    /// Children that belong to no spec datacenter: being removed.
    pub removed: Vec<ChildDc>,
    /// Removed children to keep listing (decommission not finished), with their progress.
    pub removing: BTreeMap<String, String>,
    pub dc_status: BTreeMap<String, K8ssandraStatus>,
    /// Set when an existing CassandraDatacenter does not yet match what was applied.
    pub pending_apply: bool,
    /// The Stargate auth keyspace and table are in place (see [`crate::stargate`]).
    pub stargate_auth_ready: bool,
    /// Status of each datacenter's Stargate, by datacenter name.
    pub stargate_status: BTreeMap<String, k8ssandra_api::stargate::StargateStatus>,
}

pub fn reconcile(s: &Snapshot) -> Result<Plan, PolicyError> {
    let kc: K8ssandraCluster = s.parent()?;
    let mut cx = Ctx::new(s, kc)?;
    cx.secrets()?;
    cx.datacenters();
    crate::keyspaces::run(&mut cx);
    let auth_ready = cx.stargate_auth_ready;
    crate::stargate::run(&mut cx, auth_ready)?;
    let reapers = crate::reaper::run(&mut cx)?;
    crate::medusa::run(&mut cx)?;
    cx.emit()?;
    crate::reaper::mirror(&mut cx.plan, &reapers)?;
    Ok(cx.plan)
}

fn condition_true(st: &CassandraDatacenterStatus, t: T) -> bool {
    st.is_true(t)
}

/// Ready as KO defines it: the Ready condition, nothing left to do, and the latest spec
/// seen by the datacenter's operator. A stopped datacenter counts as ready once stopped.
pub fn dc_ready(st: &CassandraDatacenterStatus, stopped: bool, generation: Option<i64>) -> bool {
    let seen = match (st.observed_generation, generation) {
        (Some(o), Some(g)) => o >= g,
        _ => true,
    };
    let up = if stopped {
        condition_true(st, T::Stopped)
    } else {
        condition_true(st, T::Ready)
            && st.cassandra_operator_progress.as_deref() == Some(PROGRESS_READY)
    };
    seen && up
}

fn pod_ready(s: &Snapshot, cluster: &str, pod: &PodView) -> bool {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    if let Some(n) = s
        .nodes
        .iter()
        .find(|n| n.node.cluster == cluster && n.node.namespace == ns && n.node.pod == name)
    {
        return n.reachable && n.ready;
    }
    pod.ready_condition()
}

impl<'a> Ctx<'a> {
    fn new(s: &'a Snapshot, kc: K8ssandraCluster) -> Result<Self, PolicyError> {
        let name = kc
            .metadata
            .name
            .clone()
            .ok_or_else(|| error("K8ssandraCluster has no name"))?;
        let namespace = kc.metadata.namespace.clone().unwrap_or_default();
        let cluster_name = kc.cass_cluster_name().to_string();
        let prev = kc.status.clone().unwrap_or_default();
        let cluster_label = names::clean_label_value(&cluster_name);
        // The slim view: at 1000 pods, whole k8s-openapi Pods were most of a reconcile.
        let mut pods: Vec<PodInfo> = s
            .pods()
            .into_iter()
            .filter_map(|(cluster, mut p)| {
                let l = p.metadata.labels.take().unwrap_or_default();
                if l.get(labels::CLUSTER_LABEL) != Some(&cluster_label) {
                    return None;
                }
                if p.metadata.deletion_timestamp.is_some() {
                    return None;
                }
                let ready = pod_ready(s, &cluster, &p);
                Some(PodInfo {
                    namespace: p.metadata.namespace.clone().unwrap_or_default(),
                    name: p.metadata.name.clone().unwrap_or_default(),
                    uid: p.metadata.uid.clone().unwrap_or_default(),
                    ip: p
                        .status
                        .as_ref()
                        .and_then(|st| st.pod_ip.clone())
                        .filter(|ip| !ip.is_empty()),
                    dc: l.get(labels::DATACENTER_LABEL).cloned().unwrap_or_default(),
                    rack: l.get(labels::RACK_LABEL).cloned().unwrap_or_default(),
                    seed: l.get(labels::SEED_NODE_LABEL).is_some_and(|v| v == "true"),
                    ready,
                    cluster,
                })
            })
            .collect();
        pods.sort_by(|a, b| {
            (&a.cluster, &a.namespace, &a.name).cmp(&(&b.cluster, &b.namespace, &b.name))
        });
        let mut children: Vec<ChildDc> = s
            .children
            .iter()
            .filter(|o| o.kind().as_deref() == Some("CassandraDatacenter"))
            .filter_map(|o| {
                let raw = o.value().ok()?;
                // A datacenter whose spec does not parse (edited by hand, newer fields) is
                // still ours: dropping it here would get it pruned without a decommission.
                let obj: CassandraDatacenter =
                    serde_json::from_value(raw.clone()).unwrap_or_else(|_| CassandraDatacenter {
                        metadata: raw
                            .get("metadata")
                            .and_then(|m| serde_json::from_value(m.clone()).ok())
                            .unwrap_or_default(),
                        spec: Default::default(),
                        status: raw
                            .get("status")
                            .and_then(|m| serde_json::from_value(m.clone()).ok()),
                    });
                Some(ChildDc {
                    cluster: o.cluster.clone(),
                    obj,
                    raw,
                })
            })
            .collect();
        children.sort_by(|a, b| {
            (&a.cluster, a.namespace(), a.name()).cmp(&(&b.cluster, b.namespace(), b.name()))
        });
        Ok(Ctx {
            s,
            kc,
            name,
            namespace,
            cluster_name,
            prev,
            plan: Plan::default(),
            errors: Vec::new(),
            conditions: BTreeMap::new(),
            details: BTreeMap::new(),
            pods,
            children,
            dcs: Vec::new(),
            removed: Vec::new(),
            removing: BTreeMap::new(),
            dc_status: BTreeMap::new(),
            pending_apply: false,
            stargate_auth_ready: false,
            stargate_status: BTreeMap::new(),
        })
    }

    /// Sets condition `t` and explains it; a second explanation of the same condition is
    /// appended, so a message names every datacenter concerned.
    pub fn condition(&mut self, t: &str, status: bool, reason: &str, message: String) {
        self.conditions.insert(t.to_string(), status);
        self.details
            .entry(t.to_string())
            .and_modify(|(_, m)| {
                m.push_str("; ");
                m.push_str(&message);
            })
            .or_insert_with(|| (reason.to_string(), message));
    }

    /// Records an invalid part of the spec: the error and the Valid condition's message.
    fn invalid(&mut self, reason: &str, message: String) {
        self.errors.push(message.clone());
        self.condition(VALID, false, reason, message);
    }

    fn annotation(&self, key: &str) -> Option<&str> {
        self.kc
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .map(String::as_str)
    }

    /// Labels that select the Secrets the ReplicatedSecret copies (KO's values).
    fn replicated_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                labels::REPLICATED_BY_LABEL.to_string(),
                labels::REPLICATED_BY_LABEL_VALUE.to_string(),
            ),
            (
                labels::K8SSANDRA_CLUSTER_NAME_LABEL.to_string(),
                self.name.clone(),
            ),
            (
                labels::K8SSANDRA_CLUSTER_NAMESPACE_LABEL.to_string(),
                self.namespace.clone(),
            ),
        ])
    }

    fn user_superuser_ref(&self) -> Option<String> {
        self.kc
            .spec
            .cassandra
            .as_ref()
            .and_then(|c| c.superuser_secret_ref.as_ref())
            .map(|r| r.name.clone())
            .filter(|n| !n.is_empty())
    }

    /// Name of the superuser Secret the datacenters use; None with external secrets.
    pub fn superuser_secret(&self) -> Option<String> {
        if self.kc.use_external_secrets() {
            return None;
        }
        Some(
            self.user_superuser_ref()
                .unwrap_or_else(|| names::superuser_secret_name(&self.cluster_name)),
        )
    }

    /// The superuser Secret (generated once, never changed) and the ReplicatedSecret that
    /// copies it to every other cluster and namespace of a datacenter.
    fn secrets(&mut self) -> Result<(), PolicyError> {
        if self.kc.use_external_secrets() {
            return Ok(());
        }
        if self.user_superuser_ref().is_none() {
            let name = names::superuser_secret_name(&self.cluster_name);
            self.plan.secrets.push(GeneratedSecret {
                cluster: String::new(),
                namespace: self.namespace.clone(),
                name: name.clone(),
                fixed: vec![("username".into(), name)],
                random_keys: vec!["password".into()],
                labels: self.replicated_labels().into_iter().collect(),
            });
        }
        let known: BTreeSet<&str> = self.s.clusters.iter().map(|c| c.name.as_str()).collect();
        let mut targets = BTreeSet::new();
        for d in self.kc.datacenters() {
            let ctx = d.k8s_context.clone().unwrap_or_default();
            let ns = d.metadata.namespace.clone().unwrap_or_default();
            if !known.contains(ctx.as_str()) {
                continue;
            }
            if !ctx.is_empty() || (!ns.is_empty() && ns != self.namespace) {
                targets.insert((ctx, ns));
            }
        }
        let targets: Vec<Value> = targets
            .into_iter()
            .map(|(ctx, ns)| {
                let mut t = json!({});
                if !ctx.is_empty() {
                    t["k8sContextName"] = json!(ctx);
                }
                if !ns.is_empty() {
                    t["namespace"] = json!(ns);
                }
                t
            })
            .collect();
        let mut spec = json!({"selector": {"matchLabels": self.replicated_labels()}});
        if !targets.is_empty() {
            spec["replicationTargets"] = Value::Array(targets);
        }
        let rs = json!({
            "apiVersion": "replication.k8ssandra.io/v1alpha1",
            "kind": "ReplicatedSecret",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {
                    labels::K8SSANDRA_CLUSTER_NAME_LABEL: self.name,
                    labels::K8SSANDRA_CLUSTER_NAMESPACE_LABEL: self.namespace,
                },
            },
            "spec": spec,
        });
        self.plan.apply("", &rs)
    }

    /// Whether a ClientConfig of the namespace declares the context `ctx`.
    fn client_config_exists(&self, ctx: &str) -> bool {
        self.s
            .related
            .iter()
            .filter(|o| o.kind().as_deref() == Some("ClientConfig"))
            .filter_map(|o| o.parse::<k8ssandra_api::config::ClientConfig>().ok())
            .any(|c| c.context_name() == ctx)
    }

    /// Whether the superuser Secret can be seen in `namespace` of cluster `ctx`.
    fn secret_present(&self, ctx: &str, namespace: &str) -> bool {
        let Some(name) = self.superuser_secret() else {
            return true;
        };
        // A user-provided Secret in the operator's own namespace exists by contract, and
        // without our labels it is not among what we watch.
        if self.user_superuser_ref().is_some() && ctx.is_empty() && namespace == self.namespace {
            return true;
        }
        self.s.related_of::<Secret>().iter().any(|(c, sec)| {
            c == ctx
                && sec.metadata.namespace.as_deref() == Some(namespace)
                && sec.metadata.name.as_deref() == Some(name.as_str())
        })
    }

    /// Seed IPs of one datacenter: the pods labelled seeds, or the first pod of each rack
    /// when none is labelled yet.
    fn seeds_of(&self, ctx: &str, namespace: &str, dc_name: &str) -> Vec<String> {
        let label = names::clean_label_value(dc_name);
        let pods: Vec<&PodInfo> = self
            .pods
            .iter()
            .filter(|p| p.cluster == ctx && p.namespace == namespace && p.dc == label)
            .collect();
        let labelled: Vec<String> = pods
            .iter()
            .filter(|p| p.seed)
            .filter_map(|p| p.ip.clone())
            .collect();
        if !labelled.is_empty() {
            return labelled;
        }
        pods.iter()
            .filter(|p| p.name.ends_with("-0"))
            .filter_map(|p| p.ip.clone())
            .collect()
    }

    fn child(&self, ctx: &str, namespace: &str, name: &str) -> Option<&ChildDc> {
        self.children
            .iter()
            .find(|c| c.cluster == ctx && c.namespace() == namespace && c.name() == name)
    }

    /// Decides, datacenter by datacenter in spec order, which CassandraDatacenters exist
    /// and what they should be (see the module doc for the order).
    fn datacenters(&mut self) {
        let templates: Vec<CassandraDatacenterTemplate> = self.kc.datacenters().to_vec();
        let generation = self.kc.metadata.generation;
        let autoupdate = self
            .annotation(labels::K8SSANDRA_AUTOUPDATE_ANNOTATION)
            .is_some_and(|v| labels::AUTOUPDATE_VALUES.contains(&v));
        let update_allowed = autoupdate || self.prev.observed_generation != generation;
        let superuser = self.superuser_secret();
        let cluster_seeds: Vec<String> = self
            .kc
            .spec
            .cassandra
            .as_ref()
            .and_then(|c| c.additional_seeds.clone())
            .unwrap_or_default();
        let has_external = self
            .kc
            .spec
            .external_datacenters
            .as_ref()
            .is_some_and(|e| !e.is_empty());

        // Children matching no spec datacenter are being removed; a child whose name and
        // namespace match a spec datacenter in another cluster means its k8sContext was
        // changed, which would orphan its data: it is kept and reported instead.
        let placed = |t: &CassandraDatacenterTemplate| {
            (
                t.k8s_context.clone().unwrap_or_default(),
                t.metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| self.namespace.clone()),
                t.metadata.name.clone(),
            )
        };
        let wanted: Vec<(String, String, String)> = templates.iter().map(placed).collect();
        let mut moved = Vec::new();
        for c in &self.children {
            let key = (
                c.cluster.clone(),
                c.namespace().to_string(),
                c.name().to_string(),
            );
            if wanted.contains(&key) {
                continue;
            }
            if let Some(i) = wanted
                .iter()
                .position(|(_, ns, n)| ns == c.namespace() && n == c.name())
            {
                moved.push((i, c.clone()));
            } else {
                self.removed.push(c.clone());
            }
        }
        for (i, c) in &moved {
            self.invalid(
                "ContextChanged",
                format!(
                    "spec.cassandra.datacenters[{i}].k8sContext: datacenter {} already exists in context {:?}; the context of an existing datacenter cannot change",
                    c.name(),
                    c.cluster
                ),
            );
            self.plan.apply.push(k8ssandra_policy_sdk::Object {
                cluster: c.cluster.clone(),
                json: frozen(c, None).to_string(),
            });
        }
        let moved_idx: BTreeSet<usize> = moved.iter().map(|(i, _)| *i).collect();

        // Every datacenter's seeds, to hand each one the others'.
        let seeds: Vec<Vec<String>> = wanted
            .iter()
            .map(|(ctx, ns, n)| self.seeds_of(ctx, ns, n))
            .collect();
        let unreachable_peer: Vec<bool> = wanted
            .iter()
            .map(|(ctx, _, _)| !self.s.cluster_reachable(ctx))
            .collect();

        let mut gate = self.removed.is_empty();
        let any_existing = !self.children.is_empty()
            || !self.prev.datacenters.as_ref().is_none_or(|d| d.is_empty());
        for (i, t) in templates.iter().enumerate() {
            let (ctx, ns, name) = wanted[i].clone();
            let mut st = DcState {
                index: i,
                name: name.clone(),
                cass_name: t.cass_dc_name().to_string(),
                context: ctx.clone(),
                namespace: ns.clone(),
                size: t.size,
                stopped: t.stopped == Some(true),
                known_context: self.s.clusters.iter().any(|c| c.name == ctx),
                reachable: self.s.cluster_reachable(&ctx),
                rebuild_source: dc::merged_options(&self.kc, t)
                    .pointer("/rebuild/sourceDc")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
                ..Default::default()
            };
            if moved_idx.contains(&i) {
                gate = false;
                self.dcs.push(st);
                continue;
            }
            if !st.known_context {
                let why = if self.client_config_exists(&ctx) {
                    "a ClientConfig names it, but the operator has no client for it yet (check the ClientConfig's kubeconfig Secret)"
                } else {
                    "no ClientConfig provides it"
                };
                self.invalid(
                    "UnknownContext",
                    format!(
                        "spec.cassandra.datacenters[{i}].k8sContext: unknown context {ctx:?}: {why}"
                    ),
                );
                gate = false;
                self.dcs.push(st);
                continue;
            }
            if !st.reachable {
                let detail = self
                    .s
                    .clusters
                    .iter()
                    .find(|c| c.name == ctx)
                    .and_then(|c| c.message.clone())
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default();
                self.condition(
                    UNREACHABLE,
                    true,
                    "ContextUnreachable",
                    format!(
                        "datacenter {name}: the Kubernetes cluster of context {ctx:?} is unreachable{detail}; its last known status is kept and nothing in that cluster is changed or deleted until it answers"
                    ),
                );
            }
            let prev_entry = self
                .prev
                .datacenters
                .as_ref()
                .and_then(|d| d.get(&name))
                .cloned();
            let child = self.child(&ctx, &ns, &name).cloned();
            st.exists = child.is_some() || (!st.reachable && prev_entry.is_some());
            st.status = match &child {
                Some(c) => c.obj.status.clone(),
                None if st.exists => prev_entry.as_ref().and_then(|e| e.cassandra.clone()),
                None => None,
            };
            let child_generation = child.as_ref().and_then(|c| c.obj.metadata.generation);
            if let Some(status) = &st.status {
                st.ready = dc_ready(status, st.stopped, child_generation);
                st.initialized = status.is_true(T::Initialized) || st.ready;
            }
            st.join = child
                .as_ref()
                .and_then(|c| c.annotation(JOIN_ANNOTATION))
                .map(str::to_string);

            if !st.exists {
                if !st.reachable || !gate {
                    gate = false;
                    self.dcs.push(st);
                    continue;
                }
                if !self.secret_present(&ctx, &ns) {
                    // The Secret's arrival is an event, but a slow replication must not be
                    // waited for forever if one is missed.
                    self.plan.requeue_after(WAIT_MS);
                    gate = false;
                    self.dcs.push(st);
                    continue;
                }
                self.plan.event(
                    EventType::Normal,
                    "CreatingDatacenter",
                    format!("creating datacenter {name} in context {ctx:?}"),
                );
                // A datacenter created next to existing ones joins a cluster that may hold
                // data: its keyspaces and its nodes' data come from the others.
                if any_existing || i > 0 {
                    st.join = Some(JOIN_PENDING.into());
                }
            }

            let mut seed_list: Vec<String> = cluster_seeds.clone();
            for (j, s) in seeds.iter().enumerate() {
                if j != i {
                    seed_list.extend(s.iter().cloned());
                }
            }
            seed_list.sort();
            seed_list.dedup();
            // A peer in an unreachable cluster shows no pods: keep the seeds in place rather
            // than drop that peer's.
            let peers_unseen = unreachable_peer
                .iter()
                .enumerate()
                .any(|(j, u)| j != i && *u);
            if peers_unseen && let Some(c) = &child {
                seed_list = c.obj.spec.additional_seeds.clone().unwrap_or_default();
            }
            // A datacenter's config lists its additional-seed Service only while it has
            // additional seeds, so emptying the list rolls every node of it. When the last
            // peer goes (a removed datacenter), the old list stays: seeds that no longer
            // answer are skipped by Cassandra, a restart of a whole datacenter is not free.
            if seed_list.is_empty()
                && let Some(live) = child
                    .as_ref()
                    .and_then(|c| c.obj.spec.additional_seeds.clone())
                    .filter(|l| !l.is_empty())
            {
                seed_list = live;
            }

            let mut extra = BTreeMap::new();
            if let Some(j) = &st.join {
                extra.insert(JOIN_ANNOTATION.to_string(), j.clone());
            }
            let inputs = DcInputs {
                namespace: &ns,
                superuser_secret: superuser.as_deref(),
                additional_seeds: seed_list,
                skip_user_creation: i > 0 || has_external,
                extra_annotations: extra,
            };
            let desired = match dc::desired_datacenter(&self.kc, i, t, &inputs)
                .and_then(|d| crate::medusa::with_medusa(self.s, &self.kc, d))
            {
                Ok(d) => crate::reaper::with_user(&self.kc, &self.cluster_name, d),
                Err(e) => {
                    self.invalid("InvalidDatacenter", e);
                    if let Some(c) = &child {
                        // Incomplete spec: keep what runs, change nothing.
                        self.plan.apply.push(k8ssandra_policy_sdk::Object {
                            cluster: c.cluster.clone(),
                            json: frozen(c, None).to_string(),
                        });
                    }
                    gate = false;
                    self.dcs.push(st);
                    continue;
                }
            };
            let object = match &child {
                Some(c) => {
                    let live_spec = c.raw.get("spec").cloned().unwrap_or(Value::Null);
                    let mut wanted_spec = desired["spec"].clone();
                    if let Some(o) = wanted_spec.as_object_mut() {
                        // Seeds follow pod IPs; they are not a spec update.
                        o.remove("additionalSeeds");
                    }
                    let differs = !is_subset(&wanted_spec, &live_spec);
                    if differs && !update_allowed {
                        self.conditions
                            .insert(condition::REQUIRES_UPDATE.into(), true);
                        let mut f = frozen(c, Some(&desired["metadata"]));
                        f["spec"]["additionalSeeds"] = desired["spec"]["additionalSeeds"].clone();
                        if f["spec"]["additionalSeeds"].is_null()
                            && let Some(o) = f["spec"].as_object_mut()
                        {
                            o.remove("additionalSeeds");
                        }
                        f
                    } else {
                        // observedGeneration waits until the datacenters show this spec
                        // (seeds aside, which follow pod IPs), so a spec change is never
                        // mistaken for an operator default once the cache lags.
                        if differs {
                            self.pending_apply = true;
                        }
                        desired
                    }
                }
                None => desired,
            };
            st.object = Some(object);
            // The next datacenter waits for this one to be Ready (upstream's order); a join
            // (the rebuild of its nodes) goes on beside the next one's roll-out, the joins
            // one at a time, none streaming from a datacenter still joining.
            if !st.ready {
                gate = false;
            }
            self.dcs.push(st);
        }
    }

    /// Adds the datacenters to the plan, then the status.
    fn emit(&mut self) -> Result<(), PolicyError> {
        for st in &self.dcs {
            if let Some(o) = &st.object {
                let mut o = o.clone();
                if let Some(j) = &st.join {
                    o["metadata"]["annotations"][JOIN_ANNOTATION] = json!(j);
                }
                self.plan.apply(&st.context, &o)?;
            }
            if st.exists {
                let entry = K8ssandraStatus {
                    context_name: Some(st.context.clone()),
                    cassandra: st.status.clone(),
                    stargate: self.stargate_status.get(&st.name).cloned(),
                    ..Default::default()
                };
                self.dc_status.insert(st.name.clone(), entry);
            }
        }
        for c in &self.removed {
            if let Some(progress) = self.removing.get(c.name()) {
                self.plan.apply(&c.cluster, &frozen(c, None))?;
                self.dc_status.insert(
                    c.name().to_string(),
                    K8ssandraStatus {
                        context_name: Some(c.cluster.clone()),
                        cassandra: c.obj.status.clone(),
                        decommission_progress: if progress.is_empty() {
                            None
                        } else {
                            Some(progress.clone())
                        },
                        ..Default::default()
                    },
                );
            }
        }
        // Datacenters in clusters we cannot see keep their last known status.
        if let Some(prev) = &self.prev.datacenters {
            for (name, entry) in prev {
                let unseen = entry
                    .context_name
                    .as_deref()
                    .is_some_and(|c| !self.s.cluster_reachable(c));
                if unseen && !self.dc_status.contains_key(name) {
                    self.dc_status.insert(name.clone(), entry.clone());
                }
            }
        }
        self.status()
    }

    fn prev_condition(&self, t: &str) -> Option<(String, Option<Value>)> {
        self.prev
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == t)
            .map(|c| {
                (
                    c.status.clone(),
                    c.last_transition_time
                        .as_ref()
                        .and_then(|t| serde_json::to_value(t).ok()),
                )
            })
    }

    fn status(&mut self) -> Result<(), PolicyError> {
        let all_ready = !self.dcs.is_empty()
            && self.dcs.iter().all(|d| d.exists && d.ready)
            && self.removed.is_empty();
        let was_initialized = self
            .prev_condition(condition::CASSANDRA_INITIALIZED)
            .is_some_and(|(s, _)| s == "True");
        if all_ready || was_initialized {
            self.conditions
                .insert(condition::CASSANDRA_INITIALIZED.into(), true);
        }
        self.conditions
            .entry(condition::REQUIRES_UPDATE.into())
            .or_insert(false);
        self.conditions.entry(VALID.into()).or_insert(true);
        // Shown False once the clusters answer again, so the recovery is visible.
        if self.prev_condition(UNREACHABLE).is_some() {
            self.conditions.entry(UNREACHABLE.into()).or_insert(false);
        }
        let now = util::rfc3339(self.s.now_ms);
        let mut conditions = Vec::new();
        for (t, v) in &self.conditions {
            let status = if *v { "True" } else { "False" };
            let time = match self.prev_condition(t) {
                Some((s, Some(time))) if s == status => time,
                _ => json!(now),
            };
            let mut c = json!({"type": t, "status": status, "lastTransitionTime": time});
            if let Some((reason, message)) = self.details.get(t) {
                c["reason"] = json!(reason);
                c["message"] = json!(message);
            }
            conditions.push(c);
        }
        let observed = if self.pending_apply {
            self.prev.observed_generation
        } else {
            self.kc.metadata.generation
        };
        let mut status = json!({
            "conditions": conditions,
            "datacenters": serde_json::to_value(&self.dc_status).unwrap_or_default(),
            "error": if self.errors.is_empty() { "None".to_string() } else { self.errors.join("; ") },
        });
        if let Some(g) = observed {
            status["observedGeneration"] = json!(g);
        }
        if !self.errors.is_empty() {
            let msg = self.errors.join("; ");
            self.plan.event(EventType::Warning, "ReconcileError", msg);
        }
        self.plan.set_status(&status)
    }

    /// A ready node of the spec's datacenters, to run cluster-wide operations on.
    pub fn ready_node(&self, exclude_dc: Option<&str>) -> Option<NodeRef> {
        let members: BTreeSet<(String, String, String)> = self
            .dcs
            .iter()
            .filter(|d| d.exists && d.reachable)
            .map(|d| {
                (
                    d.context.clone(),
                    d.namespace.clone(),
                    names::clean_label_value(&d.name),
                )
            })
            .collect();
        self.pods
            .iter()
            .filter(|p| p.ready && p.ip.is_some())
            .filter(|p| exclude_dc.is_none_or(|x| names::clean_label_value(x) != p.dc))
            .find(|p| members.contains(&(p.cluster.clone(), p.namespace.clone(), p.dc.clone())))
            .map(PodInfo::node)
    }

    /// The pods of one datacenter, by name.
    pub fn pods_of(&self, ctx: &str, namespace: &str, dc_name: &str) -> Vec<PodInfo> {
        let label = names::clean_label_value(dc_name);
        self.pods
            .iter()
            .filter(|p| p.cluster == ctx && p.namespace == namespace && p.dc == label)
            .cloned()
            .collect()
    }
}

/// A CassandraDatacenter re-applied as it is (the fields this policy generates, with their
/// live values): listed so it is not pruned, without changing anything.
pub fn frozen(c: &ChildDc, metadata: Option<&Value>) -> Value {
    let mut spec = serde_json::Map::new();
    if let Some(live) = c.raw.get("spec").and_then(Value::as_object) {
        for f in dc::GENERATED_FIELDS {
            if let Some(v) = live.get(*f) {
                spec.insert((*f).to_string(), v.clone());
            }
        }
    }
    let metadata = match metadata {
        Some(m) => m.clone(),
        None => {
            let keep = |k: &str| {
                k.starts_with("k8ssandra.io/")
                    || k.starts_with("app.kubernetes.io/")
                    || k == labels::SKIP_USER_CREATION_ANNOTATION
            };
            let filter = |m: Option<&BTreeMap<String, String>>| -> BTreeMap<String, String> {
                m.map(|m| {
                    m.iter()
                        .filter(|(k, _)| keep(k))
                        .filter(|(k, _)| {
                            !k.starts_with("k8ssandra.io/parent-")
                                && k.as_str() != "k8ssandra.io/policy"
                        })
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default()
            };
            json!({
                "name": c.name(),
                "namespace": c.namespace(),
                "labels": filter(c.obj.metadata.labels.as_ref()),
                "annotations": filter(c.obj.metadata.annotations.as_ref()),
            })
        }
    };
    json!({
        "apiVersion": "cassandra.datastax.com/v1beta1",
        "kind": "CassandraDatacenter",
        "metadata": metadata,
        "spec": Value::Object(spec),
    })
}
