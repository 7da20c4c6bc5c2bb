//! Fault knobs seen through kube-rs, including what kube 5's default retry layer does
//! with each failure, and the binary's HTTP control API.

use std::process::Stdio;
use std::time::{Duration, Instant};

use kube::api::{Patch, PatchParams};
use kube_standin::{ChaosFault, ChaosRule, DropRule, FailRule, HangRule, Kind};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

use crate::harness::{Cluster, NAMESPACE, client_for, deployment, secret};

fn exsec() -> PatchParams {
    PatchParams::apply("exsec").force()
}

#[tokio::test]
async fn a_500_fails_the_request_and_is_not_retried() {
    let cluster = Cluster::start().await;
    cluster.standin.faults().fail(FailRule::new(500));
    let error = cluster
        .secrets()
        .patch("s", &exsec(), &Patch::Apply(secret("s", &[("A", "1")])))
        .await
        .expect_err("injected 500");
    let kube::Error::Api(status) = error else {
        panic!("expected an API error, got {error:?}")
    };
    assert_eq!(
        (status.code, status.reason.as_str()),
        (500, "InternalError")
    );
    assert_eq!(
        cluster.count("PATCH", "/secrets/s"),
        1,
        "kube 5 does not retry a 500"
    );
    cluster
        .secrets()
        .patch("s", &exsec(), &Patch::Apply(secret("s", &[("A", "1")])))
        .await
        .expect("the next request succeeds");
}

/// kube 5's client retries 429, 503 and 504 by default (up to 15 times, exponential
/// backoff from 5 ms) and waits for `Retry-After` when it is longer than its backoff.
#[tokio::test]
async fn a_429_with_retry_after_is_retried_by_kube_after_the_delay() {
    let cluster = Cluster::start().await;
    cluster
        .standin
        .faults()
        .fail(FailRule::new(429).retry_after(1).method("PATCH"));
    let started = Instant::now();
    cluster
        .secrets()
        .patch("s", &exsec(), &Patch::Apply(secret("s", &[("A", "1")])))
        .await
        .expect("kube retries the 429 and succeeds");
    let elapsed = started.elapsed();
    assert_eq!(cluster.count("PATCH", "/secrets/s"), 2);
    assert!(
        elapsed >= Duration::from_millis(950),
        "Retry-After honoured: {elapsed:?}"
    );
    println!("429 + Retry-After: 1 → success after {elapsed:?} with 2 PATCH requests");
}

#[tokio::test]
async fn repeated_503s_are_retried_with_backoff() {
    let cluster = Cluster::start().await;
    cluster.standin.faults().fail(FailRule::new(503).times(3));
    let started = Instant::now();
    let fetched = cluster
        .secrets()
        .get_opt("s")
        .await
        .expect("kube retries 503s and succeeds");
    assert!(fetched.is_none());
    assert_eq!(cluster.count("GET", "/secrets/s"), 4);
    println!(
        "3 × 503 without Retry-After → success after {:?} with 4 GET requests",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_dropped_connection_is_an_error_not_a_success() {
    let cluster = Cluster::start().await;
    cluster
        .standin
        .faults()
        .drop_connections(DropRule::next(1).method("PATCH"));
    let error = cluster
        .secrets()
        .patch("s", &exsec(), &Patch::Apply(secret("s", &[("A", "1")])))
        .await
        .expect_err("dropped connection");
    assert!(
        !matches!(error, kube::Error::Api(_)),
        "not an API answer: {error:?}"
    );
    println!("dropped connection → {error}");
    assert!(
        cluster
            .standin
            .object(Kind::Secret, NAMESPACE, "s")
            .is_none(),
        "nothing was applied"
    );
    assert_eq!(
        cluster.count("PATCH", "/secrets/s"),
        1,
        "kube does not retry a dropped connection"
    );
    cluster
        .secrets()
        .patch("s", &exsec(), &Patch::Apply(secret("s", &[("A", "1")])))
        .await
        .expect("the next request succeeds");
}

#[tokio::test]
async fn a_lost_answer_still_applies() {
    let cluster = Cluster::start().await;
    cluster
        .standin
        .faults()
        .drop_connections(DropRule::next(1).after_processing());
    cluster
        .secrets()
        .patch("s", &exsec(), &Patch::Apply(secret("s", &[("A", "1")])))
        .await
        .expect_err("the answer was lost");
    assert!(
        cluster
            .standin
            .object(Kind::Secret, NAMESPACE, "s")
            .is_some(),
        "but the apply happened"
    );
}

#[tokio::test]
async fn the_latency_knob_delays_every_request() {
    let cluster = Cluster::start().await;
    cluster
        .standin
        .faults()
        .set_latency(Duration::from_millis(150));
    let started = Instant::now();
    cluster.secrets().get_opt("s").await.expect("get");
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
    cluster.standin.faults().set_latency(Duration::ZERO);
    assert_eq!(cluster.standin.faults().state().latency_ms, 0);
}

#[tokio::test]
async fn a_hang_holds_requests_until_cleared() {
    let cluster = Cluster::start().await;
    cluster
        .standin
        .faults()
        .hang(HangRule::all().path_contains("/secrets/"));
    let secrets = cluster.secrets();
    let seen = cluster.standin.requests_total();
    let pending = tokio::spawn(async move { secrets.get_opt("s").await });
    cluster.standin.wait_for_requests(seen + 1).await;
    // A generous bound: this only shows other requests are not held.
    let timed_out =
        tokio::time::timeout(Duration::from_secs(10), cluster.deployments().get_opt("s")).await;
    assert!(
        timed_out.is_ok(),
        "requests the rule does not match are answered"
    );
    let hung =
        tokio::time::timeout(Duration::from_millis(100), cluster.secrets().get_opt("t")).await;
    assert!(hung.is_err(), "a matching request is held");
    assert!(!pending.is_finished());
    cluster.standin.faults().clear();
    let answered = pending.await.expect("task").expect("answered once cleared");
    assert!(answered.is_none());
}

#[tokio::test]
async fn stalled_rollouts_leave_the_status_behind() {
    let cluster = Cluster::start().await;
    let deployments = cluster.deployments();
    deployments
        .patch(
            "web",
            &exsec(),
            &Patch::Apply(deployment("web", "img:1", None)),
        )
        .await
        .expect("apply");
    cluster.standin.faults().stall_rollouts(true);
    let stalled = deployments
        .patch(
            "web",
            &exsec(),
            &Patch::Apply(deployment("web", "img:2", None)),
        )
        .await
        .expect("apply while stalled");
    assert_eq!(stalled.metadata.generation, Some(2));
    assert_eq!(
        stalled.status.and_then(|status| status.observed_generation),
        Some(1),
        "not rolled out"
    );
    let fresh = deployments
        .patch(
            "new",
            &exsec(),
            &Patch::Apply(deployment("new", "img:1", None)),
        )
        .await
        .expect("create while stalled");
    assert!(fresh.status.is_none(), "a new deployment has no status yet");
    cluster.standin.faults().stall_rollouts(false);
    let resumed = deployments.get("web").await.expect("get");
    assert_eq!(
        resumed.status.and_then(|status| status.observed_generation),
        Some(2)
    );
    let resumed = deployments.get("new").await.expect("get");
    assert_eq!(
        resumed.status.and_then(|status| status.available_replicas),
        Some(1)
    );
}

#[tokio::test]
async fn faults_can_be_set_over_http() {
    let cluster = Cluster::start().await;
    let address = cluster.standin.addr();
    let spec = json!({"fail": {"status": 503, "count": 2, "retry_after_seconds": 0, "path_contains": "/secrets/"}, "latency_ms": 1});
    let (code, state) = http(address, "POST", "/_standin/faults", Some(&spec)).await;
    assert_eq!(code, 200);
    assert_eq!(state["fail"][0]["count"], 2);
    assert_eq!(state["latency_ms"], 1);
    let (code, _) = http(
        address,
        "GET",
        "/api/v1/namespaces/paas-apps/secrets/s",
        None,
    )
    .await;
    assert_eq!(code, 503);
    let (_, state) = http(address, "GET", "/_standin/faults", None).await;
    assert_eq!(state["fail"][0]["count"], 1);
    let (code, state) = http(address, "POST", "/_standin/reset", None).await;
    assert_eq!(
        (code, state["fail"].clone(), state["latency_ms"].clone()),
        (200, json!([]), json!(0))
    );
    let (code, _) = http(
        address,
        "POST",
        "/_standin/faults",
        Some(&json!({"fial": {}})),
    )
    .await;
    assert_eq!(code, 400);
    let (_, log) = http(address, "GET", "/_standin/requests", None).await;
    assert_eq!(
        log["requests"][0]["path"],
        "/api/v1/namespaces/paas-apps/secrets/s"
    );
}

/// Chaos: a seeded share of requests fails with every kind of fault; the answer a client
/// gets is never a success for a write that did not happen, and a slow or lost answer
/// may hide a write that did. Counts by kind are reported.
#[tokio::test]
async fn chaos_fails_a_share_of_requests_with_every_kind_of_fault() {
    let cluster = Cluster::start().await;
    cluster.standin.faults().chaos(
        ChaosRule::new(40)
            .seed(11)
            .retry_after(0)
            .slow(Duration::from_millis(20))
            .method("PATCH"),
    );
    let mut answered_ok = 0;
    for n in 0..150 {
        let value = format!("v{n}");
        let applied = cluster
            .secrets()
            .patch(
                "s",
                &exsec(),
                &Patch::Apply(secret("s", &[("A", value.as_str())])),
            )
            .await;
        let stored = cluster.standin.object(Kind::Secret, NAMESPACE, "s");
        let stored_value = stored
            .as_ref()
            .and_then(|s| s["data"]["A"].as_str().map(str::to_owned));
        if applied.is_ok() {
            answered_ok += 1;
            let expected = base64_of(&value);
            assert_eq!(
                stored_value.as_deref(),
                Some(expected.as_str()),
                "apply {n}"
            );
        }
    }
    let state = cluster.standin.faults().state();
    let injected: u64 = state.chaos_injected.values().sum();
    for kind in ChaosFault::ALL {
        assert!(
            state
                .chaos_injected
                .get(kind.as_str())
                .copied()
                .unwrap_or(0)
                > 0,
            "{kind:?} never drawn: {:?}",
            state.chaos_injected
        );
    }
    assert!(injected > 30, "{injected}");
    assert!(answered_ok > 75, "{answered_ok} of 150 answered");
    // GETs are not subject to a PATCH-only rule.
    for _ in 0..20 {
        cluster.secrets().get("s").await.expect("reads are spared");
    }
    cluster.standin.faults().clear();
    assert_eq!(cluster.standin.faults().state().chaos, None);
}

#[tokio::test]
async fn chaos_is_set_and_turned_off_over_http() {
    let cluster = Cluster::start().await;
    let address = cluster.standin.addr();
    let spec = json!({"chaos": {"percent": 100, "seed": 5, "faults": ["too_many_requests"], "retry_after_seconds": 7}});
    let (code, state) = http(address, "POST", "/_standin/faults", Some(&spec)).await;
    assert_eq!(code, 200, "{state}");
    assert_eq!(state["chaos"]["percent"], 100);
    let (code, _) = http(
        address,
        "GET",
        "/api/v1/namespaces/paas-apps/secrets/s",
        None,
    )
    .await;
    assert_eq!(code, 429);
    let (_, state) = http(address, "GET", "/_standin/faults", None).await;
    assert_eq!(state["chaos_injected"]["too_many_requests"], 1);
    let off = json!({"chaos": {"percent": 0}});
    let (_, state) = http(address, "POST", "/_standin/faults", Some(&off)).await;
    assert!(state.get("chaos").is_none(), "{state}");
    let (code, _) = http(
        address,
        "GET",
        "/api/v1/namespaces/paas-apps/secrets/s",
        None,
    )
    .await;
    assert_eq!(code, 404);
}

fn base64_of(value: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(value)
}

/// The binary: starts, prints its address, writes a kubeconfig kube-rs can use, serves,
/// and exits cleanly on SIGTERM.
#[tokio::test]
async fn the_binary_serves_until_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("kubeconfig");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kube-standin"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--namespace",
            NAMESPACE,
            "--create-namespace",
            NAMESPACE,
            "--kubeconfig",
        ])
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .await
        .expect("readiness line");
    assert!(
        line.starts_with("kube-standin listening on http://127.0.0.1:"),
        "{line}"
    );

    let client = client_for(&kubeconfig).await;
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::default_namespaced(client);
    let applied = secrets
        .patch("s", &exsec(), &Patch::Apply(secret("s", &[("A", "1")])))
        .await
        .expect("apply through the binary");
    assert_eq!(applied.metadata.namespace.as_deref(), Some(NAMESPACE));

    let pid = child.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = child.wait().await.expect("binary exits");
    assert!(status.success(), "{status:?}");
}

/// A minimal HTTP/1.1 exchange (one request, `Connection: close`).
async fn http(
    address: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status code");
    (code, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn shutdown_closes_the_listener() {
    let cluster = Cluster::start().await;
    let address = cluster.standin.addr();
    TcpStream::connect(address).await.expect("listening");
    cluster.standin.shutdown().await;
    assert!(
        TcpStream::connect(address).await.is_err(),
        "nothing listens after shutdown"
    );
}
