//! The k8ssandra operator host. See docs/ARCHITECTURE.md for the map of modules.

pub mod plugin;
