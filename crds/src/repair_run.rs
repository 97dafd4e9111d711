//! `reaper.k8ssandra.io/v1alpha1` RepairRun: one Reaper repair run of a keyspace, declared in
//! a manifest (KO #1437 asks for repairs from a Kubernetes API; upstream has none).
//!
//! The spec's repair part is the RepairSchedule's ([`RepairSpec`], the same struct), plus a
//! segment timeout. The `repair-run` policy starts exactly one Reaper run per object (its
//! cause carries the object's UID, so a restarted operator adopts the run instead of
//! starting another), follows it to its end and mirrors its progress into the status. The
//! spec cannot change once the run is started.

// kube's `printcolumn(...)` entries repeat `type_ = "..."`, which this lint mistakes for
// duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::repair_schedule::RepairSpec;

/// Condition type: `True` once Reaper's run is `DONE`; while it is not, its reason says
/// why (waiting for a Reaper, `ReaperUnreachable`, `KeyspaceNotFound`, `InvalidSpec`,
/// `Running`).
pub const CONDITION_COMPLETE: &str = "Complete";
/// Condition type: `True` once the run ended otherwise than `DONE` (its message is Reaper's
/// last event of the run).
pub const CONDITION_FAILED: &str = "Failed";

/// A one-off Reaper repair of one keyspace of a K8ssandraCluster.
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "reaper.k8ssandra.io",
    version = "v1alpha1",
    kind = "RepairRun",
    plural = "repairruns",
    singular = "repairrun",
    namespaced,
    status = "RepairRunStatus",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster"),
    printcolumn(name = "Keyspace", type_ = "string", json_path = ".spec.keyspace"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(
        name = "Repaired",
        type_ = "integer",
        json_path = ".status.segmentsRepaired"
    ),
    printcolumn(
        name = "Segments",
        type_ = "integer",
        json_path = ".status.totalSegments"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RepairRunSpec {
    /// What to repair and how (the fields a RepairSchedule has too).
    #[serde(flatten)]
    pub repair: RepairSpec,

    /// Minutes after which a segment's repair is abandoned and retried; Reaper's default
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub timeout_minutes: Option<u32>,
}

/// Observed state of a RepairRun.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RepairRunStatus {
    /// Reaper's id of the run; set once it is started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Reaper's state of the run: `NOT_STARTED`, `RUNNING`, `PAUSED`, `DONE`, `ERROR`,
    /// `ABORTED` or `DELETED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Segments repaired so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments_repaired: Option<u32>,
    /// Segments of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_segments: Option<u32>,
    /// When the run started (ISO-8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// When the run ended (ISO-8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// Reaper's last event of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event: Option<String>,
    /// The Reaper that runs it (`<cluster>/<namespace>/<name>`; the cluster is empty for
    /// the operator's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reaper: Option<String>,
    /// `Complete` and `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}

/// The CRDs of this module.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![crate::schema::crd::<RepairRun>()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_a_manifest_with_the_schedules_repair_fields() {
        let r: RepairRun = serde_json::from_value(json!({
            "apiVersion": "reaper.k8ssandra.io/v1alpha1", "kind": "RepairRun",
            "metadata": {"name": "ks1-now", "namespace": "ns"},
            "spec": {"cluster": "demo", "keyspace": "ks1", "intensity": "0.5",
                     "tables": ["t1"], "timeoutMinutes": 30}
        }))
        .unwrap();
        assert_eq!(r.spec.repair.keyspace, "ks1");
        assert_eq!(r.spec.repair.tables, Some(vec!["t1".to_string()]));
        assert_eq!(r.spec.timeout_minutes, Some(30));
        let back = serde_json::to_value(&r.spec).unwrap();
        assert_eq!(back["keyspace"], "ks1", "flattened: {back}");
    }

    #[test]
    fn the_crd_has_upstreams_group() {
        let crd = &crds()[0];
        assert_eq!(crd.spec.group, "reaper.k8ssandra.io");
        assert_eq!(crd.spec.names.kind, "RepairRun");
        let v = serde_json::to_value(crd).unwrap();
        let props = &v["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
        for f in [
            "cluster",
            "keyspace",
            "intensity",
            "timeoutMinutes",
            "repairThreadCount",
        ] {
            assert!(props.get(f).is_some(), "spec.{f} in the schema: {props}");
        }
    }
}
