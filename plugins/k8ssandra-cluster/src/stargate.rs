//! Stargate for the datacenters of a K8ssandraCluster: `spec.stargate` merged with each
//! `datacenters[].stargate` (the datacenter's settings win) becomes one Stargate object in
//! the datacenter's cluster and namespace, reconciled there by the stargate policy.
//!
//! - A Stargate is created once its datacenter is Ready, not stopped, and the auth keyspace
//!   `data_endpoint_auth` (with its `token` table) replicates like the system keyspaces; it
//!   stays while the datacenter rolls, and goes (the host prunes it, its Deployments follow
//!   through their ownerReferences) when the template goes or the datacenter is stopped.
//! - Nothing here changes a CassandraDatacenter: adding or removing Stargate restarts no
//!   Cassandra pod.
//! - Removing Stargate keeps the auth keyspace and its tokens unless the K8ssandraCluster
//!   says otherwise: data is only deleted when a user asks for it. The choice is the
//!   annotation `k8ssandra.io/stargate-auth-keyspace-on-removal` (`keep`, the default, or
//!   `drop`) rather than a spec field: upstream's CRD has no such field, so manifests stay
//!   valid for both operators, and the choice can be made after `spec.stargate` is gone
//!   without a spec change. Kept, the condition `StargateAuthKeyspace` (True, `Kept`) and a
//!   Normal Event say so and how to drop it; asked to drop, once no Stargate object of the
//!   cluster remains (its pods use the keyspace), `drop-keyspace` runs once on a ready node
//!   with the superuser Secret, and the condition turns False (`Dropped`). The condition is
//!   also the memory of what was done: it survives restarts in the status.
//! - `status.datacenters[dc].stargate` mirrors each Stargate's status.

use std::collections::BTreeMap;

use k8ssandra_api::k8ssandra::K8ssandraCluster;
use k8ssandra_api::labels::{
    COMPONENT_LABEL, COMPONENT_STARGATE, K8SSANDRA_CLUSTER_NAME_LABEL,
    K8SSANDRA_CLUSTER_NAMESPACE_LABEL, NAME_LABEL, NAME_LABEL_VALUE, PART_OF_LABEL,
    PART_OF_LABEL_VALUE,
};
use k8ssandra_api::stargate::{
    AUTH_KEYSPACE, AUTH_TABLE, AUTH_TABLE_COLUMNS, AUTH_TABLE_KEY, StargateDatacenterTemplate,
    StargateStatus, resource_name,
};
use k8ssandra_policy_sdk::{
    EventType, KeyspaceDrop, OperationKind, PolicyError, Violation, simple_table, violation,
};
use serde_json::{Value, json};

use crate::cluster::Ctx;
use crate::dc::merged_options;

pub const API_VERSION: &str = "stargate.k8ssandra.io/v1alpha1";
pub const KIND: &str = "Stargate";

/// What becomes of the auth keyspace when Stargate is removed: `keep` (default) or `drop`.
pub const AUTH_KEYSPACE_ON_REMOVAL: &str = "k8ssandra.io/stargate-auth-keyspace-on-removal";
pub const ON_REMOVAL_KEEP: &str = "keep";
pub const ON_REMOVAL_DROP: &str = "drop";
/// The condition telling what became of the auth keyspace after Stargate's removal.
pub const AUTH_KEYSPACE_CONDITION: &str = "StargateAuthKeyspace";
pub const REASON_KEPT: &str = "Kept";
pub const REASON_DROP_PENDING: &str = "DropPending";
pub const REASON_DROPPING: &str = "Dropping";
pub const REASON_DROPPED: &str = "Dropped";
/// Requeue while waiting for the Stargate objects to go.
const WAIT_MS: u64 = 10_000;

/// The merged Stargate settings of datacenter `i`, if Stargate is wanted there.
fn template(kc: &K8ssandraCluster, i: usize) -> Result<Option<StargateDatacenterTemplate>, String> {
    let Some(dc) = kc.datacenters().get(i) else {
        return Ok(None);
    };
    StargateDatacenterTemplate::merged(dc.stargate.as_ref(), kc.spec.stargate.as_ref())
        .map_err(|e| format!("spec.cassandra.datacenters[{i}].stargate: {e}"))
}

/// Admission rules: heap below the memory limit at every level, rack overrides naming racks
/// of the datacenter.
pub fn violations(kc: &K8ssandraCluster) -> Vec<Violation> {
    let mut out = Vec::new();
    if let Some(v) = kc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(AUTH_KEYSPACE_ON_REMOVAL))
        .filter(|v| *v != ON_REMOVAL_KEEP && *v != ON_REMOVAL_DROP)
    {
        out.push(violation(
            &format!("metadata.annotations[{AUTH_KEYSPACE_ON_REMOVAL}]"),
            format!("must be {ON_REMOVAL_KEEP:?} or {ON_REMOVAL_DROP:?}, not {v:?}"),
        ));
    }
    if let Some(c) = &kc.spec.stargate {
        for (f, m) in c.template.check("spec.stargate") {
            out.push(violation(&f, m));
        }
    }
    for (i, dc) in kc.datacenters().iter().enumerate() {
        let Some(t) = &dc.stargate else {
            continue;
        };
        let path = format!("spec.cassandra.datacenters[{i}].stargate");
        let racks: Vec<String> = merged_options(kc, dc)
            .get("racks")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(|r| r.get("name").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .filter(|r: &Vec<String>| !r.is_empty())
            .unwrap_or_else(|| vec!["default".to_string()]);
        let mut found = t.check_racks(&path, &racks);
        // The merged settings: a heap given here against a limit given at cluster level.
        if let Ok(Some(m)) = template(kc, i) {
            found.extend(m.check(&path));
        }
        for (f, m) in found {
            out.push(violation(&f, m));
        }
    }
    out
}

/// The auth keyspace, replicated as `want` (the system keyspaces' replication), and its
/// table. True once both are in place; false (with operations planned) until then.
pub fn auth_keyspace(cx: &mut Ctx, want: &BTreeMap<String, u32>, key: &str) -> bool {
    let Some(target) = cx.ready_node(None) else {
        return false;
    };
    let base = format!("stargate-auth/{key}");
    let replication = k8ssandra_policy_sdk::Replication {
        keyspace: AUTH_KEYSPACE.to_string(),
        replicas: want.iter().map(|(k, v)| (k.clone(), *v)).collect(),
    };
    // Creating is a no-op when the keyspace exists: its replication is then checked as the
    // system keyspaces' is.
    if crate::keyspaces::drive(
        cx,
        &format!("{base}/create"),
        Some(target.clone()),
        OperationKind::CreateKeyspace(replication),
    )
    .is_none()
    {
        return false;
    }
    if !crate::keyspaces::ensure_replication(cx, &base, &target, AUTH_KEYSPACE, want) {
        return false;
    }
    // An existing table counts as created (the host reports "already exists" as success).
    crate::keyspaces::drive(
        cx,
        &format!("stargate-auth/table/{AUTH_KEYSPACE}.{AUTH_TABLE}"),
        Some(target),
        OperationKind::CreateTable(simple_table(
            AUTH_KEYSPACE,
            AUTH_TABLE,
            &AUTH_TABLE_KEY,
            &AUTH_TABLE_COLUMNS,
        )),
    )
    .is_some()
}

/// The Stargate objects of the spec's datacenters, and their statuses for
/// `status.datacenters`. `auth_ready` tells whether the auth keyspace is in place.
pub fn run(cx: &mut Ctx, auth_ready: bool) -> Result<(), PolicyError> {
    let live: Vec<(String, Value)> =
        cx.s.children
            .iter()
            .filter(|o| o.kind().as_deref() == Some(KIND))
            .filter_map(|o| Some((o.cluster.clone(), o.value().ok()?)))
            .collect();
    let dcs = cx.dcs.clone();
    for st in &dcs {
        let name = resource_name(&cx.cluster_name, &st.cass_name);
        let existing = live.iter().find(|(c, v)| {
            *c == st.context
                && v.pointer("/metadata/namespace").and_then(Value::as_str) == Some(&st.namespace)
                && v.pointer("/metadata/name").and_then(Value::as_str) == Some(&name)
        });
        if let Some((_, v)) = existing
            && let Some(status) = v
                .get("status")
                .and_then(|s| serde_json::from_value::<StargateStatus>(s.clone()).ok())
        {
            cx.stargate_status.insert(st.name.clone(), status);
        }
        let t = match template(&cx.kc, st.index) {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            Err(e) => {
                cx.errors.push(e);
                continue;
            }
        };
        // Without a view of the cluster, the last status stays and nothing is decided.
        if !st.reachable {
            continue;
        }
        let wanted = st.exists && !st.stopped && (existing.is_some() || (st.ready && auth_ready));
        if !wanted {
            continue;
        }
        if existing.is_none() {
            cx.plan.event(
                EventType::Normal,
                "CreatingStargate",
                format!("creating Stargate {name} for datacenter {}", st.name),
            );
        }
        let object = desired(cx, &name, &st.namespace, &st.name, &t)?;
        cx.plan.apply(&st.context, &object)?;
    }
    Ok(())
}

/// The Stargate object of one datacenter.
fn desired(
    cx: &Ctx,
    name: &str,
    namespace: &str,
    dc_name: &str,
    t: &StargateDatacenterTemplate,
) -> Result<Value, PolicyError> {
    let mut labels = BTreeMap::from([
        (NAME_LABEL.to_string(), NAME_LABEL_VALUE.to_string()),
        (PART_OF_LABEL.to_string(), PART_OF_LABEL_VALUE.to_string()),
        (COMPONENT_LABEL.to_string(), COMPONENT_STARGATE.to_string()),
        (K8SSANDRA_CLUSTER_NAME_LABEL.to_string(), cx.name.clone()),
        (
            K8SSANDRA_CLUSTER_NAMESPACE_LABEL.to_string(),
            cx.namespace.clone(),
        ),
    ]);
    let meta = t.cluster_template.template.resource_meta.as_ref();
    labels.extend(meta.and_then(|m| m.labels.clone()).unwrap_or_default());
    let mut spec = serde_json::to_value(t)
        .map_err(|e| k8ssandra_policy_sdk::error(format!("stargate template: {e}")))?;
    spec["datacenterRef"] = json!({"name": dc_name});
    if let Some(auth) = cx.kc.spec.auth {
        spec["auth"] = json!(auth);
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

/// Whether the K8ssandraCluster asks for the auth keyspace to be dropped once Stargate is
/// removed.
fn drop_on_removal(kc: &K8ssandraCluster) -> bool {
    kc.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(AUTH_KEYSPACE_ON_REMOVAL))
        .is_some_and(|v| v == ON_REMOVAL_DROP)
}

/// Whether the operator still answers for the auth keyspace: while Stargate is wanted, or
/// while it is to be dropped. Otherwise a kept keyspace is the user's, like any other.
pub fn auth_keyspace_managed(cx: &Ctx) -> bool {
    cx.kc.has_stargates() || drop_on_removal(&cx.kc)
}

/// The previous reconcile's `StargateAuthKeyspace` condition: its status and reason.
fn prev_auth_condition(cx: &Ctx) -> Option<(String, String)> {
    cx.prev
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == AUTH_KEYSPACE_CONDITION)
        .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
}

/// The auth keyspace once `spec.stargate` is gone everywhere: kept (the default) or
/// dropped as the annotation asks, recorded in the `StargateAuthKeyspace` condition.
pub fn removal(cx: &mut Ctx) {
    if cx.kc.has_stargates()
        || cx.kc.metadata.deletion_timestamp.is_some()
        || cx.dcs.iter().all(|d| !d.exists)
    {
        return;
    }
    let prev = prev_auth_condition(cx);
    let live: Vec<String> =
        cx.s.children
            .iter()
            .filter(|o| o.kind().as_deref() == Some(KIND))
            .filter_map(|o| o.name())
            .collect();
    let had_stargate = prev.is_some()
        || !live.is_empty()
        || cx
            .prev
            .datacenters
            .as_ref()
            .is_some_and(|d| d.values().any(|e| e.stargate.is_some()));
    if !had_stargate {
        return;
    }
    let prev_reason = prev.map(|(_, r)| r).unwrap_or_default();
    if prev_reason == REASON_DROPPED {
        cx.condition(
            AUTH_KEYSPACE_CONDITION,
            false,
            REASON_DROPPED,
            format!("Stargate was removed and its auth keyspace {AUTH_KEYSPACE} dropped"),
        );
        return;
    }
    if !drop_on_removal(&cx.kc) {
        let message = format!(
            "Stargate was removed; its auth keyspace {AUTH_KEYSPACE} (Stargate's tokens) was \
             kept and is no longer managed. To drop it, annotate this K8ssandraCluster with \
             {AUTH_KEYSPACE_ON_REMOVAL}={ON_REMOVAL_DROP}"
        );
        if prev_reason != REASON_KEPT {
            cx.plan.event(
                EventType::Normal,
                "StargateAuthKeyspaceKept",
                message.clone(),
            );
        }
        cx.condition(AUTH_KEYSPACE_CONDITION, true, REASON_KEPT, message);
        return;
    }
    // Its users first: every Stargate of the cluster gone, in clusters we can all see.
    let unseen: Vec<String> = cx
        .dcs
        .iter()
        .filter(|d| !d.reachable)
        .map(|d| d.context.clone())
        .collect();
    if !live.is_empty() || !unseen.is_empty() {
        let why = if live.is_empty() {
            format!(
                "clusters {} cannot be seen, and a Stargate there may still use it",
                unseen.join(", ")
            )
        } else {
            format!("Stargate {} still exists", live.join(", "))
        };
        cx.condition(
            AUTH_KEYSPACE_CONDITION,
            true,
            REASON_DROP_PENDING,
            format!("the auth keyspace {AUTH_KEYSPACE} is dropped once Stargate is gone: {why}"),
        );
        cx.plan.requeue_after(WAIT_MS);
        return;
    }
    let Some(secret) = cx.superuser_secret() else {
        cx.condition(
            AUTH_KEYSPACE_CONDITION,
            true,
            REASON_KEPT,
            format!(
                "the auth keyspace {AUTH_KEYSPACE} cannot be dropped by the operator: with \
                 external secrets it has no superuser credentials; drop it with CQL"
            ),
        );
        return;
    };
    let Some(target) = cx.ready_node(None) else {
        cx.condition(
            AUTH_KEYSPACE_CONDITION,
            true,
            REASON_DROP_PENDING,
            format!("the auth keyspace {AUTH_KEYSPACE} is dropped once a node is ready"),
        );
        return;
    };
    let base = format!(
        "stargate-auth/drop/{}",
        cx.kc.metadata.generation.unwrap_or_default()
    );
    if let crate::util::Step::Backoff(_, msg) = crate::util::step(cx.s, &base) {
        cx.plan.event(
            EventType::Warning,
            "StargateAuthKeyspaceDropFailed",
            format!("dropping the auth keyspace {AUTH_KEYSPACE} failed (retrying): {msg}"),
        );
    }
    let kind = OperationKind::DropKeyspace(KeyspaceDrop {
        keyspace: AUTH_KEYSPACE.to_string(),
        credentials_secret: secret,
    });
    if crate::keyspaces::drive(cx, &base, Some(target), kind).is_some() {
        let message = format!("Stargate was removed and its auth keyspace {AUTH_KEYSPACE} dropped");
        cx.plan.event(
            EventType::Normal,
            "StargateAuthKeyspaceDropped",
            message.clone(),
        );
        cx.condition(AUTH_KEYSPACE_CONDITION, false, REASON_DROPPED, message);
    } else {
        cx.condition(
            AUTH_KEYSPACE_CONDITION,
            true,
            REASON_DROPPING,
            format!(
                "dropping the auth keyspace {AUTH_KEYSPACE}, as {AUTH_KEYSPACE_ON_REMOVAL} asks"
            ),
        );
    }
}
