//! Helpers shared by the host's end-to-end tests: building policy components, running the
//! real operator binary against testenv, reading its metrics.
#![allow(dead_code)]

pub mod tls;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kube::api::{DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::discovery::pinned_kind;
use kube::{Api, Client};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds a policy crate for wasm32-wasip2 (profile `wasm`) and returns the component's path.
/// Cargo is a no-op when nothing changed, so calling it every time is cheap and never stale.
pub fn policy_wasm(package: &str) -> PathBuf {
    let root = workspace_root();
    let status = Command::new(env!("CARGO"))
        .current_dir(&root)
        .args([
            "build",
            "-q",
            "-p",
            package,
            "--target",
            "wasm32-wasip2",
            "--profile",
            "wasm",
        ])
        .status()
        .expect("running cargo build for a policy");
    assert!(
        status.success(),
        "building {package} for wasm32-wasip2 failed"
    );
    let file = format!("{}.wasm", package.replace('-', "_"));
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    let path = target.join("wasm32-wasip2").join("wasm").join(file);
    assert!(path.exists(), "{} missing after build", path.display());
    path
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The real operator binary, killed on drop.
pub struct Operator {
    child: Child,
    pub metrics_addr: String,
    pub log: PathBuf,
}

impl Operator {
    pub fn start(kubeconfig: &Path, plugin_dir: &Path, extra: &[&str]) -> Result<Operator> {
        let port = free_port();
        let metrics_addr = format!("127.0.0.1:{port}");
        let log = plugin_dir.with_extension("operator.log");
        let out = std::fs::File::create(&log)?;
        let child = Command::new(env!("CARGO_BIN_EXE_k8ssandra-operator"))
            .arg("run")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--plugin-dir")
            .arg(plugin_dir)
            // One cache for every operator of every test: artifacts are keyed by content and
            // engine, and the operator locks while it compiles, so each policy compiles once
            // per build rather than once per operator start (tens of seconds each).
            .arg("--cache-dir")
            .arg(Path::new(env!("CARGO_TARGET_TMPDIR")).join("policy-cache"))
            .arg("--metrics-addr")
            .arg(&metrics_addr)
            .args(extra)
            .env("RUST_LOG", "info,k8ssandra_host=debug,kube=warn")
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .context("starting k8ssandra-operator")?;
        Ok(Operator {
            child,
            metrics_addr,
            log,
        })
    }

    /// Starts an operator of its own for `cluster`: kubeconfig, plugins (`policies`), cache
    /// and log all under `dir`, as each cluster's install would have them.
    pub fn start_for(
        dir: &Path,
        cluster: &k8ssandra_testenv::Cluster,
        policies: &[&str],
        extra: &[&str],
    ) -> Result<Operator> {
        let plugins = plugin_dir(&dir.join("plugins"), policies)?;
        let kubeconfig = write_kubeconfig(dir, cluster)?;
        Operator::start(&kubeconfig, &plugins, extra)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn metrics(&self) -> Result<String> {
        let body = reqwest::get(format!("http://{}/metrics", self.metrics_addr))
            .await?
            .text()
            .await?;
        Ok(body)
    }

    /// Value of a sample line `name{labels} value` (labels matched as a substring).
    pub async fn metric(&self, name: &str, labels: &str) -> Result<f64> {
        let text = self.metrics().await?;
        let mut total = 0.0;
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((key, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let metric = key.split('{').next().unwrap_or_default();
            if metric == name && key.contains(labels) {
                total += value.parse::<f64>().unwrap_or(0.0);
            }
        }
        Ok(total)
    }

    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(r) = reqwest::get(format!("http://{}/readyz", self.metrics_addr)).await
                && r.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "operator not ready in {timeout:?}; log:\n{}",
                    self.log_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One scenario step: polls `check` (each attempt bounded to 20 s, so a request that hangs
/// is retried rather than waited for) until it returns Some, prints how long the step took
/// (shown with --nocapture or when the test fails), and on timeout adds `diagnostics`.
pub async fn step<T, F, Fut, D, DFut>(
    what: &str,
    timeout: Duration,
    mut check: F,
    diagnostics: D,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
    D: FnOnce() -> DFut,
    DFut: std::future::Future<Output = String>,
{
    let started = Instant::now();
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
        Err(e) => Err(e.context(diagnostics().await)),
    }
}

/// The last warnings and errors of each operator, labelled, for a failed step.
pub fn operator_warnings(operators: &[Operator], names: &[&str], lines: usize) -> String {
    operators
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let log = o.log_text();
            let warn: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .collect();
            let name = names
                .get(i)
                .map_or_else(|| format!("operator {i}"), |n| n.to_string());
            format!(
                "--- {name} ({}), last warnings:\n{}\n",
                o.log.display(),
                warn[warn.len().saturating_sub(lines)..].join("\n")
            )
        })
        .collect()
}

/// Polls `check` until it returns Some, or fails after `timeout` with `what` in the message.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Server-side applies every document of a YAML text.
pub async fn apply_yaml(client: &Client, yaml: &str, namespace: &str) -> Result<()> {
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let value: serde_json::Value = serde::Deserialize::deserialize(doc)?;
        if value.is_null() {
            continue;
        }
        let obj: DynamicObject = serde_json::from_value(value.clone())?;
        let types = obj
            .types
            .clone()
            .context("object without apiVersion/kind")?;
        let (group, version) = types
            .api_version
            .split_once('/')
            .unwrap_or(("", &types.api_version));
        let gvk = GroupVersionKind::gvk(group, version, &types.kind);
        let (ar, caps) = pinned_kind(client, &gvk).await?;
        let api: Api<DynamicObject> = if caps.scope == kube::discovery::Scope::Namespaced {
            Api::namespaced_with(
                client.clone(),
                obj.metadata.namespace.as_deref().unwrap_or(namespace),
                &ar,
            )
        } else {
            Api::all_with(client.clone(), &ar)
        };
        let name = obj.metadata.name.clone().context("object without a name")?;
        api.patch(
            &name,
            &PatchParams::apply("e2e-test").force(),
            &Patch::Apply(&value),
        )
        .await?;
    }
    Ok(())
}

/// Waits until a CRD is established and served.
pub async fn wait_crd(client: &Client, group: &str, version: &str, kind: &str) -> Result<()> {
    let gvk = GroupVersionKind::gvk(group, version, kind);
    wait_for(
        &format!("CRD {kind} served"),
        Duration::from_secs(30),
        || async { pinned_kind(client, &gvk).await.ok().map(|_| ()) },
    )
    .await
}

/// The CRDs as the operator binary itself prints them (`k8ssandra-operator crds`), for tests
/// that install what a user would install from the binary.
pub fn operator_crds() -> Result<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_k8ssandra-operator"))
        .arg("crds")
        .output()?;
    Ok(String::from_utf8(out.stdout)?)
}

/// Applies a CRD bundle and waits until CassandraDatacenter is served: every bundle holds it,
/// and it is the kind all the datacenter tests need first.
pub async fn install_crds(client: &Client, crds: &str) -> Result<()> {
    apply_yaml(client, crds, "default").await?;
    wait_crd(
        client,
        "cassandra.datastax.com",
        "v1beta1",
        "CassandraDatacenter",
    )
    .await
}

pub async fn create_namespace(client: &Client, name: &str) -> Result<()> {
    let ns: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))?;
    Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Ok(())
}

/// Writes `cluster`'s admin kubeconfig as `dir/kubeconfig` and returns its path.
pub fn write_kubeconfig(dir: &Path, cluster: &k8ssandra_testenv::Cluster) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("kubeconfig");
    std::fs::write(&path, cluster.kubeconfig_yaml())?;
    Ok(path)
}

/// Creates the plugin directory `dir` holding the freshly built components of `policies`.
pub fn plugin_dir(dir: &Path, policies: &[&str]) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    for policy in policies {
        std::fs::copy(policy_wasm(policy), dir.join(format!("{policy}.wasm")))?;
    }
    Ok(dir.to_path_buf())
}

/// An API for a dynamic kind, namespaced, resolved against what the server serves.
pub async fn dynamic_api(
    client: &Client,
    namespace: &str,
    group: &str,
    version: &str,
    kind: &str,
) -> Result<Api<DynamicObject>> {
    let (ar, _) = pinned_kind(client, &GroupVersionKind::gvk(group, version, kind)).await?;
    Ok(Api::namespaced_with(client.clone(), namespace, &ar))
}

/// CassandraDatacenters in `namespace`.
pub async fn datacenters(client: &Client, namespace: &str) -> Result<Api<DynamicObject>> {
    dynamic_api(
        client,
        namespace,
        "cassandra.datastax.com",
        "v1beta1",
        "CassandraDatacenter",
    )
    .await
}

/// name → uid of every listed object: a changed uid means the object was recreated.
pub async fn uids<K>(api: &Api<K>) -> Result<std::collections::BTreeMap<String, String>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    Ok(api
        .list(&kube::api::ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|o| {
            let m = o.meta();
            (
                m.name.clone().unwrap_or_default(),
                m.uid.clone().unwrap_or_default(),
            )
        })
        .collect())
}

/// The last `n` lines of a log, for failure messages.
pub fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// How many nodes of the simulated Cassandra cluster `cluster` are up and Normal.
pub fn normal_nodes(sim: &cassandra_sim::SimHandle, cluster: &str) -> usize {
    sim.state().cluster(cluster).map_or(0, |c| {
        c.nodes
            .iter()
            .filter(|n| n.cassandra == cassandra_sim::CassandraState::Normal)
            .count()
    })
}

/// Registers a cluster with the control plane as a user would: its kubeconfig in Secret
/// `secret`, and a ClientConfig named after `context` that points to it.
pub async fn add_client_config(
    control: &Client,
    namespace: &str,
    context: &str,
    secret: &str,
    kubeconfig: &str,
) -> Result<()> {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    Api::<Secret>::namespaced(control.clone(), namespace)
        .create(
            &PostParams::default(),
            &Secret {
                metadata: kube::api::ObjectMeta {
                    name: Some(secret.to_string()),
                    ..Default::default()
                },
                data: Some(std::collections::BTreeMap::from([(
                    "kubeconfig".to_string(),
                    ByteString(kubeconfig.as_bytes().to_vec()),
                )])),
                ..Default::default()
            },
        )
        .await?;
    apply_yaml(
        control,
        &format!(
            "apiVersion: config.k8ssandra.io/v1beta1\nkind: ClientConfig\nmetadata:\n  name: {context}\n  namespace: {namespace}\nspec:\n  contextName: {context}\n  kubeConfigSecret:\n    name: {secret}\n"
        ),
        namespace,
    )
    .await
}

/// Whether a CassandraDatacenter (its JSON) is Ready: the Ready condition True and the
/// progress `Ready`.
pub fn datacenter_ready(dc: &serde_json::Value) -> bool {
    let ready = dc
        .pointer("/status/conditions")
        .and_then(serde_json::Value::as_array)
        .is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
    ready && dc.pointer("/status/cassandraOperatorProgress") == Some(&serde_json::json!("Ready"))
}

/// Whether the CassandraDatacenter `name` is Ready (see [`datacenter_ready`]).
pub async fn dc_ready(dcs: &Api<DynamicObject>, name: &str) -> bool {
    dcs.get(name)
        .await
        .is_ok_and(|dc| datacenter_ready(&dc.data))
}

/// The simulator's `lifecycle/start` history entries, oldest first.
pub fn sim_starts(sim: &cassandra_sim::SimHandle) -> Vec<cassandra_sim::HistoryEntry> {
    sim.history()
        .into_iter()
        .filter(|h| h.action == "start")
        .collect()
}

/// One testenv cluster with the CRDs, a namespace, the simulator (bootstrap 200 ms) and the
/// real operator running `policies` (resync 2 s): what a single-cluster e2e starts from.
pub struct OneCluster {
    pub client: Client,
    pub context: String,
    pub sim: cassandra_sim::SimHandle,
    pub op: Operator,
    // Dropped last: the operator and simulator must stop before their cluster does.
    pub env: k8ssandra_testenv::TestEnv,
    pub tmp: tempfile::TempDir,
}

impl OneCluster {
    pub async fn start(nodes: usize, namespace: &str, policies: &[&str]) -> Result<OneCluster> {
        let env = k8ssandra_testenv::TestEnv::start(k8ssandra_testenv::TestEnvOptions {
            clusters: 1,
            nodes_per_cluster: nodes,
            ..Default::default()
        })
        .await?;
        let tmp = tempfile::tempdir()?;
        let client = env.cluster(0).client();
        let context = env.cluster(0).context_name().to_string();
        install_crds(&client, &k8ssandra_api::all_crds_yaml()).await?;
        create_namespace(&client, namespace).await?;
        let mut opts = cassandra_sim::SimOptions::default();
        opts.config.bootstrap_delay = Duration::from_millis(200);
        let sim =
            cassandra_sim::Simulator::start(opts, vec![(context.clone(), client.clone())]).await?;
        let kubeconfig = write_kubeconfig(tmp.path(), env.cluster(0))?;
        let plugins = plugin_dir(&tmp.path().join("plugins"), policies)?;
        let op = Operator::start(&kubeconfig, &plugins, &["--resync-seconds", "2"])?;
        op.wait_ready(Duration::from_secs(60)).await?;
        Ok(OneCluster {
            client,
            context,
            sim,
            op,
            env,
            tmp,
        })
    }
}

/// The status of K8ssandraCluster `name` in `namespace`, or Null.
pub async fn kc_status(client: &Client, namespace: &str, name: &str) -> serde_json::Value {
    let Ok(api) = dynamic_api(
        client,
        namespace,
        "k8ssandra.io",
        "v1alpha1",
        "K8ssandraCluster",
    )
    .await
    else {
        return serde_json::Value::Null;
    };
    api.get(name)
        .await
        .ok()
        .and_then(|o| o.data.get("status").cloned())
        .unwrap_or(serde_json::Value::Null)
}

/// Pod name → uid of every pod of Cassandra cluster `cluster` in `namespace`.
pub async fn cassandra_pod_uids(
    client: &Client,
    namespace: &str,
    cluster: &str,
) -> std::collections::BTreeMap<String, String> {
    Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), namespace)
        .list(
            &kube::api::ListParams::default()
                .labels(&format!("cassandra.datastax.com/cluster={cluster}")),
        )
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            (
                p.metadata.name.unwrap_or_default(),
                p.metadata.uid.unwrap_or_default(),
            )
        })
        .collect()
}

/// The condition of type `t` in an object's (JSON) `status.conditions`.
pub fn condition<'a>(obj: &'a serde_json::Value, t: &str) -> Option<&'a serde_json::Value> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == t)
}

/// A ServiceMonitor CRD as the Prometheus Operator installs it, schema left open (tests
/// need the kind served, not its validation).
pub const SERVICE_MONITOR_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
"#;
