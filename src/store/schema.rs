//! Schema version and forward-only migrations.
//!
//! The version lives in the `meta` table. A new file gets [`CURRENT`]; an
//! older file is migrated forward in one transaction; a newer file is
//! refused, never downgraded.

use std::path::Path;

use redb::{Database, ReadableDatabase, TableHandle};

use super::error::{Context, OpenError, Operation};
use super::{StoreError, Tables, Writer, tables};

/// The schema this build writes.
///
/// - 1: the first.
/// - 2: adds `pending_cleanups`.
pub const CURRENT: u32 = 2;

/// Makes the file ready for this build: creates tables, records or checks
/// the schema version, migrates forward. Writes only when something is
/// missing or old, so a normal start does not commit.
pub(super) fn prepare(db: &Database, path: &Path) -> Result<(), OpenError> {
    let failed = |source| OpenError::Prepare {
        path: path.to_owned(),
        source: Box::new(source),
    };
    let (present, version) = inspect(db).map_err(failed)?;
    if let Some(found) = version
        && found > CURRENT
    {
        return Err(OpenError::NewerSchema {
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
    create_and_migrate(db, version).map_err(failed)
}

/// The tables present and the schema version recorded (if any).
fn inspect(db: &Database) -> Result<(Vec<String>, Option<u32>), StoreError> {
    let read = db.begin_read().during(Operation::BeginRead)?;
    let present: Vec<String> = read
        .list_tables()
        .during(Operation::ListTables)?
        .map(|t| t.name().to_owned())
        .collect();
    let version = if present.iter().any(|name| name == tables::META.name()) {
        stored_version(&read)?
    } else {
        None
    };
    Ok((present, version))
}

/// Creates every missing table and migrates a file of schema `version`
/// (none: a new file) to [`CURRENT`], in one transaction.
fn create_and_migrate(db: &Database, version: Option<u32>) -> Result<(), StoreError> {
    let writer = Writer::begin(db)?;
    {
        let txn = writer.txn();
        txn.table(tables::META)?;
        txn.table(tables::TENANTS)?;
        txn.table(tables::APPS)?;
        txn.table(tables::TENANT_APPS)?;
        txn.table(tables::SECRETS)?;
        txn.table(tables::KEY_USAGE)?;
        txn.table(tables::TOKENS)?;
        txn.table(tables::DEPLOYS)?;
        txn.table(tables::IDEMPOTENCY)?;
        txn.table(tables::AUDIT)?;
        // Forward migrations, one step per version.
        let from = version.unwrap_or(CURRENT);
        if from < 2 {
            migrate_1_to_2(txn)?;
        }
        txn.table(tables::PENDING_CLEANUPS)?;
        write_version(txn, CURRENT)?;
    }
    writer.finish()?;
    Ok(())
}

/// Version 2 adds the `pending_cleanups` table; nothing is pending in a
/// file from version 1 (it never recorded a failed removal).
fn migrate_1_to_2(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.table(tables::PENDING_CLEANUPS)?;
    tracing::info!("schema migrated from version 1 to 2 (pending_cleanups)");
    Ok(())
}

fn stored_version<T: Tables>(txn: &T) -> Result<Option<u32>, StoreError> {
    use redb::ReadableTable;
    let meta = txn.table(tables::META)?;
    let Some(bytes) = meta
        .get(tables::META_SCHEMA_VERSION)
        .in_table(tables::META)?
    else {
        return Ok(None);
    };
    super::decode("meta", bytes.value()).map(Some)
}

/// Records `version` as the file's schema.
fn write_version(txn: &redb::WriteTransaction, version: u32) -> Result<(), StoreError> {
    let encoded = super::encode("meta", &version)?;
    txn.table(tables::META)?
        .insert(tables::META_SCHEMA_VERSION, encoded.as_slice())
        .in_table(tables::META)?;
    Ok(())
}

#[cfg(test)]
pub(super) fn force_version(db: &Database, version: u32) -> Result<(), StoreError> {
    let writer = Writer::begin(db)?;
    write_version(writer.txn(), version)?;
    writer.finish()?;
    Ok(())
}
