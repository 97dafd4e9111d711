//! One test binary for the host: linking wasmtime, kube and the simulator into twenty
//! binaries cost minutes of link time and gigabytes of disk on CI, for nothing.

mod support;

mod admission_e2e;
mod cassandratask_e2e;
mod cassdc_e2e;
mod cassdc_faults_e2e;
mod cassdc_join_e2e;
mod cassdc_storage_e2e;
mod chart_e2e;
mod controller_e2e;
mod cql;
mod dataplane;
mod decorator_e2e;
mod k8ssandracluster_e2e;
mod k8ssandratask_e2e;
mod leader_e2e;
mod medusa_backup_e2e;
mod medusa_contract;
mod medusa_e2e;
mod medusa_restore_e2e;
mod medusa_sim;
mod mgmt_tls;
mod mgmt_tls_e2e;
mod multicluster_e2e;
mod reaper_client;
mod reaper_e2e;
mod runtime;
mod scale_e2e;
mod schedule_e2e;
mod security_e2e;
mod stargate_e2e;
mod telemetry_e2e;
mod wit_contract;
