//! Telemetry of the Stargate pods.
//!
//! Upstream adds, when `telemetry.prometheus.enabled`, a ServiceMonitor
//! `<stargate>-stargate-servicemonitor` (port `health`, path `/metrics`), and, when
//! `telemetry.vector.enabled`, a ConfigMap `<cluster>-<dc>-stargate-vector` plus a
//! `stargate-vector-agent` sidecar scraping `http://localhost:8084/metrics`. Those belong to
//! the telemetry support shared by every component; this is the one place where it plugs in:
//! [`objects`] returns the extra objects to apply and [`decorate_pod`] changes the rendered pod
//! spec. Until that support exists both leave the plan as it is, and `spec.telemetry` is
//! accepted without effect.

use k8ssandra_api::stargate::{Stargate, StargateTemplate};
use serde_json::Value;

/// Extra objects (ServiceMonitor, Vector ConfigMap) for one Stargate.
pub fn objects(_sg: &Stargate, _template: &StargateTemplate) -> Vec<Value> {
    Vec::new()
}

/// Changes to one rack's pod spec (the Vector sidecar and its volumes).
pub fn decorate_pod(_template: &StargateTemplate, _pod_spec: &mut Value) {}
