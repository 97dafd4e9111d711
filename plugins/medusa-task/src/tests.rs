use k8ssandra_policy_sdk::{
    Object, OperationKind, OperationResult, Outcome, Plan, Policy, Snapshot,
};
use serde_json::{Value, json};

use crate::MedusaTaskPolicy;
use crate::decide::reconcile;

const NOW: u64 = 1_700_000_000_000;

fn task(op: &str, status: Value) -> Object {
    Object {
        cluster: String::new(),
        json: json!({
            "apiVersion": "medusa.k8ssandra.io/v1alpha1", "kind": "MedusaTask",
            "metadata": {"name": "t1", "namespace": "ns"},
            "spec": {"cassandraDatacenter": "dc1", "operation": op,
                "backupName": "b1", "restoreKey": "k1"},
            "status": status,
        })
        .to_string(),
    }
}

fn object(v: Value) -> Object {
    Object {
        cluster: String::new(),
        json: v.to_string(),
    }
}

fn dc() -> Object {
    object(json!({
        "apiVersion": "cassandra.datastax.com/v1beta1", "kind": "CassandraDatacenter",
        "metadata": {"name": "dc1", "namespace": "ns"},
        "spec": {"clusterName": "c", "serverType": "cassandra", "serverVersion": "4.1.5",
            "size": 2, "storageConfig": {}, "datacenterName": "DC-One"},
    }))
}

fn pod(name: &str) -> Object {
    object(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "ns",
            "labels": {"cassandra.datastax.com/datacenter": "dc1"}},
        "spec": {"containers": [{"name": "cassandra"}, {"name": "medusa"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }))
}

fn record(name: &str, dc: &str) -> Object {
    object(json!({
        "apiVersion": "medusa.k8ssandra.io/v1alpha1", "kind": "MedusaBackup",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"cassandraDatacenter": dc},
    }))
}

fn snapshot(parent: Object, extra: Vec<Object>, results: Vec<(&str, Outcome)>) -> Snapshot {
    let mut s = Snapshot::for_parent(parent);
    s.now_ms = NOW;
    s.related = vec![dc(), pod("p0"), pod("p1")];
    s.related.extend(extra);
    s.results = results
        .into_iter()
        .enumerate()
        .map(|(i, (id, outcome))| OperationResult {
            id: id.into(),
            outcome,
            at_ms: NOW - 100 + i as u64,
        })
        .collect();
    s
}

fn status(plan: &Plan) -> Value {
    serde_json::from_str(plan.status.as_deref().expect("status")).unwrap()
}

fn cond(plan: &Plan, t: &str) -> Value {
    status(plan)["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == t).cloned())
        .unwrap_or(Value::Null)
}

fn summary(name: &str, dc: &str, st: &str) -> Value {
    json!({"backupName": name, "totalNodes": 1, "finishedNodes": 1, "status": st,
        "nodes": [{"host": "h", "tokens": [1], "datacenter": dc, "rack": "r1"}],
        "totalSize": 100, "totalObjects": 2, "backupType": "full", "startTime": 1_700_000_000})
}

#[test]
fn prepare_restore_asks_every_pod_with_the_datacenters_cassandra_name() {
    let plan = reconcile(&snapshot(
        task("prepare_restore", Value::Null),
        vec![],
        vec![],
    ))
    .unwrap();
    assert_eq!(plan.operations.len(), 2);
    assert!(plan.operations.iter().all(|o| matches!(&o.kind,
        OperationKind::MedusaPrepareRestore(r)
            if r.datacenter == "DC-One" && r.backup_name == "b1" && r.restore_key == "k1")));
    assert_eq!(status(&plan)["inProgress"], json!(["p0", "p1"]));

    let started = status(&plan);
    let results = vec![
        (
            "medusa-prepare-restore/t1/p0",
            Outcome::Succeeded(String::new()),
        ),
        (
            "medusa-prepare-restore/t1/p1",
            Outcome::Failed("not found: backup b1".into()),
        ),
    ];
    let plan = reconcile(&snapshot(task("prepare_restore", started), vec![], results)).unwrap();
    let failed = cond(&plan, "Failed");
    assert_eq!(failed["status"], "True");
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("p1: not found"),
        "{failed}"
    );
    assert_eq!(status(&plan)["failed"], json!(["p1"]));
    assert!(status(&plan)["finishTime"].is_string());
}

#[test]
fn a_purge_records_per_pod_figures_then_syncs() {
    let plan = reconcile(&snapshot(task("purge", Value::Null), vec![], vec![])).unwrap();
    assert!(
        plan.operations
            .iter()
            .all(|o| matches!(o.kind, OperationKind::MedusaPurgeBackups))
    );
    let started = status(&plan);
    let purged =
        r#"{"backupsPurged":2,"objectsPurged":9,"totalPurgedSize":300,"objectsWithinGcGrace":1}"#;
    let mut results = vec![
        ("medusa-purge/t1/p0", Outcome::Succeeded(purged.into())),
        ("medusa-purge/t1/p1", Outcome::Succeeded(purged.into())),
    ];
    let plan = reconcile(&snapshot(
        task("purge", started.clone()),
        vec![],
        results.clone(),
    ))
    .unwrap();
    assert!(matches!(
        plan.operations[0].kind,
        OperationKind::MedusaGetBackups
    ));
    assert_eq!(status(&plan)["finished"][0]["nbBackupsPurged"], 2);
    assert!(status(&plan)["finishTime"].is_null());

    let list = json!([summary("b-new", "DC-One", "SUCCESS")]).to_string();
    results.push(("medusa-get-backups/t1/0", Outcome::Succeeded(list)));
    let plan = reconcile(&snapshot(
        task("purge", started),
        vec![record("b-old", "dc1")],
        results,
    ))
    .unwrap();
    assert_eq!(plan.delete.len(), 1);
    assert_eq!(plan.delete[0].name, "b-old");
    assert_eq!(cond(&plan, "Complete")["status"], "True");
}

#[test]
fn sync_creates_missing_records_of_the_datacenter_only_and_removes_stale_ones() {
    let plan = reconcile(&snapshot(task("sync", Value::Null), vec![], vec![])).unwrap();
    assert_eq!(plan.operations[0].id, "medusa-get-backups/t1/0");
    let started = status(&plan);
    let list = json!([
        summary("b1", "DC-One", "SUCCESS"),
        summary("running", "DC-One", "IN_PROGRESS"),
        summary("other-dc", "dc2", "SUCCESS"),
        summary("kept", "DC-One", "SUCCESS"),
    ])
    .to_string();
    let extra = vec![
        record("kept", "dc1"),
        record("gone", "dc1"),
        record("not-ours", "dc9"),
    ];
    let results = vec![("medusa-get-backups/t1/0", Outcome::Succeeded(list))];
    let plan = reconcile(&snapshot(task("sync", started), extra, results)).unwrap();
    let made: Vec<String> = plan
        .apply
        .iter()
        .map(|o| {
            serde_json::from_str::<Value>(&o.json).unwrap()["metadata"]["name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(made, ["b1"]);
    let b1: Value = serde_json::from_str(&plan.apply[0].json).unwrap();
    assert_eq!(b1["spec"]["cassandraDatacenter"], "dc1");
    assert_eq!(b1["status"]["totalSize"], "100 B");
    let deleted: Vec<&str> = plan.delete.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(deleted, ["gone"]);
    assert_eq!(status(&plan)["finished"][0]["podName"], "p0");
}

#[test]
fn a_failed_listing_moves_to_the_next_pod_then_fails_the_task() {
    let started = json!({"startTime": "2023-11-14T22:13:19Z", "inProgress": [], "finished": [], "failed": []});
    let results = vec![(
        "medusa-get-backups/t1/0",
        Outcome::Failed("Medusa unavailable".into()),
    )];
    let plan = reconcile(&snapshot(
        task("sync", started.clone()),
        vec![],
        results.clone(),
    ))
    .unwrap();
    assert_eq!(plan.operations[0].id, "medusa-get-backups/t1/1");
    assert_eq!(plan.operations[0].target.pod, "p1");
    let mut results = results;
    results.push((
        "medusa-get-backups/t1/1",
        Outcome::Failed("Medusa unavailable".into()),
    ));
    let plan = reconcile(&snapshot(task("sync", started), vec![], results)).unwrap();
    assert!(
        plan.delete.is_empty(),
        "nothing deleted on a failed listing"
    );
    assert_eq!(cond(&plan, "Failed")["status"], "True");
}

#[test]
fn after_a_restart_unanswered_pods_are_asked_again() {
    let started = json!({"startTime": "2023-11-14T22:13:19Z", "inProgress": ["p0", "p1"],
        "finished": [], "failed": []});
    let plan = reconcile(&snapshot(task("purge", started), vec![], vec![])).unwrap();
    let ids: Vec<&str> = plan.operations.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids, ["medusa-purge/t1/p0", "medusa-purge/t1/p1"]);
}

#[test]
fn prepare_restore_needs_a_backup_and_a_key() {
    let t = task("prepare_restore", Value::Null)
        .json
        .replace("\"backupName\":\"b1\",", "");
    let v = MedusaTaskPolicy::validate(t, None);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].field, "spec.backupName");
}
