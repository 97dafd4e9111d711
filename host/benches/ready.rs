//! Whole-system benchmark: `kubectl apply` of a CassandraDatacenter → Ready, with the real
//! operator binary, the real wasm policy, a testenv cluster and the Cassandra simulator:
//! 9 nodes (3 racks) with instant simulated timing for two bootstrap delays, then 1, 3 and
//! 9 nodes with the simulator's realistic timing. Also reports the gap between one node
//! becoming NORMAL and the next start (the operator's own reaction time), read off the
//! simulator's history.
//!
//! Run: `cargo bench -p k8ssandra-host --bench ready` (env `READY_BENCH_RUNS`, default 3, for
//! the instant cases; `READY_BENCH_REALISTIC_RUNS`, default 1, for the realistic ones).
//! It measures; nothing here asserts a duration.

#[path = "../tests/integration/support/mod.rs"]
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

/// Up to three racks, one per zone (never more racks than nodes).
fn manifest(ns: &str, name: &str, size: usize) -> String {
    let racks: Vec<String> = ["zone-a", "zone-b", "zone-c"]
        .iter()
        .take(size.clamp(1, 3))
        .enumerate()
        .map(|(i, z)| format!("{{name: r{}, zone: {z}}}", i + 1))
        .collect();
    let racks = racks.join(", ");
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
  size: {size}
  racks: [{racks}]
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

/// One measured apply → Ready of a datacenter of `size` nodes.
struct Run {
    total_s: f64,
    /// Per consecutive pair of starts: next start − the previous node's NORMAL (ms).
    gaps_ms: Vec<f64>,
}

async fn measure(
    client: &kube::Client,
    sim: &cassandra_sim::SimHandle,
    ar: &kube::api::ApiResource,
    run_id: usize,
    size: usize,
) -> Result<Run> {
    let ns = format!("bench-{run_id}");
    let name = format!("b{run_id}");
    create_namespace(client, &ns).await?;
    let dcs: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, ar);
    let started = Instant::now();
    apply_yaml(client, &manifest(&ns, &name, size), &ns).await?;
    wait_for("Ready", Duration::from_secs(1800), || async {
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
        (ready && nodes == size).then_some(())
    })
    .await
    .context("datacenter never became Ready")?;
    let total_s = started.elapsed().as_secs_f64();
    // Accepted starts of this Cassandra cluster in order, each with the time its node became
    // NORMAL: the operator's reaction is the next start minus the previous NORMAL.
    let mut starts: Vec<(i64, Option<i64>)> = sim
        .history()
        .into_iter()
        .filter(|h| h.action == "start" && h.cluster == name && h.outcome == "accepted")
        .filter_map(|h| Some((ms(&h.time)?, h.end_time.as_deref().and_then(ms))))
        .collect();
    starts.sort();
    let gaps_ms = starts
        .windows(2)
        .filter_map(|w| Some((w[1].0 - w[0].1?) as f64))
        .collect();
    dcs.delete(&name, &DeleteParams::default()).await?;
    Ok(Run { total_s, gaps_ms })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; this harness has no options of its own.
    let runs: usize = std::env::var("READY_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let realistic_runs: usize = std::env::var("READY_BENCH_REALISTIC_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
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
    let sim = Simulator::start(
        SimOptions::default(),
        vec![(env.cluster(0).context_name().to_string(), client.clone())],
    )
    .await?;
    let op = Operator::start(&kubeconfig, &plugins, &[])?;
    op.wait_ready(Duration::from_secs(60)).await?;
    let gvk = GroupVersionKind::gvk("cassandra.datastax.com", "v1beta1", "CassandraDatacenter");
    let (ar, _) = pinned_kind(&client, &gvk).await?;

    println!(
        "| timing | nodes | run | apply → Ready (s) | NORMAL → next start, median / max (ms) |"
    );
    println!("|---|---|---|---|---|");
    let mut run_id = 0;
    // Instant: every simulated delay zero but the bootstrap's, as in earlier figures.
    // Realistic: the simulator's preset (management API 5 s after the container, readiness
    // on the pod's own probe period, gossip 1 s, RING_DELAY 30 s, bootstrap 10 s).
    let instant = |bootstrap_ms: u64| {
        json!({"bootstrap_delay_ms": bootstrap_ms, "mgmt_api_start_delay_ms": 0,
               "probe_period_ms": 100, "probe_timing": "fixed", "gossip_delay_ms": 0,
               "ring_delay_ms": 0})
    };
    let cases: Vec<(String, serde_json::Value, usize, usize)> = vec![
        ("instant, bootstrap 0 s".into(), instant(0), 9, runs),
        ("instant, bootstrap 2 s".into(), instant(2000), 9, runs),
        (
            "realistic".into(),
            json!({"preset": "realistic"}),
            1,
            realistic_runs,
        ),
        (
            "realistic".into(),
            json!({"preset": "realistic"}),
            3,
            realistic_runs,
        ),
        (
            "realistic".into(),
            json!({"preset": "realistic"}),
            9,
            realistic_runs,
        ),
    ];
    for (label, config, size, n) in cases {
        sim.update_config(&serde_json::from_value(config)?);
        let mut totals = Vec::new();
        let mut gaps_all = Vec::new();
        for run in 0..n {
            run_id += 1;
            let r = measure(&client, &sim, &ar, run_id, size).await?;
            let max = r.gaps_ms.iter().copied().fold(f64::NAN, f64::max);
            println!(
                "| {label} | {size} | {run} | {:.1} | {:.0} / {max:.0} |",
                r.total_s,
                median(&mut r.gaps_ms.clone())
            );
            totals.push(r.total_s);
            gaps_all.extend(r.gaps_ms);
        }
        let max = gaps_all.iter().copied().fold(f64::NAN, f64::max);
        println!(
            "| {label} | {size} | median of {n} | {:.1} | {:.0} / {max:.0} |",
            median(&mut totals),
            median(&mut gaps_all)
        );
    }
    let violations = sim.violations();
    if !violations.is_empty() {
        println!("simulator violations: {violations:?}");
    }
    Ok(())
}
