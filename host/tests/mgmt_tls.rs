//! The host's management-API mutual TLS (`managementApiAuth.manual`) against a real API
//! server and a server that requires a client certificate: the route of a pod comes from
//! the pod (does it serve TLS?) and its CassandraDatacenter's client Secret; a missing
//! Secret refuses every call with a message naming the field, and nothing is sent.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8ssandra_host::clusters::ClusterRegistry;
use k8ssandra_host::dataplane::{
    DataplaneError, ManagementApi, ManagementApiConfig, TLS_CERT_ENV, TlsResolver,
};
use k8ssandra_host::plugin::bindings::NodeRef;
use k8ssandra_testenv::{TestEnv, TestEnvOptions};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use rustls::server::WebPkiClientVerifier;
use support::{apply_yaml, create_namespace, install_crds};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Pem {
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

fn pki() -> Result<Pem, rcgen::Error> {
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
async fn serve(ip: &str, pem: &Pem) -> u16 {
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

fn dc(name: &str, client_secret: &str) -> String {
    format!(
        r#"
apiVersion: cassandra.datastax.com/v1beta1
kind: CassandraDatacenter
metadata:
  name: {name}
  namespace: tls
spec:
  clusterName: demo
  serverType: cassandra
  serverVersion: "4.1.5"
  size: 1
  managementApiAuth:
    manual:
      clientSecretName: {client_secret}
      serverSecretName: server-certs
  storageConfig:
    cassandraDataVolumeClaimSpec:
      storageClassName: standard
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 1Gi
"#
    )
}

fn pod(name: &str, dc: &str, tls: bool) -> Result<Pod> {
    let env = if tls {
        serde_json::json!([{"name": TLS_CERT_ENV, "value": "/management-api-certs/tls.crt"}])
    } else {
        serde_json::json!([])
    };
    Ok(serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"cassandra.datastax.com/datacenter": dc}},
        "spec": {"containers": [{"name": "cassandra", "image": "cassandra", "env": env}]}
    }))?)
}

fn node(pod: &str) -> NodeRef {
    NodeRef {
        cluster: String::new(),
        namespace: "tls".into(),
        pod: pod.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datacenter_client_secret_gives_mutual_tls_or_a_clear_refusal() -> Result<()> {
    let pem = pki()?;
    let env = TestEnv::start(TestEnvOptions {
        clusters: 1,
        nodes_per_cluster: 1,
        ..Default::default()
    })
    .await?;
    let client = env.cluster(0).client();
    install_crds(&client, &k8ssandra_api::all_crds_yaml()).await?;
    create_namespace(&client, "tls").await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "tls");
    secrets
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some("client-certs".into()),
                    ..Default::default()
                },
                data: Some(BTreeMap::from([
                    (
                        "ca.crt".to_string(),
                        ByteString(pem.ca.clone().into_bytes()),
                    ),
                    (
                        "tls.crt".to_string(),
                        ByteString(pem.client_cert.clone().into_bytes()),
                    ),
                    (
                        "tls.key".to_string(),
                        ByteString(pem.client_key.clone().into_bytes()),
                    ),
                ])),
                ..Default::default()
            },
        )
        .await?;
    apply_yaml(&client, &dc("dc1", "client-certs"), "tls").await?;
    apply_yaml(&client, &dc("dc2", "missing-certs"), "tls").await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "tls");
    for (name, dc, tls) in [
        ("p1", "dc1", true),
        ("p2", "dc2", true),
        ("p3", "dc1", false),
    ] {
        pods.create(&PostParams::default(), &pod(name, dc, tls)?)
            .await?;
    }

    let (ip1, ip2, ip3) = ("127.0.19.11", "127.0.19.12", "127.0.19.13");
    let port = serve(ip1, &pem).await;
    let config = ManagementApiConfig {
        port,
        attempts: 1,
        ..Default::default()
    };
    let api = ManagementApi::new(config.clone())?;
    let clusters = ClusterRegistry::new(client.clone(), "test");
    let resolver = TlsResolver::new(clusters, config, api.routes());

    // Before resolving, plain HTTP to a TLS server fails.
    assert!(api.liveness(ip1).await.is_err());
    resolver
        .resolve(&[
            (node("p1"), Some(ip1.to_string())),
            (node("p2"), Some(ip2.to_string())),
            (node("p3"), Some(ip3.to_string())),
        ])
        .await;
    // dc1's pod: mutual TLS with the client Secret, the server verified against its CA.
    api.liveness(ip1).await?;
    // dc2's pod: its client Secret is missing; the call fails naming the field, unsent.
    match api.liveness(ip2).await {
        Err(DataplaneError::Tls(message)) => {
            assert!(
                message.contains("spec.managementApiAuth.manual.clientSecretName")
                    && message.contains("tls/missing-certs")
                    && message.contains("not found"),
                "{message}"
            );
        }
        other => panic!("dc2 must be refused before sending: {other:?}"),
    }
    // A pod without the TLS env keeps plain HTTP.
    assert_eq!(api.base_url(ip3), format!("http://{ip3}:{port}"));
    Ok(())
}
