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
    /// The `cassandra.datastax.com/cluster` label: which simulated ring the pod's node lives
    /// in, and what the seed Service selects on.
    pub cluster: String,
    pub datacenter: String,
    pub rack: String,
    /// The `cassandra.datastax.com/seed-node=true` label. With a [`NodeConfig`] it only decides
    /// whether `<cluster>-seed-service` resolves to this pod; without one it makes the node a
    /// seed directly.
    pub seed: bool,
    /// Cassandra version from the `cassandra` container's image tag, when it has one.
    pub server_version: Option<String>,
    /// The current `Ready` condition of the pod, as last observed (None: no such condition).
    pub observed_ready: Option<bool>,
    /// Names of the pod's container statuses, so a readiness patch can mark them ready.
    pub container_statuses: Vec<String>,
    /// The container statuses as last observed (readiness, started, running).
    #[serde(default)]
    pub containers: Vec<ContainerInfo>,
    /// The node's rendered configuration (`server-config-init`'s `CONFIG_FILE_DATA` and
    /// friends). None: a pod fed without one; its labels decide (cluster name, seed-ness).
    #[serde(default)]
    pub config: Option<NodeConfig>,
    /// Why the configuration could not be read (a Secret that is missing, invalid JSON):
    /// the node refuses to start while this is set.
    #[serde(default)]
    pub config_error: Option<String>,
    /// Annotation `sim.k8ssandra.io/mgmt-api-start-delay-ms`: overrides the configured delay
    /// between the pod getting its IP and its management API listening.
    #[serde(default)]
    pub mgmt_api_start_delay_ms: Option<u64>,
    /// The `cassandra` container's readinessProbe timing, used with
    /// [`ProbeTiming::PodSpec`].
    #[serde(default)]
    pub readiness_probe: Option<ProbeSpec>,
    /// ConfigMap (name, key) mounted as the metrics agent's configuration, read on every
    /// scrape of the node's metrics endpoint.
    #[serde(default)]
    pub metrics_config: Option<(String, String)>,
    /// Management API over mutual TLS (`managementApiAuth.manual`): None serves plain HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mgmt_tls: Option<crate::tls::MgmtTls>,
    /// The port of the pod's `medusa` container named `grpc` (50051 when unnamed): the
    /// simulated Medusa serves there. None: no `medusa` container.
    #[serde(default)]
    pub medusa_grpc_port: Option<u16>,
    /// The port of the `cassandra` container named `native`: the simulated CQL listener
    /// serves there. None: Cassandra's 9042.
    #[serde(default)]
    pub cql_port: Option<u16>,
    /// The restore the pod's `medusa-restore` init container would carry out (its env and
    /// `envFrom` ConfigMaps resolved when the pod was seen); None: no restore.
    #[serde(default)]
    pub restore: Option<crate::data::RestoreEnv>,
}

/// One container status of a pod, as observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInfo {
    pub name: String,
    pub ready: bool,
    pub started: bool,
    pub running: bool,
}

/// `initialDelaySeconds` / `periodSeconds` of a readinessProbe, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeSpec {
    pub initial_delay_ms: u64,
    pub period_ms: u64,
}

/// Annotation overriding the management API start delay of one pod (milliseconds).
pub const ANNOTATION_MGMT_API_START_DELAY: &str = "sim.k8ssandra.io/mgmt-api-start-delay-ms";

/// What a node reads from its rendered configuration, as the real node gets it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeConfig {
    /// `cluster-info.name`: cassandra.yaml's `cluster_name`.
    pub cluster_name: String,
    /// `cluster-info.seeds`: host names (Services) or addresses, resolved at start and at
    /// seeds reload.
    pub seeds: Vec<String>,
    /// `datacenter-info.name`.
    pub datacenter: Option<String>,
    /// `RACK_NAME`.
    pub rack: Option<String>,
    /// `PRODUCT_NAME`: cassandra, dse or hcd.
    pub server_type: String,
    /// `PRODUCT_VERSION`, else the image tag.
    pub server_version: Option<String>,
    /// The effective `num_tokens`: the version's default, or `cassandra-yaml`'s.
    pub num_tokens: usize,
    /// `-Dcassandra.replace_address_first_boot=` (or `replace_address`) in `JVM_EXTRA_OPTS`.
    pub replace_address_first_boot: Option<String>,
    /// False with `-Dcassandra.consistent.rangemovement=false` in `JVM_EXTRA_OPTS`.
    pub consistent_rangemovement: bool,
    /// `cassandra-yaml.authenticator`: CQL clients must log in when it is
    /// `PasswordAuthenticator` (or its class name).
    #[serde(default)]
    pub authenticator: Option<String>,
    /// `cassandra-yaml.authorizer`: with `CassandraAuthorizer`, only superusers may drop a
    /// keyspace they were not granted (the simulator models no grants).
    #[serde(default)]
    pub authorizer: Option<String>,
    /// `cassandra-yaml.client_encryption_options`: enabled and not optional, so the native
    /// port speaks only TLS (the simulator closes plain connections, as Cassandra does).
    #[serde(default)]
    pub client_encryption_required: bool,
}

impl NodeConfig {
    /// A configuration as a test would write it: Cassandra, the version's defaults.
    pub fn new(cluster_name: impl Into<String>, seeds: &[&str]) -> Self {
        NodeConfig {
            cluster_name: cluster_name.into(),
            seeds: seeds.iter().map(|s| s.to_string()).collect(),
            datacenter: None,
            rack: None,
            server_type: "cassandra".into(),
            server_version: None,
            num_tokens: default_num_tokens("cassandra", None),
            replace_address_first_boot: None,
            consistent_rangemovement: true,
            authenticator: None,
            authorizer: None,
            client_encryption_required: false,
        }
    }

    /// Reads the config builder's inputs: `CONFIG_FILE_DATA` (JSON), `PRODUCT_NAME`,
    /// `PRODUCT_VERSION` (falling back to `image_version`), `RACK_NAME`, and the cassandra
    /// container's `JVM_EXTRA_OPTS`.
    pub fn from_rendered(
        config_file_data: &str,
        product_name: Option<&str>,
        product_version: Option<&str>,
        image_version: Option<&str>,
        rack_name: Option<&str>,
        jvm_extra_opts: Option<&str>,
    ) -> Result<NodeConfig, String> {
        let doc: serde_json::Value = serde_json::from_str(config_file_data)
            .map_err(|e| format!("CONFIG_FILE_DATA is not JSON: {e}"))?;
        let text = |ptr: &str| {
            doc.pointer(ptr)
                .and_then(serde_json::Value::as_str)
                .map(str::to_string)
        };
        let cluster_name = text("/cluster-info/name")
            .filter(|s| !s.is_empty())
            .ok_or("CONFIG_FILE_DATA has no cluster-info.name")?;
        let seeds = text("/cluster-info/seeds")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let server_type = product_name
            .filter(|s| !s.is_empty())
            .unwrap_or("cassandra")
            .to_ascii_lowercase();
        let server_version = product_version
            .filter(|s| !s.is_empty())
            .or(image_version)
            .map(str::to_string);
        let num_tokens = match doc.pointer("/cassandra-yaml/num_tokens") {
            Some(v) => v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    format!("cassandra-yaml.num_tokens is not a positive number: {v}")
                })?,
            None => default_num_tokens(&server_type, server_version.as_deref()),
        };
        let opts: Vec<&str> = jvm_extra_opts
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        let prop = |name: &str| {
            let prefix = format!("-D{name}=");
            opts.iter()
                .rev()
                .find_map(|o| o.strip_prefix(prefix.as_str()))
                .map(str::to_string)
        };
        let replace_address_first_boot = prop("cassandra.replace_address_first_boot")
            .or_else(|| prop("cassandra.replace_address"))
            .filter(|s| !s.is_empty());
        let consistent_rangemovement = prop("cassandra.consistent.rangemovement")
            .is_none_or(|v| !v.eq_ignore_ascii_case("false"));
        Ok(NodeConfig {
            cluster_name,
            seeds,
            datacenter: text("/datacenter-info/name").filter(|s| !s.is_empty()),
            rack: rack_name.filter(|s| !s.is_empty()).map(str::to_string),
            server_type,
            server_version,
            num_tokens,
            replace_address_first_boot,
            consistent_rangemovement,
            authenticator: text("/cassandra-yaml/authenticator").filter(|s| !s.is_empty()),
            authorizer: text("/cassandra-yaml/authorizer").filter(|s| !s.is_empty()),
            client_encryption_required: {
                let flag = |k: &str| {
                    doc.pointer(&format!("/cassandra-yaml/client_encryption_options/{k}"))
                        .is_some_and(|v| {
                            v.as_bool() == Some(true)
                                || v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("true"))
                        })
                };
                flag("enabled") && !flag("optional")
            },
        })
    }
}

/// `num_tokens` when `cassandra-yaml` sets none: the image's cassandra.yaml. Cassandra 3.11
/// ships 256, 4.0 and later 16 (with `allocate_tokens_for_local_replication_factor: 3`),
/// HCD (Cassandra 5 based) 16; the config builder's DSE 6.8 definition has no default, so
/// DSE falls back to Cassandra's code default of one token.
pub fn default_num_tokens(server_type: &str, version: Option<&str>) -> usize {
    let major = version
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse::<u32>().ok());
    match server_type {
        "dse" => 1,
        "hcd" => 16,
        _ if major.is_some_and(|m| m < 4) => 256,
        _ => 16,
    }
}

impl PodInfo {
    /// A pod as a test would describe it: ready unknown, no container statuses, no rendered
    /// configuration (labels decide).
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
            containers: Vec::new(),
            config: None,
            config_error: None,
            mgmt_api_start_delay_ms: None,
            readiness_probe: None,
            metrics_config: None,
            mgmt_tls: None,
            medusa_grpc_port: None,
            restore: None,
            cql_port: None,
        }
    }

    /// The same pod with a `medusa` container serving gRPC on `port`.
    pub fn with_medusa(mut self, port: u16) -> Self {
        self.medusa_grpc_port = Some(port);
        self
    }

    /// The same pod serving its management API over mutual TLS.
    pub fn with_mgmt_tls(mut self, tls: crate::tls::MgmtTls) -> Self {
        self.mgmt_tls = Some(tls);
        self
    }

    /// The same pod with a rendered configuration.
    pub fn with_config(mut self, config: NodeConfig) -> Self {
        self.config = Some(config);
        self
    }
}

/// Changes fed to the simulator by a pod source (the Kubernetes watcher, or a test).
#[derive(Debug, Clone)]
// Events are few and short-lived; boxing would change the public API for no gain.
#[allow(clippy::large_enum_variant)]
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

/// How the kubelet-like prober times readiness probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ProbeTiming {
    /// Every `probe_period` from the moment the pod runs.
    #[default]
    Fixed,
    /// The `cassandra` container's own readinessProbe (`initialDelaySeconds`,
    /// `periodSeconds`); `probe_period` for pods without one.
    PodSpec,
}

/// Named sets of timing values (`POST /sim/config {"preset": ...}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// [`SimConfig::default`]'s timing.
    Default,
    /// Real pods' timing: see [`SimConfig::realistic`].
    Realistic,
}

/// Settings that can change while the simulator runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimConfig {
    /// Time from `lifecycle/start` to NORMAL (also for restarts of a bootstrapped node); a
    /// bootstrap adds `ring_delay` before it.
    #[serde(with = "duration_ms", rename = "bootstrap_delay_ms")]
    pub bootstrap_delay: Duration,
    /// Time from a decommission request to LEFT, after `ring_delay`.
    #[serde(with = "duration_ms", rename = "decommission_delay_ms")]
    pub decommission_delay: Duration,
    /// Time an asynchronous job (cleanup, rebuild, compaction, ...) stays WAITING.
    #[serde(with = "duration_ms", rename = "job_duration_ms")]
    pub job_duration: Duration,
    pub bootstrap_scope: BootstrapScope,
    /// Tokens of a new node whose pod has no [`NodeConfig`].
    pub num_tokens: usize,
    /// Release version reported when the pod's image carries none.
    pub default_server_version: String,
    /// Time from the pod getting its IP (Running) to its management API listening.
    #[serde(
        default = "default_mgmt_delay",
        with = "duration_ms",
        rename = "mgmt_api_start_delay_ms"
    )]
    pub mgmt_api_start_delay: Duration,
    /// Period of the simulated kubelet readiness probe.
    #[serde(
        default = "default_probe_period",
        with = "duration_ms",
        rename = "probe_period_ms"
    )]
    pub probe_period: Duration,
    #[serde(default)]
    pub probe_timing: ProbeTiming,
    /// Time until other nodes see a node's gossip state change.
    #[serde(
        default = "default_gossip_delay",
        with = "duration_ms",
        rename = "gossip_delay_ms"
    )]
    pub gossip_delay: Duration,
    /// Cassandra's RING_DELAY: the wait of a bootstrapping node before it streams, and of a
    /// decommissioning node after it announced LEAVING.
    #[serde(
        default = "default_ring_delay",
        with = "duration_ms",
        rename = "ring_delay_ms"
    )]
    pub ring_delay: Duration,
}

fn default_mgmt_delay() -> Duration {
    Duration::from_millis(2000)
}
fn default_probe_period() -> Duration {
    Duration::from_millis(1000)
}
fn default_gossip_delay() -> Duration {
    Duration::from_millis(200)
}
fn default_ring_delay() -> Duration {
    Duration::from_millis(500)
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
            mgmt_api_start_delay: default_mgmt_delay(),
            probe_period: default_probe_period(),
            probe_timing: ProbeTiming::Fixed,
            gossip_delay: default_gossip_delay(),
            ring_delay: default_ring_delay(),
        }
    }
}

impl SimConfig {
    /// Timing of real pods: the management API up ~5 s after the container starts, the
    /// pod's own readinessProbe timing, a gossip round of 1 s, RING_DELAY of 30 s, a
    /// bootstrap of 10 s and a decommission of 10 s (a small node's streaming).
    pub fn realistic() -> Self {
        let mut c = SimConfig::default();
        c.apply_preset(Preset::Realistic);
        c
    }

    /// Sets the timing values of a preset; rules and versions stay.
    pub fn apply_preset(&mut self, preset: Preset) {
        let base = match preset {
            Preset::Default => SimConfig::default(),
            Preset::Realistic => SimConfig {
                bootstrap_delay: Duration::from_secs(10),
                decommission_delay: Duration::from_secs(10),
                job_duration: Duration::from_secs(2),
                mgmt_api_start_delay: Duration::from_secs(5),
                probe_period: Duration::from_secs(10),
                probe_timing: ProbeTiming::PodSpec,
                gossip_delay: Duration::from_secs(1),
                ring_delay: Duration::from_secs(30),
                ..SimConfig::default()
            },
        };
        self.bootstrap_delay = base.bootstrap_delay;
        self.decommission_delay = base.decommission_delay;
        self.job_duration = base.job_duration;
        self.mgmt_api_start_delay = base.mgmt_api_start_delay;
        self.probe_period = base.probe_period;
        self.probe_timing = base.probe_timing;
        self.gossip_delay = base.gossip_delay;
        self.ring_delay = base.ring_delay;
    }
}

/// Partial update of [`SimConfig`] (`POST /sim/config`). A preset applies first, then the
/// other fields given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<Preset>,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mgmt_api_start_delay_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_period_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_timing: Option<ProbeTiming>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gossip_delay_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring_delay_ms: Option<u64>,
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
    /// cluster_name the node runs with (from its configuration, else its pod's label).
    #[serde(default)]
    pub cluster_name: String,
    /// Seed addresses as resolved at the last start or seeds reload.
    #[serde(default)]
    pub resolved_seeds: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyspaceView {
    pub name: String,
    /// As `ops/keyspace/replication` answers: `class` plus one entry per option.
    pub replication: BTreeMap<String, String>,
    /// Names of the keyspace's tables.
    #[serde(default)]
    pub tables: Vec<String>,
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
    /// What the simulated kubelet's last readiness probe found (None: not probed yet).
    #[serde(default)]
    pub probed_ready: Option<bool>,
    pub listening: bool,
    #[serde(default)]
    pub config: Option<NodeConfig>,
    #[serde(default)]
    pub config_error: Option<String>,
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
    /// role_drop, seeds_reload, fault, wipe, pod_added, pod_removed, keyspace_drop (CQL).
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
    /// When a job or a decommission ended, or a started node became NORMAL.
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
    /// Arrived over mutual TLS (the client's certificate verified against the pod's CA).
    #[serde(default)]
    pub tls: bool,
}

/// A request Cassandra would have refused or that breaks an operational rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub time: String,
    /// concurrent_bootstrap, concurrent_range_movement, no_live_seed,
    /// seed_bootstrap_into_data, cluster_name_mismatch, num_tokens_changed,
    /// bootstrap_replica_down, decommission_replica_down, wiped_without_replace,
    /// replace_unknown_address, replace_live_node, decommissioned_restart,
    /// cleanup_during_range_movement (see the crate's README).
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
