//! Issue #17's ClientConfig and ReplicatedSecret promises, with the real operator binary and
//! two testenv clusters:
//! - a ClientConfig whose kubeconfig has an `exec` plugin (or a file reference) is refused
//!   with a condition naming the field, its program never runs, and a valid ClientConfig
//!   next to it works;
//! - a ReplicatedSecret never overwrites a Secret it did not create, and deletes the copies
//!   it made (only those) when a target or the ReplicatedSecret goes, unless told to keep
//!   them.

use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{DeleteParams, DynamicObject, ListParams, ObjectMeta};
use kube::{Api, Client};
use serde_json::json;

use k8ssandra_testenv::{TestEnv, TestEnvOptions};
use support::{
    Operator, add_client_config, apply_yaml, create_namespace, dynamic_api, policy_wasm, wait_crd,
    wait_for, write_kubeconfig,
};

/// `kubeconfig` with its (only) user's credentials replaced by `user`.
fn with_user(kubeconfig: &str, user: serde_json::Value) -> Result<String> {
    let mut doc: serde_json::Value = serde_yaml::from_str(kubeconfig)?;
    let users = doc["users"].as_array_mut().context("kubeconfig users")?;
    for u in users {
        u["user"] = user.clone();
    }
    Ok(serde_yaml::to_string(&doc)?)
}

/// (status, reason, message) of a ClientConfig's Ready condition.
async fn ready_of(ccs: &Api<DynamicObject>, name: &str) -> Option<(String, String, String)> {
    let cc = ccs.get(name).await.ok()?;
    let conds = cc.data["status"]["conditions"].as_array()?.clone();
    let c = conds.iter().find(|c| c["type"] == "Ready")?;
    Some((
        c["status"].as_str()?.to_string(),
        c["reason"].as_str()?.to_string(),
        c["message"].as_str()?.to_string(),
    ))
}

async fn secret(client: &Client, ns: &str, name: &str) -> Option<Secret> {
    Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .ok()
        .flatten()
}

fn secret_with(name: &str, labels: &[(&str, &str)], value: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "password".to_string(),
            ByteString(value.as_bytes().to_vec()),
        )])),
        ..Default::default()
    }
}

fn value_of(s: &Secret) -> Vec<u8> {
    s.data
        .as_ref()
        .and_then(|d| d.get("password"))
        .map(|b| b.0.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_kubeconfigs_and_replicated_secret_ownership() -> Result<()> {
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
    wait_crd(
        &control,
        "replication.k8ssandra.io",
        "v1alpha1",
        "ReplicatedSecret",
    )
    .await?;
    let ns = "sec";
    create_namespace(&control, ns).await?;
    create_namespace(&remote, ns).await?;
    create_namespace(&remote, "sec2").await?;

    let plugins = tmp.path().join("plugins");
    std::fs::create_dir_all(&plugins)?;
    std::fs::copy(&echo, plugins.join("echo.wasm"))?;
    let mut op = Operator::start(&kubeconfig, &plugins, &["--resync-seconds", "2"])?;
    op.wait_ready(Duration::from_secs(60)).await?;

    // --- ClientConfigs -------------------------------------------------------------------
    let remote_kubeconfig = env.cluster(1).kubeconfig_yaml().to_string();
    let marker = tmp.path().join("exec-ran");
    let exec_kubeconfig = with_user(
        &remote_kubeconfig,
        json!({"exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": "/bin/sh",
            "args": ["-c", format!("touch {}; echo '{{}}'", marker.display())],
            "interactiveMode": "Never",
        }}),
    )?;
    let file_kubeconfig = with_user(&remote_kubeconfig, json!({"tokenFile": "/etc/hostname"}))?;
    add_client_config(&control, ns, "bad-exec", "bad-exec-kc", &exec_kubeconfig).await?;
    add_client_config(&control, ns, "bad-file", "bad-file-kc", &file_kubeconfig).await?;
    add_client_config(&control, ns, "good", "good-kc", &remote_kubeconfig).await?;

    let ccs = dynamic_api(
        &control,
        ns,
        "config.k8ssandra.io",
        "v1beta1",
        "ClientConfig",
    )
    .await?;
    let refused = wait_for("exec ClientConfig refused", Duration::from_secs(60), || {
        let ccs = ccs.clone();
        async move { ready_of(&ccs, "bad-exec").await.filter(|r| r.0 == "False") }
    })
    .await?;
    assert_eq!(refused.1, "KubeconfigRefused", "{refused:?}");
    assert!(
        refused.2.contains(".user.exec") && refused.2.contains("--allow-kubeconfig-exec"),
        "the message names the field and the way out: {}",
        refused.2
    );
    let refused = wait_for(
        "tokenFile ClientConfig refused",
        Duration::from_secs(60),
        || {
            let ccs = ccs.clone();
            async move { ready_of(&ccs, "bad-file").await.filter(|r| r.0 == "False") }
        },
    )
    .await?;
    assert_eq!(refused.1, "KubeconfigRefused", "{refused:?}");
    assert!(refused.2.contains(".user.tokenFile"), "{}", refused.2);
    let good = wait_for("valid ClientConfig Ready", Duration::from_secs(60), || {
        let ccs = ccs.clone();
        async move { ready_of(&ccs, "good").await.filter(|r| r.0 == "True") }
    })
    .await?;
    assert_eq!(good.1, "ClusterConfigured");

    // The valid cluster is used; the refused contexts are not clusters of the operator.
    let echoes = dynamic_api(&control, ns, "examples.k8ssandra.io", "v1alpha1", "Echo").await?;
    for (name, cluster) in [("far", "good"), ("refused", "bad-exec")] {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "examples.k8ssandra.io/v1alpha1", "kind": "Echo",
            "metadata": {"name": name},
            "spec": {"message": "hi", "replicas": 1, "cluster": cluster}
        }))?;
        echoes.create(&Default::default(), &obj).await?;
    }
    let remote_cms: Api<ConfigMap> = Api::namespaced(remote.clone(), ns);
    wait_for(
        "echo through the valid ClientConfig",
        Duration::from_secs(60),
        || async {
            remote_cms
                .get_opt("far-echo-0")
                .await
                .ok()
                .flatten()
                .map(|_| ())
        },
    )
    .await?;
    assert!(
        remote_cms.get_opt("refused-echo-0").await?.is_none(),
        "nothing reaches a cluster through a refused kubeconfig"
    );
    assert!(
        !marker.exists(),
        "the exec plugin of a refused kubeconfig never ran"
    );
    let log = op.log_text();
    assert!(
        !log.lines()
            .any(|l| l.contains("cluster client configured") && l.contains("bad-")),
        "refused ClientConfigs are not added"
    );

    // --- ReplicatedSecret -----------------------------------------------------------------
    let local_secrets: Api<Secret> = Api::namespaced(control.clone(), ns);
    for s in [
        secret_with("app-creds", &[("replicate", "yes")], "s3cret"),
        secret_with("app-other", &[("replicate", "yes")], "theirs-not"),
    ] {
        local_secrets.create(&Default::default(), &s).await?;
    }
    // A Secret of the same name that someone else made in the target.
    Api::<Secret>::namespaced(remote.clone(), ns)
        .create(
            &Default::default(),
            &secret_with("app-other", &[("owner", "someone")], "mine"),
        )
        .await?;
    let rs_yaml = |targets: serde_json::Value, keep: bool| {
        json!({
            "apiVersion": "replication.k8ssandra.io/v1alpha1", "kind": "ReplicatedSecret",
            "metadata": {"name": "creds", "namespace": ns},
            "spec": {
                "selector": {"matchLabels": {"replicate": "yes"}},
                "replicationTargets": targets,
                "keepCopies": keep,
            }
        })
        .to_string()
    };
    let both = json!([{"k8sContextName": "good"}, {"k8sContextName": "good", "namespace": "sec2"}]);
    apply_yaml(&control, &rs_yaml(both, false), ns).await?;
    wait_for(
        "copies in both namespaces",
        Duration::from_secs(60),
        || async {
            let a = secret(&remote, ns, "app-creds").await?;
            let b = secret(&remote, "sec2", "app-creds").await?;
            let c = secret(&remote, "sec2", "app-other").await?;
            (value_of(&a) == b"s3cret"
                && value_of(&b) == b"s3cret"
                && value_of(&c) == b"theirs-not")
                .then_some(())
        },
    )
    .await?;
    let rss = dynamic_api(
        &control,
        ns,
        "replication.k8ssandra.io",
        "v1alpha1",
        "ReplicatedSecret",
    )
    .await?;
    let message = wait_for(
        "a condition on the Secret in the way",
        Duration::from_secs(60),
        || async {
            let rs = rss.get("creds").await.ok()?;
            rs.data["status"]["conditions"]
                .as_array()?
                .iter()
                .filter(|c| c["status"] == "False")
                .find_map(|c| c["message"].as_str().map(str::to_string))
        },
    )
    .await?;
    assert!(
        message.contains("sec/app-other") && message.contains("not overwritten"),
        "{message}"
    );
    let foreign = secret(&remote, ns, "app-other").await.context("foreign")?;
    assert_eq!(value_of(&foreign), b"mine", "never overwritten");
    assert!(
        !foreign
            .metadata
            .labels
            .unwrap_or_default()
            .contains_key("k8ssandra.io/replicated-by"),
        "the foreign Secret was not relabelled"
    );

    // Removing a target deletes the copies made there, and only those.
    let first = json!([{"k8sContextName": "good"}]);
    apply_yaml(&control, &rs_yaml(first, false), ns).await?;
    wait_for(
        "copies of the removed target deleted",
        Duration::from_secs(60),
        || async {
            let gone = secret(&remote, "sec2", "app-creds").await.is_none()
                && secret(&remote, "sec2", "app-other").await.is_none();
            gone.then_some(())
        },
    )
    .await?;
    assert!(secret(&remote, ns, "app-creds").await.is_some());
    assert_eq!(
        value_of(&secret(&remote, ns, "app-other").await.context("foreign")?),
        b"mine"
    );

    // Deleting the ReplicatedSecret deletes its remaining copy, never the foreign Secret
    // nor the sources.
    let rs_api = rss.clone();
    rs_api.delete("creds", &DeleteParams::default()).await?;
    wait_for(
        "ReplicatedSecret and its copy gone",
        Duration::from_secs(60),
        || async {
            (rs_api.get_opt("creds").await.ok()?.is_none()
                && secret(&remote, ns, "app-creds").await.is_none())
            .then_some(())
        },
    )
    .await?;
    assert_eq!(
        value_of(&secret(&remote, ns, "app-other").await.context("foreign")?),
        b"mine"
    );
    assert_eq!(
        local_secrets
            .list(&ListParams::default().labels("replicate=yes"))
            .await?
            .items
            .len(),
        2,
        "sources stay"
    );

    // keepCopies: the copies outlive the ReplicatedSecret.
    let second = json!([{"k8sContextName": "good", "namespace": "sec2"}]);
    apply_yaml(&control, &rs_yaml(second, true), ns).await?;
    wait_for("kept copies made", Duration::from_secs(60), || async {
        secret(&remote, "sec2", "app-creds").await.map(|_| ())
    })
    .await?;
    rs_api.delete("creds", &DeleteParams::default()).await?;
    wait_for(
        "ReplicatedSecret with keepCopies gone",
        Duration::from_secs(60),
        || async { rs_api.get_opt("creds").await.ok()?.is_none().then_some(()) },
    )
    .await?;
    assert!(
        secret(&remote, "sec2", "app-creds").await.is_some(),
        "keepCopies keeps them"
    );
    assert!(op.is_running());
    Ok(())
}

/// `--control-plane=false`: the K8ssandraCluster and K8ssandraTask policies are loaded but
/// get no controller; the data-plane kinds are reconciled as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_plane_mode_runs_no_control_plane_controller() -> Result<()> {
    let env = TestEnv::start(TestEnvOptions {
        clusters: 1,
        nodes_per_cluster: 1,
        ..Default::default()
    })
    .await?;
    let client = env.cluster(0).client();
    support::install_crds(&client, &k8ssandra_api::all_crds_yaml()).await?;
    let ns = "dp";
    create_namespace(&client, ns).await?;
    let tmp = tempfile::tempdir()?;
    let kubeconfig = write_kubeconfig(tmp.path(), env.cluster(0))?;
    let plugins = support::plugin_dir(
        &tmp.path().join("plugins"),
        &[
            "cassandra-datacenter",
            "k8ssandra-cluster",
            "k8ssandra-task",
        ],
    )?;
    // Present before the operator starts: a controller for it would reconcile it at once.
    apply_yaml(
        &client,
        &format!(
            r#"
apiVersion: k8ssandra.io/v1alpha1
kind: K8ssandraCluster
metadata:
  name: kc
  namespace: {ns}
spec:
  cassandra:
    serverVersion: "4.1.5"
    storageConfig:
      cassandraDataVolumeClaimSpec:
        storageClassName: standard
        accessModes: [ReadWriteOnce]
        resources: {{requests: {{storage: 1Gi}}}}
    datacenters:
      - metadata:
          name: kcdc
        size: 1
"#
        ),
        ns,
    )
    .await?;
    let op = Operator::start(
        &kubeconfig,
        &plugins,
        &["--control-plane=false", "--resync-seconds", "2"],
    )?;
    op.wait_ready(Duration::from_secs(120)).await?;

    // A data-plane kind is reconciled: its StatefulSet appears.
    apply_yaml(
        &client,
        &format!(
            r#"
apiVersion: cassandra.datastax.com/v1beta1
kind: CassandraDatacenter
metadata:
  name: dc1
  namespace: {ns}
spec:
  clusterName: plain
  serverType: cassandra
  serverVersion: "4.1.5"
  size: 1
  racks:
    - name: r1
  storageConfig:
    cassandraDataVolumeClaimSpec:
      storageClassName: standard
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 1Gi
"#
        ),
        ns,
    )
    .await?;
    let stss: Api<k8s_openapi::api::apps::v1::StatefulSet> = Api::namespaced(client.clone(), ns);
    wait_for("dc1's StatefulSet", Duration::from_secs(60), || async {
        stss.get_opt("plain-dc1-r1-sts").await.ok().flatten()
    })
    .await
    .map_err(|e| e.context(support::tail(&op.log_text(), 30)))?;

    // The K8ssandraCluster, there all along, was never reconciled.
    let log = op.log_text();
    let started: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("starting controller"))
        .collect();
    assert!(
        started.iter().any(|l| l.contains("cassandra-datacenter")),
        "{started:?}"
    );
    assert!(
        !started
            .iter()
            .any(|l| l.contains("k8ssandra-cluster") || l.contains("k8ssandra-task")),
        "no control-plane controller in data-plane mode: {started:?}"
    );
    let skipped: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("no controller for a control-plane kind"))
        .collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    let kcs = dynamic_api(&client, ns, "k8ssandra.io", "v1alpha1", "K8ssandraCluster").await?;
    let kc = kcs.get("kc").await?;
    assert!(
        kc.data.get("status").is_none_or(|s| s.is_null()),
        "the K8ssandraCluster has no status: {:?}",
        kc.data.get("status")
    );
    let dcs = support::datacenters(&client, ns).await?;
    let names: Vec<String> = dcs
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|d| d.metadata.name)
        .collect();
    assert_eq!(
        names,
        vec!["dc1".to_string()],
        "no datacenter from the K8ssandraCluster"
    );
    Ok(())
}
