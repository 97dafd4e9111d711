//! The generic controller against a real kube-apiserver (testenv), with the real operator
//! binary and real wasm policies.

use crate::support;

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::{ConfigMap, Event};
use kube::api::{
    DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use kube::discovery::pinned_kind;
use kube::{Api, Client};
use serde_json::json;

use k8ssandra_testenv::{TestEnv, TestEnvOptions};
use support::{Operator, apply_yaml, create_namespace, policy_wasm, wait_crd, wait_for};

const MISBEHAVE_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: misbehaves.examples.k8ssandra.io
spec:
  group: examples.k8ssandra.io
  names: {kind: Misbehave, listKind: MisbehaveList, plural: misbehaves, singular: misbehave}
  scope: Namespaced
  versions:
    - name: v1alpha1
      served: true
      storage: true
      subresources: {status: {}}
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
"#;

async fn dynamic_api(client: &Client, kind: &str, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("examples.k8ssandra.io", "v1alpha1", kind);
    let (ar, _) = pinned_kind(client, &gvk).await.expect("kind served");
    Api::namespaced_with(client.clone(), ns, &ar)
}

async fn echo_data(cms: &Api<ConfigMap>, name: &str) -> Option<String> {
    cms.get_opt(name)
        .await
        .ok()
        .flatten()
        .and_then(|cm| cm.data)
        .and_then(|d| d.get("message").cloned())
}

async fn echo_names(cms: &Api<ConfigMap>) -> Vec<String> {
    let list = cms
        .list(&ListParams::default().labels("k8ssandra.io/policy=echo"))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    let mut names: Vec<String> = list
        .into_iter()
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .filter_map(|c| c.metadata.name)
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_policy_lifecycle_against_a_real_apiserver() -> Result<()> {
    let echo = policy_wasm("echo-policy");
    let misbehave = policy_wasm("misbehave-policy");
    let env = TestEnv::start(TestEnvOptions {
        clusters: 1,
        nodes_per_cluster: 1,
        ..Default::default()
    })
    .await?;
    let client = env.cluster(0).client();
    let tmp = tempfile::tempdir()?;
    let kubeconfig = tmp.path().join("kubeconfig");
    env.write_kubeconfig(&kubeconfig)?;

    let crd =
        std::fs::read_to_string(support::workspace_root().join("plugins/examples/echo/crd.yaml"))?;
    apply_yaml(&client, &crd, "default").await?;
    apply_yaml(&client, MISBEHAVE_CRD, "default").await?;
    wait_crd(&client, "examples.k8ssandra.io", "v1alpha1", "Echo").await?;
    wait_crd(&client, "examples.k8ssandra.io", "v1alpha1", "Misbehave").await?;
    let ns = "e2e";
    create_namespace(&client, ns).await?;

    let plugins = tmp.path().join("plugins");
    std::fs::create_dir_all(&plugins)?;
    std::fs::copy(&echo, plugins.join("echo.wasm"))?;
    std::fs::copy(&misbehave, plugins.join("misbehave.wasm"))?;
    let op = Operator::start(
        &kubeconfig,
        &plugins,
        &[
            "--resync-seconds",
            "1",
            "--policy-deadline-ms",
            "300",
            "--policy-memory-mib",
            "32",
        ],
    )?;
    op.wait_ready(Duration::from_secs(60)).await?;

    // The parent creates its children.
    let echoes = dynamic_api(&client, "Echo", ns).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    echoes
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "examples.k8ssandra.io/v1alpha1", "kind": "Echo",
                "metadata": {"name": "hello"}, "spec": {"message": "hi", "replicas": 2}
            }))?,
        )
        .await?;
    wait_for("two echo ConfigMaps", Duration::from_secs(60), || async {
        (echo_names(&cms).await == ["hello-echo-0", "hello-echo-1"]).then_some(())
    })
    .await?;
    let cm = cms.get("hello-echo-0").await?;
    let owner = &cm
        .metadata
        .owner_references
        .as_ref()
        .expect("ownerReference")[0];
    assert_eq!(owner.kind, "Echo");
    let labels = cm.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("k8ssandra.io/parent-name").map(String::as_str),
        Some("hello")
    );
    assert_eq!(
        labels
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("k8ssandra-operator")
    );

    // Status written through the status subresource.
    wait_for("status.configMaps = 2", Duration::from_secs(30), || async {
        let e = echoes.get("hello").await.ok()?;
        (e.data.pointer("/status/configMaps") == Some(&json!(2))).then_some(())
    })
    .await?;

    // Editing the parent updates the children; a smaller replica count prunes.
    echoes
        .patch(
            "hello",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"message": "bye", "replicas": 1}})),
        )
        .await?;
    wait_for(
        "message updated and one ConfigMap pruned",
        Duration::from_secs(30),
        || async {
            let names = echo_names(&cms).await;
            (names == ["hello-echo-0"]
                && echo_data(&cms, "hello-echo-0").await.as_deref() == Some("bye"))
            .then_some(())
        },
    )
    .await?;

    // Steady state: resyncs every second, and not a single write.
    wait_for("status settled", Duration::from_secs(30), || async {
        let e = echoes.get("hello").await.ok()?;
        (e.data.pointer("/status/configMaps") == Some(&json!(1))).then_some(())
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes_before = op.metric("k8ssandra_api_writes_all_total", "").await?;
    let reconciles_before = op
        .metric("k8ssandra_reconciles_total", "policy=\"echo\"")
        .await?;
    wait_for("three more resyncs", Duration::from_secs(30), || async {
        let now = op
            .metric("k8ssandra_reconciles_total", "policy=\"echo\"")
            .await
            .ok()?;
        (now >= reconciles_before + 3.0).then_some(())
    })
    .await?;
    let writes_after = op.metric("k8ssandra_api_writes_all_total", "").await?;
    assert_eq!(
        writes_after, writes_before,
        "an unchanged plan must cause zero writes"
    );

    // A child deleted out of band comes back.
    cms.delete("hello-echo-0", &DeleteParams::default()).await?;
    wait_for(
        "deleted ConfigMap recreated",
        Duration::from_secs(30),
        || async {
            let cm = cms.get_opt("hello-echo-0").await.ok()??;
            cm.metadata.deletion_timestamp.is_none().then_some(())
        },
    )
    .await?;

    // A trapping, a looping and an over-allocating policy fail their own reconcile, with a
    // condition and an Event naming the policy; echo keeps working meanwhile.
    let bad = dynamic_api(&client, "Misbehave", ns).await;
    for (name, behaviour, reason) in [
        ("trapper", "trap", "PolicyTrapped"),
        ("looper", "loop", "PolicyTimeout"),
        ("hog", "alloc", "PolicyMemoryExceeded"),
    ] {
        bad.create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "examples.k8ssandra.io/v1alpha1", "kind": "Misbehave",
                "metadata": {"name": name}, "spec": {"behaviour": behaviour}
            }))?,
        )
        .await?;
        let condition = wait_for(
            &format!("{reason} condition on {name}"),
            Duration::from_secs(60),
            || async {
                let o = bad.get(name).await.ok()?;
                let conds = o.data.pointer("/status/conditions")?.as_array()?.clone();
                conds
                    .into_iter()
                    .find(|c| c["type"] == "PolicyFailed" && c["reason"] == reason)
            },
        )
        .await?;
        let message = condition["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            message.contains("misbehave"),
            "condition names the policy: {message}"
        );
        let events: Api<Event> = Api::namespaced(client.clone(), ns);
        wait_for(
            &format!("{reason} event for {name}"),
            Duration::from_secs(30),
            || async {
                let list = events.list(&ListParams::default()).await.ok()?;
                list.items.into_iter().find(|e| {
                    e.involved_object.name.as_deref() == Some(name)
                        && e.reason.as_deref() == Some(reason)
                })
            },
        )
        .await?;
    }
    echoes
        .patch(
            "hello",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"message": "still here"}})),
        )
        .await?;
    wait_for(
        "echo still reconciles while misbehave fails",
        Duration::from_secs(30),
        || async {
            (echo_data(&cms, "hello-echo-0").await.as_deref() == Some("still here")).then_some(())
        },
    )
    .await?;

    // Deleting the parent prunes its children.
    echoes.delete("hello", &DeleteParams::default()).await?;
    wait_for("children pruned", Duration::from_secs(60), || async {
        echo_names(&cms).await.is_empty().then_some(())
    })
    .await?;

    let mut op = op;
    assert!(
        op.is_running(),
        "the operator survived every failing policy"
    );
    a_delete_with_a_uid_never_reaches_a_successor(&client, ns).await
}

/// The host deletes what a snapshot showed by its UID: once another object carries the
/// name, the delete is a no-op that succeeds (the object meant is gone).
async fn a_delete_with_a_uid_never_reaches_a_successor(client: &Client, ns: &str) -> Result<()> {
    use k8ssandra_host::apply::{Discovery, Writer};
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let cm = |data: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": "guarded"}, "data": {"v": data}}))
            .expect("a ConfigMap")
    };
    let first = cms.create(&PostParams::default(), &cm("first")).await?;
    cms.delete("guarded", &DeleteParams::default()).await?;
    let second = cms.create(&PostParams::default(), &cm("second")).await?;
    let writer = Writer::new(
        "test",
        k8ssandra_host::observe::Metrics::new(),
        Discovery::default(),
    );
    let delete = |uid: Option<String>| {
        let params = DeleteParams {
            preconditions: Some(kube::api::Preconditions {
                uid,
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        let writer = &writer;
        async move {
            writer
                .delete_with("local", client, "v1", "ConfigMap", ns, "guarded", &params)
                .await
        }
    };
    delete(first.metadata.uid).await?;
    let still = cms.get("guarded").await?;
    assert_eq!(
        still.metadata.uid, second.metadata.uid,
        "the successor was deleted"
    );
    delete(second.metadata.uid).await?;
    assert!(cms.get_opt("guarded").await?.is_none());
    Ok(())
}
