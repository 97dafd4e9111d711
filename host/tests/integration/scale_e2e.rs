//! The scale scenario of issue #15 at CI size, asserting behaviour only: three testenv
//! clusters (a control plane running `k8ssandra-cluster`, data planes A and B running
//! `cassandra-datacenter` and `cassandra-task`), the real operator binaries, the simulator
//! with instant timing (bootstrap 0), and one K8ssandraCluster of three datacenters of 20
//! nodes, three racks each (dc1, dc2 in A; dc3 in B), applied from nothing.
//!
//! Asserted: every CassandraDatacenter Ready and the later ones done joining; one simulated
//! ring of 60 NORMAL nodes (one Cassandra cluster, 20 per datacenter, every node alive, one
//! schema, and each node's own management API listing all 60 NORMAL); no simulator
//! violation; the K8ssandraCluster's status with every datacenter Ready in its context. Then,
//! once the roll-out's last requeues have fired (30 s, their reconciles printed), an idle
//! window with a short resync: no operator writes to Kubernetes, and each operator
//! reconciles no more than its resyncs explain. Never a duration: the bench
//! (`host/benches/scale.rs`, which shares its set-up through `benches/common`) measures those.

use crate::support;

#[path = "../../benches/common/mod.rs"]
mod common;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use cassandra_sim::CassandraState;
use kube::api::{DynamicObject, GroupVersionKind, ListParams};
use kube::discovery::pinned_kind;
use kube::{Api, Client};
use serde_json::{Value, json};

use common::{DcSpec, Setup, ThreeClusters, dc_state, instant_sim, kc_manifest, metric_sum};
use support::{apply_yaml, datacenter_ready, kc_status, normal_nodes, step};

const NS: &str = "scale";
const CLUSTER: &str = "scale";
const NODES_PER_DC: usize = 20;
const RESYNC_S: u64 = 5;
const IDLE_S: u64 = 30;
const OPS: [&str; 3] = ["control plane", "data plane A", "data plane B"];

/// The objects the operators watch or own, per cluster (control plane first): a changed
/// resourceVersion during the idle window names what woke an operator up.
const WATCHED: [&[(&str, &str, &str)]; 3] = [
    &[
        ("k8ssandra.io", "v1alpha1", "K8ssandraCluster"),
        ("replication.k8ssandra.io", "v1alpha1", "ReplicatedSecret"),
        ("config.k8ssandra.io", "v1beta1", "ClientConfig"),
        ("", "v1", "Secret"),
        ("", "v1", "ConfigMap"),
    ],
    DATA_PLANE_KINDS,
    DATA_PLANE_KINDS,
];
const DATA_PLANE_KINDS: &[(&str, &str, &str)] = &[
    ("cassandra.datastax.com", "v1beta1", "CassandraDatacenter"),
    ("", "v1", "Pod"),
    ("apps", "v1", "StatefulSet"),
    ("", "v1", "Service"),
    ("", "v1", "Secret"),
    ("", "v1", "ConfigMap"),
    ("policy", "v1", "PodDisruptionBudget"),
    ("", "v1", "PersistentVolumeClaim"),
];

fn dcs(ctx_a: &str, ctx_b: &str) -> Vec<DcSpec> {
    [("dc1", ctx_a), ("dc2", ctx_a), ("dc3", ctx_b)]
        .iter()
        .map(|(name, ctx)| DcSpec {
            name: name.to_string(),
            ctx: ctx.to_string(),
            size: NODES_PER_DC,
            cassandra_yaml: None,
        })
        .collect()
}

/// NORMAL nodes per datacenter of the simulated cluster.
fn normal_per_dc(env: &ThreeClusters) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    if let Some(ring) = env.sim.state().cluster(CLUSTER) {
        for n in ring
            .nodes
            .iter()
            .filter(|n| n.cassandra == CassandraState::Normal)
        {
            *out.entry(n.datacenter.clone()).or_default() += 1;
        }
    }
    out
}

/// What is wrong with the ring, or None when it is one Cassandra cluster of every node:
/// no other simulated cluster holds a node, and each node is NORMAL, alive, seen NORMAL in
/// gossip, runs with the cluster's name and agrees on the schema.
fn ring_problem(env: &ThreeClusters, dcs: &[DcSpec]) -> Option<String> {
    let state = env.sim.state();
    let others: Vec<&str> = state
        .clusters
        .iter()
        .filter(|c| c.name != CLUSTER && !c.nodes.is_empty())
        .map(|c| c.name.as_str())
        .collect();
    if !others.is_empty() {
        return Some(format!("nodes outside cluster {CLUSTER:?}: {others:?}"));
    }
    let Some(ring) = state.cluster(CLUSTER) else {
        return Some(format!("no simulated cluster {CLUSTER:?}"));
    };
    let total: usize = dcs.iter().map(|d| d.size).sum();
    if ring.nodes.len() != total {
        return Some(format!(
            "{} nodes in the ring, want {total}",
            ring.nodes.len()
        ));
    }
    let want: BTreeMap<String, usize> = dcs.iter().map(|d| (d.name.clone(), d.size)).collect();
    let per_dc = normal_per_dc(env);
    if per_dc != want {
        return Some(format!("NORMAL per datacenter {per_dc:?}, want {want:?}"));
    }
    let odd: Vec<String> = ring
        .nodes
        .iter()
        .filter(|n| {
            !n.alive
                // `NORMAL,<token>`, as Cassandra's STATUS reads.
                || n
                    .gossip_status
                    .as_deref()
                    .is_none_or(|g| g.split(',').next() != Some("NORMAL"))
                || n.cluster_name != CLUSTER
                || n.schema_version != ring.schema_version
        })
        .map(|n| {
            format!(
                "{:?} alive={} gossip={:?} cluster_name={:?} schema={}",
                n.pod.as_ref().map(|p| &p.name),
                n.alive,
                n.gossip_status,
                n.cluster_name,
                n.schema_version
            )
        })
        .collect();
    (!odd.is_empty()).then(|| format!("nodes not fully in the ring: {odd:?}"))
}

/// What is wrong with the nodes' own gossip views, or None when every node's management API
/// (`/api/v0/metadata/endpoints`, what the operators read) lists all `total` nodes of the
/// cluster as NORMAL.
async fn gossip_problem(env: &ThreeClusters, total: usize) -> Option<String> {
    let port = env.sim.mgmt_port();
    let ips: Vec<String> = env
        .sim
        .state()
        .cluster(CLUSTER)?
        .nodes
        .iter()
        .filter_map(|n| n.ip.clone())
        .collect();
    if ips.len() != total {
        return Some(format!("{} nodes with an address, want {total}", ips.len()));
    }
    for ip in ips {
        let url = format!("http://{ip}:{port}/api/v0/metadata/endpoints");
        let body: Value = match reqwest::get(&url).await {
            Ok(r) => match r.json().await {
                Ok(v) => v,
                Err(e) => return Some(format!("{url}: {e}")),
            },
            Err(e) => return Some(format!("{url}: {e}")),
        };
        let normal = body["entity"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["CLUSTER_NAME"] == CLUSTER)
            .filter(|e| {
                e["STATUS"]
                    .as_str()
                    .is_some_and(|s| s.split(',').next() == Some("NORMAL"))
            })
            .count();
        if normal != total {
            return Some(format!("{ip} sees {normal} NORMAL nodes, want {total}"));
        }
    }
    None
}

/// Every datacenter Ready, and each one after the first done joining.
async fn dcs_settled(env: &ThreeClusters, dcs: &[DcSpec]) -> bool {
    for (i, dc) in dcs.iter().enumerate() {
        let (ready, join) = dc_state(env.data_plane(&dc.ctx), NS, &dc.name).await;
        if !ready || (i > 0 && join.as_deref() != Some("done")) {
            return false;
        }
    }
    true
}

/// What is wrong with the K8ssandraCluster's status, or None: `Valid` True, no error, and
/// each datacenter listed in its context with its CassandraDatacenter's status Ready.
fn kc_status_problem(status: &Value, dcs: &[DcSpec]) -> Option<String> {
    let valid = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Valid" && c["status"] == "True");
    if !valid {
        return Some("condition Valid not True".into());
    }
    if status["error"] != "None" {
        return Some(format!("error {}", status["error"]));
    }
    for dc in dcs {
        let entry = &status["datacenters"][&dc.name];
        if entry["contextName"] != dc.ctx.as_str() {
            return Some(format!(
                "datacenters.{}.contextName {}, want {}",
                dc.name, entry["contextName"], dc.ctx
            ));
        }
        if !datacenter_ready(&json!({"status": entry["cassandra"]})) {
            return Some(format!("datacenters.{}.cassandra not Ready", dc.name));
        }
    }
    None
}

/// One line per datacenter: Ready, join state, NORMAL nodes.
async fn dc_summary(env: &ThreeClusters, dcs: &[DcSpec]) -> String {
    let per_dc = normal_per_dc(env);
    let mut out = Vec::new();
    for dc in dcs {
        let (ready, join) = dc_state(env.data_plane(&dc.ctx), NS, &dc.name).await;
        out.push(format!(
            "{} ({}): ready={ready} join={join:?} normal={}",
            dc.name,
            dc.ctx,
            per_dc.get(&dc.name).copied().unwrap_or(0)
        ));
    }
    out.join("; ")
}

/// What to read when a wait fails.
async fn diagnostics(env: &ThreeClusters, dcs: &[DcSpec]) -> String {
    let mut status = kc_status(&env.cp, NS, CLUSTER).await;
    // Summarised above from the CassandraDatacenters themselves.
    if let Some(entries) = status.get_mut("datacenters").and_then(Value::as_object_mut) {
        for entry in entries.values_mut() {
            entry["cassandra"] = json!("…");
        }
    }
    format!(
        "datacenters: {}\nK8ssandraCluster status: {status}\nring: {:?}\ngossip: {:?}\nsimulator violations: {:?}\n{}",
        dc_summary(env, dcs).await,
        ring_problem(env, dcs),
        gossip_problem(env, dcs.iter().map(|d| d.size).sum()).await,
        env.sim.violations(),
        support::operator_warnings(&env.operators, &OPS, 10)
    )
}

/// (API writes, reconciles, the whole `/metrics` text) of each operator.
async fn counters(env: &ThreeClusters) -> Result<Vec<(f64, f64, String)>> {
    let mut out = Vec::new();
    for op in &env.operators {
        let m = op.metrics().await?;
        out.push((
            metric_sum(&m, "k8ssandra_api_writes_all_total", ""),
            metric_sum(&m, "k8ssandra_reconciles_total", ""),
            m,
        ));
    }
    Ok(out)
}

/// When each operator's reconcile counter went up over `span` (seconds into it, and by how
/// much), sampled every 250 ms: pairs at each resync tick, a requeue period or a burst show.
async fn reconcile_times(env: &ThreeClusters, span: Duration) -> Vec<(f64, Vec<String>)> {
    let start = Instant::now();
    let mut seen: Vec<Option<f64>> = vec![None; env.operators.len()];
    let mut out: Vec<(f64, Vec<String>)> = vec![(0.0, Vec::new()); env.operators.len()];
    loop {
        for (i, op) in env.operators.iter().enumerate() {
            let Ok(m) = op.metrics().await else { continue };
            let n = metric_sum(&m, "k8ssandra_reconciles_total", "");
            if let Some(old) = seen[i]
                && n != old
            {
                out[i].0 += n - old;
                out[i].1.push(format!(
                    "{:.2}s:+{}",
                    start.elapsed().as_secs_f64(),
                    n - old
                ));
            }
            seen[i] = Some(n);
        }
        if start.elapsed() >= span {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The counter samples (not histogram buckets) that changed between two scrapes.
fn changed_samples(before: &str, after: &str) -> Vec<String> {
    let samples = |text: &str| -> BTreeMap<String, String> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.contains("_bucket{"))
            .filter_map(|l| l.rsplit_once(' '))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let old = samples(before);
    samples(after)
        .into_iter()
        .filter(|(k, v)| old.get(k) != Some(v))
        .map(|(k, v)| format!("{k}: {} → {v}", old.get(&k).map_or("none", String::as_str)))
        .collect()
}

/// "kind namespace/name" → resourceVersion of every object of the watched kinds in a cluster.
async fn resource_versions(
    client: &Client,
    kinds: &[(&str, &str, &str)],
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (group, version, kind) in kinds {
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let Ok((ar, _)) = pinned_kind(client, &gvk).await else {
            continue;
        };
        let Ok(list) = Api::<DynamicObject>::all_with(client.clone(), &ar)
            .list(&ListParams::default())
            .await
        else {
            continue;
        };
        for o in list.items {
            out.insert(
                format!(
                    "{kind} {}/{}",
                    o.metadata.namespace.as_deref().unwrap_or_default(),
                    o.metadata.name.as_deref().unwrap_or_default()
                ),
                o.metadata.resource_version.unwrap_or_default(),
            );
        }
    }
    out
}

/// The operator's log without its colour codes.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI sequences end with a letter (`m` for colours).
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

async fn all_resource_versions(env: &ThreeClusters) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    for (c, kinds) in [&env.cp, &env.a, &env.b].into_iter().zip(WATCHED) {
        out.push(resource_versions(c, kinds).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_nodes_in_three_datacenters_ready_in_one_ring_then_idle() -> Result<()> {
    let started = Instant::now();
    // Racks pin pods to zones and A holds two datacenters: each of its three fake nodes (one
    // per zone) takes two racks' pods, and every pod requests a whole CPU for its init
    // container (see `Setup::node_cpu`).
    let per_zone = 2 * NODES_PER_DC.div_ceil(3) + 10;
    let env = ThreeClusters::start(Setup {
        nodes_per_cluster: 3,
        node_max_pods: 110,
        node_cpu: (2 * per_zone).to_string(),
        data_plane_policies: vec!["cassandra-datacenter", "cassandra-task"],
        operator_args: vec![format!("--resync-seconds={RESYNC_S}")],
        sim_config: instant_sim(0),
    })
    .await?;
    eprintln!(
        "[{:>6.1?}] three clusters and operators up",
        started.elapsed()
    );
    let dcs = dcs(
        env.env.cluster(1).context_name(),
        env.env.cluster(2).context_name(),
    );
    let total: usize = dcs.iter().map(|d| d.size).sum();
    env.create_namespace(NS).await?;
    apply_yaml(&env.cp, &kc_manifest(NS, CLUSTER, &dcs, true), NS).await?;

    // Generous: a debug build on a small shared machine; the bench measures the time.
    step(
        &format!("every datacenter Ready and joined, {total} NORMAL nodes in one ring"),
        Duration::from_secs(300),
        || async {
            (dcs_settled(&env, &dcs).await
                && ring_problem(&env, &dcs).is_none()
                && gossip_problem(&env, total).await.is_none())
            .then_some(())
        },
        || diagnostics(&env, &dcs),
    )
    .await?;
    let v = env.sim.violations();
    assert!(v.is_empty(), "simulator violations: {v:?}");
    assert_eq!(normal_nodes(&env.sim, CLUSTER), total);
    step(
        "the K8ssandraCluster's status: Valid, every datacenter Ready in its context",
        Duration::from_secs(60),
        || async {
            let status = kc_status(&env.cp, NS, CLUSTER).await;
            kc_status_problem(&status, &dcs).is_none().then_some(())
        },
        || diagnostics(&env, &dcs),
    )
    .await?;

    // Settled: no operator wrote anything for two resync periods (the last status updates
    // after the joins land first). Not itself an assertion about idleness.
    let last = RefCell::new(counters(&env).await?);
    let quiet_since = Cell::new(Instant::now());
    step(
        "no API write for two resync periods",
        Duration::from_secs(120),
        || async {
            let now = counters(&env).await.ok()?;
            if now
                .iter()
                .zip(last.borrow().iter())
                .any(|(n, l)| n.0 != l.0)
            {
                quiet_since.set(Instant::now());
            }
            *last.borrow_mut() = now;
            (quiet_since.get().elapsed() >= Duration::from_secs(2 * RESYNC_S)).then_some(())
        },
        || diagnostics(&env, &dcs),
    )
    .await?;

    // The idle window: nothing changes but the resyncs.
    let before = counters(&env).await?;
    let versions_before = all_resource_versions(&env).await;
    let log_offsets: Vec<usize> = env.operators.iter().map(|o| o.log_text().len()).collect();
    let ticks = reconcile_times(&env, Duration::from_secs(IDLE_S)).await;
    let after = counters(&env).await?;
    let versions_after = all_resource_versions(&env).await;

    // Parents per operator: the K8ssandraCluster; dc1 and dc2; dc3 (no CassandraTask).
    let parents = [1.0, 2.0, 1.0];
    let bound_per_parent = (IDLE_S / RESYNC_S + 2) as f64;
    let mut failures = Vec::new();
    for (i, op) in OPS.iter().enumerate() {
        let writes = after[i].0 - before[i].0;
        let reconciles = after[i].1 - before[i].1;
        let bound = bound_per_parent * parents[i];
        eprintln!(
            "idle {IDLE_S} s, resync {RESYNC_S} s: {op}: {writes} API writes, {reconciles} reconciles (bound {bound}) at {:?}",
            ticks[i].1
        );
        if writes != 0.0 {
            failures.push(format!("{op}: {writes} API writes while idle"));
        }
        if reconciles > bound {
            failures.push(format!(
                "{op}: {reconciles} reconciles in {IDLE_S} s idle, more than the {bound} its resyncs explain ({} parent(s), resync {RESYNC_S} s)",
                parents[i]
            ));
        }
    }
    if !failures.is_empty() {
        let mut report = String::new();
        for (i, op) in OPS.iter().enumerate() {
            let changed: Vec<String> = versions_after[i]
                .iter()
                .filter(|(k, v)| versions_before[i].get(*k) != Some(*v))
                .map(|(k, v)| {
                    format!(
                        "{k}: {} → {v}",
                        versions_before[i].get(k).map_or("new", String::as_str)
                    )
                })
                .chain(
                    versions_before[i]
                        .keys()
                        .filter(|k| !versions_after[i].contains_key(*k))
                        .map(|k| format!("{k}: deleted")),
                )
                .collect();
            let log = env.operators[i].log_text();
            let window_log = log.get(log_offsets[i]..).unwrap_or_default();
            report.push_str(&format!(
                "\n--- {op}\nobjects changed in its cluster during the window ({}): {:#?}\nmetrics changed: {:#?}\nlog during the window (last 40 lines):\n{}\n",
                changed.len(),
                &changed[..changed.len().min(40)],
                changed_samples(&before[i].2, &after[i].2),
                strip_ansi(&support::tail(window_log, 40))
            ));
        }
        bail!("idle window: {}\n{report}", failures.join("; "));
    }
    assert!(
        env.sim.violations().is_empty(),
        "simulator violations after the idle window: {:?}",
        env.sim.violations()
    );
    eprintln!("[{:>6.1?}] whole scenario", started.elapsed());
    Ok(())
}
