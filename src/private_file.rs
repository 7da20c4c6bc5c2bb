//! The rule for files that hold a secret the daemon reads — master key
//! files and the admin token file: a regular file (after following links)
//! that neither group nor others may access, as ssh demands of a private
//! key. With `keys.allow_group_readable = true` (Kubernetes `fsGroup`
//! mounts Secrets 0440) group access is allowed, others' never.
//!
//! One rule in one place, so a token file cannot be looser than a key
//! file. This module imports nothing else of exsec.

use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};

/// Why a file may not hold a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrivateFileError {
    /// After following links, the name points at a directory or a special file.
    #[error("is a {kind}, not a regular file")]
    NotRegularFile {
        /// `directory`, `fifo`, `socket`, `device` or `special file`.
        kind: &'static str,
    },
    /// Group or others may access the file.
    #[error("has mode {mode:04o}, which {}", too_open_advice(*.allow_group_readable))]
    TooOpen {
        /// Permission bits of the file.
        mode: u32,
        /// Whether group access was allowed when it was checked.
        allow_group_readable: bool,
    },
}

/// Checks type and mode, on metadata taken after following links.
pub fn check(metadata: &Metadata, allow_group_readable: bool) -> Result<(), PrivateFileError> {
    let file_type = metadata.file_type();
    if !file_type.is_file() {
        let kind = if file_type.is_dir() {
            "directory"
        } else if file_type.is_fifo() {
            "fifo"
        } else if file_type.is_socket() {
            "socket"
        } else if file_type.is_block_device() || file_type.is_char_device() {
            "device"
        } else {
            "special file"
        };
        return Err(PrivateFileError::NotRegularFile { kind });
    }
    let mode = metadata.permissions().mode() & 0o7777;
    let too_open = if allow_group_readable { 0o007 } else { 0o077 };
    if mode & too_open != 0 {
        return Err(PrivateFileError::TooOpen {
            mode,
            allow_group_readable,
        });
    }
    Ok(())
}

fn too_open_advice(allow_group_readable: bool) -> &'static str {
    if allow_group_readable {
        "lets others access it; run `chmod 600` (or `chmod 640`) on it"
    } else {
        "lets group or others access it; run `chmod 600` on it, or set `keys.allow_group_readable = true` if group access is intended (Kubernetes fsGroup)"
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn mode_check(mode: u32, allow_group_readable: bool) -> Result<(), PrivateFileError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        fs::write(&path, "x").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        check(&fs::metadata(&path).unwrap(), allow_group_readable)
    }

    #[test]
    fn only_the_owner_may_read_unless_group_access_is_allowed() {
        assert_eq!(mode_check(0o600, false), Ok(()));
        assert_eq!(mode_check(0o400, false), Ok(()));
        for mode in [0o640, 0o604, 0o644, 0o660] {
            assert!(
                matches!(
                    mode_check(mode, false),
                    Err(PrivateFileError::TooOpen { .. })
                ),
                "{mode:o}"
            );
        }
        assert_eq!(mode_check(0o640, true), Ok(()));
        assert_eq!(mode_check(0o440, true), Ok(()));
        assert!(mode_check(0o644, true).is_err());
        let message = mode_check(0o644, false).unwrap_err().to_string();
        assert!(
            message.contains("0644") && message.contains("chmod 600"),
            "{message}"
        );
    }

    #[test]
    fn a_directory_is_not_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let metadata = fs::metadata(dir.path()).unwrap();
        assert_eq!(
            check(&metadata, false),
            Err(PrivateFileError::NotRegularFile { kind: "directory" })
        );
    }
}
