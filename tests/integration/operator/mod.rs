//! The operator tooling driven as a person would: the `exsec` binary as a
//! separate process, talking over loopback to a real server started by
//! [`TestServer`] in this process, with real standard input.
//!
//! `cli_flow` covers the client commands and exit codes, `doctor` each
//! troubleshooting row, `backup` backups under write load and restores,
//! `audit` chain verification online, offline, with anchors and retention.

mod audit;
mod backup;
mod cli_flow;
mod doctor;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::server::TestServer;

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Standard output as JSON (panics with both streams if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// Asserts the exit code, showing both streams when it differs.
    #[track_caller]
    pub fn expect(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "{self:?}");
        self
    }

    /// Asserts standard output holds `text`, showing both streams when
    /// it does not.
    #[track_caller]
    pub fn stdout_has(&self, text: &str) -> &Self {
        self.stream_has("stdout", &self.stdout, text)
    }

    /// Asserts standard error holds `text`, likewise.
    #[track_caller]
    pub fn stderr_has(&self, text: &str) -> &Self {
        self.stream_has("stderr", &self.stderr, text)
    }

    #[track_caller]
    fn stream_has(&self, name: &str, stream: &str, text: &str) -> &Self {
        assert!(stream.contains(text), "no {text:?} on {name}: {self:?}");
        self
    }

    /// Both streams, for "never printed" checks.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// `exsec ARGS` with the user's `EXSEC_*` cleared, `EXSEC_URL` pointing at
/// `server` (if any), `EXSEC_TOKEN` set to `token` (if any), and `stdin`
/// piped (or empty). Runs on the blocking pool so the in-process server
/// keeps serving.
pub async fn exsec(
    server: Option<&TestServer>,
    token: Option<&str>,
    args: &[&str],
    stdin: Option<&str>,
) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_exsec"));
    for (name, _) in std::env::vars() {
        if name.starts_with("EXSEC_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    if let Some(server) = server {
        command.env("EXSEC_URL", format!("http://{}", server.addr));
    }
    if let Some(token) = token {
        command.env("EXSEC_TOKEN", token);
    }
    command
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let input = stdin.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().unwrap();
        if let Some(input) = input {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(input.as_bytes()).unwrap();
        }
        let output = child.wait_with_output().unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

/// `exsec audit verify --db FILE [extra…]`: offline, without a daemon.
pub async fn verify_offline(db: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["audit", "verify", "--db", db.to_str().unwrap()];
    args.extend_from_slice(extra);
    exsec(None, None, &args, None).await
}

/// `exsec ARGS` as the admin of `server`.
pub async fn admin(server: &TestServer, args: &[&str], stdin: Option<&str>) -> Run {
    let token = server.admin_token.clone();
    exsec(Some(server), Some(&token), args, stdin).await
}

/// [`admin`] with the words of `line` as the arguments: the command as a
/// person types it (`"secrets verify --app web openai OPENAI_API_KEY"`).
pub async fn admin_run(server: &TestServer, line: &str, stdin: Option<&str>) -> Run {
    let args: Vec<&str> = line.split_whitespace().collect();
    admin(server, &args, stdin).await
}

/// Creates tenant `acme` with app `web` through the CLI.
pub async fn seed_acme_web(server: &TestServer) {
    admin_run(server, "tenants create acme", None)
        .await
        .expect(0);
    register_web(server, &[]).await.expect(0);
}

/// `exsec apps register web --tenant acme`, requiring each env var of
/// `required`.
pub async fn register_web(server: &TestServer, required: &[&str]) -> Run {
    let mut args = vec!["apps", "register", "web", "--tenant", "acme"];
    for name in required {
        args.extend(["--require-env", name]);
    }
    admin(server, &args, None).await
}

/// Rewrites an app's manifest file (the `manifests` target's "cluster")
/// after `edit` changed its Secret and Deployment documents.
pub fn edit_manifest(server: &TestServer, app: &str, edit: impl FnOnce(&mut Vec<Value>)) {
    let path = server.path("manifests").join(format!("{app}.yaml"));
    let mut documents = server.manifest(app).unwrap();
    edit(&mut documents);
    write_documents(&path, &documents);
}

fn write_documents(path: &Path, documents: &[Value]) {
    let mut text = String::new();
    for document in documents {
        text.push_str("---\n");
        text.push_str(&serde_json::to_string_pretty(document).unwrap());
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}
