//! A tenant's data keys for one request (SPEC §11.4): read with the
//! tenant's wraps, and made on the first write of a value if the tenant has
//! none yet (tenants made before data keys, or without a master key loaded
//! at the time). Handlers seal and open through the [`TenantKeys`] this
//! returns; nothing here sees a value.

use crate::api::Call;
use crate::api::problem::ApiError;
use crate::crypto::{CryptoError, DataKey, DataKeyId, Fingerprint, TenantKeys};
use crate::model::{Scope, TenantId};

/// What a write seals with: the tenant's keys and the fingerprint of the
/// active master key (remembered by the store on first use).
pub(super) struct Sealing {
    /// The tenant's data keys.
    pub keys: TenantKeys,
    /// Fingerprint of the active master key.
    pub fingerprint: Fingerprint,
}

/// The tenant that owns `scope`: itself, or the app's tenant.
pub(super) fn owner(call: &Call, scope: &Scope) -> Result<TenantId, ApiError> {
    match scope {
        Scope::Tenant(id) => Ok(id.clone()),
        Scope::App(_) => Ok(call.app()?.1.tenant_id.clone()),
    }
}

/// The keys of `scope`'s tenant for opening stored values.
pub(super) async fn for_opening(call: &Call, scope: &Scope) -> Result<TenantKeys, ApiError> {
    let tenant = owner(call, scope)?;
    let lookup = tenant.clone();
    let wraps = call
        .state
        .store
        .read_async(move |r| r.data_keys(&lookup))
        .await?;
    Ok(call.state.keyring.tenant_keys(&tenant, &wraps))
}

/// The keys of `scope`'s tenant for sealing, making a data key if it has
/// none or if the master key of its current one is missing. 503
/// `master_key_unavailable` without a master key.
pub(super) async fn for_sealing(call: &Call, scope: &Scope) -> Result<Sealing, ApiError> {
    let tenant = owner(call, scope)?;
    let keyring = call.state.keyring.snapshot();
    let (Some(active), Some(fingerprint)) = (
        keyring.active().cloned(),
        keyring.active().and_then(|id| keyring.fingerprint(id)),
    ) else {
        return Err(no_master_key());
    };
    let lookup = tenant.clone();
    let wraps = call
        .state
        .store
        .read_async(move |r| r.data_keys(&lookup))
        .await?;
    let keys = call.state.keyring.tenant_keys(&tenant, &wraps);
    let Some(replacing) = keys.needs_new_key() else {
        return Ok(Sealing { keys, fingerprint });
    };
    let dek_id = DataKeyId::generate().map_err(|e| ApiError::internal("sealing failed", &e))?;
    let wrapped = DataKey::generate()
        .and_then(|key| keyring.wrap_data_key(&tenant, &dek_id, &key))
        .map_err(|e| ApiError::internal("sealing failed", &e))?;
    let owner = tenant.clone();
    let wraps = call
        .state
        .store
        .write_async(move |w| {
            w.add_data_key(
                &owner,
                replacing.as_ref(),
                &dek_id,
                wrapped.clone(),
                fingerprint,
            )
        })
        .await?;
    tracing::info!(tenant_id = %tenant, key_id = %active, "tenant data key created");
    let keys = call.state.keyring.tenant_keys(&tenant, &wraps);
    Ok(Sealing { keys, fingerprint })
}

/// The answer when no master key can seal.
pub(super) fn no_master_key() -> ApiError {
    ApiError::master_key_unavailable(
        "no master key is loaded; add a key file to the key directory (exsec keys generate)",
    )
}

/// The API error of a failed seal.
pub(super) fn seal_failed(error: CryptoError) -> ApiError {
    match error {
        CryptoError::NoActiveKey | CryptoError::MissingKey { .. } => no_master_key(),
        other => ApiError::internal("sealing failed", &other),
    }
}
