//! Kubeconfig files pointing clients at a stand-in.
//!
//! Written as JSON (valid YAML) so no YAML writer is needed; both kube-rs
//! (`Kubeconfig::read_from`) and kubectl read it. The cluster has no TLS and the user no
//! credentials: the stand-in does not authenticate.

use std::io;
use std::path::Path;

use serde_json::{Value, json};

/// The name used for the cluster, user and context.
const NAME: &str = "kube-standin";

/// A kubeconfig whose current context talks to `server` in `namespace`.
pub fn render(server: &str, namespace: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": NAME, "cluster": {"server": server}}],
        "users": [{"name": NAME, "user": {}}],
        "contexts": [{"name": NAME, "context": {"cluster": NAME, "user": NAME, "namespace": namespace}}],
        "current-context": NAME,
        "preferences": {},
    })
}

/// Writes [`render`] to `path`.
pub fn write(path: &Path, server: &str, namespace: &str) -> io::Result<()> {
    let text =
        serde_json::to_string_pretty(&render(server, namespace)).map_err(io::Error::other)?;
    std::fs::write(path, text)
}
