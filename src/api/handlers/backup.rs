//! `GET /v1/backup` (admin): the whole store in the backup format of
//! [`crate::store::backup`], from one read transaction, authenticated with
//! a key derived from the active master key. Values stay sealed.
//!
//! The snapshot is encoded on the blocking pool and streamed as it is read
//! ([`crate::api::stream`]): memory stays small whatever the store's size.
//! The answer starts only once the snapshot is taken, so a store that
//! cannot be read still answers with a problem, not a cut stream.

use hyper::StatusCode;
use tokio::sync::oneshot;

use crate::api::problem::ApiError;
use crate::api::{Call, Reply, stream};
use crate::store::StoreError;
use crate::store::backup::BackupError;

/// Media type of a backup.
pub const CONTENT_TYPE: &str = "application/vnd.exsec.backup";

pub async fn download(call: Call) -> Result<Reply, ApiError> {
    let keyring = call.state.keyring.snapshot();
    let (key_id, mac) = keyring.active_backup_mac().map_err(|_| {
        ApiError::master_key_unavailable(
            "no master key is loaded, and a backup is authenticated with the active one; add a key file to the key directory (exsec keys generate)",
        )
    })?;
    drop(keyring);
    let store = call.state.store.clone();
    let (body, mut writer) = stream::channel();
    let (started, header) = oneshot::channel();
    let task = tokio::task::spawn_blocking(move || {
        let mut started = Some(started);
        let result = store.backup(&mut writer, &key_id, mac, |header| {
            if let Some(started) = started.take() {
                let _ = started.send(header.clone());
            }
        });
        match result {
            Ok(header) => {
                tracing::info!(
                    records = header.records(),
                    audit_seq = header.audit_head.seq,
                    key_id = %key_id,
                    "backup taken"
                );
                Ok(())
            }
            // Before the first byte: the handler answers with the error.
            Err(error) if started.is_some() => Err(error),
            Err(error) => {
                tracing::warn!(error = %crate::error_chain::chain(&error), "backup stream ended early");
                writer.fail(std::io::Error::other("backup failed"));
                Ok(())
            }
        }
    });
    if header.await.is_ok() {
        return Ok(Reply::stream(StatusCode::OK, CONTENT_TYPE, body));
    }
    match task.await {
        Ok(Err(BackupError::Store(error))) => Err(ApiError::from(error)),
        Ok(Err(error)) => Err(ApiError::internal("backup failed", &error)),
        Ok(Ok(())) | Err(_) => Err(ApiError::from(StoreError::Interrupted)),
    }
}
