//! Telemetry of a datacenter (`spec.telemetry`, `spec.auditLogging`,
//! `spec.fullQueryLogging`): the metrics-agent ConfigMap the management API reads, the
//! Vector ConfigMap of the `server-system-logger` container, the ServiceMonitor, and the
//! audit and full-query-logging options in `cassandra.yaml`.
//!
//! Names, keys, mount paths and defaults are k8ssandra-operator's, so dashboards and
//! manifests written for it keep working. The checks (Vector graph, VRL, relabels, filters)
//! run in [`crate::validate`]: an invalid telemetry spec makes the datacenter `Valid=False`,
//! which keeps every child (ConfigMaps included) and every pod as it is.

use k8ssandra_api::cassandra::{AdditionalVolumes, CassandraDatacenter, ServerType, VolumeSource};
use k8ssandra_api::labels::{
    CLUSTER_LABEL, DATACENTER_LABEL, K8SSANDRA_CLUSTER_NAME_LABEL, PROM_METRICS_LABEL,
};
use k8ssandra_api::names::cleanup_for_kubernetes;
use k8ssandra_api::telemetry::TelemetrySpec;
use k8ssandra_policy_sdk::{
    NodeRef, Object, OperationKind, Outcome, Plan, Snapshot, Violation, violation,
};
use k8ssandra_telemetry::cassandra::{
    self as tel, METRICS_AGENT_DIR, METRICS_AGENT_KEY, METRICS_AGENT_VOLUME, VECTOR_DIR,
    VECTOR_KEY, VECTOR_VOLUME,
};
use k8ssandra_telemetry::prometheus;
use serde_json::{Map, Value, json};

use crate::config::major_minor;
use crate::model::{Dc, Observed};
use crate::objects::common_labels;

pub use k8ssandra_telemetry::prometheus::{
    APISERVICE_SELECTOR, SERVICE_MONITOR_API_VERSION, SERVICE_MONITOR_KIND, service_monitor_served,
};
/// Where the logs of the typed audit and full-query logging go by default: inside the
/// `server-logs` volume every Cassandra pod has.
pub const DEFAULT_AUDIT_DIR: &str = "/var/log/cassandra/audit";
pub const DEFAULT_FQL_DIR: &str = "/var/log/cassandra/fql";
/// Names of the volumes at those directories.
pub const AUDIT_VOLUME: &str = "audit-logs";
pub const FQL_VOLUME: &str = "fql-logs";
const LOGS_DIR: &str = "/var/log/cassandra";

fn spec(dc: &Dc) -> Option<&TelemetrySpec> {
    dc.obj.spec.telemetry.as_ref()
}

/// `<cluster>-<dc>-metrics-agent-config`, as upstream names it.
pub fn metrics_agent_configmap_name(dc: &Dc) -> String {
    cleanup_for_kubernetes(&format!(
        "{}-{}-metrics-agent-config",
        dc.cluster,
        dc.name()
    ))
}

/// `<k8ssandracluster>-<dc>-cass-vector`: upstream names it after the K8ssandraCluster;
/// a datacenter of its own uses its Cassandra cluster name.
pub fn vector_configmap_name(dc: &Dc) -> String {
    let owner = dc
        .obj
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(K8SSANDRA_CLUSTER_NAME_LABEL))
        .cloned()
        .unwrap_or_else(|| dc.cluster.clone());
    cleanup_for_kubernetes(&format!("{owner}-{}-cass-vector", dc.name()))
}

pub fn service_monitor_name(dc: &Dc) -> String {
    cleanup_for_kubernetes(&format!("{}-{}-cass-servicemonitor", dc.cluster, dc.name()))
}

/// Whether the datacenter ships a Vector configuration.
pub fn vector_on(dc: &Dc) -> bool {
    tel::vector_enabled(spec(dc)) && dc.obj.spec.disable_system_logger_sidecar != Some(true)
}

/// Adds what telemetry needs to the spec the pod template is rendered from, as
/// k8ssandra-operator adds it to the CassandraDatacenter it writes: the metrics-agent and
/// Vector ConfigMaps as additional volumes, and the Vector image and resources on the
/// logger. Nothing changes for a datacenter without `spec.telemetry`.
pub fn prepare(dc: &mut Dc) {
    log_volumes(dc);
    let Some(t) = spec(dc).cloned() else {
        return;
    };
    let agent_cm = metrics_agent_configmap_name(dc);
    let vector_cm = vector_configmap_name(dc);
    let vector = vector_on(dc);
    let s = &mut dc.obj.spec;
    let vols = s
        .storage_config
        .additional_volumes
        .get_or_insert_with(Vec::new);
    let source = |v: Value| match v {
        Value::Object(m) => Some(VolumeSource(m)),
        _ => None,
    };
    if !vols.iter().any(|v| v.name == METRICS_AGENT_VOLUME) {
        vols.push(AdditionalVolumes {
            mount_path: METRICS_AGENT_DIR.into(),
            name: METRICS_AGENT_VOLUME.into(),
            pvc_spec: None,
            volume_source: source(json!({"configMap": {
                "name": agent_cm,
                "items": [{"key": METRICS_AGENT_KEY, "path": METRICS_AGENT_KEY}],
            }})),
        });
    }
    if vector {
        if !vols.iter().any(|v| v.name == VECTOR_VOLUME) {
            vols.push(AdditionalVolumes {
                mount_path: VECTOR_DIR.into(),
                name: VECTOR_VOLUME.into(),
                pvc_spec: None,
                volume_source: source(json!({"configMap": {"name": vector_cm}})),
            });
        }
        let v = t.vector.clone().unwrap_or_default();
        s.system_logger_resources = Some(v.resources.clone().unwrap_or_else(|| {
            serde_json::from_value(json!({
                "requests": {"cpu": "200m", "memory": "128Mi"},
                "limits": {"cpu": "2", "memory": "2Gi"},
            }))
            .unwrap_or_default()
        }));
        if let Some(image) = v.image.filter(|i| !i.is_empty()) {
            s.system_logger_image = Some(image);
        }
    }
}

/// Volumes of their own for the audit and full query logs at their default directories
/// (`audit-logs`, `fql-logs`, empty dirs): their files then neither share the `server-logs`
/// volume with the system log nor live in it. A `logDir` of the user's is on a volume the
/// user names (checked in [`check_spec`]). Only datacenters with the typed fields get them.
fn log_volumes(dc: &mut Dc) {
    let s = &mut dc.obj.spec;
    let mut want = Vec::new();
    if s.audit_logging
        .as_ref()
        .is_some_and(|a| a.log_dir.is_none())
    {
        want.push((AUDIT_VOLUME, DEFAULT_AUDIT_DIR));
    }
    if s.full_query_logging
        .as_ref()
        .is_some_and(|f| f.log_dir.is_none())
    {
        want.push((FQL_VOLUME, DEFAULT_FQL_DIR));
    }
    if want.is_empty() {
        return;
    }
    let vols = s
        .storage_config
        .additional_volumes
        .get_or_insert_with(Vec::new);
    for (name, dir) in want {
        if !vols.iter().any(|v| v.name == name || v.mount_path == dir) {
            let source = match json!({"emptyDir": {}}) {
                Value::Object(m) => Some(VolumeSource(m)),
                _ => None,
            };
            vols.push(AdditionalVolumes {
                mount_path: dir.into(),
                name: name.into(),
                pvc_spec: None,
                volume_source: source,
            });
        }
    }
}

/// Whether the datacenter writes a text audit log (`FileAuditLogger`, enabled), through
/// the typed field or `config.cassandra-yaml.audit_logging_options`.
pub fn writes_audit_log(dc: &CassandraDatacenter) -> bool {
    match &dc.spec.audit_logging {
        Some(a) => {
            a.enabled
                && a.logger
                    .as_deref()
                    .is_some_and(|l| l.rsplit('.').next() == Some(tel::FILE_AUDIT_LOGGER))
        }
        None => tel::file_audit_log(
            dc.spec
                .config
                .as_ref()
                .and_then(|c| c.pointer("/cassandra-yaml/audit_logging_options")),
        ),
    }
}

fn configmap(dc: &Dc, name: &str, key: &str, text: String) -> Value {
    let mut labels = common_labels(dc);
    labels.insert("app.kubernetes.io/part-of".into(), json!("k8ssandra"));
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": dc.namespace, "labels": labels},
        "data": {key: text},
    })
}

/// The objects telemetry adds to the plan: the metrics-agent ConfigMap whenever
/// `spec.telemetry` is set, the Vector ConfigMap when Vector is on, the ServiceMonitor when
/// Prometheus is on. Only called for a valid spec ([`crate::validate`] checked it).
pub fn objects(dc: &Dc) -> Vec<Value> {
    let Some(t) = spec(dc) else {
        return Vec::new();
    };
    let mut out = vec![configmap(
        dc,
        &metrics_agent_configmap_name(dc),
        METRICS_AGENT_KEY,
        tel::metrics_agent_yaml(Some(t)),
    )];
    if vector_on(dc)
        && let Ok(text) = tel::vector_toml_for(t, writes_audit_log(&dc.obj))
    {
        out.push(configmap(dc, &vector_configmap_name(dc), VECTOR_KEY, text));
    }
    if tel::prometheus_enabled(Some(t)) {
        out.push(service_monitor(dc, t));
    }
    out
}

/// A ServiceMonitor on the datacenter's all-pods Service, selected by the labels that
/// Service really carries: the cluster label and the datacenter label, whose value comes
/// from `datacenterName` when it is set (upstream selects by the object's name and misses
/// such datacenters).
pub fn service_monitor(dc: &Dc, t: &TelemetrySpec) -> Value {
    let mut labels = common_labels(dc);
    labels.insert("app.kubernetes.io/component".into(), json!("telemetry"));
    labels.insert("app.kubernetes.io/part-of".into(), json!("k8ssandra"));
    if let Some(common) = t.prometheus.as_ref().and_then(|p| p.common_labels.as_ref()) {
        for (k, v) in common {
            // The operator's own labels keep their values.
            labels.entry(k.clone()).or_insert_with(|| json!(v));
        }
    }
    let dc_labels = dc.dc_labels();
    let mut match_labels = Map::new();
    match_labels.insert(PROM_METRICS_LABEL.into(), json!("true"));
    for key in [CLUSTER_LABEL, DATACENTER_LABEL] {
        if let Some(v) = dc_labels.get(key) {
            match_labels.insert(key.into(), json!(v));
        }
    }
    let mcac = tel::mcac_enabled(Some(t));
    let mut endpoint = json!({
        "port": if mcac { "prometheus" } else { "metrics" },
        "path": "/metrics",
        "scheme": "http",
        "interval": "15s",
        "scrapeTimeout": "15s",
    });
    if mcac {
        // MCAC's samples carry the Cassandra metric in a label; upstream's rules make
        // Prometheus families of them. The management API's endpoint needs none.
        endpoint["metricRelabelings"] = json!(prometheus::mcac_metric_relabelings());
    }
    json!({
        "apiVersion": SERVICE_MONITOR_API_VERSION,
        "kind": SERVICE_MONITOR_KIND,
        "metadata": {"name": service_monitor_name(dc), "namespace": dc.namespace, "labels": labels},
        "spec": {
            "selector": {"matchLabels": match_labels},
            "namespaceSelector": {"matchNames": [dc.namespace]},
            "targetLabels": [CLUSTER_LABEL, DATACENTER_LABEL],
            "endpoints": [endpoint],
        },
    })
}

/// Whether the server runs full query logging at all: Apache Cassandra 4.0 and newer.
pub fn supports_fql(dc: &CassandraDatacenter) -> bool {
    dc.spec.server_type == ServerType::Cassandra
        && major_minor(&dc.spec.server_version).is_some_and(|(major, _)| major >= 4)
}

/// Whether full query logging should be on: the typed field's `enabled`, or (as
/// cass-operator reads it) `full_query_logging_options` present in the raw
/// `config.cassandra-yaml`.
pub fn fql_desired(dc: &CassandraDatacenter) -> bool {
    if let Some(f) = &dc.spec.full_query_logging {
        return f.enabled;
    }
    dc.spec
        .config
        .as_ref()
        .and_then(|c| c.pointer("/cassandra-yaml/full_query_logging_options"))
        .is_some()
}

fn csv(list: &Option<Vec<String>>) -> Option<Value> {
    list.as_ref()
        .filter(|l| !l.is_empty())
        .map(|l| json!(l.join(",")))
}

/// Renders the typed audit and full-query-logging fields into `cassandra-yaml`. The FQL
/// options are written whether or not `enabled` is set, so switching it never changes the
/// configuration (and never restarts a node): the management API switches it at run time.
pub fn add_logging_options(doc: &mut Value, dc: &Dc) {
    let s = &dc.obj.spec;
    if let Some(a) = &s.audit_logging {
        let mut o = Map::new();
        o.insert("enabled".into(), json!(a.enabled));
        o.insert(
            "logger".into(),
            json!([{"class_name": a.logger.as_deref().unwrap_or("BinAuditLogger")}]),
        );
        o.insert(
            "audit_logs_dir".into(),
            json!(a.log_dir.as_deref().unwrap_or(DEFAULT_AUDIT_DIR)),
        );
        for (key, list) in [
            ("included_keyspaces", &a.included_keyspaces),
            ("excluded_keyspaces", &a.excluded_keyspaces),
            ("included_categories", &a.included_categories),
            ("excluded_categories", &a.excluded_categories),
            ("included_users", &a.included_users),
            ("excluded_users", &a.excluded_users),
        ] {
            if let Some(v) = csv(list) {
                o.insert(key.into(), v);
            }
        }
        doc["cassandra-yaml"]["audit_logging_options"] = Value::Object(o);
    }
    if let Some(f) = &s.full_query_logging {
        let mut o = Map::new();
        o.insert(
            "log_dir".into(),
            json!(f.log_dir.as_deref().unwrap_or(DEFAULT_FQL_DIR)),
        );
        if let Some(v) = &f.roll_cycle {
            o.insert("roll_cycle".into(), json!(v));
        }
        if let Some(v) = f.block {
            o.insert("block".into(), json!(v));
        }
        if let Some(v) = f.max_queue_weight {
            o.insert("max_queue_weight".into(), json!(v));
        }
        if let Some(v) = f.max_log_size {
            o.insert("max_log_size".into(), json!(v));
        }
        doc["cassandra-yaml"]["full_query_logging_options"] = Value::Object(o);
    }
}

/// A log directory must be absolute and on a volume: the `server-logs` volume or one of
/// the additional volumes (a directory in the container's own filesystem is lost with the
/// container, or not writable at all with a read-only root).
fn check_log_dir(dc: &CassandraDatacenter, dir: &str, field: &str, out: &mut Vec<Violation>) {
    let under = |base: &str| {
        let base = base.trim_end_matches('/');
        dir == base || dir.starts_with(&format!("{base}/"))
    };
    if !dir.starts_with('/') || dir.split('/').any(|p| p == "..") {
        out.push(violation(
            field,
            format!("`{dir}` must be an absolute path without `..`"),
        ));
        return;
    }
    let on_volume = under(LOGS_DIR)
        || dc
            .spec
            .storage_config
            .additional_volumes
            .iter()
            .flatten()
            .any(|v| under(&v.mount_path));
    if !on_volume {
        out.push(violation(
            field,
            format!(
                "`{dir}` is on no volume: use a directory under {LOGS_DIR} or under the mountPath of one of spec.storageConfig.additionalVolumes"
            ),
        ));
    }
}

const AUDIT_CATEGORIES: [&str; 8] = [
    "QUERY", "DML", "DDL", "DCL", "OTHER", "AUTH", "ERROR", "PREPARE",
];

/// Rules of `spec.telemetry`, `spec.auditLogging` and `spec.fullQueryLogging`.
pub fn check_spec(dc: &CassandraDatacenter) -> Vec<Violation> {
    let mut out = Vec::new();
    let s = &dc.spec;
    if let Some(t) = &s.telemetry {
        for e in tel::check_for(t, writes_audit_log(dc)) {
            out.push(violation(&format!("spec.telemetry.{}", e.field), e.message));
        }
    }
    let version = major_minor(&s.server_version);
    let raw_yaml = s.config.as_ref().and_then(|c| c.get("cassandra-yaml"));
    if let Some(a) = &s.audit_logging {
        if s.server_type == ServerType::Cassandra && version.is_some_and(|(m, _)| m < 4) {
            out.push(violation(
                "spec.auditLogging",
                "audit logging needs Cassandra 4.0 or newer",
            ));
        }
        if raw_yaml
            .and_then(|y| y.get("audit_logging_options"))
            .is_some()
        {
            out.push(violation(
                "spec.auditLogging",
                "set audit logging either here or in config.cassandra-yaml.audit_logging_options, not both",
            ));
        }
        check_log_dir(
            dc,
            a.log_dir.as_deref().unwrap_or(DEFAULT_AUDIT_DIR),
            "spec.auditLogging.logDir",
            &mut out,
        );
        for (name, list) in [
            ("includedCategories", &a.included_categories),
            ("excludedCategories", &a.excluded_categories),
        ] {
            for (i, c) in list.iter().flatten().enumerate() {
                if !AUDIT_CATEGORIES.contains(&c.as_str()) {
                    out.push(violation(
                        &format!("spec.auditLogging.{name}[{i}]"),
                        format!(
                            "unknown category `{c}` (one of {})",
                            AUDIT_CATEGORIES.join(", ")
                        ),
                    ));
                }
            }
        }
        for (name, list) in [
            ("includedKeyspaces", &a.included_keyspaces),
            ("excludedKeyspaces", &a.excluded_keyspaces),
            ("includedUsers", &a.included_users),
            ("excludedUsers", &a.excluded_users),
        ] {
            for (i, v) in list.iter().flatten().enumerate() {
                if v.is_empty() || v.contains(',') {
                    out.push(violation(
                        &format!("spec.auditLogging.{name}[{i}]"),
                        format!("`{v}` must be a non-empty name without commas"),
                    ));
                }
            }
        }
    }
    let fql_raw = raw_yaml
        .and_then(|y| y.get("full_query_logging_options"))
        .is_some();
    if let Some(f) = &s.full_query_logging {
        if fql_raw {
            out.push(violation(
                "spec.fullQueryLogging",
                "set full query logging either here or in config.cassandra-yaml.full_query_logging_options, not both",
            ));
        }
        check_log_dir(
            dc,
            f.log_dir.as_deref().unwrap_or(DEFAULT_FQL_DIR),
            "spec.fullQueryLogging.logDir",
            &mut out,
        );
        for (name, v) in [
            ("maxQueueWeight", f.max_queue_weight),
            ("maxLogSize", f.max_log_size),
        ] {
            if v.is_some_and(|v| v <= 0) {
                out.push(violation(
                    &format!("spec.fullQueryLogging.{name}"),
                    "must be a positive number of bytes",
                ));
            }
        }
    }
    if (s.full_query_logging.as_ref().is_some_and(|f| f.enabled) || fql_raw) && !supports_fql(dc) {
        out.push(violation(
            if fql_raw {
                "spec.config.cassandra-yaml.full_query_logging_options"
            } else {
                "spec.fullQueryLogging.enabled"
            },
            "full query logging needs Apache Cassandra 4.0 or newer (not DSE or HCD)",
        ));
    }
    out
}

/// Condition types this module writes, only on datacenters that use the feature.
pub const TELEMETRY_READY: &str = "TelemetryReady";
pub const CDC_AGENT_AVAILABLE: &str = "CdcAgentAvailable";
pub const FULL_QUERY_LOGGING: &str = "FullQueryLogging";

/// Longest wait before a failed FQL call is tried again.
const FQL_MAX_BACKOFF_MS: u64 = 30_000;

/// Full query logging on the running nodes, as cass-operator keeps it: each ready node is
/// asked whether it logs (`get-full-query-logging`) and switched when it differs from the
/// spec (`set-full-query-logging`), without a restart. Ids carry the pod's uid (a recreated
/// pod starts without FQL and is asked again) and the generation (a spec change asks
/// again). Returns the `FullQueryLogging` condition for datacenters that use the feature.
fn full_query_logging(
    dc: &Dc,
    obs: &Observed,
    now: u64,
    plan: &mut Plan,
) -> Option<(&'static str, bool, &'static str, String)> {
    let uses = dc.obj.spec.full_query_logging.is_some()
        || dc
            .obj
            .spec
            .config
            .as_ref()
            .and_then(|c| c.pointer("/cassandra-yaml/full_query_logging_options"))
            .is_some();
    if !uses || !supports_fql(&dc.obj) || dc.stopped() {
        return None;
    }
    let desired = fql_desired(&dc.obj);
    let mut pending = Vec::new();
    for pod in obs.pods.iter().filter(|p| p.ready()) {
        let node = NodeRef {
            cluster: String::new(),
            namespace: dc.namespace.clone(),
            pod: pod.name.clone(),
        };
        let set_base = format!(
            "fql/set/{}/{}/{}/{desired}",
            pod.name, pod.uid, dc.generation
        );
        match latest(obs, &set_base) {
            (_, Some((Outcome::Succeeded(_), _))) => continue,
            (_, Some((Outcome::Running(_), _))) => {
                pending.push(pod.name.clone());
                continue;
            }
            _ => {}
        }
        let get_base = format!("fql/get/{}/{}/{}", pod.name, pod.uid, dc.generation);
        let observed = match latest(obs, &get_base) {
            (_, Some((Outcome::Succeeded(out), _))) => out.trim() == "true",
            (_, Some((Outcome::Running(_), _))) => {
                pending.push(pod.name.clone());
                continue;
            }
            (k, Some((Outcome::Failed(_), at))) => {
                if let Some(id) = retry(&get_base, k, *at, now, plan) {
                    plan.operate(id, node, OperationKind::GetFullQueryLogging);
                }
                pending.push(pod.name.clone());
                continue;
            }
            (_, None) => {
                plan.operate(get_base, node, OperationKind::GetFullQueryLogging);
                pending.push(pod.name.clone());
                continue;
            }
        };
        if observed == desired {
            continue;
        }
        pending.push(pod.name.clone());
        match latest(obs, &set_base) {
            (k, Some((Outcome::Failed(_), at))) => {
                if let Some(id) = retry(&set_base, k, *at, now, plan) {
                    plan.operate(id, node, OperationKind::SetFullQueryLogging(desired));
                }
            }
            _ => plan.operate(set_base, node, OperationKind::SetFullQueryLogging(desired)),
        }
    }
    let state = if desired { "on" } else { "off" };
    Some(if pending.is_empty() {
        (
            FULL_QUERY_LOGGING,
            desired,
            if desired { "Enabled" } else { "Disabled" },
            format!("full query logging is {state} on every ready node"),
        )
    } else {
        (
            FULL_QUERY_LOGGING,
            !desired,
            "Switching",
            format!(
                "switching full query logging {state} on {}",
                pending.join(", ")
            ),
        )
    })
}

/// The latest attempt of an operation whose retries are `<base>`, `<base>/1`, ...: its
/// number and result.
fn latest<'a>(obs: &'a Observed, base: &str) -> (u32, Option<&'a (Outcome, u64)>) {
    let id = |k: u32| {
        if k == 0 {
            base.to_string()
        } else {
            format!("{base}/{k}")
        }
    };
    let mut k = 0;
    let mut last = obs.result(base);
    while last.is_some() {
        match obs.result(&id(k + 1)) {
            Some(r) => {
                k += 1;
                last = Some(r);
            }
            None => break,
        }
    }
    (k, last)
}

/// The id of the next attempt once the backoff after attempt `k` ran out; asks to be
/// looked at again when it has not.
fn retry(base: &str, k: u32, at: u64, now: u64, plan: &mut Plan) -> Option<String> {
    let delay = (1000u64 << k.min(5)).min(FQL_MAX_BACKOFF_MS);
    if now < at + delay {
        plan.requeue_after(at + delay - now);
        return None;
    }
    Some(format!("{base}/{}", k + 1))
}

/// Adds the telemetry objects and conditions to a plan the lifecycle made for a valid
/// spec.
pub fn finish(snapshot: &Snapshot, dc: &Dc, obs: &Observed, plan: &mut Plan) {
    let served = service_monitor_served(snapshot);
    let mut conditions: Vec<(&str, bool, &str, String)> = Vec::new();
    if let Some(c) = full_query_logging(dc, obs, snapshot.now_ms, plan) {
        conditions.push(c);
    }
    for o in objects(dc) {
        if o["kind"] == SERVICE_MONITOR_KIND && served == Some(false) {
            continue;
        }
        plan.apply.push(Object {
            cluster: String::new(),
            json: o.to_string(),
        });
    }
    if let Some(t) = spec(dc) {
        if tel::prometheus_enabled(Some(t)) && served == Some(false) {
            conditions.push((
                TELEMETRY_READY,
                false,
                "ServiceMonitorKindMissing",
                k8ssandra_telemetry::prometheus::kind_missing_message(
                    "telemetry.prometheus.enabled",
                ),
            ));
        } else {
            conditions.push((TELEMETRY_READY, true, "Applied", String::new()));
        }
    }
    if dc.obj.spec.cdc.is_some() && !has_cdc_agent(&dc.obj) {
        conditions.push((
            CDC_AGENT_AVAILABLE,
            false,
            "NoCdcAgent",
            format!(
                "spec.cdc is set but the {} {} image has no CDC agent: the options are written, nothing ships mutations",
                dc.obj.spec.server_type.as_str(),
                dc.obj.spec.server_version
            ),
        ));
    }
    if conditions.is_empty() {
        return;
    }
    let Some(mut status) = plan
        .status
        .as_deref()
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
    else {
        return;
    };
    let prev: Vec<Value> = snapshot
        .parent
        .value()
        .ok()
        .and_then(|p| p.pointer("/status/conditions").cloned())
        .and_then(|c| c.as_array().cloned())
        .unwrap_or_default();
    let list = status["conditions"].as_array_mut();
    let Some(list) = list else { return };
    for (t, on, reason, message) in conditions {
        let s = if on { "True" } else { "False" };
        let old = prev.iter().find(|c| c["type"] == t);
        let time = match old {
            Some(c) if c["status"] == s => c["lastTransitionTime"].clone(),
            _ => json!(crate::util::rfc3339(snapshot.now_ms)),
        };
        list.retain(|c| c["type"] != t);
        list.push(json!({
            "type": t,
            "status": s,
            "reason": reason,
            "message": message,
            "lastTransitionTime": time,
        }));
    }
    plan.status = Some(status.to_string());
}

/// Whether the server image carries the CDC agent: the management-API images of Apache
/// Cassandra 4.x do; 5.0 and DSE/HCD images do not.
pub fn has_cdc_agent(dc: &CassandraDatacenter) -> bool {
    dc.spec.server_type == ServerType::Cassandra
        && major_minor(&dc.spec.server_version).is_some_and(|(m, _)| m == 4)
}

#[cfg(test)]
mod tests {
    use k8ssandra_policy_sdk::{Object, OperationKind, Outcome, Plan, Snapshot};
    use serde_json::{Value, json};

    use crate::lifecycle::reconcile;

    fn dc(spec_extra: Value) -> Value {
        let mut dc = json!({
            "apiVersion": "cassandra.datastax.com/v1beta1",
            "kind": "CassandraDatacenter",
            "metadata": {"name": "dc1", "namespace": "ns1", "generation": 1, "uid": "u",
                         "labels": {"k8ssandra.io/cluster-name": "demo-kc"}},
            "spec": {
                "clusterName": "Demo",
                "serverType": "cassandra",
                "serverVersion": "4.1.5",
                "size": 3,
                "storageConfig": {"cassandraDataVolumeClaimSpec": {
                    "storageClassName": "standard",
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}},
                }},
            },
        });
        crate::config::merge(&mut dc["spec"], &spec_extra);
        dc
    }

    fn obj(v: &Value) -> Object {
        Object {
            cluster: String::new(),
            json: v.to_string(),
        }
    }

    fn run(dc: &Value, related: &[Value], children: &[Value]) -> Plan {
        let mut s = Snapshot::for_parent(obj(dc));
        s.related = related.iter().map(obj).collect();
        s.children = children.iter().map(obj).collect();
        s.now_ms = 1_700_000_000_000;
        reconcile(&s).unwrap()
    }

    fn applied(plan: &Plan, kind: &str, name: &str) -> Option<Value> {
        plan.apply
            .iter()
            .map(|o| o.value().unwrap())
            .find(|v| v["kind"] == kind && v["metadata"]["name"] == name)
    }

    fn pod_spec(plan: &Plan) -> Value {
        let sts = applied(plan, "StatefulSet", "demo-dc1-default-sts").unwrap();
        sts["spec"]["template"]["spec"].clone()
    }

    fn container<'a>(spec: &'a Value, name: &str) -> &'a Value {
        spec["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
    }

    fn condition(plan: &Plan, t: &str) -> Option<Value> {
        let status: Value = serde_json::from_str(plan.status.as_deref()?).ok()?;
        status["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == t)
            .cloned()
    }

    fn config_data(plan: &Plan) -> Value {
        let spec = pod_spec(plan);
        let init = spec["initContainers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "server-config-init")
            .unwrap()
            .clone();
        let text = init["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "CONFIG_FILE_DATA")
            .unwrap()["value"]
            .as_str()
            .unwrap()
            .to_string();
        serde_json::from_str(&text).unwrap()
    }

    fn apiservices(with_monitoring: bool) -> Vec<Value> {
        let mut names = vec!["v1.", "v1.apps"];
        if with_monitoring {
            names.push("v1.monitoring.coreos.com");
        }
        names
            .into_iter()
            .map(|n| {
                json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                            "metadata": {"name": n}})
            })
            .collect()
    }

    fn full_telemetry() -> Value {
        json!({"telemetry": {
            "prometheus": {"enabled": true, "commonLabels": {"release": "prom"}},
            "vector": {"enabled": true, "components": {
                "transforms": [{"name": "enriched", "type": "remap", "inputs": ["cassandra_metrics"],
                                "config": "source = '''\n.tags.env = \"test\"\n'''"}],
                "sinks": [{"name": "prom_rw", "type": "prometheus_remote_write", "inputs": ["enriched"],
                           "config": "endpoint = \"http://prometheus:9090/api/v1/write\""}],
            }},
            "cassandra": {"relabels": [{"sourceLabels": ["__name__"],
                "regex": "org_apache_cassandra_metrics_table_bloom.*", "action": "drop"}]},
        }})
    }

    #[test]
    fn no_telemetry_changes_nothing() {
        let plan = run(&dc(json!({})), &[], &[]);
        assert!(
            plan.apply
                .iter()
                .all(|o| o.kind().as_deref() != Some("ConfigMap"))
        );
        let spec = pod_spec(&plan);
        assert!(!spec.to_string().contains("metrics-agent-config"));
        assert!(condition(&plan, super::TELEMETRY_READY).is_none());
    }

    #[test]
    fn configmaps_mounts_and_service_monitor() {
        let mut extra = full_telemetry();
        extra["datacenterName"] = json!("Real DC");
        let plan = run(&dc(extra), &apiservices(true), &[]);

        let agent = applied(&plan, "ConfigMap", "demo-dc1-metrics-agent-config").unwrap();
        let text = agent["data"]["metrics-collector.yaml"].as_str().unwrap();
        let doc: Value = serde_json::from_str(text).unwrap();
        assert_eq!(doc["relabels"].as_array().unwrap().len(), 14);
        assert_eq!(
            doc["relabels"][13]["regex"],
            "org_apache_cassandra_metrics_table_bloom.*"
        );

        let vector = applied(&plan, "ConfigMap", "demo-kc-dc1-cass-vector").unwrap();
        let toml = vector["data"]["vector.toml"].as_str().unwrap();
        assert!(toml.contains("[sinks.prom_rw]"), "{toml}");
        assert!(toml.contains("[transforms.cassandra_metrics]"), "{toml}");
        assert!(toml.contains("http://localhost:9000/metrics"), "{toml}");

        let spec = pod_spec(&plan);
        let cassandra = container(&spec, "cassandra");
        assert!(
            cassandra["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["name"] == "metrics-agent-config"
                    && m["mountPath"] == "/opt/management-api/configs")
        );
        let logger = container(&spec, "server-system-logger");
        assert!(
            logger["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["name"] == "vector-config" && m["mountPath"] == "/etc/vector")
        );
        assert_eq!(logger["resources"]["limits"]["memory"], "2Gi");
        let vols = spec["volumes"].as_array().unwrap();
        let agent_vol = vols
            .iter()
            .find(|v| v["name"] == "metrics-agent-config")
            .unwrap();
        assert_eq!(
            agent_vol["configMap"]["name"],
            "demo-dc1-metrics-agent-config"
        );
        assert_eq!(
            agent_vol["configMap"]["items"][0]["path"],
            "metrics-collector.yaml"
        );

        let sm = applied(&plan, "ServiceMonitor", "demo-dc1-cass-servicemonitor").unwrap();
        assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
        let sel = &sm["spec"]["selector"]["matchLabels"];
        // Whatever the datacenter's labels are (datacenterName set or not), the selector
        // is exactly what the Service carries.
        let svc = applied(&plan, "Service", "demo-dc1-all-pods-service").unwrap();
        for (k, v) in sel.as_object().unwrap() {
            assert_eq!(&svc["metadata"]["labels"][k], v, "label {k}");
        }
        assert!(sel.get("cassandra.datastax.com/datacenter").is_some());
        assert!(sel.get("cassandra.datastax.com/cluster").is_some());
        assert!(
            svc["spec"]["ports"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "metrics" && p["port"] == 9000)
        );
        assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");
        assert_eq!(sm["metadata"]["labels"]["release"], "prom");
        assert_eq!(
            condition(&plan, super::TELEMETRY_READY).unwrap()["status"],
            "True"
        );
    }

    #[test]
    fn service_monitor_relabels_mcac_samples_as_upstream_and_not_the_modern_endpoint() {
        let modern = run(&dc(full_telemetry()), &apiservices(true), &[]);
        let sm = applied(&modern, "ServiceMonitor", "demo-dc1-cass-servicemonitor").unwrap();
        let endpoint = &sm["spec"]["endpoints"][0];
        assert_eq!(endpoint["port"], "metrics");
        assert!(endpoint.get("metricRelabelings").is_none());

        let mut extra = full_telemetry();
        extra["telemetry"]["mcac"] = json!({"enabled": true});
        let legacy = run(&dc(extra), &apiservices(true), &[]);
        let sm = applied(&legacy, "ServiceMonitor", "demo-dc1-cass-servicemonitor").unwrap();
        let endpoint = &sm["spec"]["endpoints"][0];
        assert_eq!(endpoint["port"], "prometheus");
        let rules = endpoint["metricRelabelings"].as_array().unwrap();
        assert_eq!(rules.len(), 60);
        assert!(rules.iter().any(|r| r["replacement"] == "mcac_table_${1}"
            && r["targetLabel"] == "__name__"
            && r["sourceLabels"] == json!(["mcac"])));
        assert_eq!(
            rules[rules.len() - 2],
            json!({"action": "labeldrop", "regex": "prom_name"})
        );
    }

    #[test]
    fn missing_service_monitor_kind_is_a_condition_and_the_rest_goes_on() {
        let plan = run(&dc(full_telemetry()), &apiservices(false), &[]);
        assert!(applied(&plan, "ServiceMonitor", "demo-dc1-cass-servicemonitor").is_none());
        assert!(applied(&plan, "ConfigMap", "demo-dc1-metrics-agent-config").is_some());
        assert!(applied(&plan, "StatefulSet", "demo-dc1-default-sts").is_some());
        let c = condition(&plan, super::TELEMETRY_READY).unwrap();
        assert_eq!(c["status"], "False");
        assert_eq!(c["reason"], "ServiceMonitorKindMissing");
    }

    #[test]
    fn vrl_error_freezes_children_and_names_the_transform() {
        let good = run(&dc(full_telemetry()), &apiservices(true), &[]);
        let children: Vec<Value> = good.apply.iter().map(|o| o.value().unwrap()).collect();
        let mut bad = full_telemetry();
        bad["telemetry"]["vector"]["components"]["transforms"][0]["config"] =
            json!("source = '''\n.tags.env = upcase(\n'''");
        let plan = run(&dc(bad), &apiservices(true), &children);
        // Identity only: nothing changes, nothing is pruned.
        for o in &plan.apply {
            let v = o.value().unwrap();
            assert!(v.get("spec").is_none() && v.get("data").is_none(), "{v}");
        }
        assert!(
            plan.apply
                .iter()
                .any(|o| o.name().as_deref() == Some("demo-kc-dc1-cass-vector"))
        );
        let c = condition(&plan, "Valid").unwrap();
        assert_eq!(c["status"], "False");
        let m = c["message"].as_str().unwrap();
        assert!(
            m.contains("spec.telemetry.vector.components.transforms[0]"),
            "{m}"
        );
        assert!(m.contains("transforms.enriched: VRL error"), "{m}");
    }

    #[test]
    fn bad_input_names_the_field() {
        let cases = [
            (
                json!({"telemetry": {"vector": {"enabled": true, "components": {"sinks": [
                {"name": "s", "type": "prometheus_remote_writer", "inputs": ["cassandra_metrics"]}]}}}}),
                "spec.telemetry.vector.components.sinks[0]",
                "unknown sink type",
            ),
            (
                json!({"telemetry": {"vector": {"enabled": true, "components": {"sinks": [
                {"name": "s", "type": "console", "inputs": ["nope"]}]}}}}),
                "spec.telemetry.vector.components.sinks[0]",
                "input `nope` names no source or transform",
            ),
            (
                json!({"telemetry": {"mcac": {"enabled": true, "metricFilters": ["allow org.apache"]}}}),
                "spec.telemetry.mcac.metricFilters[0]",
                "does not parse",
            ),
            (
                json!({"telemetry": {"cassandra": {"relabels": [{"sourceLabels": ["__name__"], "regex": "(", "action": "drop"}]}}}),
                "spec.telemetry.cassandra.relabels[0].regex",
                "does not parse",
            ),
            (
                json!({"fullQueryLogging": {"enabled": true, "logDir": "/data/fql"}}),
                "spec.fullQueryLogging.logDir",
                "on no volume",
            ),
            (
                json!({"serverType": "dse", "serverVersion": "6.8.50", "fullQueryLogging": {"enabled": true}}),
                "spec.fullQueryLogging.enabled",
                "4.0 or newer",
            ),
            (
                json!({"auditLogging": {"enabled": true, "includedCategories": ["DML", "WRITES"]}}),
                "spec.auditLogging.includedCategories[1]",
                "unknown category",
            ),
        ];
        for (extra, field, text) in cases {
            let d = dc(extra);
            let v = crate::validate::check_spec(&serde_json::from_value(d).unwrap());
            assert!(
                v.iter()
                    .any(|v| v.field == field && v.message.contains(text)),
                "{field}: {v:?}"
            );
        }
    }

    #[test]
    fn full_query_logging_switch_does_not_change_the_pod_template() {
        let on = run(
            &dc(json!({"fullQueryLogging": {"enabled": true}})),
            &[],
            &[],
        );
        let off = run(
            &dc(json!({"fullQueryLogging": {"enabled": false}})),
            &[],
            &[],
        );
        assert_eq!(pod_spec(&on), pod_spec(&off));
        let doc = config_data(&on);
        assert_eq!(
            doc["cassandra-yaml"]["full_query_logging_options"]["log_dir"],
            "/var/log/cassandra/fql"
        );
        assert!(super::fql_desired(
            &serde_json::from_value(dc(json!({"fullQueryLogging": {"enabled": true}}))).unwrap()
        ));
        // cass-operator's reading: the options in cassandraYaml mean "on".
        let raw = dc(
            json!({"config": {"cassandra-yaml": {"full_query_logging_options": {"log_dir": "/var/log/cassandra/fql"}}}}),
        );
        assert!(super::fql_desired(&serde_json::from_value(raw).unwrap()));
        assert!(!super::fql_desired(
            &serde_json::from_value(dc(json!({}))).unwrap()
        ));
    }

    fn ready_pod_snapshot(dc: &Value, results: Vec<(&str, Outcome)>) -> Snapshot {
        use k8ssandra_policy_sdk::{NodeRef, NodeState, OperationResult};
        let mut s = Snapshot::for_parent(obj(dc));
        s.now_ms = 1_700_000_000_000;
        s.related = vec![obj(&json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "demo-dc1-default-sts-0", "namespace": "ns1", "uid": "pod-uid",
                "labels": {"cassandra.datastax.com/cluster": "demo",
                           "cassandra.datastax.com/datacenter": "dc1",
                           "cassandra.datastax.com/rack": "default",
                           "cassandra.datastax.com/seed-node": "true"}},
            "status": {"podIP": "10.0.0.1", "phase": "Running"},
        }))];
        s.nodes = vec![NodeState {
            node: NodeRef {
                cluster: String::new(),
                namespace: "ns1".into(),
                pod: "demo-dc1-default-sts-0".into(),
            },
            address: Some("10.0.0.1".into()),
            reachable: true,
            error: None,
            alive: true,
            ready: true,
            endpoints: None,
        }];
        s.results = results
            .into_iter()
            .map(|(id, outcome)| OperationResult {
                id: id.into(),
                outcome,
                at_ms: s.now_ms - 10,
            })
            .collect();
        s
    }

    fn fql_ops(plan: &Plan) -> Vec<(String, OperationKind)> {
        plan.operations
            .iter()
            .filter(|o| o.id.starts_with("fql/"))
            .map(|o| (o.id.clone(), o.kind.clone()))
            .collect()
    }

    #[test]
    fn full_query_logging_is_asked_then_switched_on_running_nodes() {
        let mut d = dc(json!({"size": 1, "fullQueryLogging": {"enabled": true}}));
        d["spec"]["clusterName"] = json!("demo");
        let get = "fql/get/demo-dc1-default-sts-0/pod-uid/1";
        let set = "fql/set/demo-dc1-default-sts-0/pod-uid/1/true";

        let plan = reconcile(&ready_pod_snapshot(&d, vec![])).unwrap();
        assert_eq!(
            fql_ops(&plan),
            vec![(get.to_string(), OperationKind::GetFullQueryLogging)]
        );
        assert_eq!(
            condition(&plan, super::FULL_QUERY_LOGGING).unwrap()["reason"],
            "Switching"
        );

        let plan = reconcile(&ready_pod_snapshot(
            &d,
            vec![(get, Outcome::Succeeded("false".into()))],
        ))
        .unwrap();
        assert_eq!(
            fql_ops(&plan),
            vec![(set.to_string(), OperationKind::SetFullQueryLogging(true))]
        );

        let plan = reconcile(&ready_pod_snapshot(
            &d,
            vec![
                (get, Outcome::Succeeded("false".into())),
                (set, Outcome::Succeeded(String::new())),
            ],
        ))
        .unwrap();
        assert!(fql_ops(&plan).is_empty());
        let c = condition(&plan, super::FULL_QUERY_LOGGING).unwrap();
        assert_eq!(
            (c["status"].as_str(), c["reason"].as_str()),
            (Some("True"), Some("Enabled"))
        );

        // A failed switch is tried again with a new id once its backoff ran out.
        let mut s = ready_pod_snapshot(
            &d,
            vec![
                (get, Outcome::Succeeded("false".into())),
                (set, Outcome::Failed("boom".into())),
            ],
        );
        assert!(fql_ops(&reconcile(&s).unwrap()).is_empty());
        s.now_ms += 5_000;
        assert_eq!(
            fql_ops(&reconcile(&s).unwrap()),
            vec![(format!("{set}/1"), OperationKind::SetFullQueryLogging(true))]
        );

        // The node already logs what the spec asks: nothing to switch.
        d["spec"]["fullQueryLogging"]["enabled"] = json!(false);
        let plan = reconcile(&ready_pod_snapshot(
            &d,
            vec![(get, Outcome::Succeeded("false".into()))],
        ))
        .unwrap();
        assert!(fql_ops(&plan).is_empty());
        assert_eq!(
            condition(&plan, super::FULL_QUERY_LOGGING).unwrap()["reason"],
            "Disabled"
        );
    }

    #[test]
    fn audit_and_query_logs_get_volumes_of_their_own_and_a_vector_source() {
        let mut extra = full_telemetry();
        extra["auditLogging"] = json!({"enabled": true, "logger": "FileAuditLogger"});
        extra["fullQueryLogging"] = json!({"enabled": false});
        // The user's sink reads the audit log.
        extra["telemetry"]["vector"]["components"]["sinks"]
            .as_array_mut()
            .unwrap()
            .push(
                json!({"name": "audit_out", "type": "console", "inputs": ["cassandra_audit_log"],
                         "config": "encoding.codec = \"text\""}),
            );
        let plan = run(&dc(extra.clone()), &apiservices(true), &[]);
        let spec = pod_spec(&plan);
        let volumes = spec["volumes"].as_array().unwrap();
        for (name, dir) in [
            ("audit-logs", "/var/log/cassandra/audit"),
            ("fql-logs", "/var/log/cassandra/fql"),
        ] {
            assert!(
                volumes.contains(&json!({"name": name, "emptyDir": {}})),
                "{name}"
            );
            for c in ["cassandra", "server-system-logger"] {
                assert!(
                    container(&spec, c)["volumeMounts"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|m| m["name"] == name && m["mountPath"] == dir),
                    "{name} in {c}"
                );
            }
        }
        let cm = applied(&plan, "ConfigMap", "demo-kc-dc1-cass-vector").unwrap();
        let text = cm["data"]["vector.toml"].as_str().unwrap();
        assert!(
            text.contains(
                "[sources.cassandra_audit_log]\ntype = \"file\"\ninclude = [ \"/var/log/cassandra/audit/audit.log\" ]"
            ),
            "{text}"
        );
        assert_eq!(
            condition(&plan, super::TELEMETRY_READY).unwrap()["status"],
            "True"
        );

        // The binary logger writes no text log: the source does not exist, and a sink that
        // names it is refused, naming the component.
        extra["auditLogging"]["logger"] = json!("BinAuditLogger");
        let v = crate::validate::check_spec(&serde_json::from_value(dc(extra)).unwrap());
        assert!(
            v.iter().any(|v| v
                .field
                .starts_with("spec.telemetry.vector.components.sinks")
                && v.message.contains("cassandra_audit_log")),
            "{v:?}"
        );
        // A logDir of the user's gets no volume from here.
        let plan = run(
            &dc(json!({"auditLogging": {"enabled": true, "logDir": "/var/log/cassandra/mine"}})),
            &[],
            &[],
        );
        assert!(!pod_spec(&plan).to_string().contains("audit-logs"));
    }

    #[test]
    fn audit_logging_renders_into_cassandra_yaml() {
        let plan = run(
            &dc(
                json!({"auditLogging": {"enabled": true, "logger": "FileAuditLogger",
                "includedKeyspaces": ["ks1", "ks2"], "excludedCategories": ["QUERY"]}}),
            ),
            &[],
            &[],
        );
        let a = &config_data(&plan)["cassandra-yaml"]["audit_logging_options"];
        assert_eq!(a["enabled"], true);
        assert_eq!(a["logger"][0]["class_name"], "FileAuditLogger");
        assert_eq!(a["included_keyspaces"], "ks1,ks2");
        assert_eq!(a["excluded_categories"], "QUERY");
        assert_eq!(a["audit_logs_dir"], "/var/log/cassandra/audit");
    }

    #[test]
    fn cdc_without_agent_is_a_warning_condition() {
        let cdc = json!({"cdc": {"pulsarServiceUrl": "pulsar://p:6650"}});
        let mut on5 = cdc.clone();
        on5["serverVersion"] = json!("5.0.4");
        let plan = run(&dc(on5), &[], &[]);
        let c = condition(&plan, super::CDC_AGENT_AVAILABLE).unwrap();
        assert_eq!(c["status"], "False");
        assert_eq!(config_data(&plan)["cassandra-yaml"]["cdc_enabled"], true);
        let plan = run(&dc(cdc), &[], &[]);
        assert!(condition(&plan, super::CDC_AGENT_AVAILABLE).is_none());
    }
}
