//! Medusa (`medusa.k8ssandra.io/v1alpha1`): backups and restores of Cassandra to object
//! storage, run by a Medusa sidecar in every Cassandra pod.
//!
//! - [`MedusaClusterTemplate`] is the `spec.medusa` of a K8ssandraCluster: it turns the
//!   sidecar on and says where backups go.
//! - [`MedusaConfiguration`] holds storage settings shared by several clusters.
//! - [`MedusaBackupJob`] takes a backup of a datacenter; each completed backup is recorded
//!   as a [`MedusaBackup`]. [`MedusaBackupSchedule`] creates backup jobs (or purges) on a
//!   cron schedule.
//! - [`MedusaRestoreJob`] restores a datacenter from a backup.
//! - [`MedusaTask`] runs maintenance: sync the MedusaBackup objects with the storage
//!   bucket, purge old backups, or prepare a restore.

// kube's `printcolumn(...)` entries repeat `type_ = "..."`, which this lint mistakes for
// duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    LocalObjectReference, ObjectReference, Probe, ResourceRequirements, SecurityContext,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::encryption::Stores;
use crate::images::Image;
use crate::k8ssandra::merge_json;

/// Name of the Medusa sidecar container in Cassandra pods.
pub const BACKUP_SIDECAR_NAME: &str = "medusa";

/// Port of the Medusa sidecar's gRPC service.
pub const BACKUP_SIDECAR_PORT: i32 = 50051;

/// Label set on storage Secrets referenced by a MedusaConfiguration.
pub const MEDUSA_STORAGE_SECRET_IDENTIFIER_LABEL: &str = "k8ssandra.io/medusa-storage-secret";

/// Storage backend of the backups: `google_storage`, `azure_blobs`, `s3`, `s3_compatible`
/// (MinIO and the like; set `host` and `port`), `s3_rgw` (Ceph) or `ibm_storage`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum StorageProvider {
    /// Google Cloud Storage.
    GoogleStorage,
    /// Azure Blob Storage.
    AzureBlobs,
    /// Amazon S3.
    S3,
    /// An S3-compatible service (MinIO and the like); set `host` and `port`.
    S3Compatible,
    /// Ceph RADOS Gateway.
    S3Rgw,
    /// IBM Cloud Object Storage.
    IbmStorage,
}

/// How Medusa authenticates to the storage backend: `role-based` (the cloud identity of the
/// pod) or `credential-based` (keys from `storageSecretRef`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialsType {
    /// The identity of the pod (IAM role, workload identity); no key Secret.
    RoleBased,
    /// Keys read from `storageSecretRef`.
    CredentialBased,
}

/// Where and how Medusa stores backups.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Storage {
    /// Storage backend: `google_storage`, `azure_blobs`, `s3`, `s3_compatible`, `s3_rgw` or
    /// `ibm_storage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_provider: Option<StorageProvider>,

    /// `role-based` (the pod's cloud identity) or `credential-based` (keys from
    /// `storageSecretRef`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_type: Option<CredentialsType>,

    /// Secret holding the credentials file of the storage backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_secret_ref: Option<LocalObjectReference>,

    /// Bucket (or container) the backups go to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_name: Option<String>,

    /// Top-level folder in the bucket; the cluster name when empty. Required when a
    /// MedusaConfiguration is referenced, so that clusters sharing a bucket stay apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,

    /// Age in days above which purges delete backups; 0 keeps them regardless of age.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = 0))]
    pub max_backup_age: Option<i32>,

    /// Number of backups purges keep; 0 keeps them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = 0))]
    pub max_backup_count: Option<i32>,

    /// AWS profile used to authenticate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_profile: Option<String>,

    /// Upload bandwidth cap, such as `50MB/s` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "50MB/s"))]
    pub transfer_max_bandwidth: Option<String>,

    /// Number of files uploaded in parallel; faster, but heavier on the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = 0))]
    pub concurrent_transfers: Option<i32>,

    /// File size in bytes above which the provider's multi-part upload is used (default
    /// 100 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = 104857600))]
    pub multi_part_upload_threshold: Option<i64>,

    /// Host name of the storage endpoint (S3-compatible backends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,

    /// Region of the bucket (`default` when empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,

    /// Port of the storage endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,

    /// Connect to the storage endpoint over TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure: Option<bool>,

    /// With TLS, verify the endpoint's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_verify: Option<bool>,

    /// Days after which files no backup references may be deleted (10 when unset); the
    /// delay keeps purges from removing files of a backup still being written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_grace_period_in_days: Option<i32>,

    /// Volume used as backup storage by the `local` provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_storage: Option<PodStorageSettings>,
}

impl Storage {
    /// These settings laid over `base` (the storage settings of a MedusaConfiguration):
    /// every field set here wins, the others come from `base`.
    pub fn merged_over(&self, base: &Storage) -> Result<Storage, serde_json::Error> {
        let mut merged = serde_json::to_value(base)?;
        merge_json(&mut merged, serde_json::to_value(self)?);
        serde_json::from_value(merged)
    }
}

/// Settings of Medusa's gRPC service.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    /// Port the gRPC service listens on (named so as not to be confused with the storage
    /// `port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_port: Option<i32>,

    /// Certificates of the gRPC server and its clients; setting them turns on mutual TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<GrpcEncryption>,
}

/// Mutual TLS of Medusa's gRPC service.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GrpcEncryption {
    /// Secret with the client certificate the operator presents.
    pub client_secret_name: String,

    /// Secret with the server certificate of the Medusa sidecars.
    pub server_secret_name: String,
}

/// Volume of the Medusa pods when backups use local storage.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodStorageSettings {
    /// Storage class of the volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,

    /// Size of the volume (10Gi by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "10Gi"))]
    pub size: Option<Quantity>,

    /// Access modes of the volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_modes: Option<Vec<String>>,
}

/// The `medusa` section of a K8ssandraCluster: runs the Medusa sidecar in every Cassandra
/// pod and says where backups go.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!(has(self.medusaConfigurationRef) && has(self.medusaConfigurationRef.name) && self.medusaConfigurationRef.name != '') || (has(self.storageProperties) && has(self.storageProperties.prefix) && self.storageProperties.prefix != '')")
        .message("spec.medusa.storageProperties.prefix must be set when spec.medusa.medusaConfigurationRef is used")
        .reason(Reason::FieldValueRequired)
        .field_path(".storageProperties"),
    validation = Rule::new("!(has(self.medusaConfigurationRef) && has(self.medusaConfigurationRef.name) && self.medusaConfigurationRef.name != '') || !has(self.medusaConfigurationRef.__namespace__) || self.medusaConfigurationRef.__namespace__ == ''")
        .message("spec.medusa.medusaConfigurationRef.namespace must be empty: the MedusaConfiguration must be in the cluster's namespace")
        .reason(Reason::FieldValueForbidden)
        .field_path(".medusaConfigurationRef"),
    validation = Rule::new("!(has(self.medusaConfigurationRef) && has(self.medusaConfigurationRef.name) && self.medusaConfigurationRef.name != '') || ((!has(self.medusaConfigurationRef.apiVersion) || self.medusaConfigurationRef.apiVersion == '') && (!has(self.medusaConfigurationRef.kind) || self.medusaConfigurationRef.kind == '') && (!has(self.medusaConfigurationRef.fieldPath) || self.medusaConfigurationRef.fieldPath == '') && (!has(self.medusaConfigurationRef.resourceVersion) || self.medusaConfigurationRef.resourceVersion == '') && (!has(self.medusaConfigurationRef.uid) || self.medusaConfigurationRef.uid == ''))")
        .message("spec.medusa.medusaConfigurationRef may only set name: apiVersion, kind, fieldPath, resourceVersion and uid must be empty")
        .reason(Reason::FieldValueForbidden)
        .field_path(".medusaConfigurationRef"),
    validation = Rule::new("(has(self.medusaConfigurationRef) && has(self.medusaConfigurationRef.name) && self.medusaConfigurationRef.name != '') || (has(self.storageProperties) && has(self.storageProperties.storageProvider))")
        .message("spec.medusa.storageProperties.storageProvider must be set when no spec.medusa.medusaConfigurationRef is used")
        .reason(Reason::FieldValueRequired)
        .field_path(".storageProperties"),
    validation = Rule::new("(has(self.medusaConfigurationRef) && has(self.medusaConfigurationRef.name) && self.medusaConfigurationRef.name != '') || (has(self.storageProperties) && has(self.storageProperties.bucketName) && self.storageProperties.bucketName != '')")
        .message("spec.medusa.storageProperties.bucketName must be set when no spec.medusa.medusaConfigurationRef is used")
        .reason(Reason::FieldValueRequired)
        .field_path(".storageProperties"),
)]
pub struct MedusaClusterTemplate {
    /// A MedusaConfiguration (same namespace, only `name` set) whose storage settings this
    /// cluster starts from; `storageProperties` then override them field by field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medusa_configuration_ref: Option<ObjectReference>,

    /// Image of the Medusa containers; the operator's default image when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_image: Option<Image>,

    /// Security context of the Medusa containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,

    /// Secret (keys `username` and `password`, in the Cassandra namespace) with the CQL
    /// credentials Medusa logs in with; the role is created when the datacenter is set up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cassandra_user_secret_ref: Option<LocalObjectReference>,

    /// Storage backend of the backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_properties: Option<Storage>,

    /// Settings of Medusa's gRPC service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_properties: Option<Service>,

    /// Deprecated, use `clientEncryptionStores`: Secret with `rootca.crt`,
    /// `client.crt_signed` and `client.key`, used when Cassandra requires client encryption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates_secret_ref: Option<LocalObjectReference>,

    /// Client certificates Medusa uses when Cassandra requires client encryption, with
    /// configurable keys (replaces `certificatesSecretRef`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_encryption_stores: Option<Stores>,

    /// Resource requests and limits of the `medusa-restore` init container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_container_resources: Option<ResourceRequirements>,

    /// Resource requests and limits of the Medusa sidecar.
    #[serde(
        default,
        rename = "containerResources",
        skip_serializing_if = "Option::is_none"
    )]
    pub resources: Option<ResourceRequirements>,

    /// Readiness probe of the Medusa containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,

    /// Liveness probe of the Medusa containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Probe>,

    /// Purge expired backups every night (on by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub purge_backups: Option<bool>,
}

impl MedusaClusterTemplate {
    /// Name of the referenced MedusaConfiguration, if any.
    pub fn configuration_name(&self) -> Option<&str> {
        self.medusa_configuration_ref
            .as_ref()
            .and_then(|r| r.name.as_deref())
            .filter(|n| !n.is_empty())
    }
}

/// Kind of backup: `differential` (the default; uploads only the files earlier backups do
/// not hold) or `full`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum BackupType {
    /// Uploads only the files the previous backups do not already hold (the default).
    Differential,
    /// Uploads every file.
    Full,
}

/// A backup to take of one datacenter.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "medusa.k8ssandra.io",
    version = "v1alpha1",
    kind = "MedusaBackupJob",
    plural = "medusabackupjobs",
    singular = "medusabackupjob",
    namespaced,
    status = "MedusaBackupJobStatus",
    printcolumn(
        name = "Started",
        type_ = "date",
        json_path = ".status.startTime",
        description = "Backup start time"
    ),
    printcolumn(
        name = "Finished",
        type_ = "date",
        json_path = ".status.finishTime",
        description = "Backup finish time"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MedusaBackupJobSpec {
    /// Name of the CassandraDatacenter to back up.
    #[schemars(length(min = 1))]
    pub cassandra_datacenter: String,

    /// `differential` (the default) or `full`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "differential"))]
    pub backup_type: Option<BackupType>,
}

/// Progress of a backup job, per Cassandra pod.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MedusaBackupJobStatus {
    /// When the backup started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,

    /// When the backup finished on every pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_time: Option<Time>,

    /// Pods still backing up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<Vec<String>>,

    /// Pods whose backup succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<Vec<String>>,

    /// Pods whose backup failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<Vec<String>>,

    /// `Complete` (the backup is recorded as a MedusaBackup) and `Failed` (a pod's backup
    /// failed: the message names it), and why the job waits when it does (`Progressing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Option<Vec<Condition>>,
}

/// A backup present in the storage bucket, created when a backup job completes or a sync
/// task finds it.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "medusa.k8ssandra.io",
    version = "v1alpha1",
    kind = "MedusaBackup",
    plural = "medusabackups",
    singular = "medusabackup",
    namespaced,
    status = "MedusaBackupStatus",
    printcolumn(
        name = "Started",
        type_ = "date",
        json_path = ".status.startTime",
        description = "Backup start time"
    ),
    printcolumn(
        name = "Finished",
        type_ = "date",
        json_path = ".status.finishTime",
        description = "Backup finish time"
    ),
    printcolumn(
        name = "Nodes",
        type_ = "string",
        json_path = ".status.totalNodes",
        description = "Total number of nodes at the time of the backup"
    ),
    printcolumn(
        name = "Files",
        type_ = "integer",
        json_path = ".status.totalFiles",
        description = "Total number of files in the backup"
    ),
    printcolumn(
        name = "Size",
        type_ = "string",
        json_path = ".status.totalSize",
        description = "Human-readable total size of the backup"
    ),
    printcolumn(
        name = "Completed",
        type_ = "string",
        json_path = ".status.finishedNodes",
        description = "Number of nodes that completed this backup"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.status",
        description = "Backup completion status"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MedusaBackupSpec {
    /// Name of the CassandraDatacenter the backup was taken of.
    pub cassandra_datacenter: String,

    /// `differential` (the default) or `full`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "differential"))]
    pub backup_type: Option<BackupType>,
}

/// What the backup holds, as reported by Medusa.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MedusaBackupStatus {
    /// When the backup started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,

    /// When the backup finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_time: Option<Time>,

    /// Number of nodes in the datacenter when the backup was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_nodes: Option<i32>,

    /// Number of nodes whose part of the backup completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_nodes: Option<i32>,

    /// The nodes the backup was taken of, with their tokens (needed to restore).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<MedusaBackupNode>>,

    /// Number of files in the backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_files: Option<i64>,

    /// Total size of the backup, human-readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_size: Option<String>,

    /// Completion status reported by Medusa.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// One node of a backup.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MedusaBackupNode {
    /// Host name of the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,

    /// Tokens the node owned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Vec<i64>>,

    /// Datacenter of the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenter: Option<String>,

    /// Rack of the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
}

/// What each scheduled run does: `backup` (the default, creates a MedusaBackupJob) or
/// `purge` (creates a purge MedusaTask).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum ScheduledOperationType {
    /// Create a MedusaBackupJob (the default).
    Backup,
    /// Create a purge MedusaTask.
    Purge,
}

/// `concurrencyPolicy` value letting scheduled runs overlap.
pub const CONCURRENCY_POLICY_ALLOW: &str = "Allow";

/// `concurrencyPolicy` value allowing one active run at a time (the behaviour when unset).
pub const CONCURRENCY_POLICY_FORBID: &str = "Forbid";

/// A cron-like schedule of backups (or purges) of one datacenter.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "medusa.k8ssandra.io",
    version = "v1alpha1",
    kind = "MedusaBackupSchedule",
    plural = "medusabackupschedules",
    singular = "medusabackupschedule",
    namespaced,
    status = "MedusaBackupScheduleStatus",
    printcolumn(
        name = "Datacenter",
        type_ = "string",
        json_path = ".spec.backupSpec.cassandraDatacenter",
        description = "Datacenter which the task targets"
    ),
    printcolumn(
        name = "ScheduledExecution",
        type_ = "date",
        json_path = ".status.nextSchedule",
        description = "Next scheduled execution time"
    ),
    printcolumn(
        name = "LastExecution",
        type_ = "date",
        json_path = ".status.lastExecution",
        description = "Previous execution time"
    ),
    printcolumn(
        name = "OperationType",
        type_ = "string",
        json_path = ".spec.operationType",
        description = "Type of scheduled operation"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MedusaBackupScheduleSpec {
    /// When to run, in standard cron syntax (five fields: minute hour day-of-month month
    /// day-of-week), optionally prefixed by `CRON_TZ=<zone>`, or a descriptor such as
    /// `@daily` or `@every 12h`.
    // The maximum length bounds the cost of the CEL rule (the API server refuses unbounded
    // regular expressions over long strings); no cron expression comes near it.
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(
        validation = Rule::new(r"self.matches('^\\s*((CRON_)?TZ=\\S+\\s+)?(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|@every\\s+\\S+|[0-9A-Za-z*?,/-]+(\\s+[0-9A-Za-z*?,/-]+){4})\\s*$')")
            .message("spec.cronSchedule must be a standard cron expression of five fields (minute hour day-of-month month day-of-week), optionally prefixed by CRON_TZ=<zone>, or a descriptor such as @daily or @every 1h")
    )]
    pub cron_schedule: String,

    /// Pause the schedule: nothing is started while set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,

    /// The backup each run creates.
    pub backup_spec: MedusaBackupJobSpec,

    /// `Forbid` (the default: one run at a time) or `Allow` (runs may overlap, provided
    /// every other active run allows it too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_policy: Option<String>,

    /// `backup` (the default) or `purge`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "backup"))]
    pub operation_type: Option<ScheduledOperationType>,

    /// IANA time zone the schedule is read in, such as `Europe/Berlin` (default UTC). Not
    /// together with a `CRON_TZ=` prefix in `cronSchedule`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,

    /// A run more than this many seconds late (the operator was down, or a Forbid wait) is
    /// skipped; unset, the most recent missed run always starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub starting_deadline_seconds: Option<i64>,

    /// Finished successful runs kept (default 3); older ones are deleted. Deleting a
    /// MedusaBackupJob never deletes its MedusaBackup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub successful_jobs_history_limit: Option<i32>,

    /// Failed runs kept (default 1); older ones are deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub failed_jobs_history_limit: Option<i32>,
}

/// Timing of a backup schedule.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MedusaBackupScheduleStatus {
    /// When the next run is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule: Option<Time>,

    /// When the last run started; empty if it never ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_execution: Option<Time>,

    /// `Valid` (the schedule, time zone and policy are usable: the message names the field
    /// and the rule when not) and `Waiting` (a due run waits for an active one, Forbid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Option<Vec<Condition>>,
}

/// A restore of one datacenter from a MedusaBackup.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "medusa.k8ssandra.io",
    version = "v1alpha1",
    kind = "MedusaRestoreJob",
    plural = "medusarestorejobs",
    singular = "medusarestorejob",
    namespaced,
    status = "MedusaRestoreJobStatus",
    printcolumn(
        name = "Started",
        type_ = "date",
        json_path = ".status.startTime",
        description = "Restore start time"
    ),
    printcolumn(
        name = "Finished",
        type_ = "date",
        json_path = ".status.finishTime",
        description = "Restore finish time"
    ),
    printcolumn(
        name = "Error",
        type_ = "string",
        json_path = ".status.message",
        description = "Error message"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MedusaRestoreJobSpec {
    /// Name of the MedusaBackup to restore.
    pub backup: String,

    /// Name of the CassandraDatacenter to restore into.
    pub cassandra_datacenter: String,

    /// Restore only these keyspaces (beyond upstream; empty or absent: every keyspace).
    /// Each keyspace must exist in the datacenter's schema and in the backup: a selective
    /// restore replaces the files of the named keyspaces' tables and leaves the schema, the
    /// other keyspaces and the system keyspaces (unless named) as they are. Tables dropped
    /// and re-created since the backup have a new id, and their restored files are not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyspaces: Option<Vec<String>>,

    /// Restore only these tables, each `keyspace.table` (beyond upstream), besides whole
    /// `keyspaces`; the same rules apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tables: Option<Vec<String>>,

    /// Seconds the datacenter's pods may take, from its stop for the restore, to restore
    /// and be Ready again (beyond upstream; default 21600, 6 hours: each node downloads its
    /// backup first). Past it the job is Failed naming the pods not Ready; nothing is
    /// stopped again or deleted, and the pods still restore before they start while the
    /// job exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_deadline_seconds: Option<i64>,
}

/// Name of the ConfigMap a running MedusaRestoreJob makes for datacenter `dc` (the object
/// name): the `medusa-restore` init container reads it through `envFrom` (optional), so the
/// pod template never carries a restore and a later change does not restore or roll again.
pub fn restore_config_map_name(dc: &str) -> String {
    format!("{dc}-medusa-restore")
}

/// Keys of the restore ConfigMap for a restore of chosen keyspaces and tables: the names,
/// comma-separated, read by the `sitecustomize.py` the `<kc>-medusa` ConfigMap ships, and
/// the Python path that puts it (the ConfigMap volume at `/etc/medusa`) before Medusa's
/// own (`/home/cassandra`, the image's `PYTHONPATH`).
pub const RESTORE_KEYSPACES_ENV: &str = "MEDUSA_RESTORE_KEYSPACES";
pub const RESTORE_TABLES_ENV: &str = "MEDUSA_RESTORE_TABLES";
pub const RESTORE_PYTHONPATH: &str = "/etc/medusa:/home/cassandra";

/// Phase of a MedusaRestoreJob while its datacenter is stopped for the restore: the
/// cassandra-datacenter policy stops a datacenter with a job of its own in this phase.
pub const RESTORE_PHASE_STOP: &str = "Stopping";

/// Progress of a restore.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MedusaRestoreJobStatus {
    /// Unique key of this restore operation, shared with the Medusa sidecars.
    pub restore_key: String,

    /// Whether the prepare-restore step has run on every pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_prepared: Option<bool>,

    /// Which backed-up nodes each target node restores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_mapping: Option<MedusaRestoreMapping>,

    /// When the restore started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,

    /// When the restore finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_time: Option<Time>,

    /// When the datacenter was stopped for the restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenter_stopped: Option<Time>,

    /// Pods still restoring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<Vec<String>>,

    /// Pods whose restore succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<Vec<String>>,

    /// Pods whose restore failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<Vec<String>>,

    /// Why the restore failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// Where the restore stands: `Validating`, `Stopping` (the datacenter stops, with the
    /// restore ConfigMap in place), `Starting` (pods restore in their init container and
    /// start), `Roles` (the datacenter's roles are re-created: the restored `system_auth`
    /// holds old passwords), `Complete` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,

    /// `Complete`, `Failed` (the message names the field and the rule, or the step), and
    /// `Progressing` (what the restore waits for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Option<Vec<Condition>>,
}

/// Mapping of backed-up nodes to the nodes that restore them.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct MedusaRestoreMapping {
    /// Whether the restore goes back to the same nodes it was taken from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_place: Option<bool>,

    /// For each target node, the backed-up node(s) it restores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_map: Option<BTreeMap<String, MappingSource>>,
}

/// The backed-up node(s) one target node restores.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct MappingSource {
    /// Backed-up node(s).
    pub source: Vec<String>,

    /// Whether the target node is a seed.
    pub seed: bool,
}

/// Operation of a MedusaTask: `sync`, `purge` or `prepare_restore`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum MedusaTaskOperation {
    /// Create MedusaBackup objects for the backups found in storage, delete those whose
    /// backup is gone.
    Sync,
    /// Delete backups beyond `maxBackupAge`/`maxBackupCount`, then sync.
    Purge,
    /// Compute and distribute the restore mapping of a restore (`restoreKey`).
    PrepareRestore,
}

/// A maintenance operation run on every Medusa sidecar of a datacenter.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[kube(
    group = "medusa.k8ssandra.io",
    version = "v1alpha1",
    kind = "MedusaTask",
    plural = "medusatasks",
    singular = "medusatask",
    namespaced,
    status = "MedusaTaskStatus",
    printcolumn(
        name = "Datacenter",
        type_ = "string",
        json_path = ".spec.cassandraDatacenter",
        description = "Datacenter which the task targets"
    ),
    printcolumn(
        name = "Operation",
        type_ = "string",
        json_path = ".spec.operation",
        description = "Type of operation"
    ),
    printcolumn(
        name = "Start",
        type_ = "date",
        json_path = ".status.startTime",
        description = "Start time"
    ),
    printcolumn(
        name = "Finish",
        type_ = "date",
        json_path = ".status.finishTime",
        description = "Finish time"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MedusaTaskSpec {
    /// `sync`, `purge` or `prepare_restore`.
    pub operation: MedusaTaskOperation,

    /// Name of the CassandraDatacenter to run the task on.
    pub cassandra_datacenter: String,

    /// Name of the backup the operation concerns, for operations that need one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_name: Option<String>,

    /// Restore key, for `prepare_restore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_key: Option<String>,
}

/// Progress and results of a MedusaTask.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MedusaTaskStatus {
    /// When the task started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,

    /// When the task finished on every pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_time: Option<Time>,

    /// Pods still running the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<Vec<String>>,

    /// Results of the pods that completed the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<Vec<TaskResult>>,

    /// Pods where the task failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<Vec<String>>,

    /// `Complete`, and `Failed` naming the pods whose call failed and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Option<Vec<Condition>>,
}

/// Result of a MedusaTask on one pod.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TaskResult {
    /// The pod that ran the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,

    /// Purge only: number of backups deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nb_backups_purged: Option<i64>,

    /// Purge only: number of files deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nb_objects_purged: Option<i64>,

    /// Purge only: total size of the deleted files, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_purged_size: Option<i64>,

    /// Purge only: files kept because they are younger than the grace period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_objects_within_gc_grace: Option<i64>,
}

/// Storage settings shared by the K8ssandraClusters that reference it.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "medusa.k8ssandra.io",
    version = "v1alpha1",
    kind = "MedusaConfiguration",
    plural = "medusaconfigurations",
    singular = "medusaconfiguration",
    namespaced,
    status = "MedusaConfigurationStatus"
)]
#[serde(rename_all = "camelCase")]
pub struct MedusaConfigurationSpec {
    /// Storage backend of the backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_properties: Option<Storage>,
}

/// Condition type: the storage Secret referenced by the configuration exists.
pub const MEDUSA_CONFIGURATION_SECRET_AVAILABLE: &str = "SecretAvailable";

/// Condition type: the configuration is usable.
pub const MEDUSA_CONFIGURATION_READY: &str = "Ready";

/// Observed state of a MedusaConfiguration.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MedusaConfigurationStatus {
    /// Conditions `SecretAvailable` and `Ready`, one entry per type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Option<Vec<Condition>>,
}

/// Every CRD defined in this module.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        crate::schema::crd::<MedusaBackupJob>(),
        crate::schema::crd::<MedusaBackup>(),
        crate::schema::crd::<MedusaBackupSchedule>(),
        crate::schema::crd::<MedusaRestoreJob>(),
        crate::schema::crd::<MedusaTask>(),
        crate::schema::crd::<MedusaConfiguration>(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;
    use serde_json::{Value, json};

    fn schema_of(crd: &CustomResourceDefinition) -> Value {
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
    fn crds_match_upstream_identity() {
        let expected = [
            ("medusabackupjobs.medusa.k8ssandra.io", "MedusaBackupJob", 2),
            ("medusabackups.medusa.k8ssandra.io", "MedusaBackup", 7),
            (
                "medusabackupschedules.medusa.k8ssandra.io",
                "MedusaBackupSchedule",
                4,
            ),
            (
                "medusarestorejobs.medusa.k8ssandra.io",
                "MedusaRestoreJob",
                3,
            ),
            ("medusatasks.medusa.k8ssandra.io", "MedusaTask", 4),
            (
                "medusaconfigurations.medusa.k8ssandra.io",
                "MedusaConfiguration",
                0,
            ),
        ];
        let crds = crds();
        assert_eq!(crds.len(), expected.len());
        for (crd, (name, kind, columns)) in crds.iter().zip(expected) {
            assert_eq!(crd.metadata.name.as_deref(), Some(name));
            assert_eq!(crd.spec.names.kind, kind);
            assert_eq!(crd.spec.scope, "Namespaced");
            let v = &crd.spec.versions[0];
            assert_eq!(v.name, "v1alpha1");
            assert!(v.subresources.as_ref().unwrap().status.is_some(), "{kind}");
            assert_eq!(
                v.additional_printer_columns.iter().flatten().count(),
                columns,
                "{kind}"
            );
        }
    }

    #[test]
    fn schemas_have_upstream_required_fields_enums_and_defaults() {
        let job = schema_of(&MedusaBackupJob::crd());
        let spec = &job["properties"]["spec"];
        assert_eq!(spec["required"], json!(["cassandraDatacenter"]));
        assert_eq!(
            spec["properties"]["cassandraDatacenter"]["minLength"],
            json!(1)
        );
        assert_eq!(
            spec["properties"]["backupType"]["enum"],
            json!(["differential", "full"])
        );
        assert_eq!(spec["properties"]["backupType"]["default"], "differential");

        let task = schema_of(&MedusaTask::crd());
        let spec = &task["properties"]["spec"];
        let mut required: Vec<_> = spec["required"].as_array().unwrap().iter().collect();
        required.sort_by_key(|v| v.as_str().unwrap().to_string());
        assert_eq!(
            required,
            [&json!("cassandraDatacenter"), &json!("operation")]
        );
        assert_eq!(
            spec["properties"]["operation"]["enum"],
            json!(["sync", "purge", "prepare_restore"])
        );

        let restore = schema_of(&MedusaRestoreJob::crd());
        assert_eq!(
            restore["properties"]["status"]["required"],
            json!(["restoreKey"])
        );
        let mapping =
            &restore["properties"]["status"]["properties"]["restoreMapping"]["properties"];
        assert!(mapping["in_place"].is_object());
        assert!(mapping["host_map"]["additionalProperties"]["properties"]["seed"].is_object());

        let config = schema_of(&MedusaConfiguration::crd());
        let storage =
            &config["properties"]["spec"]["properties"]["storageProperties"]["properties"];
        assert_eq!(
            storage["storageProvider"]["enum"],
            json!([
                "google_storage",
                "azure_blobs",
                "s3",
                "s3_compatible",
                "s3_rgw",
                "ibm_storage"
            ])
        );
        assert_eq!(
            storage["credentialsType"]["enum"],
            json!(["role-based", "credential-based"])
        );
        assert_eq!(storage["transferMaxBandwidth"]["default"], "50MB/s");
        assert_eq!(
            storage["multiPartUploadThreshold"]["default"],
            json!(104857600)
        );
        assert_eq!(
            storage["podStorage"]["properties"]["size"]["default"],
            "10Gi"
        );
        let conditions = &config["properties"]["status"]["properties"]["conditions"];
        assert_eq!(conditions["x-kubernetes-list-type"], "map");
        assert_eq!(conditions["x-kubernetes-list-map-keys"], json!(["type"]));
    }

    #[test]
    fn schedule_validates_the_cron_expression() {
        let s = schema_of(&MedusaBackupSchedule::crd());
        let spec = &s["properties"]["spec"];
        let mut required: Vec<_> = spec["required"].as_array().unwrap().iter().collect();
        required.sort_by_key(|v| v.as_str().unwrap().to_string());
        assert_eq!(required, [&json!("backupSpec"), &json!("cronSchedule")]);
        let cron = &spec["properties"]["cronSchedule"];
        let rule = cron["x-kubernetes-validations"][0]["rule"]
            .as_str()
            .unwrap();
        assert!(rule.starts_with("self.matches("), "{rule}");
        assert_eq!(
            spec["properties"]["operationType"]["enum"],
            json!(["backup", "purge"])
        );
        assert_eq!(spec["properties"]["operationType"]["default"], "backup");
    }

    #[test]
    fn cluster_template_rules_follow_the_configuration_reference() {
        let s = schemars::generate::SchemaSettings::openapi3()
            .into_generator()
            .into_root_schema_for::<MedusaClusterTemplate>()
            .to_value();
        let rules = s["x-kubernetes-validations"].as_array().unwrap();
        assert_eq!(rules.len(), 5);
        for r in rules {
            assert!(r["message"].as_str().unwrap().starts_with("spec.medusa."));
            // `namespace` is a CEL keyword: it must be escaped to be readable.
            let rule = r["rule"].as_str().unwrap();
            assert!(!rule.contains(".namespace"), "{rule}");
        }
        assert!(s["properties"]["containerResources"].is_object());
        assert_eq!(s["properties"]["purgeBackups"]["default"], true);
    }

    #[test]
    fn cluster_storage_overrides_the_shared_configuration() {
        let shared: Storage = serde_json::from_value(json!({
            "storageProvider": "s3_compatible",
            "bucketName": "shared",
            "host": "minio",
            "secure": true,
            "podStorage": {"size": "20Gi", "storageClassName": "standard"}
        }))
        .unwrap();
        let own: Storage = serde_json::from_value(json!({
            "prefix": "demo",
            "secure": false,
            "podStorage": {"size": "5Gi"}
        }))
        .unwrap();
        let merged = own.merged_over(&shared).unwrap();
        assert_eq!(
            serde_json::to_value(&merged).unwrap(),
            json!({
                "storageProvider": "s3_compatible",
                "bucketName": "shared",
                "host": "minio",
                "prefix": "demo",
                "secure": false,
                "podStorage": {"size": "5Gi", "storageClassName": "standard"}
            })
        );
    }

    #[test]
    fn restore_mapping_keeps_snake_case_keys() {
        let v = json!({
            "restoreKey": "k",
            "restoreMapping": {
                "in_place": false,
                "host_map": {"a": {"source": ["b"], "seed": true}}
            }
        });
        let s: MedusaRestoreJobStatus = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(&s).unwrap(), v);
        let t = MedusaClusterTemplate {
            medusa_configuration_ref: Some(ObjectReference {
                name: Some("cfg".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(t.configuration_name(), Some("cfg"));
        assert_eq!(MedusaClusterTemplate::default().configuration_name(), None);
    }
}
