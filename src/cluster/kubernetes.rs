//! The `kubernetes` target: server-side apply through kube-rs (field
//! manager `exsec`, force), delete of a stale Secret, and reads of what the
//! cluster holds. The only importer of kube.
//!
//! Retries: kube 5's client already retries 429/503/504 honouring
//! `Retry-After`; nothing here adds another layer. Every call runs inside
//! the deploy's budget (the caller wraps it) and the client's own read
//! timeout is lowered from kube's 295 s so a hung server cannot hold a
//! connection past any sane budget.

use std::fmt::Debug;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;
use zeroize::Zeroizing;

use super::objects::{self, FIELD_MANAGER};
use super::{AppObjects, BoxFuture, ClusterError, ClusterTarget, DeploymentState, SecretData};
use crate::config::TargetKind;
use crate::model::AppId;

/// Longest a single HTTP read from the API server may take.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Applies to a Kubernetes API server.
pub struct KubernetesTarget {
    client: Client,
    namespace: String,
    create_namespace: bool,
    namespace_ready: OnceCell<()>,
}

impl KubernetesTarget {
    /// Builds the client: from `kubeconfig` if given, else the in-cluster
    /// service account, else `KUBECONFIG` / `~/.kube/config`. Does not
    /// contact the cluster (readiness does).
    pub async fn connect(
        kubeconfig: Option<&Path>,
        namespace: &str,
        create_namespace: bool,
    ) -> Result<Self, ClusterError> {
        let failed = |message: String| ClusterError::Failed {
            operation: "configure the Kubernetes client".to_owned(),
            message,
        };
        let mut config = match kubeconfig {
            Some(path) => {
                let file = Kubeconfig::read_from(path)
                    .map_err(|e| failed(format!("cannot read kubeconfig {}: {e}", path.display())))?;
                Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                    .await
                    .map_err(|e| failed(format!("kubeconfig {}: {e}", path.display())))?
            }
            None if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() => Config::incluster()
                .map_err(|e| failed(format!("in-cluster service account: {e}")))?,
            None => Config::from_kubeconfig(&KubeConfigOptions::default())
                .await
                .map_err(|e| {
                    failed(format!(
                        "no cluster.kubeconfig set, not running in a cluster, and no usable KUBECONFIG or ~/.kube/config ({e}); on k3s set cluster.kubeconfig = \"/etc/rancher/k3s/k3s.yaml\""
                    ))
                })?,
        };
        config.read_timeout = Some(READ_TIMEOUT);
        config.connect_timeout = Some(CONNECT_TIMEOUT);
        let client = Client::try_from(config).map_err(|e| failed(e.to_string()))?;
        Ok(Self {
            client,
            namespace: namespace.to_owned(),
            create_namespace,
            namespace_ready: OnceCell::new(),
        })
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Server-side applies `object`, a `kind` called `name`, through `api`
    /// (the namespace is applied first when exsec creates it).
    async fn apply<K>(
        &self,
        api: Api<K>,
        kind: &str,
        name: &str,
        object: &K,
    ) -> Result<(), ClusterError>
    where
        K: kube::Resource + Serialize,
    {
        self.ensure_namespace().await?;
        server_side_apply(&self.client, &api, name, object)
            .await
            .map_err(|e| api_error(format!("apply {kind} {name}"), e))
    }

    /// Applies the namespace once, when `cluster.create_namespace` is set.
    async fn ensure_namespace(&self) -> Result<(), ClusterError> {
        if !self.create_namespace {
            return Ok(());
        }
        self.namespace_ready
            .get_or_try_init(|| async {
                let namespace = Namespace {
                    metadata: ObjectMeta {
                        name: Some(self.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    ..Namespace::default()
                };
                let api = Api::<Namespace>::all(self.client.clone());
                server_side_apply(&self.client, &api, &self.namespace, &namespace)
                    .await
                    .map_err(|e| api_error(format!("apply Namespace {}", self.namespace), e))
            })
            .await
            .map(|_| ())
    }
}

impl ClusterTarget for KubernetesTarget {
    fn kind(&self) -> TargetKind {
        TargetKind::Kubernetes
    }

    fn apply_secret<'a>(
        &'a self,
        app_id: &'a AppId,
        secret: &'a Secret,
    ) -> BoxFuture<'a, Result<(), ClusterError>> {
        Box::pin(async move {
            let name = objects::secret_name(app_id);
            self.apply(self.secrets(), "Secret", &name, secret).await
        })
    }

    fn delete_secret<'a>(&'a self, app_id: &'a AppId) -> BoxFuture<'a, Result<bool, ClusterError>> {
        Box::pin(async move {
            let name = objects::secret_name(app_id);
            delete(self.secrets(), "Secret", &name).await
        })
    }

    fn apply_deployment<'a>(
        &'a self,
        app_id: &'a AppId,
        deployment: &'a Deployment,
    ) -> BoxFuture<'a, Result<(), ClusterError>> {
        Box::pin(async move {
            let name = app_id.as_str();
            self.apply(self.deployments(), "Deployment", name, deployment)
                .await
        })
    }

    fn secret_data<'a>(
        &'a self,
        app_id: &'a AppId,
    ) -> BoxFuture<'a, Result<Option<SecretData>, ClusterError>> {
        Box::pin(async move {
            let name = objects::secret_name(app_id);
            let secret = read_secret(&self.client, &self.secrets(), &name).await?;
            Ok(secret.map(|secret| {
                secret
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(key, value)| (key, Some(Zeroizing::new(value.0))))
                    .collect()
            }))
        })
    }

    fn app_objects<'a>(
        &'a self,
        app_id: &'a AppId,
    ) -> BoxFuture<'a, Result<AppObjects, ClusterError>> {
        Box::pin(async move {
            let name = objects::secret_name(app_id);
            let secret = read_secret(&self.client, &self.secrets(), &name).await?;
            let deployment = read(self.deployments(), "Deployment", app_id.as_str()).await?;
            Ok(AppObjects {
                // Only the names: each value is wiped as it is dropped.
                secret_keys: secret.map(|s| {
                    s.data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(key, value)| {
                            drop(Zeroizing::new(value.0));
                            key
                        })
                        .collect()
                }),
                deployment: deployment.as_ref().map(DeploymentState::of),
            })
        })
    }

    fn delete_app<'a>(&'a self, app_id: &'a AppId) -> BoxFuture<'a, Result<(), ClusterError>> {
        Box::pin(async move {
            self.delete_secret(app_id).await?;
            delete(self.deployments(), "Deployment", app_id.as_str())
                .await
                .map(drop)
        })
    }

    fn check(&self) -> BoxFuture<'_, Result<(), ClusterError>> {
        Box::pin(async move {
            self.client
                .apiserver_version()
                .await
                .map(drop)
                .map_err(|e| api_error("read /version".to_owned(), e))
        })
    }
}

/// The `kind` called `name`, if it exists. Not for Secrets
/// ([`read_secret`]): kube logs an answer that does not decode.
async fn read<K>(api: Api<K>, kind: &str, name: &str) -> Result<Option<K>, ClusterError>
where
    K: Clone + DeserializeOwned + Debug,
{
    api.get_opt(name)
        .await
        .map_err(|e| api_error(format!("read {kind} {name}"), e))
}

/// The Secret called `name`, if it exists (a dry run compares its values;
/// an app's cluster view lists its keys). Like [`read`], but the answer's
/// text (every value, base64-encoded) is wiped when dropped, and one that
/// does not decode is refused with a message of exsec's own: kube's typed
/// `get` logs the whole answer then, and a decoding error can quote the
/// offending string — a value.
async fn read_secret(
    client: &Client,
    api: &Api<Secret>,
    name: &str,
) -> Result<Option<Secret>, ClusterError> {
    let operation = || format!("read Secret {name}");
    let request = kube::core::Request::new(api.resource_url())
        .get(name, &kube::api::GetParams::default())
        .map_err(|e| api_error(operation(), kube::Error::BuildRequest(e)))?;
    match client.request_text(request).await {
        Ok(text) => {
            let text = Zeroizing::new(text);
            serde_json::from_str(&text)
                .map(Some)
                .map_err(|_| ClusterError::Failed {
                    operation: operation(),
                    message: "the API server's answer is not a Secret".to_owned(),
                })
        }
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
        Err(error) => Err(api_error(operation(), error)),
    }
}

/// Deletes the `kind` called `name`; `false` when it was already gone.
async fn delete<K>(api: Api<K>, kind: &str, name: &str) -> Result<bool, ClusterError>
where
    K: Clone + DeserializeOwned + Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(e) => Err(api_error(format!("delete {kind} {name}"), e)),
    }
}

/// Server-side applies `object` as `name` at `api`'s URL. The answer (the
/// object as the cluster now holds it) is checked for an error status but
/// never decoded: nothing reads it, decoding a Secret's answer would
/// base64-decode every value into memory that is not zeroized, and kube's
/// typed `Api::patch` logs the whole answer when it does not decode. What
/// text arrives is wiped when dropped.
async fn server_side_apply<K>(
    client: &Client,
    api: &Api<K>,
    name: &str,
    object: &K,
) -> Result<(), kube::Error>
where
    K: kube::Resource + Serialize,
{
    let request = kube::core::Request::new(api.resource_url())
        .patch(name, &apply_params(), &Patch::Apply(object))
        .map_err(kube::Error::BuildRequest)?;
    client.request_text(request).await.map(Zeroizing::new)?;
    Ok(())
}

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// A kube error as a cluster error: the API server's message and reason
/// for `Status` answers, the transport error otherwise. kube's errors
/// never carry request bodies, so no value can leak through here.
fn api_error(operation: String, error: kube::Error) -> ClusterError {
    let message = match &error {
        kube::Error::Api(status) => format!(
            "{} ({} {})",
            status.message,
            status.code,
            if status.reason.is_empty() {
                "error"
            } else {
                status.reason.as_str()
            }
        ),
        other => crate::error_chain::chain(other).to_string(),
    };
    ClusterError::Failed { operation, message }
}
