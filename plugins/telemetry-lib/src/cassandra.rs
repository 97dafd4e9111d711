//! Telemetry of a Cassandra datacenter: the management API's metrics-agent configuration
//! (`metrics-collector.yaml`), the built-in Vector components of the Cassandra pod, and
//! the checks of relabel rules and MCAC metric filters.

use k8ssandra_api::telemetry::{RelabelConfig, TelemetrySpec};
use serde_json::{Value, json};

use crate::vector::{Component, VectorConfig, VectorError, duration_secs, toml_string};

/// Port of the management API's metrics endpoint.
pub const METRICS_PORT: u16 = 9000;
/// Port of the legacy MCAC agent.
pub const MCAC_PORT: u16 = 9103;
/// Key of the metrics-agent ConfigMap, and the file the management API reads in
/// [`METRICS_AGENT_DIR`].
pub const METRICS_AGENT_KEY: &str = "metrics-collector.yaml";
pub const METRICS_AGENT_DIR: &str = "/opt/management-api/configs";
pub const METRICS_AGENT_VOLUME: &str = "metrics-agent-config";
/// Key of the Vector ConfigMap, mounted over the logger image's `/etc/vector`.
pub const VECTOR_KEY: &str = "vector.toml";
pub const VECTOR_DIR: &str = "/etc/vector";
pub const VECTOR_VOLUME: &str = "vector-config";
const DEFAULT_SCRAPE_SECS: u64 = 30;

/// MCAC's default filters: drop per-table metrics except the useful families.
pub const DEFAULT_MCAC_FILTERS: [&str; 14] = [
    "deny:org.apache.cassandra.metrics.Table",
    "deny:org.apache.cassandra.metrics.table",
    "allow:org.apache.cassandra.metrics.table.live_ss_table_count",
    "allow:org.apache.cassandra.metrics.Table.LiveSSTableCount",
    "allow:org.apache.cassandra.metrics.table.live_disk_space_used",
    "allow:org.apache.cassandra.metrics.table.LiveDiskSpaceUsed",
    "allow:org.apache.cassandra.metrics.Table.Pending",
    "allow:org.apache.cassandra.metrics.Table.Memtable",
    "allow:org.apache.cassandra.metrics.Table.Compaction",
    "allow:org.apache.cassandra.metrics.table.read",
    "allow:org.apache.cassandra.metrics.table.write",
    "allow:org.apache.cassandra.metrics.table.range",
    "allow:org.apache.cassandra.metrics.table.coordinator",
    "allow:org.apache.cassandra.metrics.table.dropped_mutations",
];

/// Table families the default relabels keep (everything else labelled `table` is dropped).
const KEPT_TABLE_FAMILIES: [&str; 11] = [
    "org_apache_cassandra_metrics_table_live_ss_table_count",
    "org_apache_cassandra_metrics_table_live_disk_space_used",
    "org_apache_cassandra_metrics_table_memtable.*",
    "org_apache_cassandra_metrics_table_all_memtables.*",
    "org_apache_cassandra_metrics_table_compaction_bytes_written",
    "org_apache_cassandra_metrics_table_pending_compactions",
    "org_apache_cassandra_metrics_table_read_.*",
    "org_apache_cassandra_metrics_table_write_.*",
    "org_apache_cassandra_metrics_table_range.*",
    "org_apache_cassandra_metrics_table_coordinator_.*",
    "org_apache_cassandra_metrics_table_dropped_mutations",
];

/// A finding about the telemetry spec, with the field it is about (relative to
/// `telemetry`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct TelemetryError {
    pub field: String,
    pub message: String,
}

impl From<VectorError> for TelemetryError {
    fn from(e: VectorError) -> Self {
        TelemetryError {
            field: format!("vector.{}", e.field),
            message: format!("{}: {}", e.place, e.message),
        }
    }
}

/// Upstream's default relabels: tag every `table`-labelled sample, untag the kept
/// families, drop what stays tagged.
pub fn default_relabels() -> Vec<Value> {
    let mut out = vec![json!({
        "sourceLabels": ["table"], "regex": ".+", "targetLabel": "should_drop", "replacement": "true",
    })];
    for family in KEPT_TABLE_FAMILIES {
        out.push(json!({
            "sourceLabels": ["__name__"], "regex": family, "targetLabel": "should_drop", "replacement": "false",
        }));
    }
    out.push(json!({"sourceLabels": ["should_drop"], "regex": "true", "action": "drop"}));
    out
}

/// The `metrics-collector.yaml` document (as JSON, which is YAML): upstream's default
/// relabels followed by the user's, and the user's endpoint.
pub fn metrics_agent_config(spec: Option<&TelemetrySpec>) -> Value {
    let agent = spec.and_then(|s| s.cassandra.as_ref());
    let mut relabels = default_relabels();
    if let Some(user) = agent.and_then(|a| a.relabels.as_ref()) {
        relabels.extend(
            user.iter()
                .map(|r| serde_json::to_value(r).unwrap_or(Value::Null)),
        );
    }
    let mut doc = json!({ "relabels": relabels });
    if let Some(endpoint) = agent.and_then(|a| a.endpoint.as_ref()) {
        doc["endpoint"] = serde_json::to_value(endpoint).unwrap_or(Value::Null);
    }
    doc
}

/// The metrics-agent file's text.
pub fn metrics_agent_yaml(spec: Option<&TelemetrySpec>) -> String {
    // JSON is YAML; pretty-printed it stays readable in `kubectl get cm -o yaml`.
    serde_json::to_string_pretty(&metrics_agent_config(spec)).unwrap_or_default() + "\n"
}

const RELABEL_ACTIONS: [&str; 11] = [
    "replace",
    "keep",
    "drop",
    "hashmod",
    "labelmap",
    "labeldrop",
    "labelkeep",
    "lowercase",
    "uppercase",
    "keepequal",
    "dropequal",
];

/// Checks relabel rules as Prometheus would load them.
pub fn check_relabels(relabels: &[RelabelConfig], field: &str) -> Vec<TelemetryError> {
    let mut out = Vec::new();
    let label_name = regex::Regex::new("^[a-zA-Z_][a-zA-Z0-9_]*$").ok();
    for (i, r) in relabels.iter().enumerate() {
        let f = format!("{field}[{i}]");
        let action = r
            .action
            .as_deref()
            .unwrap_or("replace")
            .to_ascii_lowercase();
        if !RELABEL_ACTIONS.contains(&action.as_str()) {
            out.push(TelemetryError {
                field: format!("{f}.action"),
                message: format!("unknown action `{action}`"),
            });
        }
        if let Some(re) = &r.regex
            && let Err(e) = regex::Regex::new(&format!("^(?:{re})$"))
        {
            out.push(TelemetryError {
                field: format!("{f}.regex"),
                message: format!(
                    "does not parse as a regular expression: {}",
                    e.to_string().lines().last().unwrap_or_default().trim()
                ),
            });
        }
        let needs_target = matches!(
            action.as_str(),
            "replace" | "hashmod" | "lowercase" | "uppercase" | "keepequal" | "dropequal"
        );
        match r.target_label.as_deref() {
            None | Some("") if needs_target => out.push(TelemetryError {
                field: format!("{f}.targetLabel"),
                message: format!("must be set for action `{action}`"),
            }),
            Some(t)
                if action != "replace" && label_name.as_ref().is_some_and(|l| !l.is_match(t)) =>
            {
                out.push(TelemetryError {
                    field: format!("{f}.targetLabel"),
                    message: format!("`{t}` is not a valid label name"),
                })
            }
            _ => {}
        }
        for (j, l) in r.source_labels.iter().flatten().enumerate() {
            if label_name.as_ref().is_some_and(|re| !re.is_match(l)) {
                out.push(TelemetryError {
                    field: format!("{f}.sourceLabels[{j}]"),
                    message: format!("`{l}` is not a valid label name"),
                });
            }
        }
        if action == "hashmod" && r.modulus.unwrap_or(0) <= 0 {
            out.push(TelemetryError {
                field: format!("{f}.modulus"),
                message: "must be a positive number for action `hashmod`".into(),
            });
        }
    }
    out
}

/// Checks MCAC filters: `allow:<prefix>` or `deny:<prefix>`.
pub fn check_metric_filters(filters: &[String], field: &str) -> Vec<TelemetryError> {
    filters
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            let ok = f
                .split_once(':')
                .is_some_and(|(kind, prefix)| {
                    matches!(kind, "allow" | "deny")
                        && !prefix.is_empty()
                        && !prefix.chars().any(char::is_whitespace)
                });
            (!ok).then(|| TelemetryError {
                field: format!("{field}[{i}]"),
                message: format!(
                    "`{f}` does not parse: a filter is `allow:<metric prefix>` or `deny:<metric prefix>`"
                ),
            })
        })
        .collect()
}

/// MCAC's `METRIC_FILTERS` value.
pub fn metric_filters_env(spec: Option<&TelemetrySpec>) -> String {
    match spec
        .and_then(|s| s.mcac.as_ref())
        .and_then(|m| m.metric_filters.as_ref())
    {
        Some(list) => list.join(" "),
        None => DEFAULT_MCAC_FILTERS.join(" "),
    }
}

pub fn mcac_enabled(spec: Option<&TelemetrySpec>) -> bool {
    spec.and_then(|s| s.mcac.as_ref())
        .and_then(|m| m.enabled)
        .unwrap_or(false)
}

pub fn vector_enabled(spec: Option<&TelemetrySpec>) -> bool {
    spec.and_then(|s| s.vector.as_ref())
        .and_then(|v| v.enabled)
        .unwrap_or(false)
}

pub fn prometheus_enabled(spec: Option<&TelemetrySpec>) -> bool {
    spec.and_then(|s| s.prometheus.as_ref())
        .and_then(|p| p.enabled)
        .unwrap_or(false)
}

/// Every finding about a datacenter's telemetry spec, fields relative to `telemetry`.
pub fn check(spec: &TelemetrySpec) -> Vec<TelemetryError> {
    check_for(spec, false)
}

/// [`check`] for a datacenter that writes a text audit log (`audit_log`), whose Vector
/// source user components may name.
pub fn check_for(spec: &TelemetrySpec, audit_log: bool) -> Vec<TelemetryError> {
    let mut out = Vec::new();
    if let Some(filters) = spec.mcac.as_ref().and_then(|m| m.metric_filters.as_ref()) {
        out.extend(check_metric_filters(filters, "mcac.metricFilters"));
    }
    if let Some(agent) = &spec.cassandra {
        if let Some(r) = &agent.relabels {
            out.extend(check_relabels(r, "cassandra.relabels"));
        }
        if let Some(port) = agent.endpoint.as_ref().and_then(|e| e.port.as_deref())
            && !port.is_empty()
            && !port.parse::<u16>().is_ok_and(|p| p > 1024)
        {
            out.push(TelemetryError {
                field: "cassandra.endpoint.port".into(),
                message: format!("`{port}` is not a port number between 1025 and 65535"),
            });
        }
    }
    if let Some(v) = &spec.vector
        && let Some(i) = &v.scrape_interval
        && duration_secs(i).is_none_or(|s| s == 0)
    {
        out.push(TelemetryError {
            field: "vector.scrapeInterval".into(),
            message: format!("`{i}` is not a duration such as `30s` or `1m`"),
        });
    }
    if vector_enabled(Some(spec))
        && let Err(errors) = vector_toml_for(spec, audit_log)
    {
        out.extend(errors);
    }
    out
}

/// Built-in Vector components of a Cassandra pod: the system log and the metrics
/// endpoint as sources, their parsers, and the system log printed to the console.
pub fn default_components(spec: &TelemetrySpec) -> Vec<Component> {
    let mcac = mcac_enabled(Some(spec));
    let endpoint = spec.cassandra.as_ref().and_then(|c| c.endpoint.as_ref());
    let address = endpoint
        .and_then(|e| e.address.as_deref())
        .filter(|a| !a.is_empty())
        .unwrap_or("localhost");
    let port = endpoint
        .and_then(|e| e.port.as_deref())
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(if mcac { MCAC_PORT } else { METRICS_PORT });
    let tls = endpoint.and_then(|e| e.tls.as_ref());
    let path = if mcac { "" } else { "/metrics" };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let interval = spec
        .vector
        .as_ref()
        .and_then(|v| v.scrape_interval.as_deref())
        .and_then(duration_secs)
        .filter(|s| *s > 0)
        .unwrap_or(DEFAULT_SCRAPE_SECS);
    let mut scrape = format!(
        "endpoints = [ \"{scheme}://{address}:{port}{path}\" ]\nscrape_interval_secs = {interval}"
    );
    if let Some(tls) = tls {
        for (key, v) in [
            ("ca_file", &tls.ca_file),
            ("crt_file", &tls.cert_file),
            ("key_file", &tls.key_file),
        ] {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                scrape.push_str(&format!("\ntls.{key} = {}", toml_string(v)));
            }
        }
    }
    vec![
        Component::source("systemlog", "file", SYSTEMLOG_SOURCE),
        Component::source("cassandra_metrics_raw", "prometheus_scrape", &scrape),
        Component::transform(
            "parse_cassandra_log",
            "remap",
            &["systemlog"],
            PARSE_LOG_REMAP,
        ),
        Component::transform(
            "cassandra_metrics",
            "remap",
            &["cassandra_metrics_raw"],
            METRICS_NAMESPACE_REMAP,
        ),
        Component::sink(
            "console_log",
            "console",
            &["systemlog"],
            "target = \"stdout\"\nencoding.codec = \"text\"\n",
        ),
    ]
}

/// The checked `vector.toml` of a Cassandra pod, or every finding.
pub fn vector_toml(spec: &TelemetrySpec) -> Result<String, Vec<TelemetryError>> {
    vector_toml_for(spec, false)
}

/// [`vector_toml`] of a pod that writes a text audit log: the source
/// [`AUDIT_LOG_SOURCE`] tails it, for the user's transforms and sinks to name (like every
/// built-in source, it is left out when nothing reads it).
pub fn vector_toml_for(
    spec: &TelemetrySpec,
    audit_log: bool,
) -> Result<String, Vec<TelemetryError>> {
    let vector = spec.vector.clone().unwrap_or_default();
    let mut defaults = default_components(spec);
    if audit_log {
        defaults.push(Component::source(
            AUDIT_LOG_SOURCE,
            "file",
            &format!(
                "include = [ {} ]\nread_from = \"beginning\"\nfingerprint.strategy = \"device_and_inode\"\n",
                toml_string(FILE_AUDIT_LOG)
            ),
        ));
    }
    VectorConfig::from_spec(&vector)
        .with_defaults(defaults)
        .build()
        .map_err(|e| e.into_iter().map(TelemetryError::from).collect())
}

/// Name of the Vector source of the text audit log.
pub const AUDIT_LOG_SOURCE: &str = "cassandra_audit_log";
/// Where Cassandra's `FileAuditLogger` writes: its logback `AUDIT` appender's file,
/// `${cassandra.logdir}/audit/audit.log` (`audit_logs_dir` only applies to the binary
/// logger).
pub const FILE_AUDIT_LOG: &str = "/var/log/cassandra/audit/audit.log";
/// Class name of Cassandra's text audit logger.
pub const FILE_AUDIT_LOGGER: &str = "FileAuditLogger";

/// Whether `audit_logging_options` (as rendered into `cassandra-yaml`) turn on the text
/// audit logger: enabled, with `FileAuditLogger` (short or fully qualified) as its logger,
/// written as a list of `class_name` entries (4.0 and later) or as one.
pub fn file_audit_log(options: Option<&Value>) -> bool {
    let Some(o) = options else {
        return false;
    };
    let on = o.get("enabled").is_some_and(|e| {
        e.as_bool() == Some(true) || e.as_str().is_some_and(|s| s.eq_ignore_ascii_case("true"))
    });
    let is_file = |l: &Value| {
        l.get("class_name")
            .and_then(Value::as_str)
            .is_some_and(|c| c.rsplit('.').next() == Some(FILE_AUDIT_LOGGER))
    };
    let logger = match o.get("logger") {
        Some(Value::Array(list)) => list.iter().any(is_file),
        Some(one @ Value::Object(_)) => is_file(one),
        Some(Value::String(c)) => c.rsplit('.').next() == Some(FILE_AUDIT_LOGGER),
        _ => false,
    };
    on && logger
}

const SYSTEMLOG_SOURCE: &str = r#"include = [ "/var/log/cassandra/system.log" ]
read_from = "beginning"
fingerprint.strategy = "device_and_inode"
[sources.systemlog.multiline]
start_pattern = "^(INFO|WARN|ERROR|DEBUG|TRACE|FATAL)"
condition_pattern = "^(INFO|WARN|ERROR|DEBUG|TRACE|FATAL)"
mode = "halt_before"
timeout_ms = 10000
"#;

const PARSE_LOG_REMAP: &str = r#"source = '''
del(.source_type)
.message = string!(.message)
.message = strip_whitespace(.message)
., err = . | parse_groks(.message, patterns: [
  "%{LOGLEVEL:loglevel}\\s+\\[(?<thread>((.+)))\\]\\s+%{TIMESTAMP_ISO8601:timestamp_raw}\\s+%{JAVACLASS:class}:%{NUMBER:line}\\s+-\\s+(?<message>(.+\\n?)+)",
  ]
)
if err != null {
  log("Unable to parse line: " + err, level: "error")
  .message = .message
  .loglevel = "warn"
}

parsed_timestamp, err = parse_timestamp(.timestamp_raw, format: "%Y-%m-%d %T,%3f")
if err == null {
  .timestamp = parsed_timestamp
} else {
  .timestamp = now()
}
del(.timestamp_raw)

pod_name, err = get_env_var("POD_NAME")
if err == null {
  .pod_name = pod_name
}
node_name, err = get_env_var("NODE_NAME")
if err == null {
  .node_name = node_name
}
cluster, err = get_env_var("CLUSTER_NAME")
if err == null {
  .cluster = cluster
}
datacenter, err = get_env_var("DATACENTER_NAME")
if err == null {
  .datacenter = datacenter
}
rack, err = get_env_var("RACK_NAME")
if err == null {
  .rack = rack
}
namespace, err = get_env_var("NAMESPACE")
if err == null {
  .namespace = namespace
}
'''
"#;

const METRICS_NAMESPACE_REMAP: &str = r#"source = '''
namespace, err = get_env_var("NAMESPACE")
if err == null {
  .tags.namespace = namespace
}
'''
"#;
