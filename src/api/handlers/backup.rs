//! `GET /v1/backup` (admin): the whole store in the backup format of
//! [`crate::store::backup`], from one read transaction. Values stay sealed.
//!
//! The snapshot is encoded on the blocking pool and sent as one body: the
//! API's bodies are buffered (`Full`), so the backup is held in memory
//! while it is sent — about the size of the redb file's live data.

use hyper::StatusCode;

use crate::api::problem::ApiError;
use crate::api::{Call, Reply};

/// Media type of a backup.
pub const CONTENT_TYPE: &str = "application/vnd.exsec.backup";

pub async fn download(call: Call) -> Result<Reply, ApiError> {
    let store = call.state.store.clone();
    let encoded = tokio::task::spawn_blocking(move || {
        let mut bytes = Vec::new();
        store.backup(&mut bytes).map(|header| (header, bytes))
    })
    .await
    .map_err(|_| ApiError::from(crate::store::StoreError::Interrupted))?;
    let (header, bytes) = encoded.map_err(|error| match error {
        crate::store::backup::BackupError::Store(store) => ApiError::from(store),
        other => ApiError::internal("backup failed", &other),
    })?;
    tracing::info!(
        records = header.records(),
        audit_seq = header.audit_head.seq,
        bytes = bytes.len(),
        "backup taken"
    );
    Ok(Reply::raw(StatusCode::OK, CONTENT_TYPE, bytes))
}
