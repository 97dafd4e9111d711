//! Snapshot in, plan out. `Sim` plays the host, the StatefulSet controller and Cassandra
//! just enough to drive the policy through whole lifecycles: each `step` builds a snapshot,
//! calls `reconcile`, and executes the plan (operations complete one step later, like a
//! bootstrap that takes a while), recording every rule Cassandra would refuse.

use std::collections::{BTreeMap, BTreeSet};

use k8ssandra_api::labels::{RACK_LABEL, SEED_NODE_LABEL};
use k8ssandra_policy_sdk::{
    NodeRef, NodeState, Object, OperationKind, OperationResult, Outcome, Plan, Policy, Snapshot,
};
use serde_json::{Value, json};

use crate::{CassandraDatacenterPolicy as P, TEMPLATE_HASH_ANNOTATION};

const NS: &str = "ns1";

fn dc_json(size: i32, racks: &[&str]) -> Value {
    let racks: Vec<Value> = racks.iter().map(|r| json!({"name": r})).collect();
    json!({
        "apiVersion": "cassandra.datastax.com/v1beta1",
        "kind": "CassandraDatacenter",
        "metadata": {"name": "dc1", "namespace": NS, "generation": 1, "uid": "dc-uid",
                     "finalizers": ["finalizer.cassandra.datastax.com"]},
        "spec": {
            "clusterName": "demo",
            "serverType": "cassandra",
            "serverVersion": "4.1.5",
            "size": size,
            "racks": racks,
            "storageConfig": {"cassandraDataVolumeClaimSpec": {
                "storageClassName": "standard",
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            }},
        },
    })
}

/// The `server-config-init` container of a pod spec (which init container comes first
/// depends on the config builder).
fn config_init(pod_spec: &Value) -> &Value {
    pod_spec["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "server-config-init")
        .unwrap()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum St {
    Down,
    Joining,
    Starting,
    Normal,
    Leaving,
    Left,
}

#[derive(Clone, Debug)]
struct SimPod {
    rack: String,
    seed: bool,
    /// The seed label is there at all (`"true"` or `"false"`).
    seed_labelled: bool,
    uid: String,
    ip: String,
    hash: String,
    state: St,
    terminating: bool,
    created_ms: u64,
}

/// Pending completion of an operation: (id, pod, what happens).
#[derive(Clone, Debug)]
enum Done {
    Up(String),
    Left(String),
    Ok,
}

struct Sim {
    dc: Value,
    sts: BTreeMap<String, Value>,
    pods: BTreeMap<String, SimPod>,
    /// Host id of the data on each pod's volume (keyed by pod name, like a PVC).
    data: BTreeMap<String, String>,
    pvcs: BTreeSet<String>,
    /// `spec.resources.requests.storage` of claims patched by a plan (others ask for 1Gi).
    pvc_requests: BTreeMap<String, String>,
    storage_classes: Vec<Value>,
    results: Vec<OperationResult>,
    pending: Vec<(String, Done)>,
    now: u64,
    serial: u32,
    violations: Vec<String>,
    ops_seen: Vec<(String, OperationKind)>,
    deleted: Vec<String>,
    plans: Vec<Plan>,
    /// Further related objects in every snapshot (MedusaRestoreJobs).
    extra: Vec<Value>,
}

impl Sim {
    fn new(dc: Value) -> Self {
        Sim {
            dc,
            sts: BTreeMap::new(),
            pods: BTreeMap::new(),
            data: BTreeMap::new(),
            pvcs: BTreeSet::new(),
            pvc_requests: BTreeMap::new(),
            storage_classes: vec![
                json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                "metadata": {"name": "standard"}, "provisioner": "x",
                "allowVolumeExpansion": true}),
            ],
            results: Vec::new(),
            pending: Vec::new(),
            now: 1_700_000_000_000,
            serial: 0,
            violations: Vec::new(),
            ops_seen: Vec::new(),
            deleted: Vec::new(),
            plans: Vec::new(),
            extra: Vec::new(),
        }
    }

    fn pod_json(&self, name: &str, p: &SimPod) -> Value {
        let mut labels = json!({
            "cassandra.datastax.com/cluster": "demo",
            "cassandra.datastax.com/datacenter": "dc1",
            "cassandra.datastax.com/rack": p.rack,
        });
        if p.seed_labelled {
            labels[SEED_NODE_LABEL] = json!(if p.seed { "true" } else { "false" });
        }
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "uid": p.uid, "labels": labels,
                         "annotations": {TEMPLATE_HASH_ANNOTATION: p.hash},
                         "creationTimestamp": crate::util::rfc3339(p.created_ms)},
            "status": {"podIP": p.ip},
        });
        if p.terminating {
            pod["metadata"]["deletionTimestamp"] = json!("2023-01-01T00:00:00Z");
        }
        pod
    }

    fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::for_parent(Object {
            cluster: String::new(),
            json: self.dc.to_string(),
        });
        s.now_ms = self.now;
        s.children = self
            .sts
            .values()
            .map(|v| Object {
                cluster: String::new(),
                json: v.to_string(),
            })
            .collect();
        for (name, p) in &self.pods {
            s.related.push(Object {
                cluster: String::new(),
                json: self.pod_json(name, p).to_string(),
            });
        }
        for pvc in &self.pvcs {
            s.related.push(Object {
                cluster: String::new(),
                json: json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": {"name": pvc, "namespace": NS, "labels": {
                        "cassandra.datastax.com/cluster": "demo",
                        "cassandra.datastax.com/datacenter": "dc1"}},
                    "spec": {"resources": {"requests": {"storage":
                        self.pvc_requests.get(pvc).map_or("1Gi", String::as_str)}}}})
                .to_string(),
            });
        }
        for o in &self.extra {
            s.related.push(Object {
                cluster: String::new(),
                json: o.to_string(),
            });
        }
        for sc in &self.storage_classes {
            s.related.push(Object {
                cluster: String::new(),
                json: sc.to_string(),
            });
        }
        let ring: Vec<Value> = self
            .pods
            .iter()
            .filter(|(n, p)| {
                matches!(
                    p.state,
                    St::Joining | St::Normal | St::Leaving | St::Starting
                ) && self.data.contains_key(*n)
            })
            .map(|(n, p)| {
                let status = match p.state {
                    St::Joining => "BOOT,1",
                    St::Leaving => "LEAVING,1",
                    _ => "NORMAL,1",
                };
                json!({"ENDPOINT_IP": p.ip, "HOST_ID": self.data[n], "STATUS": status,
                       "DC": "dc1", "RACK": p.rack, "LOAD": "1000.0"})
            })
            .collect();
        let endpoints = json!({ "entity": ring }).to_string();
        let mut first_ready = true;
        for (name, p) in &self.pods {
            let ready = p.state == St::Normal && !p.terminating;
            let endpoints = (ready && first_ready).then(|| endpoints.clone());
            first_ready &= !ready;
            s.nodes.push(NodeState {
                node: NodeRef {
                    cluster: String::new(),
                    namespace: NS.into(),
                    pod: name.clone(),
                },
                address: Some(p.ip.clone()),
                reachable: !p.terminating,
                error: None,
                alive: !p.terminating,
                ready,
                endpoints,
            });
        }
        s.results = self.results.clone();
        s
    }

    fn status(&self) -> Value {
        self.dc.get("status").cloned().unwrap_or(Value::Null)
    }

    fn condition(&self, t: &str) -> Option<String> {
        self.status()["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == t)
            .map(|c| c["status"].as_str().unwrap_or_default().to_string())
    }

    fn plan(&self) -> Plan {
        P::reconcile(self.snapshot()).expect("reconcile")
    }

    fn record(&mut self, id: &str, outcome: Outcome) {
        self.results.retain(|r| r.id != id);
        self.results.push(OperationResult {
            id: id.into(),
            outcome,
            at_ms: self.now,
        });
    }

    /// One reconcile and its execution.
    fn step(&mut self) -> Plan {
        self.now += 1000;
        // Operations of the previous step complete now.
        for (id, done) in std::mem::take(&mut self.pending) {
            match done {
                Done::Up(pod) => {
                    if let Some(p) = self.pods.get_mut(&pod)
                        && matches!(p.state, St::Joining | St::Starting)
                    {
                        p.state = St::Normal;
                    }
                }
                Done::Left(pod) => {
                    if let Some(p) = self.pods.get_mut(&pod) {
                        p.state = St::Left;
                    }
                    self.data.remove(&pod);
                }
                Done::Ok => {}
            }
            self.record(&id, Outcome::Succeeded(String::new()));
        }
        // Terminating pods go away, as the kubelet would.
        self.pods.retain(|_, p| !p.terminating);

        let plan = self.plan();
        self.execute(&plan);
        self.plans.push(plan.clone());
        plan
    }

    fn execute(&mut self, plan: &Plan) {
        if let Some(s) = &plan.status {
            self.dc["status"] = serde_json::from_str(s).unwrap();
        }
        for o in &plan.apply {
            let v: Value = serde_json::from_str(&o.json).unwrap();
            if v["kind"] == "PersistentVolumeClaim" {
                let name = v["metadata"]["name"].as_str().unwrap().to_string();
                assert!(self.pvcs.contains(&name), "patch of a missing claim {name}");
                let size = v["spec"]["resources"]["requests"]["storage"]
                    .as_str()
                    .unwrap();
                self.pvc_requests.insert(name, size.into());
            }
            // Pods are the StatefulSets': the host only patches the seed label of pods that
            // exist, never creates one.
            if v["kind"] == "Pod" {
                let name = v["metadata"]["name"].as_str().unwrap().to_string();
                let meta = v["metadata"].as_object().unwrap();
                let keys: Vec<&String> = meta.keys().collect();
                assert_eq!(keys, ["labels", "name", "namespace"], "{v}");
                let labels = meta["labels"].as_object().unwrap();
                assert_eq!(labels.len(), 1, "only the seed label: {v}");
                assert!(v.get("spec").is_none() && v.get("status").is_none(), "{v}");
                let p = self.pods.get_mut(&name);
                assert!(p.is_some(), "label of a missing pod {name}");
                if let Some(p) = p {
                    p.seed = labels[SEED_NODE_LABEL] == "true";
                    p.seed_labelled = true;
                }
            }
            // Identity only: a subset of the live object, which the host leaves alone.
            if v["kind"] == "StatefulSet" && v.get("spec").is_some() {
                if let Some(live) = self.sts.get(v["metadata"]["name"].as_str().unwrap()) {
                    assert_eq!(
                        live["spec"]["volumeClaimTemplates"], v["spec"]["volumeClaimTemplates"],
                        "claim templates are immutable"
                    );
                }
                self.sts
                    .insert(v["metadata"]["name"].as_str().unwrap().into(), v);
            }
        }
        for d in &plan.delete {
            self.deleted.push(format!("{}/{}", d.kind, d.name));
            match d.kind.as_str() {
                "Pod" => {
                    if let Some(p) = self.pods.get_mut(&d.name) {
                        p.terminating = true;
                    }
                }
                // Deleted orphaning its pods (the host's rule for explicit deletes).
                "StatefulSet" => {
                    self.sts.remove(&d.name);
                }
                "PersistentVolumeClaim" => {
                    self.pvcs.remove(&d.name);
                    if let Some(pod) = d.name.strip_prefix("server-data-") {
                        self.data.remove(pod);
                    }
                }
                _ => {}
            }
        }
        for op in &plan.operations {
            if self.results.iter().any(|r| r.id == op.id) {
                continue;
            }
            self.ops_seen.push((op.target.pod.clone(), op.kind.clone()));
            let pod = op.target.pod.clone();
            let done = match &op.kind {
                OperationKind::Start(replace) => self.start(&pod, replace.clone()),
                OperationKind::Decommission => {
                    let p = self.pods.get_mut(&pod).unwrap();
                    assert_eq!(p.state, St::Normal, "decommission of a node not NORMAL");
                    p.state = St::Leaving;
                    Done::Left(pod.clone())
                }
                _ => Done::Ok,
            };
            self.record(&op.id, Outcome::Running(String::new()));
            self.pending.push((op.id.clone(), done));
        }
        self.materialize();
    }

    fn start(&mut self, pod: &str, replace: Option<String>) -> Done {
        let others_moving = self
            .pods
            .iter()
            .any(|(n, p)| n != pod && matches!(p.state, St::Joining | St::Leaving));
        let seed_up = self
            .pods
            .iter()
            .any(|(n, p)| n != pod && p.seed && p.state == St::Normal);
        let p = self.pods.get(pod).cloned().unwrap();
        assert!(!p.terminating, "start of a terminating pod {pod}");
        if p.state != St::Down {
            return Done::Ok;
        }
        if !p.seed && !seed_up {
            self.violations.push(format!("no_seed: {pod}"));
        }
        let fresh = !self.data.contains_key(pod);
        let bootstrap = fresh && (!p.seed || replace.is_some());
        if bootstrap && others_moving {
            self.violations.push(format!("concurrent_bootstrap: {pod}"));
        }
        // A seed skips bootstrap: a new one would own ranges whose data is elsewhere.
        let ring_has_data = self.data.keys().any(|n| n != pod);
        if fresh && p.seed && replace.is_none() && ring_has_data {
            self.violations
                .push(format!("seed_bootstrap_into_data: {pod}"));
        }
        // Streaming needs every other token owner up.
        let replaced_ip = replace.clone();
        let owner_down = self.pods.iter().any(|(n, o)| {
            n != pod
                && self.data.contains_key(n)
                && !matches!(o.state, St::Normal | St::Leaving | St::Joining)
                && replaced_ip.as_deref() != Some(o.ip.as_str())
        });
        if bootstrap && owner_down {
            self.violations
                .push(format!("bootstrap_replica_down: {pod}"));
        }
        if fresh {
            self.serial += 1;
            self.data
                .insert(pod.into(), format!("host-{}", self.serial));
        }
        let p = self.pods.get_mut(pod).unwrap();
        p.state = if bootstrap { St::Joining } else { St::Starting };
        Done::Up(pod.into())
    }

    /// The StatefulSet controller: pods for ordinals below replicas, none above.
    fn materialize(&mut self) {
        for (name, sts) in self.sts.clone() {
            let replicas = sts["spec"]["replicas"].as_u64().unwrap() as usize;
            let tmeta = &sts["spec"]["template"]["metadata"];
            for i in 0..replicas {
                let pod = format!("{name}-{i}");
                if self.pods.contains_key(&pod) {
                    continue;
                }
                self.serial += 1;
                self.pvcs.insert(format!("server-data-{pod}"));
                self.pods.insert(
                    pod,
                    SimPod {
                        rack: tmeta["labels"][RACK_LABEL].as_str().unwrap().into(),
                        seed: tmeta["labels"][SEED_NODE_LABEL] == "true",
                        seed_labelled: !tmeta["labels"][SEED_NODE_LABEL].is_null(),
                        uid: format!("uid-{}", self.serial),
                        ip: format!("10.0.0.{}", self.serial),
                        hash: tmeta["annotations"][TEMPLATE_HASH_ANNOTATION]
                            .as_str()
                            .unwrap()
                            .into(),
                        state: St::Down,
                        terminating: false,
                        created_ms: self.now,
                    },
                );
            }
            let prefix = format!("{name}-");
            for (pod, p) in self.pods.iter_mut() {
                let ord = pod
                    .strip_prefix(&prefix)
                    .and_then(|o| o.parse::<usize>().ok());
                if ord.is_some_and(|o| o >= replicas) {
                    p.terminating = true;
                }
            }
        }
    }

    fn run_until_ready(&mut self, max: usize) -> usize {
        for i in 0..max {
            let plan = self.step();
            let progress = self.status()["cassandraOperatorProgress"].clone();
            if progress == "Ready" && plan.operations.is_empty() && plan.delete.is_empty() {
                return i + 1;
            }
        }
        panic!("not ready after {max} steps; status: {:#}", self.status());
    }

    fn ready_count(&self) -> usize {
        self.pods.values().filter(|p| p.state == St::Normal).count()
    }

    fn starts(&self) -> Vec<(String, Option<String>)> {
        self.ops_seen
            .iter()
            .filter_map(|(pod, k)| match k {
                OperationKind::Start(r) => Some((pod.clone(), r.clone())),
                _ => None,
            })
            .collect()
    }
}

fn kinds(plan: &Plan) -> Vec<(String, String)> {
    plan.apply
        .iter()
        .map(|o| (o.kind().unwrap_or_default(), o.name().unwrap_or_default()))
        .collect()
}

fn sts_of(plan: &Plan, name: &str) -> Value {
    plan.apply
        .iter()
        .find(|o| o.name().as_deref() == Some(name))
        .map(|o| o.value().unwrap())
        .unwrap()
}

#[test]
fn describe_names_parent_children_and_reads() {
    let info = P::describe();
    assert_eq!(info.name, "cassandra-datacenter");
    assert_eq!(info.parent.kind, "CassandraDatacenter");
    let owns: Vec<_> = info.owns.iter().map(|k| k.kind.as_str()).collect();
    assert_eq!(
        owns,
        [
            "StatefulSet",
            "Service",
            "PodDisruptionBudget",
            "EndpointSlice",
            "ConfigMap",
            "ServiceMonitor"
        ]
    );
    // Pods and claims by label; CassandraTasks (replacenode requests), MedusaRestoreJobs and StorageClasses
    // (cluster-scoped) carry none.
    assert!(info.reads.iter().all(|r| r.kind.kind == "CassandraTask"
        || r.kind.kind == "MedusaRestoreJob"
        || r.kind.kind == "StorageClass"
        || !r.selector.is_empty()));
    assert_eq!(
        info.observe_pods.as_deref(),
        Some("cassandra.datastax.com/cluster")
    );
}

#[test]
fn empty_dc_gets_statefulsets_services_pdb_and_secret() {
    let sim = Sim::new(dc_json(6, &["r1", "r2", "r3"]));
    let plan = sim.plan();
    let k = kinds(&plan);
    assert_eq!(
        k,
        [
            ("StatefulSet", "demo-dc1-r1-sts"),
            ("StatefulSet", "demo-dc1-r2-sts"),
            ("StatefulSet", "demo-dc1-r3-sts"),
            ("Service", "demo-dc1-service"),
            ("Service", "demo-seed-service"),
            ("Service", "demo-dc1-all-pods-service"),
            ("Service", "demo-dc1-additional-seed-service"),
            ("PodDisruptionBudget", "dc1-pdb"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    // Every pod at once; the template never makes a pod a seed.
    let sts = sts_of(&plan, "demo-dc1-r1-sts");
    assert_eq!(sts["spec"]["replicas"], 2);
    assert!(sts["spec"]["template"]["metadata"]["labels"][SEED_NODE_LABEL].is_null());
    assert_eq!(sts["spec"]["podManagementPolicy"], "Parallel");
    assert_eq!(sts["spec"]["updateStrategy"]["type"], "OnDelete");
    assert_eq!(sts["spec"]["serviceName"], "demo-dc1-all-pods-service");
    let pdb = sts_of(&plan, "dc1-pdb");
    assert_eq!(pdb["spec"]["minAvailable"], 5);
    assert_eq!(plan.secrets.len(), 1);
    let secret = &plan.secrets[0];
    assert_eq!(secret.name, "demo-superuser");
    assert_eq!(
        secret.fixed,
        [("username".to_string(), "demo-superuser".to_string())]
    );
    assert_eq!(secret.random_keys, ["password"]);
    assert_eq!(
        plan.finalizers,
        Some(vec!["finalizer.cassandra.datastax.com".into()])
    );
    assert!(plan.operations.is_empty());
}

#[test]
fn seeds_are_running_nodes_labelled_on_their_pods() {
    let mut sim = Sim::new(dc_json(7, &["r1", "r2", "r3"]));
    let plan = sim.step();
    let replicas: Vec<_> = (1..=3)
        .map(|i| sts_of(&plan, &format!("demo-dc1-r{i}-sts"))["spec"]["replicas"].clone())
        .collect();
    assert_eq!(replicas, [json!(3), json!(2), json!(2)]);
    assert_eq!(sim.pods.len(), 7);
    assert!(sim.pods.values().all(|p| !p.seed && !p.seed_labelled));
    // Nothing runs anywhere: the first node is labelled seed, and started only once the
    // label is there (its own address in its seed list makes it form the ring).
    let plan = sim.step();
    assert!(plan.operations.is_empty(), "{:?}", plan.operations);
    let labelled: Vec<_> = sim
        .pods
        .iter()
        .filter(|(_, p)| p.seed)
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(labelled, ["demo-dc1-r1-sts-0"]);
    let plan = sim.step();
    let started: Vec<_> = plan
        .operations
        .iter()
        .map(|o| o.target.pod.as_str())
        .collect();
    assert_eq!(started, ["demo-dc1-r1-sts-0"]);

    sim.run_until_ready(60);
    assert!(sim.violations.is_empty(), "{:?}", sim.violations);
    // Seeds: the first ready pod of each rack (one per rack with three racks), no other
    // pod was ever a seed, and the other six bootstrapped as non-seeds.
    let seeds: BTreeSet<_> = sim
        .pods
        .iter()
        .filter(|(_, p)| p.seed)
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(
        seeds,
        BTreeSet::from([
            "demo-dc1-r1-sts-0",
            "demo-dc1-r2-sts-0",
            "demo-dc1-r3-sts-0"
        ])
    );
    for plan in &sim.plans {
        for o in plan
            .apply
            .iter()
            .filter(|o| o.kind().as_deref() == Some("StatefulSet"))
        {
            let v = o.value().unwrap();
            assert!(v["spec"]["template"]["metadata"]["labels"][SEED_NODE_LABEL].is_null());
        }
    }
    // Steady state: the labels are listed unchanged, nothing else about pods.
    let plan = sim.step();
    let pods: Vec<_> = plan
        .apply
        .iter()
        .filter(|o| o.kind().as_deref() == Some("Pod"))
        .collect();
    assert_eq!(pods.len(), 3);
    assert!(plan.events.iter().all(|e| !e.reason.contains("Seed")));
}

#[test]
fn a_pod_that_is_not_ready_loses_the_seed_label_and_a_ready_one_takes_its_place() {
    let mut sim = Sim::new(dc_json(4, &["r1"]));
    sim.run_until_ready(60);
    let seeds = |sim: &Sim| -> Vec<String> {
        sim.pods
            .iter()
            .filter(|(_, p)| p.seed)
            .map(|(n, _)| n.clone())
            .collect()
    };
    assert_eq!(
        seeds(&sim),
        [
            "demo-dc1-r1-sts-0",
            "demo-dc1-r1-sts-1",
            "demo-dc1-r1-sts-2"
        ]
    );
    // Node 1 goes down and its restart fails (waiting for a retry): no longer a seed, and
    // node 3 becomes one.
    sim.pods.get_mut("demo-dc1-r1-sts-1").unwrap().state = St::Down;
    sim.now += crate::lifecycle::START_TIMEOUT_MS;
    let uid = sim.pods["demo-dc1-r1-sts-1"].uid.clone();
    sim.record(
        &format!("start/demo-dc1-r1-sts-1/{uid}/1"),
        Outcome::Failed("Cassandra exited".into()),
    );
    let plan = sim.plan();
    sim.execute(&plan);
    assert_eq!(
        seeds(&sim),
        [
            "demo-dc1-r1-sts-0",
            "demo-dc1-r1-sts-2",
            "demo-dc1-r1-sts-3"
        ]
    );
    assert!(plan.events.iter().any(|e| e.reason == "UnlabeledPodAsSeed"));
    assert!(plan.events.iter().any(|e| e.reason == "LabeledPodAsSeed"));
    // Labels are set explicitly, also to false (another manager may have set "true").
    let label_of = |plan: &Plan, pod: &str| {
        plan.apply
            .iter()
            .find(|o| o.kind().as_deref() == Some("Pod") && o.name().as_deref() == Some(pod))
            .map(|o| o.value().unwrap()["metadata"]["labels"][SEED_NODE_LABEL].clone())
    };
    assert_eq!(label_of(&plan, "demo-dc1-r1-sts-1"), Some(json!("false")));
    assert_eq!(label_of(&plan, "demo-dc1-r1-sts-3"), Some(json!("true")));
}

#[test]
fn a_scale_up_pod_and_a_recreated_seed_never_start_as_seeds() {
    // A datacenter below three nodes: every node is a seed.
    let mut sim = Sim::new(dc_json(2, &["r1"]));
    sim.run_until_ready(40);
    assert!(sim.pods.values().all(|p| p.seed));
    // Scale-up: the new pod bootstraps as a non-seed, then becomes the third seed.
    sim.dc["spec"]["size"] = json!(3);
    sim.dc["metadata"]["generation"] = json!(2);
    sim.run_until_ready(60);
    assert!(sim.violations.is_empty(), "{:?}", sim.violations);
    assert!(sim.pods.values().all(|p| p.seed));
    // A pod made by an older version from a template with the seed label, with no data
    // (a replacement of a lost volume, say): it loses the label before it starts.
    sim.pods.remove("demo-dc1-r1-sts-2");
    sim.data.remove("demo-dc1-r1-sts-2");
    sim.pods.insert(
        "demo-dc1-r1-sts-2".into(),
        SimPod {
            rack: "r1".into(),
            seed: true,
            seed_labelled: true,
            uid: "uid-old-template".into(),
            ip: "10.9.0.1".into(),
            hash: String::new(),
            state: St::Down,
            terminating: false,
            created_ms: sim.now,
        },
    );
    let mut status = sim.status();
    status["nodeStatuses"]
        .as_object_mut()
        .unwrap()
        .remove("demo-dc1-r1-sts-2");
    sim.dc["status"] = status;
    let plan = sim.step();
    assert!(plan.operations.is_empty(), "{:?}", plan.operations);
    assert!(!sim.pods["demo-dc1-r1-sts-2"].seed);
    sim.run_until_ready(40);
    assert!(sim.violations.is_empty(), "{:?}", sim.violations);
}

#[test]
fn nodes_start_one_at_a_time_seed_first() {
    let mut sim = Sim::new(dc_json(6, &["r1", "r2", "r3"]));
    sim.step();
    sim.step();
    assert_eq!(sim.pods.len(), 6);
    // With six pods and none started, exactly one start: a seed.
    let mut fresh = Sim::new(sim.dc.clone());
    fresh.sts = sim.sts.clone();
    fresh.pods = sim.pods.clone();
    for p in fresh.pods.values_mut() {
        p.state = St::Down;
    }
    let plan = fresh.plan();
    assert_eq!(plan.operations.len(), 1);
    let first = &plan.operations[0];
    assert!(matches!(first.kind, OperationKind::Start(None)));
    assert!(fresh.pods[&first.target.pod].seed);
    assert_eq!(
        first.id,
        format!(
            "start/{}/{}",
            first.target.pod, fresh.pods[&first.target.pod].uid
        )
    );

    let steps = sim.run_until_ready(40);
    assert!(sim.violations.is_empty(), "{:?}", sim.violations);
    assert_eq!(sim.ready_count(), 6);
    let order: Vec<String> = sim.starts().into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        order,
        [
            "demo-dc1-r1-sts-0",
            "demo-dc1-r2-sts-0",
            "demo-dc1-r3-sts-0",
            "demo-dc1-r1-sts-1",
            "demo-dc1-r2-sts-1",
            "demo-dc1-r3-sts-1",
        ]
    );
    // Never two starts in one plan, each start after the previous node is ready.
    assert!(sim.plans.iter().all(|p| {
        p.operations
            .iter()
            .filter(|o| matches!(o.kind, OperationKind::Start(_)))
            .count()
            <= 1
    }));
    assert!(steps < 30, "took {steps} steps");
    assert_eq!(sim.condition("Ready").as_deref(), Some("True"));
    assert_eq!(sim.condition("Initialized").as_deref(), Some("True"));
    let status = sim.status();
    assert_eq!(status["nodeStatuses"].as_object().unwrap().len(), 6);
    assert!(status["nodeStatuses"]["demo-dc1-r1-sts-0"]["hostID"].is_string());
    assert!(status["superUserUpserted"].is_string());
    assert!(status["lastServerNodeStarted"].is_string());
    assert_eq!(status["datacenterName"], "dc1");
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(status["readyNodes"], 6);
}

#[test]
fn superuser_role_is_created_once_the_first_node_is_ready() {
    let mut sim = Sim::new(dc_json(3, &["r1"]));
    for _ in 0..5 {
        sim.step();
    }
    let roles: Vec<_> = sim
        .ops_seen
        .iter()
        .filter_map(|(_, k)| match k {
            OperationKind::CreateRole(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0].secret_name, "demo-superuser");
    assert!(roles[0].superuser && roles[0].login);
}

#[test]
fn steady_state_is_deterministic_and_quiet() {
    let mut sim = Sim::new(dc_json(6, &["r1", "r2", "r3"]));
    sim.run_until_ready(40);
    let a = sim.plan();
    let b = sim.plan();
    assert_eq!(a, b);
    assert!(a.operations.is_empty() && a.delete.is_empty());
    assert_eq!(sim.status()["cassandraOperatorProgress"], "Ready");
    // The status written last time is what we'd write again (later clock, same status).
    sim.now += 60_000;
    let c = sim.plan();
    assert_eq!(c.status, a.status);
    assert_eq!(c.apply, a.apply);
}

#[test]
fn scale_up_starts_new_nodes_one_at_a_time_then_cleans_up() {
    let mut sim = Sim::new(dc_json(6, &["r1", "r2", "r3"]));
    sim.run_until_ready(40);
    let before = sim.ops_seen.len();
    sim.dc["spec"]["size"] = json!(9);
    sim.dc["metadata"]["generation"] = json!(2);
    let plan = sim.step();
    assert_eq!(
        sts_of(&plan, "demo-dc1-r1-sts")["spec"]["replicas"],
        json!(3)
    );
    assert_eq!(sim.condition("ScalingUp").as_deref(), Some("True"));
    sim.run_until_ready(40);
    assert!(sim.violations.is_empty(), "{:?}", sim.violations);
    assert_eq!(sim.ready_count(), 9);
    let new_ops = &sim.ops_seen[before..];
    let starts: Vec<_> = new_ops
        .iter()
        .filter(|(_, k)| matches!(k, OperationKind::Start(_)))
        .map(|(p, _)| p.as_str())
        .collect();
    assert_eq!(
        starts,
        [
            "demo-dc1-r1-sts-2",
            "demo-dc1-r2-sts-2",
            "demo-dc1-r3-sts-2"
        ]
    );
    let cleanups = new_ops
        .iter()
        .filter(|(_, k)| matches!(k, OperationKind::Cleanup(_)))
        .count();
    assert_eq!(cleanups, 9);
    assert_eq!(sim.condition("ScalingUp").as_deref(), Some("False"));
}

#[test]
fn no_cleanup_annotation_skips_cleanup() {
    let mut sim = Sim::new(dc_json(3, &["r1"]));
    sim.run_until_ready(30);
    sim.dc["metadata"]["annotations"] = json!({"cassandra.datastax.com/no-cleanup": "true"});
    sim.dc["spec"]["size"] = json!(4);
    sim.run_until_ready(30);
    assert!(
        !sim.ops_seen
            .iter()
            .any(|(_, k)| matches!(k, OperationKind::Cleanup(_)))
    );
}

#[test]
fn scale_down_decommissions_highest_ordinal_then_shrinks() {
    let mut sim = Sim::new(dc_json(9, &["r1", "r2", "r3"]));
    sim.run_until_ready(60);
    let before = sim.ops_seen.len();
    sim.dc["spec"]["size"] = json!(6);
    sim.dc["metadata"]["generation"] = json!(2);

    // First decision: decommission one node (last rack on a tie, highest ordinal), the
    // StatefulSet keeps its size until the node has left.
    let plan = sim.step();
    let decos: Vec<_> = plan
        .operations
        .iter()
        .filter(|o| matches!(o.kind, OperationKind::Decommission))
        .collect();
    assert_eq!(decos.len(), 1);
    assert_eq!(decos[0].target.pod, "demo-dc1-r3-sts-2");
    assert_eq!(
        sts_of(&plan, "demo-dc1-r3-sts")["spec"]["replicas"],
        json!(3)
    );
    assert_eq!(sim.condition("ScalingDown").as_deref(), Some("True"));

    // While it is leaving, nothing else happens and it is not decommissioned again.
    let plan = sim.plan();
    assert!(
        plan.operations
            .iter()
            .all(|o| !matches!(o.kind, OperationKind::Decommission)
                || sim.results.iter().any(|r| r.id == o.id))
    );

    sim.run_until_ready(60);
    assert_eq!(sim.pods.len(), 6);
    let decos: Vec<_> = sim.ops_seen[before..]
        .iter()
        .filter(|(_, k)| matches!(k, OperationKind::Decommission))
        .map(|(p, _)| p.as_str())
        .collect();
    assert_eq!(
        decos,
        [
            "demo-dc1-r3-sts-2",
            "demo-dc1-r2-sts-2",
            "demo-dc1-r1-sts-2"
        ]
    );
    assert!(
        sim.deleted
            .contains(&"PersistentVolumeClaim/server-data-demo-dc1-r3-sts-2".into())
    );
    assert!(!sim.pvcs.contains("server-data-demo-dc1-r1-sts-2"));
    assert_eq!(sim.condition("ScalingDown").as_deref(), Some("False"));
    assert_eq!(sim.status()["nodeStatuses"].as_object().unwrap().len(), 6);
    assert!(sim.violations.is_empty(), "{:?}", sim.violations);
}

#[test]
fn a_leaving_node_is_not_decommissioned_again_after_a_restart() {
    let mut sim = Sim::new(dc_json(4, &["r1"]));
    sim.run_until_ready(40);
    sim.dc["spec"]["size"] = json!(3);
    sim.step();
    // The operator restarts: results are lost, the node is LEAVING in the ring.
    sim.results.clear();
    assert_eq!(sim.pods["demo-dc1-r1-sts-3"].state, St::Leaving);
    let plan = sim.plan();
    assert!(
        plan.operations
            .iter()
            .all(|o| !matches!(o.kind, OperationKind::Decommission))
    );
    assert_eq!(sim.condition("Decommission").as_deref(), Some("True"));
}

#[test]
fn scale_down_is_refused_when_the_rest_cannot_hold_the_data() {
    let mut sim = Sim::new(dc_json(3, &["r1"]));
    sim.run_until_ready(30);
    sim.dc["spec"]["size"] = json!(2);
    // Volumes of 1500 bytes; each node holds 1000 bytes: two nodes can't take 3000.
    sim.dc["spec"]["storageConfig"]["cassandraDataVolumeClaimSpec"]["resources"]["requests"]["storage"] =
        json!("1500");
    sim.pvcs.clear();
    let plan = sim.plan();
    assert!(
        plan.operations
            .iter()
            .all(|o| !matches!(o.kind, OperationKind::Decommission))
    );
    let st: Value = serde_json::from_str(plan.status.as_ref().unwrap()).unwrap();
    let sd = st["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "ScalingDown")
        .unwrap()
        .clone();
    assert_eq!(sd["reason"], "NotEnoughCapacity");
}

#[test]
fn stopped_scales_to_zero_and_resumes_without_bootstraps() {
    let mut sim = Sim::new(dc_json(6, &["r1", "r2", "r3"]));
    sim.run_until_ready(40);
    let pvcs = sim.pvcs.clone();
    sim.dc["spec"]["stopped"] = json!(true);
    let plan = sim.step();
    for i in 1..=3 {
        assert_eq!(
            sts_of(&plan, &format!("demo-dc1-r{i}-sts"))["spec"]["replicas"],
            json!(0)
        );
    }
    assert!(
        !plan
            .delete
            .iter()
            .any(|d| d.kind == "PersistentVolumeClaim")
    );
    sim.step();
    assert!(sim.pods.is_empty());
    assert_eq!(sim.pvcs, pvcs);
    assert_eq!(sim.condition("Stopped").as_deref(), Some("True"));
    assert_eq!(sim.condition("Ready").as_deref(), Some("False"));

    let before = sim.ops_seen.len();
    sim.dc["spec"]["stopped"] = json!(false);
    sim.step();
    assert_eq!(sim.condition("Resuming").as_deref(), Some("True"));
    assert_eq!(sim.condition("Stopped").as_deref(), Some("False"));
    let steps = sim.run_until_ready(40);
    assert!(sim.violations.is_empty(), "{:?}", sim.violations);
    assert_eq!(sim.ready_count(), 6);
    assert_eq!(sim.condition("Resuming").as_deref(), Some("False"));
    // Nodes with data rejoin together once a seed is up: far fewer rounds than 6 serial
    // bootstraps.
    let starts = sim.ops_seen[before..]
        .iter()
        .filter(|(_, k)| matches!(k, OperationKind::Start(None)))
        .count();
    assert_eq!(starts, 6);
    assert!(steps <= 8, "resume took {steps} steps");
}

fn restore_job(phase: &str, dc: &str, namespace: &str) -> Value {
    json!({
        "apiVersion": "medusa.k8ssandra.io/v1alpha1", "kind": "MedusaRestoreJob",
        "metadata": {"name": format!("restore-{dc}-{namespace}-{phase}"), "namespace": namespace},
        "spec": {"backup": "b1", "cassandraDatacenter": dc},
        "status": {"restoreKey": "k1", "phase": phase},
    })
}

#[test]
fn a_restore_job_stopping_the_datacenter_stops_it_without_its_spec_and_resumes() {
    let mut sim = Sim::new(dc_json(3, &["r1", "r2", "r3"]));
    sim.run_until_ready(40);
    let spec = sim.dc["spec"].clone();
    // Another datacenter's, another namespace's, or a job past its stop: nothing stops.
    sim.extra = vec![
        restore_job("Stopping", "dc2", NS),
        restore_job("Stopping", "dc1", "elsewhere"),
        restore_job("Starting", "dc1", NS),
    ];
    let plan = sim.step();
    assert_eq!(
        sts_of(&plan, "demo-dc1-r1-sts")["spec"]["replicas"],
        json!(1)
    );
    assert_eq!(sim.condition("Stopped").as_deref(), Some("False"));

    sim.extra = vec![restore_job("Stopping", "dc1", NS)];
    let plan = sim.step();
    for i in 1..=3 {
        assert_eq!(
            sts_of(&plan, &format!("demo-dc1-r{i}-sts"))["spec"]["replicas"],
            json!(0)
        );
    }
    assert!(
        !plan
            .delete
            .iter()
            .any(|d| d.kind == "PersistentVolumeClaim")
    );
    sim.step();
    assert!(sim.pods.is_empty());
    assert_eq!(sim.condition("Stopped").as_deref(), Some("True"));
    let stopped = sim.status()["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Stopped")
        .cloned()
        .unwrap();
    assert_eq!(stopped["reason"], "StoppedForRestore");
    assert!(
        stopped["message"]
            .as_str()
            .unwrap()
            .contains("restore-dc1-")
    );
    assert_eq!(sim.dc["spec"], spec, "the spec is never touched");

    // The job moves on: the datacenter resumes, its nodes rejoin with their data.
    sim.extra = vec![restore_job("Starting", "dc1", NS)];
    sim.step();
    assert_eq!(sim.condition("Resuming").as_deref(), Some("True"));
    sim.run_until_ready(40);
    assert!(sim.violations.is_empty(), "{:?}", sim.violations);
    assert_eq!(sim.ready_count(), 3);
}

#[test]
fn rolling_restart_deletes_one_pod_at_a_time() {
    let mut sim = Sim::new(dc_json(6, &["r1", "r2", "r3"]));
    sim.run_until_ready(40);
    sim.dc["spec"]["rollingRestartRequested"] = json!(true);
    sim.dc["metadata"]["generation"] = json!(2);
    let deleted_before = sim.deleted.len();
    sim.run_until_ready(80);
    let pods_deleted: Vec<_> = sim.deleted[deleted_before..]
        .iter()
        .filter(|d| d.starts_with("Pod/"))
        .cloned()
        .collect();
    assert_eq!(
        pods_deleted,
        [
            "Pod/demo-dc1-r1-sts-1",
            "Pod/demo-dc1-r1-sts-0",
            "Pod/demo-dc1-r2-sts-1",
            "Pod/demo-dc1-r2-sts-0",
            "Pod/demo-dc1-r3-sts-1",
            "Pod/demo-dc1-r3-sts-0",
        ]
    );
    // Never more than one pod deleted per plan, and never while a node is down.
    for p in &sim.plans {
        assert!(p.delete.iter().filter(|d| d.kind == "Pod").count() <= 1);
    }
    assert!(sim.violations.is_empty(), "{:?}", sim.violations);
    assert_eq!(sim.condition("RollingRestart").as_deref(), Some("False"));
    assert!(sim.status()["lastRollingRestart"].is_string());
    // Recreated seed pods come back without the label (they rejoin with their data
    // through the other seeds) and are seeds again once ready.
    assert_eq!(sim.pods.values().filter(|p| p.seed).count(), 3);
    // A later reconcile doesn't restart again.
    let plan = sim.step();
    assert!(plan.delete.is_empty());
}

#[test]
fn config_change_rolls_out_and_waits_for_readiness() {
    let mut sim = Sim::new(dc_json(3, &["r1"]));
    sim.run_until_ready(30);
    sim.dc["spec"]["config"] = json!({"cassandra-yaml": {"num_tokens": 8}});
    sim.dc["metadata"]["generation"] = json!(2);
    let plan = sim.step();
    assert_eq!(
        plan.delete
            .iter()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>(),
        ["demo-dc1-r1-sts-2"]
    );
    assert_eq!(sim.condition("Updating").as_deref(), Some("True"));
    // The deleted pod is being recreated: no second deletion until it's ready again.
    let plan = sim.step();
    assert!(plan.delete.is_empty());
    sim.run_until_ready(30);
    assert_eq!(sim.condition("Updating").as_deref(), Some("False"));
    let sts = sts_of(sim.plans.last().unwrap(), "demo-dc1-r1-sts");
    let env = &config_init(&sts["spec"]["template"]["spec"])["env"];
    let data = env
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "CONFIG_FILE_DATA")
        .unwrap();
    let cfg: Value = serde_json::from_str(data["value"].as_str().unwrap()).unwrap();
    assert_eq!(cfg["cassandra-yaml"]["num_tokens"], 8);
    // The additional-seed Service is listed even with no additional seeds yet, so seeds
    // appearing later don't change the pod template.
    assert_eq!(
        cfg["cluster-info"]["seeds"],
        "demo-seed-service,demo-dc1-additional-seed-service"
    );
}

#[test]
fn a_running_replacenode_task_is_a_replacement_request() {
    let mut sim = Sim::new(dc_json(3, &["r1"]));
    sim.run_until_ready(30);
    let pod = "demo-dc1-r1-sts-1";
    let task = |current: &str, phase: &str| Object {
        cluster: String::new(),
        json: json!({
            "apiVersion": "control.k8ssandra.io/v1alpha1", "kind": "CassandraTask",
            "metadata": {"name": "t", "namespace": NS},
            "spec": {"datacenter": {"name": "dc1"}, "jobs": [
                {"name": "f", "command": "flush"},
                {"name": "x", "command": "replacenode", "args": {"pod_name": pod}}]},
            "status": {"startTime": "2023-01-01T00:00:00Z",
                "conditions": [{"type": "Running", "status": "True", "reason": "JobRunning",
                    "message": current, "lastTransitionTime": "2023-01-01T00:00:00Z"}],
                "podStatuses": {pod: {"status": phase}}},
        })
        .to_string(),
    };
    let deleted = |t: Object| {
        let mut s = sim.snapshot();
        s.related.push(t);
        P::reconcile(s)
            .unwrap()
            .delete
            .into_iter()
            .map(|d| d.name)
            .collect::<Vec<_>>()
    };
    // Another job of the task, or the pod still waiting: nothing.
    assert!(deleted(task("job 1/2: f", "RUNNING")).is_empty());
    assert!(deleted(task("job 2/2: x", "WAITING")).is_empty());
    assert_eq!(
        deleted(task("job 2/2: x", "RUNNING")),
        [format!("server-data-{pod}"), pod.to_string()]
    );
}

#[test]
fn replace_node_uses_the_old_ip() {
    let mut sim = Sim::new(dc_json(3, &["r1"]));
    sim.run_until_ready(30);
    let old_ip = sim.pods["demo-dc1-r1-sts-1"].ip.clone();
    sim.dc["spec"]["replaceNodes"] = json!(["demo-dc1-r1-sts-1"]);
    sim.dc["metadata"]["generation"] = json!(2);
    let plan = sim.step();
    let deleted: Vec<_> = plan
        .delete
        .iter()
        .map(|d| (d.kind.as_str(), d.name.as_str()))
        .collect();
    assert_eq!(
        deleted,
        [
            ("PersistentVolumeClaim", "server-data-demo-dc1-r1-sts-1"),
            ("Pod", "demo-dc1-r1-sts-1")
        ]
    );
    assert_eq!(sim.condition("ReplacingNodes").as_deref(), Some("True"));
    assert_eq!(
        sim.status()["nodeReplacements"],
        json!(["demo-dc1-r1-sts-1"])
    );
    let before = sim.ops_seen.len();
    sim.run_until_ready(30);
    let starts: Vec<_> = sim.ops_seen[before..]
        .iter()
        .filter_map(|(p, k)| match k {
            OperationKind::Start(r) => Some((p.clone(), r.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(starts, [("demo-dc1-r1-sts-1".to_string(), Some(old_ip))]);
    assert_eq!(sim.condition("ReplacingNodes").as_deref(), Some("False"));
    // Still listed in the spec, but not replaced twice.
    for _ in 0..3 {
        let plan = sim.step();
        assert!(plan.delete.is_empty());
    }
    assert!(sim.violations.is_empty(), "{:?}", sim.violations);
}

#[test]
fn deletion_keeps_claims_unless_asked_and_releases_the_finalizer() {
    let mut sim = Sim::new(dc_json(3, &["r1"]));
    sim.run_until_ready(30);
    sim.dc["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
    let plan = sim.plan();
    assert_eq!(plan.finalizers, Some(vec![]));
    assert!(plan.delete.is_empty());
    assert!(plan.status.is_none());

    sim.dc["metadata"]["annotations"] = json!({"cassandra.datastax.com/delete-pvc": "true"});
    let plan = sim.plan();
    let pvcs: Vec<_> = plan.delete.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(pvcs.len(), 3);
    assert!(
        plan.delete
            .iter()
            .all(|d| d.kind == "PersistentVolumeClaim")
    );
    assert_eq!(plan.finalizers, Some(vec![]));
}

#[test]
fn no_finalizer_annotation() {
    let mut sim = Sim::new(dc_json(1, &[]));
    sim.dc["metadata"]["annotations"] = json!({"cassandra.datastax.com/no-finalizer": "true"});
    assert_eq!(sim.plan().finalizers, Some(vec![]));
}

#[test]
fn invalid_spec_reports_and_keeps_children() {
    let mut sim = Sim::new(dc_json(3, &["r1", "r2", "r3"]));
    sim.step();
    sim.dc["spec"]["size"] = json!(2);
    let plan = sim.plan();
    assert!(plan.operations.is_empty() && plan.delete.is_empty());
    // Every live child listed (identity only), so nothing is pruned.
    assert_eq!(plan.apply.len(), 3);
    assert!(
        plan.apply
            .iter()
            .all(|o| o.value().unwrap().get("spec").is_none())
    );
    let st: Value = serde_json::from_str(plan.status.as_ref().unwrap()).unwrap();
    let valid = st["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Valid")
        .unwrap()
        .clone();
    assert_eq!(valid["status"], "False");
    assert!(valid["message"].as_str().unwrap().contains("spec.size"));
}

#[test]
fn validate_checks_versions_fields_and_updates() {
    let field_of = |v: Vec<k8ssandra_policy_sdk::Violation>| {
        v.into_iter().map(|v| v.field).collect::<Vec<_>>()
    };
    let mut dc = dc_json(3, &["r1"]);
    assert!(P::validate(dc.to_string(), None).is_empty());
    dc["spec"]["serverVersion"] = json!("6.8.50");
    assert_eq!(
        field_of(P::validate(dc.to_string(), None)),
        ["spec.serverVersion"]
    );
    dc["spec"]["serverType"] = json!("dse");
    assert!(P::validate(dc.to_string(), None).is_empty());
    dc["spec"]["serverType"] = json!("cassandra");
    dc["spec"]["serverVersion"] = json!("4.0.1");
    dc["spec"]["dseWorkloads"] = json!({"searchEnabled": true});
    dc["spec"]["config"] = json!({"jvm-options": {}, "dse-yaml": {}});
    let f = field_of(P::validate(dc.to_string(), None));
    assert!(f.contains(&"spec.dseWorkloads".to_string()));
    assert!(f.contains(&"spec.config.jvm-options".to_string()));
    assert!(f.contains(&"spec.config.dse-yaml".to_string()));

    let old = dc_json(3, &["r1", "r2", "r3"]);
    let mut new = old.clone();
    new["spec"]["racks"] = json!([{"name": "r1"}, {"name": "r3"}, {"name": "r2"}]);
    let f = field_of(P::validate(new.to_string(), Some(old.to_string())));
    assert!(f.contains(&"spec.racks[1]".to_string()));
    let mut old = old;
    old["spec"]["racks"][0]["zone"] = json!("z1");
    let mut new = old.clone();
    new["spec"]["racks"][0]["zone"] = json!("z2");
    new["spec"]["clusterName"] = json!("other");
    let f = field_of(P::validate(new.to_string(), Some(old.to_string())));
    assert!(f.contains(&"spec.racks[0].zone".to_string()));
    assert!(f.contains(&"spec.clusterName".to_string()));

    // num_tokens: what a node starts with may not change, explicitly or through the
    // version's default; making the default explicit is no change.
    let tokens = "spec.config.cassandra-yaml.num_tokens".to_string();
    let with_tokens = |v: Option<Value>, version: &str| {
        let mut dc = dc_json(3, &["r1"]);
        dc["spec"]["serverVersion"] = json!(version);
        if let Some(v) = v {
            dc["spec"]["config"] = json!({"cassandra-yaml": {"num_tokens": v}});
        }
        dc.to_string()
    };
    let check = |new: String, old: String| field_of(P::validate(new, Some(old)));
    assert!(
        check(
            with_tokens(Some(json!(32)), "4.1.5"),
            with_tokens(Some(json!(16)), "4.1.5")
        )
        .contains(&tokens)
    );
    assert!(
        check(
            with_tokens(None, "4.1.5"),
            with_tokens(Some(json!(32)), "4.1.5")
        )
        .contains(&tokens)
    );
    assert!(check(with_tokens(None, "4.1.5"), with_tokens(None, "3.11.17")).contains(&tokens));
    assert!(
        !check(
            with_tokens(Some(json!(16)), "4.1.5"),
            with_tokens(None, "4.1.5")
        )
        .contains(&tokens)
    );
    assert!(
        !check(
            with_tokens(Some(json!("16")), "4.1.5"),
            with_tokens(Some(json!(16)), "4.1.5")
        )
        .contains(&tokens)
    );
    let message = P::validate(
        with_tokens(Some(json!(32)), "4.1.5"),
        Some(with_tokens(Some(json!(16)), "4.1.5")),
    )
    .into_iter()
    .find(|v| v.field == tokens)
    .map(|v| v.message)
    .unwrap_or_default();
    assert!(message.contains("from 16 to 32"), "{message}");
    // DSE and HCD images' defaults are unknown here: an unset value may be written down
    // once (what the nodes run with), never changed or removed afterwards.
    let dse = |v: Option<Value>| {
        let mut dc: Value = serde_json::from_str(&with_tokens(v, "6.8.50")).unwrap_or_default();
        dc["spec"]["serverType"] = json!("dse");
        dc.to_string()
    };
    assert!(!check(dse(Some(json!(16))), dse(None)).contains(&tokens));
    assert!(check(dse(Some(json!(8))), dse(Some(json!(16)))).contains(&tokens));
    assert!(check(dse(None), dse(Some(json!(16)))).contains(&tokens));
    let mut new = old.clone();
    new["spec"]["racks"] =
        json!([{"name": "r1", "zone": "z1"}, {"name": "r2"}, {"name": "r3"}, {"name": "r4"}]);
    new["spec"]["size"] = json!(3);
    let f = field_of(P::validate(new.to_string(), Some(old.to_string())));
    assert!(f.contains(&"spec.size".to_string()));
}

#[test]
fn pod_template_has_the_upstream_shape() {
    let mut dc = dc_json(3, &["r1"]);
    dc["spec"]["racks"][0]["nodeAffinityLabels"] = json!({"topology.kubernetes.io/zone": "z1"});
    dc["spec"]["podTemplateSpec"] = json!({"spec": {
        "containers": [
            {"name": "sidecar", "image": "busybox"},
            {"name": "cassandra", "env": [{"name": "EXTRA", "value": "1"}]}
        ],
        "volumes": [{"name": "extra", "emptyDir": {}}]
    }});
    dc["spec"]["resources"] = json!({"requests": {"cpu": "1", "memory": "2Gi"}});
    let plan = Sim::new(dc).plan();
    let sts = sts_of(&plan, "demo-dc1-r1-sts");
    let pod = &sts["spec"]["template"]["spec"];
    let names: Vec<_> = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sidecar", "cassandra", "server-system-logger"]);
    let cass = &pod["containers"][1];
    assert_eq!(
        cass["image"],
        "docker.io/k8ssandra/cass-management-api:4.1.5-ubi"
    );
    assert_eq!(cass["env"][0]["name"], "EXTRA");
    assert!(
        cass["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "MGMT_API_EXPLICIT_START")
    );
    assert_eq!(
        cass["readinessProbe"]["httpGet"]["path"],
        "/api/v0/probes/readiness"
    );
    assert_eq!(cass["livenessProbe"]["httpGet"]["port"], 8080);
    assert_eq!(cass["resources"]["requests"]["memory"], "2Gi");
    let ports: Vec<_> = cass["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["containerPort"].as_i64().unwrap())
        .collect();
    assert_eq!(ports, [9042, 9142, 7000, 7001, 7199, 8080, 9103, 9000]);
    // Cassandra 4.1: k8ssandra-client builds the configuration from the image's own.
    assert_eq!(pod["initContainers"][0]["name"], "server-config-init-base");
    assert_eq!(pod["initContainers"][1]["name"], "server-config-init");
    assert_eq!(
        pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            [0]["matchExpressions"][0]["key"],
        "topology.kubernetes.io/zone"
    );
    assert_eq!(
        pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"],
        "kubernetes.io/hostname"
    );
    let vols: Vec<_> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        vols,
        [
            "extra",
            "server-config",
            "server-logs",
            "tmp",
            "etc-cassandra",
            "server-config-base",
            "vector-lib"
        ]
    );
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"],
        "server-data"
    );
}

#[test]
fn dse_gets_its_image_env_and_workloads() {
    let mut dc = dc_json(1, &[]);
    dc["spec"]["serverType"] = json!("dse");
    dc["spec"]["serverVersion"] = json!("6.8.50");
    dc["spec"]["dseWorkloads"] = json!({"searchEnabled": true});
    let plan = Sim::new(dc).plan();
    let sts = sts_of(&plan, "demo-dc1-default-sts");
    let pod = &sts["spec"]["template"]["spec"];
    let cass = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "cassandra")
        .unwrap();
    assert_eq!(
        cass["image"],
        "docker.io/datastax/dse-mgmtapi-6_8:6.8.50-ubi"
    );
    assert!(
        cass["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "JVM_EXTRA_OPTS" && e["value"] == "-Dsearch-service=true")
    );
    let cfg_env = config_init(pod)["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "CONFIG_FILE_DATA")
        .unwrap()
        .clone();
    let cfg: Value = serde_json::from_str(cfg_env["value"].as_str().unwrap()).unwrap();
    assert_eq!(cfg["datacenter-info"]["solr-enabled"], 1);
    assert!(cfg["dse-yaml"].is_object());
}

/// Golden StatefulSet of a small datacenter; `UPDATE_GOLDEN=1` rewrites it.
#[test]
fn golden_statefulset() {
    let mut dc = dc_json(3, &["r1"]);
    dc["spec"]["config"] = json!({"jvm-server-options": {"max_heap_size": "512M"}});
    let mut sim = Sim::new(dc);
    sim.step();
    let plan = sim.step();
    let sts = sts_of(&plan, "demo-dc1-r1-sts");
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/statefulset-small.json"
    );
    let actual = format!("{}\n", serde_json::to_string_pretty(&sts).unwrap());
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(std::path::Path::new(path).parent().unwrap()).unwrap();
        std::fs::write(path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(path)
        .expect("golden file missing; run with UPDATE_GOLDEN=1 to create it");
    assert_eq!(actual, expected, "StatefulSet differs from {path}");
}

#[test]
fn additional_seeds_get_an_endpoint_slice_and_join_the_seed_list() {
    let mut dc = dc_json(1, &[]);
    // Loopback seeds (test clusters) are refused by the API in any EndpointSlice.
    dc["spec"]["additionalSeeds"] = json!(["192.168.1.10", "seed.example.com", "127.12.0.3"]);
    let plan = Sim::new(dc).plan();
    let slice = plan
        .apply
        .iter()
        .map(|o| o.value().unwrap())
        .find(|v| v["kind"] == "EndpointSlice")
        .unwrap();
    assert_eq!(
        slice["endpoints"],
        json!([{"addresses": ["192.168.1.10"], "conditions": {"ready": true}}])
    );
    assert_eq!(
        slice["metadata"]["labels"]["kubernetes.io/service-name"],
        "demo-dc1-additional-seed-service"
    );
    let sts = sts_of(&plan, "demo-dc1-default-sts");
    let env = config_init(&sts["spec"]["template"]["spec"])["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "CONFIG_FILE_DATA")
        .unwrap()
        .clone();
    let cfg: Value = serde_json::from_str(env["value"].as_str().unwrap()).unwrap();
    assert_eq!(
        cfg["cluster-info"]["seeds"],
        "demo-seed-service,demo-dc1-additional-seed-service"
    );
}

#[test]
fn a_node_that_went_down_is_started_again_after_the_timeout() {
    let mut sim = Sim::new(dc_json(3, &["r1"]));
    sim.run_until_ready(30);
    sim.pods.get_mut("demo-dc1-r1-sts-2").unwrap().state = St::Down;
    let uid = sim.pods["demo-dc1-r1-sts-2"].uid.clone();
    // Soon after its start, a node that isn't ready yet is just waited for.
    let plan = sim.plan();
    assert!(plan.operations.is_empty());
    assert!(plan.requeue_after_ms.is_some());
    sim.now += crate::lifecycle::START_TIMEOUT_MS;
    let plan = sim.plan();
    let ids: Vec<_> = plan.operations.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids, [format!("start/demo-dc1-r1-sts-2/{uid}/1")]);
}

#[test]
fn statefulsets_never_shrink_because_pods_are_not_visible() {
    let mut sim = Sim::new(dc_json(6, &["r1", "r2", "r3"]));
    sim.run_until_ready(40);
    // An operator restart whose pod cache is still empty.
    let pods = std::mem::take(&mut sim.pods);
    let plan = sim.plan();
    for i in 1..=3 {
        assert_eq!(
            sts_of(&plan, &format!("demo-dc1-r{i}-sts"))["spec"]["replicas"],
            json!(2)
        );
    }
    assert!(plan.delete.is_empty() && plan.operations.is_empty());
    let st: Value = serde_json::from_str(plan.status.as_ref().unwrap()).unwrap();
    assert_eq!(st["nodeStatuses"].as_object().unwrap().len(), 6);
    sim.pods = pods;
}

#[test]
fn pods_of_another_operator_are_adopted_without_restart() {
    let mut sim = Sim::new(dc_json(3, &["r1"]));
    sim.run_until_ready(30);
    for p in sim.pods.values_mut() {
        p.hash = String::new();
    }
    // An empty hash stands for "no annotation" in the simulated pod JSON.
    let mut snap = sim.snapshot();
    for o in &mut snap.related {
        let mut v: Value = serde_json::from_str(&o.json).unwrap();
        if v["kind"] == "Pod" {
            v["metadata"]["annotations"] = json!({});
            o.json = v.to_string();
        }
    }
    let plan = P::reconcile(snap).unwrap();
    assert!(plan.delete.is_empty());
}

#[test]
fn a_decommissioned_pod_is_never_started_again() {
    let mut sim = Sim::new(dc_json(4, &["r1"]));
    sim.run_until_ready(40);
    sim.dc["spec"]["size"] = json!(3);
    sim.run_until_ready(40);
    // The shrunk StatefulSet is live but the decommissioned pod hasn't terminated yet.
    let mut snap_sim = Sim::new(sim.dc.clone());
    snap_sim.sts = sim.sts.clone();
    snap_sim.pods = sim.pods.clone();
    snap_sim.data = sim.data.clone();
    snap_sim.pods.insert(
        "demo-dc1-r1-sts-3".into(),
        SimPod {
            rack: "r1".into(),
            seed: false,
            seed_labelled: false,
            uid: "uid-old".into(),
            ip: "10.9.9.9".into(),
            hash: String::new(),
            state: St::Left,
            terminating: false,
            created_ms: 0,
        },
    );
    snap_sim.results = sim.results.clone();
    let plan = snap_sim.plan();
    assert!(plan.operations.is_empty(), "{:?}", plan.operations);
    assert!(sim.violations.is_empty(), "{:?}", sim.violations);
}

#[test]
fn the_seed_service_has_one_owner_per_namespace() {
    let mut dc2 = dc_json(1, &[]);
    dc2["metadata"]["name"] = json!("dc2");
    let sim = Sim::new(dc2);
    let mut snap = sim.snapshot();
    let other = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "demo-dc1-default-sts-0", "namespace": NS, "uid": "u",
            "labels": {"cassandra.datastax.com/cluster": "demo",
                       "cassandra.datastax.com/datacenter": "dc1",
                       "cassandra.datastax.com/rack": "default"}}});
    let names =
        |plan: &Plan| -> Vec<String> { plan.apply.iter().filter_map(|o| o.name()).collect() };
    let alone = P::reconcile(snap.clone()).unwrap();
    assert!(names(&alone).contains(&"demo-seed-service".to_string()));
    snap.related.push(Object {
        cluster: String::new(),
        json: other.to_string(),
    });
    let shared = P::reconcile(snap).unwrap();
    assert!(!names(&shared).contains(&"demo-seed-service".to_string()));
    assert!(names(&shared).contains(&"demo-dc2-service".to_string()));
}

#[test]
fn decommission_on_delete_removes_nodes_before_releasing_the_finalizer() {
    let mut sim = Sim::new(dc_json(2, &["r1"]));
    sim.run_until_ready(30);
    sim.dc["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
    sim.dc["metadata"]["annotations"] =
        json!({"cassandra.datastax.com/decommission-on-delete": "true"});
    // Without another datacenter in the ring there is nowhere to move the data: the
    // deletion just releases the finalizer.
    let plan = sim.plan();
    assert_eq!(plan.finalizers, Some(vec![]));

    // With another datacenter in the ring, nodes leave one at a time first.
    let other = SimPod {
        rack: "r1".into(),
        seed: true,
        seed_labelled: true,
        uid: "uid-dc2".into(),
        ip: "10.1.0.1".into(),
        hash: String::new(),
        state: St::Normal,
        terminating: false,
        created_ms: 0,
    };
    let with_dc2 = |sim: &Sim| {
        let mut snap = sim.snapshot();
        for n in &mut snap.nodes {
            if let Some(e) = &n.endpoints {
                let mut v: Value = serde_json::from_str(e).unwrap();
                v["entity"].as_array_mut().unwrap().push(json!({
                    "ENDPOINT_IP": other.ip, "HOST_ID": "dc2-host", "STATUS": "NORMAL,1",
                    "DC": "dc2", "RACK": "r1", "LOAD": "1000.0"}));
                n.endpoints = Some(v.to_string());
            }
        }
        snap
    };
    let mut released = false;
    for _ in 0..20 {
        sim.now += 1000;
        for (id, done) in std::mem::take(&mut sim.pending) {
            if let Done::Left(pod) = &done {
                sim.pods.get_mut(pod).unwrap().state = St::Left;
                sim.data.remove(pod);
            }
            sim.record(&id, Outcome::Succeeded(String::new()));
        }
        sim.pods.retain(|_, p| !p.terminating);
        let plan = P::reconcile(with_dc2(&sim)).unwrap();
        if plan.finalizers == Some(vec![]) {
            released = true;
            break;
        }
        assert_eq!(
            plan.finalizers,
            Some(vec!["finalizer.cassandra.datastax.com".into()])
        );
        sim.execute(&plan);
    }
    assert!(released, "finalizer never released: {:#}", sim.status());
    let decos: Vec<_> = sim
        .ops_seen
        .iter()
        .filter(|(_, k)| matches!(k, OperationKind::Decommission))
        .map(|(p, _)| p.as_str())
        .collect();
    assert_eq!(decos, ["demo-dc1-r1-sts-1", "demo-dc1-r1-sts-0"]);
}

#[test]
fn seeds_are_three_per_datacenter_or_one_per_rack() {
    use crate::model::seeds_per_rack;
    assert_eq!(seeds_per_rack(&[3]), [3]);
    assert_eq!(seeds_per_rack(&[1]), [1]);
    assert_eq!(seeds_per_rack(&[2, 2]), [2, 1]);
    assert_eq!(seeds_per_rack(&[1, 1]), [1, 1]);
    assert_eq!(seeds_per_rack(&[2, 2, 2]), [1, 1, 1]);
    assert_eq!(seeds_per_rack(&[1, 1, 1, 1]), [1, 1, 1, 1]);

    let mut sim = Sim::new(dc_json(5, &["r1"]));
    let plan = sim.step();
    assert_eq!(sts_of(&plan, "demo-dc1-r1-sts")["spec"]["replicas"], 5);
    sim.run_until_ready(40);
    let seeds: BTreeSet<_> = sim
        .pods
        .iter()
        .filter(|(_, p)| p.seed)
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(
        seeds,
        BTreeSet::from([
            "demo-dc1-r1-sts-0",
            "demo-dc1-r1-sts-1",
            "demo-dc1-r1-sts-2"
        ])
    );
    assert!(sim.violations.is_empty(), "{:?}", sim.violations);
}

#[test]
fn an_outdated_node_that_cannot_start_is_recreated_first() {
    let mut sim = Sim::new(dc_json(3, &["r1"]));
    sim.run_until_ready(30);
    // A bad configuration broke node 1, then the user fixes the configuration.
    let uid = sim.pods["demo-dc1-r1-sts-1"].uid.clone();
    sim.pods.get_mut("demo-dc1-r1-sts-1").unwrap().state = St::Down;
    sim.now += crate::lifecycle::START_TIMEOUT_MS;
    sim.record(
        &format!("start/demo-dc1-r1-sts-1/{uid}/1"),
        Outcome::Failed("Cassandra exited".into()),
    );
    sim.dc["spec"]["config"] = json!({"cassandra-yaml": {"num_tokens": 8}});
    sim.dc["metadata"]["generation"] = json!(2);
    let plan = sim.plan();
    let deleted: Vec<_> = plan.delete.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(deleted, ["demo-dc1-r1-sts-1"]);
    // While healthy outdated nodes wait for everyone to be ready.
    sim.pods.get_mut("demo-dc1-r1-sts-1").unwrap().state = St::Normal;
    sim.pods.get_mut("demo-dc1-r1-sts-0").unwrap().state = St::Down;
    sim.pods.get_mut("demo-dc1-r1-sts-0").unwrap().hash = "current".into();
    let plan = sim.plan();
    assert!(plan.delete.is_empty(), "{:?}", plan.delete);
}

#[test]
fn canary_upgrade_updates_part_of_the_first_rack_only() {
    let mut sim = Sim::new(dc_json(6, &["r1", "r2", "r3"]));
    sim.run_until_ready(40);
    sim.dc["spec"]["canaryUpgrade"] = json!(true);
    sim.dc["spec"]["canaryUpgradeCount"] = json!(1);
    sim.dc["spec"]["config"] = json!({"cassandra-yaml": {"num_tokens": 8}});
    sim.dc["metadata"]["generation"] = json!(2);
    let before = sim.deleted.len();
    for _ in 0..15 {
        sim.step();
    }
    let deleted: Vec<_> = sim.deleted[before..].to_vec();
    assert_eq!(deleted, ["Pod/demo-dc1-r1-sts-1"]);
    let updating = sim.status()["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Updating")
        .unwrap()
        .clone();
    assert_eq!(updating["reason"], "CanaryUpgrade");
    // Canary off: the rest follows.
    sim.dc["spec"]["canaryUpgrade"] = json!(false);
    sim.dc["metadata"]["generation"] = json!(3);
    sim.run_until_ready(60);
    let pods = sim.deleted[before..]
        .iter()
        .filter(|d| d.starts_with("Pod/"))
        .count();
    assert_eq!(pods, 6);
}

#[test]
fn a_failing_management_api_is_reported_and_rechecked_never_recreated() {
    let mut sim = Sim::new(dc_json(3, &["r1"]));
    sim.run_until_ready(30);
    let victim = "demo-dc1-r1-sts-1";
    sim.pods.get_mut(victim).unwrap().state = St::Down;
    let fail = |sim: &Sim, error: &str| {
        let mut s = sim.snapshot();
        for n in s.nodes.iter_mut().filter(|n| n.node.pod == victim) {
            n.reachable = false;
            n.alive = false;
            n.ready = false;
            n.error = Some(error.to_string());
        }
        P::reconcile(s).expect("reconcile")
    };
    for error in [
        "GET /api/v0/probes/liveness on 10.0.0.2 answered HTTP 500: Simulated fault",
        "GET /api/v0/probes/liveness on 10.0.0.2: timed out: operation timed out",
        // The host refusing to call a TLS pod: the Secret is named, nothing is sent.
        "management API TLS configuration: spec.managementApiAuth.manual.clientSecretName: \
         Secret ns/mgmt-client not found; nothing is sent to the management API of \
         CassandraDatacenter ns/dc1 until it exists",
    ] {
        let plan = fail(&sim, error);
        let status: Value = serde_json::from_str(plan.status.as_deref().unwrap()).unwrap();
        let ready = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()
            .clone();
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["reason"], crate::lifecycle::MANAGEMENT_API_FAILED);
        let message = ready["message"].as_str().unwrap();
        assert!(
            message.contains(victim) && message.contains(error),
            "{message}"
        );
        assert!(
            plan.events.iter().any(
                |e| e.reason == crate::lifecycle::MANAGEMENT_API_FAILED && e.message == message
            ),
            "{:?}",
            plan.events
        );
        assert!(plan.requeue_after_ms.is_some());
        assert!(plan.delete.is_empty(), "{:?}", plan.delete);
        assert!(plan.operations.is_empty(), "{:?}", plan.operations);
    }
    // A pod whose API is not up yet (connection refused) is the normal start-up.
    let plan = fail(
        &sim,
        "GET /api/v0/probes/liveness on 10.0.0.2: connection failed: Connection refused",
    );
    assert!(
        plan.events
            .iter()
            .all(|e| e.reason != crate::lifecycle::MANAGEMENT_API_FAILED)
    );
    // Answering again: started (its earlier start is old by now), and the condition goes
    // with it.
    sim.now += crate::lifecycle::START_TIMEOUT_MS;
    sim.run_until_ready(30);
    assert_eq!(sim.condition("Ready").as_deref(), Some("True"));
}

fn condition_of(status: &Value, t: &str) -> Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == t)
        .cloned()
        .unwrap_or(Value::Null)
}

fn claim_size(sts: &Value) -> Value {
    sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"].clone()
}

fn grow_storage(sim: &mut Sim, size: &str) {
    sim.dc["spec"]["storageConfig"]["cassandraDataVolumeClaimSpec"]["resources"]["requests"]["storage"] =
        json!(size);
    sim.dc["metadata"]["generation"] = json!(2);
}

#[test]
fn storage_expansion_patches_claims_then_recreates_statefulsets_keeping_pods() {
    let mut sim = Sim::new(dc_json(4, &["r1", "r2"]));
    sim.run_until_ready(40);
    let uids: Vec<String> = sim.pods.values().map(|p| p.uid.clone()).collect();
    sim.dc["metadata"]["annotations"] =
        json!({"cassandra.datastax.com/allow-storage-changes": "true"});
    grow_storage(&mut sim, "2Gi");

    // First the claims ask for the new size; the StatefulSets keep their claim templates.
    let plan = sim.step();
    let claims: Vec<(String, String)> = plan
        .apply
        .iter()
        .filter(|o| o.kind().as_deref() == Some("PersistentVolumeClaim"))
        .map(|o| {
            let v = o.value().unwrap();
            (
                v["metadata"]["name"].as_str().unwrap().to_string(),
                v["spec"]["resources"]["requests"]["storage"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(claims.len(), 4, "{claims:?}");
    assert!(
        claims
            .iter()
            .all(|(n, s)| n.starts_with("server-data-demo-dc1-r") && s == "2Gi")
    );
    assert_eq!(claim_size(&sts_of(&plan, "demo-dc1-r1-sts")), "1Gi");
    assert!(plan.delete.is_empty(), "{:?}", plan.delete);
    let status: Value = serde_json::from_str(plan.status.as_deref().unwrap()).unwrap();
    assert_eq!(condition_of(&status, "ResizingVolumes")["status"], "True");
    assert!(plan.events.iter().any(|e| e.reason == "ResizingPVC"));

    // Then the StatefulSets go (orphaning their pods), listed by identity only so nothing
    // prunes them meanwhile.
    let plan = sim.step();
    let deleted: Vec<_> = plan
        .delete
        .iter()
        .map(|d| (d.kind.as_str(), d.name.as_str()))
        .collect();
    assert_eq!(
        deleted,
        [
            ("StatefulSet", "demo-dc1-r1-sts"),
            ("StatefulSet", "demo-dc1-r2-sts")
        ]
    );
    assert!(sts_of(&plan, "demo-dc1-r1-sts").get("spec").is_none());
    assert!(sim.sts.is_empty());

    // And come back with the new claim template; the pods never restarted.
    let plan = sim.step();
    assert_eq!(claim_size(&sts_of(&plan, "demo-dc1-r1-sts")), "2Gi");
    assert_eq!(sts_of(&plan, "demo-dc1-r2-sts")["spec"]["replicas"], 2);
    sim.run_until_ready(20);
    assert!(
        !sim.deleted.iter().any(|d| d.starts_with("Pod/")),
        "{:?}",
        sim.deleted
    );
    let after: Vec<String> = sim.pods.values().map(|p| p.uid.clone()).collect();
    assert_eq!(uids, after);
    // A StatefulSet coming back is no scale-up: no cleanup.
    assert!(
        !sim.ops_seen
            .iter()
            .any(|(_, k)| matches!(k, OperationKind::Cleanup(_))),
        "{:?}",
        sim.ops_seen
    );
    assert_eq!(sim.condition("ResizingVolumes").as_deref(), Some("False"));
    assert_eq!(sim.condition("Valid").as_deref(), Some("True"));
    assert!(sim.violations.is_empty(), "{:?}", sim.violations);
}

#[test]
fn storage_expansion_needs_an_expandable_class_and_the_annotation() {
    let mut sim = Sim::new(dc_json(3, &["r1"]));
    sim.run_until_ready(30);
    grow_storage(&mut sim, "2Gi");
    let no_claims = |plan: &Plan| {
        !plan
            .apply
            .iter()
            .any(|o| o.kind().as_deref() == Some("PersistentVolumeClaim"))
            && plan.delete.is_empty()
    };

    // Without the annotation: refused, naming it.
    let plan = sim.step();
    assert!(no_claims(&plan));
    assert_eq!(claim_size(&sts_of(&plan, "demo-dc1-r1-sts")), "1Gi");
    let event = plan
        .events
        .iter()
        .find(|e| e.reason == "InvalidDatacenterSpec")
        .unwrap();
    assert!(
        event.message.contains("allow-storage-changes"),
        "{}",
        event.message
    );

    // With it, on a class that cannot expand: Valid=False naming the class.
    sim.dc["metadata"]["annotations"] =
        json!({"cassandra.datastax.com/allow-storage-changes": "true"});
    sim.storage_classes[0]["allowVolumeExpansion"] = json!(false);
    let plan = sim.step();
    assert!(no_claims(&plan));
    let status: Value = serde_json::from_str(plan.status.as_deref().unwrap()).unwrap();
    let valid = condition_of(&status, "Valid");
    assert_eq!(valid["status"], "False");
    assert_eq!(valid["reason"], "storageClassDoesNotSupportExpansion");
    assert!(
        valid["message"]
            .as_str()
            .unwrap()
            .contains("StorageClass standard")
    );
    assert!(
        plan.events
            .iter()
            .any(|e| e.event_type == k8ssandra_policy_sdk::EventType::Warning
                && e.message.contains("StorageClass standard"))
    );

    // A claim without a class uses the default one.
    sim.dc["spec"]["storageConfig"]["cassandraDataVolumeClaimSpec"]
        .as_object_mut()
        .unwrap()
        .remove("storageClassName");
    sim.storage_classes.push(
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "fast", "annotations": {
            "storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "x", "allowVolumeExpansion": true}),
    );
    let plan = sim.plan();
    assert!(
        plan.apply
            .iter()
            .any(|o| o.kind().as_deref() == Some("PersistentVolumeClaim"))
    );
}

#[test]
fn storage_does_not_grow_while_scaling() {
    let mut sim = Sim::new(dc_json(3, &["r1"]));
    sim.run_until_ready(30);
    sim.dc["metadata"]["annotations"] =
        json!({"cassandra.datastax.com/allow-storage-changes": "true"});
    grow_storage(&mut sim, "2Gi");
    sim.dc["spec"]["size"] = json!(4);
    let plan = sim.step();
    assert!(
        !plan
            .apply
            .iter()
            .any(|o| o.kind().as_deref() == Some("PersistentVolumeClaim"))
    );
    let status: Value = serde_json::from_str(plan.status.as_deref().unwrap()).unwrap();
    assert_eq!(
        condition_of(&status, "ResizingVolumes")["reason"],
        "WaitingForScaling"
    );
    // Once the new node runs, the volumes (the new node's too) grow.
    sim.run_until_ready(60);
    assert_eq!(sim.pvc_requests.len(), 4, "{:?}", sim.pvc_requests);
    assert_eq!(claim_size(&sim.sts["demo-dc1-r1-sts"]), "2Gi");
}

#[test]
fn validate_refuses_other_claim_changes_and_unannounced_growth() {
    let field_of = |v: Vec<k8ssandra_policy_sdk::Violation>| {
        v.into_iter().map(|v| v.field).collect::<Vec<_>>()
    };
    const STORAGE: &str =
        "spec.storageConfig.cassandraDataVolumeClaimSpec.resources.requests.storage";
    let old = dc_json(3, &["r1"]);
    fn claim(v: &mut Value) -> &mut Value {
        &mut v["spec"]["storageConfig"]["cassandraDataVolumeClaimSpec"]
    }
    let mut new = old.clone();
    claim(&mut new)["resources"]["requests"]["storage"] = json!("512Mi");
    assert_eq!(
        field_of(P::validate(new.to_string(), Some(old.to_string()))),
        [STORAGE]
    );
    claim(&mut new)["resources"]["requests"]["storage"] = json!("2Gi");
    assert_eq!(
        field_of(P::validate(new.to_string(), Some(old.to_string()))),
        [STORAGE]
    );
    new["metadata"]["annotations"] =
        json!({"cassandra.datastax.com/allow-storage-changes": "true"});
    assert!(P::validate(new.to_string(), Some(old.to_string())).is_empty());
    claim(&mut new)["storageClassName"] = json!("fast");
    claim(&mut new)["accessModes"] = json!(["ReadWriteMany"]);
    assert_eq!(
        field_of(P::validate(new.to_string(), Some(old.to_string()))),
        [
            "spec.storageConfig.cassandraDataVolumeClaimSpec.accessModes",
            "spec.storageConfig.cassandraDataVolumeClaimSpec.storageClassName"
        ]
    );
    // No growth while scaling.
    let mut scaling = old.clone();
    scaling["status"] = json!({"conditions": [{"type": "ScalingUp", "status": "True",
        "reason": "", "message": "", "lastTransitionTime": "2024-01-01T00:00:00Z"}]});
    let mut new = scaling.clone();
    new["metadata"]["annotations"] =
        json!({"cassandra.datastax.com/allow-storage-changes": "true"});
    claim(&mut new)["resources"]["requests"]["storage"] = json!("2Gi");
    assert_eq!(
        field_of(P::validate(new.to_string(), Some(scaling.to_string()))),
        [STORAGE]
    );
}

#[test]
fn force_upgrade_racks_restarts_the_listed_rack_at_once_in_its_generation_only() {
    let mut sim = Sim::new(dc_json(6, &["r1", "r2", "r3"]));
    sim.run_until_ready(40);
    sim.dc["spec"]["forceUpgradeRacks"] = json!(["r2"]);
    sim.dc["spec"]["config"] = json!({"cassandra-yaml": {"num_tokens": 8}});
    sim.dc["metadata"]["generation"] = json!(2);
    let plan = sim.step();
    let deleted: Vec<_> = plan.delete.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(deleted, ["demo-dc1-r2-sts-0", "demo-dc1-r2-sts-1"]);
    assert_eq!(
        sts_of(&plan, "demo-dc1-r2-sts")["metadata"]["annotations"]
            [crate::lifecycle::FORCE_UPGRADE_ANNOTATION],
        "2"
    );
    let status: Value = serde_json::from_str(plan.status.as_deref().unwrap()).unwrap();
    assert_eq!(condition_of(&status, "Updating")["reason"], "ForceUpgrade");
    // The other racks follow one pod at a time.
    let before = sim.deleted.len();
    sim.run_until_ready(80);
    assert_eq!(sim.deleted.len() - before, 4);
    assert!(sim.violations.is_empty(), "{:?}", sim.violations);

    // A later change, with the rack still listed: the request was honoured already.
    sim.dc["spec"]["config"] = json!({"cassandra-yaml": {"num_tokens": 16}});
    sim.dc["metadata"]["generation"] = json!(3);
    let plan = sim.step();
    assert_eq!(plan.delete.len(), 1, "{:?}", plan.delete);
    assert_eq!(
        sts_of(&plan, "demo-dc1-r2-sts")["metadata"]["annotations"]
            [crate::lifecycle::FORCE_UPGRADE_ANNOTATION],
        "2"
    );
}

#[test]
fn node_port_service_and_broadcast_address_agree() {
    let mut dc = dc_json(3, &["r1"]);
    let sim = Sim::new(dc.clone());
    let plan = sim.plan();
    assert!(
        !kinds(&plan)
            .iter()
            .any(|(_, n)| n == "demo-dc1-node-port-service")
    );
    dc["spec"]["networking"] = json!({"nodePort": {"native": 30042}});
    let sim = Sim::new(dc);
    let plan = sim.plan();
    let svc = sts_of(&plan, "demo-dc1-node-port-service");
    assert_eq!(svc["kind"], "Service");
    assert_eq!(svc["spec"]["type"], "NodePort");
    assert_eq!(svc["spec"]["externalTrafficPolicy"], "Local");
    assert_eq!(
        svc["spec"]["selector"],
        json!({"cassandra.datastax.com/cluster": "demo", "cassandra.datastax.com/datacenter": "dc1"})
    );
    assert_eq!(
        svc["spec"]["ports"],
        json!([
            {"name": "internode", "port": 7000, "targetPort": 7000},
            {"name": "native", "port": 30042, "nodePort": 30042, "targetPort": 30042},
        ])
    );
    // The node broadcasts its worker's address and listens on the node port.
    let sts = sts_of(&plan, "demo-dc1-r1-sts");
    let init = config_init(&sts["spec"]["template"]["spec"]);
    let env = |name: &str| {
        init["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap()["value"]
            .clone()
    };
    assert_eq!(env("USE_HOST_IP_FOR_BROADCAST"), "true");
    let config: Value = serde_json::from_str(env("CONFIG_FILE_DATA").as_str().unwrap()).unwrap();
    assert_eq!(config["cassandra-yaml"]["native_transport_port"], 30042);
}

#[test]
fn storage_classes_out_of_sight_leave_the_check_to_the_api_server() {
    let mut sim = Sim::new(dc_json(3, &["r1"]));
    sim.run_until_ready(30);
    sim.dc["metadata"]["annotations"] =
        json!({"cassandra.datastax.com/allow-storage-changes": "true"});
    grow_storage(&mut sim, "2Gi");
    // A class that does not exist among those visible: refused, naming it.
    sim.storage_classes[0]["metadata"]["name"] = json!("other");
    let plan = sim.plan();
    let status: Value = serde_json::from_str(plan.status.as_deref().unwrap()).unwrap();
    let message = condition_of(&status, "Valid")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("StorageClass standard does not exist"),
        "{message}"
    );
    assert!(plan.delete.is_empty());
    // None visible (a namespace-scoped operator): the claims are patched, and the API
    // server's resize admission has the last word.
    sim.storage_classes.clear();
    let plan = sim.plan();
    assert_eq!(
        plan.apply
            .iter()
            .filter(|o| o.kind().as_deref() == Some("PersistentVolumeClaim"))
            .count(),
        3
    );
}

/// The snapshot with extra entries in every gossip view.
fn with_ring_entries(sim: &Sim, extra: &[Value]) -> Snapshot {
    let mut snap = sim.snapshot();
    for n in &mut snap.nodes {
        if let Some(e) = &n.endpoints {
            let mut v: Value = serde_json::from_str(e).unwrap();
            v["entity"]
                .as_array_mut()
                .unwrap()
                .extend(extra.iter().cloned());
            n.endpoints = Some(v.to_string());
        }
    }
    snap
}

fn ready_message(plan: &Plan) -> String {
    let status: Value = serde_json::from_str(plan.status.as_deref().unwrap()).unwrap();
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| c["message"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

#[test]
fn a_replacement_waits_for_a_range_movement_anywhere_in_the_cluster() {
    let mut sim = Sim::new(dc_json(3, &["r1"]));
    sim.run_until_ready(30);
    let old_ip = sim.pods["demo-dc1-r1-sts-1"].ip.clone();
    sim.dc["spec"]["replaceNodes"] = json!(["demo-dc1-r1-sts-1"]);
    sim.dc["metadata"]["generation"] = json!(2);
    // A node of another datacenter is bootstrapping.
    let joining = json!({"ENDPOINT_IP": "10.1.0.9", "HOST_ID": "dc2-new", "STATUS": "BOOT,1",
                         "DC": "dc2", "RACK": "r1", "LOAD": "0.0", "IS_ALIVE": "true"});
    for _ in 0..6 {
        sim.now += 1000;
        for (id, _) in std::mem::take(&mut sim.pending) {
            sim.record(&id, Outcome::Succeeded(String::new()));
        }
        sim.pods.retain(|_, p| !p.terminating);
        let plan = P::reconcile(with_ring_entries(&sim, std::slice::from_ref(&joining))).unwrap();
        assert!(
            !plan
                .operations
                .iter()
                .any(|o| matches!(o.kind, OperationKind::Start(_))),
            "{:?}",
            plan.operations
        );
        sim.execute(&plan);
    }
    let plan = P::reconcile(with_ring_entries(&sim, &[joining])).unwrap();
    let message = ready_message(&plan);
    assert!(
        message.contains("demo-dc1-r1-sts-1 waits for the range movement of 10.1.0.9 BOOT"),
        "{message}"
    );
    // Once the other node has joined, the replacement goes ahead.
    let before = sim.ops_seen.len();
    sim.run_until_ready(30);
    let starts: Vec<_> = sim.ops_seen[before..]
        .iter()
        .filter_map(|(p, k)| match k {
            OperationKind::Start(r) => Some((p.clone(), r.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(starts, [("demo-dc1-r1-sts-1".to_string(), Some(old_ip))]);
    assert!(sim.violations.is_empty(), "{:?}", sim.violations);
}

#[test]
fn no_bootstrap_while_a_node_of_the_datacenter_is_down() {
    let mut sim = Sim::new(dc_json(3, &["r1"]));
    sim.run_until_ready(30);
    sim.dc["spec"]["size"] = json!(4);
    sim.dc["metadata"]["generation"] = json!(2);
    sim.step();
    assert!(sim.pods.contains_key("demo-dc1-r1-sts-3"));
    assert!(!sim.starts().iter().any(|(p, _)| p == "demo-dc1-r1-sts-3"));
    let starts = |plan: &Plan| -> Vec<String> {
        plan.operations
            .iter()
            .filter(|o| matches!(o.kind, OperationKind::Start(_)))
            .map(|o| o.target.pod.clone())
            .collect()
    };
    // A token owner of dc1 that gossip reports down (its pod elsewhere, say).
    let down = json!({"ENDPOINT_IP": "10.0.9.9", "HOST_ID": "h-down", "STATUS": "NORMAL,1",
                      "DC": "dc1", "RACK": "r1", "LOAD": "1000.0", "IS_ALIVE": "false"});
    let plan = P::reconcile(with_ring_entries(&sim, std::slice::from_ref(&down))).unwrap();
    assert!(starts(&plan).is_empty(), "{:?}", plan.operations);
    let message = ready_message(&plan);
    assert!(
        message.contains("node 10.0.9.9 of datacenter dc1 is down"),
        "{message}"
    );
    // A down node of another datacenter does not hold a bootstrap here back.
    let mut other = down.clone();
    other["DC"] = json!("dc2");
    let plan = P::reconcile(with_ring_entries(&sim, &[other])).unwrap();
    assert_eq!(starts(&plan), ["demo-dc1-r1-sts-3"]);
}

#[test]
fn a_pod_waiting_for_its_management_api_is_named_in_the_status() {
    let mut sim = Sim::new(dc_json(1, &["r1"]));
    sim.step();
    let mut snap = sim.snapshot();
    for n in &mut snap.nodes {
        n.reachable = false;
        n.alive = false;
        n.error = Some(format!(
            "GET /api/v0/probes/liveness on {}: connection refused",
            n.address.clone().unwrap_or_default()
        ));
    }
    let plan = P::reconcile(snap).unwrap();
    assert!(plan.operations.is_empty());
    let message = ready_message(&plan);
    assert!(
        message.contains("waiting for the management API of demo-dc1-r1-sts-0"),
        "{message}"
    );
    // Not a failure: no warning, no pod deleted.
    assert!(
        plan.events
            .iter()
            .all(|e| e.reason != "ManagementApiFailed")
    );
    assert!(plan.delete.is_empty());
}
