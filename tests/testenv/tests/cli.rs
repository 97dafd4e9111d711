//! The `testenv` binary: `up` serves clusters until `down`, and nothing outlives it, not even
//! when the `up` process itself is killed with SIGKILL.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8ssandra_testenv::procscan;

const WAIT: Duration = Duration::from_secs(300);

struct Up {
    child: Child,
    kubeconfig: String,
    bin_dir: String,
}

impl Drop for Up {
    fn drop(&mut self) {
        // Only matters when an assertion failed half-way.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `testenv up` and reads its stdout until it says `ready`.
fn up(state_dir: &Path, clusters: usize) -> Result<Up> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_testenv"))
        .args(["up", "--clusters", &clusters.to_string(), "--state-dir"])
        .arg(state_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut kubeconfig = None;
    let mut bin_dir = None;
    // A thread so a hung `up` hits the deadline instead of blocking on read.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(line) => line,
            Err(_) => bail!("`testenv up` did not become ready"),
        };
        if let Some(p) = line.strip_prefix("kubeconfig: ") {
            kubeconfig = Some(p.to_string());
        } else if let Some(p) = line.strip_prefix("binaries: ") {
            bin_dir = Some(p.to_string());
        } else if line == "ready" {
            break;
        }
    }
    Ok(Up {
        child,
        kubeconfig: kubeconfig.context("no kubeconfig line")?,
        bin_dir: bin_dir.context("no binaries line")?,
    })
}

fn down(state_dir: &Path) -> Result<()> {
    let status = Command::new(env!("CARGO_BIN_EXE_testenv"))
        .arg("down")
        .arg("--state-dir")
        .arg(state_dir)
        .status()?;
    if !status.success() {
        bail!("`testenv down` failed: {status}");
    }
    Ok(())
}

fn leftovers(state_dir: &Path) -> Vec<procscan::ProcessInfo> {
    procscan::processes_referencing(&state_dir.to_string_lossy())
}

fn wait_no_leftovers(state_dir: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = leftovers(state_dir);
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("processes left running: {left:#?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn up_serves_two_contexts_until_down() -> Result<()> {
    let state = tempfile::Builder::new().prefix("testenv-cli-").tempdir()?;
    let mut up = up(state.path(), 2)?;
    assert!(
        !leftovers(state.path()).is_empty(),
        "components should reference the state dir"
    );

    let out = Command::new(Path::new(&up.bin_dir).join("kubectl"))
        .arg(format!("--kubeconfig={}", up.kubeconfig))
        .args(["--context", "cluster-1", "get", "nodes", "-o", "name"])
        .output()?;
    assert!(
        out.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let nodes = String::from_utf8_lossy(&out.stdout);
    assert_eq!(nodes.lines().count(), 6, "{nodes}");

    down(state.path())?;
    let status = up.child.wait()?;
    assert!(status.success(), "`testenv up` exited with {status}");
    wait_no_leftovers(state.path())?;
    let bin_dir = Path::new(&up.bin_dir);
    let from_bins: Vec<_> = procscan::processes_from_dir(bin_dir)
        .into_iter()
        .filter(|p| p.cmdline.contains(&*state.path().to_string_lossy()))
        .collect();
    assert!(from_bins.is_empty(), "{from_bins:#?}");
    assert!(!state.path().join("state.json").exists());
    Ok(())
}

#[test]
fn components_die_with_a_killed_up_process() -> Result<()> {
    let state = tempfile::Builder::new()
        .prefix("testenv-cli-kill-")
        .tempdir()?;
    let mut up = up(state.path(), 1)?;
    assert!(!leftovers(state.path()).is_empty());
    // SIGKILL: no destructor runs, only PR_SET_PDEATHSIG can clean up.
    up.child.kill()?;
    up.child.wait()?;
    wait_no_leftovers(state.path())?;
    // `down` copes with the stale state file.
    down(state.path())?;
    Ok(())
}
