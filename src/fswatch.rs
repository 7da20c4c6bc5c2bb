//! Change notification for a few directories, debounced: the one importer
//! of notify, shared by the key directory watcher (`crate::keywatch`) and
//! the TLS certificate watcher (`crate::tlswatch`).
//!
//! It only says "something changed, and then nothing for [`DEBOUNCE`]":
//! callers rescan whatever they own. Writers touch several entries and
//! the kubelet and cert-manager swap a `..data` symlink, so any event is
//! treated alike. A directory that is missing is watched once it exists
//! ([`DirWatch::retry`], called from the caller's periodic rescan, which
//! also covers events the kernel never sends, e.g. on network file
//! systems).

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecommendedWatcher, Watcher as _};
use tokio::sync::mpsc;

/// How long the directories must be quiet after an event before the caller
/// is woken: writers (and the kubelet's `..data` swap) touch several
/// entries.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// How long a caller waits before reading again a file that looked bad
/// after a change: an in-place edit (an editor, certbot, a `>` redirect)
/// truncates first and writes after, so a reader can land in between. Only
/// what the second read finds is worth reporting.
pub const SETTLE: Duration = Duration::from_millis(500);

/// Watches directories (not recursively) and wakes its owner on changes.
pub struct DirWatch {
    what: &'static str,
    dirs: Vec<PathBuf>,
    watched: Vec<PathBuf>,
    watcher: Option<RecommendedWatcher>,
    events: mpsc::Sender<()>,
    wakeups: mpsc::Receiver<()>,
}

impl DirWatch {
    /// Watches `dirs` (duplicates are watched once); `what` names them in
    /// logs, e.g. "key directory".
    pub fn new(what: &'static str, dirs: Vec<PathBuf>) -> Self {
        let (events, wakeups) = mpsc::channel(16);
        let mut watch = Self {
            what,
            dirs: Vec::new(),
            watched: Vec::new(),
            watcher: None,
            events,
            wakeups,
        };
        watch.set_dirs(dirs);
        watch
    }

    /// Watches `dirs` from now on, instead of the previous ones.
    pub fn set_dirs(&mut self, mut dirs: Vec<PathBuf>) {
        dirs.sort();
        dirs.dedup();
        if dirs == self.dirs {
            return;
        }
        self.dirs = dirs;
        self.watched.clear();
        self.watcher = None;
        self.retry();
    }

    /// Starts watching the directories that could not be watched yet
    /// (missing at first, or the watcher could not start).
    pub fn retry(&mut self) {
        if self.watched.len() == self.dirs.len() {
            return;
        }
        if self.watcher.is_none() {
            self.watcher = self.start_watcher();
        }
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        for dir in &self.dirs {
            if self.watched.contains(dir) {
                continue;
            }
            match watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
                Ok(()) => self.watched.push(dir.clone()),
                Err(error) => {
                    tracing::debug!(dir = %dir.display(), %error, what = self.what, "not watching yet");
                }
            }
        }
    }

    /// Completes after the next change, once [`DEBOUNCE`] passed without
    /// another. Cancel-safe.
    pub async fn changed(&mut self) {
        if self.wakeups.recv().await.is_none() {
            // Never: `self` holds a sender.
            std::future::pending::<()>().await;
        }
        while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, self.wakeups.recv()).await {}
    }

    fn start_watcher(&self) -> Option<RecommendedWatcher> {
        let sender = self.events.clone();
        notify::recommended_watcher(move |result: notify::Result<notify::Event>| {
            // Reading the files (the owner's own rescans) produces access
            // events; only changes matter, or every rescan would trigger
            // the next.
            if result.is_ok_and(|event| !event.kind.is_access()) {
                // Full channel: a wake-up is pending anyway.
                let _ = sender.try_send(());
            }
        })
        .map_err(|error| {
            tracing::warn!(%error, what = self.what, "cannot start a file watcher; relying on periodic rescans");
        })
        .ok()
    }
}

/// The directory holding `path`, as watched for changes of that file (its
/// parent; `.` for a bare file name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}
