//! The `tenant_data_keys` table (SPEC §11.4): each tenant's data keys as
//! wraps under a master key. A wrap counts in `key_usage` under its master
//! key, exactly like a record sealed directly under it, so key status and
//! `keys retire` see what a master key is still needed for. The store
//! never sees an unwrapped key.
//!
//! A tenant data-key rotation adds a newer wrap; from then on a value
//! freshly sealed under an older data key is refused
//! ([`Rejected::DataKeyChanged`]), so once one read snapshot finds no
//! value under an older key, none can appear later and its wrap may go
//! ([`Writer::retire_data_keys`]).

use std::collections::BTreeMap;

use redb::ReadableTable;

use super::error::{Context, Rejected};
use super::records::DataKeyRecord;
use super::{Snapshot, StoreError, Tables, Writer, decode, encode, tables};
use crate::audit::{NewEvent, event};
use crate::crypto::{DataKeyId, Fingerprint, SealedValue, Sealer, WrappedDataKey};
use crate::model::{KeyId, TenantId, Timestamp};

/// A tenant's wraps, oldest first: the last one seals new values.
pub type TenantWraps = Vec<(DataKeyId, WrappedDataKey)>;

/// One wrap read for re-wrapping by a master rotation, with the bytes it
/// was stored as (the write replaces it only if they are unchanged).
#[derive(Debug, Clone)]
pub struct RewrapCandidate {
    /// The tenant the data key belongs to.
    pub tenant: TenantId,
    /// The data key's id.
    pub dek_id: DataKeyId,
    /// The record as read.
    pub record: DataKeyRecord,
    stored: Vec<u8>,
}

/// A tenant's current data key, as people see it (`GET /v1/tenants/{id}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataKeyInfo {
    /// Its id.
    pub id: DataKeyId,
    /// When it was made.
    pub created_at: Timestamp,
    /// The master key that wraps it.
    pub master_key_id: KeyId,
    /// Older data keys the tenant still holds: values sealed under them
    /// wait to be re-sealed under this one.
    pub older: usize,
}

impl<T: Tables> Snapshot<T> {
    /// The current data key of `tenant` (`None`: it has none yet).
    pub fn data_key_info(&self, tenant: &TenantId) -> Result<Option<DataKeyInfo>, StoreError> {
        let mut keys = self.dated_data_keys(tenant)?;
        let older = keys.len().saturating_sub(1);
        Ok(keys.pop().map(|(created_at, id, wrapped)| DataKeyInfo {
            id,
            created_at,
            master_key_id: wrapped.key_id,
            older,
        }))
    }

    /// Tenants holding more than one data key: a data-key rotation of each
    /// is not finished (values under the older keys wait to be re-sealed,
    /// or their wraps to be retired). One scan of the wraps, O(tenants).
    pub fn tenants_with_older_data_keys(&self) -> Result<Vec<TenantId>, StoreError> {
        let table = self.txn().table(tables::TENANT_DATA_KEYS)?;
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for entry in table.iter().in_table(tables::TENANT_DATA_KEYS)? {
            let (key, _) = entry.in_table(tables::TENANT_DATA_KEYS)?;
            if let Some((tenant, _)) = key.value().split_once('/') {
                *counts.entry(tenant.to_owned()).or_default() += 1;
            }
        }
        Ok(counts
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .filter_map(|(tenant, _)| TenantId::parse(&tenant).ok())
            .collect())
    }

    /// The wraps of `tenant`, oldest first.
    pub fn data_keys(&self, tenant: &TenantId) -> Result<TenantWraps, StoreError> {
        Ok(self
            .dated_data_keys(tenant)?
            .into_iter()
            .map(|(_, dek_id, wrapped)| (dek_id, wrapped))
            .collect())
    }

    /// The id of the current data key of `tenant`.
    pub(super) fn current_data_key_id(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<DataKeyId>, StoreError> {
        Ok(self.dated_data_keys(tenant)?.pop().map(|(_, id, _)| id))
    }

    /// The wraps of `tenant` with their creation times, oldest first.
    fn dated_data_keys(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<(Timestamp, DataKeyId, WrappedDataKey)>, StoreError> {
        let table = self.txn().table(tables::TENANT_DATA_KEYS)?;
        let (start, end) = tables::prefix_range(tenant.as_str());
        let mut records = Vec::new();
        for entry in table
            .range(start.as_str()..end.as_str())
            .in_table(tables::TENANT_DATA_KEYS)?
        {
            let (key, bytes) = entry.in_table(tables::TENANT_DATA_KEYS)?;
            let record: DataKeyRecord = decode("tenant_data_keys", bytes.value())?;
            let Some((_, dek_id)) = key.value().split_once('/') else {
                continue;
            };
            let Some(dek_id) = DataKeyId::parse(dek_id) else {
                continue;
            };
            records.push((record.created_at, dek_id, record.wrapped));
        }
        records.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        Ok(records)
    }

    /// Number of wraps under each master key.
    pub fn wrap_counts(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let table = self.txn().table(tables::TENANT_DATA_KEYS)?;
        let mut out: BTreeMap<String, u64> = BTreeMap::new();
        for entry in table.iter().in_table(tables::TENANT_DATA_KEYS)? {
            let (_, bytes) = entry.in_table(tables::TENANT_DATA_KEYS)?;
            let record: DataKeyRecord = decode("tenant_data_keys", bytes.value())?;
            *out.entry(record.wrapped.key_id.to_string()).or_default() += 1;
        }
        Ok(out)
    }

    /// Every wrap not under `active`, up to `limit`, in table order.
    pub fn rewrap_page(
        &self,
        active: &KeyId,
        limit: usize,
    ) -> Result<Vec<RewrapCandidate>, StoreError> {
        let table = self.txn().table(tables::TENANT_DATA_KEYS)?;
        let mut out = Vec::new();
        for entry in table.iter().in_table(tables::TENANT_DATA_KEYS)? {
            let (key, bytes) = entry.in_table(tables::TENANT_DATA_KEYS)?;
            let record: DataKeyRecord = decode("tenant_data_keys", bytes.value())?;
            if record.wrapped.key_id == *active {
                continue;
            }
            let Some((tenant, dek_id)) = key.value().split_once('/') else {
                continue;
            };
            let (Ok(tenant), Some(dek_id)) = (TenantId::parse(tenant), DataKeyId::parse(dek_id))
            else {
                continue;
            };
            out.push(RewrapCandidate {
                tenant,
                dek_id,
                record,
                stored: bytes.value().to_vec(),
            });
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }
}

impl Writer {
    /// Stores `wrapped` as the new current data key of `tenant` if the
    /// tenant's current one is still `replacing` (`None`: the tenant has
    /// none); otherwise a concurrent writer got there first and nothing is
    /// stored. Returns the tenant's wraps as they now are. `fingerprint` is
    /// that of the master key of the wrap.
    pub fn add_data_key(
        &mut self,
        tenant: &TenantId,
        replacing: Option<&DataKeyId>,
        dek_id: &DataKeyId,
        wrapped: WrappedDataKey,
        fingerprint: Fingerprint,
    ) -> Result<TenantWraps, StoreError> {
        let existing = self.dated_data_keys(tenant)?;
        let current = existing.last();
        if current.map(|(_, id, _)| id) != replacing {
            return self.data_keys(tenant);
        }
        self.owner_tenant(&crate::model::Scope::Tenant(tenant.clone()))?;
        self.remember_fingerprint(&wrapped.key_id, fingerprint)?;
        // Strictly newer than the current key, whatever the clock says.
        let created_at = match current {
            Some((newest, _, _)) => self.now().max(Timestamp(newest.0.saturating_add(1))),
            None => self.now(),
        };
        let record = DataKeyRecord {
            wrapped,
            created_at,
        };
        let encoded = encode("tenant_data_keys", &record)?;
        self.txn()
            .table(tables::TENANT_DATA_KEYS)?
            .insert(data_key_name(tenant, dek_id).as_str(), encoded.as_slice())
            .in_table(tables::TENANT_DATA_KEYS)?;
        self.adjust_usage(&record.wrapped.key_id, 1)?;
        self.data_keys(tenant)
    }

    /// Makes `wrapped` the current data key of `tenant`, whatever its
    /// current one is (a tenant data-key rotation, SPEC §11.4), and audits
    /// `tenant.data_key_rotated` (ids only). Values sealed under the older
    /// keys stay as they are until the re-sealing job moves them.
    pub fn rotate_data_key(
        &mut self,
        tenant: &TenantId,
        dek_id: &DataKeyId,
        wrapped: WrappedDataKey,
        fingerprint: Fingerprint,
        actor: &str,
    ) -> Result<DataKeyInfo, StoreError> {
        let previous = self.data_keys(tenant)?.pop().map(|(id, _)| id);
        let master_key_id = wrapped.key_id.clone();
        self.add_data_key(tenant, previous.as_ref(), dek_id, wrapped, fingerprint)?;
        let mut audit = NewEvent::new(event::TENANT_DATA_KEY_ROTATED, actor)
            .tenant(tenant.as_str())
            .with("data_key_id", dek_id.as_str())
            .with("master_key_id", master_key_id.as_str());
        if let Some(previous) = &previous {
            audit = audit.with("previous_data_key_id", previous.as_str());
        }
        self.audit(audit)?;
        self.data_key_info(tenant)?
            .filter(|info| info.id == *dek_id)
            .ok_or_else(|| unreachable_missing(tenant))
    }

    /// Deletes the wraps of `tenant` named in `unused`, each audited
    /// `tenant.data_key_retired`; returns the ids it deleted. The caller
    /// found no value under them in one read snapshot in which none of
    /// them was current: no value can have been sealed under them since
    /// (`Writer::check_current_data_key`). The current key is never
    /// deleted, nor a wrap that is gone already.
    pub fn retire_data_keys(
        &mut self,
        tenant: &TenantId,
        unused: &[DataKeyId],
        actor: &str,
    ) -> Result<Vec<DataKeyId>, StoreError> {
        let wraps = self.data_keys(tenant)?;
        let Some((current, _)) = wraps.last() else {
            return Ok(Vec::new());
        };
        let mut retired = Vec::new();
        for (dek_id, wrapped) in &wraps {
            if dek_id == current || !unused.contains(dek_id) {
                continue;
            }
            self.txn()
                .table(tables::TENANT_DATA_KEYS)?
                .remove(data_key_name(tenant, dek_id).as_str())
                .in_table(tables::TENANT_DATA_KEYS)?;
            self.adjust_usage(&wrapped.key_id, -1)?;
            self.audit(
                NewEvent::new(event::TENANT_DATA_KEY_RETIRED, actor)
                    .tenant(tenant.as_str())
                    .with("data_key_id", dek_id.as_str())
                    .with("current_data_key_id", current.as_str()),
            )?;
            retired.push(dek_id.clone());
        }
        Ok(retired)
    }

    /// Refuses a value freshly sealed under a data key of `tenant` that is
    /// not its current one (a rotation committed while it was sealed):
    /// [`Rejected::DataKeyChanged`]. Values under a master key pass (they
    /// are moved under data keys by the re-sealing job).
    pub(super) fn check_current_data_key(
        &self,
        tenant: &TenantId,
        sealed: &SealedValue,
    ) -> Result<(), StoreError> {
        let Sealer::DataKey(dek_id) = &sealed.sealer else {
            return Ok(());
        };
        if self.current_data_key_id(tenant)?.as_ref() == Some(dek_id) {
            return Ok(());
        }
        Err(Rejected::DataKeyChanged {
            tenant: tenant.clone(),
        }
        .into())
    }

    /// Replaces each candidate's wrap with its re-wrap if the stored record
    /// is unchanged since it was read, moving the key-usage counts; returns
    /// how many it replaced. `fingerprint` is that of the new wraps' key.
    pub fn rewrap_batch(
        &mut self,
        batch: &[(RewrapCandidate, WrappedDataKey)],
        fingerprint: Fingerprint,
    ) -> Result<u64, StoreError> {
        let Some((_, first)) = batch.first() else {
            return Ok(0);
        };
        self.remember_fingerprint(&first.key_id.clone(), fingerprint)?;
        let mut written = 0u64;
        for (candidate, wrapped) in batch {
            let name = data_key_name(&candidate.tenant, &candidate.dek_id);
            let key = name.as_str();
            let unchanged = {
                let table = self.txn().table(tables::TENANT_DATA_KEYS)?;
                table
                    .get(key)
                    .in_table(tables::TENANT_DATA_KEYS)?
                    .is_some_and(|bytes| bytes.value() == candidate.stored.as_slice())
            };
            if !unchanged {
                continue;
            }
            let record = DataKeyRecord {
                wrapped: wrapped.clone(),
                created_at: candidate.record.created_at,
            };
            let encoded = encode("tenant_data_keys", &record)?;
            self.txn()
                .table(tables::TENANT_DATA_KEYS)?
                .insert(key, encoded.as_slice())
                .in_table(tables::TENANT_DATA_KEYS)?;
            self.adjust_usage(&candidate.record.wrapped.key_id, -1)?;
            self.adjust_usage(&wrapped.key_id, 1)?;
            written += 1;
        }
        Ok(written)
    }

    /// Removes every data key of `tenant` (tenant deletion, shredding);
    /// returns how many.
    pub(super) fn remove_data_keys(&mut self, tenant: &TenantId) -> Result<u64, StoreError> {
        let wraps = self.data_keys(tenant)?;
        for (dek_id, wrapped) in &wraps {
            self.txn()
                .table(tables::TENANT_DATA_KEYS)?
                .remove(data_key_name(tenant, dek_id).as_str())
                .in_table(tables::TENANT_DATA_KEYS)?;
            self.adjust_usage(&wrapped.key_id, -1)?;
        }
        Ok(wraps.len() as u64)
    }
}

/// A key just added in this transaction cannot be missing; if it is, the
/// table is not what this code wrote.
fn unreachable_missing(tenant: &TenantId) -> StoreError {
    StoreError::CorruptKey {
        table: "tenant_data_keys",
        key: tenant.to_string(),
    }
}

/// The table key of one data key: `{tenant}/{dek_id}`.
fn data_key_name(tenant: &TenantId, dek_id: &DataKeyId) -> String {
    format!("{tenant}/{dek_id}")
}
