//! The built-in `stargate` policy: a Stargate (`stargate.k8ssandra.io/v1alpha1`) becomes, in
//! its own namespace and next to the CassandraDatacenter it names, one Deployment per rack
//! (its `size` split over the racks as cass-operator splits nodes), the ConfigMap of Cassandra
//! settings Stargate's embedded coordinator reads, and, once every replica is ready, the
//! Service `<cluster>-<dc>-stargate-service`.
//!
//! Module map:
//! - [`render`]: the desired objects (names, labels, images per server version, ports,
//!   probes, heap and resources, rack affinity, auth options);
//! - [`decide`]: the reconcile (datacenter readiness, bad input, the auth keyspace of a
//!   standalone Stargate, the status and the deprecation Event);
//! - [`telemetry`]: the ServiceMonitor, the Vector ConfigMap and sidecar.
//!
//! Rules kept:
//! - Nothing here touches the CassandraDatacenter: adding or removing Stargate never restarts
//!   a Cassandra pod (upstream edits the datacenter's configuration, KO #349).
//! - Bad input (a `datacenterRef` to nothing, a heap not below the memory limit, a rack
//!   override naming no rack of the datacenter) sets `Ready=False` with the field in its
//!   message and re-applies the live children as they are, so nothing is deleted.
//! - A Stargate created by a K8ssandraCluster (label `k8ssandra.io/cluster-name`) leaves the
//!   auth keyspace to the k8ssandra-cluster policy, which replicates it to every datacenter;
//!   a standalone one creates it itself, replicated to its datacenter only.

pub mod decide;
pub mod render;
pub mod telemetry;

use k8ssandra_api::labels::CLUSTER_LABEL;
use k8ssandra_api::stargate::Stargate;
use k8ssandra_policy_sdk::{
    KindRef, Plan, PluginInfo, Policy, PolicyError, ReadSpec, Snapshot, Violation, export_policy,
    violation,
};
use k8ssandra_telemetry::prometheus;

pub const NAME: &str = "stargate";
pub const PARENT_API_VERSION: &str = "stargate.k8ssandra.io/v1alpha1";
pub const PARENT_KIND: &str = "Stargate";
pub const DATACENTER_API_VERSION: &str = "cassandra.datastax.com/v1beta1";
pub const DATACENTER_KIND: &str = "CassandraDatacenter";

pub struct StargatePolicy;

impl Policy for StargatePolicy {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            parent: KindRef::new(PARENT_API_VERSION, PARENT_KIND),
            owns: vec![
                KindRef::new("apps/v1", "Deployment"),
                KindRef::new("v1", "Service"),
                KindRef::new("v1", "ConfigMap"),
                KindRef::new(
                    prometheus::SERVICE_MONITOR_API_VERSION,
                    prometheus::SERVICE_MONITOR_KIND,
                ),
            ],
            reads: vec![
                ReadSpec::new(DATACENTER_API_VERSION, DATACENTER_KIND, ""),
                // Cassandra pods: a standalone Stargate creates its auth keyspace on one.
                ReadSpec::new("v1", "Pod", CLUSTER_LABEL),
                // The ConfigMap `cassandraConfigMapRef` names: the user's, without our labels.
                ReadSpec::new("v1", "ConfigMap", ""),
                // Whether ServiceMonitors are served, so a missing Prometheus Operator
                // becomes a condition.
                ReadSpec::new(
                    "apiregistration.k8s.io/v1",
                    "APIService",
                    prometheus::APISERVICE_SELECTOR,
                ),
            ],
            observe_pods: Some(CLUSTER_LABEL.to_string()),
            decorates: None,
        }
    }

    fn reconcile(snapshot: Snapshot) -> Result<Plan, PolicyError> {
        decide::reconcile(&snapshot)
    }

    fn validate(object: String, _old: Option<String>) -> Vec<Violation> {
        match serde_json::from_str::<Stargate>(&object) {
            Ok(sg) => decide::check_spec(&sg)
                .into_iter()
                .map(|(f, m)| violation(&f, m))
                .collect(),
            Err(e) => vec![violation("spec", format!("does not parse: {e}"))],
        }
    }
}

export_policy!(StargatePolicy);

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_telemetry;
