//! Keeps the served TLS certificate current: reloads the pair when either
//! file changes (cert-manager and the kubelet replace them through
//! symlinks; certbot and people edit them in place), every
//! [`RESCAN_INTERVAL`] in case an event was missed, and on SIGHUP.
//!
//! A bad new pair keeps the served one; the problem is logged and audited
//! `tls.reload_failed` once per distinct content (a mismatched key stays
//! one event however many rescans see it). A pair found bad by the watcher
//! is read once more after [`SETTLE`] before it is reported: a file edited
//! in place is empty between its truncation and its write, and a start-up
//! look or a rescan can land in between.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::audit::{NewEvent, event};
use crate::error_chain::chain;
use crate::fswatch::{DirWatch, SETTLE, parent_dir};
use crate::shutdown::Shutdown;
use crate::store::Store;
use crate::tls::{Reload, ServerTls};

/// The fallback when file events are missed; certificates are renewed
/// days before they expire, so a minute is plenty.
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(60);

/// The served pair, its files, and where reload failures are audited.
pub struct TlsWatch {
    tls: Arc<ServerTls>,
    store: Arc<Store>,
    /// Bad contents already reported.
    reported: Mutex<HashSet<String>>,
}

impl TlsWatch {
    /// A watcher of `tls`'s files.
    pub fn new(tls: Arc<ServerTls>, store: Arc<Store>) -> Self {
        Self {
            tls,
            store,
            reported: Mutex::new(HashSet::new()),
        }
    }

    /// Reloads on changes and every [`RESCAN_INTERVAL`] until `shutdown`
    /// fires.
    pub async fn run(self: Arc<Self>, mut shutdown: Shutdown) {
        let mut changes = DirWatch::new("TLS certificate directory", self.dirs());
        let mut tick = tokio::time::interval(RESCAN_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        // The files may have changed between the start-up load and the
        // watch (the task starts after the listener): look once now.
        self.settled_reload(&mut shutdown).await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = changes.changed() => {}
                () = shutdown.recv() => return,
            }
            self.settled_reload(&mut shutdown).await;
            // A symlink may point elsewhere now.
            changes.set_dirs(self.dirs());
            changes.retry();
        }
    }

    /// The certificate served now.
    pub fn certificate(&self) -> crate::tls::CertificateInfo {
        self.tls.certificate()
    }

    /// Reads the pair again and serves it if it changed and is good (also
    /// what SIGHUP does). Logs and audits the outcome.
    pub async fn reload(&self) -> Reload {
        let outcome = self.read().await;
        self.record(&outcome).await;
        outcome
    }

    /// The watcher's reload: a pair that looks bad is read again after
    /// [`SETTLE`] (a file caught half-written is not a failure to report),
    /// and only that second outcome is logged and audited.
    async fn settled_reload(&self, shutdown: &mut Shutdown) {
        let outcome = self.read().await;
        if matches!(outcome, Reload::Failed { .. }) {
            tokio::select! {
                () = tokio::time::sleep(SETTLE) => {}
                () = shutdown.recv() => return,
            }
            self.reload().await;
        } else {
            self.record(&outcome).await;
        }
    }

    /// Reads the pair and serves it if it changed and is good.
    async fn read(&self) -> Reload {
        let tls = self.tls.clone();
        tokio::task::spawn_blocking(move || tls.reload())
            .await
            .unwrap_or(Reload::Unchanged)
    }

    /// Logs and audits what a reload did.
    async fn record(&self, outcome: &Reload) {
        match outcome {
            Reload::Unchanged => {}
            Reload::Replaced { previous, current } => tracing::info!(
                serial = %current.serial,
                not_after = %current.not_after_text(),
                sha256 = %current.sha256,
                previous_serial = %previous.serial,
                "TLS certificate reloaded; new connections get the new certificate"
            ),
            Reload::Failed { identity, error } => self.report(identity, error).await,
        }
    }

    /// Logs and audits a bad pair, once per distinct content.
    async fn report(&self, identity: &str, error: &crate::tls::PairError) {
        let fresh = self
            .reported
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(identity.to_owned());
        if !fresh {
            return;
        }
        let serving = self.tls.certificate();
        tracing::error!(
            error = %chain(error),
            serial = %serving.serial,
            "refused the new TLS certificate or key; still serving the previous certificate"
        );
        let files = self.tls.files();
        let event = NewEvent::new(event::TLS_RELOAD_FAILED, "system")
            .with("cert_file", files.cert.display().to_string())
            .with("key_file", files.key.display().to_string())
            .with("reason", chain(error).to_string())
            .with("serving_serial", serving.serial);
        if let Err(error) = self
            .store
            .write_async(move |w| w.audit(event.clone()).map(drop))
            .await
        {
            tracing::error!(error = %chain(&error), "cannot audit a TLS reload failure");
        }
    }

    /// The directories to watch: those holding the configured paths, and
    /// those holding what they link to (certbot's `live/` links point into
    /// `archive/`; a Secret volume's links into `..data`, in the same
    /// directory).
    fn dirs(&self) -> Vec<PathBuf> {
        let files = self.tls.files();
        let mut dirs = Vec::new();
        for path in [&files.cert, &files.key] {
            dirs.push(parent_dir(path));
            if let Ok(target) = std::fs::canonicalize(path) {
                dirs.push(parent_dir(&target));
            }
        }
        dirs
    }
}
