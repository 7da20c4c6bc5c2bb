//! The re-sealing pipeline shared by both jobs that seal stored values
//! again: the move of values sealed directly under a master key under their
//! tenant's data key (`rotation`), and a tenant data-key rotation
//! (`data_key_rotation`). It reads pages of one [`ResealScope`], opens and
//! seals them again outside any lock, and writes them back; it never
//! decides which values need it (the scope does) nor reports progress
//! itself (the caller's `progress` does).
//!
//! Three stages run side by side: pages of records are read (one read
//! transaction each, the next one read ahead), re-sealed on the blocking
//! pool (split across both cores), and written by one write transaction at
//! a time that replaces a record only if its stored bytes are still the
//! ones that were read — so a value written meanwhile is never overwritten.
//! While a write waits for the store's write lock and the disk, the next
//! pages are re-sealed; the next write takes all of them (at most
//! [`Pace::max_write`]), so a busy store means fewer, larger transactions.
//!
//! **A share, not the machine**: when clients wrote to the store since the
//! job's previous write (a deploy, a secret write), the job rests for a
//! time proportional to what its last page and write cost
//! ([`Pace::rest_percent`]) before it writes again, so their commits and
//! their CPU time come first; an idle store gets the job at full speed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::crypto::{
    CryptoError, DataKey, DataKeyId, Fingerprint, Keyring, SealedValue, SharedKeyring, TenantKeys,
};
use crate::model::TenantId;
use crate::store::reseal::{ResealCandidate, ResealPage, ResealScope};
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

/// How a run shares the store and the CPU with clients.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Most records one write transaction re-seals.
    pub max_write: usize,
    /// After a write, when clients wrote since the previous one: rest this
    /// share (in percent) of the time the write and the re-sealing of its
    /// records took. 0: never rest.
    pub rest_percent: u32,
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
    /// Time spent resting while clients wrote ([`Pace::rest_percent`]).
    pub rested: Duration,
}

/// How a run ended.
#[derive(Debug, Default)]
pub struct Moved {
    /// Records re-sealed and written.
    pub resealed: u64,
    /// Records left as they are, per master key id: their key (or the key
    /// of their data key's wrap) is not loaded, or they did not open.
    pub waiting_for: BTreeMap<String, u64>,
    /// `stop` asked the run to end before the scope was read to its end.
    pub stopped: bool,
}

/// Re-seals every value of `scope` under its tenant's current data key
/// (through `keyring`; a tenant without one gets its first, wrapped under
/// the active key of `snapshot`, whose fingerprint is `fingerprint`).
/// `stop` is asked between steps (the write in flight lands first);
/// `progress` hears how many records each write re-sealed.
#[allow(
    clippy::too_many_arguments,
    reason = "the pipeline's inputs; each caller names them once"
)]
pub async fn run(
    store: &Arc<Store>,
    keyring: &SharedKeyring,
    snapshot: &Keyring,
    fingerprint: Fingerprint,
    scope: ResealScope,
    pace: Pace,
    report: &mut PassReport,
    stop: impl Fn() -> bool,
    mut progress: impl FnMut(u64),
) -> Result<Moved, StoreError> {
    let scope = Arc::new(scope);
    let mut moved = Moved::default();
    let mut reading = Some(Reading::start(store, &scope, None));
    let mut ready: Resealed = Vec::new();
    let mut writing: Option<Writing> = None;
    // Client writes seen so far, and what the last batch cost the job.
    let mut clients = Clients::new(store);
    let mut reseal_cost = Duration::ZERO;
    loop {
        if stop() {
            if let Some(write) = writing.take() {
                let written = write.land(report).await?;
                moved.resealed += written;
                progress(written);
            }
            moved.stopped = true;
            return Ok(moved);
        }
        let must_wait = reading.is_none() || ready.len() >= pace.max_write;
        if let Some(write) = writing.take_if(|w| must_wait || w.is_finished()) {
            let (written, took) = write.land_timed(report).await?;
            moved.resealed += written;
            progress(written);
            if pace.rest_percent > 0 && clients.wrote_since() {
                let rest = (took + std::mem::take(&mut reseal_cost)) * pace.rest_percent / 100;
                report.rested += rest;
                tokio::time::sleep(rest).await;
            }
            clients.mark();
        }
        if writing.is_none() && !ready.is_empty() {
            let batch: Resealed = ready.drain(..ready.len().min(pace.max_write)).collect();
            writing = Some(Writing::start(store, batch, fingerprint));
            continue;
        }
        let Some(read) = reading.take() else {
            if writing.is_none() {
                return Ok(moved);
            }
            continue;
        };
        let page = read.land(report).await?;
        reading = page
            .next
            .clone()
            .map(|after| Reading::start(store, &scope, Some(after)));
        let begun = Instant::now();
        let keys = tenant_keys(store, keyring, snapshot, &page, fingerprint).await?;
        let (sealed, missing) = reseal_parallel(keys, page.candidates).await?;
        reseal_cost += begun.elapsed();
        report.reseal += begun.elapsed();
        for (key_id, count) in missing {
            *moved.waiting_for.entry(key_id).or_default() += count;
        }
        ready.extend(sealed);
    }
}

/// Whether clients wrote to the store since the job's last write: the
/// store's count of successful writes grew by more than the job's own.
struct Clients<'a> {
    store: &'a Store,
    writes: u64,
}

impl<'a> Clients<'a> {
    fn new(store: &'a Store) -> Self {
        Self {
            store,
            writes: store.commit_stats().writes,
        }
    }

    /// Other writes since [`Clients::mark`], not counting the job's one.
    fn wrote_since(&self) -> bool {
        self.store.commit_stats().writes > self.writes + 1
    }

    fn mark(&mut self) {
        self.writes = self.store.commit_stats().writes;
    }
}

type Resealed = Vec<(ResealCandidate, SealedValue)>;

/// A page of records being read on the blocking pool.
struct Reading(tokio::task::JoinHandle<(Result<ResealPage, StoreError>, Duration)>);

impl Reading {
    /// Reads the page after `after` (the first page with `None`).
    fn start(store: &Arc<Store>, scope: &Arc<ResealScope>, after: Option<String>) -> Self {
        let store = store.clone();
        let scope = Arc::clone(scope);
        Self(tokio::task::spawn_blocking(move || {
            let begun = Instant::now();
            let page = store.read(|r| r.reseal_page(&scope, after.as_deref(), PAGE));
            (page, begun.elapsed())
        }))
    }

    /// Waits for the page: its records and the cursor of the next one.
    async fn land(self, report: &mut PassReport) -> Result<ResealPage, StoreError> {
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
        Ok(self.land_timed(report).await?.0)
    }

    /// [`Writing::land`] with the time the write took.
    async fn land_timed(self, report: &mut PassReport) -> Result<(u64, Duration), StoreError> {
        let (written, took) = self.0.await.map_err(|_| StoreError::Interrupted)?;
        report.write += took;
        report.batches += 1;
        Ok((written?, took))
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

/// Opens each record of a page with the key it names and seals it under
/// its tenant's current data key; returns the new values and, per key id,
/// how many records could not be moved.
fn reseal_all(
    keys: &TenantKeyMap,
    page: Vec<ResealCandidate>,
) -> (Resealed, BTreeMap<String, u64>) {
    let mut sealed = Vec::with_capacity(page.len());
    let mut missing: BTreeMap<String, u64> = BTreeMap::new();
    for candidate in page {
        let record = &candidate.record;
        let location = record.location();
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
