//! Backups: every table copied in one read transaction (a consistent
//! snapshot) and streamed out, and restoring such a copy into a fresh redb
//! file.
//!
//! Values are copied byte for byte as stored, so secret values stay
//! sealed: a backup is useless without the key directory. A backup is
//! authenticated (format 2): its last 32 bytes are an HMAC-SHA256 over
//! everything before them, keyed from the master key that was active when
//! it was taken ([`crate::crypto::BackupMac`]), so an altered backup — a
//! token moved to another tenant, a record added — is refused, and a
//! checksum recomputed by the forger does not help.
//!
//! Restore reads the file twice, as a stream, in bounded memory whatever
//! its size: the first pass checks the MAC and nothing else; the second
//! parses the records into a temporary redb file, checking every field,
//! the counts and the MAC again (the file may have changed in between);
//! the restored file is then checked (audit chain from its checkpoint,
//! head equal to the backup's anchor) before it replaces anything. Only
//! regular files are read: a FIFO or a device is refused, never waited on.
//!
//! # Format 2
//!
//! Integers are big-endian.
//!
//! ```text
//! exsec-backup 2\n                  magic and format version (ASCII line)
//! {header JSON}\n                   BackupHeader on one line; key_id names the MAC's key
//! 'R' u8 name-len name  u32 key-len key  u32 value-len value     one per table entry
//! 'E' u64 record-count
//! HMAC-SHA256 of every byte above   32 raw bytes (key: HKDF-SHA256 of the master key
//!                                   key_id names, info `exsec/backup/v2`)
//! ```
//!
//! Records come table by table, in the order of [`tables::names`]. Keys are
//! written in this format's own encoding: text keys as UTF-8, `u64` keys
//! as 8 bytes little-endian (as redb stores them), the `(app_id, seq)` key
//! of `deploys` as `u32 len ‖ app_id ‖ u64 LE`. Values are redb's bytes:
//! codec records verbatim, `u64` counters as 8 bytes little-endian, the
//! unit value as nothing.
//!
//! # Format 1
//!
//! Written by exsec up to commit f5899ed: the same layout with
//! `exsec-backup 1`, no `key_id`, and a plain SHA-256 as the trailer. It
//! proves nothing against someone who can rewrite the file, so it is
//! restored only when the operator accepts that
//! ([`RestoreOptions::accept_unauthenticated`]).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use redb::{
    Database, Key, ReadTransaction, ReadableTableMetadata, TableDefinition, TableHandle, Value,
    WriteTransaction,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::Context;
use super::{OpenError, Store, StoreError, StoreOptions, Tables, Writer, schema, tables};
use crate::audit::{Anchor, ChainBreak};
use crate::crypto::{BACKUP_MAC_LEN, BackupMac, Keyring};
use crate::file_error::FileError;
use crate::model::{KeyId, Timestamp};

/// First bytes of every backup, before the format version.
pub const MAGIC: &str = "exsec-backup";
/// The format this build writes: authenticated by a MAC.
pub const FORMAT: u32 = 2;
/// The format of older builds: a plain checksum, read only on request.
pub const FORMAT_UNAUTHENTICATED: u32 = 1;
/// Largest key or value accepted when reading a backup; bounds what a
/// corrupt length can make us allocate. Stored records are far smaller.
const MAX_FIELD_BYTES: usize = 4 * 1024 * 1024;
/// Longest header line read; a real one is a few hundred bytes.
const MAX_HEADER_BYTES: u64 = 64 * 1024;
/// Longest first line (`exsec-backup N`) read.
const MAX_MAGIC_LINE_BYTES: u64 = 64;
/// Length of the trailer (the MAC, or format 1's SHA-256).
const TRAILER_BYTES: usize = BACKUP_MAC_LEN;
/// Read buffer of both restore passes.
const READ_BUFFER_BYTES: usize = 256 * 1024;

/// Calls `$f::<K, V>(definition, args…)?` for every table, in the order
/// of [`tables::names`] (the order records appear in a backup).
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
        $f(tables::PENDING_CLEANUPS, $($arg),*)?;
        $f(tables::REDEPLOY_QUEUE, $($arg),*)?;
        $f(tables::SECRET_VERSIONS, $($arg),*)?;
        $f(tables::TENANT_DATA_KEYS, $($arg),*)?;
    };
}

/// The first line after the magic: what the backup holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupHeader {
    /// Format version ([`FORMAT`], or [`FORMAT_UNAUTHENTICATED`]).
    pub format: u32,
    /// Schema version of the store it was taken from.
    pub schema_version: u32,
    /// When it was taken (RFC 3339).
    pub created_at: String,
    /// Version of the exsec that wrote it.
    pub exsec_version: String,
    /// The master key the MAC is keyed from (format 2; absent in format 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<KeyId>,
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
    #[error(transparent)]
    Io(#[from] FileError),
    /// Writing the backup stream failed (the client went away).
    #[error("cannot write the backup stream")]
    Stream(#[source] io::Error),
    /// The path is a FIFO, a device, a directory…: only a regular file can
    /// be a backup (reading a FIFO could wait forever, a device never ends).
    #[error("{path} is a {kind}, not a regular file; a backup is a file")]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// The file does not start like a backup.
    #[error("{path} is not an exsec backup")]
    NotABackup {
        /// The file.
        path: PathBuf,
    },
    /// The file was written in a format this build does not read.
    #[error(
        "backup format {found} is not supported by this exsec (it reads formats {FORMAT_UNAUTHENTICATED} and {FORMAT})"
    )]
    UnsupportedFormat {
        /// The format found.
        found: String,
    },
    /// A format-1 backup, and the operator did not accept that it cannot
    /// be authenticated.
    #[error(
        "backup format 1 (made by an older exsec) carries only a checksum, which anyone who can edit the file can recompute: it cannot be authenticated"
    )]
    Unauthenticated,
    /// The MAC does not verify, or the key it names is not in the key
    /// directory: the file was altered, or made with a key the restorer
    /// does not have. Deliberately one error: no detail for an oracle.
    #[error(
        "backup authentication failed: it was altered, or made with a key you don't have (it names master key {key_id}{missing}); do not restore it",
        missing = if *.key_missing { ", which is not in the key directory" } else { "" }
    )]
    Forged {
        /// The key the header names.
        key_id: KeyId,
        /// Whether that key is missing from the key directory.
        key_missing: bool,
    },
    /// A format-1 checksum does not match: the file was damaged or cut short.
    #[error("backup checksum mismatch: the file was altered or is incomplete; do not restore it")]
    Checksum,
    /// The content is malformed (it passed the MAC, so it was built so).
    #[error("backup is malformed at byte {offset}: {reason}")]
    Malformed {
        /// Where.
        offset: u64,
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
    /// The store could not be opened (lock, schema).
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Reading or writing the store failed.
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

impl Store {
    /// Streams a backup of the whole store to `out`, from one read
    /// transaction: a write committed meanwhile is either wholly in it or
    /// wholly absent. `mac` is keyed from master key `key_id` (named in the
    /// header). `started` gets the header once the snapshot is taken and
    /// before the first byte is written, so a caller can answer before
    /// streaming. Returns the header written.
    pub fn backup(
        &self,
        out: &mut impl Write,
        key_id: &KeyId,
        mac: BackupMac,
        started: impl FnOnce(&BackupHeader),
    ) -> Result<BackupHeader, BackupError> {
        // Reads may run twice (a read that meets a handle spoiled by a failed
        // commit is re-run on the reopened one). A backup can start over only
        // if it has not written anything: the stream's state is taken by the
        // first run, and a second run that finds it gone is an error.
        let once = std::sync::Mutex::new(Some((out, mac, started)));
        self.read(|snapshot| {
            let taken = once.lock().unwrap_or_else(|p| p.into_inner()).take();
            let Some((out, mac, started)) = taken else {
                return Ok(Err(BackupError::Stream(io::Error::other(
                    "the store was reopened while the backup was being written; take it again",
                ))));
            };
            Ok(write_backup(snapshot, out, key_id, mac, started))
        })?
    }
}

fn write_backup(
    snapshot: &super::Reader,
    out: &mut impl Write,
    key_id: &KeyId,
    mac: BackupMac,
    started: impl FnOnce(&BackupHeader),
) -> Result<BackupHeader, BackupError> {
    let txn = snapshot.txn();
    let mut counts = BTreeMap::new();
    for_each_table!(count_table, txn, &mut counts);
    let header = BackupHeader {
        format: FORMAT,
        schema_version: schema::CURRENT,
        created_at: Timestamp::now().to_rfc3339(),
        exsec_version: env!("CARGO_PKG_VERSION").to_owned(),
        key_id: Some(key_id.clone()),
        audit_head: snapshot.audit_head()?,
        audit_checkpoint: snapshot.audit_checkpoint()?,
        tables: counts,
    };
    started(&header);
    let mut sink = MacWriter { inner: out, mac };
    let header_json =
        serde_json::to_string(&header).map_err(|e| BackupError::Stream(io::Error::other(e)))?;
    write!(sink, "{MAGIC} {FORMAT}\n{header_json}\n").map_err(BackupError::Stream)?;
    let mut records = 0u64;
    for_each_table!(dump_table, txn, &mut sink, &mut records);
    sink.write_all(b"E").map_err(BackupError::Stream)?;
    sink.write_all(&records.to_be_bytes())
        .map_err(BackupError::Stream)?;
    let MacWriter { inner, mac } = sink;
    inner
        .write_all(&mac.finalize())
        .map_err(BackupError::Stream)?;
    inner.flush().map_err(BackupError::Stream)?;
    Ok(header)
}

/// How a restore may trust a backup.
pub struct RestoreOptions<'a> {
    /// The master keys; a format-2 backup's MAC is checked with the key it
    /// names.
    pub keyring: &'a Keyring,
    /// Restore a format-1 backup (checksum only) too.
    pub accept_unauthenticated: bool,
    /// Replace an existing database (kept beside it).
    pub force: bool,
    /// How the restored store is opened (its cache bounds redb's memory).
    pub store: StoreOptions,
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

/// Restores `backup` into the redb file `target`: authenticates the whole
/// file first (one streaming pass), then writes a temporary file beside the
/// target in one durable transaction while checking every record (a second
/// pass, which checks the MAC again), opens it as a store (migrating an
/// older schema forward), verifies the audit chain and its head against
/// the backup's anchor, then renames it into place. An existing target is
/// replaced only with `force`, never while a daemon holds it, and is kept
/// beside it as `{name}.replaced-{time}`.
pub fn restore(
    backup: &Path,
    target: &Path,
    options: &RestoreOptions<'_>,
) -> Result<Restored, BackupError> {
    let source = Source::open(backup)?;
    let trust = source.trust(options)?;
    source.authenticate(&trust)?;
    source.check_schema()?;
    let exists = target.exists();
    if exists && !options.force {
        return Err(BackupError::Exists {
            path: target.to_owned(),
        });
    }
    if exists {
        refuse_if_in_use(target)?;
    }
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(|source| {
        BackupError::Io(FileError {
            action: "cannot create directory",
            path: dir.clone(),
            source,
        })
    })?;
    let name = target
        .file_name()
        .map_or_else(|| "exsec.redb".into(), |n| n.to_string_lossy().into_owned());
    let temporary = dir.join(format!(".{name}.restore-{}", std::process::id()));
    let result = write_and_verify(&source, &trust, &temporary, &options.store);
    if let Err(error) = result {
        let _ = fs::remove_file(&temporary);
        return Err(error);
    }
    let replaced = if exists {
        let aside = dir.join(format!(
            "{name}.replaced-{}",
            Timestamp::now().to_rfc3339().replace(':', "")
        ));
        fs::rename(target, &aside).map_err(|source| {
            BackupError::Io(FileError {
                action: "cannot move aside",
                path: target.to_owned(),
                source,
            })
        })?;
        Some(aside)
    } else {
        None
    };
    fs::rename(&temporary, target).map_err(|source| {
        BackupError::Io(FileError {
            action: "cannot rename into place",
            path: target.to_owned(),
            source,
        })
    })?;
    if let Ok(dir) = File::open(&dir) {
        let _ = dir.sync_all();
    }
    Ok(Restored {
        header: source.header,
        path: target.to_owned(),
        replaced,
    })
}

/// Checks a backup's structure without a key: the format, every record
/// and the counts, and a format-1 checksum. A format-2 MAC needs the key
/// (restore checks it); `exsec backup` uses this on a downloaded file.
pub fn inspect(path: &Path) -> Result<BackupHeader, BackupError> {
    let source = Source::open(path)?;
    let trust = match source.header.format {
        FORMAT_UNAUTHENTICATED => Trust::Checksum,
        _ => Trust::StructureOnly,
    };
    let mut records = source.records(&trust)?;
    for_each_table!(check_table, &mut records);
    records.finish(&source.header)?;
    Ok(source.header)
}

/// Refuses with the store's error while a daemon holds `path`.
fn refuse_if_in_use(path: &Path) -> Result<(), BackupError> {
    match Database::builder().create(path) {
        Ok(db) => {
            drop(db);
            Ok(())
        }
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => Err(OpenError::InUse {
            path: path.to_owned(),
        }
        .into()),
        Err(source) => Err(OpenError::Open {
            path: path.to_owned(),
            source,
        }
        .into()),
    }
}

fn write_and_verify(
    source: &Source,
    trust: &Trust<'_>,
    path: &Path,
    options: &StoreOptions,
) -> Result<(), BackupError> {
    let io_error = |action, source| {
        BackupError::Io(FileError {
            action,
            path: path.to_owned(),
            source,
        })
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
        let db = builder.create(path).map_err(|source| OpenError::Open {
            path: path.to_owned(),
            source,
        })?;
        let writer = Writer::begin(&db)?;
        let mut records = source.records(trust)?;
        for_each_table!(load_table, writer.txn(), &mut records);
        records.finish(&source.header)?;
        writer.finish()?;
    }
    let store = Store::open(path, options.clone())?;
    let check = store.read(|r| r.verify_audit_chain(None))?;
    let head = check.outcome.map_err(BackupError::Chain)?;
    let expected = source.header.audit_head;
    if head != expected || check.checkpoint != source.header.audit_checkpoint {
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
    let table = txn.table(definition)?;
    counts.insert(
        definition.name().to_owned(),
        table.len().in_table(definition)?,
    );
    Ok(())
}

fn dump_table<K: Field + Key, V: Field>(
    definition: TableDefinition<K, V>,
    txn: &ReadTransaction,
    out: &mut impl Write,
    records: &mut u64,
) -> Result<(), BackupError> {
    use redb::ReadableTable;
    let table = txn.table(definition)?;
    let name = definition.name().as_bytes();
    let mut key = Vec::new();
    let mut value = Vec::new();
    for entry in table.iter().in_table(definition)? {
        let (k, v) = entry.in_table(definition)?;
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

/// Inserts the backup's records of one table.
fn load_table<K: Field + Key, V: Field>(
    definition: TableDefinition<K, V>,
    txn: &WriteTransaction,
    records: &mut Records<'_>,
) -> Result<(), BackupError> {
    let mut table = txn.table(definition)?;
    while let Some(record) = records.next_of(definition.name())? {
        let (Some(key), Some(value)) = (K::read(&record.key), V::read(&record.value)) else {
            return Err(record.undecodable());
        };
        table.insert(key, value).in_table(definition)?;
    }
    Ok(())
}

/// Checks the backup's records of one table decode as its types.
fn check_table<K: Field + Key, V: Field>(
    definition: TableDefinition<K, V>,
    records: &mut Records<'_>,
) -> Result<(), BackupError> {
    while let Some(record) = records.next_of(definition.name())? {
        if K::read(&record.key).is_none() || V::read(&record.value).is_none() {
            return Err(record.undecodable());
        }
    }
    Ok(())
}

/// Fields are at most [`MAX_FIELD_BYTES`], so their length fits in u32.
fn length(bytes: &[u8]) -> u32 {
    u32::try_from(bytes.len()).unwrap_or(u32::MAX)
}

/// A backup file opened for reading: a regular file, its length, and its
/// header (read, not yet trusted).
struct Source {
    path: PathBuf,
    file: File,
    len: u64,
    header: BackupHeader,
    /// Bytes of the magic and header lines.
    preamble: u64,
}

/// What a backup's trailer is checked against.
enum Trust<'a> {
    /// Format 2: the MAC under the key the header names.
    Mac(&'a Keyring, KeyId),
    /// Format 1, accepted by the operator: a SHA-256.
    Checksum,
    /// No check of the trailer (structure only, [`inspect`]).
    StructureOnly,
}

/// A running check of a trailer.
enum Verifier {
    Mac(BackupMac),
    Checksum(Sha256),
    None,
}

impl Verifier {
    fn update(&mut self, bytes: &[u8]) {
        match self {
            Verifier::Mac(mac) => mac.update(bytes),
            Verifier::Checksum(hasher) => hasher.update(bytes),
            Verifier::None => {}
        }
    }

    fn verify(self, trailer: &[u8]) -> bool {
        match self {
            Verifier::Mac(mac) => mac.verify(trailer),
            Verifier::Checksum(hasher) => {
                let digest: [u8; 32] = hasher.finalize().into();
                digest.as_slice() == trailer
            }
            Verifier::None => true,
        }
    }
}

impl Trust<'_> {
    fn verifier(&self) -> Result<Verifier, BackupError> {
        Ok(match self {
            Trust::Mac(keyring, key_id) => Verifier::Mac(keyring.backup_mac(key_id).map_err(
                |_| BackupError::Forged {
                    key_id: key_id.clone(),
                    key_missing: true,
                },
            )?),
            Trust::Checksum => Verifier::Checksum(Sha256::new()),
            Trust::StructureOnly => Verifier::None,
        })
    }

    fn refusal(&self) -> BackupError {
        match self {
            Trust::Mac(_, key_id) => BackupError::Forged {
                key_id: key_id.clone(),
                key_missing: false,
            },
            Trust::Checksum | Trust::StructureOnly => BackupError::Checksum,
        }
    }
}

impl Source {
    /// Opens `path` if it is a regular file and reads its first two lines.
    fn open(path: &Path) -> Result<Source, BackupError> {
        let io_error = |source| {
            BackupError::Io(FileError {
                action: "cannot read",
                path: path.to_owned(),
                source,
            })
        };
        // Looked at before opening: opening a FIFO would wait for a writer.
        let kind = fs::metadata(path).map_err(io_error)?.file_type();
        if !kind.is_file() {
            return Err(BackupError::NotRegular {
                path: path.to_owned(),
                kind: describe(kind),
            });
        }
        let file = File::open(path).map_err(io_error)?;
        let metadata = file.metadata().map_err(io_error)?;
        if !metadata.is_file() {
            return Err(BackupError::NotRegular {
                path: path.to_owned(),
                kind: describe(metadata.file_type()),
            });
        }
        let mut reader = BufReader::new(&file);
        let (header, preamble) = read_preamble(&mut reader, path)?;
        drop(reader);
        Ok(Source {
            path: path.to_owned(),
            len: metadata.len(),
            file,
            header,
            preamble,
        })
    }

    /// How the trailer of this backup must be checked, or why it cannot be
    /// trusted at all.
    fn trust<'a>(&self, options: &RestoreOptions<'a>) -> Result<Trust<'a>, BackupError> {
        match (self.header.format, &self.header.key_id) {
            (FORMAT, Some(key_id)) => Ok(Trust::Mac(options.keyring, key_id.clone())),
            (FORMAT, None) => Err(self.malformed(0, "the header names no key_id")),
            (_, _) if options.accept_unauthenticated => Ok(Trust::Checksum),
            (_, _) => Err(BackupError::Unauthenticated),
        }
    }

    /// The first pass: every byte but the trailer through the verifier,
    /// then the trailer. Reads in fixed chunks: memory stays bounded.
    fn authenticate(&self, trust: &Trust<'_>) -> Result<(), BackupError> {
        let mut verifier = trust.verifier()?;
        let Some(body) = self.body_len() else {
            return Err(trust.refusal());
        };
        let mut reader = self.reader()?;
        let mut left = body;
        let mut buffer = vec![0u8; READ_BUFFER_BYTES];
        while left > 0 {
            let want = usize::try_from(left.min(buffer.len() as u64)).unwrap_or(buffer.len());
            let n = reader
                .read(&mut buffer[..want])
                .map_err(|source| self.io_error(source))?;
            if n == 0 {
                // The file shrank since it was measured.
                return Err(trust.refusal());
            }
            verifier.update(&buffer[..n]);
            left -= n as u64;
        }
        let mut trailer = [0u8; TRAILER_BYTES];
        reader
            .read_exact(&mut trailer)
            .map_err(|_| trust.refusal())?;
        if verifier.verify(&trailer) {
            Ok(())
        } else {
            Err(trust.refusal())
        }
    }

    /// Refuses a backup from a newer schema (after authentication: the
    /// header is only trusted then).
    fn check_schema(&self) -> Result<(), BackupError> {
        if self.header.schema_version > schema::CURRENT {
            return Err(BackupError::NewerSchema {
                found: self.header.schema_version,
                supported: schema::CURRENT,
                version: self.header.exsec_version.clone(),
            });
        }
        Ok(())
    }

    /// The second pass: the records, read as a stream from the start (the
    /// preamble is read again, so the verifier sees every byte).
    fn records<'s>(&'s self, trust: &'s Trust<'s>) -> Result<Records<'s>, BackupError> {
        let body = self.body_len().ok_or_else(|| trust.refusal())?;
        let mut reader = CheckedReader {
            inner: self.reader()?,
            verifier: trust.verifier()?,
            left: body,
            at: 0,
        };
        let mut preamble = vec![0u8; usize::try_from(self.preamble).unwrap_or(0)];
        reader
            .read_exact(&mut preamble)
            .map_err(|_| trust.refusal())?;
        Ok(Records {
            source: self,
            trust,
            reader,
            pending: None,
            end: None,
            counts: BTreeMap::new(),
            total: 0,
        })
    }

    /// Bytes before the trailer, if the file is long enough to have one.
    fn body_len(&self) -> Option<u64> {
        self.len
            .checked_sub(TRAILER_BYTES as u64)
            .filter(|&body| body >= self.preamble)
    }

    fn reader(&self) -> Result<BufReader<&File>, BackupError> {
        let mut file = &self.file;
        file.rewind().map_err(|source| self.io_error(source))?;
        Ok(BufReader::with_capacity(READ_BUFFER_BYTES, file))
    }

    fn io_error(&self, source: io::Error) -> BackupError {
        BackupError::Io(FileError {
            action: "cannot read",
            path: self.path.clone(),
            source,
        })
    }

    fn malformed(&self, offset: u64, reason: &str) -> BackupError {
        BackupError::Malformed {
            offset,
            reason: reason.to_owned(),
        }
    }
}

/// What a non-regular file is, for the refusal.
fn describe(kind: fs::FileType) -> &'static str {
    if kind.is_dir() {
        "directory"
    } else if kind.is_fifo() {
        "FIFO (named pipe)"
    } else if kind.is_char_device() {
        "character device"
    } else if kind.is_block_device() {
        "block device"
    } else if kind.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

/// Reads `exsec-backup N\n{header}\n`; returns the header and the bytes
/// the two lines take.
fn read_preamble(
    reader: &mut impl BufRead,
    path: &Path,
) -> Result<(BackupHeader, u64), BackupError> {
    let not_a_backup = || BackupError::NotABackup {
        path: path.to_owned(),
    };
    let io_error = |source| {
        BackupError::Io(FileError {
            action: "cannot read",
            path: path.to_owned(),
            source,
        })
    };
    let mut first = Vec::new();
    reader
        .by_ref()
        .take(MAX_MAGIC_LINE_BYTES)
        .read_until(b'\n', &mut first)
        .map_err(io_error)?;
    let Some(line) = first.strip_suffix(b"\n") else {
        return Err(not_a_backup());
    };
    let version = std::str::from_utf8(line)
        .ok()
        .and_then(|line| line.strip_prefix(MAGIC))
        .and_then(|rest| rest.strip_prefix(' '))
        .ok_or_else(not_a_backup)?;
    let format = match version {
        "1" => FORMAT_UNAUTHENTICATED,
        "2" => FORMAT,
        other => {
            return Err(BackupError::UnsupportedFormat {
                found: other.chars().take(16).collect(),
            });
        }
    };
    let mut second = Vec::new();
    reader
        .by_ref()
        .take(MAX_HEADER_BYTES)
        .read_until(b'\n', &mut second)
        .map_err(io_error)?;
    let offset = first.len() as u64;
    let Some(json) = second.strip_suffix(b"\n") else {
        return Err(BackupError::Malformed {
            offset,
            reason: "the header line does not end".to_owned(),
        });
    };
    let header: BackupHeader =
        serde_json::from_slice(json).map_err(|error| BackupError::Malformed {
            offset,
            reason: format!("the header is not valid: {error}"),
        })?;
    if header.format != format {
        return Err(BackupError::Malformed {
            offset,
            reason: format!(
                "the header says format {}, the first line {format}",
                header.format
            ),
        });
    }
    Ok((header, (first.len() + second.len()) as u64))
}

/// Reads the body of a backup (never the trailer), feeding every byte to
/// the verifier and counting the offset.
struct CheckedReader<'f> {
    inner: BufReader<&'f File>,
    verifier: Verifier,
    /// Body bytes not read yet.
    left: u64,
    /// Offset of the next byte.
    at: u64,
}

impl Read for CheckedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = usize::try_from(self.left.min(buf.len() as u64)).unwrap_or(buf.len());
        let n = self.inner.read(&mut buf[..want])?;
        self.verifier.update(&buf[..n]);
        self.left -= n as u64;
        self.at += n as u64;
        Ok(n)
    }
}

/// One table entry read from a backup.
struct Record {
    table: &'static str,
    key: Vec<u8>,
    value: Vec<u8>,
    offset: u64,
}

impl Record {
    fn undecodable(&self) -> BackupError {
        BackupError::Malformed {
            offset: self.offset,
            reason: format!("a key or value of table {} does not decode", self.table),
        }
    }
}

/// The records of a backup as a stream, one record of look-ahead: each
/// table's loader takes records while they are of its table.
struct Records<'s> {
    source: &'s Source,
    trust: &'s Trust<'s>,
    reader: CheckedReader<'s>,
    /// A record read but not taken (it belongs to a later table).
    pending: Option<Record>,
    /// The count of the end marker, once read.
    end: Option<u64>,
    counts: BTreeMap<&'static str, u64>,
    total: u64,
}

impl Records<'_> {
    /// The next record if it belongs to `table`.
    fn next_of(&mut self, table: &str) -> Result<Option<Record>, BackupError> {
        if self.pending.is_none() && self.end.is_none() {
            self.read_next()?;
        }
        match &self.pending {
            Some(record) if record.table == table => {
                *self.counts.entry(record.table).or_default() += 1;
                self.total += 1;
                Ok(self.pending.take())
            }
            _ => Ok(None),
        }
    }

    /// Ends the stream: no record left over, the counts match the end
    /// marker and the header, nothing after the marker, and the trailer
    /// verifies again.
    fn finish(mut self, header: &BackupHeader) -> Result<(), BackupError> {
        if self.pending.is_none() && self.end.is_none() {
            self.read_next()?;
        }
        if let Some(record) = &self.pending {
            return Err(self.source.malformed(
                record.offset,
                &format!("a record of table {} is out of table order", record.table),
            ));
        }
        let at = self.reader.at;
        if self.end != Some(self.total) {
            return Err(self
                .source
                .malformed(at, "the record count does not match the records"));
        }
        for name in tables::names() {
            let found = self.counts.get(name).copied().unwrap_or(0);
            let expected = header.tables.get(name).copied().unwrap_or(0);
            if found != expected {
                return Err(self.source.malformed(
                    at,
                    &format!("table {name} has {found} records, the header says {expected}"),
                ));
            }
        }
        if self.reader.left != 0 {
            return Err(self.source.malformed(at, "bytes after the end marker"));
        }
        let mut trailer = [0u8; TRAILER_BYTES];
        self.reader
            .inner
            .read_exact(&mut trailer)
            .map_err(|_| self.trust.refusal())?;
        if self.reader.verifier.verify(&trailer) {
            Ok(())
        } else {
            Err(self.trust.refusal())
        }
    }

    fn read_next(&mut self) -> Result<(), BackupError> {
        let offset = self.reader.at;
        match self.take::<1>()?[0] {
            b'R' => {}
            b'E' => {
                self.end = Some(u64::from_be_bytes(self.take()?));
                return Ok(());
            }
            other => {
                return Err(self
                    .source
                    .malformed(offset, &format!("unexpected record tag {other:#04x}")));
            }
        }
        let [name_len] = self.take::<1>()?;
        let name = self.take_vec(usize::from(name_len))?;
        let table = tables::names()
            .into_iter()
            .find(|n| n.as_bytes() == name)
            .ok_or_else(|| self.source.malformed(offset, "unknown table"))?;
        let key = self.field()?;
        let value = self.field()?;
        self.pending = Some(Record {
            table,
            key,
            value,
            offset,
        });
        Ok(())
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], BackupError> {
        let mut out = [0u8; N];
        self.reader
            .read_exact(&mut out)
            .map_err(|error| self.short(error))?;
        Ok(out)
    }

    fn take_vec(&mut self, len: usize) -> Result<Vec<u8>, BackupError> {
        let mut out = vec![0u8; len];
        self.reader
            .read_exact(&mut out)
            .map_err(|error| self.short(error))?;
        Ok(out)
    }

    fn field(&mut self) -> Result<Vec<u8>, BackupError> {
        let at = self.reader.at;
        let len = u32::from_be_bytes(self.take()?) as usize;
        if len > MAX_FIELD_BYTES {
            return Err(self
                .source
                .malformed(at, "a field is larger than any stored record"));
        }
        self.take_vec(len)
    }

    fn short(&self, error: io::Error) -> BackupError {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            self.source
                .malformed(self.reader.at, "the file ends inside a record")
        } else {
            self.source.io_error(error)
        }
    }
}

/// Feeds everything written through it to the MAC.
struct MacWriter<'a, W: Write> {
    inner: &'a mut W,
    mac: BackupMac,
}

impl<W: Write> Write for MacWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.mac.update(&buf[..n]);
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
    use crate::crypto::MasterKey;
    use crate::model::TenantId;

    fn options() -> StoreOptions {
        StoreOptions::with_cache_size(1024 * 1024)
    }

    fn keyring(id: &str) -> Keyring {
        Keyring::from_keys([(KeyId::parse(id).unwrap(), MasterKey::generate().unwrap())])
    }

    fn restore_options(keyring: &Keyring) -> RestoreOptions<'_> {
        RestoreOptions {
            keyring,
            accept_unauthenticated: false,
            force: false,
            store: options(),
        }
    }

    fn store_with_data(dir: &Path) -> Store {
        let store = Store::open(&dir.join("exsec.redb"), options()).unwrap();
        for name in ["acme", "globex"] {
            let id = TenantId::parse(name).unwrap();
            store.write(move |w| w.put_tenant(&id, "admin")).unwrap();
        }
        store
    }

    fn backup_bytes(store: &Store, keyring: &Keyring) -> (BackupHeader, Vec<u8>) {
        let (key_id, mac) = keyring.active_backup_mac().unwrap();
        let mut bytes = Vec::new();
        let mut seen = None;
        let header = store
            .backup(&mut bytes, &key_id, mac, |h| seen = Some(h.clone()))
            .unwrap();
        assert_eq!(seen.as_ref(), Some(&header), "started before streaming");
        (header, bytes)
    }

    /// Splits a backup into its header and the records (between the header
    /// line and the trailer).
    fn split(bytes: &[u8]) -> (BackupHeader, Vec<u8>) {
        let first = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
        let second = first + bytes[first..].iter().position(|&b| b == b'\n').unwrap() + 1;
        let header = serde_json::from_slice(&bytes[first..second - 1]).unwrap();
        (header, bytes[second..bytes.len() - TRAILER_BYTES].to_vec())
    }

    /// A backup as a forger with or without the key would build it.
    fn assemble(header: &BackupHeader, records: &[u8], trailer: &mut Verifier) -> Vec<u8> {
        let mut out = format!(
            "{MAGIC} {}\n{}\n",
            header.format,
            serde_json::to_string(header).unwrap()
        )
        .into_bytes();
        out.extend_from_slice(records);
        trailer.update(&out);
        let verifier = std::mem::replace(trailer, Verifier::None);
        let tag: [u8; 32] = match verifier {
            Verifier::Mac(mac) => mac.finalize(),
            Verifier::Checksum(hasher) => hasher.finalize().into(),
            Verifier::None => [0; 32],
        };
        out.extend_from_slice(&tag);
        out
    }

    #[test]
    fn a_backup_round_trips_into_a_fresh_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_data(dir.path());
        let keys = keyring("k1");
        let (header, bytes) = backup_bytes(&store, &keys);
        assert!(bytes.starts_with(b"exsec-backup 2\n"));
        assert_eq!(header.key_id.as_ref().map(KeyId::as_str), Some("k1"));
        assert_eq!(header.tables["tenants"], 2);
        assert_eq!(header.audit_head.seq, 2);
        let file = dir.path().join("backup");
        fs::write(&file, &bytes).unwrap();
        assert_eq!(inspect(&file).unwrap(), header);

        let target = dir.path().join("restored/exsec.redb");
        let restored = restore(&file, &target, &restore_options(&keys)).unwrap();
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

        let error = restore(&file, &target, &restore_options(&keys)).unwrap_err();
        assert!(matches!(error, BackupError::Exists { .. }), "{error}");
        let forced = RestoreOptions {
            force: true,
            ..restore_options(&keys)
        };
        assert!(
            restore(&file, &target, &forced)
                .unwrap()
                .replaced
                .unwrap()
                .exists()
        );
    }

    #[test]
    fn altered_backups_and_foreign_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_data(dir.path());
        let keys = keyring("k1");
        let (header, bytes) = backup_bytes(&store, &keys);
        let file = dir.path().join("backup");
        let target = dir.path().join("out.redb");
        let refused = |content: &[u8], keyring: &Keyring| {
            fs::write(&file, content).unwrap();
            restore(&file, &target, &restore_options(keyring)).unwrap_err()
        };
        let forged = |error: &BackupError, missing: bool| matches!(error, BackupError::Forged { key_missing, .. } if *key_missing == missing);

        for at in [20, bytes.len() / 2, bytes.len() - 40, bytes.len() - 1] {
            let mut flipped = bytes.clone();
            flipped[at] ^= 1;
            let error = refused(&flipped, &keys);
            assert!(
                forged(&error, false) || matches!(error, BackupError::Malformed { .. }),
                "byte {at}: {error}"
            );
        }
        // A record changed and a SHA-256 trailer recomputed, as a forger
        // without the key would: refused.
        let (_, mut records) = split(&bytes);
        let at = records.windows(4).position(|w| w == b"acme").unwrap();
        records[at..at + 4].copy_from_slice(b"acmf");
        let resealed = assemble(&header, &records, &mut Verifier::Checksum(Sha256::new()));
        let error = refused(&resealed, &keys);
        assert!(forged(&error, false), "{error}");
        assert!(
            error
                .to_string()
                .contains("altered, or made with a key you don't have")
        );

        assert!(forged(&refused(&bytes[..bytes.len() - 5], &keys), false));
        // Another key under the same id, and a key directory without it.
        assert!(forged(&refused(&bytes, &keyring("k1")), false));
        assert!(forged(&refused(&bytes, &keyring("k2")), true));
        assert!(matches!(
            refused(b"PK\x03\x04 not a backup", &keys),
            BackupError::NotABackup { .. }
        ));
        assert!(matches!(
            refused(b"exsec-backup 3\n{}\n", &keys),
            BackupError::UnsupportedFormat { .. }
        ));
        assert!(!target.exists());
    }

    #[test]
    fn a_format_1_backup_needs_accepting_and_its_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_data(dir.path());
        let keys = keyring("k1");
        let (mut header, bytes) = backup_bytes(&store, &keys);
        let (_, records) = split(&bytes);
        header.format = FORMAT_UNAUTHENTICATED;
        header.key_id = None;
        let old = assemble(&header, &records, &mut Verifier::Checksum(Sha256::new()));
        let file = dir.path().join("backup");
        fs::write(&file, &old).unwrap();
        let target = dir.path().join("out.redb");
        let error = restore(&file, &target, &restore_options(&keys)).unwrap_err();
        assert!(matches!(error, BackupError::Unauthenticated), "{error}");
        let accepting = RestoreOptions {
            accept_unauthenticated: true,
            ..restore_options(&keys)
        };
        // The trailer's last byte: the records still parse, the checksum
        // no longer matches them.
        let mut damaged = old.clone();
        damaged[old.len() - 1] ^= 1;
        fs::write(&file, &damaged).unwrap();
        let error = restore(&file, &target, &accepting).unwrap_err();
        assert!(matches!(error, BackupError::Checksum), "{error}");
        fs::write(&file, &old).unwrap();
        assert_eq!(restore(&file, &target, &accepting).unwrap().header, header);
    }

    #[test]
    fn a_backup_from_a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_data(dir.path());
        let keys = keyring("k1");
        let (mut header, bytes) = backup_bytes(&store, &keys);
        let (_, records) = split(&bytes);
        header.schema_version = schema::CURRENT + 1;
        let key_id = header.key_id.clone().unwrap();
        let newer = assemble(
            &header,
            &records,
            &mut Verifier::Mac(keys.backup_mac(&key_id).unwrap()),
        );
        let file = dir.path().join("backup");
        fs::write(&file, &newer).unwrap();
        let error = restore(&file, &dir.path().join("out.redb"), &restore_options(&keys))
            .err()
            .unwrap();
        assert!(
            matches!(error, BackupError::NewerSchema { found, .. } if found == schema::CURRENT + 1),
            "{error}"
        );
    }

    #[test]
    fn only_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let keys = keyring("k1");
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let target = dir.path().join("out.redb");
        for (path, kind) in [
            (fifo.as_path(), "FIFO (named pipe)"),
            (dir.path(), "directory"),
            (Path::new("/dev/zero"), "character device"),
        ] {
            let error = restore(path, &target, &restore_options(&keys)).unwrap_err();
            assert!(
                matches!(&error, BackupError::NotRegular { kind: k, .. } if *k == kind),
                "{}: {error}",
                path.display()
            );
        }
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
