//! The listeners beside TLS (SPEC §11.1): the local socket (same routes,
//! same bearer auth, mode 0660, a stale socket replaced, a live one or a
//! regular file refused, removed at shutdown) and `server.max_connections`
//! (connections beyond the cap wait, and are served once others close).

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use tokio::net::{TcpStream, UnixStream};

use crate::harness::eventually;
use crate::operator::exsec;
use crate::server::{Answer, Options, TestServer, exchange};

fn with_socket(socket: &Path) -> Options {
    Options {
        server_config: format!("unix_socket = {:?}\n", socket.display().to_string()),
        ..Options::default()
    }
}

async fn over_socket(socket: &Path, method: &str, path: &str, token: Option<&str>) -> Answer {
    let stream = UnixStream::connect(socket).await.unwrap();
    exchange(stream, method, path, token, None, &[])
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_local_socket_serves_the_same_routes_with_the_same_auth() {
    let run = tempfile::tempdir().unwrap();
    let socket = run.path().join("run/exsec.sock");
    let server = TestServer::start_with(with_socket(&socket)).await;
    let metadata = std::fs::symlink_metadata(&socket).unwrap();
    assert!(metadata.file_type().is_socket());
    assert_eq!(metadata.permissions().mode() & 0o777, 0o660);
    assert_eq!(
        server.server.as_ref().unwrap().unix_socket(),
        Some(socket.as_path())
    );

    assert_eq!(
        over_socket(&socket, "GET", "/healthz", None).await.status,
        200
    );
    over_socket(&socket, "GET", "/v1/tenants", None)
        .await
        .assert_problem(401, "unauthenticated");
    over_socket(&socket, "GET", "/v1/tenants", Some("exs_nope_nope"))
        .await
        .assert_problem(401, "unauthenticated");
    let token = server.admin_token.clone();
    assert_eq!(
        over_socket(&socket, "PUT", "/v1/tenants/acme", Some(&token))
            .await
            .status,
        201
    );
    // One store behind both listeners.
    let listed = server.admin("GET", "/v1/tenants", None).await.json();
    assert_eq!(listed["tenants"][0]["tenant_id"], "acme", "{listed}");

    // The CLI over the socket, with a tenant token: its tenant only.
    let tenant_token = server.mint("acme").await;
    let url = format!("unix:{}", socket.display());
    let run_cli = exsec(
        None,
        Some(&tenant_token),
        &["--url", &url, "-o", "json", "tenants", "list"],
        None,
    )
    .await;
    run_cli.expect(0);
    run_cli.stdout_has("acme");
    exsec(
        None,
        Some(&tenant_token),
        &["--url", &url, "tenants", "create", "other"],
        None,
    )
    .await
    .expect(3);

    server.stop().await;
    assert!(!socket.exists(), "the socket is removed at shutdown");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_socket_is_replaced_and_a_live_one_or_a_file_refused() {
    let run = tempfile::tempdir().unwrap();
    let socket = run.path().join("exsec.sock");
    // What a crash leaves: a socket file nobody listens on.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let server = TestServer::start_with(with_socket(&socket)).await;
    assert_eq!(
        over_socket(&socket, "GET", "/healthz", None).await.status,
        200
    );

    // A second daemon on the same socket while the first serves.
    let refused = start_error(&socket).await;
    assert!(
        matches!(refused, exsec::app::StartError::UnixSocketInUse { .. }),
        "{refused}"
    );
    assert!(refused.to_string().contains("is exsec already running?"));
    assert_eq!(
        over_socket(&socket, "GET", "/healthz", None).await.status,
        200
    );
    server.stop().await;

    std::fs::write(&socket, "not a socket").unwrap();
    let refused = start_error(&socket).await;
    assert!(
        matches!(refused, exsec::app::StartError::NotASocket { .. }),
        "{refused}"
    );
    assert_eq!(std::fs::read_to_string(&socket).unwrap(), "not a socket");
}

/// Why a daemon of its own directory, with `socket`, does not start.
async fn start_error(socket: &Path) -> exsec::app::StartError {
    let dir = tempfile::tempdir().unwrap();
    let path = crate::daemon::write_config_with(
        dir.path(),
        &format!(
            "listen = \"127.0.0.1:0\"\nunix_socket = {:?}",
            socket.display().to_string()
        ),
    );
    let config = exsec::config::Config::load(&path).unwrap();
    match exsec::app::start(&config, None).await {
        Ok(_) => panic!("started with {}", socket.display()),
        Err(error) => error,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_the_cap_wait_and_are_served_once_others_close() {
    const CAP: usize = 8;
    let server = TestServer::start_with(Options {
        server_config: format!("max_connections = {CAP}\n"),
        ..Options::default()
    })
    .await;
    // Idle connections that never send a byte: the cap plus 50.
    let mut idle = Vec::new();
    for _ in 0..CAP + 50 {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // A real request behind them is not served while they hold the cap.
    let token = server.admin_token.clone();
    let addr = server.addr;
    let waiting = tokio::spawn(async move {
        let stream = TcpStream::connect(addr).await.unwrap();
        exchange(stream, "GET", "/v1/tenants", Some(&token), None, &[]).await
    });
    let early = tokio::time::timeout(Duration::from_millis(300), async {
        while !waiting.is_finished() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(early.is_err(), "served beyond max_connections");

    drop(idle);
    let answer = tokio::time::timeout(crate::daemon::PATIENCE, waiting)
        .await
        .expect("served once the idle connections closed")
        .unwrap()
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());

    let metrics = eventually("the waits are counted", || async {
        let text = server.admin("GET", "/metrics", None).await.text();
        let waits = metric(&text, "exsec_http_connection_waits_total");
        if waits >= 1 {
            Ok(text)
        } else {
            Err(format!("waits {waits}"))
        }
    })
    .await;
    assert_eq!(metric(&metrics, "exsec_http_connections_max"), CAP as u64);
    let open = metric(&metrics, "exsec_http_connections_open");
    assert!((1..=CAP as u64).contains(&open), "{open}");
    server.stop().await;
}

/// The value of an unlabelled series.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
}
