//! `exsec keys generate|status|retire`: master keys.
//!
//! `generate` is offline (it writes a key file). `status` and `retire` ask
//! the daemon (`GET /v1/keys`, admin token), which knows how many records
//! each key still seals. `retire` never deletes a key: it moves the file
//! aside (`ID.key.retired`, which the key directory scan ignores) once no
//! record needs it, because backups taken earlier may still need it.

use std::path::Path;

use serde_json::json;

use super::client::decode;
use super::output::{Output, line, note, table, yes_no};
use super::{CliError, Context};
use crate::api::dto::{KeyStatusDto, KeysDto};
use crate::crypto;
use crate::file_error::FileError;
use crate::model::KeyId;
use crate::rotation::RotationState;

pub fn generate(dir: &Path, output: Output) -> Result<(), CliError> {
    let generated = crypto::generate_key_file(dir, std::time::SystemTime::now())
        .map_err(CliError::KeyGenerate)?;
    if output.json() {
        return output.value(&json!({
            "key_id": generated.key_id.as_str(),
            "path": generated.path.display().to_string(),
        }));
    }
    line(generated.key_id.as_str())?;
    note(&format!(
        "wrote {} (mode 0600); back it up: values sealed under it cannot be opened without it",
        generated.path.display()
    ));
    Ok(())
}

pub async fn status(context: &Context) -> Result<(), CliError> {
    let body = context.client.get("/v1/keys").await?;
    let keyring: KeysDto = decode(&body)?;
    let degraded = keyring.degraded || keyring.active.is_none();
    let blocked = keyring.rotation.state == RotationState::BlockedMissingKey;
    if context.output.json() {
        context.output.value(&body)?;
    } else {
        let rows: Vec<Vec<String>> = keyring
            .keys
            .iter()
            .map(|k| {
                vec![
                    k.id.clone(),
                    yes_no(keyring.active.as_ref() == Some(&k.id)),
                    yes_no(k.present),
                    k.records.to_string(),
                    yes_no(k.safe_to_remove),
                ]
            })
            .collect();
        let mut lines = Vec::new();
        if rows.is_empty() {
            lines.push("no master keys".to_owned());
        } else {
            lines.push(table(
                &["KEY", "ACTIVE", "PRESENT", "RECORDS", "SAFE_TO_REMOVE"],
                &rows,
            ));
        }
        lines.push(format!(
            "rotation: {} ({} records not under the active key)",
            keyring.rotation.state, keyring.rotation.remaining
        ));
        if degraded {
            lines.push("degraded: no master key is loaded; secret writes answer 503 and deploys skip injection. Add one on the daemon's host: exsec keys generate --dir KEYS_DIR".to_owned());
        }
        for rotation in &keyring.data_key_rotations {
            lines.push(format!(
                "tenant {}: data key rotation to {}, {} values left to re-seal",
                rotation.tenant_id, rotation.data_key_id, rotation.remaining
            ));
        }
        for (id, records) in &keyring.rotation.waiting_for {
            lines.push(format!(
                "waiting for {id}: {records} records cannot be opened or re-sealed until {id}.key is back in the key directory"
            ));
        }
        if blocked {
            lines.push("blocked: records are sealed under a key that is not loaded (PRESENT no, RECORDS > 0); put its key file back".to_owned());
        }
        line(&lines.join("\n"))?;
    }
    if degraded || blocked {
        return Err(CliError::Unavailable(if degraded {
            "the keyring is degraded: no master key is loaded".to_owned()
        } else {
            let waiting: Vec<String> = keyring
                .rotation
                .waiting_for
                .iter()
                .map(|(id, records)| format!("{id} ({records} records)"))
                .collect();
            format!(
                "records wait for master keys that are not loaded: {}",
                waiting.join(", ")
            )
        }));
    }
    Ok(())
}

pub async fn retire(context: &Context, id: &str, dir: Option<&Path>) -> Result<(), CliError> {
    let id = KeyId::parse(id)?;
    let keyring: KeysDto = decode(&context.client.get("/v1/keys").await?)?;
    let Some(key) = keyring.keys.iter().find(|k| k.id == id.as_str()) else {
        return Err(CliError::NotFound(format!(
            "the daemon knows no master key {id}"
        )));
    };
    if keyring.active.as_deref() == Some(id.as_str()) {
        return Err(CliError::Refused(format!(
            "{id} is the active key: new values are sealed under it. Add a newer key first (exsec keys generate), wait for rotation to finish, then retire {id}"
        )));
    }
    let records = key.records;
    if records > 0 || !key.safe_to_remove {
        return Err(CliError::Refused(format!(
            "{records} records still need {id} (tenant data keys wrapped under it, or values sealed directly under it, kept versions included); wait until `exsec keys status` shows it safe to remove (rotation re-wraps them under the active key)"
        )));
    }
    let moved = match dir {
        None => None,
        Some(dir) => Some(move_aside(dir, &id, key)?),
    };
    if context.output.json() {
        return context.output.value(&json!({
            "key_id": id.as_str(),
            "safe_to_remove": true,
            "moved_to": moved.as_ref().map(|p| p.display().to_string()),
        }));
    }
    match moved {
        Some(path) => line(&format!(
            "retired {id}: no record needs it; moved to {} (the daemon ignores it). Archive it with the backups that may still need it, then delete it",
            path.display()
        )),
        None => line(&format!(
            "{id} is safe to retire: no record needs it. On the daemon's host, move KEYS_DIR/{id}.key out of the key directory (or run this with --dir KEYS_DIR); keep a copy with older backups"
        )),
    }
}

/// Renames `DIR/ID.key` to `DIR/ID.key.retired`.
fn move_aside(dir: &Path, id: &KeyId, key: &KeyStatusDto) -> Result<std::path::PathBuf, CliError> {
    let from = dir.join(format!("{id}.key"));
    let to = dir.join(format!("{id}.key.retired"));
    if !from.exists() {
        if key.present {
            return Err(CliError::NotFound(format!(
                "{} does not exist, but the daemon has {id} loaded: is --dir the daemon's keys.dir?",
                from.display()
            )));
        }
        return Err(CliError::NotFound(format!(
            "{} does not exist (the daemon has no file for {id} either)",
            from.display()
        )));
    }
    if to.exists() {
        return Err(CliError::Refused(format!(
            "{} exists already; move it away first",
            to.display()
        )));
    }
    std::fs::rename(&from, &to).map_err(|source| {
        CliError::Io(FileError {
            action: "cannot move aside",
            path: from.clone(),
            source,
        })
    })?;
    Ok(to)
}
