//! Apps: registered and deleted by the admin; each belongs to one tenant
//! forever.

use crate::api::dto::{
    AppDeletedDto, AppDto, AppListDto, PutAppBody, QueuedRedeployDto, WarningDto,
};
use crate::api::problem::ApiError;
use crate::api::{Call, Reply};
use crate::model::{AppId, EnvKey, TenantId};
use crate::store::tenants::AppSettings;
use crate::store::{Missing, Rejected, StoreError};
use hyper::StatusCode;

pub async fn list(call: Call) -> Result<Reply, ApiError> {
    let principal = call.principal()?.clone();
    let asked = match call.query_param("tenant_id").filter(|t| !t.is_empty()) {
        Some(raw) => Some(TenantId::parse(&raw)?),
        None => None,
    };
    let tenant = match (principal.tenant(), asked) {
        (Some(own), Some(asked)) if *own != asked => {
            return Err(ApiError::not_found(
                "tenant_not_found",
                format!("tenant {asked}"),
            ));
        }
        (Some(own), _) => Some(own.clone()),
        (None, asked) => asked,
    };
    let apps = call
        .state
        .store
        .read_async(move |r| r.apps(tenant.as_ref()))
        .await?;
    let apps: Vec<AppDto> = apps
        .iter()
        .map(|(id, r)| AppDto::new(id.as_str(), r))
        .collect();
    Ok(Reply::ok_sorted(&AppListDto { apps }))
}

pub async fn put(call: Call) -> Result<Reply, ApiError> {
    let app_id = AppId::parse(call.params.get("app_id"))?;
    let body: PutAppBody = call.json()?;
    let tenant = TenantId::parse(&body.tenant_id)?;
    let required_env = body
        .required_env
        .iter()
        .map(|name| EnvKey::parse(name))
        .collect::<Result<Vec<_>, _>>()?;
    let auto_redeploy = body
        .auto_redeploy
        .unwrap_or_else(|| match call.app.as_ref() {
            Some((_, existing)) => existing.auto_redeploy,
            None => call.state.deployer.settings().auto_redeploy_default,
        });
    let settings = AppSettings {
        required_env,
        auto_redeploy,
    };
    let actor = call.actor();
    let id = app_id.clone();
    let (record, created) = call
        .state
        .store
        .write_async(move |w| w.put_app(&id, &tenant, settings.clone(), &actor))
        .await
        .map_err(|error| match error {
            // The id came from the body: name the field, not what it held.
            StoreError::Rejected(Rejected::NotFound {
                kind: Missing::Tenant,
                ..
            }) => ApiError::new(
                StatusCode::NOT_FOUND,
                "tenant_not_found",
                "the tenant named by tenant_id does not exist; create it first",
            ),
            error => ApiError::from(error),
        })?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(Reply::json(status, &AppDto::new(app_id.as_str(), &record)))
}

pub async fn get(call: Call) -> Result<Reply, ApiError> {
    let (app_id, record) = call.app()?;
    let lookup = app_id.clone();
    let queued = call
        .state
        .store
        .lookup(move |r| r.queued_redeploy(&lookup))
        .await?;
    let mut dto = AppDto::new(app_id.as_str(), record);
    dto.redeploy_queued = queued.as_ref().map(QueuedRedeployDto::from);
    Ok(Reply::ok(&dto))
}

/// 204 when the app and its cluster objects are gone; 200 with the
/// warning `cleanup_pending` when objects (which may hold plaintext) could
/// not be removed yet: the removal is recorded and retried.
pub async fn delete(call: Call) -> Result<Reply, ApiError> {
    let (app_id, _) = call.app()?.clone();
    let actor = call.actor();
    let warnings = call.state.deployer.delete_app(&app_id, &actor).await?;
    if warnings.is_empty() {
        return Ok(Reply::no_content());
    }
    let warnings: Vec<WarningDto> = warnings.iter().map(WarningDto::from).collect();
    Ok(Reply::ok(&AppDeletedDto {
        app_id: app_id.to_string(),
        deleted: true,
        warnings,
    }))
}
