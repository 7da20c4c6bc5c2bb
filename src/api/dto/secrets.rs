//! External secrets on the wire: metadata, the effective set, verify.
//! Never a value in an answer.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::WarningDto;
use super::schema::{
    Schema, array, boolean, closed_object, list_of, names, one_of, record, reference, reference_to,
    warnings, words, words_of,
};
use crate::model::{MAX_VALUE_LEN, ScopeKind};
use crate::store::history::VersionInfo;
use crate::store::records::SecretRecord;
use crate::store::{BulkWrite, SecretOutcome};

/// `PUT …/external-secrets/{provider}/{key}` and `…/verify`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueBody {
    /// The plaintext; moved into a `SecretValue` at once.
    pub value: String,
}

/// Secret metadata — never a value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretMetaDto {
    /// Provider.
    pub provider: String,
    /// Env var name.
    pub key: String,
    /// `tenant` or `app`.
    pub scope: ScopeKind,
    /// First set.
    pub created_at: String,
    /// Last replaced.
    pub updated_at: String,
    /// Version, from 1.
    pub version: u64,
}

impl From<&SecretRecord> for SecretMetaDto {
    fn from(r: &SecretRecord) -> Self {
        Self {
            provider: r.provider.to_string(),
            key: r.key.to_string(),
            scope: r.scope.kind(),
            created_at: r.created_at.to_rfc3339(),
            updated_at: r.updated_at.to_rfc3339(),
            version: r.version,
        }
    }
}

/// `GET …/external-secrets` of a scope.
#[derive(Debug, Serialize, Deserialize)]
pub struct SecretListDto {
    /// By provider, then key.
    pub secrets: Vec<SecretMetaDto>,
}

/// One kept version of a secret: metadata only, never a value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretVersionDto {
    /// The version number.
    pub version: u64,
    /// When it was written.
    pub created_at: String,
    /// Who wrote it.
    pub actor: String,
    /// Whether it records a deletion.
    pub tombstone: bool,
    /// The key its value is sealed under: the tenant data key's id, or a
    /// master key's for a value not moved under a data key yet (`null` for
    /// a tombstone).
    pub key_id: Option<String>,
}

impl From<&VersionInfo> for SecretVersionDto {
    fn from(v: &VersionInfo) -> Self {
        Self {
            version: v.version,
            created_at: v.created_at.to_rfc3339(),
            actor: v.actor.clone(),
            tombstone: v.tombstone,
            key_id: v.key_id.as_ref().map(ToString::to_string),
        }
    }
}

/// `GET …/external-secrets/{provider}/{key}/versions`.
#[derive(Debug, Serialize, Deserialize)]
pub struct SecretVersionListDto {
    /// Newest first.
    pub versions: Vec<SecretVersionDto>,
}

/// `POST …/verify`: whether the candidate equals the stored value.
#[derive(Debug, Serialize, Deserialize)]
pub struct VerifyDto {
    /// Equal (compared in constant time).
    #[serde(rename = "match")]
    pub matched: bool,
}

/// One env var of the effective set, without its value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EffectiveEntryDto {
    /// Env var name.
    pub key: String,
    /// Provider of the winning record.
    pub provider: String,
    /// `app` or `tenant`.
    pub source: ScopeKind,
    /// Whether an app override hides a tenant default.
    pub overrides_tenant: bool,
    /// Changed since the last deploy that synced the Secret.
    pub redeploy_needed: bool,
    /// Version of the winning record.
    pub version: u64,
    /// When its value last changed.
    pub updated_at: String,
}

/// `GET /v1/apps/{id}/external-secrets/effective`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EffectiveDto {
    /// App.
    pub app_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// The merged set, by env var name.
    pub keys: Vec<EffectiveEntryDto>,
    /// Names injected by the last synced deploy that are no longer in the set.
    pub removed_since_deploy: Vec<String>,
    /// The last deploy that synced the Secret, if any.
    pub last_synced_deploy_id: Option<String>,
    /// The deploy a rollback pinned the app to: the cluster runs that
    /// deploy's versions, not this set, until a normal deploy or an unpin.
    #[serde(default)]
    pub pinned_to: Option<String>,
    /// Notes (`missing_required_env`, `env_name_conflict`).
    pub warnings: Vec<WarningDto>,
}

impl Schema for ValueBody {
    const NAME: &'static str = "ValueRequest";

    fn schema() -> Value {
        closed_object(&["value"], [("value", secret_value())])
    }
}

impl Schema for SecretMetaDto {
    const NAME: &'static str = "SecretMeta";

    /// Never a value.
    fn schema() -> Value {
        record([
            ("provider", reference("Provider")),
            ("key", reference("EnvKey")),
            ("scope", words::<ScopeKind>()),
            ("created_at", reference("Timestamp")),
            ("updated_at", reference("Timestamp")),
            ("version", json!({ "type": "integer", "minimum": 1 })),
        ])
    }
}

impl Schema for SecretVersionDto {
    const NAME: &'static str = "SecretVersion";

    /// Never a value.
    fn schema() -> Value {
        record([
            ("version", json!({ "type": "integer", "minimum": 1 })),
            ("created_at", reference("Timestamp")),
            ("actor", json!({ "type": "string" })),
            ("tombstone", boolean()),
            (
                "key_id",
                json!({ "type": ["string", "null"], "description": "the tenant data key (or, not migrated yet, the master key) sealing the value; `null` for a tombstone" }),
            ),
        ])
    }
}

impl Schema for SecretVersionListDto {
    const NAME: &'static str = "SecretVersionList";

    fn schema() -> Value {
        list_of::<SecretVersionDto>("versions")
    }
}

/// A secret value in a request: UTF-8, 1 byte to 64 KiB, no NUL.
fn secret_value() -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_VALUE_LEN,
        "pattern": "^[^\\u0000]+$",
        "description": "UTF-8, at most 64 KiB, no NUL",
    })
}

impl Schema for BulkSecretsBody {
    const NAME: &'static str = "BulkSecretsRequest";

    fn schema() -> Value {
        closed_object(
            &["secrets"],
            [
                (
                    "secrets",
                    json!({
                        "type": "array",
                        "maxItems": MAX_BULK_SECRETS,
                        "items": record([
                            ("provider", reference("Provider")),
                            ("key", reference("EnvKey")),
                            ("value", secret_value()),
                        ]),
                        "description": "every secret to set; each env var name at most once (else 422 `duplicate_key`)",
                    }),
                ),
                (
                    "replace",
                    json!({
                        "type": "boolean",
                        "default": false,
                        "description": "also delete the scope's secrets not listed",
                    }),
                ),
            ],
        )
    }
}

impl Schema for BulkSecretsDto {
    const NAME: &'static str = "BulkSecretsResult";

    fn schema() -> Value {
        list_of::<SecretOutcomeDto>("secrets")
    }
}

impl Schema for SecretOutcomeDto {
    const NAME: &'static str = "SecretOutcome";

    /// What a bulk write did to one key; never a value.
    fn schema() -> Value {
        record([
            ("provider", reference("Provider")),
            ("key", reference("EnvKey")),
            ("outcome", one_of(&["created", "updated", "deleted"])),
            (
                "version",
                json!({ "type": ["integer", "null"], "minimum": 1, "description": "`null` once deleted" }),
            ),
        ])
    }
}

impl SecretListDto {
    /// Its schema (inline in the document).
    pub fn schema() -> Value {
        list_of::<SecretMetaDto>("secrets")
    }
}

impl Schema for VerifyDto {
    const NAME: &'static str = "VerifyResult";

    fn schema() -> Value {
        record([("match", boolean())])
    }
}

impl Schema for EffectiveDto {
    const NAME: &'static str = "Effective";

    fn schema() -> Value {
        record([
            ("app_id", reference("ResourceId")),
            ("tenant_id", reference("ResourceId")),
            ("keys", array(reference_to::<EffectiveEntryDto>())),
            ("removed_since_deploy", names()),
            (
                "last_synced_deploy_id",
                json!({ "type": ["string", "null"], "pattern": "^dep_[0-9]{12}$" }),
            ),
            (
                "pinned_to",
                json!({
                    "type": ["string", "null"],
                    "pattern": "^dep_[0-9]{12}$",
                    "description": "the deploy a rollback pinned the app to: the cluster runs its secret versions, not this set",
                }),
            ),
            ("warnings", warnings()),
        ])
    }
}

impl Schema for EffectiveEntryDto {
    const NAME: &'static str = "EffectiveEntry";

    fn schema() -> Value {
        record([
            ("key", reference("EnvKey")),
            ("provider", reference("Provider")),
            ("source", words_of(&[ScopeKind::App, ScopeKind::Tenant])),
            ("overrides_tenant", boolean()),
            ("redeploy_needed", boolean()),
            ("version", json!({ "type": "integer", "minimum": 1 })),
            ("updated_at", reference("Timestamp")),
        ])
    }
}

/// Most secrets one bulk write may list. A scope this large is already
/// beyond what one Kubernetes Secret comfortably holds; the 1 MiB body and
/// effective-set limits apply as well.
pub const MAX_BULK_SECRETS: usize = 1000;

/// `PUT …/external-secrets` (the bulk write of one scope).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkSecretsBody {
    /// Every secret to set, in order; each env var name at most once.
    pub secrets: Vec<BulkSecretItem>,
    /// Also delete the scope's secrets not listed.
    #[serde(default)]
    pub replace: bool,
}

/// One secret of [`BulkSecretsBody`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkSecretItem {
    /// Provider name.
    pub provider: String,
    /// Env var name.
    pub key: String,
    /// The plaintext; moved into a `SecretValue` at once.
    pub value: String,
}

/// The answer of a bulk write: what happened to each key, never a value.
#[derive(Debug, Deserialize, Serialize)]
pub struct BulkSecretsDto {
    /// Listed keys in request order, then the deleted ones.
    pub secrets: Vec<SecretOutcomeDto>,
}

/// What a bulk write did to one key.
#[derive(Debug, Deserialize, Serialize)]
pub struct SecretOutcomeDto {
    /// Provider.
    pub provider: String,
    /// Env var name.
    pub key: String,
    /// What happened to it.
    pub outcome: SecretOutcomeName,
    /// The stored version; `null` once deleted.
    pub version: Option<u64>,
}

/// [`SecretOutcome`] on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretOutcomeName {
    /// The key was new.
    Created,
    /// A value was replaced.
    Updated,
    /// `replace` removed the unlisted key.
    Deleted,
}

impl SecretOutcomeName {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Deleted => "deleted",
        }
    }
}

impl From<SecretOutcome> for SecretOutcomeName {
    fn from(outcome: SecretOutcome) -> Self {
        match outcome {
            SecretOutcome::Created => Self::Created,
            SecretOutcome::Updated => Self::Updated,
            SecretOutcome::Deleted => Self::Deleted,
        }
    }
}

impl From<&BulkWrite> for BulkSecretsDto {
    fn from(write: &BulkWrite) -> Self {
        Self {
            secrets: write
                .outcomes
                .iter()
                .map(|o| SecretOutcomeDto {
                    provider: o.provider.to_string(),
                    key: o.key.to_string(),
                    outcome: o.outcome.into(),
                    version: o.version,
                })
                .collect(),
        }
    }
}
