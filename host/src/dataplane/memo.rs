//! Healthy probe answers reused while the pod they came from is unchanged.
//!
//! Every reconcile observes every node its policy selects: at 250 nodes a datacenter
//! reconcile made 500 probes, and a K8ssandraCluster of 1000 nodes 2000, although one pod
//! had changed. A node's management-API state moves with its pod: the kubelet's readiness
//! probe is the same endpoint, so Cassandra becoming ready or unready changes the pod's
//! Ready condition and with it its resourceVersion. So a healthy answer is reused while
//! the pod's version is the one it was probed at, for at most the configured age (the
//! resync still sees every node fresh), and never after an operation on the node (a start
//! or a drain moves its state before the kubelet notices). An unreachable or failing node
//! is never reused: the probe backoff and the follower own those.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::plugin::bindings::{NodeRef, NodeState};

/// Entries kept at most; beyond it the stale ones are dropped (pods come and go).
const MAX_ENTRIES: usize = 8192;

type PodKey = (String, String, String);

struct Entry {
    address: String,
    version: String,
    at: Instant,
    state: NodeState,
}

#[derive(Default)]
pub(crate) struct ProbeMemo {
    entries: Mutex<HashMap<PodKey, Entry>>,
}

fn pod_key(node: &NodeRef) -> PodKey {
    (
        node.cluster.clone(),
        node.namespace.clone(),
        node.pod.clone(),
    )
}

impl ProbeMemo {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PodKey, Entry>> {
        // Every update is a single insert or remove: a poisoned map is still consistent.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The answer probed at this pod version and address, if younger than `max_age`.
    pub(crate) fn get(
        &self,
        node: &NodeRef,
        address: &str,
        version: &str,
        max_age: Duration,
    ) -> Option<NodeState> {
        let entries = self.lock();
        let e = entries.get(&pod_key(node))?;
        (e.address == address && e.version == version && e.at.elapsed() < max_age)
            .then(|| e.state.clone())
    }

    /// Keeps a healthy answer (reachable: both probes answered); anything else drops the
    /// node's entry.
    pub(crate) fn put(&self, state: &NodeState, address: &str, version: &str, max_age: Duration) {
        let mut entries = self.lock();
        let key = pod_key(&state.node);
        if !state.reachable || max_age.is_zero() {
            entries.remove(&key);
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| e.at.elapsed() < max_age);
        }
        let mut kept = state.clone();
        // The gossip view is asked afresh on every observation.
        kept.endpoints = None;
        entries.insert(
            key,
            Entry {
                address: address.to_string(),
                version: version.to_string(),
                at: Instant::now(),
                state: kept,
            },
        );
    }

    /// Forgets a node: an operation on it changes what it would answer.
    pub(crate) fn forget(&self, node: &NodeRef) {
        self.lock().remove(&pod_key(node));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(pod: &str, reachable: bool) -> NodeState {
        NodeState {
            node: NodeRef {
                cluster: "c".into(),
                namespace: "ns".into(),
                pod: pod.into(),
            },
            address: Some("127.0.0.1".into()),
            reachable,
            error: None,
            alive: reachable,
            ready: reachable,
            endpoints: Some("[]".into()),
        }
    }

    const AGE: Duration = Duration::from_secs(60);

    #[test]
    fn a_healthy_answer_is_reused_only_for_the_same_pod_version_and_address() {
        let memo = ProbeMemo::default();
        let s = state("p0", true);
        memo.put(&s, "127.0.0.1", "uid/1", AGE);
        let got = memo.get(&s.node, "127.0.0.1", "uid/1", AGE);
        assert_eq!(got.as_ref().map(|g| g.ready), Some(true));
        assert_eq!(
            got.and_then(|g| g.endpoints),
            None,
            "gossip view never reused"
        );
        assert!(memo.get(&s.node, "127.0.0.1", "uid/2", AGE).is_none());
        assert!(memo.get(&s.node, "127.0.0.2", "uid/1", AGE).is_none());
        assert!(
            memo.get(&s.node, "127.0.0.1", "uid/1", Duration::ZERO)
                .is_none()
        );
    }

    #[test]
    fn an_unreachable_answer_or_an_operation_drops_the_entry() {
        let memo = ProbeMemo::default();
        let s = state("p0", true);
        memo.put(&s, "127.0.0.1", "uid/1", AGE);
        memo.put(&state("p0", false), "127.0.0.1", "uid/1", AGE);
        assert!(memo.get(&s.node, "127.0.0.1", "uid/1", AGE).is_none());
        memo.put(&s, "127.0.0.1", "uid/1", AGE);
        memo.forget(&s.node);
        assert!(memo.get(&s.node, "127.0.0.1", "uid/1", AGE).is_none());
    }

    #[test]
    fn a_zero_age_keeps_nothing() {
        let memo = ProbeMemo::default();
        let s = state("p0", true);
        memo.put(&s, "127.0.0.1", "uid/1", Duration::ZERO);
        assert!(memo.lock().is_empty());
    }
}
