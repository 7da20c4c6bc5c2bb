//! Schema version and forward-only migrations.
//!
//! The version lives in the `meta` table. A new file gets [`CURRENT`]; an
//! older file is migrated forward in one transaction; a newer file is
//! refused, never downgraded.

use std::path::Path;

use redb::{Database, ReadableDatabase, TableHandle};

use super::{StoreError, Tables, Writer, tables};

/// The schema this build writes.
///
/// - 1: the first.
/// - 2: adds `pending_cleanups`.
pub const CURRENT: u32 = 2;

/// Makes the file ready for this build: creates tables, records or checks
/// the schema version, migrates forward. Writes only when something is
/// missing or old, so a normal start does not commit.
pub(super) fn prepare(db: &Database, path: &Path) -> Result<(), StoreError> {
    let read = db.begin_read()?;
    let present: Vec<String> = read.list_tables()?.map(|t| t.name().to_owned()).collect();
    let version = if present.iter().any(|name| name == tables::META.name()) {
        stored_version(&read)?
    } else {
        None
    };
    drop(read);
    if let Some(found) = version
        && found > CURRENT
    {
        return Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found,
            supported: CURRENT,
        });
    }
    let complete = tables::names()
        .iter()
        .all(|name| present.iter().any(|p| p == name));
    if complete && version == Some(CURRENT) {
        return Ok(());
    }
    let writer = Writer::begin(db)?;
    {
        let txn = writer.txn();
        txn.open_table(tables::META)?;
        txn.open_table(tables::TENANTS)?;
        txn.open_table(tables::APPS)?;
        txn.open_table(tables::TENANT_APPS)?;
        txn.open_table(tables::SECRETS)?;
        txn.open_table(tables::KEY_USAGE)?;
        txn.open_table(tables::TOKENS)?;
        txn.open_table(tables::DEPLOYS)?;
        txn.open_table(tables::IDEMPOTENCY)?;
        txn.open_table(tables::AUDIT)?;
        // Forward migrations, one step per version.
        let from = version.unwrap_or(CURRENT);
        if from < 2 {
            migrate_1_to_2(txn)?;
        }
        txn.open_table(tables::PENDING_CLEANUPS)?;
        let encoded = super::encode("meta", &CURRENT)?;
        txn.open_table(tables::META)?
            .insert(tables::META_SCHEMA_VERSION, encoded.as_slice())?;
    }
    writer.finish()?;
    Ok(())
}

/// Version 2 adds the `pending_cleanups` table; nothing is pending in a
/// file from version 1 (it never recorded a failed removal).
fn migrate_1_to_2(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(tables::PENDING_CLEANUPS)?;
    tracing::info!("schema migrated from version 1 to 2 (pending_cleanups)");
    Ok(())
}

fn stored_version<T: Tables>(txn: &T) -> Result<Option<u32>, StoreError> {
    use redb::ReadableTable;
    let meta = txn.table(tables::META)?;
    let Some(bytes) = meta.get(tables::META_SCHEMA_VERSION)? else {
        return Ok(None);
    };
    super::decode("meta", bytes.value()).map(Some)
}

#[cfg(test)]
pub(super) fn force_version(db: &Database, version: u32) -> Result<(), StoreError> {
    let writer = Writer::begin(db)?;
    {
        let encoded = super::encode("meta", &version)?;
        writer
            .txn()
            .open_table(tables::META)?
            .insert(tables::META_SCHEMA_VERSION, encoded.as_slice())?;
    }
    writer.finish()?;
    Ok(())
}
