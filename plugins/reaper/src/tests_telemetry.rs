//! Telemetry of the Reaper pod: ServiceMonitor, Vector ConfigMap and sidecar, the
//! `TelemetryReady` condition, and an invalid Vector configuration held back.

use k8ssandra_policy_sdk::{Plan, Policy};
use serde_json::{Value, json};

use crate::ReaperPolicy;
use crate::decide::REASON_INVALID;
use crate::telemetry::TELEMETRY_READY;
use crate::tests::{NS, applied, datacenter, reaper, rolled_out, run, snapshot, spec, status};

const SM: &str = "demo-dc1-reaper-reaper-servicemonitor";
const CM: &str = "demo-dc1-reaper-vector";

/// The APIServices the API server registers; with the Prometheus Operator's CRDs, one for
/// `monitoring.coreos.com/v1` too.
fn apiservices(with_monitoring: bool) -> Vec<Value> {
    ["v1.", "v1.apps", "v1.monitoring.coreos.com"]
        .into_iter()
        .filter(|n| with_monitoring || !n.contains("monitoring"))
        .map(|n| {
            json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                   "metadata": {"name": n}})
        })
        .collect()
}

/// The Reaper spec with `telemetry` set: Prometheus on (with a user label, and one trying to
/// take over an operator label), Vector on with `vector` merged in.
fn with_telemetry(vector: Value) -> Value {
    let mut v = json!({"enabled": true, "scrapeInterval": "20s"});
    for (k, x) in vector.as_object().into_iter().flatten() {
        v[k] = x.clone();
    }
    let mut s = spec();
    s["telemetry"] = json!({
        "prometheus": {"enabled": true, "commonLabels": {
            "release": "prom", "app.kubernetes.io/component": "mine"}},
        "vector": v,
    });
    s
}

fn reconcile(spec: Value, mut related: Vec<Value>, children: Vec<Value>) -> Plan {
    related.insert(0, datacenter(true, "4.1.5"));
    run(snapshot(reaper(spec), related, children))
}

/// The first of `items` whose value at `pointer` is `wanted`.
fn pick(items: Option<&Vec<Value>>, pointer: &str, wanted: &str) -> Option<Value> {
    items?
        .iter()
        .find(|o| o.pointer(pointer).and_then(Value::as_str) == Some(wanted))
        .cloned()
}

fn named(plan: &Plan, kind: &str, name: &str) -> Option<Value> {
    pick(Some(&applied(plan, kind)), "/metadata/name", name)
}

fn condition(plan: &Plan, t: &str) -> Option<Value> {
    pick(status(plan)["conditions"].as_array(), "/type", t)
}

fn by_name(list: &Value, name: &str) -> Option<Value> {
    pick(list.as_array(), "/name", name)
}

fn pod_spec(plan: &Plan) -> Value {
    applied(plan, "Deployment")[0]["spec"]["template"]["spec"].clone()
}

#[test]
fn prometheus_gives_upstreams_service_monitor_on_the_admin_port() {
    let plan = reconcile(with_telemetry(json!({})), apiservices(true), vec![]);
    let sm = named(&plan, "ServiceMonitor", SM).expect("the ServiceMonitor");
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(sm["metadata"]["namespace"], NS);
    assert_eq!(
        sm["spec"],
        json!({
            "selector": {"matchLabels": {"k8ssandra.io/reaper": "demo-dc1-reaper"}},
            "namespaceSelector": {"matchNames": [NS]},
            "endpoints": [{"port": "admin", "path": "/prometheusMetrics", "scheme": "http",
                           "interval": "15s", "scrapeTimeout": "15s"}],
        })
    );
    let labels = &sm["metadata"]["labels"];
    assert_eq!(labels["release"], "prom");
    // The operator's labels win over the user's.
    assert_eq!(labels["app.kubernetes.io/component"], "telemetry");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "k8ssandra-operator");
    assert_eq!(labels["app.kubernetes.io/part-of"], "k8ssandra");
    assert_eq!(labels["k8ssandra.io/reaper"], "demo-dc1-reaper");
    assert_eq!(labels["k8ssandra.io/cluster-name"], "demo");

    // What it selects: the Reaper Service, which carries the label and names the port.
    let svc = named(&plan, "Service", "demo-dc1-reaper-service").expect("the Service");
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&svc["metadata"]["labels"][k], v, "Service label {k}");
    }
    assert!(
        by_name(&svc["spec"]["ports"], "admin").is_some_and(|p| p["port"] == 8081),
        "{svc}"
    );
    let c = condition(&plan, TELEMETRY_READY).expect("TelemetryReady");
    assert_eq!(c["status"], "True");
}

#[test]
fn vector_gives_upstreams_config_map_and_sidecar() {
    let plan = reconcile(with_telemetry(json!({})), apiservices(true), vec![]);
    let cm = named(&plan, "ConfigMap", CM).expect("the Vector ConfigMap");
    assert_eq!(cm["metadata"]["namespace"], NS);
    assert_eq!(
        cm["metadata"]["labels"]["k8ssandra.io/reaper"],
        "demo-dc1-reaper"
    );
    let text = cm["data"]["vector.toml"].as_str().unwrap();
    let parsed: toml::Table = text.parse().expect("TOML");
    let source = &parsed["sources"]["reaper_metrics"];
    assert_eq!(source["type"].as_str(), Some("prometheus_scrape"));
    assert_eq!(
        source["endpoints"].as_array().unwrap()[0].as_str(),
        Some("http://localhost:8081/prometheusMetrics")
    );
    assert_eq!(source["scrape_interval_secs"].as_integer(), Some(20));
    // Without a user sink, the metrics go to the console, as upstream.
    assert_eq!(
        parsed["sinks"]["console_metrics"]["type"].as_str(),
        Some("console")
    );
    assert_eq!(parsed["api"]["enabled"].as_bool(), Some(false));

    let pod = pod_spec(&plan);
    let sidecar = by_name(&pod["containers"], "reaper-vector-agent").expect("the sidecar");
    assert_eq!(
        sidecar["image"],
        "docker.io/k8ssandra/system-logger:v1.32.0"
    );
    assert_eq!(
        sidecar["volumeMounts"],
        json!([{"name": "reaper-vector-config", "mountPath": "/etc/vector"}])
    );
    assert_eq!(sidecar["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        by_name(&pod["volumes"], "reaper-vector-config").unwrap()["configMap"]["name"],
        CM
    );
    // Reaper itself stays the first container.
    assert_eq!(pod["containers"][0]["name"], "reaper");
}

#[test]
fn vector_names_follow_the_cassandra_cluster_and_datacenter_names() {
    let mut dc = datacenter(true, "4.1.5");
    dc["spec"]["clusterName"] = json!("Big_Cluster");
    dc["spec"]["datacenterName"] = json!("East");
    let mut s = with_telemetry(json!({"image": "example/vector:1"}));
    s["telemetry"]["prometheus"]["enabled"] = json!(false);
    let plan = run(snapshot(reaper(s), vec![dc], vec![]));
    let cm = named(&plan, "ConfigMap", "big-cluster-east-reaper-vector").expect("the ConfigMap");
    assert!(cm["data"]["vector.toml"].is_string());
    let pod = pod_spec(&plan);
    assert_eq!(
        by_name(&pod["volumes"], "reaper-vector-config").unwrap()["configMap"]["name"],
        "big-cluster-east-reaper-vector"
    );
    assert_eq!(
        by_name(&pod["containers"], "reaper-vector-agent").unwrap()["image"],
        "example/vector:1"
    );
    // Prometheus off: no ServiceMonitor and no TelemetryReady condition.
    assert!(applied(&plan, "ServiceMonitor").is_empty());
    assert!(condition(&plan, TELEMETRY_READY).is_none());
}

#[test]
fn no_telemetry_adds_nothing() {
    let plan = reconcile(spec(), apiservices(true), vec![]);
    assert!(applied(&plan, "ServiceMonitor").is_empty());
    assert!(applied(&plan, "ConfigMap").is_empty());
    let pod = pod_spec(&plan);
    assert_eq!(pod["containers"].as_array().unwrap().len(), 1);
    assert!(by_name(&pod["volumes"], "reaper-vector-config").is_none());
    assert!(condition(&plan, TELEMETRY_READY).is_none());
}

#[test]
fn service_monitor_kind_missing_is_a_condition_and_the_rest_goes_on() {
    let plan = reconcile(with_telemetry(json!({})), apiservices(false), vec![]);
    assert!(applied(&plan, "ServiceMonitor").is_empty());
    assert_eq!(applied(&plan, "Deployment").len(), 1);
    assert!(named(&plan, "Service", "demo-dc1-reaper-service").is_some());
    assert!(named(&plan, "ConfigMap", CM).is_some());
    let c = condition(&plan, TELEMETRY_READY).expect("TelemetryReady");
    assert_eq!(c["status"], "False");
    assert_eq!(c["reason"], "ServiceMonitorKindMissing");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("spec.telemetry.prometheus.enabled"),
        "{c}"
    );
    // Ready is about the workload, and is still there.
    assert!(condition(&plan, "Ready").is_some());

    // An operator that cannot list APIServices sees none: it plans the ServiceMonitor and
    // lets the apply tell.
    let plan = reconcile(with_telemetry(json!({})), vec![], vec![]);
    assert!(named(&plan, "ServiceMonitor", SM).is_some());
}

#[test]
fn the_condition_keeps_its_transition_time_while_unchanged() {
    let first = reconcile(with_telemetry(json!({})), apiservices(false), vec![]);
    let c1 = condition(&first, TELEMETRY_READY).unwrap();
    let mut r = reaper(with_telemetry(json!({})));
    r["status"] = status(&first);
    let mut s = snapshot(r, apiservices(false), vec![]);
    s.related.insert(
        0,
        k8ssandra_policy_sdk::Object {
            cluster: String::new(),
            json: datacenter(true, "4.1.5").to_string(),
        },
    );
    s.now_ms += 60_000;
    let again = run(s);
    let c2 = condition(&again, TELEMETRY_READY).unwrap();
    assert_eq!(c1["lastTransitionTime"], c2["lastTransitionTime"]);
}

/// A good reconcile's objects as they live in the cluster (workload rolled out).
fn live(plan: &Plan) -> Vec<Value> {
    plan.apply
        .iter()
        .map(|o| o.value().unwrap())
        .map(|v| {
            if v["kind"] == "Deployment" {
                rolled_out(v)
            } else {
                v
            }
        })
        .collect()
}

#[test]
fn an_invalid_vector_config_names_the_component_and_keeps_the_last_good_one() {
    let good = reconcile(with_telemetry(json!({})), apiservices(true), vec![]);
    let live = live(&good);
    let bad = with_telemetry(json!({"components": {
        "transforms": [{"name": "tag", "type": "remap", "inputs": ["reaper_metrics"],
                        "config": "source = '''\n.tags.x = upcase(\n'''"}],
        "sinks": [{"name": "out", "type": "prometheus_remote_write", "inputs": ["tag"],
                   "config": "endpoint = \"http://prom:9090/api/v1/write\""}],
    }}));
    let plan = reconcile(bad.clone(), apiservices(true), live.clone());
    let c = condition(&plan, "Ready").unwrap();
    assert_eq!(c["status"], "False");
    assert_eq!(c["reason"], REASON_INVALID);
    let message = c["message"].as_str().unwrap();
    assert!(
        message.contains("spec.telemetry.vector.components.transforms[0]")
            && message.contains("transforms.tag"),
        "{message}"
    );
    // Every live object is re-applied as it is: the last good configuration, the workload
    // (no rollout), the Service and the ServiceMonitor; nothing is deleted.
    for was in &live {
        let kind = was["kind"].as_str().unwrap();
        let name = was["metadata"]["name"].as_str().unwrap();
        let kept = named(&plan, kind, name).unwrap_or_else(|| panic!("{kind} {name} kept"));
        assert_eq!(kept["spec"], was["spec"], "{kind} {name}");
        assert_eq!(kept["data"], was["data"], "{kind} {name}");
    }
    assert!(named(&plan, "ConfigMap", CM).unwrap()["data"]["vector.toml"].is_string());
    assert!(plan.delete.is_empty());

    // Admission finds the same.
    let v = ReaperPolicy::validate(reaper(bad).to_string(), None);
    assert!(
        v.iter().any(
            |v| v.field == "spec.telemetry.vector.components.transforms[0]"
                && v.message.contains("transforms.tag")
        ),
        "{v:?}"
    );
}

#[test]
fn a_valid_pipeline_with_a_user_sink_replaces_the_console() {
    let s = with_telemetry(json!({"components": {
        "transforms": [{"name": "tag", "type": "remap", "inputs": ["reaper_metrics"],
                        "config": "source = '''\n.tags.component = \"reaper\"\n'''"}],
        "sinks": [{"name": "out", "type": "prometheus_remote_write", "inputs": ["tag"],
                   "config": "endpoint = \"http://prom:9090/api/v1/write\""}],
    }}));
    assert!(ReaperPolicy::validate(reaper(s.clone()).to_string(), None).is_empty());
    let plan = reconcile(s, apiservices(true), vec![]);
    let cm = named(&plan, "ConfigMap", CM).unwrap();
    let parsed: toml::Table = cm["data"]["vector.toml"].as_str().unwrap().parse().unwrap();
    let sinks = parsed["sinks"].as_table().unwrap();
    assert_eq!(sinks.keys().collect::<Vec<_>>(), ["out"]);
    assert_eq!(
        parsed["transforms"]["tag"]["inputs"].as_array().unwrap()[0].as_str(),
        Some("reaper_metrics")
    );
}

#[test]
fn bad_vector_input_is_refused_naming_the_field() {
    let cases = [
        (
            json!({"scrapeInterval": "soon"}),
            "spec.telemetry.vector.scrapeInterval",
        ),
        (
            json!({"components": {"sinks": [{"name": "out", "type": "no_such_sink",
                                             "inputs": ["reaper_metrics"]}]}}),
            "spec.telemetry.vector.components.sinks[0]",
        ),
        (
            json!({"components": {"sinks": [{"name": "out", "type": "console",
                                             "inputs": ["nothing"],
                                             "config": "encoding.codec = \"json\""}]}}),
            "spec.telemetry.vector.components.sinks[0]",
        ),
    ];
    for (vector, field) in cases {
        let s = with_telemetry(vector.clone());
        let v = ReaperPolicy::validate(reaper(s.clone()).to_string(), None);
        assert!(v.iter().any(|v| v.field == field), "{vector}: {v:?}");
        let plan = reconcile(s, apiservices(true), vec![]);
        let c = condition(&plan, "Ready").unwrap();
        assert_eq!(c["reason"], REASON_INVALID, "{vector}");
        assert!(c["message"].as_str().unwrap().contains(field), "{c}");
        assert!(
            applied(&plan, "Deployment").is_empty(),
            "nothing new applied"
        );
    }
    // Vector off: its settings are not checked, as upstream ignores them.
    let mut s = with_telemetry(json!({"scrapeInterval": "soon"}));
    s["telemetry"]["vector"]["enabled"] = json!(false);
    assert!(ReaperPolicy::validate(reaper(s).to_string(), None).is_empty());
}
