//! Re-sealing support for key rotation: pages of records in key order, and
//! a write that replaces a record's sealed value only if the record is
//! still the one that was read (same version, same sealing key). `version`
//! and `updated_at` stay as they are, and no per-record audit event is
//! written: re-sealing changes no value.

use redb::ReadableTable;

use super::records::SecretRecord;
use super::{Snapshot, StoreError, Tables, Writer, decode, tables};
use crate::crypto::{Fingerprint, SealedValue};
use crate::model::KeyId;

/// One record read for re-sealing: its table key and content.
#[derive(Debug, Clone)]
pub struct ResealCandidate {
    /// The record's table key (also the page cursor).
    pub name: String,
    /// The record as read.
    pub record: SecretRecord,
}

impl<T: Tables> Snapshot<T> {
    /// Up to `limit` records after `after` (exclusive) in key order whose
    /// value is not sealed under `active`. Returns them and the cursor to
    /// continue from (`None` once the table was read to its end).
    pub fn reseal_page(
        &self,
        active: &KeyId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<ResealCandidate>, Option<String>), StoreError> {
        let secrets = self.txn().table(tables::SECRETS)?;
        let range = match after {
            Some(after) => secrets
                .range::<&str>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))?,
            None => secrets.range::<&str>(..)?,
        };
        let mut out: Vec<ResealCandidate> = Vec::new();
        for entry in range {
            let (name, bytes) = entry?;
            let record: SecretRecord = decode("external_secrets", bytes.value())?;
            if record.sealed.key_id != *active {
                out.push(ResealCandidate {
                    name: name.value().to_owned(),
                    record,
                });
                if out.len() == limit {
                    let cursor = out.last().map(|c| c.name.clone());
                    return Ok((out, cursor));
                }
            }
        }
        Ok((out, None))
    }
}

impl Writer {
    /// Replaces the sealed value of `candidate` with `sealed` if the stored
    /// record is unchanged since it was read; returns whether it did.
    pub fn reseal(
        &mut self,
        candidate: &ResealCandidate,
        sealed: SealedValue,
        fingerprint: Fingerprint,
    ) -> Result<bool, StoreError> {
        let current = {
            let secrets = self.txn().open_table(tables::SECRETS)?;
            let bytes = secrets.get(candidate.name.as_str())?;
            bytes
                .map(|b| decode::<SecretRecord>("external_secrets", b.value()))
                .transpose()?
        };
        let Some(current) = current else {
            return Ok(false);
        };
        if current.version != candidate.record.version
            || current.sealed.key_id != candidate.record.sealed.key_id
            || current.updated_at != candidate.record.updated_at
        {
            return Ok(false);
        }
        self.remember_fingerprint(&sealed.key_id, fingerprint)?;
        let record = SecretRecord { sealed, ..current };
        self.store_secret(&record, Some(&candidate.record.sealed.key_id))?;
        Ok(true)
    }
}
