//! `exsec tenants …`, `exsec apps …` and `exsec tokens …`: the records the
//! admin creates. A minted token is the one secret these print: once, on
//! standard output, alone, so it can be redirected into a file.

use hyper::Method;
use serde_json::{Value, json};

use super::client::{decode, encode_query, json_body};
use super::output::{self, line, names, note, table};
use super::{CliError, Context};
use crate::api::dto::{
    AppDeletedDto, AppDto, AppListDto, MintedTokenDto, PutAppBody, TenantDetailDto, TenantListDto,
    TenantShreddedDto, TokenListDto,
};
use crate::model::{AppId, EnvKey, TenantId};

pub async fn tenants_list(context: &Context) -> Result<(), CliError> {
    let body = context.client.get("/v1/tenants").await?;
    if context.output.json() {
        return context.output.value(&body);
    }
    let TenantListDto { tenants } = decode(&body)?;
    if tenants.is_empty() {
        return line("no tenants yet; create one with `exsec tenants create TENANT`");
    }
    let rows: Vec<Vec<String>> = tenants
        .into_iter()
        .map(|t| vec![t.tenant_id, t.created_at])
        .collect();
    line(&table(&["TENANT", "CREATED"], &rows))
}

pub async fn tenant_create(context: &Context, tenant: &str) -> Result<(), CliError> {
    let tenant = TenantId::parse(tenant)?;
    let answer = context
        .client
        .request(Method::PUT, &format!("/v1/tenants/{tenant}"), None, &[])
        .await?;
    if context.output.json() {
        return context.output.value(&answer.body);
    }
    if answer.status == 201 {
        line(&format!("created tenant {tenant}"))
    } else {
        line(&format!("tenant {tenant} already exists"))
    }
}

pub async fn tenant_get(context: &Context, tenant: &str) -> Result<(), CliError> {
    let tenant = TenantId::parse(tenant)?;
    let body = context.client.get(&format!("/v1/tenants/{tenant}")).await?;
    if context.output.json() {
        return context.output.value(&body);
    }
    let tenant: TenantDetailDto = decode(&body)?;
    let (data_key, resealing) = match &tenant.data_key {
        None => ("-".to_owned(), "-".to_owned()),
        Some(key) => (
            key.id.clone(),
            key.resealing
                .as_ref()
                .map_or("-".to_owned(), |r| format!("{} values left", r.remaining)),
        ),
    };
    line(&table(
        &["TENANT", "CREATED", "DATA_KEY", "RESEALING"],
        &[vec![
            tenant.tenant_id,
            tenant.created_at,
            data_key,
            resealing,
        ]],
    ))
}

pub async fn tenant_rotate_key(context: &Context, tenant: &str) -> Result<(), CliError> {
    let tenant = TenantId::parse(tenant)?;
    let answer = context
        .client
        .request(
            Method::POST,
            &format!("/v1/tenants/{tenant}/rotate-data-key"),
            None,
            &[],
        )
        .await?;
    if context.output.json() {
        return context.output.value(&answer.body);
    }
    let detail: TenantDetailDto = decode(&answer.body)?;
    let Some(key) = detail.data_key else {
        return Err(CliError::Unavailable(
            "the daemon answered without a data key".to_owned(),
        ));
    };
    let remaining = key.resealing.map_or(0, |r| r.remaining);
    line(&format!(
        "tenant {tenant}: new data key {} (wrapped under master key {}); {remaining} values are being re-sealed under it in the background, then the older keys are deleted. Follow with `exsec tenants get {tenant}` or `exsec keys status`",
        key.id, key.master_key_id
    ))
}

pub async fn tenant_delete(context: &Context, tenant: &str) -> Result<(), CliError> {
    let tenant = TenantId::parse(tenant)?;
    context
        .client
        .request(Method::DELETE, &format!("/v1/tenants/{tenant}"), None, &[])
        .await?;
    done(
        context,
        json!({ "deleted": true, "tenant_id": tenant.as_str() }),
        &format!("deleted tenant {tenant} and revoked its tokens"),
    )
}

pub async fn tenant_shred(context: &Context, tenant: &str, yes: bool) -> Result<(), CliError> {
    let tenant = TenantId::parse(tenant)?;
    if !yes {
        return Err(CliError::Usage(format!(
            "shredding {tenant} removes it, its apps, secrets (every kept version too) and tokens for good; add --yes to go on"
        )));
    }
    let answer = context
        .client
        .request(
            Method::DELETE,
            &format!("/v1/tenants/{tenant}?shred=true"),
            None,
            &[],
        )
        .await?;
    // 200 carries `cleanup_pending` when cluster objects of its apps are
    // left to remove; 204 (no body) when nothing is left.
    let shredded = if answer.body.is_null() {
        TenantShreddedDto {
            tenant_id: tenant.to_string(),
            shredded: true,
            warnings: Vec::new(),
        }
    } else {
        decode(&answer.body)?
    };
    if context.output.json() {
        return context.output.value(&shredded);
    }
    let mut human = format!(
        "shredded tenant {tenant}: its apps, secrets with their history, tokens and data keys are gone; backups taken before now still hold its data keys until they expire (rotate the master key and retire the old one to close that for good)"
    );
    for warning in &shredded.warnings {
        human.push('\n');
        human.push_str(&output::warning(warning));
    }
    line(&human)
}

pub async fn apps_list(context: &Context, tenant: Option<&str>) -> Result<(), CliError> {
    let path = match tenant {
        Some(tenant) => {
            let tenant = TenantId::parse(tenant)?;
            format!("/v1/apps?tenant_id={}", encode_query(tenant.as_str()))
        }
        None => "/v1/apps".to_owned(),
    };
    let body = context.client.get(&path).await?;
    if context.output.json() {
        return context.output.value(&body);
    }
    let AppListDto { apps } = decode(&body)?;
    if apps.is_empty() {
        return line("no apps; register one with `exsec apps register APP --tenant TENANT`");
    }
    let rows: Vec<Vec<String>> = apps.iter().map(app_row).collect();
    line(&table(&["APP", "TENANT", "REQUIRED_ENV", "CREATED"], &rows))
}

pub async fn app_register(
    context: &Context,
    app: &str,
    tenant: &str,
    require_env: &[String],
    auto_redeploy: Option<bool>,
) -> Result<(), CliError> {
    let app = AppId::parse(app)?;
    let tenant = TenantId::parse(tenant)?;
    let required: Vec<String> = require_env
        .iter()
        .map(|name| EnvKey::parse(name).map(|k| k.to_string()))
        .collect::<Result<_, _>>()?;
    let body = PutAppBody {
        tenant_id: tenant.to_string(),
        required_env: required,
        auto_redeploy,
    };
    let answer = context
        .client
        .request(
            Method::PUT,
            &format!("/v1/apps/{app}"),
            Some(json_body(&body)?),
            &[],
        )
        .await?;
    if context.output.json() {
        return context.output.value(&answer.body);
    }
    let verb = if answer.status == 201 {
        "registered"
    } else {
        "updated"
    };
    line(&format!("{verb} app {app} (tenant {tenant})"))
}

pub async fn app_get(context: &Context, app: &str) -> Result<(), CliError> {
    let app = AppId::parse(app)?;
    let body = context.client.get(&format!("/v1/apps/{app}")).await?;
    if context.output.json() {
        return context.output.value(&body);
    }
    line(&table(
        &["APP", "TENANT", "REQUIRED_ENV", "CREATED"],
        &[app_row(&decode(&body)?)],
    ))
}

pub async fn app_delete(context: &Context, app: &str) -> Result<(), CliError> {
    let app = AppId::parse(app)?;
    let answer = context
        .client
        .request(Method::DELETE, &format!("/v1/apps/{app}"), None, &[])
        .await?;
    // 200 carries `cleanup_pending` when cluster objects are left to
    // remove; 204 (no body) when nothing is left.
    let deleted = if answer.body.is_null() {
        AppDeletedDto {
            app_id: app.to_string(),
            deleted: true,
            warnings: Vec::new(),
        }
    } else {
        decode(&answer.body)?
    };
    let mut human =
        format!("deleted app {app}, its app-level secrets and deploy history (audit events stay)");
    for warning in &deleted.warnings {
        human.push('\n');
        human.push_str(&output::warning(warning));
    }
    if context.output.json() {
        return context.output.value(&deleted);
    }
    line(&human)
}

pub async fn token_mint(context: &Context, tenant: &str) -> Result<(), CliError> {
    let tenant = TenantId::parse(tenant)?;
    let answer = context
        .client
        .request(
            Method::POST,
            &format!("/v1/tenants/{tenant}/tokens"),
            None,
            &[],
        )
        .await?;
    if context.output.json() {
        return context.output.value(&answer.body);
    }
    let minted: MintedTokenDto = decode(&answer.body)?;
    note(&format!(
        "minted token {} for tenant {tenant}; it is shown once, store it now",
        minted.token_id
    ));
    line(&minted.token)
}

pub async fn tokens_list(context: &Context, tenant: &str) -> Result<(), CliError> {
    let tenant = TenantId::parse(tenant)?;
    let body = context
        .client
        .get(&format!("/v1/tenants/{tenant}/tokens"))
        .await?;
    if context.output.json() {
        return context.output.value(&body);
    }
    let TokenListDto { tokens } = decode(&body)?;
    if tokens.is_empty() {
        return line(&format!("tenant {tenant} has no tokens"));
    }
    let rows: Vec<Vec<String>> = tokens
        .into_iter()
        .map(|t| vec![t.token_id, t.created_at])
        .collect();
    line(&table(&["TOKEN_ID", "CREATED"], &rows))
}

pub async fn token_revoke(context: &Context, tenant: &str, token_id: &str) -> Result<(), CliError> {
    let tenant = TenantId::parse(tenant)?;
    if token_id.is_empty() || !token_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(CliError::Usage(
            "a token id is letters and digits, as `exsec tokens list` shows".to_owned(),
        ));
    }
    context
        .client
        .request(
            Method::DELETE,
            &format!("/v1/tenants/{tenant}/tokens/{token_id}"),
            None,
            &[],
        )
        .await?;
    done(
        context,
        json!({ "revoked": true, "tenant_id": tenant.as_str(), "token_id": token_id }),
        &format!("revoked token {token_id} of tenant {tenant}"),
    )
}

fn app_row(app: &AppDto) -> Vec<String> {
    vec![
        app.app_id.clone(),
        app.tenant_id.clone(),
        names(&app.required_env),
        app.created_at.clone(),
    ]
}

/// Prints the outcome of a command whose answer is empty.
fn done(context: &Context, json: Value, human: &str) -> Result<(), CliError> {
    if context.output.json() {
        return context.output.value(&json);
    }
    line(human)
}
