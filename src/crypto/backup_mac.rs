//! The MAC that authenticates a backup file (format 2, SPEC §11.1):
//! HMAC-SHA256 over the whole file, keyed with a key derived by
//! HKDF-SHA256 (no salt, info `exsec/backup/v2`) from the master key that
//! was active when the backup was taken.
//!
//! A plain checksum proves nothing against someone who can rewrite the
//! file: they recompute it. The MAC can only be made by a holder of the
//! master key. Deriving a separate key keeps the MAC and the sealing of
//! values apart: neither use can be turned against the other. This module
//! must not expose the derived key; callers only feed bytes and compare.

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Length of the MAC at the end of a backup.
pub const BACKUP_MAC_LEN: usize = 32;
/// HKDF `info` of the backup key; versioned with the backup format.
const HKDF_INFO: &[u8] = b"exsec/backup/v2";

/// A running HMAC-SHA256 over a backup's bytes. Holds no key bytes (only
/// HMAC's keyed hash states), has no `Debug`, `Clone` or `Serialize`.
pub struct BackupMac {
    mac: Hmac<Sha256>,
}

impl BackupMac {
    /// Keyed from a master key's bytes.
    pub(super) fn new(master_key: &[u8; super::MASTER_KEY_LEN]) -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        // 32 bytes are far below HKDF-SHA256's limit of 255 × 32.
        Hkdf::<Sha256>::new(None, master_key)
            .expand(HKDF_INFO, key.as_mut())
            .unwrap_or_else(|_| unreachable!("32 bytes is a valid HKDF-SHA256 output length"));
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC-SHA256 accepts a key of any length"));
        Self { mac }
    }

    /// Feeds the next bytes of the file.
    pub fn update(&mut self, bytes: &[u8]) {
        self.mac.update(bytes);
    }

    /// The MAC of everything fed.
    pub fn finalize(self) -> [u8; BACKUP_MAC_LEN] {
        self.mac.finalize().into_bytes().into()
    }

    /// Whether `tag` is the MAC of everything fed (constant time).
    pub fn verify(self, tag: &[u8]) -> bool {
        self.mac.verify_slice(tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mac_depends_on_key_and_every_byte() {
        let key = [7u8; 32];
        let mac = |key: &[u8; 32], bytes: &[u8]| {
            let mut mac = BackupMac::new(key);
            mac.update(bytes);
            mac.finalize()
        };
        let tag = mac(&key, b"exsec-backup 2\nrecords");
        let mut split = BackupMac::new(&key);
        split.update(b"exsec-backup 2\n");
        split.update(b"records");
        assert!(split.verify(&tag), "feeding in pieces gives the same MAC");
        assert_ne!(mac(&key, b"exsec-backup 2\nrecordz"), tag);
        assert_ne!(mac(&[8u8; 32], b"exsec-backup 2\nrecords"), tag);
        let mut wrong = BackupMac::new(&key);
        wrong.update(b"exsec-backup 2\nrecords");
        assert!(!wrong.verify(&tag[..31]));
    }

    #[test]
    fn the_key_is_hkdf_sha256_of_the_master_key() {
        // RFC 5869 HKDF-SHA256 with no salt, computed independently: the
        // derived key is HMAC(HMAC(zeros, ikm), info ‖ 0x01).
        let ikm = [1u8; 32];
        let prk = <Hmac<Sha256> as Mac>::new_from_slice(&[0u8; 32])
            .unwrap()
            .chain_update(ikm)
            .finalize()
            .into_bytes();
        let okm = <Hmac<Sha256> as Mac>::new_from_slice(&prk)
            .unwrap()
            .chain_update(b"exsec/backup/v2\x01")
            .finalize()
            .into_bytes();
        let expected = <Hmac<Sha256> as Mac>::new_from_slice(&okm)
            .unwrap()
            .chain_update(b"data")
            .finalize()
            .into_bytes();
        let mut mac = BackupMac::new(&ikm);
        mac.update(b"data");
        assert_eq!(mac.finalize().as_slice(), expected.as_slice());
    }
}
