//! Telemetry settings shared by Cassandra datacenters, Stargate and Reaper
//! (`telemetry` in their specs; k8ssandra-operator's `telemetry/v1alpha1`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How the metrics of a component are exposed and collected.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct TelemetrySpec {
    /// Prometheus Operator integration: ServiceMonitors for this component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusTelemetrySpec>,

    /// The legacy Metrics Collector for Apache Cassandra (MCAC) agent. Deprecated: the
    /// management API's metrics endpoint replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcac: Option<McacTelemetrySpec>,

    /// A Vector agent sidecar that scrapes the component's metrics (and logs) and ships them
    /// to the sinks you configure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<VectorSpec>,

    /// Settings of the metrics endpoint inside the Cassandra container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cassandra: Option<CassandraAgentSpec>,
}

/// Prometheus Operator integration.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusTelemetrySpec {
    /// Create a ServiceMonitor for this component (requires the Prometheus Operator CRDs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,

    /// Labels put on every ServiceMonitor created, typically to match the `serviceMonitorSelector`
    /// of your Prometheus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_labels: Option<BTreeMap<String, String>>,
}

/// The legacy MCAC metrics agent (deprecated).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct McacTelemetrySpec {
    /// Filters (`allow:<prefix>` / `deny:<prefix>`) that limit which metrics MCAC exports.
    /// Unset: a default set that drops most per-table metrics. Empty list: export everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_filters: Option<Vec<String>>,

    /// Run the MCAC agent. Off unless set to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// The Vector agent sidecar.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VectorSpec {
    /// Add the Vector sidecar container to the component's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,

    /// CPU and memory for the Vector container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Vector image to run instead of the operator's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// How often Vector scrapes the metrics endpoint, as a duration such as `30s` or `1m`
    /// (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape_interval: Option<String>,

    /// Raw Vector configuration (TOML) merged into the generated one, for global options or
    /// anything the components below cannot express.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,

    /// Extra Vector sources, transforms and sinks, added to the built-in ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<VectorComponentsSpec>,
}

/// User-defined Vector pipeline components.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct VectorComponentsSpec {
    /// Additional Vector sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<VectorSourceSpec>>,

    /// Vector sinks: where the collected data goes (Prometheus remote write, Loki, S3, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sinks: Option<Vec<VectorSinkSpec>>,

    /// Vector transforms applied between sources and sinks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transforms: Option<Vec<VectorTransformSpec>>,
}

/// A Vector source.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct VectorSourceSpec {
    /// Component id, unique in the Vector configuration; other components list it in `inputs`.
    pub name: String,

    /// Vector source type, such as `prometheus_scrape` or `file`.
    #[serde(rename = "type")]
    pub type_: String,

    /// The rest of the source's settings, as TOML.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
}

/// A Vector sink.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct VectorSinkSpec {
    /// Component id, unique in the Vector configuration.
    pub name: String,

    /// Vector sink type, such as `prometheus_remote_write`, `loki` or `console`.
    #[serde(rename = "type")]
    pub type_: String,

    /// Ids of the sources or transforms whose events this sink receives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,

    /// The rest of the sink's settings, as TOML.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
}

/// A Vector transform.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct VectorTransformSpec {
    /// Component id, unique in the Vector configuration.
    pub name: String,

    /// Vector transform type, such as `remap` or `filter`.
    #[serde(rename = "type")]
    pub type_: String,

    /// Ids of the sources or transforms this transform reads from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,

    /// The rest of the transform's settings, as TOML.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
}

/// The metrics endpoint built into the Cassandra container.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct CassandraAgentSpec {
    /// Where the endpoint listens and with which TLS material.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Endpoint>,

    /// Prometheus relabelling rules applied to the metrics before they are exposed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relabels: Option<Vec<RelabelConfig>>,
}

/// Listen address of a metrics endpoint.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct Endpoint {
    /// Address to bind, such as `0.0.0.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,

    /// Port to listen on (as a string, for example `"9000"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,

    /// Serve the endpoint over TLS with these files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
}

/// Paths of the TLS files of a metrics endpoint, inside the container.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct TlsConfig {
    /// CA certificate used to verify clients.
    #[serde(rename = "ca.crt", default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,

    /// Server certificate.
    #[serde(rename = "tls.crt", default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,

    /// Server private key.
    #[serde(rename = "tls.key", default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
}

/// One Prometheus relabelling rule (the `relabel_config` of Prometheus).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RelabelConfig {
    /// Labels whose values are joined with `separator` and matched against `regex`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_labels: Option<Vec<String>>,

    /// String placed between the joined source label values (default `;`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separator: Option<String>,

    /// Label written by `replace`, `hashmod`, `lowercase`, `uppercase`, `keepequal` and
    /// `dropequal`; capture groups of `regex` may be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_label: Option<String>,

    /// Regular expression matched against the joined source values (default `(.*)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,

    /// Modulus of the hash, for the `hashmod` action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modulus: Option<i64>,

    /// Value written to `targetLabel` by `replace` (default `$1`); capture groups may be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,

    /// What to do when the regex matches (default `replace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend(
        "default" = "replace",
        "enum" = [
            "replace", "Replace", "keep", "Keep", "drop", "Drop", "hashmod", "HashMod",
            "labelmap", "LabelMap", "labeldrop", "LabelDrop", "labelkeep", "LabelKeep",
            "lowercase", "Lowercase", "uppercase", "Uppercase", "keepequal", "KeepEqual",
            "dropequal", "DropEqual"
        ]
    ))]
    pub action: Option<String>,
}

/// Cassandra's audit log (4.0+), rendered into `cassandra.yaml`'s `audit_logging_options`.
/// Changing it restarts the nodes one at a time (Cassandra reads it at start-up).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuditLoggingSpec {
    /// Record audit events.
    #[serde(default)]
    pub enabled: bool,

    /// Audit logger class: `BinAuditLogger` (default, binary chronicle files read with
    /// `auditlogviewer`) or `FileAuditLogger` (text, through logback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["BinAuditLogger", "FileAuditLogger"]))]
    pub logger: Option<String>,

    /// Directory of the binary audit log; absolute, under `/var/log/cassandra` or under the
    /// `mountPath` of one of `storageConfig.additionalVolumes` (its own volume). Default
    /// `/var/log/cassandra/audit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_dir: Option<String>,

    /// Keyspaces to audit (all when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub included_keyspaces: Option<Vec<String>>,

    /// Keyspaces never audited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded_keyspaces: Option<Vec<String>>,

    /// Categories to audit: QUERY, DML, DDL, DCL, OTHER, AUTH, ERROR, PREPARE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub included_categories: Option<Vec<String>>,

    /// Categories never audited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded_categories: Option<Vec<String>>,

    /// Users to audit (all when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub included_users: Option<Vec<String>>,

    /// Users never audited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded_users: Option<Vec<String>>,
}

/// Cassandra's full query log (Apache Cassandra 4.0+, not DSE). Its options go into
/// `cassandra.yaml`'s `full_query_logging_options` (a change there restarts the nodes once);
/// `enabled` is switched on the running nodes through the management API, without a restart.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FullQueryLoggingSpec {
    /// Log every query on every node of the datacenter.
    #[serde(default)]
    pub enabled: bool,

    /// Directory of the query log; absolute, under `/var/log/cassandra` or under the
    /// `mountPath` of one of `storageConfig.additionalVolumes` (its own volume). Default
    /// `/var/log/cassandra/fql`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_dir: Option<String>,

    /// How often a new log file starts: MINUTELY, HOURLY (default) or DAILY.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["MINUTELY", "HOURLY", "DAILY"]))]
    pub roll_cycle: Option<String>,

    /// Block queries while the log cannot keep up (default true) instead of dropping entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<bool>,

    /// Bytes of queued entries before blocking or dropping (default 268435456).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queue_weight: Option<i64>,

    /// Bytes of log files kept before the oldest are deleted (default 17179869184).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_log_size: Option<i64>,
}
