//! Admission through a real API server, with the chart's manifests installed (`helm install`,
//! the webhook configured by URL since testenv's Services have no endpoints): the operator,
//! running as the chart's ServiceAccount with the chart's webhook flags, makes its serving
//! certificate and puts the CA into the ValidatingWebhookConfiguration; every built-in
//! policy's `validate` then refuses bad objects with messages naming the field, and admits
//! the same objects without the fault. A policy that traps or loops in `validate` is refused
//! under failurePolicy Fail and admitted (with a warning) under Ignore. A wiped caBundle is
//! put back; a deleted certificate Secret is made again with a new CA, published and
//! served. Then the chart's
//! ValidatingAdmissionPolicies are switched on (`helm upgrade`) and deny their own cases.
//!
//! One test function on purpose: the cases share one cluster and one install.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use serde_json::Value;

use k8ssandra_testenv::{TestEnv, TestEnvOptions};
use support::{Operator, apply_yaml, plugin_dir, wait_crd, wait_for, workspace_root};

const NS: &str = "ops";
const RELEASE: &str = "k8o";
const FULLNAME: &str = "k8o-k8ssandra-operator";

fn bin(name: &str) -> PathBuf {
    let dir = k8ssandra_testenv::discover_bin_dir().expect("testenv binaries (helm, kubectl)");
    let path = dir.join(name);
    assert!(path.exists(), "{} missing", path.display());
    path
}

fn run(tool: &str, args: &[&str], home: &Path) -> Result<String> {
    let out = Command::new(bin(tool))
        .args(args)
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

fn chart_dir() -> String {
    workspace_root()
        .join("charts")
        .join("k8ssandra-operator")
        .to_string_lossy()
        .into_owned()
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

/// The operator's webhook flags as the chart renders them for these values, with the
/// listening address moved to the loopback `addr`.
fn chart_webhook_args(sets: &[String], addr: &str, home: &Path) -> Result<Vec<String>> {
    let chart = chart_dir();
    let mut args = vec!["template", RELEASE, &chart, "--namespace", NS];
    for s in sets {
        args.extend(["--set", s.as_str()]);
    }
    let text = run("helm", &args, home)?;
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v: Value = serde::Deserialize::deserialize(doc)?;
        if v["kind"] == "Deployment" {
            let args = v["spec"]["template"]["spec"]["containers"][0]["args"]
                .as_array()
                .context("args")?
                .iter()
                .filter_map(|a| a.as_str())
                .filter(|a| a.starts_with("--webhook-"))
                .map(|a| match a.strip_prefix("--webhook-addr=") {
                    Some(_) => format!("--webhook-addr={addr}"),
                    None => a.to_string(),
                })
                .collect();
            return Ok(args);
        }
    }
    bail!("no Deployment rendered")
}

/// Applies YAML; the API server's refusal as text, if any.
async fn refusal(client: &Client, yaml: &str) -> Option<String> {
    apply_yaml(client, yaml, NS)
        .await
        .err()
        .map(|e| format!("{e:#}"))
}

async fn admitted(client: &Client, what: &str, yaml: &str) -> Result<()> {
    if let Some(e) = refusal(client, yaml).await {
        bail!("{what} was refused: {e}");
    }
    Ok(())
}

/// The webhook refused `yaml` and named every field of `fields`.
async fn denied_by_webhook(
    client: &Client,
    what: &str,
    yaml: &str,
    fields: &[&str],
) -> Result<String> {
    let Some(e) = refusal(client, yaml).await else {
        bail!("{what} was admitted");
    };
    assert!(
        e.contains("admission webhook \"validate.k8ssandra.io\" denied the request"),
        "{what}: not refused by the webhook: {e}"
    );
    for f in fields {
        assert!(e.contains(f), "{what}: the refusal does not name {f}: {e}");
    }
    Ok(e)
}

fn dc(name: &str, cluster: &str, size: u32, num_tokens: u32, extra_meta: &str) -> String {
    dc_with(name, cluster, size, num_tokens, extra_meta, "4.1.5", "")
}

/// A datacenter with another server version and more configuration files (`config` lines,
/// indented four spaces).
fn dc_with(
    name: &str,
    cluster: &str,
    size: u32,
    num_tokens: u32,
    extra_meta: &str,
    version: &str,
    config: &str,
) -> String {
    format!(
        r#"
apiVersion: cassandra.datastax.com/v1beta1
kind: CassandraDatacenter
metadata:
  name: {name}
  namespace: {NS}
{extra_meta}
spec:
  clusterName: {cluster}
  serverType: cassandra
  serverVersion: "{version}"
  size: {size}
  config:
{config}    cassandra-yaml:
      num_tokens: {num_tokens}
  racks:
    - name: r1
    - name: r2
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

fn kc(name: &str, dcs: &[(&str, &str)], extra_meta: &str) -> String {
    let mut out = format!(
        r#"
apiVersion: k8ssandra.io/v1alpha1
kind: K8ssandraCluster
metadata:
  name: {name}
  namespace: {NS}
{extra_meta}
spec:
  cassandra:
    serverVersion: "4.1.5"
    storageConfig:
      cassandraDataVolumeClaimSpec:
        storageClassName: standard
        accessModes: [ReadWriteOnce]
        resources: {{requests: {{storage: 1Gi}}}}
    datacenters:
"#
    );
    for (dc, ctx) in dcs {
        out.push_str(&format!(
            "      - metadata:\n          name: {dc}\n        k8sContext: \"{ctx}\"\n        size: 1\n"
        ));
    }
    out
}

fn cassandra_task(name: &str, jobs: &str) -> String {
    format!(
        r#"
apiVersion: control.k8ssandra.io/v1alpha1
kind: CassandraTask
metadata:
  name: {name}
  namespace: {NS}
spec:
  datacenter:
    name: solo
  jobs:
{jobs}
"#
    )
}

fn k8ssandra_task(name: &str, datacenters: &str, command: &str) -> String {
    format!(
        r#"
apiVersion: control.k8ssandra.io/v1alpha1
kind: K8ssandraTask
metadata:
  name: {name}
  namespace: {NS}
spec:
  cluster:
    name: kc1
  datacenters: {datacenters}
  template:
    jobs:
      - name: job
        command: {command}
"#
    )
}

fn stargate(name: &str, heap: &str, extra: &str) -> String {
    format!(
        r#"
apiVersion: stargate.k8ssandra.io/v1alpha1
kind: Stargate
metadata:
  name: {name}
  namespace: {NS}
spec:
  datacenterRef:
    name: solo
  size: 1
  heapSize: {heap}
  resources:
    limits:
      memory: 1Gi
{extra}
"#
    )
}

fn reaper(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: reaper.k8ssandra.io/v1alpha1\nkind: Reaper\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  datacenterRef:\n    name: dc1\n  {extra}\n"
    )
}

fn repair_schedule(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: reaper.k8ssandra.io/v1alpha1\nkind: RepairSchedule\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  cluster: demo\n  keyspace: ks1\n{extra}"
    )
}

fn repair_run(name: &str, keyspace: &str, extra: &str) -> String {
    format!(
        "apiVersion: reaper.k8ssandra.io/v1alpha1\nkind: RepairRun\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  cluster: demo\n  keyspace: {keyspace}\n{extra}"
    )
}

fn medusa_backup_job(name: &str, dc: &str) -> String {
    format!(
        "apiVersion: medusa.k8ssandra.io/v1alpha1\nkind: MedusaBackupJob\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  cassandraDatacenter: {dc}\n"
    )
}

fn medusa_task(name: &str, operation: &str, extra: &str) -> String {
    format!(
        "apiVersion: medusa.k8ssandra.io/v1alpha1\nkind: MedusaTask\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  cassandraDatacenter: dc1\n  operation: {operation}\n{extra}"
    )
}

fn medusa_restore_job(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: medusa.k8ssandra.io/v1alpha1\nkind: MedusaRestoreJob\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  cassandraDatacenter: dc1\n  backup: b1\n{extra}"
    )
}

fn medusa_configuration(name: &str, port: u32) -> String {
    format!(
        "apiVersion: medusa.k8ssandra.io/v1alpha1\nkind: MedusaConfiguration\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  storageProperties:\n    storageProvider: s3_compatible\n    bucketName: backups\n    port: {port}\n"
    )
}

fn medusa_backup_schedule(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: medusa.k8ssandra.io/v1alpha1\nkind: MedusaBackupSchedule\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  cronSchedule: \"0 2 * * *\"\n  backupSpec:\n    cassandraDatacenter: dc1\n  {extra}\n"
    )
}

fn scheduled_task(name: &str, schedule: &str) -> String {
    format!(
        "apiVersion: control.k8ssandra.io/v1alpha1\nkind: ScheduledTask\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  schedule: \"{schedule}\"\n  taskDetails:\n    name: cleanup\n    datacenter:\n      name: dc1\n    jobs:\n      - name: cleanup\n        command: cleanup\n"
    )
}

fn misbehave(name: &str, behaviour: &str) -> String {
    format!(
        "apiVersion: examples.k8ssandra.io/v1alpha1\nkind: Misbehave\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  behaviour: {behaviour}\n"
    )
}

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
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
"#;

struct Setup {
    // Holds the plugins, kubeconfig and logs for as long as the operators run.
    _tmp: tempfile::TempDir,
    home: PathBuf,
    sa_kubeconfig: PathBuf,
    plugins: PathBuf,
    addr: String,
    sets: Vec<String>,
}

impl Setup {
    /// Starts the operator as the chart's ServiceAccount with the chart's webhook flags and
    /// `extra` ones, which replace the chart's of the same name. Every operator shares one
    /// plugin directory, so a later one finds the policies compiled.
    fn operator(&self, extra: &[&str]) -> Result<Operator> {
        let mut args: Vec<String> = vec![
            "--namespace".into(),
            NS.into(),
            "--control-plane".into(),
            "true".into(),
            "--policy-deadline-ms".into(),
            "1000".into(),
        ];
        // A flag given in `extra` replaces the chart's (clap refuses a flag twice).
        let overridden = |arg: &String| {
            let flag = arg.split('=').next().unwrap_or_default();
            extra.contains(&flag)
        };
        args.extend(
            chart_webhook_args(&self.sets, &self.addr, &self.home)?
                .into_iter()
                .filter(|a| !overridden(a)),
        );
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Operator::start(&self.sa_kubeconfig, &self.plugins, &refs)
    }
}

fn ca_bundle(config: &ValidatingWebhookConfiguration) -> Option<String> {
    config
        .webhooks
        .as_ref()?
        .first()?
        .client_config
        .ca_bundle
        .as_ref()
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .filter(|b| !b.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_and_admission_policies_of_the_chart_through_the_api_server() -> Result<()> {
    let env = TestEnv::start(TestEnvOptions {
        clusters: 1,
        ..Default::default()
    })
    .await?;
    let client = env.cluster(0).client();
    let tmp = tempfile::tempdir()?;
    let home = tmp.path().join("home");
    let admin = env.cluster(0).kubeconfig_path().to_path_buf();
    let admin = admin.to_str().context("kubeconfig path")?.to_string();
    let port = support::free_port();
    let addr = format!("127.0.0.1:{port}");
    let sets: Vec<String> = vec![
        format!("admissionWebhook.url=https://{addr}/validate"),
        // Misbehave, the test policy that traps on request, is judged too.
        "admissionWebhook.extraRules[0].apiGroups[0]=examples.k8ssandra.io".into(),
        "admissionWebhook.extraRules[0].apiVersions[0]=v1alpha1".into(),
        "admissionWebhook.extraRules[0].operations[0]=CREATE".into(),
        "admissionWebhook.extraRules[0].operations[1]=UPDATE".into(),
        "admissionWebhook.extraRules[0].resources[0]=misbehaves".into(),
        // ... and its controller may watch them, as a custom policy's install grants.
        "rbac.extraRules[0].apiGroups[0]=examples.k8ssandra.io".into(),
        "rbac.extraRules[0].resources[0]=misbehaves".into(),
        "rbac.extraRules[0].resources[1]=misbehaves/status".into(),
        "rbac.extraRules[0].verbs={get,list,watch,patch}".into(),
    ];
    let chart = chart_dir();
    let mut install = vec![
        "install",
        RELEASE,
        &chart,
        "--kubeconfig",
        &admin,
        "--namespace",
        NS,
        "--create-namespace",
        // The webhook first, on its own: the policies are switched on further down.
        "--set",
        "admissionPolicies.enabled=false",
    ];
    for s in &sets {
        install.extend(["--set", s.as_str()]);
    }
    run("helm", &install, &home)?;
    apply_yaml(&client, MISBEHAVE_CRD, "default").await?;
    for (group, version, kind) in [
        ("cassandra.datastax.com", "v1beta1", "CassandraDatacenter"),
        ("k8ssandra.io", "v1alpha1", "K8ssandraCluster"),
        ("control.k8ssandra.io", "v1alpha1", "CassandraTask"),
        ("control.k8ssandra.io", "v1alpha1", "K8ssandraTask"),
        ("stargate.k8ssandra.io", "v1alpha1", "Stargate"),
        ("examples.k8ssandra.io", "v1alpha1", "Misbehave"),
    ] {
        wait_crd(&client, group, version, kind).await?;
    }

    let token = run(
        "kubectl",
        &[
            "--kubeconfig",
            &admin,
            "create",
            "token",
            FULLNAME,
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
    let plugins = plugin_dir(
        &tmp.path().join("plugins"),
        &[
            "cassandra-datacenter",
            "k8ssandra-cluster",
            "cassandra-task",
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
        ],
    )?;
    std::fs::copy(
        support::policy_wasm("misbehave-policy"),
        plugins.join("misbehave.wasm"),
    )?;
    let setup = Setup {
        home: home.clone(),
        sa_kubeconfig,
        plugins,
        addr,
        sets,
        _tmp: tmp,
    };
    let op = setup.operator(&[])?;
    op.wait_ready(Duration::from_secs(300)).await?;

    // The operator made its certificate and published the CA.
    let configs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let bundle = wait_for(
        "the caBundle published",
        Duration::from_secs(60),
        || async { ca_bundle(&configs.get(FULLNAME).await.ok()?) },
    )
    .await
    .map_err(|e| e.context(op.log_text()))?;
    let secret = Api::<Secret>::namespaced(client.clone(), NS)
        .get(&format!("{FULLNAME}-webhook-cert"))
        .await
        .context("the certificate Secret")?;
    let data = secret.data.context("Secret data")?;
    assert_eq!(
        String::from_utf8_lossy(&data["ca.crt"].0),
        bundle,
        "the webhook trusts the Secret's CA bundle"
    );

    // CassandraDatacenter. The API server may take a moment to pick up the caBundle.
    let good_dc = dc("solo", "demo", 2, 16, "");
    wait_for(
        "a valid datacenter admitted",
        Duration::from_secs(30),
        || async { refusal(&client, &good_dc).await.is_none().then_some(()) },
    )
    .await
    .map_err(|e| e.context(op.log_text()))?;
    let e = denied_by_webhook(
        &client,
        "num_tokens change",
        &dc("solo", "demo", 2, 32, ""),
        &[
            "spec.config.cassandra-yaml.num_tokens",
            "from 16 to 32",
            "cassandra-datacenter",
        ],
    )
    .await?;
    // Every violation is listed: a cluster rename too.
    assert!(!e.contains("jvm-options"), "{e}");
    // Every violation is listed: a configuration file of another version too.
    let jvm_options = "    jvm-options:\n      initial_heap_size: 512M\n";
    denied_by_webhook(
        &client,
        "num_tokens change and a Cassandra 3.11 file",
        &dc_with("solo", "demo", 2, 32, "", "4.1.5", jvm_options),
        &[
            "spec.config.cassandra-yaml.num_tokens",
            "spec.config.jvm-options: jvm-options applies to Cassandra 3.11 only",
        ],
    )
    .await?;
    // A second rule of its own (the schema only checks the X.Y.Z form).
    denied_by_webhook(
        &client,
        "an unsupported server version",
        &dc_with("other", "demo", 2, 16, "", "4.2.0", ""),
        &["spec.serverVersion: 4.2.0 is not a supported cassandra version"],
    )
    .await?;
    admitted(
        &client,
        "the same datacenter on a supported version",
        &dc_with("other", "demo", 2, 16, "", "4.1.5", ""),
    )
    .await?;
    admitted(
        &client,
        "an unchanged num_tokens",
        &dc("solo", "demo", 3, 16, ""),
    )
    .await?;

    // K8ssandraCluster.
    admitted(&client, "a cluster", &kc("kc1", &[("kdc1", "")], "")).await?;
    // The CRD's own rule refuses this before the webhook is asked; the webhook's
    // (k8ssandra-cluster's check_update) is the same rule for API servers without CEL.
    let e = refusal(&client, &kc("kc1", &[("kdc2", "")], ""))
        .await
        .context("a datacenter added and one removed in one update was admitted")?;
    assert!(
        e.contains("spec.cassandra.datacenters") && e.contains("adding and removing datacenters"),
        "{e}"
    );
    denied_by_webhook(
        &client,
        "a datacenter moved to another context",
        &kc("kc1", &[("kdc1", "east")], ""),
        &["spec.cassandra.datacenters[0].k8sContext", "cannot change"],
    )
    .await?;
    admitted(
        &client,
        "a datacenter added",
        &kc("kc1", &[("kdc1", ""), ("kdc2", "")], ""),
    )
    .await?;

    // CassandraTask. An unknown command never reaches the webhook (the schema's enum
    // refuses it), a known one the operator cannot run does.
    let unknown = refusal(
        &client,
        &cassandra_task("t1", "    - name: j\n      command: explode\n"),
    )
    .await
    .context("an unknown command was admitted")?;
    assert!(
        unknown.contains("spec.jobs[0].command") && unknown.contains("explode"),
        "{unknown}"
    );
    denied_by_webhook(
        &client,
        "an unsupported command",
        &cassandra_task("t1", "    - name: j\n      command: move\n"),
        &["spec.jobs[0].command", "not supported by this operator"],
    )
    .await?;
    denied_by_webhook(
        &client,
        "replacenode without a pod",
        &cassandra_task("t1", "    - name: j\n      command: replacenode\n"),
        &["spec.jobs[0].args.pod_name"],
    )
    .await?;
    admitted(
        &client,
        "a cleanup task",
        &cassandra_task("t1", "    - name: j\n      command: cleanup\n"),
    )
    .await?;

    // K8ssandraTask.
    denied_by_webhook(
        &client,
        "replacenode over datacenters",
        &k8ssandra_task("kt1", "[kdc1]", "replacenode"),
        &["spec.template.jobs[0].command", "acts on named pods"],
    )
    .await?;
    admitted(
        &client,
        "a flush task",
        &k8ssandra_task("kt1", "[kdc1]", "flush"),
    )
    .await?;
    denied_by_webhook(
        &client,
        "a task's datacenters changed",
        &k8ssandra_task("kt1", "[kdc1, kdc2]", "flush"),
        &["spec.datacenters: is immutable"],
    )
    .await?;

    // Stargate.
    denied_by_webhook(
        &client,
        "a heap as large as the memory limit",
        &stargate("sg1", "1Gi", ""),
        &[
            "spec.heapSize",
            "must be smaller than the container's memory limit",
        ],
    )
    .await?;
    denied_by_webhook(
        &client,
        "JWT without a provider",
        &stargate("sg1", "512Mi", "  authOptions:\n    apiAuthMethod: JWT\n"),
        &[
            "spec.authOptions.providerUrl",
            "required with apiAuthMethod JWT",
        ],
    )
    .await?;
    admitted(&client, "a Stargate", &stargate("sg1", "512Mi", "")).await?;

    // Reaper.
    denied_by_webhook(
        &client,
        "a Reaper heap of zero bytes",
        &reaper("rp1", "heapSize: \"0\""),
        &["spec.heapSize", "not a positive quantity of bytes"],
    )
    .await?;
    denied_by_webhook(
        &client,
        "a Reaper on local storage without a volume claim",
        &reaper("rp1", "storageType: local"),
        &[
            "spec.storageConfig",
            "required when spec.storageType is local",
        ],
    )
    .await?;
    admitted(&client, "a Reaper", &reaper("rp1", "heapSize: 1Gi")).await?;
    denied_by_webhook(
        &client,
        "a repair schedule at intensity 1.5",
        &repair_schedule("rs1", "  intensity: 1.5\n"),
        &["spec.intensity", "outside (0, 1]"],
    )
    .await?;
    denied_by_webhook(
        &client,
        "a repair schedule every 0 days",
        &repair_schedule("rs1", "  daysBetween: 0\n"),
        &["spec.daysBetween", "at least 1"],
    )
    .await?;
    // An unknown parallelism is refused by the CRD's schema (an enum), naming the field.
    let e = refusal(
        &client,
        &repair_schedule("rs1", "  repairParallelism: FAST\n"),
    )
    .await
    .ok_or_else(|| anyhow::anyhow!("a repair schedule in parallelism FAST was admitted"))?;
    assert!(e.contains("spec.repairParallelism"), "{e}");
    admitted(
        &client,
        "a repair schedule",
        &repair_schedule(
            "rs1",
            "  intensity: \"0.5\"\n  repairParallelism: PARALLEL\n",
        ),
    )
    .await?;

    denied_by_webhook(
        &client,
        "a repair run at intensity 1.5",
        &repair_run("rr1", "ks1", "  intensity: 1.5\n"),
        &["spec.intensity", "outside (0, 1]"],
    )
    .await?;
    admitted(
        &client,
        "a repair run",
        &repair_run("rr1", "ks1", "  intensity: \"0.5\"\n"),
    )
    .await?;
    // Once Reaper runs it, a repair run is that run: its spec stays.
    let runs =
        support::dynamic_api(&client, NS, "reaper.k8ssandra.io", "v1alpha1", "RepairRun").await?;
    runs.patch_status(
        "rr1",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(serde_json::json!({"status": {"runId": "r-1"}})),
    )
    .await?;
    denied_by_webhook(
        &client,
        "a started repair run pointed at another keyspace",
        &repair_run("rr1", "ks2", "  intensity: \"0.5\"\n"),
        &[
            "spec.keyspace",
            "cannot change once Reaper's run r-1 is started",
        ],
    )
    .await?;

    // Medusa.
    denied_by_webhook(
        &client,
        "a backup of a datacenter named by its Cassandra name",
        &medusa_backup_job("bj1", "DC_One"),
        &["spec.cassandraDatacenter", "object's name"],
    )
    .await?;
    admitted(&client, "a backup job", &medusa_backup_job("bj1", "dc1")).await?;
    // Once started, a backup job is that backup: its spec stays.
    let jobs = support::dynamic_api(
        &client,
        NS,
        "medusa.k8ssandra.io",
        "v1alpha1",
        "MedusaBackupJob",
    )
    .await?;
    jobs.patch_status(
        "bj1",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(
            serde_json::json!({"status": {"startTime": "2026-01-01T00:00:00Z"}}),
        ),
    )
    .await?;
    denied_by_webhook(
        &client,
        "a started backup job pointed at another datacenter",
        &medusa_backup_job("bj1", "dc2"),
        &["spec", "cannot change once the backup started"],
    )
    .await?;
    denied_by_webhook(
        &client,
        "a restore preparation without a backup",
        &medusa_task("mt1", "prepare_restore", ""),
        &["spec.backupName", "is required for prepare_restore"],
    )
    .await?;
    denied_by_webhook(
        &client,
        "a Medusa task on no datacenter",
        &medusa_task("mt1", "sync", "")
            .replace("cassandraDatacenter: dc1", "cassandraDatacenter: \"\""),
        &[
            "spec.cassandraDatacenter",
            "must name the CassandraDatacenter",
        ],
    )
    .await?;
    admitted(
        &client,
        "a restore preparation",
        &medusa_task(
            "mt1",
            "prepare_restore",
            "  backupName: b1\n  restoreKey: k1\n",
        ),
    )
    .await?;

    denied_by_webhook(
        &client,
        "a restore of a table named without its keyspace",
        &medusa_restore_job("mr1", "  tables: [orders]\n"),
        &["spec.tables[0]", "keyspace.table"],
    )
    .await?;
    // A restore of chosen keyspaces and tables is admitted (Medusa restores only those,
    // through the module the <kc>-medusa ConfigMap ships); a deadline must be positive.
    admitted(
        &client,
        "a restore of one keyspace and one table",
        &medusa_restore_job("mr2", "  keyspaces: [shop]\n  tables: [logs.events]\n"),
    )
    .await?;
    denied_by_webhook(
        &client,
        "a restore with a deadline of 0 seconds",
        &medusa_restore_job("mr3", "  readyDeadlineSeconds: 0\n"),
        &["spec.readyDeadlineSeconds", "positive"],
    )
    .await?;
    admitted(
        &client,
        "a restore of the whole datacenter",
        &medusa_restore_job("mr1", ""),
    )
    .await?;

    denied_by_webhook(
        &client,
        "a Medusa storage configuration on port 70000",
        &medusa_configuration("mc1", 70000),
        &["spec.storageProperties.port", "1-65535"],
    )
    .await?;
    denied_by_webhook(
        &client,
        "a Medusa storage configuration keeping backups for -1 days",
        &format!(
            "{}    maxBackupAge: -1\n",
            medusa_configuration("mc1", 9000)
        ),
        &[
            "spec.storageProperties.maxBackupAge",
            "must not be negative",
        ],
    )
    .await?;
    admitted(
        &client,
        "a Medusa storage configuration",
        &medusa_configuration("mc1", 9000),
    )
    .await?;

    // Schedules.
    denied_by_webhook(
        &client,
        "a backup schedule in a time zone that does not exist",
        &medusa_backup_schedule("bs1", "timeZone: Mars/Olympus_Mons"),
        &["spec.timeZone"],
    )
    .await?;
    denied_by_webhook(
        &client,
        "a backup schedule with an unknown concurrency policy",
        &medusa_backup_schedule("bs1", "concurrencyPolicy: Sometimes"),
        &["spec.concurrencyPolicy"],
    )
    .await?;
    admitted(
        &client,
        "a backup schedule",
        &medusa_backup_schedule("bs1", "timeZone: Europe/Berlin"),
    )
    .await?;
    denied_by_webhook(
        &client,
        "a scheduled task at minute 61",
        &scheduled_task("st1", "61 * * * *"),
        &["spec.schedule", "61"],
    )
    .await?;
    denied_by_webhook(
        &client,
        "a scheduled task without jobs",
        &scheduled_task("st1", "0 3 * * *").replace(
            "    jobs:\n      - name: cleanup\n        command: cleanup\n",
            "    jobs: []\n",
        ),
        &["spec.taskDetails.jobs", "at least one job"],
    )
    .await?;
    admitted(
        &client,
        "a scheduled task",
        &scheduled_task("st1", "0 3 * * *"),
    )
    .await?;

    // A policy that cannot judge: failurePolicy Fail refuses.
    admitted(&client, "a behaving object", &misbehave("m1", "ok")).await?;
    let e = refusal(&client, &misbehave("m2", "trap-validate"))
        .await
        .context("a trapping validate was admitted under Fail")?;
    assert!(
        e.contains("policy misbehave failed") && e.contains("failurePolicy Fail"),
        "{e}"
    );
    let e = refusal(&client, &misbehave("m3", "loop-validate"))
        .await
        .context("a looping validate was admitted under Fail")?;
    assert!(
        e.contains("policy misbehave failed") && e.contains("deadline"),
        "{e}"
    );
    let log = op.log_text();
    assert!(
        !log.to_lowercase().contains("forbidden"),
        "the operator was refused something with the chart's RBAC:\n{log}"
    );
    drop(op);

    // failurePolicy Ignore admits them (the API server passes the warning on).
    let op = setup.operator(&[
        "--webhook-failure-policy",
        "Ignore",
        // Checks the certificate and the caBundle every 2 s instead of 30 (see below).
        "--webhook-check-seconds",
        "2",
    ])?;
    op.wait_ready(Duration::from_secs(300)).await?;
    wait_for(
        "a trapping validate admitted under Ignore",
        Duration::from_secs(30),
        || async {
            refusal(&client, &misbehave("m2", "trap-validate"))
                .await
                .is_none()
                .then_some(())
        },
    )
    .await
    .map_err(|e| e.context(op.log_text()))?;
    assert!(
        op.log_text().contains("admitted unvalidated"),
        "the operator logs what it let through"
    );
    // Violations still deny under Ignore.
    denied_by_webhook(
        &client,
        "num_tokens change under Ignore",
        &dc("solo", "demo", 3, 32, ""),
        &["spec.config.cassandra-yaml.num_tokens"],
    )
    .await?;

    // The operator keeps the CA bundle in the webhook configuration: wiped by hand, the
    // same bundle comes back.
    let mut wiped = configs.get(FULLNAME).await?;
    for w in wiped.webhooks.iter_mut().flatten() {
        w.client_config.ca_bundle = None;
    }
    configs
        .replace(FULLNAME, &kube::api::PostParams::default(), &wiped)
        .await?;
    wait_for(
        "the wiped caBundle restored",
        Duration::from_secs(60),
        || async { (ca_bundle(&configs.get(FULLNAME).await.ok()?)? == bundle).then_some(()) },
    )
    .await
    .map_err(|e| e.context(op.log_text()))?;
    // Its certificate Secret deleted: a new CA and serving certificate are made, the new CA
    // published, the new certificate served (the API server trusts it: requests are judged).
    let secrets = Api::<Secret>::namespaced(client.clone(), NS);
    secrets
        .delete(
            &format!("{FULLNAME}-webhook-cert"),
            &kube::api::DeleteParams::default(),
        )
        .await?;
    let bundle = wait_for("a new CA published", Duration::from_secs(60), || async {
        ca_bundle(&configs.get(FULLNAME).await.ok()?).filter(|b| *b != bundle)
    })
    .await
    .map_err(|e| e.context(op.log_text()))?;
    let remade = secrets
        .get(&format!("{FULLNAME}-webhook-cert"))
        .await
        .context("the certificate Secret made again")?
        .data
        .context("Secret data")?;
    assert_eq!(String::from_utf8_lossy(&remade["ca.crt"].0), bundle);
    wait_for(
        "the webhook judging with its new certificate",
        Duration::from_secs(60),
        || async {
            let e = refusal(&client, &dc("solo", "demo", 3, 32, "")).await?;
            e.contains("admission webhook \"validate.k8ssandra.io\" denied the request")
                .then_some(())
        },
    )
    .await
    .map_err(|e| e.context(op.log_text()))?;

    // The chart's ValidatingAdmissionPolicies. The API server runs them before webhooks.
    let mut upgrade = vec![
        "upgrade",
        RELEASE,
        &chart,
        "--kubeconfig",
        &admin,
        "--namespace",
        NS,
        "--set",
        "admissionPolicies.enabled=true",
    ];
    for s in &setup.sets {
        upgrade.extend(["--set", s.as_str()]);
    }
    run("helm", &upgrade, &setup.home)?;
    let vap = |e: &str, name: &str| {
        e.contains(&format!("ValidatingAdmissionPolicy '{name}'")) && e.contains("denied request")
    };
    let dc_policy = "cassandradatacenters.cassandra.datastax.com";
    let e = wait_for(
        "the admission policies enforced",
        Duration::from_secs(60),
        || async {
            refusal(&client, &dc("solo", "demo", 3, 32, ""))
                .await
                .filter(|e| vap(e, dc_policy))
        },
    )
    .await?;
    assert!(e.contains("num_tokens cannot change"), "{e}");
    // The caBundle survived the upgrade (Helm leaves fields it never set).
    assert_eq!(
        ca_bundle(&configs.get(FULLNAME).await?).as_deref(),
        Some(bundle.as_str())
    );
    let e = refusal(
        &client,
        &dc(
            "solo",
            "demo",
            3,
            16,
            "  annotations:\n    cassandra.datastax.com/autoupdate-spec: sometimes",
        ),
    )
    .await
    .context("a bad autoupdate-spec annotation was admitted")?;
    assert!(
        vap(&e, dc_policy) && e.contains("must be once or always"),
        "{e}"
    );
    let kc_policy = "k8ssandraclusters.k8ssandra.io";
    let e = refusal(
        &client,
        &kc(
            "kc1",
            &[("kdc1", ""), ("kdc2", "")],
            "  annotations:\n    k8ssandra.io/autoupdate-spec: sometimes",
        ),
    )
    .await
    .context("a bad K8ssandraCluster annotation was admitted")?;
    assert!(
        vap(&e, kc_policy) && e.contains("must be once or always"),
        "{e}"
    );
    admitted(
        &client,
        "a valid annotation",
        &dc(
            "solo",
            "demo",
            3,
            16,
            "  annotations:\n    cassandra.datastax.com/autoupdate-spec: once",
        ),
    )
    .await?;

    let log = op.log_text();
    assert!(
        !log.to_lowercase().contains("forbidden"),
        "the operator was refused something with the chart's RBAC:\n{log}"
    );
    Ok(())
}
