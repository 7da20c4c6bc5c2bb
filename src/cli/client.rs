//! A small HTTP/1.1 client for the daemon's API, on hyper's client
//! connection (one connection per request: the CLI makes a handful).
//!
//! It sends the bearer token, reads JSON answers, turns problem+json into
//! [`Problem`], and streams large bodies (backups) to a sink. It never logs
//! or prints a request body: secret values travel in them. TLS is not
//! implemented (the daemon serves plain HTTP on loopback for now): an
//! `https://` URL is refused with a clear message rather than sent in clear.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Response, Uri};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use zeroize::Zeroizing;

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
    /// `--url` is not an `http://host[:port]` URL.
    #[error("invalid daemon URL {url:?}: {reason}")]
    InvalidUrl {
        /// What was given.
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// An `https://` URL: not supported by this client yet.
    #[error(
        "{url} uses https, which this exsec client does not support yet (the daemon serves plain HTTP on loopback); use http://127.0.0.1:7780 on the daemon's host, or an SSH tunnel"
    )]
    TlsUnsupported {
        /// The URL.
        url: String,
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

/// The daemon's address and the token to send.
pub struct Client {
    url: String,
    host: String,
    port: u16,
    authority: String,
    base_path: String,
    token: Option<Zeroizing<String>>,
}

impl Client {
    /// Parses `url` and reads the token: `--token-file` first, then the
    /// `EXSEC_TOKEN` environment variable, else none.
    pub fn new(url: &str, token_file: Option<&Path>) -> Result<Self, ClientError> {
        let invalid = |reason| ClientError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let uri: Uri = url
            .parse()
            .map_err(|_| invalid("expected http://HOST[:PORT]"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(ClientError::TlsUnsupported {
                    url: url.to_owned(),
                });
            }
            _ => return Err(invalid("expected http://HOST[:PORT]")),
        }
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
            host,
            port: authority.port_u16().unwrap_or(80),
            authority: authority.as_str().to_owned(),
            base_path: uri.path().trim_end_matches('/').to_owned(),
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
        let connect = TcpStream::connect((self.host.as_str(), self.port));
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| self.timeout())?
            .map_err(|source| ClientError::Connect {
                url: self.url.clone(),
                source,
            })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(ClientError::Http)?;
        tokio::spawn(connection);
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

    #[test]
    fn urls_are_parsed_and_https_is_refused_clearly() {
        let client = Client::new("http://127.0.0.1:7780/", None).unwrap();
        assert_eq!((client.host.as_str(), client.port), ("127.0.0.1", 7780));
        assert_eq!(client.base_path, "");
        let client = Client::new("http://[::1]/exsec", None).unwrap();
        assert_eq!((client.host.as_str(), client.port), ("::1", 80));
        assert_eq!(client.base_path, "/exsec");
        assert!(matches!(
            Client::new("https://exsec.example:7780", None),
            Err(ClientError::TlsUnsupported { .. })
        ));
        assert!(matches!(
            Client::new("127.0.0.1:7780", None),
            Err(ClientError::InvalidUrl { .. })
        ));
        assert!(matches!(
            Client::new("http://user:pw@127.0.0.1", None),
            Err(ClientError::InvalidUrl { .. })
        ));
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
