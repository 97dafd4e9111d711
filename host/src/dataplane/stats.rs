//! Call and error counters per management-API endpoint and outcome.
//!
//! Plain atomics: the hot path (1000-node observations) pays two relaxed increments per
//! call, and the metrics module reads a [`DataplaneStats`] snapshot when scraped. Labels
//! are the endpoint's kind and the outcome class, both closed lists: never a pod or an
//! address, so the number of series does not grow with the cluster.

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
    TableCreate,
    FullQueryLogGet,
    FullQueryLogSet,
}

impl Endpoint {
    pub const ALL: [Endpoint; 30] = [
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
        Endpoint::TableCreate,
        Endpoint::FullQueryLogGet,
        Endpoint::FullQueryLogSet,
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
            Endpoint::TableCreate => "/api/v0/ops/tables/create",
            Endpoint::FullQueryLogGet | Endpoint::FullQueryLogSet => {
                "/api/v0/ops/node/fullquerylogging"
            }
        }
    }

    /// Short name of the endpoint, the value of the `endpoint` metric label.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Liveness => "liveness",
            Endpoint::Readiness => "readiness",
            Endpoint::Endpoints => "endpoints",
            Endpoint::Start => "start",
            Endpoint::DecommissionV0 => "decommission_v0",
            Endpoint::DecommissionV1 => "decommission_v1",
            Endpoint::Drain => "drain",
            Endpoint::KeyspaceCreate => "keyspace_create",
            Endpoint::KeyspaceAlter => "keyspace_alter",
            Endpoint::RoleCreate => "role_create",
            Endpoint::RebuildV1 => "rebuild_v1",
            Endpoint::CleanupV0 => "cleanup_v0",
            Endpoint::CleanupV1 => "cleanup_v1",
            Endpoint::UpgradeSstablesV0 => "upgrade_sstables_v0",
            Endpoint::UpgradeSstablesV1 => "upgrade_sstables_v1",
            Endpoint::CompactV0 => "compact_v0",
            Endpoint::CompactV1 => "compact_v1",
            Endpoint::FlushV0 => "flush_v0",
            Endpoint::FlushV1 => "flush_v1",
            Endpoint::ScrubV0 => "scrub_v0",
            Endpoint::ScrubV1 => "scrub_v1",
            Endpoint::GarbageCollectV0 => "garbage_collect_v0",
            Endpoint::GarbageCollectV1 => "garbage_collect_v1",
            Endpoint::SeedsReload => "seeds_reload",
            Endpoint::KeyspaceList => "keyspace_list",
            Endpoint::KeyspaceReplication => "keyspace_replication",
            Endpoint::JobStatus => "job_status",
            Endpoint::TableCreate => "table_create",
            Endpoint::FullQueryLogGet => "full_query_log_get",
            Endpoint::FullQueryLogSet => "full_query_log_set",
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
            | Endpoint::JobStatus
            | Endpoint::FullQueryLogGet => "GET",
            _ => "POST",
        }
    }
}

/// How one HTTP attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallOutcome {
    /// A 2xx answer.
    Success,
    /// A 4xx answer (404 included: an endpoint an older management API lacks).
    Http4xx,
    /// A 5xx answer (a readiness probe's "not ready" included).
    Http5xx,
    /// No answer within the deadline.
    Timeout,
    /// No connection: refused, unroutable, TLS handshake failed.
    Connect,
    /// Anything else: a broken answer, a 1xx/3xx status.
    Other,
}

impl CallOutcome {
    pub const ALL: [CallOutcome; 6] = [
        CallOutcome::Success,
        CallOutcome::Http4xx,
        CallOutcome::Http5xx,
        CallOutcome::Timeout,
        CallOutcome::Connect,
        CallOutcome::Other,
    ];

    /// The value of the `outcome` metric label.
    pub fn name(self) -> &'static str {
        match self {
            CallOutcome::Success => "success",
            CallOutcome::Http4xx => "http_4xx",
            CallOutcome::Http5xx => "http_5xx",
            CallOutcome::Timeout => "timeout",
            CallOutcome::Connect => "connect_error",
            CallOutcome::Other => "other_error",
        }
    }

    /// The class of an HTTP status.
    pub fn of_status(status: u16) -> CallOutcome {
        match status {
            200..=299 => CallOutcome::Success,
            400..=499 => CallOutcome::Http4xx,
            500..=599 => CallOutcome::Http5xx,
            _ => CallOutcome::Other,
        }
    }
}

/// Counters of one endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointStats {
    pub method: &'static str,
    pub path: &'static str,
    /// [`Endpoint::name`].
    pub name: &'static str,
    /// HTTP attempts, retries included.
    pub calls: u64,
    /// Attempts that got no answer or a status outside 2xx. A readiness probe answering
    /// "not ready" counts here too: it is an error status even though it is expected.
    pub errors: u64,
    /// Attempts that were retries of an earlier failed one.
    pub retries: u64,
    /// Attempts per outcome, in [`CallOutcome::ALL`] order; they add up to `calls`.
    pub outcomes: [u64; CallOutcome::ALL.len()],
}

impl EndpointStats {
    /// Attempts of this endpoint that ended with `outcome`.
    pub fn outcome(&self, outcome: CallOutcome) -> u64 {
        self.outcomes[outcome as usize]
    }
}

/// A snapshot of every endpoint's counters, in [`Endpoint::ALL`] order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataplaneStats {
    pub endpoints: Vec<EndpointStats>,
    /// Probes of a node not sent because its management API failed recently and its
    /// backoff had not run out (the node was reported with its last error instead).
    pub probes_deferred: u64,
    /// Probes of a node not sent because it answered healthy at its pod's current
    /// version a moment ago (the earlier answer was reported).
    pub probes_reused: u64,
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
    outcomes: [AtomicU64; CallOutcome::ALL.len()],
}

/// The live counters shared by every clone of a client.
pub(crate) struct Recorder {
    counters: [Counters; Endpoint::ALL.len()],
    probes_deferred: AtomicU64,
    probes_reused: AtomicU64,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            counters: std::array::from_fn(|_| Counters::default()),
            probes_deferred: AtomicU64::new(0),
            probes_reused: AtomicU64::new(0),
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

    /// How an attempt counted by [`Recorder::call`] ended.
    pub(crate) fn outcome(&self, endpoint: Endpoint, outcome: CallOutcome) {
        let c = &self.counters[endpoint as usize];
        c.outcomes[outcome as usize].fetch_add(1, Ordering::Relaxed);
        if outcome != CallOutcome::Success {
            c.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn probe_deferred(&self) {
        self.probes_deferred.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn probe_reused(&self) {
        self.probes_reused.fetch_add(1, Ordering::Relaxed);
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
                        name: e.name(),
                        calls: c.calls.load(Ordering::Relaxed),
                        errors: c.errors.load(Ordering::Relaxed),
                        retries: c.retries.load(Ordering::Relaxed),
                        outcomes: std::array::from_fn(|i| c.outcomes[i].load(Ordering::Relaxed)),
                    }
                })
                .collect(),
            probes_deferred: self.probes_deferred.load(Ordering::Relaxed),
            probes_reused: self.probes_reused.load(Ordering::Relaxed),
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
    fn outcomes_are_indexed_by_their_position() {
        for (i, o) in CallOutcome::ALL.iter().enumerate() {
            assert_eq!(*o as usize, i, "{o:?}");
        }
        assert_eq!(CallOutcome::of_status(204), CallOutcome::Success);
        assert_eq!(CallOutcome::of_status(404), CallOutcome::Http4xx);
        assert_eq!(CallOutcome::of_status(503), CallOutcome::Http5xx);
        assert_eq!(CallOutcome::of_status(302), CallOutcome::Other);
    }

    #[test]
    fn counts_per_endpoint_and_outcome() {
        let r = Recorder::default();
        r.call(Endpoint::Readiness, false);
        r.outcome(Endpoint::Readiness, CallOutcome::Timeout);
        r.call(Endpoint::Readiness, true);
        r.outcome(Endpoint::Readiness, CallOutcome::Success);
        r.probe_deferred();
        let s = r.snapshot();
        let ready = s.get(Endpoint::Readiness).cloned().unwrap_or_default();
        assert_eq!((ready.calls, ready.errors, ready.retries), (2, 1, 1));
        assert_eq!(ready.outcome(CallOutcome::Timeout), 1);
        assert_eq!(ready.outcome(CallOutcome::Success), 1);
        assert_eq!(ready.name, "readiness");
        assert_eq!(s.get(Endpoint::Liveness).map(|e| e.calls), Some(0));
        assert_eq!(s.probes_deferred, 1);
    }
}
