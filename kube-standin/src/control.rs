//! The `/_standin/` control endpoints the binary exposes to tests and benchmarks in other
//! processes: fault knobs, reset, and the request log.
//!
//! | route | effect |
//! |---|---|
//! | `GET /_standin/faults` | the knobs as they stand ([`crate::FaultState`]) |
//! | `POST /_standin/faults` | apply a [`crate::FaultSpec`]; answers the new state |
//! | `POST /_standin/reset` | clear every knob; answers the new state |
//! | `GET /_standin/requests` | the request log, oldest first |
//! | `DELETE /_standin/requests` | empty the request log |
//! | `GET /_standin/healthz` | `{"ok": true}` |
//!
//! These requests bypass faults and are not logged.

use hyper::Method;
use serde_json::json;

use crate::api::Answer;
use crate::faults::{FaultSpec, Faults};
use crate::requests::RequestLog;
use crate::status::ApiError;

/// Answers a control request for `endpoint` (the path after `/_standin/`).
pub fn respond(
    faults: &Faults,
    requests: &RequestLog,
    method: &Method,
    endpoint: &str,
    body: &[u8],
) -> Answer {
    let state = |faults: &Faults| serde_json::to_value(faults.state()).unwrap_or_default();
    match (method, endpoint) {
        (&Method::GET, "faults") => Answer::ok(state(faults)),
        (&Method::POST, "faults") => match serde_json::from_slice::<FaultSpec>(body) {
            Ok(spec) => {
                faults.apply(spec);
                Answer::ok(state(faults))
            }
            Err(error) => ApiError::bad_request(format!("invalid fault spec: {error}")).into(),
        },
        (&Method::POST, "reset") => {
            faults.clear();
            Answer::ok(state(faults))
        }
        (&Method::GET, "requests") => Answer::ok(json!({
            "total": requests.total(),
            "requests": requests.snapshot(),
        })),
        (&Method::DELETE, "requests") => {
            requests.clear();
            Answer::ok(json!({"total": requests.total(), "requests": []}))
        }
        (&Method::GET, "healthz") => Answer::ok(json!({"ok": true})),
        _ => ApiError::no_route().into(),
    }
}
