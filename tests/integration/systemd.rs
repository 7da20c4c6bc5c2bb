//! `exsec serve` under systemd's notify protocol, as `Type=notify` in
//! `packaging/systemd/exsec.service` relies on: a fake `NOTIFY_SOCKET`
//! (a datagram socket bound here) must receive `READY=1` only once the API
//! accepts connections, and `STOPPING=1` on SIGTERM; SIGHUP (the unit's
//! `ExecReload=`) re-reads the admin token, refusing one that is too short
//! or readable by others and keeping the old one then.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::daemon::{Daemon, PATIENCE, write_config};

#[test]
fn ready_is_sent_once_the_listener_accepts_and_stopping_on_sigterm() {
    let mut unit = Notified::start();

    let ready = unit.next_notification();
    assert_eq!(ready, "READY=1");
    // No retry: the first connection after READY=1 must be served.
    let addr = unit.daemon.listen_addr();
    let answer = http_get(addr, "/healthz", None);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    unit.daemon.signal("TERM");
    assert_eq!(unit.next_notification(), "STOPPING=1");
    let status = unit.daemon.wait();
    assert!(status.success(), "exsec exited with {status}");
}

#[test]
fn sighup_rereads_the_admin_token() {
    let mut unit = Notified::start();
    assert_eq!(unit.next_notification(), "READY=1");
    let addr = unit.daemon.listen_addr();
    let token_file = unit.dir.path().join("admin.token");
    let old_token = std::fs::read_to_string(&token_file).unwrap();
    let old_token = old_token.trim();
    assert!(http_get(addr, "/v1/tenants", Some(old_token)).starts_with("HTTP/1.1 200"));

    // Refused on SIGHUP: 31 characters, then a file others may read.
    let short = "a-new-admin-token-but-too-short";
    std::fs::write(&token_file, format!("{short}\n")).unwrap();
    unit.daemon.signal("HUP");
    let refused = unit
        .daemon
        .wait_for_line(|line| line.contains("admin token reload failed"));
    assert!(refused.contains("at least 32"), "{refused}");
    assert!(
        !refused.contains(short),
        "the token must not be logged: {refused}"
    );
    let new_token = "a-new-admin-token-for-the-test-of-40-chars";
    std::fs::write(&token_file, format!("{new_token}\n")).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    unit.daemon.signal("HUP");
    let refused = unit
        .daemon
        .wait_for_line(|line| line.contains("admin token reload failed"));
    assert!(refused.contains("0644"), "{refused}");
    assert!(http_get(addr, "/v1/tenants", Some(old_token)).starts_with("HTTP/1.1 200"));
    assert!(http_get(addr, "/v1/tenants", Some(new_token)).starts_with("HTTP/1.1 401"));

    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    unit.daemon.signal("HUP");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let answer = http_get(addr, "/v1/tenants", Some(new_token));
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "new token refused: {answer}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let answer = http_get(addr, "/v1/tenants", Some(old_token));
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");

    unit.daemon.signal("TERM");
    assert_eq!(unit.next_notification(), "STOPPING=1");
    assert!(unit.daemon.wait().success());
}

/// An `exsec serve` child with its directory and notify socket.
struct Notified {
    dir: tempfile::TempDir,
    notify: UnixDatagram,
    daemon: Daemon,
}

impl Notified {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path());
        let socket_path = dir.path().join("notify.sock");
        let notify = UnixDatagram::bind(&socket_path).unwrap();
        notify.set_read_timeout(Some(PATIENCE)).unwrap();
        let daemon = Daemon::start(&config, &[("NOTIFY_SOCKET", &socket_path)]);
        Self {
            dir,
            notify,
            daemon,
        }
    }

    /// The next datagram on the notify socket.
    fn next_notification(&self) -> String {
        let mut buffer = [0u8; 4096];
        let len = self
            .notify
            .recv(&mut buffer)
            .unwrap_or_else(|e| panic!("no notification within {PATIENCE:?}: {e}"));
        String::from_utf8(buffer[..len].to_vec()).unwrap()
    }
}

/// One HTTP/1.1 GET on a fresh connection; the whole answer as text.
fn http_get(addr: SocketAddr, path: &str, token: Option<&str>) -> String {
    let mut stream =
        TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr} failed: {e}"));
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let authorization = token
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{authorization}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}
