//! The `kube-standin` binary: a stand-in API server in its own process, for benchmarks
//! and manual testing with kubectl.
//!
//! ```text
//! kube-standin [--listen 127.0.0.1:0] [--kubeconfig PATH] [--namespace NS]
//!              [--create-namespace NS]...
//! ```
//!
//! Prints `kube-standin listening on http://ADDR` once ready, then serves until SIGTERM or
//! SIGINT. Faults are set over HTTP: `POST /_standin/faults` (see the README).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use kube_standin::StandIn;

const USAGE: &str = "usage: kube-standin [--listen ADDR] [--kubeconfig PATH] [--namespace NS] [--create-namespace NS]...";

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kube-standin: {error}");
            ExitCode::FAILURE
        }
    }
}

/// What went wrong, for the one line printed before exiting.
#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("{0}\n{USAGE}")]
    Usage(String),
    #[error("cannot listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot write kubeconfig {path}: {source}", path = path.display())]
    Kubeconfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create namespace {name}: {source}")]
    Namespace {
        name: String,
        source: kube_standin::ApiError,
    },
    #[error("cannot wait for signals: {0}")]
    Signal(std::io::Error),
}

#[derive(Debug)]
struct Options {
    listen: SocketAddr,
    kubeconfig: Option<PathBuf>,
    namespace: String,
    create_namespaces: Vec<String>,
}

async fn run() -> Result<(), Error> {
    let options = parse(std::env::args().skip(1))?;
    let standin = StandIn::start_at(options.listen)
        .await
        .map_err(|source| Error::Listen {
            address: options.listen,
            source,
        })?;
    for name in &options.create_namespaces {
        standin
            .create_namespace(name)
            .map_err(|source| Error::Namespace {
                name: name.clone(),
                source,
            })?;
    }
    if let Some(path) = &options.kubeconfig {
        standin
            .write_kubeconfig(path, &options.namespace)
            .map_err(|source| Error::Kubeconfig {
                path: path.clone(),
                source,
            })?;
    }
    println!("kube-standin listening on {}", standin.url());
    // Benchmarks read the line above from a pipe; a failed flush only loses that line.
    let _ = std::io::stdout().flush();
    wait_for_signal().await?;
    standin.shutdown().await;
    Ok(())
}

fn parse(mut arguments: impl Iterator<Item = String>) -> Result<Options, Error> {
    let mut options = Options {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        kubeconfig: None,
        namespace: "default".to_owned(),
        create_namespaces: Vec::new(),
    };
    while let Some(flag) = arguments.next() {
        let mut value = || {
            arguments
                .next()
                .ok_or_else(|| Error::Usage(format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--listen" => {
                let text = value()?;
                options.listen = text
                    .parse()
                    .map_err(|_| Error::Usage(format!("not an address: {text}")))?;
            }
            "--kubeconfig" => options.kubeconfig = Some(PathBuf::from(value()?)),
            "--namespace" => options.namespace = value()?,
            "--create-namespace" => options.create_namespaces.push(value()?),
            "-h" | "--help" => return Err(Error::Usage("help requested".to_owned())),
            other => return Err(Error::Usage(format!("unknown argument {other}"))),
        }
    }
    Ok(options)
}

#[cfg(unix)]
async fn wait_for_signal() -> Result<(), Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).map_err(Error::Signal)?;
    tokio::select! {
        _ = terminate.recv() => Ok(()),
        result = tokio::signal::ctrl_c() => result.map_err(Error::Signal),
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> Result<(), Error> {
    tokio::signal::ctrl_c().await.map_err(Error::Signal)
}
