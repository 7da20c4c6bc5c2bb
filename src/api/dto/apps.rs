//! Apps on the wire: the app, its deletion, and what the cluster holds of
//! it (key names and rollout, never values).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::schema::{
    Schema, array, boolean, closed_object, count, list_of, names, nullable_string, record,
    reference, reference_to, string, warnings, words, words_of,
};
use super::{RolloutDto, WarningDto};
use crate::cluster::{DeploymentState, EnvFromSecret};
use crate::config::TargetKind;
use crate::store::records::{AppRecord, CleanupKind, CleanupRecord, RedeployRecord};

/// `PUT /v1/apps/{id}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutAppBody {
    /// The owning tenant (fixed once set).
    pub tenant_id: String,
    /// Env var names the app needs.
    #[serde(default)]
    pub required_env: Vec<String>,
    /// Redeploy when its effective set changes; left out: unchanged for an
    /// existing app, `deploy.auto_redeploy_default` for a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_redeploy: Option<bool>,
}

/// An app.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// Whether a change of its effective set redeploys it.
    pub auto_redeploy: bool,
    /// An automatic redeploy waiting to run (`GET /v1/apps/{id}` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redeploy_queued: Option<QueuedRedeployDto>,
    /// The deploy a rollback pinned the app to: it runs that deploy's
    /// secret versions until a normal deploy or an unpin (`null`: none).
    #[serde(default)]
    pub pinned_to: Option<String>,
}

/// An automatic redeploy waiting to run: since when, and how its attempts
/// went.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueuedRedeployDto {
    /// When the first change of this wait was queued.
    pub queued_at: String,
    /// When the last change was queued.
    pub changed_at: String,
    /// Failed attempts so far (retried with backoff).
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

impl From<&RedeployRecord> for QueuedRedeployDto {
    fn from(record: &RedeployRecord) -> Self {
        Self {
            queued_at: record.queued_at.to_rfc3339(),
            changed_at: record.changed_at.to_rfc3339(),
            attempts: record.attempts,
            last_error: record.last_error.clone(),
        }
    }
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
            auto_redeploy: record.auto_redeploy,
            redeploy_queued: None,
            pinned_to: record.pinned_to.clone(),
        }
    }
}

/// `GET /v1/apps`.
#[derive(Debug, Serialize, Deserialize)]
pub struct AppListDto {
    /// By id.
    pub apps: Vec<AppDto>,
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
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CleanupDto {
    /// `app_objects` (a deleted app's) or `stale_secret`.
    pub kind: CleanupKind,
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
            kind: record.kind,
            since: record.since.to_rfc3339(),
            attempts: record.attempts,
            last_attempt: record.last_attempt.to_rfc3339(),
            last_error: record.last_error.clone(),
        }
    }
}

/// `GET /v1/apps/{id}/cluster`: what the cluster holds for the app.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterDto {
    /// App.
    pub app_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// `kubernetes` or `manifests`.
    pub target: TargetKind,
    /// Objects holding plaintext that wait for removal, if any.
    pub cleanup_pending: Option<CleanupDto>,
    /// Namespace of the app's objects.
    pub namespace: String,
    /// The app's Secret: names only.
    pub secret: ClusterSecretDto,
    /// The app's Deployment, if it exists.
    pub deployment: Option<DeploymentDto>,
}

/// The app's Secret as the cluster holds it: key names, never values.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterSecretDto {
    /// `app-{app_id}-external-secrets`.
    pub name: String,
    /// Whether it exists.
    pub exists: bool,
    /// Its key names (empty when absent).
    pub keys: Vec<String>,
}

/// The parts of the app's Deployment that matter for injection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeploymentDto {
    /// Image of the `app` container.
    pub image: Option<String>,
    /// Secrets the `app` container reads through `envFrom`.
    pub env_from: Vec<EnvFromDto>,
    /// The `exsec.io/deploy-id` of the pod template.
    pub deploy_id: Option<String>,
    /// Rollout progress as the cluster reports it.
    pub rollout: RolloutDto,
}

impl From<&DeploymentState> for DeploymentDto {
    fn from(state: &DeploymentState) -> Self {
        Self {
            image: state.image.clone(),
            env_from: state.env_from.iter().map(EnvFromDto::from).collect(),
            deploy_id: state.deploy_id.clone(),
            rollout: RolloutDto::from(&state.rollout),
        }
    }
}

/// One `envFrom` Secret reference.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvFromDto {
    /// Secret name.
    pub secret_name: String,
    /// Whether a missing Secret is tolerated.
    pub optional: bool,
}

impl From<&EnvFromSecret> for EnvFromDto {
    fn from(source: &EnvFromSecret) -> Self {
        Self {
            secret_name: source.secret_name.clone(),
            optional: source.optional,
        }
    }
}

impl Schema for PutAppBody {
    const NAME: &'static str = "AppRequest";

    fn schema() -> Value {
        closed_object(
            &["tenant_id"],
            [
                ("tenant_id", reference("ResourceId")),
                (
                    "required_env",
                    json!({
                        "type": "array",
                        "items": reference("EnvKey"),
                        "default": [],
                        "description": "env var names the app needs; a deploy lacking one warns `missing_required_env`",
                    }),
                ),
                (
                    "auto_redeploy",
                    json!({
                        "type": ["boolean", "null"],
                        "description": "redeploy the app (its last successful deploy's image, replicas and port) when a secret write changes its effective set; left out: unchanged for an existing app, `deploy.auto_redeploy_default` for a new one",
                    }),
                ),
            ],
        )
    }
}

impl Schema for AppDto {
    const NAME: &'static str = "App";

    fn schema() -> Value {
        closed_object(
            &[
                "app_id",
                "tenant_id",
                "required_env",
                "created_at",
                "updated_at",
                "auto_redeploy",
                "pinned_to",
            ],
            [
                ("app_id", reference("ResourceId")),
                ("tenant_id", reference("ResourceId")),
                ("required_env", names()),
                ("created_at", reference("Timestamp")),
                ("updated_at", reference("Timestamp")),
                ("auto_redeploy", boolean()),
                (
                    "pinned_to",
                    json!({
                        "type": ["string", "null"],
                        "description": "the deploy a rollback pinned the app to; automatic redeploys wait until a normal deploy or `POST /v1/apps/{app_id}/unpin`",
                    }),
                ),
                (
                    "redeploy_queued",
                    json!({
                        "description": "an automatic redeploy waiting to run (GET of one app only): it runs once the tenant's secrets were quiet for deploy.auto_redeploy_quiet; failures are retried with backoff",
                        "type": "object",
                        "required": ["queued_at", "changed_at", "attempts", "last_error"],
                        "properties": {
                            "queued_at": reference("Timestamp"),
                            "changed_at": reference("Timestamp"),
                            "attempts": { "type": "integer", "minimum": 0 },
                            "last_error": nullable_string(),
                        },
                        "additionalProperties": false,
                    }),
                ),
            ],
        )
    }
}

impl AppListDto {
    /// Its schema (inline in the document).
    pub fn schema() -> Value {
        list_of::<AppDto>("apps")
    }
}

impl Schema for AppDeletedDto {
    const NAME: &'static str = "AppDeleted";

    /// `DELETE /v1/apps/{app_id}` with objects left to remove.
    fn schema() -> Value {
        record([
            ("app_id", reference("ResourceId")),
            ("deleted", json!({ "const": true })),
            ("warnings", warnings()),
        ])
    }
}

impl Schema for CleanupDto {
    const NAME: &'static str = "Cleanup";

    fn schema() -> Value {
        record([
            ("kind", words::<CleanupKind>()),
            ("since", reference("Timestamp")),
            ("attempts", count()),
            ("last_attempt", reference("Timestamp")),
            ("last_error", string()),
        ])
    }
}

impl Schema for ClusterDto {
    const NAME: &'static str = "ClusterApp";

    /// Key names, never values.
    fn schema() -> Value {
        record([
            ("app_id", reference("ResourceId")),
            ("tenant_id", reference("ResourceId")),
            (
                "target",
                words_of(&[TargetKind::Manifests, TargetKind::Kubernetes]),
            ),
            (
                "cleanup_pending",
                json!({ "oneOf": [{ "type": "null" }, reference_to::<CleanupDto>()] }),
            ),
            ("namespace", string()),
            (
                "secret",
                record([
                    ("name", secret_name()),
                    ("exists", boolean()),
                    ("keys", array(reference("EnvKey"))),
                ]),
            ),
            (
                "deployment",
                json!({ "oneOf": [{ "type": "null" }, DeploymentDto::schema()] }),
            ),
        ])
    }
}

impl DeploymentDto {
    /// Its schema (inline in [`ClusterDto`]'s).
    pub fn schema() -> Value {
        record([
            ("image", nullable_string()),
            (
                "env_from",
                array(record([("secret_name", string()), ("optional", boolean())])),
            ),
            ("deploy_id", nullable_string()),
            ("rollout", reference_to::<RolloutDto>()),
        ])
    }
}

/// `app-{app_id}-external-secrets`.
pub(super) fn secret_name() -> Value {
    super::schema::pattern("^app-[a-z0-9]([-a-z0-9]*[a-z0-9])?-external-secrets$")
}
