//! Public, serialisable types: what a pod source feeds in and what the control API shows.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Label naming the Cassandra cluster of a pod; pods without it are ignored.
pub const LABEL_CLUSTER: &str = "cassandra.datastax.com/cluster";
/// Label naming the datacenter of a pod.
pub const LABEL_DATACENTER: &str = "cassandra.datastax.com/datacenter";
/// Label naming the rack of a pod.
pub const LABEL_RACK: &str = "cassandra.datastax.com/rack";
/// Label marking a seed pod (`"true"`).
pub const LABEL_SEED: &str = "cassandra.datastax.com/seed-node";

/// Identity of a pod across Kubernetes clusters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PodKey {
    /// Kubernetes context the pod lives in.
    pub context: String,
    pub namespace: String,
    pub name: String,
}

impl PodKey {
    pub fn new(
        context: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        Self {
            context: context.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for PodKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.context, self.namespace, self.name)
    }
}

/// What the simulator needs to know about one Cassandra pod.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodInfo {
    pub key: PodKey,
    /// Changes when the pod is recreated under the same name.
    pub uid: String,
    /// `status.podIP`; no listener while it is empty.
    pub ip: Option<String>,
    pub cluster: String,
    pub datacenter: String,
    pub rack: String,
    pub seed: bool,
    /// Cassandra version from the `cassandra` container's image tag, when it has one.
    pub server_version: Option<String>,
    /// Current `Ready` condition of the pod, as last observed (None: no such condition).
    pub observed_ready: Option<bool>,
    /// Names of the pod's container statuses, so a readiness patch can mark them ready.
    pub container_statuses: Vec<String>,
}

impl PodInfo {
    /// A pod as a test would describe it: ready unknown, no container statuses.
    pub fn new(
        key: PodKey,
        ip: impl Into<String>,
        cluster: impl Into<String>,
        datacenter: impl Into<String>,
        rack: impl Into<String>,
        seed: bool,
    ) -> Self {
        let key_text = key.to_string();
        Self {
            key,
            uid: key_text,
            ip: Some(ip.into()),
            cluster: cluster.into(),
            datacenter: datacenter.into(),
            rack: rack.into(),
            seed,
            server_version: None,
            observed_ready: None,
            container_statuses: Vec::new(),
        }
    }
}

/// Changes fed to the simulator by a pod source (the Kubernetes watcher, or a test).
#[derive(Debug, Clone)]
pub enum PodEvent {
    Upsert(PodInfo),
    Delete(PodKey),
}

/// Cassandra's own view of itself (what `nodetool netstats` would call the mode), or DOWN when
/// the process does not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CassandraState {
    Down,
    Starting,
    Joining,
    Normal,
    Leaving,
    Left,
    Drained,
}

/// Which nodes a bootstrap must not overlap with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BootstrapScope {
    /// Cassandra's consistent range movement: one range movement at a time in the whole cluster.
    #[default]
    Cluster,
    /// Only within the datacenter of the starting node.
    Datacenter,
}

/// Settings that can change while the simulator runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimConfig {
    /// Time from `lifecycle/start` to NORMAL (also for restarts of a bootstrapped node).
    #[serde(with = "duration_ms", rename = "bootstrap_delay_ms")]
    pub bootstrap_delay: Duration,
    /// Time from a decommission request to LEFT.
    #[serde(with = "duration_ms", rename = "decommission_delay_ms")]
    pub decommission_delay: Duration,
    /// Time an asynchronous job (cleanup, rebuild, compaction, ...) stays WAITING.
    #[serde(with = "duration_ms", rename = "job_duration_ms")]
    pub job_duration: Duration,
    pub bootstrap_scope: BootstrapScope,
    pub num_tokens: usize,
    /// Release version reported when the pod's image carries none.
    pub default_server_version: String,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            bootstrap_delay: Duration::from_secs(2),
            decommission_delay: Duration::from_secs(2),
            job_duration: Duration::from_millis(500),
            bootstrap_scope: BootstrapScope::Cluster,
            num_tokens: 16,
            default_server_version: "4.1.5".to_string(),
        }
    }
}

/// Partial update of [`SimConfig`] (`POST /sim/config`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_delay_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decommission_delay_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_scope: Option<BootstrapScope>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_tokens: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_server_version: Option<String>,
}

/// Faults of one node or of every node of a Cassandra cluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// Fraction (0..=1) of management API requests answered with HTTP 500.
    #[serde(default)]
    pub error_rate: f64,
    /// Added before every management API answer.
    #[serde(default)]
    pub latency_ms: u64,
    /// The management API does not answer (its listener is closed) and Cassandra is down.
    #[serde(default)]
    pub dead: bool,
}

impl Fault {
    pub fn is_none(&self) -> bool {
        self == &Fault::default()
    }

    pub(crate) fn merge(&self, other: &Fault) -> Fault {
        Fault {
            error_rate: self.error_rate.max(other.error_rate),
            latency_ms: self.latency_ms + other.latency_ms,
            dead: self.dead || other.dead,
        }
    }
}

/// Which nodes a fault request applies to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultTarget {
    /// One pod; `context` and `namespace` may be left out when the name is unambiguous.
    Pod {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        namespace: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        context: Option<String>,
    },
    /// The pod currently holding this IP.
    Ip(String),
    /// Every node of a Cassandra cluster.
    Cluster(String),
}

impl FaultTarget {
    pub fn pod(name: impl Into<String>) -> Self {
        FaultTarget::Pod {
            name: name.into(),
            namespace: None,
            context: None,
        }
    }
}

/// `POST /sim/faults`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRequest {
    pub target: FaultTarget,
    /// Replaces the target's faults; absent with `clear` or `wipe` alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
    /// Removes the target's faults.
    #[serde(default)]
    pub clear: bool,
    /// One-shot: the node loses its data (identity), so it must be started with `replace_ip`.
    #[serde(default)]
    pub wipe: bool,
}

/// `POST /sim/keyspaces`: a user keyspace created behind the operator's back, as with cqlsh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyspaceRequest {
    pub cluster: String,
    pub name: String,
    /// Datacenter name to replication factor (NetworkTopologyStrategy).
    pub replication: BTreeMap<String, u32>,
}

/// One node of the ring, as the control API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    pub host_id: Option<String>,
    pub ip: Option<String>,
    pub datacenter: String,
    pub rack: String,
    pub seed: bool,
    /// The pod holding this node's data; None once its data was wiped.
    pub pod: Option<PodKey>,
    pub mgmt_api_up: bool,
    pub cassandra: CassandraState,
    /// STATUS the rest of the ring sees in gossip (NORMAL, BOOT, LEAVING, ...), if any.
    pub gossip_status: Option<String>,
    pub alive: bool,
    pub tokens: Vec<i64>,
    pub load_bytes: u64,
    pub schema_version: String,
    pub server_version: String,
    /// The node would pass its readiness probe.
    pub ready: bool,
    /// Lost its data and waits to be replaced: its old identity is still in the ring.
    pub wiped: bool,
    pub decommissioned: bool,
    pub fault: Fault,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyspaceView {
    pub name: String,
    /// As `ops/keyspace/replication` answers: `class` plus one entry per option.
    pub replication: BTreeMap<String, String>,
}

/// A role without its password: only whether one was set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleView {
    pub name: String,
    pub superuser: bool,
    pub login: bool,
    pub password_set: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    pub id: String,
    #[serde(rename = "type")]
    pub job_type: String,
    pub status: String,
    pub pod: Option<PodKey>,
    pub host_id: Option<String>,
    pub submit_time: String,
    pub end_time: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterView {
    pub name: String,
    pub schema_version: String,
    pub nodes: Vec<NodeView>,
    pub keyspaces: Vec<KeyspaceView>,
    pub roles: Vec<RoleView>,
    pub jobs: Vec<JobView>,
    pub fault: Fault,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodView {
    pub key: PodKey,
    pub ip: Option<String>,
    pub cluster: String,
    pub datacenter: String,
    pub rack: String,
    pub seed: bool,
    pub observed_ready: Option<bool>,
    pub desired_ready: bool,
    pub listening: bool,
}

/// `GET /sim/state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimState {
    pub config: SimConfig,
    pub clusters: Vec<ClusterView>,
    pub pods: Vec<PodView>,
}

impl SimState {
    pub fn cluster(&self, name: &str) -> Option<&ClusterView> {
        self.clusters.iter().find(|c| c.name == name)
    }

    /// The node held by the pod of this name (any context and namespace).
    pub fn node_of_pod(&self, pod_name: &str) -> Option<&NodeView> {
        self.clusters
            .iter()
            .flat_map(|c| c.nodes.iter())
            .find(|n| n.pod.as_ref().is_some_and(|p| p.name == pod_name))
    }
}

/// What happened, for `GET /sim/history`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub seq: u64,
    pub time: String,
    /// start, stop, drain, decommission, job, keyspace_create, keyspace_alter, role_create,
    /// role_drop, seeds_reload, fault, wipe, pod_added, pod_removed.
    pub action: String,
    pub cluster: String,
    pub pod: Option<PodKey>,
    pub ip: Option<String>,
    pub host_id: Option<String>,
    /// Set for starts that asked for a replacement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_type: Option<String>,
    /// accepted, refused, already-running, completed, error, ...
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// When a job or a decommission ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
}

/// One management-API request as it arrived (`GET /sim/requests`), so a test can see how
/// often and how far apart an operator calls a node. The query string is left out: role
/// creation carries a password there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestEntry {
    pub seq: u64,
    /// Arrival, in Unix milliseconds.
    pub at_ms: i64,
    pub pod: PodKey,
    pub method: String,
    pub path: String,
    /// The status answered; 0 when the client went away before the answer (it timed out).
    pub status: u16,
    /// A fault (error rate or latency) applied to the node when the request arrived.
    pub faulted: bool,
}

/// A request Cassandra would have refused or that breaks an operational rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub time: String,
    /// concurrent_bootstrap, no_seed, wiped_without_replace, replace_unknown_address,
    /// replace_live_node, decommissioned_restart, cleanup_during_range_movement.
    pub rule: String,
    pub cluster: String,
    pub pod: Option<PodKey>,
    pub message: String,
}

mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}
