//! The management API agent's metrics endpoint (`GET :9000/metrics`) of every simulated
//! node: Cassandra-shaped families in the Prometheus text format, per node, keyspace and
//! table, passed through the relabel rules of the metrics-agent configuration mounted in
//! the pod (`/opt/management-api/configs/metrics-collector.yaml`, read from the API server
//! on every scrape), as the agent applies them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use regex::Regex;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::core::Core;
use crate::model::PodKey;

/// Port of the management API agent's metrics endpoint.
pub const METRICS_PORT: u16 = 9000;
/// Directory the agent reads its configuration from, and the file it reads there.
pub const AGENT_CONFIG_DIR: &str = "/opt/management-api/configs";
pub const AGENT_CONFIG_FILE: &str = "metrics-collector.yaml";

/// What a node exposes, as the core knows it.
#[derive(Debug, Clone)]
pub struct NodeMetrics {
    pub cluster: String,
    pub datacenter: String,
    pub rack: String,
    pub host: String,
    pub load_bytes: u64,
    pub full_query_logging: bool,
    /// `(keyspace, table)` of every table of the node's cluster.
    pub tables: Vec<(String, String)>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Gauge,
    Counter,
    Histogram,
}

impl Kind {
    fn as_str(&self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Histogram => "histogram",
        }
    }
}

/// One series before relabelling: its labels (with `__name__`) and value.
#[derive(Debug, Clone)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    family: usize,
}

struct Family {
    name: String,
    help: &'static str,
    kind: Kind,
}

/// One relabel rule of `metrics-collector.yaml` (Prometheus' `relabel_config`, camelCase
/// keys as k8ssandra-operator writes them).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Relabel {
    #[serde(default)]
    pub source_labels: Vec<String>,
    pub separator: Option<String>,
    pub target_label: Option<String>,
    pub regex: Option<String>,
    pub modulus: Option<u64>,
    pub replacement: Option<String>,
    pub action: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct AgentConfig {
    #[serde(default)]
    pub relabels: Vec<Relabel>,
}

impl AgentConfig {
    pub fn parse(text: &str) -> Result<Self, String> {
        serde_yaml::from_str(text).map_err(|e| format!("{AGENT_CONFIG_FILE} does not parse: {e}"))
    }
}

/// A stable small number from a name, so values differ per table but never per scrape.
fn spread(s: &str, m: u64) -> u64 {
    s.bytes()
        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
        % m
}

fn families_and_samples(n: &NodeMetrics) -> (Vec<Family>, Vec<Sample>) {
    let mut families = Vec::new();
    let mut samples = Vec::new();
    let base = |extra: &[(&str, &str)]| {
        let mut l = BTreeMap::new();
        l.insert("cluster".to_string(), n.cluster.clone());
        l.insert("datacenter".to_string(), n.datacenter.clone());
        l.insert("rack".to_string(), n.rack.clone());
        l.insert("host".to_string(), n.host.clone());
        for (k, v) in extra {
            l.insert(k.to_string(), v.to_string());
        }
        l
    };
    let mut family = |name: &str, help: &'static str, kind: Kind| {
        families.push(Family {
            name: name.to_string(),
            help,
            kind,
        });
        families.len() - 1
    };
    let mut push = |f: usize, name: &str, mut labels: BTreeMap<String, String>, value: f64| {
        labels.insert("__name__".into(), name.to_string());
        samples.push(Sample {
            labels,
            value,
            family: f,
        });
    };
    const P: &str = "org_apache_cassandra_metrics";

    let f = family(
        &format!("{P}_client_connected_native_clients"),
        "Connected native protocol clients.",
        Kind::Gauge,
    );
    push(
        f,
        &format!("{P}_client_connected_native_clients"),
        base(&[]),
        1.0,
    );
    let f = family(
        &format!("{P}_storage_load"),
        "Bytes of live data on the node.",
        Kind::Gauge,
    );
    push(
        f,
        &format!("{P}_storage_load"),
        base(&[]),
        n.load_bytes as f64,
    );
    let f = family(
        &format!("{P}_storage_exceptions_total"),
        "Internal exceptions caught.",
        Kind::Counter,
    );
    push(f, &format!("{P}_storage_exceptions_total"), base(&[]), 0.0);
    let f = family(
        &format!("{P}_full_query_logging_enabled"),
        "1 while full query logging is on.",
        Kind::Gauge,
    );
    push(
        f,
        &format!("{P}_full_query_logging_enabled"),
        base(&[]),
        if n.full_query_logging { 1.0 } else { 0.0 },
    );
    let f = family(
        &format!("{P}_thread_pools_active_tasks"),
        "Tasks running in a thread pool.",
        Kind::Gauge,
    );
    for pool in ["MutationStage", "ReadStage", "CompactionExecutor"] {
        push(
            f,
            &format!("{P}_thread_pools_active_tasks"),
            base(&[("pool_name", pool)]),
            spread(pool, 3) as f64,
        );
    }

    let keyspaces: std::collections::BTreeSet<&str> =
        n.tables.iter().map(|(k, _)| k.as_str()).collect();
    let f = family(
        &format!("{P}_keyspace_live_disk_space_used"),
        "Bytes on disk of a keyspace's live SSTables.",
        Kind::Gauge,
    );
    for ks in &keyspaces {
        push(
            f,
            &format!("{P}_keyspace_live_disk_space_used"),
            base(&[("keyspace", ks)]),
            (spread(ks, 100) * 1024) as f64,
        );
    }

    let gauges: [(&str, &'static str); 4] = [
        // (Cassandra's `live_ss_table_count` is left out: promtool refuses a `_count`
        // suffix on a gauge.)
        (
            "memtable_live_data_size",
            "Bytes of live data in a table's memtable.",
        ),
        (
            "live_disk_space_used",
            "Bytes on disk of a table's live SSTables.",
        ),
        ("pending_compactions", "Compactions a table waits for."),
        // Not in the default allow-list: dropped by the default relabels.
        (
            "bloom_filter_false_positives",
            "False positives of a table's bloom filters.",
        ),
    ];
    for (g, help) in gauges {
        let name = format!("{P}_table_{g}");
        let f = family(&name, help, Kind::Gauge);
        for (ks, t) in &n.tables {
            let v = spread(&format!("{ks}.{t}.{g}"), 10) as f64;
            push(f, &name, base(&[("keyspace", ks), ("table", t)]), v);
        }
    }
    // Also outside the allow-list.
    let name = format!("{P}_table_tombstone_scanned_total");
    let f = family(
        &name,
        "Tombstones scanned by a table's reads.",
        Kind::Counter,
    );
    for (ks, t) in &n.tables {
        push(f, &name, base(&[("keyspace", ks), ("table", t)]), 0.0);
    }
    for op in ["read", "write"] {
        let name = format!("{P}_table_{op}_latency_seconds");
        let f = family(
            &name,
            "Latency of a table's local operations.",
            Kind::Histogram,
        );
        for (ks, t) in &n.tables {
            let count = spread(&format!("{ks}.{t}.{op}"), 50) as f64;
            for (le, share) in [("0.001", 0.5), ("0.01", 0.9), ("0.1", 1.0), ("+Inf", 1.0)] {
                push(
                    f,
                    &format!("{name}_bucket"),
                    base(&[("keyspace", ks), ("table", t), ("le", le)]),
                    (count * share).floor(),
                );
            }
            push(
                f,
                &format!("{name}_sum"),
                base(&[("keyspace", ks), ("table", t)]),
                count * 0.002,
            );
            push(
                f,
                &format!("{name}_count"),
                base(&[("keyspace", ks), ("table", t)]),
                count,
            );
        }
    }
    (families, samples)
}

/// Prometheus' relabelling, applied in order; `None` when a rule drops the sample.
pub fn relabel(
    mut labels: BTreeMap<String, String>,
    rules: &[Relabel],
) -> Result<Option<BTreeMap<String, String>>, String> {
    for r in rules {
        let action = r
            .action
            .as_deref()
            .unwrap_or("replace")
            .to_ascii_lowercase();
        let pattern = r.regex.as_deref().unwrap_or("(.*)");
        let re = Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|e| format!("relabel regex {pattern:?} does not parse: {e}"))?;
        let sep = r.separator.as_deref().unwrap_or(";");
        let value = r
            .source_labels
            .iter()
            .map(|l| labels.get(l).cloned().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(sep);
        let replacement = r.replacement.as_deref().unwrap_or("$1");
        let target = r.target_label.as_deref().unwrap_or("");
        match action.as_str() {
            "replace" => {
                if let Some(caps) = re.captures(&value) {
                    let mut name = String::new();
                    caps.expand(target, &mut name);
                    let mut val = String::new();
                    caps.expand(replacement, &mut val);
                    if !name.is_empty() {
                        if val.is_empty() {
                            labels.remove(&name);
                        } else {
                            labels.insert(name, val);
                        }
                    }
                }
            }
            "keep" => {
                if !re.is_match(&value) {
                    return Ok(None);
                }
            }
            "drop" => {
                if re.is_match(&value) {
                    return Ok(None);
                }
            }
            "keepequal" => {
                if labels.get(target).map(String::as_str).unwrap_or("") != value {
                    return Ok(None);
                }
            }
            "dropequal" => {
                if labels.get(target).map(String::as_str).unwrap_or("") == value {
                    return Ok(None);
                }
            }
            "lowercase" => {
                labels.insert(target.to_string(), value.to_lowercase());
            }
            "uppercase" => {
                labels.insert(target.to_string(), value.to_uppercase());
            }
            "hashmod" => {
                let m = r.modulus.unwrap_or(1).max(1);
                labels.insert(target.to_string(), spread(&value, m).to_string());
            }
            "labelmap" => {
                let mapped: Vec<(String, String)> = labels
                    .iter()
                    .filter_map(|(k, v)| {
                        let caps = re.captures(k)?;
                        let mut name = String::new();
                        caps.expand(replacement, &mut name);
                        Some((name, v.clone()))
                    })
                    .collect();
                labels.extend(mapped);
            }
            "labeldrop" => labels.retain(|k, _| k == "__name__" || !re.is_match(k)),
            "labelkeep" => labels.retain(|k, _| k == "__name__" || re.is_match(k)),
            other => return Err(format!("unknown relabel action {other:?}")),
        }
    }
    Ok(Some(labels))
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition text of a node after relabelling.
pub fn exposition(n: &NodeMetrics, rules: &[Relabel]) -> Result<String, String> {
    let (families, samples) = families_and_samples(n);
    let mut kept: Vec<(usize, String, BTreeMap<String, String>, f64)> = Vec::new();
    for s in samples {
        let before = s.labels.get("__name__").cloned().unwrap_or_default();
        let Some(mut labels) = relabel(s.labels, rules)? else {
            continue;
        };
        let name = labels.remove("__name__").unwrap_or_default();
        if name.is_empty() {
            continue;
        }
        labels.retain(|k, _| !k.starts_with("__"));
        // A renamed series leaves its family: it is exposed untyped under its new name.
        let family = if name == before { s.family } else { usize::MAX };
        kept.push((family, name, labels, s.value));
    }
    let mut out = String::new();
    for (i, f) in families.iter().enumerate() {
        let series: Vec<_> = kept.iter().filter(|k| k.0 == i).collect();
        if series.is_empty() {
            continue;
        }
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind.as_str());
        for (_, name, labels, value) in series {
            write_series(&mut out, name, labels, *value);
        }
    }
    let mut renamed: BTreeMap<&str, Vec<_>> = BTreeMap::new();
    for k in kept.iter().filter(|k| k.0 == usize::MAX) {
        renamed.entry(k.1.as_str()).or_default().push(k);
    }
    for (name, series) in renamed {
        let _ = writeln!(out, "# HELP {name} Renamed by a relabel rule.");
        let _ = writeln!(out, "# TYPE {name} untyped");
        for (_, name, labels, value) in series {
            write_series(&mut out, name, labels, *value);
        }
    }
    Ok(out)
}

fn write_series(out: &mut String, name: &str, labels: &BTreeMap<String, String>, value: f64) {
    let body = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect::<Vec<_>>()
        .join(",");
    if body.is_empty() {
        let _ = writeln!(out, "{name} {value}");
    } else {
        let _ = writeln!(out, "{name}{{{body}}} {value}");
    }
}

#[derive(Clone)]
struct Ctx {
    core: Arc<Core>,
    key: PodKey,
}

async fn scrape(State(c): State<Ctx>) -> Response {
    let Some(node) = c.core.node_metrics(&c.key) else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "Cassandra is not running\n",
        )
            .into_response();
    };
    let rules = match agent_config(&c).await {
        Ok(cfg) => cfg.relabels,
        Err(e) => {
            tracing::warn!(pod = %c.key, error = %e, "metrics agent configuration unusable");
            return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response();
        }
    };
    match exposition(&node, &rules) {
        Ok(text) => (
            StatusCode::OK,
            [(
                http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// The configuration mounted in the pod, read from its ConfigMap; the agent's defaults (no
/// relabels) when the pod mounts none.
async fn agent_config(c: &Ctx) -> Result<AgentConfig, String> {
    let Some((name, key)) = c.core.metrics_config_ref(&c.key) else {
        return Ok(AgentConfig::default());
    };
    let Some(client) = c.core.kube_client(&c.key.context) else {
        return Err(format!(
            "the pod mounts ConfigMap {name} but context {} has no API client",
            c.key.context
        ));
    };
    let api: Api<ConfigMap> = Api::namespaced(client, &c.key.namespace);
    let cm = api
        .get_opt(&name)
        .await
        .map_err(|e| format!("reading ConfigMap {name}: {e}"))?
        .ok_or_else(|| format!("ConfigMap {name} mounted at {AGENT_CONFIG_DIR} does not exist"))?;
    match cm.data.as_ref().and_then(|d| d.get(&key)) {
        Some(text) => AgentConfig::parse(text),
        None => Err(format!("ConfigMap {name} has no key {key}")),
    }
}

/// Serves one pod's metrics endpoint until the handle is aborted.
pub(crate) async fn listen(
    core: Arc<Core>,
    key: PodKey,
    addr: SocketAddr,
) -> Option<JoinHandle<()>> {
    let addr = SocketAddr::new(addr.ip(), METRICS_PORT);
    match TcpListener::bind(addr).await {
        Ok(listener) => {
            let app = Router::new()
                .route("/metrics", get(scrape))
                .with_state(Ctx { core, key });
            Some(tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            }))
        }
        Err(e) => {
            tracing::warn!(pod = %key, %addr, error = %e, "cannot bind the metrics endpoint");
            None
        }
    }
}

/// The ConfigMap (name, key) the pod mounts as the agent's configuration: the volume the
/// `cassandra` container mounts at [`AGENT_CONFIG_DIR`].
pub fn config_map_ref(pod: &k8s_openapi::api::core::v1::Pod) -> Option<(String, String)> {
    let spec = pod.spec.as_ref()?;
    let cassandra = spec.containers.iter().find(|c| c.name == "cassandra")?;
    let mount = cassandra
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path.trim_end_matches('/') == AGENT_CONFIG_DIR)?;
    let volume = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)?;
    let cm = volume.config_map.as_ref()?;
    let key = cm
        .items
        .iter()
        .flatten()
        .find(|i| i.path == AGENT_CONFIG_FILE)
        .map_or_else(|| AGENT_CONFIG_FILE.to_string(), |i| i.key.clone());
    Some((cm.name.clone(), key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> NodeMetrics {
        NodeMetrics {
            cluster: "c".into(),
            datacenter: "dc1".into(),
            rack: "r1".into(),
            host: "127.0.0.1".into(),
            load_bytes: 1000,
            full_query_logging: false,
            tables: vec![("ks".into(), "t".into()), ("system".into(), "local".into())],
        }
    }

    fn rule(source: &[&str], regex: &str, action: &str) -> Relabel {
        Relabel {
            source_labels: source.iter().map(|s| s.to_string()).collect(),
            regex: Some(regex.into()),
            action: Some(action.into()),
            ..Default::default()
        }
    }

    #[test]
    fn unfiltered_exposes_every_table_family() {
        let text = exposition(&node(), &[]).unwrap();
        assert!(text.contains("org_apache_cassandra_metrics_table_bloom_filter_false_positives{"));
        assert!(
            text.contains(
                "# TYPE org_apache_cassandra_metrics_table_read_latency_seconds histogram"
            )
        );
        assert!(text.contains("le=\"+Inf\""));
    }

    #[test]
    fn drop_rule_removes_a_family_and_its_header() {
        let rules = [rule(
            &["__name__"],
            "org_apache_cassandra_metrics_table_bloom_filter.*",
            "drop",
        )];
        let text = exposition(&node(), &rules).unwrap();
        assert!(!text.contains("bloom_filter"), "{text}");
        assert!(text.contains("org_apache_cassandra_metrics_table_memtable_live_data_size"));
    }

    #[test]
    fn replace_sets_labels_with_captures() {
        let mut r = rule(&["keyspace", "table"], "(.+);(.+)", "replace");
        r.target_label = Some("qualified".into());
        r.replacement = Some("${1}.${2}".into());
        let mut l = BTreeMap::new();
        l.insert("keyspace".to_string(), "ks".to_string());
        l.insert("table".to_string(), "t".to_string());
        let out = relabel(l, &[r]).unwrap().unwrap();
        assert_eq!(out["qualified"], "ks.t");
    }

    #[test]
    fn bad_regex_is_an_error() {
        assert!(relabel(BTreeMap::new(), &[rule(&["a"], "(", "drop")]).is_err());
    }
}
