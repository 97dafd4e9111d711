//! A simulated Reaper on every Reaper pod's address: its REST API (`app`, 8080) and its
//! admin endpoints (`admin`, 8081: `/healthcheck`, `/ping`, `/prometheusMetrics`).
//!
//! State lives per Reaper *storage*, as the real one's: Reapers with
//! `REAPER_STORAGE_TYPE=cassandra` whose contact points resolve to the same simulated
//! Cassandra cluster share clusters, schedules and runs (one `reaper_db`); `memory` is per
//! pod (lost with it) and `local` per pod name (its volume outlives the pod). A Reaper on
//! Cassandra storage serves only while its storage cluster has a live node and its keyspace
//! exists, as the real one cannot start otherwise.
//!
//! Repair runs act on the simulated rings: a run has one segment per token range of its
//! keyspace; each segment is a repair session on the replicas owning that range, recorded
//! in the Cassandra simulator's history (`action: "repair"`, detail a JSON object with
//! `keyspace`, `tables`, `nodes`, `range`, `run`), refused while one of those replicas is
//! down (the segment is retried, and after [`ReaperSettings::max_segment_attempts`] the run
//! ends in ERROR). Schedules start a run when their next activation is due.
//!
//! Faults (per pod): a token expiry now (every issued token then answers 401), 5xx for the
//! next N calls, and a slow start (503 everywhere for N ms).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use chrono::{DateTime, NaiveDateTime, Utc};
use futures::StreamExt;
use http::{HeaderMap, StatusCode};
use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::core::Core;
use crate::model::PodKey;

/// The label the reaper policy puts on its pods (the Reaper's name).
pub const LABEL_REAPER: &str = "k8ssandra.io/reaper";
/// The container that runs Reaper.
pub const REAPER_CONTAINER: &str = "reaper";
pub const DEFAULT_APP_PORT: u16 = 8080;
pub const DEFAULT_ADMIN_PORT: u16 = 8081;
/// Reaper's default JWT lifetime (`sessionTimeout`).
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(600);

/// How a Reaper version logs a UI user in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LoginStyle {
    /// Reaper 3.x: `POST /login` sets a `JSESSIONID` cookie; `GET /jwt` with it gives the token.
    Session,
    /// Reaper 4.x and later: `POST /login` answers `{"token", "username", "roles"}`.
    #[default]
    Token,
}

/// Where a Reaper keeps its data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReaperStorage {
    /// `memory`: per pod, lost with it.
    Memory,
    /// `local`: per pod name (its volume).
    Local,
    /// `cassandra`: the keyspace in the cluster the contact points resolve to.
    Cassandra {
        contact_points: Vec<String>,
        keyspace: String,
    },
}

/// What the simulator knows of one Reaper pod.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ReaperPodInfo {
    pub key: PodKey,
    pub uid: String,
    pub ip: Option<String>,
    pub app_port: u16,
    pub admin_port: u16,
    pub storage: ReaperStorage,
    /// `REAPER_AUTH_ENABLED=true`: the UI user (name, password).
    #[serde(skip_serializing)]
    pub auth: Option<(String, String)>,
    /// Why the credentials could not be read (a Secret missing): Reaper does not start.
    pub auth_error: Option<String>,
    pub login: LoginStyle,
}

impl std::fmt::Debug for ReaperPodInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReaperPodInfo")
            .field("key", &self.key)
            .field("ip", &self.ip)
            .field("storage", &self.storage)
            .field("auth_user", &self.auth.as_ref().map(|a| &a.0))
            .field("login", &self.login)
            .finish_non_exhaustive()
    }
}

impl ReaperPodInfo {
    /// A Reaper pod as a test would describe it: memory storage, no authentication.
    pub fn new(key: PodKey, ip: impl Into<String>) -> Self {
        let uid = key.to_string();
        ReaperPodInfo {
            key,
            uid,
            ip: Some(ip.into()),
            app_port: DEFAULT_APP_PORT,
            admin_port: DEFAULT_ADMIN_PORT,
            storage: ReaperStorage::Memory,
            auth: None,
            auth_error: None,
            login: LoginStyle::Token,
        }
    }

    pub fn with_auth(mut self, user: &str, password: &str) -> Self {
        self.auth = Some((user.to_string(), password.to_string()));
        self
    }

    pub fn with_login(mut self, login: LoginStyle) -> Self {
        self.login = login;
        self
    }

    pub fn with_ports(mut self, app: u16, admin: u16) -> Self {
        self.app_port = app;
        self.admin_port = admin;
        self
    }

    pub fn with_storage(mut self, storage: ReaperStorage) -> Self {
        self.storage = storage;
        self
    }
}

/// Timing and limits of the simulated Reapers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReaperSettings {
    /// Time one segment's repair session takes.
    pub segment_duration_ms: u64,
    /// Attempts of a segment whose replicas are not all up before the run ends in ERROR.
    pub max_segment_attempts: u32,
    /// Lifetime of a login's token.
    pub token_ttl_ms: u64,
    /// Time from a Reaper pod getting its address to serving.
    pub start_delay_ms: u64,
}

impl Default for ReaperSettings {
    fn default() -> Self {
        ReaperSettings {
            segment_duration_ms: 20,
            max_segment_attempts: 3,
            token_ttl_ms: DEFAULT_TOKEN_TTL.as_millis() as u64,
            start_delay_ms: 0,
        }
    }
}

/// A fault of one Reaper pod (`POST /sim/reaper/faults`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReaperFaultRequest {
    /// The pod's name (any context and namespace).
    pub pod: String,
    /// Every token issued so far expires now (the next call with one answers 401).
    #[serde(default)]
    pub expire_tokens: bool,
    /// The next N calls of the REST API answer 500.
    #[serde(default)]
    pub fail_next: u32,
    /// The pod is not ready (503 everywhere) for this long from now.
    #[serde(default)]
    pub unready_for_ms: u64,
}

/// One `PUT /cluster/{name}` Reaper accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    pub time: String,
    /// The storage the registration went to (see [`ReaperStore::storages`]).
    pub storage: String,
    pub reaper_pod: PodKey,
    pub cluster: String,
    pub seed_hosts: Vec<String>,
    /// `created`, or `unchanged` when Reaper already knew the cluster.
    pub outcome: String,
}

/// A repair schedule as the simulator keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimSchedule {
    pub id: String,
    pub storage: String,
    pub cluster: String,
    pub owner: String,
    pub state: String,
    pub keyspace: String,
    pub tables: Vec<String>,
    pub blacklisted_tables: Vec<String>,
    pub datacenters: Vec<String>,
    pub nodes: Vec<String>,
    pub parallelism: String,
    pub intensity: f64,
    pub incremental: bool,
    pub days_between: u32,
    pub segment_count_per_node: u32,
    pub repair_thread_count: u32,
    pub adaptive: bool,
    pub percent_unrepaired_threshold: i64,
    pub creation_ms: i64,
    pub next_activation_ms: i64,
    pub pause_ms: Option<i64>,
    /// Runs this schedule started, oldest first.
    pub runs: Vec<String>,
}

/// One segment of a run: a token range and the replicas owning it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimSegment {
    pub start: i64,
    pub end: i64,
    pub replicas: Vec<String>,
    pub attempts: u32,
    pub done: bool,
}

/// A repair run as the simulator keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimRun {
    pub id: String,
    pub storage: String,
    pub cluster: String,
    pub ring: String,
    pub owner: String,
    pub cause: String,
    pub keyspace: String,
    pub tables: Vec<String>,
    pub datacenters: Vec<String>,
    pub nodes: Vec<String>,
    pub parallelism: String,
    pub intensity: f64,
    pub incremental: bool,
    pub state: String,
    pub schedule_id: Option<String>,
    pub segments: Vec<SimSegment>,
    pub creation_ms: i64,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub last_event: String,
}

/// One repair session a segment ran (or had refused).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepairSession {
    pub time: String,
    pub run: String,
    pub ring: String,
    pub keyspace: String,
    pub tables: Vec<String>,
    /// Addresses of the replicas repaired together.
    pub nodes: Vec<String>,
    pub range: (i64, i64),
    /// `completed`, or `refused` (a replica down).
    pub outcome: String,
}

/// A registered cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SimCluster {
    name: String,
    ring: String,
    seed_hosts: Vec<String>,
}

#[derive(Debug, Default)]
struct Storage {
    clusters: BTreeMap<String, SimCluster>,
    schedules: BTreeMap<String, SimSchedule>,
    runs: BTreeMap<String, SimRun>,
}

#[derive(Debug)]
struct PodState {
    info: ReaperPodInfo,
    unready_until_ms: i64,
    fail_next: u32,
    /// token → (user, expiry ms).
    tokens: HashMap<String, (String, i64)>,
    /// JSESSIONID → user (Reaper 3.x sessions).
    sessions: HashMap<String, String>,
    listening: bool,
}

#[derive(Default)]
struct World {
    settings: ReaperSettings,
    pods: BTreeMap<PodKey, PodState>,
    storages: BTreeMap<String, Storage>,
    registrations: Vec<Registration>,
    sessions: Vec<RepairSession>,
    requests: u64,
}

/// The simulated Reapers (one per Reaper pod) and their storages.
#[derive(Default)]
pub struct ReaperStore {
    world: Mutex<World>,
    kick: tokio::sync::Notify,
}

/// A host name or address resolved in the simulated rings.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub ring: String,
    pub cluster_name: String,
    pub live: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum KeyspaceReplication {
    Local,
    Simple(u32),
    Nts(BTreeMap<String, u32>),
}

#[derive(Debug, Clone)]
pub(crate) struct RingNode {
    pub ip: String,
    pub dc: String,
    pub tokens: Vec<i64>,
    pub alive: bool,
    pub pod: Option<PodKey>,
    #[allow(dead_code)]
    pub host_id: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct RingView {
    #[allow(dead_code)]
    pub cluster_name: String,
    pub nodes: Vec<RingNode>,
    pub keyspaces: BTreeMap<String, KeyspaceReplication>,
    pub tables: BTreeMap<String, BTreeSet<String>>,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn iso(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn iso_opt(ms: Option<i64>) -> Value {
    ms.map_or(Value::Null, |m| Value::String(iso(m)))
}

/// ISO-8601 with or without an offset (no offset: UTC), as Reaper's trigger time.
fn parse_time(s: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S%.f",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .map(|t| t.and_utc().timestamp_millis())
}

fn csv(q: &HashMap<String, String>, name: &str) -> Vec<String> {
    q.get(name)
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, msg.into()).into_response()
}

fn schedule_json(s: &SimSchedule) -> Value {
    json!({
        "id": s.id,
        "owner": s.owner,
        "cluster_name": s.cluster,
        "keyspace_name": s.keyspace,
        "column_families": s.tables,
        "state": s.state,
        "intensity": s.intensity,
        "incremental_repair": s.incremental,
        "subrange_incremental_repair": false,
        "repair_parallelism": s.parallelism,
        "scheduled_days_between": s.days_between,
        "nodes": s.nodes,
        "datacenters": s.datacenters,
        "blacklisted_tables": s.blacklisted_tables,
        "segment_count_per_node": s.segment_count_per_node,
        "repair_thread_count": s.repair_thread_count,
        "repair_unit_id": s.id,
        "segment_timeout": 30,
        "adaptive": s.adaptive,
        "percent_unrepaired_threshold": s.percent_unrepaired_threshold,
        "creation_time": iso(s.creation_ms),
        "next_activation": iso(s.next_activation_ms),
        "pause_time": iso_opt(s.pause_ms),
    })
}

fn run_json(r: &SimRun) -> Value {
    json!({
        "id": r.id,
        "cause": r.cause,
        "owner": r.owner,
        "cluster_name": r.cluster,
        "keyspace_name": r.keyspace,
        "column_families": r.tables,
        "state": r.state,
        "intensity": r.intensity,
        "incremental_repair": r.incremental,
        "subrange_incremental_repair": false,
        "total_segments": r.segments.len(),
        "repair_parallelism": r.parallelism,
        "segments_repaired": r.segments.iter().filter(|s| s.done).count(),
        "last_event": r.last_event,
        "nodes": r.nodes,
        "datacenters": r.datacenters,
        "blacklisted_tables": [],
        "repair_thread_count": 1,
        "repair_unit_id": r.id,
        "creation_time": iso(r.creation_ms),
        "start_time": iso_opt(r.start_ms),
        "end_time": iso_opt(r.end_ms),
        "pause_time": null,
        "current_time": iso(now_ms()),
        "adaptive_schedule": false,
    })
}

/// The replicas of the range ending at `end` (clockwise from it), per the keyspace's
/// replication; nodes by address.
fn replicas(
    view: &RingView,
    rep: &KeyspaceReplication,
    ring: &[(i64, usize)],
    idx: usize,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut per_dc: BTreeMap<String, u32> = BTreeMap::new();
    let wanted = |dc: &str| -> u32 {
        match rep {
            KeyspaceReplication::Local => 0,
            KeyspaceReplication::Simple(rf) => *rf,
            KeyspaceReplication::Nts(m) => m.get(dc).copied().unwrap_or(0),
        }
    };
    for step in 0..ring.len() {
        let node = &view.nodes[ring[(idx + step) % ring.len()].1];
        if out.contains(&node.ip) {
            continue;
        }
        let (key, limit) = match rep {
            KeyspaceReplication::Simple(rf) => (String::new(), *rf),
            _ => (node.dc.clone(), wanted(&node.dc)),
        };
        let have = per_dc.entry(key).or_default();
        if *have < limit {
            *have += 1;
            out.push(node.ip.clone());
        }
    }
    out
}

/// The segments of a repair of `keyspace`: one per token range, with its replicas,
/// limited to the given datacenters and nodes.
fn segments(view: &RingView, keyspace: &str, dcs: &[String], nodes: &[String]) -> Vec<SimSegment> {
    let Some(rep) = view.keyspaces.get(keyspace) else {
        return Vec::new();
    };
    let mut ring: Vec<(i64, usize)> = view
        .nodes
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.tokens.iter().map(move |t| (*t, i)))
        .collect();
    ring.sort();
    let mut out = Vec::new();
    for idx in 0..ring.len() {
        let start = if idx == 0 {
            ring[ring.len() - 1].0
        } else {
            ring[idx - 1].0
        };
        let mut reps = replicas(view, rep, &ring, idx);
        if !dcs.is_empty() {
            reps.retain(|ip| {
                view.nodes
                    .iter()
                    .any(|n| &n.ip == ip && dcs.contains(&n.dc))
            });
        }
        if !nodes.is_empty() && !reps.iter().any(|ip| nodes.contains(ip)) {
            continue;
        }
        // A range with one replica (or none here) has nothing to compare.
        if reps.len() < 2 {
            continue;
        }
        out.push(SimSegment {
            start,
            end: ring[idx].0,
            replicas: reps,
            attempts: 0,
            done: false,
        });
    }
    out
}

impl ReaperStore {
    fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds or updates a Reaper pod, as a watch event would.
    pub fn upsert_pod(&self, info: ReaperPodInfo) {
        let mut w = self.lock();
        let start_delay = w.settings.start_delay_ms as i64;
        match w.pods.get_mut(&info.key) {
            Some(p) if p.info.uid == info.uid && p.info.ip == info.ip => {
                p.info = info;
            }
            _ => {
                tracing::info!(pod = %info.key, ip = ?info.ip, "Reaper pod added");
                let now = now_ms();
                w.pods.insert(
                    info.key.clone(),
                    PodState {
                        info,
                        unready_until_ms: now + start_delay,
                        fail_next: 0,
                        tokens: HashMap::new(),
                        sessions: HashMap::new(),
                        listening: false,
                    },
                );
            }
        }
        drop(w);
        self.kick.notify_one();
    }

    /// Removes a Reaper pod: its listeners close; a memory storage goes with it.
    pub fn remove_pod(&self, key: &PodKey) {
        let mut w = self.lock();
        if let Some(p) = w.pods.remove(key)
            && p.info.storage == ReaperStorage::Memory
        {
            w.storages.remove(&format!("memory:{}", p.info.uid));
        }
        drop(w);
        self.kick.notify_one();
    }

    pub fn settings(&self) -> ReaperSettings {
        self.lock().settings.clone()
    }

    pub fn set_settings(&self, s: ReaperSettings) {
        self.lock().settings = s;
    }

    /// Applies a fault to the named pod; Err when no Reaper pod has that name.
    pub fn set_fault(&self, f: &ReaperFaultRequest) -> Result<(), String> {
        let mut w = self.lock();
        let now = now_ms();
        let pod = w
            .pods
            .values_mut()
            .find(|p| p.info.key.name == f.pod)
            .ok_or_else(|| format!("no Reaper pod named {:?}", f.pod))?;
        if f.expire_tokens {
            for (_, exp) in pod.tokens.values_mut() {
                *exp = now - 1;
            }
        }
        pod.fail_next = f.fail_next;
        if f.unready_for_ms > 0 {
            pod.unready_until_ms = now + f.unready_for_ms as i64;
        }
        Ok(())
    }

    /// Every `PUT /cluster/{name}` accepted, oldest first.
    pub fn registrations(&self) -> Vec<Registration> {
        self.lock().registrations.clone()
    }

    /// Registered cluster names per storage.
    pub fn clusters(&self) -> BTreeMap<String, Vec<String>> {
        self.lock()
            .storages
            .iter()
            .map(|(k, s)| (k.clone(), s.clusters.keys().cloned().collect()))
            .collect()
    }

    /// The storages' keys (`memory:<uid>`, `local:<pod>`, `cassandra:<ring>/<keyspace>`).
    pub fn storages(&self) -> Vec<String> {
        self.lock().storages.keys().cloned().collect()
    }

    pub fn schedules(&self) -> Vec<SimSchedule> {
        self.lock()
            .storages
            .values()
            .flat_map(|s| s.schedules.values().cloned())
            .collect()
    }

    pub fn runs(&self) -> Vec<SimRun> {
        self.lock()
            .storages
            .values()
            .flat_map(|s| s.runs.values().cloned())
            .collect()
    }

    /// Every repair session the runs made, oldest first.
    pub fn repair_sessions(&self) -> Vec<RepairSession> {
        self.lock().sessions.clone()
    }

    /// REST calls served (any status).
    pub fn request_count(&self) -> u64 {
        self.lock().requests
    }

    /// Creates a schedule behind the operator's back, as someone would in Reaper's UI.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn create_schedule_by_hand(
        &self,
        core: &Core,
        storage: &str,
        cluster: &str,
        keyspace: &str,
        owner: &str,
        days_between: u32,
    ) -> Result<SimSchedule, String> {
        let mut q = HashMap::new();
        q.insert("clusterName".to_string(), cluster.to_string());
        q.insert("keyspace".to_string(), keyspace.to_string());
        q.insert("owner".to_string(), owner.to_string());
        q.insert("scheduleDaysBetween".to_string(), days_between.to_string());
        q.insert(
            "scheduleTriggerTime".to_string(),
            iso(now_ms() + 86_400_000 * i64::from(days_between.max(1))),
        );
        let mut w = self.lock();
        create_schedule(&mut w, core, storage, &q)
            .map(|(s, _)| s)
            .map_err(|(_, m)| m)
    }

    /// Makes a schedule due now: its next activation moves to this moment.
    pub fn trigger_schedule(&self, id: &str) -> Result<(), String> {
        let mut w = self.lock();
        let s = w
            .storages
            .values_mut()
            .find_map(|s| s.schedules.get_mut(id))
            .ok_or_else(|| format!("no schedule {id}"))?;
        s.next_activation_ms = now_ms();
        Ok(())
    }
}

// ----- requests ---------------------------------------------------------------------------

type Failure = (StatusCode, String);

/// The storage a pod's data lives in right now: Err while it cannot be reached.
fn storage_key(core: &Core, info: &ReaperPodInfo) -> Result<String, Failure> {
    match &info.storage {
        ReaperStorage::Memory => Ok(format!("memory:{}", info.uid)),
        ReaperStorage::Local => Ok(format!("local:{}", info.key)),
        ReaperStorage::Cassandra {
            contact_points,
            keyspace,
        } => {
            let unavailable = |why: String| (StatusCode::SERVICE_UNAVAILABLE, why);
            let resolved = contact_points
                .iter()
                .find_map(|h| core.resolve_host(&info.key.context, &info.key.namespace, h))
                .ok_or_else(|| {
                    unavailable(format!(
                        "storage unavailable: contact points {contact_points:?} resolve to no Cassandra node"
                    ))
                })?;
            if !resolved.live {
                return Err(unavailable(format!(
                    "storage unavailable: no live node of cluster {} behind {contact_points:?}",
                    resolved.cluster_name
                )));
            }
            let view = core
                .ring_view(&resolved.ring)
                .ok_or_else(|| unavailable("storage unavailable".into()))?;
            if !view.keyspaces.contains_key(keyspace) {
                return Err(unavailable(format!(
                    "storage unavailable: keyspace {keyspace} does not exist in cluster {}",
                    resolved.cluster_name
                )));
            }
            Ok(format!("cassandra:{}/{keyspace}", resolved.ring))
        }
    }
}

fn parse_parallelism(q: &HashMap<String, String>) -> Result<String, Failure> {
    let p = q
        .get("repairParallelism")
        .map_or("DATACENTER_AWARE".to_string(), |s| s.to_ascii_uppercase());
    match p.as_str() {
        "SEQUENTIAL" | "PARALLEL" | "DATACENTER_AWARE" => Ok(p),
        other => Err((
            StatusCode::BAD_REQUEST,
            format!("invalid repairParallelism {other:?}"),
        )),
    }
}

fn parse_intensity(s: Option<&String>) -> Result<f64, Failure> {
    let Some(s) = s else { return Ok(1.0) };
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 1.0 => Ok(v),
        _ => Err((
            StatusCode::BAD_REQUEST,
            format!("invalid value for intensity: {s} (must be in (0, 1])"),
        )),
    }
}

/// The keyspace and tables of a repair, checked against the ring.
fn check_unit(
    core: &Core,
    ring: &str,
    keyspace: &str,
    tables: &[String],
) -> Result<RingView, Failure> {
    let view = core.ring_view(ring).ok_or((
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("cluster {ring} has no nodes"),
    ))?;
    if !view.keyspaces.contains_key(keyspace) {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("keyspace {keyspace} does not exist in the cluster"),
        ));
    }
    let known = view.tables.get(keyspace).cloned().unwrap_or_default();
    if let Some(t) = tables.iter().find(|t| !known.contains(*t)) {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("table {keyspace}.{t} does not exist"),
        ));
    }
    Ok(view)
}

/// The schedule, and whether it was created (false: Reaper's answer for a repair unit it
/// has a schedule for already).
fn create_schedule(
    w: &mut World,
    core: &Core,
    storage: &str,
    q: &HashMap<String, String>,
) -> Result<(SimSchedule, bool), Failure> {
    let bad = |m: &str| (StatusCode::BAD_REQUEST, m.to_string());
    let cluster = q
        .get("clusterName")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("missing required parameter clusterName"))?
        .clone();
    let keyspace = q
        .get("keyspace")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("missing required parameter keyspace"))?
        .clone();
    let owner = q
        .get("owner")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("missing required parameter owner"))?
        .clone();
    let days: u32 = q
        .get("scheduleDaysBetween")
        .ok_or_else(|| bad("missing required parameter scheduleDaysBetween"))?
        .parse()
        .map_err(|_| bad("scheduleDaysBetween must be a number"))?;
    let intensity = parse_intensity(q.get("intensity"))?;
    let parallelism = parse_parallelism(q)?;
    let tables = csv(q, "tables");
    let st = w.storages.entry(storage.to_string()).or_default();
    let c = st.clusters.get(&cluster).cloned().ok_or((
        StatusCode::NOT_FOUND,
        format!("No cluster found with name \"{cluster}\""),
    ))?;
    check_unit(core, &c.ring, &keyspace, &tables)?;
    let datacenters = csv(q, "datacenters");
    let nodes = csv(q, "nodes");
    let incremental = q.get("incrementalRepair").is_some_and(|v| v == "true");
    let blacklisted = csv(q, "blacklistedTables");
    let threads: u32 = q
        .get("repairThreadCount")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    // Reaper keeps one schedule per repair unit: an identical unit answers 204 with the
    // existing schedule's location, whoever owns it.
    if let Some(same) = st.schedules.values().find(|s| {
        s.cluster == cluster
            && s.keyspace == keyspace
            && s.tables == tables
            && s.nodes == nodes
            && s.datacenters == datacenters
            && s.incremental == incremental
            && s.blacklisted_tables == blacklisted
            && s.repair_thread_count == threads
    }) {
        return Ok((same.clone(), false));
    }
    // An overlapping one (same keyspace, tables in common; none listed means all): the same
    // again (days, owner, parallelism) is answered like an identical one, else 409 unless
    // forced.
    let overlaps = |a: &[String], b: &[String]| {
        a.is_empty() || b.is_empty() || a.iter().any(|t| b.contains(t))
    };
    if let Some(c) = st
        .schedules
        .values()
        .find(|s| s.cluster == cluster && s.keyspace == keyspace && overlaps(&s.tables, &tables))
    {
        if c.days_between == days && c.owner == owner && c.parallelism == parallelism {
            return Ok((c.clone(), false));
        }
        if q.get("force").is_none_or(|f| f != "true") {
            return Err((
                StatusCode::CONFLICT,
                format!(
                    "A repair schedule already exists for cluster \"{cluster}\", keyspace \"{keyspace}\", and column families: {tables:?} (id {})",
                    c.id
                ),
            ));
        }
    }
    let now = now_ms();
    let next = match q.get("scheduleTriggerTime") {
        Some(t) => parse_time(t).ok_or_else(|| bad("invalid scheduleTriggerTime"))?,
        None => now,
    };
    let s = SimSchedule {
        id: Uuid::new_v4().to_string(),
        storage: storage.to_string(),
        cluster,
        owner,
        state: "ACTIVE".into(),
        keyspace,
        tables,
        blacklisted_tables: blacklisted,
        datacenters,
        nodes,
        parallelism,
        intensity,
        incremental,
        days_between: days,
        segment_count_per_node: q
            .get("segmentCountPerNode")
            .and_then(|v| v.parse().ok())
            .unwrap_or(64),
        repair_thread_count: threads,
        adaptive: q.get("adaptive").is_some_and(|v| v == "true"),
        percent_unrepaired_threshold: q
            .get("percentUnrepairedThreshold")
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1),
        creation_ms: now,
        next_activation_ms: next,
        pause_ms: None,
        runs: Vec::new(),
    };
    st.schedules.insert(s.id.clone(), s.clone());
    Ok((s, true))
}

#[allow(clippy::too_many_arguments)]
fn new_run(
    st: &mut Storage,
    view: &RingView,
    cluster: &SimCluster,
    storage: &str,
    owner: &str,
    cause: &str,
    keyspace: &str,
    tables: Vec<String>,
    datacenters: Vec<String>,
    nodes: Vec<String>,
    parallelism: String,
    intensity: f64,
    incremental: bool,
    schedule_id: Option<String>,
) -> SimRun {
    let tables = if tables.is_empty() {
        view.tables
            .get(keyspace)
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default()
    } else {
        tables
    };
    let run = SimRun {
        id: Uuid::new_v4().to_string(),
        storage: storage.to_string(),
        cluster: cluster.name.clone(),
        ring: cluster.ring.clone(),
        owner: owner.to_string(),
        cause: cause.to_string(),
        keyspace: keyspace.to_string(),
        tables,
        segments: segments(view, keyspace, &datacenters, &nodes),
        datacenters,
        nodes,
        parallelism,
        intensity,
        incremental,
        state: "NOT_STARTED".into(),
        schedule_id,
        creation_ms: now_ms(),
        start_ms: None,
        end_ms: None,
        last_event: "Run created".into(),
    };
    st.runs.insert(run.id.clone(), run.clone());
    run
}

/// Starts the runs of due schedules, and moves every running run by one segment.
fn tick(core: &Core, store: &ReaperStore) {
    let now = now_ms();
    let mut w = store.lock();
    let max_attempts = w.settings.max_segment_attempts.max(1);
    let World {
        storages, sessions, ..
    } = &mut *w;
    for (storage, st) in storages.iter_mut() {
        let due: Vec<String> = st
            .schedules
            .values()
            .filter(|s| s.state == "ACTIVE" && s.next_activation_ms <= now)
            .map(|s| s.id.clone())
            .collect();
        for id in due {
            let Some(s) = st.schedules.get(&id).cloned() else {
                continue;
            };
            let days = i64::from(s.days_between.max(1));
            if let Some(sm) = st.schedules.get_mut(&id) {
                // Missed activations are not caught up: the next one is in the future.
                while sm.next_activation_ms <= now {
                    sm.next_activation_ms += days * 86_400_000;
                }
            }
            let Some(cluster) = st.clusters.get(&s.cluster).cloned() else {
                continue;
            };
            // A run of this schedule still going: Reaper does not start another.
            if s.runs.iter().any(|r| {
                st.runs.get(r).is_some_and(|r| {
                    matches!(r.state.as_str(), "RUNNING" | "PAUSED" | "NOT_STARTED")
                })
            }) {
                continue;
            }
            let Some(view) = core.ring_view(&cluster.ring) else {
                continue;
            };
            let mut run = new_run(
                st,
                &view,
                &cluster,
                storage,
                &s.owner,
                &format!("scheduled run (schedule id {})", s.id),
                &s.keyspace,
                s.tables.clone(),
                s.datacenters.clone(),
                s.nodes.clone(),
                s.parallelism.clone(),
                s.intensity,
                s.incremental,
                Some(s.id.clone()),
            );
            run.state = "RUNNING".into();
            run.start_ms = Some(now);
            run.last_event = "Started by its schedule".into();
            tracing::info!(run = %run.id, schedule = %s.id, keyspace = %s.keyspace, "scheduled repair run started");
            if let Some(sm) = st.schedules.get_mut(&id) {
                sm.runs.push(run.id.clone());
            }
            st.runs.insert(run.id.clone(), run);
        }
        for run in st.runs.values_mut().filter(|r| r.state == "RUNNING") {
            let Some(view) = core.ring_view(&run.ring) else {
                continue;
            };
            let Some(seg_idx) = run
                .segments
                .iter()
                .enumerate()
                .filter(|(_, s)| !s.done)
                .min_by_key(|(_, s)| s.attempts)
                .map(|(i, _)| i)
            else {
                run.state = "DONE".into();
                run.end_ms = Some(now);
                run.last_event = "All segments repaired".into();
                tracing::info!(run = %run.id, keyspace = %run.keyspace, "repair run done");
                continue;
            };
            let seg = &mut run.segments[seg_idx];
            seg.attempts += 1;
            let down: Vec<String> = seg
                .replicas
                .iter()
                .filter(|ip| !view.nodes.iter().any(|n| &&n.ip == ip && n.alive))
                .cloned()
                .collect();
            let coordinator = view
                .nodes
                .iter()
                .find(|n| seg.replicas.first() == Some(&n.ip))
                .and_then(|n| n.pod.clone());
            let outcome = if down.is_empty() {
                "completed"
            } else {
                "refused"
            };
            let detail = json!({
                "keyspace": run.keyspace,
                "tables": run.tables,
                "nodes": seg.replicas,
                "range": [seg.start.to_string(), seg.end.to_string()],
                "run": run.id,
                "down": down,
            });
            core.record_repair(&run.ring, coordinator.as_ref(), outcome, detail.to_string());
            sessions.push(RepairSession {
                time: iso(now),
                run: run.id.clone(),
                ring: run.ring.clone(),
                keyspace: run.keyspace.clone(),
                tables: run.tables.clone(),
                nodes: seg.replicas.clone(),
                range: (seg.start, seg.end),
                outcome: outcome.to_string(),
            });
            if down.is_empty() {
                seg.done = true;
                run.last_event = format!("Segment ({}, {}] repaired", seg.start, seg.end);
            } else if seg.attempts >= max_attempts {
                run.state = "ERROR".into();
                run.end_ms = Some(now);
                run.last_event = format!(
                    "Segment ({}, {}] failed {} times: replica(s) {} down",
                    seg.start,
                    seg.end,
                    seg.attempts,
                    down.join(", ")
                );
                tracing::info!(run = %run.id, "repair run ended in ERROR");
            } else {
                run.last_event = format!(
                    "Segment ({}, {}] postponed: replica(s) {} down",
                    seg.start,
                    seg.end,
                    down.join(", ")
                );
            }
        }
    }
}

// ----- HTTP -------------------------------------------------------------------------------

#[derive(Clone)]
struct Ctx {
    core: Arc<Core>,
    key: PodKey,
}

type Params = Query<HashMap<String, String>>;

impl Ctx {
    fn store(&self) -> &ReaperStore {
        &self.core.reaper
    }

    fn info(&self) -> Option<ReaperPodInfo> {
        self.store()
            .lock()
            .pods
            .get(&self.key)
            .map(|p| p.info.clone())
    }

    /// Runs `f` on the pod's storage.
    fn with_storage<R>(
        &self,
        f: impl FnOnce(&mut World, &str, &ReaperPodInfo) -> Result<R, Failure>,
    ) -> Result<R, Failure> {
        let info = self
            .info()
            .ok_or((StatusCode::SERVICE_UNAVAILABLE, "gone".into()))?;
        let key = storage_key(&self.core, &info)?;
        let mut w = self.store().lock();
        w.storages.entry(key.clone()).or_default();
        f(&mut w, &key, &info)
    }
}

fn respond<T: IntoResponse>(r: Result<T, Failure>) -> Response {
    match r {
        Ok(v) => v.into_response(),
        Err((s, m)) => text(s, m),
    }
}

/// Not ready yet, injected 5xx, authentication: what every REST call passes first.
async fn gate(State(ctx): State<Ctx>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let headers = req.headers().clone();
    {
        let mut w = ctx.store().lock();
        w.requests += 1;
        let now = now_ms();
        let Some(p) = w.pods.get_mut(&ctx.key) else {
            return text(StatusCode::SERVICE_UNAVAILABLE, "Reaper is stopping");
        };
        if now < p.unready_until_ms {
            return text(StatusCode::SERVICE_UNAVAILABLE, "Reaper is starting");
        }
        if p.fail_next > 0 {
            p.fail_next -= 1;
            return text(StatusCode::INTERNAL_SERVER_ERROR, "Simulated fault");
        }
        let open = matches!(path.as_str(), "/login" | "/jwt" | "/ping");
        if p.info.auth.is_some() && !open {
            let bearer = headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim);
            let valid = bearer
                .and_then(|t| p.tokens.get(t))
                .is_some_and(|(_, exp)| *exp > now);
            if !valid {
                return text(
                    StatusCode::UNAUTHORIZED,
                    "Credentials are required to access this resource.",
                );
            }
        }
    }
    next.run(req).await
}

fn app_router(ctx: Ctx) -> Router {
    Router::new()
        .route("/login", post(login))
        .route("/jwt", get(jwt))
        .route("/ping", get(ping).head(ping))
        .route("/cluster", get(list_clusters))
        .route(
            "/cluster/{name}",
            get(get_cluster).put(put_cluster).delete(delete_cluster),
        )
        .route(
            "/repair_schedule",
            get(list_all_schedules).post(post_schedule),
        )
        .route(
            "/repair_schedule/{id}",
            get(get_schedule)
                .patch(patch_schedule)
                .put(put_schedule_state)
                .delete(delete_schedule),
        )
        .route("/repair_schedule/cluster/{name}", get(cluster_schedules))
        .route("/repair_schedule/start/{id}", post(start_schedule))
        .route("/repair_run", get(list_runs).post(post_run))
        .route("/repair_run/{id}", get(get_run))
        .route("/repair_run/{id}/state/{state}", put(put_run_state))
        .route("/repair_run/cluster/{name}", get(cluster_runs))
        .layer(middleware::from_fn_with_state(ctx.clone(), gate))
        .with_state(ctx)
}

fn admin_router(ctx: Ctx) -> Router {
    Router::new()
        .route("/healthcheck", get(healthcheck))
        .route("/ping", get(ping).head(ping))
        .route("/prometheusMetrics", get(metrics))
        .with_state(ctx)
}

async fn ping() -> StatusCode {
    StatusCode::NO_CONTENT
}

async fn healthcheck(State(ctx): State<Ctx>) -> Response {
    let Some(info) = ctx.info() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "gone");
    };
    let unready = ctx
        .store()
        .lock()
        .pods
        .get(&ctx.key)
        .is_none_or(|p| now_ms() < p.unready_until_ms);
    if unready {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "{\"reaper\":{\"healthy\":false}}",
        );
    }
    match storage_key(&ctx.core, &info) {
        Ok(_) => (
            StatusCode::OK,
            axum::Json(json!({"reaper": {"healthy": true}, "deadlocks": {"healthy": true}})),
        )
            .into_response(),
        Err((_, m)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"reaper": {"healthy": false, "message": m}})),
        )
            .into_response(),
    }
}

async fn metrics(State(ctx): State<Ctx>) -> Response {
    let info = ctx.info();
    let (clusters, schedules, runs) = info
        .and_then(|i| storage_key(&ctx.core, &i).ok())
        .and_then(|k| {
            let w = ctx.store().lock();
            w.storages
                .get(&k)
                .map(|s| (s.clusters.len(), s.schedules.len(), s.runs.len()))
        })
        .unwrap_or_default();
    let body = format!(
        "# TYPE io_cassandrareaper_service_RepairRunner_clusters gauge\n\
         io_cassandrareaper_service_RepairRunner_clusters {clusters}\n\
         # TYPE io_cassandrareaper_service_RepairSchedule_schedules gauge\n\
         io_cassandrareaper_service_RepairSchedule_schedules {schedules}\n\
         # TYPE io_cassandrareaper_service_RepairRunner_runs gauge\n\
         io_cassandrareaper_service_RepairRunner_runs {runs}\n"
    );
    (
        StatusCode::OK,
        [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        body,
    )
        .into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

async fn login(State(ctx): State<Ctx>, axum::Form(form): axum::Form<LoginForm>) -> Response {
    let mut w = ctx.store().lock();
    let ttl = w.settings.token_ttl_ms as i64;
    let Some(p) = w.pods.get_mut(&ctx.key) else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "gone");
    };
    let Some((user, password)) = p.info.auth.clone() else {
        return text(StatusCode::NOT_FOUND, "authentication is not enabled");
    };
    if form.username.trim().is_empty() || form.password.is_empty() {
        return text(
            StatusCode::BAD_REQUEST,
            "Invalid credentials: missing username or password.",
        );
    }
    if form.username != user || form.password != password {
        return text(StatusCode::UNAUTHORIZED, "Invalid credentials");
    }
    match p.info.login {
        LoginStyle::Token => {
            let token = format!("sim-jwt.{}", Uuid::new_v4().simple());
            p.tokens
                .insert(token.clone(), (user.clone(), now_ms() + ttl));
            (
                StatusCode::OK,
                axum::Json(json!({"token": token, "username": user, "roles": ["operator"]})),
            )
                .into_response()
        }
        LoginStyle::Session => {
            let session = Uuid::new_v4().simple().to_string();
            p.sessions.insert(session.clone(), user);
            (
                StatusCode::OK,
                [(
                    http::header::SET_COOKIE,
                    format!("JSESSIONID={session}; Path=/; HttpOnly"),
                )],
            )
                .into_response()
        }
    }
}

async fn jwt(State(ctx): State<Ctx>, headers: HeaderMap) -> Response {
    let session = headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix("JSESSIONID="))
        .map(str::to_string)
        .next();
    let mut w = ctx.store().lock();
    let ttl = w.settings.token_ttl_ms as i64;
    let Some(p) = w.pods.get_mut(&ctx.key) else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "gone");
    };
    if p.info.login != LoginStyle::Session {
        return text(StatusCode::NOT_FOUND, "HTTP 404 Not Found");
    }
    let Some(user) = session.and_then(|s| p.sessions.get(&s).cloned()) else {
        return text(StatusCode::UNAUTHORIZED, "no session");
    };
    let token = format!("sim-jwt.{}", Uuid::new_v4().simple());
    p.tokens.insert(token.clone(), (user, now_ms() + ttl));
    text(StatusCode::OK, token)
}

async fn list_clusters(State(ctx): State<Ctx>) -> Response {
    respond(ctx.with_storage(|w, k, _| {
        let names: Vec<String> = w.storages[k].clusters.keys().cloned().collect();
        Ok(axum::Json(json!(names)))
    }))
}

async fn get_cluster(State(ctx): State<Ctx>, Path(name): Path<String>) -> Response {
    let core = Arc::clone(&ctx.core);
    respond(ctx.with_storage(|w, k, _| {
        let st = &w.storages[k];
        let c = st.clusters.get(&name).ok_or((
            StatusCode::NOT_FOUND,
            format!("Cluster with name \"{name}\" not found"),
        ))?;
        let nodes: Vec<String> = core
            .ring_view(&c.ring)
            .map(|v| v.nodes.iter().map(|n| n.ip.clone()).collect())
            .unwrap_or_default();
        let schedules: Vec<Value> = st
            .schedules
            .values()
            .filter(|s| s.cluster == name)
            .map(schedule_json)
            .collect();
        let runs: Vec<Value> = st
            .runs
            .values()
            .filter(|r| r.cluster == name)
            .map(run_json)
            .collect();
        Ok(axum::Json(json!({
            "name": c.name,
            "jmx_username": "",
            "jmx_password_is_set": false,
            "seed_hosts": c.seed_hosts,
            "repair_runs": runs,
            "repair_schedules": schedules,
            "nodes_status": {"endpointStates": [{"endpoints": {"all": {"all": nodes.iter().map(|n| json!({"endpoint": n})).collect::<Vec<_>>()}}}]},
        })))
    }))
}

async fn put_cluster(
    State(ctx): State<Ctx>,
    Path(name): Path<String>,
    Query(q): Params,
) -> Response {
    let seeds = csv(&q, "seedHost");
    if seeds.is_empty() {
        return text(
            StatusCode::BAD_REQUEST,
            "query parameter \"seedHost\" cannot be empty",
        );
    }
    let core = Arc::clone(&ctx.core);
    respond(ctx.with_storage(|w, k, info| {
        // Reaper contacts the seeds from its own pod: Service names resolve only there.
        let resolved = seeds
            .iter()
            .filter_map(|h| core.resolve_host(&info.key.context, &info.key.namespace, h))
            .find(|r| r.live)
            .ok_or((
                StatusCode::BAD_REQUEST,
                format!("no seed host of {seeds:?} could be reached from this Reaper"),
            ))?;
        let clean = crate::core::clean_name;
        if clean(&resolved.cluster_name) != clean(&name) {
            return Err((
                StatusCode::BAD_REQUEST,
                format!(
                    "the cluster at {seeds:?} is named {:?}, not {name:?}",
                    resolved.cluster_name
                ),
            ));
        }
        let st = w.storages.get_mut(k).expect("created by with_storage");
        let existed = st.clusters.contains_key(&name);
        if !existed {
            st.clusters.insert(
                name.clone(),
                SimCluster {
                    name: name.clone(),
                    ring: resolved.ring.clone(),
                    seed_hosts: seeds.clone(),
                },
            );
        }
        w.registrations.push(Registration {
            time: iso(now_ms()),
            storage: k.to_string(),
            reaper_pod: info.key.clone(),
            cluster: name.clone(),
            seed_hosts: seeds.clone(),
            outcome: if existed { "unchanged" } else { "created" }.into(),
        });
        tracing::info!(cluster = %name, reaper = %info.key, existed, "cluster registered with the simulated Reaper");
        let location = format!("/cluster/{name}");
        Ok(if existed {
            (StatusCode::NO_CONTENT, [(http::header::LOCATION, location)]).into_response()
        } else {
            (StatusCode::CREATED, [(http::header::LOCATION, location)]).into_response()
        })
    }))
}

async fn delete_cluster(
    State(ctx): State<Ctx>,
    Path(name): Path<String>,
    Query(q): Params,
) -> Response {
    let force = q.get("force").is_some_and(|f| f == "true");
    respond(ctx.with_storage(|w, k, _| {
        let st = w.storages.get_mut(k).expect("created by with_storage");
        if !st.clusters.contains_key(&name) {
            return Err((StatusCode::NOT_FOUND, format!("cluster \"{name}\" not found")));
        }
        let has_schedules = st.schedules.values().any(|s| s.cluster == name);
        let has_runs = st.runs.values().any(|r| r.cluster == name);
        if !force && has_schedules {
            return Err((
                StatusCode::CONFLICT,
                format!("cluster \"{name}\" cannot be deleted, as it has repair schedules"),
            ));
        }
        if !force && has_runs {
            return Err((
                StatusCode::CONFLICT,
                format!("cluster \"{name}\" cannot be deleted, as it has repair runs"),
            ));
        }
        if st
            .runs
            .values()
            .any(|r| r.cluster == name && r.state == "RUNNING")
        {
            return Err((
                StatusCode::CONFLICT,
                format!("cluster \"{name}\" cannot be deleted, as it has running repairs. Stop them first."),
            ));
        }
        st.schedules.retain(|_, s| s.cluster != name);
        st.runs.retain(|_, r| r.cluster != name);
        st.clusters.remove(&name);
        Ok(StatusCode::ACCEPTED)
    }))
}

async fn list_all_schedules(State(ctx): State<Ctx>, Query(q): Params) -> Response {
    respond(ctx.with_storage(|w, k, _| {
        let v: Vec<Value> = w.storages[k]
            .schedules
            .values()
            .filter(|s| q.get("clusterName").is_none_or(|c| c == &s.cluster))
            .filter(|s| q.get("keyspace").is_none_or(|c| c == &s.keyspace))
            .map(schedule_json)
            .collect();
        Ok(axum::Json(json!(v)))
    }))
}

async fn cluster_schedules(State(ctx): State<Ctx>, Path(name): Path<String>) -> Response {
    respond(ctx.with_storage(|w, k, _| {
        let v: Vec<Value> = w.storages[k]
            .schedules
            .values()
            .filter(|s| s.cluster == name)
            .map(schedule_json)
            .collect();
        Ok(axum::Json(json!(v)))
    }))
}

async fn post_schedule(State(ctx): State<Ctx>, Query(q): Params) -> Response {
    let core = Arc::clone(&ctx.core);
    respond(ctx.with_storage(|w, k, _| {
        let (s, created) = create_schedule(w, &core, k, &q)?;
        tracing::info!(schedule = %s.id, keyspace = %s.keyspace, owner = %s.owner, created, "repair schedule asked for");
        Ok((
            if created {
                StatusCode::CREATED
            } else {
                StatusCode::NO_CONTENT
            },
            [(http::header::LOCATION, format!("/repair_schedule/{}", s.id))],
        )
            .into_response())
    }))
}

fn find_schedule<'a>(w: &'a mut World, k: &str, id: &str) -> Result<&'a mut SimSchedule, Failure> {
    w.storages
        .get_mut(k)
        .and_then(|s| s.schedules.get_mut(id))
        .ok_or((
            StatusCode::NOT_FOUND,
            format!("repair schedule with id {id} not found"),
        ))
}

async fn get_schedule(State(ctx): State<Ctx>, Path(id): Path<String>) -> Response {
    respond(ctx.with_storage(|w, k, _| Ok(axum::Json(schedule_json(find_schedule(w, k, &id)?)))))
}

async fn patch_schedule(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let patch: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return text(
                StatusCode::BAD_REQUEST,
                "request body must not be null or empty",
            );
        }
    };
    respond(ctx.with_storage(|w, k, _| {
        let s = find_schedule(w, k, &id)?;
        let bad = |m: String| (StatusCode::BAD_REQUEST, m);
        if let Some(o) = patch.get("owner").and_then(Value::as_str) {
            if o.trim().is_empty() {
                return Err(bad("owner must not be blank".into()));
            }
            s.owner = o.to_string();
        }
        if let Some(p) = patch.get("repair_parallelism").and_then(Value::as_str) {
            let mut q = HashMap::new();
            q.insert("repairParallelism".to_string(), p.to_string());
            s.parallelism = parse_parallelism(&q)?;
        }
        if let Some(i) = patch.get("intensity").filter(|v| !v.is_null()) {
            match i.as_f64() {
                Some(v) if (0.0..=1.0).contains(&v) && v > 0.0 => s.intensity = v,
                _ => return Err(bad(format!("intensity must be in (0, 1], not {i}"))),
            }
        }
        if let Some(d) = patch.get("scheduled_days_between").filter(|v| !v.is_null()) {
            match d.as_u64().filter(|d| *d <= 31) {
                Some(d) => s.days_between = d as u32,
                None => {
                    return Err(bad(format!(
                        "scheduled_days_between must be in [0, 31], not {d}"
                    )));
                }
            }
        }
        if let Some(n) = patch.get("segment_count_per_node").and_then(Value::as_u64) {
            s.segment_count_per_node = n as u32;
        }
        if let Some(a) = patch.get("adaptive").and_then(Value::as_bool) {
            s.adaptive = a;
        }
        if let Some(p) = patch
            .get("percent_unrepaired_threshold")
            .and_then(Value::as_i64)
        {
            s.percent_unrepaired_threshold = p;
        }
        Ok(axum::Json(schedule_json(s)))
    }))
}

async fn put_schedule_state(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    Query(q): Params,
) -> Response {
    respond(ctx.with_storage(|w, k, _| {
        let s = find_schedule(w, k, &id)?;
        match q.get("state").map(|s| s.to_ascii_uppercase()).as_deref() {
            Some("ACTIVE") => {
                if s.state == "PAUSED" {
                    s.pause_ms = None;
                    // Reaper moves a resumed schedule's activation past the pause.
                    let now = now_ms();
                    let days = i64::from(s.days_between.max(1));
                    while s.next_activation_ms < now {
                        s.next_activation_ms += days * 86_400_000;
                    }
                }
                s.state = "ACTIVE".into();
            }
            Some("PAUSED") => {
                if s.state != "PAUSED" {
                    s.pause_ms = Some(now_ms());
                }
                s.state = "PAUSED".into();
            }
            other => {
                return Err((
                    StatusCode::BAD_REQUEST,
                    format!("invalid state {other:?}: ACTIVE or PAUSED"),
                ));
            }
        }
        Ok(axum::Json(schedule_json(s)))
    }))
}

async fn delete_schedule(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
    Query(q): Params,
) -> Response {
    let Some(owner) = q.get("owner").cloned() else {
        return text(
            StatusCode::BAD_REQUEST,
            "required query parameter \"owner\" is missing",
        );
    };
    respond(ctx.with_storage(|w, k, _| {
        let s = find_schedule(w, k, &id)?;
        if s.state == "ACTIVE" {
            return Err((
                StatusCode::CONFLICT,
                format!("Repair schedule {id} currently running. Must be first set to PAUSED"),
            ));
        }
        if !s.owner.eq_ignore_ascii_case(&owner) {
            return Err((
                StatusCode::CONFLICT,
                format!("Repair schedule {id} is not owned by {owner}"),
            ));
        }
        w.storages.get_mut(k).map(|st| st.schedules.remove(&id));
        Ok(StatusCode::ACCEPTED)
    }))
}

async fn start_schedule(State(ctx): State<Ctx>, Path(id): Path<String>) -> Response {
    let r = ctx.with_storage(|w, k, _| {
        let s = find_schedule(w, k, &id)?;
        s.next_activation_ms = now_ms();
        if s.state != "ACTIVE" {
            return Err((StatusCode::BAD_REQUEST, format!("schedule {id} is paused")));
        }
        Ok(StatusCode::OK)
    });
    ctx.store().kick.notify_one();
    respond(r)
}

async fn list_runs(State(ctx): State<Ctx>, Query(q): Params) -> Response {
    respond(ctx.with_storage(|w, k, _| {
        let mut runs: Vec<&SimRun> = w.storages[k]
            .runs
            .values()
            .filter(|r| q.get("cluster_name").is_none_or(|c| c == &r.cluster))
            .filter(|r| q.get("keyspace_name").is_none_or(|c| c == &r.keyspace))
            .filter(|r| {
                q.get("state")
                    .is_none_or(|s| s.split(',').any(|s| s == r.state))
            })
            .collect();
        runs.sort_by_key(|r| std::cmp::Reverse(r.creation_ms));
        Ok(axum::Json(json!(
            runs.into_iter().map(run_json).collect::<Vec<_>>()
        )))
    }))
}

async fn cluster_runs(State(ctx): State<Ctx>, Path(name): Path<String>) -> Response {
    let mut q = HashMap::new();
    q.insert("cluster_name".to_string(), name);
    list_runs(State(ctx), Query(q)).await
}

async fn post_run(State(ctx): State<Ctx>, Query(q): Params) -> Response {
    let core = Arc::clone(&ctx.core);
    respond(ctx.with_storage(|w, k, _| {
        let bad = |m: &str| (StatusCode::BAD_REQUEST, m.to_string());
        let cluster = q
            .get("clusterName")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("missing required parameter clusterName"))?;
        let keyspace = q
            .get("keyspace")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("missing required parameter keyspace"))?;
        let owner = q
            .get("owner")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("missing required parameter owner"))?;
        let intensity = parse_intensity(q.get("intensity"))?;
        let parallelism = parse_parallelism(&q)?;
        let tables = csv(&q, "tables");
        let st = w.storages.get_mut(k).expect("created by with_storage");
        let c = st.clusters.get(cluster).cloned().ok_or((
            StatusCode::NOT_FOUND,
            format!("No cluster found with name \"{cluster}\""),
        ))?;
        let view = check_unit(&core, &c.ring, keyspace, &tables)?;
        let run = new_run(
            st,
            &view,
            &c,
            k,
            owner,
            q.get("cause").map_or("no cause specified", String::as_str),
            keyspace,
            tables,
            csv(&q, "datacenters"),
            csv(&q, "nodes"),
            parallelism,
            intensity,
            q.get("incrementalRepair").is_some_and(|v| v == "true"),
            None,
        );
        if run.segments.is_empty() {
            st.runs.remove(&run.id);
            return Err((
                StatusCode::BAD_REQUEST,
                format!("keyspace {keyspace} has no range with more than one replica to repair"),
            ));
        }
        Ok((
            StatusCode::CREATED,
            [(http::header::LOCATION, format!("/repair_run/{}", run.id))],
            axum::Json(run_json(&run)),
        )
            .into_response())
    }))
}

async fn get_run(State(ctx): State<Ctx>, Path(id): Path<String>) -> Response {
    respond(ctx.with_storage(|w, k, _| {
        w.storages[k]
            .runs
            .get(&id)
            .map(|r| axum::Json(run_json(r)))
            .ok_or((
                StatusCode::NOT_FOUND,
                format!("repair run with id {id} not found"),
            ))
    }))
}

async fn put_run_state(
    State(ctx): State<Ctx>,
    Path((id, state)): Path<(String, String)>,
) -> Response {
    let r = ctx.with_storage(|w, k, _| {
        let run = w
            .storages
            .get_mut(k)
            .and_then(|s| s.runs.get_mut(&id))
            .ok_or((
                StatusCode::NOT_FOUND,
                format!("repair run with id {id} not found"),
            ))?;
        let to = state.to_ascii_uppercase();
        let allowed = matches!(
            (run.state.as_str(), to.as_str()),
            ("NOT_STARTED", "RUNNING")
                | ("PAUSED", "RUNNING")
                | ("RUNNING", "PAUSED")
                | ("RUNNING" | "PAUSED" | "NOT_STARTED", "ABORTED")
        );
        if run.state == to {
            return Err((StatusCode::NOT_MODIFIED, String::new()));
        }
        if !allowed {
            return Err((
                StatusCode::CONFLICT,
                format!("transition {} -> {to} not supported", run.state),
            ));
        }
        if to == "RUNNING" && run.start_ms.is_none() {
            run.start_ms = Some(now_ms());
        }
        if to == "ABORTED" {
            run.end_ms = Some(now_ms());
        }
        run.last_event = format!("State set to {to}");
        run.state = to;
        Ok(axum::Json(run_json(run)))
    });
    ctx.store().kick.notify_one();
    respond(r)
}

// ----- listeners, ticker, Kubernetes ------------------------------------------------------

struct Bound {
    ip: String,
    ports: (u16, u16),
    app: JoinHandle<()>,
    admin: JoinHandle<()>,
}

impl Drop for Bound {
    fn drop(&mut self) {
        self.app.abort();
        self.admin.abort();
    }
}

async fn bind(
    core: &Arc<Core>,
    key: &PodKey,
    ip: IpAddr,
    port: u16,
    admin: bool,
) -> Option<JoinHandle<()>> {
    let addr = SocketAddr::new(ip, port);
    match TcpListener::bind(addr).await {
        Ok(l) => {
            let ctx = Ctx {
                core: Arc::clone(core),
                key: key.clone(),
            };
            let app = if admin {
                admin_router(ctx)
            } else {
                app_router(ctx)
            };
            Some(tokio::spawn(async move {
                let _ = axum::serve(l, app).await;
            }))
        }
        Err(e) => {
            tracing::warn!(pod = %key, %addr, error = %e, "cannot bind the simulated Reaper; will retry");
            None
        }
    }
}

/// Keeps the Reapers' listeners in line with their pods and runs their schedules and
/// repairs, until cancelled.
pub(crate) async fn run(core: Arc<Core>, cancel: CancellationToken) {
    let mut bound: HashMap<PodKey, Bound> = HashMap::new();
    loop {
        let period = Duration::from_millis(core.reaper.settings().segment_duration_ms.max(5));
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = core.reaper.kick.notified() => {}
            _ = tokio::time::sleep(period) => {}
        }
        let desired: HashMap<PodKey, (String, (u16, u16))> = {
            let w = core.reaper.lock();
            w.pods
                .values()
                .filter(|p| p.info.auth_error.is_none())
                .filter_map(|p| {
                    Some((
                        p.info.key.clone(),
                        (p.info.ip.clone()?, (p.info.app_port, p.info.admin_port)),
                    ))
                })
                .collect()
        };
        bound.retain(|k, b| {
            desired
                .get(k)
                .is_some_and(|(ip, ports)| *ip == b.ip && *ports == b.ports)
        });
        for (key, (ip, ports)) in desired {
            if bound.contains_key(&key) {
                continue;
            }
            let Ok(addr) = ip.parse::<IpAddr>() else {
                continue;
            };
            let Some(app) = bind(&core, &key, addr, ports.0, false).await else {
                continue;
            };
            let Some(admin) = bind(&core, &key, addr, ports.1, true).await else {
                app.abort();
                continue;
            };
            tracing::info!(pod = %key, %ip, "simulated Reaper listening");
            bound.insert(
                key.clone(),
                Bound {
                    ip,
                    ports,
                    app,
                    admin,
                },
            );
        }
        {
            let mut w = core.reaper.lock();
            for (k, p) in w.pods.iter_mut() {
                p.listening = bound.contains_key(k);
            }
        }
        tick(&core, &core.reaper);
    }
}

fn env_of<'a>(c: &'a Container, name: &str) -> Option<&'a k8s_openapi::api::core::v1::EnvVar> {
    c.env.as_ref()?.iter().find(|e| e.name == name)
}

/// An env value, read from its Secret when it references one.
async fn env_value(
    client: Option<&Client>,
    ns: &str,
    c: &Container,
    name: &str,
) -> Result<Option<String>, String> {
    let Some(e) = env_of(c, name) else {
        return Ok(None);
    };
    if let Some(v) = &e.value {
        return Ok(Some(v.clone()));
    }
    let Some(r) = e
        .value_from
        .as_ref()
        .and_then(|f| f.secret_key_ref.as_ref())
    else {
        return Ok(None);
    };
    let client =
        client.ok_or_else(|| format!("{name}: Secret {} not readable without a client", r.name))?;
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let s = api
        .get_opt(&r.name)
        .await
        .map_err(|e| format!("{name}: reading Secret {ns}/{}: {e}", r.name))?
        .ok_or_else(|| format!("{name}: Secret {ns}/{} does not exist", r.name))?;
    s.data
        .as_ref()
        .and_then(|d| d.get(&r.key))
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
        .map(Some)
        .ok_or_else(|| format!("{name}: Secret {ns}/{} has no key {:?}", r.name, r.key))
}

/// What the simulator sees of a Reaper pod; None when it runs no `reaper` container.
pub async fn reaper_pod_info(
    context: &str,
    pod: &Pod,
    client: Option<&Client>,
) -> Option<ReaperPodInfo> {
    let spec = pod.spec.as_ref()?;
    let c = spec
        .containers
        .iter()
        .find(|c| c.name == REAPER_CONTAINER)?;
    let ns = pod.namespace().unwrap_or_default();
    let port = |name: &str, default: u16| {
        c.ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .unwrap_or(default)
    };
    let status = pod.status.as_ref();
    let ip = if matches!(
        status.and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    ) {
        None
    } else {
        status
            .and_then(|s| s.pod_ip.clone())
            .filter(|s| !s.is_empty())
    };
    let plain = |name: &str| env_of(c, name).and_then(|e| e.value.clone());
    let storage = match plain("REAPER_STORAGE_TYPE").as_deref() {
        Some("cassandra") => ReaperStorage::Cassandra {
            contact_points: contact_points(
                &plain("REAPER_CASS_CONTACT_POINTS").unwrap_or_default(),
            ),
            keyspace: plain("REAPER_CASS_KEYSPACE").unwrap_or_else(|| "reaper_db".into()),
        },
        Some("local") => ReaperStorage::Local,
        _ => ReaperStorage::Memory,
    };
    let mut auth = None;
    let mut auth_error = None;
    if plain("REAPER_AUTH_ENABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        let user = env_value(client, &ns, c, "REAPER_AUTH_USER").await;
        let password = env_value(client, &ns, c, "REAPER_AUTH_PASSWORD").await;
        match (user, password) {
            (Ok(Some(u)), Ok(Some(p))) => auth = Some((u, p)),
            (Err(e), _) | (_, Err(e)) => auth_error = Some(e),
            _ => auth_error = Some("REAPER_AUTH_USER or REAPER_AUTH_PASSWORD is not set".into()),
        }
    }
    let major = c
        .image
        .as_deref()
        .and_then(|i| i.rsplit_once(':'))
        .and_then(|(_, tag)| tag.split('.').next())
        .and_then(|m| m.parse::<u32>().ok());
    Some(ReaperPodInfo {
        key: PodKey::new(context, ns, pod.name_any()),
        uid: pod.uid().unwrap_or_default(),
        ip,
        app_port: port("app", DEFAULT_APP_PORT),
        admin_port: port("admin", DEFAULT_ADMIN_PORT),
        storage,
        auth,
        auth_error,
        login: if major.is_some_and(|m| m < 4) {
            LoginStyle::Session
        } else {
            LoginStyle::Token
        },
    })
}

/// `REAPER_CASS_CONTACT_POINTS`: `[{"host": "h", "port": 9042}]` (Reaper 4+) or `[h1, h2]`.
fn contact_points(v: &str) -> Vec<String> {
    if let Ok(Value::Array(a)) = serde_json::from_str::<Value>(v) {
        return a
            .iter()
            .filter_map(|x| match x {
                Value::String(s) => Some(s.clone()),
                Value::Object(o) => o.get("host").and_then(Value::as_str).map(str::to_string),
                _ => None,
            })
            .collect();
    }
    v.trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .map(|s| s.trim().trim_matches('"'))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Watches the Reaper pods of one context until cancelled.
pub(crate) async fn watch_pods(
    core: Arc<Core>,
    context: String,
    client: Client,
    cancel: CancellationToken,
) {
    let api: Api<Pod> = Api::all(client.clone());
    let cfg = watcher::Config::default().labels(LABEL_REAPER);
    let mut stream = watcher::watcher(api, cfg).default_backoff().boxed();
    let mut known: std::collections::HashSet<PodKey> = Default::default();
    let mut relist: Option<std::collections::HashSet<PodKey>> = None;
    // Pods whose credentials Secret could not be read: a Secret makes no pod event.
    let mut waiting: HashMap<PodKey, Pod> = HashMap::new();
    let mut recheck = tokio::time::interval(Duration::from_secs(2));
    loop {
        let ev = tokio::select! {
            _ = cancel.cancelled() => return,
            _ = recheck.tick(), if !waiting.is_empty() => {
                for (key, pod) in std::mem::take(&mut waiting) {
                    if let Some(info) = reaper_pod_info(&context, &pod, Some(&client)).await {
                        if info.auth_error.is_some() {
                            waiting.insert(key, pod);
                        }
                        core.reaper.upsert_pod(info);
                    }
                }
                continue;
            }
            ev = stream.next() => ev,
        };
        let Some(ev) = ev else { return };
        match ev {
            Ok(Event::Init) => relist = Some(Default::default()),
            Ok(Event::InitApply(pod)) | Ok(Event::Apply(pod)) => {
                if let Some(info) = reaper_pod_info(&context, &pod, Some(&client)).await {
                    if let Some(seen) = relist.as_mut() {
                        seen.insert(info.key.clone());
                    }
                    known.insert(info.key.clone());
                    if info.auth_error.is_some() {
                        waiting.insert(info.key.clone(), pod);
                    } else {
                        waiting.remove(&info.key);
                    }
                    core.reaper.upsert_pod(info);
                }
            }
            Ok(Event::Delete(pod)) => {
                let key = PodKey::new(
                    &context,
                    pod.namespace().unwrap_or_default(),
                    pod.name_any(),
                );
                known.remove(&key);
                waiting.remove(&key);
                core.reaper.remove_pod(&key);
            }
            Ok(Event::InitDone) => {
                if let Some(seen) = relist.take() {
                    for key in known.difference(&seen).cloned().collect::<Vec<_>>() {
                        known.remove(&key);
                        core.reaper.remove_pod(&key);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(context = %context, error = %e, "Reaper pod watch error; retrying")
            }
        }
    }
}

// ----- control API ------------------------------------------------------------------------

/// `/sim/reaper/*` of the control API.
pub(crate) fn control_routes() -> Router<Arc<Core>> {
    Router::new()
        .route("/sim/reaper/registrations", get(|State(c): State<Arc<Core>>| async move { axum::Json(c.reaper.registrations()) }))
        .route("/sim/reaper/schedules", get(|State(c): State<Arc<Core>>| async move { axum::Json(c.reaper.schedules()) }))
        .route("/sim/reaper/runs", get(|State(c): State<Arc<Core>>| async move { axum::Json(c.reaper.runs()) }))
        .route("/sim/reaper/sessions", get(|State(c): State<Arc<Core>>| async move { axum::Json(c.reaper.repair_sessions()) }))
        .route(
            "/sim/reaper/settings",
            get(|State(c): State<Arc<Core>>| async move { axum::Json(c.reaper.settings()) }).post(
                |State(c): State<Arc<Core>>, axum::Json(s): axum::Json<ReaperSettings>| async move {
                    c.reaper.set_settings(s);
                    axum::Json(c.reaper.settings())
                },
            ),
        )
        .route(
            "/sim/reaper/faults",
            post(|State(c): State<Arc<Core>>, axum::Json(f): axum::Json<ReaperFaultRequest>| async move {
                match c.reaper.set_fault(&f) {
                    Ok(()) => (StatusCode::OK, axum::Json(json!({"ok": true}))),
                    Err(e) => (StatusCode::NOT_FOUND, axum::Json(json!({"error": e}))),
                }
            }),
        )
        .route(
            "/sim/reaper/schedules/{id}/trigger",
            post(|State(c): State<Arc<Core>>, Path(id): Path<String>| async move {
                match c.reaper.trigger_schedule(&id) {
                    Ok(()) => {
                        c.reaper.kick.notify_one();
                        (StatusCode::OK, axum::Json(json!({"ok": true})))
                    }
                    Err(e) => (StatusCode::NOT_FOUND, axum::Json(json!({"error": e}))),
                }
            }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(ip: &str, dc: &str, tokens: &[i64], alive: bool) -> RingNode {
        RingNode {
            ip: ip.into(),
            dc: dc.into(),
            tokens: tokens.to_vec(),
            alive,
            pod: None,
            host_id: None,
        }
    }

    fn view(rep: KeyspaceReplication) -> RingView {
        let mut keyspaces = BTreeMap::new();
        keyspaces.insert("ks".to_string(), rep);
        RingView {
            cluster_name: "demo".into(),
            nodes: vec![
                node("10.0.0.1", "dc1", &[-100, 200], true),
                node("10.0.0.2", "dc1", &[0, 300], true),
                node("10.0.0.3", "dc1", &[100, 400], true),
                node("10.0.1.1", "dc2", &[50, 250], true),
            ],
            keyspaces,
            tables: BTreeMap::new(),
        }
    }

    #[test]
    fn segments_cover_the_ring_with_each_ranges_replicas() {
        let mut m = BTreeMap::new();
        m.insert("dc1".to_string(), 2);
        let v = view(KeyspaceReplication::Nts(m));
        let segs = segments(&v, "ks", &[], &[]);
        // 8 tokens: 8 ranges, each with 2 dc1 replicas (dc2 holds none of this keyspace).
        assert_eq!(segs.len(), 8);
        assert!(segs.iter().all(|s| s.replicas.len() == 2));
        assert!(
            segs.iter()
                .all(|s| !s.replicas.contains(&"10.0.1.1".to_string()))
        );
        // The range (400, -100] wraps: its first replica owns -100.
        let wrap = segs.iter().find(|s| s.end == -100).unwrap();
        assert_eq!(wrap.start, 400);
        assert_eq!(wrap.replicas, vec!["10.0.0.1", "10.0.0.2"]);
        // The range (-100, 0]: node 2 then the next dc1 node clockwise (node 3 at 100).
        let r = segs.iter().find(|s| s.end == 0).unwrap();
        assert_eq!(r.replicas, vec!["10.0.0.2", "10.0.0.3"]);
    }

    #[test]
    fn a_single_replica_keyspace_has_nothing_to_repair() {
        let mut m = BTreeMap::new();
        m.insert("dc1".to_string(), 1);
        assert!(segments(&view(KeyspaceReplication::Nts(m)), "ks", &[], &[]).is_empty());
        assert!(segments(&view(KeyspaceReplication::Simple(3)), "nope", &[], &[]).is_empty());
    }

    #[test]
    fn contact_points_of_both_reaper_generations() {
        assert_eq!(
            contact_points(r#"[{"host": "demo-dc1-service", "port": 9042}]"#),
            vec!["demo-dc1-service"]
        );
        assert_eq!(contact_points("[a-service, b]"), vec!["a-service", "b"]);
    }

    #[test]
    fn trigger_times_with_and_without_offset() {
        assert_eq!(
            parse_time("2026-12-08T02:00:00"),
            parse_time("2026-12-08T02:00:00Z")
        );
        assert!(parse_time("tomorrow").is_none());
    }

    #[tokio::test]
    async fn a_pod_with_auth_from_a_missing_secret_does_not_start() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "r-0", "namespace": "ns", "uid": "u1"},
            "spec": {"containers": [{"name": "reaper", "image": "thelastpickle/cassandra-reaper:3.8.0",
                "ports": [{"name": "app", "containerPort": 9080}],
                "env": [
                    {"name": "REAPER_STORAGE_TYPE", "value": "cassandra"},
                    {"name": "REAPER_CASS_CONTACT_POINTS", "value": "[{\"host\": \"demo-dc1-service\", \"port\": 9042}]"},
                    {"name": "REAPER_AUTH_ENABLED", "value": "true"},
                    {"name": "REAPER_AUTH_USER", "valueFrom": {"secretKeyRef": {"name": "ui", "key": "username"}}},
                    {"name": "REAPER_AUTH_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "ui", "key": "password"}}}
                ]}]},
            "status": {"podIP": "127.9.0.1", "phase": "Running"}
        }))
        .unwrap();
        let info = reaper_pod_info("c0", &pod, None).await.unwrap();
        assert_eq!(info.app_port, 9080);
        assert_eq!(info.admin_port, DEFAULT_ADMIN_PORT);
        assert_eq!(info.login, LoginStyle::Session);
        assert!(info.auth.is_none());
        assert!(
            info.auth_error
                .as_deref()
                .unwrap()
                .contains("REAPER_AUTH_USER")
        );
        assert_eq!(
            info.storage,
            ReaperStorage::Cassandra {
                contact_points: vec!["demo-dc1-service".into()],
                keyspace: "reaper_db".into()
            }
        );
    }
}
