//! Master key material: the 32-byte key (zeroized on drop, no `Debug`,
//! `Clone` or `Serialize`) and its fingerprint, the keyed hash the store
//! remembers to notice a key file replaced under the same id. Nothing here
//! reads files or knows about the key directory.

use std::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::CryptoError;

/// Length of a master key in bytes.
pub const MASTER_KEY_LEN: usize = 32;
/// What the fingerprint HMAC is computed over; versioned like the AAD.
const FINGERPRINT_CONTEXT: &[u8] = b"exsec/key-fingerprint/v1";

/// A 32-byte master key. Zeroized on drop; no `Debug`, `Clone` or
/// `Serialize`. Keyring snapshots share keys through `Arc`.
pub struct MasterKey([u8; MASTER_KEY_LEN]);

impl MasterKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut key = Self::zeroed();
        getrandom::fill(&mut key.0).map_err(|source| CryptoError::Random {
            source: super::random_error(source),
        })?;
        Ok(key)
    }

    /// An all-zero key for a parser to fill in place, so that no
    /// unzeroized copy of the bytes is left behind.
    pub(super) fn zeroed() -> Self {
        Self([0; MASTER_KEY_LEN])
    }

    /// The key bytes, to fill a [`MasterKey::zeroed`] key.
    pub(super) fn bytes_mut(&mut self) -> &mut [u8; MASTER_KEY_LEN] {
        &mut self.0
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::key_testing::KEY_BYTES;

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
}
