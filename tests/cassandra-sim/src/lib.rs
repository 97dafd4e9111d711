//! A simulated Cassandra management API for every Cassandra pod of one or more Kubernetes
//! clusters.
//!
//! One [`Simulator`] plays the management API (port 8080 by default) on the address of each pod
//! labelled `cassandra.datastax.com/cluster`, keeps one ring per Cassandra cluster name across
//! all Kubernetes clusters, sets the pods' readiness like a kubelet would, records what the
//! operator asked for ([`SimHandle::history`]) and which of Cassandra's rules it broke
//! ([`SimHandle::violations`]), logs every management-API request ([`SimHandle::requests`]),
//! and takes faults. A control API ([`SimClient`]) shows and steers the same from another
//! process.
//!
//! Pods come from Kubernetes watches (the clients given to [`Simulator::start`]) and/or from
//! the caller ([`SimHandle::upsert_pod`]), which is how the tests run without Kubernetes.

mod client;
mod control;
mod core;
pub mod cql;
pub mod data;
mod error;
mod kube_source;
pub mod medusa;
pub mod medusa_store;
pub mod metrics;
mod mgmt;
pub mod model;
pub mod reaper;
mod tables;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use client::SimClient;
pub use error::SimError;
pub use kube_source::{
    CONFIG_CONTAINER, FIELD_MANAGER, clients_from_kubeconfig, config_secret_ref, pod_info,
    pod_info_with_client,
};
pub use model::*;

use crate::core::Core;

/// How to start a [`Simulator`].
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Port of the management API on every pod address (8080 in Kubernetes).
    pub mgmt_port: u16,
    /// Where the control API listens; None for none. Port 0 picks a free one.
    pub control_addr: Option<SocketAddr>,
    pub config: SimConfig,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            mgmt_port: 8080,
            control_addr: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            config: SimConfig::default(),
        }
    }
}

/// Entry point; see [`Simulator::start`].
pub struct Simulator;

impl Simulator {
    /// Starts serving: a pod watch and a readiness patcher per `(context, client)`, the
    /// listener manager, and the control API.
    pub async fn start(
        opts: SimOptions,
        clients: Vec<(String, kube::Client)>,
    ) -> Result<SimHandle, SimError> {
        let (kick_tx, kick_rx) = mpsc::unbounded_channel();
        let core = Core::new(opts.config.clone(), opts.mgmt_port, kick_tx.clone());
        let cancel = CancellationToken::new();
        let mut tasks = Vec::new();

        tasks.push(tokio::spawn(mgmt::run_listeners(
            Arc::clone(&core),
            kick_rx,
            kick_tx,
            cancel.clone(),
        )));

        tasks.push(tokio::spawn(reaper::run(Arc::clone(&core), cancel.clone())));

        tasks.push(tokio::spawn(core::run_prober(
            Arc::clone(&core),
            cancel.clone(),
        )));

        let mut control_addr = None;
        if let Some(addr) = opts.control_addr {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| SimError::BindControl { addr, source })?;
            let local = listener
                .local_addr()
                .map_err(|source| SimError::BindControl { addr, source })?;
            control_addr = Some(local);
            let app = control::router(Arc::clone(&core));
            let c = cancel.clone();
            tasks.push(tokio::spawn(async move {
                let served = axum::serve(listener, app)
                    .with_graceful_shutdown(async move { c.cancelled().await })
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "control API stopped");
                }
            }));
        }

        for (context, client) in clients {
            let (tx, rx) = mpsc::unbounded_channel();
            core.add_ready_sink(&context, tx);
            tasks.push(tokio::spawn(kube_source::patch_readiness(
                Arc::clone(&core),
                client.clone(),
                rx,
                cancel.clone(),
            )));
            tasks.push(tokio::spawn(kube_source::watch_datacenters(
                Arc::clone(&core),
                context.clone(),
                client.clone(),
                cancel.clone(),
            )));
            tasks.push(tokio::spawn(reaper::watch_pods(
                Arc::clone(&core),
                context.clone(),
                client.clone(),
                cancel.clone(),
            )));
            tasks.push(tokio::spawn(kube_source::watch_pods(
                Arc::clone(&core),
                context,
                client,
                cancel.clone(),
            )));
        }

        Ok(SimHandle {
            core,
            cancel,
            tasks,
            control_addr,
        })
    }
}

/// A running simulator. Dropping it stops it too; [`SimHandle::shutdown`] waits for that.
pub struct SimHandle {
    core: Arc<Core>,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    control_addr: Option<SocketAddr>,
}

impl SimHandle {
    /// Address of the control API, if it has one.
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control_addr
    }

    /// A client of this simulator's control API.
    pub fn client(&self) -> Option<SimClient> {
        self.control_addr
            .map(|a| SimClient::new(format!("http://{a}")))
    }

    /// Port of the management API on each pod address.
    pub fn mgmt_port(&self) -> u16 {
        self.core.mgmt_port
    }

    /// Adds or updates a pod, as a watch event would.
    pub fn upsert_pod(&self, pod: PodInfo) {
        self.core.upsert_pod(pod);
    }

    /// Removes a pod: its listener closes, its node stays in the ring as DOWN.
    pub fn remove_pod(&self, key: &PodKey) {
        self.core.remove_pod(key);
    }

    /// Feeds a pod event.
    pub fn apply(&self, event: PodEvent) {
        self.core.apply(event);
    }

    pub fn state(&self) -> SimState {
        self.core.state()
    }

    pub fn history(&self) -> Vec<HistoryEntry> {
        self.core.history()
    }

    /// The simulated Medusa storage: backups per cluster, faults, restore preparations.
    pub fn medusa(&self) -> &medusa::MedusaStore {
        &self.core.medusa
    }

    /// The simulated Reapers: pods fed by hand, registrations, schedules, runs, repair
    /// sessions, faults.
    pub fn reaper(&self) -> &reaper::ReaperStore {
        &self.core.reaper
    }

    /// Creates a repair schedule in a Reaper storage as someone would in Reaper's UI.
    pub fn reaper_schedule_by_hand(
        &self,
        storage: &str,
        cluster: &str,
        keyspace: &str,
        owner: &str,
        days_between: u32,
    ) -> Result<reaper::SimSchedule, String> {
        self.core.reaper.create_schedule_by_hand(
            &self.core,
            storage,
            cluster,
            keyspace,
            owner,
            days_between,
        )
    }

    pub fn violations(&self) -> Vec<Violation> {
        self.core.violations()
    }

    /// The latest management-API requests, oldest first (see [`RequestEntry`]).
    pub fn requests(&self) -> Vec<RequestEntry> {
        self.core.requests()
    }

    /// Sets, clears faults or wipes a node; see [`FaultRequest`].
    pub fn set_fault(&self, req: &FaultRequest) -> Result<(), SimError> {
        self.core.set_fault(req).map_err(SimError::FaultTarget)
    }

    /// Sets what `<cluster>-<dc>-additional-seed-service` resolves to in a namespace of a
    /// context, as a CassandraDatacenter's `spec.additionalSeeds` would.
    pub fn set_additional_seeds(
        &self,
        context: &str,
        namespace: &str,
        service: &str,
        ips: Vec<String>,
    ) {
        self.core
            .set_additional_seeds(context, namespace, service, ips);
    }

    /// Creates a user keyspace as a test would through cqlsh.
    /// Every node of `cluster` now holds `version` in `keyspace.table` (a test's "state A").
    pub fn write_data(&self, cluster: &str, keyspace: &str, table: &str, version: &str) {
        self.core.write_data(&data::DataWrite {
            cluster: cluster.into(),
            keyspace: keyspace.into(),
            table: table.into(),
            version: version.into(),
        });
    }

    /// Each node's data in `cluster` by pod (`namespace/name`), tables as `keyspace.table`.
    pub fn data(
        &self,
        cluster: &str,
    ) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> {
        self.core.data(cluster)
    }

    pub fn create_keyspace(&self, req: &KeyspaceRequest) {
        self.core.create_user_keyspace(req);
    }

    pub fn config(&self) -> SimConfig {
        self.core.config()
    }

    pub fn update_config(&self, update: &ConfigUpdate) -> SimConfig {
        self.core.update_config(update)
    }

    /// Stops every task and closes every listener.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
        for t in &self.tasks {
            t.abort();
        }
    }
}
