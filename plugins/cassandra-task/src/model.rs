//! What one reconcile knows, parsed from the snapshot, and the time helpers the status
//! needs (the snapshot's clock is the only one a policy has).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8ssandra_api::cassandra::CassandraDatacenter;
use k8ssandra_api::control::{CassandraTask, CassandraTaskStatus, condition};
use k8ssandra_api::labels::{CLUSTER_LABEL, DATACENTER_LABEL, RACK_LABEL};
use k8ssandra_api::names::clean_label_value;
use k8ssandra_policy_sdk::{Object, Snapshot};

use crate::{DATACENTER_KIND, PARENT_KIND};

/// Unix milliseconds as RFC 3339 UTC with second precision, the form `metav1.Time` takes, so
/// a status we write compares equal to the one we read back.
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let (y, m, d) = civil(secs / 86_400);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `YYYY-MM-DDTHH:MM:SS` followed by anything (fractions, `Z`); offsets are not expected
/// from the API server, which writes UTC.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let n = |a: usize, b: usize| s.get(a..b)?.parse::<u64>().ok();
    let (y, mo, d) = (n(0, 4)?, n(5, 7)?, n(8, 10)?);
    let (h, mi, se) = (n(11, 13)?, n(14, 16)?, n(17, 19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    Some((days(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se) * 1000)
}

// Days ↔ civil date after H. Hinnant's algorithms, for dates from 1970 on.
fn civil(z: u64) -> (u64, u64, u64) {
    let z = z + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + u64::from(m <= 2), m, d)
}

fn days(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y % 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).saturating_sub(719_468)
}

pub fn time(ms: u64) -> Option<Time> {
    serde_json::from_value(serde_json::Value::String(rfc3339(ms))).ok()
}

pub fn time_ms(t: &Time) -> Option<u64> {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().and_then(parse_rfc3339))
}

/// Whether condition `t` is `True` in a task status.
pub fn is_true(status: &CassandraTaskStatus, t: &str) -> bool {
    status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == t && c.status == "True")
}

/// When condition `t` last changed, if present.
pub fn transition_ms(status: &CassandraTaskStatus, t: &str) -> Option<u64> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == t)
        .and_then(|c| time_ms(&c.last_transition_time))
}

/// Finished: Complete or Failed.
pub fn finished(status: &CassandraTaskStatus) -> bool {
    is_true(status, condition::COMPLETE) || is_true(status, condition::FAILED)
}

/// The datacenter a task names: (namespace, name), the namespace defaulting to the task's.
pub fn datacenter_ref(task: &CassandraTask) -> Option<(String, String)> {
    let r = task.spec.datacenter.as_ref()?;
    let name = r.name.clone().filter(|n| !n.is_empty())?;
    let ns = r
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| task.metadata.namespace.clone().unwrap_or_default());
    Some((ns, name))
}

/// One Cassandra pod of the datacenter as observed.
#[derive(Clone, Debug)]
pub struct PodView {
    pub name: String,
    pub rack: String,
    pub ordinal: u32,
    pub created_ms: Option<u64>,
    pub terminating: bool,
    /// The management API answers and Cassandra serves clients.
    pub ready: bool,
}

/// The datacenter with its pods.
pub struct Datacenter {
    pub obj: CassandraDatacenter,
    /// Rack label values, in the datacenter's rack order.
    pub racks: Vec<String>,
    /// Pods of the datacenter, in rack order then ordinal.
    pub pods: Vec<PodView>,
}

impl Datacenter {
    pub fn find(snapshot: &Snapshot, namespace: &str, name: &str) -> Option<Datacenter> {
        let obj: CassandraDatacenter = snapshot
            .related
            .iter()
            .filter(|o| o.kind().as_deref() == Some(DATACENTER_KIND))
            .filter_map(|o| o.parse::<CassandraDatacenter>().ok())
            .find(|dc| {
                dc.metadata.name.as_deref() == Some(name)
                    && dc.metadata.namespace.as_deref().unwrap_or(namespace) == namespace
            })?;
        let racks: Vec<String> = obj
            .racks()
            .iter()
            .map(|r| clean_label_value(&r.name))
            .collect();
        let labels = obj.datacenter_labels();
        let ready: BTreeMap<&str, bool> = snapshot
            .nodes
            .iter()
            .filter(|n| n.node.namespace == namespace && n.node.cluster.is_empty())
            .map(|n| (n.node.pod.as_str(), n.reachable && n.ready))
            .collect();
        // The SDK's slim pod view: nothing here reads a pod's spec.
        let mut pods: Vec<PodView> = snapshot
            .pods()
            .into_iter()
            .filter(|(c, _)| c.is_empty())
            .map(|(_, p)| p)
            .filter(|p| p.metadata.namespace.as_deref().unwrap_or(namespace) == namespace)
            .filter_map(|p| {
                let l = p.metadata.labels.clone().unwrap_or_default();
                if l.get(CLUSTER_LABEL) != labels.get(CLUSTER_LABEL)
                    || l.get(DATACENTER_LABEL) != labels.get(DATACENTER_LABEL)
                {
                    return None;
                }
                let name = p.metadata.name.clone()?;
                let terminating = p.metadata.deletion_timestamp.is_some();
                Some(PodView {
                    rack: l.get(RACK_LABEL).cloned().unwrap_or_default(),
                    ordinal: name
                        .rsplit('-')
                        .next()
                        .and_then(|o| o.parse().ok())
                        .unwrap_or(0),
                    created_ms: p.metadata.creation_timestamp.as_ref().and_then(time_ms),
                    terminating,
                    ready: !terminating && ready.get(name.as_str()).copied().unwrap_or(false),
                    name,
                })
            })
            .collect();
        let rack_index = |r: &str| racks.iter().position(|x| x == r).unwrap_or(usize::MAX);
        pods.sort_by(|a, b| {
            (rack_index(&a.rack), a.ordinal, &a.name).cmp(&(
                rack_index(&b.rack),
                b.ordinal,
                &b.name,
            ))
        });
        Some(Datacenter { obj, racks, pods })
    }

    /// The live (non-terminating) pod with this name.
    pub fn live(&self, name: &str) -> Option<&PodView> {
        self.pods.iter().find(|p| p.name == name && !p.terminating)
    }

    /// Names of the pods the datacenter's StatefulSets should have (its size split over
    /// its racks, ordinals from 0).
    pub fn expected_pods(&self) -> Vec<String> {
        let racks = self.obj.racks();
        let split = k8ssandra_api::names::split_racks(self.size(), racks.len());
        racks
            .iter()
            .zip(split)
            .flat_map(|(r, n)| {
                let sts = self.obj.sts_name(&r.name);
                (0..n).map(move |i| format!("{sts}-{i}"))
            })
            .collect()
    }

    pub fn size(&self) -> usize {
        usize::try_from(self.obj.spec.size.max(0)).unwrap_or_default()
    }

    /// Every node the datacenter should have is there and ready, none terminating.
    pub fn all_ready(&self) -> bool {
        let live = self.pods.iter().filter(|p| !p.terminating).count();
        live >= self.size() && self.pods.iter().all(|p| p.ready)
    }
}

/// Another task of the same datacenter, for concurrencyPolicy.
#[derive(Clone, Debug)]
pub struct OtherTask {
    pub name: String,
    pub created_ms: u64,
    pub forbid: bool,
    pub started: bool,
    pub scheduled_ms: Option<u64>,
}

/// `Allow` lets a task run beside other `Allow` tasks; anything else runs alone.
pub fn forbids(task: &CassandraTask) -> bool {
    task.spec.template.concurrency_policy.as_deref() != Some("Allow")
}

pub fn created_ms(task: &CassandraTask) -> u64 {
    task.metadata
        .creation_timestamp
        .as_ref()
        .and_then(time_ms)
        .unwrap_or(0)
}

pub fn scheduled_ms(task: &CassandraTask) -> Option<u64> {
    task.spec.template.scheduled_time.as_ref().and_then(time_ms)
}

/// The unfinished tasks of the same datacenter, other than `me`.
pub fn other_tasks(snapshot: &Snapshot, me: &CassandraTask) -> Vec<OtherTask> {
    let Some(mine) = datacenter_ref(me) else {
        return Vec::new();
    };
    let ns = me.metadata.namespace.clone().unwrap_or_default();
    snapshot
        .related
        .iter()
        .filter(|o: &&Object| o.cluster.is_empty() && o.kind().as_deref() == Some(PARENT_KIND))
        .filter_map(|o| o.parse::<CassandraTask>().ok())
        .filter(|t| {
            t.metadata.uid != me.metadata.uid
                && t.metadata.namespace.as_deref().unwrap_or(&ns) == ns
                && t.metadata.deletion_timestamp.is_none()
                && datacenter_ref(t).as_ref() == Some(&mine)
        })
        .filter_map(|t| {
            let status = t.status.clone().unwrap_or_default();
            if finished(&status) {
                return None;
            }
            Some(OtherTask {
                name: t.metadata.name.clone().unwrap_or_default(),
                created_ms: created_ms(&t),
                forbid: forbids(&t),
                started: status.start_time.is_some(),
                scheduled_ms: scheduled_ms(&t),
            })
        })
        .collect()
}
