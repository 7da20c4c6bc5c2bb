//! A small HTTP/1.1 client for the daemon's API, on hyper's client
//! connection (one connection per request: the CLI makes a handful).
//!
//! It reaches the daemon over `http://`, `https://` (trusting `--cacert`,
//! else the system's CA store; the TLS configuration is built only for
//! such URLs) or a local socket (`unix:/run/exsec/exsec.sock`). It sends
//! the bearer token, reads JSON answers, turns problem+json into
//! [`Problem`], and streams large bodies (backups) to a sink. It never logs
//! or prints a request body: secret values travel in them.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Response, Uri};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use zeroize::Zeroizing;

use super::CliError;
use crate::tls::client::{CertificateProblem, TrustError};

/// Where the daemon listens unless `--url`/`EXSEC_URL` says otherwise.
pub const DEFAULT_URL: &str = "http://127.0.0.1:7780";
/// Longest wait for a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a whole answer: above the daemon's deploy budget plus
/// its queue timeout, so a slow deploy is answered, not abandoned.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a call to the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `--url` is not an `http://`, `https://` or `unix:` URL.
    #[error("invalid daemon URL {url:?}: {reason}")]
    InvalidUrl {
        /// What was given.
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The CAs to trust for an `https://` URL cannot be loaded.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// The daemon's certificate was refused.
    #[error("{}", certificate_message(url, host, problem))]
    Certificate {
        /// The URL.
        url: String,
        /// The host the certificate was checked against.
        host: String,
        /// What is wrong with it.
        problem: CertificateProblem,
        /// `--cacert`, when given.
        cacert: Option<PathBuf>,
    },
    /// The TLS handshake failed for another reason.
    #[error("the TLS handshake with the exsec daemon at {url} failed")]
    Handshake {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The token file could not be read.
    #[error("cannot read the token file {path}")]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Nothing listens there, or the network failed.
    #[error("cannot reach the exsec daemon at {url}")]
    Connect {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The daemon did not answer in time.
    #[error("the exsec daemon at {url} did not answer within {seconds}s")]
    Timeout {
        /// The URL.
        url: String,
        /// The limit.
        seconds: u64,
    },
    /// HTTP failed mid-way.
    #[error("the connection to the exsec daemon failed")]
    Http(#[source] hyper::Error),
    /// The daemon answered with an error.
    #[error("{0}")]
    Problem(Problem),
    /// The answer is not the JSON expected.
    #[error("the daemon's answer to {path} is not valid JSON")]
    Decode {
        /// The request path.
        path: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// Writing a streamed body to its destination failed.
    #[error("cannot write the downloaded data")]
    Sink(#[source] io::Error),
}

/// An RFC 9457 problem answered by the daemon.
#[derive(Debug, Clone)]
pub struct Problem {
    /// HTTP status.
    pub status: u16,
    /// The stable machine `code` (empty if the answer had none).
    pub code: String,
    /// The daemon's `detail`.
    pub detail: String,
    /// The whole problem object (extra members such as `deploy_id`).
    pub body: Value,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.code.is_empty() {
            write!(f, "{} (HTTP {})", self.detail, self.status)
        } else {
            write!(f, "{} (HTTP {}, {})", self.detail, self.status, self.code)
        }
    }
}

/// A successful answer.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status (2xx).
    pub status: u16,
    /// The JSON body (`Null` when empty, e.g. 204).
    pub body: Value,
}

/// An answer read as the DTO of its route (`crate::api::dto`, the types
/// the daemon serializes). A member missing or of another type (a daemon
/// of another version) is an unexpected answer, not a panic.
pub fn decode<T: DeserializeOwned>(body: &Value) -> Result<T, CliError> {
    T::deserialize(body).map_err(|error| CliError::Unexpected(error.to_string()))
}

/// A request body as JSON (a DTO of `crate::api::dto`).
pub fn json_body(body: &impl serde::Serialize) -> Result<Bytes, CliError> {
    serde_json::to_vec(body)
        .map(Bytes::from)
        .map_err(|error| CliError::Unexpected(format!("cannot encode the request: {error}")))
}

/// How the daemon is reached.
enum Transport {
    /// TCP to `host:port`, in clear.
    Http { host: String, port: u16 },
    /// TCP to `host:port`, TLS checked against `host`.
    Https {
        host: String,
        port: u16,
        config: Arc<rustls::ClientConfig>,
        cacert: Option<PathBuf>,
    },
    /// A local socket.
    Unix { path: PathBuf },
}

/// The daemon's address and the token to send.
pub struct Client {
    url: String,
    transport: Transport,
    authority: String,
    base_path: String,
    token: Option<Zeroizing<String>>,
}

/// What `--url` accepts, for messages.
const URL_FORMS: &str = "expected http://HOST[:PORT], https://HOST[:PORT] or unix:/PATH/TO/SOCKET";

impl Client {
    /// Parses `url` and reads the token: `--token-file` first, then the
    /// `EXSEC_TOKEN` environment variable, else none. An `https://` URL
    /// trusts the certificates in `cacert`, else the system's store.
    pub fn new(
        url: &str,
        token_file: Option<&Path>,
        cacert: Option<&Path>,
    ) -> Result<Self, ClientError> {
        let invalid = |reason| ClientError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let (transport, authority, base_path) = if let Some(path) = url.strip_prefix("unix:") {
            let path = path.trim_start_matches("//");
            if path.is_empty() {
                return Err(invalid(
                    "the socket path is missing, e.g. unix:/run/exsec/exsec.sock",
                ));
            }
            let transport = Transport::Unix {
                path: PathBuf::from(path),
            };
            (transport, "localhost".to_owned(), String::new())
        } else {
            let uri: Uri = url.parse().map_err(|_| invalid(URL_FORMS))?;
            let (tls, default_port) = match uri.scheme_str() {
                Some("http") => (false, 80),
                Some("https") => (true, 443),
                _ => return Err(invalid(URL_FORMS)),
            };
            let authority = uri
                .authority()
                .ok_or_else(|| invalid("the host is missing"))?;
            if authority.as_str().contains('@') {
                return Err(invalid(
                    "credentials in the URL are not used; pass the token with --token-file or EXSEC_TOKEN",
                ));
            }
            let host = authority
                .host()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = authority.port_u16().unwrap_or(default_port);
            let transport = if tls {
                Transport::Https {
                    host,
                    port,
                    config: crate::tls::client::client_config(cacert)?,
                    cacert: cacert.map(Path::to_owned),
                }
            } else {
                Transport::Http { host, port }
            };
            let base_path = uri.path().trim_end_matches('/').to_owned();
            (transport, authority.as_str().to_owned(), base_path)
        };
        let token = match token_file {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| ClientError::TokenFile {
                        path: path.to_owned(),
                        source,
                    })?;
                Some(Zeroizing::new(text.trim().to_owned()))
            }
            None => std::env::var("EXSEC_TOKEN")
                .ok()
                .map(|t| Zeroizing::new(t.trim().to_owned())),
        }
        .filter(|t| !t.is_empty());
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            transport,
            authority,
            base_path,
            token,
        })
    }

    /// The daemon URL, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether a token will be sent.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// `GET path`, JSON answer.
    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        Ok(self.request(Method::GET, path, None, &[]).await?.body)
    }

    /// Sends a request with an optional JSON body; a 2xx answer's JSON, or
    /// the problem as an error.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        headers: &[(&str, &str)],
    ) -> Result<Answer, ClientError> {
        let response = self.send(method, path, body, headers).await?;
        let status = response.status().as_u16();
        let bytes = self.collect(response).await?;
        if !(200..300).contains(&status) {
            return Err(ClientError::Problem(problem(status, &bytes)));
        }
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|source| ClientError::Decode {
                path: path.to_owned(),
                source,
            })?
        };
        Ok(Answer { status, body })
    }

    /// `GET path`, streaming a 2xx body into `sink`; returns the bytes
    /// written.
    pub async fn download(
        &self,
        path: &str,
        sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> Result<u64, ClientError> {
        let response = self.send(Method::GET, path, None, &[]).await?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let bytes = self.collect(response).await?;
            return Err(ClientError::Problem(problem(status, &bytes)));
        }
        let mut body = response.into_body();
        let mut written = 0u64;
        let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
        loop {
            let frame = tokio::time::timeout_at(deadline, body.frame())
                .await
                .map_err(|_| self.timeout())?;
            let Some(frame) = frame else { break };
            let frame = frame.map_err(ClientError::Http)?;
            if let Some(data) = frame.data_ref() {
                sink(data).map_err(ClientError::Sink)?;
                written += data.len() as u64;
            }
        }
        Ok(written)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        headers: &[(&str, &str)],
    ) -> Result<Response<Incoming>, ClientError> {
        let mut sender = match &self.transport {
            Transport::Http { host, port } => {
                let stream = self.connect_tcp(host, *port).await?;
                self.handshake(stream).await?
            }
            Transport::Https {
                host,
                port,
                config,
                cacert,
            } => {
                let stream = self.connect_tcp(host, *port).await?;
                let connect = crate::tls::client::connect(config.clone(), host, stream);
                let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
                    .await
                    .map_err(|_| self.timeout())?
                    .map_err(
                        |source| match crate::tls::client::certificate_problem(&source) {
                            Some(problem) => ClientError::Certificate {
                                url: self.url.clone(),
                                host: host.clone(),
                                problem,
                                cacert: cacert.clone(),
                            },
                            None => ClientError::Handshake {
                                url: self.url.clone(),
                                source,
                            },
                        },
                    )?;
                self.handshake(stream).await?
            }
            Transport::Unix { path } => {
                let stream = tokio::time::timeout(CONNECT_TIMEOUT, UnixStream::connect(path))
                    .await
                    .map_err(|_| self.timeout())?
                    .map_err(|source| ClientError::Connect {
                        url: self.url.clone(),
                        source,
                    })?;
                self.handshake(stream).await?
            }
        };
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base_path))
            .header(HOST, self.authority.as_str())
            .header("user-agent", concat!("exsec/", env!("CARGO_PKG_VERSION")));
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, format!("Bearer {}", token.as_str()));
        }
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|_| ClientError::InvalidUrl {
                url: format!("{}{path}", self.url),
                reason: "the request path is not valid",
            })?;
        tokio::time::timeout(REQUEST_TIMEOUT, sender.send_request(request))
            .await
            .map_err(|_| self.timeout())?
            .map_err(ClientError::Http)
    }

    async fn connect_tcp(&self, host: &str, port: u16) -> Result<TcpStream, ClientError> {
        tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port)))
            .await
            .map_err(|_| self.timeout())?
            .map_err(|source| ClientError::Connect {
                url: self.url.clone(),
                source,
            })
    }

    /// HTTP/1.1 on an open connection; the connection is driven on its own
    /// task.
    async fn handshake<S>(
        &self,
        stream: S,
    ) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, ClientError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(ClientError::Http)?;
        tokio::spawn(connection);
        Ok(sender)
    }

    async fn collect(&self, response: Response<Incoming>) -> Result<Bytes, ClientError> {
        let collected = tokio::time::timeout(REQUEST_TIMEOUT, response.into_body().collect())
            .await
            .map_err(|_| self.timeout())?
            .map_err(ClientError::Http)?;
        Ok(collected.to_bytes())
    }

    fn timeout(&self) -> ClientError {
        ClientError::Timeout {
            url: self.url.clone(),
            seconds: REQUEST_TIMEOUT.as_secs(),
        }
    }
}

/// Reads a problem+json body; anything else becomes a problem without a
/// code whose detail is the start of the text.
fn problem(status: u16, bytes: &[u8]) -> Problem {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(body) if body.is_object() => Problem {
            status,
            code: body["code"].as_str().unwrap_or_default().to_owned(),
            detail: body["detail"]
                .as_str()
                .or_else(|| body["title"].as_str())
                .unwrap_or("the daemon refused the request")
                .to_owned(),
            body,
        },
        _ => {
            let text: String = String::from_utf8_lossy(bytes).chars().take(200).collect();
            let detail = if text.trim().is_empty() {
                "the daemon answered with an error and no details".to_owned()
            } else {
                text.trim().to_owned()
            };
            Problem {
                status,
                code: String::new(),
                detail,
                body: Value::Null,
            }
        }
    }
}

/// The first line of a certificate error: what is wrong, for which URL.
fn certificate_message(url: &str, host: &str, problem: &CertificateProblem) -> String {
    match problem {
        CertificateProblem::NameMismatch { presented } if !presented.is_empty() => format!(
            "the certificate of the exsec daemon at {url} is not valid for {host}: it names {}",
            presented.join(", ")
        ),
        CertificateProblem::NameMismatch { .. } => {
            format!("the certificate of the exsec daemon at {url} is not valid for {host}")
        }
        CertificateProblem::UnknownIssuer => format!(
            "the certificate of the exsec daemon at {url} is not issued by a CA this client trusts"
        ),
        CertificateProblem::Expired {
            not_after: Some(when),
        } => format!("the certificate of the exsec daemon at {url} expired at {when}"),
        CertificateProblem::Expired { not_after: None } => {
            format!("the certificate of the exsec daemon at {url} has expired")
        }
        CertificateProblem::NotYetValid => {
            format!("the certificate of the exsec daemon at {url} is not valid yet")
        }
        CertificateProblem::Other(reason) => {
            format!("the certificate of the exsec daemon at {url} was refused: {reason}")
        }
    }
}

/// Percent-encodes a query value (everything but unreserved characters).
pub fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer that does not fit its DTO is an unexpected answer, not a
    /// panic.
    #[test]
    fn answers_that_do_not_fit_their_dto_are_unexpected() {
        use crate::api::dto::TenantListDto;
        let fits = serde_json::json!({"tenants": [{"tenant_id": "acme", "created_at": "t"}]});
        let list: TenantListDto = decode(&fits).unwrap();
        assert_eq!(list.tenants[0].tenant_id, "acme");
        for wrong in [
            serde_json::json!({"tenants": 5}),
            serde_json::json!({}),
            Value::Null,
        ] {
            let error = decode::<TenantListDto>(&wrong).unwrap_err();
            assert!(matches!(error, CliError::Unexpected(_)), "{error:?}");
        }
    }

    #[test]
    fn urls_are_parsed() {
        let tcp = |client: &Client| match &client.transport {
            Transport::Http { host, port } => (host.clone(), *port),
            _ => panic!("not plain TCP"),
        };
        let client = Client::new("http://127.0.0.1:7780/", None, None).unwrap();
        assert_eq!(tcp(&client), ("127.0.0.1".to_owned(), 7780));
        assert_eq!(client.base_path, "");
        let client = Client::new("http://[::1]/exsec", None, None).unwrap();
        assert_eq!(tcp(&client), ("::1".to_owned(), 80));
        assert_eq!(client.base_path, "/exsec");
        for url in ["unix:/run/exsec/exsec.sock", "unix:///run/exsec/exsec.sock"] {
            let client = Client::new(url, None, None).unwrap();
            let Transport::Unix { path } = &client.transport else {
                panic!("not a socket: {url}");
            };
            assert_eq!(path, Path::new("/run/exsec/exsec.sock"));
            assert_eq!(client.authority, "localhost");
        }
        for url in [
            "127.0.0.1:7780",
            "ftp://127.0.0.1",
            "unix:",
            "http://user:pw@127.0.0.1",
        ] {
            assert!(
                matches!(
                    Client::new(url, None, None),
                    Err(ClientError::InvalidUrl { .. })
                ),
                "{url}"
            );
        }
    }

    #[test]
    fn https_reads_cacert_only_for_https_urls() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent.pem");
        // An http:// URL never reads it.
        assert!(Client::new("http://127.0.0.1:7780", None, Some(&missing)).is_ok());
        assert!(matches!(
            Client::new("https://127.0.0.1:7780", None, Some(&missing)),
            Err(ClientError::Trust(TrustError::Read { .. }))
        ));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        assert!(matches!(
            Client::new("https://127.0.0.1:7780", None, Some(&empty)),
            Err(ClientError::Trust(TrustError::NoCertificate { .. }))
        ));
        let pair = crate::tls::generate_pair(
            dir.path(),
            &["exsec.internal".to_owned()],
            1,
            std::time::SystemTime::now(),
        )
        .unwrap();
        let client = Client::new("https://exsec.internal:7780", None, Some(&pair.cert)).unwrap();
        let Transport::Https { host, port, .. } = &client.transport else {
            panic!("not https");
        };
        assert_eq!((host.as_str(), *port), ("exsec.internal", 7780));
    }

    #[test]
    fn problems_are_read_with_or_without_json() {
        let parsed = problem(
            404,
            br#"{"code":"app_not_found","detail":"app web not found"}"#,
        );
        assert_eq!(parsed.code, "app_not_found");
        assert_eq!(
            parsed.to_string(),
            "app web not found (HTTP 404, app_not_found)"
        );
        let plain = problem(502, b"Bad Gateway");
        assert_eq!(plain.code, "");
        assert_eq!(plain.detail, "Bad Gateway");
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode_query("deploy.created"), "deploy.created");
        assert_eq!(encode_query("a b&c"), "a%20b%26c");
    }
}
