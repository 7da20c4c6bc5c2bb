//! `exsec doctor APP`: the seed's troubleshooting table as checks.
//!
//! The daemon is asked what it knows (the app, its effective set, the
//! keyring, its newest deploy, what the cluster holds); [`diagnose`] then
//! judges those facts without I/O, so every row is unit-tested on plain
//! JSON. Each check prints ok, warning, problem or skipped, and a fix for
//! anything not ok. Only a problem fails the command (exit 6).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::client::ClientError;
use super::deploy::{injection_text, rollout_text};
use super::output::{items, line, names, text};
use super::{CliError, Context};
use crate::model::AppId;

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Nothing to do.
    Ok,
    /// Worth a look; not a failure.
    Warning,
    /// Secrets will not reach the app as expected.
    Problem,
    /// Could not be checked (and why is in the detail).
    Skipped,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Problem => "problem",
            Status::Skipped => "skipped",
        }
    }
}

/// One row of the report.
#[derive(Debug, Clone)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// The verdict.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do, unless ok.
    pub fix: Option<String>,
}

/// A fact that may not have been readable.
#[derive(Debug, Clone)]
pub enum Fetched {
    /// The daemon's answer.
    Got(Value),
    /// The route needs the admin token and the token is a tenant's.
    NotAdmin,
    /// The daemon could not tell (the reason).
    Failed(String),
}

/// What the daemon knows about one app.
#[derive(Debug, Clone)]
pub struct Facts {
    /// `GET /v1/apps/{app}`.
    pub app: Value,
    /// `GET /v1/apps/{app}/external-secrets/effective`.
    pub effective: Value,
    /// `GET /v1/keys`.
    pub keys: Fetched,
    /// `GET /v1/apps/{app}/cluster`.
    pub cluster: Fetched,
    /// The newest deploy, if any.
    pub last_deploy: Option<Value>,
    /// `GET /readyz` (its body also when not ready; `Null` if unreadable).
    pub ready: Value,
}

pub async fn doctor(context: &Context, app: &str) -> Result<(), CliError> {
    let app = AppId::parse(app)?;
    let client = &context.client;
    let record = client.get(&format!("/v1/apps/{app}")).await?;
    let effective = client
        .get(&format!("/v1/apps/{app}/external-secrets/effective"))
        .await?;
    let keys = fetch(client.get("/v1/keys").await)?;
    let cluster = fetch(client.get(&format!("/v1/apps/{app}/cluster")).await)?;
    let history = client
        .get(&format!("/v1/apps/{app}/deploys?limit=1"))
        .await?;
    // A daemon that is not ready still says why, in the same shape.
    let ready = match client.get("/readyz").await {
        Ok(ready) => ready,
        Err(ClientError::Problem(problem)) => problem.body,
        Err(error) => return Err(error.into()),
    };
    let facts = Facts {
        app: record,
        effective,
        keys,
        cluster,
        last_deploy: items(&history, "deploys").first().cloned(),
        ready,
    };
    let checks = diagnose(&facts);
    let problems = checks
        .iter()
        .filter(|c| c.status == Status::Problem)
        .count();
    let warnings = checks
        .iter()
        .filter(|c| c.status == Status::Warning)
        .count();
    if context.output.json() {
        let rows: Vec<Value> = checks
            .iter()
            .map(|c| {
                json!({ "check": c.name, "status": c.status.as_str(), "detail": c.detail, "fix": c.fix })
            })
            .collect();
        context.output.value(&json!({
            "app_id": app.as_str(),
            "tenant_id": facts.app["tenant_id"],
            "checks": rows,
            "problems": problems,
            "warnings": warnings,
        }))?;
    } else {
        line(&render(&app, &facts, &checks, problems, warnings))?;
    }
    if problems > 0 {
        return Err(CliError::CheckFailed(format!(
            "doctor found {problems} problem{} with app {app}",
            if problems == 1 { "" } else { "s" }
        )));
    }
    Ok(())
}

/// A fact that may legitimately be unreadable; other errors stop doctor.
fn fetch(answer: Result<Value, ClientError>) -> Result<Fetched, CliError> {
    match answer {
        Ok(value) => Ok(Fetched::Got(value)),
        Err(ClientError::Problem(problem))
            if problem.status == 404 && problem.code == "not_found" =>
        {
            Ok(Fetched::NotAdmin)
        }
        Err(ClientError::Problem(problem)) => Ok(Fetched::Failed(problem.to_string())),
        Err(error) => Err(error.into()),
    }
}

/// Judges the facts: one check per row of the troubleshooting table.
pub fn diagnose(facts: &Facts) -> Vec<Check> {
    let app = text(&facts.app["app_id"]);
    let tenant = text(&facts.app["tenant_id"]);
    let keys = items(&facts.effective, "keys");
    let image = deploy_image(facts);
    let redeploy = format!("exsec deploy {app} --image {image}");
    let mut checks = Vec::new();
    let mut check = |name, status, detail: String, fix: Option<String>| {
        checks.push(Check {
            name,
            status,
            detail,
            fix,
        });
    };

    // 1. Secrets exist for the tenant or the app.
    let from_app = keys.iter().filter(|k| k["source"] == "app").count();
    if keys.is_empty() {
        check(
            "secrets",
            Status::Problem,
            format!("neither app {app} nor tenant {tenant} has external secrets"),
            Some(format!(
                "exsec secrets set --tenant {tenant} PROVIDER KEY (all apps of the tenant) or --app {app} (this app only)"
            )),
        );
    } else {
        check(
            "secrets",
            Status::Ok,
            format!(
                "{} env vars: {from_app} from the app, {} from tenant {tenant}",
                keys.len(),
                keys.len() - from_app
            ),
            None,
        );
    }

    // 2. Master key loaded; no record waits for a missing key.
    match &facts.keys {
        Fetched::NotAdmin => check(
            "master key",
            Status::Skipped,
            "needs the admin token (a tenant token cannot read the keyring)".to_owned(),
            None,
        ),
        Fetched::Failed(reason) => check(
            "master key",
            Status::Skipped,
            format!("the keyring could not be read: {reason}"),
            None,
        ),
        Fetched::Got(keyring) => {
            let missing: Vec<String> = items(keyring, "keys")
                .iter()
                .filter(|k| k["present"] == false && k["records"].as_u64().unwrap_or(0) > 0)
                .map(|k| format!("{} ({} records)", text(&k["id"]), text(&k["records"])))
                .collect();
            if keyring["active"].is_null() || keyring["degraded"] == true {
                check(
                    "master key",
                    Status::Problem,
                    "no master key is loaded: secret writes fail and deploys skip injection".to_owned(),
                    Some("on the daemon's host: exsec keys generate --dir KEYS_DIR (keys.dir of the config); no restart needed".to_owned()),
                );
            } else if !missing.is_empty() {
                check(
                    "master key",
                    Status::Problem,
                    format!(
                        "records are sealed under keys that are not loaded: {}; deploys of apps using them fail injection",
                        missing.join(", ")
                    ),
                    Some("put those key files back into the key directory (ID.key); the daemon picks them up without a restart".to_owned()),
                );
            } else {
                check(
                    "master key",
                    Status::Ok,
                    format!(
                        "active key {}; no record waits for a missing key",
                        text(&keyring["active"])
                    ),
                    None,
                );
            }
        }
    }

    // The daemon's own state: writes reach the disk; the audit log is whole.
    match facts.ready["storage"].as_str() {
        Some("ok") => check("storage", Status::Ok, "writes reach the disk".to_owned(), None),
        Some(_) => check(
            "storage",
            Status::Problem,
            format!(
                "writes fail ({}); reads are still answered",
                match facts.ready["storage_fault"].as_str() {
                    Some("no_space") => "the daemon's disk is full",
                    _ => "the daemon's disk fails",
                }
            ),
            Some("free space on (or repair) the file system of storage.path; exsec resumes writes by itself, no restart needed".to_owned()),
        ),
        None => check(
            "storage",
            Status::Skipped,
            "the daemon did not say (older than this CLI?)".to_owned(),
            None,
        ),
    }
    match facts.ready["audit"]["chain"].as_str() {
        Some("verified") => check(
            "audit log",
            Status::Ok,
            "the hash chain verified up to the newest event".to_owned(),
            None,
        ),
        Some(_) => check(
            "audit log",
            Status::Problem,
            format!(
                "the audit log was changed after it was last verified: {}",
                text(&facts.ready["audit"]["error"])
            ),
            Some("compare with a logged anchor (exsec audit verify --anchor SEQ:HASH) or a backup, and find who had write access to the data directory".to_owned()),
        ),
        None => check(
            "audit log",
            Status::Skipped,
            "the daemon did not say (older than this CLI?)".to_owned(),
            None,
        ),
    }

    // 3. Redeploy after a change.
    let changed: Vec<Value> = keys
        .iter()
        .filter(|k| k["redeploy_needed"] == true)
        .map(|k| k["key"].clone())
        .collect();
    let removed = items(&facts.effective, "removed_since_deploy");
    let synced = facts.effective["last_synced_deploy_id"].as_str();
    match synced {
        None if keys.is_empty() => check(
            "redeploy",
            Status::Ok,
            "nothing to inject yet".to_owned(),
            None,
        ),
        None => check(
            "redeploy",
            Status::Problem,
            "no deploy has injected the app's secrets yet".to_owned(),
            Some(redeploy.clone()),
        ),
        Some(deploy_id) if !changed.is_empty() || !removed.is_empty() => {
            let mut detail = Vec::new();
            if !changed.is_empty() {
                detail.push(format!(
                    "{} changed after deploy {deploy_id}",
                    names(&changed)
                ));
            }
            if !removed.is_empty() {
                detail.push(format!(
                    "{} removed after deploy {deploy_id} (still in the cluster)",
                    names(removed)
                ));
            }
            check(
                "redeploy",
                Status::Problem,
                detail.join("; "),
                Some(redeploy.clone()),
            );
        }
        Some(deploy_id) => check(
            "redeploy",
            Status::Ok,
            format!("the cluster got the current values with deploy {deploy_id}"),
            None,
        ),
    }

    // 4. The Secret exists with the expected key names; 5. the Deployment
    // reads it through envFrom; 8. rollout.
    let secret_name = format!("app-{app}-external-secrets");
    match &facts.cluster {
        Fetched::Got(cluster) => {
            let secret_name = cluster["secret"]["name"]
                .as_str()
                .map_or(secret_name, str::to_owned);
            let expected: BTreeSet<&str> = keys.iter().filter_map(|k| k["key"].as_str()).collect();
            let present: BTreeSet<&str> = items(&cluster["secret"], "keys")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let exists = cluster["secret"]["exists"] == true;
            if !exists && expected.is_empty() {
                check(
                    "cluster secret",
                    Status::Ok,
                    format!("no Secret {secret_name}, and none is needed"),
                    None,
                );
            } else if !exists {
                check(
                    "cluster secret",
                    Status::Problem,
                    format!("Secret {secret_name} does not exist in the cluster"),
                    Some(redeploy.clone()),
                );
            } else {
                let lacking: Vec<&str> = expected.difference(&present).copied().collect();
                let extra: Vec<&str> = present.difference(&expected).copied().collect();
                if lacking.is_empty() && extra.is_empty() {
                    check(
                        "cluster secret",
                        Status::Ok,
                        format!(
                            "Secret {secret_name} holds the {} expected keys",
                            expected.len()
                        ),
                        None,
                    );
                } else {
                    let mut detail = Vec::new();
                    if !lacking.is_empty() {
                        detail.push(format!("lacks {}", lacking.join(", ")));
                    }
                    if !extra.is_empty() {
                        detail.push(format!(
                            "holds {} which the app no longer has",
                            extra.join(", ")
                        ));
                    }
                    check(
                        "cluster secret",
                        Status::Problem,
                        format!("Secret {secret_name} {}", detail.join(" and ")),
                        Some(redeploy.clone()),
                    );
                }
            }
            let deployment = &cluster["deployment"];
            if deployment.is_null() {
                check(
                    "envFrom",
                    Status::Problem,
                    format!("there is no Deployment {app} in the cluster"),
                    Some(redeploy.clone()),
                );
                check(
                    "rollout",
                    Status::Skipped,
                    "no Deployment to roll out".to_owned(),
                    None,
                );
            } else {
                let reference = items(deployment, "env_from")
                    .iter()
                    .find(|r| r["secret_name"].as_str() == Some(secret_name.as_str()));
                match reference {
                    Some(reference) => check(
                        "envFrom",
                        Status::Ok,
                        format!(
                            "Deployment {app} reads Secret {secret_name} through envFrom (optional: {})",
                            text(&reference["optional"])
                        ),
                        None,
                    ),
                    None => check(
                        "envFrom",
                        Status::Problem,
                        format!(
                            "Deployment {app} does not read Secret {secret_name} through envFrom: the values never reach its pods"
                        ),
                        Some(format!(
                            "{redeploy} (exsec sets envFrom), or add `envFrom: [{{secretRef: {{name: {secret_name}, optional: true}}}}]` to the container `app` of your own manifest"
                        )),
                    ),
                }
                let rollout = &deployment["rollout"];
                match rollout["status"].as_str() {
                    Some("complete") => check(
                        "rollout",
                        Status::Ok,
                        format!("complete: {}", rollout_text(rollout)),
                        None,
                    ),
                    Some("progressing") => check(
                        "rollout",
                        Status::Warning,
                        format!("in progress: {}", rollout_text(rollout)),
                        Some(format!(
                            "wait, or look at why it is stuck: kubectl -n {} rollout status deployment/{app}; kubectl -n {} describe pods -l app.kubernetes.io/name={app}",
                            text(&cluster["namespace"]),
                            text(&cluster["namespace"])
                        )),
                    ),
                    _ => check(
                        "rollout",
                        Status::Skipped,
                        format!(
                            "the {} target cannot report rollouts",
                            text(&cluster["target"])
                        ),
                        None,
                    ),
                }
            }
        }
        Fetched::NotAdmin | Fetched::Failed(_) => {
            let reason = match &facts.cluster {
                Fetched::Failed(reason) => reason.clone(),
                _ => "the cluster route is not available to this token".to_owned(),
            };
            check(
                "cluster secret",
                Status::Problem,
                format!("cannot read the cluster: {reason}"),
                Some("check the daemon's cluster settings (cluster.*) and the API server; `exsec doctor` again".to_owned()),
            );
            check(
                "envFrom",
                Status::Skipped,
                "cluster not readable".to_owned(),
                None,
            );
            check(
                "rollout",
                Status::Skipped,
                "cluster not readable".to_owned(),
                None,
            );
        }
    }

    // 6. An app override shadows a tenant default ("wrong value injected").
    let shadowing: Vec<&Value> = keys
        .iter()
        .filter(|k| k["overrides_tenant"] == true)
        .collect();
    if shadowing.is_empty() {
        check(
            "overrides",
            Status::Ok,
            "no app override shadows a tenant default".to_owned(),
            None,
        );
    } else {
        let listed: Vec<Value> = shadowing.iter().map(|k| k["key"].clone()).collect();
        let first = shadowing[0];
        check(
            "overrides",
            Status::Warning,
            format!(
                "the app's own value of {} wins over tenant {tenant}'s default: if the app gets an unexpected value, this is why",
                names(&listed)
            ),
            Some(format!(
                "compare a candidate: exsec secrets verify --app {app} {} {}; use the tenant default instead: exsec secrets rm --app {app} {} {}",
                text(&first["provider"]),
                text(&first["key"]),
                text(&first["provider"]),
                text(&first["key"])
            )),
        );
    }

    // 7. required_env names missing.
    let required = items(&facts.app, "required_env");
    let missing: Vec<&Value> = required
        .iter()
        .filter(|name| !keys.iter().any(|k| &k["key"] == *name))
        .collect();
    if required.is_empty() {
        check(
            "required env",
            Status::Ok,
            "the app declares no required env vars".to_owned(),
            None,
        );
    } else if missing.is_empty() {
        check(
            "required env",
            Status::Ok,
            format!("all {} required env vars are set", required.len()),
            None,
        );
    } else {
        let listed: Vec<Value> = missing.iter().map(|v| (*v).clone()).collect();
        check(
            "required env",
            Status::Problem,
            format!(
                "the app requires {} but its effective set lacks them (missing_required_env)",
                names(&listed)
            ),
            Some(format!(
                "exsec secrets set --app {app} PROVIDER {} (or --tenant {tenant}), then {redeploy}",
                text(missing[0])
            )),
        );
    }

    // The last deploy's own outcome.
    match &facts.last_deploy {
        None => check(
            "last deploy",
            Status::Skipped,
            "the app has no deploys yet".to_owned(),
            None,
        ),
        Some(deploy) => {
            let secrets = &deploy["external_secrets"];
            let id = text(&deploy["deploy_id"]);
            if deploy["status"] != "succeeded" {
                check(
                    "last deploy",
                    Status::Problem,
                    format!(
                        "deploy {id} failed: {}",
                        deploy["error"]
                            .as_str()
                            .unwrap_or("the Deployment was not applied")
                    ),
                    Some(format!(
                        "check the daemon's log and the cluster, then {redeploy}"
                    )),
                );
            } else if secrets["status"] == "failed" || secrets["reason"] == "master_key_unavailable"
            {
                check(
                    "last deploy",
                    Status::Problem,
                    format!("deploy {id}: external secrets {}", injection_text(secrets)),
                    Some(redeploy.clone()),
                );
            } else {
                check(
                    "last deploy",
                    Status::Ok,
                    format!(
                        "deploy {id} succeeded; external secrets {}",
                        injection_text(secrets)
                    ),
                    None,
                );
            }
        }
    }
    // 10. Nothing holding plaintext waits for removal.
    match &facts.cluster {
        Fetched::Got(cluster) => match cluster.get("cleanup_pending").filter(|c| !c.is_null()) {
            None => check(
                "cleanup",
                Status::Ok,
                "nothing left to remove".to_owned(),
                None,
            ),
            Some(pending) => check(
                "cleanup",
                Status::Problem,
                format!(
                    "{} of app {app} could not be removed since {} ({} attempts): {}; exsec keeps retrying",
                    if pending["kind"] == "stale_secret" {
                        "a Secret holding values the app no longer has"
                    } else {
                        "objects of a deleted app"
                    },
                    text(&pending["since"]),
                    text(&pending["attempts"]),
                    text(&pending["last_error"]),
                ),
                Some(
                    "fix what the error names (a read-only manifests directory, a missing `delete` right on secrets); the next retry removes it"
                        .to_owned(),
                ),
            ),
        },
        Fetched::NotAdmin | Fetched::Failed(_) => check(
            "cleanup",
            Status::Skipped,
            "the cluster could not be read".to_owned(),
            None,
        ),
    }
    checks
}

/// The image to suggest for a redeploy: the cluster's, else the last
/// deploy's, else a placeholder.
fn deploy_image(facts: &Facts) -> String {
    let from_cluster = match &facts.cluster {
        Fetched::Got(cluster) => cluster["deployment"]["image"].as_str(),
        _ => None,
    };
    from_cluster
        .or_else(|| facts.last_deploy.as_ref()?["image_ref"].as_str())
        .unwrap_or("IMAGE")
        .to_owned()
}

fn render(
    app: &AppId,
    facts: &Facts,
    checks: &[Check],
    problems: usize,
    warnings: usize,
) -> String {
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let mut lines = vec![format!(
        "doctor: app {app} (tenant {})",
        text(&facts.app["tenant_id"])
    )];
    for check in checks {
        lines.push(format!(
            "{:<8} {:<width$}  {}",
            check.status.as_str(),
            check.name,
            check.detail
        ));
        if let Some(fix) = &check.fix {
            lines.push(format!("{:<8} {:<width$}  fix: {fix}", "", ""));
        }
    }
    lines.push(match (problems, warnings) {
        (0, 0) => "all checks passed".to_owned(),
        (p, w) => format!(
            "{p} problem{}, {w} warning{}",
            if p == 1 { "" } else { "s" },
            if w == 1 { "" } else { "s" }
        ),
    });
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Facts {
        Facts {
            app: json!({"app_id": "web", "tenant_id": "acme", "required_env": ["OPENAI_API_KEY"]}),
            effective: json!({
                "keys": [{"key": "OPENAI_API_KEY", "provider": "openai", "source": "tenant",
                          "overrides_tenant": false, "redeploy_needed": false}],
                "removed_since_deploy": [],
                "last_synced_deploy_id": "dep_1",
                "warnings": [],
            }),
            keys: Fetched::Got(json!({"active": "k2", "degraded": false, "keys": [
                {"id": "k1", "present": false, "records": 0},
                {"id": "k2", "present": true, "records": 1},
            ]})),
            cluster: Fetched::Got(json!({
                "target": "kubernetes", "namespace": "paas-apps",
                "secret": {"name": "app-web-external-secrets", "exists": true, "keys": ["OPENAI_API_KEY"]},
                "deployment": {"image": "nginx:1", "deploy_id": "dep_1",
                    "env_from": [{"secret_name": "app-web-external-secrets", "optional": true}],
                    "rollout": {"status": "complete", "replicas": 2, "updated_replicas": 2, "available_replicas": 2}},
            })),
            last_deploy: Some(
                json!({"deploy_id": "dep_1", "status": "succeeded", "image_ref": "nginx:1",
                "external_secrets": {"status": "injected", "secret_name": "app-web-external-secrets",
                    "key_count": 1, "keys": ["OPENAI_API_KEY"]}}),
            ),
            ready: json!({"status": "ready", "storage": "ok", "storage_fault": null,
                "audit": {"chain": "verified", "error": null}}),
        }
    }

    fn status_of(checks: &[Check], name: &str) -> Status {
        checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no check {name}"))
            .status
    }

    #[test]
    fn a_healthy_app_passes_every_check() {
        let checks = diagnose(&healthy());
        for check in &checks {
            assert_eq!(check.status, Status::Ok, "{check:?}");
        }
        assert_eq!(checks.len(), 12);
    }

    #[test]
    fn a_pending_cleanup_is_a_problem() {
        let mut facts = healthy();
        if let Fetched::Got(cluster) = &mut facts.cluster {
            cluster["cleanup_pending"] = json!({"kind": "stale_secret", "since": "2026-11-30T00:00:00Z",
                "attempts": 3, "last_attempt": "2026-11-30T00:01:00Z",
                "last_error": "write app-web: Read-only file system"});
        }
        let checks = diagnose(&facts);
        assert_eq!(status_of(&checks, "cleanup"), Status::Problem);
        let row = checks.iter().find(|c| c.name == "cleanup").unwrap();
        assert!(row.detail.contains("Read-only file system"), "{row:?}");
        facts.cluster = Fetched::Failed("unreachable".into());
        assert_eq!(status_of(&diagnose(&facts), "cleanup"), Status::Skipped);
    }

    #[test]
    fn a_full_disk_and_a_broken_audit_chain_are_problems() {
        let mut facts = healthy();
        facts.ready = json!({"status": "not_ready", "storage": "degraded",
            "storage_fault": "no_space",
            "audit": {"chain": "broken", "error": "audit event 7 was altered"}});
        let checks = diagnose(&facts);
        let storage = checks.iter().find(|c| c.name == "storage").unwrap();
        assert_eq!(storage.status, Status::Problem);
        assert!(storage.detail.contains("disk is full"), "{storage:?}");
        let audit = checks.iter().find(|c| c.name == "audit log").unwrap();
        assert_eq!(audit.status, Status::Problem);
        assert!(audit.detail.contains("event 7 was altered"), "{audit:?}");
        facts.ready = Value::Null;
        assert_eq!(status_of(&diagnose(&facts), "storage"), Status::Skipped);
    }

    #[test]
    fn a_progressing_rollout_is_a_warning() {
        let mut facts = healthy();
        if let Fetched::Got(cluster) = &mut facts.cluster {
            cluster["deployment"]["rollout"] = json!({"status": "progressing", "replicas": 2, "updated_replicas": 1, "available_replicas": 1});
        }
        let checks = diagnose(&facts);
        assert_eq!(status_of(&checks, "rollout"), Status::Warning);
        let rollout = checks.iter().find(|c| c.name == "rollout").unwrap();
        assert!(rollout.detail.contains("1/2 updated"), "{}", rollout.detail);
        assert!(
            rollout
                .fix
                .as_ref()
                .unwrap()
                .contains("kubectl -n paas-apps rollout status")
        );
    }

    #[test]
    fn a_missing_key_with_records_and_a_tenant_token_are_told_apart() {
        let mut facts = healthy();
        facts.keys = Fetched::Got(json!({"active": "k2", "degraded": false, "keys": [
            {"id": "k1", "present": false, "records": 3},
            {"id": "k2", "present": true, "records": 1},
        ]}));
        let checks = diagnose(&facts);
        assert_eq!(status_of(&checks, "master key"), Status::Problem);
        assert!(
            checks[1].detail.contains("k1 (3 records)"),
            "{}",
            checks[1].detail
        );
        facts.keys = Fetched::NotAdmin;
        assert_eq!(status_of(&diagnose(&facts), "master key"), Status::Skipped);
    }

    #[test]
    fn an_unreadable_cluster_is_a_problem() {
        let mut facts = healthy();
        facts.cluster =
            Fetched::Failed("connection refused (HTTP 502, cluster_unreachable)".to_owned());
        let checks = diagnose(&facts);
        assert_eq!(status_of(&checks, "cluster secret"), Status::Problem);
        assert_eq!(status_of(&checks, "envFrom"), Status::Skipped);
    }

    #[test]
    fn a_failed_injection_is_named() {
        let mut facts = healthy();
        facts.last_deploy = Some(json!({"deploy_id": "dep_2", "status": "succeeded",
            "external_secrets": {"status": "failed", "reason": "undecryptable_values",
                "secret_name": "app-web-external-secrets", "undecryptable": ["OPENAI_API_KEY"]}}));
        let checks = diagnose(&facts);
        let last = checks.iter().find(|c| c.name == "last deploy").unwrap();
        assert_eq!(last.status, Status::Problem);
        assert!(
            last.detail
                .contains("OPENAI_API_KEY are sealed under a master key"),
            "{}",
            last.detail
        );
    }
}
