//! Observation of Cassandra nodes for a policy's snapshot.

use futures::StreamExt;
use tracing::{debug, warn};

use super::client::ManagementApi;
use crate::plugin::bindings::{NodeRef, NodeState};

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
        let concurrency = self.config().observe_concurrency.max(1);
        // Unordered, then sorted back: with `buffered`, one node timing out would hold
        // its slot's finished neighbours and starve the pool of new probes.
        let mut indexed: Vec<(usize, NodeState)> =
            futures::stream::iter(nodes.into_iter().enumerate())
                .map(|(i, (node, address))| async move { (i, self.probe(node, address).await) })
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

    async fn probe(&self, node: NodeRef, address: Option<String>) -> NodeState {
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
            state.error = Some(e.to_string());
            return state;
        }
        state.alive = true;
        match self.readiness(&address).await {
            Ok(ready) => {
                state.reachable = true;
                state.ready = ready;
            }
            Err(e) => {
                debug!(pod = %state.node.pod, address = %address, error = %e, "readiness probe failed");
                state.error = Some(e.to_string());
            }
        }
        state
    }
}
