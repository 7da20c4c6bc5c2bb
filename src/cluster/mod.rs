//! Where a deploy's objects go: a cluster target applies the Secret and
//! the Deployment built by [`objects`], deletes a stale Secret, and reads
//! back what the cluster holds (for `dry_run` and the cluster route).
//!
//! Targets: [`manifests`] (files, e.g. the k3s auto-deploy directory) now,
//! `kubernetes` (kube-rs server-side apply) next. The deploy pipeline only
//! sees [`ClusterTarget`].

pub mod kubernetes;
pub mod manifests;
pub mod objects;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use zeroize::Zeroizing;

use crate::config::TargetKind;
use crate::model::{AppId, RolloutState};

/// A boxed future, so targets can sit behind `dyn ClusterTarget`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The data of the app's Secret as the cluster holds it: key → value, or
/// `None` per value where the target does not keep values.
pub type SecretData = BTreeMap<String, Option<Zeroizing<Vec<u8>>>>;

/// Why a cluster call failed; the message is safe to show (no values).
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The target refused or failed the call.
    #[error("{operation} failed: {message}")]
    Failed {
        /// What was attempted (`apply Secret app-web-external-secrets`).
        operation: String,
        /// What the target said.
        message: String,
    },
    /// The call did not finish within its time.
    #[error("{operation} timed out after {seconds:.1}s")]
    Timeout {
        /// What was attempted.
        operation: String,
        /// The limit.
        seconds: f64,
    },
}

/// A place the deploy's objects are applied to.
pub trait ClusterTarget: Send + Sync {
    /// Which target this is (logs, readiness, an app's cluster view).
    fn kind(&self) -> TargetKind;

    /// Creates or updates the app's Secret so that it holds exactly these keys.
    fn apply_secret<'a>(
        &'a self,
        app_id: &'a AppId,
        secret: &'a Secret,
    ) -> BoxFuture<'a, Result<(), ClusterError>>;

    /// Deletes the app's Secret; `Ok(false)` when there was none.
    fn delete_secret<'a>(&'a self, app_id: &'a AppId) -> BoxFuture<'a, Result<bool, ClusterError>>;

    /// Creates or updates the app's Deployment.
    fn apply_deployment<'a>(
        &'a self,
        app_id: &'a AppId,
        deployment: &'a Deployment,
    ) -> BoxFuture<'a, Result<(), ClusterError>>;

    /// The app's Secret data as the cluster holds it, if the Secret exists.
    fn secret_data<'a>(
        &'a self,
        app_id: &'a AppId,
    ) -> BoxFuture<'a, Result<Option<SecretData>, ClusterError>>;

    /// What the cluster holds for the app: Secret key names (never
    /// values), the Deployment's `envFrom` and rollout.
    fn app_objects<'a>(
        &'a self,
        app_id: &'a AppId,
    ) -> BoxFuture<'a, Result<AppObjects, ClusterError>>;

    /// Removes everything of the app (app deletion), best-effort.
    fn delete_app<'a>(&'a self, app_id: &'a AppId) -> BoxFuture<'a, Result<(), ClusterError>>;

    /// Whether the target answers (readiness).
    fn check(&self) -> BoxFuture<'_, Result<(), ClusterError>>;
}

/// What the cluster holds for one app.
#[derive(Debug, Clone, Default)]
pub struct AppObjects {
    /// Key names of `app-{app_id}-external-secrets`, if it exists.
    pub secret_keys: Option<Vec<String>>,
    /// The app's Deployment, if it exists.
    pub deployment: Option<DeploymentState>,
}

/// The parts of a Deployment that matter for injection.
#[derive(Debug, Clone)]
pub struct DeploymentState {
    /// Image of the `app` container.
    pub image: Option<String>,
    /// Secrets the `app` container reads through `envFrom`.
    pub env_from: Vec<EnvFromSecret>,
    /// The `exsec.io/deploy-id` of the Deployment (of its pod template
    /// when an exsec before schema 3 applied it).
    pub deploy_id: Option<String>,
    /// `spec.paused`: someone holds its rollouts (an automatic redeploy
    /// leaves it alone).
    pub paused: bool,
    /// Rollout progress as the cluster reports it.
    pub rollout: Rollout,
}

/// One `envFrom` Secret reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFromSecret {
    /// Secret name.
    pub secret_name: String,
    /// Whether a missing Secret is tolerated.
    pub optional: bool,
}

/// Rollout status of a Deployment.
#[derive(Debug, Clone)]
pub struct Rollout {
    /// `complete`, `progressing`, or `unknown` (a target that cannot tell).
    pub status: RolloutState,
    /// Desired replicas.
    pub replicas: Option<i32>,
    /// Replicas running the current template.
    pub updated_replicas: Option<i32>,
    /// Ready replicas.
    pub ready_replicas: Option<i32>,
    /// Available replicas.
    pub available_replicas: Option<i32>,
}

impl DeploymentState {
    /// Reads the state of a Deployment object.
    pub fn of(deployment: &Deployment) -> Self {
        let spec = deployment.spec.as_ref();
        let template = spec.map(|s| &s.template);
        let container = template.and_then(|t| t.spec.as_ref()).and_then(|p| {
            p.containers
                .iter()
                .find(|c| c.name == objects::CONTAINER_NAME)
        });
        let env_from = container
            .and_then(|c| c.env_from.as_ref())
            .map(|sources| {
                sources
                    .iter()
                    .filter_map(|s| s.secret_ref.as_ref())
                    .map(|r| EnvFromSecret {
                        secret_name: r.name.clone(),
                        optional: r.optional.unwrap_or(false),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let annotation = |meta: Option<&ObjectMeta>| {
            meta.and_then(|m| m.annotations.as_ref())
                .and_then(|a| a.get(objects::DEPLOY_ID_ANNOTATION))
                .cloned()
        };
        let deploy_id = annotation(Some(&deployment.metadata))
            .or_else(|| annotation(template.and_then(|t| t.metadata.as_ref())));
        let status = deployment.status.as_ref();
        let desired = spec.and_then(|s| s.replicas).unwrap_or(1);
        let rollout = match status {
            None => Rollout {
                status: RolloutState::Unknown,
                replicas: spec.and_then(|s| s.replicas),
                updated_replicas: None,
                ready_replicas: None,
                available_replicas: None,
            },
            Some(status) => {
                let generation = deployment.metadata.generation.unwrap_or(0);
                let observed = status.observed_generation.unwrap_or(0) >= generation;
                let updated = status.updated_replicas.unwrap_or(0);
                let available = status.available_replicas.unwrap_or(0);
                let total = status.replicas.unwrap_or(0);
                let complete =
                    observed && updated >= desired && available >= desired && total <= updated;
                Rollout {
                    status: if complete {
                        RolloutState::Complete
                    } else {
                        RolloutState::Progressing
                    },
                    replicas: Some(desired),
                    updated_replicas: status.updated_replicas,
                    ready_replicas: status.ready_replicas,
                    available_replicas: status.available_replicas,
                }
            }
        };
        Self {
            image: container.and_then(|c| c.image.clone()),
            env_from,
            deploy_id,
            paused: spec.and_then(|s| s.paused).unwrap_or(false),
            rollout,
        }
    }
}
