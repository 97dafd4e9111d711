//! `cassandra.datastax.com/v1beta1` CassandraDatacenter: one Cassandra (or DSE, or HCD)
//! datacenter in one Kubernetes cluster, with the types K8ssandraCluster reuses (racks, storage,
//! networking, CDC, management API authentication, the datacenter status).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, ObjectReference, PersistentVolumeClaimSpec, PodTemplateSpec, ResourceRequirements,
    Toleration, Volume,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::names;
use crate::schema::{self, Rule};

/// The database a datacenter runs.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum ServerType {
    /// Apache Cassandra.
    #[default]
    Cassandra,
    /// DataStax Enterprise.
    Dse,
    /// DataStax Hyper-Converged Database.
    Hcd,
}

impl ServerType {
    pub fn as_str(&self) -> &'static str {
        match self {
            ServerType::Cassandra => "cassandra",
            ServerType::Dse => "dse",
            ServerType::Hcd => "hcd",
        }
    }
}

/// Desired state of a CassandraDatacenter.
// Each `printcolumn(...)` repeats `type_`/`name`, which clippy takes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "cassandra.datastax.com",
    version = "v1beta1",
    kind = "CassandraDatacenter",
    plural = "cassandradatacenters",
    singular = "cassandradatacenter",
    namespaced,
    status = "CassandraDatacenterStatus",
    shortname = "cassdc",
    shortname = "cassdcs",
    printcolumn(
        name = "Size",
        type_ = "integer",
        json_path = ".spec.size",
        description = "Nodes the datacenter should have"
    ),
    printcolumn(
        name = "Ready",
        type_ = "integer",
        json_path = ".status.readyNodes",
        description = "Nodes whose Cassandra is up and serving"
    ),
    printcolumn(
        name = "Progress",
        type_ = "string",
        json_path = ".status.cassandraOperatorProgress",
        description = "Updating while the operator changes the datacenter, Ready when it has nothing left to do"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "The Ready condition: True once every node is ready"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    derive = "PartialEq",
    derive = "Default",
    doc = "A CassandraDatacenter runs one datacenter of a Cassandra, DSE or HCD cluster: one \
           StatefulSet per rack, the Services clients and nodes use to find each other, and \
           the node lifecycle (ordered starts, scaling, rolling updates, replacements). \
           Datacenters that share spec.clusterName in a namespace join the same cluster."
)]
#[serde(rename_all = "camelCase")]
// Fields this version does not know are kept (an older operator must not strip fields a
// newer one wrote), as upstream's schema does.
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct CassandraDatacenterSpec {
    /// Number of Cassandra nodes (pods) in the datacenter, spread evenly over the racks. Must
    /// be at least 1 and at least the number of racks. Raising it adds nodes (followed by a
    /// cleanup of the existing ones); lowering it decommissions nodes, one rack at a time.
    #[schemars(range(min = 1))]
    pub size: i32,

    /// Version of the server, such as `4.1.5`, `5.0.2` (Cassandra), `6.8.50` (DSE) or `1.0.0`
    /// (HCD). Picks the default image and the configuration format.
    #[schemars(regex(pattern = r"(\d+\.\d+\.\d+)"))]
    pub server_version: String,

    /// Server image to run instead of the one chosen from serverVersion. It must contain
    /// the management API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_image: Option<String>,

    /// Which database the datacenter runs: `cassandra`, `dse` or `hcd`.
    pub server_type: ServerType,

    /// Deprecated and ignored; use the pod template's securityContext instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_image_runs_as_cassandra: Option<bool>,

    /// Server configuration as an object of configuration files, for example
    /// `{"cassandra-yaml": {"num_tokens": 16}, "jvm-server-options": {"max_heap_size": "2G"}}`.
    /// `jvm-options` applies to Cassandra 3.11 only, `jvm-server-options` to newer versions,
    /// `dse-yaml` to DSE only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::preserve_unknown_object")]
    pub config: Option<Value>,

    /// Name of a Secret whose `config` key holds the configuration as JSON (same shape as
    /// `config`). Takes precedence over `config`; changes to the Secret roll out to the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_secret: Option<String>,

    /// How the operator authenticates to the management API of the nodes: `insecure` (plain
    /// HTTP) or `manual` (mutual TLS with certificates you provide).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management_api_auth: Option<ManagementApiAuthConfig>,

    /// Node labels every Cassandra pod must be scheduled on (node affinity), for the whole
    /// datacenter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_affinity_labels: Option<BTreeMap<String, String>>,

    /// CPU and memory of the Cassandra container of each pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// CPU and memory of the log-tailing sidecar (`server-system-logger`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_logger_resources: Option<ResourceRequirements>,

    /// CPU and memory of the init container that renders the configuration files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_builder_resources: Option<ResourceRequirements>,

    /// The racks (failure domains) of the datacenter, each usually pinned to one zone. Nodes
    /// are spread evenly over them. Racks can be added at the end of the list (with enough new
    /// nodes to keep the racks balanced) but never removed, renamed or reordered. Without
    /// racks the datacenter has one rack named `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub racks: Option<Vec<Rack>>,

    /// Persistent storage of each node: the data volume (`/var/lib/cassandra`) and any
    /// additional volumes.
    pub storage_config: StorageConfig,

    /// Deprecated: use a CassandraTask with the `replacenode` command. Pods to replace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_nodes: Option<Vec<String>>,

    /// Name of the Cassandra cluster (`cluster_name`). Datacenters with the same clusterName
    /// in a namespace form one cluster. Cannot be changed.
    #[schemars(length(min = 2))]
    pub cluster_name: String,

    /// Stop every node (StatefulSets scaled to zero) while keeping the volumes and all other
    /// objects; set back to false to resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<bool>,

    /// Image of the configuration-rendering init container, instead of the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_builder_image: Option<String>,

    /// Roll configuration and image changes out to the first rack only, to try them before
    /// the whole datacenter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_upgrade: Option<bool>,

    /// With canaryUpgrade, how many nodes of the first rack are updated; 0 or more than the
    /// rack size updates the whole rack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_upgrade_count: Option<i32>,

    /// Allow several Cassandra pods on one Kubernetes worker (removes the default pod
    /// anti-affinity). Requires cpu and memory requests and limits in `resources`. Cannot be
    /// changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_multiple_nodes_per_worker: Option<bool>,

    /// Secret with the `username` and `password` of the superuser. When empty a Secret named
    /// `<clusterName>-superuser` is generated. Cannot be changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superuser_secret_name: Option<String>,

    /// Deprecated: use serviceAccountName. Service account of the Cassandra pods. Cannot be
    /// changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,

    /// Service account of the Cassandra pods; takes precedence over serviceAccount and the pod
    /// template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,

    /// Deprecated: use a CassandraTask with the `restart` command. Request a rolling restart;
    /// the operator resets it once the restart has begun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_restart_requested: Option<bool>,

    /// Node labels the Cassandra pods must match (the pod's nodeSelector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,

    /// Racks to update to the latest StatefulSet definition even when their nodes are down,
    /// to recover from an update that cannot finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_upgrade_racks: Option<Vec<String>>,

    /// DSE workloads (analytics, graph, search) to enable; only with serverType `dse`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dse_workloads: Option<DseWorkloads>,

    /// Pod template merged into the generated one: labels, annotations, affinity, extra
    /// containers and volumes, security context, and overrides of the built-in containers
    /// (`cassandra`, `server-system-logger`, `server-config-init`) by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template_spec: Option<PodTemplateSpec>,

    /// Roles to create in Cassandra, each from a Secret with `username` and `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<CassandraUser>>,

    /// Host networking and NodePort exposure of the nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networking: Option<NetworkingConfig>,

    /// Seeds outside this cluster's datacenters (IP addresses or resolvable host names), for
    /// example the nodes of a cluster being migrated into Kubernetes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_seeds: Option<Vec<String>>,

    /// Do not run the log-tailing sidecar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_system_logger_sidecar: Option<bool>,

    /// Image of the log-tailing sidecar, instead of the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_logger_image: Option<String>,

    /// Extra labels and annotations for each Service of the datacenter. Keys under
    /// `cassandra.datastax.com` are reserved for the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_service_config: Option<ServiceConfig>,

    /// Tolerations of the Cassandra pods (these win over the pod template's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,

    /// Labels added to every object the operator creates for this datacenter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_labels: Option<BTreeMap<String, String>>,

    /// Annotations added to every object the operator creates for this datacenter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_annotations: Option<BTreeMap<String, String>>,

    /// Deprecated. Change data capture agent sending mutations to Apache Pulsar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cdc: Option<CdcConfiguration>,

    /// Metrics and logs: the management API's metrics agent (relabels, endpoint), MCAC,
    /// a ServiceMonitor, and the Vector agent of the `server-system-logger` container. Not in
    /// cass-operator: the K8ssandraCluster sets it from its own `telemetry`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<crate::telemetry::TelemetrySpec>,

    /// Audit logging (Cassandra 4.0+), rendered into `audit_logging_options`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_logging: Option<crate::telemetry::AuditLoggingSpec>,

    /// Full query logging (Apache Cassandra 4.0+), switched on and off without restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_query_logging: Option<crate::telemetry::FullQueryLoggingSpec>,

    /// Name of the datacenter inside Cassandra when it must differ from metadata.name (for
    /// example a name that is not a valid Kubernetes name). Cannot be changed. Beware of two
    /// datacenters of a namespace ending up with the same name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenter_name: Option<String>,

    /// Seconds a new pod must be ready before it counts as available (StatefulSet
    /// minReadySeconds, default 5). 0 may let several nodes restart at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i32>,

    /// How many pods of one rack may be updated at the same time (a number or a percentage of
    /// the rack). Requires Kubernetes 1.35 or newer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,

    /// Run the Cassandra container with a read-only root filesystem. Default: on for
    /// Cassandra 4.1+, DSE 6.8+ and HCD with the default images, off with a custom serverImage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_root_filesystem: Option<bool>,

    /// Fields this version of the API does not know, kept as given.
    #[serde(flatten)]
    #[schemars(skip)]
    pub unknown_fields: BTreeMap<String, Value>,
}

/// Authentication to the management API.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct ManagementApiAuthConfig {
    /// Plain HTTP without authentication (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<ManagementApiAuthInsecureConfig>,

    /// Mutual TLS with client and server certificates from Secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual: Option<ManagementApiAuthManualConfig>,
}

/// Plain HTTP to the management API; no settings.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct ManagementApiAuthInsecureConfig {}

/// Mutual TLS to the management API.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ManagementApiAuthManualConfig {
    /// Secret with the client certificate the operator presents (`ca.crt`, `tls.crt`,
    /// `tls.key`).
    pub client_secret_name: String,

    /// Secret with the server certificate the management API presents (`ca.crt`, `tls.crt`,
    /// `tls.key`).
    pub server_secret_name: String,

    /// Do not check that the Secrets exist and hold the expected keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_secret_validation: Option<bool>,
}

/// A Cassandra role created from a Secret.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CassandraUser {
    /// Secret with the `username` and `password` of the role.
    pub secret_name: String,

    /// Create the role as a superuser.
    pub superuser: bool,
}

/// Host networking and NodePort exposure.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkingConfig {
    /// Expose the nodes through a NodePort Service on these ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port: Option<NodePortConfig>,

    /// Run the pods in the host's network namespace (one node per worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_network: Option<bool>,
}

/// Node ports of the NodePort Service; 0 or empty lets the operator pick the defaults.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodePortConfig {
    /// Node port for CQL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native: Option<i32>,

    /// Node port for CQL over TLS.
    #[serde(rename = "nativeSSL", default, skip_serializing_if = "Option::is_none")]
    pub native_ssl: Option<i32>,

    /// Node port for internode traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internode: Option<i32>,

    /// Node port for internode traffic over TLS.
    #[serde(
        rename = "internodeSSL",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub internode_ssl: Option<i32>,
}

/// DSE workloads.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DseWorkloads {
    /// Enable DSE Analytics (Spark).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analytics_enabled: Option<bool>,

    /// Enable DSE Graph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph_enabled: Option<bool>,

    /// Enable DSE Search (Solr).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_enabled: Option<bool>,
}

impl DseWorkloads {
    /// Whether any workload is switched on.
    pub fn any_enabled(&self) -> bool {
        [
            self.analytics_enabled,
            self.graph_enabled,
            self.search_enabled,
        ]
        .into_iter()
        .any(|w| w == Some(true))
    }
}

/// A volume mounted into the Cassandra container in addition to the data volume.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdditionalVolumes {
    /// Where the volume is mounted in the Cassandra container.
    pub mount_path: String,

    /// Name of the volume (and of its PVCs, with pvcSpec): a DNS-1123 label.
    #[schemars(regex(pattern = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"))]
    pub name: String,

    /// A persistent volume per node, claimed with this spec. Exactly one of pvcSpec and
    /// volumeSource must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc_spec: Option<PersistentVolumeClaimSpec>,

    /// An existing source (ConfigMap, Secret, emptyDir, ...) mounted as is. Exactly one of
    /// pvcSpec and volumeSource must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_source: Option<VolumeSource>,
}

/// Where a volume comes from: any Kubernetes volume source (configMap, secret, emptyDir,
/// projected, ...), written as in a pod's `volumes[]` entry without `name`.
///
/// k8s-openapi has no separate type for it (it is flattened into `Volume`), so it is kept as
/// the JSON object given, which also keeps fields newer Kubernetes versions add.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(transparent)]
pub struct VolumeSource(pub serde_json::Map<String, Value>);

impl VolumeSource {
    /// The pod volume named `name` with this source.
    pub fn to_volume(&self, name: &str) -> Result<Volume, serde_json::Error> {
        let mut obj = self.0.clone();
        obj.insert("name".into(), Value::String(name.into()));
        serde_json::from_value(Value::Object(obj))
    }
}

impl JsonSchema for VolumeSource {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "VolumeSource".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // The schema of a pod volume, minus its name.
        let mut schema = <Volume as JsonSchema>::json_schema(generator);
        if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
            props.remove("name");
        }
        if let Some(req) = schema.get_mut("required").and_then(Value::as_array_mut) {
            req.retain(|r| r != "name");
            if req.is_empty() {
                schema.remove("required");
            }
        }
        schema.insert(
            "description".into(),
            "Source of the volume, as in a pod volume without its name.".into(),
        );
        schema
    }
}

/// Persistent storage of each node.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StorageConfig {
    /// Claim of the data volume (`server-data`, mounted at `/var/lib/cassandra`): storage
    /// class, access modes and size. The size may grow (when the storage class allows
    /// expansion) but never shrink; nothing else may change once the datacenter exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cassandra_data_volume_claim_spec: Option<PersistentVolumeClaimSpec>,

    /// More volumes for the Cassandra container: per-node PVCs or existing sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_volumes: Option<Vec<AdditionalVolumes>>,
}

impl StorageConfig {
    /// The requested size of the data volume, as written (`"100Gi"`).
    pub fn data_volume_size(&self) -> Option<&str> {
        self.cassandra_data_volume_claim_spec
            .as_ref()?
            .resources
            .as_ref()?
            .requests
            .as_ref()?
            .get("storage")
            .map(|q| q.0.as_str())
    }
}

/// Extra labels and annotations for each Service of a datacenter.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceConfig {
    /// For `<cluster>-<dc>-service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dc_service: Option<ServiceConfigAdditions>,

    /// For `<cluster>-seed-service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_service: Option<ServiceConfigAdditions>,

    /// For `<cluster>-<dc>-all-pods-service`.
    #[serde(
        rename = "allpodsService",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub all_pods_service: Option<ServiceConfigAdditions>,

    /// For `<cluster>-<dc>-additional-seed-service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_seed_service: Option<ServiceConfigAdditions>,

    /// For `<cluster>-<dc>-node-port-service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port_service: Option<ServiceConfigAdditions>,
}

/// Labels and annotations added to one Service.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct ServiceConfigAdditions {
    /// Labels added to the Service (not under `cassandra.datastax.com`).
    #[serde(
        rename = "additionalLabels",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub labels: Option<BTreeMap<String, String>>,

    /// Annotations added to the Service (not under `cassandra.datastax.com`).
    #[serde(
        rename = "additionalAnnotations",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A rack: a failure domain of the datacenter, usually one zone.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Rack {
    /// Rack name, as Cassandra sees it (and part of the StatefulSet name). Unique in the
    /// datacenter; cannot be changed.
    #[schemars(length(min = 2))]
    pub name: String,

    /// Deprecated: use nodeAffinityLabels with `topology.kubernetes.io/zone`. Zone the rack's
    /// pods are pinned to; cannot be changed.
    #[serde(rename = "zone", default, skip_serializing_if = "Option::is_none")]
    pub deprecated_zone: Option<String>,

    /// Node labels the rack's pods must be scheduled on, such as
    /// `topology.kubernetes.io/zone: us-east-1a`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_affinity_labels: Option<BTreeMap<String, String>>,

    /// Affinity rules for this rack only, merged with the pod template's and with
    /// nodeAffinityLabels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
}

/// Change data capture to Apache Pulsar (deprecated upstream).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CdcConfiguration {
    /// URL of the Pulsar service, such as `pulsar://pulsar-proxy:6650`.
    #[schemars(length(min = 1))]
    pub pulsar_service_url: String,

    /// Prefix of the Pulsar topics (one topic per table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_prefix: Option<String>,

    /// Working directory of the CDC agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cdc_working_dir: Option<String>,

    /// How often the agent looks for new commit log segments, in milliseconds.
    #[serde(
        rename = "cdcPollIntervalM",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cdc_poll_interval_ms: Option<i64>,

    /// Reprocess commit logs that failed before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_commit_log_reprocess_enabled: Option<bool>,

    /// Number of threads processing mutations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cdc_concurrent_processors: Option<i64>,

    /// Delay before a batch of messages is sent, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulsar_batch_delay_in_ms: Option<i64>,

    /// Batch messages by key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulsar_key_based_batcher: Option<bool>,

    /// Maximum messages waiting for an acknowledgement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulsar_max_pending_messages: Option<i64>,

    /// Maximum messages waiting for an acknowledgement over all partitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulsar_max_pending_messages_across_partitions: Option<i64>,

    /// Pulsar authentication plugin class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulsar_auth_plugin_class_name: Option<String>,

    /// Parameters of the Pulsar authentication plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulsar_auth_params: Option<String>,

    /// TLS provider.
    #[serde(
        rename = "sslProvider",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ssl_provider: Option<String>,

    /// Path of the truststore.
    #[serde(
        rename = "sslTruststorePath",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ssl_truststore_path: Option<String>,

    /// Password of the truststore.
    #[serde(
        rename = "sslTruststorePassword",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ssl_truststore_password: Option<String>,

    /// Type of the truststore (JKS, PKCS12).
    #[serde(
        rename = "sslTruststoreType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ssl_truststore_type: Option<String>,

    /// Path of the keystore.
    #[serde(
        rename = "sslKeystorePath",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ssl_keystore_path: Option<String>,

    /// Password of the keystore.
    #[serde(
        rename = "sslKeystorePassword",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ssl_keystore_password: Option<String>,

    /// Allowed cipher suites.
    #[serde(
        rename = "sslCipherSuites",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ssl_cipher_suites: Option<String>,

    /// Allowed TLS protocol versions.
    #[serde(
        rename = "sslEnabledProtocols",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ssl_enabled_protocols: Option<String>,

    /// Accept untrusted certificates (`"true"` / `"false"`).
    #[serde(
        rename = "sslAllowInsecureConnection",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ssl_allow_insecure_connection: Option<String>,

    /// Verify the Pulsar host name (`"true"` / `"false"`).
    #[serde(
        rename = "sslHostnameVerificationEnable",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ssl_hostname_verification_enable: Option<String>,
}

/// Where a Cassandra node runs and who it is.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CassandraNodeStatus {
    /// Host id of the node in the ring.
    #[serde(rename = "hostID", default, skip_serializing_if = "Option::is_none")]
    pub host_id: Option<String>,

    /// Pod IP address of the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,

    /// Rack of the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
}

/// Condition types of a CassandraDatacenter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DatacenterConditionType {
    Ready,
    Initialized,
    ReplacingNodes,
    ScalingUp,
    ScalingDown,
    Updating,
    Stopped,
    Resuming,
    RollingRestart,
    Valid,
    Decommission,
    RequiresUpdate,
    ResizingVolumes,
    /// QUORUM is reachable from every node; some operations wait for it.
    Healthy,
}

impl DatacenterConditionType {
    pub const ALL: [DatacenterConditionType; 14] = [
        Self::Ready,
        Self::Initialized,
        Self::ReplacingNodes,
        Self::ScalingUp,
        Self::ScalingDown,
        Self::Updating,
        Self::Stopped,
        Self::Resuming,
        Self::RollingRestart,
        Self::Valid,
        Self::Decommission,
        Self::RequiresUpdate,
        Self::ResizingVolumes,
        Self::Healthy,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Ready => "Ready",
            Self::Initialized => "Initialized",
            Self::ReplacingNodes => "ReplacingNodes",
            Self::ScalingUp => "ScalingUp",
            Self::ScalingDown => "ScalingDown",
            Self::Updating => "Updating",
            Self::Stopped => "Stopped",
            Self::Resuming => "Resuming",
            Self::RollingRestart => "RollingRestart",
            Self::Valid => "Valid",
            Self::Decommission => "Decommission",
            Self::RequiresUpdate => "RequiresUpdate",
            Self::ResizingVolumes => "ResizingVolumes",
            Self::Healthy => "Healthy",
        }
    }
}

/// Lifecycle states of a Cassandra pod, in the `cassandra.datastax.com/node-state` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeState {
    ReadyToStart,
    Starting,
    Started,
    StartedNotReady,
    Decommissioning,
}

impl NodeState {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::ReadyToStart => "Ready-to-Start",
            Self::Starting => "Starting",
            Self::Started => "Started",
            Self::StartedNotReady => "Started-not-Ready",
            Self::Decommissioning => "Decommissioning",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::ReadyToStart,
            Self::Starting,
            Self::Started,
            Self::StartedNotReady,
            Self::Decommissioning,
        ]
        .into_iter()
        .find(|n| n.as_str() == s)
    }
}

/// Values of `status.cassandraOperatorProgress`.
pub const PROGRESS_UPDATING: &str = "Updating";
/// Values of `status.cassandraOperatorProgress`.
pub const PROGRESS_READY: &str = "Ready";

/// One condition of a datacenter.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DatacenterCondition {
    /// Condition type: Ready, Initialized, ReplacingNodes, ScalingUp, ScalingDown, Updating,
    /// Stopped, Resuming, RollingRestart, Valid, Decommission, RequiresUpdate,
    /// ResizingVolumes or Healthy.
    #[serde(rename = "type")]
    pub type_: String,

    /// `True`, `False` or `Unknown`.
    pub status: String,

    /// Short machine-readable reason of the last transition.
    pub reason: String,

    /// Human-readable details.
    pub message: String,

    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

/// Observed state of a CassandraDatacenter.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CassandraDatacenterStatus {
    /// Current conditions of the datacenter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<DatacenterCondition>>,

    /// Deprecated: see usersUpserted. When the superuser was last created or updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub super_user_upserted: Option<Time>,

    /// When the users of the datacenter were last created or updated in Cassandra.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users_upserted: Option<Time>,

    /// When the operator last started a Cassandra node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_server_node_started: Option<Time>,

    /// `Updating` while the operator changes the datacenter, `Ready` when it has nothing left
    /// to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cassandra_operator_progress: Option<String>,

    /// When the last rolling restart began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rolling_restart: Option<Time>,

    /// Nodes of the datacenter by pod name: host id, IP and rack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_statuses: Option<BTreeMap<String, CassandraNodeStatus>>,

    /// Pods being replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_replacements: Option<Vec<String>>,

    /// Until when the operator waits before acting again, after a change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_period: Option<Time>,

    /// Nodes of the datacenter whose Cassandra is up and serving (NORMAL), as the operator
    /// last saw them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_nodes: Option<i32>,

    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// CassandraTasks created by the operator that it waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracked_tasks: Option<Vec<ObjectReference>>,

    /// Pods that failed to start at the operator's last attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_starts: Option<Vec<String>>,

    /// The datacenter name in use (spec.datacenterName when set), recorded so it cannot change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenter_name: Option<String>,

    /// Version of the operator's bookkeeping in metadata (labels, annotations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_version: Option<i64>,
}

impl CassandraDatacenterStatus {
    /// The condition of type `t`, if present.
    pub fn condition(&self, t: DatacenterConditionType) -> Option<&DatacenterCondition> {
        self.conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == t.as_str())
    }

    /// Whether the condition of type `t` is `True`.
    pub fn is_true(&self, t: DatacenterConditionType) -> bool {
        self.condition(t).is_some_and(|c| c.status == "True")
    }
}

impl CassandraDatacenter {
    /// The datacenter's name in Cassandra: spec.datacenterName, else metadata.name.
    pub fn datacenter_name(&self) -> &str {
        self.spec
            .datacenter_name
            .as_deref()
            .filter(|n| !n.is_empty())
            .or(self.metadata.name.as_deref())
            .unwrap_or_default()
    }

    /// The name used in the datacenter's object names: the recorded datacenter name of an
    /// existing datacenter, else metadata.name, cleaned for Kubernetes.
    pub fn label_resource_name(&self) -> String {
        let recorded = self
            .status
            .as_ref()
            .and_then(|s| s.datacenter_name.as_deref())
            .filter(|n| !n.is_empty());
        names::cleanup_for_kubernetes(
            recorded.unwrap_or(self.metadata.name.as_deref().unwrap_or_default()),
        )
    }

    /// The racks, or the single rack `default` when none is declared.
    pub fn racks(&self) -> Vec<Rack> {
        match self.spec.racks.as_deref() {
            Some(r) if !r.is_empty() => r.to_vec(),
            _ => vec![Rack {
                name: "default".into(),
                ..Default::default()
            }],
        }
    }

    /// Name of the StatefulSet of `rack`.
    pub fn sts_name(&self, rack: &str) -> String {
        format!(
            "{}-{}-{}-sts",
            names::cleanup_for_kubernetes(&self.spec.cluster_name),
            self.label_resource_name(),
            names::cleanup_for_kubernetes(rack)
        )
    }

    /// Name of the superuser Secret: spec.superuserSecretName or `<cluster>-superuser`.
    pub fn superuser_secret_name(&self) -> String {
        match self.spec.superuser_secret_name.as_deref() {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => names::superuser_secret_name(&self.spec.cluster_name),
        }
    }

    /// Labels identifying the datacenter's objects (cluster and datacenter).
    pub fn datacenter_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                crate::labels::CLUSTER_LABEL.to_string(),
                names::clean_label_value(&self.spec.cluster_name),
            ),
            (
                crate::labels::DATACENTER_LABEL.to_string(),
                names::clean_label_value(self.metadata.name.as_deref().unwrap_or_default()),
            ),
        ])
    }

    /// Whether the annotation `key` is set to `"true"`.
    pub fn annotation_is_true(&self, key: &str) -> bool {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .is_some_and(|v| v == "true")
    }
}

// Bounds that keep the CEL rules below within the API server's cost budget; generous for
// real datacenters.
const MAX_RACKS: i64 = 32;
const MAX_NAME: i64 = 63;
const MAX_CONDITIONS: i64 = 64;
const MAX_SERVICE_TAGS: i64 = 128;

/// CEL: the old racks are the first racks of the new list, in the same order. Nodes belong to
/// racks by position, so this is what keeps them in place. Unrolled per index: CEL has no
/// index iteration the API server can bound, and list comprehensions over both lists exceed
/// its cost budget.
fn racks_prefix_rule() -> String {
    let mut rule = String::from(
        "!has(oldSelf.racks) || (has(self.racks) && self.racks.size() >= oldSelf.racks.size()",
    );
    for i in 0..MAX_RACKS {
        rule.push_str(&format!(
            " && (oldSelf.racks.size() <= {i} || self.racks[{i}].name == oldSelf.racks[{i}].name)"
        ));
    }
    rule.push(')');
    rule
}

/// The CassandraDatacenter CRD with its validation rules (what cass-operator's webhook checks,
/// expressed in CEL so the API server enforces it without a webhook).
pub fn cassandra_datacenter_crd() -> CustomResourceDefinition {
    let mut crd = crate::schema::crd::<CassandraDatacenter>();
    let old_racks_or_default =
        "(has(oldSelf.racks) && oldSelf.racks.size() > 0 ? oldSelf.racks.size() : 1)";
    schema::add_rules(
        &mut crd,
        "spec",
        &[
            Rule::transition(
                "self.clusterName == oldSelf.clusterName",
                "spec.clusterName is immutable",
            ),
            Rule::transition(
                schema::same_string("self", "oldSelf", "datacenterName"),
                "spec.datacenterName is immutable",
            ),
            Rule::transition(
                schema::same_string("self", "oldSelf", "superuserSecretName"),
                "spec.superuserSecretName is immutable",
            ),
            Rule::transition(
                schema::same_string("self", "oldSelf", "serviceAccount"),
                "spec.serviceAccount is immutable",
            ),
            Rule::transition(
                schema::same_bool("self", "oldSelf", "allowMultipleNodesPerWorker"),
                "spec.allowMultipleNodesPerWorker is immutable",
            ),
            Rule::transition(
                racks_prefix_rule(),
                "spec.racks: racks cannot be removed, renamed or reordered; new racks go at the end",
            ),
            Rule::transition(
                "(has(oldSelf.racks) && oldSelf.racks.size() > 0) || !has(self.racks) || \
                 self.racks.size() == 0 || self.racks[0].name == 'default'",
                "spec.racks: this datacenter was created without racks, so its only rack is named 'default'; keep it first when adding racks",
            ),
            Rule::transition(
                "!has(oldSelf.racks) || !has(self.racks) || oldSelf.racks.all(o, \
                 !self.racks.exists(n, n.name == o.name && has(n.zone) && n.zone != '' && \
                 (!has(o.zone) || n.zone != o.zone)))",
                "spec.racks[].zone is immutable",
            ),
            Rule::transition(
                format!(
                    "!has(self.racks) || self.racks.size() <= {old_racks_or_default} || \
                     (self.size > oldSelf.size && self.size - oldSelf.size >= \
                     (oldSelf.size / {old_racks_or_default}) * (self.racks.size() - {old_racks_or_default}))"
                ),
                "spec.size: adding racks requires increasing size by at least the node count of the smallest existing rack for each new rack, so that existing nodes do not move",
            ),
            Rule::new(
                "!has(self.racks) || self.size >= self.racks.size()",
                "spec.size must be at least the number of racks",
            ),
            Rule::new(
                "self.serverType != 'cassandra' || !has(self.dseWorkloads) || \
                 !((has(self.dseWorkloads.analyticsEnabled) && self.dseWorkloads.analyticsEnabled) || \
                 (has(self.dseWorkloads.graphEnabled) && self.dseWorkloads.graphEnabled) || \
                 (has(self.dseWorkloads.searchEnabled) && self.dseWorkloads.searchEnabled))",
                "spec.dseWorkloads can only be enabled with spec.serverType dse",
            ),
            Rule::new(
                "!has(self.allowMultipleNodesPerWorker) || !self.allowMultipleNodesPerWorker || \
                 (has(self.resources) && has(self.resources.requests) && has(self.resources.limits) && \
                 'cpu' in self.resources.requests && 'memory' in self.resources.requests && \
                 'cpu' in self.resources.limits && 'memory' in self.resources.limits)",
                "spec.resources must set cpu and memory requests and limits when spec.allowMultipleNodesPerWorker is true",
            ),
        ],
    );
    schema::max_items(&mut crd, "spec.racks", MAX_RACKS);
    schema::add_rules(
        &mut crd,
        "spec.racks",
        &[Rule::new(
            "self.all(r, self.exists_one(s, s.name == r.name))",
            "spec.racks[].name must be unique",
        )],
    );
    schema::max_length(&mut crd, "spec.racks[].name", MAX_NAME);
    schema::max_length(&mut crd, "spec.racks[].zone", MAX_NAME);
    for field in [
        "clusterName",
        "datacenterName",
        "superuserSecretName",
        "serviceAccount",
    ] {
        schema::max_length(&mut crd, &format!("spec.{field}"), 253);
    }
    schema::bound_pvc(&mut crd, "spec.storageConfig.cassandraDataVolumeClaimSpec");
    schema::add_rules(
        &mut crd,
        "spec.storageConfig.cassandraDataVolumeClaimSpec",
        &[
            Rule::transition(
                schema::storage_not_shrunk("self", "oldSelf"),
                "spec.storageConfig.cassandraDataVolumeClaimSpec.resources.requests.storage cannot shrink",
            ),
            Rule::transition(
                schema::pvc_unchanged_but_size("self", "oldSelf"),
                "spec.storageConfig.cassandraDataVolumeClaimSpec is immutable, except for increasing the storage request",
            ),
        ],
    );
    schema::add_rules(
        &mut crd,
        "spec.storageConfig.additionalVolumes[]",
        &[Rule::new(
            "has(self.pvcSpec) != has(self.volumeSource)",
            "spec.storageConfig.additionalVolumes[]: set exactly one of pvcSpec and volumeSource",
        )],
    );
    for svc in [
        "dcService",
        "seedService",
        "allpodsService",
        "additionalSeedService",
        "nodePortService",
    ] {
        for field in ["additionalLabels", "additionalAnnotations"] {
            let path = format!("spec.additionalServiceConfig.{svc}.{field}");
            schema::max_properties(&mut crd, &path, MAX_SERVICE_TAGS);
            schema::add_rules(
                &mut crd,
                &path,
                &[Rule::new(
                    "!self.exists(k, k.startsWith('cassandra.datastax.com'))",
                    format!(
                        "{path}: keys starting with cassandra.datastax.com are reserved for the operator"
                    ),
                )],
            );
        }
    }
    schema::max_items(&mut crd, "status.conditions", MAX_CONDITIONS);
    schema::add_rules(
        &mut crd,
        "",
        &[Rule::transition(
            "!has(oldSelf.status) || !has(oldSelf.status.conditions) || self.spec.size == oldSelf.spec.size || \
             !oldSelf.status.conditions.exists(c, (c.type == 'ScalingUp' || c.type == 'ScalingDown') && c.status == 'True')",
            "spec.size cannot change while the datacenter is still scaling up or down",
        )],
    );
    crd
}

/// Every CRD of this module.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![cassandra_datacenter_crd()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dc(spec: Value, status: Value) -> CassandraDatacenter {
        serde_json::from_value(json!({
            "apiVersion": "cassandra.datastax.com/v1beta1",
            "kind": "CassandraDatacenter",
            "metadata": {"name": "dc1", "annotations": {"cassandra.datastax.com/allow-storage-changes": "true"}},
            "spec": spec,
            "status": status,
        }))
        .unwrap()
    }

    fn base() -> Value {
        json!({"clusterName": "My_Cluster", "serverType": "cassandra", "serverVersion": "4.1.5",
               "size": 3, "storageConfig": {"cassandraDataVolumeClaimSpec":
                   {"resources": {"requests": {"storage": "10Gi"}}}}})
    }

    #[test]
    fn names_racks_and_conditions() {
        let d = dc(
            base(),
            json!({"conditions": [{"type": "Ready", "status": "True", "reason": "", "message": ""}]}),
        );
        assert_eq!(d.datacenter_name(), "dc1");
        assert_eq!(d.racks().len(), 1);
        assert_eq!(d.racks()[0].name, "default");
        assert_eq!(d.sts_name("default"), "my-cluster-dc1-default-sts");
        assert_eq!(d.superuser_secret_name(), "my-cluster-superuser");
        assert_eq!(d.spec.storage_config.data_volume_size(), Some("10Gi"));
        assert!(d.annotation_is_true(crate::labels::ALLOW_STORAGE_CHANGES_ANNOTATION));
        let status = d.status.as_ref().unwrap();
        assert!(status.is_true(DatacenterConditionType::Ready));
        assert!(!status.is_true(DatacenterConditionType::ScalingUp));
        assert_eq!(
            d.datacenter_labels()
                .get(crate::labels::CLUSTER_LABEL)
                .map(String::as_str),
            Some("My_Cluster")
        );

        let mut spec = base();
        spec["datacenterName"] = json!("East DC");
        let d = dc(spec, json!({"datacenterName": "East DC"}));
        assert_eq!(d.datacenter_name(), "East DC");
        assert_eq!(d.label_resource_name(), "eastdc");
    }

    #[test]
    fn unknown_spec_fields_are_kept() {
        let mut spec = base();
        spec["someFutureField"] = json!({"a": 1});
        let d = dc(spec.clone(), json!({}));
        assert_eq!(
            d.spec.unknown_fields.get("someFutureField"),
            Some(&json!({"a": 1}))
        );
        assert_eq!(serde_json::to_value(&d.spec).unwrap(), spec);
    }

    #[test]
    fn volume_source_becomes_a_pod_volume() {
        let src: VolumeSource =
            serde_json::from_value(json!({"configMap": {"name": "extra"}})).unwrap();
        let v = src.to_volume("extra-config").unwrap();
        assert_eq!(v.name, "extra-config");
        assert_eq!(v.config_map.unwrap().name, "extra");
        assert_eq!(
            NodeState::parse("Started-not-Ready"),
            Some(NodeState::StartedNotReady)
        );
    }
}
