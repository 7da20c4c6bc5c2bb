//! The running keyring: one snapshot shared by every request, the deploy
//! engine, the re-sealing pass and the key watcher, swapped whole so an
//! operation never sees half a reload.
//!
//! It lives in `crypto` (not with the watcher that replaces it) so the
//! layers that read it (`deploy`, `rotation`, `api`) and the one that
//! writes it (`keywatch`) all point down to it and not at each other.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::data_key::{DataKeyCache, DataKeyId, TenantKeys, WrappedDataKey};
use super::keyring::Keyring;
use crate::model::TenantId;

/// The current keyring snapshot.
pub struct SharedKeyring {
    current: RwLock<Arc<Keyring>>,
    /// Key files refused since start, once per distinct bad content (the
    /// `exsec_key_reload_failures_total` metric).
    reload_failures: AtomicU64,
    /// Unwrapped tenant data keys (bounded, zeroized when dropped).
    data_keys: DataKeyCache,
}

impl SharedKeyring {
    /// Starts with `keyring`.
    pub fn new(keyring: Keyring) -> Self {
        Self {
            current: RwLock::new(Arc::new(keyring)),
            reload_failures: AtomicU64::new(0),
            data_keys: DataKeyCache::default(),
        }
    }

    /// Key files refused since start (each distinct bad content once).
    pub fn reload_failures(&self) -> u64 {
        self.reload_failures.load(Ordering::Relaxed)
    }

    /// The snapshot to use for one operation.
    pub fn snapshot(&self) -> Arc<Keyring> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The keys of `tenant` for one operation, from its stored wraps
    /// (oldest first), through the cache of unwrapped data keys.
    pub fn tenant_keys(
        &self,
        tenant: &TenantId,
        wraps: &[(DataKeyId, WrappedDataKey)],
    ) -> TenantKeys {
        self.data_keys.tenant_keys(self.snapshot(), tenant, wraps)
    }

    /// The cache of unwrapped data keys.
    pub fn data_keys(&self) -> &DataKeyCache {
        &self.data_keys
    }

    /// Counts one refused key file (each distinct bad content once).
    pub fn count_reload_failure(&self) {
        self.reload_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Swaps in a new snapshot.
    pub fn replace(&self, keyring: Keyring) {
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(keyring);
    }
}
