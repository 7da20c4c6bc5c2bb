//! The watcher that keeps the running keyring ([`SharedKeyring`]) current:
//! the snapshot is swapped whole when the key directory changes, so a
//! request never sees half a reload. Change events come from
//! `crate::fswatch` (the one importer of notify).
//!
//! Any event in the directory (a new file, an edit, a removal, the
//! kubelet swapping the `..data` link of a Secret volume) triggers a
//! debounced rescan of the whole directory; a periodic rescan covers missed
//! events. A half-written or bad file never replaces a good key: files are
//! read, validated, then swapped in (see `Keyring::assemble`). A scan that
//! finds a bad file is done again after `fswatch::SETTLE` and only the
//! second is used, so a key file caught in the middle of an in-place edit
//! is not reported as refused.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::audit::{NewEvent, event};
use crate::crypto::{Fingerprint, KeyFileProblem, Keyring, KeyringError, SharedKeyring, scan_dir};
use crate::error_chain::chain;
use crate::fswatch::{DirWatch, SETTLE};
use crate::model::KeyId;
use crate::rotation::Rotation;
use crate::shutdown::Shutdown;
use crate::store::Store;

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
            tracing::error!(dir = %dir.display(), error = %chain(&error), "cannot read the key directory");
            (Keyring::empty(), Vec::new())
        }
    }
}

/// Watches the key directory and swaps in new keyrings.
pub struct KeyWatch {
    /// The key directory.
    pub dir: PathBuf,
    /// `keys.allow_group_readable`.
    pub allow_group_readable: bool,
    /// `keys.rescan_interval`: the fallback when events are missed.
    pub rescan_interval: Duration,
    /// Where fingerprints live and reload failures are audited.
    pub store: Arc<Store>,
    /// The running keyring.
    pub keyring: Arc<SharedKeyring>,
    /// Told when the keyring changed.
    pub rotation: Arc<Rotation>,
    /// Bad contents already reported (path + digest or error).
    reported: Mutex<HashSet<(PathBuf, String)>>,
}

impl KeyWatch {
    /// A watcher over `dir`.
    pub fn new(
        dir: PathBuf,
        allow_group_readable: bool,
        rescan_interval: Duration,
        store: Arc<Store>,
        keyring: Arc<SharedKeyring>,
        rotation: Arc<Rotation>,
    ) -> Self {
        Self {
            dir,
            allow_group_readable,
            rescan_interval,
            store,
            keyring,
            rotation,
            reported: Mutex::new(HashSet::new()),
        }
    }

    /// Watches until `shutdown` fires: any event in the directory → wait
    /// for quiet → rescan the whole directory; and a rescan every
    /// `rescan_interval` regardless.
    pub async fn run(self, mut shutdown: Shutdown) {
        let mut changes = DirWatch::new("key directory", vec![self.dir.clone()]);
        let mut tick = tokio::time::interval(self.rescan_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        // Files may have changed between the start-up load and the watch.
        self.rescan().await;
        loop {
            tokio::select! {
                // The fallback for missed events: rescan below.
                _ = tick.tick() => changes.retry(),
                () = changes.changed() => {}
                () = shutdown.recv() => return,
            }
            self.rescan().await;
        }
    }

    /// Reads the directory and swaps in the result if it differs. A bad
    /// file never takes a good key away (see `Keyring::assemble`); one
    /// found bad is read again after [`SETTLE`] before it is reported.
    /// Returns whether the keyring changed.
    pub async fn rescan(&self) -> bool {
        let known = match self.store.read_async(|r| r.known_fingerprints()).await {
            Ok(known) => known,
            Err(error) => {
                tracing::error!(error = %chain(&error), "cannot read key fingerprints; keeping the current keyring");
                return false;
            }
        };
        let previous = self.keyring.snapshot();
        let Some((mut next, mut problems)) = self.scan(&known, &previous).await else {
            return false;
        };
        if !problems.is_empty() {
            tokio::time::sleep(SETTLE).await;
            let Some(again) = self.scan(&known, &previous).await else {
                return false;
            };
            (next, problems) = again;
        }
        self.report(problems).await;
        if same_keys(&previous, &next) {
            return false;
        }
        tracing::info!(
            before = ?previous.ids().map(ToString::to_string).collect::<Vec<_>>(),
            after = ?next.ids().map(ToString::to_string).collect::<Vec<_>>(),
            active = next.active().map(ToString::to_string).as_deref().unwrap_or("none"),
            "keyring reloaded"
        );
        let transition = match (previous.is_empty(), next.active()) {
            (false, None) => {
                let dir_present = tokio::fs::metadata(&self.dir)
                    .await
                    .is_ok_and(|m| m.is_dir());
                Some(self.keys_gone(dir_present))
            }
            (true, Some(active)) => {
                tracing::info!(active = %active, "a master key is loaded again: secret writes and injection work");
                Some(
                    NewEvent::new(event::KEY_AVAILABLE, "system")
                        .with("active", active.as_str())
                        .with("keys", next.len()),
                )
            }
            _ => None,
        };
        self.keyring.replace(next);
        self.rotation.trigger();
        if let Some(event) = transition
            && let Err(error) = self
                .store
                .write_async(move |w| w.audit(event.clone()).map(drop))
                .await
        {
            tracing::error!(error = %chain(&error), "cannot audit a keyring change");
        }
        true
    }

    /// One [`load`] of the directory on the blocking pool (`None` if that
    /// task died).
    async fn scan(
        &self,
        known: &BTreeMap<KeyId, Fingerprint>,
        previous: &Arc<Keyring>,
    ) -> Option<(Keyring, Vec<KeyFileProblem>)> {
        let (dir, allow) = (self.dir.clone(), self.allow_group_readable);
        let (known, prior) = (known.clone(), previous.clone());
        tokio::task::spawn_blocking(move || load(&dir, allow, &known, Some(&prior)))
            .await
            .ok()
    }

    /// The last key went away (its directory removed, or every file
    /// refused): warns, and returns the `master_key.unavailable` event.
    fn keys_gone(&self, dir_present: bool) -> NewEvent {
        let reason = if dir_present {
            "no usable key file in the key directory"
        } else {
            "the key directory is missing"
        };
        tracing::warn!(
            dir = %self.dir.display(),
            reason,
            "no master key loaded any more: serving degraded (secret writes answer 503, deploys skip injection) until a key is back"
        );
        NewEvent::new(event::KEY_UNAVAILABLE, "system")
            .with("dir", self.dir.display().to_string())
            .with("reason", reason)
    }

    /// Logs each problem and audits `master_key.reload_failed` once per
    /// distinct bad content.
    async fn report(&self, problems: Vec<KeyFileProblem>) {
        for problem in problems {
            let identity = problem
                .content_digest
                .map(hex::encode)
                .unwrap_or_else(|| problem.error.to_string());
            let fresh = self
                .reported
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert((problem.path.clone(), identity));
            if !fresh {
                continue;
            }
            tracing::error!(problem = %problem, "refused a master key file");
            self.keyring.count_reload_failure();
            let file = problem
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut event = NewEvent::new(event::KEY_RELOAD_FAILED, "system")
                .with("file", file)
                .with("reason", problem.error.to_string());
            if let Some(key_id) = &problem.key_id {
                event = event.with("key_id", key_id.as_str());
            }
            if let Err(error) = self
                .store
                .write_async(move |w| w.audit(event.clone()).map(drop))
                .await
            {
                tracing::error!(error = %chain(&error), "cannot audit a key reload failure");
            }
        }
    }
}

/// Whether two keyrings hold the same keys (ids and fingerprints).
fn same_keys(a: &Keyring, b: &Keyring) -> bool {
    a.len() == b.len()
        && a.ids()
            .all(|id| b.fingerprint(id).is_some() && b.fingerprint(id) == a.fingerprint(id))
}
