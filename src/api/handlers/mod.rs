//! Handlers by resource. [`dispatch`] is the one place a route id meets
//! its handler.

mod apps;
mod audit;
mod backup;
mod bulk_secrets;
mod data_keys;
mod deploys;
mod secret_versions;
mod secrets;
mod system;
mod tenants;
mod tokens;

pub use backup::CONTENT_TYPE as BACKUP_CONTENT_TYPE;
pub use bulk_secrets::MAX_BULK_SECRETS;
pub use deploys::MAX_IDEMPOTENCY_KEY_LEN;

use super::routes::RouteId;
use super::{Call, Reply};
use crate::api::problem::ApiError;

/// Runs the handler of the call's route.
pub async fn dispatch(call: Call) -> Result<Reply, ApiError> {
    match call.route.id {
        RouteId::Healthz => system::healthz(),
        RouteId::Readyz => system::readyz(call).await,
        RouteId::Metrics => system::metrics(call).await,
        RouteId::OpenApi => system::openapi(),
        RouteId::Keys => system::keys(call).await,
        RouteId::Backup => backup::download(call).await,
        RouteId::ListTenants => tenants::list(call).await,
        RouteId::PutTenant => tenants::put(call).await,
        RouteId::GetTenant => tenants::get(call).await,
        RouteId::DeleteTenant => tenants::delete(call).await,
        RouteId::RotateDataKey => tenants::rotate_data_key(call).await,
        RouteId::MintToken => tokens::mint(call).await,
        RouteId::ListTokens => tokens::list(call).await,
        RouteId::RevokeToken => tokens::revoke(call).await,
        RouteId::ListApps => apps::list(call).await,
        RouteId::PutApp => apps::put(call).await,
        RouteId::GetApp => apps::get(call).await,
        RouteId::DeleteApp => apps::delete(call).await,
        RouteId::ListTenantSecrets | RouteId::ListAppSecrets => secrets::list(call).await,
        RouteId::PutTenantSecret | RouteId::PutAppSecret => secrets::put(call).await,
        RouteId::PutTenantSecrets | RouteId::PutAppSecrets => bulk_secrets::put(call).await,
        RouteId::DeleteTenantSecret | RouteId::DeleteAppSecret => secrets::delete(call).await,
        RouteId::VerifyTenantSecret | RouteId::VerifyAppSecret => secrets::verify(call).await,
        RouteId::ListTenantSecretVersions | RouteId::ListAppSecretVersions => {
            secret_versions::list(call).await
        }
        RouteId::RestoreTenantSecret | RouteId::RestoreAppSecret => {
            secret_versions::restore(call).await
        }
        RouteId::Unpin => deploys::unpin(call).await,
        RouteId::Effective => secrets::effective(call).await,
        RouteId::Deploy => deploys::create(call).await,
        RouteId::ListDeploys => deploys::list(call).await,
        RouteId::GetDeploy => deploys::get(call).await,
        RouteId::AppCluster => deploys::cluster(call).await,
        RouteId::ListAuditEvents => audit::list(call).await,
    }
}
