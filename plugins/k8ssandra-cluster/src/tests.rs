//! Unit tests: snapshots in, plans out.

use k8ssandra_policy_sdk::{
    ClusterState, NodeState, Object, OperationKind, OperationResult, Outcome, Plan, Policy,
    Snapshot,
};
use serde_json::{Value, json};

use crate::K8ssandraClusterPolicy as P;

const NS: &str = "ns";

fn kc(dcs: Value) -> Value {
    json!({
        "apiVersion": "k8ssandra.io/v1alpha1",
        "kind": "K8ssandraCluster",
        "metadata": {"name": "demo", "namespace": NS, "generation": 1, "uid": "kc-uid"},
        "spec": {
            "cassandra": {
                "serverVersion": "4.1.5",
                "storageConfig": {"cassandraDataVolumeClaimSpec": {
                    "storageClassName": "standard",
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "5Gi"}}
                }},
                "datacenters": dcs,
            }
        }
    })
}

pub(crate) fn two_dcs() -> Value {
    kc(json!([
        {"metadata": {"name": "dc1"}, "k8sContext": "A", "size": 3},
        {"metadata": {"name": "dc2"}, "k8sContext": "B", "size": 2},
    ]))
}

struct World {
    kc: Value,
    clusters: Vec<(String, bool)>,
    children: Vec<Object>,
    related: Vec<Object>,
    nodes: Vec<NodeState>,
    results: Vec<OperationResult>,
    now: u64,
}

impl World {
    fn new(kc: Value) -> Self {
        World {
            kc,
            clusters: vec![("".into(), true), ("A".into(), true), ("B".into(), true)],
            children: vec![],
            related: vec![],
            nodes: vec![],
            results: vec![],
            now: 1_700_000_000_000,
        }
    }

    fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::for_parent(Object {
            cluster: String::new(),
            json: self.kc.to_string(),
        });
        s.clusters = self
            .clusters
            .iter()
            .map(|(n, r)| ClusterState {
                name: n.clone(),
                reachable: *r,
                message: None,
            })
            .collect();
        s.children = self.children.clone();
        s.related = self.related.clone();
        s.nodes = self.nodes.clone();
        s.results = self.results.clone();
        s.now_ms = self.now;
        s
    }

    fn plan(&self) -> Plan {
        P::reconcile(self.snapshot()).expect("plan")
    }

    fn secret(&mut self, cluster: &str) {
        self.related.push(Object {
            cluster: cluster.into(),
            json: json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "demo-superuser", "namespace": NS,
                    "labels": {"k8ssandra.io/cluster-name": "demo"}},
                "data": {"username": "", "password": ""}})
            .to_string(),
        });
    }

    /// Makes the CassandraDatacenter of the plan exist, with a status.
    fn create(&mut self, plan: &Plan, name: &str, ready: bool) {
        let o = plan
            .apply
            .iter()
            .find(|o| {
                o.kind().as_deref() == Some("CassandraDatacenter")
                    && o.name().as_deref() == Some(name)
            })
            .expect("datacenter in plan");
        let mut v = o.value().unwrap();
        v["metadata"]["uid"] = json!(format!("uid-{name}"));
        v["metadata"]["generation"] = json!(1);
        v["status"] = dc_status(ready);
        self.children.retain(|c| c.name().as_deref() != Some(name));
        self.children.push(Object {
            cluster: o.cluster.clone(),
            json: v.to_string(),
        });
    }

    /// What the host's apply does to existing datacenters: their spec and metadata become
    /// the plan's, their status stays.
    fn sync(&mut self, plan: &Plan) {
        for c in &mut self.children {
            let Some(o) = plan.apply.iter().find(|o| {
                o.cluster == c.cluster
                    && o.kind().as_deref() == Some("CassandraDatacenter")
                    && o.name() == c.name()
            }) else {
                continue;
            };
            let want = o.value().unwrap();
            let mut v = c.value().unwrap();
            v["spec"] = want["spec"].clone();
            v["metadata"]["labels"] = want["metadata"]["labels"].clone();
            v["metadata"]["annotations"] = want["metadata"]["annotations"].clone();
            c.json = v.to_string();
        }
    }

    fn set_ready(&mut self, name: &str, ready: bool) {
        for c in &mut self.children {
            if c.name().as_deref() == Some(name) {
                let mut v = c.value().unwrap();
                v["status"] = dc_status(ready);
                c.json = v.to_string();
            }
        }
    }

    fn pods(&mut self, cluster: &str, dc: &str, n: usize, ip_base: &str) {
        self.pods_in_racks(cluster, dc, n, ip_base, &["default"]);
    }

    /// `n` ready pods spread over `racks` in turn.
    fn pods_in_racks(&mut self, cluster: &str, dc: &str, n: usize, ip_base: &str, racks: &[&str]) {
        for i in 0..n {
            let rack = racks[i % racks.len()];
            let name = format!("demo-{dc}-default-sts-{i}");
            self.related.push(Object {
                cluster: cluster.into(),
                json: json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": NS, "uid": format!("pod-{dc}-{i}"),
                        "labels": {
                            "cassandra.datastax.com/cluster": "demo",
                            "cassandra.datastax.com/datacenter": dc,
                            "cassandra.datastax.com/rack": rack,
                            "cassandra.datastax.com/seed-node": if i == 0 { "true" } else { "false" },
                        }},
                    "status": {"podIP": format!("{ip_base}.{}", i + 1),
                        "conditions": [{"type": "Ready", "status": "True"}]}})
                .to_string(),
            });
        }
    }

    fn result(&mut self, id: &str, outcome: Outcome) {
        self.results.push(OperationResult {
            id: id.into(),
            outcome,
            at_ms: self.now,
        });
    }

    /// Completes every operation of the plan with the answer `f` gives.
    fn answer(&mut self, plan: &Plan, f: impl Fn(&OperationKind) -> Outcome) {
        for op in &plan.operations {
            let o = f(&op.kind);
            self.result(&op.id, o);
        }
    }
}

fn dc_status(ready: bool) -> Value {
    let s = if ready { "True" } else { "False" };
    json!({
        "cassandraOperatorProgress": if ready { "Ready" } else { "Updating" },
        "observedGeneration": 1,
        "conditions": [
            {"type": "Ready", "status": s, "reason": "", "message": ""},
            {"type": "Initialized", "status": s, "reason": "", "message": ""},
        ],
    })
}

fn dcs_in(plan: &Plan) -> Vec<(String, String)> {
    plan.apply
        .iter()
        .filter(|o| o.kind().as_deref() == Some("CassandraDatacenter"))
        .map(|o| (o.cluster.clone(), o.name().unwrap_or_default()))
        .collect()
}

fn dc_obj(plan: &Plan, name: &str) -> Value {
    plan.apply
        .iter()
        .find(|o| {
            o.kind().as_deref() == Some("CassandraDatacenter") && o.name().as_deref() == Some(name)
        })
        .map(|o| o.value().unwrap())
        .expect("datacenter in plan")
}

fn status(plan: &Plan) -> Value {
    serde_json::from_str(plan.status.as_ref().expect("status")).unwrap()
}

/// (reason, message) of a condition.
fn condition_detail(plan: &Plan, t: &str) -> Option<(String, String)> {
    status(plan)["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == t)
        .map(|c| {
            (
                c["reason"].as_str().unwrap_or_default().to_string(),
                c["message"].as_str().unwrap_or_default().to_string(),
            )
        })
}

fn condition(plan: &Plan, t: &str) -> Option<String> {
    status(plan)["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == t)
        .map(|c| c["status"].as_str().unwrap_or_default().to_string())
}

fn nts(pairs: &[(&str, u32)]) -> String {
    let mut m = serde_json::Map::new();
    m.insert(
        "class".into(),
        json!("org.apache.cassandra.locator.NetworkTopologyStrategy"),
    );
    for (k, v) in pairs {
        m.insert((*k).into(), json!(v.to_string()));
    }
    Value::Object(m).to_string()
}

/// `spec`'s dc1 (in A, 3 pods) then dc2 (in B, `dc2_pods` pods) created and Ready in turn.
fn dc1_then_dc2_ready(spec: Value, dc2_pods: usize) -> World {
    let mut w = World::new(spec);
    w.secret("");
    w.secret("A");
    w.secret("B");
    let plan = w.plan();
    w.create(&plan, "dc1", true);
    w.pods("A", "dc1", 3, "10.1.0");
    let plan = w.plan();
    w.create(&plan, "dc2", true);
    w.pods("B", "dc2", dc2_pods, "10.2.0");
    w
}

/// A world with both datacenters created and Ready, their pods running.
fn both_ready() -> World {
    let mut w = dc1_then_dc2_ready(two_dcs(), 2);
    let plan = w.plan();
    w.sync(&plan);
    w
}

#[test]
fn describe_names_parent_owned_and_read_kinds() {
    let info = P::describe();
    assert_eq!(info.name, "k8ssandra-cluster");
    assert_eq!(info.parent.kind, "K8ssandraCluster");
    let owns: Vec<_> = info.owns.iter().map(|k| k.kind.as_str()).collect();
    assert_eq!(
        owns,
        [
            "CassandraDatacenter",
            "ReplicatedSecret",
            "Stargate",
            "Reaper",
            "ConfigMap",
            "MedusaBackupSchedule"
        ]
    );
    assert!(
        info.reads
            .iter()
            .any(|r| r.kind.kind == "Pod" && r.all_clusters)
    );
    assert!(
        info.reads
            .iter()
            .any(|r| r.kind.kind == "Secret" && r.all_clusters)
    );
    assert!(
        info.reads
            .iter()
            .any(|r| r.kind.kind == "ClientConfig" && !r.all_clusters)
    );
}

#[test]
fn first_snapshot_creates_the_secret_and_its_replication_but_no_datacenter() {
    let w = World::new(two_dcs());
    let plan = w.plan();
    assert_eq!(plan.secrets.len(), 1);
    let s = &plan.secrets[0];
    assert_eq!(
        (s.cluster.as_str(), s.namespace.as_str(), s.name.as_str()),
        ("", NS, "demo-superuser")
    );
    assert_eq!(
        s.fixed,
        [("username".to_string(), "demo-superuser".to_string())]
    );
    assert_eq!(s.random_keys, ["password"]);
    assert!(
        s.labels
            .iter()
            .any(|(k, v)| k == "k8ssandra.io/cluster-name" && v == "demo")
    );
    let rs = plan
        .apply
        .iter()
        .find(|o| o.kind().as_deref() == Some("ReplicatedSecret"))
        .expect("ReplicatedSecret");
    assert_eq!(rs.cluster, "");
    let rs = rs.value().unwrap();
    assert_eq!(
        rs["spec"]["selector"]["matchLabels"]["k8ssandra.io/replicated-by"],
        "k8ssandracluster-controller"
    );
    let targets: Vec<_> = rs["spec"]["replicationTargets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["k8sContextName"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(targets, ["A", "B"]);
    assert!(dcs_in(&plan).is_empty());
}

#[test]
fn datacenters_are_created_in_order_once_the_secret_arrived() {
    let mut w = World::new(two_dcs());
    w.secret("");
    // Replicated to B first: still nothing, dc1 (in A) comes first.
    w.secret("B");
    assert!(dcs_in(&w.plan()).is_empty());
    w.secret("A");
    let plan = w.plan();
    assert_eq!(dcs_in(&plan), [("A".to_string(), "dc1".to_string())]);
    let dc1 = dc_obj(&plan, "dc1");
    assert_eq!(dc1["spec"]["superuserSecretName"], "demo-superuser");
    assert_eq!(dc1["spec"]["clusterName"], "demo");
    assert_eq!(dc1["spec"]["size"], 3);
    assert_eq!(dc1["metadata"]["namespace"], NS);
    assert_eq!(
        dc1["metadata"]["labels"]["k8ssandra.io/cluster-name"],
        "demo"
    );
    assert_eq!(
        dc1["metadata"]["labels"]["k8ssandra.io/cluster-namespace"],
        NS
    );
    assert!(dc1["spec"].get("additionalSeeds").is_none());

    // dc1 exists but is not Ready: dc2 waits, dc1 stays listed.
    w.create(&plan, "dc1", false);
    w.pods("A", "dc1", 3, "10.1.0");
    let plan = w.plan();
    assert_eq!(dcs_in(&plan), [("A".to_string(), "dc1".to_string())]);

    // dc1 Ready: dc2 in B, seeded by dc1's seed pod.
    w.set_ready("dc1", true);
    let plan = w.plan();
    assert_eq!(
        dcs_in(&plan),
        [
            ("A".to_string(), "dc1".to_string()),
            ("B".to_string(), "dc2".to_string())
        ]
    );
    let dc2 = dc_obj(&plan, "dc2");
    assert_eq!(dc2["spec"]["additionalSeeds"], json!(["10.1.0.1"]));
    assert_eq!(
        dc2["metadata"]["annotations"]["cassandra.datastax.com/skip-user-creation"],
        "true"
    );
    let st = status(&plan);
    assert_eq!(
        st["datacenters"]["dc1"]["cassandra"]["cassandraOperatorProgress"],
        "Ready"
    );
    assert_eq!(st["error"], "None");
}

#[test]
fn seeds_fall_back_to_the_first_pod_of_each_rack_and_are_sorted() {
    let mut w = both_ready();
    // No seed labels in dc2: its first pod serves.
    for r in &mut w.related {
        if r.json.contains("\"dc2\"") {
            r.json = r
                .json
                .replace("\"seed-node\":\"true\"", "\"seed-node\":\"false\"");
        }
    }
    let plan = w.plan();
    assert_eq!(
        dc_obj(&plan, "dc1")["spec"]["additionalSeeds"],
        json!(["10.2.0.1"])
    );
    assert_eq!(
        dc_obj(&plan, "dc2")["spec"]["additionalSeeds"],
        json!(["10.1.0.1"])
    );
}

#[test]
fn options_merge_with_the_datacenter_winning_and_yaml_merged_deeply() {
    let mut v = kc(json!([{
        "metadata": {"name": "dc1", "labels": {"team": "a"}},
        "size": 3,
        "serverVersion": "5.0.2",
        "racks": [{"name": "r1", "nodeAffinityLabels": {"zone": "z1"}}],
        "config": {
            "cassandraYaml": {"concurrent_reads": 64, "audit_logging_options": {"enabled": true}},
            "jvmOptions": {"heap_max_size": "1Gi", "gc": "ZGC"}
        },
        "softPodAntiAffinity": false,
        "resources": {"requests": {"cpu": "1"}},
    }]));
    v["spec"]["cassandra"]["config"] = json!({
        "cassandraYaml": {"concurrent_reads": 32, "concurrent_writes": 48,
            "audit_logging_options": {"logger": {"class_name": "BinAuditLogger"}}},
        "jvmOptions": {"heap_initial_size": "512Mi", "heap_max_size": "512Mi"}
    });
    v["spec"]["cassandra"]["racks"] =
        json!([{"name": "r1", "nodeAffinityLabels": {"zone": "z0", "disk": "ssd"}}]);
    v["spec"]["cassandra"]["softPodAntiAffinity"] = json!(true);
    v["spec"]["cassandra"]["metadata"] =
        json!({"labels": {"env": "prod", "team": "x"}, "commonLabels": {"c": "1"}});
    let mut w = World::new(v);
    w.secret("");
    let plan = w.plan();
    let dc = dc_obj(&plan, "dc1");
    let spec = &dc["spec"];
    assert_eq!(spec["serverVersion"], "5.0.2");
    assert_eq!(spec["serverType"], "cassandra");
    let yaml = &spec["config"]["cassandra-yaml"];
    assert_eq!(yaml["concurrent_reads"], 64);
    assert_eq!(yaml["concurrent_writes"], 48);
    assert_eq!(yaml["audit_logging_options"]["enabled"], true);
    assert_eq!(
        yaml["audit_logging_options"]["logger"]["class_name"],
        "BinAuditLogger"
    );
    // KO's defaults where nothing is set.
    assert_eq!(yaml["num_tokens"], 16);
    assert_eq!(yaml["authenticator"], "PasswordAuthenticator");
    let jvm = &spec["config"]["jvm-server-options"];
    assert_eq!(jvm["max_heap_size"], 1_073_741_824i64);
    assert_eq!(jvm["initial_heap_size"], 536_870_912i64);
    assert_eq!(
        spec["config"]["jvm11-server-options"]["garbage_collector"],
        "ZGC"
    );
    // Racks merged by name, field by field.
    assert_eq!(
        spec["racks"][0]["nodeAffinityLabels"],
        json!({"zone": "z1", "disk": "ssd"})
    );
    // The datacenter's false wins over the cluster's true.
    assert_eq!(spec["allowMultipleNodesPerWorker"], false);
    assert_eq!(
        spec["storageConfig"]["cassandraDataVolumeClaimSpec"]["resources"]["requests"]["storage"],
        "5Gi"
    );
    assert_eq!(spec["resources"]["requests"]["cpu"], "1");
    assert_eq!(dc["metadata"]["labels"]["team"], "a");
    assert_eq!(dc["metadata"]["labels"]["env"], "prod");
    assert_eq!(spec["additionalLabels"], json!({"c": "1"}));
    assert_eq!(
        spec["additionalServiceConfig"]["allpodsService"]["additionalLabels"]["k8ssandra.io/cluster-name"],
        "demo"
    );
}

#[test]
fn cassandra_3_11_gets_jvm_options_and_its_defaults() {
    let mut v = kc(json!([{"metadata": {"name": "dc1"}, "size": 1,
        "config": {"jvmOptions": {"heapSize": "1G", "gc": "CMS", "gc_cms_survivor_ratio": 4}}}]));
    v["spec"]["cassandra"]["serverVersion"] = json!("3.11.17");
    v["spec"]["auth"] = json!(false);
    let mut w = World::new(v);
    w.secret("");
    let c = &dc_obj(&w.plan(), "dc1")["spec"]["config"];
    assert_eq!(c["cassandra-yaml"]["num_tokens"], 256);
    assert_eq!(c["cassandra-yaml"]["start_rpc"], false);
    assert_eq!(
        c["cassandra-yaml"]["authenticator"],
        "AllowAllAuthenticator"
    );
    assert_eq!(c["jvm-options"]["initial_heap_size"], 1_000_000_000i64);
    assert_eq!(c["jvm-options"]["max_heap_size"], 1_000_000_000i64);
    assert_eq!(c["jvm-options"]["garbage_collector"], "CMS");
    assert_eq!(c["jvm-options"]["survivor_ratio"], 4);
    assert!(c.get("jvm-server-options").is_none());
}

#[test]
fn unknown_context_is_reported_and_its_datacenter_untouched() {
    let v = kc(json!([
        {"metadata": {"name": "dc1"}, "k8sContext": "A", "size": 3},
        {"metadata": {"name": "dc2"}, "k8sContext": "nowhere", "size": 3},
    ]));
    let mut w = World::new(v);
    w.secret("");
    w.secret("A");
    let plan = w.plan();
    w.create(&plan, "dc1", true);
    let plan = w.plan();
    assert_eq!(dcs_in(&plan), [("A".to_string(), "dc1".to_string())]);
    let st = status(&plan);
    let err = st["error"].as_str().unwrap();
    assert!(
        err.contains("spec.cassandra.datacenters[1].k8sContext"),
        "{err}"
    );
    assert!(
        err.contains("nowhere") && err.contains("no ClientConfig"),
        "{err}"
    );
    // A ClientConfig without a client yet is told apart.
    w.related.push(Object {
        cluster: String::new(),
        json: json!({"apiVersion": "config.k8ssandra.io/v1beta1", "kind": "ClientConfig",
            "metadata": {"name": "nowhere", "namespace": NS},
            "spec": {"kubeConfigSecret": {"name": "kc"}}})
        .to_string(),
    });
    let err = status(&w.plan())["error"].as_str().unwrap().to_string();
    assert!(err.contains("no client for it yet"), "{err}");
    assert_eq!(condition(&plan, "Valid").as_deref(), Some("False"));
    let (reason, message) = condition_detail(&plan, "Valid").unwrap();
    assert_eq!(reason, "UnknownContext");
    assert!(message.contains("\"nowhere\""), "{message}");
    // Not named as a replication target either.
    let rs = plan
        .apply
        .iter()
        .find(|o| o.kind().as_deref() == Some("ReplicatedSecret"))
        .unwrap();
    assert!(!rs.json.contains("nowhere"));
}

#[test]
fn an_unreachable_cluster_keeps_its_datacenter_listed_and_its_status() {
    let mut w = both_ready();
    let plan = w.plan();
    // Record the status the host would have written.
    w.kc["status"] = status(&plan);
    assert_eq!(condition(&plan, "DatacenterUnreachable"), None);
    // B goes dark: its objects vanish from the snapshot.
    w.clusters[2].1 = false;
    w.children.retain(|c| c.cluster != "B");
    w.related.retain(|c| c.cluster != "B");
    let plan = w.plan();
    assert!(dcs_in(&plan).contains(&("B".to_string(), "dc2".to_string())));
    assert!(plan.delete.is_empty());
    assert_eq!(
        condition(&plan, "DatacenterUnreachable").as_deref(),
        Some("True")
    );
    let (reason, message) = condition_detail(&plan, "DatacenterUnreachable").unwrap();
    assert_eq!(reason, "ContextUnreachable");
    assert!(
        message.contains("dc2") && message.contains("\"B\"") && !message.contains("dc1"),
        "{message}"
    );
    // Back: the condition turns False, so the recovery is visible.
    let mut back = both_ready();
    back.kc["status"] = status(&plan);
    let later = back.plan();
    assert_eq!(
        condition(&later, "DatacenterUnreachable").as_deref(),
        Some("False")
    );
    assert_eq!(
        condition_detail(&later, "DatacenterUnreachable").unwrap().1,
        ""
    );
    let st = status(&plan);
    assert_eq!(
        st["datacenters"]["dc2"]["cassandra"]["cassandraOperatorProgress"],
        "Ready"
    );
    // dc1's seeds are kept rather than emptied.
    assert_eq!(
        dc_obj(&plan, "dc1")["spec"]["additionalSeeds"],
        json!(["10.2.0.1"])
    );
}

#[test]
fn system_keyspaces_replicate_to_both_datacenters_once_ready() {
    let mut w = both_ready();
    let plan = w.plan();
    let gets: Vec<_> = plan
        .operations
        .iter()
        .filter_map(|o| match &o.kind {
            OperationKind::GetReplication(ks) => Some(ks.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(gets, ["system_traces", "system_distributed", "system_auth"]);
    // All run on one ready node of ours.
    assert!(
        plan.operations
            .iter()
            .all(|o| o.target.pod == "demo-dc1-default-sts-0" && o.target.cluster == "A")
    );
    // system_auth already right, the others not.
    let want = nts(&[("dc1", 3), ("dc2", 2)]);
    let plan_ops = plan.operations.clone();
    for op in &plan_ops {
        let body = match &op.kind {
            OperationKind::GetReplication(ks) if ks == "system_auth" => want.clone(),
            _ => r#"{"class":"org.apache.cassandra.locator.SimpleStrategy","replication_factor":"1"}"#.to_string(),
        };
        w.result(&op.id, Outcome::Succeeded(body));
    }
    let plan = w.plan();
    let alters: Vec<_> = plan
        .operations
        .iter()
        .filter_map(|o| match &o.kind {
            OperationKind::AlterKeyspace(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(alters.len(), 2);
    assert!(alters.iter().all(|r| r.keyspace != "system_auth"));
    assert_eq!(
        alters[0].replicas,
        [("dc1".to_string(), 3), ("dc2".to_string(), 2)]
    );
    w.answer(&plan, |_| Outcome::Succeeded(String::new()));
    // Done: nothing more to run (dc2 joined: its rebuild follows).
    let plan = w.plan();
    assert!(plan.operations.iter().all(|o| !matches!(
        o.kind,
        OperationKind::AlterKeyspace(_) | OperationKind::GetReplication(_)
    )));
}

#[test]
fn dse_adds_its_keyspaces() {
    let mut v = two_dcs();
    v["spec"]["cassandra"]["serverType"] = json!("dse");
    v["spec"]["cassandra"]["serverVersion"] = json!("6.8.50");
    let mut w = World::new(v);
    w.secret("");
    w.secret("A");
    let plan = w.plan();
    w.create(&plan, "dc1", true);
    w.pods("A", "dc1", 3, "10.1.0");
    let plan = w.plan();
    let gets = plan
        .operations
        .iter()
        .filter(|o| matches!(o.kind, OperationKind::GetReplication(_)))
        .count();
    assert_eq!(gets, 6);
    let yaml = &dc_obj(&plan, "dc1")["spec"]["config"]["cassandra-yaml"];
    assert_eq!(
        yaml["authenticator"],
        "com.datastax.bdp.cassandra.auth.DseAuthenticator"
    );
}

/// Drives the second datacenter's join to the end, answering every operation.
fn settle(w: &mut World) {
    for _ in 0..10 {
        let plan = w.plan();
        w.sync(&plan);
        if plan.operations.is_empty() {
            return;
        }
        let body = nts(&[("dc1", 3), ("dc2", 2)]);
        w.answer(&plan, |k| match k {
            OperationKind::GetReplication(_) => Outcome::Succeeded(body.clone()),
            OperationKind::ListKeyspaces => Outcome::Succeeded("[]".into()),
            _ => Outcome::Succeeded(String::new()),
        });
    }
}

/// One 3-node datacenter in context A, its system keyspaces done: the plan that follows.
fn dc1_running() -> (World, Plan) {
    let mut w = World::new(kc(
        json!([{"metadata": {"name": "dc1"}, "k8sContext": "A", "size": 3}]),
    ));
    w.secret("");
    w.secret("A");
    w.secret("B");
    let plan = w.plan();
    w.create(&plan, "dc1", true);
    w.pods("A", "dc1", 3, "10.1.0");
    let body = nts(&[("dc1", 3)]);
    let plan = w.plan();
    w.answer(&plan, |_| Outcome::Succeeded(body.clone()));
    let plan = w.plan();
    (w, plan)
}

/// dc1 running, then dc2 (`size` pods over `racks`, in B) added to the spec, created and
/// Ready, its join not started.
fn dc2_added_and_ready(size: usize, racks: &[&str]) -> World {
    let (mut w, plan) = dc1_running();
    w.kc["status"] = status(&plan);
    w.kc["metadata"]["generation"] = json!(2);
    w.kc["spec"]["cassandra"]["datacenters"]
        .as_array_mut()
        .unwrap()
        .push(json!({"metadata": {"name": "dc2"}, "k8sContext": "B", "size": size}));
    let plan = w.plan();
    w.create(&plan, "dc2", true);
    w.pods_in_racks("B", "dc2", size, "10.2.0", racks);
    w
}

#[test]
fn a_datacenter_added_to_a_running_cluster_gets_its_keyspaces_then_a_rebuild() {
    let (mut w, plan) = dc1_running();
    assert!(plan.operations.is_empty());
    assert_eq!(
        condition(&plan, "CassandraInitialized").as_deref(),
        Some("True")
    );
    w.kc["status"] = status(&plan);

    // dc2 appears, with a user keyspace to replicate there.
    w.kc["metadata"]["generation"] = json!(2);
    w.kc["metadata"]["annotations"] =
        json!({"k8ssandra.io/dc-replication": "{\"dc2\": {\"ks1\": 2}}"});
    w.kc["spec"]["cassandra"]["datacenters"]
        .as_array_mut()
        .unwrap()
        .push(json!({"metadata": {"name": "dc2"}, "k8sContext": "B", "size": 2}));
    let plan = w.plan();
    let dc2 = dc_obj(&plan, "dc2");
    assert_eq!(
        dc2["metadata"]["annotations"]["k8ssandra.io/join-state"],
        "pending"
    );
    w.create(&plan, "dc2", true);
    w.pods("B", "dc2", 2, "10.2.0");

    // System keyspaces first.
    let plan = w.plan();
    let sys = nts(&[("dc1", 3)]);
    w.answer(&plan, |_| Outcome::Succeeded(sys.clone()));
    let plan = w.plan();
    w.answer(&plan, |_| Outcome::Succeeded(String::new()));
    // Then the user keyspace: read, then add dc2 to it.
    let plan = w.plan();
    let get = plan
        .operations
        .iter()
        .find(|o| o.kind == OperationKind::GetReplication("ks1".into()))
        .expect("read ks1");
    w.result(&get.id.clone(), Outcome::Succeeded(nts(&[("dc1", 3)])));
    let plan = w.plan();
    let alter = plan
        .operations
        .iter()
        .find_map(|o| match &o.kind {
            OperationKind::AlterKeyspace(r) if r.keyspace == "ks1" => {
                Some((o.id.clone(), r.clone()))
            }
            _ => None,
        })
        .expect("alter ks1");
    assert_eq!(
        alter.1.replicas,
        [("dc1".to_string(), 3), ("dc2".to_string(), 2)]
    );
    w.result(&alter.0, Outcome::Succeeded(String::new()));
    // Then a rebuild from dc1, one node at a time.
    let plan = w.plan();
    let rebuilds: Vec<_> = plan
        .operations
        .iter()
        .filter(|o| matches!(o.kind, OperationKind::Rebuild(_)))
        .collect();
    assert_eq!(rebuilds.len(), 1);
    assert_eq!(rebuilds[0].kind, OperationKind::Rebuild("dc1".into()));
    assert_eq!(rebuilds[0].target.cluster, "B");
    let id = rebuilds[0].id.clone();
    w.result(&id, Outcome::Running(String::new()));
    let plan = w.plan();
    assert!(
        plan.operations
            .iter()
            .all(|o| !matches!(o.kind, OperationKind::Rebuild(_)))
            || plan.operations.iter().any(|o| o.id == id)
    );
    w.result(&id, Outcome::Succeeded(String::new()));
    let plan = w.plan();
    let next: Vec<_> = plan
        .operations
        .iter()
        .filter(|o| matches!(o.kind, OperationKind::Rebuild(_)))
        .collect();
    assert_eq!(next.len(), 1);
    assert_ne!(next[0].id, id);
    let id2 = next[0].id.clone();
    w.result(&id2, Outcome::Succeeded(String::new()));
    let plan = w.plan();
    assert_eq!(
        dc_obj(&plan, "dc2")["metadata"]["annotations"]["k8ssandra.io/join-state"],
        "done"
    );
}

#[test]
fn a_joining_datacenter_is_rebuilt_one_node_per_rack_at_a_time() {
    let mut w = dc2_added_and_ready(6, &["r1", "r2", "r3"]);
    // System keyspaces: read, then altered to take dc2.
    let sys = nts(&[("dc1", 3)]);
    let plan = w.plan();
    w.answer(&plan, |_| Outcome::Succeeded(sys.clone()));
    let plan = w.plan();
    w.answer(&plan, |_| Outcome::Succeeded(String::new()));

    let rebuilds = |plan: &Plan| -> Vec<(String, String)> {
        plan.operations
            .iter()
            .filter(|o| matches!(o.kind, OperationKind::Rebuild(_)))
            .map(|o| (o.id.clone(), o.target.pod.clone()))
            .collect()
    };
    // Pods i and i+3 share a rack: the first of each rack goes first, side by side.
    let first = rebuilds(&w.plan());
    let pods: Vec<&str> = first.iter().map(|(_, p)| p.as_str()).collect();
    assert_eq!(
        pods,
        [
            "demo-dc2-default-sts-0",
            "demo-dc2-default-sts-1",
            "demo-dc2-default-sts-2"
        ]
    );
    // One rack done: only that rack moves on.
    w.result(&first[0].0, Outcome::Succeeded(String::new()));
    let next = rebuilds(&w.plan());
    let pods: Vec<&str> = next.iter().map(|(_, p)| p.as_str()).collect();
    assert_eq!(
        pods,
        [
            "demo-dc2-default-sts-3",
            "demo-dc2-default-sts-1",
            "demo-dc2-default-sts-2"
        ]
    );
    for (id, _) in next.iter().chain(&first[1..]) {
        w.result(id, Outcome::Succeeded(String::new()));
    }
    let last = rebuilds(&w.plan());
    assert_eq!(last.len(), 2, "{last:?}");
    for (id, _) in &last {
        w.result(id, Outcome::Succeeded(String::new()));
    }
    let plan = w.plan();
    assert!(rebuilds(&plan).is_empty());
    assert_eq!(
        dc_obj(&plan, "dc2")["metadata"]["annotations"]["k8ssandra.io/join-state"],
        "done"
    );
}

#[test]
fn the_next_datacenter_rolls_out_while_the_last_one_joins_and_never_streams_from_it() {
    let spec = kc(json!([
        {"metadata": {"name": "dc1"}, "k8sContext": "A", "size": 3},
        {"metadata": {"name": "dc2"}, "k8sContext": "B", "size": 3},
        {"metadata": {"name": "dc3"}, "k8sContext": "A", "size": 3},
    ]));
    let mut w = dc1_then_dc2_ready(spec, 3);
    let rebuilds = |plan: &Plan| -> Vec<(String, String, String)> {
        plan.operations
            .iter()
            .filter_map(|o| match &o.kind {
                OperationKind::Rebuild(src) => {
                    Some((o.id.clone(), o.target.pod.clone(), src.clone()))
                }
                _ => None,
            })
            .collect()
    };
    // dc2 is Ready and joining (system keyspaces first): dc3 is created beside it.
    let sys = nts(&[("dc1", 3)]);
    let mut plan = w.plan();
    for _ in 0..4 {
        if !rebuilds(&plan).is_empty() {
            break;
        }
        w.answer(&plan, |k| match k {
            OperationKind::GetReplication(_) => Outcome::Succeeded(sys.clone()),
            _ => Outcome::Succeeded(String::new()),
        });
        plan = w.plan();
    }
    let first = rebuilds(&plan);
    assert!(!first.is_empty(), "dc2 rebuilds: {:?}", plan.operations);
    assert!(
        first
            .iter()
            .all(|(_, pod, src)| pod.contains("dc2") && src == "dc1")
    );
    assert!(
        dcs_in(&plan).contains(&("A".to_string(), "dc3".to_string())),
        "dc3 waits for dc2's join: {:?}",
        dcs_in(&plan)
    );
    // dc3 Ready while dc2 still rebuilds: joins go one at a time, dc3's waits.
    w.create(&plan, "dc3", true);
    w.pods("A", "dc3", 3, "10.3.0");
    let plan = w.plan();
    assert!(
        rebuilds(&plan)
            .iter()
            .all(|(_, pod, _)| pod.contains("dc2")),
        "{:?}",
        rebuilds(&plan)
    );
    // dc2 done: dc3 rebuilds from dc1, never from a datacenter that was mid-join.
    let mut plan = plan;
    for _ in 0..10 {
        let r = rebuilds(&plan);
        if r.iter().any(|(_, pod, _)| pod.contains("dc3")) {
            break;
        }
        w.answer(&plan, |k| match k {
            OperationKind::GetReplication(_) => Outcome::Succeeded(nts(&[("dc1", 3), ("dc2", 3)])),
            _ => Outcome::Succeeded(String::new()),
        });
        w.sync(&plan);
        plan = w.plan();
    }
    let dc3 = rebuilds(&plan);
    assert!(!dc3.is_empty(), "{:?}", plan.operations);
    assert!(
        dc3.iter()
            .all(|(_, pod, src)| pod.contains("dc3") && src == "dc1"),
        "{dc3:?}"
    );
}

#[test]
fn a_join_waits_while_no_datacenter_can_stream_to_it() {
    let mut w = dc2_added_and_ready(3, &["default"]);
    // dc1 goes down (a rolling restart, say) before dc2's rebuild starts.
    w.set_ready("dc1", false);
    let sys = nts(&[("dc1", 3)]);
    for _ in 0..4 {
        let plan = w.plan();
        assert!(
            !plan
                .operations
                .iter()
                .any(|o| matches!(o.kind, OperationKind::Rebuild(_))),
            "rebuild with no source"
        );
        w.answer(&plan, |_| Outcome::Succeeded(sys.clone()));
        w.sync(&plan);
    }
    let plan = w.plan();
    assert_eq!(
        dc_obj(&plan, "dc2")["metadata"]["annotations"]["k8ssandra.io/join-state"],
        "pending",
        "a join with nothing streamed is not done"
    );
}

#[test]
fn removing_a_datacenter_is_refused_while_a_user_keyspace_replicates_to_it() {
    let mut w = both_ready();
    settle(&mut w);
    let plan = w.plan();
    w.kc["status"] = status(&plan);
    // dc2 leaves the spec.
    w.kc["metadata"]["generation"] = json!(2);
    w.kc["spec"]["cassandra"]["datacenters"]
        .as_array_mut()
        .unwrap()
        .pop();
    let plan = w.plan();
    // Still listed while that is decided.
    assert!(dcs_in(&plan).contains(&("B".to_string(), "dc2".to_string())));
    let list = plan
        .operations
        .iter()
        .find(|o| o.kind == OperationKind::ListKeyspaces)
        .expect("list keyspaces");
    assert_eq!(list.target.cluster, "A");
    w.result(
        &list.id.clone(),
        Outcome::Succeeded(r#"["system","system_auth","shop","logs"]"#.into()),
    );
    let plan = w.plan();
    // (The spec change also has the system keyspaces read again.)
    let gets: Vec<_> = plan
        .operations
        .iter()
        .filter_map(|o| match &o.kind {
            OperationKind::GetReplication(k) if !k.starts_with("system") => {
                Some((o.id.clone(), k.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        gets.iter().map(|g| g.1.as_str()).collect::<Vec<_>>(),
        ["shop", "logs"]
    );
    for (id, ks) in gets {
        let body = if ks == "shop" {
            nts(&[("dc1", 3), ("dc2", 2)])
        } else {
            nts(&[("dc1", 3)])
        };
        w.result(&id, Outcome::Succeeded(body));
    }
    let plan = w.plan();
    assert!(dcs_in(&plan).contains(&("B".to_string(), "dc2".to_string())));
    assert!(
        plan.operations
            .iter()
            .all(|o| o.kind != OperationKind::Decommission)
    );
    let err = status(&plan)["error"].as_str().unwrap().to_string();
    assert!(err.contains("shop") && !err.contains("logs"), "{err}");
    assert_eq!(
        condition(&plan, "DatacenterRemovalBlocked").as_deref(),
        Some("True")
    );
    let (reason, message) = condition_detail(&plan, "DatacenterRemovalBlocked").unwrap();
    assert_eq!(reason, "KeyspacesReplicate");
    assert!(
        message.contains("shop") && !message.contains("logs"),
        "{message}"
    );
    assert!(plan.requeue_after_ms.is_some());

    // The user fixes it; after the re-check delay, the removal proceeds.
    w.now += 31_000;
    let plan = w.plan();
    let list = plan
        .operations
        .iter()
        .find(|o| o.kind == OperationKind::ListKeyspaces)
        .expect("checks again");
    w.result(&list.id.clone(), Outcome::Succeeded(r#"["shop"]"#.into()));
    let plan = w.plan();
    let get = plan
        .operations
        .iter()
        .find(|o| o.kind == OperationKind::GetReplication("shop".into()))
        .unwrap();
    w.result(&get.id.clone(), Outcome::Succeeded(nts(&[("dc1", 3)])));
    // System keyspaces drop dc2 first.
    let plan = w.plan();
    assert_eq!(
        status(&plan)["datacenters"]["dc2"]["decommissionProgress"],
        "UpdatingReplication"
    );
    w.answer(&plan, |k| match k {
        OperationKind::GetReplication(_) => Outcome::Succeeded(nts(&[("dc1", 3), ("dc2", 2)])),
        _ => Outcome::Succeeded(String::new()),
    });
    let plan = w.plan();
    let alters: Vec<_> = plan
        .operations
        .iter()
        .filter_map(|o| match &o.kind {
            OperationKind::AlterKeyspace(r) => Some(r.replicas.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(alters.len(), 3);
    assert!(alters.iter().all(|r| r == &[("dc1".to_string(), 3)]));
    w.answer(&plan, |_| Outcome::Succeeded(String::new()));

    // Then its nodes leave, one at a time, highest ordinal first.
    let plan = w.plan();
    let decs: Vec<_> = plan
        .operations
        .iter()
        .filter(|o| o.kind == OperationKind::Decommission)
        .collect();
    assert_eq!(decs.len(), 1);
    assert_eq!(decs[0].target.pod, "demo-dc2-default-sts-1");
    assert_eq!(decs[0].target.cluster, "B");
    let id = decs[0].id.clone();
    w.result(&id, Outcome::Succeeded(String::new()));
    let plan = w.plan();
    let decs: Vec<_> = plan
        .operations
        .iter()
        .filter(|o| o.kind == OperationKind::Decommission)
        .collect();
    assert_eq!(decs.len(), 1);
    assert_eq!(decs[0].target.pod, "demo-dc2-default-sts-0");
    let id = decs[0].id.clone();
    w.result(&id, Outcome::Succeeded(String::new()));
    // Gone from the ring: no longer listed, so the host prunes it.
    let plan = w.plan();
    assert_eq!(dcs_in(&plan), [("A".to_string(), "dc1".to_string())]);
    assert!(status(&plan)["datacenters"].get("dc2").is_none());
    // dc1 keeps a seed list rather than an empty one (which would roll its nodes).
    assert_eq!(
        dc_obj(&plan, "dc1")["spec"]["additionalSeeds"],
        json!(["10.2.0.1"])
    );
    assert!(
        plan.operations
            .iter()
            .all(|o| o.target.cluster != "A" || o.kind != OperationKind::Decommission)
    );
}

#[test]
fn a_leaving_node_in_gossip_is_not_decommissioned_again() {
    let mut w = both_ready();
    settle(&mut w);
    let plan = w.plan();
    let mut st = status(&plan);
    st["datacenters"]["dc2"]["decommissionProgress"] = json!("Decommissioning");
    w.kc["status"] = st;
    w.kc["metadata"]["generation"] = json!(2);
    w.kc["spec"]["cassandra"]["datacenters"]
        .as_array_mut()
        .unwrap()
        .pop();
    // After a restart the results are gone, but gossip shows sts-1 leaving.
    w.results.clear();
    w.nodes.push(NodeState {
        node: k8ssandra_policy_sdk::NodeRef {
            cluster: "A".into(),
            namespace: NS.into(),
            pod: "demo-dc1-default-sts-0".into(),
        },
        address: Some("10.1.0.1".into()),
        reachable: true,
        error: None,
        alive: true,
        ready: true,
        endpoints: Some(
            json!({"entity": [
                {"ENDPOINT_IP": "10.1.0.1", "DC": "dc1", "STATUS": "NORMAL,1"},
                {"ENDPOINT_IP": "10.2.0.1", "DC": "dc2", "STATUS": "NORMAL,2"},
                {"ENDPOINT_IP": "10.2.0.2", "DC": "dc2", "STATUS": "LEAVING,3"},
            ]})
            .to_string(),
        ),
    });
    let plan = w.plan();
    assert!(
        plan.operations
            .iter()
            .all(|o| o.kind != OperationKind::Decommission)
    );
    assert!(dcs_in(&plan).contains(&("B".to_string(), "dc2".to_string())));
}

#[test]
fn an_update_waiting_for_permission_sets_requires_update() {
    let mut w = both_ready();
    settle(&mut w);
    let plan = w.plan();
    w.kc["status"] = status(&plan);
    assert_eq!(status(&plan)["observedGeneration"], 1);
    // Same generation, but the generated spec differs (as after an operator upgrade).
    for c in &mut w.children {
        let mut v = c.value().unwrap();
        v["spec"]["config"]["cassandra-yaml"]["num_tokens"] = json!(8);
        c.json = v.to_string();
    }
    let plan = w.plan();
    assert_eq!(condition(&plan, "RequiresUpdate").as_deref(), Some("True"));
    assert_eq!(
        dc_obj(&plan, "dc1")["spec"]["config"]["cassandra-yaml"]["num_tokens"],
        8
    );
    // With the annotation the update goes through.
    w.kc["metadata"]["annotations"] = json!({"k8ssandra.io/autoupdate-spec": "always"});
    let plan = w.plan();
    assert_eq!(condition(&plan, "RequiresUpdate").as_deref(), Some("False"));
    assert_eq!(
        dc_obj(&plan, "dc1")["spec"]["config"]["cassandra-yaml"]["num_tokens"],
        16
    );
}

#[test]
fn failed_operations_are_retried_with_a_new_id_after_a_backoff() {
    let mut w = both_ready();
    let plan = w.plan();
    let first = plan.operations[0].id.clone();
    w.result(&first, Outcome::Failed("boom".into()));
    let plan = w.plan();
    assert!(plan.operations.iter().all(|o| !o.id.starts_with(&first)));
    assert!(plan.requeue_after_ms.is_some());
    w.now += 6_000;
    let plan = w.plan();
    assert!(
        plan.operations
            .iter()
            .any(|o| o.id == format!("{first}/r1"))
    );
}

#[test]
fn plans_are_deterministic() {
    let w = both_ready();
    let a = w.plan();
    let b = w.plan();
    assert_eq!(a, b);
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
}

#[test]
fn unchanged_conditions_keep_their_transition_time() {
    let mut w = both_ready();
    let plan = w.plan();
    w.kc["status"] = status(&plan);
    w.now += 60_000;
    let later = w.plan();
    assert_eq!(status(&plan)["conditions"], status(&later)["conditions"]);
}

#[test]
fn external_secrets_need_no_secret() {
    let mut v = two_dcs();
    v["spec"]["secretsProvider"] = json!("external");
    let w = World::new(v);
    let plan = w.plan();
    assert!(plan.secrets.is_empty());
    let dc1 = dc_obj(&plan, "dc1");
    assert!(dc1["spec"].get("superuserSecretName").is_none());
}

fn violations(v: &Value, old: Option<&Value>) -> Vec<(String, String)> {
    P::validate(v.to_string(), old.map(|o| o.to_string()))
        .into_iter()
        .map(|v| (v.field, v.message))
        .collect()
}

#[test]
fn validate_names_the_offending_fields() {
    assert!(violations(&two_dcs(), None).is_empty());
    let mut v = kc(json!([
        {"metadata": {"name": "DC_1"}, "size": 3},
        {"metadata": {"name": "dc2"}, "k8sContext": "bad context", "size": 3},
        {"metadata": {"name": "dc2"}, "size": 3},
    ]));
    v["spec"]["cassandra"]
        .as_object_mut()
        .unwrap()
        .remove("storageConfig");
    let got = violations(&v, None);
    let fields: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
    assert!(
        fields.contains(&"spec.cassandra.datacenters[0].metadata.name"),
        "{got:?}"
    );
    assert!(
        fields.contains(&"spec.cassandra.datacenters[1].k8sContext"),
        "{got:?}"
    );
    assert!(
        fields.contains(&"spec.cassandra.datacenters[2].metadata.name"),
        "{got:?}"
    );
    assert!(
        fields.contains(&"spec.cassandra.datacenters[0].storageConfig"),
        "{got:?}"
    );
    assert!(got.iter().any(|(_, m)| m.contains("already the name")));
}

#[test]
fn validate_refuses_adding_and_removing_in_one_update() {
    let old = two_dcs();
    let new = kc(json!([
        {"metadata": {"name": "dc1"}, "k8sContext": "A", "size": 3},
        {"metadata": {"name": "dc3"}, "k8sContext": "B", "size": 2},
    ]));
    let got = violations(&new, Some(&old));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "spec.cassandra.datacenters");
    let moved = kc(json!([
        {"metadata": {"name": "dc1"}, "k8sContext": "B", "size": 3},
        {"metadata": {"name": "dc2"}, "k8sContext": "B", "size": 2},
    ]));
    let got = violations(&moved, Some(&old));
    assert_eq!(got[0].0, "spec.cassandra.datacenters[0].k8sContext");
}

#[test]
fn seeds_moving_is_not_an_update_that_needs_permission() {
    let mut w = both_ready();
    settle(&mut w);
    let plan = w.plan();
    w.kc["status"] = status(&plan);
    // dc2's seed pod got a new IP.
    for r in &mut w.related {
        r.json = r.json.replace("10.2.0.1", "10.2.0.9");
    }
    let plan = w.plan();
    assert_eq!(condition(&plan, "RequiresUpdate").as_deref(), Some("False"));
    assert_eq!(
        dc_obj(&plan, "dc1")["spec"]["additionalSeeds"],
        json!(["10.2.0.9"])
    );
    assert_eq!(status(&plan)["observedGeneration"], 1);
}

#[test]
fn a_changed_context_keeps_the_running_datacenter() {
    let mut w = both_ready();
    settle(&mut w);
    w.kc["metadata"]["generation"] = json!(2);
    w.kc["spec"]["cassandra"]["datacenters"][1]["k8sContext"] = json!("A");
    let plan = w.plan();
    assert!(dcs_in(&plan).contains(&("B".to_string(), "dc2".to_string())));
    assert!(!dcs_in(&plan).contains(&("A".to_string(), "dc2".to_string())));
    assert!(
        plan.operations.iter().all(
            |o| o.kind != OperationKind::Decommission && o.kind != OperationKind::ListKeyspaces
        )
    );
    let err = status(&plan)["error"].as_str().unwrap().to_string();
    assert!(
        err.contains("spec.cassandra.datacenters[1].k8sContext"),
        "{err}"
    );
}

#[test]
fn stopped_and_namespaced_datacenters() {
    let v = kc(
        json!([{"metadata": {"name": "dc1", "namespace": "other"}, "k8sContext": "A", "size": 3, "stopped": true}]),
    );
    let mut w = World::new(v);
    w.secret("");
    w.related.push(Object {
        cluster: "A".into(),
        json: json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "demo-superuser", "namespace": "other"}})
        .to_string(),
    });
    let plan = w.plan();
    let dc = dc_obj(&plan, "dc1");
    assert_eq!(dc["metadata"]["namespace"], "other");
    assert_eq!(dc["spec"]["stopped"], true);
    let rs = plan
        .apply
        .iter()
        .find(|o| o.kind().as_deref() == Some("ReplicatedSecret"))
        .unwrap();
    let rs = rs.value().unwrap();
    assert_eq!(
        rs["spec"]["replicationTargets"],
        json!([{"k8sContextName": "A", "namespace": "other"}])
    );
}

#[test]
fn ring_nodes_without_a_pod_hold_the_removal_back() {
    let mut w = both_ready();
    settle(&mut w);
    let plan = w.plan();
    let mut st = status(&plan);
    st["datacenters"]["dc2"]["decommissionProgress"] = json!("Decommissioning");
    w.kc["status"] = st;
    w.kc["metadata"]["generation"] = json!(2);
    w.kc["spec"]["cassandra"]["datacenters"]
        .as_array_mut()
        .unwrap()
        .pop();
    // dc2's pods are gone, but gossip still has one of its nodes.
    w.related
        .retain(|r| r.cluster != "B" || !r.json.contains("\"Pod\""));
    w.nodes.push(NodeState {
        node: k8ssandra_policy_sdk::NodeRef {
            cluster: "A".into(),
            namespace: NS.into(),
            pod: "demo-dc1-default-sts-0".into(),
        },
        address: Some("10.1.0.1".into()),
        reachable: true,
        error: None,
        alive: true,
        ready: true,
        endpoints: Some(
            json!({"entity": [
                {"ENDPOINT_IP": "10.1.0.1", "DC": "dc1", "STATUS": "NORMAL,1"},
                {"ENDPOINT_IP": "10.2.0.2", "DC": "dc2", "STATUS": "NORMAL,3"},
            ]})
            .to_string(),
        ),
    });
    let plan = w.plan();
    assert!(dcs_in(&plan).contains(&("B".to_string(), "dc2".to_string())));
    let err = status(&plan)["error"].as_str().unwrap().to_string();
    assert!(err.contains("10.2.0.2"), "{err}");
    // Once gossip forgets it, the datacenter goes.
    w.nodes[0].endpoints = Some(
        json!({"entity": [{"ENDPOINT_IP": "10.1.0.1", "DC": "dc1", "STATUS": "NORMAL,1"}]})
            .to_string(),
    );
    let plan = w.plan();
    assert_eq!(dcs_in(&plan), [("A".to_string(), "dc1".to_string())]);
}

#[test]
fn containers_merge_by_name_and_env_values_replace_references() {
    let mut v = kc(json!([{"metadata": {"name": "dc1"}, "size": 1,
        "containers": [
            {"name": "cassandra", "env": [{"name": "A", "value": "dc"}]},
            {"name": "sidecar", "image": "dc-image"}
        ],
        "mgmtAPIHeap": "64Mi",
        "extraVolumes": {"volumes": [{"name": "v", "emptyDir": {}}]}
    }]));
    v["spec"]["cassandra"]["containers"] = json!([
        {"name": "sidecar", "image": "cluster-image", "args": ["x"]},
        {"name": "cassandra", "env": [
            {"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            {"name": "B", "value": "cluster"}
        ]}
    ]);
    v["spec"]["cassandra"]["extraVolumes"] =
        json!({"volumes": [{"name": "v", "configMap": {"name": "cm"}}]});
    let mut w = World::new(v);
    w.secret("");
    let spec = dc_obj(&w.plan(), "dc1")["spec"].clone();
    let containers = spec["podTemplateSpec"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .clone();
    let names: Vec<_> = containers
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sidecar", "cassandra"]);
    assert_eq!(containers[0]["image"], "dc-image");
    assert_eq!(containers[0]["args"], json!(["x"]));
    let env = containers[1]["env"].as_array().unwrap();
    assert_eq!(env[0], json!({"name": "A", "value": "dc"}));
    assert_eq!(env[1], json!({"name": "B", "value": "cluster"}));
    assert!(
        env.iter()
            .any(|e| e["name"] == "MANAGEMENT_API_HEAP_SIZE" && e["value"] == "67108864")
    );
    // A volume's source is replaced whole, never mixed.
    assert_eq!(
        spec["podTemplateSpec"]["spec"]["volumes"],
        json!([{"name": "v", "emptyDir": {}}])
    );
}

#[test]
fn a_datacenter_added_next_to_settled_ones_is_created() {
    let mut w = both_ready();
    // dc2 finished joining.
    for c in &mut w.children {
        let mut v = c.value().unwrap();
        if v["metadata"]["annotations"]["k8ssandra.io/join-state"] == "pending" {
            v["metadata"]["annotations"]["k8ssandra.io/join-state"] = json!("done");
        }
        c.json = v.to_string();
    }
    let plan = w.plan();
    w.kc["status"] = status(&plan);
    w.kc["spec"]["cassandra"]["datacenters"]
        .as_array_mut()
        .unwrap()
        .push(json!({"metadata": {"name": "dc3"}, "k8sContext": "A", "size": 3}));
    w.kc["metadata"]["generation"] = json!(2);
    let plan = w.plan();
    assert!(
        dcs_in(&plan).contains(&("A".to_string(), "dc3".to_string())),
        "{:?} status {}",
        dcs_in(&plan),
        status(&plan)
    );
}

#[test]
fn system_replication_is_read_again_after_a_spec_change() {
    let mut w = both_ready();
    let plan = w.plan();
    let want = nts(&[("dc1", 3), ("dc2", 2)]);
    w.answer(&plan, |_| Outcome::Succeeded(want.clone()));
    let settled = w.plan();
    assert!(
        !settled
            .operations
            .iter()
            .any(|o| matches!(o.kind, OperationKind::GetReplication(_))),
        "read once per desired state"
    );
    // A later spec change (say dc3 added, then removed again) comes back to the same
    // desired replication: the earlier outcomes must not stand in for a fresh read.
    w.kc["metadata"]["generation"] = json!(2);
    let again = w.plan();
    let gets = again
        .operations
        .iter()
        .filter(|o| matches!(o.kind, OperationKind::GetReplication(_)))
        .count();
    assert_eq!(gets, 3, "{:?}", again.operations);
}

/// Runs plans, answering every operation (reads with `replication`), until none is left.
fn settle_with(w: &mut World, replication: &str) -> Plan {
    for _ in 0..10 {
        let plan = w.plan();
        if plan.operations.is_empty() {
            return plan;
        }
        w.answer(&plan, |_| Outcome::Succeeded(replication.to_string()));
    }
    panic!("operations never settle: {:?}", w.plan().operations);
}

fn stargates_in(plan: &Plan) -> Vec<(String, Value)> {
    plan.apply
        .iter()
        .filter(|o| o.kind().as_deref() == Some("Stargate"))
        .map(|o| (o.cluster.clone(), o.value().unwrap()))
        .collect()
}

#[test]
fn stargate_per_ready_datacenter_after_its_auth_keyspace() {
    let mut w = both_ready();
    let want = nts(&[("dc1", 3), ("dc2", 2)]);
    let before: Vec<Value> = ["dc1", "dc2"]
        .iter()
        .map(|d| dc_obj(&settle_with(&mut w, &want), d))
        .collect();

    w.kc["spec"]["stargate"] = json!({"size": 3, "heapSize": "256Mi"});
    w.kc["spec"]["cassandra"]["datacenters"][1]["stargate"] = json!({"heapSize": "512Mi"});
    w.kc["metadata"]["generation"] = json!(2);
    // The auth keyspace first, replicated like the system keyspaces, then its table.
    let plan = w.plan();
    assert!(
        stargates_in(&plan).is_empty(),
        "no Stargate before its keyspace"
    );
    let mut kinds = Vec::new();
    for _ in 0..10 {
        let plan = w.plan();
        if plan.operations.is_empty() {
            break;
        }
        kinds.extend(plan.operations.iter().map(|o| o.kind.clone()));
        w.answer(&plan, |_| Outcome::Succeeded(want.clone()));
    }
    assert!(kinds.iter().any(|k| matches!(k, OperationKind::CreateKeyspace(r)
        if r.keyspace == "data_endpoint_auth" && r.replicas == [("dc1".to_string(), 3), ("dc2".to_string(), 2)])));
    assert!(
        kinds
            .iter()
            .any(|k| matches!(k, OperationKind::CreateTable(t)
        if t.keyspace == "data_endpoint_auth" && t.name == "token" && t.columns.len() == 3))
    );

    let plan = w.plan();
    let sgs = stargates_in(&plan);
    assert_eq!(sgs.len(), 2);
    let (ctx, dc2) = sgs
        .iter()
        .find(|(_, v)| v["spec"]["datacenterRef"]["name"] == "dc2")
        .unwrap();
    assert_eq!(ctx, "B", "in the datacenter's cluster");
    assert_eq!(dc2["metadata"]["name"], "demo-dc2-stargate");
    assert_eq!(dc2["metadata"]["namespace"], NS);
    assert_eq!(
        dc2["metadata"]["labels"]["k8ssandra.io/cluster-name"],
        "demo"
    );
    assert_eq!(dc2["spec"]["size"], 3);
    assert_eq!(
        dc2["spec"]["heapSize"], "512Mi",
        "the datacenter's setting wins"
    );
    // The datacenters are not touched: no Cassandra pod restarts for Stargate.
    for (i, d) in ["dc1", "dc2"].iter().enumerate() {
        assert_eq!(dc_obj(&plan, d)["spec"], before[i]["spec"]);
    }

    // Its status is mirrored into status.datacenters.
    let mut live = dc2.clone();
    live["status"] = json!({"progress": "Running", "readyReplicasRatio": "3/3", "replicas": 3,
        "readyReplicas": 3, "updatedReplicas": 3, "availableReplicas": 3});
    w.children.push(Object {
        cluster: "B".into(),
        json: live.to_string(),
    });
    let plan = w.plan();
    assert_eq!(
        status(&plan)["datacenters"]["dc2"]["stargate"]["readyReplicasRatio"],
        "3/3"
    );

    // A stopped datacenter, then no template at all: no Stargate left in the plan.
    w.kc["spec"]["cassandra"]["datacenters"][1]["stopped"] = json!(true);
    assert_eq!(stargates_in(&w.plan()).len(), 1);
    w.kc["spec"]["cassandra"]["datacenters"][1]["stopped"] = json!(false);
    w.kc["spec"]["stargate"] = Value::Null;
    w.kc["spec"]["cassandra"]["datacenters"][1]["stargate"] = Value::Null;
    assert!(stargates_in(&w.plan()).is_empty());
}

#[test]
fn stargate_settings_are_checked_at_admission() {
    let mut k = two_dcs();
    k["spec"]["stargate"] =
        json!({"size": 1, "heapSize": "1Gi", "resources": {"limits": {"memory": "1Gi"}}});
    k["spec"]["cassandra"]["datacenters"][0]["stargate"] = json!({"racks": [{"name": "nope"}]});
    let v = P::validate(k.to_string(), None);
    let fields: Vec<&str> = v.iter().map(|v| v.field.as_str()).collect();
    assert!(fields.contains(&"spec.stargate.heapSize"), "{fields:?}");
    assert!(
        fields.contains(&"spec.cassandra.datacenters[0].stargate.racks[0].name"),
        "{fields:?}"
    );
}

/// Reaper (`spec.reaper`); kept in its own file, next to this one.
mod medusa;
mod medusa_purge;
mod reaper;
mod sidecars;
mod stargate;
