//! `exsec serve` as a child process, for tests that need what only a real
//! process gives: signals (SIGTERM, SIGHUP, SIGKILL in the middle of work)
//! and systemd's notify socket.
//!
//! The daemon logs JSON to stderr; a thread drains it (a full pipe would
//! stall the daemon under load) into a channel the test reads lines from
//! (the listen address, an anchor), and keeps the last lines for failure
//! messages.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Upper bound for the daemon to start, stop or react to a signal; generous
/// because CI shares two cores with the build.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Log lines kept for failure messages.
const KEPT_LINES: usize = 40;

/// A running `exsec serve --config <config>`.
pub struct Daemon {
    child: Child,
    /// Behind a mutex so that a `TestServer` holding a daemon is `Sync`.
    lines: Mutex<mpsc::Receiver<String>>,
    tail: Arc<Mutex<VecDeque<String>>>,
    /// The thread draining stderr; finished once the pipe closed.
    drain: std::thread::JoinHandle<()>,
}

impl Daemon {
    /// Starts the daemon with `config` (which must set `[log] format =
    /// "json"`) and extra environment variables.
    pub fn start(config: &Path, env: &[(&str, &Path)]) -> Daemon {
        let mut command = Command::new(binary());
        for (name, _) in std::env::vars() {
            if name.starts_with("EXSEC_") || name == "RUST_LOG" {
                command.env_remove(name);
            }
        }
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command
            .arg("serve")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (line_tx, lines) = mpsc::channel();
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let kept = tail.clone();
        let drain = std::thread::spawn(move || {
            for line in stderr.lines() {
                let Ok(line) = line else { return };
                {
                    let mut kept = kept.lock().unwrap();
                    if kept.len() == KEPT_LINES {
                        kept.pop_front();
                    }
                    kept.push_back(line.clone());
                }
                let _ = line_tx.send(line);
            }
        });
        Daemon {
            child,
            lines: Mutex::new(lines),
            tail,
            drain,
        }
    }

    /// The next log line (after those already read) that `wanted` accepts.
    pub fn wait_for_line(&self, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        let lines = self.lines.lock().unwrap();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if wanted(&line) => return line,
                Ok(_) => {}
                Err(error) => panic!(
                    "the awaited log line did not come within {PATIENCE:?} ({error}); log tail:\n{}",
                    self.log_tail()
                ),
            }
        }
    }

    /// The address the API listens on, from the `exsec listening` line
    /// (logged before the accept loop runs: a connect may wait in the
    /// backlog, never fail). Reads the log up to that line.
    pub fn listen_addr(&self) -> SocketAddr {
        self.try_listen_addr()
            .unwrap_or_else(|tail| panic!("exsec exited before listening; log tail:\n{tail}"))
    }

    /// Like [`Daemon::listen_addr`], with a daemon that exits before it
    /// listens (a start refused) as an error carrying its log tail.
    pub fn try_listen_addr(&self) -> Result<SocketAddr, String> {
        let deadline = Instant::now() + PATIENCE;
        let lines = self.lines.lock().unwrap();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.contains("exsec listening") => {
                    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
                    return Ok(event["fields"]["addr"].as_str().unwrap().parse().unwrap());
                }
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(self.log_tail()),
                Err(error) => panic!(
                    "exsec did not listen within {PATIENCE:?} ({error}); log tail:\n{}",
                    self.log_tail()
                ),
            }
        }
    }

    /// The process id (for `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last log lines, for failure messages.
    pub fn log_tail(&self) -> String {
        let kept = self.tail.lock().unwrap();
        kept.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Sends a signal by name (`TERM`, `HUP`, `KILL`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// SIGKILL: no shutdown, no flush, no drop — a power cut as far as the
    /// process is concerned. Returns once the process is gone.
    pub fn kill(mut self) {
        // SIGKILL; also fine if it is already dead.
        self.child.kill().unwrap();
        self.wait();
    }

    /// SIGTERM, and a clean exit within [`PATIENCE`].
    pub fn terminate(mut self) {
        self.signal("TERM");
        let status = self.wait();
        assert!(status.success(), "{status}; log tail:\n{}", self.log_tail());
    }

    /// Waits for the process to exit and for its log to be read to the end.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "exsec did not exit");
            std::thread::sleep(Duration::from_millis(10));
        };
        // The exit can come before the drain thread read the last lines:
        // the log is complete once it saw the pipe close.
        while !self.drain.is_finished() {
            assert!(Instant::now() < deadline, "exsec's stderr stayed open");
            std::thread::sleep(Duration::from_millis(1));
        }
        status
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `exsec` binary the daemon runs: `EXSEC_TEST_BINARY` if set (the
/// long campaigns run a release build under the debug test driver), else
/// the one cargo built for this test binary.
pub fn binary() -> std::path::PathBuf {
    std::env::var_os("EXSEC_TEST_BINARY")
        .map_or_else(|| env!("CARGO_BIN_EXE_exsec").into(), Into::into)
}

/// A minimal daemon config in `dir` (manifests target, JSON log to stderr,
/// every path relative to `dir`): `dir/config.toml`.
pub fn write_config(dir: &Path) -> std::path::PathBuf {
    write_config_with(dir, "listen = \"127.0.0.1:0\"")
}

/// Like [`write_config`], with `server` as the body of `[server]`.
pub fn write_config_with(dir: &Path, server: &str) -> std::path::PathBuf {
    let config = format!(
        r#"
[server]
{server}
[storage]
path = "exsec.redb"
cache_size = "4MiB"
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
"#
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, config).unwrap();
    path
}
