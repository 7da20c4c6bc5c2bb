//! `exsec doctor APP`: the seed's troubleshooting table as checks.
//!
//! The daemon is asked what it knows (the app, its effective set, the
//! keyring, its newest deploy, what the cluster holds, its readiness),
//! read into the API's DTOs; [`diagnose`] ([`checks`]) then judges those
//! facts without I/O, one small function per row, so every row is
//! unit-tested on plain values. Each check prints ok, warning, problem or
//! skipped, and a fix for anything not ok. Only a problem fails the
//! command (exit 6).

mod checks;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::client::{ClientError, decode};
use super::output::line;
use super::{CliError, Context};
use crate::api::dto::{
    AppDto, ClusterDto, DeployDto, DeployListDto, EffectiveDto, KeysDto, ReadyDto,
};
use crate::model::AppId;
pub use checks::diagnose;

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

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Self::new(name, Status::Ok, detail.into(), None)
    }

    fn skipped(name: &'static str, detail: impl Into<String>) -> Self {
        Self::new(name, Status::Skipped, detail.into(), None)
    }

    fn warning(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(name, Status::Warning, detail.into(), Some(fix.into()))
    }

    fn problem(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(name, Status::Problem, detail.into(), Some(fix.into()))
    }

    fn new(name: &'static str, status: Status, detail: String, fix: Option<String>) -> Self {
        Self {
            name,
            status,
            detail,
            fix,
        }
    }
}

/// A fact that may not have been readable.
#[derive(Debug, Clone)]
pub enum Fetched<T> {
    /// The daemon's answer.
    Got(T),
    /// The route needs the admin token and the token is a tenant's.
    NotAdmin,
    /// The daemon could not tell (the reason).
    Failed(String),
}

/// What the daemon knows about one app.
#[derive(Debug, Clone)]
pub struct Facts {
    /// `GET /v1/apps/{app}`.
    pub app: AppDto,
    /// `GET /v1/apps/{app}/external-secrets/effective`.
    pub effective: EffectiveDto,
    /// `GET /v1/keys`.
    pub keys: Fetched<KeysDto>,
    /// `GET /v1/apps/{app}/cluster`.
    pub cluster: Fetched<ClusterDto>,
    /// The newest deploy, if any.
    pub last_deploy: Option<DeployDto>,
    /// `GET /readyz` (its body also when not ready; `None` if unreadable
    /// or from a daemon that does not report storage and audit state).
    pub ready: Option<ReadyDto>,
}

pub async fn doctor(context: &Context, app: &str) -> Result<(), CliError> {
    let app = AppId::parse(app)?;
    let client = &context.client;
    let record = decode(&client.get(&format!("/v1/apps/{app}")).await?)?;
    let effective = decode(
        &client
            .get(&format!("/v1/apps/{app}/external-secrets/effective"))
            .await?,
    )?;
    let keys = fetch(client.get("/v1/keys").await)?;
    let cluster = fetch(client.get(&format!("/v1/apps/{app}/cluster")).await)?;
    let history: DeployListDto = decode(
        &client
            .get(&format!("/v1/apps/{app}/deploys?limit=1"))
            .await?,
    )?;
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
        last_deploy: history.deploys.into_iter().next(),
        ready: decode(&ready).ok(),
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
            "tenant_id": facts.app.tenant_id,
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
fn fetch<T: DeserializeOwned>(answer: Result<Value, ClientError>) -> Result<Fetched<T>, CliError> {
    match answer {
        Ok(value) => Ok(Fetched::Got(decode(&value)?)),
        Err(ClientError::Problem(problem))
            if problem.status == 404 && problem.code == "not_found" =>
        {
            Ok(Fetched::NotAdmin)
        }
        Err(ClientError::Problem(problem)) => Ok(Fetched::Failed(problem.to_string())),
        Err(error) => Err(error.into()),
    }
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
        facts.app.tenant_id
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
