//! Tenants: created and deleted by the admin; a tenant token sees its own.

use crate::api::dto::{PutTenantBody, TenantDto, TenantListDto};
use crate::api::problem::ApiError;
use crate::api::{Call, Reply};
use hyper::StatusCode;

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
    match call.state.store.read_async(move |r| r.tenant(&id)).await? {
        Some(record) => Ok(Reply::ok(&TenantDto::new(tenant.as_str(), &record))),
        None => Err(ApiError::not_found(
            "tenant_not_found",
            format!("tenant {tenant}"),
        )),
    }
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
        return Ok(Reply::no_content());
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
