//! `exsec tls generate`: a self-signed certificate and its key for sites
//! without a CA (air-gapped installs, first boot of the package).
//!
//! ECDSA P-256 (small, fast handshakes, accepted by every TLS client the
//! CLI and curl use), the hosts as subject alternative names (DNS names and
//! IP addresses), `serverAuth` only and no CA flag: it is an end-entity
//! certificate that clients trust directly (`--cacert tls.crt`). The key is
//! written with mode 0600, both files get the owner of the directory (so a
//! pair made by root is readable by the service user), and an existing
//! file is never overwritten.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    PKCS_ECDSA_P256_SHA256, SerialNumber,
};
use zeroize::Zeroizing;

use super::x509::CertificateInfo;

/// File name of the certificate in the output directory (the key of a
/// Kubernetes TLS Secret, so the directory can become one as it is).
pub const CERT_FILE: &str = "tls.crt";
/// File name of the private key.
pub const KEY_FILE: &str = "tls.key";
/// Validity unless `--days` says otherwise: two years.
pub const DEFAULT_DAYS: u32 = 730;
/// Longest validity accepted: ten years.
pub const MAX_DAYS: u32 = 3650;
/// The certificate is valid from this long before `now`, for clients whose
/// clock is a little behind.
const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// A pair that [`generate_pair`] wrote.
#[derive(Debug, Clone)]
pub struct GeneratedPair {
    /// The certificate file.
    pub cert: PathBuf,
    /// The key file.
    pub key: PathBuf,
    /// What the certificate says.
    pub info: CertificateInfo,
}

/// Why a pair could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// No `--host` was given.
    #[error("give at least one --host: a DNS name or IP address clients will use to reach exsec")]
    NoHost,
    /// A host is neither a DNS name nor an IP address.
    #[error(
        "--host {0:?} is neither a DNS name (letters, digits, '-' and '.', e.g. exsec.example.internal) nor an IP address"
    )]
    InvalidHost(String),
    /// `--days` is out of range.
    #[error("--days must be between 1 and {MAX_DAYS}")]
    InvalidDays,
    /// The output path names something that is not a directory.
    #[error("{} is not a directory", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// A file of the pair exists already.
    #[error("{} exists; exsec tls generate never overwrites: move it away first, or use another --out-dir", path.display())]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// Creating the directory or writing a file failed.
    #[error("cannot write {}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// rcgen refused (a bug rather than an input error: inputs are checked).
    #[error("cannot build the certificate: {0}")]
    Certificate(String),
}

/// Writes `dir/tls.crt` (0644) and `dir/tls.key` (0600) for `hosts`,
/// valid for `days` from `now`. A missing `dir` is created (0755).
pub fn generate_pair(
    dir: &Path,
    hosts: &[String],
    days: u32,
    now: SystemTime,
) -> Result<GeneratedPair, GenerateError> {
    if hosts.is_empty() {
        return Err(GenerateError::NoHost);
    }
    if let Some(bad) = hosts.iter().find(|host| !valid_host(host)) {
        return Err(GenerateError::InvalidHost(bad.clone()));
    }
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(GenerateError::InvalidDays);
    }
    let owner = ensure_dir(dir)?;
    let cert_path = dir.join(CERT_FILE);
    let key_path = dir.join(KEY_FILE);
    for path in [&cert_path, &key_path] {
        if fs::symlink_metadata(path).is_ok() {
            return Err(GenerateError::Exists { path: path.clone() });
        }
    }

    let certificate = |error: rcgen::Error| GenerateError::Certificate(error.to_string());
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(certificate)?;
    let mut params = CertificateParams::new(hosts.to_vec()).map_err(certificate)?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, hosts[0].as_str());
    name.push(DnType::OrganizationName, "exsec");
    params.distinguished_name = name;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.serial_number = Some(random_serial()?);
    params.not_before = offset_time(now.checked_sub(BACKDATE).unwrap_or(now))?;
    params.not_after = offset_time(now + Duration::from_secs(u64::from(days) * 86_400))?;
    let cert = params.self_signed(&key).map_err(certificate)?;
    let info = CertificateInfo::from_der(cert.der()).ok_or_else(|| {
        GenerateError::Certificate("the generated certificate cannot be read back".to_owned())
    })?;

    let key_pem = Zeroizing::new(key.serialize_pem());
    write_new(&key_path, key_pem.as_bytes(), 0o600, owner)?;
    if let Err(error) = write_new(&cert_path, cert.pem().as_bytes(), 0o644, owner) {
        // Half a pair is useless and would block the next attempt.
        let _ = fs::remove_file(&key_path);
        return Err(error);
    }
    sync_dir(dir)?;
    Ok(GeneratedPair {
        cert: cert_path,
        key: key_path,
        info,
    })
}

/// A DNS name (optionally with a leading `*.` label) or an IP address.
fn valid_host(host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    let name = host.strip_prefix("*.").unwrap_or(host);
    let label = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    !name.is_empty() && name.len() <= 253 && name.split('.').all(label)
}

/// 16 random bytes, positive.
fn random_serial() -> Result<SerialNumber, GenerateError> {
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial)
        .map_err(|error| GenerateError::Certificate(format!("no random serial number: {error}")))?;
    serial[0] &= 0x7F;
    serial[0] |= 0x01;
    Ok(SerialNumber::from_slice(&serial))
}

fn offset_time(time: SystemTime) -> Result<time::OffsetDateTime, GenerateError> {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|since| i64::try_from(since.as_secs()).ok())
        .ok_or_else(|| GenerateError::Certificate("the system clock is before 1970".to_owned()))?;
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .map_err(|error| GenerateError::Certificate(error.to_string()))
}

/// The owner (uid, gid) of `dir`, creating it (0755) if missing.
fn ensure_dir(dir: &Path) -> Result<(u32, u32), GenerateError> {
    let io_error = |source| GenerateError::Io {
        path: dir.to_owned(),
        source,
    };
    match fs::metadata(dir) {
        Ok(metadata) if metadata.is_dir() => return Ok((metadata.uid(), metadata.gid())),
        Ok(_) => {
            return Err(GenerateError::NotADirectory {
                path: dir.to_owned(),
            });
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(io_error(error)),
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(io_error)?;
    let metadata = fs::metadata(dir).map_err(io_error)?;
    Ok((metadata.uid(), metadata.gid()))
}

/// Creates `path` (never replacing anything) with `mode` and `owner`,
/// writes `contents` and syncs it.
fn write_new(
    path: &Path,
    contents: &[u8],
    mode: u32,
    (uid, gid): (u32, u32),
) -> Result<(), GenerateError> {
    let io_error = |source: io::Error| {
        if source.kind() == io::ErrorKind::AlreadyExists {
            GenerateError::Exists {
                path: path.to_owned(),
            }
        } else {
            GenerateError::Io {
                path: path.to_owned(),
                source,
            }
        }
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io_error)?;
    let written = (|| {
        let metadata = file.metadata()?;
        if (metadata.uid(), metadata.gid()) != (uid, gid) {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
        }
        file.write_all(contents)?;
        file.sync_all()
    })();
    if let Err(error) = written {
        let _ = fs::remove_file(path);
        return Err(io_error(error));
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), GenerateError> {
    fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|source| GenerateError::Io {
            path: dir.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::tls::server::{PairFiles, ServerTls};

    fn hosts(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn writes_a_pair_the_server_loads() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("tls");
        let now = SystemTime::now();
        let pair = generate_pair(&out, &hosts(&["exsec.internal", "127.0.0.1"]), 30, now)
            .expect("generated");
        assert_eq!(pair.cert, out.join("tls.crt"));
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&pair.key), 0o600);
        assert_eq!(mode(&pair.cert), 0o644);
        assert_eq!(mode(&out), 0o755);
        let expected_end = now + Duration::from_secs(30 * 86_400);
        let drift =
            |a: SystemTime, b: SystemTime| a.duration_since(b).unwrap_or_else(|e| e.duration());
        assert!(drift(pair.info.not_after, expected_end) <= Duration::from_secs(1));
        assert!(pair.info.not_before < now);
        assert_eq!(pair.info.serial.len(), 32, "{}", pair.info.serial);

        crate::tls::install_provider();
        let served = ServerTls::load(PairFiles {
            cert: pair.cert.clone(),
            key: pair.key.clone(),
        })
        .expect("the server accepts the pair");
        assert_eq!(served.certificate(), pair.info);
    }

    #[test]
    fn never_overwrites_and_checks_input() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let first = generate_pair(dir.path(), &hosts(&["localhost"]), 1, now).unwrap();
        let before = fs::read(&first.key).unwrap();
        let again = generate_pair(dir.path(), &hosts(&["localhost"]), 1, now);
        assert!(
            matches!(again, Err(GenerateError::Exists { .. })),
            "{again:?}"
        );
        assert_eq!(fs::read(&first.key).unwrap(), before);

        let other = tempfile::tempdir().unwrap();
        fs::write(other.path().join(CERT_FILE), "mine").unwrap();
        let refused = generate_pair(other.path(), &hosts(&["localhost"]), 1, now);
        assert!(matches!(refused, Err(GenerateError::Exists { .. })));
        assert!(!other.path().join(KEY_FILE).exists(), "no half pair");

        for bad in ["", "exsec example", "-x.example", "a..b", "ex_sec"] {
            let result = generate_pair(other.path(), &hosts(&[bad]), 1, now);
            assert!(
                matches!(result, Err(GenerateError::InvalidHost(_))),
                "{bad}"
            );
        }
        for good in ["*.exsec.internal", "::1", "10.0.0.5", "exsec-0.exsec"] {
            assert!(valid_host(good), "{good}");
        }
        assert!(matches!(
            generate_pair(other.path(), &[], 1, now),
            Err(GenerateError::NoHost)
        ));
        assert!(matches!(
            generate_pair(other.path(), &hosts(&["localhost"]), 0, now),
            Err(GenerateError::InvalidDays)
        ));
    }
}
