//! Re-sealing support for key rotation: pages of records in key order (the
//! live secrets, then the kept older versions), and a batch write that
//! replaces a record's sealed value only if the record is still exactly
//! the one that was read. `version` and `updated_at` stay
//! as they are, and no per-record audit event is written: re-sealing
//! changes no value.

use std::collections::BTreeMap;

use redb::ReadableTable;

use super::error::Context;
use super::records::{SecretRecord, SecretVersionRecord, VersionValue};
use super::{Snapshot, StoreError, Tables, Writer, decode, encode, tables};
use crate::crypto::{Fingerprint, SealedValue};
use crate::model::KeyId;

/// Cursors into the history table start with this; a secret's table key
/// starts with its scope tag, never with it.
const VERSIONS_CURSOR: &str = "versions:";

/// One record read for re-sealing: its table key, its content, and the
/// bytes it was stored as.
#[derive(Debug, Clone)]
pub struct ResealCandidate {
    /// The secret's table key.
    pub name: String,
    /// The record as read (for a kept older version: that version's
    /// value and metadata).
    pub record: SecretRecord,
    /// `Some(version)` for a kept older version (table
    /// `external_secret_versions`), `None` for the live record.
    kept: Option<u64>,
    /// The stored bytes as read. The write compares them instead of
    /// decoding the record again: equal bytes mean nothing was written to
    /// the record since (same value, version, `updated_at` and key).
    stored: Vec<u8>,
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
        let mut out: Vec<ResealCandidate> = Vec::with_capacity(limit.min(4096));
        let history_after = match after.and_then(|a| a.strip_prefix(VERSIONS_CURSOR)) {
            Some(rest) => Some(parse_versions_cursor(rest)?),
            None => {
                if self.live_page(active, after, limit, &mut out)? {
                    return Ok(page_end(out));
                }
                None
            }
        };
        let full = self.kept_page(active, history_after, limit, &mut out)?;
        if full {
            return Ok(page_end(out));
        }
        Ok((out, None))
    }

    /// Live records after `after` not under `active`; true when `out`
    /// reached `limit`.
    fn live_page(
        &self,
        active: &KeyId,
        after: Option<&str>,
        limit: usize,
        out: &mut Vec<ResealCandidate>,
    ) -> Result<bool, StoreError> {
        let secrets = self.txn().table(tables::SECRETS)?;
        let range = match after {
            Some(after) => secrets
                .range::<&str>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
                .in_table(tables::SECRETS)?,
            None => secrets.range::<&str>(..).in_table(tables::SECRETS)?,
        };
        for entry in range {
            let (name, bytes) = entry.in_table(tables::SECRETS)?;
            let record: SecretRecord = decode("external_secrets", bytes.value())?;
            if record.sealed.key_id != *active {
                out.push(ResealCandidate {
                    name: name.value().to_owned(),
                    record,
                    kept: None,
                    stored: bytes.value().to_vec(),
                });
                if out.len() == limit {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Kept older versions after `after` whose value is not under
    /// `active`; true when `out` reached `limit`.
    fn kept_page(
        &self,
        active: &KeyId,
        after: Option<(String, u64)>,
        limit: usize,
        out: &mut Vec<ResealCandidate>,
    ) -> Result<bool, StoreError> {
        let versions = self.txn().table(tables::SECRET_VERSIONS)?;
        let range = match &after {
            Some((name, version)) => versions
                .range::<(&str, u64)>((
                    std::ops::Bound::Excluded((name.as_str(), *version)),
                    std::ops::Bound::Unbounded,
                ))
                .in_table(tables::SECRET_VERSIONS)?,
            None => versions
                .range::<(&str, u64)>(..)
                .in_table(tables::SECRET_VERSIONS)?,
        };
        for entry in range {
            let (key, bytes) = entry.in_table(tables::SECRET_VERSIONS)?;
            let kept: SecretVersionRecord = decode("external_secret_versions", bytes.value())?;
            let VersionValue::Sealed(sealed) = kept.value else {
                continue;
            };
            if sealed.key_id == *active {
                continue;
            }
            let (name, version) = key.value();
            out.push(ResealCandidate {
                name: name.to_owned(),
                record: SecretRecord {
                    scope: kept.scope,
                    provider: kept.provider,
                    key: kept.key,
                    created_at: kept.created_at,
                    updated_at: kept.created_at,
                    version,
                    sealed,
                },
                kept: Some(version),
                stored: bytes.value().to_vec(),
            });
            if out.len() == limit {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl ResealCandidate {
    /// Where the next page starts after this record.
    fn cursor(&self) -> String {
        match self.kept {
            None => self.name.clone(),
            Some(version) => format!("{VERSIONS_CURSOR}{version}:{}", self.name),
        }
    }
}

/// A full page and the cursor after its last record.
fn page_end(out: Vec<ResealCandidate>) -> (Vec<ResealCandidate>, Option<String>) {
    let cursor = out.last().map(ResealCandidate::cursor);
    (out, cursor)
}

/// `{version}:{name}` of a history cursor.
fn parse_versions_cursor(rest: &str) -> Result<(String, u64), StoreError> {
    rest.split_once(':')
        .and_then(|(version, name)| Some((name.to_owned(), version.parse().ok()?)))
        .ok_or_else(|| StoreError::CorruptKey {
            table: "external_secret_versions",
            key: rest.to_owned(),
        })
}

impl Writer {
    /// Replaces the sealed value of every candidate whose stored record is
    /// unchanged since it was read, and moves the key-usage counts with
    /// them; returns how many it replaced. Records changed or deleted
    /// meanwhile are left as they are (a newer value is never
    /// overwritten). `fingerprint` is that of the key that sealed the new
    /// values.
    pub fn reseal_batch(
        &mut self,
        batch: &[(ResealCandidate, SealedValue)],
        fingerprint: Fingerprint,
    ) -> Result<u64, StoreError> {
        let Some((_, first)) = batch.first() else {
            return Ok(0);
        };
        self.remember_fingerprint(&first.key_id.clone(), fingerprint)?;
        // key id → records that left it (negative) or joined it (positive).
        let mut moved: BTreeMap<KeyId, i64> = BTreeMap::new();
        let mut written = 0u64;
        for (candidate, sealed) in batch {
            let replaced = match candidate.kept {
                None => self.reseal_live(candidate, sealed)?,
                Some(version) => self.reseal_kept(candidate, version, sealed)?,
            };
            if !replaced {
                continue;
            }
            *moved
                .entry(candidate.record.sealed.key_id.clone())
                .or_default() -= 1;
            *moved.entry(sealed.key_id.clone()).or_default() += 1;
            written += 1;
        }
        for (key_id, delta) in moved {
            self.adjust_usage(&key_id, delta)?;
        }
        Ok(written)
    }

    /// Replaces the live record's value if it is as read.
    fn reseal_live(
        &mut self,
        candidate: &ResealCandidate,
        sealed: &SealedValue,
    ) -> Result<bool, StoreError> {
        let mut secrets = self.txn().table(tables::SECRETS)?;
        let unchanged = secrets
            .get(candidate.name.as_str())
            .in_table(tables::SECRETS)?
            .is_some_and(|bytes| bytes.value() == candidate.stored.as_slice());
        if !unchanged {
            return Ok(false);
        }
        let record = SecretRecord {
            sealed: sealed.clone(),
            ..candidate.record.clone()
        };
        let encoded = encode("external_secrets", &record)?;
        secrets
            .insert(candidate.name.as_str(), encoded.as_slice())
            .in_table(tables::SECRETS)?;
        Ok(true)
    }

    /// Replaces a kept version's value if its entry is as read.
    fn reseal_kept(
        &mut self,
        candidate: &ResealCandidate,
        version: u64,
        sealed: &SealedValue,
    ) -> Result<bool, StoreError> {
        let mut versions = self.txn().table(tables::SECRET_VERSIONS)?;
        let key = (candidate.name.as_str(), version);
        let stored = versions
            .get(key)
            .in_table(tables::SECRET_VERSIONS)?
            .filter(|bytes| bytes.value() == candidate.stored.as_slice())
            .map(|bytes| decode::<SecretVersionRecord>("external_secret_versions", bytes.value()))
            .transpose()?;
        let Some(kept) = stored else {
            return Ok(false);
        };
        let entry = SecretVersionRecord {
            value: VersionValue::Sealed(sealed.clone()),
            ..kept
        };
        let encoded = encode("external_secret_versions", &entry)?;
        versions
            .insert(key, encoded.as_slice())
            .in_table(tables::SECRET_VERSIONS)?;
        Ok(true)
    }
}
