//! Telemetry end to end, on one Kubernetes cluster with the k8ssandra-cluster and
//! cassandra-datacenter policies in one operator and the Cassandra simulator playing the
//! nodes. One environment, one sequential scenario:
//!
//! 1. A K8ssandraCluster with `telemetry.prometheus`, `telemetry.vector` (a remap transform
//!    and a Prometheus remote-write sink), a relabel that drops a metric family, full query
//!    logging on, CDC and a `datacenterName` override, while the ServiceMonitor kind is not
//!    installed: the datacenter becomes Ready, `TelemetryReady=False` says the kind is
//!    missing; the metrics-agent and Vector ConfigMaps hold the expected configuration, the
//!    pods mount them, CDC is in the pods' configuration, every node logs its queries, and
//!    the simulator's `/metrics` no longer shows the filtered families. The operator's and
//!    the simulator's `/metrics` pass `promtool check metrics`.
//! 2. The ServiceMonitor CRD is installed → the ServiceMonitor appears and selects the
//!    datacenter's all-pods Service by the labels and port it really has.
//! 3. Full query logging off → every node reports it off; no pod restarted.
//! 4. Bad input, one fault at a time: a remap transform with a VRL error, an unknown sink
//!    type, a sink whose input names nothing, a relabel regex and an MCAC metric filter
//!    that do not parse → `Valid=False` naming the field and the error; the Vector and
//!    metrics-agent ConfigMaps and the pods are unchanged.
//! 5. Audit logging through the typed fields (the text logger) → the rendered configuration
//!    holds it, the audit log has a volume of its own in the Cassandra and logger
//!    containers; every node restarts exactly once, one at a time.
//! 6. k8ssandra-operator's Prometheus example manifest, byte for byte (after ours is
//!    deleted: same datacenter name): its datacenter, Stargate and Reaper become Ready, and
//!    each gets a ServiceMonitor selecting one of its Services by labels and port.

use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use cassandra_sim::{SimHandle, SimOptions, Simulator};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::api::ListParams;
use kube::{Api, Client};
use serde_json::Value;

use k8ssandra_testenv::{TestEnv, TestEnvOptions};
use support::{
    Operator, SERVICE_MONITOR_CRD, apply_yaml, condition, create_namespace, dynamic_api,
    install_crds, operator_crds, wait_crd, wait_for,
};

const NS: &str = "k8ssandra-operator";
const WAIT: Duration = Duration::from_secs(300);
const AGENT_CM: &str = "demo-dc1-metrics-agent-config";
const VECTOR_CM: &str = "demo-dc1-cass-vector";
const SERVICE_MONITOR: &str = "demo-dc1-cass-servicemonitor";

const GOOD_VRL: &str = r#"source = '''\n.tags.env = \"e2e\"\n'''"#;
const BAD_VRL: &str = r#"source = '''\n.tags.env = upcase(\n'''"#;

/// The K8ssandraCluster; `remap` is the remap transform's config, `sink_type` the sink's
/// type, `fql` full query logging, `audit` whether the typed audit logging is on.
fn manifest(remap: &str, sink_type: &str, fql: bool, audit: bool) -> String {
    let audit = if audit {
        "    auditLogging:\n      enabled: true\n      logger: FileAuditLogger\n      includedKeyspaces: [system_auth]\n      excludedCategories: [QUERY]\n"
    } else {
        ""
    };
    format!(
        r#"apiVersion: k8ssandra.io/v1alpha1
kind: K8ssandraCluster
metadata:
  name: demo
  namespace: {NS}
spec:
  cassandra:
    serverVersion: "4.1.5"
    storageConfig:
      cassandraDataVolumeClaimSpec:
        storageClassName: standard
        accessModes: [ReadWriteOnce]
        resources: {{requests: {{storage: 1Gi}}}}
    fullQueryLogging:
      enabled: {fql}
{audit}    telemetry:
      prometheus:
        enabled: true
        commonLabels: {{release: kube-prometheus}}
      cassandra:
        relabels:
          - sourceLabels: [__name__]
            regex: org_apache_cassandra_metrics_table_pending_compactions
            action: drop
      vector:
        enabled: true
        scrapeInterval: 15s
        components:
          transforms:
            - name: enriched
              type: remap
              inputs: [cassandra_metrics]
              config: "{remap}"
          sinks:
            - name: prom_rw
              type: {sink_type}
              inputs: [enriched]
              config: |
                endpoint = "http://prometheus.monitoring:9090/api/v1/write"
    datacenters:
      - metadata:
          name: dc1
        datacenterName: "Real DC1"
        size: 2
        cdc:
          pulsarServiceUrl: pulsar://pulsar.pulsar:6650
          topicPrefix: events-
        racks:
          - name: r1
"#
    )
}

/// promtool from `$PROMTOOL` (scripts/test.sh exports it), else the install script's.
/// Missing promtool fails the test.
fn promtool() -> Result<String> {
    if let Ok(p) = std::env::var("PROMTOOL") {
        return Ok(p);
    }
    let script = support::workspace_root().join("scripts/install-promtool.sh");
    let out = std::process::Command::new(script).output()?;
    if !out.status.success() {
        bail!(
            "promtool is required: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string())
}

fn promtool_check(what: &str, text: &str) -> Result<()> {
    use std::io::Write;
    let mut child = std::process::Command::new(promtool()?)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("promtool stdin")?
        .write_all(text.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "promtool check metrics refused {what}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

async fn datacenter(client: &Client) -> Option<Value> {
    let dcs = dynamic_api(
        client,
        NS,
        "cassandra.datastax.com",
        "v1beta1",
        "CassandraDatacenter",
    )
    .await
    .ok()?;
    dcs.get_opt("dc1").await.ok().flatten().map(|o| o.data)
}

async fn k8ssandra_cluster(client: &Client) -> Option<Value> {
    let kcs = dynamic_api(client, NS, "k8ssandra.io", "v1alpha1", "K8ssandraCluster")
        .await
        .ok()?;
    kcs.get_opt("demo").await.ok().flatten().map(|o| o.data)
}

async fn pods(client: &Client) -> Result<Vec<Pod>> {
    Ok(Api::<Pod>::namespaced(client.clone(), NS)
        .list(&ListParams::default().labels("cassandra.datastax.com/datacenter=dc1"))
        .await?
        .items)
}

async fn pod_uids(client: &Client) -> Result<BTreeMap<String, String>> {
    Ok(pods(client)
        .await?
        .into_iter()
        .map(|p| {
            (
                p.metadata.name.unwrap_or_default(),
                p.metadata.uid.unwrap_or_default(),
            )
        })
        .collect())
}

fn pod_ips(pods: &[Pod]) -> Vec<String> {
    pods.iter()
        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
        .collect()
}

/// The `CONFIG_FILE_DATA` of a pod, parsed.
fn config_file_data(pod: &Pod) -> Result<Value> {
    let spec = pod.spec.as_ref().context("pod without spec")?;
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .find(|c| c.name == "server-config-init")
        .context("no server-config-init")?;
    let text = init
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "CONFIG_FILE_DATA")
        .and_then(|e| e.value.clone())
        .context("no CONFIG_FILE_DATA")?;
    Ok(serde_json::from_str(&text)?)
}

async fn get_text(url: &str) -> Option<(u16, String)> {
    let r = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .ok()?
        .get(url)
        .send()
        .await
        .ok()?;
    let status = r.status().as_u16();
    Some((status, r.text().await.ok()?))
}

/// Full query logging as each node reports it through its management API.
async fn fql_states(sim: &SimHandle, ips: &[String]) -> Vec<Option<bool>> {
    let mut out = Vec::new();
    for ip in ips {
        let url = format!(
            "http://{ip}:{}/api/v0/ops/node/fullquerylogging",
            sim.mgmt_port()
        );
        let state = match get_text(&url).await {
            Some((200, body)) => serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["entity"].as_bool()),
            _ => None,
        };
        out.push(state);
    }
    out
}

fn starts_of(sim: &SimHandle) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for h in support::sim_starts(sim) {
        if let Some(p) = h.pod {
            *out.entry(p.name).or_default() += 1;
        }
    }
    out
}

fn explain(op: &Operator, sim: &SimHandle) -> String {
    let log = op.log_text();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect();
    format!(
        "violations: {:?}\noperator:\n{}",
        sim.violations(),
        lines[lines.len().saturating_sub(20)..].join("\n")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_end_to_end() -> Result<()> {
    let env = TestEnv::start(TestEnvOptions {
        clusters: 1,
        // Three for k8ssandra-operator's example (one Cassandra pod per node), one spare.
        nodes_per_cluster: 4,
        ..Default::default()
    })
    .await?;
    let client = env.cluster(0).client();
    install_crds(&client, &operator_crds()?).await?;
    wait_crd(&client, "k8ssandra.io", "v1alpha1", "K8ssandraCluster").await?;
    create_namespace(&client, NS).await?;

    let mut opts = SimOptions::default();
    opts.config.bootstrap_delay = Duration::from_millis(200);
    let sim = Simulator::start(
        opts,
        vec![(env.cluster(0).context_name().to_string(), client.clone())],
    )
    .await?;
    let tmp = tempfile::tempdir()?;
    let op = Operator::start_for(
        &tmp.path().join("op"),
        env.cluster(0),
        &[
            "cassandra-datacenter",
            "k8ssandra-cluster",
            "stargate",
            "reaper",
        ],
        &["--resync-seconds", "5"],
    )?;
    op.wait_ready(Duration::from_secs(180)).await?;

    // --- 1. deploy without the ServiceMonitor kind ---
    apply_yaml(
        &client,
        &manifest(GOOD_VRL, "prometheus_remote_write", true, false),
        NS,
    )
    .await?;
    wait_for("dc1 Ready", WAIT, || async {
        datacenter(&client)
            .await
            .filter(support::datacenter_ready)
            .map(|_| ())
    })
    .await
    .map_err(|e| e.context(explain(&op, &sim)))?;

    let dc = datacenter(&client).await.context("dc1")?;
    let t = condition(&dc, "TelemetryReady").context("no TelemetryReady condition")?;
    assert_eq!(t["status"], "False", "{t}");
    assert_eq!(t["reason"], "ServiceMonitorKindMissing", "{t}");

    let cms = Api::<ConfigMap>::namespaced(client.clone(), NS);
    let agent = cms.get(AGENT_CM).await?;
    let agent_text = agent
        .data
        .as_ref()
        .and_then(|d| d.get("metrics-collector.yaml"))
        .context("metrics-collector.yaml")?;
    let agent_doc: Value = serde_yaml::from_str(agent_text)?;
    let relabels = agent_doc["relabels"].as_array().context("relabels")?;
    assert_eq!(relabels[0]["targetLabel"], "should_drop");
    assert_eq!(
        relabels.last().context("a relabel")?["regex"],
        "org_apache_cassandra_metrics_table_pending_compactions"
    );
    let vector = cms.get(VECTOR_CM).await?;
    let toml = vector
        .data
        .as_ref()
        .and_then(|d| d.get("vector.toml"))
        .context("vector.toml")?
        .clone();
    for part in [
        "[sources.cassandra_metrics_raw]",
        "scrape_interval_secs = 15",
        "[transforms.cassandra_metrics]",
        "[transforms.enriched]",
        "[sinks.prom_rw]",
        "type = \"prometheus_remote_write\"",
        "[sinks.console_log]",
    ] {
        assert!(
            toml.contains(part),
            "{part} missing from vector.toml:\n{toml}"
        );
    }

    let live = pods(&client).await?;
    assert_eq!(live.len(), 2);
    for pod in &live {
        let spec = pod.spec.as_ref().context("spec")?;
        let mounts = |c: &str| -> Vec<(String, String)> {
            spec.containers
                .iter()
                .find(|x| x.name == c)
                .and_then(|x| x.volume_mounts.clone())
                .unwrap_or_default()
                .into_iter()
                .map(|m| (m.name, m.mount_path))
                .collect()
        };
        assert!(mounts("cassandra").contains(&(
            "metrics-agent-config".into(),
            "/opt/management-api/configs".into()
        )));
        assert!(
            mounts("server-system-logger")
                .contains(&("vector-config".into(), "/etc/vector".into()))
        );
        let vols: BTreeMap<String, Option<String>> = spec
            .volumes
            .iter()
            .flatten()
            .map(|v| {
                (
                    v.name.clone(),
                    v.config_map.as_ref().map(|c| c.name.clone()),
                )
            })
            .collect();
        assert_eq!(
            vols.get("metrics-agent-config"),
            Some(&Some(AGENT_CM.into()))
        );
        assert_eq!(vols.get("vector-config"), Some(&Some(VECTOR_CM.into())));
        // CDC as cass-operator renders it.
        let cfg = config_file_data(pod)?;
        assert_eq!(cfg["cassandra-yaml"]["cdc_enabled"], true);
        let jvm = cfg.to_string();
        assert!(
            jvm.contains("-javaagent:/opt/cdc_agent/cdc-agent.jar=pulsarServiceUrl=pulsar://pulsar.pulsar:6650,topicPrefix=events-"),
            "{jvm}"
        );
        assert!(cfg["cassandra-yaml"]["full_query_logging_options"].is_object());
    }

    // The simulator applies the mounted relabels: the default drop of unlisted table
    // families and the user's drop.
    let ips = pod_ips(&live);
    for ip in &ips {
        let url = format!("http://{ip}:9000/metrics");
        let text = wait_for(
            &format!("a scrape of {url}"),
            Duration::from_secs(60),
            || async {
                match get_text(&url).await {
                    Some((200, text)) => Some(text),
                    _ => None,
                }
            },
        )
        .await
        .map_err(|e| e.context(explain(&op, &sim)))?;
        assert!(!text.contains("bloom_filter_false_positives"), "{text}");
        assert!(!text.contains("pending_compactions"), "{text}");
        assert!(text.contains("org_apache_cassandra_metrics_table_read_latency_seconds_bucket"));
        assert!(text.contains("org_apache_cassandra_metrics_client_connected_native_clients"));
        promtool_check(&format!("the simulator's /metrics of {ip}"), &text)?;
    }
    promtool_check("the operator's /metrics", &op.metrics().await?)?;

    wait_for("every node logs its queries", WAIT, || async {
        let states = fql_states(&sim, &ips).await;
        states.iter().all(|s| *s == Some(true)).then_some(())
    })
    .await
    .map_err(|e| e.context(explain(&op, &sim)))?;

    // --- 2. the ServiceMonitor kind arrives ---
    apply_yaml(&client, SERVICE_MONITOR_CRD, NS).await?;
    wait_crd(&client, "monitoring.coreos.com", "v1", "ServiceMonitor").await?;
    let sms = dynamic_api(&client, NS, "monitoring.coreos.com", "v1", "ServiceMonitor").await?;
    let sm = wait_for("the ServiceMonitor", WAIT, || async {
        sms.get_opt(SERVICE_MONITOR).await.ok().flatten()
    })
    .await
    .map_err(|e| e.context(explain(&op, &sim)))?;
    let svc = Api::<Service>::namespaced(client.clone(), NS)
        .get("demo-dc1-all-pods-service")
        .await?;
    let svc_labels = svc.metadata.labels.clone().unwrap_or_default();
    let selector = sm.data["spec"]["selector"]["matchLabels"]
        .as_object()
        .context("matchLabels")?;
    assert!(selector.contains_key("cassandra.datastax.com/datacenter"));
    for (k, v) in selector {
        assert_eq!(
            svc_labels.get(k).map(String::as_str),
            v.as_str(),
            "selector {k} does not match the Service"
        );
    }
    let port = sm.data["spec"]["endpoints"][0]["port"]
        .as_str()
        .context("port")?;
    assert!(
        svc.spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .is_some_and(|ps| ps
                .iter()
                .any(|p| p.name.as_deref() == Some(port) && p.port == 9000)),
        "the Service has no port {port} on 9000"
    );
    assert_eq!(
        sm.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("release"))
            .map(String::as_str),
        Some("kube-prometheus")
    );
    wait_for("TelemetryReady=True", WAIT, || async {
        let dc = datacenter(&client).await?;
        (condition(&dc, "TelemetryReady")?["status"] == "True").then_some(())
    })
    .await?;
    // The operator notices the kind is served now and watches it: a settled ServiceMonitor is
    // then part of the plan ⊆ live check, and a reconcile writes nothing (without the watch
    // it would be applied again on every reconcile).
    wait_for("the operator watches ServiceMonitors", WAIT, || async {
        op.log_text().contains("kind is served now").then_some(())
    })
    .await
    .map_err(|e| e.context(explain(&op, &sim)))?;
    let settled_rv = wait_for("the ServiceMonitor to settle", WAIT, || async {
        let before = sms
            .get(SERVICE_MONITOR)
            .await
            .ok()?
            .metadata
            .resource_version;
        let writes = op.metric("k8ssandra_api_writes_all_total", "").await.ok()?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let after = sms
            .get(SERVICE_MONITOR)
            .await
            .ok()?
            .metadata
            .resource_version;
        let writes_after = op.metric("k8ssandra_api_writes_all_total", "").await.ok()?;
        (before == after && writes == writes_after).then_some((after, writes_after))
    })
    .await?;
    let dcs = dynamic_api(
        &client,
        NS,
        "cassandra.datastax.com",
        "v1beta1",
        "CassandraDatacenter",
    )
    .await?;
    dcs.patch(
        "dc1",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(
            serde_json::json!({"metadata": {"annotations": {"e2e/nudge": "1"}}}),
        ),
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        sms.get(SERVICE_MONITOR).await?.metadata.resource_version,
        settled_rv.0,
        "a reconcile rewrote the settled ServiceMonitor"
    );
    assert_eq!(
        op.metric("k8ssandra_api_writes_all_total", "").await?,
        settled_rv.1,
        "a reconcile of a settled datacenter wrote"
    );

    // --- 3. full query logging off, without restarts ---
    let uids = pod_uids(&client).await?;
    let starts = starts_of(&sim);
    apply_yaml(
        &client,
        &manifest(GOOD_VRL, "prometheus_remote_write", false, false),
        NS,
    )
    .await?;
    wait_for("every node stops logging its queries", WAIT, || async {
        let states = fql_states(&sim, &ips).await;
        states.iter().all(|s| *s == Some(false)).then_some(())
    })
    .await
    .map_err(|e| e.context(explain(&op, &sim)))?;
    assert_eq!(pod_uids(&client).await?, uids, "a pod was recreated");
    assert_eq!(starts_of(&sim), starts, "a node restarted");

    // --- 4. invalid Vector configurations and metric filters change nothing ---
    let good = manifest(GOOD_VRL, "prometheus_remote_write", false, false);
    for (bad, field, text) in [
        (
            manifest(BAD_VRL, "prometheus_remote_write", false, false),
            "spec.cassandra.telemetry.vector.components.transforms[0]",
            "transforms.enriched: VRL error",
        ),
        (
            manifest(GOOD_VRL, "prometheus_remote_writer", false, false),
            "spec.cassandra.telemetry.vector.components.sinks[0]",
            "unknown sink type `prometheus_remote_writer`",
        ),
        // A sink reading a component that does not exist.
        (
            good.replace("inputs: [enriched]", "inputs: [enrichd]"),
            "spec.cassandra.telemetry.vector.components.sinks[0]",
            "input `enrichd`",
        ),
        // A metric filter (the relabel dropping a family) whose regex does not parse.
        (
            good.replace(
                "regex: org_apache_cassandra_metrics_table_pending_compactions",
                "regex: \"org_apache_cassandra_metrics_table_(pending\"",
            ),
            "spec.cassandra.telemetry.cassandra.relabels[0].regex",
            "does not parse as a regular expression",
        ),
        // An MCAC metric filter that is neither `allow:` nor `deny:`.
        (
            good.replace(
                "      prometheus:\n",
                "      mcac:\n        metricFilters: [\"deny org_apache_cassandra_metrics_table\"]\n      prometheus:\n",
            ),
            "spec.cassandra.telemetry.mcac.metricFilters[0]",
            "does not parse",
        ),
    ] {
        assert_ne!(bad, good, "the fault of {field} was not written into the manifest");
        apply_yaml(&client, &bad, NS).await?;
        let message = wait_for(&format!("Valid=False naming {field}"), WAIT, || async {
            let kc = k8ssandra_cluster(&client).await?;
            let c = condition(&kc, "Valid")?;
            let message = c["message"].as_str().unwrap_or_default();
            // The previous case's message may still be there for a moment.
            (c["status"] == "False" && message.contains(field) && message.contains(text))
                .then(|| message.to_string())
        })
        .await
        .map_err(|e| e.context(explain(&op, &sim)))?;
        assert!(message.contains(field), "{message}");
        assert!(message.contains(text), "{message}");
        // Give the operator a few reconciles to (not) act on it.
        tokio::time::sleep(Duration::from_secs(6)).await;
        let now = cms.get(VECTOR_CM).await?;
        assert_eq!(
            now.data.as_ref().and_then(|d| d.get("vector.toml")),
            Some(&toml),
            "the last good configuration was replaced"
        );
        assert_eq!(
            cms.get(AGENT_CM)
                .await?
                .data
                .as_ref()
                .and_then(|d| d.get("metrics-collector.yaml")),
            Some(agent_text),
            "the last good metrics-agent configuration was replaced"
        );
        assert_eq!(pod_uids(&client).await?, uids, "a pod was recreated");
        assert_eq!(starts_of(&sim), starts, "a node restarted");
    }

    // --- 5. audit logging: one rolling restart, one node at a time ---
    apply_yaml(
        &client,
        &manifest(GOOD_VRL, "prometheus_remote_write", false, true),
        NS,
    )
    .await?;
    wait_for("every pod restarted with audit logging", WAIT, || async {
        let live = pods(&client).await.ok()?;
        let dc = datacenter(&client).await?;
        let audited = live.len() == 2
            && live.iter().all(|p| {
                config_file_data(p)
                    .is_ok_and(|c| c["cassandra-yaml"]["audit_logging_options"]["enabled"] == true)
            });
        (audited && support::datacenter_ready(&dc)).then_some(())
    })
    .await
    .map_err(|e| e.context(explain(&op, &sim)))?;
    let live = pods(&client).await?;
    let audit = &config_file_data(&live[0])?["cassandra-yaml"]["audit_logging_options"];
    assert_eq!(audit["included_keyspaces"], "system_auth");
    assert_eq!(audit["excluded_categories"], "QUERY");
    assert_eq!(audit["logger"][0]["class_name"], "FileAuditLogger");
    assert_eq!(audit["audit_logs_dir"], "/var/log/cassandra/audit");
    // The audit log has a volume of its own, seen by Cassandra and by the Vector logger.
    for pod in &live {
        let spec = pod.spec.as_ref().context("spec")?;
        assert!(
            spec.volumes
                .iter()
                .flatten()
                .any(|v| v.name == "audit-logs" && v.empty_dir.is_some()),
            "no audit-logs volume"
        );
        for c in ["cassandra", "server-system-logger"] {
            let mounted = spec
                .containers
                .iter()
                .find(|x| x.name == c)
                .and_then(|x| x.volume_mounts.clone())
                .unwrap_or_default()
                .iter()
                .any(|m| m.name == "audit-logs" && m.mount_path == "/var/log/cassandra/audit");
            assert!(mounted, "audit-logs not mounted in {c}");
        }
    }
    let after = starts_of(&sim);
    for (pod, n) in &starts {
        assert_eq!(
            after.get(pod),
            Some(&(n + 1)),
            "{pod} restarted {after:?} vs {starts:?}"
        );
    }
    // One at a time: the simulator refuses (and records) a start while another node of
    // the ring is down or joining, so no violation means no overlap.
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());

    // --- 6. k8ssandra-operator's own telemetry example, applied unchanged ---
    // Its datacenter is called dc1 too, in the same namespace: ours goes first.
    let kcs = dynamic_api(&client, NS, "k8ssandra.io", "v1alpha1", "K8ssandraCluster").await?;
    kcs.delete("demo", &Default::default()).await?;
    wait_for("demo and its datacenter gone", WAIT, || async {
        let gone = k8ssandra_cluster(&client).await.is_none()
            && datacenter(&client).await.is_none()
            && pods(&client).await.ok()?.is_empty();
        gone.then_some(())
    })
    .await
    .map_err(|e| e.context(explain(&op, &sim)))?;
    apply_yaml(&client, UPSTREAM_PROMETHEUS_EXAMPLE, NS).await?;
    wait_for("the example's dc1 Ready", WAIT, || async {
        let dc = datacenter(&client).await?;
        (dc["spec"]["clusterName"] == "test" && support::datacenter_ready(&dc)).then_some(())
    })
    .await
    .map_err(|e| e.context(explain(&op, &sim)))?;
    let kc = kcs.get("test").await?;
    if let Some(c) = condition(&kc.data, "Valid") {
        assert_ne!(c["status"], "False", "the example is refused: {c}");
    }
    for (group, kind) in [
        ("stargate.k8ssandra.io", "Stargate"),
        ("reaper.k8ssandra.io", "Reaper"),
    ] {
        let api = dynamic_api(&client, NS, group, "v1alpha1", kind).await?;
        wait_for(&format!("the example's {kind} Ready"), WAIT, || async {
            let list = api.list(&ListParams::default()).await.ok()?.items;
            let ready = list.len() == 1
                && condition(&list[0].data, "Ready").is_some_and(|c| c["status"] == "True");
            ready.then_some(())
        })
        .await
        .map_err(|e| e.context(explain(&op, &sim)))?;
    }
    // A ServiceMonitor each for Cassandra, Stargate and Reaper, each selecting a Service
    // of the example's by the labels it has and a port it exposes.
    let services = Api::<Service>::namespaced(client.clone(), NS);
    let monitors = wait_for("the example's three ServiceMonitors", WAIT, || async {
        let list = sms.list(&ListParams::default()).await.ok()?.items;
        let ours: Vec<_> = list
            .into_iter()
            .filter(|m| {
                m.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.starts_with("test-"))
            })
            .collect();
        (ours.len() == 3).then_some(ours)
    })
    .await
    .map_err(|e| e.context(explain(&op, &sim)))?;
    let mut kinds: Vec<&str> = Vec::new();
    for m in &monitors {
        let name = m.metadata.name.as_deref().unwrap_or_default();
        for k in ["cass", "stargate", "reaper"] {
            if name.ends_with(&format!("-{k}-servicemonitor")) {
                kinds.push(k);
            }
        }
        let selector = m.data["spec"]["selector"]["matchLabels"]
            .as_object()
            .with_context(|| format!("{name}: matchLabels"))?;
        let wanted: Vec<String> = selector
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        let selected = services
            .list(&ListParams::default().labels(&wanted.join(",")))
            .await?
            .items;
        let ports: Vec<&str> = m.data["spec"]["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["port"].as_str())
            .collect();
        assert!(!ports.is_empty(), "{name} names no port");
        assert!(
            selected.iter().any(|svc| {
                let svc_ports = svc
                    .spec
                    .as_ref()
                    .and_then(|s| s.ports.clone())
                    .unwrap_or_default();
                ports
                    .iter()
                    .all(|p| svc_ports.iter().any(|sp| sp.name.as_deref() == Some(*p)))
            }),
            "{name} selects no Service with the ports {ports:?}: {selector:?}"
        );
    }
    kinds.sort_unstable();
    assert_eq!(kinds, ["cass", "reaper", "stargate"], "{monitors:?}");
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    Ok(())
}

/// k8ssandra-operator's docs/content/en/tasks/monitor/prometheus-grafana/k8ssandra.yaml
/// (commit 9e3d1b5), byte for byte: Prometheus for Cassandra, Stargate and Reaper.
const UPSTREAM_PROMETHEUS_EXAMPLE: &str = r#"apiVersion: k8ssandra.io/v1alpha1
kind: K8ssandraCluster
metadata:
  name: test
  namespace: k8ssandra-operator
spec:
  cassandra:
    serverVersion: "4.0.17"
    telemetry:
      prometheus:
        enabled: true
    storageConfig:
      cassandraDataVolumeClaimSpec:
        storageClassName: standard
        accessModes:
          - ReadWriteOnce
        resources:
          requests:
            storage: 1Gi
    config:
      jvmOptions:
        heapSize: 512M
    networking: 
      hostNetwork: false
    datacenters:
      - metadata:
          name: dc1
        size: 3
    mgmtAPIHeap: 64Mi 
  stargate:
    size: 1
    telemetry:
      prometheus:
        enabled: true
  reaper:
    keyspace: reaper_db
    telemetry:
      prometheus:
        enabled: true"#;
