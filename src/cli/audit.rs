//! `exsec audit list` and `exsec audit verify`: the audit log through the
//! daemon, or its hash chain checked offline on the redb file.
//!
//! Online verification pages through `GET /v1/audit-events` with the admin
//! token and checks every link with [`crate::audit::ChainVerifier`]; it can
//! only start where the served log starts (a pruned log starts after its
//! checkpoint). Offline verification reads the file through
//! [`Store::open`], which refuses while the daemon holds it, and starts at
//! the checkpoint stored in the file.

use std::path::Path;

use serde_json::{Value, json};

use super::client::decode;
use super::client::{ClientError, encode_query};
use super::output::{Output, line, or_dash, table};
use super::{CliError, Context};
use crate::api::dto::AuditPageDto;
use crate::audit::{Anchor, ChainBreak, ChainVerifier};
use crate::model::{AppId, TenantId};
use crate::store::{Store, StoreOptions};

/// Largest page the daemon serves.
const PAGE: usize = 1000;

/// `exsec audit list` filters.
pub struct ListFilter {
    /// Event type.
    pub event_type: Option<String>,
    /// Tenant.
    pub tenant: Option<String>,
    /// App.
    pub app: Option<String>,
    /// Exclusive lower bound on `seq`.
    pub after: u64,
    /// Page size.
    pub limit: usize,
}

pub async fn list(context: &Context, filter: &ListFilter) -> Result<(), CliError> {
    let mut query = format!("after={}&limit={}", filter.after, filter.limit);
    if let Some(event_type) = &filter.event_type {
        query.push_str(&format!("&type={}", encode_query(event_type)));
    }
    if let Some(tenant) = &filter.tenant {
        query.push_str(&format!("&tenant_id={}", TenantId::parse(tenant)?));
    }
    if let Some(app) = &filter.app {
        query.push_str(&format!("&app_id={}", AppId::parse(app)?));
    }
    let body = context
        .client
        .get(&format!("/v1/audit-events?{query}"))
        .await?;
    if context.output.json() {
        return context.output.value(&body);
    }
    let page: AuditPageDto = decode(&body)?;
    if page.events.is_empty() {
        return line("no audit events match");
    }
    let rows: Vec<Vec<String>> = page
        .events
        .iter()
        .map(|e| {
            vec![
                e.seq.to_string(),
                e.time.to_rfc3339(),
                e.event_type.clone(),
                e.actor.clone(),
                or_dash(e.tenant_id.as_deref()),
                or_dash(e.app_id.as_deref()),
                Value::Object(e.data.clone()).to_string(),
            ]
        })
        .collect();
    let mut out = table(
        &["SEQ", "TIME", "TYPE", "ACTOR", "TENANT", "APP", "DATA"],
        &rows,
    );
    if let Some(next) = page.next_after {
        out.push_str(&format!("\nmore: exsec audit list --after {next}"));
    }
    line(&out)
}

pub async fn verify_online(context: &Context, anchor: Option<Anchor>) -> Result<(), CliError> {
    // A tenant token sees only its tenant's events, which are no chain.
    match context.client.get("/v1/keys").await {
        Ok(_) => {}
        Err(ClientError::Problem(problem)) if problem.status == 404 => {
            return Err(CliError::Refused(
                "audit verify needs the admin token: a tenant token reads only its tenant's events, which do not form a chain".to_owned(),
            ));
        }
        Err(error) => return Err(error.into()),
    }
    let mut verifier: Option<ChainVerifier> = None;
    let mut start = Anchor::GENESIS;
    let mut after = 0u64;
    let mut broken = None;
    'pages: loop {
        let page = context
            .client
            .get(&format!("/v1/audit-events?after={after}&limit={PAGE}"))
            .await?;
        let page: AuditPageDto = serde::Deserialize::deserialize(&page).map_err(|error| {
            CliError::Unexpected(format!(
                "audit events after seq {after} do not parse: {error}"
            ))
        })?;
        for event in page.events {
            let verifier = verifier.get_or_insert_with(|| {
                // The served log starts after its pruning checkpoint.
                if event.seq > 1 {
                    start = Anchor {
                        seq: event.seq - 1,
                        hash: event.prev_hash,
                    };
                }
                ChainVerifier::new(start, anchor)
            });
            if let Err(error) = verifier.push(&event) {
                broken = Some(error);
                break 'pages;
            }
        }
        match page.next_after {
            // A page that does not move on would loop forever.
            Some(next) if next > after => after = next,
            _ => break,
        }
    }
    let verifier = verifier.unwrap_or_else(|| ChainVerifier::new(start, anchor));
    let events = verifier.events();
    let outcome = match broken {
        Some(error) => Err(error),
        None => verifier.finish(anchor),
    };
    report(context.output, "daemon", start, events, anchor, outcome)
}

pub fn verify_offline(db: &Path, anchor: Option<Anchor>, output: Output) -> Result<(), CliError> {
    if !db.is_file() {
        return Err(CliError::NotFound(format!(
            "{} does not exist or is not a file",
            db.display()
        )));
    }
    let store = Store::open(db, StoreOptions::with_cache_size(16 * 1024 * 1024))?;
    let check = store.read(|r| r.verify_audit_chain(anchor))?;
    drop(store);
    report(
        output,
        &db.display().to_string(),
        check.checkpoint,
        check.events,
        anchor,
        check.outcome,
    )
}

/// Prints the verdict; a broken chain is exit 6.
fn report(
    output: Output,
    source: &str,
    start: Anchor,
    events: u64,
    anchor: Option<Anchor>,
    outcome: Result<Anchor, ChainBreak>,
) -> Result<(), CliError> {
    if output.json() {
        let mut body = json!({
            "source": source,
            "ok": outcome.is_ok(),
            "events": events,
            "start": start,
            "anchor": anchor,
        });
        match &outcome {
            Ok(head) => body["head"] = json!(head),
            Err(error) => {
                body["error"] = Value::String(error.to_string());
                body["broken_seq"] = json!(broken_seq(error));
            }
        }
        output.value(&body)?;
    }
    match outcome {
        Ok(head) => {
            if !output.json() {
                let from = if start.seq == 0 {
                    "from the first event".to_owned()
                } else {
                    format!(
                        "from the checkpoint at seq {} (older events were pruned)",
                        start.seq
                    )
                };
                let anchored =
                    anchor.map_or_else(String::new, |a| format!("; it contains the anchor {}", a));
                line(&format!(
                    "audit log verified: {events} events {from}; head {head}{anchored}"
                ))?;
            }
            Ok(())
        }
        Err(error) => Err(CliError::CheckFailed(format!(
            "audit log does not verify: {error}"
        ))),
    }
}

/// The event a break names.
fn broken_seq(error: &ChainBreak) -> u64 {
    match error {
        ChainBreak::Altered { seq }
        | ChainBreak::Unlinked { seq, .. }
        | ChainBreak::OutOfOrder { seq, .. }
        | ChainBreak::AnchorMismatch { seq } => *seq,
        ChainBreak::Missing { after, .. } => after + 1,
        ChainBreak::Truncated { head_seq, .. } => *head_seq,
    }
}
