//! `exsec secrets history|restore`, `exsec rollback` and `exsec unpin`
//! (SPEC §11.3): kept versions by number, never a value; a rollback that
//! shows what it will change, by name, before it applies.

use std::io::{self, BufRead, IsTerminal, Write};

use hyper::Method;

use super::client::{decode, json_body};
use super::deploy::{Summary, check_deploy_id, describe, describe_dry_run};
use super::output::{line, note, or_dash, table};
use super::secrets::scope_path;
use super::{CliError, Context};
use crate::api::dto::{
    AppDto, DeployBody, DeployDetailDto, DeployDto, SecretMetaDto, SecretVersionListDto,
};
use crate::model::{AppId, EnvKey, Provider, Scope};

/// `exsec secrets history`: newest first.
pub async fn history(
    context: &Context,
    scope: &Scope,
    provider: &str,
    key: &str,
) -> Result<(), CliError> {
    let (provider, key) = (Provider::parse(provider)?, EnvKey::parse(key)?);
    let body = context
        .client
        .get(&format!(
            "{}/external-secrets/{provider}/{key}/versions",
            scope_path(scope)
        ))
        .await?;
    if context.output.json() {
        return context.output.value(&body);
    }
    let SecretVersionListDto { versions } = decode(&body)?;
    let rows: Vec<Vec<String>> = versions
        .into_iter()
        .map(|v| {
            vec![
                v.version.to_string(),
                v.created_at,
                v.actor,
                if v.tombstone {
                    "deleted".to_owned()
                } else {
                    format!("value (key {})", or_dash(v.key_id.as_deref()))
                },
            ]
        })
        .collect();
    line(&table(&["VERSION", "CREATED", "ACTOR", "WHAT"], &rows))
}

/// `exsec secrets restore … --version N`.
pub async fn restore(
    context: &Context,
    scope: &Scope,
    provider: &str,
    key: &str,
    version: u64,
) -> Result<(), CliError> {
    let (provider, key) = (Provider::parse(provider)?, EnvKey::parse(key)?);
    let answer = context
        .client
        .request(
            Method::POST,
            &format!(
                "{}/external-secrets/{provider}/{key}/versions/{version}/restore",
                scope_path(scope)
            ),
            None,
            &[],
        )
        .await?;
    if context.output.json() {
        return context.output.value(&answer.body);
    }
    let written: SecretMetaDto = decode(&answer.body)?;
    line(&format!(
        "restored version {version} of {provider}/{key} as version {}; deploy to inject it",
        written.version
    ))
}

/// `exsec rollback APP DEPLOY_ID`: a dry run first (what changes, by
/// name), then the rollback with `--yes` or a `y` at the prompt.
pub async fn rollback(
    context: &Context,
    app: &str,
    deploy_id: &str,
    yes: bool,
) -> Result<(), CliError> {
    let app = AppId::parse(app)?;
    check_deploy_id(deploy_id)?;
    let target: DeployDetailDto = decode(
        &context
            .client
            .get(&format!("/v1/apps/{app}/deploys/{deploy_id}"))
            .await?,
    )?;
    let body = json_body(&DeployBody {
        tenant_id: None,
        app_id: None,
        image_ref: None,
        replicas: None,
        port: None,
        restart: false,
        rollback_to: Some(deploy_id.to_owned()),
    })?;
    let path = format!("/v1/apps/{app}/deploys");
    let dry = context
        .client
        .request(
            Method::POST,
            &format!("{path}?dry_run=true"),
            Some(body.clone()),
            &[],
        )
        .await?;
    let target = &target.deploy;
    let mut plan = vec![format!(
        "rollback of app {app} to deploy {deploy_id} ({}): image {}, replicas {}, port {}",
        target.created_at,
        target.image_ref,
        or_dash(target.replicas.map(|n| n.to_string()).as_deref()),
        or_dash(target.port.map(|n| n.to_string()).as_deref()),
    )];
    plan.extend(describe_dry_run(&decode(&dry.body)?).into_iter().skip(1));
    note(&plan.join("\n"));
    if !yes && !confirmed()? {
        return Err(CliError::Usage(
            "rollback not applied: answer y at the prompt, or pass --yes".to_owned(),
        ));
    }
    let answer = context
        .client
        .request(Method::POST, &path, Some(body), &[])
        .await?;
    if context.output.json() {
        return context.output.value(&answer.body);
    }
    let deploy: DeployDto = decode(&answer.body)?;
    let mut lines = describe(&Summary::from(&deploy));
    lines.push(format!(
        "app {app} is pinned to {deploy_id}: automatic redeploys wait; `exsec unpin {app}` or a normal deploy ends it"
    ));
    line(&lines.join("\n"))
}

/// `exsec unpin APP`.
pub async fn unpin(context: &Context, app: &str) -> Result<(), CliError> {
    let app = AppId::parse(app)?;
    let answer = context
        .client
        .request(Method::POST, &format!("/v1/apps/{app}/unpin"), None, &[])
        .await?;
    if context.output.json() {
        return context.output.value(&answer.body);
    }
    let _: AppDto = decode(&answer.body)?;
    line(&format!(
        "app {app} follows its current secrets again; the next deploy injects them"
    ))
}

/// Asks `apply? [y/N]` when standard input is a terminal; refuses
/// otherwise (a script must say `--yes`).
fn confirmed() -> Result<bool, CliError> {
    let stdin = io::stdin();
    if !stdin.is_terminal() {
        return Err(CliError::Usage(
            "rollback not applied: standard input is not a terminal; pass --yes to apply"
                .to_owned(),
        ));
    }
    eprint!("apply this rollback? [y/N] ");
    let _ = io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|error| CliError::Unexpected(format!("cannot read the answer: {error}")))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
