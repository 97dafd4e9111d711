//! The cassandra-task policy end to end: the real operator binary with the
//! cassandra-datacenter and cassandra-task policies, a testenv cluster and the Cassandra
//! simulator. A three-rack datacenter gets a rolling restart, a cleanup queued behind it
//! (concurrencyPolicy Forbid), and a rebuild that fails on every node.

use crate::support;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result};
use cassandra_sim::{
    ConfigUpdate, FaultRequest, FaultTarget, HistoryEntry, SimHandle, SimOptions, Simulator,
};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DynamicObject, GroupVersionKind, ListParams};
use kube::discovery::pinned_kind;
use kube::{Api, Client};
use serde_json::Value;

use k8ssandra_testenv::{TestEnv, TestEnvOptions};
use support::{
    Operator, apply_yaml, create_namespace, dc_ready, install_crds, normal_nodes, plugin_dir, tail,
    uids, wait_crd, wait_for, write_kubeconfig,
};

const NS: &str = "tasks";
const PODS: [&str; 3] = [
    "demo-dc1-r1-sts-0",
    "demo-dc1-r2-sts-0",
    "demo-dc1-r3-sts-0",
];

const DC: &str = r#"
apiVersion: cassandra.datastax.com/v1beta1
kind: CassandraDatacenter
metadata:
  name: dc1
spec:
  clusterName: demo
  serverType: cassandra
  serverVersion: "4.1.5"
  size: 3
  racks:
    - name: r1
      zone: zone-a
    - name: r2
      zone: zone-b
    - name: r3
      zone: zone-c
  storageConfig:
    cassandraDataVolumeClaimSpec:
      storageClassName: standard
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 1Gi
"#;

fn task(name: &str, ttl: u32, extra: &str, jobs: &str) -> String {
    format!(
        r#"
apiVersion: control.k8ssandra.io/v1alpha1
kind: CassandraTask
metadata:
  name: {name}
spec:
  datacenter:
    name: dc1
  ttlSecondsAfterFinished: {ttl}
{extra}
  jobs:
{jobs}
"#
    )
}

async fn status(tasks: &Api<DynamicObject>, name: &str) -> Option<Value> {
    tasks
        .get(name)
        .await
        .ok()
        .and_then(|t| t.data.get("status").cloned())
}

fn condition(status: &Value, t: &str) -> bool {
    status["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == t && c["status"] == "True"))
}

/// Waits until task `name` has condition `t` True; returns its status. `what` names the wait
/// in the timeout error.
async fn task_condition(
    tasks: &Api<DynamicObject>,
    name: &str,
    t: &str,
    what: &str,
    timeout: Duration,
) -> Result<Value> {
    wait_for(what, timeout, || async {
        let s = status(tasks, name).await?;
        condition(&s, t).then_some(s)
    })
    .await
}

fn pod_of(h: &HistoryEntry) -> Option<String> {
    h.pod.as_ref().map(|p| p.name.clone())
}

async fn setup(
    env: &TestEnv,
    tmp: &std::path::Path,
) -> Result<(
    Client,
    SimHandle,
    Operator,
    Api<DynamicObject>,
    Api<DynamicObject>,
)> {
    let client = env.cluster(0).client();
    install_crds(&client, &k8ssandra_api::all_crds_yaml()).await?;
    wait_crd(&client, "control.k8ssandra.io", "v1alpha1", "CassandraTask").await?;
    create_namespace(&client, NS).await?;
    let mut opts = SimOptions::default();
    opts.config.bootstrap_delay = Duration::from_millis(300);
    opts.config.job_duration = Duration::from_millis(200);
    let sim = Simulator::start(
        opts,
        vec![(env.cluster(0).context_name().to_string(), client.clone())],
    )
    .await?;
    let kubeconfig = write_kubeconfig(tmp, env.cluster(0))?;
    let plugins = plugin_dir(
        &tmp.join("plugins"),
        &["cassandra-datacenter", "cassandra-task"],
    )?;
    let op = Operator::start(&kubeconfig, &plugins, &["--resync-seconds", "5"])?;
    op.wait_ready(Duration::from_secs(60)).await?;
    let api = |group: &str, version: &str, kind: &str| {
        let client = client.clone();
        let gvk = GroupVersionKind::gvk(group, version, kind);
        async move {
            let (ar, _) = pinned_kind(&client, &gvk).await?;
            anyhow::Ok(Api::<DynamicObject>::namespaced_with(client, NS, &ar))
        }
    };
    let dcs = api("cassandra.datastax.com", "v1beta1", "CassandraDatacenter").await?;
    let tasks = api("control.k8ssandra.io", "v1alpha1", "CassandraTask").await?;
    Ok((client, sim, op, dcs, tasks))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_cleanup_and_a_failing_rebuild() -> Result<()> {
    let env = TestEnv::start(TestEnvOptions {
        clusters: 1,
        nodes_per_cluster: 6,
        ..Default::default()
    })
    .await?;
    let tmp = tempfile::tempdir()?;
    let (client, sim, mut op, dcs, tasks) = setup(&env, tmp.path()).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);

    apply_yaml(&client, DC, NS).await?;
    wait_for(
        "dc1 Ready with 3 nodes",
        Duration::from_secs(180),
        || async { (dc_ready(&dcs, "dc1").await && normal_nodes(&sim, "demo") == 3).then_some(()) },
    )
    .await
    .map_err(|e| e.context(tail(&op.log_text(), 60)))?;
    let before = uids(&pods).await?;
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        PODS.iter().collect::<Vec<_>>()
    );
    let mark = sim.history().last().map_or(0, |h| h.seq);

    // A restart, and a cleanup created while it runs: Forbid makes the cleanup wait.
    apply_yaml(
        &client,
        &task(
            "restart",
            0,
            "",
            "    - name: restart-all\n      command: restart",
        ),
        NS,
    )
    .await?;
    wait_for("restart task started", Duration::from_secs(60), || async {
        status(&tasks, "restart")
            .await?
            .get("startTime")
            .map(|_| ())
    })
    .await
    .map_err(|e| e.context(tail(&op.log_text(), 60)))?;
    apply_yaml(
        &client,
        &task(
            "cleanup",
            3,
            "",
            "    - name: cleanup-all\n      command: cleanup\n      args:\n        keyspace_name: system_distributed",
        ),
        NS,
    )
    .await?;
    let mut max_down = 0;
    // Every uid each pod name had, sampled; the original ones first.
    let seen_uids: RefCell<BTreeMap<String, BTreeSet<String>>> = RefCell::new(
        before
            .iter()
            .map(|(n, u)| (n.clone(), BTreeSet::from([u.clone()])))
            .collect(),
    );
    let cleanup_status: RefCell<Option<Value>> = RefCell::default();
    let restart = wait_for("restart task Complete", Duration::from_secs(240), || {
        max_down = max_down.max(3 - normal_nodes(&sim, "demo").min(3));
        let (tasks, pods, seen, cleanup_status) = (&tasks, &pods, &seen_uids, &cleanup_status);
        async move {
            if let Ok(u) = uids(pods).await {
                for (name, uid) in u {
                    seen.borrow_mut().entry(name).or_default().insert(uid);
                }
            }
            if let Some(s) = status(tasks, "cleanup").await {
                cleanup_status.borrow_mut().get_or_insert(s);
            }
            let s = status(tasks, "restart").await?;
            condition(&s, "Complete").then_some(s)
        }
    })
    .await
    .map_err(|e| {
        e.context(format!(
            "violations: {:?}\nlog: {}",
            sim.violations(),
            tail(&op.log_text(), 60)
        ))
    })?;
    assert!(max_down <= 1, "{max_down} nodes were down at once");
    assert_eq!(restart["succeeded"], 3, "{restart}");
    for pod in PODS {
        assert_eq!(
            restart["podStatuses"][pod]["status"], "COMPLETED",
            "{restart}"
        );
    }
    let after = uids(&pods).await?;
    let seen_uids = seen_uids.into_inner();
    for pod in PODS {
        assert_ne!(before[pod], after[pod], "{pod} was not recreated");
        assert_eq!(
            seen_uids[pod].len(),
            2,
            "{pod} had uids {:?}: recreated more than once",
            seen_uids[pod]
        );
    }
    // Recreated pods are seeds again (three nodes: every node is a seed), so the next
    // restart still finds a seed up.
    for p in pods.list(&ListParams::default()).await?.items {
        let labels = p.metadata.labels.unwrap_or_default();
        assert_eq!(
            labels
                .get("cassandra.datastax.com/seed-node")
                .map(String::as_str),
            Some("true"),
            "{:?} lost its seed label",
            p.metadata.name
        );
    }
    // The simulator's history: each pod went away once and its new pod started once, one
    // node at a time (a pod is removed only after the previous one started again).
    let history: Vec<HistoryEntry> = sim.history().into_iter().filter(|h| h.seq > mark).collect();
    let mut order: Vec<(String, String)> = Vec::new();
    for h in &history {
        if (h.action == "pod_removed"
            || h.action == "drain"
            || (h.action == "start" && h.outcome == "accepted"))
            && let Some(p) = pod_of(h)
        {
            order.push((h.action.clone(), p));
        }
    }
    let removed: Vec<&String> = order
        .iter()
        .filter(|(a, _)| a == "pod_removed")
        .map(|(_, p)| p)
        .collect();
    assert_eq!(removed, PODS.iter().collect::<Vec<_>>(), "{order:?}");
    for pod in PODS {
        let starts = order
            .iter()
            .filter(|(a, p)| a == "start" && p == pod)
            .count();
        assert_eq!(starts, 1, "{pod} started {starts} times: {order:?}");
    }
    let mut down: Option<&String> = None;
    for (action, pod) in &order {
        if action == "pod_removed" {
            assert!(
                down.is_none(),
                "{pod} went down while {down:?} was: {order:?}"
            );
            down = Some(pod);
        } else if action == "start" && down == Some(pod) {
            down = None;
        }
    }
    // Each node was drained while its old pod ran, never after its new pod started: a
    // drain that reaches the new node leaves it out of service for good.
    for pod in PODS {
        let at = |what: &str| order.iter().position(|(a, p)| a == what && p == pod);
        let drains = order
            .iter()
            .filter(|(a, p)| a == "drain" && p == pod)
            .count();
        assert_eq!(drains, 1, "{pod} drained {drains} times: {order:?}");
        assert!(
            at("drain") < at("pod_removed"),
            "{pod} removed before its drain: {order:?}"
        );
    }
    // The cleanup never ran beside the restart.
    let waiting = cleanup_status
        .into_inner()
        .context("the cleanup task got a status while waiting")?;
    assert_eq!(
        waiting["conditions"][0]["reason"], "WaitingForTask",
        "{waiting}"
    );
    let cleanup = task_condition(
        &tasks,
        "cleanup",
        "Complete",
        "cleanup task Complete",
        Duration::from_secs(120),
    )
    .await
    .map_err(|e| e.context(tail(&op.log_text(), 60)))?;
    assert_eq!(cleanup["succeeded"], 3, "{cleanup}");
    for pod in PODS {
        assert_eq!(
            cleanup["podStatuses"][pod]["status"], "COMPLETED",
            "{cleanup}"
        );
    }
    let restart_done = restart["completionTime"].as_str().unwrap_or_default();
    let cleanup_start = cleanup["startTime"].as_str().unwrap_or_default();
    assert!(
        cleanup_start >= restart_done,
        "cleanup started at {cleanup_start}, before the restart ended at {restart_done}"
    );
    let cleanups: BTreeSet<String> = sim
        .history()
        .into_iter()
        .filter(|h| h.seq > mark && h.action == "job")
        .filter(|h| {
            h.job_type
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case("cleanup"))
        })
        .filter(|h| h.outcome == "completed")
        .filter_map(|h| pod_of(&h))
        .collect();
    assert_eq!(cleanups, PODS.iter().map(|p| p.to_string()).collect());
    // ttlSecondsAfterFinished: 3 → the finished cleanup task is deleted; ttl 0 keeps one.
    wait_for(
        "the cleanup task deleted after its TTL",
        Duration::from_secs(60),
        || async { tasks.get_opt("cleanup").await.ok()?.is_none().then_some(()) },
    )
    .await?;
    assert!(tasks.get_opt("restart").await?.is_some(), "ttl 0 keeps it");

    // A node loses its data; a replacenode task has the datacenter policy recreate its pod
    // and volume and start it with the old address as replace_ip.
    let victim = PODS[1];
    let old_ip = pods
        .get(victim)
        .await?
        .status
        .and_then(|s| s.pod_ip)
        .context("victim pod IP")?;
    let mark = sim.history().last().map_or(0, |h| h.seq);
    sim.set_fault(&FaultRequest {
        target: FaultTarget::pod(victim),
        fault: None,
        clear: false,
        wipe: true,
    })?;
    apply_yaml(
        &client,
        &task(
            "replace",
            0,
            "",
            &format!(
                "    - name: replace\n      command: replacenode\n      args:\n        pod_name: {victim}"
            ),
        ),
        NS,
    )
    .await?;
    let replaced = task_condition(
        &tasks,
        "replace",
        "Complete",
        "replacenode task Complete",
        Duration::from_secs(180),
    )
    .await;
    let replaced = match replaced {
        Ok(s) => s,
        Err(e) => {
            let st = status(&tasks, "replace").await;
            let dc = dcs.get("dc1").await.ok().map(|d| d.data["status"].clone());
            let _ = std::fs::write(
                std::env::temp_dir().join("ct-op-replace.log"),
                op.log_text(),
            );
            return Err(e.context(format!(
                "task: {st:?}\ndc: {dc:?}\nviolations: {:?}",
                sim.violations()
            )));
        }
    };
    assert_eq!(
        replaced["podStatuses"][victim]["status"], "COMPLETED",
        "{replaced}"
    );
    let replace_starts: Vec<HistoryEntry> = sim
        .history()
        .into_iter()
        .filter(|h| h.seq > mark && h.action == "start" && h.outcome == "accepted")
        .collect();
    assert_eq!(replace_starts.len(), 1, "{replace_starts:?}");
    assert_eq!(pod_of(&replace_starts[0]).as_deref(), Some(victim));
    assert_eq!(
        replace_starts[0].replace_ip.as_deref(),
        Some(old_ip.as_str())
    );
    wait_for(
        "dc1 Ready after the replacement",
        Duration::from_secs(60),
        || async { (dc_ready(&dcs, "dc1").await && normal_nodes(&sim, "demo") == 3).then_some(()) },
    )
    .await?;

    // The operator restarts while cleanups run: the new one follows the jobs recorded in
    // the task's status instead of starting them again.
    sim.update_config(&ConfigUpdate {
        job_duration_ms: Some(4000),
        ..Default::default()
    });
    let mark = sim.history().last().map_or(0, |h| h.seq);
    apply_yaml(
        &client,
        &task(
            "cleanup-again",
            0,
            "",
            "    - name: cleanup-all\n      command: cleanup",
        ),
        NS,
    )
    .await?;
    wait_for(
        "a job id recorded for every pod",
        Duration::from_secs(60),
        || async {
            let s = status(&tasks, "cleanup-again").await?;
            PODS.iter()
                .all(|p| s["podStatuses"][*p]["jobId"].is_string())
                .then_some(())
        },
    )
    .await
    .map_err(|e| e.context(tail(&op.log_text(), 60)))?;
    drop(op);
    op = Operator::start(
        &tmp.path().join("kubeconfig"),
        &tmp.path().join("plugins"),
        &["--resync-seconds", "5"],
    )?;
    op.wait_ready(Duration::from_secs(60)).await?;
    let again = task_condition(
        &tasks,
        "cleanup-again",
        "Complete",
        "cleanup-again Complete after the operator restart",
        Duration::from_secs(60),
    )
    .await;
    let again = match again {
        Ok(s) => s,
        Err(e) => {
            let st = status(&tasks, "cleanup-again").await;
            let _ = std::fs::write(std::env::temp_dir().join("ct-op2.log"), op.log_text());
            return Err(e.context(format!("status: {st:?}\nlog: {}", tail(&op.log_text(), 60))));
        }
    };
    assert_eq!(again["succeeded"], 3, "{again}");
    let jobs: Vec<String> = sim
        .history()
        .into_iter()
        .filter(|h| h.seq > mark && h.action == "job")
        .filter(|h| {
            h.job_type
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case("cleanup"))
        })
        .filter_map(|h| pod_of(&h))
        .collect();
    let mut sorted = jobs.clone();
    sorted.sort();
    assert_eq!(
        sorted, PODS,
        "one cleanup job per pod, none run twice: {jobs:?}"
    );
    sim.update_config(&ConfigUpdate {
        job_duration_ms: Some(200),
        ..Default::default()
    });

    // A rebuild from a datacenter that does not exist fails on each node, is retried once
    // (retries: 1), and fails the task.
    let mark = sim.history().last().map_or(0, |h| h.seq);
    apply_yaml(
        &client,
        &task(
            "rebuild",
            0,
            "  retries: 1",
            "    - name: rebuild\n      command: rebuild\n      args:\n        source_datacenter: nowhere",
        ),
        NS,
    )
    .await?;
    let failed = task_condition(
        &tasks,
        "rebuild",
        "Failed",
        "rebuild task Failed",
        Duration::from_secs(120),
    )
    .await;
    let failed = match failed {
        Ok(s) => s,
        Err(e) => {
            let st = status(&tasks, "rebuild").await;
            let _ = std::fs::write(
                std::env::temp_dir().join("ct-op-rebuild.log"),
                op.log_text(),
            );
            let labels: Vec<_> = pods
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .map(|p| (p.metadata.name, p.metadata.labels))
                .collect();
            let dc = dcs.get("dc1").await.ok().map(|d| d.data);
            return Err(e.context(format!("task: {st:?}\npods: {labels:?}\ndc: {dc:?}")));
        }
    };
    let errored: Vec<&str> = PODS
        .iter()
        .copied()
        .filter(|p| failed["podStatuses"][*p]["status"] == "ERROR")
        .collect();
    assert!(!errored.is_empty(), "{failed}");
    for pod in &errored {
        let st = &failed["podStatuses"][*pod];
        assert_eq!(st["retries"], 1, "{failed}");
        assert!(
            st["error"]
                .as_str()
                .is_some_and(|e| e.contains("not a valid datacenter")),
            "{failed}"
        );
        let attempts = sim
            .history()
            .into_iter()
            .filter(|h| h.seq > mark && h.action == "job")
            .filter(|h| {
                h.job_type
                    .as_deref()
                    .is_some_and(|t| t.eq_ignore_ascii_case("rebuild"))
            })
            .filter(|h| pod_of(h).as_deref() == Some(*pod))
            .count();
        assert_eq!(attempts, 2, "{pod}: one attempt and one retry");
    }
    assert!(!condition(&failed, "Complete"));
    assert!(
        sim.violations().is_empty(),
        "violations: {:?}",
        sim.violations()
    );
    Ok(())
}
