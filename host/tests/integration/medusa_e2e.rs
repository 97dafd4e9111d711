//! Medusa in the Cassandra pods, end to end: the real operator binaries, testenv, the
//! Cassandra simulator (which serves Medusa's gRPC beside every pod with a `medusa`
//! container). Two clusters: the control plane (k8ssandra-cluster and cassandra-datacenter
//! policies) and a data plane `cluster-1` (cassandra-datacenter, `--control-plane=false`)
//! holding the one datacenter, dc1 with 3 nodes.
//!
//! 1. A K8ssandraCluster with `medusa` (s3_compatible, host/port/secure, a storage Secret the
//!    user put in the data plane) → dc1 Ready; every Cassandra pod has the `medusa`
//!    container (port `grpc` 50051) and the `medusa-restore` init container after
//!    `server-config-init`; ConfigMap `demo-medusa` in the data plane holds the spec's
//!    values; Secret `demo-medusa` (generated in the control plane) reached the data plane
//!    and its role is a superuser in Cassandra; each pod's Medusa answers GetBackups
//!    through the host's gRPC client.
//!    Once dc1 is Ready, its purge schedule `demo-dc1-medusa-purge` (MedusaBackupSchedule,
//!    `0 0 * * *`, operationType purge) exists beside it in the data plane.
//!    Meanwhile a MedusaConfiguration in the control plane (medusa-configuration policy)
//!    whose storage Secret (unlabelled, as upstream manifests have it) lacks the key
//!    `credentials` shows SecretAvailable=False naming the key and the field, Ready=False;
//!    once the key is added, both turn True.
//! 2. A malformed `transferMaxBandwidth` → the K8ssandraCluster's Valid condition names the
//!    field; no pod restarts, the ConfigMap keeps its content, the purge schedule stays.
//!
//! A second scenario enables Medusa on a running datacenter: every node restarts exactly
//! once, never more than one down at a time.
//!
//! Throughout, the simulator records no violation.

use crate::support;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use anyhow::{Result, ensure};
use cassandra_sim::{SimHandle, SimOptions, Simulator};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8ssandra_host::dataplane::medusa::{MedusaClient, MedusaTarget};
use kube::api::ListParams;
use kube::{Api, Client};
use serde_json::{Value, json};

use k8ssandra_testenv::{TestEnv, TestEnvOptions};
use support::{
    Operator, add_client_config, apply_yaml, create_namespace, dc_ready, install_crds,
    normal_nodes, operator_crds, sim_starts, wait_crd, wait_for,
};

const NS: &str = "medusa-e2e";
const CLUSTER: &str = "demo";
const CTX_B: &str = "cluster-1";
const STORAGE_SECRET: &str = "medusa-bucket-key";
const PURGE_SCHEDULE: &str = "demo-dc1-medusa-purge";
const CONFIGURATION: &str = "shared-storage";
const CONFIGURATION_SECRET: &str = "shared-bucket-key";

fn medusa(bandwidth: &str) -> Value {
    json!({
        "storageProperties": {
            "storageProvider": "s3_compatible",
            "bucketName": "e2e-backups",
            "storageSecretRef": {"name": STORAGE_SECRET},
            "host": "s3.storage.svc",
            "port": 9000,
            "secure": false,
            "maxBackupCount": 5,
            "transferMaxBandwidth": bandwidth,
        }
    })
}

fn manifest(medusa: Option<Value>) -> String {
    let mut kc = json!({
        "apiVersion": "k8ssandra.io/v1alpha1",
        "kind": "K8ssandraCluster",
        "metadata": {"name": CLUSTER, "namespace": NS},
        "spec": {
            "cassandra": {
                "serverVersion": "4.1.5",
                "storageConfig": {"cassandraDataVolumeClaimSpec": {
                    "storageClassName": "standard", "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "5Gi"}}}},
                "datacenters": [{"metadata": {"name": "dc1"}, "k8sContext": CTX_B, "size": 3}],
            },
        },
    });
    if let Some(m) = medusa {
        kc["spec"]["medusa"] = m;
    }
    serde_json::to_string(&kc).unwrap_or_default()
}

async fn cassandra_pods(c: &Client) -> Vec<Pod> {
    Api::<Pod>::namespaced(c.clone(), NS)
        .list(&ListParams::default().labels(&format!("cassandra.datastax.com/cluster={CLUSTER}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

fn uids(pods: &[Pod]) -> BTreeMap<String, String> {
    pods.iter()
        .map(|p| {
            (
                p.metadata.name.clone().unwrap_or_default(),
                p.metadata.uid.clone().unwrap_or_default(),
            )
        })
        .collect()
}

async fn kc_status(cp: &Client) -> Value {
    support::kc_status(cp, NS, CLUSTER).await
}

async fn medusa_ini(c: &Client) -> Option<String> {
    Api::<ConfigMap>::namespaced(c.clone(), NS)
        .get_opt("demo-medusa")
        .await
        .ok()
        .flatten()?
        .data?
        .get("medusa.ini")
        .cloned()
}

/// What a pod's template says about Medusa: (containers, init containers in order, the
/// `medusa` container's grpc port).
fn medusa_parts(p: &Pod) -> (Vec<String>, Vec<String>, Option<i32>) {
    let spec = p.spec.clone().unwrap_or_default();
    let containers: Vec<String> = spec.containers.iter().map(|c| c.name.clone()).collect();
    let inits: Vec<String> = spec
        .init_containers
        .unwrap_or_default()
        .iter()
        .map(|c| c.name.clone())
        .collect();
    let port = spec
        .containers
        .iter()
        .find(|c| c.name == "medusa")
        .and_then(|c| c.ports.clone())
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.name.as_deref() == Some("grpc"))
        .map(|p| p.container_port);
    (containers, inits, port)
}

/// The storage credentials are the user's, in the datacenter's cluster and namespace.
async fn storage_secret(b: &Client) -> Result<()> {
    apply_yaml(
        b,
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {STORAGE_SECRET}\n  namespace: {NS}\nstringData:\n  credentials: |\n    [default]\n    aws_access_key_id = e2e\n    aws_secret_access_key = e2e\n"
        ),
        NS,
    )
    .await
}

async fn purge_schedule(b: &Client) -> Option<Value> {
    let api = support::dynamic_api(
        b,
        NS,
        "medusa.k8ssandra.io",
        "v1alpha1",
        "MedusaBackupSchedule",
    )
    .await
    .ok()?;
    let s = api.get_opt(PURGE_SCHEDULE).await.ok().flatten()?;
    serde_json::to_value(s).ok()
}

/// A storage Secret in the control plane as a user writes it (no label), with `key`.
async fn configuration_secret(cp: &Client, key: &str) -> Result<()> {
    apply_yaml(
        cp,
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {CONFIGURATION_SECRET}\n  namespace: {NS}\nstringData:\n  {key}: e2e\n"
        ),
        NS,
    )
    .await
}

/// (status, reason, message) of a MedusaConfiguration condition.
async fn configuration_condition(cp: &Client, t: &str) -> Option<(String, String, String)> {
    let api = support::dynamic_api(
        cp,
        NS,
        "medusa.k8ssandra.io",
        "v1alpha1",
        "MedusaConfiguration",
    )
    .await
    .ok()?;
    let c = serde_json::to_value(api.get_opt(CONFIGURATION).await.ok().flatten()?).ok()?;
    let cond = support::condition(&c, t)?;
    let s = |k: &str| cond[k].as_str().unwrap_or_default().to_string();
    Some((s("status"), s("reason"), s("message")))
}

struct Scenario {
    _env: TestEnv,
    cp: Client,
    b: Client,
    sim: SimHandle,
    operators: Vec<Operator>,
    _tmp: tempfile::TempDir,
}

impl Scenario {
    async fn start() -> Result<Scenario> {
        let env = TestEnv::start(TestEnvOptions {
            clusters: 2,
            ..Default::default()
        })
        .await?;
        let clients: Vec<Client> = (0..2).map(|i| env.cluster(i).client()).collect();
        let crds = operator_crds()?;
        for c in &clients {
            install_crds(c, &crds).await?;
            create_namespace(c, NS).await?;
            wait_crd(
                c,
                "cassandra.datastax.com",
                "v1beta1",
                "CassandraDatacenter",
            )
            .await?;
        }
        let cp = clients[0].clone();
        let b = clients[1].clone();
        wait_crd(&cp, "k8ssandra.io", "v1alpha1", "K8ssandraCluster").await?;
        wait_crd(&cp, "config.k8ssandra.io", "v1beta1", "ClientConfig").await?;
        let mut opts = SimOptions::default();
        opts.config.bootstrap_delay = Duration::from_millis(200);
        let contexts = vec![
            (env.cluster(0).context_name().to_string(), cp.clone()),
            (CTX_B.to_string(), b.clone()),
        ];
        let sim = Simulator::start(opts, contexts).await?;
        let mut tmp = tempfile::tempdir()?;
        if std::env::var_os("TESTENV_KEEP").is_some() {
            tmp.disable_cleanup(true);
        }
        let mut operators = Vec::new();
        for i in 0..2 {
            let (policies, mut args): (&[&str], Vec<&str>) = if i == 0 {
                (
                    &[
                        "k8ssandra-cluster",
                        "cassandra-datacenter",
                        "medusa-configuration",
                    ],
                    vec![],
                )
            } else {
                (&["cassandra-datacenter"], vec!["--control-plane=false"])
            };
            args.extend(["--resync-seconds", "5"]);
            let op = Operator::start_for(
                &tmp.path().join(format!("op{i}")),
                env.cluster(i),
                policies,
                &args,
            )?;
            op.wait_ready(Duration::from_secs(120)).await?;
            operators.push(op);
        }
        add_client_config(
            &cp,
            NS,
            CTX_B,
            &format!("{CTX_B}-kubeconfig"),
            env.cluster(1).kubeconfig_yaml(),
        )
        .await?;
        Ok(Scenario {
            _env: env,
            cp,
            b,
            sim,
            operators,
            _tmp: tmp,
        })
    }

    async fn diagnostics(&self) -> String {
        let mut out = format!("K8ssandraCluster status: {}\n", kc_status(&self.cp).await);
        out.push_str(&format!(
            "medusa.ini in cluster-1: {:?}\nsimulator violations: {:?}\n",
            medusa_ini(&self.b).await,
            self.sim.violations()
        ));
        for p in cassandra_pods(&self.b).await {
            out.push_str(&format!(
                "pod {}: {:?}\n",
                p.metadata.name.clone().unwrap_or_default(),
                medusa_parts(&p)
            ));
        }
        for (i, o) in self.operators.iter().enumerate() {
            let log = o.log_text();
            let lines: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .collect();
            out.push_str(&format!(
                "--- operator {i} ({}), last warnings:\n{}\n",
                o.log.display(),
                lines[lines.len().saturating_sub(12)..].join("\n")
            ));
        }
        out
    }

    async fn wait<T, F, Fut>(&self, what: &str, timeout: Duration, check: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let started = std::time::Instant::now();
        let mut check = check;
        let bounded = || {
            let f = check();
            async move {
                tokio::time::timeout(Duration::from_secs(20), f)
                    .await
                    .ok()
                    .flatten()
            }
        };
        match wait_for(what, timeout, bounded).await {
            Ok(v) => {
                eprintln!("[{:>6.1?}] {what}", started.elapsed());
                Ok(v)
            }
            Err(e) => Err(e.context(self.diagnostics().await)),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn medusa_sidecars_config_and_secret_in_a_data_plane_datacenter() -> Result<()> {
    let sc = Scenario::start().await?;
    let (cp, b) = (sc.cp.clone(), sc.b.clone());
    let dcs_b = support::datacenters(&b, NS).await?;

    storage_secret(&b).await?;
    // A shared configuration whose Secret lacks the key Medusa reads.
    configuration_secret(&cp, "aws_access_key_id").await?;
    apply_yaml(
        &cp,
        &format!(
            "apiVersion: medusa.k8ssandra.io/v1alpha1\nkind: MedusaConfiguration\nmetadata:\n  name: {CONFIGURATION}\n  namespace: {NS}\nspec:\n  storageProperties:\n    storageProvider: s3_compatible\n    bucketName: shared\n    storageSecretRef:\n      name: {CONFIGURATION_SECRET}\n"
        ),
        NS,
    )
    .await?;

    // ── 1. medusa from the start ───────────────────────────────────────────────────────
    apply_yaml(&cp, &manifest(Some(medusa("50MB/s"))), NS).await?;
    sc.wait(
        "dc1 Ready in cluster-1",
        Duration::from_secs(420),
        || async { dc_ready(&dcs_b, "dc1").await.then_some(()) },
    )
    .await?;
    let pods = sc
        .wait(
            "3 Cassandra pods with Medusa",
            Duration::from_secs(120),
            || async {
                let pods = cassandra_pods(&b).await;
                (pods.len() == 3).then_some(pods)
            },
        )
        .await?;
    for p in &pods {
        let name = p.metadata.name.clone().unwrap_or_default();
        let (containers, inits, port) = medusa_parts(p);
        ensure!(
            containers.iter().any(|c| c == "medusa"),
            "{name}: containers {containers:?}"
        );
        let cfg = inits.iter().position(|c| c == "server-config-init");
        let restore = inits.iter().position(|c| c == "medusa-restore");
        ensure!(
            matches!((cfg, restore), (Some(c), Some(r)) if c < r),
            "{name}: init containers {inits:?}"
        );
        ensure!(port == Some(50051), "{name}: grpc port {port:?}");
        let vols: Vec<String> = p
            .spec
            .as_ref()
            .and_then(|s| s.volumes.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect();
        for v in ["demo-medusa", STORAGE_SECRET, "podinfo", "medusa-tmp"] {
            ensure!(
                vols.iter().any(|x| x == v),
                "{name}: volume {v} in {vols:?}"
            );
        }
    }

    let ini = sc
        .wait(
            "ConfigMap demo-medusa in cluster-1",
            Duration::from_secs(60),
            || async { medusa_ini(&b).await },
        )
        .await?;
    for line in [
        "storage_provider = s3_compatible",
        "bucket_name = e2e-backups",
        "key_file = /etc/medusa-secrets/credentials",
        "prefix = demo",
        "max_backup_count = 5",
        "host = s3.storage.svc",
        "port = 9000",
        "secure = False",
        "transfer_max_bandwidth = 50MB/s",
        "use_mgmt_api = 1",
    ] {
        ensure!(
            ini.lines().any(|l| l == line),
            "{line:?} not in medusa.ini:\n{ini}"
        );
    }

    // The CQL Secret, generated in the control plane, copied to the data plane.
    for (c, at) in [(&cp, "control plane"), (&b, "cluster-1")] {
        let mut keys = sc
            .wait(
                &format!("Secret demo-medusa in {at}"),
                Duration::from_secs(60),
                || async {
                    let s = Api::<Secret>::namespaced(c.clone(), NS)
                        .get_opt("demo-medusa")
                        .await
                        .ok()
                        .flatten()?;
                    Some(s.data.unwrap_or_default().into_keys().collect::<Vec<_>>())
                },
            )
            .await?;
        keys.sort();
        ensure!(keys == ["password", "username"], "{at}: {keys:?}");
    }
    sc.wait(
        "role demo-medusa (superuser) in Cassandra",
        Duration::from_secs(180),
        || async {
            let state = sc.sim.state();
            state
                .cluster(CLUSTER)?
                .roles
                .iter()
                .any(|r| r.name == "demo-medusa" && r.superuser && r.login && r.password_set)
                .then_some(())
        },
    )
    .await?;

    // Each pod's Medusa answers, at its IP and the port of its `grpc` container port.
    let client = MedusaClient::new();
    for p in &pods {
        let name = p.metadata.name.clone().unwrap_or_default();
        let ip = p
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .ok_or_else(|| anyhow::anyhow!("{name} has no IP"))?;
        let target = MedusaTarget {
            endpoint: format!("{ip}:50051"),
            tls: None,
        };
        let backups = sc
            .wait(
                &format!("GetBackups on {name}"),
                Duration::from_secs(60),
                || async { client.get_backups(&target).await.ok() },
            )
            .await?;
        ensure!(backups.is_empty(), "{name}: backups {backups:?}");
    }
    let running = uids(&pods);

    // The purge schedule beside the Ready datacenter.
    let schedule = sc
        .wait(
            "purge schedule demo-dc1-medusa-purge in cluster-1",
            Duration::from_secs(60),
            || async { purge_schedule(&b).await },
        )
        .await?;
    ensure!(
        schedule["spec"]["cronSchedule"] == "0 0 * * *"
            && schedule["spec"]["operationType"] == "purge"
            && schedule["spec"]["backupSpec"]["cassandraDatacenter"] == "dc1",
        "purge schedule: {schedule}"
    );
    ensure!(
        schedule.pointer("/metadata/labels/k8ssandra.io~1cluster-name") == Some(&json!(CLUSTER)),
        "purge schedule labels: {}",
        schedule["metadata"]["labels"]
    );

    // The shared configuration: its Secret misses `credentials`, then gets it.
    let (_, reason, msg) = sc
        .wait(
            "MedusaConfiguration SecretAvailable=False",
            Duration::from_secs(60),
            || async {
                configuration_condition(&cp, "SecretAvailable")
                    .await
                    .filter(|(s, _, _)| s == "False")
            },
        )
        .await?;
    ensure!(
        reason == "SecretKeyMissing"
            && msg.contains("spec.storageProperties.storageSecretRef.name")
            && msg.contains("\"credentials\""),
        "SecretAvailable: {reason}: {msg}"
    );
    let ready = configuration_condition(&cp, "Ready").await;
    ensure!(
        ready.as_ref().is_some_and(|(s, _, _)| s == "False"),
        "Ready: {ready:?}"
    );
    configuration_secret(&cp, "credentials").await?;
    sc.wait(
        "MedusaConfiguration SecretAvailable and Ready True",
        Duration::from_secs(60),
        || async {
            let ok = |c: Option<(String, String, String)>| c.is_some_and(|(s, _, _)| s == "True");
            (ok(configuration_condition(&cp, "SecretAvailable").await)
                && ok(configuration_condition(&cp, "Ready").await))
            .then_some(())
        },
    )
    .await?;

    // ── 2. a malformed setting ─────────────────────────────────────────────────────────
    apply_yaml(&cp, &manifest(Some(medusa("fast"))), NS).await?;
    let msg = sc
        .wait(
            "Valid=False naming the field",
            Duration::from_secs(60),
            || async {
                let st = json!({"status": kc_status(&cp).await});
                let c = support::condition(&st, "Valid")?;
                (c["status"] == "False")
                    .then(|| c["message"].as_str().unwrap_or_default().to_string())
            },
        )
        .await?;
    ensure!(
        msg.contains("spec.medusa.storageProperties.transferMaxBandwidth"),
        "Valid message: {msg}"
    );
    // A few resyncs (5 s each) later: nothing restarted, the ConfigMap unchanged.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let after = uids(&cassandra_pods(&b).await);
    ensure!(after == running, "pods changed: {running:?} → {after:?}");
    let kept = medusa_ini(&b).await;
    ensure!(
        kept.as_deref() == Some(ini.as_str()),
        "medusa.ini changed: {kept:?}"
    );
    let kept = purge_schedule(&b).await;
    ensure!(
        kept.as_ref().is_some_and(|k| k["spec"] == schedule["spec"]),
        "the purge schedule changed while the spec is refused: {kept:?}"
    );

    let violations = sc.sim.violations();
    ensure!(
        violations.is_empty(),
        "simulator violations: {violations:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enabling_medusa_on_a_running_datacenter_rolls_it_once_one_node_at_a_time() -> Result<()> {
    let sc = Scenario::start().await?;
    let (cp, b) = (sc.cp.clone(), sc.b.clone());
    let dcs_b = support::datacenters(&b, NS).await?;
    storage_secret(&b).await?;

    apply_yaml(&cp, &manifest(None), NS).await?;
    sc.wait(
        "dc1 Ready without Medusa",
        Duration::from_secs(420),
        || async {
            (dc_ready(&dcs_b, "dc1").await && normal_nodes(&sc.sim, CLUSTER) == 3).then_some(())
        },
    )
    .await?;
    let before = cassandra_pods(&b).await;
    ensure!(before.len() == 3, "pods: {:?}", uids(&before));
    for p in &before {
        let (containers, inits, _) = medusa_parts(p);
        ensure!(
            !containers.iter().any(|c| c == "medusa")
                && !inits.iter().any(|c| c == "medusa-restore"),
            "no Medusa yet: {containers:?} {inits:?}"
        );
    }
    let starts = sim_starts(&sc.sim).len();
    ensure!(starts == 3, "{starts} starts before Medusa");

    apply_yaml(&cp, &manifest(Some(medusa("50MB/s"))), NS).await?;
    let mut max_down = 0;
    sc.wait(
        "every pod restarted with Medusa, dc1 Ready",
        Duration::from_secs(420),
        || {
            max_down = max_down.max(3 - normal_nodes(&sc.sim, CLUSTER).min(3));
            let (b, dcs_b, sim) = (&b, &dcs_b, &sc.sim);
            async move {
                let pods = cassandra_pods(b).await;
                let all = pods.len() == 3
                    && pods.iter().all(|p| {
                        let (containers, inits, _) = medusa_parts(p);
                        containers.iter().any(|c| c == "medusa")
                            && inits.iter().any(|c| c == "medusa-restore")
                    });
                (all && normal_nodes(sim, CLUSTER) == 3 && dc_ready(dcs_b, "dc1").await)
                    .then_some(())
            }
        },
    )
    .await?;
    ensure!(
        max_down <= 1,
        "{max_down} nodes were down at once during the roll"
    );
    // Settled: a few resyncs more restart nothing.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let restarts: Vec<String> = sim_starts(&sc.sim)[3..]
        .iter()
        .filter_map(|h| h.pod.as_ref().map(|p| p.name.clone()))
        .collect();
    let distinct: std::collections::BTreeSet<&String> = restarts.iter().collect();
    ensure!(
        restarts.len() == 3 && distinct.len() == 3,
        "each node restarted exactly once: {restarts:?}"
    );
    let after = uids(&cassandra_pods(&b).await);
    let old = uids(&before);
    ensure!(
        after.iter().all(|(name, uid)| old.get(name) != Some(uid)),
        "every pod replaced: {old:?} → {after:?}"
    );
    let violations = sc.sim.violations();
    ensure!(
        violations.is_empty(),
        "simulator violations: {violations:?}"
    );
    Ok(())
}
