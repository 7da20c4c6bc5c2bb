//! Hostile input: every case answers 4xx problem+json with a precise
//! `code` (never a 5xx), writes nothing, never echoes a submitted value,
//! and the server keeps serving.

use bytes::Bytes;
use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::server::{Answer, TestServer};

const SECRET: &str = "/v1/tenants/a/external-secrets/openai/OPENAI_API_KEY";
const APP_SECRET: &str = "/v1/apps/a-web/external-secrets/openai/OPENAI_API_KEY";
const VERIFY: &str = "/v1/tenants/a/external-secrets/openai/OPENAI_API_KEY/verify";
const DEPLOY: &str = "/v1/apps/a-web/deploys";
const MIB: usize = 1024 * 1024;

/// A server with tenants `a` (app `a-web`, one tenant default) and `b`.
async fn server() -> TestServer {
    let server = TestServer::start().await;
    server.seed("a", &["a-web"]).await;
    server.seed("b", &[]).await;
    let answer = server
        .set_secret("/v1/tenants/a", "openai", "OPENAI_API_KEY", "stored-value")
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text());
    server
}

/// `(method, path, body)`.
type Request<'a> = (&'a str, &'a str, Option<&'a str>);

/// Sends each `(method, path, body, status, code)` with the admin token
/// and checks the problem answer.
async fn expect_all(server: &TestServer, cases: &[(&str, &str, Option<&str>, u16, &str)]) {
    for (method, path, body, status, code) in cases {
        let answer = server.admin(method, path, *body).await;
        let body: Option<String> = body.map(|b| b.chars().take(100).collect());
        let request = format!("{method} {path} {body:?}");
        let text = answer.text();
        assert_eq!(answer.status, *status, "{request}: {text}");
        assert_eq!(answer.code(), *code, "{request}: {text}");
        answer.assert_problem(*status, code);
    }
}

/// The end of every test: the server still answers.
async fn assert_still_serving(server: &TestServer) {
    let answer = server.call("GET", "/healthz", None, None).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
}

/// Writes `head` and `body` as they are over one connection and reads one
/// answer: for requests the client library would not send (a length it
/// does not follow, a hand-made chunked body).
async fn raw(server: &TestServer, head: &str, body: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let mut request = head.as_bytes().to_vec();
    request.extend_from_slice(body);
    stream.write_all(&request).await.unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 8192];
    let head_len = loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let n = stream.read(&mut buffer).await.unwrap();
        assert!(n > 0, "connection closed before an answer");
        received.extend_from_slice(&buffer[..n]);
    };
    let head = String::from_utf8(received[..head_len].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap();
    let mut headers = HeaderMap::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').unwrap();
        headers.append(
            HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
            HeaderValue::from_str(value.trim()).unwrap(),
        );
    }
    let length: usize = headers["content-length"].to_str().unwrap().parse().unwrap();
    while received.len() < head_len + length {
        let n = stream.read(&mut buffer).await.unwrap();
        assert!(n > 0, "connection closed inside the answer");
        received.extend_from_slice(&buffer[..n]);
    }
    Answer {
        status: status.parse().unwrap(),
        headers,
        body: Bytes::copy_from_slice(&received[head_len..head_len + length]),
    }
}

/// A request head; `length` is a `Content-Length`, or chunked when `None`.
fn head(method: &str, path: &str, token: Option<&str>, length: Option<usize>) -> String {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
    );
    if let Some(token) = token {
        head.push_str(&format!("authorization: Bearer {token}\r\n"));
    }
    match length {
        Some(length) => head.push_str(&format!("content-length: {length}\r\n")),
        None => head.push_str("transfer-encoding: chunked\r\n"),
    }
    head.push_str("\r\n");
    head
}

/// `{"value":"xxx…"}` of exactly `len` bytes.
fn value_body(len: usize) -> Vec<u8> {
    let frame = br#"{"value":""}"#;
    let mut body = frame[..10].to_vec();
    body.resize(len - 2, b'x');
    body.extend_from_slice(b"\"}");
    body
}

/// `body` as chunks of 64 KiB (the last one shorter), with the final chunk.
fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in body.chunks(64 * 1024) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[tokio::test]
async fn malformed_mistyped_unknown_and_missing_bodies() {
    let server = server().await;
    let seq = server.audit_seq().await;
    let app = "/v1/apps/new-app";
    let groups: [(&str, &[Request]); 6] = [
        (
            "malformed_json",
            &[
                ("PUT", SECRET, Some(r#"{"value": "#)),
                ("PUT", SECRET, Some("not json")),
                ("PUT", SECRET, Some(r#"{"value":"x",}"#)),
                ("PUT", SECRET, Some(r#"{"value":"x"} {}"#)),
                ("PUT", SECRET, Some(r#"{'value':'x'}"#)),
                ("PUT", SECRET, Some(r#"{"value":"\ud800"}"#)),
                ("PUT", SECRET, Some(r#"["value""#)),
                ("POST", DEPLOY, Some(r#"{"image_ref":"img:1""#)),
            ],
        ),
        (
            "wrong_type",
            &[
                ("PUT", SECRET, Some(r#"{"value": 123}"#)),
                ("PUT", SECRET, Some(r#"{"value": null}"#)),
                ("PUT", SECRET, Some(r#"{"value": {"nested": 1}}"#)),
                // serde would read these arrays as the struct, by position.
                ("PUT", SECRET, Some(r#"["value"]"#)),
                ("POST", DEPLOY, Some(r#" ["a","a-web","img:1"]"#)),
                ("PUT", SECRET, Some("null")),
                ("PUT", SECRET, Some(r#""a string""#)),
                ("PUT", app, Some(r#"{"tenant_id": 7}"#)),
                (
                    "PUT",
                    app,
                    Some(r#"{"tenant_id":"a","required_env":"KEY"}"#),
                ),
                ("POST", DEPLOY, Some(r#"{"image_ref":["img"]}"#)),
                (
                    "POST",
                    DEPLOY,
                    Some(r#"{"image_ref":"img:1","replicas":"3"}"#),
                ),
                (
                    "POST",
                    DEPLOY,
                    Some(r#"{"image_ref":"img:1","replicas":1.5}"#),
                ),
                ("POST", DEPLOY, Some(r#"{"image_ref":"img:1","port":true}"#)),
            ],
        ),
        (
            "unknown_field",
            &[
                ("PUT", SECRET, Some(r#"{"value":"x","extra":1}"#)),
                ("PUT", SECRET, Some(r#"{"Value":"x"}"#)),
                ("POST", VERIFY, Some(r#"{"value":"x","candidate":"y"}"#)),
                ("PUT", app, Some(r#"{"tenant_id":"a","tenant":"a"}"#)),
                ("POST", DEPLOY, Some(r#"{"image_ref":"img:1","replica":2}"#)),
                ("PUT", "/v1/tenants/new", Some(r#"{"name":"x"}"#)),
                ("POST", "/v1/tenants/a/tokens", Some(r#"{"ttl":60}"#)),
            ],
        ),
        (
            "duplicate_field",
            &[("PUT", SECRET, Some(r#"{"value":"x","value":"y"}"#))],
        ),
        (
            "missing_field",
            &[
                ("PUT", SECRET, Some("{}")),
                ("POST", VERIFY, Some("{}")),
                ("PUT", app, Some(r#"{"required_env":[]}"#)),
                ("POST", DEPLOY, Some(r#"{"replicas":1}"#)),
            ],
        ),
        (
            "missing_body",
            &[
                ("PUT", SECRET, Some("")),
                ("POST", DEPLOY, Some(" \r\n")),
                ("PUT", app, None),
            ],
        ),
    ];
    for (code, cases) in groups {
        let cases: Vec<_> = cases
            .iter()
            .map(|(method, path, body)| (*method, *path, *body, 400, code))
            .collect();
        expect_all(&server, &cases).await;
    }
    // Not UTF-8 at all.
    let token = server.admin_token.clone();
    let body = Bytes::from_static(b"{\"value\":\"\xff\xfe\"}");
    server
        .call_bytes("PUT", SECRET, Some(&token), Some(body), &[])
        .await
        .assert_problem(400, "malformed_json");
    assert_eq!(server.audit_seq().await, seq, "a refused request wrote");
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn bodies_over_one_mib_answer_413_with_or_without_a_length() {
    let server = server().await;
    let seq = server.audit_seq().await;
    let admin = server.admin_token.clone();

    // A declared length over the limit is refused before a byte is read.
    let answer = raw(
        &server,
        &head("PUT", SECRET, Some(&admin), Some(MIB + 1)),
        b"",
    )
    .await;
    answer.assert_problem(413, "body_too_large");
    let answer = raw(
        &server,
        &head("POST", DEPLOY, Some(&admin), Some(10 * 1024 * MIB)),
        b"",
    )
    .await;
    answer.assert_problem(413, "body_too_large");
    // A chunked body is cut off once it passes the limit.
    let answer = raw(
        &server,
        &head("PUT", SECRET, Some(&admin), None),
        &chunked(&value_body(MIB + 1)),
    )
    .await;
    answer.assert_problem(413, "body_too_large");
    // Exactly 1 MiB is read (and then refused for its 1 MiB value).
    let answer = raw(
        &server,
        &head("PUT", SECRET, Some(&admin), None),
        &chunked(&value_body(MIB)),
    )
    .await;
    answer.assert_problem(400, "invalid_value");
    let body = String::from_utf8(value_body(MIB)).unwrap();
    server
        .admin("PUT", SECRET, Some(&body))
        .await
        .assert_problem(400, "invalid_value");

    // Authentication and authorization come before the body.
    let answer = raw(&server, &head("PUT", SECRET, None, Some(2 * MIB)), b"").await;
    answer.assert_problem(401, "unauthenticated");
    let b = server.mint("b").await;
    let seq_after_mint = server.audit_seq().await;
    let answer = raw(&server, &head("PUT", SECRET, Some(&b), Some(2 * MIB)), b"").await;
    answer.assert_problem(404, "tenant_not_found");

    assert_eq!(server.audit_seq().await, seq_after_mint);
    assert_eq!(seq_after_mint, seq + 1, "only the mint wrote");
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn invalid_ids_in_paths_bodies_and_queries() {
    let server = server().await;
    let seq = server.audit_seq().await;
    let long = "a".repeat(43);
    let long_tenant = format!("/v1/tenants/{long}");
    let long_app = format!("/v1/apps/{long}");
    let a = Some(r#"{"tenant_id":"a"}"#);
    let mut cases = vec![
        ("PUT", long_tenant.as_str(), None, 400, "invalid_tenant_id"),
        ("GET", long_app.as_str(), None, 400, "invalid_app_id"),
        ("PUT", long_app.as_str(), a, 400, "invalid_app_id"),
    ];
    for bad in [
        "ACME", "Acme", "-lead", "trail-", "..", ".", "a_b", "a.b", "%2e%2e", "a%2Fb", "%00",
        "%ZZ", "%61",
    ] {
        let tenant: &'static str = format!("/v1/tenants/{bad}").leak();
        let secrets: &'static str = format!("/v1/tenants/{bad}/external-secrets").leak();
        let app: &'static str = format!("/v1/apps/{bad}").leak();
        let effective: &'static str = format!("/v1/apps/{bad}/external-secrets/effective").leak();
        cases.extend([
            ("PUT", tenant, None, 400, "invalid_tenant_id"),
            ("GET", secrets, None, 400, "invalid_tenant_id"),
            ("PUT", app, a, 400, "invalid_app_id"),
            ("GET", effective, None, 400, "invalid_app_id"),
        ]);
    }
    cases.extend([
        (
            "PUT",
            "/v1/apps/new-app",
            Some(r#"{"tenant_id":"Bad"}"#),
            400,
            "invalid_tenant_id",
        ),
        (
            "PUT",
            "/v1/apps/new-app",
            Some(r#"{"tenant_id":""}"#),
            400,
            "invalid_tenant_id",
        ),
        (
            "PUT",
            "/v1/apps/new-app",
            Some(r#"{"tenant_id":"a","required_env":["1BAD"]}"#),
            400,
            "invalid_key",
        ),
        (
            "PUT",
            "/v1/apps/new-app",
            Some(r#"{"tenant_id":"nope"}"#),
            404,
            "tenant_not_found",
        ),
        (
            "PUT",
            "/v1/apps/a-web",
            Some(r#"{"tenant_id":"b"}"#),
            409,
            "app_tenant_fixed",
        ),
        (
            "GET",
            "/v1/apps?tenant_id=BAD",
            None,
            400,
            "invalid_tenant_id",
        ),
        (
            "GET",
            "/v1/audit-events?tenant_id=-x",
            None,
            400,
            "invalid_tenant_id",
        ),
        (
            "GET",
            "/v1/audit-events?app_id=..",
            None,
            400,
            "invalid_app_id",
        ),
        ("GET", "/v1/apps/nope", None, 404, "app_not_found"),
        ("GET", "/v1/tenants/nope", None, 404, "tenant_not_found"),
        (
            "POST",
            DEPLOY,
            Some(r#"{"image_ref":"img:1","tenant_id":"Bad"}"#),
            400,
            "invalid_tenant_id",
        ),
    ]);
    expect_all(&server, &cases).await;
    // The longest id is accepted: the limit is where the spec puts it.
    let longest = format!("/v1/tenants/{}", "a".repeat(42));
    assert_eq!(server.admin("PUT", &longest, None).await.status, 201);
    assert_eq!(server.audit_seq().await, seq + 1);
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn invalid_providers_keys_and_values() {
    let server = server().await;
    let seq = server.audit_seq().await;
    let value = Some(r#"{"value":"v"}"#);
    let mut cases = Vec::new();
    let long_provider = "p".repeat(64);
    let long_key = "K".repeat(254);
    for provider in [
        "Open",
        ".x",
        "-x",
        "_x",
        long_provider.as_str(),
        "a%2Fb",
        "%61",
    ] {
        for scope in ["/v1/tenants/a", "/v1/apps/a-web"] {
            let base = format!("{scope}/external-secrets/{provider}/OPENAI_API_KEY");
            let verify: &'static str = format!("{base}/verify").leak();
            let base: &'static str = base.leak();
            cases.extend([
                ("PUT", base, value, 400, "invalid_provider"),
                ("DELETE", base, None, 400, "invalid_provider"),
                ("POST", verify, value, 400, "invalid_provider"),
            ]);
        }
    }
    for key in ["1KEY", "A-B", "A.B", long_key.as_str(), "%41"] {
        for scope in ["/v1/tenants/a", "/v1/apps/a-web"] {
            let base = format!("{scope}/external-secrets/openai/{key}");
            let verify: &'static str = format!("{base}/verify").leak();
            let base: &'static str = base.leak();
            cases.extend([
                ("PUT", base, value, 400, "invalid_key"),
                ("DELETE", base, None, 400, "invalid_key"),
                ("POST", verify, value, 400, "invalid_key"),
            ]);
        }
    }
    let too_long: &'static str = serde_json::json!({ "value": "x".repeat(64 * 1024 + 1) })
        .to_string()
        .leak();
    for path in [SECRET, APP_SECRET, VERIFY] {
        let method = if path == VERIFY { "POST" } else { "PUT" };
        cases.extend([
            (method, path, Some(r#"{"value":""}"#), 400, "invalid_value"),
            (
                method,
                path,
                Some(r#"{"value":"a\u0000b"}"#),
                400,
                "invalid_value",
            ),
            (method, path, Some(too_long), 400, "invalid_value"),
        ]);
    }
    cases.extend([
        ("DELETE", APP_SECRET, None, 404, "secret_not_found"),
        (
            "POST",
            "/v1/tenants/a/external-secrets/openai/OTHER/verify",
            value,
            404,
            "secret_not_found",
        ),
    ]);
    expect_all(&server, &cases).await;
    assert_eq!(server.audit_seq().await, seq, "a refused request wrote");
    // The largest value is accepted.
    let largest = "x".repeat(64 * 1024);
    assert_eq!(
        server
            .set_secret("/v1/apps/a-web", "openai", "OPENAI_API_KEY", &largest)
            .await
            .status,
        201
    );
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn deploy_bodies_are_checked_before_anything_is_applied() {
    let server = server().await;
    let seq = server.audit_seq().await;
    let long_image: &'static str = format!(r#"{{"image_ref":"{}"}}"#, "i".repeat(513)).leak();
    let bodies = [
        (
            r#"{"image_ref":"img:1","app_id":"other-app"}"#,
            422,
            "app_id_mismatch",
        ),
        (
            r#"{"image_ref":"img:1","app_id":"A-WEB"}"#,
            422,
            "app_id_mismatch",
        ),
        (
            r#"{"image_ref":"img:1","tenant_id":"b"}"#,
            422,
            "tenant_mismatch",
        ),
        (
            r#"{"image_ref":"img:1","tenant_id":"nope"}"#,
            422,
            "tenant_mismatch",
        ),
        (
            r#"{"image_ref":"img:1","tenant_id":"Not_A_Tenant"}"#,
            400,
            "invalid_tenant_id",
        ),
        (r#"{"image_ref":""}"#, 400, "invalid_image_ref"),
        (r#"{"image_ref":"has space:1"}"#, 400, "invalid_image_ref"),
        (r#"{"image_ref":"img:1\n"}"#, 400, "invalid_image_ref"),
        (r#"{"image_ref":"img:\u0000"}"#, 400, "invalid_image_ref"),
        (long_image, 400, "invalid_image_ref"),
        (
            r#"{"image_ref":"img:1","replicas":-1}"#,
            400,
            "invalid_replicas",
        ),
        (
            r#"{"image_ref":"img:1","replicas":10001}"#,
            400,
            "invalid_replicas",
        ),
        (
            r#"{"image_ref":"img:1","replicas":4294967296}"#,
            400,
            "invalid_replicas",
        ),
        (r#"{"image_ref":"img:1","port":0}"#, 400, "invalid_port"),
        (r#"{"image_ref":"img:1","port":-1}"#, 400, "invalid_port"),
        (r#"{"image_ref":"img:1","port":65536}"#, 400, "invalid_port"),
        (r#"{"image_ref":"img:1","port":"80"}"#, 400, "wrong_type"),
    ];
    let mut cases = Vec::new();
    for (body, status, code) in bodies {
        cases.push(("POST", DEPLOY, Some(body), status, code));
        cases.push((
            "POST",
            "/v1/apps/a-web/deploys?dry_run=true",
            Some(body),
            status,
            code,
        ));
    }
    cases.push((
        "POST",
        "/v1/apps/nope/deploys",
        Some(r#"{"image_ref":"img:1"}"#),
        404,
        "app_not_found",
    ));
    expect_all(&server, &cases).await;
    assert_eq!(server.audit_seq().await, seq, "a refused deploy wrote");
    let history = server.admin("GET", DEPLOY, None).await.json();
    assert_eq!(history["deploys"], serde_json::json!([]));
    assert!(
        server.manifest("a-web").is_none(),
        "a refused deploy applied"
    );

    // The bounds themselves are accepted.
    for body in [
        r#"{"image_ref":"img:1","replicas":0,"port":1}"#,
        r#"{"image_ref":"img:1","replicas":10000,"port":65535,"tenant_id":"a","app_id":"a-web"}"#,
    ] {
        let answer = server.admin("POST", DEPLOY, Some(body)).await;
        assert_eq!(answer.status, 201, "{body}: {}", answer.text());
    }
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn unknown_routes_wrong_methods_and_content_types() {
    let server = server().await;
    let seq = server.audit_seq().await;
    for path in [
        "/",
        "/v1/nope",
        "/v1/tenants/",
        "/v1/tenants/a/",
        "/v1//tenants",
        "/v1/apps/a-web/deploys/d1/extra",
        "/v2/tenants",
        "/healthz/",
    ] {
        for token in [None, Some(server.admin_token.as_str())] {
            server
                .call("GET", path, token, None)
                .await
                .assert_problem(404, "route_not_found");
        }
    }
    for (method, path, allowed) in [
        ("PATCH", "/v1/tenants/a", "PUT, GET, DELETE"),
        ("POST", "/healthz", "GET"),
        ("DELETE", "/v1/tenants", "GET"),
        ("PUT", DEPLOY, "POST, GET"),
        ("GET", SECRET, "PUT, DELETE"),
        ("GET", VERIFY, "POST"),
    ] {
        let answer = server.admin(method, path, None).await;
        answer.assert_problem(405, "method_not_allowed");
        assert_eq!(answer.headers["allow"], allowed, "{method} {path}");
    }
    for content_type in [
        "text/plain",
        "application/xml",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        "",
    ] {
        let answer = put_labelled(&server, content_type).await;
        answer.assert_problem(415, "unsupported_media_type");
    }
    assert_eq!(server.audit_seq().await, seq, "a refused request wrote");
    for content_type in ["application/json; charset=utf-8", "Application/JSON"] {
        let answer = put_labelled(&server, content_type).await;
        assert_eq!(answer.status, 200, "{content_type}: {}", answer.text());
    }
    assert_still_serving(&server).await;
}

/// A value written to [`SECRET`] with the admin token, its body labelled
/// `content_type`.
async fn put_labelled(server: &TestServer, content_type: &str) -> Answer {
    let token = server.admin_token.clone();
    let labelled = [("content-type", content_type)];
    server
        .call_with(
            "PUT",
            SECRET,
            Some(&token),
            Some(r#"{"value":"v"}"#),
            &labelled,
        )
        .await
}

#[tokio::test]
async fn bad_query_parameters() {
    let server = server().await;
    let seq = server.audit_seq().await;
    let deploy = Some(r#"{"image_ref":"img:1"}"#);
    let mut cases = Vec::new();
    for query in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "limit=-1",
        "limit=",
        "after=x",
        "after=-1",
        "after=1.5",
        "after=",
    ] {
        let path: &'static str = format!("/v1/audit-events?{query}").leak();
        cases.push(("GET", path, None, 400, "invalid_query"));
    }
    for query in ["limit=0", "limit=501", "limit=ten"] {
        let path: &'static str = format!("{DEPLOY}?{query}").leak();
        cases.push(("GET", path, None, 400, "invalid_query"));
    }
    // Booleans are `true` or `false` only: `1` and an empty value used to
    // mean true although the error text said true|false (issue 13).
    for query in [
        "dry_run=maybe",
        "dry_run=TRUE",
        "dry_run=yes",
        "dry_run=2",
        "dry_run=1",
        "dry_run=0",
        "dry_run=",
        "dry_run",
    ] {
        let path: &'static str = format!("{DEPLOY}?{query}").leak();
        cases.push(("POST", path, deploy, 400, "invalid_query"));
    }
    expect_all(&server, &cases).await;
    assert_eq!(server.audit_seq().await, seq, "a refused request wrote");
    let answer = server
        .admin("POST", &format!("{DEPLOY}?dry_run=true"), deploy)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["dry_run"], true);
    assert_eq!(server.audit_seq().await, seq, "a dry run wrote");
    let answer = server
        .admin("POST", &format!("{DEPLOY}?dry_run=false"), deploy)
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text());
    assert_still_serving(&server).await;
}

/// Two `Authorization` headers answer 400 whichever comes first (the first
/// one used to win), before anything is read or written.
#[tokio::test]
async fn two_authorization_headers_are_refused() {
    let server = server().await;
    let seq = server.audit_seq().await;
    let admin = format!("Bearer {}", server.admin_token);
    for headers in [
        [
            ("authorization", admin.as_str()),
            ("authorization", "Bearer exs_000000000000_x"),
        ],
        [
            ("authorization", "Bearer exs_000000000000_x"),
            ("authorization", admin.as_str()),
        ],
        [
            ("authorization", admin.as_str()),
            ("authorization", admin.as_str()),
        ],
    ] {
        let answer = server
            .call_with("PUT", "/v1/tenants/dup", None, None, &headers)
            .await;
        let problem = answer.assert_problem(400, "duplicate_authorization");
        assert!(
            !problem.to_string().contains(&server.admin_token),
            "{problem}"
        );
    }
    assert_eq!(server.audit_seq().await, seq, "a refused request wrote");
    server
        .admin("GET", "/v1/tenants/dup", None)
        .await
        .assert_problem(404, "tenant_not_found");
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn an_idempotency_key_is_bound_to_its_body() {
    let server = server().await;
    let token = server.admin_token.clone();
    let deploy = |body: &'static str, key: &'static str| {
        let token = token.clone();
        let server = &server;
        async move {
            server
                .call_with(
                    "POST",
                    DEPLOY,
                    Some(&token),
                    Some(body),
                    &[("idempotency-key", key)],
                )
                .await
        }
    };
    let first = deploy(r#"{"image_ref":"img:1"}"#, "key-1").await;
    assert_eq!(first.status, 201, "{}", first.text());
    let deploy_id = first.json()["deploy_id"].clone();
    // A retry, even formatted differently, returns the original deploy.
    for body in [
        r#"{"image_ref":"img:1"}"#,
        "{ \"image_ref\" : \"img:1\" }\n",
    ] {
        let again = deploy(body, "key-1").await;
        assert_eq!(again.status, 201, "{}", again.text());
        assert_eq!(again.json()["deploy_id"], deploy_id);
    }
    let seq = server.audit_seq().await;
    for body in [
        r#"{"image_ref":"img:2"}"#,
        r#"{"image_ref":"img:1","replicas":1}"#,
        r#"{"image_ref":"img:1","tenant_id":"a"}"#,
    ] {
        deploy(body, "key-1")
            .await
            .assert_problem(422, "idempotency_key_reused");
    }
    let long: &'static str = "k".repeat(256).leak();
    for key in [long, "has space", "tab\there"] {
        deploy(r#"{"image_ref":"img:1"}"#, key)
            .await
            .assert_problem(400, "invalid_idempotency_key");
    }
    assert_eq!(server.audit_seq().await, seq, "a refused deploy wrote");
    let history = server.admin("GET", DEPLOY, None).await.json();
    assert_eq!(history["deploys"].as_array().unwrap().len(), 1);
    assert_still_serving(&server).await;
}

#[tokio::test]
async fn error_answers_never_echo_a_submitted_value() {
    // Lowercase and dashes: it passes as a tenant or app id too, so no
    // validation step stands between it and an error message.
    const SECRET_VALUE: &str = "sk-live-0d5e7c1b9a2f4e68";
    let server = server().await;
    let fill = |template: &str| template.replace("$S", SECRET_VALUE);
    let cases = [
        (
            "PUT",
            SECRET,
            r#"{"value":"$S","port":"$S"}"#,
            400,
            "unknown_field",
        ),
        ("PUT", SECRET, r#"{"value":["$S"]}"#, 400, "wrong_type"),
        (
            "PUT",
            SECRET,
            r#"{"value":"$S\u0000"}"#,
            400,
            "invalid_value",
        ),
        ("PUT", SECRET, r#"{"value":"$S""#, 400, "malformed_json"),
        ("PUT", SECRET, r#"{"value":"$S",}"#, 400, "malformed_json"),
        (
            "PUT",
            SECRET,
            r#"{"value":"x","value":"$S"}"#,
            400,
            "duplicate_field",
        ),
        (
            "PUT",
            "/v1/tenants/a/external-secrets/Bad/KEY",
            r#"{"value":"$S"}"#,
            400,
            "invalid_provider",
        ),
        (
            "POST",
            VERIFY,
            r#"{"value":"$S","x":1}"#,
            400,
            "unknown_field",
        ),
        (
            "POST",
            DEPLOY,
            r#"{"image_ref":"img:1","port":"$S"}"#,
            400,
            "wrong_type",
        ),
        (
            "POST",
            DEPLOY,
            r#"{"image_ref":"img:1","replicas":"$S"}"#,
            400,
            "wrong_type",
        ),
        (
            "POST",
            DEPLOY,
            r#"{"image_ref":"img:1","port":"x, expected $S"}"#,
            400,
            "wrong_type",
        ),
        (
            "POST",
            DEPLOY,
            r#"{"image_ref":"img:1","port":"x, expected $S at line 1 column 2"}"#,
            400,
            "wrong_type",
        ),
        (
            "POST",
            DEPLOY,
            r#"{"image_ref":"img:1","app_id":"$S"}"#,
            422,
            "app_id_mismatch",
        ),
        (
            "POST",
            DEPLOY,
            r#"{"image_ref":"img:1","tenant_id":"$S"}"#,
            422,
            "tenant_mismatch",
        ),
        (
            "POST",
            DEPLOY,
            r#"{"image_ref":"$S with space"}"#,
            400,
            "invalid_image_ref",
        ),
        (
            "POST",
            DEPLOY,
            r#"{"image_ref":"img:1","value":"$S"}"#,
            400,
            "unknown_field",
        ),
        (
            "PUT",
            "/v1/apps/new-app",
            r#"{"tenant_id":"$S"}"#,
            404,
            "tenant_not_found",
        ),
        (
            "PUT",
            "/v1/apps/new-app",
            r#"{"tenant_id":"a","required_env":["$S"]}"#,
            400,
            "invalid_key",
        ),
        (
            "POST",
            "/v1/tenants/a/tokens",
            r#"{"label":"$S"}"#,
            400,
            "unknown_field",
        ),
    ];
    for (method, path, template, status, code) in cases {
        let body = fill(template);
        let answer = server.admin(method, path, Some(&body)).await;
        answer.assert_problem(status, code);
        assert!(
            !answer.text().contains(SECRET_VALUE),
            "{method} {path} {body} echoed the value: {}",
            answer.text()
        );
        assert!(
            !format!("{:?}", answer.headers).contains(SECRET_VALUE),
            "{:?}",
            answer.headers
        );
    }
    let bearer = format!("Bearer {SECRET_VALUE}");
    for path in ["/v1/tenants", "/v1/tenants/a"] {
        let answer = server
            .call_with("GET", path, None, None, &[("authorization", &bearer)])
            .await;
        answer.assert_problem(401, "unauthenticated");
        assert!(!answer.text().contains(SECRET_VALUE));
    }
    for path in [
        format!("{DEPLOY}?dry_run={SECRET_VALUE}"),
        format!("/v1/audit-events?limit={SECRET_VALUE}"),
        format!("/v1/audit-events?after={SECRET_VALUE}"),
    ] {
        let method = if path.starts_with(DEPLOY) {
            "POST"
        } else {
            "GET"
        };
        let answer = server
            .admin(method, &path, Some(r#"{"image_ref":"img:1"}"#))
            .await;
        answer.assert_problem(400, "invalid_query");
        assert!(!answer.text().contains(SECRET_VALUE));
    }
    assert_still_serving(&server).await;
}

/// A query parameter the route does not declare is refused, naming what the
/// route takes; a name that could be a pasted value is not echoed.
#[tokio::test]
async fn unknown_query_parameters_are_refused() {
    let server = server().await;
    expect_all(
        &server,
        &[
            ("GET", "/v1/audit-events?limt=5", None, 400, "invalid_query"),
            ("GET", "/v1/tenants?x=1", None, 400, "invalid_query"),
            (
                "PUT",
                "/v1/tenants/c?force=true",
                None,
                400,
                "invalid_query",
            ),
        ],
    )
    .await;
    let typo = server.admin("GET", "/v1/audit-events?limt=5", None).await;
    let detail = typo.json()["detail"].as_str().unwrap().to_owned();
    assert!(
        detail.contains("`limt`") && detail.contains("limit"),
        "{detail}"
    );
    let none = server.admin("GET", "/v1/tenants?x=1", None).await;
    assert!(none.text().contains("takes none"), "{}", none.text());
    let pasted = server
        .admin("GET", "/v1/tenants?sk-live-0123456789=1", None)
        .await;
    pasted.assert_problem(400, "invalid_query");
    assert!(!pasted.text().contains("sk-live"), "{}", pasted.text());
    // Nothing was created by the refused PUT; declared parameters still work.
    assert_eq!(server.admin("GET", "/v1/tenants/c", None).await.status, 404);
    assert_eq!(
        server
            .admin("GET", "/v1/audit-events?limit=5&after=0", None)
            .await
            .status,
        200
    );
}
