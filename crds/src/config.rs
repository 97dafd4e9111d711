//! `config.k8ssandra.io/v1beta1` ClientConfig: how to reach another Kubernetes cluster.

use k8s_openapi::api::core::v1::LocalObjectReference;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a ClientConfig.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "config.k8ssandra.io",
    version = "v1beta1",
    kind = "ClientConfig",
    plural = "clientconfigs",
    singular = "clientconfig",
    namespaced,
    status = "ClientConfigStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "A ClientConfig gives the operator access to another Kubernetes cluster, so that \
           datacenters of a K8ssandraCluster can run there (datacenters[].k8sContext names the \
           context). The operator picks up added, changed and removed ClientConfigs without a \
           restart."
)]
#[serde(rename_all = "camelCase")]
pub struct ClientConfigSpec {
    /// Context name datacenters refer to in k8sContext; the ClientConfig's own name when
    /// empty. It must also be a context of the kubeconfig.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_name: Option<String>,

    /// Secret in the same namespace whose `kubeconfig` key holds the kubeconfig of the remote
    /// cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_config_secret: Option<LocalObjectReference>,
}

/// Observed state of a ClientConfig (not in upstream's API, which has no status).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct ClientConfigStatus {
    /// `Ready`: whether the operator uses this ClientConfig; when it refuses one, the
    /// reason names the rule and the message the kubeconfig field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}

/// Condition type telling whether the operator uses a ClientConfig.
pub const CLIENT_CONFIG_READY: &str = "Ready";

/// Key of the Secret holding the kubeconfig.
pub const KUBECONFIG_SECRET_KEY: &str = "kubeconfig";

impl ClientConfig {
    /// The context name: spec.contextName, else metadata.name.
    pub fn context_name(&self) -> &str {
        self.spec
            .context_name
            .as_deref()
            .filter(|n| !n.is_empty())
            .or(self.metadata.name.as_deref())
            .unwrap_or_default()
    }
}

/// Every CRD of this module.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![crate::schema::crd::<ClientConfig>()]
}
