//! Following nodes whose management API does not answer yet.
//!
//! The management API comes up seconds after the container starts, and a failing one
//! comes back on its own; neither makes a Kubernetes event (the pod's readiness follows
//! Cassandra, not the API). So a reconcile that found a node unreachable would otherwise
//! wait for an unrelated event or the resync. [`NodeFollower`] keeps probing such a node in
//! the background (every second while it is not up yet, on the probe backoff while it
//! fails) and triggers the parents that saw it as soon as its state changes.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;
use tracing::debug;

use super::client::{ManagementApi, backoff};
use crate::plugin::bindings::{NodeRef, NodeState};

/// Probe period of a node whose API refuses connections (still starting). Refused
/// connections cost nothing worth backing off from for the first minutes.
const STARTING_PERIOD: Duration = Duration::from_secs(1);
/// After this long refusing, the node is probed on the growing probe backoff instead.
const STARTING_PATIENCE: Duration = Duration::from_secs(120);
/// A node no reconcile asked about for this long is no longer followed (the parent is
/// gone or stopped caring; the controller's resync asks well within it).
const FOLLOW_TTL: Duration = Duration::from_secs(600);

/// What a parent's snapshot showed of a node: a change of any of these is worth a
/// reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seen {
    alive: bool,
    reachable: bool,
    /// The API answers errors or times out (held back by the probe backoff), as opposed
    /// to not listening yet.
    failing: bool,
}

struct Followed {
    parents: BTreeSet<String>,
    seen: Seen,
    asked: Instant,
}

type Key = (String, String, String, String);

fn key(node: &NodeRef, address: &str) -> Key {
    (
        node.cluster.clone(),
        node.namespace.clone(),
        node.pod.clone(),
        address.to_string(),
    )
}

/// Probes unreachable nodes until they change (or, for a failing API, waits for its probe
/// hold to run out), then notifies their parents on the same channel as operation outcomes
/// ("policy|namespace/name").
#[derive(Clone)]
pub struct NodeFollower {
    api: ManagementApi,
    notify: UnboundedSender<String>,
    followed: Arc<Mutex<HashMap<Key, Followed>>>,
}

impl NodeFollower {
    pub fn new(api: ManagementApi, notify: UnboundedSender<String>) -> Self {
        NodeFollower {
            api,
            notify,
            followed: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Followed>> {
        // Every update is a single insert, change or remove: a poisoned map is consistent.
        self.followed.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn seen(&self, state: &NodeState, address: &str) -> Seen {
        Seen {
            alive: state.alive,
            reachable: state.reachable,
            failing: self.api.holds.until(&state.node, address).is_some(),
        }
    }

    /// Records what `parent` observed (all of its nodes): every unreachable node with an
    /// address is followed (a task per node, shared by the parents that saw it); reachable
    /// ones, and nodes no longer among the parent's (a deleted pod), are dropped.
    pub fn follow(&self, parent: &str, states: &[NodeState]) {
        {
            let current: std::collections::HashSet<Key> = states
                .iter()
                .filter_map(|s| Some(key(&s.node, s.address.as_deref()?)))
                .collect();
            let mut followed = self.lock();
            for (k, f) in followed.iter_mut() {
                if !current.contains(k) {
                    f.parents.remove(parent);
                }
            }
            followed.retain(|_, f| !f.parents.is_empty());
        }
        for state in states {
            let Some(address) = state.address.as_deref() else {
                continue;
            };
            let k = key(&state.node, address);
            if state.reachable {
                let mut followed = self.lock();
                if let Some(f) = followed.get_mut(&k) {
                    f.parents.remove(parent);
                    if f.parents.is_empty() {
                        followed.remove(&k);
                    }
                }
                continue;
            }
            let seen = self.seen(state, address);
            let spawn = {
                let mut followed = self.lock();
                let entry = followed.entry(k.clone());
                let spawn = matches!(entry, std::collections::hash_map::Entry::Vacant(_));
                let f = entry.or_insert_with(|| Followed {
                    parents: BTreeSet::new(),
                    seen,
                    asked: Instant::now(),
                });
                f.parents.insert(parent.to_string());
                f.seen = seen;
                f.asked = Instant::now();
                spawn
            };
            if spawn {
                let this = self.clone();
                let node = state.node.clone();
                let address = address.to_string();
                tokio::spawn(async move { this.run(k, node, address).await });
            }
        }
    }

    /// Forgets a parent that is gone.
    pub fn forget(&self, parent: &str) {
        let mut followed = self.lock();
        for f in followed.values_mut() {
            f.parents.remove(parent);
        }
        followed.retain(|_, f| !f.parents.is_empty());
    }

    /// Nodes followed now (for tests and metrics).
    pub fn followed(&self) -> usize {
        self.lock().len()
    }

    async fn run(self, k: Key, node: NodeRef, address: String) {
        let started = Instant::now();
        let mut slow = 0u32;
        loop {
            // A failing API is not probed here: when its backoff hold runs out the parents
            // reconcile and their observation probes it, exactly once (a probe here as well
            // would hit the broken API twice at the end of every hold). One that is not up
            // yet is probed every second for a while, then on the same growing backoff.
            let config = self.api.config();
            if let Some(until) = self.api.holds.until(&node, &address) {
                tokio::time::sleep(until.saturating_duration_since(Instant::now())).await;
                let parents = {
                    let mut followed = self.lock();
                    followed.remove(&k).map(|f| f.parents).unwrap_or_default()
                };
                debug!(namespace = %node.namespace, pod = %node.pod, %address,
                    "probe hold ran out; reconciling its parents");
                for p in parents {
                    let _ = self.notify.send(p);
                }
                return;
            }
            let delay = if started.elapsed() < STARTING_PATIENCE {
                STARTING_PERIOD
            } else {
                slow += 1;
                backoff(config.probe_backoff_base, config.probe_backoff_max, slow)
            };
            tokio::time::sleep(delay.max(Duration::from_millis(100))).await;
            let before = {
                let mut followed = self.lock();
                match followed.get(&k) {
                    Some(f) if f.asked.elapsed() < FOLLOW_TTL => f.seen,
                    Some(_) => {
                        followed.remove(&k);
                        return;
                    }
                    None => return,
                }
            };
            let state = self.api.probe(node.clone(), Some(address.clone())).await;
            let now = self.seen(&state, &address);
            if now == before {
                continue;
            }
            let parents = {
                let mut followed = self.lock();
                followed.remove(&k).map(|f| f.parents).unwrap_or_default()
            };
            debug!(namespace = %node.namespace, pod = %node.pod, %address, ?before, ?now,
                "management API changed; reconciling its parents");
            for p in parents {
                // A closed channel is a host shutting down.
                let _ = self.notify.send(p);
            }
            return;
        }
    }
}
