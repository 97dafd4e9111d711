//! The metrics endpoint of a simulated node: Cassandra-shaped families on port 9000 that
//! Prometheus' own `promtool check metrics` accepts, and nothing while Cassandra is down.

use std::path::PathBuf;
use std::time::Duration;

use cassandra_sim::*;

/// promtool from `$PROMTOOL` (scripts/test.sh exports it), else the install script's.
/// Missing promtool fails the test.
fn promtool() -> PathBuf {
    if let Some(p) = std::env::var_os("PROMTOOL") {
        return PathBuf::from(p);
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/install-promtool.sh"
    );
    let out = std::process::Command::new(script)
        .output()
        .expect("scripts/install-promtool.sh runs");
    assert!(
        out.status.success(),
        "promtool is required: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string();
    PathBuf::from(path)
}

/// Runs `promtool check metrics` on a scrape; its complaints, if any.
pub fn promtool_check(text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = std::process::Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("promtool: {e}"))?;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[tokio::test]
async fn a_running_node_serves_metrics_promtool_accepts() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    let sim = Simulator::start(
        SimOptions {
            mgmt_port: port,
            config: SimConfig {
                bootstrap_delay: Duration::ZERO,
                mgmt_api_start_delay: Duration::ZERO,
                probe_period: Duration::from_millis(50),
                gossip_delay: Duration::ZERO,
                ring_delay: Duration::ZERO,
                ..SimConfig::default()
            },
            ..SimOptions::default()
        },
        Vec::new(),
    )
    .await
    .expect("simulator starts");
    let ip = "127.171.0.1";
    sim.upsert_pod(PodInfo::new(
        PodKey::new("k1", "ns", "c1-dc1-r1-sts-0"),
        ip,
        "c1",
        "dc1",
        "r1",
        true,
    ));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let metrics = format!("http://{ip}:9000/metrics");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    // Cassandra is not running yet: the agent lives in its JVM, nothing to scrape.
    loop {
        match http.get(&metrics).send().await {
            Ok(r) => {
                assert_eq!(r.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
                break;
            }
            Err(_) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "metrics port never opened"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let start = http
        .post(format!("http://{ip}:{port}/api/v0/lifecycle/start"))
        .send()
        .await
        .expect("start");
    assert!(start.status().is_success());
    let text = loop {
        let r = http.get(&metrics).send().await.expect("scrape");
        if r.status().is_success() {
            break r.text().await.expect("body");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never up: {}",
            r.status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        text.contains("org_apache_cassandra_metrics_table_memtable_live_data_size{cluster=\"c1\",datacenter=\"dc1\",host=\"127.171.0.1\",keyspace=\"system_auth\""),
        "{text}"
    );
    assert!(
        text.contains("# TYPE org_apache_cassandra_metrics_table_read_latency_seconds histogram")
    );
    promtool_check(&text).unwrap_or_else(|e| panic!("promtool check metrics: {e}\n{text}"));
}
