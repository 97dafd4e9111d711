//! Medusa in the Cassandra pods (`spec.medusa`), before a datacenter's first StatefulSet:
//!
//! - the CQL role Medusa logs in with: Secret `<kc>-medusa` (unless `cassandraUserSecretRef`
//!   names one, or secrets are external), generated once and copied to the datacenters'
//!   clusters by the ReplicatedSecret that copies the superuser Secret (same labels), and
//!   added to every datacenter's `users` as a superuser;
//! - ConfigMap `<kc>-medusa` (key `medusa.ini`) in each datacenter's cluster and namespace;
//! - in the datacenter's pod template: the `medusa` container, the `medusa-restore` init
//!   container (after `server-config-init`) and the volumes they mount.
//!
//! A referenced MedusaConfiguration (control plane, the cluster's namespace) gives the
//! storage settings the cluster's own `storageProperties` override field by field.
//!
//! Bad settings refuse the datacenter (the Valid condition names the field): the running
//! datacenter is kept as it is and the live ConfigMaps are re-applied unchanged.
//!
//! After a datacenter is Ready (and not stopped): the MedusaBackupSchedule
//! `<kc>-<dc>-medusa-purge` beside it (purge daily at midnight UTC, as KO), unless
//! `purgeBackups: false`. The `medusa-backup-schedule` policy turns it into a purge
//! MedusaTask each night. Without `spec.medusa` or with `purgeBackups: false` the plan no
//! longer lists it and the host prunes it; a datacenter that later rolls or stops keeps it.

use std::collections::BTreeSet;

use k8ssandra_api::k8ssandra::K8ssandraCluster;
use k8ssandra_api::labels::{
    CLEANED_UP_BY_LABEL, K8SSANDRA_CLUSTER_NAME_LABEL, K8SSANDRA_CLUSTER_NAMESPACE_LABEL,
    K8SSANDRA_DATACENTER_LABEL,
};
use k8ssandra_api::medusa::{
    BACKUP_SIDECAR_NAME, BACKUP_SIDECAR_PORT, CredentialsType, MedusaClusterTemplate,
    MedusaConfiguration, Storage, StorageProvider, restore_config_map_name,
};
use k8ssandra_api::names::cleanup_for_kubernetes;
use k8ssandra_policy_sdk::{EventType, GeneratedSecret, PolicyError, Snapshot};
use serde_json::{Map, Value, json};

use crate::cluster::Ctx;

pub const CONFIGURATION_API_VERSION: &str = "medusa.k8ssandra.io/v1alpha1";
pub const CONFIGURATION_KIND: &str = "MedusaConfiguration";
pub const SCHEDULE_KIND: &str = "MedusaBackupSchedule";
/// KO's purge schedule: every day at midnight (UTC).
pub const PURGE_CRON: &str = "0 0 * * *";

/// Key of the `<kc>-medusa` ConfigMap holding the module that makes Medusa's restore
/// entry point restore only the keyspaces and tables a MedusaRestoreJob names. The volume
/// puts it at `/etc/medusa/sitecustomize.py` in both Medusa containers, where it does
/// nothing until a restore's ConfigMap puts `/etc/medusa` on `PYTHONPATH` and names them:
/// no template change, so a datacenter does not roll for it.
pub const SITECUSTOMIZE_KEY: &str = "sitecustomize.py";
pub const SITECUSTOMIZE: &str = include_str!("medusa_sitecustomize.py");

/// Name of the `medusa-restore` init container.
pub const RESTORE_CONTAINER: &str = "medusa-restore";
/// The init container cass-operator renders the configuration with; Medusa's restore runs
/// after it, so a placeholder keeps that order when the user lists no init containers.
const CONFIG_INIT_CONTAINER: &str = "server-config-init";

/// Default image (KO's image config): `docker.io/k8ssandra/medusa:0.29.1`.
const DEFAULT_REGISTRY: &str = "docker.io";
const DEFAULT_REPOSITORY: &str = "k8ssandra";
const DEFAULT_NAME: &str = "medusa";
const DEFAULT_TAG: &str = "0.29.1";

/// DC annotation with a non-default gRPC port (KO's name).
pub const GRPC_PORT_ANNOTATION: &str = "medusa.k8ssandra.io/grpc-port";
/// DC annotation naming the gRPC client certificate Secret (KO's name).
pub const GRPC_CLIENT_SECRET_ANNOTATION: &str = "medusa.k8ssandra.io/grpc-client-secret-name";

const SECRETS_PATH: &str = "/etc/medusa-secrets";
const GRPC_CERTS_PATH: &str = "/etc/certificates/grpc-server-certs";

/// `<kc>-medusa`: the ConfigMap, its volume, and the generated CQL Secret.
pub fn resource_name(kc_name: &str) -> String {
    format!("{}-medusa", cleanup_for_kubernetes(kc_name))
}

/// The CQL Secret Medusa logs in with: `cassandraUserSecretRef`, else `<kc>-medusa`.
fn user_secret(t: &MedusaClusterTemplate, kc_name: &str) -> String {
    t.cassandra_user_secret_ref
        .as_ref()
        .map(|r| r.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| resource_name(kc_name))
}

/// `spec.medusa` with the referenced MedusaConfiguration's storage settings merged under the
/// cluster's own, validated. None without `spec.medusa`; Err names the offending field.
pub fn effective(
    s: &Snapshot,
    kc: &K8ssandraCluster,
) -> Result<Option<MedusaClusterTemplate>, String> {
    let Some(mut t) = kc.spec.medusa.clone() else {
        return Ok(None);
    };
    if let Some(name) = t.configuration_name().map(str::to_string) {
        let ns = kc.metadata.namespace.clone().unwrap_or_default();
        let config = s
            .related
            .iter()
            .filter(|o| o.cluster.is_empty() && o.kind().as_deref() == Some(CONFIGURATION_KIND))
            .filter_map(|o| serde_json::from_str::<MedusaConfiguration>(&o.json).ok())
            .find(|c| {
                c.metadata.name.as_deref() == Some(name.as_str())
                    && c.metadata.namespace.as_deref().unwrap_or_default() == ns
            })
            .ok_or_else(|| {
                format!(
                    "spec.medusa.medusaConfigurationRef.name: MedusaConfiguration {name:?} not found in namespace {ns:?}"
                )
            })?;
        let mut merged = serde_json::to_value(config.spec.storage_properties.unwrap_or_default())
            .map_err(|e| format!("MedusaConfiguration {name:?}: {e}"))?;
        let own = serde_json::to_value(t.storage_properties.clone().unwrap_or_default())
            .map_err(|e| format!("spec.medusa.storageProperties: {e}"))?;
        crate::dc::deep_merge(&mut merged, &own);
        t.storage_properties = Some(serde_json::from_value(merged).map_err(|e| {
            format!("spec.medusa.storageProperties merged with MedusaConfiguration {name:?}: {e}")
        })?);
    }
    validate(&t)?;
    Ok(Some(t))
}

/// A line break in a value would start a new key in medusa.ini.
fn one_line(field: &str, v: Option<&str>) -> Result<(), String> {
    match v {
        Some(v) if v.contains(['\n', '\r']) => Err(format!(
            "spec.medusa.storageProperties.{field}: must be a single line"
        )),
        _ => Ok(()),
    }
}

fn validate(t: &MedusaClusterTemplate) -> Result<(), String> {
    let st = t.storage_properties.clone().unwrap_or_default();
    let f = |n: &str| format!("spec.medusa.storageProperties.{n}");
    if st.storage_provider.is_none() {
        return Err(format!(
            "{}: required (google_storage, azure_blobs, s3, s3_compatible, s3_rgw or ibm_storage), in the cluster or its MedusaConfiguration",
            f("storageProvider")
        ));
    }
    if st.bucket_name.as_deref().is_none_or(str::is_empty) {
        return Err(format!(
            "{}: required, in the cluster or its MedusaConfiguration",
            f("bucketName")
        ));
    }
    for (name, v) in [
        ("bucketName", st.bucket_name.as_deref()),
        ("prefix", st.prefix.as_deref()),
        ("region", st.region.as_deref()),
        ("host", st.host.as_deref()),
        ("apiProfile", st.api_profile.as_deref()),
        ("transferMaxBandwidth", st.transfer_max_bandwidth.as_deref()),
    ] {
        one_line(name, v)?;
    }
    if let Some(p) = st.port
        && !(1..=65535).contains(&p)
    {
        return Err(format!("{}: {p} is not a port (1-65535)", f("port")));
    }
    for (name, v) in [
        ("maxBackupAge", st.max_backup_age),
        ("maxBackupCount", st.max_backup_count),
        ("concurrentTransfers", st.concurrent_transfers),
        ("backupGracePeriodInDays", st.backup_grace_period_in_days),
    ] {
        if let Some(v) = v
            && v < 0
        {
            return Err(format!("{}: {v} must not be negative", f(name)));
        }
    }
    if let Some(v) = st.multi_part_upload_threshold
        && v < 0
    {
        return Err(format!(
            "{}: {v} must not be negative",
            f("multiPartUploadThreshold")
        ));
    }
    if let Some(bw) = st
        .transfer_max_bandwidth
        .as_deref()
        .filter(|b| !b.is_empty())
        && !bandwidth_ok(bw)
    {
        return Err(format!(
            "{}: {bw:?} must be a rate such as 50MB/s (digits, an optional K, M or G, then B/s)",
            f("transferMaxBandwidth")
        ));
    }
    if st.credentials_type == Some(CredentialsType::CredentialBased)
        && storage_secret(&st).is_none()
    {
        return Err(format!(
            "{}: required with credentialsType credential-based",
            f("storageSecretRef")
        ));
    }
    if let Some(p) = grpc_port_of(t)
        && !(1..=65535).contains(&p)
    {
        return Err(format!(
            "spec.medusa.serviceProperties.grpcPort: {p} is not a port (1-65535)"
        ));
    }
    for (name, probe) in [
        ("readinessProbe", &t.readiness_probe),
        ("livenessProbe", &t.liveness_probe),
    ] {
        let Some(p) = probe else { continue };
        if p.exec.is_some() || p.http_get.is_some() || p.tcp_socket.is_some() || p.grpc.is_some() {
            return Err(format!(
                "spec.medusa.{name}: the probe's handler is the operator's (grpc_health_probe); only its timings may be set"
            ));
        }
    }
    Ok(())
}

fn bandwidth_ok(bw: &str) -> bool {
    let Some(num_unit) = bw.strip_suffix("B/s") else {
        return false;
    };
    let digits = num_unit.trim_end_matches(['K', 'M', 'G', 'k', 'm', 'g']);
    num_unit.len() - digits.len() <= 1
        && !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
}

fn storage_secret(st: &Storage) -> Option<String> {
    st.storage_secret_ref
        .as_ref()
        .map(|r| r.name.clone())
        .filter(|n| !n.is_empty())
}

fn grpc_port_of(t: &MedusaClusterTemplate) -> Option<i32> {
    t.service_properties
        .as_ref()
        .and_then(|s| s.grpc_port)
        .filter(|p| *p != 0)
}

fn grpc_port(t: &MedusaClusterTemplate) -> i32 {
    grpc_port_of(t).unwrap_or(BACKUP_SIDECAR_PORT)
}

fn grpc_tls(t: &MedusaClusterTemplate) -> bool {
    t.service_properties
        .as_ref()
        .is_some_and(|s| s.encryption.is_some())
}

fn provider_name(p: StorageProvider) -> String {
    serde_json::to_value(p)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// Management-API client certificates Secret of a datacenter with `managementApiAuth.manual`.
fn mgmt_tls_secret(dc: &Value) -> Option<String> {
    dc.pointer("/spec/managementApiAuth/manual/clientSecretName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// `medusa.ini` for one datacenter (keys and sections as KO's template).
pub fn medusa_ini(t: &MedusaClusterTemplate, kc_name: &str, dc: &Value) -> String {
    let st = t.storage_properties.clone().unwrap_or_default();
    let mut out = String::from("[cassandra]\nuse_sudo = false\n");
    if t.certificates_secret_ref
        .as_ref()
        .is_some_and(|r| !r.name.is_empty())
    {
        out.push_str("certfile = /etc/certificates/rootca.crt\n");
        out.push_str("usercert = /etc/certificates/client.crt_signed\n");
        out.push_str("userkey = /etc/certificates/client.key\n");
    } else if let Some(s) = &t.client_encryption_stores {
        let key = |k: &Option<String>| k.clone().unwrap_or_default();
        out.push_str(&format!(
            "certfile = /etc/certificates/certfile/{}\n",
            key(&s.keystore_secret_ref.key)
        ));
        out.push_str(&format!(
            "usercert = /etc/certificates/usercert/{}\n",
            key(&s.truststore_secret_ref.key)
        ));
        if let Some(p) = &s.truststore_password_secret_ref {
            out.push_str(&format!(
                "userkey = /etc/certificates/userkey/{}\n",
                key(&p.key)
            ));
        }
    }
    out.push_str("\n[storage]\nuse_sudo_for_restore = false\n");
    let provider = st.storage_provider.map(provider_name).unwrap_or_default();
    out.push_str(&format!("storage_provider = {provider}\n"));
    out.push_str(&format!(
        "bucket_name = {}\n",
        st.bucket_name.as_deref().unwrap_or_default()
    ));
    if storage_secret(&st).is_some() {
        out.push_str(&format!("key_file = {SECRETS_PATH}/credentials\n"));
    }
    let prefix = st
        .prefix
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| kc_name.to_string());
    out.push_str(&format!("prefix = {prefix}\n"));
    out.push_str(&format!(
        "max_backup_age = {}\n",
        st.max_backup_age.unwrap_or(0)
    ));
    out.push_str(&format!(
        "max_backup_count = {}\n",
        st.max_backup_count.unwrap_or(0)
    ));
    let text = |k: &str, v: &Option<String>, out: &mut String| {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            out.push_str(&format!("{k} = {v}\n"));
        }
    };
    text("region", &st.region, &mut out);
    text("host", &st.host, &mut out);
    if let Some(p) = st.port.filter(|p| *p != 0) {
        out.push_str(&format!("port = {p}\n"));
    }
    out.push_str(&format!(
        "secure = {}\n",
        py_bool(st.secure.unwrap_or(false))
    ));
    out.push_str(&format!(
        "ssl_verify = {}\n",
        py_bool(st.ssl_verify.unwrap_or(false))
    ));
    if let Some(d) = st.backup_grace_period_in_days.filter(|d| *d != 0) {
        out.push_str(&format!("backup_grace_period_in_days = {d}\n"));
    }
    text("api_profile", &st.api_profile, &mut out);
    text(
        "transfer_max_bandwidth",
        &st.transfer_max_bandwidth,
        &mut out,
    );
    // Medusa refuses 0 concurrent transfers; KO writes 1 then.
    let concurrent = st.concurrent_transfers.filter(|c| *c != 0).unwrap_or(1);
    out.push_str(&format!("concurrent_transfers = {concurrent}\n"));
    if let Some(m) = st.multi_part_upload_threshold.filter(|m| *m != 0) {
        out.push_str(&format!("multi_part_upload_threshold = {m}\n"));
    }
    out.push_str("\n[grpc]\nenabled = 1\n");
    if let Some(p) = grpc_port_of(t) {
        out.push_str(&format!("port = {p}\n"));
    }
    if grpc_tls(t) {
        out.push_str(&format!("ca_cert = {GRPC_CERTS_PATH}/ca.crt\n"));
        out.push_str(&format!("tls_cert = {GRPC_CERTS_PATH}/tls.crt\n"));
        out.push_str(&format!("tls_key = {GRPC_CERTS_PATH}/tls.key\n"));
    }
    out.push_str("\n[logging]\nlevel = DEBUG\n");
    out.push_str("\n[kubernetes]\nuse_mgmt_api = 1\nenabled = 1\n");
    if mgmt_tls_secret(dc).is_some() {
        out.push_str("cassandra_url = https://127.0.0.1:8080/api/v0/ops/node/snapshots\n");
        out.push_str("ca_cert = /etc/encryption/mgmt/ca.crt\n");
        out.push_str("tls_cert = /etc/encryption/mgmt/tls.crt\n");
        out.push_str("tls_key = /etc/encryption/mgmt/tls.key\n");
    } else {
        out.push_str("cassandra_url = http://127.0.0.1:8080/api/v0/ops/node/snapshots\n");
    }
    out
}

fn image(t: &MedusaClusterTemplate) -> (String, String) {
    let mut img = k8ssandra_api::images::Image {
        registry: Some(DEFAULT_REGISTRY.into()),
        repository: Some(DEFAULT_REPOSITORY.into()),
        name: Some(DEFAULT_NAME.into()),
        tag: Some(DEFAULT_TAG.into()),
        pull_policy: None,
        pull_secret_ref: None,
    };
    if let Some(o) = &t.container_image {
        let set = |dst: &mut Option<String>, src: &Option<String>| {
            if let Some(v) = src.as_ref().filter(|v| !v.is_empty()) {
                *dst = Some(v.clone());
            }
        };
        set(&mut img.registry, &o.registry);
        set(&mut img.repository, &o.repository);
        set(&mut img.name, &o.name);
        set(&mut img.tag, &o.tag);
        set(&mut img.pull_policy, &o.pull_policy);
    }
    (img.reference(), img.effective_pull_policy().to_string())
}

fn env(t: &MedusaClusterTemplate, kc: &K8ssandraCluster, kc_name: &str, mode: &str) -> Value {
    let mut env = vec![
        json!({"name": "MEDUSA_MODE", "value": mode}),
        json!({"name": "MEDUSA_TMP_DIR", "value": "/var/lib/cassandra"}),
        json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
    ];
    if !kc.use_external_secrets() {
        let secret = user_secret(t, kc_name);
        for (name, key) in [("CQL_USERNAME", "username"), ("CQL_PASSWORD", "password")] {
            env.push(json!({"name": name, "valueFrom": {
                "secretKeyRef": {"name": secret, "key": key}}}));
        }
    }
    Value::Array(env)
}

fn mounts(t: &MedusaClusterTemplate, kc_name: &str, dc: &Value) -> Value {
    let m = |name: &str, path: &str| json!({"name": name, "mountPath": path});
    let mut out = vec![
        m("server-config", "/etc/cassandra"),
        m("server-data", "/var/lib/cassandra"),
        m(&resource_name(kc_name), "/etc/medusa"),
        m("podinfo", "/etc/podinfo"),
        m("medusa-tmp", "/tmp"),
    ];
    if t.certificates_secret_ref
        .as_ref()
        .is_some_and(|r| !r.name.is_empty())
    {
        out.push(m("certificates", "/etc/certificates"));
    } else if t.client_encryption_stores.is_some() {
        out.push(m("certfile", "/etc/certificates/certfile"));
        out.push(m("usercert", "/etc/certificates/usercert"));
        out.push(m("userkey", "/etc/certificates/userkey"));
    }
    if server_cert_secret(t).is_some() {
        out.push(m("grpc-server-certs", GRPC_CERTS_PATH));
    }
    if let Some(s) = t.storage_properties.as_ref().and_then(storage_secret) {
        out.push(m(&s, SECRETS_PATH));
    }
    if mgmt_tls_secret(dc).is_some() {
        out.push(m("mgmt-encryption", "/etc/encryption/mgmt"));
    }
    Value::Array(out)
}

fn server_cert_secret(t: &MedusaClusterTemplate) -> Option<String> {
    t.service_properties
        .as_ref()
        .and_then(|s| s.encryption.as_ref())
        .map(|e| e.server_secret_name.clone())
        .filter(|n| !n.is_empty())
}

/// KO's probe: `grpc_health_probe` on the gRPC port, 10/1/10/1/10, with the user's timings.
fn probe(t: &MedusaClusterTemplate, user: &Option<k8s_openapi::api::core::v1::Probe>) -> Value {
    let mut command = vec![
        "/bin/grpc_health_probe".to_string(),
        format!("--addr=:{}", grpc_port(t)),
    ];
    if grpc_tls(t) {
        command.extend([
            "--tls".to_string(),
            format!("--tls-ca-cert={GRPC_CERTS_PATH}/ca.crt"),
            format!("--tls-client-cert={GRPC_CERTS_PATH}/tls.crt"),
            format!("--tls-client-key={GRPC_CERTS_PATH}/tls.key"),
        ]);
    }
    let mut p = json!({
        "exec": {"command": command},
        "initialDelaySeconds": 10,
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 10,
    });
    if let Some(u) = user {
        for (k, v) in [
            ("initialDelaySeconds", u.initial_delay_seconds),
            ("timeoutSeconds", u.timeout_seconds),
            ("periodSeconds", u.period_seconds),
            ("successThreshold", u.success_threshold),
            ("failureThreshold", u.failure_threshold),
        ] {
            if let Some(v) = v.filter(|v| *v != 0) {
                p[k] = json!(v);
            }
        }
        if let Some(g) = u.termination_grace_period_seconds {
            p["terminationGracePeriodSeconds"] = json!(g);
        }
    }
    p
}

fn resources(r: &Option<k8s_openapi::api::core::v1::ResourceRequirements>) -> Value {
    match r {
        Some(r) => serde_json::to_value(r).unwrap_or_else(|_| json!({})),
        None => {
            json!({"requests": {"cpu": "100m", "memory": "100Mi"}, "limits": {"memory": "8Gi"}})
        }
    }
}

fn secret_volume(name: &str, secret: &str) -> Value {
    json!({"name": name, "secret": {"secretName": secret}})
}

fn volumes(t: &MedusaClusterTemplate, kc_name: &str, dc: &Value) -> Vec<Value> {
    let cm = resource_name(kc_name);
    let mut out = vec![json!({"name": cm, "configMap": {"name": cm}})];
    if let Some(s) = t.storage_properties.as_ref().and_then(storage_secret) {
        out.push(secret_volume(&s, &s));
    }
    out.push(json!({"name": "podinfo", "downwardAPI": {"items": [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}));
    if let Some(r) = t
        .certificates_secret_ref
        .as_ref()
        .filter(|r| !r.name.is_empty())
    {
        out.push(secret_volume("certificates", &r.name));
    } else if let Some(s) = &t.client_encryption_stores {
        let name = |n: &Option<String>| n.clone().unwrap_or_default();
        out.push(secret_volume(
            "certfile",
            &name(&s.keystore_secret_ref.name),
        ));
        out.push(secret_volume(
            "usercert",
            &name(&s.truststore_secret_ref.name),
        ));
        if let Some(p) = &s.truststore_password_secret_ref {
            out.push(secret_volume("userkey", &name(&p.name)));
        }
    }
    if let Some(s) = mgmt_tls_secret(dc) {
        out.push(secret_volume("mgmt-encryption", &s));
    }
    out.push(json!({"name": "medusa-tmp", "emptyDir": {}}));
    if let Some(s) = server_cert_secret(t) {
        out.push(secret_volume("grpc-server-certs", &s));
    }
    out
}

fn array_mut<'a>(obj: &'a mut Map<String, Value>, key: &str) -> &'a mut Vec<Value> {
    let v = obj.entry(key).or_insert_with(|| json!([]));
    if !v.is_array() {
        *v = json!([]);
    }
    match v {
        Value::Array(a) => a,
        _ => unreachable!("replaced by an array above"),
    }
}

fn named<'a>(list: &'a mut [Value], name: &str) -> Option<&'a mut Value> {
    list.iter_mut()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
}

/// The desired CassandraDatacenter with Medusa: its role among the `users`, the containers
/// and volumes in `podTemplateSpec`, KO's annotations. Err names a bad field.
pub fn with_medusa(s: &Snapshot, kc: &K8ssandraCluster, mut dc: Value) -> Result<Value, String> {
    let Some(t) = effective(s, kc)? else {
        return Ok(dc);
    };
    let kc_name = kc.metadata.name.clone().unwrap_or_default();
    let (img, pull) = image(&t);
    let snapshot_dc = dc.clone();
    let mounts = mounts(&t, &kc_name, &snapshot_dc);
    let main = json!({
        "name": BACKUP_SIDECAR_NAME,
        "image": img,
        "imagePullPolicy": pull,
        "env": env(&t, kc, &kc_name, "GRPC"),
        "ports": [{"name": "grpc", "containerPort": grpc_port(&t), "protocol": "TCP"}],
        "readinessProbe": probe(&t, &t.readiness_probe),
        "livenessProbe": probe(&t, &t.liveness_probe),
        "volumeMounts": mounts,
        "resources": resources(&t.resources),
    });
    let with_sc = |mut c: Value| {
        if let Some(sc) = &t.security_context {
            c["securityContext"] = serde_json::to_value(sc).unwrap_or_default();
        }
        c
    };
    let main = with_sc(main);

    let Some(spec) = dc.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(dc);
    };
    let template = spec
        .entry("podTemplateSpec")
        .or_insert_with(|| json!({"spec": {}}));
    if !template.get("spec").is_some_and(Value::is_object) {
        template["spec"] = json!({});
    }
    let Some(pod) = template.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(dc);
    };
    // KO replaces a user's `medusa` container with its own.
    let containers = array_mut(pod, "containers");
    match named(containers, BACKUP_SIDECAR_NAME) {
        Some(c) => *c = main,
        None => containers.push(main),
    }
    // A user's `medusa-restore` keeps its other fields; image, env, mounts, resources and
    // security context are the operator's.
    let inits = array_mut(pod, "initContainers");
    // A restore's parameters come from the ConfigMap a running MedusaRestoreJob owns, never
    // from the template: once the job ends the ConfigMap goes, and a later change or
    // scale-up neither rolls the datacenter again nor restores a new node (KO #1058).
    let restore_env_from = json!([{"configMapRef": {
        "name": restore_config_map_name(snapshot_dc["metadata"]["name"].as_str().unwrap_or_default()),
        "optional": true,
    }}]);
    let restore_fields = [
        ("image", json!(img)),
        ("imagePullPolicy", json!(pull)),
        ("env", env(&t, kc, &kc_name, "RESTORE")),
        ("envFrom", restore_env_from),
        ("volumeMounts", mounts.clone()),
        ("resources", resources(&t.init_container_resources)),
    ];
    let fill = |c: &mut Value| {
        for (k, v) in restore_fields.iter().cloned() {
            c[k] = v;
        }
        match &t.security_context {
            Some(sc) => c["securityContext"] = serde_json::to_value(sc).unwrap_or_default(),
            None => {
                c.as_object_mut().map(|o| o.remove("securityContext"));
            }
        }
    };
    match named(inits, RESTORE_CONTAINER) {
        Some(c) => fill(c),
        None => {
            if named(inits, CONFIG_INIT_CONTAINER).is_none() {
                inits.push(json!({"name": CONFIG_INIT_CONTAINER}));
            }
            let mut c = json!({"name": RESTORE_CONTAINER});
            fill(&mut c);
            inits.push(c);
        }
    }
    if let Some(secret) = t
        .container_image
        .as_ref()
        .and_then(|i| i.pull_secret_ref.as_ref())
        .map(|r| r.name.clone())
        .filter(|n| !n.is_empty())
    {
        let pull = array_mut(pod, "imagePullSecrets");
        if !pull.iter().any(|p| p["name"] == secret.as_str()) {
            pull.push(json!({"name": secret}));
        }
    }
    let vols = array_mut(pod, "volumes");
    for v in volumes(&t, &kc_name, &snapshot_dc) {
        let name = v.get("name").and_then(Value::as_str).unwrap_or_default();
        match named(vols, name) {
            Some(old) => *old = v,
            None => vols.push(v),
        }
    }

    if !kc.use_external_secrets() {
        let secret = user_secret(&t, &kc_name);
        let users = array_mut(spec, "users");
        if !users.iter().any(|u| u["secretName"] == secret.as_str()) {
            users.push(json!({"secretName": secret, "superuser": true}));
        }
    }

    let mut annotations = Vec::new();
    if let Some(p) = grpc_port_of(&t) {
        annotations.push((GRPC_PORT_ANNOTATION, p.to_string()));
    }
    if let Some(c) = t
        .service_properties
        .as_ref()
        .and_then(|s| s.encryption.as_ref())
        .map(|e| e.client_secret_name.clone())
        .filter(|n| !n.is_empty())
    {
        annotations.push((GRPC_CLIENT_SECRET_ANNOTATION, c));
    }
    for (k, v) in annotations {
        dc["metadata"]["annotations"][k] = json!(v);
    }
    Ok(dc)
}

/// Labels of the Secrets the cluster's ReplicatedSecret copies; the same as the superuser
/// Secret's, so one ReplicatedSecret carries them all.
fn replicated(cx: &Ctx) -> Vec<(String, String)> {
    crate::reaper::replicated_labels(cx)
}

/// The generated CQL Secret and the ConfigMaps of `spec.medusa`.
pub fn run(cx: &mut Ctx) -> Result<(), PolicyError> {
    let t = match effective(cx.s, &cx.kc) {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(()),
        Err(_) => {
            // Already reported by the datacenters (Valid=False); keep what runs.
            keep_live_config_maps(cx)?;
            keep_live_schedules(cx)?;
            return Ok(());
        }
    };
    let generate = !cx.kc.use_external_secrets()
        && t.cassandra_user_secret_ref
            .as_ref()
            .is_none_or(|r| r.name.is_empty());
    if generate {
        let name = resource_name(&cx.name);
        let labels = replicated(cx);
        cx.plan.secrets.push(GeneratedSecret {
            cluster: String::new(),
            namespace: cx.namespace.clone(),
            name: name.clone(),
            fixed: vec![("username".into(), name)],
            random_keys: vec!["password".into()],
            labels,
        });
    }
    let mut done = BTreeSet::new();
    let dcs = cx.dcs.clone();
    for st in &dcs {
        let Some(obj) = &st.object else { continue };
        // Two datacenters in one namespace share the ConfigMap, as in KO.
        if !done.insert((st.context.clone(), st.namespace.clone())) {
            continue;
        }
        let cm = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": resource_name(&cx.name),
                "namespace": st.namespace,
                "labels": {
                    K8SSANDRA_CLUSTER_NAME_LABEL: cx.name,
                    K8SSANDRA_CLUSTER_NAMESPACE_LABEL: cx.namespace,
                },
            },
            "data": {
                "medusa.ini": medusa_ini(&t, &cx.name, obj),
                SITECUSTOMIZE_KEY: SITECUSTOMIZE,
            },
        });
        cx.plan.apply(&st.context, &cm)?;
    }
    purge_schedules(cx, &t)
}

/// `<kc>-<dc>-medusa-purge`: the purge schedule of one datacenter (KO's name).
pub fn purge_schedule_name(cluster: &str, dc: &str) -> String {
    cleanup_for_kubernetes(&format!("{cluster}-{dc}-medusa-purge"))
}

/// The live purge schedules this cluster made, with their Kubernetes cluster.
fn live_schedules(cx: &Ctx) -> Vec<(String, Value)> {
    cx.s.children
        .iter()
        .filter(|o| o.kind().as_deref() == Some(SCHEDULE_KIND))
        .filter_map(|o| Some((o.cluster.clone(), o.value().ok()?)))
        .collect()
}

/// One purge MedusaBackupSchedule per datacenter once it is Ready and running; kept while
/// it rolls or stops later, so its `lastExecution` survives.
fn purge_schedules(cx: &mut Ctx, t: &MedusaClusterTemplate) -> Result<(), PolicyError> {
    if t.purge_backups == Some(false) {
        return Ok(());
    }
    let live = live_schedules(cx);
    let dcs = cx.dcs.clone();
    // Nothing is decided in a cluster without a view of it (the host prunes nothing there).
    for st in dcs.iter().filter(|d| d.reachable && d.exists) {
        let name = purge_schedule_name(&cx.cluster_name, &st.cass_name);
        let existing = live.iter().any(|(c, v)| {
            c == &st.context
                && v.pointer("/metadata/namespace").and_then(Value::as_str)
                    == Some(st.namespace.as_str())
                && v.pointer("/metadata/name").and_then(Value::as_str) == Some(name.as_str())
        });
        let may_create = st.ready && !st.stopped;
        if !existing && !may_create {
            continue;
        }
        if !existing {
            cx.plan.event(
                EventType::Normal,
                "CreatingMedusaPurgeSchedule",
                format!(
                    "creating MedusaBackupSchedule {name}: purge of datacenter {}'s expired backups daily ({PURGE_CRON})",
                    st.name
                ),
            );
        }
        let schedule = json!({
            "apiVersion": CONFIGURATION_API_VERSION,
            "kind": SCHEDULE_KIND,
            "metadata": {
                "name": name,
                "namespace": st.namespace,
                "labels": {
                    CLEANED_UP_BY_LABEL: "k8ssandracluster-controller",
                    K8SSANDRA_CLUSTER_NAME_LABEL: cx.name,
                    K8SSANDRA_CLUSTER_NAMESPACE_LABEL: cx.namespace,
                    K8SSANDRA_DATACENTER_LABEL: st.name,
                },
            },
            "spec": {
                "cronSchedule": PURGE_CRON,
                "operationType": "purge",
                // The Medusa policies find the datacenter by its object name.
                "backupSpec": {"cassandraDatacenter": st.name},
            },
        });
        cx.plan.apply(&st.context, &schedule)?;
    }
    Ok(())
}

/// Re-applies the live purge schedules unchanged while the spec is refused.
fn keep_live_schedules(cx: &mut Ctx) -> Result<(), PolicyError> {
    for (ctx, v) in live_schedules(cx) {
        let keep = json!({
            "apiVersion": CONFIGURATION_API_VERSION,
            "kind": SCHEDULE_KIND,
            "metadata": {
                "name": v.pointer("/metadata/name"),
                "namespace": v.pointer("/metadata/namespace"),
                "labels": v.pointer("/metadata/labels").cloned().unwrap_or(json!({})),
            },
            "spec": v.get("spec").cloned().unwrap_or(json!({})),
        });
        cx.plan.apply(&ctx, &keep)?;
    }
    Ok(())
}

/// Re-applies the live Medusa ConfigMaps unchanged while the spec is refused.
fn keep_live_config_maps(cx: &mut Ctx) -> Result<(), PolicyError> {
    let name = resource_name(&cx.name);
    let live: Vec<(String, Value)> =
        cx.s.children
            .iter()
            .filter(|o| o.kind().as_deref() == Some("ConfigMap"))
            .filter_map(|o| Some((o.cluster.clone(), o.value().ok()?)))
            .filter(|(_, v)| v.pointer("/metadata/name").and_then(Value::as_str) == Some(&name))
            .collect();
    for (ctx, v) in live {
        let keep = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": v.pointer("/metadata/namespace"),
                "labels": v.pointer("/metadata/labels").cloned().unwrap_or(json!({})),
            },
            "data": v.get("data").cloned().unwrap_or(json!({})),
        });
        cx.plan.apply(&ctx, &keep)?;
    }
    Ok(())
}
