//! A decorator policy: runs after `cassandra-datacenter`, takes its plan from
//! `snapshot.base_plan` and returns it with the organisation's labels added to every applied
//! object and to the pod templates of StatefulSets.
//!
//! The labels come from [`DEFAULT_LABELS`], and a CassandraDatacenter may override each one
//! with an annotation of the same key (`example.com/team: payments`). Because the host
//! applies the decorated plan with the base policy's field manager, removing this policy
//! removes the labels again on the next reconcile.

use k8ssandra_policy_sdk::serde_json::{self, Map, Value};
use k8ssandra_policy_sdk::{
    KindRef, Plan, PluginInfo, Policy, PolicyError, Snapshot, Violation, error, export_policy,
    violation,
};

/// The policy this one decorates.
pub const DECORATES: &str = "cassandra-datacenter";

/// Labels added to everything, with their default values.
pub const DEFAULT_LABELS: [(&str, &str); 2] = [
    ("example.com/team", "data-platform"),
    ("example.com/cost-center", "cc-1234"),
];

pub struct OrgLabels;

impl Policy for OrgLabels {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "org-labels".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            // A decorator has the same parent as the policy it decorates.
            parent: KindRef::new("cassandra.datastax.com/v1beta1", "CassandraDatacenter"),
            owns: vec![],
            reads: vec![],
            observe_pods: None,
            decorates: Some(DECORATES.into()),
        }
    }

    fn reconcile(snapshot: Snapshot) -> Result<Plan, PolicyError> {
        let mut plan = snapshot
            .base_plan
            .clone()
            .ok_or_else(|| error("org-labels is a decorator: the snapshot has no base plan"))?;
        let labels = labels_for(&snapshot.parent.value()?);
        for object in &mut plan.apply {
            let mut value: Value = object.value()?;
            add_labels(&mut value, &labels);
            object.json =
                serde_json::to_string(&value).map_err(|e| error(format!("serialise: {e}")))?;
        }
        Ok(plan)
    }

    /// An override that is no label value would make every apply of the datacenter's
    /// objects fail: refuse it at admission instead.
    fn validate(object: String, _old: Option<String>) -> Vec<Violation> {
        let Ok(parent) = serde_json::from_str::<Value>(&object) else {
            return vec![];
        };
        labels_for(&parent)
            .iter()
            .filter_map(|(key, value)| {
                let value = value.as_str().unwrap_or_default();
                (!is_label_value(value)).then(|| {
                    violation(
                        &format!("metadata.annotations[{key}]"),
                        format!(
                            "{value:?} is not a label value (at most 63 characters: letters, \
                             digits, '-', '_', '.', starting and ending with a letter or digit)"
                        ),
                    )
                })
            })
            .collect()
    }
}

/// Kubernetes' rule for a label value.
fn is_label_value(v: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    v.is_empty()
        || (v.len() <= 63
            && v.starts_with(alnum)
            && v.ends_with(alnum)
            && v.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.')))
}

/// The labels for one parent: the defaults, overridden by the parent's annotations.
pub fn labels_for(parent: &Value) -> Map<String, Value> {
    let annotations = parent.pointer("/metadata/annotations");
    DEFAULT_LABELS
        .iter()
        .map(|(key, default)| {
            let value = annotations
                .and_then(|a| a.get(*key))
                .and_then(Value::as_str)
                .unwrap_or(default);
            (key.to_string(), Value::String(value.to_string()))
        })
        .collect()
}

/// Adds `labels` to an object's metadata and, for a StatefulSet, to its pod template.
pub fn add_labels(object: &mut Value, labels: &Map<String, Value>) {
    merge_into(object, &["metadata", "labels"], labels);
    if object.get("kind").and_then(Value::as_str) == Some("StatefulSet") {
        merge_into(object, &["spec", "template", "metadata", "labels"], labels);
    }
}

fn merge_into(object: &mut Value, path: &[&str], labels: &Map<String, Value>) {
    let mut at = object;
    for key in path {
        let Some(map) = at.as_object_mut() else {
            return;
        };
        at = map
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if let Some(map) = at.as_object_mut() {
        for (k, v) in labels {
            map.insert(k.clone(), v.clone());
        }
    }
}

export_policy!(OrgLabels);

#[cfg(test)]
mod tests {
    use super::*;
    use k8ssandra_policy_sdk::Object;
    use serde_json::json;

    fn snapshot(parent: Value, base: Option<Plan>) -> Snapshot {
        let mut s = Snapshot::for_parent(Object {
            cluster: String::new(),
            json: parent.to_string(),
        });
        s.base_plan = base;
        s
    }

    fn dc(annotations: Value) -> Value {
        json!({
            "apiVersion": "cassandra.datastax.com/v1beta1",
            "kind": "CassandraDatacenter",
            "metadata": {"name": "dc1", "namespace": "ns", "annotations": annotations},
        })
    }

    fn base_plan() -> Plan {
        let mut plan = Plan::default();
        plan.apply.push(Object {
            cluster: String::new(),
            json: json!({
                "apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": {"name": "sts", "labels": {"app": "cassandra"}},
                "spec": {"template": {"metadata": {"labels": {"pod": "x"}}}},
            })
            .to_string(),
        });
        plan.apply.push(Object {
            cluster: "east".into(),
            json: json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"}})
                .to_string(),
        });
        plan.status = Some(r#"{"cassandraOperatorProgress":"Updating"}"#.into());
        plan.requeue_after_ms = Some(500);
        plan
    }

    #[test]
    fn an_override_that_is_no_label_value_is_refused() {
        let bad = dc(json!({"example.com/team": "data platform!"})).to_string();
        let v = OrgLabels::validate(bad, None);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].field, "metadata.annotations[example.com/team]");
        assert!(
            OrgLabels::validate(
                dc(json!({"example.com/team": "payments"})).to_string(),
                None
            )
            .is_empty()
        );
    }

    #[test]
    fn describes_a_decorator_of_cassandra_datacenter() {
        let info = OrgLabels::describe();
        assert_eq!(info.decorates.as_deref(), Some("cassandra-datacenter"));
        assert_eq!(info.parent.kind, "CassandraDatacenter");
        assert!(info.owns.is_empty());
    }

    #[test]
    fn labels_every_object_and_pod_template() {
        let plan = OrgLabels::reconcile(snapshot(dc(json!({})), Some(base_plan()))).unwrap();
        let sts = plan.apply[0].value().unwrap();
        assert_eq!(sts["metadata"]["labels"]["app"], "cassandra");
        assert_eq!(
            sts["metadata"]["labels"]["example.com/team"],
            "data-platform"
        );
        assert_eq!(
            sts["metadata"]["labels"]["example.com/cost-center"],
            "cc-1234"
        );
        let pod = &sts["spec"]["template"]["metadata"]["labels"];
        assert_eq!(pod["pod"], "x");
        assert_eq!(pod["example.com/team"], "data-platform");
        let svc = plan.apply[1].value().unwrap();
        assert_eq!(plan.apply[1].cluster, "east");
        assert_eq!(
            svc["metadata"]["labels"]["example.com/cost-center"],
            "cc-1234"
        );
        assert!(
            svc.get("spec").is_none(),
            "only StatefulSets get template labels"
        );
    }

    #[test]
    fn keeps_the_rest_of_the_plan() {
        let base = base_plan();
        let plan = OrgLabels::reconcile(snapshot(dc(json!({})), Some(base.clone()))).unwrap();
        assert_eq!(plan.status, base.status);
        assert_eq!(plan.requeue_after_ms, base.requeue_after_ms);
        assert_eq!(plan.apply.len(), base.apply.len());
    }

    #[test]
    fn annotations_override_the_defaults() {
        let parent = dc(json!({"example.com/team": "payments"}));
        let plan = OrgLabels::reconcile(snapshot(parent, Some(base_plan()))).unwrap();
        let sts = plan.apply[0].value().unwrap();
        assert_eq!(sts["metadata"]["labels"]["example.com/team"], "payments");
        assert_eq!(
            sts["metadata"]["labels"]["example.com/cost-center"],
            "cc-1234"
        );
    }

    #[test]
    fn refuses_without_a_base_plan() {
        let e = OrgLabels::reconcile(snapshot(dc(json!({})), None)).unwrap_err();
        assert!(e.message.contains("base plan"), "{}", e.message);
    }
}
