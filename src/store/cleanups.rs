//! Pending cleanups: cluster objects that hold plaintext — a manifests file
//! of a deleted app, a Secret left after an app's set became empty — and
//! could not be removed. They are recorded here so that removal is retried
//! until it succeeds, across restarts (SPEC §11.1 "plaintext left behind").
//!
//! This module only keeps the records; `crate::deploy` decides when to
//! remove and retries.

use redb::ReadableTable;

use super::error::Context;
use super::records::{CleanupKind, CleanupRecord};
use super::{Snapshot, StoreError, Tables, Writer, decode, encode, tables};
use crate::model::AppId;

impl<T: Tables> Snapshot<T> {
    /// Every pending cleanup, by app id.
    pub fn pending_cleanups(&self) -> Result<Vec<(AppId, CleanupRecord)>, StoreError> {
        let table = self.txn().table(tables::PENDING_CLEANUPS)?;
        let mut out = Vec::new();
        for entry in table.iter().in_table(tables::PENDING_CLEANUPS)? {
            let (key, bytes) = entry.in_table(tables::PENDING_CLEANUPS)?;
            let app_id = AppId::parse(key.value()).map_err(|_| StoreError::CorruptKey {
                table: "pending_cleanups",
                key: key.value().to_owned(),
            })?;
            out.push((app_id, decode("pending_cleanups", bytes.value())?));
        }
        Ok(out)
    }

    /// The pending cleanup of one app, if any.
    pub fn pending_cleanup(&self, app_id: &AppId) -> Result<Option<CleanupRecord>, StoreError> {
        let table = self.txn().table(tables::PENDING_CLEANUPS)?;
        table
            .get(app_id.as_str())
            .in_table(tables::PENDING_CLEANUPS)?
            .map(|bytes| decode("pending_cleanups", bytes.value()))
            .transpose()
    }
}

impl Writer {
    /// Records that removing `kind` of the app failed with `error` (a
    /// message without values); a record already there keeps its start and
    /// counts one more attempt. A deleted app's objects outrank a stale
    /// Secret: removing them removes the Secret too.
    pub fn cleanup_failed(
        &mut self,
        app_id: &AppId,
        kind: CleanupKind,
        error: &str,
    ) -> Result<CleanupRecord, StoreError> {
        let now = self.now();
        let record = match self.pending_cleanup(app_id)? {
            Some(existing) => CleanupRecord {
                kind: if existing.kind == CleanupKind::AppObjects {
                    CleanupKind::AppObjects
                } else {
                    kind
                },
                since: existing.since,
                attempts: existing.attempts.saturating_add(1),
                last_attempt: now,
                last_error: error.to_owned(),
            },
            None => CleanupRecord {
                kind,
                since: now,
                attempts: 1,
                last_attempt: now,
                last_error: error.to_owned(),
            },
        };
        let encoded = encode("pending_cleanups", &record)?;
        self.txn()
            .table(tables::PENDING_CLEANUPS)?
            .insert(app_id.as_str(), encoded.as_slice())
            .in_table(tables::PENDING_CLEANUPS)?;
        Ok(record)
    }

    /// Forgets the app's pending cleanup (its objects are gone or were
    /// replaced); returns it if there was one.
    pub fn cleanup_done(&mut self, app_id: &AppId) -> Result<Option<CleanupRecord>, StoreError> {
        let removed = self
            .txn()
            .table(tables::PENDING_CLEANUPS)?
            .remove(app_id.as_str())
            .in_table(tables::PENDING_CLEANUPS)?
            .map(|bytes| decode("pending_cleanups", bytes.value()))
            .transpose()?;
        Ok(removed)
    }
}
