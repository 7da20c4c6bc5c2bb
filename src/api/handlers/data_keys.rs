//! A tenant's data keys for one write (SPEC §11.4): read with the
//! tenant's wraps, and made on the first write of a value if the tenant has
//! none yet (tenants made before data keys, or without a master key loaded
//! at the time); a write sealed under a key a rotation replaced meanwhile
//! is sealed again ([`seal_and_write`]). New data keys are wrapped under
//! the active master key ([`ActiveKey`]). Handlers seal through the
//! [`TenantKeys`] this returns; nothing here sees a value.

use std::sync::Arc;

use crate::api::Call;
use crate::api::problem::ApiError;
use crate::crypto::{
    CryptoError, DataKey, DataKeyId, Fingerprint, Keyring, TenantKeys, WrappedDataKey,
};
use crate::model::{KeyId, Scope, TenantId};
use crate::store::{Rejected, StoreError, Writer};

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

/// The keys of `scope`'s tenant for sealing, making a data key if it has
/// none or if the master key of its current one is missing. 503
/// `master_key_unavailable` without a master key.
pub(super) async fn for_sealing(call: &Call, scope: &Scope) -> Result<Sealing, ApiError> {
    let tenant = owner(call, scope)?;
    let active = ActiveKey::of(call)?;
    let fingerprint = active.fingerprint;
    let lookup = tenant.clone();
    let wraps = call
        .state
        .store
        .lookup(move |r| r.data_keys(&lookup))
        .await?;
    let keys = call.state.keyring.tenant_keys(&tenant, &wraps);
    let Some(replacing) = keys.needs_new_key() else {
        return Ok(Sealing { keys, fingerprint });
    };
    let (dek_id, wrapped) = active.new_data_key(&tenant)?;
    let active = active.id;
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

/// How many times a write seals its values again when data-key rotations
/// land between its sealing and its commit.
const SEAL_ATTEMPTS: u32 = 3;

/// Seals with the current data key of `scope`'s tenant (`seal`) and writes
/// the result (`write`); when a data-key rotation made another key current
/// in between (the store refuses such a value: `data_key_changed`), seals
/// again under the new one, up to [`SEAL_ATTEMPTS`] times.
pub(super) async fn seal_and_write<S, T, W>(
    call: &Call,
    scope: &Scope,
    seal: impl Fn(&Sealing) -> Result<S, ApiError>,
    write: impl Fn(S) -> W,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    W: Fn(&mut Writer) -> Result<T, StoreError> + Send + 'static,
{
    let mut attempt = 1;
    loop {
        let sealing = for_sealing(call, scope).await?;
        let sealed = seal(&sealing)?;
        match call.state.store.write_async(write(sealed)).await {
            Err(error)
                if attempt < SEAL_ATTEMPTS
                    && matches!(error.rejected(), Some(Rejected::DataKeyChanged { .. })) =>
            {
                attempt += 1;
            }
            result => return Ok(result?),
        }
    }
}

/// The active master key of the running keyring, which wraps new data
/// keys.
pub(super) struct ActiveKey {
    keyring: Arc<Keyring>,
    /// Its id.
    pub id: KeyId,
    /// Its fingerprint.
    pub fingerprint: Fingerprint,
}

impl ActiveKey {
    /// 503 `master_key_unavailable` without a master key.
    pub fn of(call: &Call) -> Result<Self, ApiError> {
        let keyring = call.state.keyring.snapshot();
        let (Some(id), Some(fingerprint)) = (
            keyring.active().cloned(),
            keyring.active().and_then(|id| keyring.fingerprint(id)),
        ) else {
            return Err(no_master_key());
        };
        Ok(Self {
            keyring,
            id,
            fingerprint,
        })
    }

    /// A fresh data key for `tenant`, wrapped under this key.
    pub fn new_data_key(&self, tenant: &TenantId) -> Result<(DataKeyId, WrappedDataKey), ApiError> {
        let failed = |e: CryptoError| ApiError::internal("making a data key failed", &e);
        let dek_id = DataKeyId::generate().map_err(failed)?;
        let wrapped = DataKey::generate()
            .and_then(|key| self.keyring.wrap_data_key(tenant, &dek_id, &key))
            .map_err(failed)?;
        Ok((dek_id, wrapped))
    }
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
