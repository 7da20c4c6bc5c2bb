//! exsec: sealed external secrets for small Kubernetes clusters.
//!
//! Layout, one line per module:
//! - [`model`]: domain types built by parsing (ids, provider, key, value); no I/O.
//! - [`crypto`]: master keys, key directory scan, keyring, sealing; the only importer of chacha20poly1305.
pub mod crypto;
pub mod model;
