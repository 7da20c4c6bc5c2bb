//! Apps on the wire: the app, its deletion, and what the cluster holds of
//! it (key names and rollout, never values).

use serde::{Deserialize, Serialize};

use super::{RolloutDto, WarningDto};
use crate::cluster::{DeploymentState, EnvFromSecret};
use crate::store::records::{AppRecord, CleanupRecord};

/// `PUT /v1/apps/{id}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutAppBody {
    /// The owning tenant (fixed once set).
    pub tenant_id: String,
    /// Env var names the app needs.
    #[serde(default)]
    pub required_env: Vec<String>,
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

/// `GET /v1/apps/{id}/cluster`: what the cluster holds for the app.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterDto {
    /// App.
    pub app_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// `kubernetes` or `manifests`.
    pub target: String,
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
