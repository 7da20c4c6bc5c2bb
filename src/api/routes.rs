//! The one list of endpoints. The router, the OpenAPI document's test and
//! the tenant-isolation test all read [`ROUTES`], so a route cannot exist
//! in one place and be forgotten in another.

use hyper::Method;

use crate::store::MAX_AUDIT_PAGE;

/// Deploys `GET …/deploys` returns without `limit`.
pub const DEFAULT_HISTORY: usize = 50;
/// Most deploys `GET …/deploys` returns.
pub const MAX_HISTORY: usize = 500;
/// Events `GET /v1/audit-events` returns without `limit`.
pub const DEFAULT_AUDIT_PAGE: usize = 100;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed.
    Public,
    /// The admin token only; tenant tokens get 404 (no existence leak).
    Admin,
    /// The admin, or a tenant token of the tenant named by the path's
    /// `{tenant_id}` or owning its `{app_id}`.
    Tenant,
    /// Any valid token; the handler narrows a tenant token to its tenant.
    Authenticated,
}

/// Whether a route reads a JSON body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// No body is read.
    None,
    /// A JSON body may be sent (empty means `{}`).
    Optional,
    /// A JSON body is required.
    Required,
}

/// A query parameter a route accepts. The server refuses any other name
/// (`api::check_query`) and the OpenAPI document describes exactly these,
/// so the two agree by construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    /// `dry_run`: `true` or `false`.
    DryRun,
    /// `shred`: `true` or `false` (crypto-shred a tenant, SPEC §11.4).
    Shred,
    /// `purge`: `true` or `false` (drop a deleted secret's kept values).
    Purge,
    /// `type`: only audit events of this type.
    EventType,
    /// `tenant_id`: only this tenant's.
    TenantFilter,
    /// `app_id`: only this app's audit events.
    AppFilter,
    /// `after`: the audit page cursor.
    After,
    /// `version`: a kept version of a secret (default: the current one).
    Version,
    /// `limit`: 1 to `max`, `default` when absent.
    Limit {
        /// Used without `limit`.
        default: usize,
        /// The largest accepted.
        max: usize,
    },
}

impl Query {
    /// The name in the query string.
    pub const fn name(self) -> &'static str {
        match self {
            Self::DryRun => "dry_run",
            Self::Shred => "shred",
            Self::Purge => "purge",
            Self::EventType => "type",
            Self::TenantFilter => "tenant_id",
            Self::AppFilter => "app_id",
            Self::After => "after",
            Self::Version => "version",
            Self::Limit { .. } => "limit",
        }
    }
}

/// Identifies the handler of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs, reason = "each variant is named after its route")]
pub enum RouteId {
    Healthz,
    Readyz,
    Metrics,
    OpenApi,
    ListTenants,
    PutTenant,
    GetTenant,
    DeleteTenant,
    RotateDataKey,
    MintToken,
    ListTokens,
    RevokeToken,
    ListApps,
    PutApp,
    GetApp,
    DeleteApp,
    ListTenantSecrets,
    PutTenantSecrets,
    PutTenantSecret,
    DeleteTenantSecret,
    VerifyTenantSecret,
    ListAppSecrets,
    PutAppSecrets,
    PutAppSecret,
    DeleteAppSecret,
    VerifyAppSecret,
    ListTenantSecretVersions,
    RestoreTenantSecret,
    ListAppSecretVersions,
    RestoreAppSecret,
    Effective,
    Deploy,
    ListDeploys,
    GetDeploy,
    Unpin,
    AppCluster,
    ListAuditEvents,
    Keys,
    Backup,
}

/// One endpoint.
#[derive(Debug, Clone)]
pub struct Route {
    /// Handler.
    pub id: RouteId,
    /// HTTP method.
    pub method: Method,
    /// Path pattern; `{name}` matches one segment.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// Whether it reads a body.
    pub body: Body,
    /// One line for logs, metrics and the OpenAPI summary.
    pub summary: &'static str,
    /// The query parameters it accepts, in the document's order.
    pub query: &'static [Query],
}

impl Route {
    /// The same route accepting `query`.
    const fn with_query(mut self, query: &'static [Query]) -> Self {
        self.query = query;
        self
    }

    /// The names of the query parameters it accepts.
    pub fn query_names(&self) -> impl Iterator<Item = &'static str> + use<> {
        self.query.iter().map(|q| q.name())
    }
}

const fn route(
    id: RouteId,
    method: Method,
    path: &'static str,
    access: Access,
    body: Body,
    summary: &'static str,
) -> Route {
    Route {
        id,
        method,
        path,
        access,
        body,
        summary,
        query: &[],
    }
}

use Access::{Admin, Authenticated, Public, Tenant};
use Body::{None as NoBody, Optional, Required};
use RouteId as R;

/// Every endpoint of the API (SPEC §4).
pub const ROUTES: &[Route] = &[
    route(
        R::Healthz,
        Method::GET,
        "/healthz",
        Public,
        NoBody,
        "liveness",
    ),
    route(
        R::Readyz,
        Method::GET,
        "/readyz",
        Public,
        NoBody,
        "readiness: database, keyring, cluster",
    ),
    route(
        R::Metrics,
        Method::GET,
        "/metrics",
        Admin,
        NoBody,
        "Prometheus metrics",
    ),
    route(
        R::OpenApi,
        Method::GET,
        "/v1/openapi.json",
        Public,
        NoBody,
        "this API as OpenAPI 3.1",
    ),
    route(
        R::ListTenants,
        Method::GET,
        "/v1/tenants",
        Authenticated,
        NoBody,
        "list tenants",
    ),
    route(
        R::PutTenant,
        Method::PUT,
        "/v1/tenants/{tenant_id}",
        Admin,
        Optional,
        "create a tenant",
    ),
    route(
        R::GetTenant,
        Method::GET,
        "/v1/tenants/{tenant_id}",
        Tenant,
        NoBody,
        "read a tenant",
    ),
    route(
        R::DeleteTenant,
        Method::DELETE,
        "/v1/tenants/{tenant_id}",
        Admin,
        NoBody,
        "delete a tenant without apps; with shred=true, crypto-shred it with its apps",
    )
    .with_query(&[Query::Shred]),
    route(
        R::RotateDataKey,
        Method::POST,
        "/v1/tenants/{tenant_id}/rotate-data-key",
        Admin,
        NoBody,
        "rotate a tenant's data key: values are re-sealed under the new one in the background",
    ),
    route(
        R::MintToken,
        Method::POST,
        "/v1/tenants/{tenant_id}/tokens",
        Admin,
        Optional,
        "mint a tenant token (shown once)",
    ),
    route(
        R::ListTokens,
        Method::GET,
        "/v1/tenants/{tenant_id}/tokens",
        Tenant,
        NoBody,
        "list a tenant's tokens",
    ),
    route(
        R::RevokeToken,
        Method::DELETE,
        "/v1/tenants/{tenant_id}/tokens/{token_id}",
        Tenant,
        NoBody,
        "revoke a token",
    ),
    route(
        R::ListApps,
        Method::GET,
        "/v1/apps",
        Authenticated,
        NoBody,
        "list apps",
    )
    .with_query(&[Query::TenantFilter]),
    route(
        R::PutApp,
        Method::PUT,
        "/v1/apps/{app_id}",
        Admin,
        Required,
        "register an app",
    ),
    route(
        R::GetApp,
        Method::GET,
        "/v1/apps/{app_id}",
        Tenant,
        NoBody,
        "read an app",
    ),
    route(
        R::DeleteApp,
        Method::DELETE,
        "/v1/apps/{app_id}",
        Admin,
        NoBody,
        "delete an app, its secrets and history",
    ),
    route(
        R::ListTenantSecrets,
        Method::GET,
        "/v1/tenants/{tenant_id}/external-secrets",
        Tenant,
        NoBody,
        "list tenant defaults (metadata only)",
    ),
    route(
        R::PutTenantSecrets,
        Method::PUT,
        "/v1/tenants/{tenant_id}/external-secrets",
        Tenant,
        Required,
        "set many tenant defaults at once, all or nothing",
    ),
    route(
        R::PutTenantSecret,
        Method::PUT,
        "/v1/tenants/{tenant_id}/external-secrets/{provider}/{key}",
        Tenant,
        Required,
        "set a tenant default",
    ),
    route(
        R::DeleteTenantSecret,
        Method::DELETE,
        "/v1/tenants/{tenant_id}/external-secrets/{provider}/{key}",
        Tenant,
        NoBody,
        "delete a tenant default; with purge=true, with every kept value",
    )
    .with_query(&[Query::Purge]),
    route(
        R::VerifyTenantSecret,
        Method::POST,
        "/v1/tenants/{tenant_id}/external-secrets/{provider}/{key}/verify",
        Tenant,
        Required,
        "check a candidate against a tenant default",
    )
    .with_query(&[Query::Version]),
    route(
        R::ListTenantSecretVersions,
        Method::GET,
        "/v1/tenants/{tenant_id}/external-secrets/{provider}/{key}/versions",
        Tenant,
        NoBody,
        "kept versions of a tenant default, newest first (metadata only)",
    ),
    route(
        R::RestoreTenantSecret,
        Method::POST,
        "/v1/tenants/{tenant_id}/external-secrets/{provider}/{key}/versions/{version}/restore",
        Tenant,
        NoBody,
        "write a kept version of a tenant default again, as a new version",
    ),
    route(
        R::ListAppSecrets,
        Method::GET,
        "/v1/apps/{app_id}/external-secrets",
        Tenant,
        NoBody,
        "list app overrides (metadata only)",
    ),
    route(
        R::PutAppSecrets,
        Method::PUT,
        "/v1/apps/{app_id}/external-secrets",
        Tenant,
        Required,
        "set many app overrides at once, all or nothing",
    ),
    route(
        R::PutAppSecret,
        Method::PUT,
        "/v1/apps/{app_id}/external-secrets/{provider}/{key}",
        Tenant,
        Required,
        "set an app override",
    ),
    route(
        R::DeleteAppSecret,
        Method::DELETE,
        "/v1/apps/{app_id}/external-secrets/{provider}/{key}",
        Tenant,
        NoBody,
        "delete an app override; with purge=true, with every kept value",
    )
    .with_query(&[Query::Purge]),
    route(
        R::VerifyAppSecret,
        Method::POST,
        "/v1/apps/{app_id}/external-secrets/{provider}/{key}/verify",
        Tenant,
        Required,
        "check a candidate against an app override",
    )
    .with_query(&[Query::Version]),
    route(
        R::ListAppSecretVersions,
        Method::GET,
        "/v1/apps/{app_id}/external-secrets/{provider}/{key}/versions",
        Tenant,
        NoBody,
        "kept versions of an app override, newest first (metadata only)",
    ),
    route(
        R::RestoreAppSecret,
        Method::POST,
        "/v1/apps/{app_id}/external-secrets/{provider}/{key}/versions/{version}/restore",
        Tenant,
        NoBody,
        "write a kept version of an app override again, as a new version",
    ),
    route(
        R::Effective,
        Method::GET,
        "/v1/apps/{app_id}/external-secrets/effective",
        Tenant,
        NoBody,
        "the merged set without values",
    ),
    route(
        R::Deploy,
        Method::POST,
        "/v1/apps/{app_id}/deploys",
        Tenant,
        Required,
        "deploy an app, injecting its secrets",
    )
    .with_query(&[Query::DryRun]),
    route(
        R::ListDeploys,
        Method::GET,
        "/v1/apps/{app_id}/deploys",
        Tenant,
        NoBody,
        "deploy history, newest first",
    )
    .with_query(&[Query::Limit {
        default: DEFAULT_HISTORY,
        max: MAX_HISTORY,
    }]),
    route(
        R::GetDeploy,
        Method::GET,
        "/v1/apps/{app_id}/deploys/{deploy_id}",
        Tenant,
        NoBody,
        "one deploy",
    ),
    route(
        R::Unpin,
        Method::POST,
        "/v1/apps/{app_id}/unpin",
        Tenant,
        NoBody,
        "end a rollback's pin: the app follows its current secrets again",
    ),
    route(
        R::AppCluster,
        Method::GET,
        "/v1/apps/{app_id}/cluster",
        Tenant,
        NoBody,
        "what the cluster holds for the app: Secret key names, envFrom, rollout",
    ),
    route(
        R::ListAuditEvents,
        Method::GET,
        "/v1/audit-events",
        Authenticated,
        NoBody,
        "audit log, oldest first",
    )
    .with_query(&[
        Query::EventType,
        Query::TenantFilter,
        Query::AppFilter,
        Query::After,
        Query::Limit {
            default: DEFAULT_AUDIT_PAGE,
            max: MAX_AUDIT_PAGE,
        },
    ]),
    route(
        R::Keys,
        Method::GET,
        "/v1/keys",
        Admin,
        NoBody,
        "keyring status",
    ),
    route(
        R::Backup,
        Method::GET,
        "/v1/backup",
        Admin,
        NoBody,
        "a consistent snapshot of the store (values stay sealed)",
    ),
];

/// Path parameters captured by a match, by name.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(&'static str, String)>);

impl Params {
    /// The value of `{name}`; empty when the route has no such parameter.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Whether the route has `{name}`.
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| *n == name)
    }
}

/// The result of routing a request.
#[derive(Debug)]
pub enum Found {
    /// A route and its parameters.
    Route(&'static Route, Params),
    /// The path exists with other methods.
    MethodNotAllowed(Vec<Method>),
    /// No route has this path.
    NotFound,
}

/// Finds the route of `method` and `path`.
pub fn find(method: &Method, path: &str) -> Found {
    let mut allowed = Vec::new();
    for route in ROUTES {
        let Some(params) = match_path(route.path, path) else {
            continue;
        };
        if route.method == *method {
            return Found::Route(route, params);
        }
        allowed.push(route.method.clone());
    }
    if allowed.is_empty() {
        Found::NotFound
    } else {
        Found::MethodNotAllowed(allowed)
    }
}

/// Matches `path` against `pattern`, capturing `{name}` segments.
pub fn match_path(pattern: &'static str, path: &str) -> Option<Params> {
    let mut params = Vec::new();
    let mut pattern_segments = pattern.split('/');
    let mut path_segments = path.split('/');
    loop {
        match (pattern_segments.next(), path_segments.next()) {
            (None, None) => return Some(Params(params)),
            (Some(want), Some(have)) => {
                if let Some(name) = want.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
                    if have.is_empty() {
                        return None;
                    }
                    params.push((name, have.to_owned()));
                } else if want != have {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_is_unique_per_method_and_found_by_itself() {
        for route in ROUTES {
            let sample: String = route
                .path
                .split('/')
                .map(|s| if s.starts_with('{') { "x1" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            match find(&route.method, &sample) {
                Found::Route(found, _) => assert_eq!(found.id, route.id, "{}", route.path),
                other => panic!("{} not found: {other:?}", route.path),
            }
        }
    }

    #[test]
    fn parameters_are_captured_and_methods_reported() {
        let Found::Route(route, params) = find(
            &Method::PUT,
            "/v1/apps/web/external-secrets/openai/OPENAI_API_KEY",
        ) else {
            panic!("no route");
        };
        assert_eq!(route.id, RouteId::PutAppSecret);
        assert_eq!(params.get("app_id"), "web");
        assert_eq!(params.get("provider"), "openai");
        assert_eq!(params.get("key"), "OPENAI_API_KEY");
        let Found::Route(route, _) = find(&Method::GET, "/v1/apps/web/external-secrets/effective")
        else {
            panic!("no route");
        };
        assert_eq!(route.id, RouteId::Effective);
        assert!(
            matches!(find(&Method::PATCH, "/v1/tenants/t1"), Found::MethodNotAllowed(m) if m.len() == 3)
        );
        assert!(matches!(find(&Method::GET, "/v1/nope"), Found::NotFound));
        assert!(matches!(
            find(&Method::GET, "/v1/tenants/"),
            Found::NotFound
        ));
        assert!(matches!(
            find(&Method::GET, "/v1/tenants/t1/"),
            Found::NotFound
        ));
    }
}
