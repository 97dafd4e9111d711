//! The built-in `cassandra-datacenter` policy: the lifecycle of a CassandraDatacenter
//! (`cassandra.datastax.com/v1beta1`), as cass-operator runs it, from snapshot to plan.
//!
//! Module map:
//! - [`model`]: the parsed datacenter and what is observed (pods, claims, nodes, ring);
//! - [`objects`]: StatefulSets, Services and the PodDisruptionBudget as JSON;
//! - [`pod`]: the pod template of a rack, as cass-operator renders it;
//! - [`images`]: default container images and their overrides;
//! - [`config`]: the config builder's `CONFIG_FILE_DATA`;
//! - [`lifecycle`]: the decisions (starts, scaling, restarts, replacements, deletion);
//! - [`status`]: conditions with stable transition times;
//! - [`telemetry`]: metrics-agent and Vector ConfigMaps, ServiceMonitor, audit/FQL options;
//! - [`validate`]: rules beyond the schema, for admission and for `Valid=False`.

pub mod config;
pub mod images;
pub mod lifecycle;
pub mod model;
pub mod objects;
pub mod pod;
pub mod status;
pub mod telemetry;
pub mod util;
pub mod validate;

use k8ssandra_api::labels::CLUSTER_LABEL;
use k8ssandra_policy_sdk::{
    KindRef, Plan, PluginInfo, Policy, PolicyError, ReadSpec, Snapshot, Violation, export_policy,
    violation,
};

pub const NAME: &str = "cassandra-datacenter";
pub const PARENT_API_VERSION: &str = "cassandra.datastax.com/v1beta1";
pub const PARENT_KIND: &str = "CassandraDatacenter";
/// Hash of a rack's pod template, on the template and so on every pod created from it: a
/// pod whose value differs from the current template's is restarted by the rolling update.
pub const TEMPLATE_HASH_ANNOTATION: &str = "k8ssandra.io/pod-template-hash";

pub struct CassandraDatacenterPolicy;

impl Policy for CassandraDatacenterPolicy {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            parent: KindRef::new(PARENT_API_VERSION, PARENT_KIND),
            owns: vec![
                KindRef::new("apps/v1", "StatefulSet"),
                KindRef::new("v1", "Service"),
                KindRef::new("policy/v1", "PodDisruptionBudget"),
                KindRef::new("discovery.k8s.io/v1", "EndpointSlice"),
                KindRef::new("v1", "ConfigMap"),
                KindRef::new(
                    telemetry::SERVICE_MONITOR_API_VERSION,
                    telemetry::SERVICE_MONITOR_KIND,
                ),
            ],
            reads: vec![
                // Every Cassandra pod of the namespace: this datacenter's, and the other
                // datacenters' of the same cluster (a ready seed anywhere lets ours join).
                ReadSpec::new("v1", "Pod", CLUSTER_LABEL),
                ReadSpec::new("v1", "PersistentVolumeClaim", CLUSTER_LABEL),
                // Whether the data volumes' class allows expansion (cluster-scoped, few).
                ReadSpec::new("storage.k8s.io/v1", "StorageClass", ""),
                // The API server's own APIServices (small, few): whether ServiceMonitors
                // are served, so a missing Prometheus Operator becomes a condition.
                ReadSpec::new(
                    "apiregistration.k8s.io/v1",
                    "APIService",
                    telemetry::APISERVICE_SELECTOR,
                ),
                // CassandraTasks whose replacenode job asks for a replacement.
                ReadSpec::new("control.k8ssandra.io/v1alpha1", "CassandraTask", ""),
                // MedusaRestoreJobs: one in its `Stopping` phase stops this datacenter.
                ReadSpec::new("medusa.k8ssandra.io/v1alpha1", "MedusaRestoreJob", ""),
            ],
            observe_pods: Some(CLUSTER_LABEL.to_string()),
            decorates: None,
        }
    }

    fn reconcile(snapshot: Snapshot) -> Result<Plan, PolicyError> {
        lifecycle::reconcile(&snapshot)
    }

    fn validate(object: String, old: Option<String>) -> Vec<Violation> {
        use k8ssandra_api::cassandra::CassandraDatacenter;
        let new: CassandraDatacenter = match serde_json::from_str(&object) {
            Ok(dc) => dc,
            Err(e) => return vec![violation("spec", format!("does not parse: {e}"))],
        };
        let mut out = validate::check_spec(&new);
        if let Some(old) = old.and_then(|o| serde_json::from_str::<CassandraDatacenter>(&o).ok()) {
            out.extend(validate::check_update(&new, &old));
        }
        out
    }
}

export_policy!(CassandraDatacenterPolicy);

#[cfg(test)]
mod tests;
