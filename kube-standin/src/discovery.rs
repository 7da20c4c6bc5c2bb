//! Discovery documents: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/apps`,
//! `/apis/apps/v1`.
//!
//! Only the legacy (unaggregated) form is served, whatever the `Accept` header asks for:
//! kubectl asks for aggregated discovery first and falls back to these documents when the
//! answer's content type is plain `application/json`. The resource lists are derived from
//! [`Kind`], so discovery cannot disagree with what the router serves.

use std::net::SocketAddr;

use serde_json::{Value, json};

use crate::kind::Kind;

/// The version the stand-in reports: the oldest Kubernetes that k8s-openapi's `v1_33`
/// feature targets, marked so nobody mistakes it for a real server.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-kube-standin",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `/api`: the core group's versions.
pub fn core_versions(address: SocketAddr) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address.to_string()}],
    })
}

/// `/apis`: the named groups.
pub fn groups() -> Value {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [apps_group()],
    })
}

/// `/apis/apps`.
pub fn apps_group() -> Value {
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": "apps",
        "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
        "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"},
    })
}

/// `/api/v1` or `/apis/apps/v1`: the resources of one group version.
pub fn resources(group: &str) -> Value {
    let group_version = if group.is_empty() {
        "v1".to_owned()
    } else {
        format!("{group}/v1")
    };
    let resources: Vec<Value> = Kind::ALL
        .into_iter()
        .filter(|kind| kind.group() == group)
        .flat_map(|kind| {
            let verbs: &[&str] = if kind.writable() {
                &["create", "delete", "get", "list", "patch", "update"]
            } else {
                &["get", "list"]
            };
            let mut main = json!({
                "name": kind.plural(),
                "singularName": kind.name().to_ascii_lowercase(),
                "namespaced": kind.namespaced(),
                "kind": kind.name(),
                "verbs": verbs,
            });
            if !kind.short_names().is_empty() {
                main["shortNames"] = json!(kind.short_names());
            }
            if kind == Kind::Deployment {
                main["categories"] = json!(["all"]);
            }
            let status = (kind == Kind::Deployment).then(|| {
                json!({
                    "name": "deployments/status",
                    "singularName": "",
                    "namespaced": true,
                    "kind": "Deployment",
                    "verbs": ["get"],
                })
            });
            std::iter::once(main).chain(status)
        })
        .collect();
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_lists_follow_the_kinds() {
        let core = resources("");
        let names: Vec<_> = core["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| r["name"].clone())
            .collect();
        assert_eq!(
            names,
            vec![json!("namespaces"), json!("secrets"), json!("events")]
        );
        let apps = resources("apps");
        assert_eq!(apps["groupVersion"], "apps/v1");
        assert_eq!(apps["resources"][0]["shortNames"], json!(["deploy"]));
        assert_eq!(apps["resources"][0]["namespaced"], true);
    }
}
