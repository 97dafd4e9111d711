//! Container image coordinates, shared by Cassandra, Reaper, Stargate and Medusa settings.

use k8s_openapi::api::core::v1::LocalObjectReference;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A container image split into registry, repository, name and tag, so that one part (say
/// the registry of an air-gapped mirror) can be changed without repeating the rest.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    /// Registry host, such as `docker.io` (used when empty) or `registry.example.com:5000`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,

    /// Repository (organisation) inside the registry, such as `k8ssandra`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,

    /// Image name inside the repository, such as `cass-management-api`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,

    /// Image tag; `latest` when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "latest"))]
    pub tag: Option<String>,

    /// When the kubelet pulls the image: `Always`, `IfNotPresent` or `Never`. When empty,
    /// `Always` for the `latest` tag and `IfNotPresent` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["Always", "IfNotPresent", "Never"]))]
    pub pull_policy: Option<String>,

    /// Secret holding the credentials for a private registry (a `kubernetes.io/dockerconfigjson`
    /// Secret in the pod's namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_secret_ref: Option<LocalObjectReference>,
}

impl Image {
    /// The full image reference, with the defaults applied (`docker.io`, `latest`).
    pub fn reference(&self) -> String {
        let registry = self
            .registry
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or("docker.io");
        let tag = self
            .tag
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or("latest");
        let name = self.name.as_deref().unwrap_or_default();
        match self.repository.as_deref().filter(|s| !s.is_empty()) {
            Some(repo) => format!("{registry}/{repo}/{name}:{tag}"),
            None => format!("{registry}/{name}:{tag}"),
        }
    }

    /// The pull policy with its default applied: `Always` for `latest`, else `IfNotPresent`.
    pub fn effective_pull_policy(&self) -> &str {
        match self.pull_policy.as_deref().filter(|s| !s.is_empty()) {
            Some(policy) => policy,
            None if self
                .tag
                .as_deref()
                .is_none_or(|t| t.is_empty() || t == "latest") =>
            {
                "Always"
            }
            None => "IfNotPresent",
        }
    }
}
