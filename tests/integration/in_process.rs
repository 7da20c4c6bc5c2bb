//! `exsec::app::Server::handle` answers a request without a socket: the same
//! routing, auth, limits and handlers as a connection. These tests check it
//! agrees with loopback HTTP, and reach the body edges a well-behaved
//! HTTP/1 client cannot produce (a body that grows past the limit without a
//! Content-Length, a body that fails half-way).

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Frame;

use crate::server::{Answer, TestServer};

/// A request body delivered frame by frame; an `Err` item fails the read.
struct Frames(VecDeque<Result<Bytes, std::io::Error>>);

impl hyper::body::Body for Frames {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        Poll::Ready(self.0.pop_front().map(|item| item.map(Frame::data)))
    }
}

async fn in_process<B: exsec::api::RequestBody>(
    server: &TestServer,
    method: &str,
    path: &str,
    body: B,
) -> Answer {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {}", server.admin_token))
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    let response = server
        .server
        .as_ref()
        .expect("an in-process server")
        .handle(request)
        .await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

#[tokio::test]
async fn in_process_and_loopback_answers_agree() {
    let server = TestServer::start().await;
    let created = in_process(&server, "PUT", "/v1/tenants/acme", Full::new(Bytes::new())).await;
    assert_eq!(created.status, 201, "{}", created.text());
    // What one path wrote, the other reads, with the same answer.
    let over_http = server.admin("GET", "/v1/tenants/acme", None).await;
    let here = in_process(&server, "GET", "/v1/tenants/acme", Full::new(Bytes::new())).await;
    assert_eq!(over_http.status, 200, "{}", over_http.text());
    assert_eq!(here.status, over_http.status);
    assert_eq!(here.json(), over_http.json());
    // Errors too: same status, same problem document.
    let missing_http = server.admin("GET", "/v1/tenants/nobody", None).await;
    let missing_here = in_process(
        &server,
        "GET",
        "/v1/tenants/nobody",
        Full::new(Bytes::new()),
    )
    .await;
    missing_http.assert_problem(404, "tenant_not_found");
    assert_eq!(missing_here.json(), missing_http.json());
}

#[tokio::test]
async fn a_body_growing_past_the_limit_without_a_length_is_refused() {
    let server = TestServer::start().await;
    server.seed("acme", &[]).await;
    // 2 MiB in 64 KiB frames, no Content-Length: the limit is met while
    // reading, not from a header.
    let chunk = Bytes::from(vec![b' '; 64 * 1024]);
    let frames = Frames((0..32).map(|_| Ok(chunk.clone())).collect());
    let answer = in_process(
        &server,
        "PUT",
        "/v1/tenants/acme/external-secrets/openai/OPENAI_API_KEY",
        frames,
    )
    .await;
    answer.assert_problem(413, "body_too_large");
}

#[tokio::test]
async fn a_body_that_fails_half_way_is_a_client_error_and_writes_nothing() {
    let server = TestServer::start().await;
    server.seed("acme", &[]).await;
    let frames = Frames(VecDeque::from([
        Ok(Bytes::from_static(br#"{"value":"sk-half"#)),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "peer went away",
        )),
    ]));
    let path = "/v1/tenants/acme/external-secrets/openai/OPENAI_API_KEY";
    let answer = in_process(&server, "PUT", path, frames).await;
    answer.assert_problem(400, "body_unreadable");
    let listed = server
        .admin("GET", "/v1/tenants/acme/external-secrets", None)
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text());
    assert!(
        !listed.text().contains("OPENAI_API_KEY"),
        "a failed body wrote a secret: {}",
        listed.text()
    );
}
