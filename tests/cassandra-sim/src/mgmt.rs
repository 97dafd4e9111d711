//! The management API served on every pod address, and the listeners that come and go with pods.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::StatusCode;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rand::Rng;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::core::{Core, JobKind, Reply, ReplyBody};
use crate::model::PodKey;

#[derive(Clone)]
struct NodeCtx {
    core: Arc<Core>,
    key: PodKey,
    /// The listener requires mutual TLS.
    tls: bool,
}

type Params = Query<HashMap<String, String>>;

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        match self.body {
            ReplyBody::Empty => self.status.into_response(),
            ReplyBody::Text(t) => {
                (self.status, [(http::header::CONTENT_TYPE, "text/plain")], t).into_response()
            }
            ReplyBody::Json(v) => (self.status, axum::Json(v)).into_response(),
        }
    }
}

fn flag(q: &HashMap<String, String>, name: &str) -> bool {
    q.get(name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn param<'a>(q: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    q.get(name).map(String::as_str)
}

/// Clients send numbers as JSON numbers or strings (cass-operator sends strings); accept both.
fn lenient_u32(v: &Value) -> Option<u32> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn body_json(body: &Bytes) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

fn body_keyspace(body: &Bytes) -> Option<String> {
    body_json(body)
        .get("keyspace_name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn router(ctx: NodeCtx) -> Router {
    Router::new()
        .route("/api/v0/probes/liveness", get(|| async { "OK" }))
        .route("/api/v0/probes/readiness", get(readiness))
        .route("/api/v0/probes/cluster", get(probe_cluster))
        .route("/api/v0/lifecycle/start", post(start))
        .route("/api/v0/lifecycle/stop", post(stop))
        .route("/api/v0/lifecycle/pid", get(pid))
        .route("/api/v0/metadata/endpoints", get(endpoints))
        .route("/api/v0/metadata/localdc", get(localdc))
        .route("/api/v0/metadata/versions/features", get(features))
        .route("/api/v0/metadata/versions/release", get(release))
        .route("/api/v0/ops/node/drain", post(drain))
        .route("/api/v0/ops/node/decommission", post(decommission_v0))
        .route("/api/v1/ops/node/decommission", post(decommission_v1))
        .route("/api/v0/ops/executor/job", get(job))
        .route("/api/v0/ops/keyspace", get(list_keyspaces))
        .route("/api/v0/ops/keyspace/create", post(create_keyspace))
        .route("/api/v0/ops/keyspace/alter", post(alter_keyspace))
        .route("/api/v0/ops/keyspace/replication", get(replication))
        .route(
            "/api/v0/ops/auth/role",
            get(list_roles).post(create_role).delete(drop_role),
        )
        .route("/api/v0/ops/seeds/reload", post(reload_seeds))
        .route("/api/v1/ops/node/schema/versions", get(schema_versions))
        .route("/api/v0/ops/keyspace/cleanup", post(cleanup_v0))
        .route("/api/v1/ops/keyspace/cleanup", post(cleanup_v1))
        .route("/api/v1/ops/node/rebuild", post(rebuild_v1))
        .route("/api/v0/ops/tables/compact", post(compact_v0))
        .route("/api/v1/ops/tables/compact", post(compact_v1))
        .route("/api/v0/ops/tables/flush", post(flush_v0))
        .route("/api/v1/ops/tables/flush", post(flush_v1))
        .route("/api/v0/ops/tables/scrub", post(scrub_v0))
        .route("/api/v1/ops/tables/scrub", post(scrub_v1))
        .route("/api/v0/ops/tables/garbagecollect", post(gc_v0))
        .route("/api/v1/ops/tables/garbagecollect", post(gc_v1))
        .route("/api/v0/ops/tables/sstables/upgrade", post(upgrade_v0))
        .route("/api/v1/ops/tables/sstables/upgrade", post(upgrade_v1))
        .route("/api/v0/ops/tables", get(list_tables))
        .route("/api/v1/ops/tables", get(list_tables_v1))
        .route("/api/v0/ops/tables/create", post(create_table))
        .route("/api/v0/ops/node/move", post(move_node))
        .route(
            "/api/v0/ops/node/encryption/internode/truststore/reload",
            post(truststore_reload),
        )
        .route(
            "/api/v0/ops/node/fullquerylogging",
            get(fql_get).post(fql_set),
        )
        .route(
            "/api/v1/ops/auth/identity_to_role",
            post(identity_to_role).delete(identity_to_role_drop),
        )
        .route("/api/v0/lifecycle/configure", post(configure))
        .layer(middleware::from_fn_with_state(ctx.clone(), faults))
        .with_state(ctx)
}

/// Applies the node's injected latency and error rate before any handler runs.
async fn faults(State(ctx): State<NodeCtx>, req: Request, next: Next) -> Response {
    // The query is left out: role creation carries a password there.
    tracing::debug!(pod = %ctx.key, method = %req.method(), path = %req.uri().path(), "management API request");
    let fault = ctx.core.fault_of(&ctx.key);
    let seq = ctx.core.log_request(
        &ctx.key,
        req.method().as_str(),
        req.uri().path(),
        !fault.is_none(),
        ctx.tls,
    );
    if fault.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(fault.latency_ms)).await;
    }
    if fault.error_rate > 0.0 && rand::rng().random::<f64>() < fault.error_rate {
        tracing::debug!(pod = %ctx.key, path = %req.uri().path(), "injected error");
        ctx.core
            .answered(seq, StatusCode::INTERNAL_SERVER_ERROR.as_u16());
        return (StatusCode::INTERNAL_SERVER_ERROR, "Simulated fault").into_response();
    }
    let response = next.run(req).await;
    ctx.core.answered(seq, response.status().as_u16());
    response
}

async fn readiness(State(c): State<NodeCtx>) -> Reply {
    c.core.readiness(&c.key)
}

async fn probe_cluster(State(c): State<NodeCtx>, Query(q): Params) -> Reply {
    let rf = match param(&q, "rf_per_dc").map(str::parse::<i64>) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => return Reply::text(StatusCode::NOT_FOUND, "invalid rf_per_dc"),
    };
    c.core
        .probe_cluster(&c.key, param(&q, "consistency_level"), rf)
}

async fn start(State(c): State<NodeCtx>, Query(q): Params) -> Reply {
    let replace_ip = param(&q, "replace_ip")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    c.core.start(&c.key, replace_ip)
}

async fn stop(State(c): State<NodeCtx>) -> Reply {
    c.core.stop(&c.key)
}

async fn pid(State(c): State<NodeCtx>) -> Reply {
    c.core.pid(&c.key)
}

async fn endpoints(State(c): State<NodeCtx>) -> Reply {
    c.core.endpoints(&c.key)
}

async fn localdc(State(c): State<NodeCtx>) -> Reply {
    c.core.localdc(&c.key)
}

async fn features(State(c): State<NodeCtx>) -> Reply {
    c.core.features(&c.key)
}

async fn release(State(c): State<NodeCtx>) -> Reply {
    c.core.release_version(&c.key)
}

async fn drain(State(c): State<NodeCtx>) -> Reply {
    c.core.drain(&c.key)
}

async fn decommission_v1(State(c): State<NodeCtx>, Query(q): Params) -> Reply {
    match c.core.decommission(&c.key, flag(&q, "force"), true) {
        Ok(job) => Reply::text(StatusCode::ACCEPTED, job),
        Err(r) => r,
    }
}

async fn decommission_v0(State(c): State<NodeCtx>, Query(q): Params) -> Reply {
    match c.core.decommission(&c.key, flag(&q, "force"), false) {
        Ok(job) => match wait_job(&c, &job).await {
            Ok(()) => Reply::text(StatusCode::OK, "OK"),
            Err(e) => Reply::text(StatusCode::INTERNAL_SERVER_ERROR, e),
        },
        Err(r) => r,
    }
}

/// Blocks like the v0 endpoints do: until the job left WAITING.
async fn wait_job(c: &NodeCtx, job: &str) -> Result<(), String> {
    loop {
        match c.core.job_status(&c.key, job) {
            None => return Err("job lost".into()),
            Some((status, _, error)) => match status.as_str() {
                "COMPLETED" => return Ok(()),
                "ERROR" => return Err(error.unwrap_or_else(|| "job failed".into())),
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            },
        }
    }
}

async fn job(State(c): State<NodeCtx>, Query(q): Params) -> Reply {
    match param(&q, "job_id") {
        Some(id) => c.core.job_reply(&c.key, id),
        None => Reply::text(StatusCode::BAD_REQUEST, "job_id is required"),
    }
}

async fn list_keyspaces(State(c): State<NodeCtx>, Query(q): Params) -> Reply {
    c.core.list_keyspaces(&c.key, param(&q, "keyspaceName"))
}

fn parse_keyspace_body(body: &Bytes) -> (String, BTreeMap<String, u32>) {
    let v = body_json(body);
    let name = v
        .get("keyspace_name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let settings = v
        .get("replication_settings")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| {
                    let dc = s.get("dc_name")?.as_str()?.to_string();
                    let rf = lenient_u32(s.get("replication_factor")?)?;
                    Some((dc, rf))
                })
                .collect()
        })
        .unwrap_or_default();
    (name, settings)
}

async fn create_keyspace(State(c): State<NodeCtx>, body: Bytes) -> Reply {
    let (name, settings) = parse_keyspace_body(&body);
    c.core
        .create_or_alter_keyspace(&c.key, false, &name, settings)
}

async fn alter_keyspace(State(c): State<NodeCtx>, body: Bytes) -> Reply {
    let (name, settings) = parse_keyspace_body(&body);
    c.core
        .create_or_alter_keyspace(&c.key, true, &name, settings)
}

async fn replication(State(c): State<NodeCtx>, Query(q): Params) -> Reply {
    c.core.replication(&c.key, param(&q, "keyspaceName"))
}

async fn list_roles(State(c): State<NodeCtx>) -> Reply {
    c.core.list_roles(&c.key)
}

async fn create_role(State(c): State<NodeCtx>, Query(q): Params) -> Reply {
    c.core.create_role(
        &c.key,
        param(&q, "username"),
        param(&q, "password"),
        flag(&q, "is_superuser"),
        flag(&q, "can_login"),
    )
}

async fn drop_role(State(c): State<NodeCtx>, Query(q): Params) -> Reply {
    c.core.drop_role(&c.key, param(&q, "username"))
}

async fn reload_seeds(State(c): State<NodeCtx>) -> Reply {
    c.core.reload_seeds(&c.key)
}

async fn schema_versions(State(c): State<NodeCtx>) -> Reply {
    c.core.schema_versions(&c.key)
}

/// v1: answers the job id at once (202).
fn async_job(c: &NodeCtx, kind: JobKind) -> Reply {
    match c.core.submit_job(&c.key, kind) {
        Ok(job) => Reply::text(StatusCode::ACCEPTED, job),
        Err(r) => r,
    }
}

/// v0: runs the job to its end; `answer_job_id` for the endpoints that return it.
async fn sync_job(c: &NodeCtx, kind: JobKind, answer_job_id: bool) -> Reply {
    match c.core.submit_job(&c.key, kind) {
        Ok(job) => match wait_job(c, &job).await {
            Ok(()) if answer_job_id => Reply::text(StatusCode::OK, job),
            Ok(()) => Reply::text(StatusCode::OK, "OK"),
            Err(e) => Reply::text(StatusCode::INTERNAL_SERVER_ERROR, e),
        },
        Err(r) => r,
    }
}

fn is_local_keyspace(ks: Option<&str>) -> bool {
    matches!(ks, Some("system") | Some("system_schema"))
}

async fn cleanup_v0(State(c): State<NodeCtx>, body: Bytes) -> Reply {
    let keyspace = body_keyspace(&body);
    sync_job(&c, JobKind::Cleanup { keyspace }, true).await
}

async fn cleanup_v1(State(c): State<NodeCtx>, body: Bytes) -> Reply {
    let keyspace = body_keyspace(&body);
    if is_local_keyspace(keyspace.as_deref()) {
        return Reply::text(StatusCode::OK, "OK");
    }
    async_job(&c, JobKind::Cleanup { keyspace })
}

async fn rebuild_v1(State(c): State<NodeCtx>, Query(q): Params) -> Reply {
    let src_dc = param(&q, "src_dc")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    async_job(&c, JobKind::Rebuild { src_dc })
}

async fn compact_v0(State(c): State<NodeCtx>, body: Bytes) -> Reply {
    let keyspace = body_keyspace(&body);
    sync_job(&c, JobKind::Compact { keyspace }, false).await
}

async fn compact_v1(State(c): State<NodeCtx>, body: Bytes) -> Reply {
    let keyspace = body_keyspace(&body);
    async_job(&c, JobKind::Compact { keyspace })
}

async fn flush_v0(State(c): State<NodeCtx>, body: Bytes) -> Reply {
    let keyspace = body_keyspace(&body);
    sync_job(&c, JobKind::Flush { keyspace }, false).await
}

async fn flush_v1(State(c): State<NodeCtx>, body: Bytes) -> Reply {
    let keyspace = body_keyspace(&body);
    async_job(&c, JobKind::Flush { keyspace })
}

async fn scrub_v0(State(c): State<NodeCtx>, body: Bytes) -> Reply {
    let keyspace = body_keyspace(&body);
    sync_job(&c, JobKind::Scrub { keyspace }, false).await
}

async fn scrub_v1(State(c): State<NodeCtx>, body: Bytes) -> Reply {
    let keyspace = body_keyspace(&body);
    async_job(&c, JobKind::Scrub { keyspace })
}

fn tombstone_ok(q: &HashMap<String, String>) -> bool {
    param(q, "tombstoneOption").is_none_or(|o| matches!(o, "ROW" | "CELL" | "NONE"))
}

async fn gc_v0(State(c): State<NodeCtx>, Query(q): Params, body: Bytes) -> Reply {
    if !tombstone_ok(&q) {
        return Reply::text(
            StatusCode::BAD_REQUEST,
            "tombstoneOption must be either ROW or CELL",
        );
    }
    let keyspace = body_keyspace(&body);
    sync_job(&c, JobKind::GarbageCollect { keyspace }, false).await
}

async fn gc_v1(State(c): State<NodeCtx>, Query(q): Params, body: Bytes) -> Reply {
    if !tombstone_ok(&q) {
        return Reply::text(
            StatusCode::BAD_REQUEST,
            "tombstoneOption must be either ROW or CELL",
        );
    }
    let keyspace = body_keyspace(&body);
    async_job(&c, JobKind::GarbageCollect { keyspace })
}

async fn upgrade_v0(State(c): State<NodeCtx>, body: Bytes) -> Reply {
    let keyspace = body_keyspace(&body);
    sync_job(&c, JobKind::UpgradeSstables { keyspace }, false).await
}

async fn upgrade_v1(State(c): State<NodeCtx>, body: Bytes) -> Reply {
    let keyspace = body_keyspace(&body);
    async_job(&c, JobKind::UpgradeSstables { keyspace })
}

/// Serves one pod's address until aborted; aborting also ends its open connections, so a
/// "dead" node stops answering on keep-alive connections too. With `tls`, every connection
/// must complete a mutual-TLS handshake first (a client without an accepted certificate is
/// dropped there, before any request reaches the node).
async fn serve(listener: TcpListener, app: Router, tls: Option<tokio_rustls::TlsAcceptor>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let svc = TowerToHyperService::new(app.clone());
                    let tls = tls.clone();
                    conns.spawn(async move {
                        let http = hyper::server::conn::http1::Builder::new();
                        match tls {
                            None => {
                                let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                            }
                            Some(acceptor) => match acceptor.accept(stream).await {
                                Ok(stream) => {
                                    let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                                }
                                Err(e) => {
                                    tracing::info!(%peer, error = %e, "management API TLS handshake refused");
                                }
                            },
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

struct Bound {
    addr: SocketAddr,
    /// What TLS material the listener serves (None: plain HTTP).
    tls: Option<[u8; 32]>,
    task: JoinHandle<()>,
    /// The metrics endpoint on the same address, port 9000.
    metrics: Option<JoinHandle<()>>,
    /// Medusa's gRPC service on the same address, for pods with a `medusa` container.
    medusa: Option<JoinHandle<()>>,
    /// The CQL port on the same address (cql.rs), open while the node serves CQL.
    cql: JoinHandle<()>,
}

impl Drop for Bound {
    // Also when the manager itself is aborted: no listener may outlive the simulator.
    fn drop(&mut self) {
        self.task.abort();
        if let Some(m) = &self.metrics {
            m.abort();
        }
        if let Some(m) = &self.medusa {
            m.abort();
        }
        self.cql.abort();
    }
}

/// Keeps one listener per pod address that should answer, level-triggered on every kick.
pub(crate) async fn run_listeners(
    core: Arc<Core>,
    mut kick: mpsc::UnboundedReceiver<()>,
    kick_tx: mpsc::UnboundedSender<()>,
    cancel: CancellationToken,
) {
    let mut bound: HashMap<PodKey, Bound> = HashMap::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            k = kick.recv() => if k.is_none() { break },
        }
        // Coalesce a burst of kicks into one pass.
        while kick.try_recv().is_ok() {}
        let (desired, next_start) = core.desired_listeners();
        if let Some(delay) = next_start {
            // A management API still starting: look again when it is up.
            let tx = kick_tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = tx.send(());
            });
        }
        let stale: Vec<PodKey> = bound
            .iter()
            .filter(|(k, b)| {
                desired.get(*k) != Some(&b.addr)
                    || core.mgmt_tls(k).and_then(|t| t.fingerprint()) != b.tls
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in stale {
            if let Some(mut b) = bound.remove(&key) {
                b.task.abort();
                if let Some(m) = b.metrics.take() {
                    m.abort();
                    let _ = m.await;
                }
                if let Some(m) = b.medusa.take() {
                    m.abort();
                    let _ = m.await;
                }
                b.cql.abort();
                let _ = (&mut b.cql).await;
                // Wait for the socket to be closed so a new pod on the same IP can bind.
                let _ = (&mut b.task).await;
                core.set_listening(&key, false);
                tracing::info!(pod = %key, addr = %b.addr, "management API listener closed");
            }
        }
        let mut retry = false;
        for (key, addr) in desired {
            if let Some(b) = bound.get_mut(&key) {
                // A metrics port that could not be bound yet (its old socket still closing).
                if b.metrics.is_none() {
                    b.metrics = crate::metrics::listen(Arc::clone(&core), key.clone(), addr).await;
                    retry |= b.metrics.is_none();
                }
                if b.medusa.is_none()
                    && let Some(port) = core.medusa_port(&key)
                {
                    b.medusa =
                        crate::medusa::listen(Arc::clone(&core), key.clone(), addr, port).await;
                    retry |= b.medusa.is_none();
                }
                continue;
            }
            // A TLS pod whose Secret is missing or unusable: a real management API could not
            // start (its container would not even be created), so nothing listens until the
            // pod is fed again with usable material.
            let (acceptor, fingerprint) = match core.mgmt_tls(&key) {
                None => (None, None),
                Some(tls) => match tls.server_config() {
                    Ok(config) => (
                        Some(tokio_rustls::TlsAcceptor::from(config)),
                        tls.fingerprint(),
                    ),
                    Err(reason) => {
                        tracing::debug!(pod = %key, %reason, "management API TLS unusable; not listening");
                        continue;
                    }
                },
            };
            match TcpListener::bind(addr).await {
                Ok(listener) => {
                    let app = router(NodeCtx {
                        core: Arc::clone(&core),
                        key: key.clone(),
                        tls: acceptor.is_some(),
                    });
                    let task = tokio::spawn(serve(listener, app, acceptor));
                    let metrics =
                        crate::metrics::listen(Arc::clone(&core), key.clone(), addr).await;
                    retry |= metrics.is_none();
                    let medusa = match core.medusa_port(&key) {
                        Some(port) => {
                            let m =
                                crate::medusa::listen(Arc::clone(&core), key.clone(), addr, port)
                                    .await;
                            retry |= m.is_none();
                            m
                        }
                        None => None,
                    };
                    bound.insert(
                        key.clone(),
                        Bound {
                            addr,
                            tls: fingerprint,
                            task,
                            metrics,
                            medusa,
                            cql: crate::cql::spawn(Arc::clone(&core), key.clone(), addr.ip()),
                        },
                    );
                    core.set_listening(&key, true);
                    tracing::info!(pod = %key, %addr, tls = fingerprint.is_some(), "management API listening");
                }
                Err(e) => {
                    tracing::warn!(pod = %key, %addr, error = %e, "cannot bind management API; will retry");
                    retry = true;
                }
            }
        }
        if retry {
            let tx = kick_tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let _ = tx.send(());
            });
        }
    }
    for (_, mut b) in bound.drain() {
        b.task.abort();
        let _ = (&mut b.task).await;
    }
}

async fn list_tables(State(c): State<NodeCtx>, Query(q): Params) -> Reply {
    c.core.list_tables(&c.key, param(&q, "keyspaceName"))
}

async fn list_tables_v1(State(c): State<NodeCtx>, Query(q): Params) -> Reply {
    let reply = c.core.list_tables(&c.key, param(&q, "keyspaceName"));
    match reply.body {
        ReplyBody::Json(Value::Array(names)) => Reply::json(
            reply.status,
            Value::Array(
                names
                    .into_iter()
                    .map(|n| serde_json::json!({"name": n, "compaction": {}}))
                    .collect(),
            ),
        ),
        _ => reply,
    }
}

async fn create_table(State(c): State<NodeCtx>, body: Bytes) -> Reply {
    match crate::tables::check_create_table(&body_json(&body)) {
        Ok((ks, table)) => c.core.create_table(&c.key, &ks, &table),
        Err(e) => Reply::text(StatusCode::BAD_REQUEST, e),
    }
}

async fn move_node(State(c): State<NodeCtx>, Query(q): Params) -> Reply {
    let Some(token) = param(&q, "newToken").filter(|t| t.parse::<i64>().is_ok()) else {
        return Reply::text(StatusCode::BAD_REQUEST, "newToken must be a valid token");
    };
    async_job(
        &c,
        JobKind::Move {
            token: token.to_string(),
        },
    )
}

async fn truststore_reload(State(c): State<NodeCtx>) -> Reply {
    c.core.acknowledge(&c.key, "truststore_reload", None)
}

async fn fql_get(State(c): State<NodeCtx>) -> Reply {
    c.core.full_query_logging(&c.key, None)
}

async fn fql_set(State(c): State<NodeCtx>, Query(q): Params) -> Reply {
    c.core.full_query_logging(&c.key, Some(flag(&q, "enabled")))
}

async fn identity_to_role(State(c): State<NodeCtx>, body: Bytes) -> Reply {
    let detail = body_json(&body).to_string();
    c.core.acknowledge(&c.key, "identity_to_role", Some(detail))
}

async fn identity_to_role_drop(State(c): State<NodeCtx>, body: Bytes) -> Reply {
    let detail = body_json(&body).to_string();
    c.core
        .acknowledge(&c.key, "identity_to_role_drop", Some(detail))
}

async fn configure(State(c): State<NodeCtx>) -> Reply {
    c.core.configure(&c.key)
}
