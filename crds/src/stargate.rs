//! Stargate (`stargate.k8ssandra.io/v1alpha1`): a data gateway (CQL, REST, GraphQL and
//! Document APIs) running as coordinator-only nodes next to a Cassandra datacenter.
//! Deprecated upstream; kept so that existing manifests keep working.
//!
//! Settings nest in three levels, each one adding to the previous:
//! [`StargateTemplate`] (the pod settings), [`StargateClusterTemplate`] (plus `size`, the
//! `spec.stargate` of a K8ssandraCluster) and [`StargateDatacenterTemplate`] (plus per-rack
//! overrides, the `stargate` of a K8ssandraCluster datacenter). The standalone [`Stargate`]
//! resource is a datacenter template bound to one CassandraDatacenter.

// kube's `printcolumn(...)` entries repeat `type_ = "..."`, which this lint mistakes for
// duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, LocalObjectReference, Probe, ResourceRequirements, Toleration,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::encryption::Stores;
use crate::images::Image;
use crate::k8ssandra::merge_json;
use crate::meta::ResourceMeta;
use crate::quantity::{bytes_quantity, quantity_bytes};
use crate::reaper::SecretsProvider;
use crate::telemetry::TelemetrySpec;

/// Label set on every object the operator creates for a Stargate; its value is the
/// Stargate name.
pub const STARGATE_LABEL: &str = "k8ssandra.io/stargate";

/// Label selecting the pods of one Stargate Deployment; its value is the Deployment name.
pub const STARGATE_DEPLOYMENT_LABEL: &str = "k8ssandra.io/stargate-deployment";

/// JVM heap size of Stargate when `heapSize` is not set.
pub const DEFAULT_HEAP_SIZE: &str = "256Mi";

/// Keyspace holding the tokens of Stargate's `Table` authentication.
pub const AUTH_KEYSPACE: &str = "data_endpoint_auth";

/// Table of [`AUTH_KEYSPACE`] holding the tokens.
pub const AUTH_TABLE: &str = "token";

/// Partition key of [`AUTH_TABLE`]: (name, CQL type).
pub const AUTH_TABLE_KEY: [(&str, &str); 1] = [("auth_token", "uuid")];

/// Regular columns of [`AUTH_TABLE`]: (name, CQL type).
pub const AUTH_TABLE_COLUMNS: [(&str, &str); 2] =
    [("username", "text"), ("created_timestamp", "int")];

/// Default image tag of every Stargate image.
pub const DEFAULT_TAG: &str = "v1.0.77";

/// Name of the Stargate object a K8ssandraCluster creates for one datacenter.
pub fn resource_name(cluster: &str, dc: &str) -> String {
    crate::names::cleanup_for_kubernetes(&format!("{cluster}-{dc}-stargate"))
}

/// Name of the Service in front of a datacenter's Stargate pods.
pub fn service_name(cluster: &str, dc: &str) -> String {
    crate::names::cleanup_for_kubernetes(&format!("{cluster}-{dc}-stargate-service"))
}

/// Name of the Stargate Deployment of one rack.
pub fn deployment_name(cluster: &str, dc: &str, rack: &str) -> String {
    crate::names::cleanup_for_kubernetes(&format!("{cluster}-{dc}-{rack}-stargate-deployment"))
}

/// Name of the ConfigMap holding the Cassandra settings Stargate's embedded node reads.
pub fn config_map_name(cluster: &str, dc: &str) -> String {
    format!(
        "{}-{}-cassandra-config",
        crate::names::cleanup_for_kubernetes(cluster),
        crate::names::cleanup_for_kubernetes(dc)
    )
}

/// Pod settings of Stargate, at any level (cluster, datacenter or rack).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StargateTemplate {
    /// Image of the Stargate containers; `stargateio` `v1.0.77` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = {"repository": "stargateio", "tag": "v1.0.77"}))]
    pub container_image: Option<Image>,

    /// Service account of the Stargate pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "default"))]
    pub service_account: Option<String>,

    /// Resource requests and limits of each Stargate pod. When unset, memory is derived
    /// from `heapSize`: a request of twice and a limit of four times the heap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// JVM heap size of Stargate. Defaults to 256Mi.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "256Mi"))]
    pub heap_size: Option<Quantity>,

    /// Liveness probe of the Stargate container; a built-in probe when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Probe>,

    /// Readiness probe of the Stargate container; a built-in probe when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,

    /// Node labels the Stargate pods must be scheduled on. When unset, the node selector of
    /// the datacenter's Cassandra pods is reused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,

    /// Tolerations of the Stargate pods. When unset, those of the datacenter's Cassandra pods
    /// are reused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,

    /// Affinity of the Stargate pods. When unset, that of the datacenter's Cassandra pods is
    /// reused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// Let Stargate pods share worker nodes with the datacenter's Cassandra pods (off by
    /// default). With host networking on the data pods, port clashes can still keep them
    /// apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub allow_stargate_on_data_nodes: Option<bool>,

    /// ConfigMap with Cassandra settings for Stargate, under the key `cassandra_yaml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cassandra_config_map_ref: Option<LocalObjectReference>,

    /// Telemetry integrations for the Stargate pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<TelemetrySpec>,

    /// How clients of the Stargate APIs authenticate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_options: Option<AuthOptions>,

    /// Whether the operator (`internal`) or an external secret store (`external`) provides
    /// credentials and certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "internal"))]
    pub secrets_provider: Option<SecretsProvider>,

    /// Extra labels and annotations for the objects created for Stargate.
    #[serde(default, rename = "metadata", skip_serializing_if = "Option::is_none")]
    pub resource_meta: Option<ResourceMeta>,
}

impl StargateTemplate {
    /// Whether credentials and certificates come from an external secret store.
    pub fn uses_external_secrets(&self) -> bool {
        self.secrets_provider == Some(SecretsProvider::External)
    }

    /// The JVM heap in bytes, the default applied; None when `heapSize` does not parse.
    pub fn heap_bytes(&self) -> Option<u128> {
        quantity_bytes(
            self.heap_size
                .as_ref()
                .map_or(DEFAULT_HEAP_SIZE, |q| q.0.as_str()),
        )
    }

    /// The container's memory limit in bytes: the one given in `resources`, or, when
    /// `resources` is unset, the derived one (four times the heap). None without a limit.
    pub fn memory_limit_bytes(&self) -> Option<u128> {
        match &self.resources {
            Some(r) => r
                .limits
                .as_ref()
                .and_then(|l| l.get("memory"))
                .and_then(|q| quantity_bytes(&q.0)),
            None => self.heap_bytes().map(|h| h * 4),
        }
    }

    /// Rules a template must keep, whatever the datacenter: `heapSize` parses and stays
    /// below the container's memory limit (a JVM whose heap fills the limit is killed by the
    /// kernel, KO #938). Each violation is `(field under `path`, message)`.
    pub fn check(&self, path: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let Some(heap) = self.heap_bytes() else {
            out.push((
                format!("{path}.heapSize"),
                format!(
                    "{:?} is not a quantity of bytes",
                    self.heap_size
                        .as_ref()
                        .map(|q| q.0.as_str())
                        .unwrap_or_default()
                ),
            ));
            return out;
        };
        if let Some(limit) = self.memory_limit_bytes()
            && heap >= limit
        {
            out.push((
                format!("{path}.heapSize"),
                format!(
                    "heap {} must be smaller than the container's memory limit {} ({path}.resources.limits.memory): the JVM needs memory beyond its heap, and a pod over its limit is killed",
                    bytes_quantity(heap),
                    bytes_quantity(limit)
                ),
            ));
        }
        if let Some(o) = &self.auth_options
            && o.api_auth_method == Some(ApiAuthMethod::Jwt)
            && o.jwt_provider_url.as_deref().is_none_or(str::is_empty)
        {
            out.push((
                format!("{path}.authOptions.providerUrl"),
                "required with apiAuthMethod JWT".to_string(),
            ));
        }
        out
    }
}

/// Stargate settings for every datacenter of a K8ssandraCluster (`spec.stargate`);
/// datacenter-level settings take precedence.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StargateClusterTemplate {
    /// Pod settings.
    #[serde(flatten)]
    pub template: StargateTemplate,

    /// Number of Stargate pods in each datacenter, spread evenly over its racks (at least 1,
    /// default 1).
    // Required in the schema as upstream, but the default fills it in first, so in practice
    // it may be left out; `None` here means "not given".
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(required, range(min = 1), extend("default" = 1))]
    pub size: Option<i32>,
}

impl StargateClusterTemplate {
    /// The size, with its default applied.
    pub fn size(&self) -> i32 {
        self.size.unwrap_or(1)
    }
}

/// Stargate settings for one datacenter; they take precedence over the cluster-level ones,
/// and rack-level settings take precedence over them.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StargateDatacenterTemplate {
    /// Size and pod settings.
    #[serde(flatten)]
    pub cluster_template: StargateClusterTemplate,

    /// Overrides for the Stargate pods of particular racks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub racks: Option<Vec<StargateRackTemplate>>,
}

impl StargateDatacenterTemplate {
    /// [`StargateTemplate::check`] for the datacenter's settings and every rack's merged
    /// ones; `path` names this template (e.g. `spec`).
    pub fn check(&self, path: &str) -> Vec<(String, String)> {
        let mut out = self.cluster_template.template.check(path);
        for (i, rack) in self.racks.iter().flatten().enumerate() {
            let r = &rack.template;
            // A rack that changes none of the checked settings repeats the datacenter's
            // faults, which are reported once already.
            if r.heap_size.is_none() && r.resources.is_none() && r.auth_options.is_none() {
                continue;
            }
            match self.rack_template(&rack.name) {
                Ok(t) => out.extend(t.check(&format!("{path}.racks[{i}]"))),
                Err(e) => out.push((format!("{path}.racks[{i}]"), e.to_string())),
            }
        }
        out
    }

    /// Rack overrides naming no rack of the datacenter (`racks` are its rack names):
    /// `(field, message)` for each.
    pub fn check_racks(&self, path: &str, racks: &[String]) -> Vec<(String, String)> {
        self.racks
            .iter()
            .flatten()
            .enumerate()
            .filter(|(_, r)| !racks.contains(&r.name))
            .map(|(i, r)| {
                (
                    format!("{path}.racks[{i}].name"),
                    format!(
                        "{:?} is not a rack of the datacenter (its racks: {})",
                        r.name,
                        racks.join(", ")
                    ),
                )
            })
            .collect()
    }

    /// The Stargate settings of a datacenter with the cluster-level ones filled in: objects
    /// are merged key by key, any other value set for the datacenter replaces the cluster's
    /// (lists included). `None` when Stargate is set at neither level.
    pub fn merged(
        dc: Option<&Self>,
        cluster: Option<&StargateClusterTemplate>,
    ) -> Result<Option<Self>, serde_json::Error> {
        match (dc, cluster) {
            (None, None) => Ok(None),
            (Some(dc), None) => Ok(Some(dc.clone())),
            (None, Some(cluster)) => Ok(Some(StargateDatacenterTemplate {
                cluster_template: cluster.clone(),
                racks: None,
            })),
            (Some(dc), Some(cluster)) => {
                let mut base = serde_json::to_value(cluster)?;
                merge_json(&mut base, serde_json::to_value(&dc.cluster_template)?);
                Ok(Some(StargateDatacenterTemplate {
                    cluster_template: serde_json::from_value(base)?,
                    racks: dc.racks.clone(),
                }))
            }
        }
    }

    /// The override of the rack `name`, if any.
    pub fn rack(&self, name: &str) -> Option<&StargateRackTemplate> {
        self.racks.iter().flatten().find(|r| r.name == name)
    }

    /// The pod settings of the rack `name`: the datacenter's, overridden by that rack's.
    pub fn rack_template(&self, name: &str) -> Result<StargateTemplate, serde_json::Error> {
        let dc = &self.cluster_template.template;
        match self.rack(name) {
            None => Ok(dc.clone()),
            Some(rack) => {
                let mut base = serde_json::to_value(dc)?;
                merge_json(&mut base, serde_json::to_value(&rack.template)?);
                serde_json::from_value(base)
            }
        }
    }
}

/// Stargate settings for one rack; they take precedence over the datacenter-level ones.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StargateRackTemplate {
    /// Pod settings.
    #[serde(flatten)]
    pub template: StargateTemplate,

    /// Name of the rack; a name that matches no rack of the CassandraDatacenter is refused.
    #[schemars(length(min = 2))]
    pub name: String,
}

/// A Stargate deployment serving one CassandraDatacenter of the same namespace.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "stargate.k8ssandra.io",
    version = "v1alpha1",
    kind = "Stargate",
    plural = "stargates",
    singular = "stargate",
    namespaced,
    status = "StargateStatus",
    deprecated = "Stargate support is deprecated and will be removed in a future release.",
    printcolumn(name = "DC", type_ = "string", json_path = ".spec.datacenterRef.name"),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.progress"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.readyReplicasRatio"
    ),
    printcolumn(
        name = "Up-to-date",
        type_ = "integer",
        json_path = ".status.updatedReplicas"
    ),
    printcolumn(
        name = "Available",
        type_ = "integer",
        json_path = ".status.availableReplicas"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct StargateSpec {
    /// Size, pod settings and rack overrides.
    #[serde(flatten)]
    pub datacenter_template: StargateDatacenterTemplate,

    /// The CassandraDatacenter (same namespace) Stargate joins.
    pub datacenter_ref: LocalObjectReference,

    /// Require authentication on the Stargate APIs (on by default, and recommended on data
    /// nodes too). The REST APIs only work with authentication on and
    /// PasswordAuthenticator in the cluster; CQL works either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub auth: Option<bool>,

    /// Encryption stores of the Cassandra cluster, mounted into the Stargate pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cassandra_encryption: Option<CassandraEncryption>,
}

impl StargateSpec {
    /// Whether authentication is on (the default).
    pub fn is_auth_enabled(&self) -> bool {
        self.auth.unwrap_or(true)
    }
}

/// Encryption stores of the Cassandra cluster that Stargate pods mount.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CassandraEncryption {
    /// Client-to-node encryption stores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_encryption_stores: Option<Stores>,

    /// Node-to-node (internode) encryption stores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_encryption_stores: Option<Stores>,
}

/// How requests to the Stargate APIs are authenticated: `Table` (the default, tokens kept in
/// a Cassandra table) or `JWT` (tokens from an external provider, see `providerUrl`); one
/// method at a time.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ApiAuthMethod {
    /// Tokens stored in a Cassandra table (the default).
    Table,
    /// JSON Web Tokens from an external provider (see `providerUrl`).
    #[serde(rename = "JWT")]
    Jwt,
}

/// Authentication options of the Stargate APIs.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuthOptions {
    /// `Table` (tokens in a Cassandra table, the default) or `JWT`; only one can be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Table"))]
    pub api_auth_method: Option<ApiAuthMethod>,

    /// With the `Table` method: seconds a token lives after its last use (1800 when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub token_ttl_seconds: Option<i32>,

    /// With the `JWT` method (required there): URL of the JWT provider.
    #[serde(
        default,
        rename = "providerUrl",
        skip_serializing_if = "Option::is_none"
    )]
    pub jwt_provider_url: Option<String>,
}

/// Where the Stargate is in its life: `Pending` (waiting for its datacenter), `Deploying` or
/// `Running`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StargateProgress {
    /// Waiting for the datacenter to be ready.
    Pending,
    /// Deployments created, pods not all ready yet.
    Deploying,
    /// All pods ready.
    Running,
}

/// An observation about a Stargate.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StargateCondition {
    /// Condition type, such as `Ready`.
    #[serde(rename = "type")]
    pub type_: String,

    /// `True`, `False` or `Unknown`.
    pub status: String,

    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,

    /// Why the condition has its status, in CamelCase (not set by upstream's operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,

    /// What is wrong, naming the field at fault (not set by upstream's operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Type of the condition telling whether Stargate is ready.
pub const STARGATE_CONDITION_READY: &str = "Ready";

/// Observed state of a Stargate.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StargateStatus {
    /// Where the Stargate is in its life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<StargateProgress>,

    /// Conditions of the Stargate; `Ready` tells whether it is serving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<StargateCondition>>,

    /// Names of the Deployments created for this Stargate (one per rack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_refs: Option<Vec<String>>,

    /// Name of the Service created for this Stargate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_ref: Option<String>,

    /// Ready pods over desired pods, as `ready/desired`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"\d+/\d+"))]
    pub ready_replicas_ratio: Option<String>,

    /// Non-terminated pods of the Stargate Deployments; zero before they exist.
    pub replicas: i32,

    /// Ready pods of the Stargate Deployments; zero before they exist.
    pub ready_replicas: i32,

    /// Non-terminated pods already running the desired pod template; zero before the
    /// Deployments exist.
    pub updated_replicas: i32,

    /// Available pods of the Stargate Deployments; zero before they exist.
    pub available_replicas: i32,
}

impl StargateStatus {
    /// Status (`True`, `False`, `Unknown`) of a condition; `Unknown` when absent.
    pub fn condition_status(&self, type_: &str) -> &str {
        self.conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == type_)
            .map_or("Unknown", |c| c.status.as_str())
    }

    /// Whether Stargate is running and its `Ready` condition is `True`.
    pub fn is_ready(&self) -> bool {
        self.progress == Some(StargateProgress::Running)
            && self.condition_status(STARGATE_CONDITION_READY) == "True"
    }
}

/// Every CRD defined in this module.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![crate::schema::crd::<Stargate>()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;
    use serde_json::{Value, json};

    fn crd_schema() -> Value {
        let crd = Stargate::crd();
        serde_json::to_value(
            &crd.spec.versions[0]
                .schema
                .as_ref()
                .unwrap()
                .open_api_v3_schema,
        )
        .unwrap()
    }

    #[test]
    fn crd_matches_upstream_identity() {
        let crd = Stargate::crd();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("stargates.stargate.k8ssandra.io")
        );
        assert_eq!(crd.spec.scope, "Namespaced");
        let v = &crd.spec.versions[0];
        assert_eq!(v.deprecated, Some(true));
        assert!(v.deprecation_warning.is_some());
        assert!(v.subresources.as_ref().unwrap().status.is_some());
        let columns: Vec<_> = v
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| (c.name.as_str(), c.type_.as_str(), c.json_path.as_str()))
            .collect();
        assert_eq!(
            columns,
            [
                ("DC", "string", ".spec.datacenterRef.name"),
                ("Status", "string", ".status.progress"),
                ("Ready", "string", ".status.readyReplicasRatio"),
                ("Up-to-date", "integer", ".status.updatedReplicas"),
                ("Available", "integer", ".status.availableReplicas"),
                ("Age", "date", ".metadata.creationTimestamp")
            ]
        );
    }

    #[test]
    fn schema_has_upstream_required_fields_and_bounds() {
        let s = crd_schema();
        let spec = &s["properties"]["spec"];
        let mut required: Vec<_> = spec["required"].as_array().unwrap().iter().collect();
        required.sort_by_key(|v| v.as_str().unwrap().to_string());
        assert_eq!(required, [&json!("datacenterRef"), &json!("size")]);
        let p = &spec["properties"];
        assert_eq!(p["size"]["minimum"], json!(1.0));
        assert_eq!(p["size"]["default"], json!(1));
        assert_eq!(p["heapSize"]["default"], "256Mi");
        assert_eq!(p["auth"]["default"], true);
        assert_eq!(
            p["containerImage"]["default"],
            json!({"repository": "stargateio", "tag": "v1.0.77"})
        );
        assert_eq!(
            p["authOptions"]["properties"]["apiAuthMethod"]["enum"],
            json!(["Table", "JWT"])
        );
        assert!(p["authOptions"]["properties"]["providerUrl"].is_object());
        assert_eq!(p["racks"]["items"]["required"], json!(["name"]));
        assert_eq!(
            p["racks"]["items"]["properties"]["name"]["minLength"],
            json!(2)
        );
        let status = &s["properties"]["status"];
        let mut required: Vec<_> = status["required"].as_array().unwrap().iter().collect();
        required.sort_by_key(|v| v.as_str().unwrap().to_string());
        assert_eq!(
            required,
            [
                &json!("availableReplicas"),
                &json!("readyReplicas"),
                &json!("replicas"),
                &json!("updatedReplicas")
            ]
        );
    }

    #[test]
    fn nested_templates_round_trip() {
        let v = json!({
            "size": 2,
            "heapSize": "512Mi",
            "serviceAccount": "sg",
            "metadata": {"commonLabels": {"a": "b"}},
            "racks": [{"name": "r1", "allowStargateOnDataNodes": true}]
        });
        let t: StargateDatacenterTemplate = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(t.cluster_template.size(), 2);
        assert_eq!(
            t.cluster_template.template.service_account.as_deref(),
            Some("sg")
        );
        assert_eq!(t.racks.as_ref().unwrap()[0].name, "r1");
        assert_eq!(serde_json::to_value(&t).unwrap(), v);
        assert_eq!(StargateClusterTemplate::default().size(), 1);
        assert_eq!(
            serde_json::to_value(StargateClusterTemplate::default()).unwrap(),
            json!({})
        );
    }

    #[test]
    fn datacenter_and_rack_settings_override_the_cluster_ones() {
        let cluster: StargateClusterTemplate = serde_json::from_value(json!({
            "size": 3,
            "heapSize": "256Mi",
            "serviceAccount": "sg",
            "nodeSelector": {"pool": "api"},
            "tolerations": [{"key": "a", "operator": "Exists"}]
        }))
        .unwrap();
        let dc: StargateDatacenterTemplate = serde_json::from_value(json!({
            "size": 1,
            "heapSize": "1Gi",
            "nodeSelector": {"zone": "z1"},
            "tolerations": [{"key": "b", "operator": "Exists"}],
            "racks": [{"name": "r1", "heapSize": "2Gi"}]
        }))
        .unwrap();
        let merged = StargateDatacenterTemplate::merged(Some(&dc), Some(&cluster))
            .unwrap()
            .unwrap();
        assert_eq!(
            serde_json::to_value(&merged).unwrap(),
            json!({
                "size": 1,
                "heapSize": "1Gi",
                "serviceAccount": "sg",
                "nodeSelector": {"pool": "api", "zone": "z1"},
                "tolerations": [{"key": "b", "operator": "Exists"}],
                "racks": [{"name": "r1", "heapSize": "2Gi"}]
            })
        );
        let r1 = merged.rack_template("r1").unwrap();
        assert_eq!(r1.heap_size, Some(Quantity("2Gi".into())));
        assert_eq!(r1.service_account.as_deref(), Some("sg"));
        assert_eq!(
            merged.rack_template("r2").unwrap(),
            merged.cluster_template.template
        );

        let only_cluster = StargateDatacenterTemplate::merged(None, Some(&cluster)).unwrap();
        assert_eq!(only_cluster.unwrap().cluster_template, cluster);
        assert_eq!(
            StargateDatacenterTemplate::merged(None, None).unwrap(),
            None
        );
    }

    #[test]
    fn names() {
        assert_eq!(resource_name("Demo", "dc1"), "demo-dc1-stargate");
        assert_eq!(service_name("demo", "dc1"), "demo-dc1-stargate-service");
        assert_eq!(
            deployment_name("demo", "dc1", "r1"),
            "demo-dc1-r1-stargate-deployment"
        );
        assert_eq!(config_map_name("demo", "dc1"), "demo-dc1-cassandra-config");
    }

    #[test]
    fn heap_must_stay_below_the_memory_limit() {
        let t: StargateDatacenterTemplate = serde_json::from_value(json!({
            "size": 3,
            "heapSize": "1Gi",
            "resources": {"limits": {"memory": "1Gi"}},
            "racks": [{"name": "r1", "heapSize": "512Mi"}, {"name": "r2", "heapSize": "2Gi"}]
        }))
        .unwrap();
        let v = t.check("spec");
        let fields: Vec<&str> = v.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["spec.heapSize", "spec.racks[1].heapSize"]);
        assert!(v[0].1.contains("1Gi") && v[0].1.contains("resources.limits.memory"));
        // Without resources the limit is derived from the heap, which always fits.
        let ok: StargateTemplate = serde_json::from_value(json!({"heapSize": "8Gi"})).unwrap();
        assert!(ok.check("spec").is_empty());
        let jwt: StargateTemplate =
            serde_json::from_value(json!({"authOptions": {"apiAuthMethod": "JWT"}})).unwrap();
        assert_eq!(jwt.check("spec")[0].0, "spec.authOptions.providerUrl");
        let racks = t.check_racks("spec", &["r1".into(), "r3".into()]);
        assert_eq!(racks.len(), 1);
        assert_eq!(racks[0].0, "spec.racks[1].name");
    }

    #[test]
    fn readiness_needs_running_and_ready() {
        let mut status: StargateStatus = serde_json::from_value(json!({
            "progress": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1, "availableReplicas": 1
        }))
        .unwrap();
        assert!(status.is_ready());
        status.progress = Some(StargateProgress::Deploying);
        assert!(!status.is_ready());
    }
}
