//! `exsec deploy` and `exsec deploys`: run a deploy and say what happened
//! to the external secrets (injected, skipped or failed, and why), or show
//! the history.

use hyper::Method;

use super::client::{ClientError, decode, json_body};
use super::output::{self, line, names, note, or_dash, table};
use super::{CliError, Context};
use crate::api::dto::{
    AppDto, DeployBody, DeployDetailDto, DeployDto, DeployFailedDto, DeployListDto, DryRunDto,
    InjectionDto, RolloutDto, WarningDto,
};
use crate::model::{
    AppId, DeployStatus, InjectionReason, InjectionStatus, RolloutChange, TenantId,
};

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
    /// Roll the pods even if nothing changed.
    pub restart: bool,
    /// `Idempotency-Key`.
    pub idempotency_key: Option<String>,
}

pub async fn deploy(context: &Context, request: Request) -> Result<(), CliError> {
    let app = AppId::parse(&request.app)?;
    let body = DeployBody {
        tenant_id: match &request.tenant {
            Some(tenant) => Some(TenantId::parse(tenant)?.to_string()),
            None => None,
        },
        app_id: None,
        image_ref: Some(request.image.clone()),
        replicas: request.replicas.map(i64::from),
        port: request.port.map(i64::from),
        restart: request.restart,
        rollback_to: None,
    };
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
        .request(Method::POST, &path, Some(json_body(&body)?), &headers)
        .await;
    let answer = match sent {
        Ok(answer) => answer,
        Err(ClientError::Problem(problem)) if problem.code == "deployment_apply_failed" => {
            // The deploy is recorded as failed; the injection outcome still
            // matters to the caller.
            if context.output.json() {
                context.output.value(&problem.body)?;
            } else if let Ok(failed) = decode::<DeployFailedDto>(&problem.body) {
                // Without its members (another daemon version) the
                // problem's own words below still say what failed.
                note(&describe(&Summary::from(&failed)).join("\n"));
            }
            return Err(ClientError::Problem(problem).into());
        }
        Err(error) => return Err(error.into()),
    };
    if context.output.json() {
        return context.output.value(&answer.body);
    }
    if request.dry_run {
        return line(&describe_dry_run(&decode(&answer.body)?).join("\n"));
    }
    let deploy: DeployDto = decode(&answer.body)?;
    line(&describe(&Summary::from(&deploy)).join("\n"))
}

pub async fn history(
    context: &Context,
    app: &str,
    deploy_id: Option<&str>,
    limit: usize,
) -> Result<(), CliError> {
    let app = AppId::parse(app)?;
    if let Some(deploy_id) = deploy_id {
        check_deploy_id(deploy_id)?;
        let body = context
            .client
            .get(&format!("/v1/apps/{app}/deploys/{deploy_id}"))
            .await?;
        if context.output.json() {
            return context.output.value(&body);
        }
        let detail: DeployDetailDto = decode(&body)?;
        let mut lines = describe(&Summary::from(&detail.deploy));
        lines.push(format!("rollout: {}", rollout_text(&detail.rollout_status)));
        return line(&lines.join("\n"));
    }
    let body = context
        .client
        .get(&format!("/v1/apps/{app}/deploys?limit={limit}"))
        .await?;
    if context.output.json() {
        return context.output.value(&body);
    }
    let DeployListDto { deploys } = decode(&body)?;
    if deploys.is_empty() {
        return line(&format!("app {app} has no deploys yet"));
    }
    let pinned_to =
        decode::<AppDto>(&context.client.get(&format!("/v1/apps/{app}")).await?)?.pinned_to;
    let rows: Vec<Vec<String>> = deploys
        .into_iter()
        .map(|d| {
            let secrets = &d.external_secrets;
            let outcome = match &secrets.reason {
                Some(reason) => format!("{} ({reason})", secrets.status),
                None => secrets.status.to_string(),
            };
            let pin = if pinned_to.as_deref() == Some(d.deploy_id.as_str()) {
                " (pinned)"
            } else {
                ""
            };
            vec![
                format!("{}{pin}", d.deploy_id),
                d.created_at.clone(),
                d.image_ref.clone(),
                d.status.to_string(),
                outcome,
                secrets.key_count.to_string(),
            ]
        })
        .collect();
    let mut out = table(
        &["DEPLOY", "CREATED", "IMAGE", "STATUS", "SECRETS", "KEYS"],
        &rows,
    );
    if let Some(deploy_id) = pinned_to {
        out.push_str(&format!(
            "\napp {app} runs the secret set of {deploy_id} (rolled back); `exsec unpin {app}` or a normal deploy ends it"
        ));
    }
    line(&out)
}

/// What [`describe`] tells of a deploy: an answer or a record, or the
/// problem of a failed deploy (no image; its `status` is the HTTP status,
/// and the deploy failed).
pub(super) struct Summary<'a> {
    deploy_id: &'a str,
    app_id: &'a str,
    tenant_id: &'a str,
    status: DeployStatus,
    image_ref: Option<&'a str>,
    error: Option<&'a str>,
    warnings: &'a [WarningDto],
    external_secrets: &'a InjectionDto,
    /// Whether the pods restarted, when the daemon says.
    rollout: Option<RolloutChange>,
}

impl<'a> From<&'a DeployDto> for Summary<'a> {
    fn from(deploy: &'a DeployDto) -> Self {
        Self {
            deploy_id: &deploy.deploy_id,
            app_id: &deploy.app_id,
            tenant_id: &deploy.tenant_id,
            status: deploy.status,
            image_ref: Some(&deploy.image_ref),
            error: deploy.error.as_deref(),
            warnings: &deploy.warnings,
            external_secrets: &deploy.external_secrets,
            rollout: deploy.rollout,
        }
    }
}

impl<'a> From<&'a DeployFailedDto> for Summary<'a> {
    fn from(failed: &'a DeployFailedDto) -> Self {
        Self {
            deploy_id: &failed.deploy_id,
            app_id: &failed.app_id,
            tenant_id: &failed.tenant_id,
            status: DeployStatus::Failed,
            image_ref: None,
            error: None,
            warnings: &failed.warnings,
            external_secrets: &failed.external_secrets,
            rollout: None,
        }
    }
}

/// A deploy in a few lines.
pub(super) fn describe(deploy: &Summary<'_>) -> Vec<String> {
    let mut lines = vec![format!(
        "deploy {} of app {} (tenant {}): {}",
        deploy.deploy_id, deploy.app_id, deploy.tenant_id, deploy.status,
    )];
    if let Some(image) = deploy.image_ref {
        lines.push(format!("image: {image}"));
    }
    if let Some(error) = deploy.error {
        lines.push(format!("error: {error}"));
    }
    lines.push(format!(
        "external secrets: {}",
        injection_text(deploy.external_secrets)
    ));
    match deploy.rollout {
        Some(RolloutChange::Restarted) => {
            lines.push("pods: restarted (the pod template changed)".to_owned());
        }
        Some(RolloutChange::Unchanged) => {
            lines.push("pods: unchanged (same image, port and secrets; no restart)".to_owned());
        }
        None => {}
    }
    lines.extend(
        deploy
            .warnings
            .iter()
            .chain(&deploy.external_secrets.warnings)
            .map(output::warning),
    );
    lines
}

/// The injection outcome as a sentence.
pub fn injection_text(secrets: &InjectionDto) -> String {
    let secret_name = &secrets.secret_name;
    match (secrets.status, secrets.reason) {
        (InjectionStatus::Injected, _) => format!(
            "injected {} keys into Secret {secret_name}: {}",
            secrets.key_count,
            names(&secrets.keys)
        ),
        (InjectionStatus::Skipped, Some(InjectionReason::NoSecrets)) => format!(
            "skipped (no_secrets): the app and its tenant have no external secrets; Secret {secret_name} was removed if it existed"
        ),
        (InjectionStatus::Skipped, Some(InjectionReason::MasterKeyUnavailable)) => format!(
            "skipped (master_key_unavailable): no master key is loaded; Secret {secret_name} was left as it was. Add a key (exsec keys generate --dir KEYS_DIR) and deploy again"
        ),
        (InjectionStatus::Failed, Some(InjectionReason::UndecryptableValues)) => format!(
            "failed (undecryptable_values): {} are sealed under a master key that is not loaded; Secret {secret_name} was left as it was. Put the key file back and deploy again",
            names(&secrets.undecryptable)
        ),
        (status, Some(reason)) => format!("{status} ({reason})"),
        (status, None) => status.to_string(),
    }
}

pub(super) fn describe_dry_run(report: &DryRunDto) -> Vec<String> {
    let secrets = &report.external_secrets;
    let mut lines = vec![
        format!(
            "dry run of app {} (tenant {}): nothing applied or recorded",
            report.app_id, report.tenant_id
        ),
        format!(
            "external secrets would be: {}{}",
            secrets.status,
            secrets
                .reason
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
    ];
    for (label, members) in [
        ("added", &secrets.added),
        ("removed", &secrets.removed),
        ("changed", &secrets.changed),
        ("unchanged", &secrets.unchanged),
    ] {
        lines.push(format!("  {label}: {}", names(members)));
    }
    lines.extend(report.warnings.iter().map(output::warning));
    lines
}

/// Refuses what cannot be a deploy id before it goes into a path.
pub(super) fn check_deploy_id(deploy_id: &str) -> Result<(), CliError> {
    if deploy_id.is_empty()
        || !deploy_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(CliError::Usage(
            "a deploy id looks like dep_000000000007, as `exsec deploys APP` lists".to_owned(),
        ));
    }
    Ok(())
}

/// `complete (2/2 updated, 2 available)`.
pub fn rollout_text(rollout: &RolloutDto) -> String {
    let Some(counts) = rollout
        .counts
        .as_ref()
        .filter(|c| c.replicas.is_some() || c.updated_replicas.is_some())
    else {
        return rollout.status.to_string();
    };
    let count = |n: Option<i32>| or_dash(n.map(|n| n.to_string()).as_deref());
    format!(
        "{} ({}/{} updated, {} available)",
        rollout.status,
        count(counts.updated_replicas),
        count(counts.replicas),
        count(counts.available_replicas),
    )
}
