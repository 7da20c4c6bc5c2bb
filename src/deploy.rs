//! The deploy pipeline (SPEC §4 deploy contract): check the request,
//! resolve and open the app's effective set, inject it best-effort as
//! `app-{app_id}-external-secrets`, apply the Deployment, record the deploy
//! and its audit events in one transaction.
//!
//! Injection never fails a deploy: a missing master key or an unopenable
//! value leaves the live Secret untouched (a partial apply would strip
//! credentials from a running app); an empty set deletes a stale Secret;
//! a Secret apply error is reported and the deploy goes on. Only the
//! Deployment apply failing fails the deploy — and the answer still says
//! what happened to the secrets.
//!
//! Deploys of one app are serialised; different apps run in parallel.
//! Every cluster call is bounded by what is left of the deploy budget.
//! Objects holding plaintext that could not be removed are recorded and
//! removed later ([`cleanup`]). A final record a storage fault kept off the
//! disk waits in [`pending`] and is written as soon as the store heals.

mod bounds;
pub mod cleanup;
mod inject;
pub mod pending;
mod pod_template;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::OwnedMutexGuard;

use crate::audit::{NewEvent, event};
use crate::cluster::ClusterTarget;
use crate::cluster::objects::{self, DeploymentParams};
use crate::crypto::{self, HashedEntry, InstallationKey, SharedKeyring};
use crate::model::{
    AppId, DeployStatus, DeployTrigger, EnvKey, ImageRef, InjectionReason, InjectionStatus, Port,
    Replicas, TenantId, Timestamp,
};
use crate::resolve::{self, EffectiveSet, Warning};
use crate::store::deploys::deploy_id;
use crate::store::pins::PinChange;
use crate::store::records::{
    AppRecord, DeployRecord, IdempotencyRecord, InjectionRecord, WarningRecord,
};
use crate::store::{LayoutRead, SecretLayout, Store, StoreError};
use bounds::{AppLocks, Budget};
use cleanup::SecretOutcome;
use pod_template::PodTemplate;

pub use crate::model::{MAX_IMAGE_REF_LEN, MAX_REPLICAS};

/// Deploy settings from the config.
#[derive(Debug, Clone)]
pub struct DeploySettings {
    /// Namespace of the app objects.
    pub namespace: String,
    /// Budget of one deploy's cluster work.
    pub timeout: Duration,
    /// How long a deploy waits for another deploy of the same app.
    pub queue_timeout: Duration,
    /// `auto_redeploy` of an app registered without it.
    pub auto_redeploy_default: bool,
}

/// A deploy as asked for, after authentication and authorization, its
/// fields parsed by the caller (the API handler): the pipeline checks only
/// how they relate to the app.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    /// The app of the path.
    pub app_id: AppId,
    /// Its record.
    pub app: AppRecord,
    /// `tenant_id` of the body, if any (empty counts as missing).
    pub tenant_id: Option<TenantId>,
    /// `app_id` of the body, if any, as sent: any value other than the
    /// path's (or empty) is `app_id_mismatch`, so it is not parsed.
    pub body_app_id: Option<String>,
    /// Image to roll out.
    pub image_ref: ImageRef,
    /// Replicas, if given.
    pub replicas: Option<Replicas>,
    /// Container port, if given.
    pub port: Option<Port>,
    /// `?dry_run=true`.
    pub dry_run: bool,
    /// `"restart": true`: roll the pods even if nothing changed.
    pub restart: bool,
    /// What started it.
    pub trigger: DeployTrigger,
    /// A rollback: the earlier deploy whose exact secret versions are
    /// injected (image, replicas and port are the caller's, taken from
    /// that deploy). `None`: the app's current effective set.
    pub rollback_to: Option<String>,
    /// `Idempotency-Key` header and the hash of the request it came with.
    pub idempotency: Option<(String, [u8; 32])>,
    /// Audit actor.
    pub actor: String,
}

/// Why a deploy was refused before anything was applied.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// `app_id` in the body differs from the path. Neither this error nor
    /// the next keeps the value sent: an error message never repeats a
    /// body field, which may be a misplaced secret.
    #[error("app_id in the body differs from app {path} in the path; send {path} or omit app_id")]
    AppIdMismatch {
        /// Path value.
        path: String,
    },
    /// `tenant_id` is not the app's tenant.
    #[error(
        "tenant_id in the body is not the tenant of app {app_id}; send its tenant or omit tenant_id"
    )]
    TenantMismatch {
        /// The app.
        app_id: String,
    },
    /// Another deploy of the app held it longer than the queue timeout.
    #[error("another deploy of app {app_id} is still running; retry when it has finished")]
    InProgress {
        /// The app.
        app_id: String,
    },
    /// The idempotency key was used with a different request.
    #[error("Idempotency-Key {key} was already used for a different deploy request of this app")]
    IdempotencyKeyReused {
        /// The key.
        key: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The deploy ran, but its final record could not be written (a
    /// storage fault); it is written as soon as the store heals.
    #[error(
        "deploy {} finished ({}), but storage is failing and its record is not saved yet; exsec saves it as soon as storage recovers",
        .record.deploy_id,
        .record.status
    )]
    RecordPending {
        /// The deploy as it finished.
        record: Box<DeployRecord>,
        /// Why it could not be written.
        #[source]
        source: StoreError,
    },
}

/// What a deploy produced.
pub enum DeployResult {
    /// A deploy ran (or was replayed from its idempotency key).
    Done(Box<DeployRecord>),
    /// `dry_run`: what would change; nothing applied or recorded.
    DryRun(Box<DryRunReport>),
}

/// The answer of a dry run: names only, never values.
#[derive(Debug, Clone)]
pub struct DryRunReport {
    /// App.
    pub app_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// What injection would do.
    pub external_secrets: DryRunInjection,
    /// Notes.
    pub warnings: Vec<WarningRecord>,
}

/// The injection part of a dry run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DryRunInjection {
    /// What a real deploy would report.
    pub status: InjectionStatus,
    /// Why skipped or failed.
    pub reason: Option<InjectionReason>,
    /// The Secret's name.
    pub secret_name: String,
    /// Names that would be added to the cluster's Secret.
    pub added: Vec<String>,
    /// Names that would be removed from it.
    pub removed: Vec<String>,
    /// Names whose value would change.
    pub changed: Vec<String>,
    /// Names that would stay as they are.
    pub unchanged: Vec<String>,
}

/// Runs deploys.
pub struct Deployer {
    store: Arc<Store>,
    keyring: Arc<SharedKeyring>,
    cluster: Arc<dyn ClusterTarget>,
    settings: DeploySettings,
    locks: AppLocks,
    /// Last deploy sequence handed out.
    last_seq: AtomicU64,
    /// Wakes the task retrying removals ([`cleanup`]).
    cleanup_wake: tokio::sync::Notify,
    /// Final records waiting for the store to heal.
    pending: Arc<pending::PendingRecords>,
    /// The key of the secrets hash on pod templates.
    installation_key: InstallationKey,
}

/// The error of a deploy exsec stopped in the middle of (crash, kill, power
/// cut), filed at the next start.
pub const INTERRUPTED: &str = "interrupted: exsec stopped before this deploy finished; the cluster may hold part of it (check `exsec doctor`), deploy again";

impl Deployer {
    /// A deployer continuing after the store's last deploy id, once the
    /// deploys a stop interrupted are filed as failed.
    pub async fn new(
        store: Arc<Store>,
        keyring: Arc<SharedKeyring>,
        cluster: Arc<dyn ClusterTarget>,
        settings: DeploySettings,
    ) -> Result<Self, StoreError> {
        // The records already read "failed, interrupted"; filing them only
        // audits that. On a full or failing disk the daemon starts degraded
        // and the next start files them: ids are never reused (the
        // sequence is already on disk).
        let filed = match store.write_async(|w| w.finish_interrupted_deploys()).await {
            Err(error) if error.fault().is_some() => {
                tracing::warn!(
                    error = %crate::error_chain::chain(&error),
                    "cannot file interrupted deploys (storage is failing); they stay recorded as interrupted and are filed at the next start"
                );
                Vec::new()
            }
            filed => filed?,
        };
        for record in filed {
            tracing::warn!(
                app_id = %record.app_id,
                deploy_id = %record.deploy_id,
                "a deploy was interrupted by a stop; it is recorded as failed"
            );
        }
        let (last_seq, installation_key) = store
            .read_async(|r| Ok((r.last_deploy_seq()?, r.installation_key()?)))
            .await?;
        Ok(Self {
            store,
            keyring,
            cluster,
            settings,
            locks: AppLocks::default(),
            last_seq: AtomicU64::new(last_seq),
            cleanup_wake: tokio::sync::Notify::new(),
            pending: Arc::default(),
            installation_key,
        })
    }

    /// Final records waiting for the store to heal (run their writer task
    /// with [`pending::PendingRecords::run`]).
    pub fn pending(&self) -> &Arc<pending::PendingRecords> {
        &self.pending
    }

    /// The cluster target.
    pub fn cluster(&self) -> &Arc<dyn ClusterTarget> {
        &self.cluster
    }

    /// The settings.
    pub fn settings(&self) -> &DeploySettings {
        &self.settings
    }

    /// Takes the app's deploy lock: deploys, deletions and shreds of one
    /// app run one at a time; refused while another holds it past
    /// `deploy.queue_timeout`.
    async fn lock_app(&self, app_id: &AppId) -> Result<OwnedMutexGuard<()>, DeployError> {
        self.locks
            .acquire(app_id, self.settings.queue_timeout)
            .await
            .ok_or_else(|| DeployError::InProgress {
                app_id: app_id.to_string(),
            })
    }

    /// Runs one deploy request through the whole contract.
    pub async fn deploy(&self, request: DeployRequest) -> Result<DeployResult, DeployError> {
        let checked = check(&request)?;
        let _serial = self.lock_app(&request.app_id).await?;
        let budget = Budget::new(self.settings.timeout);

        if !request.dry_run
            && let Some((key, hash)) = &request.idempotency
            && let Some(replay) = self.replay(&request.app_id, key, hash).await?
        {
            return Ok(DeployResult::Done(Box::new(replay)));
        }

        let keyring = self.keyring.snapshot();
        let (layout, previous) = self
            .read_layout(&request.app_id, request.rollback_to.as_deref())
            .await?;
        // The set borrows its names from the records in `layout`.
        let set = layout
            .as_ref()
            .map(|l| open_layout(&self.keyring, l))
            .unwrap_or_default();
        let mut warnings = checked.warnings;
        warnings.extend(set.warnings.iter().map(warning_record));
        let missing = set.missing(&request.app.required_env);
        if !missing.is_empty() {
            warnings.push(missing_required_warning(&missing));
        }
        let keyless = keyring.is_empty();

        if request.dry_run {
            return Ok(DeployResult::DryRun(Box::new(
                self.dry_run(
                    &request,
                    &checked.tenant_id,
                    &set,
                    keyless,
                    warnings,
                    &budget,
                )
                .await,
            )));
        }

        let seq = self.last_seq.fetch_add(1, Ordering::SeqCst) + 1;
        let deploy_id = deploy_id(seq);
        let created_at = Timestamp::now();
        let secret_name = objects::secret_name(&request.app_id);
        let mut record = DeployRecord {
            deploy_id: deploy_id.clone(),
            app_id: request.app_id.clone(),
            tenant_id: checked.tenant_id.clone(),
            image_ref: request.image_ref.to_string(),
            replicas: request.replicas.map(Replicas::get),
            port: request.port.map(Port::get),
            status: DeployStatus::Failed,
            error: Some(INTERRUPTED.to_owned()),
            created_at,
            injection: InjectionRecord {
                status: InjectionStatus::Failed,
                reason: Some(InjectionReason::Interrupted),
                secret_name: secret_name.clone(),
                injected: Vec::new(),
                undecryptable: Vec::new(),
                warnings: Vec::new(),
            },
            warnings,
            trigger: request.trigger,
            secrets_hash: None,
            restarted_at: None,
            rollout: None,
        };
        let mut created = NewEvent::new(event::DEPLOY_CREATED, &request.actor)
            .tenant(checked.tenant_id.as_str())
            .app(request.app_id.as_str())
            .with("deploy_id", deploy_id.as_str())
            .with("image_ref", request.image_ref.as_str());
        if let Some(target) = &request.rollback_to {
            created = created.with("rollback_to", target.as_str());
        }
        let interrupted = record.clone();
        self.store
            .write_async(move |w| w.start_deploy(&interrupted, vec![created.clone()]))
            .await?;

        let (injection, injection_event, secret_outcome) = self
            .inject(
                &request,
                &checked.tenant_id,
                &set,
                keyless,
                &deploy_id,
                &budget,
            )
            .await;

        let template = PodTemplate::after(
            previous.as_ref(),
            match secret_outcome {
                // The Secret now holds exactly this set.
                SecretOutcome::Replaced => Some(self.secrets_hash(&set)),
                // The Secret kept what it had: so does the template.
                SecretOutcome::Untouched | SecretOutcome::Stale(_) => None,
            },
            request.restart,
            || self.secrets_hash(&EffectiveSet::default()),
        );
        record.secrets_hash = Some(template.secrets_hash.clone());
        record.restarted_at = template.restarted_at.clone();
        let deployment = objects::deployment(&DeploymentParams {
            app_id: &request.app_id,
            tenant_id: &checked.tenant_id,
            namespace: &self.settings.namespace,
            image_ref: request.image_ref.as_str(),
            replicas: request.replicas.map(Replicas::get),
            port: request.port.map(Port::get),
            deploy_id: &deploy_id,
            secrets_hash: &template.secrets_hash,
            restarted_at: template.restarted_at.as_deref(),
        });
        let applied = budget
            .run(
                format!("apply Deployment {}", request.app_id),
                self.cluster.apply_deployment(&request.app_id, &deployment),
            )
            .await;
        let error = applied.err().map(|e| e.to_string());

        record.status = if error.is_none() {
            DeployStatus::Succeeded
        } else {
            DeployStatus::Failed
        };
        record.error = error.clone();
        if error.is_none() {
            record.rollout =
                Some(template.change_from(previous.as_ref(), &record.image_ref, record.port));
        }
        record.injection = InjectionRecord {
            secret_name,
            ..injection
        };
        let mut events = vec![
            injection_event
                .tenant(checked.tenant_id.as_str())
                .app(request.app_id.as_str()),
        ];
        if let Some(error) = &error {
            events.push(
                NewEvent::new(event::DEPLOY_FAILED, &request.actor)
                    .tenant(checked.tenant_id.as_str())
                    .app(request.app_id.as_str())
                    .with("deploy_id", deploy_id.as_str())
                    .with("error", error.as_str()),
            );
        }
        let idempotency = request.idempotency.clone().map(|(key, hash)| {
            (
                key,
                IdempotencyRecord {
                    request_sha256: hash,
                    deploy_id: deploy_id.clone(),
                    created_at,
                },
            )
        });
        let final_record = Arc::new(pending::FinalRecord {
            record: record.clone(),
            events,
            idempotency,
            secret_outcome,
            pin: pin_change(&request, record.status),
        });
        let written = final_record.clone();
        if let Err(error) = self.store.write_async(move |w| written.write(w)).await {
            if error.fault().is_none() {
                return Err(error.into());
            }
            // The cluster holds this deploy: never lose its record.
            self.pending.push(final_record);
            tracing::warn!(
                app_id = %record.app_id,
                deploy_id = %record.deploy_id,
                status = %record.status,
                "deploy finished, but its record cannot be written yet; it is written as soon as storage recovers"
            );
            return Err(DeployError::RecordPending {
                record: Box::new(record),
                source: error,
            });
        }
        self.wake_cleanup();
        tracing::info!(
            app_id = %record.app_id,
            deploy_id = %record.deploy_id,
            status = %record.status,
            injection = %record.injection.status,
            reason = record.injection.reason.map_or("", InjectionReason::as_str),
            keys = record.injection.injected.len(),
            "deploy finished"
        );
        Ok(DeployResult::Done(Box::new(record)))
    }

    /// The app's secret layout (the one deploy `rollback_to` injected, for
    /// a rollback) and its last successful deploy. Read on the async worker
    /// when the layout has at most [`OPEN_IN_PLACE`] records, else on the
    /// blocking pool: a tenant's scope has no count limit of its own.
    async fn read_layout(
        &self,
        app_id: &AppId,
        rollback_to: Option<&str>,
    ) -> Result<(Option<SecretLayout>, Option<DeployRecord>), StoreError> {
        if rollback_to.is_none() {
            let app = app_id.clone();
            let small = self
                .store
                .lookup(move |r| {
                    let layout = match r.secret_layout_up_to(&app, OPEN_IN_PLACE)? {
                        LayoutRead::TooLarge => return Ok(None),
                        LayoutRead::NoApp => None,
                        LayoutRead::Found(layout) => Some(layout),
                    };
                    Ok(Some((layout, r.last_succeeded_deploy(&app)?)))
                })
                .await?;
            if let Some(read) = small {
                return Ok(read);
            }
        }
        let app = app_id.clone();
        let rollback_to = rollback_to.map(str::to_owned);
        self.store
            .read_async(move |r| {
                let layout = match &rollback_to {
                    None => r.secret_layout(&app)?,
                    Some(target) => Some(r.rollback_layout(&app, target)?.1),
                };
                Ok((layout, r.last_succeeded_deploy(&app)?))
            })
            .await
    }

    /// The secrets hash the app's effective set has now, if every value
    /// opens (an automatic redeploy whose hash did not change is skipped).
    pub async fn current_secrets_hash(&self, app_id: &AppId) -> Result<Option<String>, StoreError> {
        if self.keyring.snapshot().is_empty() {
            return Ok(None);
        }
        let app = app_id.clone();
        let layout = self
            .store
            .read_async(move |r| r.secret_layout(&app))
            .await?;
        Ok(layout
            .as_ref()
            .map(|l| open_layout(&self.keyring, l))
            .filter(|set| set.undecryptable.is_empty())
            .map(|set| self.secrets_hash(&set)))
    }

    /// `exsec.io/secrets-hash` of a set (SPEC §11.2).
    fn secrets_hash(&self, set: &EffectiveSet) -> String {
        crypto::secrets_hash(
            &self.installation_key,
            set.values.iter().map(|v| HashedEntry {
                name: v.key.as_str(),
                provider: v.provider.as_str(),
                value: v.value.expose_secret().as_bytes(),
            }),
        )
    }

    /// The deploy recorded for an idempotency key, if the request matches.
    async fn replay(
        &self,
        app_id: &AppId,
        key: &str,
        hash: &[u8; 32],
    ) -> Result<Option<DeployRecord>, DeployError> {
        let app = app_id.clone();
        let key_owned = key.to_owned();
        let found = self
            .store
            .lookup(move |r| {
                let Some(record) = r.idempotency(&app, &key_owned, Timestamp::now())? else {
                    return Ok(None);
                };
                let deploy = r.deploy(&app, &record.deploy_id)?;
                Ok(deploy.map(|d| (record, d)))
            })
            .await?;
        match found {
            None => Ok(None),
            Some((record, deploy)) if bool::from(record.request_sha256.ct_eq(hash)) => {
                Ok(Some(deploy))
            }
            Some(_) => Err(DeployError::IdempotencyKeyReused {
                key: key.to_owned(),
            }),
        }
    }
}

/// What the request check established.
struct Checked {
    tenant_id: TenantId,
    warnings: Vec<WarningRecord>,
}

/// Records a deploy reads and opens right on its async worker; a larger
/// layout is read on the blocking pool and opened with the worker handed
/// over to the runtime first. 512 values read and open in well under a
/// millisecond; a tenant's scope has no count limit of its own (only the
/// 1 MiB of each app's set), and tiny values could make it hundreds of
/// thousands of records: that must not stall every connection the worker
/// serves.
const OPEN_IN_PLACE: usize = 512;

/// Opens a secret layout's effective set with its tenant's data keys (and
/// the master keys, for values not moved under a data key yet).
fn open_layout<'a>(keyring: &SharedKeyring, layout: &'a SecretLayout) -> EffectiveSet<'a> {
    let open = || {
        let keys = keyring.tenant_keys(&layout.tenant_id, &layout.data_keys);
        resolve::resolve(&layout.tenant, &layout.app, &keys)
    };
    if layout.tenant.len() + layout.app.len() <= OPEN_IN_PLACE {
        return open();
    }
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(open),
        // A single-threaded runtime (tests, tools) has no worker to hand over.
        _ => open(),
    }
}

/// Steps 1–2 of the contract: the body's app and tenant against the app.
fn check(request: &DeployRequest) -> Result<Checked, DeployError> {
    if let Some(body_app) = request.body_app_id.as_deref().filter(|a| !a.is_empty())
        && body_app != request.app_id.as_str()
    {
        return Err(DeployError::AppIdMismatch {
            path: request.app_id.to_string(),
        });
    }
    let mut warnings = Vec::new();
    let tenant_id = match &request.tenant_id {
        None => {
            warnings.push(WarningRecord {
                code: "tenant_id_inferred".to_owned(),
                message: format!(
                    "the request had no tenant_id; used the app's tenant {}",
                    request.app.tenant_id
                ),
            });
            request.app.tenant_id.clone()
        }
        Some(given) if *given != request.app.tenant_id => {
            return Err(DeployError::TenantMismatch {
                app_id: request.app_id.to_string(),
            });
        }
        Some(given) => given.clone(),
    };
    Ok(Checked {
        tenant_id,
        warnings,
    })
}

/// The hash an idempotency key is bound to: the deploy body as canonical
/// JSON plus the query.
pub fn request_hash(body: &serde_json::Value, dry_run: bool) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(body.to_string().as_bytes());
    hasher.update([u8::from(dry_run)]);
    hasher.finalize().into()
}

/// A rollback that applied pins the app; a normal deploy that applied
/// unpins it; anything else leaves the pin.
fn pin_change(request: &DeployRequest, status: DeployStatus) -> PinChange {
    if status != DeployStatus::Succeeded {
        return PinChange::Keep;
    }
    match (&request.rollback_to, request.trigger) {
        (Some(target), _) => PinChange::Set(target.clone()),
        (None, DeployTrigger::Api) => PinChange::Clear,
        (None, _) => PinChange::Keep,
    }
}

fn warning_record(warning: &Warning) -> WarningRecord {
    WarningRecord {
        code: warning.code.to_owned(),
        message: warning.message.clone(),
    }
}

fn missing_required_warning(missing: &[&EnvKey]) -> WarningRecord {
    let names: Vec<&str> = missing.iter().map(|k| k.as_str()).collect();
    WarningRecord {
        code: "missing_required_env".to_owned(),
        message: format!(
            "the app requires {} but its effective set lacks them; set them as tenant defaults or app overrides and redeploy",
            names.join(", ")
        ),
    }
}
