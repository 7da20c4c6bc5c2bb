//! The CLI's side of TLS: which certificates it trusts (`--cacert`, else
//! the system's store) and what a refused certificate means for the person
//! at the terminal (wrong name, unknown issuer, expired).
//!
//! Built only for `https://` URLs: the system store is read from disk, and
//! most commands talk over loopback or the local socket.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, RootCertStore};
use tokio::net::TcpStream;

/// A TLS connection to the daemon.
pub type ClientStream = tokio_rustls::client::TlsStream<TcpStream>;

/// Why the CLI cannot decide whom to trust.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// `--cacert` cannot be read.
    #[error("cannot read the CA certificate file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `--cacert` holds no usable certificate.
    #[error("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----) usable as a CA", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The system store is empty.
    #[error(
        "no CA certificates found in the system store (/etc/ssl/certs); pass the daemon's CA with --cacert FILE or EXSEC_CACERT"
    )]
    NoSystemRoots,
}

/// What is wrong with the certificate the daemon presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateProblem {
    /// The certificate does not name the host of the URL.
    NameMismatch {
        /// The names it holds, when rustls reports them.
        presented: Vec<String>,
    },
    /// No trusted CA issued it (or it is self-signed and not trusted).
    UnknownIssuer,
    /// Its validity has ended.
    Expired {
        /// When, RFC 3339, when rustls reports it.
        not_after: Option<String>,
    },
    /// Its validity has not started (a clock is wrong).
    NotYetValid,
    /// Something else about the certificate.
    Other(String),
}

/// A client configuration trusting the certificates of `cacert` (PEM, one
/// or more: a CA, or the daemon's self-signed certificate itself), else
/// the system's store.
pub fn client_config(cacert: Option<&Path>) -> Result<Arc<ClientConfig>, TrustError> {
    let mut roots = RootCertStore::empty();
    match cacert {
        Some(path) => {
            let read_error = |source| TrustError::Read {
                path: path.to_owned(),
                source,
            };
            let bytes = std::fs::read(path).map_err(read_error)?;
            let certificates = CertificateDer::pem_slice_iter(&bytes)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| TrustError::NoCertificate {
                    path: path.to_owned(),
                })?;
            let (added, _ignored) = roots.add_parsable_certificates(certificates);
            if added == 0 {
                return Err(TrustError::NoCertificate {
                    path: path.to_owned(),
                });
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(TrustError::NoSystemRoots);
            }
        }
    }
    let provider = Arc::new(super::provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|_| TrustError::NoSystemRoots)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The TLS handshake with the daemon at `host` (a DNS name or an IP
/// address, checked against the certificate).
pub async fn connect(
    config: Arc<ClientConfig>,
    host: &str,
    stream: TcpStream,
) -> io::Result<ClientStream> {
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "not a valid TLS server name"))?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await
}

/// The certificate problem behind a failed handshake, if that was the
/// cause.
pub fn certificate_problem(error: &io::Error) -> Option<CertificateProblem> {
    let rustls::Error::InvalidCertificate(problem) =
        error.get_ref()?.downcast_ref::<rustls::Error>()?
    else {
        return None;
    };
    Some(match problem {
        CertificateError::NotValidForName => CertificateProblem::NameMismatch {
            presented: Vec::new(),
        },
        CertificateError::NotValidForNameContext { presented, .. } => {
            CertificateProblem::NameMismatch {
                presented: presented.iter().map(|name| bare_name(name)).collect(),
            }
        }
        CertificateError::UnknownIssuer | CertificateError::BadSignature => {
            CertificateProblem::UnknownIssuer
        }
        CertificateError::Expired => CertificateProblem::Expired { not_after: None },
        CertificateError::ExpiredContext { not_after, .. } => CertificateProblem::Expired {
            not_after: Some(unix_time_text(*not_after)),
        },
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            CertificateProblem::NotYetValid
        }
        other => CertificateProblem::Other(format!("{other:?}")),
    })
}

/// `exsec.internal` from rustls's `DnsName("exsec.internal")`, and
/// `127.0.0.1` from `IpAddress(127.0.0.1)`.
fn bare_name(presented: &str) -> String {
    let inner = presented
        .strip_prefix("DnsName(\"")
        .and_then(|rest| rest.strip_suffix("\")"))
        .or_else(|| {
            presented
                .strip_prefix("IpAddress(")
                .and_then(|rest| rest.strip_suffix(')'))
        });
    inner.unwrap_or(presented).to_owned()
}

fn unix_time_text(time: UnixTime) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(time.as_secs());
    humantime::format_rfc3339_seconds(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presented_names_are_shown_bare() {
        assert_eq!(bare_name("DnsName(\"exsec.internal\")"), "exsec.internal");
        assert_eq!(bare_name("IpAddress(127.0.0.1)"), "127.0.0.1");
        assert_eq!(bare_name("something else"), "something else");
    }
}
