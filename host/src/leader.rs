//! Leader election through a `coordination.k8s.io/v1` Lease, so several replicas of the
//! operator can run with one active. Optimistic concurrency (resourceVersion) makes the
//! takeover race-free.
//!
//! Fencing: a lease this process renewed at instant T (taken *before* the request, since
//! the Lease records the time we send) is valid until T + duration for every other
//! replica. The leader gives up at T + renew deadline (< duration), every renewal attempt
//! bounded by what is left, so a hanging API server or a cut connection cannot keep it
//! waiting past that point; the caller then stops the process before the lease can expire
//! and a standby take over. Two leaders never write at once (on one clock; across machines
//! the margin `duration - renew deadline` absorbs clock skew).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("lease {namespace}/{name}: {source}")]
    Api {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("lost the lease {namespace}/{name} to {holder}")]
    Lost {
        namespace: String,
        name: String,
        holder: String,
    },
    #[error(
        "lease {namespace}/{name} not renewed within {deadline:?} (of its {duration:?}); \
         giving up before another replica may take over"
    )]
    NotRenewed {
        namespace: String,
        name: String,
        deadline: Duration,
        duration: Duration,
    },
    #[error("lease {namespace}/{name} not released within {after:?}; it will expire instead")]
    ReleaseTimedOut {
        namespace: String,
        name: String,
        after: Duration,
    },
}

#[derive(Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    /// How long a lease holds after its last renewal (`leaseDurationSeconds`).
    pub duration: Duration,
    pub renew_every: Duration,
    /// The leader gives up when it has not renewed for this long; must be below
    /// `duration`, the rest being the time it has to stop.
    pub renew_deadline: Duration,
}

impl LeaseConfig {
    /// client-go's proportions (15 s lease, 10 s renew deadline, 2 s retry) for any
    /// duration of at least 3 s.
    pub fn with_duration(namespace: &str, name: &str, identity: &str, duration: Duration) -> Self {
        let duration = duration.max(Duration::from_secs(3));
        LeaseConfig {
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.to_string(),
            duration,
            renew_every: duration.mul_f64(2.0 / 15.0),
            renew_deadline: duration.mul_f64(10.0 / 15.0),
        }
    }
}

pub struct Elector {
    api: Api<Lease>,
    cfg: LeaseConfig,
    /// When the request of the last successful acquisition or renewal started.
    renewed: std::sync::Mutex<Option<tokio::time::Instant>>,
}

enum Attempt {
    Acquired,
    HeldBy(String),
}

impl Elector {
    pub fn new(client: Client, cfg: LeaseConfig) -> Self {
        Elector {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
            renewed: std::sync::Mutex::new(None),
        }
    }

    fn err(&self, source: kube::Error) -> LeaderError {
        LeaderError::Api {
            namespace: self.cfg.namespace.clone(),
            name: self.cfg.name.clone(),
            source,
        }
    }

    async fn try_acquire(&self) -> Result<Attempt, LeaderError> {
        let now = Timestamp::now();
        let secs = self.cfg.duration.as_secs() as i32;
        match self
            .api
            .get_opt(&self.cfg.name)
            .await
            .map_err(|e| self.err(e))?
        {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.cfg.name.clone()),
                        namespace: Some(self.cfg.namespace.clone()),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.cfg.identity.clone()),
                        lease_duration_seconds: Some(secs),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..Default::default()
                    }),
                };
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(Attempt::Acquired),
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        Ok(Attempt::HeldBy("unknown".into()))
                    }
                    Err(e) => Err(self.err(e)),
                }
            }
            Some(mut lease) => {
                let spec = lease.spec.clone().unwrap_or_default();
                let holder = spec.holder_identity.clone().unwrap_or_default();
                let expired = spec.renew_time.as_ref().is_none_or(|t| {
                    let dur =
                        SignedDuration::from_secs(spec.lease_duration_seconds.unwrap_or(15) as i64);
                    t.0.checked_add(dur).map(|end| end < now).unwrap_or(true)
                });
                if holder != self.cfg.identity && !holder.is_empty() && !expired {
                    return Ok(Attempt::HeldBy(holder));
                }
                let transitions =
                    spec.lease_transitions.unwrap_or(0) + i32::from(holder != self.cfg.identity);
                lease.spec = Some(LeaseSpec {
                    holder_identity: Some(self.cfg.identity.clone()),
                    lease_duration_seconds: Some(secs),
                    acquire_time: if holder == self.cfg.identity {
                        spec.acquire_time
                    } else {
                        Some(MicroTime(now))
                    },
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(transitions),
                    ..Default::default()
                });
                // replace() carries the resourceVersion we read: a concurrent writer makes
                // it fail with 409 instead of both believing they lead.
                match self
                    .api
                    .replace(&self.cfg.name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => Ok(Attempt::Acquired),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(Attempt::HeldBy(holder)),
                    Err(e) => Err(self.err(e)),
                }
            }
        }
    }

    /// Waits until this process holds the lease.
    pub async fn acquire(&self) -> Result<(), LeaderError> {
        loop {
            let started = tokio::time::Instant::now();
            match self.try_acquire().await {
                Ok(Attempt::Acquired) => {
                    self.set_renewed(started);
                    tracing::info!(lease = %self.cfg.name, identity = %self.cfg.identity, "became leader");
                    return Ok(());
                }
                Ok(Attempt::HeldBy(holder)) => {
                    tracing::debug!(lease = %self.cfg.name, %holder, "waiting for the lease");
                }
                Err(error) => tracing::warn!(%error, "lease not acquired"),
            }
            tokio::time::sleep(self.cfg.renew_every).await;
        }
    }

    fn set_renewed(&self, at: tokio::time::Instant) {
        *self.renewed.lock().unwrap_or_else(|e| e.into_inner()) = Some(at);
    }

    /// Renews the lease until it is lost or not renewed within the renew deadline, and
    /// returns then, before the lease can expire. The caller must stop writing at once.
    pub async fn keep(&self) -> LeaderError {
        loop {
            let renewed = *self.renewed.lock().unwrap_or_else(|e| e.into_inner());
            // Not acquired yet counts as "renew now".
            let deadline =
                renewed.map_or_else(tokio::time::Instant::now, |t| t + self.cfg.renew_deadline);
            let next = renewed.map_or_else(tokio::time::Instant::now, |t| t + self.cfg.renew_every);
            tokio::time::sleep_until(next.min(deadline)).await;
            let started = tokio::time::Instant::now();
            if started >= deadline && renewed.is_some() {
                return self.not_renewed();
            }
            let left = deadline.saturating_duration_since(started);
            let attempt = if renewed.is_some() {
                match tokio::time::timeout(left, self.try_acquire()).await {
                    Ok(result) => result,
                    Err(_) => return self.not_renewed(),
                }
            } else {
                self.try_acquire().await
            };
            match attempt {
                Ok(Attempt::Acquired) => self.set_renewed(started),
                Ok(Attempt::HeldBy(holder)) => {
                    return LeaderError::Lost {
                        namespace: self.cfg.namespace.clone(),
                        name: self.cfg.name.clone(),
                        holder,
                    };
                }
                Err(error) => {
                    tracing::warn!(%error, "lease renewal failed; retrying until the renew deadline");
                    // A fast failure (connection refused) retries after a short pause
                    // rather than at the next renewal, still within the deadline.
                    let pause = self.cfg.renew_every.min(Duration::from_millis(500));
                    tokio::time::sleep(pause.min(left)).await;
                }
            }
        }
    }

    /// Gives the lease up, for a graceful shutdown: a standby takes it at its next retry
    /// instead of waiting for it to expire. Call it only once this process has stopped
    /// writing and renewing (`keep` no longer running), since a standby may lead as soon as
    /// the release is stored. As client-go does, the holder is cleared and the duration
    /// cut to one second, so even a standby that ignores an empty holder waits no longer.
    /// Returns whether a lease held by this process was released; a lease held by another
    /// replica (or none) is left alone.
    pub async fn release(&self) -> Result<bool, LeaderError> {
        // Bounded: a shutdown must not hang on an unreachable API server (the lease then
        // simply expires).
        let bound = self.cfg.renew_deadline;
        let attempt = async {
            let Some(mut lease) = self
                .api
                .get_opt(&self.cfg.name)
                .await
                .map_err(|e| self.err(e))?
            else {
                return Ok(false);
            };
            let spec = lease.spec.clone().unwrap_or_default();
            if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
                return Ok(false);
            }
            let now = MicroTime(Timestamp::now());
            lease.spec = Some(LeaseSpec {
                holder_identity: None,
                lease_duration_seconds: Some(1),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: spec.lease_transitions,
                ..Default::default()
            });
            // With the resourceVersion read: if someone else wrote in between, it is not
            // ours to release any more.
            match self
                .api
                .replace(&self.cfg.name, &PostParams::default(), &lease)
                .await
            {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(self.err(e)),
            }
        };
        match tokio::time::timeout(bound, attempt).await {
            Ok(result) => {
                if let Ok(true) = result {
                    tracing::info!(lease = %self.cfg.name, identity = %self.cfg.identity, "released the lease");
                }
                result
            }
            Err(_) => Err(LeaderError::ReleaseTimedOut {
                namespace: self.cfg.namespace.clone(),
                name: self.cfg.name.clone(),
                after: bound,
            }),
        }
    }

    fn not_renewed(&self) -> LeaderError {
        LeaderError::NotRenewed {
            namespace: self.cfg.namespace.clone(),
            name: self.cfg.name.clone(),
            deadline: self.cfg.renew_deadline,
            duration: self.cfg.duration,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_renew_deadline_leaves_time_to_stop() {
        let cfg = LeaseConfig::with_duration("ns", "lease", "me", Duration::from_secs(15));
        assert_eq!(cfg.renew_deadline, Duration::from_secs(10));
        assert_eq!(cfg.renew_every, Duration::from_secs(2));
        let tiny = LeaseConfig::with_duration("ns", "lease", "me", Duration::from_millis(10));
        assert!(tiny.renew_every < tiny.renew_deadline);
        assert!(tiny.renew_deadline < tiny.duration);
    }
}
