//! The client against an in-process server of the generated service: plain and mutual
//! TLS, with a PKI made per run.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::StreamExt;
use k8ssandra_medusa_proto as pb;
use pb::medusa_server::{Medusa, MedusaServer};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::{Request, Response, Status};

use super::*;

#[derive(Default)]
struct Fake {
    prepared: Mutex<Vec<(String, String, String)>>,
    modes: Mutex<Vec<i32>>,
}

fn summary(name: &str) -> pb::BackupSummary {
    pb::BackupSummary {
        backup_name: name.into(),
        start_time: 1_700_000_000,
        finish_time: 1_700_000_100,
        total_nodes: 2,
        finished_nodes: 2,
        nodes: vec![pb::BackupNode {
            host: "10.0.0.1".into(),
            tokens: vec![-9_000_000_000_000_000_000, 42],
            datacenter: "dc1".into(),
            rack: "r1".into(),
        }],
        status: pb::StatusType::Success as i32,
        backup_type: "differential".into(),
        total_size: 1234,
        total_objects: 7,
    }
}

/// The service over shared state the tests inspect.
struct Svc(Arc<Fake>);

impl std::ops::Deref for Svc {
    type Target = Fake;
    fn deref(&self) -> &Fake {
        &self.0
    }
}

#[tonic::async_trait]
impl Medusa for Svc {
    async fn backup(
        &self,
        _: Request<pb::BackupRequest>,
    ) -> Result<Response<pb::BackupResponse>, Status> {
        Err(Status::unimplemented("sync backup"))
    }

    async fn async_backup(
        &self,
        r: Request<pb::BackupRequest>,
    ) -> Result<Response<pb::BackupResponse>, Status> {
        let r = r.into_inner();
        self.modes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(r.mode);
        Ok(Response::new(pb::BackupResponse {
            backup_name: r.name,
            status: pb::StatusType::InProgress as i32,
        }))
    }

    async fn backup_status(
        &self,
        r: Request<pb::BackupStatusRequest>,
    ) -> Result<Response<pb::BackupStatusResponse>, Status> {
        match r.into_inner().backup_name.as_str() {
            "b1" => Ok(Response::new(pb::BackupStatusResponse {
                start_time: "2026-12-07 10:00:00".into(),
                finish_time: "2026-12-07 10:01:00".into(),
                status: pb::StatusType::Success as i32,
            })),
            "hang" => {
                // A node that never answers (KO #1767).
                futures::future::pending::<()>().await;
                Err(Status::internal("unreachable"))
            }
            other => Err(Status::not_found(format!(
                "backup <{other}> does not exist"
            ))),
        }
    }

    async fn delete_backup(
        &self,
        r: Request<pb::DeleteBackupRequest>,
    ) -> Result<Response<pb::DeleteBackupResponse>, Status> {
        let name = r.into_inner().name;
        let status = if name == "running" {
            pb::StatusType::Failed
        } else {
            pb::StatusType::Success
        };
        Ok(Response::new(pb::DeleteBackupResponse {
            name,
            status: status as i32,
        }))
    }

    async fn get_backup(
        &self,
        r: Request<pb::GetBackupRequest>,
    ) -> Result<Response<pb::GetBackupResponse>, Status> {
        match r.into_inner().backup_name.as_str() {
            "b1" => Ok(Response::new(pb::GetBackupResponse {
                backup: Some(summary("b1")),
                status: pb::StatusType::Success as i32,
            })),
            other => Err(Status::not_found(format!("no backup {other}"))),
        }
    }

    async fn get_backups(
        &self,
        _: Request<pb::GetBackupsRequest>,
    ) -> Result<Response<pb::GetBackupsResponse>, Status> {
        let mut unfinished = summary("b2");
        unfinished.finish_time = 0;
        unfinished.finished_nodes = 1;
        unfinished.status = 17; // a status this client does not know
        Ok(Response::new(pb::GetBackupsResponse {
            backups: vec![summary("b1"), unfinished],
            overall_status: pb::StatusType::InProgress as i32,
        }))
    }

    async fn purge_backups(
        &self,
        _: Request<pb::PurgeBackupsRequest>,
    ) -> Result<Response<pb::PurgeBackupsResponse>, Status> {
        Ok(Response::new(pb::PurgeBackupsResponse {
            nb_backups_purged: 3,
            nb_objects_purged: 40,
            total_purged_size: 5_000_000_000,
            total_objects_within_gc_grace: 2,
        }))
    }

    async fn prepare_restore(
        &self,
        r: Request<pb::PrepareRestoreRequest>,
    ) -> Result<Response<pb::PrepareRestoreResponse>, Status> {
        let r = r.into_inner();
        self.prepared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((r.datacenter, r.backup_name, r.restore_key));
        Ok(Response::new(pb::PrepareRestoreResponse {}))
    }
}

async fn listener() -> (tokio::net::TcpListener, SocketAddr) {
    let l = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => panic!("bind: {e}"),
    };
    let addr = match l.local_addr() {
        Ok(a) => a,
        Err(e) => panic!("local_addr: {e}"),
    };
    (l, addr)
}

async fn serve_plain(fake: Arc<Fake>) -> String {
    let (l, addr) = listener().await;
    let incoming = futures::stream::unfold(l, |l| async move {
        let r = l.accept().await.map(|(s, _)| s);
        Some((r, l))
    });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(MedusaServer::new(Svc(fake)))
            .serve_with_incoming(incoming),
    );
    addr.to_string()
}

/// A server-side TLS stream tonic can serve (its own TLS support is not compiled in).
struct ServerTls(tokio_rustls::server::TlsStream<tokio::net::TcpStream>);

impl tonic::transport::server::Connected for ServerTls {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for ServerTls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ServerTls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.not_before = rcgen::date_time_ymd(2000, 1, 1);
    p.not_after = rcgen::date_time_ymd(2099, 12, 31);
    p.use_authority_key_identifier_extension = true;
    p
}

fn make_pki(ca_name: &str) -> Pki {
    let made = (|| -> Result<Pki, rcgen::Error> {
        let mut ca_params = params(ca_name);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        ca_params.use_authority_key_identifier_extension = false;
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
        let server_key = KeyPair::generate()?;
        let mut server = params("medusa");
        // Names a DNS name, not the loopback IP dialled: only the chain is checked.
        server.subject_alt_names = vec![SanType::DnsName("dc1.medusa.example".try_into()?)];
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server.signed_by(&server_key, &*ca)?;
        let client_key = KeyPair::generate()?;
        let mut client = params("k8ssandra-operator");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client.signed_by(&client_key, &*ca)?;
        Ok(Pki {
            ca: ca.pem(),
            server_cert: server_cert.pem(),
            server_key: server_key.serialize_pem(),
            client_cert: client_cert.pem(),
            client_key: client_key.serialize_pem(),
        })
    })();
    match made {
        Ok(p) => p,
        Err(e) => panic!("test PKI: {e}"),
    }
}

/// Mutual TLS: the client must present a certificate from the PKI's CA.
async fn serve_tls(fake: Arc<Fake>, pki: &Pki) -> String {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pki.ca.as_bytes()).flatten() {
        if let Err(e) = roots.add(cert) {
            panic!("CA: {e}");
        }
    }
    let verifier = match rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::clone(&provider),
    )
    .build()
    {
        Ok(v) => v,
        Err(e) => panic!("client verifier: {e}"),
    };
    let chain: Vec<_> = CertificateDer::pem_slice_iter(pki.server_cert.as_bytes())
        .filter_map(Result::ok)
        .collect();
    let key = match PrivateKeyDer::from_pem_slice(pki.server_key.as_bytes()) {
        Ok(k) => k,
        Err(e) => panic!("server key: {e}"),
    };
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| b.with_client_cert_verifier(verifier))
        .and_then(|b| b.with_single_cert(chain, key));
    let mut config = match config {
        Ok(c) => c,
        Err(e) => panic!("server config: {e}"),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let (l, addr) = listener().await;
    let accepted = futures::stream::unfold(l, |l| async move {
        let r = l.accept().await.map(|(s, _)| s);
        Some((r, l))
    });
    // Refused handshakes are dropped; the server keeps serving the others.
    let incoming = accepted
        .then(move |tcp| {
            let acceptor = acceptor.clone();
            async move {
                match tcp {
                    Ok(tcp) => acceptor.accept(tcp).await.map(ServerTls).ok(),
                    Err(_) => None,
                }
            }
        })
        .filter_map(|s| async move { s.map(Ok::<_, io::Error>) });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(MedusaServer::new(Svc(fake)))
            .serve_with_incoming(incoming),
    );
    addr.to_string()
}

fn plain(endpoint: &str) -> MedusaTarget {
    MedusaTarget {
        endpoint: endpoint.to_string(),
        tls: None,
    }
}

fn tls_target(endpoint: &str, pki: &Pki) -> MedusaTarget {
    MedusaTarget {
        endpoint: endpoint.to_string(),
        tls: Some(MedusaTls {
            ca_pem: pki.ca.clone().into_bytes(),
            cert_pem: pki.client_cert.clone().into_bytes(),
            key_pem: pki.client_key.clone().into_bytes(),
        }),
    }
}

#[tokio::test]
async fn every_call_maps_the_answer() {
    let fake = Arc::new(Fake::default());
    let t = plain(&serve_plain(Arc::clone(&fake)).await);
    let client = MedusaClient::new();

    let backups = client.get_backups(&t).await.map_err(|e| e.to_string());
    let backups = backups.unwrap_or_else(|e| panic!("GetBackups: {e}"));
    assert_eq!(backups.len(), 2);
    assert_eq!(backups[0], BackupSummary::from(summary("b1")));
    assert_eq!(
        backups[0].nodes[0].tokens,
        vec![-9_000_000_000_000_000_000, 42]
    );
    assert_eq!(backups[1].finish_time, 0);
    assert_eq!(
        backups[1].status,
        MedusaStatus::Unknown,
        "an unknown value is not a success"
    );

    let one = client.get_backup(&t, "b1").await.map_err(|e| e.to_string());
    assert_eq!(one.map(|b| b.total_objects), Ok(7));

    let status = client
        .backup_status(&t, "b1")
        .await
        .map_err(|e| e.to_string());
    assert_eq!(
        status,
        Ok(BackupStatus {
            start_time: "2026-12-07 10:00:00".into(),
            finish_time: "2026-12-07 10:01:00".into(),
            status: MedusaStatus::Success,
        })
    );

    let started = client.async_backup(&t, "b3", BackupMode::Full).await;
    assert_eq!(
        started.map_err(|e| e.to_string()),
        Ok(MedusaStatus::InProgress)
    );
    let started = client
        .async_backup(&t, "b4", BackupMode::Differential)
        .await;
    assert!(started.is_ok());
    assert_eq!(
        *fake.modes.lock().unwrap_or_else(|e| e.into_inner()),
        vec![
            pb::backup_request::Mode::Full as i32,
            pb::backup_request::Mode::Differential as i32
        ]
    );

    let purged = client.purge_backups(&t).await.map_err(|e| e.to_string());
    assert_eq!(
        purged,
        Ok(PurgeStats {
            backups_purged: 3,
            objects_purged: 40,
            total_purged_size: 5_000_000_000,
            objects_within_gc_grace: 2,
        })
    );

    let prepared = client.prepare_restore(&t, "dc1", "b1", "key-1").await;
    assert!(prepared.is_ok(), "{prepared:?}");
    assert_eq!(
        *fake.prepared.lock().unwrap_or_else(|e| e.into_inner()),
        vec![("dc1".to_string(), "b1".to_string(), "key-1".to_string())]
    );

    assert!(client.delete_backup(&t, "b1").await.is_ok());
    let running = client.delete_backup(&t, "running").await;
    assert!(
        matches!(
            running,
            Err(MedusaError::Call {
                op: "DeleteBackup",
                ..
            })
        ),
        "{running:?}"
    );
}

#[tokio::test]
async fn an_unknown_backup_is_not_found() {
    let t = plain(&serve_plain(Arc::default()).await);
    let client = MedusaClient::new();
    let status = client.backup_status(&t, "nope").await;
    assert!(
        matches!(&status, Err(MedusaError::NotFound(m)) if m.contains("nope")),
        "{status:?}"
    );
    let one = client.get_backup(&t, "nope").await;
    assert!(matches!(one, Err(MedusaError::NotFound(_))), "{one:?}");
}

#[tokio::test]
async fn a_hanging_call_fails_at_its_deadline_and_the_connection_stays_usable() {
    let t = plain(&serve_plain(Arc::default()).await);
    let deadline = Duration::from_millis(300);
    let client = MedusaClient::new().with_deadlines(MedusaDeadlines {
        status: deadline,
        ..MedusaDeadlines::default()
    });
    let hung = client.backup_status(&t, "hang").await;
    assert!(
        matches!(
            hung,
            Err(MedusaError::DeadlineExceeded { op: "BackupStatus", after }) if after == deadline
        ),
        "{hung:?}"
    );
    // Only the call failed: the cached connection serves the next one.
    assert!(client.backup_status(&t, "b1").await.is_ok());
}

#[tokio::test]
async fn nothing_listening_is_unavailable() {
    let (l, addr) = listener().await;
    drop(l);
    let result = MedusaClient::new()
        .get_backups(&plain(&addr.to_string()))
        .await;
    assert!(
        matches!(result, Err(MedusaError::Unavailable(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn mutual_tls_is_accepted_with_the_ca_and_checks_the_chain_not_the_name() {
    let pki = make_pki("medusa-ca");
    let t = tls_target(&serve_tls(Arc::default(), &pki).await, &pki);
    let result = MedusaClient::new().get_backups(&t).await;
    assert_eq!(result.map(|b| b.len()).map_err(|e| e.to_string()), Ok(2));
}

#[tokio::test]
async fn a_client_without_a_trusted_certificate_is_refused() {
    let pki = make_pki("medusa-ca");
    let endpoint = serve_tls(Arc::default(), &pki).await;
    let client = MedusaClient::new();

    // No certificate at all.
    let config = tls::client_config(pki.ca.as_bytes(), None).map(Arc::new);
    let config = config.unwrap_or_else(|e| panic!("config: {e}"));
    let channel = client.connect_lazy(&endpoint, Some(config));
    let channel = channel.unwrap_or_else(|e| panic!("channel: {e}"));
    let anonymous = RawClient::new(channel)
        .get_backups(pb::GetBackupsRequest {})
        .await;
    let anonymous = anonymous
        .map(|_| ())
        .map_err(|s| map_status("GetBackups", STATUS_DEADLINE, &s));
    assert!(
        matches!(anonymous, Err(MedusaError::Tls(_))),
        "{anonymous:?}"
    );

    // A certificate from another CA.
    let other = make_pki("another-ca");
    let mut t = tls_target(&endpoint, &pki);
    if let Some(tls) = t.tls.as_mut() {
        tls.cert_pem = other.client_cert.into_bytes();
        tls.key_pem = other.client_key.into_bytes();
    }
    let refused = client.get_backups(&t).await;
    assert!(matches!(refused, Err(MedusaError::Tls(_))), "{refused:?}");

    // Plain text to a TLS port.
    let refused = client.get_backups(&plain(&endpoint)).await;
    assert!(refused.is_err(), "{refused:?}");
}

#[tokio::test]
async fn a_server_from_another_ca_is_refused_as_tls() {
    let pki = make_pki("medusa-ca");
    let endpoint = serve_tls(Arc::default(), &pki).await;
    let mut t = tls_target(&endpoint, &pki);
    if let Some(tls) = t.tls.as_mut() {
        tls.ca_pem = make_pki("another-ca").ca.into_bytes();
    }
    let refused = MedusaClient::new().get_backups(&t).await;
    assert!(matches!(refused, Err(MedusaError::Tls(_))), "{refused:?}");
}

#[test]
fn unusable_tls_material_names_the_key_and_never_shows_it() {
    let pki = make_pki("medusa-ca");
    let secret =
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n";
    let t = MedusaTarget {
        endpoint: "127.0.0.1:1".into(),
        tls: Some(MedusaTls {
            ca_pem: pki.ca.into_bytes(),
            cert_pem: pki.client_cert.into_bytes(),
            key_pem: secret.as_bytes().to_vec(),
        }),
    };
    let err = match MedusaClient::new().channel(&t) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a garbage key was accepted"),
    };
    assert!(err.contains("tls.key"), "{err}");
    assert!(!err.contains("c2VjcmV0"), "{err}");
    let debug = format!("{t:?}");
    assert!(
        !debug.contains("c2VjcmV0") && debug.contains("redacted"),
        "{debug}"
    );

    let no_ca = MedusaTls {
        ca_pem: Vec::new(),
        cert_pem: Vec::new(),
        key_pem: Vec::new(),
    };
    let err = tls::client_config(&no_ca.ca_pem, None).map(|_| ());
    assert!(
        matches!(&err, Err(MedusaError::Tls(m)) if m.contains("ca.crt")),
        "{err:?}"
    );
}

#[test]
fn status_names_are_upstreams() {
    let json = serde_json::to_string(&MedusaStatus::InProgress).unwrap_or_default();
    assert_eq!(json, "\"IN_PROGRESS\"");
    assert_eq!(MedusaStatus::Success.to_string(), "SUCCESS");
}

/// Forwards TCP to `upstream` until frozen; then holds every connection open and silent,
/// like a pod whose node vanished (no FIN, no RST).
async fn freezable_proxy(upstream: String) -> (String, Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pump<R, W>(mut from: R, mut to: W, frozen: Arc<AtomicBool>)
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if frozen.load(Ordering::SeqCst) {
                // Swallow everything from now on, keeping the socket open.
                futures::future::pending::<()>().await;
            }
            if to.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    }

    let frozen = Arc::new(AtomicBool::new(false));
    let (l, addr) = listener().await;
    let flag = Arc::clone(&frozen);
    tokio::spawn(async move {
        while let Ok((client, _)) = l.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pump(cr, sw, Arc::clone(&flag)));
            tokio::spawn(pump(sr, cw, Arc::clone(&flag)));
        }
    });
    (addr.to_string(), frozen)
}

#[tokio::test]
async fn keepalive_fails_a_call_to_a_silent_peer_long_before_its_deadline() {
    let upstream = serve_plain(Arc::default()).await;
    let (endpoint, frozen) = freezable_proxy(upstream).await;
    let t = plain(&endpoint);
    // A purge-sized deadline: only keepalive can end the call early.
    let client = MedusaClient::new()
        .with_deadlines(MedusaDeadlines {
            status: Duration::from_secs(600),
            ..MedusaDeadlines::default()
        })
        .with_keepalive(Duration::from_millis(200), Duration::from_millis(500));
    // The connection is up and healthy first.
    assert!(client.backup_status(&t, "b1").await.is_ok());
    frozen.store(true, std::sync::atomic::Ordering::SeqCst);
    let outcome =
        tokio::time::timeout(Duration::from_secs(60), client.backup_status(&t, "hang")).await;
    match outcome {
        Ok(Err(MedusaError::Unavailable(_))) => {}
        other => panic!("expected the keepalive to fail the call: {other:?}"),
    }
}

#[test]
fn connections_are_shared_per_endpoint_and_tls_identity() {
    let pki = make_pki("medusa-ca");
    let rotated = make_pki("medusa-ca-2");
    let client = MedusaClient::new();
    let clone = client.clone();
    let cached = |c: &MedusaClient| c.channels.lock().map(|m| m.len()).unwrap_or_default();
    // Channels connect lazily: no server needed to build them (inside a runtime).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let rt = rt.unwrap_or_else(|e| panic!("runtime: {e}"));
    rt.block_on(async {
        for t in [
            plain("127.0.0.1:50051"),
            plain("127.0.0.1:50051"),
            tls_target("127.0.0.1:50051", &pki),
            tls_target("127.0.0.1:50051", &pki),
            tls_target("127.0.0.1:50051", &rotated),
            plain("127.0.0.2:50051"),
        ] {
            assert!(clone.channel(&t).is_ok());
        }
    });
    // Plain, the first identity, the rotated one, and the other pod: clones share them.
    assert_eq!(cached(&client), 4);
}
