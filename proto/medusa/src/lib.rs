//! Medusa's gRPC service, generated from `proto/medusa.proto` (upstream's service, field
//! numbers and paths): [`medusa_client::MedusaClient`] for the operator's host and
//! [`medusa_server::Medusa`] for the Cassandra simulator.
//!
//! Upstream's proto declares no `package`, so the service is served at `/Medusa/<Rpc>`
//! and the generated items sit at this crate's root.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

// prost names the output of a package-less proto `_.rs`.
include!(concat!(env!("OUT_DIR"), "/_.rs"));
