//! Finding processes through `/proc`, so tests can prove nothing was left running.

use std::path::{Path, PathBuf};

/// One live process.
#[derive(Debug, Clone)]
pub struct ProcessInfo {
    pub pid: u32,
    /// Target of `/proc/<pid>/exe` (absent when unreadable).
    pub exe: Option<PathBuf>,
    /// Arguments joined by spaces.
    pub cmdline: String,
}

/// Every process except this one and zombies (which have an empty command line).
pub fn processes() -> Vec<ProcessInfo> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter_map(|pid| {
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            if raw.is_empty() {
                return None;
            }
            let cmdline = raw
                .split(|&b| b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<Vec<_>>()
                .join(" ");
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
            Some(ProcessInfo { pid, exe, cmdline })
        })
        .collect()
}

/// Whether `pid` exists and is not a zombie (read from `/proc/<pid>/stat`, which, unlike the
/// command line, stays readable while a process is in the middle of `exec`).
pub fn is_running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may contain anything.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state != "Z" && state != "X")
}

/// Processes whose command line mentions `needle` (say, a TestEnv's root directory).
pub fn processes_referencing(needle: &str) -> Vec<ProcessInfo> {
    processes()
        .into_iter()
        .filter(|p| p.cmdline.contains(needle))
        .collect()
}

/// Processes running a binary from `dir`.
pub fn processes_from_dir(dir: &Path) -> Vec<ProcessInfo> {
    processes()
        .into_iter()
        .filter(|p| p.exe.as_deref().is_some_and(|e| e.parent() == Some(dir)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[test]
    fn running_until_reaped_as_zombie() {
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "exec sleep 30"])
            .spawn()
            .unwrap();
        assert!(is_running(child.id()));
        assert!(is_running(std::process::id()));
        child.kill().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        // Killed but not yet reaped: a zombie, which does not count.
        while is_running(child.id()) {
            assert!(std::time::Instant::now() < deadline, "still running");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        child.wait().unwrap();
        assert!(!is_running(child.id()));
    }

    #[test]
    fn finds_a_child_by_its_arguments() {
        let marker = format!("procscan-marker-{}", std::process::id());
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "sleep 30; true", &marker])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        // Until exec, the forked child still shows our own command line.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !processes_referencing(&marker)
            .iter()
            .any(|p| p.pid == child.id())
        {
            assert!(std::time::Instant::now() < deadline, "child never found");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // SAFETY: kill(2) on the group we just created; takes the sleep along.
        unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
        child.wait().unwrap();
        // The group's other member (sh's fork for `sleep`) dies asynchronously.
        while !processes_referencing(&marker).is_empty() {
            assert!(std::time::Instant::now() < deadline, "child still listed");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
