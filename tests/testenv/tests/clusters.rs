//! Two real clusters: StatefulSets with volume claims and zone spreading run in each, pods get
//! addresses from each cluster's own range, Cassandra pods run but wait for readiness, the
//! API server survives a restart, and nothing is left running after the drop.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod};
use k8ssandra_testenv::{CASSANDRA_POD_LABEL, Cluster, TestEnv, TestEnvOptions, procscan};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};

const WAIT: Duration = Duration::from_secs(180);

async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let start = Instant::now();
    let mut last_err = None;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if start.elapsed() > WAIT {
            bail!("timed out waiting for {what} (last error: {last_err:?})");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn statefulset(name: &str, replicas: i32) -> Result<StatefulSet> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "podManagementPolicy": "Parallel",
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": {
                    "topologySpreadConstraints": [{
                        "maxSkew": 1,
                        "topologyKey": "topology.kubernetes.io/zone",
                        "whenUnsatisfiable": "DoNotSchedule",
                        "labelSelector": { "matchLabels": { "app": name } }
                    }],
                    "containers": [{ "name": "app", "image": "example.invalid/app:1" }]
                }
            },
            "volumeClaimTemplates": [{
                "metadata": { "name": "data" },
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": { "requests": { "storage": "1Gi" } }
                }
            }]
        }
    }))?)
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn running_ip(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    (status.phase.as_deref() == Some("Running"))
        .then(|| status.pod_ip.clone())
        .flatten()
}

/// Runs a zone-spread StatefulSet with claims in `cluster` and checks the result.
async fn check_statefulset(cluster: &Cluster) -> Result<()> {
    let client = cluster.client();
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    sts.create(&PostParams::default(), &statefulset("web", 3)?)
        .await
        .context("creating the StatefulSet")?;

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let running = wait_for("3 web pods Running and Ready", || {
        let pods = pods.clone();
        async move {
            let list = pods.list(&ListParams::default().labels("app=web")).await?;
            let ok: Vec<Pod> = list
                .items
                .into_iter()
                .filter(|p| running_ip(p).is_some() && pod_ready(p))
                .collect();
            Ok((ok.len() == 3).then_some(ok))
        }
    })
    .await?;

    for pod in &running {
        let ip = running_ip(pod).unwrap_or_default();
        assert!(
            cluster.owns_pod_ip(&ip),
            "{}: pod IP {ip} is outside {}",
            cluster.context_name(),
            cluster.pod_cidr()
        );
    }

    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let mut zones = BTreeSet::new();
    for pod in &running {
        let node_name = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .context("running pod without a node")?;
        let node = nodes.get(&node_name).await?;
        let zone = node
            .metadata
            .labels
            .unwrap_or_default()
            .get("topology.kubernetes.io/zone")
            .cloned()
            .context("node without a zone")?;
        zones.insert(zone);
    }
    assert!(zones.len() >= 2, "pods not spread over zones: {zones:?}");

    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    wait_for("3 Bound claims", || {
        let pvcs = pvcs.clone();
        async move {
            let list = pvcs.list(&ListParams::default()).await?;
            let bound = list
                .items
                .iter()
                .filter(|c| {
                    c.metadata
                        .name
                        .as_deref()
                        .unwrap_or("")
                        .starts_with("data-web-")
                        && c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
                })
                .count();
            Ok((bound == 3).then_some(()))
        }
    })
    .await?;

    // Scale-down must not hang on Terminating pods (kwok finishes graceful deletion).
    sts.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "spec": { "replicas": 1 } })),
    )
    .await?;
    wait_for("scale-down to 1 pod", || {
        let pods = pods.clone();
        async move {
            let list = pods.list(&ListParams::default().labels("app=web")).await?;
            Ok((list.items.len() == 1).then_some(()))
        }
    })
    .await?;
    Ok(())
}

/// A Cassandra-labelled pod runs with an IP but is not Ready until someone says so, and kwok
/// leaves the condition alone after it is patched.
async fn check_cassandra_pod(cluster: &Cluster) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(cluster.client(), "default");
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "cass-0",
            "labels": { (CASSANDRA_POD_LABEL): "demo", "cassandra.datastax.com/datacenter": "dc1" }
        },
        "spec": {
            "initContainers": [{ "name": "server-config-init", "image": "example.invalid/init:1" }],
            "containers": [{ "name": "cassandra", "image": "example.invalid/cassandra:1" }]
        }
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    let running = wait_for("Cassandra pod Running", || {
        let pods = pods.clone();
        async move {
            let p = pods.get("cass-0").await?;
            Ok(running_ip(&p).is_some().then_some(p))
        }
    })
    .await?;
    let ip = running_ip(&running).unwrap_or_default();
    assert!(cluster.owns_pod_ip(&ip), "Cassandra pod IP {ip}");
    assert!(!pod_ready(&running), "Cassandra pod must not be Ready yet");
    let statuses = running
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default();
    assert!(
        statuses
            .iter()
            .any(|c| c.name == "cassandra" && c.state.as_ref().is_some_and(|s| s.running.is_some())),
        "cassandra container not running: {statuses:?}"
    );

    // What the simulator does when its node is up.
    let patch = serde_json::json!({
        "status": { "conditions": [
            { "type": "Ready", "status": "True" },
            { "type": "ContainersReady", "status": "True" }
        ]}
    });
    pods.patch_status("cass-0", &PatchParams::default(), &Patch::Strategic(patch))
        .await?;
    // Give kwok the chance to (wrongly) react; an unrelated write forces a fresh event too.
    pods.patch(
        "cass-0",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "metadata": { "annotations": { "touched": "1" } } })),
    )
    .await?;
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client(), "default");
    // A round trip through the API after kwok has seen both events.
    for i in 0..5 {
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": { "name": format!("barrier-{i}") }
        }))?;
        cms.create(&PostParams::default(), &cm).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = pods.get("cass-0").await?;
    assert!(
        pod_ready(&after),
        "Ready was reverted after the simulator set it"
    );
    Ok(())
}

async fn check_apiserver_restart(cluster: &Cluster) -> Result<()> {
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client(), "default");
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "survives-restart" }, "data": { "k": "v" }
    }))?;
    cms.create(&PostParams::default(), &cm).await?;
    cluster.stop_apiserver().await?;
    assert!(
        cms.get("survives-restart").await.is_err(),
        "API answered while stopped"
    );
    cluster.start_apiserver().await?;
    let got = cms.get("survives-restart").await?;
    assert_eq!(
        got.data.unwrap_or_default().get("k").map(String::as_str),
        Some("v")
    );

    // Controllers, scheduler, kwok and the provisioner reconnected on their own.
    let sts: Api<StatefulSet> = Api::namespaced(cluster.client(), "default");
    sts.create(&PostParams::default(), &statefulset("after", 1)?)
        .await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client(), "default");
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(cluster.client(), "default");
    wait_for("a pod with a Bound claim after the restart", || {
        let (pods, pvcs) = (pods.clone(), pvcs.clone());
        async move {
            let pod = pods.get_opt("after-0").await?;
            let pvc = pvcs.get_opt("data-after-0").await?;
            let running = pod
                .as_ref()
                .is_some_and(|p| running_ip(p).is_some() && pod_ready(p));
            let bound = pvc
                .and_then(|c| c.status)
                .and_then(|s| s.phase)
                .is_some_and(|p| p == "Bound");
            Ok((running && bound).then_some(()))
        }
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_clusters_run_statefulsets_in_their_own_ranges() -> Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "k8ssandra_testenv=info".into()),
        )
        .with_test_writer()
        .try_init();

    let env = TestEnv::start(TestEnvOptions {
        clusters: 2,
        ..Default::default()
    })
    .await?;
    let root = env.root_dir().to_string_lossy().into_owned();
    assert_ne!(env.cluster(0).slot(), env.cluster(1).slot());
    assert_eq!(env.cluster(1).context_name(), "cluster-1");
    assert!(!env.pids().is_empty());
    assert!(
        !procscan::processes_referencing(&root).is_empty(),
        "no component references the env's directory"
    );

    let (a, b) = futures::join!(
        check_statefulset(env.cluster(0)),
        check_statefulset(env.cluster(1))
    );
    a.context("cluster-0")?;
    b.context("cluster-1")?;
    check_cassandra_pod(env.cluster(1)).await?;
    check_apiserver_restart(env.cluster(0)).await?;

    // The merged kubeconfig reaches both clusters through kubectl.
    let merged = env.root_dir().join("all.kubeconfig");
    env.write_kubeconfig(&merged)?;
    for ctx in ["cluster-0", "cluster-1"] {
        let out = std::process::Command::new(env.bin_dir().join("kubectl"))
            .arg(format!("--kubeconfig={}", merged.display()))
            .args(["--context", ctx, "get", "nodes", "-o", "name"])
            .output()?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 6);
    }

    drop(env);
    let left = procscan::processes_referencing(&root);
    assert!(left.is_empty(), "processes left after drop: {left:?}");
    Ok(())
}
