//! Router benchmarks (placeholder until the router lands).
fn main() {}
