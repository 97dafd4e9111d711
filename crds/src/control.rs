//! `control.k8ssandra.io/v1alpha1`: operations on running clusters. CassandraTask runs jobs
//! (cleanup, restart, rebuild, ...) node by node in one datacenter; ScheduledTask creates
//! CassandraTasks on a cron schedule; K8ssandraTask runs a CassandraTask in each datacenter of a
//! K8ssandraCluster.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a CassandraTask.
// Several printer columns share `type_ = "date"`, which clippy takes for a repeated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "control.k8ssandra.io",
    version = "v1alpha1",
    kind = "CassandraTask",
    plural = "cassandratasks",
    singular = "cassandratask",
    namespaced,
    status = "CassandraTaskStatus",
    printcolumn(
        name = "Datacenter",
        type_ = "string",
        json_path = ".spec.datacenter.name",
        description = "Datacenter which the task targets"
    ),
    printcolumn(
        name = "Job",
        type_ = "string",
        json_path = ".spec.jobs[0].command",
        description = "The job that is executed"
    ),
    printcolumn(
        name = "Scheduled",
        type_ = "date",
        json_path = ".spec.scheduledTime",
        description = "When the execution of the task is allowed at earliest"
    ),
    printcolumn(
        name = "Started",
        type_ = "date",
        json_path = ".status.startTime",
        description = "When the execution of the task started"
    ),
    printcolumn(
        name = "Completed",
        type_ = "date",
        json_path = ".status.completionTime",
        description = "When the execution of the task finished"
    ),
    derive = "PartialEq",
    derive = "Default",
    doc = "A CassandraTask runs maintenance jobs (cleanup, restart, rebuild, replacenode, \
           upgradesstables, compact, scrub, flush, ...) on the nodes of one \
           CassandraDatacenter, node by node, and records each pod's progress in its status."
)]
#[serde(rename_all = "camelCase")]
pub struct CassandraTaskSpec {
    /// The CassandraDatacenter the task runs on (name, and namespace when not the task's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenter: Option<ObjectReference>,

    /// What to run, and when.
    #[serde(flatten)]
    pub template: CassandraTaskTemplate,
}

/// What a task runs and how.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CassandraTaskTemplate {
    /// Earliest time the task may start; immediately when unset. Other tasks may delay it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_time: Option<Time>,

    /// Jobs to run, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<Vec<CassandraJob>>,

    /// What happens when a job fails on a pod: `OnFailure` (default: retry) or `Never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<String>,

    /// Seconds a finished task is kept before it is deleted (default 86400); 0 keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds_after_finished: Option<i32>,

    /// `Forbid` (default): the task runs alone. `Allow`: it may run with other tasks that
    /// also allow it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["Allow", "Forbid", "Replace"]))]
    pub concurrency_policy: Option<String>,

    /// Pods of a rack processed at the same time; 1 when unset or 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_pods: Option<i64>,

    /// How many times a failed pod is retried with restartPolicy OnFailure (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
}

/// Commands a job can run.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum CassandraCommand {
    /// Remove data a node no longer owns (after adding nodes).
    Cleanup,
    /// Stream data from another datacenter (args.source_datacenter).
    Rebuild,
    /// Rolling restart of the nodes (args.rack limits it to one rack).
    Restart,
    /// Rewrite SSTables to the current format (after an upgrade).
    Upgradesstables,
    /// Replace the node of a pod (args.pod_name): new volume, same tokens.
    Replacenode,
    /// Major compaction.
    Compact,
    /// Rebuild SSTables, dropping corrupt data.
    Scrub,
    /// Move a node to new tokens (args.new_tokens).
    Move,
    /// Remove deleted data (tombstones) from SSTables.
    Garbagecollect,
    /// Flush memtables to disk.
    Flush,
    /// Load SSTables placed in the data directory.
    Refresh,
    /// Reload the node's truststores (internode encryption).
    Tsreload,
}

impl CassandraCommand {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Cleanup => "cleanup",
            Self::Rebuild => "rebuild",
            Self::Restart => "restart",
            Self::Upgradesstables => "upgradesstables",
            Self::Replacenode => "replacenode",
            Self::Compact => "compact",
            Self::Scrub => "scrub",
            Self::Move => "move",
            Self::Garbagecollect => "garbagecollect",
            Self::Flush => "flush",
            Self::Refresh => "refresh",
            Self::Tsreload => "tsreload",
        }
    }
}

/// One job of a task.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
pub struct CassandraJob {
    /// Name of the job, unique in the task.
    pub name: String,

    /// What to run: cleanup, rebuild, restart, upgradesstables, replacenode, compact, scrub,
    /// move, garbagecollect, flush, refresh or tsreload.
    pub command: CassandraCommand,

    /// Arguments of the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<JobArguments>,
}

/// Arguments of a job; each command reads the ones it needs.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct JobArguments {
    /// Keyspace to work on (cleanup, upgradesstables, compact, scrub, flush, garbagecollect,
    /// refresh); all keyspaces when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyspace_name: Option<String>,

    /// Datacenter to stream from (rebuild).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_datacenter: Option<String>,

    /// Pod to act on (replacenode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,

    /// Rack to limit the job to (restart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,

    /// Tables of the keyspace to work on; all when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tables: Option<Vec<String>>,

    /// Number of SSTables processed at once on a node (compaction threads).
    #[serde(rename = "jobs", default, skip_serializing_if = "Option::is_none")]
    pub jobs_count: Option<i64>,

    /// Scrub: do not validate columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_validate: Option<bool>,

    /// Scrub: do not snapshot first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_snapshot: Option<bool>,

    /// Scrub: skip corrupted partitions instead of failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_corrupted: Option<bool>,

    /// Compact: split the output into several SSTables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_output: Option<bool>,

    /// Compact: first token of the range to compact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_token: Option<String>,

    /// Compact: last token of the range to compact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_token: Option<String>,

    /// Move: the new token of each pod to move, by pod name. Pods not listed stay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_tokens: Option<BTreeMap<String, String>>,

    /// Restart: restart several nodes (up to a whole rack) at once when the cluster is
    /// healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast: Option<bool>,

    /// Run even when the operator considers it unsafe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
}

/// Progress of a task.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CassandraTaskStatus {
    /// Conditions: Running, Complete, Failed (and DatacenterUpdated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,

    /// When the task started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,

    /// When the task finished successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,

    /// Pods being processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<i64>,

    /// Pods processed successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded: Option<i64>,

    /// Pods that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<i64>,

    /// Progress on each pod, by pod name; a restarted operator resumes from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_statuses: Option<BTreeMap<String, PodProcessingStatus>>,
}

/// Condition types of tasks.
pub mod condition {
    pub const COMPLETE: &str = "Complete";
    pub const FAILED: &str = "Failed";
    pub const RUNNING: &str = "Running";
    pub const DATACENTER_UPDATED: &str = "DatacenterUpdated";
    /// K8ssandraTask only: the task cannot run as written.
    pub const INVALID: &str = "Invalid";
}

/// Phase of one pod in a task.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PodProcessingPhase {
    #[serde(rename = "WAITING")]
    Waiting,
    #[serde(rename = "RUNNING")]
    Running,
    #[serde(rename = "COMPLETED")]
    Completed,
    #[serde(rename = "ERROR")]
    Error,
}

/// Progress of a task on one pod.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodProcessingStatus {
    /// WAITING, RUNNING, COMPLETED or ERROR.
    pub status: PodProcessingPhase,

    /// Id of the asynchronous management API job, while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,

    /// Retries done so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,

    /// Error of the last failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,

    /// When processing of the pod started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,

    /// When processing of the pod ended (success or failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
}

/// Desired state of a ScheduledTask.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "control.k8ssandra.io",
    version = "v1alpha1",
    kind = "ScheduledTask",
    plural = "scheduledtasks",
    singular = "scheduledtask",
    namespaced,
    status = "ScheduledTaskStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "A ScheduledTask creates a CassandraTask on a cron schedule, for recurring \
           maintenance such as nightly cleanups or periodic restarts."
)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledTaskSpec {
    /// Cron expression of when to create the task, such as `0 2 * * *`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,

    /// The CassandraTask to create each time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_details: Option<TaskDetails>,
}

/// The task a ScheduledTask creates.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct TaskDetails {
    /// Name prefix of the created CassandraTasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,

    /// Spec of the created CassandraTasks.
    #[serde(flatten)]
    pub spec: CassandraTaskSpec,
}

/// Observed state of a ScheduledTask.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledTaskStatus {
    /// When the next task will be created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule: Option<Time>,

    /// When a task was last created; never when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_execution: Option<Time>,
}

/// Desired state of a K8ssandraTask.
// Several printer columns share `type_ = "date"`, which clippy takes for a repeated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "control.k8ssandra.io",
    version = "v1alpha1",
    kind = "K8ssandraTask",
    plural = "k8ssandratasks",
    singular = "k8ssandratask",
    namespaced,
    status = "K8ssandraTaskStatus",
    printcolumn(
        name = "Job",
        type_ = "string",
        json_path = ".spec.template.jobs[0].command",
        description = "The job that is executed"
    ),
    printcolumn(
        name = "Scheduled",
        type_ = "date",
        json_path = ".spec.template.scheduledTime",
        description = "When the execution of the task is allowed at earliest"
    ),
    printcolumn(
        name = "Started",
        type_ = "date",
        json_path = ".status.startTime",
        description = "When the execution of the task started"
    ),
    printcolumn(
        name = "Completed",
        type_ = "date",
        json_path = ".status.completionTime",
        description = "When the execution of the task finished"
    ),
    derive = "PartialEq",
    derive = "Default",
    doc = "A K8ssandraTask runs the same CassandraTask in every datacenter (or the listed \
           ones) of a K8ssandraCluster, one datacenter after the other or all at once, and \
           sums up their progress."
)]
#[serde(rename_all = "camelCase")]
pub struct K8ssandraTaskSpec {
    /// The K8ssandraCluster to run on (name, and namespace when not the task's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ObjectReference>,

    /// Datacenters to run in, by name; all of them, in spec order, when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenters: Option<Vec<String>>,

    /// `Forbid` (default): one datacenter at a time, stopping at the first failure. `Allow`:
    /// every datacenter at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["Allow", "Forbid", "Replace"]))]
    pub dc_concurrency_policy: Option<String>,

    /// The CassandraTask created in each datacenter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<CassandraTaskTemplate>,
}

/// Observed state of a K8ssandraTask: the sum over datacenters, and each one's.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct K8ssandraTaskStatus {
    /// Totals over every datacenter.
    #[serde(flatten)]
    pub total: CassandraTaskStatus,

    /// Progress in each datacenter, by datacenter name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenters: Option<BTreeMap<String, CassandraTaskStatus>>,
}

/// Every CRD of this module.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        crate::schema::crd::<CassandraTask>(),
        crate::schema::crd::<ScheduledTask>(),
        crate::schema::crd::<K8ssandraTask>(),
    ]
}
