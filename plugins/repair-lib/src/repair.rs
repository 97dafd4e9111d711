//! The repair Reaper is asked for, and Reaper's answers (the host's JSON, see the WIT's
//! `operation-kind`) read.

use std::collections::BTreeSet;

use k8ssandra_api::repair_schedule::{
    DEFAULT_INTENSITY, OWNER, RepairParallelism as Par, RepairRunStatus, RepairSpec,
};
use k8ssandra_policy_sdk::bindings::k8ssandra::policy::types::{
    ReaperAccess, ReaperRepair, RepairParallelism,
};
use serde_json::Value;

use crate::check::intensity_of;

/// The parallelism of the repair: the spec's, else `PARALLEL` for incremental repairs
/// (Reaper refuses anything else for them), else `DATACENTER_AWARE`.
pub fn parallelism(spec: &RepairSpec) -> Par {
    match spec.repair_parallelism {
        Some(p) => p,
        None if spec.incremental == Some(true) => Par::Parallel,
        None => Par::DatacenterAware,
    }
}

/// Reaper's name of a parallelism.
pub fn par_name(p: Par) -> &'static str {
    match p {
        Par::Sequential => "SEQUENTIAL",
        Par::Parallel => "PARALLEL",
        Par::DatacenterAware => "DATACENTER_AWARE",
    }
}

fn list(v: &Option<Vec<String>>) -> Vec<String> {
    let set: BTreeSet<String> = v.iter().flatten().cloned().collect();
    set.into_iter().collect()
}

/// The repair of `spec` in Reaper's cluster `cluster_name`, owned by [`OWNER`], recorded
/// with `cause`.
pub fn repair(
    spec: &RepairSpec,
    cluster_name: &str,
    access: ReaperAccess,
    cause: String,
    timeout_minutes: Option<u32>,
) -> ReaperRepair {
    ReaperRepair {
        access,
        cluster_name: cluster_name.to_string(),
        keyspace: spec.keyspace.clone(),
        tables: list(&spec.tables),
        blacklisted_tables: list(&spec.blacklisted_tables),
        datacenters: list(&spec.datacenters),
        nodes: list(&spec.nodes),
        owner: OWNER.to_string(),
        parallelism: match parallelism(spec) {
            Par::Sequential => RepairParallelism::Sequential,
            Par::Parallel => RepairParallelism::Parallel,
            Par::DatacenterAware => RepairParallelism::DatacenterAware,
        },
        intensity: spec
            .intensity
            .as_ref()
            .and_then(intensity_of)
            .unwrap_or(DEFAULT_INTENSITY),
        incremental: spec.incremental.unwrap_or(false),
        segment_count_per_node: spec.segment_count_per_node,
        repair_thread_count: spec.repair_thread_count,
        timeout_minutes,
        cause,
    }
}

/// The id of a schedule or run (a string, or a number from older Reapers).
pub fn id_of(v: &Value) -> Option<String> {
    match v.get("id")? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A JSON list of Reaper's answer (empty when it is not one).
pub fn parse_list(body: &str) -> Vec<Value> {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

/// A repair run of Reaper's answer, for a status.
pub fn run_status(r: &Value) -> RepairRunStatus {
    let s = |f: &str| r.get(f).and_then(Value::as_str).map(str::to_string);
    let u = |f: &str| {
        r.get(f)
            .and_then(Value::as_u64)
            .map(|x| u32::try_from(x).unwrap_or(u32::MAX))
    };
    RepairRunStatus {
        id: id_of(r),
        state: s("state"),
        start_time: s("startTime"),
        end_time: s("endTime"),
        segments_repaired: u("segmentsRepaired"),
        total_segments: u("totalSegments"),
    }
}

/// Whether a run's state is final.
pub fn is_over(state: &str) -> bool {
    matches!(state, "DONE" | "ERROR" | "ABORTED" | "DELETED")
}

/// Whether Reaper refused a repair because its keyspace does not exist.
pub fn keyspace_missing(message: &str) -> bool {
    let lower = message.to_lowercase();
    lower.contains("keyspace") && (lower.contains("does not exist") || lower.contains("not found"))
}
