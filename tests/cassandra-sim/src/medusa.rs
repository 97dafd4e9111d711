//! Medusa's gRPC service beside every simulated node whose pod runs a `medusa` container.
//!
//! Backups are kept per Cassandra cluster, as Medusa's storage holds them for every node
//! of the cluster: a backup name groups the nodes that were asked to back up under it.
//! A node's part takes [`MedusaSettings::backup_duration`] and needs its node running with
//! CQL up, as the real agent needs a snapshot and the token map; a node that is down
//! fails the call. Faults make a node's backup fail, make every call of a node hang, or
//! make the node forget its backups (NotFound), so tests can show the operator's
//! deadlines and failure paths.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8ssandra_medusa_proto as pb;
use pb::medusa_server::{Medusa, MedusaServer};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status};

use crate::core::Core;
use crate::model::PodKey;

/// Upstream's default port of the `medusa` container's `grpc` port.
pub const DEFAULT_GRPC_PORT: u16 = 50051;

/// What a test can make a node's Medusa do wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MedusaFault {
    /// The node's part of every backup ends FAILED.
    FailBackups,
    /// Every call is accepted and never answered.
    Hang,
    /// The node knows no backup (its index was lost): status calls are NotFound.
    Forget,
}

/// Timing and retention of the simulated Medusa.
#[derive(Debug, Clone)]
pub struct MedusaSettings {
    pub backup_duration: Duration,
    /// `max_backup_count` of medusa.ini: purge keeps this many newest backups (0: all).
    pub max_backup_count: usize,
    /// `max_backup_age` of medusa.ini, in days (0: no limit).
    pub max_backup_age_days: u64,
}

impl Default for MedusaSettings {
    fn default() -> Self {
        MedusaSettings {
            backup_duration: Duration::from_millis(500),
            max_backup_count: 0,
            max_backup_age_days: 0,
        }
    }
}

/// One node's part of a backup.
#[derive(Debug, Clone, Serialize)]
pub struct NodePart {
    pub pod: String,
    pub host: String,
    pub datacenter: String,
    pub rack: String,
    pub tokens: Vec<i64>,
    pub started_ms: u64,
    pub finishes_ms: u64,
    pub failed: bool,
    pub size: i64,
    pub objects: i64,
    /// The node's data when its backup started: what a restore from this part brings back.
    #[serde(skip)]
    pub data: crate::data::NodeData,
}

#[derive(Debug, Clone, Serialize)]
pub struct SimBackup {
    pub name: String,
    pub full: bool,
    pub started_ms: u64,
    pub nodes: BTreeMap<String, NodePart>,
    /// Nodes whose part was purged: the backup still counts them, unfinished.
    pub purged_parts: usize,
}

/// A node's restore preparation, as recorded by PrepareRestore.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PreparedRestore {
    pub pod: String,
    pub datacenter: String,
    pub backup: String,
    pub restore_key: String,
}

/// Every backup the simulated storage holds, per Cassandra cluster.
#[derive(Default)]
pub struct MedusaStore {
    inner: Mutex<StoreInner>,
}

#[derive(Default)]
struct StoreInner {
    settings: MedusaSettings,
    backups: HashMap<String, BTreeMap<String, SimBackup>>,
    faults: HashMap<String, MedusaFault>,
    prepared: Vec<PreparedRestore>,
    /// Every AsyncBackup call per (pod, backup): a test shows each pod backed up once.
    calls: BTreeMap<(String, String), u32>,
}

/// What the core says about the node beside a Medusa: its identity in the ring.
pub(crate) struct NodeFacts {
    pub cluster: String,
    pub datacenter: String,
    pub rack: String,
    pub host: String,
    pub tokens: Vec<i64>,
    pub load_bytes: u64,
    pub data: crate::data::NodeData,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl MedusaStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, StoreInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_settings(&self, settings: MedusaSettings) {
        self.lock().settings = settings;
    }

    /// Sets (Some) or clears (None) the fault of a pod (`namespace/name`).
    pub fn set_fault(&self, pod: &str, fault: Option<MedusaFault>) {
        let mut s = self.lock();
        match fault {
            Some(f) => {
                s.faults.insert(pod.to_string(), f);
            }
            None => {
                s.faults.remove(pod);
            }
        }
    }

    /// The backups of a Cassandra cluster, oldest first.
    pub fn backups(&self, cluster: &str) -> Vec<SimBackup> {
        let s = self.lock();
        let mut all: Vec<SimBackup> = s
            .backups
            .get(cluster)
            .map(|b| b.values().cloned().collect())
            .unwrap_or_default();
        all.sort_by_key(|b| b.started_ms);
        all
    }

    /// AsyncBackup calls per (pod, backup name).
    pub fn backup_calls(&self) -> BTreeMap<(String, String), u32> {
        self.lock().calls.clone()
    }

    pub fn prepared_restores(&self) -> Vec<PreparedRestore> {
        self.lock().prepared.clone()
    }

    fn fault(&self, pod: &str) -> Option<MedusaFault> {
        self.lock().faults.get(pod).copied()
    }

    fn start(&self, pod: &str, facts: NodeFacts, name: &str, full: bool) -> pb::StatusType {
        let mut s = self.lock();
        *s.calls
            .entry((pod.to_string(), name.to_string()))
            .or_default() += 1;
        let now = now_ms();
        let failed = s.faults.get(pod) == Some(&MedusaFault::FailBackups);
        let duration = s.settings.backup_duration.as_millis() as u64;
        let backup = s
            .backups
            .entry(facts.cluster.clone())
            .or_default()
            .entry(name.to_string())
            .or_insert_with(|| SimBackup {
                name: name.to_string(),
                full,
                started_ms: now,
                nodes: BTreeMap::new(),
                purged_parts: 0,
            });
        // A second call for the same node and name is the same backup, as in Medusa: it
        // does not start over.
        let part = backup.nodes.entry(pod.to_string()).or_insert(NodePart {
            pod: pod.to_string(),
            host: facts.host,
            datacenter: facts.datacenter,
            rack: facts.rack,
            tokens: facts.tokens,
            started_ms: now,
            finishes_ms: now + duration,
            failed,
            size: facts.load_bytes as i64,
            objects: 10,
            data: facts.data,
        });
        status_of(part, now)
    }

    /// The finished part of backup `name` of `cluster` taken on `host`, for a restore. Err
    /// says why there is none (no such backup in this cluster, only in another one, or no
    /// finished part of that host).
    pub(crate) fn restore_source(
        &self,
        cluster: &str,
        name: &str,
        host: &str,
    ) -> Result<NodePart, String> {
        let s = self.lock();
        let Some(backup) = s.backups.get(cluster).and_then(|b| b.get(name)) else {
            let elsewhere: Vec<&String> = s
                .backups
                .iter()
                .filter(|(_, b)| b.contains_key(name))
                .map(|(c, _)| c)
                .collect();
            return Err(if elsewhere.is_empty() {
                format!("backup {name} does not exist")
            } else {
                format!("backup {name} belongs to cluster(s) {elsewhere:?}, not {cluster}")
            });
        };
        let now = now_ms();
        backup
            .nodes
            .values()
            .find(|p| p.host == host && !p.failed && p.finishes_ms <= now)
            .cloned()
            .ok_or_else(|| format!("backup {name} holds no finished part of host {host}"))
    }

    fn part(&self, cluster: &str, pod: &str, name: &str) -> Option<NodePart> {
        self.lock()
            .backups
            .get(cluster)?
            .get(name)?
            .nodes
            .get(pod)
            .cloned()
    }

    fn summaries(&self, cluster: &str) -> Vec<pb::BackupSummary> {
        let now = now_ms();
        self.backups(cluster)
            .iter()
            .map(|b| summary(b, now))
            .collect()
    }

    /// Purges this node's own part of its backups past the age and count limits, as
    /// Medusa's PurgeBackups does (per node: a backup purged on one node only is then
    /// listed as unfinished, since the node's part is missing).
    fn purge(&self, cluster: &str, pod: &str) -> pb::PurgeBackupsResponse {
        let now = now_ms();
        let mut s = self.lock();
        let settings = s.settings.clone();
        let Some(backups) = s.backups.get_mut(cluster) else {
            return pb::PurgeBackupsResponse::default();
        };
        // Only the node's finished parts count and go.
        let mut own: Vec<(u64, String)> = backups
            .values()
            .filter(|b| {
                b.nodes
                    .get(pod)
                    .is_some_and(|n| !n.failed && n.finishes_ms <= now)
            })
            .map(|b| (b.started_ms, b.name.clone()))
            .collect();
        own.sort();
        let mut doomed: Vec<String> = Vec::new();
        if settings.max_backup_age_days > 0 {
            let max_age = settings.max_backup_age_days * 86_400_000;
            doomed.extend(
                own.iter()
                    .filter(|(at, _)| now.saturating_sub(*at) > max_age)
                    .map(|(_, n)| n.clone()),
            );
        }
        if settings.max_backup_count > 0 && own.len() > settings.max_backup_count {
            let excess = own.len() - settings.max_backup_count;
            doomed.extend(own.iter().take(excess).map(|(_, n)| n.clone()));
        }
        doomed.sort();
        doomed.dedup();
        let mut response = pb::PurgeBackupsResponse::default();
        for name in doomed {
            let Some(b) = backups.get_mut(&name) else {
                continue;
            };
            if let Some(part) = b.nodes.remove(pod) {
                b.purged_parts += 1;
                response.nb_backups_purged += 1;
                response.nb_objects_purged += part.objects as i32;
                response.total_purged_size += part.size;
            }
            if b.nodes.is_empty() {
                backups.remove(&name);
            }
        }
        response
    }
}

fn status_of(part: &NodePart, now: u64) -> pb::StatusType {
    if part.failed {
        pb::StatusType::Failed
    } else if part.finishes_ms <= now {
        pb::StatusType::Success
    } else {
        pb::StatusType::InProgress
    }
}

fn summary(b: &SimBackup, now: u64) -> pb::BackupSummary {
    let finished = b
        .nodes
        .values()
        .filter(|n| !n.failed && n.finishes_ms <= now)
        .count();
    let failed = b.nodes.values().any(|n| n.failed);
    let total = b.nodes.len() + b.purged_parts;
    let status = if failed {
        pb::StatusType::Failed
    } else if finished == total {
        pb::StatusType::Success
    } else {
        pb::StatusType::InProgress
    };
    let finish = if finished == total && !failed {
        b.nodes.values().map(|n| n.finishes_ms).max().unwrap_or(0) / 1000
    } else {
        0
    };
    pb::BackupSummary {
        backup_name: b.name.clone(),
        start_time: (b.started_ms / 1000) as i64,
        finish_time: finish as i64,
        total_nodes: total as i32,
        finished_nodes: finished as i32,
        nodes: b
            .nodes
            .values()
            .map(|n| pb::BackupNode {
                host: n.host.clone(),
                tokens: n.tokens.clone(),
                datacenter: n.datacenter.clone(),
                rack: n.rack.clone(),
            })
            .collect(),
        status: status as i32,
        backup_type: if b.full { "full" } else { "differential" }.to_string(),
        total_size: b.nodes.values().map(|n| n.size).sum(),
        total_objects: b.nodes.values().map(|n| n.objects).sum(),
    }
}

fn timestamp(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// The service of one pod.
struct PodMedusa {
    core: Arc<Core>,
    key: PodKey,
}

// The helpers answer with tonic's `Status` because every service method must; boxing it
// here would only be unboxed again one line later.
#[allow(clippy::result_large_err)]
impl PodMedusa {
    fn pod(&self) -> String {
        self.key.to_string()
    }

    /// Hangs for ever under the `Hang` fault (the caller's deadline must end the call).
    async fn gate(&self) {
        if self.core.medusa.fault(&self.pod()) == Some(MedusaFault::Hang) {
            std::future::pending::<()>().await;
        }
    }

    fn node(&self) -> Result<NodeFacts, Status> {
        self.core
            .medusa_node(&self.key)
            .map_err(|reason| Status::unavailable(format!("Cassandra is not reachable: {reason}")))
    }

    /// The cluster this pod's node belongs to, also while the node is down.
    fn cluster(&self) -> Result<String, Status> {
        self.core
            .medusa_cluster(&self.key)
            .ok_or_else(|| Status::unavailable("the pod is not known to the simulator"))
    }
}

#[tonic::async_trait]
impl Medusa for PodMedusa {
    async fn backup(
        &self,
        request: Request<pb::BackupRequest>,
    ) -> Result<Response<pb::BackupResponse>, Status> {
        self.async_backup(request).await
    }

    async fn async_backup(
        &self,
        request: Request<pb::BackupRequest>,
    ) -> Result<Response<pb::BackupResponse>, Status> {
        self.gate().await;
        let req = request.into_inner();
        if req.name.is_empty() {
            return Err(Status::invalid_argument("backup name is empty"));
        }
        let facts = self.node()?;
        let full = req.mode == pb::backup_request::Mode::Full as i32;
        let status = self.core.medusa.start(&self.pod(), facts, &req.name, full);
        Ok(Response::new(pb::BackupResponse {
            backup_name: req.name,
            status: status as i32,
        }))
    }

    async fn backup_status(
        &self,
        request: Request<pb::BackupStatusRequest>,
    ) -> Result<Response<pb::BackupStatusResponse>, Status> {
        self.gate().await;
        let name = request.into_inner().backup_name;
        let not_found = || Status::not_found(format!("backup {name} does not exist on this node"));
        if self.core.medusa.fault(&self.pod()) == Some(MedusaFault::Forget) {
            return Err(not_found());
        }
        let cluster = self.cluster()?;
        let part = self
            .core
            .medusa
            .part(&cluster, &self.pod(), &name)
            .ok_or_else(not_found)?;
        let status = status_of(&part, now_ms());
        Ok(Response::new(pb::BackupStatusResponse {
            start_time: timestamp(part.started_ms),
            finish_time: if status == pb::StatusType::Success {
                timestamp(part.finishes_ms)
            } else {
                String::new()
            },
            status: status as i32,
        }))
    }

    async fn delete_backup(
        &self,
        request: Request<pb::DeleteBackupRequest>,
    ) -> Result<Response<pb::DeleteBackupResponse>, Status> {
        self.gate().await;
        let name = request.into_inner().name;
        let cluster = self.cluster()?;
        let removed = self
            .core
            .medusa
            .lock()
            .backups
            .get_mut(&cluster)
            .and_then(|b| b.remove(&name));
        match removed {
            Some(_) => Ok(Response::new(pb::DeleteBackupResponse {
                name,
                status: pb::StatusType::Success as i32,
            })),
            None => Err(Status::not_found(format!("backup {name} does not exist"))),
        }
    }

    async fn get_backup(
        &self,
        request: Request<pb::GetBackupRequest>,
    ) -> Result<Response<pb::GetBackupResponse>, Status> {
        self.gate().await;
        let name = request.into_inner().backup_name;
        let cluster = self.cluster()?;
        let backup = self
            .core
            .medusa
            .summaries(&cluster)
            .into_iter()
            .find(|b| b.backup_name == name)
            // The real server answers an unknown backup with INTERNAL, not NOT_FOUND.
            .ok_or_else(|| Status::internal(format!("backup {name} does not exist")))?;
        let status = backup.status;
        Ok(Response::new(pb::GetBackupResponse {
            backup: Some(backup),
            status,
        }))
    }

    async fn get_backups(
        &self,
        _request: Request<pb::GetBackupsRequest>,
    ) -> Result<Response<pb::GetBackupsResponse>, Status> {
        self.gate().await;
        let cluster = self.cluster()?;
        let backups = self.core.medusa.summaries(&cluster);
        let overall = if backups
            .iter()
            .all(|b| b.status == pb::StatusType::Success as i32)
        {
            pb::StatusType::Success
        } else {
            pb::StatusType::InProgress
        };
        Ok(Response::new(pb::GetBackupsResponse {
            backups,
            overall_status: overall as i32,
        }))
    }

    async fn purge_backups(
        &self,
        _request: Request<pb::PurgeBackupsRequest>,
    ) -> Result<Response<pb::PurgeBackupsResponse>, Status> {
        self.gate().await;
        let cluster = self.cluster()?;
        Ok(Response::new(self.core.medusa.purge(&cluster, &self.pod())))
    }

    async fn prepare_restore(
        &self,
        request: Request<pb::PrepareRestoreRequest>,
    ) -> Result<Response<pb::PrepareRestoreResponse>, Status> {
        self.gate().await;
        let req = request.into_inner();
        let cluster = self.cluster()?;
        let known = self
            .core
            .medusa
            .summaries(&cluster)
            .iter()
            .any(|b| b.backup_name == req.backup_name);
        if !known {
            return Err(Status::not_found(format!(
                "backup {} does not exist",
                req.backup_name
            )));
        }
        let prepared = PreparedRestore {
            pod: self.pod(),
            datacenter: req.datacenter,
            backup: req.backup_name,
            restore_key: req.restore_key,
        };
        let mut s = self.core.medusa.lock();
        if !s.prepared.contains(&prepared) {
            s.prepared.push(prepared);
        }
        Ok(Response::new(pb::PrepareRestoreResponse {}))
    }
}

/// Serves the pod's Medusa on its address and gRPC port.
pub(crate) async fn listen(
    core: Arc<Core>,
    key: PodKey,
    addr: SocketAddr,
    port: u16,
) -> Option<JoinHandle<()>> {
    let addr = SocketAddr::new(addr.ip(), port);
    match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => {
            let service = MedusaServer::new(PodMedusa { core, key });
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            Some(tokio::spawn(async move {
                let _ = tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming(incoming)
                    .await;
            }))
        }
        Err(e) => {
            tracing::warn!(pod = %key, %addr, error = %e, "cannot bind Medusa's gRPC port");
            None
        }
    }
}
