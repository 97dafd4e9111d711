use k8ssandra_policy_sdk::{EventType, Object, Plan, Policy, Snapshot};
use serde_json::{Value, json};

use crate::ScheduledTaskPolicy;
use crate::decide::reconcile;

// 2026-01-05T12:00:00Z
const T0: u64 = 1_767_614_400_000;
const MIN: u64 = 60_000;

fn parent(schedule: &str, status: Value) -> Value {
    json!({
        "apiVersion": "control.k8ssandra.io/v1alpha1", "kind": "ScheduledTask",
        "metadata": {"name": "nightly", "namespace": "ns",
            "creationTimestamp": "2026-01-05T11:59:10Z"},
        "spec": {"schedule": schedule, "taskDetails": {
            "name": "cleanup",
            "datacenter": {"name": "dc1", "namespace": "ns"},
            "jobs": [{"name": "c", "command": "cleanup"}],
        }},
        "status": status,
    })
}

fn task(name: &str, conditions: Value) -> Object {
    Object {
        cluster: String::new(),
        json: json!({
            "apiVersion": "control.k8ssandra.io/v1alpha1", "kind": "CassandraTask",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"datacenter": {"name": "dc1"}, "jobs": [{"name": "c", "command": "cleanup"}]},
            "status": {"conditions": conditions},
        })
        .to_string(),
    }
}

fn done(ok: bool) -> Value {
    let t = "2026-01-05T12:00:30Z";
    if ok {
        json!([{"type": "Complete", "status": "True", "reason": "r", "message": "", "lastTransitionTime": t}])
    } else {
        json!([
            {"type": "Complete", "status": "True", "reason": "r", "message": "", "lastTransitionTime": t},
            {"type": "Failed", "status": "True", "reason": "r", "message": "", "lastTransitionTime": t}
        ])
    }
}

fn run(p: Value, now: u64, children: Vec<Object>) -> Plan {
    let mut s = Snapshot::for_parent(Object {
        cluster: String::new(),
        json: p.to_string(),
    });
    s.now_ms = now;
    s.children = children;
    reconcile(&s).unwrap()
}

fn applied_names(p: &Plan) -> Vec<String> {
    let mut v: Vec<String> = p
        .apply
        .iter()
        .map(|o| {
            let v: Value = serde_json::from_str(&o.json).unwrap();
            v["metadata"]["name"].as_str().unwrap().to_string()
        })
        .collect();
    v.sort();
    v
}

fn status(p: &Plan) -> Value {
    serde_json::from_str(p.status.as_deref().unwrap()).unwrap()
}

#[test]
fn nothing_before_the_first_time_then_the_task_on_time() {
    let p = run(parent("* * * * *", json!({})), T0 - 20_000, vec![]);
    assert!(p.apply.is_empty());
    assert_eq!(status(&p), json!({"nextSchedule": "2026-01-05T12:00:00Z"}));
    assert_eq!(p.requeue_after_ms, Some(20_000));

    let p = run(parent("* * * * *", json!({})), T0 + 2_000, vec![]);
    assert_eq!(applied_names(&p), ["cleanup-1767614400"]);
    let created: Value = serde_json::from_str(&p.apply[0].json).unwrap();
    assert_eq!(created["metadata"]["namespace"], "ns");
    assert_eq!(created["spec"]["datacenter"]["name"], "dc1");
    assert_eq!(created["spec"]["jobs"][0]["command"], "cleanup");
    assert_eq!(
        status(&p),
        json!({"lastExecution": "2026-01-05T12:00:00Z", "nextSchedule": "2026-01-05T12:01:00Z"})
    );
    assert_eq!(p.events.len(), 1);
    assert!(matches!(p.events[0].event_type, EventType::Normal));
    assert_eq!(p.requeue_after_ms, Some(58_000));
}

#[test]
fn the_created_task_is_kept_and_not_created_twice() {
    let st = json!({"lastExecution": "2026-01-05T12:00:00Z"});
    let p = run(
        parent("* * * * *", st),
        T0 + 30_000,
        vec![task("cleanup-1767614400", json!([]))],
    );
    assert_eq!(applied_names(&p), ["cleanup-1767614400"]);
    assert!(p.events.is_empty());
}

#[test]
fn history_keeps_three_succeeded_and_one_failed_never_a_running_one() {
    let mut children = Vec::new();
    for i in 0..5u64 {
        children.push(task(
            &format!("cleanup-{}", (T0 + i * MIN) / 1000),
            done(true),
        ));
    }
    children.push(task(
        &format!("cleanup-{}", (T0 + 5 * MIN) / 1000),
        done(false),
    ));
    children.push(task(
        &format!("cleanup-{}", (T0 + 6 * MIN) / 1000),
        done(false),
    ));
    children.push(task(
        &format!("cleanup-{}", (T0 + 7 * MIN) / 1000),
        json!([]),
    ));
    let st = json!({"lastExecution": "2026-01-05T12:07:00Z"});
    let p = run(parent("* * * * *", st), T0 + 7 * MIN + 10_000, children);
    let kept = applied_names(&p);
    assert_eq!(
        kept,
        [
            "cleanup-1767614520",
            "cleanup-1767614580",
            "cleanup-1767614640",
            "cleanup-1767614760",
            "cleanup-1767614820"
        ]
    );
}

#[test]
fn missed_runs_make_one_task() {
    let st = json!({"lastExecution": "2026-01-05T12:00:00Z"});
    let p = run(parent("* * * * *", st), T0 + 90 * MIN + 5_000, vec![]);
    assert_eq!(
        applied_names(&p),
        [format!("cleanup-{}", (T0 + 90 * MIN) / 1000)]
    );
}

#[test]
fn a_bad_schedule_creates_and_deletes_nothing_and_says_why() {
    let p = run(
        parent(
            "61 * * * *",
            json!({"lastExecution": "2026-01-05T12:00:00Z"}),
        ),
        T0 + 10 * MIN,
        vec![task("cleanup-1767614400", done(true))],
    );
    assert_eq!(applied_names(&p), ["cleanup-1767614400"]);
    assert!(p.status.is_none());
    assert!(matches!(p.events[0].event_type, EventType::Warning));
    assert!(
        p.events[0]
            .message
            .contains("spec.schedule: minute field `61`: 61 is out of range 0-59"),
        "{}",
        p.events[0].message
    );
}

#[test]
fn validation_names_the_field() {
    let v = ScheduledTaskPolicy::validate(parent("0 2 * *", json!({})).to_string(), None);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].field, "spec.schedule");
    assert!(v[0].message.contains("has 4 fields"));
    let mut p = parent("@daily", json!({}));
    p["spec"]["taskDetails"]["jobs"] = json!([]);
    let v = ScheduledTaskPolicy::validate(p.to_string(), None);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].field, "spec.taskDetails.jobs");
    assert!(
        ScheduledTaskPolicy::validate(
            parent("CRON_TZ=Europe/Berlin 0 2 * * *", json!({})).to_string(),
            None
        )
        .is_empty()
    );
}
