//! One HTTP request through the stand-in: read the body, record it, let the fault knobs
//! act, answer from the API layer, serialise.
//!
//! Returning [`Dropped`] makes hyper close the connection without writing an answer,
//! which is how the "drop connection" fault and a client that went away are modelled.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Request, Response, StatusCode};

use crate::api::{self, Answer, ApiRequest};
use crate::control;
use crate::faults::Verdict;
use crate::requests::RequestRecord;
use crate::server::Shared;
use crate::status::ApiError;

/// The real server's request body limit (3 MiB).
const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// The connection is closed without an answer.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped without an answer")]
pub struct Dropped;

/// Handles one request on a connection of the stand-in.
pub async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            let error = ApiError::new(
                413,
                format!("Request entity too large: limit is {MAX_BODY_BYTES}"),
            );
            return Ok(render(Answer::from(error)));
        }
        Err(_) => return Err(Dropped),
    };
    let header = |name| {
        parts
            .headers
            .get(name)
            .and_then(|value: &HeaderValue| value.to_str().ok())
    };
    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or_default();

    if let Some(endpoint) = path.strip_prefix("/_standin/") {
        let faults = shared.faults();
        return Ok(render(control::respond(
            &faults,
            &shared.requests,
            &parts.method,
            endpoint.trim_end_matches('/'),
            &body,
        )));
    }

    shared.requests.record(RequestRecord {
        method: parts.method.to_string(),
        path: path.to_owned(),
        query: query.to_owned(),
        content_type: header(CONTENT_TYPE).map(str::to_owned),
        accept: header(hyper::header::ACCEPT).map(str::to_owned),
        user_agent: header(hyper::header::USER_AGENT).map(str::to_owned),
    });

    let (drop_answer, hold_answer) = match shared.knobs.intercept(parts.method.as_str(), path).await
    {
        Verdict::Drop => return Err(Dropped),
        Verdict::Fail(error) => return Ok(render(Answer::from(error))),
        Verdict::Proceed { drop_answer } => (drop_answer, None),
        Verdict::SlowAnswer(delay) => (false, Some(delay)),
    };
    let request = ApiRequest {
        method: &parts.method,
        path,
        query,
        content_type: header(CONTENT_TYPE),
        accept: header(hyper::header::ACCEPT),
        user_agent: header(hyper::header::USER_AGENT),
        body: &body,
    };
    let answer = api::respond(&shared.store, shared.address, &request);
    if drop_answer {
        return Err(Dropped);
    }
    if let Some(delay) = hold_answer {
        tokio::time::sleep(delay).await;
    }
    Ok(render(answer))
}

/// Serialises an answer as JSON with the status code and `Retry-After`.
fn render(answer: Answer) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(answer.body.as_ref()).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        StatusCode::from_u16(answer.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(seconds) = answer.retry_after_seconds {
        headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}
