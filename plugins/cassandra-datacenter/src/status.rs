//! Conditions with stable transition times: a condition keeps its `lastTransitionTime`
//! while its status doesn't change, so a steady datacenter produces an identical status and
//! the host writes nothing.

use k8ssandra_api::cassandra::{CassandraDatacenterStatus, DatacenterConditionType as T};
use serde_json::{Value, json};

use crate::util::rfc3339;

/// The conditions this policy maintains, in the order they are written.
pub const MANAGED: [T; 12] = [
    T::Valid,
    T::Initialized,
    T::Ready,
    T::ScalingUp,
    T::ScalingDown,
    T::Updating,
    T::Stopped,
    T::Resuming,
    T::RollingRestart,
    T::ReplacingNodes,
    T::Decommission,
    T::ResizingVolumes,
];

#[derive(Clone, Debug)]
struct Cond {
    status: bool,
    reason: String,
    message: String,
}

pub struct Conditions {
    prev: CassandraDatacenterStatus,
    now: String,
    set: Vec<(T, Cond)>,
}

impl Conditions {
    pub fn new(prev: &CassandraDatacenterStatus, now_ms: u64) -> Self {
        Conditions {
            prev: prev.clone(),
            now: rfc3339(now_ms),
            set: Vec::new(),
        }
    }

    pub fn set(&mut self, t: T, status: bool, reason: &str, message: impl Into<String>) {
        self.set.retain(|(k, _)| *k != t);
        self.set.push((
            t,
            Cond {
                status,
                reason: reason.to_string(),
                message: message.into(),
            },
        ));
    }

    pub fn get(&self, t: T) -> Option<bool> {
        self.set
            .iter()
            .find(|(k, _)| *k == t)
            .map(|(_, c)| c.status)
    }

    /// The conditions as JSON: every managed type, unset ones `False`. A condition's time
    /// moves only when its status flips.
    pub fn to_json(&self) -> Value {
        let out: Vec<Value> = MANAGED
            .iter()
            .map(|t| {
                let c = self
                    .set
                    .iter()
                    .find(|(k, _)| k == t)
                    .map(|(_, c)| c.clone())
                    .unwrap_or(Cond {
                        status: false,
                        reason: String::new(),
                        message: String::new(),
                    });
                let status = if c.status { "True" } else { "False" };
                let prev = self.prev.condition(*t);
                let time = match prev {
                    Some(p) if p.status == status => p
                        .last_transition_time
                        .as_ref()
                        .and_then(|t| serde_json::to_value(t).ok())
                        .unwrap_or_else(|| json!(self.now)),
                    _ => json!(self.now),
                };
                // An empty reason keeps the previous one when the status is unchanged, so a
                // condition that went False for a reason keeps saying why.
                let (reason, message) = match prev {
                    Some(p) if p.status == status && c.reason.is_empty() => {
                        (p.reason.clone(), p.message.clone())
                    }
                    _ => (c.reason, c.message),
                };
                json!({
                    "type": t.as_str(),
                    "status": status,
                    "reason": reason,
                    "message": message,
                    "lastTransitionTime": time,
                })
            })
            .collect();
        Value::Array(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_moves_only_on_flip() {
        let mut c = Conditions::new(&CassandraDatacenterStatus::default(), 1_000_000);
        c.set(T::Ready, true, "AllReady", "");
        let first = c.to_json();
        let ready = &first[2];
        assert_eq!(ready["type"], "Ready");
        assert_eq!(ready["lastTransitionTime"], "1970-01-01T00:16:40Z");
        let prev: CassandraDatacenterStatus =
            serde_json::from_value(json!({ "conditions": first })).unwrap();
        let mut later = Conditions::new(&prev, 9_000_000);
        later.set(T::Ready, true, "AllReady", "");
        later.set(T::Stopped, true, "StoppedByUser", "");
        let second = later.to_json();
        assert_eq!(second[2]["lastTransitionTime"], "1970-01-01T00:16:40Z");
        assert_eq!(second[6]["lastTransitionTime"], "1970-01-01T02:30:00Z");
    }
}
