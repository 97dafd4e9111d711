//! The Reaper operation kinds of a plan (`reaper-*`, WIT 0.4.0), run against the REST API
//! of the Reaper pod the operation targets.

use std::sync::Arc;

use crate::clusters::ClusterRegistry;
use crate::plugin::bindings::Operation;

use super::executor::SecretReader;

/// What the executor needs to run Reaper operations.
#[derive(Clone)]
pub struct ReaperAccess {
    pub clusters: ClusterRegistry,
}

/// Runs one `reaper-*` operation against the Reaper pod at `address`; the error is the
/// message for `failed(..)`.
pub async fn perform(
    _access: &ReaperAccess,
    _secrets: &Arc<dyn SecretReader>,
    op: &Operation,
    _address: &str,
) -> Result<String, String> {
    Err(format!(
        "operation {}: this operator cannot reach Reaper yet",
        op.id
    ))
}
