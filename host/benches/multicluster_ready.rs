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

mod common;
#[path = "../tests/integration/support/mod.rs"]
mod support;

use std::cell::Cell;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cassandra_sim::CassandraState;
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, GroupVersionKind};
use kube::discovery::pinned_kind;
use serde_json::json;

use common::{DcSpec, Setup, ThreeClusters, dc_exists, dc_state, kc_manifest, median};
use support::{apply_yaml, wait_for};

fn manifest(ns: &str, name: &str) -> String {
    let dcs: Vec<DcSpec> = [("dc1", "cluster-1"), ("dc2", "cluster-2")]
        .iter()
        .map(|(dc, ctx)| DcSpec {
            name: dc.to_string(),
            ctx: ctx.to_string(),
            size: 3,
            cassandra_yaml: None,
        })
        .collect();
    kc_manifest(ns, name, &dcs, false)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; this harness has no options of its own.
    let runs: usize = std::env::var("MULTICLUSTER_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let env = ThreeClusters::start(Setup {
        nodes_per_cluster: 3,
        node_max_pods: 250,
        node_cpu: "32".into(),
        data_plane_policies: vec!["cassandra-datacenter"],
        operator_args: vec![],
        sim_config: json!({ "bootstrap_delay_ms": 0 }),
    })
    .await?;
    let (cp, a, b, sim) = (&env.cp, &env.a, &env.b, &env.sim);
    let kgvk = GroupVersionKind::gvk("k8ssandra.io", "v1alpha1", "K8ssandraCluster");
    let (kar, _) = pinned_kind(cp, &kgvk).await?;

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
            env.create_namespace(&ns).await?;
            let started = Instant::now();
            apply_yaml(cp, &manifest(&ns, &name), &ns).await?;
            let first: Cell<Option<f64>> = Cell::new(None);
            let both: Cell<Option<f64>> = Cell::new(None);
            wait_for(
                "both Ready and dc2 joined",
                Duration::from_secs(900),
                || async {
                    let (r1, _) = dc_state(a, &ns, "dc1").await;
                    if r1 && first.get().is_none() {
                        first.set(Some(started.elapsed().as_secs_f64()));
                    }
                    let (r2, join) = dc_state(b, &ns, "dc2").await;
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
                (!dc_exists(a, &ns, "dc1").await && !dc_exists(b, &ns, "dc2").await).then_some(())
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
    drop(env);
    Ok(())
}
