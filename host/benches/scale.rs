//! The scale scenario of issue #15: a control-plane cluster and two data-plane clusters
//! (testenv), one K8ssandraCluster of four datacenters of N nodes (dc1, dc2 in data plane A,
//! dc3, dc4 in B; 3 racks each), the real operator binaries and the Cassandra simulator.
//!
//! From nothing until every datacenter is Ready and the simulator shows 4N NORMAL nodes in
//! one ring with no rule violation (then until dc2..dc4 have joined); then, in the first run
//! only: an idle window, a scale-up of dc1 by 10 nodes, a rolling restart of dc1
//! (CassandraTask `restart`), a config change of dc1 — each until dc1 is Ready again with
//! every node NORMAL. One run per simulated bootstrap delay.
//!
//! Reported: the time of each phase; the operator's delay per node (a start minus the time
//! the previously started node became NORMAL, from the simulator's history); per operator
//! process its peak RSS (`VmHWM`), CPU seconds, Kubernetes API writes (its own `/metrics`)
//! per phase, per node started and per idle reconcile; reconcile and policy-call latency per
//! policy (p50/p99 from the `/metrics` histograms, over the roll-out).
//!
//! Run: `cargo bench -p k8ssandra-host --bench scale`. Environment:
//! `SCALE_BENCH_NODES_PER_DC` (default 250), `SCALE_BENCH_BOOTSTRAP_MS` (comma-separated
//! delays, one run each, default `0,200`), `SCALE_BENCH_IDLE_SECS` (default 600),
//! `SCALE_BENCH_DAY2` (0: stop after the idle window), `SCALE_BENCH_KEEP_LOGS` (a directory the operators' logs are copied to after the idle
//! window and at the end), `SCALE_BENCH_RESYNC_SECS` (the operators' `--resync-seconds`, default 60 so the idle
//! window sees several resyncs). It measures; it fails only when the scenario does not
//! complete (a timeout, a simulator violation), never on a duration.

mod common;
#[path = "../tests/integration/support/mod.rs"]
mod support;

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, GroupVersionKind};
use kube::discovery::pinned_kind;
use serde_json::Value;

use common::{
    DcSpec, Setup, ThreeClusters, cpu_seconds, dc_exists, dc_state, histogram_policies,
    histogram_quantile, instant_sim, kc_manifest, metric_sum, percentile, start_gaps_ms,
    starts_since, status_kib, timeout_for,
};
use support::{apply_yaml, normal_nodes};

const OPS: [&str; 3] = ["control plane", "data plane A", "data plane B"];
const SCALE_UP: usize = 10;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// One operator's counters at one moment.
struct Sample {
    cpu_s: f64,
    writes: f64,
    reconciles: f64,
    metrics: String,
}

async fn sample(env: &ThreeClusters) -> Result<Vec<Sample>> {
    let mut out = Vec::new();
    for op in &env.operators {
        let metrics = op.metrics().await?;
        out.push(Sample {
            cpu_s: cpu_seconds(op.pid())?,
            writes: metric_sum(&metrics, "k8ssandra_api_writes_all_total", ""),
            reconciles: metric_sum(&metrics, "k8ssandra_reconciles_total", ""),
            metrics,
        });
    }
    Ok(out)
}

/// Per operator, resident memory now: anonymous (heap, guest memories) and file-backed
/// (the binary, the mapped compiled policies), MiB.
fn resident_mib(env: &ThreeClusters) -> Vec<(f64, f64)> {
    env.operators
        .iter()
        .map(|op| {
            let kib = |f| status_kib(op.pid(), f).map_or(f64::NAN, |k| k as f64 / 1024.0);
            (kib("RssAnon"), kib("RssFile"))
        })
        .collect()
}

/// Copies the operators' logs to `SCALE_BENCH_KEEP_LOGS` (a directory), when set.
fn keep_logs(env: &ThreeClusters) {
    let Ok(dir) = std::env::var("SCALE_BENCH_KEEP_LOGS") else {
        return;
    };
    let _ = std::fs::create_dir_all(&dir);
    for (op, name) in env.operators.iter().zip(OPS) {
        let _ = std::fs::copy(
            &op.log,
            std::path::Path::new(&dir).join(format!("{}.log", name.replace(' ', "-"))),
        );
    }
}

fn peak_rss_mib(env: &ThreeClusters) -> Vec<f64> {
    env.operators
        .iter()
        .map(|op| status_kib(op.pid(), "VmHWM").map_or(f64::NAN, |k| k as f64 / 1024.0))
        .collect()
}

/// Per operator: CPU seconds, writes and reconciles between two samples.
fn print_deltas(phase: &str, before: &[Sample], after: &[Sample], nodes_started: usize) {
    for (i, name) in OPS.iter().enumerate() {
        let (b, a) = (&before[i], &after[i]);
        let writes = a.writes - b.writes;
        let per_node = if nodes_started > 0 {
            format!("{:.2}", writes / nodes_started as f64)
        } else {
            "—".into()
        };
        println!(
            "| {phase} | {name} | {:.2} | {writes:.0} | {per_node} | {:.0} |",
            a.cpu_s - b.cpu_s,
            a.reconciles - b.reconciles,
        );
    }
}

fn print_latencies(before: &[Sample], after: &[Sample]) {
    println!("\n| operator | histogram | policy | p50 (ms) | p99 (ms) |");
    println!("|---|---|---|---:|---:|");
    for (i, name) in OPS.iter().enumerate() {
        for hist in [
            "k8ssandra_reconcile_duration_seconds",
            "k8ssandra_policy_call_duration_seconds",
        ] {
            for policy in histogram_policies(&after[i].metrics, hist) {
                let q = |q| {
                    histogram_quantile(
                        &after[i].metrics,
                        Some(&before[i].metrics),
                        hist,
                        &policy,
                        q,
                    )
                    .map_or("—".to_string(), |s| format!("{:.1}", s * 1000.0))
                };
                println!(
                    "| {name} | {} | {policy} | {} | {} |",
                    hist.trim_start_matches("k8ssandra_"),
                    q(0.5),
                    q(0.99)
                );
            }
        }
    }
}

fn print_gaps(phase: &str, mut gaps: Vec<f64>) {
    let n = gaps.len();
    let p50 = percentile(&mut gaps, 0.5);
    let p99 = percentile(&mut gaps, 0.99);
    let max = gaps.iter().copied().fold(f64::NAN, f64::max);
    println!(
        "{phase}: NORMAL → next start over {n} hand-overs: median {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms"
    );
}

/// Polls `check` every 500 ms (cheaper than the e2e helper's 100 ms with 1000 nodes in the
/// simulator's state) until it returns `Some`.
async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn check_violations(env: &ThreeClusters, phase: &str) -> Result<()> {
    let v = env.sim.violations();
    if !v.is_empty() {
        bail!("simulator violations after {phase}: {v:?}");
    }
    Ok(())
}

fn task_complete(task: &Value) -> bool {
    task.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Complete" && c["status"] == "True")
        })
}

/// Waits until `dc` is Ready, the ring holds `total` NORMAL nodes, and at least `starts` of
/// `dc`'s pods started since `since_ms`; returns the seconds since `started`.
#[allow(clippy::too_many_arguments)]
async fn dc_settled(
    env: &ThreeClusters,
    ns: &str,
    cluster: &str,
    dc: &DcSpec,
    total: usize,
    since_ms: i64,
    starts: usize,
    started: Instant,
) -> Result<f64> {
    let client = env.data_plane(&dc.ctx);
    let marker = format!("-{}-", dc.name);
    poll(
        &format!("{} Ready with {total} NORMAL nodes", dc.name),
        timeout_for(total, 600, 2000),
        || async {
            let (ready, _) = dc_state(client, ns, &dc.name).await;
            (ready
                && normal_nodes(&env.sim, cluster) == total
                && starts_since(&env.sim, cluster, since_ms, |p| p.contains(&marker)) >= starts)
                .then_some(())
        },
    )
    .await?;
    Ok(started.elapsed().as_secs_f64())
}

/// The day-2 phases on dc1, each until it is Ready with every node NORMAL again: a scale-up
/// by 10, a rolling restart (CassandraTask `restart`), a `cassandra.yaml` change.
async fn day2_phases(
    env: &ThreeClusters,
    ns: &str,
    name: &str,
    dcs: &mut [DcSpec],
    n: usize,
    tar: &kube::core::ApiResource,
) -> Result<()> {
    // Scale-up of dc1 by 10 nodes.
    let s0 = sample(env).await?;
    let (t, t_ms) = (Instant::now(), now_ms());
    dcs[0].size += SCALE_UP;
    let total = 4 * n + SCALE_UP;
    apply_yaml(&env.cp, &kc_manifest(ns, name, dcs, true), ns).await?;
    let scaled = dc_settled(env, ns, name, &dcs[0], total, t_ms, SCALE_UP, t).await?;
    let s1 = sample(env).await?;
    check_violations(env, "the scale-up")?;
    println!("\nscale-up of dc1 by {SCALE_UP}: {scaled:.1} s");
    print_gaps("scale-up", start_gaps_ms(&env.sim, name, t_ms, |_| true));

    // Rolling restart of dc1.
    let (t, t_ms) = (Instant::now(), now_ms());
    apply_yaml(
    &env.a,
    &format!(
        "apiVersion: control.k8ssandra.io/v1alpha1\nkind: CassandraTask\nmetadata:\n  name: restart-dc1\n  namespace: {ns}\nspec:\n  datacenter:\n    name: dc1\n  jobs:\n    - name: restart-dc1\n      command: restart\n"
    ),
    ns,
    )
    .await?;
    let tasks: Api<DynamicObject> = Api::namespaced_with(env.a.clone(), ns, tar);
    poll(
        "restart task Complete",
        timeout_for(dcs[0].size, 600, 2000),
        || async {
            let task = tasks.get("restart-dc1").await.ok()?;
            task_complete(&task.data).then_some(())
        },
    )
    .await?;
    let restarted = dc_settled(env, ns, name, &dcs[0], total, t_ms, dcs[0].size, t).await?;
    let s2 = sample(env).await?;
    check_violations(env, "the restart")?;
    println!(
        "rolling restart of dc1 ({} nodes): {restarted:.1} s",
        dcs[0].size
    );
    print_gaps("restart", start_gaps_ms(&env.sim, name, t_ms, |_| true));

    // Config change of dc1: a cassandra.yaml setting, which restarts every node.
    let (t, t_ms) = (Instant::now(), now_ms());
    dcs[0].cassandra_yaml = Some("{concurrent_reads: 64}".into());
    apply_yaml(&env.cp, &kc_manifest(ns, name, dcs, true), ns).await?;
    let configured = dc_settled(env, ns, name, &dcs[0], total, t_ms, dcs[0].size, t).await?;
    let s3 = sample(env).await?;
    check_violations(env, "the config change")?;
    println!(
        "config change of dc1 ({} nodes): {configured:.1} s",
        dcs[0].size
    );
    print_gaps(
        "config change",
        start_gaps_ms(&env.sim, name, t_ms, |_| true),
    );

    println!("\n| phase | operator | CPU s | API writes | writes per node started | reconciles |");
    println!("|---|---|---:|---:|---:|---:|");
    print_deltas("scale-up +10", &s0, &s1, SCALE_UP);
    print_deltas("rolling restart dc1", &s1, &s2, dcs[0].size);
    print_deltas("config change dc1", &s2, &s3, dcs[0].size);
    println!(
        "peak RSS (VmHWM) after all phases, MiB: {OPS:?} = {:.1?}; load average {}",
        peak_rss_mib(env),
        loadavg()
    );
    keep_logs(env);
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; this harness has no options of its own.
    let n: usize = env_or("SCALE_BENCH_NODES_PER_DC", 250);
    let delays: Vec<u64> = std::env::var("SCALE_BENCH_BOOTSTRAP_MS")
        .unwrap_or_else(|_| "0,200".into())
        .split(',')
        .filter_map(|d| d.trim().parse().ok())
        .collect();
    let idle_s: u64 = env_or("SCALE_BENCH_IDLE_SECS", 600);
    let resync_s: u64 = env_or("SCALE_BENCH_RESYNC_SECS", 60);
    // 0 stops after the idle window (the linearity runs need no day-2 phases).
    let day2: u64 = env_or("SCALE_BENCH_DAY2", 1);
    let first_delay = *delays
        .first()
        .context("SCALE_BENCH_BOOTSTRAP_MS is empty")?;
    println!(
        "scale bench: {n} nodes per datacenter, 4 datacenters, bootstrap delays {delays:?} ms, idle {idle_s} s, resync {resync_s} s; load average {}",
        loadavg()
    );

    // Racks pin pods to zones and each data plane holds two datacenters: one fake node per
    // zone takes two racks' pods (plus the scale-up).
    let per_zone = 2 * n.div_ceil(3) + SCALE_UP + 20;
    let env = ThreeClusters::start(Setup {
        nodes_per_cluster: 3,
        node_max_pods: per_zone.max(110) as u32,
        node_cpu: (2 * per_zone).to_string(),
        data_plane_policies: vec!["cassandra-datacenter", "cassandra-task"],
        operator_args: vec![format!("--resync-seconds={resync_s}")],
        sim_config: instant_sim(first_delay),
    })
    .await?;
    let kgvk = GroupVersionKind::gvk("k8ssandra.io", "v1alpha1", "K8ssandraCluster");
    let (kar, _) = pinned_kind(&env.cp, &kgvk).await?;
    let tgvk = GroupVersionKind::gvk("control.k8ssandra.io", "v1alpha1", "CassandraTask");
    let (tar, _) = pinned_kind(&env.a, &tgvk).await?;
    let ctx_a = env.env.cluster(1).context_name().to_string();
    let ctx_b = env.env.cluster(2).context_name().to_string();
    println!(
        "operators ready; peak RSS so far (MiB): {:?}",
        peak_rss_mib(&env)
    );

    for (run, &delay) in delays.iter().enumerate() {
        env.sim
            .update_config(&serde_json::from_value(instant_sim(delay))?);
        let ns = format!("scale-{run}");
        let name = format!("s{run}");
        env.create_namespace(&ns).await?;
        let mut dcs: Vec<DcSpec> = [
            ("dc1", &ctx_a),
            ("dc2", &ctx_a),
            ("dc3", &ctx_b),
            ("dc4", &ctx_b),
        ]
        .iter()
        .map(|(dc, ctx)| DcSpec {
            name: dc.to_string(),
            ctx: ctx.to_string(),
            size: n,
            cassandra_yaml: None,
        })
        .collect();
        println!(
            "\n## run {run}: bootstrap {delay} ms, load average {}",
            loadavg()
        );

        // Roll-out: apply → every datacenter Ready, 4N NORMAL.
        let before = sample(&env).await?;
        let (t0, t0_ms) = (Instant::now(), now_ms());
        apply_yaml(&env.cp, &kc_manifest(&ns, &name, &dcs, true), &ns).await?;
        let ready_at: RefCell<Vec<Option<f64>>> = RefCell::new(vec![None; dcs.len()]);
        let last_report = Cell::new(Instant::now());
        poll(
            "all datacenters Ready with every node NORMAL",
            timeout_for(4 * n, 600, 2000),
            || async {
                for (i, dc) in dcs.iter().enumerate() {
                    if ready_at.borrow()[i].is_none()
                        && dc_state(env.data_plane(&dc.ctx), &ns, &dc.name).await.0
                    {
                        ready_at.borrow_mut()[i] = Some(t0.elapsed().as_secs_f64());
                    }
                }
                let normal = normal_nodes(&env.sim, &name);
                if last_report.get().elapsed() > Duration::from_secs(30) {
                    last_report.set(Instant::now());
                    eprintln!(
                        "  {:.0} s: {normal} NORMAL, Ready at {:?}, load {}",
                        t0.elapsed().as_secs_f64(),
                        ready_at.borrow(),
                        loadavg()
                    );
                }
                (ready_at.borrow().iter().all(Option::is_some) && normal == 4 * n).then_some(())
            },
        )
        .await?;
        let ready_at = ready_at.into_inner();
        let all_ready = t0.elapsed().as_secs_f64();
        let after = sample(&env).await?;
        let rss = peak_rss_mib(&env);
        let load_rollout = loadavg();
        check_violations(&env, "the roll-out")?;
        poll("dc2..dc4 joined", timeout_for(4 * n, 600, 2000), || async {
            for dc in &dcs[1..] {
                let (_, join) = dc_state(env.data_plane(&dc.ctx), &ns, &dc.name).await;
                if join.as_deref() != Some("done") {
                    return None;
                }
            }
            Some(())
        })
        .await?;
        let joined = t0.elapsed().as_secs_f64();
        let after_join = sample(&env).await?;
        check_violations(&env, "the joins")?;

        println!(
            "apply → all Ready with {} NORMAL: {all_ready:.1} s (each datacenter Ready at {:?} s); joins done: {joined:.1} s; load average at Ready {load_rollout}",
            4 * n,
            ready_at
                .iter()
                .map(|r| format!("{:.1}", r.unwrap_or(f64::NAN)))
                .collect::<Vec<_>>()
        );
        print_gaps("roll-out", start_gaps_ms(&env.sim, &name, t0_ms, |_| true));
        println!("peak RSS (VmHWM) at Ready, MiB: {OPS:?} = {rss:.1?}");
        println!(
            "resident at Ready (anonymous, file), MiB: {OPS:?} = {:.1?}",
            resident_mib(&env)
        );
        println!(
            "\n| phase | operator | CPU s | API writes | writes per node started | reconciles |"
        );
        println!("|---|---|---:|---:|---:|---:|");
        print_deltas("roll-out to Ready", &before, &after, 4 * n);
        print_deltas("Ready to joined", &after, &after_join, 0);
        print_latencies(&before, &after_join);

        if run == 0 {
            // Idle: nothing changes; resyncs still run.
            let idle_before = sample(&env).await?;
            tokio::time::sleep(Duration::from_secs(idle_s)).await;
            let idle_after = sample(&env).await?;
            keep_logs(&env);
            println!("\nidle window {idle_s} s, load average {}", loadavg());
            println!(
                "| phase | operator | CPU s | API writes | writes per reconcile | reconciles |"
            );
            println!("|---|---|---:|---:|---:|---:|");
            for (i, op) in OPS.iter().enumerate() {
                let (b, a) = (&idle_before[i], &idle_after[i]);
                let (w, r) = (a.writes - b.writes, a.reconciles - b.reconciles);
                println!(
                    "| idle {idle_s} s | {op} | {:.2} | {w:.0} | {} | {r:.0} |",
                    a.cpu_s - b.cpu_s,
                    if r > 0.0 {
                        format!("{:.2}", w / r)
                    } else {
                        "—".into()
                    }
                );
            }

            if day2 != 0 {
                day2_phases(&env, &ns, &name, &mut dcs, n, &tar).await?;
            }
        }

        // The next run starts from an empty testenv.
        if run + 1 < delays.len() {
            Api::<DynamicObject>::namespaced_with(env.cp.clone(), &ns, &kar)
                .delete(&name, &DeleteParams::default())
                .await?;
            poll(
                "datacenters deleted",
                timeout_for(4 * n, 600, 1000),
                || async {
                    for dc in &dcs {
                        if dc_exists(env.data_plane(&dc.ctx), &ns, &dc.name).await {
                            return None;
                        }
                    }
                    Some(())
                },
            )
            .await?;
            // Pods go with their StatefulSets; wait until the simulator has none of them.
            poll("pods gone", timeout_for(4 * n, 300, 1000), || async {
                (normal_nodes(&env.sim, &name) == 0).then_some(())
            })
            .await?;
        }
    }
    Ok(())
}
