use k8ssandra_policy_sdk::{
    Object, OperationKind, OperationResult, Outcome, Plan, Policy, Snapshot,
};
use serde_json::{Value, json};

use crate::RepairRunPolicy;
use crate::decide::{
    REASON_DONE, REASON_FAILED, REASON_INVALID, REASON_KEYSPACE, REASON_NO_REAPER, REASON_RUNNING,
    REASON_STARTING, REASON_UNREACHABLE,
};

const NS: &str = "ns";
const UID: &str = "rr-uid-1";
const NOW: u64 = 1_700_000_000_000;

fn object(spec: Value, status: Option<Value>) -> Value {
    let mut v = json!({
        "apiVersion": "reaper.k8ssandra.io/v1alpha1", "kind": "RepairRun",
        "metadata": {"name": "ks1-now", "namespace": NS, "uid": UID, "generation": 1},
        "spec": spec,
    });
    if let Some(s) = status {
        v["status"] = s;
    }
    v
}

fn spec() -> Value {
    json!({"cluster": "demo", "keyspace": "ks1", "intensity": "0.5", "timeoutMinutes": 20})
}

fn kc() -> Value {
    json!({"apiVersion": "k8ssandra.io/v1alpha1", "kind": "K8ssandraCluster",
           "metadata": {"name": "demo", "namespace": NS},
           "spec": {"cassandra": {"clusterName": "Demo Cluster"}, "reaper": {}}})
}

fn reaper(progress: &str) -> Value {
    json!({"apiVersion": "reaper.k8ssandra.io/v1alpha1", "kind": "Reaper",
           "metadata": {"name": "demo-dc1-reaper", "namespace": NS,
                        "labels": {"k8ssandra.io/cluster-name": "demo"}},
           "spec": {"datacenterRef": {"name": "dc1"}, "uiUserSecretRef": {"name": "demo-reaper-ui"}},
           "status": {"progress": progress}})
}

fn reaper_pod() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "demo-dc1-reaper-abc", "namespace": NS,
                        "labels": {"k8ssandra.io/reaper": "demo-dc1-reaper"}},
           "status": {"podIP": "127.1.0.9",
                      "conditions": [{"type": "Ready", "status": "True"}]}})
}

fn obj(v: &Value) -> Object {
    Object {
        cluster: String::new(),
        json: v.to_string(),
    }
}

fn snap(parent: Value, progress: &str, results: Vec<(&str, Outcome)>, now: u64) -> Snapshot {
    let mut s = Snapshot::for_parent(obj(&parent));
    s.related = vec![obj(&kc()), obj(&reaper(progress)), obj(&reaper_pod())];
    s.now_ms = now;
    s.results = results
        .into_iter()
        .map(|(id, outcome)| OperationResult {
            id: id.to_string(),
            outcome,
            at_ms: now - 100,
        })
        .collect();
    s
}

fn run(s: Snapshot) -> Plan {
    RepairRunPolicy::reconcile(s).expect("a plan")
}

fn status(p: &Plan) -> Value {
    serde_json::from_str(p.status.as_deref().expect("a status")).unwrap()
}

fn cond(p: &Plan, t: &str) -> Value {
    status(p)["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == t)
        .cloned()
        .unwrap()
}

fn run_json(id: &str, state: &str, cause: &str, done: u32) -> Value {
    json!({"id": id, "owner": "k8ssandra-operator", "cause": cause, "keyspace": "ks1",
           "state": state, "segmentsRepaired": done, "totalSegments": 6,
           "startTime": "2026-12-07T21:00:00Z",
           "endTime": if state == "DONE" || state == "ERROR" { json!("2026-12-07T21:01:00Z") } else { Value::Null },
           "lastEvent": "Segment (1, 2] repaired"})
}

fn repairs(
    p: &Plan,
) -> Vec<(
    String,
    k8ssandra_policy_sdk::bindings::k8ssandra::policy::types::ReaperRepair,
)> {
    p.operations
        .iter()
        .filter_map(|o| match &o.kind {
            OperationKind::ReaperRepair(r) => Some((o.id.clone(), r.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn waits_for_a_running_reaper_without_calling_it() {
    let p = run(snap(object(spec(), None), "Configuring", vec![], NOW));
    assert!(p.operations.is_empty());
    let c = cond(&p, "Complete");
    assert_eq!(
        (c["status"].as_str(), c["reason"].as_str()),
        (Some("False"), Some(REASON_NO_REAPER))
    );
    assert!(p.requeue_after_ms.is_some());
}

#[test]
fn lists_runs_before_starting_one_then_starts_exactly_one_with_its_uid_in_the_cause() {
    let p = run(snap(object(spec(), None), "Running", vec![], NOW));
    assert_eq!(p.operations.len(), 1);
    assert!(matches!(
        p.operations[0].kind,
        OperationKind::ReaperListRuns(_)
    ));
    assert!(
        repairs(&p).is_empty(),
        "nothing started before the runs are listed"
    );

    let p = run(snap(
        object(spec(), None),
        "Running",
        vec![(
            &format!("rr/adopt/{UID}/0"),
            Outcome::Succeeded(
                json!([run_json("other", "RUNNING", "someone else", 1)]).to_string(),
            ),
        )],
        NOW,
    ));
    let r = repairs(&p);
    assert_eq!(r.len(), 1, "{:?}", p.operations);
    assert_eq!(r[0].0, format!("rr/repair/{UID}/0"));
    assert!(r[0].1.cause.contains(UID), "{}", r[0].1.cause);
    assert_eq!(r[0].1.owner, "k8ssandra-operator");
    assert_eq!(r[0].1.cluster_name, "democluster");
    assert_eq!(r[0].1.keyspace, "ks1");
    assert!((r[0].1.intensity - 0.5).abs() < 1e-9);
    assert_eq!(r[0].1.timeout_minutes, Some(20));
    assert_eq!(r[0].1.access.ui_secret.as_deref(), Some("demo-reaper-ui"));
    assert_eq!(cond(&p, "Complete")["reason"], REASON_STARTING);
}

#[test]
fn adopts_a_run_of_ours_instead_of_starting_another() {
    let p = run(snap(
        object(spec(), None),
        "Running",
        vec![(
            &format!("rr/adopt/{UID}/0"),
            Outcome::Succeeded(
                json!([run_json(
                    "r-7",
                    "RUNNING",
                    &format!("RepairRun ns/ks1-now (uid {UID})"),
                    2
                )])
                .to_string(),
            ),
        )],
        NOW,
    ));
    assert!(repairs(&p).is_empty(), "{:?}", p.operations);
    let st = status(&p);
    assert_eq!(st["runId"], "r-7");
    assert_eq!(st["state"], "RUNNING");
    assert_eq!(st["segmentsRepaired"], 2);
    assert_eq!(st["totalSegments"], 6);
    assert_eq!(cond(&p, "Complete")["reason"], REASON_RUNNING);
}

#[test]
fn the_running_outcome_names_the_run_and_progress_comes_from_the_list() {
    let p = run(snap(
        object(spec(), None),
        "Running",
        vec![
            (
                &format!("rr/adopt/{UID}/0"),
                Outcome::Succeeded("[]".into()),
            ),
            (
                &format!("rr/repair/{UID}/0"),
                Outcome::Running("r-1".into()),
            ),
        ],
        NOW,
    ));
    assert_eq!(status(&p)["runId"], "r-1");
    assert!(
        repairs(&p).is_empty(),
        "no second start: {:?}",
        p.operations
    );
    let w = NOW / crate::decide::REFRESH_MS;
    let p = run(snap(
        object(spec(), Some(json!({"runId": "r-1"}))),
        "Running",
        vec![
            (
                &format!("rr/repair/{UID}/0"),
                Outcome::Running("r-1".into()),
            ),
            (
                &format!("rr/runs/{UID}/{w}"),
                Outcome::Succeeded(json!([run_json("r-1", "RUNNING", "x", 3)]).to_string()),
            ),
        ],
        NOW,
    ));
    assert!(repairs(&p).is_empty());
    assert_eq!(status(&p)["segmentsRepaired"], 3);
    assert_eq!(cond(&p, "Complete")["reason"], REASON_RUNNING);
}

#[test]
fn done_is_complete_with_segments_and_then_nothing_more_happens() {
    let p = run(snap(
        object(spec(), Some(json!({"runId": "r-1"}))),
        "Running",
        vec![(
            &format!("rr/repair/{UID}/0"),
            Outcome::Succeeded(run_json("r-1", "DONE", "x", 6).to_string()),
        )],
        NOW,
    ));
    let c = cond(&p, "Complete");
    assert_eq!(
        (c["status"].as_str(), c["reason"].as_str()),
        (Some("True"), Some(REASON_DONE))
    );
    assert_eq!(cond(&p, "Failed")["status"], "False");
    let st = status(&p);
    assert_eq!(
        (
            st["segmentsRepaired"].as_u64(),
            st["totalSegments"].as_u64()
        ),
        (Some(6), Some(6))
    );
    assert_eq!(st["endTime"], "2026-12-07T21:01:00Z");
    // Complete: no call, no status write, no requeue.
    let p = run(snap(
        object(spec(), Some(st)),
        "Running",
        vec![],
        NOW + 60_000,
    ));
    assert!(p.operations.is_empty() && p.status.is_none() && p.requeue_after_ms.is_none());
}

#[test]
fn an_error_run_is_failed_with_reapers_last_event() {
    let w = NOW / crate::decide::REFRESH_MS;
    let mut r = run_json("r-1", "ERROR", "x", 2);
    r["lastEvent"] = json!("Segment (1, 2] failed 3 times: replica(s) 10.0.0.1 down");
    let p = run(snap(
        object(spec(), Some(json!({"runId": "r-1"}))),
        "Running",
        vec![(
            &format!("rr/runs/{UID}/{w}"),
            Outcome::Succeeded(json!([r]).to_string()),
        )],
        NOW,
    ));
    let f = cond(&p, "Failed");
    assert_eq!(
        (f["status"].as_str(), f["reason"].as_str()),
        (Some("True"), Some(REASON_FAILED))
    );
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("replica(s) 10.0.0.1 down"),
        "{f}"
    );
}

#[test]
fn an_unknown_keyspace_is_a_condition_naming_the_field_and_retried_later() {
    let p = run(snap(
        object(spec(), None),
        "Running",
        vec![
            (
                &format!("rr/repair/{UID}/0"),
                Outcome::Failed(
                    "Reaper answered 400: keyspace ks1 does not exist in the cluster".into(),
                ),
            ),
            (
                &format!("rr/adopt/{UID}/1"),
                Outcome::Succeeded("[]".into()),
            ),
        ],
        NOW,
    ));
    assert!(repairs(&p).is_empty(), "not yet due: {:?}", p.operations);
    let c = cond(&p, "Complete");
    assert_eq!(c["reason"], REASON_KEYSPACE);
    assert!(
        c["message"].as_str().unwrap().starts_with("spec.keyspace"),
        "{c}"
    );
    // Due (the failure is 10 s old): attempt 1, after a list that found no run of ours.
    let mut s = snap(
        object(spec(), None),
        "Running",
        vec![
            (
                &format!("rr/repair/{UID}/0"),
                Outcome::Failed("keyspace ks1 does not exist".into()),
            ),
            (
                &format!("rr/adopt/{UID}/1"),
                Outcome::Succeeded("[]".into()),
            ),
        ],
        NOW,
    );
    s.now_ms = NOW + 10_000;
    let p = run(s);
    let r = repairs(&p);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].0, format!("rr/repair/{UID}/1"));
}

#[test]
fn an_unreachable_reaper_is_a_condition() {
    let p = run(snap(
        object(spec(), None),
        "Running",
        vec![(
            &format!("rr/adopt/{UID}/0"),
            Outcome::Failed("connection refused".into()),
        )],
        NOW,
    ));
    assert_eq!(cond(&p, "Complete")["reason"], REASON_UNREACHABLE);
    assert!(repairs(&p).is_empty());
}

#[test]
fn bad_input_is_refused_naming_the_field() {
    let mut bad = spec();
    bad["intensity"] = json!(1.5);
    let p = run(snap(object(bad.clone(), None), "Running", vec![], NOW));
    let c = cond(&p, "Complete");
    assert_eq!(c["reason"], REASON_INVALID);
    assert!(
        c["message"].as_str().unwrap().starts_with("spec.intensity"),
        "{c}"
    );
    assert!(p.operations.is_empty());
    let v = RepairRunPolicy::validate(object(bad, None).to_string(), None);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].field, "spec.intensity");
    let mut bad = spec();
    bad["timeoutMinutes"] = json!(0);
    let v = RepairRunPolicy::validate(object(bad, None).to_string(), None);
    assert_eq!(v[0].field, "spec.timeoutMinutes");
}

#[test]
fn the_spec_cannot_change_once_started() {
    let old = object(spec(), Some(json!({"runId": "r-1"})));
    let mut changed = spec();
    changed["keyspace"] = json!("ks2");
    let v = RepairRunPolicy::validate(
        object(changed.clone(), None).to_string(),
        Some(old.to_string()),
    );
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].field, "spec.keyspace");
    assert!(v[0].message.contains("r-1"));
    // Same spec (a label, a status): admitted; before the start: admitted.
    assert!(
        RepairRunPolicy::validate(object(spec(), None).to_string(), Some(old.to_string()))
            .is_empty()
    );
    let before = object(spec(), None);
    assert!(
        RepairRunPolicy::validate(object(changed, None).to_string(), Some(before.to_string()))
            .is_empty()
    );
}

#[test]
fn a_deleted_repair_run_plans_nothing() {
    let mut o = object(spec(), Some(json!({"runId": "r-1"})));
    o["metadata"]["deletionTimestamp"] = json!("2026-12-07T21:00:00Z");
    let p = run(snap(o, "Running", vec![], NOW));
    assert!(p.operations.is_empty() && p.status.is_none() && p.finalizers.is_none());
}
