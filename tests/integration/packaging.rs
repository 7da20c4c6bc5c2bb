//! The configuration files shipped under `packaging/` load with exsec's own
//! config loader and say what the packaging around them assumes (system
//! paths for the `.deb`, a remote listener for the Kubernetes StatefulSet).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use exsec::config::{Config, TargetKind};

fn packaging(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("packaging")
        .join(path)
}

#[test]
fn debian_config_loads_with_system_paths() {
    let config = Config::load(&packaging("debian/config.toml")).unwrap();
    assert_eq!(
        config.storage.path,
        Path::new("/var/lib/exsec/exsec.redb"),
        "the unit's StateDirectory=exsec is the only writable place"
    );
    assert_eq!(config.keys.dir, Path::new("/etc/exsec/keys.d"));
    assert!(!config.keys.allow_group_readable);
    assert_eq!(
        config.auth.admin_token_file,
        Path::new("/etc/exsec/admin.token")
    );
    assert_eq!(config.cluster.target, TargetKind::Kubernetes);
    assert_eq!(config.cluster.namespace.as_str(), "paas-apps");
    assert_eq!(config.cluster.kubeconfig, None, "kubeconfig is a hint only");
    assert_eq!(
        config.server.listen,
        SocketAddr::from(([127, 0, 0, 1], 7780))
    );
    assert!(!config.server.allow_plaintext_remote);
    // The pair postinst generates; the socket in the unit's RuntimeDirectory.
    assert_eq!(
        config.server.tls_cert.as_deref(),
        Some(Path::new("/etc/exsec/tls/tls.crt"))
    );
    assert_eq!(
        config.server.tls_key.as_deref(),
        Some(Path::new("/etc/exsec/tls/tls.key"))
    );
    assert_eq!(
        config.server.unix_socket.as_deref(),
        Some(Path::new("/run/exsec/exsec.sock"))
    );
    let unit = std::fs::read_to_string(packaging("systemd/exsec.service")).unwrap();
    assert!(unit.lines().any(|line| line == "RuntimeDirectory=exsec"));
}

#[test]
fn debian_config_hints_at_the_k3s_kubeconfig() {
    let text = std::fs::read_to_string(packaging("debian/config.toml")).unwrap();
    assert!(
        text.lines()
            .any(|line| line.trim() == r#"# kubeconfig = "/etc/rancher/k3s/k3s.yaml""#),
        "the commented k3s kubeconfig hint is missing"
    );
    // Uncommenting the hint must still give a valid file.
    let uncommented = text.replace(
        r#"# kubeconfig = "/etc/rancher/k3s/k3s.yaml""#,
        r#"kubeconfig = "/etc/rancher/k3s/k3s.yaml""#,
    );
    let config = Config::parse(&uncommented, Path::new("/etc/exsec/config.toml")).unwrap();
    assert_eq!(
        config.cluster.kubeconfig.as_deref(),
        Some(Path::new("/etc/rancher/k3s/k3s.yaml"))
    );
}

#[test]
fn kubernetes_configmap_config_loads_for_the_statefulset() {
    let yaml = std::fs::read_to_string(packaging("kubernetes/20-configmap.yaml")).unwrap();
    let text = literal_block(&yaml, "config.toml");
    let config = Config::parse(&text, Path::new("/etc/exsec/config.toml")).unwrap();
    assert_eq!(config.cluster.target, TargetKind::Kubernetes);
    assert_eq!(
        config.cluster.kubeconfig, None,
        "in-cluster service account"
    );
    assert_eq!(config.cluster.namespace.as_str(), "paas-apps");
    assert_eq!(config.server.listen, SocketAddr::from(([0, 0, 0, 0], 7780)));
    assert!(!config.server.allow_plaintext_remote, "HTTPS only");
    assert_eq!(
        config.server.tls_cert.as_deref(),
        Some(Path::new("/etc/exsec/tls/tls.crt")),
        "the exsec-tls Secret mount"
    );
    assert_eq!(
        config.server.tls_key.as_deref(),
        Some(Path::new("/etc/exsec/tls/tls.key"))
    );
    assert!(
        config.keys.allow_group_readable,
        "Secret volumes with fsGroup are 0440"
    );
    assert_eq!(config.keys.dir, Path::new("/etc/exsec/keys.d"));
    assert_eq!(
        config.storage.path,
        Path::new("/var/lib/exsec/exsec.redb"),
        "the PVC mount"
    );
    assert_eq!(
        config.auth.admin_token_file,
        Path::new("/etc/exsec/admin/admin.token"),
        "the admin token Secret mount"
    );
    assert!(config.keys.rescan_interval <= Duration::from_secs(60));
}

/// The text of the YAML literal block scalar `key: |` (indentation removed).
fn literal_block(yaml: &str, key: &str) -> String {
    let header = format!("{key}: |");
    let mut lines = yaml.lines().skip_while(|line| line.trim() != header);
    let header_line = lines
        .next()
        .unwrap_or_else(|| panic!("no `{header}` block"));
    let header_indent = indent(header_line);
    let body: Vec<&str> = lines
        .take_while(|line| line.trim().is_empty() || indent(line) > header_indent)
        .collect();
    let block_indent = body
        .iter()
        .filter(|line| !line.trim().is_empty())
        .map(|line| indent(line))
        .min()
        .unwrap_or(0);
    body.iter()
        .map(|line| line.get(block_indent..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}
