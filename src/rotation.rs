//! The re-sealing job: when the active master key changes, every record
//! sealed under another key is re-sealed under the active one, in bounded
//! batches, without a restart.
//!
//! A batch is read in one read transaction, re-sealed outside any lock (on
//! the blocking pool), and written in one write transaction that replaces a
//! record only if it is still the one that was read — so a value written
//! meanwhile is never overwritten, and deploys wait for at most one short
//! commit. `version` and `updated_at` do not change; no per-record audit
//! event is written. The job is resumable by construction: it looks for
//! records not under the active key, so after a crash or restart it simply
//! finds the rest. Records whose key is missing stay as they are and put
//! the job in `blocked_missing_key` until the key file comes back.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::{Notify, watch};

use crate::audit::{NewEvent, event};
use crate::crypto::{CryptoError, Keyring, SecretLocation};
use crate::keywatch::SharedKeyring;
use crate::model::KeyId;
use crate::store::reseal::ResealCandidate;
use crate::store::{Store, StoreError};

/// Records per batch: small enough that one write transaction is short
/// (deploy latency stays close to idle), large enough to amortise commits.
pub const BATCH: usize = 512;

/// What the job is doing (`GET /v1/keys` → `rotation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RotationState {
    /// Every record is under the active key (or there is no key).
    Idle,
    /// Re-sealing is in progress.
    Running,
    /// Some records need a key file that is missing.
    BlockedMissingKey,
}

/// Progress of the job.
#[derive(Debug, Clone, Serialize)]
pub struct RotationStatus {
    /// State.
    pub state: RotationState,
    /// Records not yet under the active key.
    pub remaining: u64,
    /// Records waiting for each missing key.
    pub waiting_for: BTreeMap<String, u64>,
}

/// The job's shared handle: status for readers, a trigger for the watcher.
pub struct Rotation {
    status: Mutex<RotationStatus>,
    wake: Notify,
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

    /// Asks the job to look again (the keyring changed).
    pub fn trigger(&self) {
        self.wake.notify_one();
    }

    fn set(&self, status: RotationStatus) {
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = status;
    }

    /// Runs passes on start and on every trigger until `shutdown` flips.
    pub async fn run(
        self: Arc<Self>,
        store: Arc<Store>,
        keyring: Arc<SharedKeyring>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            if let Err(error) = self.pass(&store, &keyring, &shutdown).await {
                tracing::error!(error = %crate::api::problem::chain(&error), "re-sealing pass failed; retrying on the next key change or rescan");
            }
            tokio::select! {
                () = self.wake.notified() => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }

    /// One pass over every record not under the active key.
    pub async fn pass(
        &self,
        store: &Arc<Store>,
        keyring: &SharedKeyring,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<(), StoreError> {
        let snapshot = keyring.snapshot();
        let Some(active) = snapshot.active().cloned() else {
            self.set(idle());
            return Ok(());
        };
        let remaining = remaining_records(store, &active).await?;
        if remaining == 0 {
            self.set(idle());
            return Ok(());
        }
        let Some(fingerprint) = snapshot.fingerprint(&active) else {
            return Ok(());
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

        let mut cursor: Option<String> = None;
        let mut resealed = 0u64;
        let mut waiting: BTreeMap<String, u64> = BTreeMap::new();
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            if keyring.snapshot().active() != Some(&active) {
                // A newer key arrived: the next pass targets it.
                return Ok(());
            }
            let page_active = active.clone();
            let after = cursor.clone();
            let (page, next) = store
                .read_async(move |r| r.reseal_page(&page_active, after.as_deref(), BATCH))
                .await?;
            let sealer = snapshot.clone();
            let (sealed, missing) = tokio::task::spawn_blocking(move || reseal_all(&sealer, page))
                .await
                .map_err(|_| StoreError::Interrupted)?;
            for (key_id, count) in missing {
                *waiting.entry(key_id).or_default() += count;
            }
            let written = store
                .write_async(move |w| {
                    let mut written = 0u64;
                    for (candidate, value) in &sealed {
                        written += u64::from(w.reseal(candidate, value.clone(), fingerprint)?);
                    }
                    Ok(written)
                })
                .await?;
            resealed += written;
            self.set(RotationStatus {
                state: RotationState::Running,
                remaining: remaining.saturating_sub(resealed),
                waiting_for: waiting.clone(),
            });
            cursor = next;
            if cursor.is_none() {
                break;
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
            return Ok(());
        }
        let completed = NewEvent::new(event::ROTATION_COMPLETED, "system")
            .with("key_id", active.as_str())
            .with("count", resealed);
        store
            .write_async(move |w| w.audit(completed.clone()).map(drop))
            .await?;
        tracing::info!(active = %active, count = resealed, remaining, "re-sealing completed");
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
        Ok(())
    }
}

fn idle() -> RotationStatus {
    RotationStatus {
        state: RotationState::Idle,
        remaining: 0,
        waiting_for: BTreeMap::new(),
    }
}

/// Records not sealed under `active`, from the key-usage counts.
async fn remaining_records(store: &Arc<Store>, active: &KeyId) -> Result<u64, StoreError> {
    let usage = store.read_async(|r| r.key_usage()).await?;
    Ok(usage
        .iter()
        .filter(|(id, _)| id.as_str() != active.as_str())
        .map(|(_, n)| n)
        .sum())
}

type Resealed = Vec<(ResealCandidate, crate::crypto::SealedValue)>;

/// Re-seals a page; returns the new values and, per missing key id, how
/// many records could not be opened.
fn reseal_all(keyring: &Keyring, page: Vec<ResealCandidate>) -> (Resealed, BTreeMap<String, u64>) {
    let mut sealed = Vec::with_capacity(page.len());
    let mut missing: BTreeMap<String, u64> = BTreeMap::new();
    for candidate in page {
        let record = &candidate.record;
        let location = SecretLocation {
            scope: &record.scope,
            provider: &record.provider,
            key: &record.key,
        };
        match keyring.reseal(&location, &record.sealed) {
            Ok(value) => sealed.push((candidate, value)),
            Err(CryptoError::MissingKey { key_id }) => {
                *missing.entry(key_id.to_string()).or_default() += 1;
            }
            Err(error) => {
                tracing::error!(key_id = %record.sealed.key_id, error = %error, "a stored value does not open under its key; left as it is");
                *missing.entry(record.sealed.key_id.to_string()).or_default() += 1;
            }
        }
    }
    (sealed, missing)
}
