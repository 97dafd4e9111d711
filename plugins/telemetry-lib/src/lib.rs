//! Telemetry shared by the policies (crate `k8ssandra-telemetry`): the Vector agent
//! configuration and its checks ([`vector`], VRL compiled with Vector's own compiler), and
//! what a Cassandra datacenter needs on top ([`cassandra`]: metrics-agent relabels, MCAC
//! filters, the built-in Vector components), and the ServiceMonitor pieces every component
//! shares ([`prometheus`]). Pure functions, so they run inside the wasm
//! policies; Reaper and Stargate build their Vector files with the same [`vector`] module.

pub mod cassandra;
pub mod prometheus;
pub mod vector;
