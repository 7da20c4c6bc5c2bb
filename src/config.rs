//! The TOML configuration of SPEC §8, parsed into one typed section per
//! subsystem so that nothing downstream re-reads strings: durations, sizes,
//! addresses and paths arrive as `Duration`, `u64`, `SocketAddr` and
//! resolved `PathBuf`s, and every rule a value must meet is checked here.
//!
//! Loading has no side effects: it reads the config file and nothing else —
//! no directory is created, no key, token or database file is opened. Those
//! belong to the composition root, which may then fail on them with its own
//! message.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use toml::de::DeTable;

use crate::model::{ValidationError, impl_word};

/// Longest Unix socket path Linux accepts (`sun_path` less its NUL).
const MAX_SOCKET_PATH: usize = 107;
/// Most versions `storage.secret_history` may keep per secret: each one
/// costs a record per secret, and rotation re-seals all of them.
const MAX_SECRET_HISTORY: u32 = 1000;
/// Versions kept per secret without `storage.secret_history`.
pub const DEFAULT_SECRET_HISTORY: u32 = 10;

/// The whole configuration file; every section may be omitted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[server]`: where the HTTP API listens and how it is protected.
    pub server: ServerConfig,
    /// `[storage]`: the redb file holding secrets and the audit log.
    pub storage: StorageConfig,
    /// `[keys]`: the master key directory and how it is watched.
    pub keys: KeysConfig,
    /// `[auth]`: where the admin token lives.
    pub auth: AuthConfig,
    /// `[cluster]`: where deploys are applied.
    pub cluster: ClusterConfig,
    /// `[manifests]`: settings of the `manifests` cluster target.
    pub manifests: ManifestsConfig,
    /// `[deploy]`: time limits of the deploy pipeline.
    pub deploy: DeployConfig,
    /// `[audit]`: anchoring and retention of the audit log.
    pub audit: AuditConfig,
    /// `[log]`: how the daemon's logs are written.
    pub log: LogConfig,
}

/// `[server]`: the HTTP API listener (SPEC §4).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port the API binds; loopback by default so that a fresh
    /// install is not reachable from the network.
    #[serde(deserialize_with = "listen")]
    pub listen: SocketAddr,
    /// PEM certificate chain; with `tls_key`, turns TLS on. Both or neither.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key matching `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Allows a non-loopback `listen` without TLS, e.g. behind a proxy on a
    /// trusted network; off because bearer tokens and secret values would
    /// otherwise cross the network in plaintext.
    pub allow_plaintext_remote: bool,
    /// A second listener on a Unix socket (mode 0660, same routes and
    /// bearer auth), for clients on the same host; none by default.
    pub unix_socket: Option<PathBuf>,
    /// Most connections served at once, over all listeners; more wait in
    /// the kernel's accept queue until one closes. Bounds the memory and
    /// file descriptors a flood of connections can take.
    pub max_connections: u32,
}

/// `[storage]`: the embedded database (SPEC §2).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// The redb file; one exsec process owns it at a time.
    pub path: PathBuf,
    /// redb's page cache in bytes; set explicitly because redb's own default
    /// (1 GiB) is too much for edge boxes.
    #[serde(deserialize_with = "size")]
    pub cache_size: u64,
    /// Versions kept per secret, tombstones included (SPEC §11.3): what
    /// `restore` and rollback can reach back to.
    pub secret_history: u32,
}

/// `[keys]`: master keys and their rotation (SPEC §3).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeysConfig {
    /// Directory of `<key_id>.key` files; the greatest key_id is active.
    pub dir: PathBuf,
    /// Accepts key files readable by their group, as Kubernetes `fsGroup`
    /// mounts them (0440); off because a group-readable key leaks to every
    /// member of the group.
    pub allow_group_readable: bool,
    /// How often the directory is rescanned in case a file-system event was
    /// missed (network file systems, some volume mounts).
    #[serde(deserialize_with = "duration")]
    pub rescan_interval: Duration,
}

/// `[auth]`: API authentication (SPEC §4).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// File holding the admin token; `serve` creates it (mode 0600) when it
    /// is missing and re-reads it on SIGHUP.
    pub admin_token_file: PathBuf,
}

/// `[cluster]`: where deploys land (SPEC §5).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// The apply target: a Kubernetes API, or manifest files on disk.
    pub target: TargetKind,
    /// Namespace of every Secret and Deployment exsec manages.
    pub namespace: Namespace,
    /// Kubeconfig for the `kubernetes` target; absent means the in-cluster
    /// service account, else `KUBECONFIG` or `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// Creates the namespace when missing; off because it needs a
    /// ClusterRole, more than the namespaced Role exsec otherwise needs.
    pub create_namespace: bool,
}

/// The apply target of a deploy (SPEC §5), `cluster.target` in TOML and
/// `target` on the wire (readiness, an app's cluster view).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// Server-side apply through the Kubernetes API.
    Kubernetes,
    /// One YAML file per app in `manifests.dir` (k3s auto-deploy or GitOps).
    Manifests,
}

impl TargetKind {
    /// `kubernetes` or `manifests`.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Kubernetes => "kubernetes",
            TargetKind::Manifests => "manifests",
        }
    }
}

impl_word!(TargetKind, "cluster target", [Kubernetes, Manifests]);

/// A Kubernetes namespace name: a DNS-1123 label of 1 to 63 characters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Namespace(String);

/// `[manifests]`: the `manifests` cluster target (SPEC §5).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ManifestsConfig {
    /// Folder receiving `{app_id}.yaml`; the k3s auto-deploy directory by
    /// default, any folder for review or GitOps.
    pub dir: PathBuf,
    /// Writes decrypted values into the files (k3s needs them); `false`
    /// writes key names only, so nothing secret reaches the disk.
    pub include_values: bool,
}

/// `[deploy]`: time limits of one deploy (SPEC §4 deploy contract).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeployConfig {
    /// Budget of a whole deploy, all cluster calls included; kube's own read
    /// timeout (295 s) is far too long for an API caller to wait.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// How long a deploy waits for another deploy of the same app before
    /// answering 409 `deploy_in_progress`.
    #[serde(deserialize_with = "duration")]
    pub queue_timeout: Duration,
    /// `auto_redeploy` of an app registered without it (SPEC §11.2).
    pub auto_redeploy_default: bool,
    /// An automatic redeploy waits this long without further secret writes
    /// to the tenant, so a burst of changes rolls out once.
    #[serde(deserialize_with = "duration")]
    pub auto_redeploy_quiet: Duration,
    /// …but never longer than this after the first queued change.
    #[serde(deserialize_with = "duration")]
    pub auto_redeploy_max_delay: Duration,
    /// Most automatic redeploys running at once.
    pub auto_redeploy_concurrency: usize,
}

/// `[audit]`: the audit log (SPEC §7).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// How often the chain head `(seq, hash)` is logged, so a truncated tail
    /// can be detected.
    #[serde(deserialize_with = "duration")]
    pub anchor_interval: Duration,
    /// Age after which events are pruned (a checkpoint keeps the chain
    /// verifiable); `None` keeps everything.
    #[serde(deserialize_with = "optional_duration")]
    pub retention: Option<Duration>,
}

/// `[log]`: daemon logging.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Human-readable lines for a terminal or journald, or JSON for a log
    /// pipeline.
    pub format: LogFormat,
}

/// Log line format, `log.format` in TOML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per event.
    Json,
}

/// Why a config file was refused; every message names the file, and the key
/// when one is at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read config file {}", path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// Why reading failed.
        #[source]
        source: io::Error,
    },
    /// The file is not valid TOML.
    #[error("config file {} is not valid TOML: {detail}", path.display())]
    Syntax {
        /// The config file.
        path: PathBuf,
        /// The toml crate's report, with line, column and the offending line.
        detail: String,
    },
    /// A key is unknown, has a value of the wrong type or form, or breaks a
    /// rule involving other keys.
    #[error("config file {}, key `{key}`: {reason}", path.display())]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// The dotted key at fault, e.g. `storage.cache_size`.
        key: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
}

impl Config {
    /// Reads and parses the config file at `path`; relative paths inside it
    /// resolve against its folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses `text` as if read from `path`, which names the file in errors
    /// and whose folder is the base of relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|error| {
            let detail = error.to_string().trim_end().to_owned();
            match error.span().and_then(|span| key_at(text, span.start)) {
                Some(key) => invalid(path, &key, detail),
                None => ConfigError::Syntax {
                    path: path.to_owned(),
                    detail,
                },
            }
        })?;
        config.resolve_paths(path)?;
        config.check_server(path)?;
        config.check_deploy(path)?;
        Ok(config)
    }

    /// Makes every relative path relative to the config file's folder, so the
    /// daemon behaves the same whatever its working directory.
    fn resolve_paths(&mut self, path: &Path) -> Result<(), ConfigError> {
        let base = path.parent().unwrap_or(Path::new(""));
        let required = [
            ("storage.path", &mut self.storage.path),
            ("keys.dir", &mut self.keys.dir),
            ("auth.admin_token_file", &mut self.auth.admin_token_file),
            ("manifests.dir", &mut self.manifests.dir),
        ];
        let optional = [
            ("server.tls_cert", self.server.tls_cert.as_mut()),
            ("server.tls_key", self.server.tls_key.as_mut()),
            ("server.unix_socket", self.server.unix_socket.as_mut()),
            ("cluster.kubeconfig", self.cluster.kubeconfig.as_mut()),
        ];
        let present = optional
            .into_iter()
            .filter_map(|(key, value)| Some((key, value?)));
        for (key, value) in required.into_iter().chain(present) {
            if value.as_os_str().is_empty() {
                let reason = "must not be empty; give a path, absolute or relative to the \
                              config file's folder"
                    .to_owned();
                return Err(invalid(path, key, reason));
            }
            if value.is_relative() {
                *value = base.join(&*value);
            }
        }
        Ok(())
    }

    /// Refuses automatic-redeploy settings that could never run.
    fn check_deploy(&self, path: &Path) -> Result<(), ConfigError> {
        let deploy = &self.deploy;
        if deploy.auto_redeploy_concurrency == 0 {
            let reason = "must be at least 1 (default 4)".to_owned();
            return Err(invalid(path, "deploy.auto_redeploy_concurrency", reason));
        }
        if deploy.auto_redeploy_max_delay < deploy.auto_redeploy_quiet {
            let reason = format!(
                "({}) is shorter than deploy.auto_redeploy_quiet ({}); the longest wait must                  be at least the quiet time",
                humantime::format_duration(deploy.auto_redeploy_max_delay),
                humantime::format_duration(deploy.auto_redeploy_quiet)
            );
            return Err(invalid(path, "deploy.auto_redeploy_max_delay", reason));
        }
        Ok(())
    }

    /// Refuses a half-configured TLS and plaintext on the network (SPEC §4).
    fn check_server(&self, path: &Path) -> Result<(), ConfigError> {
        let server = &self.server;
        match (&server.tls_cert, &server.tls_key) {
            (Some(_), None) => {
                let reason = "is missing while server.tls_cert is set; set both to serve TLS, \
                              or remove server.tls_cert";
                return Err(invalid(path, "server.tls_key", reason.to_owned()));
            }
            (None, Some(_)) => {
                let reason = "is missing while server.tls_key is set; set both to serve TLS, \
                              or remove server.tls_key";
                return Err(invalid(path, "server.tls_cert", reason.to_owned()));
            }
            _ => {}
        }
        if !(1..=MAX_SECRET_HISTORY).contains(&self.storage.secret_history) {
            let reason = format!("must be between 1 and {MAX_SECRET_HISTORY} (default 10)");
            return Err(invalid(path, "storage.secret_history", reason));
        }
        if server.max_connections == 0 {
            let reason = "must be at least 1 (default 1024)".to_owned();
            return Err(invalid(path, "server.max_connections", reason));
        }
        if let Some(socket) = &server.unix_socket {
            // sun_path holds 108 bytes, the terminating NUL included.
            if socket.as_os_str().len() > MAX_SOCKET_PATH {
                let reason = format!(
                    "{} is longer than the {MAX_SOCKET_PATH} bytes a Unix socket path may have; \
                     use a shorter path such as /run/exsec/exsec.sock",
                    socket.display()
                );
                return Err(invalid(path, "server.unix_socket", reason));
            }
        }
        let tls = server.tls_cert.is_some();
        if !server.listen.ip().is_loopback() && !tls && !server.allow_plaintext_remote {
            let reason = format!(
                "{} is not a loopback address and TLS is off, so tokens and secret values \
                 would cross the network in plaintext; set server.tls_cert and \
                 server.tls_key, listen on 127.0.0.1, or set \
                 server.allow_plaintext_remote = true if the network is trusted",
                server.listen
            );
            return Err(invalid(path, "server.listen", reason));
        }
        Ok(())
    }
}

impl Namespace {
    /// Longest namespace name Kubernetes accepts.
    pub const MAX_LEN: usize = 63;

    /// Parses a DNS-1123 label: lowercase letters, digits and '-', starting
    /// and ending with a letter or digit.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let bytes = raw.as_bytes();
        let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
        let valid = !bytes.is_empty()
            && bytes.len() <= Self::MAX_LEN
            && bytes.iter().all(allowed)
            && bytes.first() != Some(&b'-')
            && bytes.last() != Some(&b'-');
        if !valid {
            return Err(ValidationError {
                field: "namespace",
                reason: format!(
                    "{raw:?} is not a DNS-1123 label; use 1 to {} lowercase letters, digits \
                     or '-', starting and ending with a letter or digit, e.g. \"paas-apps\"",
                    Self::MAX_LEN
                ),
            });
        }
        Ok(Self(raw.to_owned()))
    }

    /// The namespace as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Namespace {
    type Error = ValidationError;

    fn try_from(raw: String) -> Result<Self, ValidationError> {
        Self::parse(&raw)
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// The defaults of SPEC §8, in one place: serde's `default` on each section
// falls back to these for every key the file leaves out.

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7780)),
            tls_cert: None,
            tls_key: None,
            allow_plaintext_remote: false,
            unix_socket: None,
            max_connections: 1024,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("/var/lib/exsec/exsec.redb"),
            // docs/performance.md, "The cache size": with 8 MiB the idle
            // heap after 100k writes is ~13 MiB (~38 with 32 MiB), and
            // writes, deploys and re-seals were not slower; only loading
            // a large store at once is.
            cache_size: 8 * 1024 * 1024,
            secret_history: DEFAULT_SECRET_HISTORY,
        }
    }
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("/etc/exsec/keys.d"),
            allow_group_readable: false,
            rescan_interval: Duration::from_secs(30),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            admin_token_file: PathBuf::from("/etc/exsec/admin.token"),
        }
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            target: TargetKind::Kubernetes,
            namespace: Namespace("paas-apps".to_owned()),
            kubeconfig: None,
            create_namespace: false,
        }
    }
}

impl Default for ManifestsConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("/var/lib/rancher/k3s/server/manifests"),
            include_values: true,
        }
    }
}

impl Default for DeployConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(20),
            queue_timeout: Duration::from_secs(10),
            auto_redeploy_default: false,
            auto_redeploy_quiet: Duration::from_secs(10),
            auto_redeploy_max_delay: Duration::from_secs(60),
            auto_redeploy_concurrency: 4,
        }
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            anchor_interval: Duration::from_secs(60 * 60),
            retention: None,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
        }
    }
}

fn invalid(path: &Path, key: &str, reason: String) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_owned(),
        key: key.to_owned(),
        reason,
    }
}

/// The dotted key (`storage.cache_size`) whose name or value covers byte
/// `offset` of `text`. The toml crate tracks this path but does not expose
/// it, so it is found again from the error's span.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let document = DeTable::parse(text).ok()?;
    let mut path = Vec::new();
    key_path(document.get_ref(), offset, &mut path).then(|| path.join("."))
}

fn key_path<'a>(table: &'a DeTable<'_>, offset: usize, path: &mut Vec<&'a str>) -> bool {
    for (key, value) in table {
        path.push(key.get_ref());
        // A `[section]` header's span covers only the header, so look inside
        // every table before testing the spans of the entry itself.
        let inside = value
            .get_ref()
            .as_table()
            .is_some_and(|inner| key_path(inner, offset, path));
        if inside || key.span().contains(&offset) || value.span().contains(&offset) {
            return true;
        }
        path.pop();
    }
    false
}

fn listen<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    from_text(
        deserializer,
        "an address such as \"127.0.0.1:7780\"",
        |raw| {
            raw.parse().map_err(|_| {
                format!(
                    "invalid address {raw:?}; write an IP address and a port, e.g. \
                 \"127.0.0.1:7780\" or \"[::1]:7780\" (host names are not resolved)"
                )
            })
        },
    )
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    from_text(deserializer, "a duration such as \"30s\"", parse_duration)
}

fn optional_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    duration(deserializer).map(Some)
}

fn size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    from_text(deserializer, "a size such as \"32MiB\"", parse_size)
}

/// Deserializes a string through `parse`; `expecting` ends serde's "invalid
/// type: …, expected …" message when the value is not a string.
fn from_text<'de, D, T>(
    deserializer: D,
    expecting: &'static str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct TextVisitor<T> {
        expecting: &'static str,
        parse: fn(&str) -> Result<T, String>,
    }

    impl<T> Visitor<'_> for TextVisitor<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }

        fn visit_str<E: de::Error>(self, raw: &str) -> Result<T, E> {
            (self.parse)(raw).map_err(E::custom)
        }
    }

    deserializer.deserialize_str(TextVisitor { expecting, parse })
}

/// Parses a humantime duration ("30s", "1h", "365d"); zero is refused
/// because every duration here is an interval or a limit.
fn parse_duration(raw: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(raw).map_err(|error| {
        format!(
            "invalid duration {raw:?} ({error}); write a number and a unit, e.g. \"30s\", \
             \"10m\", \"1h\" or \"365d\""
        )
    })?;
    if duration.is_zero() {
        return Err(format!(
            "invalid duration {raw:?}; it must be greater than zero"
        ));
    }
    Ok(duration)
}

/// Parses a byte size: a whole number, optionally followed by `B`, a decimal
/// unit (`KB`, `MB`, `GB`) or a binary one (`KiB`, `MiB`, `GiB`).
fn parse_size(raw: &str) -> Result<u64, String> {
    let help = "write a whole number of bytes with an optional unit KB, MB, GB (powers of \
                1000) or KiB, MiB, GiB (powers of 1024), e.g. \"32MiB\"";
    let unit_start = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (digits, unit) = raw.split_at(unit_start);
    let multiplier: u64 = match unit.trim_start() {
        "" | "B" => 1,
        "KB" => 1000,
        "MB" => 1000 * 1000,
        "GB" => 1000 * 1000 * 1000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(format!("invalid size {raw:?}; {help}")),
    };
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("invalid size {raw:?}; {help}"))?;
    match number.checked_mul(multiplier) {
        Some(0) => Err(format!(
            "invalid size {raw:?}; it must be greater than zero"
        )),
        Some(bytes) => Ok(bytes),
        None => Err(format!("invalid size {raw:?}; it does not fit in 64 bits")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../config.example.toml");

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/srv/exsec/config.toml"))
    }

    fn error(text: &str) -> String {
        match parse(text) {
            Ok(config) => panic!("expected an error, got {config:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn example_parses_with_paths_under_its_folder() {
        let config = parse(EXAMPLE).expect("config.example.toml parses");
        let base = Path::new("/srv/exsec");

        assert_eq!(config.server, ServerConfig::default());
        assert_eq!(config.storage.path, base.join("var/exsec.redb"));
        assert_eq!(config.storage.cache_size, 8 * 1024 * 1024);
        assert_eq!(config.keys.dir, base.join("var/keys.d"));
        assert!(!config.keys.allow_group_readable);
        assert_eq!(config.keys.rescan_interval, Duration::from_secs(30));
        assert_eq!(config.auth.admin_token_file, base.join("var/admin.token"));
        assert_eq!(config.cluster.target, TargetKind::Manifests);
        assert_eq!(config.cluster.namespace.as_str(), "paas-apps");
        assert_eq!(config.cluster.kubeconfig, None);
        assert!(!config.cluster.create_namespace);
        assert_eq!(config.manifests.dir, base.join("var/manifests"));
        assert!(config.manifests.include_values);
        assert_eq!(config.deploy, DeployConfig::default());
        assert_eq!(config.audit, AuditConfig::default());
        assert_eq!(config.log.format, LogFormat::Human);
    }

    #[test]
    fn example_shows_every_key() {
        // Commented-out keys count: the example documents each one.
        let keys = [
            "listen",
            "tls_cert",
            "tls_key",
            "allow_plaintext_remote",
            "unix_socket",
            "max_connections",
            "path",
            "cache_size",
            "secret_history",
            "dir",
            "allow_group_readable",
            "rescan_interval",
            "admin_token_file",
            "target",
            "namespace",
            "kubeconfig",
            "create_namespace",
            "include_values",
            "timeout",
            "queue_timeout",
            "anchor_interval",
            "retention",
            "format",
        ];
        for key in keys {
            let shown = EXAMPLE.lines().any(|line| {
                line.trim_start_matches(['#', ' '])
                    .starts_with(&format!("{key} ="))
            });
            assert!(shown, "config.example.toml does not show `{key}`");
        }
    }

    #[test]
    fn empty_file_gives_all_defaults() {
        assert_eq!(parse("").expect("empty file parses"), Config::default());
        let config = Config::default();
        assert_eq!(
            config.server.listen,
            "127.0.0.1:7780".parse().expect("address")
        );
        assert_eq!(config.storage.path, Path::new("/var/lib/exsec/exsec.redb"));
        assert_eq!(config.storage.cache_size, 8_388_608);
        assert_eq!(config.cluster.target, TargetKind::Kubernetes);
        assert_eq!(config.audit.anchor_interval, Duration::from_secs(3600));
        assert_eq!(config.audit.retention, None);
    }

    #[test]
    fn every_key_parses_to_its_type() {
        let text = r#"
            [server]
            listen = "[::1]:9000"
            tls_cert = "tls/cert.pem"
            tls_key = "/etc/tls/key.pem"
            unix_socket = "run/exsec.sock"
            max_connections = 64
            [storage]
            cache_size = "512KiB"
            [keys]
            allow_group_readable = true
            rescan_interval = "1m"
            [cluster]
            target = "kubernetes"
            namespace = "apps-2"
            kubeconfig = "k3s.yaml"
            create_namespace = true
            [manifests]
            include_values = false
            [deploy]
            timeout = "1m 30s"
            queue_timeout = "500ms"
            [audit]
            anchor_interval = "15m"
            retention = "365d"
            [log]
            format = "json"
        "#;
        let config = parse(text).expect("valid config");
        assert_eq!(config.server.listen, "[::1]:9000".parse().expect("address"));
        assert_eq!(
            config.server.tls_cert,
            Some("/srv/exsec/tls/cert.pem".into())
        );
        assert_eq!(config.server.tls_key, Some("/etc/tls/key.pem".into()));
        assert_eq!(
            config.server.unix_socket,
            Some("/srv/exsec/run/exsec.sock".into())
        );
        assert_eq!(config.server.max_connections, 64);
        assert_eq!(config.storage.cache_size, 512 * 1024);
        assert!(config.keys.allow_group_readable);
        assert_eq!(config.keys.rescan_interval, Duration::from_secs(60));
        assert_eq!(config.cluster.namespace.as_str(), "apps-2");
        assert_eq!(
            config.cluster.kubeconfig,
            Some("/srv/exsec/k3s.yaml".into())
        );
        assert!(config.cluster.create_namespace);
        assert!(!config.manifests.include_values);
        assert_eq!(config.deploy.timeout, Duration::from_secs(90));
        assert_eq!(config.deploy.queue_timeout, Duration::from_millis(500));
        assert_eq!(config.audit.anchor_interval, Duration::from_secs(900));
        assert_eq!(
            config.audit.retention,
            Some(Duration::from_secs(365 * 86_400))
        );
        assert_eq!(config.log.format, LogFormat::Json);
    }

    #[test]
    fn relative_paths_resolve_against_the_file_folder_and_absolute_stay() {
        let text = "[storage]\npath = \"data/exsec.redb\"\n[keys]\ndir = \"/etc/keys\"\n";
        let config = Config::parse(text, Path::new("/opt/exsec/exsec.toml")).expect("valid");
        assert_eq!(config.storage.path, Path::new("/opt/exsec/data/exsec.redb"));
        assert_eq!(config.keys.dir, Path::new("/etc/keys"));

        // A bare file name has the working directory as its folder.
        let config = Config::parse(text, Path::new("exsec.toml")).expect("valid");
        assert_eq!(config.storage.path, Path::new("data/exsec.redb"));

        let config = Config::parse(text, Path::new("conf/exsec.toml")).expect("valid");
        assert_eq!(config.storage.path, Path::new("conf/data/exsec.redb"));
    }

    #[test]
    fn empty_path_is_refused() {
        let message = error("[auth]\nadmin_token_file = \"\"\n");
        assert!(message.contains("`auth.admin_token_file`"), "{message}");
        assert!(message.contains("must not be empty"), "{message}");
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let message = error("bogus = 1\n");
        assert!(message.contains("/srv/exsec/config.toml"), "{message}");
        assert!(message.contains("key `bogus`"), "{message}");
        assert!(message.contains("unknown field `bogus`"), "{message}");

        let message = error("[bogus]\nx = 1\n");
        assert!(message.contains("key `bogus`"), "{message}");

        let message = error("[storage]\npath = \"x\"\ncache = \"1MiB\"\n");
        assert!(message.contains("key `storage.cache`"), "{message}");
        assert!(
            message.contains("expected one of `path`, `cache_size`, `secret_history`"),
            "{message}"
        );
        assert!(message.contains("line 3"), "{message}");
    }

    #[test]
    fn secret_history_is_bounded() {
        assert_eq!(Config::default().storage.secret_history, 10);
        for bad in ["0", "1001"] {
            let message = error(&format!("[storage]\nsecret_history = {bad}\n"));
            assert!(message.contains("`storage.secret_history`"), "{message}");
            assert!(message.contains("between 1 and 1000"), "{message}");
        }
    }

    #[test]
    fn bad_values_name_their_key_and_line() {
        let cases = [
            (
                "[keys]\nrescan_interval = \"soon\"\n",
                "keys.rescan_interval",
                "invalid duration",
            ),
            (
                "[deploy]\ntimeout = \"0s\"\n",
                "deploy.timeout",
                "greater than zero",
            ),
            (
                "[deploy]\nqueue_timeout = 10\n",
                "deploy.queue_timeout",
                "a duration such as",
            ),
            (
                "[audit]\nanchor_interval = \"0s\"\n",
                "audit.anchor_interval",
                "greater than zero",
            ),
            (
                "[audit]\nretention = \"1 fortnight\"\n",
                "audit.retention",
                "invalid duration",
            ),
            (
                "[storage]\ncache_size = \"12XB\"\n",
                "storage.cache_size",
                "invalid size",
            ),
            (
                "[storage]\ncache_size = 5\n",
                "storage.cache_size",
                "a size such as",
            ),
            (
                "[cluster]\nnamespace = \"Paas_Apps\"\n",
                "cluster.namespace",
                "DNS-1123",
            ),
            (
                "[cluster]\ntarget = \"k8s\"\n",
                "cluster.target",
                "`kubernetes` or `manifests`",
            ),
            (
                "[log]\nformat = \"xml\"\n",
                "log.format",
                "`human` or `json`",
            ),
            (
                "[server]\nlisten = \"localhost:7780\"\n",
                "server.listen",
                "IP address",
            ),
            (
                "[keys]\nallow_group_readable = \"yes\"\n",
                "keys.allow_group_readable",
                "bool",
            ),
            (
                "storage.cache_size = \"1XB\"\n",
                "storage.cache_size",
                "invalid size",
            ),
            (
                "storage = { cache_size = \"\" }\n",
                "storage.cache_size",
                "invalid size",
            ),
        ];
        for (text, key, reason) in cases {
            let message = error(text);
            assert!(
                message.contains(&format!("key `{key}`")),
                "{text:?}: {message}"
            );
            assert!(message.contains(reason), "{text:?}: {message}");
            assert!(message.contains("line "), "{text:?}: {message}");
        }
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let message = error("[storage]\npath = \"unclosed\n");
        assert!(message.starts_with("config file /srv/exsec/config.toml is not valid TOML"));
        assert!(message.contains("line 2, column"), "{message}");
    }

    #[test]
    fn missing_file_is_a_read_error() {
        let folder = tempfile::tempdir().expect("temp dir");
        let path = folder.path().join("absent.toml");
        let error = Config::load(&path).expect_err("file is missing");
        assert!(matches!(error, ConfigError::Read { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            format!("cannot read config file {}", path.display())
        );
    }

    #[test]
    fn load_reads_the_file_and_resolves_against_its_folder() {
        let folder = tempfile::tempdir().expect("temp dir");
        let path = folder.path().join("exsec.toml");
        std::fs::write(&path, EXAMPLE).expect("write config");
        let config = Config::load(&path).expect("example loads");
        assert_eq!(config.storage.path, folder.path().join("var/exsec.redb"));
        // Loading has no side effects: nothing new in the folder.
        let entries = std::fs::read_dir(folder.path()).expect("list").count();
        assert_eq!(entries, 1);
    }

    #[test]
    fn non_loopback_listen_needs_tls_or_explicit_plaintext() {
        let message = error("[server]\nlisten = \"0.0.0.0:7780\"\n");
        assert!(message.contains("key `server.listen`"), "{message}");
        assert!(
            message.contains("allow_plaintext_remote = true"),
            "{message}"
        );
        assert!(message.contains("server.tls_cert"), "{message}");

        let plaintext = "[server]\nlisten = \"0.0.0.0:7780\"\nallow_plaintext_remote = true\n";
        assert!(parse(plaintext).is_ok());

        let tls =
            "[server]\nlisten = \"10.0.0.5:7780\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n";
        assert!(parse(tls).is_ok());

        assert!(parse("[server]\nlisten = \"[::1]:7780\"\n").is_ok());
    }

    #[test]
    fn connection_cap_and_socket_path_are_checked() {
        assert_eq!(ServerConfig::default().max_connections, 1024);
        let message = error("[server]\nmax_connections = 0\n");
        assert!(
            message.contains("key `server.max_connections`"),
            "{message}"
        );
        assert!(message.contains("at least 1"), "{message}");

        let long = format!(
            "[server]\nunix_socket = \"/run/{}.sock\"\n",
            "s".repeat(100)
        );
        let message = error(&long);
        assert!(message.contains("key `server.unix_socket`"), "{message}");
        assert!(message.contains("107 bytes"), "{message}");
    }

    #[test]
    fn half_configured_tls_is_refused() {
        let message = error("[server]\ntls_cert = \"cert.pem\"\n");
        assert!(message.contains("key `server.tls_key`"), "{message}");
        assert!(message.contains("set both"), "{message}");

        let message = error("[server]\ntls_key = \"key.pem\"\n");
        assert!(message.contains("key `server.tls_cert`"), "{message}");
    }

    #[test]
    fn size_parser_table() {
        let accepted = [
            ("32MiB", 33_554_432),
            ("512KiB", 524_288),
            ("1GiB", 1_073_741_824),
            ("1000000", 1_000_000),
            ("1KB", 1000),
            ("5MB", 5_000_000),
            ("2GB", 2_000_000_000),
            ("64B", 64),
            ("32 MiB", 33_554_432),
        ];
        for (raw, bytes) in accepted {
            assert_eq!(parse_size(raw), Ok(bytes), "{raw}");
        }
        let refused = [
            "0",
            "0MiB",
            "12XB",
            "",
            "MiB",
            "-1",
            "1.5MiB",
            "32mib",
            "99999999999GiB",
        ];
        for raw in refused {
            assert!(parse_size(raw).is_err(), "{raw} should be refused");
        }
        assert!(parse_size("0").is_err_and(|reason| reason.contains("greater than zero")));
    }

    #[test]
    fn namespace_rules() {
        let longest = "a".repeat(Namespace::MAX_LEN);
        for valid in ["paas-apps", "a", "0", longest.as_str()] {
            assert!(Namespace::parse(valid).is_ok(), "{valid}");
        }
        let too_long = "a".repeat(Namespace::MAX_LEN + 1);
        for invalid in [
            "",
            "-apps",
            "apps-",
            "Apps",
            "paas_apps",
            "a.b",
            too_long.as_str(),
        ] {
            assert!(Namespace::parse(invalid).is_err(), "{invalid}");
        }
    }
}
