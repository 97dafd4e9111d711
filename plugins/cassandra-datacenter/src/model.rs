//! What the policy knows for one reconcile: the datacenter (spec and previous status, with
//! derived names), and what it observes (StatefulSets, pods, claims, node states, the ring).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::storage::v1::StorageClass;
use k8ssandra_api::cassandra::{
    CassandraDatacenter, CassandraDatacenterStatus, DatacenterConditionType, Rack, ServerType,
};
use k8ssandra_api::labels::{CLUSTER_LABEL, DATACENTER_LABEL, RACK_LABEL, SEED_NODE_LABEL};
use k8ssandra_api::medusa::{MedusaRestoreJob, RESTORE_PHASE_STOP};
use k8ssandra_api::names::{self, clean_label_value, cleanup_for_kubernetes};
use k8ssandra_policy_sdk::{NodeState, Outcome, PolicyError, Snapshot, error};
use serde_json::Value;

use crate::TEMPLATE_HASH_ANNOTATION;

/// Marks the StorageClass used by claims that name none.
pub const DEFAULT_STORAGE_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";
use crate::util::parse_rfc3339;

/// One rack with its share of the nodes.
#[derive(Clone, Debug)]
pub struct RackPlan {
    pub index: usize,
    pub rack: Rack,
    /// Value of the rack label (the rack name, cleaned for a label value).
    pub label: String,
    pub sts: String,
    /// Nodes the spec wants in this rack.
    pub desired: usize,
    /// Its first `seeds` pods (by ordinal) are seeds.
    pub seeds: usize,
}

/// Seeds of each rack, as upstream counts them: three per datacenter (every node when there
/// are fewer), spread over the racks; one per rack when there are more than three racks.
pub fn seeds_per_rack(sizes: &[usize]) -> Vec<usize> {
    let mut seeds = vec![0; sizes.len()];
    if sizes.len() > 3 {
        for (s, size) in seeds.iter_mut().zip(sizes) {
            *s = (*size).min(1);
        }
        return seeds;
    }
    let mut left = sizes.iter().sum::<usize>().min(3);
    while left > 0 {
        let before = left;
        for (s, size) in seeds.iter_mut().zip(sizes) {
            if left > 0 && *s < *size {
                *s += 1;
                left -= 1;
            }
        }
        if left == before {
            break;
        }
    }
    seeds
}

/// The unfinished MedusaRestoreJob of this datacenter (same namespace, `spec.cassandraDatacenter`
/// its object name) in the phase that stops it, by name (the first, should there be two).
fn restore_stop(snapshot: &Snapshot, dc: &CassandraDatacenter) -> Option<String> {
    let mut jobs: Vec<String> = snapshot
        .related_by_kind::<MedusaRestoreJob>("MedusaRestoreJob")
        .into_iter()
        .filter(|(c, _)| *c == snapshot.parent.cluster)
        .map(|(_, j)| j)
        .filter(|j| {
            j.metadata.namespace == dc.metadata.namespace
                && Some(j.spec.cassandra_datacenter.as_str()) == dc.metadata.name.as_deref()
                && j.metadata.deletion_timestamp.is_none()
                && j.status.as_ref().is_some_and(|s| {
                    s.finish_time.is_none() && s.phase.as_deref() == Some(RESTORE_PHASE_STOP)
                })
        })
        .filter_map(|j| j.metadata.name)
        .collect();
    jobs.sort();
    jobs.into_iter().next()
}

/// The parent datacenter with everything derived from it.
pub struct Dc {
    pub obj: CassandraDatacenter,
    pub namespace: String,
    pub cluster: String,
    pub generation: i64,
    pub status: CassandraDatacenterStatus,
    pub racks: Vec<RackPlan>,
    /// The MedusaRestoreJob that has this datacenter stopped for its restore, if one does:
    /// the datacenter stops without its spec being touched, and resumes when the job moves
    /// on (or is deleted).
    pub restore_stop: Option<String>,
}

impl Dc {
    pub fn parse(snapshot: &Snapshot) -> Result<Self, PolicyError> {
        let obj: CassandraDatacenter = snapshot.parent()?;
        if obj.metadata.name.as_deref().unwrap_or_default().is_empty() {
            return Err(error("CassandraDatacenter has no name"));
        }
        let namespace = obj.metadata.namespace.clone().unwrap_or_default();
        let cluster = obj.spec.cluster_name.clone();
        let generation = obj.metadata.generation.unwrap_or_default();
        let status = obj.status.clone().unwrap_or_default();
        let racks = obj.racks();
        let size = usize::try_from(obj.spec.size.max(0)).unwrap_or_default();
        let split = names::split_racks(size, racks.len());
        let seeds = seeds_per_rack(&split);
        let racks = racks
            .into_iter()
            .zip(split)
            .zip(seeds)
            .enumerate()
            .map(|(index, ((rack, desired), seeds))| RackPlan {
                index,
                label: clean_label_value(&rack.name),
                sts: obj.sts_name(&rack.name),
                rack,
                desired,
                seeds,
            })
            .collect();
        let restore_stop = restore_stop(snapshot, &obj);
        Ok(Dc {
            obj,
            namespace,
            cluster,
            generation,
            status,
            racks,
            restore_stop,
        })
    }

    pub fn name(&self) -> &str {
        self.obj.metadata.name.as_deref().unwrap_or_default()
    }

    /// The datacenter's name inside Cassandra.
    pub fn dc_name(&self) -> &str {
        self.obj.datacenter_name()
    }

    pub fn server_type(&self) -> ServerType {
        self.obj.spec.server_type
    }

    pub fn stopped(&self) -> bool {
        self.obj.spec.stopped == Some(true) || self.restore_stop.is_some()
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.obj
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .map(String::as_str)
    }

    pub fn annotation_true(&self, key: &str) -> bool {
        self.annotation(key) == Some("true")
    }

    /// `cluster` and `datacenter` labels: the selector of everything in this datacenter.
    pub fn dc_labels(&self) -> BTreeMap<String, String> {
        self.obj.datacenter_labels()
    }

    pub fn cluster_label(&self) -> String {
        clean_label_value(&self.cluster)
    }

    pub fn rack_labels(&self, rack: &RackPlan) -> BTreeMap<String, String> {
        let mut l = self.dc_labels();
        l.insert(RACK_LABEL.into(), rack.label.clone());
        l
    }

    pub fn cleaned_cluster(&self) -> String {
        cleanup_for_kubernetes(&self.cluster)
    }

    pub fn prev_true(&self, t: DatacenterConditionType) -> bool {
        self.status.is_true(t)
    }

    /// When condition `t` last changed, in Unix milliseconds.
    pub fn prev_transition_ms(&self, t: DatacenterConditionType) -> Option<u64> {
        let c = self.status.condition(t)?;
        let time = c.last_transition_time.as_ref()?;
        let v = serde_json::to_value(time).ok()?;
        parse_rfc3339(v.as_str()?)
    }

    /// Whether a condition exists with the given status in the previous status.
    pub fn deleting(&self) -> bool {
        self.obj.metadata.deletion_timestamp.is_some()
    }

    /// Recorded node status (host id, ip) of a pod.
    pub fn recorded(&self, pod: &str) -> Option<&k8ssandra_api::cassandra::CassandraNodeStatus> {
        self.status.node_statuses.as_ref()?.get(pod)
    }

    pub fn replacements(&self) -> Vec<String> {
        self.status.node_replacements.clone().unwrap_or_default()
    }
}

/// One Cassandra pod of this datacenter as observed.
#[derive(Clone, Debug)]
pub struct PodObs {
    pub name: String,
    pub rack: String,
    pub ordinal: u32,
    pub uid: String,
    pub ip: Option<String>,
    /// Labelled `seed-node: "true"`: the seed Service (and so every node's seed list)
    /// includes it.
    pub seed: bool,
    /// Whether the pod carries the seed label at all (any value).
    pub seed_labelled: bool,
    pub terminating: bool,
    pub created_ms: Option<u64>,
    pub template_hash: Option<String>,
    pub node: Option<NodeState>,
}

impl PodObs {
    /// The management API answers: Cassandra can be started (or runs).
    pub fn mgmt_up(&self) -> bool {
        self.node.as_ref().is_some_and(|n| n.reachable && n.alive)
    }

    /// Cassandra is up and serving (NORMAL).
    pub fn ready(&self) -> bool {
        !self.terminating && self.node.as_ref().is_some_and(|n| n.reachable && n.ready)
    }
}

/// Pods named by the `replacenode` job a CassandraTask of this datacenter is running: the
/// task is started and unfinished, its current job (`job <i>/<n>` in its Running
/// condition, as the cassandra-task policy writes it) is that replacenode, and the pod's
/// status there is RUNNING. Such a request is handled like one in `spec.replaceNodes`.
fn task_replacements(snapshot: &Snapshot, dc: &Dc) -> Vec<String> {
    use k8ssandra_api::control::{CassandraCommand, CassandraTask, PodProcessingPhase};
    let mut out = Vec::new();
    for obj in snapshot
        .related
        .iter()
        .filter(|o| o.cluster.is_empty() && o.kind().as_deref() == Some("CassandraTask"))
    {
        let Ok(task) = obj.parse::<CassandraTask>() else {
            continue;
        };
        let ns = task.metadata.namespace.clone().unwrap_or_default();
        let Some(target) = task.spec.datacenter.as_ref() else {
            continue;
        };
        let target_ns = target.namespace.clone().filter(|n| !n.is_empty());
        if ns != dc.namespace
            || target.name.as_deref() != Some(dc.name())
            || target_ns.is_some_and(|n| n != dc.namespace)
        {
            continue;
        }
        let Some(status) = task.status.as_ref() else {
            continue;
        };
        let conditions = status.conditions.as_deref().unwrap_or_default();
        let is_true = |t: &str| {
            conditions
                .iter()
                .any(|c| c.type_ == t && c.status == "True")
        };
        if status.start_time.is_none() || is_true("Complete") || is_true("Failed") {
            continue;
        }
        let current = conditions
            .iter()
            .find(|c| c.type_ == "Running" && c.status == "True")
            .and_then(|c| c.message.strip_prefix("job "))
            .and_then(|m| m.split('/').next())
            .and_then(|i| i.parse::<usize>().ok())
            .and_then(|i| i.checked_sub(1));
        let jobs = task.spec.template.jobs.as_deref().unwrap_or_default();
        let Some(job) = current.and_then(|i| jobs.get(i)) else {
            continue;
        };
        if job.command != CassandraCommand::Replacenode {
            continue;
        }
        let Some(pod) = job.args.as_ref().and_then(|a| a.pod_name.clone()) else {
            continue;
        };
        let running = status
            .pod_statuses
            .as_ref()
            .and_then(|p| p.get(&pod))
            .is_some_and(|p| p.status == PodProcessingPhase::Running);
        if running && !out.contains(&pod) {
            out.push(pod);
        }
    }
    out.sort();
    out
}

/// One entry of the management API's `metadata/endpoints` answer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Endpoint {
    pub ip: String,
    pub host_id: Option<String>,
    /// First word of STATUS: `NORMAL`, `BOOT`, `BOOT_REPLACE`, `LEAVING`, `LEFT`, `MOVING`.
    pub status: String,
    pub dc: String,
    pub rack: String,
    pub load: f64,
    /// Gossip's failure detector says the node is up (`IS_ALIVE`; taken as up when the
    /// answer does not say).
    pub alive: bool,
}

impl Endpoint {
    /// A range movement: Cassandra refuses to bootstrap another node while one is in
    /// progress (consistent range movement).
    pub fn moving(&self) -> bool {
        matches!(
            self.status.as_str(),
            "BOOT" | "BOOT_REPLACE" | "JOINING" | "LEAVING" | "MOVING"
        )
    }

    /// A token owner that gossip reports down: Cassandra refuses to bootstrap, replace or
    /// decommission a node of its datacenter while such a replica is missing (the data
    /// could not be moved consistently).
    pub fn down_replica(&self) -> bool {
        !self.alive && matches!(self.status.as_str(), "NORMAL" | "LEAVING")
    }
}

/// Parses `{"entity":[{"ENDPOINT_IP":..,"HOST_ID":..,"STATUS":..},..]}`.
pub fn parse_endpoints(json: &str) -> Option<Vec<Endpoint>> {
    let v: Value = serde_json::from_str(json).ok()?;
    let entity = v.get("entity")?.as_array()?;
    let s = |e: &Value, k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
    Some(
        entity
            .iter()
            .filter_map(|e| {
                let ip = s(e, "ENDPOINT_IP")?;
                let status = s(e, "STATUS")
                    .unwrap_or_default()
                    .split(',')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let load = match e.get("LOAD") {
                    Some(Value::String(l)) => l.parse().unwrap_or(0.0),
                    Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
                    _ => 0.0,
                };
                Some(Endpoint {
                    ip,
                    host_id: s(e, "HOST_ID"),
                    status,
                    dc: s(e, "DC").unwrap_or_default(),
                    rack: s(e, "RACK").unwrap_or_default(),
                    load,
                    alive: match e.get("IS_ALIVE") {
                        Some(Value::String(a)) => a != "false",
                        Some(Value::Bool(a)) => *a,
                        _ => true,
                    },
                })
            })
            .collect(),
    )
}

/// Live StatefulSet of a rack.
#[derive(Clone, Debug)]
pub struct StsObs {
    pub replicas: usize,
    /// `spec.volumeClaimTemplates` as stored: immutable, so a plan that must not change
    /// them yet repeats them.
    pub claim_templates: Value,
    /// Requested size of the data volume claim template, in bytes.
    pub data_claim_bytes: Option<f64>,
    /// Deleted, waiting for the garbage collector (orphaning its pods).
    pub deleting: bool,
    pub annotations: BTreeMap<String, String>,
}

/// A StorageClass, as far as volume expansion goes.
#[derive(Clone, Debug, Default)]
pub struct StorageClassObs {
    pub allow_expansion: bool,
    pub default: bool,
}

/// Everything observed about this datacenter.
pub struct Observed {
    /// Pods of this datacenter, sorted by name.
    pub pods: Vec<PodObs>,
    /// Whether some pod of the same Cassandra cluster (any datacenter in the namespace) is
    /// ready, and whether some ready one is a seed.
    pub cluster_any_ready: bool,
    pub cluster_seed_ready: bool,
    /// Other datacenters (label values) of the same cluster with pods in this namespace.
    pub other_dcs: Vec<String>,
    /// The ring as seen by one ready node of the cluster; None when no node could tell.
    pub ring: Option<Vec<Endpoint>>,
    pub sts: BTreeMap<String, StsObs>,
    /// Names of the claims of this datacenter.
    pub pvcs: Vec<String>,
    /// Size of each claim, by name (its capacity, else its request).
    pub pvc_sizes: BTreeMap<String, f64>,
    /// `spec.resources.requests.storage` of each claim, in bytes.
    pub pvc_requests: BTreeMap<String, f64>,
    /// Claims whose volume is being expanded (`Resizing` or `FileSystemResizePending`).
    pub pvc_resizing: Vec<String>,
    /// StorageClasses by name.
    pub storage_classes: BTreeMap<String, StorageClassObs>,
    pub results: BTreeMap<String, (Outcome, u64)>,
    /// Pods whose node a running CassandraTask `replacenode` job asks to replace.
    pub task_replacements: Vec<String>,
}

impl Observed {
    pub fn new(snapshot: &Snapshot, dc: &Dc) -> Self {
        let cluster_label = dc.cluster_label();
        let dc_label = clean_label_value(dc.name());
        let nodes: BTreeMap<&str, &NodeState> = snapshot
            .nodes
            .iter()
            .filter(|n| n.node.namespace == dc.namespace || n.node.namespace.is_empty())
            .map(|n| (n.node.pod.as_str(), n))
            .collect();
        let mut pods = Vec::new();
        let mut cluster_any_ready = false;
        let mut cluster_seed_ready = false;
        let mut other_dcs: Vec<String> = Vec::new();
        let mut ring_sources: Vec<(&str, &str)> = Vec::new();
        // The slim view: a pod's spec is most of its JSON and nothing here reads it.
        for (_, mut pod) in snapshot.pods() {
            let labels = pod.metadata.labels.take().unwrap_or_default();
            let meta = &pod.metadata;
            if meta.namespace.as_deref().is_some_and(|n| n != dc.namespace) {
                continue;
            }
            if labels.get(CLUSTER_LABEL) != Some(&cluster_label) {
                continue;
            }
            let name = meta.name.clone().unwrap_or_default();
            let node = nodes.get(name.as_str()).map(|n| (*n).clone());
            let seed = labels.get(SEED_NODE_LABEL).is_some_and(|v| v == "true");
            let ready = meta.deletion_timestamp.is_none()
                && node.as_ref().is_some_and(|n| n.reachable && n.ready);
            cluster_any_ready |= ready;
            cluster_seed_ready |= ready && seed;
            if let Some(n) = nodes.get(name.as_str())
                && let Some(e) = n.endpoints.as_deref()
            {
                ring_sources.push((n.node.pod.as_str(), e));
            }
            if labels.get(DATACENTER_LABEL) != Some(&dc_label) {
                if let Some(other) = labels.get(DATACENTER_LABEL)
                    && !other_dcs.contains(other)
                {
                    other_dcs.push(other.clone());
                }
                continue;
            }
            let ordinal = name
                .rsplit('-')
                .next()
                .and_then(|o| o.parse().ok())
                .unwrap_or(0);
            let status = pod.status.as_ref();
            pods.push(PodObs {
                rack: labels.get(RACK_LABEL).cloned().unwrap_or_default(),
                ordinal,
                uid: meta.uid.clone().unwrap_or_default(),
                ip: status
                    .and_then(|s| s.pod_ip.clone())
                    .filter(|ip| !ip.is_empty()),
                seed,
                seed_labelled: labels.contains_key(SEED_NODE_LABEL),
                terminating: meta.deletion_timestamp.is_some(),
                created_ms: meta
                    .creation_timestamp
                    .as_ref()
                    .and_then(|t| serde_json::to_value(t).ok())
                    .and_then(|v| v.as_str().and_then(parse_rfc3339)),
                template_hash: meta
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(TEMPLATE_HASH_ANNOTATION).cloned()),
                node,
                name,
            });
        }
        pods.sort_by(|a, b| a.name.cmp(&b.name));
        ring_sources.sort();
        let ring = ring_sources.iter().find_map(|(_, e)| parse_endpoints(e));

        // Claim templates as stored, not through the typed model (which would add fields).
        let raw_claims: BTreeMap<String, Value> = snapshot
            .children
            .iter()
            .filter(|c| c.kind().as_deref() == Some("StatefulSet"))
            .filter_map(|c| {
                let v = c.value().ok()?;
                Some((c.name()?, v.pointer("/spec/volumeClaimTemplates")?.clone()))
            })
            .collect();
        let sts = snapshot
            .children_of::<StatefulSet>()
            .into_iter()
            .filter_map(|(_, s)| {
                let name = s.metadata.name.clone()?;
                let spec = s.spec.as_ref()?;
                let claim_templates = raw_claims.get(&name).cloned().unwrap_or(Value::Null);
                let data_claim_bytes = spec
                    .volume_claim_templates
                    .iter()
                    .flatten()
                    .find(|c| c.metadata.name.as_deref() == Some(crate::objects::DATA_VOLUME))
                    .and_then(|c| c.spec.as_ref()?.resources.as_ref()?.requests.as_ref())
                    .and_then(|r| r.get("storage"))
                    .and_then(|q| crate::util::quantity_bytes(&q.0));
                Some((
                    name,
                    StsObs {
                        replicas: spec.replicas.unwrap_or(1).max(0) as usize,
                        claim_templates,
                        data_claim_bytes,
                        deleting: s.metadata.deletion_timestamp.is_some(),
                        annotations: s.metadata.annotations.clone().unwrap_or_default(),
                    },
                ))
            })
            .collect();

        let mut pvcs = Vec::new();
        let mut pvc_sizes = BTreeMap::new();
        let mut pvc_requests = BTreeMap::new();
        let mut pvc_resizing = Vec::new();
        for (_, pvc) in snapshot.related_of::<PersistentVolumeClaim>() {
            let meta = &pvc.metadata;
            if meta.namespace.as_deref().is_some_and(|n| n != dc.namespace) {
                continue;
            }
            let labels = meta.labels.clone().unwrap_or_default();
            if labels.get(CLUSTER_LABEL) != Some(&cluster_label)
                || labels.get(DATACENTER_LABEL) != Some(&dc_label)
            {
                continue;
            }
            let Some(name) = meta.name.clone() else {
                continue;
            };
            let size = pvc
                .status
                .as_ref()
                .and_then(|s| s.capacity.as_ref())
                .and_then(|c| c.get("storage"))
                .or_else(|| {
                    pvc.spec
                        .as_ref()
                        .and_then(|s| s.resources.as_ref())
                        .and_then(|r| r.requests.as_ref())
                        .and_then(|r| r.get("storage"))
                })
                .and_then(|q| crate::util::quantity_bytes(&q.0));
            if let Some(size) = size {
                pvc_sizes.insert(name.clone(), size);
            }
            let requested = pvc
                .spec
                .as_ref()
                .and_then(|s| s.resources.as_ref())
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("storage"))
                .and_then(|q| crate::util::quantity_bytes(&q.0));
            if let Some(r) = requested {
                pvc_requests.insert(name.clone(), r);
            }
            let resizing = pvc
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        (c.type_ == "Resizing" || c.type_ == "FileSystemResizePending")
                            && c.status == "True"
                    })
                });
            if resizing {
                pvc_resizing.push(name.clone());
            }
            pvcs.push(name);
        }
        pvcs.sort();

        let storage_classes = snapshot
            .related_of::<StorageClass>()
            .into_iter()
            .filter_map(|(_, sc)| {
                let default = sc
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(DEFAULT_STORAGE_CLASS_ANNOTATION))
                    .is_some_and(|v| v == "true");
                Some((
                    sc.metadata.name.clone()?,
                    StorageClassObs {
                        allow_expansion: sc.allow_volume_expansion == Some(true),
                        default,
                    },
                ))
            })
            .collect();

        let mut results = BTreeMap::new();
        for r in &snapshot.results {
            let newer = results
                .get(&r.id)
                .is_none_or(|(_, at): &(Outcome, u64)| r.at_ms >= *at);
            if newer {
                results.insert(r.id.clone(), (r.outcome.clone(), r.at_ms));
            }
        }

        Observed {
            pods,
            cluster_any_ready,
            cluster_seed_ready,
            other_dcs: {
                other_dcs.sort();
                other_dcs
            },
            ring,
            sts,
            pvcs,
            pvc_sizes,
            pvc_requests,
            pvc_resizing,
            storage_classes,
            results,
            task_replacements: task_replacements(snapshot, dc),
        }
    }

    pub fn pod(&self, name: &str) -> Option<&PodObs> {
        self.pods.iter().find(|p| p.name == name)
    }

    /// The live (non-terminating) pod with this name.
    pub fn live_pod(&self, name: &str) -> Option<&PodObs> {
        self.pods.iter().find(|p| p.name == name && !p.terminating)
    }

    pub fn result(&self, id: &str) -> Option<&(Outcome, u64)> {
        self.results.get(id)
    }

    /// The ring entry of a node, by its current IP or its recorded host id.
    pub fn ring_entry(&self, ip: Option<&str>, host_id: Option<&str>) -> Option<&Endpoint> {
        let ring = self.ring.as_ref()?;
        ring.iter()
            .find(|e| ip.is_some_and(|ip| e.ip == ip))
            .or_else(|| {
                ring.iter()
                    .find(|e| host_id.is_some() && e.host_id.as_deref() == host_id)
            })
    }
}
