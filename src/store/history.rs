//! Secret history (SPEC §11.3): the last `storage.secret_history` versions
//! of every secret, a tombstone for a deletion, restoring an old version as
//! a new one, the sealed value of any kept version (for rollback), and
//! purging: a deletion that also drops every kept value (a leaked or
//! mistyped value must be removable without deleting the whole scope).
//!
//! The live value stays in the secret record (one lookup to read it); its
//! history entry says [`VersionValue::Current`]. When a write replaces it,
//! the old sealed value moves into its history entry, so every sealed value
//! is stored exactly once and counted once in `key_usage`. Pruning runs in
//! the writing transaction.

use redb::ReadableTable;

use super::error::{Context, Missing, Rejected, not_found};
use super::records::{SecretRecord, SecretVersionRecord, VersionValue};
use super::{SecretWrite, Snapshot, StoreError, Tables, Writer, decode, encode, tables};
use crate::audit::event;
use crate::crypto::SealedValue;
use crate::model::{EnvKey, KeyId, Provider, Scope, Timestamp};

pub use crate::config::DEFAULT_SECRET_HISTORY;

/// One kept version as listed: metadata only, never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    /// The version number.
    pub version: u64,
    /// When it was written.
    pub created_at: Timestamp,
    /// Who wrote it.
    pub actor: String,
    /// Whether it records a deletion.
    pub tombstone: bool,
    /// The key its value is sealed under: the tenant data key's id, or a
    /// master key's for a value not moved under a data key yet (none for a
    /// tombstone).
    pub key_id: Option<KeyId>,
}

/// What a purge removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    /// Whether the secret was live (a purge of a deleted secret only drops
    /// its kept values).
    pub was_live: bool,
    /// Sealed values dropped: the live one and every kept version's.
    pub values_removed: u64,
}

/// The value of one version, as far as the store still has it.
pub enum KeptValue {
    /// Sealed as stored.
    Sealed(SealedValue),
    /// The secret was deleted at that version.
    Tombstone,
    /// Never written, pruned, or the secret is gone with its scope.
    Missing,
}

impl<T: Tables> Snapshot<T> {
    /// The kept versions of one secret, newest first (empty when it has
    /// none).
    pub fn secret_versions(
        &self,
        scope: &Scope,
        provider: &Provider,
        key: &EnvKey,
    ) -> Result<Vec<VersionInfo>, StoreError> {
        let name = secret_name(scope, provider, key);
        let mut out = Vec::new();
        for entry in self.version_entries(&name)?.into_iter().rev() {
            let key_id = match &entry.value {
                VersionValue::Sealed(sealed) => Some(sealed.sealer_id()),
                VersionValue::Tombstone => None,
                VersionValue::Current => self
                    .secret(scope, provider, key)?
                    .map(|record| record.sealed.sealer_id()),
            };
            out.push(VersionInfo {
                version: entry.version,
                created_at: entry.created_at,
                tombstone: entry.tombstone(),
                actor: entry.actor,
                key_id,
            });
        }
        Ok(out)
    }

    /// The sealed value of `version` of one secret.
    pub fn secret_version(
        &self,
        scope: &Scope,
        provider: &Provider,
        key: &EnvKey,
        version: u64,
    ) -> Result<KeptValue, StoreError> {
        let name = secret_name(scope, provider, key);
        let versions = self.txn().table(tables::SECRET_VERSIONS)?;
        let Some(bytes) = versions
            .get((name.as_str(), version))
            .in_table(tables::SECRET_VERSIONS)?
        else {
            return Ok(KeptValue::Missing);
        };
        let entry: SecretVersionRecord = decode("external_secret_versions", bytes.value())?;
        Ok(match entry.value {
            VersionValue::Sealed(sealed) => KeptValue::Sealed(sealed),
            VersionValue::Tombstone => KeptValue::Tombstone,
            VersionValue::Current => match self.secret(scope, provider, key)? {
                Some(record) if record.version == version => KeptValue::Sealed(record.sealed),
                _ => KeptValue::Missing,
            },
        })
    }

    /// The highest version one secret ever had among those kept (0: none).
    pub(super) fn latest_version(&self, name: &str) -> Result<u64, StoreError> {
        let versions = self.txn().table(tables::SECRET_VERSIONS)?;
        let last = versions
            .range((name, 0)..=(name, u64::MAX))
            .in_table(tables::SECRET_VERSIONS)?
            .next_back()
            .transpose()
            .in_table(tables::SECRET_VERSIONS)?;
        Ok(last.map_or(0, |(key, _)| key.value().1))
    }

    /// Every kept version of the secret stored as `name`, oldest first.
    fn version_entries(&self, name: &str) -> Result<Vec<SecretVersionRecord>, StoreError> {
        let versions = self.txn().table(tables::SECRET_VERSIONS)?;
        let mut out = Vec::new();
        for entry in versions
            .range((name, 0)..=(name, u64::MAX))
            .in_table(tables::SECRET_VERSIONS)?
        {
            let (_, bytes) = entry.in_table(tables::SECRET_VERSIONS)?;
            out.push(decode("external_secret_versions", bytes.value())?);
        }
        Ok(out)
    }
}

impl Writer {
    /// Writes `version` of a secret again as a new version
    /// (`external_secret.restored`). Unknown or pruned: not found; a
    /// tombstone: refused. The value is copied sealed as it is.
    pub fn restore_secret(
        &mut self,
        scope: &Scope,
        provider: &Provider,
        key: &EnvKey,
        version: u64,
        actor: &str,
    ) -> Result<SecretWrite, StoreError> {
        let tenant_id = self.owner_tenant(scope)?;
        let sealed = match self.secret_version(scope, provider, key, version)? {
            KeptValue::Sealed(sealed) => sealed,
            KeptValue::Tombstone => {
                return Err(Rejected::VersionIsTombstone {
                    key: key.to_string(),
                    version,
                }
                .into());
            }
            KeptValue::Missing => {
                return Err(not_found(
                    Missing::SecretVersion,
                    format!("{provider}/{key} version {version}"),
                ));
            }
        };
        let existing = self.secret(scope, provider, key)?;
        self.check_env_name_free(scope, provider, key)?;
        let record = self.next_record(
            scope.clone(),
            provider.clone(),
            key.clone(),
            sealed,
            existing.as_ref(),
        )?;
        self.check_effective_sizes_exactly(&tenant_id, &record)?;
        self.store_secret(&record, existing.as_ref(), actor)?;
        let created = existing.is_none();
        self.audit(
            super::secrets::secret_event(event::SECRET_RESTORED, actor, &tenant_id, &record)
                .with("version", record.version)
                .with("restored_version", version),
        )?;
        self.queue_redeploys(scope, &std::collections::BTreeSet::from([key.clone()]))?;
        Ok(SecretWrite { record, created })
    }

    /// Deletes a secret and drops every kept value of it, in one
    /// transaction (`external_secret.deleted` when it was live, then
    /// `external_secret.purged` with the count). Only a tombstone stays, as
    /// the newest version: the numbers go on after it, so a deploy pinned
    /// to a purged version can never be handed a later value under the
    /// same number (its rollback answers `snapshot_unavailable`). Not
    /// found when the secret has neither a live value nor a kept version.
    pub fn purge_secret(
        &mut self,
        scope: &Scope,
        provider: &Provider,
        key: &EnvKey,
        actor: &str,
    ) -> Result<Purged, StoreError> {
        let tenant_id = self.owner_tenant(scope)?;
        let name = secret_name(scope, provider, key);
        let live = self.secret(scope, provider, key)?;
        if live.is_none() && self.latest_version(&name)? == 0 {
            return Err(not_found(Missing::Secret, format!("{provider}/{key}")));
        }
        if let Some(record) = &live {
            self.delete_record(record, &tenant_id, actor)?;
        }
        let entries = self.version_entries(&name)?;
        let newest = entries.last().map_or(0, |entry| entry.version);
        let values_removed =
            self.drop_versions(&name, entries.into_iter().filter(|e| e.version != newest))?;
        self.audit(
            super::secrets::named_secret_event(
                event::SECRET_PURGED,
                actor,
                &tenant_id,
                scope,
                provider,
                key,
            )
            .with("values_removed", values_removed),
        )?;
        Ok(Purged {
            was_live: live.is_some(),
            values_removed,
        })
    }

    /// Records a write of `record` in the history: the version that was
    /// current keeps its sealed value in its entry, `record` becomes the
    /// current one; then prunes.
    pub(super) fn push_version(
        &mut self,
        previous: Option<&SecretRecord>,
        record: &SecretRecord,
        actor: &str,
    ) -> Result<(), StoreError> {
        let entry = entry_of(
            record,
            record.version,
            record.updated_at,
            actor,
            VersionValue::Current,
        );
        self.push(previous, &entry)
    }

    /// Records the deletion of `record`: its value stays in its entry and a
    /// tombstone becomes the newest version; then prunes.
    pub(super) fn push_tombstone(
        &mut self,
        record: &SecretRecord,
        actor: &str,
    ) -> Result<(), StoreError> {
        let entry = entry_of(
            record,
            record.version + 1,
            self.now(),
            actor,
            VersionValue::Tombstone,
        );
        self.push(Some(record), &entry)
    }

    /// Retires `previous`, stores `entry` as the newest version, prunes.
    fn push(
        &mut self,
        previous: Option<&SecretRecord>,
        entry: &SecretVersionRecord,
    ) -> Result<(), StoreError> {
        self.retire_current(previous)?;
        let name = secret_name(&entry.scope, &entry.provider, &entry.key);
        self.insert_version(&name, entry)?;
        self.prune_versions(&name)
    }

    /// Removes every kept version of a scope's secrets (the scope is being
    /// deleted) and their key-usage counts.
    pub(super) fn remove_scope_versions(&mut self, scope: &Scope) -> Result<(), StoreError> {
        let (start, end) = tables::secret_scope_range(scope.kind().tag(), scope.owner());
        let range = (start.as_str(), 0)..(end.as_str(), 0);
        let mut released: Vec<SealedValue> = Vec::new();
        {
            let versions = self.txn().table(tables::SECRET_VERSIONS)?;
            for entry in versions
                .range(range.clone())
                .in_table(tables::SECRET_VERSIONS)?
            {
                let (_, bytes) = entry.in_table(tables::SECRET_VERSIONS)?;
                let kept: SecretVersionRecord = decode("external_secret_versions", bytes.value())?;
                if let VersionValue::Sealed(sealed) = kept.value {
                    released.push(sealed);
                }
            }
        }
        self.txn()
            .table(tables::SECRET_VERSIONS)?
            .retain_in(range, |_, _| false)
            .in_table(tables::SECRET_VERSIONS)?;
        for sealed in &released {
            self.count_sealed(sealed, -1)?;
        }
        Ok(())
    }

    /// The entry of `previous` (the value a write replaces) takes its
    /// sealed value, which stays counted in `key_usage`.
    fn retire_current(&mut self, previous: Option<&SecretRecord>) -> Result<(), StoreError> {
        let Some(previous) = previous else {
            return Ok(());
        };
        let name = record_name(previous);
        let kept = self
            .txn()
            .table(tables::SECRET_VERSIONS)?
            .get((name.as_str(), previous.version))
            .in_table(tables::SECRET_VERSIONS)?
            .map(|bytes| decode::<SecretVersionRecord>("external_secret_versions", bytes.value()))
            .transpose()?;
        let sealed = VersionValue::Sealed(previous.sealed.clone());
        let entry = match kept {
            Some(kept) => SecretVersionRecord {
                value: sealed,
                ..kept
            },
            // Not in the history (never expected after schema 4): kept
            // from now on, its writer unknown.
            None => entry_of(
                previous,
                previous.version,
                previous.updated_at,
                "unknown",
                sealed,
            ),
        };
        self.insert_version(&name, &entry)
    }

    fn insert_version(
        &mut self,
        name: &str,
        entry: &SecretVersionRecord,
    ) -> Result<(), StoreError> {
        let encoded = encode("external_secret_versions", entry)?;
        self.txn()
            .table(tables::SECRET_VERSIONS)?
            .insert((name, entry.version), encoded.as_slice())
            .in_table(tables::SECRET_VERSIONS)?;
        Ok(())
    }

    /// Drops the oldest versions beyond the limit, releasing their values'
    /// key-usage counts. The newest version is always kept.
    fn prune_versions(&mut self, name: &str) -> Result<(), StoreError> {
        let limit = usize::try_from(self.history_limit.max(1)).unwrap_or(usize::MAX);
        let entries = self.version_entries(name)?;
        let excess = entries.len().saturating_sub(limit);
        self.drop_versions(name, entries.into_iter().take(excess))?;
        Ok(())
    }

    /// Removes `entries` of the secret stored as `name`, releasing their
    /// values' key-usage counts; returns how many held a value.
    fn drop_versions(
        &mut self,
        name: &str,
        entries: impl IntoIterator<Item = SecretVersionRecord>,
    ) -> Result<u64, StoreError> {
        let mut values = 0;
        for entry in entries {
            self.txn()
                .table(tables::SECRET_VERSIONS)?
                .remove((name, entry.version))
                .in_table(tables::SECRET_VERSIONS)?;
            if let VersionValue::Sealed(sealed) = entry.value {
                self.count_sealed(&sealed, -1)?;
                values += 1;
            }
        }
        Ok(values)
    }
}

/// Table key of a secret.
fn secret_name(scope: &Scope, provider: &Provider, key: &EnvKey) -> String {
    tables::secret_key(
        scope.kind().tag(),
        scope.owner(),
        provider.as_str(),
        key.as_str(),
    )
}

/// A history entry of `record`'s secret.
fn entry_of(
    record: &SecretRecord,
    version: u64,
    created_at: Timestamp,
    actor: &str,
    value: VersionValue,
) -> SecretVersionRecord {
    SecretVersionRecord {
        scope: record.scope.clone(),
        provider: record.provider.clone(),
        key: record.key.clone(),
        version,
        created_at,
        actor: actor.to_owned(),
        value,
    }
}

/// Table key of a stored record (`external_secrets` and its versions).
pub(super) fn record_name(record: &SecretRecord) -> String {
    secret_name(&record.scope, &record.provider, &record.key)
}
