//! The work queue of one policy: keys are parents; a parent is never reconciled twice at
//! once (a trigger during a run marks it dirty and it runs again right after), different
//! parents run in parallel up to a limit. A parent has at most one pending requeue: the one
//! its latest reconcile asked for.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

/// A parent: namespace and name in the local cluster.
pub type ParentKey = (String, String);

/// What a reconcile asks of the queue once it is done.
pub enum After {
    /// Nothing: wait for the next event.
    Idle,
    /// Run again after this delay.
    Requeue(Duration),
    /// Failed: run again after an exponential backoff for this parent.
    Backoff,
}

#[derive(Clone)]
pub struct Trigger {
    tx: mpsc::UnboundedSender<ParentKey>,
}

impl Trigger {
    pub fn send(&self, key: ParentKey) {
        // The receiver lives as long as the controller; a send after it stopped is moot.
        let _ = self.tx.send(key);
    }

    fn send_after(&self, key: ParentKey, delay: Duration) -> AbortOnDrop {
        let tx = self.tx.clone();
        AbortOnDrop(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(key);
        }))
    }
}

/// A pending requeue, cancelled when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub fn channel() -> (Trigger, mpsc::UnboundedReceiver<ParentKey>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Trigger { tx }, rx)
}

const BACKOFF_BASE: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

fn backoff(failures: u32) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << failures.min(10));
    let capped = exp.min(BACKOFF_MAX);
    // Jitter keeps many failing parents from retrying in lockstep against one API server.
    let jitter = rand::random_range(0.8..1.2);
    capped.mul_f64(jitter)
}

/// Runs `reconcile` for every key received, with the serialisation rules above.
pub async fn run<F, Fut>(
    mut rx: mpsc::UnboundedReceiver<ParentKey>,
    trigger: Trigger,
    concurrency: usize,
    reconcile: F,
) where
    F: Fn(ParentKey) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = After> + Send + 'static,
{
    let reconcile = Arc::new(reconcile);
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut running: HashSet<ParentKey> = HashSet::new();
    let mut dirty: HashSet<ParentKey> = HashSet::new();
    let mut failures: HashMap<ParentKey, u32> = HashMap::new();
    // Each finished reconcile replaces its parent's pending requeue: every reconcile asked
    // for one, and a timer per reconcile would outlive the reconciles that superseded it —
    // after a roll-out of thousands of reconciles, thousands of timers, each of whose
    // reconciles asked for another, kept an idle parent reconciling forever.
    let mut requeues: HashMap<ParentKey, AbortOnDrop> = HashMap::new();
    let mut tasks: JoinSet<(ParentKey, After)> = JoinSet::new();
    loop {
        tokio::select! {
            key = rx.recv() => {
                let Some(key) = key else { break };
                if running.contains(&key) {
                    dirty.insert(key);
                    continue;
                }
                running.insert(key.clone());
                let reconcile = reconcile.clone();
                let permits = permits.clone();
                tasks.spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    let after = reconcile(key.clone()).await;
                    (key, after)
                });
            }
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                let (key, after) = match done {
                    Ok(v) => v,
                    Err(error) => {
                        // A panicking reconcile is a host bug; the key stays "running"
                        // would wedge the parent, so it is lost from the set only.
                        tracing::error!(%error, "reconcile task panicked");
                        continue;
                    }
                };
                running.remove(&key);
                requeues.remove(&key);
                match after {
                    After::Idle => { failures.remove(&key); }
                    After::Requeue(d) => {
                        failures.remove(&key);
                        requeues.insert(key.clone(), trigger.send_after(key.clone(), d));
                    }
                    After::Backoff => {
                        let n = failures.entry(key.clone()).or_insert(0);
                        requeues.insert(key.clone(), trigger.send_after(key.clone(), backoff(*n)));
                        *n += 1;
                    }
                }
                if dirty.remove(&key) {
                    trigger.send(key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn one_run_per_parent_at_a_time_and_dirty_reruns() {
        let (trigger, rx) = channel();
        let concurrent = Arc::new(AtomicUsize::new(0));
        let max_seen = Arc::new(AtomicUsize::new(0));
        let runs = Arc::new(AtomicUsize::new(0));
        let (c, m, r) = (concurrent.clone(), max_seen.clone(), runs.clone());
        let handle = tokio::spawn(run(rx, trigger.clone(), 4, move |_key| {
            let (c, m, r) = (c.clone(), m.clone(), r.clone());
            async move {
                let now = c.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(30)).await;
                c.fetch_sub(1, Ordering::SeqCst);
                r.fetch_add(1, Ordering::SeqCst);
                After::Idle
            }
        }));
        let key = ("ns".to_string(), "a".to_string());
        for _ in 0..5 {
            trigger.send(key.clone());
        }
        // Wait for the runs to settle: the first run plus exactly one dirty rerun.
        for _ in 0..100 {
            if runs.load(Ordering::SeqCst) >= 2 && concurrent.load(Ordering::SeqCst) == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(max_seen.load(Ordering::SeqCst), 1);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        handle.abort();
    }

    // Paused time: the clock jumps to the next timer whenever every task waits, so the
    // count below does not depend on how loaded the machine is.
    #[tokio::test(start_paused = true)]
    async fn a_parent_keeps_only_the_requeue_its_latest_reconcile_asked_for() {
        let (trigger, rx) = channel();
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        // Every reconcile asks to run again later, as a policy waiting on something does.
        let handle = tokio::spawn(run(rx, trigger.clone(), 4, move |_key| {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                After::Requeue(Duration::from_millis(300))
            }
        }));
        let key = ("ns".to_string(), "a".to_string());
        // A burst of events, each reconciled on its own (a roll-out's pod changes).
        for _ in 0..20 {
            trigger.send(key.clone());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 20);
        // Then nothing happens: one requeue chain (5 runs in 1.5 s), not one chain per
        // reconcile of the burst (about 100).
        let before = runs.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let idle = runs.load(Ordering::SeqCst) - before;
        assert!((4..=6).contains(&idle), "{idle} runs in 1.5 idle seconds");
        handle.abort();
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(0) < Duration::from_millis(400));
        assert!(backoff(3) > Duration::from_millis(1500));
        assert!(backoff(30) <= BACKOFF_MAX.mul_f64(1.2));
    }
}
