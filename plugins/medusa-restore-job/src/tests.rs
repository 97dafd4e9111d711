use k8ssandra_policy_sdk::{
    Object, OperationKind, OperationResult, Outcome, Plan, Policy, Snapshot,
};
use serde_json::{Value, json};

use crate::MedusaRestoreJobPolicy;
use crate::decide::reconcile;

const NOW: u64 = 1_700_000_000_000;

fn obj(v: Value) -> Object {
    Object {
        cluster: String::new(),
        json: v.to_string(),
    }
}

fn job(spec_extra: Value, status: Value) -> Object {
    let mut spec = json!({"backup": "b1", "cassandraDatacenter": "dc1"});
    if let Some(extra) = spec_extra.as_object() {
        for (k, v) in extra {
            spec[k] = v.clone();
        }
    }
    obj(json!({
        "apiVersion": "medusa.k8ssandra.io/v1alpha1", "kind": "MedusaRestoreJob",
        "metadata": {"name": "r1", "namespace": "ns", "uid": "uid-1"},
        "spec": spec,
        "status": status,
    }))
}

/// Datacenter dc1 of cluster c: 4 nodes in racks r1, r2, with these conditions.
fn dc(size: i32, racks: &[&str], conditions: &[(&str, &str)]) -> Object {
    let racks: Vec<Value> = racks.iter().map(|r| json!({"name": r})).collect();
    let conds: Vec<Value> = conditions
        .iter()
        .map(|(t, s)| {
            json!({"type": t, "status": s, "reason": "", "message": "",
            "lastTransitionTime": "2023-01-01T00:00:00Z"})
        })
        .collect();
    obj(json!({
        "apiVersion": "cassandra.datastax.com/v1beta1", "kind": "CassandraDatacenter",
        "metadata": {"name": "dc1", "namespace": "ns"},
        "spec": {"clusterName": "c", "serverType": "cassandra", "serverVersion": "4.1.5",
            "size": size, "racks": racks, "storageConfig": {},
            "users": [{"secretName": "c-medusa", "superuser": true}]},
        "status": {"conditions": conds},
    }))
}

/// MedusaBackup b1 with (host, rack, datacenter) nodes.
fn backup(nodes: &[(&str, &str, &str)], status: &str) -> Object {
    let list: Vec<Value> = nodes
        .iter()
        .map(|(h, r, d)| json!({"host": h, "rack": r, "datacenter": d, "tokens": [1]}))
        .collect();
    obj(json!({
        "apiVersion": "medusa.k8ssandra.io/v1alpha1", "kind": "MedusaBackup",
        "metadata": {"name": "b1", "namespace": "ns"},
        "spec": {"cassandraDatacenter": "dc1"},
        "status": {"totalNodes": nodes.len(), "finishedNodes": nodes.len(), "nodes": list,
            "status": status},
    }))
}

fn four_nodes() -> Object {
    backup(
        &[
            ("10.0.0.9", "r2", "dc1"),
            ("10.0.0.2", "r1", "dc1"),
            ("10.0.0.7", "r2", "dc1"),
            ("10.0.0.5", "r1", "dc1"),
        ],
        "SUCCESS",
    )
}

fn pod(name: &str, ready: bool) -> Object {
    obj(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "ns",
            "labels": {"cassandra.datastax.com/datacenter": "dc1"}},
        "spec": {"containers": [{"name": "cassandra"}, {"name": "medusa"}],
            "initContainers": [{"name": "medusa-restore",
                "envFrom": [{"configMapRef": {"name": "dc1-medusa-restore", "optional": true}}]}]},
        "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
    }))
}

fn run(parent: Object, related: Vec<Object>, results: Vec<(String, Outcome)>) -> Plan {
    let mut s = Snapshot::for_parent(parent);
    s.now_ms = NOW;
    s.related = related;
    s.results = results
        .into_iter()
        .map(|(id, outcome)| OperationResult {
            id,
            outcome,
            at_ms: NOW - 1000,
        })
        .collect();
    reconcile(&s).expect("reconcile")
}

fn status(plan: &Plan) -> Value {
    serde_json::from_str(plan.status.as_deref().expect("a status")).unwrap()
}

fn cond<'a>(status: &'a Value, t: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == t)
        .unwrap()
}

fn config_map(plan: &Plan) -> Option<Value> {
    plan.apply
        .iter()
        .map(|o| serde_json::from_str::<Value>(&o.json).unwrap())
        .find(|v| v["kind"] == "ConfigMap")
}

fn with_pods(mut related: Vec<Object>) -> Vec<Object> {
    related.extend(PODS.iter().map(|p| pod(p, true)));
    related
}

#[test]
fn pods_that_cannot_restore_stop_nothing() {
    let bare = obj(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": PODS[0], "namespace": "ns",
            "labels": {"cassandra.datastax.com/datacenter": "dc1"}},
        "spec": {"containers": [{"name": "cassandra"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }));
    let plan = run(
        job(json!({}), json!(null)),
        vec![
            dc(4, &["r1", "r2"], &[("Ready", "True")]),
            four_nodes(),
            bare,
        ],
        vec![],
    );
    let st = status(&plan);
    assert_eq!(st["phase"], "Failed");
    assert_eq!(cond(&st, "Failed")["reason"], "RestoreContainerNotFound");
    assert!(st["message"].as_str().unwrap().contains(PODS[0]), "{st}");
    assert!(config_map(&plan).is_none());
}

#[test]
fn a_fitting_backup_is_mapped_by_rack_and_host_then_prepared_on_every_node_then_stopped() {
    let related = || {
        with_pods(vec![
            dc(4, &["r1", "r2"], &[("Ready", "True")]),
            four_nodes(),
        ])
    };
    let plan = run(job(json!({}), json!(null)), related(), vec![]);
    let st = status(&plan);
    assert_eq!(st["phase"], "Preparing");
    assert_eq!(st["restoreKey"], "uid-1");
    assert_eq!(st["restorePrepared"], false);
    assert!(st["startTime"].is_string());
    let map = &st["restoreMapping"]["host_map"];
    // Racks sorted, hosts sorted within a rack, i-th host onto <sts>-<i>.
    assert_eq!(map["c-dc1-r1-sts-0"]["source"], json!(["10.0.0.2"]));
    assert_eq!(map["c-dc1-r1-sts-1"]["source"], json!(["10.0.0.5"]));
    assert_eq!(map["c-dc1-r2-sts-0"]["source"], json!(["10.0.0.7"]));
    assert_eq!(map["c-dc1-r2-sts-1"]["source"], json!(["10.0.0.9"]));
    assert_eq!(st["restoreMapping"]["in_place"], false);
    assert!(
        config_map(&plan).is_none(),
        "nothing for the pods before they are prepared"
    );
    assert_eq!(cond(&st, "Progressing")["status"], "True");

    // Preparing: PrepareRestore on every pod, under the restore key, nothing stopped yet.
    let plan = run(job(json!({}), st.clone()), related(), vec![]);
    let ids: Vec<&str> = plan.operations.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(
        ids,
        PODS.iter()
            .map(|p| format!("prepare-restore/uid-1/{p}"))
            .collect::<Vec<_>>()
    );
    for op in &plan.operations {
        match &op.kind {
            OperationKind::MedusaPrepareRestore(r) => {
                assert_eq!(
                    (r.backup_name.as_str(), r.restore_key.as_str()),
                    ("b1", "uid-1")
                );
                assert_eq!(r.datacenter, "dc1");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(status(&plan)["phase"], "Preparing");

    // One node fails to prepare: the job fails, nothing is stopped.
    let mut results: Vec<(String, Outcome)> = PODS
        .iter()
        .map(|p| {
            (
                format!("prepare-restore/uid-1/{p}"),
                Outcome::Succeeded(String::new()),
            )
        })
        .collect();
    results[2].1 = Outcome::Failed("storage unreachable".into());
    let plan = run(job(json!({}), st.clone()), related(), results.clone());
    let failed = status(&plan);
    assert_eq!(failed["phase"], "Failed");
    assert_eq!(cond(&failed, "Failed")["reason"], "PrepareRestoreFailed");
    assert!(
        failed["message"].as_str().unwrap().contains(PODS[2]),
        "{failed}"
    );
    assert!(config_map(&plan).is_none());

    // Every node prepared: Stopping, with the restore ConfigMap.
    results[2].1 = Outcome::Succeeded(String::new());
    let plan = run(job(json!({}), st.clone()), related(), results);
    let st = status(&plan);
    assert_eq!(st["phase"], "Stopping");
    assert_eq!(st["restorePrepared"], true);
    let cm = config_map(&plan).expect("the restore ConfigMap");
    assert_eq!(cm["metadata"]["name"], "dc1-medusa-restore");
    assert_eq!(cm["data"]["BACKUP_NAME"], "b1");
    assert_eq!(cm["data"]["RESTORE_KEY"], "uid-1");
    let mapping: Value =
        serde_json::from_str(cm["data"]["RESTORE_MAPPING"].as_str().unwrap()).unwrap();
    assert_eq!(mapping, st["restoreMapping"]);
    // A whole restore leaves Medusa's own path and names nothing.
    for key in [
        "PYTHONPATH",
        "MEDUSA_RESTORE_KEYSPACES",
        "MEDUSA_RESTORE_TABLES",
    ] {
        assert!(cm["data"].get(key).is_none(), "{key}");
    }
}

/// A pod whose `medusa-restore` init container mounts the `<kc>-medusa` ConfigMap at
/// /etc/medusa, as the k8ssandra-cluster policy renders it.
/// The address each of [`PODS`] had when [`four_nodes`] was backed up.
const POD_IPS: [&str; 4] = ["10.0.0.2", "10.0.0.5", "10.0.0.7", "10.0.0.9"];

fn pod_with_module(name: &str) -> Object {
    let mut v: Value = serde_json::from_str(&pod(name, true).json).unwrap();
    v["spec"]["initContainers"][0]["volumeMounts"] =
        json!([{"name": "c-medusa", "mountPath": "/etc/medusa"}]);
    v["spec"]["volumes"] = json!([{"name": "c-medusa", "configMap": {"name": "c-medusa"}}]);
    obj(v)
}

fn selective_related(module: bool) -> Vec<Object> {
    let mut related = vec![dc(4, &["r1", "r2"], &[("Ready", "True")]), four_nodes()];
    related.extend(PODS.iter().zip(POD_IPS).map(|(p, ip)| {
        let pod = if module {
            pod_with_module(p)
        } else {
            pod(p, true)
        };
        let mut v: Value = serde_json::from_str(&pod.json).unwrap();
        v["status"]["podIP"] = json!(ip);
        obj(v)
    }));
    related
}

#[test]
fn a_selective_restore_needs_the_module_on_every_pod_and_stops_nothing_without_it() {
    for spec in [
        json!({"keyspaces": ["shop"]}),
        json!({"tables": ["shop.orders"]}),
    ] {
        let plan = run(
            job(spec.clone(), json!(null)),
            selective_related(false),
            vec![],
        );
        let st = status(&plan);
        assert_eq!(st["phase"], "Failed", "{spec}");
        assert_eq!(cond(&st, "Failed")["reason"], "SelectiveRestoreUnavailable");
        let field = spec.as_object().unwrap().keys().next().unwrap().clone();
        let message = st["message"].as_str().unwrap();
        assert!(message.starts_with(&format!("spec.{field}:")), "{st}");
        assert!(
            message.contains(PODS[0]) && message.contains("/etc/medusa"),
            "{st}"
        );
        assert!(config_map(&plan).is_none() && plan.operations.is_empty());
        assert!(st.get("datacenterStopped").is_none());
    }
}

#[test]
fn a_selective_restore_checks_its_keyspaces_against_the_schema_then_names_them_to_the_pods() {
    let spec = json!({"keyspaces": ["shop", "shop"], "tables": ["logs.events"]});
    // First the live keyspaces, from a ready node; nothing else yet.
    let plan = run(
        job(spec.clone(), json!(null)),
        selective_related(true),
        vec![],
    );
    let st = status(&plan);
    assert_eq!(st["phase"], "Validating");
    assert_eq!(plan.operations.len(), 1);
    assert_eq!(plan.operations[0].kind, OperationKind::ListKeyspaces);
    let id = plan.operations[0].id.clone();
    assert!(config_map(&plan).is_none());

    // Running: waits without asking again.
    let plan = run(
        job(spec.clone(), st.clone()),
        selective_related(true),
        vec![(id.clone(), Outcome::Running(String::new()))],
    );
    assert!(plan.operations.is_empty());
    assert_eq!(status(&plan)["phase"], "Validating");

    // A keyspace the schema lacks (of a keyspace and of a table): Failed, naming both.
    let plan = run(
        job(spec.clone(), st.clone()),
        selective_related(true),
        vec![(
            id.clone(),
            Outcome::Succeeded(r#"["system","system_auth"]"#.into()),
        )],
    );
    let failed = status(&plan);
    assert_eq!(failed["phase"], "Failed");
    assert_eq!(cond(&failed, "Failed")["reason"], "KeyspaceNotFound");
    let message = failed["message"].as_str().unwrap();
    assert!(
        message.starts_with("spec.keyspaces[0]: keyspace shop; spec.tables[0]: keyspace logs"),
        "{message}"
    );
    assert!(config_map(&plan).is_none() && plan.operations.is_empty());

    // Present: on to Preparing.
    let listed = || {
        vec![(
            id.clone(),
            Outcome::Succeeded(r#"["system","shop","logs"]"#.into()),
        )]
    };
    let plan = run(
        job(spec.clone(), st.clone()),
        selective_related(true),
        listed(),
    );
    let st = status(&plan);
    assert_eq!(st["phase"], "Preparing");

    // Once stopping, the ConfigMap names them and puts the module on the path.
    let mut stopping = st.clone();
    stopping["phase"] = json!("Stopping");
    let plan = run(
        job(spec.clone(), stopping),
        vec![dc(4, &["r1", "r2"], &[("Stopped", "False")]), four_nodes()],
        vec![],
    );
    let cm = config_map(&plan).expect("the restore ConfigMap");
    assert_eq!(cm["data"]["MEDUSA_RESTORE_KEYSPACES"], "shop");
    assert_eq!(cm["data"]["MEDUSA_RESTORE_TABLES"], "logs.events");
    assert_eq!(cm["data"]["PYTHONPATH"], "/etc/medusa:/home/cassandra");
    assert_eq!(cm["data"]["BACKUP_NAME"], "b1");

    // Listing fails every time: Failed after a few attempts, nothing stopped.
    let failures: Vec<(String, Outcome)> = (0..5)
        .map(|i| {
            (
                id.replace("/0", &format!("/{i}")),
                Outcome::Failed("connection refused".into()),
            )
        })
        .collect();
    let plan = run(job(spec, json!(null)), selective_related(true), failures);
    let st = status(&plan);
    assert_eq!(st["phase"], "Failed");
    assert_eq!(cond(&st, "Failed")["reason"], "KeyspacesUnknown");
    assert!(plan.operations.is_empty());
}

#[test]
fn pods_not_ready_by_the_deadline_fail_the_restore_and_keep_the_parameters() {
    let spec = json!({"readyDeadlineSeconds": 600});
    let mut st = started("Starting");
    let related = || {
        vec![
            dc(4, &["r1", "r2"], &[("Ready", "False")]),
            four_nodes(),
            pod(PODS[0], true),
            pod(PODS[1], true),
            pod(PODS[2], false),
        ]
    };
    // Within the deadline: waiting.
    st["datacenterStopped"] = json!(k8ssandra_policy_sdk::conditions::time(NOW - 590_000));
    let plan = run(job(spec.clone(), st.clone()), related(), vec![]);
    assert_eq!(status(&plan)["phase"], "Starting");
    // Past it: Failed naming the pods not Ready; the ConfigMap stays, nothing else.
    st["datacenterStopped"] = json!(k8ssandra_policy_sdk::conditions::time(NOW - 601_000));
    let plan = run(job(spec.clone(), st.clone()), related(), vec![]);
    let failed = status(&plan);
    assert_eq!(failed["phase"], "Failed");
    assert_eq!(cond(&failed, "Failed")["reason"], "RestoreDeadlineExceeded");
    let message = failed["message"].as_str().unwrap();
    assert!(
        message.starts_with("spec.readyDeadlineSeconds:"),
        "{message}"
    );
    assert!(
        message.contains(&format!("pods not Ready: {}, {}", PODS[2], PODS[3])),
        "{message}"
    );
    assert_eq!(failed["failed"], json!([PODS[2], PODS[3]]));
    assert!(plan.operations.is_empty());
    assert!(config_map(&plan).is_some());
    // Later reconciles of the failed job keep listing the ConfigMap, and only that.
    let plan = run(job(spec.clone(), failed), related(), vec![]);
    assert!(config_map(&plan).is_some());
    assert!(plan.status.is_none() && plan.operations.is_empty() && plan.apply.len() == 1);
    // A pod whose restore init container fails is named while waiting.
    let mut crashing: Value = serde_json::from_str(&pod(PODS[2], false).json).unwrap();
    crashing["status"]["initContainerStatuses"] = json!([{"name": "medusa-restore",
        "ready": false, "restartCount": 3, "image": "m", "imageID": "",
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 1}}}]);
    let mut with_crash = related();
    with_crash[4] = obj(crashing);
    st["datacenterStopped"] = json!(k8ssandra_policy_sdk::conditions::time(NOW - 60_000));
    let plan = run(job(spec.clone(), st.clone()), with_crash, vec![]);
    let waiting = status(&plan);
    assert_eq!(waiting["phase"], "Starting");
    let message = cond(&waiting, "Progressing")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.ends_with(&format!(
            "the medusa-restore init container failed on {} (exit code 1, 3 restarts) (see its log)",
            PODS[2]
        )),
        "{message}"
    );
    // The default deadline is hours: an hour after the stop, still waiting.
    st["datacenterStopped"] = json!(k8ssandra_policy_sdk::conditions::time(NOW - 3_600_000));
    let plan = run(job(json!({}), st), related(), vec![]);
    assert_eq!(status(&plan)["phase"], "Starting");
}

#[test]
fn bad_input_fails_naming_the_field_and_stops_nothing() {
    let cases: Vec<(Vec<Object>, &str, &str)> = vec![
        (
            vec![dc(4, &["r1", "r2"], &[])],
            "BackupNotFound",
            "spec.backup: no MedusaBackup ns/b1",
        ),
        (
            vec![dc(6, &["r1", "r2"], &[]), four_nodes()],
            "SizeMismatch",
            "holds 4 nodes, CassandraDatacenter dc1 has spec.size 6",
        ),
        (
            vec![dc(4, &["r1", "r3"], &[]), four_nodes()],
            "RackMismatch",
            "rack names and sizes must match",
        ),
        (
            vec![
                dc(2, &["r1"], &[]),
                backup(&[("a", "r1", "dc1"), ("b", "r1", "dc2")], "SUCCESS"),
            ],
            "DatacenterMismatch",
            "status.nodes[1].datacenter is \"dc2\"",
        ),
        (
            vec![
                dc(2, &["r1"], &[]),
                backup(&[("a", "r1", "dc1"), ("b", "r1", "dc1")], "IN_PROGRESS"),
            ],
            "BackupNotFinished",
            "not SUCCESS",
        ),
    ];
    for (related, reason, text) in cases {
        let plan = run(job(json!({}), json!(null)), related, vec![]);
        let st = status(&plan);
        assert_eq!(st["phase"], "Failed", "{reason}");
        assert!(st["finishTime"].is_string());
        let failed = cond(&st, "Failed");
        assert_eq!(failed["status"], "True");
        assert_eq!(failed["reason"], reason);
        assert!(
            failed["message"].as_str().unwrap().contains(text),
            "{reason}: {}",
            failed["message"]
        );
        assert_eq!(st["message"], failed["message"]);
        assert!(config_map(&plan).is_none(), "{reason}: nothing to restore");
        assert!(plan.events.iter().any(|e| e.reason == reason));
    }
}

#[test]
fn a_single_default_rack_takes_every_host_in_order() {
    let plan = run(
        job(json!({}), json!(null)),
        vec![
            dc(4, &[], &[]),
            four_nodes(),
            pod("c-dc1-default-sts-0", true),
        ],
        vec![],
    );
    let st = status(&plan);
    let map = &st["restoreMapping"]["host_map"];
    assert_eq!(map["c-dc1-default-sts-0"]["source"], json!(["10.0.0.2"]));
    assert_eq!(map["c-dc1-default-sts-3"]["source"], json!(["10.0.0.9"]));
}

/// The status after validation, as the next reconciles see it.
fn started(phase: &str) -> Value {
    let plan = run(
        job(json!({}), json!(null)),
        with_pods(vec![
            dc(4, &["r1", "r2"], &[("Ready", "True")]),
            four_nodes(),
        ]),
        vec![],
    );
    let mut st = status(&plan);
    st["phase"] = json!(phase);
    st
}

const PODS: [&str; 4] = [
    "c-dc1-r1-sts-0",
    "c-dc1-r1-sts-1",
    "c-dc1-r2-sts-0",
    "c-dc1-r2-sts-1",
];

#[test]
fn the_restore_waits_for_the_stop_then_for_every_pod_then_recreates_roles() {
    // Stopping: pods still there → wait, the ConfigMap stays.
    let st = started("Stopping");
    let plan = run(
        job(json!({}), st.clone()),
        vec![
            dc(4, &["r1", "r2"], &[("Stopped", "True")]),
            four_nodes(),
            pod(PODS[0], false),
        ],
        vec![],
    );
    assert_eq!(status(&plan)["phase"], "Stopping");
    assert!(config_map(&plan).is_some());

    // Stopped with no pod left → Starting.
    let plan = run(
        job(json!({}), st.clone()),
        vec![dc(4, &["r1", "r2"], &[("Stopped", "True")]), four_nodes()],
        vec![],
    );
    let st = status(&plan);
    assert_eq!(st["phase"], "Starting");
    assert!(st["datacenterStopped"].is_string());
    assert!(config_map(&plan).is_some());

    // Starting: two pods ready, two not → per-pod progress, the ConfigMap stays.
    let plan = run(
        job(json!({}), st.clone()),
        vec![
            dc(4, &["r1", "r2"], &[("Ready", "False")]),
            four_nodes(),
            pod(PODS[0], true),
            pod(PODS[1], true),
            pod(PODS[2], false),
        ],
        vec![],
    );
    let progress = status(&plan);
    assert_eq!(progress["phase"], "Starting");
    assert_eq!(progress["finished"], json!([PODS[0], PODS[1]]));
    assert_eq!(progress["inProgress"], json!([PODS[2], PODS[3]]));
    assert!(config_map(&plan).is_some());

    // Every pod ready and the datacenter Ready → Roles; the ConfigMap is no longer listed.
    let all: Vec<Object> = PODS.iter().map(|p| pod(p, true)).collect();
    let ready_dc = || dc(4, &["r1", "r2"], &[("Ready", "True")]);
    let mut related = vec![ready_dc(), four_nodes()];
    related.extend(all.clone());
    let plan = run(job(json!({}), st.clone()), related.clone(), vec![]);
    let st = status(&plan);
    assert_eq!(st["phase"], "Roles");
    assert_eq!(st["finished"], json!(PODS));
    assert!(config_map(&plan).is_none());

    // Roles: the superuser and every user role, once.
    let plan = run(job(json!({}), st.clone()), related.clone(), vec![]);
    let roles: Vec<String> = plan
        .operations
        .iter()
        .filter_map(|o| match &o.kind {
            OperationKind::CreateRole(r) => Some(r.secret_name.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(roles, ["c-superuser", "c-medusa"]);
    assert_eq!(status(&plan)["phase"], "Roles");
    let ids: Vec<String> = plan.operations.iter().map(|o| o.id.clone()).collect();

    // One failed: asked again under the next attempt; both done → Complete.
    let plan = run(
        job(json!({}), st.clone()),
        related.clone(),
        vec![
            (ids[0].clone(), Outcome::Succeeded(String::new())),
            (ids[1].clone(), Outcome::Failed("not ready".into())),
        ],
    );
    assert_eq!(plan.operations.len(), 1);
    let retry = plan.operations[0].id.clone();
    assert_ne!(retry, ids[1]);
    let plan = run(
        job(json!({}), st.clone()),
        related,
        vec![
            (ids[0].clone(), Outcome::Succeeded(String::new())),
            (ids[1].clone(), Outcome::Failed("not ready".into())),
            (retry, Outcome::Succeeded(String::new())),
        ],
    );
    let done = status(&plan);
    assert_eq!(done["phase"], "Complete");
    assert!(done["finishTime"].is_string());
    assert_eq!(cond(&done, "Complete")["status"], "True");
    assert!(plan.events.iter().any(|e| e.reason == "RestoreComplete"));
}

#[test]
fn a_finished_restore_lists_nothing() {
    let mut st = started("Complete");
    st["finishTime"] = json!("2023-01-01T00:00:00Z");
    let plan = run(
        job(json!({}), st),
        vec![dc(4, &["r1", "r2"], &[("Ready", "True")]), four_nodes()],
        vec![],
    );
    assert!(plan.apply.is_empty() && plan.operations.is_empty() && plan.status.is_none());
}

#[test]
fn admission_names_bad_fields_and_freezes_a_started_restore() {
    let text = |v: Value| v.to_string();
    let base = json!({
        "apiVersion": "medusa.k8ssandra.io/v1alpha1", "kind": "MedusaRestoreJob",
        "metadata": {"name": "r1", "namespace": "ns"},
        "spec": {"backup": "", "cassandraDatacenter": "dc1",
            "keyspaces": ["ok_ks", "bad-ks"], "tables": ["ks.t", "nodot"],
            "readyDeadlineSeconds": 0},
    });
    let fields: Vec<String> = MedusaRestoreJobPolicy::validate(text(base.clone()), None)
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(
        fields,
        [
            "spec.backup",
            "spec.keyspaces[1]",
            "spec.tables[1]",
            "spec.readyDeadlineSeconds"
        ]
    );
    // Chosen keyspaces and tables are accepted.
    let mut ok = base.clone();
    ok["spec"] = json!({"backup": "b1", "cassandraDatacenter": "dc1",
        "keyspaces": ["shop"], "tables": ["logs.events"], "readyDeadlineSeconds": 60});
    assert_eq!(MedusaRestoreJobPolicy::validate(text(ok), None), Vec::new());

    let mut old = base.clone();
    old["spec"] = json!({"backup": "b1", "cassandraDatacenter": "dc1"});
    old["status"] = json!({"restoreKey": "k", "startTime": "2023-01-01T00:00:00Z"});
    let mut new = old.clone();
    new["spec"]["backup"] = json!("b2");
    let v = MedusaRestoreJobPolicy::validate(text(new), Some(text(old)));
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].field, "spec");
}

#[test]
fn a_selective_restore_needs_each_pods_own_backup_and_stops_nothing_without_it() {
    let spec = json!({"keyspaces": ["shop"]});
    // The pods now have other addresses than the backed-up nodes (replaced since).
    let mut related = selective_related(true);
    for o in related
        .iter_mut()
        .filter(|o| o.kind().as_deref() == Some("Pod"))
    {
        let mut v: Value = serde_json::from_str(&o.json).unwrap();
        v["status"]["podIP"] = json!("10.9.9.9");
        *o = obj(v);
    }
    let plan = run(job(spec, json!(null)), related, vec![]);
    let st = status(&plan);
    assert_eq!(st["phase"], "Failed");
    assert_eq!(
        cond(&st, "Failed")["reason"],
        "SelectiveRestoreNeedsOwnBackups"
    );
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .starts_with("spec.keyspaces: ")
    );
    assert!(st.get("datacenterStopped").is_none() && plan.operations.is_empty());
}

#[test]
fn every_pod_restores_its_own_backup_whatever_the_hosts_sort_order() {
    // Eleven nodes in one rack, recorded by FQDN: sorted as text, sts-10 comes before sts-2,
    // which upstream's order would hand to sts-2.
    let names: Vec<String> = (0..11).map(|i| format!("c-dc1-r1-sts-{i}")).collect();
    let hosts: Vec<String> = names
        .iter()
        .map(|n| format!("{n}.c-dc1-all-pods-service.ns"))
        .collect();
    let nodes: Vec<(&str, &str, &str)> = hosts.iter().map(|h| (h.as_str(), "r1", "dc1")).collect();
    let mut related = vec![
        dc(11, &["r1"], &[("Ready", "True")]),
        backup(&nodes, "SUCCESS"),
    ];
    related.extend(names.iter().map(|n| pod_with_module(n)));
    let plan = run(job(json!({}), json!(null)), related, vec![]);
    let st = status(&plan);
    assert_eq!(st["phase"], "Preparing", "{st}");
    let map = &st["restoreMapping"]["host_map"];
    for (n, h) in names.iter().zip(&hosts) {
        assert_eq!(map[n]["source"], json!([h]), "{n}");
    }
}
