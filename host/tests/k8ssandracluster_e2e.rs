//! A K8ssandraCluster across two Kubernetes clusters, end to end: the control-plane operator
//! (cluster-0, with a ClientConfig for cluster-1) and a data-plane operator (cluster-1), both
//! running the built-in wasm policies, and the Cassandra simulator playing every node.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use cassandra_sim::{CassandraState, SimOptions, Simulator};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{DynamicObject, GroupVersionKind, PostParams};
use kube::discovery::pinned_kind;
use kube::{Api, Client};
use serde_json::json;

use k8ssandra_testenv::{TestEnv, TestEnvOptions};
use support::{Operator, apply_yaml, policy_wasm, wait_crd, wait_for};

const NS: &str = "k8ssandra-operator";

async fn dc_ready(client: &Client, dc: &str) -> bool {
    let gvk = GroupVersionKind::gvk("cassandra.datastax.com", "v1beta1", "CassandraDatacenter");
    let Ok((ar, _)) = pinned_kind(client, &gvk).await else {
        return false;
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &ar);
    let Ok(obj) = api.get(dc).await else {
        return false;
    };
    let ready = obj
        .data
        .pointer("/status/conditions")
        .and_then(|c| c.as_array())
        .is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
    ready && obj.data.pointer("/status/cassandraOperatorProgress") == Some(&json!("Ready"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_datacenters_in_two_kubernetes_clusters() -> Result<()> {
    let env = TestEnv::start(TestEnvOptions {
        clusters: 2,
        nodes_per_cluster: 3,
        ..Default::default()
    })
    .await?;
    let (a, b) = (env.cluster(0).client(), env.cluster(1).client());
    let crds = {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_k8ssandra-operator"))
            .arg("crds")
            .output()?;
        String::from_utf8(out.stdout)?
    };
    for c in [&a, &b] {
        apply_yaml(c, &crds, "default").await?;
        wait_crd(
            c,
            "cassandra.datastax.com",
            "v1beta1",
            "CassandraDatacenter",
        )
        .await?;
        Api::<Namespace>::all(c.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": NS}}))?,
            )
            .await?;
    }
    wait_crd(&a, "k8ssandra.io", "v1alpha1", "K8ssandraCluster").await?;

    let mut opts = SimOptions::default();
    opts.config.bootstrap_delay = Duration::from_millis(300);
    let sim = Simulator::start(
        opts,
        vec![
            (env.cluster(0).context_name().to_string(), a.clone()),
            (env.cluster(1).context_name().to_string(), b.clone()),
        ],
    )
    .await?;

    // cluster-1 registered with the control plane.
    Api::<Secret>::namespaced(a.clone(), NS)
        .create(
            &PostParams::default(),
            &Secret {
                metadata: kube::api::ObjectMeta {
                    name: Some("cluster-1-kubeconfig".into()),
                    ..Default::default()
                },
                data: Some(BTreeMap::from([(
                    "kubeconfig".to_string(),
                    ByteString(env.cluster(1).kubeconfig_yaml().as_bytes().to_vec()),
                )])),
                ..Default::default()
            },
        )
        .await?;
    apply_yaml(
        &a,
        &format!(
            "apiVersion: config.k8ssandra.io/v1beta1\nkind: ClientConfig\nmetadata:\n  name: cluster-1\n  namespace: {NS}\nspec:\n  contextName: cluster-1\n  kubeConfigSecret:\n    name: cluster-1-kubeconfig\n"
        ),
        NS,
    )
    .await?;

    let tmp = tempfile::tempdir()?;
    let mut operators = Vec::new();
    for (i, extra) in [(0usize, vec![]), (1, vec!["--control-plane=false"])] {
        let dir = tmp.path().join(format!("op{i}"));
        let plugins = dir.join("plugins");
        std::fs::create_dir_all(&plugins)?;
        for p in ["cassandra-datacenter", "k8ssandra-cluster"] {
            std::fs::copy(policy_wasm(p), plugins.join(format!("{p}.wasm")))?;
        }
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, env.cluster(i).kubeconfig_yaml())?;
        let mut args = vec!["--resync-seconds", "5"];
        args.extend(extra);
        let op = Operator::start(&kubeconfig, &plugins, &args)?;
        op.wait_ready(Duration::from_secs(120)).await?;
        operators.push(op);
    }

    let manifest =
        std::fs::read_to_string(support::workspace_root().join("examples/k8ssandra-cluster.yaml"))?;
    apply_yaml(&a, &manifest, NS).await?;

    wait_for(
        "dc1 (cluster-0) and dc2 (cluster-1) Ready",
        Duration::from_secs(300),
        || async { (dc_ready(&a, "dc1").await && dc_ready(&b, "dc2").await).then_some(()) },
    )
    .await
    .map_err(|e| {
        let logs: Vec<String> = operators
            .iter()
            .map(|o| {
                let l = o.log_text();
                let lines: Vec<&str> = l
                    .lines()
                    .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                    .collect();
                lines[lines.len().saturating_sub(15)..].join("\n")
            })
            .collect();
        e.context(format!(
            "violations: {:?}\n{}",
            sim.violations(),
            logs.join("\n---\n")
        ))
    })?;

    // One Cassandra cluster of 6 nodes in 2 DCs, across both Kubernetes clusters.
    wait_for(
        "6 NORMAL nodes in dc1 and dc2",
        Duration::from_secs(60),
        || async {
            let state = sim.state();
            let ring = state.cluster("demo")?;
            let mut per_dc: BTreeMap<String, usize> = BTreeMap::new();
            for n in ring
                .nodes
                .iter()
                .filter(|n| n.cassandra == CassandraState::Normal)
            {
                *per_dc.entry(n.datacenter.clone()).or_default() += 1;
            }
            (per_dc == BTreeMap::from([("dc1".to_string(), 3), ("dc2".to_string(), 3)]))
                .then_some(())
        },
    )
    .await?;

    // System keyspaces replicated {dc1: 3, dc2: 3}.
    wait_for(
        "system keyspaces on NetworkTopologyStrategy dc1:3 dc2:3",
        Duration::from_secs(120),
        || async {
            let state = sim.state();
            let ring = state.cluster("demo")?;
            let ok = ["system_auth", "system_distributed", "system_traces"]
                .iter()
                .all(|ks| {
                    ring.keyspaces.iter().any(|k| {
                        k.name == *ks
                            && k.replication
                                .get("class")
                                .is_some_and(|c| c.contains("NetworkTopologyStrategy"))
                            && k.replication.get("dc1").map(String::as_str) == Some("3")
                            && k.replication.get("dc2").map(String::as_str) == Some("3")
                    })
                });
            ok.then_some(())
        },
    )
    .await?;

    // The superuser Secret exists in both data planes.
    for c in [&a, &b] {
        let s = Api::<Secret>::namespaced(c.clone(), NS)
            .get("demo-superuser")
            .await?;
        assert!(s.data.unwrap_or_default().contains_key("password"));
    }

    // status.datacenters shows both.
    let gvk = GroupVersionKind::gvk("k8ssandra.io", "v1alpha1", "K8ssandraCluster");
    let (ar, _) = pinned_kind(&a, &gvk).await?;
    let k8c = Api::<DynamicObject>::namespaced_with(a.clone(), NS, &ar)
        .get("demo")
        .await?;
    let dcs = k8c
        .data
        .pointer("/status/datacenters")
        .and_then(|d| d.as_object())
        .cloned()
        .unwrap_or_default();
    assert!(
        dcs.contains_key("dc1") && dcs.contains_key("dc2"),
        "status.datacenters: {dcs:?}"
    );
    assert!(
        sim.violations().is_empty(),
        "violations: {:?}",
        sim.violations()
    );
    Ok(())
}
