//! What the Medusa policies (`medusa-backup-job`, `medusa-task`) share: the pods of a
//! datacenter as Medusa sees them, the storage's backup summaries as the host hands them
//! over (`medusa-get-backups`), and the MedusaBackup record of a backup.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8ssandra_api::cassandra::CassandraDatacenter;
use k8ssandra_api::labels::DATACENTER_LABEL;
use k8ssandra_api::medusa::{
    BACKUP_SIDECAR_NAME, BackupType, MedusaBackup, MedusaBackupNode, MedusaBackupSpec,
    MedusaBackupStatus,
};
use k8ssandra_api::names::clean_label_value;
use k8ssandra_policy_sdk::conditions::time;
use k8ssandra_policy_sdk::{NodeRef, Snapshot};
use serde::Deserialize;
use std::collections::BTreeMap;

/// A Cassandra pod of a datacenter, as far as Medusa cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub cluster: String,
    pub namespace: String,
    pub name: String,
    pub has_medusa: bool,
    pub ready: bool,
}

impl Member {
    pub fn node(&self) -> NodeRef {
        NodeRef {
            cluster: self.cluster.clone(),
            namespace: self.namespace.clone(),
            pod: self.name.clone(),
        }
    }
}

/// The datacenter `name` in `namespace` of `cluster`, among the related objects.
pub fn datacenter(
    snapshot: &Snapshot,
    cluster: &str,
    namespace: &str,
    name: &str,
) -> Option<CassandraDatacenter> {
    snapshot
        .related_by_kind::<CassandraDatacenter>("CassandraDatacenter")
        .into_iter()
        .find(|(c, d)| {
            c == cluster
                && d.metadata.namespace.as_deref() == Some(namespace)
                && d.metadata.name.as_deref() == Some(name)
        })
        .map(|(_, d)| d)
}

/// The datacenter's pods (cass-operator labels them with the datacenter object's name),
/// by name.
pub fn members(snapshot: &Snapshot, cluster: &str, dc: &CassandraDatacenter) -> Vec<Member> {
    let namespace = dc.metadata.namespace.clone().unwrap_or_default();
    let label = clean_label_value(dc.metadata.name.as_deref().unwrap_or_default());
    let mut out: Vec<Member> = snapshot
        .related_of::<Pod>()
        .into_iter()
        .filter(|(c, p)| {
            c == cluster
                && p.metadata.namespace.as_deref() == Some(namespace.as_str())
                && p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(DATACENTER_LABEL))
                    == Some(&label)
                && p.metadata.deletion_timestamp.is_none()
        })
        .map(|(c, p)| Member {
            cluster: c,
            namespace: namespace.clone(),
            name: p.metadata.name.clone().unwrap_or_default(),
            has_medusa: p
                .spec
                .as_ref()
                .is_some_and(|s| s.containers.iter().any(|c| c.name == BACKUP_SIDECAR_NAME)),
            ready: p
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// One backup of the cluster as Medusa lists it.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub backup_name: String,
    #[serde(default)]
    pub start_time: i64,
    #[serde(default)]
    pub finish_time: i64,
    pub total_nodes: i32,
    pub finished_nodes: i32,
    #[serde(default)]
    pub nodes: Vec<SummaryNode>,
    pub status: String,
    #[serde(default)]
    pub backup_type: String,
    #[serde(default)]
    pub total_size: i64,
    #[serde(default)]
    pub total_objects: i64,
}

#[derive(Deserialize, Clone, Debug, PartialEq)]
pub struct SummaryNode {
    pub host: String,
    #[serde(default)]
    pub tokens: Vec<i64>,
    pub datacenter: String,
    pub rack: String,
}

impl Summary {
    /// Whether every node of the backup is in this Cassandra datacenter (Medusa lists the
    /// whole cluster's backups; a datacenter's records are its own).
    pub fn of_datacenter(&self, dc_name: &str) -> bool {
        !self.nodes.is_empty() && self.nodes.iter().all(|n| n.datacenter == dc_name)
    }
}

/// Parses the outcome of a `medusa-get-backups` operation.
pub fn summaries(body: &str) -> Result<Vec<Summary>, String> {
    serde_json::from_str(body).map_err(|e| format!("Medusa's backup list does not parse: {e}"))
}

/// The MedusaBackup recording `summary`, taken of datacenter `dc` (the object name).
pub fn backup_record(
    summary: &Summary,
    namespace: &str,
    dc: &str,
    labels: Option<BTreeMap<String, String>>,
    start_time: Option<Time>,
    finish_time: Option<Time>,
) -> MedusaBackup {
    let backup_type = match summary.backup_type.as_str() {
        "full" => Some(BackupType::Full),
        "differential" => Some(BackupType::Differential),
        _ => None,
    };
    MedusaBackup {
        metadata: ObjectMeta {
            name: Some(summary.backup_name.clone()),
            namespace: Some(namespace.to_string()),
            labels,
            ..Default::default()
        },
        spec: MedusaBackupSpec {
            cassandra_datacenter: dc.to_string(),
            backup_type,
        },
        status: Some(MedusaBackupStatus {
            start_time: start_time.or_else(|| seconds(summary.start_time)),
            finish_time: finish_time.or_else(|| seconds(summary.finish_time)),
            total_nodes: Some(summary.total_nodes),
            finished_nodes: Some(summary.finished_nodes),
            nodes: Some(
                summary
                    .nodes
                    .iter()
                    .map(|n| MedusaBackupNode {
                        host: Some(n.host.clone()),
                        tokens: Some(n.tokens.clone()),
                        datacenter: Some(n.datacenter.clone()),
                        rack: Some(n.rack.clone()),
                    })
                    .collect(),
            ),
            total_files: Some(summary.total_objects),
            total_size: Some(humanize_bytes(summary.total_size)),
            status: Some(summary.status.clone()),
        }),
    }
}

fn seconds(s: i64) -> Option<Time> {
    (s > 0).then(|| time(s as u64 * 1000))
}

/// Bytes in SI units as upstream shows them (`82 B`, `1.4 kB`, `15 MB`).
pub fn humanize_bytes(n: i64) -> String {
    let n = n.max(0) as f64;
    if n < 10.0 {
        return format!("{n} B");
    }
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let exp = (n.ln() / 1000f64.ln()).floor().min(6.0);
    let value = (n / 1000f64.powf(exp) * 10.0 + 0.5).floor() / 10.0;
    let unit = UNITS[exp as usize];
    if value < 10.0 {
        format!("{value:.1} {unit}")
    } else {
        format!("{value:.0} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_upstream_shows_them() {
        assert_eq!(humanize_bytes(0), "0 B");
        assert_eq!(humanize_bytes(82), "82 B");
        assert_eq!(humanize_bytes(1_400), "1.4 kB");
        assert_eq!(humanize_bytes(15_000_000), "15 MB");
        assert_eq!(humanize_bytes(1_350_000_000), "1.4 GB");
    }

    #[test]
    fn a_backup_belongs_to_a_datacenter_when_all_its_nodes_do() {
        let mut s = summaries(
            r#"[{"backupName":"b","totalNodes":2,"finishedNodes":2,"status":"SUCCESS",
            "nodes":[{"host":"a","datacenter":"dc1","rack":"r1"},{"host":"b","datacenter":"dc1","rack":"r2"}]}]"#,
        )
        .unwrap();
        assert!(s[0].of_datacenter("dc1"));
        s[0].nodes[1].datacenter = "dc2".into();
        assert!(!s[0].of_datacenter("dc1"));
        let rec = backup_record(&s[0], "ns", "dc1", None, None, None);
        assert_eq!(rec.status.unwrap().nodes.unwrap().len(), 2);
    }
}
