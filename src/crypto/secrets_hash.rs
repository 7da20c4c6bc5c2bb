//! `exsec.io/secrets-hash` (SPEC §11.2): a short fingerprint of an app's
//! effective set, written on the pod template so that pods roll exactly
//! when a value changed.
//!
//! HMAC-SHA256 keyed by the installation key — 32 random bytes the store
//! creates at first start — never by the master key: a master-key rotation
//! re-seals values without changing them, so it must restart nothing; and
//! a hash without a secret key would let anyone who reads the Deployment
//! test guesses of a value. Only the first 16 bytes are kept (32 hex
//! characters): an annotation, not a MAC anyone verifies.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Length of the installation key.
pub const INSTALLATION_KEY_LEN: usize = 32;

/// Domain separation: a hash of something else under the same key never
/// equals a secrets hash.
const DOMAIN: &[u8] = b"exsec/secrets-hash/v1";

/// The key of [`secrets_hash`]. No `Debug`: it is a secret.
#[derive(Clone)]
pub struct InstallationKey(Zeroizing<[u8; INSTALLATION_KEY_LEN]>);

impl InstallationKey {
    /// A fresh random key (first start).
    pub fn generate() -> std::io::Result<InstallationKey> {
        let mut bytes = Zeroizing::new([0u8; INSTALLATION_KEY_LEN]);
        getrandom::fill(bytes.as_mut()).map_err(super::random_error)?;
        Ok(InstallationKey(bytes))
    }

    /// The key as the store keeps it.
    pub fn from_bytes(bytes: [u8; INSTALLATION_KEY_LEN]) -> InstallationKey {
        InstallationKey(Zeroizing::new(bytes))
    }

    /// The bytes, for the store only.
    pub fn as_bytes(&self) -> &[u8; INSTALLATION_KEY_LEN] {
        &self.0
    }
}

/// One entry of the effective set: env var name, provider, value.
pub struct HashedEntry<'a> {
    /// The env var name.
    pub name: &'a str,
    /// The provider the value came from.
    pub provider: &'a str,
    /// The plaintext value.
    pub value: &'a [u8],
}

/// The secrets hash of a set: entries sorted by name, each field
/// length-prefixed (so no two sets share an input), 32 hex characters.
pub fn secrets_hash<'a>(
    key: &InstallationKey,
    entries: impl IntoIterator<Item = HashedEntry<'a>>,
) -> String {
    let mut entries: Vec<HashedEntry<'a>> = entries.into_iter().collect();
    entries.sort_by(|a, b| a.name.cmp(b.name));
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(DOMAIN);
    mac.update(&(entries.len() as u64).to_be_bytes());
    for entry in &entries {
        for field in [
            entry.name.as_bytes(),
            entry.provider.as_bytes(),
            entry.value,
        ] {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field);
        }
    }
    let digest = mac.finalize().into_bytes();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(name: &'a str, provider: &'a str, value: &'a str) -> HashedEntry<'a> {
        HashedEntry {
            name,
            provider,
            value: value.as_bytes(),
        }
    }

    #[test]
    fn the_hash_depends_on_every_field_and_not_on_order() {
        let key = InstallationKey::from_bytes([7; 32]);
        let base = secrets_hash(&key, [entry("A", "p", "1"), entry("B", "q", "2")]);
        assert_eq!(base.len(), 32);
        assert!(base.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            base,
            secrets_hash(&key, [entry("B", "q", "2"), entry("A", "p", "1")])
        );
        for other in [
            secrets_hash(&key, [entry("A", "p", "1"), entry("B", "q", "3")]),
            secrets_hash(&key, [entry("A", "p", "1"), entry("B", "r", "2")]),
            secrets_hash(&key, [entry("A", "p", "1"), entry("C", "q", "2")]),
            secrets_hash(&key, [entry("A", "p", "1")]),
            // Field boundaries count: "p1" + "" is not "p" + "1".
            secrets_hash(&key, [entry("A", "p1", ""), entry("B", "q", "2")]),
            secrets_hash(
                &InstallationKey::from_bytes([8; 32]),
                [entry("A", "p", "1"), entry("B", "q", "2")],
            ),
        ] {
            assert_ne!(base, other);
        }
        let empty = secrets_hash(&key, []);
        assert_eq!(empty, secrets_hash(&key, []));
        assert_ne!(empty, base);
    }

    #[test]
    fn generated_keys_differ() {
        let a = InstallationKey::generate().unwrap();
        let b = InstallationKey::generate().unwrap();
        assert_ne!(a.as_bytes(), b.as_bytes());
    }
}
