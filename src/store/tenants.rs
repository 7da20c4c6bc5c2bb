//! Tenants and apps: registration, lookup, listing and deletion.
//!
//! An app belongs to one tenant forever; deleting an app removes its
//! secrets, deploy history and idempotency records (audit events stay);
//! a tenant can be deleted only once it has no apps.

use redb::ReadableTable;

use super::error::{Context, Missing, Rejected, not_found};
use super::records::{AppRecord, CleanupKind, TenantRecord};
use super::{Snapshot, StoreError, Tables, Writer, decode, encode, tables};
use crate::audit::{NewEvent, event};
use crate::model::{AppId, EnvKey, TenantId};

/// What an app registration sets besides its tenant.
#[derive(Debug, Clone, Default)]
pub struct AppSettings {
    /// Env var names the app needs.
    pub required_env: Vec<EnvKey>,
    /// Redeploy automatically when its effective set changes.
    pub auto_redeploy: bool,
}

impl<T: Tables> Snapshot<T> {
    /// One tenant.
    pub fn tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>, StoreError> {
        let tenants = self.txn().table(tables::TENANTS)?;
        let bytes = tenants.get(id.as_str()).in_table(tables::TENANTS)?;
        bytes.map(|b| decode("tenants", b.value())).transpose()
    }

    /// All tenants, by id.
    pub fn tenants(&self) -> Result<Vec<(TenantId, TenantRecord)>, StoreError> {
        let tenants = self.txn().table(tables::TENANTS)?;
        let mut out = Vec::new();
        for entry in tenants.iter().in_table(tables::TENANTS)? {
            let (id, bytes) = entry.in_table(tables::TENANTS)?;
            out.push((parse_id(id.value())?, decode("tenants", bytes.value())?));
        }
        Ok(out)
    }

    /// One app.
    pub fn app(&self, id: &AppId) -> Result<Option<AppRecord>, StoreError> {
        let apps = self.txn().table(tables::APPS)?;
        let bytes = apps.get(id.as_str()).in_table(tables::APPS)?;
        bytes.map(|b| decode("apps", b.value())).transpose()
    }

    /// All apps, or the apps of one tenant, by id.
    pub fn apps(&self, tenant: Option<&TenantId>) -> Result<Vec<(AppId, AppRecord)>, StoreError> {
        let ids = match tenant {
            Some(tenant) => self.app_ids_of(tenant)?,
            None => {
                let apps = self.txn().table(tables::APPS)?;
                let mut ids = Vec::new();
                for entry in apps.iter().in_table(tables::APPS)? {
                    ids.push(parse_id(entry.in_table(tables::APPS)?.0.value())?);
                }
                ids
            }
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(record) = self.app(&id)? {
                out.push((id, record));
            }
        }
        Ok(out)
    }

    /// Ids of the apps of one tenant.
    pub fn app_ids_of(&self, tenant: &TenantId) -> Result<Vec<AppId>, StoreError> {
        let index = self.txn().table(tables::TENANT_APPS)?;
        let (start, end) = tables::prefix_range(tenant.as_str());
        let mut out = Vec::new();
        for entry in index
            .range(start.as_str()..end.as_str())
            .in_table(tables::TENANT_APPS)?
        {
            let (key, _) = entry.in_table(tables::TENANT_APPS)?;
            let app = key
                .value()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            out.push(parse_id(&app)?);
        }
        Ok(out)
    }
}

impl Writer {
    /// Creates a tenant; an existing tenant is left as it is. Returns the
    /// record and whether it was created.
    pub fn put_tenant(
        &mut self,
        id: &TenantId,
        actor: &str,
    ) -> Result<(TenantRecord, bool), StoreError> {
        if let Some(existing) = self.tenant(id)? {
            return Ok((existing, false));
        }
        let record = TenantRecord {
            created_at: self.now(),
        };
        let encoded = encode("tenants", &record)?;
        self.txn()
            .table(tables::TENANTS)?
            .insert(id.as_str(), encoded.as_slice())
            .in_table(tables::TENANTS)?;
        self.audit(NewEvent::new(event::TENANT_CREATED, actor).tenant(id.as_str()))?;
        Ok((record, true))
    }

    /// Deletes a tenant that has no apps, with its tenant-wide secrets and
    /// its tokens.
    pub fn delete_tenant(&mut self, id: &TenantId, actor: &str) -> Result<(), StoreError> {
        if self.tenant(id)?.is_none() {
            return Err(not_found(Missing::Tenant, id.as_str()));
        }
        let apps = self.app_ids_of(id)?;
        if !apps.is_empty() {
            return Err(Rejected::TenantHasApps {
                tenant: id.clone(),
                apps: apps.len(),
            }
            .into());
        }
        let removed_secrets =
            self.remove_scope_secrets(&crate::model::Scope::Tenant(id.clone()))?;
        let removed_tokens = self.remove_tenant_tokens(id)?;
        self.remove_data_keys(id)?;
        self.txn()
            .table(tables::TENANTS)?
            .remove(id.as_str())
            .in_table(tables::TENANTS)?;
        self.audit(
            NewEvent::new(event::TENANT_DELETED, actor)
                .tenant(id.as_str())
                .with("secrets_removed", removed_secrets)
                .with("tokens_revoked", removed_tokens),
        )?;
        Ok(())
    }

    /// Registers an app under a tenant, or updates its `required_env` and
    /// `auto_redeploy`. Returns the record and whether it was created.
    pub fn put_app(
        &mut self,
        id: &AppId,
        tenant: &TenantId,
        settings: AppSettings,
        actor: &str,
    ) -> Result<(AppRecord, bool), StoreError> {
        if self.tenant(tenant)?.is_none() {
            return Err(not_found(Missing::Tenant, tenant.as_str()));
        }
        let existing = self.app(id)?;
        if let Some(existing) = &existing
            && existing.tenant_id != *tenant
        {
            return Err(Rejected::AppTenantFixed {
                app: id.clone(),
                tenant: existing.tenant_id.clone(),
            }
            .into());
        }
        let now = self.now();
        let created = existing.is_none();
        let record = AppRecord {
            tenant_id: tenant.clone(),
            required_env: settings.required_env,
            created_at: existing.as_ref().map_or(now, |e| e.created_at),
            updated_at: now,
            auto_redeploy: settings.auto_redeploy,
            // Re-registering changes settings, not what the app runs.
            pinned_to: existing.as_ref().and_then(|e| e.pinned_to.clone()),
        };
        if existing.as_ref() == Some(&record) {
            return Ok((record, false));
        }
        let encoded = encode("apps", &record)?;
        self.txn()
            .table(tables::APPS)?
            .insert(id.as_str(), encoded.as_slice())
            .in_table(tables::APPS)?;
        let index_key = format!("{tenant}/{id}");
        self.txn()
            .table(tables::TENANT_APPS)?
            .insert(index_key.as_str(), ())
            .in_table(tables::TENANT_APPS)?;
        let kind = if created {
            event::APP_CREATED
        } else {
            event::APP_UPDATED
        };
        let required: Vec<&str> = record.required_env.iter().map(EnvKey::as_str).collect();
        self.audit(
            NewEvent::new(kind, actor)
                .tenant(tenant.as_str())
                .app(id.as_str())
                .with("required_env", required)
                .with("auto_redeploy", record.auto_redeploy),
        )?;
        Ok((record, created))
    }

    /// Deletes an app with its app-level secrets, deploy history and
    /// idempotency records. Audit events stay. `cleanup_error` says why
    /// removing its cluster objects failed (recorded for retry, and in
    /// `app.deleted`); `None` means they are gone. Returns the deleted
    /// record.
    pub fn delete_app(
        &mut self,
        id: &AppId,
        actor: &str,
        cleanup_error: Option<&str>,
    ) -> Result<AppRecord, StoreError> {
        let Some(record) = self.app(id)? else {
            return Err(not_found(Missing::App, id.as_str()));
        };
        let removed_secrets = self.remove_scope_secrets(&crate::model::Scope::App(id.clone()))?;
        let removed_deploys = {
            let mut deploys = self.txn().table(tables::DEPLOYS)?;
            let mut removed = 0u64;
            deploys
                .retain_in((id.as_str(), 0)..=(id.as_str(), u64::MAX), |_, _| {
                    removed += 1;
                    false
                })
                .in_table(tables::DEPLOYS)?;
            removed
        };
        {
            let mut idempotency = self.txn().table(tables::IDEMPOTENCY)?;
            let (start, end) = tables::prefix_range(id.as_str());
            idempotency
                .retain_in(start.as_str()..end.as_str(), |_, _| false)
                .in_table(tables::IDEMPOTENCY)?;
        }
        let index_key = format!("{}/{id}", record.tenant_id);
        self.txn()
            .table(tables::TENANT_APPS)?
            .remove(index_key.as_str())
            .in_table(tables::TENANT_APPS)?;
        self.txn()
            .table(tables::APPS)?
            .remove(id.as_str())
            .in_table(tables::APPS)?;
        let mut deleted = NewEvent::new(event::APP_DELETED, actor)
            .tenant(record.tenant_id.as_str())
            .app(id.as_str())
            .with("secrets_removed", removed_secrets)
            .with("deploys_removed", removed_deploys)
            .with("cleanup_pending", cleanup_error.is_some());
        match cleanup_error {
            Some(error) => {
                self.cleanup_failed(id, CleanupKind::AppObjects, error)?;
                deleted = deleted.with("cleanup_error", error);
            }
            None => {
                self.cleanup_done(id)?;
            }
        }
        self.remove_redeploy(id)?;
        self.audit(deleted)?;
        Ok(record)
    }
}

/// Parses an id read back from a table key; a bad one means a corrupt file.
fn parse_id<I: TryFrom<String>>(raw: &str) -> Result<I, StoreError> {
    I::try_from(raw.to_owned()).map_err(|_| StoreError::CorruptKey {
        table: "tenants/apps",
        key: raw.to_owned(),
    })
}
