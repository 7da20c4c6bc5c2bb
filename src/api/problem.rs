//! API errors as RFC 9457 `application/problem+json`, each with a stable
//! machine `code`.
//!
//! Client mistakes are 4xx with a `detail` that says what to fix; server
//! faults are 5xx whose `detail` says only "internal error" while the cause
//! chain goes to the log.

use hyper::StatusCode;
use serde_json::{Map, Value, json};

use crate::error_chain::chain;
use crate::model::ValidationError;
use crate::store::{Missing, Rejected, StorageFault, StoreError};

/// One API error.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine code.
    pub code: &'static str,
    /// What happened and how to fix it.
    pub detail: String,
    /// Extra members of the problem object (e.g. `deploy_id`).
    pub extra: Map<String, Value>,
    /// Extra headers (`WWW-Authenticate`, `Retry-After`).
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    /// An error with a status, code and detail.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            extra: Map::new(),
            headers: Vec::new(),
        }
    }

    /// 400 with a code naming the problem.
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// 404 `{kind}_not_found`; the same answer whether the thing is absent
    /// or belongs to another tenant.
    pub fn not_found(code: &'static str, what: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, format!("{what} not found"))
    }

    /// 401 with `WWW-Authenticate: Bearer`.
    pub fn unauthenticated() -> Self {
        let mut error = Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "send a valid token as `Authorization: Bearer <token>`",
        );
        error
            .headers
            .push(("www-authenticate", "Bearer".to_owned()));
        error
    }

    /// 503 `master_key_unavailable`: no key to seal (or authenticate) with.
    pub fn master_key_unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "master_key_unavailable",
            detail,
        )
    }

    /// 500: logs the cause chain, tells the client nothing more.
    pub fn internal(context: &str, error: &dyn std::error::Error) -> Self {
        tracing::error!(error = %chain(error), "{context}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }

    /// A write (or read) the store could not do: 507
    /// `insufficient_storage` for a full disk, else 503
    /// `storage_unavailable` (its detail says when the file system is
    /// read-only). Reads keep working through either; exsec heals by itself
    /// once the disk does.
    pub fn storage(fault: StorageFault) -> Self {
        match fault {
            StorageFault::NoSpace => Self::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "insufficient_storage",
                "the daemon's disk is full: the change was not saved; reads still work, and writes resume by themselves once space is freed",
            ),
            StorageFault::ReadOnly => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                "the daemon's file system is read-only: the change was not saved; reads still work, and writes resume by themselves once it is writable",
            ),
            StorageFault::Io => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                "internal error: storage is unavailable, retry later",
            ),
        }
    }

    /// Adds a member to the problem object.
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(name.to_owned(), value.into());
        self
    }

    /// The problem+json body. Extra members never replace the five
    /// standard ones.
    pub fn body(&self) -> Value {
        let mut body = json!({
            "type": format!("urn:exsec:problem:{}", self.code),
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
        });
        if let Value::Object(map) = &mut body {
            for (name, value) in &self.extra {
                map.entry(name.as_str()).or_insert_with(|| value.clone());
            }
        }
        body
    }
}

/// `invalid_{field}` for a parsing failure of user input.
impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> Self {
        let code = match error.field {
            "tenant_id" => "invalid_tenant_id",
            "app_id" => "invalid_app_id",
            "provider" => "invalid_provider",
            "key" => "invalid_key",
            "value" => "invalid_value",
            "key_id" => "invalid_key_id",
            "image_ref" => "invalid_image_ref",
            "replicas" => "invalid_replicas",
            "port" => "invalid_port",
            _ => "invalid_input",
        };
        ApiError::bad_request(code, error.to_string())
    }
}

/// The one place store errors become API answers: a refusal gets its own
/// status and code, a storage fault 507 or 503 (the chain goes to the log).
/// Both matches are exhaustive, so a new variant cannot go unmapped.
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Rejected(rejected) => refusal(rejected),
            error @ (StoreError::Storage { .. }
            | StoreError::Corrupt { .. }
            | StoreError::CorruptKey { .. }
            | StoreError::Interrupted
            | StoreError::Batch(_)
            | StoreError::Unavailable { .. }) => {
                tracing::error!(error = %chain(&error), "storage failure");
                ApiError::storage(error.fault().unwrap_or(StorageFault::Io))
            }
        }
    }
}

/// A domain refusal as its problem: what it names is missing (404), the
/// change conflicts (409), the effective set would not fit (422), or the
/// active key is not the one that sealed stored values (503).
fn refusal(rejected: Rejected) -> ApiError {
    let conflict = |code| ApiError::new(StatusCode::CONFLICT, code, rejected.to_string());
    match &rejected {
        Rejected::NotFound { kind, id } => {
            let code = match kind {
                Missing::Tenant => "tenant_not_found",
                Missing::App => "app_not_found",
                Missing::Secret => "secret_not_found",
                Missing::Token => "token_not_found",
                Missing::SecretVersion => "version_not_found",
                Missing::Deploy => "deploy_not_found",
            };
            ApiError::not_found(code, format!("{kind} {id}"))
        }
        Rejected::TenantHasApps { .. } => conflict("tenant_has_apps"),
        Rejected::AppTenantFixed { .. } => conflict("app_tenant_fixed"),
        Rejected::EnvNameTaken { .. } => conflict("env_name_taken"),
        Rejected::VersionIsTombstone { .. } => conflict("version_is_tombstone"),
        Rejected::NothingToRollBackTo { .. } => conflict("snapshot_unavailable"),
        Rejected::SnapshotUnavailable {
            scope,
            provider,
            key,
            version,
            ..
        } => conflict("snapshot_unavailable")
            .with("scope", scope.as_str())
            .with("provider", provider.as_str())
            .with("key", key.as_str())
            .with("version", *version),
        Rejected::EffectiveSetTooLarge { .. } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "effective_set_too_large",
            format!("{rejected}; remove or shorten other secrets first"),
        ),
        Rejected::DataKeyChanged { .. } => conflict("data_key_changed"),
        Rejected::KeyFingerprintMismatch { .. } => {
            tracing::error!(error = %rejected, "refusing to seal under a changed key");
            ApiError::master_key_unavailable(
                "the active master key differs from the key of the same id that sealed stored values; see the server log",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AppId, ScopeKind, TenantId};

    #[test]
    fn extra_members_never_replace_the_standard_ones() {
        let body = ApiError::new(StatusCode::BAD_GATEWAY, "deployment_apply_failed", "x")
            .with("status", "failed")
            .with("deploy_id", "dep_000000000001")
            .body();
        assert_eq!(body["status"], 502);
        assert_eq!(body["code"], "deployment_apply_failed");
        assert_eq!(body["deploy_id"], "dep_000000000001");
    }

    /// The codes and statuses clients and the CLI's hints rely on, one per
    /// refusal (the mapping is exhaustive; this pins what each one says).
    #[test]
    fn each_refusal_keeps_its_status_and_code() {
        let tenant = TenantId::parse("acme").unwrap();
        let app = AppId::parse("web").unwrap();
        let missing = |kind| Rejected::NotFound {
            kind,
            id: "x".to_owned(),
        };
        let cases = [
            (missing(Missing::Tenant), 404, "tenant_not_found"),
            (missing(Missing::App), 404, "app_not_found"),
            (missing(Missing::Secret), 404, "secret_not_found"),
            (missing(Missing::Token), 404, "token_not_found"),
            (missing(Missing::SecretVersion), 404, "version_not_found"),
            (missing(Missing::Deploy), 404, "deploy_not_found"),
            (
                Rejected::VersionIsTombstone {
                    key: "API_KEY".to_owned(),
                    version: 4,
                },
                409,
                "version_is_tombstone",
            ),
            (
                Rejected::NothingToRollBackTo {
                    deploy_id: "dep_000000000001".to_owned(),
                },
                409,
                "snapshot_unavailable",
            ),
            (
                Rejected::SnapshotUnavailable {
                    deploy_id: "dep_000000000001".to_owned(),
                    scope: ScopeKind::App,
                    provider: "openai".to_owned(),
                    key: "API_KEY".to_owned(),
                    version: 1,
                },
                409,
                "snapshot_unavailable",
            ),
            (
                Rejected::TenantHasApps {
                    tenant: tenant.clone(),
                    apps: 2,
                },
                409,
                "tenant_has_apps",
            ),
            (
                Rejected::AppTenantFixed {
                    app,
                    tenant: tenant.clone(),
                },
                409,
                "app_tenant_fixed",
            ),
            (
                Rejected::EnvNameTaken {
                    key: "API_KEY".to_owned(),
                    provider: "openai".to_owned(),
                    scope: ScopeKind::Tenant,
                    item: None,
                },
                409,
                "env_name_taken",
            ),
            (
                Rejected::EffectiveSetTooLarge {
                    app_id: "web".to_owned(),
                    bytes: 2 << 20,
                },
                422,
                "effective_set_too_large",
            ),
            (
                Rejected::DataKeyChanged {
                    tenant: tenant.clone(),
                },
                409,
                "data_key_changed",
            ),
            (
                Rejected::KeyFingerprintMismatch {
                    key_id: "k1".to_owned(),
                },
                503,
                "master_key_unavailable",
            ),
        ];
        for (rejected, status, code) in cases {
            let error = ApiError::from(StoreError::from(rejected));
            assert_eq!((error.status.as_u16(), error.code), (status, code));
        }
        let detail = ApiError::from(StoreError::from(missing(Missing::Secret))).detail;
        assert_eq!(detail, "external secret x not found");
    }

    #[test]
    fn a_storage_fault_is_503_and_says_nothing_more() {
        let error = ApiError::from(StoreError::Interrupted);
        assert_eq!(error.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error.code, "storage_unavailable");
    }
}
