//! Process hardening at daemon start: files are created private and the
//! process never dumps core.
//!
//! - **umask 0077**: the redb file (token hashes, the audit log, sealed
//!   values), manifests and anything else the daemon creates are readable
//!   by its user only, whatever umask it was started with.
//! - **No core dumps**: a core file would hold opened secret values and
//!   master keys. `PR_SET_DUMPABLE` 0 also keeps other processes of the
//!   same user from attaching a debugger or reading `/proc/<pid>/mem`;
//!   `RLIMIT_CORE` 0 covers a later exec or a kernel that ignores the flag.
//!
//! Only the `serve` path calls [`harden`]: client commands and tests keep
//! the environment they were given. System calls go through rustix, so
//! `unsafe_code` stays forbidden.

use rustix::fs::Mode;
use rustix::process::{DumpableBehavior, Resource, Rlimit};

/// What could not be hardened.
#[derive(Debug, thiserror::Error)]
pub enum HardenError {
    /// `prctl(PR_SET_DUMPABLE, 0)` failed.
    #[error("cannot mark the process non-dumpable (prctl PR_SET_DUMPABLE)")]
    Dumpable(#[source] std::io::Error),
    /// `setrlimit(RLIMIT_CORE, 0)` failed.
    #[error("cannot disable core dumps (setrlimit RLIMIT_CORE)")]
    CoreLimit(#[source] std::io::Error),
}

/// Sets umask 0077 and disables core dumps for this process.
pub fn harden() -> Result<(), HardenError> {
    rustix::process::umask(Mode::from_raw_mode(0o077));
    rustix::process::set_dumpable_behavior(DumpableBehavior::NotDumpable)
        .map_err(|errno| HardenError::Dumpable(errno.into()))?;
    rustix::process::setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )
    .map_err(|errno| HardenError::CoreLimit(errno.into()))?;
    Ok(())
}
