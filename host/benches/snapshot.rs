//! The `cassandra-datacenter` policy on a 250-node datacenter: one reconcile in wasm, as
//! production calls it (`PolicyRuntime::reconcile`), against the same code compiled
//! natively, on the same snapshot, side by side (issue #15).
//!
//! The snapshot is what the policy sees once a 250-node, 3-rack datacenter runs: its
//! CassandraDatacenter, the objects of its own plan as children (StatefulSets marked ready),
//! 250 ready pods and 250 node states, one with the gossip view of the whole ring. It is
//! built by calling the policy natively on the bare datacenter and feeding its plan back,
//! so it is the policy's own steady state rather than a hand-written guess.
//!
//! `cargo bench -p k8ssandra-host --bench snapshot` prints median and p99 of each variant
//! over 300 round-robin iterations and their ratio. Figures: docs/benchmarks.md.
//! `SNAPSHOT_BENCH_WASM=<file>` times that component instead of building the workspace's;
//! `SNAPSHOT_BENCH_BASELINE_WASM=<file>` times a second one in the same rounds (old against new).

mod baseline;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

use cassandra_datacenter::CassandraDatacenterPolicy;
use k8ssandra_host::plugin::{PolicyRuntime, RuntimeConfig, parse_snapshot};
use k8ssandra_policy_sdk::Policy;
use serde_json::{Value, json};

const NODES: usize = 250;
const RACKS: usize = 3;
const SAMPLES: usize = 300;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host crate sits in the workspace")
        .to_path_buf()
}

/// The component to time: `SNAPSHOT_BENCH_WASM` names a build to load as it is (e.g. one kept from
/// before a change); otherwise the workspace's policy is built and loaded.
fn component() -> PathBuf {
    if let Some(path) = std::env::var_os("SNAPSHOT_BENCH_WASM") {
        return PathBuf::from(path);
    }
    let ws = workspace();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .current_dir(&ws)
        .args([
            "build",
            "-q",
            "-p",
            "cassandra-datacenter",
            "--target",
            "wasm32-wasip2",
            "--profile",
            "wasm",
        ])
        .status()
        .expect("run cargo");
    assert!(status.success(), "building cassandra-datacenter failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| ws.join("target"));
    target.join("wasm32-wasip2/wasm/cassandra_datacenter.wasm")
}

fn datacenter() -> Value {
    json!({
        "apiVersion": "cassandra.datastax.com/v1beta1", "kind": "CassandraDatacenter",
        "metadata": {"name": "dc1", "namespace": "db", "generation": 1, "uid": "dc-uid"},
        "spec": {
            "clusterName": "big", "serverType": "cassandra", "serverVersion": "4.1.5",
            "size": NODES,
            "racks": (0..RACKS).map(|r| json!({"name": format!("r{r}")})).collect::<Vec<_>>(),
            "storageConfig": {"cassandraDataVolumeClaimSpec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "5Gi"}}}},
        },
        "status": {"cassandraOperatorProgress": "Ready",
            "conditions": [{"type": "Ready", "status": "True", "reason": "", "message": "",
                "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
    })
}

fn ip(i: usize) -> String {
    format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256 + 1)
}

/// The pods of the StatefulSets the policy planned, ready, with their template hash.
fn pods(stateful_sets: &[Value]) -> Vec<Value> {
    let mut out = Vec::new();
    let mut n = 0;
    for sts in stateful_sets {
        let name = sts["metadata"]["name"].as_str().unwrap_or_default();
        let replicas = sts["spec"]["replicas"].as_u64().unwrap_or(0) as usize;
        let mut labels = sts["spec"]["template"]["metadata"]["labels"].clone();
        labels["statefulset.kubernetes.io/pod-name"] = json!("");
        for ord in 0..replicas {
            let pod = format!("{name}-{ord}");
            labels["statefulset.kubernetes.io/pod-name"] = json!(pod);
            labels["cassandra.datastax.com/node-state"] = json!("Started");
            out.push(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod, "namespace": "db", "uid": format!("uid-{pod}"),
                    "labels": labels.clone(),
                    "annotations": sts["spec"]["template"]["metadata"]["annotations"].clone()},
                "spec": sts["spec"]["template"]["spec"].clone(),
                "status": {"phase": "Running", "podIP": ip(n),
                    "conditions": [{"type": "Ready", "status": "True"}],
                    "containerStatuses": [{"name": "cassandra", "ready": true, "started": true,
                        "restartCount": 0, "image": "", "imageID": "",
                        "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]},
            }));
            n += 1;
        }
    }
    out
}

fn node_states(pods: &[Value]) -> Vec<Value> {
    let endpoints: Vec<Value> = pods
        .iter()
        .enumerate()
        .map(|(i, p)| {
            json!({"ENDPOINT_IP": ip(i), "DC": "dc1",
                "RACK": p["metadata"]["labels"]["cassandra.datastax.com/rack"],
                "STATUS": "NORMAL,1", "IS_ALIVE": "true", "HOST_ID": format!("h-{i}"),
                "TOKENS": format!("{}", i as i64 * 1000), "RELEASE_VERSION": "4.1.5"})
        })
        .collect();
    let gossip = json!({"entity": endpoints}).to_string();
    pods.iter()
        .enumerate()
        .map(|(i, p)| {
            json!({
                "node": {"cluster": "", "namespace": "db", "pod": p["metadata"]["name"]},
                "address": ip(i), "reachable": true, "error": null, "alive": true, "ready": true,
                "endpoints": if i == 0 { Some(gossip.clone()) } else { None },
            })
        })
        .collect()
}

/// The steady-state snapshot, as host JSON.
fn snapshot() -> String {
    let bare = json!({"parent": datacenter(), "now_ms": 1_767_225_600_000u64});
    let first = CassandraDatacenterPolicy::reconcile(
        serde_json::from_value(wire(&bare)).expect("guest snapshot"),
    )
    .expect("first plan");
    let mut children: Vec<Value> = first
        .apply
        .iter()
        .filter_map(|o| serde_json::from_str::<Value>(&o.json).ok())
        .collect();
    for c in &mut children {
        if c["kind"] == "StatefulSet" {
            let r = c["spec"]["replicas"].clone();
            c["status"] = json!({"replicas": r, "readyReplicas": r, "currentReplicas": r,
                "updatedReplicas": r, "availableReplicas": r, "observedGeneration": 1});
        }
    }
    let sets: Vec<Value> = children
        .iter()
        .filter(|c| c["kind"] == "StatefulSet")
        .cloned()
        .collect();
    let pods = pods(&sets);
    assert_eq!(pods.len(), NODES, "the plan's StatefulSets hold every node");
    let nodes = node_states(&pods);
    json!({
        "parent": datacenter(), "children": children, "related": pods, "nodes": nodes,
        "now_ms": 1_767_225_600_000u64,
    })
    .to_string()
}

/// A host-format snapshot file as the guest's wire JSON.
fn wire(file: &Value) -> Value {
    let host = parse_snapshot(&file.to_string()).expect("snapshot parses");
    serde_json::to_value(&host).expect("serialise")
}

fn main() {
    let text = snapshot();
    let host = parse_snapshot(&text).expect("snapshot parses");
    let guest: k8ssandra_policy_sdk::Snapshot =
        serde_json::from_value(serde_json::to_value(&host).expect("wire")).expect("guest");
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let runtime = PolicyRuntime::new(RuntimeConfig::default()).expect("runtime");
    let policy = tokio
        .block_on(runtime.load_file(&component()))
        .expect("the policy loads");
    // Both must compute the same plan, or the comparison means nothing.
    let wasm_plan = tokio
        .block_on(runtime.reconcile(&policy, host.clone()))
        .expect("wasm call")
        .expect("wasm plan");
    let native_plan = CassandraDatacenterPolicy::reconcile(guest.clone()).expect("native plan");
    assert_eq!(
        serde_json::to_value(&wasm_plan).expect("plan"),
        serde_json::to_value(&native_plan).expect("plan"),
        "wasm and native plans differ"
    );
    // Another build timed in the same rounds (`SNAPSHOT_BENCH_BASELINE_WASM`, e.g. the policy
    // before a change), so old and new are compared under the same load; it must plan the same.
    let baseline = baseline::load("SNAPSHOT_BENCH_BASELINE_WASM", &tokio, &host, &native_plan);
    println!(
        "snapshot: {NODES} nodes, {} bytes of JSON; plan: {} objects, {} operations",
        text.len(),
        native_plan.apply.len(),
        native_plan.operations.len()
    );
    let mut native = Vec::with_capacity(SAMPLES);
    let mut wasm = Vec::with_capacity(SAMPLES);
    let mut base = Vec::with_capacity(SAMPLES);
    for round in 0..SAMPLES + SAMPLES / 10 {
        let start = Instant::now();
        black_box(CassandraDatacenterPolicy::reconcile(black_box(guest.clone())).ok());
        let n = start.elapsed();
        let start = Instant::now();
        black_box(
            tokio
                .block_on(runtime.reconcile(&policy, host.clone()))
                .ok(),
        );
        let w = start.elapsed();
        let b = baseline.as_ref().map(|(runtime, policy)| {
            let start = Instant::now();
            black_box(tokio.block_on(runtime.reconcile(policy, host.clone())).ok());
            start.elapsed()
        });
        if round >= SAMPLES / 10 {
            native.push(n);
            wasm.push(w);
            base.extend(b);
        }
    }
    let (nm, np) = baseline::stats(&mut native);
    let (wm, wp) = baseline::stats(&mut wasm);
    println!(
        "cassandra-datacenter reconcile, {NODES}-node datacenter, {SAMPLES} iterations each (round-robin)"
    );
    println!("native  median {nm:>8.2} ms   p99 {np:>8.2} ms");
    println!("wasm    median {wm:>8.2} ms   p99 {wp:>8.2} ms");
    baseline::ratios((nm, np), (wm, wp), &mut base);
}
