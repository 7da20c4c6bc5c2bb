//! Criterion benchmark of the API over loopback, plain HTTP beside HTTPS
//! (SPEC §10: ≥ 5,000 durable secret writes/s with 32 concurrent clients;
//! TLS: deploys/s over HTTPS with keep-alive ≥ 0.9× plain HTTP).
//!
//! A real server per scheme (HTTPS with a pair from `exsec tls generate`,
//! ECDSA P-256), the kubernetes target against the Kubernetes API stand-in,
//! 32 keep-alive clients each sending as fast as answers come: secret
//! `PUT`s (app overrides), and deploys of 96 apps (each client on its own
//! apps, so no deploy waits for another of the same app). Handshakes
//! happen once per client and connection, outside the measured loop, as
//! with any keep-alive client. Client, server and stand-in share this
//! machine's cores, so the figures are floors.
//!
//! Run: `cargo bench --bench api`. Prints elements (writes, deploys) per
//! second; docs/performance.md has the ratio.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

const CLIENTS: usize = 32;
/// Keys each client writes in turn (the store stays one size).
const KEYS: usize = 10;
/// Apps deployed: three per client.
const APPS: usize = 96;

struct Running {
    _dir: tempfile::TempDir,
    _cluster: kube_standin::StandIn,
    server: exsec::app::Server,
    token: String,
    /// The certificate to trust, when the server serves HTTPS.
    cacert: Option<std::path::PathBuf>,
}

async fn start(tls: bool) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    exsec::crypto::generate_key_file(&dir.path().join("keys.d"), std::time::SystemTime::now())
        .expect("key");
    let cluster = kube_standin::StandIn::start().await.expect("stand-in");
    cluster.create_namespace("paas-apps").expect("namespace");
    cluster
        .write_kubeconfig(dir.path().join("kubeconfig.yaml"), "paas-apps")
        .expect("kubeconfig");
    let mut server_keys = String::new();
    let cacert = if tls {
        let pair = exsec::tls::generate_pair(
            &dir.path().join("tls"),
            &["127.0.0.1".to_owned()],
            1,
            std::time::SystemTime::now(),
        )
        .expect("certificate");
        server_keys = "tls_cert = \"tls/tls.crt\"\ntls_key = \"tls/tls.key\"\n".to_owned();
        Some(pair.cert)
    } else {
        None
    };
    let config_path = dir.path().join("config.toml");
    std::fs::write(
        &config_path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n{server_keys}[storage]\npath = \"exsec.redb\"\n[keys]\ndir = \"keys.d\"\n[auth]\nadmin_token_file = \"admin.token\"\n[cluster]\ntarget = \"kubernetes\"\nkubeconfig = \"kubeconfig.yaml\"\nnamespace = \"paas-apps\"\n"
        ),
    )
    .expect("config");
    let config = exsec::config::Config::load(&config_path).expect("config loads");
    let server = exsec::app::start(&config, None)
        .await
        .expect("server starts");
    let token = std::fs::read_to_string(server.admin_token_file())
        .expect("token")
        .trim()
        .to_owned();
    let running = Running {
        _dir: dir,
        _cluster: cluster,
        server,
        token,
        cacert,
    };
    let mut client = connect(&running).await;
    let mut seed = vec![(
        "PUT".to_owned(),
        "/v1/tenants/acme".to_owned(),
        String::new(),
    )];
    for key in 0..5 {
        seed.push((
            "PUT".to_owned(),
            format!("/v1/tenants/acme/external-secrets/bench/TENANT_{key}"),
            r#"{"value":"sk-tenant-0123456789abcdef"}"#.to_owned(),
        ));
    }
    for app in 0..APPS {
        seed.push((
            "PUT".to_owned(),
            format!("/v1/apps/app-{app}"),
            r#"{"tenant_id":"acme"}"#.to_owned(),
        ));
    }
    for (method, path, body) in seed {
        let status = send(&mut client, &running.token, &method, &path, &body).await;
        assert!(status == 200 || status == 201, "{method} {path}: {status}");
    }
    running
}

/// One keep-alive connection, plain or TLS (the handshake happens here).
async fn connect(running: &Running) -> SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(running.server.addr())
        .await
        .expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    match &running.cacert {
        None => handshake(stream).await,
        Some(cacert) => {
            let config = exsec::tls::client::client_config(Some(cacert)).expect("trust");
            let stream = exsec::tls::client::connect(config, "127.0.0.1", stream)
                .await
                .expect("TLS handshake");
            handshake(stream).await
        }
    }
}

async fn handshake<S>(stream: S) -> SendRequest<Full<Bytes>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
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

/// What each measured request is.
#[derive(Clone, Copy)]
enum Work {
    SecretWrite,
    Deploy,
}

impl Work {
    /// The `i`-th request of client `c`: method, path, body, expected status.
    fn request(self, c: usize, i: u64) -> (&'static str, String, String) {
        match self {
            Work::SecretWrite => (
                "PUT",
                format!(
                    "/v1/apps/app-{c}/external-secrets/bench/KEY_{:02}",
                    i as usize % KEYS
                ),
                r#"{"value":"sk-0123456789abcdef0123456789abcdef0123456789abcdef"}"#.to_owned(),
            ),
            Work::Deploy => (
                "POST",
                format!("/v1/apps/app-{}/deploys", c + CLIENTS * (i as usize % 3)),
                format!(r#"{{"image_ref":"registry.example/web:{i}"}}"#),
            ),
        }
    }
}

/// `iters` requests over [`CLIENTS`] keep-alive connections (opened, and
/// handshaken, before the clock starts); the time until the last answer.
async fn measure(running: &Arc<Running>, work: Work, iters: u64) -> Duration {
    let per_client = iters.div_ceil(CLIENTS as u64);
    let mut connections = Vec::new();
    for _ in 0..CLIENTS {
        connections.push(connect(running).await);
    }
    let start = Instant::now();
    let clients: Vec<_> = connections
        .into_iter()
        .enumerate()
        .map(|(c, mut client)| {
            let running = running.clone();
            tokio::spawn(async move {
                for i in 0..per_client {
                    let (method, path, body) = work.request(c, i);
                    let status = send(&mut client, &running.token, method, &path, &body).await;
                    assert!(status == 200 || status == 201, "{method} {path}: {status}");
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

fn http_and_https(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for (scheme, tls) in [("http", false), ("https", true)] {
        let running = Arc::new(runtime.block_on(start(tls)));
        let mut group = c.benchmark_group(scheme);
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(8))
            .throughput(Throughput::Elements(1));
        for (name, work) in [
            ("durable secret PUT", Work::SecretWrite),
            ("deploy", Work::Deploy),
        ] {
            group.bench_function(format!("{name}, {CLIENTS} clients"), |b| {
                b.iter_custom(|iters| runtime.block_on(measure(&running, work, iters)))
            });
        }
        group.finish();
        if let Ok(running) = Arc::try_unwrap(running) {
            runtime.block_on(running.server.shutdown());
        }
    }
}

#[allow(missing_docs, reason = "criterion generates the group function")]
mod group {
    use super::*;
    criterion_group!(benches, http_and_https);
}
use group::benches;
criterion_main!(benches);
