//! The built-in `repair-schedule` policy (control plane): a RepairSchedule
//! (`reaper.k8ssandra.io/v1alpha1`) becomes a repair schedule in the Reaper of its
//! K8ssandraCluster, owned by `k8ssandra-operator`.
//!
//! Module map:
//! - [`check`]: the rules on the spec (admission and reconcile), each naming its field;
//! - [`decide`]: the reconcile: find a Running Reaper of the cluster and a ready pod of it,
//!   list Reaper's schedules, create / update in place / re-create / pause / activate ours,
//!   list the runs for the status; on deletion, delete ours (finalizer).
//!
//! Rules kept:
//! - Schedules of other owners are never changed: only one whose owner is
//!   [`k8ssandra_api::repair_schedule::OWNER`] is ever updated, paused or deleted (and the
//!   host refuses the call for another owner's).
//! - One change to Reaper per listing: every change is decided from a fresh list, and its
//!   id carries the number of changes made before it, so a repeated plan never creates a
//!   second schedule.
//! - A Reaper that cannot be reached, or a keyspace it refuses, is a `Ready=False`
//!   condition; the schedule Reaper has stays as it is.

pub mod check;
pub mod decide;

use k8ssandra_policy_sdk::{
    KindRef, Plan, PluginInfo, Policy, PolicyError, Snapshot, Violation, export_policy, violation,
};

pub const NAME: &str = "repair-schedule";
pub const REAPER_API_VERSION: &str = "reaper.k8ssandra.io/v1alpha1";

pub struct RepairSchedulePolicy;

impl Policy for RepairSchedulePolicy {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            parent: KindRef::new(REAPER_API_VERSION, "RepairSchedule"),
            owns: vec![],
            reads: k8ssandra_repair::target::reads(),
            observe_pods: None,
            decorates: None,
        }
    }

    fn reconcile(snapshot: Snapshot) -> Result<Plan, PolicyError> {
        decide::reconcile(&snapshot)
    }

    fn validate(object: String, _old: Option<String>) -> Vec<Violation> {
        match serde_json::from_str::<serde_json::Value>(&object) {
            Ok(v) => check::check(&v)
                .into_iter()
                .map(|(f, m)| violation(&f, m))
                .collect(),
            Err(e) => vec![violation("spec", format!("does not parse: {e}"))],
        }
    }
}

export_policy!(RepairSchedulePolicy);

#[cfg(test)]
mod tests;
