//! The Medusa operation kinds of a plan (`medusa-*`, WIT 0.3.0), run against the `medusa`
//! container beside the target Cassandra node.
//!
//! Where to call is the host's business, never the policy's: the port is the one the pod's
//! `medusa` container names `grpc` (50051 when it names none, as upstream), and the client
//! certificate comes from the Secret the node's CassandraDatacenter names in
//! `medusa.k8ssandra.io/grpc-client-secret-name`. A backup is followed to its end here, so
//! its outcome reaches the policy like a management-API job's: `running(<backup>)` while
//! Medusa copies, then `succeeded` or `failed`. Every call has a deadline (the client's),
//! so a node that dies mid-call fails its operation instead of holding it for days.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Secret};
use k8ssandra_api::cassandra::CassandraDatacenter;
use k8ssandra_api::labels::DATACENTER_LABEL;
use kube::Api;
use serde::Serialize;

use super::medusa::{BackupMode, MedusaClient, MedusaStatus, MedusaTarget, MedusaTls};
use crate::clusters::ClusterRegistry;
use crate::plugin::bindings::{MedusaBackupMode, NodeRef};

/// The CassandraDatacenter annotation naming the Secret with the gRPC client certificate.
pub const CLIENT_SECRET_ANNOTATION: &str = "medusa.k8ssandra.io/grpc-client-secret-name";
const MEDUSA_CONTAINER: &str = "medusa";
const GRPC_PORT_NAME: &str = "grpc";
const DEFAULT_GRPC_PORT: i32 = 50051;

/// The future a [`MedusaTargets`] returns; the error is the message for `failed(..)`.
pub type TargetFuture = Pin<Box<dyn Future<Output = Result<MedusaTarget, String>> + Send>>;

/// Finds the Medusa service of a node. Supplied by the caller, who owns the clients.
pub trait MedusaTargets: Send + Sync + 'static {
    fn target(&self, node: &NodeRef, address: &str) -> TargetFuture;
}

impl<F, Fut> MedusaTargets for F
where
    F: Fn(NodeRef, String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<MedusaTarget, String>> + Send + 'static,
{
    fn target(&self, node: &NodeRef, address: &str) -> TargetFuture {
        Box::pin(self(node.clone(), address.to_string()))
    }
}

/// What the executor needs to run Medusa operations.
#[derive(Clone)]
pub struct MedusaAccess {
    pub client: MedusaClient,
    pub targets: Arc<dyn MedusaTargets>,
}

/// Reads pods, datacenters and Secrets of every known cluster to find a node's Medusa.
#[derive(Clone)]
pub struct MedusaRoutes {
    clusters: ClusterRegistry,
}

impl MedusaRoutes {
    pub fn new(clusters: ClusterRegistry) -> Self {
        MedusaRoutes { clusters }
    }

    async fn find(&self, node: NodeRef, address: String) -> Result<MedusaTarget, String> {
        let client = self
            .clusters
            .client(&node.cluster)
            .ok_or_else(|| format!("cluster {:?} is not reachable", node.cluster))?;
        let pods: Api<Pod> = Api::namespaced(client.clone(), &node.namespace);
        let pod = pods
            .get_opt(&node.pod)
            .await
            .map_err(|e| format!("reading pod {}/{}: {e}", node.namespace, node.pod))?
            .ok_or_else(|| format!("pod {}/{} no longer exists", node.namespace, node.pod))?;
        let port = grpc_port(&pod).ok_or_else(|| {
            format!(
                "pod {}/{} has no {MEDUSA_CONTAINER} container: Medusa is not enabled for its \
                 datacenter, or the pod still runs the template from before",
                node.namespace, node.pod
            )
        })?;
        let endpoint = if address.contains(':') {
            format!("[{address}]:{port}")
        } else {
            format!("{address}:{port}")
        };
        let dc = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(DATACENTER_LABEL))
            .cloned();
        let secret_name = match dc {
            Some(dc) => {
                let dcs: Api<CassandraDatacenter> =
                    Api::namespaced(client.clone(), &node.namespace);
                dcs.get_opt(&dc)
                    .await
                    .map_err(|e| {
                        format!("reading CassandraDatacenter {}/{dc}: {e}", node.namespace)
                    })?
                    .and_then(|dc| dc.metadata.annotations)
                    .and_then(|a| a.get(CLIENT_SECRET_ANNOTATION).cloned())
                    .filter(|name| !name.is_empty())
            }
            None => None,
        };
        let tls = match secret_name {
            None => None,
            Some(name) => {
                let secrets: Api<Secret> = Api::namespaced(client, &node.namespace);
                let secret = secrets
                    .get_opt(&name)
                    .await
                    .map_err(|e| format!("reading Secret {}/{name}: {e}", node.namespace))?
                    .ok_or_else(|| {
                        format!(
                            "Secret {}/{name}, named by {CLIENT_SECRET_ANNOTATION}, does not exist",
                            node.namespace
                        )
                    })?;
                Some(tls_from_secret(&secret, &node.namespace, &name)?)
            }
        };
        Ok(MedusaTarget { endpoint, tls })
    }
}

impl MedusaTargets for MedusaRoutes {
    fn target(&self, node: &NodeRef, address: &str) -> TargetFuture {
        let routes = self.clone();
        let (node, address) = (node.clone(), address.to_string());
        Box::pin(async move { routes.find(node, address).await })
    }
}

/// The port of the pod's `medusa` container named `grpc`, or upstream's default when the
/// container names none; None without a `medusa` container.
fn grpc_port(pod: &Pod) -> Option<i32> {
    let container = pod
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == MEDUSA_CONTAINER)?;
    Some(
        container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(GRPC_PORT_NAME))
            .map_or(DEFAULT_GRPC_PORT, |p| p.container_port),
    )
}

fn tls_from_secret(secret: &Secret, namespace: &str, name: &str) -> Result<MedusaTls, String> {
    let data = secret.data.as_ref();
    let key = |k: &str| {
        data.and_then(|d| d.get(k))
            .map(|v| v.0.clone())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("Secret {namespace}/{name} has no {k:?} key (the Medusa gRPC client certificate needs ca.crt, tls.crt and tls.key)"))
    };
    Ok(MedusaTls {
        ca_pem: key("ca.crt")?,
        cert_pem: key("tls.crt")?,
        key_pem: key("tls.key")?,
    })
}

/// The JSON of an outcome, in the field names the WIT documents.
pub(crate) fn json<T: Serialize>(value: &T) -> Result<String, String> {
    serde_json::to_string(value).map_err(|e| format!("encoding the Medusa answer: {e}"))
}

pub(crate) fn mode(mode: MedusaBackupMode) -> BackupMode {
    match mode {
        MedusaBackupMode::Differential => BackupMode::Differential,
        MedusaBackupMode::Full => BackupMode::Full,
    }
}

/// Whether a node's backup is over, and if so whether it succeeded.
pub(crate) fn finished(status: MedusaStatus) -> Option<bool> {
    match status {
        MedusaStatus::InProgress => None,
        MedusaStatus::Success => Some(true),
        MedusaStatus::Failed | MedusaStatus::Unknown => Some(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn pod(containers: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": containers},
        }))
        .unwrap()
    }

    #[test]
    fn the_port_is_the_medusa_containers_grpc_port() {
        let named = pod(serde_json::json!([
            {"name": "cassandra", "ports": [{"name": "grpc", "containerPort": 1}]},
            {"name": "medusa", "ports": [{"name": "other", "containerPort": 2}, {"name": "grpc", "containerPort": 50055}]},
        ]));
        assert_eq!(grpc_port(&named), Some(50055));
        let unnamed = pod(serde_json::json!([{"name": "medusa"}]));
        assert_eq!(grpc_port(&unnamed), Some(DEFAULT_GRPC_PORT));
        let none = pod(serde_json::json!([{"name": "cassandra"}]));
        assert_eq!(grpc_port(&none), None);
    }

    #[test]
    fn a_client_secret_missing_a_key_is_named() {
        let mut data = BTreeMap::new();
        data.insert("ca.crt".to_string(), ByteString(b"ca".to_vec()));
        data.insert("tls.crt".to_string(), ByteString(b"crt".to_vec()));
        let secret = Secret {
            data: Some(data),
            ..Default::default()
        };
        let err = tls_from_secret(&secret, "ns", "medusa-client").unwrap_err();
        assert!(err.contains("ns/medusa-client"), "{err}");
        assert!(err.contains("\"tls.key\""), "{err}");
    }

    #[test]
    fn only_success_is_a_successful_end() {
        assert_eq!(finished(MedusaStatus::InProgress), None);
        assert_eq!(finished(MedusaStatus::Success), Some(true));
        assert_eq!(finished(MedusaStatus::Failed), Some(false));
        assert_eq!(finished(MedusaStatus::Unknown), Some(false));
    }
}
