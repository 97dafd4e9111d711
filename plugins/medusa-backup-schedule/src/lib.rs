//! The built-in `medusa-backup-schedule` policy: a MedusaBackupSchedule
//! (`medusa.k8ssandra.io`) creates, at each time of `spec.cronSchedule`, a MedusaBackupJob
//! `<schedule>-<unix seconds of the run>` with `spec.backupSpec` (or, with `operationType:
//! purge`, a purge MedusaTask of the same name), beside itself. The `medusa-backup-job`
//! (and `medusa-task`) policies run what it creates.
//!
//! Upstream manifests apply unchanged; beyond upstream:
//! - `timeZone` (IANA) and `startingDeadlineSeconds`, on the schedule machinery shared
//!   with ScheduledTask (`k8ssandra-schedule`: CronJob's semantics, daylight saving);
//! - `successfulJobsHistoryLimit` (default 3) and `failedJobsHistoryLimit` (default 1):
//!   older finished jobs are deleted, so they no longer pile up forever. A running job is
//!   never deleted, and deleting a job never deletes its MedusaBackup (the host keeps
//!   those);
//! - conditions: `Valid` (naming the field and the rule when the schedule cannot be used;
//!   then nothing is created and nothing deleted) and `Waiting` (Forbid: a due run waits
//!   for the active one), and an Event per run.
//!
//! `concurrencyPolicy` is `Forbid` (default, as upstream) or `Allow`; a backup cannot be
//! replaced mid-way, so `Replace` is refused. `disabled` skips due runs (they are not owed
//! when the schedule is enabled again), as upstream.

pub mod decide;

use k8ssandra_api::medusa::MedusaBackupSchedule;
use k8ssandra_policy_sdk::{
    KindRef, Plan, PluginInfo, Policy, PolicyError, Snapshot, Violation, export_policy, violation,
};

pub const NAME: &str = "medusa-backup-schedule";
pub const MEDUSA_API_VERSION: &str = "medusa.k8ssandra.io/v1alpha1";

pub struct MedusaBackupSchedulePolicy;

impl Policy for MedusaBackupSchedulePolicy {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            parent: KindRef::new(MEDUSA_API_VERSION, "MedusaBackupSchedule"),
            owns: vec![
                KindRef::new(MEDUSA_API_VERSION, "MedusaBackupJob"),
                KindRef::new(MEDUSA_API_VERSION, "MedusaTask"),
            ],
            reads: vec![],
            observe_pods: None,
            decorates: None,
        }
    }

    fn reconcile(snapshot: Snapshot) -> Result<Plan, PolicyError> {
        decide::reconcile(&snapshot)
    }

    fn validate(object: String, _old: Option<String>) -> Vec<Violation> {
        match serde_json::from_str::<MedusaBackupSchedule>(&object) {
            Ok(s) => decide::problems(&s)
                .into_iter()
                .map(|(field, why)| violation(field, why))
                .collect(),
            Err(e) => vec![violation("spec", format!("does not parse: {e}"))],
        }
    }
}

export_policy!(MedusaBackupSchedulePolicy);

#[cfg(test)]
mod tests;
