//! The Medusa operations of a plan (WIT 0.3.0) through the host's executor and gRPC client
//! against the simulator's Medusa service: a backup of every node followed to its end, a
//! node whose backup fails, a node that hangs (the deadline ends the call), GetBackups and
//! PrepareRestore. Pods are fed to the simulator directly, on 127.0.63.0/24.

use std::sync::Arc;
use std::time::Duration;

use cassandra_sim::medusa::{MedusaFault, MedusaSettings};
use cassandra_sim::{PodInfo, PodKey, SimConfig, SimOptions, Simulator};
use k8ssandra_host::dataplane::medusa::{MedusaClient, MedusaDeadlines, MedusaTarget};
use k8ssandra_host::dataplane::{ExecutorConfig, MedusaAccess, OperationExecutor};
use k8ssandra_host::plugin::bindings::{
    MedusaBackup, MedusaBackupMode, MedusaRestore, NodeRef, Operation, OperationKind, Outcome,
};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use k8ssandra_host::dataplane::{SecretData, SecretError, SecretReader};

const NET: u8 = 63;
const MEDUSA_PORT: u16 = 50051;
const HANG_GUARD: Duration = Duration::from_secs(60);

fn ip(host: u8) -> String {
    format!("127.0.{NET}.{host}")
}

fn node(pod: &str) -> NodeRef {
    NodeRef {
        cluster: String::new(),
        namespace: "ns".into(),
        pod: pod.into(),
    }
}

fn op(id: &str, pod: &str, kind: OperationKind) -> Operation {
    Operation {
        id: id.into(),
        target: node(pod),
        kind,
    }
}

/// Medusa operations read no Secret; nothing else runs here.
fn no_secrets() -> Arc<dyn SecretReader> {
    Arc::new(
        |cluster: String, namespace: String, name: String| async move {
            Err::<SecretData, _>(SecretError {
                cluster,
                namespace,
                name,
                reason: "no Secrets in this test".into(),
            })
        },
    )
}

fn free_port() -> u16 {
    match std::net::TcpListener::bind(format!("{}:0", ip(1))).and_then(|l| l.local_addr()) {
        Ok(a) => a.port(),
        Err(e) => panic!("free port: {e}"),
    }
}

async fn outcome(
    exec: &OperationExecutor,
    rx: &mut UnboundedReceiver<String>,
    id: &str,
) -> Outcome {
    let wait = async {
        loop {
            match exec.results("c1").into_iter().find(|r| r.id == id) {
                Some(r) if !matches!(r.outcome, Outcome::Running(_)) => return r.outcome,
                _ => {}
            }
            if rx.recv().await.is_none() {
                panic!("executor gone");
            }
        }
    };
    match tokio::time::timeout(HANG_GUARD, wait).await {
        Ok(o) => o,
        Err(_) => panic!("operation {id} never finished"),
    }
}

#[tokio::test]
async fn medusa_operations_run_against_the_simulated_nodes() {
    let mgmt_port = free_port();
    let sim = match Simulator::start(
        SimOptions {
            mgmt_port,
            control_addr: None,
            config: SimConfig {
                bootstrap_delay: Duration::ZERO,
                mgmt_api_start_delay: Duration::ZERO,
                gossip_delay: Duration::ZERO,
                ring_delay: Duration::ZERO,
                ..SimConfig::default()
            },
        },
        Vec::new(),
    )
    .await
    {
        Ok(s) => s,
        Err(e) => panic!("simulator: {e}"),
    };
    sim.medusa().set_settings(MedusaSettings {
        backup_duration: Duration::from_millis(300),
        max_backup_count: 1,
        max_backup_age_days: 0,
    });
    let pods = ["n0", "n1", "n2"];
    for (i, pod) in pods.iter().enumerate() {
        sim.upsert_pod(
            PodInfo::new(
                PodKey::new("", "ns", *pod),
                ip(2 + i as u8),
                "c1",
                "dc1",
                ["r1", "r2", "r3"][i],
                i == 0,
            )
            .with_medusa(MEDUSA_PORT),
        );
    }

    let (tx, mut rx) = unbounded_channel();
    let api = k8ssandra_host::dataplane::ManagementApi::new(
        k8ssandra_host::dataplane::ManagementApiConfig {
            port: mgmt_port,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("client: {e}"));
    let exec = OperationExecutor::new(
        api,
        no_secrets(),
        tx,
        ExecutorConfig {
            job_poll_initial: Duration::from_millis(20),
            job_poll_max: Duration::from_millis(100),
            ..Default::default()
        },
    );
    let deadlines = MedusaDeadlines {
        status: Duration::from_secs(2),
        ..MedusaDeadlines::default()
    };
    exec.set_medusa(MedusaAccess {
        client: MedusaClient::new().with_deadlines(deadlines),
        targets: Arc::new(|n: NodeRef, address: String| async move {
            let _ = n;
            Ok::<_, String>(MedusaTarget {
                endpoint: format!("{address}:{MEDUSA_PORT}"),
                tls: None,
            })
        }),
    });
    let resolve = |n: &NodeRef| {
        let i: u8 = n.pod.strip_prefix('n')?.parse().ok()?;
        Some(ip(2 + i))
    };

    // Cassandra must run for a backup: start the ring, seed first.
    for pod in pods {
        let id = format!("start/{pod}");
        exec.execute(
            "c1",
            vec![op(&id, pod, OperationKind::Start(None))],
            resolve,
        );
        match outcome(&exec, &mut rx, &id).await {
            Outcome::Succeeded(_) => {}
            other => panic!("start of {pod}: {other:?}"),
        }
    }

    // A backup on every node, followed to its end.
    let backup = |name: &str| {
        OperationKind::MedusaBackup(MedusaBackup {
            name: name.into(),
            mode: MedusaBackupMode::Differential,
        })
    };
    let ids: Vec<String> = pods.iter().map(|p| format!("backup/b1/{p}")).collect();
    exec.execute(
        "c1",
        pods.iter()
            .zip(&ids)
            .map(|(p, id)| op(id, p, backup("b1")))
            .collect(),
        resolve,
    );
    for id in &ids {
        match outcome(&exec, &mut rx, id).await {
            Outcome::Succeeded(body) => {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                assert_eq!(v["status"], "SUCCESS", "{body}");
                assert!(!v["finishTime"].as_str().unwrap_or("").is_empty(), "{body}");
            }
            other => panic!("{id}: {other:?}"),
        }
    }
    let calls = sim.medusa().backup_calls();
    for pod in pods {
        assert_eq!(
            calls.get(&(format!("/ns/{pod}"), "b1".to_string())),
            Some(&1),
            "{calls:?}"
        );
    }

    // The cluster's view: one backup, three nodes with their racks and tokens.
    exec.execute(
        "c1",
        vec![op("list/1", "n1", OperationKind::MedusaGetBackups)],
        resolve,
    );
    let Outcome::Succeeded(body) = outcome(&exec, &mut rx, "list/1").await else {
        panic!("get-backups failed");
    };
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list[0]["backupName"], "b1", "{body}");
    assert_eq!(list[0]["totalNodes"], 3, "{body}");
    assert_eq!(list[0]["finishedNodes"], 3, "{body}");
    assert_eq!(list[0]["status"], "SUCCESS", "{body}");
    let mut racks: Vec<&str> = list[0]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["rack"].as_str().unwrap())
        .collect();
    racks.sort();
    assert_eq!(racks, ["r1", "r2", "r3"]);
    assert!(
        list[0]["nodes"][0]["tokens"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
    );

    // One node's backup fails: its operation fails, naming the status.
    sim.medusa()
        .set_fault("/ns/n2", Some(MedusaFault::FailBackups));
    exec.execute("c1", vec![op("backup/b2/n2", "n2", backup("b2"))], resolve);
    match outcome(&exec, &mut rx, "backup/b2/n2").await {
        Outcome::Failed(m) => assert!(m.contains("FAILED"), "{m}"),
        other => panic!("a failing backup succeeded: {other:?}"),
    }

    // A hanging node: the status call's deadline ends the operation instead of holding it.
    sim.medusa().set_fault("/ns/n2", Some(MedusaFault::Hang));
    exec.execute(
        "c1",
        vec![op(
            "status/hang",
            "n2",
            OperationKind::MedusaBackupStatus("b1".into()),
        )],
        resolve,
    );
    match outcome(&exec, &mut rx, "status/hang").await {
        Outcome::Failed(m) => assert!(m.contains("did not answer"), "{m}"),
        other => panic!("a hanging call did not fail: {other:?}"),
    }
    sim.medusa().set_fault("/ns/n2", None);

    // An unknown backup is refused; a known one is prepared for restore.
    let restore = |backup: &str| {
        OperationKind::MedusaPrepareRestore(MedusaRestore {
            datacenter: "dc1".into(),
            backup_name: backup.into(),
            restore_key: "key-1".into(),
        })
    };
    exec.execute(
        "c1",
        vec![op("prepare/nope", "n0", restore("nope"))],
        resolve,
    );
    match outcome(&exec, &mut rx, "prepare/nope").await {
        Outcome::Failed(m) => assert!(m.contains("not found"), "{m}"),
        other => panic!("restore of an unknown backup prepared: {other:?}"),
    }
    exec.execute("c1", vec![op("prepare/b1", "n0", restore("b1"))], resolve);
    assert!(matches!(
        outcome(&exec, &mut rx, "prepare/b1").await,
        Outcome::Succeeded(_)
    ));
    assert_eq!(sim.medusa().prepared_restores().len(), 1);

    // Purge is per node, as Medusa's: on n0, which holds b1 and b3, the newest one stays
    // (max_backup_count 1) and n0's part of b1 goes, so b1 is listed unfinished; the failed
    // b2 is never purged by count.
    exec.execute("c1", vec![op("backup/b3/n0", "n0", backup("b3"))], resolve);
    assert!(matches!(
        outcome(&exec, &mut rx, "backup/b3/n0").await,
        Outcome::Succeeded(_)
    ));
    exec.execute(
        "c1",
        vec![op("purge/1", "n0", OperationKind::MedusaPurgeBackups)],
        resolve,
    );
    let Outcome::Succeeded(body) = outcome(&exec, &mut rx, "purge/1").await else {
        panic!("purge failed");
    };
    let purged: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(purged["backupsPurged"], 1, "{body}");
    let b1 = sim
        .medusa()
        .backups("c1")
        .into_iter()
        .find(|b| b.name == "b1")
        .expect("b1 still has the parts of n1 and n2");
    assert_eq!(
        b1.nodes.keys().cloned().collect::<Vec<_>>(),
        ["/ns/n1", "/ns/n2"]
    );
    exec.execute(
        "c1",
        vec![op("list/2", "n1", OperationKind::MedusaGetBackups)],
        resolve,
    );
    let Outcome::Succeeded(body) = outcome(&exec, &mut rx, "list/2").await else {
        panic!("get-backups failed");
    };
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    let b1 = list
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["backupName"] == "b1")
        .unwrap();
    assert_eq!(b1["status"], "IN_PROGRESS", "{body}");
    assert_eq!(b1["totalNodes"], 3, "{body}");
    assert_eq!(b1["finishedNodes"], 2, "{body}");

    assert_eq!(sim.violations(), Vec::new());
    sim.shutdown().await;
}
