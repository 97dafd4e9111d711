//! A policy to copy. Rename the crate, change [`NAME`], the parent kind and `reconcile`.
//!
//! As written, every `Widget` (`example.com/v1alpha1`) gets one ConfigMap `<name>-widget`
//! holding `spec.color`, and its status says whether that ConfigMap exists yet.
//!
//! The rules a policy lives by (see docs/plugins.md): it is a pure function of the snapshot
//! (no clock but `snapshot.now_ms`, no randomness, no I/O); it lists every object it wants
//! to exist in each plan (owned objects missing from a plan are pruned); and the same
//! snapshot must give the same plan, so an unchanged world causes no writes.

use k8ssandra_policy_sdk::k8s_openapi::api::core::v1::ConfigMap;
use k8ssandra_policy_sdk::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8ssandra_policy_sdk::{
    KindRef, Plan, PluginInfo, Policy, PolicyError, Snapshot, Violation, error, export_policy,
    violation,
};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The policy's name: its field manager (`k8ssandra-policy-<name>`) and ownership label.
pub const NAME: &str = "policy-template";
pub const API_VERSION: &str = "example.com/v1alpha1";
pub const KIND: &str = "Widget";

#[derive(Deserialize)]
struct Widget {
    metadata: ObjectMeta,
    #[serde(default)]
    spec: WidgetSpec,
}

#[derive(Deserialize, Default)]
struct WidgetSpec {
    #[serde(default)]
    color: String,
}

pub struct TemplatePolicy;

impl Policy for TemplatePolicy {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            parent: KindRef::new(API_VERSION, KIND),
            owns: vec![KindRef::of::<ConfigMap>()],
            reads: vec![],
            observe_pods: None,
            decorates: None,
        }
    }

    fn reconcile(snapshot: Snapshot) -> Result<Plan, PolicyError> {
        let widget: Widget = snapshot.parent()?;
        let name = widget.metadata.name.ok_or_else(|| error("no name"))?;
        let cm_name = format!("{name}-widget");
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(cm_name.clone()),
                namespace: widget.metadata.namespace.clone(),
                ..Default::default()
            },
            data: Some(BTreeMap::from([("color".to_string(), widget.spec.color)])),
            ..Default::default()
        };
        let mut value = serde_json::to_value(cm).map_err(|e| error(e.to_string()))?;
        value["apiVersion"] = "v1".into();
        value["kind"] = "ConfigMap".into();

        let mut plan = Plan::default();
        plan.apply("", &value)?;
        let exists = snapshot
            .children_of::<ConfigMap>()
            .iter()
            .any(|(_, c)| c.metadata.name.as_deref() == Some(cm_name.as_str()));
        plan.set_status(&serde_json::json!({
            "observedGeneration": widget.metadata.generation,
            "ready": exists,
        }))?;
        Ok(plan)
    }

    fn validate(object: String, _old: Option<String>) -> Vec<Violation> {
        match serde_json::from_str::<Widget>(&object) {
            Ok(w) if w.spec.color.is_empty() => vec![violation("spec.color", "must be set")],
            Ok(_) => vec![],
            Err(e) => vec![violation("spec", format!("does not parse: {e}"))],
        }
    }
}

export_policy!(TemplatePolicy);

#[cfg(test)]
mod tests {
    use super::*;
    use k8ssandra_policy_sdk::Object;

    fn snapshot() -> Snapshot {
        Snapshot::for_parent(Object {
            cluster: String::new(),
            json: serde_json::json!({
                "apiVersion": API_VERSION, "kind": KIND,
                "metadata": {"name": "w", "namespace": "ns", "generation": 1},
                "spec": {"color": "blue"},
            })
            .to_string(),
        })
    }

    #[test]
    fn plans_one_config_map_and_a_status() {
        let plan = TemplatePolicy::reconcile(snapshot()).unwrap();
        assert_eq!(plan.apply.len(), 1);
        let cm: ConfigMap = plan.apply[0].parse().unwrap();
        assert_eq!(cm.metadata.name.as_deref(), Some("w-widget"));
        assert_eq!(cm.data.unwrap()["color"], "blue");
        let status: serde_json::Value =
            serde_json::from_str(plan.status.as_deref().unwrap()).unwrap();
        assert_eq!(status["ready"], false);
    }

    #[test]
    fn same_snapshot_same_plan() {
        assert_eq!(
            TemplatePolicy::reconcile(snapshot()).unwrap(),
            TemplatePolicy::reconcile(snapshot()).unwrap()
        );
    }

    #[test]
    fn a_color_is_required() {
        let v = TemplatePolicy::validate(r#"{"metadata":{},"spec":{}}"#.into(), None);
        assert_eq!(v[0].field, "spec.color");
    }
}
