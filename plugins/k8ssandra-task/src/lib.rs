//! The built-in `k8ssandra-task` policy: a K8ssandraTask (`control.k8ssandra.io/v1alpha1`)
//! runs a CassandraTask in each datacenter of a K8ssandraCluster, in the datacenter's own
//! Kubernetes cluster and namespace, one datacenter after the other (`dcConcurrencyPolicy:
//! Forbid`, the default) or all at once (`Allow`), and sums up their progress. The
//! CassandraTasks are run by the `cassandra-task` policy of the operator in each cluster;
//! this one only reads their status.
//!
//! Module map:
//! - [`task`]: the reconcile (order, creation, status, TTL);
//! - [`status`]: reading a CassandraTask's status, totals, conditions;
//! - [`validate`]: rules naming the offending field.

pub mod status;
pub mod task;
pub mod validate;

use k8ssandra_policy_sdk::{
    KindRef, Plan, PluginInfo, Policy, PolicyError, ReadSpec, Snapshot, Violation, export_policy,
};

pub const NAME: &str = "k8ssandra-task";
pub const PARENT_API_VERSION: &str = "control.k8ssandra.io/v1alpha1";
pub const PARENT_KIND: &str = "K8ssandraTask";

pub struct K8ssandraTaskPolicy;

impl Policy for K8ssandraTaskPolicy {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            parent: KindRef::new(PARENT_API_VERSION, PARENT_KIND),
            // In every cluster that has a target datacenter.
            owns: vec![KindRef::new(
                task::CASSANDRA_TASK_API_VERSION,
                task::CASSANDRA_TASK_KIND,
            )],
            // The K8ssandraCluster lives beside the task, in the control plane: where each
            // datacenter runs (context, namespace) and in which order.
            reads: vec![ReadSpec::new(
                "k8ssandra.io/v1alpha1",
                "K8ssandraCluster",
                "",
            )],
            observe_pods: None,
            decorates: None,
        }
    }

    fn reconcile(snapshot: Snapshot) -> Result<Plan, PolicyError> {
        task::reconcile(&snapshot)
    }

    fn validate(object: String, old: Option<String>) -> Vec<Violation> {
        validate::validate(&object, old.as_deref())
    }
}

export_policy!(K8ssandraTaskPolicy);

#[cfg(test)]
mod tests;
