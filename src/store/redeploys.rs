//! The automatic-redeploy queue (SPEC §11.2): a secret write or delete that
//! changes the effective set of an app with `auto_redeploy` queues a
//! redeploy **in its own transaction**, so a crash between the write and
//! the redeploy loses nothing. The daemon's worker (`crate::redeploy`)
//! decides when to run what is queued; this module only keeps the records.

use std::collections::BTreeSet;

use redb::ReadableTable;

use super::error::Context;
use super::records::RedeployRecord;
use super::{Snapshot, StoreError, Tables, Writer, decode, encode, tables};
use crate::model::{AppId, EnvKey, Scope, TenantId};

impl<T: Tables> Snapshot<T> {
    /// Every queued redeploy, by app id.
    pub fn redeploy_queue(&self) -> Result<Vec<(AppId, RedeployRecord)>, StoreError> {
        let table = self.txn().table(tables::REDEPLOY_QUEUE)?;
        let mut out = Vec::new();
        for entry in table.iter().in_table(tables::REDEPLOY_QUEUE)? {
            let (key, bytes) = entry.in_table(tables::REDEPLOY_QUEUE)?;
            let app_id = AppId::parse(key.value()).map_err(|_| StoreError::CorruptKey {
                table: "redeploy_queue",
                key: key.value().to_owned(),
            })?;
            out.push((app_id, decode("redeploy_queue", bytes.value())?));
        }
        Ok(out)
    }

    /// The queued redeploy of one app, if any.
    pub fn queued_redeploy(&self, app_id: &AppId) -> Result<Option<RedeployRecord>, StoreError> {
        let table = self.txn().table(tables::REDEPLOY_QUEUE)?;
        table
            .get(app_id.as_str())
            .in_table(tables::REDEPLOY_QUEUE)?
            .map(|bytes| decode("redeploy_queue", bytes.value()))
            .transpose()
    }
}

impl Writer {
    /// Queues a redeploy of every app whose effective set the change of
    /// `keys` in `scope` alters, that has `auto_redeploy` and a successful
    /// deploy to repeat: for an app scope, that app; for a tenant scope,
    /// every app of the tenant that does not override the key. Returns the
    /// apps queued.
    pub(super) fn queue_redeploys(
        &mut self,
        scope: &Scope,
        keys: &BTreeSet<EnvKey>,
    ) -> Result<Vec<AppId>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // One read of each candidate app: this runs inside every secret
        // write.
        let candidates = match scope {
            Scope::App(app_id) => match self.app(app_id)? {
                Some(app) => vec![(app_id.clone(), app)],
                None => return Ok(Vec::new()),
            },
            Scope::Tenant(tenant) => self.apps(Some(tenant))?,
        };
        let mut queued = Vec::new();
        for (app_id, app) in candidates {
            if !app.auto_redeploy || self.last_succeeded_deploy(&app_id)?.is_none() {
                continue;
            }
            if let Scope::Tenant(_) = scope {
                let overrides: BTreeSet<EnvKey> = self
                    .secrets(&Scope::App(app_id.clone()))?
                    .into_iter()
                    .map(|record| record.key)
                    .collect();
                if keys.is_subset(&overrides) {
                    continue;
                }
            }
            self.queue_redeploy(&app_id, &app.tenant_id)?;
            queued.push(app_id);
        }
        Ok(queued)
    }

    /// Queues (or re-queues, bumping its generation) one app's redeploy.
    pub(super) fn queue_redeploy(
        &mut self,
        app_id: &AppId,
        tenant: &TenantId,
    ) -> Result<(), StoreError> {
        let now = self.now();
        let record = match self.queued_redeploy(app_id)? {
            Some(existing) => RedeployRecord {
                changed_at: now,
                generation: existing.generation.wrapping_add(1),
                ..existing
            },
            None => RedeployRecord {
                tenant_id: tenant.clone(),
                queued_at: now,
                changed_at: now,
                generation: 1,
                attempts: 0,
                last_error: None,
            },
        };
        self.put_redeploy(app_id, &record)
    }

    fn put_redeploy(&mut self, app_id: &AppId, record: &RedeployRecord) -> Result<(), StoreError> {
        let encoded = encode("redeploy_queue", record)?;
        self.txn()
            .table(tables::REDEPLOY_QUEUE)?
            .insert(app_id.as_str(), encoded.as_slice())
            .in_table(tables::REDEPLOY_QUEUE)?;
        Ok(())
    }

    /// Removes the app's queued redeploy if it is still the `generation`
    /// the worker ran (a change that came in meanwhile keeps it queued).
    /// Returns whether it was removed.
    pub fn finish_redeploy(&mut self, app_id: &AppId, generation: u64) -> Result<bool, StoreError> {
        match self.queued_redeploy(app_id)? {
            Some(record) if record.generation == generation => {
                self.remove_redeploy(app_id)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Records a failed attempt (the record stays queued for a retry).
    pub fn redeploy_failed(
        &mut self,
        app_id: &AppId,
        error: &str,
    ) -> Result<Option<RedeployRecord>, StoreError> {
        let Some(mut record) = self.queued_redeploy(app_id)? else {
            return Ok(None);
        };
        record.attempts = record.attempts.saturating_add(1);
        record.last_error = Some(error.to_owned());
        self.put_redeploy(app_id, &record)?;
        Ok(Some(record))
    }

    /// Drops the app's queued redeploy (app deletion, or done).
    pub(super) fn remove_redeploy(&mut self, app_id: &AppId) -> Result<(), StoreError> {
        self.txn()
            .table(tables::REDEPLOY_QUEUE)?
            .remove(app_id.as_str())
            .in_table(tables::REDEPLOY_QUEUE)?;
        Ok(())
    }
}
