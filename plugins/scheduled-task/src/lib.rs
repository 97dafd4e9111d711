//! The built-in `scheduled-task` policy: a ScheduledTask (cass-operator's
//! `control.k8ssandra.io/v1alpha1` kind) creates the CassandraTask of `spec.taskDetails` at
//! each time of `spec.schedule`, named `<taskDetails.name or the ScheduledTask's name>-<unix
//! seconds of the run>`, beside itself. The `cassandra-task` policy then runs it.
//!
//! The schedule machinery is `k8ssandra-schedule` (shared with MedusaBackupSchedule):
//! cron with an optional `CRON_TZ=` prefix, missed runs collapse into the most recent one,
//! and the newest finished tasks are kept (3 that completed, 1 that failed, as CronJob
//! keeps) so tasks do not pile up forever. Running tasks are never deleted. Tasks overlap
//! as their own `concurrencyPolicy` allows: the CassandraTask decides whether it waits.
//!
//! Status: `lastExecution` (the scheduled time of the last task created) and
//! `nextSchedule`, as cass-operator has them. A schedule that does not parse is refused by
//! validation; one already stored gets a Warning event naming the field, and nothing is
//! created or deleted.

pub mod decide;

use k8ssandra_api::control::ScheduledTask;
use k8ssandra_policy_sdk::{
    KindRef, Plan, PluginInfo, Policy, PolicyError, Snapshot, Violation, export_policy, violation,
};

pub const NAME: &str = "scheduled-task";
pub const API_VERSION: &str = "control.k8ssandra.io/v1alpha1";

pub struct ScheduledTaskPolicy;

impl Policy for ScheduledTaskPolicy {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            parent: KindRef::new(API_VERSION, "ScheduledTask"),
            owns: vec![KindRef::new(API_VERSION, "CassandraTask")],
            reads: vec![],
            observe_pods: None,
            decorates: None,
        }
    }

    fn reconcile(snapshot: Snapshot) -> Result<Plan, PolicyError> {
        decide::reconcile(&snapshot)
    }

    fn validate(object: String, _old: Option<String>) -> Vec<Violation> {
        match serde_json::from_str::<ScheduledTask>(&object) {
            Ok(t) => decide::problems(&t)
                .into_iter()
                .map(|(field, why)| violation(field, why))
                .collect(),
            Err(e) => vec![violation("spec", format!("does not parse: {e}"))],
        }
    }
}

export_policy!(ScheduledTaskPolicy);

#[cfg(test)]
mod tests;
