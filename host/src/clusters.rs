//! The Kubernetes clusters the host talks to: the local one (named "") plus one per
//! remote context. Entries can be added, replaced and removed at run time; every change
//! bumps a generation that controllers watch, so no restart is ever needed.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use kube::Client;
use tokio::sync::watch;

use crate::plugin::bindings::ClusterState;

/// Name of the cluster the operator runs in (or its kubeconfig points at).
pub const LOCAL: &str = "";

#[derive(Clone)]
struct Entry {
    client: Client,
    reachable: bool,
    message: Option<String>,
    /// Changes whenever the client is replaced, so watches restart with the new one.
    epoch: u64,
}

#[derive(Clone)]
pub struct ClusterRegistry {
    entries: Arc<RwLock<BTreeMap<String, Entry>>>,
    changes: Arc<watch::Sender<u64>>,
    local_id: Arc<str>,
}

/// A stable identity of a Kubernetes cluster: the UID of its `kube-system` namespace
/// (what most tools use), or, when that can't be read, a hash of the API server's URL.
/// Children carry their parent's cluster identity, so an operator never mistakes another
/// operator's children (same names, another cluster's parent) for orphans.
pub async fn cluster_id(client: &Client, server_url: &str) -> String {
    use k8s_openapi::api::core::v1::Namespace;
    use sha2::{Digest, Sha256};
    match kube::Api::<Namespace>::all(client.clone())
        .get("kube-system")
        .await
    {
        Ok(ns) if ns.metadata.uid.is_some() => ns.metadata.uid.unwrap_or_default(),
        _ => hex::encode(&Sha256::digest(server_url.as_bytes())[..16]),
    }
}

impl ClusterRegistry {
    /// `local_id` is the local cluster's [`cluster_id`].
    pub fn new(local: Client, local_id: &str) -> Self {
        let (tx, _rx) = watch::channel(0);
        let registry = ClusterRegistry {
            entries: Arc::new(RwLock::new(BTreeMap::new())),
            changes: Arc::new(tx),
            local_id: Arc::from(local_id),
        };
        registry.insert(LOCAL, local);
        registry
    }

    /// Identity of the cluster this operator's parents live in.
    pub fn local_id(&self) -> &str {
        &self.local_id
    }

    fn bump(&self) {
        self.changes.send_modify(|g| *g += 1);
    }

    /// Adds or replaces a cluster's client.
    pub fn insert(&self, name: &str, client: Client) {
        {
            let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
            let epoch = entries.get(name).map_or(0, |e| e.epoch + 1);
            entries.insert(
                name.to_string(),
                Entry {
                    client,
                    reachable: true,
                    message: None,
                    epoch,
                },
            );
        }
        self.bump();
    }

    pub fn remove(&self, name: &str) {
        let removed = self
            .entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
            .is_some();
        if removed {
            self.bump();
        }
    }

    pub fn client(&self, name: &str) -> Option<Client> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .map(|e| e.client.clone())
    }

    /// (name, client, epoch) of every cluster.
    pub fn all(&self) -> Vec<(String, Client, u64)> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(n, e)| (n.clone(), e.client.clone(), e.epoch))
            .collect()
    }

    /// Records whether a cluster answered; returns true when this changed its state.
    pub fn set_reachable(&self, name: &str, reachable: bool, message: Option<String>) -> bool {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        match entries.get_mut(name) {
            Some(e) if e.reachable != reachable => {
                e.reachable = reachable;
                e.message = message;
                true
            }
            Some(e) => {
                if !reachable {
                    e.message = message;
                }
                false
            }
            None => false,
        }
    }

    pub fn is_reachable(&self, name: &str) -> bool {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .is_some_and(|e| e.reachable)
    }

    pub fn states(&self) -> Vec<ClusterState> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(n, e)| ClusterState {
                name: n.clone(),
                reachable: e.reachable,
                message: e.message.clone(),
            })
            .collect()
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}
