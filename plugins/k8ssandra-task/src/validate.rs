//! Rules of a K8ssandraTask that its CRD schema cannot express, each naming the offending
//! field. The reconcile checks the same rules (the host has no admission webhook), and
//! those that need the K8ssandraCluster (a listed datacenter that is not in it) there.

use std::collections::BTreeMap;

use k8ssandra_api::control::{CassandraCommand, K8ssandraTask};
use k8ssandra_policy_sdk::{Violation, violation};
use serde_json::Value;

/// Values of `spec.dcConcurrencyPolicy`.
pub const FORBID: &str = "Forbid";
pub const ALLOW: &str = "Allow";

/// The task's name is a label value on every CassandraTask it creates (and the host's
/// parent label), and label values stop at 63 characters.
pub const MAX_NAME_LEN: usize = 63;

/// Parses a K8ssandraTask, tolerating a missing `spec` (the kube-derived type requires
/// one; an absent spec is a violation to report, not a parse error).
pub fn parse(object: &str) -> Result<K8ssandraTask, String> {
    let mut v: Value = serde_json::from_str(object).map_err(|e| e.to_string())?;
    if let Some(o) = v.as_object_mut() {
        o.entry("spec")
            .or_insert_with(|| Value::Object(Default::default()));
        if o.get("spec").is_some_and(Value::is_null) {
            o.insert("spec".into(), Value::Object(Default::default()));
        }
    }
    serde_json::from_value(v).map_err(|e| e.to_string())
}

pub fn validate(object: &str, old: Option<&str>) -> Vec<Violation> {
    let task = match parse(object) {
        Ok(t) => t,
        Err(e) => return vec![violation("spec", format!("does not parse: {e}"))],
    };
    let mut out = check_spec(&task);
    if let Some(old) = old.and_then(|o| parse(o).ok()) {
        out.extend(check_update(&task, &old));
    }
    out
}

/// The dcConcurrencyPolicy, `Forbid` when unset.
pub fn dc_policy(task: &K8ssandraTask) -> &str {
    task.spec
        .dc_concurrency_policy
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or(FORBID)
}

pub fn check_spec(task: &K8ssandraTask) -> Vec<Violation> {
    let mut out = Vec::new();
    let own_ns = task.metadata.namespace.as_deref().unwrap_or_default();
    if let Some(name) = task.metadata.name.as_deref()
        && name.len() > MAX_NAME_LEN
    {
        out.push(violation(
            "metadata.name",
            format!(
                "must be at most {MAX_NAME_LEN} characters: it labels the CassandraTasks the task creates"
            ),
        ));
    }
    match &task.spec.cluster {
        None => out.push(violation(
            "spec.cluster",
            "is required: the K8ssandraCluster the task runs on",
        )),
        Some(c) => {
            if c.name.as_deref().is_none_or(str::is_empty) {
                out.push(violation(
                    "spec.cluster.name",
                    "is required: the name of the K8ssandraCluster the task runs on",
                ));
            }
            if let Some(ns) = c.namespace.as_deref().filter(|n| !n.is_empty())
                && !own_ns.is_empty()
                && ns != own_ns
            {
                out.push(violation(
                    "spec.cluster.namespace",
                    format!(
                        "must be the task's own namespace {own_ns:?} (or unset): the operator reads K8ssandraClusters in the namespace of the task only"
                    ),
                ));
            }
        }
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, dc) in task.spec.datacenters.iter().flatten().enumerate() {
        let f = format!("spec.datacenters[{i}]");
        if dc.is_empty() {
            out.push(violation(&f, "must not be empty"));
            continue;
        }
        if let Some(j) = seen.insert(dc.as_str(), i) {
            out.push(violation(
                &f,
                format!("{dc:?} is already listed at spec.datacenters[{j}]"),
            ));
        }
    }
    let policy = dc_policy(task);
    if policy != FORBID && policy != ALLOW {
        out.push(violation(
            "spec.dcConcurrencyPolicy",
            format!("{policy:?} is not supported: use Forbid (one datacenter after the other) or Allow (all at once)"),
        ));
    }
    let Some(template) = &task.spec.template else {
        out.push(violation(
            "spec.template",
            "is required: the CassandraTask to run in each datacenter",
        ));
        return out;
    };
    let jobs = template.jobs.as_deref().unwrap_or_default();
    if jobs.is_empty() {
        out.push(violation(
            "spec.template.jobs",
            "must list at least one job",
        ));
    }
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, job) in jobs.iter().enumerate() {
        let f = |s: &str| format!("spec.template.jobs[{i}].{s}");
        if job.name.is_empty() {
            out.push(violation(&f("name"), "must not be empty"));
        } else if let Some(j) = names.insert(job.name.as_str(), i) {
            out.push(violation(
                &f("name"),
                format!(
                    "{:?} is already the name of spec.template.jobs[{j}]",
                    job.name
                ),
            ));
        }
        // Pod names belong to one datacenter: the same job would fail in every other one.
        if matches!(
            job.command,
            CassandraCommand::Replacenode | CassandraCommand::Move
        ) {
            out.push(violation(
                &f("command"),
                format!(
                    "{} acts on named pods of one datacenter: run it as a CassandraTask in that datacenter",
                    job.command.as_str()
                ),
            ));
        }
    }
    let non_negative = |v: Option<i64>, field: &str, out: &mut Vec<Violation>| {
        if v.is_some_and(|v| v < 0) {
            out.push(violation(field, "must not be negative"));
        }
    };
    non_negative(
        template.ttl_seconds_after_finished.map(i64::from),
        "spec.template.ttlSecondsAfterFinished",
        &mut out,
    );
    non_negative(
        template.max_concurrent_pods,
        "spec.template.maxConcurrentPods",
        &mut out,
    );
    non_negative(template.retries, "spec.template.retries", &mut out);
    out
}

/// A task is a one-shot run, as a Job is: what it runs, where and in which order cannot
/// change once it exists (the CassandraTasks already created would not follow).
pub fn check_update(new: &K8ssandraTask, old: &K8ssandraTask) -> Vec<Violation> {
    let mut out = Vec::new();
    let cluster = |t: &K8ssandraTask| {
        t.spec.cluster.as_ref().map(|c| {
            (
                c.name.clone(),
                c.namespace.clone().filter(|n| !n.is_empty()),
            )
        })
    };
    if cluster(new) != cluster(old) {
        out.push(violation("spec.cluster", "is immutable"));
    }
    if new.spec.datacenters != old.spec.datacenters {
        out.push(violation("spec.datacenters", "is immutable"));
    }
    if dc_policy(new) != dc_policy(old) {
        out.push(violation("spec.dcConcurrencyPolicy", "is immutable"));
    }
    // The TTL only decides when the finished task goes away; changing it is harmless.
    let run = |t: &K8ssandraTask| {
        t.spec.template.clone().map(|mut tpl| {
            tpl.ttl_seconds_after_finished = None;
            tpl
        })
    };
    if run(new) != run(old) {
        out.push(violation(
            "spec.template",
            "is immutable except ttlSecondsAfterFinished",
        ));
    }
    out
}
