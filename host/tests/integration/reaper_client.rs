//! The host's Reaper client and its `reaper-*` operations against the simulator's Reaper,
//! without Kubernetes: Cassandra pods and Reaper pods are fed to the simulator directly, on
//! 127.0.66.0/24. Covers both logins (4.x token, 3.x session + `/jwt`), a re-login after
//! the token expired without a second registration, the idempotent registration, a
//! schedule's life (create, update in place, pause, delete) beside another owner's
//! schedule that is never touched, a repair run repairing the keyspace on every node (the
//! simulator's history), a replica down failing the run, 5xx and bad input as clear
//! errors, and the deregistration. A second test runs the executor's path on a real pod
//! (testenv): the simulator reads the Reaper pod and its UI Secret from Kubernetes, the host
//! finds the `app` port and the credentials itself and publishes `running(<run id>)`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cassandra_sim::reaper::{
    LoginStyle, ReaperFaultRequest, ReaperPodInfo, ReaperSettings, ReaperStorage,
};
use cassandra_sim::{
    CassandraState, Fault, FaultRequest, FaultTarget, KeyspaceRequest, PodInfo, PodKey, SimConfig,
    SimHandle, SimOptions, Simulator,
};
use k8ssandra_host::dataplane::Password;
use k8ssandra_host::dataplane::reaper::{Credentials, ReaperClient, ReaperEndpoint, ReaperError};
use k8ssandra_host::dataplane::reaper_ops::{OPERATOR_OWNER, run_kind};
use k8ssandra_host::plugin::bindings::{
    OperationKind, ReaperAccess, ReaperCluster, ReaperClusterRef, ReaperRepair, ReaperSchedule,
    ReaperScheduleRef, ReaperScheduleState, ReaperScheduleUpdate, RepairParallelism,
};
use serde_json::Value;

const NET: u8 = 66;
const PASSWORD: &str = "reaper-ui-s3cret";
const GUARD: Duration = Duration::from_secs(60);

fn ip(host: u8) -> String {
    format!("127.0.{NET}.{host}")
}

fn free_port() -> u16 {
    match std::net::TcpListener::bind(format!("{}:0", ip(1))).and_then(|l| l.local_addr()) {
        Ok(a) => a.port(),
        Err(e) => panic!("free port: {e}"),
    }
}

fn access() -> ReaperAccess {
    // The Secret is read by `perform`; these tests hand the credentials to the endpoint.
    ReaperAccess { ui_secret: None }
}

fn cluster_ref() -> ReaperClusterRef {
    ReaperClusterRef {
        access: access(),
        name: "c1".into(),
    }
}

fn repair(keyspace: &str, owner: &str, intensity: f64) -> ReaperRepair {
    ReaperRepair {
        access: access(),
        cluster_name: "c1".into(),
        keyspace: keyspace.into(),
        tables: vec![],
        blacklisted_tables: vec![],
        datacenters: vec![],
        nodes: vec![],
        owner: owner.into(),
        parallelism: RepairParallelism::DatacenterAware,
        intensity,
        incremental: false,
        segment_count_per_node: None,
        repair_thread_count: None,
        timeout_minutes: None,
        cause: "reaper_client test".into(),
    }
}

fn schedule(keyspace: &str, intensity: f64) -> ReaperSchedule {
    ReaperSchedule {
        repair: repair(keyspace, OPERATOR_OWNER, intensity),
        days_between: 7,
        // Far enough that it never activates during the test.
        trigger_time: Some("2099-01-01T02:00:00".into()),
        adaptive: false,
        percent_unrepaired_threshold: None,
    }
}

fn schedule_ref(id: &str, owner: &str) -> ReaperScheduleRef {
    ReaperScheduleRef {
        access: access(),
        id: id.into(),
        owner: owner.into(),
    }
}

async fn run(
    client: &ReaperClient,
    ep: &ReaperEndpoint,
    kind: OperationKind,
) -> Result<String, String> {
    match tokio::time::timeout(GUARD, run_kind(client, ep, &kind, &|_| {})).await {
        Ok(r) => r,
        Err(_) => panic!("operation never finished"),
    }
}

async fn ok_json(client: &ReaperClient, ep: &ReaperEndpoint, kind: OperationKind) -> Value {
    match run(client, ep, kind).await {
        Ok(body) => serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}")),
        Err(e) => panic!("operation failed: {e}"),
    }
}

fn creds(password: &str) -> Option<Credentials> {
    Some(Credentials {
        username: "reaper-ui".into(),
        password: Password::new(password),
    })
}

/// A ring of three nodes in dc1 (started through their management API) with keyspaces
/// `ks` and `ks2` at RF 3, and two Reapers: a 4.x one (token login) and a 3.x one
/// (session login), both with authentication and memory storage.
/// A simulator with fast timing (and Reapers repairing a segment every 5 ms).
async fn start_sim(clients: Vec<(String, kube::Client)>) -> (SimHandle, u16) {
    let mgmt_port = free_port();
    let sim = Simulator::start(
        SimOptions {
            mgmt_port,
            control_addr: None,
            config: SimConfig {
                bootstrap_delay: Duration::ZERO,
                mgmt_api_start_delay: Duration::ZERO,
                gossip_delay: Duration::ZERO,
                ring_delay: Duration::ZERO,
                ..SimConfig::default()
            },
        },
        clients,
    )
    .await
    .unwrap_or_else(|e| panic!("simulator: {e}"));
    sim.reaper().set_settings(ReaperSettings {
        segment_duration_ms: 5,
        ..ReaperSettings::default()
    });
    (sim, mgmt_port)
}

/// Three nodes of cluster `c1` in dc1 (pods `n0..n2` of namespace `ns` in `context`, at
/// `ip(first)..`), started through their management API, with keyspaces `ks` and `ks2` at
/// RF 3.
async fn start_ring(sim: &SimHandle, mgmt_port: u16, context: &str, first: u8) {
    for i in 0..3u8 {
        sim.upsert_pod(PodInfo::new(
            PodKey::new(context, "ns", format!("n{i}")),
            ip(first + i),
            "c1",
            "dc1",
            "r1",
            i == 0,
        ));
    }
    let http = reqwest::Client::new();
    for i in 0..3u8 {
        let url = format!(
            "http://{}:{mgmt_port}/api/v0/lifecycle/start",
            ip(first + i)
        );
        let started = async {
            loop {
                if let Ok(r) = http.post(&url).send().await
                    && r.status().is_success()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(GUARD, started)
            .await
            .unwrap_or_else(|_| panic!("node n{i} never accepted its start"));
    }
    let all_normal = async {
        loop {
            let state = sim.state();
            let up = state.cluster("c1").is_some_and(|c| {
                c.nodes.len() == 3
                    && c.nodes
                        .iter()
                        .all(|n| n.cassandra == CassandraState::Normal && !n.tokens.is_empty())
            });
            if up {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(GUARD, all_normal)
        .await
        .unwrap_or_else(|_| panic!("the ring never became NORMAL: {:?}", sim.state()));
    for ks in ["ks", "ks2"] {
        sim.create_keyspace(&KeyspaceRequest {
            cluster: "c1".into(),
            name: ks.into(),
            replication: BTreeMap::from([("dc1".to_string(), 3)]),
        });
    }
}

async fn setup() -> (SimHandle, u16) {
    let (sim, mgmt_port) = start_sim(Vec::new()).await;
    start_ring(&sim, mgmt_port, "", 2).await;
    sim.reaper().upsert_pod(
        ReaperPodInfo::new(PodKey::new("", "ns", "reaper-4"), ip(10))
            .with_auth("reaper-ui", PASSWORD),
    );
    sim.reaper().upsert_pod(
        ReaperPodInfo::new(PodKey::new("", "ns", "reaper-3"), ip(11))
            .with_auth("reaper-ui", PASSWORD)
            .with_login(LoginStyle::Session),
    );
    (sim, mgmt_port)
}

/// Waits for the Reaper at `ep` to answer (its listener comes up asynchronously).
async fn serving(client: &ReaperClient, ep: &ReaperEndpoint) {
    let up = async {
        while client.ping(ep).await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(GUARD, up)
        .await
        .unwrap_or_else(|_| panic!("Reaper at {} never served", ep.base_url));
}

fn created_registrations(sim: &SimHandle) -> usize {
    sim.reaper()
        .registrations()
        .iter()
        .filter(|r| r.cluster == "c1" && r.outcome == "created")
        .count()
}

#[tokio::test]
async fn reaper_client_and_operations_against_the_simulated_reaper() {
    let (sim, _) = setup().await;
    let client = ReaperClient::default();
    let ep = ReaperEndpoint::at(&ip(10), 8080, creds(PASSWORD));
    serving(&client, &ep).await;

    // A wrong password: the login is refused, and the message never shows a password.
    let bad = ReaperEndpoint::at(&ip(10), 8080, creds("wrong-password"));
    match client.list_clusters(&bad).await {
        Err(e @ ReaperError::Login { status: 401, .. }) => {
            let m = e.to_string();
            assert!(
                m.contains("reaper-ui") && !m.contains("wrong-password"),
                "{m}"
            );
        }
        other => panic!("wrong password: {other:?}"),
    }
    // Without credentials, a Reaper with authentication answers 401.
    let anonymous = ReaperEndpoint::at(&ip(10), 8080, None);
    assert_eq!(
        client
            .list_clusters(&anonymous)
            .await
            .err()
            .and_then(|e| e.status()),
        Some(401)
    );

    // Registration, twice: one PUT only.
    let add = || {
        OperationKind::ReaperAddCluster(ReaperCluster {
            access: access(),
            name: "c1".into(),
            seed_hosts: vec![ip(2)],
            jmx_port: None,
        })
    };
    let cluster = ok_json(&client, &ep, add()).await;
    assert_eq!(cluster["name"], "c1");
    assert_eq!(cluster["seedHosts"], serde_json::json!([ip(2)]));
    assert_eq!(
        cluster["nodes"].as_array().map(Vec::len),
        Some(3),
        "{cluster}"
    );
    let again = ok_json(&client, &ep, add()).await;
    assert_eq!(again["name"], "c1");
    assert_eq!(created_registrations(&sim), 1);
    assert_eq!(
        sim.reaper().registrations().len(),
        1,
        "the second add sent a PUT"
    );
    assert_eq!(client.logins(), 1);

    // The token expires: one new login, the same registration.
    sim.reaper()
        .set_fault(&ReaperFaultRequest {
            pod: "reaper-4".into(),
            expire_tokens: true,
            ..Default::default()
        })
        .unwrap();
    let names = ok_json(&client, &ep, OperationKind::ReaperListClusters(access())).await;
    assert_eq!(names, serde_json::json!(["c1"]));
    ok_json(&client, &ep, add()).await;
    assert_eq!(client.logins(), 2, "one re-login after the expiry");
    assert_eq!(sim.reaper().registrations().len(), 1);

    // A schedule: created, changed in place (same id), paused.
    let created = ok_json(
        &client,
        &ep,
        OperationKind::ReaperCreateSchedule(schedule("ks", 0.5)),
    )
    .await;
    let id = created["id"].as_str().unwrap_or_default().to_string();
    assert!(!id.is_empty(), "{created}");
    assert_eq!(created["owner"], OPERATOR_OWNER);
    assert_eq!(created["state"], "ACTIVE");
    assert_eq!(created["daysBetween"], 7);
    assert_eq!(created["parallelism"], "DATACENTER_AWARE");
    assert!(
        created["nextActivation"]
            .as_str()
            .is_some_and(|t| t.starts_with("2099-01-01T02:00:00")),
        "{created}"
    );
    let mut changed = schedule("ks", 0.8);
    changed.days_between = 3;
    let updated = ok_json(
        &client,
        &ep,
        OperationKind::ReaperUpdateSchedule(ReaperScheduleUpdate {
            id: id.clone(),
            schedule: changed.clone(),
        }),
    )
    .await;
    assert_eq!(updated["id"], id.as_str());
    assert_eq!(updated["intensity"], 0.8);
    assert_eq!(updated["daysBetween"], 3);
    // What Reaper cannot change in place is refused, naming the field.
    let mut incremental = changed.clone();
    incremental.repair.incremental = true;
    let e = run(
        &client,
        &ep,
        OperationKind::ReaperUpdateSchedule(ReaperScheduleUpdate {
            id: id.clone(),
            schedule: incremental,
        }),
    )
    .await
    .unwrap_err();
    assert!(e.contains("incremental"), "{e}");
    let paused = ok_json(
        &client,
        &ep,
        OperationKind::ReaperSetScheduleState(ReaperScheduleState {
            schedule: schedule_ref(&id, OPERATOR_OWNER),
            active: false,
        }),
    )
    .await;
    assert_eq!(paused["state"], "PAUSED");
    assert_eq!(paused["id"], id.as_str());

    // Someone's schedule made in Reaper's UI: never touched by the operator's kinds.
    let storage = sim
        .reaper()
        .storages()
        .into_iter()
        .find(|s| s.contains("reaper-4"))
        .unwrap_or_else(|| panic!("no storage of reaper-4: {:?}", sim.reaper().storages()));
    let theirs = sim
        .reaper_schedule_by_hand(&storage, "c1", "ks2", "alice", 7)
        .unwrap_or_else(|e| panic!("hand-made schedule: {e}"));
    let before = theirs.clone();
    for kind in [
        OperationKind::ReaperUpdateSchedule(ReaperScheduleUpdate {
            id: theirs.id.clone(),
            schedule: schedule("ks2", 0.3),
        }),
        OperationKind::ReaperSetScheduleState(ReaperScheduleState {
            schedule: schedule_ref(&theirs.id, OPERATOR_OWNER),
            active: false,
        }),
        OperationKind::ReaperDeleteSchedule(schedule_ref(&theirs.id, OPERATOR_OWNER)),
    ] {
        let e = run(&client, &ep, kind).await.unwrap_err();
        assert!(
            e.contains("alice") && e.contains("never changes another owner"),
            "{e}"
        );
    }
    let listed = ok_json(
        &client,
        &ep,
        OperationKind::ReaperListSchedules(cluster_ref()),
    )
    .await;
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    let still = sim
        .reaper()
        .schedules()
        .into_iter()
        .find(|s| s.id == theirs.id)
        .expect("alice's schedule is gone");
    assert_eq!(still, before);

    // Deleting ours (paused) leaves alice's alone.
    assert_eq!(
        run(
            &client,
            &ep,
            OperationKind::ReaperDeleteSchedule(schedule_ref(&id, OPERATOR_OWNER))
        )
        .await,
        Ok(String::new())
    );
    let left: Vec<String> = sim.reaper().schedules().into_iter().map(|s| s.id).collect();
    assert_eq!(left, vec![theirs.id.clone()]);
    // A schedule Reaper does not know counts as deleted.
    assert_eq!(
        run(
            &client,
            &ep,
            OperationKind::ReaperDeleteSchedule(schedule_ref(&id, OPERATOR_OWNER))
        )
        .await,
        Ok(String::new())
    );

    // A schedule due now: Reaper starts its run, which repairs `ks` on every node, and the
    // run names its schedule.
    let mut due = schedule("ks", 1.0);
    due.trigger_time = None;
    let due = ok_json(&client, &ep, OperationKind::ReaperCreateSchedule(due)).await;
    let due_id = due["id"].as_str().unwrap_or_default().to_string();
    let scheduled_run = async {
        loop {
            let runs = ok_json(&client, &ep, OperationKind::ReaperListRuns(cluster_ref())).await;
            if let Some(r) = runs
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| r["scheduleId"] == due_id.as_str() && r["state"] == "DONE")
            {
                return r.clone();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let scheduled = tokio::time::timeout(GUARD, scheduled_run)
        .await
        .unwrap_or_else(|_| panic!("schedule {due_id} never ran: {:?}", sim.reaper().runs()));
    assert_eq!(scheduled["owner"], OPERATOR_OWNER);
    assert_eq!(scheduled["keyspace"], "ks");
    let nodes: BTreeSet<String> = sim
        .reaper()
        .repair_sessions()
        .into_iter()
        .filter(|s| scheduled["id"] == s.run.as_str() && s.outcome == "completed")
        .flat_map(|s| s.nodes)
        .collect();
    assert_eq!(nodes, (2..5).map(ip).collect::<BTreeSet<_>>());
    let next = ok_json(
        &client,
        &ep,
        OperationKind::ReaperListSchedules(cluster_ref()),
    )
    .await;
    let next = next
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["id"] == due_id.as_str())
        .and_then(|s| s["nextActivation"].as_str())
        .map(str::to_string)
        .unwrap_or_default();
    assert!(
        next.as_str() > scheduled["startTime"].as_str().unwrap_or_default(),
        "the next activation did not move on: {next}"
    );
    // An active schedule is paused, then deleted.
    assert_eq!(
        run(
            &client,
            &ep,
            OperationKind::ReaperDeleteSchedule(schedule_ref(&due_id, OPERATOR_OWNER))
        )
        .await,
        Ok(String::new())
    );
    assert!(!sim.reaper().schedules().iter().any(|s| s.id == due_id));

    // Reaper keeps one schedule per keyspace and tables: asking for alice's again gives
    // hers, which the host reports instead of taking it over.
    let e = run(
        &client,
        &ep,
        OperationKind::ReaperCreateSchedule(schedule("ks2", 0.5)),
    )
    .await
    .unwrap_err();
    assert!(e.contains(&theirs.id) && e.contains("alice"), "{e}");
    assert_eq!(sim.reaper().schedules().len(), 1);

    // A schedule for a keyspace the cluster does not have: refused by Reaper, clearly.
    let e = run(
        &client,
        &ep,
        OperationKind::ReaperCreateSchedule(schedule("nope", 0.5)),
    )
    .await
    .unwrap_err();
    assert!(e.contains("HTTP 400") && e.contains("nope"), "{e}");
    // An intensity outside (0, 1] never reaches Reaper.
    let e = run(
        &client,
        &ep,
        OperationKind::ReaperCreateSchedule(schedule("ks", 1.5)),
    )
    .await
    .unwrap_err();
    assert!(e.contains("intensity") && e.contains("(0, 1]"), "{e}");

    // A repair run: every range of `ks` repaired on its replicas, i.e. on every node.
    let seen = Arc::new(Mutex::new(None::<String>));
    let s2 = Arc::clone(&seen);
    let record = move |id: &str| {
        *s2.lock().unwrap() = Some(id.to_string());
    };
    let kind = OperationKind::ReaperRepair(repair("ks", OPERATOR_OWNER, 1.0));
    let body = tokio::time::timeout(GUARD, run_kind(&client, &ep, &kind, &record))
        .await
        .expect("repair never ended")
        .unwrap_or_else(|e| panic!("repair: {e}"));
    let run_v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(run_v["state"], "DONE", "{body}");
    assert_eq!(run_v["keyspace"], "ks");
    assert_eq!(
        seen.lock().unwrap().as_deref(),
        run_v["id"].as_str(),
        "running(<run id>) was not published"
    );
    let total = run_v["totalSegments"].as_u64().unwrap_or(0);
    assert!(
        total > 0 && run_v["segmentsRepaired"].as_u64() == Some(total),
        "{body}"
    );
    let sessions: Vec<Value> = sim
        .history()
        .into_iter()
        .filter(|h| h.action == "repair" && h.outcome == "completed")
        .filter_map(|h| {
            h.detail
                .and_then(|d| serde_json::from_str::<Value>(&d).ok())
        })
        .filter(|d| d["run"] == run_v["id"])
        .collect();
    assert_eq!(sessions.len() as u64, total);
    let mut repaired: BTreeSet<String> = BTreeSet::new();
    for s in &sessions {
        assert_eq!(s["keyspace"], "ks");
        let nodes: Vec<String> = serde_json::from_value(s["nodes"].clone()).unwrap();
        assert_eq!(
            nodes.len(),
            3,
            "RF 3 on three nodes: every range on all of them: {s}"
        );
        repaired.extend(nodes);
    }
    assert_eq!(repaired, (2..5).map(ip).collect::<BTreeSet<_>>());
    let runs = ok_json(&client, &ep, OperationKind::ReaperListRuns(cluster_ref())).await;
    assert_eq!(runs[0]["id"], run_v["id"]);

    // A replica down: its segments are refused, retried, and the run ends in ERROR.
    sim.set_fault(&FaultRequest {
        target: FaultTarget::pod("n2"),
        fault: Some(Fault {
            dead: true,
            ..Fault::default()
        }),
        clear: false,
        wipe: false,
    })
    .unwrap();
    let e = run(
        &client,
        &ep,
        OperationKind::ReaperRepair(repair("ks", OPERATOR_OWNER, 1.0)),
    )
    .await
    .unwrap_err();
    assert!(
        e.contains("ERROR") && e.contains(&ip(4)) && e.contains("down"),
        "{e}"
    );
    assert!(
        sim.history()
            .iter()
            .any(|h| h.action == "repair" && h.outcome == "refused"),
        "no refused repair session in the history"
    );
    sim.set_fault(&FaultRequest {
        target: FaultTarget::pod("n2"),
        fault: None,
        clear: true,
        wipe: false,
    })
    .unwrap();

    // 5xx: a clear error naming the call and the status.
    sim.reaper()
        .set_fault(&ReaperFaultRequest {
            pod: "reaper-4".into(),
            fail_next: 1,
            ..Default::default()
        })
        .unwrap();
    let e = run(&client, &ep, OperationKind::ReaperListClusters(access()))
        .await
        .unwrap_err();
    assert!(
        e.contains("HTTP 500") && e.contains("GET /cluster") && e.contains(&ip(10)),
        "{e}"
    );

    // A slow start: 503 until it serves, then the same client carries on.
    sim.reaper()
        .set_fault(&ReaperFaultRequest {
            pod: "reaper-4".into(),
            unready_for_ms: 400,
            ..Default::default()
        })
        .unwrap();
    let e = run(&client, &ep, OperationKind::ReaperListClusters(access()))
        .await
        .unwrap_err();
    assert!(e.contains("HTTP 503"), "{e}");
    serving(&client, &ep).await;
    let serving_again = async {
        while run(&client, &ep, OperationKind::ReaperListClusters(access()))
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(GUARD, serving_again)
        .await
        .expect("never served again");

    // Deregistration is refused while someone else's schedule remains…
    let e = run(
        &client,
        &ep,
        OperationKind::ReaperRemoveCluster(cluster_ref()),
    )
    .await
    .unwrap_err();
    assert!(e.contains("alice"), "{e}");
    assert!(sim.reaper().schedules().iter().any(|s| s.id == theirs.id));
    // …and, once its owner removed it, deletes ours and the cluster (finished runs too).
    client
        .set_schedule_state(&ep, &theirs.id, false)
        .await
        .unwrap();
    assert!(
        client
            .delete_schedule(&ep, &theirs.id, "alice")
            .await
            .unwrap()
    );
    assert_eq!(
        run(
            &client,
            &ep,
            OperationKind::ReaperRemoveCluster(cluster_ref())
        )
        .await,
        Ok(String::new())
    );
    assert!(
        sim.reaper().schedules().is_empty(),
        "{:?}",
        sim.reaper().schedules()
    );
    let names = ok_json(&client, &ep, OperationKind::ReaperListClusters(access())).await;
    assert_eq!(names, serde_json::json!([]));
    // Removing it again is not an error.
    assert_eq!(
        run(
            &client,
            &ep,
            OperationKind::ReaperRemoveCluster(cluster_ref())
        )
        .await,
        Ok(String::new())
    );

    // Reaper 3.x: session login then /jwt; its own (memory) storage knows no cluster.
    let ep3 = ReaperEndpoint::at(&ip(11), 8080, creds(PASSWORD));
    let logins = client.logins();
    serving(&client, &ep3).await;
    let names = ok_json(&client, &ep3, OperationKind::ReaperListClusters(access())).await;
    assert_eq!(names, serde_json::json!([]));
    assert_eq!(client.logins(), logins + 1);
    ok_json(&client, &ep3, add()).await;
    assert_eq!(
        sim.reaper()
            .registrations()
            .iter()
            .filter(|r| r.reaper_pod.name == "reaper-3")
            .count(),
        1
    );

    // Reapers on `cassandra` storage serve only once their keyspace exists, and two on the
    // same Cassandra cluster share one state: the second knows the registration already.
    let storage = ReaperStorage::Cassandra {
        contact_points: vec!["c1-dc1-service".into()],
        keyspace: "reaper_db".into(),
    };
    for (name, host) in [("reaper-a", 12), ("reaper-b", 13)] {
        sim.reaper().upsert_pod(
            ReaperPodInfo::new(PodKey::new("", "ns", name), ip(host)).with_storage(storage.clone()),
        );
    }
    let (epa, epb) = (
        ReaperEndpoint::at(&ip(12), 8080, None),
        ReaperEndpoint::at(&ip(13), 8080, None),
    );
    serving(&client, &epa).await;
    serving(&client, &epb).await;
    let e = client.list_clusters(&epa).await.unwrap_err();
    assert!(
        e.status() == Some(503) && e.to_string().contains("reaper_db"),
        "{e}"
    );
    sim.create_keyspace(&KeyspaceRequest {
        cluster: "c1".into(),
        name: "reaper_db".into(),
        replication: BTreeMap::from([("dc1".to_string(), 3)]),
    });
    ok_json(&client, &epa, add()).await;
    ok_json(&client, &epb, add()).await;
    let shared: Vec<_> = sim
        .reaper()
        .registrations()
        .into_iter()
        .filter(|r| r.storage.starts_with("cassandra:"))
        .collect();
    assert_eq!(shared.len(), 1, "{shared:?}");
    assert_eq!(shared[0].reaper_pod.name, "reaper-a");
    let names = ok_json(&client, &epb, OperationKind::ReaperListClusters(access())).await;
    assert_eq!(names, serde_json::json!(["c1"]));
}

/// The executor's `reaper-*` path on a real pod: the simulator finds the Reaper pod in
/// Kubernetes (its UI user from a Secret by reference), and the host finds its `app` port
/// and the credentials itself; a repair publishes `running(<run id>)` before it succeeds.
#[tokio::test]
async fn reaper_operations_through_the_executor_on_a_kubernetes_pod() {
    use k8s_openapi::api::core::v1::{Pod, Secret};
    use k8ssandra_host::clusters::ClusterRegistry;
    use k8ssandra_host::dataplane::{
        ExecutorConfig, ManagementApi, ManagementApiConfig, OperationExecutor,
        ReaperAccess as ExecutorReaperAccess, SecretData, SecretError,
    };
    use k8ssandra_host::plugin::bindings::{NodeRef, Operation, Outcome};
    use k8ssandra_testenv::{TestEnv, TestEnvOptions};
    use kube::api::{Api, PostParams};

    let env = TestEnv::start(TestEnvOptions {
        clusters: 1,
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("testenv: {e}"));
    let client = env.cluster(0).client();
    let (sim, mgmt_port) = start_sim(vec![("kc".to_string(), client.clone())]).await;
    start_ring(&sim, mgmt_port, "kc", 20).await;

    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "demo-reaper-ui"},
        "stringData": {"username": "reaper-ui", "password": PASSWORD},
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap_or_else(|e| panic!("Secret: {e}"));
    let secret_env = |name: &str, key: &str| serde_json::json!({"name": name, "valueFrom": {"secretKeyRef": {"name": "demo-reaper-ui", "key": key}}});
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "demo-reaper-0", "labels": {"k8ssandra.io/reaper": "demo-reaper"}},
        "spec": {"containers": [{
            "name": "reaper",
            "image": "thelastpickle/cassandra-reaper:5.0.0",
            "ports": [{"name": "app", "containerPort": 8080}, {"name": "admin", "containerPort": 8081}],
            "env": [
                {"name": "REAPER_STORAGE_TYPE", "value": "memory"},
                {"name": "REAPER_AUTH_ENABLED", "value": "true"},
                secret_env("REAPER_AUTH_USER", "username"),
                secret_env("REAPER_AUTH_PASSWORD", "password"),
            ],
        }]},
    }))
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &pod)
        .await
        .unwrap_or_else(|e| panic!("pod: {e}"));
    let pod_ip = tokio::time::timeout(GUARD, async {
        loop {
            if let Ok(p) = pods.get("demo-reaper-0").await
                && let Some(ip) = p.status.and_then(|s| s.pod_ip).filter(|ip| !ip.is_empty())
            {
                return ip;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the Reaper pod never got an address");

    let reader = {
        let client = client.clone();
        move |cluster: String, namespace: String, name: String| {
            let client = client.clone();
            async move {
                let api: Api<Secret> = Api::namespaced(client, &namespace);
                let s = api.get(&name).await.map_err(|e| SecretError {
                    cluster,
                    namespace,
                    name,
                    reason: e.to_string(),
                })?;
                let data: SecretData = s
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect();
                Ok(data)
            }
        }
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let api = ManagementApi::new(ManagementApiConfig {
        port: mgmt_port,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("client: {e}"));
    let exec = OperationExecutor::new(api, Arc::new(reader), tx, ExecutorConfig::default());
    exec.set_reaper(ExecutorReaperAccess {
        clusters: ClusterRegistry::new(client.clone(), "local"),
    });
    let ui = |name: &str| ReaperAccess {
        ui_secret: Some(name.to_string()),
    };
    let target = NodeRef {
        cluster: String::new(),
        namespace: "default".into(),
        pod: "demo-reaper-0".into(),
    };
    let ip_for = pod_ip.clone();
    let resolve = move |_: &NodeRef| Some(ip_for.clone());
    let runnings: std::cell::RefCell<Vec<String>> = Default::default();
    let mut outcome = async |id: &str, kind: OperationKind| -> Outcome {
        exec.execute(
            "reaper|default/demo",
            vec![Operation {
                id: id.into(),
                target: target.clone(),
                kind,
            }],
            resolve.clone(),
        );
        let wait = async {
            loop {
                if let Some(r) = exec
                    .results("reaper|default/demo")
                    .into_iter()
                    .find(|r| r.id == id)
                {
                    match r.outcome {
                        Outcome::Running(s) => {
                            let mut seen = runnings.borrow_mut();
                            if !s.is_empty() && !seen.contains(&s) {
                                seen.push(s);
                            }
                        }
                        done => return done,
                    }
                }
                if rx.recv().await.is_none() {
                    panic!("executor gone");
                }
            }
        };
        tokio::time::timeout(GUARD, wait)
            .await
            .unwrap_or_else(|_| panic!("operation {id} never finished"))
    };

    // The simulated Reaper serves once it read its user from the Secret; until then the
    // host's calls fail and a new id is tried, as a policy would.
    let mut attempt = 0;
    let listed = loop {
        attempt += 1;
        match outcome(
            &format!("list/{attempt}"),
            OperationKind::ReaperListClusters(ui("demo-reaper-ui")),
        )
        .await
        {
            Outcome::Succeeded(body) => break body,
            other if attempt < 100 => {
                let _ = other;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => panic!("Reaper never answered: {other:?}"),
        }
    };
    assert_eq!(listed, "[]");

    let add = OperationKind::ReaperAddCluster(ReaperCluster {
        access: ui("demo-reaper-ui"),
        name: "c1".into(),
        seed_hosts: vec![ip(20)],
        jmx_port: None,
    });
    match outcome("add", add).await {
        Outcome::Succeeded(body) => assert!(body.contains("\"name\":\"c1\""), "{body}"),
        other => panic!("add: {other:?}"),
    }
    assert_eq!(created_registrations(&sim), 1);

    let mut r = repair("ks", OPERATOR_OWNER, 1.0);
    r.access = ui("demo-reaper-ui");
    let run_id = match outcome("repair", OperationKind::ReaperRepair(r)).await {
        Outcome::Succeeded(body) => {
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["state"], "DONE", "{body}");
            v["id"].as_str().unwrap_or_default().to_string()
        }
        other => panic!("repair: {other:?}"),
    };
    assert_eq!(
        runnings.borrow().clone(),
        vec![run_id],
        "running(<run id>) while the run repaired"
    );

    // A Secret that does not exist: the operation fails naming it, nothing is sent.
    let before = sim.reaper().request_count();
    match outcome(
        "list-bad",
        OperationKind::ReaperListClusters(ui("no-such-secret")),
    )
    .await
    {
        Outcome::Failed(m) => assert!(m.contains("no-such-secret"), "{m}"),
        other => panic!("missing Secret: {other:?}"),
    }
    assert_eq!(sim.reaper().request_count(), before);
    drop(env);
}
