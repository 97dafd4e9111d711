//! The Cassandra cluster(s) a Reaper repairs, registered with it through its REST API
//! (`reaper-*` operations, WIT 0.4.0, run by the host against a ready Reaper pod), and
//! deregistered when the Reaper is deleted.
//!
//! - A Reaper next to a datacenter registers that datacenter's cluster under the cluster
//!   name cleaned for Kubernetes (as upstream). A control-plane Reaper registers every
//!   K8ssandraCluster of its namespace whose `spec.reaper.reaperRef` names it.
//! - Registered exactly once: Reaper's list of clusters is read first and the cluster added
//!   only when absent; the ids are derived from the Reaper pod's UID (a new pod of a Reaper
//!   with `local` storage has lost its state) and a time window of [`RECHECK_MS`], so a
//!   restarted operator, or a Reaper whose state was lost, lists again instead of trusting a
//!   memory.
//! - Seeds: the addresses of the cluster's ready Cassandra pods (at most [`MAX_SEEDS`],
//!   from every cluster the host knows), then the seed Service's DNS name. Upstream gives only
//!   `<cluster>-seed-service.<ns>`, which a control-plane Reaper cannot resolve when the
//!   datacenter lives in another Kubernetes cluster (KO #1589), and which has no endpoints in
//!   a test environment; pod addresses are what Reaper reaches in both, the DNS name keeps
//!   working when the pods have moved.
//! - Deletion: the finalizer [`FINALIZER`] holds the Reaper (and with it its pods, which are
//!   re-applied as they are) until the cluster is removed from Reaper. A Reaper that cannot
//!   be reached (no ready pod, or its API failing) holds the deletion for at most
//!   [`GIVE_UP_MS`] after the deletion was asked; then the finalizer goes with a Warning
//!   event saying the cluster may still be registered.

use std::collections::{BTreeMap, BTreeSet};

use k8ssandra_api::labels::{CLUSTER_LABEL, DATACENTER_LABEL};
use k8ssandra_api::names::cleanup_for_kubernetes;
use k8ssandra_api::reaper::REAPER_LABEL;
use k8ssandra_policy_sdk::bindings::k8ssandra::policy::types::{
    ReaperAccess, ReaperCluster, ReaperClusterRef,
};
use k8ssandra_policy_sdk::calls::{self, Backoff};
use k8ssandra_policy_sdk::pods::PodView;
use k8ssandra_policy_sdk::{NodeRef, OperationKind, Plan, Snapshot};
use serde_json::Value;

/// Finalizer held while the cluster may be registered with this Reaper.
pub const FINALIZER: &str = "reaper.k8ssandra.io/deregister";
/// How long a deletion waits for an unreachable Reaper before giving up on deregistration.
/// Ten minutes covers a Reaper pod's restart (45 s initial delay of its probes, schema
/// migration) and the host's retries, and is short enough that a dead Reaper does not keep
/// a K8ssandraCluster's deletion pending for long.
pub const GIVE_UP_MS: u64 = 10 * 60_000;
/// How often a registration is checked again (one `GET /cluster` per Reaper), so a Reaper
/// that lost its state, or went down, is noticed.
pub const RECHECK_MS: u64 = 5 * 60_000;
/// At most this many pod addresses among the seeds.
pub const MAX_SEEDS: usize = 3;
/// Retry delays after a failed call: from 5 s, doubled, at most one minute; a call in
/// flight is looked at again every 5 s, in case its completion is missed.
const BACKOFF: Backoff = Backoff {
    retry_base_ms: 5_000,
    retry_max_ms: 60_000,
    poll_ms: 5_000,
};

/// A ready pod of the Reaper: where the host sends the REST calls.
#[derive(Clone, Debug)]
pub struct ReaperPod {
    pub node: NodeRef,
    pub uid: String,
}

/// Pods of this Reaper (label `k8ssandra.io/reaper`) in the local cluster: (ready ones sorted
/// by name, whether any exists at all).
pub fn reaper_pods(s: &Snapshot, name: &str, ns: &str) -> (Vec<ReaperPod>, bool) {
    let mut all: Vec<PodView> = s
        .pods()
        .into_iter()
        .filter(|(c, p)| {
            c.is_empty()
                && p.metadata.namespace.as_deref() == Some(ns)
                && p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(REAPER_LABEL))
                    .is_some_and(|v| v == name)
        })
        .map(|(_, p)| p)
        .collect();
    let any = !all.is_empty();
    all.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let ready = all
        .iter()
        .filter(|p| k8ssandra_policy_sdk::pods::serving(p))
        .map(|p| ReaperPod {
            node: NodeRef {
                cluster: String::new(),
                namespace: ns.to_string(),
                pod: p.metadata.name.clone().unwrap_or_default(),
            },
            uid: p.metadata.uid.clone().unwrap_or_default(),
        })
        .collect();
    (ready, any)
}

/// Seeds of a Cassandra cluster (its pods labelled `cassandra.datastax.com/cluster` with the
/// cleaned name; of one datacenter when `dc` is given): the ready pods' addresses, taken in
/// turn from each datacenter (so every datacenter seeds it), at most [`MAX_SEEDS`] or one
/// per datacenter, then the seed Service of each namespace they run in (`seed_ns` when none
/// is ready). Also returns how many datacenters have a ready pod.
pub fn seed_hosts(
    s: &Snapshot,
    cluster: &str,
    dc: Option<&str>,
    seed_ns: &str,
) -> (Vec<String>, usize) {
    let mut by_dc: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    let mut namespaces = BTreeSet::new();
    for (context, p) in s.pods() {
        let labels = p.metadata.labels.clone().unwrap_or_default();
        if labels.get(CLUSTER_LABEL).map(String::as_str) != Some(cluster) {
            continue;
        }
        let pod_dc = labels.get(DATACENTER_LABEL).cloned().unwrap_or_default();
        if dc.is_some_and(|d| d != pod_dc) || !k8ssandra_policy_sdk::pods::serving(&p) {
            continue;
        }
        if let Some(ip) = p.status.as_ref().and_then(|st| st.pod_ip.clone()) {
            by_dc.entry((context, pod_dc)).or_default().insert(ip);
        }
        if let Some(ns) = p.metadata.namespace.clone() {
            namespaces.insert(ns);
        }
    }
    if namespaces.is_empty() {
        namespaces.insert(seed_ns.to_string());
    }
    let groups: Vec<Vec<String>> = by_dc
        .into_values()
        .map(|v| v.into_iter().collect())
        .collect();
    let want = MAX_SEEDS.max(groups.len());
    let mut out = Vec::new();
    for round in 0.. {
        let before = out.len();
        for g in &groups {
            if out.len() < want
                && let Some(ip) = g.get(round)
            {
                out.push(ip.clone());
            }
        }
        if out.len() == before || out.len() >= want {
            break;
        }
    }
    out.extend(
        namespaces
            .into_iter()
            .map(|ns| format!("{cluster}-seed-service.{ns}")),
    );
    (out, groups.len())
}

pub use k8ssandra_policy_sdk::calls::Call;

/// Drives the call `base` (attempts `base`, `base/r1`, ...) with this policy's backoff.
pub fn call(
    s: &Snapshot,
    plan: &mut Plan,
    base: &str,
    target: &NodeRef,
    kind: OperationKind,
) -> Call {
    calls::call(s, plan, base, target, kind, BACKOFF)
}

/// Names in Reaper's list of clusters (names, or objects with a `name`).
pub fn cluster_names(body: &str) -> BTreeSet<String> {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            c.as_str()
                .map(str::to_string)
                .or_else(|| c.get("name").and_then(Value::as_str).map(str::to_string))
        })
        .collect()
}

/// A cluster this Reaper must know.
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    /// The name Reaper registers it under (cleaned for Kubernetes).
    pub name: String,
    pub seeds: Vec<String>,
}

/// Where the registrations stand.
#[derive(Debug, Clone, PartialEq)]
pub enum Registered {
    /// Every wanted cluster is registered.
    Yes,
    /// Calls are in flight.
    Pending,
    /// Reaper fails; the message says how.
    Failing(String),
}

fn window(s: &Snapshot) -> u64 {
    s.now_ms / RECHECK_MS
}

/// Makes every wanted cluster known to Reaper: one list per Reaper pod and time window, an
/// add for each cluster the list lacks.
pub fn register(
    s: &Snapshot,
    plan: &mut Plan,
    pod: &ReaperPod,
    access: &ReaperAccess,
    wanted: &[Wanted],
) -> Registered {
    let w = window(s);
    // The next window checks again.
    plan.requeue_after(((w + 1) * RECHECK_MS).saturating_sub(s.now_ms).max(1));
    let listed = match call(
        s,
        plan,
        &format!("reaper/clusters/{}/{w}", pod.uid),
        &pod.node,
        OperationKind::ReaperListClusters(access.clone()),
    ) {
        Call::Done(body) => cluster_names(&body),
        Call::Pending => return Registered::Pending,
        Call::Failed(m, _) => return Registered::Failing(m),
    };
    let mut state = Registered::Yes;
    for c in wanted.iter().filter(|c| !listed.contains(&c.name)) {
        let kind = OperationKind::ReaperAddCluster(ReaperCluster {
            access: access.clone(),
            name: c.name.clone(),
            seed_hosts: c.seeds.clone(),
            jmx_port: None,
        });
        match call(
            s,
            plan,
            &format!("reaper/add/{}/{}/{w}", c.name, pod.uid),
            &pod.node,
            kind,
        ) {
            Call::Done(_) => {}
            Call::Pending => {
                if state == Registered::Yes {
                    state = Registered::Pending;
                }
            }
            Call::Failed(m, _) => state = Registered::Failing(format!("adding {}: {m}", c.name)),
        }
    }
    state
}

/// Unix milliseconds of an RFC 3339 time in UTC (`2026-12-07T18:00:00Z`, fractions ignored).
pub fn parse_rfc3339(t: &str) -> Option<u64> {
    let b = t.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    u64::try_from(secs).ok().map(|s| s * 1000)
}

/// What a deletion decides.
#[derive(Debug, Clone, PartialEq)]
pub enum Deregistered {
    /// Removed from Reaper (or nothing was ever there): release the finalizer.
    Done,
    /// Still trying; the message says what is awaited.
    Waiting(String),
    /// Given up after [`GIVE_UP_MS`]: release the finalizer and warn.
    GaveUp(String),
}

/// Removes the clusters from Reaper before the Reaper goes.
pub fn deregister(
    s: &Snapshot,
    plan: &mut Plan,
    pods: &(Vec<ReaperPod>, bool),
    access: &ReaperAccess,
    names: &[String],
    deleted_at: &str,
) -> Deregistered {
    let (ready, any) = pods;
    if !any || names.is_empty() {
        return Deregistered::Done;
    }
    let since = parse_rfc3339(deleted_at).unwrap_or(s.now_ms);
    let overdue = s.now_ms.saturating_sub(since) >= GIVE_UP_MS;
    let Some(pod) = ready.first() else {
        let msg = "waiting for a ready Reaper pod to deregister the cluster from".to_string();
        return if overdue {
            Deregistered::GaveUp(msg)
        } else {
            plan.requeue_after(BACKOFF.poll_ms);
            Deregistered::Waiting(msg)
        };
    };
    let mut waiting = None;
    for name in names {
        let kind = OperationKind::ReaperRemoveCluster(ReaperClusterRef {
            access: access.clone(),
            name: name.clone(),
        });
        let base = format!(
            "reaper/remove/{name}/{}",
            k8ssandra_policy_sdk::stable_hash(deleted_at)
        );
        match call(s, plan, &base, &pod.node, kind) {
            Call::Done(_) => {}
            Call::Pending => {
                waiting.get_or_insert_with(|| format!("deregistering cluster {name} from Reaper"));
            }
            Call::Failed(m, _) => {
                waiting = Some(format!(
                    "deregistering cluster {name} from Reaper failed: {m}"
                ));
            }
        }
    }
    match waiting {
        None => Deregistered::Done,
        Some(m) if overdue => Deregistered::GaveUp(m),
        Some(m) => Deregistered::Waiting(m),
    }
}

/// Annotation on a control-plane Reaper's workload: the clusters registered with it through
/// a `reaperRef`, as JSON `{"<name>": <since, Unix ms>}`. Kept on the workload (not in
/// memory) so a cluster that stops referencing the Reaper is deregistered also after an
/// operator restart; `since` tells one registration from a later one of the same name.
pub const REGISTERED_ANNOTATION: &str = "reaper.k8ssandra.io/registered-clusters";

/// The clusters [`REGISTERED_ANNOTATION`] of the live workload names.
pub fn registered(s: &Snapshot) -> BTreeMap<String, u64> {
    let key = format!(
        "/metadata/annotations/{}",
        REGISTERED_ANNOTATION.replace('/', "~1")
    );
    s.children
        .iter()
        .filter(|o| o.cluster.is_empty())
        .filter_map(|o| o.value().ok())
        .filter_map(|v| v.pointer(&key).and_then(Value::as_str).map(str::to_string))
        .filter_map(|a| serde_json::from_str::<BTreeMap<String, u64>>(&a).ok())
        .fold(BTreeMap::new(), |mut acc, m| {
            acc.extend(m);
            acc
        })
}

/// Where the deregistration of clusters no longer referencing the Reaper stands.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Unreferenced {
    /// Still to deregister (calls in flight or failing), with their `since`.
    pub left: BTreeMap<String, u64>,
    /// Deregistered by this plan's outcomes.
    pub done: Vec<String>,
    /// A failure just retried, to tell the user (at most once per attempt).
    pub failing: Option<String>,
}

/// Deregisters every cluster of `known` that `referenced` lacks, once per registration (the
/// id carries its `since`). The host's `reaper-remove-cluster` refuses while schedules of
/// other owners or runs in progress remain, so those are never taken along.
pub fn deregister_unreferenced(
    s: &Snapshot,
    plan: &mut Plan,
    pod: Option<&ReaperPod>,
    access: &ReaperAccess,
    known: &BTreeMap<String, u64>,
    referenced: &BTreeSet<String>,
) -> Unreferenced {
    let mut out = Unreferenced::default();
    for (name, since) in known.iter().filter(|(n, _)| !referenced.contains(*n)) {
        let Some(pod) = pod else {
            out.left.insert(name.clone(), *since);
            continue;
        };
        let kind = OperationKind::ReaperRemoveCluster(ReaperClusterRef {
            access: access.clone(),
            name: name.clone(),
        });
        match call(
            s,
            plan,
            &format!("reaper/unref/{name}/{since}"),
            &pod.node,
            kind,
        ) {
            Call::Done(_) => out.done.push(name.clone()),
            Call::Pending => {
                out.left.insert(name.clone(), *since);
            }
            Call::Failed(m, wait) => {
                out.left.insert(name.clone(), *since);
                if wait == BACKOFF.poll_ms {
                    out.failing = Some(format!("deregistering {name}: {m}"));
                }
            }
        }
    }
    out
}

/// The cleaned name Reaper knows a Cassandra cluster under.
pub fn reaper_cluster_name(cluster_name: &str) -> String {
    cleanup_for_kubernetes(cluster_name)
}

#[cfg(test)]
mod tests {
    use super::parse_rfc3339;

    #[test]
    fn parses_kubernetes_times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20Z"),
            Some(1_700_000_000_000)
        );
        assert_eq!(parse_rfc3339("nonsense"), None);
    }
}
