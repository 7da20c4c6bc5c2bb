//! The master keys exsec holds in memory: key file parsing, the key
//! directory scan, and the immutable [`Keyring`] snapshot that seals and
//! opens secret values.
//!
//! It exists so that the rules of SPEC §3 (which files count, which modes
//! are refused, which key is active, what a reload may replace) live in one
//! place that callers cannot get subtly wrong. It must not log (the caller
//! decides what to report and how often), must not write files, and must
//! never let key bytes or key file content reach a `Debug`, `Display`, error
//! message or serialized form.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::backup_mac::BackupMac;
use super::seal::{self, SealedValue, SecretLocation};
use crate::error_chain::chain;
use crate::model::{KeyId, SecretValue, ValidationError};
use crate::private_file::{self, PrivateFileError};

/// Length of a master key in bytes.
pub const MASTER_KEY_LEN: usize = 32;
/// Largest key file read: a key is at most 66 bytes of text, so anything
/// this big is not a key file and is refused without reading it whole.
pub const MAX_KEY_FILE_BYTES: u64 = 1024;
/// What the fingerprint HMAC is computed over; versioned like the AAD.
const FINGERPRINT_CONTEXT: &[u8] = b"exsec/key-fingerprint/v1";
/// Read buffer: one byte more than the limit, to notice a file that grew.
const READ_BUFFER_LEN: usize = MAX_KEY_FILE_BYTES as usize + 1;

/// A 32-byte master key. Zeroized on drop; no `Debug`, `Clone` or
/// `Serialize`. Keyring snapshots share keys through `Arc`.
pub struct MasterKey([u8; MASTER_KEY_LEN]);

impl MasterKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut key = Self([0; MASTER_KEY_LEN]);
        getrandom::fill(&mut key.0).map_err(|source| CryptoError::Random {
            source: super::random_error(source),
        })?;
        Ok(key)
    }

    /// Wraps key bytes. The caller should zeroize its own copy.
    pub fn from_bytes(bytes: [u8; MASTER_KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The key bytes; only sealing, opening and key file writing need them.
    pub(crate) fn expose_secret(&self) -> &[u8; MASTER_KEY_LEN] {
        &self.0
    }

    /// A keyed hash identifying this key: HMAC-SHA256 keyed with the key
    /// over `exsec/key-fingerprint/v1`. Safe to store and show; it reveals
    /// nothing about the key.
    pub fn fingerprint(&self) -> Fingerprint {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .expect("HMAC-SHA256 accepts a key of any length");
        mac.update(FINGERPRINT_CONTEXT);
        Fingerprint(mac.finalize().into_bytes().into())
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for MasterKey {}

/// The fingerprint of a master key (see [`MasterKey::fingerprint`]); the
/// store keeps it from the first time a key seals a value.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.to_hex())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Sealing or opening failed.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The keyring is empty, so nothing can be sealed.
    #[error("no master key is loaded")]
    NoActiveKey,
    /// The record was sealed under a key that is not in the keyring.
    #[error("master key {key_id} is not loaded")]
    MissingKey {
        /// The key the record needs.
        key_id: KeyId,
    },
    /// Authentication failed (wrong key content, tampering, or a record
    /// moved to another location) or the plaintext is not a valid value.
    /// Deliberately one variant: no detail for an oracle.
    #[error("sealed value cannot be opened with master key {key_id}")]
    Unopenable {
        /// The key the record names.
        key_id: KeyId,
    },
    /// The cipher refused to seal (only possible for absurd lengths).
    #[error("sealing under master key {key_id} failed")]
    SealFailed {
        /// The active key.
        key_id: KeyId,
    },
    /// The operating system's random source failed.
    #[error("system random source failed")]
    Random {
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}

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

/// What one scan of the key directory found.
pub struct KeyDirScan {
    /// The directory scanned.
    pub dir: PathBuf,
    /// Every key file that loaded.
    pub keys: BTreeMap<KeyId, MasterKey>,
    /// Every `*.key` entry that did not, in file name order.
    pub problems: Vec<KeyFileProblem>,
}

/// Parses the content of a key file: 32 bytes as base64 (standard or
/// URL-safe, padded or not) or as 64 hex digits (either case), with at
/// most one trailing `\n` or `\r\n`.
pub fn parse_key_file(contents: &[u8]) -> Result<MasterKey, KeyFileError> {
    let body = contents
        .strip_suffix(b"\r\n")
        .or_else(|| contents.strip_suffix(b"\n"))
        .unwrap_or(contents);
    if body.is_empty() {
        return Err(KeyFileError::Empty);
    }
    if body.contains(&b'\n') {
        return Err(KeyFileError::ExtraLines);
    }
    if body.iter().any(|b| b.is_ascii_whitespace()) {
        return Err(KeyFileError::Whitespace);
    }
    let chars = body.len();
    if !body.iter().all(|b| b.is_ascii_graphic()) {
        return Err(KeyFileError::BadEncoding {
            reason: "contains non-ASCII or control bytes",
            chars,
        });
    }

    // Hex digits are base64 characters too. 64 characters can only be hex
    // (as base64 they are 48 bytes), and an all-hex body whose length is not
    // 43 or 44 (base64 of 32 bytes) is read as hex, so a truncated hex key
    // is reported as hex.
    let all_hex = body.iter().all(u8::is_ascii_hexdigit);
    if chars == 64 || (all_hex && chars != 43 && chars != 44) {
        return parse_hex(body);
    }
    parse_base64(body)
}

fn parse_hex(body: &[u8]) -> Result<MasterKey, KeyFileError> {
    let chars = body.len();
    if !body.iter().all(u8::is_ascii_hexdigit) {
        return Err(KeyFileError::BadEncoding {
            reason: "not all hex digits",
            chars,
        });
    }
    if !chars.is_multiple_of(2) {
        return Err(KeyFileError::BadEncoding {
            reason: "odd number of hex digits",
            chars,
        });
    }
    if chars != 2 * MASTER_KEY_LEN {
        return Err(KeyFileError::WrongLength {
            encoding: KeyEncoding::Hex,
            len: chars / 2,
        });
    }
    let mut key = MasterKey([0; MASTER_KEY_LEN]);
    hex::decode_to_slice(body, &mut key.0).map_err(|_| KeyFileError::BadEncoding {
        reason: "not all hex digits",
        chars,
    })?;
    Ok(key)
}

fn parse_base64(body: &[u8]) -> Result<MasterKey, KeyFileError> {
    const CONFIG: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, CONFIG);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, CONFIG);

    let chars = body.len();
    let url_safe = body.iter().any(|b| matches!(b, b'-' | b'_'));
    if url_safe && body.iter().any(|b| matches!(b, b'+' | b'/')) {
        return Err(KeyFileError::BadEncoding {
            reason: "mixes standard and URL-safe base64 alphabets",
            chars,
        });
    }
    let engine = if url_safe { &URL_SAFE } else { &STANDARD };
    // Preallocated to the decoder's estimate so decoding never reallocates
    // and leaves an unzeroized copy behind.
    let mut decoded = Zeroizing::new(Vec::with_capacity(base64::decoded_len_estimate(chars)));
    engine.decode_vec(body, &mut decoded).map_err(|error| {
        let reason = match error {
            base64::DecodeError::InvalidByte(..) => "invalid base64 character",
            base64::DecodeError::InvalidLength(_) => "invalid base64 length",
            base64::DecodeError::InvalidLastSymbol(..) => "invalid last base64 character",
            base64::DecodeError::InvalidPadding => "invalid base64 padding",
        };
        KeyFileError::BadEncoding { reason, chars }
    })?;
    if decoded.len() != MASTER_KEY_LEN {
        return Err(KeyFileError::WrongLength {
            encoding: KeyEncoding::Base64,
            len: decoded.len(),
        });
    }
    let mut key = MasterKey([0; MASTER_KEY_LEN]);
    key.0.copy_from_slice(&decoded);
    Ok(key)
}

/// Scans the key directory: every `<key_id>.key` entry, links followed.
///
/// Dotfiles (including Kubernetes' `..data` links) and names not ending in
/// `.key` are ignored silently. A `.key` entry that is not a loadable key
/// becomes a [`KeyFileProblem`]; only the directory itself failing is an
/// error. A file whose mode has any group or other bits (`0o077`, as ssh)
/// is refused; with `allow_group_readable` only other bits (`0o007`) are.
pub fn scan_dir(dir: &Path, allow_group_readable: bool) -> Result<KeyDirScan, KeyringError> {
    let read_dir_error = |source: io::Error| {
        if source.kind() == io::ErrorKind::NotFound {
            KeyringError::DirNotFound {
                path: dir.to_path_buf(),
            }
        } else {
            KeyringError::ReadDir {
                path: dir.to_path_buf(),
                source,
            }
        }
    };
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_dir_error)? {
        names.push(entry.map_err(read_dir_error)?.file_name());
    }
    names.sort();

    let mut scan = KeyDirScan {
        dir: dir.to_path_buf(),
        keys: BTreeMap::new(),
        problems: Vec::new(),
    };
    for name in names {
        let bytes = name.as_bytes();
        if bytes.starts_with(b".") {
            continue;
        }
        let Some(stem) = bytes.strip_suffix(b".key") else {
            continue;
        };
        let path = dir.join(&name);
        let key_id = match std::str::from_utf8(stem) {
            Ok(stem) => KeyId::parse(stem),
            Err(_) => Err(ValidationError {
                field: "key_id",
                reason: "is not valid UTF-8".to_owned(),
            }),
        };
        let key_id = match key_id {
            Ok(key_id) => key_id,
            Err(source) => {
                scan.problems.push(KeyFileProblem {
                    path,
                    key_id: None,
                    error: KeyFileError::InvalidKeyId { source },
                    content_digest: None,
                });
                continue;
            }
        };
        match load_key_file(&path, allow_group_readable) {
            Ok(key) => {
                scan.keys.insert(key_id, key);
            }
            Err((error, content_digest)) => scan.problems.push(KeyFileProblem {
                path,
                key_id: Some(key_id),
                error,
                content_digest,
            }),
        }
    }
    Ok(scan)
}

/// Reads and parses one key file, returning the digest of its content when
/// it was read but did not parse.
fn load_key_file(
    path: &Path,
    allow_group_readable: bool,
) -> Result<MasterKey, (KeyFileError, Option<[u8; 32]>)> {
    let io_error = |source| (KeyFileError::Io { source }, None);
    // Check the target before opening it: opening a FIFO would block.
    let metadata = fs::metadata(path).map_err(io_error)?;
    check_metadata(&metadata, allow_group_readable).map_err(|error| (error, None))?;
    let mut file = File::open(path).map_err(io_error)?;
    // The link may have been swapped between the check and the open (a
    // Kubernetes `..data` flip): check again what was actually opened.
    let opened = file.metadata().map_err(io_error)?;
    check_metadata(&opened, allow_group_readable).map_err(|error| (error, None))?;

    let mut buffer = Zeroizing::new([0u8; READ_BUFFER_LEN]);
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(io_error(error)),
        }
    }
    if filled == READ_BUFFER_LEN {
        // It grew past the limit after the size check.
        return Err((KeyFileError::TooLarge { len: opened.len() }, None));
    }
    let contents = &buffer[..filled];
    parse_key_file(contents).map_err(|error| (error, Some(Sha256::digest(contents).into())))
}

/// Type, mode and size rules for a key file, on metadata after links.
fn check_metadata(metadata: &fs::Metadata, allow_group_readable: bool) -> Result<(), KeyFileError> {
    private_file::check(metadata, allow_group_readable)?;
    if metadata.len() > MAX_KEY_FILE_BYTES {
        return Err(KeyFileError::TooLarge {
            len: metadata.len(),
        });
    }
    Ok(())
}

/// One loaded key and its fingerprint, computed once.
struct Entry {
    key: Arc<MasterKey>,
    fingerprint: Fingerprint,
}

impl Entry {
    fn new(key: Arc<MasterKey>) -> Self {
        let fingerprint = key.fingerprint();
        Self { key, fingerprint }
    }

    fn share(&self) -> Self {
        Self {
            key: Arc::clone(&self.key),
            fingerprint: self.fingerprint,
        }
    }
}

/// An immutable snapshot of the loaded master keys.
///
/// Callers share it through `Arc` and replace the whole snapshot on reload
/// ([`Keyring::assemble`]); snapshots share key memory, so keeping a
/// previous key copies no key bytes. The active key is the greatest key id
/// in byte order.
#[derive(Default)]
pub struct Keyring {
    entries: BTreeMap<KeyId, Entry>,
}

impl Keyring {
    /// No keys: nothing can be sealed or opened (a valid state, SPEC §3).
    pub fn empty() -> Self {
        Self::default()
    }

    /// A keyring holding exactly `keys`.
    pub fn from_keys(keys: impl IntoIterator<Item = (KeyId, MasterKey)>) -> Self {
        let entries = keys
            .into_iter()
            .map(|(key_id, key)| (key_id, Entry::new(Arc::new(key))))
            .collect();
        Self { entries }
    }

    /// The key new values are sealed under: the greatest key id in byte order.
    pub fn active(&self) -> Option<&KeyId> {
        self.entries.last_key_value().map(|(key_id, _)| key_id)
    }

    /// Whether `key_id` is loaded.
    pub fn contains(&self, key_id: &KeyId) -> bool {
        self.entries.contains_key(key_id)
    }

    /// The loaded key ids, in byte order (the active one last).
    pub fn ids(&self) -> impl Iterator<Item = &KeyId> {
        self.entries.keys()
    }

    /// How many keys are loaded.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is loaded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The fingerprint of a loaded key.
    pub fn fingerprint(&self, key_id: &KeyId) -> Option<Fingerprint> {
        self.entries.get(key_id).map(|entry| entry.fingerprint)
    }

    /// Seals `value` for `location` under the active key.
    pub fn seal(
        &self,
        location: &SecretLocation<'_>,
        value: &SecretValue,
    ) -> Result<SealedValue, CryptoError> {
        let (key_id, entry) = self
            .entries
            .last_key_value()
            .ok_or(CryptoError::NoActiveKey)?;
        seal::seal(
            key_id,
            entry.key.expose_secret(),
            location,
            value.expose_secret().as_bytes(),
        )
    }

    /// The MAC that authenticates a backup, keyed from the active key;
    /// returns that key's id too (the backup header names it).
    pub fn active_backup_mac(&self) -> Result<(KeyId, BackupMac), CryptoError> {
        let (key_id, entry) = self
            .entries
            .last_key_value()
            .ok_or(CryptoError::NoActiveKey)?;
        Ok((key_id.clone(), BackupMac::new(entry.key.expose_secret())))
    }

    /// The MAC of a backup made under `key_id`, to check one.
    pub fn backup_mac(&self, key_id: &KeyId) -> Result<BackupMac, CryptoError> {
        let entry = self
            .entries
            .get(key_id)
            .ok_or_else(|| CryptoError::MissingKey {
                key_id: key_id.clone(),
            })?;
        Ok(BackupMac::new(entry.key.expose_secret()))
    }

    /// Opens a record sealed for `location` with the key it names.
    pub fn open(
        &self,
        location: &SecretLocation<'_>,
        sealed: &SealedValue,
    ) -> Result<SecretValue, CryptoError> {
        let entry = self
            .entries
            .get(&sealed.key_id)
            .ok_or_else(|| CryptoError::MissingKey {
                key_id: sealed.key_id.clone(),
            })?;
        let plaintext = seal::open(entry.key.expose_secret(), location, sealed)?;
        SecretValue::from_opened(plaintext).map_err(|_| CryptoError::Unopenable {
            key_id: sealed.key_id.clone(),
        })
    }

    /// Opens a record with its key and seals it again under the active key
    /// (a fresh nonce even when it already was under the active key).
    pub fn reseal(
        &self,
        location: &SecretLocation<'_>,
        sealed: &SealedValue,
    ) -> Result<SealedValue, CryptoError> {
        let value = self.open(location, sealed)?;
        self.seal(location, &value)
    }

    /// Builds the next snapshot from a directory scan (SPEC §3 reload rule).
    ///
    /// - A scanned key whose fingerprint differs from the `known` (stored)
    ///   one for its id is refused ([`KeyFileError::FingerprintMismatch`]);
    ///   if `previous` holds that id with the known fingerprint, the previous
    ///   copy stays.
    /// - A `.key` entry that failed to load keeps the previous copy of its
    ///   id (a bad edit keeps the last good key), unless that copy
    ///   contradicts `known`.
    /// - An id with no entry in the directory any more is gone.
    ///
    /// Returns the snapshot and every problem (the scan's, then the
    /// fingerprint mismatches).
    pub fn assemble(
        scan: KeyDirScan,
        known: &BTreeMap<KeyId, Fingerprint>,
        previous: Option<&Keyring>,
    ) -> (Keyring, Vec<KeyFileProblem>) {
        let KeyDirScan {
            dir,
            keys,
            mut problems,
        } = scan;
        // A previous copy may stay only if it agrees with the stored fingerprint.
        let previous_copy = |key_id: &KeyId| {
            let entry = previous?.entries.get(key_id)?;
            match known.get(key_id) {
                Some(expected) if *expected != entry.fingerprint => None,
                _ => Some(entry.share()),
            }
        };

        let mut entries = BTreeMap::new();
        for problem in &problems {
            if let Some(key_id) = &problem.key_id
                && let Some(entry) = previous_copy(key_id)
            {
                entries.insert(key_id.clone(), entry);
            }
        }
        for (key_id, key) in keys {
            let entry = Entry::new(Arc::new(key));
            match known.get(&key_id) {
                Some(expected) if *expected != entry.fingerprint => {
                    if let Some(previous) = previous_copy(&key_id) {
                        entries.insert(key_id.clone(), previous);
                    }
                    problems.push(KeyFileProblem {
                        path: dir.join(format!("{key_id}.key")),
                        key_id: Some(key_id),
                        error: KeyFileError::FingerprintMismatch {
                            expected: *expected,
                            found: entry.fingerprint,
                        },
                        content_digest: None,
                    });
                }
                _ => {
                    entries.insert(key_id, entry);
                }
            }
        }
        (Keyring { entries }, problems)
    }
}

impl fmt::Debug for Keyring {
    /// Ids and fingerprints only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("active", &self.active())
            .field(
                "keys",
                &self
                    .entries
                    .iter()
                    .map(|(key_id, entry)| (key_id, entry.fingerprint))
                    .collect::<BTreeMap<_, _>>(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt, symlink};

    use base64::engine::general_purpose;

    use super::*;
    use crate::model::{EnvKey, Provider, Scope, TenantId};

    /// A key whose base64 has both `+` and `/` (URL-safe: `-` and `_`).
    const KEY_BYTES: [u8; 32] = [0xfb; 32];

    fn key_id(raw: &str) -> KeyId {
        KeyId::parse(raw).unwrap()
    }

    fn b64(bytes: &[u8]) -> String {
        general_purpose::STANDARD.encode(bytes)
    }

    fn hex_key() -> String {
        hex::encode(KEY_BYTES)
    }

    fn parsed(contents: &[u8]) -> [u8; 32] {
        *parse_key_file(contents).unwrap().expose_secret()
    }

    /// Fails when `text` contains any 8-character window of the key's
    /// encodings (a quoted piece of the key would show up here).
    fn assert_no_key_material(text: &str) {
        let encodings = [
            b64(&KEY_BYTES),
            general_purpose::URL_SAFE.encode(KEY_BYTES),
            hex_key(),
            hex_key().to_uppercase(),
        ];
        for encoding in encodings {
            for window in encoding.as_bytes().windows(8) {
                let window = std::str::from_utf8(window).unwrap();
                assert!(!text.contains(window), "{text:?} contains {window:?}");
            }
        }
        assert!(!text.contains("251, 251"), "{text:?} contains raw bytes");
    }

    fn write_mode(path: &Path, contents: &[u8], mode: u32) {
        fs::write(path, contents).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    struct Place {
        scope: Scope,
        provider: Provider,
        key: EnvKey,
    }

    impl Place {
        fn new(owner: &str) -> Self {
            Self {
                scope: Scope::Tenant(TenantId::parse(owner).unwrap()),
                provider: Provider::parse("openai").unwrap(),
                key: EnvKey::parse("OPENAI_API_KEY").unwrap(),
            }
        }

        fn location(&self) -> SecretLocation<'_> {
            SecretLocation {
                scope: &self.scope,
                provider: &self.provider,
                key: &self.key,
            }
        }
    }

    fn value(text: &str) -> SecretValue {
        SecretValue::parse(text.to_owned()).unwrap()
    }

    // ---- key file content ----

    #[test]
    fn parses_every_accepted_encoding() {
        let padded = b64(&KEY_BYTES);
        assert_eq!(padded.len(), 44);
        assert!(padded.contains('+') && padded.contains('/'));
        let unpadded = general_purpose::STANDARD_NO_PAD.encode(KEY_BYTES);
        let url_safe = general_purpose::URL_SAFE.encode(KEY_BYTES);
        let url_safe_unpadded = general_purpose::URL_SAFE_NO_PAD.encode(KEY_BYTES);
        let hex_lower = hex_key();
        let hex_upper = hex_lower.to_uppercase();
        for text in [
            padded,
            unpadded,
            url_safe,
            url_safe_unpadded,
            hex_lower,
            hex_upper,
        ] {
            for ending in ["", "\n", "\r\n"] {
                let contents = format!("{text}{ending}");
                assert_eq!(parsed(contents.as_bytes()), KEY_BYTES, "{contents:?}");
            }
        }
    }

    #[test]
    fn refuses_malformed_content_without_quoting_it() {
        let good = b64(&KEY_BYTES);
        let hex = hex_key();
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "empty"),
            ("\n".into(), "empty"),
            (format!("{good}\n\n"), "more than one line"),
            (format!("{good}\n{good}\n"), "more than one line"),
            (format!("\n{good}"), "more than one line"),
            (format!(" {good}\n"), "whitespace"),
            (format!("{good} \n"), "whitespace"),
            (format!("{good}\t"), "whitespace"),
            (format!("{good}\r"), "whitespace"),
            (format!("{good}\n\r\n"), "more than one line"),
            (
                b64(&KEY_BYTES[..16]),
                "decodes to 16 bytes as base64, expected 32",
            ),
            (
                format!("{}\n", b64(&[KEY_BYTES.as_slice(), &[1]].concat())),
                "decodes to 33 bytes as base64, expected 32",
            ),
            (
                hex[..62].to_owned(),
                "decodes to 31 bytes as hex, expected 32",
            ),
            (
                format!("{hex}00"),
                "decodes to 33 bytes as hex, expected 32",
            ),
            (hex[..63].to_owned(), "odd number of hex digits"),
            (format!("{}zz", &hex[..62]), "not all hex digits"),
            (format!("{}!", &good[..43]), "invalid base64 character"),
            (
                format!("{}-", &good[..43]),
                "mixes standard and URL-safe base64 alphabets",
            ),
            (format!("{}\u{e9}", &good[..42]), "non-ASCII"),
            (good[..41].to_owned(), "invalid base64 length"),
        ];
        for (contents, expected) in cases {
            let error = parse_key_file(contents.as_bytes())
                .err()
                .unwrap_or_else(|| panic!("accepted {contents:?}"));
            let shown = error.to_string();
            assert!(shown.contains(expected), "{contents:?}: {shown}");
            assert_no_key_material(&shown);
            assert_no_key_material(&format!("{error:?}"));
        }
    }

    #[test]
    fn bad_encoding_reports_length_found() {
        let error = parse_key_file(b"!!!!\n").err().unwrap();
        assert_eq!(
            error.to_string(),
            "key is neither 64 hex characters nor base64: invalid base64 character (4 characters)"
        );
    }

    // ---- fingerprints and generation ----

    #[test]
    fn fingerprint_is_hmac_of_the_constant_keyed_with_the_key() {
        let key = MasterKey::from_bytes(KEY_BYTES);
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&KEY_BYTES).unwrap();
        mac.update(b"exsec/key-fingerprint/v1");
        let expected: [u8; 32] = mac.finalize().into_bytes().into();
        let fingerprint = key.fingerprint();
        assert_eq!(fingerprint.0, expected);
        assert_ne!(fingerprint.0, KEY_BYTES);
        assert_eq!(fingerprint.to_hex(), hex::encode(expected));
        assert_eq!(
            format!("{fingerprint:?}"),
            format!("Fingerprint({})", hex::encode(expected))
        );
        assert_ne!(MasterKey::from_bytes([1; 32]).fingerprint(), fingerprint);
    }

    #[test]
    fn generated_keys_differ() {
        let first = MasterKey::generate().unwrap();
        let second = MasterKey::generate().unwrap();
        assert_ne!(first.expose_secret(), second.expose_secret());
        assert_ne!(first.expose_secret(), &[0; 32]);
    }

    // ---- directory scan ----

    #[test]
    fn missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let error = scan_dir(&missing, false).err().unwrap();
        assert!(matches!(error, KeyringError::DirNotFound { .. }));
        assert!(error.to_string().contains("nope"));
        let file = dir.path().join("file");
        fs::write(&file, "x").unwrap();
        assert!(matches!(
            scan_dir(&file, false).err().unwrap(),
            KeyringError::ReadDir { .. }
        ));
    }

    #[test]
    fn loads_keys_and_ignores_other_names() {
        let dir = tempfile::tempdir().unwrap();
        let contents = format!("{}\n", b64(&KEY_BYTES));
        write_mode(&dir.path().join("prod.key"), contents.as_bytes(), 0o600);
        write_mode(
            &dir.path().join("20261128T061542Z.key"),
            hex_key().as_bytes(),
            0o400,
        );
        // Ignored silently, even though their content is bad.
        write_mode(&dir.path().join(".hidden.key"), b"junk", 0o644);
        write_mode(&dir.path().join("notes.txt"), b"junk", 0o644);
        write_mode(&dir.path().join("prod.key.bak"), b"junk", 0o644);
        write_mode(&dir.path().join(".key"), b"junk", 0o644);

        let scan = scan_dir(dir.path(), false).unwrap();
        assert!(scan.problems.is_empty(), "{:?}", scan.problems);
        let ids: Vec<_> = scan.keys.keys().map(KeyId::as_str).collect();
        assert_eq!(ids, ["20261128T061542Z", "prod"]);
        assert_eq!(scan.keys[&key_id("prod")].expose_secret(), &KEY_BYTES);
        assert_eq!(scan.dir, dir.path());
    }

    #[test]
    fn bad_names_and_non_files_are_problems() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("x.key")).unwrap();
        write_mode(
            &dir.path().join("bad name.key"),
            hex_key().as_bytes(),
            0o600,
        );
        symlink("nowhere.key", dir.path().join("dangling.key")).unwrap();

        let scan = scan_dir(dir.path(), false).unwrap();
        assert!(scan.keys.is_empty());
        let [bad_name, dangling, directory] = scan.problems.as_slice() else {
            panic!("{:?}", scan.problems);
        };
        assert!(bad_name.key_id.is_none());
        assert!(matches!(bad_name.error, KeyFileError::InvalidKeyId { .. }));
        assert_eq!(dangling.key_id, Some(key_id("dangling")));
        assert!(matches!(dangling.error, KeyFileError::Io { .. }));
        assert_eq!(directory.path, dir.path().join("x.key"));
        assert!(matches!(
            directory.error,
            KeyFileError::Access(PrivateFileError::NotRegularFile { kind: "directory" })
        ));
        assert!(directory.content_digest.is_none());
        assert!(
            directory
                .to_string()
                .contains("x.key: key file is a directory")
        );
    }

    #[test]
    fn mode_rules() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        let contents = hex_key();
        // The problem a file of `mode` raises, or `None` when it loads.
        let problem_with = |mode: u32, allow_group_readable: bool| {
            write_mode(&path, contents.as_bytes(), mode);
            let mut scan = scan_dir(dir.path(), allow_group_readable).unwrap();
            assert_eq!(scan.keys.len() + scan.problems.len(), 1);
            scan.problems.pop()
        };
        for mode in [0o600, 0o400, 0o700] {
            assert!(problem_with(mode, false).is_none(), "{mode:o}");
        }
        // Running as root, reads would succeed anyway: the rule is on the mode.
        for mode in [0o640, 0o604, 0o620, 0o601, 0o644, 0o660] {
            let problem = problem_with(mode, false).unwrap();
            let shown = problem.to_string();
            assert!(matches!(
                problem.error,
                KeyFileError::Access(PrivateFileError::TooOpen { .. })
            ));
            assert!(shown.contains(&format!("mode 0{mode:o}")), "{shown}");
            assert!(shown.contains("chmod 600"), "{shown}");
            assert!(
                shown.contains("keys.allow_group_readable = true"),
                "{shown}"
            );
            assert!(problem.content_digest.is_none());
        }
        for mode in [0o640, 0o440, 0o660] {
            assert!(problem_with(mode, true).is_none(), "{mode:o}");
        }
        for mode in [0o644, 0o604, 0o642, 0o641] {
            let problem = problem_with(mode, true).unwrap();
            assert!(matches!(
                problem.error,
                KeyFileError::Access(PrivateFileError::TooOpen { .. })
            ));
            assert!(problem.to_string().contains("lets others access it"));
        }
    }

    #[test]
    fn symlinks_are_followed_and_the_target_mode_counts() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let target = outside.path().join("real");
        write_mode(&target, hex_key().as_bytes(), 0o600);
        symlink(&target, dir.path().join("linked.key")).unwrap();
        let scan = scan_dir(dir.path(), false).unwrap();
        assert!(scan.problems.is_empty(), "{:?}", scan.problems);
        assert!(scan.keys.contains_key(&key_id("linked")));

        fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).unwrap();
        let scan = scan_dir(dir.path(), false).unwrap();
        assert!(scan.keys.is_empty());
        assert!(matches!(
            scan.problems[0].error,
            KeyFileError::Access(PrivateFileError::TooOpen { mode: 0o644, .. })
        ));
    }

    #[test]
    fn kubernetes_secret_volume_layout() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("..2026_11_28_06_15_42.123456789");
        fs::create_dir(&data).unwrap();
        write_mode(&data.join("foo.key"), b64(&KEY_BYTES).as_bytes(), 0o440);
        symlink("..2026_11_28_06_15_42.123456789", dir.path().join("..data")).unwrap();
        symlink("..data/foo.key", dir.path().join("foo.key")).unwrap();

        let scan = scan_dir(dir.path(), true).unwrap();
        assert!(scan.problems.is_empty(), "{:?}", scan.problems);
        let ids: Vec<_> = scan.keys.keys().map(KeyId::as_str).collect();
        assert_eq!(ids, ["foo"]);

        // fsGroup's 0440 is refused unless group access is allowed.
        let scan = scan_dir(dir.path(), false).unwrap();
        assert!(scan.keys.is_empty());
        assert_eq!(scan.problems.len(), 1);
    }

    #[test]
    fn large_files_are_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        write_mode(&dir.path().join("big.key"), &[b'a'; 2048], 0o600);
        let scan = scan_dir(dir.path(), false).unwrap();
        let problem = &scan.problems[0];
        assert!(matches!(
            problem.error,
            KeyFileError::TooLarge { len: 2048 }
        ));
        assert!(problem.content_digest.is_none());
    }

    #[test]
    fn problems_carry_a_content_digest_and_never_key_material() {
        let dir = tempfile::tempdir().unwrap();
        let contents = format!(" {}\n", b64(&KEY_BYTES));
        write_mode(&dir.path().join("k.key"), contents.as_bytes(), 0o600);
        let hex_contents = format!("{}\n{}\n", hex_key(), hex_key());
        write_mode(&dir.path().join("l.key"), hex_contents.as_bytes(), 0o600);

        let scan = scan_dir(dir.path(), false).unwrap();
        assert_eq!(scan.problems.len(), 2);
        let digest: [u8; 32] = Sha256::digest(contents.as_bytes()).into();
        assert_eq!(scan.problems[0].content_digest, Some(digest));
        for problem in &scan.problems {
            assert!(problem.content_digest.is_some());
            assert_no_key_material(&problem.to_string());
            let debug = format!("{problem:?}");
            assert_no_key_material(&debug);
            assert!(debug.contains("<redacted>"));
        }
    }

    // ---- keyring ----

    #[test]
    fn active_is_the_greatest_id() {
        let keyring = Keyring::from_keys([
            (key_id("20261128T061542Z"), MasterKey::from_bytes([1; 32])),
            (key_id("prod"), MasterKey::from_bytes([2; 32])),
            (key_id("20271128T061542Z"), MasterKey::from_bytes([3; 32])),
        ]);
        assert_eq!(keyring.active(), Some(&key_id("prod")));
        assert_eq!(keyring.len(), 3);
        assert!(keyring.contains(&key_id("20261128T061542Z")));
        assert!(!keyring.contains(&key_id("other")));
        let ids: Vec<_> = keyring.ids().map(KeyId::as_str).collect();
        assert_eq!(ids, ["20261128T061542Z", "20271128T061542Z", "prod"]);
        assert_eq!(
            keyring.fingerprint(&key_id("prod")),
            Some(MasterKey::from_bytes([2; 32]).fingerprint())
        );
        assert_eq!(keyring.fingerprint(&key_id("other")), None);
        let debug = format!("{keyring:?}");
        assert!(debug.contains("prod") && !debug.contains("[2, 2"));
    }

    #[test]
    fn seal_open_and_reseal() {
        let place = Place::new("t1");
        let old = Keyring::from_keys([(key_id("a"), MasterKey::from_bytes([1; 32]))]);
        let sealed = old.seal(&place.location(), &value("sk-1")).unwrap();
        assert_eq!(sealed.key_id, key_id("a"));
        assert_eq!(
            old.open(&place.location(), &sealed)
                .unwrap()
                .expose_secret(),
            "sk-1"
        );

        let rotated = Keyring::from_keys([
            (key_id("a"), MasterKey::from_bytes([1; 32])),
            (key_id("b"), MasterKey::from_bytes([2; 32])),
        ]);
        let resealed = rotated.reseal(&place.location(), &sealed).unwrap();
        assert_eq!(resealed.key_id, key_id("b"));
        assert_eq!(
            rotated
                .open(&place.location(), &resealed)
                .unwrap()
                .expose_secret(),
            "sk-1"
        );

        let without_b = Keyring::from_keys([(key_id("a"), MasterKey::from_bytes([1; 32]))]);
        assert!(matches!(
            without_b.open(&place.location(), &resealed).err().unwrap(),
            CryptoError::MissingKey { key_id } if key_id.as_str() == "b"
        ));
        let elsewhere = Place::new("t2");
        assert!(matches!(
            rotated
                .reseal(&elsewhere.location(), &sealed)
                .err()
                .unwrap(),
            CryptoError::Unopenable { .. }
        ));
    }

    #[test]
    fn empty_keyring_cannot_seal() {
        let keyring = Keyring::empty();
        assert!(keyring.is_empty() && keyring.active().is_none());
        let place = Place::new("t1");
        let error = keyring.seal(&place.location(), &value("v")).err().unwrap();
        assert!(matches!(error, CryptoError::NoActiveKey));
        assert_eq!(error.to_string(), "no master key is loaded");
    }

    #[test]
    fn same_id_with_other_content_is_unopenable() {
        let place = Place::new("t1");
        let original = Keyring::from_keys([(key_id("a"), MasterKey::from_bytes([1; 32]))]);
        let replaced = Keyring::from_keys([(key_id("a"), MasterKey::from_bytes([9; 32]))]);
        let sealed = original.seal(&place.location(), &value("v")).unwrap();
        let error = replaced.open(&place.location(), &sealed).err().unwrap();
        assert_eq!(
            error.to_string(),
            "sealed value cannot be opened with master key a"
        );
    }

    #[test]
    fn invalid_plaintext_is_unopenable() {
        let place = Place::new("t1");
        let keyring = Keyring::from_keys([(key_id("a"), MasterKey::from_bytes([1; 32]))]);
        for plaintext in [&[0xff, 0xfe][..], b"a\0b"] {
            let sealed = seal::seal(&key_id("a"), &[1; 32], &place.location(), plaintext).unwrap();
            assert!(matches!(
                keyring.open(&place.location(), &sealed).err().unwrap(),
                CryptoError::Unopenable { .. }
            ));
        }
    }

    proptest::proptest! {
        #[test]
        fn keyring_round_trips_any_valid_value(text in "[^\\x00]{1,300}", key in proptest::prelude::any::<[u8; 32]>()) {
            let place = Place::new("t1");
            let keyring = Keyring::from_keys([(key_id("k"), MasterKey::from_bytes(key))]);
            let sealed = keyring.seal(&place.location(), &value(&text)).unwrap();
            let opened = keyring.open(&place.location(), &sealed).unwrap();
            proptest::prop_assert_eq!(opened.expose_secret(), text.as_str());
        }
    }

    // ---- reload ----

    fn scan_of(dir: &Path, keys: Vec<(&str, [u8; 32])>, problems: Vec<&str>) -> KeyDirScan {
        KeyDirScan {
            dir: dir.to_path_buf(),
            keys: keys
                .into_iter()
                .map(|(id, bytes)| (key_id(id), MasterKey::from_bytes(bytes)))
                .collect(),
            problems: problems
                .into_iter()
                .map(|id| KeyFileProblem {
                    path: dir.join(format!("{id}.key")),
                    key_id: Some(key_id(id)),
                    error: KeyFileError::Empty,
                    content_digest: Some([0; 32]),
                })
                .collect(),
        }
    }

    #[test]
    fn fingerprint_mismatch_is_refused_and_previous_kept() {
        let dir = Path::new("/keys");
        let good = MasterKey::from_bytes([1; 32]).fingerprint();
        let known = BTreeMap::from([(key_id("a"), good)]);
        let previous = Keyring::from_keys([(key_id("a"), MasterKey::from_bytes([1; 32]))]);

        let (keyring, problems) = Keyring::assemble(
            scan_of(dir, vec![("a", [9; 32])], vec![]),
            &known,
            Some(&previous),
        );
        assert_eq!(keyring.fingerprint(&key_id("a")), Some(good));
        let [problem] = problems.as_slice() else {
            panic!("{problems:?}")
        };
        assert_eq!(problem.path, Path::new("/keys/a.key"));
        assert_eq!(problem.key_id, Some(key_id("a")));
        assert!(matches!(
            problem.error,
            KeyFileError::FingerprintMismatch { expected, found }
                if expected == good && found == MasterKey::from_bytes([9; 32]).fingerprint()
        ));
        assert_no_key_material(&problem.to_string());

        // At start-up there is no previous copy: the id is simply not loaded.
        let (keyring, problems) =
            Keyring::assemble(scan_of(dir, vec![("a", [9; 32])], vec![]), &known, None);
        assert!(keyring.is_empty());
        assert_eq!(problems.len(), 1);

        // A matching file loads.
        let (keyring, problems) =
            Keyring::assemble(scan_of(dir, vec![("a", [1; 32])], vec![]), &known, None);
        assert_eq!(keyring.fingerprint(&key_id("a")), Some(good));
        assert!(problems.is_empty());
    }

    #[test]
    fn bad_edit_keeps_previous_copy() {
        let dir = Path::new("/keys");
        let previous = Keyring::from_keys([
            (key_id("a"), MasterKey::from_bytes([1; 32])),
            (key_id("b"), MasterKey::from_bytes([2; 32])),
        ]);
        let (keyring, problems) = Keyring::assemble(
            scan_of(dir, vec![("b", [2; 32])], vec!["a"]),
            &BTreeMap::new(),
            Some(&previous),
        );
        assert_eq!(keyring.len(), 2);
        assert_eq!(
            keyring.fingerprint(&key_id("a")),
            previous.fingerprint(&key_id("a"))
        );
        assert_eq!(problems.len(), 1);
        // The snapshots share key memory rather than copying it.
        assert!(Arc::ptr_eq(
            &keyring.entries[&key_id("a")].key,
            &previous.entries[&key_id("a")].key
        ));

        // A previous copy that contradicts the stored fingerprint is not kept.
        let known = BTreeMap::from([(key_id("a"), MasterKey::from_bytes([7; 32]).fingerprint())]);
        let (keyring, _) =
            Keyring::assemble(scan_of(dir, vec![], vec!["a"]), &known, Some(&previous));
        assert!(!keyring.contains(&key_id("a")));
    }

    #[test]
    fn removed_file_is_gone_and_new_files_load() {
        let dir = Path::new("/keys");
        let previous = Keyring::from_keys([
            (key_id("a"), MasterKey::from_bytes([1; 32])),
            (key_id("b"), MasterKey::from_bytes([2; 32])),
        ]);
        let (keyring, problems) = Keyring::assemble(
            scan_of(dir, vec![("b", [2; 32]), ("c", [3; 32])], vec![]),
            &BTreeMap::new(),
            Some(&previous),
        );
        assert!(problems.is_empty());
        let ids: Vec<_> = keyring.ids().map(KeyId::as_str).collect();
        assert_eq!(ids, ["b", "c"]);
        assert_eq!(keyring.active(), Some(&key_id("c")));
    }

    #[test]
    fn reload_from_disk_end_to_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.key");
        write_mode(&path, b64(&[1; 32]).as_bytes(), 0o600);
        let (first, problems) =
            Keyring::assemble(scan_dir(dir.path(), false).unwrap(), &BTreeMap::new(), None);
        assert!(problems.is_empty());
        let known = BTreeMap::from([(key_id("a"), first.fingerprint(&key_id("a")).unwrap())]);

        // A half-written file keeps the good key.
        write_mode(&path, &b64(&[1; 32]).as_bytes()[..20], 0o600);
        let (second, problems) =
            Keyring::assemble(scan_dir(dir.path(), false).unwrap(), &known, Some(&first));
        assert!(second.contains(&key_id("a")));
        assert!(matches!(
            problems[0].error,
            KeyFileError::WrongLength { .. } | KeyFileError::BadEncoding { .. }
        ));

        // Overwritten with another key: refused, good key kept.
        write_mode(&path, b64(&[5; 32]).as_bytes(), 0o600);
        let (third, problems) =
            Keyring::assemble(scan_dir(dir.path(), false).unwrap(), &known, Some(&second));
        assert_eq!(
            third.fingerprint(&key_id("a")),
            known.get(&key_id("a")).copied()
        );
        assert!(matches!(
            problems[0].error,
            KeyFileError::FingerprintMismatch { .. }
        ));

        fs::remove_file(&path).unwrap();
        let (fourth, problems) =
            Keyring::assemble(scan_dir(dir.path(), false).unwrap(), &known, Some(&third));
        assert!(fourth.is_empty() && problems.is_empty());
    }
}
