//! A client of Reaper's REST API (clusters, repair schedules, repair runs), with its login.
//!
//! Reaper answers in its own JSON (snake_case, fields that changed between versions); this
//! module turns every answer into the host's shapes ([`ReaperSchedule`], [`ReaperRun`],
//! [`ReaperCluster`]), which are the JSON outcomes the WIT documents, the same for every
//! Reaper version.
//!
//! Login: `POST /login` with the UI user's form. Reaper 4.x answers `{"token": ..}`; 3.x
//! answers with a `JSESSIONID` cookie, and `GET /jwt` with that cookie gives the token.
//! The token is kept per (Reaper, user) and sent as `Authorization: Bearer`; a 401 drops it,
//! and the call is made once more after a new login (Reaper's tokens expire, 10 min by
//! default). Neither the password nor a token ever reaches a log line, an error or an
//! outcome.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{debug, info};

use super::client::Password;

/// Reaper's REST port (the container port named `app`).
pub const DEFAULT_PORT: u16 = 8080;
/// Per-call deadline, as upstream's client.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of an error answer's body goes into an error message.
const BODY_EXCERPT: usize = 300;

/// What went wrong talking to Reaper. Messages name the Reaper by address and the call by
/// method and path, never a credential.
#[derive(Debug, thiserror::Error)]
pub enum ReaperError {
    #[error("Reaper at {endpoint} did not answer {method} {path} within {secs} s")]
    Timeout {
        endpoint: String,
        method: String,
        path: String,
        secs: u64,
    },
    #[error("Reaper at {endpoint} is unreachable ({method} {path}): {reason}")]
    Unreachable {
        endpoint: String,
        method: String,
        path: String,
        reason: String,
    },
    #[error("Reaper at {endpoint} refused the login of user {username:?}: HTTP {status}{detail}")]
    Login {
        endpoint: String,
        username: String,
        status: u16,
        detail: String,
    },
    #[error("Reaper at {endpoint} answered HTTP {status} to {method} {path}: {body}")]
    Status {
        endpoint: String,
        method: String,
        path: String,
        status: u16,
        body: String,
    },
    #[error(
        "Reaper at {endpoint} answered {method} {path} with a body this host cannot read: {reason}"
    )]
    Decode {
        endpoint: String,
        method: String,
        path: String,
        reason: String,
    },
    #[error("{0}")]
    Refused(String),
}

impl ReaperError {
    /// The HTTP status of an answer that was not a success, if that is what happened.
    pub fn status(&self) -> Option<u16> {
        match self {
            ReaperError::Status { status, .. } | ReaperError::Login { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

/// The UI user's credentials. `Debug` shows the user only.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: Password,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// One Reaper: its base URL (`http://<address>:<port>`) and, when it authenticates, the
/// UI user.
#[derive(Clone, Debug)]
pub struct ReaperEndpoint {
    pub base_url: String,
    pub credentials: Option<Credentials>,
}

impl ReaperEndpoint {
    /// The Reaper at a pod address (IPv6 bracketed) and port.
    pub fn at(address: &str, port: u16, credentials: Option<Credentials>) -> Self {
        let host = if address.contains(':') && !address.starts_with('[') {
            format!("[{address}]")
        } else {
            address.to_string()
        };
        ReaperEndpoint {
            base_url: format!("http://{host}:{port}"),
            credentials,
        }
    }
}

/// How the ranges of a repair are processed (Reaper's `repairParallelism`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Parallelism {
    Sequential,
    Parallel,
    DatacenterAware,
}

impl Parallelism {
    pub fn as_str(self) -> &'static str {
        match self {
            Parallelism::Sequential => "SEQUENTIAL",
            Parallelism::Parallel => "PARALLEL",
            Parallelism::DatacenterAware => "DATACENTER_AWARE",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "SEQUENTIAL" => Some(Parallelism::Sequential),
            "PARALLEL" => Some(Parallelism::Parallel),
            "DATACENTER_AWARE" => Some(Parallelism::DatacenterAware),
            _ => None,
        }
    }
}

/// A repair of one keyspace, as the host asks for it (a run, or the body of a schedule).
#[derive(Debug, Clone, PartialEq)]
pub struct RepairSpec {
    pub cluster_name: String,
    pub keyspace: String,
    pub tables: Vec<String>,
    pub blacklisted_tables: Vec<String>,
    pub datacenters: Vec<String>,
    pub nodes: Vec<String>,
    pub owner: String,
    pub parallelism: Parallelism,
    pub intensity: f64,
    pub incremental: bool,
    pub segment_count_per_node: Option<u32>,
    pub repair_thread_count: Option<u32>,
    pub timeout_minutes: Option<u32>,
    pub cause: String,
}

/// A repair schedule to create.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleSpec {
    pub repair: RepairSpec,
    pub days_between: u32,
    /// ISO-8601 in UTC; None: now.
    pub trigger_time: Option<String>,
    pub adaptive: bool,
    pub percent_unrepaired_threshold: Option<u32>,
}

/// The fields Reaper's `PATCH /repair_schedule/{id}` changes; None leaves one as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SchedulePatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(rename = "repair_parallelism", skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<Parallelism>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intensity: Option<f64>,
    #[serde(
        rename = "scheduled_days_between",
        skip_serializing_if = "Option::is_none"
    )]
    pub days_between: Option<u32>,
    #[serde(
        rename = "segment_count_per_node",
        skip_serializing_if = "Option::is_none"
    )]
    pub segment_count_per_node: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<bool>,
    #[serde(
        rename = "percent_unrepaired_threshold",
        skip_serializing_if = "Option::is_none"
    )]
    pub percent_unrepaired_threshold: Option<i64>,
}

/// A registered Cassandra cluster (the outcome shape `{"name", "seedHosts", "nodes"}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReaperCluster {
    pub name: String,
    pub seed_hosts: Vec<String>,
    pub nodes: Vec<String>,
}

/// A repair schedule in the host's field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReaperSchedule {
    pub id: String,
    pub owner: String,
    /// `ACTIVE` or `PAUSED`.
    pub state: String,
    pub keyspace: String,
    pub tables: Vec<String>,
    pub blacklisted_tables: Vec<String>,
    pub datacenters: Vec<String>,
    pub nodes: Vec<String>,
    pub parallelism: Option<Parallelism>,
    pub intensity: f64,
    pub incremental: bool,
    pub days_between: u32,
    pub segment_count_per_node: Option<u32>,
    pub repair_thread_count: Option<u32>,
    pub adaptive: bool,
    pub percent_unrepaired_threshold: Option<i64>,
    pub next_activation: Option<String>,
}

/// A repair run in the host's field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReaperRun {
    pub id: String,
    pub owner: String,
    pub cause: String,
    pub keyspace: String,
    pub tables: Vec<String>,
    /// As Reaper names it: NOT_STARTED, RUNNING, PAUSED, DONE, ERROR, ABORTED, DELETED.
    pub state: String,
    /// The schedule that started the run (Reaper's cause `scheduled run (schedule id ..)`).
    pub schedule_id: Option<String>,
    pub segments_repaired: u64,
    pub total_segments: u64,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub last_event: Option<String>,
}

impl ReaperRun {
    /// The run ended (successfully or not); it will not change by itself any more.
    pub fn is_over(&self) -> bool {
        matches!(
            self.state.as_str(),
            "DONE" | "ERROR" | "ABORTED" | "DELETED"
        )
    }
}

/// Settings of a [`ReaperClient`].
#[derive(Debug, Clone)]
pub struct ReaperClientConfig {
    pub timeout: Duration,
    pub connect_timeout: Duration,
}

impl Default for ReaperClientConfig {
    fn default() -> Self {
        ReaperClientConfig {
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: Duration::from_secs(3),
        }
    }
}

/// The REST client; cheap to clone (one connection pool and token cache shared).
#[derive(Clone)]
pub struct ReaperClient {
    http: reqwest::Client,
    timeout: Duration,
    /// Bearer tokens per (base URL, user and password digest).
    tokens: Arc<Mutex<HashMap<(String, String), String>>>,
    /// Logins made, for tests and metrics (a re-login after expiry counts too).
    logins: Arc<std::sync::atomic::AtomicU64>,
}

impl fmt::Debug for ReaperClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReaperClient")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Default for ReaperClient {
    fn default() -> Self {
        ReaperClient::new(ReaperClientConfig::default())
    }
}

/// One call: the method, the path (with its query, already encoded) and the body.
struct Call<'a> {
    method: Method,
    path: &'a str,
    query: &'a [(String, String)],
    json: Option<&'a Value>,
}

/// What came back from a call that succeeded (2xx).
struct Answer {
    status: StatusCode,
    location: Option<String>,
    body: String,
}

impl ReaperClient {
    pub fn new(config: ReaperClientConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            // Pod IPs are reached directly: a cluster-wide HTTP proxy must not see them.
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(2)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        ReaperClient {
            http,
            timeout: config.timeout,
            tokens: Arc::new(Mutex::new(HashMap::new())),
            logins: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }

    /// Logins made so far by this client (first ones and re-logins after a 401).
    pub fn logins(&self) -> u64 {
        self.logins.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Keyed by the password's digest too, so changed credentials (a rotated Secret) log
    /// in again instead of riding on the old user's token.
    fn token_key(ep: &ReaperEndpoint) -> Option<(String, String)> {
        use sha2::{Digest, Sha256};
        ep.credentials.as_ref().map(|c| {
            let digest = Sha256::digest(c.password.expose().as_bytes());
            (
                ep.base_url.clone(),
                format!("{}\n{}", c.username, hex::encode(digest)),
            )
        })
    }

    fn cached_token(&self, ep: &ReaperEndpoint) -> Option<String> {
        let key = Self::token_key(ep)?;
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned()
    }

    fn forget_token(&self, ep: &ReaperEndpoint) {
        if let Some(key) = Self::token_key(ep) {
            self.tokens
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
        }
    }

    fn send_error(
        &self,
        ep: &ReaperEndpoint,
        method: &Method,
        path: &str,
        e: reqwest::Error,
    ) -> ReaperError {
        if e.is_timeout() {
            ReaperError::Timeout {
                endpoint: ep.base_url.clone(),
                method: method.to_string(),
                path: path.to_string(),
                secs: self.timeout.as_secs(),
            }
        } else {
            // reqwest's message can carry the URL, never a credential: those travel in the
            // body and headers only.
            ReaperError::Unreachable {
                endpoint: ep.base_url.clone(),
                method: method.to_string(),
                path: path.to_string(),
                reason: error_chain(&e),
            }
        }
    }

    /// Logs in and returns the bearer token.
    async fn login(&self, ep: &ReaperEndpoint, creds: &Credentials) -> Result<String, ReaperError> {
        let form = [
            ("username", creds.username.as_str()),
            ("password", creds.password.expose()),
            ("rememberMe", "false"),
        ];
        let url = format!("{}/login", ep.base_url);
        let resp = self
            .http
            .post(&url)
            .form(&form)
            .send()
            .await
            .map_err(|e| self.send_error(ep, &Method::POST, "/login", e))?;
        let status = resp.status();
        let session = resp
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|c| c.split(';').next())
            .find(|c| c.trim_start().starts_with("JSESSIONID="))
            .map(|c| c.trim().to_string());
        let body = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(ReaperError::Login {
                endpoint: ep.base_url.clone(),
                username: creds.username.clone(),
                status: status.as_u16(),
                detail: excerpt_detail(&body),
            });
        }
        self.logins
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Reaper 4.x: the token is in the answer.
        if let Some(token) = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("token").and_then(Value::as_str).map(str::to_string))
            .filter(|t| !t.is_empty())
        {
            debug!(reaper = %ep.base_url, user = %creds.username, "logged in to Reaper (token)");
            return Ok(token);
        }
        // Reaper 3.x: a session, exchanged for a token.
        let Some(cookie) = session else {
            return Err(ReaperError::Login {
                endpoint: ep.base_url.clone(),
                username: creds.username.clone(),
                status: status.as_u16(),
                detail: ": the answer has neither a token nor a JSESSIONID session cookie"
                    .to_string(),
            });
        };
        let resp = self
            .http
            .get(format!("{}/jwt", ep.base_url))
            .header(COOKIE, cookie)
            .send()
            .await
            .map_err(|e| self.send_error(ep, &Method::GET, "/jwt", e))?;
        let status = resp.status();
        let token = resp.text().await.unwrap_or_default().trim().to_string();
        if !status.is_success() || token.is_empty() {
            return Err(ReaperError::Login {
                endpoint: ep.base_url.clone(),
                username: creds.username.clone(),
                status: status.as_u16(),
                detail: ": GET /jwt after the session login gave no token".to_string(),
            });
        }
        debug!(reaper = %ep.base_url, user = %creds.username, "logged in to Reaper (session, /jwt)");
        Ok(token)
    }

    async fn token(&self, ep: &ReaperEndpoint) -> Result<Option<String>, ReaperError> {
        let Some(creds) = &ep.credentials else {
            return Ok(None);
        };
        if let Some(t) = self.cached_token(ep) {
            return Ok(Some(t));
        }
        let token = self.login(ep, creds).await?;
        if let Some(key) = Self::token_key(ep) {
            self.tokens
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, token.clone());
        }
        Ok(Some(token))
    }

    /// Makes a call, logging in first when needed and once more after a 401.
    async fn call(&self, ep: &ReaperEndpoint, call: Call<'_>) -> Result<Answer, ReaperError> {
        let mut relogged = false;
        loop {
            let token = self.token(ep).await?;
            let url = format!("{}{}", ep.base_url, call.path);
            let mut req = self.http.request(call.method.clone(), &url);
            if !call.query.is_empty() {
                req = req.query(call.query);
            }
            if let Some(body) = call.json {
                req = req.json(body);
            }
            if let Some(t) = &token {
                req = req.header(AUTHORIZATION, format!("Bearer {t}"));
            }
            let resp = req
                .send()
                .await
                .map_err(|e| self.send_error(ep, &call.method, call.path, e))?;
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && ep.credentials.is_some() && !relogged {
                info!(reaper = %ep.base_url, path = call.path, "Reaper answered 401; logging in again");
                self.forget_token(ep);
                relogged = true;
                continue;
            }
            let location = resp
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = resp.text().await.unwrap_or_default();
            if !status.is_success() {
                return Err(ReaperError::Status {
                    endpoint: ep.base_url.clone(),
                    method: call.method.to_string(),
                    path: call.path.to_string(),
                    status: status.as_u16(),
                    body: excerpt(&body),
                });
            }
            return Ok(Answer {
                status,
                location,
                body,
            });
        }
    }

    async fn get_json(
        &self,
        ep: &ReaperEndpoint,
        path: &str,
        query: &[(String, String)],
    ) -> Result<Value, ReaperError> {
        let a = self
            .call(
                ep,
                Call {
                    method: Method::GET,
                    path,
                    query,
                    json: None,
                },
            )
            .await?;
        parse(ep, "GET", path, &a.body)
    }

    /// A DELETE whose 404 means the object is already gone: true when Reaper removed it.
    async fn delete(
        &self,
        ep: &ReaperEndpoint,
        path: &str,
        query: &[(String, String)],
    ) -> Result<bool, ReaperError> {
        let call = Call {
            method: Method::DELETE,
            path,
            query,
            json: None,
        };
        match self.call(ep, call).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `HEAD /ping`: Reaper is up and serving.
    pub async fn ping(&self, ep: &ReaperEndpoint) -> Result<(), ReaperError> {
        self.call(
            ep,
            Call {
                method: Method::HEAD,
                path: "/ping",
                query: &[],
                json: None,
            },
        )
        .await
        .map(|_| ())
    }

    /// `GET /cluster`: the names of the registered clusters.
    pub async fn list_clusters(&self, ep: &ReaperEndpoint) -> Result<Vec<String>, ReaperError> {
        let v = self.get_json(ep, "/cluster", &[]).await?;
        Ok(strings(&v))
    }

    /// `GET /cluster/{name}`; None when Reaper does not know it.
    pub async fn get_cluster(
        &self,
        ep: &ReaperEndpoint,
        name: &str,
    ) -> Result<Option<ReaperCluster>, ReaperError> {
        let path = format!("/cluster/{}", seg(name));
        match self.get_json(ep, &path, &[]).await {
            Ok(v) => Ok(Some(cluster_from(&v, name))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `PUT /cluster/{name}?seedHost=a,b[&jmxPort=]`; 200, 201 and 204 are all success.
    pub async fn add_cluster(
        &self,
        ep: &ReaperEndpoint,
        name: &str,
        seed_hosts: &[String],
        jmx_port: Option<u32>,
    ) -> Result<(), ReaperError> {
        if seed_hosts.is_empty() {
            return Err(ReaperError::Refused(format!(
                "registering cluster {name:?}: seed-hosts is empty; Reaper needs at least one node to contact"
            )));
        }
        let mut query = vec![("seedHost".to_string(), seed_hosts.join(","))];
        if let Some(p) = jmx_port {
            query.push(("jmxPort".to_string(), p.to_string()));
        }
        let path = format!("/cluster/{}", seg(name));
        self.call(
            ep,
            Call {
                method: Method::PUT,
                path: &path,
                query: &query,
                json: None,
            },
        )
        .await?;
        info!(reaper = %ep.base_url, cluster = name, "cluster registered with Reaper");
        Ok(())
    }

    /// `DELETE /cluster/{name}[?force=true]`; false when Reaper did not know it.
    pub async fn delete_cluster(
        &self,
        ep: &ReaperEndpoint,
        name: &str,
        force: bool,
    ) -> Result<bool, ReaperError> {
        let path = format!("/cluster/{}", seg(name));
        let query = if force {
            vec![("force".to_string(), "true".to_string())]
        } else {
            Vec::new()
        };
        self.delete(ep, &path, &query).await
    }

    /// `GET /repair_schedule/cluster/{name}`: every owner's schedules of the cluster.
    pub async fn list_schedules(
        &self,
        ep: &ReaperEndpoint,
        cluster: &str,
    ) -> Result<Vec<ReaperSchedule>, ReaperError> {
        let path = format!("/repair_schedule/cluster/{}", seg(cluster));
        let v = match self.get_json(ep, &path, &[]).await {
            Ok(v) => v,
            // Reaper 3.x answers 404 for a cluster it does not know; no schedules then.
            Err(e) if e.is_not_found() => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        items(&v)
            .iter()
            .map(|s| schedule_from(s).map_err(|r| decode(ep, "GET", &path, r)))
            .collect()
    }

    /// `GET /repair_schedule/{id}`; None when Reaper does not know it.
    pub async fn get_schedule(
        &self,
        ep: &ReaperEndpoint,
        id: &str,
    ) -> Result<Option<ReaperSchedule>, ReaperError> {
        let path = format!("/repair_schedule/{}", seg(id));
        match self.get_json(ep, &path, &[]).await {
            Ok(v) => schedule_from(&v)
                .map(Some)
                .map_err(|r| decode(ep, "GET", &path, r)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /repair_schedule?...`: the created schedule, read back by its location when
    /// Reaper answers without a body.
    pub async fn create_schedule(
        &self,
        ep: &ReaperEndpoint,
        spec: &ScheduleSpec,
    ) -> Result<ReaperSchedule, ReaperError> {
        let mut query = repair_query(&spec.repair);
        query.push(("scheduleDaysBetween".into(), spec.days_between.to_string()));
        if let Some(t) = &spec.trigger_time {
            query.push(("scheduleTriggerTime".into(), t.clone()));
        }
        if spec.adaptive {
            query.push(("adaptive".into(), "true".into()));
        }
        if let Some(p) = spec.percent_unrepaired_threshold {
            query.push(("percentUnrepairedThreshold".into(), p.to_string()));
        }
        let a = self
            .call(
                ep,
                Call {
                    method: Method::POST,
                    path: "/repair_schedule",
                    query: &query,
                    json: None,
                },
            )
            .await?;
        if let Ok(v) = serde_json::from_str::<Value>(&a.body)
            && v.get("id").is_some()
        {
            return schedule_from(&v).map_err(|r| decode(ep, "POST", "/repair_schedule", r));
        }
        let id = a
            .location
            .as_deref()
            .and_then(last_segment)
            .ok_or_else(|| {
                decode(
                    ep,
                    "POST",
                    "/repair_schedule",
                    format!(
                        "HTTP {} without a schedule in the body or a Location header",
                        a.status.as_u16()
                    ),
                )
            })?;
        info!(reaper = %ep.base_url, schedule = %id, keyspace = %spec.repair.keyspace, "repair schedule created");
        self.get_schedule(ep, &id).await?.ok_or_else(|| {
            ReaperError::Refused(format!(
                "Reaper at {} created schedule {id} but does not know it when asked",
                ep.base_url
            ))
        })
    }

    /// `PATCH /repair_schedule/{id}` with the fields Reaper lets change in place.
    pub async fn patch_schedule(
        &self,
        ep: &ReaperEndpoint,
        id: &str,
        patch: &SchedulePatch,
    ) -> Result<ReaperSchedule, ReaperError> {
        let path = format!("/repair_schedule/{}", seg(id));
        let body =
            serde_json::to_value(patch).map_err(|e| decode(ep, "PATCH", &path, e.to_string()))?;
        let a = self
            .call(
                ep,
                Call {
                    method: Method::PATCH,
                    path: &path,
                    query: &[],
                    json: Some(&body),
                },
            )
            .await?;
        match serde_json::from_str::<Value>(&a.body) {
            Ok(v) if v.get("id").is_some() => {
                schedule_from(&v).map_err(|r| decode(ep, "PATCH", &path, r))
            }
            _ => self.get_schedule(ep, id).await?.ok_or_else(|| {
                ReaperError::Refused(format!("schedule {id} vanished while it was changed"))
            }),
        }
    }

    /// `PUT /repair_schedule/{id}?state=ACTIVE|PAUSED`.
    pub async fn set_schedule_state(
        &self,
        ep: &ReaperEndpoint,
        id: &str,
        active: bool,
    ) -> Result<ReaperSchedule, ReaperError> {
        let path = format!("/repair_schedule/{}", seg(id));
        let state = if active { "ACTIVE" } else { "PAUSED" };
        let query = [("state".to_string(), state.to_string())];
        let a = self
            .call(
                ep,
                Call {
                    method: Method::PUT,
                    path: &path,
                    query: &query,
                    json: None,
                },
            )
            .await?;
        match serde_json::from_str::<Value>(&a.body) {
            Ok(v) if v.get("id").is_some() => {
                schedule_from(&v).map_err(|r| decode(ep, "PUT", &path, r))
            }
            _ => self.get_schedule(ep, id).await?.ok_or_else(|| {
                ReaperError::Refused(format!("schedule {id} vanished while its state changed"))
            }),
        }
    }

    /// `DELETE /repair_schedule/{id}?owner=` (Reaper refuses an active schedule: pause it
    /// first); false when Reaper did not know it.
    pub async fn delete_schedule(
        &self,
        ep: &ReaperEndpoint,
        id: &str,
        owner: &str,
    ) -> Result<bool, ReaperError> {
        let path = format!("/repair_schedule/{}", seg(id));
        let query = [("owner".to_string(), owner.to_string())];
        self.delete(ep, &path, &query).await
    }

    /// `GET /repair_run?cluster_name=`: the cluster's runs, newest first.
    pub async fn list_runs(
        &self,
        ep: &ReaperEndpoint,
        cluster: &str,
    ) -> Result<Vec<ReaperRun>, ReaperError> {
        let query = [("cluster_name".to_string(), cluster.to_string())];
        let v = self.get_json(ep, "/repair_run", &query).await?;
        let mut runs: Vec<(String, ReaperRun)> = items(&v)
            .iter()
            .map(|r| {
                let created = r
                    .get("creation_time")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                run_from(r)
                    .map(|run| (created, run))
                    .map_err(|e| decode(ep, "GET", "/repair_run", e))
            })
            .collect::<Result<_, _>>()?;
        // ISO-8601 in UTC sorts as text. Reaper's times have whole seconds: runs created in
        // the same second keep Reaper's own order (a stable sort).
        runs.sort_by(|a, b| b.0.cmp(&a.0));
        Ok(runs.into_iter().map(|(_, r)| r).collect())
    }

    /// `GET /repair_run/{id}`; None when Reaper does not know it.
    pub async fn get_run(
        &self,
        ep: &ReaperEndpoint,
        id: &str,
    ) -> Result<Option<ReaperRun>, ReaperError> {
        let path = format!("/repair_run/{}", seg(id));
        match self.get_json(ep, &path, &[]).await {
            Ok(v) => run_from(&v)
                .map(Some)
                .map_err(|r| decode(ep, "GET", &path, r)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /repair_run?...`: the created run (NOT_STARTED).
    pub async fn create_run(
        &self,
        ep: &ReaperEndpoint,
        spec: &RepairSpec,
    ) -> Result<ReaperRun, ReaperError> {
        let mut query = repair_query(spec);
        if !spec.cause.is_empty() {
            query.push(("cause".into(), spec.cause.clone()));
        }
        let a = self
            .call(
                ep,
                Call {
                    method: Method::POST,
                    path: "/repair_run",
                    query: &query,
                    json: None,
                },
            )
            .await?;
        if let Ok(v) = serde_json::from_str::<Value>(&a.body)
            && v.get("id").is_some()
        {
            return run_from(&v).map_err(|r| decode(ep, "POST", "/repair_run", r));
        }
        let id = a
            .location
            .as_deref()
            .and_then(last_segment)
            .ok_or_else(|| {
                decode(
                    ep,
                    "POST",
                    "/repair_run",
                    "no run in the body and no Location header".to_string(),
                )
            })?;
        self.get_run(ep, &id).await?.ok_or_else(|| {
            ReaperError::Refused(format!(
                "Reaper at {} created run {id} but does not know it when asked",
                ep.base_url
            ))
        })
    }

    /// `PUT /repair_run/{id}/state/{state}` (RUNNING, PAUSED, ABORTED).
    pub async fn set_run_state(
        &self,
        ep: &ReaperEndpoint,
        id: &str,
        state: &str,
    ) -> Result<(), ReaperError> {
        let path = format!("/repair_run/{}/state/{}", seg(id), seg(state));
        self.call(
            ep,
            Call {
                method: Method::PUT,
                path: &path,
                query: &[],
                json: None,
            },
        )
        .await
        .map(|_| ())
    }
}

/// The query of a repair run or schedule, as Reaper's resources read it.
fn repair_query(r: &RepairSpec) -> Vec<(String, String)> {
    let mut q = vec![
        ("clusterName".to_string(), r.cluster_name.clone()),
        ("keyspace".to_string(), r.keyspace.clone()),
        ("owner".to_string(), r.owner.clone()),
        (
            "repairParallelism".to_string(),
            r.parallelism.as_str().to_string(),
        ),
        ("intensity".to_string(), r.intensity.to_string()),
        ("incrementalRepair".to_string(), r.incremental.to_string()),
    ];
    let list = |name: &str, v: &[String], q: &mut Vec<(String, String)>| {
        if !v.is_empty() {
            q.push((name.to_string(), v.join(",")));
        }
    };
    list("tables", &r.tables, &mut q);
    list("blacklistedTables", &r.blacklisted_tables, &mut q);
    list("datacenters", &r.datacenters, &mut q);
    list("nodes", &r.nodes, &mut q);
    if let Some(n) = r.segment_count_per_node {
        q.push(("segmentCountPerNode".into(), n.to_string()));
    }
    if let Some(n) = r.repair_thread_count {
        q.push(("repairThreadCount".into(), n.to_string()));
    }
    if let Some(n) = r.timeout_minutes {
        q.push(("timeout".into(), n.to_string()));
    }
    q
}

/// A path segment, percent-encoded (cluster names are user input).
fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn last_segment(location: &str) -> Option<String> {
    let path = location.split(['?', '#']).next()?;
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

fn excerpt(body: &str) -> String {
    let t = body.trim();
    if t.is_empty() {
        return "(empty body)".to_string();
    }
    let mut s: String = t.chars().take(BODY_EXCERPT).collect();
    if t.chars().count() > BODY_EXCERPT {
        s.push('…');
    }
    s
}

fn excerpt_detail(body: &str) -> String {
    if body.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", excerpt(body))
    }
}

fn decode(ep: &ReaperEndpoint, method: &str, path: &str, reason: String) -> ReaperError {
    ReaperError::Decode {
        endpoint: ep.base_url.clone(),
        method: method.to_string(),
        path: path.to_string(),
        reason,
    }
}

fn parse(ep: &ReaperEndpoint, method: &str, path: &str, body: &str) -> Result<Value, ReaperError> {
    serde_json::from_str(body).map_err(|e| decode(ep, method, path, e.to_string()))
}

fn items(v: &Value) -> Vec<Value> {
    v.as_array().cloned().unwrap_or_default()
}

/// A list of strings: a JSON array, or Reaper's comma-separated text.
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a
            .iter()
            .filter_map(|x| match x {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            })
            .collect(),
        Value::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// The first of several field names a Reaper version used.
fn field<'a>(v: &'a Value, names: &[&str]) -> Option<&'a Value> {
    names
        .iter()
        .find_map(|n| v.get(*n).filter(|x| !x.is_null()))
}

fn text(v: &Value, names: &[&str]) -> Option<String> {
    field(v, names).map(|x| match x {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

fn number(v: &Value, names: &[&str]) -> Option<f64> {
    field(v, names).and_then(|x| match x {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

fn uint(v: &Value, names: &[&str]) -> Option<u32> {
    number(v, names)
        .filter(|n| *n >= 0.0 && *n <= f64::from(u32::MAX))
        .map(|n| n as u32)
}

fn boolean(v: &Value, names: &[&str]) -> bool {
    match field(v, names) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

fn list(v: &Value, names: &[&str]) -> Vec<String> {
    field(v, names).map(strings).unwrap_or_default()
}

fn cluster_from(v: &Value, name: &str) -> ReaperCluster {
    let nodes = field(v, &["nodes_status"])
        .and_then(|s| s.get("endpointStates"))
        .and_then(Value::as_array)
        .map(|states| {
            states
                .iter()
                .filter_map(|s| s.get("endpoints"))
                .filter_map(Value::as_object)
                .flat_map(|dcs| dcs.values())
                .filter_map(Value::as_object)
                .flat_map(|racks| racks.values())
                .filter_map(Value::as_array)
                .flatten()
                .filter_map(|n| n.get("endpoint").and_then(Value::as_str))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .or_else(|| field(v, &["nodes"]).map(strings))
        .unwrap_or_default();
    let mut nodes = nodes;
    nodes.sort();
    nodes.dedup();
    ReaperCluster {
        name: text(v, &["name"]).unwrap_or_else(|| name.to_string()),
        seed_hosts: list(v, &["seed_hosts", "seedHosts"]),
        nodes,
    }
}

fn schedule_from(v: &Value) -> Result<ReaperSchedule, String> {
    let id = text(v, &["id"]).ok_or("a schedule without an id")?;
    Ok(ReaperSchedule {
        id,
        owner: text(v, &["owner"]).unwrap_or_default(),
        state: text(v, &["state"]).unwrap_or_default(),
        keyspace: text(v, &["keyspace_name", "keyspaceName"]).unwrap_or_default(),
        tables: list(v, &["column_families", "columnFamilies", "tables"]),
        blacklisted_tables: list(v, &["blacklisted_tables", "blacklistedTables"]),
        datacenters: list(v, &["datacenters"]),
        nodes: list(v, &["nodes"]),
        parallelism: text(v, &["repair_parallelism", "repairParallelism"])
            .as_deref()
            .and_then(Parallelism::parse),
        intensity: number(v, &["intensity"]).unwrap_or(0.0),
        incremental: boolean(v, &["incremental_repair", "incrementalRepair"]),
        days_between: uint(v, &["scheduled_days_between", "scheduledDaysBetween"]).unwrap_or(0),
        segment_count_per_node: uint(v, &["segment_count_per_node", "segmentCountPerNode"])
            .filter(|n| *n > 0),
        repair_thread_count: uint(v, &["repair_thread_count", "repairThreadCount"])
            .filter(|n| *n > 0),
        adaptive: boolean(v, &["adaptive"]),
        percent_unrepaired_threshold: number(
            v,
            &["percent_unrepaired_threshold", "percentUnrepairedThreshold"],
        )
        .map(|n| n as i64)
        .filter(|n| *n >= 0),
        next_activation: text(v, &["next_activation", "nextActivation"]),
    })
}

const SCHEDULED_CAUSE: &str = "scheduled run (schedule id ";

fn run_from(v: &Value) -> Result<ReaperRun, String> {
    let id = text(v, &["id"]).ok_or("a repair run without an id")?;
    let cause = text(v, &["cause"]).unwrap_or_default();
    let schedule_id = text(v, &["repair_schedule_id", "scheduleId"]).or_else(|| {
        cause
            .strip_prefix(SCHEDULED_CAUSE)
            .and_then(|rest| rest.strip_suffix(')'))
            .map(str::to_string)
    });
    Ok(ReaperRun {
        id,
        owner: text(v, &["owner"]).unwrap_or_default(),
        cause,
        keyspace: text(v, &["keyspace_name", "keyspaceName"]).unwrap_or_default(),
        tables: list(v, &["column_families", "columnFamilies", "tables"]),
        state: text(v, &["state", "run_state", "runState"]).unwrap_or_default(),
        schedule_id,
        segments_repaired: number(v, &["segments_repaired", "segmentsRepaired"])
            .map_or(0, |n| n as u64),
        total_segments: number(v, &["total_segments", "totalSegments"]).map_or(0, |n| n as u64),
        start_time: text(v, &["start_time", "startTime"]),
        end_time: text(v, &["end_time", "endTime"]),
        last_event: text(v, &["last_event", "lastEvent"]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_reaper_schedule_becomes_the_hosts_shape() {
        let s = schedule_from(&json!({
            "id": "5f1c", "owner": "k8ssandra-operator", "state": "PAUSED",
            "cluster_name": "demo", "keyspace_name": "ks", "column_families": ["a", "b"],
            "blacklisted_tables": [], "datacenters": ["dc1"], "nodes": [],
            "repair_parallelism": "DATACENTER_AWARE", "intensity": 0.5,
            "incremental_repair": false, "scheduled_days_between": 7,
            "segment_count_per_node": 16, "repair_thread_count": 1, "adaptive": false,
            "percent_unrepaired_threshold": -1, "next_activation": "2026-12-08T02:00:00Z"
        }))
        .unwrap();
        assert_eq!(s.keyspace, "ks");
        assert_eq!(s.tables, vec!["a", "b"]);
        assert_eq!(s.parallelism, Some(Parallelism::DatacenterAware));
        assert_eq!(s.days_between, 7);
        assert_eq!(s.percent_unrepaired_threshold, None);
        let out = serde_json::to_value(&s).unwrap();
        for key in [
            "id",
            "owner",
            "state",
            "keyspace",
            "tables",
            "blacklistedTables",
            "datacenters",
            "nodes",
            "parallelism",
            "intensity",
            "incremental",
            "daysBetween",
            "segmentCountPerNode",
            "repairThreadCount",
            "adaptive",
            "percentUnrepairedThreshold",
            "nextActivation",
        ] {
            assert!(out.get(key).is_some(), "outcome lacks {key}: {out}");
        }
        assert_eq!(out["parallelism"], "DATACENTER_AWARE");
    }

    #[test]
    fn a_scheduled_run_names_its_schedule() {
        let r = run_from(&json!({
            "id": "r1", "owner": "k8ssandra-operator", "keyspace_name": "ks",
            "cause": "scheduled run (schedule id 0d4e-77)", "state": "RUNNING",
            "segments_repaired": 3, "total_segments": 12, "column_families": "a,b"
        }))
        .unwrap();
        assert_eq!(r.schedule_id.as_deref(), Some("0d4e-77"));
        assert_eq!(r.tables, vec!["a", "b"]);
        assert!(!r.is_over());
        let older = run_from(&json!({"id": "r2", "run_state": "DONE"})).unwrap();
        assert_eq!(older.state, "DONE");
        assert!(older.is_over());
        assert!(run_from(&json!({"state": "DONE"})).is_err());
    }

    #[test]
    fn a_patch_sends_only_what_changes_in_reapers_names() {
        let p = SchedulePatch {
            intensity: Some(0.75),
            parallelism: Some(Parallelism::Parallel),
            days_between: Some(3),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"intensity": 0.75, "repair_parallelism": "PARALLEL", "scheduled_days_between": 3})
        );
    }

    #[test]
    fn names_are_encoded_and_locations_read() {
        assert_eq!(seg("my cluster/x"), "my%20cluster%2Fx");
        assert_eq!(
            last_segment("http://1.2.3.4:8080/repair_schedule/abc-1?x=1").as_deref(),
            Some("abc-1")
        );
        assert_eq!(
            ReaperEndpoint::at("fd00::1", 8080, None).base_url,
            "http://[fd00::1]:8080"
        );
    }

    #[test]
    fn credentials_never_show_the_password() {
        let c = Credentials {
            username: "ui".into(),
            password: Password::new("s3cret-value"),
        };
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
