//! ClientConfigs added at run time and a remote cluster that goes away and comes back,
//! with the real operator binary, the echo policy and two testenv clusters.

use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::pinned_kind;
use kube::{Api, Client};
use serde_json::json;

use k8ssandra_testenv::{TestEnv, TestEnvOptions};
use support::{
    Operator, add_client_config, apply_yaml, create_namespace, policy_wasm, wait_crd, wait_for,
    write_kubeconfig,
};

async fn echo_names(client: &Client, ns: &str) -> Vec<String> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let mut names: Vec<String> = cms
        .list(&ListParams::default().labels("k8ssandra.io/policy=echo"))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clientconfig_at_run_time_and_a_lost_cluster() -> Result<()> {
    let echo = policy_wasm("echo-policy");
    let env = TestEnv::start(TestEnvOptions {
        clusters: 2,
        nodes_per_cluster: 1,
        ..Default::default()
    })
    .await?;
    let control = env.cluster(0).client();
    let remote = env.cluster(1).client();
    let tmp = tempfile::tempdir()?;
    let kubeconfig = write_kubeconfig(tmp.path(), env.cluster(0))?;

    for yaml in [
        std::fs::read_to_string(support::workspace_root().join("plugins/examples/echo/crd.yaml"))?,
        // Only the ClientConfig CRD: this test is about the host, not the API.
        k8ssandra_api::all_crds()
            .iter()
            .filter(|c| {
                matches!(
                    c.spec.names.kind.as_str(),
                    "ClientConfig" | "ReplicatedSecret"
                )
            })
            .map(k8ssandra_api::crd_yaml)
            .collect::<Vec<_>>()
            .join("\n---\n"),
    ] {
        apply_yaml(&control, &yaml, "default").await?;
    }
    wait_crd(&control, "examples.k8ssandra.io", "v1alpha1", "Echo").await?;
    wait_crd(&control, "config.k8ssandra.io", "v1beta1", "ClientConfig").await?;
    let ns = "multi";
    create_namespace(&control, ns).await?;
    create_namespace(&remote, ns).await?;

    let plugins = tmp.path().join("plugins");
    std::fs::create_dir_all(&plugins)?;
    std::fs::copy(&echo, plugins.join("echo.wasm"))?;
    let mut op = Operator::start(&kubeconfig, &plugins, &["--resync-seconds", "2"])?;
    op.wait_ready(Duration::from_secs(60)).await?;
    let pid = op.pid();

    let gvk = GroupVersionKind::gvk("examples.k8ssandra.io", "v1alpha1", "Echo");
    let (ar, _) = pinned_kind(&control, &gvk).await?;
    let echoes: Api<DynamicObject> = Api::namespaced_with(control.clone(), ns, &ar);
    let new_echo = |name: &str, cluster: &str| -> Result<DynamicObject> {
        Ok(serde_json::from_value(json!({
            "apiVersion": "examples.k8ssandra.io/v1alpha1", "kind": "Echo",
            "metadata": {"name": name}, "spec": {"message": "hi", "replicas": 1, "cluster": cluster}
        }))?)
    };
    echoes
        .create(&PostParams::default(), &new_echo("local", "")?)
        .await?;
    echoes
        .create(&PostParams::default(), &new_echo("far", "remote-a")?)
        .await?;
    wait_for("local echo", Duration::from_secs(60), || async {
        (echo_names(&control, ns).await == ["local-echo-0"]).then_some(())
    })
    .await?;
    // No ClientConfig for remote-a yet: nothing there.
    assert!(echo_names(&remote, ns).await.is_empty());

    // A ClientConfig added at run time: the remote cluster gets its ConfigMap, same process.
    let _secrets: Api<Secret> = Api::namespaced(control.clone(), ns);
    // contextName "remote-a" is not a context of this kubeconfig: its current context is used.
    let remote_kubeconfig = env.cluster(1).kubeconfig_yaml().to_string();
    add_client_config(
        &control,
        ns,
        "remote-a",
        "remote-a-kubeconfig",
        &remote_kubeconfig,
    )
    .await?;
    wait_for(
        "echo in the remote cluster",
        Duration::from_secs(90),
        || async { (echo_names(&remote, ns).await == ["far-echo-0"]).then_some(()) },
    )
    .await?;
    assert_eq!(op.pid(), pid);
    assert!(op.is_running(), "the operator never restarted");
    let cm: ConfigMap = Api::namespaced(remote.clone(), ns)
        .get("far-echo-0")
        .await?;
    let labels = cm.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels.get("k8ssandra.io/parent-name").map(String::as_str),
        Some("far")
    );
    assert!(
        cm.metadata.owner_references.is_none(),
        "no ownerReferences across clusters"
    );

    // The remote API server goes away: the local parent keeps reconciling, and nothing is
    // deleted anywhere.
    env.cluster(1).stop_apiserver().await?;
    echoes
        .patch(
            "local",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await?;
    echoes
        .patch(
            "far",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await?;
    wait_for(
        "local echo scaled while remote is down",
        Duration::from_secs(60),
        || async {
            (echo_names(&control, ns).await == ["local-echo-0", "local-echo-1"]).then_some(())
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(op.is_running());
    env.cluster(1).start_apiserver().await?;
    wait_for(
        "remote converges once back",
        Duration::from_secs(120),
        || async { (echo_names(&remote, ns).await == ["far-echo-0", "far-echo-1"]).then_some(()) },
    )
    .await?;
    assert_eq!(op.pid(), pid);

    // A second context naming the control plane itself (a ClientConfig users create by
    // mistake or for symmetry): moving the local echo to it is a move to the same cluster.
    // Its ConfigMaps must survive: never pruned because they are also seen under "".
    let cms: Api<ConfigMap> = Api::namespaced(control.clone(), ns);
    let uids = |list: Vec<ConfigMap>| -> BTreeMap<String, String> {
        list.into_iter()
            .filter_map(|c| Some((c.metadata.name?, c.metadata.uid?)))
            .filter(|(n, _)| n.starts_with("local-echo"))
            .collect()
    };
    let before = uids(cms.list(&Default::default()).await?.items);
    assert_eq!(before.len(), 2);
    add_client_config(
        &control,
        ns,
        "self-alias",
        "self-kubeconfig",
        env.cluster(0).kubeconfig_yaml(),
    )
    .await?;
    wait_for(
        "the alias context configured",
        Duration::from_secs(60),
        || async {
            op.log_text()
                .lines()
                .any(|l| l.contains("cluster client configured") && l.contains("self-alias"))
                .then_some(())
        },
    )
    .await
    .map_err(|e| {
        let log = op.log_text();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("ClientConfig") || l.contains("cluster client"))
            .collect();
        e.context(lines.join("\n"))
    })?;
    echoes
        .patch(
            "local",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"cluster": "self-alias"}})),
        )
        .await?;
    // Several reconciles (resync, watch events of both contexts) go by.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let after = uids(cms.list(&Default::default()).await?.items);
    assert_eq!(
        after, before,
        "the same objects, never deleted and recreated"
    );
    assert!(
        !op.log_text()
            .lines()
            .any(|l| l.contains("pruning") && l.contains("local-echo")),
        "no prune of an object that is also the desired one under another context"
    );
    assert_eq!(op.pid(), pid);
    Ok(())
}
