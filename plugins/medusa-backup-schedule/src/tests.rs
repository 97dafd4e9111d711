use k8ssandra_policy_sdk::{EventType, Object, Plan, Policy, Snapshot};
use serde_json::{Value, json};

use crate::MedusaBackupSchedulePolicy;
use crate::decide::reconcile;

// 2026-01-05T12:00:00Z
const T0: u64 = 1_767_614_400_000;
const MIN: u64 = 60_000;

fn schedule(extra: Value, status: Value) -> Value {
    let mut spec = json!({
        "cronSchedule": "* * * * *",
        "backupSpec": {"cassandraDatacenter": "dc1", "backupType": "full"},
    });
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    json!({
        "apiVersion": "medusa.k8ssandra.io/v1alpha1", "kind": "MedusaBackupSchedule",
        "metadata": {"name": "nightly", "namespace": "ns",
            "creationTimestamp": "2026-01-05T11:59:10Z"},
        "spec": spec,
        "status": status,
    })
}

fn job(at: u64, status: Value) -> Object {
    Object {
        cluster: String::new(),
        json: json!({
            "apiVersion": "medusa.k8ssandra.io/v1alpha1", "kind": "MedusaBackupJob",
            "metadata": {"name": format!("nightly-{}", at / 1000), "namespace": "ns"},
            "spec": {"cassandraDatacenter": "dc1", "backupType": "full"},
            "status": status,
        })
        .to_string(),
    }
}

fn finished(ok: bool) -> Value {
    if ok {
        json!({"startTime": "2026-01-05T12:00:00Z", "finishTime": "2026-01-05T12:00:20Z", "finished": ["p0"]})
    } else {
        json!({"startTime": "2026-01-05T12:00:00Z", "finishTime": "2026-01-05T12:00:20Z", "failed": ["p0"]})
    }
}

fn running() -> Value {
    json!({"startTime": "2026-01-05T12:00:00Z", "inProgress": ["p0"]})
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

fn applied(p: &Plan) -> Vec<Value> {
    p.apply
        .iter()
        .map(|o| serde_json::from_str(&o.json).unwrap())
        .collect()
}

fn names(p: &Plan) -> Vec<String> {
    let mut v: Vec<String> = applied(p)
        .iter()
        .map(|v| v["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

fn status(p: &Plan) -> Value {
    serde_json::from_str(p.status.as_deref().unwrap()).unwrap()
}

fn cond<'a>(st: &'a Value, t: &str) -> &'a Value {
    st["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == t)
        .unwrap()
}

#[test]
fn a_due_run_creates_a_backup_job_from_the_backup_spec() {
    let p = run(schedule(json!({}), json!({})), T0 + 1_000, vec![]);
    let a = applied(&p);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0]["kind"], "MedusaBackupJob");
    assert_eq!(a[0]["metadata"]["name"], "nightly-1767614400");
    assert_eq!(
        a[0]["spec"],
        json!({"cassandraDatacenter": "dc1", "backupType": "full"})
    );
    let st = status(&p);
    assert_eq!(st["lastExecution"], "2026-01-05T12:00:00Z");
    assert_eq!(st["nextSchedule"], "2026-01-05T12:01:00Z");
    assert_eq!(cond(&st, "Valid")["status"], "True");
    assert_eq!(p.events.len(), 1);
    assert_eq!(p.events[0].reason, "RunCreated");
    assert_eq!(p.requeue_after_ms, Some(59_000));
}

#[test]
fn purge_creates_a_purge_task() {
    let p = run(
        schedule(json!({"operationType": "purge"}), json!({})),
        T0 + 1_000,
        vec![],
    );
    let a = applied(&p);
    assert_eq!(a[0]["kind"], "MedusaTask");
    assert_eq!(
        a[0]["spec"],
        json!({"operation": "purge", "cassandraDatacenter": "dc1"})
    );
}

#[test]
fn forbid_is_the_default_and_waits_for_the_running_backup() {
    let st = json!({"lastExecution": "2026-01-05T12:00:00Z"});
    let p = run(
        schedule(json!({}), st.clone()),
        T0 + MIN + 5_000,
        vec![job(T0, running())],
    );
    assert_eq!(names(&p), ["nightly-1767614400"]);
    let s = status(&p);
    assert_eq!(s["lastExecution"], "2026-01-05T12:00:00Z");
    assert_eq!(cond(&s, "Waiting")["status"], "True");
    assert!(
        cond(&s, "Waiting")["message"]
            .as_str()
            .unwrap()
            .contains("nightly-1767614400")
    );
    // Once it finished, the owed run starts.
    let p = run(
        schedule(json!({}), st.clone()),
        T0 + MIN + 30_000,
        vec![job(T0, finished(true))],
    );
    assert_eq!(names(&p), ["nightly-1767614400", "nightly-1767614460"]);
    // Allow overlaps.
    let p = run(
        schedule(json!({"concurrencyPolicy": "Allow"}), st),
        T0 + MIN + 5_000,
        vec![job(T0, running())],
    );
    assert_eq!(names(&p), ["nightly-1767614400", "nightly-1767614460"]);
}

#[test]
fn history_limits_delete_old_finished_jobs_only() {
    let mut children: Vec<Object> = (0..4).map(|i| job(T0 + i * MIN, finished(true))).collect();
    children.push(job(T0 + 4 * MIN, finished(false)));
    children.push(job(T0 + 5 * MIN, finished(false)));
    children.push(job(T0 + 6 * MIN, running()));
    let st = json!({"lastExecution": "2026-01-05T12:06:00Z"});
    let p = run(
        schedule(
            json!({"successfulJobsHistoryLimit": 2, "concurrencyPolicy": "Allow"}),
            st,
        ),
        T0 + 6 * MIN + 10_000,
        children,
    );
    // Two newest successful, the newest failed (default 1), the running one.
    assert_eq!(
        names(&p),
        [
            "nightly-1767614520",
            "nightly-1767614580",
            "nightly-1767614700",
            "nightly-1767614760"
        ]
    );
    assert!(p.delete.is_empty(), "pruning is the host's, by omission");
}

#[test]
fn disabled_creates_nothing_and_owes_nothing() {
    let p = run(
        schedule(
            json!({"disabled": true}),
            json!({"lastExecution": "2026-01-05T12:00:00Z"}),
        ),
        T0 + 5 * MIN + 1_000,
        vec![],
    );
    assert!(p.apply.is_empty());
    assert_eq!(status(&p)["lastExecution"], "2026-01-05T12:05:00Z");
}

#[test]
fn time_zone_and_deadline() {
    // 02:00 in Berlin is 01:00 UTC in winter.
    let st = json!({"lastExecution": "2026-01-04T01:00:00Z"});
    let p = run(
        schedule(
            json!({"cronSchedule": "0 2 * * *", "timeZone": "Europe/Berlin"}),
            st.clone(),
        ),
        at_utc("2026-01-05T01:00:30Z"),
        vec![],
    );
    assert_eq!(names(&p), ["nightly-1767574800"]);
    // Two hours late with a deadline of an hour: skipped, not owed.
    let p = run(
        schedule(
            json!({"cronSchedule": "0 2 * * *", "timeZone": "Europe/Berlin", "startingDeadlineSeconds": 3600}),
            st,
        ),
        at_utc("2026-01-05T03:00:00Z"),
        vec![],
    );
    assert!(p.apply.is_empty());
    assert_eq!(status(&p)["nextSchedule"], "2026-01-06T01:00:00Z");
}

fn at_utc(s: &str) -> u64 {
    let t: k8ssandra_policy_sdk::k8s_openapi::jiff::Timestamp = s.parse().unwrap();
    t.as_millisecond() as u64
}

#[test]
fn a_bad_spec_is_a_condition_naming_the_field_and_nothing_changes() {
    let old = job(T0, finished(true));
    for (extra, field) in [
        (
            json!({"cronSchedule": "0 25 * * *"}),
            "spec.cronSchedule: hour field `25`",
        ),
        (
            json!({"timeZone": "Moon/Base"}),
            "spec.timeZone: `Moon/Base` is not a known IANA time zone",
        ),
        (
            json!({"concurrencyPolicy": "Replace"}),
            "spec.concurrencyPolicy: `Replace` is not a concurrency policy of this kind; use Allow or Forbid",
        ),
        (
            json!({"failedJobsHistoryLimit": -1}),
            "spec.failedJobsHistoryLimit: -1 is negative",
        ),
    ] {
        let p = run(
            schedule(
                extra.clone(),
                json!({"lastExecution": "2026-01-05T12:00:00Z"}),
            ),
            T0 + 10 * MIN,
            vec![old.clone()],
        );
        assert_eq!(names(&p), ["nightly-1767614400"], "{extra}");
        let s = status(&p);
        assert_eq!(s["lastExecution"], "2026-01-05T12:00:00Z");
        let valid = cond(&s, "Valid");
        assert_eq!(valid["status"], "False");
        assert!(
            valid["message"].as_str().unwrap().starts_with(field),
            "{valid}"
        );
        assert!(matches!(p.events[0].event_type, EventType::Warning));
        let v = MedusaBackupSchedulePolicy::validate(schedule(extra, json!({})).to_string(), None);
        assert_eq!(v.len(), 1);
        assert!(field.starts_with(&v[0].field), "{} / {field}", v[0].field);
    }
}

/// The schedule the k8ssandra-cluster policy puts beside each datacenter with Medusa.
#[test]
fn the_clusters_purge_schedule_runs_a_purge_task_each_midnight() {
    let purge = json!({
        "apiVersion": "medusa.k8ssandra.io/v1alpha1", "kind": "MedusaBackupSchedule",
        "metadata": {"name": "demo-dc1-medusa-purge", "namespace": "ns",
            "creationTimestamp": "2026-01-05T11:59:10Z"},
        "spec": {"cronSchedule": "0 0 * * *", "operationType": "purge",
            "backupSpec": {"cassandraDatacenter": "dc1"}},
    });
    assert!(MedusaBackupSchedulePolicy::validate(purge.to_string(), None).is_empty());

    let p = run(purge.clone(), T0, vec![]);
    assert!(p.apply.is_empty(), "nothing before midnight");
    assert_eq!(status(&p)["nextSchedule"], "2026-01-06T00:00:00Z");

    let midnight = at_utc("2026-01-06T00:00:00Z");
    let p = run(purge.clone(), midnight + 5_000, vec![]);
    let a = applied(&p);
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0]["kind"], "MedusaTask");
    assert_eq!(a[0]["metadata"]["name"], "demo-dc1-medusa-purge-1767657600");
    assert_eq!(
        a[0]["spec"],
        json!({"operation": "purge", "cassandraDatacenter": "dc1"})
    );

    // A purge still running the next midnight holds the next one back (Forbid).
    let mut task = a[0].clone();
    task["status"] = json!({"startTime": "2026-01-06T00:00:05Z", "inProgress": ["p0"]});
    let mut later = purge;
    later["status"] = json!({"lastExecution": "2026-01-06T00:00:00Z"});
    let p = run(
        later,
        at_utc("2026-01-07T00:00:01Z"),
        vec![Object {
            cluster: String::new(),
            json: task.to_string(),
        }],
    );
    assert_eq!(names(&p), ["demo-dc1-medusa-purge-1767657600"]);
    assert_eq!(cond(&status(&p), "Waiting")["status"], "True");
}
