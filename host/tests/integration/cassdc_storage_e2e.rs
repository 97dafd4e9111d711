//! Volume expansion of a CassandraDatacenter end to end: the claims are patched through
//! server-side apply without being adopted, and the StatefulSet is recreated with the new
//! claim template by a delete that orphans its pods (the garbage collector of the testenv's
//! controller manager honours it), so no Cassandra node restarts.

use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use cassandra_sim::{SimOptions, Simulator};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{DynamicObject, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use k8ssandra_testenv::{TestEnv, TestEnvOptions};
use support::{
    Operator, apply_yaml, create_namespace, datacenters, install_crds, normal_nodes, plugin_dir,
    tail, wait_for, write_kubeconfig,
};

const NS: &str = "cass";

const DC: &str = r#"
apiVersion: cassandra.datastax.com/v1beta1
kind: CassandraDatacenter
metadata:
  name: dc1
  namespace: cass
  annotations:
    cassandra.datastax.com/allow-storage-changes: "true"
spec:
  clusterName: demo
  serverType: cassandra
  serverVersion: "4.1.5"
  size: 3
  racks:
    - name: r1
  storageConfig:
    cassandraDataVolumeClaimSpec:
      storageClassName: standard
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 1Gi
"#;

fn condition(dc: &DynamicObject, t: &str) -> Option<String> {
    dc.data
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == t)?["status"]
        .as_str()
        .map(str::to_string)
}

async fn ready(dcs: &Api<DynamicObject>) -> bool {
    let Ok(dc) = dcs.get("dc1").await else {
        return false;
    };
    condition(&dc, "Ready").as_deref() == Some("True")
        && dc.data.pointer("/status/cassandraOperatorProgress") == Some(&json!("Ready"))
}

fn requested(p: &PersistentVolumeClaim) -> Option<String> {
    p.spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
        .map(|q| q.0.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_volumes_grow_without_restarting_nodes() -> Result<()> {
    let env = TestEnv::start(TestEnvOptions {
        clusters: 1,
        nodes_per_cluster: 4,
        ..Default::default()
    })
    .await?;
    let tmp = tempfile::tempdir()?;
    let client: Client = env.cluster(0).client();
    install_crds(&client, &k8ssandra_api::all_crds_yaml()).await?;
    create_namespace(&client, NS).await?;
    let mut opts = SimOptions::default();
    opts.config.bootstrap_delay = Duration::from_millis(300);
    let sim = Simulator::start(
        opts,
        vec![(env.cluster(0).context_name().to_string(), client.clone())],
    )
    .await?;
    let kubeconfig = write_kubeconfig(tmp.path(), env.cluster(0))?;
    let plugins = plugin_dir(&tmp.path().join("plugins"), &["cassandra-datacenter"])?;
    let op = Operator::start(&kubeconfig, &plugins, &["--resync-seconds", "2"])?;
    op.wait_ready(Duration::from_secs(60)).await?;
    let dcs = datacenters(&client, NS).await?;

    apply_yaml(&client, DC, NS).await?;
    wait_for(
        "dc1 Ready with 3 nodes",
        Duration::from_secs(240),
        || async { (ready(&dcs).await && normal_nodes(&sim, "demo") == 3).then_some(()) },
    )
    .await
    .map_err(|e| e.context(tail(&op.log_text(), 40)))?;

    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let uids = |list: Vec<Pod>| -> BTreeMap<String, String> {
        list.into_iter()
            .map(|p| {
                (
                    p.metadata.name.unwrap_or_default(),
                    p.metadata.uid.unwrap_or_default(),
                )
            })
            .collect()
    };
    let before = uids(pods.list(&ListParams::default()).await?.items);
    let starts_before = sim.history().iter().filter(|h| h.action == "start").count();

    dcs.patch(
        "dc1",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"spec": {"storageConfig": {"cassandraDataVolumeClaimSpec": {
            "resources": {"requests": {"storage": "2Gi"}}}}}}),
        ),
    )
    .await?;
    let stss: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NS);
    wait_for(
        "claims and claim template at 2Gi, dc1 Ready",
        Duration::from_secs(180),
        || async {
            let sts = stss.get("demo-dc1-r1-sts").await.ok()?;
            let template = sts
                .spec
                .as_ref()?
                .volume_claim_templates
                .as_ref()?
                .first()
                .and_then(requested)?;
            let claims = pvcs.list(&ListParams::default()).await.ok()?.items;
            let grown = claims.len() == 3
                && claims
                    .iter()
                    .all(|p| requested(p).as_deref() == Some("2Gi"));
            let dc = dcs.get("dc1").await.ok()?;
            let resizing = condition(&dc, "ResizingVolumes");
            (template == "2Gi"
                && grown
                && resizing.as_deref() == Some("False")
                && ready(&dcs).await)
                .then_some(())
        },
    )
    .await
    .map_err(|e| e.context(tail(&op.log_text(), 40)))?;

    // The same pods, never restarted, and the claims belong to no one but their pods.
    let after = uids(pods.list(&ListParams::default()).await?.items);
    assert_eq!(before, after, "pods were recreated");
    let starts = sim.history().iter().filter(|h| h.action == "start").count();
    assert_eq!(starts, starts_before, "Cassandra restarted");
    // A StatefulSet coming back is no scale-up: no cleanup.
    let cleanups = sim
        .history()
        .iter()
        .filter(|h| h.action == "job" && format!("{h:?}").to_lowercase().contains("cleanup"))
        .count();
    assert_eq!(cleanups, 0, "cleanup after a volume expansion");
    for claim in pvcs.list(&ListParams::default()).await?.items {
        assert!(
            claim
                .metadata
                .owner_references
                .unwrap_or_default()
                .iter()
                .all(|o| o.kind != "CassandraDatacenter"),
            "a claim is owned by the datacenter: its deletion would take the data"
        );
    }
    // The recreated StatefulSet adopted the running pods.
    for pod in pods.list(&ListParams::default()).await?.items {
        let owner = pod.metadata.owner_references.unwrap_or_default();
        assert!(
            owner
                .iter()
                .any(|o| o.kind == "StatefulSet" && o.controller == Some(true)),
            "{:?} not adopted",
            pod.metadata.name
        );
    }
    assert!(
        sim.violations().is_empty(),
        "violations: {:?}",
        sim.violations()
    );
    Ok(())
}
