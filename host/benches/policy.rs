//! Placeholder; replaced by the policy runtime benchmark.
fn main() {}
