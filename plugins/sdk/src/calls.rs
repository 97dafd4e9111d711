//! A data-plane call that is retried with an exponential backoff: attempts `base`,
//! `base/r1`, `base/r2`, ... (the host never runs an id twice, so each retry needs a new
//! one). One implementation for every policy that talks to a service which may be down
//! for a while (Reaper, say) and must neither hammer it nor give up.

use crate::{NodeRef, OperationKind, Outcome, Plan, Snapshot};

/// Timing of a [`call`]: the first retry waits `retry_base_ms`, each next one twice as
/// long, at most `retry_max_ms`; while an attempt is in flight the parent is looked at
/// again every `poll_ms` (in case its completion is missed).
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub poll_ms: u64,
}

/// Where a [`call`] stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// Answered; the body.
    Done(String),
    /// In flight or just planned.
    Pending,
    /// The last attempt failed (the message); the next one is planned after this many
    /// milliseconds.
    Failed(String, u64),
}

/// Drives the call `base` against `target`: plans the next attempt when it is due and
/// requeues the parent accordingly.
pub fn call(
    s: &Snapshot,
    plan: &mut Plan,
    base: &str,
    target: &NodeRef,
    kind: OperationKind,
    backoff: Backoff,
) -> Call {
    let mut n = 0u32;
    loop {
        let id = if n == 0 {
            base.to_string()
        } else {
            format!("{base}/r{n}")
        };
        match s.result(&id) {
            None => {
                plan.operate(id, target.clone(), kind);
                plan.requeue_after(backoff.poll_ms);
                return Call::Pending;
            }
            Some(Outcome::Succeeded(body)) => return Call::Done(body.clone()),
            Some(Outcome::Running(_)) => {
                plan.requeue_after(backoff.poll_ms);
                return Call::Pending;
            }
            Some(Outcome::Failed(msg)) => {
                let next = format!("{base}/r{}", n + 1);
                if s.result(&next).is_some() {
                    n += 1;
                    continue;
                }
                let at = s
                    .results
                    .iter()
                    .filter(|r| r.id == id)
                    .map(|r| r.at_ms)
                    .max()
                    .unwrap_or(0);
                let wait = (backoff.retry_base_ms << n.min(10)).min(backoff.retry_max_ms);
                let due = at.saturating_add(wait);
                if s.now_ms >= due {
                    plan.operate(next, target.clone(), kind);
                    plan.requeue_after(backoff.poll_ms);
                    return Call::Failed(msg.clone(), backoff.poll_ms);
                }
                plan.requeue_after(due - s.now_ms);
                return Call::Failed(msg.clone(), due - s.now_ms);
            }
        }
    }
}
