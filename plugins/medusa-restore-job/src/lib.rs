//! The built-in `medusa-restore-job` policy: a MedusaRestoreJob (`medusa.k8ssandra.io`)
//! restores its CassandraDatacenter from a MedusaBackup.
//!
//! Steps, each recorded in `status.phase` so an operator restart resumes where it was:
//! 1. `Validating`: the backup exists, is complete, and fits the datacenter (node count,
//!    datacenter name, rack names and sizes); for chosen `spec.keyspaces`/`spec.tables`,
//!    every pod's `medusa-restore` init container mounts the `<kc>-medusa` ConfigMap at
//!    `/etc/medusa` (whose `sitecustomize.py` makes Medusa restore only those) and each
//!    keyspace exists in the schema (`ListKeyspaces` on a ready node). Otherwise
//!    `Failed=True` naming the field and the rule, and nothing is stopped.
//! 2. The mapping: the backup's nodes by rack (sorted), hosts sorted, onto the pods
//!    `<sts>-<i>` of the same rack (or of the single rack `default`).
//! 3. `Stopping`: the ConfigMap `<dc>-medusa-restore` (BACKUP_NAME, RESTORE_KEY,
//!    RESTORE_MAPPING; for a selective restore also PYTHONPATH, MEDUSA_RESTORE_KEYSPACES,
//!    MEDUSA_RESTORE_TABLES) exists, and the cassandra-datacenter policy stops the
//!    datacenter because of this phase — its spec is never touched, so nothing of the
//!    restore stays in the pod template (KO #1058).
//! 4. `Starting`: the datacenter resumes; each pod's `medusa-restore` init container reads
//!    the ConfigMap and restores; a pod running again and ready is finished. Past
//!    `spec.readyDeadlineSeconds` (default 6 h) from the stop: `Failed`, naming the pods not
//!    Ready; the ConfigMap stays while the job exists (those pods restore before starting).
//! 5. `Roles`: the ConfigMap is gone (a later pod restores nothing), and the datacenter's
//!    roles are re-created: the restored `system_auth` holds old passwords.
//! 6. `Complete`.

pub mod decide;

use k8ssandra_api::labels::DATACENTER_LABEL;
use k8ssandra_api::medusa::MedusaRestoreJob;
use k8ssandra_policy_sdk::{
    KindRef, Plan, PluginInfo, Policy, PolicyError, ReadSpec, Snapshot, Violation, export_policy,
    violation,
};

pub const NAME: &str = "medusa-restore-job";
pub const MEDUSA_API_VERSION: &str = "medusa.k8ssandra.io/v1alpha1";

pub struct MedusaRestoreJobPolicy;

impl Policy for MedusaRestoreJobPolicy {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            parent: KindRef::new(MEDUSA_API_VERSION, "MedusaRestoreJob"),
            // The restore parameters the pods' init containers read, while the job runs.
            owns: vec![KindRef::new("v1", "ConfigMap")],
            reads: vec![
                ReadSpec::new("cassandra.datastax.com/v1beta1", "CassandraDatacenter", ""),
                ReadSpec::new("v1", "Pod", DATACENTER_LABEL),
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
        let job = match serde_json::from_str::<MedusaRestoreJob>(&object) {
            Ok(job) => job,
            Err(e) => return vec![violation("spec", format!("does not parse: {e}"))],
        };
        let mut out = Vec::new();
        if job.spec.backup.is_empty() {
            out.push(violation(
                "spec.backup",
                "must name the MedusaBackup to restore",
            ));
        }
        if job.spec.cassandra_datacenter.is_empty() {
            out.push(violation(
                "spec.cassandraDatacenter",
                "must name the CassandraDatacenter to restore into (its object name)",
            ));
        }
        for (i, ks) in job.spec.keyspaces.iter().flatten().enumerate() {
            if !is_cql_name(ks) {
                out.push(violation(
                    &format!("spec.keyspaces[{i}]"),
                    format!("{ks:?} is no keyspace name (letters, digits and '_')"),
                ));
            }
        }
        for (i, t) in job.spec.tables.iter().flatten().enumerate() {
            let ok = t
                .split_once('.')
                .is_some_and(|(k, t)| is_cql_name(k) && is_cql_name(t));
            if !ok {
                out.push(violation(
                    &format!("spec.tables[{i}]"),
                    format!("{t:?} must be keyspace.table"),
                ));
            }
        }
        if let Some(s) = job.spec.ready_deadline_seconds
            && s <= 0
        {
            out.push(violation(
                "spec.readyDeadlineSeconds",
                format!("must be a positive number of seconds, not {s}"),
            ));
        }
        // A started restore is one restore: its status would describe another otherwise.
        if let Some(old) = old.and_then(|o| serde_json::from_str::<MedusaRestoreJob>(&o).ok())
            && old.spec != job.spec
            && old.status.as_ref().is_some_and(|s| s.start_time.is_some())
        {
            out.push(violation(
                "spec",
                "cannot change once the restore started; create a new MedusaRestoreJob",
            ));
        }
        out
    }
}

fn is_cql_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 48 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

export_policy!(MedusaRestoreJobPolicy);

#[cfg(test)]
mod tests;
