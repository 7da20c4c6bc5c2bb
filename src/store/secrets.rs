//! External secrets in both scopes: set, delete, list, and the inputs of
//! the effective set. Values arrive sealed; the write rules of SPEC §1 are
//! enforced here, inside the transaction that makes the change:
//! one provider per env var name within a scope (`env_name_taken`), and no
//! app's effective set above 1 MiB (`effective_set_too_large`).

use std::collections::{BTreeMap, BTreeSet};

use redb::ReadableTable;

use super::error::{Context, Missing, Rejected, not_found};
use super::records::SecretRecord;
use super::{Snapshot, StoreError, Tables, Writer, decode, encode, tables};
use crate::audit::{NewEvent, event};
use crate::crypto::{Fingerprint, SealedValue};
use crate::model::{AppId, EnvKey, KeyId, MAX_EFFECTIVE_SET_BYTES, Provider, Scope, TenantId};
use crate::resolve;

/// A secret write: the value already sealed (with the fingerprint of the
/// active master key, remembered on first use if it sealed the value
/// directly; a data key's master key was remembered with its wrap).
#[derive(Clone)]
pub struct PutSecret {
    /// Tenant default or app override.
    pub scope: Scope,
    /// Provider name.
    pub provider: Provider,
    /// Env var name.
    pub key: EnvKey,
    /// The sealed value.
    pub sealed: SealedValue,
    /// Fingerprint of the key that sealed it.
    pub fingerprint: Fingerprint,
}

/// What a secret write did.
#[derive(Debug, Clone)]
pub struct SecretWrite {
    /// The stored record (metadata and sealed value).
    pub record: SecretRecord,
    /// True when the key was new, false when a value was replaced.
    pub created: bool,
}

/// The stored inputs of an app's effective set.
#[derive(Debug, Clone)]
pub struct SecretLayout {
    /// The app's tenant.
    pub tenant_id: TenantId,
    /// The tenant's data keys, wrapped, oldest first.
    pub data_keys: super::data_keys::TenantWraps,
    /// Tenant-wide defaults.
    pub tenant: Vec<SecretRecord>,
    /// App overrides.
    pub app: Vec<SecretRecord>,
}

/// What [`Snapshot::secret_layout_up_to`] found.
#[derive(Debug)]
pub enum LayoutRead {
    /// The app does not exist.
    NoApp,
    /// The layout, within the limit.
    Found(SecretLayout),
    /// More records than the limit: read it with [`Snapshot::secret_layout`].
    TooLarge,
}

impl<T: Tables> Snapshot<T> {
    /// One secret record.
    pub fn secret(
        &self,
        scope: &Scope,
        provider: &Provider,
        key: &EnvKey,
    ) -> Result<Option<SecretRecord>, StoreError> {
        let secrets = self.txn().table(tables::SECRETS)?;
        let name = tables::secret_key(
            scope.kind().tag(),
            scope.owner(),
            provider.as_str(),
            key.as_str(),
        );
        let bytes = secrets.get(name.as_str()).in_table(tables::SECRETS)?;
        bytes
            .map(|b| decode("external_secrets", b.value()))
            .transpose()
    }

    /// Every secret of one scope, ordered by provider then key.
    pub fn secrets(&self, scope: &Scope) -> Result<Vec<SecretRecord>, StoreError> {
        Ok(self.secrets_up_to(scope, usize::MAX)?.unwrap_or_default())
    }

    /// The records of `scope` if it holds at most `max`; `None` as soon as
    /// it has more (nothing past the limit is decoded).
    fn secrets_up_to(
        &self,
        scope: &Scope,
        max: usize,
    ) -> Result<Option<Vec<SecretRecord>>, StoreError> {
        let secrets = self.txn().table(tables::SECRETS)?;
        let (start, end) = tables::secret_scope_range(scope.kind().tag(), scope.owner());
        let mut out = Vec::new();
        for entry in secrets
            .range(start.as_str()..end.as_str())
            .in_table(tables::SECRETS)?
        {
            if out.len() == max {
                return Ok(None);
            }
            out.push(decode(
                "external_secrets",
                entry.in_table(tables::SECRETS)?.1.value(),
            )?);
        }
        Ok(Some(out))
    }

    /// Tenant defaults and app overrides of one app: what resolve needs.
    /// `None` when the app does not exist.
    pub fn secret_layout(&self, app_id: &AppId) -> Result<Option<SecretLayout>, StoreError> {
        Ok(match self.secret_layout_up_to(app_id, usize::MAX)? {
            LayoutRead::Found(layout) => Some(layout),
            // TooLarge cannot happen without a limit.
            LayoutRead::NoApp | LayoutRead::TooLarge => None,
        })
    }

    /// [`Snapshot::secret_layout`] if the app's two scopes hold at most
    /// `max_records` together: a read small enough for an async worker.
    /// Stops decoding as soon as the limit is passed.
    pub fn secret_layout_up_to(
        &self,
        app_id: &AppId,
        max_records: usize,
    ) -> Result<LayoutRead, StoreError> {
        let Some(app) = self.app(app_id)? else {
            return Ok(LayoutRead::NoApp);
        };
        let Some(tenant) =
            self.secrets_up_to(&Scope::Tenant(app.tenant_id.clone()), max_records)?
        else {
            return Ok(LayoutRead::TooLarge);
        };
        let left = max_records.saturating_sub(tenant.len());
        let Some(own) = self.secrets_up_to(&Scope::App(app_id.clone()), left)? else {
            return Ok(LayoutRead::TooLarge);
        };
        Ok(LayoutRead::Found(SecretLayout {
            tenant,
            app: own,
            data_keys: self.data_keys(&app.tenant_id)?,
            tenant_id: app.tenant_id,
        }))
    }

    /// Number of secret records sealed under each master key.
    pub fn key_usage(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let usage = self.txn().table(tables::KEY_USAGE)?;
        let mut out = BTreeMap::new();
        for entry in usage.iter().in_table(tables::KEY_USAGE)? {
            let (id, count) = entry.in_table(tables::KEY_USAGE)?;
            out.insert(id.value().to_owned(), count.value());
        }
        Ok(out)
    }

    /// What a write needs to know of one scope, read from the table's keys
    /// and value lengths without decoding or copying a record: the stored
    /// size, and (for `name`, a `(provider, key)` about to be written)
    /// another provider that already sets that key. A write runs this over
    /// its whole scope, so it keeps nothing per record (a copy of every
    /// name per write was ~190 KB of garbage per write at 1,000 keys a
    /// scope, and the malloc arena that held it stayed large).
    fn scope_index(
        &self,
        scope: &Scope,
        name: Option<(&Provider, &EnvKey)>,
    ) -> Result<ScopeIndex, StoreError> {
        let secrets = self.txn().table(tables::SECRETS)?;
        let (start, end) = tables::secret_scope_range(scope.kind().tag(), scope.owner());
        let mut index = ScopeIndex::default();
        for entry in secrets
            .range(start.as_str()..end.as_str())
            .in_table(tables::SECRETS)?
        {
            let (stored, bytes) = entry.in_table(tables::SECRETS)?;
            let stored = stored.value();
            let (provider, key) = stored
                .strip_prefix(start.as_str())
                .and_then(|rest| rest.split_once('/'))
                .ok_or_else(|| StoreError::CorruptKey {
                    table: "external_secrets",
                    key: stored.to_owned(),
                })?;
            if let Some((wanted_provider, wanted_key)) = name
                && index.taken_by.is_none()
                && key == wanted_key.as_str()
                && provider != wanted_provider.as_str()
            {
                index.taken_by = Some(provider.to_owned());
            }
            index.bytes += stored.len() + bytes.value().len();
        }
        Ok(index)
    }

    /// Total number of secret records.
    pub fn secret_count(&self) -> Result<u64, StoreError> {
        use redb::ReadableTableMetadata;
        self.txn()
            .table(tables::SECRETS)?
            .len()
            .in_table(tables::SECRETS)
    }
}

impl Writer {
    /// Sets a secret (201 new / 200 replaced at the API), with its audit
    /// event, enforcing the env-name and size rules.
    pub fn put_secret(&mut self, put: PutSecret, actor: &str) -> Result<SecretWrite, StoreError> {
        let tenant_id = self.owner_tenant(&put.scope)?;
        let existing = self.secret(&put.scope, &put.provider, &put.key)?;
        let siblings = self.scope_index(&put.scope, Some((&put.provider, &put.key)))?;
        check_name_free(&siblings, &put.scope, &put.key)?;
        let fingerprint = put.fingerprint;
        let record = self.next_record(
            put.scope,
            put.provider,
            put.key,
            put.sealed,
            existing.as_ref(),
        )?;
        self.check_effective_sizes(&tenant_id, &record, siblings.bytes)?;
        let scope = record.scope.clone();
        let changed = BTreeSet::from([record.key.clone()]);
        let written =
            self.write_record(record, fingerprint, existing.as_ref(), &tenant_id, actor)?;
        self.queue_redeploys(&scope, &changed)?;
        Ok(written)
    }

    /// Refuses `key` when another provider sets it in `scope`.
    pub(super) fn check_env_name_free(
        &self,
        scope: &Scope,
        provider: &Provider,
        key: &EnvKey,
    ) -> Result<(), StoreError> {
        check_name_free(&self.scope_index(scope, Some((provider, key)))?, scope, key)
    }

    /// The record a write stores: a replaced one keeps its creation time
    /// and counts up; a new key counts on from its kept history (after a
    /// deletion's tombstone), or starts at version 1.
    pub(super) fn next_record(
        &self,
        scope: Scope,
        provider: Provider,
        key: EnvKey,
        sealed: SealedValue,
        existing: Option<&SecretRecord>,
    ) -> Result<SecretRecord, StoreError> {
        let now = self.now();
        let version = match existing {
            Some(existing) => existing.version + 1,
            None => {
                let name = tables::secret_key(
                    scope.kind().tag(),
                    scope.owner(),
                    provider.as_str(),
                    key.as_str(),
                );
                self.latest_version(&name)? + 1
            }
        };
        Ok(SecretRecord {
            scope,
            provider,
            key,
            created_at: existing.map_or(now, |e| e.created_at),
            updated_at: now,
            version,
            sealed,
        })
    }

    /// Stores a record the caller has checked (env-name and size rules)
    /// and appends `external_secret.created|updated`. Its value was freshly
    /// sealed: under a tenant data key that is no longer current it is
    /// refused (`data_keys`).
    pub(super) fn write_record(
        &mut self,
        record: SecretRecord,
        fingerprint: Fingerprint,
        existing: Option<&SecretRecord>,
        tenant_id: &TenantId,
        actor: &str,
    ) -> Result<SecretWrite, StoreError> {
        self.check_current_data_key(tenant_id, &record.sealed)?;
        if let Some(key_id) = record.sealed.master_key_id() {
            self.remember_fingerprint(key_id, fingerprint)?;
        }
        self.store_secret(&record, existing, actor)?;
        let created = existing.is_none();
        let kind = if created {
            event::SECRET_CREATED
        } else {
            event::SECRET_UPDATED
        };
        self.audit(secret_event(kind, actor, tenant_id, &record).with("version", record.version))?;
        Ok(SecretWrite { record, created })
    }

    /// Deletes one secret, with its audit event.
    pub fn delete_secret(
        &mut self,
        scope: &Scope,
        provider: &Provider,
        key: &EnvKey,
        actor: &str,
    ) -> Result<SecretRecord, StoreError> {
        let tenant_id = self.owner_tenant(scope)?;
        let Some(record) = self.secret(scope, provider, key)? else {
            return Err(not_found(Missing::Secret, format!("{provider}/{key}")));
        };
        self.delete_record(&record, &tenant_id, actor)?;
        Ok(record)
    }

    /// One secret's deletion on its own: removes the record (see
    /// [`Writer::remove_record`]) and queues the automatic redeploys it
    /// causes. A bulk write removes records itself and queues once for the
    /// whole set.
    pub(super) fn delete_record(
        &mut self,
        record: &SecretRecord,
        tenant_id: &TenantId,
        actor: &str,
    ) -> Result<(), StoreError> {
        self.remove_record(record, tenant_id, actor)?;
        self.queue_redeploys(&record.scope, &BTreeSet::from([record.key.clone()]))?;
        Ok(())
    }

    /// Removes a stored record (its value stays in the history, before a
    /// tombstone) and appends `external_secret.deleted`.
    pub(super) fn remove_record(
        &mut self,
        record: &SecretRecord,
        tenant_id: &TenantId,
        actor: &str,
    ) -> Result<(), StoreError> {
        let name = super::history::record_name(record);
        self.txn()
            .table(tables::SECRETS)?
            .remove(name.as_str())
            .in_table(tables::SECRETS)?;
        self.push_tombstone(record, actor)?;
        self.audit(secret_event(
            event::SECRET_DELETED,
            actor,
            tenant_id,
            record,
        ))?;
        Ok(())
    }

    /// Removes every secret of a scope (tenant or app deletion); the
    /// caller's audit event records the count.
    pub(super) fn remove_scope_secrets(&mut self, scope: &Scope) -> Result<u64, StoreError> {
        let records = self.secrets(scope)?;
        let (start, end) = tables::secret_scope_range(scope.kind().tag(), scope.owner());
        self.txn()
            .table(tables::SECRETS)?
            .retain_in(start.as_str()..end.as_str(), |_, _| false)
            .in_table(tables::SECRETS)?;
        for record in &records {
            self.count_sealed(&record.sealed, -1)?;
        }
        self.remove_scope_versions(scope)?;
        Ok(records.len() as u64)
    }

    /// Writes a record, counts its value in `key_usage` (under the master
    /// key that sealed it directly; a value under a data key counts nowhere:
    /// its tenant's wrap does) and records the version in the history (the
    /// replaced value stays there, counted as it was).
    pub(super) fn store_secret(
        &mut self,
        record: &SecretRecord,
        previous: Option<&SecretRecord>,
        actor: &str,
    ) -> Result<(), StoreError> {
        let name = super::history::record_name(record);
        let encoded = encode("external_secrets", record)?;
        self.txn()
            .table(tables::SECRETS)?
            .insert(name.as_str(), encoded.as_slice())
            .in_table(tables::SECRETS)?;
        self.count_sealed(&record.sealed, 1)?;
        self.push_version(previous, record, actor)
    }

    /// Moves the `key_usage` count of the master key that sealed `sealed`
    /// directly (if one did) by `delta`.
    pub(super) fn count_sealed(
        &mut self,
        sealed: &SealedValue,
        delta: i64,
    ) -> Result<(), StoreError> {
        match sealed.master_key_id() {
            Some(key_id) => self.adjust_usage(key_id, delta),
            None => Ok(()),
        }
    }

    /// Moves the record count of `key_id` in `key_usage` by `delta`.
    pub(super) fn adjust_usage(&mut self, key_id: &KeyId, delta: i64) -> Result<(), StoreError> {
        let mut usage = self.txn().table(tables::KEY_USAGE)?;
        let current = usage
            .get(key_id.as_str())
            .in_table(tables::KEY_USAGE)?
            .map_or(0, |c| c.value());
        let next = current.saturating_add_signed(delta);
        if next == 0 {
            usage.remove(key_id.as_str()).in_table(tables::KEY_USAGE)?;
        } else {
            usage
                .insert(key_id.as_str(), next)
                .in_table(tables::KEY_USAGE)?;
        }
        Ok(())
    }

    /// The tenant a scope belongs to; the owner must exist.
    pub(super) fn owner_tenant(&self, scope: &Scope) -> Result<TenantId, StoreError> {
        match scope {
            Scope::Tenant(id) => match self.tenant(id)? {
                Some(_) => Ok(id.clone()),
                None => Err(not_found(Missing::Tenant, id.as_str())),
            },
            Scope::App(id) => match self.app(id)? {
                Some(app) => Ok(app.tenant_id),
                None => Err(not_found(Missing::App, id.as_str())),
            },
        }
    }

    /// Refuses a write that would push any affected app's effective set
    /// above 1 MiB: the app itself for an override, every app of the
    /// tenant for a tenant default. `scope_bytes` is the stored size of the
    /// written scope's records before the write.
    ///
    /// Decoding every record of both scopes on every write made a write
    /// cost grow with the scope, so the exact merge runs only when an upper
    /// bound says the limit could be reached: a record adds at most its
    /// key and value to an effective set, and its stored form holds both
    /// and more, so the stored sizes of both scopes plus the new record's
    /// key and value bound the set from above.
    fn check_effective_sizes(
        &self,
        tenant_id: &TenantId,
        record: &SecretRecord,
        scope_bytes: usize,
    ) -> Result<(), StoreError> {
        let written = scope_bytes + record.key.as_str().len() + record.sealed.plaintext_len();
        let bound_ok = |other: usize| written + other <= MAX_EFFECTIVE_SET_BYTES;
        match &record.scope {
            Scope::App(_) => {
                let tenant = self.scope_index(&Scope::Tenant(tenant_id.clone()), None)?;
                if bound_ok(tenant.bytes) {
                    return Ok(());
                }
            }
            Scope::Tenant(_) => {
                let mut all_ok = true;
                for app_id in self.app_ids_of(tenant_id)? {
                    all_ok &= bound_ok(self.scope_index(&Scope::App(app_id), None)?.bytes);
                }
                if all_ok {
                    return Ok(());
                }
            }
        }
        self.check_effective_sizes_exactly(tenant_id, record)
    }

    /// The exact check: merges the sets as resolve would.
    pub(super) fn check_effective_sizes_exactly(
        &self,
        tenant_id: &TenantId,
        record: &SecretRecord,
    ) -> Result<(), StoreError> {
        let with_record = replace_or_push(self.secrets(&record.scope)?, record);
        self.check_effective_sizes_with(tenant_id, &record.scope, &with_record)
    }

    /// Refuses if any app affected by `scope` would have an effective set
    /// above 1 MiB when `scope` holds `records` (and the other scopes what
    /// is stored).
    pub(super) fn check_effective_sizes_with(
        &self,
        tenant_id: &TenantId,
        scope: &Scope,
        records: &[SecretRecord],
    ) -> Result<(), StoreError> {
        match scope {
            Scope::App(app_id) => {
                let tenant = self.secrets(&Scope::Tenant(tenant_id.clone()))?;
                check_size(app_id, &tenant, records)
            }
            Scope::Tenant(_) => {
                for app_id in self.app_ids_of(tenant_id)? {
                    let app = self.secrets(&Scope::App(app_id.clone()))?;
                    check_size(&app_id, records, &app)?;
                }
                Ok(())
            }
        }
    }
}

/// What [`Snapshot::scope_index`] found.
#[derive(Default)]
struct ScopeIndex {
    /// Another provider setting the key asked about, if one does.
    taken_by: Option<String>,
    /// Stored bytes of the records (table keys and values).
    bytes: usize,
}

fn replace_or_push(mut records: Vec<SecretRecord>, record: &SecretRecord) -> Vec<SecretRecord> {
    match records
        .iter_mut()
        .find(|r| r.provider == record.provider && r.key == record.key)
    {
        Some(slot) => *slot = record.clone(),
        None => records.push(record.clone()),
    }
    records
}

fn check_size(
    app_id: &AppId,
    tenant: &[SecretRecord],
    app: &[SecretRecord],
) -> Result<(), StoreError> {
    let bytes = resolve::merge(tenant, app).size();
    if bytes > MAX_EFFECTIVE_SET_BYTES {
        return Err(Rejected::EffectiveSetTooLarge {
            app_id: app_id.to_string(),
            bytes,
        }
        .into());
    }
    Ok(())
}

/// `env_name_taken`: `key` is set by another provider in this scope.
/// `item` names the offending item of a bulk write (or is empty).
pub(super) fn env_name_taken(
    key: &EnvKey,
    taken_by: &str,
    scope: &Scope,
    item: Option<usize>,
) -> StoreError {
    Rejected::EnvNameTaken {
        key: key.to_string(),
        provider: taken_by.to_owned(),
        scope: scope.kind(),
        item,
    }
    .into()
}

/// `env_name_taken` when the index of the scope, asked about `key`, found
/// another provider setting it.
fn check_name_free(siblings: &ScopeIndex, scope: &Scope, key: &EnvKey) -> Result<(), StoreError> {
    match &siblings.taken_by {
        Some(taken) => Err(env_name_taken(key, taken, scope, None)),
        None => Ok(()),
    }
}

pub(super) fn secret_event(
    kind: &'static str,
    actor: &str,
    tenant_id: &TenantId,
    record: &SecretRecord,
) -> NewEvent {
    named_secret_event(
        kind,
        actor,
        tenant_id,
        &record.scope,
        &record.provider,
        &record.key,
    )
}

/// An event about the secret `provider/key` of `scope` (which may have no
/// live record, e.g. a purge of a deleted one).
pub(super) fn named_secret_event(
    kind: &'static str,
    actor: &str,
    tenant_id: &TenantId,
    scope: &Scope,
    provider: &Provider,
    key: &EnvKey,
) -> NewEvent {
    let mut event = NewEvent::new(kind, actor)
        .tenant(tenant_id.as_str())
        .with("scope", scope.kind().as_str())
        .with("provider", provider.as_str())
        .with("key", key.as_str());
    if let Scope::App(app_id) = scope {
        event = event.app(app_id.as_str());
    }
    event
}
