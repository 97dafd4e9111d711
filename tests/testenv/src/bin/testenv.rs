//! `testenv up` runs local clusters in the foreground until SIGINT/SIGTERM;
//! `testenv down` stops the ones a running `up` started.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use k8ssandra_testenv::{TestEnv, TestEnvOptions};
use serde::{Deserialize, Serialize};

#[derive(Parser)]
#[command(
    name = "testenv",
    about = "Local Kubernetes control planes for k8ssandra tests"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start clusters and stay in the foreground until SIGINT or SIGTERM.
    Up {
        /// Number of clusters (contexts cluster-0, cluster-1, ...).
        #[arg(long, default_value_t = 1)]
        clusters: usize,
        /// Fake nodes per cluster, spread over zone-a, zone-b, zone-c.
        #[arg(long, default_value_t = 6)]
        nodes: usize,
        /// Where the state file and cluster data go.
        #[arg(long, env = "TESTENV_STATE_DIR")]
        state_dir: Option<PathBuf>,
        /// Where to write the kubeconfig (default: `<state-dir>/kubeconfig`).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
    },
    /// Stop what a running `testenv up` with the same state directory started.
    Down {
        #[arg(long, env = "TESTENV_STATE_DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Print the directory of the binaries (kubectl, helm, ...), building them if needed.
    BinDir,
}

/// Written by `up`, read by `down`.
#[derive(Serialize, Deserialize, Debug)]
struct State {
    pid: u32,
    kubeconfig: PathBuf,
    bin_dir: PathBuf,
    root_dir: PathBuf,
    clusters: Vec<ClusterState>,
}

#[derive(Serialize, Deserialize, Debug)]
struct ClusterState {
    context: String,
    server: String,
    pod_cidr: String,
    pids: Vec<u32>,
}

fn default_state_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("k8ssandra-testenv"),
        // SAFETY: getuid cannot fail.
        _ => PathBuf::from(format!("/tmp/k8ssandra-testenv-{}", unsafe {
            libc::getuid()
        })),
    }
}

fn state_file(state_dir: &Path) -> PathBuf {
    state_dir.join("state.json")
}

fn alive(pid: u32) -> bool {
    k8ssandra_testenv::procscan::is_running(pid)
}

fn read_state(path: &Path) -> Result<Option<State>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

async fn up(
    clusters: usize,
    nodes: usize,
    state_dir: PathBuf,
    kubeconfig: Option<PathBuf>,
) -> Result<()> {
    let state_path = state_file(&state_dir);
    if let Some(old) = read_state(&state_path)?
        && alive(old.pid)
    {
        bail!(
            "testenv is already up (pid {}) with state dir {}; run `testenv down` first",
            old.pid,
            state_dir.display()
        );
    }
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("creating {}", state_dir.display()))?;
    let root_dir = state_dir.join("clusters");
    // Leftovers (logs, data) of the previous run.
    if root_dir.exists() {
        std::fs::remove_dir_all(&root_dir)
            .with_context(|| format!("removing {}", root_dir.display()))?;
    }
    let kubeconfig = kubeconfig.unwrap_or_else(|| state_dir.join("kubeconfig"));

    let env = TestEnv::start(TestEnvOptions {
        clusters,
        nodes_per_cluster: nodes,
        root_dir: Some(root_dir.clone()),
        ..Default::default()
    })
    .await?;
    env.write_kubeconfig(&kubeconfig)?;
    let state = State {
        pid: std::process::id(),
        kubeconfig: kubeconfig.clone(),
        bin_dir: env.bin_dir().to_path_buf(),
        root_dir,
        clusters: env
            .clusters()
            .iter()
            .map(|c| ClusterState {
                context: c.context_name().to_string(),
                server: c.server_url().to_string(),
                pod_cidr: c.pod_cidr(),
                pids: c.pids(),
            })
            .collect(),
    };
    let tmp = state_path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&state)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &state_path)
        .with_context(|| format!("writing {}", state_path.display()))?;

    for c in &state.clusters {
        println!("{}\t{}\tpods {}", c.context, c.server, c.pod_cidr);
    }
    println!("kubeconfig: {}", kubeconfig.display());
    println!("binaries: {}", state.bin_dir.display());
    println!("ready");

    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("stopping");
    drop(env);
    let _ = std::fs::remove_file(&state_path);
    println!("stopped");
    Ok(())
}

fn down(state_dir: PathBuf) -> Result<()> {
    let state_path = state_file(&state_dir);
    let Some(state) = read_state(&state_path)? else {
        println!("nothing to stop ({} not found)", state_path.display());
        return Ok(());
    };
    if alive(state.pid) {
        // SAFETY: plain kill(2).
        unsafe { libc::kill(state.pid as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(60);
        while alive(state.pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // Whatever survived (the `up` process was killed, or hung) goes now.
    let survivors: Vec<u32> = std::iter::once(state.pid)
        .chain(state.clusters.iter().flat_map(|c| c.pids.iter().copied()))
        .filter(|&pid| alive(pid))
        .collect();
    for pid in &survivors {
        tracing::warn!(pid, "still running, killing");
        // SAFETY: plain kill(2); components lead their own process groups.
        unsafe {
            libc::kill(-(*pid as libc::pid_t), libc::SIGKILL);
            libc::kill(*pid as libc::pid_t, libc::SIGKILL);
        }
    }
    let _ = std::fs::remove_file(&state_path);
    println!("stopped");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Up {
            clusters,
            nodes,
            state_dir,
            kubeconfig,
        } => {
            up(
                clusters,
                nodes,
                state_dir.unwrap_or_else(default_state_dir),
                kubeconfig,
            )
            .await
        }
        Command::Down { state_dir } => down(state_dir.unwrap_or_else(default_state_dir)),
        Command::BinDir => {
            let dir = tokio::task::spawn_blocking(k8ssandra_testenv::discover_bin_dir).await??;
            println!("{}", dir.display());
            Ok(())
        }
    }
}
