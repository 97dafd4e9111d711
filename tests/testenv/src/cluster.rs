//! One local cluster: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok and
//! the volume provisioner, all on loopback.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, ServiceAccount};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams};

use crate::error::{Error, IoContext, Result, kube_err};
use crate::kubeconfig::{self, KubeconfigEntry};
use crate::process::{
    self, PortReservation, Proc, ProcSpec, STOP_GRACE, is_port_conflict, reserve_port,
};
use crate::slot::Slot;
use crate::stages::{KWOK_NODE_ANNOTATION, KWOK_STAGES};
use crate::{TestEnvOptions, pki, provisioner};

/// Controllers kube-controller-manager runs. Node lifecycle is left out on purpose: under load
/// on a small machine a late kwok lease renewal would taint nodes and evict pods. So are the
/// Endpoints and EndpointSlice controllers: pods here have loopback addresses, which
/// validation refuses in both kinds, so all they could do is fail and fill every namespace
/// with Warning events (FailedToUpdateEndpoint, FailedToUpdateEndpointSlices) that real
/// clusters never show.
const CONTROLLERS: &[&str] = &[
    "serviceaccount-token-controller",
    "serviceaccount-controller",
    "namespace-controller",
    "garbage-collector-controller",
    "replicaset-controller",
    "replicationcontroller-controller",
    "deployment-controller",
    "statefulset-controller",
    "daemonset-controller",
    "job-controller",
    "cronjob-controller",
    "ttl-after-finished-controller",
    "disruption-controller",
    "persistentvolume-binder-controller",
    "persistentvolume-expander-controller",
    "persistentvolumeclaim-protection-controller",
    "persistentvolume-protection-controller",
    "pod-garbage-collector-controller",
    "resourcequota-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",
    "service-cidr-controller",
    "ephemeral-volume-controller",
];

/// Client rate limits of the harness components: defaults (20-50 QPS) throttle scale tests.
const COMPONENT_QPS: &str = "500";
const COMPONENT_BURST: &str = "1000";

const PORT_ATTEMPTS: usize = 3;

/// Grace period on teardown: the API server drains for longer than any test wants to wait.
const TEARDOWN_GRACE: Duration = Duration::from_millis(500);

/// The processes of one cluster, stopped in reverse start order.
#[derive(Default)]
struct Procs {
    etcd: Option<Proc>,
    apiserver: Option<Proc>,
    controller_manager: Option<Proc>,
    scheduler: Option<Proc>,
    kwok: Option<Proc>,
}

impl Procs {
    fn all_mut(&mut self) -> Vec<&mut Proc> {
        [
            &mut self.kwok,
            &mut self.scheduler,
            &mut self.controller_manager,
            &mut self.apiserver,
            &mut self.etcd,
        ]
        .into_iter()
        .filter_map(Option::as_mut)
        .collect()
    }

    fn first_exited(&mut self) -> Option<Error> {
        self.all_mut().into_iter().find_map(Proc::exited_error)
    }

    fn pids(&mut self) -> Vec<u32> {
        self.all_mut().iter().filter_map(|p| p.pid()).collect()
    }
}

fn lock(procs: &Mutex<Procs>) -> MutexGuard<'_, Procs> {
    procs.lock().unwrap_or_else(|p| p.into_inner())
}

/// Polls a condition with a deadline, failing early when a component dies.
struct Waiter {
    what: String,
    started: Instant,
    timeout: Duration,
}

impl Waiter {
    fn new(what: impl Into<String>, timeout: Duration) -> Waiter {
        Waiter {
            what: what.into(),
            started: Instant::now(),
            timeout,
        }
    }

    async fn tick(&self, procs: &Mutex<Procs>) -> Result<()> {
        if let Some(e) = lock(procs).first_exited() {
            return Err(e);
        }
        if self.started.elapsed() > self.timeout {
            return Err(Error::Timeout {
                what: self.what.clone(),
                secs: self.timeout.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(())
    }
}

/// A running local cluster. Everything it started stops when it is dropped.
pub struct Cluster {
    index: usize,
    context: String,
    dir: PathBuf,
    bin_dir: PathBuf,
    server: String,
    entry: KubeconfigEntry,
    kubeconfig_yaml: String,
    kubeconfig_path: PathBuf,
    client: kube::Client,
    // Same identity, without request logging: polls /readyz.
    probe: kube::Client,
    apiserver_spec: ProcSpec,
    procs: Mutex<Procs>,
    provisioner: tokio::task::AbortHandle,
    node_names: Vec<String>,
    startup_timeout: Duration,
    _ports: Vec<PortReservation>,
    // Last: the pod range stays ours until every process is gone.
    slot: Slot,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("context", &self.context)
            .field("server", &self.server)
            .field("pod_cidr", &self.pod_cidr())
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

struct Paths {
    dir: PathBuf,
    logs: PathBuf,
    pki: PathBuf,
}

impl Paths {
    fn log(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{name}.log"))
    }
    fn pki(&self, name: &str) -> PathBuf {
        self.pki.join(name)
    }
    fn s(&self, p: PathBuf) -> String {
        p.to_string_lossy().into_owned()
    }
}

fn write(path: &Path, contents: &str) -> Result<()> {
    std::fs::write(path, contents).ctx(|| format!("writing {}", path.display()))
}

impl Cluster {
    pub(crate) async fn start(
        index: usize,
        opts: &TestEnvOptions,
        bin_dir: &Path,
        root: &Path,
    ) -> Result<Cluster> {
        let slot = Slot::acquire()?;
        let n = slot.number();
        let context = format!("cluster-{index}");
        let paths = Paths {
            dir: root.join(&context),
            logs: root.join(&context).join("logs"),
            pki: root.join(&context).join("pki"),
        };
        for d in [&paths.logs, &paths.pki, &paths.dir.join("volumes")] {
            std::fs::create_dir_all(d).ctx(|| format!("creating {}", d.display()))?;
        }
        tracing::info!(cluster = %context, slot = n, dir = %paths.dir.display(), "starting cluster");

        let pki = pki::generate(&context)?;
        write(&paths.pki("ca.crt"), &pki.ca_cert)?;
        write(&paths.pki("apiserver.crt"), &pki.serving_cert)?;
        write(&paths.pki("apiserver.key"), &pki.serving_key)?;
        write(&paths.pki("admin.crt"), &pki.admin_cert)?;
        write(&paths.pki("admin.key"), &pki.admin_key)?;
        write(&paths.pki("sa.key"), &pki.service_account_key)?;
        write(&paths.pki("sa.pub"), &pki.service_account_pub)?;

        let procs = Mutex::new(Procs::default());
        let timeout = opts.startup_timeout;

        let (etcd_url, mut ports) = start_etcd(&paths, bin_dir, &procs, timeout).await?;

        let mut attempt = 0;
        let (server, entry, kubeconfig_yaml, client, probe, apiserver_spec) = loop {
            attempt += 1;
            let reservation = reserve_port()?;
            let port = reservation.port();
            let server = format!("https://127.0.0.1:{port}");
            let entry = KubeconfigEntry {
                context: context.clone(),
                server: server.clone(),
                ca_cert_pem: pki.ca_cert.clone(),
                client_cert_pem: pki.admin_cert.clone(),
                client_key_pem: pki.admin_key.clone(),
            };
            let yaml = kubeconfig::render(&[&entry])?;
            let client = kubeconfig::client_for(&yaml, &context).await?;
            let probe = kubeconfig::quiet_client_for(&yaml, &context).await?;
            let spec = apiserver_spec(&paths, bin_dir, port, &etcd_url);
            lock(&procs).apiserver = Some(Proc::spawn(&spec)?);
            match wait_apiserver_ready(&probe, &procs, timeout).await {
                Ok(()) => {
                    ports.push(reservation);
                    break (server, entry, yaml, client, probe, spec);
                }
                Err(e) if attempt < PORT_ATTEMPTS && is_port_conflict(&e) => {
                    tracing::info!(cluster = %context, port, "API server port taken, retrying");
                }
                Err(e) => return Err(e),
            }
        };
        let kubeconfig_path = paths.dir.join("kubeconfig");
        write(&kubeconfig_path, &kubeconfig_yaml)?;

        let node_names = bootstrap_objects(&client, opts, n).await?;

        let kcfg = paths.s(kubeconfig_path.clone());
        let kcm = ProcSpec {
            name: "kube-controller-manager".into(),
            program: bin_dir.join("kube-controller-manager"),
            args: vec![
                format!("--kubeconfig={kcfg}"),
                "--leader-elect=false".into(),
                "--secure-port=0".into(),
                format!("--root-ca-file={}", paths.s(paths.pki("ca.crt"))),
                format!(
                    "--service-account-private-key-file={}",
                    paths.s(paths.pki("sa.key"))
                ),
                "--use-service-account-credentials=false".into(),
                format!("--controllers={}", CONTROLLERS.join(",")),
                format!("--kube-api-qps={COMPONENT_QPS}"),
                format!("--kube-api-burst={COMPONENT_BURST}"),
                format!("--cluster-name={context}"),
                "--concurrent-statefulset-syncs=10".into(),
            ],
            env: vec![],
            log: paths.log("kube-controller-manager"),
        };
        let scheduler = ProcSpec {
            name: "kube-scheduler".into(),
            program: bin_dir.join("kube-scheduler"),
            args: vec![
                format!("--kubeconfig={kcfg}"),
                "--leader-elect=false".into(),
                "--secure-port=0".into(),
                format!("--kube-api-qps={COMPONENT_QPS}"),
                format!("--kube-api-burst={COMPONENT_BURST}"),
            ],
            env: vec![],
            log: paths.log("kube-scheduler"),
        };
        let kwok_config = paths.dir.join("kwok.yaml");
        write(&kwok_config, KWOK_STAGES)?;
        let kwok = ProcSpec {
            name: "kwok".into(),
            program: bin_dir.join("kwok"),
            args: vec![
                format!("--kubeconfig={kcfg}"),
                format!("--config={}", paths.s(kwok_config)),
                "--manage-all-nodes=false".into(),
                format!("--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake"),
                format!("--cidr={}", slot.pod_cidr()),
                format!("--node-ip=127.{n}.255.254"),
                "--node-lease-duration-seconds=40".into(),
            ],
            // kwok also reads ~/.kwok/kwok.yaml when present; keep a user's file out.
            env: vec![("HOME".into(), paths.s(paths.dir.clone()))],
            log: paths.log("kwok"),
        };
        {
            let mut p = lock(&procs);
            p.controller_manager = Some(Proc::spawn(&kcm)?);
            p.scheduler = Some(Proc::spawn(&scheduler)?);
            p.kwok = Some(Proc::spawn(&kwok)?);
        }

        let provisioner = tokio::spawn(provisioner::run(client.clone(), paths.dir.join("volumes")))
            .abort_handle();
        // From here on a failure must also stop the provisioner.
        let cluster = Cluster {
            index,
            context,
            dir: paths.dir.clone(),
            bin_dir: bin_dir.to_path_buf(),
            server,
            entry,
            kubeconfig_yaml,
            kubeconfig_path,
            client,
            probe,
            apiserver_spec,
            procs,
            provisioner,
            node_names,
            startup_timeout: timeout,
            _ports: ports,
            slot,
        };
        cluster.wait_workloads_ready().await?;
        tracing::info!(
            cluster = %cluster.context,
            server = %cluster.server,
            pod_cidr = %cluster.pod_cidr(),
            "cluster ready"
        );
        Ok(cluster)
    }

    /// Pods can be created once the `default` ServiceAccount exists (admission requires it)
    /// and scheduled once kwok has marked the nodes Ready.
    async fn wait_workloads_ready(&self) -> Result<()> {
        let sa: Api<ServiceAccount> = Api::namespaced(self.client.clone(), "default");
        let w = Waiter::new(
            format!("{}: default ServiceAccount", self.context),
            self.startup_timeout,
        );
        while !matches!(sa.get_opt("default").await, Ok(Some(_))) {
            w.tick(&self.procs).await?;
        }
        let nodes: Api<Node> = Api::all(self.client.clone());
        let w = Waiter::new(
            format!("{}: nodes Ready", self.context),
            self.startup_timeout,
        );
        loop {
            if let Ok(list) = nodes.list(&ListParams::default()).await {
                let ready = list.items.iter().filter(|n| node_ready(n)).count();
                if ready >= self.node_names.len() {
                    return Ok(());
                }
            }
            w.tick(&self.procs).await?;
        }
    }

    /// Position of this cluster in its [`crate::TestEnv`].
    pub fn index(&self) -> usize {
        self.index
    }

    /// A client with the admin identity (`system:masters`). Cheap to clone.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// Context name in this cluster's kubeconfig and in merged kubeconfigs: `cluster-<index>`.
    pub fn context_name(&self) -> &str {
        &self.context
    }

    /// This cluster's kubeconfig (admin identity, one context).
    pub fn kubeconfig_yaml(&self) -> &str {
        &self.kubeconfig_yaml
    }

    /// Where [`Cluster::kubeconfig_yaml`] is written.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// What a kubeconfig needs to reach this cluster, to merge with others.
    pub fn kubeconfig_entry(&self) -> &KubeconfigEntry {
        &self.entry
    }

    /// `https://127.0.0.1:<port>`.
    pub fn server_url(&self) -> &str {
        &self.server
    }

    /// The slot number `n` of this cluster's pod range.
    pub fn slot(&self) -> u8 {
        self.slot.number()
    }

    /// Pod addresses come from here: `127.<n>.0.0/16`.
    pub fn pod_cidr(&self) -> String {
        self.slot.pod_cidr()
    }

    /// Prefix every pod IP of this cluster starts with: `127.<n>.`.
    pub fn pod_ip_prefix(&self) -> String {
        format!("127.{}.", self.slot.number())
    }

    /// Whether `ip` is in this cluster's pod range.
    pub fn owns_pod_ip(&self, ip: &str) -> bool {
        ip.starts_with(&self.pod_ip_prefix())
    }

    /// Names of the fake nodes.
    pub fn node_names(&self) -> &[String] {
        &self.node_names
    }

    /// Directory with binaries (kubectl, helm, ...).
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// This cluster's private directory (data, certificates, `logs/<component>.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A `kubectl` command already pointed at this cluster.
    pub fn kubectl(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(self.bin_dir.join("kubectl"));
        cmd.arg(format!("--kubeconfig={}", self.kubeconfig_path.display()))
            .arg(format!("--context={}", self.context));
        cmd
    }

    /// Process ids of the components currently running.
    pub fn pids(&self) -> Vec<u32> {
        lock(&self.procs).pids()
    }

    /// Stops the API server (SIGTERM, then SIGKILL after a grace period). Everything else keeps
    /// running and retries; [`Cluster::start_apiserver`] brings it back on the same port and data.
    pub async fn stop_apiserver(&self) -> Result<()> {
        let proc = lock(&self.procs).apiserver.take();
        if let Some(mut p) = proc {
            tokio::task::spawn_blocking(move || p.stop(STOP_GRACE))
                .await
                .map_err(|e| Error::Io {
                    context: "stopping the API server".into(),
                    source: std::io::Error::other(e),
                })?;
            tracing::info!(cluster = %self.context, "API server stopped");
        }
        Ok(())
    }

    /// Starts the API server again (same port, certificates and etcd) and waits for `/readyz`.
    /// Does nothing when it is running.
    pub async fn start_apiserver(&self) -> Result<()> {
        {
            let mut procs = lock(&self.procs);
            if procs.apiserver.is_some() {
                return Ok(());
            }
            procs.apiserver = Some(Proc::spawn(&self.apiserver_spec)?);
        }
        wait_apiserver_ready(&self.probe, &self.procs, self.startup_timeout).await?;
        tracing::info!(cluster = %self.context, "API server restarted");
        Ok(())
    }

    /// Stops every component of `clusters` at once. Nothing of a test cluster needs to
    /// survive, so there is only a short grace period before SIGKILL.
    pub(crate) fn stop_all_blocking(clusters: &mut [Cluster]) {
        let mut guards: Vec<_> = clusters
            .iter_mut()
            .map(|c| {
                c.provisioner.abort();
                c.procs.get_mut().unwrap_or_else(|p| p.into_inner())
            })
            .collect();
        let mut all: Vec<&mut Proc> = guards.iter_mut().flat_map(|p| p.all_mut()).collect();
        process::stop_all(&mut all, TEARDOWN_GRACE);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        Cluster::stop_all_blocking(std::slice::from_mut(self));
    }
}

fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn start_etcd(
    paths: &Paths,
    bin_dir: &Path,
    procs: &Mutex<Procs>,
    timeout: Duration,
) -> Result<(String, Vec<PortReservation>)> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let reservations = vec![reserve_port()?, reserve_port()?];
        let (client_port, peer_port) = (reservations[0].port(), reservations[1].port());
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let data_dir = paths.dir.join("etcd");
        let spec = ProcSpec {
            name: "etcd".into(),
            program: bin_dir.join("etcd"),
            args: vec![
                format!("--data-dir={}", paths.s(data_dir)),
                format!("--listen-client-urls={client_url}"),
                format!("--advertise-client-urls={client_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=default={peer_url}"),
                "--unsafe-no-fsync=true".into(),
                "--log-level=warn".into(),
            ],
            env: vec![],
            log: paths.log("etcd"),
        };
        lock(procs).etcd = Some(Proc::spawn(&spec)?);
        let w = Waiter::new("etcd client port", timeout);
        let result = loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", client_port))
                .await
                .is_ok()
            {
                break Ok(());
            }
            if let Err(e) = w.tick(procs).await {
                break Err(e);
            }
        };
        match result {
            Err(e) if attempt < PORT_ATTEMPTS && is_port_conflict(&e) => {
                tracing::info!(client_port, peer_port, "etcd port taken, retrying");
                lock(procs).etcd = None;
            }
            Err(e) => return Err(e),
            Ok(()) => return Ok((client_url, reservations)),
        }
    }
}

fn apiserver_spec(paths: &Paths, bin_dir: &Path, port: u16, etcd_url: &str) -> ProcSpec {
    let sa_key = paths.s(paths.pki("sa.key"));
    ProcSpec {
        name: "kube-apiserver".into(),
        program: bin_dir.join("kube-apiserver"),
        args: vec![
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={port}"),
            format!("--cert-dir={}", paths.s(paths.pki("generated"))),
            format!("--tls-cert-file={}", paths.s(paths.pki("apiserver.crt"))),
            format!(
                "--tls-private-key-file={}",
                paths.s(paths.pki("apiserver.key"))
            ),
            format!("--client-ca-file={}", paths.s(paths.pki("ca.crt"))),
            "--service-cluster-ip-range=10.96.0.0/16".into(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!(
                "--service-account-key-file={}",
                paths.s(paths.pki("sa.pub"))
            ),
            format!("--service-account-signing-key-file={sa_key}"),
            "--authorization-mode=RBAC".into(),
            "--allow-privileged=true".into(),
            // The default reconciler writes loopback Endpoints that validation rejects.
            "--endpoint-reconciler-type=none".into(),
            // It taints new nodes not-ready, and only the node lifecycle controller (not run
            // here, see CONTROLLERS) would lift the taint.
            "--disable-admission-plugins=TaintNodesByCondition".into(),
            "--max-requests-inflight=1000".into(),
            "--max-mutating-requests-inflight=500".into(),
            "--profiling=false".into(),
        ],
        env: vec![],
        log: paths.log("kube-apiserver"),
    }
}

async fn apiserver_ready(client: &kube::Client) -> bool {
    let Ok(req) = http::Request::get("/readyz").body(Vec::new()) else {
        return false;
    };
    matches!(client.request_text(req).await, Ok(body) if body.trim() == "ok")
}

async fn wait_apiserver_ready(
    client: &kube::Client,
    procs: &Mutex<Procs>,
    timeout: Duration,
) -> Result<()> {
    let w = Waiter::new("kube-apiserver /readyz", timeout);
    while !apiserver_ready(client).await {
        w.tick(procs).await?;
    }
    Ok(())
}

/// The default StorageClass and the fake nodes; returns the node names.
async fn bootstrap_objects(
    client: &kube::Client,
    opts: &TestEnvOptions,
    slot: u8,
) -> Result<Vec<String>> {
    let classes: Api<StorageClass> = Api::all(client.clone());
    match classes
        .create(&PostParams::default(), &provisioner::storage_class())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(kube_err("creating the StorageClass")(e)),
    }

    let nodes: Api<Node> = Api::all(client.clone());
    let mut names = Vec::with_capacity(opts.nodes_per_cluster);
    for i in 0..opts.nodes_per_cluster {
        let name = format!("kwok-node-{i}");
        let zone = &opts.zones[i % opts.zones.len()];
        let node = Node {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(BTreeMap::from([
                    ("kubernetes.io/hostname".to_string(), name.clone()),
                    ("kubernetes.io/os".to_string(), "linux".to_string()),
                    ("kubernetes.io/arch".to_string(), "amd64".to_string()),
                    ("topology.kubernetes.io/zone".to_string(), zone.clone()),
                    (
                        "topology.kubernetes.io/region".to_string(),
                        "region-1".to_string(),
                    ),
                    ("type".to_string(), "kwok".to_string()),
                ])),
                annotations: Some(BTreeMap::from([
                    (KWOK_NODE_ANNOTATION.to_string(), "fake".to_string()),
                    ("node.alpha.kubernetes.io/ttl".to_string(), "0".to_string()),
                ])),
                ..Default::default()
            },
            ..Default::default()
        };
        match nodes.create(&PostParams::default(), &node).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(kube_err(format!("creating node {name}"))(e)),
        }
        // Status is ignored on create. kwok keeps addresses and capacity it finds, so set them
        // before kwok starts.
        let resources = serde_json::json!({
            "cpu": opts.node_cpu,
            "memory": opts.node_memory,
            "pods": opts.node_max_pods.to_string(),
            "ephemeral-storage": "1Ti",
        });
        let status = serde_json::json!({
            "status": {
                "addresses": [
                    { "type": "InternalIP", "address": format!("127.{slot}.255.{}", i + 1) },
                    { "type": "Hostname", "address": name },
                ],
                "capacity": resources,
                "allocatable": resources,
            }
        });
        nodes
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .map_err(kube_err(format!("setting the status of node {name}")))?;
        names.push(name);
    }
    Ok(names)
}
