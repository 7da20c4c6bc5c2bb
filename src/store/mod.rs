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

mod audit_log;
pub mod backup;
mod cleanups;
pub mod codec;
mod commit;
#[cfg(test)]
mod crash_points;
pub mod deploys;
mod meta;
pub mod records;
pub mod reseal;
mod schema;
mod secrets;
pub mod tables;
mod tenants;
#[doc(hidden)]
pub mod testing;
mod tokens;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use redb::{
    Database, Durability, Key, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable,
    Table, TableDefinition, Value, WriteTransaction,
};

use crate::audit::{Anchor, AuditEvent, NewEvent};
use crate::model::Timestamp;

pub use audit_log::{AuditFilter, AuditPage, ChainCheck, MAX_PAGE as MAX_AUDIT_PAGE};
pub use commit::{CommitStats, MAX_BATCH};
pub use secrets::{PutSecret, SecretWrite};

/// How the store is opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// redb page cache in bytes. redb's default is 1 GiB; edge boxes are
    /// small, so the config default is 32 MiB.
    pub cache_size: usize,
    /// Most writes one durable commit holds (group commit). 1 commits every
    /// write on its own, which benchmarks use as the baseline.
    pub max_batch: usize,
}

impl StoreOptions {
    /// The options exsec runs with, with a page cache of `cache_size`
    /// bytes.
    pub fn with_cache_size(cache_size: usize) -> StoreOptions {
        StoreOptions {
            cache_size,
            max_batch: MAX_BATCH,
        }
    }
}

/// Everything that can go wrong in the store, with what the caller needs
/// to answer the user.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the file (redb locks it).
    #[error("database {path} is in use by another exsec process")]
    InUse {
        /// The redb file.
        path: PathBuf,
    },
    /// The file was written by a newer exsec; downgrades are refused.
    #[error(
        "database {path} has schema version {found}, newer than this exsec supports ({supported}); run the exsec version that wrote it, or restore a backup made by this version"
    )]
    NewerSchema {
        /// The redb file.
        path: PathBuf,
        /// Version in the file.
        found: u32,
        /// Newest version this build reads.
        supported: u32,
    },
    /// The file could not be opened.
    #[error("cannot open database {path}")]
    Open {
        /// The redb file.
        path: PathBuf,
        /// What redb said.
        #[source]
        source: redb::DatabaseError,
    },
    /// A record could not be decoded (corruption or a foreign file).
    #[error("stored record in table {table} is unreadable")]
    Corrupt {
        /// Which table.
        table: &'static str,
        /// Why.
        #[source]
        source: codec::CodecError,
    },
    /// The blocking task running a store call panicked or was cancelled.
    #[error("storage task was interrupted")]
    Interrupted,
    /// A table key does not parse (corruption or a foreign file).
    #[error("stored key {key:?} in table {table} is malformed")]
    CorruptKey {
        /// Which table.
        table: &'static str,
        /// The key as found.
        key: String,
    },
    /// redb failed: I/O, corruption, or writes refused after an I/O error.
    #[error("storage error")]
    Storage(#[source] redb::Error),
    /// The commit shared by a group of writes failed; every write of the
    /// group gets this one error.
    #[error("storage error in a group commit")]
    Batch(#[source] Arc<StoreError>),
    /// The thing named does not exist.
    #[error("{kind} {id} not found")]
    NotFound {
        /// `tenant`, `app`, `external secret`, `token`, `deploy`.
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// The write conflicts with what is stored; `code` is the API code.
    #[error("{message}")]
    Conflict {
        /// Stable machine code (`app_tenant_fixed`, `env_name_taken`, …).
        code: &'static str,
        /// What conflicts and how to fix it.
        message: String,
    },
    /// The write would push an app's effective set past 1 MiB.
    #[error(
        "effective set of app {app_id} would be {bytes} bytes, above the 1 MiB a Kubernetes Secret holds"
    )]
    EffectiveSetTooLarge {
        /// The app that would overflow.
        app_id: String,
        /// Its size after the write.
        bytes: usize,
    },
    /// A master key id is known with another fingerprint.
    #[error("master key {key_id} differs from the key of that id that sealed stored values")]
    KeyFingerprintMismatch {
        /// The key id.
        key_id: String,
    },
}

impl<E: Into<redb::Error>> From<E> for StoreError {
    fn from(error: E) -> Self {
        StoreError::Storage(error.into())
    }
}

impl StoreError {
    /// Whether redb now refuses writes until the database is reopened.
    fn needs_reopen(&self) -> bool {
        match self {
            StoreError::Storage(redb::Error::Io(_) | redb::Error::PreviousIo) => true,
            StoreError::Batch(shared) => shared.needs_reopen(),
            _ => false,
        }
    }
}

/// How tests open the file through a fault-injecting backend.
#[cfg(test)]
type Opener = dyn Fn(&redb::Builder, &Path) -> Result<Database, redb::DatabaseError> + Send + Sync;

/// The store handle, shared by every request (`Arc<Store>`).
pub struct Store {
    path: PathBuf,
    options: StoreOptions,
    /// `None` only while a reopen is in progress and the new open failed.
    db: RwLock<Option<Database>>,
    /// Queued writes and the one batch being committed; whoever leads a
    /// batch is the only writer (redb has one anyway) and does reopens.
    commits: commit::GroupCommit,
    /// Set after an I/O error; the next write reopens first.
    reopen_needed: AtomicBool,
    #[cfg(test)]
    opener: Option<Box<Opener>>,
}

impl Store {
    /// Opens (or creates) the redb file at `path`, creates missing tables,
    /// checks the schema version and runs forward migrations.
    pub fn open(path: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        let store = Store {
            path: path.to_owned(),
            options,
            db: RwLock::new(None),
            commits: commit::GroupCommit::default(),
            reopen_needed: AtomicBool::new(false),
            #[cfg(test)]
            opener: None,
        };
        store.open_database()?;
        Ok(store)
    }

    /// The redb file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` over one consistent read snapshot.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Reader) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let guard = self
            .db
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(db) = guard.as_ref() else {
            return Err(StoreError::Storage(redb::Error::DatabaseClosed));
        };
        let reader = Snapshot {
            txn: db.begin_read()?,
        };
        f(&reader)
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

    /// [`Store::read`] on the blocking thread pool, for async callers.
    pub async fn read_async<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Reader) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.read(f))
            .await
            .map_err(|_| StoreError::Interrupted)?
    }

    /// [`Store::write`] on the blocking thread pool, for async callers.
    pub async fn write_async<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl Fn(&mut Writer) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.write(f))
            .await
            .map_err(|_| StoreError::Interrupted)?
    }

    /// Drops the current redb handle and opens the file again: after an
    /// I/O error redb refuses writes until then. Called by the leader of a
    /// group commit (the only writer); reads wait only for the swap itself.
    fn reopen(&self) -> Result<(), StoreError> {
        {
            let mut guard = self
                .db
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            // Close first: redb holds a lock on the file until dropped.
            guard.take();
        }
        self.open_database()?;
        self.reopen_needed.store(false, Ordering::Release);
        tracing::info!(path = %self.path.display(), "database reopened");
        Ok(())
    }

    fn open_database(&self) -> Result<(), StoreError> {
        let mut builder = Database::builder();
        builder.set_cache_size(self.options.cache_size);
        #[cfg(test)]
        let opened = match &self.opener {
            Some(opener) => opener(&builder, &self.path),
            None => builder.create(&self.path),
        };
        #[cfg(not(test))]
        let opened = builder.create(&self.path);
        let db = opened.map_err(|source| match source {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse {
                path: self.path.clone(),
            },
            source => StoreError::Open {
                path: self.path.clone(),
                source,
            },
        })?;
        schema::prepare(&db, &self.path)?;
        *self
            .db
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(db);
        Ok(())
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
}

impl Writer {
    /// Opens the one kind of write transaction exsec uses.
    fn begin(db: &Database) -> Result<Writer, StoreError> {
        let mut txn = db.begin_write()?;
        txn.set_two_phase_commit(true);
        txn.set_durability(Durability::Immediate)
            .map_err(redb::Error::from)?;
        Ok(Writer {
            snapshot: Snapshot { txn },
            audit_head: None,
            appended: Vec::new(),
            now: Timestamp::now(),
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
        self.snapshot.txn.commit()?;
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
        Ok(self.open_table(definition)?)
    }
}

impl Tables for WriteTransaction {
    type Table<'a, K: Key + 'static, V: Value + 'static> = Table<'a, K, V>;

    fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        definition: TableDefinition<K, V>,
    ) -> Result<Table<'_, K, V>, StoreError> {
        Ok(self.open_table(definition)?)
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
    use std::sync::Arc;

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
            matches!(error, StoreError::NewerSchema { found, .. } if found == schema::CURRENT + 1)
        );
        assert!(error.to_string().contains("newer than this exsec supports"));
    }

    /// A file backend whose writes and syncs fail while `failing` is set,
    /// standing in for a disk that returns EIO.
    pub(super) struct FlakyDisk {
        inner: FileBackend,
        failing: Arc<AtomicBool>,
    }

    impl fmt::Debug for FlakyDisk {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("FlakyDisk")
        }
    }

    impl FlakyDisk {
        fn check(&self) -> Result<(), std::io::Error> {
            if self.failing.load(Ordering::SeqCst) {
                return Err(std::io::Error::other("injected EIO"));
            }
            Ok(())
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
            self.check()?;
            self.inner.set_len(len)
        }
        fn sync_data(&self) -> Result<(), std::io::Error> {
            self.check()?;
            self.inner.sync_data()
        }
        fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
            self.check()?;
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

    /// After an I/O error redb refuses writes until reopened: the store
    /// reads on meanwhile, reopens itself at the next write, and what was
    /// committed before the error is still there.
    /// A store on [`FlakyDisk`]: its writes fail while the flag is set.
    pub(super) fn flaky_store(path: &Path) -> (Store, Arc<AtomicBool>) {
        let failing = Arc::new(AtomicBool::new(false));
        let flag = failing.clone();
        let store = Store {
            path: path.to_owned(),
            options: options(),
            db: RwLock::new(None),
            commits: commit::GroupCommit::default(),
            reopen_needed: AtomicBool::new(false),
            opener: Some(Box::new(move |builder, path| {
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(path)?;
                let inner = FileBackend::new(file)?;
                builder.create_with_backend(FlakyDisk {
                    inner,
                    failing: flag.clone(),
                })
            })),
        };
        store.open_database().unwrap();
        (store, failing)
    }

    #[test]
    fn the_store_reopens_itself_after_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exsec.redb");
        let (mut store, failing) = flaky_store(&path);
        let acme = TenantId::parse("acme").unwrap();
        let id = acme.clone();
        store.write(move |w| w.put_tenant(&id, "admin")).unwrap();

        failing.store(true, Ordering::SeqCst);
        let broken = TenantId::parse("broken").unwrap();
        let error = store
            .write(move |w| w.put_tenant(&broken, "admin"))
            .unwrap_err();
        assert!(error.needs_reopen(), "{error:?}");
        assert!(store.reopen_needed.load(Ordering::SeqCst));
        // Reads keep working meanwhile.
        let id = acme.clone();
        assert!(store.read(move |r| r.tenant(&id)).unwrap().is_some());

        failing.store(false, Ordering::SeqCst);
        let healed = TenantId::parse("healed").unwrap();
        store
            .write(move |w| w.put_tenant(&healed, "admin"))
            .unwrap();
        assert!(!store.reopen_needed.load(Ordering::SeqCst));
        let names: Vec<String> = store
            .read(|r| r.tenants())
            .unwrap()
            .into_iter()
            .map(|(id, _)| id.to_string())
            .collect();
        assert_eq!(names, ["acme", "healed"]);
        let head = store.read(|r| r.audit_head()).unwrap();
        assert_eq!(head.seq, 2);
        store.opener = None;
    }
}
