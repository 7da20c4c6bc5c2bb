//! Storage health: whether writes reach the disk right now, and the task
//! that brings the store back by itself after a failed commit.
//!
//! redb refuses every transaction of a `Database` after an I/O error
//! ("Previous I/O error occurred"), reads included, until it is reopened.
//! So the leader of the failed group commit reopens the file at once
//! (reads go on from the fresh handle and only wait for the swap), and the
//! store is *degraded* until a write commits again: the next write of any
//! kind, or the probe [`run`] commits every few seconds with exponential
//! backoff. No admin action is needed. Each change of state is one log
//! line; retries are not logged.
//!
//! This module only decides and reports; reopening and committing stay in
//! `store::mod` and `store::commit`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{Store, StoreError};
use crate::model::word_enum;
use crate::shutdown::Shutdown;

/// First wait before the background probe; doubled after each failure.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Longest wait between two probes, so a freed disk is noticed within
/// seconds even after a long outage.
const MAX_RETRY: Duration = Duration::from_secs(8);

word_enum!(
    /// Why writes fail (the word is `/readyz`'s `storage_fault`).
    StorageFault, "storage fault" {
        /// The file system is full (ENOSPC) or the quota is used up (EDQUOT).
        NoSpace = "no_space",
        /// The file system refuses writes (mounted read-only, or the file
        /// is not writable): the file is open for reading only.
        ReadOnly = "read_only",
        /// Any other I/O failure: EIO, a vanished disk.
        Io = "io_error",
    }
);

impl StorageFault {
    /// Classifies an I/O error.
    pub fn of(error: &std::io::Error) -> StorageFault {
        use std::io::ErrorKind;
        match error.kind() {
            ErrorKind::StorageFull | ErrorKind::QuotaExceeded => StorageFault::NoSpace,
            ErrorKind::ReadOnlyFilesystem | ErrorKind::PermissionDenied => StorageFault::ReadOnly,
            _ => StorageFault::Io,
        }
    }
}

/// Whether the store's writes currently succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageHealth {
    /// The last commit succeeded.
    Healthy,
    /// The last commit failed; reads are still answered.
    Degraded(StorageFault),
}

/// The current health, watched by readiness, metrics and the tasks that
/// wait for the store to heal (the probe, pending deploy records).
pub(super) struct HealthCell {
    state: watch::Sender<StorageHealth>,
}

impl Default for HealthCell {
    fn default() -> Self {
        Self {
            state: watch::Sender::new(StorageHealth::Healthy),
        }
    }
}

impl HealthCell {
    pub(super) fn current(&self) -> StorageHealth {
        *self.state.borrow()
    }

    /// The fault writes currently fail with (I/O when none is known).
    pub(super) fn fault(&self) -> StorageFault {
        match self.current() {
            StorageHealth::Degraded(fault) => fault,
            StorageHealth::Healthy => StorageFault::Io,
        }
    }

    /// Records a new state; logs only when it changed.
    pub(super) fn set(&self, next: StorageHealth, path: &Path) {
        let mut before = StorageHealth::Healthy;
        let changed = self.state.send_if_modified(|state| {
            before = *state;
            let changed = *state != next;
            *state = next;
            changed
        });
        if !changed {
            return;
        }
        match next {
            StorageHealth::Healthy => tracing::info!(
                path = %path.display(),
                "storage healed: writes succeed again"
            ),
            StorageHealth::Degraded(fault) => tracing::error!(
                path = %path.display(),
                fault = fault.as_str(),
                was = if before == StorageHealth::Healthy { "healthy" } else { "degraded" },
                "storage degraded: writes fail, reads are still answered; exsec retries by itself (free space or fix the disk)"
            ),
        }
    }
}

impl Store {
    /// Whether writes currently succeed.
    pub fn health(&self) -> StorageHealth {
        self.health.current()
    }

    /// A receiver that sees every change of [`Store::health`].
    pub fn watch_health(&self) -> watch::Receiver<StorageHealth> {
        self.health.state.subscribe()
    }
}

impl StoreError {
    /// The storage fault behind this error, if it is one: what the API
    /// answers 507 `insufficient_storage` or 503 `storage_unavailable` for.
    pub fn fault(&self) -> Option<StorageFault> {
        match self {
            StoreError::Storage {
                source: redb::Error::Io(error),
                ..
            } => Some(StorageFault::of(error)),
            StoreError::Storage {
                source: redb::Error::PreviousIo | redb::Error::DatabaseClosed,
                ..
            } => Some(StorageFault::Io),
            StoreError::Unavailable { fault } => Some(*fault),
            StoreError::Batch(shared) => shared.fault(),
            StoreError::Storage { .. }
            | StoreError::Rejected(_)
            | StoreError::Corrupt { .. }
            | StoreError::CorruptKey { .. }
            | StoreError::Interrupted => None,
        }
    }
}

/// Runs until `shutdown` fires: while the store is degraded, commits a
/// probe after a second, doubling the wait after each failure up to eight
/// seconds. A successful commit of any write marks the store healthy,
/// so the probe stops as soon as a client write got through first.
pub async fn run(store: Arc<Store>, mut shutdown: Shutdown) {
    let mut health = store.watch_health();
    loop {
        while store.health() == StorageHealth::Healthy {
            tokio::select! {
                () = shutdown.recv() => return,
                changed = health.changed() => if changed.is_err() { return },
            }
        }
        let mut wait = FIRST_RETRY;
        loop {
            tokio::select! {
                () = shutdown.recv() => return,
                () = tokio::time::sleep(wait) => {}
            }
            match store.probe_async().await {
                Ok(()) => break,
                Err(error) => {
                    tracing::debug!(error = %error, retry_in = ?wait, "storage probe failed");
                    wait = (wait * 2).min(MAX_RETRY);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Operation, Rejected};

    #[test]
    fn enospc_and_edquot_are_no_space_erofs_is_read_only_everything_else_is_io() {
        use std::io::{Error, ErrorKind};
        assert_eq!(
            StorageFault::of(&Error::from(ErrorKind::StorageFull)),
            StorageFault::NoSpace
        );
        assert_eq!(
            StorageFault::of(&Error::from(ErrorKind::QuotaExceeded)),
            StorageFault::NoSpace
        );
        assert_eq!(
            StorageFault::of(&Error::from(ErrorKind::ReadOnlyFilesystem)),
            StorageFault::ReadOnly
        );
        assert_eq!(StorageFault::of(&Error::other("EIO")), StorageFault::Io);
        let batch = StoreError::Batch(Arc::new(StoreError::Storage {
            operation: Operation::Commit,
            source: redb::Error::Io(Error::from(ErrorKind::StorageFull)),
        }));
        assert_eq!(batch.fault(), Some(StorageFault::NoSpace));
        let refusal = StoreError::from(Rejected::TenantHasApps {
            tenant: crate::model::TenantId::parse("acme").unwrap(),
            apps: 1,
        });
        assert_eq!(refusal.fault(), None);
    }
}
