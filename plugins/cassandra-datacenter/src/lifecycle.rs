//! The decisions: which StatefulSet sizes, which node to start, decommission, restart or
//! replace next, and the status that describes it.
//!
//! Everything is decided again from the snapshot on each call (level-triggered). Progress
//! that the snapshot cannot show is kept in the datacenter's status (`nodeStatuses`,
//! `nodeReplacements`, condition transition times) so a restarted operator resumes.
//!
//! ## Start order and what may run in parallel
//!
//! Cassandra (with consistent range movement, as the simulator) refuses to bootstrap a node
//! while another one joins, leaves or moves, and a non-seed node cannot start until a seed
//! is up. So:
//! - a node *without data* (never joined: no host id recorded for its pod, or being
//!   replaced) bootstraps alone: only when no other start is in flight in the datacenter
//!   and the ring shows no range movement anywhere in the cluster;
//! - nodes *with data* (restarted pods, a datacenter resuming from `stopped`) don't
//!   bootstrap, they only rejoin; they start together, which is why resuming a stopped
//!   datacenter takes one start round instead of N;
//! - in both cases a non-seed waits for a ready seed; the first node of an empty cluster
//!   is a seed. Among fresh nodes the order is by ordinal then rack, i.e. the first node of
//!   each rack, then round-robin over the racks.
//!
//! Each next start is triggered by the previous node becoming ready (a pod/node change the
//! host reports), not by a timer.

use std::collections::BTreeMap;

use k8ssandra_api::cassandra::DatacenterConditionType as T;
use k8ssandra_api::labels::{
    ALLOW_STORAGE_CHANGES_ANNOTATION, DECOMMISSION_ON_DELETE_ANNOTATION, DELETE_PVC_ANNOTATION,
    DISABLE_PDB_ANNOTATION, FINALIZER, NO_AUTOMATED_CLEANUP_ANNOTATION, NO_FINALIZER_ANNOTATION,
    SEED_NODE_LABEL, SKIP_USER_CREATION_ANNOTATION,
};
use k8ssandra_api::names;
use k8ssandra_policy_sdk::{
    EventType, GeneratedSecret, NodeRef, Object, ObjectKey, OperationKind, Outcome, Plan,
    PolicyError, Role, Snapshot, TableScope,
};
use serde_json::{Value, json};

use crate::model::{Dc, Observed, PodObs};
use crate::objects;
use crate::status::Conditions;
use crate::util::{quantity_bytes, rfc3339};
use crate::validate;

/// A started node that shows neither readiness nor a bootstrap in the ring after this long
/// (or a node that ran and went down: its start is older than this) is started again.
/// Starting a running node is harmless (the management API answers that it runs).
pub const START_TIMEOUT_MS: u64 = 10 * 60 * 1000;
/// Longest wait between retries of a failed operation.
const MAX_BACKOFF_MS: u64 = 64_000;
/// Reason of `Ready=False` while some node's management API answers errors or hangs.
pub const MANAGEMENT_API_FAILED: &str = "ManagementApiFailed";
/// How often the datacenter is looked at again while a management API fails. The host
/// holds back the probes of a failing node on its own growing backoff; this only makes
/// sure a reconcile comes by once that ran out, even when nothing else changes.
const MANAGEMENT_API_RECHECK_MS: u64 = 5_000;
/// How soon the datacenter is looked at again while an operation waits for the ring to
/// settle (a range movement elsewhere, gossip still spreading a node's new state): gossip
/// changes make no Kubernetes event.
const RING_RECHECK_MS: u64 = 2_000;
/// Share of a data volume the remaining nodes may fill after a decommission.
const MAX_FILL_AFTER_DECOMMISSION: f64 = 0.9;
/// On a rack's StatefulSet: the generation in which `spec.forceUpgradeRacks` first listed
/// the rack. The policy cannot clear the spec field as upstream does, so the request is
/// honoured only in that generation; a later spec change rolls out one pod at a time
/// again even if the user left the rack listed. Kept on the StatefulSet (an object the
/// policy owns) because the datacenter's status schema has no field for it.
pub const FORCE_UPGRADE_ANNOTATION: &str = "k8ssandra.io/force-upgrade-generation";

/// How a rack's StatefulSet is written while its claim template may not change in place.
#[derive(Clone, Debug, PartialEq)]
enum StsWrite {
    /// The desired StatefulSet with the live `volumeClaimTemplates` (immutable).
    KeepClaims,
    /// Only its identity: being recreated, nothing may change (nor be pruned).
    IdentityOnly,
}

/// State of the current attempt of an operation whose retries get ids `<base>`, `<base>/1`,
/// `<base>/2`, ... (the host runs an id once, so a retry needs a new one).
enum Attempt {
    New(String),
    Running,
    Succeeded(u64),
    Backoff { until: u64, message: String },
}

/// `stale_ms`: a success older than this counts as over, and a new attempt is due.
fn attempt(obs: &Observed, base: &str, now: u64, stale_ms: Option<u64>) -> Attempt {
    let id_of = |k: u32| {
        if k == 0 {
            base.to_string()
        } else {
            format!("{base}/{k}")
        }
    };
    let mut k = 0u32;
    loop {
        let id = id_of(k);
        match obs.result(&id) {
            None => return Attempt::New(id),
            Some((Outcome::Running(_), _)) => return Attempt::Running,
            Some((Outcome::Succeeded(_), at)) => {
                if stale_ms.is_none_or(|s| now < at + s) {
                    return Attempt::Succeeded(*at);
                }
                if obs.result(&id_of(k + 1)).is_none() {
                    return Attempt::New(id_of(k + 1));
                }
                k += 1;
            }
            Some((Outcome::Failed(msg), at)) => {
                if obs.result(&id_of(k + 1)).is_none() {
                    let delay = (1000u64 << k.min(6)).min(MAX_BACKOFF_MS);
                    if now < at + delay {
                        return Attempt::Backoff {
                            until: at + delay,
                            message: msg.clone(),
                        };
                    }
                    return Attempt::New(id_of(k + 1));
                }
                k += 1;
            }
        }
    }
}

fn node_ref(dc: &Dc, pod: &str) -> NodeRef {
    NodeRef {
        cluster: String::new(),
        namespace: dc.namespace.clone(),
        pod: pod.to_string(),
    }
}

fn key(dc: &Dc, api_version: &str, kind: &str, name: &str) -> ObjectKey {
    ObjectKey {
        cluster: String::new(),
        api_version: api_version.into(),
        kind: kind.into(),
        namespace: dc.namespace.clone(),
        name: name.into(),
    }
}

/// Claims of one pod: the data volume and any claim-backed additional volume.
fn pod_claims(dc: &Dc, pod: &str) -> Vec<String> {
    let mut out = vec![format!("{}-{pod}", objects::DATA_VOLUME)];
    for v in dc
        .obj
        .spec
        .storage_config
        .additional_volumes
        .iter()
        .flatten()
    {
        if v.pvc_spec.is_some() {
            out.push(format!("{}-{pod}", v.name));
        }
    }
    out
}

fn push(plan: &mut Plan, v: &Value) {
    plan.apply.push(Object {
        cluster: String::new(),
        json: v.to_string(),
    });
}

/// Entry point, called by `Policy::reconcile`.
pub fn reconcile(snapshot: &Snapshot) -> Result<Plan, PolicyError> {
    let mut dc = Dc::parse(snapshot)?;
    let obs = Observed::new(snapshot, &dc);
    let now = snapshot.now_ms;
    let mut plan = Plan::default();

    let removing = dc.deleting() && decommission_on_delete(&dc, &obs);
    if dc.deleting() && !removing {
        return Ok(deletion(&dc, &obs));
    }
    if removing {
        // Every node leaves the ring (one at a time, through the scale-down path) before
        // the finalizer goes.
        for rack in &mut dc.racks {
            rack.desired = 0;
        }
    }
    let hold = removing || !dc.annotation_true(NO_FINALIZER_ANNOTATION);
    plan.finalizers = Some(if hold {
        vec![FINALIZER.to_string()]
    } else {
        vec![]
    });

    let mut conds = Conditions::new(&dc.status, now);
    let violations = validate::check_spec(&dc.obj);
    if !violations.is_empty() {
        invalid(snapshot, &dc, &mut plan, &mut conds, &violations)?;
        return Ok(plan);
    }
    conds.set(T::Valid, true, "ValidationSucceeded", "");
    crate::telemetry::prepare(&mut dc);

    Decider {
        dc: &mut dc,
        obs: &obs,
        now,
        plan: &mut plan,
        conds,
        pending: false,
        node_statuses: BTreeMap::new(),
        last_started: None,
        failed_starts: Vec::new(),
        deleting: Vec::new(),
        keep: BTreeMap::new(),
        removing,
        recreating: false,
        starting: Vec::new(),
        seed_first: None,
        waits: Vec::new(),
    }
    .run()?;
    crate::telemetry::finish(snapshot, &dc, &obs, &mut plan);
    Ok(plan)
}

/// An invalid spec: keep every child as it is and say why. The children are listed with
/// their identity only; that is a subset of the live objects, so the host writes nothing
/// and prunes nothing.
fn invalid(
    snapshot: &Snapshot,
    dc: &Dc,
    plan: &mut Plan,
    conds: &mut Conditions,
    violations: &[k8ssandra_policy_sdk::Violation],
) -> Result<(), PolicyError> {
    for child in &snapshot.children {
        let v = child.value()?;
        let ident = json!({
            "apiVersion": v.get("apiVersion"),
            "kind": v.get("kind"),
            "metadata": {
                "name": v.pointer("/metadata/name"),
                "namespace": v.pointer("/metadata/namespace"),
            },
        });
        plan.apply.push(Object {
            cluster: child.cluster.clone(),
            json: ident.to_string(),
        });
    }
    let message = violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.message))
        .collect::<Vec<_>>()
        .join("; ");
    conds.set(T::Valid, false, "ValidationFailed", message.clone());
    // Other conditions keep their previous status.
    for t in crate::status::MANAGED {
        if t != T::Valid
            && let Some(c) = dc.status.condition(t)
        {
            conds.set(t, c.status == "True", &c.reason, c.message.clone());
        }
    }
    let mut status = serde_json::to_value(&dc.status).unwrap_or_else(|_| json!({}));
    status["conditions"] = conds.to_json();
    status["cassandraOperatorProgress"] = json!(k8ssandra_api::cassandra::PROGRESS_UPDATING);
    status["observedGeneration"] = json!(dc.generation);
    plan.status = Some(status.to_string());
    if !dc.status.is_true(T::Valid) || dc.status.condition(T::Valid).is_none() {
        plan.event(EventType::Warning, "InvalidSpec", message);
    }
    Ok(())
}

/// Whether a deletion must first decommission the nodes: asked by annotation, with the
/// finalizer still held, nodes still there, and another datacenter in the ring to take the
/// data (decommissioning the last datacenter of a cluster makes no sense).
fn decommission_on_delete(dc: &Dc, obs: &Observed) -> bool {
    let held = dc
        .obj
        .metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER));
    let nodes_left = obs.sts.values().any(|s| s.replicas > 0);
    let other_dc = obs
        .ring
        .iter()
        .flatten()
        .any(|e| e.dc != dc.dc_name() && !e.dc.is_empty());
    // Once started, the removal goes on even when no ring view is at hand for a moment.
    let started = dc.prev_true(T::ScalingDown) || dc.prev_true(T::Decommission);
    held && dc.annotation_true(DECOMMISSION_ON_DELETE_ANNOTATION)
        && nodes_left
        && (other_dc || started)
}

/// Deletion: release the finalizer, deleting the claims first only when asked to.
fn deletion(dc: &Dc, obs: &Observed) -> Plan {
    let mut plan = Plan::default();
    let held = dc
        .obj
        .metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER));
    if held && dc.annotation_true(DELETE_PVC_ANNOTATION) {
        for pvc in &obs.pvcs {
            plan.delete
                .push(key(dc, "v1", "PersistentVolumeClaim", pvc));
        }
    }
    plan.finalizers = Some(vec![]);
    plan
}

struct Decider<'a> {
    dc: &'a mut Dc,
    obs: &'a Observed,
    now: u64,
    plan: &'a mut Plan,
    conds: Conditions,
    /// Something is left to do: progress stays `Updating`.
    pending: bool,
    node_statuses: BTreeMap<String, Value>,
    last_started: Option<String>,
    failed_starts: Vec<String>,
    /// Pods this plan deletes (their StatefulSet recreates them).
    deleting: Vec<String>,
    /// Per rack label: pods with a lower ordinal are meant to stay.
    keep: BTreeMap<String, usize>,
    /// The datacenter is being deleted with `decommission-on-delete`: its nodes leave.
    removing: bool,
    /// Some rack's StatefulSet is being recreated for a larger claim template: pods are
    /// not restarted meanwhile (there may be no StatefulSet to recreate them).
    recreating: bool,
    /// Pods whose Cassandra is being started (in flight or by this plan): they keep the
    /// seed label they have.
    starting: Vec<String>,
    /// The first node of a cluster with nothing running: labelled seed before its start.
    seed_first: Option<String>,
    /// Why nodes wait, for the status (`Ready=False` message).
    waits: Vec<String>,
}

/// What the scale-down step decided for one rack.
struct ScaleDown {
    rack: usize,
    shrink: bool,
}

impl Decider<'_> {
    /// Deletes a pod so its StatefulSet recreates it. The new pod comes without the seed
    /// label: it becomes a seed again once it runs (see [`Decider::seed_labels`]).
    fn delete_pod(&mut self, pod: &str) {
        self.plan.delete.push(key(self.dc, "v1", "Pod", pod));
        self.deleting.push(pod.to_string());
    }

    fn run(&mut self) -> Result<(), PolicyError> {
        let stopped = self.dc.stopped();
        self.rolling_restart_request();
        self.secrets();

        // Replacement bookkeeping comes first: it changes which pods count as fresh.
        let replacing = if stopped {
            Vec::new()
        } else {
            self.replacements()
        };

        let scale_down = if stopped {
            None
        } else {
            self.scale_down_target()
        };

        let writes = if stopped || self.removing {
            self.keep_claim_templates()
        } else {
            self.volume_expansion()
        };

        // StatefulSets.
        let mut hashes = Vec::new();
        let mut any_resize = false;
        for rack in self.dc.racks.clone() {
            let live = self.obs.sts.get(&rack.sts);
            let live_replicas = live.map(|l| l.replicas);
            let replicas = if stopped {
                0
            } else if let Some(sd) = scale_down.as_ref().filter(|s| s.rack == rack.index) {
                let cur = live_replicas.unwrap_or(rack.desired);
                if sd.shrink {
                    cur.saturating_sub(1)
                } else {
                    cur
                }
            } else if live_replicas.is_some_and(|l| l > rack.desired) {
                // Another rack is being scaled down first; this one waits its turn.
                live_replicas.unwrap_or(rack.desired)
            } else {
                rack.desired
            };
            if live_replicas != Some(replicas) {
                any_resize = true;
            }
            // Pods at or above this ordinal are on their way out (a shrink just decided or
            // not yet carried out): never started or restarted.
            self.keep.insert(
                rack.label.clone(),
                replicas.min(live_replicas.unwrap_or(replicas)),
            );
            // The template never carries the seed label: a pod created from it (a scale-up,
            // a recreated seed) would join a ring holding data as a seed, which skips
            // bootstrap. Seeds are labelled on the running pods instead (`seed_labels`).
            let mut sts = objects::statefulset(self.dc, &rack, replicas);
            hashes.push(objects::template_hash(&sts["spec"]["template"]));
            if self.force_listed(&rack.rack.name) {
                let since = live
                    .and_then(|l| l.annotations.get(FORCE_UPGRADE_ANNOTATION).cloned())
                    .unwrap_or_else(|| self.dc.generation.to_string());
                sts["metadata"]["annotations"][FORCE_UPGRADE_ANNOTATION] = json!(since);
            }
            match (writes.get(&rack.sts), live) {
                (Some(StsWrite::IdentityOnly), _) => {
                    sts = json!({
                        "apiVersion": sts["apiVersion"],
                        "kind": sts["kind"],
                        "metadata": {"name": rack.sts, "namespace": self.dc.namespace},
                    });
                }
                (Some(StsWrite::KeepClaims), Some(live)) => {
                    sts["spec"]["volumeClaimTemplates"] = live.claim_templates.clone();
                }
                _ => {}
            }
            push(self.plan, &sts);
        }
        if any_resize {
            self.pending = true;
        }
        // `<cluster>-seed-service` is one object for the whole cluster. When several
        // datacenters of the cluster share this namespace, the one with the smallest name
        // among those with pods keeps it; two owners would rewrite it back and forth.
        let seed_svc = names::seed_service_name(&self.dc.cluster);
        let own_label = k8ssandra_api::names::clean_label_value(self.dc.name());
        let seed_elsewhere = self.obs.other_dcs.iter().any(|d| *d < own_label);
        for svc in objects::services(self.dc) {
            if seed_elsewhere && svc["metadata"]["name"] == seed_svc.as_str() {
                continue;
            }
            push(self.plan, &svc);
        }
        if let Some(slice) = objects::additional_seeds_slice(self.dc) {
            push(self.plan, &slice);
        }
        if !self.dc.annotation_true(DISABLE_PDB_ANNOTATION) {
            push(self.plan, &objects::pdb(self.dc));
        }

        self.node_statuses();

        if stopped {
            self.stopped_status();
        } else {
            self.conds.set(T::Stopped, false, "", "");
            let busy = self.starts(&replacing, scale_down.as_ref());
            self.seed_labels();
            self.management_api_failures();
            let quiet = !busy && !self.pending_pods() && replacing.is_empty();
            self.roles();
            let scaling_down = self.scale_down_step(scale_down.as_ref(), quiet);
            let scaling_up = self.scale_up(quiet && !scaling_down);
            let calm = !busy && replacing.is_empty() && !scaling_down;
            self.rolling_update(&hashes, quiet && !scaling_down && !scaling_up, calm);
            self.readiness();
        }
        self.write_status();
        Ok(())
    }

    /// Whether `spec.forceUpgradeRacks` lists this rack.
    fn force_listed(&self, rack: &str) -> bool {
        self.dc
            .obj
            .spec
            .force_upgrade_racks
            .as_ref()
            .is_some_and(|l| l.iter().any(|r| r == rack))
    }

    /// Racks whose live data claim template differs in size from the spec keep it: claim
    /// templates are immutable, and an apply that changed them would fail as a whole.
    fn keep_claim_templates(&self) -> BTreeMap<String, StsWrite> {
        let desired = self
            .dc
            .obj
            .spec
            .storage_config
            .data_volume_size()
            .and_then(quantity_bytes);
        let mut out = BTreeMap::new();
        for rack in &self.dc.racks {
            let Some(live) = self.obs.sts.get(&rack.sts) else {
                continue;
            };
            if live.deleting {
                out.insert(rack.sts.clone(), StsWrite::IdentityOnly);
            } else if live.data_claim_bytes.is_some() && live.data_claim_bytes != desired {
                out.insert(rack.sts.clone(), StsWrite::KeepClaims);
            }
        }
        out
    }

    /// Volume expansion (`allow-storage-changes`): a larger data volume request is written
    /// into the rack's existing claims first; once every claim asks for the new size the
    /// StatefulSet, whose claim template cannot change, is deleted orphaning its pods and
    /// recreated with the new template on the next reconcile (it adopts the running pods,
    /// which keep running: `OnDelete`, and an unchanged pod template). Racks go together;
    /// `ResizingVolumes` stays true until no claim reports a resize in progress.
    fn volume_expansion(&mut self) -> BTreeMap<String, StsWrite> {
        let mut writes = self.keep_claim_templates();
        if writes.values().any(|w| *w == StsWrite::IdentityOnly) {
            self.recreating = true;
            self.pending = true;
        }
        let spec_claim = self
            .dc
            .obj
            .spec
            .storage_config
            .cassandra_data_volume_claim_spec
            .clone();
        let desired_q = self
            .dc
            .obj
            .spec
            .storage_config
            .data_volume_size()
            .map(str::to_string);
        let desired = desired_q.as_deref().and_then(quantity_bytes);
        let field = "spec.storageConfig.cassandraDataVolumeClaimSpec.resources.requests.storage";
        let mut growing = Vec::new();
        for rack in &self.dc.racks {
            let Some(live) = self.obs.sts.get(&rack.sts).filter(|l| !l.deleting) else {
                continue;
            };
            match (live.data_claim_bytes, desired) {
                (Some(l), Some(d)) if d > l => growing.push(rack.sts.clone()),
                (Some(l), Some(d)) if d < l => {
                    let message = format!(
                        "{field}: shrinking the data volumes of {} is not supported",
                        rack.sts
                    );
                    self.conds.set(
                        T::Valid,
                        false,
                        "shrinkingDataVolumeNotSupported",
                        message.clone(),
                    );
                    self.plan
                        .event(EventType::Warning, "InvalidDatacenterSpec", message);
                }
                _ => {}
            }
        }
        let (Some(desired), Some(desired_q)) = (desired, desired_q) else {
            return writes;
        };
        if growing.is_empty() {
            if self.recreating {
                self.conds.set(
                    T::ResizingVolumes,
                    true,
                    "ResizingPVC",
                    "recreating StatefulSets",
                );
            } else if self.obs.pvc_resizing.is_empty() {
                self.conds.set(T::ResizingVolumes, false, "", "");
            } else {
                self.pending = true;
                self.conds.set(
                    T::ResizingVolumes,
                    true,
                    "ResizingPVC",
                    format!("waiting for {}", self.obs.pvc_resizing.join(",")),
                );
            }
            return writes;
        }
        self.pending = true;
        if !self.dc.annotation_true(ALLOW_STORAGE_CHANGES_ANNOTATION) {
            let message = format!(
                "{field}: PVC resize requested, but the annotation {ALLOW_STORAGE_CHANGES_ANNOTATION} is not set to \"true\""
            );
            self.conds.set(
                T::ResizingVolumes,
                false,
                "StorageChangesNotAllowed",
                message.clone(),
            );
            self.plan
                .event(EventType::Warning, "InvalidDatacenterSpec", message);
            return writes;
        }
        let class_name = spec_claim
            .as_ref()
            .and_then(|c| c.storage_class_name.clone())
            .filter(|c| !c.is_empty())
            .or_else(|| {
                self.obs
                    .storage_classes
                    .iter()
                    .find(|(_, c)| c.default)
                    .map(|(n, _)| n.clone())
            });
        // No StorageClass at all: a namespace-scoped operator cannot read them. The API
        // server's own admission (PersistentVolumeClaimResize) refuses claims of a class
        // that cannot expand, so the claims are patched and it decides.
        let expandable = self.obs.storage_classes.is_empty()
            || class_name
                .as_ref()
                .and_then(|n| self.obs.storage_classes.get(n))
                .is_some_and(|c| c.allow_expansion);
        if !expandable {
            let message = match &class_name {
                Some(n) if self.obs.storage_classes.contains_key(n) => format!(
                    "{field}: PVC resize requested, but StorageClass {n} does not support expansion (allowVolumeExpansion)"
                ),
                Some(n) => {
                    format!("{field}: PVC resize requested, but StorageClass {n} does not exist")
                }
                None => format!(
                    "{field}: PVC resize requested, but the claims name no StorageClass and there is no default one"
                ),
            };
            self.conds.set(
                T::Valid,
                false,
                "storageClassDoesNotSupportExpansion",
                message.clone(),
            );
            self.conds.set(
                T::ResizingVolumes,
                false,
                "storageClassDoesNotSupportExpansion",
                message.clone(),
            );
            self.plan
                .event(EventType::Warning, "InvalidDatacenterSpec", message);
            return writes;
        }
        let scaling = self.dc.prev_true(T::ScalingUp)
            || self.dc.prev_true(T::ScalingDown)
            || self.dc.racks.iter().any(|r| {
                self.obs
                    .sts
                    .get(&r.sts)
                    .is_some_and(|l| l.replicas != r.desired)
            });
        if scaling {
            self.conds.set(
                T::ResizingVolumes,
                false,
                "WaitingForScaling",
                "the volumes grow once scaling is over",
            );
            return writes;
        }
        self.conds
            .set(T::ResizingVolumes, true, "ResizingPVC", growing.join(","));
        for sts in growing {
            let prefix = format!("{}-{sts}-", objects::DATA_VOLUME);
            let small: Vec<String> = self
                .obs
                .pvcs
                .iter()
                .filter(|n| n.starts_with(&prefix))
                .filter(|n| self.obs.pvc_requests.get(*n).is_none_or(|r| *r < desired))
                .cloned()
                .collect();
            if small.is_empty() {
                // Every claim asks for the new size: the StatefulSet goes (its pods stay,
                // the host deletes StatefulSets it is told to with orphan propagation) and
                // comes back with the new claim template.
                self.plan
                    .delete
                    .push(key(self.dc, "apps/v1", "StatefulSet", &sts));
                writes.insert(sts.clone(), StsWrite::IdentityOnly);
                self.recreating = true;
                self.plan.event(
                    EventType::Normal,
                    "RecreatingStatefulSet",
                    format!("recreating {sts} with {desired_q} volumes; its pods keep running"),
                );
                continue;
            }
            for claim in &small {
                push(
                    self.plan,
                    &json!({
                        "apiVersion": "v1",
                        "kind": "PersistentVolumeClaim",
                        "metadata": {"name": claim, "namespace": self.dc.namespace},
                        "spec": {"resources": {"requests": {"storage": desired_q}}},
                    }),
                );
            }
            self.plan.event(
                EventType::Normal,
                "ResizingPVC",
                format!(
                    "Resizing PVCs for {sts} to {desired_q}: {}",
                    small.join(",")
                ),
            );
        }
        writes
    }

    /// `spec.rollingRestartRequested`: stamp the time into the status; the pod templates
    /// carry it, so every pod becomes outdated and the rolling update restarts them.
    /// The policy cannot reset the spec flag, so a request is taken once per generation.
    fn rolling_restart_request(&mut self) {
        let requested = self.dc.obj.spec.rolling_restart_requested == Some(true);
        let new_generation = self.dc.status.observed_generation != Some(self.dc.generation);
        if requested && new_generation && !self.dc.prev_true(T::RollingRestart) {
            let time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time> =
                serde_json::from_value(json!(rfc3339(self.now))).ok();
            self.dc.status.last_rolling_restart = time;
            self.conds
                .set(T::RollingRestart, true, "RestartRequested", "");
            self.plan.event(
                EventType::Normal,
                "RollingRestart",
                "rolling restart requested",
            );
        }
    }

    fn secrets(&mut self) {
        let user_secret = self
            .dc
            .obj
            .spec
            .superuser_secret_name
            .as_deref()
            .is_some_and(|s| !s.is_empty());
        if user_secret || self.dc.annotation_true(SKIP_USER_CREATION_ANNOTATION) {
            return;
        }
        let name = self.dc.obj.superuser_secret_name();
        self.plan.secrets.push(GeneratedSecret {
            cluster: String::new(),
            namespace: self.dc.namespace.clone(),
            name,
            fixed: vec![(
                "username".into(),
                format!("{}-superuser", self.dc.cleaned_cluster()),
            )],
            random_keys: vec!["password".into()],
            labels: vec![(
                k8ssandra_api::labels::CLUSTER_LABEL.into(),
                self.dc.cluster_label(),
            )],
        });
    }

    /// Pods being replaced (their claim and pod are deleted, then they start with the old
    /// address as `replace_ip`). Returns those still in progress.
    fn replacements(&mut self) -> Vec<String> {
        let mut requested: Vec<String> = self.dc.obj.spec.replace_nodes.clone().unwrap_or_default();
        for pod in &self.obs.task_replacements {
            if !requested.contains(pod) {
                requested.push(pod.clone());
            }
        }
        let mut recorded: Vec<String> = self
            .dc
            .replacements()
            .into_iter()
            .filter(|r| requested.contains(r))
            .collect();
        let since = if self.dc.prev_true(T::ReplacingNodes) {
            self.dc.prev_transition_ms(T::ReplacingNodes)
        } else {
            None
        };
        let in_progress: Vec<String> = match since {
            None => Vec::new(),
            Some(since) => recorded
                .iter()
                .filter(|r| {
                    !self
                        .obs
                        .live_pod(r)
                        .is_some_and(|p| p.ready() && p.created_ms.is_some_and(|c| c >= since))
                })
                .cloned()
                .collect(),
        };
        let mut begun = None;
        if in_progress.is_empty() && since.is_none() {
            begun = requested.iter().find(|r| !recorded.contains(r)).cloned();
        }
        match (&begun, in_progress.is_empty()) {
            (Some(pod), _) => {
                let old_ip = self.dc.recorded(pod).and_then(|s| s.ip.clone());
                if old_ip.is_none() || self.obs.pod(pod).is_none() {
                    self.plan.event(
                        EventType::Warning,
                        "ReplaceRefused",
                        format!("cannot replace {pod}: it is not a known node of this datacenter"),
                    );
                    self.conds.set(
                        T::ReplacingNodes,
                        false,
                        "UnknownNode",
                        format!("{pod} is not a known node of this datacenter"),
                    );
                    begun = None;
                } else {
                    for claim in pod_claims(self.dc, pod) {
                        self.plan
                            .delete
                            .push(key(self.dc, "v1", "PersistentVolumeClaim", &claim));
                    }
                    self.delete_pod(pod);
                    recorded.push(pod.clone());
                    self.conds
                        .set(T::ReplacingNodes, true, "ReplacingNode", pod.clone());
                    self.plan.event(
                        EventType::Normal,
                        "ReplacingNode",
                        format!("replacing {pod}: its volume and pod are recreated"),
                    );
                }
            }
            (None, false) => {
                self.conds.set(
                    T::ReplacingNodes,
                    true,
                    "ReplacingNode",
                    in_progress.join(","),
                );
            }
            (None, true) => self.conds.set(T::ReplacingNodes, false, "", ""),
        }
        self.dc.status.node_replacements = (!recorded.is_empty()).then(|| recorded.clone());
        let mut out = in_progress;
        if let Some(b) = begun {
            out.push(b);
            self.pending = true;
        }
        if !out.is_empty() {
            self.pending = true;
        }
        out
    }

    /// The rack to shrink next and whether its last node has already left the ring.
    fn scale_down_target(&mut self) -> Option<ScaleDown> {
        let mut best: Option<(usize, usize)> = None;
        for rack in &self.dc.racks {
            let Some(live) = self.obs.sts.get(&rack.sts) else {
                continue;
            };
            if live.replicas > rack.desired && best.is_none_or(|(_, r)| live.replicas >= r) {
                best = Some((rack.index, live.replicas));
            }
        }
        let (rack, replicas) = best?;
        let pod = format!("{}-{}", self.dc.racks[rack].sts, replicas - 1);
        let rec = self.dc.recorded(&pod);
        let p = self.obs.live_pod(&pod);
        let entry = self.obs.ring_entry(
            p.and_then(|p| p.ip.as_deref()),
            rec.and_then(|r| r.host_id.as_deref()),
        );
        let never_joined = rec.is_none_or(|r| r.host_id.is_none()) && p.is_none_or(|p| !p.ready());
        // The last node of a datacenter may leave with no other node to show the ring:
        // its finished decommission is the evidence then.
        let decommissioned = p.is_some_and(|p| {
            matches!(
                attempt(
                    self.obs,
                    &format!("decommission/{pod}/{}", p.uid),
                    self.now,
                    None
                ),
                Attempt::Succeeded(_)
            )
        });
        let shrink = entry.is_none() && (self.obs.ring.is_some() || never_joined || decommissioned);
        Some(ScaleDown { rack, shrink })
    }

    /// Pods the StatefulSets should have that don't exist yet or aren't ready.
    fn pending_pods(&self) -> bool {
        self.dc.racks.iter().any(|rack| {
            (0..rack.desired).any(|i| {
                let name = format!("{}-{i}", rack.sts);
                !self.obs.live_pod(&name).is_some_and(PodObs::ready)
            })
        })
    }

    fn kept(&self, p: &PodObs) -> bool {
        self.keep
            .get(&p.rack)
            .is_none_or(|n| (p.ordinal as usize) < *n)
    }

    fn has_data(&self, p: &PodObs, replacing: &[String]) -> bool {
        !replacing.contains(&p.name)
            && self
                .dc
                .recorded(&p.name)
                .is_some_and(|r| r.host_id.is_some())
    }

    /// Starts (or keeps waiting for) Cassandra on pods whose management API is up.
    /// Returns whether a start is in flight.
    fn starts(&mut self, replacing: &[String], scale_down: Option<&ScaleDown>) -> bool {
        let dc = &*self.dc;
        let obs = self.obs;
        let skip = scale_down.map(|s| {
            let r = &dc.racks[s.rack];
            let n = obs.sts.get(&r.sts).map_or(0, |l| l.replicas);
            format!("{}-{}", r.sts, n.saturating_sub(1))
        });
        let mut in_flight_fresh = false;
        let mut in_flight_any = false;
        let mut fresh: Vec<(&PodObs, String, Option<String>)> = Vec::new();
        let mut with_data: Vec<(&PodObs, String)> = Vec::new();
        let mut requeue: Option<u64> = None;
        let mut failed: Vec<String> = Vec::new();
        let mut mgmt_waits: Vec<String> = Vec::new();
        let replace_since = dc.prev_transition_ms(T::ReplacingNodes).unwrap_or(0);

        for p in obs.pods.iter().filter(|p| !p.terminating) {
            if p.ready()
                || skip.as_deref() == Some(p.name.as_str())
                || !self.kept(p)
                || self.deleting.contains(&p.name)
            {
                continue;
            }
            let is_replace = replacing.contains(&p.name);
            if is_replace && p.created_ms.is_none_or(|c| c < replace_since) {
                // The old pod of a replacement, about to be deleted.
                continue;
            }
            let data = self.has_data(p, replacing);
            let base = if is_replace {
                format!("replace/{}/{}", p.name, p.uid)
            } else {
                format!("start/{}/{}", p.name, p.uid)
            };
            // A node still bootstrapping may take hours: never "time out" while the ring
            // shows it joining.
            let joining = obs
                .ring_entry(p.ip.as_deref(), None)
                .is_some_and(|e| e.moving());
            let stale = (!joining).then_some(START_TIMEOUT_MS);
            match attempt(obs, &base, self.now, stale) {
                Attempt::Running => {
                    in_flight_any = true;
                    in_flight_fresh |= !data;
                    self.starting.push(p.name.clone());
                }
                Attempt::Succeeded(at) => {
                    in_flight_any = true;
                    in_flight_fresh |= !data;
                    self.starting.push(p.name.clone());
                    if !joining {
                        let due = at + START_TIMEOUT_MS;
                        requeue = Some(requeue.map_or(due, |r| r.min(due)));
                    }
                }
                Attempt::Backoff { until, message } => {
                    failed.push(p.name.clone());
                    requeue = Some(requeue.map_or(until, |r| r.min(until)));
                    self.conds.set(
                        T::Ready,
                        false,
                        "StartFailed",
                        format!("starting {} failed: {message}", p.name),
                    );
                }
                Attempt::New(id) => {
                    if !p.mgmt_up() {
                        // A refused connection is the API still starting (the host probes
                        // it again and reconciles once it answers); an API that answers
                        // errors is reported by `management_api_failures`.
                        let broken = p
                            .node
                            .as_ref()
                            .and_then(|n| n.error.as_deref())
                            .is_some_and(management_api_broken);
                        if !broken {
                            mgmt_waits.push(p.name.clone());
                        }
                        continue;
                    }
                    if data {
                        with_data.push((p, id));
                    } else {
                        let replace_ip = if is_replace {
                            dc.recorded(&p.name).and_then(|s| s.ip.clone())
                        } else {
                            None
                        };
                        fresh.push((p, id, replace_ip));
                    }
                }
            }
        }
        let rack_index = |p: &PodObs| {
            dc.racks
                .iter()
                .position(|r| r.label == p.rack)
                .unwrap_or(usize::MAX)
        };
        // Seeds are running nodes (see `seed_labels`). A node starts once it can reach one:
        // a ready seed of the cluster in this namespace, or an additional seed elsewhere.
        // With neither and nothing of the cluster running, the first node is labelled seed
        // before it starts: its own address in its seed list makes it form the ring.
        // A fresh pod still labelled seed while not ready (made from an older template)
        // waits for the label to go: a new node that is its own seed skips bootstrap and
        // would own ranges whose data is elsewhere.
        let additional = dc
            .obj
            .spec
            .additional_seeds
            .as_ref()
            .is_some_and(|s| !s.is_empty());
        let lone = !obs.cluster_any_ready && !additional;
        let contact = obs.cluster_seed_ready || additional;
        let mut ops: Vec<(String, String, Option<String>)> = Vec::new();
        let mut requeue_ring = false;
        if !mgmt_waits.is_empty() {
            self.waits.push(format!(
                "waiting for the management API of {}",
                mgmt_waits.join(",")
            ));
        }
        if lone {
            if !in_flight_any {
                // Data decides who forms the ring: a node that has some, when any has.
                let data_exists = obs
                    .pods
                    .iter()
                    .any(|p| !p.terminating && self.has_data(p, replacing));
                let mut candidates: Vec<(&PodObs, &String)> = if data_exists {
                    with_data.iter().map(|(p, id)| (*p, id)).collect()
                } else {
                    fresh
                        .iter()
                        .filter(|(_, _, replace)| replace.is_none())
                        .map(|(p, id, _)| (*p, id))
                        .collect()
                };
                candidates.sort_by_key(|(p, _)| (!p.seed, p.ordinal, rack_index(p)));
                match candidates.first() {
                    Some((p, id)) if p.seed => ops.push((p.name.clone(), (*id).clone(), None)),
                    Some((p, _)) => {
                        self.seed_first = Some(p.name.clone());
                        self.pending = true;
                    }
                    None => {}
                }
            }
        } else if !contact {
            if !with_data.is_empty() || !fresh.is_empty() {
                self.waits.push("waiting for a ready seed".into());
            }
        } else if !in_flight_fresh {
            // A node with data rejoins without bootstrap, seed label or not (it keeps
            // the label while it starts).
            for (p, id) in &with_data {
                ops.push((p.name.clone(), id.clone(), None));
            }
            if ops.is_empty() && !in_flight_any {
                fresh.sort_by_key(|(p, _, replace)| (replace.is_none(), p.ordinal, rack_index(p)));
                if let Some((p, id, replace_ip)) = fresh.iter().find(|(p, _, _)| !p.seed) {
                    // A bootstrap or a replacement is a range movement: Cassandra refuses
                    // it while another one runs anywhere in the cluster, or while a token
                    // owner of this datacenter is down (other than the one replaced).
                    let (ring_moving, down) = self.range_movement_blockers(replace_ip.as_deref());
                    if !ring_moving.is_empty() {
                        self.waits.push(format!(
                            "{} waits for the range movement of {}",
                            p.name,
                            ring_moving.join(",")
                        ));
                        requeue_ring = true;
                    } else if !down.is_empty() {
                        self.waits.push(format!(
                            "{} waits: node {} of datacenter {} is down",
                            p.name,
                            down.join(","),
                            dc.dc_name()
                        ));
                        requeue_ring = true;
                    } else {
                        ops.push((p.name.clone(), id.clone(), replace_ip.clone()));
                    }
                }
            }
        }
        for (pod, id, replace_ip) in &ops {
            let target = node_ref(dc, pod);
            let message = match replace_ip {
                Some(ip) => format!("starting Cassandra on {pod}, replacing {ip}"),
                None => format!("starting Cassandra on {pod}"),
            };
            self.plan
                .operate(id.clone(), target, OperationKind::Start(replace_ip.clone()));
            self.plan
                .event(EventType::Normal, "StartingCassandra", message);
            self.last_started = Some(rfc3339(self.now));
            self.starting.push(pod.clone());
        }
        if let Some(at) = requeue {
            self.plan
                .requeue_after(at.saturating_sub(self.now).max(1000));
        }
        if requeue_ring {
            self.plan.requeue_after(RING_RECHECK_MS);
        }
        self.failed_starts = failed;
        let busy = in_flight_any || !ops.is_empty();
        if busy {
            self.pending = true;
        }
        busy
    }

    /// What keeps a range movement (a bootstrap, a replacement, a decommission) from
    /// starting, as Cassandra would refuse it: nodes of the cluster joining, leaving or
    /// moving (as `<ip> <STATUS>`), and token owners of this datacenter that are down (their
    /// addresses); `except` (the node replaced or leaving) aside.
    fn range_movement_blockers(&self, except: Option<&str>) -> (Vec<String>, Vec<String>) {
        let others = || {
            self.obs
                .ring
                .iter()
                .flatten()
                .filter(move |e| except != Some(e.ip.as_str()))
        };
        let moving = others()
            .filter(|e| e.moving())
            .map(|e| format!("{} {}", e.ip, e.status))
            .collect();
        let down = others()
            .filter(|e| !e.moving() && e.dc == self.dc.dc_name() && e.down_replica())
            .map(|e| e.ip.clone())
            .collect();
        (moving, down)
    }

    /// The seed label on this datacenter's pods, as cass-operator keeps it: in each rack the
    /// first ready pods (by ordinal) up to the rack's seed count are seeds; a pod that is
    /// not ready loses the label unless its Cassandra is starting; the first node of a
    /// cluster with nothing running is labelled before it starts (`seed_first`).
    ///
    /// The pods are the StatefulSets', so the plan lists only their identity and this one
    /// label, and only for pods that are to carry it or carry it now: the host patches
    /// existing pods it does not own and never creates, adopts or prunes them. The value
    /// is written explicitly (`"false"` rather than removing the label) because the label
    /// may have been set by another field manager (the StatefulSet controller, for pods
    /// created by an older version from a template that carried it).
    fn seed_labels(&mut self) {
        if self.dc.stopped() {
            return;
        }
        let mut labelled = Vec::new();
        let mut unlabelled = Vec::new();
        for rack in self.dc.racks.clone() {
            let mut pods: Vec<&PodObs> = self
                .obs
                .pods
                .iter()
                .filter(|p| p.rack == rack.label && !p.terminating)
                .filter(|p| !self.deleting.contains(&p.name))
                .collect();
            pods.sort_by_key(|p| p.ordinal);
            let mut count = 0;
            for p in pods {
                let is_seed = p.ready() && count < rack.seeds;
                if is_seed {
                    count += 1;
                }
                let keep = p.seed && self.starting.contains(&p.name);
                let first = self.seed_first.as_deref() == Some(p.name.as_str());
                let seed = is_seed || keep || first;
                if !seed && !p.seed_labelled {
                    continue;
                }
                if seed && !p.seed {
                    labelled.push(p.name.clone());
                } else if !seed && p.seed {
                    unlabelled.push(p.name.clone());
                }
                push(
                    self.plan,
                    &json!({
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {
                            "name": p.name,
                            "namespace": self.dc.namespace,
                            "labels": {SEED_NODE_LABEL: if seed { "true" } else { "false" }},
                        },
                    }),
                );
            }
        }
        if !labelled.is_empty() {
            self.plan.event(
                EventType::Normal,
                "LabeledPodAsSeed",
                format!("labelled as seed node: {}", labelled.join(",")),
            );
        }
        if !unlabelled.is_empty() {
            self.plan.event(
                EventType::Normal,
                "UnlabeledPodAsSeed",
                format!("no longer a seed node: {}", unlabelled.join(",")),
            );
        }
        if !labelled.is_empty() || !unlabelled.is_empty() {
            self.pending = true;
        }
    }

    /// Nodes whose management API answers errors or does not answer in time: `Ready=False`
    /// naming them and the error, a Warning event, and a requeue so the node is probed
    /// again. Never a pod deletion: a recreated pod would not fix an API that fails, and
    /// it costs the node its place while the cause is elsewhere (upstream KO #1627).
    fn management_api_failures(&mut self) {
        let failing: Vec<(String, String)> = self
            .obs
            .pods
            .iter()
            .filter(|p| !p.terminating && self.kept(p) && !self.deleting.contains(&p.name))
            .filter_map(|p| {
                let node = p.node.as_ref()?;
                let error = node.error.as_deref()?;
                (!node.reachable && management_api_broken(error))
                    .then(|| (p.name.clone(), error.to_string()))
            })
            .collect();
        if failing.is_empty() {
            return;
        }
        let message = failing
            .iter()
            .map(|(pod, error)| format!("management API of {pod} fails: {error}"))
            .collect::<Vec<_>>()
            .join("; ");
        self.conds
            .set(T::Ready, false, MANAGEMENT_API_FAILED, message.clone());
        self.plan
            .event(EventType::Warning, MANAGEMENT_API_FAILED, message);
        self.plan.requeue_after(MANAGEMENT_API_RECHECK_MS);
        self.pending = true;
    }

    /// Superuser and `spec.users` roles, once a node of the datacenter is ready.
    fn roles(&mut self) {
        if self.removing || self.dc.annotation_true(SKIP_USER_CREATION_ANNOTATION) {
            return;
        }
        let Some(target) = self
            .obs
            .pods
            .iter()
            .find(|p| p.ready())
            .map(|p| p.name.clone())
        else {
            return;
        };
        let generation = self.dc.generation;
        let superuser = self.dc.obj.superuser_secret_name();
        let mut roles = vec![(superuser.clone(), true)];
        for u in self.dc.obj.spec.users.iter().flatten() {
            if !roles.iter().any(|(s, _)| *s == u.secret_name) {
                roles.push((u.secret_name.clone(), u.superuser));
            }
        }
        let mut users_done: Option<u64> = Some(0);
        for (secret, is_super) in roles {
            let base = format!("role/{secret}/{generation}");
            let done = match attempt(self.obs, &base, self.now, None) {
                Attempt::New(id) => {
                    self.plan.operate(
                        id,
                        node_ref(self.dc, &target),
                        OperationKind::CreateRole(Role {
                            secret_name: secret.clone(),
                            superuser: is_super,
                            login: true,
                        }),
                    );
                    self.pending = true;
                    None
                }
                Attempt::Running => {
                    self.pending = true;
                    None
                }
                Attempt::Backoff { until, message } => {
                    self.pending = true;
                    self.plan
                        .requeue_after(until.saturating_sub(self.now).max(1000));
                    sdk_log_warn(&format!("creating role from {secret} failed: {message}"));
                    None
                }
                Attempt::Succeeded(at) => Some(at),
            };
            if secret == superuser
                && let Some(at) = done
                && self.dc.status.super_user_upserted.is_none()
            {
                self.dc.status.super_user_upserted =
                    serde_json::from_value(json!(rfc3339(at))).ok();
            }
            users_done = match (users_done, done) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
        }
        if let Some(at) = users_done
            && self.dc.status.users_upserted.is_none()
        {
            self.dc.status.users_upserted = serde_json::from_value(json!(rfc3339(at))).ok();
        }
    }

    /// Decommissions the last node of the rack chosen by `scale_down_target`, one at a
    /// time; the StatefulSet shrinks (and the node's claims go) once it left the ring.
    fn scale_down_step(&mut self, sd: Option<&ScaleDown>, quiet: bool) -> bool {
        let Some(sd) = sd else {
            self.conds.set(T::ScalingDown, false, "", "");
            self.conds.set(T::Decommission, false, "", "");
            return false;
        };
        self.pending = true;
        let rack = self.dc.racks[sd.rack].clone();
        let replicas = self.obs.sts.get(&rack.sts).map_or(0, |l| l.replicas);
        let pod = format!("{}-{}", rack.sts, replicas.saturating_sub(1));
        self.conds.set(
            T::ScalingDown,
            true,
            "ScalingDown",
            format!("removing {pod}"),
        );
        if sd.shrink {
            for claim in pod_claims(self.dc, &pod) {
                self.plan
                    .delete
                    .push(key(self.dc, "v1", "PersistentVolumeClaim", &claim));
            }
            self.node_statuses.remove(&pod);
            self.conds
                .set(T::Decommission, false, "Decommissioned", pod.clone());
            return true;
        }
        let Some(p) = self.obs.live_pod(&pod).cloned() else {
            return true;
        };
        let rec_host = self.dc.recorded(&pod).and_then(|r| r.host_id.clone());
        let entry = self
            .obs
            .ring_entry(p.ip.as_deref(), rec_host.as_deref())
            .cloned();
        let Some(entry) = entry else {
            return true;
        };
        if entry.status == "LEAVING" {
            self.conds
                .set(T::Decommission, true, "Decommissioning", pod.clone());
            return true;
        }
        // Decommission only a healthy datacenter, never while other work is under way.
        let others_ready = self
            .obs
            .pods
            .iter()
            .filter(|o| o.name != pod && !o.terminating)
            .all(PodObs::ready);
        if entry.status != "NORMAL" || !p.ready() || !others_ready {
            return true;
        }
        // Its ranges stream to the other nodes: not while another range movement runs in
        // the cluster, nor while a node of the datacenter that would receive them is down.
        let (mut blocked, down) = self.range_movement_blockers(Some(&entry.ip));
        blocked.extend(down.into_iter().map(|ip| format!("{ip} DOWN")));
        if !blocked.is_empty() {
            self.waits.push(format!(
                "decommission of {pod} waits for {}",
                blocked.join(",")
            ));
            self.plan.requeue_after(RING_RECHECK_MS);
            return true;
        }
        match attempt(
            self.obs,
            &format!("decommission/{pod}/{}", p.uid),
            self.now,
            None,
        ) {
            Attempt::New(id) => {
                if !quiet {
                    return true;
                }
                // A datacenter being removed hands its data to the other datacenters.
                let refusal = if self.removing {
                    None
                } else {
                    self.capacity_refusal()
                };
                if let Some(reason) = refusal {
                    self.conds
                        .set(T::ScalingDown, true, "NotEnoughCapacity", reason.clone());
                    self.plan
                        .event(EventType::Warning, "ScaleDownRefused", reason);
                    return true;
                }
                self.plan
                    .operate(id, node_ref(self.dc, &pod), OperationKind::Decommission);
                self.plan.event(
                    EventType::Normal,
                    "DecommissioningNode",
                    format!("decommissioning {pod}"),
                );
                self.conds
                    .set(T::Decommission, true, "Decommissioning", pod.clone());
            }
            Attempt::Running | Attempt::Succeeded(_) => {
                self.conds
                    .set(T::Decommission, true, "Decommissioning", pod.clone());
            }
            Attempt::Backoff { until, message } => {
                self.conds.set(
                    T::Decommission,
                    true,
                    "DecommissionFailed",
                    format!("{pod}: {message}"),
                );
                self.plan
                    .requeue_after(until.saturating_sub(self.now).max(1000));
            }
        }
        true
    }

    /// Whether the nodes left after one decommission could hold the datacenter's data
    /// (LOAD from the ring against the data volume size, keeping some headroom).
    fn capacity_refusal(&self) -> Option<String> {
        let ring = self.obs.ring.as_ref()?;
        let dc_name = self.dc.dc_name();
        let nodes: Vec<_> = ring.iter().filter(|e| e.dc == dc_name).collect();
        let remaining = nodes.len().checked_sub(1).filter(|n| *n > 0)?;
        let total: f64 = nodes.iter().map(|e| e.load).sum();
        let capacity = self
            .obs
            .pvc_sizes
            .iter()
            .filter(|(n, _)| n.starts_with(objects::DATA_VOLUME))
            .map(|(_, s)| *s)
            .fold(None, |m: Option<f64>, s| Some(m.map_or(s, |m| m.min(s))))
            .or_else(|| {
                self.dc
                    .obj
                    .spec
                    .storage_config
                    .data_volume_size()
                    .and_then(quantity_bytes)
            })?;
        let per_node = total / remaining as f64;
        (per_node > capacity * MAX_FILL_AFTER_DECOMMISSION).then(|| {
            format!(
                "the remaining {remaining} nodes would hold {per_node:.0} bytes each, more than {:.0}% of their {capacity:.0}-byte volumes",
                MAX_FILL_AFTER_DECOMMISSION * 100.0
            )
        })
    }

    /// ScalingUp from the moment an initialized datacenter grows until every new node runs
    /// and the old ones are cleaned up (one node at a time, unless `no-cleanup`).
    fn scale_up(&mut self, quiet: bool) -> bool {
        // A rack without a StatefulSet but with its pods is one being recreated (volume
        // expansion), not one growing.
        let growing = self
            .dc
            .racks
            .iter()
            .any(|r| match self.obs.sts.get(&r.sts) {
                Some(l) => l.replicas < r.desired,
                None => {
                    self.obs
                        .pods
                        .iter()
                        .filter(|p| p.rack == r.label && !p.terminating)
                        .count()
                        < r.desired
                }
            });
        // Resuming from `stopped` regrows every rack; that is no scale-up.
        let resuming = self.dc.prev_true(T::Stopped) || self.dc.prev_true(T::Resuming);
        let active = !self.removing
            && (self.dc.prev_true(T::ScalingUp)
                || (self.dc.prev_true(T::Initialized) && growing && !resuming));
        if !active {
            self.conds.set(T::ScalingUp, false, "", "");
            return false;
        }
        self.pending = true;
        self.conds.set(T::ScalingUp, true, "ScalingUp", "");
        if !quiet || growing {
            return true;
        }
        // Cassandra refuses a cleanup while the ring changes (another datacenter's nodes
        // joining, say): wait for the ring to settle.
        if self.obs.ring.iter().flatten().any(|e| e.moving()) {
            self.plan.requeue_after(RING_RECHECK_MS);
            return true;
        }
        if !self.dc.annotation_true(NO_AUTOMATED_CLEANUP_ANNOTATION) {
            let since = self.dc.prev_transition_ms(T::ScalingUp).unwrap_or(self.now) / 1000;
            let pods: Vec<PodObs> = self
                .obs
                .pods
                .iter()
                .filter(|p| p.ready())
                .cloned()
                .collect();
            for p in pods {
                match attempt(
                    self.obs,
                    &format!("cleanup/{}/{since}", p.name),
                    self.now,
                    None,
                ) {
                    Attempt::New(id) => {
                        self.plan.operate(
                            id,
                            node_ref(self.dc, &p.name),
                            OperationKind::Cleanup(TableScope {
                                keyspace: String::new(),
                                tables: vec![],
                                jobs: 0,
                            }),
                        );
                        return true;
                    }
                    Attempt::Running => return true,
                    // A failed cleanup leaves extra data behind, nothing worse: report it
                    // and go on rather than block the datacenter.
                    Attempt::Backoff { message, .. } => {
                        sdk_log_warn(&format!("cleanup on {} failed: {message}", p.name));
                    }
                    Attempt::Succeeded(_) => {}
                }
            }
        }
        self.conds.set(T::ScalingUp, false, "ScaleUpComplete", "");
        false
    }

    /// `spec.forceUpgradeRacks`: every outdated pod of a listed rack is recreated at once,
    /// without waiting for readiness, in the generation the rack was first listed (see
    /// [`FORCE_UPGRADE_ANNOTATION`]). Returns whether pods were deleted.
    fn force_upgrade(&mut self, hashes: &[String]) -> bool {
        let mut forced = Vec::new();
        for (rack, hash) in self.dc.racks.clone().iter().zip(hashes) {
            if !self.force_listed(&rack.rack.name) {
                continue;
            }
            let since = self
                .obs
                .sts
                .get(&rack.sts)
                .and_then(|l| l.annotations.get(FORCE_UPGRADE_ANNOTATION))
                .and_then(|g| g.parse::<i64>().ok());
            if since.is_some_and(|g| g != self.dc.generation) {
                continue;
            }
            let pods: Vec<String> = self
                .obs
                .pods
                .iter()
                .filter(|p| p.rack == rack.label && !p.terminating && self.kept(p))
                .filter(|p| !self.deleting.contains(&p.name))
                .filter(|p| p.template_hash.as_deref().is_some_and(|h| h != hash))
                .map(|p| p.name.clone())
                .collect();
            if pods.is_empty() {
                continue;
            }
            for pod in &pods {
                self.delete_pod(pod);
            }
            self.plan.event(
                EventType::Normal,
                "ForceUpgrade",
                format!(
                    "rack {}: recreating {} at once with the current pod template (spec.forceUpgradeRacks)",
                    rack.rack.name,
                    pods.join(",")
                ),
            );
            forced.push(rack.rack.name.clone());
        }
        if forced.is_empty() {
            return false;
        }
        self.pending = true;
        self.conds.set(
            T::Updating,
            true,
            "ForceUpgrade",
            format!("racks {} updated at once", forced.join(",")),
        );
        true
    }

    /// Restarts outdated pods (template hash differs) rack by rack, the highest ordinal
    /// first, one pod at a time and only when every node is ready.
    ///
    /// `calm`: nothing in flight (no start, scale-down or replacement), though some node
    /// may be down. An outdated node that is down and cannot start (a bad configuration,
    /// say) would block the update for ever; as it is down already, recreating it with
    /// the fixed template costs no availability, so it goes first, also while not every
    /// node is ready.
    fn rolling_update(&mut self, hashes: &[String], quiet: bool, calm: bool) {
        if self.removing {
            return;
        }
        if self.recreating {
            self.pending = true;
            return;
        }
        if self.force_upgrade(hashes) {
            return;
        }
        let mut outdated: Option<String> = None;
        let mut outdated_all: Vec<String> = Vec::new();
        let mut count = 0;
        for (rack, hash) in self.dc.racks.iter().zip(hashes) {
            let mut pods: Vec<&PodObs> = self
                .obs
                .pods
                .iter()
                .filter(|p| p.rack == rack.label && !p.terminating && self.kept(p))
                // Pods without the annotation were made by another operator (a migration
                // from cass-operator): adopted as they are rather than all restarted.
                .filter(|p| p.template_hash.as_deref().is_some_and(|h| h != hash))
                .collect();
            pods.sort_by_key(|p| std::cmp::Reverse(p.ordinal));
            count += pods.len();
            outdated_all.extend(pods.iter().map(|p| p.name.clone()));
            if outdated.is_none() {
                outdated = pods.first().map(|p| p.name.clone());
            }
        }
        let restart_requested =
            self.dc.prev_true(T::RollingRestart) || self.conds.get(T::RollingRestart) == Some(true);
        let Some(mut pod) = outdated else {
            self.conds.set(T::Updating, false, "", "");
            self.conds.set(T::RollingRestart, false, "", "");
            return;
        };
        // canaryUpgrade: only the first rack, up to canaryUpgradeCount of its pods; the
        // rest waits until the user turns the canary off.
        if self.dc.obj.spec.canary_upgrade == Some(true)
            && let Some(first) = self.dc.racks.first()
        {
            let hash = hashes.first().map(String::as_str).unwrap_or_default();
            let in_rack = |p: &&PodObs| p.rack == first.label && !p.terminating && self.kept(p);
            let updated = self
                .obs
                .pods
                .iter()
                .filter(in_rack)
                .filter(|p| p.template_hash.as_deref() == Some(hash))
                .count();
            let limit = match self.dc.obj.spec.canary_upgrade_count {
                Some(n) if n > 0 && (n as usize) < first.desired => n as usize,
                _ => first.desired,
            };
            let next = self
                .obs
                .pods
                .iter()
                .filter(in_rack)
                .filter(|p| outdated_all.contains(&p.name))
                .max_by_key(|p| p.ordinal)
                .map(|p| p.name.clone());
            self.pending = true;
            match next.filter(|_| updated < limit) {
                Some(n) => pod = n,
                None => {
                    self.conds.set(
                        T::Updating,
                        true,
                        "CanaryUpgrade",
                        format!(
                            "canary done ({updated} pod(s)); set canaryUpgrade to false to go on"
                        ),
                    );
                    return;
                }
            }
            outdated_all.retain(|o| *o == pod);
        }
        self.pending = true;
        self.conds.set(
            T::Updating,
            true,
            "RollingUpdate",
            format!("{count} pod(s) to update"),
        );
        if restart_requested {
            self.conds
                .set(T::RollingRestart, true, "RestartRequested", "");
        }
        let all_ready = self
            .obs
            .pods
            .iter()
            .filter(|p| !p.terminating)
            .all(PodObs::ready)
            && self.obs.pods.iter().all(|p| !p.terminating);
        if quiet && all_ready {
            self.delete_pod(&pod);
            self.plan.event(
                EventType::Normal,
                "RestartingPod",
                format!("recreating {pod} with the current pod template"),
            );
            return;
        }
        let down: Vec<String> = self
            .obs
            .pods
            .iter()
            .filter(|p| !p.terminating && self.kept(p) && !p.ready())
            .map(|p| p.name.clone())
            .collect();
        let none_terminating = self.obs.pods.iter().all(|p| !p.terminating);
        if calm
            && none_terminating
            && !down.is_empty()
            && down.iter().all(|d| outdated_all.contains(d))
        {
            let pod = down[0].clone();
            self.delete_pod(&pod);
            self.plan.event(
                EventType::Warning,
                "RecreatingDownPod",
                format!("{pod} is down with an outdated pod template; recreating it"),
            );
        }
    }

    fn stopped_status(&mut self) {
        self.pending = !self.obs.pods.is_empty();
        match (
            &self.dc.restore_stop,
            self.dc.obj.spec.stopped == Some(true),
        ) {
            (Some(job), false) => self.conds.set(
                T::Stopped,
                true,
                "StoppedForRestore",
                format!("MedusaRestoreJob {job} restores the datacenter's data"),
            ),
            _ => self
                .conds
                .set(T::Stopped, true, "StoppedByUser", "spec.stopped is true"),
        }
        self.conds
            .set(T::Ready, false, "Stopped", "the datacenter is stopped");
        self.conds.set(T::Resuming, false, "", "");
        for t in [
            T::ScalingUp,
            T::ScalingDown,
            T::Updating,
            T::RollingRestart,
            T::ReplacingNodes,
            T::Decommission,
        ] {
            self.conds.set(t, false, "", "");
        }
        if self.dc.prev_true(T::Initialized) {
            self.conds.set(T::Initialized, true, "", "");
        }
    }

    /// Ready, Initialized and Resuming from the pods' readiness.
    fn readiness(&mut self) {
        let expected: usize = self.dc.racks.iter().map(|r| r.desired).sum();
        let ready = self.obs.pods.iter().filter(|p| p.ready()).count();
        let all = self.dc.racks.iter().all(|rack| {
            (0..rack.desired).all(|i| {
                self.obs
                    .live_pod(&format!("{}-{i}", rack.sts))
                    .is_some_and(PodObs::ready)
            })
        });
        if all {
            self.conds.set(T::Ready, true, "AllNodesReady", "");
            self.conds.set(T::Initialized, true, "", "");
            self.conds.set(T::Resuming, false, "", "");
        } else {
            if self.conds.get(T::Ready).is_none() {
                let mut message = format!("{ready} of {expected} nodes ready");
                for w in &self.waits {
                    message.push_str("; ");
                    message.push_str(w);
                }
                self.conds.set(T::Ready, false, "NodesNotReady", message);
            }
            self.pending = true;
            if self.dc.prev_true(T::Initialized) {
                self.conds.set(T::Initialized, true, "", "");
            }
            if self.dc.prev_true(T::Stopped) || self.dc.prev_true(T::Resuming) {
                self.conds
                    .set(T::Resuming, true, "Resuming", "nodes are starting again");
            }
        }
    }

    /// `nodeStatuses`: host id and address of every ready node from the ring; entries of
    /// pods that aren't ready (or are being replaced) keep their recorded values.
    fn node_statuses(&mut self) {
        let replacing = self.dc.replacements();
        let since = self.dc.prev_transition_ms(T::ReplacingNodes).unwrap_or(0);
        let mut out: BTreeMap<String, Value> = BTreeMap::new();
        // A recorded node stays while its pod exists or its StatefulSet may recreate it
        // (the old address is what a replacement needs).
        let expected = |name: &str| {
            self.dc.racks.iter().any(|r| {
                let n = self
                    .obs
                    .sts
                    .get(&r.sts)
                    .map_or(r.desired, |l| l.replicas.max(r.desired));
                name.strip_prefix(&format!("{}-", r.sts))
                    .and_then(|o| o.parse::<usize>().ok())
                    .is_some_and(|o| o < n)
            })
        };
        for (name, s) in self.dc.status.node_statuses.iter().flatten() {
            if self.obs.pod(name).is_some() || expected(name) {
                out.insert(name.clone(), serde_json::to_value(s).unwrap_or_default());
            }
        }
        for p in self.obs.pods.iter().filter(|p| p.ready()) {
            if replacing.contains(&p.name)
                && self.dc.prev_true(T::ReplacingNodes)
                && p.created_ms.is_none_or(|c| c < since)
            {
                continue;
            }
            let entry = self.obs.ring_entry(p.ip.as_deref(), None);
            let mut v = json!({"rack": p.rack});
            if let Some(ip) = &p.ip {
                v["ip"] = json!(ip);
            }
            match entry.and_then(|e| e.host_id.clone()) {
                Some(h) => v["hostID"] = json!(h),
                None => {
                    if let Some(h) = self.dc.recorded(&p.name).and_then(|r| r.host_id.clone()) {
                        v["hostID"] = json!(h);
                    }
                }
            }
            out.insert(p.name.clone(), v);
        }
        self.node_statuses = out;
    }

    fn write_status(&mut self) {
        let prev = &self.dc.status;
        let mut status = serde_json::to_value(prev).unwrap_or_else(|_| json!({}));
        status["conditions"] = self.conds.to_json();
        status["observedGeneration"] = json!(self.dc.generation);
        status["datacenterName"] = json!(self.dc.dc_name());
        let progress = if self.pending {
            k8ssandra_api::cassandra::PROGRESS_UPDATING
        } else {
            k8ssandra_api::cassandra::PROGRESS_READY
        };
        status["cassandraOperatorProgress"] = json!(progress);
        // For `kubectl get cassdc` (its Ready column).
        status["readyNodes"] = json!(self.obs.pods.iter().filter(|p| p.ready()).count());
        status["nodeStatuses"] = json!(self.node_statuses);
        if let Some(t) = &self.last_started {
            status["lastServerNodeStarted"] = json!(t);
        }
        status["failedStarts"] = json!(self.failed_starts);
        if let Some(obj) = status.as_object_mut() {
            if self.failed_starts.is_empty() {
                obj.remove("failedStarts");
            }
            if self.node_statuses.is_empty() {
                obj.remove("nodeStatuses");
            }
            if self.dc.status.node_replacements.is_none() {
                obj.remove("nodeReplacements");
            }
        }
        self.plan.status = Some(status.to_string());
    }
}

/// Whether an observation error (the host's wording, `wit/policy.wit` `node-state`) means
/// the management API runs but is broken: it answered an HTTP error or timed out. A
/// refused connection is a pod whose API is not up yet, which is the normal start-up.
fn management_api_broken(error: &str) -> bool {
    // The host's refusal to speak to a TLS pod (the client Secret of
    // `managementApiAuth.manual` missing or unusable) is no API still starting: it lasts
    // until the user fixes the Secret, and the message names it.
    error.contains(" answered HTTP ")
        || error.contains(": timed out")
        || error.starts_with(MANAGEMENT_API_TLS_REFUSED)
}

/// How the host's error for a pod it will not call over TLS begins.
const MANAGEMENT_API_TLS_REFUSED: &str = "management API TLS configuration:";

fn sdk_log_warn(message: &str) {
    k8ssandra_policy_sdk::log(k8ssandra_policy_sdk::Level::Warn, message);
}

/// Names of the derived objects, for tests and docs.
pub fn child_names(dc: &Dc) -> Vec<String> {
    let mut out: Vec<String> = dc.racks.iter().map(|r| r.sts.clone()).collect();
    out.push(names::datacenter_service_name(&dc.cluster, dc.name()));
    out.push(names::seed_service_name(&dc.cluster));
    out.push(names::all_pods_service_name(&dc.cluster, dc.name()));
    out.push(names::additional_seed_service_name(&dc.cluster, dc.name()));
    out.push(names::pdb_name(dc.name()));
    out
}
