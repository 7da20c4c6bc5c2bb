//! The `manifests` target: writes exactly the objects that would be
//! applied, one file per app (`{app_id}.yaml`), into a directory — the k3s
//! auto-deploy folder on a k3s server node, or any folder for review or
//! GitOps.
//!
//! Files are written atomically (temp file, fsync, rename, fsync dir) with
//! mode 0600. The file is a YAML stream of JSON documents (JSON is YAML):
//! the Secret (while the app has one) and the Deployment. This target
//! necessarily writes decrypted values to disk — the one documented
//! exception to "no plaintext on disk"; `include_values = false` writes key
//! names only (empty values), for review: such files must not be applied.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use serde_json::Value;
use zeroize::Zeroizing;

use super::{
    AppObjects, BoxFuture, ClusterError, ClusterTarget, DeploymentState, SecretData, objects,
};
use crate::config::TargetKind;
use crate::model::AppId;

/// Annotation marking a Secret written without its values.
pub const VALUES_OMITTED_ANNOTATION: &str = "exsec.io/values-omitted";

/// Writes manifests into a directory.
#[derive(Debug, Clone)]
pub struct ManifestsTarget {
    dir: PathBuf,
    include_values: bool,
}

/// The objects of one app's file.
#[derive(Debug, Default)]
struct AppFile {
    secret: Option<Value>,
    deployment: Option<Value>,
}

impl ManifestsTarget {
    /// A target writing into `dir` (which must exist).
    pub fn new(dir: PathBuf, include_values: bool) -> Self {
        Self {
            dir,
            include_values,
        }
    }

    /// The file of one app.
    pub fn path(&self, app_id: &AppId) -> PathBuf {
        self.dir.join(format!("{app_id}.yaml"))
    }

    /// Puts one object into the app's file (`place` says where).
    fn write_document<'a, T: serde::Serialize>(
        &'a self,
        app_id: &'a AppId,
        kind: &str,
        object: &T,
        place: fn(&mut AppFile, Value),
    ) -> BoxFuture<'a, Result<(), ClusterError>> {
        let operation = format!(
            "write {kind} of app {app_id} to {}",
            self.path(app_id).display()
        );
        match serde_json::to_value(object) {
            Ok(value) => self.update(app_id, operation, move |file| place(file, value)),
            Err(error) => Box::pin(async move {
                Err(ClusterError::Failed {
                    operation,
                    message: error.to_string(),
                })
            }),
        }
    }

    /// Runs a read-modify-write of one app's file off the async threads.
    /// Deploys of one app are serialised by the deploy pipeline, so two
    /// updates of one file never race.
    fn update<'a, T: Send + 'static>(
        &'a self,
        app_id: &'a AppId,
        operation: String,
        change: impl FnOnce(&mut AppFile) -> T + Send + 'static,
    ) -> BoxFuture<'a, Result<T, ClusterError>> {
        let path = self.path(app_id);
        let dir = self.dir.clone();
        Box::pin(async move {
            let failed = |message: String| ClusterError::Failed {
                operation: operation.clone(),
                message,
            };
            let result = tokio::task::spawn_blocking(move || {
                let mut file = read_app_file(&path)?;
                let out = change(&mut file);
                write_app_file(&dir, &path, &file)?;
                Ok::<T, std::io::Error>(out)
            })
            .await;
            match result {
                Ok(Ok(out)) => Ok(out),
                Ok(Err(error)) => Err(failed(error.to_string())),
                Err(join) => Err(failed(join.to_string())),
            }
        })
    }
}

impl ClusterTarget for ManifestsTarget {
    fn kind(&self) -> TargetKind {
        TargetKind::Manifests
    }

    fn apply_secret<'a>(
        &'a self,
        app_id: &'a AppId,
        secret: &'a Secret,
    ) -> BoxFuture<'a, Result<(), ClusterError>> {
        let mut secret = secret.clone();
        if !self.include_values {
            for value in secret.data.iter_mut().flat_map(|data| data.values_mut()) {
                value.0.clear();
            }
            secret
                .metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(VALUES_OMITTED_ANNOTATION.to_owned(), "true".to_owned());
        }
        self.write_document(app_id, "Secret", &secret, |file, value| {
            file.secret = Some(value);
        })
    }

    fn delete_secret<'a>(&'a self, app_id: &'a AppId) -> BoxFuture<'a, Result<bool, ClusterError>> {
        let operation = format!(
            "remove Secret of app {app_id} from {}",
            self.path(app_id).display()
        );
        self.update(app_id, operation, |file| file.secret.take().is_some())
    }

    fn apply_deployment<'a>(
        &'a self,
        app_id: &'a AppId,
        deployment: &'a Deployment,
    ) -> BoxFuture<'a, Result<(), ClusterError>> {
        // Without the deploy id, the file changes only when something real
        // changed (SPEC §11.2): a GitOps diff of a no-op deploy is empty.
        let mut deployment = deployment.clone();
        if let Some(annotations) = deployment.metadata.annotations.as_mut() {
            annotations.remove(objects::DEPLOY_ID_ANNOTATION);
            if annotations.is_empty() {
                deployment.metadata.annotations = None;
            }
        }
        self.write_document(app_id, "Deployment", &deployment, |file, value| {
            file.deployment = Some(value);
        })
    }

    fn secret_data<'a>(
        &'a self,
        app_id: &'a AppId,
    ) -> BoxFuture<'a, Result<Option<SecretData>, ClusterError>> {
        let path = self.path(app_id);
        Box::pin(async move {
            let file = read_off_thread(path).await?;
            Ok(file.secret.map(|secret| secret_data_of(&secret)))
        })
    }

    fn app_objects<'a>(
        &'a self,
        app_id: &'a AppId,
    ) -> BoxFuture<'a, Result<AppObjects, ClusterError>> {
        let path = self.path(app_id);
        Box::pin(async move {
            let file = read_off_thread(path).await?;
            let deployment = file
                .deployment
                .and_then(|value| serde_json::from_value::<Deployment>(value).ok());
            Ok(AppObjects {
                secret_keys: file
                    .secret
                    .map(|s| secret_data_of(&s).into_keys().collect()),
                deployment: deployment.as_ref().map(DeploymentState::of),
            })
        })
    }

    fn delete_app<'a>(&'a self, app_id: &'a AppId) -> BoxFuture<'a, Result<(), ClusterError>> {
        let operation = format!("remove {}", self.path(app_id).display());
        self.update(app_id, operation, |file| *file = AppFile::default())
    }

    fn check(&self) -> BoxFuture<'_, Result<(), ClusterError>> {
        let dir = self.dir.clone();
        Box::pin(async move {
            match fs::metadata(&dir) {
                Ok(meta) if meta.is_dir() => Ok(()),
                Ok(_) => Err(ClusterError::Failed {
                    operation: format!("check {}", dir.display()),
                    message: "not a directory".to_owned(),
                }),
                Err(error) => Err(ClusterError::Failed {
                    operation: format!("check {}", dir.display()),
                    message: error.to_string(),
                }),
            }
        })
    }
}

/// Key → value of a Secret document; `None` values when they were omitted.
/// Reads an app's file on the blocking pool.
async fn read_off_thread(path: PathBuf) -> Result<AppFile, ClusterError> {
    let operation = format!("read {}", path.display());
    let failed = |message: String| ClusterError::Failed {
        operation: operation.clone(),
        message,
    };
    match tokio::task::spawn_blocking(move || read_app_file(&path)).await {
        Ok(Ok(file)) => Ok(file),
        Ok(Err(error)) => Err(failed(error.to_string())),
        Err(join) => Err(failed(join.to_string())),
    }
}

fn secret_data_of(secret: &Value) -> SecretData {
    use base64::Engine as _;
    let omitted = secret
        .pointer(&format!(
            "/metadata/annotations/{}",
            VALUES_OMITTED_ANNOTATION.replace('/', "~1")
        ))
        .is_some();
    let Some(data) = secret.get("data").and_then(Value::as_object) else {
        return SecretData::new();
    };
    data.iter()
        .map(|(key, value)| {
            let bytes = (!omitted)
                .then(|| value.as_str())
                .flatten()
                .and_then(|text| base64::engine::general_purpose::STANDARD.decode(text).ok())
                .map(Zeroizing::new);
            (key.clone(), bytes)
        })
        .collect()
}

/// Reads an app's file; a missing file is an empty one.
fn read_app_file(path: &Path) -> std::io::Result<AppFile> {
    let text = match fs::read_to_string(path) {
        Ok(text) => Zeroizing::new(text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(AppFile::default()),
        Err(error) => return Err(error),
    };
    let mut file = AppFile::default();
    let body: String = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let body = Zeroizing::new(body);
    for document in body
        .split("\n---\n")
        .map(str::trim)
        .filter(|d| !d.is_empty() && *d != "---")
    {
        let value: Value = serde_json::from_str(document.trim_start_matches("---").trim())
            .map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is not a file exsec wrote: {e}", path.display()),
                )
            })?;
        match value.get("kind").and_then(Value::as_str) {
            Some("Secret") => file.secret = Some(value),
            Some("Deployment") => file.deployment = Some(value),
            _ => {}
        }
    }
    Ok(file)
}

/// Writes an app's file atomically with mode 0600, or removes it when it
/// would be empty.
fn write_app_file(dir: &Path, path: &Path, file: &AppFile) -> std::io::Result<()> {
    let documents: Vec<&Value> = file.secret.iter().chain(file.deployment.iter()).collect();
    if documents.is_empty() {
        match fs::remove_file(path) {
            Ok(()) => return sync_dir(dir),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(error),
        }
    }
    let mut text = Zeroizing::new(String::from(
        "# Written by exsec. Do not edit: the next deploy of this app rewrites it.\n",
    ));
    for document in documents {
        text.push_str("---\n");
        let json =
            Zeroizing::new(serde_json::to_string_pretty(document).map_err(std::io::Error::other)?);
        text.push_str(&json);
        text.push('\n');
    }
    // The same bytes: leave the file (and its mtime) alone.
    if let Ok(existing) = fs::read(path).map(Zeroizing::new)
        && existing.as_slice() == text.as_bytes()
    {
        return Ok(());
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("manifest");
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)?;
        out.write_all(text.as_bytes())?;
        out.sync_all()?;
        fs::rename(&temp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}
