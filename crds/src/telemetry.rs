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
