//! Backups: every table copied in one read transaction (a consistent
//! snapshot), and restoring such a copy into a fresh redb file.
//!
//! Values are copied byte for byte as stored, so secret values stay
//! sealed: a backup is useless without the key directory, and restoring
//! needs no key. A backup is checked whole (checksum, header, every
//! record) before anything is written, and a restored file is checked
//! (audit chain from its checkpoint, head equal to the backup's anchor,
//! record counts) before it replaces anything.
//!
//! # Format, version 1
//!
//! Integers are big-endian.
//!
//! ```text
//! exsec-backup 1\n                  magic and format version (ASCII line)
//! {header JSON}\n                   BackupHeader on one line
//! 'R' u8 name-len name  u32 key-len key  u32 value-len value     one per table entry
//! 'E' u64 record-count
//! SHA-256 of every byte above       32 raw bytes
//! ```
//!
//! Keys are written in this format's own encoding: text keys as UTF-8,
//! `u64` keys as 8 bytes little-endian (as redb stores them), the
//! `(app_id, seq)` key of `deploys` as `u32 len ‖ app_id ‖ u64 LE`. Values
//! are redb's bytes: codec records verbatim, `u64` counters as 8 bytes
//! little-endian, the unit value as nothing.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use redb::{
    Database, Durability, Key, ReadTransaction, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, TableDefinition, TableHandle, Value, WriteTransaction,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Store, StoreError, StoreOptions, schema, tables};
use crate::audit::{Anchor, ChainBreak};
use crate::model::Timestamp;

/// First bytes of every backup, before the format version.
pub const MAGIC: &str = "exsec-backup";
/// The format this build writes and reads.
pub const FORMAT: u32 = 1;
/// Largest key or value accepted when reading a backup; bounds what a
/// corrupt length can make us allocate. Stored records are far smaller.
const MAX_FIELD_BYTES: usize = 4 * 1024 * 1024;
/// Length of the SHA-256 trailer.
const TRAILER_BYTES: usize = 32;

/// Calls `$f::<K, V>(definition, args…)?` for every table, in a fixed order.
macro_rules! for_each_table {
    ($f:ident, $($arg:expr),*) => {
        $f(tables::META, $($arg),*)?;
        $f(tables::TENANTS, $($arg),*)?;
        $f(tables::APPS, $($arg),*)?;
        $f(tables::TENANT_APPS, $($arg),*)?;
        $f(tables::SECRETS, $($arg),*)?;
        $f(tables::KEY_USAGE, $($arg),*)?;
        $f(tables::TOKENS, $($arg),*)?;
        $f(tables::DEPLOYS, $($arg),*)?;
        $f(tables::IDEMPOTENCY, $($arg),*)?;
        $f(tables::AUDIT, $($arg),*)?;
    };
}

/// The first line after the magic: what the backup holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupHeader {
    /// Format version ([`FORMAT`]).
    pub format: u32,
    /// Schema version of the store it was taken from.
    pub schema_version: u32,
    /// When it was taken (RFC 3339).
    pub created_at: String,
    /// Version of the exsec that wrote it.
    pub exsec_version: String,
    /// The audit head at the snapshot: the restored chain must end here.
    pub audit_head: Anchor,
    /// The pruning checkpoint the chain starts from.
    pub audit_checkpoint: Anchor,
    /// Number of entries per table.
    pub tables: BTreeMap<String, u64>,
}

impl BackupHeader {
    /// Total number of records.
    pub fn records(&self) -> u64 {
        self.tables.values().sum()
    }
}

/// What can go wrong taking, checking or restoring a backup.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Reading or writing a file failed.
    #[error("{action} {path}")]
    Io {
        /// What was being done (`cannot read`, `cannot write`…).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Writing the backup stream failed (the client went away).
    #[error("cannot write the backup stream")]
    Stream(#[source] io::Error),
    /// The file does not start like a backup.
    #[error("{path} is not an exsec backup")]
    NotABackup {
        /// The file.
        path: PathBuf,
    },
    /// The file was written in a format this build does not read.
    #[error("backup format {found} is not supported by this exsec (it reads format {FORMAT})")]
    UnsupportedFormat {
        /// The format found.
        found: String,
    },
    /// The checksum does not match: the file was altered or cut short.
    #[error("backup checksum mismatch: the file was altered or is incomplete; do not restore it")]
    Checksum,
    /// The content is malformed (it passed the checksum, so it was built so).
    #[error("backup is malformed at byte {offset}: {reason}")]
    Malformed {
        /// Where.
        offset: usize,
        /// What.
        reason: String,
    },
    /// Taken from a newer schema than this build reads.
    #[error(
        "backup has schema version {found}, newer than this exsec supports ({supported}); restore it with the exsec version that wrote it ({version})"
    )]
    NewerSchema {
        /// Its schema.
        found: u32,
        /// Ours.
        supported: u32,
        /// The exsec that wrote it.
        version: String,
    },
    /// The target database exists and `--force` was not given.
    #[error(
        "database {path} already exists; pass --force to replace it (the old file is kept beside it)"
    )]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The store failed (open, lock, read).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The restored audit chain does not verify.
    #[error("the restored audit log does not verify")]
    Chain(#[source] ChainBreak),
    /// The restored head is not the backup's anchor.
    #[error("the restored audit head is {found}, but the backup recorded {expected}")]
    HeadMismatch {
        /// The anchor in the header.
        expected: Anchor,
        /// The head after restoring.
        found: Anchor,
    },
}

impl<E: Into<redb::Error>> From<E> for BackupError {
    fn from(error: E) -> Self {
        BackupError::Store(StoreError::Storage(error.into()))
    }
}

impl Store {
    /// Writes a backup of the whole store to `out`, from one read
    /// transaction: a write committed meanwhile is either wholly in it or
    /// wholly absent. Returns the header written.
    pub fn backup(&self, out: &mut impl Write) -> Result<BackupHeader, BackupError> {
        let guard = self
            .db
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(db) = guard.as_ref() else {
            return Err(StoreError::Storage(redb::Error::DatabaseClosed).into());
        };
        let snapshot = super::Snapshot {
            txn: db.begin_read()?,
        };
        let mut counts = BTreeMap::new();
        for_each_table!(count_table, &snapshot.txn, &mut counts);
        let header = BackupHeader {
            format: FORMAT,
            schema_version: schema::CURRENT,
            created_at: Timestamp::now().to_rfc3339(),
            exsec_version: env!("CARGO_PKG_VERSION").to_owned(),
            audit_head: snapshot.audit_head()?,
            audit_checkpoint: snapshot.audit_checkpoint()?,
            tables: counts,
        };
        let mut sink = HashingWriter {
            inner: out,
            hasher: Sha256::new(),
        };
        let header_json =
            serde_json::to_string(&header).map_err(|e| BackupError::Stream(io::Error::other(e)))?;
        write!(sink, "{MAGIC} {FORMAT}\n{header_json}\n").map_err(BackupError::Stream)?;
        let mut records = 0u64;
        for_each_table!(dump_table, &snapshot.txn, &mut sink, &mut records);
        sink.write_all(b"E").map_err(BackupError::Stream)?;
        sink.write_all(&records.to_be_bytes())
            .map_err(BackupError::Stream)?;
        let digest: [u8; 32] = sink.hasher.finalize().into();
        sink.inner.write_all(&digest).map_err(BackupError::Stream)?;
        sink.inner.flush().map_err(BackupError::Stream)?;
        Ok(header)
    }
}

/// A backup read back and checked: checksum, header, every record.
pub struct CheckedBackup {
    /// The header.
    pub header: BackupHeader,
    records: Vec<Record>,
}

/// Reads and checks a backup file without touching any database: the
/// checksum, the format, the schema version, every record and the counts.
pub fn check(path: &Path) -> Result<CheckedBackup, BackupError> {
    let bytes = fs::read(path).map_err(|source| BackupError::Io {
        action: "cannot read",
        path: path.to_owned(),
        source,
    })?;
    parse(path, &bytes)
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The backup's header.
    pub header: BackupHeader,
    /// The restored database.
    pub path: PathBuf,
    /// Where the database that was replaced now is, with `--force`.
    pub replaced: Option<PathBuf>,
}

/// Restores `backup` into the redb file `target`: checks the backup whole,
/// writes a temporary file beside the target in one durable transaction,
/// opens it as a store (migrating an older schema forward), verifies the
/// audit chain and its head against the backup's anchor, then renames it
/// into place. An existing target is replaced only with `force`, never
/// while a daemon holds it, and is kept beside it as
/// `{name}.replaced-{time}`.
pub fn restore(
    backup: &Path,
    target: &Path,
    force: bool,
    options: &StoreOptions,
) -> Result<Restored, BackupError> {
    let checked = check(backup)?;
    let exists = target.exists();
    if exists && !force {
        return Err(BackupError::Exists {
            path: target.to_owned(),
        });
    }
    if exists {
        // Refuses with the store's error while a daemon holds the file.
        match Database::builder().create(target) {
            Ok(db) => drop(db),
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(StoreError::InUse {
                    path: target.to_owned(),
                }
                .into());
            }
            Err(source) => {
                return Err(StoreError::Open {
                    path: target.to_owned(),
                    source,
                }
                .into());
            }
        }
    }
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(|source| BackupError::Io {
        action: "cannot create directory",
        path: dir.clone(),
        source,
    })?;
    let name = target
        .file_name()
        .map_or_else(|| "exsec.redb".into(), |n| n.to_string_lossy().into_owned());
    let temporary = dir.join(format!(".{name}.restore-{}", std::process::id()));
    let result = write_and_verify(&checked, &temporary, options);
    if let Err(error) = result {
        let _ = fs::remove_file(&temporary);
        return Err(error);
    }
    let replaced = if exists {
        let aside = dir.join(format!(
            "{name}.replaced-{}",
            Timestamp::now().to_rfc3339().replace(':', "")
        ));
        fs::rename(target, &aside).map_err(|source| BackupError::Io {
            action: "cannot move aside",
            path: target.to_owned(),
            source,
        })?;
        Some(aside)
    } else {
        None
    };
    fs::rename(&temporary, target).map_err(|source| BackupError::Io {
        action: "cannot rename into place",
        path: target.to_owned(),
        source,
    })?;
    if let Ok(dir) = File::open(&dir) {
        let _ = dir.sync_all();
    }
    Ok(Restored {
        header: checked.header,
        path: target.to_owned(),
        replaced,
    })
}

fn write_and_verify(
    checked: &CheckedBackup,
    path: &Path,
    options: &StoreOptions,
) -> Result<(), BackupError> {
    let io_error = |action, source| BackupError::Io {
        action,
        path: path.to_owned(),
        source,
    };
    let _ = fs::remove_file(path);
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| io_error("cannot create", source))?;
    {
        let mut builder = Database::builder();
        builder.set_cache_size(options.cache_size);
        let db = builder.create(path).map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source,
        })?;
        let mut txn = db.begin_write()?;
        txn.set_two_phase_commit(true);
        txn.set_durability(Durability::Immediate)
            .map_err(redb::Error::from)?;
        for_each_table!(load_table, &txn, &checked.records);
        txn.commit()?;
    }
    let store = Store::open(path, options.clone())?;
    let check = store.read(|r| r.verify_audit_chain(None))?;
    let head = check.outcome.map_err(BackupError::Chain)?;
    let expected = checked.header.audit_head;
    if head != expected || check.checkpoint != checked.header.audit_checkpoint {
        return Err(BackupError::HeadMismatch {
            expected,
            found: head,
        });
    }
    drop(store);
    File::open(path)
        .and_then(|file| file.sync_all())
        .map_err(|source| io_error("cannot sync", source))
}

fn count_table<K: Field + Key, V: Field>(
    definition: TableDefinition<K, V>,
    txn: &ReadTransaction,
    counts: &mut BTreeMap<String, u64>,
) -> Result<(), BackupError> {
    let table = txn.open_table(definition)?;
    counts.insert(definition.name().to_owned(), table.len()?);
    Ok(())
}

fn dump_table<K: Field + Key, V: Field>(
    definition: TableDefinition<K, V>,
    txn: &ReadTransaction,
    out: &mut impl Write,
    records: &mut u64,
) -> Result<(), BackupError> {
    let table = txn.open_table(definition)?;
    let name = definition.name().as_bytes();
    let mut key = Vec::new();
    let mut value = Vec::new();
    for entry in table.iter()? {
        let (k, v) = entry?;
        key.clear();
        value.clear();
        K::write(&k.value(), &mut key);
        V::write(&v.value(), &mut value);
        let mut record = Vec::with_capacity(10 + name.len() + key.len() + value.len());
        record.push(b'R');
        record.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
        record.extend_from_slice(name);
        record.extend_from_slice(&length(&key).to_be_bytes());
        record.extend_from_slice(&key);
        record.extend_from_slice(&length(&value).to_be_bytes());
        record.extend_from_slice(&value);
        out.write_all(&record).map_err(BackupError::Stream)?;
        *records += 1;
    }
    Ok(())
}

fn load_table<K: Field + Key, V: Field>(
    definition: TableDefinition<K, V>,
    txn: &WriteTransaction,
    records: &[Record],
) -> Result<(), BackupError> {
    let mut table = txn.open_table(definition)?;
    for record in records.iter().filter(|r| r.table == definition.name()) {
        // `parse` checked every field with the same `read`.
        let (Some(key), Some(value)) = (K::read(&record.key), V::read(&record.value)) else {
            return Err(BackupError::Malformed {
                offset: record.offset,
                reason: format!("a key or value of table {} does not decode", record.table),
            });
        };
        table.insert(key, value)?;
    }
    Ok(())
}

/// Fields are at most [`MAX_FIELD_BYTES`], so their length fits in u32.
fn length(bytes: &[u8]) -> u32 {
    u32::try_from(bytes.len()).unwrap_or(u32::MAX)
}

/// One table entry read from a backup.
struct Record {
    table: &'static str,
    key: Vec<u8>,
    value: Vec<u8>,
    offset: usize,
}

fn parse(path: &Path, bytes: &[u8]) -> Result<CheckedBackup, BackupError> {
    let not_a_backup = || BackupError::NotABackup {
        path: path.to_owned(),
    };
    let first_line_end = bytes
        .iter()
        .take(64)
        .position(|&b| b == b'\n')
        .ok_or_else(not_a_backup)?;
    let first_line = std::str::from_utf8(&bytes[..first_line_end]).map_err(|_| not_a_backup())?;
    let version = first_line
        .strip_prefix(MAGIC)
        .and_then(|rest| rest.strip_prefix(' '))
        .ok_or_else(not_a_backup)?;
    if version != FORMAT.to_string() {
        return Err(BackupError::UnsupportedFormat {
            found: version.to_owned(),
        });
    }
    if bytes.len() < first_line_end + 1 + TRAILER_BYTES {
        return Err(BackupError::Checksum);
    }
    let (body, trailer) = bytes.split_at(bytes.len() - TRAILER_BYTES);
    let digest: [u8; 32] = Sha256::digest(body).into();
    if digest.as_slice() != trailer {
        return Err(BackupError::Checksum);
    }
    let mut cursor = Cursor {
        bytes: body,
        at: first_line_end + 1,
    };
    let header_end = body[cursor.at..]
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| cursor.malformed("the header line does not end"))?;
    let header: BackupHeader = serde_json::from_slice(&body[cursor.at..cursor.at + header_end])
        .map_err(|error| cursor.malformed(&format!("the header is not valid: {error}")))?;
    cursor.at += header_end + 1;
    if header.schema_version > schema::CURRENT {
        return Err(BackupError::NewerSchema {
            found: header.schema_version,
            supported: schema::CURRENT,
            version: header.exsec_version,
        });
    }
    let names = tables::names();
    let mut records = Vec::new();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    loop {
        let offset = cursor.at;
        match cursor.take(1)?[0] {
            b'R' => {}
            b'E' => break,
            other => return Err(cursor.malformed(&format!("unexpected record tag {other:#04x}"))),
        }
        let name_len = usize::from(cursor.take(1)?[0]);
        let name = cursor.take(name_len)?;
        let table = names
            .iter()
            .copied()
            .find(|n| n.as_bytes() == name)
            .ok_or_else(|| cursor.malformed("unknown table"))?;
        let key = cursor.field()?.to_vec();
        let value = cursor.field()?.to_vec();
        *counts.entry(table.to_owned()).or_default() += 1;
        records.push(Record {
            table,
            key,
            value,
            offset,
        });
    }
    let total = u64::from_be_bytes(cursor.array()?);
    if cursor.at != body.len() {
        return Err(cursor.malformed("bytes after the end marker"));
    }
    if total != records.len() as u64 {
        return Err(cursor.malformed("the record count does not match the records"));
    }
    for name in names {
        let found = counts.get(name).copied().unwrap_or(0);
        let expected = header.tables.get(name).copied().unwrap_or(0);
        if found != expected {
            return Err(cursor.malformed(&format!(
                "table {name} has {found} records, the header says {expected}"
            )));
        }
    }
    let checked = CheckedBackup { header, records };
    check_fields(&checked)?;
    Ok(checked)
}

/// Every key and value decodes as its table's type.
fn check_fields(checked: &CheckedBackup) -> Result<(), BackupError> {
    fn table<K: Field + Key, V: Field>(
        definition: TableDefinition<K, V>,
        records: &[Record],
    ) -> Result<(), BackupError> {
        for record in records.iter().filter(|r| r.table == definition.name()) {
            if K::read(&record.key).is_none() || V::read(&record.value).is_none() {
                return Err(BackupError::Malformed {
                    offset: record.offset,
                    reason: format!("a key or value of table {} does not decode", record.table),
                });
            }
        }
        Ok(())
    }
    for_each_table!(table, &checked.records);
    Ok(())
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BackupError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| self.malformed("the file ends inside a record"))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], BackupError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn field(&mut self) -> Result<&'a [u8], BackupError> {
        let len = u32::from_be_bytes(self.array()?) as usize;
        if len > MAX_FIELD_BYTES {
            return Err(self.malformed("a field is larger than any stored record"));
        }
        self.take(len)
    }

    fn malformed(&self, reason: &str) -> BackupError {
        BackupError::Malformed {
            offset: self.at,
            reason: reason.to_owned(),
        }
    }
}

/// Hashes everything written through it.
struct HashingWriter<'a, W: Write> {
    inner: &'a mut W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// How a table's key or value type is written in a backup, and read back
/// with every byte checked (a backup is input: nothing may panic on it).
trait Field: Value + 'static {
    fn write(value: &Self::SelfType<'_>, out: &mut Vec<u8>);
    fn read(bytes: &[u8]) -> Option<Self::SelfType<'_>>;
}

impl Field for &'static str {
    fn write(value: &&str, out: &mut Vec<u8>) {
        out.extend_from_slice(value.as_bytes());
    }
    fn read(bytes: &[u8]) -> Option<&str> {
        std::str::from_utf8(bytes).ok()
    }
}

impl Field for &'static [u8] {
    fn write(value: &&[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(value);
    }
    fn read(bytes: &[u8]) -> Option<&[u8]> {
        Some(bytes)
    }
}

impl Field for u64 {
    fn write(value: &u64, out: &mut Vec<u8>) {
        out.extend_from_slice(&value.to_le_bytes());
    }
    fn read(bytes: &[u8]) -> Option<u64> {
        Some(u64::from_le_bytes(bytes.try_into().ok()?))
    }
}

impl Field for () {
    fn write(_: &(), _: &mut Vec<u8>) {}
    fn read(bytes: &[u8]) -> Option<()> {
        bytes.is_empty().then_some(())
    }
}

impl Field for (&'static str, u64) {
    fn write(value: &(&str, u64), out: &mut Vec<u8>) {
        out.extend_from_slice(&length(value.0.as_bytes()).to_be_bytes());
        out.extend_from_slice(value.0.as_bytes());
        out.extend_from_slice(&value.1.to_le_bytes());
    }
    fn read(bytes: &[u8]) -> Option<(&str, u64)> {
        let (len, rest) = bytes.split_first_chunk::<4>()?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() != len.checked_add(8)? {
            return None;
        }
        let (text, seq) = rest.split_at(len);
        Some((
            std::str::from_utf8(text).ok()?,
            u64::from_le_bytes(seq.try_into().ok()?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TenantId;

    fn options() -> StoreOptions {
        StoreOptions::with_cache_size(1024 * 1024)
    }

    fn store_with_data(dir: &Path) -> Store {
        let store = Store::open(&dir.join("exsec.redb"), options()).unwrap();
        for name in ["acme", "globex"] {
            let id = TenantId::parse(name).unwrap();
            store.write(move |w| w.put_tenant(&id, "admin")).unwrap();
        }
        store
    }

    #[test]
    fn a_backup_round_trips_into_a_fresh_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_data(dir.path());
        let mut bytes = Vec::new();
        let header = store.backup(&mut bytes).unwrap();
        assert!(bytes.starts_with(b"exsec-backup 1\n"));
        assert_eq!(header.tables["tenants"], 2);
        assert_eq!(header.audit_head.seq, 2);
        let file = dir.path().join("backup");
        fs::write(&file, &bytes).unwrap();

        let target = dir.path().join("restored/exsec.redb");
        let restored = restore(&file, &target, false, &options()).unwrap();
        assert_eq!(restored.header, header);
        let again = Store::open(&target, options()).unwrap();
        let names: Vec<String> = again
            .read(|r| r.tenants())
            .unwrap()
            .into_iter()
            .map(|(id, _)| id.to_string())
            .collect();
        assert_eq!(names, ["acme", "globex"]);
        drop(again);

        let error = restore(&file, &target, false, &options()).unwrap_err();
        assert!(matches!(error, BackupError::Exists { .. }), "{error}");
        let forced = restore(&file, &target, true, &options()).unwrap();
        assert!(forced.replaced.unwrap().exists());
    }

    #[test]
    fn damaged_or_foreign_backups_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_data(dir.path());
        let mut bytes = Vec::new();
        store.backup(&mut bytes).unwrap();
        let file = dir.path().join("backup");
        let target = dir.path().join("out.redb");

        let mut flipped = bytes.clone();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 1;
        fs::write(&file, &flipped).unwrap();
        assert!(matches!(
            restore(&file, &target, false, &options()),
            Err(BackupError::Checksum)
        ));
        fs::write(&file, &bytes[..bytes.len() - 5]).unwrap();
        assert!(matches!(check(&file), Err(BackupError::Checksum)));
        fs::write(&file, b"PK\x03\x04 not a backup").unwrap();
        assert!(matches!(check(&file), Err(BackupError::NotABackup { .. })));
        assert!(!target.exists());
    }

    #[test]
    fn a_backup_from_a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_data(dir.path());
        let mut bytes = Vec::new();
        store.backup(&mut bytes).unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let line = text.lines().nth(1).unwrap();
        let mut header: BackupHeader = serde_json::from_str(line).unwrap();
        header.schema_version = schema::CURRENT + 1;
        let mut forged = format!(
            "exsec-backup 1\n{}\n",
            serde_json::to_string(&header).unwrap()
        )
        .into_bytes();
        forged.extend_from_slice(&bytes[16 + line.len()..bytes.len() - TRAILER_BYTES]);
        let digest: [u8; 32] = Sha256::digest(&forged).into();
        forged.extend_from_slice(&digest);
        let file = dir.path().join("backup");
        fs::write(&file, &forged).unwrap();
        let error = check(&file).err().unwrap();
        assert!(
            matches!(error, BackupError::NewerSchema { found, .. } if found == schema::CURRENT + 1),
            "{error}"
        );
    }

    #[test]
    fn deploy_keys_round_trip_and_reject_garbage() {
        let mut out = Vec::new();
        <(&str, u64)>::write(&("web", 7), &mut out);
        assert_eq!(<(&str, u64)>::read(&out), Some(("web", 7)));
        assert_eq!(<(&str, u64)>::read(&out[..out.len() - 1]), None);
        assert_eq!(<(&str, u64)>::read(&[0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(<&str>::read(&[0xc3]), None);
        assert_eq!(u64::read(&[1, 2]), None);
        assert_eq!(<()>::read(&[0]), None);
    }
}
