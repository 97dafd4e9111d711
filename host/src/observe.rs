//! The operator's own observability: Prometheus metrics, health and readiness endpoints.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::dataplane::{CallOutcome, DataplaneStats, EndpointStats};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabels {
    pub policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    pub policy: String,
    pub verb: String,
    pub cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub policy: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MgmtCallLabels {
    endpoint: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MgmtEndpointLabels {
    endpoint: &'static str,
}

/// Where the data-plane counters come from at scrape time.
type StatsSource = Box<dyn Fn() -> DataplaneStats + Send + Sync>;

/// Exports the management-API client's counters ([`DataplaneStats`]) on each scrape. The
/// client keeps its own atomics; copying them into registered families would need a
/// second set of counters kept in step.
#[derive(Default)]
struct DataplaneCollector {
    source: std::sync::RwLock<Option<StatsSource>>,
}

impl std::fmt::Debug for DataplaneCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataplaneCollector").finish_non_exhaustive()
    }
}

impl Collector for DataplaneCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = {
            let source = self.source.read().unwrap_or_else(|e| e.into_inner());
            match source.as_ref() {
                Some(f) => f(),
                None => return Ok(()),
            }
        };
        // Series appear once they count something: 27 endpoints × 6 outcomes of zeros
        // would drown the few that matter.
        let used: Vec<&EndpointStats> = stats.endpoints.iter().filter(|e| e.calls > 0).collect();
        let counter = ConstCounter::new(0u64);
        let mut calls = encoder.encode_descriptor(
            "mgmt_api_requests",
            "Management API requests (attempts, retries included), per endpoint and outcome",
            None,
            counter.metric_type(),
        )?;
        for e in &used {
            for outcome in CallOutcome::ALL {
                let n = e.outcome(outcome);
                if n == 0 {
                    continue;
                }
                let labels = MgmtCallLabels {
                    endpoint: e.name,
                    outcome: outcome.name(),
                };
                ConstCounter::new(n).encode(calls.encode_family(&labels)?)?;
            }
        }
        let mut errors = encoder.encode_descriptor(
            "mgmt_api_errors",
            "Management API requests without a 2xx answer, per endpoint",
            None,
            counter.metric_type(),
        )?;
        for e in &used {
            let labels = MgmtEndpointLabels { endpoint: e.name };
            ConstCounter::new(e.errors).encode(errors.encode_family(&labels)?)?;
        }
        let mut retries = encoder.encode_descriptor(
            "mgmt_api_retries",
            "Management API requests that retried a failed one, per endpoint",
            None,
            counter.metric_type(),
        )?;
        for e in &used {
            let labels = MgmtEndpointLabels { endpoint: e.name };
            ConstCounter::new(e.retries).encode(retries.encode_family(&labels)?)?;
        }
        let deferred = encoder.encode_descriptor(
            "mgmt_api_probes_deferred",
            "Node probes not sent because the node's management API failed recently (backoff)",
            None,
            counter.metric_type(),
        )?;
        ConstCounter::new(stats.probes_deferred).encode(deferred)?;
        let reused = encoder.encode_descriptor(
            "mgmt_api_probes_reused",
            "Node probes not sent because the node answered healthy at its pod's current version moments ago",
            None,
            counter.metric_type(),
        )?;
        ConstCounter::new(stats.probes_reused).encode(reused)?;
        Ok(())
    }
}

/// Every metric the host exports. Cheap to clone: the families are reference-counted.
#[derive(Clone)]
pub struct Metrics {
    pub reconciles: Family<PolicyLabels, Counter>,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    pub reconcile_duration: Family<PolicyLabels, Histogram>,
    pub policy_call_duration: Family<PolicyLabels, Histogram>,
    pub api_writes: Family<WriteLabels, Counter>,
    /// Total API writes, also kept unlabelled so tests and the demo can read one number.
    pub api_writes_total: Arc<AtomicU64>,
    dataplane: Arc<DataplaneCollector>,
    registry: Arc<Registry>,
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~26 s: policy calls are microseconds, full reconciles can take seconds.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("k8ssandra");
        let reconciles = Family::<PolicyLabels, Counter>::default();
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        let reconcile_duration =
            Family::<PolicyLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        let policy_call_duration =
            Family::<PolicyLabels, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        let api_writes = Family::<WriteLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles run, per policy",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, per policy and reason",
            reconcile_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of a whole reconcile (snapshot, policy call, plan execution)",
            reconcile_duration.clone(),
        );
        registry.register(
            "policy_call_duration_seconds",
            "Duration of one policy call (instantiate + reconcile) in the sandbox",
            policy_call_duration.clone(),
        );
        registry.register(
            "api_writes",
            "Write requests sent to Kubernetes API servers",
            api_writes.clone(),
        );
        let dataplane = Arc::new(DataplaneCollector::default());
        registry.register_collector(Box::new(dataplane.clone()));
        Metrics {
            reconciles,
            reconcile_errors,
            reconcile_duration,
            policy_call_duration,
            api_writes,
            api_writes_total: Arc::new(AtomicU64::new(0)),
            dataplane,
            registry: Arc::new(registry),
        }
    }

    /// Exports the counters of the management-API client: `source` is read on each scrape
    /// (see [`crate::ManagementDataPlane::stats`]).
    pub fn export_dataplane(&self, source: impl Fn() -> DataplaneStats + Send + Sync + 'static) {
        *self
            .dataplane
            .source
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(Box::new(source));
    }

    pub fn record_write(&self, policy: &str, verb: &str, cluster: &str) {
        self.api_writes
            .get_or_create(&WriteLabels {
                policy: policy.to_string(),
                verb: verb.to_string(),
                cluster: cluster.to_string(),
            })
            .inc();
        self.api_writes_total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn observe_reconcile(&self, policy: &str, took: Duration) {
        let labels = PolicyLabels {
            policy: policy.to_string(),
        };
        self.reconciles.get_or_create(&labels).inc();
        self.reconcile_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    pub fn observe_policy_call(&self, policy: &str, took: Duration) {
        self.policy_call_duration
            .get_or_create(&PolicyLabels {
                policy: policy.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    pub fn record_error(&self, policy: &str, reason: &str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabels {
                policy: policy.to_string(),
                reason: reason.to_string(),
            })
            .inc();
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail except on a formatter error, which String never
        // raises; an empty body is the harmless fallback.
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        let mut out = prometheus_text(&out);
        out.push_str(&format!(
            "# HELP k8ssandra_api_writes_all_total Write requests sent to Kubernetes API servers, all policies.\n# TYPE k8ssandra_api_writes_all_total counter\nk8ssandra_api_writes_all_total {}\n",
            self.api_writes_total.load(Ordering::Relaxed)
        ));
        out
    }
}

/// The Prometheus text format (0.0.4) of an OpenMetrics text: what Prometheus' own tools
/// (`promtool check metrics`) and every scraper read. A counter family is named after its
/// `_total` samples there, and OpenMetrics' `# UNIT` and `# EOF` lines do not exist.
fn prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Readiness: set once every controller of the policies loaded at start-up has the first
/// full list of its local watches (see `controller::Manager`), so a ready operator acts on
/// complete caches. A controller whose kind is not served yet does not hold it back.
#[derive(Clone, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
}

impl Health {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
struct ServerState {
    metrics: Metrics,
    health: Health,
}

async fn metrics(State(s): State<ServerState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(s): State<ServerState>) -> impl IntoResponse {
    if s.health.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

/// Binds the metrics/health server. Returns the bound address (the port may be 0 in tests).
pub async fn serve(
    addr: SocketAddr,
    metrics_: Metrics,
    health: Health,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(ServerState {
            metrics: metrics_,
            health,
        });
    let handle = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "metrics server stopped");
        }
    });
    Ok((local, handle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_counted_in_the_exposition() {
        let m = Metrics::new();
        m.record_write("echo", "apply", "");
        m.record_write("echo", "delete", "east");
        let text = m.encode();
        assert!(text.contains("k8ssandra_api_writes_all_total 2"), "{text}");
        // Prometheus' text format: counter families named after their samples, no EOF.
        assert!(
            text.contains("# TYPE k8ssandra_api_writes_all_total counter"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE k8ssandra_api_writes_total counter"),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
        assert!(text.contains("verb=\"delete\""), "{text}");
    }

    #[test]
    fn dataplane_counters_are_exported_per_endpoint_and_outcome() {
        let m = Metrics::new();
        assert!(
            !m.encode().contains("mgmt_api"),
            "nothing before a source is set"
        );
        let api = crate::dataplane::ManagementApi::new(Default::default());
        let api = match api {
            Ok(a) => a,
            Err(e) => panic!("{e}"),
        };
        let stats = api.stats();
        let mut fake = stats.clone();
        for e in &mut fake.endpoints {
            if e.name == "liveness" {
                e.calls = 5;
                e.errors = 3;
                e.retries = 0;
                e.outcomes[CallOutcome::Success as usize] = 2;
                e.outcomes[CallOutcome::Http5xx as usize] = 3;
            }
        }
        fake.probes_deferred = 7;
        fake.probes_reused = 11;
        m.export_dataplane(move || fake.clone());
        let text = m.encode();
        assert!(
            text.contains(
                "k8ssandra_mgmt_api_requests_total{endpoint=\"liveness\",outcome=\"http_5xx\"} 3"
            ),
            "{text}"
        );
        assert!(
            text.contains("k8ssandra_mgmt_api_errors_total{endpoint=\"liveness\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("k8ssandra_mgmt_api_probes_deferred_total 7"),
            "{text}"
        );
        assert!(
            text.contains("k8ssandra_mgmt_api_probes_reused_total 11"),
            "{text}"
        );
        // Endpoints never called have no series; no label names a pod or an address.
        assert!(!text.contains("endpoint=\"drain\""), "{text}");
        assert!(!text.contains("pod="), "{text}");
    }
}
