//! Load generator for `scripts/bench.sh`: keep-alive HTTP clients against a
//! running `exsec serve`, printing one JSON line per run (count, rate,
//! latency percentiles). It measures a daemon in its own process, as a user
//! runs it, so the daemon's RSS and start-up can be read beside the rates.
//!
//! ```text
//! loadgen --url http://127.0.0.1:PORT --token-file FILE [--clients 32] [--seconds 10]
//!         [--apps 100] [--keys 50] MODE
//! MODE: seed    tenant `bench`, apps app-0…, each with KEYS app secrets (bulk writes)
//!       put     durable secret PUTs (client c writes app-(c % APPS), 10 keys in turn)
//!       deploy  deploys (client c deploys its own apps c, c+CLIENTS, …: no app waits
//!               for another deploy of itself)
//!       fill    PUTs of KEYS new secrets per app, then stop (RSS after writing)
//! ```
//!
//! Not a test and not run by `cargo test`: it is an example so it builds
//! with the dev-dependencies and stays out of the shipped binary.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Keys a `put` client cycles through (the store stays one size).
const PUT_KEYS: usize = 10;
/// Secrets per bulk write when seeding.
const BULK: usize = 1000;

struct Options {
    addr: String,
    token: String,
    clients: usize,
    seconds: f64,
    apps: usize,
    keys: usize,
    mode: String,
}

fn parse() -> Result<Options, String> {
    let mut url = None;
    let mut token_file = None;
    let mut options = Options {
        addr: String::new(),
        token: String::new(),
        clients: 32,
        seconds: 10.0,
        apps: 100,
        keys: 50,
        mode: String::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--url" => url = Some(value()?),
            "--token-file" => token_file = Some(PathBuf::from(value()?)),
            "--clients" => options.clients = value()?.parse().map_err(|e| format!("{e}"))?,
            "--seconds" => options.seconds = value()?.parse().map_err(|e| format!("{e}"))?,
            "--apps" => options.apps = value()?.parse().map_err(|e| format!("{e}"))?,
            "--keys" => options.keys = value()?.parse().map_err(|e| format!("{e}"))?,
            mode if !mode.starts_with('-') && options.mode.is_empty() => {
                options.mode = mode.to_owned()
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let url = url.ok_or("--url is required")?;
    options.addr = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs")?
        .trim_end_matches('/')
        .to_owned();
    let token_file = token_file.ok_or("--token-file is required")?;
    options.token = std::fs::read_to_string(&token_file)
        .map_err(|e| format!("{}: {e}", token_file.display()))?
        .trim()
        .to_owned();
    if options.clients == 0 || options.apps == 0 {
        return Err("--clients and --apps must be positive".to_owned());
    }
    Ok(options)
}

fn main() -> std::process::ExitCode {
    let options = match parse() {
        Ok(options) => Arc::new(options),
        Err(error) => {
            eprintln!("loadgen: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = runtime.block_on(async {
        match options.mode.as_str() {
            "seed" => seed(&options).await.map(|()| None),
            "put" | "deploy" => timed(&options).await.map(Some),
            "fill" => fill(&options).await.map(Some),
            other => Err(format!("unknown mode {other:?}")),
        }
    });
    match result {
        Ok(Some(report)) => {
            println!("{report}");
            std::process::ExitCode::SUCCESS
        }
        Ok(None) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("loadgen: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Tenant `bench`, `apps` apps, `keys` app secrets each (bulk writes of at
/// most [`BULK`] secrets, `clients` at a time).
async fn seed(options: &Arc<Options>) -> Result<(), String> {
    let mut client = connect(&options.addr).await?;
    expect_ok(send(&mut client, &options.token, "PUT", "/v1/tenants/bench", "").await?)?;
    for app in 0..options.apps {
        let path = format!("/v1/apps/app-{app}");
        expect_ok(
            send(
                &mut client,
                &options.token,
                "PUT",
                &path,
                r#"{"tenant_id":"bench"}"#,
            )
            .await?,
        )?;
    }
    let mut jobs = Vec::new();
    for app in 0..options.apps {
        for first in (0..options.keys).step_by(BULK) {
            jobs.push((app, first..(first + BULK).min(options.keys)));
        }
    }
    let jobs = Arc::new(jobs);
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..options.clients)
        .map(|_| {
            let (options, jobs, next) = (options.clone(), jobs.clone(), next.clone());
            tokio::spawn(async move {
                let mut client = connect(&options.addr).await?;
                loop {
                    let Some((app, keys)) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        return Ok::<(), String>(());
                    };
                    let secrets: Vec<String> = keys
                        .clone()
                        .map(|k| {
                            format!(
                                r#"{{"provider":"bench","key":"KEY_{k:05}","value":"sk-{app:04}-{k:05}-0123456789abcdef0123456789abcdef"}}"#
                            )
                        })
                        .collect();
                    let body = format!(r#"{{"secrets":[{}],"replace":false}}"#, secrets.join(","));
                    let path = format!("/v1/apps/app-{app}/external-secrets");
                    expect_ok(send(&mut client, &options.token, "PUT", &path, &body).await?)?;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// `put` or `deploy` for `seconds` after a one-second warm-up.
async fn timed(options: &Arc<Options>) -> Result<String, String> {
    let warmup = Duration::from_secs(1);
    let measure = Duration::from_secs_f64(options.seconds);
    let mut connections = Vec::new();
    for _ in 0..options.clients {
        connections.push(connect(&options.addr).await?);
    }
    let start = Instant::now();
    let workers: Vec<_> = connections
        .into_iter()
        .enumerate()
        .map(|(c, mut client)| {
            let options = options.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let own_apps: Vec<usize> = (c..options.apps).step_by(options.clients).collect();
                for i in 0usize.. {
                    let (method, path, body) = if options.mode == "put" {
                        (
                            "PUT",
                            format!(
                                "/v1/apps/app-{}/external-secrets/bench/PUT_{:02}",
                                c % options.apps,
                                i % PUT_KEYS
                            ),
                            r#"{"value":"sk-0123456789abcdef0123456789abcdef0123456789abcdef"}"#
                                .to_owned(),
                        )
                    } else {
                        let Some(app) = own_apps.get(i % own_apps.len().max(1)) else {
                            return Ok(latencies);
                        };
                        (
                            "POST",
                            format!("/v1/apps/app-{app}/deploys"),
                            format!(r#"{{"image_ref":"registry.example/web:{i}"}}"#),
                        )
                    };
                    let sent = Instant::now();
                    let status = send(&mut client, &options.token, method, &path, &body).await?;
                    let done = Instant::now();
                    expect_ok(status)?;
                    if done.duration_since(start) >= warmup + measure {
                        return Ok::<_, String>(latencies);
                    }
                    if sent.duration_since(start) >= warmup {
                        latencies.push(done - sent);
                    }
                }
                Ok(latencies)
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.map_err(|e| e.to_string())??);
    }
    Ok(report(&options.mode, options.clients, &mut all, measure))
}

/// `keys` new secrets in each of `apps` apps, by single PUTs from `clients`
/// clients; the rate over the whole run.
async fn fill(options: &Arc<Options>) -> Result<String, String> {
    let total = options.apps * options.keys;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..options.clients)
        .map(|_| {
            let (options, next) = (options.clone(), next.clone());
            tokio::spawn(async move {
                let mut client = connect(&options.addr).await?;
                let mut latencies = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        return Ok::<_, String>(latencies);
                    }
                    let path = format!(
                        "/v1/apps/app-{}/external-secrets/bench/FILL_{:06}",
                        n % options.apps,
                        n / options.apps
                    );
                    let body =
                        format!(r#"{{"value":"sk-fill-{n:08}-0123456789abcdef0123456789abcdef"}}"#);
                    let sent = Instant::now();
                    expect_ok(send(&mut client, &options.token, "PUT", &path, &body).await?)?;
                    latencies.push(sent.elapsed());
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.map_err(|e| e.to_string())??);
    }
    Ok(report("fill", options.clients, &mut all, start.elapsed()))
}

fn report(mode: &str, clients: usize, latencies: &mut [Duration], over: Duration) -> String {
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    format!(
        r#"{{"mode":"{mode}","clients":{clients},"requests":{},"seconds":{:.3},"per_second":{:.1},"p50_ms":{:.3},"p99_ms":{:.3},"max_ms":{:.3}}}"#,
        latencies.len(),
        over.as_secs_f64(),
        latencies.len() as f64 / over.as_secs_f64(),
        at(0.50),
        at(0.99),
        at(1.0),
    )
}

async fn connect(addr: &str) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok(sender)
}

async fn send(
    client: &mut SendRequest<Full<Bytes>>,
    token: &str,
    method: &str,
    path: &str,
    body: &str,
) -> Result<u16, String> {
    client.ready().await.map_err(|e| e.to_string())?;
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .map_err(|e| e.to_string())?;
    let response = client
        .send_request(request)
        .await
        .map_err(|e| format!("{method} {path}: {e}"))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if !(200..300).contains(&status) {
        return Err(format!(
            "{method} {path}: HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    Ok(status)
}

fn expect_ok(status: u16) -> Result<(), String> {
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("HTTP {status}"))
    }
}
