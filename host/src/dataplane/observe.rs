//! Observation of Cassandra nodes for a policy's snapshot.
//!
//! A node whose management API answers errors or hangs is not asked again on every
//! reconcile: after each failed probe it is held back for a growing, jittered delay
//! ([`ProbeHolds`]) and observations report its last error meanwhile. Reconciles of the
//! datacenter come from many events (other nodes starting, status writes), so without this
//! a broken node would be hit at their rate, and a hanging one would stall every
//! observation for the client timeout. The policy asks for a requeue while a node fails,
//! which is when the next real probe happens once the hold ran out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tracing::{debug, info, warn};

use super::client::{ManagementApi, backoff};
use super::error::DataplaneError;
use crate::plugin::bindings::{NodeRef, NodeState};

/// Holds kept at most; beyond it, the expired ones are dropped (pods come and go, and a
/// held pod that disappeared is never probed again to clear its entry).
const MAX_HOLDS: usize = 4096;

/// A node: its pod (cluster, namespace, name) and address.
type NodeKey = (String, String, String, String);

/// A node held back after failed probes.
struct Hold {
    failures: u32,
    until: Instant,
    /// The last probe's error, reported unchanged while held so that the snapshot, and
    /// the status a policy derives from it, stay the same.
    error: String,
}

/// Per node (pod and address: a recreated pod on a reused address starts afresh), the
/// backoff of its failing probes.
#[derive(Default)]
pub(crate) struct ProbeHolds {
    holds: Mutex<HashMap<NodeKey, Hold>>,
    /// One probe of a node at a time: observations of several parents and the follower
    /// can reach a node together, and a broken API must see one probe, not a burst, before
    /// its hold is recorded.
    gates: Mutex<HashMap<NodeKey, Arc<tokio::sync::Mutex<()>>>>,
}

fn hold_key(node: &NodeRef, address: &str) -> NodeKey {
    (
        node.cluster.clone(),
        node.namespace.clone(),
        node.pod.clone(),
        address.to_string(),
    )
}

impl ProbeHolds {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<NodeKey, Hold>> {
        // Every update is a single insert or remove: a poisoned map is still consistent.
        self.holds.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The error to report instead of probing, while the node is held.
    fn held(&self, node: &NodeRef, address: &str) -> Option<String> {
        let holds = self.lock();
        let hold = holds.get(&hold_key(node, address))?;
        (Instant::now() < hold.until).then(|| hold.error.clone())
    }

    /// When the node's hold runs out, while it is held.
    pub(crate) fn until(&self, node: &NodeRef, address: &str) -> Option<Instant> {
        let holds = self.lock();
        let hold = holds.get(&hold_key(node, address))?;
        (Instant::now() < hold.until).then_some(hold.until)
    }

    /// Records a failed probe; returns the number of failures in a row and the delay
    /// before the next probe.
    fn failed(
        &self,
        node: &NodeRef,
        address: &str,
        error: String,
        base: Duration,
        max: Duration,
    ) -> (u32, Duration) {
        let mut holds = self.lock();
        let now = Instant::now();
        if holds.len() >= MAX_HOLDS {
            holds.retain(|_, h| h.until + max > now);
        }
        let key = hold_key(node, address);
        let failures = holds.get(&key).map_or(0, |h| h.failures) + 1;
        let delay = backoff(base, max, failures);
        holds.insert(
            key,
            Hold {
                failures,
                until: now + delay,
                error,
            },
        );
        (failures, delay)
    }

    fn gate(&self, node: &NodeRef, address: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        gates.entry(hold_key(node, address)).or_default().clone()
    }

    /// Drops the node's gate once no probe holds or waits for it.
    fn release(&self, node: &NodeRef, address: &str, gate: Arc<tokio::sync::Mutex<()>>) {
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        let key = hold_key(node, address);
        // Two references left: the map's and `gate`.
        if gates.get(&key).is_some_and(|g| Arc::ptr_eq(g, &gate)) && Arc::strong_count(&gate) <= 2 {
            gates.remove(&key);
        }
    }

    /// Forgets the node's failures; true when it had any.
    fn succeeded(&self, node: &NodeRef, address: &str) -> bool {
        self.lock().remove(&hold_key(node, address)).is_some()
    }
}

/// Whether a failed probe means the management API is broken (it answered an error, or
/// took longer than the timeout) rather than not running yet (connection refused).
fn counts_as_failure(e: &DataplaneError) -> bool {
    match e {
        DataplaneError::Transport { connect, .. } => !connect,
        _ => true,
    }
}

/// Ready nodes asked for the gossip view, in order, before giving up for this cycle:
/// one is enough, a couple more cover a node that became unready between the probes
/// and the call.
const ENDPOINTS_CANDIDATES: usize = 3;

impl ManagementApi {
    /// Probes every node (liveness, then readiness when alive), at most
    /// `observe_concurrency` at once, and asks ONE ready node for the gossip view
    /// (`endpoints`). The caller groups nodes per Cassandra cluster, so one call holds one
    /// cluster. The answer keeps the order of `nodes`.
    ///
    /// Never fails: an unreachable node is `reachable=false` with the reason in `error`.
    pub async fn observe(&self, nodes: Vec<(NodeRef, Option<String>)>) -> Vec<NodeState> {
        self.observe_pods(nodes.into_iter().map(|(n, a)| (n, a, None)).collect())
            .await
    }

    /// [`ManagementApi::observe`] of pods whose version (UID and resourceVersion) is given:
    /// a node answered healthy at that version within `observation_max_age` is not probed
    /// again (see `memo`).
    pub async fn observe_pods(
        &self,
        nodes: Vec<(NodeRef, Option<String>, Option<String>)>,
    ) -> Vec<NodeState> {
        let concurrency = self.config().observe_concurrency.max(1);
        // Unordered, then sorted back: with `buffered`, one node timing out would hold
        // its slot's finished neighbours and starve the pool of new probes.
        let mut indexed: Vec<(usize, NodeState)> =
            futures::stream::iter(nodes.into_iter().enumerate())
                .map(|(i, (node, address, version))| async move {
                    (i, self.probe_at(node, address, version).await)
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
        indexed.sort_by_key(|(i, _)| *i);
        let mut states: Vec<NodeState> = indexed.into_iter().map(|(_, s)| s).collect();

        let ready: Vec<usize> = states
            .iter()
            .enumerate()
            .filter(|(_, s)| s.ready)
            .map(|(i, _)| i)
            .take(ENDPOINTS_CANDIDATES)
            .collect();
        for i in ready {
            let Some(address) = states[i].address.clone() else {
                continue;
            };
            match self.endpoints(&address).await {
                Ok(json) => {
                    states[i].endpoints = Some(json);
                    break;
                }
                Err(e) => warn!(
                    namespace = %states[i].node.namespace,
                    pod = %states[i].node.pod,
                    address = %address,
                    error = %e,
                    "reading the gossip view failed; trying another ready node"
                ),
            }
        }
        states
    }

    /// Probes a node unless it is held back (then its last error is reported); a probe
    /// that waited for another one of the same node sees that one's hold.
    pub(crate) async fn probe(&self, node: NodeRef, address: Option<String>) -> NodeState {
        self.probe_at(node, address, None).await
    }

    /// [`ManagementApi::probe`], reusing a healthy answer given at the pod's `version`.
    async fn probe_at(
        &self,
        node: NodeRef,
        address: Option<String>,
        version: Option<String>,
    ) -> NodeState {
        let Some(addr) = address.clone() else {
            return self.probe_now(node, address).await;
        };
        let max_age = self.config().observation_max_age;
        if let Some(v) = &version
            && let Some(state) = self.memo.get(&node, &addr, v, max_age)
        {
            self.stats.probe_reused();
            return state;
        }
        let gate = self.holds.gate(&node, &addr);
        let state = {
            let _turn = gate.lock().await;
            match self.holds.held(&node, &addr) {
                Some(error) => {
                    self.stats.probe_deferred();
                    NodeState {
                        node: node.clone(),
                        address: Some(addr.clone()),
                        reachable: false,
                        error: Some(error),
                        alive: false,
                        ready: false,
                        endpoints: None,
                    }
                }
                None => {
                    let state = self.probe_now(node.clone(), address).await;
                    if let Some(v) = &version {
                        self.memo.put(&state, &addr, v, max_age);
                    }
                    state
                }
            }
        };
        self.holds.release(&node, &addr, gate);
        state
    }

    /// Probes a node now; the outcome updates its hold.
    async fn probe_now(&self, node: NodeRef, address: Option<String>) -> NodeState {
        let mut state = NodeState {
            node,
            address,
            reachable: false,
            error: None,
            alive: false,
            ready: false,
            endpoints: None,
        };
        let Some(address) = state.address.clone() else {
            state.error = Some("the pod has no IP address".to_string());
            return state;
        };
        if let Err(e) = self.liveness(&address).await {
            debug!(pod = %state.node.pod, address = %address, error = %e, "liveness probe failed");
            self.probe_failed(&state.node, &address, &e);
            state.error = Some(e.to_string());
            return state;
        }
        state.alive = true;
        match self.readiness(&address).await {
            Ok(ready) => {
                state.reachable = true;
                state.ready = ready;
                if self.holds.succeeded(&state.node, &address) {
                    info!(namespace = %state.node.namespace, pod = %state.node.pod, address = %address,
                        "management API answers again");
                }
            }
            Err(e) => {
                debug!(pod = %state.node.pod, address = %address, error = %e, "readiness probe failed");
                self.probe_failed(&state.node, &address, &e);
                state.error = Some(e.to_string());
            }
        }
        state
    }

    fn probe_failed(&self, node: &NodeRef, address: &str, e: &DataplaneError) {
        if !counts_as_failure(e) {
            // Not up (yet): nothing to back off from, but an older hold is stale now.
            self.holds.succeeded(node, address);
            return;
        }
        let config = self.config();
        let (failures, delay) = self.holds.failed(
            node,
            address,
            e.to_string(),
            config.probe_backoff_base,
            config.probe_backoff_max,
        );
        warn!(namespace = %node.namespace, pod = %node.pod, address, failures,
            next_probe_ms = delay.as_millis() as u64, error = %e,
            "management API fails; backing off its probes");
    }
}
