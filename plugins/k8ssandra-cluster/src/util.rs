//! Small helpers: time formatting, stable hashing, operation attempts, ring parsing.

use std::collections::BTreeMap;

use k8ssandra_policy_sdk::{Outcome, Snapshot};
use serde_json::Value;

// Time and hashing are shared by every policy.
pub use k8ssandra_policy_sdk::{rfc3339, stable_hash as hash};

/// Where an operation stands, over its retries.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Run it now under this id.
    Run(String),
    /// In flight.
    Running,
    /// Done; the answer's body.
    Done(String),
    /// Failed recently; retry after this many milliseconds. The message says why.
    Backoff(u64, String),
}

const RETRY_BASE_MS: u64 = 5_000;
const RETRY_MAX_MS: u64 = 120_000;

/// The state of the operation `base` (ids `base`, `base/r1`, `base/r2`, ...). The host never
/// runs an id again once it has an outcome, so a retry needs a new id; it waits with an
/// exponential backoff so a failing node is not hammered.
pub fn step(s: &Snapshot, base: &str) -> Step {
    let mut n = 0u32;
    loop {
        let id = if n == 0 {
            base.to_string()
        } else {
            format!("{base}/r{n}")
        };
        let latest = s
            .results
            .iter()
            .filter(|r| r.id == id)
            .max_by_key(|r| r.at_ms);
        match latest {
            None => return Step::Run(id),
            Some(r) => match &r.outcome {
                Outcome::Succeeded(body) => return Step::Done(body.clone()),
                Outcome::Running(_) => return Step::Running,
                Outcome::Failed(msg) => {
                    let next = n + 1;
                    let has_next = s.results.iter().any(|x| x.id == format!("{base}/r{next}"));
                    if has_next {
                        n = next;
                        continue;
                    }
                    let wait = (RETRY_BASE_MS << n.min(10)).min(RETRY_MAX_MS);
                    let due = r.at_ms.saturating_add(wait);
                    if s.now_ms >= due {
                        return Step::Run(format!("{base}/r{next}"));
                    }
                    return Step::Backoff(due - s.now_ms, msg.clone());
                }
            },
        }
    }
}

/// One node of the gossip view (`GET /api/v0/metadata/endpoints`).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub ip: String,
    pub dc: String,
    /// First word of STATUS: NORMAL, LEAVING, BOOT, ...; empty when absent.
    pub status: String,
}

/// The ring as seen by a ready node that `ours` accepts (other Cassandra clusters may share
/// the namespace, and their nodes are observed too): IP → endpoint. None when no node told us.
pub fn ring(
    s: &Snapshot,
    ours: impl Fn(&k8ssandra_policy_sdk::NodeRef) -> bool,
) -> Option<BTreeMap<String, Endpoint>> {
    let json = s
        .nodes
        .iter()
        .filter(|n| ours(&n.node))
        .find_map(|n| n.endpoints.as_ref())?;
    let v: Value = serde_json::from_str(json).ok()?;
    let list = v.get("entity").and_then(Value::as_array)?;
    let mut out = BTreeMap::new();
    for e in list {
        let ip = e
            .get("ENDPOINT_IP")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if ip.is_empty() {
            continue;
        }
        let status = e
            .get("STATUS")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .split(',')
            .next()
            .unwrap_or_default()
            .to_string();
        let dc = e
            .get("DC")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        out.insert(ip.clone(), Endpoint { ip, dc, status });
    }
    Some(out)
}

/// `{"class": "...NetworkTopologyStrategy", "dc1": "3"}` → dc → replicas. None for other
/// strategies, which have no per-datacenter replicas.
pub fn parse_replication(body: &str) -> Option<BTreeMap<String, u32>> {
    let v: Value = serde_json::from_str(body).ok()?;
    let m = v.as_object()?;
    let nts = m
        .get("class")
        .and_then(Value::as_str)
        .is_some_and(|c| c.ends_with("NetworkTopologyStrategy"));
    if !nts {
        return None;
    }
    let out = m
        .iter()
        .filter(|(k, _)| k.as_str() != "class")
        .filter_map(|(k, v)| {
            let n = match v {
                Value::String(s) => s.parse().ok(),
                Value::Number(n) => n.as_u64().map(|n| n as u32),
                _ => None,
            }?;
            Some((k.clone(), n))
        })
        .collect();
    Some(out)
}

/// Whether a JSON value contains every field of `sub` with the same value (arrays equal).
pub fn is_subset(sub: &Value, sup: &Value) -> bool {
    match (sub, sup) {
        (Value::Object(a), Value::Object(b)) => a
            .iter()
            .all(|(k, v)| v.is_null() || b.get(k).is_some_and(|w| is_subset(v, w))),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| is_subset(x, y))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn replication_parse() {
        let r = parse_replication(
            r#"{"class":"org.apache.cassandra.locator.NetworkTopologyStrategy","dc1":"3","dc2":"2"}"#,
        )
        .unwrap();
        assert_eq!(r.get("dc1"), Some(&3));
        assert_eq!(r.get("dc2"), Some(&2));
        assert!(
            parse_replication(r#"{"class":"SimpleStrategy","replication_factor":"1"}"#).is_none()
        );
    }
}
