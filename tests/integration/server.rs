//! A real exsec server for tests: temp directories, a config file, port 0,
//! and a small HTTP client speaking to it over loopback.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use exsec::app::Server;
use exsec::config::Config;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

use crate::daemon::Daemon;

/// How to start a test server.
#[derive(Debug, Clone)]
pub struct Options {
    /// Generate a master key before starting.
    pub with_key: bool,
    /// `manifests.include_values`.
    pub include_values: bool,
    /// Extra TOML appended to the config.
    pub extra_config: String,
    /// Extra keys of the `[server]` table (TLS, the local socket, limits).
    pub server_config: String,
    /// Use the `kubernetes` target against a Kubernetes API stand-in.
    pub kubernetes: bool,
    /// `deploy.timeout`.
    pub deploy_timeout: &'static str,
    /// `storage.path`, when not `exsec.redb` in the server's directory
    /// (a size-limited file system for disk-full tests).
    pub storage_path: Option<PathBuf>,
    /// `keys.rescan_interval`.
    pub rescan_interval: &'static str,
    /// Extra keys of the `[deploy]` table (automatic redeploy settings).
    pub deploy_config: String,
    /// `storage.secret_history`.
    pub secret_history: u32,
}

impl Options {
    /// No master key: a daemon that starts degraded.
    pub fn without_key() -> Self {
        Self {
            with_key: false,
            ..Self::default()
        }
    }

    /// The `kubernetes` target against a Kubernetes API stand-in.
    pub fn kubernetes() -> Self {
        Self {
            kubernetes: true,
            ..Self::default()
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            with_key: true,
            include_values: true,
            extra_config: String::new(),
            server_config: String::new(),
            kubernetes: false,
            deploy_timeout: "5s",
            storage_path: None,
            rescan_interval: "30s",
            deploy_config: String::new(),
            secret_history: 10,
        }
    }
}

/// A running server with its directories.
pub struct TestServer {
    /// The Kubernetes API stand-in, when the kubernetes target is used.
    pub cluster: Option<kube_standin::StandIn>,
    pub dir: tempfile::TempDir,
    /// The server, when it runs in this process.
    pub server: Option<Server>,
    /// The `exsec serve` child, when it runs as its own process.
    pub process: Option<Daemon>,
    pub admin_token: String,
    pub addr: std::net::SocketAddr,
    /// With a TLS server: the certificate(s) to trust; requests then go
    /// over HTTPS, checked against 127.0.0.1.
    pub cacert: Option<PathBuf>,
}

/// One answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON (panics with the body text if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The problem `code` of an error answer.
    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts a deploy answer: 201 with every value of the set injected;
    /// returns its body.
    #[track_caller]
    pub fn assert_injected(&self) -> Value {
        assert_eq!(self.status, 201, "{}", self.text());
        let body = self.json();
        assert_eq!(body["external_secrets"]["status"], "injected", "{body}");
        body
    }

    /// Asserts an RFC 9457 problem answer with this status and `code`, and
    /// returns the problem object.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "{}",
            self.text()
        );
        let problem = self.json();
        for member in ["type", "title", "detail", "code"] {
            assert!(
                problem[member].as_str().is_some_and(|m| !m.is_empty()),
                "member {member} missing: {problem}"
            );
        }
        assert_eq!(problem["status"], status, "{problem}");
        assert_eq!(problem["code"], code, "{problem}");
        problem
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Self {
        let (dir, config_path, cluster) = Self::prepare(options).await;
        let mut server = Self::start_config(dir, &config_path).await;
        server.cluster = cluster;
        server
    }

    /// Like [`TestServer::start_with`], with the server as an `exsec serve`
    /// child process (for signals: SIGKILL in the middle of work).
    pub async fn spawn_with(options: Options) -> Self {
        let (dir, _, cluster) = Self::prepare(options).await;
        let mut server = Self::respawn(dir).await;
        server.cluster = cluster;
        server
    }

    /// Starts `exsec serve` on a prepared directory.
    async fn respawn(dir: tempfile::TempDir) -> Self {
        let daemon = Daemon::start(&dir.path().join("config.toml"), &[]);
        Self::attached(dir, daemon)
    }

    /// A client of `daemon`, an `exsec serve` child started on `dir`.
    pub fn attached(dir: tempfile::TempDir, daemon: Daemon) -> Self {
        let addr = daemon.listen_addr();
        Self::attached_at(dir, daemon, addr)
    }

    /// Like [`TestServer::attached`], with a daemon that exits before it
    /// listens (a start refused) as an error: the directory back and the
    /// daemon's log tail.
    pub fn try_attached(
        dir: tempfile::TempDir,
        daemon: Daemon,
    ) -> Result<Self, (tempfile::TempDir, String)> {
        match daemon.try_listen_addr() {
            Ok(addr) => Ok(Self::attached_at(dir, daemon, addr)),
            Err(tail) => Err((dir, tail)),
        }
    }

    fn attached_at(dir: tempfile::TempDir, daemon: Daemon, addr: std::net::SocketAddr) -> Self {
        let admin_token = std::fs::read_to_string(dir.path().join("admin.token"))
            .unwrap()
            .trim()
            .to_owned();
        Self {
            cluster: None,
            dir,
            server: None,
            process: Some(daemon),
            admin_token,
            addr,
            cacert: None,
        }
    }

    /// SIGKILLs the child process (see [`TestServer::spawn_with`]) and
    /// starts it again on what the kill left on disk; the cluster stand-in
    /// lives on.
    pub async fn crash_and_restart(mut self) -> Self {
        self.process
            .take()
            .expect("a crash needs a server started by spawn_with")
            .kill();
        let cluster = self.cluster.take();
        let mut restarted = Self::respawn(self.dir).await;
        restarted.cluster = cluster;
        restarted
    }

    /// A temp directory with a config file (and key, and stand-in) for
    /// `options`.
    async fn prepare(
        options: Options,
    ) -> (tempfile::TempDir, PathBuf, Option<kube_standin::StandIn>) {
        let dir = tempfile::tempdir().unwrap();
        if options.with_key {
            exsec::crypto::generate_key_file(
                &dir.path().join("keys.d"),
                std::time::SystemTime::now(),
            )
            .unwrap();
        } else {
            // An empty key directory, as the packaging creates it.
            std::fs::create_dir(dir.path().join("keys.d")).unwrap();
        }
        let config_path = dir.path().join("config.toml");
        std::fs::write(
            &config_path,
            format!(
                r#"[server]
listen = "127.0.0.1:0"
{server}
[storage]
path = {storage_path:?}
cache_size = "4MiB"
secret_history = {secret_history}
[keys]
dir = "keys.d"
rescan_interval = "{rescan_interval}"
[auth]
admin_token_file = "admin.token"
[cluster]
target = "{target}"
{kubeconfig}
[manifests]
dir = "manifests"
include_values = {}
[deploy]
timeout = "{}"
queue_timeout = "2s"
{deploy_config}
[log]
format = "json"
{}"#,
                options.include_values,
                options.deploy_timeout,
                options.extra_config,
                server = options.server_config,
                target = if options.kubernetes {
                    "kubernetes"
                } else {
                    "manifests"
                },
                kubeconfig = if options.kubernetes {
                    "kubeconfig = \"kubeconfig.yaml\""
                } else {
                    ""
                },
                rescan_interval = options.rescan_interval,
                deploy_config = options.deploy_config,
                secret_history = options.secret_history,
                storage_path = options
                    .storage_path
                    .as_deref()
                    .unwrap_or(Path::new("exsec.redb"))
                    .to_str()
                    .unwrap(),
            ),
        )
        .unwrap();
        let cluster = if options.kubernetes {
            let cluster = kube_standin::StandIn::start().await.unwrap();
            cluster.create_namespace("paas-apps").unwrap();
            cluster
                .write_kubeconfig(dir.path().join("kubeconfig.yaml"), "paas-apps")
                .unwrap();
            Some(cluster)
        } else {
            None
        };
        (dir, config_path, cluster)
    }

    /// Starts again on the directory of a stopped server.
    pub async fn restart(dir: tempfile::TempDir) -> Self {
        let path = dir.path().join("config.toml");
        Self::start_config(dir, &path).await
    }

    pub async fn start_config(dir: tempfile::TempDir, config_path: &Path) -> Self {
        let config = Config::load(config_path).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = exsec::app::start(&config, Some(listener)).await.unwrap();
        let admin_token = std::fs::read_to_string(server.admin_token_file())
            .unwrap()
            .trim()
            .to_owned();
        let addr = server.addr();
        Self {
            cluster: None,
            dir,
            server: Some(server),
            process: None,
            admin_token,
            addr,
            cacert: None,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Sends one request; `body` is sent as JSON text when given.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Answer {
        self.call_with(method, path, token, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let body = body.map(|b| Bytes::from(b.to_owned()));
        self.call_bytes(method, path, token, body, headers).await
    }

    /// Like [`TestServer::call_with`] with a body of arbitrary bytes. A
    /// body is labelled `application/json` unless `headers` name a
    /// content type.
    pub async fn call_bytes(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Bytes>,
        headers: &[(&str, &str)],
    ) -> Answer {
        self.try_call_bytes(method, path, token, body, headers)
            .await
            .unwrap_or_else(|error| panic!("{method} {path}: {error}"))
    }

    /// Like [`TestServer::call_bytes`], with a failed connection or
    /// exchange (the server was killed) as an error instead of a panic.
    pub async fn try_call_bytes(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Bytes>,
        headers: &[(&str, &str)],
    ) -> Result<Answer, String> {
        let stream = TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let Some(cacert) = &self.cacert else {
            return exchange(stream, method, path, token, body, headers).await;
        };
        let config = exsec::tls::client::client_config(Some(cacert)).map_err(|e| e.to_string())?;
        let stream = exsec::tls::client::connect(config, "127.0.0.1", stream)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))?;
        exchange(stream, method, path, token, body, headers).await
    }

    /// Makes the Kubernetes stand-in hold every Deployment apply until its
    /// faults are cleared (see [`deployment_apply_reached`]).
    pub fn hold_deployment_applies(&self) {
        self.cluster
            .as_ref()
            .expect("a server on the kubernetes target")
            .faults()
            .hang(kube_standin::HangRule::all().path_contains("/deployments/"));
    }

    /// The admin token when `as_admin`, else `tenant_token`.
    pub fn token_of<'a>(&'a self, as_admin: bool, tenant_token: &'a str) -> &'a str {
        if as_admin {
            &self.admin_token
        } else {
            tenant_token
        }
    }

    /// A request with the admin token.
    pub async fn admin(&self, method: &str, path: &str, body: Option<&str>) -> Answer {
        let token = self.admin_token.clone();
        self.call(method, path, Some(&token), body).await
    }

    /// Creates tenants and apps: `("acme", &["web", "api"])`.
    pub async fn seed(&self, tenant: &str, apps: &[&str]) {
        let answer = self
            .admin("PUT", &format!("/v1/tenants/{tenant}"), None)
            .await;
        assert!(
            answer.status == 201 || answer.status == 200,
            "{}",
            answer.text()
        );
        for app in apps {
            let body = format!(r#"{{"tenant_id":"{tenant}"}}"#);
            let answer = self
                .admin("PUT", &format!("/v1/apps/{app}"), Some(&body))
                .await;
            assert_eq!(answer.status, 201, "{}", answer.text());
        }
    }

    /// Sets a secret with the admin token.
    pub async fn set_secret(
        &self,
        scope_path: &str,
        provider: &str,
        key: &str,
        value: &str,
    ) -> Answer {
        let body = serde_json::json!({ "value": value }).to_string();
        self.admin(
            "PUT",
            &format!("{scope_path}/external-secrets/{provider}/{key}"),
            Some(&body),
        )
        .await
    }

    /// Sets a secret with the admin token and asserts it was stored (201
    /// created or 200 replaced; the answer's body in the failure message).
    #[track_caller]
    pub fn set_secret_ok<'a>(
        &'a self,
        scope_path: &'a str,
        provider: &'a str,
        key: &'a str,
        value: &'a str,
    ) -> impl std::future::Future<Output = ()> + 'a {
        let caller = std::panic::Location::caller();
        async move {
            self.set_secret_at(caller, scope_path, provider, key, value)
                .await;
        }
    }
    /// Sets each `(scope_path, provider, key, value)` in turn, asserting
    /// each write as [`Self::set_secret_ok`] does.
    #[track_caller]
    pub fn set_secrets_ok<'a>(
        &'a self,
        secrets: &'a [(&'a str, &'a str, &'a str, &'a str)],
    ) -> impl std::future::Future<Output = ()> + 'a {
        let caller = std::panic::Location::caller();
        async move {
            for &(scope_path, provider, key, value) in secrets {
                self.set_secret_at(caller, scope_path, provider, key, value)
                    .await;
            }
        }
    }

    /// Sets a secret and asserts it was stored, failing at `caller`.
    async fn set_secret_at(
        &self,
        caller: &std::panic::Location<'_>,
        scope_path: &str,
        provider: &str,
        key: &str,
        value: &str,
    ) {
        let answer = self.set_secret(scope_path, provider, key, value).await;
        assert!(
            answer.status == 201 || answer.status == 200,
            "{caller}: setting {scope_path} {provider}/{key}: {} {}",
            answer.status,
            answer.text()
        );
    }

    /// One bulk write of `(provider, key, value)` items to a scope
    /// (`/v1/apps/web`) with the admin token, without `replace`.
    pub async fn bulk_write(&self, scope_path: &str, items: &[(&str, &str, &str)]) -> Answer {
        let path = format!("{scope_path}/external-secrets");
        self.admin("PUT", &path, Some(&bulk_body(items, false)))
            .await
    }

    /// Deletes a secret of a scope (`/v1/apps/web`) with the admin token.
    pub async fn delete_secret(&self, scope_path: &str, provider: &str, key: &str) -> Answer {
        let path = format!("{scope_path}/external-secrets/{provider}/{key}");
        self.admin("DELETE", &path, None).await
    }

    /// The `provider/key` names a scope holds (`/v1/apps/web`), read with
    /// the admin token.
    pub async fn secret_names(&self, scope_path: &str) -> Vec<String> {
        let listed = self
            .admin("GET", &format!("{scope_path}/external-secrets"), None)
            .await
            .json();
        provider_keys(&listed["secrets"])
    }

    /// The most common start: tenant `acme`, app `web`, one secret set
    /// (`scope_path` is `/v1/tenants/acme` or `/v1/apps/web`), `web`
    /// deployed with image `nginx` (each step asserted).
    pub async fn web_deployed_with(
        &self,
        scope_path: &str,
        provider: &str,
        key: &str,
        value: &str,
    ) {
        self.seed("acme", &["web"]).await;
        self.set_secret_ok(scope_path, provider, key, value).await;
        self.deploy_ok("web").await;
    }

    /// Deploys an app with the admin token.
    pub async fn deploy(&self, app: &str, body: serde_json::Value) -> Answer {
        self.admin(
            "POST",
            &format!("/v1/apps/{app}/deploys"),
            Some(&body.to_string()),
        )
        .await
    }

    /// Deploys `app` with image `nginx` and asserts 201 (the answer's body
    /// in the failure message); returns the answer's JSON.
    pub async fn deploy_ok(&self, app: &str) -> Value {
        let answer = self
            .deploy(app, serde_json::json!({"image_ref": "nginx"}))
            .await;
        assert_eq!(answer.status, 201, "{}", answer.text());
        answer.json()
    }

    /// Mints a tenant token.
    pub async fn mint(&self, tenant: &str) -> String {
        let answer = self
            .admin("POST", &format!("/v1/tenants/{tenant}/tokens"), None)
            .await;
        assert_eq!(answer.status, 201, "{}", answer.text());
        answer.json()["token"].as_str().unwrap().to_owned()
    }

    /// The documents of an app's manifest file, if it exists.
    pub fn manifest(&self, app: &str) -> Option<Vec<Value>> {
        let text =
            std::fs::read_to_string(self.path("manifests").join(format!("{app}.yaml"))).ok()?;
        Some(
            text.split("\n---\n")
                .map(|d| d.trim().trim_start_matches("---").trim())
                .filter(|d| d.starts_with('{'))
                .map(|d| serde_json::from_str(d).unwrap())
                .collect(),
        )
    }

    /// The Secret document of an app's manifest, if any.
    pub fn manifest_secret(&self, app: &str) -> Option<Value> {
        self.manifest(app)?
            .into_iter()
            .find(|d| d["kind"] == "Secret")
    }

    /// Decoded values of the manifest Secret.
    pub fn manifest_values(&self, app: &str) -> Option<BTreeMap<String, String>> {
        let secret = self.manifest_secret(app)?;
        Some(decode_data(secret["data"].as_object().unwrap()))
    }

    /// Asserts the app's manifest Secret holds exactly `expected`.
    #[track_caller]
    pub fn assert_manifest_values(&self, app: &str, expected: &[(&str, &str)]) {
        assert_eq!(
            self.manifest_values(app),
            Some(values(expected)),
            "the values in the manifest Secret of {app}"
        );
    }

    /// The Deployment document of an app's manifest, if any.
    pub fn manifest_deployment(&self, app: &str) -> Option<Value> {
        self.manifest(app)?
            .into_iter()
            .find(|d| d["kind"] == "Deployment")
    }
    /// The audit head sequence number (to assert "nothing changed").
    pub async fn audit_seq(&self) -> u64 {
        self.audit_events()
            .await
            .last()
            .map_or(0, |event| event["seq"].as_u64().unwrap())
    }

    /// Every audit event of type `kind`, oldest first.
    pub async fn audit_events_of(&self, kind: &str) -> Vec<Value> {
        let mut events = self.audit_events().await;
        events.retain(|event| event["type"] == kind);
        events
    }

    /// How many audit events of type `kind` there are.
    pub async fn audit_count(&self, kind: &str) -> usize {
        self.audit_events_of(kind).await.len()
    }

    /// The one audit event of type `kind`; fails, listing them, when there
    /// is none or more than one.
    #[track_caller]
    pub fn the_audit_event<'a>(
        &'a self,
        kind: &'a str,
    ) -> impl std::future::Future<Output = Value> + 'a {
        let caller = std::panic::Location::caller();
        async move {
            let mut events = self.audit_events_of(kind).await;
            assert_eq!(events.len(), 1, "{caller}: one {kind} event: {events:?}");
            events.remove(0)
        }
    }

    /// Every audit event, oldest first, through the paged API.
    pub async fn audit_events(&self) -> Vec<Value> {
        self.audit_events_after(0).await
    }

    /// The audit events after sequence number `after`, oldest first,
    /// through the paged API.
    pub async fn audit_events_after(&self, after: u64) -> Vec<Value> {
        let mut events: Vec<Value> = Vec::new();
        loop {
            let after = events.last().map_or(after, |e| e["seq"].as_u64().unwrap());
            let page = self
                .admin(
                    "GET",
                    &format!("/v1/audit-events?after={after}&limit=1000"),
                    None,
                )
                .await
                .json();
            events.extend(page["events"].as_array().unwrap().iter().cloned());
            if page["next_after"].is_null() {
                return events;
            }
        }
    }
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        self.dir
    }
}

/// Holds every Deployment apply of the stand-in, starts a deploy of `web`
/// (image `nginx:1.27`) on its own task and returns once that apply reached
/// the stand-in: the deploy is in flight, its start record written. The
/// task yields the answer, or the failed exchange if the server died.
pub async fn deploy_held_at_apply(
    server: &std::sync::Arc<TestServer>,
) -> tokio::task::JoinHandle<Result<Answer, String>> {
    server.hold_deployment_applies();
    let deploy = {
        let server = server.clone();
        tokio::spawn(async move {
            let body = Bytes::from(json!({ "image_ref": "nginx:1.27" }).to_string());
            let token = server.admin_token.clone();
            let path = "/v1/apps/web/deploys";
            server
                .try_call_bytes("POST", path, Some(&token), Some(body), &[])
                .await
        })
    };
    let cluster = server
        .cluster
        .as_ref()
        .expect("a server on the kubernetes target");
    deployment_apply_reached(cluster).await;
    deploy
}

/// A Secret's `data`, decoded from base64.
pub fn decode_data(data: &serde_json::Map<String, Value>) -> BTreeMap<String, String> {
    use base64::Engine as _;
    data.iter()
        .map(|(k, v)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap();
            (k.clone(), String::from_utf8(bytes).unwrap())
        })
        .collect()
}

/// `[(key, value)…]` as the map [`TestServer::manifest_values`] returns.
pub fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A bulk write's body: `{"secrets": [{"provider", "key", "value"}…],
/// "replace"}`.
pub fn bulk_body(items: &[(&str, &str, &str)], replace: bool) -> String {
    let secrets: Vec<Value> = items
        .iter()
        .map(|(provider, key, value)| json!({"provider": provider, "key": key, "value": value}))
        .collect();
    json!({ "secrets": secrets, "replace": replace }).to_string()
}

/// One request on an open connection (TCP, TLS or a local socket); the
/// connection is driven on its own task.
pub async fn exchange<S>(
    stream: S,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Bytes>,
    headers: &[(&str, &str)],
) -> Result<Answer, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(path)
        .header("host", "127.0.0.1");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let typed = headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
    if body.is_some() && !typed {
        request = request.header("content-type", "application/json");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(body.unwrap_or_default())).unwrap();
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("exchange: {e}"))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// Returns once a Deployment apply (a server-side apply `PATCH`) reached
/// the stand-in: the readiness signal of tests that hold it there.
pub async fn deployment_apply_reached(cluster: &kube_standin::StandIn) {
    loop {
        let seen = cluster.requests().len() as u64;
        if cluster
            .requests()
            .iter()
            .any(|r| r.method == "PATCH" && r.path.contains("/deployments/"))
        {
            return;
        }
        cluster.wait_for_requests(seen + 1).await;
    }
}

/// `provider/key` of each element of a JSON array of secrets (a list or a
/// bulk write's answer).
pub fn provider_keys(secrets: &Value) -> Vec<String> {
    secrets
        .as_array()
        .unwrap_or_else(|| panic!("not an array of secrets: {secrets}"))
        .iter()
        .map(|s| {
            format!(
                "{}/{}",
                s["provider"].as_str().unwrap(),
                s["key"].as_str().unwrap()
            )
        })
        .collect()
}
