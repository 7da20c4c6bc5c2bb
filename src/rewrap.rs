//! The first stage of a master-key rotation (SPEC §11.4): every tenant
//! data key wrapped under another master key is unwrapped and wrapped again
//! under the active one. One small record per tenant, so a rotation costs
//! O(tenants) whatever the number of values; the values themselves (sealed
//! under the data keys) are never read or written.
//!
//! Like the re-sealing stage, a wrap is replaced only if its stored bytes
//! are still the ones that were read, and the stage is resumable by
//! construction: it looks for wraps not under the active key. A wrap whose
//! master key is missing stays and is counted in `waiting_for`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use crate::crypto::{CryptoError, Fingerprint, Keyring, WrappedDataKey};
use crate::model::KeyId;
use crate::store::data_keys::RewrapCandidate;
use crate::store::{Store, StoreError};

/// Most wraps one write transaction replaces: it bounds how long a deploy
/// can wait behind it (a wrap record is ~100 bytes; 4,096 of them commit in
/// a few milliseconds).
pub const REWRAP_BATCH: usize = 4096;

/// What the stage did.
#[derive(Debug, Clone, Default)]
pub struct RewrapReport {
    /// Wraps replaced.
    pub rewrapped: u64,
    /// Wraps left for a missing (or not opening) master key, by key id.
    pub waiting_for: BTreeMap<String, u64>,
    /// Wall time of the stage.
    pub took: std::time::Duration,
}

/// Re-wraps every data key not under `active`, whose fingerprint is
/// `fingerprint`, in batches of [`REWRAP_BATCH`].
pub async fn rewrap_all(
    store: &Arc<Store>,
    keyring: &Arc<Keyring>,
    active: &KeyId,
    fingerprint: Fingerprint,
) -> Result<RewrapReport, StoreError> {
    let begun = Instant::now();
    let lookup = active.clone();
    let candidates = store
        .read_async(move |r| r.rewrap_page(&lookup, usize::MAX))
        .await?;
    let mut report = RewrapReport::default();
    if candidates.is_empty() {
        return Ok(report);
    }
    let keyring = Arc::clone(keyring);
    let (rewrapped, waiting_for) =
        tokio::task::spawn_blocking(move || rewrap_each(&keyring, candidates))
            .await
            .map_err(|_| StoreError::Interrupted)?;
    report.waiting_for = waiting_for;
    let mut rewrapped = rewrapped;
    while !rewrapped.is_empty() {
        let batch: Vec<_> = rewrapped
            .drain(..rewrapped.len().min(REWRAP_BATCH))
            .collect();
        report.rewrapped += store
            .write_async(move |w| w.rewrap_batch(&batch, fingerprint))
            .await?;
    }
    report.took = begun.elapsed();
    Ok(report)
}

type Rewrapped = Vec<(RewrapCandidate, WrappedDataKey)>;

/// Unwraps and wraps each candidate under the active key; per master key
/// id, how many could not be unwrapped.
fn rewrap_each(
    keyring: &Keyring,
    candidates: Vec<RewrapCandidate>,
) -> (Rewrapped, BTreeMap<String, u64>) {
    let mut rewrapped = Vec::with_capacity(candidates.len());
    let mut waiting: BTreeMap<String, u64> = BTreeMap::new();
    for candidate in candidates {
        let wrapped = &candidate.record.wrapped;
        match keyring.rewrap_data_key(&candidate.tenant, &candidate.dek_id, wrapped) {
            Ok(new) => rewrapped.push((candidate, new)),
            Err(error) => {
                if !matches!(error, CryptoError::MissingKey { .. }) {
                    tracing::error!(tenant_id = %candidate.tenant, key_id = %wrapped.key_id, error = %error, "a tenant data key does not unwrap under its master key; left as it is");
                }
                *waiting.entry(wrapped.key_id.to_string()).or_default() += 1;
            }
        }
    }
    (rewrapped, waiting)
}
