//! Schedules end to end, with the real operator and the real wasm policies: a ScheduledTask
//! every minute creates its CassandraTask at each minute and keeps `lastExecution` /
//! `nextSchedule` current; a MedusaBackupSchedule every minute (with the medusa-backup-job
//! policy and the simulator's Medusa) starts no job while one runs (Forbid), then the owed
//! one, and keeps only the newest 2 finished jobs (their MedusaBackups stay). Waits are for
//! states (minute boundaries have to pass), never assertions on durations.

use crate::support;

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use cassandra_sim::medusa::MedusaSettings;
use kube::Client;
use kube::api::DynamicObject;
use serde_json::Value;

use k8ssandra_testenv::{TestEnv, TestEnvOptions};
use support::{
    Operator, apply_yaml, condition, create_namespace, datacenters, dynamic_api, install_crds,
    normal_nodes, plugin_dir, tail, wait_for, write_kubeconfig,
};

const NS: &str = "schedules";

const SCHEDULED_TASK: &str = r#"
apiVersion: control.k8ssandra.io/v1alpha1
kind: ScheduledTask
metadata:
  name: every-minute
  namespace: schedules
spec:
  schedule: "* * * * *"
  taskDetails:
    name: flush
    datacenter:
      name: dc1
      namespace: schedules
    jobs:
      - name: flush
        command: flush
"#;

fn time_ms(v: &Value) -> Option<u64> {
    let t: k8s_openapi::jiff::Timestamp = v.as_str()?.parse().ok()?;
    u64::try_from(t.as_millisecond()).ok()
}

/// The scheduled time a task's name carries: `<prefix>-<unix seconds>`.
fn scheduled_ms(name: &str) -> Option<u64> {
    name.rsplit_once('-')?
        .1
        .parse::<u64>()
        .ok()
        .map(|s| s * 1000)
}

fn names(list: &[DynamicObject]) -> Vec<String> {
    let mut v: Vec<String> = list
        .iter()
        .filter_map(|o| o.metadata.name.clone())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_task_creates_its_cassandra_task_every_minute() -> Result<()> {
    let env = TestEnv::start(TestEnvOptions {
        clusters: 1,
        nodes_per_cluster: 1,
        ..Default::default()
    })
    .await?;
    let tmp = tempfile::tempdir()?;
    let client: Client = env.cluster(0).client();
    install_crds(&client, &k8ssandra_api::all_crds_yaml()).await?;
    create_namespace(&client, NS).await?;
    let kubeconfig = write_kubeconfig(tmp.path(), env.cluster(0))?;
    let plugins = plugin_dir(&tmp.path().join("plugins"), &["scheduled-task"])?;
    let op = Operator::start(&kubeconfig, &plugins, &["--resync-seconds", "300"])?;
    op.wait_ready(Duration::from_secs(60)).await?;
    let scheduled = dynamic_api(
        &client,
        NS,
        "control.k8ssandra.io",
        "v1alpha1",
        "ScheduledTask",
    )
    .await?;
    let tasks = dynamic_api(
        &client,
        NS,
        "control.k8ssandra.io",
        "v1alpha1",
        "CassandraTask",
    )
    .await?;

    apply_yaml(&client, SCHEDULED_TASK, NS).await?;
    // Before the first minute boundary the status already says when the first task comes.
    let st = wait_for("nextSchedule set", Duration::from_secs(30), || async {
        let s = scheduled.get("every-minute").await.ok()?;
        s.data.pointer("/status/nextSchedule").cloned().map(|_| s)
    })
    .await
    .map_err(|e| e.context(tail(&op.log_text(), 40)))?;
    let created_ms = st
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_millisecond() as u64)
        .ok_or_else(|| anyhow!("no creationTimestamp"))?;
    let first_next =
        time_ms(&st.data["status"]["nextSchedule"]).context("nextSchedule is not a time")?;
    assert_eq!(first_next % 60_000, 0, "{}", st.data["status"]);
    assert!(first_next > created_ms - created_ms % 60_000);

    // The first task, named for its minute, created by the requeue alone (the resync is
    // 5 minutes away).
    let first = wait_for(
        "the first CassandraTask",
        Duration::from_secs(100),
        || async {
            let l = tasks.list(&Default::default()).await.ok()?;
            (!l.items.is_empty()).then_some(l.items)
        },
    )
    .await
    .map_err(|e| e.context(tail(&op.log_text(), 40)))?;
    assert_eq!(names(&first), [format!("flush-{}", first_next / 1000)]);
    let task = &first[0];
    assert_eq!(task.data["spec"]["jobs"][0]["command"], "flush");
    assert_eq!(task.data["spec"]["datacenter"]["name"], "dc1");
    let task_created = task
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_millisecond() as u64)
        .ok_or_else(|| anyhow!("no creationTimestamp"))?;
    // Kubernetes timestamps are whole seconds: not before its minute.
    assert!(task_created >= first_next, "created before its time");
    assert!(
        task.metadata
            .owner_references
            .as_ref()
            .is_some_and(|o| o.iter().any(|r| r.kind == "ScheduledTask")),
        "the task is not owned by its ScheduledTask"
    );

    // The status follows: lastExecution is that minute, nextSchedule the one after.
    let st = wait_for(
        "status after the first run",
        Duration::from_secs(30),
        || async {
            let s = scheduled.get("every-minute").await.ok()?;
            (time_ms(&s.data["status"]["lastExecution"]) == Some(first_next)).then_some(s)
        },
    )
    .await?;
    assert_eq!(
        time_ms(&st.data["status"]["nextSchedule"]),
        Some(first_next + 60_000),
        "{}",
        st.data["status"]
    );

    // The next minute: a second task, the first one kept (it has not finished).
    let second = wait_for(
        "the second CassandraTask",
        Duration::from_secs(100),
        || async {
            let l = tasks.list(&Default::default()).await.ok()?;
            (l.items.len() >= 2).then_some(l.items)
        },
    )
    .await
    .map_err(|e| e.context(tail(&op.log_text(), 40)))?;
    let second_names = names(&second);
    assert!(second_names.contains(&format!("flush-{}", first_next / 1000)));
    assert!(
        second_names.contains(&format!("flush-{}", (first_next + 60_000) / 1000)),
        "{second_names:?}"
    );
    for n in &second_names {
        assert_eq!(
            scheduled_ms(n).map(|t| t % 60_000),
            Some(0),
            "{n} is not at a minute"
        );
    }
    wait_for(
        "status after the second run",
        Duration::from_secs(30),
        || async {
            let s = scheduled.get("every-minute").await.ok()?;
            (time_ms(&s.data["status"]["lastExecution"]) == Some(first_next + 60_000)
                && time_ms(&s.data["status"]["nextSchedule"]) == Some(first_next + 120_000))
            .then_some(())
        },
    )
    .await?;
    Ok(())
}

const BACKUP_NS: &str = "backup-schedules";

const DC: &str = r#"
apiVersion: cassandra.datastax.com/v1beta1
kind: CassandraDatacenter
metadata:
  name: dc1
  namespace: backup-schedules
spec:
  clusterName: demo
  serverType: cassandra
  serverVersion: "4.1.5"
  size: 1
  storageConfig:
    cassandraDataVolumeClaimSpec:
      storageClassName: standard
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 1Gi
  podTemplateSpec:
    spec:
      containers:
        - name: medusa
          image: docker.io/k8ssandra/medusa:0.22.3
          ports:
            - name: grpc
              containerPort: 50051
"#;

const BACKUP_SCHEDULE: &str = r#"
apiVersion: medusa.k8ssandra.io/v1alpha1
kind: MedusaBackupSchedule
metadata:
  name: every-minute
  namespace: backup-schedules
spec:
  cronSchedule: "* * * * *"
  successfulJobsHistoryLimit: 2
  backupSpec:
    cassandraDatacenter: dc1
    backupType: full
"#;

fn finished(job: &DynamicObject) -> bool {
    job.data
        .pointer("/status/finishTime")
        .is_some_and(|t| !t.is_null())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_schedule_forbids_overlap_and_keeps_two_finished_jobs() -> Result<()> {
    let one = support::OneCluster::start(
        2,
        BACKUP_NS,
        &[
            "cassandra-datacenter",
            "medusa-backup-job",
            "medusa-backup-schedule",
        ],
    )
    .await?;
    let (client, sim, op) = (one.client.clone(), &one.sim, &one.op);
    // The first backup outlasts the next minute boundary, so Forbid has something to forbid.
    sim.medusa().set_settings(MedusaSettings {
        backup_duration: Duration::from_secs(75),
        ..MedusaSettings::default()
    });
    let dcs = datacenters(&client, BACKUP_NS).await?;
    let api = |kind: &'static str| {
        let client = client.clone();
        async move { dynamic_api(&client, BACKUP_NS, "medusa.k8ssandra.io", "v1alpha1", kind).await }
    };
    let schedules = api("MedusaBackupSchedule").await?;
    let jobs = api("MedusaBackupJob").await?;
    let backups = api("MedusaBackup").await?;

    apply_yaml(&client, DC, BACKUP_NS).await?;
    wait_for("dc1 Ready", Duration::from_secs(180), || async {
        (support::dc_ready(&dcs, "dc1").await && normal_nodes(sim, "demo") == 1).then_some(())
    })
    .await
    .map_err(|e| e.context(tail(&op.log_text(), 40)))?;
    apply_yaml(&client, BACKUP_SCHEDULE, BACKUP_NS).await?;

    // The first run, on a minute.
    let first = wait_for(
        "the first MedusaBackupJob",
        Duration::from_secs(100),
        || async {
            let l = jobs.list(&Default::default()).await.ok()?;
            l.items.first().cloned()
        },
    )
    .await
    .map_err(|e| e.context(tail(&op.log_text(), 40)))?;
    let first_name = first.metadata.name.clone().unwrap_or_default();
    let first_ms = scheduled_ms(&first_name).ok_or_else(|| anyhow!("{first_name}"))?;
    assert_eq!(first_ms % 60_000, 0, "{first_name}");
    assert_eq!(first.data["spec"]["backupType"], "full");

    // Forbid: the next minute's run waits while the first backup runs.
    let waiting = wait_for("Waiting=True", Duration::from_secs(100), || async {
        let s = schedules.get("every-minute").await.ok()?;
        let c = condition(&s.data, "Waiting")?;
        (c["status"] == "True").then(|| c.clone())
    })
    .await
    .map_err(|e| e.context(tail(&op.log_text(), 40)))?;
    assert!(
        waiting["message"]
            .as_str()
            .is_some_and(|m| m.contains(&first_name)),
        "{waiting}"
    );
    let l = jobs.list(&Default::default()).await?;
    assert_eq!(
        names(&l.items),
        std::slice::from_ref(&first_name),
        "a job started while one was running"
    );
    assert!(!finished(&l.items[0]), "the first job finished already");
    sim.medusa().set_settings(MedusaSettings {
        backup_duration: Duration::from_millis(500),
        ..MedusaSettings::default()
    });

    // Then the owed run and the next minute's: three finished jobs made, two kept, the
    // oldest pruned while its MedusaBackup stays.
    let kept = wait_for(
        "the first job pruned after two newer finished",
        Duration::from_secs(200),
        || async {
            let l = jobs.list(&Default::default()).await.ok()?;
            let done: Vec<&DynamicObject> = l.items.iter().filter(|j| finished(j)).collect();
            (done.len() == 2
                && !l
                    .items
                    .iter()
                    .any(|j| j.metadata.name.as_deref() == Some(first_name.as_str())))
            .then(|| names(&l.items))
        },
    )
    .await
    .map_err(|e| e.context(tail(&op.log_text(), 60)))?;
    for n in &kept {
        assert!(scheduled_ms(n).is_some_and(|t| t > first_ms), "{kept:?}");
    }
    if backups.get_opt(&first_name).await?.is_none() {
        let kept = names(&backups.list(&Default::default()).await?.items);
        let log: Vec<String> = op
            .log_text()
            .lines()
            .filter(|l| l.contains(&first_name))
            .map(str::to_string)
            .collect();
        return Err(anyhow!(
            "the MedusaBackup of pruned job {first_name} went with it; backups: {kept:?}; log: {}",
            log.join("\n")
        ));
    }
    let s = schedules.get("every-minute").await?;
    let last = time_ms(&s.data["status"]["lastExecution"]).context("lastExecution")?;
    let next = time_ms(&s.data["status"]["nextSchedule"]).context("nextSchedule")?;
    assert!(last > first_ms && next > last, "{}", s.data["status"]);
    assert_eq!(sim.violations(), Vec::new());
    one.sim.shutdown().await;
    Ok(())
}
