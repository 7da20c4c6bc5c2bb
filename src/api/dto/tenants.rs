//! Tenants and their tokens on the wire.

use serde::{Deserialize, Serialize};

use crate::store::records::{TenantRecord, TokenRecord};

/// `PUT /v1/tenants/{id}` (body optional, no fields yet).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutTenantBody {}

/// `POST /v1/tenants/{id}/tokens` (body optional, no fields yet).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MintTokenBody {}

/// A tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantDto {
    /// Id.
    pub tenant_id: String,
    /// Creation time.
    pub created_at: String,
}

impl TenantDto {
    /// From the stored record.
    pub fn new(tenant_id: &str, record: &TenantRecord) -> Self {
        Self {
            tenant_id: tenant_id.to_owned(),
            created_at: record.created_at.to_rfc3339(),
        }
    }
}

/// `GET /v1/tenants`.
#[derive(Debug, Serialize, Deserialize)]
pub struct TenantListDto {
    /// By id.
    pub tenants: Vec<TenantDto>,
}

/// A token as listed: id and time only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenDto {
    /// Id.
    pub token_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Mint time.
    pub created_at: String,
}

impl TokenDto {
    /// From the stored record.
    pub fn new(token_id: &str, record: &TokenRecord) -> Self {
        Self {
            token_id: token_id.to_owned(),
            tenant_id: record.tenant_id.to_string(),
            created_at: record.created_at.to_rfc3339(),
        }
    }
}

/// `GET /v1/tenants/{id}/tokens`.
#[derive(Debug, Serialize, Deserialize)]
pub struct TokenListDto {
    /// By id.
    pub tokens: Vec<TokenDto>,
}

/// `POST /v1/tenants/{id}/tokens`: the one answer that carries a token,
/// shown once. No `Debug` and no `Clone`, so it is never logged or kept.
#[derive(Serialize, Deserialize)]
pub struct MintedTokenDto {
    /// The token itself (`exs_<id>_<secret>`).
    pub token: String,
    /// Its id, for listing and revoking.
    pub token_id: String,
    /// Tenant.
    pub tenant_id: String,
    /// Mint time.
    pub created_at: String,
}
