//! Behaviour of the simulator without Kubernetes: pods are fed in directly, each test on its
//! own 127.N.0.0/16 block so they can run in parallel.

use std::future::Future;
use std::time::Duration;

use cassandra_sim::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

struct Env {
    sim: SimHandle,
    http: reqwest::Client,
    port: u16,
    block: u8,
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

async fn env(block: u8, config: SimConfig) -> Env {
    let port = free_port();
    let sim = Simulator::start(
        SimOptions {
            mgmt_port: port,
            config,
            ..SimOptions::default()
        },
        Vec::new(),
    )
    .await
    .expect("simulator starts");
    Env {
        sim,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client"),
        port,
        block,
    }
}

fn fast() -> SimConfig {
    SimConfig {
        bootstrap_delay: Duration::ZERO,
        decommission_delay: Duration::from_millis(100),
        job_duration: Duration::from_millis(50),
        mgmt_api_start_delay: Duration::ZERO,
        probe_period: Duration::from_millis(50),
        gossip_delay: Duration::ZERO,
        ring_delay: Duration::ZERO,
        ..SimConfig::default()
    }
}

async fn wait_for<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if f().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Env {
    fn ip(&self, host: u8) -> String {
        format!("127.{}.0.{host}", self.block)
    }

    fn url(&self, host: u8, path: &str) -> String {
        format!("http://{}:{}{path}", self.ip(host), self.port)
    }

    /// Adds a pod and waits until its management API answers.
    async fn pod(
        &self,
        context: &str,
        name: &str,
        host: u8,
        cluster: &str,
        dc: &str,
        seed: bool,
    ) -> PodKey {
        let key = PodKey::new(context, "ns", name);
        self.sim.upsert_pod(PodInfo::new(
            key.clone(),
            self.ip(host),
            cluster,
            dc,
            "r1",
            seed,
        ));
        wait_for("liveness", || async {
            self.status("GET", host, "/api/v0/probes/liveness").await == Some(StatusCode::OK)
        })
        .await;
        key
    }

    async fn call(
        &self,
        method: &str,
        host: u8,
        path: &str,
        body: Option<Value>,
    ) -> Option<(StatusCode, String)> {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(m, self.url(host, path));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.ok()?;
        let status = resp.status();
        Some((status, resp.text().await.unwrap_or_default()))
    }

    async fn status(&self, method: &str, host: u8, path: &str) -> Option<StatusCode> {
        self.call(method, host, path, None).await.map(|(s, _)| s)
    }

    async fn ok(
        &self,
        method: &str,
        host: u8,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, String) {
        let (s, b) = self
            .call(method, host, path, body)
            .await
            .unwrap_or_else(|| panic!("{method} {path} on host {host} unreachable"));
        assert!(s.is_success(), "{method} {path}: {s} {b}");
        (s, b)
    }

    async fn json(&self, host: u8, path: &str) -> Value {
        let (_, b) = self.ok("GET", host, path, None).await;
        serde_json::from_str(&b).expect("json body")
    }

    async fn wait_ready(&self, host: u8) {
        wait_for("readiness", || async {
            self.status("GET", host, "/api/v0/probes/readiness").await == Some(StatusCode::OK)
        })
        .await;
    }

    /// `lifecycle/start` refused as Cassandra refuses it (500).
    async fn start_refused(&self, host: u8) {
        assert_eq!(
            self.status("POST", host, "/api/v0/lifecycle/start").await,
            Some(StatusCode::INTERNAL_SERVER_ERROR)
        );
    }

    async fn start_ready(&self, host: u8) {
        let (s, _) = self.ok("POST", host, "/api/v0/lifecycle/start", None).await;
        assert_eq!(s, StatusCode::CREATED);
        self.wait_ready(host).await;
    }

    async fn wait_job(&self, host: u8, job: &str) -> Value {
        let path = format!("/api/v0/ops/executor/job?job_id={job}");
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let v = self.json(host, &path).await;
            if v["status"] != "WAITING" {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {job} never ended"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn seed_start_joins_after_delay_and_readiness_flips() {
    let e = env(
        141,
        SimConfig {
            bootstrap_delay: Duration::from_secs(3600),
            ..fast()
        },
    )
    .await;
    e.pod("k1", "c1-dc1-r1-sts-0", 1, "c1", "dc1", true).await;
    assert_eq!(
        e.status("GET", 1, "/api/v0/probes/readiness").await,
        Some(StatusCode::INTERNAL_SERVER_ERROR)
    );
    assert_eq!(
        e.status("GET", 1, "/api/v0/lifecycle/pid").await,
        Some(StatusCode::NO_CONTENT)
    );

    let (s, _) = e.ok("POST", 1, "/api/v0/lifecycle/start", None).await;
    assert_eq!(s, StatusCode::CREATED);
    // Still starting: a second start is idempotent, readiness stays down.
    assert_eq!(
        e.status("POST", 1, "/api/v0/lifecycle/start").await,
        Some(StatusCode::NO_CONTENT)
    );
    assert_eq!(
        e.status("GET", 1, "/api/v0/probes/readiness").await,
        Some(StatusCode::INTERNAL_SERVER_ERROR)
    );
    let node = e
        .sim
        .state()
        .node_of_pod("c1-dc1-r1-sts-0")
        .cloned()
        .expect("node");
    assert_eq!(node.cassandra, CassandraState::Starting);
    assert!(!node.ready);

    // With a short delay the node reaches NORMAL by itself.
    e.ok("POST", 1, "/api/v0/lifecycle/stop", None).await;
    e.sim.update_config(&ConfigUpdate {
        bootstrap_delay_ms: Some(100),
        ..ConfigUpdate::default()
    });
    let (s, _) = e.ok("POST", 1, "/api/v0/lifecycle/start", None).await;
    assert_eq!(s, StatusCode::CREATED);
    e.wait_ready(1).await;
    assert_eq!(
        e.status("POST", 1, "/api/v0/lifecycle/start").await,
        Some(StatusCode::ACCEPTED)
    );
    let (_, pid) = e.ok("GET", 1, "/api/v0/lifecycle/pid", None).await;
    assert!(pid.parse::<u32>().is_ok());
    let state = e.sim.state();
    let node = state.node_of_pod("c1-dc1-r1-sts-0").expect("node");
    assert_eq!(node.cassandra, CassandraState::Normal);
    assert_eq!(node.tokens.len(), 16);
    assert!(node.ready);
    assert!(state.pods[0].desired_ready);
    assert!(e.sim.violations().is_empty());
}

#[tokio::test]
async fn second_concurrent_bootstrap_is_refused_and_recorded() {
    let e = env(142, fast()).await;
    e.pod("k1", "seed", 1, "c1", "dc1", true).await;
    e.pod("k1", "n2", 2, "c1", "dc1", false).await;
    e.pod("k1", "n3", 3, "c1", "dc1", false).await;
    e.start_ready(1).await;

    e.sim.update_config(&ConfigUpdate {
        bootstrap_delay_ms: Some(3_600_000),
        ..ConfigUpdate::default()
    });
    let (s, _) = e.ok("POST", 2, "/api/v0/lifecycle/start", None).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(
        e.sim.state().node_of_pod("n2").map(|n| n.cassandra),
        Some(CassandraState::Joining)
    );
    let (s, body) = e
        .call("POST", 3, "/api/v0/lifecycle/start", None)
        .await
        .expect("reachable");
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("cannot bootstrap"), "{body}");

    let v = e.sim.violations();
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].rule, "concurrent_bootstrap");
    assert_eq!(v[0].pod.as_ref().map(|p| p.name.as_str()), Some("n3"));
    let refused: Vec<_> = e
        .sim
        .history()
        .into_iter()
        .filter(|h| h.action == "start" && h.outcome == "refused")
        .collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(
        e.sim.state().node_of_pod("n3").map(|n| n.cassandra),
        Some(CassandraState::Down)
    );
}

#[tokio::test]
async fn non_seed_start_without_a_normal_seed_is_refused() {
    let e = env(143, fast()).await;
    e.pod("k1", "seed", 1, "c1", "dc1", true).await;
    e.pod("k1", "n2", 2, "c1", "dc1", false).await;
    // The seed exists but does not run.
    let (s, body) = e
        .call("POST", 2, "/api/v0/lifecycle/start", None)
        .await
        .expect("reachable");
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("seed"), "{body}");
    let v = e.sim.violations();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].rule, "no_live_seed");

    e.start_ready(1).await;
    e.start_ready(2).await;
    assert_eq!(e.sim.violations().len(), 1);
}

#[tokio::test]
async fn endpoints_list_every_node_of_the_cluster_across_kubernetes_clusters() {
    let e = env(144, fast()).await;
    e.pod("east", "a-0", 1, "shared", "dc1", true).await;
    e.pod("west", "b-0", 2, "shared", "dc2", false).await;
    e.pod("east", "other-0", 3, "other", "dc1", true).await;
    e.start_ready(1).await;
    e.start_ready(2).await;
    e.start_ready(3).await;

    for host in [1, 2] {
        let v = e.json(host, "/api/v0/metadata/endpoints").await;
        let entity = v["entity"].as_array().expect("entity");
        assert_eq!(entity.len(), 2, "{v}");
        let mut ips: Vec<&str> = entity
            .iter()
            .map(|n| n["ENDPOINT_IP"].as_str().unwrap_or(""))
            .collect();
        ips.sort();
        assert_eq!(ips, vec![e.ip(1).as_str(), e.ip(2).as_str()]);
        for n in entity {
            assert_eq!(n["IS_ALIVE"], "true");
            assert!(n["STATUS"].as_str().unwrap_or("").starts_with("NORMAL"));
            assert!(n["HOST_ID"].as_str().is_some_and(|h| h.len() == 36));
            assert!(n["RACK"] == "r1");
        }
        let dcs: Vec<&str> = entity
            .iter()
            .map(|n| n["DC"].as_str().unwrap_or(""))
            .collect();
        assert!(dcs.contains(&"dc1") && dcs.contains(&"dc2"));
    }
    let (_, dc) = e.ok("GET", 2, "/api/v0/metadata/localdc", None).await;
    assert_eq!(dc, "dc2");
    let other = e.json(3, "/api/v0/metadata/endpoints").await;
    assert_eq!(other["entity"].as_array().map(Vec::len), Some(1));

    // A deleted pod stays in gossip as a dead node with the same identity.
    let host_id = e
        .sim
        .state()
        .node_of_pod("b-0")
        .and_then(|n| n.host_id.clone());
    e.sim.remove_pod(&PodKey::new("west", "ns", "b-0"));
    wait_for("listener closed", || async {
        e.status("GET", 2, "/api/v0/probes/liveness")
            .await
            .is_none()
    })
    .await;
    let v = e.json(1, "/api/v0/metadata/endpoints").await;
    let dead: Vec<&Value> = v["entity"]
        .as_array()
        .expect("entity")
        .iter()
        .filter(|n| n["ENDPOINT_IP"] == e.ip(2))
        .collect();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["IS_ALIVE"], "false");
    let schema = e.json(1, "/api/v1/ops/node/schema/versions").await;
    assert!(schema.get("UNREACHABLE").is_some(), "{schema}");

    // Recreated under the same name: the same node restarts.
    e.pod("west", "b-0", 2, "shared", "dc2", false).await;
    assert_eq!(
        e.status("GET", 2, "/api/v0/probes/readiness").await,
        Some(StatusCode::INTERNAL_SERVER_ERROR)
    );
    e.start_ready(2).await;
    assert_eq!(
        e.sim
            .state()
            .node_of_pod("b-0")
            .and_then(|n| n.host_id.clone()),
        host_id
    );
    assert!(e.sim.violations().is_empty());
}

#[tokio::test]
async fn decommission_v1_job_leaves_the_ring() {
    let e = env(145, fast()).await;
    e.pod("k1", "n1", 1, "c1", "dc1", true).await;
    e.pod("k1", "n2", 2, "c1", "dc1", false).await;
    e.start_ready(1).await;
    e.start_ready(2).await;

    let (s, job) = e
        .ok("POST", 2, "/api/v1/ops/node/decommission?force=true", None)
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let done = e.wait_job(2, &job).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(done["type"], "decommission");
    assert_eq!(done["id"], job.as_str());
    assert!(
        done["submit_time"]
            .as_str()
            .is_some_and(|t| t.parse::<i64>().is_ok())
    );

    let v = e.json(1, "/api/v0/metadata/endpoints").await;
    assert_eq!(v["entity"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(
        e.status("GET", 2, "/api/v0/probes/readiness").await,
        Some(StatusCode::INTERNAL_SERVER_ERROR)
    );
    let node = e.sim.state().node_of_pod("n2").cloned().expect("node");
    assert!(node.decommissioned);
    assert_eq!(node.cassandra, CassandraState::Left);
    let h = e.sim.history();
    let d = h
        .iter()
        .find(|h| h.action == "decommission")
        .expect("decommission recorded");
    assert_eq!(d.outcome, "completed");
    assert!(d.end_time.is_some());
    assert_eq!(d.pod.as_ref().map(|p| p.context.as_str()), Some("k1"));

    // A job id is only known to the node that ran it.
    let (s, _) = e
        .call(
            "GET",
            1,
            &format!("/api/v0/ops/executor/job?job_id={job}"),
            None,
        )
        .await
        .expect("reachable");
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Deleting the decommissioned pod forgets the node; a new pod under that name is new.
    e.sim.remove_pod(&PodKey::new("k1", "ns", "n2"));
    e.pod("k1", "n2", 2, "c1", "dc1", false).await;
    e.start_ready(2).await;
    assert!(e.sim.violations().is_empty());
}

#[tokio::test]
async fn decommission_v0_refuses_to_break_replication_without_force() {
    let e = env(146, fast()).await;
    e.pod("k1", "n1", 1, "c1", "dc1", true).await;
    e.pod("k1", "n2", 2, "c1", "dc1", false).await;
    e.start_ready(1).await;
    e.start_ready(2).await;
    e.ok(
        "POST",
        1,
        "/api/v0/ops/keyspace/create",
        Some(json!({"keyspace_name": "app", "replication_settings": [{"dc_name": "dc1", "replication_factor": 2}]})),
    )
    .await;
    let (s, body) = e
        .call("POST", 2, "/api/v0/ops/node/decommission", None)
        .await
        .expect("reachable");
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("replication factor"), "{body}");
    let (s, _) = e
        .ok("POST", 2, "/api/v0/ops/node/decommission?force=true", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        e.sim
            .state()
            .node_of_pod("n2")
            .is_some_and(|n| n.decommissioned)
    );
}

#[tokio::test]
async fn keyspace_create_alter_and_replication_round_trip() {
    let e = env(147, fast()).await;
    e.pod("k1", "n1", 1, "c1", "dc1", true).await;
    e.start_ready(1).await;

    let ks = e.json(1, "/api/v0/ops/keyspace").await;
    for sys in ["system_auth", "system_distributed", "system_traces"] {
        assert!(
            ks.as_array().is_some_and(|a| a.contains(&json!(sys))),
            "{ks}"
        );
    }
    let auth = e
        .json(
            1,
            "/api/v0/ops/keyspace/replication?keyspaceName=system_auth",
        )
        .await;
    assert_eq!(auth["class"], "org.apache.cassandra.locator.SimpleStrategy");

    let before = e.json(1, "/api/v1/ops/node/schema/versions").await;
    e.ok(
        "POST",
        1,
        "/api/v0/ops/keyspace/create",
        Some(json!({"keyspace_name": "app", "replication_settings": [{"dc_name": "dc1", "replication_factor": 3}]})),
    )
    .await;
    let r = e
        .json(1, "/api/v0/ops/keyspace/replication?keyspaceName=app")
        .await;
    assert_eq!(
        r,
        json!({"class": "org.apache.cassandra.locator.NetworkTopologyStrategy", "dc1": "3"})
    );
    assert_eq!(
        e.json(1, "/api/v0/ops/keyspace?keyspaceName=app").await,
        json!(["app"])
    );
    assert_eq!(
        e.json(1, "/api/v0/ops/keyspace?keyspaceName=nope").await,
        json!([])
    );

    // cass-operator sends the factor as a string.
    e.ok(
        "POST",
        1,
        "/api/v0/ops/keyspace/alter",
        Some(json!({"keyspace_name": "app", "replication_settings": [
            {"dc_name": "dc1", "replication_factor": "1"},
            {"dc_name": "dc2", "replication_factor": "3"}
        ]})),
    )
    .await;
    let r = e
        .json(1, "/api/v0/ops/keyspace/replication?keyspaceName=app")
        .await;
    assert_eq!(r["dc1"], "1");
    assert_eq!(r["dc2"], "3");
    let after = e.json(1, "/api/v1/ops/node/schema/versions").await;
    assert_ne!(before, after);
    assert_eq!(
        after.as_object().map(|m| m.len()),
        Some(1),
        "schema agreement: {after}"
    );

    let (s, _) = e
        .call(
            "GET",
            1,
            "/api/v0/ops/keyspace/replication?keyspaceName=missing",
            None,
        )
        .await
        .expect("reachable");
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = e
        .call(
            "POST",
            1,
            "/api/v0/ops/keyspace/create",
            Some(json!({"keyspace_name": "", "replication_settings": []})),
        )
        .await
        .expect("reachable");
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // A keyspace made behind the operator's back shows up too.
    e.sim.create_keyspace(&KeyspaceRequest {
        cluster: "c1".into(),
        name: "by_cqlsh".into(),
        replication: [("dc1".to_string(), 1)].into_iter().collect(),
    });
    assert_eq!(
        e.json(1, "/api/v0/ops/keyspace?keyspaceName=by_cqlsh")
            .await,
        json!(["by_cqlsh"])
    );
    let state = e.sim.state();
    let c1 = state.cluster("c1").expect("cluster");
    assert!(
        c1.keyspaces
            .iter()
            .any(|k| k.name == "app" && k.replication.get("dc2").map(String::as_str) == Some("3"))
    );
}

#[tokio::test]
async fn roles_are_listed_without_their_password() {
    let e = env(148, fast()).await;
    e.pod("k1", "n1", 1, "c1", "dc1", true).await;
    e.start_ready(1).await;
    let secret = "s3cr3t-P4ssw0rd";
    e.ok(
        "POST",
        1,
        &format!("/api/v0/ops/auth/role?username=admin&password={secret}&is_superuser=true&can_login=true"),
        None,
    )
    .await;
    let (s, _) = e
        .call("POST", 1, "/api/v0/ops/auth/role?username=nopw", None)
        .await
        .expect("reachable");
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let (_, listed) = e.ok("GET", 1, "/api/v0/ops/auth/role", None).await;
    assert!(!listed.contains(secret));
    let roles: Value = serde_json::from_str(&listed).expect("json");
    assert_eq!(roles[0]["name"], "admin");
    assert_eq!(roles[0]["super"], true);
    assert_eq!(roles[0]["login"], true);

    let client = e.sim.client().expect("control api");
    let state = client.state().await.expect("state");
    let role = &state.cluster("c1").expect("cluster").roles[0];
    assert!(role.password_set && role.superuser);
    let everything = format!(
        "{}{}{}",
        serde_json::to_string(&state).expect("ser"),
        serde_json::to_string(&client.history().await.expect("history")).expect("ser"),
        serde_json::to_string(&client.violations().await.expect("violations")).expect("ser"),
    );
    assert!(!everything.contains(secret));

    e.ok("DELETE", 1, "/api/v0/ops/auth/role?username=admin", None)
        .await;
    assert_eq!(e.json(1, "/api/v0/ops/auth/role").await, json!([]));
}

#[tokio::test]
async fn jobs_run_through_the_executor_and_are_recorded() {
    let e = env(149, fast()).await;
    e.pod("ctx-a", "n1", 1, "c1", "dc1", true).await;
    e.start_ready(1).await;

    let cases = [
        ("/api/v1/ops/keyspace/cleanup", "CLEANUP"),
        ("/api/v1/ops/node/rebuild?src_dc=dc1", "rebuild"),
        ("/api/v1/ops/tables/compact", "COMPACTION"),
        ("/api/v1/ops/tables/flush", "FLUSH"),
        ("/api/v1/ops/tables/scrub", "SCRUB"),
        ("/api/v1/ops/tables/garbagecollect", "GARBAGE_COLLECT"),
        ("/api/v1/ops/tables/sstables/upgrade", "UPGRADE_SSTABLES"),
    ];
    for (path, job_type) in cases {
        let (s, id) = e
            .ok(
                "POST",
                1,
                path,
                Some(json!({"keyspace_name": "system_auth", "jobs": "1", "tables": []})),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{path}");
        let done = e.wait_job(1, &id).await;
        assert_eq!(done["status"], "COMPLETED", "{path}: {done}");
        assert_eq!(done["type"], job_type);
        assert!(done["end_time"].as_str().is_some_and(|t| t != "0"));
    }

    let (_, id) = e
        .ok("POST", 1, "/api/v1/ops/node/rebuild?src_dc=nowhere", None)
        .await;
    let failed = e.wait_job(1, &id).await;
    assert_eq!(failed["status"], "ERROR");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|m| m.contains("nowhere"))
    );

    let (s, body) = e
        .ok(
            "POST",
            1,
            "/api/v0/ops/tables/flush",
            Some(json!({"keyspace_name": "system_auth"})),
        )
        .await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "OK"));
    let (s, cleanup_id) = e
        .ok(
            "POST",
            1,
            "/api/v0/ops/keyspace/cleanup",
            Some(json!({"keyspace_name": "system_auth"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        e.json(1, &format!("/api/v0/ops/executor/job?job_id={cleanup_id}"))
            .await["status"],
        "COMPLETED"
    );

    let (s, body) = e
        .call("GET", 1, "/api/v0/ops/executor/job?job_id=unknown", None)
        .await
        .expect("reachable");
    assert_eq!((s, body.as_str()), (StatusCode::NOT_FOUND, "{}"));

    let jobs: Vec<HistoryEntry> = e
        .sim
        .history()
        .into_iter()
        .filter(|h| h.action == "job")
        .collect();
    assert_eq!(jobs.len(), cases.len() + 3);
    for j in &jobs {
        assert_eq!(j.pod, Some(PodKey::new("ctx-a", "ns", "n1")));
        assert!(j.job_id.is_some() && j.job_type.is_some() && j.end_time.is_some());
    }
}

#[tokio::test]
async fn faults_inject_errors_and_death_until_cleared() {
    let e = env(150, fast()).await;
    e.pod("k1", "n1", 1, "c1", "dc1", true).await;
    e.start_ready(1).await;
    let client = e.sim.client().expect("control api");

    client
        .set_fault(&FaultRequest {
            target: FaultTarget::pod("n1"),
            fault: Some(Fault {
                error_rate: 1.0,
                ..Fault::default()
            }),
            clear: false,
            wipe: false,
        })
        .await
        .expect("fault set");
    for _ in 0..5 {
        assert_eq!(
            e.status("GET", 1, "/api/v0/probes/liveness").await,
            Some(StatusCode::INTERNAL_SERVER_ERROR)
        );
    }
    let clear = FaultRequest {
        target: FaultTarget::pod("n1"),
        fault: None,
        clear: true,
        wipe: false,
    };
    client.set_fault(&clear).await.expect("fault cleared");
    assert_eq!(
        e.status("GET", 1, "/api/v0/probes/liveness").await,
        Some(StatusCode::OK)
    );
    assert_eq!(
        e.status("GET", 1, "/api/v0/probes/readiness").await,
        Some(StatusCode::OK)
    );
    // Every request is logged with its answer, faulted ones marked.
    let log = client.requests().await.expect("request log");
    let liveness: Vec<_> = log
        .iter()
        .filter(|r| r.path == "/api/v0/probes/liveness" && r.pod == PodKey::new("k1", "ns", "n1"))
        .collect();
    assert!(liveness.len() >= 6, "{liveness:?}");
    let faulted = liveness
        .iter()
        .filter(|r| r.faulted && r.status == 500)
        .count();
    assert_eq!(faulted, 5, "{liveness:?}");
    assert!(
        log.windows(2)
            .all(|w| w[0].seq < w[1].seq && w[0].at_ms <= w[1].at_ms)
    );
    assert_eq!(e.sim.requests().len(), log.len());

    // Latency: an answer that takes an hour is no answer for a client with a timeout.
    client
        .set_fault(&FaultRequest {
            target: FaultTarget::Ip(e.ip(1)),
            fault: Some(Fault {
                latency_ms: 3_600_000,
                ..Fault::default()
            }),
            clear: false,
            wipe: false,
        })
        .await
        .expect("fault set");
    let slow = e
        .http
        .get(e.url(1, "/api/v0/probes/liveness"))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(slow.is_err_and(|err| err.is_timeout()));
    client.set_fault(&clear).await.expect("fault cleared");
    assert_eq!(
        e.status("GET", 1, "/api/v0/probes/liveness").await,
        Some(StatusCode::OK)
    );

    // Death: nothing answers, and Cassandra is down once it comes back.
    e.sim
        .set_fault(&FaultRequest {
            target: FaultTarget::Cluster("c1".into()),
            fault: Some(Fault {
                dead: true,
                ..Fault::default()
            }),
            clear: false,
            wipe: false,
        })
        .expect("fault set");
    wait_for("management API gone", || async {
        e.status("GET", 1, "/api/v0/probes/liveness")
            .await
            .is_none()
    })
    .await;
    assert!(!e.sim.state().node_of_pod("n1").expect("node").alive);
    e.sim
        .set_fault(&FaultRequest {
            target: FaultTarget::Cluster("c1".into()),
            fault: None,
            clear: true,
            wipe: false,
        })
        .expect("fault cleared");
    wait_for("management API back", || async {
        e.status("GET", 1, "/api/v0/probes/liveness").await == Some(StatusCode::OK)
    })
    .await;
    assert_eq!(
        e.status("GET", 1, "/api/v0/probes/readiness").await,
        Some(StatusCode::INTERNAL_SERVER_ERROR)
    );
    e.start_ready(1).await;

    let unknown = client
        .set_fault(&FaultRequest {
            target: FaultTarget::pod("nobody"),
            fault: None,
            clear: true,
            wipe: false,
        })
        .await;
    assert!(unknown.is_err());
}

#[tokio::test]
async fn a_wiped_node_must_be_replaced() {
    let e = env(151, fast()).await;
    e.pod("k1", "n1", 1, "c1", "dc1", true).await;
    e.pod("k1", "n2", 2, "c1", "dc1", false).await;
    e.start_ready(1).await;
    e.start_ready(2).await;
    let before = e.sim.state().node_of_pod("n2").cloned().expect("node");

    e.sim
        .set_fault(&FaultRequest {
            target: FaultTarget::Ip(e.ip(2)),
            fault: None,
            clear: false,
            wipe: true,
        })
        .expect("wiped");
    assert_eq!(
        e.status("GET", 2, "/api/v0/probes/readiness").await,
        Some(StatusCode::INTERNAL_SERVER_ERROR)
    );
    let (s, body) = e
        .call("POST", 2, "/api/v0/lifecycle/start", None)
        .await
        .expect("reachable");
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("replace"), "{body}");
    assert_eq!(e.sim.violations()[0].rule, "wiped_without_replace");

    let (s, _) = e
        .ok(
            "POST",
            2,
            &format!("/api/v0/lifecycle/start?replace_ip={}", e.ip(2)),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    e.wait_ready(2).await;
    let after = e.sim.state().node_of_pod("n2").cloned().expect("node");
    assert_ne!(after.host_id, before.host_id);
    assert_eq!(after.tokens, before.tokens);
    let ring = e.json(1, "/api/v0/metadata/endpoints").await;
    assert_eq!(ring["entity"].as_array().map(Vec::len), Some(2), "{ring}");
    let start = e
        .sim
        .history()
        .into_iter()
        .rfind(|h| h.action == "start")
        .expect("start recorded");
    assert_eq!(start.replace_ip, Some(e.ip(2)));
    assert_eq!(e.sim.violations().len(), 1);
}

#[tokio::test]
async fn probes_cluster_reports_missing_replicas() {
    let e = env(152, fast()).await;
    e.pod("k1", "n1", 1, "c1", "dc1", true).await;
    e.start_ready(1).await;
    let (s, body) = e
        .call(
            "GET",
            1,
            "/api/v0/probes/cluster?consistency_level=LOCAL_QUORUM&rf_per_dc=3",
            None,
        )
        .await
        .expect("reachable");
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("replicas required"), "{body}");
    assert_eq!(
        e.status(
            "GET",
            1,
            "/api/v0/probes/cluster?consistency_level=LOCAL_ONE&rf_per_dc=1"
        )
        .await,
        Some(StatusCode::OK)
    );
    let f = e.json(1, "/api/v0/metadata/versions/features").await;
    assert!(
        f["features"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("async_sstable_tasks")))
    );
    let (_, seeds) = e.ok("POST", 1, "/api/v0/ops/seeds/reload", None).await;
    assert_eq!(
        serde_json::from_str::<Value>(&seeds).expect("json"),
        json!([format!("/{}", e.ip(1))])
    );
}

#[tokio::test]
async fn control_api_serves_state_config_and_keyspaces() {
    let e = env(153, fast()).await;
    e.pod("k1", "n1", 1, "c1", "dc1", true).await;
    let client = e.sim.client().expect("control api");
    let cfg = client
        .update_config(&ConfigUpdate {
            bootstrap_delay_ms: Some(10),
            ..ConfigUpdate::default()
        })
        .await
        .expect("config");
    assert_eq!(cfg.bootstrap_delay, Duration::from_millis(10));
    assert_eq!(client.config().await.expect("config"), cfg);
    client
        .create_keyspace(&KeyspaceRequest {
            cluster: "c1".into(),
            name: "k".into(),
            replication: [("dc1".to_string(), 3)].into_iter().collect(),
        })
        .await
        .expect("keyspace");
    e.start_ready(1).await;
    let state = client.state().await.expect("state");
    let c1 = state.cluster("c1").expect("cluster");
    assert!(c1.keyspaces.iter().any(|k| k.name == "k"));
    assert_eq!(c1.nodes.len(), 1);
    assert!(state.pods[0].listening);
    let starts: Vec<_> = client
        .history()
        .await
        .expect("history")
        .into_iter()
        .filter(|h| h.action == "start")
        .collect();
    assert_eq!(starts.len(), 1);
    assert_eq!(starts[0].outcome, "accepted");
    assert!(client.violations().await.expect("violations").is_empty());
}

#[tokio::test]
async fn a_pod_wiped_while_away_comes_back_without_its_identity() {
    let e = env(154, fast()).await;
    e.pod("k1", "n1", 1, "c1", "dc1", true).await;
    e.pod("k1", "n2", 2, "c1", "dc1", false).await;
    e.start_ready(1).await;
    e.start_ready(2).await;
    let key = PodKey::new("k1", "ns", "n2");
    e.sim.remove_pod(&key);
    e.sim
        .set_fault(&FaultRequest {
            target: FaultTarget::Pod {
                name: "n2".into(),
                namespace: Some("ns".into()),
                context: Some("k1".into()),
            },
            fault: None,
            clear: false,
            wipe: true,
        })
        .expect("wiped");
    // Recreated on another address, with an empty volume.
    e.pod("k1", "n2", 3, "c1", "dc1", false).await;
    let (s, _) = e
        .call("POST", 3, "/api/v0/lifecycle/start", None)
        .await
        .expect("reachable");
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(e.sim.violations()[0].rule, "wiped_without_replace");
    // Replacing an address nobody had is refused too.
    let (s, _) = e
        .call(
            "POST",
            3,
            "/api/v0/lifecycle/start?replace_ip=127.154.9.9",
            None,
        )
        .await
        .expect("reachable");
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(e.sim.violations()[1].rule, "replace_unknown_address");
    let (s, _) = e
        .ok(
            "POST",
            3,
            &format!("/api/v0/lifecycle/start?replace_ip={}", e.ip(2)),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    e.wait_ready(3).await;
    let ring = e.json(1, "/api/v0/metadata/endpoints").await;
    let mut ips: Vec<&str> = ring["entity"]
        .as_array()
        .expect("entity")
        .iter()
        .map(|n| n["ENDPOINT_IP"].as_str().unwrap_or(""))
        .collect();
    ips.sort();
    assert_eq!(ips, vec![e.ip(1).as_str(), e.ip(3).as_str()]);
}

#[tokio::test]
async fn tables_move_and_minor_endpoints() {
    let e = env(155, fast()).await;
    e.pod("k1", "n1", 1, "c1", "dc1", true).await;
    assert_eq!(
        e.status("POST", 1, "/api/v0/lifecycle/configure?profile=p")
            .await,
        Some(StatusCode::OK)
    );
    e.start_ready(1).await;
    assert_eq!(
        e.status("POST", 1, "/api/v0/lifecycle/configure?profile=p")
            .await,
        Some(StatusCode::NOT_ACCEPTABLE)
    );
    let t = e
        .json(1, "/api/v0/ops/tables?keyspaceName=system_auth")
        .await;
    assert!(
        t.as_array().is_some_and(|a| a.contains(&json!("roles"))),
        "{t}"
    );
    e.ok(
        "POST",
        1,
        "/api/v0/ops/keyspace/create",
        Some(json!({"keyspace_name": "app", "replication_settings": [{"dc_name": "dc1", "replication_factor": 1}]})),
    )
    .await;
    e.ok(
        "POST",
        1,
        "/api/v0/ops/tables/create",
        Some(json!({"keyspace_name": "app", "table_name": "t", "columns": [{"name": "k", "type": "int", "kind": "PARTITION_KEY", "position": 0}]})),
    )
    .await;
    assert_eq!(
        e.json(1, "/api/v0/ops/tables?keyspaceName=app").await,
        json!(["t"])
    );
    assert_eq!(
        e.json(1, "/api/v1/ops/tables?keyspaceName=app").await[0]["name"],
        "t"
    );

    let (s, id) = e
        .ok("POST", 1, "/api/v0/ops/node/move?newToken=42", None)
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_eq!(e.wait_job(1, &id).await["type"], "move");

    e.ok(
        "POST",
        1,
        "/api/v0/ops/node/fullquerylogging?enabled=true",
        None,
    )
    .await;
    assert_eq!(
        e.json(1, "/api/v0/ops/node/fullquerylogging").await,
        json!({"entity": true})
    );
    e.ok(
        "POST",
        1,
        "/api/v0/ops/node/encryption/internode/truststore/reload",
        None,
    )
    .await;
    e.ok("POST", 1, "/api/v0/ops/node/drain", None).await;
    assert_eq!(
        e.status("GET", 1, "/api/v0/probes/readiness").await,
        Some(StatusCode::INTERNAL_SERVER_ERROR)
    );
    assert_eq!(
        e.status("GET", 1, "/api/v0/probes/liveness").await,
        Some(StatusCode::OK)
    );
    assert!(e.sim.history().iter().any(|h| h.action == "drain"));
}

#[tokio::test]
async fn a_replacement_waits_for_another_bootstrap() {
    let e = env(156, fast()).await;
    e.pod("k1", "n1", 1, "c1", "dc1", true).await;
    e.pod("k1", "n2", 2, "c1", "dc1", false).await;
    e.pod("k1", "n3", 3, "c1", "dc1", false).await;
    e.start_ready(1).await;
    e.start_ready(2).await;
    e.sim.update_config(&ConfigUpdate {
        bootstrap_delay_ms: Some(3_600_000),
        ..ConfigUpdate::default()
    });
    // n3 bootstraps (it started while every replica was up), then n2 loses its disk.
    let (s, _) = e.ok("POST", 3, "/api/v0/lifecycle/start", None).await;
    assert_eq!(s, StatusCode::CREATED);
    e.sim
        .set_fault(&FaultRequest {
            target: FaultTarget::pod("n2"),
            fault: None,
            clear: false,
            wipe: true,
        })
        .expect("wiped");
    let replace = format!("/api/v0/lifecycle/start?replace_ip={}", e.ip(2));
    assert_eq!(
        e.status("POST", 2, &replace).await,
        Some(StatusCode::INTERNAL_SERVER_ERROR)
    );
    let v = e.sim.violations();
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].rule, "concurrent_range_movement");
    assert_eq!(v[0].pod.as_ref().map(|p| p.name.as_str()), Some("n2"));
    assert!(v[0].message.contains("REPLACING") || v[0].message.contains("JOINING"));
}

#[tokio::test]
async fn a_replacement_runs_once_no_other_range_moves() {
    let e = env(159, fast()).await;
    e.pod("k1", "n1", 1, "c1", "dc1", true).await;
    e.pod("k1", "n2", 2, "c1", "dc1", false).await;
    e.start_ready(1).await;
    e.start_ready(2).await;
    e.sim
        .set_fault(&FaultRequest {
            target: FaultTarget::pod("n2"),
            fault: None,
            clear: false,
            wipe: true,
        })
        .expect("wiped");
    e.sim.update_config(&ConfigUpdate {
        bootstrap_delay_ms: Some(3_600_000),
        ..ConfigUpdate::default()
    });
    let (s, _) = e
        .ok(
            "POST",
            2,
            &format!("/api/v0/lifecycle/start?replace_ip={}", e.ip(2)),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let ring = e.json(1, "/api/v0/metadata/endpoints").await;
    let statuses: Vec<&str> = ring["entity"]
        .as_array()
        .expect("entity")
        .iter()
        .filter_map(|n| n["STATUS"].as_str())
        .collect();
    assert!(
        statuses.iter().any(|s| s.starts_with("BOOT_REPLACE")),
        "{ring}"
    );
    assert!(e.sim.violations().is_empty(), "{:?}", e.sim.violations());
}

#[tokio::test]
async fn a_few_hundred_pods_each_get_their_own_listener() {
    let e = env(157, fast()).await;
    let n: u8 = 200;
    for host in 1..=n {
        let key = PodKey::new("k1", "ns", format!("p{host}"));
        e.sim
            .upsert_pod(PodInfo::new(key, e.ip(host), "big", "dc1", "r1", host == 1));
    }
    for host in 1..=n {
        wait_for("liveness", || async {
            e.status("GET", host, "/api/v0/probes/liveness").await == Some(StatusCode::OK)
        })
        .await;
        e.start_ready(host).await;
    }
    let ring = e.json(n, "/api/v0/metadata/endpoints").await;
    assert_eq!(
        ring["entity"].as_array().map(Vec::len),
        Some(usize::from(n))
    );
    let state = e.sim.state();
    assert!(state.pods.iter().all(|p| p.listening && p.desired_ready));
    assert!(e.sim.violations().is_empty());
}

#[tokio::test]
async fn datacenter_scope_lets_datacenters_bootstrap_in_parallel() {
    let e = env(158, fast()).await;
    e.pod("k1", "a-seed", 1, "c1", "dc1", true).await;
    // The second datacenter's first node bootstraps: a new seed would join without data.
    e.pod("k2", "b-first", 2, "c1", "dc2", false).await;
    e.pod("k1", "a-1", 3, "c1", "dc1", false).await;
    e.pod("k2", "b-1", 4, "c1", "dc2", false).await;
    e.pod("k2", "b-2", 5, "c1", "dc2", false).await;
    e.start_ready(1).await;
    e.start_ready(2).await;
    e.sim.update_config(&ConfigUpdate {
        bootstrap_delay_ms: Some(3_600_000),
        bootstrap_scope: Some(BootstrapScope::Datacenter),
        ..ConfigUpdate::default()
    });
    assert_eq!(
        e.ok("POST", 3, "/api/v0/lifecycle/start", None).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        e.ok("POST", 4, "/api/v0/lifecycle/start", None).await.0,
        StatusCode::CREATED
    );
    e.start_refused(5).await;
    let v = e.sim.violations();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].pod.as_ref().map(|p| p.name.as_str()), Some("b-2"));
}

// ----- rules read from the rendered configuration --------------------------------------------

impl Env {
    /// Adds a pod with a rendered configuration (labels: cluster c1, dc1) and waits for its
    /// management API.
    async fn pod_cfg(&self, name: &str, host: u8, seed_label: bool, cfg: NodeConfig) -> PodKey {
        let key = PodKey::new("k1", "ns", name);
        self.sim.upsert_pod(
            PodInfo::new(key.clone(), self.ip(host), "c1", "dc1", "r1", seed_label)
                .with_config(cfg),
        );
        wait_for("liveness", || async {
            self.status("GET", host, "/api/v0/probes/liveness").await == Some(StatusCode::OK)
        })
        .await;
        key
    }

    fn rules(&self) -> Vec<String> {
        self.sim.violations().into_iter().map(|v| v.rule).collect()
    }
}

fn cfg(cluster: &str) -> NodeConfig {
    NodeConfig {
        datacenter: Some("dc1".into()),
        ..NodeConfig::new(
            cluster,
            &["c1-seed-service", "c1-dc1-additional-seed-service"],
        )
    }
}

#[test]
fn rendered_configuration_is_read_like_the_config_builder() {
    let data = json!({
        "cluster-info": {"name": "Prod Cluster", "seeds": "prod-cluster-seed-service, prod-cluster-dc1-additional-seed-service"},
        "datacenter-info": {"name": "dc1"},
        "cassandra-yaml": {"authenticator": "PasswordAuthenticator"}
    })
    .to_string();
    let c = NodeConfig::from_rendered(
        &data,
        Some("cassandra"),
        Some("3.11.17"),
        None,
        Some("r2"),
        Some("-Xss256k -Dcassandra.replace_address_first_boot=10.0.0.7 -Dcassandra.consistent.rangemovement=false"),
    )
    .expect("parsed");
    assert_eq!(c.cluster_name, "Prod Cluster");
    assert_eq!(
        c.seeds,
        vec![
            "prod-cluster-seed-service".to_string(),
            "prod-cluster-dc1-additional-seed-service".to_string()
        ]
    );
    assert_eq!(c.num_tokens, 256, "3.11's cassandra.yaml default");
    assert_eq!(c.rack.as_deref(), Some("r2"));
    assert_eq!(c.replace_address_first_boot.as_deref(), Some("10.0.0.7"));
    assert!(!c.consistent_rangemovement);

    let v4 = NodeConfig::from_rendered(&data, None, None, Some("4.1.5"), None, None).expect("4.1");
    assert_eq!(v4.num_tokens, 16);
    assert_eq!(v4.server_version.as_deref(), Some("4.1.5"));
    assert!(v4.consistent_rangemovement);
    let own =
        json!({"cluster-info": {"name": "c"}, "cassandra-yaml": {"num_tokens": 8}}).to_string();
    let c8 = NodeConfig::from_rendered(&own, Some("dse"), Some("6.8.50"), None, None, None)
        .expect("dse");
    assert_eq!(c8.num_tokens, 8);
    assert_eq!(default_num_tokens("dse", Some("6.8.50")), 1);
    assert_eq!(default_num_tokens("hcd", Some("1.0.0")), 16);
    assert!(NodeConfig::from_rendered("{}", None, None, None, None, None).is_err());
    assert!(NodeConfig::from_rendered("not json", None, None, None, None, None).is_err());
}

#[tokio::test]
async fn seeds_resolve_from_the_seed_labelled_pods_and_seeds_do_not_bootstrap() {
    let e = env(
        160,
        SimConfig {
            bootstrap_delay: Duration::from_millis(300),
            ..fast()
        },
    )
    .await;
    e.pod_cfg("c1-dc1-r1-sts-0", 1, true, cfg("c1")).await;
    e.pod_cfg("c1-dc1-r1-sts-1", 2, false, cfg("c1")).await;
    // Another namespace's seed pod of the same label is not behind this namespace's Service.
    e.sim.upsert_pod(PodInfo::new(
        PodKey::new("k1", "other", "c1-dc1-r1-sts-0"),
        e.ip(9),
        "c1",
        "dc1",
        "r1",
        true,
    ));
    let (s, _) = e.ok("POST", 1, "/api/v0/lifecycle/start", None).await;
    assert_eq!(s, StatusCode::CREATED);
    let first = e
        .sim
        .state()
        .node_of_pod("c1-dc1-r1-sts-0")
        .cloned()
        .expect("node");
    assert!(first.seed, "its own address is in its seed list");
    assert_eq!(first.resolved_seeds, vec![e.ip(1)]);
    assert_eq!(
        first.cassandra,
        CassandraState::Starting,
        "a seed does not bootstrap"
    );
    e.wait_ready(1).await;
    let (s, _) = e.ok("POST", 2, "/api/v0/lifecycle/start", None).await;
    assert_eq!(s, StatusCode::CREATED);
    let second = e
        .sim
        .state()
        .node_of_pod("c1-dc1-r1-sts-1")
        .cloned()
        .expect("node");
    assert!(!second.seed);
    assert_eq!(
        second.cassandra,
        CassandraState::Joining,
        "a non-seed bootstraps"
    );
    e.wait_ready(2).await;
    // A seed label set later reaches the seed list at the next reload.
    e.sim.upsert_pod(
        PodInfo::new(
            PodKey::new("k1", "ns", "c1-dc1-r1-sts-1"),
            e.ip(2),
            "c1",
            "dc1",
            "r1",
            true,
        )
        .with_config(cfg("c1")),
    );
    let (_, body) = e.ok("POST", 1, "/api/v0/ops/seeds/reload", None).await;
    let seeds: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        seeds,
        json!([format!("/{}", e.ip(1)), format!("/{}", e.ip(2))])
    );
    assert!(e.sim.violations().is_empty(), "{:?}", e.sim.violations());
}

#[tokio::test]
async fn a_new_seed_joining_a_ring_with_data_is_refused() {
    let e = env(161, fast()).await;
    e.pod_cfg("n1", 1, true, cfg("c1")).await;
    e.pod_cfg("n2", 2, false, cfg("c1")).await;
    e.pod_cfg("n3", 3, true, cfg("c1")).await;
    e.start_ready(1).await;
    e.start_ready(2).await;
    e.start_refused(3).await;
    assert_eq!(e.rules(), vec!["seed_bootstrap_into_data"]);
    let n3 = e.sim.state().node_of_pod("n3").cloned().expect("node");
    assert_eq!(n3.cassandra, CassandraState::Down);
    assert!(n3.tokens.is_empty());
}

#[tokio::test]
async fn a_non_seed_whose_seeds_resolve_to_no_live_node_does_not_join() {
    let e = env(162, fast()).await;
    // The seed pod exists but Cassandra does not run there yet.
    e.pod_cfg("n1", 1, true, cfg("c1")).await;
    e.pod_cfg("n2", 2, false, cfg("c1")).await;
    e.pod_cfg(
        "n3",
        3,
        false,
        NodeConfig::new("c1", &["nothing-seed-service", "127.162.0.99"]),
    )
    .await;
    e.start_refused(2).await;
    e.start_ready(1).await;
    // Seeds that resolve to nothing alive, even with a live seed elsewhere.
    e.start_refused(3).await;
    assert_eq!(e.rules(), vec!["no_live_seed", "no_live_seed"]);
    // Following the rule: once the seed runs, the node joins.
    e.start_ready(2).await;
    assert_eq!(e.rules().len(), 2);
}

#[tokio::test]
async fn a_node_of_another_cluster_name_does_not_join() {
    let e = env(163, fast()).await;
    e.pod_cfg("n1", 1, true, cfg("c1")).await;
    e.pod_cfg("n2", 2, false, cfg("Other Cluster")).await;
    e.pod_cfg("n3", 3, false, cfg("c1")).await;
    e.start_ready(1).await;
    e.start_refused(2).await;
    assert_eq!(e.rules(), vec!["cluster_name_mismatch"]);
    e.start_ready(3).await;
    // A node with data started under another name refuses too (system.local keeps it).
    e.ok("POST", 3, "/api/v0/lifecycle/stop", None).await;
    e.pod_cfg("n3", 3, false, cfg("renamed")).await;
    e.start_refused(3).await;
    let v = e.sim.violations();
    assert_eq!(v.len(), 2);
    assert_eq!(v[1].rule, "cluster_name_mismatch");
    assert!(
        v[1].message.contains("Saved cluster name c1"),
        "{}",
        v[1].message
    );
}

#[tokio::test]
async fn num_tokens_cannot_change_once_a_node_has_data() {
    let e = env(164, fast()).await;
    e.pod_cfg("n1", 1, true, cfg("c1")).await;
    e.pod_cfg(
        "n2",
        2,
        false,
        NodeConfig {
            num_tokens: 8,
            ..cfg("c1")
        },
    )
    .await;
    e.start_ready(1).await;
    e.start_ready(2).await;
    let state = e.sim.state();
    assert_eq!(state.node_of_pod("n1").expect("n1").tokens.len(), 16);
    assert_eq!(
        state.node_of_pod("n2").expect("n2").tokens.len(),
        8,
        "a new node gets num_tokens"
    );
    e.ok("POST", 1, "/api/v0/lifecycle/stop", None).await;
    e.pod_cfg(
        "n1",
        1,
        true,
        NodeConfig {
            num_tokens: 32,
            ..cfg("c1")
        },
    )
    .await;
    let (s, body) = e
        .call("POST", 1, "/api/v0/lifecycle/start", None)
        .await
        .expect("answer");
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        body.contains("Cannot change the number of tokens from 16 to 32"),
        "{body}"
    );
    assert_eq!(e.rules(), vec!["num_tokens_changed"]);
    // Back to its own count, it starts.
    e.pod_cfg("n1", 1, true, cfg("c1")).await;
    e.start_ready(1).await;
    assert_eq!(e.rules().len(), 1);
}

#[tokio::test]
async fn no_bootstrap_while_a_replica_is_down_unless_consistency_is_off() {
    let e = env(165, fast()).await;
    e.pod_cfg("n1", 1, true, cfg("c1")).await;
    e.pod_cfg("n2", 2, false, cfg("c1")).await;
    e.pod_cfg("n3", 3, false, cfg("c1")).await;
    e.start_ready(1).await;
    e.start_ready(2).await;
    e.ok("POST", 2, "/api/v0/lifecycle/stop", None).await;
    e.start_refused(3).await;
    assert_eq!(e.rules(), vec!["bootstrap_replica_down"]);
    // -Dcassandra.consistent.rangemovement=false lets it stream from what is left.
    e.pod_cfg(
        "n3",
        3,
        false,
        NodeConfig {
            consistent_rangemovement: false,
            ..cfg("c1")
        },
    )
    .await;
    e.start_ready(3).await;
    assert_eq!(e.rules().len(), 1);
}

#[tokio::test]
async fn no_decommission_while_a_replica_is_down() {
    let e = env(166, fast()).await;
    for (name, host, seed) in [("n1", 1, true), ("n2", 2, false), ("n3", 3, false)] {
        e.pod_cfg(name, host, seed, cfg("c1")).await;
        e.start_ready(host).await;
    }
    e.ok("POST", 3, "/api/v0/lifecycle/stop", None).await;
    let (_, job) = e
        .ok("POST", 2, "/api/v1/ops/node/decommission?force=true", None)
        .await;
    let v = e.wait_job(2, &job).await;
    assert_eq!(v["status"], "ERROR", "{v}");
    assert_eq!(e.rules(), vec!["decommission_replica_down"]);
    assert_eq!(
        e.sim.state().node_of_pod("n2").expect("n2").cassandra,
        CassandraState::Normal
    );
    // With every replica up it leaves.
    e.start_ready(3).await;
    let (_, job) = e
        .ok("POST", 2, "/api/v1/ops/node/decommission?force=true", None)
        .await;
    assert_eq!(e.wait_job(2, &job).await["status"], "COMPLETED");
    assert_eq!(e.rules().len(), 1);
}

#[tokio::test]
async fn replace_address_first_boot_from_jvm_options_is_a_replacement() {
    let e = env(167, fast()).await;
    e.pod_cfg("n1", 1, true, cfg("c1")).await;
    e.pod_cfg("n2", 2, false, cfg("c1")).await;
    e.start_ready(1).await;
    e.start_ready(2).await;
    let old = e.sim.state().node_of_pod("n2").cloned().expect("n2");
    e.sim
        .set_fault(&FaultRequest {
            target: FaultTarget::pod("n2"),
            fault: None,
            clear: false,
            wipe: true,
        })
        .expect("wiped");
    e.pod_cfg(
        "n2",
        2,
        false,
        NodeConfig {
            replace_address_first_boot: Some(e.ip(2)),
            ..cfg("c1")
        },
    )
    .await;
    e.start_ready(2).await;
    let new = e.sim.state().node_of_pod("n2").cloned().expect("n2");
    assert_ne!(new.host_id, old.host_id);
    assert_eq!(
        new.tokens, old.tokens,
        "a replacement takes the dead node's tokens"
    );
    assert!(e.sim.violations().is_empty(), "{:?}", e.sim.violations());
}

#[tokio::test]
async fn unreadable_configuration_refuses_the_start() {
    let e = env(168, fast()).await;
    let mut info = PodInfo::new(
        PodKey::new("k1", "ns", "n1"),
        e.ip(1),
        "c1",
        "dc1",
        "r1",
        true,
    );
    info.config_error =
        Some("CONFIG_FILE_DATA comes from key config of Secret s, which could not be read".into());
    e.sim.upsert_pod(info);
    wait_for("liveness", || async {
        e.status("GET", 1, "/api/v0/probes/liveness").await == Some(StatusCode::OK)
    })
    .await;
    let (s, body) = e
        .call("POST", 1, "/api/v0/lifecycle/start", None)
        .await
        .expect("answer");
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("Secret s"), "{body}");
    let state = e.sim.state();
    assert!(state.pods[0].config_error.is_some());
    assert_eq!(
        state.node_of_pod("n1").expect("n1").cassandra,
        CassandraState::Down
    );
}

#[tokio::test]
async fn endpoints_mark_the_answering_node_local() {
    let e = env(169, fast()).await;
    e.pod_cfg("n1", 1, true, cfg("c1")).await;
    e.pod_cfg("n2", 2, false, cfg("c1")).await;
    e.start_ready(1).await;
    e.start_ready(2).await;
    for host in [1u8, 2] {
        let ring = e.json(host, "/api/v0/metadata/endpoints").await;
        let entity = ring["entity"].as_array().expect("entity");
        assert_eq!(entity.len(), 2);
        for n in entity {
            let me = n["ENDPOINT_IP"] == e.ip(host);
            assert_eq!(n["IS_LOCAL"], if me { "true" } else { "false" }, "{n}");
            assert_eq!(n["CLUSTER_NAME"], "c1");
        }
    }
}

#[tokio::test]
async fn others_see_a_state_change_after_the_gossip_delay() {
    let e = env(
        170,
        SimConfig {
            gossip_delay: Duration::from_secs(3600),
            ..fast()
        },
    )
    .await;
    e.pod("k1", "n1", 1, "c1", "dc1", true).await;
    e.pod("k1", "n2", 2, "c1", "dc1", false).await;
    e.start_ready(1).await;
    e.start_ready(2).await;
    let status_of = |ring: &Value, ip: &str| {
        ring["entity"]
            .as_array()
            .expect("entity")
            .iter()
            .find(|n| n["ENDPOINT_IP"] == ip)
            .and_then(|n| n["STATUS"].as_str().map(str::to_string))
    };
    let own = e.json(2, "/api/v0/metadata/endpoints").await;
    assert!(status_of(&own, &e.ip(2)).is_some_and(|s| s.starts_with("NORMAL")));
    assert_eq!(
        status_of(&own, &e.ip(1)),
        None,
        "n1's NORMAL has not reached n2 yet"
    );
    e.sim.update_config(&ConfigUpdate {
        gossip_delay_ms: Some(0),
        ..ConfigUpdate::default()
    });
    let later = e.json(2, "/api/v0/metadata/endpoints").await;
    assert!(status_of(&later, &e.ip(1)).is_some_and(|s| s.starts_with("NORMAL")));
}

// ----- timing ---------------------------------------------------------------------------------

#[tokio::test]
async fn the_management_api_listens_only_after_its_start_delay() {
    let e = env(
        171,
        SimConfig {
            mgmt_api_start_delay: Duration::from_secs(3600),
            ..fast()
        },
    )
    .await;
    let mut info = PodInfo::new(
        PodKey::new("k1", "ns", "n1"),
        e.ip(1),
        "c1",
        "dc1",
        "r1",
        true,
    );
    e.sim.upsert_pod(info.clone());
    // Give the listener manager a chance to act: it must not bind yet.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        e.status("GET", 1, "/api/v0/probes/liveness").await,
        None,
        "connection refused"
    );
    assert!(!e.sim.state().pods[0].listening);
    // The pod's annotation overrides the global delay.
    info.mgmt_api_start_delay_ms = Some(200);
    e.sim.upsert_pod(info);
    wait_for("liveness", || async {
        e.status("GET", 1, "/api/v0/probes/liveness").await == Some(StatusCode::OK)
    })
    .await;
}

#[tokio::test]
async fn readiness_is_probed_on_probe_ticks_only() {
    let e = env(
        172,
        SimConfig {
            probe_period: Duration::from_secs(3600),
            ..fast()
        },
    )
    .await;
    e.pod("k1", "n1", 1, "c1", "dc1", true).await;
    wait_for("first probe at container start", || async {
        e.sim.state().pods[0].probed_ready == Some(false)
    })
    .await;
    e.start_ready(1).await;
    assert!(e.sim.state().pods[0].desired_ready);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        e.sim.state().pods[0].probed_ready,
        Some(false),
        "no probe tick yet: the kubelet has not seen the node ready"
    );
    e.sim.update_config(&ConfigUpdate {
        probe_period_ms: Some(100),
        ..ConfigUpdate::default()
    });
    wait_for("probe tick", || async {
        e.sim.state().pods[0].probed_ready == Some(true)
    })
    .await;
}

#[tokio::test]
async fn realistic_preset_sets_real_timing() {
    let e = env(173, fast()).await;
    let c = e.sim.update_config(&ConfigUpdate {
        preset: Some(Preset::Realistic),
        ..ConfigUpdate::default()
    });
    assert_eq!(c.ring_delay, Duration::from_secs(30));
    assert_eq!(c.probe_timing, ProbeTiming::PodSpec);
    assert!(c.mgmt_api_start_delay >= Duration::from_secs(2));
    let client = e.sim.client().expect("control API");
    let c: SimConfig = client
        .update_config(
            &serde_json::from_value(json!({"preset": "default", "ring_delay_ms": 7}))
                .expect("update"),
        )
        .await
        .expect("posted");
    assert_eq!(c.ring_delay, Duration::from_millis(7));
    assert_eq!(c.probe_timing, ProbeTiming::Fixed);
}

/// A CA, a server certificate for `ip` and a client certificate, made per run.
struct TestPki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn test_pki(ip: &str) -> TestPki {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose, SanType,
    };
    let params = |cn: &str| {
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.not_before = rcgen::date_time_ymd(2000, 1, 1);
        p.not_after = rcgen::date_time_ymd(2099, 12, 31);
        p
    };
    let mut ca_params = params(&format!("ca-for-{ip}"));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("CA");
    let server_key = KeyPair::generate().expect("key");
    let mut server = params("cassandra");
    server.subject_alt_names = vec![SanType::IpAddress(ip.parse().expect("ip"))];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server.signed_by(&server_key, &*ca).expect("server cert");
    let client_key = KeyPair::generate().expect("key");
    let mut client = params("k8ssandra-operator");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client.signed_by(&client_key, &*ca).expect("client cert");
    TestPki {
        ca: ca.pem(),
        server_cert: server_cert.pem(),
        server_key: server_key.serialize_pem(),
        client_cert: client_cert.pem(),
        client_key: client_key.serialize_pem(),
    }
}

fn https_client(ca: &str, identity: Option<(&str, &str)>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).expect("ca"));
    if let Some((cert, key)) = identity {
        let pem = format!("{cert}{key}");
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("identity"));
    }
    b.build().expect("client")
}

#[tokio::test]
async fn a_tls_pod_serves_https_only_to_clients_with_a_certificate_of_its_ca() {
    let e = env(174, fast()).await;
    let ip = e.ip(1);
    let pki = test_pki(&ip);
    let tls = tls::MgmtTls::from_pem(
        vec!["server-tls".into()],
        pki.ca.as_bytes(),
        pki.server_cert.as_bytes(),
        pki.server_key.as_bytes(),
    );
    assert_eq!(tls.error, None);
    let key = PodKey::new("k", "ns", "tls-0");
    e.sim.upsert_pod(
        PodInfo::new(key.clone(), ip.clone(), "c1", "dc1", "r1", true).with_mgmt_tls(tls),
    );
    let url = format!("https://{ip}:{}/api/v0/probes/liveness", e.port);
    let with_cert = https_client(&pki.ca, Some((&pki.client_cert, &pki.client_key)));
    wait_for("liveness over mutual TLS", || async {
        with_cert
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
    })
    .await;

    // Without a client certificate: the handshake fails, no request reaches the node.
    let before = e.sim.requests().len();
    let without = https_client(&pki.ca, None).get(&url).send().await;
    assert!(
        without.is_err(),
        "served without a client certificate: {without:?}"
    );
    // A certificate of another CA is refused the same way.
    let other = test_pki(&ip);
    let foreign = https_client(&pki.ca, Some((&other.client_cert, &other.client_key)))
        .get(&url)
        .send()
        .await;
    assert!(
        foreign.is_err(),
        "served a foreign client certificate: {foreign:?}"
    );
    // Plain HTTP on the TLS port gets nothing either.
    let plain = e.status("GET", 1, "/api/v0/probes/liveness").await;
    assert!(
        plain.is_none() || plain != Some(StatusCode::OK),
        "{plain:?}"
    );
    assert_eq!(
        e.sim.requests().len(),
        before,
        "refused clients never reach the management API"
    );

    // The accepted client drives the node as over HTTP.
    let start = with_cert
        .post(format!("https://{ip}:{}/api/v0/lifecycle/start", e.port))
        .send()
        .await
        .expect("start over TLS");
    assert_eq!(start.status(), StatusCode::CREATED);
    let requests = e.sim.requests();
    assert!(
        requests
            .iter()
            .filter(|r| r.pod == key)
            .all(|r| r.tls && r.status != 0),
        "{requests:?}"
    );

    // A plain pod next to it keeps serving HTTP.
    let plain = e.pod("k", "plain-0", 2, "c2", "dc1", true).await;
    assert!(
        e.sim
            .requests()
            .iter()
            .filter(|r| r.pod == plain)
            .all(|r| !r.tls)
    );
}

#[tokio::test]
async fn a_tls_pod_with_unusable_material_does_not_listen() {
    let e = env(175, fast()).await;
    let tls = tls::MgmtTls::from_pem(vec!["s".into()], b"garbage", b"garbage", b"garbage");
    assert!(tls.error.is_some());
    e.sim.upsert_pod(
        PodInfo::new(
            PodKey::new("k", "ns", "bad-0"),
            e.ip(1),
            "c1",
            "dc1",
            "r1",
            true,
        )
        .with_mgmt_tls(tls),
    );
    // A plain pod added after it listens: the listener pass has run over both.
    e.pod("k", "plain-0", 2, "c1", "dc1", false).await;
    assert_eq!(e.status("GET", 1, "/api/v0/probes/liveness").await, None);
}
