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
//! The storage Secret is the user's and carries none of the operator's labels, and the host
//! never watches Secrets unselected (that would hold every Secret of the cluster in
//! memory): the policy reads it by name (`storageSecretRef.name`), which the host fetches
//! for each reconcile without a watch, so while `SecretAvailable` is False the policy
//! requeues to notice a fixed Secret. As upstream does, the policy labels the storage
//! Secret `k8ssandra.io/medusa-storage-secret=<first 8 hex digits of sha256(namespace +
//! name)>` (only that label, patched on the Secret it read, by UID); Secrets with that
//! label are watched, so from then on a change to it is seen at once.

pub mod decide;

use k8ssandra_api::medusa::{MEDUSA_STORAGE_SECRET_IDENTIFIER_LABEL, MedusaConfiguration};
use k8ssandra_policy_sdk::{
    KindRef, Plan, PluginInfo, Policy, PolicyError, ReadSpec, Snapshot, Violation, export_policy,
    violation,
};

pub const NAME: &str = "medusa-configuration";
pub const MEDUSA_API_VERSION: &str = "medusa.k8ssandra.io/v1alpha1";
/// Where the MedusaConfiguration names its storage Secret.
pub const SECRET_REF_POINTER: &str = "/spec/storageProperties/storageSecretRef/name";

pub struct MedusaConfigurationPolicy;

impl Policy for MedusaConfigurationPolicy {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            parent: KindRef::new(MEDUSA_API_VERSION, "MedusaConfiguration"),
            owns: vec![],
            // Keys only (the host blanks the values): whether the storage Secret exists and
            // what it holds.
            reads: vec![
                ReadSpec::by_name("v1", "Secret", &[SECRET_REF_POINTER]),
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
