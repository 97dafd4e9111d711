//! The reconcile of one Stargate: wait for its datacenter, refuse bad input without
//! deleting anything, create a standalone Stargate's auth keyspace, apply the Deployments
//! (then the Service once every replica is ready), and report progress.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8ssandra_api::cassandra::{CassandraDatacenter, DatacenterConditionType as T, PROGRESS_READY};
use k8ssandra_api::labels::{DATACENTER_LABEL, K8SSANDRA_CLUSTER_NAME_LABEL};
use k8ssandra_api::names::clean_label_value;
use k8ssandra_api::stargate::{
    AUTH_KEYSPACE, AUTH_TABLE, AUTH_TABLE_COLUMNS, AUTH_TABLE_KEY, STARGATE_CONDITION_READY,
    Stargate, StargateProgress, StargateStatus,
};
use k8ssandra_policy_sdk::{
    EventType, NodeRef, Object, OperationKind, Outcome, Plan, PolicyError, Replication, Snapshot,
    error, rfc3339, simple_table, stable_hash,
};
use k8ssandra_telemetry::prometheus::service_monitor_served;
use serde_json::{Value, json};

use crate::render::{Inputs, UserConfig};
use crate::{DATACENTER_KIND, telemetry};

/// Requeue while waiting for something that announces itself anyway (a datacenter getting
/// ready, pods becoming ready), in case an event is missed.
const WAIT_MS: u64 = 10_000;
const RETRY_BASE_MS: u64 = 5_000;
const RETRY_MAX_MS: u64 = 120_000;

/// Reason of the Ready condition while the spec is refused.
pub const REASON_INVALID: &str = "InvalidSpec";
/// Reason of the Ready condition while the datacenter named is missing.
pub const REASON_NO_DATACENTER: &str = "DatacenterNotFound";

/// Rules that need only the Stargate itself: `(field, message)` each.
pub fn check_spec(sg: &Stargate) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if sg.spec.datacenter_ref.name.is_empty() {
        out.push((
            "spec.datacenterRef.name".to_string(),
            "required: the CassandraDatacenter (same namespace) Stargate serves".to_string(),
        ));
    }
    out.extend(sg.spec.datacenter_template.check("spec"));
    if let Some(r) = &sg
        .spec
        .datacenter_template
        .cluster_template
        .template
        .cassandra_config_map_ref
        && r.name.is_empty()
    {
        out.push((
            "spec.cassandraConfigMapRef.name".to_string(),
            "required: a ConfigMap in the Stargate's namespace".to_string(),
        ));
    }
    if let Some(e) = &sg.spec.cassandra_encryption {
        for (field, stores) in [
            ("serverEncryptionStores", &e.server_encryption_stores),
            ("clientEncryptionStores", &e.client_encryption_stores),
        ] {
            for (store, secret) in stores.iter().flat_map(|s| {
                [
                    ("keystoreSecretRef", &s.keystore_secret_ref),
                    ("truststoreSecretRef", &s.truststore_secret_ref),
                ]
            }) {
                if secret.name.as_deref().is_none_or(str::is_empty) {
                    out.push((
                        format!("spec.cassandraEncryption.{field}.{store}.name"),
                        "required: the Secret holding the store".to_string(),
                    ));
                }
            }
        }
    }
    out.extend(telemetry::check(sg));
    out
}

/// The user's ConfigMap named by `cassandraConfigMapRef`, parsed; `Ok(None)` when none is
/// named, `Err((field, message))` when it is missing or does not parse.
fn user_config(
    s: &Snapshot,
    sg: &Stargate,
    ns: &str,
) -> Result<Option<UserConfig>, (String, String)> {
    let Some(name) = sg
        .spec
        .datacenter_template
        .cluster_template
        .template
        .cassandra_config_map_ref
        .as_ref()
        .map(|r| r.name.clone())
        .filter(|n| !n.is_empty())
    else {
        return Ok(None);
    };
    let field = "spec.cassandraConfigMapRef.name".to_string();
    let cm = s
        .related
        .iter()
        .filter(|o| o.cluster.is_empty() && o.kind().as_deref() == Some("ConfigMap"))
        .filter_map(|o| o.parse::<ConfigMap>().ok())
        .find(|c| {
            c.metadata.name.as_deref() == Some(name.as_str())
                && c.metadata.namespace.as_deref().unwrap_or(ns) == ns
        })
        .ok_or_else(|| {
            (
                field.clone(),
                format!("no ConfigMap {name:?} in namespace {ns:?}"),
            )
        })?;
    UserConfig::parse(&cm.data.unwrap_or_default())
        .map(Some)
        .map_err(|(key, message)| (field, format!("ConfigMap {name:?}, key {key:?}: {message}")))
}

/// Whether the datacenter serves: Ready, its operator done, not stopped.
pub fn datacenter_ready(dc: &CassandraDatacenter) -> bool {
    if dc.spec.stopped == Some(true) {
        return false;
    }
    let Some(st) = &dc.status else {
        return false;
    };
    let seen = match (st.observed_generation, dc.metadata.generation) {
        (Some(o), Some(g)) => o >= g,
        _ => true,
    };
    seen && st.is_true(T::Ready)
        && st.cassandra_operator_progress.as_deref() == Some(PROGRESS_READY)
}

enum Step {
    Run(String),
    Wait,
    Done,
}

/// The state of operation `base` over its retries (`base`, `base/r1`, …): the host never
/// runs an id twice, so a retry takes a new id, after an exponential backoff.
fn step(s: &Snapshot, plan: &mut Plan, base: &str) -> Step {
    let mut n = 0u32;
    loop {
        let id = if n == 0 {
            base.to_string()
        } else {
            format!("{base}/r{n}")
        };
        let Some(r) = s
            .results
            .iter()
            .filter(|r| r.id == id)
            .max_by_key(|r| r.at_ms)
        else {
            return Step::Run(id);
        };
        match &r.outcome {
            Outcome::Succeeded(_) => return Step::Done,
            Outcome::Running(_) => {
                plan.requeue_after(WAIT_MS);
                return Step::Wait;
            }
            Outcome::Failed(_) => {
                let next = format!("{base}/r{}", n + 1);
                if s.results.iter().any(|x| x.id == next) {
                    n += 1;
                    continue;
                }
                let due = r
                    .at_ms
                    .saturating_add((RETRY_BASE_MS << n.min(10)).min(RETRY_MAX_MS));
                if s.now_ms >= due {
                    return Step::Run(next);
                }
                plan.requeue_after(due - s.now_ms);
                return Step::Wait;
            }
        }
    }
}

/// A ready Cassandra node of the datacenter, to run schema operations on.
fn ready_node(s: &Snapshot, dc: &CassandraDatacenter, namespace: &str) -> Option<NodeRef> {
    let label = clean_label_value(dc.metadata.name.as_deref().unwrap_or_default());
    let pods: Vec<String> = s
        .related
        .iter()
        .filter(|o| o.cluster.is_empty() && o.kind().as_deref() == Some("Pod"))
        .filter(|o| o.labels().get(DATACENTER_LABEL) == Some(&label))
        .filter_map(|o| o.name())
        .collect();
    s.nodes
        .iter()
        .filter(|n| n.node.cluster.is_empty() && n.node.namespace == namespace)
        .filter(|n| n.reachable && n.ready && pods.contains(&n.node.pod))
        .map(|n| n.node.clone())
        .min_by(|a, b| a.pod.cmp(&b.pod))
}

/// The auth keyspace of a standalone Stargate (created replicated to its datacenter,
/// min(3, size), when missing) and its token table; true once both exist.
fn auth_schema(s: &Snapshot, plan: &mut Plan, sg: &Stargate, dc: &CassandraDatacenter) -> bool {
    let ns = sg.metadata.namespace.clone().unwrap_or_default();
    let want = BTreeMap::from([(
        dc.datacenter_name().to_string(),
        u32::try_from(dc.spec.size.clamp(1, 3)).unwrap_or(1),
    )]);
    let Some(target) = ready_node(s, dc, &ns) else {
        plan.requeue_after(WAIT_MS);
        return false;
    };
    let key = stable_hash(&format!("{:?}/{want:?}", sg.metadata.generation));
    let base = format!(
        "stargate-auth/{}/{key}",
        sg.metadata.uid.as_deref().unwrap_or_default()
    );
    let replication = Replication {
        keyspace: AUTH_KEYSPACE.to_string(),
        replicas: want.iter().map(|(k, v)| (k.clone(), *v)).collect(),
    };
    // Creating is a no-op on an existing keyspace, whose replication is left as it is: it
    // may serve datacenters this Stargate does not know about.
    match step(s, plan, &format!("{base}/create")) {
        Step::Done => {}
        Step::Wait => return false,
        Step::Run(id) => {
            plan.operate(id, target, OperationKind::CreateKeyspace(replication));
            return false;
        }
    }
    // An existing table counts as created (the host reports "already exists" as success).
    match step(
        s,
        plan,
        &format!(
            "stargate-auth/{}/table",
            sg.metadata.uid.as_deref().unwrap_or_default()
        ),
    ) {
        Step::Done => true,
        Step::Wait => false,
        Step::Run(id) => {
            plan.operate(
                id,
                target,
                OperationKind::CreateTable(simple_table(
                    AUTH_KEYSPACE,
                    AUTH_TABLE,
                    &AUTH_TABLE_KEY,
                    &AUTH_TABLE_COLUMNS,
                )),
            );
            false
        }
    }
}

/// A live child re-applied as it is (spec and data, our labels), so bad input deletes
/// nothing and changes nothing.
fn frozen(o: &Object) -> Option<Value> {
    let v = o.value().ok()?;
    let meta = v.get("metadata")?;
    let mut out = json!({
        "apiVersion": v.get("apiVersion")?,
        "kind": v.get("kind")?,
        "metadata": {
            "name": meta.get("name")?,
            "namespace": meta.get("namespace")?,
            "labels": meta.get("labels").cloned().unwrap_or(json!({})),
        },
    });
    for field in ["spec", "data", "binaryData"] {
        if let Some(x) = v.get(field) {
            out[field] = x.clone();
        }
    }
    // Fields the API server assigns and refuses to see changed or duplicated.
    let is_service = out["kind"] == "Service";
    if let Some(spec) = out.get_mut("spec").and_then(Value::as_object_mut)
        && is_service
    {
        for f in ["clusterIP", "clusterIPs"] {
            spec.remove(f);
        }
    }
    Some(out)
}

struct Status {
    progress: StargateProgress,
    ready: bool,
    reason: Option<String>,
    message: Option<String>,
    deployments: Vec<String>,
    service: Option<String>,
    counts: [i32; 4],
    size: i32,
}

fn status_json(prev: &StargateStatus, st: &Status, now_ms: u64) -> Value {
    let status = if st.ready { "True" } else { "False" };
    let prev_cond = prev
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == STARGATE_CONDITION_READY);
    let time = match prev_cond {
        Some(c) if c.status == status && c.last_transition_time.is_some() => {
            serde_json::to_value(&c.last_transition_time).unwrap_or(json!(rfc3339(now_ms)))
        }
        _ => json!(rfc3339(now_ms)),
    };
    let mut cond =
        json!({"type": STARGATE_CONDITION_READY, "status": status, "lastTransitionTime": time});
    if let Some(r) = &st.reason {
        cond["reason"] = json!(r);
    }
    if let Some(m) = &st.message {
        cond["message"] = json!(m);
    }
    let [replicas, ready, updated, available] = st.counts;
    let mut out = json!({
        "progress": st.progress,
        "conditions": [cond],
        "readyReplicasRatio": format!("{ready}/{}", st.size),
        "replicas": replicas,
        "readyReplicas": ready,
        "updatedReplicas": updated,
        "availableReplicas": available,
    });
    if !st.deployments.is_empty() {
        out["deploymentRefs"] = json!(st.deployments);
    }
    if let Some(s) = &st.service {
        out["serviceRef"] = json!(s);
    }
    out
}

pub fn reconcile(s: &Snapshot) -> Result<Plan, PolicyError> {
    let sg: Stargate = s.parent()?;
    let name = sg
        .metadata
        .name
        .clone()
        .ok_or_else(|| error("Stargate has no name"))?;
    let ns = sg.metadata.namespace.clone().unwrap_or_default();
    let prev = sg.status.clone().unwrap_or_default();
    let size = sg.spec.datacenter_template.cluster_template.size();
    let mut plan = Plan::default();
    let children: Vec<&Object> = s.children.iter().filter(|o| o.cluster.is_empty()).collect();
    let deployments: Vec<Deployment> = s
        .children_of::<Deployment>()
        .into_iter()
        .filter(|(c, _)| c.is_empty())
        .map(|(_, d)| d)
        .collect();
    let live_service = s
        .children_of::<Service>()
        .into_iter()
        .any(|(c, _)| c.is_empty());

    if sg.metadata.deletion_timestamp.is_some() {
        return Ok(plan);
    }
    if prev.progress.is_none() {
        plan.event(
            EventType::Warning,
            "Deprecated",
            format!(
                "Stargate {name}: Stargate is deprecated upstream and will be removed in a future release; it is deployed as requested"
            ),
        );
    }

    let dc_name = sg.spec.datacenter_ref.name.clone();
    let dc: Option<CassandraDatacenter> = s
        .related
        .iter()
        .filter(|o| o.cluster.is_empty() && o.kind().as_deref() == Some(DATACENTER_KIND))
        .filter_map(|o| o.parse::<CassandraDatacenter>().ok())
        .find(|d| {
            d.metadata.name.as_deref() == Some(dc_name.as_str())
                && d.metadata.namespace.as_deref().unwrap_or(&ns) == ns
        });

    let mut faults = check_spec(&sg);
    let user = match user_config(s, &sg, &ns) {
        Ok(u) => u,
        Err(f) => {
            faults.push(f);
            None
        }
    };
    let mut reason = REASON_INVALID;
    if let Some(dc) = &dc {
        let racks: Vec<String> = dc.racks().into_iter().map(|r| r.name).collect();
        faults.extend(sg.spec.datacenter_template.check_racks("spec", &racks));
    } else if faults.is_empty() {
        reason = REASON_NO_DATACENTER;
        faults.push((
            "spec.datacenterRef.name".to_string(),
            format!("no CassandraDatacenter {dc_name:?} in namespace {ns:?}"),
        ));
    }
    let live_counts = |names: &[String]| -> [i32; 4] {
        let mut c = [0; 4];
        for d in deployments.iter().filter(|d| {
            names.is_empty() || names.contains(&d.metadata.name.clone().unwrap_or_default())
        }) {
            let st = d.status.clone().unwrap_or_default();
            c[0] += st.replicas.unwrap_or(0);
            c[1] += st.ready_replicas.unwrap_or(0);
            c[2] += st.updated_replicas.unwrap_or(0);
            c[3] += st.available_replicas.unwrap_or(0);
        }
        c
    };

    if !faults.is_empty() {
        let message = faults
            .iter()
            .map(|(f, m)| format!("{f}: {m}"))
            .collect::<Vec<_>>()
            .join("; ");
        for o in &children {
            if let Some(f) = frozen(o) {
                plan.apply("", &f)?;
            }
        }
        if prev.condition_status(STARGATE_CONDITION_READY) != "False"
            || !prev
                .conditions
                .iter()
                .flatten()
                .any(|c| c.message.as_deref() == Some(message.as_str()))
        {
            plan.event(EventType::Warning, reason, message.clone());
        }
        let st = Status {
            progress: prev.progress.unwrap_or(StargateProgress::Pending),
            ready: false,
            reason: Some(reason.to_string()),
            message: Some(message),
            deployments: prev.deployment_refs.clone().unwrap_or_default(),
            service: prev.service_ref.clone(),
            counts: live_counts(&[]),
            size,
        };
        plan.set_status(&status_json(&prev, &st, s.now_ms))?;
        plan.requeue_after(WAIT_MS * 3);
        return Ok(plan);
    }
    let Some(dc) = dc else {
        return Ok(plan);
    };

    let pending = |plan: &mut Plan, message: String| -> Result<(), PolicyError> {
        for o in &children {
            if let Some(f) = frozen(o) {
                plan.apply("", &f)?;
            }
        }
        let st = Status {
            progress: StargateProgress::Pending,
            ready: false,
            reason: Some("DatacenterNotReady".into()),
            message: Some(message),
            deployments: prev.deployment_refs.clone().unwrap_or_default(),
            service: prev.service_ref.clone(),
            counts: live_counts(&[]),
            size,
        };
        plan.set_status(&status_json(&prev, &st, s.now_ms))?;
        plan.requeue_after(WAIT_MS);
        Ok(())
    };
    if !datacenter_ready(&dc) {
        pending(
            &mut plan,
            format!("waiting for CassandraDatacenter {dc_name} to be ready and not stopped"),
        )?;
        return Ok(plan);
    }
    let standalone = sg
        .metadata
        .labels
        .as_ref()
        .is_none_or(|l| !l.contains_key(K8SSANDRA_CLUSTER_NAME_LABEL));
    if standalone && !auth_schema(s, &mut plan, &sg, &dc) {
        pending(
            &mut plan,
            format!("creating the auth keyspace {AUTH_KEYSPACE} in datacenter {dc_name}"),
        )?;
        return Ok(plan);
    }

    let inputs = Inputs {
        sg: &sg,
        dc: &dc,
        user: user.as_ref(),
    };
    let served = service_monitor_served(s);
    plan.apply("", &inputs.config_map())?;
    let racks = inputs.racks();
    let rack_count = dc.racks().len() as i32;
    let first_deploy = !matches!(
        prev.progress,
        Some(StargateProgress::Deploying | StargateProgress::Running)
    );
    if first_deploy && rack_count > 0 && size % rack_count != 0 {
        plan.event(
            EventType::Warning,
            "UnevenStargateSpread",
            format!(
                "size {size} does not split evenly over the {rack_count} racks of {dc_name}: some racks get {} Stargate pods",
                if size < rack_count { "no" } else { "more" }
            ),
        );
    }
    let names: Vec<String> = racks.iter().map(|(_, n, _)| n.clone()).collect();
    for (rack, deployment, replicas) in &racks {
        let d = inputs
            .deployment(rack, deployment, *replicas)
            .map_err(|e| error(format!("rack {rack}: {e}")))?;
        plan.apply("", &d)?;
    }
    for o in telemetry::objects(&inputs, served) {
        plan.apply("", &o)?;
    }
    let counts = live_counts(&names);
    // A Deployment whose controller has not yet seen the latest template still reports
    // its old pods: not ready for this spec.
    let current = names.iter().all(|n| {
        deployments.iter().any(|d| {
            d.metadata.name.as_deref() == Some(n.as_str())
                && d.status
                    .as_ref()
                    .and_then(|st| st.observed_generation)
                    .zip(d.metadata.generation)
                    .is_some_and(|(o, g)| o >= g)
        })
    });
    let all_ready = current && counts[1] >= size && counts[2] >= size;
    let service = if all_ready || live_service {
        plan.apply("", &inputs.service())?;
        Some(inputs.service_name())
    } else {
        None
    };
    let running = all_ready && service.is_some();
    if !running {
        plan.requeue_after(WAIT_MS);
    }
    let st = Status {
        progress: if running {
            StargateProgress::Running
        } else {
            StargateProgress::Deploying
        },
        ready: running,
        reason: (!running).then(|| "Deploying".to_string()),
        message: (!running).then(|| format!("{}/{size} Stargate pods ready", counts[1])),
        deployments: names,
        service: if running {
            service
        } else {
            prev.service_ref.clone().filter(|_| live_service)
        },
        counts,
        size,
    };
    plan.set_status(&status_json(&prev, &st, s.now_ms))?;
    telemetry::finish(s, &sg, served, &mut plan);
    Ok(plan)
}
