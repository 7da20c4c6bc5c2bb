//! The one integration-test binary (one link of the whole crate instead of
//! one per file). Each module is a topic; `harness` holds shared helpers.
#![allow(clippy::unwrap_used, reason = "tests report failures by panicking")]

mod api_canary;
mod auto_redeploy;
mod bad_input;
mod bulk;
mod campaign;
mod canary;
mod cleanup;
mod cli;
mod daemon;
mod data_key_rotation;
mod data_keys;
mod deploy;
mod durability;
mod edges;
mod full_disk;
mod harness;
mod history;
mod history_store;
mod in_process;
mod isolation;
mod kubernetes;
mod layers;
mod listeners;
mod migration;
mod openapi;
mod operator;
mod packaging;
mod process;
mod read_only_disk;
mod resolve;
mod rollout;
mod rotation;
mod rotation_crash;
mod server;
mod store;
mod systemd;
mod tls;
mod tmpfs;
