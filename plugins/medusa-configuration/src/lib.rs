//! The built-in `medusa-configuration` policy: a MedusaConfiguration (`medusa.k8ssandra.io`,
//! storage settings shared by the K8ssandraClusters that reference it) gets the conditions
//! upstream gives it:
//!
//! - `SecretAvailable`: the Secret `spec.storageProperties.storageSecretRef` names exists in
//!   the configuration's namespace and holds the key `credentials` — the file Medusa reads as
//!   its `key_file` (`/etc/medusa-secrets/credentials`), for every storage provider. With
//!   `credentialsType: role-based` no Secret is needed (the pods' cloud identity is used).
//! - `Ready`: the settings can be used (provider and bucket given, values Medusa accepts)
//!   and `SecretAvailable` holds.
//!
//! Each message names the field and the rule. Beyond upstream, which only checks that the
//! Secret exists, a Secret missing its key is reported here instead of in a failing Medusa
//! container.
//!
//! The host watches Secrets only through a label selector (an unselected Secret watch holds
//! every Secret of the cluster in memory), so this policy sees the Secrets that carry
//! upstream's storage-Secret label `k8ssandra.io/medusa-storage-secret` (any value; upstream
//! labels every storage Secret it has seen, so Secrets of a KO installation already carry
//! it). A referenced Secret without the label reads as not found, and the message says how
//! to label it.

pub mod decide;

use k8ssandra_api::medusa::{MEDUSA_STORAGE_SECRET_IDENTIFIER_LABEL, MedusaConfiguration};
use k8ssandra_policy_sdk::{
    KindRef, Plan, PluginInfo, Policy, PolicyError, ReadSpec, Snapshot, Violation, export_policy,
    violation,
};

pub const NAME: &str = "medusa-configuration";
pub const MEDUSA_API_VERSION: &str = "medusa.k8ssandra.io/v1alpha1";

pub struct MedusaConfigurationPolicy;

impl Policy for MedusaConfigurationPolicy {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            parent: KindRef::new(MEDUSA_API_VERSION, "MedusaConfiguration"),
            owns: vec![],
            reads: vec![
                // Keys only (the host blanks the values): which storage Secrets exist and
                // what they hold.
                ReadSpec::new("v1", "Secret", MEDUSA_STORAGE_SECRET_IDENTIFIER_LABEL),
            ],
            observe_pods: None,
            decorates: None,
        }
    }

    fn reconcile(snapshot: Snapshot) -> Result<Plan, PolicyError> {
        decide::reconcile(&snapshot)
    }

    fn validate(object: String, _old: Option<String>) -> Vec<Violation> {
        match serde_json::from_str::<MedusaConfiguration>(&object) {
            Ok(c) => decide::refusals(&c)
                .into_iter()
                .map(|(field, why)| violation(&field, why))
                .collect(),
            Err(e) => vec![violation("spec", format!("does not parse: {e}"))],
        }
    }
}

export_policy!(MedusaConfigurationPolicy);

#[cfg(test)]
mod tests;
