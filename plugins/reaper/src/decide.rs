//! The reconcile of one Reaper: refuse bad input without deleting anything, wait for its
//! datacenter, apply the workload and the Service, and report progress.
//!
//! Progress: `Pending` (the datacenter is missing or not ready), `Deploying` (the workload
//! is not ready), `Configuring` (Reaper serves; the Cassandra cluster still has to be
//! registered with it). Registration goes through Reaper's REST API, which a policy cannot
//! call yet, so a deployed Reaper stays `Configuring` with `Ready=False`, reason
//! [`REASON_REGISTRATION`]; `Running` is reached once registration exists.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8ssandra_api::cassandra::{CassandraDatacenter, DatacenterConditionType as T, PROGRESS_READY};
use k8ssandra_api::reaper::{REAPER_CONDITION_READY, Reaper, ReaperProgress, ReaperStatus};
use k8ssandra_policy_sdk::conditions::{Cond, conditions};
use k8ssandra_policy_sdk::{EventType, Object, Plan, PolicyError, Snapshot, error};
use k8ssandra_telemetry::prometheus::service_monitor_served;
use serde_json::{Value, json};

use crate::render::{Inputs, service_name};
use crate::{DATACENTER_KIND, telemetry};

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
/// Reason of the Ready condition once Reaper serves: the cluster is not registered.
pub const REASON_REGISTRATION: &str = "RegistrationNotImplemented";

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
    if raw.pointer("/metadata/deletionTimestamp").is_some() {
        return Ok(plan);
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
    plan.apply("", &inputs.workload())?;
    plan.apply("", &inputs.service())?;
    for o in telemetry::objects(&inputs, served) {
        plan.apply("", &o)?;
    }
    let serving = workload_ready(s, kind, &name);
    if control_plane && serving {
        // Nothing to register: clusters come to it through their reaperRef.
        if prev.status.progress != Some(ReaperProgress::Running) {
            plan.event(
                EventType::Normal,
                "ReaperDeployed",
                format!("control-plane Reaper {name} is ready"),
            );
        }
        plan.set_status(&status_json(
            &prev,
            ReaperProgress::Running,
            true,
            REASON_CONTROL_PLANE,
            &format!(
                "control-plane Reaper serves on {}:8080; clusters register through their reaperRef",
                service_name(&name)
            ),
            s.now_ms,
        ))?;
        return Ok(plan);
    }
    let cluster_name = dc
        .as_ref()
        .map(|d| d.spec.cluster_name.clone())
        .unwrap_or_default();
    let (progress, reason, message) = if serving {
        (
            ReaperProgress::Configuring,
            REASON_REGISTRATION,
            format!(
                "Reaper serves on {}:8080; registering Cassandra cluster {} with it is not implemented yet (register it in Reaper's UI or REST API)",
                service_name(&name),
                cluster_name
            ),
        )
    } else {
        plan.requeue_after(WAIT_MS);
        (
            ReaperProgress::Deploying,
            REASON_DEPLOYING,
            format!("waiting for {kind} {name} to have a ready pod"),
        )
    };
    if serving && prev.status.progress != Some(ReaperProgress::Configuring) {
        plan.event(
            EventType::Normal,
            "ReaperDeployed",
            format!("Reaper {name} is ready; cluster registration is not implemented yet"),
        );
    }
    plan.set_status(&status_json(
        &prev, progress, false, reason, &message, s.now_ms,
    ))?;
    Ok(plan)
}
