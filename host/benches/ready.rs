//! Whole-system benchmark: `kubectl apply` of a CassandraDatacenter (3 racks × 3 nodes) →
//! Ready, with the real operator binary, the real wasm policy, a testenv cluster and the
//! Cassandra simulator, for several simulated bootstrap delays. Also reports the gap
//! between one node becoming ready and the next start (the operator's own reaction time),
//! read off the simulator's history.
//!
//! Run: `cargo bench -p k8ssandra-host --bench ready` (env `READY_BENCH_RUNS`, default 3).
//! It measures; nothing here asserts a duration.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cassandra_sim::{CassandraState, SimOptions, Simulator};
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, GroupVersionKind};
use kube::discovery::pinned_kind;
use serde_json::json;

use k8ssandra_testenv::{TestEnv, TestEnvOptions};
use support::{
    Operator, apply_yaml, create_namespace, install_crds, plugin_dir, wait_for, write_kubeconfig,
};

fn manifest(ns: &str, name: &str) -> String {
    format!(
        r#"
apiVersion: cassandra.datastax.com/v1beta1
kind: CassandraDatacenter
metadata:
  name: {name}
  namespace: {ns}
spec:
  clusterName: {name}
  serverType: cassandra
  serverVersion: "4.1.5"
  size: 9
  racks: [{{name: r1, zone: zone-a}}, {{name: r2, zone: zone-b}}, {{name: r3, zone: zone-c}}]
  storageConfig:
    cassandraDataVolumeClaimSpec:
      storageClassName: standard
      accessModes: [ReadWriteOnce]
      resources: {{requests: {{storage: 1Gi}}}}
"#
    )
}

fn ms(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; this harness has no options of its own.
    let runs: usize = std::env::var("READY_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let env = TestEnv::start(TestEnvOptions {
        clusters: 1,
        nodes_per_cluster: 9,
        ..Default::default()
    })
    .await?;
    let client = env.cluster(0).client();
    install_crds(&client, &k8ssandra_api::all_crds_yaml()).await?;
    let tmp = tempfile::tempdir()?;
    let kubeconfig = write_kubeconfig(tmp.path(), env.cluster(0))?;
    let plugins = plugin_dir(&tmp.path().join("plugins"), &["cassandra-datacenter"])?;
    let mut sim_opts = SimOptions::default();
    sim_opts.config.bootstrap_delay = Duration::ZERO;
    let sim = Simulator::start(
        sim_opts,
        vec![(env.cluster(0).context_name().to_string(), client.clone())],
    )
    .await?;
    let op = Operator::start(&kubeconfig, &plugins, &[])?;
    op.wait_ready(Duration::from_secs(60)).await?;
    let gvk = GroupVersionKind::gvk("cassandra.datastax.com", "v1beta1", "CassandraDatacenter");
    let (ar, _) = pinned_kind(&client, &gvk).await?;

    println!("| bootstrap delay | run | apply → Ready (s) | median ready → next start (ms) |");
    println!("|---|---|---|---|");
    let mut run_id = 0;
    for delay_ms in [0u64, 2000] {
        sim.update_config(&serde_json::from_value(
            json!({ "bootstrap_delay_ms": delay_ms }),
        )?);
        let mut totals = Vec::new();
        let mut gaps_all = Vec::new();
        for run in 0..runs {
            run_id += 1;
            let ns = format!("bench-{run_id}");
            let name = format!("b{run_id}");
            create_namespace(&client, &ns).await?;
            let dcs: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
            let started = Instant::now();
            apply_yaml(&client, &manifest(&ns, &name), &ns).await?;
            wait_for("Ready", Duration::from_secs(600), || async {
                let dc = dcs.get(&name).await.ok()?;
                let ready = dc
                    .data
                    .pointer("/status/conditions")?
                    .as_array()?
                    .iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True");
                let nodes = sim.state().cluster(&name).map_or(0, |c| {
                    c.nodes
                        .iter()
                        .filter(|n| n.cassandra == CassandraState::Normal)
                        .count()
                });
                (ready && nodes == 9).then_some(())
            })
            .await
            .context("datacenter never became Ready")?;
            let total = started.elapsed().as_secs_f64();
            // Starts of this Cassandra cluster, in order; a node is ready `delay` after its
            // start, so the operator's reaction is the next start minus that.
            let mut starts: Vec<i64> = sim
                .history()
                .into_iter()
                .filter(|h| h.action == "start" && h.cluster == name)
                .filter_map(|h| ms(&h.time))
                .collect();
            starts.sort();
            let mut gaps: Vec<f64> = starts
                .windows(2)
                .map(|w| (w[1] - w[0] - delay_ms as i64) as f64)
                .collect();
            let gap = median(&mut gaps.clone());
            gaps_all.append(&mut gaps);
            println!("| {delay_ms} ms | {run} | {total:.1} | {gap:.0} |");
            totals.push(total);
            dcs.delete(&name, &DeleteParams::default()).await?;
        }
        println!(
            "| {delay_ms} ms | median of {runs} | {:.1} | {:.0} |",
            median(&mut totals),
            median(&mut gaps_all)
        );
    }
    Ok(())
}
