//! The built-in `k8ssandra-cluster` policy: a K8ssandraCluster (`k8ssandra.io/v1alpha1`)
//! becomes one CassandraDatacenter per `spec.cassandra.datacenters[]` entry, each in the
//! Kubernetes cluster its `k8sContext` names, plus the superuser Secret replicated to those
//! clusters, and the cluster-wide Cassandra work no single datacenter can do: system keyspace
//! replication, joining a datacenter to a running cluster (replication + rebuild), and
//! removing one (replication, then decommission of its nodes).
//!
//! Module map:
//! - [`dc`]: the option merge and the generated CassandraDatacenter;
//! - [`cluster`]: the reconcile (rollout order, seeds, secrets, status);
//! - [`keyspaces`]: data-plane work (system replication, join, removal);
//! - [`medusa`]: Medusa's Secret, ConfigMap and containers in the datacenters' pods, and
//!   each datacenter's purge schedule;
//! - [`reaper`]: Reaper's Secrets, role and keyspace, and a Reaper object per datacenter;
//! - [`stargate`]: a Stargate object per datacenter and the Stargate auth keyspace;
//! - [`telemetry`]: telemetry, audit and full-query-logging fields handed to the datacenters;
//! - [`validate`]: admission rules naming the offending field;
//! - [`util`]: time, hashing, operation retries, gossip parsing.
//!
//! Progress lives where it survives a restart without widening the CRD's status schema
//! (whose unknown fields the API server prunes): replication is re-read (`GetReplication`)
//! rather than remembered, a joining datacenter carries `k8ssandra.io/join-state` on its
//! CassandraDatacenter, a removal its `status.datacenters[].decommissionProgress`, and the
//! gossip view tells which nodes already left.
//!
//! Not covered here: Reaper's JMX settings (`httpManagement.enabled: false`), encryption
//! stores and per-node ConfigMaps, and the `once` value of `k8ssandra.io/autoupdate-spec`
//! behaves like `always` (a plan cannot remove the parent's annotation).

pub mod cluster;
pub mod dc;
pub mod keyspaces;
pub mod medusa;
pub mod reaper;
pub mod stargate;
pub mod telemetry;
pub mod util;
pub mod validate;

use k8ssandra_api::labels::{CLUSTER_LABEL, K8SSANDRA_CLUSTER_NAME_LABEL};
use k8ssandra_policy_sdk::{
    KindRef, Plan, PluginInfo, Policy, PolicyError, ReadSpec, Snapshot, Violation, export_policy,
};

pub const NAME: &str = "k8ssandra-cluster";
pub const PARENT_API_VERSION: &str = "k8ssandra.io/v1alpha1";
pub const PARENT_KIND: &str = "K8ssandraCluster";

pub struct K8ssandraClusterPolicy;

impl Policy for K8ssandraClusterPolicy {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            parent: KindRef::new(PARENT_API_VERSION, PARENT_KIND),
            owns: vec![
                KindRef::new("cassandra.datastax.com/v1beta1", "CassandraDatacenter"),
                KindRef::new("replication.k8ssandra.io/v1alpha1", "ReplicatedSecret"),
                KindRef::new(stargate::API_VERSION, stargate::KIND),
                KindRef::new(reaper::API_VERSION, reaper::KIND),
                KindRef::new("v1", "ConfigMap"),
                // Medusa's purge schedule of each datacenter.
                KindRef::new(medusa::CONFIGURATION_API_VERSION, medusa::SCHEDULE_KIND),
            ],
            reads: vec![
                // Cassandra pods everywhere: seeds for the other datacenters, and the nodes
                // cluster-wide operations run on.
                ReadSpec::new("v1", "Pod", CLUSTER_LABEL).in_all_clusters(),
                // Keys only: tells whether the superuser Secret has reached a cluster.
                ReadSpec::new("v1", "Secret", K8SSANDRA_CLUSTER_NAME_LABEL).in_all_clusters(),
                ReadSpec::new("config.k8ssandra.io/v1beta1", "ClientConfig", ""),
                // Storage settings a cluster's `spec.medusa` may start from.
                ReadSpec::new(
                    medusa::CONFIGURATION_API_VERSION,
                    medusa::CONFIGURATION_KIND,
                    "",
                ),
            ],
            // Node readiness and one gossip view: which nodes are still in the ring while a
            // removed datacenter is decommissioned.
            observe_pods: Some(CLUSTER_LABEL.to_string()),
            decorates: None,
        }
    }

    fn reconcile(snapshot: Snapshot) -> Result<Plan, PolicyError> {
        cluster::reconcile(&snapshot)
    }

    fn validate(object: String, old: Option<String>) -> Vec<Violation> {
        validate::validate(&object, old.as_deref())
    }
}

export_policy!(K8ssandraClusterPolicy);

#[cfg(test)]
mod tests;
