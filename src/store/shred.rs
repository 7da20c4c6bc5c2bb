//! Crypto-shredding a tenant (SPEC §11.4): the tenant, its apps (with their
//! secrets, deploys and idempotency records), its tenant-wide secrets, its
//! tokens and its wrapped data keys, removed in one transaction with
//! `tenant.crypto_shredded`. Once the wraps are gone, a copy of the
//! tenant's sealed values left anywhere in the live file opens no more:
//! the master key only ever sealed the wraps. Older backups still hold the
//! wraps; the docs say so.

use std::collections::BTreeMap;

use super::error::{Context, Missing, not_found};
use super::{StoreError, Tables, Writer, tables};
use crate::audit::{NewEvent, event};
use crate::model::{AppId, Scope, TenantId};

/// What shredding removed (the counts of `tenant.crypto_shredded`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shredded {
    /// The tenant's apps, removed with their records.
    pub apps: Vec<AppId>,
    /// Tenant-wide secrets removed (app overrides go with their apps).
    pub secrets_removed: u64,
    /// Tokens revoked.
    pub tokens_revoked: u64,
    /// Wrapped data keys destroyed.
    pub data_keys_destroyed: u64,
}

impl Writer {
    /// Shreds `id`. `cleanup_errors` names the apps whose cluster objects
    /// could not be removed (recorded for retry, as for an app deletion).
    pub fn shred_tenant(
        &mut self,
        id: &TenantId,
        actor: &str,
        cleanup_errors: &BTreeMap<AppId, String>,
    ) -> Result<Shredded, StoreError> {
        if self.tenant(id)?.is_none() {
            return Err(not_found(Missing::Tenant, id.as_str()));
        }
        let apps = self.app_ids_of(id)?;
        for app in &apps {
            let error = cleanup_errors.get(app).map(String::as_str);
            self.delete_app(app, actor, error)?;
        }
        let secrets_removed = self.remove_scope_secrets(&Scope::Tenant(id.clone()))?;
        let tokens_revoked = self.remove_tenant_tokens(id)?;
        let data_keys_destroyed = self.remove_data_keys(id)?;
        self.txn()
            .table(tables::TENANTS)?
            .remove(id.as_str())
            .in_table(tables::TENANTS)?;
        let names: Vec<&str> = apps.iter().map(AppId::as_str).collect();
        self.audit(
            NewEvent::new(event::TENANT_CRYPTO_SHREDDED, actor)
                .tenant(id.as_str())
                .with("apps", names)
                .with("secrets_removed", secrets_removed)
                .with("tokens_revoked", tokens_revoked)
                .with("data_keys_destroyed", data_keys_destroyed)
                .with("cleanup_pending", !cleanup_errors.is_empty()),
        )?;
        Ok(Shredded {
            apps,
            secrets_removed,
            tokens_revoked,
            data_keys_destroyed,
        })
    }
}
