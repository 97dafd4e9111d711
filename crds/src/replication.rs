//! `replication.k8ssandra.io/v1alpha1` ReplicatedSecret: copies Secrets to other clusters.

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a ReplicatedSecret.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "replication.k8ssandra.io",
    version = "v1alpha1",
    kind = "ReplicatedSecret",
    plural = "replicatedsecrets",
    singular = "replicatedsecret",
    namespaced,
    status = "ReplicatedSecretStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "A ReplicatedSecret copies the Secrets of its namespace that match a selector to \
           other Kubernetes clusters (and keeps the copies up to date), so that every \
           datacenter of a multi-cluster deployment finds the credentials it needs."
)]
#[serde(rename_all = "camelCase")]
pub struct ReplicatedSecretSpec {
    /// Which Secrets to copy; every Secret of the namespace when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,

    /// Clusters (and namespaces) to copy the Secrets to. None when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_targets: Option<Vec<ReplicationTarget>>,

    /// Keep the copies in the target clusters when a target is removed from the list or the
    /// ReplicatedSecret is deleted. By default the operator deletes the copies it made (and
    /// only those); a copy or source annotated `replicatedresource.k8ssandra.io/orphan:
    /// "true"` is kept in any case. Not in upstream's API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_copies: Option<bool>,
}

/// One destination of the copies.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationTarget {
    /// Namespace in the target cluster; the ReplicatedSecret's namespace when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// Context name of the target cluster, as in a ClientConfig; the local cluster when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k8s_context_name: Option<String>,

    /// Prefix added to the names of the copies; same names as the originals when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_prefix: Option<String>,

    /// Labels removed from the copies (for example the label that selects them, to avoid
    /// copying copies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_labels: Option<Vec<String>>,

    /// Labels added to the copies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_labels: Option<BTreeMap<String, String>>,
}

/// Observed state of a ReplicatedSecret.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct ReplicatedSecretStatus {
    /// Replication result per target cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<ReplicationCondition>>,

    /// The copies the operator made, so that it deletes those (and only those) when their
    /// target or the ReplicatedSecret goes. Not in upstream's API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copies: Option<Vec<ReplicatedCopy>>,
}

/// One Secret the operator created in a target cluster.
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord,
)]
#[serde(rename_all = "camelCase")]
pub struct ReplicatedCopy {
    /// Context name of the target cluster; empty for the local cluster.
    #[serde(default)]
    pub cluster: String,
    /// Namespace of the copy.
    pub namespace: String,
    /// Name of the copy.
    pub name: String,
}

/// Condition type reporting the replication to one cluster.
pub const REPLICATION_DONE: &str = "Replication";

/// Replication state for one target cluster.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationCondition {
    /// Context name of the target cluster.
    pub cluster: String,

    /// Condition type; `Replication`.
    #[serde(rename = "type")]
    pub type_: String,

    /// `True` when the Secrets are up to date in that cluster, else `False` or `Unknown`.
    pub status: String,

    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,

    /// Why the status is not `True` (for example a Secret of that name that the operator
    /// did not create and so does not overwrite). Not in upstream's API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Every CRD of this module.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![crate::schema::crd::<ReplicatedSecret>()]
}
