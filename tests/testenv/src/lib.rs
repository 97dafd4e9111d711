//! # testenv: real local Kubernetes control planes for tests
//!
//! Starts as many independent Kubernetes clusters as a test asks for, on loopback and without
//! a container engine. Each cluster is a real etcd, kube-apiserver, kube-controller-manager and
//! kube-scheduler, plus [kwok](https://kwok.sigs.k8s.io) playing the kubelets of a few fake
//! nodes (spread over zones `zone-a`, `zone-b`, `zone-c`), plus a small volume provisioner, so
//! StatefulSets with volume claims get Running pods and Bound claims.
//!
//! ```no_run
//! # async fn demo() -> Result<(), k8ssandra_testenv::Error> {
//! use k8ssandra_testenv::{TestEnv, TestEnvOptions};
//!
//! let env = TestEnv::start(TestEnvOptions { clusters: 2, ..Default::default() }).await?;
//! let client = env.cluster(0).client();               // admin kube::Client
//! let kubeconfig = env.cluster(1).kubeconfig_path();  // one context: "cluster-1"
//! env.write_kubeconfig("/tmp/all.yaml".as_ref())?;    // contexts cluster-0, cluster-1
//! let kubectl = env.bin_dir().join("kubectl");        // helm is there too
//! # let _ = (client, kubeconfig, kubectl);
//! # Ok(()) }
//! ```
//!
//! What a test can rely on:
//! - Pods get addresses from their cluster's own `127.<n>.0.0/16` ([`Cluster::pod_cidr`]);
//!   `<n>` is a slot held with `flock` under `/tmp/k8ssandra-testenv-slots`, so parallel tests
//!   and processes never share a range. Every address of `127.0.0.0/8` reaches loopback, so a
//!   simulator can listen on a pod's IP.
//! - Ordinary pods become Running and Ready at once; deleted pods disappear at once.
//! - Pods labelled `cassandra.datastax.com/cluster` become Running with an IP but stay
//!   **not Ready**: whoever plays Cassandra patches `Ready` through the status subresource.
//! - The default StorageClass `standard` (WaitForFirstConsumer) gets a PersistentVolume per
//!   claim, pinned to the zone of the node the pod was scheduled to.
//! - [`Cluster::stop_apiserver`] / [`Cluster::start_apiserver`] simulate an API outage.
//! - Dropping the [`TestEnv`] (also while panicking) stops every process; children also die
//!   with the test process (`PR_SET_PDEATHSIG`). Missing binaries are an error, never a skip.
//!
//! - [`procscan`] finds processes through `/proc`, to assert that nothing was left running.
//! - `TESTENV_KEEP=1` keeps each env's directory (data, `cluster-<i>/logs/*.log`) after the drop.
//!
//! Binaries come from `$TESTENV_BIN_DIR` or from `tests/testenv/build-binaries.sh`, which builds
//! them from pinned Go modules into a cache outside the repository (see `docs/testing.md`).
//! The `testenv` binary (`testenv up` / `testenv down`) runs the same clusters for humans.

mod bins;
mod cluster;
mod error;
mod kubeconfig;
mod pki;
mod process;
pub mod procscan;
mod provisioner;
mod slot;
mod stages;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use bins::{BIN_DIR_ENV, REQUIRED_BINARIES, build_script, discover_bin_dir, verify_bin_dir};
pub use cluster::Cluster;
pub use error::{Error, Result};
pub use kubeconfig::{KubeconfigEntry, render as render_kubeconfig};
pub use provisioner::{PROVISIONER, STORAGE_CLASS};
pub use slot::SLOT_DIR;
pub use stages::{CASSANDRA_POD_LABEL, KWOK_NODE_ANNOTATION, KWOK_STAGES};

use error::IoContext;

/// Set (non-empty) to keep every TestEnv's directory, with the component logs, after the drop.
pub const KEEP_ENV: &str = "TESTENV_KEEP";

/// How many clusters to start and what they look like.
#[derive(Debug, Clone)]
pub struct TestEnvOptions {
    /// Number of independent clusters (contexts `cluster-0` ..).
    pub clusters: usize,
    /// Fake nodes per cluster, assigned round-robin to `zones`.
    pub nodes_per_cluster: usize,
    /// Values of `topology.kubernetes.io/zone` on the nodes.
    pub zones: Vec<String>,
    /// CPU capacity of each node.
    pub node_cpu: String,
    /// Memory capacity of each node.
    pub node_memory: String,
    /// Pod capacity of each node.
    pub node_max_pods: u32,
    /// Where cluster directories go. `None`: a fresh temporary directory, removed on drop
    /// unless `$TESTENV_KEEP` is set. A given directory is kept.
    pub root_dir: Option<PathBuf>,
    /// Directory of the binaries. `None`: [`discover_bin_dir`].
    pub bin_dir: Option<PathBuf>,
    /// Upper bound for each start-up wait (API server ready, nodes ready, ...).
    pub startup_timeout: Duration,
}

impl Default for TestEnvOptions {
    fn default() -> Self {
        TestEnvOptions {
            clusters: 1,
            nodes_per_cluster: 6,
            zones: vec!["zone-a".into(), "zone-b".into(), "zone-c".into()],
            node_cpu: "32".into(),
            node_memory: "256Gi".into(),
            node_max_pods: 250,
            root_dir: None,
            bin_dir: None,
            startup_timeout: Duration::from_secs(300),
        }
    }
}

#[derive(Debug)]
enum Root {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl Root {
    fn path(&self) -> &Path {
        match self {
            Root::Temp(t) => t.path(),
            Root::Kept(p) => p,
        }
    }
}

/// A set of running clusters. Dropping it stops them all.
#[derive(Debug)]
pub struct TestEnv {
    // Dropped first: processes stop before their directories go away.
    clusters: Vec<Cluster>,
    bin_dir: PathBuf,
    root: Root,
}

impl TestEnv {
    /// Starts `options.clusters` clusters in parallel and waits until each can run pods.
    pub async fn start(options: TestEnvOptions) -> Result<TestEnv> {
        if options.clusters == 0 {
            return Err(Error::InvalidOptions("clusters must be at least 1".into()));
        }
        if options.zones.is_empty() {
            return Err(Error::InvalidOptions("zones must not be empty".into()));
        }
        if options.nodes_per_cluster == 0 || options.nodes_per_cluster > 250 {
            return Err(Error::InvalidOptions(
                "nodes_per_cluster must be within 1..=250".into(),
            ));
        }
        let bin_dir = match &options.bin_dir {
            Some(dir) => {
                verify_bin_dir(dir)?;
                dir.clone()
            }
            None => tokio::task::spawn_blocking(discover_bin_dir)
                .await
                .map_err(|e| Error::BuildScript(format!("discovery task failed: {e}")))??,
        };
        let root = match &options.root_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
                Root::Kept(dir.clone())
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("k8ssandra-testenv-")
                    .tempdir()
                    .ctx(|| "creating a temporary directory".into())?;
                if std::env::var_os(KEEP_ENV).is_some_and(|v| !v.is_empty()) {
                    let kept = temp.keep();
                    tracing::info!(dir = %kept.display(), "{KEEP_ENV} set: keeping data and logs");
                    Root::Kept(kept)
                } else {
                    Root::Temp(temp)
                }
            }
        };
        let starts = (0..options.clusters)
            .map(|i| Cluster::start(i, &options, &bin_dir, root.path()))
            .collect::<Vec<_>>();
        // On failure the clusters that did start are dropped here, which stops them.
        let clusters = futures::future::try_join_all(starts).await?;
        Ok(TestEnv {
            clusters,
            bin_dir,
            root,
        })
    }

    /// Cluster `i` (context `cluster-<i>`). Panics when out of range, like slice indexing.
    pub fn cluster(&self, i: usize) -> &Cluster {
        &self.clusters[i]
    }

    /// All clusters, in index order.
    pub fn clusters(&self) -> &[Cluster] {
        &self.clusters
    }

    /// Directory with kubectl, helm and the control-plane binaries.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The directory holding one sub-directory per cluster (data, certificates, logs).
    pub fn root_dir(&self) -> &Path {
        self.root.path()
    }

    /// One kubeconfig with a context per cluster (`cluster-0`, `cluster-1`, ...).
    pub fn kubeconfig_yaml(&self) -> Result<String> {
        let entries: Vec<_> = self.clusters.iter().map(|c| c.kubeconfig_entry()).collect();
        kubeconfig::render(&entries)
    }

    /// Writes [`TestEnv::kubeconfig_yaml`] to `path` (mode 0600: it holds admin keys).
    pub fn write_kubeconfig(&self, path: &Path) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let yaml = self.kubeconfig_yaml()?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).ctx(|| format!("creating {}", parent.display()))?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(path)
            .ctx(|| format!("opening {}", path.display()))?;
        f.write_all(yaml.as_bytes())
            .ctx(|| format!("writing {}", path.display()))
    }

    /// Process ids of every running component of every cluster.
    pub fn pids(&self) -> Vec<u32> {
        self.clusters.iter().flat_map(Cluster::pids).collect()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // All clusters share one grace period instead of stopping one after the other.
        Cluster::stop_all_blocking(&mut self.clusters);
    }
}
