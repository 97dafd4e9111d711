//! Telemetry of the Reaper pod (`spec.telemetry`), with upstream's names:
//! - `telemetry.prometheus.enabled` → the ServiceMonitor `<reaper>-reaper-servicemonitor`
//!   selecting the Reaper Service (label `k8ssandra.io/reaper`), port `admin`, path
//!   `/prometheusMetrics`; when the cluster does not serve ServiceMonitors, the condition
//!   `TelemetryReady=False` says so and the rest of the reconcile goes on;
//! - `telemetry.vector.enabled` → the ConfigMap `<cluster>-<dc>-reaper-vector` (key
//!   `vector.toml`) and the `reaper-vector-agent` sidecar that reads it and scrapes
//!   `http://localhost:8081/prometheusMetrics`.
//!
//! The Vector configuration is built and checked by `k8ssandra_telemetry::vector` before it
//! ships; an invalid one is a spec fault ([`check`]), so the reconcile holds every live child
//! (the last good ConfigMap, the workload) as it is and no pod rolls.

use std::collections::BTreeMap;

use k8ssandra_api::labels::{
    COMPONENT_LABEL, COMPONENT_TELEMETRY, K8SSANDRA_CLUSTER_NAME_LABEL, MANAGED_BY_LABEL,
    NAME_LABEL_VALUE, PART_OF_LABEL, PART_OF_LABEL_VALUE,
};
use k8ssandra_api::names::cleanup_for_kubernetes;
use k8ssandra_api::reaper::{REAPER_LABEL, Reaper};
use k8ssandra_api::telemetry::TelemetrySpec;
use k8ssandra_policy_sdk::conditions::Cond;
use k8ssandra_telemetry::cassandra::{VECTOR_DIR, VECTOR_KEY, prometheus_enabled, vector_enabled};
use k8ssandra_telemetry::prometheus::{
    SERVICE_MONITOR_API_VERSION, SERVICE_MONITOR_KIND, kind_missing_message,
};
use k8ssandra_telemetry::vector::{duration_secs, sidecar_toml};
use serde_json::{Value, json};

use crate::render::Inputs;

/// Reaper's metrics: its admin port serves them in Prometheus' text format.
pub const METRICS_PORT_NAME: &str = "admin";
pub const METRICS_PATH: &str = "/prometheusMetrics";
pub const METRICS_ENDPOINT: &str = k8ssandra_telemetry::vector::REAPER_METRICS.endpoint;
/// Name of the Vector source of those metrics.
pub const METRICS_SOURCE: &str = k8ssandra_telemetry::vector::REAPER_METRICS.source;
pub const VECTOR_CONTAINER: &str = "reaper-vector-agent";
pub const VECTOR_VOLUME: &str = "reaper-vector-config";
/// The sidecar's image when `telemetry.vector.image` names none: upstream runs its system
/// logger (Vector) image there, as it does next to Cassandra.
pub const DEFAULT_VECTOR_IMAGE: &str = "docker.io/k8ssandra/system-logger:v1.32.0";
/// Condition type written on Reapers whose telemetry asks for Prometheus.
pub const TELEMETRY_READY: &str = "TelemetryReady";
pub const REASON_KIND_MISSING: &str = "ServiceMonitorKindMissing";
pub const REASON_APPLIED: &str = "Applied";

/// The Reaper's telemetry settings (a K8ssandraCluster copies `spec.reaper.telemetry` here).
pub fn spec(r: &Reaper) -> Option<&TelemetrySpec> {
    r.spec.template.telemetry.as_ref()
}

pub fn service_monitor_name(reaper: &str) -> String {
    format!("{reaper}-reaper-servicemonitor")
}

/// `<cluster>-<dc>-reaper-vector`, after the datacenter's Cassandra cluster and datacenter
/// names (not the objects'), as upstream.
pub fn vector_configmap_name(inputs: &Inputs) -> String {
    match inputs.dc {
        Some(dc) => format!(
            "{}-{}-reaper-vector",
            cleanup_for_kubernetes(&dc.spec.cluster_name),
            cleanup_for_kubernetes(dc.datacenter_name())
        ),
        // A control-plane Reaper has no datacenter to be named after.
        None => format!("{}-reaper-vector", inputs.name()),
    }
}

/// The sidecar's `vector.toml`, or every fault of `spec.telemetry.vector` as
/// `(field, message)`: a scrape interval that is no positive duration, and whatever the
/// library's check finds (TOML that does not parse, inputs naming nothing, VRL that does not
/// compile, unknown component types), each naming the component.
fn sidecar(t: &TelemetrySpec) -> Result<String, Vec<(String, String)>> {
    let vector = t.vector.clone().unwrap_or_default();
    let bad_interval = vector
        .scrape_interval
        .as_deref()
        .filter(|i| duration_secs(i).unwrap_or(0) == 0)
        .map(|i| {
            (
                "spec.telemetry.vector.scrapeInterval".to_string(),
                format!("`{i}` is not a positive duration such as `30s` or `1m`"),
            )
        });
    let built = sidecar_toml(&vector, METRICS_SOURCE, METRICS_ENDPOINT);
    let mut faults: Vec<(String, String)> = bad_interval.into_iter().collect();
    match built {
        Ok(text) if faults.is_empty() => return Ok(text),
        Ok(_) => {}
        Err(errors) => faults.extend(errors.into_iter().map(|e| {
            (
                format!("spec.telemetry.vector.{}", e.field),
                format!("{}: {}", e.place, e.message),
            )
        })),
    }
    Err(faults)
}

/// Faults of `spec.telemetry`: only Vector's settings can be wrong, and only matter while
/// Vector is on.
pub fn check(r: &Reaper) -> Vec<(String, String)> {
    match spec(r).filter(|t| vector_enabled(Some(t))) {
        Some(t) => sidecar(t).err().unwrap_or_default(),
        None => Vec::new(),
    }
}

/// The ServiceMonitor's labels as upstream sets them: the user's `commonLabels`, then the
/// ones the operator needs (which the user's cannot change), and the K8ssandraCluster's name
/// when one made this Reaper.
fn service_monitor_labels(inputs: &Inputs, t: &TelemetrySpec) -> BTreeMap<String, String> {
    let mut l = t
        .prometheus
        .as_ref()
        .and_then(|p| p.common_labels.clone())
        .unwrap_or_default();
    l.extend([
        (MANAGED_BY_LABEL.to_string(), NAME_LABEL_VALUE.to_string()),
        (PART_OF_LABEL.to_string(), PART_OF_LABEL_VALUE.to_string()),
        (REAPER_LABEL.to_string(), inputs.name().to_string()),
        (COMPONENT_LABEL.to_string(), COMPONENT_TELEMETRY.to_string()),
    ]);
    if let Some(kc) = inputs
        .reaper
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(K8SSANDRA_CLUSTER_NAME_LABEL))
    {
        l.insert(K8SSANDRA_CLUSTER_NAME_LABEL.to_string(), kc.clone());
    }
    l
}

/// The ServiceMonitor on the Reaper Service's `admin` port.
pub fn service_monitor(inputs: &Inputs, t: &TelemetrySpec) -> Value {
    let ns = inputs.namespace();
    json!({
        "apiVersion": SERVICE_MONITOR_API_VERSION,
        "kind": SERVICE_MONITOR_KIND,
        "metadata": {
            "name": service_monitor_name(inputs.name()),
            "namespace": ns,
            "labels": service_monitor_labels(inputs, t),
        },
        "spec": {
            "selector": {"matchLabels": {REAPER_LABEL: inputs.name()}},
            "namespaceSelector": {"matchNames": [ns]},
            "endpoints": [{
                "port": METRICS_PORT_NAME,
                "path": METRICS_PATH,
                "scheme": "http",
                "interval": "15s",
                "scrapeTimeout": "15s",
            }],
        },
    })
}

/// The telemetry objects of a valid spec: the ServiceMonitor (unless the cluster is known
/// not to serve the kind) and the Vector ConfigMap.
pub fn objects(inputs: &Inputs, served: Option<bool>) -> Vec<Value> {
    let Some(t) = spec(inputs.reaper) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if prometheus_enabled(Some(t)) && served != Some(false) {
        out.push(service_monitor(inputs, t));
    }
    if vector_enabled(Some(t))
        && let Ok(text) = sidecar(t)
    {
        let meta = inputs.metadata(&vector_configmap_name(inputs), inputs.object_labels());
        out.push(json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta,
            "data": {VECTOR_KEY: text},
        }));
    }
    out
}

/// Adds the Vector sidecar and its configuration volume to the Reaper pod spec.
pub fn decorate_pod(inputs: &Inputs, pod_spec: &mut Value) {
    let Some(v) = spec(inputs.reaper)
        .filter(|t| vector_enabled(Some(t)))
        .map(|t| t.vector.clone().unwrap_or_default())
    else {
        return;
    };
    let image = v
        .image
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| DEFAULT_VECTOR_IMAGE.to_string());
    let resources = v
        .resources
        .as_ref()
        .and_then(|r| serde_json::to_value(r).ok())
        .unwrap_or_else(|| {
            json!({
                "requests": {"cpu": "200m", "memory": "128Mi"},
                "limits": {"cpu": "2", "memory": "2Gi"},
            })
        });
    let sidecar = json!({
        "name": VECTOR_CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "securityContext": {
            "runAsNonRoot": true, "runAsUser": 1000, "readOnlyRootFilesystem": true,
            "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]},
        },
        "resources": resources,
        "volumeMounts": [{"name": VECTOR_VOLUME, "mountPath": VECTOR_DIR}],
    });
    let volume =
        json!({"name": VECTOR_VOLUME, "configMap": {"name": vector_configmap_name(inputs)}});
    for (list, item) in [("containers", sidecar), ("volumes", volume)] {
        match pod_spec[list].as_array_mut() {
            Some(a) => a.push(item),
            None => pod_spec[list] = json!([item]),
        }
    }
}

/// The `TelemetryReady` condition of a Reaper whose telemetry asks for Prometheus: False
/// while the cluster does not serve ServiceMonitors. None when Prometheus is off.
pub fn condition(r: &Reaper, served: Option<bool>) -> Option<Cond> {
    if !prometheus_enabled(spec(r)) {
        return None;
    }
    Some(if served == Some(false) {
        Cond::new(
            TELEMETRY_READY,
            false,
            REASON_KIND_MISSING,
            kind_missing_message("spec.telemetry.prometheus.enabled"),
        )
    } else {
        Cond::new(TELEMETRY_READY, true, REASON_APPLIED, "")
    })
}
