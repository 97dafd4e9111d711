//! Leader election through a `coordination.k8s.io/v1` Lease, so several replicas of the
//! operator can run with one active. Optimistic concurrency (resourceVersion) makes the
//! takeover race-free; a leader that cannot renew in time exits rather than risk two
//! active operators.

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
}

#[derive(Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub duration: Duration,
    pub renew_every: Duration,
}

pub struct Elector {
    api: Api<Lease>,
    cfg: LeaseConfig,
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
            match self.try_acquire().await {
                Ok(Attempt::Acquired) => {
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

    /// Renews the lease forever; returns an error once it is lost or cannot be renewed
    /// within its duration.
    pub async fn keep(&self) -> LeaderError {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.cfg.renew_every).await;
            match self.try_acquire().await {
                Ok(Attempt::Acquired) => last_ok = tokio::time::Instant::now(),
                Ok(Attempt::HeldBy(holder)) => {
                    return LeaderError::Lost {
                        namespace: self.cfg.namespace.clone(),
                        name: self.cfg.name.clone(),
                        holder,
                    };
                }
                Err(error) => {
                    tracing::warn!(%error, "lease renewal failed");
                    if last_ok.elapsed() > self.cfg.duration {
                        return error;
                    }
                }
            }
        }
    }
}
