//! The stand-in server: binding, the accept loop, connections, shutdown, and the
//! in-process handle tests use ([`StandIn`]).
//!
//! Accepted sockets get `TCP_NODELAY` (without it small answers on keep-alive connections
//! wait ~40 ms for delayed ACKs) and are served with hyper's HTTP/1.1 keep-alive. One
//! shutdown signal stops the accept loop and every connection, including requests a hang
//! fault holds.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::faults::{Faults, Knobs};
use crate::handler;
use crate::kind::Kind;
use crate::kubeconfig;
use crate::requests::{RequestLog, RequestRecord};
use crate::status::ApiError;
use crate::store::{Store, Target};

/// How long to pause after a failed `accept` (e.g. out of file descriptors) before trying
/// again, so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// A running stand-in. Dropping it stops the server; [`StandIn::shutdown`] also waits for
/// the listener to close.
#[derive(Debug)]
pub struct StandIn {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    accept_loop: Option<JoinHandle<()>>,
}

/// State shared by the handle and every connection.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: Arc<Store>,
    pub(crate) knobs: Arc<Knobs>,
    pub(crate) requests: RequestLog,
    pub(crate) address: SocketAddr,
}

impl Shared {
    pub(crate) fn faults(&self) -> Faults {
        Faults::new(Arc::clone(&self.knobs), Arc::clone(&self.store))
    }
}

impl StandIn {
    /// Starts a stand-in on `127.0.0.1` with a free port, serving on the current tokio
    /// runtime. It is ready when this returns.
    pub async fn start() -> io::Result<StandIn> {
        StandIn::start_at(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts a stand-in listening on `address`.
    pub async fn start_at(address: SocketAddr) -> io::Result<StandIn> {
        let listener = TcpListener::bind(address).await?;
        let shared = Arc::new(Shared {
            store: Arc::new(Store::new()?),
            knobs: Arc::new(Knobs::new()),
            requests: RequestLog::new(),
            address: listener.local_addr()?,
        });
        let (shutdown, stopped) = watch::channel(false);
        let accept_loop = tokio::spawn(accept_loop(listener, Arc::clone(&shared), stopped));
        Ok(StandIn {
            shared,
            shutdown,
            accept_loop: Some(accept_loop),
        })
    }

    /// The address the stand-in listens on.
    pub fn addr(&self) -> SocketAddr {
        self.shared.address
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.address)
    }

    /// A kubeconfig (as JSON, which is valid YAML) whose current context points at this
    /// stand-in with `namespace` as the default namespace.
    pub fn kubeconfig(&self, namespace: &str) -> Value {
        kubeconfig::render(&self.url(), namespace)
    }

    /// Writes [`StandIn::kubeconfig`] to `path`.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>, namespace: &str) -> io::Result<()> {
        kubeconfig::write(path.as_ref(), &self.url(), namespace)
    }

    /// The fault knobs.
    pub fn faults(&self) -> Faults {
        self.shared.faults()
    }

    /// The API requests received so far (the newest [`crate::requests::CAPACITY`]), oldest
    /// first. Control requests under `/_standin/` are not included.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.requests.snapshot()
    }

    /// Empties the request log (the total keeps counting).
    pub fn clear_requests(&self) {
        self.shared.requests.clear();
    }

    /// How many API requests were ever received.
    pub fn requests_total(&self) -> u64 {
        self.shared.requests.total()
    }

    /// Resolves once `total` API requests were ever received: the readiness signal for
    /// "the client's request has arrived" (for example, before clearing a hang).
    pub async fn wait_for_requests(&self, total: u64) {
        self.shared.requests.wait_for_total(total).await;
    }

    /// The stored object, as a GET would answer it. `namespace` is ignored for namespaces.
    pub fn object(&self, kind: Kind, namespace: &str, name: &str) -> Option<Value> {
        self.shared
            .store
            .get(Target {
                kind,
                namespace,
                name,
            })
            .ok()
            .map(|object| Value::clone(&object))
    }

    /// Every stored object of `kind` in `namespace` (all namespaces when `None`).
    pub fn objects(&self, kind: Kind, namespace: Option<&str>) -> Vec<Value> {
        let (objects, _) = self.shared.store.list(kind, namespace, &|_| true);
        objects.iter().map(|object| Value::clone(object)).collect()
    }

    /// Creates namespace `name` (no-op if it exists) and returns it.
    pub fn create_namespace(&self, name: &str) -> Result<Value, ApiError> {
        self.shared
            .store
            .create_namespace(name)
            .map(|namespace| Value::clone(&namespace))
    }

    /// Stops the server and waits until the listener is closed. Open connections are cut.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        if let Some(accept_loop) = self.accept_loop.take() {
            // A panicked accept loop has stopped too, which is all shutdown needs.
            let _ = accept_loop.await;
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, stopped: watch::Receiver<bool>) {
    let mut accept_stopped = stopped.clone();
    loop {
        tokio::select! {
            () = until_stopped(&mut accept_stopped) => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(serve_connection(stream, Arc::clone(&shared), stopped.clone()));
                }
                Err(error) => {
                    tracing::warn!(%error, "kube-standin: accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "kube-standin: could not set TCP_NODELAY");
    }
    let service = service_fn(move |request| handler::handle(Arc::clone(&shared), request));
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        result = connection => {
            if let Err(error) = result {
                tracing::debug!(%error, "kube-standin: connection ended");
            }
        }
        () = until_stopped(&mut stopped) => {}
    }
}

/// Resolves when shutdown is signalled (or the handle is gone, which signals it too).
async fn until_stopped(stopped: &mut watch::Receiver<bool>) {
    // Either outcome means stop; the guard is dropped here, not held across awaits.
    let _ = stopped.wait_for(|stopped| *stopped).await;
}
