//! The listener's side of TLS: the certificate pair read from PEM files,
//! checked (the key must match the certificate), and served through one
//! rustls `ServerConfig` whose certificate resolver holds the current pair.
//!
//! A reload reads both files again and swaps the pair whole, so a
//! handshake sees the old pair or the new one, never a mix; a bad new pair
//! never replaces a good one. Watching the files and auditing failures is
//! `crate::tlswatch`'s job; this module only reads, checks and swaps.

use std::fmt;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use zeroize::Zeroizing;

use super::x509::CertificateInfo;

/// Largest certificate or key file read; a chain is a few KiB.
const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// A TLS connection accepted by [`ServerTls::accept`].
pub type ServerStream = tokio_rustls::server::TlsStream<TcpStream>;

/// Why a certificate pair cannot be served. Messages name the file and
/// never quote its content.
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A file is larger than any certificate or key.
    #[error("{} is larger than {MAX_PEM_BYTES} bytes; it is not a PEM certificate or key", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The PEM text is malformed.
    #[error("{} is not valid PEM: {reason}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong (never the content).
        reason: &'static str,
    },
    /// The certificate file holds no certificate.
    #[error("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no private key.
    #[error(
        "{} holds no PEM private key (PKCS#8 \"PRIVATE KEY\", SEC1 \"EC PRIVATE KEY\" or PKCS#1 \"RSA PRIVATE KEY\")",
        path.display()
    )]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// The certificate or the key is not usable.
    #[error("{} cannot be used: {reason}", path.display())]
    Unusable {
        /// The file at fault.
        path: PathBuf,
        /// rustls's reason (never key material).
        reason: String,
    },
    /// The key is not the certificate's.
    #[error("the private key {} does not match the certificate {}", key.display(), cert.display())]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
}

/// The configured certificate and key files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
}

/// The result of [`ServerTls::reload`].
#[derive(Debug)]
pub enum Reload {
    /// The files hold what is served.
    Unchanged,
    /// A new pair is served from now on.
    Replaced {
        /// What was served before.
        previous: CertificateInfo,
        /// What is served now.
        current: CertificateInfo,
    },
    /// The files hold a pair that cannot be served; the current one stays.
    Failed {
        /// Identifies the bad content (a digest of both files, or the read
        /// error), so that the same problem is reported once.
        identity: String,
        /// Why.
        error: PairError,
    },
}

/// The served certificate pair and the rustls configuration serving it.
pub struct ServerTls {
    files: PairFiles,
    current: Arc<CurrentPair>,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl ServerTls {
    /// Reads and checks the pair; TLS 1.2 and 1.3 with the ring provider.
    pub fn load(files: PairFiles) -> Result<Self, PairError> {
        let provider = Arc::new(super::provider());
        let content = Content::read(&files)?;
        let served = Served::check(&files, &content, &provider)?;
        let current = Arc::new(CurrentPair {
            provider: provider.clone(),
            served: RwLock::new(Arc::new(served)),
        });
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|error| PairError::Unusable {
                path: files.cert.clone(),
                reason: error.to_string(),
            })?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            files,
            current,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// The files this pair comes from.
    pub fn files(&self) -> &PairFiles {
        &self.files
    }

    /// The certificate served now.
    pub fn certificate(&self) -> CertificateInfo {
        self.current.served().info.clone()
    }

    /// Reads the files again and swaps in their pair if it differs from the
    /// served one and is good. Blocking (file reads): call it off the
    /// async executor.
    pub fn reload(&self) -> Reload {
        let content = match Content::read(&self.files) {
            Ok(content) => content,
            Err(error) => {
                return Reload::Failed {
                    identity: error.to_string(),
                    error,
                };
            }
        };
        let previous = self.current.served();
        if content.digest == previous.digest {
            return Reload::Unchanged;
        }
        match Served::check(&self.files, &content, &self.current.provider) {
            Ok(served) => {
                let current = served.info.clone();
                self.current.replace(served);
                Reload::Replaced {
                    previous: previous.info.clone(),
                    current,
                }
            }
            Err(error) => Reload::Failed {
                identity: hex::encode(content.digest),
                error,
            },
        }
    }

    /// The TLS handshake on an accepted connection (no time limit: the
    /// caller bounds it).
    pub async fn accept(&self, stream: TcpStream) -> io::Result<ServerStream> {
        self.acceptor.accept(stream).await
    }
}

/// The pair handed to every handshake; swapped whole on reload.
struct CurrentPair {
    provider: Arc<CryptoProvider>,
    served: RwLock<Arc<Served>>,
}

impl CurrentPair {
    fn served(&self) -> Arc<Served> {
        self.served
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn replace(&self, served: Served) {
        *self
            .served
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(served);
    }
}

impl fmt::Debug for CurrentPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CurrentPair")
            .field("certificate", &self.served().info)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for CurrentPair {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.served().key.clone())
    }
}

/// A checked pair: what rustls serves, what operators are shown, and the
/// digest of the files it came from.
struct Served {
    key: Arc<CertifiedKey>,
    info: CertificateInfo,
    digest: [u8; 32],
}

impl Served {
    fn check(
        files: &PairFiles,
        content: &Content,
        provider: &CryptoProvider,
    ) -> Result<Self, PairError> {
        let pem_error = |path: &Path| {
            let path = path.to_owned();
            move |error: pem::Error| PairError::Pem {
                path,
                reason: pem_reason(&error),
            }
        };
        let chain = CertificateDer::pem_slice_iter(&content.cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(pem_error(&files.cert))?;
        let Some(leaf) = chain.first() else {
            return Err(PairError::NoCertificate {
                path: files.cert.clone(),
            });
        };
        let info = CertificateInfo::from_der(leaf).ok_or_else(|| PairError::Unusable {
            path: files.cert.clone(),
            reason: "the first certificate is not a valid X.509 certificate".to_owned(),
        })?;
        let key = match PrivateKeyDer::from_pem_slice(&content.key) {
            Ok(key) => key,
            Err(pem::Error::NoItemsFound) => {
                return Err(PairError::NoKey {
                    path: files.key.clone(),
                });
            }
            Err(error) => return Err(pem_error(&files.key)(error)),
        };
        let signing_key = provider
            .key_provider
            .load_private_key(key)
            .map_err(|error| PairError::Unusable {
                path: files.key.clone(),
                reason: error.to_string(),
            })?;
        let key = CertifiedKey::new(chain, signing_key);
        match key.keys_match() {
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                return Err(PairError::Mismatch {
                    cert: files.cert.clone(),
                    key: files.key.clone(),
                });
            }
            Err(error) => {
                return Err(PairError::Unusable {
                    path: files.cert.clone(),
                    reason: error.to_string(),
                });
            }
        }
        Ok(Self {
            key: Arc::new(key),
            info,
            digest: content.digest,
        })
    }
}

/// Both files as read, and a digest identifying the pair's content.
struct Content {
    cert: Vec<u8>,
    key: Zeroizing<Vec<u8>>,
    digest: [u8; 32],
}

impl Content {
    fn read(files: &PairFiles) -> Result<Self, PairError> {
        let cert = read_limited(&files.cert)?;
        let key = Zeroizing::new(read_limited(&files.key)?);
        let mut hasher = Sha256::new();
        hasher.update(Sha256::digest(&cert));
        hasher.update(Sha256::digest(&key));
        Ok(Self {
            cert,
            key,
            digest: hasher.finalize().into(),
        })
    }
}

/// Reads a whole file of at most [`MAX_PEM_BYTES`] (a path pointing at
/// something endless must not exhaust memory).
fn read_limited(path: &Path) -> Result<Vec<u8>, PairError> {
    let read_error = |source| PairError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(PairError::TooLarge {
            path: path.to_owned(),
        });
    }
    Ok(bytes)
}

/// A PEM error without the bytes some variants carry.
fn pem_reason(error: &pem::Error) -> &'static str {
    match error {
        pem::Error::MissingSectionEnd { .. } => "a section has no END line",
        pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed",
        pem::Error::Base64Decode(_) => "a section is not valid base64",
        pem::Error::SectionTooLarge => "a section is too large",
        _ => "it cannot be parsed",
    }
}
