use k8ssandra_policy_sdk::{
    NodeRef, NodeState, Object, OperationKind, OperationResult, Outcome, Plan, Policy, Snapshot,
};
use serde_json::{Value, json};

use crate::StargatePolicy;
use crate::decide::{REASON_INVALID, REASON_NO_DATACENTER};

pub(crate) const NS: &str = "ns";

pub(crate) fn stargate(spec: Value, labels: Value) -> Value {
    json!({
        "apiVersion": "stargate.k8ssandra.io/v1alpha1", "kind": "Stargate",
        "metadata": {"name": "demo-dc1-stargate", "namespace": NS, "uid": "sg-uid",
                     "generation": 1, "labels": labels},
        "spec": spec,
    })
}

pub(crate) fn spec3() -> Value {
    json!({"datacenterRef": {"name": "dc1"}, "size": 3})
}

pub(crate) fn kc_labels() -> Value {
    json!({"k8ssandra.io/cluster-name": "demo", "k8ssandra.io/cluster-namespace": NS})
}

pub(crate) fn datacenter(ready: bool, server_type: &str, version: &str) -> Value {
    json!({
        "apiVersion": "cassandra.datastax.com/v1beta1", "kind": "CassandraDatacenter",
        "metadata": {"name": "dc1", "namespace": NS, "generation": 1},
        "spec": {
            "clusterName": "demo", "storageConfig": {}, "serverType": server_type, "serverVersion": version, "size": 3,
            "racks": [
                {"name": "r1", "nodeAffinityLabels": {"topology.kubernetes.io/zone": "zone-a"}},
                {"name": "r2", "nodeAffinityLabels": {"topology.kubernetes.io/zone": "zone-b"}},
                {"name": "r3", "nodeAffinityLabels": {"topology.kubernetes.io/zone": "zone-c"}}
            ],
            "config": {"cassandra-yaml": {"num_tokens": 16, "native_transport_idle_timeout_in_ms": 6000}}
        },
        "status": {
            "cassandraOperatorProgress": if ready { "Ready" } else { "Updating" },
            "observedGeneration": 1,
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                            "reason": "", "message": "", "lastTransitionTime": "2023-11-14T00:00:00Z"}]
        }
    })
}

fn obj(v: &Value) -> Object {
    Object {
        cluster: String::new(),
        json: v.to_string(),
    }
}

pub(crate) fn snapshot(parent: Value, related: Vec<Value>, children: Vec<Value>) -> Snapshot {
    let mut s = Snapshot::for_parent(obj(&parent));
    s.related = related.iter().map(obj).collect();
    s.children = children.iter().map(obj).collect();
    s.now_ms = 1_700_000_000_000;
    s
}

pub(crate) fn applied(plan: &Plan, kind: &str) -> Vec<Value> {
    plan.apply
        .iter()
        .map(|o| o.value().unwrap())
        .filter(|v| v["kind"] == kind)
        .collect()
}

pub(crate) fn status(plan: &Plan) -> Value {
    serde_json::from_str(plan.status.as_deref().expect("a status")).unwrap()
}

pub(crate) fn ready_condition(plan: &Plan) -> Value {
    status(plan)["conditions"][0].clone()
}

/// The Deployments of a plan as the Deployment controller reports them once rolled out.
pub(crate) fn rolled_out(plan: &Plan) -> Vec<Value> {
    applied(plan, "Deployment")
        .into_iter()
        .map(|mut d| {
            let n = d["spec"]["replicas"].clone();
            d["metadata"]["generation"] = json!(1);
            d["status"] = json!({"observedGeneration": 1, "replicas": n, "readyReplicas": n,
                                 "updatedReplicas": n, "availableReplicas": n});
            d
        })
        .collect()
}

#[test]
fn describe_owns_the_stargate_children() {
    let info = StargatePolicy::describe();
    assert_eq!(info.parent.kind, "Stargate");
    let owns: Vec<&str> = info.owns.iter().map(|k| k.kind.as_str()).collect();
    assert_eq!(
        owns,
        ["Deployment", "Service", "ConfigMap", "ServiceMonitor"]
    );
    assert!(
        info.reads
            .iter()
            .all(|r| !r.selector.is_empty() || r.kind.kind != "Pod")
    );
}

#[test]
fn waits_for_the_datacenter_and_warns_of_the_deprecation() {
    let s = snapshot(
        stargate(spec3(), kc_labels()),
        vec![datacenter(false, "cassandra", "4.1.5")],
        vec![],
    );
    let plan = StargatePolicy::reconcile(s).unwrap();
    assert!(plan.apply.is_empty());
    assert_eq!(status(&plan)["progress"], "Pending");
    assert_eq!(status(&plan)["readyReplicasRatio"], "0/3");
    assert_eq!(ready_condition(&plan)["status"], "False");
    assert!(
        plan.events
            .iter()
            .any(|e| e.reason == "Deprecated" && e.message.contains("deprecated"))
    );
}

#[test]
fn one_deployment_per_rack_then_the_service_once_ready() {
    let parent = stargate(spec3(), kc_labels());
    let dc = datacenter(true, "cassandra", "4.1.5");
    let plan =
        StargatePolicy::reconcile(snapshot(parent.clone(), vec![dc.clone()], vec![])).unwrap();
    let deployments = applied(&plan, "Deployment");
    let names: Vec<&str> = deployments
        .iter()
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "demo-dc1-r1-stargate-deployment",
            "demo-dc1-r2-stargate-deployment",
            "demo-dc1-r3-stargate-deployment"
        ]
    );
    assert!(
        plan.operations.is_empty(),
        "the K8ssandraCluster owns the auth keyspace"
    );
    let d = &deployments[0];
    assert_eq!(d["spec"]["replicas"], 1);
    let pod = &d["spec"]["template"];
    assert_eq!(
        pod["metadata"]["labels"]["k8ssandra.io/stargate"],
        "demo-dc1-stargate"
    );
    assert_eq!(
        pod["metadata"]["labels"]["app.kubernetes.io/component"],
        "stargate"
    );
    assert_eq!(
        pod["metadata"]["labels"]["k8ssandra.io/cluster-name"],
        "demo"
    );
    assert!(
        pod["metadata"]["labels"]
            .get("cassandra.datastax.com/cluster")
            .is_none(),
        "Stargate pods are no Cassandra pods"
    );
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["image"], "docker.io/stargateio/stargate-4_0:v1.0.77");
    let env: std::collections::BTreeMap<&str, &Value> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap(),
                e.get("value").unwrap_or(&Value::Null),
            )
        })
        .collect();
    assert_eq!(env["CLUSTER_VERSION"], "4.0");
    assert_eq!(env["SEED"], "demo-seed-service.ns.svc");
    assert_eq!(env["RACK_NAME"], "r1");
    assert_eq!(env["ENABLE_AUTH"], "true");
    assert!(env["JAVA_OPTS"].as_str().unwrap().contains("-Xmx268435456"));
    assert_eq!(c["resources"]["limits"]["memory"], "1Gi");
    assert_eq!(c["resources"]["requests"]["memory"], "512Mi");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/checker/readiness");
    assert_eq!(c["livenessProbe"]["initialDelaySeconds"], 30);
    let ports: Vec<i64> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["containerPort"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ports,
        [8080, 8081, 8082, 8084, 8085, 8090, 9042, 8609, 7000, 7001]
    );
    let aff = &pod["spec"]["affinity"];
    assert_eq!(
        aff["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            [0]["matchExpressions"][0]["values"][0],
        "zone-a"
    );
    assert_eq!(
        aff["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]["labelSelector"]
            ["matchExpressions"][2]["values"][0],
        "r1"
    );
    let cm = &applied(&plan, "ConfigMap")[0];
    assert_eq!(cm["metadata"]["name"], "demo-dc1-cassandra-config");
    assert_eq!(cm["data"]["cassandra.yaml"], "{}");
    assert_eq!(
        cm["data"]["stargate-cql.yaml"],
        r#"{"native_transport_idle_timeout_in_ms":6000}"#
    );
    assert!(
        applied(&plan, "Service").is_empty(),
        "no Service before the replicas are ready"
    );
    let st = status(&plan);
    assert_eq!(st["progress"], "Deploying");
    assert_eq!(st["deploymentRefs"].as_array().unwrap().len(), 3);

    // Every replica ready: the Service, Running, Ready.
    let mut with_status = parent.clone();
    with_status["status"] = st.clone();
    let mut children = rolled_out(&plan);
    children.extend(applied(&plan, "ConfigMap"));
    let plan = StargatePolicy::reconcile(snapshot(with_status, vec![dc], children)).unwrap();
    let svc = &applied(&plan, "Service")[0];
    assert_eq!(svc["metadata"]["name"], "demo-dc1-stargate-service");
    let ports: Vec<i64> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_i64().unwrap())
        .collect();
    assert_eq!(ports, [8080, 8081, 8082, 8084, 8085, 8090, 9042]);
    let st = status(&plan);
    assert_eq!(st["progress"], "Running");
    assert_eq!(st["readyReplicasRatio"], "3/3");
    assert_eq!(st["serviceRef"], "demo-dc1-stargate-service");
    assert_eq!(ready_condition(&plan)["status"], "True");
    assert!(
        plan.events.iter().all(|e| e.reason != "Deprecated"),
        "warned once"
    );
}

#[test]
fn image_heap_and_auth_options_follow_the_spec() {
    let spec = json!({
        "datacenterRef": {"name": "dc1"}, "size": 1, "heapSize": "1Gi",
        "authOptions": {"apiAuthMethod": "JWT", "providerUrl": "https://idp/certs"},
        "racks": [{"name": "r1", "containerImage": {"registry": "mirror.local", "tag": "v1.0.80"}}]
    });
    let plan = StargatePolicy::reconcile(snapshot(
        stargate(spec, kc_labels()),
        vec![datacenter(true, "dse", "6.8.40")],
        vec![],
    ))
    .unwrap();
    let d = applied(&plan, "Deployment");
    assert_eq!(d.len(), 1, "size 1 over 3 racks: the first rack only");
    assert!(
        plan.events
            .iter()
            .any(|e| e.reason == "UnevenStargateSpread" && e.message.contains("no Stargate pods"))
    );
    let c = &d[0]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        c["image"],
        "mirror.local/stargateio/stargate-dse-68:v1.0.80"
    );
    let java = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "JAVA_OPTS")
        .unwrap();
    let java = java["value"].as_str().unwrap();
    assert!(java.contains("-Xms1073741824") && java.contains("AuthJwtService"));
    assert!(java.contains("jwt_provider_url=https://idp/certs"));
    assert!(
        c["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "DSE")
    );
    assert_eq!(c["resources"]["limits"]["memory"], "4Gi");
}

#[test]
fn bad_input_names_the_field_and_deletes_nothing() {
    let live = rolled_out(
        &StargatePolicy::reconcile(snapshot(
            stargate(spec3(), kc_labels()),
            vec![datacenter(true, "cassandra", "4.1.5")],
            vec![],
        ))
        .unwrap(),
    );
    let cases = [
        (
            json!({"datacenterRef": {"name": "nope"}, "size": 3}),
            "spec.datacenterRef.name",
            REASON_NO_DATACENTER,
        ),
        (
            json!({"datacenterRef": {"name": "dc1"}, "size": 3, "heapSize": "2Gi",
                   "resources": {"limits": {"memory": "1Gi"}}}),
            "spec.heapSize",
            REASON_INVALID,
        ),
        (
            json!({"datacenterRef": {"name": "dc1"}, "size": 3, "racks": [{"name": "rx"}]}),
            "spec.racks[0].name",
            REASON_INVALID,
        ),
    ];
    for (spec, field, reason) in cases {
        let plan = StargatePolicy::reconcile(snapshot(
            stargate(spec, kc_labels()),
            vec![datacenter(true, "cassandra", "4.1.5")],
            live.clone(),
        ))
        .unwrap();
        let cond = ready_condition(&plan);
        assert_eq!(cond["status"], "False");
        assert_eq!(cond["reason"], reason);
        assert!(cond["message"].as_str().unwrap().contains(field), "{cond}");
        let kept: Vec<&str> = applied(&plan, "Deployment")
            .iter()
            .map(|d| d["metadata"]["name"].as_str().unwrap().to_string())
            .map(|s| &*s.leak())
            .collect();
        assert_eq!(kept.len(), 3, "every live Deployment kept for {field}");
        let first = &applied(&plan, "Deployment")[0];
        assert_eq!(first["spec"], live[0]["spec"], "kept as it is");
        assert!(plan.delete.is_empty());
        assert!(plan.events.iter().any(|e| e.reason == reason));
    }
    // Admission refuses what it can see without the datacenter.
    let v = StargatePolicy::validate(
        stargate(
            json!({"datacenterRef": {"name": "dc1"}, "size": 1, "heapSize": "1Gi",
                   "resources": {"limits": {"memory": "512Mi"}}}),
            json!({}),
        )
        .to_string(),
        None,
    );
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].field, "spec.heapSize");
}

#[test]
fn a_standalone_stargate_creates_its_auth_keyspace_first() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "demo-dc1-r1-sts-0", "namespace": NS,
                     "labels": {"cassandra.datastax.com/cluster": "demo",
                                "cassandra.datastax.com/datacenter": "dc1"}},
    });
    let mut s = snapshot(
        stargate(spec3(), json!({})),
        vec![datacenter(true, "cassandra", "4.1.5"), pod],
        vec![],
    );
    s.nodes.push(NodeState {
        node: NodeRef {
            cluster: String::new(),
            namespace: NS.into(),
            pod: "demo-dc1-r1-sts-0".into(),
        },
        address: Some("127.1.0.1".into()),
        reachable: true,
        error: None,
        alive: true,
        ready: true,
        endpoints: None,
    });
    let plan = StargatePolicy::reconcile(s.clone()).unwrap();
    assert!(applied(&plan, "Deployment").is_empty(), "schema first");
    assert_eq!(status(&plan)["progress"], "Pending");
    let op = &plan.operations[0];
    let OperationKind::CreateKeyspace(r) = &op.kind else {
        panic!("{:?}", op.kind)
    };
    assert_eq!(r.keyspace, "data_endpoint_auth");
    assert_eq!(r.replicas, [("dc1".to_string(), 3)]);

    // Created (an existing keyspace keeps its replication), then the table, then the
    // Deployments.
    let done = |id: &str, body: &str| OperationResult {
        id: id.into(),
        outcome: Outcome::Succeeded(body.into()),
        at_ms: 1,
    };
    s.results.push(done(&op.id, ""));
    let plan = StargatePolicy::reconcile(s.clone()).unwrap();
    let table = &plan.operations[0];
    let OperationKind::CreateTable(t) = &table.kind else {
        panic!("{:?}", table.kind)
    };
    assert_eq!(
        (t.keyspace.as_str(), t.name.as_str()),
        ("data_endpoint_auth", "token")
    );
    assert_eq!(t.columns[0].name, "auth_token");
    s.results.push(done(&table.id, ""));
    let plan = StargatePolicy::reconcile(s).unwrap();
    assert!(plan.operations.is_empty());
    assert_eq!(applied(&plan, "Deployment").len(), 3);
}
