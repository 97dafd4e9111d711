//! Telemetry, `cassandraConfigMapRef` and `cassandraEncryption` of the Stargate pods.

use k8ssandra_policy_sdk::{Plan, Policy};
use serde_json::{Value, json};

use crate::StargatePolicy;
use crate::decide::REASON_INVALID;
use crate::tests::{
    NS, applied, datacenter, kc_labels, ready_condition, rolled_out, snapshot, stargate, status,
};

fn apiservices(with_monitoring: bool) -> Vec<Value> {
    let mut names = vec!["v1.", "v1.apps"];
    if with_monitoring {
        names.push("v1.monitoring.coreos.com");
    }
    names
        .into_iter()
        .map(|n| {
            json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                   "metadata": {"name": n}})
        })
        .collect()
}

fn with(extra: Value) -> Value {
    let mut spec = json!({"datacenterRef": {"name": "dc1"}, "size": 3});
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    spec
}

fn telemetry(vector_extra: Value) -> Value {
    let mut vector = json!({"enabled": true, "scrapeInterval": "15s"});
    for (k, v) in vector_extra.as_object().unwrap() {
        vector[k] = v.clone();
    }
    json!({"telemetry": {
        "prometheus": {"enabled": true, "commonLabels": {"release": "prom"}},
        "vector": vector,
    }})
}

fn run(spec: Value, mut related: Vec<Value>, children: Vec<Value>) -> Plan {
    related.insert(0, datacenter(true, "cassandra", "4.1.5"));
    StargatePolicy::reconcile(snapshot(stargate(spec, kc_labels()), related, children)).unwrap()
}

fn named(plan: &Plan, kind: &str, name: &str) -> Option<Value> {
    applied(plan, kind)
        .into_iter()
        .find(|o| o["metadata"]["name"] == name)
}

fn condition(plan: &Plan, t: &str) -> Option<Value> {
    status(plan)["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == t)
        .cloned()
}

fn config(plan: &Plan, key: &str) -> Value {
    let cm = named(plan, "ConfigMap", "demo-dc1-cassandra-config").expect("the config");
    serde_yaml::from_str(cm["data"][key].as_str().unwrap()).unwrap()
}

#[test]
fn prometheus_and_vector_give_a_service_monitor_a_vector_config_and_a_sidecar() {
    let plan = run(with(telemetry(json!({}))), apiservices(true), vec![]);

    let sm = named(
        &plan,
        "ServiceMonitor",
        "demo-dc1-stargate-stargate-servicemonitor",
    )
    .expect("a ServiceMonitor");
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(
        sm["spec"]["selector"]["matchLabels"],
        json!({"k8ssandra.io/stargate": "demo-dc1-stargate"})
    );
    assert_eq!(sm["spec"]["namespaceSelector"]["matchNames"], json!([NS]));
    let endpoint = &sm["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], "health");
    assert_eq!(endpoint["path"], "/metrics");
    let relabels = endpoint["metricRelabelings"].as_array().unwrap();
    assert_eq!(relabels.len(), 17);
    assert_eq!(relabels[0]["targetLabel"], "dc");
    assert_eq!(relabels[0]["replacement"], "dc1");
    assert_eq!(sm["metadata"]["labels"]["release"], "prom");
    assert_eq!(
        sm["metadata"]["labels"]["app.kubernetes.io/component"],
        "telemetry"
    );
    assert_eq!(
        sm["metadata"]["labels"]["k8ssandra.io/cluster-name"],
        "demo"
    );
    // The ServiceMonitor selects what the Service carries.
    let service_labels = rolled_out_service_labels();
    assert_eq!(service_labels["k8ssandra.io/stargate"], "demo-dc1-stargate");

    let cm = named(&plan, "ConfigMap", "demo-dc1-stargate-vector").expect("the Vector config");
    let toml_text = cm["data"]["vector.toml"].as_str().unwrap();
    assert!(
        toml_text.contains("[sources.stargate_metrics]"),
        "{toml_text}"
    );
    assert!(toml_text.contains("\"http://localhost:8084/metrics\""));
    assert!(toml_text.contains("scrape_interval_secs = 15"));
    assert!(toml_text.contains("[sinks.console_metrics]"));

    for d in applied(&plan, "Deployment") {
        let spec = &d["spec"]["template"]["spec"];
        let sidecar = spec["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "stargate-vector-agent")
            .expect("the Vector sidecar");
        assert_eq!(
            sidecar["image"],
            "docker.io/k8ssandra/system-logger:v1.32.0"
        );
        assert_eq!(
            sidecar["volumeMounts"],
            json!([{"name": "stargate-vector-config", "mountPath": "/etc/vector"}])
        );
        assert_eq!(sidecar["resources"]["limits"]["memory"], "2Gi");
        assert!(
            spec["volumes"]
                .as_array()
                .unwrap()
                .contains(&json!({"name": "stargate-vector-config",
                                  "configMap": {"name": "demo-dc1-stargate-vector"}}))
        );
    }
    assert_eq!(
        condition(&plan, crate::telemetry::TELEMETRY_READY).unwrap()["status"],
        "True"
    );
    assert_eq!(ready_condition(&plan)["type"], "Ready");

    // Off again: no telemetry object is planned (the host prunes them), no sidecar.
    let plan = run(with(json!({})), apiservices(true), vec![]);
    assert!(applied(&plan, "ServiceMonitor").is_empty());
    assert!(named(&plan, "ConfigMap", "demo-dc1-stargate-vector").is_none());
    assert!(
        !plan
            .apply
            .iter()
            .any(|o| o.json.contains("stargate-vector-agent"))
    );
    assert!(condition(&plan, crate::telemetry::TELEMETRY_READY).is_none());
}

/// Labels of the Stargate Service once every replica is ready.
fn rolled_out_service_labels() -> Value {
    let first = run(with(telemetry(json!({}))), apiservices(true), vec![]);
    let plan = run(
        with(telemetry(json!({}))),
        apiservices(true),
        rolled_out(&first),
    );
    named(&plan, "Service", "demo-dc1-stargate-service").expect("the Service")["metadata"]["labels"]
        .clone()
}

#[test]
fn service_monitor_kind_missing_is_a_condition_and_the_rest_goes_on() {
    let plan = run(with(telemetry(json!({}))), apiservices(false), vec![]);
    assert!(applied(&plan, "ServiceMonitor").is_empty());
    assert_eq!(applied(&plan, "Deployment").len(), 3);
    assert!(named(&plan, "ConfigMap", "demo-dc1-stargate-vector").is_some());
    let c = condition(&plan, crate::telemetry::TELEMETRY_READY).unwrap();
    assert_eq!(c["status"], "False");
    assert_eq!(c["reason"], "ServiceMonitorKindMissing");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("spec.telemetry.prometheus.enabled")
    );
    // The Ready condition is about the Deployments, not telemetry.
    assert_eq!(ready_condition(&plan)["type"], "Ready");
}

#[test]
fn an_invalid_vector_config_names_the_component_and_keeps_the_last_good_one() {
    let good = run(with(telemetry(json!({}))), apiservices(true), vec![]);
    let mut live = rolled_out(&good);
    live.extend(applied(&good, "ConfigMap"));
    live.extend(applied(&good, "ServiceMonitor"));
    let bad = telemetry(json!({"components": {
        "transforms": [{"name": "broken", "type": "remap", "inputs": ["stargate_metrics"],
                        "config": "source = '''\n.x = upcase(\n'''"}],
        "sinks": [{"name": "out", "type": "console", "inputs": ["broken"],
                   "config": "encoding.codec = \"json\""}],
    }}));
    let plan = run(with(bad.clone()), apiservices(true), live.clone());
    let c = ready_condition(&plan);
    assert_eq!(c["status"], "False");
    assert_eq!(c["reason"], REASON_INVALID);
    let message = c["message"].as_str().unwrap();
    assert!(
        message.contains("spec.telemetry.vector.components.transforms[0]")
            && message.contains("transforms.broken"),
        "{message}"
    );
    // The last good Vector configuration and the Deployments stay as they are.
    let kept = named(&plan, "ConfigMap", "demo-dc1-stargate-vector").unwrap();
    let was = live
        .iter()
        .find(|o| o["metadata"]["name"] == "demo-dc1-stargate-vector")
        .unwrap();
    assert_eq!(kept["data"], was["data"]);
    for d in applied(&plan, "Deployment") {
        let was = live
            .iter()
            .find(|o| o["metadata"]["name"] == d["metadata"]["name"])
            .unwrap();
        assert_eq!(d["spec"], was["spec"], "no rollout");
    }
    assert!(plan.delete.is_empty());
    // Admission says the same.
    let v = StargatePolicy::validate(stargate(with(bad), json!({})).to_string(), None);
    assert!(
        v.iter()
            .any(|v| v.field == "spec.telemetry.vector.components.transforms[0]"),
        "{v:?}"
    );
}

#[test]
fn the_users_cassandra_config_is_merged_under_the_datacenters_settings() {
    let user = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "my-stargate-config", "namespace": NS},
        "data": {
            "cassandra.yaml": "read_request_timeout_in_ms: 10000\nnative_transport_idle_timeout_in_ms: 1\n",
            "stargate-cql.yaml": "native_transport_max_frame_size_in_mb: 64\nnative_transport_idle_timeout_in_ms: 1\n",
        },
    });
    let spec = with(json!({"cassandraConfigMapRef": {"name": "my-stargate-config"}}));
    let plan = run(spec.clone(), vec![user.clone()], vec![]);
    let cassandra = config(&plan, "cassandra.yaml");
    assert_eq!(cassandra["read_request_timeout_in_ms"], 10000);
    let cql = config(&plan, "stargate-cql.yaml");
    assert_eq!(cql["native_transport_max_frame_size_in_mb"], 64);
    // The datacenter's own setting wins, as it does upstream (appended after the user's).
    assert_eq!(cql["native_transport_idle_timeout_in_ms"], 6000);

    // The documented key `cassandra_yaml` works too.
    let mut alt = user.clone();
    alt["data"] = json!({"cassandra_yaml": "concurrent_reads: 8"});
    let plan = run(spec.clone(), vec![alt], vec![]);
    assert_eq!(config(&plan, "cassandra.yaml")["concurrent_reads"], 8);

    // Missing or unparsable: a condition naming the field; nothing deleted.
    let live = rolled_out(&run(with(json!({})), vec![], vec![]));
    let mut broken = user;
    broken["data"]["cassandra.yaml"] = json!("[not: a mapping");
    for (related, needle) in [
        (vec![], "no ConfigMap \"my-stargate-config\""),
        (vec![broken], "key \"cassandra.yaml\""),
    ] {
        let plan = run(spec.clone(), related, live.clone());
        let c = ready_condition(&plan);
        assert_eq!(c["status"], "False");
        let message = c["message"].as_str().unwrap();
        assert!(
            message.contains("spec.cassandraConfigMapRef.name") && message.contains(needle),
            "{message}"
        );
        assert_eq!(applied(&plan, "Deployment").len(), 3);
        assert!(plan.delete.is_empty());
    }
}

#[test]
fn encryption_stores_are_mounted_and_named_in_the_config() {
    let stores = |prefix: &str| {
        json!({"keystoreSecretRef": {"name": format!("{prefix}-ks")},
               "truststoreSecretRef": {"name": format!("{prefix}-ts"), "key": "ts.jks"}})
    };
    let spec = with(json!({"cassandraEncryption": {
        "serverEncryptionStores": stores("server"),
        "clientEncryptionStores": stores("client"),
    }}));
    let plan = run(spec, vec![], vec![]);
    let d = &applied(&plan, "Deployment")[0];
    let pod = &d["spec"]["template"]["spec"];
    let volumes = pod["volumes"].as_array().unwrap();
    assert!(
        volumes.contains(&json!({"name": "server-keystore", "secret": {
        "secretName": "server-ks", "items": [{"key": "keystore", "path": "keystore"}]}}))
    );
    assert!(
        volumes.contains(&json!({"name": "client-truststore", "secret": {
        "secretName": "client-ts", "items": [{"key": "ts.jks", "path": "truststore"}]}}))
    );
    let mounts = pod["containers"][0]["volumeMounts"].as_array().unwrap();
    for name in [
        "server-keystore",
        "server-truststore",
        "client-keystore",
        "client-truststore",
    ] {
        assert!(
            mounts.contains(&json!({"name": name, "mountPath": format!("/mnt/{name}")})),
            "{name}"
        );
    }
    let cassandra = config(&plan, "cassandra.yaml");
    assert_eq!(
        cassandra["server_encryption_options"]["keystore"],
        "/mnt/server-keystore/keystore"
    );
    assert_eq!(
        cassandra["server_encryption_options"]["truststore"],
        "/mnt/server-truststore/truststore"
    );
    let cql = config(&plan, "stargate-cql.yaml");
    assert_eq!(
        cql["client_encryption_options"]["keystore"],
        "/mnt/client-keystore/keystore"
    );

    // A store without its Secret is refused, naming the field.
    let v = StargatePolicy::validate(
        stargate(
            with(json!({"cassandraEncryption": {"serverEncryptionStores": {
                "keystoreSecretRef": {"name": "ks"}, "truststoreSecretRef": {}}}})),
            json!({}),
        )
        .to_string(),
        None,
    );
    assert_eq!(
        v.iter().map(|v| v.field.as_str()).collect::<Vec<_>>(),
        ["spec.cassandraEncryption.serverEncryptionStores.truststoreSecretRef.name"]
    );
}
