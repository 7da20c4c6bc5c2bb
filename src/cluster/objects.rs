//! The two Kubernetes objects a deploy applies, built in one place so that
//! every target writes exactly the same thing (SPEC §4, deploy contract).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvFromSource, PodSpec, PodTemplateSpec, Secret, SecretEnvSource,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::model::{AppId, TenantId};
use crate::resolve::EffectiveValue;

/// The field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "exsec";
/// Label naming the app; the Deployment selector (immutable) uses only it.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// Pod-template annotation that makes every deploy roll the pods.
pub const DEPLOY_ID_ANNOTATION: &str = "exsec.io/deploy-id";
/// The one container of the Deployment.
pub const CONTAINER_NAME: &str = "app";

/// `app-{app_id}-external-secrets` (≤ 63 bytes, since app ids are ≤ 42).
pub fn secret_name(app_id: &AppId) -> String {
    format!("app-{app_id}-external-secrets")
}

/// Labels on both objects.
fn labels(app_id: &AppId, tenant_id: &TenantId) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "exsec".to_owned(),
        ),
        ("exsec.io/app-id".to_owned(), app_id.to_string()),
        ("exsec.io/tenant-id".to_owned(), tenant_id.to_string()),
    ])
}

/// The Secret holding an app's effective set: type Opaque, values in
/// `data` — never `stringData`, whose keys server-side apply never removes
/// (kubernetes#108008).
pub fn secret(
    app_id: &AppId,
    tenant_id: &TenantId,
    namespace: &str,
    values: &[EffectiveValue],
) -> Secret {
    let data = values
        .iter()
        .map(|v| {
            (
                v.key.to_string(),
                ByteString(v.value.expose_secret().as_bytes().to_vec()),
            )
        })
        .collect();
    Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(app_id)),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels(app_id, tenant_id)),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(data),
        ..Secret::default()
    }
}

/// What a deploy asks of the Deployment.
#[derive(Debug, Clone)]
pub struct DeploymentParams<'a> {
    /// The app (Deployment name and selector label).
    pub app_id: &'a AppId,
    /// Its tenant (label).
    pub tenant_id: &'a TenantId,
    /// Target namespace.
    pub namespace: &'a str,
    /// Container image.
    pub image_ref: &'a str,
    /// Replicas, only when the caller gave them (an autoscaler keeps
    /// ownership otherwise).
    pub replicas: Option<i32>,
    /// Container port, if any.
    pub port: Option<u16>,
    /// Written into the pod template so every deploy rolls the pods.
    pub deploy_id: &'a str,
}

/// The app's Deployment: one container `app`, `envFrom` the Secret with
/// `optional: true` (always present; a no-op without secrets), no
/// service-account token.
pub fn deployment(params: &DeploymentParams<'_>) -> Deployment {
    let selector = BTreeMap::from([(NAME_LABEL.to_owned(), params.app_id.to_string())]);
    let mut pod_labels = labels(params.app_id, params.tenant_id);
    pod_labels.extend(selector.clone());
    let container = Container {
        name: CONTAINER_NAME.to_owned(),
        image: Some(params.image_ref.to_owned()),
        ports: params.port.map(|port| {
            vec![ContainerPort {
                container_port: i32::from(port),
                ..ContainerPort::default()
            }]
        }),
        env_from: Some(vec![EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: secret_name(params.app_id),
                optional: Some(true),
            }),
            ..EnvFromSource::default()
        }]),
        ..Container::default()
    };
    Deployment {
        metadata: ObjectMeta {
            name: Some(params.app_id.to_string()),
            namespace: Some(params.namespace.to_owned()),
            labels: Some(pod_labels.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(DeploymentSpec {
            replicas: params.replicas,
            selector: LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(BTreeMap::from([(
                        DEPLOY_ID_ANNOTATION.to_owned(),
                        params.deploy_id.to_owned(),
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    automount_service_account_token: Some(false),
                    containers: vec![container],
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}
