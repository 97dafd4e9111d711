//! One schedule machinery for the policies that create objects on a cron schedule
//! (MedusaBackupSchedule, ScheduledTask): which run is due, whether it may start, which
//! finished runs to keep. Everything is a pure function of the schedule, the snapshot's
//! clock (`now_ms`) and the runs that exist, so a policy has no clock of its own and a
//! reconcile repeated at any time decides the same.
//!
//! Semantics follow Kubernetes CronJob:
//! - runs are due at the schedule's times after the last scheduled one (or after the
//!   object's creation); of several missed runs only the most recent starts;
//! - with a starting deadline, a run more than that late is skipped;
//! - `Forbid` starts nothing while a run is active (the due run starts once it ends, if
//!   still within the deadline); `Replace` deletes the active runs and starts the new one;
//!   `Allow` lets runs overlap;
//! - the newest N finished runs of each outcome are kept, older ones deleted; active runs
//!   are never deleted by the history limits.

mod cron;

pub use cron::Schedule;

/// Why a schedule cannot be used. Messages name the rule; the policy names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("{0}")]
    Cron(String),
    #[error("`{0}` is not a known IANA time zone (such as Europe/Berlin or America/New_York)")]
    TimeZone(String),
    #[error("`{0}` is not a concurrency policy of this kind; use {1}")]
    Concurrency(String, String),
}

/// Whether runs may overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Concurrency {
    Allow,
    #[default]
    Forbid,
    Replace,
}

impl Concurrency {
    /// Parses a spec's `concurrencyPolicy`; `allowed` lists what the kind supports (a
    /// MedusaBackupJob cannot be replaced mid-backup, for instance).
    pub fn parse(
        value: Option<&str>,
        default: Concurrency,
        allowed: &[Concurrency],
    ) -> Result<Concurrency, ScheduleError> {
        let c = match value {
            None | Some("") => default,
            Some("Allow") => Concurrency::Allow,
            Some("Forbid") => Concurrency::Forbid,
            Some("Replace") => Concurrency::Replace,
            Some(other) => other.parse_err(allowed)?,
        };
        if allowed.contains(&c) {
            Ok(c)
        } else {
            format!("{c:?}").as_str().parse_err(allowed)
        }
    }
}

trait ParseErr {
    fn parse_err(self, allowed: &[Concurrency]) -> Result<Concurrency, ScheduleError>;
}

impl ParseErr for &str {
    fn parse_err(self, allowed: &[Concurrency]) -> Result<Concurrency, ScheduleError> {
        let names: Vec<String> = allowed.iter().map(|c| format!("{c:?}")).collect();
        Err(ScheduleError::Concurrency(
            self.to_string(),
            names.join(" or "),
        ))
    }
}

/// How a run ended, or that it has not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Active,
    Succeeded,
    Failed,
}

/// A run that exists: its name, the scheduled time it was created for, and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub name: String,
    pub scheduled_ms: u64,
    pub state: RunState,
}

/// The settings of a schedule besides its times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub concurrency: Concurrency,
    /// Runs later than this are skipped (`startingDeadlineSeconds`).
    pub starting_deadline_ms: Option<u64>,
    /// Paused: due runs are skipped (and counted as done, so resuming does not start a
    /// late run at once).
    pub suspended: bool,
    pub successful_history: usize,
    pub failed_history: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            concurrency: Concurrency::Forbid,
            starting_deadline_ms: None,
            suspended: false,
            // CronJob's defaults.
            successful_history: 3,
            failed_history: 1,
        }
    }
}

/// What to do now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    /// Start the run scheduled at this time.
    pub start: Option<u64>,
    /// A due run that waits for these active runs to end (Forbid).
    pub blocked_by: Vec<String>,
    /// Active runs to delete before the new one starts (Replace).
    pub replace: Vec<String>,
    /// Finished runs past the history limits, to delete.
    pub prune: Vec<String>,
    /// The last scheduled time to record (`lastExecution`).
    pub last_scheduled_ms: Option<u64>,
    /// The next time a run is due (`nextSchedule`); None when the schedule never runs
    /// again.
    pub next_ms: Option<u64>,
    /// Call again after this long: at the next due time.
    pub requeue_after_ms: Option<u64>,
}

const BLOCKED_RECHECK_MS: u64 = 30_000;

/// The most recent scheduled time in (`earliest`, `now`], if any. Windows grow from an
/// hour back, so a dense schedule never walks over years of runs and a sparse one finds
/// its last run in a few steps.
fn most_recent(schedule: &Schedule, earliest: u64, now: u64) -> Option<u64> {
    const WINDOWS: [u64; 4] = [3_600_000, 86_400_000, 32 * 86_400_000, 367 * 86_400_000];
    let starts = WINDOWS
        .iter()
        .map(|w| now.saturating_sub(*w).max(earliest))
        .chain(std::iter::once(earliest));
    for start in starts {
        let mut t = start;
        let mut found = None;
        while let Some(n) = schedule.next_after(t).filter(|n| *n <= now) {
            found = Some(n);
            t = n;
        }
        if found.is_some() || start == earliest {
            return found;
        }
    }
    None
}

/// Decides a schedule's step. `last_scheduled_ms` is what the status recorded;
/// `created_ms` the object's creation (the start when nothing ran yet).
pub fn decide(
    schedule: &Schedule,
    settings: &Settings,
    last_scheduled_ms: Option<u64>,
    created_ms: u64,
    now_ms: u64,
    runs: &[Run],
) -> Decision {
    // A run already created for a time the status does not know yet (the status write
    // after the create failed) counts as scheduled: creating it again is idempotent, but
    // the recorded time must not go back.
    let newest_run = runs.iter().map(|r| r.scheduled_ms).max();
    let mut last = match (last_scheduled_ms, newest_run) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let mut earliest = last.unwrap_or(created_ms);
    if let Some(d) = settings.starting_deadline_ms {
        earliest = earliest.max(now_ms.saturating_sub(d));
    }
    let mut out = Decision::default();
    let active: Vec<&Run> = runs
        .iter()
        .filter(|r| r.state == RunState::Active)
        .collect();
    if let Some(due) = most_recent(schedule, earliest, now_ms) {
        if settings.suspended {
            last = Some(due);
        } else {
            match settings.concurrency {
                Concurrency::Forbid if !active.is_empty() => {
                    out.blocked_by = active.iter().map(|r| r.name.clone()).collect();
                }
                Concurrency::Replace => {
                    out.replace = active.iter().map(|r| r.name.clone()).collect();
                    out.start = Some(due);
                    last = Some(due);
                }
                _ => {
                    out.start = Some(due);
                    last = Some(due);
                }
            }
        }
    }
    out.last_scheduled_ms = last;
    out.next_ms = schedule.next_after(now_ms);
    out.requeue_after_ms = out.next_ms.map(|n| n.saturating_sub(now_ms).max(1));
    if !out.blocked_by.is_empty() {
        // The end of the blocking run normally wakes the policy (a child changed); this
        // only bounds the wait if that event is lost.
        out.requeue_after_ms = Some(
            out.requeue_after_ms
                .map_or(BLOCKED_RECHECK_MS, |r| r.min(BLOCKED_RECHECK_MS)),
        );
    }
    out.prune = prune(runs, settings);
    out
}

/// Finished runs beyond the history limits: the newest N of each outcome stay.
pub fn prune(runs: &[Run], settings: &Settings) -> Vec<String> {
    let mut out = Vec::new();
    for (state, keep) in [
        (RunState::Succeeded, settings.successful_history),
        (RunState::Failed, settings.failed_history),
    ] {
        let mut finished: Vec<&Run> = runs.iter().filter(|r| r.state == state).collect();
        finished.sort_by(|a, b| {
            b.scheduled_ms
                .cmp(&a.scheduled_ms)
                .then_with(|| b.name.cmp(&a.name))
        });
        out.extend(finished.into_iter().skip(keep).map(|r| r.name.clone()));
    }
    out
}

/// The name of the run scheduled at `scheduled_ms`: `<parent>-<unix seconds>`, as upstream
/// names backup jobs, so a run's time can be read back from its name.
pub fn run_name(parent: &str, scheduled_ms: u64) -> String {
    format!("{parent}-{}", scheduled_ms / 1000)
}

/// The scheduled time of a run named by [`run_name`] for this parent.
pub fn scheduled_ms_of(parent: &str, name: &str) -> Option<u64> {
    let secs = name.strip_prefix(parent)?.strip_prefix('-')?;
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    secs.parse::<u64>().ok()?.checked_mul(1000)
}

#[cfg(test)]
mod tests;
