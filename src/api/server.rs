//! The HTTP/1.1 server: accepts connections on already-bound listeners
//! (tests bind port 0) — TCP, plain or TLS, and optionally a Unix socket —
//! serves each with hyper, and on shutdown stops accepting and drains
//! in-flight requests for a bounded time.
//!
//! At most `server.max_connections` connections are served at once, over
//! all listeners. At the cap the accept loop stops accepting: further
//! connections wait in the kernel's accept queue (and beyond its length,
//! the kernel drops their SYNs and clients retry), each served as soon as
//! a connection closes. Nothing is read from a waiting connection, so a
//! flood costs no memory here; idle connections are closed after
//! the header read timeout (10 s), so the cap cannot be held forever.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ApiState;
use crate::shutdown::Shutdown;
use crate::tls::ServerTls;

/// A client must send its request headers within this time, and an idle
/// keep-alive connection is closed after it.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A client must complete the TLS handshake within this time.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// In-flight requests get this long to finish after a shutdown signal.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the server accepts connections.
pub struct Listeners {
    /// The TCP listener (`server.listen`).
    pub tcp: TcpListener,
    /// TLS on the TCP listener; `None` serves plain HTTP.
    pub tls: Option<Arc<ServerTls>>,
    /// The local socket (`server.unix_socket`), plain HTTP.
    pub unix: Option<UnixListener>,
}

/// The cap on connections served at once, and how often it made a
/// connection wait.
pub struct ConnectionLimit {
    max: u32,
    permits: Arc<Semaphore>,
    waited: AtomicU64,
}

/// What `/metrics` shows about connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionStats {
    /// Connections being served.
    pub open: u64,
    /// `server.max_connections`.
    pub max: u64,
    /// Connections accepted while the cap was reached, which waited for a
    /// slot before being served.
    pub waited: u64,
}

impl ConnectionLimit {
    /// At most `max` connections at once.
    pub fn new(max: u32) -> Self {
        Self {
            max,
            permits: Arc::new(Semaphore::new(max as usize)),
            waited: AtomicU64::new(0),
        }
    }

    /// The numbers for `/metrics`.
    pub fn stats(&self) -> ConnectionStats {
        let free = self.permits.available_permits() as u64;
        ConnectionStats {
            open: u64::from(self.max).saturating_sub(free),
            max: u64::from(self.max),
            waited: self.waited.load(Ordering::Relaxed),
        }
    }

    /// A slot for one connection: at once if one is free, else once a
    /// connection closes (counted as a wait).
    async fn slot(&self) -> OwnedSemaphorePermit {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return permit;
        }
        self.waited.fetch_add(1, Ordering::Relaxed);
        match self.permits.clone().acquire_owned().await {
            Ok(permit) => permit,
            // The semaphore is never closed.
            Err(_) => std::future::pending().await,
        }
    }
}

/// A connection accepted on one of the listeners.
enum Accepted {
    Tcp(TcpStream),
    Unix(tokio::net::UnixStream),
}

/// Serves until `shutdown` fires, then drains.
pub async fn run(listeners: Listeners, state: Arc<ApiState>, mut shutdown: Shutdown) {
    let graceful = GracefulShutdown::new();
    let limit = state.connections.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listeners.tcp.accept() => accepted.map(|(stream, _)| Accepted::Tcp(stream)),
            accepted = accept_unix(listeners.unix.as_ref()) => accepted.map(Accepted::Unix),
            () = shutdown.recv() => break,
        };
        let accepted = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // At the cap this waits, and no other connection is accepted
        // meanwhile: they queue in the kernel.
        let slot = tokio::select! {
            slot = limit.slot() => slot,
            () = shutdown.recv() => break,
        };
        let watcher = graceful.watcher();
        let state = state.clone();
        match accepted {
            Accepted::Tcp(stream) => {
                // Without it small answers wait for the peer's delayed ACK.
                if let Err(error) = stream.set_nodelay(true) {
                    tracing::debug!(%error, "cannot set TCP_NODELAY");
                }
                match &listeners.tls {
                    Some(tls) => {
                        let tls = tls.clone();
                        tokio::spawn(async move {
                            if let Some(stream) = handshake(&tls, stream).await {
                                serve(stream, state, watcher).await;
                            }
                            drop(slot);
                        });
                    }
                    None => {
                        tokio::spawn(async move {
                            serve(stream, state, watcher).await;
                            drop(slot);
                        });
                    }
                }
            }
            Accepted::Unix(stream) => {
                tokio::spawn(async move {
                    serve(stream, state, watcher).await;
                    drop(slot);
                });
            }
        }
    }
    drop(listeners);
    tracing::info!("shutting down: draining in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(DRAIN_TIMEOUT) => tracing::warn!("drain timed out; closing remaining connections"),
    }
}

/// The next connection on the local socket; never, without one.
async fn accept_unix(listener: Option<&UnixListener>) -> std::io::Result<tokio::net::UnixStream> {
    match listener {
        Some(listener) => listener.accept().await.map(|(stream, _)| stream),
        None => std::future::pending().await,
    }
}

/// Serves HTTP/1.1 on one connection until it closes.
async fn serve<S>(stream: S, state: Arc<ApiState>, watcher: Watcher)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(super::handle(state, request).await) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(error) = watcher.watch(connection).await {
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// The TLS handshake, bounded by [`HANDSHAKE_TIMEOUT`]. A client speaking
/// plain HTTP to the TLS port gets a plain-text 400 that says to use
/// https:// instead of a connection reset it cannot explain.
async fn handshake(
    tls: &ServerTls,
    mut stream: TcpStream,
) -> Option<crate::tls::server::ServerStream> {
    let handshake = async {
        let mut first = [0u8; 1];
        // A TLS connection opens with a handshake record (type 22).
        if stream.peek(&mut first).await.ok()? == 1 && first[0].is_ascii_uppercase() {
            let _ = stream.write_all(&plaintext_answer()).await;
            let _ = stream.shutdown().await;
            return None;
        }
        match tls.accept(stream).await {
            Ok(stream) => Some(stream),
            Err(error) => {
                tracing::debug!(%error, "TLS handshake failed");
                None
            }
        }
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(stream) => stream,
        Err(_) => {
            tracing::debug!("TLS handshake timed out");
            None
        }
    }
}

/// The answer to plain HTTP on the TLS port: problem+json, as every
/// error, written by hand (there is no HTTP connection to answer on).
fn plaintext_answer() -> Vec<u8> {
    let body = super::problem::ApiError::bad_request(
        "tls_required",
        "this exsec serves HTTPS on this port; use an https:// URL (with --cacert FILE for a private CA)",
    )
    .body()
    .to_string();
    format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plaintext_answer_is_well_formed() {
        let answer = plaintext_answer();
        let text = std::str::from_utf8(&answer).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let problem: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["code"], "tls_required");
    }
}
