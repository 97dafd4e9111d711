//! MedusaBackupJob end to end: the real operator with the cassandra-datacenter and
//! medusa-backup-job policies, a 3-rack datacenter whose pods run a `medusa` container
//! (through `podTemplateSpec`, as a user of a standalone CassandraDatacenter does), and the
//! simulator's Medusa on every pod. A backup asks every pod exactly once and is recorded as
//! a MedusaBackup that outlives its job; a pod whose backup fails fails the job by name and
//! records nothing.

use crate::support;

use std::time::Duration;

use anyhow::{Result, anyhow};
use cassandra_sim::medusa::{MedusaFault, MedusaSettings};
use kube::api::DeleteParams;
use serde_json::Value;

use support::{apply_yaml, condition, datacenters, dynamic_api, normal_nodes, tail, wait_for};

const NS: &str = "backups";

const DC: &str = r#"
apiVersion: cassandra.datastax.com/v1beta1
kind: CassandraDatacenter
metadata:
  name: dc1
  namespace: backups
spec:
  clusterName: demo
  serverType: cassandra
  serverVersion: "4.1.5"
  size: 3
  racks:
    - name: r1
    - name: r2
    - name: r3
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

fn job(name: &str) -> String {
    format!(
        r#"
apiVersion: medusa.k8ssandra.io/v1alpha1
kind: MedusaBackupJob
metadata:
  name: {name}
  namespace: backups
spec:
  cassandraDatacenter: dc1
"#
    )
}

fn cond_status(obj: &Value, t: &str) -> Option<String> {
    condition(obj, t)
        .and_then(|c| c["status"].as_str())
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_job_backs_up_every_pod_once_and_records_the_backup() -> Result<()> {
    let one =
        support::OneCluster::start(4, NS, &["cassandra-datacenter", "medusa-backup-job"]).await?;
    let (client, context, sim, op) = (one.client.clone(), one.context.clone(), &one.sim, &one.op);
    sim.medusa().set_settings(MedusaSettings {
        backup_duration: Duration::from_millis(500),
        ..MedusaSettings::default()
    });
    let dcs = datacenters(&client, NS).await?;
    let jobs = dynamic_api(
        &client,
        NS,
        "medusa.k8ssandra.io",
        "v1alpha1",
        "MedusaBackupJob",
    )
    .await?;
    let backups = dynamic_api(
        &client,
        NS,
        "medusa.k8ssandra.io",
        "v1alpha1",
        "MedusaBackup",
    )
    .await?;

    apply_yaml(&client, DC, NS).await?;
    wait_for(
        "dc1 Ready with 3 nodes",
        Duration::from_secs(240),
        || async {
            (support::dc_ready(&dcs, "dc1").await && normal_nodes(sim, "demo") == 3).then_some(())
        },
    )
    .await
    .map_err(|e| e.context(tail(&op.log_text(), 40)))?;

    // A backup of every pod, recorded as a MedusaBackup.
    apply_yaml(&client, &job("b1"), NS).await?;
    let done = wait_for("b1 Complete", Duration::from_secs(120), || async {
        let j = jobs.get("b1").await.ok()?;
        (cond_status(&j.data, "Complete").as_deref() == Some("True")).then_some(j)
    })
    .await
    .map_err(|e| e.context(tail(&op.log_text(), 40)))?;
    assert_eq!(
        done.data["status"]["finished"],
        serde_json::json!([
            "demo-dc1-r1-sts-0",
            "demo-dc1-r2-sts-0",
            "demo-dc1-r3-sts-0"
        ]),
        "{}",
        done.data["status"]
    );
    let backup = wait_for(
        "MedusaBackup b1 with its status",
        Duration::from_secs(30),
        || async {
            let b = backups.get("b1").await.ok()?;
            b.data.pointer("/status/totalNodes").is_some().then_some(b)
        },
    )
    .await?;
    assert_eq!(
        backup.data["status"]["totalNodes"], 3,
        "{}",
        backup.data["status"]
    );
    assert_eq!(backup.data["status"]["finishedNodes"], 3);
    assert_eq!(backup.data["status"]["status"], "SUCCESS");
    let mut racks: Vec<String> = backup.data["status"]["nodes"]
        .as_array()
        .ok_or_else(|| anyhow!("no nodes in {}", backup.data["status"]))?
        .iter()
        .filter_map(|n| n["rack"].as_str().map(str::to_string))
        .collect();
    racks.sort();
    assert_eq!(racks, ["r1", "r2", "r3"]);
    assert!(
        backup
            .metadata
            .owner_references
            .as_ref()
            .is_none_or(|o| o.is_empty()),
        "a MedusaBackup must not be garbage-collected with anything"
    );
    let calls = sim.medusa().backup_calls();
    for rack in ["r1", "r2", "r3"] {
        let pod = format!("{context}/{NS}/demo-dc1-{rack}-sts-0");
        assert_eq!(
            calls.get(&(pod.clone(), "b1".to_string())),
            Some(&1),
            "{pod}: {calls:?}"
        );
    }

    // One pod's backup fails: the job fails naming it, and nothing is recorded.
    sim.medusa().set_fault(
        &format!("{context}/{NS}/demo-dc1-r2-sts-0"),
        Some(MedusaFault::FailBackups),
    );
    apply_yaml(&client, &job("b2"), NS).await?;
    let failed = wait_for("b2 Failed", Duration::from_secs(120), || async {
        let j = jobs.get("b2").await.ok()?;
        (cond_status(&j.data, "Failed").as_deref() == Some("True")).then_some(j)
    })
    .await
    .map_err(|e| e.context(tail(&op.log_text(), 40)))?;
    let message = condition(&failed.data, "Failed")
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(message.contains("demo-dc1-r2-sts-0"), "{message}");
    assert_eq!(
        failed.data["status"]["failed"],
        serde_json::json!(["demo-dc1-r2-sts-0"])
    );
    assert!(
        backups.get_opt("b2").await?.is_none(),
        "a failed backup was recorded"
    );
    sim.medusa()
        .set_fault(&format!("{context}/{NS}/demo-dc1-r2-sts-0"), None);

    // Deleting the job leaves the record of its backup.
    jobs.delete("b1", &DeleteParams::default()).await?;
    wait_for("job b1 gone", Duration::from_secs(30), || async {
        jobs.get_opt("b1").await.ok()?.is_none().then_some(())
    })
    .await?;
    assert!(
        backups.get_opt("b1").await?.is_some(),
        "the MedusaBackup went with its job"
    );

    assert_eq!(sim.violations(), Vec::new());
    one.sim.shutdown().await;
    Ok(())
}
