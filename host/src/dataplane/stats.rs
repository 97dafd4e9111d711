//! Call and error counters per management-API endpoint.
//!
//! Plain atomics: the hot path (1000-node observations) pays one relaxed increment per
//! call, and the metrics module reads a [`DataplaneStats`] snapshot when scraped.

use std::sync::atomic::{AtomicU64, Ordering};

/// Every management-API endpoint this client calls. The discriminant indexes the
/// counters, so the list is closed and counting needs no map or lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Liveness,
    Readiness,
    Endpoints,
    Start,
    DecommissionV0,
    DecommissionV1,
    Drain,
    KeyspaceCreate,
    KeyspaceAlter,
    RoleCreate,
    RebuildV1,
    CleanupV0,
    CleanupV1,
    UpgradeSstablesV0,
    UpgradeSstablesV1,
    CompactV0,
    CompactV1,
    FlushV0,
    FlushV1,
    ScrubV0,
    ScrubV1,
    GarbageCollectV0,
    GarbageCollectV1,
    SeedsReload,
    KeyspaceList,
    KeyspaceReplication,
    JobStatus,
}

impl Endpoint {
    pub const ALL: [Endpoint; 27] = [
        Endpoint::Liveness,
        Endpoint::Readiness,
        Endpoint::Endpoints,
        Endpoint::Start,
        Endpoint::DecommissionV0,
        Endpoint::DecommissionV1,
        Endpoint::Drain,
        Endpoint::KeyspaceCreate,
        Endpoint::KeyspaceAlter,
        Endpoint::RoleCreate,
        Endpoint::RebuildV1,
        Endpoint::CleanupV0,
        Endpoint::CleanupV1,
        Endpoint::UpgradeSstablesV0,
        Endpoint::UpgradeSstablesV1,
        Endpoint::CompactV0,
        Endpoint::CompactV1,
        Endpoint::FlushV0,
        Endpoint::FlushV1,
        Endpoint::ScrubV0,
        Endpoint::ScrubV1,
        Endpoint::GarbageCollectV0,
        Endpoint::GarbageCollectV1,
        Endpoint::SeedsReload,
        Endpoint::KeyspaceList,
        Endpoint::KeyspaceReplication,
        Endpoint::JobStatus,
    ];

    /// The URL path of the endpoint.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Liveness => "/api/v0/probes/liveness",
            Endpoint::Readiness => "/api/v0/probes/readiness",
            Endpoint::Endpoints => "/api/v0/metadata/endpoints",
            Endpoint::Start => "/api/v0/lifecycle/start",
            Endpoint::DecommissionV0 => "/api/v0/ops/node/decommission",
            Endpoint::DecommissionV1 => "/api/v1/ops/node/decommission",
            Endpoint::Drain => "/api/v0/ops/node/drain",
            Endpoint::KeyspaceCreate => "/api/v0/ops/keyspace/create",
            Endpoint::KeyspaceAlter => "/api/v0/ops/keyspace/alter",
            Endpoint::RoleCreate => "/api/v0/ops/auth/role",
            Endpoint::RebuildV1 => "/api/v1/ops/node/rebuild",
            Endpoint::CleanupV0 => "/api/v0/ops/keyspace/cleanup",
            Endpoint::CleanupV1 => "/api/v1/ops/keyspace/cleanup",
            Endpoint::UpgradeSstablesV0 => "/api/v0/ops/tables/sstables/upgrade",
            Endpoint::UpgradeSstablesV1 => "/api/v1/ops/tables/sstables/upgrade",
            Endpoint::CompactV0 => "/api/v0/ops/tables/compact",
            Endpoint::CompactV1 => "/api/v1/ops/tables/compact",
            Endpoint::FlushV0 => "/api/v0/ops/tables/flush",
            Endpoint::FlushV1 => "/api/v1/ops/tables/flush",
            Endpoint::ScrubV0 => "/api/v0/ops/tables/scrub",
            Endpoint::ScrubV1 => "/api/v1/ops/tables/scrub",
            Endpoint::GarbageCollectV0 => "/api/v0/ops/tables/garbagecollect",
            Endpoint::GarbageCollectV1 => "/api/v1/ops/tables/garbagecollect",
            Endpoint::SeedsReload => "/api/v0/ops/seeds/reload",
            Endpoint::KeyspaceList => "/api/v0/ops/keyspace",
            Endpoint::KeyspaceReplication => "/api/v0/ops/keyspace/replication",
            Endpoint::JobStatus => "/api/v0/ops/executor/job",
        }
    }

    /// The HTTP method the endpoint is called with.
    pub fn method(self) -> &'static str {
        match self {
            Endpoint::Liveness
            | Endpoint::Readiness
            | Endpoint::Endpoints
            | Endpoint::KeyspaceList
            | Endpoint::KeyspaceReplication
            | Endpoint::JobStatus => "GET",
            _ => "POST",
        }
    }
}

/// Counters of one endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointStats {
    pub method: &'static str,
    pub path: &'static str,
    /// HTTP attempts, retries included.
    pub calls: u64,
    /// Attempts that got no answer or a status outside 2xx. A readiness probe answering
    /// "not ready" counts here too: it is an error status even though it is expected.
    pub errors: u64,
    /// Attempts that were retries of an earlier failed one.
    pub retries: u64,
}

/// A snapshot of every endpoint's counters, in [`Endpoint::ALL`] order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataplaneStats {
    pub endpoints: Vec<EndpointStats>,
}

impl DataplaneStats {
    /// The counters of one endpoint.
    pub fn get(&self, endpoint: Endpoint) -> Option<&EndpointStats> {
        self.endpoints
            .iter()
            .find(|e| e.path == endpoint.path() && e.method == endpoint.method())
    }
}

#[derive(Default)]
struct Counters {
    calls: AtomicU64,
    errors: AtomicU64,
    retries: AtomicU64,
}

/// The live counters shared by every clone of a client.
pub(crate) struct Recorder {
    counters: [Counters; Endpoint::ALL.len()],
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            counters: std::array::from_fn(|_| Counters::default()),
        }
    }
}

impl Recorder {
    pub(crate) fn call(&self, endpoint: Endpoint, retry: bool) {
        let c = &self.counters[endpoint as usize];
        c.calls.fetch_add(1, Ordering::Relaxed);
        if retry {
            c.retries.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn error(&self, endpoint: Endpoint) {
        self.counters[endpoint as usize]
            .errors
            .fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> DataplaneStats {
        DataplaneStats {
            endpoints: Endpoint::ALL
                .iter()
                .map(|&e| {
                    let c = &self.counters[e as usize];
                    EndpointStats {
                        method: e.method(),
                        path: e.path(),
                        calls: c.calls.load(Ordering::Relaxed),
                        errors: c.errors.load(Ordering::Relaxed),
                        retries: c.retries.load(Ordering::Relaxed),
                    }
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_endpoint_at_its_index() {
        for (i, e) in Endpoint::ALL.iter().enumerate() {
            assert_eq!(*e as usize, i, "{e:?}");
        }
    }

    #[test]
    fn counts_per_endpoint() {
        let r = Recorder::default();
        r.call(Endpoint::Readiness, false);
        r.call(Endpoint::Readiness, true);
        r.error(Endpoint::Readiness);
        let s = r.snapshot();
        let ready = s.get(Endpoint::Readiness).cloned().unwrap_or_default();
        assert_eq!((ready.calls, ready.errors, ready.retries), (2, 1, 1));
        assert_eq!(s.get(Endpoint::Liveness).map(|e| e.calls), Some(0));
    }
}
