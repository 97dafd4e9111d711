//! One reconcile of a MedusaConfiguration: the conditions `SecretAvailable` and `Ready`.

use k8s_openapi::api::core::v1::Secret;
use k8ssandra_api::medusa::{
    CredentialsType, MEDUSA_CONFIGURATION_READY, MEDUSA_CONFIGURATION_SECRET_AVAILABLE,
    MEDUSA_STORAGE_SECRET_IDENTIFIER_LABEL, MedusaConfiguration, MedusaConfigurationStatus,
    Storage,
};
use k8ssandra_policy_sdk::conditions::{Cond, conditions, is};
use k8ssandra_policy_sdk::{EventType, Plan, PolicyError, Snapshot};

/// The key of the storage Secret Medusa reads as its `key_file`
/// (`/etc/medusa-secrets/credentials`), whatever the provider: an AWS credentials file for
/// the S3 family and IBM, a service-account JSON for Google, the account JSON for Azure.
pub const CREDENTIALS_KEY: &str = "credentials";

const FIELD: &str = "spec.storageProperties";

/// While the Secret is not right: the host does not watch a Secret read by name, so a fixed
/// one is noticed at the next look.
const RECHECK_MS: u64 = 30_000;

fn field(name: &str) -> String {
    format!("{FIELD}.{name}")
}

/// Values that can never work, as (field, rule): refused at admission and reported by
/// `Ready`. Missing settings are not among them: a K8ssandraCluster referencing the
/// configuration may give them.
pub fn refusals(c: &MedusaConfiguration) -> Vec<(String, String)> {
    let st = c.spec.storage_properties.clone().unwrap_or_default();
    let mut out = Vec::new();
    for (name, v) in [
        ("bucketName", st.bucket_name.as_deref()),
        ("prefix", st.prefix.as_deref()),
        ("region", st.region.as_deref()),
        ("host", st.host.as_deref()),
        ("apiProfile", st.api_profile.as_deref()),
        ("transferMaxBandwidth", st.transfer_max_bandwidth.as_deref()),
    ] {
        if v.is_some_and(|v| v.contains(['\n', '\r'])) {
            out.push((
                field(name),
                "must be a single line (it becomes a line of medusa.ini)".to_string(),
            ));
        }
    }
    if let Some(p) = st.port
        && !(0..=65535).contains(&p)
    {
        out.push((field("port"), format!("{p} is not a port (1-65535)")));
    }
    for (name, v) in [
        ("maxBackupAge", st.max_backup_age),
        ("maxBackupCount", st.max_backup_count),
        ("concurrentTransfers", st.concurrent_transfers),
        ("backupGracePeriodInDays", st.backup_grace_period_in_days),
    ] {
        if let Some(v) = v.filter(|v| *v < 0) {
            out.push((field(name), format!("{v} must not be negative")));
        }
    }
    if let Some(v) = st.multi_part_upload_threshold.filter(|v| *v < 0) {
        out.push((
            field("multiPartUploadThreshold"),
            format!("{v} must not be negative"),
        ));
    }
    if let Some(bw) = st
        .transfer_max_bandwidth
        .as_deref()
        .filter(|b| !b.is_empty() && !b.contains(['\n', '\r']))
        && !bandwidth_ok(bw)
    {
        out.push((
            field("transferMaxBandwidth"),
            format!(
                "{bw:?} must be a rate such as 50MB/s (digits, an optional K, M or G, then B/s)"
            ),
        ));
    }
    out
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

/// Settings without which Medusa cannot start, as (field, rule).
fn missing(st: &Storage) -> Option<(String, String)> {
    if st.storage_provider.is_none() {
        return Some((
            field("storageProvider"),
            "required (google_storage, azure_blobs, s3, s3_compatible, s3_rgw or ibm_storage)"
                .into(),
        ));
    }
    if st.bucket_name.as_deref().is_none_or(str::is_empty) {
        return Some((field("bucketName"), "required".into()));
    }
    None
}

fn secret_ref(st: &Storage) -> Option<String> {
    st.storage_secret_ref
        .as_ref()
        .map(|r| r.name.clone())
        .filter(|n| !n.is_empty())
}

/// The Secret `name` in `namespace`, as the snapshot shows it (keys only).
fn find_secret(s: &Snapshot, namespace: &str, name: &str) -> Option<Secret> {
    s.related_of::<Secret>()
        .into_iter()
        .map(|(_, sec)| sec)
        .find(|sec| {
            sec.metadata.name.as_deref() == Some(name)
                && sec.metadata.namespace.as_deref().unwrap_or_default() == namespace
        })
}

/// Upstream's value of the storage-Secret label: the first 8 hex digits of the SHA-256 of
/// the namespace followed by the name.
pub fn storage_secret_label(name: &str, namespace: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{namespace}{name}").as_bytes());
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// `SecretAvailable`: (status, reason, message).
fn secret_available(s: &Snapshot, namespace: &str, st: &Storage) -> (bool, &'static str, String) {
    let role_based = st.credentials_type == Some(CredentialsType::RoleBased);
    let Some(name) = secret_ref(st) else {
        return if role_based {
            (
                true,
                "NotRequired",
                format!(
                    "{}: role-based, the pods' cloud identity reaches the storage; no Secret is needed",
                    field("credentialsType")
                ),
            )
        } else {
            (
                false,
                "SecretRefMissing",
                format!(
                    "{}: required unless {} is role-based: Medusa reads its credentials file from that Secret's key {CREDENTIALS_KEY:?}",
                    field("storageSecretRef.name"),
                    field("credentialsType")
                ),
            )
        };
    };
    if role_based {
        return (
            false,
            "ConflictingCredentials",
            format!(
                "{}: role-based cannot be combined with {} {name:?}; give one of them",
                field("credentialsType"),
                field("storageSecretRef.name")
            ),
        );
    }
    let Some(secret) = find_secret(s, namespace, &name) else {
        return (
            false,
            "SecretNotFound",
            format!(
                "{}: Secret {name:?} not found in namespace {namespace:?}",
                field("storageSecretRef.name")
            ),
        );
    };
    let has_key = secret
        .data
        .as_ref()
        .is_some_and(|d| d.contains_key(CREDENTIALS_KEY))
        || secret
            .string_data
            .as_ref()
            .is_some_and(|d| d.contains_key(CREDENTIALS_KEY));
    if !has_key {
        let provider = st
            .storage_provider
            .and_then(|p| serde_json::to_value(p).ok())
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "any provider".into());
        return (
            false,
            "SecretKeyMissing",
            format!(
                "{}: Secret {name:?} has no key {CREDENTIALS_KEY:?}: Medusa reads the storage credentials file ({provider}) from /etc/medusa-secrets/{CREDENTIALS_KEY}",
                field("storageSecretRef.name")
            ),
        );
    }
    (
        true,
        "SecretFound",
        format!("Secret {name:?} holds the key {CREDENTIALS_KEY:?}"),
    )
}

pub fn reconcile(s: &Snapshot) -> Result<Plan, PolicyError> {
    let c: MedusaConfiguration = s.parent()?;
    let namespace = c.metadata.namespace.clone().unwrap_or_default();
    let st = c.spec.storage_properties.clone().unwrap_or_default();
    let prev = c.status.clone().unwrap_or_default();
    let mut plan = Plan::default();

    let (secret_ok, secret_reason, secret_msg) = secret_available(s, &namespace, &st);
    let problem = refusals(&c).into_iter().next().or_else(|| missing(&st));
    let (ready, ready_reason, ready_msg) = match (&problem, secret_ok) {
        (Some((f, why)), _) => (false, "InvalidSpec", format!("{f}: {why}")),
        (None, false) => (
            false,
            "SecretNotAvailable",
            format!("{MEDUSA_CONFIGURATION_SECRET_AVAILABLE} is False: {secret_msg}"),
        ),
        (None, true) => (
            true,
            "Ready",
            "the storage settings and their Secret can be used".to_string(),
        ),
    };
    let prev_conds = prev.conditions.as_deref();
    // One Warning per change to False, and one per cause: a Ready that is False because
    // of the Secret says nothing the SecretAvailable Warning did not.
    let warn = if !secret_ok {
        Some((
            MEDUSA_CONFIGURATION_SECRET_AVAILABLE,
            secret_reason,
            &secret_msg,
        ))
    } else if !ready {
        Some((MEDUSA_CONFIGURATION_READY, ready_reason, &ready_msg))
    } else {
        None
    };
    if let Some((t, reason, msg)) = warn
        && is(prev_conds, t) != Some(false)
    {
        plan.event(EventType::Warning, reason, msg.clone());
    }
    let status = MedusaConfigurationStatus {
        conditions: Some(conditions(
            prev_conds,
            s.now_ms,
            vec![
                Cond::new(
                    MEDUSA_CONFIGURATION_SECRET_AVAILABLE,
                    secret_ok,
                    secret_reason,
                    secret_msg,
                ),
                Cond::new(MEDUSA_CONFIGURATION_READY, ready, ready_reason, ready_msg),
            ],
        )),
    };
    plan.set_status(&status)?;
    // The storage Secret gets upstream's label, so it is watched from then on (a change is
    // seen at once). Only that label is written, on the Secret the snapshot showed (its
    // UID): it is the user's, never created, adopted or deleted here.
    if let Some(secret) = secret_ref(&st).and_then(|n| find_secret(s, &namespace, &n))
        && let Some(uid) = secret.metadata.uid.clone().filter(|u| !u.is_empty())
    {
        let name = secret.metadata.name.clone().unwrap_or_default();
        let label = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": uid,
                "labels": {
                    MEDUSA_STORAGE_SECRET_IDENTIFIER_LABEL: storage_secret_label(&name, &namespace),
                },
            },
        });
        plan.apply(&s.parent.cluster, &label)?;
    }
    if !secret_ok && secret_ref(&st).is_some() {
        plan.requeue_after(RECHECK_MS);
    }
    Ok(plan)
}
