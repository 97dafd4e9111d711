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
//! - Removing Stargate keeps the auth keyspace and its tokens: the policy contract has no
//!   operation that drops a keyspace, and data is only deleted when a user says so
//!   (`DROP KEYSPACE data_endpoint_auth` with CQL).
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
    EventType, OperationKind, PolicyError, Violation, simple_table, violation,
};
use serde_json::{Value, json};

use crate::cluster::Ctx;
use crate::dc::merged_options;

pub const API_VERSION: &str = "stargate.k8ssandra.io/v1alpha1";
pub const KIND: &str = "Stargate";

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
