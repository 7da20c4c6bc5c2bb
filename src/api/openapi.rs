//! The OpenAPI 3.1 document of every route, served at `/v1/openapi.json`.
//!
//! What follows from a route's shape comes from [`ROUTES`]: paths, methods,
//! summaries, path parameters, security, and the errors every route of that
//! shape can answer (401 behind a token, 413/415 with a body, 400 for a
//! malformed path id, …). What only one route answers — which DTO it
//! answers with, its query parameters, request body and own error codes —
//! is in `answers`, an exhaustive match on [`RouteId`]: a new route does not
//! compile until it is described here. Each DTO's schema lives next to the
//! DTO (`api::dto`, trait [`Schema`]); this module lists them under
//! `components.schemas`. Limits and patterns come from the constants the
//! parsers use. Each problem answer lists its possible `code`s as an enum,
//! so a test that validates real answers also catches an undocumented code.
//!
//! This module only describes; it must not decide anything a handler does.
//! The unit tests below check the document's structure; the integration
//! test `openapi` drives a real server through every route and validates
//! each answer against this document.

use std::collections::{BTreeMap, BTreeSet};

use hyper::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::MAX_BODY_BYTES;
use super::dto::schema::{self, Schema, reference, reference_to, string};
use super::dto::{
    AppDeletedDto, AppDto, AppListDto, AuditPageDto, BulkSecretsBody, BulkSecretsDto, CleanupDto,
    ClusterDto, DataKeyDto, DataKeyRotationDto, DeployBody, DeployDetailDto, DeployDto,
    DeployFailedDto, DeployListDto, DryRunDto, DryRunInjectionDto, EffectiveDto, EffectiveEntryDto,
    HealthDto, InjectionDto, KeyStatusDto, KeysDto, MintedTokenDto, PutAppBody, PutTenantBody,
    ReadyDto, RolloutDto, SecretListDto, SecretMetaDto, SecretOutcomeDto, SecretVersionDto,
    SecretVersionListDto, TenantDetailDto, TenantDto, TenantListDto, TenantShreddedDto, TokenDto,
    TokenListDto, ValueBody, VerifyDto, WarningDto,
};
use super::handlers::MAX_IDEMPOTENCY_KEY_LEN;
use super::routes::{Access, Body, Query, ROUTES, Route, RouteId};
use crate::audit::AuditEvent;

/// The whole document.
pub fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "exsec",
            "version": env!("CARGO_PKG_VERSION"),
            "summary": "Sealed external secrets for small Kubernetes clusters",
            "description": DESCRIPTION,
            "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" },
        },
        "servers": [
            { "url": "http://127.0.0.1:7780", "description": "the default listen address (plain HTTP on loopback)" },
            { "url": "https://{host}:{port}", "description": "with server.tls_cert and server.tls_key: HTTPS only (TLS 1.2 and 1.3); plain HTTP there answers 400 tls_required", "variables": { "host": { "default": "127.0.0.1" }, "port": { "default": "7780" } } },
        ],
        "paths": paths(),
        "components": {
            "schemas": schemas(),
            "parameters": path_parameters(),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the admin token, or a tenant token `exs_<token_id>_<secret>` minted by the admin",
                },
            },
        },
    })
}

const DESCRIPTION: &str = "JSON in and out. Every error is an RFC 9457 \
`application/problem+json` object (`Problem`) with a stable machine `code`; each \
answer below lists the codes it can carry. A tenant token reaches only its own \
tenant and its apps: anything else answers 404, exactly as if it did not exist. \
Authentication and authorization are decided before the body is read. Besides \
the answers listed per operation, every path answers 405 `method_not_allowed` \
(with an `Allow` header) to a method it does not list, and an unknown path \
answers 404 `route_not_found`.";

// ---------------------------------------------------------------------------
// Paths and operations

fn paths() -> Map<String, Value> {
    let mut paths = Map::new();
    for route in ROUTES {
        let item = paths
            .entry(route.path)
            .or_insert_with(|| path_item(route.path));
        item[route.method.as_str().to_ascii_lowercase()] = operation(route);
    }
    paths
}

/// A path item declaring the path's template parameters once for all its
/// methods.
fn path_item(path: &str) -> Value {
    let parameters: Vec<Value> = template_parameters(path)
        .map(|name| json!({ "$ref": format!("#/components/parameters/{name}") }))
        .collect();
    if parameters.is_empty() {
        json!({})
    } else {
        json!({ "parameters": parameters })
    }
}

/// The `{name}`s of a path pattern.
fn template_parameters(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
}

fn operation(route: &Route) -> Value {
    let answers = answers(route.id);
    let (security, who) = match route.access {
        Access::Public => (json!([]), "No token needed."),
        Access::Admin => (
            json!([{ "bearer": [] }]),
            "Admin token only; a tenant token gets 404.",
        ),
        Access::Tenant => (
            json!([{ "bearer": [] }]),
            "The admin, or a token of the tenant concerned; another tenant's token gets 404.",
        ),
        Access::Authenticated => (
            json!([{ "bearer": [] }]),
            "Any token; a tenant token sees only its own tenant.",
        ),
    };
    let mut operation = json!({
        "operationId": operation_id(route.id),
        "summary": route.summary,
        "description": who,
        "tags": [tag(route.path)],
        "security": security,
        "responses": responses(route, &answers),
    });
    let parameters: Vec<Value> = route
        .query
        .iter()
        .map(|&query| query_parameter(query))
        .chain(answers.parameters)
        .collect();
    if !parameters.is_empty() {
        operation["parameters"] = Value::Array(parameters);
    }
    if route.body != Body::None {
        let schema = answers.body.unwrap_or_else(reference_to::<PutTenantBody>);
        operation["requestBody"] = json!({
            "description": format!("JSON of at most {MAX_BODY_BYTES} bytes"),
            "required": route.body == Body::Required,
            "content": { "application/json": { "schema": schema } },
        });
    }
    operation
}

/// `ListTenants` → `listTenants`.
fn operation_id(id: RouteId) -> String {
    let name = format!("{id:?}");
    let mut chars = name.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_ascii_lowercase().to_string() + chars.as_str()
    })
}

/// Groups operations by resource, the way a reader looks for them.
fn tag(path: &str) -> &'static str {
    if path.contains("/external-secrets") {
        "external secrets"
    } else if path.contains("/deploys") {
        "deploys"
    } else if path.contains("/tokens") {
        "tokens"
    } else if path.starts_with("/v1/apps") {
        "apps"
    } else if path.starts_with("/v1/tenants") {
        "tenants"
    } else if path.starts_with("/v1/audit-events") {
        "audit"
    } else {
        "system"
    }
}

// ---------------------------------------------------------------------------
// What each route answers

/// What one route answers beyond what its shape implies.
struct Answers {
    /// Success statuses and their response objects.
    success: Vec<(u16, Value)>,
    /// Query and header parameters.
    parameters: Vec<Value>,
    /// The request body's schema; `None` means `EmptyRequest`.
    body: Option<Value>,
    /// Problem codes only this route answers.
    problems: &'static [(u16, &'static str)],
    /// Statuses whose problem carries extra members, and their schema.
    extended_problems: &'static [(u16, &'static str)],
}

impl Answers {
    fn new(status: u16, response: Value) -> Self {
        Self {
            success: vec![(status, response)],
            parameters: Vec::new(),
            body: None,
            problems: &[],
            extended_problems: &[],
        }
    }

    /// 200 with a JSON body.
    fn ok(schema: Value) -> Self {
        Self::new(200, json_response("OK", schema))
    }

    /// 201 created / 200 already there (replaced or unchanged).
    fn put(component: &str) -> Self {
        Self::new(201, json_response("created", reference(component))).and(
            200,
            json_response("already there: replaced or unchanged", reference(component)),
        )
    }

    /// 204 without a body.
    fn deleted() -> Self {
        Self::new(204, json!({ "description": "deleted" }))
    }

    fn and(mut self, status: u16, response: Value) -> Self {
        self.success.push((status, response));
        self
    }

    fn parameters(mut self, parameters: Vec<Value>) -> Self {
        self.parameters = parameters;
        self
    }

    fn body(mut self, component: &str) -> Self {
        self.body = Some(reference(component));
        self
    }

    fn problems(mut self, problems: &'static [(u16, &'static str)]) -> Self {
        self.problems = problems;
        self
    }
}

/// Errors of both secret-writing routes.
const SECRET_WRITE_PROBLEMS: &[(u16, &str)] = &[
    (400, "invalid_value"),
    (409, "env_name_taken"),
    (409, "data_key_changed"),
    (422, "effective_set_too_large"),
    (500, "internal"),
    (503, "master_key_unavailable"),
];

/// Errors of both verify routes.
const SECRET_VERIFY_PROBLEMS: &[(u16, &str)] = &[
    (400, "invalid_value"),
    (400, "invalid_query"),
    (404, "secret_not_found"),
    (404, "version_not_found"),
    (409, "version_is_tombstone"),
    (429, "rate_limited"),
    (500, "internal"),
    (503, "master_key_unavailable"),
];

fn answers(id: RouteId) -> Answers {
    use RouteId as R;
    match id {
        R::Healthz => Answers::ok(HealthDto::schema()),
        R::Readyz => Answers::ok(reference_to::<ReadyDto>()).and(
            503,
            json_response(
                "not ready: the database is unavailable, writes fail (storage degraded) or the cluster target is unreachable",
                reference_to::<ReadyDto>(),
            ),
        ),
        R::Metrics => Answers::new(
            200,
            json!({
                "description": "Prometheus text exposition format 0.0.4",
                "content": { "text/plain": { "schema": { "type": "string" } } },
            }),
        ),
        R::OpenApi => Answers::ok(json!({
            "type": "object",
            "required": ["openapi", "info", "paths", "components"],
            "properties": { "openapi": { "const": "3.1.0" } },
        })),
        R::ListTenants => Answers::ok(TenantListDto::schema()),
        R::PutTenant => Answers::put(TenantDto::NAME),
        R::GetTenant => Answers::ok(reference_to::<TenantDetailDto>()),
        R::RotateDataKey => Answers::new(
            202,
            json_response(
                "the new data key is the tenant's current one; `data_key.resealing.remaining` \
                 values are re-sealed under it in the background (follow `GET \
                 /v1/tenants/{tenant_id}`), then the older keys are deleted",
                reference_to::<TenantDetailDto>(),
            ),
        )
        .problems(&[
            (404, "tenant_not_found"),
            (500, "internal"),
            (503, "master_key_unavailable"),
        ]),
        R::DeleteTenant => Answers::deleted()
            .and(
                200,
                json_response(
                    "`shred=true`: shredded, but cluster objects of its apps (which may hold \
                     secret values) could not be removed yet: the warning `cleanup_pending` names \
                     each app; exsec retries until they are gone",
                    reference_to::<TenantShreddedDto>(),
                ),
            )
            .problems(&[
                (404, "tenant_not_found"),
                (409, "tenant_has_apps"),
                (409, "deploy_in_progress"),
            ]),
        R::MintToken => Answers::new(
            201,
            json_response(
                "minted; the token appears only in this answer",
                reference_to::<MintedTokenDto>(),
            ),
        )
        .problems(&[(404, "tenant_not_found"), (500, "internal")]),
        R::ListTokens => Answers::ok(TokenListDto::schema()),
        R::RevokeToken => Answers::deleted().problems(&[(404, "token_not_found")]),
        R::ListApps => Answers::ok(AppListDto::schema())
            .problems(&[(400, "invalid_tenant_id"), (404, "tenant_not_found")]),
        R::PutApp => Answers::put(AppDto::NAME).body(PutAppBody::NAME).problems(&[
            (400, "invalid_tenant_id"),
            (400, "invalid_key"),
            (404, "tenant_not_found"),
            (409, "app_tenant_fixed"),
        ]),
        R::GetApp => Answers::ok(reference_to::<AppDto>()),
        R::DeleteApp => Answers::deleted()
            .and(
                200,
                json_response(
                    "deleted, but objects of the app (which may hold secret values) could not be \
                     removed from the cluster yet: the warning `cleanup_pending` says why; exsec \
                     retries until they are gone",
                    reference_to::<AppDeletedDto>(),
                ),
            )
            .problems(&[(409, "deploy_in_progress")]),
        R::ListTenantSecrets | R::ListAppSecrets => Answers::ok(SecretListDto::schema()),
        R::PutTenantSecrets | R::PutAppSecrets => bulk_answers(),
        R::PutTenantSecret | R::PutAppSecret => Answers::put(SecretMetaDto::NAME)
            .body(ValueBody::NAME)
            .problems(SECRET_WRITE_PROBLEMS),
        R::DeleteTenantSecret | R::DeleteAppSecret => {
            Answers::deleted().problems(&[(404, "secret_not_found")])
        }
        R::VerifyTenantSecret | R::VerifyAppSecret => Answers::ok(reference_to::<VerifyDto>())
            .body(ValueBody::NAME)
            .problems(SECRET_VERIFY_PROBLEMS),
        R::ListTenantSecretVersions | R::ListAppSecretVersions => {
            Answers::ok(reference_to::<SecretVersionListDto>())
                .problems(&[(404, "secret_not_found")])
        }
        R::RestoreTenantSecret | R::RestoreAppSecret => Answers::ok(reference_to::<SecretMetaDto>())
            .and(
                201,
                json_response(
                    "restored a secret that had been deleted",
                    reference_to::<SecretMetaDto>(),
                ),
            )
            .problems(&[
                (400, "invalid_version"),
                (404, "version_not_found"),
                (409, "version_is_tombstone"),
                (409, "env_name_taken"),
                (422, "effective_set_too_large"),
            ]),
        R::Unpin => Answers::ok(reference_to::<AppDto>()),
        R::Effective => Answers::ok(reference_to::<EffectiveDto>()),
        R::Deploy => deploy_answers(),
        R::ListDeploys => Answers::ok(DeployListDto::schema())
            .problems(&[(400, "invalid_query")]),
        R::GetDeploy => {
            Answers::ok(reference_to::<DeployDetailDto>()).problems(&[(404, "deploy_not_found")])
        }
        R::AppCluster => Answers::ok(reference_to::<ClusterDto>())
            .problems(&[(502, "cluster_unreachable"), (504, "cluster_timeout")]),
        R::ListAuditEvents => Answers::ok(reference_to::<AuditPageDto>())
            .problems(&[
                (400, "invalid_query"),
                (400, "invalid_tenant_id"),
                (400, "invalid_app_id"),
                (404, "tenant_not_found"),
            ]),
        R::Keys => Answers::ok(reference_to::<KeysDto>()),
        R::Backup => Answers::new(
            200,
            json!({
                "description": "a consistent snapshot in the exsec backup format 2, streamed, authenticated \
                                with a key derived from the active master key (values stay sealed; see \
                                src/store/backup.rs)",
                "content": {
                    "application/vnd.exsec.backup": { "schema": { "type": "string", "contentMediaType": "application/octet-stream" } }
                },
            }),
        )
        .problems(&[(503, "master_key_unavailable")]),
    }
}

/// The bulk write: one answer per key; a refused item is named by
/// `index` and `field` in the problem.
fn bulk_answers() -> Answers {
    let mut answers = Answers::ok(reference_to::<BulkSecretsDto>())
        .body(BulkSecretsBody::NAME)
        .problems(&[
            (400, "invalid_provider"),
            (400, "invalid_key"),
            (400, "invalid_value"),
            (409, "env_name_taken"),
            (409, "data_key_changed"),
            (422, "duplicate_key"),
            (422, "too_many_secrets"),
            (422, "effective_set_too_large"),
            (500, "internal"),
            (503, "master_key_unavailable"),
        ]);
    answers.extended_problems = &[(400, "ItemProblem"), (422, "ItemProblem")];
    answers
}

fn deploy_answers() -> Answers {
    let mut answers = Answers::new(
        201,
        json_response(
            "the Deployment was applied (or the deploy of this Idempotency-Key is replayed); \
             `external_secrets` says what injection did",
            reference_to::<DeployDto>(),
        ),
    )
    .and(
        200,
        json_response(
            "`dry_run`: what a deploy would change; nothing applied, recorded or audited",
            reference_to::<DryRunDto>(),
        ),
    )
    .parameters(vec![json!({
        "name": "Idempotency-Key",
        "in": "header",
        "required": false,
        "description": "kept 24 h: a retry with the same key and body returns the original deploy; \
                        the same key with another body answers 422 `idempotency_key_reused`",
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_IDEMPOTENCY_KEY_LEN,
            "pattern": "^[!-~]+$",
        },
    })])
    .body(DeployBody::NAME)
    .problems(&[
        (400, "invalid_query"),
        (400, "invalid_idempotency_key"),
        (400, "invalid_image_ref"),
        (400, "invalid_replicas"),
        (400, "invalid_port"),
        (400, "invalid_tenant_id"),
        (400, "invalid_rollback"),
        (404, "deploy_not_found"),
        (409, "deploy_in_progress"),
        (409, "snapshot_unavailable"),
        (422, "app_id_mismatch"),
        (422, "tenant_mismatch"),
        (422, "idempotency_key_reused"),
        (502, "deployment_apply_failed"),
        (503, "deploy_record_pending"),
    ]);
    answers.extended_problems = &[
        (409, "SnapshotProblem"),
        (502, DeployFailedDto::NAME),
        (503, DeployFailedDto::PENDING_NAME),
    ];
    answers
}

fn json_response(description: &str, schema: Value) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": schema } },
    })
}

/// The document's description of a query parameter of `Route::query`.
fn query_parameter(query: Query) -> Value {
    let (description, schema) = match query {
        Query::DryRun => (
            "`true`: only report what would change; `false`: deploy (any other value answers 400 `invalid_query`)",
            json!({ "type": "boolean", "default": false }),
        ),
        Query::Shred => (
            "`true`: crypto-shred the tenant (SPEC §11.4): the tenant, its apps (their cluster objects best-effort, pins and queued redeploys), secrets with every kept version, tokens and wrapped data keys in one transaction, audited as `tenant.crypto_shredded`; copies of its sealed values open no more. `false` (the default): delete a tenant without apps",
            json!({ "type": "boolean", "default": false }),
        ),
        Query::Purge => (
            "`true`: also drop every kept value of the secret (its history keeps only a tombstone, so version numbers go on after it; a rollback to a deploy that used a dropped version answers 409 `snapshot_unavailable`), audited as `external_secret.purged` with the count; works on a secret already deleted. `false` (the default): delete, keeping the history",
            json!({ "type": "boolean", "default": false }),
        ),
        Query::EventType => (
            "only events of this type, e.g. `external_secret.injected`",
            json!({ "type": "string" }),
        ),
        Query::TenantFilter => (
            "only this tenant's; a tenant token may name only its own tenant (another answers 404)",
            reference("ResourceId"),
        ),
        Query::AppFilter => ("only events of this app", reference("ResourceId")),
        Query::Version => (
            "compare with this kept version instead of the current value (404 `version_not_found` when it is not kept, 409 `version_is_tombstone` for a deletion)",
            json!({ "type": "integer", "minimum": 1 }),
        ),
        Query::After => (
            "only events with a greater `seq`: pass the previous page's `next_after`",
            json!({ "type": "integer", "minimum": 0, "default": 0 }),
        ),
        Query::Limit { default, max } => (
            "how many to return at most",
            json!({ "type": "integer", "minimum": 1, "maximum": max, "default": default }),
        ),
    };
    json!({
        "name": query.name(),
        "in": "query",
        "required": false,
        "description": description,
        "schema": schema,
    })
}

// ---------------------------------------------------------------------------
// Responses: success bodies plus problem+json by status

fn responses(route: &Route, answers: &Answers) -> Map<String, Value> {
    let mut responses: Map<String, Value> = answers
        .success
        .iter()
        .map(|(status, response)| (status.to_string(), response.clone()))
        .collect();
    for (status, response) in &mut responses {
        if status.starts_with('2') {
            let links = links(route, status);
            if !links.is_empty() {
                response["links"] = Value::Object(links);
            }
        }
    }
    for (status, codes) in problem_codes(route, answers.problems) {
        let component = answers
            .extended_problems
            .iter()
            .find(|(extended, _)| *extended == status)
            .map_or("Problem", |(_, component)| component);
        let content = problem_schema(component, status, &codes);
        let listed: Vec<&str> = codes.into_iter().collect();
        let description = format!("{}: {}", reason(status), listed.join(", "));
        // A status may also have a success body (`/readyz` 503): the problem
        // is then a second media type of the same response.
        let response = responses
            .entry(status.to_string())
            .or_insert_with(|| json!({ "description": description, "content": {} }));
        response["content"]["application/problem+json"] = json!({ "schema": content });
        if let Some(headers) = problem_headers(status) {
            response["headers"] = headers;
        }
    }
    responses
}

/// OpenAPI links from a write's success answer to every operation it makes
/// reachable: each operation whose path parameters the write's own path
/// (or the id a new deploy or token answers with, or the version a secret
/// write stored) supplies. A client — or
/// a stateful API tester — follows them from a created tenant, app, secret,
/// deploy or token to what can be done with it.
fn links(route: &Route, status: &str) -> Map<String, Value> {
    let created = match route.id {
        RouteId::Deploy => Some("deploy_id"),
        RouteId::MintToken => Some("token_id"),
        _ => None,
    };
    let writes = route.method == hyper::Method::PUT || (created.is_some() && status == "201");
    if !writes {
        return Map::new();
    }
    let mut known: BTreeMap<&str, String> = template_parameters(route.path)
        .map(|name| (name, format!("$request.path.{name}")))
        .collect();
    if route.id == RouteId::PutApp {
        known.insert("tenant_id", "$request.body#/tenant_id".to_owned());
    }
    // A secret's write answers the version it stored: its history routes.
    if matches!(route.id, RouteId::PutTenantSecret | RouteId::PutAppSecret) {
        known.insert("version", "$response.body#/version".to_owned());
    }
    if let Some(created) = created {
        known.insert(created, format!("$response.body#/{created}"));
    }
    ROUTES
        .iter()
        .filter(|target| target.id != route.id)
        .filter_map(|target| {
            let mut names = template_parameters(target.path).peekable();
            names.peek()?;
            let parameters: Option<Map<String, Value>> = names
                .map(|name| Some((name.to_owned(), Value::String(known.get(name)?.clone()))))
                .collect();
            Some((
                operation_id(target.id),
                json!({ "operationId": operation_id(target.id), "parameters": parameters? }),
            ))
        })
        .collect()
}

/// The problem codes a route can answer, by status.
fn problem_codes(
    route: &Route,
    only_here: &[(u16, &'static str)],
) -> BTreeMap<u16, BTreeSet<&'static str>> {
    let mut codes: BTreeMap<u16, BTreeSet<&'static str>> = BTreeMap::new();
    let mut add = |status: u16, code: &'static str| {
        codes.entry(status).or_default().insert(code);
    };
    for name in template_parameters(route.path) {
        if let Some(code) = invalid_code(name) {
            add(400, code);
        }
    }
    if route.body != Body::None {
        for code in [
            "malformed_json",
            "wrong_type",
            "unknown_field",
            "body_unreadable",
        ] {
            add(400, code);
        }
        add(413, "body_too_large");
        add(415, "unsupported_media_type");
    }
    if route.body == Body::Required {
        add(400, "missing_body");
        add(400, "missing_field");
    }
    // Any route refuses query parameters it does not declare.
    add(400, "invalid_query");
    if route.access != Access::Public {
        add(400, "duplicate_authorization");
        add(401, "unauthenticated");
        // Authentication reads the token table.
        add(503, "storage_unavailable");
        // Every other method writes (verify and dry runs audit or may).
        if route.method != Method::GET {
            add(507, "insufficient_storage");
        }
    }
    if route.access == Access::Admin {
        add(404, "not_found");
    }
    if route.access == Access::Tenant && route.path.contains("{tenant_id}") {
        add(404, "tenant_not_found");
    }
    // Authorization loads the app; registering one is the exception.
    if route.path.contains("{app_id}") && route.id != RouteId::PutApp {
        add(404, "app_not_found");
    }
    // These two answer from memory without awaiting: the request timeout
    // cannot fire.
    if !matches!(route.id, RouteId::Healthz | RouteId::OpenApi) {
        add(503, "request_timeout");
    }
    for &(status, code) in only_here {
        add(status, code);
    }
    codes
}

/// The 400 code of a malformed path parameter, if it is parsed.
fn invalid_code(parameter: &str) -> Option<&'static str> {
    match parameter {
        "tenant_id" => Some("invalid_tenant_id"),
        "app_id" => Some("invalid_app_id"),
        "provider" => Some("invalid_provider"),
        "key" => Some("invalid_key"),
        _ => None,
    }
}

/// A problem of one status with one of `codes`, and no other members than
/// its component declares.
fn problem_schema(component: &str, status: u16, codes: &BTreeSet<&str>) -> Value {
    json!({
        "$ref": format!("#/components/schemas/{component}"),
        "properties": {
            "status": { "const": status },
            "code": { "enum": codes },
        },
        "unevaluatedProperties": false,
    })
}

fn problem_headers(status: u16) -> Option<Value> {
    let (name, description, schema) = match status {
        401 => (
            "WWW-Authenticate",
            "`Bearer`",
            json!({ "type": "string", "const": "Bearer" }),
        ),
        429 => (
            "Retry-After",
            "seconds until a retry can succeed",
            json!({ "type": "integer", "minimum": 0 }),
        ),
        _ => return None,
    };
    Some(json!({ name: { "description": description, "required": true, "schema": schema } }))
}

fn reason(status: u16) -> &'static str {
    StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

// ---------------------------------------------------------------------------
// Path parameters

fn path_parameters() -> Map<String, Value> {
    ROUTES
        .iter()
        .flat_map(|route| template_parameters(route.path))
        .map(|name| {
            let (schema, description) = path_parameter(name);
            let parameter = json!({
                "name": name,
                "in": "path",
                "required": true,
                "description": description,
                "schema": schema,
            });
            (name.to_owned(), parameter)
        })
        .collect()
}

fn path_parameter(name: &str) -> (Value, &'static str) {
    let (component, description) = match name {
        "tenant_id" => ("ResourceId", "a tenant"),
        "app_id" => ("ResourceId", "an app"),
        "provider" => ("Provider", "the provider of the external secret"),
        "key" => ("EnvKey", "the environment variable name"),
        "token_id" => ("TokenId", "a token id (never the token)"),
        "deploy_id" => ("DeployId", "a deploy"),
        "version" => {
            return (
                json!({ "type": "string", "pattern": "^[1-9][0-9]{0,18}$" }),
                "a kept version of the secret, as its history lists it",
            );
        }
        _ => return (string(), "a path segment"),
    };
    (reference(component), description)
}

// ---------------------------------------------------------------------------
// Schemas: each DTO's next to it (`api::dto`), listed here

fn schemas() -> Map<String, Value> {
    let mut schemas: Map<String, Value> = schema::shared()
        .into_iter()
        .map(|(name, schema)| (name.to_owned(), schema))
        .collect();
    schemas.insert("Problem".to_owned(), problem());
    schemas.insert("ItemProblem".to_owned(), item_problem());
    schemas.insert("SnapshotProblem".to_owned(), snapshot_problem());
    schemas.insert(
        DeployFailedDto::PENDING_NAME.to_owned(),
        DeployFailedDto::pending_schema(),
    );
    for (name, schema) in [
        component::<WarningDto>(),
        component::<DeployFailedDto>(),
        component::<PutTenantBody>(),
        component::<PutAppBody>(),
        component::<ValueBody>(),
        component::<BulkSecretsBody>(),
        component::<BulkSecretsDto>(),
        component::<SecretOutcomeDto>(),
        component::<DeployBody>(),
        component::<TenantDto>(),
        component::<TenantDetailDto>(),
        component::<TenantShreddedDto>(),
        component::<DataKeyDto>(),
        component::<AppDto>(),
        component::<SecretMetaDto>(),
        component::<SecretVersionDto>(),
        component::<SecretVersionListDto>(),
        component::<VerifyDto>(),
        component::<TokenDto>(),
        component::<MintedTokenDto>(),
        component::<InjectionDto>(),
        component::<DeployDto>(),
        component::<DeployDetailDto>(),
        component::<RolloutDto>(),
        component::<ClusterDto>(),
        component::<CleanupDto>(),
        component::<AppDeletedDto>(),
        component::<DryRunDto>(),
        component::<DryRunInjectionDto>(),
        component::<EffectiveDto>(),
        component::<EffectiveEntryDto>(),
        component::<AuditEvent>(),
        component::<AuditPageDto>(),
        component::<KeysDto>(),
        component::<KeyStatusDto>(),
        component::<DataKeyRotationDto>(),
        component::<ReadyDto>(),
    ] {
        schemas.insert(name.to_owned(), schema);
    }
    schemas
}

/// A DTO's entry under `components.schemas`.
fn component<T: Schema>() -> (&'static str, Value) {
    (T::NAME, T::schema())
}

/// A problem of the bulk write that names the refused item.
fn item_problem() -> Value {
    json!({
        "allOf": [reference("Problem")],
        "properties": {
            "index": { "type": "integer", "minimum": 0, "description": "the refused item of `secrets`" },
            "field": schema::one_of(&["provider", "key", "value"]),
        },
    })
}

/// A 409 of the deploy route: `snapshot_unavailable` for a pruned version
/// names it (never its value); the other conflicts carry no extra member.
fn snapshot_problem() -> Value {
    json!({
        "allOf": [reference("Problem")],
        "properties": {
            "scope": schema::one_of(&["tenant", "app"]),
            "provider": reference("Provider"),
            "key": reference("EnvKey"),
            "version": { "type": "integer", "minimum": 1 },
        },
    })
}

/// RFC 9457; open, as the RFC allows extension members.
fn problem() -> Value {
    json!({
        "type": "object",
        "required": ["type", "title", "status", "detail", "code"],
        "properties": {
            "type": {
                "type": "string",
                "pattern": "^urn:exsec:problem:[a-z_]+$",
                "description": "`urn:exsec:problem:{code}`",
            },
            "title": { "type": "string", "description": "the HTTP reason phrase" },
            "status": { "type": "integer", "minimum": 400, "maximum": 599 },
            "detail": { "type": "string", "description": "what happened and how to fix it" },
            "code": { "type": "string", "pattern": "^[a-z_]+$", "description": "stable machine code" },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

    /// Every link names an operation of the document and supplies exactly
    /// its path parameters; creating an app, a deploy and a token leads to
    /// what can be done with them.
    #[test]
    fn links_lead_to_operations_with_every_path_parameter() {
        let document = document();
        let all = operations(&document);
        let by_id = |id: &str| {
            all.iter()
                .find(|(_, _, op)| op["operationId"] == id)
                .unwrap_or_else(|| panic!("no operation {id}"))
        };
        let mut count = 0;
        for (path, method, operation) in &all {
            for (status, response) in operation["responses"].as_object().unwrap() {
                let Some(links) = response["links"].as_object() else {
                    continue;
                };
                for (name, link) in links {
                    count += 1;
                    let (target, _, _) = by_id(link["operationId"].as_str().unwrap());
                    let mut wanted: Vec<&str> = template_parameters(target).collect();
                    let mut given: Vec<&str> = link["parameters"]
                        .as_object()
                        .unwrap()
                        .keys()
                        .map(String::as_str)
                        .collect();
                    wanted.sort_unstable();
                    given.sort_unstable();
                    assert_eq!(wanted, given, "{method} {path} {status} → {name}");
                }
            }
        }
        assert!(count > 50, "only {count} links");
        let link = |source: &str, status: &str, target: &str| {
            let (_, _, operation) = by_id(source);
            operation["responses"][status]["links"][target]["parameters"].clone()
        };
        assert_eq!(
            link("deploy", "201", "getDeploy"),
            json!({"app_id": "$request.path.app_id", "deploy_id": "$response.body#/deploy_id"})
        );
        assert_eq!(
            link("mintToken", "201", "revokeToken"),
            json!({"tenant_id": "$request.path.tenant_id", "token_id": "$response.body#/token_id"})
        );
        assert_eq!(
            link("putApp", "201", "getTenant"),
            json!({"tenant_id": "$request.body#/tenant_id"})
        );
        assert_eq!(
            link("putAppSecret", "201", "restoreAppSecret"),
            json!({
                "app_id": "$request.path.app_id",
                "provider": "$request.path.provider",
                "key": "$request.path.key",
                "version": "$response.body#/version"
            })
        );
        assert!(
            link("getApp", "200", "deleteApp").is_null(),
            "reads link nowhere"
        );
    }

    /// `(path, method, operation)` of every operation in the document.
    fn operations(document: &Value) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                if METHODS.contains(&method.as_str()) {
                    out.push((path.clone(), method.clone(), operation.clone()));
                }
            }
        }
        out
    }

    fn route_of(path: &str, method: &str) -> &'static Route {
        ROUTES
            .iter()
            .find(|r| r.path == path && r.method.as_str().eq_ignore_ascii_case(method))
            .unwrap()
    }

    /// Follows a local `$ref`.
    fn resolve<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
        match value["$ref"].as_str() {
            Some(target) => document
                .pointer(target.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("unresolved {target}")),
            None => value,
        }
    }

    #[test]
    fn paths_and_methods_are_exactly_the_routers() {
        let document = document();
        let documented: BTreeSet<(String, String)> = operations(&document)
            .into_iter()
            .map(|(path, method, _)| (path, method))
            .collect();
        let routed: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|r| (r.path.to_owned(), r.method.as_str().to_ascii_lowercase()))
            .collect();
        assert_eq!(documented, routed);
        assert_eq!(routed.len(), ROUTES.len(), "a route is listed twice");
        let ids: BTreeSet<String> = operations(&document)
            .iter()
            .map(|(_, _, op)| op["operationId"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids.len(), ROUTES.len(), "operationIds are not unique");
    }

    #[test]
    fn every_operation_declares_its_answers_with_schemas() {
        let document = document();
        for (path, method, operation) in operations(&document) {
            let route = route_of(&path, &method);
            let at = format!("{method} {path}");
            let responses = operation["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{at}: no success answer"
            );
            for (status, response) in responses {
                assert!(response["description"].is_string(), "{at} {status}");
                if status == "204" {
                    assert!(response.get("content").is_none(), "{at}: 204 has a body");
                    continue;
                }
                let content = response["content"].as_object().unwrap();
                assert!(!content.is_empty(), "{at} {status}: no content");
                for (media, body) in content {
                    assert!(
                        body["schema"].is_object(),
                        "{at} {status} {media}: no schema"
                    );
                }
                let status: u16 = status.parse().unwrap();
                if status >= 400 {
                    let problem = &content["application/problem+json"]["schema"];
                    assert_eq!(problem["properties"]["status"]["const"], status, "{at}");
                    assert!(
                        !problem["properties"]["code"]["enum"]
                            .as_array()
                            .unwrap()
                            .is_empty(),
                        "{at} {status}: no codes"
                    );
                }
            }
            let has = |status: &str| responses.contains_key(status);
            let public = route.access == Access::Public;
            assert_eq!(has("401"), !public, "{at}: 401");
            assert_eq!(operation["security"].as_array().unwrap().is_empty(), public);
            let body = route.body != Body::None;
            assert_eq!(has("413"), body, "{at}: 413");
            assert_eq!(has("415"), body, "{at}: 415");
            assert_eq!(operation.get("requestBody").is_some(), body, "{at}: body");
            if body {
                assert_eq!(
                    operation["requestBody"]["required"],
                    route.body == Body::Required
                );
            }
        }
    }

    #[test]
    fn every_ref_resolves() {
        fn walk(document: &Value, value: &Value, found: &mut usize) {
            match value {
                Value::Object(map) => {
                    if let Some(target) = map.get("$ref") {
                        let target = target.as_str().unwrap();
                        assert!(target.starts_with("#/components/"), "{target}");
                        assert!(
                            document.pointer(&target[1..]).is_some(),
                            "unresolved {target}"
                        );
                        *found += 1;
                    }
                    map.values().for_each(|v| walk(document, v, found));
                }
                Value::Array(items) => items.iter().for_each(|v| walk(document, v, found)),
                _ => {}
            }
        }
        let document = document();
        let mut found = 0;
        walk(&document, &document, &mut found);
        assert!(found > 100, "only {found} references");
    }

    #[test]
    fn every_path_template_parameter_is_declared() {
        let document = document();
        for (path, item) in document["paths"].as_object().unwrap() {
            let declared = |level: &Value| -> Vec<String> {
                level["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| resolve(&document, p))
                    .filter(|p| p["in"] == "path")
                    .inspect(|p| assert_eq!(p["required"], true, "{path}"))
                    .map(|p| p["name"].as_str().unwrap().to_owned())
                    .collect()
            };
            let shared = declared(item);
            let template: BTreeSet<String> = template_parameters(path).map(str::to_owned).collect();
            for (method, operation) in item.as_object().unwrap() {
                if !METHODS.contains(&method.as_str()) {
                    continue;
                }
                let all: BTreeSet<String> =
                    shared.iter().cloned().chain(declared(operation)).collect();
                assert_eq!(all, template, "{method} {path}");
            }
            for name in &template {
                let schema = resolve(
                    &document,
                    &document["components"]["parameters"][name]["schema"],
                );
                assert!(schema["pattern"].is_string(), "{{{name}}} has no pattern");
            }
        }
    }

    #[test]
    fn the_shared_shapes_are_components() {
        let document = document();
        let schemas = document["components"]["schemas"].as_object().unwrap();
        for name in [
            "Tenant",
            "App",
            "SecretMeta",
            "Token",
            "MintedToken",
            "Deploy",
            "Injection",
            "Warning",
            "AuditEvent",
            "AuditPage",
            "Effective",
            "DryRun",
            "Keyring",
            "Ready",
            "Problem",
        ] {
            assert!(schemas.contains_key(name), "{name}");
        }
        assert_eq!(document["openapi"], "3.1.0");
        assert_eq!(
            document["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
    }

    #[test]
    fn limits_follow_the_parsers() {
        let document = document();
        let schemas = &document["components"]["schemas"];
        assert_eq!(
            schemas["Provider"]["pattern"],
            "^[a-z0-9][a-z0-9._-]{0,62}$"
        );
        assert_eq!(
            schemas["EnvKey"]["pattern"],
            "^[A-Za-z_][A-Za-z0-9_]{0,252}$"
        );
        assert_eq!(schemas["ResourceId"]["maxLength"], 42);
        assert_eq!(
            schemas["ValueRequest"]["properties"]["value"]["maxLength"],
            65536
        );
        let deploy = &schemas["DeployRequest"]["properties"];
        assert_eq!(deploy["replicas"]["maximum"], 10_000);
        assert_eq!(deploy["port"]["minimum"], 1);
        let metrics = &document["paths"]["/metrics"]["get"]["responses"]["200"]["content"];
        assert!(metrics["text/plain"].is_object());
    }
}
