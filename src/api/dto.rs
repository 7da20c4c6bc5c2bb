//! Wire types: what the API reads and writes as JSON. Domain and stored
//! types never go on the wire directly; these do, and only these carry
//! `Serialize`/`Deserialize` for HTTP. Request bodies deny unknown fields.
//! No type here can hold a secret value except the request bodies that
//! carry one in (and those are parsed into `SecretValue` at once).

use serde::{Deserialize, Serialize};

use crate::deploy::{DryRunInjection, DryRunReport};
use crate::resolve::Warning;
use crate::store::records::{
    AppRecord, CleanupRecord, DeployRecord, SecretRecord, TenantRecord, TokenRecord, WarningRecord,
};
use crate::store::{BulkWrite, SecretOutcome};

/// `PUT /v1/tenants/{id}` (body optional, no fields yet).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutTenantBody {}

/// `POST /v1/tenants/{id}/tokens` (body optional, no fields yet).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MintTokenBody {}

/// `PUT /v1/apps/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutAppBody {
    /// The owning tenant (fixed once set).
    pub tenant_id: String,
    /// Env var names the app needs.
    #[serde(default)]
    pub required_env: Vec<String>,
}

/// `PUT …/external-secrets/{provider}/{key}` and `…/verify`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueBody {
    /// The plaintext; moved into a `SecretValue` at once.
    pub value: String,
}

/// `POST /v1/apps/{id}/deploys`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeployBody {
    /// Must be the app's tenant; empty or missing is inferred (warning).
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// If present, must equal the path.
    #[serde(default)]
    pub app_id: Option<String>,
    /// The image to roll out.
    pub image_ref: String,
    /// Replicas; omitted leaves ownership to an autoscaler. Wider than
    /// its range so that an out-of-range number is `invalid_replicas`,
    /// not a type error.
    #[serde(default)]
    pub replicas: Option<i64>,
    /// Container port; wide for the same reason (`invalid_port`).
    #[serde(default)]
    pub port: Option<i64>,
}

/// `{code, message}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WarningDto {
    /// Stable code.
    pub code: String,
    /// What it means.
    pub message: String,
}

impl From<&Warning> for WarningDto {
    fn from(w: &Warning) -> Self {
        Self {
            code: w.code.to_owned(),
            message: w.message.clone(),
        }
    }
}

impl From<&WarningRecord> for WarningDto {
    fn from(w: &WarningRecord) -> Self {
        Self {
            code: w.code.clone(),
            message: w.message.clone(),
        }
    }
}

/// `POST /v1/apps/{id}/deploys?dry_run=true`: names only, never values.
#[derive(Debug, Serialize)]
pub struct DryRunDto<'a> {
    /// App.
    pub app_id: &'a str,
    /// Tenant.
    pub tenant_id: &'a str,
    /// Always true.
    pub dry_run: bool,
    /// What injection would do.
    pub external_secrets: &'a DryRunInjection,
    /// Notes.
    pub warnings: Vec<WarningDto>,
}

impl<'a> From<&'a DryRunReport> for DryRunDto<'a> {
    fn from(report: &'a DryRunReport) -> Self {
        Self {
            app_id: &report.app_id,
            tenant_id: &report.tenant_id,
            dry_run: true,
            external_secrets: &report.external_secrets,
            warnings: report.warnings.iter().map(WarningDto::from).collect(),
        }
    }
}

/// `DELETE /v1/apps/{id}` when objects of the app are left to remove.
#[derive(Debug, Serialize, Deserialize)]
pub struct AppDeletedDto {
    /// The app.
    pub app_id: String,
    /// Always true: the app and its records are gone.
    pub deleted: bool,
    /// `cleanup_pending`: what is left and why.
    pub warnings: Vec<WarningDto>,
}

/// Objects of an app that hold plaintext and wait for removal.
#[derive(Debug, Serialize, Deserialize)]
pub struct CleanupDto {
    /// `app_objects` (a deleted app's) or `stale_secret`.
    pub kind: String,
    /// When removal first failed.
    pub since: String,
    /// Failed removals so far.
    pub attempts: u32,
    /// When removal last failed.
    pub last_attempt: String,
    /// What the cluster target said.
    pub last_error: String,
}

impl From<&CleanupRecord> for CleanupDto {
    fn from(record: &CleanupRecord) -> Self {
        Self {
            kind: record.kind.as_str().to_owned(),
            since: record.since.to_rfc3339(),
            attempts: record.attempts,
            last_attempt: record.last_attempt.to_rfc3339(),
            last_error: record.last_error.clone(),
        }
    }
}

/// A tenant.
#[derive(Debug, Serialize)]
pub struct TenantDto {
    /// Id.
    pub tenant_id: String,
    /// Creation time.
    pub created_at: String,
}

impl TenantDto {
    /// From the stored record.
    pub fn new(tenant_id: &str, record: &TenantRecord) -> Self {
        Self {
            tenant_id: tenant_id.to_owned(),
            created_at: record.created_at.to_rfc3339(),
        }
    }
}

/// An app.
#[derive(Debug, Serialize)]
pub struct AppDto {
    /// Id.
    pub app_id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Env var names the app needs.
    pub required_env: Vec<String>,
    /// Registration time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

impl AppDto {
    /// From the stored record.
    pub fn new(app_id: &str, record: &AppRecord) -> Self {
        Self {
            app_id: app_id.to_owned(),
            tenant_id: record.tenant_id.to_string(),
            required_env: record
                .required_env
                .iter()
                .map(ToString::to_string)
                .collect(),
            created_at: record.created_at.to_rfc3339(),
            updated_at: record.updated_at.to_rfc3339(),
        }
    }
}

/// Secret metadata — never a value.
#[derive(Debug, Serialize)]
pub struct SecretMetaDto {
    /// Provider.
    pub provider: String,
    /// Env var name.
    pub key: String,
    /// `tenant` or `app`.
    pub scope: &'static str,
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
            scope: r.scope.kind().as_str(),
            created_at: r.created_at.to_rfc3339(),
            updated_at: r.updated_at.to_rfc3339(),
            version: r.version,
        }
    }
}

/// A token as listed: id and time only.
#[derive(Debug, Serialize)]
pub struct TokenDto {
    /// Id.
    pub token_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Mint time.
    pub created_at: String,
}

impl TokenDto {
    /// From the stored record.
    pub fn new(token_id: &str, record: &TokenRecord) -> Self {
        Self {
            token_id: token_id.to_owned(),
            tenant_id: record.tenant_id.to_string(),
            created_at: record.created_at.to_rfc3339(),
        }
    }
}

/// The injection outcome in a deploy answer.
#[derive(Debug, Serialize)]
pub struct InjectionDto {
    /// `injected`, `skipped` or `failed`.
    pub status: String,
    /// Why skipped or failed (`null` when injected).
    pub reason: Option<String>,
    /// `app-{app_id}-external-secrets`.
    pub secret_name: String,
    /// Number of keys injected.
    pub key_count: usize,
    /// Names injected.
    pub keys: Vec<String>,
    /// Names whose value could not be opened.
    pub undecryptable: Vec<String>,
    /// Notes.
    pub warnings: Vec<WarningDto>,
}

/// A deploy.
#[derive(Debug, Serialize)]
pub struct DeployDto {
    /// Id.
    pub deploy_id: String,
    /// App.
    pub app_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Image.
    pub image_ref: String,
    /// Replicas asked for.
    pub replicas: Option<i32>,
    /// Port asked for.
    pub port: Option<u16>,
    /// `succeeded` or `failed`.
    pub status: String,
    /// Why it failed.
    pub error: Option<String>,
    /// Start time.
    pub created_at: String,
    /// Notes.
    pub warnings: Vec<WarningDto>,
    /// What happened to the external secrets.
    pub external_secrets: InjectionDto,
}

impl From<&DeployRecord> for DeployDto {
    fn from(r: &DeployRecord) -> Self {
        let keys: Vec<String> = r.injection.injected.iter().map(|k| k.key.clone()).collect();
        Self {
            deploy_id: r.deploy_id.clone(),
            app_id: r.app_id.to_string(),
            tenant_id: r.tenant_id.to_string(),
            image_ref: r.image_ref.clone(),
            replicas: r.replicas,
            port: r.port,
            status: r.status.clone(),
            error: r.error.clone(),
            created_at: r.created_at.to_rfc3339(),
            warnings: r.warnings.iter().map(WarningDto::from).collect(),
            external_secrets: InjectionDto {
                status: r.injection.status.clone(),
                reason: r.injection.reason.clone(),
                secret_name: r.injection.secret_name.clone(),
                key_count: keys.len(),
                keys,
                undecryptable: r.injection.undecryptable.clone(),
                warnings: r.injection.warnings.iter().map(WarningDto::from).collect(),
            },
        }
    }
}

/// One env var of the effective set, without its value.
#[derive(Debug, Serialize)]
pub struct EffectiveEntryDto {
    /// Env var name.
    pub key: String,
    /// Provider of the winning record.
    pub provider: String,
    /// `app` or `tenant`.
    pub source: &'static str,
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
#[derive(Debug, Serialize)]
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
    /// Notes (`missing_required_env`, `env_name_conflict`).
    pub warnings: Vec<WarningDto>,
}

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
