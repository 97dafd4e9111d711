//! Reaper for a K8ssandraCluster (`spec.reaper`), the parts that need no call to Reaper's
//! REST API:
//!
//! - with auth on and internal secrets, the CQL/JMX Secret `<cluster>-reaper` (unless
//!   `cassandraUserSecretRef` is given) and the UI Secret `<cluster>-reaper-ui` (unless
//!   `uiUserSecretRef` is given), generated once and copied to the datacenters' clusters by
//!   the ReplicatedSecret that copies the superuser Secret (same labels). Also with
//!   `reaperRef`, unlike upstream (which then neither generates it nor adds the role): the
//!   role is added here in every case, so its Secret must exist or the datacenters wait
//!   for it; a Secret the user made under that name is kept as it is;
//! - that CQL role added to every datacenter's `users` as a superuser ([`with_user`]);
//! - with `cassandra` storage and no `reaperRef`, the keyspace (`reaper_db` unless
//!   `keyspace` says otherwise) created and replicated like the system keyspaces, min(3, size)
//!   per datacenter and 3 per external one, before any Reaper exists;
//! - once every datacenter is Ready and the keyspace is in place, a Reaper object
//!   `<cluster>-<dc>-reaper` in the datacenter's cluster and namespace: one per datacenter
//!   (`PER_DC`, the default) or in the first running datacenter only (`SINGLE`); none with
//!   `reaperRef` or `CONTROL_PLANE` (that Reaper is registered with, which needs the REST API);
//! - `status.datacenters[dc].reaper` mirrors each Reaper's status ([`mirror`]).
//!
//! Removing `spec.reaper` removes the Reaper objects (the host prunes them, their workloads
//! follow through ownerReferences) and keeps the keyspace, the Secrets and the role: data is
//! only deleted when a user says so.

use std::collections::BTreeMap;

use k8ssandra_api::k8ssandra::K8ssandraCluster;
use k8ssandra_api::labels::{
    self, COMPONENT_LABEL, COMPONENT_REAPER, K8SSANDRA_CLUSTER_NAME_LABEL,
    K8SSANDRA_CLUSTER_NAMESPACE_LABEL, NAME_LABEL, NAME_LABEL_VALUE, PART_OF_LABEL,
    PART_OF_LABEL_VALUE,
};
use k8ssandra_api::names::cleanup_for_kubernetes;
use k8ssandra_api::reaper::{DeploymentMode, ReaperClusterTemplate, ReaperStatus, StorageType};
use k8ssandra_policy_sdk::{
    EventType, GeneratedSecret, OperationKind, Plan, PolicyError, Replication, error,
};
use serde_json::{Value, json};

use crate::cluster::Ctx;
use crate::util::hash;

pub const API_VERSION: &str = "reaper.k8ssandra.io/v1alpha1";
pub const KIND: &str = "Reaper";

/// Name of the generated CQL/JMX Secret: `<cluster>-reaper`.
pub fn user_secret_name(cluster: &str) -> String {
    format!("{}-reaper", cleanup_for_kubernetes(cluster))
}

/// Name of the generated UI Secret: `<cluster>-reaper-ui`.
pub fn ui_secret_name(cluster: &str) -> String {
    format!("{}-reaper-ui", cleanup_for_kubernetes(cluster))
}

/// Name of the Reaper object of a datacenter: `<cluster>-<dc>-reaper`.
pub fn resource_name(cluster: &str, dc: &str) -> String {
    cleanup_for_kubernetes(&format!("{cluster}-{dc}-reaper"))
}

/// Whether the operator manages Reaper's credentials: auth on and internal secrets.
fn manages_secrets(kc: &K8ssandraCluster, t: &ReaperClusterTemplate) -> bool {
    kc.is_auth_enabled() && !kc.use_external_secrets() && !t.template.uses_external_secrets()
}

fn named(r: &Option<k8s_openapi::api::core::v1::LocalObjectReference>) -> Option<String> {
    r.as_ref().map(|r| r.name.clone()).filter(|n| !n.is_empty())
}

/// The CQL role Reaper logs in with: the Secret named by `cassandraUserSecretRef`, else the
/// generated one; None when the operator manages no credentials.
fn user_secret(kc: &K8ssandraCluster, cluster: &str) -> Option<String> {
    let t = kc.spec.reaper.as_ref()?;
    if !manages_secrets(kc, t) {
        return None;
    }
    Some(named(&t.template.cassandra_user_secret_ref).unwrap_or_else(|| user_secret_name(cluster)))
}

/// The UI Secret: `uiUserSecretRef` when given (an empty name turns UI auth off), else the
/// generated one; None when the operator manages no credentials.
fn ui_secret(kc: &K8ssandraCluster, cluster: &str) -> Option<String> {
    let t = kc.spec.reaper.as_ref()?;
    if !manages_secrets(kc, t) {
        return None;
    }
    match &t.template.ui_user_secret_ref {
        Some(r) if r.name.is_empty() => None,
        Some(r) => Some(r.name.clone()),
        None => Some(ui_secret_name(cluster)),
    }
}

/// The desired CassandraDatacenter `desired` with Reaper's role among its `users` (as a
/// superuser), when `spec.reaper` asks for one.
pub fn with_user(kc: &K8ssandraCluster, cluster: &str, mut desired: Value) -> Value {
    let Some(secret) = user_secret(kc, cluster) else {
        return desired;
    };
    let Some(spec) = desired.get_mut("spec").and_then(Value::as_object_mut) else {
        return desired;
    };
    let users = spec.entry("users").or_insert_with(|| json!([]));
    if let Some(list) = users.as_array_mut()
        && !list.iter().any(|u| u["secretName"] == secret.as_str())
    {
        list.push(json!({"secretName": secret, "superuser": true}));
    }
    desired
}

/// Labels selecting the Secrets the cluster's ReplicatedSecret copies (KO's values).
pub(crate) fn replicated_labels(cx: &Ctx) -> Vec<(String, String)> {
    vec![
        (
            labels::REPLICATED_BY_LABEL.to_string(),
            labels::REPLICATED_BY_LABEL_VALUE.to_string(),
        ),
        (K8SSANDRA_CLUSTER_NAME_LABEL.to_string(), cx.name.clone()),
        (
            K8SSANDRA_CLUSTER_NAMESPACE_LABEL.to_string(),
            cx.namespace.clone(),
        ),
    ]
}

fn secrets(cx: &mut Ctx, t: &ReaperClusterTemplate) {
    if !manages_secrets(&cx.kc, t) {
        return;
    }
    let mut names = Vec::new();
    if named(&t.template.cassandra_user_secret_ref).is_none() {
        names.push(user_secret_name(&cx.cluster_name));
    }
    if t.template.ui_user_secret_ref.is_none() {
        names.push(ui_secret_name(&cx.cluster_name));
    }
    for name in names {
        cx.plan.secrets.push(GeneratedSecret {
            cluster: String::new(),
            namespace: cx.namespace.clone(),
            name: name.clone(),
            fixed: vec![("username".into(), name)],
            random_keys: vec!["password".into()],
            labels: replicated_labels(cx),
        });
    }
}

/// Replication of Reaper's keyspace: like the system keyspaces, min(3, size) per datacenter
/// in the ring and 3 per external datacenter. None while a datacenter is still joining.
fn keyspace_replication(cx: &Ctx) -> Option<BTreeMap<String, u32>> {
    if cx.dcs.iter().any(|d| d.exists && !d.initialized) {
        return None;
    }
    let mut want: BTreeMap<String, u32> = cx
        .dcs
        .iter()
        .filter(|d| d.exists && d.initialized)
        .map(|d| (d.cass_name.clone(), d.size.clamp(0, 3) as u32))
        .collect();
    if want.is_empty() {
        return None;
    }
    for e in cx.kc.spec.external_datacenters.iter().flatten() {
        want.insert(e.clone(), 3);
    }
    Some(want)
}

/// Creates and replicates Reaper's keyspace; true once it is as wanted.
fn keyspace(cx: &mut Ctx, ks: &str) -> bool {
    let Some(want) = keyspace_replication(cx) else {
        return false;
    };
    let Some(target) = cx.ready_node(None) else {
        return false;
    };
    // A new generation or replication reads afresh (outcomes are kept by id).
    let key = hash(&format!("{:?}/{want:?}", cx.kc.metadata.generation));
    let base = format!("reaper-keyspace/{ks}/{key}");
    // Creating is a no-op on an existing keyspace, whose replication is then checked.
    let created = crate::keyspaces::drive(
        cx,
        &format!("{base}/create"),
        Some(target.clone()),
        OperationKind::CreateKeyspace(Replication {
            keyspace: ks.to_string(),
            replicas: want.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        }),
    );
    created.is_some() && crate::keyspaces::ensure_replication(cx, &base, &target, ks, &want)
}

/// Statuses of the live Reaper objects, by datacenter name, to mirror into the status.
pub type Statuses = BTreeMap<String, ReaperStatus>;

/// The Secrets, the keyspace and the Reaper objects of `spec.reaper`; returns the live
/// Reapers' statuses for [`mirror`].
pub fn run(cx: &mut Ctx) -> Result<Statuses, PolicyError> {
    let live: Vec<(String, Value)> =
        cx.s.children
            .iter()
            .filter(|o| o.kind().as_deref() == Some(KIND))
            .filter_map(|o| Some((o.cluster.clone(), o.value().ok()?)))
            .collect();
    let mut statuses = Statuses::new();
    let dcs = cx.dcs.clone();
    let find = |ctx: &str, ns: &str, name: &str| {
        live.iter().find(|(c, v)| {
            c == ctx
                && v.pointer("/metadata/namespace").and_then(Value::as_str) == Some(ns)
                && v.pointer("/metadata/name").and_then(Value::as_str) == Some(name)
        })
    };
    for st in &dcs {
        let name = resource_name(&cx.cluster_name, &st.cass_name);
        if let Some((_, v)) = find(&st.context, &st.namespace, &name)
            && let Some(status) = v
                .get("status")
                .and_then(|s| serde_json::from_value::<ReaperStatus>(s.clone()).ok())
        {
            statuses.insert(st.name.clone(), status);
        }
    }
    let Some(t) = cx.kc.spec.reaper.clone() else {
        return Ok(statuses);
    };
    secrets(cx, &t);
    let mode = t.deployment_mode();
    if t.has_reaper_ref() || mode == DeploymentMode::ControlPlane {
        // Registering with an existing Reaper needs its REST API: nothing to deploy here.
        if !t.has_reaper_ref() {
            cx.errors.push(
                "spec.reaper.reaperRef: required with spec.reaper.deploymentMode CONTROL_PLANE (the Reaper to register with)".into(),
            );
        }
        return Ok(statuses);
    }
    if mode == DeploymentMode::PerDc && t.template.storage_type() == StorageType::Local {
        cx.errors.push(
            "spec.reaper.deploymentMode: PER_DC requires spec.reaper.storageType cassandra; use SINGLE with local storage".into(),
        );
        keep_live(cx, &dcs, &live)?;
        return Ok(statuses);
    }
    let all_ready = dcs.iter().all(|d| d.stopped || d.ready);
    let ks_ready = t.template.storage_type() != StorageType::Cassandra
        || (all_ready && keyspace(cx, t.template.keyspace()));
    let running: Vec<_> = dcs.iter().filter(|d| !d.stopped).collect();
    let chosen: Vec<_> = match mode {
        DeploymentMode::Single => running.into_iter().take(1).collect(),
        _ => running,
    };
    let availability = if mode == DeploymentMode::Single || dcs.len() == 1 {
        "ALL"
    } else {
        "EACH"
    };
    // Without a view of a datacenter's cluster nothing there is decided (the host prunes
    // nothing in an unreachable cluster).
    for st in chosen.into_iter().filter(|d| d.reachable && d.exists) {
        let name = resource_name(&cx.cluster_name, &st.cass_name);
        let existing = find(&st.context, &st.namespace, &name).is_some();
        // A Reaper stays while its datacenter rolls; a new one waits for every datacenter
        // and for its keyspace.
        let may_create = all_ready && ks_ready;
        if !(existing || may_create) {
            continue;
        }
        if !existing {
            cx.plan.event(
                EventType::Normal,
                "CreatingReaper",
                format!("creating Reaper {name} for datacenter {}", st.name),
            );
        }
        let object = desired(cx, &t, &name, &st.namespace, &st.name, availability)?;
        cx.plan.apply(&st.context, &object)?;
    }
    Ok(statuses)
}

/// Re-applies the live Reapers unchanged while the spec is refused: nothing is deleted.
fn keep_live(
    cx: &mut Ctx,
    dcs: &[crate::cluster::DcState],
    live: &[(String, Value)],
) -> Result<(), PolicyError> {
    for (ctx, v) in live {
        if !dcs.iter().any(|d| &d.context == ctx) {
            continue;
        }
        let keep = json!({
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {
                "name": v.pointer("/metadata/name"),
                "namespace": v.pointer("/metadata/namespace"),
                "labels": v.pointer("/metadata/labels").cloned().unwrap_or(json!({})),
            },
            "spec": v.get("spec").cloned().unwrap_or(json!({})),
        });
        cx.plan.apply(ctx, &keep)?;
    }
    Ok(())
}

/// The Reaper object of one datacenter.
fn desired(
    cx: &Ctx,
    t: &ReaperClusterTemplate,
    name: &str,
    namespace: &str,
    dc_name: &str,
    availability: &str,
) -> Result<Value, PolicyError> {
    let mut labels = BTreeMap::from([
        (NAME_LABEL.to_string(), NAME_LABEL_VALUE.to_string()),
        (PART_OF_LABEL.to_string(), PART_OF_LABEL_VALUE.to_string()),
        (COMPONENT_LABEL.to_string(), COMPONENT_REAPER.to_string()),
        (K8SSANDRA_CLUSTER_NAME_LABEL.to_string(), cx.name.clone()),
        (
            K8SSANDRA_CLUSTER_NAMESPACE_LABEL.to_string(),
            cx.namespace.clone(),
        ),
    ]);
    let meta = t.template.resource_meta.as_ref();
    labels.extend(meta.and_then(|m| m.labels.clone()).unwrap_or_default());
    let mut spec =
        serde_json::to_value(&t.template).map_err(|e| error(format!("reaper template: {e}")))?;
    spec["datacenterRef"] = json!({"name": dc_name});
    spec["datacenterAvailability"] = json!(availability);
    if let Some(s) = user_secret(&cx.kc, &cx.cluster_name) {
        spec["cassandraUserSecretRef"] = json!({"name": s});
    }
    match ui_secret(&cx.kc, &cx.cluster_name) {
        Some(s) => spec["uiUserSecretRef"] = json!({"name": s}),
        None => {
            if let Some(o) = spec.as_object_mut() {
                o.remove("uiUserSecretRef");
            }
        }
    }
    // Migrating the schema reads at QUORUM, which a stopped datacenter of a running
    // cluster can prevent.
    if cx.kc.has_stopped_datacenters() && cx.dcs.iter().any(|d| d.initialized) {
        spec["skipSchemaMigration"] = json!(true);
    }
    let mut metadata = json!({"name": name, "namespace": namespace, "labels": labels});
    if let Some(a) = meta
        .and_then(|m| m.annotations.clone())
        .filter(|a| !a.is_empty())
    {
        metadata["annotations"] = json!(a);
    }
    Ok(json!({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": spec,
    }))
}

/// Writes the Reapers' statuses into `status.datacenters[dc].reaper` of the planned status.
pub fn mirror(plan: &mut Plan, statuses: &Statuses) -> Result<(), PolicyError> {
    if statuses.is_empty() {
        return Ok(());
    }
    let Some(raw) = plan.status.as_deref() else {
        return Ok(());
    };
    let mut status: Value = serde_json::from_str(raw).map_err(|e| error(format!("status: {e}")))?;
    for (dc, st) in statuses {
        if let Some(entry) = status
            .get_mut("datacenters")
            .and_then(|d| d.get_mut(dc))
            .and_then(Value::as_object_mut)
        {
            entry.insert(
                "reaper".into(),
                serde_json::to_value(st).map_err(|e| error(format!("reaper status: {e}")))?,
            );
        }
    }
    plan.set_status(&status)
}
