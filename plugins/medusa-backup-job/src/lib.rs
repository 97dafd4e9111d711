//! The built-in `medusa-backup-job` policy: a MedusaBackupJob (`medusa.k8ssandra.io`) backs
//! up every Cassandra pod of its datacenter through the pod's Medusa sidecar, then records
//! what the storage holds as a MedusaBackup of the same name.
//!
//! Rules kept (where upstream loses backups or hides failures):
//! - A backup starts only when every pod of the datacenter runs Medusa and is ready: a
//!   backup missing a node cannot be restored. The job says what it waits for.
//! - Every pod is asked once. After an operator restart the job follows the pods it had
//!   started (Medusa's BackupStatus) instead of starting them again.
//! - A pod whose backup fails, or whose Medusa no longer knows the backup, fails the job:
//!   `Failed=True` naming the pod and the reason, a Warning event, and no MedusaBackup.
//! - The MedusaBackup is the host's kind to keep: no ownerReference and never pruned, so
//!   deleting the job never deletes the record of a backup.

pub mod decide;

use k8ssandra_api::labels::DATACENTER_LABEL;
use k8ssandra_api::medusa::MedusaBackupJob;
use k8ssandra_policy_sdk::{
    KindRef, Plan, PluginInfo, Policy, PolicyError, ReadSpec, Snapshot, Violation, export_policy,
    violation,
};

pub const NAME: &str = "medusa-backup-job";
pub const MEDUSA_API_VERSION: &str = "medusa.k8ssandra.io/v1alpha1";

pub struct MedusaBackupJobPolicy;

impl Policy for MedusaBackupJobPolicy {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            parent: KindRef::new(MEDUSA_API_VERSION, "MedusaBackupJob"),
            owns: vec![KindRef::new(MEDUSA_API_VERSION, "MedusaBackup")],
            reads: vec![
                ReadSpec::new("cassandra.datastax.com/v1beta1", "CassandraDatacenter", ""),
                // The datacenter's pods: whether they run Medusa, are ready, and their IPs.
                ReadSpec::new("v1", "Pod", DATACENTER_LABEL),
            ],
            observe_pods: None,
            decorates: None,
        }
    }

    fn reconcile(snapshot: Snapshot) -> Result<Plan, PolicyError> {
        decide::reconcile(&snapshot)
    }

    fn validate(object: String, old: Option<String>) -> Vec<Violation> {
        let job = match serde_json::from_str::<MedusaBackupJob>(&object) {
            Ok(job) => job,
            Err(e) => return vec![violation("spec", format!("does not parse: {e}"))],
        };
        let mut out = Vec::new();
        let dc = &job.spec.cassandra_datacenter;
        if dc.is_empty() {
            out.push(violation(
                "spec.cassandraDatacenter",
                "must name the CassandraDatacenter to back up",
            ));
        } else if !is_object_name(dc) {
            out.push(violation(
                "spec.cassandraDatacenter",
                format!(
                    "{dc:?} cannot name a CassandraDatacenter (lowercase letters, digits, '-' \
                     and '.', at most 253): it is the object's name, not its datacenterName"
                ),
            ));
        }
        // A job is one backup: changing what it backs up after it started would make its
        // status describe a backup it never took.
        if let Some(old) = old.and_then(|o| serde_json::from_str::<MedusaBackupJob>(&o).ok())
            && old.spec != job.spec
            && old.status.as_ref().is_some_and(|s| s.start_time.is_some())
        {
            out.push(violation(
                "spec",
                "cannot change once the backup started; create a new MedusaBackupJob",
            ));
        }
        out
    }
}

/// An RFC 1123 subdomain, as Kubernetes object names are.
fn is_object_name(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

export_policy!(MedusaBackupJobPolicy);

#[cfg(test)]
mod tests;
