//! Simulated Cassandra management API (see issue 3).
