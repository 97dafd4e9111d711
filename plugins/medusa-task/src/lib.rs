//! The built-in `medusa-task` policy: a MedusaTask (`medusa.k8ssandra.io`) runs one Medusa
//! maintenance operation over a datacenter.
//!
//! - `sync`: the MedusaBackup records of the datacenter match what the storage holds — a
//!   record for every complete backup of the datacenter, and records whose backup is gone
//!   from the storage removed (the backup itself is already gone; only its record goes).
//! - `purge`: every pod's Medusa deletes its backups past `max_backup_age`/`max_backup_count`,
//!   then the records are synced as above.
//! - `prepare_restore`: every pod computes its restore mapping for `backupName` under
//!   `restoreKey`.
//!
//! Where upstream hangs (KO #1767: a purge blocked for days by a dead pod, a task left "in
//! progress" for ever after an operator restart), here every call has the host's deadline,
//! a pod that is gone fails its part at once, and a task whose operations the host no longer
//! remembers (it restarted) asks again: purge and prepare-restore are idempotent.

pub mod decide;

use k8ssandra_api::labels::DATACENTER_LABEL;
use k8ssandra_api::medusa::{MedusaTask, MedusaTaskOperation};
use k8ssandra_policy_sdk::{
    KindRef, Plan, PluginInfo, Policy, PolicyError, ReadSpec, Snapshot, Violation, export_policy,
    violation,
};

pub const NAME: &str = "medusa-task";
pub const MEDUSA_API_VERSION: &str = "medusa.k8ssandra.io/v1alpha1";

pub struct MedusaTaskPolicy;

impl Policy for MedusaTaskPolicy {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            parent: KindRef::new(MEDUSA_API_VERSION, "MedusaTask"),
            owns: vec![KindRef::new(MEDUSA_API_VERSION, "MedusaBackup")],
            reads: vec![
                ReadSpec::new("cassandra.datastax.com/v1beta1", "CassandraDatacenter", ""),
                ReadSpec::new("v1", "Pod", DATACENTER_LABEL),
                // Every record, whichever job or task made it: sync compares them all.
                ReadSpec::new(MEDUSA_API_VERSION, "MedusaBackup", ""),
            ],
            observe_pods: None,
            decorates: None,
        }
    }

    fn reconcile(snapshot: Snapshot) -> Result<Plan, PolicyError> {
        decide::reconcile(&snapshot)
    }

    fn validate(object: String, old: Option<String>) -> Vec<Violation> {
        let task = match serde_json::from_str::<MedusaTask>(&object) {
            Ok(t) => t,
            Err(e) => return vec![violation("spec", format!("does not parse: {e}"))],
        };
        let mut out = Vec::new();
        if task.spec.cassandra_datacenter.is_empty() {
            out.push(violation(
                "spec.cassandraDatacenter",
                "must name the CassandraDatacenter the task runs on",
            ));
        }
        if task.spec.operation == MedusaTaskOperation::PrepareRestore {
            for (field, value) in [
                ("spec.backupName", &task.spec.backup_name),
                ("spec.restoreKey", &task.spec.restore_key),
            ] {
                if value.as_deref().is_none_or(str::is_empty) {
                    out.push(violation(field, "is required for prepare_restore"));
                }
            }
        }
        if let Some(old) = old.and_then(|o| serde_json::from_str::<MedusaTask>(&o).ok())
            && old.spec != task.spec
            && old.status.as_ref().is_some_and(|s| s.start_time.is_some())
        {
            out.push(violation(
                "spec",
                "cannot change once the task started; create a new MedusaTask",
            ));
        }
        out
    }
}

export_policy!(MedusaTaskPolicy);

#[cfg(test)]
mod tests;
