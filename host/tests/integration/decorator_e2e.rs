//! Decorator policies end to end, and the two ways of building a policy.
//!
//! The real operator runs the cassandra-datacenter policy against a testenv cluster; dropping
//! the org-labels decorator into its plugin directory labels the datacenter's objects without
//! a restart, and removing it takes the labels away again.

use crate::support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::Api;
use kube::api::ListParams;

use k8ssandra_testenv::{TestEnv, TestEnvOptions};
use support::{
    Operator, apply_yaml, create_namespace, install_crds, plugin_dir, policy_wasm, wait_for,
    workspace_root, write_kubeconfig,
};

const NS: &str = "deco";
const TEAM: &str = "example.com/team";
const COST: &str = "example.com/cost-center";

const DC: &str = r#"
apiVersion: cassandra.datastax.com/v1beta1
kind: CassandraDatacenter
metadata:
  name: dc1
  namespace: deco
  annotations:
    example.com/team: storage
spec:
  clusterName: demo
  serverType: cassandra
  serverVersion: "4.1.5"
  size: 2
  racks:
    - name: r1
      zone: zone-a
    - name: r2
      zone: zone-b
  storageConfig:
    cassandraDataVolumeClaimSpec:
      storageClassName: standard
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 1Gi
"#;

/// (object labels, pod template labels) of every StatefulSet in the namespace.
type Labels = Vec<(BTreeMap<String, String>, BTreeMap<String, String>)>;

async fn sts_labels(stss: &Api<StatefulSet>) -> Option<Labels> {
    let list = stss.list(&ListParams::default()).await.ok()?;
    if list.items.len() != 2 {
        return None;
    }
    Some(
        list.items
            .into_iter()
            .map(|s| {
                let template = s
                    .spec
                    .and_then(|spec| spec.template.metadata)
                    .and_then(|m| m.labels)
                    .unwrap_or_default();
                (s.metadata.labels.unwrap_or_default(), template)
            })
            .collect(),
    )
}

fn decorated(labels: &Labels) -> bool {
    labels.iter().all(|(obj, tpl)| {
        obj.get(TEAM).map(String::as_str) == Some("storage")
            && obj.get(COST).map(String::as_str) == Some("cc-1234")
            && tpl.get(TEAM).map(String::as_str) == Some("storage")
            && tpl.get(COST).map(String::as_str) == Some("cc-1234")
    })
}

fn undecorated(labels: &Labels) -> bool {
    labels.iter().all(|(obj, tpl)| {
        !obj.contains_key(TEAM)
            && !obj.contains_key(COST)
            && !tpl.contains_key(TEAM)
            && !tpl.contains_key(COST)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decorator_labels_come_and_go_without_a_restart() -> Result<()> {
    let env = TestEnv::start(TestEnvOptions {
        clusters: 1,
        ..Default::default()
    })
    .await?;
    let tmp = tempfile::tempdir()?;
    let client = env.cluster(0).client();
    install_crds(&client, &k8ssandra_api::all_crds_yaml()).await?;
    create_namespace(&client, NS).await?;
    let kubeconfig = write_kubeconfig(tmp.path(), env.cluster(0))?;
    let plugins = plugin_dir(&tmp.path().join("plugins"), &["cassandra-datacenter"])?;
    let decorator = policy_wasm("org-labels-policy");
    let mut op = Operator::start(&kubeconfig, &plugins, &["--resync-seconds", "2"])?;
    op.wait_ready(Duration::from_secs(60)).await?;
    let pid = op.pid();

    apply_yaml(&client, DC, NS).await?;
    let stss: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    let before = wait_for("two StatefulSets", Duration::from_secs(60), || async {
        sts_labels(&stss).await
    })
    .await
    .map_err(|e| e.context(op.log_text()))?;
    assert!(undecorated(&before), "{before:?}");

    // Drop the decorator in (written under a hidden name, then renamed, as a deploy would).
    let hidden = plugins.join(".org-labels.wasm.tmp");
    std::fs::copy(&decorator, &hidden)?;
    std::fs::rename(&hidden, plugins.join("org-labels.wasm"))?;
    wait_for(
        "organisation labels on the StatefulSets and their pod templates",
        Duration::from_secs(60),
        || async { sts_labels(&stss).await.filter(decorated) },
    )
    .await
    .map_err(|e| e.context(op.log_text()))?;
    assert!(op.is_running(), "the operator kept running");
    assert_eq!(op.pid(), pid, "same process");

    // Take it away: the base policy's plan no longer has the labels, and server-side apply
    // with its field manager removes them.
    std::fs::remove_file(plugins.join("org-labels.wasm"))?;
    wait_for(
        "organisation labels removed",
        Duration::from_secs(60),
        || async { sts_labels(&stss).await.filter(undecorated) },
    )
    .await
    .map_err(|e| e.context(op.log_text()))?;
    assert!(op.is_running(), "the operator kept running");
    assert_eq!(op.pid(), pid, "same process");
    Ok(())
}

/// Runs cargo (or a cargo subcommand) in the workspace; fails with its output.
fn cargo(args: &[&str]) -> Result<()> {
    let out = Command::new(env!("CARGO"))
        .current_dir(workspace_root())
        .args(args)
        .output()
        .with_context(|| format!("running cargo {}", args.join(" ")))?;
    anyhow::ensure!(
        out.status.success(),
        "cargo {} failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn target_dir() -> std::path::PathBuf {
    std::env::var("CARGO_TARGET_DIR")
        .map(Into::into)
        .unwrap_or_else(|_| workspace_root().join("target"))
}

/// A file that starts with the component-model preamble (not a core module).
fn is_component(path: &Path) -> Result<bool> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    // Magic, then version 0x0d and layer 0x01 for components (core modules are 1, 0).
    Ok(bytes.len() > 8 && &bytes[..4] == b"\0asm" && bytes[6..8] == [0x01, 0x00])
}

#[test]
fn examples_build_with_cargo_component_and_plain_cargo() -> Result<()> {
    let has_cargo_component = Command::new("cargo-component")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        has_cargo_component,
        "cargo-component is not on PATH: run scripts/install-cargo-component.sh"
    );
    for (package, file) in [
        ("policy-template", "policy_template.wasm"),
        ("org-labels-policy", "org_labels_policy.wasm"),
    ] {
        cargo(&["build", "-q", "--target", "wasm32-wasip2", "-p", package])?;
        let plain = target_dir().join("wasm32-wasip2").join("debug").join(file);
        assert!(is_component(&plain)?, "{} is a component", plain.display());

        cargo(&["component", "build", "-q", "--release", "-p", package])?;
        let built = target_dir()
            .join("wasm32-wasip1")
            .join("release")
            .join(file);
        let built = if built.exists() {
            built
        } else {
            target_dir()
                .join("wasm32-wasip2")
                .join("release")
                .join(file)
        };
        assert!(is_component(&built)?, "{} is a component", built.display());
        // The host loads what cargo-component built.
        let out = Command::new(env!("CARGO_BIN_EXE_k8ssandra-operator"))
            .args(["plugin", "inspect"])
            .arg(&built)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "plugin inspect {}: {}",
            built.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
