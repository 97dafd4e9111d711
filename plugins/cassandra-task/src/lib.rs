//! The built-in `cassandra-task` policy: a CassandraTask (`control.k8ssandra.io/v1alpha1`)
//! runs its jobs on the pods of one CassandraDatacenter and records per-pod progress.
//!
//! Module map:
//! - [`model`]: what one reconcile knows (the task, its datacenter, that datacenter's pods
//!   and node states, the other tasks of the datacenter) and RFC 3339 time helpers;
//! - [`decide`]: the decisions (when the task may start, which pod is next, retries,
//!   restarts, replacements, the status and the TTL deletion);
//! - [`validate`]: rules beyond the schema, for admission and for a task that cannot run.
//!
//! How commands run:
//! - `cleanup`, `upgradesstables`, `compact`, `flush`, `scrub`, `garbagecollect` and
//!   `rebuild` are management-API operations run by the host. Operation ids are
//!   `task/<task uid>/<job index>/<pod>/<attempt>`, the attempt being the pod's retry count,
//!   so a repeated plan never starts a pod twice. A job id the host reported is kept in
//!   `podStatuses[pod].jobId`; after an operator restart (the host forgot its outcomes) the
//!   job is followed with `job-status` operations (`<id>/poll/<n>`) instead of started again.
//! - `restart` deletes pods (their StatefulSet recreates them, the cassandra-datacenter
//!   policy starts Cassandra): rack by rack in the datacenter's rack order, one pod at a time
//!   and only while every node of the datacenter is ready, so never more than one node is
//!   down. With `args.fast`, up to `maxConcurrentPods` pods (the whole rack when unset) of the
//!   current rack go at once while the other racks are ready. A pod counts as restarted when
//!   its live pod was created after the task (or its `scheduledTime`) and is ready. The
//!   delete goes with a drain operation `task/<uid>/<job>/<pod>/restart` (what the preStop
//!   hook does anyway): the host knows its outcome at once, so the next reconcile, whose
//!   copy of the task's status and pods may still be the old one, does not delete the new
//!   pod again.
//! - `replacenode` (`args.pod_name`): the task is the user's explicit request to drop that
//!   node's data. When its turn comes (every other node ready) the pod is marked RUNNING;
//!   the cassandra-datacenter policy reads the running tasks of its datacenter, takes that
//!   as a replacement request like one in `spec.replaceNodes`, deletes the pod and its data
//!   claims (it knows the claim-backed volumes and the seed labels of its StatefulSets) and
//!   starts the recreated, empty node with `replace_ip` set to the node's recorded address.
//!   The task completes when the recreated pod is ready, and fails the pod when the
//!   datacenter refuses (no recorded address: `ReplacingNodes=False`, `UnknownNode`).
//! - `move`, `refresh` and `tsreload` have no operation kind in the policy contract: such a
//!   job fails with a message naming the command, and `validate` refuses it up front.
//!
//! Jobs run in order; the index of the job in progress is kept in the `Running` condition's
//! message (`job <i>/<n>: <name>`), and `podStatuses` and the `active`/`succeeded`/`failed`
//! counts describe the job in progress (the last job once the task finished). A job starts
//! only once pods of the datacenter are visible (a stopped datacenter makes it wait), and a
//! started task whose datacenter is momentarily not in the snapshot keeps its progress.
//!
//! Not covered: datacenters in another namespace than the task (the host reads related
//! objects in the parent's namespace only; such a task fails), `concurrencyPolicy: Replace`
//! (treated as `Forbid`), the `DatacenterUpdated` condition (restarts go pod by pod, never
//! through the datacenter's spec), `args.new_tokens`, scrub/compact flags beyond the table
//! scope (`no_validate`, `no_snapshot`, `skip_corrupted`, `split_output`, token ranges are
//! not in the operation contract), a timeout for a restarted pod that never becomes ready,
//! and a delete precondition on the pod's uid (the plan has none; right after an operator
//! restart, a stale task status and a stale pod cache together could still delete a pod
//! twice).

pub mod decide;
pub mod model;
pub mod validate;

use k8ssandra_api::control::CassandraTask;
use k8ssandra_api::labels::DATACENTER_LABEL;
use k8ssandra_policy_sdk::{
    KindRef, Plan, PluginInfo, Policy, PolicyError, ReadSpec, Snapshot, Violation, export_policy,
    violation,
};

pub const NAME: &str = "cassandra-task";
pub const PARENT_API_VERSION: &str = "control.k8ssandra.io/v1alpha1";
pub const PARENT_KIND: &str = "CassandraTask";
pub const DATACENTER_API_VERSION: &str = "cassandra.datastax.com/v1beta1";
pub const DATACENTER_KIND: &str = "CassandraDatacenter";

pub struct CassandraTaskPolicy;

impl Policy for CassandraTaskPolicy {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            parent: KindRef::new(PARENT_API_VERSION, PARENT_KIND),
            owns: vec![],
            reads: vec![
                ReadSpec::new(DATACENTER_API_VERSION, DATACENTER_KIND, ""),
                // Cassandra pods only (the host refuses an unselected Pod watch).
                ReadSpec::new("v1", "Pod", DATACENTER_LABEL),
                // The other tasks, for concurrencyPolicy.
                ReadSpec::new(PARENT_API_VERSION, PARENT_KIND, ""),
            ],
            observe_pods: Some(DATACENTER_LABEL.to_string()),
            decorates: None,
        }
    }

    fn reconcile(snapshot: Snapshot) -> Result<Plan, PolicyError> {
        decide::reconcile(&snapshot)
    }

    fn validate(object: String, _old: Option<String>) -> Vec<Violation> {
        match serde_json::from_str::<CassandraTask>(&object) {
            Ok(task) => validate::check_spec(&task),
            Err(e) => vec![violation("spec", format!("does not parse: {e}"))],
        }
    }
}

export_policy!(CassandraTaskPolicy);

#[cfg(test)]
mod tests;
