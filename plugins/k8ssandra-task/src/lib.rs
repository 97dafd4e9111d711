//! The built-in `k8ssandra-task` policy: a K8ssandraTask runs a CassandraTask in each
//! datacenter of a K8ssandraCluster and sums up their progress.
