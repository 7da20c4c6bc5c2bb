//! TLS for the listener (SPEC §11.1) and for the CLI, on rustls with the
//! `ring` provider, the one kube already uses: no OpenSSL, no aws-lc.
//!
//! This is the only importer of rustls, tokio-rustls, rustls-native-certs
//! and rcgen.
//! - [`server`]: the served certificate pair, checked and swapped whole on
//!   reload.
//! - [`client`]: whom the CLI trusts, and what a refused certificate means.
//! - [`generate`]: `exsec tls generate`, a self-signed pair for sites
//!   without a CA.
//! - [`x509`]: serial, validity and fingerprint, for people.

pub mod client;
pub mod generate;
pub mod server;
pub mod x509;

pub use generate::{GenerateError, GeneratedPair, generate_pair};
pub use server::{PairError, PairFiles, Reload, ServerTls};
pub use x509::CertificateInfo;

/// Makes ring the process-wide rustls provider. Every configuration built
/// here names its provider explicitly; this covers the ones built by other
/// crates (kube's client), which would panic if a second provider were
/// ever compiled in and none chosen. Idempotent.
pub fn install_provider() {
    // Err only means a provider is installed already.
    let _ = provider().install_default();
}

/// The crypto provider of every TLS configuration exsec builds.
fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}
