//! A policy built against `k8ssandra:policy@0.3.0` as released, without the SDK (which
//! follows the newest version). It is the 0.1.0 fixture's twin, except that its operation
//! is one 0.3.0 added (`medusa-backup`): a newer host must load it and answer exactly what
//! a 0.3.0 host answered.

wit_bindgen::generate!({
    path: "../../../wit/released/policy@0.3.0.wit",
    world: "policy",
});

use k8ssandra::policy::types::*;

struct Contract03;

/// The value of `"field":"..."` in the parent's JSON; enough for a fixture without serde.
fn string_field(json: &str, field: &str) -> Option<String> {
    let key = format!("\"{field}\":\"");
    let start = json.find(&key)? + key.len();
    let end = json[start..].find('"')?;
    Some(json[start..start + end].to_string())
}

impl Guest for Contract03 {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "contract-0-3".to_string(),
            version: "0.3.0".to_string(),
            parent: KindRef {
                api_version: "examples.k8ssandra.io/v1alpha1".to_string(),
                kind: "Echo".to_string(),
            },
            owns: vec![KindRef {
                api_version: "v1".to_string(),
                kind: "ConfigMap".to_string(),
            }],
            reads: vec![],
            observe_pods: None,
            decorates: None,
        }
    }

    fn reconcile(snapshot: Snapshot) -> Result<Plan, PolicyError> {
        let json = &snapshot.parent.json;
        let Some(name) = string_field(json, "name") else {
            return Err(PolicyError {
                message: "parent has no name".to_string(),
                retry_after_ms: Some(1000),
            });
        };
        let namespace = string_field(json, "namespace").unwrap_or_default();
        let message = string_field(json, "message").unwrap_or_default();
        log(Level::Info, &format!("reconciling {namespace}/{name}"));

        let ready = snapshot.nodes.iter().filter(|n| n.ready).count();
        let outcome = snapshot
            .results
            .iter()
            .find(|r| r.id == format!("keyspace/{name}"))
            .map(|r| match &r.outcome {
                Outcome::Succeeded(_) => "succeeded",
                Outcome::Running(_) => "running",
                Outcome::Failed(_) => "failed",
            })
            .unwrap_or("none");
        let operations = match snapshot.nodes.iter().find(|n| n.ready) {
            Some(node) if outcome == "none" => vec![Operation {
                id: format!("keyspace/{name}"),
                target: node.node.clone(),
                kind: OperationKind::MedusaBackup(MedusaBackup {
                    name: format!("{name}-nightly"),
                    mode: MedusaBackupMode::Full,
                }),
            }],
            _ => vec![],
        };
        let config_map = format!(
            "{{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{{\"name\":\"{name}-echo\",\"namespace\":\"{namespace}\"}},\"data\":{{\"message\":\"{message}\"}}}}"
        );
        Ok(Plan {
            apply: vec![Object {
                cluster: snapshot.parent.cluster.clone(),
                json: config_map,
            }],
            delete: vec![],
            operations,
            secrets: vec![],
            status: Some(format!(
                "{{\"readyNodes\":{ready},\"keyspace\":\"{outcome}\",\"seenAt\":{}}}",
                snapshot.now_ms
            )),
            finalizers: None,
            events: vec![Event {
                event_type: EventType::Normal,
                reason: "Echoed".to_string(),
                message: format!("{name}: {message}"),
                regarding: None,
            }],
            requeue_after_ms: Some(30_000),
        })
    }

    fn validate(object: String, _old: Option<String>) -> Vec<Violation> {
        match string_field(&object, "message") {
            Some(m) if m.is_empty() => vec![Violation {
                field: "spec.message".to_string(),
                message: "must not be empty".to_string(),
            }],
            _ => vec![],
        }
    }
}

export!(Contract03);
