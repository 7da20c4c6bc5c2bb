//! Record layouts of older schema versions, frozen as they were written, and
//! the forward step of each into today's records. Only the migrations in
//! `schema` read them; nothing writes them.
//!
//! A layout here never changes: a file written by that version must keep
//! decoding. When today's record changes again, the layout it replaces
//! moves here with its version in the name.

use serde::{Deserialize, Serialize};

use super::records::{
    AppRecord, DeployRecord, InjectionRecord, SecretRecord, SecretVersionRecord, VersionValue,
    WarningRecord,
};
use crate::crypto::{NONCE_LEN, SealedValue, Sealer};
use crate::model::{
    AppId, DeployStatus, DeployTrigger, EnvKey, KeyId, Provider, Scope, TenantId, Timestamp,
};

/// An app record of schema 1 and 2.
#[derive(Debug, Deserialize)]
pub(super) struct AppRecordV2 {
    tenant_id: TenantId,
    required_env: Vec<EnvKey>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl From<AppRecordV2> for AppRecordV3 {
    fn from(old: AppRecordV2) -> Self {
        AppRecordV3 {
            tenant_id: old.tenant_id,
            required_env: old.required_env,
            created_at: old.created_at,
            updated_at: old.updated_at,
            // Opt-in: nothing redeploys by itself after an upgrade.
            auto_redeploy: false,
        }
    }
}

/// An app record of schema 3 (written by the 2 → 3 step, so it also
/// serializes).
#[derive(Debug, Deserialize, Serialize)]
pub(super) struct AppRecordV3 {
    tenant_id: TenantId,
    required_env: Vec<EnvKey>,
    created_at: Timestamp,
    updated_at: Timestamp,
    auto_redeploy: bool,
}

impl From<AppRecordV3> for AppRecord {
    fn from(old: AppRecordV3) -> Self {
        AppRecord {
            tenant_id: old.tenant_id,
            required_env: old.required_env,
            created_at: old.created_at,
            updated_at: old.updated_at,
            auto_redeploy: old.auto_redeploy,
            // Rollback did not exist: no app runs a pinned set.
            pinned_to: None,
        }
    }
}

/// A deploy record of schema 1 and 2.
#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(super) struct DeployRecordV2 {
    deploy_id: String,
    app_id: AppId,
    tenant_id: TenantId,
    image_ref: String,
    replicas: Option<i32>,
    port: Option<u16>,
    status: DeployStatus,
    error: Option<String>,
    created_at: Timestamp,
    injection: InjectionRecord,
    warnings: Vec<WarningRecord>,
}

impl From<DeployRecordV2> for DeployRecord {
    fn from(old: DeployRecordV2) -> Self {
        DeployRecord {
            deploy_id: old.deploy_id,
            app_id: old.app_id,
            tenant_id: old.tenant_id,
            image_ref: old.image_ref,
            replicas: old.replicas,
            port: old.port,
            status: old.status,
            error: old.error,
            created_at: old.created_at,
            injection: old.injection,
            warnings: old.warnings,
            // Before schema 3 every deploy came from the API and put its
            // deploy id, not a secrets hash, on the pod template.
            trigger: DeployTrigger::Api,
            secrets_hash: None,
            restarted_at: None,
            rollout: None,
        }
    }
}

/// A sealed value of schemas 1 to 4: always directly under a master key.
#[derive(Debug, Deserialize, Serialize)]
pub(super) struct SealedValueV4 {
    key_id: KeyId,
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
}

impl From<SealedValueV4> for SealedValue {
    fn from(old: SealedValueV4) -> Self {
        // The bytes are unchanged: only the value now says what sealed it.
        SealedValue {
            sealer: Sealer::MasterKey(old.key_id),
            nonce: old.nonce,
            ciphertext: old.ciphertext,
        }
    }
}

/// A secret record of schemas 1 to 4.
#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(Serialize))]
pub(super) struct SecretRecordV4 {
    scope: Scope,
    provider: Provider,
    key: EnvKey,
    created_at: Timestamp,
    updated_at: Timestamp,
    version: u64,
    sealed: SealedValueV4,
}

impl SecretRecordV4 {
    /// The history entry of this record's version as the 3 → 4 step
    /// writes it: the value stays in the record ([`VersionValueV4::Current`]).
    pub(super) fn current_version(&self, actor: &str) -> SecretVersionRecordV4 {
        SecretVersionRecordV4 {
            scope: self.scope.clone(),
            provider: self.provider.clone(),
            key: self.key.clone(),
            version: self.version,
            created_at: self.updated_at,
            actor: actor.to_owned(),
            value: VersionValueV4::Current,
        }
    }
}

impl From<SecretRecordV4> for SecretRecord {
    fn from(old: SecretRecordV4) -> Self {
        SecretRecord {
            scope: old.scope,
            provider: old.provider,
            key: old.key,
            created_at: old.created_at,
            updated_at: old.updated_at,
            version: old.version,
            sealed: old.sealed.into(),
        }
    }
}

/// A kept version of schema 4 (written by the 3 → 4 step, so it also
/// serializes).
#[derive(Debug, Deserialize, Serialize)]
pub(super) struct SecretVersionRecordV4 {
    scope: Scope,
    provider: Provider,
    key: EnvKey,
    version: u64,
    created_at: Timestamp,
    actor: String,
    value: VersionValueV4,
}

impl SecretVersionRecordV4 {
    /// The version number (the second part of the table key).
    pub(super) fn version(&self) -> u64 {
        self.version
    }
}

/// Where the value of a kept version of schema 4 is.
#[derive(Debug, Deserialize, Serialize)]
pub(super) enum VersionValueV4 {
    Current,
    Sealed(SealedValueV4),
    Tombstone,
}

impl From<SecretVersionRecordV4> for SecretVersionRecord {
    fn from(old: SecretVersionRecordV4) -> Self {
        SecretVersionRecord {
            scope: old.scope,
            provider: old.provider,
            key: old.key,
            version: old.version,
            created_at: old.created_at,
            actor: old.actor,
            value: match old.value {
                VersionValueV4::Current => VersionValue::Current,
                VersionValueV4::Sealed(sealed) => VersionValue::Sealed(sealed.into()),
                VersionValueV4::Tombstone => VersionValue::Tombstone,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use redb::ReadableDatabase;

    use super::*;
    use crate::crypto::{Keyring, MasterKey, SecretLocation};
    use crate::model::SecretValue;
    use crate::store::history::KeptValue;
    use crate::store::tests::options;
    use crate::store::{Store, codec, schema, tables};

    /// A file of schema 4 whose history holds a live value, an older kept
    /// value and the tombstone of a deleted secret, all sealed directly
    /// under a master key in that schema's layout, opens as schema 5: every
    /// value names its master key, keeps its bytes, and opens.
    #[test]
    fn a_schema_4_history_migrates_to_5_with_every_kept_value_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exsec.redb");
        let k1 = KeyId::parse("k1").unwrap();
        let keyring = Keyring::from_keys([(k1.clone(), MasterKey::generate().unwrap())]);
        let scope = Scope::Tenant(TenantId::parse("acme").unwrap());
        let provider = Provider::parse("openai").unwrap();
        let (live, gone) = (
            EnvKey::parse("LIVE").unwrap(),
            EnvKey::parse("GONE").unwrap(),
        );
        let seal = |key: &EnvKey, value: &str| {
            let location = SecretLocation {
                scope: &scope,
                provider: &provider,
                key,
            };
            let sealed = keyring
                .seal(&location, &SecretValue::parse(value.to_owned()).unwrap())
                .unwrap();
            SealedValueV4 {
                key_id: k1.clone(),
                nonce: sealed.nonce,
                ciphertext: sealed.ciphertext,
            }
        };
        let version = |key: &EnvKey, version: u64, value: VersionValueV4| SecretVersionRecordV4 {
            scope: scope.clone(),
            provider: provider.clone(),
            key: key.clone(),
            version,
            created_at: Timestamp(1_000 + i64::try_from(version).unwrap()),
            actor: "admin".to_owned(),
            value,
        };
        let name = |key: &EnvKey| {
            tables::secret_key(
                scope.kind().tag(),
                scope.owner(),
                provider.as_str(),
                key.as_str(),
            )
        };
        let live_record = SecretRecordV4 {
            scope: scope.clone(),
            provider: provider.clone(),
            key: live.clone(),
            created_at: Timestamp(1),
            updated_at: Timestamp(2),
            version: 2,
            sealed: seal(&live, "sk-2"),
        };
        let rows = [
            (
                (name(&live), 1),
                version(&live, 1, VersionValueV4::Sealed(seal(&live, "sk-1"))),
            ),
            ((name(&live), 2), version(&live, 2, VersionValueV4::Current)),
            (
                (name(&gone), 1),
                version(&gone, 1, VersionValueV4::Sealed(seal(&gone, "gone-1"))),
            ),
            (
                (name(&gone), 2),
                version(&gone, 2, VersionValueV4::Tombstone),
            ),
        ];
        let stored: Vec<((String, u64), Vec<u8>)> = rows
            .iter()
            .map(|(key, row)| (key.clone(), codec::encode(row).unwrap()))
            .collect();
        let live_bytes = codec::encode(&live_record).unwrap();
        {
            let store = Store::open(&path, options()).unwrap();
            let guard = store.db.read().unwrap();
            let db = guard.as_ref().unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut secrets = txn.open_table(tables::SECRETS).unwrap();
                secrets
                    .insert(name(&live).as_str(), live_bytes.as_slice())
                    .unwrap();
                let mut versions = txn.open_table(tables::SECRET_VERSIONS).unwrap();
                for ((secret, number), bytes) in &stored {
                    versions
                        .insert((secret.as_str(), *number), bytes.as_slice())
                        .unwrap();
                }
            }
            txn.commit().unwrap();
            schema::force_version(db, 4).unwrap();
        }

        let store = Store::open(&path, options()).unwrap();
        {
            let guard = store.db.read().unwrap();
            let read = guard.as_ref().unwrap().begin_read().unwrap();
            let meta = read.open_table(tables::META).unwrap();
            let version = meta.get(tables::META_SCHEMA_VERSION).unwrap().unwrap();
            assert_eq!(codec::decode::<u32>(version.value()).unwrap(), 5);
        }
        let opened = |key: &EnvKey, sealed: &SealedValue| {
            assert_eq!(sealed.master_key_id(), Some(&k1));
            let location = SecretLocation {
                scope: &scope,
                provider: &provider,
                key,
            };
            keyring
                .open(&location, sealed)
                .unwrap()
                .expose_secret()
                .to_owned()
        };
        let record = store
            .read(|r| r.secret(&scope, &provider, &live))
            .unwrap()
            .unwrap();
        assert_eq!(
            (record.version, record.sealed.ciphertext.clone()),
            (2, live_record.sealed.ciphertext.clone())
        );
        assert_eq!(opened(&live, &record.sealed), "sk-2");
        let kept = |key: &EnvKey, version: u64| {
            store
                .read(|r| r.secret_version(&scope, &provider, key, version))
                .unwrap()
        };
        let KeptValue::Sealed(first) = kept(&live, 1) else {
            panic!("live version 1 lost its value");
        };
        assert_eq!(opened(&live, &first), "sk-1");
        let KeptValue::Sealed(current) = kept(&live, 2) else {
            panic!("the current version lost its value");
        };
        assert_eq!(opened(&live, &current), "sk-2");
        let KeptValue::Sealed(deleted) = kept(&gone, 1) else {
            panic!("a deleted secret lost its kept value");
        };
        assert_eq!(opened(&gone, &deleted), "gone-1");
        assert!(matches!(kept(&gone, 2), KeptValue::Tombstone));
        let listed = store
            .read(|r| r.secret_versions(&scope, &provider, &gone))
            .unwrap();
        assert_eq!(
            listed
                .iter()
                .map(|v| (v.version, v.tombstone, v.key_id.clone()))
                .collect::<Vec<_>>(),
            [(2, true, None), (1, false, Some(k1.clone()))]
        );
    }
}
