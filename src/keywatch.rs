//! The running keyring: one snapshot shared by every request and swapped
//! whole when the key directory changes, so a request never sees half a
//! reload. (The directory watcher and periodic rescan come with rotation.)

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use crate::crypto::{Fingerprint, KeyFileProblem, Keyring, KeyringError, scan_dir};
use crate::model::KeyId;

/// The current keyring snapshot.
pub struct SharedKeyring {
    current: RwLock<Arc<Keyring>>,
}

impl SharedKeyring {
    /// Starts with `keyring`.
    pub fn new(keyring: Keyring) -> Self {
        Self {
            current: RwLock::new(Arc::new(keyring)),
        }
    }

    /// The snapshot to use for one operation.
    pub fn snapshot(&self) -> Arc<Keyring> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Swaps in a new snapshot.
    pub fn replace(&self, keyring: Keyring) {
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(keyring);
    }
}

/// Loads the key directory at start-up. A missing directory is "no key at
/// all" (a valid, degraded state), not an error; problems with single files
/// are returned for logging and never stop the load.
pub fn load(
    dir: &Path,
    allow_group_readable: bool,
    known: &BTreeMap<KeyId, Fingerprint>,
    previous: Option<&Keyring>,
) -> (Keyring, Vec<KeyFileProblem>) {
    match scan_dir(dir, allow_group_readable) {
        Ok(scan) => Keyring::assemble(scan, known, previous),
        Err(KeyringError::DirNotFound { .. }) => (Keyring::empty(), Vec::new()),
        Err(error) => {
            tracing::error!(dir = %dir.display(), error = %crate::api::problem::chain(&error), "cannot read the key directory");
            (Keyring::empty(), Vec::new())
        }
    }
}
