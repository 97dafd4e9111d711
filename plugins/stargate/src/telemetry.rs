//! Telemetry of the Stargate pods (`spec.telemetry`), with upstream's names:
//! - `telemetry.prometheus.enabled` → the ServiceMonitor `<stargate>-stargate-servicemonitor`
//!   selecting the Stargate Service (label `k8ssandra.io/stargate`), port `health`, path
//!   `/metrics`, with upstream's metric relabelings; when the cluster does not serve
//!   ServiceMonitors, the condition `TelemetryReady=False` says so and the rest goes on;
//! - `telemetry.vector.enabled` → the ConfigMap `<cluster>-<dc>-stargate-vector` (key
//!   `vector.toml`) and the `stargate-vector-agent` sidecar that reads it and scrapes
//!   `http://localhost:8084/metrics`.
//!
//! The Vector configuration is built and checked by `k8ssandra_telemetry::vector` before it
//! ships; an invalid one is a spec fault ([`check`]), which keeps every live child (the last
//! good ConfigMap and the Deployments) as it is.

use std::collections::BTreeMap;

use k8ssandra_api::cassandra::CassandraDatacenter;
use k8ssandra_api::labels::{COMPONENT_LABEL, K8SSANDRA_CLUSTER_NAME_LABEL};
use k8ssandra_api::names::{clean_label_value, cleanup_for_kubernetes};
use k8ssandra_api::stargate::{STARGATE_LABEL, Stargate};
use k8ssandra_api::telemetry::TelemetrySpec;
use k8ssandra_policy_sdk::{Plan, Snapshot, rfc3339};
use k8ssandra_telemetry::cassandra::{VECTOR_DIR, VECTOR_KEY, prometheus_enabled, vector_enabled};
use k8ssandra_telemetry::prometheus::{
    self as prom, SERVICE_MONITOR_API_VERSION, SERVICE_MONITOR_KIND,
};
use k8ssandra_telemetry::vector::{duration_secs, sidecar_toml};
use serde_json::{Value, json};

use crate::render::Inputs;

/// The port and path of Stargate's metrics (its health port serves them).
pub const METRICS_ENDPOINT: &str = k8ssandra_telemetry::vector::STARGATE_METRICS.endpoint;
/// Name of the Vector source of those metrics.
pub const METRICS_SOURCE: &str = k8ssandra_telemetry::vector::STARGATE_METRICS.source;
pub const VECTOR_CONTAINER: &str = "stargate-vector-agent";
pub const VECTOR_VOLUME: &str = "stargate-vector-config";
/// The image of the sidecar when neither `telemetry.vector.image` nor the datacenter's
/// `systemLoggerImage` names one: the datacenter's default logger (Vector) image.
pub const DEFAULT_VECTOR_IMAGE: &str = "docker.io/k8ssandra/system-logger:v1.32.0";
/// Condition type written on Stargates whose telemetry asks for Prometheus.
pub const TELEMETRY_READY: &str = "TelemetryReady";

/// The Stargate's telemetry settings (those of its cluster-level template, as upstream).
pub fn spec(sg: &Stargate) -> Option<&TelemetrySpec> {
    sg.spec
        .datacenter_template
        .cluster_template
        .template
        .telemetry
        .as_ref()
}

pub fn service_monitor_name(sg: &Stargate) -> String {
    format!(
        "{}-stargate-servicemonitor",
        sg.metadata.name.as_deref().unwrap_or_default()
    )
}

/// `<cluster>-<dc>-stargate-vector`, named after the datacenter's Cassandra cluster.
pub fn vector_configmap_name(dc: &CassandraDatacenter) -> String {
    format!(
        "{}-{}-stargate-vector",
        cleanup_for_kubernetes(&dc.spec.cluster_name),
        cleanup_for_kubernetes(dc.datacenter_name())
    )
}

/// The checked `vector.toml` of the sidecar.
fn vector_toml(t: &TelemetrySpec) -> Result<String, Vec<(String, String)>> {
    let v = t.vector.clone().unwrap_or_default();
    sidecar_toml(&v, METRICS_SOURCE, METRICS_ENDPOINT).map_err(|errors| {
        errors
            .into_iter()
            .map(|e| {
                (
                    format!("spec.telemetry.vector.{}", e.field),
                    format!("{}: {}", e.place, e.message),
                )
            })
            .collect()
    })
}

/// Faults of `spec.telemetry`: `(field, message)` each. Only Vector's settings matter to
/// Stargate; they are checked when Vector is on.
pub fn check(sg: &Stargate) -> Vec<(String, String)> {
    let Some(t) = spec(sg) else {
        return Vec::new();
    };
    if !vector_enabled(Some(t)) {
        return Vec::new();
    }
    let mut out = Vec::new();
    if let Some(i) = t.vector.as_ref().and_then(|v| v.scrape_interval.as_ref())
        && duration_secs(i).is_none_or(|s| s == 0)
    {
        out.push((
            "spec.telemetry.vector.scrapeInterval".to_string(),
            format!("`{i}` is not a duration such as `30s` or `1m`"),
        ));
    }
    if let Err(e) = vector_toml(t) {
        out.extend(e);
    }
    out
}

/// Labels of the telemetry objects: the Stargate's own, with the component set to
/// `telemetry` on the ServiceMonitor as upstream.
fn labels(inputs: &Inputs, component: Option<&str>) -> BTreeMap<String, String> {
    let mut l = inputs.common_labels();
    if let Some(c) = component {
        l.insert(COMPONENT_LABEL.to_string(), c.to_string());
    }
    l
}

/// The ServiceMonitor on the Stargate Service.
pub fn service_monitor(inputs: &Inputs, t: &TelemetrySpec) -> Value {
    let sg = inputs.sg;
    let mut labels = labels(inputs, Some("telemetry"));
    if let Some(common) = t.prometheus.as_ref().and_then(|p| p.common_labels.as_ref()) {
        for (k, v) in common {
            // The operator's own labels keep their values.
            labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    if let Some(kc) = sg
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(K8SSANDRA_CLUSTER_NAME_LABEL))
    {
        labels.insert(K8SSANDRA_CLUSTER_NAME_LABEL.to_string(), kc.clone());
    }
    json!({
        "apiVersion": SERVICE_MONITOR_API_VERSION,
        "kind": SERVICE_MONITOR_KIND,
        "metadata": {
            "name": service_monitor_name(sg),
            "namespace": inputs.namespace(),
            "labels": labels,
        },
        "spec": {
            "selector": {"matchLabels": {STARGATE_LABEL: clean_label_value(inputs.name())}},
            "namespaceSelector": {"matchNames": [inputs.namespace()]},
            "endpoints": [{
                "port": "health",
                "path": "/metrics",
                "scheme": "http",
                "interval": "15s",
                "scrapeTimeout": "15s",
                "metricRelabelings": prom::stargate_metric_relabelings(
                    inputs.dc.datacenter_name(),
                    &inputs.dc.spec.cluster_name,
                ),
            }],
        },
    })
}

/// Extra objects of a valid spec: the ServiceMonitor (unless the cluster is known not to
/// serve the kind) and the Vector ConfigMap.
pub fn objects(inputs: &Inputs, served: Option<bool>) -> Vec<Value> {
    let Some(t) = spec(inputs.sg) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if prometheus_enabled(Some(t)) && served != Some(false) {
        out.push(service_monitor(inputs, t));
    }
    if vector_enabled(Some(t))
        && let Ok(text) = vector_toml(t)
    {
        out.push(json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": vector_configmap_name(inputs.dc),
                "namespace": inputs.namespace(),
                "labels": labels(inputs, None),
            },
            "data": {VECTOR_KEY: text},
        }));
    }
    out
}

/// Adds the Vector sidecar and its configuration volume to one rack's pod spec.
pub fn decorate_pod(inputs: &Inputs, pod_spec: &mut Value) {
    let Some(t) = spec(inputs.sg).filter(|t| vector_enabled(Some(t))) else {
        return;
    };
    let v = t.vector.clone().unwrap_or_default();
    let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
    let image = non_empty(v.image.clone())
        .or_else(|| non_empty(inputs.dc.spec.system_logger_image.clone()))
        .unwrap_or_else(|| DEFAULT_VECTOR_IMAGE.to_string());
    let resources = match &v.resources {
        Some(r) => serde_json::to_value(r).unwrap_or_else(|_| json!({})),
        None => json!({
            "requests": {"cpu": "200m", "memory": "128Mi"},
            "limits": {"cpu": "2", "memory": "2Gi"},
        }),
    };
    let container = json!({
        "name": VECTOR_CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "resources": resources,
        "volumeMounts": [{"name": VECTOR_VOLUME, "mountPath": VECTOR_DIR}],
    });
    if let Some(c) = pod_spec["containers"].as_array_mut() {
        c.push(container);
    }
    let volume =
        json!({"name": VECTOR_VOLUME, "configMap": {"name": vector_configmap_name(inputs.dc)}});
    match pod_spec["volumes"].as_array_mut() {
        Some(v) => v.push(volume),
        None => pod_spec["volumes"] = json!([volume]),
    }
}

/// Adds the `TelemetryReady` condition to the plan's status of a Stargate whose telemetry
/// asks for Prometheus: False while the cluster does not serve ServiceMonitors.
pub fn finish(snapshot: &Snapshot, sg: &Stargate, served: Option<bool>, plan: &mut Plan) {
    if !prometheus_enabled(spec(sg)) {
        return;
    }
    let (on, reason, message) = if served == Some(false) {
        (
            false,
            "ServiceMonitorKindMissing",
            prom::kind_missing_message("spec.telemetry.prometheus.enabled"),
        )
    } else {
        (true, "Applied", String::new())
    };
    let Some(mut status) = plan
        .status
        .as_deref()
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
    else {
        return;
    };
    let s = if on { "True" } else { "False" };
    let prev = sg
        .status
        .as_ref()
        .and_then(|st| st.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == TELEMETRY_READY));
    let time = match prev {
        Some(c) if c.status == s && c.last_transition_time.is_some() => {
            serde_json::to_value(&c.last_transition_time)
                .unwrap_or_else(|_| json!(rfc3339(snapshot.now_ms)))
        }
        _ => json!(rfc3339(snapshot.now_ms)),
    };
    let Some(list) = status["conditions"].as_array_mut() else {
        return;
    };
    list.retain(|c| c["type"] != TELEMETRY_READY);
    list.push(json!({
        "type": TELEMETRY_READY,
        "status": s,
        "reason": reason,
        "message": message,
        "lastTransitionTime": time,
    }));
    plan.status = Some(status.to_string());
}
