//! The embedded store: one redb file holding tenants, apps, sealed secrets,
//! tokens, deploys, idempotency keys, the audit log and metadata.
//!
//! This is the only module that imports redb. It owns three promises:
//! - **Durable before acknowledged.** Every write transaction is opened by
//!   [`Store::write`], which sets two-phase commit and immediate durability
//!   and returns only after the commit reached the disk.
//! - **No change without its audit record.** Mutations append their audit
//!   event through the same [`Writer`], so both commit or neither does.
//! - **Plaintext never lands here.** Values arrive sealed
//!   ([`crate::crypto::SealedValue`]); this module never sees a key.
//!
//! Writes that arrive while a commit is in flight share the next commit
//! (group commit, see `store::commit`): a write is a closure that is
//! `Fn + Send + 'static` so that it can be queued, run by whichever caller
//! leads the batch, and run again if a neighbour in its batch fails.
//!
//! A failed commit (a full disk, EIO) does not stop reads: the file is
//! reopened at once and the store reports itself degraded until a write
//! commits again (see `store::health`). A file system that refuses writes
//! (mounted read-only) does not stop them either: the file is opened for
//! reading only (`store::read_only`) and writes are refused until it takes
//! writes again.

mod audit_log;
pub mod backup;
mod bulk;
mod cleanups;
pub mod codec;
mod commit;
#[cfg(test)]
mod crash_points;
pub mod data_keys;
pub mod deploys;
mod error;
pub mod health;
pub mod history;
mod legacy;
mod meta;
pub mod pins;
mod read_only;
pub mod records;
mod redeploys;
pub mod reseal;
mod schema;
mod secrets;
mod shred;
pub mod tables;
pub mod tenants;
#[doc(hidden)]
pub mod testing;
mod tokens;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, TryLockError};

use redb::{
    Database, Durability, Key, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    Table, TableDefinition, Value, WriteTransaction,
};

use crate::audit::{Anchor, AuditEvent, NewEvent};
use crate::model::Timestamp;
use error::Context;

pub use audit_log::{AuditFilter, AuditPage, ChainCheck, MAX_PAGE as MAX_AUDIT_PAGE};
pub use bulk::{BulkItem, BulkPut, BulkWrite, KeyOutcome, RepeatedKey, SecretOutcome};
pub use commit::{CommitStats, MAX_BATCH};
pub use error::{Missing, OpenError, Operation, Rejected, StoreError};
pub use health::{StorageFault, StorageHealth};
pub use secrets::{LayoutRead, PutSecret, SecretLayout, SecretWrite};
pub use shred::Shredded;

/// How the store is opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// redb page cache in bytes. redb's default is 1 GiB; edge boxes are
    /// small, so the config default is 8 MiB.
    pub cache_size: usize,
    /// Most writes one durable commit holds (group commit). 1 commits every
    /// write on its own, which benchmarks use as the baseline.
    pub max_batch: usize,
    /// Versions kept per secret (`storage.secret_history`, at least 1).
    pub secret_history: u32,
}

/// Most [`Store::read_async`] calls on the blocking pool at once. Reads
/// take microseconds and the machine has few cores: more at once only
/// adds threads (32 clients each reading an app record kept 32 pool
/// threads alive, each with its own glibc arena), not throughput.
pub const MAX_ASYNC_READS: usize = 4;

impl StoreOptions {
    /// The options exsec runs with, with a page cache of `cache_size`
    /// bytes.
    pub fn with_cache_size(cache_size: usize) -> StoreOptions {
        StoreOptions {
            cache_size,
            max_batch: MAX_BATCH,
            secret_history: history::DEFAULT_SECRET_HISTORY,
        }
    }
}

impl StoreError {
    /// Whether redb now refuses transactions until the database is reopened.
    fn needs_reopen(&self) -> bool {
        match self {
            StoreError::Storage {
                source: redb::Error::Io(_) | redb::Error::PreviousIo,
                ..
            } => true,
            StoreError::Batch(shared) => shared.needs_reopen(),
            _ => false,
        }
    }
}

/// Runs of one read before its storage error is returned.
const READ_ATTEMPTS: usize = 3;

/// How tests open the file through a fault-injecting backend.
#[cfg(test)]
type Opener = dyn Fn(&redb::Builder, &Path) -> Result<Database, redb::DatabaseError> + Send + Sync;

/// The store handle, shared by every request (`Arc<Store>`).
pub struct Store {
    path: PathBuf,
    options: StoreOptions,
    /// `None` only when a reopen failed; the next write or probe retries.
    /// A reopen holds the write side from closing the old handle to
    /// installing the new one, so reads wait for it instead of failing.
    db: RwLock<Option<Database>>,
    /// Queued writes and the one batch being committed; whoever leads a
    /// batch is the only writer (redb has one anyway) and does reopens.
    commits: commit::GroupCommit,
    /// Permits for [`Store::read_async`]: at most [`MAX_ASYNC_READS`] at once.
    readers: tokio::sync::Semaphore,
    /// Generation of the handle in `db`: bumped by every reopen, so that a
    /// failure seen on a handle already replaced reopens nothing.
    generation: AtomicU64,
    /// Generation of the handle known to have failed (0: none). While it is
    /// the current one, the next read, write or probe reopens first.
    failed: AtomicU64,
    /// Whether writes currently succeed.
    health: health::HealthCell,
    /// Whether the last reopen failed (logged once until one succeeds).
    reopen_failing: AtomicBool,
    /// Whether the handle in `db` reads the file without writing it (the
    /// file system refused writes when it was opened).
    read_only: AtomicBool,
    #[cfg(test)]
    opener: Option<Box<Opener>>,
}

impl Store {
    /// Opens (or creates) the redb file at `path`, creates missing tables,
    /// checks the schema version and runs forward migrations.
    pub fn open(path: &Path, options: StoreOptions) -> Result<Store, OpenError> {
        let store = Store::unopened(path, options);
        let db = store.open_database()?;
        *store.db.write().unwrap_or_else(|p| p.into_inner()) = Some(db);
        store.note_access();
        Ok(store)
    }

    fn unopened(path: &Path, options: StoreOptions) -> Store {
        Store {
            path: path.to_owned(),
            options,
            db: RwLock::new(None),
            commits: commit::GroupCommit::default(),
            readers: tokio::sync::Semaphore::new(MAX_ASYNC_READS),
            generation: AtomicU64::new(1),
            failed: AtomicU64::new(0),
            health: health::HealthCell::default(),
            reopen_failing: AtomicBool::new(false),
            read_only: AtomicBool::new(false),
            #[cfg(test)]
            opener: None,
        }
    }

    /// The redb file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` over one consistent read snapshot. A read that finds the
    /// handle failed (a commit failed meanwhile, or a read hit EIO) reopens
    /// the file and runs once more on the fresh handle, so reads keep being
    /// answered through a storage fault.
    pub fn read<T>(&self, f: impl Fn(&Reader) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut result = self.read_once(&f);
        // A failed commit spoils only the reads that overlapped it; once the
        // store is degraded, commits exclude reads (`store::commit`), so a
        // run on the reopened handle fails only if the disk fails reads.
        for _ in 1..READ_ATTEMPTS {
            match &result {
                Err(error) if error.needs_reopen() && self.reopen_if_needed().is_ok() => {
                    result = self.read_once(&f);
                }
                _ => break,
            }
        }
        result
    }

    fn read_once<T>(&self, f: &impl Fn(&Reader) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let guard = self
            .db
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.read_on(&guard, f)
    }

    /// [`Store::read_once`] if the handle is free now; `None` if a reopen
    /// or a degraded store's commit holds it.
    fn try_read_once<T>(
        &self,
        f: &impl Fn(&Reader) -> Result<T, StoreError>,
    ) -> Option<Result<T, StoreError>> {
        let guard = match self.db.try_read() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        Some(self.read_on(&guard, f))
    }

    fn read_on<T>(
        &self,
        guard: &Option<Database>,
        f: &impl Fn(&Reader) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // No handle: the reopen failed and is being retried. Not a lack of
        // space for this read, whatever failed the writes.
        let Some(db) = guard.as_ref() else {
            return Err(StoreError::Unavailable {
                fault: StorageFault::Io,
            });
        };
        let result = db
            .begin_read()
            .during(Operation::BeginRead)
            .and_then(|txn| f(&Snapshot { txn }));
        if let Err(error) = &result {
            self.note_failure(error, self.generation());
        }
        result
    }

    /// Runs `f` in a write transaction and returns once that transaction
    /// is durable (two-phase commit, immediate durability). If `f` fails,
    /// nothing it did is kept. Writes from concurrent callers may share the
    /// transaction (group commit); `f` may run more than once if another
    /// write of its batch fails, and only its last run is kept. Audit events
    /// appended by `f` are logged through `tracing` once the commit
    /// succeeded.
    pub fn write<T: Send + 'static>(
        &self,
        f: impl Fn(&mut Writer) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.commit_grouped(f)
    }

    /// [`Store::read`] on the blocking thread pool, for async callers; at
    /// most [`MAX_ASYNC_READS`] at once, the others wait their turn.
    pub async fn read_async<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl Fn(&Reader) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        // Never closed: an error cannot happen, and would be a stop.
        let _permit = self
            .readers
            .acquire()
            .await
            .map_err(|_| StoreError::Interrupted)?;
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.read(f))
            .await
            .map_err(|_| StoreError::Interrupted)?
    }

    /// A small read for async callers — a record by its key, a tenant's
    /// data keys — run right here on the calling task's thread: that costs
    /// less than [`Store::read_async`]'s two thread hand-offs (a wake-up
    /// and a context switch each way; ~30% of the daemon's CPU per secret
    /// PUT, docs/performance.md "Round 2"). Only when the handle is free:
    /// a reopen, or a commit of a degraded store, holds it for as long as
    /// a slow disk takes, and a read that finds the handle failed needs a
    /// reopen; both go to the blocking pool as [`Store::read_async`].
    /// Never for scans (lists, audit queries, pages of a rotation, an
    /// app's secret layout, whose tenant scope has no count limit): an
    /// async worker held for milliseconds delays every connection it
    /// serves.
    pub async fn lookup<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl Fn(&Reader) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        match self.try_read_once(&f) {
            Some(Ok(value)) => Ok(value),
            Some(Err(error)) if !error.needs_reopen() => Err(error),
            _ => self.read_async(f).await,
        }
    }

    /// [`Store::write`] for async callers: the write shares a group commit
    /// like any other, but the caller waits without holding a thread (see
    /// `commit.rs`).
    pub async fn write_async<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl Fn(&mut Writer) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        // A task of its own: the write is answered even if the caller
        // stops waiting (a client that hangs up), as a blocking-pool write
        // was.
        tokio::spawn(async move { store.commit_grouped_async(f).await })
            .await
            .map_err(|_| StoreError::Interrupted)?
    }

    /// Commits a small probe record: reopens the file first if needed, and
    /// marks the store healthy when it lands (the background retry of
    /// `store::health`).
    pub fn probe(&self) -> Result<(), StoreError> {
        self.write(|w| w.record_storage_probe())
    }

    /// [`Store::probe`] on the blocking thread pool.
    pub async fn probe_async(self: &Arc<Self>) -> Result<(), StoreError> {
        self.write_async(|w| w.record_storage_probe()).await
    }

    /// The generation of the handle in `db` (read it under the lock).
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// After an I/O error redb refuses every transaction of that handle
    /// until the file is reopened: marks handle `generation` for reopening
    /// and the store degraded.
    fn note_failure(&self, error: &StoreError, generation: u64) {
        if !error.needs_reopen() || generation != self.generation() {
            return;
        }
        if self.failed.swap(generation, Ordering::AcqRel) != generation {
            // The change of state is logged once by `store::health`; a
            // full disk fails (and reopens) at every write.
            tracing::debug!(path = %self.path.display(), error = ?error, "storage I/O error; reopening the database");
        }
        // `PreviousIo` repeats a failure already classified.
        if !matches!(
            error,
            StoreError::Storage {
                source: redb::Error::PreviousIo,
                ..
            }
        ) || self.health() == StorageHealth::Healthy
        {
            let fault = error.fault().unwrap_or(StorageFault::Io);
            self.health.set(StorageHealth::Degraded(fault), &self.path);
        }
    }

    /// Drops the failed redb handle and opens the file again, if the current
    /// handle failed. Holding the write side of `db` means no transaction is
    /// open on the handle (every read and write holds a side of the lock
    /// while it runs); reads arriving meanwhile wait for the swap.
    fn reopen_if_needed(&self) -> Result<(), StoreError> {
        if self.failed.load(Ordering::Acquire) != self.generation() {
            return Ok(());
        }
        let mut guard = self
            .db
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.reopen_locked(&mut guard)
    }

    /// [`Store::reopen_if_needed`] with the write side of `db` already held.
    fn reopen_locked(&self, db: &mut Option<Database>) -> Result<(), StoreError> {
        let generation = self.generation();
        if self.failed.load(Ordering::Acquire) != generation {
            return Ok(()); // not failed, or reopened by another thread meanwhile
        }
        // A read-only handle is kept (reads go on, no repair is redone)
        // until the file can be opened for writing.
        if db.is_some()
            && self.read_only.load(Ordering::Acquire)
            && let Err(error) = read_only::writable(&self.path)
        {
            return Err(StoreError::Unavailable {
                fault: StorageFault::of(&error),
            });
        }
        // Close first: redb holds a lock on the file until dropped.
        drop(db.take());
        match self.open_database() {
            Ok(opened) => {
                *db = Some(opened);
                self.generation.store(generation + 1, Ordering::Release);
                self.note_access();
                if self.reopen_failing.swap(false, Ordering::AcqRel) {
                    tracing::info!(path = %self.path.display(), "database reopened: reads are answered again");
                }
                tracing::debug!(path = %self.path.display(), "database reopened");
                Ok(())
            }
            Err(error) => {
                if !self.reopen_failing.swap(true, Ordering::AcqRel) {
                    tracing::error!(path = %self.path.display(), error = ?error, "cannot reopen the database: reads fail too until it can; retrying");
                }
                Err(StoreError::Unavailable {
                    fault: error.fault().unwrap_or_else(|| self.health.fault()),
                })
            }
        }
    }

    /// Opens the file for writing or, if its file system refuses writes,
    /// for reading only (then `read_only` is set; see [`Store::note_access`]).
    fn open_database(&self) -> Result<Database, OpenError> {
        let mut builder = Database::builder();
        builder.set_cache_size(self.options.cache_size);
        #[cfg(test)]
        let opened = match &self.opener {
            Some(opener) => opener(&builder, &self.path),
            None => builder.create(&self.path),
        };
        #[cfg(not(test))]
        let opened = builder.create(&self.path);
        let in_use = || OpenError::InUse {
            path: self.path.clone(),
        };
        let (db, read_only) = match opened {
            Ok(db) => (db, false),
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Err(in_use()),
            Err(source) if read_only::refuses_writes(&source) => {
                match read_only::open(&builder, &self.path) {
                    Ok(read_only::Opened::Database(db)) => (db, true),
                    Ok(read_only::Opened::InUse) => return Err(in_use()),
                    // The first refusal says more than the second failure.
                    Err(_) => {
                        return Err(OpenError::Open {
                            path: self.path.clone(),
                            source,
                        });
                    }
                }
            }
            Err(source) => {
                return Err(OpenError::Open {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        self.read_only.store(read_only, Ordering::Release);
        schema::prepare(&db, &self.path)?;
        Ok(db)
    }

    /// After an open: a read-only handle keeps the store degraded and is
    /// marked for reopening, so the next write or probe tries the file for
    /// writing again.
    fn note_access(&self) {
        if self.read_only.load(Ordering::Acquire) {
            self.failed.store(self.generation(), Ordering::Release);
            self.health
                .set(StorageHealth::Degraded(StorageFault::ReadOnly), &self.path);
        }
    }
}

/// A consistent view of the store inside one transaction. Every query is
/// an inherent method of `Snapshot<T: Tables>` (in the resource modules),
/// so it is written once and runs in a read or a write transaction.
pub struct Snapshot<T> {
    txn: T,
}

/// A read snapshot.
pub type Reader = Snapshot<ReadTransaction>;

/// An open write transaction, with the audit head and the clock of this
/// transaction. Queries are reached through `Deref` to its snapshot.
pub struct Writer {
    snapshot: Snapshot<WriteTransaction>,
    audit_head: Option<Anchor>,
    appended: Vec<AuditEvent>,
    now: Timestamp,
    /// Versions kept per secret; pruning beyond it is part of each write.
    history_limit: u32,
}

impl Writer {
    /// Opens the one kind of write transaction exsec uses.
    fn begin(db: &Database) -> Result<Writer, StoreError> {
        let mut txn = db.begin_write().during(Operation::BeginWrite)?;
        txn.set_two_phase_commit(true);
        txn.set_durability(Durability::Immediate)
            .during(Operation::BeginWrite)?;
        Ok(Writer {
            snapshot: Snapshot { txn },
            audit_head: None,
            appended: Vec::new(),
            now: Timestamp::now(),
            history_limit: history::DEFAULT_SECRET_HISTORY,
        })
    }

    /// The time stamped on everything this transaction writes.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Appends an audit event to the chain, in this transaction.
    pub fn audit(&mut self, event: NewEvent) -> Result<&AuditEvent, StoreError> {
        let head = match self.audit_head {
            Some(head) => head,
            None => self.audit_head()?,
        };
        let linked = event.link(head, self.now);
        audit_log::insert(self.txn(), &linked)?;
        self.audit_head = Some(linked.anchor());
        self.appended.push(linked);
        Ok(self
            .appended
            .last()
            .unwrap_or_else(|| unreachable!("just pushed")))
    }

    fn finish(self) -> Result<Vec<AuditEvent>, StoreError> {
        self.snapshot.txn.commit().during(Operation::Commit)?;
        Ok(self.appended)
    }

    /// Rolls everything back. An abort that fails leaves nothing to undo
    /// (redb drops the transaction either way), so its error is logged only.
    fn abort(self) {
        if let Err(error) = self.snapshot.txn.abort() {
            tracing::warn!(error = %error, "aborting a write transaction failed");
        }
    }
}

/// Read access shared by [`Reader`] and [`Writer`], so every query is
/// written once and runs in either kind of transaction.
pub trait Tables {
    /// The table type this transaction hands out.
    type Table<'a, K: Key + 'static, V: Value + 'static>: ReadableTable<K, V>
    where
        Self: 'a;

    /// Opens `definition` for reading.
    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        definition: TableDefinition<K, V>,
    ) -> Result<Self::Table<'_, K, V>, StoreError>;
}

impl Tables for ReadTransaction {
    type Table<'a, K: Key + 'static, V: Value + 'static> = ReadOnlyTable<K, V>;

    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        definition: TableDefinition<K, V>,
    ) -> Result<ReadOnlyTable<K, V>, StoreError> {
        self.open_table(definition).in_table(definition)
    }
}

impl Tables for WriteTransaction {
    type Table<'a, K: Key + 'static, V: Value + 'static> = Table<'a, K, V>;

    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        definition: TableDefinition<K, V>,
    ) -> Result<Table<'_, K, V>, StoreError> {
        self.open_table(definition).in_table(definition)
    }
}

impl<T> Snapshot<T> {
    fn txn(&self) -> &T {
        &self.txn
    }
}

impl std::ops::Deref for Writer {
    type Target = Snapshot<WriteTransaction>;

    fn deref(&self) -> &Snapshot<WriteTransaction> {
        &self.snapshot
    }
}

/// Decodes a stored value, naming the table on failure.
fn decode<T: serde::de::DeserializeOwned>(
    table: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    codec::decode(bytes).map_err(|source| StoreError::Corrupt { table, source })
}

/// Encodes a value for storage. Only our own types are encoded, so a
/// failure means a record over the size limit.
fn encode<T: serde::Serialize + ?Sized>(
    table: &'static str,
    value: &T,
) -> Result<Vec<u8>, StoreError> {
    codec::encode(value).map_err(|source| StoreError::Corrupt { table, source })
}

/// Audit events are also structured log lines (SPEC §7). Data holds names
/// and counts only, never values.
fn log_audit_event(event: &AuditEvent) {
    let data = serde_json::Value::Object(event.data.clone());
    tracing::info!(
        target: "exsec::audit",
        seq = event.seq,
        event_type = %event.event_type,
        actor = %event.actor,
        tenant_id = event.tenant_id.as_deref().unwrap_or(""),
        app_id = event.app_id.as_deref().unwrap_or(""),
        data = %data,
        "audit event"
    );
}

#[cfg(test)]
mod tests {
    use std::fmt;
    use std::ops::Bound;
    use std::sync::{Arc, Mutex};

    use redb::backends::FileBackend;
    use redb::{BackendError, StorageBackend};

    use super::*;
    use crate::model::TenantId;

    pub(super) fn options() -> StoreOptions {
        StoreOptions::with_cache_size(1024 * 1024)
    }

    #[test]
    fn a_file_from_a_newer_exsec_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exsec.redb");
        {
            let store = Store::open(&path, options()).unwrap();
            let guard = store.db.read().unwrap();
            schema::force_version(guard.as_ref().unwrap(), schema::CURRENT + 1).unwrap();
        }
        let error = Store::open(&path, options()).err().unwrap();
        assert!(
            matches!(error, OpenError::NewerSchema { found, .. } if found == schema::CURRENT + 1)
        );
        assert!(error.to_string().contains("newer than this exsec supports"));
    }

    /// How [`FlakyDisk`] fails.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum Failure {
        /// Works.
        None,
        /// ENOSPC: the file cannot grow past its length when the disk
        /// filled; writes inside it (redb's header) still work.
        Full,
        /// EIO on every write and sync.
        Eio,
    }

    /// A file backend that fails on demand, standing in for a disk that
    /// fills up or returns EIO.
    pub(super) struct FlakyDisk {
        inner: FileBackend,
        /// The failure, and the file length when the disk filled.
        failure: Arc<Mutex<(Failure, u64)>>,
    }

    /// Switches a [`FlakyDisk`] between working and failing.
    #[derive(Clone)]
    pub(super) struct DiskSwitch(Arc<Mutex<(Failure, u64)>>, PathBuf);

    impl DiskSwitch {
        pub(super) fn set(&self, failure: Failure) {
            let len = std::fs::metadata(&self.1).map_or(0, |m| m.len());
            *self.0.lock().unwrap() = (failure, len);
        }
    }

    impl fmt::Debug for FlakyDisk {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("FlakyDisk")
        }
    }

    impl FlakyDisk {
        fn check(&self, end: Option<u64>) -> Result<(), std::io::Error> {
            match *self.failure.lock().unwrap() {
                (Failure::Eio, _) => Err(std::io::Error::other("injected EIO")),
                (Failure::Full, len) if end.is_none_or(|end| end > len) => {
                    Err(std::io::Error::from(std::io::ErrorKind::StorageFull))
                }
                _ => Ok(()),
            }
        }
    }

    impl StorageBackend for FlakyDisk {
        fn len(&self) -> Result<u64, std::io::Error> {
            self.inner.len()
        }
        fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
            self.inner.read(offset, out)
        }
        fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
            self.check(Some(len))?;
            self.inner.set_len(len)
        }
        fn sync_data(&self) -> Result<(), std::io::Error> {
            self.check(Some(0))?;
            self.inner.sync_data()
        }
        fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
            self.check(Some(offset + data.len() as u64))?;
            self.inner.write(offset, data)
        }
        fn close(&self) -> Result<(), std::io::Error> {
            self.inner.close()
        }
        fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
            self.inner.try_lock_range(start, end)
        }
        fn try_lock_shared_range(
            &self,
            start: Bound<u64>,
            end: Bound<u64>,
        ) -> Result<bool, BackendError> {
            self.inner.try_lock_shared_range(start, end)
        }
        fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
            self.inner.lock_range(start, end)
        }
        fn lock_shared_range(
            &self,
            start: Bound<u64>,
            end: Bound<u64>,
        ) -> Result<(), BackendError> {
            self.inner.lock_shared_range(start, end)
        }
        fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
            self.inner.unlock_range(start, end)
        }
        fn query_lock_range(
            &self,
            start: Bound<u64>,
            end: Bound<u64>,
        ) -> Result<bool, BackendError> {
            self.inner.query_lock_range(start, end)
        }
    }

    /// A store on [`FlakyDisk`], and the switch that makes it fail.
    pub(super) fn flaky_store(path: &Path) -> (Store, DiskSwitch) {
        let failure = Arc::new(Mutex::new((Failure::None, 0)));
        let switch = DiskSwitch(failure.clone(), path.to_owned());
        let mut store = Store::unopened(path, options());
        store.opener = Some(Box::new(move |builder, path| {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)?;
            let inner = FileBackend::new(file)?;
            builder.create_with_backend(FlakyDisk {
                inner,
                failure: failure.clone(),
            })
        }));
        let db = store.open_database().unwrap();
        *store.db.write().unwrap() = Some(db);
        (store, switch)
    }

    fn tenant(id: &str) -> TenantId {
        TenantId::parse(id).unwrap()
    }

    /// A store in a temporary directory holding tenant `id`.
    fn store_with_tenant(id: &str) -> (tempfile::TempDir, Arc<Store>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("exsec.redb"), options()).unwrap());
        store
            .write({
                let id = tenant(id);
                move |w| w.put_tenant(&id, "admin")
            })
            .unwrap();
        (dir, store)
    }

    /// A lookup on a free handle runs on the caller's thread: no hand-off.
    #[tokio::test]
    async fn a_lookup_runs_on_the_calling_thread() {
        let (_dir, store) = store_with_tenant("acme");
        let (thread, found) = store
            .lookup(|r| Ok((std::thread::current().id(), r.tenant(&tenant("acme"))?)))
            .await
            .unwrap();
        assert_eq!(thread, std::thread::current().id());
        assert!(found.is_some());
    }

    /// While a reopen holds the handle, a lookup waits on the blocking
    /// pool, not on the async thread: the (single-threaded) runtime keeps
    /// running other tasks, and the lookup answers once the handle is back.
    #[tokio::test]
    async fn a_lookup_waits_for_a_held_handle_off_the_async_thread() {
        let (_dir, store) = store_with_tenant("acme");
        let (held_tx, held) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn({
            let store = store.clone();
            move || {
                let _guard = store.db.write().unwrap();
                held_tx.send(()).unwrap();
                release_rx.recv().unwrap();
            }
        });
        held.recv().unwrap();
        let lookup = tokio::spawn({
            let store = store.clone();
            async move {
                store
                    .lookup(|r| Ok((std::thread::current().id(), r.tenant(&tenant("acme"))?)))
                    .await
            }
        });
        // The lookup has started and waits; this task still runs.
        tokio::task::yield_now().await;
        assert!(!lookup.is_finished());
        release.send(()).unwrap();
        let (thread, found) = lookup.await.unwrap().unwrap();
        assert_ne!(thread, std::thread::current().id());
        assert!(found.is_some());
        holder.join().unwrap();
    }

    /// One write that needs the file to grow: many tenants at once.
    fn grow(store: &Store, prefix: &'static str) -> Result<(), StoreError> {
        store.write(move |w| {
            for n in 0..2_000 {
                w.put_tenant(&tenant(&format!("{prefix}-{n:04}")), "admin")?;
            }
            Ok(())
        })
    }

    fn tenant_count(store: &Store) -> usize {
        store.read(|r| r.tenants()).unwrap().len()
    }

    /// The disk fills: the failed commit reopens the file at once, reads
    /// go on, the store reports itself degraded (no space) until a write
    /// commits again, and what was committed before is all there.
    #[test]
    fn a_full_disk_degrades_writes_only_and_the_store_heals_itself() {
        let dir = tempfile::tempdir().unwrap();
        let (store, disk) = flaky_store(&dir.path().join("exsec.redb"));
        store
            .write(|w| w.put_tenant(&tenant("acme"), "admin"))
            .unwrap();

        disk.set(Failure::Full);
        let error = grow(&store, "full").unwrap_err();
        assert_eq!(error.fault(), Some(StorageFault::NoSpace), "{error:?}");
        assert_eq!(
            store.health(),
            StorageHealth::Degraded(StorageFault::NoSpace)
        );
        assert_eq!(store.generation(), 2, "reopened at once");
        assert!(store.read(|r| r.tenant(&tenant("acme"))).unwrap().is_some());
        assert_eq!(store.read(|r| r.audit_head()).unwrap().seq, 1);
        let again = grow(&store, "full").unwrap_err();
        assert_eq!(again.fault(), Some(StorageFault::NoSpace), "{again:?}");
        assert_eq!(tenant_count(&store), 1);

        disk.set(Failure::None);
        grow(&store, "healed").unwrap();
        assert_eq!(store.health(), StorageHealth::Healthy);
        assert_eq!(tenant_count(&store), 2_001);
        let check = store.read(|r| r.verify_audit_chain(None)).unwrap();
        assert_eq!(check.outcome.unwrap().seq, 2_001);
    }

    /// EIO everywhere: even the reopen fails, so reads answer "unavailable"
    /// rather than hang or panic; once the disk is back the probe reopens
    /// and heals without any write from a client.
    #[test]
    fn after_eio_the_probe_reopens_and_heals() {
        let dir = tempfile::tempdir().unwrap();
        let (store, disk) = flaky_store(&dir.path().join("exsec.redb"));
        store
            .write(|w| w.put_tenant(&tenant("acme"), "admin"))
            .unwrap();

        disk.set(Failure::Eio);
        let error = store
            .write(|w| w.put_tenant(&tenant("lost"), "admin"))
            .unwrap_err();
        assert_eq!(error.fault(), Some(StorageFault::Io), "{error:?}");
        assert_eq!(store.health(), StorageHealth::Degraded(StorageFault::Io));
        assert!(store.probe().is_err());
        let unavailable = store.read(|r| r.tenants()).unwrap_err();
        assert_eq!(unavailable.fault(), Some(StorageFault::Io));

        disk.set(Failure::None);
        store.probe().unwrap();
        assert_eq!(store.health(), StorageHealth::Healthy);
        assert_eq!(tenant_count(&store), 1);
    }

    /// Async reads beyond [`MAX_ASYNC_READS`] wait for a permit instead of
    /// each taking a blocking-pool thread: with 16 reads held open, only
    /// the first four are running, and all finish once released.
    #[test]
    fn async_reads_run_at_most_four_at_once() {
        use std::sync::atomic::AtomicUsize;
        use std::sync::mpsc;

        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("exsec.redb"), options()).unwrap());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (release, released) = mpsc::channel::<()>();
        let released = Arc::new(Mutex::new(released));
        let reads: Vec<_> = (0..16)
            .map(|_| {
                let (store, inside, most, released) = (
                    store.clone(),
                    inside.clone(),
                    most.clone(),
                    released.clone(),
                );
                runtime.spawn(async move {
                    store
                        .read_async(move |r| {
                            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            released.lock().unwrap().recv().unwrap();
                            inside.fetch_sub(1, Ordering::SeqCst);
                            r.tenants().map(|t| t.len())
                        })
                        .await
                })
            })
            .collect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while inside.load(Ordering::SeqCst) < MAX_ASYNC_READS
            || store.readers.available_permits() > 0
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the reads did not start"
            );
            std::thread::yield_now();
        }
        for _ in 0..16 {
            release.send(()).unwrap();
        }
        runtime.block_on(async {
            for read in reads {
                assert_eq!(read.await.unwrap().unwrap(), 0);
            }
        });
        assert_eq!(most.load(Ordering::SeqCst), MAX_ASYNC_READS);
    }
}
