//! The cassandra-datacenter policy end to end: the real operator binary, the real wasm
//! policy, a testenv cluster and the Cassandra simulator.

use crate::support;

use std::time::Duration;

use anyhow::Result;
use cassandra_sim::{CassandraState, FaultRequest, FaultTarget, SimHandle, SimOptions, Simulator};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DynamicObject, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use k8ssandra_testenv::{TestEnv, TestEnvOptions};
use support::{
    Operator, apply_yaml, create_namespace, datacenters, install_crds, normal_nodes, plugin_dir,
    sim_starts, tail, wait_for, write_kubeconfig,
};

const NS: &str = "cass";

fn dc_manifest(size: u32) -> String {
    format!(
        r#"
apiVersion: cassandra.datastax.com/v1beta1
kind: CassandraDatacenter
metadata:
  name: dc1
  namespace: {NS}
spec:
  clusterName: demo
  serverType: cassandra
  serverVersion: "4.1.5"
  size: {size}
  racks:
    - name: r1
      zone: zone-a
    - name: r2
      zone: zone-b
    - name: r3
      zone: zone-c
  storageConfig:
    cassandraDataVolumeClaimSpec:
      storageClassName: standard
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 1Gi
"#
    )
}

async fn ready_condition(dcs: &Api<DynamicObject>) -> Option<bool> {
    let dc = dcs.get("dc1").await.ok()?;
    let conds = dc.data.pointer("/status/conditions")?.as_array()?.clone();
    let ready = conds.iter().find(|c| c["type"] == "Ready")?;
    let progress = dc
        .data
        .pointer("/status/cassandraOperatorProgress")?
        .as_str()?
        .to_string();
    Some(ready["status"] == "True" && progress == "Ready")
}

async fn setup(
    env: &TestEnv,
    tmp: &std::path::Path,
) -> Result<(Client, SimHandle, Operator, Api<DynamicObject>)> {
    let client = env.cluster(0).client();
    install_crds(&client, &k8ssandra_api::all_crds_yaml()).await?;
    create_namespace(&client, NS).await?;
    let mut opts = SimOptions::default();
    opts.config.bootstrap_delay = Duration::from_millis(300);
    opts.config.decommission_delay = Duration::from_millis(300);
    opts.config.job_duration = Duration::from_millis(200);
    let sim = Simulator::start(
        opts,
        vec![(env.cluster(0).context_name().to_string(), client.clone())],
    )
    .await?;
    let kubeconfig = write_kubeconfig(tmp, env.cluster(0))?;
    let plugins = plugin_dir(&tmp.join("plugins"), &["cassandra-datacenter"])?;
    let op = Operator::start(&kubeconfig, &plugins, &["--resync-seconds", "2"])?;
    op.wait_ready(Duration::from_secs(60)).await?;
    let dcs = datacenters(&client, NS).await?;
    Ok((client, sim, op, dcs))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datacenter_of_three_racks_becomes_ready_and_scales() -> Result<()> {
    let env = TestEnv::start(TestEnvOptions {
        clusters: 1,
        nodes_per_cluster: 12,
        ..Default::default()
    })
    .await?;
    let tmp = tempfile::tempdir()?;
    let (client, sim, op, dcs) = setup(&env, tmp.path()).await?;

    apply_yaml(&client, &dc_manifest(6), NS).await?;
    let stss: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    wait_for("three StatefulSets", Duration::from_secs(60), || async {
        let list = stss.list(&ListParams::default()).await.ok()?;
        let mut names: Vec<String> = list
            .items
            .into_iter()
            .filter_map(|s| s.metadata.name)
            .collect();
        names.sort();
        (names == ["demo-dc1-r1-sts", "demo-dc1-r2-sts", "demo-dc1-r3-sts"]).then_some(())
    })
    .await?;
    wait_for(
        "dc1 Ready with 6 nodes",
        Duration::from_secs(240),
        || async {
            (ready_condition(&dcs).await == Some(true) && normal_nodes(&sim, "demo") == 6)
                .then_some(())
        },
    )
    .await
    .map_err(|e| {
        e.context(format!(
            "sim: {:?}\nlog tail: {}",
            sim.violations(),
            tail(&op.log_text(), 40)
        ))
    })?;
    assert!(
        sim.violations().is_empty(),
        "violations: {:?}",
        sim.violations()
    );
    let starts = sim.history().iter().filter(|h| h.action == "start").count();
    assert_eq!(starts, 6, "each node started exactly once");

    // An EndpointSlice as Kubernetes' EndpointSlice controller makes one for a Service: the
    // Service's labels copied (ours among them), controlled by the Service. testenv does not
    // run that controller (it cannot handle loopback pod addresses), so the test plays it.
    let services: Api<Service> = Api::namespaced(client.clone(), NS);
    let svc = services.get("demo-dc1-service").await?;
    let mut slice_labels = svc.metadata.labels.clone().unwrap_or_default();
    slice_labels.insert(
        "kubernetes.io/service-name".into(),
        "demo-dc1-service".into(),
    );
    slice_labels.insert(
        "endpointslice.kubernetes.io/managed-by".into(),
        "endpointslice-controller.k8s.io".into(),
    );
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NS);
    slices
        .create(
            &PostParams::default(),
            &EndpointSlice {
                metadata: ObjectMeta {
                    name: Some("demo-dc1-service-abcde".into()),
                    labels: Some(slice_labels),
                    owner_references: Some(vec![OwnerReference {
                        api_version: "v1".into(),
                        kind: "Service".into(),
                        name: "demo-dc1-service".into(),
                        uid: svc.metadata.uid.clone().unwrap_or_default(),
                        controller: Some(true),
                        block_owner_deletion: Some(true),
                    }]),
                    ..Default::default()
                },
                address_type: "IPv4".into(),
                endpoints: Vec::new(),
                ports: None,
            },
        )
        .await?;

    // After Ready, resyncs write nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = op.metric("k8ssandra_api_writes_all_total", "").await?;
    let reconciles = op
        .metric("k8ssandra_reconciles_total", "cassandra-datacenter")
        .await?;
    wait_for("two resyncs", Duration::from_secs(30), || async {
        let now = op
            .metric("k8ssandra_reconciles_total", "cassandra-datacenter")
            .await
            .ok()?;
        (now >= reconciles + 2.0).then_some(())
    })
    .await?;
    assert_eq!(
        op.metric("k8ssandra_api_writes_all_total", "").await?,
        before,
        "zero writes after Ready"
    );
    // The EndpointSlices Kubernetes makes for the Services copy their labels; they are
    // the EndpointSlice controller's, never pruned by the operator.
    assert!(
        slices.get_opt("demo-dc1-service-abcde").await?.is_some(),
        "the Service's EndpointSlice was deleted"
    );
    let pruned_slices: Vec<String> = op
        .log_text()
        .lines()
        .filter(|l| l.contains("pruning") && l.contains("EndpointSlice"))
        .map(str::to_string)
        .collect();
    assert!(pruned_slices.is_empty(), "{pruned_slices:#?}");

    // Scale up 6 → 9: new nodes join, cleanup runs on the original ones.
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NS);
    let original_pvcs: Vec<(String, String)> = pvcs
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|p| {
            (
                p.metadata.name.unwrap_or_default(),
                p.metadata.uid.unwrap_or_default(),
            )
        })
        .collect();
    dcs.patch(
        "dc1",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": 9}})),
    )
    .await?;
    wait_for(
        "dc1 Ready with 9 nodes",
        Duration::from_secs(240),
        || async {
            (normal_nodes(&sim, "demo") == 9 && ready_condition(&dcs).await == Some(true))
                .then_some(())
        },
    )
    .await
    .map_err(|e| e.context(tail(&op.log_text(), 40)))?;
    let cleaned = wait_for(
        "cleanup on the original nodes",
        Duration::from_secs(120),
        || async {
            let jobs = sim
                .history()
                .into_iter()
                .filter(|h| {
                    h.action == "job" && format!("{h:?}").to_lowercase().contains("cleanup")
                })
                .count();
            (jobs >= 6).then_some(())
        },
    )
    .await;
    if let Err(e) = cleaned {
        // Why no cleanup was planned shows in the conditions (ScalingUp, Initialized) the
        // policy last wrote; the flake this catches left the operator silent.
        let conditions = dcs
            .get("dc1")
            .await
            .map(|dc| dc.data["status"]["conditions"].to_string())
            .unwrap_or_else(|err| err.to_string());
        let jobs: Vec<_> = sim
            .history()
            .into_iter()
            .filter(|h| h.action == "job")
            .collect();
        return Err(e.context(format!(
            "jobs: {jobs:#?}\nviolations: {:?}\ndc1 conditions: {conditions}\n{}",
            sim.violations(),
            tail(&op.log_text(), 60)
        )));
    }
    assert!(
        sim.violations().is_empty(),
        "violations: {:?}",
        sim.violations()
    );

    // Scale down 9 → 6 by decommission; the remaining nodes' PVCs are untouched.
    dcs.patch(
        "dc1",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": 6}})),
    )
    .await?;
    wait_for("dc1 back to 6 nodes", Duration::from_secs(240), || async {
        let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
        let n = pods.list(&ListParams::default()).await.ok()?.items.len();
        (n == 6 && normal_nodes(&sim, "demo") == 6 && ready_condition(&dcs).await == Some(true))
            .then_some(())
    })
    .await
    .map_err(|e| e.context(tail(&op.log_text(), 40)))?;
    let decommissions = sim
        .history()
        .iter()
        .filter(|h| h.action == "decommission")
        .count();
    assert_eq!(decommissions, 3, "one decommission per removed node");
    let now_pvcs = pvcs.list(&ListParams::default()).await?.items;
    for (name, uid) in &original_pvcs {
        let live = now_pvcs
            .iter()
            .find(|p| p.metadata.name.as_ref() == Some(name));
        let live = live.unwrap_or_else(|| panic!("PVC {name} of a remaining node is gone"));
        assert_eq!(
            live.metadata.uid.as_ref(),
            Some(uid),
            "PVC {name} was recreated"
        );
    }
    assert!(
        sim.violations().is_empty(),
        "violations: {:?}",
        sim.violations()
    );
    Ok(())
}

fn not_normal(sim: &SimHandle) -> usize {
    sim.state()
        .cluster("demo")
        .map(|c| {
            c.nodes
                .iter()
                .filter(|n| n.cassandra != CassandraState::Normal)
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_config_change_stop_resume_and_replace() -> Result<()> {
    let env = TestEnv::start(TestEnvOptions {
        clusters: 1,
        nodes_per_cluster: 6,
        ..Default::default()
    })
    .await?;
    let tmp = tempfile::tempdir()?;
    let (client, sim, op, dcs) = setup(&env, tmp.path()).await?;
    apply_yaml(&client, &dc_manifest(3), NS).await?;
    wait_for(
        "dc1 Ready with 3 nodes",
        Duration::from_secs(180),
        || async {
            (ready_condition(&dcs).await == Some(true) && normal_nodes(&sim, "demo") == 3)
                .then_some(())
        },
    )
    .await
    .map_err(|e| e.context(tail(&op.log_text(), 40)))?;
    assert_eq!(sim_starts(&sim).len(), 3);

    // A config change rolls through every node, never more than one down at a time.
    dcs.patch(
        "dc1",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"config": {"cassandra-yaml": {"concurrent_reads": 64}}}})),
    )
    .await?;
    let mut max_down = 0;
    wait_for(
        "every node restarted with the new config",
        Duration::from_secs(240),
        || {
            let down = not_normal(&sim);
            max_down = max_down.max(down);
            let sim = &sim;
            let dcs = &dcs;
            async move {
                (sim_starts(sim).len() >= 6
                    && normal_nodes(sim, "demo") == 3
                    && ready_condition(dcs).await == Some(true))
                .then_some(())
            }
        },
    )
    .await
    .map_err(|e| e.context(tail(&op.log_text(), 40)))?;
    assert!(
        max_down <= 1,
        "{max_down} nodes were down at once during the rollout"
    );
    assert_eq!(
        sim_starts(&sim).len(),
        6,
        "each node restarted exactly once"
    );
    let restarted: std::collections::BTreeSet<String> = sim_starts(&sim)[3..]
        .iter()
        .filter_map(|h| h.pod.as_ref().map(|p| p.name.clone()))
        .collect();
    assert_eq!(restarted.len(), 3, "every pod restarted: {restarted:?}");

    // stopped: no pods, PVCs kept; resumed: Ready again.
    dcs.patch(
        "dc1",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"stopped": true}})),
    )
    .await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NS);
    wait_for(
        "no pods while stopped",
        Duration::from_secs(120),
        || async {
            pods.list(&ListParams::default())
                .await
                .ok()?
                .items
                .is_empty()
                .then_some(())
        },
    )
    .await?;
    assert_eq!(
        pvcs.list(&ListParams::default()).await?.items.len(),
        3,
        "PVCs kept while stopped"
    );
    dcs.patch(
        "dc1",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"stopped": false}})),
    )
    .await?;
    wait_for(
        "Ready again after resuming",
        Duration::from_secs(180),
        || async {
            (normal_nodes(&sim, "demo") == 3 && ready_condition(&dcs).await == Some(true))
                .then_some(())
        },
    )
    .await
    .map_err(|e| e.context(tail(&op.log_text(), 40)))?;

    // A node that lost its data is replaced: started with the old address as replace_ip.
    let victim = "demo-dc1-r1-sts-0";
    let old_ip = pods
        .get(victim)
        .await?
        .status
        .and_then(|s| s.pod_ip)
        .expect("pod IP");
    sim.set_fault(&FaultRequest {
        target: FaultTarget::Pod {
            name: victim.into(),
            namespace: None,
            context: None,
        },
        fault: None,
        clear: false,
        wipe: true,
    })?;
    dcs.patch(
        "dc1",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replaceNodes": [victim]}})),
    )
    .await?;
    wait_for(
        "replacement start with replace_ip, then Ready",
        Duration::from_secs(180),
        || async {
            let replaced = sim_starts(&sim)
                .iter()
                .any(|h| h.replace_ip.as_deref() == Some(old_ip.as_str()));
            (replaced
                && normal_nodes(&sim, "demo") == 3
                && ready_condition(&dcs).await == Some(true))
            .then_some(())
        },
    )
    .await
    .map_err(|e| {
        e.context(format!(
            "history: {:?}\n{}",
            sim_starts(&sim),
            tail(&op.log_text(), 40)
        ))
    })?;
    assert!(
        sim.violations().is_empty(),
        "violations: {:?}",
        sim.violations()
    );
    Ok(())
}
