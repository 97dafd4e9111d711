//! Host-side bindings of the `k8ssandra:policy@0.1.0` world (`wit/policy.wit`).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "policy",
    additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
});

pub use k8ssandra::policy::types::*;

/// The WIT package version this host speaks; a component must match its major version.
pub const WIT_PACKAGE: &str = "k8ssandra:policy";
pub const WIT_VERSION: &str = "0.1.0";
