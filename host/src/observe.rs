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
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

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
        Metrics {
            reconciles,
            reconcile_errors,
            reconcile_duration,
            policy_call_duration,
            api_writes,
            api_writes_total: Arc::new(AtomicU64::new(0)),
            registry: Arc::new(registry),
        }
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
        out.push_str(&format!(
            "# HELP k8ssandra_api_writes_all Write requests sent to Kubernetes API servers, all policies.\n# TYPE k8ssandra_api_writes_all counter\nk8ssandra_api_writes_all_total {}\n",
            self.api_writes_total.load(Ordering::Relaxed)
        ));
        out
    }
}

/// Readiness: set once the controllers of the policies loaded at start-up are started
/// (their caches fill in the background).
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
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
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
        assert!(text.contains("verb=\"delete\""), "{text}");
    }
}
