//! Reaper end to end, with the real operator binary, one testenv cluster and the Cassandra
//! simulator. The operator runs the k8ssandra-cluster, cassandra-datacenter and reaper
//! policies. One sequential scenario:
//!
//! 1. A K8ssandraCluster with one datacenter (dc1, 3 nodes) becomes Ready.
//! 2. `reaper` (with telemetry, see 3) is added → the Secrets `demo-reaper` and
//!    `demo-reaper-ui`, the role `demo-reaper` (a superuser) in the simulated cluster,
//!    `reaper_db` replicated {dc1: 3},
//!    then the Reaper `demo-dc1-reaper` with its Deployment (schema-migration init container,
//!    credentials by secretKeyRef) and Service `demo-dc1-reaper-service`; its status reaches
//!    `Configuring` (registration is not implemented yet, its Ready condition says so) and is
//!    mirrored into the K8ssandraCluster's status.
//! 3. Telemetry (`spec.reaper.telemetry`, passed down to the Reaper): the Vector ConfigMap
//!    `demo-dc1-reaper-vector` and the `reaper-vector-agent` sidecar; `TelemetryReady=False`
//!    while ServiceMonitors are not served, then, once their CRD is installed, the
//!    ServiceMonitor `demo-dc1-reaper-reaper-servicemonitor` selecting the Service's label and
//!    `admin` port. A VRL error → `Ready=False` naming the transform, the Vector ConfigMap and
//!    the Deployment unchanged.
//! 4. A standalone Reaper naming a datacenter that does not exist gets `Ready=False` naming
//!    `spec.datacenterRef.name`, and no workload.
//!    Then declared repair schedules (see `schedules`) and one-off RepairRuns (see
//!    `repair_runs`: one Reaper run across an operator restart, KeyspaceNotFound,
//!    ReaperUnreachable).
//! 5. `reaper` is removed → the Reaper and its children (ServiceMonitor and Vector
//!    ConfigMap too) go; the keyspace stays.
//!
//! Throughout, the Cassandra pods keep their uids (adding Reaper restarts no node) and the
//! simulator records no violation.
//!
//! A second scenario spans two clusters (dc2 in cluster 1, run by a data-plane operator):
//! `reaper_db` replicated {dc1: 3, dc2: 3} before any Reaper, then a Reaper in each
//! datacenter's cluster (`EACH`), both deployed, with the Secrets copied to cluster 1.

use crate::support;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use anyhow::{Result, ensure};
use cassandra_sim::{SimHandle, SimOptions, Simulator};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{DynamicObject, ListParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use k8ssandra_testenv::{TestEnv, TestEnvOptions};
use support::{
    Operator, SERVICE_MONITOR_CRD, add_client_config, apply_yaml, condition, create_namespace,
    dc_ready, install_crds, operator_crds, wait_crd,
};

const NS: &str = "reaper-e2e";
const CLUSTER: &str = "demo";
const REAPER: &str = "demo-dc1-reaper";
const CTX_B: &str = "cluster-1";
const CONTROL_PLANE_POLICIES: &[&str] = &[
    "k8ssandra-cluster",
    "cassandra-datacenter",
    "reaper",
    "repair-schedule",
    "repair-run",
];

fn manifest(reaper: Option<Value>) -> String {
    manifest_with(json!([{"metadata": {"name": "dc1"}, "size": 3}]), reaper)
}

fn manifest_with(datacenters: Value, reaper: Option<Value>) -> String {
    let mut kc = json!({
        "apiVersion": "k8ssandra.io/v1alpha1",
        "kind": "K8ssandraCluster",
        "metadata": {"name": CLUSTER, "namespace": NS},
        "spec": {"cassandra": {
            "serverVersion": "4.1.5",
            "storageConfig": {"cassandraDataVolumeClaimSpec": {
                "storageClassName": "standard", "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "5Gi"}}}},
            "datacenters": datacenters,
        }},
    });
    if let Some(r) = reaper {
        kc["spec"]["reaper"] = r;
    }
    serde_json::to_string(&kc).unwrap_or_default()
}

async fn reapers(c: &Client) -> Result<Api<DynamicObject>> {
    support::dynamic_api(c, NS, "reaper.k8ssandra.io", "v1alpha1", "Reaper").await
}

async fn reaper(c: &Client, name: &str) -> Option<Value> {
    let api = reapers(c).await.ok()?;
    api.get_opt(name).await.ok().flatten().map(|o| o.data)
}

/// The Ready condition of a Reaper: (status, reason, message).
fn ready_condition(r: &Value) -> Option<(String, String, String)> {
    let c = r
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?;
    Some((
        c["status"].as_str()?.to_string(),
        c["reason"].as_str().unwrap_or_default().to_string(),
        c["message"].as_str().unwrap_or_default().to_string(),
    ))
}

async fn deployment(c: &Client, name: &str) -> Option<Deployment> {
    Api::<Deployment>::namespaced(c.clone(), NS)
        .get_opt(name)
        .await
        .ok()
        .flatten()
        .filter(|d| d.metadata.deletion_timestamp.is_none())
}

async fn service(c: &Client, name: &str) -> Option<Service> {
    Api::<Service>::namespaced(c.clone(), NS)
        .get_opt(name)
        .await
        .ok()
        .flatten()
        .filter(|s| s.metadata.deletion_timestamp.is_none())
}

/// `spec.reaper` with Prometheus and Vector on; `vrl`, when given, is the source
/// of a `remap` transform feeding a Prometheus remote-write sink.
fn reaper_telemetry(vrl: Option<&str>) -> Value {
    let mut vector = json!({"enabled": true, "scrapeInterval": "20s"});
    if let Some(src) = vrl {
        vector["components"] = json!({
            "transforms": [{"name": "tagged", "type": "remap", "inputs": ["reaper_metrics"],
                            "config": format!("source = '''\n{src}\n'''")}],
            "sinks": [{"name": "remote", "type": "prometheus_remote_write",
                       "inputs": ["tagged"],
                       "config": "endpoint = \"http://prometheus:9090/api/v1/write\""}],
        });
    }
    json!({"telemetry": {"prometheus": {"enabled": true}, "vector": vector}})
}

async fn vector_toml(c: &Client) -> Option<String> {
    Api::<ConfigMap>::namespaced(c.clone(), NS)
        .get_opt("demo-dc1-reaper-vector")
        .await
        .ok()
        .flatten()?
        .data?
        .remove("vector.toml")
}

async fn secret_keys(c: &Client, name: &str) -> Option<Vec<String>> {
    let s = Api::<Secret>::namespaced(c.clone(), NS)
        .get_opt(name)
        .await
        .ok()
        .flatten()?;
    Some(s.data.unwrap_or_default().into_keys().collect())
}

/// Pod name → uid of every Cassandra pod of the cluster.
async fn cassandra_pods(c: &Client) -> BTreeMap<String, String> {
    support::cassandra_pod_uids(c, NS, CLUSTER).await
}

async fn kc_status(cp: &Client) -> Value {
    support::kc_status(cp, NS, CLUSTER).await
}

/// A keyspace's replication (datacenter → replicas), as the simulator holds it.
fn replication(sim: &SimHandle, keyspace: &str) -> Option<BTreeMap<String, String>> {
    let state = sim.state();
    let ks = state
        .cluster(CLUSTER)?
        .keyspaces
        .iter()
        .find(|k| k.name == keyspace)?
        .clone();
    Some(
        ks.replication
            .into_iter()
            .filter(|(k, _)| k != "class")
            .collect(),
    )
}

/// The cluster was registered exactly once in each Reaper storage that knows it (a second
/// Reaper sharing the storage, a re-login, a restarted check: no second registration).
fn registered_once(sim: &SimHandle) -> Result<()> {
    let regs: Vec<_> = sim
        .reaper()
        .registrations()
        .into_iter()
        .filter(|r| r.cluster == CLUSTER)
        .collect();
    let storages: std::collections::BTreeSet<&str> =
        regs.iter().map(|r| r.storage.as_str()).collect();
    ensure!(!storages.is_empty(), "never registered: {regs:?}");
    for st in storages {
        let created = regs
            .iter()
            .filter(|r| r.storage == st && r.outcome == "created")
            .count();
        ensure!(created == 1, "{st}: {created} registrations: {regs:?}");
    }
    Ok(())
}

struct Scenario {
    _env: TestEnv,
    c: Client,
    /// Every cluster's client; `clients[0]` is `c`, the control plane.
    clients: Vec<Client>,
    sim: SimHandle,
    operators: Vec<Operator>,
    _tmp: tempfile::TempDir,
}

impl Scenario {
    /// `clusters` testenv clusters: cluster 0 the control plane, the others data planes
    /// reached through ClientConfigs `cluster-<i>`.
    async fn start(clusters: usize) -> Result<Scenario> {
        let env = TestEnv::start(TestEnvOptions {
            clusters,
            ..Default::default()
        })
        .await?;
        let clients: Vec<Client> = (0..clusters).map(|i| env.cluster(i).client()).collect();
        let crds = operator_crds()?;
        for c in &clients {
            install_crds(c, &crds).await?;
            create_namespace(c, NS).await?;
            wait_crd(c, "reaper.k8ssandra.io", "v1alpha1", "Reaper").await?;
            wait_crd(c, "reaper.k8ssandra.io", "v1alpha1", "RepairSchedule").await?;
            wait_crd(c, "reaper.k8ssandra.io", "v1alpha1", "RepairRun").await?;
        }
        let c = clients[0].clone();
        wait_crd(&c, "k8ssandra.io", "v1alpha1", "K8ssandraCluster").await?;
        wait_crd(&c, "config.k8ssandra.io", "v1beta1", "ClientConfig").await?;
        let mut opts = SimOptions::default();
        opts.config.bootstrap_delay = Duration::from_millis(200);
        let contexts = (0..clusters)
            .map(|i| {
                let name = if i == 0 {
                    env.cluster(0).context_name().to_string()
                } else {
                    format!("cluster-{i}")
                };
                (name, clients[i].clone())
            })
            .collect();
        let sim = Simulator::start(opts, contexts).await?;
        let mut tmp = tempfile::tempdir()?;
        if std::env::var_os("TESTENV_KEEP").is_some() {
            tmp.disable_cleanup(true);
        }
        let mut operators = Vec::new();
        for i in 0..clusters {
            let (policies, mut args): (&[&str], Vec<&str>) = if i == 0 {
                (CONTROL_PLANE_POLICIES, vec![])
            } else {
                (
                    &["cassandra-datacenter", "reaper"],
                    vec!["--control-plane=false"],
                )
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
        for i in 1..clusters {
            let ctx = format!("cluster-{i}");
            add_client_config(
                &c,
                NS,
                &ctx,
                &format!("{ctx}-kubeconfig"),
                env.cluster(i).kubeconfig_yaml(),
            )
            .await?;
        }
        Ok(Scenario {
            _env: env,
            c,
            clients,
            sim,
            operators,
            _tmp: tmp,
        })
    }

    /// The control-plane operator is killed and a new one started (same policies, cache
    /// and log directory of its own).
    async fn restart_control_plane_operator(&mut self) -> Result<()> {
        drop(self.operators.remove(0));
        let op = Operator::start_for(
            &self._tmp.path().join("op0-restarted"),
            self._env.cluster(0),
            CONTROL_PLANE_POLICIES,
            &["--resync-seconds", "5"],
        )?;
        op.wait_ready(Duration::from_secs(120)).await?;
        self.operators.insert(0, op);
        Ok(())
    }

    async fn diagnostics(&self) -> String {
        let mut out = format!("K8ssandraCluster status: {}\n", kc_status(&self.c).await);
        for (i, c) in self.clients.iter().enumerate() {
            if let Ok(api) = reapers(c).await
                && let Ok(list) = api.list(&ListParams::default()).await
            {
                for r in list.items {
                    out.push_str(&format!(
                        "Reaper {} in cluster {i}: {}\n",
                        r.metadata.name.unwrap_or_default(),
                        r.data.get("status").unwrap_or(&Value::Null)
                    ));
                }
            }
        }
        if let Ok(api) =
            support::dynamic_api(&self.c, NS, "reaper.k8ssandra.io", "v1alpha1", "RepairRun").await
            && let Ok(list) = api.list(&ListParams::default()).await
        {
            for r in list.items {
                out.push_str(&format!(
                    "RepairRun {}: {}\n",
                    r.metadata.name.unwrap_or_default(),
                    r.data.get("status").unwrap_or(&Value::Null)
                ));
            }
        }
        out.push_str(&format!(
            "Reaper runs: {:?}\n",
            self.sim
                .reaper()
                .runs()
                .iter()
                .map(|r| (&r.id, &r.owner, &r.cause, &r.state))
                .collect::<Vec<_>>()
        ));
        out.push_str(&format!(
            "reaper_db: {:?}\nsimulator violations: {:?}\n",
            replication(&self.sim, "reaper_db"),
            self.sim.violations()
        ));
        out.push_str(&support::operator_warnings(&self.operators, &[], 12));
        out
    }

    async fn wait<T, F, Fut>(&self, what: &str, timeout: Duration, check: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        support::step(what, timeout, check, || self.diagnostics()).await
    }
}

fn env_of(d: &Deployment, container: &str, init: bool) -> Vec<Value> {
    let spec = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .unwrap_or_default();
    let list = if init {
        spec.init_containers.unwrap_or_default()
    } else {
        spec.containers
    };
    list.into_iter()
        .find(|c| c.name == container)
        .and_then(|c| c.env)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| serde_json::to_value(e).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reaper_per_datacenter_after_its_keyspace() -> Result<()> {
    let mut sc = Scenario::start(1).await?;
    let c = sc.c.clone();
    let dcs = support::datacenters(&c, NS).await?;

    // ── 1. A running cluster ───────────────────────────────────────────────────────────
    apply_yaml(&c, &manifest(None), NS).await?;
    sc.wait("dc1 Ready", Duration::from_secs(300), || async {
        dc_ready(&dcs, "dc1").await.then_some(())
    })
    .await?;
    let pods = cassandra_pods(&c).await;
    ensure!(pods.len() == 3, "Cassandra pods: {pods:?}");
    ensure!(
        reapers(&c)
            .await?
            .list(&ListParams::default())
            .await?
            .items
            .is_empty(),
        "no Reaper without spec.reaper"
    );

    // ── 2. reaper with telemetry ───────────────────────────────────────────────────────
    let good_vrl = ".tags.source = \"reaper\"";
    apply_yaml(&c, &manifest(Some(reaper_telemetry(Some(good_vrl)))), NS).await?;
    for name in ["demo-reaper", "demo-reaper-ui"] {
        let mut keys = sc
            .wait(
                &format!("Secret {name}"),
                Duration::from_secs(60),
                || async { secret_keys(&c, name).await },
            )
            .await?;
        keys.sort();
        ensure!(keys == ["password", "username"], "{name}: {keys:?}");
    }
    sc.wait(
        "role demo-reaper (superuser) in Cassandra",
        Duration::from_secs(180),
        || async {
            let state = sc.sim.state();
            state
                .cluster(CLUSTER)?
                .roles
                .iter()
                .any(|r| r.name == "demo-reaper" && r.superuser && r.login && r.password_set)
                .then_some(())
        },
    )
    .await?;
    let repl = sc
        .wait(
            "reaper_db replicated to dc1",
            Duration::from_secs(180),
            || async { replication(&sc.sim, "reaper_db") },
        )
        .await?;
    ensure!(
        repl == BTreeMap::from([("dc1".to_string(), "3".to_string())]),
        "reaper_db replication: {repl:?}"
    );

    let r = sc
        .wait(
            &format!("Reaper {REAPER}"),
            Duration::from_secs(180),
            || async { reaper(&c, REAPER).await },
        )
        .await?;
    ensure!(
        r.pointer("/spec/datacenterRef/name") == Some(&json!("dc1")),
        "{r}"
    );
    ensure!(
        r.pointer("/spec/cassandraUserSecretRef/name") == Some(&json!("demo-reaper")),
        "{r}"
    );

    let d = sc
        .wait(
            &format!("Deployment {REAPER}"),
            Duration::from_secs(120),
            || async { deployment(&c, REAPER).await },
        )
        .await?;
    let main = env_of(&d, "reaper", false);
    let get = |env: &[Value], k: &str| env.iter().find(|e| e["name"] == k).cloned();
    ensure!(
        get(&main, "REAPER_CASS_CONTACT_POINTS").map(|e| e["value"].clone())
            == Some(json!("[{\"host\": \"demo-dc1-service\", \"port\": 9042}]")),
        "contact points: {main:?}"
    );
    ensure!(
        get(&main, "REAPER_CASS_KEYSPACE").map(|e| e["value"].clone()) == Some(json!("reaper_db")),
        "keyspace: {main:?}"
    );
    let password = get(&main, "REAPER_CASS_AUTH_PASSWORD").unwrap_or(Value::Null);
    ensure!(
        password.get("value").is_none()
            && password.pointer("/valueFrom/secretKeyRef")
                == Some(&json!({"name": "demo-reaper", "key": "password"})),
        "password by reference only: {password}"
    );
    let init = env_of(&d, "reaper-schema-init", true);
    ensure!(
        !init.is_empty(),
        "schema-migration init container with its env"
    );
    let svc = sc
        .wait(
            "Service demo-dc1-reaper-service",
            Duration::from_secs(60),
            || async { service(&c, "demo-dc1-reaper-service").await },
        )
        .await?;
    let ports: Vec<(String, i32)> = svc
        .spec
        .and_then(|s| s.ports)
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.name.unwrap_or_default(), p.port))
        .collect();
    ensure!(
        ports == [("app".to_string(), 8080), ("admin".to_string(), 8081)],
        "{ports:?}"
    );
    let svc_labels = svc.metadata.labels.clone().unwrap_or_default();

    let cond = sc
        .wait(
            "Reaper Running, the cluster registered with it",
            Duration::from_secs(240),
            || async {
                let r = reaper(&c, REAPER).await?;
                (r.pointer("/status/progress") == Some(&json!("Running")))
                    .then(|| ready_condition(&r))
                    .flatten()
            },
        )
        .await?;
    ensure!(
        cond.0 == "True" && cond.1 == "ClusterRegistered" && cond.2.contains("demo"),
        "{cond:?}"
    );
    // Written right after the status, by the same reconcile.
    sc.wait(
        "the Reaper holds its deregistration finalizer",
        Duration::from_secs(60),
        || async {
            let r = reapers(&c).await.ok()?.get_opt(REAPER).await.ok()??;
            (r.metadata.finalizers == Some(vec!["reaper.k8ssandra.io/deregister".to_string()]))
                .then_some(())
        },
    )
    .await?;
    registered_once(&sc.sim)?;
    sc.wait(
        "K8ssandraCluster status mirrors the Reaper",
        Duration::from_secs(60),
        || async {
            let st = kc_status(&c).await;
            (st.pointer("/datacenters/dc1/reaper/progress") == Some(&json!("Running")))
                .then_some(())
        },
    )
    .await?;

    // ── 3. Telemetry ───────────────────────────────────────────────────────────────────
    let toml = sc
        .wait(
            "Vector ConfigMap demo-dc1-reaper-vector",
            Duration::from_secs(60),
            || async { vector_toml(&c).await },
        )
        .await?;
    ensure!(
        toml.contains("[sources.reaper_metrics]")
            && toml.contains("\"http://localhost:8081/prometheusMetrics\"")
            && toml.contains("scrape_interval_secs = 20")
            && toml.contains("[transforms.tagged]")
            && toml.contains("[sinks.remote]"),
        "vector.toml: {toml}"
    );
    let d = deployment(&c, REAPER).await.unwrap_or_default();
    let pod = d.spec.and_then(|s| s.template.spec).unwrap_or_default();
    ensure!(
        pod.containers
            .iter()
            .any(|c| c.name == "reaper-vector-agent")
            && pod.volumes.unwrap_or_default().iter().any(|v| {
                v.config_map.as_ref().map(|m| m.name.as_str()) == Some("demo-dc1-reaper-vector")
            }),
        "the Reaper pod has no Vector sidecar with its configuration"
    );
    let telemetry_ready = |want: &'static str| {
        let c = c.clone();
        async move {
            let r = reaper(&c, REAPER).await?;
            let cond = condition(&r, "TelemetryReady")?;
            (cond["status"] == want).then(|| cond.clone())
        }
    };
    let cond = sc
        .wait(
            "Reaper TelemetryReady=False, ServiceMonitors not served",
            Duration::from_secs(60),
            || telemetry_ready("False"),
        )
        .await?;
    ensure!(cond["reason"] == "ServiceMonitorKindMissing", "{cond}");
    apply_yaml(&c, SERVICE_MONITOR_CRD, NS).await?;
    wait_crd(&c, "monitoring.coreos.com", "v1", "ServiceMonitor").await?;
    let sms = support::dynamic_api(&c, NS, "monitoring.coreos.com", "v1", "ServiceMonitor").await?;
    let sm = sc
        .wait(
            "ServiceMonitor demo-dc1-reaper-reaper-servicemonitor",
            Duration::from_secs(180),
            || async {
                sms.get_opt("demo-dc1-reaper-reaper-servicemonitor")
                    .await
                    .ok()
                    .flatten()
            },
        )
        .await?;
    let endpoint = &sm.data["spec"]["endpoints"][0];
    ensure!(
        endpoint["port"] == "admin" && endpoint["path"] == "/prometheusMetrics",
        "ServiceMonitor: {}",
        sm.data
    );
    let selector = sm.data["spec"]["selector"]["matchLabels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    ensure!(
        !selector.is_empty()
            && selector
                .iter()
                .all(|(k, v)| v.as_str() == svc_labels.get(k).map(String::as_str)),
        "the ServiceMonitor's selector {selector:?} does not select the Service ({svc_labels:?})"
    );
    sc.wait(
        "Reaper TelemetryReady=True",
        Duration::from_secs(60),
        || telemetry_ready("True"),
    )
    .await?;
    // Settled with telemetry (ServiceMonitor, Vector ConfigMap, sidecar, both conditions):
    // reconciles of the reaper policy stop writing. Until the host watches the newly served
    // ServiceMonitor kind (its periodic re-check) it has no cached copy to compare with and
    // applies again, so this waits for a quiet window rather than checking the first one.
    let op = &sc.operators[0];
    let writes = || op.metric("k8ssandra_api_writes_total", "policy=\"reaper\"");
    let reconciles = || op.metric("k8ssandra_reconciles_total", "reaper");
    ensure!(
        writes().await? > 0.0,
        "no write of the reaper policy counted"
    );
    let quiet = sc
        .wait(
            "two reaper reconciles with telemetry that write nothing",
            Duration::from_secs(120),
            || async {
                let (w0, r0) = (writes().await.ok()?, reconciles().await.ok()?);
                while reconciles().await.ok()? < r0 + 2.0 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                (writes().await.ok()? == w0).then_some(())
            },
        )
        .await;
    if quiet.is_err() {
        let by_verb: Vec<String> = op
            .metrics()
            .await?
            .lines()
            .filter(|l| l.starts_with("k8ssandra_api_writes_total") && l.contains("\"reaper\""))
            .map(str::to_string)
            .collect();
        anyhow::bail!("a settled Reaper with telemetry still writes: {by_verb:?}");
    }
    // A VRL error: Ready=False naming the transform; the configuration and pods stay.
    let generation = deployment(&c, REAPER)
        .await
        .and_then(|d| d.metadata.generation);
    apply_yaml(
        &c,
        &manifest(Some(reaper_telemetry(Some(".tags.source = upcase(")))),
        NS,
    )
    .await?;
    let cond = sc
        .wait(
            "Reaper Ready=False naming the broken transform",
            Duration::from_secs(60),
            || async {
                let cond = ready_condition(&reaper(&c, REAPER).await?)?;
                cond.2
                    .contains("spec.telemetry.vector.components.transforms[0]")
                    .then_some(cond)
            },
        )
        .await?;
    ensure!(
        cond.0 == "False" && cond.1 == "InvalidSpec" && cond.2.contains("transforms.tagged"),
        "{cond:?}"
    );
    ensure!(
        vector_toml(&c).await.as_deref() == Some(toml.as_str()),
        "the Vector configuration changed with a VRL error"
    );
    ensure!(
        deployment(&c, REAPER)
            .await
            .and_then(|d| d.metadata.generation)
            == generation,
        "the Reaper Deployment changed with a VRL error"
    );

    // ── 4. Bad input: a datacenter that does not exist ─────────────────────────────────
    apply_yaml(
        &c,
        &format!(
            "apiVersion: reaper.k8ssandra.io/v1alpha1\nkind: Reaper\nmetadata:\n  name: stray\n  namespace: {NS}\nspec:\n  datacenterRef:\n    name: nope\n"
        ),
        NS,
    )
    .await?;
    let cond = sc
        .wait(
            "stray Reaper refused, naming the field",
            Duration::from_secs(60),
            || async { ready_condition(&reaper(&c, "stray").await?) },
        )
        .await?;
    ensure!(
        cond.0 == "False"
            && cond.1 == "DatacenterNotFound"
            && cond.2.starts_with("spec.datacenterRef.name"),
        "{cond:?}"
    );
    ensure!(
        deployment(&c, "stray").await.is_none(),
        "no workload for bad input"
    );

    // ── 4b. Declared repair schedules, one-off repair runs ─────────────────────────────
    schedules(&sc).await?;
    repair_runs(&mut sc).await?;

    // ── 5. reaper removed ──────────────────────────────────────────────────────────────
    apply_yaml(&c, &manifest(None), NS).await?;
    sc.wait(
        "cluster deregistered; Reaper, Deployment, Service, ServiceMonitor and Vector ConfigMap removed",
        Duration::from_secs(180),
        || async {
            (reaper(&c, REAPER).await.is_none()
                && !sc
                    .sim
                    .reaper()
                    .clusters()
                    .values()
                    .any(|names| names.iter().any(|n| n == CLUSTER))
                && deployment(&c, REAPER).await.is_none()
                && service(&c, "demo-dc1-reaper-service").await.is_none()
                && vector_toml(&c).await.is_none()
                && sms
                    .get_opt("demo-dc1-reaper-reaper-servicemonitor")
                    .await
                    .ok()?
                    .is_none())
            .then_some(())
        },
    )
    .await?;
    ensure!(
        replication(&sc.sim, "reaper_db").is_some(),
        "the keyspace stays"
    );

    let after = cassandra_pods(&c).await;
    ensure!(
        after == pods,
        "Cassandra pods restarted: {pods:?} → {after:?}"
    );
    let violations = sc.sim.violations();
    ensure!(
        violations.is_empty(),
        "simulator violations: {violations:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reaper_in_each_datacenter_of_two_clusters() -> Result<()> {
    let sc = Scenario::start(2).await?;
    let (cp, b) = (sc.c.clone(), sc.clients[1].clone());
    let dcs_a = support::datacenters(&cp, NS).await?;
    let dcs_b = support::datacenters(&b, NS).await?;
    let datacenters = json!([
        {"metadata": {"name": "dc1"}, "size": 3},
        {"metadata": {"name": "dc2"}, "k8sContext": CTX_B, "size": 3},
    ]);
    apply_yaml(&cp, &manifest_with(datacenters, Some(json!({}))), NS).await?;
    sc.wait("dc1 and dc2 Ready", Duration::from_secs(420), || async {
        (dc_ready(&dcs_a, "dc1").await && dc_ready(&dcs_b, "dc2").await).then_some(())
    })
    .await?;
    let pods = (cassandra_pods(&cp).await, cassandra_pods(&b).await);

    let (r1, r2) = sc
        .wait(
            "a Reaper in each cluster",
            Duration::from_secs(240),
            || async {
                Some((
                    reaper(&cp, "demo-dc1-reaper").await?,
                    reaper(&b, "demo-dc2-reaper").await?,
                ))
            },
        )
        .await?;
    // Reapers exist only once the keyspace is replicated to both datacenters.
    let repl = replication(&sc.sim, "reaper_db");
    ensure!(
        repl == Some(BTreeMap::from([
            ("dc1".to_string(), "3".to_string()),
            ("dc2".to_string(), "3".to_string())
        ])),
        "reaper_db replication: {repl:?}"
    );
    for (r, dc) in [(&r1, "dc1"), (&r2, "dc2")] {
        ensure!(
            r.pointer("/spec/datacenterRef/name") == Some(&json!(dc))
                && r.pointer("/spec/datacenterAvailability") == Some(&json!("EACH")),
            "{r}"
        );
    }
    for (c, name) in [(&cp, "demo-dc1-reaper"), (&b, "demo-dc2-reaper")] {
        sc.wait(
            &format!("{name} deployed, Running, the cluster registered"),
            Duration::from_secs(300),
            || async {
                let r = reaper(c, name).await?;
                (r.pointer("/status/progress") == Some(&json!("Running"))
                    && deployment(c, name).await.is_some()
                    && service(c, &format!("{name}-service")).await.is_some())
                .then_some(())
            },
        )
        .await?;
    }
    // Both Reapers keep their state in the same reaper_db: one registration for both.
    registered_once(&sc.sim)?;
    // The credentials reached the data-plane cluster, where its Reaper reads them.
    for name in ["demo-reaper", "demo-reaper-ui"] {
        sc.wait(
            &format!("Secret {name} in cluster 1"),
            Duration::from_secs(60),
            || async { secret_keys(&b, name).await },
        )
        .await?;
    }
    sc.wait(
        "K8ssandraCluster status mirrors both Reapers",
        Duration::from_secs(60),
        || async {
            let st = kc_status(&cp).await;
            ["dc1", "dc2"]
                .iter()
                .all(|d| {
                    st.pointer(&format!("/datacenters/{d}/reaper/progress"))
                        == Some(&json!("Running"))
                })
                .then_some(())
        },
    )
    .await?;
    let after = (cassandra_pods(&cp).await, cassandra_pods(&b).await);
    ensure!(
        after == pods,
        "Cassandra pods restarted: {pods:?} → {after:?}"
    );
    let violations = sc.sim.violations();
    ensure!(
        violations.is_empty(),
        "simulator violations: {violations:?}"
    );
    Ok(())
}

async fn repair_schedules(c: &Client) -> Result<Api<DynamicObject>> {
    support::dynamic_api(c, NS, "reaper.k8ssandra.io", "v1alpha1", "RepairSchedule").await
}

async fn repair_schedule(c: &Client, name: &str) -> Option<Value> {
    let api = repair_schedules(c).await.ok()?;
    api.get_opt(name).await.ok().flatten().map(|o| o.data)
}

/// Every 7 days from a time far away: runs start only when the test triggers them.
const LATER: &str = "  daysBetween: 7\n  triggerTime: \"2099-01-01T02:00:00\"\n";

fn repair_schedule_yaml(name: &str, keyspace: &str, extra: &str) -> String {
    format!(
        "apiVersion: reaper.k8ssandra.io/v1alpha1\nkind: RepairSchedule\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  cluster: {CLUSTER}\n  keyspace: {keyspace}\n{extra}"
    )
}

/// The Reaper's pod: (name, address).
async fn reaper_pod(c: &Client) -> Option<(String, String)> {
    let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(c.clone(), NS)
        .list(&ListParams::default().labels(&format!("k8ssandra.io/reaper={REAPER}")))
        .await
        .ok()?;
    pods.items
        .into_iter()
        .find_map(|p| Some((p.metadata.name.clone()?, p.status.as_ref()?.pod_ip.clone()?)))
}

/// Declared schedules against the running Reaper: one schedule owned by the operator,
/// updated in place, paused, its run repairing the keyspace on every node, an unknown
/// keyspace and a failing Reaper as conditions, deletion; a hand-made schedule untouched
/// throughout; a token expiry re-logs in without a second registration.
async fn schedules(sc: &Scenario) -> Result<()> {
    use cassandra_sim::KeyspaceRequest;
    use cassandra_sim::reaper::ReaperFaultRequest;
    let c = sc.c.clone();
    for ks in ["ks1", "ks2"] {
        sc.sim.create_keyspace(&KeyspaceRequest {
            cluster: CLUSTER.into(),
            name: ks.into(),
            replication: BTreeMap::from([("dc1".to_string(), 3)]),
        });
    }
    let storage = sc
        .sim
        .reaper()
        .registrations()
        .into_iter()
        .find(|r| r.cluster == CLUSTER)
        .map(|r| r.storage)
        .ok_or_else(|| anyhow::anyhow!("no registration"))?;
    let hand = sc
        .sim
        .reaper_schedule_by_hand(&storage, CLUSTER, "ks2", "alice", 7)
        .map_err(|e| anyhow::anyhow!("hand-made schedule: {e}"))?;
    let (pod, address) = reaper_pod(&c)
        .await
        .ok_or_else(|| anyhow::anyhow!("no Reaper pod"))?;
    // Every token issued so far expires: the next calls log in again.
    sc.sim
        .reaper()
        .set_fault(&ReaperFaultRequest {
            pod: pod.clone(),
            expire_tokens: true,
            fail_next: 0,
            unready_for_ms: 0,
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    apply_yaml(
        &c,
        &repair_schedule_yaml(
            "ks1-weekly",
            "ks1",
            &format!("  intensity: \"0.5\"\n{LATER}"),
        ),
        NS,
    )
    .await?;
    let id = sc
        .wait(
            "RepairSchedule ks1-weekly Ready with its Reaper schedule id",
            Duration::from_secs(180),
            || async {
                let r = repair_schedule(&c, "ks1-weekly").await?;
                let ready = r
                    .pointer("/status/conditions")?
                    .as_array()?
                    .iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True");
                ready
                    .then(|| {
                        r.pointer("/status/scheduleId")?
                            .as_str()
                            .map(str::to_string)
                    })
                    .flatten()
            },
        )
        .await?;
    let ours: Vec<_> = sc
        .sim
        .reaper()
        .schedules()
        .into_iter()
        .filter(|s| s.owner == "k8ssandra-operator")
        .collect();
    ensure!(
        ours.len() == 1 && ours[0].id == id && ours[0].keyspace == "ks1",
        "one schedule owned by the operator: {ours:?}"
    );
    ensure!((ours[0].intensity - 0.5).abs() < 1e-9, "{ours:?}");
    registered_once(&sc.sim)?;

    // Reaper answers 500 for a while: a condition, then back to Ready.
    sc.sim
        .reaper()
        .set_fault(&ReaperFaultRequest {
            pod: pod.clone(),
            expire_tokens: false,
            fail_next: 3,
            unready_for_ms: 0,
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let ready_reason = |r: &Value| {
        r.pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|l| l.iter().find(|c| c["type"] == "Ready").cloned())
            .map(|c| (c["status"].clone(), c["reason"].clone()))
    };
    sc.wait(
        "a failing Reaper is a condition",
        Duration::from_secs(120),
        || async {
            let r = repair_schedule(&c, "ks1-weekly").await?;
            (ready_reason(&r) == Some((json!("False"), json!("ReaperUnreachable")))).then_some(())
        },
    )
    .await?;
    sc.wait(
        "converges when Reaper answers again",
        Duration::from_secs(240),
        || async {
            let r = repair_schedule(&c, "ks1-weekly").await?;
            (ready_reason(&r) == Some((json!("True"), json!("ScheduleInSync")))).then_some(())
        },
    )
    .await?;

    // The first run repairs ks1 on every node, and the status shows it.
    sc.sim
        .reaper()
        .trigger_schedule(&id)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let last = sc
        .wait(
            "the schedule's first run DONE in the status",
            Duration::from_secs(240),
            || async {
                let r = repair_schedule(&c, "ks1-weekly").await?;
                let run = r.pointer("/status/lastRun")?.clone();
                (run["state"] == "DONE").then_some(run)
            },
        )
        .await?;
    let run_id = last["id"].as_str().unwrap_or_default().to_string();
    ensure!(
        last["segmentsRepaired"] == last["totalSegments"]
            && last["totalSegments"].as_u64() > Some(0),
        "{last}"
    );
    let sessions: Vec<_> = sc
        .sim
        .reaper()
        .repair_sessions()
        .into_iter()
        .filter(|s| s.run == run_id)
        .collect();
    let repaired: std::collections::BTreeSet<String> = sessions
        .iter()
        .filter(|s| s.keyspace == "ks1" && s.outcome == "completed")
        .flat_map(|s| s.nodes.clone())
        .collect();
    let nodes: std::collections::BTreeSet<String> = sc
        .sim
        .state()
        .cluster(CLUSTER)
        .map(|cl| cl.nodes.iter().filter_map(|n| n.ip.clone()).collect())
        .unwrap_or_default();
    ensure!(
        nodes.len() == 3 && repaired == nodes,
        "ks1 repaired on {repaired:?}, nodes {nodes:?}, sessions {sessions:?}"
    );

    // A changed intensity updates the same schedule.
    apply_yaml(
        &c,
        &repair_schedule_yaml("ks1-weekly", "ks1", &format!("  intensity: 0.8\n{LATER}")),
        NS,
    )
    .await?;
    sc.wait(
        "intensity 0.8 on the same schedule",
        Duration::from_secs(120),
        || async {
            let s = sc.sim.reaper().schedules();
            let mine: Vec<_> = s
                .iter()
                .filter(|s| s.owner == "k8ssandra-operator")
                .collect();
            (mine.len() == 1 && mine[0].id == id && (mine[0].intensity - 0.8).abs() < 1e-9)
                .then_some(())
        },
    )
    .await?;

    // Paused.
    apply_yaml(
        &c,
        &repair_schedule_yaml(
            "ks1-weekly",
            "ks1",
            &format!("  intensity: 0.8\n  paused: true\n{LATER}"),
        ),
        NS,
    )
    .await?;
    sc.wait("schedule PAUSED", Duration::from_secs(120), || async {
        let s = sc.sim.reaper().schedules();
        let paused = s.iter().any(|s| s.id == id && s.state == "PAUSED");
        let r = repair_schedule(&c, "ks1-weekly").await?;
        (paused && r.pointer("/status/state") == Some(&json!("PAUSED"))).then_some(())
    })
    .await?;

    // A keyspace that does not exist: a condition naming the field.
    apply_yaml(&c, &repair_schedule_yaml("nope-weekly", "nope", ""), NS).await?;
    let cond = sc
        .wait(
            "an unknown keyspace refused as a condition",
            Duration::from_secs(120),
            || async {
                let r = repair_schedule(&c, "nope-weekly").await?;
                r.pointer("/status/conditions")?
                    .as_array()?
                    .iter()
                    .find(|c| {
                        c["type"] == "Ready"
                            && c["status"] == "False"
                            && c["reason"] == "KeyspaceNotFound"
                    })
                    .cloned()
            },
        )
        .await?;
    ensure!(
        cond["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("spec.keyspace"),
        "{cond}"
    );

    // Deleting the RepairSchedules deletes ours from Reaper, and only ours.
    let api = repair_schedules(&c).await?;
    for name in ["ks1-weekly", "nope-weekly"] {
        api.delete(name, &Default::default()).await?;
    }
    sc.wait(
        "RepairSchedules gone, with their Reaper schedule",
        Duration::from_secs(120),
        || async {
            let gone = repair_schedule(&c, "ks1-weekly").await.is_none()
                && repair_schedule(&c, "nope-weekly").await.is_none();
            let left = sc.sim.reaper().schedules();
            (gone && left.iter().all(|s| s.owner != "k8ssandra-operator")).then_some(())
        },
    )
    .await?;
    let still: Vec<_> = sc
        .sim
        .reaper()
        .schedules()
        .into_iter()
        .filter(|s| s.id == hand.id)
        .collect();
    ensure!(
        still == vec![hand.clone()],
        "hand-made schedule changed: {still:?} vs {hand:?}"
    );
    registered_once(&sc.sim)?;

    // Deregistering refuses to take another owner's schedule along: the hand-made one goes
    // the way it came, through Reaper's API.
    let ui = Api::<Secret>::namespaced(c.clone(), NS)
        .get("demo-reaper-ui")
        .await?;
    let field = |k: &str| {
        ui.data
            .as_ref()
            .and_then(|d| d.get(k))
            .map(|b| String::from_utf8_lossy(&b.0).to_string())
            .unwrap_or_default()
    };
    let client = k8ssandra_host::dataplane::reaper::ReaperClient::new(Default::default());
    let ep = k8ssandra_host::dataplane::reaper::ReaperEndpoint::at(
        &address,
        8080,
        Some(k8ssandra_host::dataplane::reaper::Credentials {
            username: field("username"),
            password: k8ssandra_host::dataplane::Password::new(field("password")),
        }),
    );
    let kind = k8ssandra_host::plugin::bindings::OperationKind::ReaperDeleteSchedule(
        k8ssandra_host::plugin::bindings::ReaperScheduleRef {
            access: k8ssandra_host::plugin::bindings::ReaperAccess { ui_secret: None },
            id: hand.id.clone(),
            owner: "alice".into(),
        },
    );
    k8ssandra_host::dataplane::reaper_ops::run_kind(&client, &ep, &kind, &|_| {})
        .await
        .map_err(|e| anyhow::anyhow!("deleting the hand-made schedule: {e}"))?;
    Ok(())
}

async fn repair_run(c: &Client, name: &str) -> Option<Value> {
    let api = support::dynamic_api(c, NS, "reaper.k8ssandra.io", "v1alpha1", "RepairRun")
        .await
        .ok()?;
    // The whole object: its metadata (the UID in the runs' cause) and status.
    let o = api.get_opt(name).await.ok().flatten()?;
    serde_json::to_value(o).ok()
}

fn repair_run_yaml(name: &str, keyspace: &str, extra: &str) -> String {
    format!(
        "apiVersion: reaper.k8ssandra.io/v1alpha1\nkind: RepairRun\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  cluster: {CLUSTER}\n  keyspace: {keyspace}\n{extra}"
    )
}

/// The `Complete` condition of a RepairRun: (status, reason, message).
fn complete(r: &Value) -> Option<(String, String, String)> {
    let c = r
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Complete")?;
    let f = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    Some((f("status"), f("reason"), f("message")))
}

/// Waits for RepairRun `name` to be `Complete`; the object.
async fn completed(sc: &Scenario, name: &str) -> Result<Value> {
    sc.wait(
        &format!("RepairRun {name} Complete"),
        Duration::from_secs(240),
        || async {
            let r = repair_run(&sc.c, name).await?;
            (complete(&r)?.0 == "True").then_some(r)
        },
    )
    .await
}

/// The operator's Reaper runs started for one object (its UID in their cause).
fn runs_of(sim: &SimHandle, uid: &str) -> Vec<cassandra_sim::reaper::SimRun> {
    sim.reaper()
        .runs()
        .into_iter()
        .filter(|r| r.owner == "k8ssandra-operator" && r.cause.contains(uid))
        .collect()
}

/// One-off repairs from manifests against the running Reaper: a RepairRun of ks1 is one
/// Reaper run, also across an operator restart in the middle of it, repairing ks1 on every
/// node and Complete with its segments; a keyspace that does not exist is KeyspaceNotFound
/// with nothing started; a Reaper that does not answer is ReaperUnreachable, then the run
/// completes.
async fn repair_runs(sc: &mut Scenario) -> Result<()> {
    use cassandra_sim::reaper::{ReaperFaultRequest, ReaperSettings};
    let c = sc.c.clone();
    // Segments slow enough for the operator to restart while the run goes on.
    let settings = sc.sim.reaper().settings();
    sc.sim.reaper().set_settings(ReaperSettings {
        segment_duration_ms: 700,
        ..settings.clone()
    });
    apply_yaml(
        &c,
        &repair_run_yaml(
            "ks1-now",
            "ks1",
            "  intensity: 1\n  segmentCountPerNode: 2\n",
        ),
        NS,
    )
    .await?;
    let (uid, run_id) = sc
        .wait(
            "RepairRun ks1-now with its run id",
            Duration::from_secs(120),
            || async {
                let r = repair_run(&c, "ks1-now").await?;
                let id = r.pointer("/status/runId")?.as_str()?.to_string();
                let uid = r.pointer("/metadata/uid")?.as_str()?.to_string();
                Some((uid, id))
            },
        )
        .await?;
    ensure!(
        runs_of(&sc.sim, &uid)
            .iter()
            .any(|r| r.id == run_id && r.state == "RUNNING"),
        "the run going when the operator restarts: {:?}",
        runs_of(&sc.sim, &uid)
    );
    sc.restart_control_plane_operator().await?;
    let done = completed(sc, "ks1-now").await?;
    sc.sim.reaper().set_settings(settings);
    let st = &done["status"];
    ensure!(
        st["runId"] == run_id.as_str()
            && st["state"] == "DONE"
            && st["totalSegments"].as_u64() > Some(0)
            && st["segmentsRepaired"] == st["totalSegments"]
            && st["endTime"].is_string(),
        "{st}"
    );
    let runs = runs_of(&sc.sim, &uid);
    ensure!(
        runs.len() == 1 && runs[0].id == run_id && runs[0].keyspace == "ks1",
        "one Reaper run across the operator restart: {runs:?}"
    );
    let repaired: std::collections::BTreeSet<String> = sc
        .sim
        .reaper()
        .repair_sessions()
        .into_iter()
        .filter(|s| s.run == run_id && s.keyspace == "ks1" && s.outcome == "completed")
        .flat_map(|s| s.nodes)
        .collect();
    let nodes: std::collections::BTreeSet<String> = sc
        .sim
        .state()
        .cluster(CLUSTER)
        .map(|cl| cl.nodes.iter().filter_map(|n| n.ip.clone()).collect())
        .unwrap_or_default();
    ensure!(
        nodes.len() == 3 && repaired == nodes,
        "ks1 repaired on {repaired:?}, nodes {nodes:?}"
    );

    // A keyspace that does not exist: a condition naming the field, nothing started.
    apply_yaml(&c, &repair_run_yaml("nope-now", "nope", ""), NS).await?;
    let (cond, uid) = sc
        .wait(
            "RepairRun nope-now KeyspaceNotFound",
            Duration::from_secs(120),
            || async {
                let r = repair_run(&c, "nope-now").await?;
                let cond = complete(&r)?;
                (cond.1 == "KeyspaceNotFound")
                    .then(|| Some((cond, r.pointer("/metadata/uid")?.as_str()?.to_string())))
                    .flatten()
            },
        )
        .await?;
    ensure!(
        cond.0 == "False" && cond.2.starts_with("spec.keyspace"),
        "{cond:?}"
    );
    ensure!(
        runs_of(&sc.sim, &uid).is_empty(),
        "nothing started for a missing keyspace"
    );

    // Reaper does not answer for a while: ReaperUnreachable, then the run completes.
    let (pod, _) = reaper_pod(&c)
        .await
        .ok_or_else(|| anyhow::anyhow!("no Reaper pod"))?;
    sc.sim
        .reaper()
        .set_fault(&ReaperFaultRequest {
            pod,
            expire_tokens: false,
            fail_next: 0,
            unready_for_ms: 15_000,
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    apply_yaml(&c, &repair_run_yaml("ks2-now", "ks2", ""), NS).await?;
    sc.wait(
        "RepairRun ks2-now ReaperUnreachable",
        Duration::from_secs(60),
        || async {
            (complete(&repair_run(&c, "ks2-now").await?)?.1 == "ReaperUnreachable").then_some(())
        },
    )
    .await?;
    let r = completed(sc, "ks2-now").await?;
    let uid = r["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    ensure!(runs_of(&sc.sim, &uid).len() == 1, "one run of ks2");
    registered_once(&sc.sim)?;
    Ok(())
}

/// `reaperRef`: a control-plane Reaper (local storage, no datacenter) in cluster 0 and a
/// K8ssandraCluster whose datacenters run in clusters 0 and 1 and whose `spec.reaper`
/// points at it: the cluster is registered once with that Reaper, seeded by pods of both
/// datacenters (their addresses: the data plane's Service names do not resolve in the
/// control plane, KO #1589), and no Reaper of its own is deployed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reaper_ref_registers_both_datacenters_with_a_control_plane_reaper() -> Result<()> {
    let sc = Scenario::start(2).await?;
    let (cp, b) = (sc.c.clone(), sc.clients[1].clone());
    let dcs_a = support::datacenters(&cp, NS).await?;
    let dcs_b = support::datacenters(&b, NS).await?;
    apply_yaml(
        &cp,
        &format!(
            "apiVersion: reaper.k8ssandra.io/v1alpha1\nkind: Reaper\nmetadata:\n  name: cp-reaper\n  namespace: {NS}\nspec:\n  storageType: local\n  storageConfig:\n    storageClassName: standard\n    accessModes: [ReadWriteOnce]\n    resources:\n      requests:\n        storage: 1Gi\n"
        ),
        NS,
    )
    .await?;
    // With reaperRef the cluster's Reaper role is the user's Secret (none is generated),
    // present wherever a datacenter runs.
    for c in [&cp, &b] {
        apply_yaml(
            c,
            &format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: demo-reaper\n  namespace: {NS}\nstringData:\n  username: demo-reaper\n  password: reaper-e2e-password\n"
            ),
            NS,
        )
        .await?;
    }
    let datacenters = json!([
        {"metadata": {"name": "dc1"}, "size": 3},
        {"metadata": {"name": "dc2"}, "k8sContext": CTX_B, "size": 3},
    ]);
    apply_yaml(
        &cp,
        &manifest_with(
            datacenters,
            Some(json!({"reaperRef": {"name": "cp-reaper"}, "deploymentMode": "CONTROL_PLANE"})),
        ),
        NS,
    )
    .await?;
    sc.wait("dc1 and dc2 Ready", Duration::from_secs(420), || async {
        (dc_ready(&dcs_a, "dc1").await && dc_ready(&dcs_b, "dc2").await).then_some(())
    })
    .await?;
    let cond = sc
        .wait(
            "the control-plane Reaper Running with demo registered",
            Duration::from_secs(300),
            || async {
                let r = reaper(&cp, "cp-reaper").await?;
                let c = ready_condition(&r)?;
                (r.pointer("/status/progress") == Some(&json!("Running"))
                    && c.0 == "True"
                    && c.2.contains("registered: demo"))
                .then_some(c)
            },
        )
        .await?;
    let regs: Vec<_> = sc
        .sim
        .reaper()
        .registrations()
        .into_iter()
        .filter(|r| r.cluster == CLUSTER)
        .collect();
    ensure!(
        regs.len() == 1 && regs[0].outcome == "created",
        "one registration: {regs:?} ({cond:?})"
    );
    let seeds = &regs[0].seed_hosts;
    for i in 0..2 {
        ensure!(
            seeds.iter().any(|s| sc._env.cluster(i).owns_pod_ip(s)),
            "a seed in cluster {i}: {seeds:?}"
        );
    }
    // No Reaper of the cluster's own, in either cluster.
    for c in [&cp, &b] {
        ensure!(
            reaper(c, "demo-dc1-reaper").await.is_none()
                && reaper(c, "demo-dc2-reaper").await.is_none(),
            "no per-datacenter Reaper with reaperRef"
        );
    }

    // reaperRef removed: the control-plane Reaper deregisters the cluster, once (no
    // registration follows), and stays Running.
    let datacenters = json!([
        {"metadata": {"name": "dc1"}, "size": 3},
        {"metadata": {"name": "dc2"}, "k8sContext": CTX_B, "size": 3},
    ]);
    apply_yaml(&cp, &manifest_with(datacenters, None), NS).await?;
    sc.wait(
        "demo deregistered from the control-plane Reaper",
        Duration::from_secs(180),
        || async {
            (!sc.sim
                .reaper()
                .clusters()
                .values()
                .any(|names| names.iter().any(|n| n == CLUSTER)))
            .then_some(())
        },
    )
    .await?;
    sc.wait(
        "the control-plane Reaper forgets demo (its workload's annotation)",
        Duration::from_secs(60),
        || async {
            let sts = Api::<k8s_openapi::api::apps::v1::StatefulSet>::namespaced(cp.clone(), NS)
                .get_opt("cp-reaper")
                .await
                .ok()??;
            let remembered = sts
                .metadata
                .annotations
                .unwrap_or_default()
                .get("reaper.k8ssandra.io/registered-clusters")
                .cloned()
                .unwrap_or_default();
            (!remembered.contains(CLUSTER)).then_some(())
        },
    )
    .await?;
    let regs = sc
        .sim
        .reaper()
        .registrations()
        .into_iter()
        .filter(|r| r.cluster == CLUSTER)
        .count();
    ensure!(regs == 1, "registered again after deregistration: {regs}");
    ensure!(
        reaper(&cp, "cp-reaper")
            .await
            .and_then(|r| r.pointer("/status/progress").cloned())
            == Some(json!("Running")),
        "the control-plane Reaper stays Running"
    );
    let violations = sc.sim.violations();
    ensure!(
        violations.is_empty(),
        "simulator violations: {violations:?}"
    );
    Ok(())
}
