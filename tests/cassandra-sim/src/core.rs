//! The simulated clusters: ring, gossip, keyspaces, roles, jobs, and the rules Cassandra enforces.
//!
//! Everything lives behind one mutex; no lock is held across an await. Operations that take
//! time (bootstrap, decommission, jobs) schedule a deferred action that checks the node's
//! generation first, so a stop or a pod deletion in between cancels it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::Utc;
use http::StatusCode;
use rand::Rng;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::model::*;

pub(crate) type NodeId = u64;

/// An answer of the management API.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: ReplyBody,
}

#[derive(Debug, Clone)]
pub(crate) enum ReplyBody {
    Empty,
    Text(String),
    Json(Value),
}

impl Reply {
    pub fn text(status: StatusCode, text: impl Into<String>) -> Self {
        Reply {
            status,
            body: ReplyBody::Text(text.into()),
        }
    }
    pub fn json(status: StatusCode, value: Value) -> Self {
        Reply {
            status,
            body: ReplyBody::Json(value),
        }
    }
    pub fn empty(status: StatusCode) -> Self {
        Reply {
            status,
            body: ReplyBody::Empty,
        }
    }
    fn ok() -> Self {
        Reply::text(StatusCode::OK, "OK")
    }
    fn error(text: impl Into<String>) -> Self {
        Reply::text(StatusCode::INTERNAL_SERVER_ERROR, text)
    }
    fn bad_request(text: impl Into<String>) -> Self {
        Reply::text(StatusCode::BAD_REQUEST, text)
    }
}

/// Asks the Kubernetes side to set a pod's readiness.
#[derive(Debug, Clone)]
pub(crate) struct ReadyPatch {
    pub key: PodKey,
    pub ready: bool,
    pub containers: Vec<ContainerPatch>,
}

/// One container status to set: its readiness, and whether it must be marked running.
#[derive(Debug, Clone)]
pub(crate) struct ContainerPatch {
    pub name: String,
    pub ready: bool,
    pub set_running: bool,
}

/// The readiness a container should show: the `cassandra` container follows the node, the
/// others (the system logger) are ready once running. Without a `cassandra` container every
/// container follows the node.
fn container_ready(name: &str, ready: bool, has_cassandra: bool) -> bool {
    !has_cassandra || name != "cassandra" || ready
}

fn needs_patch(entry: &PodEntry, ready: bool) -> bool {
    let info = &entry.info;
    let condition =
        // A pod with no Ready condition yet counts as not ready.
        (ready || info.observed_ready.is_some()) && info.observed_ready != Some(ready);
    let has_cassandra = info.containers.iter().any(|c| c.name == "cassandra");
    let containers = info.containers.iter().any(|c| {
        c.ready != container_ready(&c.name, ready, has_cassandra) || !c.started || !c.running
    });
    condition || containers
}

fn ready_patch(info: &PodInfo, ready: bool) -> ReadyPatch {
    let has_cassandra = info.containers.iter().any(|c| c.name == "cassandra");
    let containers = if info.containers.is_empty() {
        info.container_statuses
            .iter()
            .map(|name| ContainerPatch {
                name: name.clone(),
                ready,
                set_running: false,
            })
            .collect()
    } else {
        info.containers
            .iter()
            .map(|c| ContainerPatch {
                name: c.name.clone(),
                ready: container_ready(&c.name, ready, has_cassandra),
                set_running: !c.running,
            })
            .collect()
    };
    ReadyPatch {
        key: info.key.clone(),
        ready,
        containers,
    }
}

/// Asynchronous operations the management API can run as jobs.
#[derive(Debug, Clone)]
pub(crate) enum JobKind {
    Cleanup { keyspace: Option<String> },
    Rebuild { src_dc: Option<String> },
    Move { token: String },
    Compact { keyspace: Option<String> },
    Flush { keyspace: Option<String> },
    Scrub { keyspace: Option<String> },
    GarbageCollect { keyspace: Option<String> },
    UpgradeSstables { keyspace: Option<String> },
}

impl JobKind {
    /// The job type string the real executor reports.
    fn job_type(&self) -> &'static str {
        match self {
            JobKind::Cleanup { .. } => "CLEANUP",
            JobKind::Rebuild { .. } => "rebuild",
            JobKind::Move { .. } => "move",
            JobKind::Compact { .. } => "COMPACTION",
            JobKind::Flush { .. } => "FLUSH",
            JobKind::Scrub { .. } => "SCRUB",
            JobKind::GarbageCollect { .. } => "GARBAGE_COLLECT",
            JobKind::UpgradeSstables { .. } => "UPGRADE_SSTABLES",
        }
    }

    fn keyspace(&self) -> Option<&str> {
        match self {
            JobKind::Cleanup { keyspace }
            | JobKind::Compact { keyspace }
            | JobKind::Flush { keyspace }
            | JobKind::Scrub { keyspace }
            | JobKind::GarbageCollect { keyspace }
            | JobKind::UpgradeSstables { keyspace } => keyspace.as_deref(),
            JobKind::Rebuild { .. } | JobKind::Move { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gossip {
    Boot,
    Normal,
    Leaving,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobStatus {
    Waiting,
    Completed,
    Error,
}

impl JobStatus {
    fn as_str(self) -> &'static str {
        match self {
            JobStatus::Waiting => "WAITING",
            JobStatus::Completed => "COMPLETED",
            JobStatus::Error => "ERROR",
        }
    }
}

#[derive(Debug, Clone)]
struct Job {
    id: String,
    job_type: String,
    cluster: String,
    node: NodeId,
    pod: Option<PodKey>,
    host_id: Option<Uuid>,
    status: JobStatus,
    submit_ms: i64,
    end_ms: Option<i64>,
    error: Option<String>,
    history_idx: usize,
}

#[derive(Debug, Clone)]
enum Replication {
    Local,
    Simple(u32),
    Nts(BTreeMap<String, u32>),
}

impl Replication {
    fn to_map(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        match self {
            Replication::Local => {
                m.insert(
                    "class".into(),
                    "org.apache.cassandra.locator.LocalStrategy".into(),
                );
            }
            Replication::Simple(rf) => {
                m.insert(
                    "class".into(),
                    "org.apache.cassandra.locator.SimpleStrategy".into(),
                );
                m.insert("replication_factor".into(), rf.to_string());
            }
            Replication::Nts(dcs) => {
                m.insert(
                    "class".into(),
                    "org.apache.cassandra.locator.NetworkTopologyStrategy".into(),
                );
                for (dc, rf) in dcs {
                    m.insert(dc.clone(), rf.to_string());
                }
            }
        }
        m
    }
}

#[derive(Debug, Clone)]
struct Role {
    superuser: bool,
    login: bool,
    password_hash: Option<String>,
}

#[derive(Debug, Clone)]
struct Node {
    id: NodeId,
    pod: Option<PodKey>,
    host_id: Option<Uuid>,
    ip: Option<String>,
    dc: String,
    rack: String,
    seed: bool,
    tokens: Vec<i64>,
    state: CassandraState,
    gossip: Option<Gossip>,
    /// Bumped by every change that must cancel pending deferred actions of this node.
    generation: u64,
    load_bytes: u64,
    /// The node this one takes over once its bootstrap completes.
    replacing: Option<NodeId>,
    pid: u32,
    server_version: String,
    /// Identity (host id, ip) this pod lost when its data was wiped.
    wiped_from: Option<(Uuid, Option<String>)>,
    decommissioned: bool,
    full_query_logging: bool,
    /// cluster_name saved on disk at the first start (Cassandra's system.local).
    saved_cluster_name: Option<String>,
    /// cluster_name of the running process (its configuration, else the pod's label).
    cluster_name: String,
    /// Seed addresses resolved at the last start or seeds reload.
    resolved_seeds: Vec<String>,
    /// The previous gossip status and when it changed: others see a change only after the
    /// gossip delay.
    gossip_prev: Option<Gossip>,
    gossip_since: Instant,
    /// A move job runs: a range movement.
    moving: bool,
    /// What the node holds: a version per (keyspace, table) (`data.rs`).
    data: crate::data::NodeData,
    /// `/var/lib/cassandra/.last-restore`: the key of the last restore carried out here.
    last_restore: Option<String>,
    /// The pod (uid) whose init containers last ran for this node: they run once per pod.
    init_uid: Option<String>,
}

impl Node {
    fn fresh(id: NodeId, info: &PodInfo, version: String) -> Self {
        Node {
            id,
            pod: Some(info.key.clone()),
            host_id: None,
            ip: info.ip.clone(),
            dc: info.datacenter.clone(),
            rack: info.rack.clone(),
            seed: info.seed,
            tokens: Vec::new(),
            state: CassandraState::Down,
            gossip: None,
            generation: 0,
            load_bytes: 0,
            replacing: None,
            pid: 0,
            server_version: version,
            wiped_from: None,
            decommissioned: false,
            full_query_logging: false,
            saved_cluster_name: None,
            cluster_name: info
                .config
                .as_ref()
                .map_or_else(|| info.cluster.clone(), |c| c.cluster_name.clone()),
            resolved_seeds: Vec::new(),
            gossip_prev: None,
            gossip_since: Instant::now(),
            moving: false,
            data: Default::default(),
            last_restore: None,
            init_uid: None,
        }
    }

    fn set_gossip(&mut self, g: Option<Gossip>) {
        if self.gossip != g {
            self.gossip_prev = self.gossip;
            self.gossip = g;
            self.gossip_since = Instant::now();
        }
    }

    fn running(&self) -> bool {
        self.state != CassandraState::Down
    }

    /// Whether the node answers CQL on its local socket, which most endpoints need.
    fn cql_up(&self) -> bool {
        !matches!(self.state, CassandraState::Down | CassandraState::Starting)
    }

    /// Part of the ring others see (gossip), alive or not.
    fn in_ring(&self) -> bool {
        self.host_id.is_some() && !self.decommissioned
    }

    fn gossip_text(&self) -> Option<String> {
        self.status_text(self.gossip)
    }

    fn status_text(&self, gossip: Option<Gossip>) -> Option<String> {
        let token = self.tokens.first().copied().unwrap_or(0);
        gossip.map(|g| match g {
            Gossip::Boot if self.replacing.is_some() => format!("BOOT_REPLACE,{token}"),
            Gossip::Boot => format!("BOOT,{token}"),
            Gossip::Normal => format!("NORMAL,{token}"),
            Gossip::Leaving => format!("LEAVING,{token}"),
        })
    }
}

#[derive(Debug)]
struct Cluster {
    name: String,
    nodes: BTreeMap<NodeId, Node>,
    keyspaces: BTreeMap<String, Replication>,
    roles: BTreeMap<String, Role>,
    /// Table names per keyspace.
    tables: BTreeMap<String, BTreeSet<String>>,
    schema_version: Uuid,
    fault: Fault,
}

impl Cluster {
    fn new(name: &str) -> Self {
        let mut keyspaces = BTreeMap::new();
        keyspaces.insert("system".to_string(), Replication::Local);
        keyspaces.insert("system_schema".to_string(), Replication::Local);
        keyspaces.insert("system_auth".to_string(), Replication::Simple(1));
        keyspaces.insert("system_distributed".to_string(), Replication::Simple(3));
        keyspaces.insert("system_traces".to_string(), Replication::Simple(2));
        let system_tables: [(&str, &[&str]); 3] = [
            (
                "system_auth",
                &[
                    "network_permissions",
                    "resource_role_permissons_index",
                    "role_members",
                    "role_permissions",
                    "roles",
                ],
            ),
            (
                "system_distributed",
                &[
                    "parent_repair_history",
                    "repair_history",
                    "view_build_status",
                ],
            ),
            ("system_traces", &["events", "sessions"]),
        ];
        let tables = system_tables
            .iter()
            .map(|(ks, ts)| (ks.to_string(), ts.iter().map(|t| t.to_string()).collect()))
            .collect();
        Cluster {
            name: name.to_string(),
            nodes: BTreeMap::new(),
            keyspaces,
            roles: BTreeMap::new(),
            tables,
            schema_version: Uuid::new_v4(),
            fault: Fault::default(),
        }
    }
}

#[derive(Debug)]
struct PodEntry {
    info: PodInfo,
    /// Readiness of the last patch sent and not yet observed.
    pending_ready: Option<bool>,
    listening: bool,
    /// When the pod got its current IP: its containers started then.
    ip_since: Instant,
    /// What the last simulated readiness probe found, and when it ran.
    probed_ready: Option<bool>,
    last_probe: Option<Instant>,
}

pub(crate) struct World {
    cfg: SimConfig,
    clusters: BTreeMap<String, Cluster>,
    pods: BTreeMap<PodKey, PodEntry>,
    node_index: HashMap<PodKey, (String, NodeId)>,
    history: Vec<HistoryEntry>,
    violations: Vec<Violation>,
    jobs: HashMap<String, Job>,
    pod_faults: HashMap<PodKey, Fault>,
    /// Identity each wiped pod lost, handed to the node its pod gets next.
    wiped_pods: HashMap<PodKey, (Uuid, Option<String>)>,
    /// Pods whose readiness may have changed since the last pass.
    dirty: HashSet<PodKey>,
    /// Pods the prober must look at on their next probe tick.
    probe_pending: HashSet<PodKey>,
    /// Addresses of `<cluster>-<dc>-additional-seed-service` Services, keyed by (context,
    /// namespace, Service name): a CassandraDatacenter's `spec.additionalSeeds`.
    additional_seeds: HashMap<(String, String, String), Vec<String>>,
    /// Every pod's readiness may have changed (cluster-wide faults).
    dirty_all: bool,
    /// Pod addresses or deadness changed: the listener manager has work.
    listeners_dirty: bool,
    next_node_id: NodeId,
    next_pid: u32,
}

type Deferred = (Duration, Box<dyn FnOnce(&mut World) + Send>);

/// Side effects collected while the world is locked, carried out once it is released.
#[derive(Default)]
pub(crate) struct Effects {
    deferred: Vec<Deferred>,
}

impl Effects {
    fn after(&mut self, delay: Duration, f: impl FnOnce(&mut World) + Send + 'static) {
        self.deferred.push((delay, Box::new(f)));
    }
}

fn now_text() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn ms_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn random_tokens(n: usize) -> Vec<i64> {
    let mut rng = rand::rng();
    let mut tokens: Vec<i64> = (0..n).map(|_| rng.random::<i64>()).collect();
    tokens.sort_unstable();
    tokens
}

fn hash_password(password: &str) -> String {
    hex::encode(Sha256::digest(password.as_bytes()))
}

fn not_running() -> Reply {
    Reply::error("Internal connection to Cassandra closed")
}

/// Result of looking up the node a request arrived at.
struct At {
    cluster: String,
    node: NodeId,
}

impl World {
    fn new(cfg: SimConfig) -> Self {
        World {
            cfg,
            clusters: BTreeMap::new(),
            pods: BTreeMap::new(),
            node_index: HashMap::new(),
            history: Vec::new(),
            violations: Vec::new(),
            jobs: HashMap::new(),
            pod_faults: HashMap::new(),
            wiped_pods: HashMap::new(),
            dirty: HashSet::new(),
            probe_pending: HashSet::new(),
            additional_seeds: HashMap::new(),
            dirty_all: false,
            listeners_dirty: false,
            next_node_id: 1,
            next_pid: 1000,
        }
    }

    fn at(&self, key: &PodKey) -> Option<At> {
        self.node_index.get(key).map(|(c, n)| At {
            cluster: c.clone(),
            node: *n,
        })
    }

    fn node(&self, at: &At) -> Option<&Node> {
        self.clusters.get(&at.cluster)?.nodes.get(&at.node)
    }

    /// Every mutable access marks the node's pod for the next readiness pass.
    fn node_mut(&mut self, at: &At) -> Option<&mut Node> {
        let node = self
            .clusters
            .get_mut(&at.cluster)?
            .nodes
            .get_mut(&at.node)?;
        if let Some(k) = &node.pod {
            self.dirty.insert(k.clone());
        }
        Some(node)
    }

    fn cluster_mut(&mut self, name: &str) -> &mut Cluster {
        self.clusters
            .entry(name.to_string())
            .or_insert_with(|| Cluster::new(name))
    }

    fn effective_fault(&self, key: &PodKey) -> Fault {
        let pod = self.pod_faults.get(key).cloned().unwrap_or_default();
        let cluster = self
            .pods
            .get(key)
            .and_then(|p| self.clusters.get(&p.info.cluster))
            .map(|c| c.fault.clone())
            .unwrap_or_default();
        pod.merge(&cluster)
    }

    fn mgmt_up(&self, node: &Node) -> bool {
        node.pod.as_ref().is_some_and(|k| {
            self.pods
                .get(k)
                .is_some_and(|p| self.mgmt_started(p).is_ok())
                && !self.effective_fault(k).dead
        })
    }

    fn mgmt_delay(&self, info: &PodInfo) -> Duration {
        info.mgmt_api_start_delay_ms
            .map_or(self.cfg.mgmt_api_start_delay, Duration::from_millis)
    }

    /// Ok when the pod's management API process is up; Err(time left) while it starts,
    /// Err(None) without an IP.
    fn mgmt_started(&self, p: &PodEntry) -> Result<(), Option<Duration>> {
        p.info.ip.as_ref().ok_or(None)?;
        let due = p.ip_since + self.mgmt_delay(&p.info);
        let now = Instant::now();
        if now >= due {
            Ok(())
        } else {
            Err(Some(due - now))
        }
    }

    /// First probe delay and period of a pod's readiness probe.
    fn probe_timing(&self, info: &PodInfo) -> (Duration, Duration) {
        let fixed = (Duration::ZERO, self.cfg.probe_period);
        let (initial, period) = match (self.cfg.probe_timing, info.readiness_probe) {
            (ProbeTiming::PodSpec, Some(p)) => (
                Duration::from_millis(p.initial_delay_ms),
                Duration::from_millis(p.period_ms),
            ),
            _ => fixed,
        };
        (initial, period.max(Duration::from_millis(1)))
    }

    /// The gossip status other nodes see of `n`: a change reaches them after the gossip
    /// delay.
    fn seen_gossip(&self, n: &Node) -> Option<Gossip> {
        if n.gossip_since.elapsed() >= self.cfg.gossip_delay {
            n.gossip
        } else {
            n.gossip_prev
        }
    }

    fn alive(&self, node: &Node) -> bool {
        self.mgmt_up(node)
            && matches!(
                node.state,
                CassandraState::Starting
                    | CassandraState::Joining
                    | CassandraState::Normal
                    | CassandraState::Leaving
            )
    }

    fn desired_ready(&self, key: &PodKey) -> bool {
        self.at(key)
            .and_then(|at| self.node(&at))
            .is_some_and(|n| n.state == CassandraState::Normal && self.mgmt_up(n))
    }

    fn record(&mut self, mut entry: HistoryEntry) -> usize {
        entry.seq = self.history.len() as u64 + 1;
        self.history.push(entry);
        self.history.len() - 1
    }

    fn entry(&self, action: &str, cluster: &str, at: Option<&At>, outcome: &str) -> HistoryEntry {
        let node = at.and_then(|a| self.node(a));
        HistoryEntry {
            seq: 0,
            time: now_text(),
            action: action.to_string(),
            cluster: cluster.to_string(),
            pod: node.and_then(|n| n.pod.clone()),
            ip: node.and_then(|n| n.ip.clone()),
            host_id: node.and_then(|n| n.host_id.map(|h| h.to_string())),
            replace_ip: None,
            job_id: None,
            job_type: None,
            outcome: outcome.to_string(),
            detail: None,
            end_time: None,
        }
    }

    fn violate(&mut self, rule: &str, cluster: &str, pod: Option<PodKey>, message: &str) {
        tracing::warn!(rule, cluster, pod = ?pod, message, "rule violation");
        self.violations.push(Violation {
            time: now_text(),
            rule: rule.to_string(),
            cluster: cluster.to_string(),
            pod,
            message: message.to_string(),
        });
    }

    fn version_for(&self, info: &PodInfo) -> String {
        info.config
            .as_ref()
            .and_then(|c| c.server_version.clone())
            .or_else(|| info.server_version.clone())
            .unwrap_or_else(|| self.cfg.default_server_version.clone())
    }

    fn bump_schema(&mut self, cluster: &str) {
        if let Some(c) = self.clusters.get_mut(cluster) {
            c.schema_version = Uuid::new_v4();
        }
    }

    /// Ends the Cassandra process of a node: pending bootstraps and decommissions are abandoned.
    fn kill_process(&mut self, at: &At) {
        let Some(node) = self.node_mut(at) else {
            return;
        };
        let was = node.state;
        node.state = CassandraState::Down;
        node.generation += 1;
        node.pid = 0;
        node.moving = false;
        match was {
            CassandraState::Joining if node.gossip == Some(Gossip::Boot) => {
                // An interrupted bootstrap leaves no usable identity behind.
                node.host_id = None;
                node.tokens.clear();
                node.set_gossip(None);
                node.replacing = None;
            }
            CassandraState::Leaving => node.set_gossip(Some(Gossip::Normal)),
            _ => {}
        }
        let node_id = node.id;
        // The job executor lives in the Cassandra process.
        let now = now_ms();
        for job in self.jobs.values_mut() {
            if job.node == node_id && job.status == JobStatus::Waiting {
                job.status = JobStatus::Error;
                job.end_ms = Some(now);
                job.error = Some("Cassandra process stopped".into());
            }
        }
    }

    fn remove_node(&mut self, cluster: &str, id: NodeId) {
        let Some(node) = self
            .clusters
            .get_mut(cluster)
            .and_then(|c| c.nodes.remove(&id))
        else {
            return;
        };
        let Some(key) = node.pod else { return };
        self.dirty.insert(key.clone());
        if self.node_index.get(&key).is_some_and(|(_, n)| *n == id) {
            self.node_index.remove(&key);
        }
    }

    fn new_node_for(&mut self, info: &PodInfo) -> NodeId {
        let id = self.next_node_id;
        self.next_node_id += 1;
        let version = self.version_for(info);
        let mut node = Node::fresh(id, info, version);
        (node.dc, node.rack) = dc_rack(info);
        node.wiped_from = self.wiped_pods.remove(&info.key);
        self.dirty.insert(info.key.clone());
        self.cluster_mut(&info.cluster).nodes.insert(id, node);
        self.node_index
            .insert(info.key.clone(), (info.cluster.clone(), id));
        id
    }

    fn finish_history(&mut self, idx: usize, outcome: &str, detail: Option<String>) {
        if let Some(h) = self.history.get_mut(idx) {
            h.outcome = outcome.to_string();
            h.end_time = Some(now_text());
            if detail.is_some() {
                h.detail = detail;
            }
        }
    }

    fn finish_job(&mut self, id: &str, error: Option<String>) {
        let Some(job) = self.jobs.get_mut(id) else {
            return;
        };
        if job.status != JobStatus::Waiting {
            return;
        }
        job.end_ms = Some(now_ms());
        job.status = if error.is_some() {
            JobStatus::Error
        } else {
            JobStatus::Completed
        };
        job.error = error.clone();
        let idx = job.history_idx;
        let outcome = if error.is_some() {
            "error"
        } else {
            "completed"
        };
        self.finish_history(idx, outcome, error);
    }

    fn new_job(&mut self, at: &At, job_type: &str, detail: Option<String>) -> String {
        let id = Uuid::new_v4().to_string();
        let mut entry = self.entry("job", &at.cluster, Some(at), "submitted");
        entry.job_id = Some(id.clone());
        entry.job_type = Some(job_type.to_string());
        entry.detail = detail;
        if job_type == "decommission" {
            entry.action = "decommission".into();
        }
        let history_idx = self.record(entry);
        let node = self.node(at);
        let job = Job {
            id: id.clone(),
            job_type: job_type.to_string(),
            cluster: at.cluster.clone(),
            node: at.node,
            pod: node.and_then(|n| n.pod.clone()),
            host_id: node.and_then(|n| n.host_id),
            status: JobStatus::Waiting,
            submit_ms: now_ms(),
            end_ms: None,
            error: None,
            history_idx,
        };
        self.jobs.insert(id.clone(), job);
        id
    }

    /// Nodes of the cluster (or of the datacenter, by configuration) moving ranges right now.
    fn range_movement_in_progress(
        &self,
        cluster: &str,
        except: NodeId,
        dc: &str,
    ) -> Option<String> {
        let c = self.clusters.get(cluster)?;
        c.nodes
            .values()
            .filter(|n| n.id != except)
            .filter(|n| match self.cfg.bootstrap_scope {
                BootstrapScope::Cluster => true,
                BootstrapScope::Datacenter => n.dc == dc,
            })
            // Bootstraps and replacements (BOOT, BOOT_REPLACE: pending tokens), decommissions
            // (LEAVING) and moves all count, as in StorageService.joinTokenRing.
            .find(|n| {
                (n.state == CassandraState::Joining && n.gossip == Some(Gossip::Boot))
                    || (n.state == CassandraState::Leaving && n.gossip == Some(Gossip::Leaving))
                    || (n.moving && n.cql_up())
            })
            .map(|n| {
                let what = if n.moving {
                    "MOVING".to_string()
                } else if n.replacing.is_some() {
                    "REPLACING".to_string()
                } else {
                    format!("{:?}", n.state).to_uppercase()
                };
                format!("{} ({what})", n.ip.clone().unwrap_or_else(|| "?".into()))
            })
    }

    /// A node of the datacenter holding tokens (NORMAL or LEAVING in gossip) that is down,
    /// other than `except`: with vnodes every such node holds replicas of the ranges a
    /// bootstrap or a decommission moves in that datacenter.
    fn replica_down(&self, cluster: &str, dc: &str, except: &[NodeId]) -> Option<String> {
        let c = self.clusters.get(cluster)?;
        c.nodes
            .values()
            .filter(|n| !except.contains(&n.id) && n.dc == dc && n.in_ring())
            .filter(|n| !n.tokens.is_empty())
            .filter(|n| matches!(n.gossip, Some(Gossip::Normal) | Some(Gossip::Leaving)))
            .find(|n| !self.alive(n))
            .map(|n| n.ip.clone().unwrap_or_else(|| "?".into()))
    }

    /// Resolves a node's seed list as its seed provider would, at this moment: addresses
    /// stay themselves; `<cluster>-seed-service` is the seed-labelled pods of that cluster
    /// label in the pod's context and namespace (not-ready ones too);
    /// `<cluster>-<dc>-additional-seed-service` is that datacenter's `additionalSeeds`.
    /// Without a configuration, the seed-labelled pods of the pod's cluster label.
    fn resolve_seeds(&self, info: &PodInfo) -> Vec<String> {
        let Some(cfg) = &info.config else {
            return self
                .pods
                .values()
                .filter(|p| p.info.cluster == info.cluster && p.info.seed)
                .filter_map(|p| p.info.ip.clone())
                .collect();
        };
        let mut out: Vec<String> = Vec::new();
        for name in &cfg.seeds {
            if name.parse::<IpAddr>().is_ok() {
                out.push(name.clone());
                continue;
            }
            let mut labels = name.split('.');
            let service = labels.next().unwrap_or_default().to_ascii_lowercase();
            let namespace = labels
                .next()
                .filter(|ns| !ns.is_empty() && *ns != "svc")
                .unwrap_or(&info.key.namespace)
                .to_string();
            if service.ends_with("-additional-seed-service") {
                let key = (info.key.context.clone(), namespace, service);
                out.extend(self.additional_seeds.get(&key).cloned().unwrap_or_default());
            } else if let Some(cluster) = service.strip_suffix("-seed-service") {
                out.extend(
                    self.pods
                        .iter()
                        .filter(|(k, p)| {
                            k.context == info.key.context
                                && k.namespace == namespace
                                && p.info.seed
                                && (p.info.cluster == cluster
                                    || clean_name(&p.info.cluster) == cluster)
                        })
                        .filter_map(|(_, p)| p.info.ip.clone()),
                );
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// The kubelet-like prober: probes pods on their ticks until cancelled.
pub(crate) async fn run_prober(core: Arc<Core>, cancel: tokio_util::sync::CancellationToken) {
    loop {
        let next = core.probe_pass();
        let wait = next
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(60));
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = core.probe_notify.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

pub(crate) struct Core {
    world: Mutex<World>,
    pub(crate) mgmt_port: u16,
    listener_kick: mpsc::UnboundedSender<()>,
    ready_sinks: Mutex<HashMap<String, mpsc::UnboundedSender<ReadyPatch>>>,
    /// Wakes the prober when pods may need a probe.
    pub(crate) probe_notify: tokio::sync::Notify,
    /// The last [`REQUEST_LOG_LIMIT`] management-API requests; apart from the world so
    /// logging a request never waits for a long world operation.
    requests: Mutex<RequestLog>,
    /// API clients per context, for what a node reads at run time (its metrics agent's
    /// ConfigMap).
    kube_clients: Mutex<HashMap<String, kube::Client>>,
    /// The backups Medusa's storage holds, and its faults.
    pub(crate) medusa: crate::medusa::MedusaStore,
    /// The simulated Reapers: their pods, storages, faults (`reaper.rs`).
    pub(crate) reaper: crate::reaper::ReaperStore,
}

/// Requests kept in the log; older ones are dropped.
pub(crate) const REQUEST_LOG_LIMIT: usize = 50_000;

#[derive(Default)]
struct RequestLog {
    next_seq: u64,
    entries: std::collections::VecDeque<RequestEntry>,
}

impl Core {
    pub(crate) fn new(
        cfg: SimConfig,
        mgmt_port: u16,
        listener_kick: mpsc::UnboundedSender<()>,
    ) -> Arc<Self> {
        Arc::new(Core {
            world: Mutex::new(World::new(cfg)),
            mgmt_port,
            listener_kick,
            ready_sinks: Mutex::new(HashMap::new()),
            probe_notify: tokio::sync::Notify::new(),
            requests: Mutex::new(RequestLog::default()),
            kube_clients: Mutex::new(HashMap::new()),
            medusa: crate::medusa::MedusaStore::default(),
            reaper: crate::reaper::ReaperStore::default(),
        })
    }

    pub(crate) fn set_kube_client(&self, context: &str, client: kube::Client) {
        let mut m = self.kube_clients.lock().unwrap_or_else(|e| e.into_inner());
        m.insert(context.to_string(), client);
    }

    pub(crate) fn kube_client(&self, context: &str) -> Option<kube::Client> {
        let m = self.kube_clients.lock().unwrap_or_else(|e| e.into_inner());
        m.get(context).cloned()
    }

    /// The metrics agent's ConfigMap (name, key) mounted in the pod.
    pub(crate) fn metrics_config_ref(&self, key: &PodKey) -> Option<(String, String)> {
        let w = self.lock();
        w.pods.get(key)?.info.metrics_config.clone()
    }

    /// What the node's metrics endpoint exposes; None while Cassandra does not run.
    pub(crate) fn node_metrics(&self, key: &PodKey) -> Option<crate::metrics::NodeMetrics> {
        self.with_cql(key, |w, at, n| {
            let tables = w
                .clusters
                .get(&at.cluster)
                .map(|c| {
                    c.tables
                        .iter()
                        .flat_map(|(ks, ts)| ts.iter().map(move |t| (ks.clone(), t.clone())))
                        .collect()
                })
                .unwrap_or_default();
            crate::metrics::NodeMetrics {
                cluster: n.cluster_name.clone(),
                datacenter: n.dc.clone(),
                rack: n.rack.clone(),
                host: n.ip.clone().unwrap_or_default(),
                load_bytes: n.load_bytes,
                full_query_logging: n.full_query_logging,
                tables,
            }
        })
        .ok()
    }

    /// Logs a request on arrival, `faulted` when a fault applies to its node; returns its
    /// sequence number for [`Core::answered`].
    pub(crate) fn log_request(
        &self,
        pod: &PodKey,
        method: &str,
        path: &str,
        faulted: bool,
        tls: bool,
    ) -> u64 {
        let mut log = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        log.next_seq += 1;
        let seq = log.next_seq;
        if log.entries.len() >= REQUEST_LOG_LIMIT {
            log.entries.pop_front();
        }
        log.entries.push_back(RequestEntry {
            seq,
            at_ms: now_ms(),
            pod: pod.clone(),
            method: method.to_string(),
            path: path.to_string(),
            status: 0,
            faulted,
            tls,
        });
        seq
    }

    /// Records the answer of a logged request.
    pub(crate) fn answered(&self, seq: u64, status: u16) {
        let mut log = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        // Sequence numbers are consecutive, so the entry's index follows from the first one's.
        let Some(first) = log.entries.front().map(|e| e.seq) else {
            return;
        };
        let Some(idx) = seq.checked_sub(first).and_then(|i| usize::try_from(i).ok()) else {
            return;
        };
        if let Some(e) = log.entries.get_mut(idx) {
            e.status = status;
        }
    }

    pub(crate) fn requests(&self) -> Vec<RequestEntry> {
        let log = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        log.entries.iter().cloned().collect()
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        // A panic while holding the lock leaves consistent-enough data for a simulator.
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers where readiness patches for pods of a Kubernetes context go.
    pub(crate) fn add_ready_sink(&self, context: &str, tx: mpsc::UnboundedSender<ReadyPatch>) {
        self.ready_sinks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(context.to_string(), tx);
    }

    /// Runs `f` on the locked world, then carries out readiness patches, listener changes and
    /// deferred actions.
    fn with<R>(self: &Arc<Self>, f: impl FnOnce(&mut World, &mut Effects) -> R) -> R {
        let mut fx = Effects::default();
        let (result, patches, kick) = {
            let mut w = self.lock();
            let r = f(&mut w, &mut fx);
            let patches = self.collect_ready_patches(&mut w);
            (r, patches, std::mem::take(&mut w.listeners_dirty))
        };
        self.finish(patches, kick, fx);
        result
    }

    fn finish(self: &Arc<Self>, patches: Vec<ReadyPatch>, kick: bool, fx: Effects) {
        self.send_patches(patches);
        if kick {
            let _ = self.listener_kick.send(());
        }
        for (delay, action) in fx.deferred {
            if delay.is_zero() {
                self.run_deferred(action);
            } else {
                let core = Arc::clone(self);
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    core.run_deferred(action);
                });
            }
        }
    }

    fn run_deferred(self: &Arc<Self>, action: Box<dyn FnOnce(&mut World) + Send>) {
        let (patches, kick) = {
            let mut w = self.lock();
            action(&mut w);
            let patches = self.collect_ready_patches(&mut w);
            (patches, std::mem::take(&mut w.listeners_dirty))
        };
        self.finish(patches, kick, Effects::default());
    }

    /// Hands the pods whose readiness may have changed to the prober.
    fn collect_ready_patches(&self, w: &mut World) -> Vec<ReadyPatch> {
        let keys: Vec<PodKey> = if w.dirty_all {
            w.dirty.clear();
            w.pods.keys().cloned().collect()
        } else {
            w.dirty.drain().collect()
        };
        w.dirty_all = false;
        if !keys.is_empty() {
            w.probe_pending.extend(keys);
            self.probe_notify.notify_one();
        }
        Vec::new()
    }

    /// One pass of the kubelet-like prober: every pending pod whose probe tick has come is
    /// probed (its readiness taken from the node) and, when Kubernetes shows something else,
    /// patched. Returns when the next pending tick is due.
    pub(crate) fn probe_pass(&self) -> Option<Instant> {
        let sinks: HashSet<String> = self
            .ready_sinks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        let mut patches = Vec::new();
        let mut next: Option<Instant> = None;
        {
            let mut w = self.lock();
            let now = Instant::now();
            let keys: Vec<PodKey> = w.probe_pending.iter().cloned().collect();
            let mut done = Vec::new();
            for key in keys {
                let desired = w.desired_ready(&key);
                let (first, period) = match w.pods.get(&key) {
                    Some(p) if p.info.ip.is_some() => {
                        let (initial, period) = w.probe_timing(&p.info);
                        (p.ip_since + initial, period)
                    }
                    _ => {
                        w.probe_pending.remove(&key);
                        continue;
                    }
                };
                let Some(entry) = w.pods.get_mut(&key) else {
                    continue;
                };
                let has_sink = sinks.contains(&key.context);
                if entry.probed_ready == Some(desired) && !(has_sink && needs_patch(entry, desired))
                {
                    entry.pending_ready = None;
                    done.push(key);
                    continue;
                }
                let due = match entry.last_probe {
                    None => first,
                    Some(last) => last + period,
                };
                if due > now {
                    next = Some(next.map_or(due, |n: Instant| n.min(due)));
                    continue;
                }
                // The latest tick not after now: ticks stay aligned to the container start.
                let periods = (now - first).as_nanos() / period.as_nanos().max(1);
                let tick = first + period * u32::try_from(periods).unwrap_or(u32::MAX);
                entry.last_probe = Some(tick);
                entry.probed_ready = Some(desired);
                done.push(key.clone());
                if !has_sink || !needs_patch(entry, desired) {
                    entry.pending_ready = None;
                    continue;
                }
                if entry.pending_ready == Some(desired) {
                    continue;
                }
                entry.pending_ready = Some(desired);
                patches.push(ready_patch(&entry.info, desired));
            }
            for key in done {
                w.probe_pending.remove(&key);
            }
        }
        self.send_patches(patches);
        next
    }

    fn send_patches(&self, patches: Vec<ReadyPatch>) {
        if patches.is_empty() {
            return;
        }
        let sinks = self.ready_sinks.lock().unwrap_or_else(|e| e.into_inner());
        for p in patches {
            if let Some(tx) = sinks.get(&p.key.context) {
                let _ = tx.send(p);
            }
        }
    }

    /// A readiness patch failed: forget it was sent so the next probe retries it.
    pub(crate) fn ready_patch_failed(self: &Arc<Self>, key: &PodKey) {
        self.with(|w, _| {
            if let Some(p) = w.pods.get_mut(key) {
                p.pending_ready = None;
                p.probed_ready = None;
                w.dirty.insert(key.clone());
            }
        });
    }

    pub(crate) fn config(&self) -> SimConfig {
        self.lock().cfg.clone()
    }

    pub(crate) fn update_config(self: &Arc<Self>, u: &ConfigUpdate) -> SimConfig {
        self.with(|w, _| {
            if let Some(p) = u.preset {
                w.cfg.apply_preset(p);
            }
            if let Some(v) = u.mgmt_api_start_delay_ms {
                w.cfg.mgmt_api_start_delay = Duration::from_millis(v);
            }
            if let Some(v) = u.probe_period_ms {
                w.cfg.probe_period = Duration::from_millis(v);
            }
            if let Some(v) = u.probe_timing {
                w.cfg.probe_timing = v;
            }
            if let Some(v) = u.gossip_delay_ms {
                w.cfg.gossip_delay = Duration::from_millis(v);
            }
            if let Some(v) = u.ring_delay_ms {
                w.cfg.ring_delay = Duration::from_millis(v);
            }
            // Probe ticks and listener start times follow the new timing.
            w.dirty_all = true;
            w.listeners_dirty = true;
            if let Some(v) = u.bootstrap_delay_ms {
                w.cfg.bootstrap_delay = Duration::from_millis(v);
            }
            if let Some(v) = u.decommission_delay_ms {
                w.cfg.decommission_delay = Duration::from_millis(v);
            }
            if let Some(v) = u.job_duration_ms {
                w.cfg.job_duration = Duration::from_millis(v);
            }
            if let Some(v) = u.bootstrap_scope {
                w.cfg.bootstrap_scope = v;
            }
            if let Some(v) = u.num_tokens {
                w.cfg.num_tokens = v.max(1);
            }
            if let Some(v) = &u.default_server_version {
                w.cfg.default_server_version = v.clone();
            }
            w.cfg.clone()
        })
    }

    /// Sets the addresses `<cluster>-<dc>-additional-seed-service` resolves to in a
    /// namespace of a context (a CassandraDatacenter's `spec.additionalSeeds`).
    pub(crate) fn set_additional_seeds(
        &self,
        context: &str,
        namespace: &str,
        service: &str,
        ips: Vec<String>,
    ) {
        let key = (
            context.to_string(),
            namespace.to_string(),
            service.to_string(),
        );
        let mut w = self.lock();
        if ips.is_empty() {
            w.additional_seeds.remove(&key);
        } else {
            w.additional_seeds.insert(key, ips);
        }
    }

    // ----- pods -------------------------------------------------------------------------

    pub(crate) fn apply(self: &Arc<Self>, event: PodEvent) {
        match event {
            PodEvent::Upsert(info) => self.upsert_pod(info),
            PodEvent::Delete(key) => self.remove_pod(&key),
        }
    }

    pub(crate) fn upsert_pod(self: &Arc<Self>, info: PodInfo) {
        self.with(|w, _| {
            let key = info.key.clone();
            let previous = w.pods.get(&key).map(|p| p.info.clone());
            if let Some(prev) = &previous
                && (prev.uid != info.uid || prev.cluster != info.cluster)
            {
                // Recreated under the same name without us seeing the deletion.
                drop_pod(w, &key);
            }
            let is_new = !w.pods.contains_key(&key);
            match w.at(&key) {
                Some(at) if at.cluster == info.cluster => {
                    let version = w.version_for(&info);
                    let (dc, rack) = dc_rack(&info);
                    if let Some(node) = w.node_mut(&at) {
                        node.dc = dc;
                        node.rack = rack;
                        if info.config.is_none() {
                            node.seed = info.seed;
                        }
                        node.server_version = version;
                        if node.pod.is_none() {
                            node.pod = Some(key.clone());
                        }
                    }
                }
                Some(at) => {
                    w.remove_node(&at.cluster, at.node);
                    w.new_node_for(&info);
                }
                None => {
                    w.new_node_for(&info);
                }
            }
            w.init_containers(&self.medusa, &info);
            w.dirty.insert(key.clone());
            if w.pods.get(&key).is_none_or(|p| {
                p.info.ip != info.ip
                    || p.info.mgmt_api_start_delay_ms != info.mgmt_api_start_delay_ms
                    || p.info.mgmt_tls != info.mgmt_tls
            }) {
                w.listeners_dirty = true;
            }
            let prev = w.pods.remove(&key);
            let same_ip = prev.as_ref().is_some_and(|p| p.info.ip == info.ip);
            let entry = match prev {
                Some(p) if same_ip => PodEntry {
                    info: info.clone(),
                    ..p
                },
                // A new IP is a new sandbox: its containers (and the management API) start
                // over, and the prober with them.
                p => PodEntry {
                    info: info.clone(),
                    pending_ready: p.as_ref().and_then(|p| p.pending_ready),
                    listening: p.as_ref().is_some_and(|p| p.listening),
                    ip_since: Instant::now(),
                    probed_ready: None,
                    last_probe: None,
                },
            };
            w.pods.insert(key.clone(), entry);
            if is_new {
                tracing::info!(pod = %key, ip = ?info.ip, cluster = %info.cluster, dc = %info.datacenter, "pod added");
                let at = w.at(&key);
                let e = w.entry("pod_added", &info.cluster, at.as_ref(), "ok");
                w.record(e);
            }
        });
    }

    pub(crate) fn remove_pod(self: &Arc<Self>, key: &PodKey) {
        self.with(|w, _| {
            if let Some(p) = w.pods.get(key) {
                let cluster = p.info.cluster.clone();
                tracing::info!(pod = %key, "pod removed");
                let at = w.at(key);
                let e = w.entry("pod_removed", &cluster, at.as_ref(), "ok");
                w.record(e);
            }
            drop_pod(w, key);
        });
    }

    pub(crate) fn set_listening(&self, key: &PodKey, listening: bool) {
        let mut w = self.lock();
        if let Some(p) = w.pods.get_mut(key) {
            p.listening = listening;
            // The node's readiness depends on its management API being up.
            w.probe_pending.insert(key.clone());
            self.probe_notify.notify_one();
        }
    }

    /// Where a management API listener should be bound right now, and when the next pod's
    /// management API finishes starting.
    pub(crate) fn desired_listeners(&self) -> (HashMap<PodKey, SocketAddr>, Option<Duration>) {
        let w = self.lock();
        let mut next: Option<Duration> = None;
        let desired = w
            .pods
            .iter()
            .filter(|(k, _)| !w.effective_fault(k).dead)
            .filter(|(_, p)| match w.mgmt_started(p) {
                Ok(()) => true,
                Err(Some(left)) => {
                    next = Some(next.map_or(left, |n| n.min(left)));
                    false
                }
                Err(None) => false,
            })
            .filter_map(|(k, p)| {
                let ip: IpAddr = p.info.ip.as_deref()?.parse().ok()?;
                Some((k.clone(), SocketAddr::new(ip, self.mgmt_port)))
            })
            .collect();
        (desired, next)
    }

    /// The node beside a pod's Medusa, when it runs with CQL up (Medusa reads the token
    /// map over CQL and snapshots through the node).
    pub(crate) fn medusa_node(&self, key: &PodKey) -> Result<crate::medusa::NodeFacts, String> {
        self.with_cql(key, |_, at, n| crate::medusa::NodeFacts {
            cluster: at.cluster.clone(),
            datacenter: n.dc.clone(),
            rack: n.rack.clone(),
            host: n.ip.clone().unwrap_or_default(),
            tokens: n.tokens.clone(),
            load_bytes: n.load_bytes,
            data: n.data.clone(),
        })
        .map_err(|_| "Cassandra is not running on this pod".to_string())
    }

    /// The Cassandra cluster of a pod, also while its node is down.
    pub(crate) fn medusa_cluster(&self, key: &PodKey) -> Option<String> {
        let w = self.lock();
        match w.at(key) {
            Some(at) => Some(at.cluster),
            None => w.pods.get(key).map(|p| p.info.cluster.clone()),
        }
    }

    /// The port of the pod's Medusa gRPC service, when it runs one.
    pub(crate) fn medusa_port(&self, key: &PodKey) -> Option<u16> {
        self.lock().pods.get(key)?.info.medusa_grpc_port
    }

    // ----- CQL (cql.rs) ----------------------------------------------------------------

    /// The pod's CQL port (None: no such pod).
    pub(crate) fn cql_port(&self, key: &PodKey) -> Option<u16> {
        let w = self.lock();
        let p = w.pods.get(key)?;
        Some(p.info.cql_port.unwrap_or(crate::cql::DEFAULT_CQL_PORT))
    }

    /// What the pod's CQL port serves (None: no such pod).
    pub(crate) fn cql_facts(&self, key: &PodKey) -> Option<crate::cql::CqlFacts> {
        let w = self.lock();
        let p = w.pods.get(key)?;
        let node = w.at(key).and_then(|at| w.node(&at));
        // The native transport starts once the node has joined and stops when it drains.
        let serving = node.is_some_and(|n| {
            matches!(n.state, CassandraState::Normal | CassandraState::Leaving) && w.mgmt_up(n)
        });
        let cfg = p.info.config.as_ref();
        let class = |v: Option<&String>, name: &str| v.is_some_and(|a| a.ends_with(name));
        Some(crate::cql::CqlFacts {
            serving,
            auth_required: class(
                cfg.and_then(|c| c.authenticator.as_ref()),
                "PasswordAuthenticator",
            ),
            authorizer: class(
                cfg.and_then(|c| c.authorizer.as_ref()),
                "CassandraAuthorizer",
            ),
            tls_required: cfg.is_some_and(|c| c.client_encryption_required),
            release_version: node.map(|n| n.server_version.clone()).unwrap_or_default(),
        })
    }

    /// Checks a login against the roles of the pod's cluster: Some(superuser) when the role
    /// may log in with this password.
    pub(crate) fn cql_login(&self, key: &PodKey, user: &str, password: &str) -> Option<bool> {
        let w = self.lock();
        let at = w.at(key)?;
        let role = w.clusters.get(&at.cluster)?.roles.get(user)?;
        (role.login && role.password_hash.as_deref() == Some(hash_password(password).as_str()))
            .then_some(role.superuser)
    }

    pub(crate) fn cql_keyspace_exists(&self, key: &PodKey, ks: &str) -> bool {
        let w = self.lock();
        w.at(key)
            .and_then(|at| w.clusters.get(&at.cluster))
            .is_some_and(|c| c.keyspaces.contains_key(ks))
    }

    /// `DROP KEYSPACE`: true when it was dropped, false when it did not exist and
    /// `if_exists` allowed that.
    pub(crate) fn cql_drop_keyspace(
        self: &Arc<Self>,
        key: &PodKey,
        ks: &str,
        if_exists: bool,
    ) -> Result<bool, crate::cql::CqlFailure> {
        self.with(|w, _| {
            let at = w
                .at(key)
                .ok_or_else(|| crate::cql::server_error("the node is not running"))?;
            let c = w.cluster_mut(&at.cluster);
            if c.keyspaces.remove(ks).is_none() {
                if if_exists {
                    return Ok(false);
                }
                return Err(crate::cql::no_such_keyspace(ks));
            }
            c.tables.remove(ks);
            w.bump_schema(&at.cluster);
            let mut e = w.entry("keyspace_drop", &at.cluster, Some(&at), "ok");
            e.detail = Some(ks.to_string());
            w.record(e);
            Ok(true)
        })
    }

    /// The pod's management-API TLS (None: plain HTTP, or no such pod).
    pub(crate) fn mgmt_tls(&self, key: &PodKey) -> Option<crate::tls::MgmtTls> {
        self.lock().pods.get(key)?.info.mgmt_tls.clone()
    }

    pub(crate) fn fault_of(&self, key: &PodKey) -> Fault {
        self.lock().effective_fault(key)
    }

    // ----- lifecycle --------------------------------------------------------------------

    pub(crate) fn start(self: &Arc<Self>, key: &PodKey, replace_ip: Option<String>) -> Reply {
        self.with(|w, fx| start_node(w, fx, key, replace_ip))
    }

    pub(crate) fn stop(self: &Arc<Self>, key: &PodKey) -> Reply {
        self.with(|w, _| {
            let Some(at) = w.at(key) else {
                return Reply::error("Killing Cassandra Failed");
            };
            let was_running = w.node(&at).is_some_and(|n| n.running());
            let mut e = w.entry("stop", &at.cluster, Some(&at), "ok");
            if !was_running {
                e.detail = Some("Cassandra already stopped".into());
            }
            w.record(e);
            w.kill_process(&at);
            Reply::text(StatusCode::OK, "OK\n")
        })
    }

    pub(crate) fn pid(&self, key: &PodKey) -> Reply {
        let w = self.lock();
        match w.at(key).and_then(|at| w.node(&at).cloned()) {
            Some(n) if n.running() => Reply::text(StatusCode::OK, n.pid.to_string()),
            _ => Reply::empty(StatusCode::NO_CONTENT),
        }
    }

    pub(crate) fn readiness(&self, key: &PodKey) -> Reply {
        let w = self.lock();
        let ok = w
            .at(key)
            .and_then(|at| w.node(&at))
            .is_some_and(|n| n.state == CassandraState::Normal);
        if ok {
            Reply::ok()
        } else {
            Reply::empty(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }

    pub(crate) fn drain(self: &Arc<Self>, key: &PodKey) -> Reply {
        self.with(|w, _| {
            let Some(at) = w.at(key) else {
                return not_running();
            };
            let Some(node) = w.node(&at) else {
                return not_running();
            };
            if !node.cql_up() {
                return not_running();
            }
            let e = w.entry("drain", &at.cluster, Some(&at), "ok");
            w.record(e);
            if let Some(node) = w.node_mut(&at) {
                node.state = CassandraState::Drained;
                node.generation += 1;
            }
            Reply::ok()
        })
    }

    // ----- decommission and jobs ----------------------------------------------------------

    /// Starts a decommission; Ok(job id), or the reply when Cassandra can't be reached.
    pub(crate) fn decommission(
        self: &Arc<Self>,
        key: &PodKey,
        force: bool,
        asynchronous: bool,
    ) -> Result<String, Reply> {
        self.with(|w, fx| {
            let at = w.at(key).ok_or_else(not_running)?;
            let node = w.node(&at).cloned().ok_or_else(not_running)?;
            if !node.cql_up() {
                return Err(not_running());
            }
            let job = w.new_job(
                &at,
                "decommission",
                Some(format!("force={force} async={asynchronous}")),
            );
            if node.state != CassandraState::Normal {
                let msg = format!(
                    "Node in {:?} state; wait for status to become normal or restart",
                    node.state
                );
                w.finish_job(&job, Some(msg));
                return Ok(job);
            }
            if !force && let Some(msg) = rf_blocks_decommission(w, &at.cluster, &node) {
                w.finish_job(&job, Some(msg));
                return Ok(job);
            }
            // Its ranges stream to the nodes that take them over; a down one fails the
            // stream (the real node fails after RING_DELAY, the simulator at once).
            if let Some(down) = w.replica_down(&at.cluster, &node.dc, &[node.id]) {
                let msg = format!(
                    "Stream failed: a node receiving this node's ranges is down (/{down}); unable to decommission"
                );
                w.violate(
                    "decommission_replica_down",
                    &at.cluster,
                    node.pod.clone(),
                    &msg,
                );
                w.finish_job(&job, Some(msg));
                return Ok(job);
            }
            let Some(n) = w.node_mut(&at) else {
                return Err(not_running());
            };
            n.state = CassandraState::Leaving;
            n.set_gossip(Some(Gossip::Leaving));
            n.generation += 1;
            let generation = n.generation;
            tracing::info!(pod = %key, "decommission started");
            let delay = w.cfg.ring_delay + w.cfg.decommission_delay;
            let job_id = job.clone();
            fx.after(delay, move |w| {
                let Some(n) = w.node_mut(&at) else { return };
                if n.generation != generation || n.state != CassandraState::Leaving {
                    return;
                }
                n.state = CassandraState::Left;
                n.set_gossip(None);
                n.decommissioned = true;
                n.generation += 1;
                tracing::info!(pod = ?n.pod, "decommission completed");
                w.finish_job(&job_id, None);
            });
            Ok(job)
        })
    }

    /// Submits a job; Ok(None) when the real API would answer without one.
    pub(crate) fn submit_job(
        self: &Arc<Self>,
        key: &PodKey,
        kind: JobKind,
    ) -> Result<String, Reply> {
        self.with(|w, fx| {
            let at = w.at(key).ok_or_else(not_running)?;
            let node = w.node(&at).cloned().ok_or_else(not_running)?;
            if !node.cql_up() {
                return Err(not_running());
            }
            let detail = match &kind {
                JobKind::Rebuild { src_dc } => src_dc.as_ref().map(|d| format!("src_dc={d}")),
                JobKind::Move { token } => Some(format!("new_token={token}")),
                other => other.keyspace().map(|k| format!("keyspace={k}")),
            };
            let job = w.new_job(&at, kind.job_type(), detail);
            let cluster = w.clusters.get(&at.cluster);
            let mut error = None;
            if let Some(ks) = kind.keyspace()
                && !matches!(ks, "ALL" | "all" | "NON_LOCAL_STRATEGY")
                && !cluster.is_some_and(|c| c.keyspaces.contains_key(ks))
            {
                error = Some(format!("Unknown keyspace {ks}"));
            }
            if let JobKind::Rebuild { src_dc: Some(dc) } = &kind {
                let dcs: Vec<String> = cluster
                    .map(|c| {
                        let mut v: Vec<String> = c
                            .nodes
                            .values()
                            .filter(|n| n.in_ring())
                            .map(|n| n.dc.clone())
                            .collect();
                        v.sort();
                        v.dedup();
                        v
                    })
                    .unwrap_or_default();
                if !dcs.contains(dc) {
                    error = Some(format!(
                        "Provided datacenter '{dc}' is not a valid datacenter, available datacenters are: {}",
                        dcs.join(",")
                    ));
                }
            }
            if matches!(kind, JobKind::Cleanup { .. })
                && let Some(moving) = w.range_movement_in_progress(&at.cluster, at.node, &node.dc)
            {
                let msg = format!(
                    "Node is involved in cluster membership changes. Not safe to run cleanup. ({moving})"
                );
                w.violate(
                    "cleanup_during_range_movement",
                    &at.cluster,
                    node.pod.clone(),
                    &msg,
                );
                error = Some(msg);
            }
            if let Some(e) = error {
                w.finish_job(&job, Some(e));
                return Ok(job);
            }
            let generation = node.generation;
            let job_id = job.clone();
            let moving = matches!(kind, JobKind::Move { .. });
            if moving && let Some(n) = w.node_mut(&at) {
                n.moving = true;
            }
            fx.after(w.cfg.job_duration, move |w| {
                let still_up = w
                    .node(&at)
                    .is_some_and(|n| n.generation == generation && n.cql_up());
                if moving && let Some(n) = w.node_mut(&at) {
                    n.moving = false;
                }
                let err = (!still_up).then(|| "Cassandra process stopped".to_string());
                w.finish_job(&job_id, err);
            });
            Ok(job)
        })
    }

    /// Status of a job as `ops/executor/job` answers it (None: not found on this node).
    pub(crate) fn job_status(
        &self,
        key: &PodKey,
        id: &str,
    ) -> Option<(String, String, Option<String>)> {
        let w = self.lock();
        let at = w.at(key)?;
        let job = w.jobs.get(id).filter(|j| j.node == at.node)?;
        Some((
            job.status.as_str().to_string(),
            job.job_type.clone(),
            job.error.clone(),
        ))
    }

    pub(crate) fn job_reply(&self, key: &PodKey, id: &str) -> Reply {
        let w = self.lock();
        let job = w
            .at(key)
            .and_then(|at| w.jobs.get(id).filter(|j| j.node == at.node));
        match job {
            None => Reply::json(StatusCode::NOT_FOUND, json!({})),
            Some(j) => {
                // The real executor hands back a map of strings, times included.
                let mut m = serde_json::Map::new();
                m.insert("id".into(), json!(j.id));
                m.insert("type".into(), json!(j.job_type));
                m.insert("status".into(), json!(j.status.as_str()));
                m.insert("submit_time".into(), json!(j.submit_ms.to_string()));
                m.insert("end_time".into(), json!(j.end_ms.unwrap_or(0).to_string()));
                if let Some(e) = &j.error {
                    m.insert("error".into(), json!(e));
                }
                Reply::json(StatusCode::OK, Value::Object(m))
            }
        }
    }

    // ----- metadata -----------------------------------------------------------------------

    fn with_cql<R>(
        &self,
        key: &PodKey,
        f: impl FnOnce(&World, &At, &Node) -> R,
    ) -> Result<R, Reply> {
        let w = self.lock();
        let at = w.at(key).ok_or_else(not_running)?;
        let node = w.node(&at).ok_or_else(not_running)?;
        if !node.cql_up() {
            return Err(not_running());
        }
        Ok(f(&w, &at, node))
    }

    pub(crate) fn endpoints(&self, key: &PodKey) -> Reply {
        let r = self.with_cql(key, |w, at, _| {
            let Some(c) = w.clusters.get(&at.cluster) else {
                return json!({"entity": []});
            };
            let hidden: BTreeSet<NodeId> = c
                .nodes
                .values()
                .filter_map(|r| {
                    let old = c.nodes.get(&r.replacing?)?;
                    (r.ip.is_some() && r.ip == old.ip).then_some(old.id)
                })
                .collect();
            let entity: Vec<Value> = c
                .nodes
                .values()
                .filter(|n| n.in_ring())
                // Gossip holds one state per address: a same-address replacement hides the
                // node it replaces.
                .filter(|n| !hidden.contains(&n.id))
                .map(|n| endpoint_state(w, c, n, at.node))
                .collect();
            json!({ "entity": entity, "variant": {"language": null, "mediaType": {"type": "application", "subtype": "json", "parameters": {}, "wildcardType": false, "wildcardSubtype": false}, "encoding": null, "languageString": null}, "annotations": [], "mediaType": {"type": "application", "subtype": "json", "parameters": {}, "wildcardType": false, "wildcardSubtype": false}, "language": null, "encoding": null })
        });
        match r {
            Ok(v) => Reply::json(StatusCode::OK, v),
            Err(e) => e,
        }
    }

    pub(crate) fn localdc(&self, key: &PodKey) -> Reply {
        match self.with_cql(key, |_, _, n| n.dc.clone()) {
            Ok(dc) => Reply::text(StatusCode::OK, dc),
            Err(e) => e,
        }
    }

    pub(crate) fn release_version(&self, key: &PodKey) -> Reply {
        match self.with_cql(key, |_, _, n| n.server_version.clone()) {
            Ok(v) => Reply::text(StatusCode::OK, v),
            Err(e) => e,
        }
    }

    pub(crate) fn features(&self, key: &PodKey) -> Reply {
        match self.with_cql(key, |_, _, n| n.server_version.clone()) {
            Ok(v) => Reply::json(
                StatusCode::OK,
                json!({
                    "cassandra_version": v,
                    "features": [
                        "async_sstable_tasks", "full_query_logging", "rebuild",
                        "async_upgrade_sstable_task", "async_compaction_task", "async_scrub_task",
                        "async_move_task", "async_gc_task", "reload_internode_truststore",
                        "async_flush_task"
                    ],
                    "mgmt_version": ""
                }),
            ),
            Err(e) => e,
        }
    }

    pub(crate) fn schema_versions(&self, key: &PodKey) -> Reply {
        let r = self.with_cql(key, |w, at, _| {
            let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
            if let Some(c) = w.clusters.get(&at.cluster) {
                for n in c.nodes.values().filter(|n| n.in_ring()) {
                    let ip = n.ip.clone().unwrap_or_default();
                    let bucket = if w.alive(n) && n.cql_up() {
                        c.schema_version.to_string()
                    } else {
                        "UNREACHABLE".to_string()
                    };
                    out.entry(bucket).or_default().push(ip);
                }
            }
            json!(out)
        });
        match r {
            Ok(v) => Reply::json(StatusCode::OK, v),
            Err(e) => e,
        }
    }

    /// Re-resolves the node's seed list, as `ops/seeds/reload` makes the seed provider do.
    pub(crate) fn reload_seeds(self: &Arc<Self>, key: &PodKey) -> Reply {
        self.with(|w, _| {
            let Some(at) = w.at(key) else {
                return not_running();
            };
            if !w.node(&at).is_some_and(|n| n.cql_up()) {
                return not_running();
            }
            let Some(info) = w.pods.get(key).map(|p| p.info.clone()) else {
                return not_running();
            };
            let seeds = w.resolve_seeds(&info);
            if let Some(n) = w.node_mut(&at) {
                n.resolved_seeds = seeds.clone();
            }
            let mut e = w.entry("seeds_reload", &at.cluster, Some(&at), "ok");
            e.detail = Some(format!("{seeds:?}"));
            w.record(e);
            let answer: Vec<String> = seeds.iter().map(|ip| format!("/{ip}")).collect();
            Reply::json(StatusCode::OK, json!(answer))
        })
    }

    pub(crate) fn probe_cluster(&self, key: &PodKey, cl: Option<&str>, rf: Option<i64>) -> Reply {
        let cl = cl.unwrap_or("LOCAL_QUORUM").to_ascii_uppercase();
        let rf = rf.unwrap_or(3);
        if rf <= 0 {
            return Reply::error("rf_per_dc must be > 0");
        }
        let rf = rf as usize;
        let r = self.with_cql(key, |w, at, me| {
            let mut per_dc: BTreeMap<String, (usize, usize)> = BTreeMap::new();
            if let Some(c) = w.clusters.get(&at.cluster) {
                for n in c.nodes.values().filter(|n| n.in_ring()) {
                    let e = per_dc.entry(n.dc.clone()).or_default();
                    e.0 += 1;
                    if w.alive(n) && n.state == CassandraState::Normal {
                        e.1 += 1;
                    }
                }
            }
            consistency_problems(&cl, rf, &me.dc, &per_dc)
        });
        match r {
            Err(e) => e,
            Ok(Err(msg)) => Reply::error(msg),
            Ok(Ok(problems)) if problems.is_empty() => Reply::empty(StatusCode::OK),
            Ok(Ok(problems)) => Reply::json(StatusCode::INTERNAL_SERVER_ERROR, json!(problems)),
        }
    }

    // ----- keyspaces and roles ------------------------------------------------------------

    pub(crate) fn list_keyspaces(&self, key: &PodKey, filter: Option<&str>) -> Reply {
        let r = self.with_cql(key, |w, at, _| {
            w.clusters
                .get(&at.cluster)
                .map(|c| {
                    c.keyspaces
                        .keys()
                        .filter(|k| filter.is_none_or(|f| f.is_empty() || f == k.as_str()))
                        .cloned()
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        });
        match r {
            Ok(v) => Reply::json(StatusCode::OK, json!(v)),
            Err(e) => e,
        }
    }

    pub(crate) fn replication(&self, key: &PodKey, name: Option<&str>) -> Reply {
        let Some(name) = name.filter(|n| !n.trim().is_empty()) else {
            return Reply::bad_request(
                "Get keyspace replication failed. Non-empty 'keyspaceName' must be provided",
            );
        };
        let r = self.with_cql(key, |w, at, _| {
            w.clusters
                .get(&at.cluster)
                .and_then(|c| c.keyspaces.get(name))
                .map(|r| r.to_map())
        });
        match r {
            Ok(Some(m)) => Reply::json(StatusCode::OK, json!(m)),
            Ok(None) => Reply::text(
                StatusCode::NOT_FOUND,
                format!("Get keyspace replication failed. Keyspace '{name}' does not exist."),
            ),
            Err(e) => e,
        }
    }

    pub(crate) fn create_or_alter_keyspace(
        self: &Arc<Self>,
        key: &PodKey,
        alter: bool,
        name: &str,
        settings: BTreeMap<String, u32>,
    ) -> Reply {
        let verb = if alter {
            "Altering Keyspace"
        } else {
            "Keyspace creation"
        };
        if name.trim().is_empty() {
            return Reply::bad_request(format!(
                "{verb} failed. Non-empty 'keyspace_name' must be provided"
            ));
        }
        if settings.is_empty() {
            return Reply::bad_request(format!(
                "{verb} failed. Non-empty 'replication_settings' must be provided"
            ));
        }
        self.with(|w, _| {
            let Some(at) = w.at(key) else {
                return not_running();
            };
            if !w.node(&at).is_some_and(|n| n.cql_up()) {
                return not_running();
            }
            let action = if alter {
                "keyspace_alter"
            } else {
                "keyspace_create"
            };
            let c = w.cluster_mut(&at.cluster);
            let changed = if alter {
                match c.keyspaces.get_mut(name) {
                    Some(r) => {
                        *r = Replication::Nts(settings.clone());
                        true
                    }
                    None => {
                        return Reply::error(format!("Keyspace '{name}' doesn't exist"));
                    }
                }
            } else if c.keyspaces.contains_key(name) {
                // CREATE KEYSPACE IF NOT EXISTS
                false
            } else {
                c.keyspaces
                    .insert(name.to_string(), Replication::Nts(settings.clone()));
                true
            };
            if changed {
                w.bump_schema(&at.cluster);
            }
            let mut e = w.entry(
                action,
                &at.cluster,
                Some(&at),
                if changed { "ok" } else { "unchanged" },
            );
            e.detail = Some(format!("{name} {settings:?}"));
            w.record(e);
            Reply::ok()
        })
    }

    pub(crate) fn create_role(
        self: &Arc<Self>,
        key: &PodKey,
        username: Option<&str>,
        password: Option<&str>,
        superuser: bool,
        login: bool,
    ) -> Reply {
        let Some(username) = username.filter(|u| !u.trim().is_empty()) else {
            return Reply::bad_request("Username is empty");
        };
        let Some(password) = password.filter(|p| !p.trim().is_empty()) else {
            return Reply::bad_request("Password is empty");
        };
        self.with(|w, _| {
            let Some(at) = w.at(key) else {
                return not_running();
            };
            if !w.node(&at).is_some_and(|n| n.cql_up()) {
                return not_running();
            }
            w.cluster_mut(&at.cluster).roles.insert(
                username.to_string(),
                Role {
                    superuser,
                    login,
                    password_hash: Some(hash_password(password)),
                },
            );
            let mut e = w.entry("role_create", &at.cluster, Some(&at), "ok");
            e.detail = Some(format!("{username} superuser={superuser} login={login}"));
            w.record(e);
            Reply::ok()
        })
    }

    pub(crate) fn list_roles(&self, key: &PodKey) -> Reply {
        let r = self.with_cql(key, |w, at, _| {
            w.clusters
                .get(&at.cluster)
                .map(|c| {
                    c.roles
                        .iter()
                        .map(|(name, r)| {
                            json!({
                                "name": name,
                                "super": r.superuser,
                                "login": r.login,
                                "options": "{}",
                                "datacenters": "ALL",
                            })
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        });
        match r {
            Ok(v) => Reply::json(StatusCode::OK, json!(v)),
            Err(e) => e,
        }
    }

    pub(crate) fn drop_role(self: &Arc<Self>, key: &PodKey, username: Option<&str>) -> Reply {
        let Some(username) = username.filter(|u| !u.trim().is_empty()) else {
            return Reply::bad_request("Username is empty");
        };
        self.with(|w, _| {
            let Some(at) = w.at(key) else {
                return not_running();
            };
            if !w.node(&at).is_some_and(|n| n.cql_up()) {
                return not_running();
            }
            let existed = w.cluster_mut(&at.cluster).roles.remove(username).is_some();
            let mut e = w.entry(
                "role_drop",
                &at.cluster,
                Some(&at),
                if existed { "ok" } else { "error" },
            );
            e.detail = Some(username.to_string());
            w.record(e);
            if existed {
                Reply::ok()
            } else {
                Reply::error(format!("{username} doesn't exist"))
            }
        })
    }

    pub(crate) fn list_tables(&self, key: &PodKey, keyspace: Option<&str>) -> Reply {
        let Some(ks) = keyspace.filter(|k| !k.trim().is_empty()) else {
            return Reply::bad_request(
                "List tables failed. Non-empty 'keyspaceName' must be provided",
            );
        };
        let r = self.with_cql(key, |w, at, _| {
            w.clusters
                .get(&at.cluster)
                .and_then(|c| c.tables.get(ks))
                .map(|t| t.iter().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        });
        match r {
            Ok(v) => Reply::json(StatusCode::OK, json!(v)),
            Err(e) => e,
        }
    }

    pub(crate) fn create_table(
        self: &Arc<Self>,
        key: &PodKey,
        keyspace: &str,
        table: &str,
    ) -> Reply {
        if keyspace.trim().is_empty() || table.trim().is_empty() {
            return Reply::bad_request(
                "Table creation failed: 'keyspace_name' and 'table_name' must be provided",
            );
        }
        self.with(|w, _| {
            let Some(at) = w.at(key) else {
                return not_running();
            };
            if !w.node(&at).is_some_and(|n| n.cql_up()) {
                return not_running();
            }
            let c = w.cluster_mut(&at.cluster);
            if !c.keyspaces.contains_key(keyspace) {
                return Reply::bad_request(format!("Keyspace '{keyspace}' does not exist"));
            }
            let added = c
                .tables
                .entry(keyspace.to_string())
                .or_default()
                .insert(table.to_string());
            if !added {
                // As CREATE TABLE without IF NOT EXISTS.
                return Reply::bad_request(format!("Table {keyspace}.{table} already exists"));
            }
            w.bump_schema(&at.cluster);
            let mut e = w.entry("table_create", &at.cluster, Some(&at), "ok");
            e.detail = Some(format!("{keyspace}.{table}"));
            w.record(e);
            Reply::ok()
        })
    }

    /// Operations the simulator only acknowledges (and records), such as truststore reloads.
    pub(crate) fn acknowledge(
        self: &Arc<Self>,
        key: &PodKey,
        action: &str,
        detail: Option<String>,
    ) -> Reply {
        self.with(|w, _| {
            let Some(at) = w.at(key) else {
                return not_running();
            };
            if !w.node(&at).is_some_and(|n| n.cql_up()) {
                return not_running();
            }
            let mut e = w.entry(action, &at.cluster, Some(&at), "ok");
            e.detail = detail;
            w.record(e);
            Reply::ok()
        })
    }

    pub(crate) fn full_query_logging(self: &Arc<Self>, key: &PodKey, set: Option<bool>) -> Reply {
        self.with(|w, _| {
            let Some(at) = w.at(key) else {
                return not_running();
            };
            let Some(n) = w.node_mut(&at).filter(|n| n.cql_up()) else {
                return not_running();
            };
            match set {
                Some(v) => {
                    n.full_query_logging = v;
                    Reply::ok()
                }
                None => Reply::json(StatusCode::OK, json!({"entity": n.full_query_logging})),
            }
        })
    }

    /// `lifecycle/configure`: refused while Cassandra runs, otherwise accepted as is.
    pub(crate) fn configure(&self, key: &PodKey) -> Reply {
        let w = self.lock();
        let running = w
            .at(key)
            .and_then(|at| w.node(&at))
            .is_some_and(|n| n.running());
        if running {
            Reply::text(
                StatusCode::NOT_ACCEPTABLE,
                "Cassandra is running, try /api/v0/lifecycle/stop first\n",
            )
        } else {
            Reply::text(StatusCode::OK, "OK\n")
        }
    }

    // ----- control --------------------------------------------------------------------------

    pub(crate) fn create_user_keyspace(self: &Arc<Self>, req: &KeyspaceRequest) {
        self.with(|w, _| {
            w.cluster_mut(&req.cluster)
                .keyspaces
                .insert(req.name.clone(), Replication::Nts(req.replication.clone()));
            w.bump_schema(&req.cluster);
            let mut e = w.entry("keyspace_create", &req.cluster, None, "ok");
            e.detail = Some(format!("{} {:?} (control API)", req.name, req.replication));
            w.record(e);
        });
    }

    /// Applies a fault request; Err when the target names nothing known.
    pub(crate) fn set_fault(self: &Arc<Self>, req: &FaultRequest) -> Result<(), String> {
        self.with(|w, _| {
            w.dirty_all = true;
            w.listeners_dirty = true;
            match &req.target {
                FaultTarget::Cluster(name) => {
                    let c = w.cluster_mut(name);
                    if req.clear {
                        c.fault = Fault::default();
                    }
                    if let Some(f) = &req.fault {
                        c.fault = f.clone();
                    }
                    let dead = c.fault.dead;
                    if dead {
                        let ids: Vec<NodeId> = c.nodes.keys().copied().collect();
                        for id in ids {
                            w.kill_process(&At {
                                cluster: name.clone(),
                                node: id,
                            });
                        }
                    }
                    if req.wipe {
                        let keys: Vec<PodKey> = w
                            .pods
                            .iter()
                            .filter(|(_, p)| &p.info.cluster == name)
                            .map(|(k, _)| k.clone())
                            .collect();
                        for k in keys {
                            wipe(w, &k);
                        }
                    }
                    let mut e = w.entry("fault", name, None, "ok");
                    e.detail = Some(format!("{req:?}"));
                    w.record(e);
                }
                target => {
                    let key = resolve_target(w, target)?;
                    if req.clear {
                        w.pod_faults.remove(&key);
                    }
                    if let Some(f) = &req.fault {
                        if f.is_none() {
                            w.pod_faults.remove(&key);
                        } else {
                            w.pod_faults.insert(key.clone(), f.clone());
                        }
                    }
                    if w.effective_fault(&key).dead
                        && let Some(at) = w.at(&key)
                    {
                        w.kill_process(&at);
                    }
                    if req.wipe {
                        wipe(w, &key);
                    }
                    let cluster = w
                        .pods
                        .get(&key)
                        .map(|p| p.info.cluster.clone())
                        .unwrap_or_default();
                    let at = w.at(&key);
                    let mut e = w.entry("fault", &cluster, at.as_ref(), "ok");
                    e.pod = Some(key.clone());
                    e.detail = Some(format!("{req:?}"));
                    w.record(e);
                }
            }
            Ok(())
        })
    }

    pub(crate) fn history(&self) -> Vec<HistoryEntry> {
        self.lock().history.clone()
    }

    pub(crate) fn violations(&self) -> Vec<Violation> {
        self.lock().violations.clone()
    }

    pub(crate) fn state(&self) -> SimState {
        let w = self.lock();
        let clusters = w
            .clusters
            .values()
            .map(|c| ClusterView {
                name: c.name.clone(),
                schema_version: c.schema_version.to_string(),
                nodes: c
                    .nodes
                    .values()
                    .map(|n| NodeView {
                        host_id: n.host_id.map(|h| h.to_string()),
                        ip: n.ip.clone(),
                        datacenter: n.dc.clone(),
                        rack: n.rack.clone(),
                        seed: n.seed,
                        pod: n.pod.clone(),
                        mgmt_api_up: w.mgmt_up(n),
                        cassandra: n.state,
                        gossip_status: n.gossip_text(),
                        alive: w.alive(n),
                        tokens: n.tokens.clone(),
                        load_bytes: n.load_bytes,
                        schema_version: c.schema_version.to_string(),
                        server_version: n.server_version.clone(),
                        ready: n.state == CassandraState::Normal && w.mgmt_up(n),
                        cluster_name: n.cluster_name.clone(),
                        resolved_seeds: n.resolved_seeds.clone(),
                        wiped: n.pod.is_none(),
                        decommissioned: n.decommissioned,
                        fault: n
                            .pod
                            .as_ref()
                            .and_then(|k| w.pod_faults.get(k).cloned())
                            .unwrap_or_default(),
                    })
                    .collect(),
                keyspaces: c
                    .keyspaces
                    .iter()
                    .map(|(k, r)| KeyspaceView {
                        name: k.clone(),
                        replication: r.to_map(),
                        tables: c
                            .tables
                            .get(k)
                            .map(|t| t.iter().cloned().collect())
                            .unwrap_or_default(),
                    })
                    .collect(),
                roles: c
                    .roles
                    .iter()
                    .map(|(k, r)| RoleView {
                        name: k.clone(),
                        superuser: r.superuser,
                        login: r.login,
                        password_set: r.password_hash.is_some(),
                    })
                    .collect(),
                jobs: {
                    let mut jobs: Vec<JobView> = w
                        .jobs
                        .values()
                        .filter(|j| j.cluster == c.name)
                        .map(|j| JobView {
                            id: j.id.clone(),
                            job_type: j.job_type.clone(),
                            status: j.status.as_str().to_string(),
                            pod: j.pod.clone(),
                            host_id: j.host_id.map(|h| h.to_string()),
                            submit_time: ms_text(j.submit_ms),
                            end_time: j.end_ms.map(ms_text),
                            error: j.error.clone(),
                        })
                        .collect();
                    jobs.sort_by(|a, b| a.submit_time.cmp(&b.submit_time));
                    jobs
                },
                fault: c.fault.clone(),
            })
            .collect();
        let pods = w
            .pods
            .iter()
            .map(|(k, p)| PodView {
                key: k.clone(),
                ip: p.info.ip.clone(),
                cluster: p.info.cluster.clone(),
                datacenter: p.info.datacenter.clone(),
                rack: p.info.rack.clone(),
                seed: p.info.seed,
                observed_ready: p.info.observed_ready,
                desired_ready: w.desired_ready(k),
                probed_ready: p.probed_ready,
                listening: p.listening,
                config: p.info.config.clone(),
                config_error: p.info.config_error.clone(),
            })
            .collect();
        SimState {
            config: w.cfg.clone(),
            clusters,
            pods,
        }
    }
}

/// Datacenter and rack the node reports: its configuration's, else its pod's labels.
fn dc_rack(info: &PodInfo) -> (String, String) {
    let c = info.config.as_ref();
    (
        c.and_then(|c| c.datacenter.clone())
            .unwrap_or_else(|| info.datacenter.clone()),
        c.and_then(|c| c.rack.clone())
            .unwrap_or_else(|| info.rack.clone()),
    )
}

fn drop_pod(w: &mut World, key: &PodKey) {
    w.pods.remove(key);
    w.dirty.insert(key.clone());
    w.listeners_dirty = true;
    if let Some(at) = w.at(key) {
        w.kill_process(&at);
        let forget = w
            .node(&at)
            .is_some_and(|n| n.decommissioned || n.host_id.is_none());
        // A decommissioned node's volume goes with it; a never-started one has nothing to keep.
        if forget {
            w.remove_node(&at.cluster, at.node);
        }
    }
}

fn resolve_target(w: &World, target: &FaultTarget) -> Result<PodKey, String> {
    match target {
        FaultTarget::Ip(ip) => w
            .pods
            .iter()
            .find(|(_, p)| p.info.ip.as_deref() == Some(ip.as_str()))
            .map(|(k, _)| k.clone())
            .or_else(|| {
                // A dead pod's IP may only be known from the ring.
                w.clusters
                    .values()
                    .flat_map(|c| c.nodes.values())
                    .find(|n| n.ip.as_deref() == Some(ip.as_str()))
                    .and_then(|n| n.pod.clone())
            })
            .ok_or_else(|| format!("no pod with IP {ip}")),
        FaultTarget::Pod {
            name,
            namespace,
            context,
        } => {
            let known = w
                .pods
                .keys()
                .chain(w.pod_faults.keys())
                .chain(w.node_index.keys());
            let mut found: Vec<PodKey> = known
                .filter(|k| &k.name == name)
                .filter(|k| namespace.as_ref().is_none_or(|n| &k.namespace == n))
                .filter(|k| context.as_ref().is_none_or(|c| &k.context == c))
                .cloned()
                .collect();
            found.sort();
            found.dedup();
            match found.len() {
                1 => Ok(found.remove(0)),
                0 => match (namespace, context) {
                    // A fault may be set ahead of the pod's creation when fully named.
                    (Some(ns), Some(ctx)) => Ok(PodKey::new(ctx, ns, name)),
                    _ => Err(format!("no pod named {name}")),
                },
                _ => Err(format!(
                    "pod name {name} is ambiguous; give namespace and context"
                )),
            }
        }
        FaultTarget::Cluster(_) => Err("cluster target handled elsewhere".into()),
    }
}

/// The pod's volume is lost: its old identity stays in the ring as a dead node.
fn wipe(w: &mut World, key: &PodKey) {
    let Some(at) = w.at(key) else { return };
    w.kill_process(&at);
    let Some(node) = w.node(&at).cloned() else {
        return;
    };
    w.node_index.remove(key);
    let previous = node.host_id.map(|h| (h, node.ip.clone()));
    if node.host_id.is_some() {
        if let Some(n) = w.node_mut(&at) {
            n.pod = None;
        }
    } else {
        w.remove_node(&at.cluster, at.node);
    }
    if let Some(lost) = previous.or(node.wiped_from.clone()) {
        w.wiped_pods.insert(key.clone(), lost);
    }
    // The pod, when it runs, now holds an empty volume: a new, fresh node.
    let info = w.pods.get(key).map(|p| p.info.clone());
    if let Some(info) = info {
        w.new_node_for(&info);
    }
    let mut e = w.entry("wipe", &at.cluster, None, "ok");
    e.pod = Some(key.clone());
    e.host_id = node.host_id.map(|h| h.to_string());
    e.ip = node.ip.clone();
    w.record(e);
}

fn rf_blocks_decommission(w: &World, cluster: &str, node: &Node) -> Option<String> {
    let c = w.clusters.get(cluster)?;
    let n_in_dc = c
        .nodes
        .values()
        .filter(|n| n.in_ring() && n.dc == node.dc)
        .count();
    c.keyspaces.iter().find_map(|(ks, r)| match r {
        Replication::Nts(dcs) => {
            let rf = *dcs.get(&node.dc)? as usize;
            (n_in_dc <= rf && rf > 0).then(|| {
                format!(
                    "Not enough live nodes to maintain replication factor in keyspace {ks} (RF = {rf}, N = {n_in_dc}). Perform a forceful decommission to ignore."
                )
            })
        }
        _ => None,
    })
}

fn consistency_problems(
    cl: &str,
    rf: usize,
    local_dc: &str,
    per_dc: &BTreeMap<String, (usize, usize)>,
) -> Result<BTreeMap<String, Vec<String>>, String> {
    let quorum = rf / 2 + 1;
    let (scope_local, need): (bool, usize) = match cl {
        "ONE" | "ANY" => (false, 1),
        "TWO" => (false, 2),
        "THREE" => (false, 3),
        "LOCAL_ONE" => (true, 1),
        "LOCAL_QUORUM" => (true, quorum),
        "EACH_QUORUM" => (false, quorum),
        "QUORUM" => (false, quorum),
        "ALL" => (false, rf),
        other => {
            return Err(format!(
                "No enum constant org.apache.cassandra.db.ConsistencyLevel.{other}"
            ));
        }
    };
    let range = "[-9223372036854775808, 9223372036854775807]".to_string();
    let mut problems: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let dcs: Vec<(&String, &(usize, usize))> = per_dc
        .iter()
        .filter(|(dc, _)| !scope_local || dc.as_str() == local_dc)
        .collect();
    for (dc, (total, live)) in &dcs {
        if *total < rf {
            problems.entry(range.clone()).or_default().push(format!(
                "{rf} replicas required, but only {total} nodes in the ring ({dc})"
            ));
        }
        let per_dc_rule = scope_local || matches!(cl, "EACH_QUORUM" | "ALL");
        if per_dc_rule && *live < need {
            problems.entry(range.clone()).or_default().push(format!(
                "{need} replicas required in {dc}, but only {live} are alive"
            ));
        }
    }
    if !(scope_local || matches!(cl, "EACH_QUORUM" | "ALL")) {
        let live: usize = dcs.iter().map(|(_, (_, l))| l).sum();
        let need = if cl == "QUORUM" {
            (rf * dcs.len().max(1)) / 2 + 1
        } else {
            need
        };
        if live < need {
            problems.entry(range).or_default().push(format!(
                "{need} replicas required, but only {live} are alive"
            ));
        }
    }
    Ok(problems)
}

/// One node's gossip state as `local` (the answering node) sees it.
fn endpoint_state(w: &World, c: &Cluster, n: &Node, local: NodeId) -> Value {
    let ip = n.ip.clone().unwrap_or_default();
    let is_local = n.id == local;
    let mut m = serde_json::Map::new();
    m.insert("ENDPOINT_IP".into(), json!(ip));
    if let Some(h) = n.host_id {
        m.insert("HOST_ID".into(), json!(h.to_string()));
    }
    // A node knows its own state at once; the others learn it through gossip.
    let status = if is_local {
        n.gossip_text()
    } else {
        n.status_text(w.seen_gossip(n))
    };
    m.insert("IS_LOCAL".into(), json!(is_local.to_string()));
    m.insert("CLUSTER_NAME".into(), json!(n.cluster_name));
    m.insert(
        "PARTITIONER".into(),
        json!("org.apache.cassandra.dht.Murmur3Partitioner"),
    );
    if let Some(s) = status {
        m.insert("STATUS".into(), json!(s));
        m.insert("STATUS_WITH_PORT".into(), json!(s));
    }
    m.insert("DC".into(), json!(n.dc));
    m.insert("RACK".into(), json!(n.rack));
    m.insert("TOKENS".into(), json!("<hidden>"));
    m.insert("LOAD".into(), json!(format!("{}.0", n.load_bytes)));
    m.insert("SCHEMA".into(), json!(c.schema_version.to_string()));
    m.insert("RELEASE_VERSION".into(), json!(n.server_version));
    m.insert(
        "NATIVE_ADDRESS_AND_PORT".into(),
        json!(format!("{ip}:9042")),
    );
    m.insert("RPC_ADDRESS".into(), json!(ip));
    m.insert("INTERNAL_IP".into(), json!(ip));
    m.insert(
        "INTERNAL_ADDRESS_AND_PORT".into(),
        json!(format!("{ip}:7000")),
    );
    m.insert("NET_VERSION".into(), json!("12"));
    m.insert("SSTABLE_VERSIONS".into(), json!("big-nb"));
    m.insert(
        "RPC_READY".into(),
        json!((n.state == CassandraState::Normal).to_string()),
    );
    m.insert("IS_ALIVE".into(), json!(w.alive(n).to_string()));
    Value::Object(m)
}

fn is_ipv4(s: &str) -> bool {
    s.parse::<Ipv4Addr>().is_ok()
}

/// A cluster label as cass-operator turns it into a Service name prefix: lower case,
/// `_` to `-`, other characters outside `[a-z0-9-]` dropped.
pub(crate) fn clean_name(s: &str) -> String {
    s.to_ascii_lowercase()
        .replace('_', "-")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect::<String>()
        .trim_matches('-')
        .to_string()
}

/// The effective settings a start runs with: the pod's configuration, else its labels and
/// the simulator's defaults.
struct StartSettings {
    cluster_name: String,
    num_tokens: usize,
    consistent: bool,
    replace_first_boot: Option<String>,
}

fn start_settings(w: &World, pod: &PodInfo) -> StartSettings {
    match &pod.config {
        Some(c) => StartSettings {
            cluster_name: c.cluster_name.clone(),
            num_tokens: c.num_tokens,
            consistent: c.consistent_rangemovement,
            replace_first_boot: c.replace_address_first_boot.clone(),
        },
        None => StartSettings {
            cluster_name: pod.cluster.clone(),
            num_tokens: w.cfg.num_tokens,
            consistent: true,
            replace_first_boot: None,
        },
    }
}

fn start_node(w: &mut World, fx: &mut Effects, key: &PodKey, replace_ip: Option<String>) -> Reply {
    let Some(pod) = w.pods.get(key).map(|p| p.info.clone()) else {
        return Reply::error("pod unknown to the simulator");
    };
    let at = match w.at(key) {
        Some(at) => at,
        None => {
            let id = w.new_node_for(&pod);
            At {
                cluster: pod.cluster.clone(),
                node: id,
            }
        }
    };
    let Some(node) = w.node(&at).cloned() else {
        return Reply::error("node unknown to the simulator");
    };
    let mut entry = w.entry("start", &at.cluster, Some(&at), "accepted");
    entry.replace_ip = replace_ip.clone();
    entry.ip = pod.ip.clone();

    if node.running() {
        entry.outcome = "already-running".into();
        w.record(entry);
        // pid found: 202 when CQL answers, 204 while it does not yet.
        return Reply::empty(if node.cql_up() && node.state != CassandraState::Joining {
            StatusCode::ACCEPTED
        } else {
            StatusCode::NO_CONTENT
        });
    }

    if let Some(err) = &pod.config_error {
        let msg = format!("cannot read the node's configuration: {err}");
        entry.outcome = "refused".into();
        entry.detail = Some(msg.clone());
        w.record(entry);
        return Reply::error(msg);
    }

    let refuse = |w: &mut World, mut entry: HistoryEntry, rule: &str, msg: String| {
        w.violate(rule, &at.cluster, Some(key.clone()), &msg);
        entry.outcome = "refused".into();
        entry.detail = Some(msg.clone());
        w.record(entry);
        Reply::error(msg)
    };

    let settings = start_settings(w, &pod);
    // The operator's replace_ip, else the JVM option the pod was rendered with.
    let replace_ip = replace_ip.or(settings.replace_first_boot.clone());
    if let Some(ip) = &replace_ip
        && !is_ipv4(ip)
    {
        entry.outcome = "refused".into();
        w.record(entry);
        return Reply::error(format!("Invalid replace IP passed: {ip}"));
    }
    if node.decommissioned {
        return refuse(
            w,
            entry,
            "decommissioned_restart",
            "This node was decommissioned and will not rejoin the ring unless cassandra.override_decommission=true has been set".into(),
        );
    }

    let fresh = node.host_id.is_none();
    // What the node has on disk is checked before it talks to anyone.
    if !fresh {
        if let Some(saved) = &node.saved_cluster_name
            && saved != &settings.cluster_name
        {
            return refuse(
                w,
                entry,
                "cluster_name_mismatch",
                format!(
                    "Saved cluster name {saved} != configured name {}",
                    settings.cluster_name
                ),
            );
        }
        if node.tokens.len() != settings.num_tokens {
            return refuse(
                w,
                entry,
                "num_tokens_changed",
                format!(
                    "Cannot change the number of tokens from {} to {}",
                    node.tokens.len(),
                    settings.num_tokens
                ),
            );
        }
    }

    // Seeds are resolved now, as the seed provider does at start.
    let seeds = w.resolve_seeds(&pod);
    let is_seed = match &pod.config {
        Some(_) => pod.ip.as_ref().is_some_and(|ip| seeds.contains(ip)),
        None => pod.seed,
    };
    // Seeds it can gossip with: another node on a seed address, running with a gossip state.
    let live_seeds: Vec<(String, String)> = w
        .clusters
        .values()
        .flat_map(|c| c.nodes.values())
        .filter(|n| n.id != node.id && n.gossip.is_some() && w.alive(n))
        .filter_map(|n| {
            let ip = n
                .pod
                .as_ref()
                .and_then(|k| w.pods.get(k))
                .and_then(|p| p.info.ip.clone())?;
            seeds.contains(&ip).then(|| (ip, n.cluster_name.clone()))
        })
        .collect();
    if let Some((ip, theirs)) = live_seeds
        .iter()
        .find(|(_, name)| name != &settings.cluster_name)
    {
        // Gossip drops messages of another cluster: no shadow round answer from that seed.
        return refuse(
            w,
            entry,
            "cluster_name_mismatch",
            format!(
                "ClusterName mismatch from /{ip} {theirs}!={}: this node does not join that ring",
                settings.cluster_name
            ),
        );
    }
    if !is_seed && live_seeds.is_empty() {
        return refuse(
            w,
            entry,
            "no_live_seed",
            format!(
                "Unable to contact any seeds: {:?} resolve to {:?}, none of them a live node",
                pod.config
                    .as_ref()
                    .map(|c| c.seeds.clone())
                    .unwrap_or_default(),
                seeds
            ),
        );
    }

    // replace_address_first_boot is ignored once the node has data of its own.
    let replace_ip = if fresh { replace_ip } else { None };
    let mut replaced: Option<Node> = None;
    if let Some(ip) = &replace_ip {
        let target = w.clusters.get(&at.cluster).and_then(|c| {
            c.nodes
                .values()
                .find(|n| n.id != node.id && n.in_ring() && n.ip.as_deref() == Some(ip.as_str()))
                .cloned()
        });
        match target {
            None => {
                return refuse(
                    w,
                    entry,
                    "replace_unknown_address",
                    format!("Cannot replace_address /{ip} because it doesn't exist in gossip"),
                );
            }
            Some(t) if w.alive(&t) => {
                return refuse(
                    w,
                    entry,
                    "replace_live_node",
                    format!("Cannot replace a live node /{ip}"),
                );
            }
            Some(t) => replaced = Some(t),
        }
    } else if fresh && let Some((old_host, old_ip)) = &node.wiped_from {
        let still_there = w
            .clusters
            .get(&at.cluster)
            .is_some_and(|c| c.nodes.values().any(|n| n.host_id == Some(*old_host)));
        if still_there {
            let ip = old_ip.clone().unwrap_or_else(|| "?".into());
            return refuse(
                w,
                entry,
                "wiped_without_replace",
                format!(
                    "This node lost its data; its old identity (host {old_host}, /{ip}) is still in the ring. Use cassandra.replace_address (replace_ip={ip}) to replace it"
                ),
            );
        }
    }

    if fresh && is_seed && replaced.is_none() {
        let holders: Vec<String> = w
            .clusters
            .get(&at.cluster)
            .map(|c| {
                c.nodes
                    .values()
                    .filter(|n| n.id != node.id && n.in_ring() && !n.tokens.is_empty())
                    .map(|n| n.ip.clone().unwrap_or_else(|| "?".into()))
                    .collect()
            })
            .unwrap_or_default();
        if !holders.is_empty() {
            return refuse(
                w,
                entry,
                "seed_bootstrap_into_data",
                format!(
                    "A new node started as a seed (its address is in its own seed list) skips bootstrap and would own token ranges without their data; the ring already holds data on {holders:?}"
                ),
            );
        }
    }

    let bootstrap = fresh && (!is_seed || replaced.is_some());
    if bootstrap && settings.consistent {
        if let Some(moving) = w.range_movement_in_progress(&at.cluster, node.id, &node.dc) {
            let rule = if replaced.is_some() {
                "concurrent_range_movement"
            } else {
                "concurrent_bootstrap"
            };
            return refuse(
                w,
                entry,
                rule,
                format!(
                    "Other bootstrapping/leaving/moving nodes detected, cannot bootstrap while cassandra.consistent.rangemovement is true: {moving}"
                ),
            );
        }
        let mut except = vec![node.id];
        except.extend(replaced.as_ref().map(|r| r.id));
        if let Some(down) = w.replica_down(&at.cluster, &node.dc, &except) {
            return refuse(
                w,
                entry,
                "bootstrap_replica_down",
                format!(
                    "A node required to move the data consistently is down (/{down}). If you wish to move the data from a potentially inconsistent replica, restart the node with -Dcassandra.consistent.rangemovement=false"
                ),
            );
        }
    }

    let num_tokens = settings.num_tokens;
    let delay = if bootstrap {
        w.cfg.ring_delay + w.cfg.bootstrap_delay
    } else {
        w.cfg.bootstrap_delay
    };
    w.next_pid += 1;
    let pid = w.next_pid;
    let Some(n) = w.node_mut(&at) else {
        return Reply::error("node vanished");
    };
    n.ip = pod.ip.clone();
    n.seed = is_seed;
    n.resolved_seeds = seeds;
    n.cluster_name = settings.cluster_name.clone();
    n.pid = pid;
    n.generation += 1;
    if fresh {
        n.host_id = Some(Uuid::new_v4());
        n.saved_cluster_name = Some(settings.cluster_name.clone());
        n.tokens = match &replaced {
            Some(r) => r.tokens.clone(),
            None => random_tokens(num_tokens),
        };
        n.replacing = replaced.as_ref().map(|r| r.id);
        n.wiped_from = None;
    }
    if bootstrap {
        n.state = CassandraState::Joining;
        n.set_gossip(Some(Gossip::Boot));
    } else {
        n.state = CassandraState::Starting;
    }
    let generation = n.generation;
    entry.host_id = n.host_id.map(|h| h.to_string());
    // Tests read off the history whether a node streamed its ranges or came up without.
    entry.detail = Some(
        match (fresh, bootstrap) {
            (false, _) => "restart",
            (true, true) => "bootstrap",
            (true, false) => "seed",
        }
        .into(),
    );
    tracing::info!(pod = %key, bootstrap, seed = is_seed, replace_ip = ?replace_ip, "cassandra starting");
    let idx = w.record(entry);

    fx.after(delay, move |w| {
        let Some(n) = w.node_mut(&at) else { return };
        if n.generation != generation
            || !matches!(n.state, CassandraState::Starting | CassandraState::Joining)
        {
            return;
        }
        n.state = CassandraState::Normal;
        n.set_gossip(Some(Gossip::Normal));
        n.load_bytes = n.load_bytes.max(rand::rng().random_range(50_000..200_000));
        let replacing = n.replacing.take();
        tracing::info!(pod = ?n.pod, "cassandra NORMAL");
        // The start's end is when the node is NORMAL: benchmarks measure from there to the
        // operator's next start.
        if let Some(h) = w.history.get_mut(idx) {
            h.end_time = Some(now_text());
        }
        if let Some(old) = replacing {
            w.remove_node(&at.cluster, old);
        }
    });
    Reply::text(StatusCode::CREATED, "OK\n")
}

// ----- what the simulated Reaper reads of the rings (reaper.rs) ---------------------------

impl Core {
    /// The ring a host name or address resolves to from a pod in `context`/`namespace`: a
    /// node's address, `<cluster>-<dc>-service`, `<cluster>-seed-service` or
    /// `<cluster>-<dc>-all-pods-service` (optionally `.<namespace>[.svc...]`). Services
    /// resolve only in their own Kubernetes cluster, as DNS does.
    pub(crate) fn resolve_host(
        &self,
        context: &str,
        namespace: &str,
        host: &str,
    ) -> Option<crate::reaper::Resolved> {
        let w = self.lock();
        let ring_of = |key: &PodKey| -> Option<(String, NodeId)> { w.node_index.get(key).cloned() };
        let mut found: Vec<(String, NodeId)> = Vec::new();
        if host.parse::<IpAddr>().is_ok() {
            for c in w.clusters.values() {
                for n in c.nodes.values() {
                    if n.ip.as_deref() == Some(host)
                        && n.pod.as_ref().is_none_or(|p| p.context == context)
                    {
                        found.push((c.name.clone(), n.id));
                    }
                }
            }
        } else {
            let mut labels = host.split('.');
            let service = labels.next().unwrap_or_default().to_ascii_lowercase();
            let ns = labels
                .next()
                .filter(|ns| !ns.is_empty() && *ns != "svc")
                .unwrap_or(namespace);
            for (k, p) in &w.pods {
                if k.context != context || k.namespace != ns {
                    continue;
                }
                let cluster = clean_name(&p.info.cluster);
                let dc = clean_name(&p.info.datacenter);
                let matches = service == format!("{cluster}-{dc}-service")
                    || service == format!("{cluster}-{dc}-all-pods-service")
                    || (service == format!("{cluster}-seed-service") && p.info.seed);
                if matches && let Some(r) = ring_of(k) {
                    found.push(r);
                }
            }
        }
        let ring = found.first()?.0.clone();
        let c = w.clusters.get(&ring)?;
        let nodes: Vec<&Node> = found
            .iter()
            .filter(|(r, _)| *r == ring)
            .filter_map(|(_, id)| c.nodes.get(id))
            .collect();
        Some(crate::reaper::Resolved {
            ring: ring.clone(),
            cluster_name: nodes
                .first()
                .map(|n| n.cluster_name.clone())
                .unwrap_or(ring),
            live: nodes.iter().any(|n| w.alive(n) && n.cql_up()),
        })
    }

    /// The ring's nodes holding tokens, its keyspaces (replication) and tables.
    pub(crate) fn ring_view(&self, ring: &str) -> Option<crate::reaper::RingView> {
        let w = self.lock();
        let c = w.clusters.get(ring)?;
        let nodes = c
            .nodes
            .values()
            .filter(|n| n.in_ring() && !n.tokens.is_empty())
            .map(|n| crate::reaper::RingNode {
                ip: n.ip.clone().unwrap_or_default(),
                dc: n.dc.clone(),
                tokens: n.tokens.clone(),
                alive: w.alive(n) && n.cql_up(),
                pod: n.pod.clone(),
                host_id: n.host_id.map(|h| h.to_string()),
            })
            .collect();
        let keyspaces = c
            .keyspaces
            .iter()
            .map(|(k, r)| {
                let rep = match r {
                    Replication::Local => crate::reaper::KeyspaceReplication::Local,
                    Replication::Simple(rf) => crate::reaper::KeyspaceReplication::Simple(*rf),
                    Replication::Nts(m) => crate::reaper::KeyspaceReplication::Nts(m.clone()),
                };
                (k.clone(), rep)
            })
            .collect();
        Some(crate::reaper::RingView {
            cluster_name: c
                .nodes
                .values()
                .next()
                .map_or_else(|| ring.to_string(), |n| n.cluster_name.clone()),
            nodes,
            keyspaces,
            tables: c.tables.clone(),
        })
    }

    /// Records one repair session (a segment of a Reaper run) in the ring's history.
    pub(crate) fn record_repair(
        &self,
        ring: &str,
        coordinator: Option<&PodKey>,
        outcome: &str,
        detail: String,
    ) {
        let mut w = self.lock();
        let at = coordinator.and_then(|k| w.at(k));
        let mut e = w.entry("repair", ring, at.as_ref(), outcome);
        e.detail = Some(detail);
        e.end_time = Some(now_text());
        w.record(e);
    }
}

// ----- data and restores (data.rs) --------------------------------------------------------

impl World {
    /// What the pod's init containers do once per pod (uid): Medusa's restore, when the pod
    /// carries one whose key differs from the node's `.last-restore`.
    fn init_containers(&mut self, medusa: &crate::medusa::MedusaStore, info: &PodInfo) {
        let Some(at) = self.at(&info.key) else {
            return;
        };
        let Some(node) = self.node(&at) else {
            return;
        };
        if node.init_uid.as_deref() == Some(info.uid.as_str()) {
            return;
        }
        let last_restore = node.last_restore.clone();
        let dc = node.dc.clone();
        let current = node.data.clone();
        if let Some(n) = self.node_mut(&at) {
            n.init_uid = Some(info.uid.clone());
        }
        let Some(env) = info.restore.clone() else {
            return;
        };
        if last_restore.as_deref() == Some(env.restore_key.as_str()) {
            return;
        }
        let pod = Some(info.key.clone());
        let source = match env.source_of(&info.key.name) {
            Ok(Some((source, _))) => source,
            Ok(None) => {
                // Medusa skips a pod missing from the mapping (KO #1037).
                let mut e = self.entry("restore", &at.cluster, Some(&at), "skipped");
                e.detail = Some(format!(
                    "backup={} key={}: the pod is not in RESTORE_MAPPING",
                    env.backup_name, env.restore_key
                ));
                self.record(e);
                return;
            }
            Err(why) => {
                self.violate("restore_mapping_invalid", &at.cluster, pod, &why);
                return;
            }
        };
        let part = match medusa.restore_source(&at.cluster, &env.backup_name, &source) {
            Ok(part) => part,
            Err(why) => {
                self.violate("restore_unknown_backup", &at.cluster, pod, &why);
                return;
            }
        };
        if part.datacenter != dc {
            self.violate(
                "restore_foreign_datacenter",
                &at.cluster,
                pod.clone(),
                &format!(
                    "restored {} of backup {} taken in datacenter {} into datacenter {dc}",
                    part.host, env.backup_name, part.datacenter
                ),
            );
        }
        let data = match crate::data::restored(&current, &part.data, &env) {
            Ok(data) => data,
            Err(why) => {
                self.violate("restore_not_in_backup", &at.cluster, pod, &why);
                return;
            }
        };
        if let Some(n) = self.node_mut(&at) {
            n.data = data;
            n.last_restore = Some(env.restore_key.clone());
        }
        let mut e = self.entry("restore", &at.cluster, Some(&at), "ok");
        e.pod = Some(info.key.clone());
        e.detail = Some(format!(
            "backup={} key={} source={source} keyspaces={} tables={}",
            env.backup_name,
            env.restore_key,
            env.keyspaces.as_deref().unwrap_or("*"),
            env.tables.as_deref().unwrap_or("*"),
        ));
        self.record(e);
    }
}

impl Core {
    /// Every node of `cluster` now holds `version` in `keyspace.table`.
    pub(crate) fn write_data(&self, req: &crate::data::DataWrite) {
        let mut w = self.lock();
        let Some(c) = w.clusters.get_mut(&req.cluster) else {
            return;
        };
        for n in c.nodes.values_mut() {
            n.data.insert(
                (req.keyspace.clone(), req.table.clone()),
                req.version.clone(),
            );
        }
    }

    /// Each node's data by pod (`namespace/name`), tables as `keyspace.table`.
    pub(crate) fn data(&self, cluster: &str) -> BTreeMap<String, BTreeMap<String, String>> {
        let w = self.lock();
        let Some(c) = w.clusters.get(cluster) else {
            return BTreeMap::new();
        };
        c.nodes
            .values()
            .filter_map(|n| {
                let pod = n.pod.as_ref()?;
                Some((
                    format!("{}/{}", pod.namespace, pod.name),
                    n.data
                        .iter()
                        .map(|((k, t), v)| (format!("{k}.{t}"), v.clone()))
                        .collect(),
                ))
            })
            .collect()
    }
}
