//! Well-known label, annotation and finalizer names. Their values are facts of the upstream
//! operators: users select on them, tools read them, so they must not change.

// --- cass-operator: labels on pods, StatefulSets and Services ---

/// Cassandra cluster name (cleaned for use as a label value).
pub const CLUSTER_LABEL: &str = "cassandra.datastax.com/cluster";
/// CassandraDatacenter name.
pub const DATACENTER_LABEL: &str = "cassandra.datastax.com/datacenter";
/// Rack name.
pub const RACK_LABEL: &str = "cassandra.datastax.com/rack";
/// `"true"` on the pods that act as seeds.
pub const SEED_NODE_LABEL: &str = "cassandra.datastax.com/seed-node";
/// Lifecycle state of a Cassandra pod, see [`NodeState`](crate::cassandra::NodeState).
pub const NODE_STATE_LABEL: &str = "cassandra.datastax.com/node-state";
/// Operator progress (`Updating` / `Ready`) mirrored on the datacenter's objects.
pub const OPERATOR_PROGRESS_LABEL: &str = "cassandra.datastax.com/operator-progress";
/// Set on Services Prometheus may scrape.
pub const PROM_METRICS_LABEL: &str = "cassandra.datastax.com/prom-metrics";
/// Prefix reserved for the operator's own labels and annotations.
pub const CASSANDRA_PREFIX: &str = "cassandra.datastax.com";

// --- cass-operator: annotations a user sets on a CassandraDatacenter ---

/// Hash of the configuration Secret, on pod templates.
pub const CONFIG_HASH_ANNOTATION: &str = "cassandra.datastax.com/config-hash";
/// Skip creating users, including the superuser (datacenter joining an existing cluster).
pub const SKIP_USER_CREATION_ANNOTATION: &str = "cassandra.datastax.com/skip-user-creation";
/// Decommission the datacenter's nodes before deleting it (multi-DC clusters).
pub const DECOMMISSION_ON_DELETE_ANNOTATION: &str = "cassandra.datastax.com/decommission-on-delete";
/// Do not (re-)add the finalizer.
pub const NO_FINALIZER_ANNOTATION: &str = "cassandra.datastax.com/no-finalizer";
/// No cleanup task after a scale-up.
pub const NO_AUTOMATED_CLEANUP_ANNOTATION: &str = "cassandra.datastax.com/no-cleanup";
/// Roll out StatefulSet changes without a spec change: `once` or `always`.
pub const UPDATE_ALLOWED_ANNOTATION: &str = "cassandra.datastax.com/autoupdate-spec";
/// Start several already-bootstrapped nodes at once.
pub const ALLOW_PARALLEL_STARTS_ANNOTATION: &str = "cassandra.datastax.com/allow-parallel-starts";
/// `"true"` allows the data volume size to be increased on an existing datacenter.
pub const ALLOW_STORAGE_CHANGES_ANNOTATION: &str = "cassandra.datastax.com/allow-storage-changes";
/// Force the k8ssandra-client config builder.
pub const USE_NEW_CONFIG_BUILDER_ANNOTATION: &str = "cassandra.datastax.com/use-new-config-builder";
/// Track cleanup tasks after a scale-up before other operations proceed.
pub const TRACK_CLEANUP_TASKS_ANNOTATION: &str = "cassandra.datastax.com/track-cleanup-tasks";
/// `"false"` keeps the PVCs when the datacenter is deleted.
pub const DELETE_PVC_ANNOTATION: &str = "cassandra.datastax.com/delete-pvc";
/// Do not create the PodDisruptionBudget.
pub const DISABLE_PDB_ANNOTATION: &str = "cassandra.datastax.com/disable-pdb-creation";
/// Clean up nodes of one rack in parallel after a scale-up.
pub const PARALLEL_CLEANUP_WITHIN_RACK_ANNOTATION: &str =
    "cassandra.datastax.com/enable-parallel-cleanup-within-rack";
/// Skip the update validations of the upstream webhook.
pub const BYPASS_WEBHOOK_VALIDATIONS_ANNOTATION: &str =
    "cassandra.datastax.com/bypass-webhook-validations";
/// Time of the last restart requested by a restart task, on pod templates.
pub const RESTARTED_AT_ANNOTATION: &str = "control.k8ssandra.io/restartedAt";

/// The finalizer set on CassandraDatacenters (and objects the operator must clean up).
pub const FINALIZER: &str = "finalizer.cassandra.datastax.com";

/// The values accepted by the `autoupdate-spec` annotations.
pub const AUTOUPDATE_VALUES: [&str; 2] = ["once", "always"];

// --- k8ssandra-operator ---

/// Name of the K8ssandraCluster that owns an object (ownership across clusters).
pub const K8SSANDRA_CLUSTER_NAME_LABEL: &str = "k8ssandra.io/cluster-name";
/// Namespace of the K8ssandraCluster that owns an object.
pub const K8SSANDRA_CLUSTER_NAMESPACE_LABEL: &str = "k8ssandra.io/cluster-namespace";
/// Datacenter an object belongs to.
pub const K8SSANDRA_DATACENTER_LABEL: &str = "k8ssandra.io/datacenter";
/// Secrets to be replicated by the cluster's ReplicatedSecret.
pub const REPLICATED_BY_LABEL: &str = "k8ssandra.io/replicated-by";
/// Value of [`REPLICATED_BY_LABEL`] set by the K8ssandraCluster controller.
pub const REPLICATED_BY_LABEL_VALUE: &str = "k8ssandracluster-controller";
/// The ReplicatedSecret that created a replicated Secret.
pub const REPLICATED_SECRET_LABEL: &str = "k8ssandra.io/replicated-secret-name";
/// Objects cleaned up by the K8ssandraCluster controller.
pub const CLEANED_UP_BY_LABEL: &str = "k8ssandra.io/cleaned-up-by";
/// Hash of the desired state, to detect changes cheaply.
pub const RESOURCE_HASH_ANNOTATION: &str = "k8ssandra.io/resource-hash";
/// Hash of the per-node ConfigMap, on pod templates.
pub const PER_NODE_CONFIG_HASH_ANNOTATION: &str = "k8ssandra.io/per-node-config-hash";
/// Replication of the system keyspaces when the cluster was created (JSON).
pub const INITIAL_SYSTEM_REPLICATION_ANNOTATION: &str = "k8ssandra.io/initial-system-replication";
/// User keyspace replication for datacenters being added, JSON: `{"dc2": {"ks1": 3}}`.
pub const DC_REPLICATION_ANNOTATION: &str = "k8ssandra.io/dc-replication";
/// Deprecated source datacenter for rebuilds (use `rebuild.sourceDc`).
pub const REBUILD_SOURCE_DC_ANNOTATION: &str = "k8ssandra.io/rebuild-src-dc";
/// Datacenter being rebuilt.
pub const REBUILD_DC_ANNOTATION: &str = "k8ssandra.io/rebuild-dc";
/// Forces a refresh of the role/auth Secrets.
pub const REFRESH_ANNOTATION: &str = "k8ssandra.io/refresh";
/// Purpose of an object.
pub const PURPOSE_ANNOTATION: &str = "k8ssandra.io/purpose";
/// Push the generated datacenters again without a spec change: `once` or `always`.
pub const K8SSANDRA_AUTOUPDATE_ANNOTATION: &str = "k8ssandra.io/autoupdate-spec";

// --- app.kubernetes.io ---

pub const NAME_LABEL: &str = "app.kubernetes.io/name";
pub const NAME_LABEL_VALUE: &str = "k8ssandra-operator";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
pub const COMPONENT_CASSANDRA: &str = "cassandra";
pub const COMPONENT_STARGATE: &str = "stargate";
pub const COMPONENT_REAPER: &str = "reaper";
pub const COMPONENT_TELEMETRY: &str = "telemetry";
pub const PART_OF_LABEL: &str = "app.kubernetes.io/part-of";
pub const PART_OF_LABEL_VALUE: &str = "k8ssandra";

/// System keyspaces whose replication the operator manages.
pub const SYSTEM_KEYSPACES: [&str; 3] = ["system_traces", "system_distributed", "system_auth"];
/// Additional system keyspaces of DSE.
pub const DSE_KEYSPACES: [&str; 3] = ["dse_leases", "dse_perf", "dse_security"];
