//! Cluster-wide Cassandra work, through data-plane operations on ready nodes:
//!
//! 1. system keyspaces (`system_auth`, `system_distributed`, `system_traces`, and DSE's)
//!    replicate with NetworkTopologyStrategy, min(3, size) per datacenter and 3 per external
//!    datacenter; read first (`GetReplication`) and altered only when different, so a
//!    restarted operator re-checks cheaply instead of trusting a record;
//! 2. a datacenter that joined a running cluster gets the user keyspaces listed for it in
//!    `k8ssandra.io/dc-replication`, then every node is rebuilt from an existing datacenter,
//!    one node per rack at a time: a rebuild streams the node's whole share from the source
//!    datacenter, and one per rack bounds the extra load on that (serving) datacenter while
//!    a 250-node datacenter does not take 250 rebuilds in a row;
//! 3. a datacenter removed from the spec is refused while a user keyspace replicates to it;
//!    otherwise system replication drops it, then its nodes are decommissioned one at a time
//!    (each is a range movement), and only when none is left in the ring does the
//!    CassandraDatacenter leave the plan (and the host prune it).

use std::collections::{BTreeMap, BTreeSet};

use k8ssandra_api::cassandra::{DatacenterConditionType as T, ServerType};
use k8ssandra_api::k8ssandra::decommission;
use k8ssandra_api::labels;
use k8ssandra_api::stargate::AUTH_KEYSPACE;
use k8ssandra_policy_sdk::{EventType, OperationKind, Replication};

use crate::cluster::{ChildDc, Ctx, JOIN_DONE, JOIN_PENDING, REMOVAL_BLOCKED};
use crate::util::{self, Step, hash, parse_replication, step};

/// How long a blocked removal waits before checking the keyspaces again (users fix the
/// replication with CQL, which changes nothing the operator watches).
const RECHECK_MS: u64 = 30_000;
/// Requeue while a long operation runs, in case its completion is not reported.
const POLL_MS: u64 = 10_000;

pub fn run(cx: &mut Ctx) {
    let cleared = removal_checks(cx);
    let system_done = system_replication(cx, &cleared);
    if system_done {
        joins(cx);
    }
    removals(cx, system_done, &cleared);
    crate::stargate::removal(cx);
}

/// The keyspaces whose replication the operator manages.
pub fn system_keyspaces(server_type: ServerType) -> Vec<&'static str> {
    let mut ks: Vec<&str> = labels::SYSTEM_KEYSPACES.to_vec();
    if server_type == ServerType::Dse {
        ks.extend(labels::DSE_KEYSPACES);
    }
    ks
}

fn is_system_keyspace(ks: &str) -> bool {
    ks.starts_with("system") || ks.starts_with("dse_") || ks == "solr_admin" || ks == "OpsCenter"
}

/// Handles a step of an operation: returns the body when done, plans the operation or a
/// requeue otherwise.
pub(crate) fn drive(
    cx: &mut Ctx,
    base: &str,
    target: Option<k8ssandra_policy_sdk::NodeRef>,
    kind: OperationKind,
) -> Option<String> {
    match step(cx.s, base) {
        Step::Done(body) => Some(body),
        Step::Running => {
            cx.plan.requeue_after(POLL_MS);
            None
        }
        Step::Backoff(ms, msg) => {
            cx.errors.push(format!("{base}: {msg} (retrying)"));
            cx.plan.requeue_after(ms);
            None
        }
        Step::Run(id) => {
            if let Some(t) = target {
                cx.plan.operate(id, t, kind);
                cx.plan.requeue_after(POLL_MS * 3);
            }
            None
        }
    }
}

/// Desired system replication: the spec's datacenters that are in the ring, plus the
/// external ones. None while a datacenter is bootstrapping: changing replication during a
/// range movement is refused by Cassandra 3, and the new datacenter is added once it runs.
fn system_desired(cx: &Ctx, cleared: &BTreeSet<String>) -> Option<BTreeMap<String, u32>> {
    if cx.dcs.iter().any(|d| d.exists && !d.initialized) {
        return None;
    }
    let mut want = BTreeMap::new();
    for d in cx.dcs.iter().filter(|d| d.exists && d.initialized) {
        want.insert(d.cass_name.clone(), d.size.clamp(0, 3) as u32);
    }
    if want.is_empty() {
        return None;
    }
    // A removed datacenter keeps its replicas until its removal is cleared: while refused,
    // it still serves its clients.
    for c in cx.removed.iter().filter(|c| !cleared.contains(c.name())) {
        let in_ring = c
            .obj
            .status
            .as_ref()
            .is_some_and(|s| s.is_true(T::Initialized));
        if in_ring {
            want.insert(
                c.obj.datacenter_name().to_string(),
                c.obj.spec.size.clamp(0, 3) as u32,
            );
        }
    }
    for e in cx.kc.spec.external_datacenters.iter().flatten() {
        want.insert(e.clone(), 3);
    }
    Some(want)
}

/// Returns true when every system keyspace has the desired replication.
fn system_replication(cx: &mut Ctx, cleared: &BTreeSet<String>) -> bool {
    let Some(want) = system_desired(cx, cleared) else {
        return false;
    };
    let target = cx.ready_node(None);
    if target.is_none() {
        return false;
    }
    // Outcomes are kept by id: a desired replication seen before (datacenters added, then
    // one removed again) would find the old read and alter and never run them again. The
    // generation makes every spec change read afresh.
    let key = hash(&format!("{:?}/{want:?}", cx.kc.metadata.generation));
    let Some(target) = target else {
        return false;
    };
    let mut done = true;
    for ks in system_keyspaces(cx.kc.server_type()) {
        let base = format!("system-replication/{ks}/{key}");
        done &= ensure_replication(cx, &base, &target, ks, &want);
    }
    if done && cx.kc.has_stargates() {
        cx.stargate_auth_ready = crate::stargate::auth_keyspace(cx, &want, &key);
    }
    done
}

/// Reads the replication of keyspace `ks` and alters it when it is not `want`; true once it
/// is. Operation ids start with `base`.
pub(crate) fn ensure_replication(
    cx: &mut Ctx,
    base: &str,
    target: &k8ssandra_policy_sdk::NodeRef,
    ks: &str,
    want: &BTreeMap<String, u32>,
) -> bool {
    let Some(body) = drive(
        cx,
        &format!("{base}/get"),
        Some(target.clone()),
        OperationKind::GetReplication(ks.to_string()),
    ) else {
        return false;
    };
    if parse_replication(&body).as_ref() == Some(want) {
        return true;
    }
    drive(
        cx,
        &format!("{base}/alter"),
        Some(target.clone()),
        OperationKind::AlterKeyspace(Replication {
            keyspace: ks.to_string(),
            replicas: want.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        }),
    )
    .is_some()
}

/// `k8ssandra.io/dc-replication`: datacenter → keyspace → replicas.
fn dc_replication(cx: &Ctx) -> BTreeMap<String, BTreeMap<String, u32>> {
    cx.kc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(labels::DC_REPLICATION_ANNOTATION))
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default()
}

/// Joins the datacenters added to a running cluster, one at a time.
fn joins(cx: &mut Ctx) {
    let wanted = dc_replication(cx);
    let Some(i) = cx
        .dcs
        .iter()
        .position(|d| d.join.as_deref() == Some(JOIN_PENDING) && d.ready && d.reachable)
    else {
        return;
    };
    let d = cx.dcs[i].clone();
    let Some(target) = cx.ready_node(None) else {
        return;
    };
    // User keyspaces listed for this datacenter: read, then add it.
    let keyspaces = wanted
        .get(&d.cass_name)
        .or_else(|| wanted.get(&d.name))
        .cloned()
        .unwrap_or_default();
    let mut ready = true;
    for (ks, rf) in &keyspaces {
        let base = format!("join/{}/{ks}", d.name);
        let Some(body) = drive(
            cx,
            &format!("{base}/get"),
            Some(target.clone()),
            OperationKind::GetReplication(ks.clone()),
        ) else {
            ready = false;
            continue;
        };
        let Some(mut current) = parse_replication(&body) else {
            cx.errors.push(format!(
                "keyspace {ks} does not use NetworkTopologyStrategy; it cannot be replicated to datacenter {}",
                d.cass_name
            ));
            ready = false;
            continue;
        };
        if current.get(&d.cass_name) == Some(rf) {
            continue;
        }
        current.insert(d.cass_name.clone(), *rf);
        let alter = drive(
            cx,
            &format!("{base}/alter/{}", hash(&format!("{current:?}"))),
            Some(target.clone()),
            OperationKind::AlterKeyspace(Replication {
                keyspace: ks.clone(),
                replicas: current.into_iter().collect(),
            }),
        );
        if alter.is_none() {
            ready = false;
        }
    }
    if !ready {
        return;
    }
    // Rebuild from a ready datacenter that is not this one and holds its data: one still
    // joining would hand on only what it has streamed so far.
    let source = d.rebuild_source.clone().or_else(|| {
        cx.dcs
            .iter()
            .find(|o| o.index != d.index && o.complete())
            .map(|o| o.cass_name.clone())
    });
    let Some(source) = source else {
        // Only the only datacenter has nothing to stream from; otherwise the source is
        // down or still joining for now, and the rebuild waits for it.
        if !cx.dcs.iter().any(|o| o.index != d.index && o.exists) {
            cx.dcs[i].join = Some(JOIN_DONE.into());
        }
        return;
    };
    let pods = cx.pods_of(&d.context, &d.namespace, &d.name);
    if pods.len() < d.size.max(0) as usize {
        return;
    }
    // One node per rack at a time, the racks side by side: the extra streaming load on the
    // source datacenter stays bounded by the number of racks.
    let mut racks: BTreeMap<&str, Vec<&crate::cluster::PodInfo>> = BTreeMap::new();
    for p in &pods {
        racks.entry(p.rack.as_str()).or_default().push(p);
    }
    let mut done = true;
    for rack_pods in racks.values_mut() {
        rack_pods.sort_by(|a, b| a.name.cmp(&b.name));
        for p in rack_pods.iter() {
            let base = format!("join/{}/rebuild/{}/{}", d.name, p.name, p.uid);
            if drive(
                cx,
                &base,
                Some(p.node()),
                OperationKind::Rebuild(source.clone()),
            )
            .is_none()
            {
                done = false;
                break;
            }
        }
    }
    if !done {
        return;
    }
    cx.dcs[i].join = Some(JOIN_DONE.into());
    cx.plan.event(
        EventType::Normal,
        "DatacenterJoined",
        format!("datacenter {} rebuilt from {source}", d.cass_name),
    );
}

/// The user keyspaces still replicating to `dc` (cass name), or None while that is being
/// found out. Checks again every RECHECK_MS while some are.
fn replicating_keyspaces(cx: &mut Ctx, c: &ChildDc) -> Option<Vec<String>> {
    let cass = c.obj.datacenter_name().to_string();
    let target = cx.ready_node(Some(c.name()))?;
    let mut round = 0u32;
    loop {
        let base = format!("removal/{}/{}/{round}", c.name(), c.uid());
        let list = drive(
            cx,
            &format!("{base}/list"),
            Some(target.clone()),
            OperationKind::ListKeyspaces,
        )?;
        let keyspaces: Vec<String> = serde_json::from_str::<Vec<String>>(&list)
            .unwrap_or_default()
            .into_iter()
            .filter(|k| !is_system_keyspace(k))
            // Managed here like the system keyspaces while Stargate is wanted, and about
            // to go when it is to be dropped.
            .filter(|k| !(k == AUTH_KEYSPACE && crate::stargate::auth_keyspace_managed(cx)))
            .collect();
        let mut blocking = Vec::new();
        let mut pending = false;
        for ks in &keyspaces {
            match drive(
                cx,
                &format!("{base}/get/{ks}"),
                Some(target.clone()),
                OperationKind::GetReplication(ks.clone()),
            ) {
                Some(body) => {
                    if parse_replication(&body)
                        .is_some_and(|r| r.get(&cass).is_some_and(|n| *n > 0))
                    {
                        blocking.push(ks.clone());
                    }
                }
                None => pending = true,
            }
        }
        if pending {
            return None;
        }
        if blocking.is_empty() {
            return Some(blocking);
        }
        let next = format!("removal/{}/{}/{}/", c.name(), c.uid(), round + 1);
        if cx.s.results.iter().any(|r| r.id.starts_with(&next)) {
            round += 1;
            continue;
        }
        let last =
            cx.s.results
                .iter()
                .filter(|r| r.id.starts_with(&format!("{base}/")))
                .map(|r| r.at_ms)
                .max()
                .unwrap_or(0);
        let due = last + RECHECK_MS;
        if cx.s.now_ms >= due {
            round += 1;
            continue;
        }
        cx.plan.requeue_after(due - cx.s.now_ms);
        return Some(blocking);
    }
}

/// Which removed datacenters may go: the first one (removals are serialised) once no user
/// keyspace replicates to it, or once its decommission has begun.
fn removal_checks(cx: &mut Ctx) -> BTreeSet<String> {
    let mut cleared = BTreeSet::new();
    if cx.dcs.iter().all(|d| !d.exists) {
        // The whole cluster goes: nothing to keep data for, nobody to stream to.
        for c in &cx.removed {
            cleared.insert(c.name().to_string());
        }
        return cleared;
    }
    let Some(c) = cx.removed.first().cloned() else {
        return cleared;
    };
    let progress = cx
        .prev
        .datacenters
        .as_ref()
        .and_then(|d| d.get(c.name()))
        .and_then(|e| e.decommission_progress.clone())
        .unwrap_or_default();
    if progress == decommission::DECOMMISSIONING {
        cleared.insert(c.name().to_string());
        return cleared;
    }
    match replicating_keyspaces(cx, &c) {
        Some(ks) if ks.is_empty() => {
            cleared.insert(c.name().to_string());
        }
        Some(ks) => {
            let message = format!(
                "cannot remove datacenter {}: keyspaces {} still replicate to it; alter their replication first",
                c.obj.datacenter_name(),
                ks.join(", ")
            );
            cx.condition(REMOVAL_BLOCKED, true, "KeyspacesReplicate", message.clone());
            cx.errors.push(message);
        }
        None => {}
    }
    cleared
}

/// Removes the cleared datacenters: system replication first, then their nodes.
fn removals(cx: &mut Ctx, system_done: bool, cleared: &BTreeSet<String>) {
    let removed = cx.removed.clone();
    let no_peers = cx.dcs.iter().all(|d| !d.exists);
    for c in &removed {
        let name = c.name().to_string();
        if no_peers {
            continue;
        }
        if !cleared.contains(&name) {
            cx.removing.insert(name, String::new());
            continue;
        }
        let progress = cx
            .prev
            .datacenters
            .as_ref()
            .and_then(|d| d.get(&name))
            .and_then(|e| e.decommission_progress.clone())
            .unwrap_or_default();
        // System keyspaces stop replicating to it before its nodes leave.
        if progress != decommission::DECOMMISSIONING && !system_done {
            cx.removing
                .insert(name, decommission::UPDATING_REPLICATION.into());
            continue;
        }
        if decommission_nodes(cx, c) {
            cx.plan.event(
                EventType::Normal,
                "DatacenterRemoved",
                format!(
                    "every node of datacenter {} was decommissioned",
                    c.obj.datacenter_name()
                ),
            );
        } else {
            cx.removing
                .insert(name, decommission::DECOMMISSIONING.into());
        }
    }
}

/// Decommissions the removed datacenter's nodes one at a time; true when none is left in
/// the ring.
fn decommission_nodes(cx: &mut Ctx, c: &ChildDc) -> bool {
    // Never during another range movement: a bootstrapping datacenter elsewhere waits.
    if cx.dcs.iter().any(|d| d.exists && !d.ready) {
        return false;
    }
    let ring = util::ring(cx.s, |n| {
        cx.pods
            .iter()
            .any(|p| p.cluster == n.cluster && p.namespace == n.namespace && p.name == n.pod)
    });
    let mut pods = cx.pods_of(&c.cluster, c.namespace(), c.name());
    pods.sort_by(|a, b| b.name.cmp(&a.name));
    for p in &pods {
        let base = format!("decommission/{}/{}", p.name, p.uid);
        let finished = matches!(step(cx.s, &base), Step::Done(_));
        let in_ring = match (&ring, &p.ip) {
            (Some(r), Some(ip)) => r.get(ip).is_some_and(|e| e.status != "LEFT"),
            // Without a gossip view, trust the operation's outcome.
            _ => !finished,
        };
        if !in_ring {
            continue;
        }
        let leaving = ring
            .as_ref()
            .zip(p.ip.as_ref())
            .and_then(|(r, ip)| r.get(ip))
            .is_some_and(|e| e.status == "LEAVING");
        if leaving || finished {
            // Already on its way out (maybe asked before a restart): wait for it.
            cx.plan.requeue_after(POLL_MS);
            return false;
        }
        drive(cx, &base, Some(p.node()), OperationKind::Decommission);
        return false;
    }
    // Nodes of that datacenter the ring still knows but no pod runs (a stopped datacenter,
    // a lost pod) cannot be decommissioned: the datacenter stays until they are removed.
    let cass = c.obj.datacenter_name().to_string();
    if let Some(r) = &ring {
        let orphans: Vec<&str> = r
            .values()
            .filter(|e| e.dc == cass && e.status != "LEFT")
            .map(|e| e.ip.as_str())
            .collect();
        if !orphans.is_empty() {
            cx.errors.push(format!(
                "datacenter {cass}: nodes {} are in the ring without a running pod; start them or remove them (nodetool removenode) to finish the removal",
                orphans.join(", ")
            ));
            cx.plan.requeue_after(POLL_MS * 3);
            return false;
        }
    }
    true
}
