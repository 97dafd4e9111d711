//! What the `plugin inspect` and `plugin test` subcommands do, and the snapshot file format
//! they read.
//!
//! A snapshot file is the JSON form of the WIT `snapshot` record, with field names as in the
//! WIT (in snake_case: `now_ms`, `base_plan`, `at_ms`, ...) and variants externally tagged
//! with their Rust names (`{"Succeeded": "..."}`). To make it writable by hand:
//! - every field but `parent` may be omitted (`clusters` then holds the local cluster,
//!   reachable);
//! - an object is either `{"cluster": "east", "json": ...}` or the Kubernetes object itself
//!   (local cluster), and `json` may be the object or its JSON text.
//!
//! `plugins/examples/echo/snapshot.json` is an example.

use std::path::Path;

use serde::Deserialize;

use super::bindings::{ClusterState, NodeState, Object, OperationResult, Plan, Snapshot};
use super::{PluginError, PluginInfo, PolicyError, PolicyRuntime, RuntimeConfig, ToolError};

/// A runtime for one-shot commands: no cache, two slots.
fn tool_runtime() -> Result<PolicyRuntime, PluginError> {
    PolicyRuntime::new(RuntimeConfig {
        max_instances: 2,
        ..RuntimeConfig::default()
    })
}

/// `plugin inspect FILE`: loads the component as the operator would and returns what its
/// `describe` says.
pub async fn inspect(path: &Path) -> Result<PluginInfo, PluginError> {
    Ok(tool_runtime()?.inspect_file(path).await?.info)
}

/// `plugin test FILE --snapshot S.json`: loads the component and runs one reconcile on the
/// snapshot (see the module docs for its format).
pub async fn test_file(
    path: &Path,
    snapshot_json: &str,
) -> Result<Result<Plan, PolicyError>, ToolError> {
    let snapshot = parse_snapshot(snapshot_json).map_err(ToolError::Snapshot)?;
    let runtime = tool_runtime()?;
    let policy = runtime.inspect_file(path).await?;
    Ok(runtime.reconcile(&policy, snapshot).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotFile {
    parent: ObjectFile,
    #[serde(default)]
    children: Vec<ObjectFile>,
    #[serde(default)]
    related: Vec<ObjectFile>,
    #[serde(default)]
    nodes: Vec<NodeState>,
    #[serde(default)]
    results: Vec<OperationResult>,
    clusters: Option<Vec<ClusterState>>,
    #[serde(default)]
    now_ms: u64,
    #[serde(default)]
    base_plan: Option<Plan>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ObjectFile {
    Wrapped(WrappedObject),
    Bare(serde_json::Map<String, serde_json::Value>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WrappedObject {
    #[serde(default)]
    cluster: String,
    json: JsonText,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonText {
    Text(String),
    Value(serde_json::Value),
}

impl From<ObjectFile> for Object {
    fn from(file: ObjectFile) -> Self {
        match file {
            ObjectFile::Wrapped(WrappedObject { cluster, json }) => Object {
                cluster,
                json: match json {
                    JsonText::Text(text) => text,
                    JsonText::Value(value) => value.to_string(),
                },
            },
            ObjectFile::Bare(map) => Object {
                cluster: String::new(),
                json: serde_json::Value::Object(map).to_string(),
            },
        }
    }
}

/// Parses a snapshot file (see the module docs). The error names line and column.
pub fn parse_snapshot(json: &str) -> Result<Snapshot, String> {
    let file: SnapshotFile = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let objects = |list: Vec<ObjectFile>| list.into_iter().map(Object::from).collect();
    Ok(Snapshot {
        parent: file.parent.into(),
        children: objects(file.children),
        related: objects(file.related),
        nodes: file.nodes,
        results: file.results,
        clusters: file.clusters.unwrap_or_else(|| {
            vec![ClusterState {
                name: String::new(),
                reachable: true,
                message: None,
            }]
        }),
        now_ms: file.now_ms,
        base_plan: file.base_plan,
    })
}

/// A plan as JSON for people: object and status JSON texts are expanded into JSON values.
pub fn plan_to_json(plan: &Plan) -> serde_json::Value {
    let mut value = serde_json::to_value(plan).unwrap_or_default();
    let expand = |v: &mut serde_json::Value| {
        if let Some(text) = v.as_str()
            && let Ok(parsed) = serde_json::from_str::<serde_json::Value>(text)
        {
            *v = parsed;
        }
    };
    if let Some(apply) = value.get_mut("apply").and_then(|a| a.as_array_mut()) {
        for object in apply {
            if let Some(json) = object.get_mut("json") {
                expand(json);
            }
        }
    }
    if let Some(status) = value.get_mut("status") {
        expand(status);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_snapshot_defaults_the_rest() {
        let snap = parse_snapshot(
            r#"{"parent": {"apiVersion": "v1", "kind": "X", "metadata": {"name": "a"}}}"#,
        )
        .unwrap();
        assert_eq!(snap.parent.cluster, "");
        let parent: serde_json::Value = serde_json::from_str(&snap.parent.json).unwrap();
        assert_eq!(parent["metadata"]["name"], "a");
        assert_eq!(snap.clusters.len(), 1);
        assert!(snap.clusters[0].reachable);
        assert!(snap.children.is_empty() && snap.base_plan.is_none());
    }

    #[test]
    fn wire_shape_is_accepted_too() {
        let wire = Snapshot {
            parent: Object {
                cluster: "east".into(),
                json: r#"{"kind":"X"}"#.into(),
            },
            children: vec![],
            related: vec![],
            nodes: vec![],
            results: vec![OperationResult {
                id: "op".into(),
                outcome: super::super::bindings::Outcome::Failed("no".into()),
                at_ms: 7,
            }],
            clusters: vec![],
            now_ms: 42,
            base_plan: None,
        };
        let text = serde_json::to_string(&wire).unwrap();
        assert!(text.contains(r#""outcome":{"Failed":"no"}"#), "{text}");
        assert_eq!(parse_snapshot(&text).unwrap(), wire);
    }

    #[test]
    fn wrapped_object_with_inline_json() {
        let snap = parse_snapshot(
            r#"{"parent": {"cluster": "west", "json": {"kind": "X"}}, "now_ms": 5}"#,
        )
        .unwrap();
        assert_eq!(snap.parent.cluster, "west");
        assert_eq!(snap.parent.json, r#"{"kind":"X"}"#);
        assert_eq!(snap.now_ms, 5);
    }

    #[test]
    fn unknown_field_is_an_error_with_a_position() {
        let err = parse_snapshot(r#"{"parent": {"kind": "X"}, "nowMs": 5}"#).unwrap_err();
        assert!(err.contains("nowMs") && err.contains("line"), "{err}");
    }

    #[test]
    fn plans_are_expanded_for_people() {
        let plan = Plan {
            apply: vec![Object {
                cluster: String::new(),
                json: r#"{"kind":"ConfigMap"}"#.into(),
            }],
            delete: vec![],
            operations: vec![],
            secrets: vec![],
            status: Some(r#"{"ready":true}"#.into()),
            finalizers: None,
            events: vec![],
            requeue_after_ms: None,
        };
        let v = plan_to_json(&plan);
        assert_eq!(v["apply"][0]["json"]["kind"], "ConfigMap");
        assert_eq!(v["status"]["ready"], true);
    }
}
