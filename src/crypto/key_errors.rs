//! What can be wrong with the key directory and its files, shared by the
//! key file parser, the directory scan and the reload rule. Messages say
//! what was found, never what a file contains.

use std::fmt;
use std::io;
use std::path::PathBuf;

use super::Fingerprint;
use crate::error_chain::chain;
use crate::model::{KeyId, ValidationError};
use crate::private_file::PrivateFileError;

/// Largest key file read: a key is at most 66 bytes of text, so anything
/// this big is not a key file and is refused without reading it whole.
pub const MAX_KEY_FILE_BYTES: u64 = 1024;

/// The key directory itself cannot be read. The caller decides what that
/// means: a missing directory can mean "no key" (SPEC §3).
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The directory does not exist.
    #[error("key directory {path} does not exist")]
    DirNotFound {
        /// The directory.
        path: PathBuf,
    },
    /// The directory exists but cannot be listed (permissions, not a
    /// directory, I/O error).
    #[error("cannot read key directory {path}")]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}
/// How a key file's content was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyEncoding {
    /// 64 hex digits.
    Hex,
    /// Standard or URL-safe base64, padded or not.
    Base64,
}

impl fmt::Display for KeyEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyEncoding::Hex => "hex",
            KeyEncoding::Base64 => "base64",
        })
    }
}
/// Why one key file was not loaded. Messages say what was found, never
/// what the file contains.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file name stem is not a valid key id.
    #[error("file name is not a valid key id")]
    InvalidKeyId {
        /// Which rule the stem broke.
        #[source]
        source: ValidationError,
    },
    /// The file (or a link on the way to it) cannot be read.
    #[error("cannot read key file")]
    Io {
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// Not a regular file, or group or others may access it (after
    /// following links): the rule of [`crate::private_file`].
    #[error("key file {0}")]
    Access(#[from] PrivateFileError),
    /// The file is larger than [`MAX_KEY_FILE_BYTES`]; it was not read whole.
    #[error("key file is {len} bytes, more than the {MAX_KEY_FILE_BYTES}-byte limit")]
    TooLarge {
        /// Size found.
        len: u64,
    },
    /// Nothing but at most a newline.
    #[error("key file is empty")]
    Empty,
    /// More than one line.
    #[error(
        "key file has more than one line; it must hold only the key and at most one trailing newline"
    )]
    ExtraLines,
    /// Spaces, tabs or a stray carriage return around or inside the key.
    #[error("key file has whitespace around or inside the key; it must hold only the key")]
    Whitespace,
    /// Well-formed encoding of the wrong number of bytes.
    #[error("key decodes to {len} bytes as {encoding}, expected 32")]
    WrongLength {
        /// How the content was read.
        encoding: KeyEncoding,
        /// Bytes it decodes to.
        len: usize,
    },
    /// Neither hex nor base64.
    #[error("key is neither 64 hex characters nor base64: {reason} ({chars} characters)")]
    BadEncoding {
        /// What is wrong, without quoting the content.
        reason: &'static str,
        /// Length of the content without its trailing newline.
        chars: usize,
    },
    /// The file holds a different key than the one whose fingerprint the
    /// store recorded for this id.
    #[error(
        "key does not match the fingerprint stored for its id (stored {expected}, file has {found}); restore the original file or give the new key a new name"
    )]
    FingerprintMismatch {
        /// Fingerprint recorded in the store.
        expected: Fingerprint,
        /// Fingerprint of the key in the file.
        found: Fingerprint,
    },
}
/// One key file that was not loaded, and why.
pub struct KeyFileProblem {
    /// The entry in the key directory (not the target of a link).
    pub path: PathBuf,
    /// The id from the file name, when it is a valid id.
    pub key_id: Option<KeyId>,
    /// What is wrong.
    pub error: KeyFileError,
    /// SHA-256 of the raw content when the file was read (lets the caller
    /// report each distinct bad content once). `None` when the file was not
    /// read, and for [`KeyFileError::FingerprintMismatch`], whose `found`
    /// fingerprint identifies the content instead. Never log it: for a
    /// near-miss key file it is a hash of key material.
    pub content_digest: Option<[u8; 32]>,
}

impl fmt::Debug for KeyFileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFileProblem")
            .field("path", &self.path)
            .field("key_id", &self.key_id)
            .field("error", &self.error)
            .field("content_digest", &self.content_digest.map(|_| "<redacted>"))
            .finish()
    }
}

impl fmt::Display for KeyFileProblem {
    /// `key file PATH: ERROR: SOURCE…`, the whole chain on one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "key file {}: {}",
            self.path.display(),
            chain(&self.error)
        )
    }
}
