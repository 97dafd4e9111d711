//! The built-in `reaper` policy: a Reaper (`reaper.k8ssandra.io/v1alpha1`) becomes, in its
//! own namespace and next to the CassandraDatacenter it names, the Reaper workload (a
//! Deployment with `cassandra` storage, a one-replica StatefulSet with its volume claim with
//! `local` storage) and the Service `<reaper>-service`.
//!
//! Module map:
//! - [`render`]: the desired objects (names, labels, image, environment, probes, security
//!   context, resources, volumes), as upstream renders them;
//! - [`decide`]: the reconcile (datacenter readiness, bad input, progress and status);
//! - [`register`]: the cluster(s) registered with Reaper over its REST API, deregistered on
//!   deletion (finalizer);
//! - [`telemetry`]: the ServiceMonitor, the Vector ConfigMap and sidecar.
//!
//! Rules kept:
//! - Credentials reach the pods by reference (`secretKeyRef`); the policy never sees a value.
//! - Bad input (no `datacenterRef`, an unknown `storageType`, `local` storage without a
//!   `storageConfig`, a datacenter that does not exist) sets `Ready=False` with the field in
//!   its message and re-applies the live children as they are, so nothing is deleted.
//! - The Cassandra cluster is registered with Reaper exactly once (listed first, added when
//!   absent) and removed from it before a deleted Reaper's pods go; a Reaper that fails to
//!   answer is a `Ready=False` condition, retried with a backoff, nothing else changes.

pub mod decide;
pub mod register;
pub mod render;
pub mod telemetry;

use k8ssandra_api::labels::CLUSTER_LABEL;
use k8ssandra_api::reaper::{REAPER_LABEL, Reaper};
use k8ssandra_policy_sdk::{
    KindRef, Plan, PluginInfo, Policy, PolicyError, ReadSpec, Snapshot, Violation, export_policy,
    violation,
};
use k8ssandra_telemetry::prometheus;

pub const NAME: &str = "reaper";
pub const PARENT_API_VERSION: &str = "reaper.k8ssandra.io/v1alpha1";
pub const PARENT_KIND: &str = "Reaper";
pub const DATACENTER_API_VERSION: &str = "cassandra.datastax.com/v1beta1";
pub const DATACENTER_KIND: &str = "CassandraDatacenter";

pub struct ReaperPolicy;

impl Policy for ReaperPolicy {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            parent: KindRef::new(PARENT_API_VERSION, PARENT_KIND),
            owns: vec![
                KindRef::new("apps/v1", "Deployment"),
                KindRef::new("apps/v1", "StatefulSet"),
                KindRef::new("v1", "Service"),
                KindRef::new("v1", "ConfigMap"),
                KindRef::new(
                    prometheus::SERVICE_MONITOR_API_VERSION,
                    prometheus::SERVICE_MONITOR_KIND,
                ),
            ],
            reads: vec![
                ReadSpec::new(DATACENTER_API_VERSION, DATACENTER_KIND, ""),
                // The Reaper's own pods: the targets of the REST calls.
                ReadSpec::new("v1", "Pod", REAPER_LABEL),
                // Cassandra pods everywhere: the seeds Reaper is registered with, reachable
                // from a control-plane Reaper too (KO #1589).
                ReadSpec::new("v1", "Pod", CLUSTER_LABEL).in_all_clusters(),
                // K8ssandraClusters whose reaperRef names a control-plane Reaper.
                ReadSpec::new("k8ssandra.io/v1alpha1", "K8ssandraCluster", ""),
                // Whether ServiceMonitors are served: without the Prometheus Operator's CRDs
                // `telemetry.prometheus` becomes a condition instead of a failed apply.
                ReadSpec::new(
                    "apiregistration.k8s.io/v1",
                    "APIService",
                    prometheus::APISERVICE_SELECTOR,
                ),
            ],
            observe_pods: None,
            decorates: None,
        }
    }

    fn reconcile(snapshot: Snapshot) -> Result<Plan, PolicyError> {
        decide::reconcile(&snapshot)
    }

    fn validate(object: String, _old: Option<String>) -> Vec<Violation> {
        let raw: serde_json::Value = match serde_json::from_str(&object) {
            Ok(v) => v,
            Err(e) => return vec![violation("spec", format!("does not parse: {e}"))],
        };
        let mut out: Vec<Violation> = decide::check_raw(&raw)
            .into_iter()
            .map(|(f, m)| violation(&f, m))
            .collect();
        if out.is_empty() {
            match serde_json::from_value::<Reaper>(raw) {
                Ok(r) => out.extend(
                    decide::check_spec(&r)
                        .into_iter()
                        .map(|(f, m)| violation(&f, m)),
                ),
                Err(e) => out.push(violation("spec", format!("does not parse: {e}"))),
            }
        }
        out
    }
}

export_policy!(ReaperPolicy);

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_register;
#[cfg(test)]
mod tests_telemetry;
