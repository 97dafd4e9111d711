//! The desired objects of one Reaper. Names, labels, ports, probes, environment, security
//! context and resources follow upstream's, so tooling written for k8ssandra-operator's
//! Reaper finds what it expects.

use std::collections::BTreeMap;

use k8ssandra_api::cassandra::CassandraDatacenter;
use k8ssandra_api::images::Image;
use k8ssandra_api::labels::{
    COMPONENT_LABEL, COMPONENT_REAPER, K8SSANDRA_CLUSTER_NAME_LABEL,
    K8SSANDRA_CLUSTER_NAMESPACE_LABEL, MANAGED_BY_LABEL, NAME_LABEL, NAME_LABEL_VALUE,
    PART_OF_LABEL, PART_OF_LABEL_VALUE,
};
use k8ssandra_api::names::datacenter_service_name;
use k8ssandra_api::quantity::quantity_bytes;
use k8ssandra_api::reaper::{
    DEFAULT_HEAP_SIZE, DatacenterAvailability, REAPER_LABEL, Reaper, RepairType, StorageType,
};
use serde_json::{Value, json};

/// Upstream's default image (k8ssandra-operator's chart values).
pub const DEFAULT_REGISTRY: &str = "docker.io";
pub const DEFAULT_REPOSITORY: &str = "thelastpickle";
pub const DEFAULT_IMAGE_NAME: &str = "cassandra-reaper";
pub const DEFAULT_TAG: &str = "5.0.0";

/// Container ports (name, port): the REST API and UI, and the admin port (health, metrics).
pub const PORTS: [(&str, i32); 2] = [("app", 8080), ("admin", 8081)];

/// Name of the main container and of the schema-migration init container.
pub const CONTAINER: &str = "reaper";
pub const INIT_CONTAINER: &str = "reaper-schema-init";

/// Name of the volume claim template of a `local` Reaper, and where it is mounted.
pub const DATA_VOLUME: &str = "reaper-data";
pub const DATA_PATH: &str = "/var/lib/cassandra-reaper/storage";

/// Name of the Service of Reaper `name`.
pub fn service_name(name: &str) -> String {
    format!("{name}-service")
}

/// What the objects of one Reaper are derived from.
pub struct Inputs<'a> {
    pub reaper: &'a Reaper,
    /// None for a control-plane Reaper (no `datacenterRef`): clusters register with it
    /// through their `reaperRef`; it keeps its state locally.
    pub dc: Option<&'a CassandraDatacenter>,
}

fn secret_env(env: &str, secret: &str, key: &str) -> Value {
    json!({"name": env, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
}

fn env(name: &str, value: impl Into<String>) -> Value {
    json!({"name": name, "value": value.into()})
}

impl Inputs<'_> {
    pub fn name(&self) -> &str {
        self.reaper.metadata.name.as_deref().unwrap_or_default()
    }

    pub fn namespace(&self) -> &str {
        self.reaper
            .metadata
            .namespace
            .as_deref()
            .unwrap_or_default()
    }

    pub fn storage(&self) -> StorageType {
        self.reaper.spec.template.storage_type()
    }

    /// The workload's kind: a Deployment for `cassandra` storage, a StatefulSet for `local`.
    pub fn workload_kind(&self) -> &'static str {
        match self.storage() {
            StorageType::Cassandra => "Deployment",
            StorageType::Local => "StatefulSet",
        }
    }

    /// The Reaper's identity (and, when a K8ssandraCluster made it, the cluster's): the
    /// selector of the Service and part of every object's labels.
    fn constant_labels(&self) -> BTreeMap<String, String> {
        let mut l = BTreeMap::from([
            (NAME_LABEL.to_string(), NAME_LABEL_VALUE.to_string()),
            (PART_OF_LABEL.to_string(), PART_OF_LABEL_VALUE.to_string()),
            (COMPONENT_LABEL.to_string(), COMPONENT_REAPER.to_string()),
            (MANAGED_BY_LABEL.to_string(), NAME_LABEL_VALUE.to_string()),
            (REAPER_LABEL.to_string(), self.name().to_string()),
        ]);
        let own = self.reaper.metadata.labels.clone().unwrap_or_default();
        if let (Some(n), Some(ns)) = (
            own.get(K8SSANDRA_CLUSTER_NAME_LABEL),
            own.get(K8SSANDRA_CLUSTER_NAMESPACE_LABEL),
        ) {
            l.insert(K8SSANDRA_CLUSTER_NAME_LABEL.to_string(), n.clone());
            l.insert(K8SSANDRA_CLUSTER_NAMESPACE_LABEL.to_string(), ns.clone());
        }
        l
    }

    /// Labels of the workload and the Service: `commonLabels`, then the constant ones
    /// (which a user label cannot override: the Service selects on them).
    pub(crate) fn object_labels(&self) -> BTreeMap<String, String> {
        let mut l = self
            .reaper
            .spec
            .template
            .resource_meta
            .as_ref()
            .and_then(|m| m.common_labels.clone())
            .unwrap_or_default();
        l.extend(self.constant_labels());
        l
    }

    fn common_annotations(&self) -> BTreeMap<String, String> {
        self.reaper
            .spec
            .template
            .resource_meta
            .as_ref()
            .and_then(|m| m.common_annotations.clone())
            .unwrap_or_default()
    }

    /// The image, upstream's default with every part the spec sets overriding it.
    pub fn image(&self) -> Image {
        let mut image = Image {
            registry: Some(DEFAULT_REGISTRY.into()),
            repository: Some(DEFAULT_REPOSITORY.into()),
            name: Some(DEFAULT_IMAGE_NAME.into()),
            tag: Some(DEFAULT_TAG.into()),
            pull_policy: None,
            pull_secret_ref: None,
        };
        if let Some(o) = &self.reaper.spec.template.container_image {
            let set = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
            if let Some(v) = set(&o.registry) {
                image.registry = Some(v);
            }
            if let Some(v) = set(&o.repository) {
                image.repository = Some(v);
            }
            if let Some(v) = set(&o.name) {
                image.name = Some(v);
            }
            if let Some(v) = set(&o.tag) {
                image.tag = Some(v);
            }
            image.pull_policy = set(&o.pull_policy);
            image.pull_secret_ref = o.pull_secret_ref.clone();
        }
        image
    }

    /// Adaptive and incremental flags of automatic scheduling; `AUTO` means adaptive on
    /// Cassandra 3.x (or an unknown version) and incremental on 4.0 and later.
    fn adaptive_incremental(&self, repair_type: RepairType) -> (bool, bool) {
        match repair_type {
            RepairType::Regular => (false, false),
            RepairType::Adaptive => (true, false),
            RepairType::Incremental => (false, true),
            RepairType::Auto => {
                let major = self
                    .dc
                    .and_then(|dc| dc.spec.server_version.split('.').next())
                    .and_then(|m| m.parse::<u32>().ok());
                match major {
                    Some(m) if m >= 4 => (false, true),
                    _ => (true, false),
                }
            }
        }
    }

    /// The environment shared by the init and main containers, auth and
    /// `additionalEnvVars` included (the latter replace same-named variables).
    pub fn env(&self) -> Vec<Value> {
        let t = &self.reaper.spec.template;
        let storage = match self.storage() {
            StorageType::Cassandra => "cassandra",
            StorageType::Local => "memory",
        };
        let availability = match self
            .reaper
            .spec
            .datacenter_availability
            .unwrap_or(DatacenterAvailability::All)
        {
            DatacenterAvailability::All => "ALL",
            DatacenterAvailability::Each => "EACH",
            DatacenterAvailability::Local => "LOCAL",
        };
        let mut out = vec![
            env("REAPER_STORAGE_TYPE", storage),
            env("REAPER_ENABLE_DYNAMIC_SEED_LIST", "false"),
            env("REAPER_DATACENTER_AVAILABILITY", availability),
        ];
        if let Some(dc) = self.dc {
            out.push(env("REAPER_CASS_LOCAL_DC", dc.datacenter_name()));
        }
        out.push(env("REAPER_CASS_KEYSPACE", t.keyspace()));
        if let Some(dc) = self.dc {
            out.push(env(
                "REAPER_CASS_CONTACT_POINTS",
                format!(
                    "[{{\"host\": \"{}\", \"port\": 9042}}]",
                    datacenter_service_name(&dc.spec.cluster_name, dc.datacenter_name())
                ),
            ));
        }
        if let Some(a) = t
            .auto_scheduling
            .as_ref()
            .filter(|a| a.enabled == Some(true))
        {
            let (adaptive, incremental) =
                self.adaptive_incremental(a.repair_type.unwrap_or(RepairType::Auto));
            out.push(env("REAPER_AUTO_SCHEDULING_ENABLED", "true"));
            out.push(env("REAPER_AUTO_SCHEDULING_ADAPTIVE", adaptive.to_string()));
            out.push(env(
                "REAPER_AUTO_SCHEDULING_INCREMENTAL",
                incremental.to_string(),
            ));
            out.push(env(
                "REAPER_AUTO_SCHEDULING_PERCENT_UNREPAIRED_THRESHOLD",
                a.percent_unrepaired_threshold.unwrap_or(10).to_string(),
            ));
            let or = |v: &Option<String>, d: &str| v.clone().unwrap_or_else(|| d.to_string());
            out.push(env(
                "REAPER_AUTO_SCHEDULING_INITIAL_DELAY_PERIOD",
                or(&a.initial_delay, "PT15S"),
            ));
            out.push(env(
                "REAPER_AUTO_SCHEDULING_PERIOD_BETWEEN_POLLS",
                or(&a.period_between_polls, "PT10M"),
            ));
            out.push(env(
                "REAPER_AUTO_SCHEDULING_TIME_BEFORE_FIRST_SCHEDULE",
                or(&a.time_before_first_schedule, "PT5M"),
            ));
            out.push(env(
                "REAPER_AUTO_SCHEDULING_SCHEDULE_SPREAD_PERIOD",
                or(&a.schedule_spread_period, "PT6H"),
            ));
            if let Some(c) = &a.excluded_clusters {
                out.push(env(
                    "REAPER_AUTO_SCHEDULING_EXCLUDED_CLUSTERS",
                    format!("[{}]", c.join(", ")),
                ));
            }
            if let Some(k) = &a.excluded_keyspaces {
                out.push(env(
                    "REAPER_AUTO_SCHEDULING_EXCLUDED_KEYSPACES",
                    format!("[{}]", k.join(", ")),
                ));
            }
        }
        if t.skip_schema_migration == Some(true) {
            out.push(env("REAPER_SKIP_SCHEMA_MIGRATION", "true"));
        }
        let heap = t
            .heap_size
            .as_ref()
            .map(|q| q.0.clone())
            .unwrap_or_else(|| DEFAULT_HEAP_SIZE.to_string());
        if let Some(bytes) = quantity_bytes(&heap) {
            out.push(env("REAPER_HEAP_SIZE", bytes.to_string()));
        }
        let http = t.http_management.clone().unwrap_or_default();
        if http.enabled.unwrap_or(true) {
            out.push(env("REAPER_HTTP_MANAGEMENT_ENABLE", "true"));
            if http.keystores.is_some() {
                out.push(env(
                    "REAPER_HTTP_MANAGEMENT_KEYSTORE_PATH",
                    "/etc/encryption/mgmt/keystore.jks",
                ));
                out.push(env(
                    "REAPER_HTTP_MANAGEMENT_TRUSTSTORE_PATH",
                    "/etc/encryption/mgmt/truststore.jks",
                ));
            }
        }
        if let Some(e) = &t.encryption
            && e.server_cert_name.as_deref().is_some_and(|s| !s.is_empty())
        {
            out.push(env("REAPER_SERVER_TLS_ENABLE", "true"));
            out.push(env(
                "REAPER_SERVER_TLS_KEYSTORE_PATH",
                "/etc/encryption/server/keystore.jks",
            ));
            out.push(env(
                "REAPER_SERVER_TLS_TRUSTSTORE_PATH",
                "/etc/encryption/server/truststore.jks",
            ));
            if e.client_cert_name.as_deref().is_some_and(|s| !s.is_empty()) {
                out.push(env("REAPER_SERVER_TLS_CLIENT_AUTH", "true"));
            }
            out.push(env("REAPER_SERVER_TLS_DISABLE_SNI", "true"));
        }
        let named = |r: &Option<k8s_openapi::api::core::v1::LocalObjectReference>| {
            r.as_ref().map(|r| r.name.clone()).filter(|n| !n.is_empty())
        };
        if let Some(cql) = named(&t.cassandra_user_secret_ref) {
            out.push(env("REAPER_CASS_AUTH_ENABLED", "true"));
            out.push(secret_env("REAPER_CASS_AUTH_USERNAME", &cql, "username"));
            out.push(secret_env("REAPER_CASS_AUTH_PASSWORD", &cql, "password"));
            // JMX authenticates with the same CQL role (the JMX Secret is deprecated).
            out.push(secret_env("REAPER_JMX_AUTH_USERNAME", &cql, "username"));
            out.push(secret_env("REAPER_JMX_AUTH_PASSWORD", &cql, "password"));
        }
        match named(&t.ui_user_secret_ref) {
            Some(ui) => {
                out.push(env("REAPER_AUTH_ENABLED", "true"));
                out.push(secret_env("REAPER_AUTH_USER", &ui, "username"));
                out.push(secret_env("REAPER_AUTH_PASSWORD", &ui, "password"));
            }
            None => out.push(env("REAPER_AUTH_ENABLED", "false")),
        }
        for extra in t.additional_env_vars.iter().flatten() {
            let Ok(v) = serde_json::to_value(extra) else {
                continue;
            };
            match out.iter_mut().find(|e| e["name"] == v["name"]) {
                Some(slot) => *slot = v,
                None => out.push(v),
            }
        }
        out
    }

    fn volumes(&self) -> (Vec<Value>, Vec<Value>) {
        let t = &self.reaper.spec.template;
        let mut volumes = vec![
            json!({"name": "conf", "emptyDir": {}}),
            json!({"name": "temp-dir", "emptyDir": {}}),
        ];
        let mut mounts = vec![
            json!({"name": "conf", "mountPath": "/etc/cassandra-reaper/config"}),
            json!({"name": "temp-dir", "mountPath": "/tmp"}),
        ];
        let http = t.http_management.clone().unwrap_or_default();
        if http.enabled.unwrap_or(true)
            && let Some(k) = http.keystores.filter(|k| !k.name.is_empty())
        {
            volumes
                .push(json!({"name": "management-api-keystore", "secret": {"secretName": k.name}}));
            mounts.push(
                json!({"name": "management-api-keystore", "mountPath": "/etc/encryption/mgmt"}),
            );
        }
        if self.storage() == StorageType::Local {
            // The volume itself comes from the claim template of the same name.
            mounts.push(json!({"name": DATA_VOLUME, "mountPath": DATA_PATH}));
            volumes.push(json!({"name": "db-temp-dir", "emptyDir": {}}));
            mounts.push(json!({"name": "db-temp-dir", "mountPath": "/var/tmp/cassandra-reaper"}));
        }
        if let Some(s) = t
            .encryption
            .as_ref()
            .and_then(|e| e.server_cert_name.clone())
            .filter(|s| !s.is_empty())
        {
            volumes.push(json!({"name": "server-tls-keystore", "secret": {"secretName": s}}));
            mounts.push(
                json!({"name": "server-tls-keystore", "mountPath": "/etc/encryption/server"}),
            );
        }
        (volumes, mounts)
    }

    /// A probe: the spec's timings (upstream's 45 s delay and 15 s period by default), always
    /// on `GET /healthcheck` of the admin port.
    fn probe(&self, template: &Option<k8s_openapi::api::core::v1::Probe>) -> Value {
        let mut p = match template {
            Some(t) => serde_json::to_value(t).unwrap_or_else(|_| json!({})),
            None => json!({"initialDelaySeconds": 45, "periodSeconds": 15}),
        };
        if let Some(o) = p.as_object_mut() {
            for handler in ["exec", "tcpSocket", "grpc"] {
                o.remove(handler);
            }
        }
        p["httpGet"] = json!({"path": "/healthcheck", "port": 8081});
        p
    }

    fn pod_template(&self) -> Value {
        let t = &self.reaper.spec.template;
        let image = self.image();
        let reference = image.reference();
        let pull = image.effective_pull_policy().to_string();
        let env = self.env();
        let (volumes, mounts) = self.volumes();
        let main_resources = t
            .resources
            .as_ref()
            .and_then(|r| serde_json::to_value(r).ok())
            .unwrap_or_else(|| {
                json!({"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "3Gi"}})
            });
        let container_sc = t
            .security_context
            .as_ref()
            .and_then(|s| serde_json::to_value(s).ok())
            .unwrap_or_else(|| {
                json!({
                    "runAsNonRoot": true, "runAsUser": 1000, "runAsGroup": 1000,
                    "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["ALL"]},
                })
            });
        let pod_sc = t
            .pod_security_context
            .as_ref()
            .and_then(|s| serde_json::to_value(s).ok())
            .unwrap_or_else(|| json!({"runAsNonRoot": true, "fsGroup": 1000}));
        let mut main_env = env.clone();
        // The init container migrates the schema; the main container never does.
        main_env.retain(|e| e["name"] != "REAPER_SKIP_SCHEMA_MIGRATION");
        main_env.push(json!({"name": "REAPER_SKIP_SCHEMA_MIGRATION", "value": "true"}));
        let ports: Vec<Value> = PORTS
            .iter()
            .map(|(n, p)| json!({"name": n, "containerPort": p, "protocol": "TCP"}))
            .collect();
        let main = json!({
            "name": CONTAINER,
            "image": reference,
            "imagePullPolicy": pull,
            "securityContext": container_sc,
            "ports": ports,
            "readinessProbe": self.probe(&t.readiness_probe),
            "livenessProbe": self.probe(&t.liveness_probe),
            "env": main_env,
            "volumeMounts": mounts,
            "resources": main_resources,
        });
        let mut spec = json!({
            "containers": [main],
            "securityContext": pod_sc,
            "volumes": volumes,
            "serviceAccountName": t.service_account_name.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| "default".into()),
        });
        if t.skip_schema_migration != Some(true) {
            let init_resources = t
                .init_container_resources
                .as_ref()
                .and_then(|r| serde_json::to_value(r).ok())
                .unwrap_or_else(|| {
                    json!({"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}})
                });
            let init_sc = t
                .init_container_security_context
                .as_ref()
                .and_then(|s| serde_json::to_value(s).ok())
                .unwrap_or_else(|| {
                    json!({
                        "runAsNonRoot": true, "runAsUser": 1000,
                        "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
                        "capabilities": {"drop": ["ALL"]},
                    })
                });
            spec["initContainers"] = json!([{
                "name": INIT_CONTAINER,
                "image": reference,
                "imagePullPolicy": pull,
                "securityContext": init_sc,
                "env": env,
                "args": ["schema-migration"],
                "volumeMounts": mounts,
                "resources": init_resources,
            }]);
        }
        if let Some(a) = &t.affinity {
            spec["affinity"] = serde_json::to_value(a).unwrap_or(Value::Null);
        }
        if let Some(tol) = t.tolerations.as_ref().filter(|t| !t.is_empty()) {
            spec["tolerations"] = serde_json::to_value(tol).unwrap_or(Value::Null);
        }
        if let Some(s) = image.pull_secret_ref.filter(|s| !s.name.is_empty()) {
            spec["imagePullSecrets"] = json!([{"name": s.name}]);
        }
        crate::telemetry::decorate_pod(self, &mut spec);
        let pods = t.resource_meta.as_ref().and_then(|m| m.pods.clone());
        let mut labels = self.object_labels();
        labels.extend(
            pods.as_ref()
                .and_then(|p| p.labels.clone())
                .unwrap_or_default(),
        );
        // The selector's labels win over user pod labels.
        labels.extend(self.constant_labels());
        let mut annotations = self.common_annotations();
        annotations.extend(pods.and_then(|p| p.annotations).unwrap_or_default());
        let mut metadata = json!({"labels": labels});
        if !annotations.is_empty() {
            metadata["annotations"] = json!(annotations);
        }
        json!({"metadata": metadata, "spec": spec})
    }

    fn selector(&self) -> Value {
        json!({"matchExpressions": [
            {"key": MANAGED_BY_LABEL, "operator": "In", "values": [NAME_LABEL_VALUE]},
            {"key": REAPER_LABEL, "operator": "In", "values": [self.name()]},
        ]})
    }

    pub(crate) fn metadata(&self, name: &str, labels: BTreeMap<String, String>) -> Value {
        let mut m = json!({"name": name, "namespace": self.namespace(), "labels": labels});
        let a = self.common_annotations();
        if !a.is_empty() {
            m["annotations"] = json!(a);
        }
        m
    }

    /// The workload: a Deployment (`cassandra` storage) or a one-replica StatefulSet with the
    /// claim template `reaper-data` (`local` storage). The claim is kept when the StatefulSet
    /// goes or shrinks (upstream deletes it): the operator deletes no data the spec did not ask
    /// it to.
    pub fn workload(&self) -> Value {
        let meta = self.metadata(self.name(), self.object_labels());
        match self.storage() {
            StorageType::Cassandra => json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": meta,
                "spec": {
                    "replicas": 1,
                    "selector": self.selector(),
                    "template": self.pod_template(),
                },
            }),
            StorageType::Local => {
                let claim_spec = self
                    .reaper
                    .spec
                    .template
                    .storage_config
                    .as_ref()
                    .and_then(|c| serde_json::to_value(c).ok())
                    .unwrap_or_else(|| json!({}));
                json!({
                    "apiVersion": "apps/v1",
                    "kind": "StatefulSet",
                    "metadata": meta,
                    "spec": {
                        "replicas": 1,
                        "serviceName": service_name(self.name()),
                        "selector": self.selector(),
                        "template": self.pod_template(),
                        "volumeClaimTemplates": [{
                            "metadata": {"name": DATA_VOLUME, "labels": self.object_labels()},
                            "spec": claim_spec,
                        }],
                        "persistentVolumeClaimRetentionPolicy": {
                            "whenDeleted": "Retain",
                            "whenScaled": "Retain",
                        },
                    },
                })
            }
        }
    }

    /// The Service `<reaper>-service`: ports `app` 8080 and `admin` 8081.
    pub fn service(&self) -> Value {
        let mut labels = self.object_labels();
        let svc = self
            .reaper
            .spec
            .template
            .resource_meta
            .as_ref()
            .and_then(|m| m.service.clone());
        labels.extend(
            svc.as_ref()
                .and_then(|s| s.labels.clone())
                .unwrap_or_default(),
        );
        let mut meta = self.metadata(&service_name(self.name()), labels);
        if let Some(a) = svc.and_then(|s| s.annotations).filter(|a| !a.is_empty()) {
            let mut all = self.common_annotations();
            all.extend(a);
            meta["annotations"] = json!(all);
        }
        let ports: Vec<Value> = PORTS
            .iter()
            .map(|(n, p)| json!({"name": n, "port": p, "protocol": "TCP", "targetPort": n}))
            .collect();
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {
                "type": "ClusterIP",
                "ports": ports,
                "selector": self.constant_labels(),
            },
        })
    }
}
