//! Deploys: run one (the pipeline lives in `crate::deploy`), list the
//! history, read one.

use hyper::StatusCode;
use serde_json::Value;

use crate::api::dto::{
    AppDto, CleanupDto, ClusterDto, ClusterSecretDto, DeployBody, DeployDetailDto, DeployDto,
    DeployFailedDto, DeployListDto, DeploymentDto, DryRunDto, RolloutDto,
};
use crate::api::problem::ApiError;
use crate::api::routes::{DEFAULT_HISTORY, MAX_HISTORY};
use crate::api::{Call, Reply, parse_json, to_value};
use crate::deploy::{DeployError, DeployRequest, DeployResult, request_hash};
use crate::error_chain::chain;
use crate::model::{AppId, DeployStatus, ImageRef, InjectionReason, Port, Replicas, TenantId};
use crate::model::{DeployTrigger, RolloutState};

/// Longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

pub async fn create(call: Call) -> Result<Reply, ApiError> {
    let (app_id, app) = call.app()?.clone();
    let dry_run = call.query_flag("dry_run")?;
    let body: DeployBody = call.json()?;
    let idempotency = match call.headers.get("idempotency-key") {
        None => None,
        Some(value) => {
            let key = value
                .to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY_LEN)
                .filter(|k| k.bytes().all(|b| b.is_ascii_graphic()))
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_idempotency_key",
                        format!("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"),
                    )
                })?;
            // Hash the parsed body so that formatting differences do not count.
            let canonical: Value = parse_json(&call.body)?;
            Some((key.to_owned(), request_hash(&canonical, dry_run)))
        }
    };
    let workload = match body.rollback_to.clone() {
        None => Workload::parse(body.image_ref, body.replicas, body.port)?,
        Some(target) => rollback_workload(&call, &app_id, target, &body).await?,
    };
    let request = DeployRequest {
        app_id: app_id.clone(),
        app,
        tenant_id: body
            .tenant_id
            .filter(|tenant| !tenant.is_empty())
            .map(|tenant| TenantId::parse(&tenant))
            .transpose()?,
        body_app_id: body.app_id,
        image_ref: workload.image_ref,
        replicas: workload.replicas,
        port: workload.port,
        dry_run,
        restart: body.restart,
        trigger: if body.rollback_to.is_some() {
            DeployTrigger::Rollback
        } else {
            DeployTrigger::Api
        },
        rollback_to: body.rollback_to,
        idempotency,
        actor: call.actor(),
    };
    let started = std::time::Instant::now();
    let result = call.state.deployer.deploy(request).await?;
    match result {
        DeployResult::DryRun(report) => Ok(Reply::ok(&DryRunDto::from(&*report))),
        DeployResult::Done(record) => {
            call.state.metrics.deploy(
                record.status.as_str(),
                record.injection.status.as_str(),
                record.injection.reason.map_or("", InjectionReason::as_str),
                started.elapsed(),
            );
            let dto = DeployDto::from(record.as_ref());
            if record.status == DeployStatus::Succeeded {
                return Ok(Reply::json(StatusCode::CREATED, &dto));
            }
            let error = ApiError::new(
                StatusCode::BAD_GATEWAY,
                "deployment_apply_failed",
                record
                    .error
                    .clone()
                    .unwrap_or_else(|| "the Deployment could not be applied".to_owned()),
            );
            // 502 already says the deploy failed.
            Err(with_deploy(error, &dto))
        }
    }
}

/// What a deploy rolls out besides the secrets.
struct Workload {
    image_ref: ImageRef,
    replicas: Option<Replicas>,
    port: Option<Port>,
}

impl Workload {
    /// From a deploy body (or a stored deploy): `image_ref` is required.
    fn parse(
        image_ref: Option<String>,
        replicas: Option<i64>,
        port: Option<i64>,
    ) -> Result<Self, ApiError> {
        let image_ref = image_ref.ok_or_else(|| {
            ApiError::bad_request(
                "missing_field",
                "missing field `image_ref` (or `rollback_to`, to roll back to an earlier deploy)",
            )
        })?;
        Ok(Self {
            image_ref: ImageRef::try_from(image_ref)?,
            replicas: replicas.map(Replicas::try_from).transpose()?,
            port: port.map(Port::try_from).transpose()?,
        })
    }
}

/// The workload of the deploy a rollback returns to; the body may not
/// name another.
async fn rollback_workload(
    call: &Call,
    app_id: &AppId,
    target: String,
    body: &DeployBody,
) -> Result<Workload, ApiError> {
    if body.image_ref.is_some() || body.replicas.is_some() || body.port.is_some() || body.restart {
        return Err(ApiError::bad_request(
            "invalid_rollback",
            "rollback_to takes the image, replicas and port of that deploy; send it without image_ref, replicas, port and restart",
        ));
    }
    let app = app_id.clone();
    let lookup = target.clone();
    let record = call
        .state
        .store
        .lookup(move |r| r.deploy(&app, &lookup))
        .await?
        .ok_or_else(|| ApiError::not_found("deploy_not_found", format!("deploy {target}")))?;
    Workload::parse(
        Some(record.image_ref),
        record.replicas.map(i64::from),
        record.port.map(i64::from),
    )
}

/// `POST /v1/apps/{id}/unpin`: the app follows its current secrets again.
pub async fn unpin(call: Call) -> Result<Reply, ApiError> {
    let (app_id, _) = call.app()?.clone();
    let actor = call.actor();
    let id = app_id.clone();
    let record = call
        .state
        .store
        .write_async(move |w| w.unpin(&id, &actor))
        .await?;
    call.state.redeploys.wake();
    Ok(Reply::ok(&AppDto::new(app_id.as_str(), &record)))
}

/// Adds what the caller of a deploy needs to the problem
/// ([`DeployFailedDto`]): its id and what injection did.
fn with_deploy(mut error: ApiError, dto: &DeployDto) -> ApiError {
    if let Value::Object(members) = to_value(&DeployFailedDto::from(dto)) {
        for (name, value) in members {
            error = error.with(&name, value);
        }
    }
    error
}

/// The API answer of a refused deploy (or app deletion).
impl From<DeployError> for ApiError {
    fn from(error: DeployError) -> Self {
        let unprocessable = |code, error: &DeployError| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, error.to_string())
        };
        match &error {
            DeployError::AppIdMismatch { .. } => unprocessable("app_id_mismatch", &error),
            DeployError::TenantMismatch { .. } => unprocessable("tenant_mismatch", &error),
            DeployError::IdempotencyKeyReused { .. } => {
                unprocessable("idempotency_key_reused", &error)
            }
            DeployError::InProgress { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "deploy_in_progress",
                error.to_string(),
            ),
            DeployError::RecordPending { record, source } => {
                tracing::error!(error = %chain(source), deploy_id = %record.deploy_id, "deploy record not written");
                let error = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "deploy_record_pending",
                    error.to_string(),
                )
                .with("deploy_status", record.status.as_str());
                with_deploy(error, &DeployDto::from(record.as_ref()))
            }
            DeployError::Store(_) => match error {
                DeployError::Store(store) => ApiError::from(store),
                _ => unreachable!("matched above"),
            },
        }
    }
}

pub async fn list(call: Call) -> Result<Reply, ApiError> {
    let (app_id, _) = call.app()?.clone();
    let limit = call.query_limit(DEFAULT_HISTORY, MAX_HISTORY)?;
    let records = call
        .state
        .store
        .read_async(move |r| r.deploys(&app_id, limit))
        .await?;
    let deploys: Vec<DeployDto> = records.iter().map(DeployDto::from).collect();
    Ok(Reply::ok_sorted(&DeployListDto { deploys }))
}

pub async fn get(call: Call) -> Result<Reply, ApiError> {
    let (app_id, _) = call.app()?.clone();
    let deploy_id = call.params.get("deploy_id").to_owned();
    let lookup = deploy_id.clone();
    let (record, newest) = call
        .state
        .store
        .read_async(move |r| {
            let newest = r.deploys(&app_id, 1)?.pop().map(|d| d.deploy_id);
            Ok((r.deploy(&app_id, &lookup)?, newest))
        })
        .await?;
    let record = record
        .ok_or_else(|| ApiError::not_found("deploy_not_found", format!("deploy {deploy_id}")))?;
    // The rollout of this deploy, when the cluster answers and still runs it.
    let cluster = call.state.deployer.cluster().clone();
    let budget = call.state.deployer.settings().timeout;
    let rollout = match tokio::time::timeout(budget, cluster.app_objects(&record.app_id)).await {
        Ok(Ok(objects)) => match objects.deployment {
            // A target that keeps no deploy id (manifests): the newest
            // deploy is the one the objects hold.
            Some(state)
                if state.deploy_id.as_deref().or(newest.as_deref())
                    == Some(record.deploy_id.as_str()) =>
            {
                RolloutDto::from(&state.rollout)
            }
            Some(_) => RolloutDto::without_counts(RolloutState::Superseded, None),
            None => RolloutDto::without_counts(RolloutState::Absent, None),
        },
        Ok(Err(error)) => {
            RolloutDto::without_counts(RolloutState::Unknown, Some(error.to_string()))
        }
        Err(_) => RolloutDto::without_counts(
            RolloutState::Unknown,
            Some("the cluster did not answer in time".to_owned()),
        ),
    };
    Ok(Reply::ok_sorted(&DeployDetailDto {
        deploy: DeployDto::from(&record),
        rollout_status: rollout,
    }))
}

/// `GET /v1/apps/{id}/cluster`: what the cluster holds — key names, never
/// values.
pub async fn cluster(call: Call) -> Result<Reply, ApiError> {
    let (app_id, app) = call.app()?.clone();
    let cluster = call.state.deployer.cluster().clone();
    let budget = call.state.deployer.settings().timeout;
    let objects = match tokio::time::timeout(budget, cluster.app_objects(&app_id)).await {
        Ok(Ok(objects)) => objects,
        Ok(Err(error)) => {
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "cluster_unreachable",
                error.to_string(),
            ));
        }
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "cluster_timeout",
                format!("the cluster did not answer within {}s", budget.as_secs()),
            ));
        }
    };
    let id = app_id.clone();
    let cleanup = call
        .state
        .store
        .read_async(move |r| r.pending_cleanup(&id))
        .await?;
    Ok(Reply::ok_sorted(&ClusterDto {
        app_id: app_id.to_string(),
        tenant_id: app.tenant_id.to_string(),
        target: cluster.kind(),
        cleanup_pending: cleanup.as_ref().map(CleanupDto::from),
        namespace: call.state.deployer.settings().namespace.clone(),
        secret: ClusterSecretDto {
            name: crate::cluster::objects::secret_name(&app_id),
            exists: objects.secret_keys.is_some(),
            keys: objects.secret_keys.unwrap_or_default(),
        },
        deployment: objects.deployment.as_ref().map(DeploymentDto::from),
    }))
}
