//! Whole-system benchmark across Kubernetes clusters: `kubectl apply` of a K8ssandraCluster
//! with one datacenter of 3 nodes (3 racks) in each of two data-plane clusters → both
//! CassandraDatacenters Ready, for several simulated bootstrap delays. Three testenv
//! clusters: the control plane (cluster-0, k8ssandra-cluster policy, ClientConfigs for the
//! other two) and data planes A and B (cassandra-datacenter policy each), with the real
//! operator binary and the Cassandra simulator, as in `tests/k8ssandracluster_e2e.rs`.
//!
//! Reported per run: when dc1 (A) is Ready, when both are Ready (6 NORMAL nodes in the
//! ring), and when dc2 has also finished joining (its nodes rebuilt from dc1). Datacenters
//! are created one after the other (see the k8ssandra-cluster policy's rollout order), so
//! the second column is roughly twice the first.
//!
//! Run: `cargo bench -p k8ssandra-host --bench multicluster_ready`
//! (env `MULTICLUSTER_BENCH_RUNS`, default 3). It measures; nothing here asserts a duration.

#[path = "../tests/integration/support/mod.rs"]
mod support;

use std::cell::Cell;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cassandra_sim::{CassandraState, SimOptions, Simulator};
use kube::api::{DeleteParams, DynamicObject, GroupVersionKind};
use kube::discovery::pinned_kind;
use kube::{Api, Client};
use serde_json::json;

use k8ssandra_testenv::{TestEnv, TestEnvOptions};
use support::{
    Operator, add_client_config, apply_yaml, create_namespace, install_crds, wait_crd, wait_for,
};

const OP_NS: &str = "k8ssandra-operator";

fn manifest(ns: &str, name: &str) -> String {
    let mut out = format!(
        r#"apiVersion: k8ssandra.io/v1alpha1
kind: K8ssandraCluster
metadata:
  name: {name}
  namespace: {ns}
spec:
  cassandra:
    serverVersion: "4.1.5"
    storageConfig:
      cassandraDataVolumeClaimSpec:
        storageClassName: standard
        accessModes: [ReadWriteOnce]
        resources: {{requests: {{storage: 1Gi}}}}
    datacenters:
"#
    );
    for (dc, ctx) in [("dc1", "cluster-1"), ("dc2", "cluster-2")] {
        out.push_str(&format!(
            "      - metadata: {{name: {dc}}}\n        k8sContext: {ctx}\n        size: 3\n        racks: [{{name: r1, nodeAffinityLabels: {{topology.kubernetes.io/zone: zone-a}}}}, {{name: r2, nodeAffinityLabels: {{topology.kubernetes.io/zone: zone-b}}}}, {{name: r3, nodeAffinityLabels: {{topology.kubernetes.io/zone: zone-c}}}}]\n"
        ));
    }
    out
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

/// (Ready, join-state) of one CassandraDatacenter.
async fn dc_state(client: &Client, ns: &str, name: &str) -> (bool, Option<String>) {
    let gvk = GroupVersionKind::gvk("cassandra.datastax.com", "v1beta1", "CassandraDatacenter");
    let Ok((ar, _)) = pinned_kind(client, &gvk).await else {
        return (false, None);
    };
    let Ok(Some(dc)) = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &ar)
        .get_opt(name)
        .await
    else {
        return (false, None);
    };
    let ready = dc
        .data
        .pointer("/status/conditions")
        .and_then(|c| c.as_array())
        .is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
        && dc.data.pointer("/status/cassandraOperatorProgress") == Some(&json!("Ready"));
    let join = dc
        .metadata
        .annotations
        .and_then(|a| a.get("k8ssandra.io/join-state").cloned());
    (ready, join)
}

async fn dc_exists(client: &Client, ns: &str, name: &str) -> bool {
    let gvk = GroupVersionKind::gvk("cassandra.datastax.com", "v1beta1", "CassandraDatacenter");
    let Ok((ar, _)) = pinned_kind(client, &gvk).await else {
        return false;
    };
    matches!(
        Api::<DynamicObject>::namespaced_with(client.clone(), ns, &ar)
            .get_opt(name)
            .await,
        Ok(Some(_))
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; this harness has no options of its own.
    let runs: usize = std::env::var("MULTICLUSTER_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let env = TestEnv::start(TestEnvOptions {
        clusters: 3,
        nodes_per_cluster: 3,
        ..Default::default()
    })
    .await?;
    let (cp, a, b) = (
        env.cluster(0).client(),
        env.cluster(1).client(),
        env.cluster(2).client(),
    );
    for c in [&cp, &a, &b] {
        install_crds(c, &k8ssandra_api::all_crds_yaml()).await?;
        create_namespace(c, OP_NS).await?;
    }
    wait_crd(&cp, "k8ssandra.io", "v1alpha1", "K8ssandraCluster").await?;
    wait_crd(&cp, "config.k8ssandra.io", "v1beta1", "ClientConfig").await?;
    for i in [1usize, 2] {
        let ctx = env.cluster(i).context_name().to_string();
        add_client_config(
            &cp,
            OP_NS,
            &ctx,
            &format!("{ctx}-kubeconfig"),
            env.cluster(i).kubeconfig_yaml(),
        )
        .await?;
    }

    let mut sim_opts = SimOptions::default();
    sim_opts.config.bootstrap_delay = Duration::ZERO;
    let sim = Simulator::start(
        sim_opts,
        vec![
            (env.cluster(1).context_name().to_string(), a.clone()),
            (env.cluster(2).context_name().to_string(), b.clone()),
        ],
    )
    .await?;

    let tmp = tempfile::tempdir()?;
    let mut operators = Vec::new();
    for (i, policy, extra) in [
        (0usize, "k8ssandra-cluster", vec![]),
        (1, "cassandra-datacenter", vec!["--control-plane=false"]),
        (2, "cassandra-datacenter", vec!["--control-plane=false"]),
    ] {
        let op = Operator::start_for(
            &tmp.path().join(format!("op{i}")),
            env.cluster(i),
            &[policy],
            &extra,
        )?;
        op.wait_ready(Duration::from_secs(120)).await?;
        operators.push(op);
    }
    // Both ClientConfigs turned into clients before the clock starts.
    wait_for(
        "both data planes registered",
        Duration::from_secs(60),
        || async {
            let configured = operators[0]
                .log_text()
                .matches("cluster client configured")
                .count();
            (configured >= 2).then_some(())
        },
    )
    .await?;
    let kgvk = GroupVersionKind::gvk("k8ssandra.io", "v1alpha1", "K8ssandraCluster");
    let (kar, _) = pinned_kind(&cp, &kgvk).await?;

    println!(
        "| bootstrap delay | run | apply → dc1 Ready (s) | apply → both Ready (s) | apply → dc2 joined (s) |"
    );
    println!("|---|---|---|---|---|");
    let mut run_id = 0;
    for delay_ms in [0u64, 2000] {
        sim.update_config(&serde_json::from_value(
            json!({ "bootstrap_delay_ms": delay_ms }),
        )?);
        let (mut firsts, mut totals, mut joins) = (Vec::new(), Vec::new(), Vec::new());
        for run in 0..runs {
            run_id += 1;
            let ns = format!("mbench-{run_id}");
            let name = format!("m{run_id}");
            for c in [&cp, &a, &b] {
                create_namespace(c, &ns).await?;
            }
            let started = Instant::now();
            apply_yaml(&cp, &manifest(&ns, &name), &ns).await?;
            let first: Cell<Option<f64>> = Cell::new(None);
            let both: Cell<Option<f64>> = Cell::new(None);
            wait_for(
                "both Ready and dc2 joined",
                Duration::from_secs(900),
                || async {
                    let (r1, _) = dc_state(&a, &ns, "dc1").await;
                    if r1 && first.get().is_none() {
                        first.set(Some(started.elapsed().as_secs_f64()));
                    }
                    let (r2, join) = dc_state(&b, &ns, "dc2").await;
                    let nodes = sim.state().cluster(&name).map_or(0, |c| {
                        c.nodes
                            .iter()
                            .filter(|n| n.cassandra == CassandraState::Normal)
                            .count()
                    });
                    if r1 && r2 && nodes == 6 && both.get().is_none() {
                        both.set(Some(started.elapsed().as_secs_f64()));
                    }
                    (both.get().is_some() && join.as_deref() == Some("done")).then_some(())
                },
            )
            .await
            .context("the datacenters never became Ready")?;
            let joined = started.elapsed().as_secs_f64();
            let (first, both) = (
                first.get().unwrap_or(f64::NAN),
                both.get().unwrap_or(f64::NAN),
            );
            println!("| {delay_ms} ms | {run} | {first:.1} | {both:.1} | {joined:.1} |");
            firsts.push(first);
            totals.push(both);
            joins.push(joined);
            // Clean up before the next run, so runs do not overlap.
            Api::<DynamicObject>::namespaced_with(cp.clone(), &ns, &kar)
                .delete(&name, &DeleteParams::default())
                .await?;
            wait_for("datacenters deleted", Duration::from_secs(300), || async {
                (!dc_exists(&a, &ns, "dc1").await && !dc_exists(&b, &ns, "dc2").await).then_some(())
            })
            .await?;
        }
        println!(
            "| {delay_ms} ms | median of {runs} | {:.1} | {:.1} | {:.1} |",
            median(&mut firsts),
            median(&mut totals),
            median(&mut joins)
        );
    }
    drop(operators);
    Ok(())
}
