//! Criterion benchmarks of the core: sealing, opening and resolving.
fn main() {}
