//! Medusa's gRPC service on a Cassandra pod (the `medusa` container's `grpc` port).
//!
//! Unlike upstream (a fresh connection per call, no deadline, no keepalive: a purge
//! against a dead pod hung for days, KO #1767), every call here has a deadline chosen by
//! its kind, connections are cached per endpoint and TLS identity, and HTTP/2 keepalive
//! pings make a vanished peer fail a call instead of hanging it.
//!
//! Mutual TLS, when the datacenter configures it, verifies the server's chain against the
//! Secret's CA and, like upstream and like the management-API client, not the name: pod
//! IPs change, certificates are issued per datacenter. Key material never reaches a log
//! line or an error.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use k8ssandra_medusa_proto as pb;
use pb::medusa_client::MedusaClient as RawClient;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tonic::transport::{Channel, Endpoint, Uri};
use tracing::{debug, warn};

/// How long starting an asynchronous backup may take (the node answers once the
/// snapshot has been requested, not when the upload ends).
pub const BACKUP_START_DEADLINE: Duration = Duration::from_secs(60);
/// Status and listing calls only read the storage's index.
pub const STATUS_DEADLINE: Duration = Duration::from_secs(30);
pub const GET_DEADLINE: Duration = Duration::from_secs(30);
/// Deleting one backup removes its objects from the storage.
pub const DELETE_DEADLINE: Duration = Duration::from_secs(10 * 60);
/// A purge walks and deletes every expired backup of the cluster.
pub const PURGE_DEADLINE: Duration = Duration::from_secs(30 * 60);
/// Preparing a restore downloads the backup's manifests.
pub const PREPARE_RESTORE_DEADLINE: Duration = Duration::from_secs(10 * 60);
/// Establishing the connection (TCP and TLS), within the call's deadline.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2 pings on idle and busy connections; a peer silent for the timeout after a ping
/// is taken as gone and every call on the connection fails.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Upstream's limit: a GetBackups of a large cluster with many backups is big.
pub const MAX_DECODE_SIZE: usize = 512 * 1024 * 1024;
/// Connections kept; past this the cache is emptied (pods come and go with new IPs).
const MAX_CACHED_CHANNELS: usize = 1024;

/// One pod's Medusa service.
#[derive(Clone, Debug)]
pub struct MedusaTarget {
    /// `ip:port` (IPv6 addresses in brackets).
    pub endpoint: String,
    pub tls: Option<MedusaTls>,
}

/// Mutual TLS material, PEM as it comes out of the Secret (`ca.crt`, `tls.crt`,
/// `tls.key`).
#[derive(Clone)]
pub struct MedusaTls {
    pub ca_pem: Vec<u8>,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl fmt::Debug for MedusaTls {
    // Neither the key nor the certificates belong in a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MedusaTls")
            .field("ca_pem", &format_args!("<{} bytes>", self.ca_pem.len()))
            .field("cert_pem", &format_args!("<{} bytes>", self.cert_pem.len()))
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl MedusaTls {
    /// Identifies the material without revealing it: part of the connection cache key,
    /// so a rotated certificate gets a new connection.
    fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for part in [&self.ca_pem, &self.cert_pem, &self.key_pem] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        hex::encode(&h.finalize()[..16])
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupMode {
    Differential,
    Full,
}

/// Medusa's `StatusType`. Serialized with upstream's names (`IN_PROGRESS`, ...), which
/// is also how MedusaBackup's `status` field spells them.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MedusaStatus {
    InProgress,
    Success,
    Failed,
    Unknown,
}

impl MedusaStatus {
    /// Upstream's name of the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "IN_PROGRESS",
            Self::Success => "SUCCESS",
            Self::Failed => "FAILED",
            Self::Unknown => "UNKNOWN",
        }
    }

    fn from_wire(v: i32) -> Self {
        // A value a newer Medusa might add is not a success.
        match pb::StatusType::try_from(v) {
            Ok(pb::StatusType::InProgress) => Self::InProgress,
            Ok(pb::StatusType::Success) => Self::Success,
            Ok(pb::StatusType::Failed) => Self::Failed,
            Ok(pb::StatusType::Unknown) | Err(_) => Self::Unknown,
        }
    }
}

impl fmt::Display for MedusaStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One node's part of a backup (BackupStatus).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    /// As Medusa formats them (`%Y-%m-%d %H:%M:%S`); empty when unknown or not finished.
    pub start_time: String,
    pub finish_time: String,
    pub status: MedusaStatus,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupNode {
    pub host: String,
    pub tokens: Vec<i64>,
    pub datacenter: String,
    pub rack: String,
}

/// One cluster-wide backup, as the storage holds it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupSummary {
    pub backup_name: String,
    /// Seconds since the epoch.
    pub start_time: i64,
    /// Seconds since the epoch; 0 while a node is still backing up.
    pub finish_time: i64,
    pub total_nodes: i32,
    pub finished_nodes: i32,
    pub nodes: Vec<BackupNode>,
    pub status: MedusaStatus,
    pub backup_type: String,
    pub total_size: i64,
    pub total_objects: i64,
}

impl From<pb::BackupSummary> for BackupSummary {
    fn from(s: pb::BackupSummary) -> Self {
        Self {
            status: MedusaStatus::from_wire(s.status),
            backup_name: s.backup_name,
            start_time: s.start_time,
            finish_time: s.finish_time,
            total_nodes: s.total_nodes,
            finished_nodes: s.finished_nodes,
            nodes: s
                .nodes
                .into_iter()
                .map(|n| BackupNode {
                    host: n.host,
                    tokens: n.tokens,
                    datacenter: n.datacenter,
                    rack: n.rack,
                })
                .collect(),
            backup_type: s.backup_type,
            total_size: s.total_size,
            total_objects: s.total_objects,
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PurgeStats {
    pub backups_purged: i32,
    pub objects_purged: i32,
    pub total_purged_size: i64,
    pub objects_within_gc_grace: i32,
}

#[derive(thiserror::Error, Debug)]
pub enum MedusaError {
    /// The backup (or the node's part of it) does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    #[error("Medusa {op} did not answer within {after:?}")]
    DeadlineExceeded { op: &'static str, after: Duration },
    /// The pod could not be reached, or the connection broke.
    #[error("Medusa unavailable: {0}")]
    Unavailable(String),
    /// The TLS material is unusable or the handshake failed (never includes key bytes).
    #[error("Medusa TLS: {0}")]
    Tls(String),
    /// Medusa answered the call with an error.
    #[error("Medusa {op} failed ({code}): {message}")]
    Call {
        op: &'static str,
        code: String,
        message: String,
    },
}

/// Per-kind deadlines; [`Default`] is the constants above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MedusaDeadlines {
    pub backup_start: Duration,
    pub status: Duration,
    pub get: Duration,
    pub delete: Duration,
    pub purge: Duration,
    pub prepare_restore: Duration,
}

impl Default for MedusaDeadlines {
    fn default() -> Self {
        Self {
            backup_start: BACKUP_START_DEADLINE,
            status: STATUS_DEADLINE,
            get: GET_DEADLINE,
            delete: DELETE_DEADLINE,
            purge: PURGE_DEADLINE,
            prepare_restore: PREPARE_RESTORE_DEADLINE,
        }
    }
}

/// Medusa client for every pod; clones share the connection cache.
#[derive(Clone)]
pub struct MedusaClient {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    deadlines: MedusaDeadlines,
    keepalive_interval: Duration,
    keepalive_timeout: Duration,
}

impl Default for MedusaClient {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MedusaClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MedusaClient")
            .field("deadlines", &self.deadlines)
            .finish_non_exhaustive()
    }
}

impl MedusaClient {
    pub fn new() -> Self {
        Self {
            channels: Arc::default(),
            deadlines: MedusaDeadlines::default(),
            keepalive_interval: KEEPALIVE_INTERVAL,
            keepalive_timeout: KEEPALIVE_TIMEOUT,
        }
    }

    /// Replaces the per-kind deadlines (tests use short ones).
    pub fn with_deadlines(mut self, deadlines: MedusaDeadlines) -> Self {
        self.deadlines = deadlines;
        self
    }

    /// Replaces the keepalive ping interval and how long a ping may go unanswered.
    pub fn with_keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.keepalive_interval = interval;
        self.keepalive_timeout = timeout;
        self
    }

    pub fn deadlines(&self) -> MedusaDeadlines {
        self.deadlines
    }

    pub async fn async_backup(
        &self,
        t: &MedusaTarget,
        name: &str,
        mode: BackupMode,
    ) -> Result<MedusaStatus, MedusaError> {
        let mode = match mode {
            BackupMode::Differential => pb::backup_request::Mode::Differential,
            BackupMode::Full => pb::backup_request::Mode::Full,
        };
        let req = pb::BackupRequest {
            name: name.to_string(),
            mode: mode as i32,
        };
        let resp = self
            .call(
                t,
                "AsyncBackup",
                self.deadlines.backup_start,
                req,
                |mut c, r| async move { c.async_backup(r).await },
            )
            .await?;
        Ok(MedusaStatus::from_wire(resp.status))
    }

    pub async fn backup_status(
        &self,
        t: &MedusaTarget,
        name: &str,
    ) -> Result<BackupStatus, MedusaError> {
        let req = pb::BackupStatusRequest {
            backup_name: name.to_string(),
        };
        let resp = self
            .call(
                t,
                "BackupStatus",
                self.deadlines.status,
                req,
                |mut c, r| async move { c.backup_status(r).await },
            )
            .await?;
        Ok(BackupStatus {
            start_time: resp.start_time,
            finish_time: resp.finish_time,
            status: MedusaStatus::from_wire(resp.status),
        })
    }

    pub async fn get_backups(&self, t: &MedusaTarget) -> Result<Vec<BackupSummary>, MedusaError> {
        let resp = self
            .call(
                t,
                "GetBackups",
                self.deadlines.get,
                pb::GetBackupsRequest {},
                |mut c, r| async move { c.get_backups(r).await },
            )
            .await?;
        Ok(resp.backups.into_iter().map(BackupSummary::from).collect())
    }

    pub async fn get_backup(
        &self,
        t: &MedusaTarget,
        name: &str,
    ) -> Result<BackupSummary, MedusaError> {
        let req = pb::GetBackupRequest {
            backup_name: name.to_string(),
        };
        let resp = self
            .call(
                t,
                "GetBackup",
                self.deadlines.get,
                req,
                |mut c, r| async move { c.get_backup(r).await },
            )
            .await?;
        resp.backup
            .map(BackupSummary::from)
            .ok_or_else(|| MedusaError::NotFound(format!("backup {name:?}")))
    }

    pub async fn delete_backup(&self, t: &MedusaTarget, name: &str) -> Result<(), MedusaError> {
        let req = pb::DeleteBackupRequest {
            name: name.to_string(),
        };
        let resp = self
            .call(
                t,
                "DeleteBackup",
                self.deadlines.delete,
                req,
                |mut c, r| async move { c.delete_backup(r).await },
            )
            .await?;
        // Upstream answers OK with FAILED when the backup is still running.
        match MedusaStatus::from_wire(resp.status) {
            MedusaStatus::Failed => Err(MedusaError::Call {
                op: "DeleteBackup",
                code: "FAILED".into(),
                message: format!("backup {name:?} was not deleted (is it still in progress?)"),
            }),
            _ => Ok(()),
        }
    }

    pub async fn purge_backups(&self, t: &MedusaTarget) -> Result<PurgeStats, MedusaError> {
        let resp = self
            .call(
                t,
                "PurgeBackups",
                self.deadlines.purge,
                pb::PurgeBackupsRequest {},
                |mut c, r| async move { c.purge_backups(r).await },
            )
            .await?;
        Ok(PurgeStats {
            backups_purged: resp.nb_backups_purged,
            objects_purged: resp.nb_objects_purged,
            total_purged_size: resp.total_purged_size,
            objects_within_gc_grace: resp.total_objects_within_gc_grace,
        })
    }

    pub async fn prepare_restore(
        &self,
        t: &MedusaTarget,
        datacenter: &str,
        backup_name: &str,
        restore_key: &str,
    ) -> Result<(), MedusaError> {
        let req = pb::PrepareRestoreRequest {
            backup_name: backup_name.to_string(),
            datacenter: datacenter.to_string(),
            restore_key: restore_key.to_string(),
        };
        self.call(
            t,
            "PrepareRestore",
            self.deadlines.prepare_restore,
            req,
            |mut c, r| async move { c.prepare_restore(r).await },
        )
        .await?;
        Ok(())
    }

    /// One unary call with its deadline: sent to the server as `grpc-timeout` and also
    /// enforced here, so a server or network that ignores it cannot hold the call.
    async fn call<Req, Resp, F, Fut>(
        &self,
        t: &MedusaTarget,
        op: &'static str,
        deadline: Duration,
        req: Req,
        f: F,
    ) -> Result<Resp, MedusaError>
    where
        F: FnOnce(RawClient<Channel>, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let channel = self.channel(t)?;
        let client = RawClient::new(channel)
            .max_decoding_message_size(MAX_DECODE_SIZE)
            .max_encoding_message_size(MAX_DECODE_SIZE);
        let mut request = tonic::Request::new(req);
        request.set_timeout(deadline);
        debug!(endpoint = %t.endpoint, op, ?deadline, "medusa call");
        let started = Instant::now();
        match tokio::time::timeout(deadline, f(client, request)).await {
            Err(_) => Err(MedusaError::DeadlineExceeded {
                op,
                after: deadline,
            }),
            Ok(Ok(resp)) => Ok(resp.into_inner()),
            // The server's own timer, started by our `grpc-timeout` after ours, can answer
            // first: a tonic server says Cancelled.
            Ok(Err(status))
                if started.elapsed() >= deadline
                    && matches!(
                        status.code(),
                        tonic::Code::Cancelled | tonic::Code::DeadlineExceeded
                    ) =>
            {
                Err(MedusaError::DeadlineExceeded {
                    op,
                    after: deadline,
                })
            }
            Ok(Err(status)) => {
                let err = map_status(op, deadline, &status);
                debug!(endpoint = %t.endpoint, op, error = %err, "medusa call failed");
                Err(err)
            }
        }
    }

    fn channel(&self, t: &MedusaTarget) -> Result<Channel, MedusaError> {
        let key = match &t.tls {
            Some(tls) => format!("{}#{}", t.endpoint, tls.fingerprint()),
            None => t.endpoint.clone(),
        };
        let mut cache = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.get(&key) {
            return Ok(c.clone());
        }
        let tls = t
            .tls
            .as_ref()
            .map(|m| tls::client_config(&m.ca_pem, Some((&m.cert_pem, &m.key_pem))))
            .transpose()?
            .map(Arc::new);
        let channel = self.connect_lazy(&t.endpoint, tls)?;
        if cache.len() >= MAX_CACHED_CHANNELS {
            cache.clear();
        }
        cache.insert(key, channel.clone());
        Ok(channel)
    }

    /// A channel that connects on first use and reconnects after a failure by itself.
    fn connect_lazy(
        &self,
        endpoint: &str,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Channel, MedusaError> {
        let uri = format!("http://{endpoint}");
        let ep = Endpoint::from_shared(uri).map_err(|e| {
            MedusaError::Unavailable(format!("endpoint {endpoint:?} is not host:port: {e}"))
        })?;
        let ep = ep
            .connect_timeout(CONNECT_TIMEOUT)
            .http2_keep_alive_interval(self.keepalive_interval)
            .keep_alive_timeout(self.keepalive_timeout)
            .keep_alive_while_idle(true)
            .tcp_nodelay(true);
        Ok(match tls {
            None => ep.connect_lazy(),
            Some(config) => ep.connect_with_connector_lazy(TlsConnector { config }),
        })
    }
}

/// Maps a gRPC status to our error, naming the operation.
fn map_status(op: &'static str, deadline: Duration, status: &tonic::Status) -> MedusaError {
    use tonic::Code;
    if let Some(tls) = tls_failure(status) {
        return MedusaError::Tls(tls);
    }
    // A status with a source came from our side of the connection (transport), not
    // from Medusa: with TLS 1.3 a refused client certificate surfaces only as a broken
    // stream, which tonic reports as Unknown.
    let transport = std::error::Error::source(status).is_some();
    match status.code() {
        Code::NotFound => MedusaError::NotFound(status.message().to_string()),
        Code::DeadlineExceeded => MedusaError::DeadlineExceeded {
            op,
            after: deadline,
        },
        Code::Unavailable => MedusaError::Unavailable(chain(status)),
        // A connection dropped under a call (a refused client certificate, a pod gone)
        // cancels it on our side.
        Code::Unknown | Code::Cancelled if transport => MedusaError::Unavailable(chain(status)),
        code => MedusaError::Call {
            op,
            code: format!("{code:?}"),
            message: status.message().to_string(),
        },
    }
}

/// The causes of a status, including the error an `io::Error` wraps (its `source()`
/// skips it).
fn causes(status: &tonic::Status) -> Vec<&(dyn std::error::Error + 'static)> {
    let mut out = Vec::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = current {
        out.push(e);
        current = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => {
                let inner: &(dyn std::error::Error + 'static) = inner;
                Some(inner)
            }
            None => e.source(),
        };
    }
    out
}

/// The TLS failure behind a transport error, if that is what it was: our handshake
/// error, or a TLS alert the server sent after the handshake.
fn tls_failure(status: &tonic::Status) -> Option<String> {
    causes(status).into_iter().find_map(|e| {
        if let Some(h) = e.downcast_ref::<HandshakeError>() {
            return Some(h.0.clone());
        }
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(r.to_string());
        }
        // h2 keeps only the text of the I/O error that carried the alert.
        let text = e.to_string();
        text.contains("received fatal alert").then_some(text)
    })
}

/// A status's message with its causes (a connection refused says so only in its source).
fn chain(status: &tonic::Status) -> String {
    let mut out = status.message().to_string();
    for e in causes(status) {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
    }
    out
}

/// A failed TLS handshake, told apart from other connection errors.
#[derive(Debug)]
struct HandshakeError(String);

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TLS handshake: {}", self.0)
    }
}

impl std::error::Error for HandshakeError {}

/// TCP then TLS (our rustls configuration, ALPN h2) for tonic's lazy channel.
#[derive(Clone)]
struct TlsConnector {
    config: Arc<rustls::ClientConfig>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tonic::codegen::Service<Uri> for TlsConnector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let config = Arc::clone(&self.config);
        Box::pin(async move {
            let host = uri.host().ok_or("endpoint has no host")?;
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().ok_or("endpoint has no port")?;
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            // The name is only sent (SNI) and checked against nothing but the chain.
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| HandshakeError(format!("server name {host:?}: {e}")))?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| {
                    warn!(endpoint = %uri, error = %e, "medusa TLS handshake failed");
                    HandshakeError(e.to_string())
                })?;
            Ok(TokioIo::new(tls))
        })
    }
}

mod tls {
    use super::super::chain_tls::{self, Names};
    use super::MedusaError;

    /// The keys of the Secret the material comes from.
    const NAMES: Names = Names {
        ca: "ca.crt",
        cert: "tls.crt",
        key: "tls.key",
    };

    /// `identity` is the client certificate chain and key; None only in tests (a client
    /// that presents no certificate).
    pub(super) fn client_config(
        ca_pem: &[u8],
        identity: Option<(&[u8], &[u8])>,
    ) -> Result<rustls::ClientConfig, MedusaError> {
        let mut config =
            chain_tls::client_config(ca_pem, identity, false, &NAMES).map_err(MedusaError::Tls)?;
        // gRPC is HTTP/2 only; grpc servers refuse a TLS connection without it.
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }
}

#[cfg(test)]
mod tests;
