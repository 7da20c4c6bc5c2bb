//! The composition root: the only place that creates directories, opens
//! the store, loads the keyring and the TLS pair, builds the cluster target
//! and binds the listeners. Everything else receives what it needs from
//! here.

use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api::auth::{AdminToken, AdminTokenError};
use crate::api::metrics::{Metrics, RateLimiter};
use crate::api::server::{ConnectionLimit, Listeners};
use crate::api::{ApiState, server};
use crate::audit_maintenance::ChainStatus;
use crate::cluster::ClusterTarget;
use crate::cluster::kubernetes::KubernetesTarget;
use crate::cluster::manifests::ManifestsTarget;
use crate::config::{Config, TargetKind};
use crate::crypto::SharedKeyring;
use crate::deploy::{DeploySettings, Deployer};
use crate::error_chain::chain;
use crate::keywatch::{self, KeyWatch};
use crate::redeploy::Redeployer;
use crate::rotation::Rotation;
use crate::shutdown::Trigger;
use crate::store::{OpenError, Store, StoreError, StoreOptions};
use crate::tls::{PairError, PairFiles, Reload, ServerTls};
use crate::tlswatch::TlsWatch;

/// Verify calls allowed per token per minute.
const VERIFY_PER_MINUTE: u32 = 30;

/// Why the server could not start; each names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A directory could not be created.
    #[error("cannot create directory {path}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The admin token file is unusable.
    #[error(transparent)]
    AdminToken(#[from] AdminTokenError),
    /// The process could not be hardened (umask, core dumps).
    #[error(transparent)]
    Harden(#[from] crate::process::HardenError),
    /// The store could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The store failed after opening (the start-up audit verification).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TLS certificate or key cannot be served.
    #[error("cannot serve TLS with server.tls_cert and server.tls_key")]
    Tls(#[source] PairError),
    /// The local socket cannot be created.
    #[error("cannot listen on the Unix socket {}", path.display())]
    UnixSocket {
        /// `server.unix_socket`.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Another process answers on the local socket.
    #[error(
        "another process listens on the Unix socket {}; stop it (is exsec already running?) or set another server.unix_socket",
        path.display()
    )]
    UnixSocketInUse {
        /// `server.unix_socket`.
        path: PathBuf,
    },
    /// Something that is not a socket is where the socket should go.
    #[error(
        "{} exists and is not a socket; exsec replaces only a stale socket there: remove the file or set another server.unix_socket",
        path.display()
    )]
    NotASocket {
        /// `server.unix_socket`.
        path: PathBuf,
    },
    /// The cluster target cannot be built.
    #[error("cluster target {target}: {message}")]
    Cluster {
        /// Which target.
        target: &'static str,
        /// Why.
        message: String,
    },
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    admin_token_file: PathBuf,
    state: Arc<ApiState>,
    /// The served certificate's watcher, when TLS is on.
    tls: Option<Arc<TlsWatch>>,
    /// The local socket, removed at shutdown.
    unix_socket: Option<SocketFile>,
    /// Stops the API (accepting, then draining).
    api_stop: Trigger,
    task: JoinHandle<()>,
    /// Stops the key watcher, the re-sealing job and the audit upkeep.
    background_stop: Trigger,
    background: Vec<JoinHandle<()>>,
}

impl Server {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin token file.
    pub fn admin_token_file(&self) -> &Path {
        &self.admin_token_file
    }

    /// Re-reads the admin token file (SIGHUP).
    pub fn reload_admin_token(&self) -> Result<(), AdminTokenError> {
        self.state.admin.reload()
    }

    /// Re-reads the TLS certificate and key (SIGHUP; also done when the
    /// files change). `None` without TLS.
    pub async fn reload_tls(&self) -> Option<Reload> {
        Some(self.tls.as_ref()?.reload().await)
    }

    /// The certificate served now, with TLS.
    pub fn tls_certificate(&self) -> Option<crate::tls::CertificateInfo> {
        self.tls.as_ref().map(|tls| tls.certificate())
    }

    /// The local socket, when one is configured.
    pub fn unix_socket(&self) -> Option<&Path> {
        self.unix_socket
            .as_ref()
            .map(|socket| socket.path.as_path())
    }

    /// Stops accepting, drains in-flight requests, and returns when done.
    pub async fn shutdown(mut self) {
        self.api_stop.fire();
        let _ = (&mut self.task).await;
        if let Some(socket) = self.unix_socket.take() {
            socket.remove();
        }
        self.background_stop.fire();
        for task in self.background.drain(..) {
            let _ = task.await;
        }
    }

    /// Answers one request in this process, without a socket: the same
    /// routing, auth, limits and handlers as a connection gets (tests and
    /// fuzzing call it with an in-memory body).
    pub async fn handle<B: crate::api::RequestBody>(
        &self,
        request: hyper::Request<B>,
    ) -> hyper::Response<crate::api::ResponseBody> {
        crate::api::handle(self.state.clone(), request).await
    }

    /// The re-sealing job (for status and tests).
    pub fn rotation(&self) -> &Arc<Rotation> {
        &self.state.rotation
    }

    /// Waits until the server stops by itself (it does not, unless it panics).
    pub async fn wait(&mut self) {
        let _ = (&mut self.task).await;
    }
}

/// Starts the daemon from a config. `listener` overrides
/// `server.listen` (tests pass a listener bound to port 0).
pub async fn start(config: &Config, listener: Option<TcpListener>) -> Result<Server, StartError> {
    crate::tls::install_provider();
    // Checked before anything else: never fall back to plaintext when the
    // operator asked for TLS.
    let tls = match (&config.server.tls_cert, &config.server.tls_key) {
        (Some(cert), Some(key)) => {
            let files = PairFiles {
                cert: cert.clone(),
                key: key.clone(),
            };
            let tls = tokio::task::spawn_blocking(move || ServerTls::load(files))
                .await
                .map_err(|_| StoreError::Interrupted)?
                .map_err(StartError::Tls)?;
            Some(Arc::new(tls))
        }
        _ => None,
    };
    if let Some(parent) = config.storage.path.parent() {
        create_private_dir(parent)?;
    }
    if let Some(parent) = config.auth.admin_token_file.parent() {
        create_private_dir(parent)?;
    }
    let (admin, created) = AdminToken::load_or_create(
        &config.auth.admin_token_file,
        config.keys.allow_group_readable,
    )?;
    if created {
        tracing::info!(path = %config.auth.admin_token_file.display(), "created a new admin token file");
    }

    let store_path = config.storage.path.clone();
    let options = StoreOptions {
        secret_history: config.storage.secret_history,
        ..StoreOptions::with_cache_size(
            usize::try_from(config.storage.cache_size).unwrap_or(usize::MAX),
        )
    };
    let store = tokio::task::spawn_blocking(move || Store::open(&store_path, options))
        .await
        .map_err(|_| StoreError::Interrupted)??;
    let store = Arc::new(store);
    // Before serving: a tampered log is reported from the first request on.
    let audit_chain = Arc::new(ChainStatus::default());
    crate::audit_maintenance::verify_new_events(
        &store,
        &audit_chain,
        crate::audit_maintenance::VERIFY_STEP,
    )
    .await?;

    let known = store.read_async(|r| r.known_fingerprints()).await?;
    let (keyring, problems) = keywatch::load(
        &config.keys.dir,
        config.keys.allow_group_readable,
        &known,
        None,
    );
    for problem in &problems {
        tracing::error!(problem = %problem, "refused a master key file");
    }
    match keyring.active() {
        Some(active) => tracing::info!(active = %active, keys = keyring.len(), "keyring loaded"),
        None => tracing::warn!(
            dir = %config.keys.dir.display(),
            "no master key loaded: serving degraded (secret writes answer 503, deploys skip injection); add one with `exsec keys generate --dir {}`",
            config.keys.dir.display()
        ),
    }
    let keyring = Arc::new(SharedKeyring::new(keyring));
    let rotation = Arc::new(Rotation::default());
    let background_stop = Trigger::new();
    let watcher = KeyWatch::new(
        config.keys.dir.clone(),
        config.keys.allow_group_readable,
        config.keys.rescan_interval,
        store.clone(),
        keyring.clone(),
        rotation.clone(),
    );
    let tls_watch = tls
        .as_ref()
        .map(|tls| Arc::new(TlsWatch::new(tls.clone(), store.clone())));
    let mut background = vec![
        tokio::spawn(watcher.run(background_stop.subscribe())),
        // Audit verification, anchors and retention (`crate::audit_maintenance`).
        tokio::spawn(crate::audit_maintenance::run(
            store.clone(),
            config.audit.clone(),
            audit_chain.clone(),
            background_stop.subscribe(),
        )),
        // Reopens and probes the store after a failed commit.
        tokio::spawn(crate::store::health::run(
            store.clone(),
            background_stop.subscribe(),
        )),
        // Resumable: the first pass picks up whatever a crash left behind.
        tokio::spawn(rotation.clone().run(
            store.clone(),
            keyring.clone(),
            background_stop.subscribe(),
        )),
    ];
    if let Some(watch) = &tls_watch {
        background.push(tokio::spawn(watch.clone().run(background_stop.subscribe())));
    }

    let cluster = cluster_target(config).await?;
    let settings = DeploySettings {
        namespace: config.cluster.namespace.as_str().to_owned(),
        timeout: config.deploy.timeout,
        queue_timeout: config.deploy.queue_timeout,
        auto_redeploy_default: config.deploy.auto_redeploy_default,
    };
    let deployer =
        Arc::new(Deployer::new(store.clone(), keyring.clone(), cluster, settings).await?);
    // Removes what could not be removed before (and after a restart).
    background.push(tokio::spawn(
        deployer.clone().run_cleanups(background_stop.subscribe()),
    ));
    // Automatic redeploys: what secret writes queued (and a crash left).
    let redeploys = Arc::new(Redeployer::new(
        store.clone(),
        deployer.clone(),
        crate::redeploy::Settings {
            quiet: config.deploy.auto_redeploy_quiet,
            max_delay: config.deploy.auto_redeploy_max_delay,
            concurrency: config.deploy.auto_redeploy_concurrency,
        },
    ));
    background.push(tokio::spawn(
        redeploys.clone().run(background_stop.subscribe()),
    ));
    // Writes the final records a storage fault held back, once it heals.
    background.push(tokio::spawn(
        deployer
            .pending()
            .clone()
            .run(store.clone(), background_stop.subscribe()),
    ));

    let listener = match listener {
        Some(listener) => listener,
        None => TcpListener::bind(config.server.listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.server.listen,
                source,
            })?,
    };
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.server.listen,
        source,
    })?;
    let unix = match &config.server.unix_socket {
        Some(path) => Some(bind_unix_socket(path)?),
        None => None,
    };
    let (unix_listener, unix_socket) = match unix {
        Some((listener, file)) => (Some(listener), Some(file)),
        None => (None, None),
    };
    let state = Arc::new(ApiState {
        store,
        keyring,
        rotation,
        deployer,
        redeploys,
        admin,
        metrics: Metrics::default(),
        verify_limiter: RateLimiter::new(VERIFY_PER_MINUTE, Duration::from_secs(60)),
        keys_dir: config.keys.dir.clone(),
        request_timeout: config.deploy.timeout
            + config.deploy.queue_timeout
            + Duration::from_secs(10),
        connections: Arc::new(ConnectionLimit::new(config.server.max_connections)),
        audit_chain,
    });
    // Idle memory back to the system after a burst (`crate::heap`): any
    // request answered or write committed is work.
    let activity = state.clone();
    background.push(tokio::spawn(crate::heap::run(
        move || activity.metrics.requests_served() + activity.store.commit_stats().writes,
        background_stop.subscribe(),
    )));
    let api_stop = Trigger::new();
    let (accepting, accept_loop_entered) = oneshot::channel::<()>();
    let listeners = Listeners {
        tcp: listener,
        tls: tls.clone(),
        unix: unix_listener,
    };
    let run = server::run(listeners, state.clone(), api_stop.subscribe());
    let task = tokio::spawn(async move {
        // The accept loop registers with the listener in this same poll.
        let _ = accepting.send(());
        run.await;
    });
    // `start` returns (and `serve` sends READY=1) only once the socket is
    // bound, listening and the accept loop is running: a client that
    // connects as soon as systemd reports the unit started is served.
    let _ = accept_loop_entered.await;
    match tls.as_ref().map(|tls| tls.certificate()) {
        Some(certificate) => tracing::info!(
            %addr,
            scheme = "https",
            serial = %certificate.serial,
            not_after = %certificate.not_after_text(),
            sha256 = %certificate.sha256,
            "exsec listening"
        ),
        None => tracing::info!(%addr, scheme = "http", "exsec listening"),
    }
    if let Some(certificate) = tls.as_ref().map(|tls| tls.certificate())
        && certificate.expired_at(std::time::SystemTime::now())
    {
        tracing::warn!(
            not_after = %certificate.not_after_text(),
            "the TLS certificate has expired: clients will refuse it; replace server.tls_cert and server.tls_key (no restart needed)"
        );
    }
    if let Some(socket) = &unix_socket {
        tracing::info!(path = %socket.path.display(), "serving the API on the Unix socket too");
    }
    Ok(Server {
        addr,
        admin_token_file: config.auth.admin_token_file.clone(),
        state,
        tls: tls_watch,
        unix_socket,
        api_stop,
        task,
        background_stop,
        background,
    })
}

/// Runs the daemon until SIGTERM or SIGINT; SIGHUP re-reads the admin
/// token and the TLS certificate and key.
/// First of all the process is hardened ([`crate::process::harden`]):
/// umask 0077, no core dumps.
///
/// With systemd `Type=notify` (`NOTIFY_SOCKET` set) it sends `READY=1` once
/// the store is open and the listener accepts, and `STOPPING=1` when a
/// stop signal arrives, before draining.
pub async fn serve(config: &Config) -> Result<(), StartError> {
    crate::process::harden()?;
    // Before the listener exists: a SIGTERM right after `exsec listening`
    // (or READY=1) must drain, not kill.
    let signals = Signals::install();
    let server = start(config, None).await?;
    notify_systemd("READY=1");
    match signals {
        Ok(signals) => signals.wait(&server).await,
        Err(error) => tracing::error!(%error, "cannot install signal handlers; stopping"),
    }
    notify_systemd("STOPPING=1");
    server.shutdown().await;
    Ok(())
}

/// SIGTERM, SIGINT and SIGHUP, caught from before the listener binds.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Returns at SIGTERM or SIGINT; SIGHUP re-reads the admin token and the
    /// TLS pair.
    async fn wait(mut self, server: &Server) {
        loop {
            tokio::select! {
                _ = self.term.recv() => { tracing::info!("SIGTERM received"); return; }
                _ = self.int.recv() => { tracing::info!("SIGINT received"); return; }
                _ = self.hup.recv() => {
                    match server.reload_admin_token() {
                        Ok(()) => tracing::info!(path = %server.admin_token_file().display(), "admin token reloaded"),
                        Err(error) => tracing::error!(error = %chain(&error), "admin token reload failed; keeping the previous token"),
                    }
                    // Replacements and failures are logged by the watcher.
                    if let Some(Reload::Unchanged) = server.reload_tls().await {
                        tracing::info!("TLS certificate unchanged");
                    }
                }
            }
        }
    }
}

async fn cluster_target(config: &Config) -> Result<Arc<dyn ClusterTarget>, StartError> {
    match config.cluster.target {
        TargetKind::Manifests => {
            create_private_dir(&config.manifests.dir)?;
            Ok(Arc::new(ManifestsTarget::new(
                config.manifests.dir.clone(),
                config.manifests.include_values,
            )))
        }
        TargetKind::Kubernetes => {
            let target = KubernetesTarget::connect(
                config.cluster.kubeconfig.as_deref(),
                config.cluster.namespace.as_str(),
                config.cluster.create_namespace,
            )
            .await
            .map_err(|error| StartError::Cluster {
                target: "kubernetes",
                message: error.to_string(),
            })?;
            Ok(Arc::new(target))
        }
    }
}

/// The local socket's file, removed at shutdown if it is still ours.
struct SocketFile {
    path: PathBuf,
    /// Device and inode of the socket bound, so that shutdown never
    /// removes a socket another process put there since.
    identity: (u64, u64),
}

impl SocketFile {
    fn remove(self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|metadata| (metadata.dev(), metadata.ino()) == self.identity);
        if ours && let Err(error) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), %error, "cannot remove the Unix socket");
        }
    }
}

/// Binds the local socket with mode 0660. A socket file left by a process
/// that is gone (nothing answers on it) is replaced; a live socket or any
/// other file is refused. A missing parent directory is created (0750).
fn bind_unix_socket(path: &Path) -> Result<(UnixListener, SocketFile), StartError> {
    use std::os::unix::fs::DirBuilderExt;
    let socket_error = |source| StartError::UnixSocket {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
        && !parent.is_dir()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(parent)
            .map_err(|source| StartError::Directory {
                path: parent.to_owned(),
                source,
            })?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.file_type().is_socket() => {
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => {
                    return Err(StartError::UnixSocketInUse {
                        path: path.to_owned(),
                    });
                }
                Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
                    tracing::info!(path = %path.display(), "replacing a stale Unix socket");
                    std::fs::remove_file(path).map_err(socket_error)?;
                }
                Err(error) => return Err(socket_error(error)),
            }
        }
        Ok(_) => {
            return Err(StartError::NotASocket {
                path: path.to_owned(),
            });
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(socket_error(error)),
    }
    let listener = UnixListener::bind(path).map_err(socket_error)?;
    // Owner and group may connect; the token is still required.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(socket_error)?;
    let metadata = std::fs::symlink_metadata(path).map_err(socket_error)?;
    let file = SocketFile {
        path: path.to_owned(),
        identity: (metadata.dev(), metadata.ino()),
    };
    Ok((listener, file))
}

/// Creates a directory (and parents) with mode 0700 if missing.
fn create_private_dir(dir: &Path) -> Result<(), StartError> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StartError::Directory {
            path: dir.to_owned(),
            source,
        })
}

/// Tells systemd about a state change when run with `Type=notify`.
fn notify_systemd(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let socket = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(socket) => socket,
        Err(error) => {
            tracing::warn!(%error, "cannot notify systemd");
            return;
        }
    };
    let path = PathBuf::from(path);
    let sent = if let Some(abstract_name) = path.to_str().and_then(|p| p.strip_prefix('@')) {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)
            .and_then(|addr| socket.send_to_addr(state.as_bytes(), &addr))
    } else {
        socket.send_to(state.as_bytes(), &path)
    };
    if let Err(error) = sent {
        tracing::warn!(%error, "cannot notify systemd");
    }
}
