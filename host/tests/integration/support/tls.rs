//! Test PKI and a TLS server for the management-API mutual-TLS tests: a CA, a server
//! certificate naming a DNS name (not the IP, as cass-operator's set-ups issue them) and a
//! client certificate, all made per run; nothing is committed.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct Pem {
    pub ca: String,
    pub server_cert: String,
    pub server_key: String,
    pub client_cert: String,
    pub client_key: String,
}

fn params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.not_before = rcgen::date_time_ymd(2000, 1, 1);
    p.not_after = rcgen::date_time_ymd(2099, 12, 31);
    p.use_authority_key_identifier_extension = true;
    p
}

pub fn pki() -> Result<Pem, rcgen::Error> {
    // Nothing committed: every run makes its own CA and keys.
    let mut ca_params = params("mgmt-api-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.use_authority_key_identifier_extension = false;
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

    let server_key = KeyPair::generate()?;
    let mut server = params("cassandra");
    server.subject_alt_names = vec![SanType::DnsName("dc1.cassandra.example".try_into()?)];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server.signed_by(&server_key, &*ca)?;

    let client_key = KeyPair::generate()?;
    let mut client = params("k8ssandra-operator");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client.signed_by(&client_key, &*ca)?;

    Ok(Pem {
        ca: ca.pem(),
        server_cert: server_cert.pem(),
        server_key: server_key.serialize_pem(),
        client_cert: client_cert.pem(),
        client_key: client_key.serialize_pem(),
    })
}

/// Serves `200 OK` to any request over mutual TLS on `ip`, returning the port.
pub async fn serve(ip: &str, pem: &Pem) -> u16 {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pem.ca.as_bytes()).flatten() {
        if let Err(e) = roots.add(cert) {
            panic!("CA certificate: {e}");
        }
    }
    let verifier =
        match WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .build()
        {
            Ok(v) => v,
            Err(e) => panic!("client verifier: {e}"),
        };
    let chain: Vec<_> =
        rustls::pki_types::CertificateDer::pem_slice_iter(pem.server_cert.as_bytes())
            .filter_map(Result::ok)
            .collect();
    let key = match PrivateKeyDer::from_pem_slice(pem.server_key.as_bytes()) {
        Ok(k) => k,
        Err(e) => panic!("server key: {e}"),
    };
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| b.with_client_cert_verifier(verifier))
        .and_then(|b| b.with_single_cert(chain, key));
    let config = match config {
        Ok(c) => Arc::new(c),
        Err(e) => panic!("server config: {e}"),
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = match tokio::net::TcpListener::bind((ip, 0)).await {
        Ok(l) => l,
        Err(e) => panic!("bind {ip}: {e}"),
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A refused handshake is what some tests expect: drop it.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nOK",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    port
}
