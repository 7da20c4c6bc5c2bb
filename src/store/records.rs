//! The records stored in redb, one struct per table value.
//!
//! Every one goes through [`super::codec`] (bincode 1.3.3), so fields are
//! plain: no `serde_json::Value`, `flatten`, `untagged` or
//! `skip_serializing_if`. Free-form data (audit `data`) is JSON bytes.
//! Changing a field is a schema change: bump `schema::CURRENT` and migrate.

use serde::{Deserialize, Serialize};

use crate::audit::{AuditEvent, ChainHash};
use crate::crypto::{SealedValue, SecretLocation, WrappedDataKey};
use crate::model::{
    DeployStatus, DeployTrigger, EnvKey, InjectionReason, InjectionStatus, Provider, RolloutChange,
    Scope, TenantId, Timestamp, impl_word,
};

/// A tenant. Its id is the table key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    /// When the admin created it.
    pub created_at: Timestamp,
}

/// An app. Its id is the table key; its tenant never changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRecord {
    /// The owning tenant, fixed at registration.
    pub tenant_id: TenantId,
    /// Env var names the app needs; a deploy lacking one warns.
    pub required_env: Vec<EnvKey>,
    /// When it was registered.
    pub created_at: Timestamp,
    /// When it was last changed.
    pub updated_at: Timestamp,
    /// Redeploy automatically when its effective set changes (SPEC §11.2).
    /// Schema 3; apps of older files read as `false`.
    pub auto_redeploy: bool,
    /// The deploy this app was rolled back to: the app runs that deploy's
    /// secret versions, and automatic redeploys wait until a normal deploy
    /// or an unpin clears it (SPEC §11.3; schema 4).
    pub pinned_to: Option<String>,
}

/// One external secret: metadata in the clear, the value only sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRecord {
    /// Tenant default or app override (also encoded in the table key).
    pub scope: Scope,
    /// Provider, e.g. `openai`.
    pub provider: Provider,
    /// Env var name, e.g. `OPENAI_API_KEY`.
    pub key: EnvKey,
    /// When the key was first set.
    pub created_at: Timestamp,
    /// When the value was last replaced (re-sealing does not change it).
    pub updated_at: Timestamp,
    /// Starts at 1, +1 per replacement; re-sealing does not change it.
    pub version: u64,
    /// The value, sealed under the tenant's data key (or, for records not
    /// migrated yet, directly under a master key).
    pub sealed: SealedValue,
}

impl SecretRecord {
    /// Where the value sits: what its seal is bound to, so it opens only
    /// at this scope, provider and key.
    pub fn location(&self) -> SecretLocation<'_> {
        SecretLocation {
            scope: &self.scope,
            provider: &self.provider,
            key: &self.key,
        }
    }
}

/// One kept version of a secret (table `external_secret_versions`, SPEC
/// §11.3). The newest version of a live secret is [`VersionValue::Current`]:
/// its sealed value stays only in the secret record, so reading the current
/// value is one lookup and no value is stored twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretVersionRecord {
    /// Tenant default or app override (also encoded in the table key).
    pub scope: Scope,
    /// Provider, e.g. `openai`.
    pub provider: Provider,
    /// Env var name, e.g. `OPENAI_API_KEY`.
    pub key: EnvKey,
    /// The version number (also the second part of the table key).
    pub version: u64,
    /// When this version was written.
    pub created_at: Timestamp,
    /// Who wrote it (`admin`, `token:…`, `migration`).
    pub actor: String,
    /// Where its value is.
    pub value: VersionValue,
}

/// Where the value of a kept version is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VersionValue {
    /// The live value: in the secret record.
    Current,
    /// An older value, sealed as it was (re-sealed by rotation).
    Sealed(SealedValue),
    /// The secret was deleted at this version.
    Tombstone,
}

impl SecretVersionRecord {
    /// Whether this version records a deletion.
    pub fn tombstone(&self) -> bool {
        self.value == VersionValue::Tombstone
    }
}

/// One tenant data key, wrapped; `(tenant, dek id)` is the table key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataKeyRecord {
    /// The data key wrapped under a master key.
    pub wrapped: WrappedDataKey,
    /// When the data key was made; the newest seals new values.
    pub created_at: Timestamp,
}

/// A tenant token: only the SHA-256 of the token is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The tenant the token acts for.
    pub tenant_id: TenantId,
    /// SHA-256 of the whole token text `exs_<id>_<secret>`.
    pub token_sha256: [u8; 32],
    /// When it was minted.
    pub created_at: Timestamp,
}

/// An audit event as stored: `data` as canonical JSON bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAuditEvent {
    /// Append time.
    pub time: Timestamp,
    /// Event type name.
    pub event_type: String,
    /// Who caused it.
    pub actor: String,
    /// Tenant concerned.
    pub tenant_id: Option<String>,
    /// App concerned.
    pub app_id: Option<String>,
    /// `data` as JSON text.
    pub data_json: Vec<u8>,
    /// Hash of the previous event.
    pub prev_hash: [u8; 32],
    /// Hash of this event.
    pub hash: [u8; 32],
}

impl StoredAuditEvent {
    /// The stored form of a linked event.
    pub fn from_event(event: &AuditEvent) -> Self {
        Self {
            time: event.time,
            event_type: event.event_type.clone(),
            actor: event.actor.clone(),
            tenant_id: event.tenant_id.clone(),
            app_id: event.app_id.clone(),
            data_json: serde_json::to_vec(&event.data).unwrap_or_else(|_| b"{}".to_vec()),
            prev_hash: event.prev_hash.0,
            hash: event.hash.0,
        }
    }

    /// Back to the wire form. Data that is not a JSON object (only possible
    /// in a tampered file) comes back empty, which breaks the hash chain
    /// and so is reported by verification rather than hidden.
    pub fn into_event(self, seq: u64) -> AuditEvent {
        let data = serde_json::from_slice(&self.data_json).unwrap_or_default();
        AuditEvent {
            seq,
            time: self.time,
            event_type: self.event_type,
            actor: self.actor,
            tenant_id: self.tenant_id,
            app_id: self.app_id,
            data,
            prev_hash: ChainHash(self.prev_hash),
            hash: ChainHash(self.hash),
        }
    }
}

/// One deploy of an app, as recorded after it ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployRecord {
    /// `dep_{seq}`, unique in this store.
    pub deploy_id: String,
    /// The app deployed.
    pub app_id: crate::model::AppId,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// The image rolled out.
    pub image_ref: String,
    /// Replicas asked for, if any.
    pub replicas: Option<i32>,
    /// Container port asked for, if any.
    pub port: Option<u16>,
    /// Whether the Deployment was applied.
    pub status: DeployStatus,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// When it started.
    pub created_at: Timestamp,
    /// What happened to the external secrets.
    pub injection: InjectionRecord,
    /// Warnings returned to the caller.
    pub warnings: Vec<WarningRecord>,
    /// What started it (schema 3; older deploys read as `api`).
    pub trigger: DeployTrigger,
    /// The `exsec.io/secrets-hash` this deploy put on the pod template
    /// (schema 3; `None` for older deploys).
    pub secrets_hash: Option<String>,
    /// The `exsec.io/restarted-at` on the pod template: set by a deploy
    /// with `restart: true`, carried over by the ones after it.
    pub restarted_at: Option<String>,
    /// Whether the pod template changed (pods roll) or stayed as it was;
    /// `None` when the Deployment apply failed, or before schema 3.
    pub rollout: Option<RolloutChange>,
}

/// The injection outcome of a deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InjectionRecord {
    /// What injection did.
    pub status: InjectionStatus,
    /// Why it was skipped or failed.
    pub reason: Option<InjectionReason>,
    /// `app-{app_id}-external-secrets`.
    pub secret_name: String,
    /// What was injected, per env var (empty unless injected).
    pub injected: Vec<InjectedKey>,
    /// Env var names whose value could not be opened (when failed).
    pub undecryptable: Vec<String>,
    /// Warnings of the injection step.
    pub warnings: Vec<WarningRecord>,
}

impl InjectionRecord {
    /// Whether the deploy left the cluster's Secret matching the effective
    /// set: injected, or skipped because the set was empty (the Secret was
    /// removed).
    pub fn synced(&self) -> bool {
        self.status == InjectionStatus::Injected || self.reason == Some(InjectionReason::NoSecrets)
    }
}

/// One env var as injected: enough to tell later whether the stored
/// secret changed since (source, provider, version and time all compared).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InjectedKey {
    /// Env var name.
    pub key: String,
    /// `app` or `tenant`.
    pub source: crate::model::ScopeKind,
    /// Provider of the injected record.
    pub provider: String,
    /// Version of the injected record.
    pub version: u64,
    /// `updated_at` of the injected record.
    pub updated_at: Timestamp,
}

/// A stored `{code, message}` warning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarningRecord {
    /// Stable code.
    pub code: String,
    /// Message.
    pub message: String,
}

/// What an `Idempotency-Key` replays: the hash of the request it came with
/// and the deploy it produced (answers are rendered from the deploy record,
/// so a replay is the same answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// SHA-256 of the request body (canonical JSON) and query.
    pub request_sha256: [u8; 32],
    /// The deploy it produced; the replay answers from its record.
    pub deploy_id: String,
    /// When it was stored; kept 24 h.
    pub created_at: Timestamp,
}

/// Cluster objects of an app that hold plaintext and could not be removed
/// yet; the app id is the table key. Removal is retried until it succeeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupRecord {
    /// What is left.
    pub kind: CleanupKind,
    /// When removal first failed.
    pub since: Timestamp,
    /// Failed removals so far.
    pub attempts: u32,
    /// When removal last failed.
    pub last_attempt: Timestamp,
    /// What the cluster target said then (never a value).
    pub last_error: String,
}

/// An automatic redeploy waiting to run (SPEC §11.2): queued by the write
/// that changed the app's effective set, in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedeployRecord {
    /// The app's tenant (the debounce is per tenant).
    pub tenant_id: TenantId,
    /// When the first change of this wait was queued.
    pub queued_at: Timestamp,
    /// When the last change was queued.
    pub changed_at: Timestamp,
    /// Bumped by every change: the worker removes the record only if no
    /// change came in while it redeployed.
    pub generation: u64,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Why the last attempt failed (never a value).
    pub last_error: Option<String>,
}

/// What a pending cleanup removes. Stored by variant index (append new
/// variants at the end); JSON writes the word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CleanupKind {
    /// Everything of a deleted app: its manifests file, or its Secret and
    /// Deployment.
    AppObjects,
    /// The Secret of an app whose effective set became empty.
    StaleSecret,
}

impl_word!(CleanupKind, "cleanup kind", [AppObjects, StaleSecret]);

impl CleanupKind {
    /// The name used on the wire and in audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            CleanupKind::AppObjects => "app_objects",
            CleanupKind::StaleSecret => "stale_secret",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AppId;
    use crate::store::codec;

    /// A deploy record as [`codec::encode`] wrote it when status, injection
    /// status and reason were `String`s (commit c4eb184), one per line:
    /// succeeded/injected, failed/failed/interrupted,
    /// succeeded/skipped/no_secrets.
    const WRITTEN_WITH_STRINGS: [&str; 3] = [
        "01106465705f303030303030303030303037037765620461636d650a6e67696e783a312e3237010401fb901f0973756363656564656400fd00501ea43503000008696e6a656374656400186170702d7765622d65787465726e616c2d7365637265747300000000",
        "01106465705f303030303030303030303037037765620461636d650a6e67696e783a312e3237010401fb901f066661696c656400fd00501ea435030000066661696c6564010b696e746572727570746564186170702d7765622d65787465726e616c2d7365637265747300000000",
        "01106465705f303030303030303030303037037765620461636d650a6e67696e783a312e3237010401fb901f0973756363656564656400fd00501ea43503000007736b6970706564010a6e6f5f73656372657473186170702d7765622d65787465726e616c2d7365637265747300000000",
    ];

    fn record(
        status: DeployStatus,
        injection: InjectionStatus,
        reason: Option<InjectionReason>,
    ) -> DeployRecord {
        DeployRecord {
            deploy_id: "dep_000000000007".to_owned(),
            app_id: AppId::parse("web").unwrap(),
            tenant_id: TenantId::parse("acme").unwrap(),
            image_ref: "nginx:1.27".to_owned(),
            replicas: Some(2),
            port: Some(8080),
            status,
            error: None,
            created_at: Timestamp(1_764_460_800_000),
            injection: InjectionRecord {
                status: injection,
                reason,
                secret_name: "app-web-external-secrets".to_owned(),
                injected: Vec::new(),
                undecryptable: Vec::new(),
                warnings: Vec::new(),
            },
            warnings: Vec::new(),
            trigger: DeployTrigger::Api,
            secrets_hash: None,
            restarted_at: None,
            rollout: None,
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The enums changed no stored byte: records written with strings
    /// decode to the enums, and encode back to the same bytes.
    #[test]
    fn deploy_records_written_with_strings_read_and_write_the_same_bytes() {
        let expected = [
            record(DeployStatus::Succeeded, InjectionStatus::Injected, None),
            record(
                DeployStatus::Failed,
                InjectionStatus::Failed,
                Some(InjectionReason::Interrupted),
            ),
            record(
                DeployStatus::Succeeded,
                InjectionStatus::Skipped,
                Some(InjectionReason::NoSecrets),
            ),
        ];
        for (old, expected) in WRITTEN_WITH_STRINGS.iter().zip(expected) {
            let bytes: Vec<u8> = (0..old.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&old[i..i + 2], 16).unwrap())
                .collect();
            // Schema 2's layout (the fields before `trigger`), as the
            // migration to schema 3 reads it.
            let decoded: crate::store::legacy::DeployRecordV2 = codec::decode(&bytes).unwrap();
            assert_eq!(hex(&codec::encode(&decoded).unwrap()), *old);
            assert_eq!(DeployRecord::from(decoded), expected);
        }
    }

    /// Every word is stored as the string it was, so no variant can be
    /// written in a form an older exsec (or the records above) would not read.
    #[test]
    fn every_status_and_reason_is_stored_as_its_word() {
        let words = DeployStatus::ALL
            .iter()
            .map(|s| (codec::encode(s).unwrap(), s.as_str()))
            .chain(
                InjectionStatus::ALL
                    .iter()
                    .map(|s| (codec::encode(s).unwrap(), s.as_str())),
            )
            .chain(
                InjectionReason::ALL
                    .iter()
                    .map(|s| (codec::encode(s).unwrap(), s.as_str())),
            );
        for (stored, word) in words {
            assert_eq!(stored, codec::encode(word).unwrap(), "{word}");
        }
    }
}
