//! The `k8ssandra-cluster` policy on a K8ssandraCluster of four 250-node datacenters (two in
//! each of the data-plane clusters `dp1` and `dp2`, 3 racks each) once everything runs: one
//! reconcile in wasm, as production calls it (`PolicyRuntime::reconcile`), against the same
//! code compiled natively, on the same snapshot, side by side (issue #15).
//!
//! The snapshot is what the host hands the policy in that steady state: the parent with the
//! status the policy wrote; as children the CassandraDatacenters it planned (Ready,
//! Initialized, their spec as applied) and its ReplicatedSecret; as related objects the two
//! ClientConfigs, the superuser Secret in all three clusters and the 1000 Cassandra pods
//! (made from the StatefulSets the `cassandra-datacenter` policy plans for each datacenter,
//! ready, with IPs and a seed per rack); 1000 node states, one of them carrying the gossip
//! view of the whole ring; and the outcomes of the policy's own operations (system keyspace
//! replication, the joins' rebuilds), capped as the host's executor caps them.
//!
//! It is reached rather than written: the policy is called natively from the bare parent,
//! and each plan is fed back the way the host and the data plane would (applied objects
//! become children, a new datacenter gets its pods and node states, generated Secrets are
//! created and replicated, every operation succeeds, the status goes on the parent) until a
//! plan changes nothing. The bench checks that before timing anything.
//!
//! `cargo bench -p k8ssandra-host --bench kc_snapshot` prints median and p99 of each
//! variant over 300 round-robin iterations and their ratio. Figures: docs/benchmarks.md.
//! `KC_SNAPSHOT_BENCH_WASM=<file>` times that component instead of building the workspace's;
//! `KC_SNAPSHOT_BENCH_BASELINE_WASM=<file>` times a second one in the same rounds (old against new).

mod baseline;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

use cassandra_datacenter::CassandraDatacenterPolicy;
use k8ssandra_api::labels;
use k8ssandra_cluster::K8ssandraClusterPolicy;
use k8ssandra_host::dataplane::ExecutorConfig;
use k8ssandra_host::plugin::{PolicyRuntime, RuntimeConfig, parse_snapshot};
use k8ssandra_policy_sdk::{
    ClusterState, NodeRef, NodeState, Object, OperationKind, OperationResult, Outcome, Plan,
    Policy, Snapshot,
};
use serde_json::{Value, json};

/// (datacenter, k8sContext): two per data-plane cluster, created in this order.
const DATACENTERS: [(&str, &str); 4] = [
    ("dc1", "dp1"),
    ("dc2", "dp1"),
    ("dc3", "dp2"),
    ("dc4", "dp2"),
];
const NODES: usize = 250;
const RACKS: usize = 3;
const SAMPLES: usize = 300;
const NS: &str = "db";
const CLUSTER: &str = "big";
/// A bound on the feedback loop: each join rebuilds one node per reconcile, so reaching the
/// steady state takes a little over 3 × 250 rounds.
const MAX_ROUNDS: usize = 5_000;
const START_MS: u64 = 1_767_225_600_000;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host crate sits in the workspace")
        .to_path_buf()
}

/// The component to time: `KC_SNAPSHOT_BENCH_WASM` names a build to load as it is (e.g. one kept from
/// before a change); otherwise the workspace's policy is built and loaded.
fn component() -> PathBuf {
    if let Some(path) = std::env::var_os("KC_SNAPSHOT_BENCH_WASM") {
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
            "k8ssandra-cluster",
            "--target",
            "wasm32-wasip2",
            "--profile",
            "wasm",
        ])
        .status()
        .expect("run cargo");
    assert!(status.success(), "building k8ssandra-cluster failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| ws.join("target"));
    target.join("wasm32-wasip2/wasm/k8ssandra_cluster.wasm")
}

fn k8ssandra_cluster() -> Value {
    let racks: Vec<Value> = (0..RACKS)
        .map(|r| json!({"name": format!("r{r}")}))
        .collect();
    let dcs: Vec<Value> = DATACENTERS
        .iter()
        .map(|(name, ctx)| {
            json!({"metadata": {"name": name}, "k8sContext": ctx, "size": NODES, "racks": racks})
        })
        .collect();
    json!({
        "apiVersion": "k8ssandra.io/v1alpha1", "kind": "K8ssandraCluster",
        "metadata": {"name": CLUSTER, "namespace": NS, "generation": 1, "uid": "kc-uid",
            "resourceVersion": "1", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"cassandra": {
            "serverVersion": "4.1.5",
            "storageConfig": {"cassandraDataVolumeClaimSpec": {
                "storageClassName": "standard",
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "5Gi"}}}},
            "datacenters": dcs,
        }},
    })
}

fn client_config(ctx: &str) -> Object {
    Object {
        cluster: String::new(),
        json: json!({
            "apiVersion": "config.k8ssandra.io/v1beta1", "kind": "ClientConfig",
            "metadata": {"name": ctx, "namespace": NS, "uid": format!("cc-{ctx}"),
                "resourceVersion": "1"},
            "spec": {"contextName": ctx, "kubeConfigSecret": {"name": format!("{ctx}-kubeconfig")}},
            "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Accepted",
                "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
        })
        .to_string(),
    }
}

/// The labels the host stamps on every object it applies for the parent.
fn stamp(v: &mut Value) {
    let l = &mut v["metadata"]["labels"];
    if !l.is_object() {
        *l = json!({});
    }
    l["k8ssandra.io/policy"] = json!("k8ssandra-cluster");
    l["k8ssandra.io/parent-name"] = json!(CLUSTER);
    l["k8ssandra.io/parent-namespace"] = json!(NS);
    l["k8ssandra.io/parent-kind"] = json!("K8ssandraCluster");
    l["k8ssandra.io/parent-cluster-id"] = json!("control-plane");
    l["app.kubernetes.io/managed-by"] = json!("k8ssandra-operator");
}

fn dc_status(generation: i64) -> Value {
    let cond = |t: &str| {
        json!({"type": t, "status": "True", "reason": "", "message": "",
            "lastTransitionTime": "2026-01-01T00:00:00Z"})
    };
    json!({
        "cassandraOperatorProgress": "Ready", "observedGeneration": generation,
        "conditions": [cond("Initialized"), cond("Ready")],
        "nodeStatuses": {}, "lastServerNodeStarted": "2026-01-01T00:00:00Z",
    })
}

/// Where the host and the data plane are, as far as this policy can see.
struct World {
    parent: Value,
    children: Vec<Object>,
    client_configs: Vec<Object>,
    secrets: Vec<Object>,
    pods: Vec<Object>,
    nodes: Vec<NodeState>,
    results: Vec<OperationResult>,
    /// Keyspace → the replication `GetReplication` answers.
    replication: BTreeMap<String, Value>,
    max_results: usize,
    now: u64,
    uid: u64,
}

/// What one plan changed when fed back; all false is the steady state.
#[derive(Debug, Default)]
struct Changes {
    children: usize,
    pruned: usize,
    secrets: usize,
    operations: usize,
    status: bool,
}

impl Changes {
    fn any(&self) -> bool {
        self.children + self.pruned + self.secrets + self.operations > 0 || self.status
    }
}

fn key(o: &Object) -> (String, Option<String>, Option<String>, Option<String>) {
    let v = o.value().unwrap_or_default();
    (
        o.cluster.clone(),
        o.kind(),
        v["metadata"]["namespace"].as_str().map(str::to_string),
        o.name(),
    )
}

impl World {
    fn new() -> Self {
        World {
            parent: k8ssandra_cluster(),
            children: Vec::new(),
            client_configs: vec![client_config("dp1"), client_config("dp2")],
            secrets: Vec::new(),
            pods: Vec::new(),
            nodes: Vec::new(),
            results: Vec::new(),
            replication: BTreeMap::new(),
            max_results: ExecutorConfig::default().max_results_per_parent,
            now: START_MS,
            uid: 0,
        }
    }

    fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::for_parent(Object {
            cluster: String::new(),
            json: self.parent.to_string(),
        });
        s.clusters = ["", "dp1", "dp2"]
            .iter()
            .map(|c| ClusterState {
                name: c.to_string(),
                reachable: true,
                message: None,
            })
            .collect();
        s.children = self.children.clone();
        s.related = self
            .client_configs
            .iter()
            .chain(&self.secrets)
            .chain(&self.pods)
            .cloned()
            .collect();
        s.nodes = self.nodes.clone();
        s.results = self.results.clone();
        s.now_ms = self.now;
        s
    }

    fn next_uid(&mut self, what: &str) -> String {
        self.uid += 1;
        format!("{what}-{}", self.uid)
    }

    /// Feeds a plan back as the host and the data plane would.
    fn feed(&mut self, plan: &Plan) -> Changes {
        let mut ch = Changes::default();
        for o in &plan.apply {
            self.apply(o, &mut ch);
        }
        // Owned objects the plan no longer lists are pruned.
        let listed: Vec<_> = plan.apply.iter().map(key).collect();
        // Only one copy per object: a plan listing one twice would be a policy bug.
        assert_eq!(
            listed.len(),
            listed
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            "the plan lists an object twice"
        );
        let before = self.children.len();
        self.children.retain(|c| listed.contains(&key(c)));
        ch.pruned = before - self.children.len();
        for s in &plan.secrets {
            let present = self.secrets.iter().any(|o| {
                o.cluster == s.cluster
                    && o.name().as_deref() == Some(&s.name)
                    && o.value().unwrap_or_default()["metadata"]["namespace"] == s.namespace
            });
            if present {
                continue;
            }
            let mut data = serde_json::Map::new();
            for (k, v) in &s.fixed {
                data.insert(k.clone(), json!(b64(v)));
            }
            for k in &s.random_keys {
                data.insert(k.clone(), json!(b64("aB3dE5fG7hJ9kL1mN3pQ")));
            }
            let labels: BTreeMap<_, _> = s.labels.iter().cloned().collect();
            let uid = self.next_uid("secret");
            self.secrets.push(Object {
                cluster: s.cluster.clone(),
                json: json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                    "metadata": {"name": s.name, "namespace": s.namespace, "uid": uid,
                        "resourceVersion": "1", "labels": labels},
                    "data": data})
                .to_string(),
            });
            ch.secrets += 1;
        }
        ch.secrets += self.replicate_secrets();
        for op in &plan.operations {
            let body = self.perform(&op.kind);
            self.results.retain(|r| r.id != op.id);
            self.results.push(OperationResult {
                id: op.id.clone(),
                outcome: Outcome::Succeeded(body),
                at_ms: self.now,
            });
            ch.operations += 1;
        }
        self.evict();
        if let Some(text) = &plan.status {
            let status: Value = serde_json::from_str(text).expect("status is JSON");
            if self.parent["status"] != status {
                self.parent["status"] = status;
                ch.status = true;
            }
        }
        self.now += 1_000;
        ch
    }

    fn apply(&mut self, o: &Object, ch: &mut Changes) {
        // A kind the policy does not own would be a patch of an object it reads.
        let owned = K8ssandraClusterPolicy::describe()
            .owns
            .iter()
            .any(|k| o.kind().as_deref() == Some(k.kind.as_str()));
        assert!(owned, "the steady-state path patches nothing it reads");
        let mut want = o.value().expect("planned object is JSON");
        stamp(&mut want);
        let k = key(o);
        let existing = self.children.iter().position(|c| key(c) == k);
        let is_dc = o.kind().as_deref() == Some("CassandraDatacenter");
        match existing {
            Some(i) => {
                let mut live = self.children[i].value().expect("child is JSON");
                let before = live.clone();
                if is_dc && live["spec"] != want["spec"] {
                    let g = live["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
                    live["metadata"]["generation"] = json!(g);
                    live["status"] = dc_status(g);
                }
                for f in ["labels", "annotations"] {
                    live["metadata"][f] = want["metadata"][f].clone();
                }
                if let (Some(l), Some(w)) = (live.as_object_mut(), want.as_object()) {
                    for (f, v) in w {
                        if f != "metadata" && f != "status" {
                            l.insert(f.clone(), v.clone());
                        }
                    }
                }
                if live != before {
                    self.children[i].json = live.to_string();
                    ch.children += 1;
                }
            }
            None => {
                let uid = self.next_uid("child");
                want["metadata"]["uid"] = json!(uid);
                want["metadata"]["generation"] = json!(1);
                want["metadata"]["resourceVersion"] = json!("1");
                want["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
                if is_dc {
                    // cass-operator has run it: ready, every node up.
                    want["status"] = dc_status(1);
                    self.start_datacenter(&o.cluster, &want);
                }
                self.children.push(Object {
                    cluster: o.cluster.clone(),
                    json: want.to_string(),
                });
                ch.children += 1;
            }
        }
    }

    /// The ReplicatedSecret copies the superuser Secret into each of its targets.
    fn replicate_secrets(&mut self) -> usize {
        let mut added = 0;
        let targets: Vec<(String, String)> = self
            .children
            .iter()
            .filter(|c| c.kind().as_deref() == Some("ReplicatedSecret"))
            .filter_map(|c| c.value().ok())
            .flat_map(|v| {
                v["spec"]["replicationTargets"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .map(|t| {
                (
                    t["k8sContextName"].as_str().unwrap_or_default().to_string(),
                    t["namespace"].as_str().unwrap_or(NS).to_string(),
                )
            })
            .collect();
        let local: Vec<Object> = self
            .secrets
            .iter()
            .filter(|s| s.cluster.is_empty())
            .cloned()
            .collect();
        for (ctx, ns) in targets {
            for s in &local {
                let there = self
                    .secrets
                    .iter()
                    .any(|o| o.cluster == ctx && o.name() == s.name());
                if there {
                    continue;
                }
                let mut v = s.value().expect("secret is JSON");
                v["metadata"]["namespace"] = json!(ns);
                v["metadata"]["uid"] = json!(self.next_uid("secret"));
                self.secrets.push(Object {
                    cluster: ctx.clone(),
                    json: v.to_string(),
                });
                added += 1;
            }
        }
        added
    }

    /// What the management API answers, and what it changes.
    fn perform(&mut self, kind: &OperationKind) -> String {
        match kind {
            OperationKind::GetReplication(ks) => self
                .replication
                .get(ks)
                .cloned()
                .unwrap_or_else(|| {
                    json!({"class": "org.apache.cassandra.locator.SimpleStrategy",
                        "replication_factor": "1"})
                })
                .to_string(),
            OperationKind::AlterKeyspace(r) => {
                let mut v =
                    json!({"class": "org.apache.cassandra.locator.NetworkTopologyStrategy"});
                for (dc, n) in &r.replicas {
                    v[dc] = json!(n.to_string());
                }
                self.replication.insert(r.keyspace.clone(), v);
                String::new()
            }
            OperationKind::ListKeyspaces => {
                let ks: Vec<&str> = labels::SYSTEM_KEYSPACES.to_vec();
                json!(ks).to_string()
            }
            _ => String::new(),
        }
    }

    /// As the host's executor: beyond its cap the oldest finished outcomes are dropped.
    fn evict(&mut self) {
        if self.results.len() <= self.max_results {
            return;
        }
        self.results
            .sort_by(|a, b| (a.at_ms, &a.id).cmp(&(b.at_ms, &b.id)));
        let excess = self.results.len() - self.max_results;
        self.results.drain(..excess);
        self.results.sort_by(|a, b| a.id.cmp(&b.id));
    }

    /// A CassandraDatacenter cass-operator has brought up: the pods of the StatefulSets
    /// the `cassandra-datacenter` policy plans for it, all ready, and their node states.
    fn start_datacenter(&mut self, cluster: &str, dc: &Value) {
        let mut s = Snapshot::for_parent(Object {
            cluster: String::new(),
            json: dc.to_string(),
        });
        s.now_ms = self.now;
        let plan = CassandraDatacenterPolicy::reconcile(s).expect("datacenter plan");
        let sets: Vec<Value> = plan
            .apply
            .iter()
            .filter(|o| o.kind().as_deref() == Some("StatefulSet"))
            .filter_map(|o| o.value().ok())
            .collect();
        let dc_index = DATACENTERS
            .iter()
            .position(|(n, _)| dc["metadata"]["name"] == *n)
            .expect("a spec datacenter");
        let mut n = 0;
        for sts in &sets {
            let name = sts["metadata"]["name"].as_str().unwrap_or_default();
            let replicas = sts["spec"]["replicas"].as_u64().unwrap_or(0) as usize;
            for ord in 0..replicas {
                let pod = format!("{name}-{ord}");
                let mut labels = sts["spec"]["template"]["metadata"]["labels"].clone();
                labels["statefulset.kubernetes.io/pod-name"] = json!(pod);
                labels["cassandra.datastax.com/node-state"] = json!("Started");
                if ord == 0 {
                    labels[labels::SEED_NODE_LABEL] = json!("true");
                }
                self.pods.push(Object {
                    cluster: cluster.to_string(),
                    json: json!({
                        "apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": pod, "namespace": NS,
                            "uid": format!("uid-{cluster}-{pod}"), "resourceVersion": "1",
                            "labels": labels,
                            "annotations": sts["spec"]["template"]["metadata"]["annotations"]},
                        "spec": sts["spec"]["template"]["spec"],
                        "status": {"phase": "Running", "podIP": ip(dc_index, n),
                            "conditions": [{"type": "Ready", "status": "True"}],
                            "containerStatuses": [{"name": "cassandra", "ready": true,
                                "started": true, "restartCount": 0, "image": "", "imageID": "",
                                "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]},
                    })
                    .to_string(),
                });
                n += 1;
            }
        }
        assert_eq!(
            n, NODES,
            "the StatefulSets hold every node of the datacenter"
        );
        self.observe();
    }

    /// One node state per pod (all ready), and the gossip view of the whole ring from the
    /// first, as the host asks one ready node per Cassandra cluster.
    fn observe(&mut self) {
        let mut endpoints = Vec::new();
        let mut nodes = Vec::new();
        for (i, p) in self.pods.iter().enumerate() {
            let v = p.value().expect("pod is JSON");
            let address = v["status"]["podIP"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            endpoints.push(json!({
                "ENDPOINT_IP": address, "DC": v["metadata"]["labels"][labels::DATACENTER_LABEL],
                "RACK": v["metadata"]["labels"][labels::RACK_LABEL], "STATUS": "NORMAL,1",
                "IS_ALIVE": "true", "HOST_ID": format!("h-{i}"),
                "TOKENS": format!("{}", i as i64 * 1000), "RELEASE_VERSION": "4.1.5",
            }));
            nodes.push(NodeState {
                node: NodeRef {
                    cluster: p.cluster.clone(),
                    namespace: NS.into(),
                    pod: p.name().unwrap_or_default(),
                },
                address: Some(address),
                reachable: true,
                error: None,
                alive: true,
                ready: true,
                endpoints: None,
            });
        }
        if let Some(first) = nodes.first_mut() {
            first.endpoints = Some(json!({ "entity": endpoints }).to_string());
        }
        self.nodes = nodes;
    }
}

fn ip(dc: usize, i: usize) -> String {
    format!("10.{}.{}.{}", dc + 1, i / 256, i % 256)
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Feeds native plans back until one changes nothing, and returns that world.
fn steady_state() -> World {
    let mut world = World::new();
    for round in 0..MAX_ROUNDS {
        let plan = K8ssandraClusterPolicy::reconcile(world.snapshot()).expect("native plan");
        let changes = world.feed(&plan);
        if !changes.any() {
            let dcs = world
                .children
                .iter()
                .filter(|c| c.kind().as_deref() == Some("CassandraDatacenter"))
                .count();
            assert_eq!(dcs, DATACENTERS.len(), "every datacenter exists");
            assert_eq!(world.pods.len(), DATACENTERS.len() * NODES);
            assert!(
                plan.operations.is_empty() && plan.delete.is_empty(),
                "steady state plans no operation or deletion"
            );
            let joined = world.children.iter().all(|c| {
                c.kind().as_deref() != Some("CassandraDatacenter")
                    || c.value().unwrap_or_default()["metadata"]["annotations"]
                        ["k8ssandra.io/join-state"]
                        .as_str()
                        .is_none_or(|j| j == "done")
            });
            assert!(joined, "every datacenter finished joining");
            println!(
                "steady state after {round} native reconciles; its plan: {} objects, {} secrets, {} events, requeue {:?}",
                plan.apply.len(),
                plan.secrets.len(),
                plan.events.len(),
                plan.requeue_after_ms
            );
            return world;
        }
    }
    panic!("no steady state after {MAX_ROUNDS} reconciles");
}

fn main() {
    let started = Instant::now();
    let world = steady_state();
    println!("reached in {:.1} s", started.elapsed().as_secs_f64());
    let guest = world.snapshot();
    // The host's snapshot is the same record; the wire JSON is its serde form.
    let text = serde_json::to_string(&guest).expect("snapshot serialises");
    let host = parse_snapshot(&text).expect("snapshot parses");
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
    let native_plan = K8ssandraClusterPolicy::reconcile(guest.clone()).expect("native plan");
    assert_eq!(
        serde_json::to_value(&wasm_plan).expect("plan"),
        serde_json::to_value(&native_plan).expect("plan"),
        "wasm and native plans differ"
    );
    // Another build timed in the same rounds (`KC_SNAPSHOT_BENCH_BASELINE_WASM`, e.g. the policy
    // before a change), so old and new are compared under the same load; it must plan the same.
    let baseline = baseline::load(
        "KC_SNAPSHOT_BENCH_BASELINE_WASM",
        &tokio,
        &host,
        &native_plan,
    );
    println!(
        "snapshot: {} datacenters x {NODES} nodes, {} children, {} related, {} node states, {} results, {} bytes of JSON; plan: {} objects, {} operations",
        DATACENTERS.len(),
        guest.children.len(),
        guest.related.len(),
        guest.nodes.len(),
        guest.results.len(),
        text.len(),
        native_plan.apply.len(),
        native_plan.operations.len()
    );
    let mut native = Vec::with_capacity(SAMPLES);
    let mut wasm = Vec::with_capacity(SAMPLES);
    let mut base = Vec::with_capacity(SAMPLES);
    for round in 0..SAMPLES + SAMPLES / 10 {
        let start = Instant::now();
        black_box(K8ssandraClusterPolicy::reconcile(black_box(guest.clone())).ok());
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
        "k8ssandra-cluster reconcile, {} datacenters x {NODES} nodes, {SAMPLES} iterations each (round-robin)",
        DATACENTERS.len()
    );
    println!("native  median {nm:>8.2} ms   p99 {np:>8.2} ms");
    println!("wasm    median {wm:>8.2} ms   p99 {wp:>8.2} ms");
    baseline::ratios((nm, np), (wm, wp), &mut base);
}
