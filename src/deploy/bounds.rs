//! The bounds of one deploy: its time budget, shared by every cluster call
//! it makes, and the per-app lock that serialises deploys of one app.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OwnedMutexGuard;
use tokio::time::Instant;

use crate::cluster::ClusterError;
use crate::model::AppId;

/// What is left of one deploy's time.
pub(super) struct Budget {
    deadline: Instant,
    total: Duration,
}

impl Budget {
    pub(super) fn new(total: Duration) -> Self {
        Self {
            deadline: Instant::now() + total,
            total,
        }
    }

    /// Runs one cluster call within the remaining budget.
    pub(super) async fn run<T>(
        &self,
        operation: String,
        call: impl Future<Output = Result<T, ClusterError>>,
    ) -> Result<T, ClusterError> {
        match tokio::time::timeout_at(self.deadline, call).await {
            Ok(result) => result,
            Err(_) => Err(ClusterError::Timeout {
                operation,
                seconds: self.total.as_secs_f64(),
            }),
        }
    }
}

/// One async mutex per app.
#[derive(Default)]
pub(super) struct AppLocks {
    locks: Mutex<HashMap<AppId, Arc<tokio::sync::Mutex<()>>>>,
}

impl AppLocks {
    pub(super) async fn acquire(
        &self,
        app_id: &AppId,
        wait: Duration,
    ) -> Option<OwnedMutexGuard<()>> {
        let lock = self
            .locks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(app_id.clone())
            .or_default()
            .clone();
        tokio::time::timeout(wait, lock.lock_owned()).await.ok()
    }
}
