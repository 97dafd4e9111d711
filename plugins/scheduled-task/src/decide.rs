//! One reconcile of a ScheduledTask: keep the CassandraTasks within the history, create the
//! due one, write `lastExecution`/`nextSchedule`, and ask to be woken at the next run.

use k8ssandra_api::control::{CassandraTaskStatus, ScheduledTask, ScheduledTaskStatus, condition};
use k8ssandra_policy_sdk::conditions::{is, ms, time};
use k8ssandra_policy_sdk::serde_json::{self, Value, json};
use k8ssandra_policy_sdk::{EventType, Plan, PolicyError, Snapshot, error};
use k8ssandra_schedule::{Concurrency, Run, RunState, Schedule, Settings, decide};

use crate::API_VERSION;

const TASK_KIND: &str = "CassandraTask";

/// What makes a ScheduledTask unusable, as (field, rule).
pub fn problems(t: &ScheduledTask) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    match t.spec.schedule.as_deref().map(str::trim) {
        None | Some("") => out.push((
            "spec.schedule",
            "must be a cron expression such as `0 2 * * *`".to_string(),
        )),
        Some(s) => {
            if let Err(e) = Schedule::parse(s, None) {
                out.push(("spec.schedule", e.to_string()));
            }
        }
    }
    match &t.spec.task_details {
        None => out.push((
            "spec.taskDetails",
            "must describe the CassandraTask to create".to_string(),
        )),
        Some(d) => {
            if d.spec
                .datacenter
                .as_ref()
                .and_then(|r| r.name.as_deref())
                .is_none()
            {
                out.push((
                    "spec.taskDetails.datacenter.name",
                    "must name the CassandraDatacenter the task runs on".to_string(),
                ));
            }
            if d.spec.template.jobs.as_ref().is_none_or(Vec::is_empty) {
                out.push((
                    "spec.taskDetails.jobs",
                    "must list at least one job".to_string(),
                ));
            }
        }
    }
    out
}

/// Where a created CassandraTask stands, for the history limits.
pub fn state(status: Option<&CassandraTaskStatus>) -> RunState {
    let Some(st) = status else {
        return RunState::Active;
    };
    let cs = st.conditions.as_deref();
    if is(cs, condition::FAILED) == Some(true) {
        // cass-operator sets Failed at the end, with Complete; ours may set it while the
        // task still runs, and a running task is never deleted.
        if is(cs, condition::RUNNING) == Some(true) && is(cs, condition::COMPLETE) != Some(true) {
            return RunState::Active;
        }
        return RunState::Failed;
    }
    if is(cs, condition::COMPLETE) == Some(true) || st.completion_time.is_some() {
        return RunState::Succeeded;
    }
    RunState::Active
}

/// The scheduled time in a run's name: its last `-`-separated part, in Unix seconds.
fn scheduled_ms(name: &str) -> Option<u64> {
    let (_, secs) = name.rsplit_once('-')?;
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    secs.parse::<u64>().ok()?.checked_mul(1000)
}

pub fn reconcile(snapshot: &Snapshot) -> Result<Plan, PolicyError> {
    let parent: ScheduledTask = snapshot.parent()?;
    let name = parent.metadata.name.clone().unwrap_or_default();
    let namespace = parent.metadata.namespace.clone().unwrap_or_default();
    let created_ms = parent
        .metadata
        .creation_timestamp
        .as_ref()
        .map(ms)
        .unwrap_or(snapshot.now_ms);
    let prev = parent.status.clone().unwrap_or_default();
    let mut plan = Plan::default();

    let children: Vec<(String, Value)> = snapshot
        .children
        .iter()
        .filter(|o| o.kind().as_deref() == Some(TASK_KIND))
        .filter_map(|o| Some((o.cluster.clone(), o.value().ok()?)))
        .collect();
    let mut runs = Vec::new();
    for (_, v) in &children {
        let Some(n) = v.pointer("/metadata/name").and_then(Value::as_str) else {
            continue;
        };
        // A task of ours not named by the schedule (renamed by hand?) is kept as it is
        // and counts for nothing.
        let Some(at) = scheduled_ms(n) else { continue };
        let status = v
            .get("status")
            .and_then(|s| serde_json::from_value::<CassandraTaskStatus>(s.clone()).ok());
        runs.push(Run {
            name: n.to_string(),
            scheduled_ms: at,
            state: state(status.as_ref()),
        });
    }

    let bad = problems(&parent);
    if !bad.is_empty() {
        // Nothing is created and nothing deleted while the spec is unusable.
        for (cluster, v) in &children {
            plan.apply(cluster, &frozen(v))?;
        }
        let msg = bad
            .iter()
            .map(|(f, why)| format!("{f}: {why}"))
            .collect::<Vec<_>>()
            .join("; ");
        plan.event(EventType::Warning, "InvalidSchedule", msg);
        return Ok(plan);
    }
    let expr = parent.spec.schedule.as_deref().unwrap_or_default();
    let schedule = Schedule::parse(expr, None).map_err(|e| error(format!("spec.schedule: {e}")))?;
    let Some(details) = parent.spec.task_details.as_ref() else {
        return Err(error("spec.taskDetails: missing"));
    };
    let settings = Settings {
        concurrency: Concurrency::Allow,
        ..Settings::default()
    };
    let last = prev.last_execution.as_ref().map(ms);
    let d = decide(
        &schedule,
        &settings,
        last,
        created_ms,
        snapshot.now_ms,
        &runs,
    );

    for (cluster, v) in &children {
        let n = v.pointer("/metadata/name").and_then(Value::as_str);
        if n.is_some_and(|n| d.prune.iter().any(|p| p == n)) {
            continue;
        }
        plan.apply(cluster, &frozen(v))?;
    }
    if let Some(at) = d.start {
        let prefix = details
            .name
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(&name);
        let task_name = k8ssandra_schedule::run_name(prefix, at);
        if !runs.iter().any(|r| r.name == task_name) {
            let spec = serde_json::to_value(&details.spec)
                .map_err(|e| error(format!("spec.taskDetails: {e}")))?;
            plan.apply(
                "",
                &json!({
                    "apiVersion": API_VERSION,
                    "kind": TASK_KIND,
                    "metadata": {"name": task_name, "namespace": namespace},
                    "spec": spec,
                }),
            )?;
            plan.event(
                EventType::Normal,
                "TaskCreated",
                format!(
                    "created CassandraTask {task_name} for the run scheduled at {}",
                    k8ssandra_policy_sdk::rfc3339(at)
                ),
            );
        }
    }
    let status = ScheduledTaskStatus {
        last_execution: d.last_scheduled_ms.map(time),
        next_schedule: d.next_ms.map(time),
    };
    plan.set_status(&status)?;
    if let Some(r) = d.requeue_after_ms {
        plan.requeue_after(r);
    }
    Ok(plan)
}

/// A created CassandraTask re-applied as it is, so the host keeps it.
pub fn frozen(live: &Value) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": TASK_KIND,
        "metadata": {
            "name": live.pointer("/metadata/name").cloned().unwrap_or(Value::Null),
            "namespace": live.pointer("/metadata/namespace").cloned().unwrap_or(Value::Null),
        },
        "spec": live.get("spec").cloned().unwrap_or_else(|| json!({})),
    })
}
