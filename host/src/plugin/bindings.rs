//! Host-side bindings of the `k8ssandra:policy@0.1.0` world (`wit/policy.wit`).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "policy",
    // Exports are called on a fiber so a call can yield to tokio at every epoch tick; the
    // `log` import stays synchronous.
    exports: { default: async },
    additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
});

pub use k8ssandra::policy::types::*;

/// The WIT package version this host speaks; a component must match its major version.
pub const WIT_PACKAGE: &str = "k8ssandra:policy";
pub const WIT_VERSION: &str = "0.1.0";
