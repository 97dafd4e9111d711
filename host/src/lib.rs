//! The k8ssandra operator host. See docs/ARCHITECTURE.md for the map of modules.

pub mod admission;
pub mod apply;
pub mod clientconfig;
pub mod clusters;
pub mod controller;
pub mod dataplane;
pub mod leader;
pub mod observe;
pub mod plugin;
pub mod replication;

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use kube::api::DynamicObject;

use controller::DataPlane;
use dataplane::{
    ExecutorConfig, ManagementApi, ManagementApiConfig, OperationExecutor, SecretData, SecretError,
};
use plugin::bindings::{NodeRef, NodeState, Operation, OperationResult};

/// The controller's view of the management API: observation and the operation executor.
pub struct ManagementDataPlane {
    executor: OperationExecutor,
    follower: dataplane::NodeFollower,
    /// Mutual TLS per pod (managementApiAuth.manual), resolved before each observation.
    tls: Arc<dataplane::TlsResolver>,
}

impl ManagementDataPlane {
    /// `completions` receives "policy|namespace/name" whenever an operation of that parent
    /// changes outcome, or a node its snapshot found unreachable changes state, so the
    /// parent is reconciled at once instead of on a timer.
    pub fn new(
        config: ManagementApiConfig,
        completions: tokio::sync::mpsc::UnboundedSender<String>,
        clusters: clusters::ClusterRegistry,
    ) -> Result<Self, dataplane::DataplaneError> {
        let base = config.clone();
        let api = ManagementApi::new(config)?;
        let tls = Arc::new(dataplane::TlsResolver::new(
            clusters.clone(),
            base,
            api.routes(),
        ));
        let follower = dataplane::NodeFollower::new(api.clone(), completions.clone());
        let medusa_routes = dataplane::MedusaRoutes::new(clusters.clone());
        let reaper_access = dataplane::ReaperAccess {
            clusters: clusters.clone(),
        };
        let cql_access = dataplane::CqlAccess {
            clusters: clusters.clone(),
        };
        let reader = move |cluster: String, namespace: String, name: String| {
            let clusters = clusters.clone();
            async move {
                let fail = |reason: String| SecretError {
                    cluster: cluster.clone(),
                    namespace: namespace.clone(),
                    name: name.clone(),
                    reason,
                };
                let client = clusters
                    .client(&cluster)
                    .ok_or_else(|| fail("cluster not known".into()))?;
                let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
                    kube::Api::namespaced(client, &namespace);
                let secret = api.get(&name).await.map_err(|e| fail(e.to_string()))?;
                let data: SecretData = secret
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect();
                Ok(data)
            }
        };
        let executor = OperationExecutor::new(
            api,
            Arc::new(reader),
            completions,
            ExecutorConfig::default(),
        );
        executor.set_medusa(dataplane::MedusaAccess {
            client: dataplane::medusa::MedusaClient::new(),
            targets: Arc::new(medusa_routes),
        });
        executor.set_reaper(reaper_access);
        executor.set_cql(cql_access);
        Ok(ManagementDataPlane {
            executor,
            follower,
            tls,
        })
    }

    /// Counters of every management-API call so far (probes and operations).
    pub fn stats(&self) -> dataplane::DataplaneStats {
        self.executor.api().stats()
    }

    /// Makes `/metrics` export the management-API counters of this data plane.
    pub fn export_metrics(&self, metrics: &observe::Metrics) {
        let api = self.executor.api().clone();
        metrics.export_dataplane(move || api.stats());
    }
}

impl DataPlane for ManagementDataPlane {
    fn observe(
        &self,
        parent: &str,
        pods: Vec<(NodeRef, Arc<DynamicObject>)>,
    ) -> BoxFuture<'static, Vec<NodeState>> {
        let api = self.executor.api().clone();
        let follower = self.follower.clone();
        let parent = parent.to_string();
        let tls = Arc::clone(&self.tls);
        Box::pin(async move {
            let mut nodes = Vec::with_capacity(pods.len());
            let mut known = Vec::with_capacity(pods.len());
            for (node, pod) in &pods {
                let address = pod
                    .data
                    .pointer("/status/podIP")
                    .and_then(|ip| ip.as_str())
                    .map(str::to_string);
                if let Some(a) = &address {
                    let facts = dataplane::pod_facts(&pod.data, pod.metadata.labels.as_ref());
                    known.push((node.clone(), a.clone(), facts));
                }
                nodes.push((node.clone(), address));
            }
            tls.know(known);
            tls.resolve(&nodes).await;
            let nodes = nodes
                .into_iter()
                .zip(&pods)
                .map(|((node, address), (_, pod))| (node, address, pod_version(pod)))
                .collect();
            let states = api.observe_pods(nodes).await;
            follower.follow(&parent, &states);
            states
        })
    }

    fn execute(
        &self,
        parent: &str,
        operations: Vec<Operation>,
        addresses: HashMap<String, String>,
    ) {
        self.executor.execute(parent, operations, |node| {
            addresses
                .get(&format!("{}/{}/{}", node.cluster, node.namespace, node.pod))
                .cloned()
        });
    }

    fn results(&self, parent: &str) -> Vec<OperationResult> {
        self.executor.results(parent)
    }

    fn forget(&self, parent: &str) {
        self.executor.forget(parent);
        self.follower.forget(parent);
    }
}

/// A pod's UID and resourceVersion: its management-API state moves only with a new one
/// (readiness is the kubelet's probe of the same API), so an answer at it can be reused.
fn pod_version(pod: &DynamicObject) -> Option<String> {
    let uid = pod.metadata.uid.as_deref()?;
    let rv = pod.metadata.resource_version.as_deref()?;
    Some(format!("{uid}/{rv}"))
}
