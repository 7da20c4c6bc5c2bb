//! The Kubernetes API surface: one request in, one [`Answer`] out.
//!
//! Routing, content negotiation (JSON, YAML for apply bodies, `Table` for kubectl), the
//! choice between apply, merge patch, create, replace and delete, and the request options
//! (`fieldManager`, `force`, `dryRun`, selectors) are decided here; the object semantics
//! live in [`crate::store`]. Synchronous on purpose: faults and latency are applied by the
//! caller before this runs.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::Method;
use serde_json::{Value, json};

use crate::discovery;
use crate::kind::Kind;
use crate::query;
use crate::route::Route;
use crate::selector::Selector;
use crate::status::{ApiError, Cause};
use crate::store::{Store, Target, WriteOptions};
use crate::table;

/// The longest field manager name the real server accepts.
const MAX_FIELD_MANAGER_LENGTH: usize = 128;

/// One API request, as the handler read it.
#[derive(Debug)]
pub struct ApiRequest<'a> {
    /// The method.
    pub method: &'a Method,
    /// The path, without the query.
    pub path: &'a str,
    /// The raw query.
    pub query: &'a str,
    /// `Content-Type`.
    pub content_type: Option<&'a str>,
    /// `Accept`.
    pub accept: Option<&'a str>,
    /// `User-Agent`.
    pub user_agent: Option<&'a str>,
    /// The whole body.
    pub body: &'a [u8],
}

/// An answer: status code, JSON body, and an optional `Retry-After`.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The HTTP status.
    pub code: u16,
    /// The JSON body (shared with the store when it is a stored object).
    pub body: Arc<Value>,
    /// Seconds for `Retry-After`.
    pub retry_after_seconds: Option<u64>,
}

impl Answer {
    /// A 200 with `body`.
    pub fn ok(body: impl Into<Arc<Value>>) -> Answer {
        Answer {
            code: 200,
            body: body.into(),
            retry_after_seconds: None,
        }
    }
}

impl From<ApiError> for Answer {
    fn from(error: ApiError) -> Answer {
        Answer {
            code: error.code,
            body: Arc::new(error.to_json()),
            retry_after_seconds: error.retry_after_seconds,
        }
    }
}

/// Answers one API request against `store`; `address` is the server's own, for `/api`.
pub fn respond(store: &Store, address: SocketAddr, request: &ApiRequest<'_>) -> Answer {
    match dispatch(store, address, request) {
        Ok(answer) => answer,
        Err(error) => error.into(),
    }
}

fn dispatch(
    store: &Store,
    address: SocketAddr,
    request: &ApiRequest<'_>,
) -> Result<Answer, ApiError> {
    let route = Route::parse(request.path).ok_or_else(ApiError::no_route)?;
    let discovery_document = match &route {
        Route::Version => Some(discovery::version()),
        Route::CoreVersions => Some(discovery::core_versions(address)),
        Route::Groups => Some(discovery::groups()),
        Route::AppsGroup => Some(discovery::apps_group()),
        Route::Resources(group) => Some(discovery::resources(group)),
        Route::Collection { .. } | Route::Object { .. } | Route::Control(_) => None,
    };
    if let Some(document) = discovery_document {
        return match *request.method {
            Method::GET => Ok(Answer::ok(document)),
            _ => Err(ApiError::method_not_allowed(request.method.as_str())),
        };
    }
    match route {
        Route::Collection { kind, namespace } => {
            collection(store, request, kind, namespace.as_deref())
        }
        Route::Object {
            kind,
            namespace,
            name,
            subresource,
        } => {
            let target = Target {
                kind,
                namespace: &namespace,
                name: &name,
            };
            if subresource.is_some() {
                return match *request.method {
                    Method::GET => store.get(target).map(Answer::ok),
                    _ => Err(ApiError::method_not_allowed(request.method.as_str())),
                };
            }
            object(store, request, target)
        }
        _ => Err(ApiError::no_route()),
    }
}

fn collection(
    store: &Store,
    request: &ApiRequest<'_>,
    kind: Kind,
    namespace: Option<&str>,
) -> Result<Answer, ApiError> {
    match *request.method {
        Method::GET => list(store, request, kind, namespace),
        Method::POST if kind.writable() && (namespace.is_some() || !kind.namespaced()) => {
            let object = parse_body(request)?;
            let options = write_options(request, false)?;
            let written = store.create(kind, namespace.unwrap_or_default(), object, &options)?;
            Ok(Answer {
                code: 201,
                body: written.object,
                retry_after_seconds: None,
            })
        }
        _ => Err(ApiError::method_not_allowed(request.method.as_str())),
    }
}

fn list(
    store: &Store,
    request: &ApiRequest<'_>,
    kind: Kind,
    namespace: Option<&str>,
) -> Result<Answer, ApiError> {
    let parameters = query::parse(request.query);
    let value_of = |name: &str| {
        parameters
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    if value_of("watch").is_some_and(|watch| watch == "true" || watch == "1") {
        return Err(ApiError::method_not_allowed(
            "WATCH (kube-standin does not serve watches)",
        ));
    }
    let labels = Selector::labels(value_of("labelSelector").unwrap_or_default())?;
    let allowed: &[&str] = match kind {
        Kind::Secret => &["metadata.name", "metadata.namespace", "type"],
        _ => &["metadata.name", "metadata.namespace"],
    };
    // Events are always an empty list, so any selector kubectl sends (involvedObject.*)
    // selects nothing without being checked.
    let field_selector = if kind.writable() {
        value_of("fieldSelector").unwrap_or_default()
    } else {
        ""
    };
    let fields = Selector::fields(field_selector, allowed)?;
    let keep = |object: &Value| {
        labels.matches_labels(object)
            && fields.matches(|field| match field {
                "metadata.name" => object.pointer("/metadata/name")?.as_str(),
                "metadata.namespace" => object.pointer("/metadata/namespace")?.as_str(),
                "type" => object.get("type")?.as_str(),
                _ => None,
            })
    };
    let namespace = if kind.namespaced() { namespace } else { None };
    let (items, resource_version) = if kind.writable() {
        store.list(kind, namespace, &keep)
    } else {
        (Vec::new(), 0)
    };
    if table::wanted(request.accept) {
        return Ok(Answer::ok(table::render(kind, &items, resource_version)));
    }
    let items: Vec<Value> = items
        .into_iter()
        .map(|item| {
            let mut item = Value::clone(&item);
            // The real server leaves kind and apiVersion out of typed list items.
            if let Some(map) = item.as_object_mut() {
                map.remove("kind");
                map.remove("apiVersion");
            }
            item
        })
        .collect();
    Ok(Answer::ok(json!({
        "kind": kind.list_kind(),
        "apiVersion": kind.api_version(),
        "metadata": {"resourceVersion": resource_version.to_string()},
        "items": items,
    })))
}

fn object(store: &Store, request: &ApiRequest<'_>, target: Target<'_>) -> Result<Answer, ApiError> {
    if !target.kind.writable() && *request.method != Method::GET {
        return Err(ApiError::method_not_allowed(request.method.as_str()));
    }
    match *request.method {
        Method::GET => {
            let object = store.get(target)?;
            if table::wanted(request.accept) {
                let version = object
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .and_then(|version| version.parse().ok())
                    .unwrap_or(0);
                return Ok(Answer::ok(table::render(target.kind, &[object], version)));
            }
            Ok(Answer::ok(object))
        }
        Method::PATCH => patch(store, request, target),
        Method::PUT => {
            let object = parse_body(request)?;
            let options = write_options(request, false)?;
            Ok(Answer::ok(store.replace(target, object, &options)?.object))
        }
        Method::DELETE => {
            let dry_run = query::param(request.query, "dryRun").is_some_and(|value| value == "All");
            Ok(Answer::ok(store.delete(target, dry_run)?))
        }
        _ => Err(ApiError::method_not_allowed(request.method.as_str())),
    }
}

fn patch(store: &Store, request: &ApiRequest<'_>, target: Target<'_>) -> Result<Answer, ApiError> {
    let content_type = request.content_type.unwrap_or_default();
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    match media_type {
        "application/apply-patch+yaml" => {
            let options = write_options(request, true)?;
            let config = parse_body(request)?;
            let written = store.apply(target, config, &options)?;
            let code = if written.created { 201 } else { 200 };
            Ok(Answer {
                code,
                body: written.object,
                retry_after_seconds: None,
            })
        }
        "application/merge-patch+json" => {
            let options = write_options(request, false)?;
            let patch = parse_body(request)?;
            Ok(Answer::ok(
                store.merge_patch(target, &patch, &options)?.object,
            ))
        }
        _ => Err(ApiError::unsupported_media_type(media_type)),
    }
}

/// The field manager, `force` and `dryRun` of a write, validated as the real server does.
fn write_options(request: &ApiRequest<'_>, apply: bool) -> Result<WriteOptions, ApiError> {
    let parameters = query::parse(request.query);
    let value_of = |name: &str| {
        parameters
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let force = match value_of("force").as_deref() {
        None => false,
        Some(_) if !apply => {
            return Err(ApiError::invalid_options(Cause {
                reason: "FieldValueForbidden",
                field: "force".to_owned(),
                message: "Forbidden: may not be specified for non-apply patch".to_owned(),
            }));
        }
        Some("true" | "1") => true,
        Some("false" | "0" | "") => false,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid value for force: {other:?}"
            )));
        }
    };
    let manager = match value_of("fieldManager").filter(|manager| !manager.is_empty()) {
        Some(manager) => manager,
        None if apply => {
            return Err(ApiError::invalid_options(Cause {
                reason: "FieldValueRequired",
                field: "fieldManager".to_owned(),
                message: "Required value: is required for apply patch".to_owned(),
            }));
        }
        // The real server names non-apply managers after the user agent's first word.
        None => request
            .user_agent
            .and_then(|agent| agent.split('/').next())
            .filter(|prefix| !prefix.is_empty())
            .unwrap_or("unknown")
            .to_owned(),
    };
    if manager.len() > MAX_FIELD_MANAGER_LENGTH {
        return Err(ApiError::invalid_options(Cause {
            reason: "FieldValueTooLong",
            field: "fieldManager".to_owned(),
            message: format!("Too long: may not be more than {MAX_FIELD_MANAGER_LENGTH} bytes"),
        }));
    }
    let dry_run = match value_of("dryRun").as_deref() {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::invalid_options(Cause {
                reason: "FieldValueNotSupported",
                field: "dryRun".to_owned(),
                message: format!("Unsupported value: \"{other}\": supported values: \"All\""),
            }));
        }
    };
    Ok(WriteOptions {
        manager,
        force,
        dry_run,
    })
}

/// Parses a JSON body; a body that is not JSON is read as YAML (kubectl and people may
/// send YAML to apply), answering the real server's 400 when neither works.
fn parse_body(request: &ApiRequest<'_>) -> Result<Value, ApiError> {
    let json_error = match serde_json::from_slice::<Value>(request.body) {
        Ok(value) => return Ok(value),
        Err(error) => error,
    };
    match serde_yaml_ng::from_slice::<Value>(request.body) {
        Ok(value) if value.is_object() => Ok(value),
        _ => Err(ApiError::bad_request(format!(
            "error decoding the request body as JSON or YAML: {json_error}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(
        method: &'a Method,
        path: &'a str,
        query: &'a str,
        content_type: Option<&'a str>,
        body: &'a [u8],
    ) -> ApiRequest<'a> {
        ApiRequest {
            method,
            path,
            query,
            content_type,
            accept: None,
            user_agent: Some("kubectl/v1.32.4"),
            body,
        }
    }

    fn address() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 6443))
    }

    #[test]
    fn apply_needs_a_field_manager() {
        let store = Store::new().expect("store");
        let body = br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"}}"#;
        let patch = Method::PATCH;
        let answer = respond(
            &store,
            address(),
            &request(
                &patch,
                "/api/v1/namespaces/default/secrets/s",
                "",
                Some("application/apply-patch+yaml"),
                body,
            ),
        );
        assert_eq!(answer.code, 422);
        assert_eq!(answer.body["details"]["causes"][0]["field"], "fieldManager");
        let answer = respond(
            &store,
            address(),
            &request(
                &patch,
                "/api/v1/namespaces/default/secrets/s",
                "fieldManager=x&force=true",
                Some("application/apply-patch+yaml"),
                body,
            ),
        );
        assert_eq!(answer.code, 201);
        let answer = respond(
            &store,
            address(),
            &request(
                &patch,
                "/api/v1/namespaces/default/secrets/s",
                "force=true",
                Some("application/merge-patch+json"),
                b"{}",
            ),
        );
        assert_eq!(answer.code, 422);
        let answer = respond(
            &store,
            address(),
            &request(
                &patch,
                "/api/v1/namespaces/default/secrets/s",
                "",
                Some("application/strategic-merge-patch+json"),
                b"{}",
            ),
        );
        assert_eq!(answer.code, 415);
    }

    #[test]
    fn yaml_apply_bodies_are_accepted() {
        let store = Store::new().expect("store");
        let body = b"apiVersion: v1\nkind: Secret\nmetadata:\n  name: y\nstringData:\n  K: v\n";
        let patch = Method::PATCH;
        let answer = respond(
            &store,
            address(),
            &request(
                &patch,
                "/api/v1/namespaces/default/secrets/y",
                "fieldManager=kubectl",
                Some("application/apply-patch+yaml"),
                body,
            ),
        );
        assert_eq!(answer.code, 201, "{}", answer.body);
        assert_eq!(answer.body["data"]["K"], "dg==");
        let answer = respond(
            &store,
            address(),
            &request(
                &patch,
                "/api/v1/namespaces/default/secrets/y",
                "fieldManager=kubectl",
                Some("application/apply-patch+yaml"),
                b": : :",
            ),
        );
        assert_eq!(answer.code, 400);
    }

    #[test]
    fn lists_filter_by_label() {
        let store = Store::new().expect("store");
        let post = Method::POST;
        for (name, tier) in [("a", "web"), ("b", "db")] {
            let body = json!({"metadata": {"name": name, "labels": {"tier": tier}}}).to_string();
            let answer = respond(
                &store,
                address(),
                &request(
                    &post,
                    "/api/v1/namespaces/default/secrets",
                    "",
                    Some("application/json"),
                    body.as_bytes(),
                ),
            );
            assert_eq!(answer.code, 201, "{}", answer.body);
            assert_eq!(
                answer.body["metadata"]["managedFields"][0]["manager"],
                "kubectl"
            );
        }
        let get = Method::GET;
        let answer = respond(
            &store,
            address(),
            &request(
                &get,
                "/api/v1/namespaces/default/secrets",
                "labelSelector=tier%3Dweb",
                None,
                b"",
            ),
        );
        assert_eq!(answer.body["kind"], "SecretList");
        assert_eq!(answer.body["items"].as_array().map(Vec::len), Some(1));
        assert_eq!(answer.body["items"][0]["metadata"]["name"], "a");
        assert!(answer.body["items"][0].get("kind").is_none());
        let answer = respond(
            &store,
            address(),
            &request(
                &post,
                "/api/v1/namespaces/default/secrets",
                "",
                None,
                br#"{"metadata":{"name":"a"}}"#,
            ),
        );
        assert_eq!(
            (answer.code, answer.body["reason"].clone()),
            (409, json!("AlreadyExists"))
        );
    }
}
