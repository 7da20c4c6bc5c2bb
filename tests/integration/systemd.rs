//! `exsec serve` under systemd's notify protocol, as `Type=notify` in
//! `packaging/systemd/exsec.service` relies on: a fake `NOTIFY_SOCKET`
//! (a datagram socket bound here) must receive `READY=1` only once the API
//! accepts connections, and `STOPPING=1` on SIGTERM; SIGHUP (the unit's
//! `ExecReload=`) re-reads the admin token.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::{Duration, Instant};

/// Upper bound for the daemon to start, stop or react to a signal; generous
/// because CI shares two cores with the build.
const PATIENCE: Duration = Duration::from_secs(30);

#[test]
fn ready_is_sent_once_the_listener_accepts_and_stopping_on_sigterm() {
    let mut daemon = Daemon::start();

    let ready = daemon.next_notification();
    assert_eq!(ready, "READY=1");
    // No retry: the first connection after READY=1 must be served.
    let addr = daemon.listen_addr();
    let answer = http_get(addr, "/healthz", None);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    daemon.signal("TERM");
    assert_eq!(daemon.next_notification(), "STOPPING=1");
    let status = daemon.wait();
    assert!(status.success(), "exsec exited with {status}");
}

#[test]
fn sighup_rereads_the_admin_token() {
    let mut daemon = Daemon::start();
    assert_eq!(daemon.next_notification(), "READY=1");
    let addr = daemon.listen_addr();
    let token_file = daemon.dir.path().join("admin.token");
    let old_token = std::fs::read_to_string(&token_file).unwrap();
    let old_token = old_token.trim();
    assert!(http_get(addr, "/v1/tenants", Some(old_token)).starts_with("HTTP/1.1 200"));

    std::fs::write(&token_file, "a-new-admin-token-for-the-test\n").unwrap();
    daemon.signal("HUP");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let answer = http_get(addr, "/v1/tenants", Some("a-new-admin-token-for-the-test"));
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "new token refused: {answer}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let answer = http_get(addr, "/v1/tenants", Some(old_token));
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");

    daemon.signal("TERM");
    assert_eq!(daemon.next_notification(), "STOPPING=1");
    assert!(daemon.wait().success());
}

/// An `exsec serve` child with its directory and notify socket.
struct Daemon {
    dir: tempfile::TempDir,
    notify: UnixDatagram,
    child: Child,
    stderr: BufReader<ChildStderr>,
}

impl Daemon {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        write_config(dir.path());
        let socket_path = dir.path().join("notify.sock");
        let notify = UnixDatagram::bind(&socket_path).unwrap();
        notify.set_read_timeout(Some(PATIENCE)).unwrap();

        let mut command = Command::new(env!("CARGO_BIN_EXE_exsec"));
        for (name, _) in std::env::vars() {
            if name.starts_with("EXSEC_") || name == "RUST_LOG" {
                command.env_remove(name);
            }
        }
        let mut child = command
            .arg("serve")
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .env("NOTIFY_SOCKET", &socket_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        Self {
            dir,
            notify,
            child,
            stderr,
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

    /// The bound address, from the JSON log line `start` writes before it
    /// returns (so it is in the pipe once READY=1 has arrived).
    fn listen_addr(&mut self) -> SocketAddr {
        let mut line = String::new();
        loop {
            line.clear();
            let read = self.stderr.read_line(&mut line).unwrap();
            assert!(read > 0, "exsec closed stderr before logging its address");
            let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if event["fields"]["message"] == "exsec listening" {
                return event["fields"]["addr"].as_str().unwrap().parse().unwrap();
            }
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "exsec did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(dir: &Path) {
    let config = r#"
[server]
listen = "127.0.0.1:0"
[storage]
path = "exsec.redb"
[keys]
dir = "keys.d"
[auth]
admin_token_file = "admin.token"
[cluster]
target = "manifests"
[manifests]
dir = "manifests"
[log]
format = "json"
"#;
    std::fs::write(dir.join("config.toml"), config).unwrap();
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
