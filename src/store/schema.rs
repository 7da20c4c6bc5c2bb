//! Schema version and forward-only migrations.
//!
//! The version lives in the `meta` table. A new file gets [`CURRENT`]; an
//! older file is migrated forward in one transaction; a newer file is
//! refused, never downgraded.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableHandle};

use super::error::{Context, OpenError, Operation};
use super::records::{AppRecord, DeployRecord, SecretRecord, SecretVersionRecord};
use super::{StoreError, Tables, Writer, legacy, tables};
use crate::crypto::InstallationKey;

/// The schema this build writes.
///
/// - 1: the first.
/// - 2: adds `pending_cleanups`.
/// - 3: app records gain `auto_redeploy`, deploy records `trigger`,
///   `secrets_hash`, `restarted_at` and `rollout`; `meta` gains the
///   installation key; adds `redeploy_queue` (SPEC §11.2).
/// - 4: adds `external_secret_versions` (each live secret gets its current
///   version there); app records gain `pinned_to` (SPEC §11.3).
/// - 5: sealed values (live and kept) name their sealer, a master key or a
///   tenant data key; adds `tenant_data_keys` (SPEC §11.4).
pub const CURRENT: u32 = 5;

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
    if complete && version == Some(CURRENT) && has_installation_key(db).map_err(failed)? {
        return Ok(());
    }
    // Drawn before the transaction, used only if the file has none.
    let fresh_key = InstallationKey::generate().map_err(|source| OpenError::Random {
        path: path.to_owned(),
        source,
    })?;
    create_and_migrate(db, version, &fresh_key).map_err(failed)
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
fn create_and_migrate(
    db: &Database,
    version: Option<u32>,
    fresh_key: &InstallationKey,
) -> Result<(), StoreError> {
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
        if from < 3 {
            migrate_2_to_3(txn)?;
        }
        if from < 4 {
            migrate_3_to_4(txn)?;
        }
        if from < 5 {
            migrate_4_to_5(txn)?;
        }
        txn.table(tables::PENDING_CLEANUPS)?;
        txn.table(tables::REDEPLOY_QUEUE)?;
        txn.table(tables::SECRET_VERSIONS)?;
        txn.table(tables::TENANT_DATA_KEYS)?;
        ensure_installation_key(txn, fresh_key)?;
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

/// Version 3 rewrites every app and deploy record in today's layout (the
/// new fields at their defaults: `auto_redeploy` off, trigger `api`, no
/// secrets hash). One transaction: a crash leaves version 2 untouched and
/// the next start migrates again.
fn migrate_2_to_3(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    let migrated_apps =
        rewrite_str_table::<legacy::AppRecordV2, legacy::AppRecordV3>(txn, tables::APPS, "apps")?;
    let mut deploys = txn.table(tables::DEPLOYS)?;
    let mut migrated_deploys = Vec::new();
    for entry in deploys.iter().in_table(tables::DEPLOYS)? {
        let (key, bytes) = entry.in_table(tables::DEPLOYS)?;
        let old: legacy::DeployRecordV2 = super::decode("deploys", bytes.value())?;
        let record = DeployRecord::from(old);
        let (app, seq) = key.value();
        migrated_deploys.push(((app.to_owned(), seq), super::encode("deploys", &record)?));
    }
    for ((app, seq), encoded) in &migrated_deploys {
        deploys
            .insert((app.as_str(), *seq), encoded.as_slice())
            .in_table(tables::DEPLOYS)?;
    }
    tracing::info!(
        apps = migrated_apps,
        deploys = migrated_deploys.len(),
        "schema migrated from version 2 to 3 (automatic redeploy, secrets hash)"
    );
    Ok(())
}

/// Version 4 rewrites every app record with `pinned_to` empty and gives
/// every live secret its current version in `external_secret_versions`
/// (the actor is unknown: `migration`). Older values were never kept.
/// Both sides are read and written in their schema-4 layouts; the 4 → 5
/// step brings them to today's.
fn migrate_3_to_4(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    let migrated_apps =
        rewrite_str_table::<legacy::AppRecordV3, AppRecord>(txn, tables::APPS, "apps")?;
    let secrets = txn.table(tables::SECRETS)?;
    let mut versions = txn.table(tables::SECRET_VERSIONS)?;
    let mut migrated_secrets = 0u64;
    for entry in secrets.iter().in_table(tables::SECRETS)? {
        let (name, bytes) = entry.in_table(tables::SECRETS)?;
        let record: legacy::SecretRecordV4 = super::decode("external_secrets", bytes.value())?;
        let version = record.current_version("migration");
        let encoded = super::encode("external_secret_versions", &version)?;
        versions
            .insert((name.value(), version.version()), encoded.as_slice())
            .in_table(tables::SECRET_VERSIONS)?;
        migrated_secrets += 1;
    }
    tracing::info!(
        apps = migrated_apps,
        secrets = migrated_secrets,
        "schema migrated from version 3 to 4 (secret history, pinned deploys)"
    );
    Ok(())
}

/// Version 5 (tenant data keys, SPEC §11.4) adds `tenant_data_keys` and
/// rewrites every live secret and every kept version so its sealed value
/// names its sealer (all of them a master key; the ciphertext is kept byte
/// for byte). Moving the values under data keys needs the master keys,
/// which the store never sees: the rotation job does it in the background
/// after start.
fn migrate_4_to_5(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.table(tables::TENANT_DATA_KEYS)?;
    let secrets = rewrite_str_table::<legacy::SecretRecordV4, SecretRecord>(
        txn,
        tables::SECRETS,
        "external_secrets",
    )?;
    let mut versions = txn.table(tables::SECRET_VERSIONS)?;
    let mut migrated = Vec::new();
    for entry in versions.iter().in_table(tables::SECRET_VERSIONS)? {
        let (key, bytes) = entry.in_table(tables::SECRET_VERSIONS)?;
        let old: legacy::SecretVersionRecordV4 =
            super::decode("external_secret_versions", bytes.value())?;
        let (name, version) = key.value();
        migrated.push((
            (name.to_owned(), version),
            super::encode("external_secret_versions", &SecretVersionRecord::from(old))?,
        ));
    }
    for ((name, version), encoded) in &migrated {
        versions
            .insert((name.as_str(), *version), encoded.as_slice())
            .in_table(tables::SECRET_VERSIONS)?;
    }
    tracing::info!(
        secrets,
        versions = migrated.len(),
        "schema migrated from version 4 to 5 (tenant data keys; values move under them in the background)"
    );
    Ok(())
}

/// Rewrites every record of a table keyed by text from layout `Old` to
/// `New`; returns how many.
fn rewrite_str_table<Old, New>(
    txn: &redb::WriteTransaction,
    definition: redb::TableDefinition<'static, &'static str, &'static [u8]>,
    name: &'static str,
) -> Result<usize, StoreError>
where
    Old: serde::de::DeserializeOwned,
    New: From<Old> + serde::Serialize,
{
    let mut table = txn.table(definition)?;
    let mut migrated = Vec::new();
    for entry in table.iter().in_table(definition)? {
        let (id, bytes) = entry.in_table(definition)?;
        let old: Old = super::decode(name, bytes.value())?;
        migrated.push((id.value().to_owned(), super::encode(name, &New::from(old))?));
    }
    for (id, encoded) in &migrated {
        table
            .insert(id.as_str(), encoded.as_slice())
            .in_table(definition)?;
    }
    Ok(migrated.len())
}

/// Whether `meta` holds the installation key.
fn has_installation_key(db: &Database) -> Result<bool, StoreError> {
    let read = db.begin_read().during(Operation::BeginRead)?;
    let meta = read.table(tables::META)?;
    Ok(meta
        .get(tables::META_INSTALLATION_KEY)
        .in_table(tables::META)?
        .is_some())
}

/// Stores `fresh` as the installation key (the key of the secrets hash)
/// unless the file has one: once per file, never replaced — a new key
/// would change every app's hash and restart every pod.
fn ensure_installation_key(
    txn: &redb::WriteTransaction,
    fresh: &InstallationKey,
) -> Result<(), StoreError> {
    let mut meta = txn.table(tables::META)?;
    if meta
        .get(tables::META_INSTALLATION_KEY)
        .in_table(tables::META)?
        .is_some()
    {
        return Ok(());
    }
    meta.insert(tables::META_INSTALLATION_KEY, fresh.as_bytes().as_slice())
        .in_table(tables::META)?;
    Ok(())
}

fn stored_version<T: Tables>(txn: &T) -> Result<Option<u32>, StoreError> {
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
