//! The children of a datacenter, as JSON ready for server-side apply: one StatefulSet per
//! rack (its pod template comes from [`crate::pod`]), the four Services, the
//! PodDisruptionBudget.
//!
//! Built as `serde_json::Value` rather than k8s-openapi structs, like the pod template they
//! embed. Output is deterministic: the same spec always gives byte-identical objects, so an
//! unchanged plan causes no writes.

use k8ssandra_api::labels::{
    CLUSTER_LABEL, DATACENTER_LABEL, PROM_METRICS_LABEL, RACK_LABEL, SEED_NODE_LABEL,
};
use k8ssandra_api::names;
use serde_json::{Map, Value, json};

use crate::model::{Dc, RackPlan};
use crate::util::canonicalize_resources;

pub use crate::images::server_image;
pub use crate::pod::{
    BASE_CONFIG_CONTAINER, CASSANDRA_CONTAINER, CONFIG_CONTAINER, DATA_VOLUME, LOGGER_CONTAINER,
    pod_template, template_hash,
};

/// Labels every object of the datacenter carries: cluster, datacenter, the usual
/// `app.kubernetes.io` ones, and the user's `additionalLabels`.
pub(crate) fn common_labels(dc: &Dc) -> Map<String, Value> {
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

pub(crate) fn common_annotations(dc: &Dc) -> Option<Map<String, Value>> {
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

pub(crate) fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn claim_template(dc: &Dc, rack: &RackPlan, name: &str, spec: Value) -> Value {
    let mut labels = common_labels(dc);
    labels.insert(RACK_LABEL.into(), json!(rack.label));
    json!({"metadata": {"name": name, "labels": labels}, "spec": spec})
}

/// A rack's StatefulSet.
///
/// The template never carries the seed label: a pod created from it later (a scale-up, a
/// recreated seed) would start as a seed, and a new seed skips bootstrap. Seeds are
/// labelled on the running pods instead (`lifecycle`'s `seed_labels`), as cass-operator
/// does.
pub fn statefulset(dc: &Dc, rack: &RackPlan, replicas: usize) -> Value {
    let template = pod_template(dc, rack);
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
    // Upstream's default: a restarted pod counts as available only after 5 s of readiness.
    sts_spec["minReadySeconds"] = json!(spec.min_ready_seconds.unwrap_or(5));
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
