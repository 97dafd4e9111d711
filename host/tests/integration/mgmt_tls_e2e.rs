//! Management-API mutual TLS end to end: the real operator, the cassandra-datacenter
//! policy, a testenv cluster and the simulator serving HTTPS on the pods set up for it.
//! - a datacenter with `managementApiAuth.manual` becomes Ready, every call to its pods
//!   over mutual TLS, no Cassandra rule broken;
//! - a datacenter whose client Secret is missing says so in its Ready condition (the
//!   Secret named), and nothing is sent to its pods: no node is started; once the Secret
//!   exists it carries on by itself;
//! - a datacenter whose server Secret comes later: its pods' management API comes up once
//!   the Secret exists (as a kubelet mounts it then), and the datacenter becomes Ready.

use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{DynamicObject, ListParams, ObjectMeta, PostParams};
use kube::{Api, Client};

use cassandra_sim::{SimOptions, Simulator};
use k8ssandra_testenv::{TestEnv, TestEnvOptions};
use support::tls::{Pem, pki};
use support::{
    Operator, apply_yaml, create_namespace, datacenters, install_crds, normal_nodes, plugin_dir,
    sim_starts, tail, wait_for, write_kubeconfig,
};

const NS: &str = "mtls";

fn dc_manifest(name: &str, cluster: &str, client_secret: &str) -> String {
    dc_manifest_with(name, cluster, client_secret, "mgmt-server")
}

fn dc_manifest_with(name: &str, cluster: &str, client_secret: &str, server_secret: &str) -> String {
    format!(
        r#"
apiVersion: cassandra.datastax.com/v1beta1
kind: CassandraDatacenter
metadata:
  name: {name}
  namespace: {NS}
spec:
  clusterName: {cluster}
  serverType: cassandra
  serverVersion: "4.1.5"
  size: 3
  managementApiAuth:
    manual:
      clientSecretName: {client_secret}
      serverSecretName: {server_secret}
  racks:
    - name: r1
      zone: zone-a
    - name: r2
      zone: zone-b
    - name: r3
      zone: zone-c
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

async fn create_tls_secret(
    client: &Client,
    name: &str,
    ca: &str,
    cert: &str,
    key: &str,
) -> Result<()> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let data = BTreeMap::from([
        ("ca.crt".to_string(), ByteString(ca.as_bytes().to_vec())),
        ("tls.crt".to_string(), ByteString(cert.as_bytes().to_vec())),
        ("tls.key".to_string(), ByteString(key.as_bytes().to_vec())),
    ]);
    secrets
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    ..Default::default()
                },
                type_: Some("kubernetes.io/tls".to_string()),
                data: Some(data),
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("creating Secret {name}"))?;
    Ok(())
}

async fn client_secret(client: &Client, name: &str, pem: &Pem) -> Result<()> {
    create_tls_secret(client, name, &pem.ca, &pem.client_cert, &pem.client_key).await
}

/// `result`, or its error with the datacenter's Ready condition and the operator's log.
async fn explain<T>(
    result: Result<T>,
    dcs: &Api<DynamicObject>,
    name: &str,
    sim: &cassandra_sim::SimHandle,
    op: &Operator,
) -> Result<T> {
    match result {
        Ok(v) => Ok(v),
        Err(e) => Err(e.context(format!(
            "{name} Ready {:?}\nviolations {:?}\noperator:\n{}",
            ready_condition(dcs, name).await,
            sim.violations(),
            tail(&op.log_text(), 40)
        ))),
    }
}

/// The Ready condition of a datacenter: (status, reason, message).
async fn ready_condition(dcs: &Api<DynamicObject>, name: &str) -> Option<(String, String, String)> {
    let dc = dcs.get(name).await.ok()?;
    let conds = dc.data.pointer("/status/conditions")?.as_array()?.clone();
    let ready = conds.iter().find(|c| c["type"] == "Ready")?;
    let s = |k: &str| ready[k].as_str().unwrap_or_default().to_string();
    Some((s("status"), s("reason"), s("message")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_tls_datacenter_is_ready_over_mutual_tls_and_a_missing_client_secret_is_reported()
-> Result<()> {
    let env = TestEnv::start(TestEnvOptions {
        clusters: 1,
        // One Cassandra pod per worker (the template's anti-affinity), three datacenters.
        nodes_per_cluster: 9,
        ..Default::default()
    })
    .await?;
    let client = env.cluster(0).client();
    install_crds(&client, &k8ssandra_api::all_crds_yaml()).await?;
    create_namespace(&client, NS).await?;
    let pem = pki()?;
    create_tls_secret(
        &client,
        "mgmt-server",
        &pem.ca,
        &pem.server_cert,
        &pem.server_key,
    )
    .await?;
    client_secret(&client, "mgmt-client", &pem).await?;

    let mut opts = SimOptions::default();
    opts.config.bootstrap_delay = Duration::from_millis(300);
    let sim = Simulator::start(
        opts,
        vec![(env.cluster(0).context_name().to_string(), client.clone())],
    )
    .await?;
    let tmp = tempfile::tempdir()?;
    let kubeconfig = write_kubeconfig(tmp.path(), env.cluster(0))?;
    let plugins = plugin_dir(&tmp.path().join("plugins"), &["cassandra-datacenter"])?;
    let op = Operator::start(&kubeconfig, &plugins, &["--resync-seconds", "2"])?;
    op.wait_ready(Duration::from_secs(60)).await?;
    let dcs = datacenters(&client, NS).await?;

    // 1. Both Secrets present: Ready, every call over mutual TLS.
    apply_yaml(&client, &dc_manifest("dc1", "secure", "mgmt-client"), NS).await?;
    let ready = wait_for("dc1 Ready over TLS", Duration::from_secs(240), || async {
        (support::dc_ready(&dcs, "dc1").await && normal_nodes(&sim, "secure") == 3).then_some(())
    })
    .await;
    explain(ready, &dcs, "dc1", &sim, &op).await?;
    assert!(
        sim.violations().is_empty(),
        "violations: {:?}",
        sim.violations()
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let dc1_pods = pods
        .list(&ListParams::default().labels("cassandra.datastax.com/datacenter=dc1"))
        .await?;
    assert_eq!(dc1_pods.items.len(), 3);
    for p in &dc1_pods.items {
        let envs: Vec<String> = p
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|c| c.name == "cassandra"))
            .and_then(|c| c.env.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert!(
            envs.iter().any(|e| e == "MGMT_API_TLS_CERT_FILE"),
            "the pod template sets the management API up for TLS: {envs:?}"
        );
    }
    let requests = sim.requests();
    let dc1_requests: Vec<_> = requests
        .iter()
        .filter(|r| r.pod.namespace == NS && r.pod.name.starts_with("secure-dc1-"))
        .collect();
    assert!(
        dc1_requests
            .iter()
            .any(|r| r.path == "/api/v0/lifecycle/start"),
        "the nodes were started through the management API: {dc1_requests:?}"
    );
    assert!(
        dc1_requests.iter().all(|r| r.tls),
        "every call to dc1 over mutual TLS: {:?}",
        dc1_requests.iter().filter(|r| !r.tls).collect::<Vec<_>>()
    );

    // 2. The client Secret missing: a condition naming it, and nothing sent.
    apply_yaml(&client, &dc_manifest("dc2", "lacking", "absent-client"), NS).await?;
    let reported = wait_for(
        "dc2 reports its missing client Secret",
        Duration::from_secs(180),
        || async {
            ready_condition(&dcs, "dc2")
                .await
                .filter(|(_, _, m)| m.contains("absent-client"))
        },
    )
    .await;
    let (status, reason, message) = explain(reported, &dcs, "dc2", &sim, &op).await?;
    assert_eq!(status, "False", "{reason}: {message}");
    assert_eq!(reason, "ManagementApiFailed", "{message}");
    assert!(
        message.contains("spec.managementApiAuth.manual.clientSecretName"),
        "the message names the field: {message}"
    );
    // Several observation rounds later, still nothing sent to dc2's pods and no node
    // started (the simulator's TLS listeners record every request that reaches them).
    let before = sim.requests().len();
    wait_for(
        "more management-API traffic to dc1",
        Duration::from_secs(60),
        || {
            let now = sim.requests().len();
            async move { (now >= before + 10).then_some(()) }
        },
    )
    .await?;
    let dc2_requests: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.pod.name.starts_with("lacking-dc2-"))
        .collect();
    assert!(
        dc2_requests.is_empty(),
        "nothing sent to dc2: {dc2_requests:?}"
    );
    let dc2_starts: Vec<_> = sim_starts(&sim)
        .into_iter()
        .filter(|h| h.cluster == "lacking")
        .collect();
    assert!(dc2_starts.is_empty(), "no dc2 node started: {dc2_starts:?}");
    assert!(!support::dc_ready(&dcs, "dc2").await);

    // 3. The Secret appears: dc2 carries on by itself, over mutual TLS.
    client_secret(&client, "absent-client", &pem).await?;
    let recovered = wait_for(
        "dc2 Ready once its client Secret exists",
        Duration::from_secs(240),
        || async {
            (support::dc_ready(&dcs, "dc2").await && normal_nodes(&sim, "lacking") == 3)
                .then_some(())
        },
    )
    .await;
    explain(recovered, &dcs, "dc2", &sim, &op).await?;
    assert!(
        sim.violations().is_empty(),
        "violations: {:?}",
        sim.violations()
    );
    assert!(
        sim.requests()
            .iter()
            .filter(|r| r.pod.name.starts_with("lacking-dc2-"))
            .all(|r| r.tls)
    );

    // 4. The server Secret comes after the pods.
    apply_yaml(
        &client,
        &dc_manifest_with("dc3", "late", "mgmt-client", "late-server"),
        NS,
    )
    .await?;
    let pods_up = wait_for(
        "dc3's pods have addresses",
        Duration::from_secs(120),
        || async {
            let list = pods
                .list(&ListParams::default().labels("cassandra.datastax.com/datacenter=dc3"))
                .await
                .ok()?;
            (list.items.len() == 3
                && list
                    .items
                    .iter()
                    .all(|p| p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some()))
            .then_some(())
        },
    )
    .await;
    explain(pods_up, &dcs, "dc3", &sim, &op).await?;
    assert!(
        sim.requests()
            .iter()
            .all(|r| !r.pod.name.starts_with("late-dc3-")),
        "no management API answers without its server certificate"
    );
    create_tls_secret(
        &client,
        "late-server",
        &pem.ca,
        &pem.server_cert,
        &pem.server_key,
    )
    .await?;
    let late = wait_for(
        "dc3 Ready once its server Secret exists",
        Duration::from_secs(240),
        || async {
            (support::dc_ready(&dcs, "dc3").await && normal_nodes(&sim, "late") == 3).then_some(())
        },
    )
    .await;
    explain(late, &dcs, "dc3", &sim, &op).await?;
    assert!(
        sim.violations().is_empty(),
        "violations: {:?}",
        sim.violations()
    );
    Ok(())
}
