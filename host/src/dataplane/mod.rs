//! Data-plane clients: the Cassandra management API of every node.
//!
//! - [`ManagementApi`]: typed calls with timeouts, retries (idempotent calls only), TLS
//!   and per-endpoint counters ([`ManagementApi::stats`]).
//! - [`ManagementApi::observe`]: the node states of a policy's snapshot.
//! - [`NodeFollower`]: keeps probing the nodes a snapshot found unreachable and triggers
//!   their parents once they answer (no Kubernetes event says so).
//! - [`OperationExecutor`]: runs a plan's operations as background tasks, remembers their
//!   outcomes per parent and notifies the controller when one changes.
//! - [`medusa::MedusaClient`]: Medusa's gRPC sidecar of every pod (backups, purge,
//!   restore preparation), with a deadline per call kind, keepalive and mutual TLS.
//! - `reaper_ops`: Reaper's REST API at a Reaper pod; `cql_ops`: CQL on a node.
//!
//! Passwords only ever travel in requests: errors, outcomes and logs name endpoints by
//! path, never by URL, and blank out a password an answer might echo.

mod chain_tls;
mod client;
pub mod cql;
mod cql_ops;
mod error;
mod executor;
mod follow;
pub mod medusa;
mod medusa_ops;
mod memo;
mod observe;
pub mod reaper;
pub mod reaper_ops;
mod stats;
mod tls;

pub use client::{
    DEFAULT_PORT, JobStart, JobState, JobStatus, ManagementApi, ManagementApiConfig, Password,
    TableOp, TlsConfig,
};
pub use cql_ops::CqlAccess;
pub use error::{DataplaneError, SecretError};
pub use executor::{
    ExecutorConfig, OperationExecutor, SecretData, SecretFuture, SecretReader, kind_name,
};
pub use follow::NodeFollower;
pub use medusa_ops::{
    CLIENT_SECRET_ANNOTATION, MedusaAccess, MedusaRoutes, MedusaTargets, TargetFuture,
};
pub use reaper_ops::ReaperAccess;
pub use stats::{CallOutcome, DataplaneStats, Endpoint, EndpointStats};
pub use tls::{PodFacts, Route, Routes, TLS_CERT_ENV, TlsResolver, pod_facts, tls_from_secret};
