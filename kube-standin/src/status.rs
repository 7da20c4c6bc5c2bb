//! `Status` objects: the one error shape of the Kubernetes API.
//!
//! Every failure the stand-in answers — a missing object, an apply conflict, an injected
//! fault — is an [`ApiError`] that renders as the real server's `Status` JSON, so client
//! code sees exactly the `code`, `reason`, `message` and `details` it would see from a
//! kube-apiserver. Messages copy the real server's wording where clients or people match
//! on it (`secrets "x" not found`, `Apply failed with 1 conflict: …`).

use serde_json::{Value, json};

use crate::kind::Kind;

/// A failed request, rendered as a `Status` with `status: Failure`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// The HTTP status code, also written as the Status `code`.
    pub code: u16,
    /// The machine-readable `reason` (`NotFound`, `Conflict`, …).
    pub reason: &'static str,
    /// The human-readable message.
    pub message: String,
    /// The `details` object, when the real server sends one.
    pub details: Option<Value>,
    /// Seconds for a `Retry-After` header and `details.retryAfterSeconds`.
    pub retry_after_seconds: Option<u64>,
}

/// One entry of `details.causes`: which field was wrong and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldManagerConflict`, …
    pub reason: &'static str,
    /// The field path as the real server prints it (`spec.selector`, `.spec.replicas`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl ApiError {
    /// A bare error with `code`, the reason the real server pairs with it, and `message`.
    pub fn new(code: u16, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: reason_for(code),
            message: message.into(),
            details: None,
            retry_after_seconds: None,
        }
    }

    /// `404 NotFound`: `secrets "name" not found`.
    pub fn not_found(kind: Kind, name: &str) -> Self {
        ApiError {
            details: Some(object_details(kind, name)),
            ..ApiError::new(
                404,
                format!("{} \"{name}\" not found", kind.qualified_resource()),
            )
        }
    }

    /// `404 NotFound` for a namespaced write into a namespace that does not exist.
    pub fn namespace_not_found(namespace: &str) -> Self {
        ApiError::not_found(Kind::Namespace, namespace)
    }

    /// `404 NotFound` for a path the server does not serve.
    pub fn no_route() -> Self {
        ApiError {
            details: Some(json!({})),
            ..ApiError::new(404, "the server could not find the requested resource")
        }
    }

    /// `409 AlreadyExists`: `secrets "name" already exists`.
    pub fn already_exists(kind: Kind, name: &str) -> Self {
        ApiError {
            reason: "AlreadyExists",
            details: Some(object_details(kind, name)),
            ..ApiError::new(
                409,
                format!("{} \"{name}\" already exists", kind.qualified_resource()),
            )
        }
    }

    /// `409 Conflict` for a stale `resourceVersion` (optimistic concurrency).
    pub fn stale(kind: Kind, name: &str) -> Self {
        ApiError {
            details: Some(object_details(kind, name)),
            ..ApiError::new(
                409,
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                     please apply your changes to the latest version and try again",
                    kind.qualified_resource()
                ),
            )
        }
    }

    /// `409 Conflict` for a server-side apply that would take fields other managers own;
    /// `conflicts` pairs each manager with the fields (`.spec.replicas`) it would lose.
    pub fn apply_conflict(conflicts: &[(String, Vec<String>)]) -> Self {
        let total: usize = conflicts.iter().map(|(_, fields)| fields.len()).sum();
        let plural = if total == 1 { "" } else { "s" };
        let mut message = format!("Apply failed with {total} conflict{plural}: ");
        let mut causes = Vec::new();
        for (index, (manager, fields)) in conflicts.iter().enumerate() {
            if index > 0 {
                message.push('\n');
            }
            if let [field] = fields.as_slice() {
                message.push_str(&format!("conflict with \"{manager}\": {field}"));
            } else {
                message.push_str(&format!("conflicts with \"{manager}\":"));
                for field in fields {
                    message.push_str(&format!("\n- {field}"));
                }
            }
            causes.extend(fields.iter().map(|field| {
                json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with \"{manager}\""),
                    "field": field,
                })
            }));
        }
        ApiError {
            details: Some(json!({ "causes": causes })),
            ..ApiError::new(409, message)
        }
    }

    /// `422 Invalid`: `Kind.group "name" is invalid: field: message; …`.
    pub fn invalid(kind: Kind, name: &str, causes: &[Cause]) -> Self {
        let summary = causes
            .iter()
            .map(|cause| format!("{}: {}", cause.field, cause.message))
            .collect::<Vec<_>>()
            .join(", ");
        let mut details = object_details(kind, name);
        details["kind"] = json!(kind.name());
        details["causes"] = causes
            .iter()
            .map(|cause| json!({ "reason": cause.reason, "message": cause.message, "field": cause.field }))
            .collect();
        let subject = match kind.group() {
            "" => kind.name().to_owned(),
            group => format!("{}.{group}", kind.name()),
        };
        ApiError {
            details: Some(details),
            ..ApiError::new(422, format!("{subject} \"{name}\" is invalid: {summary}"))
        }
    }

    /// `422 Invalid` about the request options rather than the object (`fieldManager`, `force`).
    pub fn invalid_options(cause: Cause) -> Self {
        let message = format!(
            "PatchOptions.meta.k8s.io \"\" is invalid: {}: {}",
            cause.field, cause.message
        );
        ApiError {
            details: Some(json!({
                "group": "meta.k8s.io",
                "kind": "PatchOptions",
                "causes": [{ "reason": cause.reason, "message": cause.message, "field": cause.field }],
            })),
            ..ApiError::new(422, message)
        }
    }

    /// `400 BadRequest` with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, message)
    }

    /// `405 MethodNotAllowed`.
    pub fn method_not_allowed(method: &str) -> Self {
        ApiError {
            details: Some(json!({})),
            ..ApiError::new(
                405,
                format!(
                    "the server does not allow this method on the requested resource ({method})"
                ),
            )
        }
    }

    /// `415 UnsupportedMediaType` for a patch type the stand-in does not model.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        ApiError::new(
            415,
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (kube-standin does not model {content_type})"
            ),
        )
    }

    /// The `Status` JSON body of this error.
    pub fn to_json(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        let mut details = self.details.clone();
        if let Some(seconds) = self.retry_after_seconds {
            details.get_or_insert_with(|| json!({}))["retryAfterSeconds"] = json!(seconds);
        }
        if let Some(details) = details {
            status["details"] = details;
        }
        status
    }
}

/// The `Status` of a successful delete, carrying the deleted object's identity.
pub fn deleted(kind: Kind, name: &str, uid: &str) -> Value {
    let mut details = object_details(kind, name);
    details["uid"] = json!(uid);
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    })
}

/// The reason the real server pairs with each code (`k8s.io/apimachinery/pkg/api/errors`).
pub fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    }
}

fn object_details(kind: Kind, name: &str) -> Value {
    let mut details = json!({ "name": name, "kind": kind.plural() });
    if !kind.group().is_empty() {
        details["group"] = json!(kind.group());
    }
    details
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_matches_the_real_server() {
        let status = ApiError::not_found(Kind::Deployment, "web").to_json();
        assert_eq!(status["message"], "deployments.apps \"web\" not found");
        assert_eq!(status["reason"], "NotFound");
        assert_eq!(status["code"], 404);
        assert_eq!(
            status["details"],
            json!({"name": "web", "group": "apps", "kind": "deployments"})
        );
        let status = ApiError::namespace_not_found("paas-apps").to_json();
        assert_eq!(status["message"], "namespaces \"paas-apps\" not found");
    }

    #[test]
    fn conflicts_list_every_field() {
        let one = ApiError::apply_conflict(&[("hpa".into(), vec![".spec.replicas".into()])]);
        assert_eq!(
            one.message,
            "Apply failed with 1 conflict: conflict with \"hpa\": .spec.replicas"
        );
        let two = ApiError::apply_conflict(&[("a".into(), vec![".x".into(), ".y".into()])]);
        assert_eq!(
            two.message,
            "Apply failed with 2 conflicts: conflicts with \"a\":\n- .x\n- .y"
        );
        assert_eq!(two.to_json()["details"]["causes"][1]["field"], ".y");
    }

    #[test]
    fn retry_after_lands_in_details() {
        let error = ApiError {
            retry_after_seconds: Some(3),
            ..ApiError::new(429, "slow down")
        };
        let status = error.to_json();
        assert_eq!(status["reason"], "TooManyRequests");
        assert_eq!(status["details"]["retryAfterSeconds"], 3);
    }
}
