//! Small facts kept in the `meta` table: master key fingerprints, the
//! audit checkpoint and last verified position, and the last storage probe.

use std::collections::BTreeMap;

use redb::ReadableTable;

use super::error::{Context, Rejected};
use super::{Snapshot, StoreError, Tables, Writer, decode, encode, tables};
use crate::audit::Anchor;
use crate::crypto::{Fingerprint, INSTALLATION_KEY_LEN, InstallationKey};
use crate::model::KeyId;

impl<T: Tables> Snapshot<T> {
    /// Fingerprints of every master key that ever sealed a value.
    pub fn known_fingerprints(&self) -> Result<BTreeMap<KeyId, Fingerprint>, StoreError> {
        let meta = self.txn().table(tables::META)?;
        let (start, end) = (
            tables::META_FINGERPRINT_PREFIX.to_owned(),
            format!("{}\u{10ffff}", tables::META_FINGERPRINT_PREFIX),
        );
        let mut out = BTreeMap::new();
        for entry in meta
            .range(start.as_str()..end.as_str())
            .in_table(tables::META)?
        {
            let (name, bytes) = entry.in_table(tables::META)?;
            let id = name
                .value()
                .strip_prefix(tables::META_FINGERPRINT_PREFIX)
                .and_then(|id| KeyId::parse(id).ok());
            if let Some(id) = id {
                out.insert(id, decode("meta", bytes.value())?);
            }
        }
        Ok(out)
    }

    /// The key of the secrets hash, created when the file was prepared.
    pub fn installation_key(&self) -> Result<InstallationKey, StoreError> {
        let meta = self.txn().table(tables::META)?;
        let bytes = meta
            .get(tables::META_INSTALLATION_KEY)
            .in_table(tables::META)?;
        bytes
            .and_then(|b| <[u8; INSTALLATION_KEY_LEN]>::try_from(b.value()).ok())
            .map(InstallationKey::from_bytes)
            .ok_or_else(|| StoreError::CorruptKey {
                table: "meta",
                key: tables::META_INSTALLATION_KEY.to_owned(),
            })
    }

    /// The checkpoint the chain starts from after pruning (genesis if never pruned).
    pub fn audit_checkpoint(&self) -> Result<Anchor, StoreError> {
        let meta = self.txn().table(tables::META)?;
        match meta
            .get(tables::META_AUDIT_CHECKPOINT)
            .in_table(tables::META)?
        {
            Some(bytes) => decode("meta", bytes.value()),
            None => Ok(Anchor::GENESIS),
        }
    }

    /// The last audit position verified at start-up or by the daemon's
    /// upkeep, if any.
    pub fn audit_verified(&self) -> Result<Option<Anchor>, StoreError> {
        let meta = self.txn().table(tables::META)?;
        meta.get(tables::META_AUDIT_VERIFIED)
            .in_table(tables::META)?
            .map(|bytes| decode("meta", bytes.value()))
            .transpose()
    }
}

impl Writer {
    /// Writes a storage probe (`store::health`): the time, padded to the
    /// size of the largest secret value, so that a probe that commits
    /// proves room for any single write, not only for a tiny one (a full
    /// disk often still takes a few bytes inside the file). Overwritten by
    /// each probe. Not audited: it changes nothing a user owns.
    pub(super) fn record_storage_probe(&mut self) -> Result<(), StoreError> {
        let probe = (self.now(), vec![0u8; crate::model::MAX_VALUE_LEN]);
        let encoded = encode("meta", &probe)?;
        self.txn()
            .table(tables::META)?
            .insert(tables::META_STORAGE_PROBE, encoded.as_slice())
            .in_table(tables::META)?;
        Ok(())
    }

    /// Records `anchor` as verified: the next verification starts there.
    pub fn record_audit_verified(&mut self, anchor: Anchor) -> Result<(), StoreError> {
        let encoded = encode("meta", &anchor)?;
        self.txn()
            .table(tables::META)?
            .insert(tables::META_AUDIT_VERIFIED, encoded.as_slice())
            .in_table(tables::META)?;
        Ok(())
    }

    /// Records `fingerprint` for `key_id` the first time that key seals a
    /// value; refuses a different fingerprint under a known id.
    pub fn remember_fingerprint(
        &mut self,
        key_id: &KeyId,
        fingerprint: Fingerprint,
    ) -> Result<(), StoreError> {
        let name = format!("{}{key_id}", tables::META_FINGERPRINT_PREFIX);
        let mut meta = self.txn().table(tables::META)?;
        if let Some(bytes) = meta.get(name.as_str()).in_table(tables::META)? {
            let known: Fingerprint = decode("meta", bytes.value())?;
            if known != fingerprint {
                return Err(Rejected::KeyFingerprintMismatch {
                    key_id: key_id.to_string(),
                }
                .into());
            }
            return Ok(());
        }
        let encoded = encode("meta", &fingerprint)?;
        meta.insert(name.as_str(), encoded.as_slice())
            .in_table(tables::META)?;
        Ok(())
    }
}
