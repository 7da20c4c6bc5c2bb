//! The one integration-test binary (one link of the whole crate instead of
//! one per file). Each module is a topic; `harness` holds shared helpers.

mod harness;
mod store;
