//! `exsec backup --out F` (through the daemon) and `exsec restore` (offline).
//!
//! A download is streamed into a temporary file beside `F` (mode 0600),
//! synced, checked whole with [`crate::store::backup::inspect`] (every
//! record and the counts; the MAC needs the master key, which `restore`
//! has), and only then renamed over `F`: a cut connection never leaves a
//! half backup under the name. The format is documented in
//! [`crate::store::backup`].

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::output::{Output, line};
use super::{CliError, Context};
use crate::crypto::{Keyring, scan_dir};
use crate::file_error::FileError;
use crate::store::StoreOptions;
use crate::store::backup::{self, BackupHeader, RestoreOptions};

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
        move |source| {
            CliError::Io(FileError {
                action,
                path,
                source,
            })
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
    file.sync_all().map_err(|source| {
        CliError::Io(FileError {
            action: "cannot sync",
            path: temporary.to_owned(),
            source,
        })
    })?;
    Ok(backup::inspect(temporary)?)
}

/// What `exsec restore` was asked.
pub struct RestoreArgs {
    /// `--from`.
    pub from: PathBuf,
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// `--keys-dir`.
    pub keys_dir: PathBuf,
    /// `--accept-unauthenticated`.
    pub accept_unauthenticated: bool,
    /// `--force`.
    pub force: bool,
}

pub fn restore(args: &RestoreArgs, output: Output) -> Result<(), CliError> {
    let target = args.data_dir.join(DATABASE_FILE);
    // Only the MAC is checked with these keys; the daemon applies the
    // key-file mode rule where it keeps them, so group-readable copies
    // (a Kubernetes Secret volume) are read here too.
    let scan = scan_dir(&args.keys_dir, true).map_err(CliError::KeyDir)?;
    for problem in &scan.problems {
        super::output::note(&format!("ignored a key file: {problem}"));
    }
    let keyring = Keyring::from_keys(scan.keys);
    let options = RestoreOptions {
        keyring: &keyring,
        accept_unauthenticated: args.accept_unauthenticated,
        force: args.force,
        // redb's page cache; with the read buffers this keeps a restore of
        // any size well under 64 MiB.
        store: StoreOptions::with_cache_size(16 * 1024 * 1024),
    };
    let restored = backup::restore(&args.from, &target, &options)?;
    if restored.header.key_id.is_none() {
        super::output::note(
            "restored an unauthenticated backup (format 1) as asked by --accept-unauthenticated; take a new backup now",
        );
    }
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
    let authenticated = match &header.key_id {
        Some(key_id) => format!(
            "format {}, authenticated with master key {key_id}",
            header.format
        ),
        None => format!("format {}, unauthenticated", header.format),
    };
    let tables: Vec<String> = header
        .tables
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    line(&format!(
        "{what}: {} ({size} bytes, taken {}, schema {}, {authenticated})\naudit anchor: {} (keep it: `exsec audit verify --anchor {}` proves later that no event was cut)\nrecords: {}",
        path.display(),
        header.created_at,
        header.schema_version,
        header.audit_head,
        header.audit_head,
        tables.join(", ")
    ))
}
