//! The HTTP API (SPEC §4): one request's way through the server.
//!
//! Routing ([`routes`]) → authentication (bearer token) → authorization
//! (tenant tokens reach only their tenant and its apps; everything else is
//! 404) → body (≤ 1 MiB, JSON) → handler ([`handlers`]) → JSON answer or
//! problem+json ([`problem`]). Authentication and authorization are decided
//! before the body is read. Every request is counted ([`metrics`]) and
//! logged without values.

pub mod auth;
pub mod dto;
pub mod handlers;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod routes;
pub mod server;
pub mod stream;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{HeaderMap, Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::crypto::SharedKeyring;
use crate::deploy::Deployer;
use crate::model::{AppId, TenantId};
use crate::store::Store;
use crate::store::records::AppRecord;
use auth::{AdminToken, Principal};
use problem::ApiError;
use routes::{Access, Found, Params, Route};

/// Largest request body (SPEC §4); larger answers 413 `body_too_large`.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Everything a request may use; one per server, shared.
pub struct ApiState {
    /// The store.
    pub store: Arc<Store>,
    /// The current keyring.
    pub keyring: Arc<SharedKeyring>,
    /// The re-sealing job.
    pub rotation: Arc<crate::rotation::Rotation>,
    /// The deploy pipeline (and through it the cluster target); shared
    /// with the task retrying removals.
    pub deployer: Arc<Deployer>,
    /// Automatic redeploys: woken after every secret write.
    pub redeploys: Arc<crate::redeploy::Redeployer>,
    /// The admin token.
    pub admin: AdminToken,
    /// Counters for `/metrics`.
    pub metrics: metrics::Metrics,
    /// Per-token limit on `…/verify`.
    pub verify_limiter: metrics::RateLimiter,
    /// The key directory (for `/v1/keys`).
    pub keys_dir: PathBuf,
    /// Longest time one request may take before 503 `request_timeout`.
    pub request_timeout: Duration,
    /// The cap on connections served at once (`server.max_connections`).
    pub connections: Arc<server::ConnectionLimit>,
    /// What verifying the audit chain found (`/readyz`).
    pub audit_chain: Arc<crate::audit_maintenance::ChainStatus>,
}

/// One authorized request, as a handler sees it.
pub struct Call {
    /// Shared state.
    pub state: Arc<ApiState>,
    /// The route.
    pub route: &'static Route,
    /// Who calls (`None` on public routes).
    pub principal: Option<Principal>,
    /// Path parameters.
    pub params: Params,
    /// Raw query string.
    pub query: Option<String>,
    /// Request headers.
    pub headers: HeaderMap,
    /// Request body (empty when the route takes none).
    pub body: Bytes,
    /// The app of `{app_id}`, loaded during authorization.
    pub app: Option<(AppId, AppRecord)>,
}

impl Call {
    /// The caller; handlers of non-public routes always have one.
    pub fn principal(&self) -> Result<&Principal, ApiError> {
        self.principal
            .as_ref()
            .ok_or_else(ApiError::unauthenticated)
    }

    /// The audit actor of the caller.
    pub fn actor(&self) -> String {
        self.principal
            .as_ref()
            .map_or_else(|| "anonymous".to_owned(), Principal::actor)
    }

    /// The app of `{app_id}` (authorization loaded it).
    pub fn app(&self) -> Result<&(AppId, AppRecord), ApiError> {
        self.app
            .as_ref()
            .ok_or_else(|| ApiError::not_found("app_not_found", "app"))
    }

    /// `{tenant_id}` parsed.
    pub fn tenant_param(&self) -> Result<TenantId, ApiError> {
        Ok(TenantId::parse(self.params.get("tenant_id"))?)
    }

    /// The body parsed as `T`; an empty body counts as `{}` when the route
    /// takes an optional body.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        let Some(first) = self.body.iter().find(|b| !b.is_ascii_whitespace()) else {
            if self.route.body == routes::Body::Optional {
                return parse_json(b"{}");
            }
            return Err(ApiError::bad_request(
                "missing_body",
                "this request needs a JSON body",
            ));
        };
        // serde also reads a struct from a JSON array, by field position;
        // every body is an object, so an array is the wrong type.
        if *first == b'[' {
            parse_json::<serde::de::IgnoredAny>(&self.body)?;
            return Err(ApiError::bad_request(
                "wrong_type",
                "the body must be a JSON object",
            ));
        }
        parse_json(&self.body)
    }

    /// A boolean query parameter: absent is `false`; only `true` and
    /// `false` are accepted (`1`, `yes` or an empty value answer 400, so a
    /// typo never flips a flag).
    pub fn query_flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.query_param(name).as_deref() {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err(ApiError::bad_request(
                "invalid_query",
                format!("{name} must be true or false"),
            )),
        }
    }

    /// `limit`: 1 to `max`, `default` when absent (else 400 `invalid_query`).
    pub fn query_limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        let Some(raw) = self.query_param("limit") else {
            return Ok(default);
        };
        raw.parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request("invalid_query", format!("limit must be 1 to {max}"))
            })
    }

    /// One query parameter (percent-decoded).
    pub fn query_param(&self, name: &str) -> Option<String> {
        query_pairs(self.query.as_deref()?)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// The body of every answer: bytes in memory, or a stream fed by a
/// blocking task ([`stream`]).
pub type ResponseBody = Either<Full<Bytes>, stream::ChannelBody>;

/// An answer: status plus JSON (or another content type).
pub struct Reply {
    status: StatusCode,
    content_type: &'static str,
    body: ResponseBody,
}

impl Reply {
    /// JSON with a status.
    pub fn json(status: StatusCode, value: &impl serde::Serialize) -> Reply {
        let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
        Reply {
            status,
            content_type: "application/json",
            body: Either::Left(Full::new(Bytes::from(body))),
        }
    }

    /// 200 with JSON.
    pub fn ok(value: &impl serde::Serialize) -> Reply {
        Self::json(StatusCode::OK, value)
    }

    /// JSON with the members of every object in sorted order. The answers
    /// that were built as `serde_json::Value` before they had a DTO (lists,
    /// readiness, keys, the cluster view, one deploy with its rollout) have
    /// always had this order; keeping it keeps them byte for byte the same.
    pub fn json_sorted(status: StatusCode, value: &impl serde::Serialize) -> Reply {
        Self::json(status, &to_value(value))
    }

    /// 200 with JSON in sorted order ([`Reply::json_sorted`]).
    pub fn ok_sorted(value: &impl serde::Serialize) -> Reply {
        Self::json_sorted(StatusCode::OK, value)
    }

    /// 204.
    pub fn no_content() -> Reply {
        Reply {
            status: StatusCode::NO_CONTENT,
            content_type: "application/json",
            body: Either::Left(Full::new(Bytes::new())),
        }
    }

    /// Any content type.
    pub fn raw(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
        Reply {
            status,
            content_type,
            body: Either::Left(Full::new(body.into())),
        }
    }

    /// A body streamed from a blocking task.
    pub fn stream(
        status: StatusCode,
        content_type: &'static str,
        body: stream::ChannelBody,
    ) -> Reply {
        Reply {
            status,
            content_type,
            body: Either::Right(body),
        }
    }
}

/// Longest method name exsec answers 405 to; longer ones are malformed
/// (400). Standard methods are at most 7 bytes.
const MAX_METHOD_BYTES: usize = 16;

/// Longest part of a request path echoed in an answer (a path may be tens
/// of kilobytes).
const MAX_ECHOED_PATH: usize = 128;

/// A request body exsec can read: hyper's `Incoming` on a connection, or any
/// in-memory body (`Full<Bytes>`) for tests and fuzzing that call
/// [`handle`] without a socket.
pub trait RequestBody:
    hyper::body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static
{
}

impl<B> RequestBody for B where
    B: hyper::body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static
{
}

/// The error type `http-body` combinators box errors into.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Serves one request: never fails, every error becomes problem+json.
/// Generic over the body so that it runs the same over a socket and
/// in-process.
pub async fn handle<B: RequestBody>(
    state: Arc<ApiState>,
    request: Request<B>,
) -> Response<ResponseBody> {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let method_label = metrics::method_label(&method);
    let path = request.uri().path().to_owned();
    let found = if method_label == "other" {
        Err(unsupported_method(&method))
    } else {
        Ok(routes::find(&method, &path))
    };
    let (route_label, response) = match found {
        Err(error) => ("(unsupported method)", problem_response(&error)),
        Ok(found) => match found {
            Found::Route(route, params) => {
                let timeout = state.request_timeout;
                let answer =
                    tokio::time::timeout(timeout, respond(state.clone(), route, params, request))
                        .await;
                let response = match answer {
                    Ok(Ok(reply)) => reply_response(reply),
                    Ok(Err(error)) => problem_response(&error),
                    Err(_) => problem_response(&ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "request_timeout",
                        format!("the request did not finish within {}s", timeout.as_secs()),
                    )),
                };
                (route.path, response)
            }
            Found::MethodNotAllowed(allowed) => {
                let names: Vec<&str> = allowed.iter().map(hyper::Method::as_str).collect();
                let mut error = ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    format!("{method} is not allowed here; use {}", names.join(", ")),
                );
                error.headers.push(("allow", names.join(", ")));
                ("(method not allowed)", problem_response(&error))
            }
            Found::NotFound => (
                "(no route)",
                problem_response(&ApiError::not_found(
                    "route_not_found",
                    format!("route {}", shorten(&path, MAX_ECHOED_PATH)),
                )),
            ),
        },
    };
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    state
        .metrics
        .request(route_label, method_label, status, elapsed);
    tracing::info!(
        method = method_label,
        route = route_label,
        status,
        ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    response
}

/// The answer to a method outside the standard set, decided before routing:
/// 400 for a method too long to be one, else 405. Never echoes the method.
fn unsupported_method(method: &hyper::Method) -> ApiError {
    if method.as_str().len() > MAX_METHOD_BYTES {
        return ApiError::bad_request(
            "invalid_method",
            format!("the request method is longer than {MAX_METHOD_BYTES} bytes"),
        );
    }
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "exsec answers GET, PUT, POST and DELETE only",
    )
}

/// `text` cut to at most `max` bytes (on a character boundary), with `…`
/// when cut.
fn shorten(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let end = (0..=max)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}…", &text[..end]).into()
}

async fn respond<B: RequestBody>(
    state: Arc<ApiState>,
    route: &'static Route,
    params: Params,
    request: Request<B>,
) -> Result<Reply, ApiError> {
    let (parts, body) = request.into_parts();
    let principal = match route.access {
        Access::Public => None,
        _ => Some(authenticate(&state, &parts.headers).await?),
    };
    let app = authorize(&state, route, &params, principal.as_ref()).await?;
    check_query(route, parts.uri.query())?;
    let body = match route.body {
        routes::Body::None => Bytes::new(),
        _ => read_body(body, &parts.headers).await?,
    };
    let call = Call {
        state,
        route,
        principal,
        params,
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
        app,
    };
    handlers::dispatch(call).await
}

/// Refuses query parameters the route does not declare (`Route::query`,
/// which the OpenAPI document describes): a typo such as `limt=10` would otherwise be ignored without a
/// word. The name is echoed only when it looks like a parameter name, so a
/// value pasted into a URL never comes back.
fn check_query(route: &Route, query: Option<&str>) -> Result<(), ApiError> {
    let allowed: Vec<&str> = route.query_names().collect();
    let Some(unknown) = query
        .into_iter()
        .flat_map(query_pairs)
        .map(|(name, _)| name)
        .find(|name| !allowed.contains(&name.as_str()))
    else {
        return Ok(());
    };
    let shown = if !unknown.is_empty()
        && unknown.len() <= 32
        && unknown.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    {
        format!("`{unknown}`")
    } else {
        "a parameter".to_owned()
    };
    let takes = if allowed.is_empty() {
        "this route takes none".to_owned()
    } else {
        format!("this route takes: {}", allowed.join(", "))
    };
    Err(ApiError::bad_request(
        "invalid_query",
        format!("unknown query parameter {shown}; {takes}"),
    ))
}

/// Bearer token → principal, or 401. Two `Authorization` headers answer
/// 400: which one counts would be a guess, and a proxy that adds its own
/// must not silently win or lose.
async fn authenticate(state: &Arc<ApiState>, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let mut presented = headers.get_all(hyper::header::AUTHORIZATION).iter();
    let first = presented.next();
    if presented.next().is_some() {
        return Err(ApiError::bad_request(
            "duplicate_authorization",
            "send exactly one `Authorization: Bearer <token>` header",
        ));
    }
    let Some(token) = first.and_then(|v| v.to_str().ok()).and_then(auth::bearer) else {
        return Err(ApiError::unauthenticated());
    };
    if state.admin.matches(token) {
        return Ok(Principal::Admin);
    }
    let Some(token_id) = auth::token_id_of(token) else {
        return Err(ApiError::unauthenticated());
    };
    let token_id = token_id.to_owned();
    let token = zeroize::Zeroizing::new(token.to_owned());
    let lookup = token_id.clone();
    let record = state
        .store
        .lookup(move |r| r.token(&lookup))
        .await
        .map_err(ApiError::from)?;
    match record {
        Some(record) if auth::token_matches(&record, &token) => Ok(Principal::Tenant {
            tenant_id: record.tenant_id,
            token_id,
        }),
        _ => Err(ApiError::unauthenticated()),
    }
}

/// Decides whether the principal may call the route on these parameters;
/// loads the app of `{app_id}` on the way. Everything refused is 404.
async fn authorize(
    state: &Arc<ApiState>,
    route: &'static Route,
    params: &Params,
    principal: Option<&Principal>,
) -> Result<Option<(AppId, AppRecord)>, ApiError> {
    let Some(principal) = principal else {
        return Ok(None);
    };
    match route.access {
        Access::Public | Access::Authenticated => return Ok(None),
        Access::Admin if *principal != Principal::Admin => {
            return Err(ApiError::not_found(
                "not_found",
                format!("route {}", route.path),
            ));
        }
        Access::Admin | Access::Tenant => {}
    }
    if params.has("tenant_id") {
        let tenant = TenantId::parse(params.get("tenant_id"))?;
        if !principal.may_act_for(&tenant) {
            return Err(ApiError::not_found(
                "tenant_not_found",
                format!("tenant {tenant}"),
            ));
        }
    }
    if !params.has("app_id") {
        return Ok(None);
    }
    let app_id = AppId::parse(params.get("app_id"))?;
    let lookup = app_id.clone();
    let record = state
        .store
        .lookup(move |r| r.app(&lookup))
        .await
        .map_err(ApiError::from)?;
    match record {
        Some(record) if principal.may_act_for(&record.tenant_id) => Ok(Some((app_id, record))),
        // An admin registering a new app: nothing to load.
        None if route.id == routes::RouteId::PutApp => Ok(None),
        _ => Err(ApiError::not_found(
            "app_not_found",
            format!("app {app_id}"),
        )),
    }
}

/// Reads a JSON body of at most [`MAX_BODY_BYTES`].
async fn read_body<B: RequestBody>(body: B, headers: &HeaderMap) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
        )
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    if let Some(content_type) = headers.get(CONTENT_TYPE) {
        let media = content_type
            .to_str()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        // curl's `-d` sends application/x-www-form-urlencoded; the body is
        // still parsed as JSON, so a quick `curl -d '{…}'` works.
        let json_like = media == "application/json"
            || media.ends_with("+json")
            || media == "application/x-www-form-urlencoded";
        if !json_like {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json",
            ));
        }
    }
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error)
            if error
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large())
        }
        Err(_) => Err(ApiError::bad_request(
            "body_unreadable",
            "the request body could not be read",
        )),
    }
}

/// Parses JSON into `T`, naming the problem without echoing input (a
/// misplaced secret must not come back in an error).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|error| {
        use serde_json::error::Category;
        match error.classify() {
            Category::Syntax | Category::Eof | Category::Io => ApiError::bad_request(
                "malformed_json",
                format!(
                    "the body is not valid JSON (line {}, column {})",
                    error.line(),
                    error.column()
                ),
            ),
            Category::Data => data_error(&error.to_string()),
        }
    })
}

/// Turns serde's data error into a code and a message without the value.
/// serde puts the input first and its own words last (`invalid type:
/// string "…", expected u16 at line 1 column 9`), and the input may itself
/// contain ", expected " or " at line ", so the message is cut from the end.
fn data_error(message: &str) -> ApiError {
    let message = message.rsplit_once(" at line ").map_or(message, |(m, _)| m);
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let field = rest.split(',').next().unwrap_or(rest);
        return ApiError::bad_request(
            "unknown_field",
            format!("unknown field {field} in the body"),
        );
    }
    if let Some(rest) = message.strip_prefix("duplicate field ") {
        return ApiError::bad_request(
            "duplicate_field",
            format!("field {rest} appears more than once in the body"),
        );
    }
    if let Some(rest) = message.strip_prefix("missing field ") {
        return ApiError::bad_request("missing_field", format!("missing field {rest} in the body"));
    }
    let expected = message
        .rsplit_once(", expected ")
        .map_or_else(String::new, |(_, e)| format!(": expected {e}"));
    ApiError::bad_request(
        "wrong_type",
        format!("a field of the body has the wrong type{expected}"),
    )
}

/// `a=b&c=d` → pairs, percent-decoded (`+` is a space).
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let hex = |b: u8| char::from(b).to_digit(16);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = match bytes[i] {
            b'%' if i + 2 < bytes.len() => hex(bytes[i + 1]).zip(hex(bytes[i + 2])),
            _ => None,
        };
        match (bytes[i], decoded) {
            (_, Some((high, low))) => {
                // Two hex digits are at most 255.
                out.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn reply_response(reply: Reply) -> Response<ResponseBody> {
    let mut response = Response::new(reply.body);
    *response.status_mut() = reply.status;
    if reply.status != StatusCode::NO_CONTENT {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(reply.content_type));
    }
    response
}

/// The problem+json answer of an error.
pub fn problem_response(error: &ApiError) -> Response<ResponseBody> {
    let body = serde_json::to_vec(&error.body()).unwrap_or_default();
    let mut response = Response::new(Either::Left(Full::new(Bytes::from(body))));
    *response.status_mut() = error.status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    for (name, value) in &error.headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(*name, value);
        }
    }
    response
}

/// A JSON value from anything serializable.
pub fn to_value(value: &impl serde::Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_errors_never_echo_values() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Body {
            port: Option<u16>,
            name: String,
        }
        let error = parse_json::<Body>(br#"{"port": "sk-secret-value", "name": "x"}"#).unwrap_err();
        assert_eq!(error.code, "wrong_type");
        assert!(!error.detail.contains("sk-secret"), "{}", error.detail);
        let error = parse_json::<Body>(br#"{"name": "x", "sk-secret": 1}"#).unwrap_err();
        assert_eq!(error.code, "unknown_field");
        let error = parse_json::<Body>(br#"{"name": "x", "name": "sk-secret"}"#).unwrap_err();
        assert_eq!(error.code, "duplicate_field");
        assert!(!error.detail.contains("sk-secret"), "{}", error.detail);
        let error = parse_json::<Body>(br#"{}"#).unwrap_err();
        assert_eq!(error.code, "missing_field");
        assert!(error.detail.contains("name"));
        let error = parse_json::<Body>(br#"{"name": "#).unwrap_err();
        assert_eq!(error.code, "malformed_json");
        // serde's message starts with the input; only its end is ours.
        for crafted in [
            br#"{"port": "x, expected sk-secret", "name": "x"}"#.as_slice(),
            br#"{"port": "x, expected sk-secret at line 1 column 1", "name": "x"}"#,
        ] {
            let error = parse_json::<Body>(crafted).unwrap_err();
            assert_eq!(error.code, "wrong_type");
            assert!(!error.detail.contains("sk-secret"), "{}", error.detail);
            assert!(error.detail.ends_with("expected u16"), "{}", error.detail);
        }
    }

    #[test]
    fn query_strings_are_decoded() {
        assert_eq!(
            query_pairs("a=1&b=x%2Fy&c=&d=a+b&e=%zz"),
            [
                ("a".into(), "1".into()),
                ("b".into(), "x/y".into()),
                ("c".into(), String::new()),
                ("d".into(), "a b".into()),
                ("e".into(), "%zz".into())
            ]
        );
    }
}
