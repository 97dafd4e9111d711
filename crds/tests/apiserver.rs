//! The generated CRDs against a real API server (testenv): they install, `kubectl explain`
//! teaches the fields, every valid manifest is accepted, and every invalid one is rejected
//! with the expected message. This is where the CEL rules are really evaluated (cost limits,
//! transition rules, library functions), so it is the test that proves them.

use std::path::{Path, PathBuf};
use std::process::Output;

use k8ssandra_testenv::{Cluster, TestEnv, TestEnvOptions};
use serde::Deserialize;
use serde_json::Value;

fn manifests(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/manifests")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn expectations(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with('#'))
        .filter_map(|l| {
            l.strip_prefix("# expect:")
                .or_else(|| l.split_once("expected message:").map(|(_, m)| m))
        })
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `kubectl <args>` against the cluster.
fn kubectl(cluster: &Cluster, args: &[&str]) -> Output {
    cluster.kubectl().args(args).output().expect("kubectl runs")
}

/// Server-side apply of one document into `namespace` (the manifest's own namespace is
/// replaced, so files do not collide).
fn apply(cluster: &Cluster, dir: &Path, namespace: &str, doc: &Value) -> Output {
    let mut doc = doc.clone();
    doc["metadata"]["namespace"] = Value::String(namespace.to_string());
    let file = dir.join("doc.json");
    std::fs::write(&file, serde_json::to_vec(&doc).unwrap()).unwrap();
    kubectl(
        cluster,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=test",
            "-f",
            file.to_str().unwrap(),
        ],
    )
}

/// `kubectl explain <path>`, retried while the API server publishes the new types.
async fn explain(cluster: &Cluster, path: &str) -> String {
    let mut last = String::new();
    for _ in 0..60 {
        let out = kubectl(cluster, &["explain", path]);
        last = text(&out);
        if out.status.success() {
            return last;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    panic!("kubectl explain {path} kept failing: {last}");
}

/// Policies are loaded asynchronously: wait until one of them rejects a bad object, and
/// check that none of them reports a type-checking problem.
async fn wait_for_policies(cluster: &Cluster, dir: &Path) {
    let probe = serde_json::json!({
        "apiVersion": "cassandra.datastax.com/v1beta1",
        "kind": "CassandraDatacenter",
        "metadata": {"name": "probe", "annotations": {"cassandra.datastax.com/autoupdate-spec": "never"}},
        "spec": {"clusterName": "probe", "serverType": "cassandra", "serverVersion": "4.1.5",
                 "size": 1, "storageConfig": {}},
    });
    let mut enforced = false;
    for _ in 0..120 {
        let out = apply(cluster, dir, "default", &probe);
        if !out.status.success() && text(&out).contains("must be once or always") {
            enforced = true;
            break;
        }
        kubectl(
            cluster,
            &[
                "delete",
                "cassdc",
                "probe",
                "-n",
                "default",
                "--ignore-not-found",
            ],
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(enforced, "the admission policies are not enforced");
    let out = kubectl(
        cluster,
        &[
            "get",
            "validatingadmissionpolicies",
            "-o",
            "jsonpath={.items[*].status.typeChecking}",
        ],
    );
    let checks = text(&out);
    assert!(
        !checks.contains("warning"),
        "admission policies do not type-check: {checks}"
    );
}

fn create_namespace(cluster: &Cluster, name: &str) {
    let out = kubectl(cluster, &["create", "namespace", name]);
    assert!(out.status.success(), "namespace {name}: {}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn crds_install_explain_and_validate() {
    let env = TestEnv::start(TestEnvOptions {
        clusters: 1,
        nodes_per_cluster: 1,
        ..Default::default()
    })
    .await
    .expect("testenv starts");
    let cluster = env.cluster(0);
    let work = tempfile::tempdir().unwrap();

    // 1. Every CRD installs (the API server checks structure and CEL cost here).
    let crds = work.path().join("crds.yaml");
    std::fs::write(&crds, k8ssandra_api::all_crds_yaml()).unwrap();
    let out = kubectl(
        cluster,
        &["apply", "--server-side", "-f", crds.to_str().unwrap()],
    );
    assert!(out.status.success(), "CRDs rejected:\n{}", text(&out));
    // Established is reported shortly after the apply; retry while the API server catches up.
    let mut established = String::new();
    for _ in 0..120 {
        let out = kubectl(
            cluster,
            &[
                "wait",
                "--for=condition=Established",
                "crd",
                "--all",
                "--timeout=5s",
            ],
        );
        established = text(&out);
        if out.status.success() {
            established.clear();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    assert!(
        established.is_empty(),
        "CRDs not established:\n{established}"
    );

    // The admission policies for what CRD rules cannot check (annotations, free-form config).
    let policies = work.path().join("policies.yaml");
    std::fs::write(
        &policies,
        k8ssandra_api::policies::admission_policies_yaml(),
    )
    .unwrap();
    let out = kubectl(
        cluster,
        &["apply", "--server-side", "-f", policies.to_str().unwrap()],
    );
    assert!(out.status.success(), "policies rejected:\n{}", text(&out));
    wait_for_policies(cluster, work.path()).await;

    // 2. `kubectl explain` shows our descriptions (once discovery and OpenAPI publish them).
    let explained = explain(cluster, "k8c.spec.cassandra.datacenters").await;
    assert!(
        explained.contains("The datacenters of the cluster"),
        "explain does not show the field description:\n{explained}"
    );
    let explained = explain(cluster, "cassdc.spec.racks").await;
    assert!(
        explained.contains("failure domains"),
        "explain cassdc.spec.racks:\n{explained}"
    );
    // Our field embedding a Kubernetes type keeps its description; the type's fields are
    // still listed, without Kubernetes' own descriptions (left out of the CRDs for size).
    let explained = explain(cluster, "cassdc.spec.podTemplateSpec").await;
    assert!(
        explained.contains("FIELDS:") && explained.contains("spec\t<Object>"),
        "explain cassdc.spec.podTemplateSpec:\n{explained}"
    );
    let explained = explain(cluster, "k8c.spec.cassandra.datacenters.racks.affinity").await;
    assert!(
        explained.contains("nodeAffinity") && explained.contains("podAntiAffinity"),
        "explain k8c.spec.cassandra.datacenters.racks.affinity:\n{explained}"
    );

    let mut failures = Vec::new();

    // 3. Valid manifests are accepted.
    for (i, file) in manifests("valid").iter().enumerate() {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let ns = format!("valid-{i}");
        create_namespace(cluster, &ns);
        for doc in documents(file) {
            let out = apply(cluster, work.path(), &ns, &doc);
            if !out.status.success() {
                failures.push(format!("{name}: rejected: {}", text(&out).trim()));
            }
        }
    }

    // Allowed updates are accepted (the update rules must not refuse legitimate changes).
    for (i, file) in manifests("valid-updates").iter().enumerate() {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let ns = format!("update-{i}");
        create_namespace(cluster, &ns);
        for (step, doc) in documents(file).iter().enumerate() {
            let out = apply(cluster, work.path(), &ns, doc);
            if !out.status.success() {
                failures.push(format!(
                    "{name}: step {step} rejected: {}",
                    text(&out).trim()
                ));
                break;
            }
        }
    }

    // 4. Invalid manifests are rejected, with the expected message.
    for (i, file) in manifests("invalid").iter().enumerate() {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let ns = format!("invalid-{i}");
        create_namespace(cluster, &ns);
        let docs = documents(file);
        let (setup, change) = match docs.as_slice() {
            [one] => (None, one),
            [old, new] => (Some(old), new),
            _ => {
                failures.push(format!("{name}: expected one or two documents"));
                continue;
            }
        };
        if let Some(old) = setup {
            let out = apply(cluster, work.path(), &ns, old);
            if !out.status.success() {
                failures.push(format!(
                    "{name}: the object before the update is rejected: {}",
                    text(&out).trim()
                ));
                continue;
            }
        }
        let out = apply(cluster, work.path(), &ns, change);
        let msg = text(&out);
        if out.status.success() {
            failures.push(format!("{name}: accepted, but must be rejected"));
            continue;
        }
        for fragment in expectations(file) {
            if !msg.contains(&fragment) {
                failures.push(format!(
                    "{name}: rejected without {fragment:?}: {}",
                    msg.trim()
                ));
            }
        }
    }

    // 5. A rule reading the status: the size cannot change while the datacenter is scaling.
    create_namespace(cluster, "scaling");
    let dc = serde_json::json!({
        "apiVersion": "cassandra.datastax.com/v1beta1",
        "kind": "CassandraDatacenter",
        "metadata": {"name": "dc1"},
        "spec": {"clusterName": "c1", "serverType": "cassandra", "serverVersion": "4.1.5",
                 "size": 3, "storageConfig": {}},
    });
    let out = apply(cluster, work.path(), "scaling", &dc);
    assert!(out.status.success(), "{}", text(&out));
    let status = r#"{"status":{"conditions":[{"type":"ScalingUp","status":"True","reason":"","message":""}]}}"#;
    let out = kubectl(
        cluster,
        &[
            "patch",
            "cassdc",
            "dc1",
            "-n",
            "scaling",
            "--subresource=status",
            "--type=merge",
            "-p",
            status,
        ],
    );
    assert!(out.status.success(), "status patch: {}", text(&out));
    let mut resized = dc.clone();
    resized["spec"]["size"] = 4.into();
    let out = apply(cluster, work.path(), "scaling", &resized);
    if out.status.success()
        || !text(&out).contains("spec.size cannot change while the datacenter is still scaling")
    {
        failures.push(format!("resize while scaling: {}", text(&out).trim()));
    }

    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
