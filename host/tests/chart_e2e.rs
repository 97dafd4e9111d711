//! The Helm chart (`charts/k8ssandra-operator`): its CRDs are the generated ones, it lints,
//! renders in namespace and cluster mode, installs (CRDs included, with Helm's default
//! Secret storage), upgrades and uninstalls on a real API server, and the RBAC it grants is
//! enough for the real operator binary to reconcile a CassandraDatacenter.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::ListParams;
use serde_json::Value;

use k8ssandra_testenv::{TestEnv, TestEnvOptions};
use support::{Operator, apply_yaml, datacenters, plugin_dir, wait_crd, wait_for, workspace_root};

const NS: &str = "ops";
const RELEASE: &str = "k8o";

fn chart_dir() -> PathBuf {
    workspace_root().join("charts").join("k8ssandra-operator")
}

/// helm and kubectl from testenv's binaries: a missing binary fails the test.
fn bin(name: &str) -> PathBuf {
    let dir = k8ssandra_testenv::discover_bin_dir().expect("testenv binaries (helm, kubectl)");
    let path = dir.join(name);
    assert!(path.exists(), "{} missing", path.display());
    path
}

/// Runs a tool with its own HOME-like directories; fails with its output on error.
fn run(tool: &str, args: &[&str], home: &Path) -> Result<String> {
    run_with(tool, args, home, &[])
}

fn run_with(tool: &str, args: &[&str], home: &Path, env: &[(&str, &str)]) -> Result<String> {
    let out = Command::new(bin(tool))
        .args(args)
        .envs(env.iter().copied())
        // Helm's default storage (a Secret per release revision), whatever the caller's shell says.
        .env_remove("HELM_DRIVER")
        .env("HOME", home)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .with_context(|| format!("running {tool}"))?;
    if !out.status.success() {
        bail!(
            "{tool} {} failed:\n{}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `helm template` with `--set` values, parsed into its documents.
fn render(sets: &[&str]) -> Result<Vec<Value>> {
    let home = tempfile::tempdir()?;
    let chart = chart_dir();
    let mut args = vec![
        "template",
        RELEASE,
        chart.to_str().context("chart path")?,
        "--namespace",
        NS,
    ];
    for s in sets {
        args.push("--set");
        args.push(s);
    }
    let text = run("helm", &args, home.path())?;
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v: Value = serde::Deserialize::deserialize(doc)?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
}

fn kinds(docs: &[Value]) -> Vec<String> {
    let mut k: Vec<String> = docs
        .iter()
        .filter_map(|d| d["kind"].as_str().map(str::to_string))
        .collect();
    k.sort();
    k.dedup();
    k
}

fn container<'a>(deployment: &'a Value, name: &str) -> &'a Value {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .expect("operator container")
}

fn env_value<'a>(container: &'a Value, name: &str) -> Option<&'a str> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)?
        .get("value")?
        .as_str()
}

fn args(container: &Value) -> Vec<String> {
    container["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Verbs a rendered Role/ClusterRole grants on `resource` of `group`.
fn verbs(role: &Value, group: &str, resource: &str) -> Vec<String> {
    let mut out = Vec::new();
    for rule in role["rules"].as_array().into_iter().flatten() {
        let has = |key: &str, want: &str| {
            rule[key]
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v == want))
        };
        if has("apiGroups", group) && has("resources", resource) {
            out.extend(
                rule["verbs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_string)),
            );
        }
    }
    out.sort();
    out
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn chart_crds_are_the_generated_crds() -> Result<()> {
    let generated = workspace_root().join("crds").join("bases");
    let chart = chart_dir().join("crds");
    let list = |dir: &Path| -> Result<Vec<String>> {
        let mut names: Vec<String> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
            .collect();
        names.sort();
        Ok(names)
    };
    let fix = "copy them: for f in crds/bases/*.yaml; do [ \"$(basename $f)\" = kustomization.yaml ] || cp $f charts/k8ssandra-operator/crds/; done";
    assert_eq!(
        list(&chart)?,
        list(&generated)?,
        "the chart's CRD files differ from crds/bases; {fix}"
    );
    for name in list(&generated)? {
        let a = std::fs::read(generated.join(&name))?;
        let b = std::fs::read(chart.join(&name))?;
        assert!(
            a == b,
            "charts/k8ssandra-operator/crds/{name} differs from crds/bases/{name}; {fix}"
        );
    }
    Ok(())
}

#[test]
fn chart_lints() -> Result<()> {
    let home = tempfile::tempdir()?;
    let chart = chart_dir();
    let chart = chart.to_str().context("chart path")?;
    run("helm", &["lint", "--strict", chart], home.path())?;
    run(
        "helm",
        &[
            "lint",
            "--strict",
            chart,
            "--set",
            "global.clusterScoped=true",
            "--set",
            "customPolicies.configMap=my-policies",
            "--set",
            "metrics.serviceMonitor.enabled=true",
        ],
        home.path(),
    )?;
    Ok(())
}

#[test]
fn chart_renders_namespace_scoped_by_default() -> Result<()> {
    let docs = render(&[])?;
    let name = format!("{RELEASE}-k8ssandra-operator");
    assert_eq!(
        kinds(&docs),
        sorted(&[
            "Deployment",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ]),
        "no cluster-wide objects and no ServiceMonitor by default"
    );
    let role = find(&docs, "Role", &name).context("operator Role")?;
    assert_eq!(role["metadata"]["namespace"], NS);
    assert_eq!(
        verbs(role, "apps", "statefulsets"),
        sorted(&["get", "list", "watch", "create", "patch", "delete"])
    );
    // Pods are patched (seed labels) and deleted (restarts), never created.
    assert_eq!(
        verbs(role, "", "pods"),
        sorted(&["list", "watch", "patch", "delete"])
    );
    assert_eq!(
        verbs(role, "", "persistentvolumeclaims"),
        sorted(&["list", "watch", "patch", "delete"])
    );
    assert_eq!(verbs(role, "", "events"), sorted(&["create", "patch"]));
    assert!(verbs(role, "", "namespaces").is_empty());
    assert_eq!(
        verbs(
            role,
            "cassandra.datastax.com",
            "cassandradatacenters/status"
        ),
        ["patch"]
    );
    assert_eq!(
        verbs(
            role,
            "cassandra.datastax.com",
            "cassandradatacenters/finalizers"
        ),
        ["update"]
    );
    let lease = find(&docs, "Role", &format!("{name}-leader-election")).context("lease Role")?;
    assert_eq!(
        verbs(lease, "coordination.k8s.io", "leases"),
        sorted(&["get", "create", "update"])
    );

    let deployment = find(&docs, "Deployment", &name).context("Deployment")?;
    let op = container(deployment, "operator");
    assert_eq!(env_value(op, "WATCH_NAMESPACE"), Some(NS));
    assert_eq!(env_value(op, "K8SSANDRA_CONTROL_PLANE"), Some("true"));
    let a = args(op);
    assert_eq!(a[0], "run");
    assert!(
        a.contains(&"--plugin-dir=/plugins/builtin".to_string()),
        "{a:?}"
    );
    assert!(a.contains(&"--leader-elect".to_string()), "{a:?}");
    assert!(a.contains(&format!("--lease-namespace={NS}")), "{a:?}");
    assert!(a.contains(&"--cache-dir=/var/cache/k8ssandra".to_string()));
    assert_eq!(op["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
        true
    );
    assert_eq!(op["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(op["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(
        deployment["spec"]["template"]["spec"]["initContainers"].is_null(),
        "no init container without custom policies"
    );

    let svc = find(&docs, "Service", &format!("{name}-metrics")).context("metrics Service")?;
    assert_eq!(svc["spec"]["ports"][0]["name"], "metrics");
    assert_eq!(svc["spec"]["ports"][0]["port"], 8080);
    Ok(())
}

#[test]
fn chart_renders_cluster_scoped_with_custom_policies() -> Result<()> {
    let docs = render(&[
        "global.clusterScoped=true",
        "controlPlane=false",
        "customPolicies.configMap=my-policies",
        "metrics.serviceMonitor.enabled=true",
    ])?;
    let name = format!("{RELEASE}-k8ssandra-operator");
    let ks = kinds(&docs);
    for k in ["ClusterRole", "ClusterRoleBinding", "ServiceMonitor"] {
        assert!(ks.contains(&k.to_string()), "{k} missing: {ks:?}");
    }
    let role = find(&docs, "ClusterRole", &name).context("ClusterRole")?;
    assert_eq!(verbs(role, "", "namespaces"), ["get"]);
    assert!(
        verbs(role, "", "secrets").iter().all(|v| v != "watch"),
        "a data-plane operator does not watch Secrets"
    );
    // The lease stays namespaced even in cluster mode.
    assert!(find(&docs, "Role", &format!("{name}-leader-election")).is_some());

    let deployment = find(&docs, "Deployment", &name).context("Deployment")?;
    let op = container(deployment, "operator");
    assert_eq!(env_value(op, "WATCH_NAMESPACE"), None);
    assert_eq!(env_value(op, "K8SSANDRA_CONTROL_PLANE"), Some("false"));
    assert!(args(op).contains(&"--plugin-dir=/plugins/active".to_string()));
    let spec = &deployment["spec"]["template"]["spec"];
    let init = &spec["initContainers"][0];
    assert_eq!(init["name"], "install-policies");
    let volumes = spec["volumes"].as_array().context("volumes")?;
    assert!(
        volumes
            .iter()
            .any(|v| v["name"] == "custom-policies" && v["configMap"]["name"] == "my-policies"),
        "{volumes:?}"
    );

    // A volume source instead of a ConfigMap.
    let docs = render(&["customPolicies.volume.persistentVolumeClaim.claimName=policies"])?;
    let deployment = find(&docs, "Deployment", &name).context("Deployment")?;
    let volumes = deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .context("volumes")?;
    assert!(
        volumes.iter().any(|v| v["name"] == "custom-policies"
            && v["persistentVolumeClaim"]["claimName"] == "policies")
    );
    Ok(())
}

/// A kubeconfig for the testenv cluster that authenticates with a bearer token.
fn token_kubeconfig(admin_yaml: &str, token: &str) -> Result<String> {
    let admin: Value = serde_yaml::from_str(admin_yaml)?;
    let cluster = admin["clusters"][0].clone();
    let name = cluster["name"]
        .as_str()
        .context("cluster name")?
        .to_string();
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": name,
        "clusters": [cluster],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": "sa", "namespace": NS}}],
    });
    Ok(serde_yaml::to_string(&doc)?)
}

const DC: &str = r#"
apiVersion: cassandra.datastax.com/v1beta1
kind: CassandraDatacenter
metadata:
  name: dc1
  namespace: ops
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

/// Names of the CustomResourceDefinitions served and `Established`.
async fn established_crds(crds: &Api<CustomResourceDefinition>) -> Result<Vec<String>> {
    let mut names: Vec<String> = crds
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|crd| {
            crd.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                })
        })
        .filter_map(|crd| crd.metadata.name)
        .collect();
    names.sort();
    Ok(names)
}

/// The release's revisions as Helm's default storage keeps them: one Secret each.
async fn release_secrets(secrets: &Api<Secret>) -> Result<Vec<Secret>> {
    Ok(secrets
        .list(&ListParams::default().labels(&format!("owner=helm,name={RELEASE}")))
        .await?
        .items)
}

/// The chart as shipped, CRDs included, through Helm's default storage driver: each release
/// revision (the chart, its CRD files included) is kept in a Secret, which the API server
/// caps at 1 MiB. Install, upgrade, uninstall; the CRDs stay after the uninstall (Helm never
/// deletes what `crds/` installed, as that would delete every custom resource with them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_with_its_crds_installs_upgrades_and_uninstalls_with_helms_default_storage()
-> Result<()> {
    let env = TestEnv::start(TestEnvOptions {
        clusters: 1,
        ..Default::default()
    })
    .await?;
    let home = tempfile::tempdir()?;
    let kc = env.cluster(0).kubeconfig_path().to_path_buf();
    let kc = kc.to_str().context("kubeconfig path")?;
    let chart = chart_dir();
    let chart = chart.to_str().context("chart path")?;
    let client = env.cluster(0).client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let mut ours: Vec<String> = k8ssandra_api::all_crds()
        .into_iter()
        .filter_map(|crd| crd.metadata.name)
        .collect();
    ours.sort();
    assert!(
        established_crds(&crds).await?.is_empty(),
        "a fresh cluster has no CRDs"
    );

    let installed = run(
        "helm",
        &[
            "install",
            RELEASE,
            chart,
            "--kubeconfig",
            kc,
            "--namespace",
            NS,
            "--create-namespace",
            "-o",
            "json",
        ],
        home.path(),
    )?;
    let status: Value = serde_json::from_str(&installed)?;
    assert_eq!(status["info"]["status"], "deployed", "{status}");
    assert_eq!(status["version"], 1);
    let stored = release_secrets(&secrets).await?;
    assert_eq!(stored.len(), 1, "one release Secret after the install");
    let size = stored[0]
        .data
        .as_ref()
        .and_then(|d| d.get("release"))
        .map(|b| b.0.len())
        .context("the release Secret holds the release")?;
    assert!(size < 1 << 20, "release Secret of {size} bytes");
    // Helm waits for its CRDs to be established before installing the templates; check it.
    wait_for(
        "every CRD of the chart established",
        Duration::from_secs(60),
        || async { (established_crds(&crds).await.ok()? == ours).then_some(()) },
    )
    .await?;
    let name = format!("{RELEASE}-k8ssandra-operator");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    deployments
        .get(&name)
        .await
        .context("Deployment installed")?;

    // An upgrade of the same release, with a changed value.
    let upgraded = run(
        "helm",
        &[
            "upgrade",
            RELEASE,
            chart,
            "--kubeconfig",
            kc,
            "--namespace",
            NS,
            "--set",
            "metrics.port=9090",
            "-o",
            "json",
        ],
        home.path(),
    )?;
    let status: Value = serde_json::from_str(&upgraded)?;
    assert_eq!(status["info"]["status"], "deployed", "{status}");
    assert_eq!(status["version"], 2);
    let svc = Api::<Service>::namespaced(client.clone(), NS)
        .get(&format!("{name}-metrics"))
        .await?;
    let port = svc
        .spec
        .and_then(|s| s.ports)
        .and_then(|p| p.first().map(|p| p.port));
    assert_eq!(port, Some(9090), "the upgrade applied the new value");
    assert_eq!(
        release_secrets(&secrets).await?.len(),
        2,
        "one per revision"
    );

    // Uninstall: the release and its objects go, the CRDs stay.
    run(
        "helm",
        &["uninstall", RELEASE, "--kubeconfig", kc, "--namespace", NS],
        home.path(),
    )?;
    wait_for(
        "the Deployment deleted",
        Duration::from_secs(30),
        || async {
            deployments
                .get_opt(&name)
                .await
                .ok()?
                .is_none()
                .then_some(())
        },
    )
    .await?;
    assert!(
        release_secrets(&secrets).await?.is_empty(),
        "helm uninstall removes the release Secrets"
    );
    assert_eq!(
        established_crds(&crds).await?,
        ours,
        "helm uninstall keeps the CRDs installed from crds/"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_installs_and_its_rbac_is_enough_for_the_operator() -> Result<()> {
    let env = TestEnv::start(TestEnvOptions {
        clusters: 1,
        ..Default::default()
    })
    .await?;
    let tmp = tempfile::tempdir()?;
    let home = tmp.path().join("home");
    let admin_kubeconfig = env.cluster(0).kubeconfig_path().to_path_buf();
    let kc = admin_kubeconfig.to_str().context("kubeconfig path")?;
    // A real `helm install` of the chart, its CRDs included.
    let client = env.cluster(0).client();
    let chart = chart_dir();
    let chart = chart.to_str().context("chart path")?;
    let installed = run(
        "helm",
        &[
            "install",
            RELEASE,
            chart,
            "--kubeconfig",
            kc,
            "--namespace",
            NS,
            "--create-namespace",
            "-o",
            "json",
        ],
        &home,
    )?;
    let status: Value = serde_json::from_str(&installed)?;
    assert_eq!(status["info"]["status"], "deployed", "{status}");

    let name = format!("{RELEASE}-k8ssandra-operator");
    Api::<Deployment>::namespaced(client.clone(), NS)
        .get(&name)
        .await
        .context("Deployment installed")?;
    Api::<ServiceAccount>::namespaced(client.clone(), NS)
        .get(&name)
        .await
        .context("ServiceAccount installed")?;
    Api::<Role>::namespaced(client.clone(), NS)
        .get(&name)
        .await
        .context("Role installed")?;
    Api::<RoleBinding>::namespaced(client.clone(), NS)
        .get(&name)
        .await
        .context("RoleBinding installed")?;
    Api::<Service>::namespaced(client.clone(), NS)
        .get(&format!("{name}-metrics"))
        .await
        .context("metrics Service installed")?;
    wait_crd(
        &client,
        "cassandra.datastax.com",
        "v1beta1",
        "CassandraDatacenter",
    )
    .await?;

    // The operator, as the chart's ServiceAccount, with the chart's arguments.
    let token = run(
        "kubectl",
        &[
            "--kubeconfig",
            kc,
            "create",
            "token",
            &name,
            "-n",
            NS,
            "--duration",
            "1h",
        ],
        &home,
    )?;
    let sa_kubeconfig = tmp.path().join("sa.kubeconfig");
    std::fs::write(
        &sa_kubeconfig,
        token_kubeconfig(env.cluster(0).kubeconfig_yaml(), token.trim())?,
    )?;
    let plugins = plugin_dir(&tmp.path().join("plugins"), &["cassandra-datacenter"])?;
    let op = Operator::start(
        &sa_kubeconfig,
        &plugins,
        &[
            "--namespace",
            NS,
            "--leader-elect",
            "--lease-namespace",
            NS,
            "--resync-seconds",
            "2",
        ],
    )?;
    op.wait_ready(Duration::from_secs(60)).await?;

    apply_yaml(&client, DC, NS).await?;
    let stss: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    wait_for("two StatefulSets", Duration::from_secs(60), || async {
        let n = stss.list(&ListParams::default()).await.ok()?.items.len();
        (n == 2).then_some(())
    })
    .await
    .map_err(|e| e.context(op.log_text()))?;
    let services: Api<Service> = Api::namespaced(client.clone(), NS);
    wait_for(
        "the datacenter's Services",
        Duration::from_secs(30),
        || async {
            let list = services
                .list(
                    &ListParams::default()
                        .labels("app.kubernetes.io/managed-by=k8ssandra-operator"),
                )
                .await
                .ok()?;
            (!list.items.is_empty()).then_some(())
        },
    )
    .await
    .map_err(|e| e.context(op.log_text()))?;
    let dcs = datacenters(&client, NS).await?;
    wait_for("status written", Duration::from_secs(30), || async {
        let dc = dcs.get("dc1").await.ok()?;
        dc.data
            .get("status")
            .and_then(Value::as_object)
            .is_some_and(|s| !s.is_empty())
            .then_some(())
    })
    .await
    .map_err(|e| e.context(op.log_text()))?;
    // Let a few resyncs and the leader's renewals run, then look for refusals.
    let reconciles = op
        .metric("k8ssandra_reconciles_total", "cassandra-datacenter")
        .await?;
    wait_for("two more reconciles", Duration::from_secs(30), || async {
        let now = op
            .metric("k8ssandra_reconciles_total", "cassandra-datacenter")
            .await
            .ok()?;
        (now >= reconciles + 2.0).then_some(())
    })
    .await?;
    let log = op.log_text();
    assert!(
        !log.to_lowercase().contains("forbidden"),
        "the operator was refused something with the chart's RBAC:\n{log}"
    );
    Ok(())
}
