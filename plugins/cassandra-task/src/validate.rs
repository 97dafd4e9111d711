//! Rules a CassandraTask must follow beyond its schema. `check_spec` needs the task alone
//! (admission); `check_against_datacenter` needs the datacenter (reconcile).

use k8ssandra_api::cassandra::CassandraDatacenter;
use k8ssandra_api::control::{CassandraCommand, CassandraTask};
use k8ssandra_api::names::clean_label_value;
use k8ssandra_policy_sdk::{Violation, violation};

/// Commands without a management-API operation in the policy contract.
///
/// They are refused at admission rather than accepted and failed later: a task that cannot
/// run would otherwise wait for its turn (scheduledTime, other tasks) only to fail, and the
/// user learns about it hours after writing it.
pub fn unsupported(command: CassandraCommand) -> bool {
    matches!(
        command,
        CassandraCommand::Move | CassandraCommand::Refresh | CassandraCommand::Tsreload
    )
}

pub fn unsupported_message(command: CassandraCommand) -> String {
    format!(
        "command {} is not supported by this operator (no management-API operation for it)",
        command.as_str()
    )
}

pub fn check_spec(task: &CassandraTask) -> Vec<Violation> {
    let mut out = Vec::new();
    let spec = &task.spec;
    if spec
        .datacenter
        .as_ref()
        .and_then(|d| d.name.as_deref())
        .is_none_or(str::is_empty)
    {
        out.push(violation(
            "spec.datacenter.name",
            "required: the CassandraDatacenter the task runs on",
        ));
    }
    let t = &spec.template;
    let jobs = t.jobs.as_deref().unwrap_or_default();
    if jobs.is_empty() {
        out.push(violation("spec.jobs", "at least one job is required"));
    }
    for (i, job) in jobs.iter().enumerate() {
        let field = |f: &str| format!("spec.jobs[{i}].{f}");
        if job.name.is_empty() {
            out.push(violation(&field("name"), "must not be empty"));
        } else if jobs[..i].iter().any(|j| j.name == job.name) {
            out.push(violation(
                &field("name"),
                format!("{:?} is used by an earlier job; names are unique", job.name),
            ));
        }
        if unsupported(job.command) {
            out.push(violation(
                &field("command"),
                unsupported_message(job.command),
            ));
        }
        let args = job.args.clone().unwrap_or_default();
        match job.command {
            CassandraCommand::Replacenode if args.pod_name.as_deref().is_none_or(str::is_empty) => {
                out.push(violation(
                    &field("args.pod_name"),
                    "replacenode needs the pod whose node is replaced",
                ));
            }
            CassandraCommand::Rebuild
                if args.source_datacenter.as_deref().is_none_or(str::is_empty) =>
            {
                out.push(violation(
                    &field("args.source_datacenter"),
                    "rebuild needs the datacenter to stream from",
                ));
            }
            _ => {}
        }
        if args.jobs_count.is_some_and(|n| n < 0) {
            out.push(violation(&field("args.jobs"), "must not be negative"));
        }
        if args.tables.as_ref().is_some_and(|t| !t.is_empty())
            && args.keyspace_name.as_deref().is_none_or(str::is_empty)
        {
            out.push(violation(
                &field("args.tables"),
                "tables need args.keyspace_name",
            ));
        }
    }
    if let Some(p) = t.restart_policy.as_deref()
        && !matches!(p, "OnFailure" | "Never")
    {
        out.push(violation(
            "spec.restartPolicy",
            format!("{p:?} is not one of OnFailure, Never"),
        ));
    }
    if let Some(p) = t.concurrency_policy.as_deref()
        && !matches!(p, "Allow" | "Forbid" | "Replace")
    {
        out.push(violation(
            "spec.concurrencyPolicy",
            format!("{p:?} is not one of Allow, Forbid, Replace"),
        ));
    }
    if t.max_concurrent_pods.is_some_and(|n| n < 0) {
        out.push(violation("spec.maxConcurrentPods", "must not be negative"));
    }
    if t.retries.is_some_and(|n| n < 0) {
        out.push(violation("spec.retries", "must not be negative"));
    }
    if t.ttl_seconds_after_finished.is_some_and(|n| n < 0) {
        out.push(violation(
            "spec.ttlSecondsAfterFinished",
            "must not be negative",
        ));
    }
    out
}

/// Rules that need the datacenter: the rack and pod a job names must exist.
pub fn check_against_datacenter(
    task: &CassandraTask,
    dc: &CassandraDatacenter,
    pod_names: &[String],
) -> Vec<Violation> {
    let mut out = Vec::new();
    let racks: Vec<String> = dc
        .racks()
        .iter()
        .map(|r| clean_label_value(&r.name))
        .collect();
    for (i, job) in task.spec.template.jobs.iter().flatten().enumerate() {
        let args = job.args.clone().unwrap_or_default();
        if let Some(rack) = args.rack.as_deref().filter(|r| !r.is_empty())
            && !racks.contains(&clean_label_value(rack))
        {
            out.push(violation(
                &format!("spec.jobs[{i}].args.rack"),
                format!(
                    "rack {rack:?} is not a rack of datacenter {} (racks: {})",
                    dc.metadata.name.as_deref().unwrap_or_default(),
                    racks.join(", ")
                ),
            ));
        }
        if job.command == CassandraCommand::Replacenode
            && let Some(pod) = args.pod_name.as_deref().filter(|p| !p.is_empty())
            && !pod_names.iter().any(|p| p == pod)
        {
            out.push(violation(
                &format!("spec.jobs[{i}].args.pod_name"),
                format!(
                    "{pod:?} is not a pod of datacenter {}",
                    dc.metadata.name.as_deref().unwrap_or_default()
                ),
            ));
        }
    }
    out
}
