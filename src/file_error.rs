//! A file operation that failed: what was attempted, on which file, and
//! the I/O error as its source.
//!
//! The store's backups and the CLI read and write files and report a
//! failure the same way (`cannot write /path: Permission denied` once the
//! chain is printed), so the error is one type here. It imports nothing
//! else from exsec, so any module may use it without pointing up a layer.

use std::io;
use std::path::PathBuf;

/// `{action} {path}`, caused by `source`.
#[derive(Debug, thiserror::Error)]
#[error("{action} {path}")]
pub struct FileError {
    /// What was attempted (`cannot read`, `cannot write`…).
    pub action: &'static str,
    /// The file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: io::Error,
}
