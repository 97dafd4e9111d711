//! How nodes join, against the strict simulator: new nodes of a ring that holds data always
//! bootstrap (never as seeds), a node whose management API comes up late starts as soon as
//! it does (not at the next resync), and a replacement waits for a joining node.
//!
//! Each test has its own testenv cluster, simulator and operator, so cargo runs them in
//! parallel.

use crate::support;

use std::time::Duration;

use anyhow::Result;
use cassandra_sim::{
    CassandraState, FaultRequest, FaultTarget, HistoryEntry, SimConfig, SimHandle, SimOptions,
    Simulator,
};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use k8ssandra_testenv::{TestEnv, TestEnvOptions};
use support::{
    Operator, apply_yaml, create_namespace, datacenters, dc_ready, install_crds, normal_nodes,
    plugin_dir, sim_starts, tail, wait_for, write_kubeconfig,
};

const NS: &str = "join";

fn manifest(cluster: &str, size: u32, racks: &[&str]) -> String {
    let racks: Vec<String> = racks.iter().map(|r| format!("{{name: {r}}}")).collect();
    format!(
        r#"
apiVersion: cassandra.datastax.com/v1beta1
kind: CassandraDatacenter
metadata:
  name: dc1
  namespace: {NS}
spec:
  clusterName: {cluster}
  serverType: cassandra
  serverVersion: "4.1.5"
  size: {size}
  racks: [{}]
  storageConfig:
    cassandraDataVolumeClaimSpec:
      storageClassName: standard
      accessModes: [ReadWriteOnce]
      resources: {{requests: {{storage: 1Gi}}}}
"#,
        racks.join(", ")
    )
}

struct Setup {
    _env: TestEnv,
    _tmp: tempfile::TempDir,
    client: Client,
    sim: SimHandle,
    op: Operator,
    dcs: Api<DynamicObject>,
}

async fn setup(config: SimConfig, resync_seconds: &str) -> Result<Setup> {
    let env = TestEnv::start(TestEnvOptions {
        clusters: 1,
        nodes_per_cluster: 8,
        ..Default::default()
    })
    .await?;
    let tmp = tempfile::tempdir()?;
    let client = env.cluster(0).client();
    install_crds(&client, &k8ssandra_api::all_crds_yaml()).await?;
    create_namespace(&client, NS).await?;
    let sim = Simulator::start(
        SimOptions {
            config,
            ..Default::default()
        },
        vec![(env.cluster(0).context_name().to_string(), client.clone())],
    )
    .await?;
    let kubeconfig = write_kubeconfig(tmp.path(), env.cluster(0))?;
    let plugins = plugin_dir(&tmp.path().join("plugins"), &["cassandra-datacenter"])?;
    let op = Operator::start(&kubeconfig, &plugins, &["--resync-seconds", resync_seconds])?;
    op.wait_ready(Duration::from_secs(60)).await?;
    let dcs = datacenters(&client, NS).await?;
    Ok(Setup {
        _env: env,
        _tmp: tmp,
        client,
        sim,
        op,
        dcs,
    })
}

fn fast() -> SimConfig {
    SimConfig {
        bootstrap_delay: Duration::from_millis(300),
        decommission_delay: Duration::from_millis(300),
        job_duration: Duration::from_millis(200),
        ..SimConfig::default()
    }
}

/// Waits until dc1 is Ready with `nodes` NORMAL nodes; the failure tells the starts, the
/// violations and the operator's last lines.
async fn wait_ready_within(
    s: &Setup,
    cluster: &str,
    nodes: usize,
    what: &str,
    timeout: Duration,
) -> Result<()> {
    wait_for(what, timeout, || async {
        (dc_ready(&s.dcs, "dc1").await && normal_nodes(&s.sim, cluster) == nodes).then_some(())
    })
    .await
    .map_err(|e| {
        e.context(format!(
            "starts: {:#?}\nviolations: {:?}\n{}",
            sim_starts(&s.sim),
            s.sim.violations(),
            tail(&s.op.log_text(), 40)
        ))
    })
}

async fn wait_ready(s: &Setup, cluster: &str, nodes: usize, what: &str) -> Result<()> {
    wait_ready_within(s, cluster, nodes, what, Duration::from_secs(240)).await
}

fn pod_of(h: &HistoryEntry) -> String {
    h.pod.as_ref().map(|p| p.name.clone()).unwrap_or_default()
}

/// How each pod's node first came up: `bootstrap` (streamed its ranges), `seed` (joined
/// without streaming) — ignoring refused starts and restarts of nodes that hold data.
fn first_joins(sim: &SimHandle) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for h in sim_starts(sim) {
        if h.outcome != "accepted" {
            continue;
        }
        let how = h.detail.clone().unwrap_or_default();
        if how == "restart" || out.iter().any(|(p, _)| *p == pod_of(&h)) {
            continue;
        }
        out.push((pod_of(&h), how));
    }
    out
}

fn assert_no_violations(s: &Setup) {
    let v = s.sim.violations();
    assert!(
        v.is_empty(),
        "violations: {v:#?}\nstarts: {:#?}",
        sim_starts(&s.sim)
    );
}

async fn patch_dc(s: &Setup, yaml: &str) -> Result<()> {
    apply_yaml(&s.client, yaml, NS).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_added_to_a_small_rack_bootstraps() -> Result<()> {
    let s = setup(fast(), "2").await?;
    patch_dc(&s, &manifest("small", 2, &["r1"])).await?;
    wait_ready(&s, "small", 2, "dc1 Ready with 2 nodes").await?;

    // Below three nodes every node may be a seed; the third is created while the ring holds
    // data, so it must stream its ranges, not come up as a seed.
    patch_dc(&s, &manifest("small", 3, &["r1"])).await?;
    wait_ready(&s, "small", 3, "dc1 Ready with 3 nodes").await?;

    let joins = first_joins(&s.sim);
    assert_eq!(
        joins,
        vec![
            ("small-dc1-r1-sts-0".to_string(), "seed".to_string()),
            ("small-dc1-r1-sts-1".to_string(), "bootstrap".to_string()),
            ("small-dc1-r1-sts-2".to_string(), "bootstrap".to_string()),
        ],
        "{:#?}",
        sim_starts(&s.sim)
    );
    // The grown datacenter gets seeds among its ready nodes, labelled on the pods.
    let pods: Api<Pod> = Api::namespaced(s.client.clone(), NS);
    wait_for(
        "three seed-labelled pods",
        Duration::from_secs(30),
        || async {
            let list = pods.list(&Default::default()).await.ok()?;
            let seeds = list
                .items
                .iter()
                .filter(|p| {
                    p.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("cassandra.datastax.com/seed-node"))
                        .is_some_and(|v| v == "true")
                })
                .count();
            (seeds == 3).then_some(())
        },
    )
    .await?;
    // The labels are patched on the StatefulSet's pods: never adopted (the StatefulSet
    // stays their only owner) nor stamped with the operator's ownership labels.
    for p in pods.list(&Default::default()).await?.items {
        let owners: Vec<String> = p
            .metadata
            .owner_references
            .iter()
            .flatten()
            .map(|o| o.kind.clone())
            .collect();
        assert_eq!(owners, ["StatefulSet"], "{:?}", p.metadata);
        let labels = p.metadata.labels.clone().unwrap_or_default();
        assert!(
            !labels.contains_key("k8ssandra.io/policy"),
            "{:?}",
            p.metadata
        );
    }
    assert_no_violations(&s);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rack_added_to_a_datacenter_of_many_racks_bootstraps() -> Result<()> {
    let s = setup(fast(), "2").await?;
    let four = ["r1", "r2", "r3", "r4"];
    patch_dc(&s, &manifest("racks", 4, &four)).await?;
    wait_ready(&s, "racks", 4, "dc1 Ready with 4 racks").await?;

    // With more than three racks every rack has a seed; the new rack's first node must
    // still bootstrap into the ring that holds data.
    patch_dc(&s, &manifest("racks", 5, &["r1", "r2", "r3", "r4", "r5"])).await?;
    wait_ready(&s, "racks", 5, "dc1 Ready with 5 racks").await?;

    let joins = first_joins(&s.sim);
    let seeds: Vec<&str> = joins
        .iter()
        .filter(|(_, how)| how == "seed")
        .map(|(p, _)| p.as_str())
        .collect();
    assert_eq!(
        seeds.len(),
        1,
        "only the very first node joins as a seed: {joins:?}"
    );
    assert!(
        joins
            .iter()
            .any(|(p, how)| p == "racks-dc1-r5-sts-0" && how == "bootstrap"),
        "{joins:?}"
    );
    assert_no_violations(&s);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_management_api_is_noticed_without_waiting_for_a_resync() -> Result<()> {
    // Realistic timing: the management API listens 5 s after the container starts, readiness
    // follows the pod's own probe settings, gossip and ring delays as on real nodes. The
    // resync is far longer than the test's patience: only the operator noticing the API
    // coming up on its own can make the datacenter Ready in time.
    let s = setup(SimConfig::realistic(), "600").await?;
    patch_dc(&s, &manifest("late", 1, &["r1"])).await?;
    wait_ready_within(
        &s,
        "late",
        1,
        "dc1 Ready with 1 node",
        Duration::from_secs(120),
    )
    .await?;
    // The first start came after the listener opened, and nothing was refused.
    let st = sim_starts(&s.sim);
    assert!(
        st.iter().all(|h| h.outcome == "accepted"),
        "starts: {st:#?}"
    );
    // The pod shows both containers ready, as kubectl would on a real cluster.
    let pods: Api<Pod> = Api::namespaced(s.client.clone(), NS);
    let pod = pods.get("late-dc1-r1-sts-0").await?;
    let statuses = pod
        .status
        .and_then(|s| s.container_statuses)
        .unwrap_or_default();
    assert!(
        statuses.len() >= 2 && statuses.iter().all(|c| c.ready),
        "{statuses:#?}"
    );
    assert_no_violations(&s);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_waits_for_a_joining_node() -> Result<()> {
    let s = setup(fast(), "2").await?;
    patch_dc(&s, &manifest("repl", 3, &["r1"])).await?;
    wait_ready(&s, "repl", 3, "dc1 Ready with 3 nodes").await?;

    // Slow bootstraps, so the replacement is asked for while the fourth node joins.
    s.sim.update_config(&cassandra_sim::ConfigUpdate {
        bootstrap_delay_ms: Some(8_000),
        ..Default::default()
    });
    patch_dc(&s, &manifest("repl", 4, &["r1"])).await?;
    wait_for(
        "the fourth node joining",
        Duration::from_secs(120),
        || async {
            let state = s.sim.state();
            let n = state.node_of_pod("repl-dc1-r1-sts-3")?;
            (n.cassandra == CassandraState::Joining).then_some(())
        },
    )
    .await?;

    let victim = "repl-dc1-r1-sts-1";
    let pods: Api<Pod> = Api::namespaced(s.client.clone(), NS);
    let old_ip = pods
        .get(victim)
        .await?
        .status
        .and_then(|s| s.pod_ip)
        .unwrap_or_default();
    s.sim.set_fault(&FaultRequest {
        target: FaultTarget::Pod {
            name: victim.into(),
            namespace: Some(NS.into()),
            context: None,
        },
        fault: None,
        clear: false,
        wipe: true,
    })?;
    s.dcs
        .patch(
            "dc1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replaceNodes": [victim]}})),
        )
        .await?;
    wait_ready(
        &s,
        "repl",
        4,
        "dc1 Ready with 4 nodes after the replacement",
    )
    .await?;

    let st = sim_starts(&s.sim);
    let replacement = st
        .iter()
        .find(|h| h.replace_ip.as_deref() == Some(old_ip.as_str()) && h.outcome == "accepted")
        .unwrap_or_else(|| panic!("no replacement start: {st:#?}"));
    let joiner_normal = s
        .sim
        .state()
        .node_of_pod("repl-dc1-r1-sts-3")
        .map(|n| n.cassandra == CassandraState::Normal);
    assert_eq!(joiner_normal, Some(true));
    // The simulator refuses (and records) a replacement during another range movement; the
    // operator waited instead: nothing refused, the replacement after the join began.
    let joiner_start = st
        .iter()
        .find(|h| pod_of(h) == "repl-dc1-r1-sts-3" && h.outcome == "accepted")
        .map(|h| h.seq);
    assert!(joiner_start < Some(replacement.seq), "{st:#?}");
    assert!(
        st.iter().all(|h| h.outcome != "refused"),
        "refused starts: {st:#?}"
    );
    assert_no_violations(&s);
    Ok(())
}
