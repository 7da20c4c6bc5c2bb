//! `exsec tls generate`: a self-signed certificate and key for the
//! daemon (offline), with the config lines and the client flag that use
//! them.

use std::path::Path;

use serde_json::json;

use super::CliError;
use super::output::{Output, line, note};
use crate::tls;

pub fn generate(dir: &Path, hosts: &[String], days: u32, output: Output) -> Result<(), CliError> {
    let pair = tls::generate_pair(dir, hosts, days, std::time::SystemTime::now())
        .map_err(CliError::TlsGenerate)?;
    if output.json() {
        return output.value(&json!({
            "cert": pair.cert.display().to_string(),
            "key": pair.key.display().to_string(),
            "hosts": hosts,
            "serial": pair.info.serial,
            "not_after": pair.info.not_after_text(),
            "sha256": pair.info.sha256,
        }));
    }
    line(&pair.cert.display().to_string())?;
    line(&pair.key.display().to_string())?;
    note(&format!(
        "wrote a self-signed certificate for {} (serial {}, valid until {}, SHA-256 {}) and its key (mode 0600)",
        hosts.join(", "),
        pair.info.serial,
        pair.info.not_after_text(),
        pair.info.sha256,
    ));
    let host = match hosts.first() {
        Some(host) if host.contains(':') => format!("[{host}]"),
        Some(host) => host.clone(),
        None => "HOST".to_owned(),
    };
    note(&format!(
        "serve it with, in [server]:\n  tls_cert = \"{}\"\n  tls_key = \"{}\"\nand trust it in clients: exsec --url https://{}:7780 --cacert {} …",
        pair.cert.display(),
        pair.key.display(),
        host,
        pair.cert.display(),
    ));
    Ok(())
}
