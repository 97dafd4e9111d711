use k8ssandra_policy_sdk::{Object, Plan, Policy, Snapshot};
use serde_json::{Value, json};

use crate::ReaperPolicy;
use crate::decide::{
    REASON_DC_NOT_READY, REASON_DEPLOYING, REASON_INVALID, REASON_NO_DATACENTER, REASON_REGISTERING,
};

pub(crate) const NS: &str = "ns";

pub(crate) fn reaper(spec: Value) -> Value {
    json!({
        "apiVersion": "reaper.k8ssandra.io/v1alpha1", "kind": "Reaper",
        "metadata": {"name": "demo-dc1-reaper", "namespace": NS, "uid": "r-uid", "generation": 1,
                     "labels": {"k8ssandra.io/cluster-name": "demo", "k8ssandra.io/cluster-namespace": NS}},
        "spec": spec,
    })
}

pub(crate) fn spec() -> Value {
    json!({
        "datacenterRef": {"name": "dc1"},
        "cassandraUserSecretRef": {"name": "demo-reaper"},
        "uiUserSecretRef": {"name": "demo-reaper-ui"},
    })
}

pub(crate) fn datacenter(ready: bool, version: &str) -> Value {
    json!({
        "apiVersion": "cassandra.datastax.com/v1beta1", "kind": "CassandraDatacenter",
        "metadata": {"name": "dc1", "namespace": NS, "generation": 1},
        "spec": {"clusterName": "demo", "storageConfig": {}, "serverType": "cassandra",
                 "serverVersion": version, "size": 3},
        "status": {
            "cassandraOperatorProgress": if ready { "Ready" } else { "Updating" },
            "observedGeneration": 1,
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                            "reason": "", "message": "", "lastTransitionTime": "2023-11-14T00:00:00Z"}]
        }
    })
}

pub(crate) fn obj(v: &Value) -> Object {
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

pub(crate) fn run(s: Snapshot) -> Plan {
    ReaperPolicy::reconcile(s).expect("a plan")
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

fn env_of(container: &Value) -> Vec<Value> {
    container["env"].as_array().cloned().unwrap_or_default()
}

fn env_value(container: &Value, name: &str) -> Option<Value> {
    env_of(container).into_iter().find(|e| e["name"] == name)
}

/// A workload as its controller reports it once its pod is ready.
pub(crate) fn rolled_out(mut w: Value) -> Value {
    w["metadata"]["generation"] = json!(1);
    w["status"] = json!({"observedGeneration": 1, "replicas": 1, "readyReplicas": 1,
                         "updatedReplicas": 1, "availableReplicas": 1});
    w
}

#[test]
fn cassandra_storage_renders_upstreams_deployment_and_service() {
    let plan = run(snapshot(
        reaper(spec()),
        vec![datacenter(true, "4.1.5")],
        vec![],
    ));
    let deployments = applied(&plan, "Deployment");
    assert_eq!(deployments.len(), 1);
    assert!(applied(&plan, "StatefulSet").is_empty());
    let d = &deployments[0];
    assert_eq!(d["metadata"]["name"], "demo-dc1-reaper");
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(
        d["spec"]["selector"]["matchExpressions"][1],
        json!({"key": "k8ssandra.io/reaper", "operator": "In", "values": ["demo-dc1-reaper"]})
    );
    let pod = &d["spec"]["template"];
    assert_eq!(
        pod["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "k8ssandra-operator"
    );
    assert_eq!(
        pod["metadata"]["labels"]["k8ssandra.io/reaper"],
        "demo-dc1-reaper"
    );
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["name"], "reaper");
    assert_eq!(c["image"], "docker.io/thelastpickle/cassandra-reaper:5.0.0");
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(
        c["ports"],
        json!([{"name": "app", "containerPort": 8080, "protocol": "TCP"},
               {"name": "admin", "containerPort": 8081, "protocol": "TCP"}])
    );
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(
            c[probe],
            json!({"initialDelaySeconds": 45, "periodSeconds": 15,
                   "httpGet": {"path": "/healthcheck", "port": 8081}})
        );
    }
    assert_eq!(c["securityContext"]["runAsUser"], 1000);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        pod["spec"]["securityContext"],
        json!({"runAsNonRoot": true, "fsGroup": 1000})
    );
    assert_eq!(c["resources"]["limits"]["memory"], "3Gi");
    let expect = [
        ("REAPER_STORAGE_TYPE", "cassandra"),
        ("REAPER_ENABLE_DYNAMIC_SEED_LIST", "false"),
        ("REAPER_DATACENTER_AVAILABILITY", "ALL"),
        ("REAPER_CASS_LOCAL_DC", "dc1"),
        ("REAPER_CASS_KEYSPACE", "reaper_db"),
        (
            "REAPER_CASS_CONTACT_POINTS",
            "[{\"host\": \"demo-dc1-service\", \"port\": 9042}]",
        ),
        ("REAPER_HEAP_SIZE", "2147483648"),
        ("REAPER_HTTP_MANAGEMENT_ENABLE", "true"),
        ("REAPER_CASS_AUTH_ENABLED", "true"),
        ("REAPER_AUTH_ENABLED", "true"),
        ("REAPER_SKIP_SCHEMA_MIGRATION", "true"),
    ];
    for (k, v) in expect {
        assert_eq!(
            env_value(c, k).map(|e| e["value"].clone()),
            Some(json!(v)),
            "{k}"
        );
    }
    // Credentials by reference only.
    for (k, secret, key) in [
        ("REAPER_CASS_AUTH_USERNAME", "demo-reaper", "username"),
        ("REAPER_CASS_AUTH_PASSWORD", "demo-reaper", "password"),
        ("REAPER_JMX_AUTH_PASSWORD", "demo-reaper", "password"),
        ("REAPER_AUTH_USER", "demo-reaper-ui", "username"),
        ("REAPER_AUTH_PASSWORD", "demo-reaper-ui", "password"),
    ] {
        let e = env_value(c, k).unwrap_or_else(|| panic!("{k}"));
        assert_eq!(e.get("value"), None, "{k} must not carry a value");
        assert_eq!(
            e["valueFrom"]["secretKeyRef"],
            json!({"name": secret, "key": key})
        );
    }
    let init = &pod["spec"]["initContainers"][0];
    assert_eq!(init["name"], "reaper-schema-init");
    assert_eq!(init["args"], json!(["schema-migration"]));
    assert_eq!(init["image"], c["image"]);
    assert_eq!(env_value(init, "REAPER_SKIP_SCHEMA_MIGRATION"), None);
    assert!(env_value(init, "REAPER_CASS_AUTH_PASSWORD").is_some());

    let services = applied(&plan, "Service");
    assert_eq!(services.len(), 1);
    let svc = &services[0];
    assert_eq!(svc["metadata"]["name"], "demo-dc1-reaper-service");
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "app", "port": 8080, "protocol": "TCP", "targetPort": "app"},
               {"name": "admin", "port": 8081, "protocol": "TCP", "targetPort": "admin"}])
    );
    assert_eq!(
        svc["spec"]["selector"]["k8ssandra.io/reaper"],
        "demo-dc1-reaper"
    );
    assert_eq!(svc["spec"]["selector"]["k8ssandra.io/cluster-name"], "demo");
    for (k, v) in svc["spec"]["selector"].as_object().unwrap() {
        assert_eq!(
            &pod["metadata"]["labels"][k], v,
            "pods carry selector label {k}"
        );
    }

    let st = status(&plan);
    assert_eq!(st["progress"], "Deploying");
    assert_eq!(st["conditions"][0]["status"], "False");
    assert_eq!(st["conditions"][0]["reason"], REASON_DEPLOYING);
}

#[test]
fn no_secrets_means_auth_off_and_no_secret_references() {
    let plan = run(snapshot(
        reaper(json!({"datacenterRef": {"name": "dc1"}})),
        vec![datacenter(true, "4.1.5")],
        vec![],
    ));
    let d = &applied(&plan, "Deployment")[0];
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        env_value(c, "REAPER_AUTH_ENABLED").unwrap()["value"],
        "false"
    );
    assert_eq!(env_value(c, "REAPER_CASS_AUTH_ENABLED"), None);
    assert!(env_of(c).iter().all(|e| e.get("valueFrom").is_none()));
}

#[test]
fn ready_workload_is_configuring_until_registered() {
    let first = run(snapshot(
        reaper(spec()),
        vec![datacenter(true, "4.1.5")],
        vec![],
    ));
    let children: Vec<Value> = first
        .apply
        .iter()
        .map(|o| rolled_out(o.value().unwrap()))
        .collect();
    let mut r = reaper(spec());
    r["status"] = status(&first);
    let plan = run(snapshot(r, vec![datacenter(true, "4.1.5")], children));
    let st = status(&plan);
    assert_eq!(st["progress"], "Configuring");
    let cond = &st["conditions"][0];
    assert_eq!(cond["status"], "False");
    assert_eq!(cond["reason"], REASON_REGISTERING);
    assert!(
        cond["message"]
            .as_str()
            .unwrap()
            .contains("registering Cassandra cluster demo")
    );
    // Deploying → Configuring keeps Ready=False: its transition time does not move.
    assert_eq!(
        cond["lastTransitionTime"],
        status(&first)["conditions"][0]["lastTransitionTime"]
    );
    assert!(plan.events.iter().any(|e| e.reason == "ReaperDeployed"));
}

#[test]
fn datacenter_not_ready_is_pending_and_renders_nothing() {
    let plan = run(snapshot(
        reaper(spec()),
        vec![datacenter(false, "4.1.5")],
        vec![],
    ));
    assert!(plan.apply.is_empty());
    let st = status(&plan);
    assert_eq!(st["progress"], "Pending");
    assert_eq!(st["conditions"][0]["reason"], REASON_DC_NOT_READY);
    assert!(plan.requeue_after_ms.is_some());
}

/// Live children of a Reaper that was deployed before the spec went bad.
fn live_children() -> Vec<Value> {
    let first = run(snapshot(
        reaper(spec()),
        vec![datacenter(true, "4.1.5")],
        vec![],
    ));
    first
        .apply
        .iter()
        .map(|o| rolled_out(o.value().unwrap()))
        .collect()
}

fn assert_kept(plan: &Plan, children: &[Value]) {
    for c in children {
        let kept = plan
            .apply
            .iter()
            .map(|o| o.value().unwrap())
            .find(|v| v["kind"] == c["kind"] && v["metadata"]["name"] == c["metadata"]["name"]);
        let kept = kept.unwrap_or_else(|| panic!("{} {} kept", c["kind"], c["metadata"]["name"]));
        assert_eq!(kept["spec"], c["spec"], "unchanged");
    }
    assert!(plan.delete.is_empty());
}

#[test]
fn missing_datacenter_ref_names_the_field_and_deletes_nothing() {
    let children = live_children();
    let mut s = spec();
    s.as_object_mut().unwrap().remove("datacenterRef");
    let plan = run(snapshot(
        reaper(s),
        vec![datacenter(true, "4.1.5")],
        children.clone(),
    ));
    assert_kept(&plan, &children);
    let cond = &status(&plan)["conditions"][0];
    assert_eq!(cond["status"], "False");
    assert_eq!(cond["reason"], REASON_INVALID);
    assert!(
        cond["message"]
            .as_str()
            .unwrap()
            .starts_with("spec.datacenterRef.name: required")
    );
    assert_eq!(plan.events.len(), 1);
}

#[test]
fn unknown_storage_type_names_the_field_and_deletes_nothing() {
    let children = live_children();
    let mut s = spec();
    s["storageType"] = json!("s3");
    let plan = run(snapshot(
        reaper(s.clone()),
        vec![datacenter(true, "4.1.5")],
        children.clone(),
    ));
    assert_kept(&plan, &children);
    let msg = status(&plan)["conditions"][0]["message"].clone();
    assert!(
        msg.as_str()
            .unwrap()
            .starts_with("spec.storageType: \"s3\""),
        "{msg}"
    );
    let v = ReaperPolicy::validate(reaper(s).to_string(), None);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].field, "spec.storageType");
}

#[test]
fn missing_datacenter_keeps_children() {
    let children = live_children();
    let mut s = spec();
    s["datacenterRef"] = json!({"name": "dc9"});
    let plan = run(snapshot(
        reaper(s),
        vec![datacenter(true, "4.1.5")],
        children.clone(),
    ));
    assert_kept(&plan, &children);
    let cond = &status(&plan)["conditions"][0];
    assert_eq!(cond["reason"], REASON_NO_DATACENTER);
    assert!(cond["message"].as_str().unwrap().contains("\"dc9\""));
}

#[test]
fn local_storage_is_a_statefulset_whose_claim_is_kept() {
    let mut s = spec();
    s["storageType"] = json!("local");
    s["storageConfig"] = json!({"accessModes": ["ReadWriteOnce"],
                                "resources": {"requests": {"storage": "1Gi"}}});
    let plan = run(snapshot(reaper(s), vec![datacenter(true, "4.1.5")], vec![]));
    assert!(applied(&plan, "Deployment").is_empty());
    let sts = &applied(&plan, "StatefulSet")[0];
    assert_eq!(sts["spec"]["replicas"], 1);
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"],
        "reaper-data"
    );
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "1Gi"
    );
    assert_eq!(
        sts["spec"]["persistentVolumeClaimRetentionPolicy"],
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
    );
    let c = &sts["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        env_value(c, "REAPER_STORAGE_TYPE").unwrap()["value"],
        "memory"
    );
    assert!(c["volumeMounts"].as_array().unwrap().iter().any(
        |m| m["name"] == "reaper-data" && m["mountPath"] == "/var/lib/cassandra-reaper/storage"
    ));
}

#[test]
fn a_control_plane_reaper_needs_no_datacenter_and_is_ready_once_it_serves() {
    // Upstream's control-plane Reaper: local storage, no datacenterRef; clusters register
    // with it through their reaperRef.
    let mut s = spec();
    s.as_object_mut().unwrap().remove("datacenterRef");
    s["storageType"] = json!("local");
    s["storageConfig"] = json!({"accessModes": ["ReadWriteOnce"],
                                "resources": {"requests": {"storage": "256Mi"}}});
    let plan = run(snapshot(reaper(s.clone()), vec![], vec![]));
    let sts = applied(&plan, "StatefulSet");
    assert_eq!(sts.len(), 1, "deployed without a datacenter");
    let c = &sts[0]["spec"]["template"]["spec"]["containers"][0];
    assert!(env_value(c, "REAPER_CASS_LOCAL_DC").is_none());
    assert!(env_value(c, "REAPER_CASS_CONTACT_POINTS").is_none());
    assert_eq!(status(&plan)["progress"], "Deploying");

    let plan = run(snapshot(
        reaper(s.clone()),
        vec![],
        vec![rolled_out(sts[0].clone())],
    ));
    let st = status(&plan);
    assert_eq!(st["progress"], "Running");
    assert_eq!(st["conditions"][0]["status"], "True", "{st}");

    // With Cassandra storage it needs the datacenter it keeps its state in.
    s["storageType"] = json!("cassandra");
    let plan = run(snapshot(reaper(s), vec![], vec![]));
    assert!(applied(&plan, "Deployment").is_empty());
    let msg = status(&plan)["conditions"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("spec.datacenterRef.name") && msg.contains("storageType cassandra"),
        "{msg}"
    );
}

#[test]
fn local_storage_without_config_is_refused() {
    let mut s = spec();
    s["storageType"] = json!("local");
    let v = ReaperPolicy::validate(reaper(s).to_string(), None);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].field, "spec.storageConfig");
}

#[test]
fn auto_scheduling_follows_the_server_version() {
    let mut s = spec();
    s["autoScheduling"] = json!({"enabled": true, "excludedKeyspaces": ["a", "b"]});
    for (version, adaptive, incremental) in
        [("3.11.17", "true", "false"), ("4.1.5", "false", "true")]
    {
        let plan = run(snapshot(
            reaper(s.clone()),
            vec![datacenter(true, version)],
            vec![],
        ));
        let d = &applied(&plan, "Deployment")[0];
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        let val = |k: &str| env_value(c, k).unwrap()["value"].clone();
        assert_eq!(val("REAPER_AUTO_SCHEDULING_ENABLED"), "true");
        assert_eq!(
            val("REAPER_AUTO_SCHEDULING_ADAPTIVE"),
            adaptive,
            "{version}"
        );
        assert_eq!(
            val("REAPER_AUTO_SCHEDULING_INCREMENTAL"),
            incremental,
            "{version}"
        );
        assert_eq!(val("REAPER_AUTO_SCHEDULING_INITIAL_DELAY_PERIOD"), "PT15S");
        assert_eq!(val("REAPER_AUTO_SCHEDULING_EXCLUDED_KEYSPACES"), "[a, b]");
    }
}

#[test]
fn overrides_image_heap_and_additional_env() {
    let mut s = spec();
    s["containerImage"] = json!({"registry": "mirror.local", "tag": "4.0.0"});
    s["heapSize"] = json!("512Mi");
    s["skipSchemaMigration"] = json!(true);
    s["additionalEnvVars"] = json!([{"name": "REAPER_HEAP_SIZE", "value": "1"},
                                     {"name": "EXTRA", "value": "x"}]);
    let plan = run(snapshot(reaper(s), vec![datacenter(true, "4.1.5")], vec![]));
    let d = &applied(&plan, "Deployment")[0];
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(
        pod["initContainers"],
        Value::Null,
        "skipSchemaMigration drops the init container"
    );
    let c = &pod["containers"][0];
    assert_eq!(
        c["image"],
        "mirror.local/thelastpickle/cassandra-reaper:4.0.0"
    );
    assert_eq!(env_value(c, "REAPER_HEAP_SIZE").unwrap()["value"], "1");
    assert_eq!(env_value(c, "EXTRA").unwrap()["value"], "x");
    let count = env_of(c)
        .iter()
        .filter(|e| e["name"] == "REAPER_HEAP_SIZE")
        .count();
    assert_eq!(count, 1);
}

#[test]
fn deletion_without_the_finalizer_plans_nothing() {
    let mut r = reaper(spec());
    r["metadata"]["deletionTimestamp"] = json!("2023-11-14T00:00:00Z");
    let plan = run(snapshot(r, vec![datacenter(true, "4.1.5")], vec![]));
    assert!(plan.apply.is_empty() && plan.status.is_none());
}

#[test]
fn describe_owns_the_workloads_and_service() {
    let info = ReaperPolicy::describe();
    assert_eq!(info.parent.kind, "Reaper");
    let owns: Vec<_> = info.owns.iter().map(|k| k.kind.as_str()).collect();
    assert_eq!(
        owns,
        [
            "Deployment",
            "StatefulSet",
            "Service",
            "ConfigMap",
            "ServiceMonitor"
        ]
    );
    let reads: Vec<_> = info.reads.iter().map(|r| r.kind.kind.as_str()).collect();
    assert_eq!(
        reads,
        [
            "CassandraDatacenter",
            "Pod",
            "Pod",
            "K8ssandraCluster",
            "APIService"
        ]
    );
}
