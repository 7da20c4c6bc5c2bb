//! Test-only access to a closed redb file, for tests that must damage it
//! the way an attacker with write access to the disk would: edit one audit
//! event without fixing its hash, or cut the tail off the log.
//!
//! Hidden from the docs and never called by exsec itself. Each function
//! opens the file, makes one change in one durable transaction, and closes
//! it; it fails like [`Store::open`] while a daemon holds the file.

use std::path::Path;

use redb::{Database, ReadableTable};

use super::error::Context;
use super::records::StoredAuditEvent;
use super::{OpenError, Store, StoreError, Tables, Writer, decode, encode, tables};
use crate::audit::AuditEvent;

/// Rewrites audit event `seq` after `edit` changed it, keeping its stored
/// hash: exactly what verification must catch. `Ok(false)` when there is
/// no such event.
pub fn tamper_audit_event(
    path: &Path,
    seq: u64,
    edit: impl FnOnce(&mut AuditEvent),
) -> Result<bool, DamageError> {
    let db = open(path)?;
    let writer = Writer::begin(&db)?;
    let found = {
        let mut audit = writer.txn().table(tables::AUDIT)?;
        let stored: Option<StoredAuditEvent> = match audit.get(seq).in_table(tables::AUDIT)? {
            Some(bytes) => Some(decode("paas_audit_events", bytes.value())?),
            None => None,
        };
        match stored {
            Some(stored) => {
                let mut event = stored.into_event(seq);
                edit(&mut event);
                let encoded = encode("paas_audit_events", &StoredAuditEvent::from_event(&event))?;
                audit
                    .insert(seq, encoded.as_slice())
                    .in_table(tables::AUDIT)?;
                true
            }
            None => false,
        }
    };
    writer.finish()?;
    Ok(found)
}

/// Removes every audit event after `seq`: a cut tail that only an anchor
/// recorded earlier can reveal. Returns how many were removed.
pub fn truncate_audit_log(path: &Path, seq: u64) -> Result<u64, DamageError> {
    let db = open(path)?;
    let writer = Writer::begin(&db)?;
    let removed = {
        let mut audit = writer.txn().table(tables::AUDIT)?;
        let doomed: Vec<u64> = audit
            .range(seq.saturating_add(1)..)
            .in_table(tables::AUDIT)?
            .map(|entry| entry.map(|(key, _)| key.value()))
            .collect::<Result<_, _>>()
            .in_table(tables::AUDIT)?;
        for key in &doomed {
            audit.remove(key).in_table(tables::AUDIT)?;
        }
        doomed.len() as u64
    };
    writer.finish()?;
    Ok(removed)
}

/// Why damaging a file failed.
#[derive(Debug, thiserror::Error)]
pub enum DamageError {
    /// The file could not be opened (a daemon holds it, a newer schema).
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Reading or writing it failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn open(path: &Path) -> Result<Database, DamageError> {
    // Through the store first: the same lock error and schema checks.
    drop(Store::open(
        path,
        super::StoreOptions::with_cache_size(1024 * 1024),
    )?);
    Database::open(path).map_err(|source| {
        OpenError::Open {
            path: path.to_owned(),
            source,
        }
        .into()
    })
}
