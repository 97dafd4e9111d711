//! Snapshot in, plan out.
