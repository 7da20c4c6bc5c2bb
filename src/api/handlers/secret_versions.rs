//! Secret history on the wire (SPEC §11.3): the kept versions of one
//! secret (metadata only) and restoring one of them as a new version.

use super::secrets::{name, owner_exists, owner_missing, parse_version, scope, written_reply};
use crate::api::dto::{SecretVersionDto, SecretVersionListDto};
use crate::api::problem::ApiError;
use crate::api::{Call, Reply};

/// `GET …/{provider}/{key}/versions`: newest first, never a value.
pub async fn list(call: Call) -> Result<Reply, ApiError> {
    let scope = scope(&call)?;
    let (provider, key) = name(&call)?;
    let (lookup_scope, lookup_provider, lookup_key) =
        (scope.clone(), provider.clone(), key.clone());
    let (exists, versions) = call
        .state
        .store
        .read_async(move |r| {
            Ok((
                owner_exists(r, &lookup_scope)?,
                r.secret_versions(&lookup_scope, &lookup_provider, &lookup_key)?,
            ))
        })
        .await?;
    if !exists {
        return Err(owner_missing(&scope));
    }
    if versions.is_empty() {
        return Err(ApiError::not_found(
            "secret_not_found",
            format!("external secret {provider}/{key}"),
        ));
    }
    Ok(Reply::ok(&SecretVersionListDto {
        versions: versions.iter().map(SecretVersionDto::from).collect(),
    }))
}

/// `POST …/{provider}/{key}/versions/{version}/restore`: 200 with the new
/// version (201 when the secret had been deleted).
pub async fn restore(call: Call) -> Result<Reply, ApiError> {
    let scope = scope(&call)?;
    let (provider, key) = name(&call)?;
    let version = parse_version(call.params.get("version")).ok_or_else(|| {
        ApiError::bad_request("invalid_version", "version must be a whole number from 1")
    })?;
    let actor = call.actor();
    let written = call
        .state
        .store
        .write_async(move |w| w.restore_secret(&scope, &provider, &key, version, &actor))
        .await?;
    call.state.redeploys.wake();
    Ok(written_reply(&written))
}
