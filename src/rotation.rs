//! The re-sealing job: when the active master key changes, every tenant
//! data key is re-wrapped under it ([`crate::rewrap`]; the values under the
//! data keys stay as they are). Values sealed directly under a master key
//! (any, the active one included: files from before schema 5), live
//! records and kept versions alike, are then moved under their tenant's
//! data key in bounded batches by the re-sealing pipeline
//! ([`crate::reseal_pipeline`]), without a restart, at the first start of
//! this version and whenever some are found. Last, the tenant data-key
//! rotations in progress are finished ([`crate::data_key_rotation`]).
//!
//! `version` and `updated_at` do not change; no per-record audit event is
//! written. The job is resumable by construction: it looks for wraps not
//! under the active key, values sealed directly under a master key and
//! tenants holding older data keys, so after a crash or restart it simply
//! finds the rest. Records whose key is missing stay as they are and put
//! the job in `blocked_missing_key` until the key file comes back. A pass
//! that fails on a storage fault (a full or read-only disk) runs again once
//! the store reports itself healthy.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

use crate::audit::{NewEvent, event};
use crate::crypto::SharedKeyring;
use crate::data_key_rotation::{self, Progress};
use crate::model::{KeyId, word_enum};
use crate::reseal_pipeline::{self, Pace};
pub use crate::reseal_pipeline::{MAX_WRITE, PAGE, PassReport};
use crate::rewrap;
use crate::shutdown::Shutdown;
use crate::store::reseal::ResealScope;
use crate::store::{StorageHealth, Store, StoreError};

/// How the move of values sealed directly under a master key shares the
/// store (the first start of schema 5): writes grow to [`MAX_WRITE`] while
/// the write lock is busy, and rest as long as half their cost while
/// clients write.
const MOVE_PACE: Pace = Pace {
    max_write: MAX_WRITE,
    rest_percent: 50,
};

/// The least time between a pass that failed on a storage fault and the
/// next one, however soon the store reports itself healthy again.
const FAULT_RETRY: Duration = Duration::from_secs(1);

word_enum!(
    /// What the job is doing (`GET /v1/keys` → `rotation`).
    RotationState, "rotation state" {
        /// Every record is under the active key (or there is no key).
        Idle = "idle",
        /// Re-sealing is in progress.
        Running = "running",
        /// Some records need a key file that is missing.
        BlockedMissingKey = "blocked_missing_key",
    }
);

/// Progress of the job.
#[derive(Debug, Clone, Serialize)]
pub struct RotationStatus {
    /// State.
    pub state: RotationState,
    /// Records and tenant data key wraps not yet under the active key.
    pub remaining: u64,
    /// Records and wraps waiting for each missing key.
    pub waiting_for: BTreeMap<String, u64>,
}

/// The job's shared handle: status for readers, a trigger for the watcher
/// and the API.
pub struct Rotation {
    status: Mutex<RotationStatus>,
    wake: Notify,
    /// Tenant data-key rotations in progress.
    data_keys: Progress,
}

impl Default for Rotation {
    fn default() -> Self {
        Self {
            status: Mutex::new(RotationStatus {
                state: RotationState::Idle,
                remaining: 0,
                waiting_for: BTreeMap::new(),
            }),
            wake: Notify::new(),
            data_keys: Progress::default(),
        }
    }
}

impl Rotation {
    /// The current progress.
    pub fn status(&self) -> RotationStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Asks the job to look again (the keyring changed, or a tenant's data
    /// key was rotated).
    pub fn trigger(&self) {
        self.wake.notify_one();
    }

    /// Tenant data-key rotations in progress.
    pub fn data_keys(&self) -> &Progress {
        &self.data_keys
    }

    fn set(&self, status: RotationStatus) {
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = status;
    }

    /// Runs passes on start and on every trigger until `shutdown` fires; a
    /// pass that failed on a storage fault runs again once the store is
    /// healthy (at least `FAULT_RETRY` later).
    pub async fn run(
        self: Arc<Self>,
        store: Arc<Store>,
        keyring: Arc<SharedKeyring>,
        mut shutdown: Shutdown,
    ) {
        let mut health = store.watch_health();
        loop {
            let faulted = match self.run_once(&store, &keyring, &shutdown).await {
                Ok(()) => false,
                Err(error) => {
                    let fault = error.fault();
                    let retry = if fault.is_some() {
                        "retrying once the store is healthy again"
                    } else {
                        "retrying on the next key change or rescan"
                    };
                    tracing::error!(error = %crate::error_chain::chain(&error), "re-sealing pass failed; {retry}");
                    fault.is_some()
                }
            };
            tokio::select! {
                () = self.wake.notified() => {}
                () = healed(&mut health), if faulted => {}
                () = shutdown.recv() => return,
            }
        }
    }

    /// One pass of each stage: the master-key stage, then the tenant
    /// data-key rotations in progress.
    async fn run_once(
        &self,
        store: &Arc<Store>,
        keyring: &SharedKeyring,
        shutdown: &Shutdown,
    ) -> Result<(), StoreError> {
        self.pass(store, keyring, shutdown).await?;
        self.data_key_pass(store, keyring, shutdown).await?;
        Ok(())
    }

    /// Finishes the tenant data-key rotations in progress
    /// ([`crate::data_key_rotation`]); triggers another pass when values
    /// changed under it.
    pub async fn data_key_pass(
        &self,
        store: &Arc<Store>,
        keyring: &SharedKeyring,
        shutdown: &Shutdown,
    ) -> Result<PassReport, StoreError> {
        let mut report = PassReport::default();
        let stage =
            data_key_rotation::run(store, keyring, shutdown, &self.data_keys, &mut report).await?;
        report.resealed = stage.resealed;
        if stage.resealed > 0 || stage.retired > 0 {
            tracing::info!(
                count = stage.resealed,
                retired = stage.retired,
                batches = report.batches,
                read_ms = report.read.as_millis(),
                reseal_ms = report.reseal.as_millis(),
                write_ms = report.write.as_millis(),
                rested_ms = report.rested.as_millis(),
                "tenant data-key re-sealing pass done"
            );
        }
        if !stage.waiting_for.is_empty() {
            tracing::warn!(waiting_for = ?stage.waiting_for, "tenant data-key re-sealing blocked: values need master keys that are not loaded; put the key files back");
        }
        if stage.changed > 0 && !shutdown.is_shutdown() {
            self.trigger();
        }
        Ok(report)
    }

    /// One pass over every record not under the active key.
    pub async fn pass(
        &self,
        store: &Arc<Store>,
        keyring: &SharedKeyring,
        shutdown: &Shutdown,
    ) -> Result<PassReport, StoreError> {
        let mut report = PassReport::default();
        let snapshot = keyring.snapshot();
        let Some(active) = snapshot.active().cloned() else {
            self.set(idle());
            return Ok(report);
        };
        let remaining = remaining_records(store, &active).await?;
        if remaining == 0 {
            self.set(idle());
            return Ok(report);
        }
        let Some(fingerprint) = snapshot.fingerprint(&active) else {
            return Ok(report);
        };
        self.set(RotationStatus {
            state: RotationState::Running,
            remaining,
            waiting_for: BTreeMap::new(),
        });
        tracing::info!(active = %active, remaining, "re-sealing records under the new active key");
        let started = NewEvent::new(event::ROTATION_STARTED, "system")
            .with("key_id", active.as_str())
            .with("remaining", remaining);
        store
            .write_async(move |w| w.audit(started.clone()).map(drop))
            .await?;

        let rewrap = rewrap::rewrap_all(store, &snapshot, &active, fingerprint).await?;
        report.rewrapped = rewrap.rewrapped;
        report.rewrap = rewrap.took;
        let mut waiting = rewrap.waiting_for;
        let mut resealed = 0u64;
        // Records sealed directly under a master key (files from before
        // schema 5): they move under their tenant's data key. None once
        // every value is under a data key, and then the table is not read.
        let records_left = store
            .read_async(|r| Ok(direct_records(&r.key_usage()?, &r.wrap_counts()?)))
            .await?;
        if records_left > 0 {
            let rewrapped = report.rewrapped;
            let rewrap_waiting = waiting.clone();
            let mut written = 0u64;
            // On shutdown, or when a newer key arrived (the next pass
            // targets it), the write in flight lands first.
            let moved = reseal_pipeline::run(
                store,
                keyring,
                &snapshot,
                fingerprint,
                ResealScope::MasterSealed,
                MOVE_PACE,
                &mut report,
                || shutdown.is_shutdown() || keyring.snapshot().active() != Some(&active),
                |count| {
                    written += count;
                    self.set(RotationStatus {
                        state: RotationState::Running,
                        remaining: remaining.saturating_sub(written + rewrapped),
                        waiting_for: rewrap_waiting.clone(),
                    });
                },
            )
            .await?;
            resealed = moved.resealed;
            for (key_id, count) in moved.waiting_for {
                *waiting.entry(key_id).or_default() += count;
            }
            if moved.stopped {
                report.resealed = resealed;
                return Ok(report);
            }
        }

        let remaining = remaining_records(store, &active).await?;
        if remaining > 0 && !waiting.is_empty() {
            tracing::warn!(active = %active, remaining, waiting_for = ?waiting, "re-sealing blocked: records need master keys that are not loaded; put the key files back");
            self.set(RotationStatus {
                state: RotationState::BlockedMissingKey,
                remaining,
                waiting_for: waiting,
            });
            report.resealed = resealed;
            return Ok(report);
        }
        let completed = NewEvent::new(event::ROTATION_COMPLETED, "system")
            .with("key_id", active.as_str())
            .with("count", resealed)
            .with("data_keys_rewrapped", report.rewrapped);
        store
            .write_async(move |w| w.audit(completed.clone()).map(drop))
            .await?;
        report.resealed = resealed;
        tracing::info!(
            active = %active,
            count = resealed,
            rewrapped = report.rewrapped,
            rewrap_ms = report.rewrap.as_millis(),
            remaining,
            batches = report.batches,
            read_ms = report.read.as_millis(),
            reseal_ms = report.reseal.as_millis(),
            write_ms = report.write.as_millis(),
            "re-sealing completed"
        );
        self.set(RotationStatus {
            state: if remaining == 0 {
                RotationState::Idle
            } else {
                // Records changed under our feet (e.g. a restore); look again.
                self.trigger();
                RotationState::Running
            },
            remaining,
            waiting_for: BTreeMap::new(),
        });
        Ok(report)
    }
}

fn idle() -> RotationStatus {
    RotationStatus {
        state: RotationState::Idle,
        remaining: 0,
        waiting_for: BTreeMap::new(),
    }
}

/// What is not under `active` yet: wraps under other master keys, plus
/// records sealed directly under any master key (they move under data
/// keys). From the key-usage counts (wraps and direct records) and one
/// scan of the wraps (O(tenants)).
async fn remaining_records(store: &Arc<Store>, active: &KeyId) -> Result<u64, StoreError> {
    let (usage, wraps) = store
        .read_async(|r| Ok((r.key_usage()?, r.wrap_counts()?)))
        .await?;
    let wraps_elsewhere: u64 = wraps
        .iter()
        .filter(|(id, _)| id.as_str() != active.as_str())
        .map(|(_, n)| n)
        .sum();
    Ok(wraps_elsewhere + direct_records(&usage, &wraps))
}

/// Records sealed directly under a master key: usage counts both those and
/// wraps.
fn direct_records(usage: &BTreeMap<String, u64>, wraps: &BTreeMap<String, u64>) -> u64 {
    let all: u64 = usage.values().sum();
    all.saturating_sub(wraps.values().sum())
}

/// Returns once `health` shows the store healthy, and not before
/// [`FAULT_RETRY`] (a store that reopened at once may fail again).
async fn healed(health: &mut watch::Receiver<StorageHealth>) {
    tokio::time::sleep(FAULT_RETRY).await;
    // A closed channel means the store is gone; the shutdown arm ends the
    // job then.
    if health
        .wait_for(|state| *state == StorageHealth::Healthy)
        .await
        .is_err()
    {
        std::future::pending::<()>().await;
    }
}
