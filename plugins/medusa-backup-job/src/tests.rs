use k8ssandra_policy_sdk::{
    Object, OperationKind, OperationResult, Outcome, Plan, Policy, Snapshot,
};
use serde_json::{Value, json};

use crate::MedusaBackupJobPolicy;
use crate::decide::{backup_id, reconcile};

const NOW: u64 = 1_700_000_000_000;

fn job(status: Value) -> Object {
    Object {
        cluster: String::new(),
        json: json!({
            "apiVersion": "medusa.k8ssandra.io/v1alpha1", "kind": "MedusaBackupJob",
            "metadata": {"name": "b1", "namespace": "ns", "labels": {"team": "a"}},
            "spec": {"cassandraDatacenter": "dc1", "backupType": "full"},
            "status": status,
        })
        .to_string(),
    }
}

fn dc() -> Object {
    Object {
        cluster: String::new(),
        json: json!({
            "apiVersion": "cassandra.datastax.com/v1beta1", "kind": "CassandraDatacenter",
            "metadata": {"name": "dc1", "namespace": "ns"},
            "spec": {"clusterName": "c", "serverType": "cassandra", "serverVersion": "4.1.5", "size": 3,
                "storageConfig": {}},
        })
        .to_string(),
    }
}

fn pod(name: &str, medusa: bool, ready: bool) -> Object {
    let mut containers = vec![json!({"name": "cassandra"})];
    if medusa {
        containers.push(json!({"name": "medusa"}));
    }
    Object {
        cluster: String::new(),
        json: json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "ns",
                "labels": {"cassandra.datastax.com/datacenter": "dc1"}},
            "spec": {"containers": containers},
            "status": {"podIP": "10.0.0.1",
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        })
        .to_string(),
    }
}

fn snapshot(parent: Object, pods: Vec<Object>, results: Vec<(&str, Outcome)>) -> Snapshot {
    let mut s = Snapshot::for_parent(parent);
    s.now_ms = NOW;
    s.related.push(dc());
    s.related.extend(pods);
    s.results = results
        .into_iter()
        .enumerate()
        .map(|(i, (id, outcome))| OperationResult {
            id: id.to_string(),
            outcome,
            at_ms: NOW - 1000 + i as u64,
        })
        .collect();
    s
}

fn three_ready() -> Vec<Object> {
    vec![
        pod("p0", true, true),
        pod("p1", true, true),
        pod("p2", true, true),
    ]
}

fn status(plan: &Plan) -> Value {
    serde_json::from_str(plan.status.as_deref().expect("a status")).unwrap()
}

fn condition(plan: &Plan, t: &str) -> Value {
    status(plan)["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == t).cloned())
        .unwrap_or(Value::Null)
}

fn started() -> Value {
    json!({"startTime": "2023-11-14T22:13:19Z", "inProgress": ["p0", "p1", "p2"],
        "finished": [], "failed": []})
}

#[test]
fn a_ready_datacenter_with_medusa_is_backed_up_once_per_pod() {
    let plan = reconcile(&snapshot(job(Value::Null), three_ready(), vec![])).unwrap();
    let ids: Vec<&str> = plan.operations.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            backup_id("b1", "p0"),
            backup_id("b1", "p1"),
            backup_id("b1", "p2")
        ]
    );
    assert!(plan.operations.iter().all(|o| matches!(
        &o.kind,
        OperationKind::MedusaBackup(b) if b.name == "b1"
            && b.mode == k8ssandra_policy_sdk::MedusaBackupMode::Full
    )));
    let st = status(&plan);
    assert_eq!(st["inProgress"], json!(["p0", "p1", "p2"]));
    assert!(st["startTime"].is_string());
    assert_eq!(plan.events[0].reason, "BackupStarted");
}

#[test]
fn pods_without_medusa_or_not_ready_hold_the_start_and_say_which() {
    let pods = vec![
        pod("p0", true, true),
        pod("p1", false, true),
        pod("p2", true, false),
    ];
    let plan = reconcile(&snapshot(job(Value::Null), pods, vec![])).unwrap();
    assert!(plan.operations.is_empty());
    let c = condition(&plan, "Progressing");
    assert_eq!(c["reason"], "BackupSidecarNotFound");
    assert!(c["message"].as_str().unwrap().contains("p1"), "{c}");
    assert!(status(&plan)["startTime"].is_null());

    let pods = vec![pod("p0", true, true), pod("p1", true, false)];
    let plan = reconcile(&snapshot(job(Value::Null), pods, vec![])).unwrap();
    let c = condition(&plan, "Progressing");
    assert_eq!(c["reason"], "PodsNotReady");
    assert!(c["message"].as_str().unwrap().contains("p1"), "{c}");
}

#[test]
fn a_missing_datacenter_is_named() {
    let mut s = snapshot(job(Value::Null), vec![], vec![]);
    s.related.clear();
    let plan = reconcile(&s).unwrap();
    let c = condition(&plan, "Progressing");
    assert_eq!(c["reason"], "DatacenterNotFound");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("spec.cassandraDatacenter"),
        "{c}"
    );
}

#[test]
fn progress_follows_each_pods_outcome() {
    let results = vec![
        (
            "medusa-backup/b1/p0",
            Outcome::Succeeded("{\"status\":\"SUCCESS\"}".into()),
        ),
        ("medusa-backup/b1/p1", Outcome::Running("b1".into())),
        (
            "medusa-backup/b1/p2",
            Outcome::Succeeded("{\"status\":\"SUCCESS\"}".into()),
        ),
    ];
    let plan = reconcile(&snapshot(job(started()), three_ready(), results)).unwrap();
    let st = status(&plan);
    assert_eq!(st["inProgress"], json!(["p1"]));
    assert_eq!(st["finished"], json!(["p0", "p2"]));
    assert!(plan.operations.is_empty(), "nothing is asked twice");
    assert!(st["finishTime"].is_null());
}

#[test]
fn a_failed_pod_fails_the_job_by_name_and_records_no_backup() {
    let results = vec![
        ("medusa-backup/b1/p0", Outcome::Succeeded("{}".into())),
        (
            "medusa-backup/b1/p1",
            Outcome::Failed("Medusa reports backup b1 on p1 as FAILED".into()),
        ),
        ("medusa-backup/b1/p2", Outcome::Succeeded("{}".into())),
    ];
    let plan = reconcile(&snapshot(job(started()), three_ready(), results)).unwrap();
    assert!(plan.apply.is_empty());
    let failed = condition(&plan, "Failed");
    assert_eq!(failed["status"], "True");
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("p1: Medusa reports"),
        "{failed}"
    );
    assert_eq!(condition(&plan, "Complete")["status"], "False");
    assert_eq!(status(&plan)["failed"], json!(["p1"]));
    assert!(status(&plan)["finishTime"].is_string());
    assert_eq!(plan.events[0].reason, "BackupFailed");
}

#[test]
fn a_complete_backup_is_recorded_from_the_storages_summary() {
    let done = || Outcome::Succeeded("{\"status\":\"SUCCESS\"}".into());
    let mut results = vec![
        ("medusa-backup/b1/p0", done()),
        ("medusa-backup/b1/p1", done()),
        ("medusa-backup/b1/p2", done()),
    ];
    let plan = reconcile(&snapshot(job(started()), three_ready(), results.clone())).unwrap();
    assert!(matches!(
        plan.operations[0].kind,
        OperationKind::MedusaGetBackups
    ));
    assert_eq!(plan.operations[0].id, "medusa-get-backups/b1/0");
    assert!(plan.apply.is_empty());

    let summary = json!([{"backupName": "other", "totalNodes": 1, "finishedNodes": 1,
            "nodes": [], "status": "SUCCESS", "totalSize": 1, "totalObjects": 1},
        {"backupName": "b1", "startTime": 1, "finishTime": 2, "totalNodes": 3, "finishedNodes": 3,
            "nodes": [{"host": "10.0.0.1", "tokens": [1, 2], "datacenter": "dc1", "rack": "r1"}],
            "status": "SUCCESS", "backupType": "full", "totalSize": 1_350_000_000i64, "totalObjects": 30}]);
    results.push((
        "medusa-get-backups/b1/0",
        Outcome::Succeeded(summary.to_string()),
    ));
    let s = snapshot(job(started()), three_ready(), results);
    let plan = reconcile(&s).unwrap();
    let backup: Value = serde_json::from_str(&plan.apply[0].json).unwrap();
    assert_eq!(backup["kind"], "MedusaBackup");
    assert_eq!(backup["metadata"]["name"], "b1");
    assert_eq!(backup["metadata"]["labels"]["team"], "a");
    assert_eq!(backup["spec"]["cassandraDatacenter"], "dc1");
    assert_eq!(backup["spec"]["backupType"], "full");
    assert_eq!(backup["status"]["totalNodes"], 3);
    assert_eq!(backup["status"]["finishedNodes"], 3);
    assert_eq!(backup["status"]["totalFiles"], 30);
    assert_eq!(backup["status"]["totalSize"], "1.4 GB");
    assert_eq!(backup["status"]["status"], "SUCCESS");
    assert_eq!(backup["status"]["nodes"][0]["rack"], "r1");
    assert_eq!(backup["status"]["startTime"], "2023-11-14T22:13:19Z");
    assert_eq!(condition(&plan, "Complete")["status"], "True");
    assert!(status(&plan)["finishTime"].is_string());

    // Once finished nothing is asked again; the record is only re-listed as it is.
    let mut st = status(&plan);
    st["finishTime"] = json!("2023-11-14T22:20:00Z");
    let mut s = snapshot(job(st), three_ready(), vec![]);
    s.children.push(plan.apply[0].clone());
    let after = reconcile(&s).unwrap();
    assert!(after.operations.is_empty());
    assert!(after.status.is_none());
    let kept: Value = serde_json::from_str(&after.apply[0].json).unwrap();
    assert!(kept.get("status").is_none());
}

#[test]
fn after_an_operator_restart_started_pods_are_polled_not_started_again() {
    let plan = reconcile(&snapshot(job(started()), three_ready(), vec![])).unwrap();
    assert_eq!(plan.operations.len(), 3);
    assert!(plan.operations.iter().all(|o| matches!(
        &o.kind,
        OperationKind::MedusaBackupStatus(name) if name == "b1"
    )));
    let poll = plan.operations[0].id.clone();
    let results = vec![(
        poll.as_str(),
        Outcome::Succeeded(
            "{\"status\":\"SUCCESS\",\"startTime\":\"\",\"finishTime\":\"\"}".into(),
        ),
    )];
    let plan = reconcile(&snapshot(job(started()), three_ready(), results)).unwrap();
    let st = status(&plan);
    assert_eq!(st["finished"], json!(["p0"]));
    assert_eq!(st["inProgress"], json!(["p1", "p2"]));

    // A node that forgot the backup fails it.
    let results = vec![(
        poll.as_str(),
        Outcome::Failed("not found: backup b1".into()),
    )];
    let plan = reconcile(&snapshot(job(started()), three_ready(), results)).unwrap();
    assert_eq!(status(&plan)["inProgress"], json!(["p1", "p2"]));
    assert_eq!(status(&plan)["failed"], json!(["p0"]));
}

#[test]
fn a_started_job_cannot_change_what_it_backs_up() {
    let old = job(started()).json;
    let new = old.replace("\"full\"", "\"differential\"");
    let v = MedusaBackupJobPolicy::validate(new.clone(), Some(old));
    assert_eq!(v[0].field, "spec");
    let unstarted = job(Value::Null).json;
    assert!(MedusaBackupJobPolicy::validate(new, Some(unstarted)).is_empty());
}

#[test]
fn the_datacenter_is_named_by_its_object_name() {
    let bad = job(Value::Null).json.replace("\"dc1\"", "\"DC One\"");
    let v = MedusaBackupJobPolicy::validate(bad, None);
    assert_eq!(v[0].field, "spec.cassandraDatacenter");
    assert!(v[0].message.contains("object's name"), "{}", v[0].message);
    assert!(MedusaBackupJobPolicy::validate(job(Value::Null).json, None).is_empty());
}
