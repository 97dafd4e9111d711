//! HTTP client of the Cassandra management API (`shared/reference/management-api-openapi.json`).
//!
//! One [`ManagementApi`] serves every node: the node is an argument of each call (its pod
//! IP), and the underlying `reqwest::Client` pools connections per node. Clones share the
//! pool and the counters.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use serde::Deserialize;
use serde_json::json;
use tracing::debug;

use super::error::{DataplaneError, excerpt};
use super::observe::ProbeHolds;
use super::stats::{CallOutcome, DataplaneStats, Endpoint, Recorder};
use crate::plugin::bindings::{ColumnKind, Replication, TableDef, TableScope};

/// The port the management API listens on in every Cassandra pod.
pub const DEFAULT_PORT: u16 = 8080;

/// Settings of a [`ManagementApi`] client.
#[derive(Clone, Debug)]
pub struct ManagementApiConfig {
    /// Port of the management API; 8080 in real pods, anything in tests.
    pub port: u16,
    /// Deadline of one HTTP attempt, connection included.
    pub timeout: Duration,
    /// Deadline of establishing the TCP (and TLS) connection; shorter than `timeout` so
    /// an unreachable pod fails fast during a 1000-node observation.
    pub connect_timeout: Duration,
    /// Attempts of a retried call, the first included.
    pub attempts: u32,
    /// First delay between attempts; it doubles each time, up to `backoff_max`, with jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Nodes probed at once by [`ManagementApi::observe`].
    pub observe_concurrency: usize,
    /// A node whose management API answered an error or timed out is probed again only
    /// after this delay, doubling with each further failure up to `probe_backoff_max`
    /// (with jitter); meanwhile observations report its last error. A refused connection
    /// (a pod whose API is not up yet) does not count: it costs nothing to ask again.
    pub probe_backoff_base: Duration,
    pub probe_backoff_max: Duration,
    /// A node that answered both probes is not probed again for this long while its pod
    /// keeps the same UID and resourceVersion (zero: always probe). See `memo`.
    pub observation_max_age: Duration,
    /// HTTPS with these certificates; plain HTTP when None.
    pub tls: Option<TlsConfig>,
}

impl Default for ManagementApiConfig {
    fn default() -> Self {
        ManagementApiConfig {
            port: DEFAULT_PORT,
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            attempts: 3,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(2),
            observe_concurrency: 32,
            probe_backoff_base: Duration::from_secs(1),
            probe_backoff_max: Duration::from_secs(30),
            observation_max_age: Duration::from_secs(10),
            tls: None,
        }
    }
}

/// TLS to the management API, from PEM bytes (as they come out of a Secret).
#[derive(Clone)]
pub struct TlsConfig {
    /// CA certificate(s) the server certificate must chain to.
    pub ca_pem: Vec<u8>,
    /// Client certificate chain and its private key, for mutual TLS. Both or neither.
    pub client_cert_pem: Option<Vec<u8>>,
    pub client_key_pem: Option<Vec<u8>>,
    /// Also check that the server certificate names the pod IP. Off by default, like
    /// cass-operator: management-API certificates are issued per datacenter, not per pod
    /// IP, so only the chain to the CA is verified.
    pub verify_hostname: bool,
}

impl fmt::Debug for TlsConfig {
    // The private key must never reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("ca_pem", &format_args!("<{} bytes>", self.ca_pem.len()))
            .field("client_cert", &self.client_cert_pem.is_some())
            .field(
                "client_key",
                &self.client_key_pem.as_ref().map(|_| "<redacted>"),
            )
            .field("verify_hostname", &self.verify_hostname)
            .finish()
    }
}

/// A password read from a Secret. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(value: impl Into<String>) -> Self {
        Password(value.into())
    }

    /// The password itself, to put into a request and nowhere else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What a v1 job endpoint answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobStart {
    /// 202: the job runs in the background under this id.
    Job(String),
    /// 200: nothing to run (e.g. cleanup of `system`), with the answer body.
    Done(String),
}

/// State of a background job (`GET /api/v0/ops/executor/job`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobState {
    Waiting,
    Completed,
    Error,
    /// A state this client does not know; treated as still running.
    Other(String),
}

/// One answer of `GET /api/v0/ops/executor/job`.
#[derive(Clone, Debug)]
pub struct JobStatus {
    pub state: JobState,
    /// The job's error message, when it failed.
    pub error: Option<String>,
    /// The answer as JSON, handed to the policy on completion.
    pub body: String,
}

#[derive(Deserialize)]
struct JobBody {
    status: Option<String>,
    error: Option<String>,
}

/// The table-level operations that exist as a v1 job and a v0 blocking endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableOp {
    Cleanup,
    UpgradeSstables,
    Compact,
    Flush,
    Scrub,
    GarbageCollect,
}

impl TableOp {
    fn endpoints(self) -> (Endpoint, Endpoint) {
        match self {
            TableOp::Cleanup => (Endpoint::CleanupV0, Endpoint::CleanupV1),
            TableOp::UpgradeSstables => (Endpoint::UpgradeSstablesV0, Endpoint::UpgradeSstablesV1),
            TableOp::Compact => (Endpoint::CompactV0, Endpoint::CompactV1),
            TableOp::Flush => (Endpoint::FlushV0, Endpoint::FlushV1),
            TableOp::Scrub => (Endpoint::ScrubV0, Endpoint::ScrubV1),
            TableOp::GarbageCollect => (Endpoint::GarbageCollectV0, Endpoint::GarbageCollectV1),
        }
    }

    /// The request body; the same for v0 and v1. Compact and scrub take their own
    /// request types whose extra flags are required by the spec: we send nodetool's
    /// defaults.
    fn body(self, scope: &TableScope) -> serde_json::Value {
        match self {
            TableOp::Compact => json!({
                "keyspace_name": scope.keyspace,
                "tables": scope.tables,
                "split_output": false,
                "user_defined": false,
            }),
            TableOp::Scrub => json!({
                "keyspace_name": scope.keyspace,
                "tables": scope.tables,
                "jobs": scope.jobs,
                "check_data": true,
                "disable_snapshot": false,
                "reinsert_overflowed_ttl": false,
                "skip_corrupted": false,
            }),
            _ => json!({
                "keyspace_name": scope.keyspace,
                "tables": scope.tables,
                "jobs": scope.jobs,
            }),
        }
    }
}

/// When a failed attempt may be sent again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Retry {
    /// Never: probes (their answer is the observation; the next reconcile asks again).
    Never,
    /// Only when the request certainly never left: non-idempotent POSTs (decommission,
    /// job starts), which must not run twice.
    IfNeverSent,
    /// On any transient failure: GETs, and POSTs idempotent by nature.
    Transient,
}

struct Call<'a> {
    endpoint: Endpoint,
    query: Vec<(&'static str, String)>,
    body: Option<serde_json::Value>,
    retry: Retry,
    /// A value of the request that must not appear in an error (a password).
    secret: Option<&'a str>,
}

impl<'a> Call<'a> {
    fn new(endpoint: Endpoint, retry: Retry) -> Self {
        Call {
            endpoint,
            query: Vec::new(),
            body: None,
            retry,
            secret: None,
        }
    }

    fn query(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.query.push((key, value.into()));
        self
    }

    fn body(mut self, body: serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }
}

/// A 2xx answer.
struct Answer {
    status: u16,
    body: String,
}

/// Client of the management API of any number of nodes.
#[derive(Clone)]
pub struct ManagementApi {
    http: reqwest::Client,
    scheme: &'static str,
    /// Per-address HTTPS clients of datacenters with mutual TLS (see `dataplane::tls`).
    routes: Arc<super::tls::Routes>,
    config: Arc<ManagementApiConfig>,
    pub(crate) stats: Arc<Recorder>,
    pub(crate) holds: Arc<ProbeHolds>,
    pub(crate) memo: Arc<super::memo::ProbeMemo>,
}

impl fmt::Debug for ManagementApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagementApi")
            .field("scheme", &self.scheme)
            .field("config", &self.config)
            .finish()
    }
}

impl ManagementApi {
    /// Builds a client; fails only on unusable TLS material.
    pub fn new(config: ManagementApiConfig) -> Result<Self, DataplaneError> {
        let http = http_client(&config, config.tls.as_ref())?;
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        Ok(ManagementApi {
            http,
            scheme,
            routes: Arc::default(),
            config: Arc::new(config),
            stats: Arc::new(Recorder::default()),
            holds: Arc::new(ProbeHolds::default()),
            memo: Arc::default(),
        })
    }

    /// The per-address routes (mutual TLS) every clone of this client follows.
    pub fn routes(&self) -> Arc<super::tls::Routes> {
        Arc::clone(&self.routes)
    }

    /// The settings this client was built with.
    pub fn config(&self) -> &ManagementApiConfig {
        &self.config
    }

    /// Counters of calls and errors per endpoint, since this client was built.
    pub fn stats(&self) -> DataplaneStats {
        self.stats.snapshot()
    }

    /// `http(s)://<address>:<port>`, bracketing IPv6 addresses.
    pub fn base_url(&self, address: &str) -> String {
        self.url_with(self.scheme, address)
    }

    fn url_with(&self, scheme: &str, address: &str) -> String {
        if address.contains(':') && !address.starts_with('[') {
            format!("{}://[{}]:{}", scheme, address, self.config.port)
        } else {
            format!("{}://{}:{}", scheme, address, self.config.port)
        }
    }

    /// `GET /api/v0/probes/liveness`: Ok when the management API runs.
    pub async fn liveness(&self, address: &str) -> Result<(), DataplaneError> {
        self.send(address, &Call::new(Endpoint::Liveness, Retry::Never))
            .await
            .map(|_| ())
    }

    /// `GET /api/v0/probes/readiness`: true when Cassandra serves clients. The API
    /// answers 500 for "not ready", which is an observation and not an error.
    pub async fn readiness(&self, address: &str) -> Result<bool, DataplaneError> {
        match self
            .send(address, &Call::new(Endpoint::Readiness, Retry::Never))
            .await
        {
            Ok(_) => Ok(true),
            Err(DataplaneError::Status { status, .. }) if status >= 500 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `GET /api/v0/metadata/endpoints`: this node's gossip view, as JSON.
    pub async fn endpoints(&self, address: &str) -> Result<String, DataplaneError> {
        let answer = self
            .send(address, &Call::new(Endpoint::Endpoints, Retry::Transient))
            .await?;
        ensure_json(Endpoint::Endpoints, address, answer.body)
    }

    /// `POST /api/v0/lifecycle/start`, replacing the node at `replace_ip` when given.
    /// Idempotent by nature: a running Cassandra answers 202.
    pub async fn start(
        &self,
        address: &str,
        replace_ip: Option<&str>,
    ) -> Result<String, DataplaneError> {
        let mut call = Call::new(Endpoint::Start, Retry::IfNeverSent);
        if let Some(ip) = replace_ip {
            call = call.query("replace_ip", ip);
        }
        // Not retried after a timeout: the node may be starting, and a second start
        // while it boots is answered with an error that would hide the first one.
        Ok(self.send(address, &call).await?.body)
    }

    /// `POST /api/v1/ops/node/decommission?force=true`: starts a background decommission.
    pub async fn decommission_v1(&self, address: &str) -> Result<JobStart, DataplaneError> {
        let call = Call::new(Endpoint::DecommissionV1, Retry::IfNeverSent).query("force", "true");
        self.send_job(address, &call).await
    }

    /// `POST /api/v0/ops/node/decommission?force=true`: blocks until the node has left,
    /// which takes longer than `timeout` on a node with data; callers use it only where
    /// the v1 endpoint does not exist.
    pub async fn decommission_v0(&self, address: &str) -> Result<String, DataplaneError> {
        let call = Call::new(Endpoint::DecommissionV0, Retry::IfNeverSent).query("force", "true");
        Ok(self.send_long(address, &call).await?.body)
    }

    /// `POST /api/v0/ops/node/drain`.
    pub async fn drain(&self, address: &str) -> Result<String, DataplaneError> {
        let call = Call::new(Endpoint::Drain, Retry::IfNeverSent);
        Ok(self.send_long(address, &call).await?.body)
    }

    /// `POST /api/v0/ops/keyspace/create` with NetworkTopologyStrategy replication.
    pub async fn create_keyspace(
        &self,
        address: &str,
        replication: &Replication,
    ) -> Result<String, DataplaneError> {
        let call =
            Call::new(Endpoint::KeyspaceCreate, Retry::Transient).body(keyspace_body(replication));
        Ok(self.send(address, &call).await?.body)
    }

    /// `POST /api/v0/ops/keyspace/alter`; setting the same replication twice is harmless.
    pub async fn alter_keyspace(
        &self,
        address: &str,
        replication: &Replication,
    ) -> Result<String, DataplaneError> {
        let call =
            Call::new(Endpoint::KeyspaceAlter, Retry::Transient).body(keyspace_body(replication));
        Ok(self.send(address, &call).await?.body)
    }

    /// `POST /api/v0/ops/auth/role`: creates or updates a role. The password travels in
    /// the query string (that is the API); it never appears in our errors or logs.
    pub async fn create_role(
        &self,
        address: &str,
        username: &str,
        password: &Password,
        superuser: bool,
        login: bool,
    ) -> Result<String, DataplaneError> {
        let mut call = Call::new(Endpoint::RoleCreate, Retry::Transient)
            .query("username", username)
            .query("password", password.expose())
            .query("is_superuser", superuser.to_string())
            .query("can_login", login.to_string());
        call.secret = Some(password.expose());
        Ok(self.send(address, &call).await?.body)
    }

    /// `POST /api/v1/ops/node/rebuild?src_dc=`: starts streaming from `src_dc`.
    pub async fn rebuild_v1(
        &self,
        address: &str,
        src_dc: &str,
    ) -> Result<JobStart, DataplaneError> {
        let call = Call::new(Endpoint::RebuildV1, Retry::IfNeverSent).query("src_dc", src_dc);
        self.send_job(address, &call).await
    }

    /// The v1 (background job) endpoint of a table operation.
    pub async fn table_op_v1(
        &self,
        address: &str,
        op: TableOp,
        scope: &TableScope,
    ) -> Result<JobStart, DataplaneError> {
        let call = Call::new(op.endpoints().1, Retry::IfNeverSent).body(op.body(scope));
        self.send_job(address, &call).await
    }

    /// The v0 (blocking) endpoint of a table operation, for management APIs without v1.
    pub async fn table_op_v0(
        &self,
        address: &str,
        op: TableOp,
        scope: &TableScope,
    ) -> Result<String, DataplaneError> {
        let call = Call::new(op.endpoints().0, Retry::IfNeverSent).body(op.body(scope));
        Ok(self.send_long(address, &call).await?.body)
    }

    /// `POST /api/v0/ops/seeds/reload`: the new seed list.
    pub async fn reload_seeds(&self, address: &str) -> Result<String, DataplaneError> {
        let call = Call::new(Endpoint::SeedsReload, Retry::Transient);
        Ok(self.send(address, &call).await?.body)
    }

    /// `GET /api/v0/ops/keyspace`: JSON list of keyspace names.
    pub async fn list_keyspaces(&self, address: &str) -> Result<String, DataplaneError> {
        let answer = self
            .send(
                address,
                &Call::new(Endpoint::KeyspaceList, Retry::Transient),
            )
            .await?;
        ensure_json(Endpoint::KeyspaceList, address, answer.body)
    }

    /// `GET /api/v0/ops/keyspace/replication?keyspaceName=`: JSON map of the settings.
    pub async fn get_replication(
        &self,
        address: &str,
        keyspace: &str,
    ) -> Result<String, DataplaneError> {
        let call = Call::new(Endpoint::KeyspaceReplication, Retry::Transient)
            .query("keyspaceName", keyspace);
        let answer = self.send(address, &call).await?;
        ensure_json(Endpoint::KeyspaceReplication, address, answer.body)
    }

    /// `POST /api/v0/ops/tables/create`. The API refuses a table that exists (400); that
    /// is the outcome the caller wanted, so it counts as created.
    pub async fn create_table(
        &self,
        address: &str,
        table: &TableDef,
    ) -> Result<String, DataplaneError> {
        let call = Call::new(Endpoint::TableCreate, Retry::Transient).body(table_body(table)?);
        match self.send(address, &call).await {
            Ok(answer) => Ok(answer.body),
            Err(DataplaneError::Status {
                status: 400, body, ..
            }) if body.to_ascii_lowercase().contains("already exist") => Ok(body),
            Err(e) => Err(e),
        }
    }

    /// `GET /api/v0/ops/node/fullquerylogging`: `true` or `false`.
    pub async fn full_query_logging(&self, address: &str) -> Result<bool, DataplaneError> {
        let answer = self
            .send(
                address,
                &Call::new(Endpoint::FullQueryLogGet, Retry::Transient),
            )
            .await?;
        parse_fql(&answer.body).ok_or_else(|| DataplaneError::Decode {
            method: Endpoint::FullQueryLogGet.method(),
            endpoint: Endpoint::FullQueryLogGet.path(),
            address: address.to_string(),
            reason: format!("not a boolean answer: {}", excerpt(&answer.body, None)),
        })
    }

    /// `POST /api/v0/ops/node/fullquerylogging?enabled=`; setting the current state again
    /// is harmless.
    pub async fn set_full_query_logging(
        &self,
        address: &str,
        enabled: bool,
    ) -> Result<String, DataplaneError> {
        let call = Call::new(Endpoint::FullQueryLogSet, Retry::Transient)
            .query("enabled", if enabled { "true" } else { "false" });
        Ok(self.send(address, &call).await?.body)
    }

    /// `GET /api/v0/ops/executor/job?job_id=`.
    pub async fn job_status(
        &self,
        address: &str,
        job_id: &str,
    ) -> Result<JobStatus, DataplaneError> {
        let call = Call::new(Endpoint::JobStatus, Retry::Transient).query("job_id", job_id);
        let answer = self.send(address, &call).await?;
        let parsed: JobBody =
            serde_json::from_str(&answer.body).map_err(|e| DataplaneError::Decode {
                method: Endpoint::JobStatus.method(),
                endpoint: Endpoint::JobStatus.path(),
                address: address.to_string(),
                reason: format!("job status is not JSON: {e}"),
            })?;
        let state = match parsed.status.as_deref() {
            Some("COMPLETED") => JobState::Completed,
            Some("ERROR") => JobState::Error,
            Some("WAITING") => JobState::Waiting,
            other => JobState::Other(other.unwrap_or_default().to_string()),
        };
        Ok(JobStatus {
            state,
            error: parsed.error,
            body: answer.body,
        })
    }

    async fn send_job(&self, address: &str, call: &Call<'_>) -> Result<JobStart, DataplaneError> {
        let answer = self.send(address, call).await?;
        if answer.status == 202 {
            let id = answer.body.trim().trim_matches('"').to_string();
            if id.is_empty() {
                return Err(DataplaneError::Decode {
                    method: call.endpoint.method(),
                    endpoint: call.endpoint.path(),
                    address: address.to_string(),
                    reason: "202 without a job id".to_string(),
                });
            }
            Ok(JobStart::Job(id))
        } else {
            Ok(JobStart::Done(answer.body))
        }
    }

    /// A blocking call (v0 decommission, drain, v0 table operations): it runs for as long
    /// as Cassandra needs, so the per-request timeout does not apply; the connect timeout
    /// and TCP keepalive still catch a dead node.
    async fn send_long(&self, address: &str, call: &Call<'_>) -> Result<Answer, DataplaneError> {
        self.send_with(address, call, None).await
    }

    async fn send(&self, address: &str, call: &Call<'_>) -> Result<Answer, DataplaneError> {
        self.send_with(address, call, Some(self.config.timeout))
            .await
    }

    async fn send_with(
        &self,
        address: &str,
        call: &Call<'_>,
        timeout: Option<Duration>,
    ) -> Result<Answer, DataplaneError> {
        let attempts = match call.retry {
            Retry::Never => 1,
            _ => self.config.attempts.max(1),
        };
        let mut attempt = 0;
        loop {
            let result = self.send_once(address, call, attempt > 0, timeout).await;
            attempt += 1;
            let error = match result {
                Ok(answer) => return Ok(answer),
                Err(e) => e,
            };
            let retryable = match call.retry {
                Retry::Never => false,
                Retry::IfNeverSent => error.never_sent(),
                Retry::Transient => error.is_transient(),
            };
            if !retryable || attempt >= attempts {
                return Err(error);
            }
            let delay = backoff(self.config.backoff_base, self.config.backoff_max, attempt);
            debug!(
                endpoint = call.endpoint.path(),
                address,
                attempt,
                delay_ms = delay.as_millis() as u64,
                error = %error,
                "management API call failed, retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    async fn send_once(
        &self,
        address: &str,
        call: &Call<'_>,
        retry: bool,
        timeout: Option<Duration>,
    ) -> Result<Answer, DataplaneError> {
        let endpoint = call.endpoint;
        let (http, scheme) = match self.routes.get(address) {
            Some(super::tls::Route::Tls(http)) => (http, "https"),
            Some(super::tls::Route::Refused(reason)) => {
                return Err(DataplaneError::Tls(reason.to_string()));
            }
            None => (self.http.clone(), self.scheme),
        };
        let url = format!("{}{}", self.url_with(scheme, address), endpoint.path());
        let mut request = if endpoint.method() == "GET" {
            http.get(url)
        } else {
            http.post(url)
        };
        if !call.query.is_empty() {
            request = request.query(&call.query);
        }
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        request = match timeout {
            Some(t) => request.timeout(t),
            // reqwest has no "no timeout" per request; a day is longer than any
            // decommission we would still wait for.
            None => request.timeout(Duration::from_secs(24 * 3600)),
        };
        self.stats.call(endpoint, retry);
        let transport = |e: reqwest::Error| DataplaneError::Transport {
            method: endpoint.method(),
            endpoint: endpoint.path(),
            address: address.to_string(),
            timeout: e.is_timeout(),
            connect: e.is_connect(),
            reason: error_chain(&e),
        };
        let failed = |e: reqwest::Error| {
            self.stats.outcome(endpoint, transport_outcome(&e));
            transport(e)
        };
        let response = request.send().await.map_err(failed)?;
        let status = response.status();
        let body = response.text().await.map_err(failed)?;
        self.stats
            .outcome(endpoint, CallOutcome::of_status(status.as_u16()));
        if status.is_success() {
            Ok(Answer {
                status: status.as_u16(),
                body,
            })
        } else {
            Err(DataplaneError::Status {
                method: endpoint.method(),
                endpoint: endpoint.path(),
                address: address.to_string(),
                status: status.as_u16(),
                body: excerpt(&body, call.secret),
            })
        }
    }
}

/// The HTTP client of the management API, HTTPS with `tls` when given.
pub(crate) fn http_client(
    config: &ManagementApiConfig,
    tls: Option<&TlsConfig>,
) -> Result<reqwest::Client, DataplaneError> {
    let mut builder = reqwest::Client::builder()
        .timeout(config.timeout)
        .connect_timeout(config.connect_timeout)
        // Pod IPs are reached directly: a cluster-wide HTTP proxy must not see them.
        .no_proxy()
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(2);
    if let Some(tls) = tls {
        builder = builder.use_preconfigured_tls(tls::client_config(tls)?);
    }
    builder
        .build()
        .map_err(|e| DataplaneError::Client(error_chain(&e)))
}

/// Whether TLS material can be used, without building a client.
pub(crate) fn check_tls(tls: &TlsConfig) -> Result<(), DataplaneError> {
    tls::client_config(tls).map(|_| ())
}

fn keyspace_body(replication: &Replication) -> serde_json::Value {
    let settings: Vec<_> = replication
        .replicas
        .iter()
        .map(|(dc, rf)| json!({"dc_name": dc, "replication_factor": rf}))
        .collect();
    json!({"keyspace_name": replication.keyspace, "replication_settings": settings})
}

fn table_body(table: &TableDef) -> Result<serde_json::Value, DataplaneError> {
    let columns: Vec<_> = table
        .columns
        .iter()
        .map(|c| {
            let kind = match c.kind {
                ColumnKind::PartitionKey => "PARTITION_KEY",
                ColumnKind::ClusteringColumn => "CLUSTERING_COLUMN",
                ColumnKind::Regular => "REGULAR",
                ColumnKind::Static => "STATIC",
            };
            let mut column = json!({"name": c.name, "type": c.cql_type, "kind": kind});
            if matches!(
                c.kind,
                ColumnKind::PartitionKey | ColumnKind::ClusteringColumn
            ) {
                column["position"] = json!(c.position);
            }
            if matches!(c.kind, ColumnKind::ClusteringColumn) {
                column["order"] = json!(if c.descending { "DESC" } else { "ASC" });
            }
            column
        })
        .collect();
    let mut options = serde_json::Map::new();
    for (key, value) in &table.options {
        let parsed = serde_json::from_str(value).map_err(|e| DataplaneError::Request {
            reason: format!(
                "table option {key} of {}.{} is not JSON: {e}",
                table.keyspace, table.name
            ),
        })?;
        options.insert(key.clone(), parsed);
    }
    Ok(json!({
        "keyspace_name": table.keyspace,
        "table_name": table.name,
        "columns": columns,
        "options": options,
    }))
}

/// The management API answers the full-query-logging state as a bare boolean, or wrapped
/// in a JAX-RS entity (`{"entity": false, ...}`) by some versions.
fn parse_fql(body: &str) -> Option<bool> {
    match serde_json::from_str::<serde_json::Value>(body.trim()).ok()? {
        serde_json::Value::Bool(b) => Some(b),
        serde_json::Value::Object(map) => map.get("entity").and_then(|e| e.as_bool()),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Checks an answer is JSON before it goes to a policy, which parses it with serde.
fn ensure_json(endpoint: Endpoint, address: &str, body: String) -> Result<String, DataplaneError> {
    match serde_json::from_str::<serde::de::IgnoredAny>(&body) {
        Ok(_) => Ok(body),
        Err(e) => Err(DataplaneError::Decode {
            method: endpoint.method(),
            endpoint: endpoint.path(),
            address: address.to_string(),
            reason: format!("not JSON: {e}"),
        }),
    }
}

/// Exponential backoff with jitter: `base * 2^(attempt-1)`, capped at `max`, then a
/// random point in its upper half so that many callers retrying at once spread out.
pub(crate) fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let capped = exp.min(max);
    let half = capped / 2;
    let jitter_ms = half.as_millis() as u64;
    let extra = if jitter_ms == 0 {
        0
    } else {
        rand::rng().random_range(0..=jitter_ms)
    };
    half + Duration::from_millis(extra)
}

fn transport_outcome(e: &reqwest::Error) -> CallOutcome {
    if e.is_timeout() {
        CallOutcome::Timeout
    } else if e.is_connect() {
        CallOutcome::Connect
    } else {
        CallOutcome::Other
    }
}

/// The error and its sources, without the URL: a URL may carry a password in its query.
fn error_chain(e: &reqwest::Error) -> String {
    let mut out = String::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = None;
    // reqwest::Error's Display names the URL; describe its kind instead.
    out.push_str(if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "reading the answer failed"
    } else if e.is_builder() {
        "invalid request"
    } else {
        "request failed"
    });
    if let Some(source) = std::error::Error::source(e) {
        current = Some(source);
    }
    while let Some(err) = current {
        out.push_str(": ");
        out.push_str(&err.to_string());
        current = err.source();
    }
    out
}

mod tls {
    use super::super::chain_tls::{self, Names};
    use super::{DataplaneError, TlsConfig};

    const NAMES: Names = Names {
        ca: "CA certificate",
        cert: "client certificate",
        key: "client key",
    };

    pub(super) fn client_config(tls: &TlsConfig) -> Result<rustls::ClientConfig, DataplaneError> {
        let identity = match (&tls.client_cert_pem, &tls.client_key_pem) {
            (Some(cert), Some(key)) => Some((cert.as_slice(), key.as_slice())),
            (None, None) => None,
            _ => {
                return Err(DataplaneError::Tls(
                    "a client certificate needs its key, and a key its certificate".into(),
                ));
            }
        };
        chain_tls::client_config(&tls.ca_pem, identity, tls.verify_hostname, &NAMES)
            .map_err(DataplaneError::Tls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_millis(100);
        let max = Duration::from_millis(1000);
        for attempt in 1..10 {
            let d = backoff(base, max, attempt);
            let full = base.saturating_mul(1 << (attempt - 1)).min(max);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
    }

    #[test]
    fn base_url_brackets_ipv6() {
        let api = ManagementApi::new(ManagementApiConfig {
            port: 1234,
            ..Default::default()
        });
        let api = match api {
            Ok(a) => a,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(api.base_url("10.0.0.1"), "http://10.0.0.1:1234");
        assert_eq!(api.base_url("fd00::1"), "http://[fd00::1]:1234");
    }

    #[test]
    fn tls_rejects_garbage_and_half_identities() {
        let tls = |ca: &[u8], cert: Option<&[u8]>, key: Option<&[u8]>| TlsConfig {
            ca_pem: ca.to_vec(),
            client_cert_pem: cert.map(|c| c.to_vec()),
            client_key_pem: key.map(|k| k.to_vec()),
            verify_hostname: false,
        };
        let err = ManagementApi::new(ManagementApiConfig {
            tls: Some(tls(b"not pem", None, None)),
            ..Default::default()
        });
        assert!(matches!(err, Err(DataplaneError::Tls(_))));
        let debug = format!("{:?}", tls(b"x", Some(b"c"), Some(b"SECRETKEY")));
        assert!(!debug.contains("SECRETKEY"), "{debug}");
    }

    #[test]
    fn password_is_redacted() {
        let p = Password::new("hunter2");
        assert!(!format!("{p:?} {p}").contains("hunter2"));
        assert_eq!(p.expose(), "hunter2");
    }

    #[test]
    fn table_bodies_follow_the_spec() {
        let scope = TableScope {
            keyspace: "ks".into(),
            tables: vec!["t1".into()],
            jobs: 2,
        };
        assert_eq!(
            TableOp::Cleanup.body(&scope),
            json!({"keyspace_name": "ks", "tables": ["t1"], "jobs": 2})
        );
        let compact = TableOp::Compact.body(&scope);
        assert_eq!(compact["split_output"], json!(false));
        assert_eq!(compact["user_defined"], json!(false));
        let scrub = TableOp::Scrub.body(&scope);
        for key in [
            "check_data",
            "disable_snapshot",
            "reinsert_overflowed_ttl",
            "skip_corrupted",
            "jobs",
        ] {
            assert!(scrub.get(key).is_some(), "scrub body lacks {key}");
        }
    }
}
