//! The re-sealing job: when the active master key changes, every tenant
//! data key is re-wrapped under it ([`crate::rewrap`]; the values under the
//! data keys stay as they are). Values sealed directly under a master key
//! (any, the active one included: files from before schema 5), live
//! records and kept versions alike, are then moved under their tenant's
//! data key in bounded batches, without a restart, at the first start of
//! this version and whenever some are found.
//!
//! Three stages run side by side: pages of records are read (one read
//! transaction each), re-sealed outside any lock on the blocking pool
//! (split across both cores), and written by one write transaction at a
//! time that replaces a record only if its stored bytes are still the ones
//! that were read — so a value written meanwhile is never overwritten.
//! While a write waits for the store's write lock and the disk, the next
//! pages are re-sealed; the next write takes all of them (at most
//! [`MAX_WRITE`]), so a busy store means fewer, larger transactions, and a
//! deploy waits for at most one bounded commit. `version` and `updated_at`
//! do not change; no per-record audit event is written. The job is
//! resumable by construction: it looks for wraps not under the active key
//! and values sealed directly under a master key, so after a crash or
//! restart it simply finds the rest. Records whose
//! key is missing stay as they are and put the job in `blocked_missing_key`
//! until the key file comes back.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Notify;

use crate::audit::{NewEvent, event};
use crate::crypto::{
    CryptoError, DataKey, DataKeyId, Fingerprint, Keyring, SecretLocation, SharedKeyring,
    TenantKeys,
};
use crate::model::{KeyId, TenantId};
use crate::rewrap;
use crate::shutdown::Shutdown;
use crate::store::reseal::{ResealCandidate, ResealPage};
use crate::store::{Store, StoreError};

/// Records read and re-sealed at a time.
pub const PAGE: usize = 512;

/// Most records one write transaction re-seals. Writes grow toward it only
/// while the write lock is busy; it bounds how long a deploy can wait
/// behind one (measured in `docs/performance.md`: 16,384 doubled deploy
/// p99 during a rotation, 4,096 kept it within 1.4× of idle).
pub const MAX_WRITE: usize = 4096;

/// Threads that re-seal one page (AEAD) side by side: the two cores of the
/// target machine.
const AEAD_WORKERS: usize = 2;

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
    /// Records and tenant data key wraps not yet under the active key.
    pub remaining: u64,
    /// Records and wraps waiting for each missing key.
    pub waiting_for: BTreeMap<String, u64>,
}

/// What one pass did and where its time went (logged when it completes;
/// the rotation benchmark prints it).
#[derive(Debug, Clone, Default)]
pub struct PassReport {
    /// Records re-sealed and written.
    pub resealed: u64,
    /// Tenant data keys re-wrapped.
    pub rewrapped: u64,
    /// Time spent re-wrapping tenant data keys (reads and writes included).
    pub rewrap: Duration,
    /// Write transactions committed (one per batch).
    pub batches: u64,
    /// Time spent reading pages of records.
    pub read: Duration,
    /// Time spent opening and sealing again (AEAD).
    pub reseal: Duration,
    /// Time spent in write transactions, commits included.
    pub write: Duration,
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

    /// Runs passes on start and on every trigger until `shutdown` fires.
    pub async fn run(
        self: Arc<Self>,
        store: Arc<Store>,
        keyring: Arc<SharedKeyring>,
        mut shutdown: Shutdown,
    ) {
        loop {
            if let Err(error) = self.pass(&store, &keyring, &shutdown).await {
                tracing::error!(error = %crate::error_chain::chain(&error), "re-sealing pass failed; retrying on the next key change or rescan");
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = shutdown.recv() => return,
            }
        }
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
        // Three stages run side by side: the next page is read while this
        // one is re-sealed (on both cores) and while a write transaction
        // waits for the write lock and the disk. When a write lands, the
        // next one takes every re-sealed record ready (up to MAX_WRITE):
        // a busy write lock means fewer, larger transactions rather than a
        // stalled job.
        let mut reading = (records_left > 0).then(|| Reading::start(store, None));
        let mut ready: Resealed = Vec::new();
        let mut writing: Option<Writing> = None;
        loop {
            // On shutdown, or when a newer key arrived (the next pass
            // targets it), the write in flight lands first.
            if shutdown.is_shutdown() || keyring.snapshot().active() != Some(&active) {
                if let Some(write) = writing.take() {
                    resealed += write.land(&mut report).await?;
                }
                report.resealed = resealed;
                return Ok(report);
            }
            let must_wait = reading.is_none() || ready.len() >= MAX_WRITE;
            if let Some(write) = writing.take_if(|w| must_wait || w.is_finished()) {
                resealed += write.land(&mut report).await?;
                self.set(RotationStatus {
                    state: RotationState::Running,
                    remaining: remaining.saturating_sub(resealed + report.rewrapped),
                    waiting_for: waiting.clone(),
                });
            }
            if writing.is_none() && !ready.is_empty() {
                let batch: Resealed = ready.drain(..ready.len().min(MAX_WRITE)).collect();
                writing = Some(Writing::start(store, batch, fingerprint));
                continue;
            }
            let Some(read) = reading.take() else {
                if writing.is_none() {
                    break;
                }
                continue;
            };
            let page = read.land(&mut report).await?;
            reading = page
                .next
                .clone()
                .map(|after| Reading::start(store, Some(after)));
            let begun = Instant::now();
            let keys = tenant_keys(store, keyring, &snapshot, &page, fingerprint).await?;
            let (sealed, missing) = reseal_parallel(keys, page.candidates).await?;
            report.reseal += begun.elapsed();
            for (key_id, count) in missing {
                *waiting.entry(key_id).or_default() += count;
            }
            ready.extend(sealed);
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

type Resealed = Vec<(ResealCandidate, crate::crypto::SealedValue)>;

/// A page of records not under the active key, being read on the blocking
/// pool.
struct Reading(tokio::task::JoinHandle<(Result<Page, StoreError>, Duration)>);

type Page = ResealPage;

impl Reading {
    /// Reads the page after `after` (the first page with `None`).
    fn start(store: &Arc<Store>, after: Option<String>) -> Self {
        let store = store.clone();
        Self(tokio::task::spawn_blocking(move || {
            let begun = Instant::now();
            let page = store.read(|r| r.reseal_page(after.as_deref(), PAGE));
            (page, begun.elapsed())
        }))
    }

    /// Waits for the page: its records and the cursor of the next one.
    async fn land(self, report: &mut PassReport) -> Result<Page, StoreError> {
        let (page, took) = self.0.await.map_err(|_| StoreError::Interrupted)?;
        report.read += took;
        page
    }
}

/// A batch's write transaction running on the blocking pool.
struct Writing(tokio::task::JoinHandle<(Result<u64, StoreError>, Duration)>);

impl Writing {
    fn start(store: &Arc<Store>, batch: Resealed, fingerprint: Fingerprint) -> Self {
        let store = store.clone();
        Self(tokio::task::spawn_blocking(move || {
            let begun = Instant::now();
            let written = store.write(move |w| w.reseal_batch(&batch, fingerprint));
            (written, begun.elapsed())
        }))
    }

    fn is_finished(&self) -> bool {
        self.0.is_finished()
    }

    /// Waits for the commit; returns how many records it re-sealed.
    async fn land(self, report: &mut PassReport) -> Result<u64, StoreError> {
        let (written, took) = self.0.await.map_err(|_| StoreError::Interrupted)?;
        report.write += took;
        report.batches += 1;
        written
    }
}

/// The data keys of every tenant of a page; a tenant without one gets its
/// first, wrapped under the active key (one write for the page).
async fn tenant_keys(
    store: &Arc<Store>,
    keyring: &SharedKeyring,
    snapshot: &Keyring,
    page: &ResealPage,
    fingerprint: Fingerprint,
) -> Result<Arc<TenantKeyMap>, StoreError> {
    let mut wraps = page.wraps.clone();
    let mut fresh = Vec::new();
    for (tenant, tenant_wraps) in &wraps {
        if !tenant_wraps.is_empty() {
            continue;
        }
        let made = DataKeyId::generate().and_then(|dek_id| {
            let key = DataKey::generate()?;
            Ok((
                dek_id.clone(),
                snapshot.wrap_data_key(tenant, &dek_id, &key)?,
            ))
        });
        match made {
            Ok((dek_id, wrapped)) => fresh.push((tenant.clone(), dek_id, wrapped)),
            Err(error) => {
                tracing::error!(tenant_id = %tenant, error = %error, "no data key could be made; its records stay as they are");
            }
        }
    }
    if !fresh.is_empty() {
        let made = store
            .write_async(move |w| {
                let mut out = Vec::with_capacity(fresh.len());
                for (tenant, dek_id, wrapped) in &fresh {
                    // A tenant deleted since the read has nothing to move.
                    match w.add_data_key(tenant, None, dek_id, wrapped.clone(), fingerprint) {
                        Ok(now) => out.push((tenant.clone(), now)),
                        Err(StoreError::Rejected(_)) => {}
                        Err(other) => return Err(other),
                    }
                }
                Ok(out)
            })
            .await?;
        wraps.extend(made);
    }
    Ok(Arc::new(
        wraps
            .iter()
            .map(|(tenant, tenant_wraps)| {
                (tenant.clone(), keyring.tenant_keys(tenant, tenant_wraps))
            })
            .collect(),
    ))
}

type TenantKeyMap = BTreeMap<TenantId, TenantKeys>;

/// Re-seals a page on the blocking pool, split across [`AEAD_WORKERS`]
/// threads; the order of the page is kept.
async fn reseal_parallel(
    keys: Arc<TenantKeyMap>,
    mut page: Vec<ResealCandidate>,
) -> Result<(Resealed, BTreeMap<String, u64>), StoreError> {
    let chunk = page.len().div_ceil(AEAD_WORKERS).max(1);
    let mut parts = Vec::new();
    while !page.is_empty() {
        let rest = page.split_off(chunk.min(page.len()));
        let part = std::mem::replace(&mut page, rest);
        let keys = Arc::clone(&keys);
        parts.push(tokio::task::spawn_blocking(move || reseal_all(&keys, part)));
    }
    let mut sealed = Vec::new();
    let mut missing: BTreeMap<String, u64> = BTreeMap::new();
    for part in parts {
        let (part_sealed, part_missing) = part.await.map_err(|_| StoreError::Interrupted)?;
        sealed.extend(part_sealed);
        for (key_id, count) in part_missing {
            *missing.entry(key_id).or_default() += count;
        }
    }
    Ok((sealed, missing))
}

/// Opens each record of a page with the master key it names and seals it
/// under its tenant's current data key; returns the new values and, per
/// key id, how many records could not be moved.
fn reseal_all(
    keys: &TenantKeyMap,
    page: Vec<ResealCandidate>,
) -> (Resealed, BTreeMap<String, u64>) {
    let mut sealed = Vec::with_capacity(page.len());
    let mut missing: BTreeMap<String, u64> = BTreeMap::new();
    for candidate in page {
        let record = &candidate.record;
        let location = SecretLocation {
            scope: &record.scope,
            provider: &record.provider,
            key: &record.key,
        };
        let Some(tenant_keys) = keys.get(&candidate.tenant) else {
            continue;
        };
        let moved = tenant_keys
            .open(&location, &record.sealed)
            .and_then(|value| tenant_keys.seal(&location, &value));
        match moved {
            Ok(value) => sealed.push((candidate, value)),
            Err(CryptoError::MissingKey { key_id }) => {
                *missing.entry(key_id.to_string()).or_default() += 1;
            }
            Err(error) => {
                let key_id = record.sealed.sealer_id();
                tracing::error!(key_id = %key_id, error = %error, "a stored value does not open under its key; left as it is");
                *missing.entry(key_id.to_string()).or_default() += 1;
            }
        }
    }
    (sealed, missing)
}
