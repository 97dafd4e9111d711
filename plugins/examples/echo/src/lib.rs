//! The smallest useful policy, to read in a minute.
//!
//! An `Echo` (`examples.k8ssandra.io/v1alpha1`, CRD in `crd.yaml` beside this crate) with
//! `spec.message` and `spec.replicas` gets `replicas` ConfigMaps named `<name>-echo-<i>`
//! holding the message, in the Kubernetes cluster named by `spec.cluster` (a ClientConfig
//! context; empty means the operator's own). Its status counts the ConfigMaps that exist.

use k8ssandra_policy_sdk::k8s_openapi::api::core::v1::ConfigMap;
use k8ssandra_policy_sdk::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8ssandra_policy_sdk::{
    EventType, KindRef, Plan, PluginInfo, Policy, PolicyError, Snapshot, Violation, error,
    export_policy, violation,
};
use serde::Deserialize;
use std::collections::BTreeMap;

pub const API_VERSION: &str = "examples.k8ssandra.io/v1alpha1";

#[derive(Deserialize)]
struct Echo {
    metadata: ObjectMeta,
    spec: EchoSpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EchoSpec {
    message: String,
    #[serde(default = "one")]
    replicas: u32,
    #[serde(default)]
    cluster: String,
}

fn one() -> u32 {
    1
}

pub struct EchoPolicy;

impl Policy for EchoPolicy {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "echo".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            parent: KindRef::new(API_VERSION, "Echo"),
            owns: vec![KindRef::of::<ConfigMap>()],
            reads: vec![],
            observe_pods: None,
            decorates: None,
        }
    }

    fn reconcile(snapshot: Snapshot) -> Result<Plan, PolicyError> {
        let echo: Echo = snapshot.parent()?;
        let name = echo
            .metadata
            .name
            .ok_or_else(|| error("Echo has no name"))?;
        let mut plan = Plan::default();
        for i in 0..echo.spec.replicas {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(format!("{name}-echo-{i}")),
                    namespace: echo.metadata.namespace.clone(),
                    ..Default::default()
                },
                data: Some(BTreeMap::from([(
                    "message".to_string(),
                    echo.spec.message.clone(),
                )])),
                ..Default::default()
            };
            plan.apply(&echo.spec.cluster, &with_type_meta(cm))?;
        }
        let existing = snapshot.children_of::<ConfigMap>().len();
        plan.set_status(&serde_json::json!({
            "observedGeneration": echo.metadata.generation,
            "configMaps": existing,
        }))?;
        if existing < echo.spec.replicas as usize {
            plan.event(
                EventType::Normal,
                "Echoing",
                format!("{} of {} ConfigMaps exist", existing, echo.spec.replicas),
            );
        }
        Ok(plan)
    }

    fn validate(object: String, _old: Option<String>) -> Vec<Violation> {
        match serde_json::from_str::<Echo>(&object) {
            Ok(echo) if echo.spec.message.is_empty() => {
                vec![violation("spec.message", "must not be empty")]
            }
            Ok(_) => vec![],
            Err(e) => vec![violation("spec", format!("does not parse: {e}"))],
        }
    }
}

/// k8s-openapi leaves `apiVersion`/`kind` to its own serialiser; plans need them explicit.
fn with_type_meta(cm: ConfigMap) -> serde_json::Value {
    let mut v = serde_json::to_value(cm).unwrap_or_default();
    v["apiVersion"] = "v1".into();
    v["kind"] = "ConfigMap".into();
    v
}

export_policy!(EchoPolicy);

#[cfg(test)]
mod tests {
    use super::*;
    use k8ssandra_policy_sdk::Object;

    fn snapshot(spec: serde_json::Value) -> Snapshot {
        let parent = serde_json::json!({
            "apiVersion": API_VERSION, "kind": "Echo",
            "metadata": {"name": "hello", "namespace": "ns", "generation": 3},
            "spec": spec,
        });
        Snapshot::for_parent(Object {
            cluster: String::new(),
            json: parent.to_string(),
        })
    }

    #[test]
    fn one_config_map_per_replica() {
        let plan = EchoPolicy::reconcile(snapshot(
            serde_json::json!({"message": "hi", "replicas": 2}),
        ))
        .unwrap();
        let names: Vec<_> = plan.apply.iter().filter_map(|o| o.name()).collect();
        assert_eq!(names, ["hello-echo-0", "hello-echo-1"]);
        let cm: ConfigMap = plan.apply[1].parse().unwrap();
        assert_eq!(cm.data.unwrap()["message"], "hi");
        assert_eq!(cm.metadata.namespace.as_deref(), Some("ns"));
        let status: serde_json::Value =
            serde_json::from_str(plan.status.as_ref().unwrap()).unwrap();
        assert_eq!(status["observedGeneration"], 3);
        assert_eq!(plan.events.len(), 1);
    }

    #[test]
    fn empty_message_is_refused() {
        let v = EchoPolicy::validate(
            r#"{"metadata":{"name":"x"},"spec":{"message":""}}"#.into(),
            None,
        );
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].field, "spec.message");
    }
}
