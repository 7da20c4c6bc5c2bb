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
/// Deployment annotation naming the deploy that applied it last (on the
/// Deployment's own metadata: on the pod template it would roll the pods
/// at every deploy).
pub const DEPLOY_ID_ANNOTATION: &str = "exsec.io/deploy-id";
/// Pod-template annotation: the secrets hash (SPEC §11.2). Pods roll when
/// the app's effective set changed, and only then.
pub const SECRETS_HASH_ANNOTATION: &str = "exsec.io/secrets-hash";
/// Pod-template annotation set by a deploy with `restart: true`.
pub const RESTARTED_AT_ANNOTATION: &str = "exsec.io/restarted-at";
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
    /// The deploy (Deployment metadata).
    pub deploy_id: &'a str,
    /// `exsec.io/secrets-hash` of the pod template.
    pub secrets_hash: &'a str,
    /// `exsec.io/restarted-at` of the pod template, if a deploy forced a roll.
    pub restarted_at: Option<&'a str>,
}

/// The app's Deployment: one container `app`, `envFrom` the Secret with
/// `optional: true` (always present; a no-op without secrets), no
/// service-account token.
pub fn deployment(params: &DeploymentParams<'_>) -> Deployment {
    let selector = BTreeMap::from([(NAME_LABEL.to_owned(), params.app_id.to_string())]);
    let mut pod_labels = labels(params.app_id, params.tenant_id);
    pod_labels.extend(selector.clone());
    let mut template_annotations = BTreeMap::from([(
        SECRETS_HASH_ANNOTATION.to_owned(),
        params.secrets_hash.to_owned(),
    )]);
    if let Some(restarted_at) = params.restarted_at {
        template_annotations.insert(RESTARTED_AT_ANNOTATION.to_owned(), restarted_at.to_owned());
    }
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
            annotations: Some(BTreeMap::from([(
                DEPLOY_ID_ANNOTATION.to_owned(),
                params.deploy_id.to_owned(),
            )])),
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
                    annotations: Some(template_annotations),
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
