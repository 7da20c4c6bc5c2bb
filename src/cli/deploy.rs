//! `exsec deploy` and `exsec deploys`: run a deploy and say what happened
//! to the external secrets (injected, skipped or failed, and why), or show
//! the history.

use bytes::Bytes;
use hyper::Method;
use serde_json::{Map, Value, json};

use super::client::ClientError;
use super::output::{items, line, names, note, table, text};
use super::{CliError, Context};
use crate::model::{AppId, TenantId};

/// What `exsec deploy` asks for.
pub struct Request {
    /// The app.
    pub app: String,
    /// The image.
    pub image: String,
    /// The tenant, if given.
    pub tenant: Option<String>,
    /// Replicas, if given.
    pub replicas: Option<i32>,
    /// Port, if given.
    pub port: Option<u16>,
    /// Report only.
    pub dry_run: bool,
    /// `Idempotency-Key`.
    pub idempotency_key: Option<String>,
}

pub async fn deploy(context: &Context, request: Request) -> Result<(), CliError> {
    let app = AppId::parse(&request.app)?;
    let mut body = Map::new();
    body.insert("image_ref".to_owned(), json!(request.image));
    if let Some(tenant) = &request.tenant {
        body.insert(
            "tenant_id".to_owned(),
            json!(TenantId::parse(tenant)?.as_str()),
        );
    }
    if let Some(replicas) = request.replicas {
        body.insert("replicas".to_owned(), json!(replicas));
    }
    if let Some(port) = request.port {
        body.insert("port".to_owned(), json!(port));
    }
    let path = if request.dry_run {
        format!("/v1/apps/{app}/deploys?dry_run=true")
    } else {
        format!("/v1/apps/{app}/deploys")
    };
    let headers: Vec<(&str, &str)> = request
        .idempotency_key
        .as_deref()
        .map(|key| ("idempotency-key", key))
        .into_iter()
        .collect();
    let sent = context
        .client
        .request(
            Method::POST,
            &path,
            Some(Bytes::from(Value::Object(body).to_string())),
            &headers,
        )
        .await;
    let answer = match sent {
        Ok(answer) => answer,
        Err(ClientError::Problem(problem)) if problem.code == "deployment_apply_failed" => {
            // The deploy is recorded as failed; the injection outcome still
            // matters to the caller.
            if context.output.json() {
                context.output.value(&problem.body)?;
            } else {
                note(&describe(&problem.body).join("\n"));
            }
            return Err(ClientError::Problem(problem).into());
        }
        Err(error) => return Err(error.into()),
    };
    if context.output.json() {
        return context.output.value(&answer.body);
    }
    if request.dry_run {
        return line(&describe_dry_run(&answer.body).join("\n"));
    }
    line(&describe(&answer.body).join("\n"))
}

pub async fn history(
    context: &Context,
    app: &str,
    deploy_id: Option<&str>,
    limit: usize,
) -> Result<(), CliError> {
    let app = AppId::parse(app)?;
    if let Some(deploy_id) = deploy_id {
        if deploy_id.is_empty()
            || !deploy_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(CliError::Usage(
                "a deploy id looks like dep_000000000007, as `exsec deploys APP` lists".to_owned(),
            ));
        }
        let body = context
            .client
            .get(&format!("/v1/apps/{app}/deploys/{deploy_id}"))
            .await?;
        if context.output.json() {
            return context.output.value(&body);
        }
        let mut lines = describe(&body);
        let rollout = &body["rollout_status"];
        if rollout.is_object() {
            lines.push(format!("rollout: {}", rollout_text(rollout)));
        }
        return line(&lines.join("\n"));
    }
    let body = context
        .client
        .get(&format!("/v1/apps/{app}/deploys?limit={limit}"))
        .await?;
    if context.output.json() {
        return context.output.value(&body);
    }
    let deploys = items(&body, "deploys");
    if deploys.is_empty() {
        return line(&format!("app {app} has no deploys yet"));
    }
    let rows: Vec<Vec<String>> = deploys
        .iter()
        .map(|d| {
            let secrets = &d["external_secrets"];
            let outcome = match secrets["reason"].as_str() {
                Some(reason) => format!("{} ({reason})", text(&secrets["status"])),
                None => text(&secrets["status"]),
            };
            vec![
                text(&d["deploy_id"]),
                text(&d["created_at"]),
                text(&d["image_ref"]),
                text(&d["status"]),
                outcome,
                text(&secrets["key_count"]),
            ]
        })
        .collect();
    line(&table(
        &["DEPLOY", "CREATED", "IMAGE", "STATUS", "SECRETS", "KEYS"],
        &rows,
    ))
}

/// A deploy (answer or record) in a few lines.
fn describe(deploy: &Value) -> Vec<String> {
    let status = match &deploy["status"] {
        // A 502 problem carries the HTTP status; the deploy failed.
        Value::Number(_) => "failed".to_owned(),
        other => text(other),
    };
    let mut lines = vec![format!(
        "deploy {} of app {} (tenant {}): {status}",
        text(&deploy["deploy_id"]),
        text(&deploy["app_id"]),
        text(&deploy["tenant_id"]),
    )];
    if deploy["image_ref"].is_string() {
        lines.push(format!("image: {}", text(&deploy["image_ref"])));
    }
    if let Some(error) = deploy["error"].as_str() {
        lines.push(format!("error: {error}"));
    }
    lines.push(format!(
        "external secrets: {}",
        injection_text(&deploy["external_secrets"])
    ));
    for warning in items(deploy, "warnings")
        .iter()
        .chain(items(&deploy["external_secrets"], "warnings"))
    {
        lines.push(format!(
            "warning: {} ({})",
            text(&warning["message"]),
            text(&warning["code"])
        ));
    }
    lines
}

/// The injection outcome as a sentence.
pub fn injection_text(secrets: &Value) -> String {
    let secret_name = text(&secrets["secret_name"]);
    match (secrets["status"].as_str(), secrets["reason"].as_str()) {
        (Some("injected"), _) => format!(
            "injected {} keys into Secret {secret_name}: {}",
            text(&secrets["key_count"]),
            names(items(secrets, "keys"))
        ),
        (Some("skipped"), Some("no_secrets")) => format!(
            "skipped (no_secrets): the app and its tenant have no external secrets; Secret {secret_name} was removed if it existed"
        ),
        (Some("skipped"), Some("master_key_unavailable")) => format!(
            "skipped (master_key_unavailable): no master key is loaded; Secret {secret_name} was left as it was. Add a key (exsec keys generate --dir KEYS_DIR) and deploy again"
        ),
        (Some("failed"), Some("undecryptable_values")) => format!(
            "failed (undecryptable_values): {} are sealed under a master key that is not loaded; Secret {secret_name} was left as it was. Put the key file back and deploy again",
            names(items(secrets, "undecryptable"))
        ),
        (Some(status), Some(reason)) => format!("{status} ({reason})"),
        (Some(status), None) => status.to_owned(),
        (None, _) => "unknown".to_owned(),
    }
}

fn describe_dry_run(report: &Value) -> Vec<String> {
    let secrets = &report["external_secrets"];
    let mut lines = vec![
        format!(
            "dry run of app {} (tenant {}): nothing applied or recorded",
            text(&report["app_id"]),
            text(&report["tenant_id"])
        ),
        format!(
            "external secrets would be: {}{}",
            text(&secrets["status"]),
            secrets["reason"]
                .as_str()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
    ];
    for (label, member) in [
        ("added", "added"),
        ("removed", "removed"),
        ("changed", "changed"),
        ("unchanged", "unchanged"),
    ] {
        lines.push(format!("  {label}: {}", names(items(secrets, member))));
    }
    for warning in items(report, "warnings") {
        lines.push(format!(
            "warning: {} ({})",
            text(&warning["message"]),
            text(&warning["code"])
        ));
    }
    lines
}

/// `complete (2/2 updated, 2 available)`.
pub fn rollout_text(rollout: &Value) -> String {
    let status = text(&rollout["status"]);
    if rollout["replicas"].is_null() && rollout["updated_replicas"].is_null() {
        return status;
    }
    format!(
        "{status} ({}/{} updated, {} available)",
        text(&rollout["updated_replicas"]),
        text(&rollout["replicas"]),
        text(&rollout["available_replicas"]),
    )
}
