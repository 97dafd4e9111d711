//! The host's CQL client against the simulator's native-protocol listener: the port opens
//! only once Cassandra runs, PasswordAuthenticator logins (good, bad, missing credentials),
//! a role that is not a superuser under CassandraAuthorizer, DROP KEYSPACE with and
//! without IF EXISTS (the keyspace leaves the simulated schema and the history records the
//! node), Cassandra's own keyspaces refused, USE and the release version, a statement the
//! simulator does not run, a TLS-only node (a clear error, not a hang), and the port closed
//! again when Cassandra stops. Pods are fed to the simulator directly, on 127.0.64.0/24.

use std::time::Duration;

use cassandra_sim::{
    KeyspaceRequest, NodeConfig, PodInfo, PodKey, SimConfig, SimHandle, SimOptions, Simulator,
};
use k8ssandra_host::dataplane::Password;
use k8ssandra_host::dataplane::cql::{
    Consistency, CqlError, CqlSession, CqlTimeouts, Credentials, ErrorCode, QueryResult,
};

const NET: u8 = 64;
const CQL_PORT: u16 = 9042;
/// Bounds every wait for the simulator; the CQL listener looks at its node every 250 ms.
const WAIT: Duration = Duration::from_secs(30);

fn ip(host: u8) -> String {
    format!("127.0.{NET}.{host}")
}

fn endpoint(host: u8) -> String {
    format!("{}:{CQL_PORT}", ip(host))
}

fn timeouts() -> CqlTimeouts {
    CqlTimeouts {
        connect: Duration::from_secs(2),
        call: Duration::from_secs(5),
    }
}

fn creds(user: &str, password: &str) -> Credentials {
    Credentials {
        username: user.into(),
        password: Password::new(password),
    }
}

fn free_port() -> u16 {
    match std::net::TcpListener::bind(format!("{}:0", ip(1))).and_then(|l| l.local_addr()) {
        Ok(a) => a.port(),
        Err(e) => panic!("free port: {e}"),
    }
}

fn config(cluster: &str, secured: bool, tls: bool) -> NodeConfig {
    let mut c = NodeConfig::new(cluster, &[&format!("{cluster}-seed-service")]);
    c.datacenter = Some("dc1".into());
    if secured {
        c.authenticator = Some("PasswordAuthenticator".into());
        c.authorizer = Some("CassandraAuthorizer".into());
    }
    c.client_encryption_required = tls;
    c
}

async fn mgmt(mgmt_port: u16, host: u8, path: &str) {
    let url = format!("http://{}:{mgmt_port}{path}", ip(host));
    let answer = reqwest::Client::new()
        .post(&url)
        .timeout(WAIT)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    assert!(
        answer.status().is_success(),
        "POST {path}: {}",
        answer.status()
    );
}

/// Connects until the node's CQL port answers, which it does once Cassandra runs.
async fn connect_when_up(host: u8, c: Option<&Credentials>) -> Result<CqlSession, CqlError> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match CqlSession::connect(&endpoint(host), c, timeouts()).await {
            Err(CqlError::Connect { .. }) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

fn server_code(r: Result<QueryResult, CqlError>) -> (ErrorCode, String) {
    match r {
        Err(e) => {
            let text = e.to_string();
            (e.code().unwrap_or(ErrorCode::Other(u32::MAX)), text)
        }
        Ok(other) => panic!("an error expected, got {other:?}"),
    }
}

async fn start_sim(mgmt_port: u16) -> SimHandle {
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
        Vec::new(),
    )
    .await;
    match sim {
        Ok(s) => s,
        Err(e) => panic!("simulator: {e}"),
    }
}

#[tokio::test]
async fn cql_logins_and_keyspace_drops_against_the_simulated_nodes() {
    let mgmt_port = free_port();
    let sim = start_sim(mgmt_port).await;
    sim.upsert_pod(
        PodInfo::new(PodKey::new("", "ns", "n2"), ip(2), "c1", "dc1", "r1", true)
            .with_config(config("c1", true, false)),
    );
    sim.upsert_pod(
        PodInfo::new(PodKey::new("", "ns", "n3"), ip(3), "c2", "dc1", "r1", true)
            .with_config(config("c2", false, true)),
    );

    // Nothing listens before Cassandra runs: the connection is refused, at once.
    tokio::time::sleep(Duration::from_millis(600)).await;
    match CqlSession::connect(&endpoint(2), None, timeouts()).await {
        Err(CqlError::Connect { .. }) => {}
        other => panic!("a refused connection expected before the start, got {other:?}"),
    }

    mgmt(mgmt_port, 2, "/api/v0/lifecycle/start").await;
    mgmt(mgmt_port, 3, "/api/v0/lifecycle/start").await;

    // PasswordAuthenticator: no credentials, then a role the cluster does not know.
    match connect_when_up(2, None).await {
        Err(CqlError::AuthRequired { authenticator, .. }) => {
            assert!(
                authenticator.ends_with("PasswordAuthenticator"),
                "{authenticator}"
            )
        }
        other => panic!("authentication required expected, got {other:?}"),
    }
    match CqlSession::connect(&endpoint(2), Some(&creds("admin", "pw")), timeouts()).await {
        Err(e) => {
            assert_eq!(e.code(), Some(ErrorCode::BadCredentials), "{e}");
            assert!(
                !e.to_string().contains("pw\""),
                "the password stays out: {e}"
            );
        }
        Ok(_) => panic!("an unknown role logged in"),
    }

    // Roles as the operator creates them, through the management API.
    mgmt(
        mgmt_port,
        2,
        "/api/v0/ops/auth/role?username=admin&password=s3cret-pw&is_superuser=true&can_login=true",
    )
    .await;
    mgmt(
        mgmt_port,
        2,
        "/api/v0/ops/auth/role?username=app&password=app-pw&is_superuser=false&can_login=true",
    )
    .await;
    match CqlSession::connect(&endpoint(2), Some(&creds("admin", "wrong")), timeouts()).await {
        Err(e) => {
            assert_eq!(e.code(), Some(ErrorCode::BadCredentials), "{e}");
            assert!(e.to_string().contains("Bad credentials (0x0100)"), "{e}");
        }
        Ok(_) => panic!("a wrong password logged in"),
    }
    for ks in ["ks1", "ks2"] {
        sim.create_keyspace(&KeyspaceRequest {
            cluster: "c1".into(),
            name: ks.into(),
            replication: [("dc1".to_string(), 1)].into(),
        });
    }

    let mut admin =
        CqlSession::connect(&endpoint(2), Some(&creds("admin", "s3cret-pw")), timeouts())
            .await
            .unwrap_or_else(|e| panic!("superuser login: {e}"));
    assert_eq!(admin.version(), 4);
    let supported = admin.options().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(supported.contains_key("CQL_VERSION"), "{supported:?}");
    match admin
        .query("SELECT release_version FROM system.local", Consistency::One)
        .await
    {
        Ok(QueryResult::Rows(rows)) => {
            let v = rows.first_text("release_version").unwrap_or_default();
            assert!(!v.is_empty(), "{rows:?}");
        }
        other => panic!("rows expected, got {other:?}"),
    }
    assert_eq!(
        admin.query("USE ks1", Consistency::One).await.ok(),
        Some(QueryResult::SetKeyspace("ks1".into()))
    );

    // A role that is not a superuser may not drop under CassandraAuthorizer.
    let mut app = CqlSession::connect(&endpoint(2), Some(&creds("app", "app-pw")), timeouts())
        .await
        .unwrap_or_else(|e| panic!("app login: {e}"));
    let (code, text) = server_code(
        app.query("DROP KEYSPACE IF EXISTS \"ks2\"", Consistency::Quorum)
            .await,
    );
    assert_eq!(code, ErrorCode::Unauthorized, "{text}");

    // The drop: gone from the schema, recorded with the node.
    match admin
        .query("DROP KEYSPACE IF EXISTS \"ks1\"", Consistency::Quorum)
        .await
    {
        Ok(QueryResult::SchemaChange {
            change, keyspace, ..
        }) => assert_eq!((change.as_str(), keyspace.as_str()), ("DROPPED", "ks1")),
        other => panic!("a schema change expected, got {other:?}"),
    }
    let keyspaces = |sim: &SimHandle| -> Vec<String> {
        sim.state()
            .clusters
            .iter()
            .find(|c| c.name == "c1")
            .map(|c| c.keyspaces.iter().map(|k| k.name.clone()).collect())
            .unwrap_or_default()
    };
    assert!(!keyspaces(&sim).contains(&"ks1".to_string()));
    assert!(keyspaces(&sim).contains(&"ks2".to_string()));
    let drops: Vec<_> = sim
        .history()
        .into_iter()
        .filter(|h| h.action == "keyspace_drop")
        .collect();
    assert_eq!(drops.len(), 1, "{drops:?}");
    assert_eq!(drops[0].detail.as_deref(), Some("ks1"));
    assert_eq!(drops[0].pod.as_ref().map(|p| p.name.as_str()), Some("n2"));

    // IF EXISTS on a keyspace that is gone changes nothing; without it, Invalid.
    assert_eq!(
        admin
            .query("DROP KEYSPACE IF EXISTS \"ks1\"", Consistency::Quorum)
            .await
            .ok(),
        Some(QueryResult::Void)
    );
    let (code, text) = server_code(admin.query("DROP KEYSPACE ks1", Consistency::Quorum).await);
    assert_eq!(code, ErrorCode::Invalid, "{text}");
    assert!(text.contains("Keyspace 'ks1' doesn't exist"), "{text}");

    // Cassandra's own keyspaces are not the user's to drop.
    for ks in ["system_auth", "system", "system_schema"] {
        let (code, text) = server_code(
            admin
                .query(
                    &format!("DROP KEYSPACE IF EXISTS {ks}"),
                    Consistency::Quorum,
                )
                .await,
        );
        assert_eq!(code, ErrorCode::Unauthorized, "{ks}: {text}");
        assert!(keyspaces(&sim).contains(&ks.to_string()), "{ks} kept");
    }

    // A statement the simulator does not know is an error; the session goes on.
    let (code, _) = server_code(admin.query("FLY ME TO THE MOON", Consistency::One).await);
    assert_eq!(code, ErrorCode::Syntax);
    let (code, _) = server_code(
        admin
            .query("CREATE TABLE ks2.t (k int PRIMARY KEY)", Consistency::One)
            .await,
    );
    assert_eq!(code, ErrorCode::Invalid);
    assert_eq!(
        admin
            .query("DROP KEYSPACE IF EXISTS \"ks2\"", Consistency::Quorum)
            .await
            .ok()
            .map(|r| matches!(r, QueryResult::SchemaChange { .. })),
        Some(true)
    );
    assert_eq!(
        sim.history()
            .iter()
            .filter(|h| h.action == "keyspace_drop")
            .count(),
        2
    );

    // A node whose datacenter requires client encryption: a clear error, not a hang.
    match connect_when_up(3, None).await {
        Err(e @ CqlError::Closed { .. }) => {
            assert!(e.to_string().contains("client encryption"), "{e}")
        }
        other => panic!("a closed connection expected from the TLS-only node, got {other:?}"),
    }

    // Cassandra stops: the open session ends and the port closes.
    mgmt(mgmt_port, 2, "/api/v0/lifecycle/stop").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match CqlSession::connect(&endpoint(2), Some(&creds("admin", "s3cret-pw")), timeouts())
            .await
        {
            Err(CqlError::Connect { .. }) => break,
            _ if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            other => panic!("the CQL port stayed open after the stop: {other:?}"),
        }
    }
    assert!(
        admin
            .query("SELECT release_version FROM system.local", Consistency::One)
            .await
            .is_err(),
        "a session outlived its node"
    );
    sim.shutdown().await;
}
