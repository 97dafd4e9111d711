//! The Vector agent configuration (`vector.toml`) of a component, and its checks.
//!
//! Layout as k8ssandra-operator writes it: the raw global `config` first, then every source,
//! transform and sink as `[<section>.<name>]` with `type`, `inputs` and the component's own
//! TOML. Built-in components are added after the user's; a user component with the same
//! name wins (the first occurrence is kept), and every source or transform whose events
//! reach no sink is dropped.
//!
//! Beyond upstream, the result is checked before anything ships (upstream finds a bad file
//! only when the Vector container crash-loops): each piece parses as TOML, names are
//! unique, every `inputs` entry names a component that exists, there is no cycle, sink,
//! source and transform types are known to Vector, and every `remap` transform's VRL
//! compiles (feature `vrl`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8ssandra_api::telemetry::{VectorSinkSpec, VectorSourceSpec, VectorSpec, VectorTransformSpec};

/// Where a component sits in the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Section {
    Sources,
    Transforms,
    Sinks,
}

impl Section {
    pub fn as_str(&self) -> &'static str {
        match self {
            Section::Sources => "sources",
            Section::Transforms => "transforms",
            Section::Sinks => "sinks",
        }
    }

    fn singular(&self) -> &'static str {
        match self {
            Section::Sources => "source",
            Section::Transforms => "transform",
            Section::Sinks => "sink",
        }
    }
}

/// One source, transform or sink.
#[derive(Clone, Debug, PartialEq)]
pub struct Component {
    pub section: Section,
    pub name: String,
    pub type_: String,
    pub inputs: Vec<String>,
    /// The rest of the component's settings, TOML text placed under its table header.
    pub config: String,
    /// Added by the operator rather than written by the user.
    pub builtin: bool,
}

impl Component {
    pub fn source(name: &str, type_: &str, config: &str) -> Self {
        Component {
            section: Section::Sources,
            name: name.into(),
            type_: type_.into(),
            inputs: Vec::new(),
            config: config.into(),
            builtin: true,
        }
    }

    pub fn transform(name: &str, type_: &str, inputs: &[&str], config: &str) -> Self {
        Component {
            section: Section::Transforms,
            name: name.into(),
            type_: type_.into(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            config: config.into(),
            builtin: true,
        }
    }

    pub fn sink(name: &str, type_: &str, inputs: &[&str], config: &str) -> Self {
        Component {
            section: Section::Sinks,
            name: name.into(),
            type_: type_.into(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            config: config.into(),
            builtin: true,
        }
    }

    fn render(&self, out: &mut String) {
        out.push_str(&format!("\n[{}.{}]\n", self.section.as_str(), self.name));
        out.push_str(&format!("type = {}\n", toml_string(&self.type_)));
        if self.section != Section::Sources {
            let list: Vec<String> = self.inputs.iter().map(|i| toml_string(i)).collect();
            out.push_str(&format!("inputs = [{}]\n", list.join(", ")));
        }
        if !self.config.trim().is_empty() {
            out.push_str(&self.config);
            if !self.config.ends_with('\n') {
                out.push('\n');
            }
        }
    }
}

/// A finding that keeps a configuration from shipping.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{place}: {message}")]
pub struct VectorError {
    /// `sources.<name>`, `transforms.<name>`, `sinks.<name>` or `config` (the global text).
    pub place: String,
    /// The user-facing spec field the finding is about, relative to `telemetry.vector`
    /// (`components.transforms[2]`, `config`), when it comes from the user's input.
    pub field: String,
    pub message: String,
}

/// The whole Vector configuration of one pod.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VectorConfig {
    /// Raw global options (`data_dir`, `[api]`, ...), first in the file.
    pub global: String,
    pub components: Vec<Component>,
}

impl VectorConfig {
    /// The user's part of a `telemetry.vector` spec: its global config and components, in
    /// the spec's order.
    pub fn from_spec(spec: &VectorSpec) -> Self {
        let mut components = Vec::new();
        if let Some(c) = &spec.components {
            for s in c.sources.iter().flatten() {
                components.push(user_source(s));
            }
            for t in c.transforms.iter().flatten() {
                components.push(user_transform(t));
            }
            for s in c.sinks.iter().flatten() {
                components.push(user_sink(s));
            }
        }
        VectorConfig {
            global: spec.config.clone().unwrap_or_default(),
            components,
        }
    }

    /// Adds the built-in components after the user's.
    pub fn with_defaults(mut self, defaults: Vec<Component>) -> Self {
        self.components.extend(defaults);
        self
    }

    /// Checks the configuration (the user's components and the built-in ones together) and
    /// renders it with the unused pipelines removed. `Err` lists every finding.
    pub fn build(&self) -> Result<String, Vec<VectorError>> {
        let mut errors = self.check();
        let kept = filter_unused(&self.components);
        let text = render(&self.global, &kept);
        if errors.is_empty()
            && let Err(e) = text.parse::<toml::Table>()
        {
            errors.push(VectorError {
                place: "vector.toml".into(),
                field: "config".into(),
                message: format!(
                    "the assembled configuration is not valid TOML: {}",
                    one_line(&e.to_string())
                ),
            });
        }
        if errors.is_empty() {
            Ok(text)
        } else {
            Err(errors)
        }
    }

    fn check(&self) -> Vec<VectorError> {
        let mut errors = Vec::new();
        if !self.global.trim().is_empty()
            && let Err(e) = self.global.parse::<toml::Table>()
        {
            errors.push(VectorError {
                place: "config".into(),
                field: "config".into(),
                message: format!("not valid TOML: {}", one_line(&e.to_string())),
            });
        }
        let mut indexes: BTreeMap<Section, usize> = BTreeMap::new();
        let mut seen: BTreeMap<&str, Section> = BTreeMap::new();
        let mut fields = Vec::new();
        for c in &self.components {
            let i = indexes.entry(c.section).or_default();
            fields.push(format!("components.{}[{}]", c.section.as_str(), *i));
            *i += 1;
        }
        // Names resolvable in `inputs`: sources and transforms (first occurrence wins).
        let producers: BTreeSet<&str> = self
            .components
            .iter()
            .filter(|c| c.section != Section::Sinks)
            .map(|c| c.name.as_str())
            .collect();
        for (c, field) in self.components.iter().zip(&fields) {
            let err = |message: String| VectorError {
                place: format!("{}.{}", c.section.as_str(), c.name),
                field: field.clone(),
                message,
            };
            if !valid_id(&c.name) {
                errors.push(err(format!(
                    "name `{}` is not a valid component id (letters, digits, `_` and `-` only)",
                    c.name
                )));
                continue;
            }
            match seen.get(c.name.as_str()) {
                // The user's component of the same name replaces the built-in one.
                Some(_) if c.builtin => continue,
                Some(other) => {
                    errors.push(err(format!(
                        "the name `{}` is already used by a {}",
                        c.name,
                        other.singular()
                    )));
                    continue;
                }
                None => {
                    seen.insert(&c.name, c.section);
                }
            }
            if !known_type(c.section, &c.type_) {
                errors.push(err(format!(
                    "unknown {} type `{}`",
                    c.section.singular(),
                    c.type_
                )));
            }
            if c.section != Section::Sources && c.inputs.is_empty() {
                errors.push(err(format!(
                    "a {} needs at least one input",
                    c.section.singular()
                )));
            }
            for input in &c.inputs {
                if !input_exists(input, &producers) {
                    errors.push(err(format!("input `{input}` names no source or transform")));
                } else if input == &c.name {
                    errors.push(err("lists itself as an input".into()));
                }
            }
            let mut text = String::new();
            Component {
                config: c.config.clone(),
                ..c.clone()
            }
            .render(&mut text);
            match text.parse::<toml::Table>() {
                Err(e) => errors.push(err(format!(
                    "config is not valid TOML: {}",
                    one_line(&e.to_string())
                ))),
                Ok(doc) => {
                    let table = doc
                        .get(c.section.as_str())
                        .and_then(|s| s.get(&c.name))
                        .and_then(toml::Value::as_table);
                    if c.section == Section::Transforms
                        && c.type_ == "remap"
                        && let Some(e) = check_remap(table)
                    {
                        errors.push(err(e));
                    }
                }
            }
        }
        if let Some(cycle) = find_cycle(&self.components) {
            errors.push(VectorError {
                place: format!("transforms.{}", cycle[0]),
                field: "components.transforms".into(),
                message: format!("inputs form a cycle: {}", cycle.join(" -> ")),
            });
        }
        errors
    }
}

fn user_source(s: &VectorSourceSpec) -> Component {
    Component {
        section: Section::Sources,
        name: s.name.clone(),
        type_: s.type_.clone(),
        inputs: Vec::new(),
        config: s.config.clone().unwrap_or_default(),
        builtin: false,
    }
}

fn user_transform(t: &VectorTransformSpec) -> Component {
    Component {
        section: Section::Transforms,
        name: t.name.clone(),
        type_: t.type_.clone(),
        inputs: t.inputs.clone().unwrap_or_default(),
        config: t.config.clone().unwrap_or_default(),
        builtin: false,
    }
}

fn user_sink(s: &VectorSinkSpec) -> Component {
    Component {
        section: Section::Sinks,
        name: s.name.clone(),
        type_: s.type_.clone(),
        inputs: s.inputs.clone().unwrap_or_default(),
        config: s.config.clone().unwrap_or_default(),
        builtin: false,
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A TOML basic string: JSON's string escapes are all valid TOML escapes.
pub fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn valid_id(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// An input names a source or transform, one of a transform's named outputs
/// (`<route>.<output>`), or a `*` wildcard matching at least one of them.
fn input_exists(input: &str, producers: &BTreeSet<&str>) -> bool {
    if let Some(prefix) = input.strip_suffix('*') {
        return producers.iter().any(|p| p.starts_with(prefix));
    }
    let base = input.split_once('.').map_or(input, |(b, _)| b);
    producers.contains(base)
}

fn input_names<'a>(input: &'a str, components: &'a [Component]) -> Vec<&'a str> {
    if let Some(prefix) = input.strip_suffix('*') {
        return components
            .iter()
            .filter(|c| c.section != Section::Sinks && c.name.starts_with(prefix))
            .map(|c| c.name.as_str())
            .collect();
    }
    vec![input.split_once('.').map_or(input, |(b, _)| b)]
}

/// The transforms that take part in a cycle, in order, when there is one.
fn find_cycle(components: &[Component]) -> Option<Vec<String>> {
    let edges: BTreeMap<&str, Vec<&str>> = components
        .iter()
        .filter(|c| c.section == Section::Transforms)
        .map(|c| {
            let ins = c
                .inputs
                .iter()
                .flat_map(|i| input_names(i, components))
                .collect();
            (c.name.as_str(), ins)
        })
        .collect();
    fn visit<'a>(
        n: &'a str,
        edges: &BTreeMap<&'a str, Vec<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| *p == n) {
            let mut cycle: Vec<String> = path[at..].iter().map(|s| s.to_string()).collect();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n);
        for next in edges.get(n).into_iter().flatten() {
            if edges.contains_key(next)
                && let Some(c) = visit(next, edges, path, done)
            {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n);
        None
    }
    let mut done = BTreeSet::new();
    for n in edges.keys() {
        if let Some(c) = visit(n, &edges, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

/// Keeps the first component of each name, and only the sources and transforms whose
/// events reach a sink (through any chain of transforms).
pub fn filter_unused(components: &[Component]) -> Vec<Component> {
    let mut firsts: Vec<&Component> = Vec::new();
    for c in components {
        if !firsts.iter().any(|f| f.name == c.name) {
            firsts.push(c);
        }
    }
    let mut used: BTreeSet<&str> = BTreeSet::new();
    let mut frontier: Vec<&str> = firsts
        .iter()
        .filter(|c| c.section == Section::Sinks)
        .flat_map(|c| c.inputs.iter().flat_map(|i| input_names(i, components)))
        .collect();
    while let Some(n) = frontier.pop() {
        if !used.insert(n) {
            continue;
        }
        if let Some(c) = firsts
            .iter()
            .find(|c| c.name == n && c.section == Section::Transforms)
        {
            frontier.extend(c.inputs.iter().flat_map(|i| input_names(i, components)));
        }
    }
    firsts
        .into_iter()
        .filter(|c| c.section == Section::Sinks || used.contains(c.name.as_str()))
        .cloned()
        .collect()
}

/// The file's text: the global options, then sources, transforms and sinks.
pub fn render(global: &str, components: &[Component]) -> String {
    let mut out = String::new();
    if !global.is_empty() {
        out.push_str(global);
        if !global.ends_with('\n') {
            out.push('\n');
        }
    }
    for section in [Section::Sources, Section::Transforms, Section::Sinks] {
        for c in components.iter().filter(|c| c.section == section) {
            c.render(&mut out);
        }
    }
    out
}

/// Why a `remap` transform cannot run, if it cannot.
fn check_remap(table: Option<&toml::Table>) -> Option<String> {
    let table = table?;
    match (table.get("source"), table.get("file")) {
        (Some(toml::Value::String(src)), _) => {
            compile_vrl(src).err().map(|e| format!("VRL error: {e}"))
        }
        (Some(_), _) => Some("`source` must be a string of VRL".into()),
        (None, Some(_)) => None,
        (None, None) => Some("a remap transform needs `source` (or `file`)".into()),
    }
}

/// Compiles a VRL program with Vector's compiler and standard library.
#[cfg(feature = "vrl")]
pub fn compile_vrl(src: &str) -> Result<(), String> {
    let functions = vrl::stdlib::all();
    match vrl::compiler::compile(src, &functions) {
        Ok(_) => Ok(()),
        Err(diagnostics) => {
            let text = vrl::diagnostic::Formatter::new(src, diagnostics).to_string();
            Err(text.trim().to_string())
        }
    }
}

/// Without the compiler, any text passes.
#[cfg(not(feature = "vrl"))]
pub fn compile_vrl(_src: &str) -> Result<(), String> {
    Ok(())
}

fn known_type(section: Section, t: &str) -> bool {
    let list: &[&str] = match section {
        Section::Sources => SOURCE_TYPES,
        Section::Transforms => TRANSFORM_TYPES,
        Section::Sinks => SINK_TYPES,
    };
    list.contains(&t)
}

/// Component types of Vector 0.54 (the version of cass-operator's system-logger image).
const SOURCE_TYPES: &[&str] = &[
    "amqp",
    "apache_metrics",
    "aws_ecs_metrics",
    "aws_kinesis_firehose",
    "aws_s3",
    "aws_sqs",
    "datadog_agent",
    "demo_logs",
    "dnstap",
    "docker_logs",
    "eventstoredb_metrics",
    "exec",
    "file",
    "file_descriptor",
    "fluent",
    "gcp_pubsub",
    "heroku_logs",
    "host_metrics",
    "http",
    "http_client",
    "http_server",
    "internal_logs",
    "internal_metrics",
    "journald",
    "kafka",
    "kubernetes_logs",
    "logstash",
    "mongodb_metrics",
    "mqtt",
    "nats",
    "nginx_metrics",
    "okta",
    "opentelemetry",
    "postgresql_metrics",
    "prometheus_pushgateway",
    "prometheus_remote_write",
    "prometheus_scrape",
    "pulsar",
    "redis",
    "socket",
    "splunk_hec",
    "static_metrics",
    "statsd",
    "stdin",
    "syslog",
    "vector",
    "websocket",
    "windows_event_log",
];
const TRANSFORM_TYPES: &[&str] = &[
    "aggregate",
    "aws_ec2_metadata",
    "dedupe",
    "exclusive_route",
    "filter",
    "incremental_to_absolute",
    "log_to_metric",
    "lua",
    "metric_to_log",
    "reduce",
    "remap",
    "route",
    "sample",
    "tag_cardinality_limit",
    "throttle",
    "window",
];
const SINK_TYPES: &[&str] = &[
    "amqp",
    "appsignal",
    "aws_cloudwatch_logs",
    "aws_cloudwatch_metrics",
    "aws_kinesis_firehose",
    "aws_kinesis_streams",
    "aws_s3",
    "aws_sns",
    "aws_sqs",
    "axiom",
    "azure_blob",
    "azure_monitor_logs",
    "blackhole",
    "clickhouse",
    "console",
    "databend",
    "datadog_events",
    "datadog_logs",
    "datadog_metrics",
    "datadog_traces",
    "elasticsearch",
    "file",
    "gcp_chronicle_unstructured",
    "gcp_cloud_storage",
    "gcp_pubsub",
    "gcp_stackdriver_logs",
    "gcp_stackdriver_metrics",
    "greptimedb",
    "greptimedb_logs",
    "greptimedb_metrics",
    "honeycomb",
    "http",
    "humio_logs",
    "humio_metrics",
    "influxdb_logs",
    "influxdb_metrics",
    "kafka",
    "keep",
    "loki",
    "mezmo",
    "mqtt",
    "nats",
    "new_relic",
    "opentelemetry",
    "papertrail",
    "postgres",
    "prometheus_exporter",
    "prometheus_remote_write",
    "pulsar",
    "redis",
    "sematext_logs",
    "sematext_metrics",
    "socket",
    "splunk_hec_logs",
    "splunk_hec_metrics",
    "statsd",
    "vector",
    "webhdfs",
    "websocket",
    "websocket_server",
];

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Seconds of a duration written as Kubernetes/Go does (`30s`, `1m`, `1m30s`, `500ms`).
pub fn duration_secs(text: &str) -> Option<u64> {
    let mut total_ms: u64 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let ms = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return None,
        };
        total_ms = total_ms.checked_add(n.checked_mul(ms)?)?;
    }
    Some(total_ms / 1000)
}

/// The metrics a Vector sidecar scrapes next to a component: its source name and endpoint.
pub struct SidecarSource {
    pub source: &'static str,
    pub endpoint: &'static str,
}

/// Reaper's metrics, on its admin port.
pub const REAPER_METRICS: SidecarSource = SidecarSource {
    source: "reaper_metrics",
    endpoint: "http://localhost:8081/prometheusMetrics",
};

/// Stargate's metrics, on its health port.
pub const STARGATE_METRICS: SidecarSource = SidecarSource {
    source: "stargate_metrics",
    endpoint: "http://localhost:8084/metrics",
};

/// The findings on a sidecar's Vector configuration, each naming its field under
/// `prefix` (e.g. `spec.reaper.telemetry`), as the policy deploying it would refuse it.
pub fn sidecar_violations(
    prefix: &str,
    telemetry: Option<&k8ssandra_api::telemetry::TelemetrySpec>,
    metrics: &SidecarSource,
) -> Vec<(String, String)> {
    let Some(vector) = telemetry
        .and_then(|t| t.vector.as_ref())
        .filter(|v| v.enabled == Some(true))
    else {
        return Vec::new();
    };
    match sidecar_toml(vector, metrics.source, metrics.endpoint) {
        Ok(_) => Vec::new(),
        Err(errors) => errors
            .into_iter()
            .map(|e| {
                (
                    format!("{prefix}.vector.{}", e.field),
                    format!("{}: {}", e.place, e.message),
                )
            })
            .collect(),
    }
}

/// The Vector configuration of a sidecar next to Reaper or Stargate, as k8ssandra-operator
/// writes it: `data_dir` and a disabled API first, the component's metrics endpoint as the
/// `prometheus_scrape` source `source` (every `scrapeInterval`, default 30 s), then the
/// user's components; without any user sink, the metrics go to a JSON console sink.
pub fn sidecar_toml(
    spec: &k8ssandra_api::telemetry::VectorSpec,
    source: &str,
    endpoint: &str,
) -> Result<String, Vec<VectorError>> {
    let interval = spec
        .scrape_interval
        .as_deref()
        .and_then(duration_secs)
        .filter(|s| *s > 0)
        .unwrap_or(30);
    let mut config = VectorConfig::from_spec(spec);
    // The user's global options win; the defaults fill in what they leave out (KO #1695).
    let user = std::mem::take(&mut config.global);
    let set = user.parse::<toml::Table>().unwrap_or_default();
    let mut global = String::new();
    if !set.contains_key("data_dir") {
        global.push_str("data_dir = \"/var/lib/vector\"\n");
    }
    if !user.trim().is_empty() {
        global.push_str(&user);
        global.push('\n');
    }
    if !set.contains_key("api") {
        global.push_str("\n[api]\nenabled = false\n");
    }
    config.global = global;
    let mut defaults = vec![Component::source(
        source,
        "prometheus_scrape",
        &format!(
            "endpoints = [ {} ]\nscrape_interval_secs = {interval}",
            toml_string(endpoint)
        ),
    )];
    if !config
        .components
        .iter()
        .any(|c| c.section == Section::Sinks)
    {
        defaults.push(Component::sink(
            "console_metrics",
            "console",
            &[source],
            "target = \"stdout\"\nencoding.codec = \"json\"\n",
        ));
    }
    config.with_defaults(defaults).build()
}
