//! One reconcile of a MedusaBackupJob: wait for a datacenter that can be backed up, ask
//! every pod once, follow each pod's backup to its end, then record the MedusaBackup.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8ssandra_api::medusa::{
    BACKUP_SIDECAR_NAME, BackupType, MedusaBackup, MedusaBackupJob, MedusaBackupJobStatus,
};
use k8ssandra_medusa::{Member, backup_record, datacenter, members, summaries};
use k8ssandra_policy_sdk::conditions::{Cond, conditions, time};
use k8ssandra_policy_sdk::{
    EventType, MedusaBackup as BackupRequest, MedusaBackupMode, NodeRef, OperationKind, Outcome,
    Plan, PolicyError, Snapshot, error,
};
use serde::Deserialize;

pub const COMPLETE: &str = "Complete";
pub const FAILED: &str = "Failed";
pub const PROGRESSING: &str = "Progressing";

/// How often a pod started before an operator restart is asked for its backup's status,
/// and how long to wait for a datacenter that is not ready.
const POLL_MS: u64 = 10_000;

/// The backup operation of a pod: one per job and pod, so a repeated plan never asks twice.
pub fn backup_id(job: &str, pod: &str) -> String {
    format!("medusa-backup/{job}/{pod}")
}

/// A status poll of a pod started before the host restarted; one id per poll period.
fn status_id(job: &str, pod: &str, now_ms: u64) -> String {
    format!("medusa-backup-status/{job}/{pod}/{}", now_ms / POLL_MS)
}

fn summary_id(job: &str, attempt: u64) -> String {
    format!("medusa-get-backups/{job}/{attempt}")
}

/// A node's backup status as the host reports it (`medusa-backup`, `-status` outcomes).
#[derive(Deserialize)]
struct NodeStatus {
    status: String,
}

/// Where one pod's backup stands.
enum PodBackup {
    Running,
    Done,
    Failed(String),
}

pub fn reconcile(snapshot: &Snapshot) -> Result<Plan, PolicyError> {
    let job: MedusaBackupJob = snapshot.parent()?;
    let name = job.metadata.name.clone().unwrap_or_default();
    let namespace = job.metadata.namespace.clone().unwrap_or_default();
    let cluster = snapshot.parent.cluster.clone();
    let now = snapshot.now_ms;
    let prev = job.status.clone().unwrap_or_default();
    let mut status = prev.clone();
    let mut plan = Plan::default();

    // Finished: the record stays as it is; nothing more to do.
    if prev.finish_time.is_some() {
        keep_backup(snapshot, &mut plan)?;
        return Ok(plan);
    }

    let dc = datacenter(
        snapshot,
        &cluster,
        &namespace,
        &job.spec.cassandra_datacenter,
    );

    let started = prev.start_time.is_some();
    let pods = match (&dc, started) {
        (Some(dc), _) => members(snapshot, &cluster, dc),
        // Deleted mid-backup: the pods it had are followed (and fail) by name.
        (None, true) => Vec::new(),
        (None, false) => {
            return waiting(
                plan,
                status,
                now,
                "DatacenterNotFound",
                format!(
                    "spec.cassandraDatacenter: no CassandraDatacenter {namespace}/{}",
                    job.spec.cassandra_datacenter
                ),
            );
        }
    };

    if !started {
        if pods.is_empty() {
            return waiting(
                plan,
                status,
                now,
                "NoPods",
                format!(
                    "datacenter {} has no pods yet",
                    job.spec.cassandra_datacenter
                ),
            );
        }
        let without: Vec<&str> = pods
            .iter()
            .filter(|p| !p.has_medusa)
            .map(|p| p.name.as_str())
            .collect();
        if !without.is_empty() {
            return waiting(
                plan,
                status,
                now,
                "BackupSidecarNotFound",
                format!(
                    "pods without a {BACKUP_SIDECAR_NAME} container (enable spec.medusa on the \
                     K8ssandraCluster): {}",
                    without.join(", ")
                ),
            );
        }
        let unready: Vec<&str> = pods
            .iter()
            .filter(|p| !p.ready)
            .map(|p| p.name.as_str())
            .collect();
        if !unready.is_empty() {
            return waiting(
                plan,
                status,
                now,
                "PodsNotReady",
                format!(
                    "a backup needs every node; not ready: {}",
                    unready.join(", ")
                ),
            );
        }
        let mode = match job.spec.backup_type {
            Some(BackupType::Full) => MedusaBackupMode::Full,
            _ => MedusaBackupMode::Differential,
        };
        for pod in &pods {
            plan.operate(
                backup_id(&name, &pod.name),
                pod.node(),
                OperationKind::MedusaBackup(BackupRequest {
                    name: name.clone(),
                    mode,
                }),
            );
        }
        status.start_time = Some(time(now));
        status.in_progress = Some(pods.iter().map(|p| p.name.clone()).collect());
        status.finished = Some(Vec::new());
        status.failed = Some(Vec::new());
        status.conditions = Some(conditions(
            prev.conditions.as_deref(),
            now,
            vec![progressing(
                true,
                "BackingUp",
                format!("backing up {} pods", pods.len()),
            )],
        ));
        plan.event(
            EventType::Normal,
            "BackupStarted",
            format!("backup {name} of {} pods started", pods.len()),
        );
        plan.set_status(&status)?;
        return Ok(plan);
    }

    // Started: follow every pod that was started and has no verdict yet.
    let mut in_progress = Vec::new();
    let mut finished = prev.finished.clone().unwrap_or_default();
    let mut failed = prev.failed.clone().unwrap_or_default();
    let mut reasons: BTreeMap<String, String> = BTreeMap::new();
    for pod_name in prev.in_progress.clone().unwrap_or_default() {
        let node = pods
            .iter()
            .find(|p| p.name == pod_name)
            .map(Member::node)
            .unwrap_or_else(|| NodeRef {
                cluster: cluster.clone(),
                namespace: namespace.clone(),
                pod: pod_name.clone(),
            });
        match pod_backup(snapshot, &name, &pod_name, node, now, &mut plan) {
            PodBackup::Running => in_progress.push(pod_name),
            PodBackup::Done => finished.push(pod_name),
            PodBackup::Failed(why) => {
                reasons.insert(pod_name.clone(), why);
                failed.push(pod_name);
            }
        }
    }
    finished.sort();
    finished.dedup();
    failed.sort();
    failed.dedup();
    status.in_progress = Some(in_progress.clone());
    status.finished = Some(finished.clone());
    status.failed = Some(failed.clone());

    if !in_progress.is_empty() {
        status.conditions = Some(conditions(
            prev.conditions.as_deref(),
            now,
            vec![progressing(
                true,
                "BackingUp",
                format!(
                    "{} of {} pods backed up; waiting for {}",
                    finished.len(),
                    finished.len() + failed.len() + in_progress.len(),
                    in_progress.join(", ")
                ),
            )],
        ));
        plan.requeue_after(POLL_MS);
        plan.set_status(&status)?;
        return Ok(plan);
    }

    if !failed.is_empty() {
        let detail: Vec<String> = failed
            .iter()
            .map(|p| match reasons.get(p) {
                Some(why) => format!("{p}: {why}"),
                None => p.clone(),
            })
            .collect();
        let message = format!("backup {name} failed on {}", detail.join("; "));
        status.finish_time = Some(time(now));
        status.conditions = Some(conditions(
            prev.conditions.as_deref(),
            now,
            vec![
                progressing(false, "BackupFailed", message.clone()),
                Cond::new(FAILED, true, "BackupFailed", message.clone()),
                Cond::new(
                    COMPLETE,
                    false,
                    "BackupFailed",
                    "no MedusaBackup was recorded",
                ),
            ],
        ));
        plan.event(EventType::Warning, "BackupFailed", message);
        plan.set_status(&status)?;
        return Ok(plan);
    }

    // Every pod succeeded: record what the storage holds.
    let Some(first) = finished.first() else {
        return Err(error("a started backup lists no pod"));
    };
    let target = pods
        .iter()
        .find(|p| &p.name == first)
        .map(Member::node)
        .unwrap_or_else(|| NodeRef {
            cluster: cluster.clone(),
            namespace: namespace.clone(),
            pod: first.clone(),
        });
    let attempt = summary_attempt(snapshot, &name);
    let summary = match snapshot.result(&summary_id(&name, attempt)) {
        Some(Outcome::Succeeded(body)) => summaries(body)
            .map_err(error)?
            .into_iter()
            .find(|s| s.backup_name == name),
        Some(Outcome::Failed(why)) => {
            plan.operate(
                summary_id(&name, attempt + 1),
                target,
                OperationKind::MedusaGetBackups,
            );
            status.conditions = Some(conditions(
                prev.conditions.as_deref(),
                now,
                vec![progressing(
                    true,
                    "ReadingBackup",
                    format!("listing the storage's backups failed, trying again: {why}"),
                )],
            ));
            plan.set_status(&status)?;
            return Ok(plan);
        }
        Some(Outcome::Running(_)) => {
            plan.set_status(&status)?;
            return Ok(plan);
        }
        None => {
            plan.operate(
                summary_id(&name, attempt),
                target,
                OperationKind::MedusaGetBackups,
            );
            plan.set_status(&status)?;
            return Ok(plan);
        }
    };
    let Some(summary) = summary else {
        // Every pod said SUCCESS, yet the storage does not list the backup.
        let message = format!("backup {name}: every pod finished but the storage does not list it");
        status.finish_time = Some(time(now));
        status.conditions = Some(conditions(
            prev.conditions.as_deref(),
            now,
            vec![
                progressing(false, "BackupMissing", message.clone()),
                Cond::new(FAILED, true, "BackupMissing", message.clone()),
                Cond::new(
                    COMPLETE,
                    false,
                    "BackupMissing",
                    "no MedusaBackup was recorded",
                ),
            ],
        ));
        plan.event(EventType::Warning, "BackupMissing", message);
        plan.set_status(&status)?;
        return Ok(plan);
    };

    let mut backup = backup_record(
        &summary,
        &namespace,
        &job.spec.cassandra_datacenter,
        job.metadata.labels.clone(),
        prev.start_time.clone(),
        Some(time(now)),
    );
    // The job's own type, whatever the storage calls it.
    backup.spec.backup_type = job.spec.backup_type;
    plan.apply(&cluster, &backup)?;
    status.finish_time = Some(time(now));
    let message = format!(
        "backup {name} of {} pods recorded as MedusaBackup {name}",
        finished.len()
    );
    status.conditions = Some(conditions(
        prev.conditions.as_deref(),
        now,
        vec![
            progressing(false, "BackupComplete", message.clone()),
            Cond::new(FAILED, false, "BackupComplete", ""),
            Cond::new(COMPLETE, true, "BackupComplete", message.clone()),
        ],
    ));
    plan.event(EventType::Normal, "BackupComplete", message);
    plan.set_status(&status)?;
    Ok(plan)
}

/// The outcome of a pod's backup: the operation's own outcome, or, when the host has none
/// (it restarted since), a status poll.
fn pod_backup(
    snapshot: &Snapshot,
    job: &str,
    pod: &str,
    node: NodeRef,
    now: u64,
    plan: &mut Plan,
) -> PodBackup {
    match snapshot.result(&backup_id(job, pod)) {
        Some(Outcome::Succeeded(_)) => return PodBackup::Done,
        Some(Outcome::Failed(why)) => return PodBackup::Failed(why.clone()),
        Some(Outcome::Running(_)) => return PodBackup::Running,
        None => {}
    }
    // The latest poll that answered decides; until one does, poll.
    let latest = snapshot
        .results
        .iter()
        .filter(|r| {
            r.id.starts_with(&format!("medusa-backup-status/{job}/{pod}/"))
        })
        .max_by_key(|r| r.at_ms);
    let verdict = latest.and_then(|r| match &r.outcome {
        Outcome::Succeeded(body) => match serde_json::from_str::<NodeStatus>(body) {
            Ok(s) if s.status == "SUCCESS" => Some(PodBackup::Done),
            Ok(s) if s.status == "IN_PROGRESS" => None,
            Ok(s) => Some(PodBackup::Failed(format!(
                "Medusa reports the backup as {}",
                s.status
            ))),
            Err(e) => Some(PodBackup::Failed(format!("unreadable status: {e}"))),
        },
        Outcome::Failed(why) if why.contains("not found") => Some(PodBackup::Failed(why.clone())),
        // A call that failed otherwise (the pod restarting) is polled again.
        _ => None,
    });
    match verdict {
        Some(v) => v,
        None => {
            plan.operate(
                status_id(job, pod, now),
                node,
                OperationKind::MedusaBackupStatus(job.to_string()),
            );
            plan.requeue_after(POLL_MS);
            PodBackup::Running
        }
    }
}

/// The summary attempt in use: one more than the last failed one.
fn summary_attempt(snapshot: &Snapshot, job: &str) -> u64 {
    let prefix = format!("medusa-get-backups/{job}/");
    snapshot
        .results
        .iter()
        .filter_map(|r| r.id.strip_prefix(&prefix)?.parse::<u64>().ok())
        .max()
        .unwrap_or(0)
}

/// Re-lists the recorded MedusaBackup of a finished job (an unchanged object is not
/// written); the host never prunes it either way.
fn keep_backup(snapshot: &Snapshot, plan: &mut Plan) -> Result<(), PolicyError> {
    let name = snapshot.parent.name().unwrap_or_default();
    for (cluster, backup) in snapshot.children_by_kind::<MedusaBackup>("MedusaBackup") {
        if backup.metadata.name.as_deref() == Some(name.as_str()) {
            let mut kept = backup.clone();
            kept.metadata = ObjectMeta {
                name: backup.metadata.name.clone(),
                namespace: backup.metadata.namespace.clone(),
                labels: backup.metadata.labels.clone(),
                ..Default::default()
            };
            kept.status = None;
            plan.apply(&cluster, &kept)?;
        }
    }
    Ok(())
}

fn progressing(on: bool, reason: &'static str, message: String) -> Cond {
    Cond::new(PROGRESSING, on, reason, message)
}

fn waiting(
    mut plan: Plan,
    mut status: MedusaBackupJobStatus,
    now: u64,
    reason: &'static str,
    message: String,
) -> Result<Plan, PolicyError> {
    let prev = status.conditions.take();
    status.conditions = Some(conditions(
        prev.as_deref(),
        now,
        vec![progressing(false, reason, message)],
    ));
    plan.requeue_after(POLL_MS);
    plan.set_status(&status)?;
    Ok(plan)
}
