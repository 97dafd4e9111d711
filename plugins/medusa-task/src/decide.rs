//! One reconcile of a MedusaTask: start the operation on the datacenter's pods, gather
//! their outcomes, sync the records, finish.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8ssandra_api::medusa::{
    MedusaBackup, MedusaTask, MedusaTaskOperation, MedusaTaskStatus, TaskResult,
};
use k8ssandra_medusa::{Member, Summary, backup_record, datacenter, members, summaries};
use k8ssandra_policy_sdk::conditions::{Cond, conditions, time};
use k8ssandra_policy_sdk::{
    EventType, MedusaRestore, NodeRef, ObjectKey, OperationKind, Outcome, Plan, PolicyError,
    Snapshot,
};
use serde::Deserialize;

pub const COMPLETE: &str = "Complete";
pub const FAILED: &str = "Failed";

const WAIT_MS: u64 = 10_000;

fn op_id(task: &str, op: &str, pod: &str) -> String {
    format!("medusa-{op}/{task}/{pod}")
}

fn sync_id(task: &str, attempt: u64) -> String {
    format!("medusa-get-backups/{task}/{attempt}")
}

/// A purge's answer (`medusa-purge-backups` outcome).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Purged {
    backups_purged: i64,
    objects_purged: i64,
    total_purged_size: i64,
    objects_within_gc_grace: i64,
}

pub fn reconcile(snapshot: &Snapshot) -> Result<Plan, PolicyError> {
    let task: MedusaTask = snapshot.parent()?;
    let name = task.metadata.name.clone().unwrap_or_default();
    let namespace = task.metadata.namespace.clone().unwrap_or_default();
    let cluster = snapshot.parent.cluster.clone();
    let now = snapshot.now_ms;
    let prev = task.status.clone().unwrap_or_default();
    let mut status = prev.clone();
    let mut plan = Plan::default();
    if prev.finish_time.is_some() {
        return Ok(plan);
    }
    let dc_name = task.spec.cassandra_datacenter.clone();
    let Some(dc) = datacenter(snapshot, &cluster, &namespace, &dc_name) else {
        return fail(
            plan,
            status,
            now,
            "DatacenterNotFound",
            format!("spec.cassandraDatacenter: no CassandraDatacenter {namespace}/{dc_name}"),
        );
    };
    let pods: Vec<Member> = members(snapshot, &cluster, &dc)
        .into_iter()
        .filter(|p| p.has_medusa)
        .collect();
    if pods.is_empty() {
        status.conditions = Some(conditions(
            prev.conditions.as_deref(),
            now,
            vec![Cond::new(
                COMPLETE,
                false,
                "NoMedusaPods",
                format!("datacenter {dc_name} has no pod running Medusa yet"),
            )],
        ));
        plan.requeue_after(WAIT_MS);
        plan.set_status(&status)?;
        return Ok(plan);
    }
    let cass_dc = dc.datacenter_name().to_string();

    // Per-pod operations (purge, prepare_restore), all pods at once: each call has its own
    // deadline in the host, so one dead pod holds nobody.
    let per_pod = match task.spec.operation {
        MedusaTaskOperation::Sync => None,
        MedusaTaskOperation::Purge => Some(("purge", OperationKind::MedusaPurgeBackups)),
        MedusaTaskOperation::PrepareRestore => Some((
            "prepare-restore",
            OperationKind::MedusaPrepareRestore(MedusaRestore {
                datacenter: cass_dc.clone(),
                backup_name: task.spec.backup_name.clone().unwrap_or_default(),
                restore_key: task.spec.restore_key.clone().unwrap_or_default(),
            }),
        )),
    };
    if prev.start_time.is_none() {
        status.start_time = Some(time(now));
        status.in_progress = Some(match per_pod {
            Some(_) => pods.iter().map(|p| p.name.clone()).collect(),
            None => Vec::new(),
        });
        status.finished = Some(Vec::new());
        status.failed = Some(Vec::new());
        plan.event(
            EventType::Normal,
            "TaskStarted",
            format!(
                "{} on datacenter {dc_name}",
                operation_name(task.spec.operation)
            ),
        );
    }
    let mut failures: Vec<String> = Vec::new();
    if let Some((op, kind)) = &per_pod {
        let mut in_progress = Vec::new();
        let mut finished = status.finished.clone().unwrap_or_default();
        let mut failed = status.failed.clone().unwrap_or_default();
        for pod_name in status.in_progress.clone().unwrap_or_default() {
            let id = op_id(&name, op, &pod_name);
            match snapshot.result(&id) {
                Some(Outcome::Succeeded(body)) => {
                    let mut result = TaskResult {
                        pod_name: Some(pod_name.clone()),
                        ..Default::default()
                    };
                    if let Ok(p) = serde_json::from_str::<Purged>(body) {
                        result.nb_backups_purged = Some(p.backups_purged);
                        result.nb_objects_purged = Some(p.objects_purged);
                        result.total_purged_size = Some(p.total_purged_size);
                        result.total_objects_within_gc_grace = Some(p.objects_within_gc_grace);
                    }
                    finished.push(result);
                }
                Some(Outcome::Failed(why)) => {
                    failures.push(format!("{pod_name}: {why}"));
                    failed.push(pod_name);
                }
                Some(Outcome::Running(_)) => in_progress.push(pod_name),
                // Not asked yet, or asked before the host restarted: ask (again).
                None => {
                    let node = pods
                        .iter()
                        .find(|p| p.name == pod_name)
                        .map(Member::node)
                        .unwrap_or_else(|| NodeRef {
                            cluster: cluster.clone(),
                            namespace: namespace.clone(),
                            pod: pod_name.clone(),
                        });
                    plan.operate(id, node, kind.clone());
                    in_progress.push(pod_name);
                }
            }
        }
        finished.sort_by(|a, b| a.pod_name.cmp(&b.pod_name));
        failed.sort();
        status.in_progress = Some(in_progress.clone());
        status.finished = Some(finished);
        status.failed = Some(failed.clone());
        if !in_progress.is_empty() {
            plan.set_status(&status)?;
            return Ok(plan);
        }
        if !failed.is_empty() && failures.is_empty() {
            // Failures recorded by an earlier reconcile keep their names only.
            failures = failed.clone();
        }
    }

    // Sync (alone, or after a purge): compare the records with the storage's list.
    if matches!(
        task.spec.operation,
        MedusaTaskOperation::Sync | MedusaTaskOperation::Purge
    ) {
        match sync(snapshot, &mut plan, &task, &pods, &cass_dc) {
            Sync::Waiting => {
                plan.set_status(&status)?;
                return Ok(plan);
            }
            Sync::Failed(why) => failures.push(format!("sync: {why}")),
            Sync::Done { pod } => {
                if task.spec.operation == MedusaTaskOperation::Sync {
                    status.finished = Some(vec![TaskResult {
                        pod_name: Some(pod),
                        ..Default::default()
                    }]);
                }
            }
        }
    }

    status.finish_time = Some(time(now));
    let op = operation_name(task.spec.operation);
    let wanted = if failures.is_empty() {
        plan.event(EventType::Normal, "TaskComplete", format!("{op} finished"));
        vec![
            Cond::new(COMPLETE, true, "TaskComplete", format!("{op} finished")),
            Cond::new(FAILED, false, "TaskComplete", ""),
        ]
    } else {
        let message = format!("{op} failed on {}", failures.join("; "));
        plan.event(EventType::Warning, "TaskFailed", message.clone());
        vec![
            Cond::new(COMPLETE, true, "TaskFailed", message.clone()),
            Cond::new(FAILED, true, "TaskFailed", message),
        ]
    };
    status.conditions = Some(conditions(prev.conditions.as_deref(), now, wanted));
    plan.set_status(&status)?;
    Ok(plan)
}

enum Sync {
    Waiting,
    Failed(String),
    Done { pod: String },
}

/// Lists the storage's backups through one pod (the next one after a failure) and makes
/// the datacenter's records match.
fn sync(
    snapshot: &Snapshot,
    plan: &mut Plan,
    task: &MedusaTask,
    pods: &[Member],
    cass_dc: &str,
) -> Sync {
    let name = task.metadata.name.clone().unwrap_or_default();
    let namespace = task.metadata.namespace.clone().unwrap_or_default();
    let prefix = format!("medusa-get-backups/{name}/");
    let attempts: Vec<(u64, &Outcome)> = snapshot
        .results
        .iter()
        .filter_map(|r| Some((r.id.strip_prefix(&prefix)?.parse::<u64>().ok()?, &r.outcome)))
        .collect();
    let last = attempts.iter().max_by_key(|(n, _)| *n);
    let (attempt, outcome) = match last {
        None => (0, None),
        Some((n, o)) => (*n, Some(*o)),
    };
    let body = match outcome {
        Some(Outcome::Succeeded(body)) => body,
        Some(Outcome::Running(_)) => return Sync::Waiting,
        Some(Outcome::Failed(why)) => {
            let next = attempt as usize + 1;
            if next >= pods.len() {
                return Sync::Failed(why.clone());
            }
            plan.operate(
                sync_id(&name, next as u64),
                pods[next].node(),
                OperationKind::MedusaGetBackups,
            );
            return Sync::Waiting;
        }
        None => {
            plan.operate(
                sync_id(&name, 0),
                pods[0].node(),
                OperationKind::MedusaGetBackups,
            );
            return Sync::Waiting;
        }
    };
    let listed: Vec<Summary> = match summaries(body) {
        Ok(l) => l,
        Err(e) => return Sync::Failed(e),
    };
    let remote: Vec<&Summary> = listed
        .iter()
        .filter(|s| s.status == "SUCCESS" && s.of_datacenter(cass_dc))
        .collect();
    let dc_object = &task.spec.cassandra_datacenter;
    let local: Vec<MedusaBackup> = snapshot
        .related_by_kind::<MedusaBackup>("MedusaBackup")
        .into_iter()
        .filter(|(c, b)| {
            *c == snapshot.parent.cluster
                && b.metadata.namespace.as_deref() == Some(namespace.as_str())
                && b.spec.cassandra_datacenter == *dc_object
        })
        .map(|(_, b)| b)
        .collect();
    let local_names: BTreeSet<&str> = local
        .iter()
        .filter_map(|b| b.metadata.name.as_deref())
        .collect();
    let remote_names: BTreeSet<&str> = remote.iter().map(|s| s.backup_name.as_str()).collect();
    for summary in &remote {
        if !local_names.contains(summary.backup_name.as_str()) {
            let record = backup_record(summary, &namespace, dc_object, None, None, None);
            if let Err(e) = plan.apply(&snapshot.parent.cluster, &record) {
                return Sync::Failed(e.message);
            }
        }
    }
    // Records made by this task stay listed (so they are kept as they are); records of
    // backups the storage no longer holds go.
    for b in snapshot.children_by_kind::<MedusaBackup>("MedusaBackup") {
        let (cluster, b) = b;
        if remote_names.contains(b.metadata.name.as_deref().unwrap_or_default()) {
            let kept = MedusaBackup {
                metadata: ObjectMeta {
                    name: b.metadata.name.clone(),
                    namespace: b.metadata.namespace.clone(),
                    labels: b.metadata.labels.clone(),
                    ..Default::default()
                },
                spec: b.spec.clone(),
                status: None,
            };
            if let Err(e) = plan.apply(&cluster, &kept) {
                return Sync::Failed(e.message);
            }
        }
    }
    for b in &local {
        let backup = b.metadata.name.clone().unwrap_or_default();
        if !remote_names.contains(backup.as_str()) {
            plan.delete.push(ObjectKey {
                cluster: snapshot.parent.cluster.clone(),
                api_version: crate::MEDUSA_API_VERSION.to_string(),
                kind: "MedusaBackup".to_string(),
                namespace: namespace.clone(),
                name: backup,
            });
        }
    }
    let pod = pods
        .get(attempt as usize)
        .map(|p| p.name.clone())
        .unwrap_or_default();
    Sync::Done { pod }
}

fn operation_name(op: MedusaTaskOperation) -> &'static str {
    match op {
        MedusaTaskOperation::Sync => "sync",
        MedusaTaskOperation::Purge => "purge",
        MedusaTaskOperation::PrepareRestore => "prepare_restore",
    }
}

/// A task that cannot run ends at once with the reason, nothing started.
fn fail(
    mut plan: Plan,
    mut status: MedusaTaskStatus,
    now: u64,
    reason: &'static str,
    message: String,
) -> Result<Plan, PolicyError> {
    let prev = status.conditions.take();
    status.conditions = Some(conditions(
        prev.as_deref(),
        now,
        vec![
            Cond::new(COMPLETE, false, reason, message.clone()),
            Cond::new(FAILED, false, reason, message),
        ],
    ));
    plan.requeue_after(WAIT_MS);
    plan.set_status(&status)?;
    Ok(plan)
}
