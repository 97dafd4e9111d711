//! The generic controller: one per loaded policy. It watches the policy's parent kind
//! (local cluster), its owned kinds (every cluster, by the ownership label) and the kinds
//! it reads, builds a snapshot per parent, calls the policy, and executes the plan.

pub mod queue;
pub mod store;

mod named;
mod reconcile;
mod seen;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use kube::api::DynamicObject;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::apply::{Discovery, Resolved};
use crate::clusters::{ClusterRegistry, LOCAL};
use crate::observe::{Health, Metrics};
use crate::plugin::bindings::{KindRef, NodeRef, NodeState, Operation, OperationResult};
use crate::plugin::{LoadedPolicy, PluginInfo, PolicyRuntime};
use queue::ParentKey;
use store::{Store, Touched};

/// What the controller needs from the data plane (the Cassandra management API). A trait,
/// so controller tests can run without Cassandra.
pub trait DataPlane: Send + Sync {
    /// Observes the nodes of the given pods (as the caches hold them) for `parent`
    /// ("policy|ns/name"), which is triggered again when a node found unreachable changes
    /// state.
    fn observe(
        &self,
        parent: &str,
        pods: Vec<(NodeRef, Arc<DynamicObject>)>,
    ) -> BoxFuture<'static, Vec<NodeState>>;
    /// Starts the operations of a plan that are not already running or done.
    /// `addresses` maps "cluster/namespace/pod" to the pod's IP.
    fn execute(&self, parent: &str, operations: Vec<Operation>, addresses: HashMap<String, String>);
    /// Outcomes recorded for a parent.
    fn results(&self, parent: &str) -> Vec<OperationResult>;
    /// Forgets a parent that is gone.
    fn forget(&self, parent: &str);
}

/// Settings shared by every controller.
#[derive(Clone)]
pub struct ControllerConfig {
    /// Watch only this namespace (in every cluster); None watches all namespaces.
    pub namespace: Option<String>,
    /// Parents reconciled at once, per policy.
    pub concurrency: usize,
    /// Every parent is reconciled at least this often, changes or not.
    pub resync: Duration,
    /// False in data-plane mode: the policies of control-plane kinds
    /// ([`CONTROL_PLANE_KINDS`]) get no controller.
    pub control_plane: bool,
}

/// Parent kinds only a control-plane operator reconciles: they span clusters, and a data
/// plane that reconciled one (a copy applied there by mistake, say) would fight the
/// control plane over the datacenters in its cluster.
/// Matched by API group and kind, so a later version of either stays control-plane only.
pub const CONTROL_PLANE_KINDS: &[(&str, &str)] = &[
    ("k8ssandra.io", "K8ssandraCluster"),
    ("control.k8ssandra.io", "K8ssandraTask"),
];

/// The names of the policies that get a controller: every base policy (decorators run
/// inside their base's controller), less those of control-plane kinds in data-plane mode.
pub fn controlled_policies<'a>(
    infos: impl IntoIterator<Item = &'a PluginInfo>,
    control_plane: bool,
) -> BTreeSet<String> {
    infos
        .into_iter()
        .filter(|info| info.decorates.is_none())
        .filter(|info| {
            control_plane
                || !CONTROL_PLANE_KINDS.iter().any(|(group, kind)| {
                    info.parent.api_version.split_once('/').map(|(g, _)| g) == Some(*group)
                        && info.parent.kind == *kind
                })
        })
        .map(|info| info.name.clone())
        .collect()
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            namespace: None,
            concurrency: 16,
            resync: Duration::from_secs(300),
            control_plane: true,
        }
    }
}

/// Everything a controller shares with the others.
#[derive(Clone)]
pub struct Shared {
    pub runtime: PolicyRuntime,
    pub clusters: ClusterRegistry,
    pub metrics: Metrics,
    pub discovery: Discovery,
    pub dataplane: Arc<dyn DataPlane>,
    pub config: ControllerConfig,
}

/// How often kinds that were not served are asked for again.
const KIND_RECHECK: Duration = Duration::from_secs(30);

/// Starts, restarts and stops one controller per policy as policies and clusters change.
pub struct Manager {
    shared: Shared,
    health: Health,
}

struct Running {
    hash: String,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Manager {
    pub fn new(shared: Shared, health: Health) -> Self {
        Manager { shared, health }
    }

    /// Runs until the process ends. Data-plane completions arrive on `completions` as
    /// "policy|namespace/name" and trigger that parent at once.
    pub async fn run(self, mut completions: mpsc::UnboundedReceiver<String>) {
        let mut policies_rx = self.shared.runtime.subscribe();
        let mut clusters_rx = self.shared.clusters.subscribe();
        let mut running: HashMap<String, (Running, queue::Trigger)> = HashMap::new();
        let mut known_epochs = cluster_epochs(&self.shared.clusters);
        self.sync(&mut running, true).await;
        // Asking again may wait on an unreachable cluster: never in this loop, which must
        // stay free for completions.
        let (appeared_tx, mut appeared_rx) = mpsc::unbounded_channel();
        let (discovery, clusters) = (self.shared.discovery.clone(), self.shared.clusters.clone());
        let _recheck = AbortOnDrop(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(KIND_RECHECK) => {}
                    _ = discovery.found_missing() => {}
                }
                if discovery.appeared(|name| clusters.client(name)).await
                    && appeared_tx.send(()).is_err()
                {
                    return;
                }
            }
        }));
        loop {
            tokio::select! {
                Some(()) = appeared_rx.recv() => {
                    // A kind a policy owns or reads is served now (its CRD was installed
                    // after the operator started): watches are set up when a controller
                    // starts, so restart them. Unchanged plans write nothing.
                    running.clear();
                    self.sync(&mut running, false).await;
                }
                changed = policies_rx.changed() => {
                    if changed.is_err() { break; }
                    self.sync(&mut running, false).await;
                }
                changed = clusters_rx.changed() => {
                    if changed.is_err() { break; }
                    let now = cluster_epochs(&self.shared.clusters);
                    if now != known_epochs {
                        for name in now.keys().chain(known_epochs.keys()) {
                            if now.get(name) != known_epochs.get(name) {
                                self.shared.discovery.forget_cluster(name);
                            }
                        }
                        known_epochs = now;
                        // Watches are bound to clients: restart every controller so each
                        // watches exactly the clusters that exist now.
                        running.clear();
                        self.sync(&mut running, false).await;
                    }
                }
                Some(parent) = completions.recv() => {
                    if let Some((policy, rest)) = parent.split_once('|')
                        && let Some((ns, name)) = rest.split_once('/')
                        && let Some((_, trigger)) = running.get(policy) {
                        trigger.send((ns.to_string(), name.to_string()));
                    }
                }
            }
        }
    }

    async fn sync(&self, running: &mut HashMap<String, (Running, queue::Trigger)>, first: bool) {
        let policies = self.shared.runtime.policies();
        let selected = controlled_policies(
            policies.iter().map(|p| &p.info),
            self.shared.config.control_plane,
        );
        let mut wanted: BTreeMap<String, Arc<LoadedPolicy>> = BTreeMap::new();
        for p in &policies {
            if selected.contains(&p.info.name) {
                wanted.insert(p.info.name.clone(), p.clone());
            } else if p.info.decorates.is_none() && first {
                tracing::info!(policy = %p.info.name, parent = %p.info.parent.kind, "data-plane mode: no controller for a control-plane kind");
            }
        }
        // A decorator changing changes its base policy's plans: restart the base too.
        let decorator_hash: BTreeMap<String, String> = policies
            .iter()
            .filter_map(|p| p.info.decorates.clone().map(|base| (base, p.hash.clone())))
            .fold(BTreeMap::new(), |mut m, (base, h)| {
                m.entry(base).or_insert_with(String::new).push_str(&h);
                m
            });
        running.retain(|name, (r, _)| {
            wanted.get(name).is_some_and(|p| {
                r.hash
                    == format!(
                        "{}{}",
                        p.hash,
                        decorator_hash.get(name).cloned().unwrap_or_default()
                    )
            })
        });
        let mut initial = Vec::new();
        for (name, policy) in wanted {
            if running.contains_key(&name) {
                continue;
            }
            let hash = format!(
                "{}{}",
                policy.hash,
                decorator_hash.get(&name).cloned().unwrap_or_default()
            );
            tracing::info!(policy = %name, parent = %policy.info.parent.kind, "starting controller");
            let (trigger, tasks, synced) =
                PolicyController::start(self.shared.clone(), policy).await;
            initial.push(synced);
            running.insert(name, (Running { hash, tasks }, trigger));
        }
        if first {
            // Ready once every controller started at start-up has filled its caches: before
            // that a reconcile would see no children and a rollout would route to a
            // replica that cannot act yet.
            let health = self.health.clone();
            tokio::spawn(async move {
                for mut synced in initial {
                    // An Err means the controller is gone (a reload replaced it): nothing
                    // to wait for.
                    let _ = synced.wait_for(|s| *s).await;
                }
                tracing::info!("initial cache sync done; ready");
                health.set_ready(true);
            });
        }
    }
}

/// Aborts the task when dropped (when the manager's loop ends).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn cluster_epochs(clusters: &ClusterRegistry) -> BTreeMap<String, u64> {
    clusters.all().into_iter().map(|(n, _, e)| (n, e)).collect()
}

/// Caches of one watched kind, per cluster.
pub(crate) struct Watched {
    pub kind: KindRef,
    pub stores: BTreeMap<String, (Arc<Store>, Resolved)>,
    /// For read kinds: only objects carrying the parent's labels belong to a parent.
    pub per_parent: bool,
}

pub(crate) struct PolicyController {
    pub shared: Shared,
    pub policy: Arc<LoadedPolicy>,
    pub parent: Resolved,
    pub parents: Arc<Store>,
    pub owned: Vec<Watched>,
    pub reads: Vec<Watched>,
    /// Reads by name (`ref:` selectors): fetched for each snapshot, never watched.
    pub named_reads: Vec<named::NamedRead>,
    pub writer: crate::apply::Writer,
    pub trigger: queue::Trigger,
    pub memory: reconcile::Memory,
}

impl PolicyController {
    /// Starts the watches and the queue of one policy. Never fails: a kind that cannot be
    /// resolved yet (its CRD not installed) is retried in the background.
    ///
    /// The receiver turns true once the caches of the local cluster have their first full
    /// list, or when the controller cannot start at its first attempt: readiness must not
    /// wait for a CRD that may never be installed. Remote clusters are not waited for: an
    /// unreachable one must not keep the operator unready.
    async fn start(
        shared: Shared,
        policy: Arc<LoadedPolicy>,
    ) -> (
        queue::Trigger,
        Vec<JoinHandle<()>>,
        tokio::sync::watch::Receiver<bool>,
    ) {
        let (trigger, rx) = queue::channel();
        let (synced_tx, synced_rx) = tokio::sync::watch::channel(false);
        let t = trigger.clone();
        let handle = tokio::spawn(async move {
            let mut delay = Duration::from_millis(200);
            let (controller, events, mut tasks) = loop {
                match Self::build(shared.clone(), policy.clone(), t.clone()).await {
                    Ok(c) => break c,
                    Err(error) => {
                        tracing::warn!(policy = %policy.info.name, %error, "controller cannot start yet; retrying");
                        synced_tx.send_replace(true);
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(30));
                    }
                }
            };
            let local: Vec<Arc<Store>> = std::iter::once(controller.parents.clone())
                .chain(
                    controller
                        .owned
                        .iter()
                        .chain(&controller.reads)
                        .filter_map(|w| w.stores.get(LOCAL).map(|(s, _)| s.clone())),
                )
                .collect();
            tasks.push(tokio::spawn(async move {
                // Stores have no sync notification; this runs once, at start-up.
                while !local.iter().all(|s| s.is_synced()) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                synced_tx.send_replace(true);
            }));
            controller.run_inner(rx, events, tasks).await;
        });
        (trigger, vec![handle], synced_rx)
    }

    async fn build(
        shared: Shared,
        policy: Arc<LoadedPolicy>,
        trigger: queue::Trigger,
    ) -> Result<
        (
            Arc<Self>,
            mpsc::UnboundedReceiver<Touched>,
            Vec<JoinHandle<()>>,
        ),
        crate::apply::ApplyError,
    > {
        let local = shared.clusters.client(LOCAL).ok_or_else(|| {
            crate::apply::ApplyError::UnknownCluster {
                cluster: LOCAL.into(),
            }
        })?;
        let info = &policy.info;
        let parent = shared
            .discovery
            .resolve(LOCAL, &local, &info.parent.api_version, &info.parent.kind)
            .await?;
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        let namespace = shared.config.namespace.clone();

        let parents = Arc::new(Store::default());
        tasks.push(tokio::spawn(store::run_watch(
            LOCAL.to_string(),
            local.clone(),
            parent.resource.clone(),
            if parent.namespaced {
                namespace.clone()
            } else {
                None
            },
            None,
            parents.clone(),
            events_tx.clone(),
            shared.clusters.clone(),
        )));

        // Only this operator's children: another operator (a data plane) may run the same
        // policy for parents of its own cluster.
        let owner_selector = format!(
            "{}={},{}={}",
            reconcile::POLICY_LABEL,
            info.name,
            reconcile::PARENT_CLUSTER_LABEL,
            shared.clusters.local_id()
        );
        let mut owned = Vec::new();
        for kind in &info.owns {
            let mut stores = BTreeMap::new();
            for (cluster, client, _) in shared.clusters.all() {
                // A cluster that doesn't serve the kind (yet) is skipped, not fatal: the
                // rest of the policy's work goes on. An optional kind (a ServiceMonitor
                // without the Prometheus Operator) is the policy's to notice and leave out
                // of its plans; a remote cluster gets watched after the next cluster change.
                let resolved = match shared
                    .discovery
                    .resolve(&cluster, &client, &kind.api_version, &kind.kind)
                    .await
                {
                    Ok(resolved) => resolved,
                    Err(error) => {
                        if cluster == LOCAL {
                            tracing::warn!(policy = %info.name, kind = %kind.kind, %error,
                                "owned kind not served; its objects are neither watched nor pruned");
                        }
                        continue;
                    }
                };
                let store = Arc::new(Store::default());
                tasks.push(tokio::spawn(store::run_watch(
                    cluster.clone(),
                    client,
                    resolved.resource.clone(),
                    if resolved.namespaced {
                        namespace.clone()
                    } else {
                        None
                    },
                    Some(owner_selector.clone()),
                    store.clone(),
                    events_tx.clone(),
                    shared.clusters.clone(),
                )));
                stores.insert(cluster, (store, resolved));
            }
            owned.push(Watched {
                kind: kind.clone(),
                stores,
                per_parent: true,
            });
        }

        let mut reads = Vec::new();
        let mut named_reads = Vec::new();
        for spec in &info.reads {
            if let Some(read) = named::NamedRead::parse(spec) {
                named_reads.push(read);
                continue;
            }
            let sensitive = matches!(spec.kind.kind.as_str(), "Secret" | "Pod" | "Event")
                && spec.kind.api_version == "v1";
            if sensitive && spec.selector.trim().is_empty() {
                tracing::error!(policy = %info.name, kind = %spec.kind.kind,
                    "refusing an unselected watch of a high-volume kind; give the read a label selector");
                continue;
            }
            let mut stores = BTreeMap::new();
            for (cluster, client, _) in shared.clusters.all() {
                if !spec.all_clusters && cluster != LOCAL {
                    continue;
                }
                let Ok(resolved) = shared
                    .discovery
                    .resolve(&cluster, &client, &spec.kind.api_version, &spec.kind.kind)
                    .await
                else {
                    continue;
                };
                if !resolved.namespaced && namespace.is_some() {
                    // A namespace-scoped operator has no permission on cluster-scoped
                    // kinds (its chart installs a Role only): the policy sees none.
                    tracing::info!(policy = %info.name, kind = %spec.kind.kind,
                        "cluster-scoped read skipped by a namespace-scoped operator");
                    stores.insert(cluster, (Arc::new(Store::synced_empty()), resolved));
                    continue;
                }
                let store = Arc::new(Store::default());
                tasks.push(tokio::spawn(store::run_watch(
                    cluster.clone(),
                    client,
                    resolved.resource.clone(),
                    if resolved.namespaced {
                        namespace.clone()
                    } else {
                        None
                    },
                    Some(spec.selector.clone()),
                    store.clone(),
                    events_tx.clone(),
                    shared.clusters.clone(),
                )));
                stores.insert(cluster, (store, resolved));
            }
            reads.push(Watched {
                kind: spec.kind.clone(),
                stores,
                per_parent: spec.per_parent,
            });
        }

        let writer =
            crate::apply::Writer::new(&info.name, shared.metrics.clone(), shared.discovery.clone());
        let controller = Arc::new(PolicyController {
            shared,
            policy,
            parent,
            parents,
            owned,
            reads,
            named_reads,
            writer,
            trigger,
            memory: reconcile::Memory::default(),
        });
        Ok((controller, events_rx, tasks))
    }

    async fn run_inner(
        self: Arc<Self>,
        rx: mpsc::UnboundedReceiver<ParentKey>,
        mut events: mpsc::UnboundedReceiver<Touched>,
        tasks: Vec<JoinHandle<()>>,
    ) {
        struct AbortAll(Vec<JoinHandle<()>>);
        impl Drop for AbortAll {
            fn drop(&mut self) {
                for t in &self.0 {
                    t.abort();
                }
            }
        }
        let _guard = AbortAll(tasks);
        let this = self.clone();
        let queue = tokio::spawn(queue::run(
            rx,
            self.trigger.clone(),
            self.shared.config.concurrency,
            move |key| {
                let this = this.clone();
                async move { this.reconcile(key).await }
            },
        ));
        let _queue_guard = AbortAll(vec![queue]);
        let resync = self.clone();
        let _resync_guard = AbortAll(vec![tokio::spawn(async move {
            let mut tick = tokio::time::interval(resync.shared.config.resync);
            tick.tick().await;
            loop {
                tick.tick().await;
                for p in resync.parents.list() {
                    resync.trigger.send(parent_key(&p));
                }
            }
        })]);
        while let Some(touched) = events.recv().await {
            for key in self.parents_of(&touched) {
                self.trigger.send(key);
            }
        }
    }

    /// Which parents an object change concerns.
    fn parents_of(&self, touched: &Touched) -> Vec<ParentKey> {
        let obj = &touched.object;
        let kind = obj
            .types
            .as_ref()
            .map(|t| t.kind.as_str())
            .unwrap_or_default();
        let api_version = obj
            .types
            .as_ref()
            .map(|t| t.api_version.as_str())
            .unwrap_or_default();
        if touched.cluster == LOCAL
            && kind == self.parent.resource.kind
            && api_version == self.parent.resource.api_version
        {
            return vec![parent_key(obj)];
        }
        let labels = obj.metadata.labels.clone().unwrap_or_default();
        if let Some(key) = reconcile::parent_from_labels(
            &labels,
            &self.parent.resource.kind,
            self.shared.clusters.local_id(),
        ) {
            return vec![key];
        }
        // A shared read object (a ClientConfig, say) may concern every parent of its namespace.
        let ns = obj.metadata.namespace.clone().unwrap_or_default();
        self.parents
            .list()
            .iter()
            .filter(|p| ns.is_empty() || p.metadata.namespace.as_deref() == Some(ns.as_str()))
            .map(|p| parent_key(p))
            .collect()
    }
}

pub(crate) fn parent_key(obj: &kube::api::DynamicObject) -> ParentKey {
    (
        obj.metadata.namespace.clone().unwrap_or_default(),
        obj.metadata.name.clone().unwrap_or_default(),
    )
}

#[cfg(test)]
mod mode_tests {
    use super::*;

    fn info(name: &str, api_version: &str, kind: &str, decorates: Option<&str>) -> PluginInfo {
        PluginInfo {
            name: name.into(),
            version: "0.1.0".into(),
            parent: KindRef {
                api_version: api_version.into(),
                kind: kind.into(),
            },
            owns: vec![],
            reads: vec![],
            observe_pods: None,
            decorates: decorates.map(Into::into),
        }
    }

    fn builtins() -> Vec<PluginInfo> {
        vec![
            info(
                "cassandra-datacenter",
                "cassandra.datastax.com/v1beta1",
                "CassandraDatacenter",
                None,
            ),
            info(
                "cassandra-task",
                "control.k8ssandra.io/v1alpha1",
                "CassandraTask",
                None,
            ),
            info(
                "stargate",
                "stargate.k8ssandra.io/v1alpha1",
                "Stargate",
                None,
            ),
            info(
                "k8ssandra-cluster",
                "k8ssandra.io/v1alpha1",
                "K8ssandraCluster",
                None,
            ),
            info(
                "k8ssandra-task",
                "control.k8ssandra.io/v1alpha1",
                "K8ssandraTask",
                None,
            ),
            // A later version of a control-plane kind is still control-plane only.
            info("kc-next", "k8ssandra.io/v1", "K8ssandraCluster", None),
            info(
                "org-labels",
                "cassandra.datastax.com/v1beta1",
                "CassandraDatacenter",
                Some("cassandra-datacenter"),
            ),
        ]
    }

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn data_plane_mode_runs_no_control_plane_kind() {
        let infos = builtins();
        assert_eq!(
            controlled_policies(&infos, false),
            names(&["cassandra-datacenter", "cassandra-task", "stargate"])
        );
    }

    #[test]
    fn control_plane_mode_runs_every_base_policy() {
        let infos = builtins();
        assert_eq!(
            controlled_policies(&infos, true),
            names(&[
                "cassandra-datacenter",
                "cassandra-task",
                "stargate",
                "k8ssandra-cluster",
                "k8ssandra-task",
                "kc-next",
            ])
        );
    }
}
