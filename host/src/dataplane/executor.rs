//! Runs the data-plane operations of plans and remembers their outcomes.
//!
//! The contract (`wit/policy.wit`, `operation`): the host never runs an id twice while it
//! is in flight, and hands outcomes back keyed by id in the next snapshot. Here an id
//! with ANY remembered outcome is not run again, failures included: the policy retries
//! with a new id. Re-running a failed id would turn "fail → notify → same plan → run"
//! into a hot loop without backoff.
//!
//! Every outcome change notifies the controller through an unbounded channel carrying
//! the parent key, so the parent is reconciled as soon as something it waits for
//! happened: no timers between steps.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::client::{JobStart, JobState, ManagementApi, Password, TableOp, backoff};
use super::cql_ops::{self, CqlAccess};
use super::error::{DataplaneError, SecretError};
use super::medusa::{MedusaClient, MedusaError, MedusaTarget};
use super::medusa_ops::{self, MedusaAccess};
use super::reaper_ops::{self, ReaperAccess};
use crate::plugin::bindings::{
    MedusaBackup, NodeRef, Operation, OperationKind, OperationResult, Outcome, Role,
};

/// The data of a Secret, key to bytes.
pub type SecretData = BTreeMap<String, Vec<u8>>;

/// The future a [`SecretReader`] returns.
pub type SecretFuture = Pin<Box<dyn Future<Output = Result<SecretData, SecretError>> + Send>>;

/// Reads a Secret's data from a Kubernetes cluster; supplied by the caller, who owns the
/// clients. Any `Fn(cluster, namespace, name) -> impl Future` closure is one.
pub trait SecretReader: Send + Sync + 'static {
    fn read(&self, cluster: &str, namespace: &str, name: &str) -> SecretFuture;
}

impl<F, Fut> SecretReader for F
where
    F: Fn(String, String, String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<SecretData, SecretError>> + Send + 'static,
{
    fn read(&self, cluster: &str, namespace: &str, name: &str) -> SecretFuture {
        Box::pin(self(
            cluster.to_string(),
            namespace.to_string(),
            name.to_string(),
        ))
    }
}

/// Settings of an [`OperationExecutor`].
#[derive(Clone, Debug)]
pub struct ExecutorConfig {
    /// First delay before polling a job; it doubles up to `job_poll_max`, with jitter.
    pub job_poll_initial: Duration,
    pub job_poll_max: Duration,
    /// Consecutive failed polls (each already retried by the client) after which a job
    /// is reported failed: its node is gone or its management API broken.
    pub job_poll_max_errors: u32,
    /// Outcomes remembered per parent; beyond it the oldest finished ones are dropped.
    /// Policies derive ids from the situation, so a long-lived parent keeps minting new
    /// ones and an unbounded map would grow for ever. It must exceed what one step of a
    /// policy needs at once: a datacenter joining a K8ssandraCluster rebuilds every node and
    /// the join is over when every rebuild's outcome is there, so a cap below the largest
    /// datacenter's size would evict the first outcomes and rebuild those nodes again, for
    /// ever.
    pub max_results_per_parent: usize,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            job_poll_initial: Duration::from_millis(500),
            job_poll_max: Duration::from_secs(10),
            job_poll_max_errors: 10,
            max_results_per_parent: 4096,
        }
    }
}

struct Entry {
    outcome: Outcome,
    at_ms: u64,
    in_flight: bool,
}

struct ParentOps {
    /// Distinguishes this record from one created after a `forget`, so a task of the
    /// forgotten generation cannot write into the new one.
    epoch: u64,
    cancel: CancellationToken,
    entries: HashMap<String, Entry>,
}

struct Inner {
    api: ManagementApi,
    secrets: Arc<dyn SecretReader>,
    notify: UnboundedSender<String>,
    config: ExecutorConfig,
    parents: Mutex<HashMap<String, ParentOps>>,
    epochs: AtomicU64,
    /// Unset in set-ups without Medusa (tests of the management API alone): Medusa
    /// operations then fail with a message saying so.
    medusa: std::sync::OnceLock<MedusaAccess>,
    /// Likewise for Reaper's REST API and for CQL.
    reaper: std::sync::OnceLock<ReaperAccess>,
    cql: std::sync::OnceLock<CqlAccess>,
}

/// Executes the operations of plans, one spawned task per operation.
#[derive(Clone)]
pub struct OperationExecutor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for OperationExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperationExecutor")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl OperationExecutor {
    /// `notify` receives a parent key each time an outcome of that parent changes.
    pub fn new(
        api: ManagementApi,
        secrets: Arc<dyn SecretReader>,
        notify: UnboundedSender<String>,
        config: ExecutorConfig,
    ) -> Self {
        OperationExecutor {
            inner: Arc::new(Inner {
                api,
                secrets,
                notify,
                config,
                parents: Mutex::new(HashMap::new()),
                epochs: AtomicU64::new(0),
                medusa: std::sync::OnceLock::new(),
                reaper: std::sync::OnceLock::new(),
                cql: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Lets the operations reach Medusa; only the first call counts.
    pub fn set_medusa(&self, access: MedusaAccess) {
        let _ = self.inner.medusa.set(access);
    }

    /// Lets the operations reach Reaper; only the first call counts.
    pub fn set_reaper(&self, access: ReaperAccess) {
        let _ = self.inner.reaper.set(access);
    }

    /// Lets the operations speak CQL; only the first call counts.
    pub fn set_cql(&self, access: CqlAccess) {
        let _ = self.inner.cql.set(access);
    }

    /// The client the operations go through (for its [`stats`](ManagementApi::stats)).
    pub fn api(&self) -> &ManagementApi {
        &self.inner.api
    }

    /// Starts the operations of `parent`'s plan that are neither in flight nor already
    /// done, and returns at once with the number started. `resolve` maps a target node to
    /// its pod IP; an operation whose node has none fails at once (and notifies).
    ///
    /// Must be called from within a Tokio runtime: operations run as spawned tasks.
    pub fn execute(
        &self,
        parent: &str,
        ops: Vec<Operation>,
        resolve: impl Fn(&NodeRef) -> Option<String>,
    ) -> usize {
        let mut started = 0;
        let mut failed_now = false;
        {
            let mut parents = self.inner.lock();
            let record = parents
                .entry(parent.to_string())
                .or_insert_with(|| ParentOps {
                    epoch: self.inner.epochs.fetch_add(1, Ordering::Relaxed),
                    cancel: CancellationToken::new(),
                    entries: HashMap::new(),
                });
            for op in ops {
                if record.entries.contains_key(&op.id) {
                    continue;
                }
                let Some(address) = resolve(&op.target) else {
                    warn!(parent, operation = %op.id, namespace = %op.target.namespace,
                        pod = %op.target.pod, "operation target has no pod IP");
                    record.entries.insert(
                        op.id.clone(),
                        Entry {
                            outcome: Outcome::Failed(format!(
                                "pod {}/{} in cluster {:?} has no IP address",
                                op.target.namespace, op.target.pod, op.target.cluster
                            )),
                            at_ms: now_ms(),
                            in_flight: false,
                        },
                    );
                    failed_now = true;
                    continue;
                };
                record.entries.insert(
                    op.id.clone(),
                    Entry {
                        outcome: Outcome::Running(String::new()),
                        at_ms: now_ms(),
                        in_flight: true,
                    },
                );
                info!(parent, operation = %op.id, kind = kind_name(&op.kind),
                    namespace = %op.target.namespace, pod = %op.target.pod, address = %address,
                    "starting data-plane operation");
                let task = Task {
                    inner: Arc::clone(&self.inner),
                    parent: parent.to_string(),
                    epoch: record.epoch,
                    op,
                    address,
                };
                let cancel = record.cancel.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = cancel.cancelled() => {}
                        _ = task.run() => {}
                    }
                });
                started += 1;
            }
            evict(record, self.inner.config.max_results_per_parent);
        }
        if failed_now {
            self.inner.notify(parent);
        }
        started
    }

    /// The outcomes remembered for `parent`, sorted by id so that an unchanged situation
    /// gives an identical snapshot.
    pub fn results(&self, parent: &str) -> Vec<OperationResult> {
        let parents = self.inner.lock();
        let mut out: Vec<OperationResult> = parents
            .get(parent)
            .map(|record| {
                record
                    .entries
                    .iter()
                    .map(|(id, e)| OperationResult {
                        id: id.clone(),
                        outcome: e.outcome.clone(),
                        at_ms: e.at_ms,
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// True while the operation `id` of `parent` runs.
    pub fn in_flight(&self, parent: &str, id: &str) -> bool {
        self.inner
            .lock()
            .get(parent)
            .and_then(|r| r.entries.get(id))
            .is_some_and(|e| e.in_flight)
    }

    /// Drops everything remembered for `parent` (deleted, or its generation changed) and
    /// stops following its running operations. A job already started on a node keeps
    /// running there; only our polling stops.
    pub fn forget(&self, parent: &str) {
        if let Some(record) = self.inner.lock().remove(parent) {
            record.cancel.cancel();
            debug!(parent, "forgot data-plane operations");
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, ParentOps>> {
        // A panic while holding this lock leaves the map consistent (every update is a
        // single insert), so a poisoned lock is still safe to use.
        self.parents.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn notify(&self, parent: &str) {
        if self.notify.send(parent.to_string()).is_err() {
            debug!(
                parent,
                "nobody listens to data-plane notifications any more"
            );
        }
    }

    /// Records an outcome unless the parent was forgotten since the task started.
    fn record(&self, parent: &str, epoch: u64, id: &str, outcome: Outcome, in_flight: bool) {
        {
            let mut parents = self.lock();
            let Some(record) = parents.get_mut(parent).filter(|r| r.epoch == epoch) else {
                return;
            };
            let Some(entry) = record.entries.get_mut(id) else {
                return;
            };
            entry.outcome = outcome;
            entry.at_ms = now_ms();
            entry.in_flight = in_flight;
        }
        self.notify(parent);
    }
}

/// Drops the oldest finished outcomes beyond `max`; in-flight ones are always kept.
fn evict(record: &mut ParentOps, max: usize) {
    if record.entries.len() <= max {
        return;
    }
    let mut finished: Vec<(u64, String)> = record
        .entries
        .iter()
        .filter(|(_, e)| !e.in_flight)
        .map(|(id, e)| (e.at_ms, id.clone()))
        .collect();
    finished.sort();
    let excess = record.entries.len() - max;
    for (_, id) in finished.into_iter().take(excess) {
        record.entries.remove(&id);
    }
}

struct Task {
    inner: Arc<Inner>,
    parent: String,
    epoch: u64,
    op: Operation,
    address: String,
}

impl Task {
    async fn run(self) {
        // The node's state moves during and after the operation (a start, a drain), before
        // its pod shows it: its next observation must ask it.
        self.inner.api.memo.forget(&self.op.target);
        let result = self.perform().await;
        self.inner.api.memo.forget(&self.op.target);
        let outcome = match result {
            Ok(body) => {
                info!(parent = %self.parent, operation = %self.op.id, kind = kind_name(&self.op.kind),
                    pod = %self.op.target.pod, "data-plane operation succeeded");
                Outcome::Succeeded(body)
            }
            Err(reason) => {
                warn!(parent = %self.parent, operation = %self.op.id, kind = kind_name(&self.op.kind),
                    pod = %self.op.target.pod, error = %reason, "data-plane operation failed");
                Outcome::Failed(reason)
            }
        };
        self.inner
            .record(&self.parent, self.epoch, &self.op.id, outcome, false);
    }

    /// Runs the operation to its end; the error is the message for `failed(..)`.
    async fn perform(&self) -> Result<String, String> {
        let api = &self.inner.api;
        let addr = self.address.as_str();
        let text = |r: Result<String, DataplaneError>| r.map_err(|e| e.to_string());
        match &self.op.kind {
            OperationKind::Start(replace_ip) => text(api.start(addr, replace_ip.as_deref()).await),
            OperationKind::Decommission => match api.decommission_v1(addr).await {
                Err(e) if e.is_not_found() => {
                    debug!(operation = %self.op.id, "no v1 decommission; using the blocking v0 endpoint");
                    text(api.decommission_v0(addr).await)
                }
                started => self.follow(started).await,
            },
            OperationKind::Drain => text(api.drain(addr).await),
            OperationKind::CreateKeyspace(r) => text(api.create_keyspace(addr, r).await),
            OperationKind::AlterKeyspace(r) => text(api.alter_keyspace(addr, r).await),
            OperationKind::CreateRole(role) => self.create_role(role).await,
            OperationKind::Rebuild(src_dc) => match api.rebuild_v1(addr, src_dc).await {
                Err(e) if e.is_not_found() => Err(format!(
                    "{e} (rebuild exists only as a v1 job; this management API is too old)"
                )),
                started => self.follow(started).await,
            },
            OperationKind::Cleanup(s) => self.table_op(TableOp::Cleanup, s).await,
            OperationKind::UpgradeSstables(s) => self.table_op(TableOp::UpgradeSstables, s).await,
            OperationKind::Compact(s) => self.table_op(TableOp::Compact, s).await,
            OperationKind::Flush(s) => self.table_op(TableOp::Flush, s).await,
            OperationKind::Scrub(s) => self.table_op(TableOp::Scrub, s).await,
            OperationKind::GarbageCollect(s) => self.table_op(TableOp::GarbageCollect, s).await,
            OperationKind::ReloadSeeds => text(api.reload_seeds(addr).await),
            OperationKind::ListKeyspaces => text(api.list_keyspaces(addr).await),
            OperationKind::GetReplication(ks) => text(api.get_replication(addr, ks).await),
            // The job's state is the policy's to judge: any answer is a success here.
            OperationKind::JobStatus(job) => text(api.job_status(addr, job).await.map(|s| s.body)),
            OperationKind::CreateTable(table) => text(api.create_table(addr, table).await),
            OperationKind::SetFullQueryLogging(on) => {
                text(api.set_full_query_logging(addr, *on).await)
            }
            OperationKind::GetFullQueryLogging => {
                text(api.full_query_logging(addr).await.map(|on| on.to_string()))
            }
            OperationKind::MedusaBackup(backup) => self.medusa_backup(backup).await,
            OperationKind::MedusaBackupStatus(name) => {
                let (client, target) = self.medusa().await?;
                let status = client.backup_status(&target, name).await;
                medusa_ops::json(&status.map_err(|e| e.to_string())?)
            }
            OperationKind::MedusaGetBackups => {
                let (client, target) = self.medusa().await?;
                medusa_ops::json(
                    &client
                        .get_backups(&target)
                        .await
                        .map_err(|e| e.to_string())?,
                )
            }
            OperationKind::MedusaDeleteBackup(name) => {
                let (client, target) = self.medusa().await?;
                client
                    .delete_backup(&target, name)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(String::new())
            }
            OperationKind::MedusaPurgeBackups => {
                let (client, target) = self.medusa().await?;
                medusa_ops::json(
                    &client
                        .purge_backups(&target)
                        .await
                        .map_err(|e| e.to_string())?,
                )
            }
            OperationKind::MedusaPrepareRestore(r) => {
                let (client, target) = self.medusa().await?;
                client
                    .prepare_restore(&target, &r.datacenter, &r.backup_name, &r.restore_key)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(String::new())
            }
            OperationKind::ReaperListClusters(_)
            | OperationKind::ReaperAddCluster(_)
            | OperationKind::ReaperRemoveCluster(_)
            | OperationKind::ReaperListSchedules(_)
            | OperationKind::ReaperCreateSchedule(_)
            | OperationKind::ReaperUpdateSchedule(_)
            | OperationKind::ReaperSetScheduleState(_)
            | OperationKind::ReaperDeleteSchedule(_)
            | OperationKind::ReaperListRuns(_)
            | OperationKind::ReaperRepair(_) => {
                let access = self.inner.reaper.get().ok_or_else(|| {
                    "this operator was started without access to Reaper".to_string()
                })?;
                // A repair run is followed to its end: `running(<run id>)` meanwhile.
                let running = |run: &str| {
                    self.inner.record(
                        &self.parent,
                        self.epoch,
                        &self.op.id,
                        Outcome::Running(run.to_string()),
                        true,
                    )
                };
                reaper_ops::perform_with_progress(
                    access,
                    &self.inner.secrets,
                    &self.op,
                    &self.address,
                    &running,
                )
                .await
            }
            OperationKind::DropKeyspace(drop) => {
                let access =
                    self.inner.cql.get().ok_or_else(|| {
                        "this operator was started without access to CQL".to_string()
                    })?;
                cql_ops::drop_keyspace(
                    access,
                    &self.inner.secrets,
                    &self.op.target,
                    &self.address,
                    drop,
                )
                .await
            }
        }
    }

    /// The client and the target node's Medusa service.
    async fn medusa(&self) -> Result<(MedusaClient, MedusaTarget), String> {
        let access = self
            .inner
            .medusa
            .get()
            .ok_or_else(|| "this operator was started without access to Medusa".to_string())?;
        let target = access
            .targets
            .target(&self.op.target, &self.address)
            .await?;
        Ok((access.client.clone(), target))
    }

    /// Starts a node's backup and follows it to its end, publishing `running(<backup>)`
    /// meanwhile (as a management-API job's id is).
    async fn medusa_backup(&self, backup: &MedusaBackup) -> Result<String, String> {
        let (client, target) = self.medusa().await?;
        client
            .async_backup(&target, &backup.name, medusa_ops::mode(backup.mode))
            .await
            .map_err(|e| e.to_string())?;
        info!(parent = %self.parent, operation = %self.op.id, backup = %backup.name,
            pod = %self.op.target.pod, "Medusa backup started");
        self.inner.record(
            &self.parent,
            self.epoch,
            &self.op.id,
            Outcome::Running(backup.name.clone()),
            true,
        );
        let config = &self.inner.config;
        let mut polls = 0u32;
        let mut errors = 0u32;
        loop {
            polls = polls.saturating_add(1);
            tokio::time::sleep(backoff(config.job_poll_initial, config.job_poll_max, polls)).await;
            match client.backup_status(&target, &backup.name).await {
                Ok(status) => {
                    errors = 0;
                    match medusa_ops::finished(status.status) {
                        None => {}
                        Some(true) => return medusa_ops::json(&status),
                        Some(false) => {
                            return Err(format!(
                                "Medusa reports backup {} on {} as {}",
                                backup.name, self.op.target.pod, status.status
                            ));
                        }
                    }
                }
                Err(MedusaError::NotFound(m)) => {
                    return Err(format!(
                        "Medusa on {} no longer knows backup {} (it restarted?): {m}",
                        self.op.target.pod, backup.name
                    ));
                }
                Err(e) => {
                    errors += 1;
                    debug!(operation = %self.op.id, backup = %backup.name, errors, error = %e,
                        "Medusa backup status failed");
                    if errors >= config.job_poll_max_errors {
                        return Err(format!(
                            "lost track of backup {} after {errors} failed status calls: {e}",
                            backup.name
                        ));
                    }
                }
            }
        }
    }

    async fn table_op(
        &self,
        op: TableOp,
        scope: &crate::plugin::bindings::TableScope,
    ) -> Result<String, String> {
        let api = &self.inner.api;
        match api.table_op_v1(&self.address, op, scope).await {
            Err(e) if e.is_not_found() => {
                debug!(operation = %self.op.id, ?op, "no v1 endpoint; using the blocking v0 one");
                api.table_op_v0(&self.address, op, scope)
                    .await
                    .map_err(|e| e.to_string())
            }
            started => self.follow(started).await,
        }
    }

    /// Follows a started job to its end, publishing `running(<job id>)` meanwhile so the
    /// policy can record the job in the parent's status.
    async fn follow(&self, started: Result<JobStart, DataplaneError>) -> Result<String, String> {
        let job = match started.map_err(|e| e.to_string())? {
            JobStart::Done(body) => return Ok(body),
            JobStart::Job(id) => id,
        };
        info!(parent = %self.parent, operation = %self.op.id, job = %job, "job started");
        self.inner.record(
            &self.parent,
            self.epoch,
            &self.op.id,
            Outcome::Running(job.clone()),
            true,
        );
        let config = &self.inner.config;
        let mut polls = 0u32;
        let mut errors = 0u32;
        loop {
            polls = polls.saturating_add(1);
            tokio::time::sleep(backoff(config.job_poll_initial, config.job_poll_max, polls)).await;
            match self.inner.api.job_status(&self.address, &job).await {
                Ok(status) => {
                    errors = 0;
                    match status.state {
                        JobState::Completed => return Ok(status.body),
                        JobState::Error => {
                            return Err(format!(
                                "job {job} on {} failed: {}",
                                self.address,
                                status.error.as_deref().unwrap_or("no error message")
                            ));
                        }
                        JobState::Waiting | JobState::Other(_) => {}
                    }
                }
                Err(e) if e.is_not_found() => {
                    return Err(format!(
                        "job {job} is unknown to the management API on {} (it restarted?): {e}",
                        self.address
                    ));
                }
                Err(e) => {
                    errors += 1;
                    debug!(operation = %self.op.id, job = %job, errors, error = %e, "job poll failed");
                    if errors >= config.job_poll_max_errors {
                        return Err(format!(
                            "lost track of job {job} after {errors} failed polls: {e}"
                        ));
                    }
                }
            }
        }
    }

    async fn create_role(&self, role: &Role) -> Result<String, String> {
        let target = &self.op.target;
        let data = self
            .inner
            .secrets
            .read(&target.cluster, &target.namespace, &role.secret_name)
            .await
            .map_err(|e| e.to_string())?;
        let field = |key: &str| -> Result<String, String> {
            let value = data.get(key).ok_or_else(|| {
                format!(
                    "Secret {}/{} has no key {key:?}",
                    target.namespace, role.secret_name
                )
            })?;
            let value = String::from_utf8(value.clone()).map_err(|_| {
                format!(
                    "Secret {}/{}: key {key:?} is not UTF-8",
                    target.namespace, role.secret_name
                )
            })?;
            if value.is_empty() {
                return Err(format!(
                    "Secret {}/{}: key {key:?} is empty",
                    target.namespace, role.secret_name
                ));
            }
            Ok(value)
        };
        let username = field("username")?;
        let password = Password::new(field("password")?);
        self.inner
            .api
            .create_role(
                &self.address,
                &username,
                &password,
                role.superuser,
                role.login,
            )
            .await
            .map_err(|e| e.to_string())
    }
}

/// Short name of an operation kind, for logs.
pub fn kind_name(kind: &OperationKind) -> &'static str {
    match kind {
        OperationKind::Start(_) => "start",
        OperationKind::Decommission => "decommission",
        OperationKind::Drain => "drain",
        OperationKind::CreateKeyspace(_) => "create-keyspace",
        OperationKind::AlterKeyspace(_) => "alter-keyspace",
        OperationKind::CreateRole(_) => "create-role",
        OperationKind::Rebuild(_) => "rebuild",
        OperationKind::Cleanup(_) => "cleanup",
        OperationKind::UpgradeSstables(_) => "upgrade-sstables",
        OperationKind::Compact(_) => "compact",
        OperationKind::Flush(_) => "flush",
        OperationKind::Scrub(_) => "scrub",
        OperationKind::GarbageCollect(_) => "garbage-collect",
        OperationKind::ReloadSeeds => "reload-seeds",
        OperationKind::ListKeyspaces => "list-keyspaces",
        OperationKind::GetReplication(_) => "get-replication",
        OperationKind::JobStatus(_) => "job-status",
        OperationKind::CreateTable(_) => "create-table",
        OperationKind::SetFullQueryLogging(_) => "set-full-query-logging",
        OperationKind::GetFullQueryLogging => "get-full-query-logging",
        OperationKind::MedusaBackup(_) => "medusa-backup",
        OperationKind::MedusaBackupStatus(_) => "medusa-backup-status",
        OperationKind::MedusaGetBackups => "medusa-get-backups",
        OperationKind::MedusaDeleteBackup(_) => "medusa-delete-backup",
        OperationKind::MedusaPurgeBackups => "medusa-purge-backups",
        OperationKind::MedusaPrepareRestore(_) => "medusa-prepare-restore",
        OperationKind::ReaperListClusters(_) => "reaper-list-clusters",
        OperationKind::ReaperAddCluster(_) => "reaper-add-cluster",
        OperationKind::ReaperRemoveCluster(_) => "reaper-remove-cluster",
        OperationKind::ReaperListSchedules(_) => "reaper-list-schedules",
        OperationKind::ReaperCreateSchedule(_) => "reaper-create-schedule",
        OperationKind::ReaperUpdateSchedule(_) => "reaper-update-schedule",
        OperationKind::ReaperSetScheduleState(_) => "reaper-set-schedule-state",
        OperationKind::ReaperDeleteSchedule(_) => "reaper-delete-schedule",
        OperationKind::ReaperListRuns(_) => "reaper-list-runs",
        OperationKind::ReaperRepair(_) => "reaper-repair",
        OperationKind::DropKeyspace(_) => "drop-keyspace",
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at_ms: u64, in_flight: bool) -> Entry {
        Entry {
            outcome: Outcome::Succeeded(String::new()),
            at_ms,
            in_flight,
        }
    }

    #[test]
    fn eviction_drops_oldest_finished_and_keeps_in_flight() {
        let mut record = ParentOps {
            epoch: 0,
            cancel: CancellationToken::new(),
            entries: HashMap::new(),
        };
        record.entries.insert("old-running".into(), entry(1, true));
        record.entries.insert("old".into(), entry(2, false));
        record.entries.insert("mid".into(), entry(3, false));
        record.entries.insert("new".into(), entry(4, false));
        evict(&mut record, 2);
        let mut ids: Vec<_> = record.entries.keys().cloned().collect();
        ids.sort();
        assert_eq!(ids, vec!["new".to_string(), "old-running".to_string()]);
    }
}
