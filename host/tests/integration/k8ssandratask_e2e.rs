//! A K8ssandraTask end to end across two Kubernetes clusters: the control-plane operator
//! (cluster-0, which is also the data plane of dc1) runs the k8ssandra-cluster and
//! k8ssandra-task policies, every operator runs cassandra-datacenter and cassandra-task,
//! and the Cassandra simulator plays every node. A flush over the whole cluster runs in dc1
//! first and in dc2 only once dc1's CassandraTask is Complete.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use cassandra_sim::{HistoryEntry, SimHandle, SimOptions, Simulator};
use kube::api::{DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::pinned_kind;
use kube::{Api, Client};
use serde_json::{Value, json};

use k8ssandra_testenv::{TestEnv, TestEnvOptions};
use support::{
    Operator, add_client_config, apply_yaml, create_namespace, install_crds, operator_crds,
    wait_crd, wait_for,
};

const NS: &str = "k8ssandra-operator";
const TASK: &str = "flush-all";

/// Two small datacenters: dc1 (2 nodes) beside the control plane, dc2 (1 node) in cluster-1.
const CLUSTER: &str = r#"
apiVersion: k8ssandra.io/v1alpha1
kind: K8ssandraCluster
metadata:
  name: demo
  namespace: k8ssandra-operator
spec:
  cassandra:
    serverVersion: "4.1.5"
    storageConfig:
      cassandraDataVolumeClaimSpec:
        storageClassName: standard
        accessModes: [ReadWriteOnce]
        resources:
          requests:
            storage: 1Gi
    config:
      jvmOptions:
        heapSize: 512M
    datacenters:
      - metadata:
          name: dc1
        size: 2
        racks:
          - name: r1
      - metadata:
          name: dc2
        k8sContext: cluster-1
        size: 1
        racks:
          - name: r1
"#;

const K8SSANDRA_TASK: &str = r#"
apiVersion: control.k8ssandra.io/v1alpha1
kind: K8ssandraTask
metadata:
  name: flush-all
  namespace: k8ssandra-operator
spec:
  cluster:
    name: demo
  template:
    jobs:
      - name: flush
        command: flush
"#;

async fn api(
    client: &Client,
    group: &str,
    version: &str,
    kind: &str,
) -> Result<Api<DynamicObject>> {
    let (ar, _) = pinned_kind(client, &GroupVersionKind::gvk(group, version, kind)).await?;
    Ok(Api::namespaced_with(client.clone(), NS, &ar))
}

fn condition(obj: &Value, t: &str) -> Option<String> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == t)
        .and_then(|c| c["status"].as_str())
        .map(str::to_string)
}

async fn dc_ready(client: &Client, dc: &str) -> bool {
    let Ok(dcs) = api(
        client,
        "cassandra.datastax.com",
        "v1beta1",
        "CassandraDatacenter",
    )
    .await
    else {
        return false;
    };
    let Ok(obj) = dcs.get(dc).await else {
        return false;
    };
    condition(&obj.data, "Ready").as_deref() == Some("True")
        && obj.data.pointer("/status/cassandraOperatorProgress") == Some(&json!("Ready"))
}

/// The FLUSH jobs the simulator ran, by pod name.
fn flushes(sim: &SimHandle) -> BTreeMap<String, Vec<HistoryEntry>> {
    let mut out: BTreeMap<String, Vec<HistoryEntry>> = BTreeMap::new();
    for h in sim.history() {
        if h.action == "job"
            && h.job_type.as_deref() == Some("FLUSH")
            && let Some(pod) = &h.pod
        {
            out.entry(pod.name.clone()).or_default().push(h.clone());
        }
    }
    out
}

/// The last WARN/ERROR lines of each operator, to explain a timeout.
fn operator_logs(operators: &[Operator]) -> String {
    operators
        .iter()
        .map(|o| {
            let l = o.log_text();
            let lines: Vec<&str> = l
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .collect();
            lines[lines.len().saturating_sub(15)..].join("\n")
        })
        .collect::<Vec<_>>()
        .join("\n---\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_runs_datacenter_by_datacenter() -> Result<()> {
    let env = TestEnv::start(TestEnvOptions {
        clusters: 2,
        nodes_per_cluster: 3,
        ..Default::default()
    })
    .await?;
    let (a, b) = (env.cluster(0).client(), env.cluster(1).client());
    let crds = operator_crds()?;
    for c in [&a, &b] {
        install_crds(c, &crds).await?;
        wait_crd(c, "control.k8ssandra.io", "v1alpha1", "CassandraTask").await?;
        create_namespace(c, NS).await?;
    }
    wait_crd(&a, "k8ssandra.io", "v1alpha1", "K8ssandraCluster").await?;
    wait_crd(&a, "control.k8ssandra.io", "v1alpha1", "K8ssandraTask").await?;

    let mut opts = SimOptions::default();
    opts.config.bootstrap_delay = Duration::from_millis(300);
    // Long enough that a CassandraTask created too early in dc2 would overlap dc1's jobs.
    opts.config.job_duration = Duration::from_millis(1500);
    let sim = Simulator::start(
        opts,
        vec![
            (env.cluster(0).context_name().to_string(), a.clone()),
            (env.cluster(1).context_name().to_string(), b.clone()),
        ],
    )
    .await?;

    // cluster-1 registered with the control plane.
    add_client_config(
        &a,
        NS,
        "cluster-1",
        "cluster-1-kubeconfig",
        env.cluster(1).kubeconfig_yaml(),
    )
    .await?;

    let tmp = tempfile::tempdir()?;
    let mut operators = Vec::new();
    let control = [
        "cassandra-datacenter",
        "cassandra-task",
        "k8ssandra-cluster",
        "k8ssandra-task",
    ];
    let data = ["cassandra-datacenter", "cassandra-task"];
    for (i, policies, extra) in [
        (0usize, &control[..], vec![]),
        (1, &data[..], vec!["--control-plane=false"]),
    ] {
        let mut args = vec!["--resync-seconds", "5"];
        args.extend(extra);
        let op = Operator::start_for(
            &tmp.path().join(format!("op{i}")),
            env.cluster(i),
            policies,
            &args,
        )?;
        op.wait_ready(Duration::from_secs(120)).await?;
        operators.push(op);
    }

    apply_yaml(&a, CLUSTER, NS).await?;
    wait_for(
        "dc1 (cluster-0) and dc2 (cluster-1) Ready",
        Duration::from_secs(300),
        || async { (dc_ready(&a, "dc1").await && dc_ready(&b, "dc2").await).then_some(()) },
    )
    .await
    .map_err(|e| {
        e.context(format!(
            "violations: {:?}\n{}",
            sim.violations(),
            operator_logs(&operators)
        ))
    })?;

    apply_yaml(&a, K8SSANDRA_TASK, NS).await?;
    let k8s_tasks = api(&a, "control.k8ssandra.io", "v1alpha1", "K8ssandraTask").await?;
    let tasks_a = api(&a, "control.k8ssandra.io", "v1alpha1", "CassandraTask").await?;
    let tasks_b = api(&b, "control.k8ssandra.io", "v1alpha1", "CassandraTask").await?;
    let (t1, t2) = (format!("{TASK}-dc1"), format!("{TASK}-dc2"));

    // Forbid (the default): dc2's CassandraTask appears only once dc1's is Complete. Checked
    // at every poll until the whole task is complete, so an early dc2 task is caught.
    let done = wait_for(
        "K8ssandraTask Complete",
        Duration::from_secs(240),
        || async {
            let dc2 = tasks_b.get_opt(&t2).await.ok()?;
            if dc2.is_some() {
                let dc1 = tasks_a.get_opt(&t1).await.ok()??;
                if condition(&dc1.data, "Complete").as_deref() != Some("True") {
                    return Some(Err(anyhow::anyhow!(
                        "{t2} exists while {t1} is not Complete: {:?}",
                        dc1.data.get("status")
                    )));
                }
            }
            let kt = k8s_tasks.get(TASK).await.ok()?;
            (condition(&kt.data, "Complete").as_deref() == Some("True")).then_some(Ok(kt))
        },
    )
    .await
    .map_err(|e| {
        e.context(format!(
            "violations: {:?}\n{}",
            sim.violations(),
            operator_logs(&operators)
        ))
    })??;

    // Both CassandraTasks, each in its datacenter's cluster, linked to the K8ssandraTask.
    let dc1 = tasks_a.get(&t1).await?;
    let dc2 = tasks_b.get(&t2).await?;
    for (obj, dc) in [(&dc1, "dc1"), (&dc2, "dc2")] {
        let labels = obj.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get("k8ssandra.io/task-name").map(String::as_str),
            Some(TASK)
        );
        assert_eq!(
            labels
                .get("k8ssandra.io/task-namespace")
                .map(String::as_str),
            Some(NS)
        );
        assert_eq!(obj.data.pointer("/spec/datacenter/name"), Some(&json!(dc)));
        assert_eq!(
            obj.data.pointer("/spec/jobs/0/command"),
            Some(&json!("flush"))
        );
        assert_eq!(
            condition(&obj.data, "Complete").as_deref(),
            Some("True"),
            "{dc}"
        );
    }
    let dc1_end = dc1
        .data
        .pointer("/status/completionTime")
        .and_then(Value::as_str)
        .context("dc1's CassandraTask has no completionTime")?
        .to_string();
    let dc2_created = dc2
        .metadata
        .creation_timestamp
        .clone()
        .context("no creationTimestamp")?;
    let dc2_created = k8s_openapi::jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%SZ", dc2_created.0)?;
    assert!(
        dc2_created >= dc1_end,
        "{t2} created at {dc2_created}, before {t1} completed at {dc1_end}"
    );

    // The K8ssandraTask's status: each datacenter's, and the sums.
    let st = done.data.get("status").cloned().unwrap_or_default();
    assert_eq!(
        condition(&done.data, "Failed").as_deref(),
        Some("False"),
        "{st}"
    );
    assert_eq!(
        condition(&done.data, "Running").as_deref(),
        Some("False"),
        "{st}"
    );
    assert_eq!(st["succeeded"], 3, "{st}");
    assert_eq!(st["failed"], 0, "{st}");
    assert_eq!(st["active"], 0, "{st}");
    assert!(
        st["startTime"].is_string() && st["completionTime"].is_string(),
        "{st}"
    );
    assert_eq!(st["datacenters"]["dc1"]["succeeded"], 2, "{st}");
    assert_eq!(st["datacenters"]["dc2"]["succeeded"], 1, "{st}");
    for dc in ["dc1", "dc2"] {
        let complete = st["datacenters"][dc]["conditions"]
            .as_array()
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Complete" && c["status"] == "True")
            });
        assert!(complete, "{dc}: {st}");
    }
    assert_eq!(
        st["completionTime"], dc2.data["status"]["completionTime"],
        "{st}"
    );

    // The simulator ran the flush on every node, dc2's only after every one of dc1's ended.
    let jobs = flushes(&sim);
    let pods: BTreeSet<&str> = jobs.keys().map(String::as_str).collect();
    assert_eq!(
        pods,
        BTreeSet::from([
            "demo-dc1-r1-sts-0",
            "demo-dc1-r1-sts-1",
            "demo-dc2-r1-sts-0"
        ]),
        "{jobs:#?}"
    );
    for (pod, js) in &jobs {
        assert!(
            js.iter().any(|j| j.outcome == "completed"),
            "{pod}: {js:#?}"
        );
    }
    let dc1_last_end = jobs
        .iter()
        .filter(|(p, _)| p.starts_with("demo-dc1-"))
        .flat_map(|(_, js)| js.iter().filter_map(|j| j.end_time.clone()))
        .max()
        .context("no end time of a dc1 flush")?;
    let dc2_first_start = jobs
        .iter()
        .filter(|(p, _)| p.starts_with("demo-dc2-"))
        .flat_map(|(_, js)| js.iter().map(|j| j.time.clone()))
        .min()
        .context("no dc2 flush")?;
    if dc2_first_start < dc1_last_end {
        bail!("dc2's flush started at {dc2_first_start}, before dc1's ended at {dc1_last_end}");
    }

    // ttlSecondsAfterFinished: the finished task goes, and its CassandraTasks in both
    // clusters with it.
    k8s_tasks
        .patch(
            TASK,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"ttlSecondsAfterFinished": 1}}})),
        )
        .await?;
    wait_for(
        "the K8ssandraTask and both CassandraTasks deleted",
        Duration::from_secs(60),
        || async {
            let gone = k8s_tasks.get_opt(TASK).await.ok()?.is_none()
                && tasks_a.get_opt(&t1).await.ok()?.is_none()
                && tasks_b.get_opt(&t2).await.ok()?.is_none();
            gone.then_some(())
        },
    )
    .await
    .map_err(|e| e.context(operator_logs(&operators)))?;

    assert!(
        sim.violations().is_empty(),
        "violations: {:?}",
        sim.violations()
    );
    Ok(())
}
