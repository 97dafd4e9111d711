//! What the `repair-schedule` and `repair-run` policies share, in one place:
//!
//! - [`check`]: the rules on the repair part of a spec ([`RepairSpec`]), on raw JSON so a
//!   wrong type is named by its field;
//! - [`target`]: the Reaper that runs a repair of a K8ssandraCluster and a ready pod of it
//!   (where the host sends the REST calls);
//! - [`repair`]: the repair Reaper is asked for (parallelism, intensity, lists), and
//!   Reaper's answers read (ids, lists, runs).
//!
//! [`RepairSpec`]: k8ssandra_api::repair_schedule::RepairSpec

pub mod check;
pub mod repair;
pub mod target;
