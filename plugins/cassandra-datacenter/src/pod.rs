//! The pod template of a rack's StatefulSet, field for field what cass-operator renders for
//! the same CassandraDatacenter (its `buildPodTemplateSpec`, plus what its StatefulSet
//! constructor adds: node selector and management-API TLS). Where we differ on purpose,
//! docs/compatibility.md says so and why.
//!
//! Built on `serde_json::Value` because most of it is a merge with the user's
//! `podTemplateSpec`: user entries win and come first, the built-in containers, volumes,
//! mounts, env vars and ports are completed by name. The same spec always renders the same
//! bytes, so an unchanged plan causes no writes and the template hash is stable.

use std::collections::BTreeMap;

use k8ssandra_api::cassandra::ServerType;
use k8ssandra_api::labels::{CLUSTER_LABEL, DATACENTER_LABEL, RACK_LABEL, RESTARTED_AT_ANNOTATION};
use serde_json::{Map, Value, json};

use crate::TEMPLATE_HASH_ANNOTATION;
use crate::config::{config_file_data_text, major_minor};
use crate::images::{self, DEFAULT_PULL_POLICY};
use crate::model::{Dc, RackPlan};
use crate::objects::{common_annotations, common_labels, to_value};
use crate::util::{canonical_json, canonicalize_resources, fnv_hex};

pub const CASSANDRA_CONTAINER: &str = "cassandra";
pub const LOGGER_CONTAINER: &str = "server-system-logger";
pub const CONFIG_CONTAINER: &str = "server-config-init";
/// Copies the server image's own configuration directory for the k8ssandra-client builder
/// (and, for DSE with a read-only root filesystem, for the legacy builder).
pub const BASE_CONFIG_CONTAINER: &str = "server-config-init-base";
pub const DATA_VOLUME: &str = "server-data";
/// Forces the k8ssandra-client config builder for versions that would use the legacy one.
pub const USE_NEW_CONFIG_BUILDER_ANNOTATION: &str = "cassandra.datastax.com/use-new-config-builder";
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";
const DEFAULT_MGMT_API_PORT: i64 = 8080;
const TLS_VOLUME: &str = "management-api-server-certs-volume";
const TLS_DIR: &str = "/management-api-certs";

/// `(major, minor, patch)`; missing parts count as 0.
fn version_triple(version: &str) -> Option<(u32, u32, u32)> {
    let (major, minor) = major_minor(version)?;
    let patch = version
        .split('.')
        .nth(2)
        .map(|p| {
            p.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    Some((major, minor, patch))
}

fn cassandra_4_1_or_newer(dc: &Dc) -> bool {
    dc.server_type() == ServerType::Cassandra
        && version_triple(&dc.obj.spec.server_version).is_some_and(|v| v >= (4, 1, 0))
}

/// Whether the configuration is rendered by k8ssandra-client's `config build` (Cassandra
/// 4.1 and newer, HCD, or the `use-new-config-builder` annotation) rather than by the
/// legacy cass-config-builder (Cassandra 3.11/4.0 and DSE, 6.9 included).
pub fn uses_client_builder(dc: &Dc) -> bool {
    dc.annotation_true(USE_NEW_CONFIG_BUILDER_ANNOTATION)
        || dc.server_type() == ServerType::Hcd
        || cassandra_4_1_or_newer(dc)
}

/// `spec.readOnlyRootFilesystem`, else on for the images known to support it (Cassandra
/// 4.1+, DSE 6.8/6.9, HCD) unless `spec.serverImage` names an image of unknown abilities.
pub fn read_only_root_fs(dc: &Dc) -> bool {
    let spec = &dc.obj.spec;
    if let Some(v) = spec.read_only_root_filesystem {
        return v;
    }
    if spec.server_image.as_deref().is_some_and(|s| !s.is_empty()) {
        return false;
    }
    match dc.server_type() {
        ServerType::Cassandra => cassandra_4_1_or_newer(dc),
        ServerType::Hcd => true,
        ServerType::Dse => {
            spec.server_version.starts_with("6.8") || spec.server_version.starts_with("6.9")
        }
    }
}

fn field_env(name: &str, path: &str) -> Value {
    json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}})
}

fn env(name: &str, value: &str) -> Value {
    json!({"name": name, "value": value})
}

fn mount(name: &str, path: &str) -> Value {
    json!({"name": name, "mountPath": path})
}

fn empty_dir(name: &str) -> Value {
    json!({"name": name, "emptyDir": {}})
}

/// Entries of `overrides` first, then the `defaults` whose `name` they don't override.
fn combine_by_name(defaults: Vec<Value>, overrides: Option<&Value>) -> Vec<Value> {
    let mut out: Vec<Value> = overrides
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for d in defaults {
        if !out.iter().any(|o| o.get("name") == d.get("name")) {
            out.push(d);
        }
    }
    out
}

fn is_empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Object(m)) => m.values().all(|v| is_empty(Some(v))),
        _ => false,
    }
}

fn array(v: Option<&Value>) -> Vec<Value> {
    v.and_then(Value::as_array).cloned().unwrap_or_default()
}

fn position(list: &[Value], name: &str) -> Option<usize> {
    list.iter()
        .position(|c| c.get("name") == Some(&json!(name)))
}

/// `securityContext` as upstream puts it on its own containers and on every init
/// container: present (possibly empty), and locked down when the root filesystem is
/// read-only.
fn security_context(ro: bool, c: &mut Value) {
    let mut sc = match c.get("securityContext") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    if ro {
        sc.insert("readOnlyRootFilesystem".into(), json!(true));
        sc.insert("allowPrivilegeEscalation".into(), json!(false));
    }
    c["securityContext"] = Value::Object(sc);
}

/// Mounts of the additional volumes that are not claims (claims come from the
/// volumeClaimTemplates and are mounted by every container through `all_additional_mounts`).
fn sourced_additional_mounts(dc: &Dc) -> Vec<Value> {
    dc.obj
        .spec
        .storage_config
        .additional_volumes
        .iter()
        .flatten()
        .filter(|v| v.volume_source.is_some())
        .map(|v| mount(&v.name, &v.mount_path))
        .collect()
}

fn all_additional_mounts(dc: &Dc) -> Vec<Value> {
    dc.obj
        .spec
        .storage_config
        .additional_volumes
        .iter()
        .flatten()
        .map(|v| mount(&v.name, &v.mount_path))
        .collect()
}

/// The management API's port: the `mgmt-api-http` port the user gave the `cassandra`
/// container, else 8080.
fn mgmt_api_port(user_containers: &[Value]) -> i64 {
    user_containers
        .iter()
        .filter(|c| c.get("name") == Some(&json!(CASSANDRA_CONTAINER)))
        .flat_map(|c| array(c.get("ports")))
        .find(|p| p.get("name") == Some(&json!("mgmt-api-http")))
        .and_then(|p| p.get("containerPort").and_then(Value::as_i64))
        .unwrap_or(DEFAULT_MGMT_API_PORT)
}

/// Secret of the management API's server certificate, when `managementApiAuth.manual`.
fn tls_secret(dc: &Dc) -> Option<&str> {
    dc.obj
        .spec
        .management_api_auth
        .as_ref()
        .and_then(|a| a.manual.as_ref())
        .map(|m| m.server_secret_name.as_str())
}

/// `curl` against the local management API, as the probes and the preStop hook run it.
fn curl(method: &str, tls: bool, timeout: i64, port: i64, path: &str) -> Value {
    let mut cmd = vec![json!("curl"), json!("-X"), json!(method), json!("-s")];
    if tls {
        for a in [
            "-k",
            "--cert",
            "/management-api-certs/tls.crt",
            "--key",
            "/management-api-certs/tls.key",
            "--cacert",
            "/management-api-certs/ca.crt",
        ] {
            cmd.push(json!(a));
        }
    }
    let scheme = if tls { "https" } else { "http" };
    for a in [
        "-m".to_string(),
        timeout.to_string(),
        "-o".into(),
        "/dev/null".into(),
        "--show-error".into(),
        "--fail".into(),
        format!("{scheme}://localhost:{port}{path}"),
    ] {
        cmd.push(json!(a));
    }
    json!({ "command": cmd })
}

fn http_probe(port: i64, path: &str, initial: i32, period: i32, timeout: i32) -> Value {
    json!({
        "httpGet": {"path": path, "port": port},
        "initialDelaySeconds": initial,
        "periodSeconds": period,
        "timeoutSeconds": timeout,
    })
}

/// Container ports of the server: the common ones, Thrift where the server has it, DSE's
/// internode messaging, and the ports of the enabled DSE workloads.
fn container_ports(dc: &Dc) -> Vec<Value> {
    let spec = &dc.obj.spec;
    let mut ports = vec![
        ("native", 9042),
        ("tls-native", 9142),
        ("internode", 7000),
        ("tls-internode", 7001),
        ("jmx", 7199),
        ("mgmt-api-http", DEFAULT_MGMT_API_PORT),
        ("prometheus", 9103),
        ("metrics", 9000),
    ];
    let dse = dc.server_type() == ServerType::Dse;
    if spec.server_version.starts_with("3.") || dse {
        ports.push(("thrift", 9160));
    }
    if dse {
        ports.push(("internode-msg", 8609));
    }
    if let Some(w) = &spec.dse_workloads {
        if w.analytics_enabled == Some(true) {
            ports.extend([
                ("spark-app-4040", 4040),
                ("spark-app-4041", 4041),
                ("spark-app-4042", 4042),
                ("spark-app-4043", 4043),
                ("spark-app-4044", 4044),
                ("spark-app-4045", 4045),
                ("spark-app-4046", 4046),
                ("spark-app-4047", 4047),
                ("spark-app-4048", 4048),
                ("spark-app-4049", 4049),
                ("spark-app-4050", 4050),
                ("dsefs-public", 5598),
                ("dsefs-internode", 5599),
                ("spark-internode", 7077),
                ("spark-master", 7080),
                ("spark-worker", 7081),
                ("jobserver", 8090),
                ("always-on-sql", 9077),
                ("jobserver-jmx", 9999),
                ("sql-thrift", 10000),
                ("spark-history", 18080),
            ]);
        }
        if w.graph_enabled == Some(true) {
            ports.push(("gremlin", 8182));
        }
        if w.search_enabled == Some(true) {
            ports.push(("solr", 8983));
        }
    }
    ports
        .into_iter()
        .map(|(n, p)| json!({"name": n, "containerPort": p}))
        .collect()
}

/// `JVM_EXTRA_OPTS` of the enabled DSE workloads, spelled exactly as upstream (each flag but
/// the last one followed by a space).
fn jvm_extra_opts(w: &k8ssandra_api::cassandra::DseWorkloads) -> String {
    let mut s = String::new();
    if w.analytics_enabled == Some(true) {
        s.push_str("-Dspark-trackers=true ");
    }
    if w.graph_enabled == Some(true) {
        s.push_str("-Dgraph-enabled=true ");
    }
    if w.search_enabled == Some(true) {
        s.push_str("-Dsearch-service=true");
    }
    s
}

fn cassandra_container(dc: &Dc, c: &mut Value, port: i64, encryption_mount: bool) {
    let spec = &dc.obj.spec;
    let ro = read_only_root_fs(dc);
    if is_empty(c.get("image")) {
        c["image"] = json!(images::server_image(dc));
        c["imagePullPolicy"] = json!(DEFAULT_PULL_POLICY);
    }
    if is_empty(c.get("resources"))
        && let Some(r) = &spec.resources
    {
        c["resources"] = to_value(r);
    }
    if c.get("livenessProbe").is_none_or(Value::is_null) {
        c["livenessProbe"] = http_probe(port, "/api/v0/probes/liveness", 15, 15, 10);
    }
    if c.get("readinessProbe").is_none_or(Value::is_null) {
        c["readinessProbe"] = http_probe(port, "/api/v0/probes/readiness", 20, 10, 10);
    }
    if c.pointer("/lifecycle/preStop").is_none_or(Value::is_null) {
        // Drain first so the node flushes and its peers see it leave cleanly; no time limit
        // (`-m 0`): the grace period bounds it.
        let mut lc = match c.get("lifecycle") {
            Some(Value::Object(m)) => Value::Object(m.clone()),
            _ => json!({}),
        };
        lc["preStop"] = json!({"exec": curl(
            "POST",
            tls_secret(dc).is_some(),
            0,
            port,
            "/api/v0/ops/node/drain",
        )});
        c["lifecycle"] = lc;
    }
    security_context(ro, c);

    let mut envs = vec![
        field_env("POD_NAME", "metadata.name"),
        field_env("NODE_NAME", "spec.nodeName"),
        env("DS_LICENSE", "accept"),
        env("USE_MGMT_API", "true"),
        env("MGMT_API_NO_KEEP_ALIVE", "true"),
        // Cassandra stays down until the operator calls lifecycle/start: this is what lets
        // the policy order the starts.
        env("MGMT_API_EXPLICIT_START", "true"),
        env("MGMT_API_LISTEN_TCP_PORT", &port.to_string()),
    ];
    match dc.server_type() {
        ServerType::Dse => {
            envs.push(env("DSE_AUTO_CONF_OFF", "all"));
            envs.push(env("DSE_MGMT_EXPLICIT_START", "true"));
            if let Some(w) = &spec.dse_workloads {
                envs.push(env("JVM_EXTRA_OPTS", &jvm_extra_opts(w)));
            }
        }
        ServerType::Hcd => envs.push(env("HCD_AUTO_CONF_OFF", "all")),
        ServerType::Cassandra => {}
    }
    if ro {
        // The metrics collector writes into the image; the read-only root forbids it.
        envs.push(env("MGMT_API_DISABLE_MCAC", "true"));
    }
    c["env"] = Value::Array(combine_by_name(envs, c.get("env")));
    c["ports"] = Value::Array(combine_by_name(container_ports(dc), c.get("ports")));

    // Mounts, in upstream's order: the additional volumes, the user's, the writable
    // directories of a read-only root, then logs, data and the rendered configuration.
    let mut defaults = vec![mount("server-config", "/config")];
    defaults.extend(sourced_additional_mounts(dc));
    let mut base = combine_by_name(
        defaults,
        Some(&json!([
            mount("server-logs", "/var/log/cassandra"),
            mount(DATA_VOLUME, "/var/lib/cassandra"),
        ])),
    );
    if encryption_mount {
        base.push(mount("encryption-cred-storage", "/etc/encryption/"));
    }
    let mut own = array(c.get("volumeMounts"));
    let mut add = |m: Value| {
        if !own.iter().any(|o| o.get("name") == m.get("name")) {
            own.push(m);
        }
    };
    add(mount("tmp", "/tmp"));
    if ro {
        match dc.server_type() {
            ServerType::Hcd => add(mount("etc-cassandra", "/opt/hcd/resources/cassandra/conf")),
            ServerType::Dse => {
                add(mount("etc-cassandra", "/opt/dse/resources/cassandra/conf"));
                add(mount("dse-conf", "/opt/dse/resources/dse/conf"));
                if !uses_client_builder(dc) {
                    add(mount("spark-conf", "/opt/dse/resources/spark/conf"));
                    add(mount(
                        "collectd-conf",
                        "/opt/dse/resources/dse/collectd/etc/collectd",
                    ));
                }
            }
            ServerType::Cassandra => add(mount("etc-cassandra", "/etc/cassandra")),
        }
    }
    let merged = combine_by_name(base, Some(&Value::Array(own)));
    c["volumeMounts"] = Value::Array(combine_by_name(
        merged,
        Some(&Value::Array(all_additional_mounts(dc))),
    ));
}

fn logger_container(dc: &Dc, c: &mut Value) {
    let spec = &dc.obj.spec;
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
    c["env"] = Value::Array(combine_by_name(envs, c.get("env")));
    if is_empty(c.get("image")) {
        c["image"] = json!(images::system_logger_image(dc));
        c["imagePullPolicy"] = json!(DEFAULT_PULL_POLICY);
    }
    let defaults = combine_by_name(
        vec![
            mount("server-logs", "/var/log/cassandra"),
            mount("vector-lib", "/var/lib/vector"),
        ],
        Some(&Value::Array(all_additional_mounts(dc))),
    );
    c["volumeMounts"] = Value::Array(combine_by_name(defaults, c.get("volumeMounts")));
    c["resources"] = spec.system_logger_resources.as_ref().map_or_else(
        || json!({"limits": {"memory": "128M"}, "requests": {"cpu": "100m", "memory": "64M"}}),
        to_value,
    );
    security_context(read_only_root_fs(dc), c);
}

/// The init containers: the user's, with `server-config-init-base` (when it is needed) just
/// before `server-config-init`, which renders the configuration into `/config`.
fn init_containers(dc: &Dc, rack: &RackPlan, user: Option<&Value>) -> Vec<Value> {
    let spec = &dc.obj.spec;
    let client = uses_client_builder(dc);
    let ro = read_only_root_fs(dc);
    let dse = dc.server_type() == ServerType::Dse;
    let mut inits = array(user);
    let cfg_at = position(&inits, CONFIG_CONTAINER);
    let base_at = position(&inits, BASE_CONFIG_CONTAINER);
    let mut cfg = cfg_at.map_or_else(|| json!({"name": CONFIG_CONTAINER}), |i| inits[i].clone());
    let mut base = base_at.map_or_else(
        || json!({"name": BASE_CONFIG_CONTAINER}),
        |i| inits[i].clone(),
    );

    if is_empty(cfg.get("image")) {
        if client {
            cfg["image"] = json!(images::DEFAULT_CLIENT_IMAGE);
            cfg["args"] = json!(["config", "build"]);
        } else {
            cfg["image"] = json!(images::config_builder_image(dc));
        }
        cfg["imagePullPolicy"] = json!(DEFAULT_PULL_POLICY);
    }
    let mut config_mounts = vec![mount("server-config", "/config")];
    config_mounts.extend(sourced_additional_mounts(dc));
    let base_mount = mount("server-config-base", "/cassandra-base-config");
    if client {
        config_mounts.push(base_mount.clone());
        if is_empty(base.get("image")) {
            base["image"] = json!(images::server_image(dc));
            base["imagePullPolicy"] = json!(DEFAULT_PULL_POLICY);
            base["command"] = json!(["/bin/sh"]);
            let conf = match dc.server_type() {
                ServerType::Cassandra => "/etc/cassandra",
                ServerType::Dse => "/opt/dse/resources/cassandra/conf",
                ServerType::Hcd => "/opt/hcd/resources/cassandra/conf",
            };
            base["args"] = json!(["-c", format!("cp -rf {conf}/* /cassandra-base-config/")]);
        }
        base["volumeMounts"] = json!([base_mount]);
    } else if ro && dse {
        // The legacy builder only writes the files it renders; with a read-only root the
        // rest of DSE's configuration must already be in /config.
        if is_empty(base.get("image")) {
            base["image"] = json!(images::server_image(dc));
            base["imagePullPolicy"] = json!(DEFAULT_PULL_POLICY);
            base["command"] = json!(["/bin/sh"]);
            base["args"] = json!(["-c", "cp -rf /opt/dse/resources/cassandra/conf/* /config/"]);
        }
        base["volumeMounts"] = Value::Array(combine_by_name(
            config_mounts.clone(),
            base.get("volumeMounts"),
        ));
    }
    cfg["volumeMounts"] = Value::Array(combine_by_name(config_mounts, cfg.get("volumeMounts")));
    cfg["resources"] = spec.config_builder_resources.as_ref().map_or_else(
        || json!({"limits": {"cpu": "1", "memory": "384M"}, "requests": {"cpu": "1", "memory": "256M"}}),
        to_value,
    );
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
        field_env("POD_NAME", "metadata.name"),
    ];
    match spec.config_secret.as_deref().filter(|s| !s.is_empty()) {
        // The Secret's JSON is used as is: the user owns the whole document then.
        Some(secret) => envs.push(json!({"name": "CONFIG_FILE_DATA", "valueFrom": {
            "secretKeyRef": {"name": secret, "key": "config"}}})),
        None => envs.push(env("CONFIG_FILE_DATA", &config_file_data_text(dc))),
    }
    cfg["env"] = Value::Array(combine_by_name(envs, cfg.get("env")));

    if let Some(i) = cfg_at {
        inits[i] = cfg.clone();
    }
    if let Some(i) = base_at {
        inits[i] = base.clone();
    } else if client {
        match cfg_at {
            Some(i) => inits.insert(i, base),
            None => inits.push(base),
        }
    } else if ro && dse {
        inits.insert(0, base);
    }
    if cfg_at.is_none() {
        inits.push(cfg);
    }
    for c in &mut inits {
        security_context(ro, c);
    }
    inits
}

/// Volumes: the user's first, then the built-in ones they don't override by name, without
/// the claim-backed additional volumes (those come from the volumeClaimTemplates).
fn volumes(dc: &Dc, user: Option<&Value>) -> Vec<Value> {
    let spec = &dc.obj.spec;
    let mut vols = vec![
        empty_dir("server-config"),
        empty_dir("server-logs"),
        empty_dir("tmp"),
    ];
    let client = uses_client_builder(dc);
    if read_only_root_fs(dc) {
        vols.push(empty_dir("etc-cassandra"));
        if dc.server_type() == ServerType::Dse {
            vols.push(empty_dir("dse-conf"));
            if !client {
                vols.push(empty_dir("spark-conf"));
                vols.push(empty_dir("collectd-conf"));
            }
        }
    }
    if client {
        vols.push(empty_dir("server-config-base"));
    }
    if spec.disable_system_logger_sidecar != Some(true) {
        vols.push(empty_dir("vector-lib"));
    }
    let additional: Vec<_> = spec
        .storage_config
        .additional_volumes
        .iter()
        .flatten()
        .collect();
    for v in &additional {
        if let Some(src) = &v.volume_source {
            let mut obj = Map::new();
            obj.insert("name".into(), json!(v.name));
            obj.extend(src.0.clone());
            vols.push(Value::Object(obj));
        }
    }
    combine_by_name(vols, user)
        .into_iter()
        .filter(|vol| {
            !additional
                .iter()
                .any(|a| a.volume_source.is_none() && vol.get("name") == Some(&json!(a.name)))
        })
        .collect()
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
    if let Some(pa) = rack_aff.as_ref().and_then(|r| r.get("podAffinity"))
        && !obj.contains_key("podAffinity")
    {
        obj.insert("podAffinity".into(), pa.clone());
    }
    (!obj.is_empty()).then_some(aff)
}

/// Management-API TLS (`managementApiAuth.manual`): the server certificate mounted into
/// every container, the management API told where it is, and probes that speak mutual TLS
/// (an HTTP probe cannot present a client certificate).
fn add_tls(pod: &mut Value, secret: &str, port: i64) {
    let mut vols = array(pod.get("volumes"));
    vols.push(json!({"name": TLS_VOLUME, "secret": {"secretName": secret}}));
    pod["volumes"] = Value::Array(vols);
    let Some(containers) = pod.get_mut("containers").and_then(Value::as_array_mut) else {
        return;
    };
    for c in containers.iter_mut() {
        let mut mounts = array(c.get("volumeMounts"));
        mounts.push(json!({"name": TLS_VOLUME, "readOnly": true, "mountPath": TLS_DIR}));
        c["volumeMounts"] = Value::Array(mounts);
        if c.get("name") != Some(&json!(CASSANDRA_CONTAINER)) {
            continue;
        }
        let mut envs = vec![
            env("MGMT_API_TLS_CA_CERT_FILE", "/management-api-certs/ca.crt"),
            env("MGMT_API_TLS_CERT_FILE", "/management-api-certs/tls.crt"),
            env("MGMT_API_TLS_KEY_FILE", "/management-api-certs/tls.key"),
        ];
        envs.extend(array(c.get("env")));
        c["env"] = Value::Array(envs);
        for (probe, path) in [
            ("livenessProbe", "/api/v0/probes/liveness"),
            ("readinessProbe", "/api/v0/probes/readiness"),
        ] {
            let mut p = match c.get(probe) {
                Some(Value::Object(m)) => m.clone(),
                _ => Map::new(),
            };
            let timeout = p
                .get("timeoutSeconds")
                .and_then(Value::as_i64)
                .filter(|t| *t >= 1)
                .unwrap_or(10);
            for handler in ["httpGet", "tcpSocket", "grpc"] {
                p.remove(handler);
            }
            p.insert("exec".into(), curl("GET", true, timeout, port, path));
            c[probe] = Value::Object(p);
        }
    }
}

/// The pod template of a rack, without any seed label, with its hash annotation.
pub fn pod_template(dc: &Dc, rack: &RackPlan) -> Value {
    let spec = &dc.obj.spec;
    let user = spec
        .pod_template_spec
        .as_ref()
        .map(to_value)
        .unwrap_or_else(|| json!({}));
    let mut meta = user.get("metadata").cloned().unwrap_or_else(|| json!({}));
    if !meta.is_object() {
        meta = json!({});
    }
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
    labels.insert(
        "app.kubernetes.io/version".into(),
        json!(spec.server_version),
    );
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
    if pod
        .get("terminationGracePeriodSeconds")
        .is_none_or(Value::is_null)
    {
        pod["terminationGracePeriodSeconds"] = json!(120);
    }
    if pod.get("securityContext").is_none_or(Value::is_null) {
        pod["securityContext"] =
            json!({"runAsUser": 999, "runAsGroup": 999, "fsGroup": 999, "runAsNonRoot": true});
    }
    match affinity(dc, rack, pod.get("affinity")) {
        Some(a) => pod["affinity"] = a,
        None => {
            pod.as_object_mut().map(|p| p.remove("affinity"));
        }
    }
    // The datacenter's tolerations replace the template's, as upstream.
    match &spec.tolerations {
        Some(t) => pod["tolerations"] = to_value(t),
        None => {
            pod.as_object_mut().map(|p| p.remove("tolerations"));
        }
    }

    pod["volumes"] = Value::Array(volumes(dc, pod.get("volumes")));
    let encryption_mount = array(pod.get("volumes"))
        .iter()
        .any(|v| v.get("name") == Some(&json!("encryption-cred-storage")));
    pod["initContainers"] = Value::Array(init_containers(dc, rack, pod.get("initContainers")));

    let mut containers = array(pod.get("containers"));
    let port = mgmt_api_port(&containers);
    match position(&containers, CASSANDRA_CONTAINER) {
        Some(i) => cassandra_container(dc, &mut containers[i], port, encryption_mount),
        None => {
            let mut c = json!({ "name": CASSANDRA_CONTAINER });
            cassandra_container(dc, &mut c, port, encryption_mount);
            containers.push(c);
        }
    }
    let logger_at = position(&containers, LOGGER_CONTAINER);
    match logger_at {
        Some(i) => logger_container(dc, &mut containers[i]),
        None if spec.disable_system_logger_sidecar != Some(true) => {
            let mut c = json!({ "name": LOGGER_CONTAINER });
            logger_container(dc, &mut c);
            containers.push(c);
        }
        None => {}
    }
    pod["containers"] = Value::Array(containers);

    // The datacenter's node selector replaces the template's, as upstream.
    if let Some(ns) = spec.node_selector.as_ref().filter(|n| !n.is_empty()) {
        pod["nodeSelector"] = to_value(ns);
    }
    if let Some(secret) = tls_secret(dc) {
        add_tls(&mut pod, secret, port);
    }

    let mut template = json!({ "metadata": meta, "spec": pod });
    canonicalize_resources(&mut template);
    // The hash covers everything that should restart a pod when it changes. A seed label
    // added to the template afterwards is not part of it: it only decides what the next
    // *created* pod is, and must not make running pods look outdated.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_number() {
        assert_eq!(version_triple("4.1.0"), Some((4, 1, 0)));
        assert_eq!(version_triple("4.0.17"), Some((4, 0, 17)));
        assert!(version_triple("4.10.0") > version_triple("4.9.9"));
    }

    #[test]
    fn drain_hook_spells_curl_like_upstream() {
        let c = curl("POST", false, 0, 8080, "/api/v0/ops/node/drain");
        assert_eq!(
            c["command"],
            json!([
                "curl",
                "-X",
                "POST",
                "-s",
                "-m",
                "0",
                "-o",
                "/dev/null",
                "--show-error",
                "--fail",
                "http://localhost:8080/api/v0/ops/node/drain"
            ])
        );
    }
}
