//! One reconcile of a MedusaRestoreJob: the step of `status.phase`, then the next one.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8ssandra_api::cassandra::CassandraDatacenter;
use k8ssandra_api::medusa::{
    MappingSource, MedusaBackup, MedusaRestoreJob, MedusaRestoreJobStatus, MedusaRestoreMapping,
    RESTORE_KEYSPACES_ENV, RESTORE_PHASE_STOP, RESTORE_PYTHONPATH, RESTORE_TABLES_ENV,
    restore_config_map_name,
};
use k8ssandra_api::names::split_racks;
use k8ssandra_medusa::{Member, datacenter, members};
use k8ssandra_policy_sdk::conditions::{Cond, conditions, ms, time};
use k8ssandra_policy_sdk::{
    EventType, MedusaRestore, OperationKind, Outcome, Plan, PolicyError, Role, Snapshot, error,
};

pub const VALIDATING: &str = "Validating";
pub const PREPARING: &str = "Preparing";
pub const STOPPING: &str = RESTORE_PHASE_STOP;
pub const STARTING: &str = "Starting";
pub const ROLES: &str = "Roles";
pub const COMPLETE: &str = "Complete";
pub const FAILED: &str = "Failed";
pub const PROGRESSING: &str = "Progressing";
/// Medusa's restore init container, as upstream names it.
pub const RESTORE_CONTAINER: &str = "medusa-restore";

/// How often a waiting restore looks again (the datacenter and pod events also wake it).
const POLL_MS: u64 = 5_000;
/// Attempts at re-creating one role before the restore fails naming it.
const ROLE_ATTEMPTS: u32 = 5;
/// Attempts at listing the datacenter's keyspaces for a selective restore.
const LIST_ATTEMPTS: u32 = 5;
/// How long the pods of a restored datacenter may take, from the stop, to restore and be
/// Ready again, unless `spec.readyDeadlineSeconds` says otherwise: a node downloads its
/// whole backup in its init container first, so this is generous.
pub const DEFAULT_READY_DEADLINE_SECONDS: u64 = 6 * 3600;
/// Where the `medusa-restore` init container mounts the `<kc>-medusa` ConfigMap, whose
/// `sitecustomize.py` makes Medusa restore only the named keyspaces and tables.
pub const MODULE_DIR: &str = "/etc/medusa";

/// Everything one reconcile works with.
struct Job<'a> {
    snapshot: &'a Snapshot,
    job: MedusaRestoreJob,
    name: String,
    namespace: String,
    cluster: String,
    now: u64,
    prev: MedusaRestoreJobStatus,
    status: MedusaRestoreJobStatus,
    plan: Plan,
}

pub fn reconcile(snapshot: &Snapshot) -> Result<Plan, PolicyError> {
    let job: MedusaRestoreJob = snapshot.parent()?;
    let prev = job.status.clone().unwrap_or_default();
    let mut j = Job {
        snapshot,
        name: job.metadata.name.clone().unwrap_or_default(),
        namespace: job.metadata.namespace.clone().unwrap_or_default(),
        cluster: snapshot.parent.cluster.clone(),
        now: snapshot.now_ms,
        status: prev.clone(),
        prev,
        job,
        plan: Plan::default(),
    };
    // Finished: nothing is listed, so the restore ConfigMap (if any) is pruned; except
    // after pods missed the deadline: those may hold a partly restored node, and restore
    // again before they start rather than start on it.
    if j.prev.finish_time.is_some() {
        if j.prev.phase.as_deref() == Some(FAILED)
            && j.prev.failed.as_ref().is_some_and(|f| !f.is_empty())
        {
            j.config_map()?;
        }
        return Ok(j.plan);
    }
    let dc = datacenter(
        snapshot,
        &j.cluster,
        &j.namespace,
        &j.job.spec.cassandra_datacenter,
    );
    match j.prev.phase.clone().as_deref() {
        None | Some("") | Some(VALIDATING) => j.validate(dc)?,
        Some(PREPARING) => j.preparing(dc)?,
        Some(STOPPING) => j.stopping(dc)?,
        Some(STARTING) => j.starting(dc)?,
        Some(ROLES) => j.roles(dc)?,
        Some(other) => {
            return Err(error(format!(
                "status.phase {other:?} is no phase of a restore"
            )));
        }
    }
    Ok(j.plan)
}

impl Job<'_> {
    /// The pods the restore maps a backed-up node onto.
    fn targets(&self) -> Vec<String> {
        self.prev
            .restore_mapping
            .as_ref()
            .and_then(|m| m.host_map.as_ref())
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn dc_name(&self) -> &str {
        &self.job.spec.cassandra_datacenter
    }

    fn set_conditions(&mut self, wanted: Vec<Cond>) {
        self.status.conditions = Some(conditions(
            self.prev.conditions.as_deref(),
            self.now,
            wanted,
        ));
    }

    fn progress(&mut self, reason: &'static str, message: String) {
        self.set_conditions(vec![
            Cond::new(PROGRESSING, true, reason, message),
            Cond::new(COMPLETE, false, reason, ""),
            Cond::new(FAILED, false, reason, ""),
        ]);
    }

    fn finish_status(&mut self) -> Result<(), PolicyError> {
        let status = self.status.clone();
        self.plan.set_status(&status)
    }

    /// The restore ends without restoring: nothing more is stopped, the ConfigMap goes.
    fn fail(&mut self, reason: &'static str, message: String) -> Result<(), PolicyError> {
        self.status.phase = Some(FAILED.into());
        self.status.finish_time = Some(time(self.now));
        self.status.message = Some(message.clone());
        self.set_conditions(vec![
            Cond::new(PROGRESSING, false, reason, message.clone()),
            Cond::new(COMPLETE, false, reason, "nothing was restored by this job"),
            Cond::new(FAILED, true, reason, message.clone()),
        ]);
        self.plan.event(EventType::Warning, reason, message);
        self.finish_status()
    }

    fn waiting(&mut self, reason: &'static str, message: String) -> Result<(), PolicyError> {
        self.progress(reason, message);
        self.plan.requeue_after(POLL_MS);
        self.finish_status()
    }

    fn validate(&mut self, dc: Option<CassandraDatacenter>) -> Result<(), PolicyError> {
        self.status.phase = Some(VALIDATING.into());
        let Some(dc) = dc else {
            let message = format!(
                "spec.cassandraDatacenter: no CassandraDatacenter {}/{}",
                self.namespace,
                self.dc_name()
            );
            return self.waiting("DatacenterNotFound", message);
        };
        let backup = self
            .snapshot
            .related_by_kind::<MedusaBackup>("MedusaBackup")
            .into_iter()
            .find(|(c, b)| {
                *c == self.cluster
                    && b.metadata.namespace.as_deref() == Some(self.namespace.as_str())
                    && b.metadata.name.as_deref() == Some(self.job.spec.backup.as_str())
            })
            .map(|(_, b)| b);
        let Some(backup) = backup else {
            let message = format!(
                "spec.backup: no MedusaBackup {}/{} (a MedusaBackupJob records one; a sync \
                 MedusaTask records the backups the storage holds)",
                self.namespace, self.job.spec.backup
            );
            return self.fail("BackupNotFound", message);
        };
        if let Err((reason, message)) = fits(&backup, &dc) {
            return self.fail(reason, message);
        }
        // Pods that cannot restore would come back with their current data, and the job
        // would report a restore that never happened: stop nothing then.
        let cm = restore_config_map_name(self.dc_name());
        let names: Vec<String> = members(self.snapshot, &self.cluster, &dc)
            .into_iter()
            .map(|m| m.name)
            .collect();
        let pods = self.snapshot.related_of::<Pod>();
        let own: Vec<&Pod> = pods
            .iter()
            .filter(|(c, p)| {
                *c == self.cluster
                    && p.metadata.namespace.as_deref() == Some(self.namespace.as_str())
                    && p.metadata.name.as_ref().is_some_and(|n| names.contains(n))
            })
            .map(|(_, p)| p)
            .collect();
        let without: Vec<String> = own
            .iter()
            .filter(|p| !reads_restore_config(p, &cm))
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        if own.is_empty() || !without.is_empty() {
            let message = format!(
                "pods of datacenter {} without a {RESTORE_CONTAINER} init container reading \
                 ConfigMap {cm} through envFrom (spec.medusa on the K8ssandraCluster renders \
                 it): {}",
                self.dc_name(),
                if own.is_empty() {
                    "no pod is running".to_string()
                } else {
                    without.join(", ")
                }
            );
            return self.fail("RestoreContainerNotFound", message);
        }
        // Each pod restores its own backup where the backup shows which that is: a pod's
        // tokens and data then stay together whatever the hosts' sort order (upstream maps
        // by sorted host name, which pairs `sts-10` with `sts-2`).
        let placed = mapping(&backup, &dc);
        let own_mapping = own_backups(&backup, placed.keys(), &own);
        if let (Some(selection), None) = (Selection::of(&self.job), &own_mapping) {
            // A selective restore keeps every node's tokens (system keyspaces stay), so a
            // node given another node's backup would hold data for ranges it does not own.
            let message = format!(
                "{}: a restore of chosen keyspaces or tables needs every pod's own backup, as \
                 each node keeps its tokens; the nodes of MedusaBackup {} are not the pods of \
                 datacenter {} (another datacenter, or nodes replaced since the backup): \
                 restore whole nodes instead; nothing was stopped",
                selection.field(),
                self.job.spec.backup,
                self.dc_name()
            );
            return self.fail("SelectiveRestoreNeedsOwnBackups", message);
        }
        if let Some(selection) = Selection::of(&self.job) {
            // Without the module Medusa restores every keyspace: refuse before stopping.
            let without: Vec<String> = own
                .iter()
                .filter(|p| !mounts_module(p))
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            if !without.is_empty() {
                let message = format!(
                    "{}: the {RESTORE_CONTAINER} init container of {} mounts no ConfigMap at \
                     {MODULE_DIR} (the <cluster>-medusa ConfigMap spec.medusa on the \
                     K8ssandraCluster renders, whose sitecustomize.py makes Medusa restore only \
                     the named keyspaces and tables); Medusa would restore every keyspace, so \
                     nothing was stopped",
                    selection.field(),
                    without.join(", ")
                );
                return self.fail("SelectiveRestoreUnavailable", message);
            }
            let Some(live) = self.live_keyspaces(&dc)? else {
                return Ok(());
            };
            if let Some(message) = selection.missing(&live, self.dc_name()) {
                return self.fail("KeyspaceNotFound", message);
            }
        }
        let mapping = own_mapping.unwrap_or(placed);
        let targets: Vec<String> = mapping.keys().cloned().collect();
        let key = self
            .job
            .metadata
            .uid
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| format!("{}-{}", self.name, self.now));
        let in_place = mapping
            .iter()
            .all(|(target, s)| s.source.iter().all(|h| h == target));
        self.status.restore_key = key;
        self.status.start_time = Some(time(self.now));
        self.status.restore_prepared = Some(true);
        self.status.restore_mapping = Some(MedusaRestoreMapping {
            in_place: Some(in_place),
            host_map: Some(mapping),
        });
        self.status.in_progress = Some(targets.clone());
        self.status.finished = Some(Vec::new());
        self.status.failed = Some(Vec::new());
        self.status.restore_prepared = Some(false);
        self.status.phase = Some(PREPARING.into());
        let message = format!(
            "restoring MedusaBackup {} into {} pods of datacenter {}: preparing each node",
            self.job.spec.backup,
            targets.len(),
            self.dc_name()
        );
        self.progress("Preparing", message.clone());
        self.plan
            .event(EventType::Normal, "RestoreStarted", message);
        self.plan.requeue_after(POLL_MS);
        self.finish_status()
    }

    /// The keyspaces of the datacenter's schema, from a ready node (`ListKeyspaces`); None
    /// while that is under way (the plan and status are set then).
    fn live_keyspaces(
        &mut self,
        dc: &CassandraDatacenter,
    ) -> Result<Option<Vec<String>>, PolicyError> {
        let Some(target) = members(self.snapshot, &self.cluster, dc)
            .into_iter()
            .find(|m| m.ready)
            .map(|m| m.node())
        else {
            let message = format!(
                "no pod of datacenter {} is ready to list its keyspaces",
                self.dc_name()
            );
            self.waiting("ListingKeyspaces", message)?;
            return Ok(None);
        };
        let key = self
            .job
            .metadata
            .uid
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| self.name.clone());
        let base = format!("restore-keyspaces/{}/{key}", self.name);
        let mut attempt = 0;
        let mut last_error = String::new();
        while let Some(Outcome::Failed(why)) = self.snapshot.result(&format!("{base}/{attempt}")) {
            last_error = why.clone();
            attempt += 1;
        }
        if attempt >= LIST_ATTEMPTS {
            let message = format!(
                "listing the keyspaces of datacenter {} failed {attempt} times: {last_error}; \
                 nothing was stopped",
                self.dc_name()
            );
            self.fail("KeyspacesUnknown", message)?;
            return Ok(None);
        }
        let id = format!("{base}/{attempt}");
        match self.snapshot.result(&id) {
            Some(Outcome::Succeeded(body)) => {
                let list: Vec<String> = serde_json::from_str(body)
                    .map_err(|e| error(format!("ListKeyspaces answered no list of names: {e}")))?;
                Ok(Some(list))
            }
            other => {
                if other.is_none() {
                    self.plan.operate(id, target, OperationKind::ListKeyspaces);
                }
                let message = format!(
                    "listing the keyspaces of datacenter {} to check spec.keyspaces and \
                     spec.tables",
                    self.dc_name()
                );
                self.waiting("ListingKeyspaces", message)?;
                Ok(None)
            }
        }
    }

    /// Medusa's `PrepareRestore` on every pod while the datacenter still runs: each node
    /// stores its own mapping under the restore key, which Medusa's restore step reads when
    /// the pod starts again (a remapped restore needs it). A node that cannot prepare fails
    /// the job before anything is stopped.
    fn preparing(&mut self, dc: Option<CassandraDatacenter>) -> Result<(), PolicyError> {
        let Some(dc) = dc else {
            return self.gone();
        };
        let pods = members(self.snapshot, &self.cluster, &dc);
        let targets = self.targets();
        let mut waiting = Vec::new();
        for target in &targets {
            let id = format!("prepare-restore/{}/{target}", self.status.restore_key);
            match self.snapshot.result(&id) {
                Some(Outcome::Succeeded(_)) => {}
                Some(Outcome::Failed(why)) => {
                    let message = format!(
                        "preparing the restore on pod {target} failed: {why}; nothing was stopped"
                    );
                    return self.fail("PrepareRestoreFailed", message);
                }
                Some(Outcome::Running(_)) => waiting.push(target.clone()),
                None => {
                    let Some(pod) = pods.iter().find(|p| &p.name == target && p.ready) else {
                        waiting.push(format!("{target} (not ready)"));
                        continue;
                    };
                    self.plan.operate(
                        id,
                        pod.node(),
                        OperationKind::MedusaPrepareRestore(MedusaRestore {
                            datacenter: dc.datacenter_name().to_string(),
                            backup_name: self.job.spec.backup.clone(),
                            restore_key: self.status.restore_key.clone(),
                        }),
                    );
                    waiting.push(target.clone());
                }
            }
        }
        if !waiting.is_empty() {
            let message = format!("preparing the restore on {}", waiting.join(", "));
            return self.waiting("Preparing", message);
        }
        self.status.restore_prepared = Some(true);
        self.status.phase = Some(STOPPING.into());
        self.config_map()?;
        let message = format!(
            "every node of datacenter {} prepared the restore of MedusaBackup {}: stopping it",
            self.dc_name(),
            self.job.spec.backup
        );
        self.progress("Stopping", message.clone());
        self.plan
            .event(EventType::Normal, "RestorePrepared", message);
        self.plan.requeue_after(POLL_MS);
        self.finish_status()
    }

    fn stopping(&mut self, dc: Option<CassandraDatacenter>) -> Result<(), PolicyError> {
        let Some(dc) = dc else {
            return self.gone();
        };
        self.config_map()?;
        let pods = members(self.snapshot, &self.cluster, &dc);
        if !condition_true(&dc, "Stopped") || !pods.is_empty() {
            let message = format!(
                "stopping datacenter {}: {} pods left",
                self.dc_name(),
                pods.len()
            );
            return self.waiting("Stopping", message);
        }
        self.status.datacenter_stopped = Some(time(self.now));
        self.status.phase = Some(STARTING.into());
        let message = format!(
            "datacenter {} stopped; its pods restore as they start",
            self.dc_name()
        );
        self.progress("Restoring", message.clone());
        self.plan
            .event(EventType::Normal, "DatacenterStopped", message);
        self.plan.requeue_after(POLL_MS);
        self.finish_status()
    }

    fn starting(&mut self, dc: Option<CassandraDatacenter>) -> Result<(), PolicyError> {
        let Some(dc) = dc else {
            return self.gone();
        };
        let pods = members(self.snapshot, &self.cluster, &dc);
        let targets = self.targets();
        // Every pod of a stopped datacenter is new: one running and ready has restored in
        // its init container (a failed restore keeps it from starting).
        let (finished, in_progress): (Vec<String>, Vec<String>) = targets
            .into_iter()
            .partition(|t| pods.iter().any(|p: &Member| &p.name == t && p.ready));
        self.status.finished = Some(finished.clone());
        self.status.in_progress = Some(in_progress.clone());
        if !in_progress.is_empty() || !condition_true(&dc, "Ready") {
            // The init containers still need the parameters.
            self.config_map()?;
            let deadline_s = self
                .job
                .spec
                .ready_deadline_seconds
                .and_then(|s| u64::try_from(s).ok())
                .unwrap_or(DEFAULT_READY_DEADLINE_SECONDS);
            let since = self.prev.datacenter_stopped.as_ref().map_or(self.now, ms);
            if self.now.saturating_sub(since) > deadline_s.saturating_mul(1000) {
                let not_ready = if in_progress.is_empty() {
                    format!(
                        "every pod is Ready but datacenter {} is not",
                        self.dc_name()
                    )
                } else {
                    format!("pods not Ready: {}", in_progress.join(", "))
                };
                self.status.failed = Some(in_progress.clone());
                let message = format!(
                    "spec.readyDeadlineSeconds: datacenter {} not restored and Ready {deadline_s}s \
                     after its stop; {not_ready}. Nothing is stopped again or deleted; ConfigMap \
                     {} stays while this job exists, so those pods still restore before they \
                     start (delete the job to let them start without restoring)",
                    self.dc_name(),
                    restore_config_map_name(self.dc_name()),
                );
                return self.fail("RestoreDeadlineExceeded", message);
            }
            let failing = self.failing_restores(&in_progress);
            let message = format!(
                "{} of {} pods restored and ready; waiting for {}{}",
                finished.len(),
                finished.len() + in_progress.len(),
                if in_progress.is_empty() {
                    format!("datacenter {} to be Ready", self.dc_name())
                } else {
                    in_progress.join(", ")
                },
                if failing.is_empty() {
                    String::new()
                } else {
                    // Retried by the kubelet; a restore that cannot succeed (a keyspace the
                    // backup lacks, storage unreachable) shows here long before the deadline.
                    format!(
                        "; the {RESTORE_CONTAINER} init container failed on {} (see its log)",
                        failing.join(", ")
                    )
                }
            );
            return self.waiting("Restoring", message);
        }
        // Restored: the ConfigMap is not listed any more, so it is pruned now; a pod
        // started from here on restores nothing.
        self.status.phase = Some(ROLES.into());
        let message = format!(
            "{} pods restored and datacenter {} Ready; re-creating its roles",
            finished.len(),
            self.dc_name()
        );
        self.progress("RecreatingRoles", message.clone());
        self.plan
            .event(EventType::Normal, "DatacenterRestored", message);
        self.plan.requeue_after(1_000);
        self.finish_status()
    }

    /// Pods among `names` whose `medusa-restore` init container exited with an error, with
    /// the exit code and restart count.
    fn failing_restores(&self, names: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        for (c, pod) in self.snapshot.related_of::<Pod>() {
            let Some(name) = pod.metadata.name.clone() else {
                continue;
            };
            if c != self.cluster
                || pod.metadata.namespace.as_deref() != Some(self.namespace.as_str())
                || !names.contains(&name)
            {
                continue;
            }
            let Some(st) = pod
                .status
                .as_ref()
                .and_then(|s| s.init_container_statuses.as_ref())
                .and_then(|l| l.iter().find(|s| s.name == RESTORE_CONTAINER))
            else {
                continue;
            };
            let exit = |s: &Option<k8s_openapi::api::core::v1::ContainerState>| {
                s.as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .map(|t| t.exit_code)
                    .filter(|code| *code != 0)
            };
            if let Some(code) = exit(&st.state).or_else(|| exit(&st.last_state)) {
                out.push(format!(
                    "{name} (exit code {code}, {} restarts)",
                    st.restart_count
                ));
            }
        }
        out.sort();
        out
    }

    /// The restored `system_auth` holds the roles as they were at backup time: the
    /// superuser and `spec.users` roles are upserted again from their Secrets.
    fn roles(&mut self, dc: Option<CassandraDatacenter>) -> Result<(), PolicyError> {
        let Some(dc) = dc else {
            return self.gone();
        };
        let pods = members(self.snapshot, &self.cluster, &dc);
        let Some(target) = pods.iter().find(|p| p.ready).map(Member::node) else {
            let message = format!("no pod of {} is ready to re-create roles", self.dc_name());
            return self.waiting("RecreatingRoles", message);
        };
        let mut roles = vec![(dc.superuser_secret_name(), true)];
        for u in dc.spec.users.iter().flatten() {
            if !roles.iter().any(|(s, _)| *s == u.secret_name) {
                roles.push((u.secret_name.clone(), u.superuser));
            }
        }
        let mut pending = Vec::new();
        for (secret, superuser) in roles {
            let base = format!(
                "restore-role/{}/{}/{secret}",
                self.name, self.status.restore_key
            );
            let mut attempt = 0;
            let mut last_error = String::new();
            while let Some(Outcome::Failed(why)) =
                self.snapshot.result(&format!("{base}/{attempt}"))
            {
                last_error = why.clone();
                attempt += 1;
            }
            if attempt >= ROLE_ATTEMPTS {
                let message = format!(
                    "re-creating the role of Secret {secret} failed {attempt} times: {last_error}"
                );
                return self.fail("RolesFailed", message);
            }
            match self.snapshot.result(&format!("{base}/{attempt}")) {
                Some(Outcome::Succeeded(_)) => {}
                Some(_) => pending.push(secret),
                None => {
                    self.plan.operate(
                        format!("{base}/{attempt}"),
                        target.clone(),
                        OperationKind::CreateRole(Role {
                            secret_name: secret.clone(),
                            superuser,
                            login: true,
                        }),
                    );
                    pending.push(secret);
                }
            }
        }
        if !pending.is_empty() {
            let message = format!("re-creating the roles of {}", pending.join(", "));
            return self.waiting("RecreatingRoles", message);
        }
        self.status.phase = Some(COMPLETE.into());
        self.status.finish_time = Some(time(self.now));
        let message = format!(
            "MedusaBackup {} restored into datacenter {}; roles re-created",
            self.job.spec.backup,
            self.dc_name()
        );
        self.set_conditions(vec![
            Cond::new(PROGRESSING, false, "RestoreComplete", message.clone()),
            Cond::new(COMPLETE, true, "RestoreComplete", message.clone()),
            Cond::new(FAILED, false, "RestoreComplete", ""),
        ]);
        self.plan
            .event(EventType::Normal, "RestoreComplete", message);
        self.finish_status()
    }

    fn gone(&mut self) -> Result<(), PolicyError> {
        let message = format!(
            "spec.cassandraDatacenter: CassandraDatacenter {}/{} was deleted during the restore",
            self.namespace,
            self.dc_name()
        );
        self.fail("DatacenterNotFound", message)
    }

    /// The restore parameters the `medusa-restore` init containers read (`envFrom`).
    fn config_map(&mut self) -> Result<(), PolicyError> {
        let mut data = BTreeMap::new();
        data.insert("BACKUP_NAME".to_string(), self.job.spec.backup.clone());
        data.insert("RESTORE_KEY".to_string(), self.status.restore_key.clone());
        let mapping = serde_json::to_string(&self.status.restore_mapping)
            .map_err(|e| error(format!("restore mapping: {e}")))?;
        data.insert("RESTORE_MAPPING".to_string(), mapping);
        if let Some(selection) = Selection::of(&self.job) {
            // The module on the path first, then the image's own path (its `PYTHONPATH`,
            // which this replaces).
            data.insert("PYTHONPATH".to_string(), RESTORE_PYTHONPATH.to_string());
            data.insert(
                RESTORE_KEYSPACES_ENV.to_string(),
                selection.keyspaces.join(","),
            );
            data.insert(RESTORE_TABLES_ENV.to_string(), selection.tables.join(","));
        }
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(restore_config_map_name(self.dc_name())),
                namespace: Some(self.namespace.clone()),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        };
        let cluster = self.cluster.clone();
        self.plan.apply(&cluster, &cm)
    }
}

/// The keyspaces and tables a selective restore names (`spec.keyspaces`, `spec.tables`),
/// each once, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    pub keyspaces: Vec<String>,
    pub tables: Vec<String>,
}

impl Selection {
    /// None: every keyspace is restored.
    pub fn of(job: &MedusaRestoreJob) -> Option<Selection> {
        let unique = |v: &Option<Vec<String>>| {
            let mut out: Vec<String> = Vec::new();
            for n in v.iter().flatten().map(|n| n.trim()) {
                if !n.is_empty() && !out.iter().any(|o| o == n) {
                    out.push(n.to_string());
                }
            }
            out
        };
        let s = Selection {
            keyspaces: unique(&job.spec.keyspaces),
            tables: unique(&job.spec.tables),
        };
        (!s.keyspaces.is_empty() || !s.tables.is_empty()).then_some(s)
    }

    fn field(&self) -> &'static str {
        if self.keyspaces.is_empty() {
            "spec.tables"
        } else {
            "spec.keyspaces"
        }
    }

    /// What names a keyspace the datacenter's schema lacks (a selective restore replaces
    /// the files of existing tables; it creates no schema), by field and index.
    pub fn missing(&self, live: &[String], dc: &str) -> Option<String> {
        let has = |k: &str| live.iter().any(|l| l == k);
        let mut out = Vec::new();
        for (i, k) in self.keyspaces.iter().enumerate() {
            if !has(k) {
                out.push(format!("spec.keyspaces[{i}]: keyspace {k}"));
            }
        }
        for (i, t) in self.tables.iter().enumerate() {
            let k = t.split_once('.').map_or(t.as_str(), |(k, _)| k);
            if !has(k) {
                out.push(format!("spec.tables[{i}]: keyspace {k} of table {t}"));
            }
        }
        (!out.is_empty()).then(|| {
            format!(
                "{} not in the schema of datacenter {dc}: a restore of chosen keyspaces and \
                 tables replaces the files of existing tables and does not restore the schema \
                 (create the keyspace and its tables first); nothing was stopped",
                out.join("; ")
            )
        })
    }
}

/// Whether the pod's `medusa-restore` init container mounts a ConfigMap volume at
/// [`MODULE_DIR`], where the `<kc>-medusa` ConfigMap brings the selective-restore module.
fn mounts_module(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    let Some(init) = spec
        .init_containers
        .iter()
        .flatten()
        .find(|c| c.name == RESTORE_CONTAINER)
    else {
        return false;
    };
    init.volume_mounts.iter().flatten().any(|m| {
        m.mount_path.trim_end_matches('/') == MODULE_DIR
            && m.sub_path.as_deref().unwrap_or_default().is_empty()
            && spec
                .volumes
                .iter()
                .flatten()
                .any(|v| v.name == m.name && v.config_map.is_some())
    })
}

/// Whether the pod's `medusa-restore` init container takes its environment from `cm`.
fn reads_restore_config(pod: &Pod, cm: &str) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == RESTORE_CONTAINER))
        .is_some_and(|c| {
            c.env_from
                .iter()
                .flatten()
                .any(|e| e.config_map_ref.as_ref().is_some_and(|r| r.name == cm))
        })
}

fn condition_true(dc: &CassandraDatacenter, t: &str) -> bool {
    dc.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == t && c.status == "True"))
}

/// The backup's hosts by rack, racks and hosts sorted.
fn backup_racks(backup: &MedusaBackup) -> BTreeMap<String, Vec<String>> {
    let mut racks: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in backup
        .status
        .as_ref()
        .and_then(|s| s.nodes.as_ref())
        .into_iter()
        .flatten()
    {
        racks
            .entry(n.rack.clone().unwrap_or_default())
            .or_default()
            .push(n.host.clone().unwrap_or_default());
    }
    for hosts in racks.values_mut() {
        hosts.sort();
    }
    racks
}

/// The datacenter's racks with their sizes, as its StatefulSets split `spec.size`.
fn dc_racks(dc: &CassandraDatacenter) -> Vec<(String, String, usize)> {
    let racks = dc.racks();
    let size = usize::try_from(dc.spec.size.max(0)).unwrap_or_default();
    racks
        .iter()
        .zip(split_racks(size, racks.len()))
        .map(|(r, n)| (r.name.clone(), dc.sts_name(&r.name), n))
        .collect()
}

fn single_default(dc: &CassandraDatacenter) -> bool {
    let racks = dc.racks();
    racks.len() == 1 && racks[0].name == "default"
}

/// Whether the backup can restore the datacenter; Err names the field and the rule.
pub fn fits(backup: &MedusaBackup, dc: &CassandraDatacenter) -> Result<(), (&'static str, String)> {
    let b = backup.metadata.name.clone().unwrap_or_default();
    let dc_obj = dc.metadata.name.clone().unwrap_or_default();
    let Some(st) = backup.status.as_ref() else {
        return Err((
            "BackupNotFinished",
            format!("spec.backup: MedusaBackup {b} has no status: only a finished backup restores"),
        ));
    };
    let state = st.status.clone().unwrap_or_default();
    if state != "SUCCESS" {
        return Err((
            "BackupNotFinished",
            format!(
                "spec.backup: MedusaBackup {b} status.status is {state:?}, not SUCCESS: only a \
                 finished backup restores"
            ),
        ));
    }
    let total = st.total_nodes.unwrap_or_default();
    let finished = st.finished_nodes.unwrap_or_default();
    if finished != total {
        return Err((
            "BackupIncomplete",
            format!(
                "spec.backup: MedusaBackup {b} status.finishedNodes ({finished}) must equal \
                 status.totalNodes ({total})"
            ),
        ));
    }
    let nodes = st.nodes.clone().unwrap_or_default();
    if nodes.len() != usize::try_from(total).unwrap_or_default() || nodes.is_empty() {
        return Err((
            "BackupIncomplete",
            format!(
                "spec.backup: MedusaBackup {b} lists {} nodes in status.nodes for \
                 status.totalNodes {total}: every node must be listed to map it",
                nodes.len()
            ),
        ));
    }
    if total != dc.spec.size {
        return Err((
            "SizeMismatch",
            format!(
                "spec.backup: MedusaBackup {b} holds {total} nodes, CassandraDatacenter \
                 {dc_obj} has spec.size {}: the node counts must be equal",
                dc.spec.size
            ),
        ));
    }
    let name = dc.datacenter_name();
    if let Some((i, n)) = nodes
        .iter()
        .enumerate()
        .find(|(_, n)| n.datacenter.as_deref() != Some(name))
    {
        return Err((
            "DatacenterMismatch",
            format!(
                "spec.backup: MedusaBackup {b} status.nodes[{i}].datacenter is {:?}, the \
                 datacenter's Cassandra name is {name:?}: a backup restores into the \
                 datacenter it was taken from",
                n.datacenter.clone().unwrap_or_default()
            ),
        ));
    }
    let from = backup_racks(backup);
    if single_default(dc) {
        return Ok(());
    }
    let want: BTreeMap<String, usize> = dc_racks(dc).into_iter().map(|(r, _, n)| (r, n)).collect();
    let have: BTreeMap<String, usize> = from.iter().map(|(r, h)| (r.clone(), h.len())).collect();
    if want != have {
        return Err((
            "RackMismatch",
            format!(
                "spec.backup: MedusaBackup {b} has racks {have:?} (nodes per rack), \
                 CassandraDatacenter {dc_obj} has {want:?}: rack names and sizes must match, \
                 or the datacenter has the single rack default"
            ),
        ));
    }
    Ok(())
}

/// Target pod → its own backed-up node, when every target finds exactly one host of the
/// backup that is itself: its name, its name as the first label of an FQDN, or its current
/// address (Medusa records what its `fqdn` resolved to). None when any target finds none.
fn own_backups<'a>(
    backup: &MedusaBackup,
    targets: impl Iterator<Item = &'a String>,
    pods: &[&Pod],
) -> Option<BTreeMap<String, MappingSource>> {
    let hosts: Vec<String> = backup_racks(backup).into_values().flatten().collect();
    let mut out = BTreeMap::new();
    for target in targets {
        let ip = pods
            .iter()
            .find(|p| p.metadata.name.as_ref() == Some(target))
            .and_then(|p| p.status.as_ref())
            .and_then(|s| s.pod_ip.clone());
        let prefix = format!("{target}.");
        let mut found = hosts
            .iter()
            .filter(|h| *h == target || h.starts_with(&prefix) || Some(*h) == ip.as_ref());
        let (Some(host), None) = (found.next(), found.next()) else {
            return None;
        };
        out.insert(
            target.clone(),
            MappingSource {
                source: vec![host.clone()],
                seed: false,
            },
        );
    }
    let mut used: Vec<&String> = out.values().flat_map(|s| &s.source).collect();
    used.sort();
    used.dedup();
    (used.len() == out.len()).then_some(out)
}

/// Target pod → the backed-up node it restores: per rack (sorted), the i-th host (sorted)
/// onto `<sts>-<i>`; a datacenter with the single rack `default` takes every host in rack
/// then host order.
pub fn mapping(backup: &MedusaBackup, dc: &CassandraDatacenter) -> BTreeMap<String, MappingSource> {
    let from = backup_racks(backup);
    let mut out = BTreeMap::new();
    let source = |host: &String| MappingSource {
        source: vec![host.clone()],
        seed: false,
    };
    if single_default(dc) && !(from.len() == 1 && from.contains_key("default")) {
        let sts = dc.sts_name("default");
        for (i, host) in from.values().flatten().enumerate() {
            out.insert(format!("{sts}-{i}"), source(host));
        }
        return out;
    }
    for (rack, sts, _) in dc_racks(dc) {
        for (i, host) in from.get(&rack).into_iter().flatten().enumerate() {
            out.insert(format!("{sts}-{i}"), source(host));
        }
    }
    out
}
