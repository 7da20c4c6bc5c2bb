//! Tenants and their tokens on the wire.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::WarningDto;
use super::schema::{
    Schema, count, described, list_of, pattern, record, reference, reference_to, warnings,
};
use crate::store::data_keys::DataKeyInfo;
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

/// `GET /v1/tenants/{id}` and the answer of `POST
/// /v1/tenants/{id}/rotate-data-key`: a tenant with its data key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantDetailDto {
    /// Id.
    pub tenant_id: String,
    /// Creation time.
    pub created_at: String,
    /// Its current data key; `null` until a value of it is first sealed.
    pub data_key: Option<DataKeyDto>,
}

impl TenantDetailDto {
    /// From the stored record and data key, with the rotation's progress.
    pub fn new(
        tenant_id: &str,
        record: &TenantRecord,
        data_key: Option<(&DataKeyInfo, Option<u64>)>,
    ) -> Self {
        Self {
            tenant_id: tenant_id.to_owned(),
            created_at: record.created_at.to_rfc3339(),
            data_key: data_key.map(|(info, remaining)| DataKeyDto {
                id: info.id.to_string(),
                created_at: info.created_at.to_rfc3339(),
                master_key_id: info.master_key_id.to_string(),
                resealing: remaining.map(|remaining| ResealingDto { remaining }),
            }),
        }
    }
}

/// `DELETE /v1/tenants/{id}?shred=true` when cluster objects of its apps
/// (which may hold secret values) could not be removed yet; without such
/// objects the answer is 204.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantShreddedDto {
    /// The tenant.
    pub tenant_id: String,
    /// Always true: the tenant, its apps, records and data keys are gone.
    pub shredded: bool,
    /// `cleanup_pending`, one per app whose objects are left to remove.
    pub warnings: Vec<WarningDto>,
}

/// A tenant's current data key: ids and times, never the key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataKeyDto {
    /// Its id (32 hex characters).
    pub id: String,
    /// When it was made.
    pub created_at: String,
    /// The master key that wraps it.
    pub master_key_id: String,
    /// A data-key rotation in progress; `null` when every value is under
    /// this key and no older key is held.
    pub resealing: Option<ResealingDto>,
}

/// The background re-seal of a data-key rotation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResealingDto {
    /// Values (live and kept versions) still under older data keys.
    pub remaining: u64,
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

impl Schema for TenantDetailDto {
    const NAME: &'static str = "TenantDetail";

    fn schema() -> Value {
        record([
            ("tenant_id", reference("ResourceId")),
            ("created_at", reference("Timestamp")),
            (
                "data_key",
                json!({ "oneOf": [reference_to::<DataKeyDto>(), { "type": "null" }] }),
            ),
        ])
    }
}

impl Schema for TenantShreddedDto {
    const NAME: &'static str = "TenantShredded";

    fn schema() -> Value {
        record([
            ("tenant_id", reference("ResourceId")),
            ("shredded", json!({ "const": true })),
            ("warnings", warnings()),
        ])
    }
}

impl Schema for DataKeyDto {
    const NAME: &'static str = "DataKey";

    fn schema() -> Value {
        record([
            ("id", pattern("^[0-9a-f]{32}$")),
            ("created_at", reference("Timestamp")),
            ("master_key_id", reference("KeyId")),
            (
                "resealing",
                described(
                    json!({
                        "oneOf": [
                            record([("remaining", count())]),
                            { "type": "null" },
                        ]
                    }),
                    "a data-key rotation in progress: `remaining` values (live and kept versions) are still sealed under older data keys and are being re-sealed in the background; `null` once none is and the older keys are deleted",
                ),
            ),
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
