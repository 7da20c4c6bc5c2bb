//! Re-sealing support for moving records sealed directly under a master key
//! under their tenant's data key: pages of records in key order, and
//! a batch write that replaces a record's sealed value only if the record
//! is still exactly the one that was read. `version` and `updated_at` stay
//! as they are, and no per-record audit event is written: re-sealing
//! changes no value.

use std::collections::BTreeMap;

use redb::ReadableTable;

use super::data_keys::TenantWraps;
use super::error::Context;
use super::records::SecretRecord;
use super::{Snapshot, StoreError, Tables, Writer, decode, encode, tables};
use crate::crypto::{Fingerprint, SealedValue};
use crate::model::{AppId, KeyId, Scope, TenantId};

/// One record read for re-sealing: its table key, its content, and the
/// bytes it was stored as.
#[derive(Debug, Clone)]
pub struct ResealCandidate {
    /// The record's table key (also the page cursor).
    pub name: String,
    /// The tenant the record belongs to (itself, or its app's).
    pub tenant: TenantId,
    /// The record as read.
    pub record: SecretRecord,
    /// The stored bytes as read. The write compares them instead of
    /// decoding the record again: equal bytes mean nothing was written to
    /// the record since (same value, version, `updated_at` and key).
    stored: Vec<u8>,
}

/// A page of records to move under data keys: the records, the cursor to
/// continue from (`None` once the table was read to its end), and the
/// wraps of every tenant they belong to (read in the same transaction).
pub struct ResealPage {
    /// The records, in key order.
    pub candidates: Vec<ResealCandidate>,
    /// Where the next page starts (exclusive).
    pub next: Option<String>,
    /// Each tenant of the page and its wraps (empty: it has no data key).
    pub wraps: BTreeMap<TenantId, TenantWraps>,
}

impl<T: Tables> Snapshot<T> {
    /// Up to `limit` records after `after` (exclusive) in key order whose
    /// value is sealed directly under a master key (any: SPEC §11.4 moves
    /// them all under their tenant's data key; values under a data key are
    /// never re-sealed by a master rotation).
    pub fn reseal_page(&self, after: Option<&str>, limit: usize) -> Result<ResealPage, StoreError> {
        let secrets = self.txn().table(tables::SECRETS)?;
        let range = match after {
            Some(after) => secrets
                .range::<&str>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
                .in_table(tables::SECRETS)?,
            None => secrets.range::<&str>(..).in_table(tables::SECRETS)?,
        };
        let mut page = ResealPage {
            candidates: Vec::with_capacity(limit.min(4096)),
            next: None,
            wraps: BTreeMap::new(),
        };
        let mut app_tenants: BTreeMap<AppId, Option<TenantId>> = BTreeMap::new();
        for entry in range {
            let (name, bytes) = entry.in_table(tables::SECRETS)?;
            let record: SecretRecord = decode("external_secrets", bytes.value())?;
            if record.sealed.master_key_id().is_none() {
                continue;
            }
            let tenant = match &record.scope {
                Scope::Tenant(id) => id.clone(),
                Scope::App(id) => {
                    if !app_tenants.contains_key(id) {
                        let tenant = self.app(id)?.map(|app| app.tenant_id);
                        app_tenants.insert(id.clone(), tenant);
                    }
                    // An override whose app is gone is left to the deletion.
                    let Some(Some(tenant)) = app_tenants.get(id) else {
                        continue;
                    };
                    tenant.clone()
                }
            };
            if !page.wraps.contains_key(&tenant) {
                page.wraps.insert(tenant.clone(), self.data_keys(&tenant)?);
            }
            page.candidates.push(ResealCandidate {
                name: name.value().to_owned(),
                tenant,
                record,
                stored: bytes.value().to_vec(),
            });
            if page.candidates.len() == limit {
                page.next = page.candidates.last().map(|c| c.name.clone());
                return Ok(page);
            }
        }
        Ok(page)
    }
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
        if let Some(key_id) = first.master_key_id() {
            self.remember_fingerprint(&key_id.clone(), fingerprint)?;
        }
        // key id → records that left it (negative) or joined it (positive).
        let mut moved: BTreeMap<KeyId, i64> = BTreeMap::new();
        let mut written = 0u64;
        {
            let mut secrets = self.txn().table(tables::SECRETS)?;
            for (candidate, sealed) in batch {
                let unchanged = match secrets
                    .get(candidate.name.as_str())
                    .in_table(tables::SECRETS)?
                {
                    Some(bytes) => bytes.value() == candidate.stored.as_slice(),
                    None => false,
                };
                if !unchanged {
                    continue;
                }
                if let Some(key_id) = candidate.record.sealed.master_key_id() {
                    *moved.entry(key_id.clone()).or_default() -= 1;
                }
                if let Some(key_id) = sealed.master_key_id() {
                    *moved.entry(key_id.clone()).or_default() += 1;
                }
                let record = SecretRecord {
                    sealed: sealed.clone(),
                    ..candidate.record.clone()
                };
                let encoded = encode("external_secrets", &record)?;
                secrets
                    .insert(candidate.name.as_str(), encoded.as_slice())
                    .in_table(tables::SECRETS)?;
                written += 1;
            }
        }
        for (key_id, delta) in moved {
            self.adjust_usage(&key_id, delta)?;
        }
        Ok(written)
    }
}
