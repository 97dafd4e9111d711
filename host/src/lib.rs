//! The k8ssandra operator host. See docs/ARCHITECTURE.md for the map of modules.

pub mod apply;
pub mod clusters;
pub mod controller;
pub mod dataplane;
pub mod leader;
pub mod observe;
pub mod plugin;

use controller::{DataPlane, NoDataPlane};

/// The data plane the `run` command uses. Completed operations are announced on
/// `completions` as "policy|namespace/name" so their parent is reconciled at once.
pub fn dataplane_adapter(
    completions: tokio::sync::mpsc::UnboundedSender<String>,
    clusters: clusters::ClusterRegistry,
) -> Box<dyn DataPlane> {
    let _ = (completions, clusters);
    Box::new(NoDataPlane)
}
