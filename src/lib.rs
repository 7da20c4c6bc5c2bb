//! exsec: sealed external secrets for small Kubernetes clusters.
//!
//! Layout, one line per module:
//! - [`model`]: domain types built by parsing (ids, provider, key, value); no I/O.
pub mod model;
