//! The Reaper operation kinds of a plan (`reaper-*`, WIT 0.4.0), run against the REST API
//! of the Reaper pod the operation targets.
//!
//! Where and how to call is the host's business: the port is the one the pod's `reaper`
//! container names `app` (8080 when it names none), and the UI user's credentials come
//! from the Secret the operation names (keys `username`, `password`, in the pod's
//! namespace and cluster), so a policy never sees them.
//!
//! What the kinds guarantee beyond a single REST call:
//! - `reaper-add-cluster` sends nothing when Reaper knows the cluster already;
//! - the schedule kinds never change a schedule of another owner than the one given;
//! - `reaper-update-schedule` refuses a change Reaper cannot make in place (keyspace,
//!   tables, datacenters, nodes, incremental, blacklist, thread count), naming the field;
//! - `reaper-remove-cluster` deletes the schedules owned by [`OPERATOR_OWNER`] (pausing
//!   them first), refuses while schedules of other owners or a running repair remain, and
//!   only then deletes the cluster with Reaper's `force`: with no foreign schedule and no
//!   running run left, `force` only takes the finished runs' records along (Reaper refuses
//!   to forget a cluster that has any);
//! - `reaper-repair` creates the run, starts it and follows it to its end.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use serde::Serialize;
use tracing::{debug, info};

use super::client::{Password, backoff};
use super::executor::SecretReader;
use super::reaper::{
    Credentials, DEFAULT_PORT, Parallelism, ReaperClient, ReaperEndpoint, ReaperError,
    ReaperSchedule, RepairSpec, SchedulePatch, ScheduleSpec,
};
use crate::clusters::ClusterRegistry;
use crate::plugin::bindings::{
    self, NodeRef, Operation, OperationKind, ReaperRepair, RepairParallelism,
};

/// The owner the operator's own schedules carry; `reaper-remove-cluster` deletes those.
pub const OPERATOR_OWNER: &str = "k8ssandra-operator";
const REAPER_CONTAINER: &str = "reaper";
const APP_PORT_NAME: &str = "app";
/// Consecutive failed polls of a repair run after which it is reported lost.
const MAX_POLL_ERRORS: u32 = 10;

/// One client for the process: its connection pool and token cache are shared by every
/// operation, so a Reaper is logged in to once, not once per operation.
static CLIENT: LazyLock<ReaperClient> = LazyLock::new(ReaperClient::default);

/// What the executor needs to run Reaper operations.
#[derive(Clone)]
pub struct ReaperAccess {
    pub clusters: ClusterRegistry,
}

/// Runs one `reaper-*` operation against the Reaper pod at `address`; the error is the
/// message for `failed(..)`.
pub async fn perform(
    access: &ReaperAccess,
    secrets: &Arc<dyn SecretReader>,
    op: &Operation,
    address: &str,
) -> Result<String, String> {
    perform_with_progress(access, secrets, op, address, &|_| {}).await
}

/// [`perform`], calling `running` with a repair run's id once it runs (for the
/// `running(<run id>)` outcome).
pub async fn perform_with_progress(
    access: &ReaperAccess,
    secrets: &Arc<dyn SecretReader>,
    op: &Operation,
    address: &str,
    running: &(dyn Fn(&str) + Send + Sync),
) -> Result<String, String> {
    let ui_secret = ui_secret(&op.kind)
        .ok_or_else(|| format!("operation {}: not a Reaper operation", op.id))?;
    let port = app_port(access, &op.target).await?;
    let credentials = match ui_secret {
        None => None,
        Some(name) => Some(read_credentials(secrets, &op.target, name).await?),
    };
    let ep = ReaperEndpoint::at(address, port, credentials);
    run_kind(&CLIENT, &ep, &op.kind, running).await
}

/// The UI Secret an operation names; None (outer) for a kind that is not Reaper's.
fn ui_secret(kind: &OperationKind) -> Option<Option<&str>> {
    let access = match kind {
        OperationKind::ReaperListClusters(a) => a,
        OperationKind::ReaperAddCluster(c) => &c.access,
        OperationKind::ReaperRemoveCluster(c) | OperationKind::ReaperListSchedules(c) => &c.access,
        OperationKind::ReaperListRuns(c) => &c.access,
        OperationKind::ReaperCreateSchedule(s) => &s.repair.access,
        OperationKind::ReaperUpdateSchedule(u) => &u.schedule.repair.access,
        OperationKind::ReaperSetScheduleState(s) => &s.schedule.access,
        OperationKind::ReaperDeleteSchedule(s) => &s.access,
        OperationKind::ReaperRepair(r) => &r.access,
        _ => return None,
    };
    Some(access.ui_secret.as_deref().filter(|s| !s.is_empty()))
}

/// The port of the target pod's `reaper` container named `app`.
async fn app_port(access: &ReaperAccess, target: &NodeRef) -> Result<u16, String> {
    let client = access
        .clusters
        .client(&target.cluster)
        .ok_or_else(|| format!("cluster {:?} is not reachable", target.cluster))?;
    let pods: Api<Pod> = Api::namespaced(client, &target.namespace);
    let pod = pods
        .get_opt(&target.pod)
        .await
        .map_err(|e| format!("reading pod {}/{}: {e}", target.namespace, target.pod))?
        .ok_or_else(|| format!("pod {}/{} no longer exists", target.namespace, target.pod))?;
    app_port_of(&pod).ok_or_else(|| {
        format!(
            "pod {}/{} has no {REAPER_CONTAINER} container: it is not a Reaper pod",
            target.namespace, target.pod
        )
    })
}

fn app_port_of(pod: &Pod) -> Option<u16> {
    let c = pod
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == REAPER_CONTAINER)?;
    Some(
        c.ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(APP_PORT_NAME))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .unwrap_or(DEFAULT_PORT),
    )
}

async fn read_credentials(
    secrets: &Arc<dyn SecretReader>,
    target: &NodeRef,
    name: &str,
) -> Result<Credentials, String> {
    let data = secrets
        .read(&target.cluster, &target.namespace, name)
        .await
        .map_err(|e| format!("the Reaper UI Secret: {e}"))?;
    let key = |k: &str| {
        data.get(k)
            .map(|v| String::from_utf8_lossy(v).trim().to_string())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                format!(
                    "Secret {}/{name} (the Reaper UI user) has no {k:?} key",
                    target.namespace
                )
            })
    };
    Ok(Credentials {
        username: key("username")?,
        password: Password::new(key("password")?),
    })
}

fn json<T: Serialize>(value: &T) -> Result<String, String> {
    serde_json::to_string(value).map_err(|e| format!("encoding Reaper's answer: {e}"))
}

fn err(e: ReaperError) -> String {
    e.to_string()
}

fn parallelism(p: RepairParallelism) -> Parallelism {
    match p {
        RepairParallelism::Sequential => Parallelism::Sequential,
        RepairParallelism::Parallel => Parallelism::Parallel,
        RepairParallelism::DatacenterAware => Parallelism::DatacenterAware,
    }
}

/// A repair as the client sends it, after the checks Reaper would make too (so the
/// message names the field).
fn repair_spec(r: &ReaperRepair) -> Result<RepairSpec, String> {
    if r.cluster_name.trim().is_empty() {
        return Err("cluster-name is empty".into());
    }
    if r.keyspace.trim().is_empty() {
        return Err("keyspace is empty".into());
    }
    if r.owner.trim().is_empty() {
        return Err("owner is empty: Reaper records who owns every repair".into());
    }
    if !(r.intensity > 0.0 && r.intensity <= 1.0) {
        return Err(format!(
            "intensity {} is outside (0, 1]: it is the share of time spent repairing",
            r.intensity
        ));
    }
    Ok(RepairSpec {
        cluster_name: r.cluster_name.clone(),
        keyspace: r.keyspace.clone(),
        tables: r.tables.clone(),
        blacklisted_tables: r.blacklisted_tables.clone(),
        datacenters: r.datacenters.clone(),
        nodes: r.nodes.clone(),
        owner: r.owner.clone(),
        parallelism: parallelism(r.parallelism),
        intensity: r.intensity,
        incremental: r.incremental,
        segment_count_per_node: r.segment_count_per_node,
        repair_thread_count: r.repair_thread_count,
        timeout_minutes: r.timeout_minutes,
        cause: r.cause.clone(),
    })
}

fn schedule_spec(s: &bindings::ReaperSchedule) -> Result<ScheduleSpec, String> {
    if s.days_between > 31 {
        return Err(format!(
            "days-between {} is above 31, the most Reaper accepts",
            s.days_between
        ));
    }
    if let Some(p) = s.percent_unrepaired_threshold
        && p > 99
    {
        return Err(format!(
            "percent-unrepaired-threshold {p} is above 99, the most Reaper accepts"
        ));
    }
    Ok(ScheduleSpec {
        repair: repair_spec(&s.repair)?,
        days_between: s.days_between,
        trigger_time: s.trigger_time.clone().filter(|t| !t.is_empty()),
        adaptive: s.adaptive,
        percent_unrepaired_threshold: s.percent_unrepaired_threshold,
    })
}

/// The schedule `id`, checked to belong to `owner`.
async fn owned_schedule(
    client: &ReaperClient,
    ep: &ReaperEndpoint,
    id: &str,
    owner: &str,
) -> Result<Option<ReaperSchedule>, String> {
    let Some(s) = client.get_schedule(ep, id).await.map_err(err)? else {
        return Ok(None);
    };
    if !s.owner.eq_ignore_ascii_case(owner) {
        return Err(format!(
            "repair schedule {id} is owned by {:?}, not {owner:?}: the host never changes another owner's schedule",
            s.owner
        ));
    }
    Ok(Some(s))
}

/// The fields of an update Reaper cannot change in place, compared with the schedule.
fn immutable_changes(current: &ReaperSchedule, wanted: &ScheduleSpec) -> Vec<&'static str> {
    let r = &wanted.repair;
    let same_set = |a: &[String], b: &[String]| {
        let mut a = a.to_vec();
        let mut b = b.to_vec();
        a.sort();
        b.sort();
        a == b
    };
    let mut out = Vec::new();
    if current.keyspace != r.keyspace {
        out.push("keyspace");
    }
    // Reaper lists every table of the keyspace for a schedule created without tables.
    if !r.tables.is_empty() && !same_set(&current.tables, &r.tables) {
        out.push("tables");
    }
    if !same_set(&current.blacklisted_tables, &r.blacklisted_tables) {
        out.push("blacklisted-tables");
    }
    if !same_set(&current.datacenters, &r.datacenters) {
        out.push("datacenters");
    }
    if !same_set(&current.nodes, &r.nodes) {
        out.push("nodes");
    }
    if current.incremental != r.incremental {
        out.push("incremental");
    }
    if let Some(n) = r.repair_thread_count
        && current.repair_thread_count != Some(n)
    {
        out.push("repair-thread-count");
    }
    out
}

/// Runs one Reaper kind against a Reaper; `running` hears a repair run's id once it runs.
pub async fn run_kind(
    client: &ReaperClient,
    ep: &ReaperEndpoint,
    kind: &OperationKind,
    running: &(dyn Fn(&str) + Send + Sync),
) -> Result<String, String> {
    match kind {
        OperationKind::ReaperListClusters(_) => json(&client.list_clusters(ep).await.map_err(err)?),
        OperationKind::ReaperAddCluster(c) => {
            if let Some(known) = client.get_cluster(ep, &c.name).await.map_err(err)? {
                debug!(reaper = %ep.base_url, cluster = %c.name, "Reaper knows the cluster already");
                return json(&known);
            }
            client
                .add_cluster(ep, &c.name, &c.seed_hosts, c.jmx_port)
                .await
                .map_err(err)?;
            let added = client.get_cluster(ep, &c.name).await.map_err(err)?;
            match added {
                Some(added) => json(&added),
                None => Err(format!(
                    "Reaper accepted cluster {} but does not list it afterwards",
                    c.name
                )),
            }
        }
        OperationKind::ReaperRemoveCluster(c) => remove_cluster(client, ep, &c.name).await,
        OperationKind::ReaperListSchedules(c) => {
            json(&client.list_schedules(ep, &c.name).await.map_err(err)?)
        }
        OperationKind::ReaperCreateSchedule(s) => {
            let spec = schedule_spec(s)?;
            let made = client.create_schedule(ep, &spec).await.map_err(err)?;
            // Reaper keeps one schedule per repair unit and answers a second one with the
            // schedule it has: another owner's is reported, never taken over.
            if !made.owner.eq_ignore_ascii_case(&spec.repair.owner) {
                return Err(format!(
                    "Reaper already holds repair schedule {} of owner {:?} for keyspace {} and these tables; it keeps one schedule per keyspace and tables, and the host never takes over another owner's",
                    made.id, made.owner, made.keyspace
                ));
            }
            json(&made)
        }
        OperationKind::ReaperUpdateSchedule(u) => {
            let spec = schedule_spec(&u.schedule)?;
            let current = owned_schedule(client, ep, &u.id, &spec.repair.owner)
                .await?
                .ok_or_else(|| format!("repair schedule {} does not exist", u.id))?;
            let fixed = immutable_changes(&current, &spec);
            if !fixed.is_empty() {
                return Err(format!(
                    "repair schedule {} cannot change {} in place (Reaper changes only owner, parallelism, intensity, days between, segment count, adaptive and threshold): delete it and create a new one",
                    u.id,
                    fixed.join(", ")
                ));
            }
            let patch = SchedulePatch {
                owner: Some(spec.repair.owner.clone()),
                parallelism: Some(spec.repair.parallelism),
                intensity: Some(spec.repair.intensity),
                days_between: Some(spec.days_between),
                segment_count_per_node: spec.repair.segment_count_per_node,
                adaptive: Some(spec.adaptive),
                percent_unrepaired_threshold: spec.percent_unrepaired_threshold.map(i64::from),
            };
            json(
                &client
                    .patch_schedule(ep, &u.id, &patch)
                    .await
                    .map_err(err)?,
            )
        }
        OperationKind::ReaperSetScheduleState(s) => {
            let r = &s.schedule;
            let current = owned_schedule(client, ep, &r.id, &r.owner)
                .await?
                .ok_or_else(|| format!("repair schedule {} does not exist", r.id))?;
            let wanted = if s.active { "ACTIVE" } else { "PAUSED" };
            if current.state == wanted {
                return json(&current);
            }
            json(
                &client
                    .set_schedule_state(ep, &r.id, s.active)
                    .await
                    .map_err(err)?,
            )
        }
        OperationKind::ReaperDeleteSchedule(r) => {
            let Some(current) = owned_schedule(client, ep, &r.id, &r.owner).await? else {
                return Ok(String::new());
            };
            delete_schedule(client, ep, &current).await?;
            Ok(String::new())
        }
        OperationKind::ReaperListRuns(c) => {
            json(&client.list_runs(ep, &c.name).await.map_err(err)?)
        }
        OperationKind::ReaperRepair(r) => repair(client, ep, r, running).await,
        _ => Err("not a Reaper operation".into()),
    }
}

/// Pauses (Reaper deletes only paused schedules) and deletes one schedule.
async fn delete_schedule(
    client: &ReaperClient,
    ep: &ReaperEndpoint,
    s: &ReaperSchedule,
) -> Result<(), String> {
    if s.state != "PAUSED" {
        client
            .set_schedule_state(ep, &s.id, false)
            .await
            .map_err(err)?;
    }
    client
        .delete_schedule(ep, &s.id, &s.owner)
        .await
        .map_err(err)?;
    info!(reaper = %ep.base_url, schedule = %s.id, keyspace = %s.keyspace, "repair schedule deleted");
    Ok(())
}

async fn remove_cluster(
    client: &ReaperClient,
    ep: &ReaperEndpoint,
    name: &str,
) -> Result<String, String> {
    if client.get_cluster(ep, name).await.map_err(err)?.is_none() {
        return Ok(String::new());
    }
    let schedules = client.list_schedules(ep, name).await.map_err(err)?;
    let (ours, theirs): (Vec<_>, Vec<_>) = schedules
        .into_iter()
        .partition(|s| s.owner.eq_ignore_ascii_case(OPERATOR_OWNER));
    if !theirs.is_empty() {
        let list: Vec<String> = theirs
            .iter()
            .map(|s| format!("{} (owner {:?}, keyspace {})", s.id, s.owner, s.keyspace))
            .collect();
        return Err(format!(
            "cluster {name} still has repair schedules of other owners: {}; the host never deletes them, and Reaper would delete them with the cluster",
            list.join(", ")
        ));
    }
    let running: Vec<String> = client
        .list_runs(ep, name)
        .await
        .map_err(err)?
        .into_iter()
        .filter(|r| matches!(r.state.as_str(), "RUNNING" | "PAUSED"))
        .map(|r| format!("{} ({}, keyspace {})", r.id, r.state, r.keyspace))
        .collect();
    if !running.is_empty() {
        return Err(format!(
            "cluster {name} has repair runs in progress: {}; stop them first",
            running.join(", ")
        ));
    }
    for s in &ours {
        delete_schedule(client, ep, s).await?;
    }
    client.delete_cluster(ep, name, true).await.map_err(err)?;
    info!(reaper = %ep.base_url, cluster = name, "cluster deregistered from Reaper");
    Ok(String::new())
}

async fn repair(
    client: &ReaperClient,
    ep: &ReaperEndpoint,
    r: &ReaperRepair,
    running: &(dyn Fn(&str) + Send + Sync),
) -> Result<String, String> {
    let spec = repair_spec(r)?;
    let run = client.create_run(ep, &spec).await.map_err(err)?;
    client
        .set_run_state(ep, &run.id, "RUNNING")
        .await
        .map_err(err)?;
    info!(reaper = %ep.base_url, run = %run.id, keyspace = %r.keyspace, "repair run started");
    running(&run.id);
    let mut polls = 0u32;
    let mut errors = 0u32;
    loop {
        polls = polls.saturating_add(1);
        tokio::time::sleep(backoff(
            Duration::from_millis(250),
            Duration::from_secs(5),
            polls,
        ))
        .await;
        match client.get_run(ep, &run.id).await {
            Ok(Some(now)) => {
                errors = 0;
                if !now.is_over() {
                    continue;
                }
                if now.state == "DONE" {
                    return json(&now);
                }
                return Err(format!(
                    "repair run {} of keyspace {} ended {} after {}/{} segments: {}",
                    now.id,
                    now.keyspace,
                    now.state,
                    now.segments_repaired,
                    now.total_segments,
                    now.last_event.as_deref().unwrap_or("no event recorded")
                ));
            }
            Ok(None) => {
                return Err(format!(
                    "Reaper no longer knows repair run {} (deleted, or its storage lost)",
                    run.id
                ));
            }
            Err(e) => {
                errors += 1;
                debug!(run = %run.id, errors, error = %e, "polling the repair run failed");
                if errors >= MAX_POLL_ERRORS {
                    return Err(format!(
                        "lost track of repair run {} after {errors} failed polls: {e}",
                        run.id
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repair() -> ReaperRepair {
        ReaperRepair {
            access: bindings::ReaperAccess { ui_secret: None },
            cluster_name: "demo".into(),
            keyspace: "ks".into(),
            tables: vec![],
            blacklisted_tables: vec![],
            datacenters: vec![],
            nodes: vec![],
            owner: OPERATOR_OWNER.into(),
            parallelism: RepairParallelism::DatacenterAware,
            intensity: 0.5,
            incremental: false,
            segment_count_per_node: None,
            repair_thread_count: None,
            timeout_minutes: None,
            cause: "test".into(),
        }
    }

    fn secrets(data: &[(&str, &str)]) -> Arc<dyn SecretReader> {
        let data: super::super::executor::SecretData = data
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        Arc::new(move |_: String, _: String, _: String| {
            let data = data.clone();
            async move { Ok::<_, super::super::error::SecretError>(data) }
        })
    }

    fn target() -> NodeRef {
        NodeRef {
            cluster: String::new(),
            namespace: "ns".into(),
            pod: "reaper-0".into(),
        }
    }

    #[tokio::test]
    async fn the_ui_secret_gives_the_credentials_and_a_missing_key_is_named() {
        let ok = secrets(&[("username", "ui"), ("password", "pw-123")]);
        let c = read_credentials(&ok, &target(), "demo-reaper-ui")
            .await
            .unwrap();
        assert_eq!(c.username, "ui");
        assert_eq!(c.password.expose(), "pw-123");
        assert!(!format!("{c:?}").contains("pw-123"));
        let partial = secrets(&[("username", "ui")]);
        let e = read_credentials(&partial, &target(), "demo-reaper-ui")
            .await
            .unwrap_err();
        assert!(
            e.contains("ns/demo-reaper-ui") && e.contains("\"password\""),
            "{e}"
        );
    }

    #[test]
    fn intensity_outside_its_range_is_named() {
        let mut r = repair();
        r.intensity = 1.5;
        let e = repair_spec(&r).unwrap_err();
        assert!(e.contains("intensity") && e.contains("(0, 1]"), "{e}");
        r.intensity = 0.0;
        assert!(repair_spec(&r).is_err());
        r.intensity = 1.0;
        assert!(repair_spec(&r).is_ok());
    }

    #[test]
    fn the_port_is_the_reaper_containers_app_port() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "r"},
            "spec": {"containers": [
                {"name": "reaper-vector-agent", "ports": [{"name": "app", "containerPort": 1}]},
                {"name": "reaper", "ports": [{"name": "admin", "containerPort": 8081}, {"name": "app", "containerPort": 9090}]}
            ]}
        }))
        .unwrap();
        assert_eq!(app_port_of(&pod), Some(9090));
        let unnamed: Pod = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "r"}, "spec": {"containers": [{"name": "reaper"}]}}),
        )
        .unwrap();
        assert_eq!(app_port_of(&unnamed), Some(DEFAULT_PORT));
    }

    #[test]
    fn fields_reaper_cannot_patch_are_named() {
        let current = ReaperSchedule {
            id: "s".into(),
            owner: OPERATOR_OWNER.into(),
            state: "ACTIVE".into(),
            keyspace: "ks".into(),
            tables: vec!["a".into(), "b".into()],
            blacklisted_tables: vec![],
            datacenters: vec![],
            nodes: vec![],
            parallelism: Some(Parallelism::DatacenterAware),
            intensity: 0.5,
            incremental: false,
            days_between: 7,
            segment_count_per_node: None,
            repair_thread_count: Some(1),
            adaptive: false,
            percent_unrepaired_threshold: None,
            next_activation: None,
        };
        let mut s = ScheduleSpec {
            repair: repair_spec(&repair()).unwrap(),
            days_between: 3,
            trigger_time: None,
            adaptive: false,
            percent_unrepaired_threshold: None,
        };
        assert!(immutable_changes(&current, &s).is_empty());
        s.repair.tables = vec!["b".into(), "a".into()];
        assert!(immutable_changes(&current, &s).is_empty());
        s.repair.incremental = true;
        s.repair.repair_thread_count = Some(2);
        assert_eq!(
            immutable_changes(&current, &s),
            vec!["incremental", "repair-thread-count"]
        );
    }
}
