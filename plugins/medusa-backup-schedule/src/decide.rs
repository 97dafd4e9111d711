//! One reconcile of a MedusaBackupSchedule: keep the runs within the history, create the
//! due one, write `lastExecution`/`nextSchedule` and conditions, and ask to be woken at the
//! next run.

use k8ssandra_api::medusa::{
    MedusaBackupSchedule, MedusaBackupScheduleStatus, ScheduledOperationType,
};
use k8ssandra_policy_sdk::conditions::{Cond, conditions, is, ms, time};
use k8ssandra_policy_sdk::serde_json::{self, Value, json};
use k8ssandra_policy_sdk::{EventType, Plan, PolicyError, Snapshot, error, rfc3339};
use k8ssandra_schedule::{
    Concurrency, Run, RunState, Schedule, ScheduleError, Settings, decide, run_name,
    scheduled_ms_of,
};

use crate::MEDUSA_API_VERSION;

const JOB_KIND: &str = "MedusaBackupJob";
const TASK_KIND: &str = "MedusaTask";
pub const VALID: &str = "Valid";
pub const WAITING: &str = "Waiting";

/// The schedule's settings, or the first field that makes it unusable.
fn settings(s: &MedusaBackupSchedule) -> Result<(Schedule, Settings), (&'static str, String)> {
    let spec = &s.spec;
    let schedule =
        Schedule::parse(&spec.cron_schedule, spec.time_zone.as_deref()).map_err(|e| match e {
            ScheduleError::TimeZone(_) if spec.time_zone.is_some() => {
                ("spec.timeZone", e.to_string())
            }
            e => ("spec.cronSchedule", e.to_string()),
        })?;
    let concurrency = Concurrency::parse(
        spec.concurrency_policy.as_deref(),
        Concurrency::Forbid,
        &[Concurrency::Allow, Concurrency::Forbid],
    )
    .map_err(|e| ("spec.concurrencyPolicy", e.to_string()))?;
    let limit = |v: Option<i32>, default: usize, field: &'static str| match v {
        None => Ok(default),
        Some(n) if n >= 0 => Ok(n as usize),
        Some(n) => Err((field, format!("{n} is negative; give 0 or more"))),
    };
    let deadline = match spec.starting_deadline_seconds {
        None => None,
        Some(n) if n >= 0 => Some(n as u64 * 1000),
        Some(n) => {
            return Err((
                "spec.startingDeadlineSeconds",
                format!("{n} is negative; give 0 or more"),
            ));
        }
    };
    Ok((
        schedule,
        Settings {
            concurrency,
            starting_deadline_ms: deadline,
            suspended: spec.disabled.unwrap_or(false),
            successful_history: limit(
                spec.successful_jobs_history_limit,
                3,
                "spec.successfulJobsHistoryLimit",
            )?,
            failed_history: limit(
                spec.failed_jobs_history_limit,
                1,
                "spec.failedJobsHistoryLimit",
            )?,
        },
    ))
}

/// What makes a schedule unusable, as (field, rule).
pub fn problems(s: &MedusaBackupSchedule) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Err(p) = settings(s) {
        out.push(p);
    }
    if s.spec.backup_spec.cassandra_datacenter.is_empty() {
        out.push((
            "spec.backupSpec.cassandraDatacenter",
            "must name the CassandraDatacenter to back up".to_string(),
        ));
    }
    out
}

/// Where a run stands: finished once its `finishTime` is set, failed when a pod failed.
pub fn state(v: &Value) -> RunState {
    let st = v.get("status");
    let finished = st
        .and_then(|s| s.get("finishTime"))
        .is_some_and(|t| !t.is_null());
    let failed_pods = st
        .and_then(|s| s.get("failed"))
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let failed_cond = st
        .and_then(|s| s.get("conditions"))
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .is_some_and(|c: Vec<_>| is(Some(&c), "Failed") == Some(true));
    match (finished, failed_pods || failed_cond) {
        (true, true) => RunState::Failed,
        (true, false) => RunState::Succeeded,
        (false, _) => RunState::Active,
    }
}

pub fn reconcile(snapshot: &Snapshot) -> Result<Plan, PolicyError> {
    let parent: MedusaBackupSchedule = snapshot.parent()?;
    let name = parent.metadata.name.clone().unwrap_or_default();
    let namespace = parent.metadata.namespace.clone().unwrap_or_default();
    let created_ms = parent
        .metadata
        .creation_timestamp
        .as_ref()
        .map(ms)
        .unwrap_or(snapshot.now_ms);
    let prev = parent.status.clone().unwrap_or_default();
    let now = snapshot.now_ms;
    let mut plan = Plan::default();

    let children: Vec<(String, Value)> = snapshot
        .children
        .iter()
        .filter(|o| matches!(o.kind().as_deref(), Some(JOB_KIND) | Some(TASK_KIND)))
        .filter_map(|o| Some((o.cluster.clone(), o.value().ok()?)))
        .collect();
    let child_name = |v: &Value| {
        v.pointer("/metadata/name")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let runs: Vec<Run> = children
        .iter()
        .filter_map(|(_, v)| {
            let n = child_name(v)?;
            Some(Run {
                scheduled_ms: scheduled_ms_of(&name, &n)?,
                name: n,
                state: state(v),
            })
        })
        .collect();

    let (schedule, settings) = match settings(&parent) {
        Ok(s) => s,
        Err((field, why)) => {
            // Nothing is created and nothing deleted while the spec is unusable.
            for (cluster, v) in &children {
                plan.apply(cluster, &frozen(v))?;
            }
            let message = format!("{field}: {why}");
            let status = MedusaBackupScheduleStatus {
                conditions: Some(conditions(
                    prev.conditions.as_deref(),
                    now,
                    vec![Cond::new(VALID, false, "InvalidSpec", message.clone())],
                )),
                ..prev.clone()
            };
            if is(prev.conditions.as_deref(), VALID) != Some(false) {
                plan.event(EventType::Warning, "InvalidSpec", message);
            }
            plan.set_status(&status)?;
            return Ok(plan);
        }
    };
    let last = prev.last_execution.as_ref().map(ms);
    let d = decide(&schedule, &settings, last, created_ms, now, &runs);

    for (cluster, v) in &children {
        if child_name(v).is_some_and(|n| d.prune.contains(&n)) {
            continue;
        }
        plan.apply(cluster, &frozen(v))?;
    }
    if let Some(at) = d.start {
        let run = run_name(&name, at);
        if !runs.iter().any(|r| r.name == run) {
            let dc = &parent.spec.backup_spec.cassandra_datacenter;
            let (kind, spec, what) = match parent.spec.operation_type {
                Some(ScheduledOperationType::Purge) => (
                    TASK_KIND,
                    json!({"operation": "purge", "cassandraDatacenter": dc}),
                    "purge MedusaTask",
                ),
                _ => (
                    JOB_KIND,
                    serde_json::to_value(&parent.spec.backup_spec)
                        .map_err(|e| error(format!("spec.backupSpec: {e}")))?,
                    "MedusaBackupJob",
                ),
            };
            plan.apply(
                "",
                &json!({
                    "apiVersion": MEDUSA_API_VERSION,
                    "kind": kind,
                    "metadata": {"name": run, "namespace": namespace},
                    "spec": spec,
                }),
            )?;
            plan.event(
                EventType::Normal,
                "RunCreated",
                format!(
                    "created {what} {run} of datacenter {dc} for the run scheduled at {}",
                    rfc3339(at)
                ),
            );
        }
    }
    let waiting = if d.blocked_by.is_empty() {
        Cond::new(WAITING, false, "NotWaiting", "")
    } else {
        Cond::new(
            WAITING,
            true,
            "ConcurrencyForbid",
            format!(
                "a due run waits for {} to finish (concurrencyPolicy Forbid)",
                d.blocked_by.join(", ")
            ),
        )
    };
    let valid_msg = if settings.suspended {
        "disabled: due runs are skipped"
    } else {
        "the schedule is in effect"
    };
    let status = MedusaBackupScheduleStatus {
        last_execution: d.last_scheduled_ms.map(time),
        next_schedule: d.next_ms.map(time),
        conditions: Some(conditions(
            prev.conditions.as_deref(),
            now,
            vec![Cond::new(VALID, true, "Valid", valid_msg), waiting],
        )),
    };
    plan.set_status(&status)?;
    if let Some(r) = d.requeue_after_ms {
        plan.requeue_after(r);
    }
    Ok(plan)
}

/// A created run re-applied as it is, so the host keeps it.
pub fn frozen(live: &Value) -> Value {
    json!({
        "apiVersion": MEDUSA_API_VERSION,
        "kind": live.get("kind").cloned().unwrap_or(Value::Null),
        "metadata": {
            "name": live.pointer("/metadata/name").cloned().unwrap_or(Value::Null),
            "namespace": live.pointer("/metadata/namespace").cloned().unwrap_or(Value::Null),
        },
        "spec": live.get("spec").cloned().unwrap_or_else(|| json!({})),
    })
}
