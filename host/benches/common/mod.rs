//! What the multi-cluster benches share: three testenv clusters (a control plane running the
//! `k8ssandra-cluster` policy with a ClientConfig per data plane, two data planes running
//! `cassandra-datacenter`), the Cassandra simulator on both data planes, the real operator
//! binaries; the K8ssandraCluster manifest; reading a datacenter's state, an operator's
//! `/metrics` and its process figures from `/proc`.
//!
//! A bench includes it next to the e2e support module:
//! `#[path = "../tests/integration/support/mod.rs"] mod support; mod common;`; the
//! integration tests' `scale_e2e` includes it by path (`support` is its crate's module).
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use cassandra_sim::{SimHandle, SimOptions, Simulator};
use kube::api::{DynamicObject, GroupVersionKind};
use kube::discovery::pinned_kind;
use kube::{Api, Client};
use serde_json::json;

use crate::support::{
    Operator, add_client_config, create_namespace, install_crds, wait_crd, wait_for,
};
use k8ssandra_testenv::{TestEnv, TestEnvOptions};

pub const OP_NS: &str = "k8ssandra-operator";

/// How to start the three clusters and their operators.
pub struct Setup {
    /// Fake nodes per testenv cluster (spread over zone-a, zone-b, zone-c).
    pub nodes_per_cluster: usize,
    /// Pod capacity of each fake node.
    pub node_max_pods: u32,
    /// CPU capacity of each fake node: every Cassandra pod requests a whole CPU for its
    /// config-builder init container, so a node of 32 CPUs takes 32 pods at most.
    pub node_cpu: String,
    /// Policies of the data-plane operators (the control plane runs `k8ssandra-cluster`).
    pub data_plane_policies: Vec<&'static str>,
    /// Extra arguments of every operator.
    pub operator_args: Vec<String>,
    /// Simulator configuration (a `ConfigUpdate` as JSON) applied before anything starts.
    pub sim_config: serde_json::Value,
}

/// Three clusters, the simulator and three operators, torn down on drop.
pub struct ThreeClusters {
    /// Operators in cluster order: control plane, data plane A (`cluster-1`), B (`cluster-2`).
    pub operators: Vec<Operator>,
    pub sim: SimHandle,
    pub cp: Client,
    pub a: Client,
    pub b: Client,
    pub env: TestEnv,
    _tmp: tempfile::TempDir,
}

impl ThreeClusters {
    pub async fn start(setup: Setup) -> Result<ThreeClusters> {
        let env = TestEnv::start(TestEnvOptions {
            clusters: 3,
            nodes_per_cluster: setup.nodes_per_cluster,
            node_max_pods: setup.node_max_pods,
            node_cpu: setup.node_cpu,
            ..Default::default()
        })
        .await?;
        let (cp, a, b) = (
            env.cluster(0).client(),
            env.cluster(1).client(),
            env.cluster(2).client(),
        );
        for c in [&cp, &a, &b] {
            install_crds(c, &k8ssandra_api::all_crds_yaml()).await?;
            create_namespace(c, OP_NS).await?;
        }
        wait_crd(&cp, "k8ssandra.io", "v1alpha1", "K8ssandraCluster").await?;
        wait_crd(&cp, "config.k8ssandra.io", "v1beta1", "ClientConfig").await?;
        for i in [1usize, 2] {
            let ctx = env.cluster(i).context_name().to_string();
            add_client_config(
                &cp,
                OP_NS,
                &ctx,
                &format!("{ctx}-kubeconfig"),
                env.cluster(i).kubeconfig_yaml(),
            )
            .await?;
        }
        let mut sim_opts = SimOptions::default();
        sim_opts.config.bootstrap_delay = Duration::ZERO;
        let sim = Simulator::start(
            sim_opts,
            vec![
                (env.cluster(1).context_name().to_string(), a.clone()),
                (env.cluster(2).context_name().to_string(), b.clone()),
            ],
        )
        .await?;
        sim.update_config(&serde_json::from_value(setup.sim_config)?);

        let tmp = tempfile::tempdir()?;
        let args: Vec<&str> = setup.operator_args.iter().map(String::as_str).collect();
        let mut operators = Vec::new();
        for i in 0..3usize {
            let (policies, mut extra) = if i == 0 {
                (vec!["k8ssandra-cluster"], vec![])
            } else {
                (
                    setup.data_plane_policies.clone(),
                    vec!["--control-plane=false"],
                )
            };
            extra.extend(args.iter().copied());
            let op = Operator::start_for(
                &tmp.path().join(format!("op{i}")),
                env.cluster(i),
                &policies,
                &extra,
            )?;
            op.wait_ready(Duration::from_secs(300)).await?;
            operators.push(op);
        }
        // Both ClientConfigs turned into clients before any clock starts.
        wait_for(
            "both data planes registered",
            Duration::from_secs(60),
            || async {
                let configured = operators[0]
                    .log_text()
                    .matches("cluster client configured")
                    .count();
                (configured >= 2).then_some(())
            },
        )
        .await?;
        Ok(ThreeClusters {
            operators,
            sim,
            cp,
            a,
            b,
            env,
            _tmp: tmp,
        })
    }

    /// The data-plane client of a context name (`cluster-1` → A, anything else → B).
    pub fn data_plane(&self, ctx: &str) -> &Client {
        if ctx == self.env.cluster(1).context_name() {
            &self.a
        } else {
            &self.b
        }
    }

    /// The namespace in all three clusters.
    pub async fn create_namespace(&self, ns: &str) -> Result<()> {
        for c in [&self.cp, &self.a, &self.b] {
            create_namespace(c, ns).await?;
        }
        Ok(())
    }
}

/// One datacenter of the K8ssandraCluster manifest.
#[derive(Clone, Debug)]
pub struct DcSpec {
    pub name: String,
    /// Context of its data-plane cluster (`cluster-1` or `cluster-2`).
    pub ctx: String,
    pub size: usize,
    /// `config.cassandraYaml` of the datacenter, as a flow mapping (`{concurrent_reads: 64}`).
    pub cassandra_yaml: Option<String>,
}

/// A K8ssandraCluster of `dcs`, three racks each (one per zone). With `dense`, several
/// Cassandra pods may share a fake node (soft anti-affinity, which needs resources).
pub fn kc_manifest(ns: &str, name: &str, dcs: &[DcSpec], dense: bool) -> String {
    let mut out = format!(
        r#"apiVersion: k8ssandra.io/v1alpha1
kind: K8ssandraCluster
metadata:
  name: {name}
  namespace: {ns}
spec:
  cassandra:
    serverVersion: "4.1.5"
    storageConfig:
      cassandraDataVolumeClaimSpec:
        storageClassName: standard
        accessModes: [ReadWriteOnce]
        resources: {{requests: {{storage: 1Gi}}}}
"#
    );
    if dense {
        out.push_str(
            "    softPodAntiAffinity: true\n    resources: {requests: {cpu: 10m, memory: 64Mi}, limits: {cpu: 10m, memory: 64Mi}}\n",
        );
    }
    out.push_str("    datacenters:\n");
    for dc in dcs {
        out.push_str(&format!(
            "      - metadata: {{name: {}}}\n        k8sContext: {}\n        size: {}\n        racks: [{{name: r1, nodeAffinityLabels: {{topology.kubernetes.io/zone: zone-a}}}}, {{name: r2, nodeAffinityLabels: {{topology.kubernetes.io/zone: zone-b}}}}, {{name: r3, nodeAffinityLabels: {{topology.kubernetes.io/zone: zone-c}}}}]\n",
            dc.name, dc.ctx, dc.size
        ));
        if let Some(yaml) = &dc.cassandra_yaml {
            out.push_str(&format!("        config: {{cassandraYaml: {yaml}}}\n"));
        }
    }
    out
}

pub fn dc_gvk() -> GroupVersionKind {
    GroupVersionKind::gvk("cassandra.datastax.com", "v1beta1", "CassandraDatacenter")
}

/// (Ready, join-state) of one CassandraDatacenter.
pub async fn dc_state(client: &Client, ns: &str, name: &str) -> (bool, Option<String>) {
    let Ok((ar, _)) = pinned_kind(client, &dc_gvk()).await else {
        return (false, None);
    };
    let Ok(Some(dc)) = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &ar)
        .get_opt(name)
        .await
    else {
        return (false, None);
    };
    let ready = crate::support::datacenter_ready(&dc.data);
    let join = dc
        .metadata
        .annotations
        .and_then(|a| a.get("k8ssandra.io/join-state").cloned());
    (ready, join)
}

pub async fn dc_exists(client: &Client, ns: &str, name: &str) -> bool {
    let Ok((ar, _)) = pinned_kind(client, &dc_gvk()).await else {
        return false;
    };
    matches!(
        Api::<DynamicObject>::namespaced_with(client.clone(), ns, &ar)
            .get_opt(name)
            .await,
        Ok(Some(_))
    )
}

pub fn median(v: &mut [f64]) -> f64 {
    percentile(v, 0.5)
}

/// Nearest-rank percentile (`q` in 0..=1); NaN when empty.
pub fn percentile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// Milliseconds since the epoch of an RFC 3339 time (the simulator's history).
pub fn ms(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// The operator's delay per node: for the simulator's accepted starts of Cassandra cluster
/// `cluster` at or after `since_ms` (filtered by `pod`), sorted, each start minus the time the
/// previous started node became NORMAL. Negative gaps (starts that overlap, as in a restart of
/// nodes that already hold data) are kept: they show no waiting.
pub fn start_gaps_ms(
    sim: &SimHandle,
    cluster: &str,
    since_ms: i64,
    pod: impl Fn(&str) -> bool,
) -> Vec<f64> {
    let mut starts: Vec<(i64, Option<i64>)> = sim
        .history()
        .into_iter()
        .filter(|h| h.action == "start" && h.cluster == cluster && h.outcome == "accepted")
        .filter(|h| h.pod.as_ref().is_some_and(|p| pod(&p.name)))
        .filter_map(|h| Some((ms(&h.time)?, h.end_time.as_deref().and_then(ms))))
        .filter(|(t, _)| *t >= since_ms)
        .collect();
    starts.sort();
    starts
        .windows(2)
        .filter_map(|w| Some((w[1].0 - w[0].1?) as f64))
        .collect()
}

/// Accepted starts of `cluster`'s pods matching `pod` at or after `since_ms`.
pub fn starts_since(
    sim: &SimHandle,
    cluster: &str,
    since_ms: i64,
    pod: impl Fn(&str) -> bool,
) -> usize {
    sim.history()
        .into_iter()
        .filter(|h| h.action == "start" && h.cluster == cluster && h.outcome == "accepted")
        .filter(|h| h.pod.as_ref().is_some_and(|p| pod(&p.name)))
        .filter(|h| ms(&h.time).is_some_and(|t| t >= since_ms))
        .count()
}

/// CPU seconds (user + system) a process has used so far.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; count fields after its closing bracket.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("unexpected /proc/<pid>/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15, i.e. the 12th and 13th after the name.
    let ticks: f64 = fields
        .get(11..13)
        .context("short /proc/<pid>/stat")?
        .iter()
        .map(|f| f.parse::<f64>().unwrap_or(0.0))
        .sum();
    // /proc reports in USER_HZ, which is 100 on every Linux architecture we run on.
    Ok(ticks / 100.0)
}

/// A `/proc/<pid>/status` field in KiB (`VmHWM`, `VmRSS`).
pub fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("{field} missing from /proc/{pid}/status"))
}

/// The sum of every sample of metric `name` whose labels contain `label` (e.g.
/// `policy="k8ssandra-cluster"`; empty matches all).
pub fn metric_sum(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let labels = match key.split_once('{') {
                Some((n, rest)) if n == name => rest,
                None if key == name => "",
                _ => return None,
            };
            labels.contains(label).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// Policies that have a sample of histogram `name`.
pub fn histogram_policies(text: &str, name: &str) -> Vec<String> {
    let prefix = format!("{name}_count{{");
    let mut out: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|l| {
            let start = l.find("policy=\"")? + "policy=\"".len();
            let end = l[start..].find('"')?;
            Some(l[start..start + end].to_string())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Quantile `q` of histogram `name` for `policy`, interpolated linearly inside the bucket
/// (so within a factor of 2 with the host's exponential buckets); `None` without samples.
/// `before` subtracts an earlier scrape, giving the quantile over the span between the two.
pub fn histogram_quantile(
    text: &str,
    before: Option<&str>,
    name: &str,
    policy: &str,
    q: f64,
) -> Option<f64> {
    let buckets = |text: &str| -> Vec<(f64, f64)> {
        let prefix = format!("{name}_bucket{{");
        let want = format!("policy=\"{policy}\"");
        let mut b: Vec<(f64, f64)> = text
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .filter(|l| l.contains(&want))
            .filter_map(|l| {
                let start = l.find("le=\"")? + 4;
                let end = l[start..].find('"')?;
                let le = match &l[start..start + end] {
                    "+Inf" => f64::INFINITY,
                    v => v.parse().ok()?,
                };
                let count: f64 = l.rsplit_once(' ')?.1.parse().ok()?;
                Some((le, count))
            })
            .collect();
        b.sort_by(|x, y| x.0.total_cmp(&y.0));
        b
    };
    let mut now = buckets(text);
    if let Some(before) = before {
        let old = buckets(before);
        for (le, c) in &mut now {
            if let Some((_, o)) = old.iter().find(|(l, _)| l == le) {
                *c -= o;
            }
        }
    }
    let total = now.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let target = q * total;
    let mut prev = (0.0, 0.0);
    for (le, c) in now {
        if c >= target {
            if le.is_infinite() {
                return Some(prev.0);
            }
            let span = c - prev.1;
            let frac = if span > 0.0 {
                (target - prev.1) / span
            } else {
                1.0
            };
            return Some(prev.0 + (le - prev.0) * frac);
        }
        prev = (le, c);
    }
    None
}

/// The workspace's target dir, for files a bench leaves behind (sim history and so on).
pub fn target_dir() -> &'static Path {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
}

/// A `wait_for` timeout that grows with the node count: a base plus `per_node` each.
pub fn timeout_for(nodes: usize, base_s: u64, per_node_ms: u64) -> Duration {
    Duration::from_secs(base_s) + Duration::from_millis(per_node_ms * nodes as u64)
}

/// Keeps the JSON literal helper in one place for the benches' simulator configs.
pub fn instant_sim(bootstrap_ms: u64) -> serde_json::Value {
    json!({"bootstrap_delay_ms": bootstrap_ms, "mgmt_api_start_delay_ms": 0,
           "probe_period_ms": 100, "probe_timing": "fixed", "gossip_delay_ms": 0,
           "ring_delay_ms": 0, "job_duration_ms": 0})
}
