//! The simulator against real control planes (testenv): pods found by watching two clusters,
//! management API on each pod address, readiness patched into the pods.

use std::time::Duration;

use cassandra_sim::*;
use k8s_openapi::api::core::v1::Pod;
use k8ssandra_testenv::{TestEnv, TestEnvOptions};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use reqwest::StatusCode;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(120);

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn cassandra_pod(name: &str, dc: &str, seed: bool) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {
                LABEL_CLUSTER: "shared",
                LABEL_DATACENTER: dc,
                LABEL_RACK: "r1",
                LABEL_SEED: if seed { "true" } else { "false" },
            }
        },
        "spec": {
            "containers": [
                {"name": "cassandra", "image": "k8ssandra/cass-management-api:4.1.5"},
                {"name": "server-system-logger", "image": "k8ssandra/system-logger:v1"}
            ]
        }
    }))
    .expect("pod manifest")
}

async fn wait_until<F, Fut, T>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn condition(pod: &Pod, type_: &str) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.clone())
}

async fn pod_ip(api: &Api<Pod>, name: &str) -> String {
    wait_until(&format!("{name} IP"), || async {
        api.get(name)
            .await
            .ok()?
            .status?
            .pod_ip
            .filter(|ip| !ip.is_empty())
    })
    .await
}

async fn wait_condition(api: &Api<Pod>, name: &str, type_: &str, want: &str) {
    wait_until(&format!("{name} {type_}={want}"), || async {
        let pod = api.get(name).await.ok()?;
        (condition(&pod, type_).as_deref() == Some(want)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn serves_pods_of_two_clusters_and_patches_readiness() -> anyhow::Result<()> {
    let env = TestEnv::start(TestEnvOptions {
        clusters: 2,
        nodes_per_cluster: 2,
        ..TestEnvOptions::default()
    })
    .await?;
    let port = free_port();
    let clients: Vec<(String, kube::Client)> = env
        .clusters()
        .iter()
        .map(|c| (c.context_name().to_string(), c.client()))
        .collect();
    let sim = Simulator::start(
        SimOptions {
            mgmt_port: port,
            config: SimConfig {
                bootstrap_delay: Duration::from_millis(200),
                ..SimConfig::default()
            },
            ..SimOptions::default()
        },
        clients,
    )
    .await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;

    let east: Api<Pod> = Api::namespaced(env.cluster(0).client(), "default");
    let west: Api<Pod> = Api::namespaced(env.cluster(1).client(), "default");
    east.create(
        &PostParams::default(),
        &cassandra_pod("shared-dc1-r1-sts-0", "dc1", true),
    )
    .await?;
    west.create(
        &PostParams::default(),
        &cassandra_pod("shared-dc2-r1-sts-0", "dc2", false),
    )
    .await?;
    let ip_east = pod_ip(&east, "shared-dc1-r1-sts-0").await;
    let ip_west = pod_ip(&west, "shared-dc2-r1-sts-0").await;
    assert!(env.cluster(0).owns_pod_ip(&ip_east), "{ip_east}");
    assert!(env.cluster(1).owns_pod_ip(&ip_west), "{ip_west}");

    let url = |ip: &str, path: &str| format!("http://{ip}:{port}{path}");
    for ip in [&ip_east, &ip_west] {
        wait_until("liveness", || async {
            let r = http
                .get(url(ip, "/api/v0/probes/liveness"))
                .send()
                .await
                .ok()?;
            (r.status() == StatusCode::OK).then_some(())
        })
        .await;
    }
    let pod = east.get("shared-dc1-r1-sts-0").await?;
    assert_eq!(condition(&pod, "Ready").as_deref(), Some("False"));

    for (api, ip, name) in [
        (&east, &ip_east, "shared-dc1-r1-sts-0"),
        (&west, &ip_west, "shared-dc2-r1-sts-0"),
    ] {
        let r = http.post(url(ip, "/api/v0/lifecycle/start")).send().await?;
        assert_eq!(r.status(), StatusCode::CREATED, "start {name}");
        wait_condition(api, name, "Ready", "True").await;
        let pod = api.get(name).await?;
        assert_eq!(condition(&pod, "ContainersReady").as_deref(), Some("True"));
        assert_eq!(condition(&pod, "Initialized").as_deref(), Some("True"));
        let statuses = pod
            .status
            .and_then(|s| s.container_statuses)
            .unwrap_or_default();
        assert!(statuses.iter().all(|c| c.ready), "{statuses:?}");
    }

    let endpoints: Value = http
        .get(url(&ip_west, "/api/v0/metadata/endpoints"))
        .send()
        .await?
        .json()
        .await?;
    let mut ips: Vec<String> = endpoints["entity"]
        .as_array()
        .expect("entity")
        .iter()
        .map(|n| n["ENDPOINT_IP"].as_str().unwrap_or_default().to_string())
        .collect();
    ips.sort();
    let mut want = vec![ip_east.clone(), ip_west.clone()];
    want.sort();
    assert_eq!(ips, want);

    let state = sim.state();
    let node = state.node_of_pod("shared-dc2-r1-sts-0").expect("node");
    assert_eq!(
        node.pod.as_ref().map(|p| p.context.as_str()),
        Some("cluster-1")
    );
    assert_eq!(node.server_version, "4.1.5");

    // Stopping Cassandra takes readiness away again.
    let r = http
        .post(url(&ip_west, "/api/v0/lifecycle/stop"))
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::OK);
    wait_condition(&west, "shared-dc2-r1-sts-0", "Ready", "False").await;

    // A deleted pod closes its listener and stays in the ring as a dead node.
    east.delete("shared-dc1-r1-sts-0", &DeleteParams::default())
        .await?;
    wait_until("listener closed", || async {
        http.get(url(&ip_east, "/api/v0/probes/liveness"))
            .send()
            .await
            .is_err()
            .then_some(())
    })
    .await;
    let state = sim.state();
    let gone = state
        .node_of_pod("shared-dc1-r1-sts-0")
        .cloned()
        .expect("still in ring");
    assert!(!gone.alive && !gone.mgmt_api_up);

    // Recreated under the same name (same volume): the same node restarts, wherever it lands.
    wait_until("pod gone", || async {
        east.get_opt("shared-dc1-r1-sts-0")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    east.create(
        &PostParams::default(),
        &cassandra_pod("shared-dc1-r1-sts-0", "dc1", true),
    )
    .await?;
    let ip_again = pod_ip(&east, "shared-dc1-r1-sts-0").await;
    wait_until("liveness after recreation", || async {
        let r = http
            .get(url(&ip_again, "/api/v0/probes/liveness"))
            .send()
            .await
            .ok()?;
        (r.status() == StatusCode::OK).then_some(())
    })
    .await;
    let r = http
        .post(url(&ip_again, "/api/v0/lifecycle/start"))
        .send()
        .await?;
    assert_eq!(r.status(), StatusCode::CREATED);
    wait_condition(&east, "shared-dc1-r1-sts-0", "Ready", "True").await;
    let back = sim
        .state()
        .node_of_pod("shared-dc1-r1-sts-0")
        .cloned()
        .expect("node");
    assert_eq!(back.host_id, gone.host_id);
    assert_eq!(back.tokens, gone.tokens);
    assert_eq!(back.ip.as_deref(), Some(ip_again.as_str()));
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());

    sim.shutdown().await;
    Ok(())
}

/// A pod as the operator renders it: the config builder init container's env names the
/// cluster, the seed Services and the version; `secret` moves `CONFIG_FILE_DATA` into a
/// Secret.
fn rendered_pod(name: &str, seed: bool, secret: Option<&str>) -> Pod {
    let config = json!({
        "cluster-info": {"name": "Rendered", "seeds": "rendered-seed-service,rendered-dc1-additional-seed-service"},
        "datacenter-info": {"name": "dc1"},
        "cassandra-yaml": {"num_tokens": 4}
    })
    .to_string();
    let config_env = match secret {
        Some(s) => {
            json!({"name": "CONFIG_FILE_DATA", "valueFrom": {"secretKeyRef": {"name": s, "key": "config"}}})
        }
        None => json!({"name": "CONFIG_FILE_DATA", "value": config}),
    };
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {
                LABEL_CLUSTER: "rendered",
                LABEL_DATACENTER: "dc1",
                LABEL_RACK: "r1",
                LABEL_SEED: if seed { "true" } else { "false" },
            },
            "annotations": {ANNOTATION_MGMT_API_START_DELAY: "100"}
        },
        "spec": {
            "initContainers": [{
                "name": CONFIG_CONTAINER,
                "image": "datastax/cass-config-builder:1.0-ubi",
                "env": [
                    {"name": "PRODUCT_NAME", "value": "cassandra"},
                    {"name": "PRODUCT_VERSION", "value": "4.1.5"},
                    {"name": "RACK_NAME", "value": "r1"},
                    config_env
                ]
            }],
            "containers": [
                {"name": "cassandra", "image": "k8ssandra/cass-management-api:4.1.5",
                 "readinessProbe": {"httpGet": {"path": "/api/v0/probes/readiness", "port": 8080},
                                    "initialDelaySeconds": 1, "periodSeconds": 1}},
                {"name": "server-system-logger", "image": "k8ssandra/system-logger:v1"}
            ]
        }
    }))
    .expect("pod manifest")
}

#[tokio::test]
async fn seeds_come_from_the_rendered_config_and_ready_pods_show_all_containers_ready()
-> anyhow::Result<()> {
    let env = TestEnv::start(TestEnvOptions {
        clusters: 1,
        nodes_per_cluster: 2,
        ..TestEnvOptions::default()
    })
    .await?;
    let port = free_port();
    let client = env.cluster(0).client();
    let sim = Simulator::start(
        SimOptions {
            mgmt_port: port,
            config: SimConfig {
                bootstrap_delay: Duration::from_millis(200),
                probe_timing: ProbeTiming::PodSpec,
                ..SimConfig::default()
            },
            ..SimOptions::default()
        },
        vec![(env.cluster(0).context_name().to_string(), client.clone())],
    )
    .await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client, "default");
    let config = json!({
        "cluster-info": {"name": "Rendered", "seeds": "rendered-seed-service"},
        "datacenter-info": {"name": "dc1"},
        "cassandra-yaml": {"num_tokens": 4}
    })
    .to_string();
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "rendered-config"},
                "stringData": {"config": config}
            }))?,
        )
        .await?;
    pods.create(
        &PostParams::default(),
        &rendered_pod("rendered-dc1-r1-sts-0", true, None),
    )
    .await?;
    pods.create(
        &PostParams::default(),
        &rendered_pod("rendered-dc1-r1-sts-1", false, Some("rendered-config")),
    )
    .await?;
    let ip0 = pod_ip(&pods, "rendered-dc1-r1-sts-0").await;
    let ip1 = pod_ip(&pods, "rendered-dc1-r1-sts-1").await;
    let url = |ip: &str, path: &str| format!("http://{ip}:{port}{path}");
    for (ip, name) in [
        (&ip0, "rendered-dc1-r1-sts-0"),
        (&ip1, "rendered-dc1-r1-sts-1"),
    ] {
        wait_until("liveness", || async {
            let r = http
                .get(url(ip, "/api/v0/probes/liveness"))
                .send()
                .await
                .ok()?;
            (r.status() == StatusCode::OK).then_some(())
        })
        .await;
        // The Secret-held configuration is read too.
        wait_until("configuration read", || async {
            let state = sim.state();
            let p = state.pods.iter().find(|p| p.key.name == name)?;
            p.config.as_ref().filter(|c| c.num_tokens == 4).map(|_| ())
        })
        .await;
        let r = http.post(url(ip, "/api/v0/lifecycle/start")).send().await?;
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "start {name}: {}",
            r.text().await?
        );
        wait_condition(&pods, name, "Ready", "True").await;
        let statuses = wait_until("2/2 ready", || async {
            let pod = pods.get(name).await.ok()?;
            let statuses = pod.status?.container_statuses?;
            (statuses.len() == 2 && statuses.iter().all(|c| c.ready && c.started == Some(true)))
                .then_some(statuses)
        })
        .await;
        assert_eq!(statuses.len(), 2, "kubectl shows 2/2");
    }
    let state = sim.state();
    let seed = state
        .node_of_pod("rendered-dc1-r1-sts-0")
        .expect("seed node");
    let other = state
        .node_of_pod("rendered-dc1-r1-sts-1")
        .expect("second node");
    assert!(seed.seed && !other.seed);
    assert_eq!(seed.resolved_seeds, vec![ip0.clone()]);
    assert_eq!(other.resolved_seeds, vec![ip0.clone()]);
    assert_eq!(other.cluster_name, "Rendered");
    assert_eq!(other.tokens.len(), 4);
    let history = sim.history();
    assert!(
        !history
            .iter()
            .any(|h| h.action == "start" && h.outcome == "refused"),
        "{history:?}"
    );
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    sim.shutdown().await;
    Ok(())
}
