//! What a command can fail with, the exit code of each failure, and the
//! hint printed under the error. The exit codes are a contract for
//! scripts: documented in `exsec --help` and README.md, never renumbered.

use std::io;
use std::path::Path;

use super::client::ClientError;
use super::dotenv::DotenvError;
use super::problems;
use crate::file_error::FileError;
use crate::store::backup::BackupError;
use crate::store::{OpenError, Rejected, StoreError};
use crate::tls::GenerateError;
use crate::tls::client::{CertificateProblem, TrustError};

/// Exit codes, stable for scripts.
pub mod exit {
    /// The command did what was asked.
    pub const OK: u8 = 0;
    /// It failed (I/O, an internal error of the daemon, anything else).
    pub const FAILURE: u8 = 1;
    /// The command line or an input file was wrong (clap uses 2 as well).
    pub const USAGE: u8 = 2;
    /// What was named does not exist (or belongs to another tenant).
    pub const NOT_FOUND: u8 = 3;
    /// Refused: a conflict, a rule, a token without the right, or
    /// something that would be overwritten without `--force`.
    pub const REFUSED: u8 = 4;
    /// The daemon, its storage, its master key or the cluster is
    /// unreachable or degraded; retrying later may work.
    pub const UNAVAILABLE: u8 = 5;
    /// A check found a problem: `doctor`, `audit verify`, `secrets verify`
    /// (no match), a damaged backup.
    pub const CHECK_FAILED: u8 = 6;

    /// The table printed by `exsec --help` and copied into README.md.
    pub const TABLE: &str = "\
Exit codes:
  0  ok
  1  failure (I/O, an internal error of the daemon)
  2  usage: a wrong command line or input file; a secret value given as an argument
  3  not found (or it belongs to another tenant)
  4  refused: conflict, rule, missing right, or --force needed
  5  unavailable or degraded: daemon, storage, master key or cluster
  6  a check found a problem: doctor, audit verify, secrets verify, a damaged backup";
}

/// Errors of the command line, each naming what failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line or an input was wrong.
    #[error("{0}")]
    Usage(String),
    /// An id, provider or key on the command line is not valid.
    #[error(transparent)]
    Invalid(#[from] crate::model::ValidationError),
    /// A secret value was given on the command line.
    #[error(
        "secret values are never taken from the command line: arguments are visible to every user through `ps` and /proc, and end up in shell history"
    )]
    ValueOnArgv,
    /// A dotenv file is malformed.
    #[error(transparent)]
    Dotenv(#[from] DotenvError),
    /// Talking to the daemon failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A file could not be read or written.
    #[error(transparent)]
    Io(#[from] FileError),
    /// Standard output went away (a closed pipe is not an error).
    #[error("cannot write to standard output")]
    Stdout(#[source] io::Error),
    /// What was named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Refused by a rule of the CLI.
    #[error("{0}")]
    Refused(String),
    /// Degraded or unreachable; retrying later may work.
    #[error("{0}")]
    Unavailable(String),
    /// A check found a problem; the report was printed already.
    #[error("{0}")]
    CheckFailed(String),
    /// The daemon answered something the CLI cannot use.
    #[error("unexpected answer from the daemon: {0}")]
    Unexpected(String),
    /// The store could not be opened (offline commands).
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The store failed (offline commands).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A backup could not be taken, checked or restored.
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// The key directory given on the command line cannot be read.
    #[error(transparent)]
    KeyDir(crate::crypto::KeyringError),
    /// Key generation failed.
    #[error("cannot generate a master key")]
    KeyGenerate(#[source] crate::crypto::KeyfileError),
    /// `tls generate` failed.
    #[error("cannot generate a TLS certificate")]
    TlsGenerate(#[source] crate::tls::GenerateError),
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The daemon could not start.
    #[error("exsec could not start")]
    Start(#[source] crate::app::StartError),
    /// The async runtime could not start.
    #[error("cannot start the async runtime")]
    Runtime(#[source] io::Error),
}

impl CliError {
    /// The exit code of this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_)
            | CliError::Invalid(_)
            | CliError::ValueOnArgv
            | CliError::Dotenv(_) => exit::USAGE,
            CliError::NotFound(_) => exit::NOT_FOUND,
            CliError::Refused(_) => exit::REFUSED,
            CliError::Unavailable(_) => exit::UNAVAILABLE,
            CliError::CheckFailed(_) => exit::CHECK_FAILED,
            CliError::Client(error) => client_exit_code(error),
            CliError::Open(error) => open_exit_code(error),
            CliError::Store(error) => store_exit_code(error),
            CliError::Backup(error) => match error {
                BackupError::Exists { .. }
                | BackupError::NewerSchema { .. }
                | BackupError::UnsupportedFormat { .. }
                | BackupError::Unauthenticated => exit::REFUSED,
                BackupError::NotRegular { .. } => exit::USAGE,
                BackupError::NotABackup { .. }
                | BackupError::Forged { .. }
                | BackupError::Checksum
                | BackupError::Malformed { .. }
                | BackupError::Chain(_)
                | BackupError::HeadMismatch { .. } => exit::CHECK_FAILED,
                BackupError::Open(error) => open_exit_code(error),
                BackupError::Store(error) => store_exit_code(error),
                // A file the command reads or writes: an I/O failure, even
                // when it is missing (3 is for what the daemon holds).
                BackupError::Io(_) | BackupError::Stream(_) => exit::FAILURE,
            },
            CliError::TlsGenerate(error) => match error {
                GenerateError::NoHost
                | GenerateError::InvalidHost(_)
                | GenerateError::InvalidDays
                | GenerateError::NotADirectory { .. } => exit::USAGE,
                GenerateError::Exists { .. } => exit::REFUSED,
                GenerateError::Io { .. } | GenerateError::Certificate(_) => exit::FAILURE,
            },
            CliError::Io(_)
            | CliError::KeyDir(_)
            | CliError::Stdout(_)
            | CliError::Unexpected(_)
            | CliError::KeyGenerate(_)
            | CliError::Config(_)
            | CliError::Start(_)
            | CliError::Runtime(_) => exit::FAILURE,
        }
    }

    /// A sentence that says how to fix it, when there is more to say than
    /// the message.
    pub fn hint(&self) -> Option<String> {
        match self {
            CliError::ValueOnArgv => Some(
                "Pipe the value on standard input, e.g. `printf %s \"$VALUE\" | exsec secrets set --app web openai OPENAI_API_KEY`, or run the command in a terminal without a value to be prompted (nothing is echoed). Many values at once: `exsec secrets import --from-env-file FILE`."
                    .to_owned(),
            ),
            CliError::Client(ClientError::Problem(problem)) => {
                let mut hint = problems::explain(&problem.code).map(str::to_owned);
                if problem.status == 401 {
                    hint = hint.map(|h| format!("{h} (Tokens are read from --token-file, else EXSEC_TOKEN.)"));
                }
                hint
            }
            CliError::Client(ClientError::Certificate {
                host,
                problem,
                cacert,
                ..
            }) => Some(certificate_hint(host, problem, cacert.as_deref())),
            CliError::Client(ClientError::Trust(TrustError::NoSystemRoots)) => None,
            CliError::Client(ClientError::Trust(_)) => Some(
                "Give --cacert (or EXSEC_CACERT) a PEM file holding the CA that issued the daemon's certificate, or the daemon's self-signed certificate (e.g. /etc/exsec/tls/tls.crt).".to_owned(),
            ),
            CliError::Client(ClientError::Handshake { .. }) => Some(
                "Does the daemon serve TLS on this address (server.tls_cert)? Without it, use an http:// URL on loopback or the local socket (unix:/run/exsec/exsec.sock).".to_owned(),
            ),
            CliError::Client(ClientError::Connect { .. }) => Some(
                "Is the daemon running (`systemctl status exsec`, or `exsec serve --config FILE`)? Point the CLI at it with --url or EXSEC_URL.".to_owned(),
            ),
            CliError::Backup(BackupError::Unauthenticated) => Some(
                "If you know the file was kept where no one else could change it, pass --accept-unauthenticated; then take a new backup with this exsec (it authenticates backups).".to_owned(),
            ),
            CliError::Backup(BackupError::Forged { key_id, key_missing: true }) => Some(format!(
                "Point --keys-dir at the key directory as it was when the backup was taken: it needs {key_id}.key (a retired key is kept as {key_id}.key.retired; copy it back under its .key name)."
            )),
            CliError::Open(OpenError::InUse { .. })
            | CliError::Backup(BackupError::Open(OpenError::InUse { .. })) => Some(
                "Stop the daemon first (`systemctl stop exsec`), or work on a copy of the file; online checks go through the daemon (`exsec audit verify` without --db).".to_owned(),
            ),
            _ => None,
        }
    }
}

/// How to fix a refused certificate.
fn certificate_hint(host: &str, problem: &CertificateProblem, cacert: Option<&Path>) -> String {
    let trust = match cacert {
        Some(path) => format!("the certificates in {} (--cacert)", path.display()),
        None => "the system's CA store (no --cacert given)".to_owned(),
    };
    match problem {
        CertificateProblem::NameMismatch { .. } => format!(
            "Use a --url whose host is one the certificate names, or give the daemon a certificate for {host}: `exsec tls generate --host {host} --out-dir DIR` (or add it to the cert-manager Certificate's dnsNames/ipAddresses) and point server.tls_cert/tls_key at it; the daemon serves new files without a restart."
        ),
        CertificateProblem::UnknownIssuer => format!(
            "This client trusts {trust}. Pass the CA that issued the daemon's certificate, or the daemon's self-signed certificate itself, with --cacert FILE or EXSEC_CACERT (a package install made /etc/exsec/tls/tls.crt)."
        ),
        CertificateProblem::Expired { .. } => "Renew the daemon's certificate: `exsec tls generate --host NAME --out-dir NEW_DIR` and move tls.crt and tls.key over server.tls_cert and server.tls_key, or let cert-manager renew it; the daemon serves new files without a restart. If it should still be valid, check this machine's clock.".to_owned(),
        CertificateProblem::NotYetValid => "The certificate's validity starts in the future: check the clock of this machine and of the machine that made the certificate.".to_owned(),
        CertificateProblem::Other(_) => format!(
            "This client trusts {trust}; check that the daemon's server.tls_cert is the certificate you expect."
        ),
    }
}

/// An API problem's exit code, by status.
fn client_exit_code(error: &ClientError) -> u8 {
    match error {
        ClientError::Problem(problem) => match problem.status {
            400 | 405 | 413 | 415 => exit::USAGE,
            404 => exit::NOT_FOUND,
            401 | 403 | 409 | 422 => exit::REFUSED,
            429 | 502..=504 => exit::UNAVAILABLE,
            _ => exit::FAILURE,
        },
        ClientError::InvalidUrl { .. } | ClientError::Trust(_) => exit::USAGE,
        ClientError::Connect { .. }
        | ClientError::Timeout { .. }
        | ClientError::Http(_)
        | ClientError::Certificate { .. }
        | ClientError::Handshake { .. } => exit::UNAVAILABLE,
        ClientError::TokenFile { .. } | ClientError::Decode { .. } | ClientError::Sink(_) => {
            exit::FAILURE
        }
    }
}

fn open_exit_code(error: &OpenError) -> u8 {
    match error {
        OpenError::InUse { .. } => exit::UNAVAILABLE,
        OpenError::NewerSchema { .. } => exit::REFUSED,
        OpenError::Open { .. } | OpenError::Random { .. } => exit::FAILURE,
        OpenError::Prepare { source, .. } => store_exit_code(source),
    }
}

fn store_exit_code(error: &StoreError) -> u8 {
    match error {
        StoreError::Rejected(Rejected::NotFound { .. }) => exit::NOT_FOUND,
        StoreError::Corrupt { .. } | StoreError::CorruptKey { .. } => exit::CHECK_FAILED,
        StoreError::Rejected(_)
        | StoreError::Storage { .. }
        | StoreError::Interrupted
        | StoreError::Batch(_)
        | StoreError::Unavailable { .. } => exit::FAILURE,
    }
}
