//! Reading a CassandraTask's status, summing datacenters, and writing conditions.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
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

/// The status of condition `t`: Some(true/false), None when absent or Unknown.
pub fn cond(conditions: Option<&[Condition]>, t: &str) -> Option<bool> {
    conditions?
        .iter()
        .find(|c| c.type_ == t)
        .and_then(|c| match c.status.as_str() {
            "True" => Some(true),
            "False" => Some(false),
            _ => None,
        })
}

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

pub fn time(ms: u64) -> Time {
    Time(Timestamp::from_millisecond(ms as i64).unwrap_or(Timestamp::UNIX_EPOCH))
}

pub fn ms(t: &Time) -> u64 {
    t.0.as_millisecond().max(0) as u64
}

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

/// One condition to write.
pub struct Cond {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

/// Conditions with their transition time kept while their status does not change.
pub fn conditions(prev: Option<&[Condition]>, now_ms: u64, wanted: Vec<Cond>) -> Vec<Condition> {
    wanted
        .into_iter()
        .map(|c| {
            let status = if c.status { "True" } else { "False" };
            let since = prev
                .and_then(|p| p.iter().find(|p| p.type_ == c.type_))
                .filter(|p| p.status == status)
                .map(|p| p.last_transition_time.clone())
                .unwrap_or_else(|| time(now_ms));
            Condition {
                type_: c.type_.to_string(),
                status: status.to_string(),
                reason: c.reason.to_string(),
                message: c.message,
                last_transition_time: since,
                observed_generation: None,
            }
        })
        .collect()
}
