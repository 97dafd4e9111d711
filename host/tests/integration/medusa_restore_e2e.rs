//! MedusaRestoreJob end to end: the real operator with the cassandra-datacenter,
//! medusa-backup-job and medusa-restore-job policies, a 3-rack datacenter whose pods run
//! Medusa (its `medusa-restore` init container reads the restore ConfigMap through
//! `envFrom`, as the k8ssandra-cluster policy renders it), and the simulator, whose nodes
//! hold data. State A → backup → state B → restore: the datacenter stops, every pod
//! restores state A in its init container, the datacenter comes back Ready and its roles
//! are re-created. A restore of one keyspace (the `<kc>-medusa` ConfigMap's module on the
//! init container's path, the names in the restore ConfigMap) leaves another at state B. A
//! scale-up afterwards starts only the new node and restores nothing. An unknown backup,
//! one of another size, or a keyspace the schema lacks fails the job and stops nothing.

use crate::support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Result, bail};
use cassandra_sim::medusa::MedusaSettings;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use support::{apply_yaml, condition, datacenters, dynamic_api, normal_nodes, tail, wait_for};

const NS: &str = "restores";
const CLUSTER: &str = "demo";

const DC: &str = r#"
apiVersion: cassandra.datastax.com/v1beta1
kind: CassandraDatacenter
metadata:
  name: dc1
  namespace: restores
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
      initContainers:
        - name: server-config-init
        - name: medusa-restore
          image: docker.io/k8ssandra/medusa:0.22.3
          env:
            - name: MEDUSA_MODE
              value: RESTORE
          envFrom:
            - configMapRef:
                name: dc1-medusa-restore
                optional: true
          volumeMounts:
            - name: demo-medusa
              mountPath: /etc/medusa
      volumes:
        - name: demo-medusa
          configMap:
            name: demo-medusa
            optional: true
      containers:
        - name: medusa
          image: docker.io/k8ssandra/medusa:0.22.3
          ports:
            - name: grpc
              containerPort: 50051
"#;

const STORAGE: &str = r#"
apiVersion: v1
kind: Secret
metadata:
  name: bucket-key
  namespace: restores
stringData:
  credentials: |
    [default]
    aws_access_key_id = a
---
apiVersion: medusa.k8ssandra.io/v1alpha1
kind: MedusaConfiguration
metadata:
  name: storage
  namespace: restores
spec:
  storageProperties:
    storageProvider: s3_compatible
    bucketName: backups
    storageSecretRef:
      name: bucket-key
"#;

fn backup_job(name: &str) -> String {
    format!(
        r#"
apiVersion: medusa.k8ssandra.io/v1alpha1
kind: MedusaBackupJob
metadata:
  name: {name}
  namespace: restores
spec:
  cassandraDatacenter: dc1
"#
    )
}

fn restore_job(name: &str, backup: &str, keyspaces: &[&str]) -> String {
    let ks = if keyspaces.is_empty() {
        String::new()
    } else {
        format!("  keyspaces: [{}]\n", keyspaces.join(", "))
    };
    format!(
        r#"
apiVersion: medusa.k8ssandra.io/v1alpha1
kind: MedusaRestoreJob
metadata:
  name: {name}
  namespace: restores
spec:
  cassandraDatacenter: dc1
  backup: {backup}
{ks}"#
    )
}

fn cond_status(obj: &Value, t: &str) -> Option<String> {
    condition(obj, t)
        .and_then(|c| c["status"].as_str())
        .map(str::to_string)
}

/// `keyspace.table` → version on every pod of the datacenter, or None when they differ.
fn versions(sim: &cassandra_sim::SimHandle) -> BTreeMap<String, BTreeMap<String, String>> {
    sim.data(CLUSTER)
}

fn all_at(sim: &cassandra_sim::SimHandle, table: &str, version: &str) -> bool {
    let data = versions(sim);
    !data.is_empty()
        && data
            .values()
            .all(|d| d.get(table).map(String::as_str) == Some(version))
}

fn write_state(sim: &cassandra_sim::SimHandle, version: &str) {
    sim.write_data(CLUSTER, "shop", "orders", version);
    sim.write_data(CLUSTER, "logs", "events", version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_brings_the_backed_up_state_back_and_leaves_nothing_behind() -> Result<()> {
    let mut one = support::OneCluster::start(
        5,
        NS,
        &[
            "cassandra-datacenter",
            "medusa-backup-job",
            "medusa-restore-job",
            "medusa-configuration",
        ],
    )
    .await?;
    let (client, sim) = (one.client.clone(), &one.sim);
    let log = one.op.log.clone();
    sim.medusa().set_settings(MedusaSettings {
        backup_duration: Duration::from_millis(300),
        ..MedusaSettings::default()
    });
    let dcs = datacenters(&client, NS).await?;
    let medusa = |kind: &'static str| {
        let client = client.clone();
        async move { dynamic_api(&client, NS, "medusa.k8ssandra.io", "v1alpha1", kind).await }
    };
    let backup_jobs = medusa("MedusaBackupJob").await?;
    let backups = medusa("MedusaBackup").await?;
    let restores = medusa("MedusaRestoreJob").await?;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let diag = || tail(&std::fs::read_to_string(&log).unwrap_or_default(), 60);

    apply_yaml(&client, DC, NS).await?;
    // The storage Secret of a MedusaConfiguration gets upstream's label
    // (sha256("restores" + "bucket-key"), first 8 hex digits); its data stays.
    apply_yaml(&client, STORAGE, NS).await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    wait_for(
        "storage Secret labelled",
        Duration::from_secs(60),
        || async {
            let s = secrets.get("bucket-key").await.ok()?;
            (s.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("k8ssandra.io/medusa-storage-secret"))
                .map(String::as_str)
                == Some("9910fe5a"))
            .then_some(s)
        },
    )
    .await
    .map_err(|e| e.context(diag()))
    .map(|s| {
        assert!(
            s.data
                .unwrap_or_default()
                .get("credentials")
                .is_some_and(|v| v.0 == b"[default]\naws_access_key_id = a\n"),
            "the Secret's data changed"
        )
    })?;
    wait_for(
        "dc1 Ready with 3 nodes",
        Duration::from_secs(240),
        || async {
            (support::dc_ready(&dcs, "dc1").await && normal_nodes(sim, CLUSTER) == 3).then_some(())
        },
    )
    .await
    .map_err(|e| e.context(diag()))?;

    // The keyspaces exist in the schema (a selective restore restores no schema).
    for ks in ["shop", "logs"] {
        sim.create_keyspace(&cassandra_sim::KeyspaceRequest {
            cluster: CLUSTER.into(),
            name: ks.into(),
            replication: BTreeMap::from([("dc1".to_string(), 3)]),
        });
    }
    // State A, backed up.
    write_state(sim, "A");
    apply_yaml(&client, &backup_job("b-a"), NS).await?;
    wait_for("backup b-a recorded", Duration::from_secs(120), || async {
        let b = backups.get("b-a").await.ok()?;
        (b.data.pointer("/status/status").and_then(Value::as_str) == Some("SUCCESS")).then_some(())
    })
    .await
    .map_err(|e| e.context(diag()))?;
    write_state(sim, "B");
    assert!(all_at(sim, "shop.orders", "B"), "{:?}", versions(sim));

    // Bad input first: an unknown backup, and a backup of another size. Each fails naming
    // the field and the rule, and the datacenter keeps running (same pods).
    let uids = support::cassandra_pod_uids(&client, NS, CLUSTER).await;
    assert_eq!(uids.len(), 3);
    apply_yaml(
        &client,
        r#"
apiVersion: medusa.k8ssandra.io/v1alpha1
kind: MedusaBackup
metadata:
  name: b-small
  namespace: restores
spec:
  cassandraDatacenter: dc1
"#,
        NS,
    )
    .await?;
    backups
        .patch_status(
            "b-small",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"totalNodes": 2, "finishedNodes": 2,
                "status": "SUCCESS", "nodes": [
                    {"host": "10.9.9.1", "datacenter": "dc1", "rack": "r1"},
                    {"host": "10.9.9.2", "datacenter": "dc1", "rack": "r2"}]}})),
        )
        .await?;
    for (name, backup, reason, text) in [
        (
            "r-unknown",
            "nope",
            "BackupNotFound",
            "spec.backup: no MedusaBackup restores/nope",
        ),
        (
            "r-small",
            "b-small",
            "SizeMismatch",
            "holds 2 nodes, CassandraDatacenter dc1 has spec.size 3",
        ),
    ] {
        apply_yaml(&client, &restore_job(name, backup, &[]), NS).await?;
        let failed = wait_for(
            &format!("{name} Failed"),
            Duration::from_secs(60),
            || async {
                let j = restores.get(name).await.ok()?;
                (cond_status(&j.data, "Failed").as_deref() == Some("True")).then_some(j)
            },
        )
        .await
        .map_err(|e| e.context(diag()))?;
        let c = condition(&failed.data, "Failed")
            .cloned()
            .unwrap_or_default();
        assert_eq!(c["reason"], reason, "{c}");
        assert!(
            c["message"].as_str().unwrap_or_default().contains(text),
            "{c}"
        );
        assert!(failed.data["status"]["finishTime"].is_string());
        assert!(failed.data["status"].get("datacenterStopped").is_none());
    }
    // A restore of a keyspace the schema lacks: Failed naming the field, nothing stopped.
    apply_yaml(
        &client,
        &restore_job("r-no-such-keyspace", "b-a", &["shop", "nosuch"]),
        NS,
    )
    .await?;
    let failed = wait_for(
        "r-no-such-keyspace Failed",
        Duration::from_secs(60),
        || async {
            let j = restores.get("r-no-such-keyspace").await.ok()?;
            (cond_status(&j.data, "Failed").as_deref() == Some("True")).then_some(j)
        },
    )
    .await
    .map_err(|e| e.context(diag()))?;
    let c = condition(&failed.data, "Failed")
        .cloned()
        .unwrap_or_default();
    assert_eq!(c["reason"], "KeyspaceNotFound", "{c}");
    assert!(
        c["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("spec.keyspaces[1]: keyspace nosuch not in the schema"),
        "{c}"
    );
    assert!(failed.data["status"].get("datacenterStopped").is_none());
    assert!(config_maps.get_opt("dc1-medusa-restore").await?.is_none());
    let dc = dcs.get("dc1").await?;
    assert_ne!(cond_status(&dc.data, "Stopped").as_deref(), Some("True"));
    assert_eq!(
        support::cassandra_pod_uids(&client, NS, CLUSTER).await,
        uids
    );

    // A full restore of b-a: stop, restore in the init containers, Ready, roles, done.
    let roles_before = role_creates(sim);
    apply_yaml(&client, &restore_job("r-full", "b-a", &[]), NS).await?;
    let saw_stopped_for_restore = Arc::new(AtomicBool::new(false));
    let done = wait_for("r-full Complete", Duration::from_secs(300), || {
        let (dcs, restores) = (dcs.clone(), restores.clone());
        let saw = saw_stopped_for_restore.clone();
        async move {
            if let Ok(dc) = dcs.get("dc1").await
                && condition(&dc.data, "Stopped")
                    .is_some_and(|c| c["status"] == "True" && c["reason"] == "StoppedForRestore")
            {
                saw.store(true, Ordering::SeqCst);
            }
            let j = restores.get("r-full").await.ok()?;
            (cond_status(&j.data, "Complete").as_deref() == Some("True")).then_some(j)
        }
    })
    .await
    .map_err(|e| e.context(diag()))?;
    assert!(
        saw_stopped_for_restore.load(Ordering::SeqCst),
        "the datacenter never showed Stopped=True StoppedForRestore"
    );
    let st = &done.data["status"];
    assert_eq!(st["phase"], "Complete", "{st}");
    assert!(st["datacenterStopped"].is_string(), "{st}");
    assert_eq!(
        st["finished"],
        json!([
            "demo-dc1-r1-sts-0",
            "demo-dc1-r2-sts-0",
            "demo-dc1-r3-sts-0"
        ]),
        "{st}"
    );
    let key = st["restoreKey"].as_str().unwrap_or_default().to_string();
    assert!(!key.is_empty());
    assert!(all_at(sim, "shop.orders", "A"), "{:?}", versions(sim));
    assert!(all_at(sim, "logs.events", "A"), "{:?}", versions(sim));
    let restored = restores_with_key(sim, &key);
    assert_eq!(restored.len(), 3, "one restore per pod: {restored:?}");
    // Roles re-created after the restores (the restored system_auth is old).
    let last_restore = restored.iter().map(|e| e.seq).max().unwrap_or_default();
    let after: Vec<_> = role_creates(sim)
        .into_iter()
        .filter(|e| e.seq > last_restore && !roles_before.iter().any(|b| b.seq == e.seq))
        .collect();
    assert!(
        after.iter().any(|e| e.outcome == "ok"
            && e.detail
                .as_deref()
                .is_some_and(|d| d.contains("superuser=true"))),
        "the superuser role was not re-created after the restore: {after:?}"
    );
    // The ConfigMap is gone and the datacenter is Ready and running.
    wait_for(
        "restore ConfigMap pruned",
        Duration::from_secs(30),
        || async {
            config_maps
                .get_opt("dc1-medusa-restore")
                .await
                .ok()?
                .is_none()
                .then_some(())
        },
    )
    .await?;
    assert!(support::dc_ready(&dcs, "dc1").await);

    // Again from state B, and the operator is killed mid-restore.
    write_state(sim, "B");
    apply_yaml(&client, &restore_job("r-again", "b-a", &[]), NS).await?;
    // The operator is killed while this restore is under way (stopping, most often), and
    // started again: the job resumes from its status, and no pod restores twice.
    wait_for("r-again under way", Duration::from_secs(120), || async {
        let j = restores.get("r-again").await.ok()?;
        let phase = j.data["status"]["phase"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        ["Preparing", "Stopping", "Starting", "Roles"]
            .contains(&phase.as_str())
            .then_some(())
    })
    .await
    .map_err(|e| e.context(diag()))?;
    std::process::Command::new("kill")
        .args(["-9", &one.op.pid().to_string()])
        .status()?;
    wait_for("the operator gone", Duration::from_secs(30), || {
        let gone = !one.op.is_running();
        async move { gone.then_some(()) }
    })
    .await?;
    let kubeconfig = support::write_kubeconfig(one.tmp.path(), one.env.cluster(0))?;
    one.op = support::Operator::start(
        &kubeconfig,
        &one.tmp.path().join("plugins"),
        &["--resync-seconds", "2"],
    )?;
    one.op.wait_ready(Duration::from_secs(60)).await?;
    wait_for("r-again Complete", Duration::from_secs(300), || async {
        let j = restores.get("r-again").await.ok()?;
        (cond_status(&j.data, "Complete").as_deref() == Some("True")).then_some(())
    })
    .await
    .map_err(|e| e.context(diag()))?;
    assert!(all_at(sim, "shop.orders", "A"), "{:?}", versions(sim));
    assert!(all_at(sim, "logs.events", "A"), "{:?}", versions(sim));
    let again = restores.get("r-again").await?;
    let again_key = again.data["status"]["restoreKey"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(
        restores_with_key(sim, again_key).len(),
        3,
        "one restore per pod across the operator restart"
    );
    // Every node prepared the restore (Medusa's PrepareRestore) under the job's key.
    let prepared: Vec<String> = sim
        .medusa()
        .prepared_restores()
        .into_iter()
        .filter(|p| p.restore_key == again_key && p.backup == "b-a")
        .map(|p| p.pod)
        .collect();
    assert_eq!(prepared.len(), 3, "{prepared:?}");

    // A restore of one keyspace: shop back at A, logs kept at B, on every pod.
    wait_for(
        "dc1 Ready after r-again",
        Duration::from_secs(120),
        || async { support::dc_ready(&dcs, "dc1").await.then_some(()) },
    )
    .await?;
    write_state(sim, "B");
    apply_yaml(&client, &restore_job("r-shop", "b-a", &["shop"]), NS).await?;
    let saw_names = Arc::new(AtomicBool::new(false));
    let shop = wait_for("r-shop Complete", Duration::from_secs(300), || {
        let (config_maps, restores) = (config_maps.clone(), restores.clone());
        let saw = saw_names.clone();
        async move {
            if let Ok(Some(cm)) = config_maps.get_opt("dc1-medusa-restore").await {
                let data = cm.data.unwrap_or_default();
                if data.get("MEDUSA_RESTORE_KEYSPACES").map(String::as_str) == Some("shop")
                    && data.get("PYTHONPATH").map(String::as_str)
                        == Some("/etc/medusa:/home/cassandra")
                {
                    saw.store(true, Ordering::SeqCst);
                }
            }
            let j = restores.get("r-shop").await.ok()?;
            (cond_status(&j.data, "Complete").as_deref() == Some("True")).then_some(j)
        }
    })
    .await
    .map_err(|e| e.context(diag()))?;
    assert!(
        saw_names.load(Ordering::SeqCst),
        "the restore ConfigMap never named keyspace shop with the module on PYTHONPATH"
    );
    assert!(all_at(sim, "shop.orders", "A"), "{:?}", versions(sim));
    assert!(all_at(sim, "logs.events", "B"), "{:?}", versions(sim));
    let shop_key = shop.data["status"]["restoreKey"]
        .as_str()
        .unwrap_or_default();
    let restored = restores_with_key(sim, shop_key);
    assert_eq!(restored.len(), 3, "one restore per pod: {restored:?}");
    assert!(
        restored.iter().all(|e| e
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("keyspaces=shop "))),
        "{restored:?}"
    );

    // A scale-up afterwards starts only the new node: the others keep their pods, and
    // nothing restores.
    wait_for(
        "dc1 Ready after the restores",
        Duration::from_secs(120),
        || async { support::dc_ready(&dcs, "dc1").await.then_some(()) },
    )
    .await?;
    let uids = support::cassandra_pod_uids(&client, NS, CLUSTER).await;
    let restores_before = sim
        .history()
        .iter()
        .filter(|e| e.action == "restore")
        .count();
    dcs.patch(
        "dc1",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": 4}})),
    )
    .await?;
    wait_for(
        "dc1 Ready with 4 nodes",
        Duration::from_secs(240),
        || async {
            (support::dc_ready(&dcs, "dc1").await && normal_nodes(sim, CLUSTER) == 4).then_some(())
        },
    )
    .await
    .map_err(|e| e.context(diag()))?;
    let now = support::cassandra_pod_uids(&client, NS, CLUSTER).await;
    for (pod, uid) in &uids {
        if now.get(pod) != Some(uid) {
            bail!("{pod} was restarted by the scale-up: {uids:?} → {now:?}");
        }
    }
    assert_eq!(now.len(), 4);
    assert_eq!(
        sim.history()
            .iter()
            .filter(|e| e.action == "restore")
            .count(),
        restores_before,
        "a pod restored after the restore job ended"
    );

    assert_eq!(sim.violations(), Vec::new());
    drop(backup_jobs);
    one.sim.shutdown().await;
    Ok(())
}

fn restores_with_key(
    sim: &cassandra_sim::SimHandle,
    key: &str,
) -> Vec<cassandra_sim::HistoryEntry> {
    sim.history()
        .into_iter()
        .filter(|e| {
            e.action == "restore"
                && e.outcome == "ok"
                && e.detail
                    .as_deref()
                    .is_some_and(|d| d.contains(&format!("key={key} ")))
        })
        .collect()
}

fn role_creates(sim: &cassandra_sim::SimHandle) -> Vec<cassandra_sim::HistoryEntry> {
    sim.history()
        .into_iter()
        .filter(|e| e.action == "role_create")
        .collect()
}

/// Milliseconds of an RFC 3339 time of the simulator's history.
fn history_ms(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t).map_or(0, |d| d.timestamp_millis())
}

/// Benchmark (docs/benchmarks.md): a backup and a restore of a 12-node datacenter (3
/// racks), the operator's time over the simulator's. The simulator's share of the backup is
/// its configured backup duration (every pod backs up at once); of the restore, the span
/// from the first Cassandra start after the stop to the last node NORMAL again. Run:
/// `cargo test -p k8ssandra-host --test integration medusa_restore_e2e::bench -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it by name"]
async fn bench_backup_and_restore_of_12_nodes() -> Result<()> {
    let one = support::OneCluster::start(
        13,
        NS,
        &[
            "cassandra-datacenter",
            "medusa-backup-job",
            "medusa-restore-job",
        ],
    )
    .await?;
    let (client, sim, op) = (one.client.clone(), &one.sim, &one.op);
    let backup_duration = Duration::from_secs(2);
    sim.medusa().set_settings(MedusaSettings {
        backup_duration,
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
    let restores = dynamic_api(
        &client,
        NS,
        "medusa.k8ssandra.io",
        "v1alpha1",
        "MedusaRestoreJob",
    )
    .await?;
    let diag = || tail(&op.log_text(), 60);
    apply_yaml(&client, &DC.replace("size: 3", "size: 12"), NS).await?;
    wait_for(
        "dc1 Ready with 12 nodes",
        Duration::from_secs(600),
        || async {
            (support::dc_ready(&dcs, "dc1").await && normal_nodes(sim, CLUSTER) == 12).then_some(())
        },
    )
    .await
    .map_err(|e| e.context(diag()))?;
    write_state(sim, "A");

    let t = std::time::Instant::now();
    apply_yaml(&client, &backup_job("bench"), NS).await?;
    wait_for("backup Complete", Duration::from_secs(300), || async {
        let j = jobs.get("bench").await.ok()?;
        (cond_status(&j.data, "Complete").as_deref() == Some("True")).then_some(())
    })
    .await
    .map_err(|e| e.context(diag()))?;
    let backup = t.elapsed();
    write_state(sim, "B");

    let history_before = sim.history().len();
    let t = std::time::Instant::now();
    apply_yaml(&client, &restore_job("bench", "bench", &[]), NS).await?;
    wait_for("restore Complete", Duration::from_secs(900), || async {
        let j = restores.get("bench").await.ok()?;
        (cond_status(&j.data, "Complete").as_deref() == Some("True")).then_some(())
    })
    .await
    .map_err(|e| e.context(diag()))?;
    let restore = t.elapsed();
    assert!(all_at(sim, "shop.orders", "A"), "{:?}", versions(sim));
    let starts: Vec<_> = sim.history()[history_before..]
        .iter()
        .filter(|e| e.action == "start")
        .cloned()
        .collect();
    assert!(starts.len() >= 12, "{starts:?}");
    let first = starts
        .iter()
        .map(|e| history_ms(&e.time))
        .min()
        .unwrap_or(0);
    let last = starts
        .iter()
        .filter_map(|e| e.end_time.as_deref().map(history_ms))
        .max()
        .unwrap_or(first);
    let sim_restore = Duration::from_millis(u64::try_from(last - first).unwrap_or(0));
    println!(
        "BENCH 12 nodes: backup {:.1} s (simulator {:.1} s, operator {:.1} s); restore {:.1} s (simulator starts {:.1} s, operator {:.1} s)",
        backup.as_secs_f64(),
        backup_duration.as_secs_f64(),
        backup.saturating_sub(backup_duration).as_secs_f64(),
        restore.as_secs_f64(),
        sim_restore.as_secs_f64(),
        restore.saturating_sub(sim_restore).as_secs_f64(),
    );
    assert_eq!(sim.violations(), Vec::new());
    one.sim.shutdown().await;
    Ok(())
}
