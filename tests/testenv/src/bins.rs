//! Finding the control-plane binaries.

use std::fs::OpenOptions;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::error::{Error, IoContext, Result};

/// Every binary testenv starts or hands to tests.
pub const REQUIRED_BINARIES: &[&str] = &[
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
    "helm",
];

/// Environment variable that points at a ready bin directory and skips the build script.
pub const BIN_DIR_ENV: &str = "TESTENV_BIN_DIR";

/// The Go build script, located from this crate's source tree.
pub fn build_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("build-binaries.sh")
}

// One discovery per process: parallel tests must not each run the (possibly cold) build.
static DISCOVERED: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Returns the directory holding [`REQUIRED_BINARIES`].
///
/// Uses `$TESTENV_BIN_DIR` when set; otherwise runs `build-binaries.sh` (instant when its
/// cache is warm, tens of minutes cold) and uses the directory it prints last. Fails, naming
/// the binary, when anything is missing. Blocking: call it from `spawn_blocking` in async code.
pub fn discover_bin_dir() -> Result<PathBuf> {
    let mut cached = DISCOVERED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(dir) = cached.as_ref() {
        return Ok(dir.clone());
    }
    let dir = match std::env::var_os(BIN_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => run_build_script()?,
    };
    verify_bin_dir(&dir)?;
    *cached = Some(dir.clone());
    Ok(dir)
}

/// Checks that every required binary exists and is executable.
pub fn verify_bin_dir(dir: &Path) -> Result<()> {
    for name in REQUIRED_BINARIES {
        let path = dir.join(name);
        let executable = std::fs::metadata(&path)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false);
        if !executable {
            return Err(Error::MissingBinary {
                name: (*name).to_string(),
                dir: dir.to_path_buf(),
            });
        }
    }
    Ok(())
}

fn run_build_script() -> Result<PathBuf> {
    let script = build_script();
    // Serialise builds across processes too (two `cargo test` runs on a cold machine).
    let lock_path = std::env::temp_dir().join("k8ssandra-testenv-build.lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .ctx(|| format!("opening {}", lock_path.display()))?;
    crate::slot::flock_blocking(&lock).ctx(|| format!("locking {}", lock_path.display()))?;

    tracing::info!(script = %script.display(), "running build-binaries.sh (slow when the cache is cold)");
    let output = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .ctx(|| format!("running {}", script.display()))?;
    if !output.status.success() {
        return Err(Error::BuildScript(format!(
            "{} exited with {}",
            script.display(),
            output.status
        )));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .ok_or_else(|| Error::BuildScript("the script printed no bin directory".into()))?;
    Ok(PathBuf::from(last))
}
