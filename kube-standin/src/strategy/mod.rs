//! Per-kind write rules: what the real server's registry strategies do after decoding an
//! object and before storing it — normalisation, defaults, validation, `generation`.
//!
//! They run on the merged result of every write (apply, create, replace, patch), after
//! ownership has been computed, exactly where the real server runs them. That order is
//! what turns `stringData` into `data` while the applier keeps owning `stringData.*`.

mod deployment;
mod namespace;
mod secret;

use serde_json::Value;

use crate::kind::Kind;
use crate::status::ApiError;

/// Normalises, defaults and validates `new`, the result of a write to `old` (absent on
/// create). `name` is used in error messages.
pub fn prepare(
    kind: Kind,
    name: &str,
    old: Option<&Value>,
    new: &mut Value,
) -> Result<(), ApiError> {
    match kind {
        Kind::Secret => secret::prepare(name, old, new),
        Kind::Deployment => deployment::prepare(name, old, new),
        Kind::Namespace => {
            namespace::prepare(name, new);
            Ok(())
        }
        Kind::Event => Ok(()),
    }
}
