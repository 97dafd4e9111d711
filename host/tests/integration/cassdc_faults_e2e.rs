//! The CassandraDatacenter lifecycle under faults, end to end (real operator binary, real
//! wasm policy, a testenv cluster, the Cassandra simulator):
//! - a node's management API answering 500s, then hanging past the client timeout, while
//!   the operator must start it: probes back off, `Ready=False ManagementApiFailed` names
//!   the node and the error, a Warning event is recorded, no pod is recreated, and once
//!   the API answers again the datacenter becomes Ready;
//! - the operator SIGKILLed while a scale-down's decommission runs: a new operator finishes
//!   the scale-down without a second decommission and without touching the other claims.

use crate::support;

use std::time::Duration;

use anyhow::{Context, Result};
use cassandra_sim::{
    CassandraState, ConfigUpdate, Fault, FaultRequest, FaultTarget, RequestEntry, SimHandle,
    SimOptions, Simulator,
};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod};
use kube::api::{DynamicObject, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use k8ssandra_testenv::{TestEnv, TestEnvOptions};
use support::{
    Operator, apply_yaml, create_namespace, datacenters, install_crds, normal_nodes, plugin_dir,
    tail, uids, wait_for, write_kubeconfig,
};

const NS: &str = "faults";
const REASON: &str = "ManagementApiFailed";
const LIVENESS: &str = "/api/v0/probes/liveness";

fn dc_manifest(size: u32) -> String {
    format!(
        r#"
apiVersion: cassandra.datastax.com/v1beta1
kind: CassandraDatacenter
metadata:
  name: dc1
  namespace: {NS}
spec:
  clusterName: demo
  serverType: cassandra
  serverVersion: "4.1.5"
  size: {size}
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

struct Setup {
    client: Client,
    sim: SimHandle,
    dcs: Api<DynamicObject>,
    kubeconfig: std::path::PathBuf,
    plugins: std::path::PathBuf,
}

async fn setup(env: &TestEnv, tmp: &std::path::Path, bootstrap: Duration) -> Result<Setup> {
    let client = env.cluster(0).client();
    install_crds(&client, &k8ssandra_api::all_crds_yaml()).await?;
    create_namespace(&client, NS).await?;
    let mut opts = SimOptions::default();
    opts.config.bootstrap_delay = bootstrap;
    opts.config.decommission_delay = Duration::from_millis(300);
    opts.config.job_duration = Duration::from_millis(200);
    let sim = Simulator::start(
        opts,
        vec![(env.cluster(0).context_name().to_string(), client.clone())],
    )
    .await?;
    let kubeconfig = write_kubeconfig(tmp, env.cluster(0))?;
    let plugins = plugin_dir(&tmp.join("plugins"), &["cassandra-datacenter"])?;
    let dcs = datacenters(&client, NS).await?;
    Ok(Setup {
        client,
        sim,
        dcs,
        kubeconfig,
        plugins,
    })
}

async fn start_operator(s: &Setup) -> Result<Operator> {
    // Resyncs every 2 s: a reconcile (and with it an observation) at least that often, so
    // the spacing of a failing node's probes is the host's backoff, not a lack of triggers.
    let op = Operator::start(&s.kubeconfig, &s.plugins, &["--resync-seconds", "2"])?;
    op.wait_ready(Duration::from_secs(60)).await?;
    Ok(op)
}

async fn condition(dcs: &Api<DynamicObject>, kind: &str) -> Option<Value> {
    let dc = dcs.get("dc1").await.ok()?;
    dc.data
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .cloned()
}

async fn dc_ready(dcs: &Api<DynamicObject>) -> bool {
    let ready = condition(dcs, "Ready").await;
    let progress = match dcs.get("dc1").await {
        Ok(dc) => dc
            .data
            .pointer("/status/cassandraOperatorProgress")
            .and_then(Value::as_str)
            .map(str::to_string),
        Err(_) => None,
    };
    ready.is_some_and(|c| c["status"] == "True") && progress.as_deref() == Some("Ready")
}

fn starts_of(sim: &SimHandle, pod: &str) -> usize {
    sim.history()
        .iter()
        .filter(|h| h.action == "start" && h.pod.as_ref().is_some_and(|p| p.name == pod))
        .count()
}

/// The liveness probes of `pod` that arrived while a fault shaped the answers, from `from`
/// (a sequence number of the simulator's request log) on.
fn faulted_probes(sim: &SimHandle, pod: &str, from: u64) -> Vec<RequestEntry> {
    sim.requests()
        .into_iter()
        .filter(|r| r.seq >= from && r.faulted && r.pod.name == pod && r.path == LIVENESS)
        .collect()
}

fn gaps_ms(calls: &[RequestEntry]) -> Vec<i64> {
    calls.windows(2).map(|w| w[1].at_ms - w[0].at_ms).collect()
}

async fn warning_events(client: &Client, reason: &str) -> Vec<Event> {
    let events: Api<Event> = Api::namespaced(client.clone(), NS);
    events
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some(reason)
                && e.type_.as_deref() == Some("Warning")
                && e.involved_object.name.as_deref() == Some("dc1")
        })
        .collect()
}

/// What the simulator and the datacenter's status say, for a failure message.
async fn diagnosis(sim: &SimHandle, dcs: &Api<DynamicObject>) -> String {
    let nodes: Vec<String> = sim
        .state()
        .clusters
        .iter()
        .flat_map(|c| c.nodes.iter())
        .map(|n| {
            format!(
                "{:?} {:?} gossip={:?} ready={} decommissioned={}",
                n.pod.as_ref().map(|p| p.name.clone()),
                n.cassandra,
                n.gossip_status,
                n.ready,
                n.decommissioned
            )
        })
        .collect();
    let status = dcs
        .get("dc1")
        .await
        .ok()
        .and_then(|d| d.data.get("status").cloned())
        .unwrap_or_default();
    format!("nodes: {nodes:#?}\nstatus: {status:#}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_management_api_is_backed_off_reported_and_survived() -> Result<()> {
    let env = TestEnv::start(TestEnvOptions {
        clusters: 1,
        ..Default::default()
    })
    .await?;
    let tmp = tempfile::tempdir()?;
    // Bootstraps long enough that the third node's API is broken before its turn comes.
    let s = setup(&env, tmp.path(), Duration::from_secs(4)).await?;
    let op = start_operator(&s).await?;
    let (client, sim, dcs) = (&s.client, &s.sim, &s.dcs);
    let victim = "demo-dc1-r1-sts-2";

    apply_yaml(client, &dc_manifest(3), NS).await?;
    // The victim's fault goes in as soon as the simulator knows its pod: under load the
    // third pod can get its address late, after the first two nodes already joined. A
    // tight poll, since the operator may start it moments after its API comes up.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !sim
        .state()
        .pods
        .iter()
        .any(|p| p.key.name == victim && p.ip.is_some())
    {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the simulator never saw {victim}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let first_seq = sim.requests().last().map_or(0, |r| r.seq);
    sim.set_fault(&FaultRequest {
        target: FaultTarget::pod(victim),
        fault: Some(Fault {
            error_rate: 1.0,
            ..Fault::default()
        }),
        clear: false,
        wipe: false,
    })?;
    assert_eq!(
        starts_of(sim, victim),
        0,
        "the fault came too late: {victim} was started already"
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let pod_uids = uids(&pods).await?;
    assert_eq!(pod_uids.len(), 3, "{pod_uids:?}");

    // 500s: the others start, the victim is reported, and its probes back off.
    let reported = wait_for(
        "Ready=False ManagementApiFailed naming the victim and HTTP 500",
        Duration::from_secs(120),
        || async {
            let c = condition(dcs, "Ready").await?;
            let message = c["message"].as_str()?.to_string();
            (c["status"] == "False"
                && c["reason"] == REASON
                && message.contains(victim)
                && message.contains("HTTP 500")
                && normal_nodes(sim, "demo") == 2)
                .then_some(message)
        },
    )
    .await
    .map_err(|e| e.context(tail(&op.log_text(), 40)))?;
    wait_for(
        "a Warning event with the same message",
        Duration::from_secs(30),
        || async {
            warning_events(client, REASON)
                .await
                .iter()
                .any(|e| e.message.as_deref() == Some(reported.as_str()))
                .then_some(())
        },
    )
    .await?;
    let probes = wait_for(
        "seven failed probes of the victim",
        Duration::from_secs(240),
        || async {
            let p = faulted_probes(sim, victim, first_seq);
            (p.len() >= 7).then_some(p)
        },
    )
    .await?;
    assert!(probes[..7].iter().all(|p| p.status == 500), "{probes:?}");
    let gaps = gaps_ms(&probes[..7]);
    // The shortest hold is half the 1 s base; a no-backoff operator would probe on every
    // reconcile, several times a second while the other nodes bootstrap.
    assert!(
        gaps.iter().all(|g| *g >= 400),
        "probes closer than the backoff allows: {gaps:?} ms"
    );
    let early = gaps[0].min(gaps[1]);
    let late = gaps[4].max(gaps[5]);
    assert!(
        late >= 2 * early && late >= 8_000,
        "gaps between probes do not grow: {gaps:?} ms"
    );
    assert_eq!(starts_of(sim, victim), 0, "started through a broken API?");

    // Hanging past the client timeout: reported as a timeout, still backed off.
    let hang_seq = sim.requests().last().map_or(0, |r| r.seq);
    sim.set_fault(&FaultRequest {
        target: FaultTarget::pod(victim),
        fault: Some(Fault {
            latency_ms: 60_000,
            ..Fault::default()
        }),
        clear: false,
        wipe: false,
    })?;
    let timed_out = wait_for(
        "Ready=False ManagementApiFailed saying the victim timed out",
        Duration::from_secs(120),
        || async {
            let c = condition(dcs, "Ready").await?;
            let message = c["message"].as_str()?.to_string();
            (c["reason"] == REASON && message.contains(victim) && message.contains("timed out"))
                .then_some(message)
        },
    )
    .await
    .map_err(|e| e.context(tail(&op.log_text(), 40)))?;
    wait_for(
        "a Warning event for the timeout",
        Duration::from_secs(30),
        || async {
            warning_events(client, REASON)
                .await
                .iter()
                .any(|e| e.message.as_deref() == Some(timed_out.as_str()))
                .then_some(())
        },
    )
    .await?;
    let hanging = wait_for(
        "a second probe of the hanging API",
        Duration::from_secs(120),
        || async {
            let p: Vec<RequestEntry> = faulted_probes(sim, victim, hang_seq)
                .into_iter()
                .filter(|r| r.status != 500)
                .collect();
            (p.len() >= 2).then_some(p)
        },
    )
    .await?;
    // Each waits out the client timeout, then the (by now long) hold.
    assert!(
        gaps_ms(&hanging).iter().all(|g| *g >= 10_000),
        "hanging probes not backed off: {hanging:?}"
    );

    let text = op.metrics().await?;
    let mgmt: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("k8ssandra_mgmt_api"))
        .collect();
    assert!(
        mgmt.iter()
            .all(|l| !l.contains("demo-dc1") && !l.contains("127.")),
        "management-API metrics name pods or addresses: {mgmt:?}"
    );
    assert!(
        op.metric(
            "k8ssandra_mgmt_api_requests_total",
            "endpoint=\"liveness\",outcome=\"http_5xx\""
        )
        .await?
            >= 7.0,
        "{mgmt:?}"
    );
    assert!(
        op.metric(
            "k8ssandra_mgmt_api_requests_total",
            "endpoint=\"liveness\",outcome=\"timeout\""
        )
        .await?
            >= 1.0,
        "{mgmt:?}"
    );
    assert!(
        op.metric("k8ssandra_mgmt_api_probes_deferred_total", "")
            .await?
            > 0.0,
        "{mgmt:?}"
    );
    assert!(
        op.metric("k8ssandra_mgmt_api_requests_total", "outcome=\"success\"")
            .await?
            > 0.0,
        "{mgmt:?}"
    );

    // The API answers again: the victim starts, the datacenter is Ready.
    sim.set_fault(&FaultRequest {
        target: FaultTarget::pod(victim),
        fault: None,
        clear: true,
        wipe: false,
    })?;
    wait_for(
        "dc1 Ready with three nodes once the API answers",
        Duration::from_secs(180),
        || async {
            let ready = condition(dcs, "Ready").await?;
            (dc_ready(dcs).await && normal_nodes(sim, "demo") == 3 && ready["reason"] != REASON)
                .then_some(())
        },
    )
    .await
    .map_err(|e| e.context(tail(&op.log_text(), 40)))?;
    assert_eq!(starts_of(sim, victim), 1, "the victim started once");
    assert_eq!(
        uids(&pods).await?,
        pod_uids,
        "a pod was deleted or recreated because of the API errors"
    );
    assert!(
        sim.violations().is_empty(),
        "violations: {:?}",
        sim.violations()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_killed_mid_decommission_finishes_the_scale_down_once() -> Result<()> {
    let env = TestEnv::start(TestEnvOptions {
        clusters: 1,
        ..Default::default()
    })
    .await?;
    let tmp = tempfile::tempdir()?;
    let s = setup(&env, tmp.path(), Duration::from_millis(300)).await?;
    let op = start_operator(&s).await?;
    let (client, sim, dcs) = (&s.client, &s.sim, &s.dcs);

    apply_yaml(client, &dc_manifest(3), NS).await?;
    wait_for(
        "dc1 Ready with three nodes",
        Duration::from_secs(180),
        || async { (dc_ready(dcs).await && normal_nodes(sim, "demo") == 3).then_some(()) },
    )
    .await
    .map_err(|e| e.context(tail(&op.log_text(), 40)))?;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NS);
    let mut kept = uids(&pvcs).await?;
    let leaving = "demo-dc1-r1-sts-2";
    let leaving_claim = format!("server-data-{leaving}");
    assert!(kept.remove(&leaving_claim).is_some(), "{kept:?}");
    assert_eq!(kept.len(), 2, "{kept:?}");

    // A decommission long enough to kill the operator in the middle of it.
    sim.update_config(&ConfigUpdate {
        decommission_delay_ms: Some(15_000),
        ..ConfigUpdate::default()
    });
    dcs.patch(
        "dc1",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": 2}})),
    )
    .await?;
    wait_for(
        "the decommission of the last node running",
        Duration::from_secs(60),
        || async {
            let st = sim.state();
            let node = st.node_of_pod(leaving)?;
            (node.cassandra == CassandraState::Leaving).then_some(())
        },
    )
    .await
    .map_err(|e| e.context(tail(&op.log_text(), 40)))?;

    let pid = op.pid();
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .context("kill -KILL")?;
    assert!(killed.success(), "kill -KILL {pid} failed");
    let first_log = op.log_text();
    drop(op);
    assert_eq!(
        sim.state().node_of_pod(leaving).map(|n| n.cassandra),
        Some(CassandraState::Leaving),
        "the decommission ended before the operator was killed"
    );

    let op = start_operator(&s).await?;
    let stss: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let converged = wait_for(
        "dc1 Ready with two nodes",
        Duration::from_secs(180),
        || async {
            let replicas = stss.get("demo-dc1-r1-sts").await.ok()?.spec?.replicas?;
            let n = pods.list(&ListParams::default()).await.ok()?.items.len();
            (replicas == 2 && n == 2 && normal_nodes(sim, "demo") == 2 && dc_ready(dcs).await)
                .then_some(())
        },
    )
    .await;
    if let Err(e) = converged {
        let _ = std::fs::write(std::env::temp_dir().join("killed-op1.log"), &first_log);
        let _ = std::fs::write(std::env::temp_dir().join("killed-op2.log"), op.log_text());
        let diag = diagnosis(sim, dcs).await;
        let metrics: Vec<String> = op
            .metrics()
            .await
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("k8ssandra_") && !l.contains("_bucket"))
            .map(str::to_string)
            .collect();
        let pod_names: Vec<String> = uids(&pods).await.unwrap_or_default().into_keys().collect();
        let replicas = stss
            .get("demo-dc1-r1-sts")
            .await
            .ok()
            .and_then(|s| s.spec)
            .and_then(|s| s.replicas);
        return Err(e.context(format!(
            "{diag}\npods: {pod_names:?} replicas: {replicas:?}\nmetrics: {metrics:#?}\nfirst operator:\n{}\nsecond operator:\n{}",
            tail(&first_log, 40),
            tail(&op.log_text(), 40)
        )));
    }

    let decommissions: Vec<_> = sim
        .history()
        .into_iter()
        .filter(|h| h.action == "decommission")
        .collect();
    assert_eq!(decommissions.len(), 1, "{decommissions:?}");
    assert_eq!(
        decommissions[0].pod.as_ref().map(|p| p.name.as_str()),
        Some(leaving)
    );
    wait_for(
        "the claim of the removed node deleted",
        Duration::from_secs(60),
        || async {
            let now = uids(&pvcs).await.ok()?;
            (!now.contains_key(&leaving_claim)).then_some(now)
        },
    )
    .await?;
    assert_eq!(
        uids(&pvcs).await?,
        kept,
        "the remaining nodes' claims changed"
    );
    assert!(
        sim.violations().is_empty(),
        "violations: {:?}",
        sim.violations()
    );
    Ok(())
}
