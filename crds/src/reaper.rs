//! Reaper (`reaper.k8ssandra.io/v1alpha1`): the service that schedules and runs
//! anti-entropy repairs on a Cassandra cluster.
//!
//! [`ReaperTemplate`] holds the settings of one Reaper deployment. It is shared by the
//! standalone [`Reaper`] resource and by the `spec.reaper` section of a K8ssandraCluster
//! ([`ReaperClusterTemplate`]), which adds how Reaper is laid out across the cluster.

// kube's `printcolumn(...)` entries repeat `type_ = "..."`, which this lint mistakes for
// duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, LocalObjectReference, ObjectReference, PersistentVolumeClaimSpec,
    PodSecurityContext, Probe, ResourceRequirements, SecurityContext, Toleration,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::encryption::Stores;
use crate::images::Image;
use crate::meta::ResourceMeta;
use crate::telemetry::TelemetrySpec;

/// Label set on every object the operator creates for a Reaper; its value is the Reaper name.
pub const REAPER_LABEL: &str = "k8ssandra.io/reaper";

/// Keyspace Reaper keeps its state in when `keyspace` is not set.
pub const DEFAULT_KEYSPACE: &str = "reaper_db";

/// JVM heap size of Reaper when `heapSize` is not set.
pub const DEFAULT_HEAP_SIZE: &str = "2Gi";

/// An ISO-8601 duration such as `PT15M` or `P1DT2H` (the pattern upstream validates with).
const ISO8601_DURATION: &str = r"([-+]?)P(?:([-+]?[0-9]+)D)?(T(?:([-+]?[0-9]+)H)?(?:([-+]?[0-9]+)M)?(?:([-+]?[0-9]+)(?:[.,]([0-9]{0,9}))?S)?)?";

/// Where Reaper keeps its state: `cassandra` (the default), a keyspace of the repaired
/// cluster, so each cluster needs its own Reaper; or `local`, a persistent volume (see
/// `storageConfig`), so one Reaper can repair several clusters.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum StorageType {
    /// In a keyspace of the Cassandra cluster being repaired; Reaper itself is stateless, so
    /// each Cassandra cluster needs its own Reaper.
    Cassandra,
    /// On a persistent volume of the Reaper pod; one Reaper can then repair several clusters.
    Local,
}

/// Who provides credentials and certificates: `internal` (the default), the operator
/// generates them; `external`, an external secret store injects them into the pods through
/// a mutating webhook.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum SecretsProvider {
    /// The operator generates and stores the Secrets.
    Internal,
    /// The user provides them from an external secret store, injected into the pods by a
    /// mutating webhook; the operator creates none.
    External,
}

/// Repair type of the schedules Reaper creates: `REGULAR` (full, non-incremental),
/// `ADAPTIVE` (best for Cassandra 3.x), `INCREMENTAL` (Cassandra 4.0+ only) or `AUTO` (the
/// default: adaptive on 3.x, incremental on 4.0+).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "UPPERCASE")]
pub enum RepairType {
    /// Full, non-incremental repair with fixed segments.
    Regular,
    /// Repair whose segments adapt to past runs; the best fit for Cassandra 3.x.
    Adaptive,
    /// Incremental repair; only for Cassandra 4.0 and later.
    Incremental,
    /// `ADAPTIVE` on Cassandra 3.x, `INCREMENTAL` on 4.0 and later.
    Auto,
}

/// How Reaper is laid out for the cluster: `PER_DC` (the default, one Reaper per
/// datacenter), `SINGLE` (one Reaper for the whole cluster) or `CONTROL_PLANE` (a Reaper in
/// the control-plane cluster shared by several clusters, see `reaperRef`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeploymentMode {
    /// One Reaper in every datacenter, each repairing its own datacenter.
    PerDc,
    /// One Reaper for the whole cluster.
    Single,
    /// A Reaper running in the control-plane cluster, shared by several K8ssandraClusters.
    ControlPlane,
}

/// Which datacenters this Reaper reaches: `ALL` (the default; right for a single datacenter,
/// or for one Reaper managing several), `EACH` (one Reaper per datacenter, each managing
/// its own) or `LOCAL`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "UPPERCASE")]
pub enum DatacenterAvailability {
    /// Only the datacenter it runs in; other datacenters are repaired through it.
    Local,
    /// Every datacenter of the cluster.
    All,
    /// Each datacenter has its own Reaper instance, which manages that datacenter only.
    Each,
}

/// Settings of one Reaper deployment, shared by the Reaper resource and the `reaper`
/// section of a K8ssandraCluster.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReaperTemplate {
    /// Where Reaper stores its state: `cassandra` (a keyspace of the repaired cluster, the
    /// default) or `local` (a persistent volume, see `storageConfig`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "cassandra"))]
    pub storage_type: Option<StorageType>,

    /// The persistent volume claim used when `storageType` is `local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_config: Option<PersistentVolumeClaimSpec>,

    /// Keyspace holding Reaper's state when `storageType` is `cassandra`; created if missing
    /// when the cluster is managed by this operator. Defaults to `reaper_db`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "reaper_db"))]
    pub keyspace: Option<String>,

    /// Secret (keys `username` and `password`, same namespace) with the CQL credentials
    /// Reaper logs in with; the role is created when the datacenter is set up. Leave empty
    /// when Cassandra does not require authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cassandra_user_secret_ref: Option<LocalObjectReference>,

    /// Deprecated and ignored: JMX access now authenticates with the CQL role of
    /// `cassandraUserSecretRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jmx_user_secret_ref: Option<LocalObjectReference>,

    /// Secret with the username and password protecting Reaper's web UI and REST API. With
    /// an empty name, the UI runs without authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui_user_secret_ref: Option<LocalObjectReference>,

    /// Whether the operator (`internal`) or an external secret store (`external`) provides
    /// credentials and certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "internal"))]
    pub secrets_provider: Option<SecretsProvider>,

    /// Image of the Reaper container; the operator's default image when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_image: Option<Image>,

    /// Deprecated: the init container now runs the main image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_container_image: Option<Image>,

    /// Service account of the Reaper pods. (The capitalised key is the upstream API's.)
    #[serde(
        default,
        rename = "ServiceAccountName",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(extend("default" = "default"))]
    pub service_account_name: Option<String>,

    /// Automatic repair scheduling: when enabled, Reaper creates a repair schedule for each
    /// non-system keyspace, and adds or removes schedules as keyspaces come and go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_scheduling: Option<AutoScheduling>,

    /// Liveness probe of the Reaper container; a built-in probe when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Probe>,

    /// Readiness probe of the Reaper container; a built-in probe when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,

    /// Affinity of the Reaper pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// Tolerations of the Reaper pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,

    /// Pod-level security context of the Reaper pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security_context: Option<PodSecurityContext>,

    /// Security context of the Reaper container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,

    /// Security context of the init container that migrates Reaper's schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_container_security_context: Option<SecurityContext>,

    /// JVM heap size of Reaper. Defaults to 2Gi.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "2Gi"))]
    pub heap_size: Option<Quantity>,

    /// Resource requests and limits of the Reaper container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Resource requests and limits of the init container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_container_resources: Option<ResourceRequirements>,

    /// Telemetry integrations (Prometheus ServiceMonitor, Vector) for the Reaper pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<TelemetrySpec>,

    /// Extra labels and annotations for the objects created for Reaper.
    #[serde(default, rename = "metadata", skip_serializing_if = "Option::is_none")]
    pub resource_meta: Option<ResourceMeta>,

    /// How Reaper talks to Cassandra: over the management API's HTTP endpoints (enabled by
    /// default) instead of JMX.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = {"enabled": true}))]
    pub http_management: Option<HttpManagement>,

    /// Skip the schema migration the init container runs on every start. Migration reads at
    /// QUORUM and slows start-up; skip it when the schema is known to be current or QUORUM
    /// cannot be reached (a datacenter is down).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub skip_schema_migration: Option<bool>,

    /// Extra environment variables of the Reaper container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_env_vars: Option<Vec<EnvVar>>,

    /// TLS (or mutual TLS) between the operator and Reaper's REST API; plain HTTP when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<ReaperEncryption>,
}

/// TLS settings of Reaper's REST API.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReaperEncryption {
    /// Secret with the server's `keystore.jks` and `truststore.jks` (password `changeit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cert_name: Option<String>,

    /// Secret with the client's `tls.crt`, `tls.key` and `ca.crt`. Setting it turns on
    /// mutual TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_name: Option<String>,
}

/// Automatic creation of repair schedules for the keyspaces of a cluster.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AutoScheduling {
    /// Turn automatic scheduling on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub enabled: Option<bool>,

    /// Repair type of the created schedules: `REGULAR`, `ADAPTIVE`, `INCREMENTAL`, or
    /// `AUTO` (adaptive on Cassandra 3.x, incremental on 4.0+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "AUTO"))]
    pub repair_type: Option<RepairType>,

    /// For incremental repairs: the percentage of unrepaired data above which a repair
    /// starts (0-100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100), extend("default" = 10))]
    pub percent_unrepaired_threshold: Option<i32>,

    /// Delay before scheduling starts, as an ISO-8601 duration. Defaults to `PT15S`.
    #[serde(
        default,
        rename = "initialDelayPeriod",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(pattern(ISO8601_DURATION), extend("default" = "PT15S"))]
    pub initial_delay: Option<String>,

    /// How often Reaper checks whether a repair should start, as an ISO-8601 duration.
    /// Defaults to `PT10M`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(ISO8601_DURATION), extend("default" = "PT10M"))]
    pub period_between_polls: Option<String>,

    /// Grace period before the first repair of a new schedule, as an ISO-8601 duration.
    /// Defaults to `PT5M`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(ISO8601_DURATION), extend("default" = "PT5M"))]
    pub time_before_first_schedule: Option<String>,

    /// Spacing between the start times of consecutive schedules, as an ISO-8601 duration.
    /// Defaults to `PT6H`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(ISO8601_DURATION), extend("default" = "PT6H"))]
    pub schedule_spread_period: Option<String>,

    /// Clusters for which no schedule is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded_clusters: Option<Vec<String>>,

    /// Keyspaces for which no schedule is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded_keyspaces: Option<Vec<String>>,
}

/// Reaper management connection to Cassandra over the management API.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpManagement {
    /// Use the management API's HTTP endpoints instead of JMX.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub enabled: Option<bool>,

    /// Secret with the keystores used to reach the management API over TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keystores: Option<LocalObjectReference>,
}

/// The `reaper` section of a K8ssandraCluster: a Reaper template plus how Reaper is laid
/// out across the cluster.
///
/// The rules on local storage travel with this type; the immutability of `keyspace` is a
/// rule of the K8ssandraCluster CRD (`spec.reaper`), see `crate::k8ssandra`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.storageType) || self.storageType != 'local' || has(self.storageConfig)")
        .message("spec.reaper.storageConfig is required when spec.reaper.storageType is local")
        .reason(Reason::FieldValueRequired)
        .field_path(".storageConfig"),
    validation = Rule::new("!has(self.storageType) || self.storageType != 'local' || !has(self.storageConfig) || has(self.storageConfig.accessModes)")
        .message("spec.reaper.storageConfig.accessModes is required when spec.reaper.storageType is local")
        .reason(Reason::FieldValueRequired)
        .field_path(".storageConfig"),
    validation = Rule::new("!has(self.storageType) || self.storageType != 'local' || !has(self.storageConfig) || (has(self.storageConfig.resources) && has(self.storageConfig.resources.requests) && 'storage' in self.storageConfig.resources.requests)")
        .message("spec.reaper.storageConfig.resources.requests.storage is required when spec.reaper.storageType is local")
        .reason(Reason::FieldValueRequired)
        .field_path(".storageConfig"),
    validation = Rule::new("!has(self.storageType) || self.storageType != 'local' || (has(self.deploymentMode) && self.deploymentMode != 'PER_DC')")
        .message("spec.reaper.deploymentMode PER_DC (the default) requires spec.reaper.storageType cassandra; use SINGLE or CONTROL_PLANE with local storage")
        .reason(Reason::FieldValueForbidden)
        .field_path(".deploymentMode"),
)]
pub struct ReaperClusterTemplate {
    /// Settings of the Reaper deployment(s).
    #[serde(flatten)]
    pub template: ReaperTemplate,

    /// `PER_DC` (one Reaper per datacenter, the default), `SINGLE` (one for the cluster) or
    /// `CONTROL_PLANE` (a shared Reaper in the control-plane cluster, see `reaperRef`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "PER_DC"))]
    pub deployment_mode: Option<DeploymentMode>,

    /// A Reaper resource (usually a `CONTROL_PLANE` one) to register this cluster with,
    /// instead of deploying a Reaper for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reaper_ref: Option<ObjectReference>,
}

impl ReaperClusterTemplate {
    /// Whether this cluster registers with an existing Reaper instead of deploying one.
    pub fn has_reaper_ref(&self) -> bool {
        self.reaper_ref
            .as_ref()
            .and_then(|r| r.name.as_deref())
            .is_some_and(|n| !n.is_empty())
    }

    /// The deployment mode, with its default applied.
    pub fn deployment_mode(&self) -> DeploymentMode {
        self.deployment_mode.unwrap_or(DeploymentMode::PerDc)
    }
}

impl ReaperTemplate {
    /// The keyspace, with its default applied.
    pub fn keyspace(&self) -> &str {
        self.keyspace.as_deref().unwrap_or(DEFAULT_KEYSPACE)
    }

    /// The storage type, with its default applied.
    pub fn storage_type(&self) -> StorageType {
        self.storage_type.unwrap_or(StorageType::Cassandra)
    }

    /// Whether credentials and certificates come from an external secret store.
    pub fn uses_external_secrets(&self) -> bool {
        self.secrets_provider == Some(SecretsProvider::External)
    }
}

/// A datacenter a Reaper manages, possibly in another namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CassandraDatacenterRef {
    /// Name of the CassandraDatacenter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,

    /// Namespace of the CassandraDatacenter; the Reaper's own namespace when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A Reaper instance, repairing the datacenter it references (and, with `local` storage,
/// any cluster registered with it).
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "reaper.k8ssandra.io",
    version = "v1alpha1",
    kind = "Reaper",
    plural = "reapers",
    singular = "reaper",
    namespaced,
    status = "ReaperStatus",
    printcolumn(name = "DC", type_ = "string", json_path = ".spec.datacenterRef.name"),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.progress"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ReaperSpec {
    /// Settings of the Reaper deployment.
    #[serde(flatten)]
    pub template: ReaperTemplate,

    /// The CassandraDatacenter this Reaper manages. With `cassandra` storage it also holds
    /// Reaper's state. Reaper needs the management (JMX 7199 or HTTP) and CQL (9042) ports
    /// of its nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenter_ref: Option<CassandraDatacenterRef>,

    /// Which datacenters this Reaper reaches: `ALL` (the default, right for a single
    /// datacenter or one Reaper for many), `EACH` (one Reaper per datacenter) or `LOCAL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "ALL"))]
    pub datacenter_availability: Option<DatacenterAvailability>,

    /// Client-encryption keystore and truststore shared by Cassandra and Reaper.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_encryption_stores: Option<Stores>,
}

/// Where the Reaper is in its life: `Pending` (waiting for its datacenter), `Deploying`,
/// `Configuring` (connecting to its datacenter) or `Running`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReaperProgress {
    /// Waiting for the datacenter to be ready.
    Pending,
    /// Waiting for the Reaper deployment and its service to be ready.
    Deploying,
    /// Reaper is up and being connected to its datacenter.
    Configuring,
    /// Reaper is up and managing its datacenter.
    Running,
}

/// An observation about a Reaper.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReaperCondition {
    /// Condition type, such as `Ready`.
    #[serde(rename = "type")]
    pub type_: String,

    /// `True`, `False` or `Unknown`.
    pub status: String,

    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,

    /// One word telling why the condition has its status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,

    /// What is wrong or awaited, naming the field at fault for bad input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Observed state of a Reaper.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReaperStatus {
    /// Where the Reaper is in its life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<ReaperProgress>,

    /// Conditions of the Reaper; `Ready` tells whether it is serving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<ReaperCondition>>,
}

/// Type of the condition telling whether Reaper is ready.
pub const REAPER_CONDITION_READY: &str = "Ready";

impl ReaperStatus {
    /// Status (`True`, `False`, `Unknown`) of a condition; `Unknown` when absent.
    pub fn condition_status(&self, type_: &str) -> &str {
        self.conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == type_)
            .map_or("Unknown", |c| c.status.as_str())
    }

    /// Whether the `Ready` condition is `True`.
    pub fn is_ready(&self) -> bool {
        self.condition_status(REAPER_CONDITION_READY) == "True"
    }
}

/// Every CRD defined in this module.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![crate::schema::crd::<Reaper>()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;
    use serde_json::{Value, json};

    fn template_schema<T: JsonSchema>() -> Value {
        schemars::generate::SchemaSettings::openapi3()
            .into_generator()
            .into_root_schema_for::<T>()
            .to_value()
    }

    fn crd_schema() -> Value {
        let crd = Reaper::crd();
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
        let crd = Reaper::crd();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("reapers.reaper.k8ssandra.io")
        );
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.kind, "Reaper");
        assert_eq!(crd.spec.names.short_names, None);
        let v = &crd.spec.versions[0];
        assert_eq!(v.name, "v1alpha1");
        assert!(v.subresources.as_ref().unwrap().status.is_some());
        let columns: Vec<_> = v
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| (c.name.as_str(), c.json_path.as_str()))
            .collect();
        assert_eq!(
            columns,
            [
                ("DC", ".spec.datacenterRef.name"),
                ("Status", ".status.progress"),
                ("Age", ".metadata.creationTimestamp")
            ]
        );
    }

    #[test]
    fn schema_has_upstream_names_defaults_and_enums() {
        let spec = &crd_schema()["properties"]["spec"]["properties"];
        assert_eq!(spec["keyspace"]["default"], "reaper_db");
        assert_eq!(spec["storageType"]["enum"], json!(["cassandra", "local"]));
        assert_eq!(spec["ServiceAccountName"]["default"], "default");
        assert_eq!(spec["httpManagement"]["default"], json!({"enabled": true}));
        assert_eq!(
            spec["datacenterAvailability"]["enum"],
            json!(["LOCAL", "ALL", "EACH"])
        );
        let auto = &spec["autoScheduling"]["properties"];
        assert_eq!(
            auto["repairType"]["enum"],
            json!(["REGULAR", "ADAPTIVE", "INCREMENTAL", "AUTO"])
        );
        assert_eq!(auto["percentUnrepairedThreshold"]["maximum"], json!(100.0));
        assert_eq!(auto["initialDelayPeriod"]["pattern"], ISO8601_DURATION);
        let status = &crd_schema()["properties"]["status"]["properties"];
        assert_eq!(
            status["progress"]["enum"],
            json!(["Pending", "Deploying", "Configuring", "Running"])
        );
    }

    #[test]
    fn cluster_template_rules_cover_local_storage() {
        let s = template_schema::<ReaperClusterTemplate>();
        let rules = s["x-kubernetes-validations"].as_array().unwrap();
        let messages: Vec<_> = rules
            .iter()
            .map(|r| r["message"].as_str().unwrap())
            .collect();
        assert_eq!(rules.len(), 4, "{messages:?}");
        assert!(messages.iter().all(|m| m.starts_with("spec.reaper.")));
        assert_eq!(s["properties"]["deploymentMode"]["default"], "PER_DC");
        // Flattened template fields sit next to the cluster-level ones.
        assert!(s["properties"]["keyspace"].is_object());
    }

    #[test]
    fn flattened_fields_round_trip() {
        let v = json!({
            "keyspace": "repairs",
            "ServiceAccountName": "reaper",
            "deploymentMode": "SINGLE",
            "reaperRef": {"name": "cp-reaper", "namespace": "ops"},
            "autoScheduling": {"enabled": true, "initialDelayPeriod": "PT1M"},
            "metadata": {"labels": {"a": "b"}}
        });
        let t: ReaperClusterTemplate = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(t.template.keyspace(), "repairs");
        assert_eq!(t.deployment_mode(), DeploymentMode::Single);
        assert!(t.has_reaper_ref());
        assert_eq!(serde_json::to_value(&t).unwrap(), v);

        let empty = ReaperClusterTemplate::default();
        assert_eq!(empty.template.keyspace(), DEFAULT_KEYSPACE);
        assert_eq!(empty.deployment_mode(), DeploymentMode::PerDc);
        assert_eq!(empty.template.storage_type(), StorageType::Cassandra);
        assert!(!empty.has_reaper_ref());
        assert_eq!(serde_json::to_value(&empty).unwrap(), json!({}));
    }

    #[test]
    fn readiness_from_conditions() {
        let status: ReaperStatus = serde_json::from_value(json!({
            "progress": "Running",
            "conditions": [{"type": "Ready", "status": "True"}]
        }))
        .unwrap();
        assert!(status.is_ready());
        assert!(!ReaperStatus::default().is_ready());
        assert_eq!(ReaperStatus::default().condition_status("Ready"), "Unknown");
    }
}
