//! Master keys and sealing: key files, the key directory scan, the keyring
//! snapshot that seals and opens secret values and the running one
//! ([`SharedKeyring`]) that a reload swaps, tenant data keys (wrapped under
//! master keys, cached unwrapped in memory), the MAC that authenticates
//! backups, the secrets hash on pod templates, and `exsec keys generate`.
//!
//! This module is the only importer of `chacha20poly1305`, `chacha20`,
//! `hmac` and `hkdf`. It must not log key material or plaintext, must not
//! hold either outside zeroizing wrappers, and does no I/O beyond the key
//! directory and the OS random source (the store persists
//! [`SealedValue`]s and known [`Fingerprint`]s; the watcher decides when to
//! rescan and how to report [`KeyFileProblem`]s).

mod backup_mac;
mod data_key;
mod key_errors;
#[cfg(test)]
mod key_testing;
mod keydir;
mod keyfile;
mod keyparse;
mod keyring;
mod master_key;
mod nonce;
mod seal;
mod secrets_hash;
mod shared;

pub use backup_mac::{BACKUP_MAC_LEN, BackupMac};
pub use data_key::{
    DATA_KEY_CACHE_CAPACITY, DataKey, DataKeyCache, DataKeyId, TenantKeys, WrappedDataKey, wrap_aad,
};
pub use key_errors::{KeyEncoding, KeyFileError, KeyFileProblem, KeyringError, MAX_KEY_FILE_BYTES};
pub use keydir::{KeyDirScan, scan_dir};
pub use keyfile::{GeneratedKey, KeyfileError, generate_key_file};
pub use keyparse::parse_key_file;
pub use keyring::Keyring;
pub use master_key::{Fingerprint, MASTER_KEY_LEN, MasterKey};
pub use seal::{
    CryptoError, NONCE_LEN, SealedValue, Sealer, SecretLocation, TAG_LEN, aad, data_key_aad,
};
pub use secrets_hash::{HashedEntry, INSTALLATION_KEY_LEN, InstallationKey, secrets_hash};
pub use shared::SharedKeyring;

/// Turns a `getrandom` failure into an `io::Error` (getrandom's own error
/// type implements `std::error::Error` only with its `std` feature).
fn random_error(error: getrandom::Error) -> std::io::Error {
    match error.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code),
        None => std::io::Error::other(error.to_string()),
    }
}
