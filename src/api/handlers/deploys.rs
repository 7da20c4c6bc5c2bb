//! Deploys: run one (the pipeline lives in `crate::deploy`), list the
//! history, read one.

use hyper::StatusCode;
use serde_json::Value;

use crate::api::dto::{
    CleanupDto, ClusterDto, ClusterSecretDto, DeployBody, DeployDetailDto, DeployDto,
    DeployFailedDto, DeployListDto, DeploymentDto, DryRunDto, RolloutDto,
};
use crate::api::problem::ApiError;
use crate::api::routes::{DEFAULT_HISTORY, MAX_HISTORY};
use crate::api::{Call, Reply, parse_json, to_value};
use crate::deploy::{DeployError, DeployRequest, DeployResult, request_hash};
use crate::error_chain::chain;
use crate::model::{DeployStatus, ImageRef, InjectionReason, Port, Replicas, TenantId};
use crate::store::records::DeployTrigger;

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
    let request = DeployRequest {
        app_id: app_id.clone(),
        app,
        tenant_id: body
            .tenant_id
            .filter(|tenant| !tenant.is_empty())
            .map(|tenant| TenantId::parse(&tenant))
            .transpose()?,
        body_app_id: body.app_id,
        image_ref: ImageRef::try_from(body.image_ref)?,
        replicas: body.replicas.map(Replicas::try_from).transpose()?,
        port: body.port.map(Port::try_from).transpose()?,
        dry_run,
        restart: body.restart,
        trigger: DeployTrigger::Api,
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
            Some(_) => RolloutDto::without_counts("superseded", None),
            None => RolloutDto::without_counts("absent", None),
        },
        Ok(Err(error)) => RolloutDto::without_counts("unknown", Some(error.to_string())),
        Err(_) => RolloutDto::without_counts(
            "unknown",
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
        target: cluster.name().to_owned(),
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
