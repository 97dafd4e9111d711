//! The reconcile of one Reaper: refuse bad input without deleting anything, wait for its
//! datacenter, apply the workload and the Service, and report progress.
//!
//! Progress: `Pending` (the datacenter is missing or not ready), `Deploying` (the workload
//! is not ready), `Configuring` (Reaper serves; the Cassandra cluster is being registered
//! with it, see [`crate::register`]), `Running` (registered; `Ready=True`). A Reaper that
//! fails to answer gets `Ready=False` with reason [`REASON_UNREACHABLE`] and the calls are
//! retried with a backoff; the workload is left as it is.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8ssandra_api::cassandra::{CassandraDatacenter, DatacenterConditionType as T, PROGRESS_READY};
use k8ssandra_api::reaper::{REAPER_CONDITION_READY, Reaper, ReaperProgress, ReaperStatus};
use k8ssandra_policy_sdk::conditions::{Cond, conditions};
use k8ssandra_policy_sdk::{EventType, Object, Plan, PolicyError, Snapshot, error};
use k8ssandra_telemetry::prometheus::service_monitor_served;
use serde_json::{Value, json};

use crate::render::{Inputs, service_name};
use k8ssandra_api::k8ssandra::K8ssandraCluster;
use k8ssandra_policy_sdk::bindings::k8ssandra::policy::types::ReaperAccess;

use crate::{DATACENTER_KIND, register, telemetry};

/// Requeue while waiting for something that announces itself anyway (a datacenter getting
/// ready, a pod becoming ready), in case an event is missed.
const WAIT_MS: u64 = 10_000;

/// Reason of the Ready condition while the spec is refused.
pub const REASON_INVALID: &str = "InvalidSpec";
/// Reason of the Ready condition while the datacenter named is missing.
pub const REASON_NO_DATACENTER: &str = "DatacenterNotFound";
/// Reason of the Ready condition while the datacenter is not ready.
pub const REASON_DC_NOT_READY: &str = "DatacenterNotReady";
/// Reason of the Ready condition while the workload is not ready.
pub const REASON_DEPLOYING: &str = "Deploying";
/// Reason of the Ready condition of a control-plane Reaper that serves.
pub const REASON_CONTROL_PLANE: &str = "ControlPlaneReaperReady";
/// Reason of the Ready condition while the cluster is being registered with Reaper.
pub const REASON_REGISTERING: &str = "Registering";
/// Reason of the Ready condition once the cluster is registered.
pub const REASON_REGISTERED: &str = "ClusterRegistered";
/// Reason of the Ready condition while Reaper's REST API fails.
pub const REASON_UNREACHABLE: &str = "ReaperUnreachable";
/// Reason of the Ready condition while a deleted Reaper deregisters its cluster.
pub const REASON_DEREGISTERING: &str = "Deregistering";
/// Annotation on the workload naming the cluster registered with this Reaper, so a deletion
/// that outlives the datacenter still knows what to deregister.
pub const CLUSTER_ANNOTATION: &str = "reaper.k8ssandra.io/registered-cluster";

const STORAGE_TYPES: [&str; 2] = ["cassandra", "local"];

/// Rules on the raw object, checked before it is parsed into the typed Reaper (whose enums
/// would refuse an unknown value without naming the field).
pub fn check_raw(v: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(st) = v.pointer("/spec/storageType")
        && !st.as_str().is_some_and(|s| STORAGE_TYPES.contains(&s))
    {
        out.push((
            "spec.storageType".to_string(),
            format!("{st} is not a storage type: use \"cassandra\" or \"local\""),
        ));
    }
    out
}

/// Rules that need only the Reaper itself: `(field, message)` each.
pub fn check_spec(r: &Reaper) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let dc = r
        .spec
        .datacenter_ref
        .as_ref()
        .and_then(|d| d.name.as_deref());
    let t = &r.spec.template;
    // Without a datacenter Reaper is a control-plane one (clusters register with it through
    // their reaperRef); it then has no Cassandra to keep its state in.
    if dc.is_none_or(str::is_empty) && t.storage_type() != k8ssandra_api::reaper::StorageType::Local
    {
        out.push((
            "spec.datacenterRef.name".to_string(),
            "required with storageType cassandra: Reaper keeps its state in that datacenter \
             (a control-plane Reaper without one uses storageType local)"
                .to_string(),
        ));
    }
    if t.storage_type() == k8ssandra_api::reaper::StorageType::Local && t.storage_config.is_none() {
        out.push((
            "spec.storageConfig".to_string(),
            "required when spec.storageType is local: the volume claim Reaper keeps its state in"
                .to_string(),
        ));
    }
    if let Some(h) = &t.heap_size
        && k8ssandra_api::quantity::quantity_bytes(&h.0).is_none_or(|b| b == 0)
    {
        out.push((
            "spec.heapSize".to_string(),
            format!("{:?} is not a positive quantity of bytes", h.0),
        ));
    }
    out.extend(telemetry::check(r));
    out
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
    // The registered cluster's name outlives the datacenter on the workload.
    if let Some(c) = meta
        .get("annotations")
        .and_then(|a| a.get(CLUSTER_ANNOTATION))
    {
        out["metadata"]["annotations"] = json!({CLUSTER_ANNOTATION: c});
    }
    // A ConfigMap's content is its `data` (the last good Vector configuration).
    for field in ["spec", "data"] {
        if let Some(x) = v.get(field) {
            out[field] = x.clone();
        }
    }
    // Fields the API server assigns and refuses to see changed or duplicated.
    if out["kind"] == "Service"
        && let Some(spec) = out.get_mut("spec").and_then(Value::as_object_mut)
    {
        for f in ["clusterIP", "clusterIPs"] {
            spec.remove(f);
        }
    }
    Some(out)
}

/// The status: progress, the Ready condition and the telemetry one, whose transition times
/// only move when their status does.
fn status_json(
    prev: &Prev,
    progress: ReaperProgress,
    ready: bool,
    reason: &'static str,
    message: &str,
    now_ms: u64,
) -> Value {
    let mut wanted = vec![Cond::new(REAPER_CONDITION_READY, ready, reason, message)];
    wanted.extend(prev.telemetry.clone());
    let conditions = conditions(prev.conditions.as_deref(), now_ms, wanted);
    json!({"progress": progress, "conditions": conditions})
}

/// What the last status said, read from the raw object (so a Reaper whose spec no longer
/// parses still has it), and the telemetry condition this reconcile writes next to Ready.
struct Prev {
    status: ReaperStatus,
    conditions: Option<Vec<Condition>>,
    telemetry: Option<Cond>,
}

fn prev_status(raw: &Value) -> Prev {
    let st = raw.get("status");
    Prev {
        status: st
            .and_then(|s| serde_json::from_value(s.clone()).ok())
            .unwrap_or_default(),
        conditions: st
            .and_then(|s| s.get("conditions"))
            .and_then(|c| serde_json::from_value(c.clone()).ok()),
        telemetry: None,
    }
}

/// Keeps every live child as it is and reports `Ready=False`.
fn hold(
    s: &Snapshot,
    plan: &mut Plan,
    prev: &Prev,
    progress: ReaperProgress,
    reason: &'static str,
    message: String,
    warn: bool,
) -> Result<(), PolicyError> {
    for o in s.children.iter().filter(|o| o.cluster.is_empty()) {
        if let Some(f) = frozen(o) {
            plan.apply("", &f)?;
        }
    }
    let same = prev
        .status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.status == "False" && c.message.as_deref() == Some(message.as_str()));
    if warn && !same {
        plan.event(EventType::Warning, reason, message.clone());
    }
    // A finalizer already held stays asserted: the host releases on deletion only the
    // finalizers it has seen a plan ask for, and a restarted host has seen none yet.
    let held = s.parent::<Value>().ok().is_some_and(|raw| {
        raw.pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| f.iter().any(|f| f == register::FINALIZER))
    });
    if held {
        plan.finalizers = Some(vec![register::FINALIZER.to_string()]);
    }
    plan.set_status(&status_json(
        prev, progress, false, reason, &message, s.now_ms,
    ))?;
    plan.requeue_after(WAIT_MS);
    Ok(())
}

/// Ready counts of the live workload named `name` of `kind`, current for its spec:
/// (ready replicas, whether the controller has seen the latest spec).
fn workload_ready(s: &Snapshot, kind: &str, name: &str) -> bool {
    let current = |generation: Option<i64>, observed: Option<i64>| {
        generation.zip(observed).is_some_and(|(g, o)| o >= g)
    };
    match kind {
        "Deployment" => s
            .children_of::<Deployment>()
            .into_iter()
            .filter(|(c, d)| c.is_empty() && d.metadata.name.as_deref() == Some(name))
            .any(|(_, d)| {
                let st = d.status.unwrap_or_default();
                current(d.metadata.generation, st.observed_generation)
                    && st.ready_replicas.unwrap_or(0) >= 1
                    && st.updated_replicas.unwrap_or(0) >= 1
            }),
        _ => s
            .children_of::<StatefulSet>()
            .into_iter()
            .filter(|(c, d)| c.is_empty() && d.metadata.name.as_deref() == Some(name))
            .any(|(_, d)| {
                let st = d.status.unwrap_or_default();
                current(d.metadata.generation, st.observed_generation)
                    && st.ready_replicas.unwrap_or(0) >= 1
                    && st.updated_replicas.unwrap_or(0) >= 1
            }),
    }
}

pub fn reconcile(s: &Snapshot) -> Result<Plan, PolicyError> {
    let raw: Value = s.parent()?;
    let mut plan = Plan::default();
    if let Some(at) = raw.pointer("/metadata/deletionTimestamp") {
        return deletion(s, &raw, at.as_str().unwrap_or_default());
    }
    let mut prev = prev_status(&raw);
    let prev_progress = prev.status.progress.unwrap_or(ReaperProgress::Pending);
    let mut faults = check_raw(&raw);
    let parsed = if faults.is_empty() {
        match serde_json::from_value::<Reaper>(raw.clone()) {
            Ok(r) => Some(r),
            Err(e) => {
                faults.push(("spec".to_string(), format!("does not parse: {e}")));
                None
            }
        }
    } else {
        None
    };
    let served = service_monitor_served(s);
    if let Some(r) = &parsed {
        faults.extend(check_spec(r));
        prev.telemetry = telemetry::condition(r, served);
    }
    let (Some(reaper), true) = (parsed, faults.is_empty()) else {
        let message = faults
            .iter()
            .map(|(f, m)| format!("{f}: {m}"))
            .collect::<Vec<_>>()
            .join("; ");
        hold(
            s,
            &mut plan,
            &prev,
            prev_progress,
            REASON_INVALID,
            message,
            true,
        )?;
        return Ok(plan);
    };
    let name = reaper
        .metadata
        .name
        .clone()
        .ok_or_else(|| error("Reaper has no name"))?;
    let ns = reaper.metadata.namespace.clone().unwrap_or_default();
    let dc_ref = reaper.spec.datacenter_ref.clone().unwrap_or_default();
    let dc_name = dc_ref.name.clone().unwrap_or_default();
    let dc_ns = dc_ref
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| ns.clone());
    let found: Option<CassandraDatacenter> = s
        .related
        .iter()
        .filter(|o| o.cluster.is_empty() && o.kind().as_deref() == Some(DATACENTER_KIND))
        .filter_map(|o| o.parse::<CassandraDatacenter>().ok())
        .find(|d| {
            d.metadata.name.as_deref() == Some(dc_name.as_str())
                && d.metadata.namespace.as_deref() == Some(dc_ns.as_str())
        });
    let control_plane = dc_name.is_empty();
    let dc = match (found, control_plane) {
        (_, true) => None,
        (Some(dc), false) => Some(dc),
        (None, false) => {
            hold(
                s,
                &mut plan,
                &prev,
                prev_progress,
                REASON_NO_DATACENTER,
                format!(
                    "spec.datacenterRef.name: no CassandraDatacenter {dc_name:?} in namespace {dc_ns:?}"
                ),
                true,
            )?;
            return Ok(plan);
        }
    };
    if let Some(dc) = &dc
        && !datacenter_ready(dc)
    {
        hold(
            s,
            &mut plan,
            &prev,
            ReaperProgress::Pending,
            REASON_DC_NOT_READY,
            format!("waiting for CassandraDatacenter {dc_name} to be ready and not stopped"),
            false,
        )?;
        return Ok(plan);
    }

    let inputs = Inputs {
        reaper: &reaper,
        dc: dc.as_ref(),
    };
    let kind = inputs.workload_kind();
    let cluster_name = dc
        .as_ref()
        .map(|d| register::reaper_cluster_name(&d.spec.cluster_name));
    let mut workload = inputs.workload();
    if let Some(c) = &cluster_name {
        workload["metadata"]["annotations"][CLUSTER_ANNOTATION] = json!(c);
    }
    // A control-plane Reaper: clusters that stopped referencing it are deregistered, and
    // the workload remembers the others (they are registered below).
    let pods = register::reaper_pods(s, &name, &ns);
    let wanted: Vec<register::Wanted> = match &cluster_name {
        Some(c) => vec![register::Wanted {
            name: c.clone(),
            seeds: register::seed_hosts(s, c, None, &dc_ns).0,
        }],
        None => referencing_clusters(s, &name, &ns),
    };
    if control_plane {
        let known = register::registered(s);
        let referenced: BTreeSet<String> = referencing(s, &name, &ns)
            .iter()
            .map(K8ssandraCluster::sanitized_name)
            .collect();
        let gone = register::deregister_unreferenced(
            s,
            &mut plan,
            pods.0.first(),
            &access(&reaper),
            &known,
            &referenced,
        );
        for c in &gone.done {
            plan.event(
                EventType::Normal,
                "ClusterDeregistered",
                format!("{c} no longer references Reaper {name}: removed from it"),
            );
        }
        if let Some(m) = &gone.failing {
            plan.event(
                EventType::Warning,
                "DeregistrationFailed",
                format!("Reaper {name}: {m} (retrying)"),
            );
        }
        let mut remembered = gone.left;
        for w in &wanted {
            let since = known.get(&w.name).copied().unwrap_or(s.now_ms);
            remembered.insert(w.name.clone(), since);
        }
        if !remembered.is_empty() {
            workload["metadata"]["annotations"][register::REGISTERED_ANNOTATION] =
                json!(serde_json::to_string(&remembered).unwrap_or_default());
        }
    }
    plan.apply("", &workload)?;
    plan.apply("", &inputs.service())?;
    for o in telemetry::objects(&inputs, served) {
        plan.apply("", &o)?;
    }
    // Held from the start: a finalizer cannot be added once the deletion is asked.
    plan.finalizers = Some(vec![register::FINALIZER.to_string()]);
    let serving = workload_ready(s, kind, &name);
    if !serving {
        plan.requeue_after(WAIT_MS);
        plan.set_status(&status_json(
            &prev,
            ReaperProgress::Deploying,
            false,
            REASON_DEPLOYING,
            &format!("waiting for {kind} {name} to have a ready pod"),
            s.now_ms,
        ))?;
        return Ok(plan);
    }
    let prev_ready = prev
        .status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == REAPER_CONDITION_READY)
        .cloned();
    if prev
        .status
        .progress
        .is_none_or(|p| matches!(p, ReaperProgress::Pending | ReaperProgress::Deploying))
    {
        plan.event(
            EventType::Normal,
            "ReaperDeployed",
            format!("Reaper {name} is ready"),
        );
    }
    let names: Vec<String> = wanted.iter().map(|w| w.name.clone()).collect();
    let svc = service_name(&name);
    let (ok_reason, ok_message) = if control_plane {
        (
            REASON_CONTROL_PLANE,
            if names.is_empty() {
                format!(
                    "control-plane Reaper serves on {svc}:8080; clusters register through their reaperRef"
                )
            } else {
                format!(
                    "control-plane Reaper serves on {svc}:8080; registered: {}",
                    names.join(", ")
                )
            },
        )
    } else {
        (
            REASON_REGISTERED,
            format!(
                "Reaper serves on {svc}:8080; Cassandra cluster {} is registered",
                names.join(", ")
            ),
        )
    };
    let was_running = prev.status.progress == Some(ReaperProgress::Running)
        && prev_ready
            .as_ref()
            .is_some_and(|c| c.status == "True" && c.message.as_deref() == Some(&ok_message));
    let state = match pods.0.first() {
        _ if wanted.is_empty() => register::Registered::Yes,
        Some(pod) => register::register(s, &mut plan, pod, &access(&reaper), &wanted),
        None => {
            plan.requeue_after(WAIT_MS);
            register::Registered::Pending
        }
    };
    let (progress, ready, reason, message) = match state {
        register::Registered::Yes => (ReaperProgress::Running, true, ok_reason, ok_message),
        // A periodic check in flight changes nothing.
        register::Registered::Pending if was_running => {
            (ReaperProgress::Running, true, ok_reason, ok_message)
        }
        register::Registered::Pending => (
            ReaperProgress::Configuring,
            false,
            REASON_REGISTERING,
            format!(
                "Reaper serves on {svc}:8080; registering Cassandra cluster {}",
                names.join(", ")
            ),
        ),
        register::Registered::Failing(m) => {
            if prev_ready
                .as_ref()
                .is_none_or(|c| c.reason.as_deref() != Some(REASON_UNREACHABLE))
            {
                plan.event(
                    EventType::Warning,
                    REASON_UNREACHABLE,
                    format!("Reaper {name} does not answer its REST API: {m}"),
                );
            }
            (
                if was_running {
                    ReaperProgress::Running
                } else {
                    ReaperProgress::Configuring
                },
                false,
                REASON_UNREACHABLE,
                format!("Reaper {name} does not answer its REST API (retrying): {m}"),
            )
        }
    };
    if ready && !was_running && !names.is_empty() {
        plan.event(
            EventType::Normal,
            "ClusterRegistered",
            format!("registered with Reaper {name}: {}", names.join(", ")),
        );
    }
    plan.set_status(&status_json(
        &prev, progress, ready, reason, &message, s.now_ms,
    ))?;
    Ok(plan)
}

/// How the host reaches this Reaper: with the UI user's Secret when Reaper's auth is on
/// (the same rule as its `REAPER_AUTH_ENABLED`).
fn access(r: &Reaper) -> ReaperAccess {
    ReaperAccess {
        ui_secret: r
            .spec
            .template
            .ui_user_secret_ref
            .as_ref()
            .map(|s| s.name.clone())
            .filter(|n| !n.is_empty()),
    }
}

/// The K8ssandraClusters of the namespace, not being deleted, whose `spec.reaper.reaperRef`
/// names this (control-plane) Reaper.
fn referencing(s: &Snapshot, name: &str, ns: &str) -> Vec<K8ssandraCluster> {
    s.related_by_kind::<K8ssandraCluster>("K8ssandraCluster")
        .into_iter()
        .filter(|(c, kc)| {
            c.is_empty()
                && kc.metadata.deletion_timestamp.is_none()
                && kc.metadata.namespace.as_deref() == Some(ns)
        })
        .map(|(_, kc)| kc)
        .filter(|kc| {
            kc.spec
                .reaper
                .as_ref()
                .and_then(|r| r.reaper_ref.as_ref())
                .is_some_and(|r| {
                    r.name.as_deref() == Some(name)
                        && r.namespace
                            .as_deref()
                            .is_none_or(|n| n.is_empty() || n == ns)
                })
        })
        .collect()
}

/// The clusters referencing this (control-plane) Reaper ([`referencing`]) that are ready
/// to register, with their seeds from every cluster the host knows.
fn referencing_clusters(s: &Snapshot, name: &str, ns: &str) -> Vec<register::Wanted> {
    let mut out: Vec<register::Wanted> = referencing(s, name, ns)
        .into_iter()
        .filter_map(|kc| {
            let cluster = kc.sanitized_name();
            let (seeds, dcs) = register::seed_hosts(s, &cluster, None, ns);
            let declared = kc
                .spec
                .cassandra
                .as_ref()
                .map_or(0, |c| c.datacenters.as_ref().map_or(0, Vec::len));
            // Registered once every datacenter has a ready pod, so each one seeds it.
            (dcs > 0 && dcs >= declared).then_some(register::Wanted {
                name: cluster,
                seeds,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    out
}

/// A deleted Reaper: while its finalizer is held, its children stay as they are and the
/// cluster(s) are removed from Reaper; then the finalizer goes.
fn deletion(s: &Snapshot, raw: &Value, at: &str) -> Result<Plan, PolicyError> {
    let mut plan = Plan::default();
    let held = raw
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|f| f == register::FINALIZER));
    if !held {
        return Ok(plan);
    }
    let name = raw
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let ns = raw
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let reaper: Option<Reaper> = serde_json::from_value(raw.clone()).ok();
    // The cluster named on the workload when it was applied; a control-plane Reaper's
    // clusters are those still referencing it.
    let mut names: Vec<String> = s
        .children
        .iter()
        .filter(|o| o.cluster.is_empty())
        .filter_map(|o| o.value().ok())
        .filter_map(|v| {
            v.pointer(&format!(
                "/metadata/annotations/{}",
                CLUSTER_ANNOTATION.replace('/', "~1")
            ))
            .and_then(Value::as_str)
            .map(str::to_string)
        })
        .collect();
    if names.is_empty() {
        names = referencing_clusters(s, &name, &ns)
            .into_iter()
            .map(|w| w.name)
            .chain(register::registered(s).into_keys())
            .collect();
        names.sort();
        names.dedup();
    }
    let access = reaper
        .as_ref()
        .map(access)
        .unwrap_or(ReaperAccess { ui_secret: None });
    let pods = register::reaper_pods(s, &name, &ns);
    let prev = prev_status(raw);
    let progress = prev.status.progress.unwrap_or(ReaperProgress::Pending);
    match register::deregister(s, &mut plan, &pods, &access, &names, at) {
        register::Deregistered::Done => {
            if pods.1 && !names.is_empty() {
                plan.event(
                    EventType::Normal,
                    "ClusterDeregistered",
                    format!("removed from Reaper {name}: {}", names.join(", ")),
                );
            }
            plan.finalizers = Some(vec![]);
        }
        register::Deregistered::GaveUp(m) => {
            plan.event(
                EventType::Warning,
                "DeregistrationAbandoned",
                format!(
                    "gave up deregistering {} from Reaper {name} after {} minutes ({m}); \
                     the cluster may still be registered there",
                    names.join(", "),
                    register::GIVE_UP_MS / 60_000
                ),
            );
            plan.finalizers = Some(vec![]);
        }
        register::Deregistered::Waiting(m) => {
            // The pods must outlive the call: keep every live child as it is.
            for o in s.children.iter().filter(|o| o.cluster.is_empty()) {
                if let Some(f) = frozen(o) {
                    plan.apply("", &f)?;
                }
            }
            plan.set_status(&status_json(
                &prev,
                progress,
                false,
                REASON_DEREGISTERING,
                &m,
                s.now_ms,
            ))?;
        }
    }
    Ok(plan)
}
