//! `cassandra-sim`: the simulator as a process, for e2e tests and the demo.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cassandra_sim::{SimConfig, SimOptions, Simulator, clients_from_kubeconfig};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "cassandra-sim",
    about = "Simulated Cassandra management API for Kubernetes pods"
)]
struct Args {
    /// Kubeconfig with the clusters whose Cassandra pods to serve.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    /// Context to watch; repeat for several. Default: every context of the kubeconfig.
    #[arg(long = "context")]
    contexts: Vec<String>,
    /// Time from lifecycle/start to NORMAL, e.g. 2s, 500ms, 0s.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    bootstrap_delay: Duration,
    /// Time from a decommission request to LEFT.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    decommission_delay: Duration,
    /// How long asynchronous jobs (cleanup, rebuild, ...) run.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    job_duration: Duration,
    /// Control API address; port 0 picks one, printed as the first stdout line.
    #[arg(long, default_value = "127.0.0.1:0")]
    control_addr: SocketAddr,
    /// Management API port on every pod address.
    #[arg(long, default_value_t = 8080)]
    mgmt_port: u16,
    /// Real pods' timing (management API start-up, the pods' own readiness probes, gossip,
    /// RING_DELAY of 30 s, slower bootstraps); the delay flags above are ignored then.
    #[arg(long)]
    realistic: bool,
    /// Time from a pod getting its IP to its management API listening.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    mgmt_api_start_delay: Duration,
    /// Period of the simulated kubelet readiness probe.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    probe_period: Duration,
    /// Time until other nodes see a node's gossip state change.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    gossip_delay: Duration,
    /// RING_DELAY: the wait before a bootstrap streams and after a decommission announce.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    ring_delay: Duration,
    /// Logs as JSON lines.
    #[arg(long)]
    json_logs: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stderr: stdout carries the control address for whoever started us.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if args.json_logs {
        builder.json().init();
    } else {
        builder.init();
    }

    let clients = clients_from_kubeconfig(&args.kubeconfig, &args.contexts)
        .await
        .context("loading kubeconfig")?;
    let contexts: Vec<&str> = clients.iter().map(|(c, _)| c.as_str()).collect();
    tracing::info!(?contexts, "watching Cassandra pods");

    let opts = SimOptions {
        mgmt_port: args.mgmt_port,
        control_addr: Some(args.control_addr),
        config: if args.realistic {
            SimConfig::realistic()
        } else {
            SimConfig {
                bootstrap_delay: args.bootstrap_delay,
                decommission_delay: args.decommission_delay,
                job_duration: args.job_duration,
                mgmt_api_start_delay: args.mgmt_api_start_delay,
                probe_period: args.probe_period,
                gossip_delay: args.gossip_delay,
                ring_delay: args.ring_delay,
                ..SimConfig::default()
            }
        },
    };
    let handle = Simulator::start(opts, clients).await?;
    if let Some(addr) = handle.control_addr() {
        let mut out = std::io::stdout().lock();
        writeln!(out, "control-addr={addr}")?;
        out.flush()?;
    }

    shutdown_signal().await;
    tracing::info!("shutting down");
    handle.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
