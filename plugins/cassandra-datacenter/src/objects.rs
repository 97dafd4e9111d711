//! The children of a datacenter, as JSON ready for server-side apply: one StatefulSet per
//! rack, the four Services, the PodDisruptionBudget.
//!
//! Everything is built as `serde_json::Value` rather than k8s-openapi structs because most
//! of it is a merge with the user's `podTemplateSpec` (user fields win, built-in containers
//! are completed by name), which is simplest on JSON. Output is deterministic: the same
//! spec always gives byte-identical objects, so an unchanged plan causes no writes.

use std::collections::BTreeMap;

use k8ssandra_api::cassandra::ServerType;
use k8ssandra_api::labels::{
    CLUSTER_LABEL, DATACENTER_LABEL, PROM_METRICS_LABEL, RACK_LABEL, RESTARTED_AT_ANNOTATION,
    SEED_NODE_LABEL,
};
use k8ssandra_api::names;
use serde_json::{Map, Value, json};

use crate::TEMPLATE_HASH_ANNOTATION;
use crate::config::config_file_data;
use crate::model::{Dc, RackPlan};
use crate::util::{canonical_json, canonicalize_resources, fnv_hex};

pub const CASSANDRA_CONTAINER: &str = "cassandra";
pub const LOGGER_CONTAINER: &str = "server-system-logger";
pub const CONFIG_CONTAINER: &str = "server-config-init";
pub const DATA_VOLUME: &str = "server-data";
pub const DEFAULT_CONFIG_BUILDER_IMAGE: &str = "datastax/cass-config-builder:1.0-ubi";
pub const DEFAULT_SYSTEM_LOGGER_IMAGE: &str = "k8ssandra/system-logger:v1.27.0";
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// The server image: `spec.serverImage`, else the management-API image of the server type
/// and version.
pub fn server_image(dc: &Dc) -> String {
    if let Some(img) = dc
        .obj
        .spec
        .server_image
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        return img.to_string();
    }
    let v = &dc.obj.spec.server_version;
    match dc.server_type() {
        ServerType::Cassandra => format!("k8ssandra/cass-management-api:{v}"),
        ServerType::Dse => format!("datastax/dse-mgmtapi-6_8:{v}"),
        ServerType::Hcd => format!("datastax/hcd:{v}"),
    }
}

/// Labels every object of the datacenter carries: cluster, datacenter, the usual
/// `app.kubernetes.io` ones, and the user's `additionalLabels`.
fn common_labels(dc: &Dc) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(extra) = &dc.obj.spec.additional_labels {
        for (k, v) in extra {
            m.insert(k.clone(), json!(v));
        }
    }
    m.insert("app.kubernetes.io/name".into(), json!("cassandra"));
    m.insert(
        "app.kubernetes.io/instance".into(),
        json!(format!("cassandra-{}", dc.cluster_label())),
    );
    m.insert("app.kubernetes.io/component".into(), json!("database"));
    for (k, v) in dc.dc_labels() {
        m.insert(k, json!(v));
    }
    m
}

fn common_annotations(dc: &Dc) -> Option<Map<String, Value>> {
    let a = dc.obj.spec.additional_annotations.as_ref()?;
    Some(a.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

fn metadata(dc: &Dc, name: &str, labels: Map<String, Value>) -> Value {
    let mut meta = json!({
        "name": name,
        "namespace": dc.namespace,
        "labels": labels,
    });
    if let Some(a) = common_annotations(dc) {
        meta["annotations"] = Value::Object(a);
    }
    meta
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn field_env(name: &str, path: &str) -> Value {
    json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}})
}

fn env(name: &str, value: &str) -> Value {
    json!({"name": name, "value": value})
}

/// Entries of `overrides` first, then the `defaults` whose `name` they don't override.
fn combine_by_name(defaults: Vec<Value>, overrides: Option<&Value>) -> Value {
    let mut out: Vec<Value> = overrides
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for d in defaults {
        if !out.iter().any(|o| o.get("name") == d.get("name")) {
            out.push(d);
        }
    }
    Value::Array(out)
}

fn is_empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.values().all(|v| is_empty(Some(v))),
        _ => false,
    }
}

/// Finds the container `name` in `list` (removing it) or starts an empty one.
fn take_container(list: &mut Vec<Value>, name: &str) -> (Value, Option<usize>) {
    match list
        .iter()
        .position(|c| c.get("name") == Some(&json!(name)))
    {
        Some(i) => (list.remove(i), Some(i)),
        None => (json!({ "name": name }), None),
    }
}

fn put_back(list: &mut Vec<Value>, c: Value, at: Option<usize>) {
    match at {
        Some(i) => list.insert(i, c),
        None => list.push(c),
    }
}

fn set_default(c: &mut Value, key: &str, v: Value) {
    if is_empty(c.get(key)) {
        c[key] = v;
    }
}

fn probe(path: &str, initial: i32, period: i32, timeout: i32) -> Value {
    json!({
        "httpGet": {"path": path, "port": 8080},
        "initialDelaySeconds": initial,
        "periodSeconds": period,
        "timeoutSeconds": timeout,
    })
}

fn container_ports() -> Vec<Value> {
    [
        ("native", 9042),
        ("tls-native", 9142),
        ("internode", 7000),
        ("tls-internode", 7001),
        ("jmx", 7199),
        ("mgmt-api-http", 8080),
        ("prometheus", 9103),
        ("metrics", 9000),
    ]
    .into_iter()
    .map(|(n, p)| json!({"name": n, "containerPort": p}))
    .collect()
}

fn additional_mounts(dc: &Dc) -> Vec<Value> {
    dc.obj
        .spec
        .storage_config
        .additional_volumes
        .iter()
        .flatten()
        .map(|v| json!({"name": v.name, "mountPath": v.mount_path}))
        .collect()
}

fn cassandra_container(dc: &Dc, c: &mut Value) {
    let spec = &dc.obj.spec;
    set_default(c, "image", json!(server_image(dc)));
    if let Some(r) = &spec.resources {
        set_default(c, "resources", to_value(r));
    }
    set_default(
        c,
        "livenessProbe",
        probe("/api/v0/probes/liveness", 15, 15, 10),
    );
    set_default(
        c,
        "readinessProbe",
        probe("/api/v0/probes/readiness", 20, 10, 10),
    );
    if is_empty(c.pointer("/lifecycle/preStop")) {
        // Drain before the container stops so the node flushes and peers see it leave
        // cleanly; exec because the management API listens on localhost in the pod.
        let mut lc = c.get("lifecycle").cloned().unwrap_or_else(|| json!({}));
        lc["preStop"] = json!({"exec": {"command": [
            "wget", "--output-document", "/dev/null", "--no-check-certificate",
            "--post-data=''", "http://localhost:8080/api/v0/ops/node/drain"
        ]}});
        c["lifecycle"] = lc;
    }
    let mut envs = vec![
        field_env("POD_NAME", "metadata.name"),
        field_env("NODE_NAME", "spec.nodeName"),
        env("DS_LICENSE", "accept"),
        env("USE_MGMT_API", "true"),
        env("MGMT_API_NO_KEEP_ALIVE", "true"),
        // Cassandra stays down until the operator calls lifecycle/start: this is what lets
        // the policy order the starts.
        env("MGMT_API_EXPLICIT_START", "true"),
    ];
    match dc.server_type() {
        ServerType::Dse => {
            envs.push(env("DSE_AUTO_CONF_OFF", "all"));
            envs.push(env("DSE_MGMT_EXPLICIT_START", "true"));
            if let Some(w) = &spec.dse_workloads {
                let mut flags = Vec::new();
                if w.analytics_enabled == Some(true) {
                    flags.push("-Dspark-trackers=true");
                }
                if w.graph_enabled == Some(true) {
                    flags.push("-Dgraph-enabled=true");
                }
                if w.search_enabled == Some(true) {
                    flags.push("-Dsearch-service=true");
                }
                envs.push(env("JVM_EXTRA_OPTS", &flags.join(" ")));
            }
        }
        ServerType::Hcd => envs.push(env("HCD_AUTO_CONF_OFF", "all")),
        ServerType::Cassandra => {}
    }
    c["env"] = combine_by_name(envs, c.get("env"));
    c["ports"] = combine_by_name(container_ports(), c.get("ports"));
    let mut mounts = vec![
        json!({"name": "server-logs", "mountPath": "/var/log/cassandra"}),
        json!({"name": DATA_VOLUME, "mountPath": "/var/lib/cassandra"}),
        json!({"name": "server-config", "mountPath": "/config"}),
    ];
    mounts.extend(additional_mounts(dc));
    c["volumeMounts"] = combine_by_name(mounts, c.get("volumeMounts"));
}

fn logger_container(dc: &Dc, c: &mut Value) {
    let spec = &dc.obj.spec;
    let image = spec
        .system_logger_image
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_SYSTEM_LOGGER_IMAGE.to_string());
    set_default(c, "image", json!(image));
    let resources = spec.system_logger_resources.as_ref().map_or_else(
        || json!({"limits": {"memory": "128M"}, "requests": {"cpu": "100m", "memory": "64M"}}),
        to_value,
    );
    set_default(c, "resources", resources);
    let envs = vec![
        field_env("POD_NAME", "metadata.name"),
        field_env("NODE_NAME", "spec.nodeName"),
        env("CLUSTER_NAME", &dc.cluster),
        env("DATACENTER_NAME", dc.dc_name()),
        field_env(
            "RACK_NAME",
            "metadata.labels['cassandra.datastax.com/rack']",
        ),
        field_env("NAMESPACE", "metadata.namespace"),
    ];
    c["env"] = combine_by_name(envs, c.get("env"));
    let mut mounts = vec![
        json!({"name": "server-logs", "mountPath": "/var/log/cassandra"}),
        json!({"name": "vector-lib", "mountPath": "/var/lib/vector"}),
    ];
    mounts.extend(additional_mounts(dc));
    c["volumeMounts"] = combine_by_name(mounts, c.get("volumeMounts"));
}

fn config_container(dc: &Dc, rack: &RackPlan, c: &mut Value) {
    let spec = &dc.obj.spec;
    let image = spec
        .config_builder_image
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_CONFIG_BUILDER_IMAGE.to_string());
    set_default(c, "image", json!(image));
    let resources = spec.config_builder_resources.as_ref().map_or_else(
        || json!({"limits": {"cpu": "1", "memory": "256M"}, "requests": {"cpu": "1", "memory": "256M"}}),
        to_value,
    );
    set_default(c, "resources", resources);
    let node_port = spec
        .networking
        .as_ref()
        .is_some_and(|n| n.node_port.is_some());
    let mut envs = vec![
        field_env("POD_IP", "status.podIP"),
        field_env("HOST_IP", "status.hostIP"),
        env("USE_HOST_IP_FOR_BROADCAST", &node_port.to_string()),
        env("RACK_NAME", &rack.rack.name),
        env("PRODUCT_VERSION", &spec.server_version),
        env("PRODUCT_NAME", dc.server_type().as_str()),
    ];
    match spec.config_secret.as_deref().filter(|s| !s.is_empty()) {
        // The Secret's JSON is used as is: the user owns the whole document then.
        Some(secret) => envs.push(json!({"name": "CONFIG_FILE_DATA", "valueFrom": {
            "secretKeyRef": {"name": secret, "key": "config"}}})),
        None => envs.push(env("CONFIG_FILE_DATA", &config_file_data(dc).to_string())),
    }
    c["env"] = combine_by_name(envs, c.get("env"));
    c["volumeMounts"] = combine_by_name(
        vec![json!({"name": "server-config", "mountPath": "/config"})],
        c.get("volumeMounts"),
    );
}

/// Required node-selector expressions for a rack: the datacenter's and the rack's
/// `nodeAffinityLabels` plus the rack's (deprecated) zone, sorted by key so every
/// StatefulSet lists them identically.
fn node_affinity_labels(dc: &Dc, rack: &RackPlan) -> BTreeMap<String, String> {
    let mut l: BTreeMap<String, String> =
        dc.obj.spec.node_affinity_labels.clone().unwrap_or_default();
    if let Some(r) = &rack.rack.node_affinity_labels {
        l.extend(r.clone());
    }
    if let Some(z) = rack
        .rack
        .deprecated_zone
        .as_deref()
        .filter(|z| !z.is_empty())
    {
        l.insert(ZONE_LABEL.into(), z.into());
    }
    l
}

fn affinity(dc: &Dc, rack: &RackPlan, template: Option<&Value>) -> Option<Value> {
    let mut aff = template.cloned().unwrap_or_else(|| json!({}));
    let rack_aff = rack.rack.affinity.as_ref().map(to_value);
    // Node affinity: our expressions as the first term, then the template's and the rack's
    // terms (terms are ORed by Kubernetes, as upstream does).
    let labels = node_affinity_labels(dc, rack);
    let mut terms: Vec<Value> = Vec::new();
    if !labels.is_empty() {
        let exprs: Vec<Value> = labels
            .iter()
            .map(|(k, v)| json!({"key": k, "operator": "In", "values": [v]}))
            .collect();
        terms.push(json!({ "matchExpressions": exprs }));
    }
    let req = "/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms";
    let pref = "/nodeAffinity/preferredDuringSchedulingIgnoredDuringExecution";
    let mut preferred: Vec<Value> = Vec::new();
    for src in [Some(&aff), rack_aff.as_ref()].into_iter().flatten() {
        if let Some(Value::Array(t)) = src.pointer(req) {
            terms.extend(t.iter().cloned());
        }
        if let Some(Value::Array(p)) = src.pointer(pref) {
            preferred.extend(p.iter().cloned());
        }
    }
    let mut node = Map::new();
    if !terms.is_empty() {
        node.insert(
            "requiredDuringSchedulingIgnoredDuringExecution".into(),
            json!({ "nodeSelectorTerms": terms }),
        );
    }
    if !preferred.is_empty() {
        node.insert(
            "preferredDuringSchedulingIgnoredDuringExecution".into(),
            Value::Array(preferred),
        );
    }
    // Pod anti-affinity: one Cassandra pod per worker unless allowed otherwise.
    let mut anti_req: Vec<Value> = Vec::new();
    if dc.obj.spec.allow_multiple_nodes_per_worker != Some(true) {
        anti_req.push(json!({
            "labelSelector": {"matchExpressions": [
                {"key": CLUSTER_LABEL, "operator": "Exists"},
                {"key": DATACENTER_LABEL, "operator": "Exists"},
                {"key": RACK_LABEL, "operator": "Exists"},
            ]},
            "topologyKey": HOSTNAME_LABEL,
        }));
    }
    let mut anti_pref: Vec<Value> = Vec::new();
    for src in [Some(&aff), rack_aff.as_ref()].into_iter().flatten() {
        if let Some(Value::Array(t)) =
            src.pointer("/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution")
        {
            anti_req.extend(t.iter().cloned());
        }
        if let Some(Value::Array(t)) =
            src.pointer("/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution")
        {
            anti_pref.extend(t.iter().cloned());
        }
    }
    let mut anti = Map::new();
    if !anti_req.is_empty() {
        anti.insert(
            "requiredDuringSchedulingIgnoredDuringExecution".into(),
            Value::Array(anti_req),
        );
    }
    if !anti_pref.is_empty() {
        anti.insert(
            "preferredDuringSchedulingIgnoredDuringExecution".into(),
            Value::Array(anti_pref),
        );
    }
    let obj = aff.as_object_mut()?;
    obj.remove("nodeAffinity");
    obj.remove("podAntiAffinity");
    if !node.is_empty() {
        obj.insert("nodeAffinity".into(), Value::Object(node));
    }
    if !anti.is_empty() {
        obj.insert("podAntiAffinity".into(), Value::Object(anti));
    }
    if rack_aff
        .as_ref()
        .and_then(|r| r.get("podAffinity"))
        .is_some()
        && !obj.contains_key("podAffinity")
    {
        obj.insert(
            "podAffinity".into(),
            rack_aff.as_ref()?["podAffinity"].clone(),
        );
    }
    (!obj.is_empty()).then_some(aff)
}

/// The pod template of a rack, without the seed label, with its hash annotation.
pub fn pod_template(dc: &Dc, rack: &RackPlan) -> Value {
    let spec = &dc.obj.spec;
    let user = spec
        .pod_template_spec
        .as_ref()
        .map(to_value)
        .unwrap_or_else(|| json!({}));
    let mut meta = user.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let mut pod = user.get("spec").cloned().unwrap_or_else(|| json!({}));
    if !pod.is_object() {
        pod = json!({});
    }

    // Labels: the user's, then ours (ours win: selectors depend on them).
    let mut labels: Map<String, Value> = meta
        .get("labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    labels.extend(common_labels(dc));
    labels.insert(RACK_LABEL.into(), json!(rack.label));
    meta["labels"] = Value::Object(labels);
    let mut annotations: Map<String, Value> = meta
        .get("annotations")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(a) = common_annotations(dc) {
        annotations.extend(a);
    }
    if let Some(t) = &dc.status.last_rolling_restart {
        annotations.insert(RESTARTED_AT_ANNOTATION.into(), to_value(t));
    }
    meta.as_object_mut().map(|m| m.remove("annotations"));
    if !annotations.is_empty() {
        meta["annotations"] = Value::Object(annotations);
    }

    if let Some(sa) = spec
        .service_account_name
        .as_deref()
        .or(spec.service_account.as_deref())
        .filter(|s| !s.is_empty())
    {
        pod["serviceAccountName"] = json!(sa);
    }
    if spec.networking.as_ref().and_then(|n| n.host_network) == Some(true) {
        pod["hostNetwork"] = json!(true);
        pod["dnsPolicy"] = json!("ClusterFirstWithHostNet");
    }
    set_default(&mut pod, "terminationGracePeriodSeconds", json!(120));
    set_default(
        &mut pod,
        "securityContext",
        json!({"runAsUser": 999, "runAsGroup": 999, "fsGroup": 999, "runAsNonRoot": true}),
    );
    if let Some(ns) = &spec.node_selector {
        let mut sel = pod
            .get("nodeSelector")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (k, v) in ns {
            sel.insert(k.clone(), json!(v));
        }
        pod["nodeSelector"] = Value::Object(sel);
    }
    match affinity(dc, rack, pod.get("affinity")) {
        Some(a) => pod["affinity"] = a,
        None => {
            pod.as_object_mut().map(|p| p.remove("affinity"));
        }
    }
    if let Some(t) = &spec.tolerations {
        pod["tolerations"] = to_value(t);
    }

    // Volumes: the user's win by name; claim-backed additional volumes come from the
    // volumeClaimTemplates, not from here.
    let mut vols = vec![
        json!({"name": "server-config", "emptyDir": {}}),
        json!({"name": "server-logs", "emptyDir": {}}),
    ];
    let logger = spec.disable_system_logger_sidecar != Some(true);
    if logger {
        vols.push(json!({"name": "vector-lib", "emptyDir": {}}));
    }
    for v in spec.storage_config.additional_volumes.iter().flatten() {
        if let Some(src) = &v.volume_source {
            let mut obj = src.0.clone();
            obj.insert("name".into(), json!(v.name));
            vols.push(Value::Object(obj));
        }
    }
    pod["volumes"] = combine_by_name(vols, pod.get("volumes"));

    let mut inits: Vec<Value> = pod
        .get("initContainers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let (mut cfg, at) = take_container(&mut inits, CONFIG_CONTAINER);
    config_container(dc, rack, &mut cfg);
    put_back(&mut inits, cfg, at);
    pod["initContainers"] = Value::Array(inits);

    let mut containers: Vec<Value> = pod
        .get("containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let (mut cass, at) = take_container(&mut containers, CASSANDRA_CONTAINER);
    cassandra_container(dc, &mut cass);
    put_back(&mut containers, cass, at);
    if logger {
        let (mut log, at) = take_container(&mut containers, LOGGER_CONTAINER);
        logger_container(dc, &mut log);
        put_back(&mut containers, log, at);
    }
    pod["containers"] = Value::Array(containers);

    let mut template = json!({ "metadata": meta, "spec": pod });
    canonicalize_resources(&mut template);
    // The hash covers everything that should restart a pod when it changes. The seed label
    // is added afterwards: it only decides what the next *created* pod is (see
    // `statefulset`), and must not make running pods look outdated.
    let hash = fnv_hex(&canonical_json(&template));
    template["metadata"]["annotations"][TEMPLATE_HASH_ANNOTATION] = json!(hash);
    template
}

/// The hash annotation of a rack's pod template.
pub fn template_hash(template: &Value) -> String {
    template
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(TEMPLATE_HASH_ANNOTATION))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn claim_template(dc: &Dc, rack: &RackPlan, name: &str, spec: Value) -> Value {
    let mut labels = common_labels(dc);
    labels.insert(RACK_LABEL.into(), json!(rack.label));
    json!({"metadata": {"name": name, "labels": labels}, "spec": spec})
}

/// A rack's StatefulSet.
///
/// `seed_template`: the pod template carries `cassandra.datastax.com/seed-node: "true"`.
/// Pods are not ours to label (they belong to the StatefulSet, and applying them would
/// fight its controller), yet Cassandra and the simulator find seeds by that label. So the
/// label is put in the template exactly while one of the rack's seed pods (its first
/// ordinals) is missing: the StatefulSet first runs with only those replicas (created as
/// seeds), and once they exist the label goes away and the rack grows to its size. With
/// `OnDelete` updates a pod keeps the labels it was created with, so seeds stay seeds,
/// also when recreated (the label returns while one is missing, and a plan deleting a
/// seed pod puts it back in the same plan).
pub fn statefulset(dc: &Dc, rack: &RackPlan, replicas: usize, seed_template: bool) -> Value {
    let mut template = pod_template(dc, rack);
    if seed_template {
        template["metadata"]["labels"][SEED_NODE_LABEL] = json!("true");
    }
    let mut labels = common_labels(dc);
    labels.insert(RACK_LABEL.into(), json!(rack.label));
    let selector: Map<String, Value> = dc
        .rack_labels(rack)
        .into_iter()
        .map(|(k, v)| (k, json!(v)))
        .collect();
    let spec = &dc.obj.spec;
    let mut claims = Vec::new();
    if let Some(pvc) = &spec.storage_config.cassandra_data_volume_claim_spec {
        claims.push(claim_template(dc, rack, DATA_VOLUME, to_value(pvc)));
    }
    for v in spec.storage_config.additional_volumes.iter().flatten() {
        if let Some(pvc) = &v.pvc_spec {
            claims.push(claim_template(dc, rack, &v.name, to_value(pvc)));
        }
    }
    let mut sts_spec = json!({
        "replicas": replicas,
        "serviceName": names::all_pods_service_name(&dc.cluster, dc.name()),
        "podManagementPolicy": "Parallel",
        // The policy restarts pods itself, one at a time and only after the previous one
        // is back in the ring; the StatefulSet controller must not.
        "updateStrategy": {"type": "OnDelete"},
        "selector": {"matchLabels": selector},
        "template": template,
        "volumeClaimTemplates": claims,
    });
    if let Some(s) = spec.min_ready_seconds {
        sts_spec["minReadySeconds"] = json!(s);
    }
    let mut sts = json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(dc, &rack.sts, labels),
        "spec": sts_spec,
    });
    // The claim templates' sizes, as the API server will store them.
    canonicalize_resources(&mut sts);
    sts
}

fn service_tags(
    dc: &Dc,
    pick: fn(
        &k8ssandra_api::cassandra::ServiceConfig,
    ) -> Option<&k8ssandra_api::cassandra::ServiceConfigAdditions>,
    meta: &mut Value,
) {
    let Some(add) = dc
        .obj
        .spec
        .additional_service_config
        .as_ref()
        .and_then(pick)
    else {
        return;
    };
    for (k, v) in add.labels.iter().flatten() {
        meta["labels"][k] = json!(v);
    }
    for (k, v) in add.annotations.iter().flatten() {
        meta["annotations"][k] = json!(v);
    }
}

fn service(dc: &Dc, name: &str, mut labels: Map<String, Value>, spec: Value) -> Value {
    labels.extend(common_labels(dc));
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(dc, name, labels),
        "spec": spec,
    })
}

fn svc_port(name: &str, port: i32) -> Value {
    json!({"name": name, "port": port, "targetPort": port})
}

/// The Services of a datacenter, in a fixed order (the NodePort one only when asked for).
pub fn services(dc: &Dc) -> Vec<Value> {
    let dc_sel: Map<String, Value> = dc
        .dc_labels()
        .into_iter()
        .map(|(k, v)| (k, json!(v)))
        .collect();
    let mut out = Vec::new();

    // Clients: CQL, management API and metrics of every node of the datacenter.
    let mut s = service(
        dc,
        &names::datacenter_service_name(&dc.cluster, dc.name()),
        Map::new(),
        json!({
            "clusterIP": "None",
            "selector": dc_sel,
            "ports": [
                svc_port("native", 9042),
                svc_port("tls-native", 9142),
                svc_port("mgmt-api", 8080),
                svc_port("prometheus", 9103),
                svc_port("metrics", 9000),
            ],
        }),
    );
    service_tags(dc, |c| c.dc_service.as_ref(), &mut s["metadata"]);
    out.push(s);

    // Seeds of the whole cluster, resolvable before they are ready (a node must reach a
    // seed to join, and seeds must find each other while starting).
    let mut s = service(
        dc,
        &names::seed_service_name(&dc.cluster),
        Map::new(),
        json!({
            "clusterIP": "None",
            "publishNotReadyAddresses": true,
            "selector": {
                CLUSTER_LABEL: dc.cluster_label(),
                SEED_NODE_LABEL: "true",
            },
        }),
    );
    // The seed Service is cluster-wide: drop the datacenter label so it doesn't suggest
    // otherwise.
    s["metadata"]["labels"]
        .as_object_mut()
        .map(|l| l.remove(DATACENTER_LABEL));
    service_tags(dc, |c| c.seed_service.as_ref(), &mut s["metadata"]);
    out.push(s);

    // Every pod, ready or not: the StatefulSets' governing Service (pod DNS names).
    let mut labels = Map::new();
    labels.insert(PROM_METRICS_LABEL.into(), json!("true"));
    let mut s = service(
        dc,
        &names::all_pods_service_name(&dc.cluster, dc.name()),
        labels,
        json!({
            "clusterIP": "None",
            "publishNotReadyAddresses": true,
            "selector": dc_sel,
            "ports": [
                svc_port("native", 9042),
                svc_port("mgmt-api", 8080),
                svc_port("prometheus", 9103),
                svc_port("metrics", 9000),
            ],
        }),
    );
    service_tags(dc, |c| c.all_pods_service.as_ref(), &mut s["metadata"]);
    out.push(s);

    // Seeds outside Kubernetes (spec.additionalSeeds); no selector.
    let mut s = service(
        dc,
        &names::additional_seed_service_name(&dc.cluster, dc.name()),
        Map::new(),
        json!({"clusterIP": "None", "publishNotReadyAddresses": true}),
    );
    service_tags(
        dc,
        |c| c.additional_seed_service.as_ref(),
        &mut s["metadata"],
    );
    out.push(s);

    // Clients outside Kubernetes reach each node on its worker's address
    // (`spec.networking.nodePort`; the config builder announces the host IP then). The
    // Service port, node port and container port are one number, which is also what the
    // node listens on (`config::config_file_data` writes it into cassandra.yaml).
    if let Some(np) = dc
        .obj
        .spec
        .networking
        .as_ref()
        .and_then(|n| n.node_port.as_ref())
    {
        // Unset ports keep Cassandra's (9042, 7000) and let Kubernetes pick the node port:
        // upstream asks for node port 9042 then, which lies outside the API server's
        // default node port range and is refused.
        let port = |name: &str, p: Option<i32>, default: i32| match p.filter(|p| *p > 0) {
            Some(p) => json!({"name": name, "port": p, "nodePort": p, "targetPort": p}),
            None => json!({"name": name, "port": default, "targetPort": default}),
        };
        let mut s = service(
            dc,
            &names::node_port_service_name(&dc.cluster, dc.name()),
            Map::new(),
            json!({
                "type": "NodePort",
                // Keeps the clients' source addresses, and a node port leads to the node
                // of that worker only.
                "externalTrafficPolicy": "Local",
                "selector": dc_sel,
                "ports": [
                    port("internode", np.internode, 7000),
                    port("native", np.native, 9042),
                ],
            }),
        );
        service_tags(dc, |c| c.node_port_service.as_ref(), &mut s["metadata"]);
        out.push(s);
    }
    out
}

/// Addresses behind `<cluster>-<dc>-additional-seed-service`: the IPv4 entries of
/// `spec.additionalSeeds` (that Service has no selector, so nothing else fills it). Host
/// names cannot go into an EndpointSlice and are left out, and so are loopback addresses,
/// which the API server refuses in any EndpointSlice (they only occur on test clusters,
/// where Cassandra still gets its seeds from the configuration). None without such seeds.
pub fn additional_seeds_slice(dc: &Dc) -> Option<Value> {
    let ips: Vec<&String> = dc
        .obj
        .spec
        .additional_seeds
        .iter()
        .flatten()
        .filter(|s| {
            s.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| !ip.is_loopback())
        })
        .collect();
    if ips.is_empty() {
        return None;
    }
    let svc = names::additional_seed_service_name(&dc.cluster, dc.name());
    let mut labels = common_labels(dc);
    labels.insert("kubernetes.io/service-name".into(), json!(svc));
    // Keeps the EndpointSlice controller's hands off (it manages only its own slices).
    labels.insert(
        "endpointslice.kubernetes.io/managed-by".into(),
        json!("k8ssandra-operator"),
    );
    let endpoints: Vec<Value> = ips
        .into_iter()
        .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}}))
        .collect();
    Some(json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": metadata(dc, &svc, labels),
        "addressType": "IPv4",
        "endpoints": endpoints,
    }))
}

/// `<dc>-pdb`: at most one node of the datacenter voluntarily disrupted at a time.
pub fn pdb(dc: &Dc) -> Value {
    let size = dc.obj.spec.size.max(1);
    let sel: Map<String, Value> = dc
        .dc_labels()
        .into_iter()
        .map(|(k, v)| (k, json!(v)))
        .collect();
    json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(dc, &names::pdb_name(dc.name()), common_labels(dc)),
        "spec": {
            "minAvailable": size - 1,
            "selector": {"matchLabels": sel},
        },
    })
}
