//! Cluster slots: each running cluster owns one number `n` in 1..=254, which gives it the pod
//! range `127.n.0.0/16`. Ownership is an exclusive `flock` on a per-slot file, so it is shared
//! correctly between threads and processes and released by the kernel when a process dies.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// Directory of the slot lock files.
pub const SLOT_DIR: &str = "/tmp/k8ssandra-testenv-slots";

const FIRST: u8 = 1;
const LAST: u8 = 254;

/// An owned slot; dropping it releases the number.
#[derive(Debug)]
pub struct Slot {
    n: u8,
    // Holding the open file keeps the lock.
    _lock: File,
}

impl Slot {
    /// Takes the first free slot, starting at a per-process offset to keep contention low.
    pub fn acquire() -> Result<Slot> {
        Self::acquire_in(Path::new(SLOT_DIR))
    }

    pub(crate) fn acquire_in(dir: &Path) -> Result<Slot> {
        std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
        let span = u32::from(LAST - FIRST) + 1;
        let start = std::process::id() % span;
        for i in 0..span {
            let n = FIRST + ((start + i) % span) as u8;
            let path = slot_path(dir, n);
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .ctx(|| format!("opening {}", path.display()))?;
            // SAFETY: flock on a valid, owned descriptor.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                return Ok(Slot { n, _lock: file });
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(Error::Io {
                    context: format!("locking {}", path.display()),
                    source: err,
                });
            }
        }
        Err(Error::NoFreeSlot(dir.to_path_buf()))
    }

    /// The slot number `n`.
    pub fn number(&self) -> u8 {
        self.n
    }

    /// The pod range of this slot, `127.n.0.0/16`.
    pub fn pod_cidr(&self) -> String {
        format!("127.{}.0.0/16", self.n)
    }
}

fn slot_path(dir: &Path, n: u8) -> PathBuf {
    dir.join(format!("{n}.lock"))
}

pub(crate) fn flock_blocking(file: &File) -> std::io::Result<()> {
    loop {
        // SAFETY: flock on a valid, owned descriptor.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_exclusive_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let a = Slot::acquire_in(dir.path()).unwrap();
        let b = Slot::acquire_in(dir.path()).unwrap();
        assert_ne!(a.number(), b.number());
        let a_n = a.number();
        drop(a);
        // Every other slot is taken, so the freed one must come back.
        let mut held = vec![b];
        loop {
            match Slot::acquire_in(dir.path()) {
                Ok(s) if s.number() == a_n => break,
                Ok(s) => held.push(s),
                Err(e) => panic!("slot {a_n} was not released: {e}"),
            }
        }
        assert!(held.iter().all(|s| s.number() != a_n));
    }

    #[test]
    fn pod_cidr_uses_slot_number() {
        let dir = tempfile::tempdir().unwrap();
        let s = Slot::acquire_in(dir.path()).unwrap();
        assert_eq!(s.pod_cidr(), format!("127.{}.0.0/16", s.number()));
    }
}
