//! Unit tests: snapshots in, plans out.

use k8ssandra_policy_sdk::{ClusterState, EventType, Object, Plan, Policy, Snapshot};
use serde_json::{Value, json};

use crate::K8ssandraTaskPolicy as P;
use crate::task::{TASK_NAME_LABEL, TASK_NAMESPACE_LABEL};

const NS: &str = "ns";
const NOW: u64 = 1_700_000_000_000;

fn kc() -> Value {
    json!({
        "apiVersion": "k8ssandra.io/v1alpha1",
        "kind": "K8ssandraCluster",
        "metadata": {"name": "demo", "namespace": NS},
        "spec": {"cassandra": {
            "serverVersion": "4.1.5",
            "datacenters": [
                {"metadata": {"name": "dc1"}, "size": 1},
                {"metadata": {"name": "dc2", "namespace": "other"}, "k8sContext": "B", "size": 2},
            ]
        }}
    })
}

fn task(spec: Value) -> Value {
    let mut base = json!({
        "cluster": {"name": "demo"},
        "template": {"jobs": [{"name": "flush-all", "command": "flush", "args": {"keyspace_name": "ks"}}]},
    });
    for (k, v) in spec.as_object().cloned().unwrap_or_default() {
        base[k] = v;
    }
    json!({
        "apiVersion": "control.k8ssandra.io/v1alpha1",
        "kind": "K8ssandraTask",
        "metadata": {"name": "t", "namespace": NS, "uid": "task-uid", "generation": 1},
        "spec": base,
    })
}

fn cond(t: &str, status: bool, at: &str) -> Value {
    json!({"type": t, "status": if status {"True"} else {"False"}, "reason": "R", "message": "", "lastTransitionTime": at})
}

/// A CassandraTask child as its operator leaves it.
fn child(cluster: &str, ns: &str, dc: &str, status: Value) -> Object {
    Object {
        cluster: cluster.into(),
        json: json!({
            "apiVersion": "control.k8ssandra.io/v1alpha1",
            "kind": "CassandraTask",
            "metadata": {"name": format!("t-{dc}"), "namespace": ns, "labels": {
                TASK_NAME_LABEL: "t", TASK_NAMESPACE_LABEL: NS, "k8ssandra.io/datacenter": dc,
                "k8ssandra.io/policy": "k8ssandra-task",
            }},
            "spec": {"datacenter": {"name": dc, "namespace": ns}, "ttlSecondsAfterFinished": 0,
                     "jobs": [{"name": "flush-all", "command": "flush", "args": {"keyspace_name": "ks"}}]},
            "status": status,
        })
        .to_string(),
    }
}

fn running(start: &str) -> Value {
    json!({"conditions": [cond("Running", true, start)], "startTime": start, "active": 1,
           "podStatuses": {"p-0": {"status": "RUNNING"}}})
}

fn complete(start: &str, end: &str, pods: i64) -> Value {
    json!({"conditions": [cond("Running", false, end), cond("Complete", true, end)],
           "startTime": start, "completionTime": end, "succeeded": pods, "active": 0,
           "podStatuses": {"p-0": {"status": "COMPLETED"}}})
}

/// dc1's CassandraTask here, Complete at 22:01 on its 1 pod.
fn dc1_complete() -> Object {
    child(
        "",
        NS,
        "dc1",
        complete("2023-11-14T22:00:00Z", "2023-11-14T22:01:00Z", 1),
    )
}

/// dc2's CassandraTask in cluster B, Complete at 22:02 on its 2 pods.
fn dc2_complete() -> Object {
    child(
        "B",
        "other",
        "dc2",
        complete("2023-11-14T22:01:05Z", "2023-11-14T22:02:00Z", 2),
    )
}

/// Both datacenters done.
fn both_complete() -> Vec<Object> {
    vec![dc1_complete(), dc2_complete()]
}

fn failed(start: &str, end: &str) -> Value {
    json!({"conditions": [cond("Running", false, end), cond("Complete", true, end), cond("Failed", true, end)],
           "startTime": start, "completionTime": end, "failed": 1, "succeeded": 0})
}

struct World {
    task: Value,
    kc: Option<Value>,
    clusters: Vec<(String, bool)>,
    children: Vec<Object>,
    now: u64,
}

impl World {
    fn new(task: Value) -> Self {
        World {
            task,
            kc: Some(kc()),
            clusters: vec![("".into(), true), ("B".into(), true)],
            children: vec![],
            now: NOW,
        }
    }

    fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::for_parent(Object {
            cluster: String::new(),
            json: self.task.to_string(),
        });
        s.clusters = self
            .clusters
            .iter()
            .map(|(n, r)| ClusterState {
                name: n.clone(),
                reachable: *r,
                message: None,
            })
            .collect();
        s.children = self.children.clone();
        s.related = self
            .kc
            .iter()
            .map(|k| Object {
                cluster: String::new(),
                json: k.to_string(),
            })
            .collect();
        s.now_ms = self.now;
        s
    }

    fn run(&self) -> Plan {
        P::reconcile(self.snapshot()).expect("plan")
    }

    /// Reconciles and stores the planned status on the task, as the host would.
    fn step(&mut self) -> Plan {
        let plan = self.run();
        if let Some(st) = &plan.status {
            self.task["status"] = serde_json::from_str(st).unwrap();
        }
        plan
    }

    fn set_unreachable(&mut self, name: &str) {
        for c in &mut self.clusters {
            if c.0 == name {
                c.1 = false;
            }
        }
    }
}

fn applied(plan: &Plan) -> Vec<(String, Value)> {
    plan.apply
        .iter()
        .map(|o| (o.cluster.clone(), serde_json::from_str(&o.json).unwrap()))
        .collect()
}

fn applied_names(plan: &Plan) -> Vec<String> {
    applied(plan)
        .iter()
        .map(|(c, v)| {
            format!(
                "{c}/{}/{}",
                v["metadata"]["namespace"].as_str().unwrap(),
                v["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

fn status(plan: &Plan) -> Value {
    serde_json::from_str(plan.status.as_deref().expect("a status")).unwrap()
}

fn condition(st: &Value, t: &str) -> Option<(String, String, String)> {
    st["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == t)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_string(),
                c["reason"].as_str().unwrap_or_default().to_string(),
                c["message"].as_str().unwrap_or_default().to_string(),
            )
        })
}

fn is(st: &Value, t: &str) -> bool {
    condition(st, t).is_some_and(|c| c.0 == "True")
}

fn reasons(plan: &Plan) -> Vec<String> {
    plan.events.iter().map(|e| e.reason.clone()).collect()
}

#[test]
fn describe_owns_cassandra_tasks_and_reads_the_cluster() {
    let info = P::describe();
    assert_eq!(info.name, "k8ssandra-task");
    assert_eq!(info.parent.kind, "K8ssandraTask");
    assert_eq!(info.parent.api_version, "control.k8ssandra.io/v1alpha1");
    assert_eq!(info.owns.len(), 1);
    assert_eq!(info.owns[0].kind, "CassandraTask");
    assert_eq!(info.reads.len(), 1);
    assert_eq!(info.reads[0].kind.kind, "K8ssandraCluster");
    assert!(
        !info.reads[0].all_clusters,
        "the K8ssandraCluster is in the control plane"
    );
    assert!(info.observe_pods.is_none());
}

#[test]
fn forbid_creates_the_first_datacenter_only() {
    let w = World::new(task(json!({})));
    let plan = w.run();
    assert_eq!(applied_names(&plan), vec!["/ns/t-dc1"]);
    let (_, obj) = &applied(&plan)[0];
    assert_eq!(obj["kind"], "CassandraTask");
    assert_eq!(
        obj["spec"]["datacenter"],
        json!({"name": "dc1", "namespace": "ns"})
    );
    assert_eq!(obj["spec"]["jobs"][0]["command"], "flush");
    assert_eq!(obj["spec"]["jobs"][0]["args"]["keyspace_name"], "ks");
    assert_eq!(
        obj["spec"]["ttlSecondsAfterFinished"], 0,
        "the K8ssandraTask owns the TTL"
    );
    let l = &obj["metadata"]["labels"];
    assert_eq!(l[TASK_NAME_LABEL], "t");
    assert_eq!(l[TASK_NAMESPACE_LABEL], NS);
    assert_eq!(l["k8ssandra.io/datacenter"], "dc1");
    assert_eq!(l["k8ssandra.io/cluster-name"], "demo");
    assert_eq!(plan.events[0].reason, "CreateCassandraTask");
    assert!(plan.events[0].message.contains("ns/t-dc1"));
    let st = status(&plan);
    assert!(is(&st, "Running"));
    assert!(!is(&st, "Complete") && !is(&st, "Failed") && !is(&st, "Invalid"));
    assert!(plan.delete.is_empty());
}

#[test]
fn forbid_waits_while_the_previous_datacenter_runs() {
    let mut w = World::new(task(json!({})));
    w.children = vec![child("", NS, "dc1", running("2023-11-14T22:00:00Z"))];
    let plan = w.run();
    assert_eq!(applied_names(&plan), vec!["/ns/t-dc1"], "dc2 waits for dc1");
    let st = status(&plan);
    assert!(is(&st, "Running"));
    assert_eq!(st["datacenters"]["dc1"]["active"], 1);
    assert_eq!(
        st["datacenters"]["dc1"]["podStatuses"]["p-0"]["status"],
        "RUNNING"
    );
    assert_eq!(st["startTime"], "2023-11-14T22:00:00Z");
    assert!(!reasons(&plan).contains(&"CreateCassandraTask".to_string()));

    // Created but not yet picked up (no status): still waiting.
    w.children = vec![child("", NS, "dc1", Value::Null)];
    assert_eq!(applied_names(&w.run()), vec!["/ns/t-dc1"]);
}

#[test]
fn forbid_creates_the_next_datacenter_once_the_previous_is_complete() {
    let mut w = World::new(task(json!({})));
    w.children = vec![dc1_complete()];
    let plan = w.run();
    assert_eq!(applied_names(&plan), vec!["/ns/t-dc1", "B/other/t-dc2"]);
    let (cluster, obj) = &applied(&plan)[1];
    assert_eq!(cluster, "B", "created in the datacenter's own cluster");
    assert_eq!(
        obj["spec"]["datacenter"],
        json!({"name": "dc2", "namespace": "other"})
    );
    let st = status(&plan);
    assert!(is(&st, "Running") && !is(&st, "Complete"));
    assert!(st["completionTime"].is_null());
}

#[test]
fn forbid_stops_at_the_first_failure() {
    let mut w = World::new(task(json!({})));
    w.children = vec![child(
        "",
        NS,
        "dc1",
        failed("2023-11-14T22:00:00Z", "2023-11-14T22:01:00Z"),
    )];
    let plan = w.step();
    assert_eq!(applied_names(&plan), vec!["/ns/t-dc1"], "dc2 never runs");
    let st = status(&plan);
    assert!(is(&st, "Failed"));
    assert!(!is(&st, "Running"));
    let c = condition(&st, "Complete").unwrap();
    assert_eq!(
        (c.0.as_str(), c.1.as_str()),
        ("False", "StoppedAfterFailure")
    );
    assert!(c.2.contains("dc1"));
    assert_eq!(st["failed"], 1);
    assert!(reasons(&plan).contains(&"DatacenterTaskFailed".to_string()));
    // Finished: the status is final, and the TTL runs from the failure.
    let again = w.step();
    assert!(again.status.is_none());
    assert_eq!(applied_names(&again), vec!["/ns/t-dc1"]);
    let end = 1_699_999_260_000u64; // 2023-11-14T22:01:00Z
    assert_eq!(again.requeue_after_ms, Some(end + 86_400_000 - NOW));
}

#[test]
fn a_failure_still_running_does_not_finish_the_task() {
    let mut w = World::new(task(json!({"dcConcurrencyPolicy": "Allow"})));
    let still = json!({"conditions": [cond("Running", true, "2023-11-14T22:00:00Z"), cond("Failed", true, "2023-11-14T22:00:30Z")], "active": 1, "failed": 1});
    w.children = vec![
        child("", NS, "dc1", still),
        child(
            "B",
            "other",
            "dc2",
            complete("2023-11-14T22:00:00Z", "2023-11-14T22:01:00Z", 2),
        ),
    ];
    let st = status(&w.run());
    assert!(is(&st, "Failed"));
    assert!(is(&st, "Running"), "dc1 still runs");
    assert!(!is(&st, "Complete"));
}

#[test]
fn allow_creates_every_datacenter_at_once() {
    let w = World::new(task(json!({"dcConcurrencyPolicy": "Allow"})));
    let plan = w.run();
    assert_eq!(applied_names(&plan), vec!["/ns/t-dc1", "B/other/t-dc2"]);
    assert_eq!(
        reasons(&plan)
            .iter()
            .filter(|r| *r == "CreateCassandraTask")
            .count(),
        2
    );
}

#[test]
fn allow_with_a_failure_completes_and_fails() {
    let mut w = World::new(task(json!({"dcConcurrencyPolicy": "Allow"})));
    w.children = vec![
        child(
            "",
            NS,
            "dc1",
            failed("2023-11-14T22:00:00Z", "2023-11-14T22:02:00Z"),
        ),
        child(
            "B",
            "other",
            "dc2",
            complete("2023-11-14T22:00:00Z", "2023-11-14T22:01:00Z", 2),
        ),
    ];
    let st = status(&w.run());
    assert!(is(&st, "Complete") && is(&st, "Failed") && !is(&st, "Running"));
    assert_eq!(st["completionTime"], "2023-11-14T22:02:00Z");
}

#[test]
fn listed_datacenters_run_in_their_listed_order() {
    let mut w = World::new(task(json!({"datacenters": ["dc2", "dc1"]})));
    assert_eq!(applied_names(&w.run()), vec!["B/other/t-dc2"]);
    w.children = vec![child(
        "B",
        "other",
        "dc2",
        complete("2023-11-14T22:00:00Z", "2023-11-14T22:01:00Z", 2),
    )];
    // The existing task is listed first (kept as it is), then the new one.
    assert_eq!(applied_names(&w.run()), vec!["B/other/t-dc2", "/ns/t-dc1"]);

    // Only the listed ones.
    let w = World::new(task(
        json!({"datacenters": ["dc2"], "dcConcurrencyPolicy": "Allow"}),
    ));
    assert_eq!(applied_names(&w.run()), vec!["B/other/t-dc2"]);
}

#[test]
fn complete_sums_the_datacenters() {
    let mut w = World::new(task(json!({})));
    w.children = both_complete();
    let plan = w.run();
    let st = status(&plan);
    assert!(is(&st, "Complete") && !is(&st, "Running") && !is(&st, "Failed"));
    assert_eq!(st["succeeded"], 3);
    assert_eq!(st["active"], 0);
    assert_eq!(st["failed"], 0);
    assert_eq!(
        st["startTime"], "2023-11-14T22:00:00Z",
        "the earliest start"
    );
    assert_eq!(
        st["completionTime"], "2023-11-14T22:02:00Z",
        "the latest end"
    );
    assert_eq!(st["datacenters"]["dc1"]["succeeded"], 1);
    assert_eq!(st["datacenters"]["dc2"]["succeeded"], 2);
    assert_eq!(
        st["datacenters"]["dc2"]["podStatuses"]["p-0"]["status"],
        "COMPLETED"
    );
    assert!(reasons(&plan).contains(&"Completed".to_string()));
    // The TTL (default one day) is scheduled from the completion.
    let end = 1_699_999_320_000u64;
    assert_eq!(plan.requeue_after_ms, Some(end + 86_400_000 - NOW));
    assert!(plan.delete.is_empty());
}

#[test]
fn missing_cluster_is_invalid_and_creates_nothing() {
    let mut w = World::new(task(json!({})));
    w.kc = None;
    let plan = w.run();
    assert!(plan.apply.is_empty());
    let st = status(&plan);
    let c = condition(&st, "Invalid").unwrap();
    assert_eq!(c.0, "True");
    assert!(
        c.2.contains("spec.cluster.name") && c.2.contains("ns/demo"),
        "{}",
        c.2
    );
    assert!(!is(&st, "Running"));
    assert!(
        plan.events
            .iter()
            .any(|e| e.reason == "InvalidSpec" && matches!(e.event_type, EventType::Warning))
    );

    // The cluster appears: the task runs.
    w.kc = Some(kc());
    let st = status(&w.run());
    assert!(!is(&st, "Invalid") && is(&st, "Running"));
}

#[test]
fn a_listed_datacenter_missing_from_the_cluster_is_invalid() {
    let w = World::new(task(json!({"datacenters": ["dc1", "dc9"]})));
    let plan = w.run();
    assert!(plan.apply.is_empty());
    let c = condition(&status(&plan), "Invalid").unwrap();
    assert!(
        c.2.contains("spec.datacenters[1]") && c.2.contains("dc9"),
        "{}",
        c.2
    );
}

#[test]
fn spec_errors_are_invalid_with_the_field_named() {
    let mut t = task(json!({}));
    t["spec"]["template"]["jobs"] = json!([]);
    let plan = World::new(t).run();
    assert!(plan.apply.is_empty());
    let c = condition(&status(&plan), "Invalid").unwrap();
    assert!(c.2.contains("spec.template.jobs"), "{}", c.2);
}

#[test]
fn invalid_keeps_existing_tasks() {
    // The K8ssandraCluster lost dc2 while the task ran: nothing is created, nothing pruned.
    let mut w = World::new(task(json!({"datacenters": ["dc1", "dc2"]})));
    w.children = vec![child("", NS, "dc1", running("2023-11-14T22:00:00Z"))];
    let mut k = kc();
    k["spec"]["cassandra"]["datacenters"]
        .as_array_mut()
        .unwrap()
        .pop();
    w.kc = Some(k);
    let plan = w.run();
    assert_eq!(applied_names(&plan), vec!["/ns/t-dc1"]);
    let st = status(&plan);
    assert!(is(&st, "Invalid"));
    assert_eq!(st["datacenters"]["dc1"]["active"], 1);
}

#[test]
fn unreachable_datacenter_waits_and_deletes_nothing() {
    let mut w = World::new(task(json!({})));
    w.children = vec![dc1_complete()];
    w.set_unreachable("B");
    let plan = w.run();
    assert_eq!(
        applied_names(&plan),
        vec!["/ns/t-dc1"],
        "nothing created in B"
    );
    assert!(plan.delete.is_empty());
    let st = status(&plan);
    let c = condition(&st, "DatacenterUnreachable").unwrap();
    assert_eq!(c.0, "True");
    assert!(c.2.contains("dc2") && c.2.contains("\"B\""), "{}", c.2);
    assert!(!is(&st, "Complete"));
    assert!(plan.requeue_after_ms.is_some());
    assert!(reasons(&plan).contains(&"DatacenterUnreachable".to_string()));
}

#[test]
fn unknown_context_waits_too() {
    let mut w = World::new(task(json!({})));
    w.clusters.retain(|c| c.0 != "B");
    w.children = vec![dc1_complete()];
    let plan = w.run();
    assert_eq!(applied_names(&plan), vec!["/ns/t-dc1"]);
    let c = condition(&status(&plan), "DatacenterUnreachable").unwrap();
    assert!(c.2.contains("no ClientConfig"), "{}", c.2);
}

#[test]
fn allow_runs_the_reachable_datacenters_and_keeps_the_last_known_status_of_the_others() {
    let mut w = World::new(task(json!({"dcConcurrencyPolicy": "Allow"})));
    w.set_unreachable("B");
    let plan = w.step();
    assert_eq!(applied_names(&plan), vec!["/ns/t-dc1"]);

    // B comes back: dc2 is created; then B goes away while dc2 runs.
    w.clusters = vec![("".into(), true), ("B".into(), true)];
    w.children = vec![child("", NS, "dc1", running("2023-11-14T22:00:00Z"))];
    let plan = w.step();
    assert_eq!(applied_names(&plan), vec!["/ns/t-dc1", "B/other/t-dc2"]);
    assert!(status(&plan)["datacenters"]["dc2"].is_object());
    w.children
        .push(child("B", "other", "dc2", running("2023-11-14T22:00:10Z")));
    w.step();
    w.set_unreachable("B");
    w.children.retain(|c| c.cluster != "B");
    let plan = w.step();
    let st = status(&plan);
    assert_eq!(
        st["datacenters"]["dc2"]["active"], 1,
        "last known status of dc2"
    );
    assert!(is(&st, "DatacenterUnreachable"));
    assert!(plan.delete.is_empty());
    // Back again: the condition clears.
    w.clusters = vec![("".into(), true), ("B".into(), true)];
    w.children
        .push(child("B", "other", "dc2", running("2023-11-14T22:00:10Z")));
    let c = condition(&status(&w.run()), "DatacenterUnreachable").unwrap();
    assert_eq!(c.0, "False");
}

#[test]
fn a_finished_datacenter_is_not_run_again_when_its_task_disappears() {
    let mut w = World::new(task(json!({})));
    w.children = vec![dc1_complete()];
    w.step();
    // Someone deleted t-dc1; dc2 is running.
    w.children = vec![child("B", "other", "dc2", running("2023-11-14T22:01:10Z"))];
    let plan = w.step();
    assert_eq!(
        applied_names(&plan),
        vec!["B/other/t-dc2"],
        "t-dc1 not re-created"
    );
    assert_eq!(status(&plan)["datacenters"]["dc1"]["succeeded"], 1);
}

#[test]
fn existing_tasks_are_never_changed() {
    let mut w = World::new(task(json!({})));
    w.children = vec![child("", NS, "dc1", running("2023-11-14T22:00:00Z"))];
    // The template changed after dc1's task was created.
    w.task["spec"]["template"]["jobs"][0]["command"] = json!("cleanup");
    let (_, obj) = &applied(&w.run())[0];
    assert_eq!(obj["spec"]["jobs"][0]["command"], "flush");
    assert_eq!(obj["spec"]["datacenter"]["name"], "dc1");
    assert!(obj.get("status").is_none());
    assert!(
        obj["metadata"]["labels"]
            .get("k8ssandra.io/policy")
            .is_none(),
        "host labels are the host's"
    );
    assert_eq!(obj["metadata"]["labels"][TASK_NAME_LABEL], "t");
}

#[test]
fn ttl_deletes_the_finished_task_when_due() {
    let mut w = World::new(task(json!({})));
    w.children = both_complete();
    w.step();
    w.now = 1_699_999_320_000 + 86_400_000;
    let plan = w.run();
    assert_eq!(plan.delete.len(), 1);
    let d = &plan.delete[0];
    assert_eq!(
        (
            d.kind.as_str(),
            d.namespace.as_str(),
            d.name.as_str(),
            d.cluster.as_str()
        ),
        ("K8ssandraTask", NS, "t", "")
    );
    assert!(reasons(&plan).contains(&"TTLExpired".to_string()));

    // Not while a cluster with one of its CassandraTasks is unreachable.
    w.set_unreachable("B");
    w.children.retain(|c| c.cluster != "B");
    let plan = w.run();
    assert!(plan.delete.is_empty());
    assert!(reasons(&plan).contains(&"DeletionDeferred".to_string()));
}

#[test]
fn ttl_zero_keeps_the_task_and_a_custom_ttl_is_used() {
    let mut t = task(json!({}));
    t["spec"]["template"]["ttlSecondsAfterFinished"] = json!(0);
    let mut w = World::new(t);
    w.children = both_complete();
    w.step();
    w.now += 10 * 86_400_000;
    let plan = w.run();
    assert!(plan.delete.is_empty());
    assert_eq!(plan.requeue_after_ms, None);

    w.task["spec"]["template"]["ttlSecondsAfterFinished"] = json!(60);
    w.now = 1_699_999_320_000 + 59_000;
    assert_eq!(w.run().requeue_after_ms, Some(1_000));
    w.now += 1_000;
    assert_eq!(w.run().delete.len(), 1);
}

#[test]
fn a_finished_task_is_not_re_evaluated() {
    let mut w = World::new(task(json!({})));
    w.children = both_complete();
    w.step();
    w.kc = None;
    let plan = w.run();
    assert!(plan.status.is_none(), "Complete stays, no Invalid");
    assert_eq!(plan.apply.len(), 2, "the CassandraTasks stay until the TTL");
}

#[test]
fn transition_times_are_kept_while_a_condition_holds() {
    let mut w = World::new(task(json!({})));
    w.step();
    let first = w.task["status"].clone();
    w.now += 60_000;
    w.children = vec![child("", NS, "dc1", running("2023-11-14T22:00:00Z"))];
    let st = status(&w.step());
    let t = |s: &Value, c: &str| {
        s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["type"] == c)
            .unwrap()["lastTransitionTime"]
            .clone()
    };
    assert_eq!(t(&first, "Running"), t(&st, "Running"));
    assert_eq!(t(&first, "Invalid"), t(&st, "Invalid"));
}

#[test]
fn odd_status_fields_do_not_hide_the_conditions() {
    let mut w = World::new(task(json!({})));
    let mut st = complete("2023-11-14T22:00:00Z", "2023-11-14T22:01:00Z", 1);
    st["active"] = json!("not a number");
    w.children = vec![child("", NS, "dc1", st)];
    assert_eq!(applied_names(&w.run()), vec!["/ns/t-dc1", "B/other/t-dc2"]);
}

#[test]
fn cluster_namespace_defaults_to_the_tasks() {
    let mut k = kc();
    k["metadata"]["namespace"] = json!("elsewhere");
    let mut w = World::new(task(json!({})));
    w.kc = Some(k);
    let c = condition(&status(&w.run()), "Invalid").unwrap();
    assert!(c.2.contains("ns/demo"), "{}", c.2);
}

// --- validate ---

fn fields(v: Vec<k8ssandra_policy_sdk::Violation>) -> Vec<String> {
    v.into_iter().map(|v| v.field).collect()
}

fn check(t: Value) -> Vec<String> {
    fields(P::validate(t.to_string(), None))
}

#[test]
fn validate_accepts_a_plain_task() {
    assert!(check(task(json!({}))).is_empty());
    assert!(
        check(task(
            json!({"dcConcurrencyPolicy": "Allow", "datacenters": ["dc1"]})
        ))
        .is_empty()
    );
}

#[test]
fn validate_names_the_fields() {
    let mut t = task(json!({}));
    t["spec"].as_object_mut().unwrap().remove("cluster");
    assert_eq!(check(t), vec!["spec.cluster"]);

    assert_eq!(
        check(task(json!({"cluster": {"name": ""}}))),
        vec!["spec.cluster.name"]
    );
    assert_eq!(
        check(task(json!({"cluster": {"name": "demo", "namespace": "x"}}))),
        vec!["spec.cluster.namespace"]
    );
    assert!(check(task(json!({"cluster": {"name": "demo", "namespace": NS}}))).is_empty());
    assert_eq!(
        check(task(json!({"datacenters": ["dc1", "", "dc1"]}))),
        vec!["spec.datacenters[1]", "spec.datacenters[2]"]
    );
    assert_eq!(
        check(task(json!({"dcConcurrencyPolicy": "Replace"}))),
        vec!["spec.dcConcurrencyPolicy"]
    );

    let mut t = task(json!({}));
    t["spec"].as_object_mut().unwrap().remove("template");
    assert_eq!(check(t), vec!["spec.template"]);
    assert_eq!(
        check(task(json!({"template": {}}))),
        vec!["spec.template.jobs"]
    );
    assert_eq!(
        check(task(json!({"template": {"jobs": [
            {"name": "a", "command": "flush"},
            {"name": "a", "command": "cleanup"},
            {"name": "r", "command": "replacenode", "args": {"pod_name": "p"}},
        ]}}))),
        vec![
            "spec.template.jobs[1].name",
            "spec.template.jobs[2].command"
        ]
    );
    assert_eq!(
        check(task(
            json!({"template": {"jobs": [{"name": "a", "command": "flush"}], "ttlSecondsAfterFinished": -1, "retries": -2}})
        )),
        vec![
            "spec.template.ttlSecondsAfterFinished",
            "spec.template.retries"
        ]
    );
    let mut t = task(json!({}));
    t["metadata"]["name"] = json!("x".repeat(64));
    assert_eq!(check(t), vec!["metadata.name"]);

    // No spec at all: every required field named, no parse error.
    let mut t = task(json!({}));
    t.as_object_mut().unwrap().remove("spec");
    assert_eq!(check(t), vec!["spec.cluster", "spec.template"]);
}

#[test]
fn validate_update_keeps_the_run_immutable() {
    let old = task(json!({}));
    let upd = |f: &dyn Fn(&mut Value)| {
        let mut n = old.clone();
        f(&mut n);
        fields(P::validate(n.to_string(), Some(old.to_string())))
    };
    assert!(upd(&|_| {}).is_empty());
    assert!(upd(&|n| n["spec"]["template"]["ttlSecondsAfterFinished"] = json!(5)).is_empty());
    assert_eq!(
        upd(&|n| n["spec"]["template"]["jobs"][0]["command"] = json!("cleanup")),
        vec!["spec.template"]
    );
    assert_eq!(
        upd(&|n| n["spec"]["datacenters"] = json!(["dc1"])),
        vec!["spec.datacenters"]
    );
    assert_eq!(
        upd(&|n| n["spec"]["cluster"]["name"] = json!("other")),
        vec!["spec.cluster"]
    );
    assert_eq!(
        upd(&|n| n["spec"]["dcConcurrencyPolicy"] = json!("Allow")),
        vec!["spec.dcConcurrencyPolicy"]
    );
    // Forbid spelled out equals the default.
    assert!(upd(&|n| n["spec"]["dcConcurrencyPolicy"] = json!("Forbid")).is_empty());
}

#[test]
fn reconcile_reports_a_parent_that_does_not_parse() {
    let mut w = World::new(task(json!({})));
    w.task["spec"]["datacenters"] = json!("dc1");
    let err = P::reconcile(w.snapshot()).unwrap_err();
    assert!(err.message.contains("does not parse"), "{}", err.message);
}
