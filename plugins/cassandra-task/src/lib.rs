//! The built-in `cassandra-task` policy: a CassandraTask (`control.k8ssandra.io/v1alpha1`)
//! runs its jobs on the pods of one CassandraDatacenter and records per-pod progress.
