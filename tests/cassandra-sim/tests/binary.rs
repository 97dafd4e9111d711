//! The `cassandra-sim` binary: announces its control address first and serves the control API
//! even while a cluster is unreachable.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use cassandra_sim::{ConfigUpdate, SimClient};

const KUBECONFIG: &str = r#"apiVersion: v1
kind: Config
clusters:
- name: nowhere
  cluster:
    server: https://127.0.0.1:1
    insecure-skip-tls-verify: true
contexts:
- name: nowhere
  context:
    cluster: nowhere
    user: nobody
current-context: nowhere
users:
- name: nobody
  user:
    token: not-a-secret
"#;

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn prints_control_address_and_serves_it() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::File::create(&kubeconfig)?.write_all(KUBECONFIG.as_bytes())?;

    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_cassandra-sim"))
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--bootstrap-delay", "0s", "--mgmt-port", "18999"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let stdout = child.0.stdout.take().expect("piped stdout");
    let first = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    let line = tokio::time::timeout(Duration::from_secs(60), first).await???;
    let addr = line
        .trim()
        .strip_prefix("control-addr=")
        .unwrap_or_else(|| panic!("first line was {line:?}"));
    let client = SimClient::new(format!("http://{addr}"));
    let cfg = client.config().await?;
    assert!(cfg.bootstrap_delay.is_zero());
    let cfg = client
        .update_config(&ConfigUpdate {
            job_duration_ms: Some(5),
            ..ConfigUpdate::default()
        })
        .await?;
    assert_eq!(cfg.job_duration, Duration::from_millis(5));
    let state = client.state().await?;
    assert!(state.clusters.is_empty() && state.pods.is_empty());
    Ok(())
}
