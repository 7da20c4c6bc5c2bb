//! Rollback support (SPEC §11.3): the exact secret set an earlier deploy
//! injected, reopened from the kept versions, and the app's pin to that
//! deploy.
//!
//! A rollback either gets every version the deploy used or nothing: one
//! missing version refuses it (`snapshot_unavailable`), before anything is
//! applied.

use super::error::{Context, Missing, Rejected, not_found};
use super::history::KeptValue;
use super::records::{AppRecord, DeployRecord, SecretRecord};
use super::secrets::SecretLayout;
use super::{Snapshot, StoreError, Tables, Writer, encode, tables};
use crate::audit::{NewEvent, event};
use crate::model::{AppId, EnvKey, Provider, Scope, ScopeKind};

/// What a finished deploy does to its app's pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinChange {
    /// Leaves it as it is (a failed deploy, an automatic redeploy).
    Keep,
    /// Pins the app to this deploy (a rollback to it succeeded).
    Set(String),
    /// Clears it (a normal deploy succeeded).
    Clear,
}

impl<T: Tables> Snapshot<T> {
    /// The deploy `deploy_id` of `app_id` and the secret layout it
    /// injected, every value at the version it used. Refused when the
    /// deploy is unknown, did not leave the Secret in step with its set,
    /// or used a version no longer kept.
    pub fn rollback_layout(
        &self,
        app_id: &AppId,
        deploy_id: &str,
    ) -> Result<(DeployRecord, SecretLayout), StoreError> {
        let Some(target) = self.deploy(app_id, deploy_id)? else {
            return Err(not_found(Missing::Deploy, deploy_id));
        };
        if !target.injection.synced() {
            return Err(Rejected::NothingToRollBackTo {
                deploy_id: deploy_id.to_owned(),
            }
            .into());
        }
        let mut layout = SecretLayout {
            tenant_id: target.tenant_id.clone(),
            // Every data key of the tenant: a kept version may be sealed
            // under an older one.
            data_keys: self.data_keys(&target.tenant_id)?,
            tenant: Vec::new(),
            app: Vec::new(),
        };
        for injected in &target.injection.injected {
            let unavailable = || -> StoreError {
                Rejected::SnapshotUnavailable {
                    deploy_id: deploy_id.to_owned(),
                    scope: injected.source,
                    provider: injected.provider.clone(),
                    key: injected.key.clone(),
                    version: injected.version,
                }
                .into()
            };
            let (Ok(provider), Ok(key)) = (
                Provider::parse(&injected.provider),
                EnvKey::parse(&injected.key),
            ) else {
                return Err(unavailable());
            };
            let scope = match injected.source {
                ScopeKind::Tenant => Scope::Tenant(target.tenant_id.clone()),
                ScopeKind::App => Scope::App(app_id.clone()),
            };
            let KeptValue::Sealed(sealed) =
                self.secret_version(&scope, &provider, &key, injected.version)?
            else {
                return Err(unavailable());
            };
            let record = SecretRecord {
                scope,
                provider,
                key,
                created_at: injected.updated_at,
                updated_at: injected.updated_at,
                version: injected.version,
                sealed,
            };
            match injected.source {
                ScopeKind::Tenant => layout.tenant.push(record),
                ScopeKind::App => layout.app.push(record),
            }
        }
        Ok((target, layout))
    }
}

impl Writer {
    /// Applies a finished deploy's [`PinChange`] to its app (gone apps are
    /// left alone: the deploy raced a deletion).
    pub fn change_pin(&mut self, app_id: &AppId, change: &PinChange) -> Result<(), StoreError> {
        let pinned_to = match change {
            PinChange::Keep => return Ok(()),
            PinChange::Set(deploy_id) => Some(deploy_id.clone()),
            PinChange::Clear => None,
        };
        let Some(app) = self.app(app_id)? else {
            return Ok(());
        };
        if app.pinned_to == pinned_to {
            return Ok(());
        }
        self.store_app(app_id, &AppRecord { pinned_to, ..app })
    }

    /// `POST /v1/apps/{id}/unpin`: the app follows its current secrets
    /// again (`app.unpinned`, with the deploy it was pinned to). Returns
    /// the record; unpinning an unpinned app changes nothing.
    pub fn unpin(&mut self, app_id: &AppId, actor: &str) -> Result<AppRecord, StoreError> {
        let Some(app) = self.app(app_id)? else {
            return Err(not_found(Missing::App, app_id.as_str()));
        };
        let Some(pinned_to) = app.pinned_to.clone() else {
            return Ok(app);
        };
        let record = AppRecord {
            pinned_to: None,
            ..app
        };
        self.store_app(app_id, &record)?;
        self.audit(
            NewEvent::new(event::APP_UNPINNED, actor)
                .tenant(record.tenant_id.as_str())
                .app(app_id.as_str())
                .with("pinned_to", pinned_to),
        )?;
        // A change that waited for the pin counts as new: it rolls out
        // after the usual quiet time, not at its next backoff.
        if self.queued_redeploy(app_id)?.is_some() {
            self.queue_redeploy(app_id, &record.tenant_id)?;
        }
        Ok(record)
    }

    fn store_app(&mut self, app_id: &AppId, record: &AppRecord) -> Result<(), StoreError> {
        let encoded = encode("apps", record)?;
        self.txn()
            .table(tables::APPS)?
            .insert(app_id.as_str(), encoded.as_slice())
            .in_table(tables::APPS)?;
        Ok(())
    }
}
