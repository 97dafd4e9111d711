//! Reading a CassandraTask's status, summing datacenters, and writing conditions.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8ssandra_api::control::{CassandraTaskStatus, condition};
use serde_json::Value;

/// Where one datacenter's CassandraTask stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Not created (yet).
    NotCreated,
    /// Created; its operator has not started it (or has not written a status yet).
    Pending,
    Running,
    /// Complete without failure.
    Succeeded,
    /// Failed=True; `finished` once the task no longer runs (cass-operator marks a failed
    /// task Complete as well, and sets Failed only at the end; both are accepted).
    Failed {
        finished: bool,
    },
}

impl Phase {
    pub fn finished(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed { finished: true })
    }
    pub fn failed(self) -> bool {
        matches!(self, Phase::Failed { .. })
    }
}

pub use k8ssandra_policy_sdk::conditions::is as cond;

pub fn phase(st: Option<&CassandraTaskStatus>) -> Phase {
    let Some(st) = st else {
        return Phase::Pending;
    };
    let cs = st.conditions.as_deref();
    let is = |t| cond(cs, t) == Some(true);
    if is(condition::FAILED) {
        return Phase::Failed {
            finished: is(condition::COMPLETE) || !is(condition::RUNNING),
        };
    }
    if is(condition::COMPLETE) {
        return Phase::Succeeded;
    }
    if is(condition::RUNNING) || st.active.is_some_and(|a| a > 0) {
        return Phase::Running;
    }
    Phase::Pending
}

/// A CassandraTask's status. Parsed field by field when the whole does not parse, so one
/// odd field written by another operator version does not hide the rest (conditions in
/// particular, which decide what runs next).
pub fn parse_status(object: &Value) -> Option<CassandraTaskStatus> {
    let s = object.get("status").filter(|s| s.is_object())?;
    if let Ok(t) = serde_json::from_value::<CassandraTaskStatus>(s.clone()) {
        return Some(t);
    }
    fn field<T: serde::de::DeserializeOwned>(s: &Value, k: &str) -> Option<T> {
        s.get(k)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }
    Some(CassandraTaskStatus {
        conditions: s.get("conditions").and_then(Value::as_array).map(|cs| {
            cs.iter()
                .filter_map(|c| serde_json::from_value(c.clone()).ok())
                .collect()
        }),
        start_time: field(s, "startTime"),
        completion_time: field(s, "completionTime"),
        active: field(s, "active"),
        succeeded: field(s, "succeeded"),
        failed: field(s, "failed"),
        pod_statuses: field(s, "podStatuses"),
    })
}

pub use k8ssandra_policy_sdk::conditions::{ms, time};

/// Totals over the datacenters: counts summed, the earliest start.
pub fn totals(dcs: &BTreeMap<String, CassandraTaskStatus>) -> CassandraTaskStatus {
    let sum = |f: fn(&CassandraTaskStatus) -> Option<i64>| dcs.values().filter_map(f).sum();
    CassandraTaskStatus {
        active: Some(sum(|s| s.active)),
        succeeded: Some(sum(|s| s.succeeded)),
        failed: Some(sum(|s| s.failed)),
        start_time: dcs.values().filter_map(|s| s.start_time.clone()).min(),
        ..Default::default()
    }
}

/// Latest completion among the datacenters, counting a failed task's Failed transition
/// when it has no completionTime.
pub fn latest_end(dcs: &BTreeMap<String, CassandraTaskStatus>) -> Option<Time> {
    dcs.values()
        .filter_map(|s| {
            s.completion_time.clone().or_else(|| {
                s.conditions
                    .as_deref()?
                    .iter()
                    .find(|c| c.type_ == condition::FAILED && c.status == "True")
                    .map(|c| c.last_transition_time.clone())
            })
        })
        .max()
}

pub use k8ssandra_policy_sdk::conditions::{Cond, conditions};
