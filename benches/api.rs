//! Criterion benchmark of durable secret writes over HTTP (SPEC §10:
//! ≥ 5,000/s with 32 concurrent clients): a real server on loopback, 32
//! keep-alive clients each `PUT`ting app overrides as fast as answers come.
//! Client and server share this machine's cores, so the figure is a floor.
//!
//! Run: `cargo bench --bench api`. Prints elements (writes) per second.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

const CLIENTS: usize = 32;
/// Keys each client writes in turn (the store stays one size).
const KEYS: usize = 10;

struct Running {
    _dir: tempfile::TempDir,
    server: exsec::app::Server,
    token: String,
}

async fn start() -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    exsec::crypto::generate_key_file(&dir.path().join("keys.d"), std::time::SystemTime::now())
        .expect("key");
    let config_path = dir.path().join("config.toml");
    std::fs::write(
        &config_path,
        "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\npath = \"exsec.redb\"\n[keys]\ndir = \"keys.d\"\n[auth]\nadmin_token_file = \"admin.token\"\n[cluster]\ntarget = \"manifests\"\n[manifests]\ndir = \"manifests\"\n",
    )
    .expect("config");
    let config = exsec::config::Config::load(&config_path).expect("config loads");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let server = exsec::app::start(&config, Some(listener))
        .await
        .expect("server starts");
    let token = std::fs::read_to_string(server.admin_token_file())
        .expect("token")
        .trim()
        .to_owned();
    let running = Running {
        _dir: dir,
        server,
        token,
    };
    let mut client = connect(running.server.addr()).await;
    for (method, path, body) in [
        ("PUT", "/v1/tenants/acme", ""),
        ("PUT", "/v1/apps/web", r#"{"tenant_id":"acme"}"#),
    ] {
        let status = send(&mut client, &running.token, method, path, body).await;
        assert!(status == 200 || status == 201, "{method} {path}: {status}");
    }
    running
}

async fn connect(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    sender
}

async fn send(
    client: &mut SendRequest<Full<Bytes>>,
    token: &str,
    method: &str,
    path: &str,
    body: &str,
) -> u16 {
    client.ready().await.expect("connection ready");
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("request");
    let response = client.send_request(request).await.expect("answer");
    let status = response.status().as_u16();
    response.into_body().collect().await.expect("body");
    status
}

/// `iters` writes over [`CLIENTS`] keep-alive connections; the time until
/// the last answer.
async fn writes(running: &Running, iters: u64) -> Duration {
    let per_client = iters.div_ceil(CLIENTS as u64);
    let addr = running.server.addr();
    let start = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let token = running.token.clone();
            tokio::spawn(async move {
                let mut client = connect(addr).await;
                let body = r#"{"value":"sk-0123456789abcdef0123456789abcdef0123456789abcdef"}"#;
                for i in 0..per_client {
                    let path = format!(
                        "/v1/apps/web/external-secrets/bench/KEY_{:02}_{:02}",
                        c,
                        i as usize % KEYS
                    );
                    let status = send(&mut client, &token, "PUT", &path, body).await;
                    assert!(status == 200 || status == 201, "PUT {path}: {status}");
                }
            })
        })
        .collect();
    for client in clients {
        client.await.expect("client");
    }
    start
        .elapsed()
        .mul_f64(iters as f64 / (per_client * CLIENTS as u64) as f64)
}

fn http_writes(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let running = runtime.block_on(start());
    let mut group = c.benchmark_group("http");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(1));
    group.bench_function(format!("durable secret PUT, {CLIENTS} clients"), |b| {
        b.iter_custom(|iters| runtime.block_on(writes(&running, iters)))
    });
    group.finish();
    runtime.block_on(running.server.shutdown());
}

#[allow(missing_docs, reason = "criterion generates the group function")]
mod group {
    use super::*;
    criterion_group!(benches, http_writes);
}
use group::benches;
criterion_main!(benches);
