//! The host's management-API mutual TLS (`managementApiAuth.manual`) against a real API
//! server and a server that requires a client certificate: the route of a pod comes from
//! the pod (does it serve TLS?) and its CassandraDatacenter's client Secret; a missing
//! Secret refuses every call with a message naming the field, and nothing is sent.

use crate::support;

use std::collections::BTreeMap;

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
use support::tls::{pki, serve};
use support::{apply_yaml, create_namespace, install_crds};

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
