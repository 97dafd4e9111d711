//! Registration with Reaper and deregistration on deletion, on snapshots.

use k8ssandra_policy_sdk::{
    EventType, Object, OperationKind, OperationResult, Outcome, Plan, Snapshot,
};
use serde_json::{Value, json};

use crate::decide::{
    CLUSTER_ANNOTATION, REASON_DEREGISTERING, REASON_REGISTERED, REASON_UNREACHABLE,
};
use crate::register::{FINALIZER, GIVE_UP_MS, RECHECK_MS};
use crate::tests::{NS, applied, datacenter, obj, reaper, rolled_out, run, snapshot, spec, status};

const NOW: u64 = 1_700_000_000_000;

fn pod(name: &str, labels: Value, ip: &str, ready: bool) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "uid": format!("{name}-uid"), "labels": labels},
        "status": {"phase": "Running", "podIP": ip,
                   "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
    })
}

fn reaper_pod(ready: bool) -> Value {
    pod(
        "demo-dc1-reaper-abc",
        json!({"k8ssandra.io/reaper": "demo-dc1-reaper"}),
        "127.0.9.9",
        ready,
    )
}

fn cassandra_pods() -> Vec<Value> {
    (0..4)
        .map(|i| {
            pod(
                &format!("demo-dc1-default-sts-{i}"),
                json!({"cassandra.datastax.com/cluster": "demo",
                       "cassandra.datastax.com/datacenter": "dc1"}),
                &format!("127.0.1.{}", i + 1),
                i != 3,
            )
        })
        .collect()
}

/// A Reaper whose workload serves, with its status from `prev` (a previous plan).
fn serving(prev: Option<&Plan>, results: Vec<(String, Outcome, u64)>, now: u64) -> Snapshot {
    let first = run(snapshot(
        reaper(spec()),
        vec![datacenter(true, "4.1.5")],
        vec![],
    ));
    let children: Vec<Value> = applied(&first, "Deployment")
        .into_iter()
        .chain(applied(&first, "Service"))
        .map(rolled_out)
        .collect();
    let mut r = reaper(spec());
    r["metadata"]["finalizers"] = json!([FINALIZER]);
    if let Some(p) = prev {
        r["status"] = status(p);
    }
    let mut related = vec![datacenter(true, "4.1.5"), reaper_pod(true)];
    related.extend(cassandra_pods());
    let mut s = snapshot(r, related, children);
    s.now_ms = now;
    s.results = results
        .into_iter()
        .map(|(id, outcome, at_ms)| OperationResult { id, outcome, at_ms })
        .collect();
    s
}

fn window(now: u64) -> u64 {
    now / RECHECK_MS
}

fn list_id(now: u64) -> String {
    format!("reaper/clusters/demo-dc1-reaper-abc-uid/{}", window(now))
}

fn add_id(now: u64) -> String {
    format!("reaper/add/demo/demo-dc1-reaper-abc-uid/{}", window(now))
}

fn ready_cond(plan: &Plan) -> Value {
    status(plan)["conditions"][0].clone()
}

#[test]
fn lists_first_then_adds_the_cluster_once_with_reachable_seeds() {
    let plan = run(serving(None, vec![], NOW));
    assert_eq!(plan.finalizers, Some(vec![FINALIZER.to_string()]));
    assert_eq!(plan.operations.len(), 1, "{:?}", plan.operations);
    let op = &plan.operations[0];
    assert_eq!(op.id, list_id(NOW));
    assert_eq!(op.target.pod, "demo-dc1-reaper-abc");
    assert_eq!(op.target.namespace, NS);
    let OperationKind::ReaperListClusters(access) = &op.kind else {
        panic!("{:?}", op.kind)
    };
    assert_eq!(access.ui_secret.as_deref(), Some("demo-reaper-ui"));
    assert_eq!(status(&plan)["progress"], "Configuring");

    // Reaper knows no cluster: add it, under the cleaned name, seeded by the ready pods'
    // addresses and the seed Service.
    let listed = vec![(list_id(NOW), Outcome::Succeeded("[]".into()), NOW)];
    let plan = run(serving(Some(&plan), listed.clone(), NOW + 1000));
    assert_eq!(plan.operations.len(), 1);
    let op = &plan.operations[0];
    assert_eq!(op.id, add_id(NOW));
    let OperationKind::ReaperAddCluster(c) = &op.kind else {
        panic!("{:?}", op.kind)
    };
    assert_eq!(c.name, "demo");
    assert_eq!(
        c.seed_hosts,
        [
            "127.0.1.1",
            "127.0.1.2",
            "127.0.1.3",
            "demo-seed-service.ns"
        ]
    );
    assert_eq!(c.access.ui_secret.as_deref(), Some("demo-reaper-ui"));

    // Added: Running, Ready, one event; nothing more to call.
    let mut done = listed.clone();
    done.push((add_id(NOW), Outcome::Succeeded("{}".into()), NOW + 2000));
    let plan = run(serving(Some(&plan), done.clone(), NOW + 3000));
    assert!(plan.operations.is_empty(), "{:?}", plan.operations);
    assert_eq!(status(&plan)["progress"], "Running");
    let cond = ready_cond(&plan);
    assert_eq!(cond["status"], "True");
    assert_eq!(cond["reason"], REASON_REGISTERED);
    assert!(
        plan.events
            .iter()
            .any(|e| e.reason == "ClusterRegistered" && e.event_type == EventType::Normal)
    );
    // Settled: the same plan again, without a new event.
    let again = run(serving(Some(&plan), done, NOW + 4000));
    assert!(again.operations.is_empty());
    assert_eq!(again.status, plan.status);
    assert!(again.events.is_empty(), "{:?}", again.events);
}

#[test]
fn a_cluster_reaper_knows_is_not_added_again() {
    let listed = vec![(
        list_id(NOW),
        Outcome::Succeeded(r#"["other","demo"]"#.into()),
        NOW,
    )];
    let plan = run(serving(None, listed, NOW + 1000));
    assert!(plan.operations.is_empty(), "{:?}", plan.operations);
    assert_eq!(status(&plan)["progress"], "Running");
}

#[test]
fn a_failing_reaper_is_a_condition_retried_with_backoff_and_nothing_else_changes() {
    let failed = vec![(
        list_id(NOW),
        Outcome::Failed("HTTP 503 Service Unavailable".into()),
        NOW,
    )];
    let plan = run(serving(None, failed.clone(), NOW + 1000));
    let cond = ready_cond(&plan);
    assert_eq!(cond["status"], "False");
    assert_eq!(cond["reason"], REASON_UNREACHABLE);
    assert!(cond["message"].as_str().unwrap().contains("503"), "{cond}");
    assert!(
        plan.events
            .iter()
            .any(|e| e.reason == REASON_UNREACHABLE && e.event_type == EventType::Warning)
    );
    // The workload and the Service are still applied, the finalizer still held.
    assert_eq!(applied(&plan, "Deployment").len(), 1);
    assert_eq!(applied(&plan, "Service").len(), 1);
    assert_eq!(plan.finalizers, Some(vec![FINALIZER.to_string()]));
    // Not retried before the backoff, and asked to come back when it is due.
    assert!(plan.operations.is_empty());
    assert!(plan.requeue_after_ms.is_some_and(|ms| ms <= 4000));
    // Once due: the next attempt, and the same condition without a second Warning.
    let plan2 = run(serving(Some(&plan), failed.clone(), NOW + 6000));
    assert_eq!(plan2.operations.len(), 1);
    assert_eq!(plan2.operations[0].id, format!("{}/r1", list_id(NOW)));
    assert!(plan2.events.is_empty(), "{:?}", plan2.events);
    // Reaper answers again: converges.
    let mut back = failed;
    back.push((
        format!("{}/r1", list_id(NOW)),
        Outcome::Succeeded(r#"["demo"]"#.into()),
        NOW + 7000,
    ));
    let plan3 = run(serving(Some(&plan2), back, NOW + 8000));
    assert_eq!(status(&plan3)["progress"], "Running");
    assert_eq!(ready_cond(&plan3)["status"], "True");
}

#[test]
fn a_periodic_check_in_flight_keeps_running_and_a_lost_registration_is_added_again() {
    let listed = vec![(list_id(NOW), Outcome::Succeeded(r#"["demo"]"#.into()), NOW)];
    let running = run(serving(None, listed.clone(), NOW + 1000));
    assert_eq!(status(&running)["progress"], "Running");
    // The next window lists again; while that call runs nothing changes.
    let later = NOW + RECHECK_MS;
    let plan = run(serving(Some(&running), listed.clone(), later));
    assert_eq!(plan.operations.len(), 1);
    assert_eq!(plan.operations[0].id, list_id(later));
    assert_eq!(plan.status, running.status);
    // Reaper lost its state (a new pod with local storage): added again.
    let mut lost = listed;
    lost.push((list_id(later), Outcome::Succeeded("[]".into()), later));
    let plan = run(serving(Some(&running), lost, later + 1000));
    assert_eq!(plan.operations.len(), 1);
    assert_eq!(plan.operations[0].id, add_id(later));
}

#[test]
fn no_ready_reaper_pod_waits_without_calling() {
    let mut s = serving(None, vec![], NOW);
    s.related
        .retain(|o| !o.labels().contains_key(k8ssandra_api::reaper::REAPER_LABEL));
    s.related.push(obj(&reaper_pod(false)));
    let plan = run(s);
    assert!(plan.operations.is_empty());
    assert_eq!(status(&plan)["progress"], "Configuring");
    assert!(plan.requeue_after_ms.is_some());
}

/// A deleted Reaper with its finalizer, its workload annotated with the cluster.
fn deleted(results: Vec<(String, Outcome, u64)>, now: u64, pods: Vec<Value>) -> Snapshot {
    let mut s = serving(None, results, now);
    let mut parent: Value = s.parent.value().unwrap();
    parent["metadata"]["deletionTimestamp"] = json!("2023-11-14T22:13:20Z");
    s.parent = obj(&parent);
    for c in &mut s.children {
        let mut v = c.value().unwrap();
        if v["kind"] == "Deployment" {
            v["metadata"]["annotations"] = json!({CLUSTER_ANNOTATION: "demo"});
            *c = Object {
                cluster: String::new(),
                json: v.to_string(),
            };
        }
    }
    s.related.retain(|o| {
        o.kind().as_deref() != Some("Pod")
            || o.labels().contains_key("cassandra.datastax.com/cluster")
    });
    s.related.extend(pods.iter().map(obj));
    s
}

fn remove_id() -> String {
    format!(
        "reaper/remove/demo/{}",
        k8ssandra_policy_sdk::stable_hash("2023-11-14T22:13:20Z")
    )
}

#[test]
fn deletion_deregisters_before_the_finalizer_goes_and_keeps_the_pods_meanwhile() {
    let plan = run(deleted(vec![], NOW, vec![reaper_pod(true)]));
    assert_eq!(plan.finalizers, None, "held while deregistering");
    assert_eq!(plan.operations.len(), 1);
    let OperationKind::ReaperRemoveCluster(c) = &plan.operations[0].kind else {
        panic!("{:?}", plan.operations[0].kind)
    };
    assert_eq!(c.name, "demo");
    assert_eq!(plan.operations[0].id, remove_id());
    // The workload is re-applied as it is (with the annotation), so nothing is pruned.
    let d = applied(&plan, "Deployment");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["metadata"]["annotations"][CLUSTER_ANNOTATION], "demo");
    assert_eq!(applied(&plan, "Service").len(), 1);
    assert_eq!(ready_cond(&plan)["reason"], REASON_DEREGISTERING);

    let done = vec![(remove_id(), Outcome::Succeeded(String::new()), NOW + 1000)];
    let plan = run(deleted(done, NOW + 2000, vec![reaper_pod(true)]));
    assert_eq!(plan.finalizers, Some(vec![]));
    assert!(
        plan.events
            .iter()
            .any(|e| e.reason == "ClusterDeregistered")
    );
}

#[test]
fn an_unreachable_reaper_holds_the_deletion_for_a_bounded_time_then_warns() {
    let deleted_at = 1_700_000_000_000;
    let failed = vec![(
        remove_id(),
        Outcome::Failed("connection refused".into()),
        deleted_at + 1000,
    )];
    let plan = run(deleted(
        failed.clone(),
        deleted_at + 2000,
        vec![reaper_pod(true)],
    ));
    assert_eq!(plan.finalizers, None);
    assert!(
        ready_cond(&plan)["message"]
            .as_str()
            .unwrap()
            .contains("connection refused")
    );
    let plan = run(deleted(
        failed,
        deleted_at + GIVE_UP_MS + 1,
        vec![reaper_pod(true)],
    ));
    assert_eq!(plan.finalizers, Some(vec![]));
    assert!(
        plan.events
            .iter()
            .any(|e| e.reason == "DeregistrationAbandoned" && e.event_type == EventType::Warning)
    );
    // Not ready pods: the same bound.
    let plan = run(deleted(vec![], deleted_at + 1000, vec![reaper_pod(false)]));
    assert_eq!(plan.finalizers, None);
    let plan = run(deleted(
        vec![],
        deleted_at + GIVE_UP_MS,
        vec![reaper_pod(false)],
    ));
    assert_eq!(plan.finalizers, Some(vec![]));
}

#[test]
fn a_reaper_that_never_ran_a_pod_is_released_at_once() {
    let plan = run(deleted(vec![], NOW, vec![]));
    assert_eq!(plan.finalizers, Some(vec![]));
    assert!(plan.operations.is_empty());
}

#[test]
fn a_control_plane_reaper_registers_every_cluster_that_references_it() {
    let mut s = spec();
    s.as_object_mut().unwrap().remove("datacenterRef");
    s["storageType"] = json!("local");
    s["storageConfig"] = json!({"accessModes": ["ReadWriteOnce"],
                                "resources": {"requests": {"storage": "256Mi"}}});
    let mut r = reaper(s.clone());
    r["metadata"]["name"] = json!("cp-reaper");
    let first = run(snapshot(r.clone(), vec![], vec![]));
    let children: Vec<Value> = applied(&first, "StatefulSet")
        .into_iter()
        .map(rolled_out)
        .collect();
    let kc = |name: &str, reaper: &str| {
        json!({"apiVersion": "k8ssandra.io/v1alpha1", "kind": "K8ssandraCluster",
               "metadata": {"name": name, "namespace": NS},
               "spec": {"reaper": {"reaperRef": {"name": reaper}}}})
    };
    let cp_pod = pod(
        "cp-reaper-0",
        json!({"k8ssandra.io/reaper": "cp-reaper"}),
        "127.0.0.50",
        true,
    );
    let dc_pod = |name: &str, ip: &str| {
        pod(
            name,
            json!({"cassandra.datastax.com/cluster": "demo",
                   "cassandra.datastax.com/datacenter": name}),
            ip,
            true,
        )
    };
    let mut snap = snapshot(
        r,
        vec![
            kc("demo", "cp-reaper"),
            kc("other", "another-reaper"),
            cp_pod,
        ],
        children,
    );
    // One datacenter in each data-plane cluster.
    for (cluster, v) in [
        ("cluster-1", dc_pod("dc1-sts-0", "127.1.0.5")),
        ("cluster-2", dc_pod("dc2-sts-0", "127.2.0.5")),
    ] {
        snap.related.push(Object {
            cluster: cluster.into(),
            json: v.to_string(),
        });
    }
    snap.results = vec![OperationResult {
        id: format!("reaper/clusters/cp-reaper-0-uid/{}", window(snap.now_ms)),
        outcome: Outcome::Succeeded("[]".into()),
        at_ms: snap.now_ms,
    }];
    let plan = run(snap);
    assert_eq!(plan.operations.len(), 1, "{:?}", plan.operations);
    let OperationKind::ReaperAddCluster(c) = &plan.operations[0].kind else {
        panic!("{:?}", plan.operations[0].kind)
    };
    assert_eq!(c.name, "demo");
    assert_eq!(
        c.seed_hosts,
        ["127.1.0.5", "127.2.0.5", "demo-seed-service.ns"],
        "both datacenters' pods seed it"
    );
    assert_eq!(plan.operations[0].target.pod, "cp-reaper-0");
    assert_eq!(status(&plan)["progress"], "Configuring");

    // The workload remembers what it registers; once demo stops referencing the Reaper
    // (reaperRef removed, or demo deleted), demo is deregistered, exactly once.
    let sts = applied(&plan, "StatefulSet").remove(0);
    let key = crate::register::REGISTERED_ANNOTATION;
    let remembered: std::collections::BTreeMap<String, u64> = serde_json::from_str(
        sts["metadata"]["annotations"][key]
            .as_str()
            .expect("the annotation"),
    )
    .unwrap();
    assert_eq!(remembered.keys().collect::<Vec<_>>(), ["demo"]);
    let since = remembered["demo"];
    let mut unref = snapshot(
        reaper(s.clone()).tap_name("cp-reaper"),
        vec![
            json!({"apiVersion": "k8ssandra.io/v1alpha1", "kind": "K8ssandraCluster",
                   "metadata": {"name": "demo", "namespace": NS}, "spec": {}}),
            kc("other", "another-reaper"),
            pod(
                "cp-reaper-0",
                json!({"k8ssandra.io/reaper": "cp-reaper"}),
                "127.0.0.50",
                true,
            ),
        ],
        vec![rolled_out(sts)],
    );
    let remove = format!("reaper/unref/demo/{since}");
    let plan = run(unref.clone());
    let removes: Vec<_> = plan
        .operations
        .iter()
        .filter_map(|o| match &o.kind {
            OperationKind::ReaperRemoveCluster(c) => Some((o.id.clone(), c.name.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(removes, [(remove.clone(), "demo".to_string())]);
    let still = &applied(&plan, "StatefulSet")[0]["metadata"]["annotations"][key];
    assert!(
        still.as_str().unwrap().contains("demo"),
        "kept until done: {still}"
    );
    unref.results.push(OperationResult {
        id: remove,
        outcome: Outcome::Succeeded(String::new()),
        at_ms: unref.now_ms,
    });
    let plan = run(unref);
    assert!(
        !plan
            .operations
            .iter()
            .any(|o| matches!(o.kind, OperationKind::ReaperRemoveCluster(_))),
        "{:?}",
        plan.operations
    );
    assert!(
        applied(&plan, "StatefulSet")[0]["metadata"]["annotations"]
            .get(key)
            .is_none(),
        "demo forgotten"
    );
    assert!(
        plan.events
            .iter()
            .any(|e| e.reason == "ClusterDeregistered")
    );
}

trait TapName {
    fn tap_name(self, name: &str) -> Value;
}

impl TapName for Value {
    fn tap_name(mut self, name: &str) -> Value {
        self["metadata"]["name"] = json!(name);
        self
    }
}
