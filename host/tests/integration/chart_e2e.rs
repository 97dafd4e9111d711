//! The Helm chart (`charts/k8ssandra-operator`): its CRDs are the generated ones, it lints,
//! renders in namespace and cluster mode, installs (CRDs included, with Helm's default
//! Secret storage), upgrades and uninstalls on a real API server; its admission objects are
//! the generated ones; the RBAC it grants is no broader than needed (rendered) and enough
//! for the real operator binary to run every built-in policy to completion (Reaper, repair
//! schedules, Medusa backups, tasks, configurations and schedules, scheduled tasks too),
//! namespace- and cluster-scoped, in control-plane and data-plane mode (no `forbidden` in
//! its log).

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use cassandra_sim::{SimOptions, Simulator};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{DynamicObject, ListParams};
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
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
            "ValidatingWebhookConfiguration",
        ]),
        "no ServiceMonitor by default; cluster-wide only the admission objects and the webhook's caBundle rule"
    );
    let cluster_roles: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "ClusterRole").collect();
    assert_eq!(cluster_roles.len(), 1);
    assert_eq!(
        cluster_roles[0]["metadata"]["name"],
        format!("{name}-webhook")
    );
    let role = find(&docs, "Role", &name).context("operator Role")?;
    assert_eq!(role["metadata"]["namespace"], NS);
    assert_eq!(
        verbs(role, "apps", "statefulsets"),
        sorted(&["get", "list", "watch", "create", "patch", "delete"])
    );
    // Pods are read by name (targets of Medusa, Reaper and CQL operations), patched (seed
    // labels) and deleted (restarts), never created.
    assert_eq!(
        verbs(role, "", "pods"),
        sorted(&["get", "list", "watch", "patch", "delete"])
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
    assert_eq!(
        verbs(role, "", "secrets"),
        sorted(&["get", "list", "watch", "create", "patch"]),
        "a data-plane operator deletes no Secrets (it makes no ReplicatedSecret copies)"
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
async fn chart_installs_and_its_rbac_is_enough_for_every_policy() -> Result<()> {
    // cluster-0: the chart namespace-scoped; cluster-1: cluster-scoped, its workloads in
    // another namespace than the release. Each runs control-plane mode (every built-in
    // policy: K8ssandraCluster → CassandraDatacenter, K8ssandraTask → CassandraTask,
    // ClientConfig and ReplicatedSecret controllers), then data-plane mode after a
    // `helm upgrade` (CassandraDatacenter and CassandraTask only, the narrower Secret
    // rule), all as the chart's ServiceAccount.
    let env = TestEnv::start(TestEnvOptions {
        clusters: 2,
        nodes_per_cluster: 3,
        ..Default::default()
    })
    .await?;
    let mut opts = SimOptions::default();
    opts.config.bootstrap_delay = Duration::from_millis(200);
    opts.config.job_duration = Duration::from_millis(200);
    let sim = Simulator::start(
        opts,
        (0..2)
            .map(|i| {
                (
                    env.cluster(i).context_name().to_string(),
                    env.cluster(i).client(),
                )
            })
            .collect(),
    )
    .await?;
    let tmp = tempfile::tempdir()?;
    let (namespaced, cluster_wide) = tokio::join!(
        rbac_scenario(&env, &sim, 0, false, NS, tmp.path()),
        rbac_scenario(&env, &sim, 1, true, "apps", tmp.path()),
    );
    namespaced.context("namespace-scoped")?;
    cluster_wide.context("cluster-scoped")?;
    assert!(
        sim.violations().is_empty(),
        "violations: {:?}",
        sim.violations()
    );
    Ok(())
}

fn condition(obj: &Value, t: &str) -> Option<String> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == t)
        .and_then(|c| c["status"].as_str())
        .map(str::to_string)
}

/// A Stargate on the datacenter `dc` gets its Deployment (`<prefix>-r1-stargate-deployment`).
async fn stargate_runs(client: &kube::Client, ns: &str, dc: &str, prefix: &str) -> Result<()> {
    apply_yaml(
        client,
        &format!(
            "apiVersion: stargate.k8ssandra.io/v1alpha1\nkind: Stargate\nmetadata:\n  name: sg-{dc}\n  namespace: {ns}\nspec:\n  datacenterRef:\n    name: {dc}\n  size: 1\n  heapSize: 256Mi\n"
        ),
        ns,
    )
    .await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let name = format!("{prefix}-r1-stargate-deployment");
    wait_for(
        &format!("Deployment {name}"),
        Duration::from_secs(180),
        || async { deployments.get_opt(&name).await.ok()?.map(|_| ()) },
    )
    .await
}

fn dc_yaml(name: &str, cluster: &str, ns: &str) -> String {
    format!(
        r#"
apiVersion: cassandra.datastax.com/v1beta1
kind: CassandraDatacenter
metadata:
  name: {name}
  namespace: {ns}
spec:
  clusterName: {cluster}
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
    )
}

/// One install of the chart on cluster `i`, and the operator as its ServiceAccount through
/// every built-in policy, in control-plane then data-plane mode.
async fn rbac_scenario(
    env: &TestEnv,
    sim: &cassandra_sim::SimHandle,
    i: usize,
    cluster_scoped: bool,
    workload_ns: &str,
    tmp: &Path,
) -> Result<()> {
    let cluster = env.cluster(i);
    let client = cluster.client();
    let home = tmp.join(format!("home-{i}"));
    let kc = cluster
        .kubeconfig_path()
        .to_str()
        .context("kubeconfig")?
        .to_string();
    let chart = chart_dir();
    let chart = chart.to_str().context("chart path")?;
    let scope = format!("global.clusterScoped={cluster_scoped}");
    let helm = |mode: &str, control_plane: bool| {
        let cp = format!("controlPlane={control_plane}");
        let mut a = vec![
            mode,
            RELEASE,
            chart,
            "--kubeconfig",
            &kc,
            "--namespace",
            NS,
            "--set",
            &scope,
            "--set",
            &cp,
            // The webhook is proven by admission_e2e; testenv's Services have no endpoints.
            "--set",
            "admissionWebhook.enabled=false",
        ];
        if mode == "install" {
            a.push("--create-namespace");
        }
        run("helm", &a, &home).map(|_| ())
    };
    helm("install", true)?;
    if workload_ns != NS {
        support::create_namespace(&client, workload_ns).await?;
    }
    let name = format!("{RELEASE}-k8ssandra-operator");
    Api::<Deployment>::namespaced(client.clone(), NS)
        .get(&name)
        .await
        .context("Deployment installed")?;
    Api::<ServiceAccount>::namespaced(client.clone(), NS)
        .get(&name)
        .await
        .context("ServiceAccount installed")?;
    if !cluster_scoped {
        Api::<Role>::namespaced(client.clone(), NS)
            .get(&name)
            .await
            .context("Role installed")?;
        Api::<RoleBinding>::namespaced(client.clone(), NS)
            .get(&name)
            .await
            .context("RoleBinding installed")?;
    }
    for (g, v, k) in [
        ("cassandra.datastax.com", "v1beta1", "CassandraDatacenter"),
        ("k8ssandra.io", "v1alpha1", "K8ssandraCluster"),
        ("control.k8ssandra.io", "v1alpha1", "CassandraTask"),
        ("control.k8ssandra.io", "v1alpha1", "K8ssandraTask"),
    ] {
        wait_crd(&client, g, v, k).await?;
    }
    let token = run(
        "kubectl",
        &[
            "--kubeconfig",
            &kc,
            "create",
            "token",
            &name,
            "-n",
            NS,
            "--duration",
            "2h",
        ],
        &home,
    )?;
    let sa_kubeconfig = tmp.join(format!("sa-{i}.kubeconfig"));
    std::fs::write(
        &sa_kubeconfig,
        token_kubeconfig(cluster.kubeconfig_yaml(), token.trim())?,
    )?;
    let policies = [
        "cassandra-datacenter",
        "cassandra-task",
        "k8ssandra-cluster",
        "k8ssandra-task",
        "stargate",
        "reaper",
        "repair-schedule",
        "repair-run",
        "medusa-backup-job",
        "medusa-task",
        "medusa-restore-job",
        "medusa-backup-schedule",
        "medusa-configuration",
        "scheduled-task",
    ];
    let plugins = plugin_dir(&tmp.join(format!("plugins-{i}")), &policies)?;
    let operator = |control_plane: bool| {
        let mut a = vec![
            "--leader-elect".to_string(),
            "--lease-namespace".into(),
            NS.into(),
            "--resync-seconds".into(),
            "5".into(),
            format!("--control-plane={control_plane}"),
        ];
        if !cluster_scoped {
            a.extend(["--namespace".to_string(), NS.to_string()]);
        }
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        Operator::start(&sa_kubeconfig, &plugins, &refs)
    };
    let dcs = datacenters(&client, workload_ns).await?;
    let task_api = |kind: &'static str| {
        support::dynamic_api(
            &client,
            workload_ns,
            "control.k8ssandra.io",
            "v1alpha1",
            kind,
        )
    };
    let complete = |api: Api<DynamicObject>, name: String| async move {
        let t = api.get(&name).await.ok()?;
        (condition(&t.data, "Complete").as_deref() == Some("True")).then_some(())
    };

    // Control plane: a K8ssandraCluster with one local datacenter, Reaper and Medusa, then
    // a flush over it.
    let op = operator(true)?;
    op.wait_ready(Duration::from_secs(300)).await?;
    let cluster_name = format!("rbac{i}");
    apply_yaml(
        &client,
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: medusa-bucket-key\n  namespace: {workload_ns}\nstringData:\n  credentials: |\n    [default]\n    aws_access_key_id = e2e\n    aws_secret_access_key = e2e\n"
        ),
        workload_ns,
    )
    .await?;
    apply_yaml(
        &client,
        &format!(
            r#"
apiVersion: k8ssandra.io/v1alpha1
kind: K8ssandraCluster
metadata:
  name: {cluster_name}
  namespace: {workload_ns}
spec:
  reaper: {{}}
  medusa:
    storageProperties:
      storageProvider: s3_compatible
      bucketName: rbac-backups
      storageSecretRef: {{name: medusa-bucket-key}}
      host: s3.storage.svc
      port: 9000
      secure: false
  cassandra:
    serverVersion: "4.1.5"
    storageConfig:
      cassandraDataVolumeClaimSpec:
        storageClassName: standard
        accessModes: [ReadWriteOnce]
        resources:
          requests:
            storage: 1Gi
    datacenters:
      - metadata:
          name: dc1
        size: 1
        racks:
          - name: r1
---
apiVersion: control.k8ssandra.io/v1alpha1
kind: K8ssandraTask
metadata:
  name: flush-all
  namespace: {workload_ns}
spec:
  cluster:
    name: {cluster_name}
  template:
    jobs:
      - name: flush
        command: flush
"#
        ),
        workload_ns,
    )
    .await?;
    wait_for(
        "dc1 Ready (control plane)",
        Duration::from_secs(300),
        || async { support::dc_ready(&dcs, "dc1").await.then_some(()) },
    )
    .await
    .map_err(|e| e.context(op.log_text()))?;
    stargate_runs(&client, workload_ns, "dc1", &format!("{cluster_name}-dc1"))
        .await
        .map_err(|e| e.context(op.log_text()))?;
    wait_for(
        "the K8ssandraTask Complete",
        Duration::from_secs(180),
        || {
            let api = task_api("K8ssandraTask");
            async move { complete(api.await.ok()?, "flush-all".into()).await }
        },
    )
    .await
    .map_err(|e| e.context(op.log_text()))?;
    other_policies_run(&client, sim, workload_ns, &cluster_name)
        .await
        .map_err(|e| e.context(op.log_text()))?;
    let log = op.log_text();
    assert!(
        !log.to_lowercase().contains("forbidden"),
        "cluster-{i}, control plane: refused something with the chart's RBAC:\n{log}"
    );
    drop(op);

    // Data plane: the chart upgraded, a datacenter and a CassandraTask of its own.
    helm("upgrade", false)?;
    let op = operator(false)?;
    op.wait_ready(Duration::from_secs(300)).await?;
    apply_yaml(
        &client,
        &dc_yaml("dc2", &format!("solo{i}"), workload_ns),
        workload_ns,
    )
    .await?;
    wait_for(
        "dc2 Ready (data plane)",
        Duration::from_secs(300),
        || async { support::dc_ready(&dcs, "dc2").await.then_some(()) },
    )
    .await
    .map_err(|e| e.context(op.log_text()))?;
    apply_yaml(
        &client,
        &format!(
            "apiVersion: control.k8ssandra.io/v1alpha1\nkind: CassandraTask\nmetadata:\n  name: flush-dc2\n  namespace: {workload_ns}\nspec:\n  datacenter:\n    name: dc2\n  jobs:\n    - name: flush\n      command: flush\n"
        ),
        workload_ns,
    )
    .await?;
    stargate_runs(&client, workload_ns, "dc2", &format!("solo{i}-dc2"))
        .await
        .map_err(|e| e.context(op.log_text()))?;
    wait_for(
        "the CassandraTask Complete",
        Duration::from_secs(180),
        || {
            let api = task_api("CassandraTask");
            async move { complete(api.await.ok()?, "flush-dc2".into()).await }
        },
    )
    .await
    .map_err(|e| e.context(op.log_text()))?;
    // A few resyncs and lease renewals more, then look for refusals.
    let reconciles = op
        .metric("k8ssandra_reconciles_total", "cassandra-datacenter")
        .await?;
    wait_for("two more reconciles", Duration::from_secs(60), || async {
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
        "cluster-{i}, data plane: refused something with the chart's RBAC:\n{log}"
    );
    Ok(())
}

/// The built-in policies beyond the datacenter, cluster, task and Stargate ones, each run to
/// its end on `cluster`'s dc1 as the chart's ServiceAccount: Reaper (from the
/// K8ssandraCluster) and a RepairSchedule, a MedusaBackupJob, a sync MedusaTask, a
/// MedusaConfiguration, the datacenter's Medusa purge schedule and a ScheduledTask.
async fn other_policies_run(
    client: &kube::Client,
    sim: &cassandra_sim::SimHandle,
    ns: &str,
    cluster: &str,
) -> Result<()> {
    const WAIT: Duration = Duration::from_secs(240);
    let api = |group: &'static str, kind: &'static str| {
        support::dynamic_api(client, ns, group, "v1alpha1", kind)
    };
    let is_true = |obj: &Value, t: &str| condition(obj, t).as_deref() == Some("True");
    let reapers = api("reaper.k8ssandra.io", "Reaper").await?;
    let reaper = format!("{cluster}-dc1-reaper");
    wait_for(&format!("Reaper {reaper} Ready"), WAIT, || async {
        is_true(&reapers.get(&reaper).await.ok()?.data, "Ready").then_some(())
    })
    .await?;

    sim.create_keyspace(&cassandra_sim::KeyspaceRequest {
        cluster: cluster.into(),
        name: "ks1".into(),
        replication: std::collections::BTreeMap::from([("dc1".to_string(), 1)]),
    });
    let yaml = format!(
        r#"
apiVersion: reaper.k8ssandra.io/v1alpha1
kind: RepairSchedule
metadata:
  name: ks1-weekly
  namespace: {ns}
spec:
  cluster: {cluster}
  keyspace: ks1
---
apiVersion: medusa.k8ssandra.io/v1alpha1
kind: MedusaBackupJob
metadata:
  name: backup1
  namespace: {ns}
spec:
  cassandraDatacenter: dc1
---
apiVersion: medusa.k8ssandra.io/v1alpha1
kind: MedusaConfiguration
metadata:
  name: shared-storage
  namespace: {ns}
spec:
  storageProperties:
    storageProvider: s3_compatible
    bucketName: shared-backups
    storageSecretRef: {{name: medusa-bucket-key}}
    host: s3.storage.svc
    port: 9000
---
apiVersion: control.k8ssandra.io/v1alpha1
kind: ScheduledTask
metadata:
  name: flush-every-minute
  namespace: {ns}
spec:
  schedule: "* * * * *"
  taskDetails:
    name: flush
    datacenter:
      name: dc1
    jobs:
      - name: flush
        command: flush
"#
    );
    apply_yaml(client, &yaml, ns).await?;

    let schedules = api("reaper.k8ssandra.io", "RepairSchedule").await?;
    wait_for("RepairSchedule Ready with its Reaper id", WAIT, || async {
        let r = schedules.get("ks1-weekly").await.ok()?.data;
        (is_true(&r, "Ready") && r.pointer("/status/scheduleId").is_some()).then_some(())
    })
    .await?;
    let jobs = api("medusa.k8ssandra.io", "MedusaBackupJob").await?;
    wait_for("MedusaBackupJob Complete", WAIT, || async {
        is_true(&jobs.get("backup1").await.ok()?.data, "Complete").then_some(())
    })
    .await?;
    // A sync after the backup: it reads the storage and keeps the MedusaBackups in step.
    apply_yaml(
        client,
        &format!(
            "apiVersion: medusa.k8ssandra.io/v1alpha1\nkind: MedusaTask\nmetadata:\n  name: sync1\n  namespace: {ns}\nspec:\n  cassandraDatacenter: dc1\n  operation: sync\n"
        ),
        ns,
    )
    .await?;
    let tasks = api("medusa.k8ssandra.io", "MedusaTask").await?;
    wait_for("MedusaTask sync Complete", WAIT, || async {
        is_true(&tasks.get("sync1").await.ok()?.data, "Complete").then_some(())
    })
    .await?;
    let backups = api("medusa.k8ssandra.io", "MedusaBackup").await?;
    wait_for("a MedusaBackup recorded", WAIT, || async {
        (!backups
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .is_empty())
        .then_some(())
    })
    .await?;
    let configurations = api("medusa.k8ssandra.io", "MedusaConfiguration").await?;
    wait_for("MedusaConfiguration Ready", WAIT, || async {
        is_true(
            &configurations.get("shared-storage").await.ok()?.data,
            "Ready",
        )
        .then_some(())
    })
    .await?;
    let purges = api("medusa.k8ssandra.io", "MedusaBackupSchedule").await?;
    let purge = format!("{cluster}-dc1-medusa-purge");
    wait_for(&format!("{purge} scheduled"), WAIT, || async {
        let p = purges.get(&purge).await.ok()?.data;
        p.pointer("/status/nextSchedule").map(|_| ())
    })
    .await?;
    // A minute boundary has to pass.
    let scheduled = api("control.k8ssandra.io", "ScheduledTask").await?;
    wait_for("the ScheduledTask's first run", WAIT, || async {
        let t = scheduled.get("flush-every-minute").await.ok()?.data;
        t.pointer("/status/lastExecution").map(|_| ())
    })
    .await?;
    Ok(())
}

/// Every rendered Role and ClusterRole, in every mode, grants nothing broader than the
/// operator needs: no wildcards; a namespace-scoped install reads no Secrets (nor anything
/// else) cluster-wide, its only cluster-wide rule being the webhook configuration of its own
/// release, by name.
#[test]
fn chart_rbac_grants_nothing_broader_than_needed() -> Result<()> {
    for (sets, cluster_scoped) in [
        (vec![], false),
        (vec!["controlPlane=false"], false),
        (vec!["global.clusterScoped=true"], true),
        (
            vec!["global.clusterScoped=true", "controlPlane=false"],
            true,
        ),
    ] {
        let docs = render(&sets)?;
        let mut secret_rules = 0;
        for role in docs
            .iter()
            .filter(|d| d["kind"] == "Role" || d["kind"] == "ClusterRole")
        {
            let cluster_wide = role["kind"] == "ClusterRole";
            let name = role["metadata"]["name"].as_str().unwrap_or_default();
            for rule in role["rules"].as_array().into_iter().flatten() {
                let list = |key: &str| -> Vec<String> {
                    rule[key]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                };
                for key in ["apiGroups", "resources", "verbs"] {
                    assert!(
                        !list(key).iter().any(|v| v.contains('*')),
                        "{sets:?}: {name} has a wildcard in {key}: {rule}"
                    );
                }
                assert!(
                    !list("verbs").iter().any(|v| v == "deletecollection"
                        || v == "escalate"
                        || v == "bind"
                        || v == "impersonate"),
                    "{sets:?}: {name}: {rule}"
                );
                let secrets = list("resources").iter().any(|r| r == "secrets");
                if secrets {
                    secret_rules += 1;
                }
                if cluster_wide && !cluster_scoped {
                    assert!(
                        !secrets,
                        "{sets:?}: a namespace-scoped install reads Secrets cluster-wide: {name} {rule}"
                    );
                    assert!(
                        !list("resourceNames").is_empty(),
                        "{sets:?}: a namespace-scoped install has a cluster-wide rule not limited by name: {name} {rule}"
                    );
                }
                // Updating a Secret is only for the webhook's own certificate.
                if secrets && list("verbs").iter().any(|v| v == "update") {
                    assert_eq!(
                        list("resourceNames"),
                        [format!("{RELEASE}-k8ssandra-operator-webhook-cert")],
                        "{sets:?}: {name} {rule}"
                    );
                }
            }
        }
        assert!(secret_rules > 0, "{sets:?}: no Secret rule rendered");
        let kinds = kinds(&docs);
        if !cluster_scoped {
            assert!(
                !kinds.contains(&"ClusterRoleBinding".to_string())
                    || docs
                        .iter()
                        .filter(|d| d["kind"] == "ClusterRoleBinding")
                        .all(|d| d["roleRef"]["name"]
                            == format!("{RELEASE}-k8ssandra-operator-webhook")),
                "{sets:?}: only the webhook's ClusterRole is bound cluster-wide"
            );
        }
    }
    Ok(())
}

/// The chart's ValidatingAdmissionPolicies are the generated ones: the chart's files are
/// copies of `crds/policies` (which `crds/tests/generated.rs` checks against the code), and
/// what the chart renders is exactly `k8ssandra_api::policies::admission_policies()`.
#[test]
fn chart_admission_policies_are_the_generated_ones() -> Result<()> {
    let generated = workspace_root().join("crds").join("policies");
    let chart = chart_dir().join("files").join("admission-policies");
    let list = |dir: &Path| -> Result<Vec<String>> {
        let mut names: Vec<String> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
            .collect();
        names.sort();
        Ok(names)
    };
    let fix = "copy them: for f in crds/policies/*.yaml; do [ \"$(basename $f)\" = kustomization.yaml ] || cp $f charts/k8ssandra-operator/files/admission-policies/; done";
    assert_eq!(list(&chart)?, list(&generated)?, "{fix}");
    for name in list(&generated)? {
        assert!(
            std::fs::read(generated.join(&name))? == std::fs::read(chart.join(&name))?,
            "charts/k8ssandra-operator/files/admission-policies/{name} differs from crds/policies/{name}; {fix}"
        );
    }
    let docs = render(&[])?;
    let mut rendered: Vec<Value> = docs
        .into_iter()
        .filter(|d| {
            d["kind"] == "ValidatingAdmissionPolicy"
                || d["kind"] == "ValidatingAdmissionPolicyBinding"
        })
        .collect();
    let mut expected = k8ssandra_api::policies::admission_policies();
    let key = |v: &Value| format!("{}/{}", v["kind"], v["metadata"]["name"]);
    rendered.sort_by_key(key);
    expected.sort_by_key(key);
    assert_eq!(rendered, expected);
    // Off when asked.
    let docs = render(&["admissionPolicies.enabled=false"])?;
    assert!(!kinds(&docs).contains(&"ValidatingAdmissionPolicy".to_string()));
    Ok(())
}

/// The webhook's values: a Service by default, a URL on request, checked bounds.
#[test]
fn chart_renders_the_webhook() -> Result<()> {
    let name = format!("{RELEASE}-k8ssandra-operator");
    let docs = render(&[])?;
    let vwc =
        find(&docs, "ValidatingWebhookConfiguration", &name).context("webhook configuration")?;
    let hook = &vwc["webhooks"][0];
    assert_eq!(hook["failurePolicy"], "Fail");
    assert_eq!(hook["timeoutSeconds"], 10);
    assert_eq!(
        hook["clientConfig"]["service"]["name"],
        format!("{name}-webhook")
    );
    assert_eq!(hook["clientConfig"]["service"]["path"], "/validate");
    assert!(
        hook["clientConfig"]["caBundle"].is_null(),
        "the operator fills it"
    );
    assert_eq!(
        hook["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        NS
    );
    let resources: Vec<&str> = hook["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| r["resources"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    for r in [
        "cassandradatacenters",
        "k8ssandraclusters",
        "cassandratasks",
        "k8ssandratasks",
    ] {
        assert!(resources.contains(&r), "{r} not validated: {resources:?}");
    }
    assert!(
        resources.iter().all(|r| !r.contains('/')),
        "no subresources: {resources:?}"
    );
    let svc = find(&docs, "Service", &format!("{name}-webhook")).context("webhook Service")?;
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "webhook");
    let op = container(
        find(&docs, "Deployment", &name).context("Deployment")?,
        "operator",
    );
    let a = args(op);
    for want in [
        "--webhook-addr=0.0.0.0:9443".to_string(),
        "--webhook-failure-policy=Fail".to_string(),
        "--webhook-deadline-ms=8000".to_string(),
        format!("--webhook-cert-secret={name}-webhook-cert"),
        format!("--webhook-cert-namespace={NS}"),
        format!(
            "--webhook-cert-host={name}-webhook.{NS}.svc,{name}-webhook.{NS}.svc.cluster.local"
        ),
        format!("--webhook-configuration={name}"),
    ] {
        assert!(a.contains(&want), "{want} missing: {a:?}");
    }

    // A URL, the user's certificate, cluster-scoped, fail open.
    let docs = render(&[
        "admissionWebhook.url=https://10.0.0.1:9443/validate",
        "admissionWebhook.certificate.source=secret",
        "admissionWebhook.certificate.secretName=my-cert",
        "admissionWebhook.certificate.caBundle=PEM",
        "admissionWebhook.failurePolicy=Ignore",
        "global.clusterScoped=true",
    ])?;
    let vwc =
        find(&docs, "ValidatingWebhookConfiguration", &name).context("webhook configuration")?;
    let hook = &vwc["webhooks"][0];
    assert_eq!(
        hook["clientConfig"]["url"],
        "https://10.0.0.1:9443/validate"
    );
    assert_eq!(hook["clientConfig"]["caBundle"], "UEVN");
    assert_eq!(hook["failurePolicy"], "Ignore");
    assert!(hook["namespaceSelector"].is_null());
    assert!(find(&docs, "Service", &format!("{name}-webhook")).is_none());
    assert!(
        find(&docs, "ClusterRole", &format!("{name}-webhook")).is_none(),
        "no caBundle to patch"
    );
    let deployment = find(&docs, "Deployment", &name).context("Deployment")?;
    let a = args(container(deployment, "operator"));
    assert!(
        a.contains(&"--webhook-cert-dir=/etc/k8ssandra/webhook".to_string()),
        "{a:?}"
    );
    assert!(
        !a.iter().any(|a| a.starts_with("--webhook-cert-secret")),
        "{a:?}"
    );
    let volumes = deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .context("volumes")?;
    assert!(
        volumes
            .iter()
            .any(|v| v["secret"]["secretName"] == "my-cert"),
        "{volumes:?}"
    );

    // Disabled: nothing of it.
    let docs = render(&["admissionWebhook.enabled=false"])?;
    assert!(find(&docs, "ValidatingWebhookConfiguration", &name).is_none());
    let a = args(container(
        find(&docs, "Deployment", &name).context("Deployment")?,
        "operator",
    ));
    assert!(!a.iter().any(|a| a.starts_with("--webhook")), "{a:?}");

    // Values that cannot work are refused with the rule.
    for (set, rule) in [
        (
            "admissionWebhook.deadlineMs=10000",
            "deadlineMs must be positive and below",
        ),
        (
            "admissionWebhook.timeoutSeconds=31",
            "timeoutSeconds must be between 1 and 30",
        ),
        (
            "admissionWebhook.failurePolicy=Maybe",
            "failurePolicy must be Fail or Ignore",
        ),
        (
            "admissionWebhook.certificate.source=secret",
            "secretName is required",
        ),
        (
            "admissionWebhook.url=http://x/validate",
            "must start with https://",
        ),
    ] {
        let e = render(&[set])
            .err()
            .with_context(|| format!("{set} rendered"))?;
        assert!(format!("{e:#}").contains(rule), "{set}: {e:#}");
    }
    Ok(())
}
