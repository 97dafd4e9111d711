//! The management-API client, observation and operation executor against a fake
//! management API served by axum on loopback addresses (one address per "pod").

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use k8ssandra_host::dataplane::{
    DataplaneError, Endpoint, ExecutorConfig, ManagementApi, ManagementApiConfig, NodeFollower,
    OperationExecutor, SecretData, SecretError, SecretReader,
};
use k8ssandra_host::plugin::bindings::{
    NodeRef, Operation, OperationKind, Outcome, Replication, Role, TableScope,
};
use tokio::sync::Semaphore;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

/// Guards against a hung test; no assertion depends on it.
const HANG_GUARD: Duration = Duration::from_secs(60);
const PASSWORD: &str = "s3cr3t-Pa55word";

#[derive(Clone, Debug)]
struct Request {
    method: String,
    path: String,
    query: String,
    body: String,
}

#[derive(Default)]
struct Behaviour {
    ready: bool,
    /// Answer 404 on every v1 endpoint, like a management API older than the job API.
    no_v1: bool,
    /// Answer 500 to this many `metadata/endpoints` calls before answering.
    endpoints_failures: u32,
    /// Answer 500 to every decommission.
    decommission_500: bool,
    /// Job polls answered WAITING before COMPLETED (or ERROR).
    job_waits: u32,
    job_fails: bool,
    /// Answer 500 with the password echoed to role creation.
    role_echo_error: bool,
    /// Answer 500 to liveness probes (an API that runs but is broken).
    liveness_500: bool,
}

struct FakeNode {
    behaviour: Mutex<Behaviour>,
    log: Mutex<Vec<Request>>,
    /// Calls of this path wait for a permit of the semaphore before being answered.
    gate: Option<(&'static str, Arc<Semaphore>)>,
    /// Liveness probes being answered, and the most there ever were at once.
    probes_now: AtomicUsize,
    probes_max: AtomicUsize,
}

impl FakeNode {
    fn requests(&self, path: &str) -> Vec<Request> {
        self.log
            .lock()
            .map(|l| l.iter().filter(|r| r.path == path).cloned().collect())
            .unwrap_or_default()
    }
}

async fn handle(
    State(node): State<Arc<FakeNode>>,
    method: Method,
    uri: Uri,
    body: String,
) -> (StatusCode, String) {
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or_default().to_string();
    if let Ok(mut log) = node.log.lock() {
        log.push(Request {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
            body,
        });
    }
    if let Some((gated, gate)) = &node.gate
        && *gated == path
        && let Ok(permit) = gate.acquire().await
    {
        permit.forget();
    }
    if path == "/api/v0/lifecycle/start" {
        return (StatusCode::CREATED, "OK".into());
    }
    let broken = node
        .behaviour
        .lock()
        .map(|b| b.liveness_500)
        .unwrap_or(false);
    if path == "/api/v0/probes/liveness" && broken {
        return (StatusCode::INTERNAL_SERVER_ERROR, "broken".into());
    }
    if path == "/api/v0/probes/liveness" {
        let now = node.probes_now.fetch_add(1, Ordering::SeqCst) + 1;
        node.probes_max.fetch_max(now, Ordering::SeqCst);
        // Long enough for concurrent probes to overlap; nothing asserts on time.
        tokio::time::sleep(Duration::from_millis(5)).await;
        node.probes_now.fetch_sub(1, Ordering::SeqCst);
        return (StatusCode::OK, "OK".into());
    }
    let Ok(mut b) = node.behaviour.lock() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "poisoned".into());
    };
    if b.no_v1 && path.starts_with("/api/v1/") {
        return (StatusCode::NOT_FOUND, "Not Found".into());
    }
    match path.as_str() {
        "/api/v0/probes/readiness" if b.ready => (StatusCode::OK, "OK".into()),
        "/api/v0/probes/readiness" => (StatusCode::INTERNAL_SERVER_ERROR, String::new()),
        "/api/v0/metadata/endpoints" if b.endpoints_failures > 0 => {
            b.endpoints_failures -= 1;
            (StatusCode::INTERNAL_SERVER_ERROR, "try later".into())
        }
        "/api/v0/metadata/endpoints" => (
            StatusCode::OK,
            r#"{"entity":[{"ENDPOINT_IP":"127.0.0.1","STATUS":"NORMAL"}]}"#.into(),
        ),
        "/api/v0/ops/node/decommission" | "/api/v1/ops/node/decommission" if b.decommission_500 => {
            (StatusCode::INTERNAL_SERVER_ERROR, "boom".into())
        }
        "/api/v0/ops/node/decommission" => (StatusCode::OK, "OK".into()),
        "/api/v1/ops/node/decommission" | "/api/v1/ops/keyspace/cleanup" => {
            (StatusCode::ACCEPTED, "job-1".into())
        }
        "/api/v0/ops/keyspace/cleanup" => (StatusCode::OK, "OK".into()),
        "/api/v0/ops/executor/job" if b.job_waits > 0 => {
            b.job_waits -= 1;
            (
                StatusCode::OK,
                r#"{"id":"job-1","status":"WAITING"}"#.into(),
            )
        }
        "/api/v0/ops/executor/job" if b.job_fails => (
            StatusCode::OK,
            r#"{"id":"job-1","status":"ERROR","error":"streaming failed"}"#.into(),
        ),
        "/api/v0/ops/executor/job" => (
            StatusCode::OK,
            r#"{"id":"job-1","status":"COMPLETED"}"#.into(),
        ),
        "/api/v0/ops/auth/role" if b.role_echo_error => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("could not create role with password {PASSWORD}"),
        ),
        "/api/v0/ops/auth/role" => (StatusCode::OK, "OK".into()),
        "/api/v0/ops/keyspace/create" => (StatusCode::OK, "OK".into()),
        _ => (StatusCode::NOT_FOUND, "Not Found".into()),
    }
}

/// A set of fake pods on `127.0.<net>.x`, all on the same port.
struct Fleet {
    port: u16,
    net: u8,
}

impl Fleet {
    fn ip(&self, host: u8) -> String {
        format!("127.0.{}.{}", self.net, host)
    }

    fn api(&self) -> ManagementApi {
        match ManagementApi::new(ManagementApiConfig {
            port: self.port,
            backoff_base: Duration::from_millis(5),
            backoff_max: Duration::from_millis(20),
            ..Default::default()
        }) {
            Ok(api) => api,
            Err(e) => panic!("client: {e}"),
        }
    }
}

/// Serves one fake node per entry of `nodes`, on `127.0.<net>.2`, `.3`, ...
async fn fleet(net: u8, nodes: Vec<Arc<FakeNode>>) -> Fleet {
    let mut port = 0;
    for (i, node) in nodes.into_iter().enumerate() {
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, net, 2 + i as u8));
        let listener = match tokio::net::TcpListener::bind((ip, port)).await {
            Ok(l) => l,
            Err(e) => panic!("bind {ip}:{port}: {e}"),
        };
        if port == 0 {
            port = match listener.local_addr() {
                Ok(a) => a.port(),
                Err(e) => panic!("local addr: {e}"),
            };
        }
        let app = Router::new().fallback(handle).with_state(node);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
    }
    Fleet { port, net }
}

fn fake(behaviour: Behaviour) -> Arc<FakeNode> {
    gated(behaviour, None)
}

fn gated(behaviour: Behaviour, gate: Option<(&'static str, Arc<Semaphore>)>) -> Arc<FakeNode> {
    Arc::new(FakeNode {
        behaviour: Mutex::new(behaviour),
        log: Mutex::new(Vec::new()),
        gate,
        probes_now: AtomicUsize::new(0),
        probes_max: AtomicUsize::new(0),
    })
}

fn node(pod: &str) -> NodeRef {
    NodeRef {
        cluster: String::new(),
        namespace: "ns".into(),
        pod: pod.into(),
    }
}

fn op(id: &str, pod: &str, kind: OperationKind) -> Operation {
    Operation {
        id: id.into(),
        target: node(pod),
        kind,
    }
}

fn secrets() -> Arc<dyn SecretReader> {
    Arc::new(
        |_cluster: String, namespace: String, name: String| async move {
            if name != "superuser" {
                return Err(SecretError {
                    cluster: String::new(),
                    namespace,
                    name,
                    reason: "not found".into(),
                });
            }
            let mut data = SecretData::new();
            data.insert("username".into(), b"admin".to_vec());
            data.insert("password".into(), PASSWORD.as_bytes().to_vec());
            Ok::<_, SecretError>(data)
        },
    )
}

fn executor(fleet: &Fleet) -> (OperationExecutor, UnboundedReceiver<String>) {
    let (tx, rx) = unbounded_channel();
    let exec = OperationExecutor::new(
        fleet.api(),
        secrets(),
        tx,
        ExecutorConfig {
            job_poll_initial: Duration::from_millis(5),
            job_poll_max: Duration::from_millis(20),
            ..Default::default()
        },
    );
    (exec, rx)
}

/// Resolves pods `n<i>` to `127.0.<net>.<2+i>`.
fn resolver(fleet: &Fleet) -> impl Fn(&NodeRef) -> Option<String> + '_ {
    move |n: &NodeRef| {
        let i: u8 = n.pod.strip_prefix('n')?.parse().ok()?;
        Some(fleet.ip(2 + i))
    }
}

/// Waits for notifications of `parent` until operation `id` has a final outcome.
async fn final_outcome(
    exec: &OperationExecutor,
    rx: &mut UnboundedReceiver<String>,
    parent: &str,
    id: &str,
) -> Outcome {
    let wait = async {
        loop {
            let outcome = exec
                .results(parent)
                .into_iter()
                .find(|r| r.id == id)
                .map(|r| r.outcome);
            match outcome {
                Some(Outcome::Running(_)) | None => {}
                Some(done) => return done,
            }
            match rx.recv().await {
                Some(p) => assert_eq!(p, parent, "notification for another parent"),
                None => panic!("notification channel closed"),
            }
        }
    };
    match tokio::time::timeout(HANG_GUARD, wait).await {
        Ok(o) => o,
        Err(_) => panic!("operation {id} did not finish"),
    }
}

#[tokio::test]
async fn observe_reports_ready_unready_and_unreachable() {
    let ready = fake(Behaviour {
        ready: true,
        ..Default::default()
    });
    let unready = fake(Behaviour::default());
    let ready2 = fake(Behaviour {
        ready: true,
        ..Default::default()
    });
    let fleet = fleet(11, vec![ready.clone(), unready.clone(), ready2.clone()]).await;
    let api = fleet.api();
    let states = api
        .observe(vec![
            (node("n0"), Some(fleet.ip(2))),
            (node("n1"), Some(fleet.ip(3))),
            (node("n2"), Some(fleet.ip(4))),
            // Nothing listens there: connection refused.
            (node("gone"), Some(fleet.ip(250))),
            (node("pending"), None),
        ])
        .await;
    let pods: Vec<&str> = states.iter().map(|s| s.node.pod.as_str()).collect();
    assert_eq!(pods, ["n0", "n1", "n2", "gone", "pending"], "order kept");

    let s = &states[0];
    assert!(s.reachable && s.alive && s.ready && s.error.is_none());
    let endpoints = s.endpoints.as_deref().unwrap_or_default();
    assert!(endpoints.contains("ENDPOINT_IP"), "{endpoints}");

    let s = &states[1];
    assert!(s.reachable && s.alive && !s.ready && s.error.is_none());
    assert!(s.endpoints.is_none());

    // Only one ready node per call is asked for the gossip view.
    assert!(states[2].ready && states[2].endpoints.is_none());
    assert!(ready2.requests("/api/v0/metadata/endpoints").is_empty());
    assert!(unready.requests("/api/v0/metadata/endpoints").is_empty());

    let s = &states[3];
    assert!(!s.reachable && !s.alive && !s.ready);
    let err = s.error.as_deref().unwrap_or_default();
    assert!(
        err.contains("/api/v0/probes/liveness") && err.contains(&fleet.ip(250)),
        "{err}"
    );

    let s = &states[4];
    assert!(!s.reachable && s.address.is_none() && s.error.is_some());

    // Probes are not retried: one liveness call per reachable node.
    assert_eq!(ready.requests("/api/v0/probes/liveness").len(), 1);
    let stats = api.stats();
    assert_eq!(stats.get(Endpoint::Liveness).map(|e| e.calls), Some(4));
    assert_eq!(stats.get(Endpoint::Liveness).map(|e| e.errors), Some(1));
}

#[tokio::test]
async fn a_healthy_answer_is_reused_until_its_pod_changes_or_an_operation_runs() {
    let node0 = fake(Behaviour {
        ready: true,
        ..Default::default()
    });
    let fleet = fleet(23, vec![node0.clone()]).await;
    // The executor and the observation share one client, as in the operator.
    let api = fleet.api();
    let (tx, mut rx) = unbounded_channel();
    let exec = OperationExecutor::new(api.clone(), secrets(), tx, ExecutorConfig::default());
    let at = |version: &str| vec![(node("n0"), Some(fleet.ip(2)), Some(version.to_string()))];
    let probes = || node0.requests("/api/v0/probes/liveness").len();

    let first = api.observe_pods(at("uid/1")).await;
    assert!(first[0].reachable && first[0].ready, "{:?}", first[0]);
    let again = api.observe_pods(at("uid/1")).await;
    assert_eq!(again, first, "the same answer, without asking");
    assert_eq!(probes(), 1);
    assert_eq!(api.stats().probes_reused, 1);

    // The pod changed (its readiness, say): asked again.
    api.observe_pods(at("uid/2")).await;
    assert_eq!(probes(), 2);
    // No version (the follower's probes, a caller that cannot tell): always asked.
    api.observe(vec![(node("n0"), Some(fleet.ip(2)))]).await;
    assert_eq!(probes(), 3);

    // An operation on the node: its next observation asks it, whatever the pod says.
    exec.execute(
        "dc1",
        vec![op("start/n0/1", "n0", OperationKind::Start(None))],
        resolver(&fleet),
    );
    let outcome = final_outcome(&exec, &mut rx, "dc1", "start/n0/1").await;
    assert_eq!(outcome, Outcome::Succeeded("OK".into()));
    api.observe_pods(at("uid/2")).await;
    assert_eq!(probes(), 4);

    // An unhealthy answer is never reused.
    if let Ok(mut b) = node0.behaviour.lock() {
        b.liveness_500 = true;
    }
    let failing = api.observe_pods(at("uid/3")).await;
    assert!(!failing[0].reachable);
    if let Ok(mut b) = node0.behaviour.lock() {
        b.liveness_500 = false;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let back = api.observe_pods(at("uid/3")).await;
    assert!(back[0].reachable, "{:?}", back[0]);
}

#[tokio::test]
async fn a_node_whose_api_comes_up_later_triggers_its_parents() {
    // A port with nothing listening on the pod's address: the API is not up yet.
    let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 21, 2));
    let port = match tokio::net::TcpListener::bind((ip, 0)).await {
        Ok(l) => l.local_addr().map(|a| a.port()).unwrap_or_default(),
        Err(e) => panic!("bind {ip}: {e}"),
    };
    let fleet = Fleet { port, net: 21 };
    let api = fleet.api();
    let (tx, mut rx) = unbounded_channel();
    let follower = NodeFollower::new(api.clone(), tx);
    let nodes = vec![(node("n0"), Some(fleet.ip(2)))];
    let states = api.observe(nodes.clone()).await;
    assert!(!states[0].reachable && !states[0].alive, "{:?}", states[0]);
    follower.follow("cassandra-datacenter|ns/dc1", &states);
    follower.follow("k8ssandra-cluster|ns/demo", &states);
    follower.follow("gone|ns/x", &states);
    follower.forget("gone|ns/x");
    assert_eq!(follower.followed(), 1);

    // Some seconds pass without the API: the follower keeps probing, nobody is triggered.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(rx.try_recv().is_err(), "notified while nothing changed");
    let probes = api.stats().get(Endpoint::Liveness).map_or(0, |e| e.calls);
    assert!(probes >= 2, "probed {probes} times");

    // The API comes up: both parents are triggered, without any further observation.
    let up = fake(Behaviour::default());
    let listener = match tokio::net::TcpListener::bind((ip, port)).await {
        Ok(l) => l,
        Err(e) => panic!("bind {ip}:{port}: {e}"),
    };
    let app = Router::new().fallback(handle).with_state(up.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let mut parents = Vec::new();
    while parents.len() < 2 {
        match tokio::time::timeout(HANG_GUARD, rx.recv()).await {
            Ok(Some(p)) => parents.push(p),
            other => panic!("no trigger after the API came up: {other:?}"),
        }
    }
    parents.sort();
    assert_eq!(
        parents,
        ["cassandra-datacenter|ns/dc1", "k8ssandra-cluster|ns/demo"]
    );
    assert_eq!(follower.followed(), 0);
    // The reconcile that follows sees the node answer.
    let states = api.observe(nodes).await;
    assert!(states[0].reachable && states[0].alive);
    follower.follow("cassandra-datacenter|ns/dc1", &states);
    assert_eq!(follower.followed(), 0);
}

#[tokio::test]
async fn a_failing_node_triggers_its_parents_when_its_hold_runs_out() {
    let flaky = fake(Behaviour {
        liveness_500: true,
        ..Default::default()
    });
    let fleet = fleet(22, vec![flaky.clone()]).await;
    let api = match ManagementApi::new(ManagementApiConfig {
        port: fleet.port,
        probe_backoff_base: Duration::from_millis(200),
        probe_backoff_max: Duration::from_millis(400),
        ..Default::default()
    }) {
        Ok(api) => api,
        Err(e) => panic!("client: {e}"),
    };
    let (tx, mut rx) = unbounded_channel();
    let follower = NodeFollower::new(api.clone(), tx);
    let nodes = vec![(node("n0"), Some(fleet.ip(2)))];
    let liveness = || flaky.requests("/api/v0/probes/liveness").len();
    for round in 0..2 {
        let states = api.observe(nodes.clone()).await;
        assert!(!states[0].reachable && !states[0].alive, "{:?}", states[0]);
        let probes = liveness();
        follower.follow("p|ns/dc", &states);
        // The parent is triggered when the hold runs out, and the follower itself never
        // hits the broken API: the parent's next observation is the one probe.
        match tokio::time::timeout(HANG_GUARD, rx.recv()).await {
            Ok(Some(p)) => assert_eq!(p, "p|ns/dc"),
            other => panic!("round {round}: no trigger when the hold ran out: {other:?}"),
        }
        assert_eq!(liveness(), probes, "round {round}: the follower probed");
    }
    // Observations racing at the end of a hold make one probe between them.
    let probes = liveness();
    let (a, b) = tokio::join!(api.observe(nodes.clone()), api.observe(nodes.clone()));
    assert!(!a[0].reachable && !b[0].reachable);
    assert_eq!(
        liveness(),
        probes + 1,
        "one probe for two racing observations"
    );
    if let Ok(mut b) = flaky.behaviour.lock() {
        b.liveness_500 = false;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let states = api.observe(nodes.clone()).await;
    assert!(states[0].reachable && states[0].alive, "{:?}", states[0]);
}

#[tokio::test]
async fn get_is_retried_on_500_then_succeeds_but_post_is_not() {
    let flaky = fake(Behaviour {
        ready: true,
        endpoints_failures: 2,
        decommission_500: true,
        ..Default::default()
    });
    let fleet = fleet(12, vec![flaky.clone()]).await;
    let api = fleet.api();

    let body = match api.endpoints(&fleet.ip(2)).await {
        Ok(b) => b,
        Err(e) => panic!("endpoints after retries: {e}"),
    };
    assert!(body.contains("ENDPOINT_IP"));
    assert_eq!(flaky.requests("/api/v0/metadata/endpoints").len(), 3);
    let stats = api.stats();
    let e = stats.get(Endpoint::Endpoints).cloned().unwrap_or_default();
    assert_eq!((e.calls, e.errors, e.retries), (3, 2, 2));

    // A decommission that reached the node is never sent twice.
    match api.decommission_v1(&fleet.ip(2)).await {
        Err(DataplaneError::Status {
            status, endpoint, ..
        }) => {
            assert_eq!(status, 500);
            assert_eq!(endpoint, "/api/v1/ops/node/decommission");
        }
        other => panic!("expected HTTP 500, got {other:?}"),
    }
    assert_eq!(flaky.requests("/api/v1/ops/node/decommission").len(), 1);
}

#[tokio::test]
async fn an_operation_in_flight_is_not_started_twice() {
    let gate = Arc::new(Semaphore::new(0));
    let slow = gated(
        Behaviour::default(),
        Some(("/api/v0/lifecycle/start", gate.clone())),
    );
    let fleet = fleet(13, vec![slow.clone()]).await;
    let (exec, mut rx) = executor(&fleet);
    let start = || {
        vec![op(
            "start/n0/1",
            "n0",
            OperationKind::Start(Some("10.9.9.9".into())),
        )]
    };

    assert_eq!(exec.execute("dc1", start(), resolver(&fleet)), 1);
    assert_eq!(exec.execute("dc1", start(), resolver(&fleet)), 0);
    assert!(exec.in_flight("dc1", "start/n0/1"));
    let results = exec.results("dc1");
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].outcome, Outcome::Running(String::new()));

    gate.add_permits(1);
    let outcome = final_outcome(&exec, &mut rx, "dc1", "start/n0/1").await;
    assert_eq!(outcome, Outcome::Succeeded("OK".into()));

    // Done is done: the same id is not run again.
    assert_eq!(exec.execute("dc1", start(), resolver(&fleet)), 0);
    let starts = slow.requests("/api/v0/lifecycle/start");
    assert_eq!(starts.len(), 1, "{starts:?}");
    assert_eq!(starts[0].method, "POST");
    assert_eq!(starts[0].query, "replace_ip=10.9.9.9");
}

#[tokio::test]
async fn decommission_job_is_polled_to_completion_and_notifies() {
    // Job polls are held until the test has seen the job id published.
    let polls_gate = Arc::new(Semaphore::new(0));
    let node0 = gated(
        Behaviour {
            job_waits: 2,
            ..Default::default()
        },
        Some(("/api/v0/ops/executor/job", polls_gate.clone())),
    );
    let fleet = fleet(14, vec![node0.clone()]).await;
    let (exec, mut rx) = executor(&fleet);

    exec.execute(
        "dc1",
        vec![op("decommission/n0/3", "n0", OperationKind::Decommission)],
        resolver(&fleet),
    );
    // The job id is published while the job runs, with its own notification.
    let first = tokio::time::timeout(HANG_GUARD, rx.recv()).await;
    assert_eq!(first.ok().flatten().as_deref(), Some("dc1"));
    let results = exec.results("dc1");
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].outcome, Outcome::Running("job-1".into()));
    assert!(exec.in_flight("dc1", "decommission/n0/3"));
    polls_gate.add_permits(3);

    let outcome = final_outcome(&exec, &mut rx, "dc1", "decommission/n0/3").await;
    match outcome {
        Outcome::Succeeded(body) => assert!(body.contains("COMPLETED"), "{body}"),
        other => panic!("expected success, got {other:?}"),
    }
    assert!(!exec.in_flight("dc1", "decommission/n0/3"));
    let decommissions = node0.requests("/api/v1/ops/node/decommission");
    assert_eq!(decommissions.len(), 1);
    assert_eq!(decommissions[0].query, "force=true");
    let polls = node0.requests("/api/v0/ops/executor/job");
    assert_eq!(polls.len(), 3, "two WAITING and one COMPLETED");
    assert!(polls.iter().all(|p| p.query == "job_id=job-1"));
}

#[tokio::test]
async fn failed_job_reports_its_error() {
    let node0 = fake(Behaviour {
        job_fails: true,
        ..Default::default()
    });
    let fleet = fleet(15, vec![node0]).await;
    let (exec, mut rx) = executor(&fleet);
    let cleanup = OperationKind::Cleanup(TableScope {
        keyspace: "ks".into(),
        tables: vec![],
        jobs: 0,
    });
    exec.execute(
        "dc1",
        vec![op("cleanup/n0", "n0", cleanup)],
        resolver(&fleet),
    );
    match final_outcome(&exec, &mut rx, "dc1", "cleanup/n0").await {
        Outcome::Failed(msg) => assert!(msg.contains("streaming failed"), "{msg}"),
        other => panic!("expected failure, got {other:?}"),
    }
}

#[tokio::test]
async fn v1_404_falls_back_to_v0() {
    let old = fake(Behaviour {
        no_v1: true,
        ..Default::default()
    });
    let fleet = fleet(16, vec![old.clone()]).await;
    let (exec, mut rx) = executor(&fleet);
    let cleanup = OperationKind::Cleanup(TableScope {
        keyspace: "ks".into(),
        tables: vec!["t1".into()],
        jobs: 2,
    });
    exec.execute(
        "dc1",
        vec![
            op("decommission/n0", "n0", OperationKind::Decommission),
            op("cleanup/n0", "n0", cleanup),
            op("rebuild/n0", "n0", OperationKind::Rebuild("dc0".into())),
        ],
        resolver(&fleet),
    );
    assert_eq!(
        final_outcome(&exec, &mut rx, "dc1", "decommission/n0").await,
        Outcome::Succeeded("OK".into())
    );
    assert_eq!(
        final_outcome(&exec, &mut rx, "dc1", "cleanup/n0").await,
        Outcome::Succeeded("OK".into())
    );
    // Rebuild has no v0 endpoint: it fails and says why.
    match final_outcome(&exec, &mut rx, "dc1", "rebuild/n0").await {
        Outcome::Failed(msg) => assert!(msg.contains("404") && msg.contains("v1"), "{msg}"),
        other => panic!("expected failure, got {other:?}"),
    }

    let v0 = old.requests("/api/v0/ops/node/decommission");
    assert_eq!(v0.len(), 1);
    assert_eq!(v0[0].query, "force=true");
    let cleanups = old.requests("/api/v0/ops/keyspace/cleanup");
    assert_eq!(cleanups.len(), 1);
    let body: serde_json::Value = serde_json::from_str(&cleanups[0].body).unwrap_or_default();
    assert_eq!(
        body,
        serde_json::json!({"keyspace_name": "ks", "tables": ["t1"], "jobs": 2})
    );
    assert!(old.requests("/api/v0/ops/executor/job").is_empty());
}

#[tokio::test]
async fn create_role_sends_credentials_and_never_shows_the_password() {
    let good = fake(Behaviour::default());
    let bad = fake(Behaviour {
        role_echo_error: true,
        ..Default::default()
    });
    let fleet = fleet(17, vec![good.clone(), bad.clone()]).await;
    let (exec, mut rx) = executor(&fleet);
    let role = |secret: &str| {
        OperationKind::CreateRole(Role {
            secret_name: secret.into(),
            superuser: true,
            login: true,
        })
    };
    exec.execute(
        "dc1",
        vec![
            op("role/good", "n0", role("superuser")),
            op("role/bad", "n1", role("superuser")),
            op("role/nosecret", "n0", role("missing")),
        ],
        resolver(&fleet),
    );

    assert_eq!(
        final_outcome(&exec, &mut rx, "dc1", "role/good").await,
        Outcome::Succeeded("OK".into())
    );
    let sent = good.requests("/api/v0/ops/auth/role");
    assert_eq!(sent.len(), 1);
    let query: BTreeMap<String, String> = sent[0]
        .query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(query.get("username").map(String::as_str), Some("admin"));
    assert_eq!(query.get("password").map(String::as_str), Some(PASSWORD));
    assert_eq!(query.get("is_superuser").map(String::as_str), Some("true"));
    assert_eq!(query.get("can_login").map(String::as_str), Some("true"));

    // The node echoes the password in its error; the outcome must not carry it.
    let failed = final_outcome(&exec, &mut rx, "dc1", "role/bad").await;
    let shown = format!("{failed:?}");
    assert!(matches!(failed, Outcome::Failed(_)), "{shown}");
    assert!(shown.contains("500"), "{shown}");
    assert!(!shown.contains(PASSWORD), "{shown}");
    // Role creation is idempotent by nature, so the 500 was retried.
    assert_eq!(bad.requests("/api/v0/ops/auth/role").len(), 3);

    match final_outcome(&exec, &mut rx, "dc1", "role/nosecret").await {
        Outcome::Failed(msg) => assert!(msg.contains("missing"), "{msg}"),
        other => panic!("expected failure, got {other:?}"),
    }

    // The client's own error, Display and Debug, hides it too.
    let api = fleet.api();
    let password = k8ssandra_host::dataplane::Password::new(PASSWORD);
    match api
        .create_role(&fleet.ip(3), "admin", &password, true, true)
        .await
    {
        Err(e) => {
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains(PASSWORD), "{shown}");
            assert!(shown.contains("/api/v0/ops/auth/role"), "{shown}");
        }
        Ok(body) => panic!("expected an error, got {body}"),
    }
}

#[tokio::test]
async fn missing_pod_ip_fails_at_once_and_forget_drops_results() {
    let node0 = fake(Behaviour::default());
    let fleet = fleet(18, vec![node0.clone()]).await;
    let (exec, mut rx) = executor(&fleet);
    let create = OperationKind::CreateKeyspace(Replication {
        keyspace: "ks".into(),
        replicas: vec![("dc1".into(), 3), ("dc2".into(), 1)],
    });
    let started = exec.execute(
        "dc1",
        vec![
            op("ks/create", "n0", create),
            op("start/ghost", "ghost", OperationKind::Start(None)),
        ],
        resolver(&fleet),
    );
    assert_eq!(started, 1);
    match final_outcome(&exec, &mut rx, "dc1", "start/ghost").await {
        Outcome::Failed(msg) => assert!(msg.contains("ghost") && msg.contains("no IP"), "{msg}"),
        other => panic!("expected failure, got {other:?}"),
    }
    assert_eq!(
        final_outcome(&exec, &mut rx, "dc1", "ks/create").await,
        Outcome::Succeeded("OK".into())
    );
    let creates = node0.requests("/api/v0/ops/keyspace/create");
    let body: serde_json::Value = serde_json::from_str(&creates[0].body).unwrap_or_default();
    assert_eq!(
        body,
        serde_json::json!({"keyspace_name": "ks", "replication_settings": [
            {"dc_name": "dc1", "replication_factor": 3},
            {"dc_name": "dc2", "replication_factor": 1},
        ]})
    );

    assert_eq!(exec.results("dc1").len(), 2);
    assert!(exec.results("other").is_empty());
    exec.forget("dc1");
    assert!(exec.results("dc1").is_empty());
}

#[tokio::test]
async fn observe_probes_at_most_the_configured_number_of_nodes_at_once() {
    let busy = fake(Behaviour {
        ready: true,
        ..Default::default()
    });
    let fleet = fleet(20, vec![busy.clone()]).await;
    let api = match ManagementApi::new(ManagementApiConfig {
        port: fleet.port,
        observe_concurrency: 4,
        ..Default::default()
    }) {
        Ok(a) => a,
        Err(e) => panic!("client: {e}"),
    };
    // Many pods behind one address: the fake counts overlapping probes.
    let nodes: Vec<_> = (0..40)
        .map(|i| (node(&format!("p{i}")), Some(fleet.ip(2))))
        .collect();
    let states = api.observe(nodes).await;
    assert_eq!(states.len(), 40);
    assert!(states.iter().all(|s| s.ready));
    let pods: Vec<String> = states.iter().map(|s| s.node.pod.clone()).collect();
    let expected: Vec<String> = (0..40).map(|i| format!("p{i}")).collect();
    assert_eq!(pods, expected, "answers keep the order of the request");
    let max = busy.probes_max.load(Ordering::SeqCst);
    assert!((1..=4).contains(&max), "{max} probes at once");
    assert_eq!(busy.requests("/api/v0/metadata/endpoints").len(), 1);
}

#[tokio::test]
async fn forget_stops_following_and_a_new_generation_runs_the_id_again() {
    let gate = Arc::new(Semaphore::new(0));
    let slow = gated(
        Behaviour::default(),
        Some(("/api/v0/lifecycle/start", gate.clone())),
    );
    let fleet = fleet(21, vec![slow.clone()]).await;
    let (exec, mut rx) = executor(&fleet);
    let start = || vec![op("start/n0", "n0", OperationKind::Start(None))];

    assert_eq!(exec.execute("dc1", start(), resolver(&fleet)), 1);
    exec.forget("dc1");
    assert!(exec.results("dc1").is_empty());
    assert!(!exec.in_flight("dc1", "start/n0"));

    // The parent's new generation knows nothing of the id, so it runs again, and the
    // cancelled task of the old generation cannot overwrite its outcome.
    assert_eq!(exec.execute("dc1", start(), resolver(&fleet)), 1);
    gate.add_permits(2);
    assert_eq!(
        final_outcome(&exec, &mut rx, "dc1", "start/n0").await,
        Outcome::Succeeded("OK".into())
    );
    assert_eq!(exec.results("dc1").len(), 1);
}

mod mutual_tls {
    //! The client against a management API that requires a client certificate, like
    //! cass-operator's mTLS set-up; the server certificate names a DNS name, not the IP.

    use k8ssandra_host::dataplane::{
        DataplaneError, ManagementApi, ManagementApiConfig, TlsConfig,
    };

    use crate::support::tls::{pki, serve};

    fn client(port: u16, tls: TlsConfig) -> Result<ManagementApi, DataplaneError> {
        ManagementApi::new(ManagementApiConfig {
            port,
            attempts: 1,
            tls: Some(tls),
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn mutual_tls_verifies_the_chain_not_the_pod_ip() {
        let pem = match pki() {
            Ok(p) => p,
            Err(e) => panic!("pki: {e}"),
        };
        let ip = "127.0.19.2";
        let port = serve(ip, &pem).await;
        let full = TlsConfig {
            ca_pem: pem.ca.clone().into_bytes(),
            client_cert_pem: Some(pem.client_cert.clone().into_bytes()),
            client_key_pem: Some(pem.client_key.clone().into_bytes()),
            verify_hostname: false,
        };

        let api = match client(port, full.clone()) {
            Ok(a) => a,
            Err(e) => panic!("client: {e}"),
        };
        assert_eq!(api.base_url(ip), format!("https://{ip}:{port}"));
        if let Err(e) = api.liveness(ip).await {
            panic!("liveness over mTLS: {e}");
        }

        // Without a client certificate the server refuses the handshake.
        let anonymous = TlsConfig {
            client_cert_pem: None,
            client_key_pem: None,
            ..full.clone()
        };
        let result = match client(port, anonymous) {
            Ok(a) => a.liveness(ip).await,
            Err(e) => panic!("client: {e}"),
        };
        assert!(
            matches!(result, Err(DataplaneError::Transport { .. })),
            "{result:?}"
        );

        // With the hostname check on, a certificate that does not name the IP is refused.
        let strict = TlsConfig {
            verify_hostname: true,
            ..full.clone()
        };
        let result = match client(port, strict) {
            Ok(a) => a.liveness(ip).await,
            Err(e) => panic!("client: {e}"),
        };
        assert!(
            matches!(result, Err(DataplaneError::Transport { .. })),
            "{result:?}"
        );

        // A server certificate from another CA is refused even without the hostname check.
        let other = match pki() {
            Ok(p) => p,
            Err(e) => panic!("pki: {e}"),
        };
        let wrong_ca = TlsConfig {
            ca_pem: other.ca.into_bytes(),
            ..full
        };
        let result = match client(port, wrong_ca) {
            Ok(a) => a.liveness(ip).await,
            Err(e) => panic!("client: {e}"),
        };
        assert!(
            matches!(result, Err(DataplaneError::Transport { .. })),
            "{result:?}"
        );
    }
}

mod simulator {
    //! Start and decommission against the Cassandra simulator (`tests/cassandra-sim`), which
    //! plays the management API with a ring, bootstrap and decommission.

    use std::time::Duration;

    use cassandra_sim::{PodInfo, PodKey, SimConfig, SimOptions, Simulator};
    use k8ssandra_host::dataplane::ManagementApi;
    use k8ssandra_host::plugin::bindings::{NodeRef, NodeState, OperationKind, Outcome};

    use super::{Fleet, HANG_GUARD, executor, final_outcome, node, op, resolver};

    fn free_port() -> u16 {
        match std::net::TcpListener::bind("127.0.62.1:0").and_then(|l| l.local_addr()) {
            Ok(a) => a.port(),
            Err(e) => panic!("free port: {e}"),
        }
    }

    /// Observes `pods` until `done` holds for the answer; the simulator changes state on
    /// its own clock, so there is nothing to be notified by.
    async fn observe_until(
        api: &ManagementApi,
        pods: &[(NodeRef, Option<String>)],
        done: impl Fn(&[NodeState]) -> bool,
    ) -> Vec<NodeState> {
        let wait = async {
            loop {
                let states = api.observe(pods.to_vec()).await;
                if done(&states) {
                    return states;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        match tokio::time::timeout(HANG_GUARD, wait).await {
            Ok(states) => states,
            Err(_) => panic!("the simulated nodes never reached the expected state"),
        }
    }

    #[tokio::test]
    async fn start_and_decommission_on_the_simulator() {
        let fleet = Fleet {
            port: free_port(),
            net: 62,
        };
        let sim = Simulator::start(
            SimOptions {
                mgmt_port: fleet.port,
                control_addr: None,
                config: SimConfig {
                    bootstrap_delay: Duration::ZERO,
                    decommission_delay: Duration::from_millis(100),
                    job_duration: Duration::from_millis(50),
                    ..SimConfig::default()
                },
            },
            Vec::new(),
        )
        .await;
        let sim = match sim {
            Ok(s) => s,
            Err(e) => panic!("simulator: {e}"),
        };
        let pods: Vec<(NodeRef, Option<String>)> = (0..2u8)
            .map(|i| (node(&format!("n{i}")), Some(fleet.ip(2 + i))))
            .collect();
        for (i, (n, ip)) in pods.iter().enumerate() {
            sim.upsert_pod(PodInfo::new(
                PodKey::new("", "ns", n.pod.as_str()),
                ip.clone().unwrap_or_default(),
                "c1",
                "dc1",
                "r1",
                i == 0,
            ));
        }
        let api = fleet.api();
        let (exec, mut rx) = executor(&fleet);

        // Listeners come up; Cassandra is not started yet.
        let states = observe_until(&api, &pods, |s| s.iter().all(|n| n.alive)).await;
        assert!(states.iter().all(|n| n.reachable && !n.ready));

        // Seed first, then the other node, each once the previous one is ready.
        for (i, (n, _)) in pods.iter().enumerate() {
            let id = format!("start/{}", n.pod);
            exec.execute(
                "c1",
                vec![op(&id, &n.pod, OperationKind::Start(None))],
                resolver(&fleet),
            );
            match final_outcome(&exec, &mut rx, "c1", &id).await {
                Outcome::Succeeded(_) => {}
                other => panic!("start of {} failed: {other:?}", n.pod),
            }
            observe_until(&api, &pods, |s| s[i].ready).await;
        }

        let states = observe_until(&api, &pods, |s| s.iter().all(|n| n.ready)).await;
        let gossip = states
            .iter()
            .find_map(|s| s.endpoints.clone())
            .unwrap_or_default();
        for ip in [fleet.ip(2), fleet.ip(3)] {
            assert!(
                gossip.contains(&ip),
                "{ip} missing from gossip view {gossip}"
            );
        }

        exec.execute(
            "c1",
            vec![op("decommission/n1", "n1", OperationKind::Decommission)],
            resolver(&fleet),
        );
        match final_outcome(&exec, &mut rx, "c1", "decommission/n1").await {
            Outcome::Succeeded(body) => assert!(body.contains("COMPLETED"), "{body}"),
            other => panic!("decommission failed: {other:?}"),
        }
        let state = sim.state();
        let n1 = state.node_of_pod("n1");
        assert!(
            n1.is_some_and(|n| n.decommissioned),
            "n1 not decommissioned: {n1:?}"
        );
        assert!(
            sim.history()
                .iter()
                .any(|h| h.action == "decommission" && h.ip.as_deref() == Some(&fleet.ip(3))),
            "no decommission of n1 in the simulator's history"
        );
        assert_eq!(sim.violations(), Vec::new());
        sim.shutdown().await;
    }
}
