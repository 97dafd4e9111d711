//! Keystores and truststores kept in Secrets, for internode (server) and client encryption.
//! Shared by Cassandra, Reaper, Stargate and Medusa settings.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A key of a Secret in the same namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
pub struct SecretKeySelector {
    /// Name of the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,

    /// Key inside the Secret. Each store has its own default key (`keystore`, `truststore`,
    /// `keystore-password`, `truststore-password`) used when this is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl SecretKeySelector {
    /// The key to read, or `default` when none is set.
    pub fn key_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.key
            .as_deref()
            .filter(|k| !k.is_empty())
            .unwrap_or(default)
    }
}

/// Java keystore and truststore, and their passwords, each read from a Secret.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Stores {
    /// Secret holding the keystore (the node's own key and certificate).
    pub keystore_secret_ref: SecretKeySelector,

    /// Secret holding the truststore (the certificates the node trusts).
    pub truststore_secret_ref: SecretKeySelector,

    /// Secret holding the keystore password. Defaults to the keystore Secret, key
    /// `keystore-password`.
    #[serde(
        rename = "keystorePasswordSecretRef",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub keystore_password_ref: Option<SecretKeySelector>,

    /// Secret holding the truststore password. Defaults to the truststore Secret, key
    /// `truststore-password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truststore_password_secret_ref: Option<SecretKeySelector>,
}
