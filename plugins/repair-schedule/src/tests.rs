use k8ssandra_policy_sdk::{
    EventType, Object, OperationKind, OperationResult, Outcome, Plan, Policy, Snapshot,
};
use serde_json::{Value, json};

use crate::RepairSchedulePolicy;
use crate::decide::{
    FINALIZER, GIVE_UP_MS, REASON_KEYSPACE, REASON_NO_CLUSTER, REASON_NO_REAPER, REASON_SYNCED,
    REASON_UNREACHABLE, REFRESH_MS,
};

const NS: &str = "ns";
const NOW: u64 = 1_700_000_000_000;

fn schedule(spec: Value) -> Value {
    json!({
        "apiVersion": "reaper.k8ssandra.io/v1alpha1", "kind": "RepairSchedule",
        "metadata": {"name": "ks1-weekly", "namespace": NS, "uid": "rs-uid", "generation": 1,
                     "finalizers": [FINALIZER]},
        "spec": spec,
    })
}

fn spec() -> Value {
    json!({"cluster": "demo", "keyspace": "ks1", "intensity": "0.5", "daysBetween": 7})
}

fn kc() -> Value {
    json!({"apiVersion": "k8ssandra.io/v1alpha1", "kind": "K8ssandraCluster",
           "metadata": {"name": "demo", "namespace": NS},
           "spec": {"cassandra": {"clusterName": "Demo Cluster"}, "reaper": {}}})
}

fn reaper(name: &str, progress: &str) -> Value {
    json!({"apiVersion": "reaper.k8ssandra.io/v1alpha1", "kind": "Reaper",
           "metadata": {"name": name, "namespace": NS,
                        "labels": {"k8ssandra.io/cluster-name": "demo"}},
           "spec": {"datacenterRef": {"name": "dc1"}, "uiUserSecretRef": {"name": "demo-reaper-ui"}},
           "status": {"progress": progress}})
}

fn reaper_pod(reaper: &str, ready: bool) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": format!("{reaper}-abc"), "namespace": NS,
                        "labels": {"k8ssandra.io/reaper": reaper}},
           "status": {"podIP": "127.1.0.9",
                      "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
}

fn in_cluster(cluster: &str, v: &Value) -> Object {
    Object {
        cluster: cluster.into(),
        json: v.to_string(),
    }
}

/// A schedule with a Running Reaper in data-plane cluster `cluster-1`.
fn snap(parent: Value, results: Vec<(String, Outcome)>, now: u64) -> Snapshot {
    let mut s = Snapshot::for_parent(in_cluster("", &parent));
    s.related = vec![
        in_cluster("", &kc()),
        in_cluster("cluster-1", &reaper("demo-dc1-reaper", "Running")),
        in_cluster("cluster-1", &reaper_pod("demo-dc1-reaper", true)),
    ];
    s.now_ms = now;
    s.results = results
        .into_iter()
        .map(|(id, outcome)| OperationResult {
            id,
            outcome,
            at_ms: now - 100,
        })
        .collect();
    s
}

fn run(s: Snapshot) -> Plan {
    RepairSchedulePolicy::reconcile(s).expect("a plan")
}

fn status(plan: &Plan) -> Value {
    serde_json::from_str(plan.status.as_deref().expect("a status")).unwrap()
}

fn ready(plan: &Plan) -> Value {
    status(plan)["conditions"][0].clone()
}

fn with_status(mut parent: Value, plan: &Plan) -> Value {
    parent["status"] = status(plan);
    parent
}

fn list_id(n: usize, now: u64) -> String {
    format!("rs/list/{n}/{REFRESH_MS}/{}", now / REFRESH_MS)
}

fn runs_id(n: usize, now: u64) -> String {
    format!("rs/runs/{n}/{REFRESH_MS}/{}", now / REFRESH_MS)
}

fn ok(v: Value) -> Outcome {
    Outcome::Succeeded(v.to_string())
}

fn listed(id: &str, owner: &str, intensity: f64, state: &str) -> Value {
    json!({"id": id, "owner": owner, "state": state, "keyspace": "ks1", "tables": [],
           "blacklistedTables": [], "datacenters": [], "nodes": [], "parallelism": "DATACENTER_AWARE",
           "intensity": intensity, "incremental": false, "daysBetween": 7,
           "segmentCountPerNode": 64, "repairThreadCount": 1, "adaptive": false,
           "percentUnrepairedThreshold": null, "nextActivation": "2023-11-15T00:00:00Z"})
}

fn violations(spec: Value) -> Vec<(String, String)> {
    RepairSchedulePolicy::validate(schedule(spec).to_string(), None)
        .into_iter()
        .map(|v| (v.field, v.message))
        .collect()
}

#[test]
fn bad_input_names_the_field_and_the_rule() {
    assert!(violations(spec()).is_empty());
    assert!(violations(json!({"cluster": "demo", "keyspace": "ks1", "intensity": 1})).is_empty());
    for bad in [json!(1.5), json!("0"), json!(0), json!("fast"), json!(-0.1)] {
        let v = violations(json!({"cluster": "demo", "keyspace": "ks1", "intensity": bad}));
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].0, "spec.intensity");
        assert!(v[0].1.contains("(0, 1]"), "{}", v[0].1);
    }
    let v = violations(json!({"cluster": "demo", "keyspace": "ks1", "repairParallelism": "FAST"}));
    assert_eq!(v[0].0, "spec.repairParallelism");
    assert!(v[0].1.contains("SEQUENTIAL, PARALLEL or DATACENTER_AWARE"));
    let v = violations(json!({"cluster": "demo", "keyspace": "ks1", "daysBetween": 0}));
    assert_eq!(v[0].0, "spec.daysBetween");
    assert!(v[0].1.contains("at least 1"));
    let v = violations(
        json!({"cluster": "demo", "keyspace": "ks1", "incremental": true,
                              "repairParallelism": "SEQUENTIAL"}),
    );
    assert_eq!(v[0].0, "spec.repairParallelism");
    let v = violations(
        json!({"cluster": "demo", "keyspace": "", "repairThreadCount": 9,
                              "triggerTime": "tomorrow"}),
    );
    let fields: Vec<&str> = v.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.keyspace",
            "spec.repairThreadCount",
            "spec.triggerTime"
        ]
    );
}

#[test]
fn bad_input_in_the_cluster_is_a_condition_and_no_call() {
    let plan = run(snap(
        schedule(json!({"cluster": "demo", "keyspace": "ks1", "intensity": 2})),
        vec![],
        NOW,
    ));
    assert!(plan.operations.is_empty());
    let c = ready(&plan);
    assert_eq!(c["status"], "False");
    assert!(c["message"].as_str().unwrap().starts_with("spec.intensity"));
    assert!(
        plan.events
            .iter()
            .any(|e| e.event_type == EventType::Warning)
    );
}

#[test]
fn waits_for_the_cluster_and_a_running_reaper() {
    let mut s = snap(
        schedule(json!({"cluster": "nope", "keyspace": "ks1"})),
        vec![],
        NOW,
    );
    let plan = run(s.clone());
    assert_eq!(ready(&plan)["reason"], REASON_NO_CLUSTER);
    assert!(
        ready(&plan)["message"]
            .as_str()
            .unwrap()
            .contains("spec.cluster")
    );

    s.parent = in_cluster("", &schedule(spec()));
    s.related[1] = in_cluster("cluster-1", &reaper("demo-dc1-reaper", "Configuring"));
    let plan = run(s);
    assert_eq!(ready(&plan)["reason"], REASON_NO_REAPER);
    assert!(plan.operations.is_empty());
}

#[test]
fn creates_one_schedule_owned_by_the_operator_then_reports_its_runs() {
    let plan = run(snap(schedule(spec()), vec![], NOW));
    assert_eq!(plan.finalizers, Some(vec![FINALIZER.to_string()]));
    assert_eq!(plan.operations.len(), 1);
    let op = &plan.operations[0];
    assert_eq!(op.id, list_id(0, NOW));
    assert_eq!(op.target.cluster, "cluster-1");
    assert_eq!(op.target.pod, "demo-dc1-reaper-abc");
    let OperationKind::ReaperListSchedules(c) = &op.kind else {
        panic!("{:?}", op.kind)
    };
    assert_eq!(c.name, "democluster", "the cleaned Cassandra cluster name");
    assert_eq!(c.access.ui_secret.as_deref(), Some("demo-reaper-ui"));

    // A hand-made schedule of the same keyspace is not ours: ours is created.
    let hand = listed("hand", "alice", 0.9, "ACTIVE");
    let mut results = vec![(list_id(0, NOW), ok(json!([hand])))];
    let plan = run(snap(schedule(spec()), results.clone(), NOW));
    assert_eq!(plan.operations.len(), 1);
    let op = &plan.operations[0];
    assert_eq!(op.id, "rs/m/0/create");
    let OperationKind::ReaperCreateSchedule(sch) = &op.kind else {
        panic!("{:?}", op.kind)
    };
    assert_eq!(sch.repair.owner, "k8ssandra-operator");
    assert_eq!(sch.repair.keyspace, "ks1");
    assert_eq!(sch.repair.cluster_name, "democluster");
    assert!((sch.repair.intensity - 0.5).abs() < 1e-9);
    assert_eq!(sch.days_between, 7);

    // Created: its id in the status at once; the next list (one change made) sees it.
    results.push((
        "rs/m/0/create".into(),
        ok(listed("s1", "k8ssandra-operator", 0.5, "ACTIVE")),
    ));
    let plan = run(snap(schedule(spec()), results.clone(), NOW));
    assert_eq!(status(&plan)["scheduleId"], "s1");
    assert_eq!(plan.operations[0].id, list_id(1, NOW));
    let parent = with_status(schedule(spec()), &plan);

    results.push((
        list_id(1, NOW),
        ok(json!([
            hand,
            listed("s1", "k8ssandra-operator", 0.5, "ACTIVE")
        ])),
    ));
    let plan = run(snap(parent.clone(), results.clone(), NOW));
    assert_eq!(plan.operations.len(), 1, "{:?}", plan.operations);
    assert_eq!(plan.operations[0].id, runs_id(1, NOW));
    results.push((
        runs_id(1, NOW),
        ok(json!([
            {"id": "run-other", "owner": "alice", "keyspace": "ks1", "state": "RUNNING", "scheduleId": "hand"},
            {"id": "run-1", "owner": "k8ssandra-operator", "keyspace": "ks1", "state": "DONE",
             "scheduleId": "s1", "segmentsRepaired": 12, "totalSegments": 12,
             "startTime": "2023-11-14T22:13:00Z", "endTime": "2023-11-14T22:14:00Z"}
        ])),
    ));
    let plan = run(snap(parent, results, NOW));
    assert!(plan.operations.is_empty());
    let st = status(&plan);
    assert_eq!(st["state"], "ACTIVE");
    assert_eq!(st["nextActivation"], "2023-11-15T00:00:00Z");
    assert_eq!(
        st["lastRun"],
        json!({"id": "run-1", "state": "DONE", "segmentsRepaired": 12, "totalSegments": 12,
               "startTime": "2023-11-14T22:13:00Z", "endTime": "2023-11-14T22:14:00Z"})
    );
    assert_eq!(st["reaper"], "cluster-1/ns/demo-dc1-reaper");
    assert_eq!(ready(&plan)["status"], "True");
    assert_eq!(ready(&plan)["reason"], REASON_SYNCED);
}

/// A schedule whose status holds `s1` and a list showing `listed`, with `n` changes made.
fn synced(spec: Value, shown: Vec<Value>) -> Plan {
    let mut parent = schedule(spec);
    parent["status"] = json!({"scheduleId": "s1"});
    run(snap(parent, vec![(list_id(0, NOW), ok(json!(shown)))], NOW))
}

#[test]
fn a_changed_intensity_updates_the_same_schedule() {
    let mut sp = spec();
    sp["intensity"] = json!(0.8);
    let plan = synced(sp, vec![listed("s1", "k8ssandra-operator", 0.5, "ACTIVE")]);
    assert_eq!(plan.operations.len(), 1);
    assert_eq!(plan.operations[0].id, "rs/m/0/update/s1");
    let OperationKind::ReaperUpdateSchedule(u) = &plan.operations[0].kind else {
        panic!("{:?}", plan.operations[0].kind)
    };
    assert_eq!(u.id, "s1");
    assert!((u.schedule.repair.intensity - 0.8).abs() < 1e-9);
}

#[test]
fn a_changed_keyspace_replaces_the_schedule() {
    let mut sp = spec();
    sp["keyspace"] = json!("ks2");
    let plan = synced(sp, vec![listed("s1", "k8ssandra-operator", 0.5, "ACTIVE")]);
    assert_eq!(plan.operations.len(), 1);
    let OperationKind::ReaperDeleteSchedule(r) = &plan.operations[0].kind else {
        panic!("{:?}", plan.operations[0].kind)
    };
    assert_eq!(
        (r.id.as_str(), r.owner.as_str()),
        ("s1", "k8ssandra-operator")
    );
}

#[test]
fn paused_pauses_and_unpaused_activates() {
    let mut sp = spec();
    sp["paused"] = json!(true);
    let plan = synced(sp, vec![listed("s1", "k8ssandra-operator", 0.5, "ACTIVE")]);
    let OperationKind::ReaperSetScheduleState(st) = &plan.operations[0].kind else {
        panic!("{:?}", plan.operations[0].kind)
    };
    assert!(!st.active);
    assert_eq!(st.schedule.id, "s1");
    let plan = synced(
        spec(),
        vec![listed("s1", "k8ssandra-operator", 0.5, "PAUSED")],
    );
    let OperationKind::ReaperSetScheduleState(st) = &plan.operations[0].kind else {
        panic!("{:?}", plan.operations[0].kind)
    };
    assert!(st.active);
}

#[test]
fn another_owners_schedule_is_never_changed() {
    // Reaper holds only a hand-made schedule with the id our status remembers.
    let mut sp = spec();
    sp["intensity"] = json!(0.8);
    let plan = synced(sp, vec![listed("s1", "alice", 0.5, "ACTIVE")]);
    assert_eq!(plan.operations.len(), 1);
    assert!(
        matches!(
            plan.operations[0].kind,
            OperationKind::ReaperCreateSchedule(_)
        ),
        "{:?}",
        plan.operations[0].kind
    );
}

#[test]
fn a_keyspace_reaper_refuses_is_a_condition_naming_the_field() {
    let results = vec![
        (list_id(0, NOW), ok(json!([]))),
        (
            "rs/m/0/create".into(),
            Outcome::Failed("HTTP 400: keyspace nope does not exist in the cluster".into()),
        ),
    ];
    let plan = run(snap(schedule(spec()), results, NOW));
    let c = ready(&plan);
    assert_eq!(c["reason"], REASON_KEYSPACE);
    assert!(c["message"].as_str().unwrap().starts_with("spec.keyspace"));
    // Another owner's schedule of the same keyspace and tables: Reaper refuses a second.
    let results = vec![
        (
            list_id(0, NOW),
            ok(json!([listed("hand", "alice", 0.9, "ACTIVE")])),
        ),
        (
            "rs/m/0/create".into(),
            Outcome::Failed(
                "answered HTTP 409 to POST /repair_schedule: A repair schedule already exists"
                    .into(),
            ),
        ),
    ];
    let plan = run(snap(schedule(spec()), results, NOW));
    let c = ready(&plan);
    assert_eq!(c["reason"], crate::decide::REASON_CONFLICT);
    assert!(c["message"].as_str().unwrap().starts_with("spec.keyspace"));
}

#[test]
fn an_unreachable_reaper_is_a_condition() {
    let results = vec![(
        list_id(0, NOW),
        Outcome::Failed("connection refused".into()),
    )];
    let plan = run(snap(schedule(spec()), results, NOW));
    assert_eq!(ready(&plan)["reason"], REASON_UNREACHABLE);
    assert!(plan.operations.is_empty(), "backoff first");
}

fn deleted(parent_status: Value, results: Vec<(String, Outcome)>, now: u64) -> Snapshot {
    let mut p = schedule(spec());
    p["metadata"]["deletionTimestamp"] = json!("2023-11-14T22:13:20Z");
    p["status"] = parent_status;
    snap(p, results, now)
}

#[test]
fn deletion_deletes_our_schedule_then_releases() {
    let plan = run(deleted(json!({"scheduleId": "s1"}), vec![], NOW + 1000));
    assert_eq!(plan.finalizers, None);
    let OperationKind::ReaperDeleteSchedule(r) = &plan.operations[0].kind else {
        panic!("{:?}", plan.operations[0].kind)
    };
    assert_eq!(
        (r.id.as_str(), r.owner.as_str()),
        ("s1", "k8ssandra-operator")
    );
    let plan = run(deleted(
        json!({"scheduleId": "s1"}),
        vec![("rs/delete/s1".into(), ok(json!("")))],
        NOW + 2000,
    ));
    assert_eq!(plan.finalizers, Some(vec![]));
    // Never created: nothing to delete.
    let plan = run(deleted(json!({}), vec![], NOW + 1000));
    assert_eq!(plan.finalizers, Some(vec![]));
    // Reaper failing: held, then released with a Warning after the bound.
    let failed = vec![("rs/delete/s1".into(), Outcome::Failed("HTTP 503".into()))];
    let plan = run(deleted(
        json!({"scheduleId": "s1"}),
        failed.clone(),
        NOW + 1000,
    ));
    assert_eq!(plan.finalizers, None);
    let plan = run(deleted(
        json!({"scheduleId": "s1"}),
        failed,
        NOW + GIVE_UP_MS + 1000,
    ));
    assert_eq!(plan.finalizers, Some(vec![]));
    assert!(
        plan.events
            .iter()
            .any(|e| e.event_type == EventType::Warning)
    );
}
