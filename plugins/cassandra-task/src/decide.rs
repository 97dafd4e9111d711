//! The decisions of one reconcile. Everything is decided again from the snapshot
//! (level-triggered): progress the snapshot cannot show lives in the task's status, and
//! restarts are judged from the pods themselves.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8ssandra_api::cassandra::DatacenterConditionType;
use k8ssandra_api::control::{
    CassandraCommand, CassandraJob, CassandraTask, CassandraTaskStatus,
    PodProcessingPhase as Phase, PodProcessingStatus, condition,
};
use k8ssandra_policy_sdk::{
    EventType, NodeRef, ObjectKey, OperationKind, Outcome, Plan, PolicyError, Snapshot, TableScope,
};

use crate::model::{
    self, Datacenter, PodView, created_ms, datacenter_ref, finished, forbids, other_tasks,
    scheduled_ms, time, time_ms, transition_ms,
};
use crate::validate;
use crate::{PARENT_API_VERSION, PARENT_KIND};

/// `ttlSecondsAfterFinished` when unset.
pub const DEFAULT_TTL_SECONDS: u64 = 86_400;
/// `retries` when unset.
pub const DEFAULT_RETRIES: i64 = 1;
/// Between two `job-status` polls of a job found in the status after an operator restart.
pub const POLL_INTERVAL_MS: u64 = 2_000;
/// Re-check of a task that waits for its datacenter or for another task; their changes
/// trigger it anyway, this is a safety net.
pub const WAIT_REQUEUE_MS: u64 = 30_000;
/// Re-check of a job that cannot start because no pod of the datacenter is visible.
pub const NO_PODS_REQUEUE_MS: u64 = 5_000;

/// Operation id of attempt `attempt` of job `job` on `pod`: deterministic, so a repeated
/// plan asks for the same operation and the host runs it once.
pub fn operation_id(uid: &str, job: usize, pod: &str, attempt: u32) -> String {
    format!("task/{uid}/{job}/{pod}/{attempt}")
}

/// Id of the drain that goes with a restart's pod deletion.
pub fn restart_marker(uid: &str, job: usize, pod: &str) -> String {
    format!("task/{uid}/{job}/{pod}/restart")
}

fn poll_id(op: &str, n: u32) -> String {
    format!("{op}/poll/{n}")
}

/// Entry point, called by `Policy::reconcile`.
pub fn reconcile(snapshot: &Snapshot) -> Result<Plan, PolicyError> {
    let task: CassandraTask = snapshot.parent()?;
    let now = snapshot.now_ms;
    let prev = task.status.clone().unwrap_or_default();
    let mut plan = Plan::default();
    if task.metadata.deletion_timestamp.is_some() {
        return Ok(plan);
    }
    if finished(&prev) {
        expire(&task, &prev, now, &mut plan);
        return Ok(plan);
    }
    let mut out = Status::new(&prev, now);
    let started = prev.start_time.is_some();

    if !started {
        if let Some(at) = scheduled_ms(&task).filter(|at| *at > now) {
            plan.requeue_after(at - now);
            return Ok(plan);
        }
        let violations = validate::check_spec(&task);
        if !violations.is_empty() {
            let message = joined(&violations);
            let reason = if violations.iter().any(|v| v.field.ends_with(".command")) {
                "UnsupportedCommand"
            } else {
                "InvalidSpec"
            };
            out.fail(&mut plan, reason, message);
            return out.write(&mut plan);
        }
    }

    let task_ns = task.metadata.namespace.clone().unwrap_or_default();
    let Some((dc_ns, dc_name)) = datacenter_ref(&task) else {
        out.fail(&mut plan, "InvalidSpec", "spec.datacenter.name is required");
        return out.write(&mut plan);
    };
    if dc_ns != task_ns {
        out.fail(
            &mut plan,
            "DatacenterInOtherNamespace",
            format!(
                "spec.datacenter.namespace: the datacenter must be in the task's namespace {task_ns:?}, not {dc_ns:?}"
            ),
        );
        return out.write(&mut plan);
    }
    let Some(dc) = Datacenter::find(snapshot, &dc_ns, &dc_name) else {
        if started {
            // Not seen is not gone: a restarted operator may reconcile before its caches
            // hold the datacenter. The task keeps its progress and looks again.
            plan.requeue_after(WAIT_REQUEUE_MS);
            return Ok(plan);
        } else {
            out.set(
                condition::RUNNING,
                false,
                "DatacenterNotFound",
                format!("waiting for CassandraDatacenter {dc_ns}/{dc_name}"),
            );
            plan.requeue_after(WAIT_REQUEUE_MS);
        }
        return out.write(&mut plan);
    };

    let jobs: Vec<CassandraJob> = task.spec.template.jobs.clone().unwrap_or_default();
    let mut job_index = 0;
    if !started {
        // The pods the datacenter's StatefulSets should have, not the ones seen right now:
        // a pod being recreated, or a cache still filling, must not fail the task.
        let mut pod_names: Vec<String> = dc.expected_pods();
        pod_names.extend(dc.pods.iter().map(|p| p.name.clone()));
        let violations = validate::check_against_datacenter(&task, &dc.obj, &pod_names);
        if !violations.is_empty() {
            out.fail(&mut plan, "InvalidSpec", joined(&violations));
            return out.write(&mut plan);
        }
        if let Some(other) = blocking_task(snapshot, &task, now) {
            out.set(
                condition::RUNNING,
                false,
                "WaitingForTask",
                format!("task {other} of the same datacenter runs first (concurrencyPolicy)"),
            );
            plan.requeue_after(WAIT_REQUEUE_MS);
            return out.write(&mut plan);
        }
        out.status.start_time = time(now);
        out.status.pod_statuses = None;
        plan.event(
            EventType::Normal,
            "TaskStarted",
            format!("running {} job(s) on datacenter {dc_name}", jobs.len()),
        );
    } else {
        job_index = current_job(&prev).min(jobs.len().saturating_sub(1));
    }

    let uid = task.metadata.uid.clone().unwrap_or_default();
    let runner = Runner {
        snapshot,
        task: &task,
        dc: &dc,
        uid: &uid,
        now,
        reference_ms: created_ms(&task).max(scheduled_ms(&task).unwrap_or(0)),
    };
    while let Some(job) = jobs.get(job_index) {
        out.set(
            condition::RUNNING,
            true,
            "JobRunning",
            format!("job {}/{}: {}", job_index + 1, jobs.len(), job.name),
        );
        if validate::unsupported(job.command) {
            out.fail(
                &mut plan,
                "UnsupportedCommand",
                format!(
                    "job {}: {}",
                    job.name,
                    validate::unsupported_message(job.command)
                ),
            );
            return out.write(&mut plan);
        }
        let prev_pods = out.status.pod_statuses.clone().unwrap_or_default();
        if prev_pods.is_empty() && dc.pods.is_empty() && dc.size() > 0 {
            // No pod of the datacenter is visible (caches syncing, or the datacenter is
            // stopped): a job started now would find nothing to do and end at once.
            let pods_seen = snapshot
                .related
                .iter()
                .filter(|o| o.kind().as_deref() == Some("Pod"))
                .count();
            k8ssandra_policy_sdk::log(
                k8ssandra_policy_sdk::Level::Info,
                &format!(
                    "job {} waits: no pod of datacenter {dc_name} visible ({pods_seen} Cassandra pods in the namespace)",
                    job.name
                ),
            );
            plan.requeue_after(NO_PODS_REQUEUE_MS);
            break;
        }
        let pods = runner.job(job_index, job, &prev_pods, &mut plan);
        let done = pods.values().all(|p| p.status == Phase::Completed);
        let errors: Vec<String> = pods
            .iter()
            .filter(|(_, p)| p.status == Phase::Error)
            .map(|(n, p)| format!("{n}: {}", p.error.as_deref().unwrap_or("failed")))
            .collect();
        for (name, p) in &pods {
            let was = prev_pods.get(name).map(|p| p.status);
            if p.status == Phase::Error && was != Some(Phase::Error) {
                plan.event(
                    EventType::Warning,
                    "PodFailed",
                    format!(
                        "job {} failed on {name}: {}",
                        job.name,
                        p.error.as_deref().unwrap_or("failed")
                    ),
                );
            }
        }
        out.pods(pods);
        if !errors.is_empty() {
            out.fail(
                &mut plan,
                "PodFailed",
                format!("job {} failed on {}", job.name, errors.join("; ")),
            );
            return out.write(&mut plan);
        }
        if !done {
            break;
        }
        if job_index + 1 >= jobs.len() {
            out.complete(&mut plan, jobs.len());
            return out.write(&mut plan);
        }
        job_index += 1;
        // The next job starts with a clean slate of pods, in this same reconcile.
        out.status.pod_statuses = None;
    }
    out.write(&mut plan)
}

/// `job <i>/<n>: <name>` in the Running condition → `i - 1`.
fn current_job(status: &CassandraTaskStatus) -> usize {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == condition::RUNNING)
        .and_then(|c| c.message.strip_prefix("job "))
        .and_then(|m| m.split('/').next())
        .and_then(|i| i.parse::<usize>().ok())
        .map_or(0, |i| i.saturating_sub(1))
}

fn joined(v: &[k8ssandra_policy_sdk::Violation]) -> String {
    v.iter()
        .map(|v| format!("{}: {}", v.field, v.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The task this one must wait for, if any. Two tasks conflict unless both `Allow`. A
/// started conflicting task always blocks; an unstarted one blocks when it is older (by
/// creation, then name) and due, so tasks run oldest first and two tasks reconciled at
/// the same moment never both start.
fn blocking_task(snapshot: &Snapshot, task: &CassandraTask, now: u64) -> Option<String> {
    let me = (
        created_ms(task),
        task.metadata.name.clone().unwrap_or_default(),
    );
    let mine_forbids = forbids(task);
    other_tasks(snapshot, task)
        .into_iter()
        .filter(|o| mine_forbids || o.forbid)
        .filter(|o| {
            o.started
                || ((o.created_ms, o.name.clone()) < me
                    && o.scheduled_ms.is_none_or(|at| at <= now))
        })
        .map(|o| o.name)
        .min()
}

/// A finished task is deleted `ttlSecondsAfterFinished` after it finished (0 keeps it).
fn expire(task: &CassandraTask, status: &CassandraTaskStatus, now: u64, plan: &mut Plan) {
    let ttl = task
        .spec
        .template
        .ttl_seconds_after_finished
        .map_or(DEFAULT_TTL_SECONDS, |t| u64::try_from(t).unwrap_or(0));
    if ttl == 0 {
        return;
    }
    let Some(at) = status
        .completion_time
        .as_ref()
        .and_then(time_ms)
        .or_else(|| transition_ms(status, condition::FAILED))
        .or_else(|| transition_ms(status, condition::COMPLETE))
    else {
        return;
    };
    let due = at + ttl * 1000;
    if now >= due {
        plan.delete.push(ObjectKey {
            cluster: String::new(),
            api_version: PARENT_API_VERSION.into(),
            kind: PARENT_KIND.into(),
            namespace: task.metadata.namespace.clone().unwrap_or_default(),
            name: task.metadata.name.clone().unwrap_or_default(),
        });
    } else {
        plan.requeue_after(due - now);
    }
}

struct Runner<'a> {
    snapshot: &'a Snapshot,
    task: &'a CassandraTask,
    dc: &'a Datacenter,
    uid: &'a str,
    now: u64,
    /// Pods created at or after this (the task's creation or scheduled time, whichever is
    /// later) already run a process newer than the task: they count as restarted.
    reference_ms: u64,
}

fn waiting() -> PodProcessingStatus {
    PodProcessingStatus {
        status: Phase::Waiting,
        job_id: None,
        retries: None,
        error: None,
        start_time: None,
        completion_time: None,
    }
}

impl Runner<'_> {
    fn node(&self, pod: &str) -> NodeRef {
        NodeRef {
            cluster: String::new(),
            namespace: self
                .dc
                .obj
                .metadata
                .namespace
                .clone()
                .or_else(|| self.task.metadata.namespace.clone())
                .unwrap_or_default(),
            pod: pod.to_string(),
        }
    }

    fn key(&self, kind: &str, name: &str) -> ObjectKey {
        ObjectKey {
            cluster: String::new(),
            api_version: "v1".into(),
            kind: kind.into(),
            namespace: self.node(name).namespace,
            name: name.into(),
        }
    }

    fn max_concurrent(&self) -> usize {
        match self.task.spec.template.max_concurrent_pods {
            Some(n) if n > 0 => usize::try_from(n).unwrap_or(1),
            _ => 1,
        }
    }

    /// The pods a job works on, in rack order then ordinal.
    fn targets(&self, job: &CassandraJob) -> Vec<String> {
        let args = job.args.clone().unwrap_or_default();
        if job.command == CassandraCommand::Replacenode {
            return args.pod_name.into_iter().collect();
        }
        let rack = args
            .rack
            .filter(|r| !r.is_empty())
            .map(|r| k8ssandra_api::names::clean_label_value(&r));
        let mut out: Vec<String> = Vec::new();
        for p in &self.dc.pods {
            if rack.as_ref().is_none_or(|r| *r == p.rack) && !out.contains(&p.name) {
                out.push(p.name.clone());
            }
        }
        out
    }

    fn rack_of(&self, pod: &str) -> String {
        self.dc
            .pods
            .iter()
            .find(|p| p.name == pod)
            .map(|p| p.rack.clone())
            .unwrap_or_default()
    }

    /// Runs job `index` one step further; returns every target's status.
    fn job(
        &self,
        index: usize,
        job: &CassandraJob,
        prev: &BTreeMap<String, PodProcessingStatus>,
        plan: &mut Plan,
    ) -> BTreeMap<String, PodProcessingStatus> {
        let targets: Vec<String> = if prev.is_empty() {
            self.targets(job)
        } else {
            // Fixed when the job started; ordered like the datacenter's pods.
            let mut t: Vec<String> = self
                .dc
                .pods
                .iter()
                .filter(|p| prev.contains_key(&p.name))
                .map(|p| p.name.clone())
                .collect();
            t.dedup();
            let rest: Vec<String> = prev.keys().filter(|k| !t.contains(k)).cloned().collect();
            t.extend(rest);
            t
        };
        match job.command {
            CassandraCommand::Restart | CassandraCommand::Replacenode => {
                self.recreate(index, job, &targets, prev, plan)
            }
            _ => self.operations(index, job, &targets, prev, plan),
        }
    }

    fn operation_kind(&self, job: &CassandraJob) -> Option<OperationKind> {
        let args = job.args.clone().unwrap_or_default();
        let scope = TableScope {
            keyspace: args.keyspace_name.clone().unwrap_or_default(),
            tables: args.tables.clone().unwrap_or_default(),
            jobs: args
                .jobs_count
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0),
        };
        Some(match job.command {
            CassandraCommand::Cleanup => OperationKind::Cleanup(scope),
            CassandraCommand::Upgradesstables => OperationKind::UpgradeSstables(scope),
            CassandraCommand::Compact => OperationKind::Compact(scope),
            CassandraCommand::Flush => OperationKind::Flush(scope),
            CassandraCommand::Scrub => OperationKind::Scrub(scope),
            CassandraCommand::Garbagecollect => OperationKind::GarbageCollect(scope),
            CassandraCommand::Rebuild => {
                OperationKind::Rebuild(args.source_datacenter.unwrap_or_default())
            }
            _ => return None,
        })
    }

    /// Management-API jobs: up to `maxConcurrentPods` pods per rack at once, retried with a
    /// new attempt id on failure under `restartPolicy: OnFailure`.
    fn operations(
        &self,
        index: usize,
        job: &CassandraJob,
        targets: &[String],
        prev: &BTreeMap<String, PodProcessingStatus>,
        plan: &mut Plan,
    ) -> BTreeMap<String, PodProcessingStatus> {
        let t = &self.task.spec.template;
        let on_failure = t.restart_policy.as_deref() != Some("Never");
        let max_retries = t.retries.unwrap_or(DEFAULT_RETRIES).max(0);
        let mut out = BTreeMap::new();
        let mut candidates: Vec<(String, u32)> = Vec::new();
        for pod in targets {
            let mut st = prev.get(pod).cloned().unwrap_or_else(waiting);
            if matches!(st.status, Phase::Completed | Phase::Error) {
                out.insert(pod.clone(), st);
                continue;
            }
            let mut k = u32::try_from(st.retries.unwrap_or(0).max(0)).unwrap_or(0);
            while self
                .snapshot
                .result(&operation_id(self.uid, index, pod, k + 1))
                .is_some()
            {
                k += 1;
            }
            let id = operation_id(self.uid, index, pod, k);
            let retries = (k > 0).then_some(i64::from(k));
            if st.retries != retries {
                // The status lagged behind the results: align it with the attempt seen.
                st.retries = retries;
                if st.status == Phase::Waiting && self.result(&id).is_some() {
                    st.status = Phase::Running;
                }
            }
            let mut failure: Option<(String, u64)> = None;
            match self.result(&id) {
                Some((Outcome::Succeeded(_), at)) => {
                    st.status = Phase::Completed;
                    st.job_id = None;
                    st.start_time = st.start_time.or_else(|| time(at));
                    st.completion_time = time(at);
                    st.error = None;
                }
                Some((Outcome::Running(job_id), _)) => {
                    st.status = Phase::Running;
                    if !job_id.is_empty() {
                        st.job_id = Some(job_id);
                    }
                    st.start_time = st.start_time.or_else(|| time(self.now));
                }
                Some((Outcome::Failed(message), at)) => failure = Some((message, at)),
                None if st.status == Phase::Running => match st.job_id.clone() {
                    // The host forgot the operation (an operator restart): follow the job
                    // it started instead of starting another.
                    Some(job_id) => match self.poll(&id, &job_id, pod, plan) {
                        Poll::Running => {}
                        Poll::Done(at) => {
                            st.status = Phase::Completed;
                            st.job_id = None;
                            st.completion_time = time(at);
                        }
                        Poll::Failed(message, at) => failure = Some((message, at)),
                    },
                    // No job id recorded: the operation may not have started at all.
                    None => {
                        plan.operate(
                            id.clone(),
                            self.node(pod),
                            self.operation_kind_or_flush(job),
                        );
                    }
                },
                None => candidates.push((pod.clone(), k)),
            }
            if let Some((message, at)) = failure {
                if on_failure && i64::from(k) < max_retries {
                    st = PodProcessingStatus {
                        status: Phase::Waiting,
                        job_id: None,
                        retries: Some(i64::from(k) + 1),
                        error: Some(message),
                        start_time: st.start_time,
                        completion_time: None,
                    };
                    candidates.push((pod.clone(), k + 1));
                } else {
                    st.status = Phase::Error;
                    st.job_id = None;
                    st.error = Some(message);
                    st.completion_time = time(at);
                }
            }
            out.insert(pod.clone(), st);
        }

        let Some(kind) = self.operation_kind(job) else {
            return out;
        };
        let mut running: BTreeMap<String, usize> = BTreeMap::new();
        for (pod, st) in &out {
            if st.status == Phase::Running {
                *running.entry(self.rack_of(pod)).or_default() += 1;
            }
        }
        let limit = self.max_concurrent();
        for (pod, attempt) in candidates {
            let rack = self.rack_of(&pod);
            let busy = running.get(&rack).copied().unwrap_or(0);
            if busy >= limit || !self.dc.live(&pod).is_some_and(|p| p.ready) {
                continue;
            }
            running.insert(rack, busy + 1);
            plan.operate(
                operation_id(self.uid, index, &pod, attempt),
                self.node(&pod),
                kind.clone(),
            );
            if let Some(st) = out.get_mut(&pod) {
                st.status = Phase::Running;
                st.start_time = st.start_time.clone().or_else(|| time(self.now));
            }
        }
        out
    }

    fn operation_kind_or_flush(&self, job: &CassandraJob) -> OperationKind {
        // Only reached for commands that have a kind; flush is a harmless stand-in that is
        // never used in practice.
        self.operation_kind(job)
            .unwrap_or(OperationKind::Flush(TableScope {
                keyspace: String::new(),
                tables: vec![],
                jobs: 0,
            }))
    }

    fn result(&self, id: &str) -> Option<(Outcome, u64)> {
        self.snapshot
            .results
            .iter()
            .filter(|r| r.id == id)
            .max_by_key(|r| r.at_ms)
            .map(|r| (r.outcome.clone(), r.at_ms))
    }

    /// Follows a management-API job through `job-status` operations `<op>/poll/<n>`.
    fn poll(&self, op: &str, job_id: &str, pod: &str, plan: &mut Plan) -> Poll {
        let mut n = 0u32;
        while self.result(&poll_id(op, n + 1)).is_some() {
            n += 1;
        }
        let ask = |plan: &mut Plan, n: u32| {
            plan.operate(
                poll_id(op, n),
                self.node(pod),
                OperationKind::JobStatus(job_id.to_string()),
            );
        };
        match self.result(&poll_id(op, n)) {
            None => {
                ask(plan, n);
                Poll::Running
            }
            Some((Outcome::Running(_), _)) => Poll::Running,
            Some((Outcome::Failed(message), at)) => Poll::Failed(message, at),
            Some((Outcome::Succeeded(body), at)) => {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                match v.get("status").and_then(|s| s.as_str()) {
                    Some("COMPLETED") => Poll::Done(at),
                    Some("ERROR") => Poll::Failed(
                        format!(
                            "job {job_id} failed: {}",
                            v.get("error")
                                .and_then(|e| e.as_str())
                                .unwrap_or("no error message")
                        ),
                        at,
                    ),
                    _ => {
                        if self.now >= at + POLL_INTERVAL_MS {
                            ask(plan, n + 1);
                        } else {
                            plan.requeue_after(at + POLL_INTERVAL_MS - self.now);
                        }
                        Poll::Running
                    }
                }
            }
        }
    }

    /// `restart` and `replacenode`: pods go (restart: deleted here; replacenode: the
    /// cassandra-datacenter policy deletes the pod and its claims when it sees the pod
    /// RUNNING in this task) and the task waits for their recreated successors to be ready,
    /// rack by rack, never taking down a node while another one is down (unless
    /// `args.fast`).
    fn recreate(
        &self,
        index: usize,
        job: &CassandraJob,
        targets: &[String],
        prev: &BTreeMap<String, PodProcessingStatus>,
        plan: &mut Plan,
    ) -> BTreeMap<String, PodProcessingStatus> {
        let args = job.args.clone().unwrap_or_default();
        let replace = job.command == CassandraCommand::Replacenode;
        let fast = !replace && args.fast == Some(true);
        let mut out = BTreeMap::new();
        let mut candidates: Vec<String> = Vec::new();
        for pod in targets {
            let mut st = prev.get(pod).cloned().unwrap_or_else(waiting);
            if st.status == Phase::Completed {
                out.insert(pod.clone(), st);
                continue;
            }
            // A restart drains the node first and deletes its pod once the drain is over:
            // deleting first would let the drain reach the pod that replaces it (same name,
            // often the same address) after it started, and leave that node drained.
            let drain = self.result(&restart_marker(self.uid, index, pod));
            let live = self.dc.live(pod);
            let fresh = live.is_some_and(|p| self.fresh(p));
            if fresh && live.is_some_and(|p| p.ready) {
                st.status = Phase::Completed;
                st.start_time = st.start_time.or_else(|| time(self.now));
                st.completion_time = st.completion_time.or_else(|| time(self.now));
            } else if fresh || live.is_none() {
                st.status = Phase::Running;
                st.start_time = st.start_time.or_else(|| time(self.now));
            } else if st.status == Phase::Running && replace {
                if let Some(message) = self.replacement_refused(pod) {
                    st.status = Phase::Error;
                    st.error = Some(message);
                    st.completion_time = time(self.now);
                }
            } else if !replace && (st.status == Phase::Running || drain.is_some()) {
                st.status = Phase::Running;
                st.start_time = st.start_time.or_else(|| time(self.now));
                match drain {
                    // Over, whatever its outcome (a failed preStop drain does not keep a
                    // pod alive either). Deleted again while the old pod is visible: the
                    // host deletes only the pod this snapshot shows (its UID), so a repeat
                    // never touches the pod that replaces it.
                    Some((Outcome::Succeeded(_) | Outcome::Failed(_), _)) => self.delete(pod, plan),
                    // Running, or forgotten by a restarted host: asked again under the same
                    // id, which the host runs at most once while it remembers it.
                    _ => self.drain(index, pod, plan),
                }
            } else {
                candidates.push(pod.clone());
            }
            out.insert(pod.clone(), st);
        }

        // The rack in progress: the first one (datacenter order) with unfinished pods.
        let rack_index = |pod: &str| {
            let r = self.rack_of(pod);
            self.dc
                .racks
                .iter()
                .position(|x| *x == r)
                .unwrap_or(usize::MAX)
        };
        let Some(current) = out
            .iter()
            .filter(|(_, s)| s.status != Phase::Completed)
            .map(|(p, _)| rack_index(p))
            .min()
        else {
            return out;
        };
        let in_flight = out.values().filter(|s| s.status == Phase::Running).count();
        let limit = if fast {
            match self.task.spec.template.max_concurrent_pods {
                Some(n) if n > 0 => usize::try_from(n).unwrap_or(1),
                _ => targets.len(),
            }
        } else {
            1
        };
        let mut deleting: Vec<String> = Vec::new();
        for pod in candidates.iter().filter(|p| rack_index(p) == current) {
            if in_flight + deleting.len() >= limit {
                break;
            }
            let rack = self.rack_of(pod);
            // Every other node must be up (when fast: every node outside this rack): taking
            // down a node that is down already costs nothing.
            let others_up = self
                .dc
                .pods
                .iter()
                .all(|p| p.name == *pod || (fast && p.rack == rack) || p.ready);
            let complete = self.dc.pods.iter().filter(|p| !p.terminating).count() >= self.dc.size();
            if !others_up || !complete || (!fast && in_flight > 0) {
                break;
            }
            deleting.push(pod.clone());
        }
        for pod in deleting {
            if !replace {
                // What a preStop hook does before a pod stops; its outcome is also the
                // record that this pod's restart is decided (see `drain` above).
                self.drain(index, &pod, plan);
            }
            if let Some(st) = out.get_mut(&pod) {
                st.status = Phase::Running;
                st.start_time = time(self.now);
            }
            let message = if replace {
                format!(
                    "replacing the node of {pod}: the datacenter recreates its pod and data volume"
                )
            } else {
                format!("restarting {pod}")
            };
            let reason = if replace {
                "ReplacingNode"
            } else {
                "RestartingPod"
            };
            plan.event(EventType::Normal, reason, message);
        }
        out
    }

    fn fresh(&self, p: &PodView) -> bool {
        p.created_ms.is_some_and(|c| c >= self.reference_ms)
    }

    fn delete(&self, pod: &str, plan: &mut Plan) {
        plan.delete.push(self.key("Pod", pod));
    }

    fn drain(&self, index: usize, pod: &str, plan: &mut Plan) {
        plan.operate(
            restart_marker(self.uid, index, pod),
            self.node(pod),
            OperationKind::Drain,
        );
    }

    /// The datacenter policy refused to replace `pod` (it has no recorded address for it).
    fn replacement_refused(&self, pod: &str) -> Option<String> {
        let c = self
            .dc
            .obj
            .status
            .as_ref()?
            .condition(DatacenterConditionType::ReplacingNodes)?;
        (c.status == "False" && c.reason == "UnknownNode" && c.message.contains(pod))
            .then(|| format!("the datacenter cannot replace {pod}: {}", c.message))
    }
}

enum Poll {
    Running,
    Done(u64),
    Failed(String, u64),
}

/// The status being built, with conditions whose transition times move only when their
/// status flips (so a steady task writes nothing).
struct Status {
    prev: CassandraTaskStatus,
    now: u64,
    status: CassandraTaskStatus,
    set: Vec<(&'static str, bool, String, String)>,
}

impl Status {
    fn new(prev: &CassandraTaskStatus, now: u64) -> Self {
        let mut status = prev.clone();
        status.conditions = None;
        Status {
            prev: prev.clone(),
            now,
            status,
            set: Vec::new(),
        }
    }

    fn set(&mut self, t: &'static str, value: bool, reason: &str, message: impl Into<String>) {
        self.set.retain(|(k, ..)| *k != t);
        self.set
            .push((t, value, reason.to_string(), message.into()));
    }

    fn pods(&mut self, pods: BTreeMap<String, PodProcessingStatus>) {
        let count = |phase: Phase| {
            let n = pods.values().filter(|p| p.status == phase).count();
            (n > 0).then_some(n as i64)
        };
        self.status.active = count(Phase::Running);
        self.status.succeeded = count(Phase::Completed);
        self.status.failed = count(Phase::Error);
        self.status.pod_statuses = (!pods.is_empty()).then_some(pods);
    }

    fn fail(&mut self, plan: &mut Plan, reason: &str, message: impl Into<String>) {
        let message = message.into();
        let running = self
            .set
            .iter()
            .find(|(t, ..)| *t == condition::RUNNING)
            .map(|(_, _, _, m)| m.clone())
            .unwrap_or_default();
        // Keep the job position in the message of Running: it says where the task stopped.
        self.set(condition::RUNNING, false, reason, running);
        self.set(condition::FAILED, true, reason, message.clone());
        self.set(condition::COMPLETE, false, reason, "");
        plan.event(EventType::Warning, "TaskFailed", message);
    }

    fn complete(&mut self, plan: &mut Plan, jobs: usize) {
        let running = self
            .set
            .iter()
            .find(|(t, ..)| *t == condition::RUNNING)
            .map(|(_, _, _, m)| m.clone())
            .unwrap_or_default();
        self.set(condition::RUNNING, false, "Completed", running);
        self.set(
            condition::COMPLETE,
            true,
            "Completed",
            format!("{jobs} job(s) done"),
        );
        self.set(condition::FAILED, false, "Completed", "");
        self.status.completion_time = time(self.now);
        plan.event(
            EventType::Normal,
            "TaskCompleted",
            format!(
                "{jobs} job(s) done on {} pod(s)",
                self.status.succeeded.unwrap_or(0)
            ),
        );
    }

    fn write(mut self, plan: &mut Plan) -> Result<Plan, PolicyError> {
        let mut conditions: Vec<Condition> = Vec::new();
        for t in [condition::RUNNING, condition::COMPLETE, condition::FAILED] {
            let prev = self
                .prev
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == t)
                .cloned();
            let Some((_, value, reason, message)) =
                self.set.iter().find(|(k, ..)| *k == t).cloned()
            else {
                if let Some(p) = prev {
                    conditions.push(p);
                }
                continue;
            };
            let status = if value { "True" } else { "False" };
            let last_transition_time = match &prev {
                Some(p) if p.status == status => p.last_transition_time.clone(),
                _ => match time(self.now) {
                    Some(t) => t,
                    None => continue,
                },
            };
            conditions.push(Condition {
                type_: t.to_string(),
                status: status.to_string(),
                reason,
                message,
                last_transition_time,
                observed_generation: None,
            });
        }
        self.status.conditions = (!conditions.is_empty()).then_some(conditions);
        plan.set_status(&self.status)?;
        Ok(std::mem::take(plan))
    }
}

/// Whether the policy still has anything to do for a task (for tests and tools).
pub fn is_finished(task: &CassandraTask) -> bool {
    task.status.as_ref().is_some_and(model::finished)
}
