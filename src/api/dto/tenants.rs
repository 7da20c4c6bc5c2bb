//! Tenants and their tokens on the wire.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::schema::{Schema, list_of, pattern, record, reference};
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

impl Schema for PutTenantBody {
    /// Shared with [`MintTokenBody`]: neither has members yet.
    const NAME: &'static str = "EmptyRequest";

    fn schema() -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "description": "no members yet; the body may be omitted",
        })
    }
}

impl Schema for TenantDto {
    const NAME: &'static str = "Tenant";

    fn schema() -> Value {
        record([
            ("tenant_id", reference("ResourceId")),
            ("created_at", reference("Timestamp")),
        ])
    }
}

impl TenantListDto {
    /// Its schema (inline in the document).
    pub fn schema() -> Value {
        list_of::<TenantDto>("tenants")
    }
}

impl Schema for TokenDto {
    const NAME: &'static str = "Token";

    fn schema() -> Value {
        record([
            ("token_id", reference("TokenId")),
            ("tenant_id", reference("ResourceId")),
            ("created_at", reference("Timestamp")),
        ])
    }
}

impl TokenListDto {
    /// Its schema (inline in the document).
    pub fn schema() -> Value {
        list_of::<TokenDto>("tokens")
    }
}

impl Schema for MintedTokenDto {
    const NAME: &'static str = "MintedToken";

    fn schema() -> Value {
        record([
            ("token", pattern("^exs_[0-9a-f]{12}_[A-Za-z0-9_-]+$")),
            ("token_id", reference("TokenId")),
            ("tenant_id", reference("ResourceId")),
            ("created_at", reference("Timestamp")),
        ])
    }
}
