//! exsec: sealed external secrets for small Kubernetes clusters.
//!
//! Layout, one line per module:
//! - [`model`]: domain types built by parsing (ids, provider, key, value); no I/O.
//! - [`error_chain`]: an error with its causes on one line, for every layer's logs.
//! - [`file_error`]: a failed file operation: what was attempted, on which file, why.
//! - [`config`]: the TOML configuration (SPEC §8); loading has no side effects.
//! - [`private_file`]: the mode rule for files holding a secret (key files, the admin token).
//! - [`process`]: the daemon's process hardening: umask 0077, no core dumps.
//! - [`heap`]: gives the allocator's free memory back to the system when the daemon idles.
//! - [`crypto`]: master keys, the keyring and the running one, sealing and opening values.
//! - [`store`]: the redb file: tables, codec, schema, durable writes with their audit events.
//! - [`audit`]: the audit log's hash chain: canonical form, hashing, verification.
//! - [`audit_maintenance`]: the daemon's audit anchors and retention pruning.
//! - [`resolve`]: the effective set of an app (pure over stored records).
//! - [`cluster`]: where a deploy's objects go (manifests files or Kubernetes).
//! - [`deploy`]: the deploy pipeline, app deletion and the cleanups it leaves.
//! - [`tls`]: TLS for the listener and the CLI; `exsec tls generate` (the only importer of rustls).
//! - [`fswatch`]: debounced change events for a few directories (the only importer of notify).
//! - [`keywatch`]: reloads the running keyring when the key directory changes.
//! - [`redeploy`]: automatic redeploys of apps whose effective set changed.
//! - [`rewrap`]: re-wraps tenant data keys under the active master key.
//! - [`reseal_pipeline`]: reads, seals again and writes back pages of stored values, paced.
//! - [`data_key_rotation`]: finishes tenant data-key rotations (re-seal, retire older keys).
//! - [`rotation`]: re-seals stored values under the active key.
//! - [`tlswatch`]: the served certificate, reloaded when its files change or on SIGHUP.
//! - [`api`]: the HTTP API: routes, auth, handlers, wire types, OpenAPI.
//! - [`app`]: the composition root of `exsec serve`.
//! - [`cli`]: the command line (the only importer of clap).
//!
//! Imports point down the layers listed in ARCHITECTURE.md ("Architecture
//! invariant: layers"); `tests/integration/layers.rs` keeps them.
pub mod api;
pub mod app;
pub mod audit;
pub mod audit_maintenance;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod crypto;
pub mod data_key_rotation;
pub mod deploy;
pub mod error_chain;
pub mod file_error;
pub mod fswatch;
pub mod heap;
pub mod keywatch;
pub mod model;
pub mod private_file;
pub mod process;
pub mod redeploy;
pub mod reseal_pipeline;
pub mod resolve;
pub mod rewrap;
pub mod rotation;
pub mod shutdown;
pub mod store;
pub mod tls;
pub mod tlswatch;
