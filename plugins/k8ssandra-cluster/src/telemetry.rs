//! What a K8ssandraCluster hands its datacenters for telemetry: `telemetry` (the cluster's
//! merged with the datacenter's, key by key, so a datacenter-level setting is never lost:
//! KO #1717), the typed audit and full-query-logging fields, and MCAC's metric filters on
//! the cassandra container. The datacenter policy renders the ConfigMaps, the
//! ServiceMonitor and the mounts from them. The checks are the datacenter's own, run here
//! first so an invalid setting leaves the running datacenter unchanged.

use k8ssandra_api::telemetry::TelemetrySpec;
use k8ssandra_policy_sdk::{Violation, violation};
use k8ssandra_telemetry::cassandra as tel;
use serde_json::{Map, Value, json};

/// Copies the telemetry fields of the merged datacenter options into the
/// CassandraDatacenter spec, or says which field is invalid and why.
pub fn datacenter_fields(
    opts: &Value,
    index: usize,
    has_own: bool,
    spec: &mut Map<String, Value>,
) -> Result<(), String> {
    for key in ["telemetry", "auditLogging", "fullQueryLogging"] {
        if let Some(v) = opts.get(key).filter(|v| !v.is_null()) {
            spec.insert(key.into(), v.clone());
        }
    }
    let errors = violations(opts, index, has_own);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors
            .iter()
            .map(|v| format!("{}: {}", v.field, v.message))
            .collect::<Vec<_>>()
            .join("; "))
    }
}

/// The telemetry rules for one datacenter's merged options, fields named where the user
/// wrote them (the datacenter's own `telemetry` when it has one, else the cluster's).
pub fn violations(opts: &Value, index: usize, has_own: bool) -> Vec<Violation> {
    let prefix = if has_own {
        format!("spec.cassandra.datacenters[{index}].telemetry")
    } else {
        "spec.cassandra.telemetry".to_string()
    };
    let Some(t) = opts.get("telemetry").filter(|v| !v.is_null()) else {
        return Vec::new();
    };
    match serde_json::from_value::<TelemetrySpec>(t.clone()) {
        Err(e) => vec![violation(&prefix, format!("does not parse: {e}"))],
        Ok(t) => tel::check_for(&t, writes_audit_log(opts))
            .into_iter()
            .map(|e| violation(&format!("{prefix}.{}", e.field), e.message))
            .collect(),
    }
}

/// Whether the merged datacenter options turn on the text audit log (whose Vector source
/// user components may name): the typed `auditLogging`, else the raw
/// `config.cassandraYaml.audit_logging_options`.
fn writes_audit_log(opts: &Value) -> bool {
    match opts.get("auditLogging").filter(|v| !v.is_null()) {
        Some(a) => {
            a.get("enabled").and_then(Value::as_bool) == Some(true)
                && a.get("logger")
                    .and_then(Value::as_str)
                    .is_some_and(|l| l.rsplit('.').next() == Some(tel::FILE_AUDIT_LOGGER))
        }
        None => tel::file_audit_log(opts.pointer("/config/cassandraYaml/audit_logging_options")),
    }
}

/// Environment of the cassandra container for MCAC: its metric filters when it runs.
pub fn cassandra_env(opts: &Value) -> Vec<Value> {
    let t: Option<TelemetrySpec> = opts
        .get("telemetry")
        .and_then(|t| serde_json::from_value(t.clone()).ok());
    if tel::mcac_enabled(t.as_ref()) {
        vec![json!({"name": "METRIC_FILTERS", "value": tel::metric_filters_env(t.as_ref())})]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8ssandra_api::k8ssandra::K8ssandraCluster;
    use serde_json::{Value, json};

    use super::{TelemetrySpec, tel};
    use crate::dc::{DcInputs, desired_datacenter};

    fn kc(cluster_telemetry: Value, dc_telemetry: Option<Value>) -> K8ssandraCluster {
        let mut dc = json!({"metadata": {"name": "dc1"}, "size": 3});
        if let Some(t) = dc_telemetry {
            dc["telemetry"] = t;
        }
        serde_json::from_value(json!({
            "apiVersion": "k8ssandra.io/v1alpha1",
            "kind": "K8ssandraCluster",
            "metadata": {"name": "demo", "namespace": "ns1"},
            "spec": {"cassandra": {
                "serverVersion": "4.1.5",
                "storageConfig": {"cassandraDataVolumeClaimSpec": {"storageClassName": "standard"}},
                "telemetry": cluster_telemetry,
                "fullQueryLogging": {"enabled": true},
                "auditLogging": {"enabled": true, "includedKeyspaces": ["ks"]},
                "datacenters": [dc],
            }},
        }))
        .unwrap()
    }

    fn desired(kc: &K8ssandraCluster) -> Result<Value, String> {
        let inputs = DcInputs {
            namespace: "ns1",
            superuser_secret: None,
            additional_seeds: Vec::new(),
            skip_user_creation: false,
            extra_annotations: BTreeMap::new(),
        };
        desired_datacenter(kc, 0, &kc.datacenters()[0], &inputs)
    }

    #[test]
    fn cluster_and_datacenter_telemetry_are_merged_into_the_datacenter() {
        let k = kc(
            json!({"prometheus": {"enabled": true}, "vector": {"enabled": true}}),
            Some(json!({"vector": {"scrapeInterval": "15s"}, "mcac": {"enabled": true}})),
        );
        let d = desired(&k).unwrap();
        let t = &d["spec"]["telemetry"];
        assert_eq!(t["prometheus"]["enabled"], true);
        assert_eq!(t["vector"]["enabled"], true);
        assert_eq!(t["vector"]["scrapeInterval"], "15s");
        assert_eq!(d["spec"]["fullQueryLogging"]["enabled"], true);
        assert_eq!(d["spec"]["auditLogging"]["includedKeyspaces"][0], "ks");
        let env = d["spec"]["podTemplateSpec"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap();
        let filters = env.iter().find(|e| e["name"] == "METRIC_FILTERS").unwrap();
        assert!(
            filters["value"]
                .as_str()
                .unwrap()
                .starts_with("deny:org.apache.cassandra.metrics.Table ")
        );
    }

    #[test]
    fn invalid_vector_config_names_the_field_and_component() {
        let k = kc(
            json!({"vector": {"enabled": true, "components": {"sinks": [
                {"name": "out", "type": "console", "inputs": ["missing"]}]}}}),
            None,
        );
        let e = desired(&k).unwrap_err();
        assert!(
            e.starts_with(
                "spec.cassandra.telemetry.vector.components.sinks[0]: sinks.out: input `missing`"
            ),
            "{e}"
        );
        let v = crate::validate::validate(&serde_json::to_string(&k).unwrap(), None);
        assert!(
            v.iter()
                .any(|v| v.field == "spec.cassandra.telemetry.vector.components.sinks[0]"),
            "{v:?}"
        );
    }

    /// The telemetry blocks of k8ssandra-operator's documentation and test fixtures, as
    /// users copy them: accepted unchanged, and rendered.
    #[test]
    fn upstream_telemetry_examples_are_accepted() {
        let examples = [
            // test/testdata/fixtures/single-dc
            json!({"mcac": {"enabled": false}, "vector": {"enabled": true,
                "components": {"sinks": [{"name": "void", "type": "blackhole", "inputs": ["cassandra_metrics"]}]},
                "scrapeInterval": "30s",
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "100m", "memory": "128Mi"}}}}),
            // docs: monitor/prometheus-grafana
            json!({"prometheus": {"enabled": true}}),
            // docs: monitor/vector (three variants)
            json!({"vector": {"enabled": true, "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1000m", "memory": "1Gi"}}}}),
            json!({"vector": {"enabled": true, "components": {"sinks": [{"name": "console_output", "type": "console",
                "inputs": ["cassandra_metrics"],
                "config": "target = \"stdout\"\n[sinks.console_output.encoding]\ncodec = \"json\"\n"}]},
                "scrapeInterval": "30s"}}),
            json!({"vector": {"enabled": true, "components": {"sinks": [{"name": "console_output", "type": "console",
                "inputs": ["parse_cassandra_log"],
                "config": "target = \"stdout\"\n[sinks.console_output.encoding]\ncodec = \"json\"\n"}]},
                "scrapeInterval": "30s"}}),
        ];
        for t in examples {
            let k = kc(t.clone(), None);
            assert!(
                crate::validate::validate(&serde_json::to_string(&k).unwrap(), None).is_empty(),
                "{t}"
            );
            let d = desired(&k).unwrap_or_else(|e| panic!("{t}: {e}"));
            let spec: TelemetrySpec =
                serde_json::from_value(d["spec"]["telemetry"].clone()).unwrap();
            if tel::vector_enabled(Some(&spec)) {
                tel::vector_toml(&spec).unwrap();
            }
        }
    }

    /// Every field this module hands the datacenter is one the K8ssandraCluster generates,
    /// so a frozen datacenter (an invalid spec) keeps it instead of dropping it.
    #[test]
    fn telemetry_fields_are_generated_fields() {
        for f in ["telemetry", "auditLogging", "fullQueryLogging"] {
            assert!(crate::dc::GENERATED_FIELDS.contains(&f), "{f}");
        }
    }
}
