//! The OpenAPI 3.1 document of every route, served at `/v1/openapi.json`.
//!
//! What follows from a route's shape comes from [`ROUTES`]: paths, methods,
//! summaries, path parameters, security, and the errors every route of that
//! shape can answer (401 behind a token, 413/415 with a body, 400 for a
//! malformed path id, …). What only one route answers — its success bodies,
//! query parameters, request body and own error codes — is in `answers`,
//! an exhaustive match on [`RouteId`]: a new route does not compile until it
//! is described here. Limits and patterns come from the constants the
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
use super::handlers::{MAX_BULK_SECRETS, MAX_IDEMPOTENCY_KEY_LEN};
use super::routes::{Access, Body, Query, ROUTES, Route, RouteId};
use crate::deploy::{MAX_IMAGE_REF_LEN, MAX_REPLICAS};
use crate::model::{MAX_ID_LEN, MAX_KEY_ID_LEN, MAX_KEY_LEN, MAX_PROVIDER_LEN, MAX_VALUE_LEN};

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

/// `components.schemas`: `$ref` target of a shared shape.
fn reference(component: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{component}") })
}

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
        let schema = answers.body.unwrap_or_else(|| reference("EmptyRequest"));
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
    (422, "effective_set_too_large"),
    (500, "internal"),
    (503, "master_key_unavailable"),
];

/// Errors of both verify routes.
const SECRET_VERIFY_PROBLEMS: &[(u16, &str)] = &[
    (400, "invalid_value"),
    (404, "secret_not_found"),
    (429, "rate_limited"),
    (500, "internal"),
    (503, "master_key_unavailable"),
];

fn answers(id: RouteId) -> Answers {
    use RouteId as R;
    match id {
        R::Healthz => Answers::ok(record([("status", json!({ "const": "ok" }))])),
        R::Readyz => Answers::ok(reference("Ready")).and(
            503,
            json_response(
                "not ready: the database is unavailable, writes fail (storage degraded) or the cluster target is unreachable",
                reference("Ready"),
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
        R::ListTenants => Answers::ok(list_of("tenants", "Tenant")),
        R::PutTenant => Answers::put("Tenant"),
        R::GetTenant => Answers::ok(reference("Tenant")),
        R::DeleteTenant => {
            Answers::deleted().problems(&[(404, "tenant_not_found"), (409, "tenant_has_apps")])
        }
        R::MintToken => Answers::new(
            201,
            json_response(
                "minted; the token appears only in this answer",
                reference("MintedToken"),
            ),
        )
        .problems(&[(404, "tenant_not_found"), (500, "internal")]),
        R::ListTokens => Answers::ok(list_of("tokens", "Token")),
        R::RevokeToken => Answers::deleted().problems(&[(404, "token_not_found")]),
        R::ListApps => Answers::ok(list_of("apps", "App"))
            .problems(&[(400, "invalid_tenant_id"), (404, "tenant_not_found")]),
        R::PutApp => Answers::put("App").body("AppRequest").problems(&[
            (400, "invalid_tenant_id"),
            (400, "invalid_key"),
            (404, "tenant_not_found"),
            (409, "app_tenant_fixed"),
        ]),
        R::GetApp => Answers::ok(reference("App")),
        R::DeleteApp => Answers::deleted()
            .and(
                200,
                json_response(
                    "deleted, but objects of the app (which may hold secret values) could not be \
                     removed from the cluster yet: the warning `cleanup_pending` says why; exsec \
                     retries until they are gone",
                    reference("AppDeleted"),
                ),
            )
            .problems(&[(409, "deploy_in_progress")]),
        R::ListTenantSecrets | R::ListAppSecrets => Answers::ok(list_of("secrets", "SecretMeta")),
        R::PutTenantSecrets | R::PutAppSecrets => bulk_answers(),
        R::PutTenantSecret | R::PutAppSecret => Answers::put("SecretMeta")
            .body("ValueRequest")
            .problems(SECRET_WRITE_PROBLEMS),
        R::DeleteTenantSecret | R::DeleteAppSecret => {
            Answers::deleted().problems(&[(404, "secret_not_found")])
        }
        R::VerifyTenantSecret | R::VerifyAppSecret => Answers::ok(reference("VerifyResult"))
            .body("ValueRequest")
            .problems(SECRET_VERIFY_PROBLEMS),
        R::Effective => Answers::ok(reference("Effective")),
        R::Deploy => deploy_answers(),
        R::ListDeploys => Answers::ok(list_of("deploys", "Deploy"))
            .problems(&[(400, "invalid_query")]),
        R::GetDeploy => {
            Answers::ok(reference("DeployDetail")).problems(&[(404, "deploy_not_found")])
        }
        R::AppCluster => Answers::ok(reference("ClusterApp"))
            .problems(&[(502, "cluster_unreachable"), (504, "cluster_timeout")]),
        R::ListAuditEvents => Answers::ok(reference("AuditPage"))
            .problems(&[
                (400, "invalid_query"),
                (400, "invalid_tenant_id"),
                (400, "invalid_app_id"),
                (404, "tenant_not_found"),
            ]),
        R::Keys => Answers::ok(reference("Keyring")),
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
    let mut answers = Answers::ok(reference("BulkSecretsResult"))
        .body("BulkSecretsRequest")
        .problems(&[
            (400, "invalid_provider"),
            (400, "invalid_key"),
            (400, "invalid_value"),
            (409, "env_name_taken"),
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
            reference("Deploy"),
        ),
    )
    .and(
        200,
        json_response(
            "`dry_run`: what a deploy would change; nothing applied, recorded or audited",
            reference("DryRun"),
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
    .body("DeployRequest")
    .problems(&[
        (400, "invalid_query"),
        (400, "invalid_idempotency_key"),
        (400, "invalid_image_ref"),
        (400, "invalid_replicas"),
        (400, "invalid_port"),
        (400, "invalid_tenant_id"),
        (409, "deploy_in_progress"),
        (422, "app_id_mismatch"),
        (422, "tenant_mismatch"),
        (422, "idempotency_key_reused"),
        (502, "deployment_apply_failed"),
        (503, "deploy_record_pending"),
    ]);
    answers.extended_problems = &[(502, "DeployProblem"), (503, "DeployPendingProblem")];
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
        Query::EventType => (
            "only events of this type, e.g. `external_secret.injected`",
            json!({ "type": "string" }),
        ),
        Query::TenantFilter => (
            "only this tenant's; a tenant token may name only its own tenant (another answers 404)",
            reference("ResourceId"),
        ),
        Query::AppFilter => ("only events of this app", reference("ResourceId")),
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
/// (or the id a new deploy or token answers with) supplies. A client — or
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
        _ => return (string(), "a path segment"),
    };
    (reference(component), description)
}

// ---------------------------------------------------------------------------
// Schemas

fn schemas() -> Map<String, Value> {
    [
        ("ResourceId", resource_id()),
        ("Provider", provider()),
        ("EnvKey", env_key()),
        ("KeyId", key_id()),
        ("TokenId", pattern("^[0-9a-f]{12}$")),
        ("DeployId", pattern("^dep_[0-9]{12}$")),
        ("Hash", pattern("^[0-9a-f]{64}$")),
        (
            "Timestamp",
            json!({ "type": "string", "format": "date-time" }),
        ),
        ("Warning", warning()),
        ("Problem", problem()),
        ("DeployProblem", deploy_problem()),
        ("DeployPendingProblem", deploy_pending_problem()),
        ("EmptyRequest", empty_request()),
        ("AppRequest", app_request()),
        ("ValueRequest", value_request()),
        ("BulkSecretsRequest", bulk_secrets_request()),
        ("BulkSecretsResult", list_of("secrets", "SecretOutcome")),
        ("SecretOutcome", secret_outcome()),
        ("ItemProblem", item_problem()),
        ("DeployRequest", deploy_request()),
        ("Tenant", tenant()),
        ("App", app()),
        ("SecretMeta", secret_meta()),
        ("VerifyResult", record([("match", boolean())])),
        ("Token", token()),
        ("MintedToken", minted_token()),
        ("Injection", injection()),
        ("Deploy", deploy()),
        ("DeployDetail", deploy_detail()),
        ("Rollout", rollout()),
        ("ClusterApp", cluster_app()),
        ("Cleanup", cleanup()),
        ("AppDeleted", app_deleted()),
        ("DryRun", dry_run()),
        ("DryRunInjection", dry_run_injection()),
        ("Effective", effective()),
        ("EffectiveEntry", effective_entry()),
        ("AuditEvent", audit_event()),
        ("AuditPage", audit_page()),
        ("Keyring", keyring()),
        ("KeyStatus", key_status()),
        ("Ready", ready()),
    ]
    .into_iter()
    .map(|(name, schema)| (name.to_owned(), schema))
    .collect()
}

/// A closed object whose members are all present.
fn record<const N: usize>(members: [(&str, Value); N]) -> Value {
    let required: Vec<&str> = members.iter().map(|(name, _)| *name).collect();
    closed_object(&required, members)
}

/// An object without other members than `members`, of which `required`
/// must be present.
fn closed_object<const N: usize>(required: &[&str], members: [(&str, Value); N]) -> Value {
    let properties: Map<String, Value> = members
        .into_iter()
        .map(|(name, schema)| (name.to_owned(), schema))
        .collect();
    json!({
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": false,
    })
}

/// `{"<member>": [<component>…]}`.
fn list_of(member: &str, component: &str) -> Value {
    record([(member, array(reference(component)))])
}

fn array(items: Value) -> Value {
    json!({ "type": "array", "items": items })
}

fn string() -> Value {
    json!({ "type": "string" })
}

fn nullable_string() -> Value {
    json!({ "type": ["string", "null"] })
}

fn boolean() -> Value {
    json!({ "type": "boolean" })
}

fn count() -> Value {
    json!({ "type": "integer", "minimum": 0 })
}

fn pattern(regex: &str) -> Value {
    json!({ "type": "string", "pattern": regex })
}

/// One of `values`.
fn one_of(values: &[&str]) -> Value {
    json!({ "type": "string", "enum": values })
}

/// `schema` with a description.
fn described(mut schema: Value, description: &str) -> Value {
    schema["description"] = json!(description);
    schema
}

fn warnings() -> Value {
    array(reference("Warning"))
}

fn names() -> Value {
    array(reference("EnvKey"))
}

/// A tenant or app id: a DNS-1123 label.
fn resource_id() -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_ID_LEN,
        "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
    })
}

fn provider() -> Value {
    pattern(&format!(
        "^[a-z0-9][a-z0-9._-]{{0,{}}}$",
        MAX_PROVIDER_LEN - 1
    ))
}

/// An environment variable name (a Kubernetes Secret data key).
fn env_key() -> Value {
    pattern(&format!("^[A-Za-z_][A-Za-z0-9_]{{0,{}}}$", MAX_KEY_LEN - 1))
}

/// A master key id: a key file's stem, never a dotfile's.
fn key_id() -> Value {
    pattern(&format!(
        "^[A-Za-z0-9_-][A-Za-z0-9._-]{{0,{}}}$",
        MAX_KEY_ID_LEN - 1
    ))
}

fn warning() -> Value {
    record([("code", string()), ("message", string())])
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

/// The 502 of a deploy whose Deployment could not be applied: recorded as
/// failed, and the caller still learns what injection did.
fn deploy_problem() -> Value {
    json!({
        "allOf": [reference("Problem")],
        "required": ["deploy_id", "app_id", "tenant_id", "warnings", "external_secrets"],
        "properties": {
            "deploy_id": reference("DeployId"),
            "app_id": reference("ResourceId"),
            "tenant_id": reference("ResourceId"),
            "warnings": warnings(),
            "external_secrets": reference("Injection"),
        },
    })
}

/// A 503 of the deploy route. `deploy_record_pending`: the deploy ran
/// (the cluster holds it) but its record waits for storage to heal; it
/// names the deploy like [`deploy_problem`], plus how it ended.
fn deploy_pending_problem() -> Value {
    let mut required = deploy_problem()["required"].clone();
    if let Value::Array(names) = &mut required {
        names.push(json!("deploy_status"));
    }
    let mut properties = deploy_problem()["properties"].clone();
    properties["deploy_status"] = one_of(&["succeeded", "failed"]);
    json!({
        "allOf": [reference("Problem")],
        "properties": properties,
        "if": { "properties": { "code": { "const": "deploy_record_pending" } } },
        "then": { "required": required },
    })
}

fn empty_request() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "description": "no members yet; the body may be omitted",
    })
}

fn app_request() -> Value {
    closed_object(
        &["tenant_id"],
        [
            ("tenant_id", reference("ResourceId")),
            (
                "required_env",
                json!({
                    "type": "array",
                    "items": reference("EnvKey"),
                    "default": [],
                    "description": "env var names the app needs; a deploy lacking one warns `missing_required_env`",
                }),
            ),
        ],
    )
}

fn value_request() -> Value {
    closed_object(&["value"], [("value", secret_value())])
}

fn secret_value() -> Value {
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_VALUE_LEN,
        "pattern": "^[^\\u0000]+$",
        "description": "UTF-8, at most 64 KiB, no NUL",
    })
}

fn bulk_secrets_request() -> Value {
    closed_object(
        &["secrets"],
        [
            (
                "secrets",
                json!({
                    "type": "array",
                    "maxItems": MAX_BULK_SECRETS,
                    "items": record([
                        ("provider", reference("Provider")),
                        ("key", reference("EnvKey")),
                        ("value", secret_value()),
                    ]),
                    "description": "every secret to set; each env var name at most once (else 422 `duplicate_key`)",
                }),
            ),
            (
                "replace",
                json!({
                    "type": "boolean",
                    "default": false,
                    "description": "also delete the scope's secrets not listed",
                }),
            ),
        ],
    )
}

/// What a bulk write did to one key; never a value.
fn secret_outcome() -> Value {
    record([
        ("provider", reference("Provider")),
        ("key", reference("EnvKey")),
        ("outcome", one_of(&["created", "updated", "deleted"])),
        (
            "version",
            json!({ "type": ["integer", "null"], "minimum": 1, "description": "`null` once deleted" }),
        ),
    ])
}

/// A problem of the bulk write that names the refused item.
fn item_problem() -> Value {
    json!({
        "allOf": [reference("Problem")],
        "properties": {
            "index": { "type": "integer", "minimum": 0, "description": "the refused item of `secrets`" },
            "field": one_of(&["provider", "key", "value"]),
        },
    })
}

fn deploy_request() -> Value {
    // Empty, null or missing: taken from the app (the path).
    let optional_id = |description: &str| {
        json!({
            "type": ["string", "null"],
            "maxLength": MAX_ID_LEN,
            "pattern": "^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$",
            "description": description,
        })
    };
    closed_object(
        &["image_ref"],
        [
            (
                "tenant_id",
                optional_id(
                    "must be the app's tenant (else 422 `tenant_mismatch`); empty or missing is inferred with the warning `tenant_id_inferred`",
                ),
            ),
            (
                "app_id",
                optional_id("must equal the path's app (else 422 `app_id_mismatch`)"),
            ),
            (
                "image_ref",
                json!({
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_IMAGE_REF_LEN,
                    "pattern": "^[^\\s\\u0000-\\u001f\\u007f-\\u009f]+$",
                    "description": "the image to roll out, without spaces or control characters",
                }),
            ),
            (
                "replicas",
                json!({
                    "type": ["integer", "null"],
                    "minimum": 0,
                    "maximum": MAX_REPLICAS,
                    "description": "omitted leaves the count to an autoscaler",
                }),
            ),
            (
                "port",
                json!({ "type": ["integer", "null"], "minimum": 1, "maximum": 65535 }),
            ),
        ],
    )
}

fn tenant() -> Value {
    record([
        ("tenant_id", reference("ResourceId")),
        ("created_at", reference("Timestamp")),
    ])
}

fn app() -> Value {
    record([
        ("app_id", reference("ResourceId")),
        ("tenant_id", reference("ResourceId")),
        ("required_env", names()),
        ("created_at", reference("Timestamp")),
        ("updated_at", reference("Timestamp")),
    ])
}

/// Never a value.
fn secret_meta() -> Value {
    record([
        ("provider", reference("Provider")),
        ("key", reference("EnvKey")),
        ("scope", one_of(&["tenant", "app"])),
        ("created_at", reference("Timestamp")),
        ("updated_at", reference("Timestamp")),
        ("version", json!({ "type": "integer", "minimum": 1 })),
    ])
}

fn token() -> Value {
    record([
        ("token_id", reference("TokenId")),
        ("tenant_id", reference("ResourceId")),
        ("created_at", reference("Timestamp")),
    ])
}

fn minted_token() -> Value {
    record([
        ("token", pattern("^exs_[0-9a-f]{12}_[A-Za-z0-9_-]+$")),
        ("token_id", reference("TokenId")),
        ("tenant_id", reference("ResourceId")),
        ("created_at", reference("Timestamp")),
    ])
}

fn injection_status() -> Value {
    one_of(&["injected", "skipped", "failed"])
}

fn injection_reason() -> Value {
    json!({
        "type": ["string", "null"],
        "enum": [
            "master_key_unavailable",
            "undecryptable_values",
            "no_secrets",
            "secret_apply_failed",
            "interrupted",
            null,
        ],
        "description": "why skipped or failed; null when injected",
    })
}

fn secret_name() -> Value {
    pattern("^app-[a-z0-9]([-a-z0-9]*[a-z0-9])?-external-secrets$")
}

fn injection() -> Value {
    record([
        ("status", injection_status()),
        ("reason", injection_reason()),
        ("secret_name", secret_name()),
        ("key_count", count()),
        ("keys", names()),
        ("undecryptable", names()),
        ("warnings", warnings()),
    ])
}

fn deploy() -> Value {
    record([
        ("deploy_id", reference("DeployId")),
        ("app_id", reference("ResourceId")),
        ("tenant_id", reference("ResourceId")),
        ("image_ref", string()),
        ("replicas", json!({ "type": ["integer", "null"] })),
        ("port", json!({ "type": ["integer", "null"] })),
        ("status", one_of(&["succeeded", "failed"])),
        ("error", nullable_string()),
        ("created_at", reference("Timestamp")),
        ("warnings", warnings()),
        ("external_secrets", reference("Injection")),
    ])
}

/// One deploy read back: the record plus the rollout the cluster reports.
fn deploy_detail() -> Value {
    let mut schema = deploy();
    schema["properties"]["rollout"] = json!({
        "description": "rollout of this deploy; `superseded` when a newer deploy runs, `absent` without a Deployment, `unknown` when the cluster cannot tell",
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": one_of(&["complete", "progressing", "unknown", "superseded", "absent"]),
            "replicas": { "type": ["integer", "null"] },
            "updated_replicas": { "type": ["integer", "null"] },
            "ready_replicas": { "type": ["integer", "null"] },
            "available_replicas": { "type": ["integer", "null"] },
            "error": string(),
        },
        "additionalProperties": false,
    });
    if let Some(required) = schema["required"].as_array_mut() {
        required.push(json!("rollout"));
    }
    schema
}

fn rollout() -> Value {
    record([
        ("status", one_of(&["complete", "progressing", "unknown"])),
        ("replicas", json!({ "type": ["integer", "null"] })),
        ("updated_replicas", json!({ "type": ["integer", "null"] })),
        ("ready_replicas", json!({ "type": ["integer", "null"] })),
        ("available_replicas", json!({ "type": ["integer", "null"] })),
    ])
}

/// `GET /v1/apps/{app_id}/cluster`: key names, never values.
fn cluster_app() -> Value {
    record([
        ("app_id", reference("ResourceId")),
        ("tenant_id", reference("ResourceId")),
        ("target", one_of(&["manifests", "kubernetes"])),
        (
            "cleanup_pending",
            json!({ "oneOf": [{ "type": "null" }, reference("Cleanup")] }),
        ),
        ("namespace", string()),
        (
            "secret",
            record([
                ("name", secret_name()),
                ("exists", boolean()),
                ("keys", array(reference("EnvKey"))),
            ]),
        ),
        (
            "deployment",
            json!({
                "oneOf": [
                    { "type": "null" },
                    record([
                        ("image", nullable_string()),
                        (
                            "env_from",
                            array(record([("secret_name", string()), ("optional", boolean())])),
                        ),
                        ("deploy_id", nullable_string()),
                        ("rollout", reference("Rollout")),
                    ]),
                ]
            }),
        ),
    ])
}

/// Objects of an app holding plaintext that wait for removal.
fn cleanup() -> Value {
    record([
        ("kind", one_of(&["app_objects", "stale_secret"])),
        ("since", reference("Timestamp")),
        ("attempts", count()),
        ("last_attempt", reference("Timestamp")),
        ("last_error", string()),
    ])
}

/// `DELETE /v1/apps/{app_id}` with objects left to remove.
fn app_deleted() -> Value {
    record([
        ("app_id", reference("ResourceId")),
        ("deleted", json!({ "const": true })),
        ("warnings", warnings()),
    ])
}

fn dry_run() -> Value {
    record([
        ("app_id", reference("ResourceId")),
        ("tenant_id", reference("ResourceId")),
        ("dry_run", json!({ "const": true })),
        ("external_secrets", reference("DryRunInjection")),
        ("warnings", warnings()),
    ])
}

/// Names only, compared with what the cluster holds.
fn dry_run_injection() -> Value {
    record([
        ("status", injection_status()),
        ("reason", injection_reason()),
        ("secret_name", secret_name()),
        ("added", array(string())),
        ("removed", array(string())),
        ("changed", array(string())),
        ("unchanged", array(string())),
    ])
}

fn effective() -> Value {
    record([
        ("app_id", reference("ResourceId")),
        ("tenant_id", reference("ResourceId")),
        ("keys", array(reference("EffectiveEntry"))),
        ("removed_since_deploy", names()),
        (
            "last_synced_deploy_id",
            json!({ "type": ["string", "null"], "pattern": "^dep_[0-9]{12}$" }),
        ),
        ("warnings", warnings()),
    ])
}

fn effective_entry() -> Value {
    record([
        ("key", reference("EnvKey")),
        ("provider", reference("Provider")),
        ("source", one_of(&["app", "tenant"])),
        ("overrides_tenant", boolean()),
        ("redeploy_needed", boolean()),
        ("version", json!({ "type": "integer", "minimum": 1 })),
        ("updated_at", reference("Timestamp")),
    ])
}

fn audit_event() -> Value {
    record([
        ("seq", json!({ "type": "integer", "minimum": 1 })),
        ("time", reference("Timestamp")),
        ("type", string()),
        ("actor", string()),
        ("tenant_id", nullable_string()),
        ("app_id", nullable_string()),
        (
            "data",
            json!({ "type": "object", "description": "names, counts and reasons; never a value" }),
        ),
        ("prev_hash", reference("Hash")),
        ("hash", reference("Hash")),
    ])
}

fn audit_page() -> Value {
    record([
        ("events", array(reference("AuditEvent"))),
        (
            "next_after",
            json!({ "type": ["integer", "null"], "minimum": 1, "description": "`after` of the next page; null at the end" }),
        ),
    ])
}

fn keyring() -> Value {
    record([
        ("active", nullable_string()),
        ("degraded", boolean()),
        ("keys", array(reference("KeyStatus"))),
        (
            "rotation",
            record([
                ("state", one_of(&["idle", "running", "blocked_missing_key"])),
                ("remaining", count()),
                (
                    "waiting_for",
                    json!({
                        "type": "object",
                        "propertyNames": reference("KeyId"),
                        "additionalProperties": count(),
                        "description": "per master key id that is not loaded, how many records wait for it (records that do not open under a loaded key are counted under that key); empty unless `state` is `blocked_missing_key`",
                    }),
                ),
            ]),
        ),
    ])
}

fn key_status() -> Value {
    record([
        ("id", reference("KeyId")),
        ("present", boolean()),
        ("records", count()),
        ("safe_to_remove", boolean()),
    ])
}

fn ready() -> Value {
    record([
        ("status", one_of(&["ready", "not_ready"])),
        (
            "degraded",
            described(
                boolean(),
                "serving, but no master key is loaded or the audit chain is broken",
            ),
        ),
        ("database", one_of(&["ok", "unavailable"])),
        (
            "storage",
            described(
                one_of(&["ok", "degraded"]),
                "`degraded` while writes fail (reads are still answered); heals by itself",
            ),
        ),
        (
            "storage_fault",
            json!({ "type": ["string", "null"], "enum": ["no_space", "io_error", null] }),
        ),
        (
            "keyring",
            record([
                ("active", nullable_string()),
                ("keys", count()),
                ("degraded", boolean()),
            ]),
        ),
        (
            "audit",
            record([
                (
                    "chain",
                    described(
                        one_of(&["verified", "verifying", "broken"]),
                        "what verifying the events appended since the last verified position found (at start and every audit.anchor_interval); `verifying` while a long backlog is checked after start",
                    ),
                ),
                ("error", nullable_string()),
            ]),
        ),
        (
            "cluster",
            record([
                ("target", one_of(&["kubernetes", "manifests"])),
                ("reachable", boolean()),
                ("error", nullable_string()),
            ]),
        ),
    ])
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
