//! A K8ssandraCluster across three Kubernetes clusters, end to end: a control plane
//! (cluster-0: the K8ssandraCluster, its ClientConfigs and the k8ssandra-cluster policy) and
//! two data planes, A (cluster-1) and B (cluster-2), each with its own operator running the
//! cassandra-datacenter policy; the Cassandra simulator plays every node.
//!
//! One environment, one sequential scenario (a fresh environment per step would cost more
//! than the steps themselves on a small machine); every wait names its step and, when it
//! fails, prints the K8ssandraCluster's status, the operators' last warnings and the
//! simulator's violations.
//!
//! 1. Only A's ClientConfig exists: dc1 (A) deploys, dc2 (B) waits with a condition naming
//!    the missing context. B's ClientConfig is added → dc2 deploys, the control-plane
//!    operator keeps its PID. One ring of 6 nodes in 2 datacenters, system keyspaces
//!    {dc1: 3, dc2: 3}, the superuser Secret in both data planes, status.datacenters.
//! 2. dc3 (A) is added → every dc3 node is rebuilt from an existing datacenter, Ready.
//! 3. dc3 is removed while a user keyspace replicates to it → refused, with a condition
//!    naming the keyspace; the keyspace is altered → dc3 decommissioned, its
//!    CassandraDatacenter deleted; no dc1/dc2 pod restarted.
//! 4. B's API server stops → dc1 still reconciles (a label change reaches it), a condition
//!    says dc2's cluster is unreachable, nothing is deleted; B back → the condition clears.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use anyhow::{Context, Result};
use cassandra_sim::{CassandraState, KeyspaceRequest, SimHandle, SimOptions, Simulator};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{DynamicObject, GroupVersionKind, ListParams};
use kube::discovery::pinned_kind;
use kube::{Api, Client};
use serde_json::{Value, json};

use k8ssandra_testenv::{TestEnv, TestEnvOptions};
use support::{
    Operator, add_client_config, apply_yaml, create_namespace, install_crds, operator_crds,
    wait_crd,
};

const NS: &str = "k8ssandra-operator";
const CLUSTER: &str = "demo";
const CTX_A: &str = "cluster-1";
const CTX_B: &str = "cluster-2";

/// The K8ssandraCluster: 3 nodes per datacenter, one rack per zone; `dc1_labels` end up on
/// dc1's CassandraDatacenter only (a change that restarts nothing).
fn manifest(dcs: &[(&str, &str)], dc1_labels: &[(&str, &str)]) -> String {
    let mut out = format!(
        r#"apiVersion: k8ssandra.io/v1alpha1
kind: K8ssandraCluster
metadata:
  name: {CLUSTER}
  namespace: {NS}
spec:
  cassandra:
    serverVersion: "4.1.5"
    storageConfig:
      cassandraDataVolumeClaimSpec:
        storageClassName: standard
        accessModes: [ReadWriteOnce]
        resources: {{requests: {{storage: 5Gi}}}}
    datacenters:
"#
    );
    for (name, ctx) in dcs {
        out.push_str(&format!("      - metadata:\n          name: {name}\n"));
        if *name == "dc1" && !dc1_labels.is_empty() {
            out.push_str("          labels:\n");
            for (k, v) in dc1_labels {
                out.push_str(&format!("            {k}: \"{v}\"\n"));
            }
        }
        out.push_str(&format!(
            "        k8sContext: {ctx}\n        size: 3\n        racks:\n"
        ));
        for (rack, zone) in [("r1", "zone-a"), ("r2", "zone-b"), ("r3", "zone-c")] {
            out.push_str(&format!(
                "          - name: {rack}\n            nodeAffinityLabels: {{topology.kubernetes.io/zone: {zone}}}\n"
            ));
        }
    }
    out
}

fn gvk_dc() -> GroupVersionKind {
    GroupVersionKind::gvk("cassandra.datastax.com", "v1beta1", "CassandraDatacenter")
}

async fn get_dc(client: &Client, dc: &str) -> Option<DynamicObject> {
    let (ar, _) = pinned_kind(client, &gvk_dc()).await.ok()?;
    Api::<DynamicObject>::namespaced_with(client.clone(), NS, &ar)
        .get_opt(dc)
        .await
        .ok()
        .flatten()
}

async fn dc_ready(client: &Client, dc: &str) -> bool {
    get_dc(client, dc)
        .await
        .is_some_and(|obj| support::datacenter_ready(&obj.data))
}

/// The K8ssandraCluster's status, or Null.
async fn kc_status(cp: &Client) -> Value {
    support::kc_status(cp, NS, CLUSTER).await
}

/// (status, reason, message) of a K8ssandraCluster condition.
fn condition(status: &Value, t: &str) -> Option<(String, String, String)> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == t)
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            (s("status"), s("reason"), s("message"))
        })
}

/// Pod name → uid of one datacenter's pods.
async fn pod_uids(client: &Client, dc: &str) -> Result<BTreeMap<String, String>> {
    let pods = Api::<Pod>::namespaced(client.clone(), NS)
        .list(&ListParams::default().labels(&format!("cassandra.datastax.com/datacenter={dc}")))
        .await?;
    Ok(pods
        .items
        .into_iter()
        .map(|p| {
            (
                p.metadata.name.unwrap_or_default(),
                p.metadata.uid.unwrap_or_default(),
            )
        })
        .collect())
}

/// How many times the simulator saw each of these pods' Cassandra start.
fn starts(sim: &SimHandle, pods: &BTreeSet<String>) -> BTreeMap<String, usize> {
    let mut out: BTreeMap<String, usize> = pods.iter().map(|p| (p.clone(), 0)).collect();
    for h in sim.history() {
        if h.action == "start"
            && let Some(p) = h.pod.as_ref().filter(|p| pods.contains(&p.name))
        {
            *out.entry(p.name.clone()).or_default() += 1;
        }
    }
    out
}

/// NORMAL nodes per datacenter of the simulated ring.
fn normal_per_dc(sim: &SimHandle) -> BTreeMap<String, usize> {
    let mut per_dc = BTreeMap::new();
    if let Some(ring) = sim.state().cluster(CLUSTER) {
        for n in ring
            .nodes
            .iter()
            .filter(|n| n.cassandra == CassandraState::Normal)
        {
            *per_dc.entry(n.datacenter.clone()).or_default() += 1;
        }
    }
    per_dc
}

/// Whether every system keyspace replicates exactly as `want` says.
fn system_replication_is(sim: &SimHandle, want: &[(&str, &str)]) -> bool {
    let state = sim.state();
    let Some(ring) = state.cluster(CLUSTER) else {
        return false;
    };
    ["system_auth", "system_distributed", "system_traces"]
        .iter()
        .all(|ks| {
            ring.keyspaces.iter().any(|k| {
                let dcs: BTreeMap<&str, &str> = k
                    .replication
                    .iter()
                    .filter(|(key, _)| key.as_str() != "class")
                    .map(|(key, v)| (key.as_str(), v.as_str()))
                    .collect();
                k.name == *ks
                    && k.replication
                        .get("class")
                        .is_some_and(|c| c.contains("NetworkTopologyStrategy"))
                    && dcs == want.iter().copied().collect()
            })
        })
}

/// One step that is not a wait: bounded, and reported like the waits.
async fn step<T>(what: &str, fut: impl Future<Output = Result<T>>) -> Result<T> {
    let started = std::time::Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .map_err(|_| anyhow::anyhow!("step {what:?} did not finish in 60 s"))??;
    eprintln!("[{:>6.1?}] {what}", started.elapsed());
    Ok(out)
}

struct Scenario {
    env: TestEnv,
    cp: Client,
    a: Client,
    b: Client,
    sim: SimHandle,
    operators: Vec<Operator>,
    _tmp: tempfile::TempDir,
}

impl Scenario {
    async fn start() -> Result<Scenario> {
        let env = TestEnv::start(TestEnvOptions {
            clusters: 3,
            // A holds dc1 and dc3 (one Cassandra pod per worker), two per zone.
            nodes_per_cluster: 6,
            ..Default::default()
        })
        .await?;
        let (cp, a, b) = (
            env.cluster(0).client(),
            env.cluster(1).client(),
            env.cluster(2).client(),
        );
        let crds = operator_crds()?;
        for c in [&cp, &a, &b] {
            install_crds(c, &crds).await?;
            create_namespace(c, NS).await?;
        }
        wait_crd(&cp, "k8ssandra.io", "v1alpha1", "K8ssandraCluster").await?;
        wait_crd(&cp, "config.k8ssandra.io", "v1beta1", "ClientConfig").await?;

        let mut opts = SimOptions::default();
        opts.config.bootstrap_delay = Duration::from_millis(300);
        opts.config.decommission_delay = Duration::from_millis(300);
        let sim = Simulator::start(
            opts,
            vec![
                (CTX_A.to_string(), a.clone()),
                (CTX_B.to_string(), b.clone()),
            ],
        )
        .await?;

        // The control plane runs the cluster-wide policy; each data plane runs its
        // datacenters' policy, as in a real multi-cluster install.
        let mut tmp = tempfile::tempdir()?;
        // Operator logs outlive a failed run when asked, like the clusters' own.
        if std::env::var_os("TESTENV_KEEP").is_some() {
            tmp.disable_cleanup(true);
        }
        let mut operators = Vec::new();
        for (i, policy, extra) in [
            (0usize, "k8ssandra-cluster", vec![]),
            (1, "cassandra-datacenter", vec!["--control-plane=false"]),
            (2, "cassandra-datacenter", vec!["--control-plane=false"]),
        ] {
            let mut args = vec!["--resync-seconds", "5"];
            args.extend(extra);
            let op = Operator::start_for(
                &tmp.path().join(format!("op{i}")),
                env.cluster(i),
                &[policy],
                &args,
            )?;
            op.wait_ready(Duration::from_secs(120)).await?;
            operators.push(op);
        }
        Ok(Scenario {
            env,
            cp,
            a,
            b,
            sim,
            operators,
            _tmp: tmp,
        })
    }

    /// Registers data plane `i` with the control plane: its kubeconfig Secret and ClientConfig.
    async fn add_client_config(&self, i: usize) -> Result<()> {
        let ctx = self.env.cluster(i).context_name().to_string();
        add_client_config(
            &self.cp,
            NS,
            &ctx,
            &format!("{ctx}-kubeconfig"),
            self.env.cluster(i).kubeconfig_yaml(),
        )
        .await
    }

    /// One line per CassandraDatacenter of a cluster: progress, true conditions, join state.
    async fn dc_summary(client: &Client) -> String {
        let Ok((ar, _)) = pinned_kind(client, &gvk_dc()).await else {
            return "(no CassandraDatacenter kind)".into();
        };
        let Ok(list) = Api::<DynamicObject>::namespaced_with(client.clone(), NS, &ar)
            .list(&ListParams::default())
            .await
        else {
            return "(cannot list)".into();
        };
        list.items
            .iter()
            .map(|d| {
                let conds: Vec<&str> = d
                    .data
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|c| c["status"] == "True")
                    .filter_map(|c| c["type"].as_str())
                    .collect();
                format!(
                    "{} progress={} true={conds:?} join={:?} deleting={}",
                    d.metadata.name.as_deref().unwrap_or_default(),
                    d.data
                        .pointer("/status/cassandraOperatorProgress")
                        .unwrap_or(&Value::Null),
                    d.metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get("k8ssandra.io/join-state")),
                    d.metadata.deletion_timestamp.is_some()
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// What to read when a step fails.
    async fn diagnostics(&self) -> String {
        let logs = support::operator_warnings(
            &self.operators,
            &[
                "control plane operator",
                "data plane A operator",
                "data plane B operator",
            ],
            10,
        );
        let mut status = kc_status(&self.cp).await;
        // The datacenters' own statuses are summarised below; the rest is read in full.
        if let Some(dcs) = status.get_mut("datacenters").and_then(Value::as_object_mut) {
            for entry in dcs.values_mut() {
                if let Some(c) = entry.get_mut("cassandra") {
                    *c = json!("…");
                }
            }
        }
        format!(
            "K8ssandraCluster status: {status}\nCassandraDatacenters in A: {}\nCassandraDatacenters in B: {}\nring (NORMAL per dc): {:?}\nsimulator violations: {:?}\n{}",
            Self::dc_summary(&self.a).await,
            Self::dc_summary(&self.b).await,
            normal_per_dc(&self.sim),
            self.sim.violations(),
            logs
        )
    }

    async fn wait<T, F, Fut>(&self, what: &str, timeout: Duration, check: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        support::step(what, timeout, check, || self.diagnostics()).await
    }

    fn assert_no_violations(&self) {
        let v = self.sim.violations();
        assert!(v.is_empty(), "simulator violations: {v:?}");
    }

    /// Lines of the control-plane operator's log that report a prune.
    fn prunes(&self) -> usize {
        self.operators[0]
            .log_text()
            .lines()
            .filter(|l| l.contains("pruning"))
            .count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn k8ssandracluster_across_a_control_plane_and_two_data_planes() -> Result<()> {
    let mut sc = Scenario::start().await?;
    let (cp, a, b) = (sc.cp.clone(), sc.a.clone(), sc.b.clone());
    let cp_pid = sc.operators[0].pid();

    // ── 1. dc2's context is unknown until its ClientConfig is added at run time ──────────
    sc.add_client_config(1).await?;
    apply_yaml(&cp, &manifest(&[("dc1", CTX_A), ("dc2", CTX_B)], &[]), NS).await?;
    sc.wait(
        "dc1 Ready in A while dc2 waits for its context",
        Duration::from_secs(300),
        || async {
            let st = kc_status(&cp).await;
            let (status, reason, message) = condition(&st, "Valid")?;
            (dc_ready(&a, "dc1").await
                && status == "False"
                && reason == "UnknownContext"
                && message.contains(&format!("{CTX_B:?}")))
            .then_some(())
        },
    )
    .await?;
    assert!(
        get_dc(&b, "dc2").await.is_none(),
        "dc2 created before its context was known"
    );

    sc.add_client_config(2).await?;
    sc.wait(
        "dc1 (A) and dc2 (B) Ready once B's ClientConfig exists",
        Duration::from_secs(300),
        || async { (dc_ready(&a, "dc1").await && dc_ready(&b, "dc2").await).then_some(()) },
    )
    .await?;
    assert_eq!(sc.operators[0].pid(), cp_pid);
    assert!(
        sc.operators[0].is_running(),
        "the control-plane operator exited"
    );
    sc.wait(
        "the Valid condition back to True",
        Duration::from_secs(60),
        || async {
            let st = kc_status(&cp).await;
            (condition(&st, "Valid")?.0 == "True").then_some(())
        },
    )
    .await?;

    // One Cassandra cluster of 6 nodes in 2 DCs, across both data planes.
    sc.wait(
        "6 NORMAL nodes in dc1 and dc2",
        Duration::from_secs(60),
        || async {
            (normal_per_dc(&sc.sim)
                == BTreeMap::from([("dc1".to_string(), 3), ("dc2".to_string(), 3)]))
            .then_some(())
        },
    )
    .await?;
    sc.wait(
        "system keyspaces on NetworkTopologyStrategy dc1:3 dc2:3",
        Duration::from_secs(120),
        || async { system_replication_is(&sc.sim, &[("dc1", "3"), ("dc2", "3")]).then_some(()) },
    )
    .await?;
    for (name, c) in [("A", &a), ("B", &b)] {
        let s = step(&format!("superuser Secret in {name}"), async {
            Ok(Api::<Secret>::namespaced(c.clone(), NS)
                .get_opt("demo-superuser")
                .await?)
        })
        .await?
        .with_context(|| format!("no superuser Secret in data plane {name}"))?;
        assert!(s.data.unwrap_or_default().contains_key("password"));
    }
    let st = step("K8ssandraCluster status", async {
        Ok(kc_status(&cp).await)
    })
    .await?;
    let dcs = st["datacenters"].as_object().cloned().unwrap_or_default();
    assert!(
        dcs.contains_key("dc1") && dcs.contains_key("dc2"),
        "status.datacenters: {dcs:?}"
    );
    assert_eq!(st["datacenters"]["dc1"]["contextName"], CTX_A);
    assert_eq!(st["datacenters"]["dc2"]["contextName"], CTX_B);
    sc.assert_no_violations();

    // What must not change from here on: the pods of dc1 and dc2, and their starts.
    let dc1_pods = step("dc1 pods", pod_uids(&a, "dc1")).await?;
    let dc2_pods = step("dc2 pods", pod_uids(&b, "dc2")).await?;
    assert_eq!((dc1_pods.len(), dc2_pods.len()), (3, 3));
    let kept: BTreeSet<String> = dc1_pods.keys().chain(dc2_pods.keys()).cloned().collect();
    let kept_starts = starts(&sc.sim, &kept);

    // ── 2. dc3 joins in A: rebuilt from an existing datacenter ──────────────────────────
    step(
        "apply: dc3 added",
        apply_yaml(
            &cp,
            &manifest(&[("dc1", CTX_A), ("dc2", CTX_B), ("dc3", CTX_A)], &[]),
            NS,
        ),
    )
    .await?;
    sc.wait(
        "dc3 Ready in A and done joining",
        Duration::from_secs(300),
        || async {
            let dc = get_dc(&a, "dc3").await?;
            let join = dc
                .metadata
                .annotations
                .as_ref()
                .and_then(|m| m.get("k8ssandra.io/join-state"))
                .cloned();
            (dc_ready(&a, "dc3").await && join.as_deref() == Some("done")).then_some(())
        },
    )
    .await?;
    let dc3_pods = pod_uids(&a, "dc3").await?;
    assert_eq!(dc3_pods.len(), 3);
    let rebuilds: BTreeMap<String, String> = sc
        .sim
        .history()
        .into_iter()
        .filter(|h| h.action == "job" && h.job_type.as_deref() == Some("rebuild"))
        .filter_map(|h| Some((h.pod?.name, h.detail.unwrap_or_default())))
        .filter(|(pod, _)| dc3_pods.contains_key(pod))
        .collect();
    assert_eq!(
        rebuilds.keys().collect::<Vec<_>>(),
        dc3_pods.keys().collect::<Vec<_>>(),
        "a rebuild on every dc3 node"
    );
    assert!(
        rebuilds
            .values()
            .all(|d| d == "src_dc=dc1" || d == "src_dc=dc2"),
        "rebuilds stream from an existing datacenter: {rebuilds:?}"
    );
    sc.wait(
        "system keyspaces dc1:3 dc2:3 dc3:3",
        Duration::from_secs(120),
        || async {
            system_replication_is(&sc.sim, &[("dc1", "3"), ("dc2", "3"), ("dc3", "3")])
                .then_some(())
        },
    )
    .await?;
    sc.assert_no_violations();

    // ── 3. dc3's removal: refused while a keyspace replicates to it ─────────────────────
    sc.sim.create_keyspace(&KeyspaceRequest {
        cluster: CLUSTER.into(),
        name: "shop".into(),
        replication: BTreeMap::from([("dc1".into(), 3), ("dc2".into(), 3), ("dc3".into(), 3)]),
    });
    step(
        "apply: dc3 removed",
        apply_yaml(&cp, &manifest(&[("dc1", CTX_A), ("dc2", CTX_B)], &[]), NS),
    )
    .await?;
    sc.wait(
        "the removal of dc3 refused, naming keyspace shop",
        Duration::from_secs(120),
        || async {
            let st = kc_status(&cp).await;
            let (status, _, message) = condition(&st, "DatacenterRemovalBlocked")?;
            (status == "True" && message.contains("shop") && message.contains("dc3")).then_some(())
        },
    )
    .await?;
    assert!(
        get_dc(&a, "dc3").await.is_some(),
        "dc3 deleted while refused"
    );
    assert!(
        !sc.sim.history().iter().any(|h| h.action == "decommission"),
        "a node was decommissioned while the removal was refused"
    );

    // The user moves the keyspace off dc3 (as with cqlsh); the next check lets it go.
    sc.sim.create_keyspace(&KeyspaceRequest {
        cluster: CLUSTER.into(),
        name: "shop".into(),
        replication: BTreeMap::from([("dc1".into(), 3), ("dc2".into(), 3)]),
    });
    sc.wait(
        "dc3 decommissioned and its CassandraDatacenter deleted",
        Duration::from_secs(240),
        || async { get_dc(&a, "dc3").await.is_none().then_some(()) },
    )
    .await?;
    let decommissioned: BTreeSet<String> = sc
        .sim
        .history()
        .into_iter()
        .filter(|h| h.action == "decommission")
        .filter_map(|h| h.pod.map(|p| p.name))
        .collect();
    assert_eq!(
        decommissioned,
        dc3_pods.keys().cloned().collect::<BTreeSet<_>>(),
        "every dc3 node, and only those, decommissioned"
    );
    assert!(
        !normal_per_dc(&sc.sim).contains_key("dc3"),
        "dc3 nodes left the ring"
    );
    sc.wait(
        "system keyspaces back to dc1:3 dc2:3, removal condition cleared",
        Duration::from_secs(60),
        || async {
            let st = kc_status(&cp).await;
            let cleared =
                condition(&st, "DatacenterRemovalBlocked").is_none_or(|(s, _, _)| s == "False");
            (cleared && system_replication_is(&sc.sim, &[("dc1", "3"), ("dc2", "3")])).then_some(())
        },
    )
    .await?;
    assert_eq!(
        pod_uids(&a, "dc1").await?,
        dc1_pods,
        "a dc1 pod was replaced"
    );
    assert_eq!(
        pod_uids(&b, "dc2").await?,
        dc2_pods,
        "a dc2 pod was replaced"
    );
    assert_eq!(
        starts(&sc.sim, &kept),
        kept_starts,
        "a dc1/dc2 node restarted"
    );
    sc.assert_no_violations();

    // ── 4. B's API server goes away for a while ─────────────────────────────────────────
    let uid = |o: Option<DynamicObject>| o.and_then(|o| o.metadata.uid);
    let dc1_uid = uid(get_dc(&a, "dc1").await);
    let dc2_uid = uid(get_dc(&b, "dc2").await);
    let secret_uid = |c: Client| async move {
        Api::<Secret>::namespaced(c, NS)
            .get_opt("demo-superuser")
            .await
            .ok()
            .flatten()
            .and_then(|s| s.metadata.uid)
    };
    let (secret_a, secret_b) = (secret_uid(a.clone()).await, secret_uid(b.clone()).await);
    let prunes_before = sc.prunes();

    step("B's API server stopped", async {
        Ok(sc.env.cluster(2).stop_apiserver().await?)
    })
    .await?;
    sc.wait(
        "a condition saying dc2's cluster is unreachable",
        Duration::from_secs(120),
        || async {
            let st = kc_status(&cp).await;
            let (status, reason, message) = condition(&st, "DatacenterUnreachable")?;
            (status == "True"
                && reason == "ContextUnreachable"
                && message.contains("dc2")
                && message.contains(&format!("{CTX_B:?}")))
            .then_some(())
        },
    )
    .await?;
    // dc1 keeps being reconciled: a change to it reaches its CassandraDatacenter.
    step(
        "apply: a label on dc1 while B is down",
        apply_yaml(
            &cp,
            &manifest(
                &[("dc1", CTX_A), ("dc2", CTX_B)],
                &[("e2e.k8ssandra.io/changed-during-outage", "yes")],
            ),
            NS,
        ),
    )
    .await?;
    sc.wait(
        "dc1 updated while B is down",
        Duration::from_secs(120),
        || async {
            let dc = get_dc(&a, "dc1").await?;
            let labels = dc.metadata.labels.unwrap_or_default();
            (labels
                .get("e2e.k8ssandra.io/changed-during-outage")
                .map(String::as_str)
                == Some("yes"))
            .then_some(())
        },
    )
    .await?;
    let st = kc_status(&cp).await;
    assert_eq!(
        st["datacenters"]["dc2"]["cassandra"]["cassandraOperatorProgress"], "Ready",
        "dc2 keeps its last known status: {st}"
    );
    assert_eq!(
        condition(&st, "DatacenterUnreachable")
            .map(|c| c.0)
            .as_deref(),
        Some("True")
    );

    step("B's API server started", async {
        Ok(sc.env.cluster(2).start_apiserver().await?)
    })
    .await?;
    sc.wait(
        "B back: the unreachable condition clears, dc2 Ready",
        Duration::from_secs(180),
        || async {
            let st = kc_status(&cp).await;
            let cleared =
                condition(&st, "DatacenterUnreachable").is_none_or(|(s, _, _)| s == "False");
            (cleared && dc_ready(&b, "dc2").await && dc_ready(&a, "dc1").await).then_some(())
        },
    )
    .await?;
    // Nothing was deleted anywhere.
    assert_eq!(
        sc.prunes(),
        prunes_before,
        "the control plane pruned something"
    );
    assert_eq!(uid(get_dc(&a, "dc1").await), dc1_uid);
    assert_eq!(uid(get_dc(&b, "dc2").await), dc2_uid);
    assert_eq!(secret_uid(a.clone()).await, secret_a);
    assert_eq!(secret_uid(b.clone()).await, secret_b);
    assert_eq!(pod_uids(&a, "dc1").await?, dc1_pods);
    assert_eq!(pod_uids(&b, "dc2").await?, dc2_pods);
    assert_eq!(
        starts(&sc.sim, &kept),
        kept_starts,
        "a dc1/dc2 node restarted"
    );
    assert_eq!(
        normal_per_dc(&sc.sim),
        BTreeMap::from([("dc1".to_string(), 3), ("dc2".to_string(), 3)])
    );
    assert_eq!(sc.operators[0].pid(), cp_pid);
    assert!(sc.operators.iter_mut().all(Operator::is_running));
    sc.assert_no_violations();
    Ok(())
}
