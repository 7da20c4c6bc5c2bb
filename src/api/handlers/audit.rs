//! `GET /v1/audit-events`: the chain, oldest first, paginated by sequence
//! number. A tenant token reads only its tenant's events.

use crate::api::dto::AuditPageDto;
use crate::api::problem::ApiError;
use crate::api::routes::DEFAULT_AUDIT_PAGE;
use crate::api::{Call, Reply};
use crate::model::{AppId, TenantId};
use crate::store::{AuditFilter, MAX_AUDIT_PAGE};

pub async fn list(call: Call) -> Result<Reply, ApiError> {
    let principal = call.principal()?.clone();
    let invalid = |detail: String| ApiError::bad_request("invalid_query", detail);
    let asked = match call.query_param("tenant_id").filter(|t| !t.is_empty()) {
        Some(raw) => Some(TenantId::parse(&raw)?),
        None => None,
    };
    let tenant_id = match (principal.tenant(), asked) {
        (Some(own), Some(asked)) if *own != asked => {
            return Err(ApiError::not_found(
                "tenant_not_found",
                format!("tenant {asked}"),
            ));
        }
        (Some(own), _) => Some(own.to_string()),
        (None, asked) => asked.map(|t| t.to_string()),
    };
    let app_id = match call.query_param("app_id").filter(|a| !a.is_empty()) {
        Some(raw) => Some(AppId::parse(&raw)?.to_string()),
        None => None,
    };
    let after = match call.query_param("after") {
        None => 0,
        Some(raw) => raw
            .parse::<u64>()
            .map_err(|_| invalid("after must be a sequence number".to_owned()))?,
    };
    let limit = call.query_limit(DEFAULT_AUDIT_PAGE, MAX_AUDIT_PAGE)?;
    let filter = AuditFilter {
        event_type: call.query_param("type").filter(|t| !t.is_empty()),
        tenant_id,
        app_id,
        after,
        limit,
    };
    let page = call
        .state
        .store
        .read_async(move |r| r.audit_events(&filter))
        .await?;
    Ok(Reply::ok_sorted(&AuditPageDto {
        events: page.events,
        next_after: page.next_after,
    }))
}
