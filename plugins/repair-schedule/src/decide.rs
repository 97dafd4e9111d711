//! The reconcile of one RepairSchedule.
//!
//! Every change to Reaper is decided from a listing of the cluster's schedules: the list's
//! id is `rs/list/<n>/<window>`, where `n` counts the changes already made (succeeded
//! `rs/m/...` operations) and the window moves every [`REFRESH_MS`] (or
//! [`REFRESH_IDLE_MS`] once the last run has ended), so a change is always followed by a
//! fresh list. A change's id is `rs/m/<n>/<what>`: decided again from a later list of the
//! same `n` (the change is still in flight), it is the same id, and the host never runs an
//! id twice; so a schedule is never created twice.
//!
//! Which schedule is ours: the one whose id the status holds, if Reaper still has it under
//! our owner; else one of our owner repairing exactly the declared keyspace, tables,
//! datacenters and nodes (a status lost with a re-created object). None: it is created.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8ssandra_api::k8ssandra::K8ssandraCluster;
use k8ssandra_api::repair_schedule::{
    CONDITION_READY, DEFAULT_DAYS_BETWEEN, OWNER, RepairParallelism as Par, RepairSchedule,
    RepairScheduleStatus,
};
use k8ssandra_policy_sdk::bindings::k8ssandra::policy::types::{
    ReaperAccess, ReaperClusterRef, ReaperSchedule, ReaperScheduleRef, ReaperScheduleState,
    ReaperScheduleUpdate,
};
use k8ssandra_policy_sdk::conditions::{Cond, conditions};
use k8ssandra_policy_sdk::{
    EventType, NodeRef, OperationKind, Outcome, Plan, PolicyError, Snapshot,
};
use k8ssandra_repair::check::{intensity_of, parse_checked};
use k8ssandra_repair::repair::{id_of, par_name, parallelism, parse_list, repair, run_status};
use k8ssandra_repair::target::{candidates, cluster_of, target};
use serde_json::Value;

use crate::check::check;

/// Finalizer held while Reaper may have our schedule.
pub const FINALIZER: &str = "reaper.k8ssandra.io/repair-schedule";
/// How often Reaper's schedules and runs are read again while a run is due or running.
pub const REFRESH_MS: u64 = 30_000;
/// How often once the last run has ended (the next one is days away).
pub const REFRESH_IDLE_MS: u64 = 10 * 60_000;
/// How long a deletion waits for an unreachable Reaper before giving up on deleting the
/// schedule from it (then a Warning event says so).
pub const GIVE_UP_MS: u64 = 10 * 60_000;
/// Requeue while waiting for something that announces itself anyway.
const WAIT_MS: u64 = 15_000;
/// Retries of a failed call from 5 s, doubled, at most one minute; a call in flight is
/// looked at again every 5 s, in case its completion is missed.
const BACKOFF: Backoff = Backoff {
    retry_base_ms: 5_000,
    retry_max_ms: 60_000,
    poll_ms: 5_000,
};

pub const REASON_SYNCED: &str = "ScheduleInSync";
pub const REASON_INVALID: &str = "InvalidSpec";
pub const REASON_NO_CLUSTER: &str = "ClusterNotFound";
pub const REASON_NO_REAPER: &str = "ReaperNotRunning";
pub const REASON_UNREACHABLE: &str = "ReaperUnreachable";
pub const REASON_REFUSED: &str = "ScheduleRefused";
pub const REASON_KEYSPACE: &str = "KeyspaceNotFound";
pub const REASON_CONFLICT: &str = "ScheduleConflict";
pub const REASON_SYNCING: &str = "Syncing";

use k8ssandra_policy_sdk::calls::{self, Backoff, Call};

/// Drives the call `base` (attempts `base`, `base/r1`, ...) with this policy's backoff.
pub fn call(
    s: &Snapshot,
    plan: &mut Plan,
    base: &str,
    target: &NodeRef,
    kind: OperationKind,
) -> Call {
    calls::call(s, plan, base, target, kind, BACKOFF)
}

/// The number of changes made to Reaper so far (distinct `rs/m/...` operations that
/// succeeded, retries counted once).
fn changes_made(s: &Snapshot) -> usize {
    let bases: BTreeSet<&str> = s
        .results
        .iter()
        .filter(|r| r.id.starts_with("rs/m/") && matches!(r.outcome, Outcome::Succeeded(_)))
        .map(|r| match r.id.rsplit_once("/r") {
            Some((b, n)) if n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty() => b,
            _ => r.id.as_str(),
        })
        .collect();
    bases.len()
}

/// The id of the schedule the newest successful create answered with.
fn created(s: &Snapshot) -> Option<String> {
    s.results
        .iter()
        .filter(|r| {
            r.id.starts_with("rs/m/") && (r.id.ends_with("/create") || r.id.contains("/create/r"))
        })
        .filter_map(|r| match &r.outcome {
            Outcome::Succeeded(body) => Some((r.at_ms, body)),
            _ => None,
        })
        .max_by_key(|(at, _)| *at)
        .and_then(|(_, body)| serde_json::from_str::<Value>(body).ok())
        .and_then(|v| id_of(&v))
}

/// The schedule Reaper must have.
pub fn desired(rs: &RepairSchedule, cluster_name: &str, access: ReaperAccess) -> ReaperSchedule {
    let spec = &rs.spec;
    let cause = format!(
        "RepairSchedule {}/{}",
        rs.metadata.namespace.as_deref().unwrap_or_default(),
        rs.metadata.name.as_deref().unwrap_or_default()
    );
    ReaperSchedule {
        repair: repair(&spec.repair, cluster_name, access, cause, None),
        days_between: spec.days_between.unwrap_or(DEFAULT_DAYS_BETWEEN),
        trigger_time: spec.trigger_time.clone(),
        adaptive: spec.adaptive.unwrap_or(false),
        percent_unrepaired_threshold: spec.percent_unrepaired_threshold,
    }
}

fn strs(v: &Value, field: &str) -> BTreeSet<String> {
    v.get(field)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect()
}

fn uint(v: &Value, field: &str) -> Option<u64> {
    v.get(field).and_then(Value::as_u64)
}

/// Whether a listed schedule repairs what `want` repairs (what Reaper cannot change in
/// place). A list left empty in the spec means "all", whatever Reaper shows for it.
pub fn same_scope(v: &Value, want: &ReaperSchedule) -> bool {
    let r = &want.repair;
    let set = |l: &[String]| l.iter().cloned().collect::<BTreeSet<String>>();
    let scope = |field: &str, l: &[String]| l.is_empty() || strs(v, field) == set(l);
    v.get("keyspace").and_then(Value::as_str) == Some(r.keyspace.as_str())
        && scope("tables", &r.tables)
        && scope("datacenters", &r.datacenters)
        && scope("nodes", &r.nodes)
        && strs(v, "blacklistedTables") == set(&r.blacklisted_tables)
        && v.get("incremental")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            == r.incremental
}

/// Whether a listed schedule has the tunables Reaper changes in place.
pub fn same_tunables(v: &Value, want: &ReaperSchedule, par: Par) -> bool {
    let r = &want.repair;
    let intensity = v.get("intensity").and_then(intensity_of);
    let opt = |field: &str, w: Option<u32>| w.is_none_or(|w| uint(v, field) == Some(u64::from(w)));
    intensity.is_some_and(|i| (i - r.intensity).abs() < 1e-9)
        && v.get("parallelism").and_then(Value::as_str) == Some(par_name(par))
        && uint(v, "daysBetween") == Some(u64::from(want.days_between))
        && opt("segmentCountPerNode", r.segment_count_per_node)
        && opt("repairThreadCount", r.repair_thread_count)
        && v.get("adaptive").and_then(Value::as_bool).unwrap_or(false) == want.adaptive
        && opt(
            "percentUnrepairedThreshold",
            want.percent_unrepaired_threshold,
        )
}

fn is_ours(v: &Value) -> bool {
    v.get("owner").and_then(Value::as_str) == Some(OWNER)
}

/// Our schedule among Reaper's: the one the status names, else one repairing the same.
pub fn ours<'a>(
    listed: &'a [Value],
    known: Option<&str>,
    want: &ReaperSchedule,
) -> Option<&'a Value> {
    listed
        .iter()
        .filter(|v| is_ours(v))
        .find(|v| known.is_some() && id_of(v).as_deref() == known)
        .or_else(|| {
            listed
                .iter()
                .filter(|v| is_ours(v))
                .find(|v| same_scope(v, want))
        })
}

/// The status being built, with the previous one for the conditions' transition times.
struct Out {
    prev: RepairScheduleStatus,
    status: RepairScheduleStatus,
}

impl Out {
    fn ready(
        &mut self,
        plan: &mut Plan,
        now_ms: u64,
        ok: bool,
        reason: &'static str,
        message: String,
    ) -> Result<(), PolicyError> {
        let prev: Option<Vec<Condition>> = self.prev.conditions.clone();
        self.status.conditions = Some(conditions(
            prev.as_deref(),
            now_ms,
            vec![Cond::new(CONDITION_READY, ok, reason, &message)],
        ));
        plan.set_status(&self.status)
    }

    /// A change in flight or just made: the condition stays as it was (a change of
    /// tunables is not an outage), or says `Syncing` when there was none yet.
    fn keep(&mut self, plan: &mut Plan, now_ms: u64, message: String) -> Result<(), PolicyError> {
        if self.prev.conditions.is_some()
            && prev_reason(&self.prev).as_deref() == Some(REASON_SYNCED)
        {
            self.status.conditions = self.prev.conditions.clone();
            return plan.set_status(&self.status);
        }
        self.ready(plan, now_ms, false, REASON_SYNCING, message)
    }
}

fn prev_reason(prev: &RepairScheduleStatus) -> Option<String> {
    prev.conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == CONDITION_READY)
        .map(|c| c.reason.clone())
}

pub fn reconcile(s: &Snapshot) -> Result<Plan, PolicyError> {
    let raw: Value = s.parent()?;
    let mut plan = Plan::default();
    let prev: RepairScheduleStatus = raw
        .get("status")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let mut out = Out {
        prev: prev.clone(),
        status: prev.clone(),
    };
    if let Some(at) = raw.pointer("/metadata/deletionTimestamp") {
        return deletion(s, &raw, &prev, at.as_str().unwrap_or_default());
    }
    let rs: RepairSchedule = match parse_checked(&raw, &check(&raw)) {
        Ok(rs) => rs,
        Err(message) => {
            if prev_reason(&prev).as_deref() != Some(REASON_INVALID) {
                plan.event(EventType::Warning, REASON_INVALID, message.clone());
            }
            out.ready(&mut plan, s.now_ms, false, REASON_INVALID, message)?;
            return Ok(plan);
        }
    };
    // Held from the start: a finalizer cannot be added once the deletion is asked.
    plan.finalizers = Some(vec![FINALIZER.to_string()]);
    let ns = rs.metadata.namespace.clone().unwrap_or_default();
    let Some(kc) = cluster_of(s, &rs.spec.repair, &ns) else {
        plan.requeue_after(WAIT_MS);
        out.ready(
            &mut plan,
            s.now_ms,
            false,
            REASON_NO_CLUSTER,
            format!(
                "spec.cluster: no K8ssandraCluster {:?} in namespace {ns:?}",
                rs.spec.repair.cluster
            ),
        )?;
        return Ok(plan);
    };
    let cluster_name = kc.sanitized_name();
    let (target, _) = target(s, candidates(s, &rs.spec.repair, &ns, &kc, true));
    let Some(t) = target else {
        plan.requeue_after(WAIT_MS);
        out.ready(
            &mut plan,
            s.now_ms,
            false,
            REASON_NO_REAPER,
            format!(
                "waiting for a Running Reaper of K8ssandraCluster {} with a ready pod (spec.reaper of the cluster, or spec.reaperRef)",
                rs.spec.repair.cluster
            ),
        )?;
        return Ok(plan);
    };
    out.status.reaper = Some(t.label());
    let access = t.access();
    let want = desired(&rs, &cluster_name, access.clone());
    let par = parallelism(&rs.spec.repair);
    let n = changes_made(s);
    let idle = prev.last_run.as_ref().is_some_and(|r| {
        matches!(
            r.state.as_deref(),
            Some("DONE" | "ERROR" | "ABORTED" | "DELETED")
        )
    });
    let refresh = if idle { REFRESH_IDLE_MS } else { REFRESH_MS };
    let w = s.now_ms / refresh;
    plan.requeue_after(((w + 1) * refresh).saturating_sub(s.now_ms).max(1));
    let cref = ReaperClusterRef {
        access: access.clone(),
        name: cluster_name.clone(),
    };
    let unreachable = |plan: &mut Plan, out: &mut Out, m: String| -> Result<(), PolicyError> {
        if prev_reason(&out.prev).as_deref() != Some(REASON_UNREACHABLE) {
            plan.event(
                EventType::Warning,
                REASON_UNREACHABLE,
                format!("Reaper {} does not answer: {m}", t.label()),
            );
        }
        out.ready(
            plan,
            s.now_ms,
            false,
            REASON_UNREACHABLE,
            format!("Reaper {} does not answer (retrying): {m}", t.label()),
        )
    };
    let listed = match call(
        s,
        &mut plan,
        &format!("rs/list/{n}/{refresh}/{w}"),
        &t.pod,
        OperationKind::ReaperListSchedules(cref.clone()),
    ) {
        Call::Done(body) => parse_list(&body),
        Call::Pending => {
            // A schedule just created is ours before the next list shows it.
            if let Some(id) = created(s)
                && prev.schedule_id.as_deref() != Some(id.as_str())
            {
                out.status.schedule_id = Some(id);
                out.keep(
                    &mut plan,
                    s.now_ms,
                    format!(
                        "reading the schedules of {cluster_name} in Reaper {}",
                        t.label()
                    ),
                )?;
            } else if prev.conditions.is_none() {
                out.ready(
                    &mut plan,
                    s.now_ms,
                    false,
                    REASON_SYNCING,
                    format!(
                        "reading the schedules of {cluster_name} in Reaper {}",
                        t.label()
                    ),
                )?;
            }
            return Ok(plan);
        }
        Call::Failed(m, _) => {
            unreachable(&mut plan, &mut out, m)?;
            return Ok(plan);
        }
    };
    let mine = ours(&listed, prev.schedule_id.as_deref(), &want).cloned();
    let active = rs.spec.paused != Some(true);
    let change: Option<(String, OperationKind, &'static str)> = match &mine {
        None => Some((
            format!("rs/m/{n}/create"),
            OperationKind::ReaperCreateSchedule(want.clone()),
            "create",
        )),
        Some(v) => {
            let id = id_of(v).unwrap_or_default();
            let sref = ReaperScheduleRef {
                access: access.clone(),
                id: id.clone(),
                owner: OWNER.to_string(),
            };
            if !same_scope(v, &want) {
                // Reaper cannot change what a schedule repairs: the next list creates anew.
                Some((
                    format!("rs/m/{n}/delete/{id}"),
                    OperationKind::ReaperDeleteSchedule(sref),
                    "replace",
                ))
            } else if !same_tunables(v, &want, par) {
                Some((
                    format!("rs/m/{n}/update/{id}"),
                    OperationKind::ReaperUpdateSchedule(ReaperScheduleUpdate {
                        id: id.clone(),
                        schedule: want.clone(),
                    }),
                    "update",
                ))
            } else if (v.get("state").and_then(Value::as_str) == Some("ACTIVE")) != active {
                Some((
                    format!("rs/m/{n}/state/{id}/{active}"),
                    OperationKind::ReaperSetScheduleState(ReaperScheduleState {
                        schedule: sref,
                        active,
                    }),
                    if active { "activate" } else { "pause" },
                ))
            } else {
                None
            }
        }
    };
    if let Some(v) = &mine {
        out.status.schedule_id = id_of(v);
        out.status.state = v.get("state").and_then(Value::as_str).map(str::to_string);
        out.status.next_activation = v
            .get("nextActivation")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    if let Some((id, kind, what)) = change {
        match call(s, &mut plan, &id, &t.pod, kind) {
            Call::Done(body) => {
                plan.event(
                    EventType::Normal,
                    "RepairScheduleChanged",
                    format!(
                        "{what}: schedule of keyspace {} in Reaper {}",
                        rs.spec.repair.keyspace,
                        t.label()
                    ),
                );
                // The answer is the schedule (create, update, state): its id right away.
                if let Ok(v) = serde_json::from_str::<Value>(&body)
                    && let Some(id) = id_of(&v)
                {
                    out.status.schedule_id = Some(id);
                    out.status.state = v.get("state").and_then(Value::as_str).map(str::to_string);
                }
                if what == "replace" {
                    out.status.schedule_id = None;
                }
                plan.requeue_after(1);
                out.keep(
                    &mut plan,
                    s.now_ms,
                    format!(
                        "Reaper's schedule of keyspace {} is being brought to the spec",
                        rs.spec.repair.keyspace
                    ),
                )?;
            }
            Call::Pending => {
                out.keep(
                    &mut plan,
                    s.now_ms,
                    format!(
                        "Reaper's schedule of keyspace {} is being brought to the spec ({what})",
                        rs.spec.repair.keyspace
                    ),
                )?;
            }
            Call::Failed(m, _) => {
                let lower = m.to_lowercase();
                let conflict = m.contains("409") || lower.contains("already exists");
                let missing = lower.contains("does not exist") || lower.contains("not found");
                let refused = conflict || missing || m.contains("400");
                if what == "create" && refused {
                    let (reason, msg) = if conflict {
                        (
                            REASON_CONFLICT,
                            format!(
                                "spec.keyspace: Reaper already has a schedule of keyspace {:?} with the same tables, of another owner (never changed by the operator); remove it or declare other tables ({m})",
                                rs.spec.repair.keyspace
                            ),
                        )
                    } else if missing && lower.contains("keyspace") {
                        (
                            REASON_KEYSPACE,
                            format!(
                                "spec.keyspace: Reaper refused a schedule of keyspace {:?}: it must exist in Cassandra cluster {cluster_name} ({m})",
                                rs.spec.repair.keyspace
                            ),
                        )
                    } else {
                        (REASON_REFUSED, format!("Reaper refused the schedule: {m}"))
                    };
                    if prev_reason(&prev).as_deref() != Some(reason) {
                        plan.event(EventType::Warning, reason, msg.clone());
                    }
                    out.ready(&mut plan, s.now_ms, false, reason, msg)?;
                } else {
                    unreachable(&mut plan, &mut out, m)?;
                }
            }
        }
        return Ok(plan);
    }
    // In sync: the runs of our schedule for the status.
    let id = out.status.schedule_id.clone().unwrap_or_default();
    match call(
        s,
        &mut plan,
        &format!("rs/runs/{n}/{refresh}/{w}"),
        &t.pod,
        OperationKind::ReaperListRuns(cref),
    ) {
        Call::Done(body) => {
            let runs = parse_list(&body);
            if let Some(r) = runs.iter().find(|r| {
                r.get("scheduleId").and_then(Value::as_str) == Some(id.as_str())
                    || (r.get("scheduleId").is_none_or(Value::is_null)
                        && r.get("owner").and_then(Value::as_str) == Some(OWNER)
                        && r.get("keyspace").and_then(Value::as_str)
                            == Some(rs.spec.repair.keyspace.as_str()))
            }) {
                out.status.last_run = Some(run_status(r));
            }
        }
        Call::Pending => {}
        Call::Failed(m, _) => {
            unreachable(&mut plan, &mut out, m)?;
            return Ok(plan);
        }
    }
    if prev_reason(&prev).as_deref() != Some(REASON_SYNCED) {
        plan.event(
            EventType::Normal,
            REASON_SYNCED,
            format!(
                "Reaper {} has schedule {id} for keyspace {}",
                t.label(),
                rs.spec.repair.keyspace
            ),
        );
    }
    out.ready(
        &mut plan,
        s.now_ms,
        true,
        REASON_SYNCED,
        format!(
            "Reaper {} has schedule {id} of keyspace {} ({})",
            t.label(),
            rs.spec.repair.keyspace,
            if active { "active" } else { "paused" }
        ),
    )?;
    Ok(plan)
}

/// Unix milliseconds of an RFC 3339 time in UTC (fractions ignored).
fn parse_rfc3339(t: &str) -> Option<u64> {
    let num = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss)
        .ok()
        .map(|s| s * 1000)
}

/// A deleted RepairSchedule: our schedule is deleted from Reaper, then the finalizer goes.
fn deletion(
    s: &Snapshot,
    raw: &Value,
    prev: &RepairScheduleStatus,
    at: &str,
) -> Result<Plan, PolicyError> {
    let mut plan = Plan::default();
    let held = raw
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER));
    if !held {
        return Ok(plan);
    }
    let release = |plan: &mut Plan| plan.finalizers = Some(vec![]);
    let Some(id) = prev.schedule_id.clone() else {
        release(&mut plan);
        return Ok(plan);
    };
    let rs: Option<RepairSchedule> = serde_json::from_value(raw.clone()).ok();
    let ns = raw
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kc = rs.as_ref().and_then(|rs| {
        s.related_by_kind::<K8ssandraCluster>("K8ssandraCluster")
            .into_iter()
            .map(|(_, k)| k)
            .find(|k| {
                k.metadata.name.as_deref() == Some(rs.spec.repair.cluster.as_str())
                    && k.metadata.namespace.as_deref() == Some(ns)
            })
    });
    let (Some(rs), Some(kc)) = (rs, kc) else {
        // The cluster is gone: its deregistration took our schedules with it.
        release(&mut plan);
        return Ok(plan);
    };
    let (target, any) = target(s, candidates(s, &rs.spec.repair, ns, &kc, false));
    let overdue = s
        .now_ms
        .saturating_sub(parse_rfc3339(at).unwrap_or(s.now_ms))
        >= GIVE_UP_MS;
    let give_up = |plan: &mut Plan, why: String| {
        plan.event(
            EventType::Warning,
            "ScheduleDeletionAbandoned",
            format!(
                "gave up deleting Reaper schedule {id} after {} minutes ({why}); it may still exist in Reaper",
                GIVE_UP_MS / 60_000
            ),
        );
        plan.finalizers = Some(vec![]);
    };
    let Some(t) = target else {
        if !any {
            // No Reaper pod at all: nothing holds the schedule any more.
            release(&mut plan);
        } else if overdue {
            give_up(&mut plan, "no ready Reaper pod".to_string());
        } else {
            plan.requeue_after(WAIT_MS);
        }
        return Ok(plan);
    };
    let kind = OperationKind::ReaperDeleteSchedule(ReaperScheduleRef {
        access: t.access(),
        id: id.clone(),
        owner: OWNER.to_string(),
    });
    match call(s, &mut plan, &format!("rs/delete/{id}"), &t.pod, kind) {
        Call::Done(_) => {
            plan.event(
                EventType::Normal,
                "RepairScheduleDeleted",
                format!("deleted schedule {id} from Reaper {}", t.label()),
            );
            release(&mut plan);
        }
        Call::Pending => {}
        Call::Failed(m, _) if overdue => give_up(&mut plan, m),
        Call::Failed(m, _) => {
            let mut out = Out {
                prev: prev.clone(),
                status: prev.clone(),
            };
            out.ready(
                &mut plan,
                s.now_ms,
                false,
                REASON_UNREACHABLE,
                format!(
                    "deleting schedule {id} from Reaper {} failed (retrying): {m}",
                    t.label()
                ),
            )?;
        }
    }
    Ok(plan)
}
