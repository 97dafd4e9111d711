//! `reaper.k8ssandra.io/v1alpha1` RepairSchedule: a Reaper repair schedule declared in a
//! manifest (none of the upstream operators has one; k8ssandra #224, KO #1437).
//!
//! A kind of its own rather than a list under `K8ssandraCluster.spec.reaper`: a schedule
//! has its own life (status with its Reaper id, next activation and last run; a finalizer
//! that deletes it from Reaper), its own RBAC (a team may own its keyspace's repairs without
//! write access to the cluster), and changing one must not touch the K8ssandraCluster's
//! generation, which drives the datacenters.
//!
//! The `repair-schedule` policy makes Reaper's schedule match: created with the owner
//! [`OWNER`], updated in place when only its tunables change (same id), re-created when what
//! it repairs changes, paused and activated with `paused`, deleted with the object. Reaper
//! schedules of other owners are never touched.

// kube's `printcolumn(...)` entries repeat `type_ = "..."`, which this lint mistakes for
// duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// The owner Reaper records on the schedules the operator makes.
pub const OWNER: &str = "k8ssandra-operator";
/// Days between two runs when `daysBetween` is not given (Reaper's default).
pub const DEFAULT_DAYS_BETWEEN: u32 = 7;
/// Intensity when `intensity` is not given: repair all the time.
pub const DEFAULT_INTENSITY: f64 = 1.0;
/// Type of the condition telling whether Reaper's schedule matches the spec.
pub const CONDITION_READY: &str = "Ready";

/// How the ranges of a repair are processed.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RepairParallelism {
    /// One replica of a range at a time (snapshots first).
    Sequential,
    /// Every replica of a range at once.
    Parallel,
    /// One replica per datacenter at a time.
    DatacenterAware,
}

/// A reference to a Reaper, in the RepairSchedule's namespace unless `namespace` is given.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReaperReference {
    /// Name of the Reaper.
    pub name: String,
    /// Namespace of the Reaper; the RepairSchedule's when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

fn number_or_string(_: &mut SchemaGenerator) -> Schema {
    // Upstream's manifests write intensity both ways ("0.5" and 0.5). The rule (0, 1] is
    // checked by the policy's admission check, which names the field.
    json_schema!({
        "description": "Share of time spent repairing, in (0, 1]: a number or a string holding one. Defaults to 1.",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// What to repair and how: the part of the spec a RepairSchedule and a RepairRun share
/// (flattened into both, so the manifests keep these fields at the top of `spec`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RepairSpec {
    /// Name of the K8ssandraCluster whose keyspace is repaired, in this namespace. Its
    /// Reaper (a Running one, or the one `reaperRef` names) runs the repair.
    pub cluster: String,

    /// The Reaper to use instead of the cluster's own, e.g. a control-plane Reaper the
    /// cluster registers with through its `spec.reaper.reaperRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reaper_ref: Option<ReaperReference>,

    /// The keyspace to repair; it must exist.
    pub keyspace: String,

    /// Tables to repair; all of the keyspace's when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tables: Option<Vec<String>>,

    /// Tables left out of the repair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blacklisted_tables: Option<Vec<String>>,

    /// Datacenters to repair; all when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenters: Option<Vec<String>>,

    /// Nodes (addresses) to repair; all when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<String>>,

    /// Share of time spent repairing, in (0, 1]. Defaults to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "number_or_string")]
    pub intensity: Option<serde_json::Value>,

    /// `SEQUENTIAL`, `PARALLEL` or `DATACENTER_AWARE` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "DATACENTER_AWARE"))]
    pub repair_parallelism: Option<RepairParallelism>,

    /// Incremental repair (only with `PARALLEL`); full repair when false (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<bool>,

    /// Segments per node; Reaper's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub segment_count_per_node: Option<u32>,

    /// Repair threads per segment, 1 to 4; Reaper's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4))]
    pub repair_thread_count: Option<u32>,
}

/// A Reaper repair schedule for one keyspace of a K8ssandraCluster.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "reaper.k8ssandra.io",
    version = "v1alpha1",
    kind = "RepairSchedule",
    plural = "repairschedules",
    singular = "repairschedule",
    namespaced,
    status = "RepairScheduleStatus",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster"),
    printcolumn(name = "Keyspace", type_ = "string", json_path = ".spec.keyspace"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(name = "Next", type_ = "string", json_path = ".status.nextActivation"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RepairScheduleSpec {
    /// What to repair and how.
    #[serde(flatten)]
    pub repair: RepairSpec,

    /// Days between two runs, at least 1. Defaults to 7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = 7))]
    pub days_between: Option<u32>,

    /// First activation, ISO-8601 in UTC (`2026-12-08T02:00:00`); now when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_time: Option<String>,

    /// Adaptive schedule: Reaper tunes segments and timeouts from earlier runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<bool>,

    /// Incremental schedules: run early once this percentage of the data is unrepaired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub percent_unrepaired_threshold: Option<u32>,

    /// Paused schedules start no run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

/// One run of the schedule, as Reaper reports it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RepairRunStatus {
    /// Reaper's id of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `NOT_STARTED`, `RUNNING`, `PAUSED`, `DONE`, `ERROR`, `ABORTED` or `DELETED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// When the run started (ISO-8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// When the run ended (ISO-8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// Segments repaired so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments_repaired: Option<u32>,
    /// Segments of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_segments: Option<u32>,
}

/// Observed state of a RepairSchedule.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RepairScheduleStatus {
    /// Reaper's id of the schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_id: Option<String>,
    /// `ACTIVE` or `PAUSED`, as Reaper reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// When the next run starts, as Reaper reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_activation: Option<String>,
    /// The newest run of the schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<RepairRunStatus>,
    /// The Reaper that runs the schedule (`<cluster>/<namespace>/<name>`; the cluster is
    /// empty for the operator's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reaper: Option<String>,
    /// `Ready`: Reaper's schedule matches the spec; its reason says why not (an
    /// unreachable Reaper, an unknown keyspace, bad input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}

/// The CRDs of this module.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![crate::schema::crd::<RepairSchedule>()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_a_manifest_with_intensity_as_string_or_number() {
        for intensity in [json!("0.5"), json!(0.5)] {
            let r: RepairSchedule = serde_json::from_value(json!({
                "apiVersion": "reaper.k8ssandra.io/v1alpha1", "kind": "RepairSchedule",
                "metadata": {"name": "ks1", "namespace": "ns"},
                "spec": {"cluster": "demo", "keyspace": "ks1", "intensity": intensity,
                         "repairParallelism": "DATACENTER_AWARE", "daysBetween": 3}
            }))
            .unwrap();
            assert_eq!(r.spec.days_between, Some(3));
            assert_eq!(
                r.spec.repair.repair_parallelism,
                Some(RepairParallelism::DatacenterAware)
            );
        }
    }

    #[test]
    fn the_crd_has_upstreams_group() {
        let crd = &crds()[0];
        assert_eq!(crd.spec.group, "reaper.k8ssandra.io");
        assert_eq!(crd.spec.names.kind, "RepairSchedule");
        assert_eq!(crd.spec.names.plural, "repairschedules");
    }
}
