//! Tenants: created and deleted by the admin; a tenant token sees its own.
//! The admin rotates a tenant's data key here; the re-seal that follows
//! runs in the background (`data_key_rotation`).

use hyper::StatusCode;

use super::data_keys::ActiveKey;
use crate::api::dto::{
    PutTenantBody, TenantDetailDto, TenantDto, TenantListDto, TenantShreddedDto, WarningDto,
};
use crate::api::problem::ApiError;
use crate::api::{Call, Reply};
use crate::data_key_rotation;
use crate::model::TenantId;
use crate::store::data_keys::DataKeyInfo;
use crate::store::records::TenantRecord;

pub async fn list(call: Call) -> Result<Reply, ApiError> {
    let own = call.principal()?.tenant().cloned();
    let tenants = call.state.store.read_async(|r| r.tenants()).await?;
    let tenants: Vec<TenantDto> = tenants
        .iter()
        .filter(|(id, _)| own.as_ref().is_none_or(|own| own == id))
        .map(|(id, record)| TenantDto::new(id.as_str(), record))
        .collect();
    Ok(Reply::ok_sorted(&TenantListDto { tenants }))
}

pub async fn put(call: Call) -> Result<Reply, ApiError> {
    let tenant = call.tenant_param()?;
    let _body: PutTenantBody = call.json()?;
    let actor = call.actor();
    let id = tenant.clone();
    let (record, created) = call
        .state
        .store
        .write_async(move |w| w.put_tenant(&id, &actor))
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(Reply::json(
        status,
        &TenantDto::new(tenant.as_str(), &record),
    ))
}

pub async fn get(call: Call) -> Result<Reply, ApiError> {
    let tenant = call.tenant_param()?;
    let id = tenant.clone();
    let (record, info) = call
        .state
        .store
        .lookup(move |r| Ok((r.tenant(&id)?, r.data_key_info(&id)?)))
        .await?;
    let Some(record) = record else {
        return Err(ApiError::not_found(
            "tenant_not_found",
            format!("tenant {tenant}"),
        ));
    };
    let detail = detail(&call, &tenant, &record, info.as_ref()).await?;
    Ok(Reply::ok(&detail))
}

/// `POST /v1/tenants/{id}/rotate-data-key`: a new data key wrapped under
/// the active master key becomes the tenant's current one (audited
/// `tenant.data_key_rotated`); 202 with its id and the values to re-seal,
/// which the job then moves in the background.
pub async fn rotate_data_key(call: Call) -> Result<Reply, ApiError> {
    let tenant = call.tenant_param()?;
    let active = ActiveKey::of(&call)?;
    let (dek_id, wrapped) = active.new_data_key(&tenant)?;
    let fingerprint = active.fingerprint;
    let actor = call.actor();
    let owner = tenant.clone();
    let (record, info) = call
        .state
        .store
        .write_async(move |w| {
            let info = w.rotate_data_key(&owner, &dek_id, wrapped.clone(), fingerprint, &actor)?;
            let record = w.tenant(&owner)?;
            Ok((record, info))
        })
        .await?;
    let Some(record) = record else {
        return Err(ApiError::not_found(
            "tenant_not_found",
            format!("tenant {tenant}"),
        ));
    };
    let detail = detail(&call, &tenant, &record, Some(&info)).await?;
    tracing::info!(tenant_id = %tenant, data_key_id = %info.id, key_id = %active.id, "tenant data key rotated");
    call.state.rotation.trigger();
    Ok(Reply::json(StatusCode::ACCEPTED, &detail))
}

/// A tenant with its data key and the progress of a rotation.
async fn detail(
    call: &Call,
    tenant: &TenantId,
    record: &TenantRecord,
    info: Option<&DataKeyInfo>,
) -> Result<TenantDetailDto, ApiError> {
    let Some(info) = info else {
        return Ok(TenantDetailDto::new(tenant.as_str(), record, None));
    };
    let progress = call.state.rotation.data_keys();
    let resealing = data_key_rotation::resealing(&call.state.store, progress, tenant, info).await?;
    if let Some(resealing) = &resealing {
        progress.set(tenant, resealing.clone());
    }
    let remaining = resealing.map(|r| r.remaining);
    Ok(TenantDetailDto::new(
        tenant.as_str(),
        record,
        Some((info, remaining)),
    ))
}

pub async fn delete(call: Call) -> Result<Reply, ApiError> {
    let tenant = call.tenant_param()?;
    let actor = call.actor();
    if call.query_flag("shred")? {
        let (shredded, warnings) = call.state.deployer.shred_tenant(&tenant, &actor).await?;
        // Unwrapped keys of the tenant must not outlive its wraps.
        call.state.keyring.data_keys().forget_tenant(&tenant);
        tracing::info!(
            tenant_id = %tenant,
            apps = shredded.apps.len(),
            data_keys = shredded.data_keys_destroyed,
            cleanup_pending = !warnings.is_empty(),
            "tenant crypto-shredded"
        );
        if warnings.is_empty() {
            return Ok(Reply::no_content());
        }
        // As for an app deletion: gone, but objects that may hold values
        // are left in the cluster until the retry removes them.
        return Ok(Reply::ok(&TenantShreddedDto {
            tenant_id: tenant.to_string(),
            shredded: true,
            warnings: warnings.iter().map(WarningDto::from).collect(),
        }));
    }
    let id = tenant.clone();
    call.state
        .store
        .write_async(move |w| w.delete_tenant(&id, &actor))
        .await?;
    // A deletion destroys the tenant's wraps too (store::tenants).
    call.state.keyring.data_keys().forget_tenant(&tenant);
    Ok(Reply::no_content())
}
