//! Re-sealing support (SPEC §11.4): pages of values to seal again, in key
//! order (the live secrets, then the kept older versions) — values sealed
//! directly under a master key (moved under their tenant's data key), or
//! one tenant's values under its older data keys (a tenant data-key
//! rotation) — and a batch write that replaces a value only if its record
//! is still exactly the one that was read. `version` and `updated_at` stay
//! as they are, and no per-record audit event is written: re-sealing
//! changes no value. A master rotation pages no value: it re-wraps data
//! keys instead (`data_keys`).

use std::collections::BTreeMap;
use std::ops::Bound;

use redb::ReadableTable;

use super::data_keys::TenantWraps;
use super::error::Context;
use super::records::{SecretRecord, SecretVersionRecord, VersionValue};
use super::{Snapshot, StoreError, Tables, Writer, decode, encode, tables};
use crate::crypto::{DataKeyId, Fingerprint, SealedValue, Sealer};
use crate::model::{AppId, KeyId, Scope, ScopeKind, TenantId};

/// Cursors into the history table start with this; a secret's table key
/// starts with its scope tag, never with it.
const VERSIONS_CURSOR: &str = "versions:";

/// One record read for re-sealing: its table key, its content, and the
/// bytes it was stored as.
#[derive(Debug, Clone)]
pub struct ResealCandidate {
    /// The secret's table key.
    pub name: String,
    /// The tenant the record belongs to (itself, or its app's).
    pub tenant: TenantId,
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

/// A page of values to move under data keys: the records, the cursor to
/// continue from (`None` once both tables were read to their end), and the
/// wraps of every tenant they belong to (read in the same transaction).
pub struct ResealPage {
    /// The records, in key order (live ones before kept versions).
    pub candidates: Vec<ResealCandidate>,
    /// Where the next page starts (exclusive).
    pub next: Option<String>,
    /// Each tenant of the page and its wraps (empty: it has no data key).
    pub wraps: BTreeMap<TenantId, TenantWraps>,
}

/// Which values a page holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResealScope {
    /// Values sealed directly under a master key (any: SPEC §11.4 moves
    /// them all under their tenant's data key), in every scope.
    MasterSealed,
    /// The values of one tenant and its apps sealed under one of its data
    /// keys other than `current` (a tenant data-key rotation).
    OlderDataKeys {
        /// The tenant.
        tenant: TenantId,
        /// Its current data key, which the values move under.
        current: DataKeyId,
    },
}

impl ResealScope {
    /// The one tenant whose values the scope covers, if it is one.
    fn tenant(&self) -> Option<&TenantId> {
        match self {
            Self::MasterSealed => None,
            Self::OlderDataKeys { tenant, .. } => Some(tenant),
        }
    }

    /// Whether a stored value belongs to the page.
    fn wants(&self, sealed: &SealedValue) -> bool {
        match self {
            Self::MasterSealed => sealed.master_key_id().is_some(),
            Self::OlderDataKeys { current, .. } => {
                matches!(&sealed.sealer, Sealer::DataKey(id) if id != current)
            }
        }
    }
}

/// A range of secret names (`end` exclusive, `None`: to the end).
struct NameRange {
    start: String,
    end: Option<String>,
}

impl NameRange {
    /// Whether every name of the range sorts at or before `after`.
    fn passed(&self, after: &str) -> bool {
        self.end.as_deref().is_some_and(|end| after >= end)
    }
}

impl<T: Tables> Snapshot<T> {
    /// Up to `limit` values of `scope` after `after` (exclusive), live
    /// records first, then kept versions.
    pub fn reseal_page(
        &self,
        scope: &ResealScope,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ResealPage, StoreError> {
        let ranges = self.name_ranges(scope.tenant())?;
        let mut page = PageBuilder::new(limit);
        let history_after = match after.and_then(|a| a.strip_prefix(VERSIONS_CURSOR)) {
            Some(rest) => Some(parse_versions_cursor(rest)?),
            None => {
                if self.live_page(scope, &ranges, after, &mut page)? {
                    return Ok(page.full());
                }
                None
            }
        };
        if self.kept_page(scope, &ranges, history_after, &mut page)? {
            return Ok(page.full());
        }
        Ok(page.page)
    }

    /// How many values (live records and kept versions) of `tenant` and its
    /// apps each of its data keys seals, in this one snapshot (values under
    /// a master key are not counted).
    pub fn data_key_use(&self, tenant: &TenantId) -> Result<BTreeMap<DataKeyId, u64>, StoreError> {
        let mut counts: BTreeMap<DataKeyId, u64> = BTreeMap::new();
        let mut count = |sealed: &SealedValue| {
            if let Sealer::DataKey(id) = &sealed.sealer {
                *counts.entry(id.clone()).or_default() += 1;
            }
        };
        let ranges = self.name_ranges(Some(tenant))?;
        let secrets = self.txn().table(tables::SECRETS)?;
        let versions = self.txn().table(tables::SECRET_VERSIONS)?;
        for range in &ranges {
            let end = range
                .end
                .as_deref()
                .map_or(Bound::Unbounded, Bound::Excluded);
            for entry in secrets
                .range::<&str>((Bound::Included(range.start.as_str()), end))
                .in_table(tables::SECRETS)?
            {
                let (_, bytes) = entry.in_table(tables::SECRETS)?;
                let record: SecretRecord = decode("external_secrets", bytes.value())?;
                count(&record.sealed);
            }
            let end = range
                .end
                .as_deref()
                .map_or(Bound::Unbounded, |end| Bound::Excluded((end, 0)));
            for entry in versions
                .range::<(&str, u64)>((Bound::Included((range.start.as_str(), 0)), end))
                .in_table(tables::SECRET_VERSIONS)?
            {
                let (_, bytes) = entry.in_table(tables::SECRET_VERSIONS)?;
                let kept: SecretVersionRecord = decode("external_secret_versions", bytes.value())?;
                if let VersionValue::Sealed(sealed) = &kept.value {
                    count(sealed);
                }
            }
        }
        Ok(counts)
    }

    /// The secret names of `tenant` (its own scope and each of its apps'),
    /// in key order; every name without one.
    fn name_ranges(&self, tenant: Option<&TenantId>) -> Result<Vec<NameRange>, StoreError> {
        let Some(tenant) = tenant else {
            return Ok(vec![NameRange {
                start: String::new(),
                end: None,
            }]);
        };
        let owners = std::iter::once((ScopeKind::Tenant, tenant.to_string())).chain(
            self.app_ids_of(tenant)?
                .into_iter()
                .map(|app| (ScopeKind::App, app.to_string())),
        );
        let mut ranges: Vec<NameRange> = owners
            .map(|(kind, owner)| {
                let (start, end) = tables::secret_scope_range(kind.tag(), &owner);
                NameRange {
                    start,
                    end: Some(end),
                }
            })
            .collect();
        ranges.sort_by(|a, b| a.start.cmp(&b.start));
        Ok(ranges)
    }

    /// Live records of `scope` after `after`; true when the page is full.
    fn live_page(
        &self,
        scope: &ResealScope,
        ranges: &[NameRange],
        after: Option<&str>,
        page: &mut PageBuilder,
    ) -> Result<bool, StoreError> {
        let secrets = self.txn().table(tables::SECRETS)?;
        for range in ranges {
            if after.is_some_and(|after| range.passed(after)) {
                continue;
            }
            let start = match after {
                Some(after) if after >= range.start.as_str() => Bound::Excluded(after),
                _ => Bound::Included(range.start.as_str()),
            };
            let end = range
                .end
                .as_deref()
                .map_or(Bound::Unbounded, Bound::Excluded);
            for entry in secrets
                .range::<&str>((start, end))
                .in_table(tables::SECRETS)?
            {
                let (name, bytes) = entry.in_table(tables::SECRETS)?;
                let record: SecretRecord = decode("external_secrets", bytes.value())?;
                if !scope.wants(&record.sealed) {
                    continue;
                }
                let name = name.value().to_owned();
                if page.push(self, name, record, None, bytes.value())? {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Kept older versions of `scope` after `after`; true when the page is
    /// full.
    fn kept_page(
        &self,
        scope: &ResealScope,
        ranges: &[NameRange],
        after: Option<(String, u64)>,
        page: &mut PageBuilder,
    ) -> Result<bool, StoreError> {
        let versions = self.txn().table(tables::SECRET_VERSIONS)?;
        for range in ranges {
            if after.as_ref().is_some_and(|(name, _)| range.passed(name)) {
                continue;
            }
            let start = match &after {
                Some((name, version)) if name.as_str() >= range.start.as_str() => {
                    Bound::Excluded((name.as_str(), *version))
                }
                _ => Bound::Included((range.start.as_str(), 0)),
            };
            let end = range
                .end
                .as_deref()
                .map_or(Bound::Unbounded, |end| Bound::Excluded((end, 0)));
            for entry in versions
                .range::<(&str, u64)>((start, end))
                .in_table(tables::SECRET_VERSIONS)?
            {
                let (key, bytes) = entry.in_table(tables::SECRET_VERSIONS)?;
                let kept: SecretVersionRecord = decode("external_secret_versions", bytes.value())?;
                let VersionValue::Sealed(sealed) = kept.value else {
                    continue;
                };
                if !scope.wants(&sealed) {
                    continue;
                }
                let (name, version) = key.value();
                let record = SecretRecord {
                    scope: kept.scope,
                    provider: kept.provider,
                    key: kept.key,
                    created_at: kept.created_at,
                    updated_at: kept.created_at,
                    version,
                    sealed,
                };
                if page.push(self, name.to_owned(), record, Some(version), bytes.value())? {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

/// A page being filled: each record's tenant (an app's looked up once per
/// page) and that tenant's wraps.
struct PageBuilder {
    page: ResealPage,
    limit: usize,
    app_tenants: BTreeMap<AppId, Option<TenantId>>,
}

impl PageBuilder {
    fn new(limit: usize) -> Self {
        Self {
            page: ResealPage {
                candidates: Vec::with_capacity(limit.min(4096)),
                next: None,
                wraps: BTreeMap::new(),
            },
            limit,
            app_tenants: BTreeMap::new(),
        }
    }

    /// Adds one record; true when the page is full. A record of an app
    /// that is gone is left to the deletion in flight.
    fn push<T: Tables>(
        &mut self,
        snapshot: &Snapshot<T>,
        name: String,
        record: SecretRecord,
        kept: Option<u64>,
        stored: &[u8],
    ) -> Result<bool, StoreError> {
        let tenant = match &record.scope {
            Scope::Tenant(id) => id.clone(),
            Scope::App(id) => {
                if !self.app_tenants.contains_key(id) {
                    let tenant = snapshot.app(id)?.map(|app| app.tenant_id);
                    self.app_tenants.insert(id.clone(), tenant);
                }
                let Some(Some(tenant)) = self.app_tenants.get(id) else {
                    return Ok(false);
                };
                tenant.clone()
            }
        };
        if !self.page.wraps.contains_key(&tenant) {
            let wraps = snapshot.data_keys(&tenant)?;
            self.page.wraps.insert(tenant.clone(), wraps);
        }
        self.page.candidates.push(ResealCandidate {
            name,
            tenant,
            record,
            kept,
            stored: stored.to_vec(),
        });
        Ok(self.page.candidates.len() >= self.limit)
    }

    /// The full page with the cursor after its last record.
    fn full(mut self) -> ResealPage {
        self.page.next = self.page.candidates.last().map(ResealCandidate::cursor);
        self.page
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
    /// them (a value under a data key counts nowhere: its tenant's wrap
    /// does); returns how many it replaced. Records changed or deleted
    /// meanwhile are left as they are (a newer value is never
    /// overwritten), and so are values sealed under a data key that is no
    /// longer its tenant's current one (a rotation landed since the page
    /// was read; the next pass moves them). `fingerprint` is that of the
    /// active master key.
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
        let mut current: BTreeMap<&TenantId, Option<DataKeyId>> = BTreeMap::new();
        let mut written = 0u64;
        for (candidate, sealed) in batch {
            if let Sealer::DataKey(dek_id) = &sealed.sealer {
                let tenant_current = match current.get(&candidate.tenant) {
                    Some(id) => id.clone(),
                    None => {
                        let id = self.current_data_key_id(&candidate.tenant)?;
                        current.insert(&candidate.tenant, id.clone());
                        id
                    }
                };
                if tenant_current.as_ref() != Some(dek_id) {
                    continue;
                }
            }
            let replaced = match candidate.kept {
                None => self.reseal_live(candidate, sealed)?,
                Some(version) => self.reseal_kept(candidate, version, sealed)?,
            };
            if !replaced {
                continue;
            }
            if let Some(key_id) = candidate.record.sealed.master_key_id() {
                *moved.entry(key_id.clone()).or_default() -= 1;
            }
            if let Some(key_id) = sealed.master_key_id() {
                *moved.entry(key_id.clone()).or_default() += 1;
            }
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
