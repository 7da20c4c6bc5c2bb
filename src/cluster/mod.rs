//! Where a deploy's objects go: a cluster target applies the Secret and
//! the Deployment built by [`objects`], deletes a stale Secret, and reads
//! back what the cluster holds (for `dry_run` and the cluster route).
//!
//! Targets: [`manifests`] (files, e.g. the k3s auto-deploy directory) now,
//! `kubernetes` (kube-rs server-side apply) next. The deploy pipeline only
//! sees [`ClusterTarget`].

pub mod manifests;
pub mod objects;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use zeroize::Zeroizing;

use crate::model::AppId;

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
    /// Short name for logs and readiness (`manifests`, `kubernetes`).
    fn name(&self) -> &'static str;

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

    /// Removes everything of the app (app deletion), best-effort.
    fn delete_app<'a>(&'a self, app_id: &'a AppId) -> BoxFuture<'a, Result<(), ClusterError>>;

    /// Whether the target answers (readiness).
    fn check(&self) -> BoxFuture<'_, Result<(), ClusterError>>;
}
