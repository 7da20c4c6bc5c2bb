//! Secret history on the wire (SPEC §11.3): the kept versions of one
//! secret (metadata only) and restoring one of them as a new version.

use hyper::StatusCode;

use super::secrets::{name, parse_version, scope};
use crate::api::dto::{SecretMetaDto, SecretVersionDto, SecretVersionListDto};
use crate::api::problem::ApiError;
use crate::api::{Call, Reply};
use crate::model::Scope;

/// `GET …/{provider}/{key}/versions`: newest first, never a value.
pub async fn list(call: Call) -> Result<Reply, ApiError> {
    let scope = scope(&call)?;
    let (provider, key) = name(&call)?;
    let (lookup_scope, lookup_provider, lookup_key) =
        (scope.clone(), provider.clone(), key.clone());
    let (owner_exists, versions) = call
        .state
        .store
        .read_async(move |r| {
            let exists = match &lookup_scope {
                Scope::Tenant(id) => r.tenant(id)?.is_some(),
                Scope::App(_) => true,
            };
            Ok((
                exists,
                r.secret_versions(&lookup_scope, &lookup_provider, &lookup_key)?,
            ))
        })
        .await?;
    if !owner_exists {
        return Err(ApiError::not_found(
            "tenant_not_found",
            format!("tenant {}", scope.owner()),
        ));
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
    let status = if written.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(Reply::json(status, &SecretMetaDto::from(&written.record)))
}
