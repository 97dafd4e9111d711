//! The built-in `repair-run` policy (control plane): a RepairRun
//! (`reaper.k8ssandra.io/v1alpha1`) becomes exactly one repair run in the Reaper of its
//! K8ssandraCluster, followed to its end, its progress in the status.
//!
//! Module map:
//! - [`decide`]: the reconcile: wait for a Running Reaper of the cluster with a ready pod,
//!   adopt a run of ours Reaper already has (its cause carries the object's UID) or start
//!   one (`reaper-repair`), follow it (`reaper-list-runs`), finish with `Complete` or
//!   `Failed`;
//! - the rules on the spec are the RepairSchedule's repair rules
//!   ([`k8ssandra_repair::check`]) plus `timeoutMinutes`, and the spec is immutable once a
//!   run is started ([`validate_update`]).
//!
//! Rules kept:
//! - One run per object, also across operator restarts: before every start, Reaper's runs
//!   are listed and a run whose cause carries the object's UID is adopted instead.
//! - Runs of other owners or causes are never touched (only read).
//! - Deleting a RepairRun leaves a run in progress running in Reaper: the policy contract
//!   (WIT 0.4.0) has no operation to pause or abort a run.

pub mod decide;

use k8ssandra_policy_sdk::{
    KindRef, Plan, PluginInfo, Policy, PolicyError, Snapshot, Violation, export_policy, violation,
};
use serde_json::Value;

pub const NAME: &str = "repair-run";
pub const REAPER_API_VERSION: &str = "reaper.k8ssandra.io/v1alpha1";

/// Every broken rule of a RepairRun: the repair's, then `timeoutMinutes`.
pub fn check(obj: &Value) -> Vec<(String, String)> {
    let spec = match k8ssandra_repair::check::spec_of(obj) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let mut out = k8ssandra_repair::check::check_repair(spec);
    k8ssandra_repair::check::uint(spec, "timeoutMinutes", 1, u64::MAX, &mut out);
    out
}

/// An update of a started RepairRun changing its spec: one violation per changed field.
pub fn validate_update(new: &Value, old: &Value) -> Vec<(String, String)> {
    let Some(run) = old.pointer("/status/runId").and_then(Value::as_str) else {
        return vec![];
    };
    let empty = serde_json::Map::new();
    let spec = |v: &Value| {
        v.get("spec")
            .and_then(Value::as_object)
            .unwrap_or(&empty)
            .clone()
    };
    let (a, b) = (spec(old), spec(new));
    let mut fields: Vec<&String> = a.keys().chain(b.keys()).collect();
    fields.sort();
    fields.dedup();
    fields
        .into_iter()
        .filter(|f| a.get(*f) != b.get(*f))
        .map(|f| {
            (
                format!("spec.{f}"),
                format!(
                    "cannot change once Reaper's run {run} is started; create another RepairRun for another repair"
                ),
            )
        })
        .collect()
}

pub struct RepairRunPolicy;

impl Policy for RepairRunPolicy {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            parent: KindRef::new(REAPER_API_VERSION, "RepairRun"),
            owns: vec![],
            reads: k8ssandra_repair::target::reads(),
            observe_pods: None,
            decorates: None,
        }
    }

    fn reconcile(snapshot: Snapshot) -> Result<Plan, PolicyError> {
        decide::reconcile(&snapshot)
    }

    fn validate(object: String, old: Option<String>) -> Vec<Violation> {
        let new = match serde_json::from_str::<Value>(&object) {
            Ok(v) => v,
            Err(e) => return vec![violation("spec", format!("does not parse: {e}"))],
        };
        let mut out = check(&new);
        if let Some(old) = old.and_then(|o| serde_json::from_str::<Value>(&o).ok()) {
            out.extend(validate_update(&new, &old));
        }
        out.into_iter().map(|(f, m)| violation(&f, m)).collect()
    }
}

export_policy!(RepairRunPolicy);

#[cfg(test)]
mod tests;
