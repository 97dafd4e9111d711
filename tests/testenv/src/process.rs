//! Child processes that never outlive their owner.
//!
//! Each child runs in its own process group (so a stop reaches anything it forks) and gets
//! `PR_SET_PDEATHSIG = SIGKILL`. That signal fires when the *thread* that forked the child
//! exits, not the process, so every spawn goes through one dedicated thread that lives as long
//! as the process: children then die exactly when the test process dies, even on SIGKILL.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::error::{Error, IoContext, Result};

/// How long a component gets between SIGTERM and SIGKILL.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(5);

/// What to run, kept so a component can be started again with the same arguments.
#[derive(Debug, Clone)]
pub(crate) struct ProcSpec {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub log: PathBuf,
}

type SpawnJob = (Command, mpsc::SyncSender<std::io::Result<Child>>);

static SPAWNER: Mutex<Option<mpsc::Sender<SpawnJob>>> = Mutex::new(None);

fn spawn_on_spawner_thread(cmd: Command) -> std::io::Result<Child> {
    let sender = {
        let mut guard = SPAWNER.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(s) => s.clone(),
            None => {
                let (tx, rx) = mpsc::channel::<SpawnJob>();
                std::thread::Builder::new()
                    .name("testenv-spawner".into())
                    .spawn(move || {
                        for (mut cmd, reply) in rx {
                            let _ = reply.send(cmd.spawn());
                        }
                    })?;
                *guard = Some(tx.clone());
                tx
            }
        }
    };
    let (reply_tx, reply_rx) = mpsc::sync_channel(1);
    sender
        .send((cmd, reply_tx))
        .map_err(|_| std::io::Error::other("testenv spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| std::io::Error::other("testenv spawner thread dropped the request"))?
}

/// A running child process, stopped (group-wide) on drop.
#[derive(Debug)]
pub(crate) struct Proc {
    name: String,
    log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    pub(crate) fn spawn(spec: &ProcSpec) -> Result<Proc> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)
            .ctx(|| format!("opening log {}", spec.log.display()))?;
        let log_err = log
            .try_clone()
            .ctx(|| format!("duplicating log {}", spec.log.display()))?;

        let mut cmd = Command::new(&spec.program);
        cmd.args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .process_group(0);
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) run between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before prctl took effect.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let child = spawn_on_spawner_thread(cmd)
            .ctx(|| format!("starting {} ({})", spec.name, spec.program.display()))?;
        tracing::debug!(component = %spec.name, pid = child.id(), log = %spec.log.display(), "started");
        Ok(Proc {
            name: spec.name.clone(),
            log: spec.log.clone(),
            child: Some(child),
        })
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `Some(error)` when the process has already exited: used while waiting for readiness.
    pub(crate) fn exited_error(&mut self) -> Option<Error> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => {
                self.child = None;
                Some(Error::ComponentExited {
                    component: self.name.clone(),
                    status: status.to_string(),
                    log: self.log.clone(),
                    tail: log_tail(&self.log, 30),
                })
            }
            Ok(None) => None,
            Err(e) => Some(Error::Io {
                context: format!("checking {}", self.name),
                source: e,
            }),
        }
    }

    fn signal(&self, sig: libc::c_int) {
        if let Some(pid) = self.pid() {
            // SAFETY: plain kill(2) on the process group we created for this child.
            unsafe {
                libc::kill(-(pid as libc::pid_t), sig);
            }
        }
    }

    /// Polls for exit until `deadline`; true when reaped.
    fn reap_until(&mut self, deadline: Instant) -> bool {
        loop {
            let Some(child) = self.child.as_mut() else {
                return true;
            };
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => {
                    self.child = None;
                    return true;
                }
                Ok(None) if Instant::now() >= deadline => return false,
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    fn kill_and_reap(&mut self) {
        if self.child.is_none() {
            return;
        }
        self.signal(libc::SIGKILL);
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        // Anything the child forked into its group is gone too.
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL. Blocking.
    pub(crate) fn stop(&mut self, grace: Duration) {
        stop_all(&mut [self], grace);
    }
}

/// Stops many processes concurrently: one SIGTERM each, one shared grace period, then SIGKILL.
pub(crate) fn stop_all(procs: &mut [&mut Proc], grace: Duration) {
    for p in procs.iter() {
        p.signal(libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    for p in procs.iter_mut() {
        if !p.reap_until(deadline) {
            tracing::debug!(component = %p.name, "did not stop on SIGTERM, killing");
        }
        // Also clears leftovers in the group of a child that exited on its own.
        if let Some(pid) = p.pid() {
            tracing::debug!(component = %p.name, pid, "killing");
        }
        p.kill_and_reap();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop(STOP_GRACE);
        }
    }
}

/// The last `lines` lines of a log file, for error messages.
pub(crate) fn log_tail(path: &std::path::Path, lines: usize) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::from("<no log>");
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(16 * 1024);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return String::from("<unreadable log>");
    }
    let mut buf = Vec::new();
    if f.read_to_end(&mut buf).is_err() {
        return String::from("<unreadable log>");
    }
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A port on 127.0.0.1 held for a component for as long as this value lives.
///
/// The socket is bound with `SO_REUSEADDR` but never listens. Linux lets another
/// `SO_REUSEADDR` socket (Go sets it on every listener) bind and listen on the same port, while
/// the kernel's choice of ephemeral ports for other processes skips it. So the port cannot be
/// taken by someone else between our pick and the component's bind, nor while a component is
/// stopped (an API server restart gets its port back), and clients meanwhile see "connection
/// refused", as with a stopped server.
#[derive(Debug)]
pub(crate) struct PortReservation {
    _socket: std::os::fd::OwnedFd,
    port: u16,
}

impl PortReservation {
    pub(crate) fn port(&self) -> u16 {
        self.port
    }
}

pub(crate) fn reserve_port() -> Result<PortReservation> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let err = |what: &str| Error::Io {
        context: format!("reserving a port ({what})"),
        source: std::io::Error::last_os_error(),
    };
    // SAFETY: plain socket calls on a descriptor we own; structs are fully initialised.
    unsafe {
        let raw = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if raw < 0 {
            return Err(err("socket"));
        }
        let socket = OwnedFd::from_raw_fd(raw);
        let one: libc::c_int = 1;
        if libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ) != 0
        {
            return Err(err("setsockopt"));
        }
        let mut addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
            },
            sin_zero: [0; 8],
        };
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        if libc::bind(
            socket.as_raw_fd(),
            (&addr as *const libc::sockaddr_in).cast(),
            len,
        ) != 0
        {
            return Err(err("bind"));
        }
        if libc::getsockname(
            socket.as_raw_fd(),
            (&mut addr as *mut libc::sockaddr_in).cast(),
            &mut len,
        ) != 0
        {
            return Err(err("getsockname"));
        }
        Ok(PortReservation {
            _socket: socket,
            port: u16::from_be(addr.sin_port),
        })
    }
}

/// Whether a log shows a lost race for a port (kept as a fallback to [`reserve_port`]).
pub(crate) fn is_port_conflict(err: &Error) -> bool {
    matches!(err, Error::ComponentExited { tail, .. } if tail.contains("address already in use"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &std::path::Path, script: &str) -> ProcSpec {
        ProcSpec {
            name: "sh".into(),
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: vec![],
            log: dir.join("sh.log"),
        }
    }

    fn alive(pid: u32) -> bool {
        crate::procscan::is_running(pid)
    }

    #[test]
    fn drop_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("grandchild.pid");
        let p = Proc::spawn(&spec(
            dir.path(),
            &format!("sleep 300 & echo $! > {}; wait", marker.display()),
        ))
        .unwrap();
        let pid = p.pid().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let grandchild: u32 = loop {
            if let Ok(s) = std::fs::read_to_string(&marker)
                && let Ok(n) = s.trim().parse()
            {
                break n;
            }
            assert!(Instant::now() < deadline, "grandchild never started");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(alive(pid), "child {pid} not running");
        assert!(alive(grandchild), "grandchild {grandchild} not running");
        drop(p);
        assert!(!alive(pid), "child survived drop");
        // The grandchild was reparented away from us, so wait for init to reap it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(grandchild) {
            assert!(Instant::now() < deadline, "grandchild survived drop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_reserved_port_is_refused_yet_bindable_by_a_listener() {
        let r = reserve_port().unwrap();
        let addr = ("127.0.0.1", r.port());
        assert!(
            std::net::TcpStream::connect(addr).is_err(),
            "nobody listens yet"
        );
        // std sets SO_REUSEADDR on listeners, as Go does.
        let listener = std::net::TcpListener::bind(addr).unwrap();
        assert!(std::net::TcpStream::connect(addr).is_ok());
        drop(listener);
        // Still ours after the listener is gone (an API server restart).
        let again = std::net::TcpListener::bind(addr).unwrap();
        drop(again);
    }

    #[test]
    fn early_exit_reports_log_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Proc::spawn(&spec(dir.path(), "echo boom-line; exit 3")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let err = loop {
            if let Some(e) = p.exited_error() {
                break e;
            }
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(20));
        };
        let msg = err.to_string();
        assert!(msg.contains("boom-line") && msg.contains('3'), "{msg}");
    }
}
