//! Snapshot in, plan out: the decisions of the policy on a small datacenter.

use k8ssandra_api::control::{CassandraTaskStatus, PodProcessingPhase as Phase};
use k8ssandra_policy_sdk::{
    NodeRef, NodeState, Object, OperationKind, OperationResult, Outcome, Plan, Policy, Snapshot,
};
use serde_json::{Value, json};

use crate::CassandraTaskPolicy;
use crate::decide::{operation_id, reconcile};
use crate::model::rfc3339;

const NS: &str = "ns";
const UID: &str = "u-1";
/// 2024-01-01T00:00:00Z
const T0: u64 = 1_704_067_200_000;

/// A datacenter of `racks` racks × `per_rack` pods, every pod old and ready unless changed.
struct World {
    task: Value,
    racks: usize,
    per_rack: usize,
    /// pod name → (created ms, ready)
    pods: std::collections::BTreeMap<String, (u64, bool)>,
    results: Vec<OperationResult>,
    others: Vec<Value>,
    now: u64,
    dc: bool,
    dc_status: Option<Value>,
}

fn pod_name(rack: usize, ordinal: usize) -> String {
    format!("demo-dc1-r{}-sts-{ordinal}", rack + 1)
}

impl World {
    fn new(racks: usize, per_rack: usize, jobs: Value) -> World {
        let mut pods = std::collections::BTreeMap::new();
        for r in 0..racks {
            for o in 0..per_rack {
                pods.insert(pod_name(r, o), (T0 - 3_600_000, true));
            }
        }
        World {
            task: json!({
                "apiVersion": "control.k8ssandra.io/v1alpha1",
                "kind": "CassandraTask",
                "metadata": {"name": "t1", "namespace": NS, "uid": UID,
                             "creationTimestamp": rfc3339(T0)},
                "spec": {"datacenter": {"name": "dc1"}, "jobs": jobs},
            }),
            racks,
            per_rack,
            pods,
            results: Vec::new(),
            others: Vec::new(),
            now: T0 + 1_000,
            dc: true,
            dc_status: None,
        }
    }

    fn dc_json(&self) -> Value {
        let racks: Vec<Value> = (0..self.racks)
            .map(|r| json!({"name": format!("r{}", r + 1)}))
            .collect();
        let mut dc = json!({
            "apiVersion": "cassandra.datastax.com/v1beta1",
            "kind": "CassandraDatacenter",
            "metadata": {"name": "dc1", "namespace": NS},
            "spec": {"clusterName": "demo", "serverType": "cassandra", "serverVersion": "4.1.5",
                     "size": self.racks * self.per_rack, "racks": racks,
                     "storageConfig": {}},
        });
        if let Some(s) = &self.dc_status {
            dc["status"] = s.clone();
        }
        dc
    }

    fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::for_parent(Object {
            cluster: String::new(),
            json: self.task.to_string(),
        });
        if self.dc {
            s.related.push(Object {
                cluster: String::new(),
                json: self.dc_json().to_string(),
            });
        }
        for (name, (created, ready)) in &self.pods {
            let rack = name.split('-').nth(2).unwrap_or_default();
            s.related.push(Object {
                cluster: String::new(),
                json: json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": NS, "uid": format!("{name}-{created}"),
                                 "creationTimestamp": rfc3339(*created),
                                 "labels": {"cassandra.datastax.com/cluster": "demo",
                                            "cassandra.datastax.com/datacenter": "dc1",
                                            "cassandra.datastax.com/rack": rack}},
                    "status": {"podIP": "10.0.0.1"},
                })
                .to_string(),
            });
            s.nodes.push(NodeState {
                node: NodeRef {
                    cluster: String::new(),
                    namespace: NS.into(),
                    pod: name.clone(),
                },
                address: Some("10.0.0.1".into()),
                reachable: true,
                error: None,
                alive: true,
                ready: *ready,
                endpoints: None,
            });
        }
        for o in &self.others {
            s.related.push(Object {
                cluster: String::new(),
                json: o.to_string(),
            });
        }
        s.results = self.results.clone();
        s.now_ms = self.now;
        s
    }

    fn run(&mut self) -> Plan {
        let plan = reconcile(&self.snapshot()).expect("reconcile");
        if let Some(st) = &plan.status {
            self.task["status"] = serde_json::from_str(st).expect("status json");
        }
        plan
    }

    fn status(&self) -> CassandraTaskStatus {
        serde_json::from_value(self.task["status"].clone()).unwrap_or_default()
    }

    fn phase(&self, pod: &str) -> Option<Phase> {
        self.status()
            .pod_statuses
            .and_then(|p| p.get(pod).map(|s| s.status))
    }

    fn cond(&self, t: &str) -> Option<(String, String, String)> {
        self.status().conditions.and_then(|c| {
            c.into_iter()
                .find(|c| c.type_ == t)
                .map(|c| (c.status, c.reason, c.message))
        })
    }

    fn outcome(&mut self, id: &str, outcome: Outcome) {
        self.results.push(OperationResult {
            id: id.into(),
            outcome,
            at_ms: self.now,
        });
    }

    /// The StatefulSet recreates a deleted pod (not ready yet).
    fn recreate(&mut self, pod: &str) {
        self.pods.insert(pod.into(), (self.now, false));
    }
}

fn deleted(plan: &Plan, kind: &str) -> Vec<String> {
    plan.delete
        .iter()
        .filter(|d| d.kind == kind)
        .map(|d| d.name.clone())
        .collect()
}

fn op_ids(plan: &Plan) -> Vec<String> {
    plan.operations.iter().map(|o| o.id.clone()).collect()
}

fn cleanup() -> Value {
    json!([{"name": "c", "command": "cleanup", "args": {"keyspace_name": "ks"}}])
}

fn restart() -> Value {
    json!([{"name": "r", "command": "restart"}])
}

#[test]
fn describe_reads_the_datacenter_its_pods_and_tasks() {
    let info = CassandraTaskPolicy::describe();
    assert_eq!(info.name, "cassandra-task");
    assert_eq!(info.parent.kind, "CassandraTask");
    assert!(info.owns.is_empty());
    let kinds: Vec<&str> = info.reads.iter().map(|r| r.kind.kind.as_str()).collect();
    assert_eq!(kinds, ["CassandraDatacenter", "Pod", "CassandraTask"]);
    assert!(!info.reads[1].selector.is_empty(), "pods are selected");
    assert_eq!(
        info.observe_pods.as_deref(),
        Some("cassandra.datastax.com/datacenter")
    );
}

#[test]
fn validate_names_the_fields() {
    let task = json!({
        "apiVersion": "control.k8ssandra.io/v1alpha1", "kind": "CassandraTask",
        "metadata": {"name": "t"},
        "spec": {"jobs": [
            {"name": "a", "command": "replacenode"},
            {"name": "a", "command": "rebuild", "args": {}},
            {"name": "m", "command": "move"},
            {"name": "t", "command": "tsreload"},
        ], "restartPolicy": "Always", "retries": -1},
    });
    let v = CassandraTaskPolicy::validate(task.to_string(), None);
    let fields: Vec<&str> = v.iter().map(|v| v.field.as_str()).collect();
    for f in [
        "spec.datacenter.name",
        "spec.jobs[0].args.pod_name",
        "spec.jobs[1].name",
        "spec.jobs[1].args.source_datacenter",
        "spec.jobs[2].command",
        "spec.jobs[3].command",
        "spec.restartPolicy",
        "spec.retries",
    ] {
        assert!(fields.contains(&f), "{f} missing from {fields:?}");
    }
    assert!(v.iter().any(|v| v.message.contains("move")));
    let empty = json!({"apiVersion": "control.k8ssandra.io/v1alpha1", "kind": "CassandraTask",
        "metadata": {"name": "t"}, "spec": {"datacenter": {"name": "dc1"}, "jobs": []}});
    let v = CassandraTaskPolicy::validate(empty.to_string(), None);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].field, "spec.jobs");
    let mut w = World::new(1, 1, cleanup());
    assert!(CassandraTaskPolicy::validate(w.task.to_string(), None).is_empty());
    w.run();
}

#[test]
fn scheduled_time_waits_without_status() {
    let mut w = World::new(1, 1, cleanup());
    w.task["spec"]["scheduledTime"] = json!(rfc3339(T0 + 60_000));
    let plan = w.run();
    assert!(plan.status.is_none());
    assert!(plan.operations.is_empty());
    assert_eq!(plan.requeue_after_ms, Some(59_000));
}

#[test]
fn cleanup_runs_one_pod_per_rack_with_deterministic_ids() {
    let mut w = World::new(3, 2, cleanup());
    let snap = w.snapshot();
    let plan = w.run();
    let ids = op_ids(&plan);
    assert_eq!(
        ids,
        (0..3)
            .map(|r| operation_id(UID, 0, &pod_name(r, 0), 0))
            .collect::<Vec<_>>()
    );
    match &plan.operations[0].kind {
        OperationKind::Cleanup(s) => assert_eq!(s.keyspace, "ks"),
        other => panic!("{other:?}"),
    }
    // The same snapshot plans the same ids: the host runs each once.
    assert_eq!(op_ids(&reconcile(&snap).unwrap()), ids);
    let st = w.status();
    assert!(st.start_time.is_some());
    assert_eq!(st.active, Some(3));
    assert_eq!(w.phase(&pod_name(0, 0)), Some(Phase::Running));
    assert_eq!(w.phase(&pod_name(0, 1)), Some(Phase::Waiting));
    assert_eq!(w.cond("Running").unwrap().0, "True");
    assert!(plan.events.iter().any(|e| e.reason == "TaskStarted"));

    // Running outcomes record the job id; nothing new starts.
    for (r, id) in ids.iter().enumerate() {
        w.outcome(id, Outcome::Running(format!("job-{r}")));
    }
    let plan = w.run();
    assert!(op_ids(&plan).iter().all(|id| ids.contains(id)));
    let st = w.status();
    assert_eq!(
        st.pod_statuses.as_ref().unwrap()[&pod_name(1, 0)]
            .job_id
            .as_deref(),
        Some("job-1")
    );

    // Done: the next pod of each rack starts.
    w.now += 1000;
    for id in &ids {
        w.outcome(id, Outcome::Succeeded(String::new()));
    }
    let plan = w.run();
    assert_eq!(
        op_ids(&plan)
            .into_iter()
            .filter(|id| !ids.contains(id))
            .collect::<Vec<_>>(),
        (0..3)
            .map(|r| operation_id(UID, 0, &pod_name(r, 1), 0))
            .collect::<Vec<_>>()
    );
    assert_eq!(w.phase(&pod_name(0, 0)), Some(Phase::Completed));
    for r in 0..3 {
        w.outcome(
            &operation_id(UID, 0, &pod_name(r, 1), 0),
            Outcome::Succeeded(String::new()),
        );
    }
    let plan = w.run();
    let st = w.status();
    assert_eq!(w.cond("Complete").unwrap().0, "True");
    assert_eq!(w.cond("Running").unwrap().0, "False");
    assert_eq!(st.succeeded, Some(6));
    assert_eq!(st.active, None);
    assert!(st.completion_time.is_some());
    assert!(plan.events.iter().any(|e| e.reason == "TaskCompleted"));
}

#[test]
fn max_concurrent_pods_is_per_rack() {
    let mut w = World::new(2, 3, cleanup());
    w.task["spec"]["maxConcurrentPods"] = json!(2);
    let plan = w.run();
    assert_eq!(plan.operations.len(), 4);
}

#[test]
fn a_failed_pod_is_retried_then_fails_the_task() {
    let mut w = World::new(1, 1, cleanup());
    let pod = pod_name(0, 0);
    w.run();
    let a0 = operation_id(UID, 0, &pod, 0);
    w.outcome(&a0, Outcome::Failed("boom".into()));
    let plan = w.run();
    let a1 = operation_id(UID, 0, &pod, 1);
    assert!(op_ids(&plan).contains(&a1), "retry with a new id");
    let st = w.status().pod_statuses.unwrap()[&pod].clone();
    assert_eq!(st.retries, Some(1));
    assert_eq!(st.status, Phase::Running);
    w.outcome(&a1, Outcome::Failed("boom again".into()));
    let plan = w.run();
    assert!(!op_ids(&plan).iter().any(|id| id.ends_with("/2")));
    let st = w.status();
    assert_eq!(w.phase(&pod), Some(Phase::Error));
    assert_eq!(st.failed, Some(1));
    let failed = w.cond("Failed").unwrap();
    assert_eq!(failed.0, "True");
    assert!(failed.2.contains("boom again"), "{failed:?}");
    assert!(plan.events.iter().any(|e| e.reason == "TaskFailed"));
    // A finished task plans nothing but its expiry.
    let plan = w.run();
    assert!(plan.status.is_none() && plan.operations.is_empty());
    assert_eq!(plan.requeue_after_ms, Some(86_400_000));
}

#[test]
fn restart_policy_never_fails_at_once() {
    let mut w = World::new(1, 2, cleanup());
    w.task["spec"]["restartPolicy"] = json!("Never");
    w.task["spec"]["retries"] = json!(5);
    w.run();
    w.outcome(
        &operation_id(UID, 0, &pod_name(0, 0), 0),
        Outcome::Failed("x".into()),
    );
    let plan = w.run();
    assert!(plan.operations.iter().all(|o| !o.id.ends_with("/1")));
    assert_eq!(w.cond("Failed").unwrap().0, "True");
}

#[test]
fn after_an_operator_restart_the_recorded_job_is_polled_not_rerun() {
    let mut w = World::new(1, 1, cleanup());
    let pod = pod_name(0, 0);
    w.run();
    let a0 = operation_id(UID, 0, &pod, 0);
    w.outcome(&a0, Outcome::Running("j-42".into()));
    w.run();
    // The host restarted: its results are gone.
    w.results.clear();
    let plan = w.run();
    assert_eq!(op_ids(&plan), [format!("{a0}/poll/0")]);
    assert_eq!(
        plan.operations[0].kind,
        OperationKind::JobStatus("j-42".into())
    );
    w.outcome(
        &format!("{a0}/poll/0"),
        Outcome::Succeeded(r#"{"id":"j-42","status":"WAITING"}"#.into()),
    );
    let plan = w.run();
    assert!(plan.operations.is_empty());
    assert_eq!(plan.requeue_after_ms, Some(2000));
    w.now += 2000;
    let plan = w.run();
    assert_eq!(op_ids(&plan), [format!("{a0}/poll/1")]);
    w.outcome(
        &format!("{a0}/poll/1"),
        Outcome::Succeeded(r#"{"id":"j-42","status":"COMPLETED"}"#.into()),
    );
    w.run();
    assert_eq!(w.phase(&pod), Some(Phase::Completed));
    assert_eq!(w.cond("Complete").unwrap().0, "True");
}

#[test]
fn restart_goes_rack_by_rack_pod_by_pod_with_all_others_ready() {
    let mut w = World::new(2, 2, restart());
    let order = [
        pod_name(0, 0),
        pod_name(0, 1),
        pod_name(1, 0),
        pod_name(1, 1),
    ];
    for pod in &order {
        let drain = crate::decide::restart_marker(UID, 0, pod);
        let before = w.task["status"].clone();
        // The node is drained first; its pod stays until the drain is over.
        let plan = w.run();
        assert!(
            deleted(&plan, "Pod").is_empty(),
            "{pod} deleted before its drain"
        );
        assert_eq!(op_ids(&plan), std::slice::from_ref(&drain), "next is {pod}");
        assert_eq!(w.phase(pod), Some(Phase::Running));
        // Still draining, with a stale copy of the task too: the same drain (which the
        // host runs once), nothing deleted, nothing else started.
        w.outcome(&drain, Outcome::Running(String::new()));
        let plan = w.run();
        assert_eq!(op_ids(&plan), std::slice::from_ref(&drain));
        assert!(deleted(&plan, "Pod").is_empty());
        let fresh_status = w.task["status"].clone();
        w.task["status"] = before.clone();
        let plan = w.run();
        assert_eq!(op_ids(&plan), std::slice::from_ref(&drain));
        assert!(deleted(&plan, "Pod").is_empty());
        assert_eq!(w.phase(pod), Some(Phase::Running));
        w.task["status"] = fresh_status;
        // Drained: now the pod goes, and no other drain starts.
        w.outcome(&drain, Outcome::Succeeded(String::new()));
        let plan = w.run();
        assert_eq!(deleted(&plan, "Pod"), std::slice::from_ref(pod));
        assert!(plan.operations.is_empty(), "{:?}", op_ids(&plan));
        // Gone, then recreated but not ready: nothing else goes down.
        w.now += 500;
        w.pods.remove(pod);
        assert!(deleted(&w.run(), "Pod").is_empty());
        w.recreate(pod);
        // The new pod is never drained: its node has just started.
        let plan = w.run();
        assert!(deleted(&plan, "Pod").is_empty());
        assert!(plan.operations.is_empty(), "{:?}", op_ids(&plan));
        assert_eq!(w.phase(pod), Some(Phase::Running));
        w.now += 500;
        w.pods.get_mut(pod).unwrap().1 = true;
    }
    let plan = w.run();
    assert!(deleted(&plan, "Pod").is_empty());
    let st = w.status();
    assert_eq!(st.succeeded, Some(4));
    assert!(
        st.pod_statuses
            .unwrap()
            .values()
            .all(|p| p.status == Phase::Completed)
    );
    assert_eq!(w.cond("Complete").unwrap().0, "True");
}

#[test]
fn restart_waits_while_another_node_is_down() {
    let mut w = World::new(2, 2, restart());
    w.pods.get_mut(&pod_name(1, 1)).unwrap().1 = false;
    let plan = w.run();
    assert!(deleted(&plan, "Pod").is_empty());
    assert_eq!(w.phase(&pod_name(0, 0)), Some(Phase::Waiting));
    w.pods.get_mut(&pod_name(1, 1)).unwrap().1 = true;
    assert_eq!(
        op_ids(&w.run()),
        [crate::decide::restart_marker(UID, 0, &pod_name(0, 0))]
    );
}

#[test]
fn a_failed_drain_does_not_keep_the_pod() {
    let mut w = World::new(1, 2, restart());
    let pod = pod_name(0, 0);
    w.run();
    w.outcome(
        &crate::decide::restart_marker(UID, 0, &pod),
        Outcome::Failed("connection refused".into()),
    );
    assert_eq!(deleted(&w.run(), "Pod"), [pod]);
}

#[test]
fn restart_limited_to_a_rack_and_fast_takes_the_rack_at_once() {
    let mut w = World::new(
        2,
        3,
        json!([{"name": "r", "command": "restart",
        "args": {"rack": "r2", "fast": true}}]),
    );
    let plan = w.run();
    let rack: Vec<String> = (0..3).map(|i| pod_name(1, i)).collect();
    let drains: Vec<String> = rack
        .iter()
        .map(|p| crate::decide::restart_marker(UID, 0, p))
        .collect();
    assert_eq!(op_ids(&plan), drains);
    assert_eq!(w.status().pod_statuses.unwrap().len(), 3);
    for d in &drains {
        w.outcome(d, Outcome::Succeeded(String::new()));
    }
    assert_eq!(deleted(&w.run(), "Pod"), rack);
}

#[test]
fn replacenode_asks_the_datacenter_and_waits_for_the_new_node() {
    let pod = pod_name(0, 1);
    let mut w = World::new(
        1,
        2,
        json!([{"name": "x", "command": "replacenode", "args": {"pod_name": pod}}]),
    );
    // The node to replace is down; the others are up: its turn comes at once. The
    // cassandra-datacenter policy does the deleting; the task deletes nothing.
    w.pods.get_mut(&pod).unwrap().1 = false;
    let plan = w.run();
    assert!(plan.delete.is_empty());
    assert_eq!(w.phase(&pod), Some(Phase::Running));
    assert!(w.cond("Running").unwrap().2.starts_with("job 1/1"));
    assert!(plan.events.iter().any(|e| e.reason == "ReplacingNode"));
    w.now += 1000;
    w.recreate(&pod);
    assert!(w.run().delete.is_empty());
    assert_eq!(w.phase(&pod), Some(Phase::Running));
    w.pods.get_mut(&pod).unwrap().1 = true;
    w.run();
    assert_eq!(w.phase(&pod), Some(Phase::Completed));
    assert_eq!(w.cond("Complete").unwrap().0, "True");
}

#[test]
fn replacenode_refused_by_the_datacenter_fails() {
    let pod = pod_name(0, 0);
    let mut w = World::new(
        1,
        1,
        json!([{"name": "x", "command": "replacenode", "args": {"pod_name": pod}}]),
    );
    w.run();
    assert_eq!(w.phase(&pod), Some(Phase::Running));
    w.dc_status = Some(
        json!({"conditions": [{"type": "ReplacingNodes", "status": "False",
        "reason": "UnknownNode", "message": format!("{pod} is not a known node of this datacenter"),
        "lastTransitionTime": rfc3339(T0)}]}),
    );
    w.run();
    assert_eq!(w.phase(&pod), Some(Phase::Error));
    assert_eq!(w.cond("Failed").unwrap().0, "True");
}

#[test]
fn unknown_rack_or_pod_fails_naming_the_field() {
    let mut w = World::new(
        1,
        1,
        json!([{"name": "r", "command": "restart", "args": {"rack": "nope"}}]),
    );
    let plan = w.run();
    assert!(plan.delete.is_empty());
    let failed = w.cond("Failed").unwrap();
    assert_eq!(failed.1, "InvalidSpec");
    assert!(failed.2.contains("spec.jobs[0].args.rack"), "{failed:?}");
}

#[test]
fn replacenode_of_a_pod_not_visible_right_now_is_not_refused() {
    let pod = pod_name(0, 1);
    let mut w = World::new(
        1,
        2,
        json!([{"name": "x", "command": "replacenode", "args": {"pod_name": pod}}]),
    );
    w.pods.remove(&pod);
    w.run();
    assert!(w.cond("Failed").is_none(), "{:?}", w.cond("Failed"));
    let mut w = World::new(
        1,
        2,
        json!([{"name": "x", "command": "replacenode", "args": {"pod_name": "demo-dc1-r1-sts-7"}}]),
    );
    w.run();
    assert!(
        w.cond("Failed")
            .unwrap()
            .2
            .contains("spec.jobs[0].args.pod_name")
    );
}

#[test]
fn unsupported_command_fails_naming_it() {
    let mut w = World::new(1, 1, json!([{"name": "m", "command": "refresh"}]));
    w.run();
    let failed = w.cond("Failed").unwrap();
    assert_eq!(failed.1, "UnsupportedCommand");
    assert!(failed.2.contains("refresh"));
}

#[test]
fn missing_datacenter_waits() {
    let mut w = World::new(1, 1, cleanup());
    w.dc = false;
    let plan = w.run();
    assert!(plan.operations.is_empty());
    assert_eq!(w.cond("Running").unwrap().1, "DatacenterNotFound");
    assert!(w.status().start_time.is_none());
    w.dc = true;
    assert_eq!(w.run().operations.len(), 1);
}

#[test]
fn a_started_task_keeps_its_progress_while_the_datacenter_or_its_pods_are_not_visible() {
    let mut w = World::new(1, 1, cleanup());
    w.run();
    let before = w.task["status"].clone();
    w.dc = false;
    let plan = w.run();
    assert!(plan.status.is_none() && plan.operations.is_empty());
    assert_eq!(plan.requeue_after_ms, Some(30_000));
    assert_eq!(w.task["status"], before);
    // A job does not start on a datacenter whose pods are not visible yet.
    let mut w = World::new(1, 2, cleanup());
    let pods = std::mem::take(&mut w.pods);
    let plan = w.run();
    assert!(plan.operations.is_empty());
    assert!(w.status().pod_statuses.is_none());
    assert!(w.cond("Complete").is_none());
    w.pods = pods;
    assert_eq!(w.run().operations.len(), 1);
}

fn other(name: &str, created: u64, policy: &str, started: bool) -> Value {
    let mut v = json!({
        "apiVersion": "control.k8ssandra.io/v1alpha1", "kind": "CassandraTask",
        "metadata": {"name": name, "namespace": NS, "uid": format!("uid-{name}"),
                     "creationTimestamp": rfc3339(created)},
        "spec": {"datacenter": {"name": "dc1"}, "concurrencyPolicy": policy,
                 "jobs": [{"name": "c", "command": "cleanup"}]},
    });
    if started {
        v["status"] = json!({"startTime": rfc3339(created)});
    }
    v
}

#[test]
fn forbid_waits_for_running_and_older_tasks() {
    // A newer task that already runs blocks us.
    let mut w = World::new(1, 1, cleanup());
    w.others.push(other("zz", T0 + 1000, "Allow", true));
    assert!(w.run().operations.is_empty());
    assert_eq!(w.cond("Running").unwrap().1, "WaitingForTask");
    // An older one not started yet goes first.
    let mut w = World::new(1, 1, cleanup());
    w.others.push(other("aa", T0 - 1000, "Forbid", false));
    assert!(w.run().operations.is_empty());
    // A newer one not started waits for us.
    let mut w = World::new(1, 1, cleanup());
    w.others.push(other("zz", T0 + 1000, "Forbid", false));
    assert_eq!(w.run().operations.len(), 1);
    // Allow beside Allow runs.
    let mut w = World::new(1, 1, cleanup());
    w.task["spec"]["concurrencyPolicy"] = json!("Allow");
    w.others.push(other("aa", T0 - 1000, "Allow", true));
    assert_eq!(w.run().operations.len(), 1);
    // A finished one does not count.
    let mut w = World::new(1, 1, cleanup());
    let mut done = other("aa", T0 - 1000, "Forbid", true);
    done["status"]["conditions"] = json!([{"type": "Complete", "status": "True", "reason": "Completed",
        "message": "", "lastTransitionTime": rfc3339(T0)}]);
    w.others.push(done);
    assert_eq!(w.run().operations.len(), 1);
}

#[test]
fn finished_task_is_deleted_after_its_ttl() {
    let mut w = World::new(1, 1, cleanup());
    w.task["spec"]["ttlSecondsAfterFinished"] = json!(10);
    w.run();
    w.outcome(
        &operation_id(UID, 0, &pod_name(0, 0), 0),
        Outcome::Succeeded(String::new()),
    );
    w.run();
    assert_eq!(w.cond("Complete").unwrap().0, "True");
    let plan = w.run();
    assert_eq!(plan.requeue_after_ms, Some(10_000));
    w.now += 10_000;
    let plan = w.run();
    assert_eq!(deleted(&plan, "CassandraTask"), ["t1"]);
    w.task["spec"]["ttlSecondsAfterFinished"] = json!(0);
    let plan = w.run();
    assert!(plan.delete.is_empty() && plan.requeue_after_ms.is_none());
}

#[test]
fn status_has_the_upstream_shape_and_is_stable() {
    let mut w = World::new(1, 2, cleanup());
    w.run();
    w.outcome(
        &operation_id(UID, 0, &pod_name(0, 0), 0),
        Outcome::Succeeded(String::new()),
    );
    w.now += 5000;
    w.run();
    let status = w.task["status"].clone();
    let pod = &status["podStatuses"][pod_name(0, 0)];
    assert_eq!(pod["status"], "COMPLETED");
    assert!(pod["startTime"].is_string() && pod["completionTime"].is_string());
    assert_eq!(status["podStatuses"][pod_name(0, 1)]["status"], "RUNNING");
    assert!(status["startTime"].is_string());
    assert_eq!(status["active"], 1);
    assert_eq!(status["succeeded"], 1);
    assert!(status.get("failed").is_none());
    let types: Vec<&str> = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["Running"]);
    // Nothing changed: the same status, transition times included.
    w.now += 5000;
    w.run();
    assert_eq!(w.task["status"], status);
}

#[test]
fn jobs_run_in_order() {
    let mut w = World::new(
        1,
        1,
        json!([
            {"name": "first", "command": "flush"},
            {"name": "second", "command": "restart"},
        ]),
    );
    let pod = pod_name(0, 0);
    let plan = w.run();
    assert!(matches!(plan.operations[0].kind, OperationKind::Flush(_)));
    assert!(plan.delete.is_empty());
    assert!(w.cond("Running").unwrap().2.starts_with("job 1/2"));
    w.outcome(
        &operation_id(UID, 0, &pod, 0),
        Outcome::Succeeded(String::new()),
    );
    let plan = w.run();
    let drain = crate::decide::restart_marker(UID, 1, &pod);
    assert_eq!(op_ids(&plan), std::slice::from_ref(&drain));
    assert!(w.cond("Running").unwrap().2.starts_with("job 2/2"));
    w.outcome(&drain, Outcome::Succeeded(String::new()));
    assert_eq!(deleted(&w.run(), "Pod"), std::slice::from_ref(&pod));
    w.now += 1000;
    w.recreate(&pod);
    w.pods.get_mut(&pod).unwrap().1 = true;
    w.run();
    assert_eq!(w.cond("Complete").unwrap().0, "True");
}
