//! `exsec secrets set|list|rm|effective|verify|import`, in both scopes.
//!
//! Values come only from standard input or a no-echo prompt (when standard
//! input is a terminal), are held in zeroizing buffers, go into the request
//! body and nowhere else: never printed, never in an error. The copy hyper
//! holds while the request is in flight is out of reach and not claimed.

use std::io::{self, IsTerminal, Read};
use std::path::Path;

use bytes::Bytes;
use hyper::Method;
use serde::Serialize;
use zeroize::Zeroizing;

use super::client::{ClientError, decode};
use super::output::{self, line, note, table, yes_no};
use super::{CliError, Context, ScopeArgs, dotenv};
use crate::api::dto::{
    BulkSecretsDto, EffectiveDto, SecretListDto, SecretMetaDto, SecretOutcomeName, VerifyDto,
};
use crate::file_error::FileError;
use crate::model::{AppId, EnvKey, MAX_VALUE_LEN, Provider, Scope, TenantId};

impl ScopeArgs {
    /// The scope named by `--tenant` or `--app` (clap makes them exclusive).
    pub(super) fn parse(&self) -> Result<Scope, CliError> {
        match (&self.tenant, &self.app) {
            (Some(tenant), None) => Ok(Scope::Tenant(TenantId::parse(tenant)?)),
            (None, Some(app)) => Ok(Scope::App(AppId::parse(app)?)),
            _ => Err(CliError::Usage(
                "give exactly one of --tenant TENANT or --app APP".to_owned(),
            )),
        }
    }
}

/// `/v1/tenants/{id}` or `/v1/apps/{id}`.
pub fn scope_path(scope: &Scope) -> String {
    match scope {
        Scope::Tenant(id) => format!("/v1/tenants/{id}"),
        Scope::App(id) => format!("/v1/apps/{id}"),
    }
}

/// `tenant acme` or `app web`.
fn scope_label(scope: &Scope) -> String {
    format!("{} {}", scope.kind().as_str(), scope.owner())
}

/// One secret named on the command line.
pub struct SecretName {
    /// Tenant default or app override.
    pub scope: Scope,
    pub provider: Provider,
    pub key: EnvKey,
}

pub async fn set(context: &Context, name: &SecretName) -> Result<(), CliError> {
    let SecretName {
        scope,
        provider,
        key,
    } = name;
    let answer = put(context, scope, provider, key, &read_value(key)?).await?;
    if context.output.json() {
        return context.output.value(&answer.body);
    }
    let written: SecretMetaDto = decode(&answer.body)?;
    line(&format!(
        "{} {provider}/{key} for {} (version {})",
        if answer.status == 201 {
            "created"
        } else {
            "replaced"
        },
        scope_label(scope),
        written.version,
    ))
}

pub async fn list(context: &Context, scope: &Scope) -> Result<(), CliError> {
    let body = context
        .client
        .get(&format!("{}/external-secrets", scope_path(scope)))
        .await?;
    if context.output.json() {
        return context.output.value(&body);
    }
    let SecretListDto { secrets } = decode(&body)?;
    if secrets.is_empty() {
        return line(&format!("no external secrets for {}", scope_label(scope)));
    }
    let rows: Vec<Vec<String>> = secrets
        .into_iter()
        .map(|s| vec![s.provider, s.key, s.version.to_string(), s.updated_at])
        .collect();
    line(&table(&["PROVIDER", "KEY", "VERSION", "UPDATED"], &rows))
}

pub async fn remove(
    context: &Context,
    scope: &Scope,
    provider: &str,
    key: &str,
    purge: bool,
) -> Result<(), CliError> {
    let provider = Provider::parse(provider)?;
    let key = EnvKey::parse(key)?;
    let query = if purge { "?purge=true" } else { "" };
    context
        .client
        .request(
            Method::DELETE,
            &format!(
                "{}/external-secrets/{provider}/{key}{query}",
                scope_path(scope)
            ),
            None,
            &[],
        )
        .await?;
    if context.output.json() {
        return context.output.value(&serde_json::json!({
            "removed": true, "purged": purge, "provider": provider.as_str(), "key": key.as_str(),
            "scope": scope.kind().as_str(), "owner": scope.owner(),
        }));
    }
    let kept = if purge {
        "; every kept value was dropped"
    } else {
        "; its history keeps the old values (--purge drops them)"
    };
    line(&format!(
        "removed {provider}/{key} from {}{kept}; the next deploy removes it from the cluster",
        scope_label(scope)
    ))
}

pub async fn effective(context: &Context, app: &str) -> Result<(), CliError> {
    let app = AppId::parse(app)?;
    let body = context
        .client
        .get(&format!("/v1/apps/{app}/external-secrets/effective"))
        .await?;
    if context.output.json() {
        return context.output.value(&body);
    }
    let effective: EffectiveDto = decode(&body)?;
    let mut lines = Vec::new();
    if effective.keys.is_empty() {
        lines.push(format!(
            "app {app} (tenant {}) has no external secrets",
            effective.tenant_id
        ));
    } else {
        let rows: Vec<Vec<String>> = effective
            .keys
            .iter()
            .map(|k| {
                vec![
                    k.key.clone(),
                    k.provider.clone(),
                    k.source.to_string(),
                    yes_no(k.overrides_tenant),
                    yes_no(k.redeploy_needed),
                    k.version.to_string(),
                ]
            })
            .collect();
        lines.push(table(
            &[
                "KEY",
                "PROVIDER",
                "SOURCE",
                "OVERRIDES_TENANT",
                "REDEPLOY_NEEDED",
                "VERSION",
            ],
            &rows,
        ));
    }
    if let Some(deploy_id) = &effective.pinned_to {
        lines.push(format!(
            "pinned: the cluster runs the secret set of {deploy_id} (rolled back), not this one, until a normal deploy or `exsec unpin {app}`"
        ));
    }
    if !effective.removed_since_deploy.is_empty() {
        lines.push(format!(
            "removed since the last deploy (still in the cluster until the next one): {}",
            output::names(&effective.removed_since_deploy)
        ));
    }
    lines.extend(effective.warnings.iter().map(output::warning));
    line(&lines.join("\n"))
}

pub async fn verify(context: &Context, name: &SecretName) -> Result<(), CliError> {
    let body = value_body(&read_value(&name.key)?)?;
    let SecretName {
        scope,
        provider,
        key,
    } = name;
    let answer = context
        .client
        .request(
            Method::POST,
            &format!(
                "{}/external-secrets/{provider}/{key}/verify",
                scope_path(scope)
            ),
            Some(body),
            &[],
        )
        .await?;
    let VerifyDto { matched } = decode(&answer.body)?;
    if context.output.json() {
        context.output.value(&answer.body)?;
    } else if matched {
        line(&format!(
            "match: the value given equals the stored {provider}/{key} of {}",
            scope_label(scope)
        ))?;
    }
    if !matched {
        return Err(CliError::CheckFailed(format!(
            "no match: the value given differs from the stored {provider}/{key} of {}",
            scope_label(scope)
        )));
    }
    Ok(())
}

/// One bulk write of every line of a dotenv file: all land, or none (the
/// daemon writes them in one transaction). `replace` also deletes the
/// scope's secrets the file does not list.
pub async fn import(
    context: &Context,
    scope: &Scope,
    provider: &str,
    file: &Path,
    replace: bool,
) -> Result<(), CliError> {
    let provider = Provider::parse(provider)?;
    let text = read_env_file(file)?;
    let entries = dotenv::parse(&text)?;
    drop(text);
    if entries.is_empty() {
        return Err(CliError::Usage(format!(
            "{} holds no KEY=VALUE lines",
            file.display()
        )));
    }
    let body = bulk_body(&provider, &entries, replace)?;
    let written = context
        .client
        .request(
            Method::PUT,
            &format!("{}/external-secrets", scope_path(scope)),
            Some(body),
            &[],
        )
        .await
        .inspect_err(|error| note(&refused_line(error, &entries)))?;
    let answer: BulkSecretsDto = decode(&written.body)?;
    if context.output.json() {
        return context.output.value(&serde_json::json!({
            "provider": provider.as_str(),
            "scope": scope.kind().as_str(),
            "owner": scope.owner(),
            "imported": answer.secrets,
        }));
    }
    let rows: Vec<Vec<String>> = answer
        .secrets
        .iter()
        .map(|s| {
            vec![
                format!("{}/{}", s.provider, s.key),
                s.outcome.as_str().to_owned(),
                s.version.map_or_else(|| "-".to_owned(), |v| v.to_string()),
            ]
        })
        .collect();
    let deleted = answer
        .secrets
        .iter()
        .filter(|s| s.outcome == SecretOutcomeName::Deleted)
        .count();
    let mut summary = format!(
        "imported {} keys into {}",
        entries.len(),
        scope_label(scope)
    );
    if deleted > 0 {
        summary.push_str(&format!(" and deleted {deleted} not in the file"));
    }
    line(&format!(
        "{}\n{summary}",
        table(&["SECRET", "OUTCOME", "VERSION"], &rows)
    ))
}

/// What a refused import wrote (nothing) and, when the daemon named the
/// item, which line of the file it was.
fn refused_line(error: &ClientError, entries: &[dotenv::Entry]) -> String {
    let line = match error {
        ClientError::Problem(problem) => problem.body["index"]
            .as_u64()
            .and_then(|index| entries.get(usize::try_from(index).ok()?))
            .map(|entry| entry.line),
        _ => None,
    };
    match line {
        Some(line) => format!("line {line} of the env file was refused; nothing was imported"),
        None => "nothing was imported".to_owned(),
    }
}

/// `{"secrets": [{"provider", "key", "value"}…], "replace"}`, built without
/// an intermediate `serde_json::Value` into a buffer wiped when dropped.
fn bulk_body(
    provider: &Provider,
    entries: &[dotenv::Entry],
    replace: bool,
) -> Result<Bytes, CliError> {
    #[derive(Serialize)]
    struct Item<'a> {
        provider: &'a str,
        key: &'a str,
        value: &'a str,
    }
    #[derive(Serialize)]
    struct Body<'a> {
        secrets: Vec<Item<'a>>,
        replace: bool,
    }
    let body = Body {
        secrets: entries
            .iter()
            .map(|entry| Item {
                provider: provider.as_str(),
                key: entry.key.as_str(),
                value: &entry.value,
            })
            .collect(),
        replace,
    };
    let encoded = Zeroizing::new(
        serde_json::to_vec(&body)
            .map_err(|_| CliError::Usage("the values cannot be encoded as JSON".to_owned()))?,
    );
    Ok(Bytes::copy_from_slice(&encoded))
}

/// `PUT …/external-secrets/{provider}/{key}` with the value.
async fn put(
    context: &Context,
    scope: &Scope,
    provider: &Provider,
    key: &EnvKey,
    value: &str,
) -> Result<super::client::Answer, CliError> {
    let body = value_body(value)?;
    Ok(context
        .client
        .request(
            Method::PUT,
            &format!("{}/external-secrets/{provider}/{key}", scope_path(scope)),
            Some(body),
            &[],
        )
        .await?)
}

/// `{"value": …}`, built without an intermediate `serde_json::Value`.
fn value_body(value: &str) -> Result<Bytes, CliError> {
    #[derive(Serialize)]
    struct ValueBody<'a> {
        value: &'a str,
    }
    let encoded = Zeroizing::new(
        serde_json::to_vec(&ValueBody { value })
            .map_err(|_| CliError::Usage("the value cannot be encoded as JSON".to_owned()))?,
    );
    Ok(Bytes::copy_from_slice(&encoded))
}

/// Reads a value from a no-echo prompt when standard input is a
/// terminal, else from standard input (one trailing newline dropped).
fn read_value(key: &EnvKey) -> Result<Zeroizing<String>, CliError> {
    let stdin = io::stdin();
    if stdin.is_terminal() {
        let value = rpassword::prompt_password(format!("value for {key} (not echoed): "))
            .map(Zeroizing::new)
            .map_err(|source| {
                CliError::Io(FileError {
                    action: "cannot read the value from",
                    path: "the terminal".into(),
                    source,
                })
            })?;
        if value.is_empty() {
            return Err(CliError::Usage("no value entered".to_owned()));
        }
        return Ok(value);
    }
    let mut bytes = Zeroizing::new(Vec::new());
    let limit = u64::try_from(MAX_VALUE_LEN).unwrap_or(u64::MAX) + 2;
    stdin
        .lock()
        .take(limit)
        .read_to_end(&mut bytes)
        .map_err(|source| {
            CliError::Io(FileError {
                action: "cannot read the value from",
                path: "standard input".into(),
                source,
            })
        })?;
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    if bytes.is_empty() {
        return Err(CliError::Usage(format!(
            "no value on standard input for {key}: pipe it, e.g. `printf %s \"$VALUE\" | exsec secrets set ...`, or run in a terminal to be prompted"
        )));
    }
    if bytes.len() > MAX_VALUE_LEN {
        return Err(CliError::Usage(format!(
            "the value on standard input is larger than {} KiB",
            MAX_VALUE_LEN / 1024
        )));
    }
    match String::from_utf8(std::mem::take(&mut *bytes)) {
        Ok(text) => Ok(Zeroizing::new(text)),
        Err(error) => {
            drop(Zeroizing::new(error.into_bytes()));
            Err(CliError::Usage(
                "the value on standard input is not UTF-8".to_owned(),
            ))
        }
    }
}

/// The dotenv file as text (`-` is standard input), wiped when dropped.
fn read_env_file(file: &Path) -> Result<Zeroizing<String>, CliError> {
    let mut text = Zeroizing::new(String::new());
    let read = if file == Path::new("-") {
        io::stdin().lock().read_to_string(&mut text)
    } else {
        std::fs::File::open(file).and_then(|mut f| f.read_to_string(&mut text))
    };
    read.map_err(|source| {
        CliError::Io(FileError {
            action: "cannot read the env file",
            path: file.to_owned(),
            source,
        })
    })?;
    Ok(text)
}
