//! No plaintext left behind (SPEC §11.1): cluster objects that hold
//! decrypted values — a deleted app's manifests file, Secret and
//! Deployment; the Secret of an app whose set became empty — are removed,
//! and a removal that fails is recorded in the store
//! (`pending_cleanups`) and retried until it succeeds: at start, on a
//! timer with backoff, and after every deploy.
//!
//! Removal holds the app's deploy lock, so it never races a deploy of the
//! same app id; an app deleted and registered again meanwhile keeps its new
//! Deployment (only its stale Secret is removed). Crypto-shredding a tenant
//! removes the objects of each of its apps the same way.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OwnedMutexGuard;

use super::{Budget, DeployError, Deployer};
use crate::audit::{NewEvent, event};
use crate::cluster::ClusterError;
use crate::model::{AppId, TenantId, Timestamp};
use crate::shutdown::Shutdown;
use crate::store::Shredded;
use crate::store::records::{CleanupKind, CleanupRecord, WarningRecord};

/// Timer of the retry task, and the first backoff step.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(5);
/// Longest wait between two timed retries of one record.
pub const RETRY_MAX: Duration = Duration::from_secs(300);
/// A retry waits this long for a deploy of the same app, then tries later.
const LOCK_WAIT: Duration = Duration::from_millis(100);
/// The audit actor of retried removals.
const ACTOR: &str = "system:cleanup";

/// What a deploy's injection did to the app's Secret, for the record of
/// pending removals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretOutcome {
    /// Applied or deleted: the cluster holds exactly the current set.
    Replaced,
    /// The set is empty, and deleting the old Secret failed with this.
    Stale(String),
    /// Left as it was (no key, unopenable values, apply failed).
    Untouched,
}

/// The warning an answer carries while plaintext waits for removal.
pub fn pending_warning(what: &str, error: &str) -> WarningRecord {
    WarningRecord {
        code: "cleanup_pending".to_owned(),
        message: format!(
            "{what} could not be removed ({error}); exsec keeps retrying until it is gone (see `exsec doctor`)"
        ),
    }
}

impl Deployer {
    /// Deletes an app: its cluster objects first (under its deploy lock),
    /// then its records with `app.deleted`, which says whether removal is
    /// pending. A failed removal is recorded and retried; the answer
    /// carries `cleanup_pending`.
    pub async fn delete_app(
        &self,
        app_id: &AppId,
        actor: &str,
    ) -> Result<Vec<WarningRecord>, DeployError> {
        let (_serial, removed) = self.remove_objects(app_id).await?;
        let error = removed.err().map(|error| error.to_string());
        if let Some(error) = &error {
            tracing::warn!(app_id = %app_id, %error, "app deleted, but removing its cluster objects failed; retrying until it succeeds");
        }
        let (id, actor_owned, recorded) = (app_id.clone(), actor.to_owned(), error.clone());
        self.store
            .write_async(move |w| w.delete_app(&id, &actor_owned, recorded.as_deref()))
            .await?;
        Ok(error
            .map(|error| pending_warning(&format!("the objects of app {app_id}"), &error))
            .into_iter()
            .collect())
    }

    /// Crypto-shreds a tenant (SPEC §11.4): the cluster objects of each of
    /// its apps first, best-effort and under each app's deploy lock (a
    /// failed removal is recorded and retried, as for an app deletion),
    /// then every record of the tenant and its wrapped data keys in one
    /// transaction ([`crate::store::Shredded`]).
    pub async fn shred_tenant(
        &self,
        tenant: &TenantId,
        actor: &str,
    ) -> Result<(Shredded, Vec<WarningRecord>), DeployError> {
        let lookup = tenant.clone();
        let apps = self
            .store
            .read_async(move |r| r.app_ids_of(&lookup))
            .await?;
        let mut serials = Vec::with_capacity(apps.len());
        let mut errors: BTreeMap<AppId, String> = BTreeMap::new();
        for app_id in &apps {
            let (serial, removed) = self.remove_objects(app_id).await?;
            serials.push(serial);
            if let Err(error) = removed {
                tracing::warn!(app_id = %app_id, %error, "tenant shredded, but removing an app's cluster objects failed; retrying until it succeeds");
                errors.insert(app_id.clone(), error.to_string());
            }
        }
        let (id, actor_owned, recorded) = (tenant.clone(), actor.to_owned(), errors.clone());
        let shredded = self
            .store
            .write_async(move |w| w.shred_tenant(&id, &actor_owned, &recorded))
            .await?;
        drop(serials);
        let warnings = errors
            .iter()
            .map(|(app_id, error)| pending_warning(&format!("the objects of app {app_id}"), error))
            .collect();
        Ok((shredded, warnings))
    }

    /// Takes the app's deploy lock (refused while a deploy holds it past
    /// the queue timeout) and removes its cluster objects within the deploy
    /// budget; the caller keeps the lock until its records are written.
    async fn remove_objects(
        &self,
        app_id: &AppId,
    ) -> Result<(OwnedMutexGuard<()>, Result<(), ClusterError>), DeployError> {
        let serial = self.lock_app(app_id).await?;
        let removed = Budget::new(self.settings.timeout)
            .run(
                format!("remove the objects of app {app_id}"),
                self.cluster.delete_app(app_id),
            )
            .await;
        Ok((serial, removed))
    }

    /// Wakes the retry task (after a deploy, which may have unblocked it).
    pub fn wake_cleanup(&self) {
        self.cleanup_wake.notify_one();
    }

    /// Retries pending removals until `shutdown` fires: at once, then on
    /// [`RETRY_INTERVAL`] for records whose backoff elapsed, and every
    /// record when woken by a deploy.
    pub async fn run_cleanups(self: Arc<Self>, mut shutdown: Shutdown) {
        let mut every = true;
        loop {
            self.retry_cleanups(every).await;
            every = tokio::select! {
                () = shutdown.recv() => return,
                () = self.cleanup_wake.notified() => true,
                () = tokio::time::sleep(RETRY_INTERVAL) => false,
            };
        }
    }

    /// One pass over the pending removals (all of them with `every`, else
    /// those whose backoff elapsed). Returns how many are still pending.
    pub async fn retry_cleanups(&self, every: bool) -> usize {
        let pending = match self.store.read_async(|r| r.pending_cleanups()).await {
            Ok(pending) => pending,
            Err(error) => {
                tracing::warn!(%error, "cannot read the pending cleanups");
                return 0;
            }
        };
        let now = Timestamp::now();
        let mut left = 0;
        for (app_id, record) in pending {
            if (every || due(&record, now)) && self.retry_one(&app_id).await {
                continue;
            }
            left += 1;
        }
        left
    }

    /// Retries one app's removal; true when it is gone.
    async fn retry_one(&self, app_id: &AppId) -> bool {
        let Some(_serial) = self.locks.acquire(app_id, LOCK_WAIT).await else {
            return false;
        };
        let id = app_id.clone();
        let found = self
            .store
            .read_async(move |r| Ok((r.pending_cleanup(&id)?, r.app(&id)?.is_some())))
            .await;
        let (record, registered) = match found {
            // A deploy or a deletion settled it meanwhile.
            Ok((None, _)) => return true,
            Ok((Some(record), registered)) => (record, registered),
            Err(error) => {
                tracing::warn!(app_id = %app_id, %error, "cannot read a pending cleanup");
                return false;
            }
        };
        let budget = Budget::new(self.settings.timeout);
        // An app registered again under the same id keeps its Deployment.
        let removed = if record.kind == CleanupKind::AppObjects && !registered {
            budget
                .run(
                    format!("remove the objects of app {app_id}"),
                    self.cluster.delete_app(app_id),
                )
                .await
        } else {
            budget
                .run(
                    format!("delete the Secret of app {app_id}"),
                    self.cluster.delete_secret(app_id),
                )
                .await
                .map(|_| ())
        };
        let id = app_id.clone();
        let result = match removed {
            Ok(()) => {
                self.store
                    .write_async(move |w| {
                        let Some(done) = w.cleanup_done(&id)? else {
                            return Ok(());
                        };
                        w.audit(completed_event(&id, &done))?;
                        Ok(())
                    })
                    .await
            }
            Err(error) => {
                let message = error.to_string();
                self.store
                    .write_async(move |w| {
                        w.cleanup_failed(&id, record.kind, &message).map(|_| ())
                    })
                    .await
                    .map(|()| {
                        tracing::debug!(app_id = %app_id, %error, "removal still failing; retrying later");
                    })
            }
        };
        match result {
            Ok(()) => {
                tracing::info!(app_id = %app_id, "left-behind objects removed");
                true
            }
            Err(error) => {
                tracing::warn!(app_id = %app_id, %error, "cannot record a cleanup");
                false
            }
        }
    }
}

/// Whether a record's backoff has elapsed: [`RETRY_INTERVAL`] doubled per
/// failed attempt, at most [`RETRY_MAX`].
fn due(record: &CleanupRecord, now: Timestamp) -> bool {
    let steps = record.attempts.saturating_sub(1).min(16);
    let wait = RETRY_INTERVAL.saturating_mul(1 << steps).min(RETRY_MAX);
    let wait = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
    now.0 >= record.last_attempt.0.saturating_add(wait)
}

fn completed_event(app_id: &AppId, done: &CleanupRecord) -> NewEvent {
    NewEvent::new(event::CLEANUP_COMPLETED, ACTOR)
        .app(app_id.as_str())
        .with("kind", done.kind.as_str())
        .with("attempts", done.attempts)
        .with("since", done.since.to_rfc3339())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(attempts: u32, last_attempt: i64) -> CleanupRecord {
        CleanupRecord {
            kind: CleanupKind::StaleSecret,
            since: Timestamp(0),
            attempts,
            last_attempt: Timestamp(last_attempt),
            last_error: String::new(),
        }
    }

    #[test]
    fn retries_back_off_up_to_a_limit() {
        assert!(!due(&record(1, 1_000), Timestamp(5_999)));
        assert!(due(&record(1, 1_000), Timestamp(6_000)));
        assert!(!due(&record(3, 0), Timestamp(19_999)));
        assert!(due(&record(3, 0), Timestamp(20_000)));
        assert!(due(&record(u32::MAX, 0), Timestamp(300_000)));
    }
}
