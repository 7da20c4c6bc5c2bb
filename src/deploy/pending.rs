//! Final deploy records that a storage fault kept off the disk, written as
//! soon as the store heals.
//!
//! A deploy's last step records its outcome (replacing the record kept
//! aside before the cluster calls), its audit events and its idempotency
//! record in one transaction. If that commit fails — the disk filled while
//! the cluster work ran — the cluster already holds the deploy: the caller
//! is answered 503 with the `deploy_id`, and the record waits here. It is
//! written when the store reports itself healthy again (a client write or
//! the background probe committed), not at the next start; only a stop
//! before then leaves the kept-aside record, which the next start files as
//! interrupted.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::cleanup::SecretOutcome;
use crate::audit::NewEvent;
use crate::error_chain::chain;
use crate::shutdown::Shutdown;
use crate::store::pins::PinChange;
use crate::store::records::{CleanupKind, DeployRecord, IdempotencyRecord};
use crate::store::{StorageHealth, Store, StoreError, Writer};

/// Everything the final write of one deploy holds.
pub struct FinalRecord {
    /// The deploy as finished.
    pub record: DeployRecord,
    /// Its audit events.
    pub events: Vec<NewEvent>,
    /// Its idempotency record, if the request had a key.
    pub idempotency: Option<(String, IdempotencyRecord)>,
    /// What injection did to the app's Secret: whether a removal is now
    /// pending or done ([`super::cleanup`]).
    pub secret_outcome: SecretOutcome,
    /// What it does to the app's pin (SPEC §11.3).
    pub pin: PinChange,
}

impl FinalRecord {
    /// Writes it, in the caller's transaction.
    pub fn write(&self, writer: &mut Writer) -> Result<(), StoreError> {
        writer.record_deploy(
            &self.record,
            self.events.clone(),
            self.idempotency
                .as_ref()
                .map(|(key, replay)| (key.as_str(), replay.clone())),
        )?;
        let app_id = &self.record.app_id;
        writer.change_pin(app_id, &self.pin)?;
        match &self.secret_outcome {
            SecretOutcome::Replaced => writer.cleanup_done(app_id).map(drop),
            SecretOutcome::Stale(error) => writer
                .cleanup_failed(app_id, CleanupKind::StaleSecret, error)
                .map(drop),
            SecretOutcome::Untouched => Ok(()),
        }
    }
}

/// The records waiting for the store to heal.
#[derive(Default)]
pub struct PendingRecords {
    records: Mutex<Vec<Arc<FinalRecord>>>,
    /// Wakes [`PendingRecords::run`] when a record is added: the store may
    /// have healed between the failure and the push.
    added: Notify,
}

impl PendingRecords {
    /// Keeps `record` until it can be written.
    pub fn push(&self, record: Arc<FinalRecord>) {
        self.lock().push(record);
        self.added.notify_one();
    }

    /// How many records wait.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Writes the waiting records while the store is healthy, until
    /// `shutdown` fires.
    pub async fn run(self: Arc<Self>, store: Arc<Store>, mut shutdown: Shutdown) {
        let mut health = store.watch_health();
        loop {
            tokio::select! {
                () = shutdown.recv() => return,
                changed = health.changed() => if changed.is_err() { return },
                () = self.added.notified() => {}
            }
            if store.health() == StorageHealth::Healthy {
                self.write_all(&store).await;
            }
        }
    }

    /// Writes every waiting record, oldest first; stops at the first
    /// failure (the store degraded again) and keeps the rest.
    async fn write_all(&self, store: &Arc<Store>) {
        loop {
            let Some(next) = self.lock().first().cloned() else {
                return;
            };
            let record = next.clone();
            match store.write_async(move |w| record.write(w)).await {
                Ok(()) => {
                    self.lock().retain(|kept| !Arc::ptr_eq(kept, &next));
                    tracing::info!(
                        app_id = %next.record.app_id,
                        deploy_id = %next.record.deploy_id,
                        status = %next.record.status,
                        "deploy record written now that storage works again"
                    );
                }
                Err(error) => {
                    tracing::warn!(
                        deploy_id = %next.record.deploy_id,
                        error = %chain(&error),
                        "a deploy record still waits for storage"
                    );
                    return;
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<FinalRecord>>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }
}
