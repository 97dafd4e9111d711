//! `k8ssandra-operator`: the operator host's command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use kube::config::{KubeConfigOptions, Kubeconfig};

use k8ssandra_host::ManagementDataPlane;
use k8ssandra_host::apply::Discovery;
use k8ssandra_host::clusters::ClusterRegistry;
use k8ssandra_host::controller::{ControllerConfig, Manager, Shared};
use k8ssandra_host::dataplane::ManagementApiConfig;
use k8ssandra_host::leader::{Elector, LeaseConfig};
use k8ssandra_host::observe::{self, Health, Metrics};
use k8ssandra_host::plugin::{PolicyRuntime, RuntimeConfig};

#[derive(Parser)]
#[command(
    name = "k8ssandra-operator",
    version,
    about = "Runs Apache Cassandra and DSE on Kubernetes, with policies in WebAssembly"
)]
struct Cli {
    /// Logs as JSON lines instead of human-readable text.
    #[arg(long, global = true, env = "K8SSANDRA_JSON_LOGS")]
    json_logs: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator.
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions and their admission policies as YAML (what
    /// `kubectl apply --server-side -f -` takes).
    Crds,
    /// Work with policy components.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Print what a policy's `describe` returns.
    Inspect {
        file: PathBuf,
        #[arg(long, value_enum, default_value = "yaml")]
        output: Output,
    },
    /// Run one reconcile offline on a snapshot file and print the plan.
    Test {
        file: PathBuf,
        /// Snapshot as JSON (see plugins/examples/echo/snapshot.json).
        #[arg(long)]
        snapshot: PathBuf,
        #[arg(long, value_enum, default_value = "yaml")]
        output: Output,
    },
    /// Compile a policy into an artifact for an operator run with the same settings (the
    /// operator runs this in a child process, so compiling never swells its own memory).
    Compile {
        input: PathBuf,
        output: PathBuf,
        #[arg(long, default_value_t = 128)]
        policy_memory_mib: usize,
        #[arg(long, default_value_t = RuntimeConfig::default().max_instances)]
        max_instances: u32,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Yaml,
    Json,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Kubeconfig file; in a pod the in-cluster configuration is used when unset.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Context of the kubeconfig to use as the local cluster.
    #[arg(long, env = "K8SSANDRA_CONTEXT")]
    context: Option<String>,
    /// Directory of policy components (*.wasm); watched for changes.
    #[arg(long, env = "K8SSANDRA_PLUGIN_DIR", default_value = "/plugins")]
    plugin_dir: PathBuf,
    /// Directory for precompiled policies; defaults to a directory under the system's cache.
    #[arg(long, env = "K8SSANDRA_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "K8SSANDRA_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Watch only this namespace (in every cluster); all namespaces when unset.
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Run only while holding a Lease, so several replicas can be deployed.
    #[arg(long, env = "K8SSANDRA_LEADER_ELECT")]
    leader_elect: bool,
    #[arg(long, env = "K8SSANDRA_LEASE_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    #[arg(long, default_value = "k8ssandra-operator-leader")]
    lease_name: String,
    /// How long the Lease holds after its last renewal; a standby takes over within this
    /// (plus one retry period) after the leader dies, and a leader that cannot renew stops
    /// after two thirds of it.
    #[arg(long, default_value_t = 15)]
    lease_duration_seconds: u64,
    /// This replica's name in the Lease; the pod name, else the host name and process id.
    #[arg(long, env = "POD_NAME")]
    lease_identity: Option<String>,
    /// Control-plane mode also reaches other clusters (ClientConfig, ReplicatedSecret) and
    /// reconciles K8ssandraClusters and K8ssandraTasks; data-plane mode manages its own
    /// cluster's kinds only (CassandraDatacenter, CassandraTask, Stargate, …): the
    /// policies of those two kinds get no controller there, even when loaded.
    #[arg(long, env = "K8SSANDRA_CONTROL_PLANE", default_value_t = true, action = clap::ArgAction::Set)]
    control_plane: bool,
    /// Per-call deadline of a policy, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    policy_deadline_ms: u64,
    /// Per-call memory cap of a policy, in MiB.
    #[arg(long, default_value_t = 128)]
    policy_memory_mib: usize,
    /// Reconcile every parent at least this often, in seconds.
    #[arg(long, default_value_t = 300)]
    resync_seconds: u64,
    /// Port of the management API in Cassandra pods.
    #[arg(long, env = "K8SSANDRA_MGMT_API_PORT", default_value_t = 8080)]
    mgmt_api_port: u16,
    /// Parents reconciled in parallel, per policy.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    #[command(flatten)]
    webhook: k8ssandra_host::admission::WebhookArgs,
    /// Accept ClientConfig kubeconfigs with `exec` credential plugins (cloud logins). Risk:
    /// whoever can write the kubeconfig Secret makes the operator run any program, with its
    /// service account, inside its container.
    #[arg(long, env = "K8SSANDRA_ALLOW_KUBECONFIG_EXEC")]
    allow_kubeconfig_exec: bool,
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,kube=warn,wasmtime=warn,cranelift=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn client(
    kubeconfig: Option<&PathBuf>,
    context: Option<&String>,
) -> Result<(kube::Client, String)> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            let opts = KubeConfigOptions {
                context: context.cloned(),
                ..Default::default()
            };
            kube::Config::from_custom_kubeconfig(kc, &opts)
                .await
                .context("kubeconfig")?
        }
        None => kube::Config::infer()
            .await
            .context("no kubeconfig and not in a cluster")?,
    };
    let url = config.cluster_url.to_string();
    let client = kube::Client::try_from(config).context("building the Kubernetes client")?;
    Ok((client, url))
}

fn print<T: serde::Serialize>(value: &T, output: Output) -> Result<()> {
    match output {
        Output::Yaml => print!("{}", serde_yaml::to_string(value)?),
        Output::Json => println!("{}", serde_json::to_string_pretty(value)?),
    }
    Ok(())
}

fn main() -> Result<()> {
    limit_malloc_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(run_cli())
}

/// glibc gives threads that contend for the allocator arenas of their own (up to 8 per
/// core), and the multi-megabyte snapshots each reconcile builds and drops leave freed
/// memory behind in every one of them. Two arenas: 79 → 67 MiB peak RSS per operator at
/// 100 nodes (docs/benchmarks.md). Set before any thread starts; `MALLOC_ARENA_MAX` in the
/// environment still wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: no other thread exists yet, and mallopt only changes allocator tuning.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

async fn run_cli() -> Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.json_logs);
    match cli.command {
        Command::Crds => {
            // The admission policies carry the rules a CRD's own CEL can't express (they
            // read annotations); they belong with the CRDs.
            print!("{}", k8ssandra_api::all_crds_yaml());
            println!("---");
            print!("{}", k8ssandra_api::policies::admission_policies_yaml());
            Ok(())
        }
        Command::Plugin(PluginCommand::Inspect { file, output }) => {
            let info = k8ssandra_host::plugin::inspect(&file).await?;
            print(&info, output)
        }
        Command::Plugin(PluginCommand::Test {
            file,
            snapshot,
            output,
        }) => {
            let text = std::fs::read_to_string(&snapshot)
                .with_context(|| format!("reading {}", snapshot.display()))?;
            let outcome = k8ssandra_host::plugin::test_file(&file, &text).await?;
            match outcome {
                Ok(plan) => print(&k8ssandra_host::plugin::plan_to_json(&plan), output),
                Err(e) => {
                    print(&e, output)?;
                    anyhow::bail!("the policy refused to plan: {}", e.message)
                }
            }
        }
        Command::Plugin(PluginCommand::Compile {
            input,
            output,
            policy_memory_mib,
            max_instances,
        }) => {
            let cfg = RuntimeConfig {
                memory_limit: policy_memory_mib * 1024 * 1024,
                max_instances,
                ..Default::default()
            };
            Ok(k8ssandra_host::plugin::precompile(&cfg, &input, &output)?)
        }
        Command::Run(args) => run(*args).await,
    }
}

async fn run(args: RunArgs) -> Result<()> {
    let metrics = Metrics::new();
    let health = Health::default();
    let (addr, _server) = observe::serve(args.metrics_addr, metrics.clone(), health.clone())
        .await
        .with_context(|| format!("binding {}", args.metrics_addr))?;
    tracing::info!(%addr, "serving metrics and health");

    let (local, server_url) = client(args.kubeconfig.as_ref(), args.context.as_ref()).await?;
    let local_id = k8ssandra_host::clusters::cluster_id(&local, &server_url).await;
    tracing::info!(cluster_id = %local_id, "local cluster identity");

    let defaults = RuntimeConfig::default();
    // Without our own executable's path (an unusual /proc), compiling stays in process.
    let compile_command = std::env::current_exe().ok().map(|exe| {
        vec![
            exe.into_os_string(),
            "plugin".into(),
            "compile".into(),
            format!("--policy-memory-mib={}", args.policy_memory_mib).into(),
            format!("--max-instances={}", defaults.max_instances).into(),
        ]
    });
    let runtime = PolicyRuntime::new(RuntimeConfig {
        deadline: Duration::from_millis(args.policy_deadline_ms),
        memory_limit: args.policy_memory_mib * 1024 * 1024,
        cache_dir: args.cache_dir.clone(),
        compile_command,
        ..defaults
    })?;
    for report in runtime.load_dir(&args.plugin_dir).await {
        match &report.result {
            Ok(p) => {
                tracing::info!(file = %report.path.display(), policy = %p.info.name, version = %p.info.version, "policy loaded")
            }
            Err(error) => tracing::error!(file = %report.path.display(), %error, "policy refused"),
        }
    }
    let _watcher = runtime.spawn_watcher(args.plugin_dir.clone());
    // Every replica serves the admission webhook (validate is pure), leader or not, so the
    // policies are loaded before the election.
    let _webhook = match args.webhook.options()? {
        Some(options) => {
            let webhook =
                k8ssandra_host::admission::start(options, local.clone(), runtime.clone()).await?;
            tracing::info!(addr = %webhook.addr, "serving the admission webhook");
            Some(webhook)
        }
        None => None,
    };

    let elector = if args.leader_elect {
        let identity = args.lease_identity.clone().unwrap_or_else(|| {
            // Two processes on one host must never share an identity.
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "k8ssandra-operator".into());
            format!("{host}-{}", std::process::id())
        });
        let elector = Arc::new(Elector::new(
            local.clone(),
            LeaseConfig::with_duration(
                &args.lease_namespace,
                &args.lease_name,
                &identity,
                Duration::from_secs(args.lease_duration_seconds),
            ),
        ));
        elector.acquire().await?;
        // Renewal starts at once (loading policies takes time), and a lost lease ends the
        // process right away: returning through main would leave spawned tasks writing
        // while the runtime shuts down.
        let keeper = elector.clone();
        let keeping = tokio::spawn(async move {
            let lost = keeper.keep().await;
            tracing::error!(error = %lost, "leadership lost; exiting so another replica takes over");
            std::process::exit(1);
        });
        Some((elector, keeping))
    } else {
        None
    };

    let clusters = ClusterRegistry::new(local.clone(), &local_id);
    // Only the control plane reaches other clusters; a data-plane operator manages the
    // datacenters of its own cluster.
    let _control_plane = args.control_plane.then(|| {
        (
            tokio::spawn(k8ssandra_host::clientconfig::run(
                local.clone(),
                args.namespace.clone(),
                clusters.clone(),
                k8ssandra_host::clientconfig::ClientConfigOptions {
                    allow_exec: args.allow_kubeconfig_exec,
                },
            )),
            tokio::spawn(k8ssandra_host::replication::run(
                local.clone(),
                args.namespace.clone(),
                clusters.clone(),
                metrics.clone(),
            )),
        )
    });
    let (completions_tx, completions_rx) = tokio::sync::mpsc::unbounded_channel();
    let dataplane = ManagementDataPlane::new(
        ManagementApiConfig {
            port: args.mgmt_api_port,
            ..Default::default()
        },
        completions_tx,
        clusters.clone(),
    )?;
    dataplane.export_metrics(&metrics);
    let shared = Shared {
        runtime,
        clusters,
        metrics,
        discovery: Discovery::default(),
        dataplane: Arc::new(dataplane),
        config: ControllerConfig {
            namespace: args.namespace.clone(),
            concurrency: args.concurrency,
            resync: Duration::from_secs(args.resync_seconds),
            control_plane: args.control_plane,
        },
    };
    let manager = Manager::new(shared, health);

    tokio::select! {
        _ = manager.run(completions_rx) => {}
        _ = shutdown_signal() => tracing::info!("shutting down"),
    }
    // The manager is dropped by now (its controllers' tasks aborted), so this process
    // writes no more: hand the lease over at once rather than after it expires.
    if let Some((elector, keeping)) = elector {
        keeping.abort();
        let _ = keeping.await;
        if let Err(error) = elector.release().await {
            tracing::warn!(%error, "lease not released");
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
