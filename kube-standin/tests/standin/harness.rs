//! Shared setup: a stand-in with the `paas-apps` namespace, a kubeconfig file written by
//! the stand-in, and a kube-rs client built from that file exactly as exsec builds one.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, EnvFromSource, PodSpec, PodTemplateSpec, Secret, SecretEnvSource,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use kube_standin::StandIn;
use tempfile::TempDir;

/// The namespace exsec deploys into by default.
pub const NAMESPACE: &str = "paas-apps";

/// A running stand-in and a client for it.
pub struct Cluster {
    pub standin: StandIn,
    pub client: Client,
    pub kubeconfig: PathBuf,
    pub dir: TempDir,
}

impl Cluster {
    /// Starts a stand-in, creates `paas-apps`, writes a kubeconfig and builds a client.
    pub async fn start() -> Cluster {
        let standin = StandIn::start().await.expect("stand-in starts");
        standin
            .create_namespace(NAMESPACE)
            .expect("namespace created");
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = dir.path().join("kubeconfig");
        standin
            .write_kubeconfig(&kubeconfig, NAMESPACE)
            .expect("kubeconfig written");
        let client = client_for(&kubeconfig).await;
        Cluster {
            standin,
            client,
            kubeconfig,
            dir,
        }
    }

    /// Secrets in `paas-apps`.
    pub fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }

    /// Deployments in `paas-apps`.
    pub fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }

    /// How many requests with `method` whose path ends with `suffix` the stand-in saw.
    pub fn count(&self, method: &str, suffix: &str) -> usize {
        self.standin
            .requests()
            .iter()
            .filter(|request| request.method == method && request.path.ends_with(suffix))
            .count()
    }
}

/// A kube-rs client from a kubeconfig file, as exsec's `cluster.kubeconfig` does it.
pub async fn client_for(path: &std::path::Path) -> Client {
    let kubeconfig = Kubeconfig::read_from(path).expect("kubeconfig parses");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config from kubeconfig");
    Client::try_from(config).expect("client builds")
}

/// An exsec-style Secret: Opaque, values in `data`, managed-by labels.
pub fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels(&[
                ("app.kubernetes.io/managed-by", "exsec"),
                ("exsec.io/app-id", name),
            ])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(
            data.iter()
                .map(|(key, value)| ((*key).to_owned(), ByteString(value.as_bytes().to_vec())))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// A Secret that sends its values as `stringData` (what exsec must never do).
pub fn string_data_secret(name: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        string_data: Some(
            data.iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// An exsec-style Deployment (SPEC §4 step 4).
pub fn deployment(app: &str, image: &str, replicas: Option<i32>) -> Deployment {
    let selector = labels(&[("app.kubernetes.io/name", app)]);
    Deployment {
        metadata: ObjectMeta {
            name: Some(app.to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(DeploymentSpec {
            replicas,
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(selector),
                    annotations: Some(labels(&[("exsec.io/deploy-id", image)])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    automount_service_account_token: Some(false),
                    containers: vec![Container {
                        name: "app".to_owned(),
                        image: Some(image.to_owned()),
                        env_from: Some(vec![EnvFromSource {
                            secret_ref: Some(SecretEnvSource {
                                name: format!("app-{app}-external-secrets"),
                                optional: Some(true),
                            }),
                            ..EnvFromSource::default()
                        }]),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// The `data` of a Secret as UTF-8 strings.
pub fn data_of(secret: &Secret) -> BTreeMap<String, String> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(key, value)| (key.clone(), String::from_utf8_lossy(&value.0).into_owned()))
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect()
}
