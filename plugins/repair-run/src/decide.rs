//! The reconcile of one RepairRun.
//!
//! Operation ids (the host never runs an id twice and remembers outcomes, until it
//! restarts):
//! - `rr/adopt/<uid>/<n>`: Reaper's runs listed before attempt `n` of starting one; a run
//!   of our owner whose cause carries the object's UID is ours and is adopted (a start
//!   whose outcome was lost, e.g. with a restarted operator). So the list is always newer
//!   than the last failed attempt, and a restarted operator lists afresh (`n` = 0 again,
//!   but no outcome is remembered).
//! - `rr/repair/<uid>/<n>`: attempt `n` (the number of failed attempts before it) of
//!   `reaper-repair`, which creates, starts and follows the run; `running(<run id>)` tells
//!   the run's id.
//! - `rr/runs/<uid>/<window>`: the runs listed every [`REFRESH_MS`] while the run goes,
//!   for its progress (and its end, when the attempt's outcome is not ours to see).

use k8ssandra_api::repair_run::{CONDITION_COMPLETE, CONDITION_FAILED, RepairRun, RepairRunStatus};
use k8ssandra_api::repair_schedule::OWNER;
use k8ssandra_policy_sdk::bindings::k8ssandra::policy::types::ReaperClusterRef;
use k8ssandra_policy_sdk::calls::{self, Backoff, Call};
use k8ssandra_policy_sdk::conditions::{Cond, conditions, is};
use k8ssandra_policy_sdk::{EventType, OperationKind, Outcome, Plan, PolicyError, Snapshot};
use k8ssandra_repair::check::parse_checked;
use k8ssandra_repair::repair::{id_of, is_over, keyspace_missing, parse_list, repair};
use k8ssandra_repair::target::{Target, candidates, cluster_of, target};
use serde_json::Value;

use crate::check;

/// How often a run in progress is read again.
pub const REFRESH_MS: u64 = 10_000;
/// Requeue while waiting for something that announces itself anyway.
const WAIT_MS: u64 = 15_000;
/// Retries of a failed list from 5 s, doubled, at most one minute.
const BACKOFF: Backoff = Backoff {
    retry_base_ms: 5_000,
    retry_max_ms: 60_000,
    poll_ms: 5_000,
};

pub const REASON_INVALID: &str = "InvalidSpec";
pub const REASON_NO_CLUSTER: &str = "ClusterNotFound";
pub const REASON_NO_REAPER: &str = "ReaperNotRunning";
pub const REASON_UNREACHABLE: &str = "ReaperUnreachable";
pub const REASON_KEYSPACE: &str = "KeyspaceNotFound";
pub const REASON_REFUSED: &str = "RepairRefused";
pub const REASON_STARTING: &str = "Starting";
pub const REASON_RUNNING: &str = "Running";
pub const REASON_DONE: &str = "RunDone";
pub const REASON_FAILED: &str = "RunFailed";
pub const REASON_LOST: &str = "RunLost";
pub const REASON_NO_FAILURE: &str = "NoFailure";

/// The status being built, with the previous one for the transition times.
struct Out {
    prev: RepairRunStatus,
    status: RepairRunStatus,
}

impl Out {
    fn prev_reason(&self) -> Option<&str> {
        self.prev
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == CONDITION_COMPLETE)
            .map(|c| c.reason.as_str())
    }

    /// Not complete (yet): `reason` says why; a Warning event when it is new and one.
    fn waiting(
        &mut self,
        plan: &mut Plan,
        now_ms: u64,
        reason: &'static str,
        message: String,
        warn: bool,
    ) -> Result<(), PolicyError> {
        if warn && self.prev_reason() != Some(reason) {
            plan.event(EventType::Warning, reason, message.clone());
        }
        self.write(
            plan,
            now_ms,
            Cond::new(CONDITION_COMPLETE, false, reason, message),
            None,
        )
    }

    fn write(
        &mut self,
        plan: &mut Plan,
        now_ms: u64,
        complete: Cond,
        failed: Option<Cond>,
    ) -> Result<(), PolicyError> {
        let failed = failed.unwrap_or_else(|| {
            Cond::new(
                CONDITION_FAILED,
                false,
                REASON_NO_FAILURE,
                "the run has not failed",
            )
        });
        self.status.conditions = Some(conditions(
            self.prev.conditions.as_deref(),
            now_ms,
            vec![complete, failed],
        ));
        plan.set_status(&self.status)
    }

    /// The run as Reaper reports it; finishes the object when the run is over.
    fn run(
        &mut self,
        plan: &mut Plan,
        now_ms: u64,
        r: &Value,
        keyspace: &str,
    ) -> Result<(), PolicyError> {
        let s = |f: &str| r.get(f).and_then(Value::as_str).map(str::to_string);
        let u = |f: &str| {
            r.get(f)
                .and_then(Value::as_u64)
                .map(|x| u32::try_from(x).unwrap_or(u32::MAX))
        };
        let st = &mut self.status;
        st.run_id = id_of(r).or(st.run_id.take());
        st.state = s("state").or(st.state.take());
        st.segments_repaired = u("segmentsRepaired").or(st.segments_repaired);
        st.total_segments = u("totalSegments").or(st.total_segments);
        st.start_time = s("startTime").or(st.start_time.take());
        st.end_time = s("endTime").or(st.end_time.take());
        st.last_event = s("lastEvent").or(st.last_event.take());
        let id = st.run_id.clone().unwrap_or_default();
        let state = st.state.clone().unwrap_or_default();
        let progress = format!(
            "{}/{} segments",
            st.segments_repaired.unwrap_or(0),
            st.total_segments.unwrap_or(0)
        );
        let event = st.last_event.clone().unwrap_or_else(|| "no event".into());
        if state == "DONE" {
            plan.event(
                EventType::Normal,
                "RepairRunCompleted",
                format!("Reaper run {id} repaired keyspace {keyspace} ({progress})"),
            );
            return self.write(
                plan,
                now_ms,
                Cond::new(
                    CONDITION_COMPLETE,
                    true,
                    REASON_DONE,
                    format!("Reaper run {id} repaired keyspace {keyspace}: {progress}"),
                ),
                None,
            );
        }
        if is_over(&state) {
            let message = format!("Reaper run {id} ended {state} after {progress}: {event}");
            plan.event(EventType::Warning, REASON_FAILED, message.clone());
            return self.write(
                plan,
                now_ms,
                Cond::new(CONDITION_COMPLETE, false, REASON_FAILED, message.clone()),
                Some(Cond::new(CONDITION_FAILED, true, REASON_FAILED, message)),
            );
        }
        plan.requeue_after(REFRESH_MS);
        self.write(
            plan,
            now_ms,
            Cond::new(
                CONDITION_COMPLETE,
                false,
                REASON_RUNNING,
                format!("Reaper run {id} is {state}: {progress}; {event}"),
            ),
            None,
        )
    }
}

/// The number of failed attempts to start the run, and the last one's (message, time).
fn failed_attempts(s: &Snapshot, uid: &str) -> (u32, Option<(String, u64)>) {
    let mut n = 0;
    let mut last: Option<(String, u64)> = None;
    while let Some(Outcome::Failed(m)) = s.result(&format!("rr/repair/{uid}/{n}")) {
        let at = s
            .results
            .iter()
            .filter(|r| r.id == format!("rr/repair/{uid}/{n}"))
            .map(|r| r.at_ms)
            .max()
            .unwrap_or(s.now_ms);
        last = Some((m.clone(), at));
        n += 1;
    }
    (n, last)
}

/// A run of ours for this object among Reaper's: our owner and the UID in its cause.
fn ours<'a>(runs: &'a [Value], uid: &str) -> Option<&'a Value> {
    runs.iter().find(|r| {
        r.get("owner").and_then(Value::as_str) == Some(OWNER)
            && r.get("cause")
                .and_then(Value::as_str)
                .is_some_and(|c| c.contains(uid))
    })
}

pub fn reconcile(s: &Snapshot) -> Result<Plan, PolicyError> {
    let raw: Value = s.parent()?;
    let mut plan = Plan::default();
    // A deleted RepairRun: nothing to do (no operation can stop Reaper's run; it goes on).
    if raw.pointer("/metadata/deletionTimestamp").is_some() {
        return Ok(plan);
    }
    let prev: RepairRunStatus = raw
        .get("status")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let finished = |t: &str| is(prev.conditions.as_deref(), t) == Some(true);
    if finished(CONDITION_COMPLETE) || finished(CONDITION_FAILED) {
        return Ok(plan);
    }
    let mut out = Out {
        prev: prev.clone(),
        status: prev.clone(),
    };
    let rr: RepairRun = match parse_checked(&raw, &check(&raw)) {
        Ok(rr) => rr,
        Err(message) => {
            out.waiting(&mut plan, s.now_ms, REASON_INVALID, message, true)?;
            return Ok(plan);
        }
    };
    let spec = &rr.spec.repair;
    let ns = rr.metadata.namespace.clone().unwrap_or_default();
    let name = rr.metadata.name.clone().unwrap_or_default();
    let uid = rr.metadata.uid.clone().unwrap_or_default();
    let Some(kc) = cluster_of(s, spec, &ns) else {
        plan.requeue_after(WAIT_MS);
        out.waiting(
            &mut plan,
            s.now_ms,
            REASON_NO_CLUSTER,
            format!(
                "spec.cluster: no K8ssandraCluster {:?} in namespace {ns:?}",
                spec.cluster
            ),
            false,
        )?;
        return Ok(plan);
    };
    let cluster_name = kc.sanitized_name();
    let (t, _) = target(s, candidates(s, spec, &ns, &kc, true));
    let Some(t) = t else {
        plan.requeue_after(WAIT_MS);
        out.waiting(
            &mut plan,
            s.now_ms,
            REASON_NO_REAPER,
            format!(
                "waiting for a Running Reaper of K8ssandraCluster {} with a ready pod (spec.reaper of the cluster, or spec.reaperRef)",
                spec.cluster
            ),
            false,
        )?;
        return Ok(plan);
    };
    out.status.reaper = Some(t.label());
    let access = t.access();
    let cref = ReaperClusterRef {
        access: access.clone(),
        name: cluster_name.clone(),
    };
    let (fails, last_failure) = failed_attempts(s, &uid);
    let attempt = format!("rr/repair/{uid}/{fails}");
    let unreachable = |plan: &mut Plan, out: &mut Out, m: String| {
        out.waiting(
            plan,
            s.now_ms,
            REASON_UNREACHABLE,
            format!("Reaper {} does not answer (retrying): {m}", t.label()),
            true,
        )
    };

    // This process started the run: its outcome says where it is.
    match s.result(&attempt) {
        Some(Outcome::Succeeded(body)) => {
            if let Ok(r) = serde_json::from_str::<Value>(body) {
                out.run(&mut plan, s.now_ms, &r, &spec.keyspace)?;
                return Ok(plan);
            }
        }
        Some(Outcome::Running(id))
            if !id.is_empty() && out.status.run_id.as_deref() != Some(id.as_str()) =>
        {
            plan.event(
                EventType::Normal,
                "RepairRunStarted",
                format!(
                    "Reaper {} runs the repair of keyspace {} as run {id}",
                    t.label(),
                    spec.keyspace
                ),
            );
            out.status.run_id = Some(id.clone());
        }
        _ => {}
    }

    if let Some(id) = out.status.run_id.clone() {
        return follow(s, &mut plan, &mut out, &t, cref, &uid, &id, &spec.keyspace).map(|_| plan);
    }

    // Not started as far as the status knows: adopt a run of ours, else start one.
    let listed = match calls::call(
        s,
        &mut plan,
        &format!("rr/adopt/{uid}/{fails}"),
        &t.pod,
        OperationKind::ReaperListRuns(cref),
        BACKOFF,
    ) {
        Call::Done(body) => parse_list(&body),
        Call::Pending => {
            if out.prev.conditions.is_none() {
                out.waiting(
                    &mut plan,
                    s.now_ms,
                    REASON_STARTING,
                    format!(
                        "reading the repair runs of {cluster_name} in Reaper {}",
                        t.label()
                    ),
                    false,
                )?;
            }
            return Ok(plan);
        }
        Call::Failed(m, _) => {
            unreachable(&mut plan, &mut out, m)?;
            return Ok(plan);
        }
    };
    if let Some(r) = ours(&listed, &uid) {
        plan.event(
            EventType::Normal,
            "RepairRunAdopted",
            format!(
                "Reaper {} already runs the repair of keyspace {} as run {}",
                t.label(),
                spec.keyspace,
                id_of(r).unwrap_or_default()
            ),
        );
        out.run(&mut plan, s.now_ms, r, &spec.keyspace)?;
        return Ok(plan);
    }
    if let Some((m, at)) = last_failure {
        let (reason, message) = if keyspace_missing(&m) {
            (
                REASON_KEYSPACE,
                format!(
                    "spec.keyspace: keyspace {:?} does not exist in Cassandra cluster {cluster_name}; nothing started, retrying ({m})",
                    spec.keyspace
                ),
            )
        } else if m.contains("400") {
            (
                REASON_REFUSED,
                format!("Reaper refused the repair (retrying): {m}"),
            )
        } else {
            (
                REASON_UNREACHABLE,
                format!("Reaper {} does not answer (retrying): {m}", t.label()),
            )
        };
        let wait = (BACKOFF.retry_base_ms << (fails - 1).min(10)).min(BACKOFF.retry_max_ms);
        let due = at.saturating_add(wait);
        if s.now_ms < due {
            plan.requeue_after(due - s.now_ms);
            out.waiting(&mut plan, s.now_ms, reason, message, true)?;
            return Ok(plan);
        }
        out.waiting(&mut plan, s.now_ms, reason, message, true)?;
    } else {
        out.waiting(
            &mut plan,
            s.now_ms,
            REASON_STARTING,
            format!(
                "starting a repair of keyspace {} in Reaper {}",
                spec.keyspace,
                t.label()
            ),
            false,
        )?;
    }
    let cause = format!("RepairRun {ns}/{name} (uid {uid})");
    plan.operate(
        attempt,
        t.pod.clone(),
        OperationKind::ReaperRepair(repair(
            spec,
            &cluster_name,
            access,
            cause,
            rr.spec.timeout_minutes,
        )),
    );
    plan.requeue_after(BACKOFF.poll_ms);
    Ok(plan)
}

/// A started run: its progress from Reaper's list of runs, every [`REFRESH_MS`].
#[allow(clippy::too_many_arguments)]
fn follow(
    s: &Snapshot,
    plan: &mut Plan,
    out: &mut Out,
    t: &Target,
    cref: ReaperClusterRef,
    uid: &str,
    id: &str,
    keyspace: &str,
) -> Result<(), PolicyError> {
    let w = s.now_ms / REFRESH_MS;
    plan.requeue_after(((w + 1) * REFRESH_MS).saturating_sub(s.now_ms).max(1));
    match calls::call(
        s,
        plan,
        &format!("rr/runs/{uid}/{w}"),
        &t.pod,
        OperationKind::ReaperListRuns(cref),
        BACKOFF,
    ) {
        Call::Done(body) => {
            let runs = parse_list(&body);
            match runs.iter().find(|r| id_of(r).as_deref() == Some(id)) {
                Some(r) => out.run(plan, s.now_ms, r, keyspace),
                None => {
                    let message = format!(
                        "Reaper {} no longer knows run {id} (deleted, or its storage lost)",
                        t.label()
                    );
                    plan.event(EventType::Warning, REASON_LOST, message.clone());
                    out.write(
                        plan,
                        s.now_ms,
                        Cond::new(CONDITION_COMPLETE, false, REASON_LOST, message.clone()),
                        Some(Cond::new(CONDITION_FAILED, true, REASON_LOST, message)),
                    )
                }
            }
        }
        Call::Pending => {
            // Between two reads: the status stays, the run's id in it.
            let reason = out.prev_reason().unwrap_or(REASON_RUNNING);
            if out.prev.run_id.as_deref() != Some(id) || reason != REASON_RUNNING {
                out.write(
                    plan,
                    s.now_ms,
                    Cond::new(
                        CONDITION_COMPLETE,
                        false,
                        REASON_RUNNING,
                        format!("Reaper run {id} is running"),
                    ),
                    None,
                )?;
            }
            Ok(())
        }
        Call::Failed(m, _) => out.waiting(
            plan,
            s.now_ms,
            REASON_UNREACHABLE,
            format!(
                "Reaper {} does not answer (retrying); run {id} goes on: {m}",
                t.label()
            ),
            true,
        ),
    }
}
