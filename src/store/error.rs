//! What the store fails with, split as redb splits its own errors: by when
//! it can happen and who must act on it.
//!
//! - [`OpenError`]: opening the file (a lock held by another process, a
//!   newer schema, a migration that failed). Only start-up and offline
//!   commands see it.
//! - [`StoreError`]: a read or write that did not happen for a storage
//!   reason (I/O, a full disk, a corrupt record, an interrupted task), with
//!   the operation or table that failed; or a [`Rejected`] refusal.
//! - [`Rejected`]: the domain refused the request (something is missing,
//!   or the write conflicts with what is stored). A refusal aborts the
//!   transaction like a fault does, so it travels inside [`StoreError`]
//!   out of a write closure; the API maps each one to its code.
//!
//! No blanket `From<redb::Error>`: every redb call names what it was doing
//! through [`Context`], so a log line says which table or step failed.

use std::path::PathBuf;
use std::sync::Arc;

use redb::{TableDefinition, TableHandle};

use super::codec::CodecError;
use super::health::StorageFault;
use crate::model::{AppId, ScopeKind, TenantId};

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
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
    /// redb could not open the file.
    #[error("cannot open database {path}")]
    Open {
        /// The redb file.
        path: PathBuf,
        /// What redb said.
        #[source]
        source: redb::DatabaseError,
    },
    /// The OS random source failed (drawing the installation key).
    #[error("cannot read random bytes from the operating system to prepare database {path}")]
    Random {
        /// The redb file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file opened, but creating its tables, reading its schema version
    /// or migrating it failed.
    #[error("cannot prepare database {path}")]
    Prepare {
        /// The redb file.
        path: PathBuf,
        /// What failed (boxed: it is rare, and keeps the error small).
        #[source]
        source: Box<StoreError>,
    },
}

impl OpenError {
    /// The storage fault behind this error, if it is one (a reopen after a
    /// failed commit reports it as the store's fault).
    pub fn fault(&self) -> Option<StorageFault> {
        match self {
            OpenError::Open {
                source: redb::DatabaseError::Storage(redb::StorageError::Io(error)),
                ..
            } => Some(StorageFault::of(error)),
            OpenError::Open { .. } => Some(StorageFault::Io),
            OpenError::Prepare { source, .. } => source.fault(),
            OpenError::InUse { .. } | OpenError::NewerSchema { .. } | OpenError::Random { .. } => {
                None
            }
        }
    }
}

/// A read or write of the store that did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The domain refused the request; nothing was changed.
    #[error(transparent)]
    Rejected(#[from] Rejected),
    /// redb failed: I/O, corruption, or writes refused after an I/O error.
    #[error("storage error {operation}")]
    Storage {
        /// What the store was doing.
        operation: Operation,
        /// What redb said.
        #[source]
        source: redb::Error,
    },
    /// A record could not be decoded (corruption or a foreign file).
    #[error("stored record in table {table} is unreadable")]
    Corrupt {
        /// Which table.
        table: &'static str,
        /// Why.
        #[source]
        source: CodecError,
    },
    /// A table key does not parse (corruption or a foreign file).
    #[error("stored key {key:?} in table {table} is malformed")]
    CorruptKey {
        /// Which table.
        table: &'static str,
        /// The key as found.
        key: String,
    },
    /// The blocking task running a store call panicked or was cancelled.
    #[error("storage task was interrupted")]
    Interrupted,
    /// The commit shared by a group of writes failed; every write of the
    /// group gets this one error.
    #[error("storage error in a group commit")]
    Batch(#[source] Arc<StoreError>),
    /// No usable database handle: the reopen after a failed commit failed
    /// too (logged where it happened); retried in the background.
    #[error("storage is unavailable ({})", .fault.as_str())]
    Unavailable {
        /// What the last failure was.
        fault: StorageFault,
    },
}

impl StoreError {
    /// The refusal inside this error, if it is one.
    pub fn rejected(&self) -> Option<&Rejected> {
        match self {
            StoreError::Rejected(rejected) => Some(rejected),
            _ => None,
        }
    }
}

/// What the store was doing when redb failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Starting a read transaction.
    BeginRead,
    /// Starting a write transaction (or setting its durability).
    BeginWrite,
    /// Committing a write transaction.
    Commit,
    /// Listing the tables of the file.
    ListTables,
    /// Opening, reading or writing the named table.
    Table(String),
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Operation::BeginRead => f.write_str("starting a read transaction"),
            Operation::BeginWrite => f.write_str("starting a write transaction"),
            Operation::Commit => f.write_str("committing"),
            Operation::ListTables => f.write_str("listing tables"),
            Operation::Table(name) => write!(f, "in table {name}"),
        }
    }
}

/// Names the operation a redb result belongs to.
pub(crate) trait Context<T> {
    /// The error, if any, as a [`StoreError::Storage`] of `operation`.
    fn during(self, operation: Operation) -> Result<T, StoreError>;

    /// The error, if any, as a [`StoreError::Storage`] in `table`.
    fn in_table<K: redb::Key + 'static, V: redb::Value + 'static>(
        self,
        table: TableDefinition<K, V>,
    ) -> Result<T, StoreError>;
}

impl<T, E: Into<redb::Error>> Context<T> for Result<T, E> {
    fn during(self, operation: Operation) -> Result<T, StoreError> {
        self.map_err(|error| StoreError::Storage {
            operation,
            source: error.into(),
        })
    }

    fn in_table<K: redb::Key + 'static, V: redb::Value + 'static>(
        self,
        table: TableDefinition<K, V>,
    ) -> Result<T, StoreError> {
        self.map_err(|error| StoreError::Storage {
            operation: Operation::Table(table.name().to_owned()),
            source: error.into(),
        })
    }
}

/// The domain refused a request: what it names is missing, or the change
/// conflicts with what is stored. The API answers each with its own code
/// (`api::problem`).
#[derive(Debug, thiserror::Error)]
pub enum Rejected {
    /// The thing named does not exist.
    #[error("{kind} {id} not found")]
    NotFound {
        /// What kind of thing.
        kind: Missing,
        /// Its id.
        id: String,
    },
    /// A tenant that still has apps cannot be deleted.
    #[error("tenant {tenant} still has {apps} app(s); delete them first")]
    TenantHasApps {
        /// The tenant.
        tenant: TenantId,
        /// How many apps it has.
        apps: usize,
    },
    /// An app belongs to one tenant forever.
    #[error("app {app} belongs to tenant {tenant}; an app cannot move to another tenant")]
    AppTenantFixed {
        /// The app.
        app: AppId,
        /// The tenant it belongs to.
        tenant: TenantId,
    },
    /// Another provider already sets this env var name in the scope.
    #[error(
        "{}env var {key} is already set by provider {provider} in this {scope} scope; delete that one first or choose another key",
        .item.map(|i| format!("secrets[{i}].key: ")).unwrap_or_default()
    )]
    EnvNameTaken {
        /// The env var name.
        key: String,
        /// The provider that sets it.
        provider: String,
        /// Which kind of scope.
        scope: ScopeKind,
        /// The item of a bulk write that asked for it.
        item: Option<usize>,
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
    /// A master key id is known with another fingerprint: sealing under it
    /// is refused.
    #[error("master key {key_id} differs from the key of that id that sealed stored values")]
    KeyFingerprintMismatch {
        /// The key id.
        key_id: String,
    },
    /// A version that records a deletion has no value to restore.
    #[error("version {version} of {key} records its deletion; restore a version with a value")]
    VersionIsTombstone {
        /// The env var name.
        key: String,
        /// The version asked for.
        version: u64,
    },
    /// A rollback target whose deploy did not leave the Secret in step
    /// with its set: there is no set to return to.
    #[error(
        "deploy {deploy_id} did not inject its secrets, so there is no secret set to roll back to; choose a deploy whose injection succeeded"
    )]
    NothingToRollBackTo {
        /// The deploy asked for.
        deploy_id: String,
    },
    /// A rollback needs a secret version that is no longer kept.
    #[error(
        "deploy {deploy_id} used {scope} secret {provider}/{key} version {version}, which is no longer kept (pruned or deleted with its scope); nothing was applied"
    )]
    SnapshotUnavailable {
        /// The deploy asked for.
        deploy_id: String,
        /// Which scope the value came from.
        scope: ScopeKind,
        /// Its provider.
        provider: String,
        /// The env var name.
        key: String,
        /// The version it used.
        version: u64,
    },
    /// A value sealed under a tenant data key that is no longer the
    /// tenant's current one (a data-key rotation committed while it was
    /// sealed): stored, it would hold back the retirement of the older
    /// key. The caller seals again under the current key.
    #[error("the data key of tenant {tenant} changed while the value was sealed; seal it again")]
    DataKeyChanged {
        /// The tenant.
        tenant: TenantId,
    },
}

/// The kinds of things a request can name that may be missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// A tenant.
    Tenant,
    /// An app.
    App,
    /// An external secret (`provider/key` in a scope).
    Secret,
    /// A tenant token.
    Token,
    /// A kept version of an external secret.
    SecretVersion,
    /// A deploy of an app.
    Deploy,
}

impl Missing {
    /// The words messages use for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Missing::Tenant => "tenant",
            Missing::App => "app",
            Missing::Secret => "external secret",
            Missing::Token => "token",
            Missing::SecretVersion => "secret version",
            Missing::Deploy => "deploy",
        }
    }
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `Rejected::NotFound` as a [`StoreError`].
pub(crate) fn not_found(kind: Missing, id: impl Into<String>) -> StoreError {
    Rejected::NotFound {
        kind,
        id: id.into(),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tables;

    #[test]
    fn a_storage_error_names_the_table_or_step_that_failed() {
        let failed: Result<(), redb::StorageError> =
            Err(redb::StorageError::Corrupted("bad page".to_owned()));
        let error = failed.in_table(tables::SECRETS).unwrap_err();
        assert_eq!(error.to_string(), "storage error in table external_secrets");
        assert!(matches!(
            &error,
            StoreError::Storage { operation: Operation::Table(name), .. } if name == "external_secrets"
        ));
        let commit: Result<(), redb::Error> = Err(redb::Error::PreviousIo);
        assert_eq!(
            commit.during(Operation::Commit).unwrap_err().to_string(),
            "storage error committing"
        );
    }

    #[test]
    fn a_refusal_reads_as_before_the_split() {
        let error = not_found(Missing::Secret, "openai/OPENAI_API_KEY");
        assert_eq!(
            error.to_string(),
            "external secret openai/OPENAI_API_KEY not found"
        );
        assert!(error.rejected().is_some());
        assert_eq!(error.fault(), None);
    }
}
