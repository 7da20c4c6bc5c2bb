//! External secrets in both scopes: set, list (metadata only), delete,
//! verify a candidate, and the effective set of an app without values.

use hyper::StatusCode;
use subtle::ConstantTimeEq;

use super::data_keys::{self, Sealing};
use crate::api::dto::{
    EffectiveDto, EffectiveEntryDto, SecretListDto, SecretMetaDto, ValueBody, VerifyDto, WarningDto,
};
use crate::api::problem::ApiError;
use crate::api::routes::RouteId;
use crate::api::{Call, Reply};
use crate::audit::{NewEvent, event};
use crate::crypto::{CryptoError, Fingerprint, SealedValue, SecretLocation};
use crate::model::{AppId, EnvKey, Provider, Scope, SecretValue};
use crate::resolve;
use crate::store::history::KeptValue;
use crate::store::{PutSecret, Reader, SecretWrite, StoreError, Writer};

/// A version number from a path or query: a whole number from 1.
pub(super) fn parse_version(raw: &str) -> Option<u64> {
    raw.parse::<u64>().ok().filter(|v| *v >= 1)
}

/// The scope of the route: `{tenant_id}` or `{app_id}`.
pub(super) fn scope(call: &Call) -> Result<Scope, ApiError> {
    if call.params.has("app_id") {
        Ok(Scope::App(call.app()?.0.clone()))
    } else {
        Ok(Scope::Tenant(call.tenant_param()?))
    }
}

/// Seals a value for its place under the tenant's current data key; the
/// fingerprint of the active master key goes with it.
pub(super) fn seal(
    sealing: &Sealing,
    scope: &Scope,
    provider: &Provider,
    key: &EnvKey,
    value: &SecretValue,
) -> Result<(SealedValue, Fingerprint), ApiError> {
    let location = SecretLocation {
        scope,
        provider,
        key,
    };
    let sealed = sealing
        .keys
        .seal(&location, value)
        .map_err(data_keys::seal_failed)?;
    Ok((sealed, sealing.fingerprint))
}

/// Whether the scope's owner exists: a tenant is looked up, an app was
/// loaded by authorization already.
pub(super) fn owner_exists(r: &Reader, scope: &Scope) -> Result<bool, StoreError> {
    match scope {
        Scope::Tenant(id) => Ok(r.tenant(id)?.is_some()),
        Scope::App(_) => Ok(true),
    }
}

/// 404 for a scope whose tenant does not exist.
pub(super) fn owner_missing(scope: &Scope) -> ApiError {
    ApiError::not_found("tenant_not_found", format!("tenant {}", scope.owner()))
}

/// `{provider}` and `{key}`.
pub(super) fn name(call: &Call) -> Result<(Provider, EnvKey), ApiError> {
    Ok((
        Provider::parse(call.params.get("provider"))?,
        EnvKey::parse(call.params.get("key"))?,
    ))
}

pub async fn list(call: Call) -> Result<Reply, ApiError> {
    let scope = scope(&call)?;
    let owner = scope.clone();
    let (exists, records) = call
        .state
        .store
        .read_async(move |r| Ok((owner_exists(r, &owner)?, r.secrets(&owner)?)))
        .await?;
    if !exists {
        return Err(owner_missing(&scope));
    }
    let secrets: Vec<SecretMetaDto> = records.iter().map(SecretMetaDto::from).collect();
    Ok(Reply::ok_sorted(&SecretListDto { secrets }))
}

pub async fn put(call: Call) -> Result<Reply, ApiError> {
    let scope = scope(&call)?;
    let (provider, key) = name(&call)?;
    let body: ValueBody = call.json()?;
    let value = SecretValue::parse(body.value)?;
    let actor = call.actor();
    let written = data_keys::seal_and_write(
        &call,
        &scope,
        |sealing| {
            let (sealed, fingerprint) = seal(sealing, &scope, &provider, &key, &value)?;
            Ok(PutSecret {
                scope: scope.clone(),
                provider: provider.clone(),
                key: key.clone(),
                sealed,
                fingerprint,
            })
        },
        |put| {
            let actor = actor.clone();
            move |w: &mut Writer| w.put_secret(put.clone(), &actor)
        },
    )
    .await?;
    drop(value);
    // The write may have queued automatic redeploys.
    call.state.redeploys.wake();
    Ok(written_reply(&written))
}

/// 201 with the metadata of a new secret, 200 of a replaced one.
pub(super) fn written_reply(written: &SecretWrite) -> Reply {
    let status = if written.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Reply::json(status, &SecretMetaDto::from(&written.record))
}

pub async fn delete(call: Call) -> Result<Reply, ApiError> {
    let scope = scope(&call)?;
    let (provider, key) = name(&call)?;
    let actor = call.actor();
    if call.query_flag("purge")? {
        call.state
            .store
            .write_async(move |w| w.purge_secret(&scope, &provider, &key, &actor))
            .await?;
    } else {
        call.state
            .store
            .write_async(move |w| w.delete_secret(&scope, &provider, &key, &actor))
            .await?;
    }
    call.state.redeploys.wake();
    Ok(Reply::no_content())
}

/// Compares a candidate with the stored value in constant time, audited,
/// rate-limited per caller. Answers only `{"match": bool}`.
pub async fn verify(call: Call) -> Result<Reply, ApiError> {
    let scope = scope(&call)?;
    let (provider, key) = name(&call)?;
    let actor = call.actor();
    if let Err(retry_after) = call.state.verify_limiter.check(&actor) {
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many verify calls; retry in {retry_after}s"),
        );
        error.headers.push(("retry-after", retry_after.to_string()));
        return Err(error);
    }
    let body: ValueBody = call.json()?;
    let candidate = SecretValue::parse(body.value)?;
    let version = match call.query_param("version") {
        Some(raw) => Some(parse_version(&raw).ok_or_else(|| {
            ApiError::bad_request("invalid_query", "version must be a whole number from 1")
        })?),
        None => None,
    };
    let (lookup_scope, lookup_provider, lookup_key) =
        (scope.clone(), provider.clone(), key.clone());
    let tenant = data_keys::owner(&call, &scope)?;
    let lookup_tenant = tenant.clone();
    // The value and its tenant's wraps from one snapshot: a data key
    // retired after a rotation is never needed by a value read with it.
    let (sealed, wraps) = call
        .state
        .store
        .read_async(move |r| {
            let sealed = match version {
                None => r
                    .secret(&lookup_scope, &lookup_provider, &lookup_key)?
                    .map_or(KeptValue::Missing, |record| {
                        KeptValue::Sealed(record.sealed)
                    }),
                Some(version) => {
                    r.secret_version(&lookup_scope, &lookup_provider, &lookup_key, version)?
                }
            };
            Ok((sealed, r.data_keys(&lookup_tenant)?))
        })
        .await?;
    let sealed = match sealed {
        KeptValue::Sealed(sealed) => sealed,
        KeptValue::Tombstone => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "version_is_tombstone",
                format!("that version of {key} records its deletion; it has no value"),
            ));
        }
        KeptValue::Missing => {
            return Err(match version {
                None => ApiError::not_found(
                    "secret_not_found",
                    format!("external secret {provider}/{key}"),
                ),
                Some(version) => ApiError::not_found(
                    "version_not_found",
                    format!("secret version {provider}/{key} version {version}"),
                ),
            });
        }
    };
    let keys = call.state.keyring.tenant_keys(&tenant, &wraps);
    let stored = keys
        .open(
            &SecretLocation {
                scope: &scope,
                provider: &provider,
                key: &key,
            },
            &sealed,
        )
        .map_err(|error| match error {
            CryptoError::MissingKey { key_id } => ApiError::master_key_unavailable(format!(
                "the value is sealed under master key {key_id}, which is not loaded; put its key file back"
            )),
            CryptoError::MissingDataKey { dek_id } => ApiError::master_key_unavailable(format!(
                "the value is sealed under tenant data key {dek_id}, which the store does not hold"
            )),
            other => ApiError::internal("opening a stored value failed", &other),
        })?;
    let matched = bool::from(
        stored
            .expose_secret()
            .as_bytes()
            .ct_eq(candidate.expose_secret().as_bytes()),
    );
    drop((stored, candidate));
    let tenant_id = tenant;
    let mut audit = NewEvent::new(event::SECRET_VERIFIED, actor)
        .tenant(tenant_id.as_str())
        .with("scope", scope.kind().as_str())
        .with("provider", provider.as_str())
        .with("key", key.as_str())
        .with("match", matched);
    if let Some(version) = version {
        audit = audit.with("version", version);
    }
    if let Scope::App(app_id) = &scope {
        audit = audit.app(app_id.as_str());
    }
    call.state
        .store
        .write_async(move |w| w.audit(audit.clone()).map(drop))
        .await?;
    Ok(Reply::ok(&VerifyDto { matched }))
}

/// The merged set of an app without values: source, override flag,
/// whether a redeploy is needed, names removed since the last deploy.
pub async fn effective(call: Call) -> Result<Reply, ApiError> {
    debug_assert_eq!(call.route.id, RouteId::Effective);
    let (app_id, app) = call.app()?.clone();
    let lookup: AppId = app_id.clone();
    let (layout, last) = call
        .state
        .store
        .read_async(move |r| Ok((r.secret_layout(&lookup)?, r.last_injected_deploy(&lookup)?)))
        .await?;
    let layout =
        layout.ok_or_else(|| ApiError::not_found("app_not_found", format!("app {app_id}")))?;
    let merged = resolve::merge(&layout.tenant, &layout.app);
    let keys: Vec<EffectiveEntryDto> = merged
        .entries
        .iter()
        .map(|entry| {
            let name = entry.name();
            let injected = last
                .as_ref()
                .and_then(|d| d.injection.injected.iter().find(|k| k.key == name.as_str()));
            let current = (
                entry.source,
                entry.record.provider.as_str(),
                entry.record.version,
                entry.record.updated_at,
            );
            let redeploy_needed = injected.is_none_or(|k| {
                (k.source, k.provider.as_str(), k.version, k.updated_at) != current
            });
            EffectiveEntryDto {
                key: name.to_string(),
                provider: entry.record.provider.to_string(),
                source: entry.source,
                overrides_tenant: entry.overrides_tenant(),
                redeploy_needed,
                version: entry.record.version,
                updated_at: entry.record.updated_at.to_rfc3339(),
            }
        })
        .collect();
    let removed_since_deploy: Vec<String> = last
        .as_ref()
        .map(|d| {
            d.injection
                .injected
                .iter()
                .filter(|k| !merged.entries.iter().any(|e| e.name().as_str() == k.key))
                .map(|k| k.key.clone())
                .collect()
        })
        .unwrap_or_default();
    let mut warnings: Vec<WarningDto> = merged.warnings.iter().map(WarningDto::from).collect();
    let missing: Vec<&str> = app
        .required_env
        .iter()
        .filter(|name| !merged.contains(name))
        .map(EnvKey::as_str)
        .collect();
    if !missing.is_empty() {
        warnings.push(WarningDto {
            code: "missing_required_env".to_owned(),
            message: format!(
                "the app requires {} but its effective set lacks them",
                missing.join(", ")
            ),
        });
    }
    Ok(Reply::ok(&EffectiveDto {
        app_id: app_id.to_string(),
        tenant_id: layout.tenant_id.to_string(),
        keys,
        removed_since_deploy,
        last_synced_deploy_id: last.map(|d| d.deploy_id),
        pinned_to: app.pinned_to.clone(),
        warnings,
    }))
}
