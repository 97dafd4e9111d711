//! The desired objects of one Stargate: names, labels, image, ports, probes, resources,
//! affinity and environment follow upstream's, so tooling written for k8ssandra-operator's
//! Stargate finds what it expects.

use std::collections::BTreeMap;

use k8ssandra_api::cassandra::{CassandraDatacenter, ServerType};
use k8ssandra_api::images::Image;
use k8ssandra_api::labels::{
    CLUSTER_LABEL, COMPONENT_LABEL, COMPONENT_STARGATE, DATACENTER_LABEL,
    K8SSANDRA_CLUSTER_NAME_LABEL, K8SSANDRA_CLUSTER_NAMESPACE_LABEL, NAME_LABEL, NAME_LABEL_VALUE,
    PART_OF_LABEL, PART_OF_LABEL_VALUE, RACK_LABEL,
};
use k8ssandra_api::names::{clean_label_value, seed_service_name, split_racks};
use k8ssandra_api::quantity::{bytes_quantity, quantity_bytes};
use k8ssandra_api::stargate::{
    self as api, ApiAuthMethod, STARGATE_DEPLOYMENT_LABEL, STARGATE_LABEL, Stargate,
    StargateTemplate,
};
use serde_json::{Map, Value, json};

/// Where the generated ConfigMap is mounted, and the files Stargate is pointed at.
const CONFIG_DIR: &str = "/config";
const CQL_CONFIG_FILE: &str = "stargate-cql.yaml";
const CONFIG_VOLUME: &str = "cassandra-config";

/// `cassandra.yaml` settings of the datacenter Stargate's embedded node keeps.
const CASSANDRA_YAML_RETAINED: [&str; 1] = ["server_encryption_options"];
/// `cassandra.yaml` settings of the datacenter that configure Stargate's CQL server.
const CQL_YAML_RETAINED: [&str; 10] = [
    "rpc_keepalive",
    "native_transport_max_frame_size_in_mb",
    "native_transport_max_concurrent_connections",
    "native_transport_max_concurrent_connections_per_ip",
    "native_transport_flush_in_batches_legacy",
    "native_transport_allow_older_protocols",
    "native_transport_max_concurrent_requests_in_bytes_per_ip",
    "native_transport_max_concurrent_requests_in_bytes",
    "native_transport_idle_timeout_in_ms",
    "client_encryption_options",
];

/// Container ports of a Stargate pod (name, port).
pub const CONTAINER_PORTS: [(&str, i32); 10] = [
    ("graphql", 8080),
    ("authorization", 8081),
    ("rest", 8082),
    ("health", 8084),
    ("metrics", 8085),
    ("grpc", 8090),
    ("native", 9042),
    ("inter-node-msg", 8609),
    ("intra-node", 7000),
    ("tls-intra-node", 7001),
];

/// Ports of the Stargate Service (name, port): the client-facing ones.
pub const SERVICE_PORTS: [(&str, i32); 7] = [
    ("graphql", 8080),
    ("authorization", 8081),
    ("rest", 8082),
    ("health", 8084),
    ("metrics", 8085),
    ("grpc", 8090),
    ("cassandra", 9042),
];

/// Where the encryption stores are mounted: `/mnt/<server|client>-<keystore|truststore>`,
/// each holding one file named after the store, as upstream mounts them.
const STORES_DIR: &str = "/mnt";

/// Keys of the user's ConfigMap (`cassandraConfigMapRef`). Upstream reads `cassandra.yaml`
/// while its API documentation says `cassandra_yaml`; both are accepted.
pub const USER_CASSANDRA_YAML_KEYS: [&str; 2] = ["cassandra.yaml", "cassandra_yaml"];

/// The settings of the user's ConfigMap named by `cassandraConfigMapRef`, parsed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UserConfig {
    pub cassandra_yaml: Map<String, Value>,
    pub cql_yaml: Map<String, Value>,
}

impl UserConfig {
    /// Parses the ConfigMap's `data`; `Err((key, message))` for a key that is not a YAML
    /// mapping.
    pub fn parse(data: &BTreeMap<String, String>) -> Result<Self, (String, String)> {
        let one = |key: &str| -> Result<Map<String, Value>, (String, String)> {
            let Some(text) = data.get(key) else {
                return Ok(Map::new());
            };
            match serde_yaml::from_str::<Value>(text) {
                Ok(Value::Object(m)) => Ok(m),
                Ok(Value::Null) => Ok(Map::new()),
                Ok(_) => Err((key.to_string(), "is not a YAML mapping".to_string())),
                Err(e) => Err((key.to_string(), format!("does not parse as YAML: {e}"))),
            }
        };
        let key = USER_CASSANDRA_YAML_KEYS
            .iter()
            .find(|k| data.contains_key(**k))
            .copied()
            .unwrap_or(USER_CASSANDRA_YAML_KEYS[0]);
        Ok(UserConfig {
            cassandra_yaml: one(key)?,
            cql_yaml: one(CQL_CONFIG_FILE)?,
        })
    }
}

/// What the objects of one Stargate are derived from.
pub struct Inputs<'a> {
    pub sg: &'a Stargate,
    pub dc: &'a CassandraDatacenter,
    /// The user's Cassandra settings (`cassandraConfigMapRef`), when it names one.
    pub user: Option<&'a UserConfig>,
}

impl Inputs<'_> {
    pub fn name(&self) -> &str {
        self.sg.metadata.name.as_deref().unwrap_or_default()
    }

    pub fn namespace(&self) -> &str {
        self.sg.metadata.namespace.as_deref().unwrap_or_default()
    }

    fn cluster(&self) -> &str {
        &self.dc.spec.cluster_name
    }

    fn dc_name(&self) -> &str {
        self.dc.datacenter_name()
    }

    pub fn service_name(&self) -> String {
        api::service_name(self.cluster(), self.dc_name())
    }

    pub fn config_map_name(&self) -> String {
        api::config_map_name(self.cluster(), self.dc_name())
    }

    /// Deployments to have: (rack name, Deployment name, replicas), racks without a replica
    /// left out (a size below the rack count serves the first racks only, as upstream).
    pub fn racks(&self) -> Vec<(String, String, i32)> {
        let racks = self.dc.racks();
        let size = usize::try_from(self.sg.spec.datacenter_template.cluster_template.size())
            .unwrap_or_default();
        racks
            .iter()
            .zip(split_racks(size, racks.len()))
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| {
                (
                    r.name.clone(),
                    api::deployment_name(self.cluster(), self.dc_name(), &r.name),
                    i32::try_from(n).unwrap_or(i32::MAX),
                )
            })
            .collect()
    }

    /// Labels of every object: upstream's component labels, the Stargate's name, the
    /// K8ssandraCluster's identity when it created this Stargate, and `commonLabels`.
    pub(crate) fn common_labels(&self) -> BTreeMap<String, String> {
        let mut l = BTreeMap::from([
            (NAME_LABEL.to_string(), NAME_LABEL_VALUE.to_string()),
            (PART_OF_LABEL.to_string(), PART_OF_LABEL_VALUE.to_string()),
            (COMPONENT_LABEL.to_string(), COMPONENT_STARGATE.to_string()),
            (STARGATE_LABEL.to_string(), clean_label_value(self.name())),
        ]);
        let own = self.sg.metadata.labels.clone().unwrap_or_default();
        for key in [
            K8SSANDRA_CLUSTER_NAME_LABEL,
            K8SSANDRA_CLUSTER_NAMESPACE_LABEL,
        ] {
            if let Some(v) = own.get(key) {
                l.insert(key.to_string(), v.clone());
            }
        }
        let meta = self
            .sg
            .spec
            .datacenter_template
            .cluster_template
            .template
            .resource_meta
            .as_ref();
        if let Some(common) = meta.and_then(|m| m.common_labels.as_ref()) {
            l.extend(common.clone());
        }
        l
    }

    /// The ConfigMap the pods mount at `/config`, as JSON (a subset of YAML): the user's
    /// settings (`cassandraConfigMapRef`) with the datacenter's settings Stargate needs over
    /// them (upstream appends those to the user's text, so they win), and the paths of the
    /// mounted encryption stores where the settings name none.
    pub fn config_map(&self) -> Value {
        let yaml = self
            .dc
            .spec
            .config
            .as_ref()
            .and_then(|c| c.get("cassandra-yaml"))
            .and_then(Value::as_object);
        let merged = |user: Option<&Map<String, Value>>, keys: &[&str]| -> Map<String, Value> {
            let mut m = user.cloned().unwrap_or_default();
            for (k, v) in yaml.into_iter().flatten() {
                if keys.contains(&k.as_str()) {
                    m.insert(k.clone(), v.clone());
                }
            }
            m
        };
        let mut cassandra = merged(
            self.user.map(|u| &u.cassandra_yaml),
            &CASSANDRA_YAML_RETAINED,
        );
        let mut cql = merged(self.user.map(|u| &u.cql_yaml), &CQL_YAML_RETAINED);
        let encryption = self.sg.spec.cassandra_encryption.as_ref();
        if encryption.is_some_and(|e| e.server_encryption_stores.is_some()) {
            store_paths(&mut cassandra, "server_encryption_options", "server");
        }
        if encryption.is_some_and(|e| e.client_encryption_stores.is_some()) {
            store_paths(&mut cql, "client_encryption_options", "client");
        }
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self.config_map_name(),
                "namespace": self.namespace(),
                "labels": self.common_labels(),
            },
            "data": {
                "cassandra.yaml": Value::Object(cassandra).to_string(),
                CQL_CONFIG_FILE: Value::Object(cql).to_string(),
            },
        })
    }

    /// The Secret volumes of `cassandraEncryption` and their mounts.
    fn encryption_volumes(&self) -> (Vec<Value>, Vec<Value>) {
        let mut volumes = Vec::new();
        let mut mounts = Vec::new();
        let Some(e) = &self.sg.spec.cassandra_encryption else {
            return (volumes, mounts);
        };
        for (kind, stores) in [
            ("server", &e.server_encryption_stores),
            ("client", &e.client_encryption_stores),
        ] {
            let Some(stores) = stores else { continue };
            for (store, secret) in [
                ("keystore", &stores.keystore_secret_ref),
                ("truststore", &stores.truststore_secret_ref),
            ] {
                let name = format!("{kind}-{store}");
                volumes.push(json!({
                    "name": name,
                    "secret": {
                        "secretName": secret.name.clone().unwrap_or_default(),
                        "items": [{"key": secret.key_or(store), "path": store}],
                    },
                }));
                mounts.push(json!({"name": name, "mountPath": format!("{STORES_DIR}/{name}")}));
            }
        }
        (volumes, mounts)
    }

    /// The Service in front of every Stargate pod of the datacenter.
    pub fn service(&self) -> Value {
        let meta = self
            .sg
            .spec
            .datacenter_template
            .cluster_template
            .template
            .resource_meta
            .as_ref();
        let mut labels = self.common_labels();
        let mut annotations = BTreeMap::new();
        if let Some(t) = meta.and_then(|m| m.service.as_ref()) {
            labels.extend(t.labels.clone().unwrap_or_default());
            annotations.extend(t.annotations.clone().unwrap_or_default());
        }
        let ports: Vec<Value> = SERVICE_PORTS
            .iter()
            .map(|(n, p)| json!({"name": n, "port": p, "protocol": "TCP", "targetPort": p}))
            .collect();
        let mut metadata = json!({
            "name": self.service_name(),
            "namespace": self.namespace(),
            "labels": labels,
        });
        if !annotations.is_empty() {
            metadata["annotations"] = json!(annotations);
        }
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata,
            "spec": {
                "type": "ClusterIP",
                "ports": ports,
                "selector": {STARGATE_LABEL: clean_label_value(self.name())},
            },
        })
    }

    /// The Deployment of one rack.
    pub fn deployment(
        &self,
        rack: &str,
        name: &str,
        replicas: i32,
    ) -> Result<Value, serde_json::Error> {
        let template = self.sg.spec.datacenter_template.rack_template(rack)?;
        let dc = self.dc;
        let mut pod_labels = self.common_labels();
        pod_labels.insert(STARGATE_DEPLOYMENT_LABEL.to_string(), name.to_string());
        let mut pod_annotations = BTreeMap::new();
        if let Some(t) = template
            .resource_meta
            .as_ref()
            .and_then(|m| m.pods.as_ref())
        {
            pod_labels.extend(t.labels.clone().unwrap_or_default());
            pod_annotations.extend(t.annotations.clone().unwrap_or_default());
        }
        let image = image(&template, dc);
        let mut env = vec![
            json!({"name": "LISTEN", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}),
            json!({"name": "JAVA_OPTS", "value": self.java_opts(&template)}),
            json!({"name": "CLUSTER_NAME", "value": dc.spec.cluster_name}),
            json!({"name": "CLUSTER_VERSION", "value": cluster_version(dc)}),
            json!({"name": "SEED", "value": format!("{}.{}.svc", seed_service_name(&dc.spec.cluster_name), self.namespace())}),
            json!({"name": "DATACENTER_NAME", "value": self.dc_name()}),
            json!({"name": "RACK_NAME", "value": rack}),
            // Bundles never change inside a pod; watching them only costs.
            json!({"name": "DISABLE_BUNDLES_WATCH", "value": "true"}),
        ];
        if dc.spec.server_type == ServerType::Dse {
            env.push(json!({"name": "DSE", "value": "1"}));
        }
        if self.sg.spec.is_auth_enabled() {
            // Stargate turns its authentication on when this variable exists at all.
            env.push(json!({"name": "ENABLE_AUTH", "value": "true"}));
        }
        let ports: Vec<Value> = CONTAINER_PORTS
            .iter()
            .map(|(n, p)| json!({"name": n, "containerPort": p, "protocol": "TCP"}))
            .collect();
        let mut container = json!({
            "name": name,
            "image": image.reference(),
            "imagePullPolicy": image.effective_pull_policy(),
            "ports": ports,
            "env": env,
            "resources": resources(&template),
            "livenessProbe": probe(template.liveness_probe.as_ref(), "/checker/liveness"),
            "readinessProbe": probe(template.readiness_probe.as_ref(), "/checker/readiness"),
            "volumeMounts": [{"name": CONFIG_VOLUME, "mountPath": CONFIG_DIR}],
        });
        let (store_volumes, store_mounts) = self.encryption_volumes();
        if let Some(m) = container["volumeMounts"].as_array_mut() {
            m.extend(store_mounts);
        }
        if container["resources"]
            .as_object()
            .is_some_and(Map::is_empty)
        {
            container.as_object_mut().map(|c| c.remove("resources"));
        }
        let host_network = dc
            .spec
            .networking
            .as_ref()
            .and_then(|n| n.host_network)
            .unwrap_or(false);
        let mut volumes =
            vec![json!({"name": CONFIG_VOLUME, "configMap": {"name": self.config_map_name()}})];
        volumes.extend(store_volumes);
        let mut pod_spec = json!({
            "serviceAccountName": template.service_account.clone().unwrap_or_else(|| "default".into()),
            "containers": [container],
            "volumes": volumes,
            "affinity": affinity(&template, dc, rack)?,
        });
        if host_network {
            pod_spec["hostNetwork"] = json!(true);
            pod_spec["dnsPolicy"] = json!("ClusterFirstWithHostNet");
        }
        if let Some(secret) = image
            .pull_secret_ref
            .as_ref()
            .map(|r| r.name.clone())
            .filter(|n| !n.is_empty())
        {
            pod_spec["imagePullSecrets"] = json!([{"name": secret}]);
        }
        let node_selector = template
            .node_selector
            .clone()
            .or_else(|| dc.spec.node_selector.clone())
            .or_else(|| {
                dc.spec
                    .pod_template_spec
                    .as_ref()
                    .and_then(|p| p.spec.as_ref())
                    .and_then(|s| s.node_selector.clone())
            })
            .filter(|m| !m.is_empty());
        if let Some(ns) = node_selector {
            pod_spec["nodeSelector"] = json!(ns);
        }
        let tolerations = template
            .tolerations
            .clone()
            .or_else(|| dc.spec.tolerations.clone())
            .filter(|t| !t.is_empty());
        if let Some(t) = tolerations {
            pod_spec["tolerations"] = serde_json::to_value(t)?;
        }
        crate::telemetry::decorate_pod(self, &mut pod_spec);
        let mut pod_meta = json!({"labels": pod_labels});
        if !pod_annotations.is_empty() {
            pod_meta["annotations"] = json!(pod_annotations);
        }
        Ok(json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": name,
                "namespace": self.namespace(),
                "labels": self.common_labels(),
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {STARGATE_DEPLOYMENT_LABEL: name}},
                "template": {"metadata": pod_meta, "spec": pod_spec},
            },
        }))
    }

    fn java_opts(&self, t: &StargateTemplate) -> String {
        let heap = t.heap_bytes().unwrap_or(256 << 20);
        let mut opts = format!(
            "-XX:+CrashOnOutOfMemoryError -Xms{heap} -Xmx{heap} -Dstargate.unsafe.cassandra_config_path={CONFIG_DIR}/cassandra.yaml -Dstargate.cql.config_path={CONFIG_DIR}/{CQL_CONFIG_FILE}"
        );
        if self.sg.spec.is_auth_enabled()
            && let Some(o) = &t.auth_options
        {
            match o.api_auth_method.unwrap_or(ApiAuthMethod::Table) {
                ApiAuthMethod::Table => {
                    opts.push_str(" -Dstargate.auth_id=AuthTableBasedService");
                    if let Some(ttl) = o.token_ttl_seconds.filter(|t| *t > 0) {
                        opts.push_str(&format!(" -Dstargate.auth_tokenttl={ttl}"));
                    }
                }
                ApiAuthMethod::Jwt => {
                    opts.push_str(&format!(
                        " -Dstargate.auth_id=AuthJwtService -Dstargate.auth.jwt_provider_url={}",
                        o.jwt_provider_url.as_deref().unwrap_or_default()
                    ));
                }
            }
        }
        opts
    }
}

/// Puts the paths of the mounted stores of `kind` (`server`/`client`) into the encryption
/// options `key`, where they name none (the datacenter's own paths are kept).
fn store_paths(yaml: &mut Map<String, Value>, key: &str, kind: &str) {
    let options = yaml.entry(key.to_string()).or_insert_with(|| json!({}));
    let Some(o) = options.as_object_mut() else {
        return;
    };
    for store in ["keystore", "truststore"] {
        o.entry(store.to_string())
            .or_insert_with(|| json!(format!("{STORES_DIR}/{kind}-{store}/{store}")));
    }
}

/// The Cassandra line Stargate is built for: `6.8` (DSE), `3.11` or `4.0`.
pub fn cluster_version(dc: &CassandraDatacenter) -> &'static str {
    if dc.spec.server_type == ServerType::Dse {
        "6.8"
    } else if dc.spec.server_version.starts_with('3') {
        "3.11"
    } else {
        "4.0"
    }
}

/// The image: the template's coordinates over the default of the datacenter's version.
pub fn image(t: &StargateTemplate, dc: &CassandraDatacenter) -> Image {
    let name = match cluster_version(dc) {
        "6.8" => "stargate-dse-68",
        "3.11" => "stargate-3_11",
        _ => "stargate-4_0",
    };
    let mut image = t.container_image.clone().unwrap_or_default();
    let unset = |s: &Option<String>| s.as_deref().is_none_or(str::is_empty);
    if unset(&image.repository) {
        image.repository = Some("stargateio".into());
    }
    if unset(&image.name) {
        image.name = Some(name.into());
    }
    if unset(&image.tag) {
        image.tag = Some(api::DEFAULT_TAG.into());
    }
    image
}

/// Memory quantities as the API server stores them, so an unchanged plan compares equal.
fn canonical_memory(q: &str) -> String {
    match quantity_bytes(q) {
        Some(b) if bytes_quantity(b) != q && quantity_bytes(&bytes_quantity(b)) == Some(b) => {
            bytes_quantity(b)
        }
        _ => q.to_string(),
    }
}

/// The template's resources, or requests of 200m CPU and twice the heap and limits of one
/// CPU and four times the heap.
fn resources(t: &StargateTemplate) -> Value {
    match &t.resources {
        Some(r) => {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            for part in ["requests", "limits"] {
                if let Some(m) = v.get_mut(part).and_then(|m| m.get_mut("memory"))
                    && let Some(s) = m.as_str()
                {
                    *m = json!(canonical_memory(s));
                }
            }
            v
        }
        None => {
            let heap = t.heap_bytes().unwrap_or(256 << 20);
            json!({
                "requests": {"cpu": "200m", "memory": bytes_quantity(heap * 2)},
                "limits": {"cpu": "1", "memory": bytes_quantity(heap * 4)},
            })
        }
    }
}

/// A probe: the template's timings (30 s delay, 10 s timeout, 5 failures by default) with
/// Stargate's own checker endpoint, which users cannot change.
fn probe(p: Option<&k8s_openapi::api::core::v1::Probe>, path: &str) -> Value {
    let mut v = match p {
        Some(p) => serde_json::to_value(p).unwrap_or_else(|_| json!({})),
        None => json!({"initialDelaySeconds": 30, "timeoutSeconds": 10, "failureThreshold": 5}),
    };
    if let Some(o) = v.as_object_mut() {
        for handler in ["exec", "grpc", "tcpSocket", "httpGet"] {
            o.remove(handler);
        }
        o.insert(
            "httpGet".into(),
            json!({"path": path, "port": "health", "scheme": "HTTP"}),
        );
    }
    v
}

/// The template's affinity, else: the rack's (and datacenter's) node affinity labels
/// required, and no Stargate pod on a worker running a Cassandra pod of the same rack
/// (preferred only with `allowStargateOnDataNodes`).
fn affinity(
    t: &StargateTemplate,
    dc: &CassandraDatacenter,
    rack: &str,
) -> Result<Value, serde_json::Error> {
    if let Some(a) = &t.affinity {
        return serde_json::to_value(a);
    }
    let mut labels: BTreeMap<String, String> =
        dc.spec.node_affinity_labels.clone().unwrap_or_default();
    if let Some(r) = dc.racks().iter().find(|r| r.name == rack) {
        labels.extend(r.node_affinity_labels.clone().unwrap_or_default());
    }
    let mut out = json!({});
    if !labels.is_empty() {
        let exprs: Vec<Value> = labels
            .iter()
            .map(|(k, v)| json!({"key": k, "operator": "In", "values": [v]}))
            .collect();
        out["nodeAffinity"] = json!({
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": exprs}]
            }
        });
    }
    let term = json!({
        "labelSelector": {"matchExpressions": [
            {"key": CLUSTER_LABEL, "operator": "In", "values": [clean_label_value(&dc.spec.cluster_name)]},
            {"key": DATACENTER_LABEL, "operator": "In", "values": [dc.metadata.name.clone().unwrap_or_default()]},
            {"key": RACK_LABEL, "operator": "In", "values": [rack]},
        ]},
        "topologyKey": "kubernetes.io/hostname",
        "namespaces": [dc.metadata.namespace.clone().unwrap_or_default()],
    });
    out["podAntiAffinity"] = if t.allow_stargate_on_data_nodes == Some(true) {
        json!({"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": term}]})
    } else {
        json!({"requiredDuringSchedulingIgnoredDuringExecution": [term]})
    };
    Ok(out)
}
