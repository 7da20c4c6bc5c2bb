//! exsec: sealed external secrets for small Kubernetes clusters.
//!
//! Layout, one line per module:
//! - [`config`]: the TOML schema of SPEC §8, one typed section per subsystem; loading has no side effects.
//! - [`model`]: domain types built by parsing (ids, provider, key, value); no I/O.
pub mod config;
pub mod model;
