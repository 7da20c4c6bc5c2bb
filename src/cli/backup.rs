//! `exsec backup --out F` (through the daemon) and `exsec restore` (offline).
//!
//! A download is streamed into a temporary file beside `F` (mode 0600),
//! synced, checked whole with [`crate::store::backup::check`], and only
//! then renamed over `F`: a cut connection never leaves a half backup
//! under the name. The format is documented in [`crate::store::backup`].

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::output::{Output, line};
use super::{CliError, Context};
use crate::store::StoreOptions;
use crate::store::backup::{self, BackupHeader};

/// The database file name inside `--data-dir` (as in the default
/// `storage.path`, `/var/lib/exsec/exsec.redb`).
const DATABASE_FILE: &str = "exsec.redb";

pub async fn backup(context: &Context, out: &Path) -> Result<(), CliError> {
    let dir = match out.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = out
        .file_name()
        .ok_or_else(|| CliError::Usage(format!("{} is not a file name", out.display())))?
        .to_string_lossy()
        .into_owned();
    let temporary = dir.join(format!(".{name}.partial-{}", std::process::id()));
    let io_error = |action, path: &Path| {
        let path = path.to_owned();
        move |source| CliError::Io {
            action,
            path,
            source,
        }
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(io_error("cannot create", &temporary))?;
    let result = download(context, &mut file, &temporary).await;
    let header = match result {
        Ok(header) => header,
        Err(error) => {
            drop(file);
            let _ = fs::remove_file(&temporary);
            return Err(error);
        }
    };
    drop(file);
    fs::rename(&temporary, out).map_err(io_error("cannot rename into place", out))?;
    if let Ok(dir) = File::open(&dir) {
        let _ = dir.sync_all();
    }
    let size = fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    summarize(context.output, &header, out, size, "backup written")
}

async fn download(
    context: &Context,
    file: &mut File,
    temporary: &Path,
) -> Result<BackupHeader, CliError> {
    let mut write = |chunk: &[u8]| file.write_all(chunk);
    context.client.download("/v1/backup", &mut write).await?;
    file.sync_all().map_err(|source| CliError::Io {
        action: "cannot sync",
        path: temporary.to_owned(),
        source,
    })?;
    Ok(backup::check(temporary)?.header)
}

pub fn restore(from: &Path, data_dir: &Path, force: bool, output: Output) -> Result<(), CliError> {
    let target = data_dir.join(DATABASE_FILE);
    let options = StoreOptions::with_cache_size(32 * 1024 * 1024);
    let restored = backup::restore(from, &target, force, &options)?;
    if let Some(replaced) = &restored.replaced {
        super::output::note(&format!(
            "the previous database was kept as {}",
            replaced.display()
        ));
    }
    let size = fs::metadata(&restored.path).map(|m| m.len()).unwrap_or(0);
    summarize(
        output,
        &restored.header,
        &restored.path,
        size,
        "restored and verified",
    )?;
    if !output.json() {
        line(
            "start the daemon with storage.path pointing at it; it needs the same key directory as when the backup was taken",
        )?;
    }
    Ok(())
}

fn summarize(
    output: Output,
    header: &BackupHeader,
    path: &Path,
    size: u64,
    what: &str,
) -> Result<(), CliError> {
    if output.json() {
        return output.value(&json!({
            "path": path.display().to_string(),
            "bytes": size,
            "header": header,
        }));
    }
    let tables: Vec<String> = header
        .tables
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    line(&format!(
        "{what}: {} ({size} bytes, taken {}, schema {})\naudit anchor: {} (keep it: `exsec audit verify --anchor {}` proves later that no event was cut)\nrecords: {}",
        path.display(),
        header.created_at,
        header.schema_version,
        header.audit_head,
        header.audit_head,
        tables.join(", ")
    ))
}
