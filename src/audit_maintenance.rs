//! The daemon's audit log upkeep: at start and every
//! `audit.anchor_interval` it verifies the events appended since the last
//! verified position, prunes events older than `audit.retention` (when
//! set) and logs the chain's head as an anchor.
//!
//! Verification goes on from the position it reached before (kept in the
//! store's meta table), so start-up costs what was appended since, not the
//! whole log; and start-up verifies at most [`VERIFY_STEP`] events before
//! serving, leaving a longer backlog to the first round of this task. A break is logged, audited (`audit.verify_failed`) and shown
//! by `/readyz` (degraded) and `exsec doctor`; the daemon keeps serving.
//!
//! An anchor is `(seq, hash)` logged at `target: "exsec::audit::anchor"`;
//! kept by whatever collects the logs, it lets `exsec audit verify --anchor
//! SEQ:HASH` catch a log whose tail was cut off later. Pruning deletes in
//! bounded batches, each in one durable transaction that also records the
//! checkpoint the chain then starts from (see
//! [`crate::store::Writer::prune_audit_events`]). This task must not block
//! the executor: every store call runs on the blocking pool.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::audit::{NewEvent, event};
use crate::config::AuditConfig;
use crate::error_chain::chain;
use crate::model::Timestamp;
use crate::shutdown::Shutdown;
use crate::store::{Store, StoreError};

/// Most events deleted in one transaction, so pruning a long backlog never
/// holds the write lock for long.
const PRUNE_BATCH: usize = 5_000;

/// Most events verified in one read transaction. Start-up verifies one
/// such step before the listener accepts (about 30 ms, see
/// docs/performance.md), so even a log never verified before (the first
/// start after an upgrade) keeps start-to-ready short; the upkeep task
/// verifies the rest right after.
pub const VERIFY_STEP: u64 = 10_000;

/// What verification found about the audit chain, for `/readyz`.
#[derive(Debug, Default)]
pub struct ChainStatus {
    /// The first break found, worded for the operator.
    broken: RwLock<Option<String>>,
    /// Whether events appended before this start are still being verified.
    behind: AtomicBool,
}

impl ChainStatus {
    /// The first break found since start, if any.
    pub fn broken(&self) -> Option<String> {
        self.broken
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether verification has not reached the head yet (a long backlog
    /// at start).
    pub fn behind(&self) -> bool {
        self.behind.load(Ordering::Acquire)
    }

    /// Remembers the first break; returns whether it is new.
    fn set_broken(&self, reason: String) -> bool {
        let mut broken = self.broken.write().unwrap_or_else(|p| p.into_inner());
        if broken.is_some() {
            return false;
        }
        *broken = Some(reason);
        true
    }
}

/// Verifies at most `max_events` of the events appended since the last
/// verified position and moves that position as far as it got. A break is
/// logged and audited once per process (`audit.verify_failed`), remembered
/// in `status`, and the position stays where it was, so the next start
/// finds the break again. Returns whether verification reached the head.
pub async fn verify_new_events(
    store: &Arc<Store>,
    status: &ChainStatus,
    max_events: u64,
) -> Result<bool, StoreError> {
    if status.broken().is_some() {
        return Ok(true);
    }
    let check = store
        .read_async(move |r| r.verify_audit_since_verified(max_events))
        .await?;
    let from = check.checkpoint;
    match check.outcome {
        Ok(head) => {
            if head != from {
                // Only a marker that saves the next start work: on a full
                // or failing disk the daemon starts degraded without it.
                match store
                    .write_async(move |w| w.record_audit_verified(head))
                    .await
                {
                    Err(error) if error.fault().is_some() => tracing::warn!(
                        error = %chain(&error),
                        "cannot record how far the audit log was verified (storage is failing); the next verification repeats the work"
                    ),
                    written => written?,
                }
            }
            status.behind.store(!check.complete, Ordering::Release);
            tracing::debug!(
                from = from.seq,
                to = head.seq,
                events = check.events,
                complete = check.complete,
                "audit chain verified"
            );
            Ok(check.complete)
        }
        Err(chain_break) => {
            status.behind.store(false, Ordering::Release);
            let reason = chain_break.to_string();
            if !status.set_broken(reason.clone()) {
                return Ok(true);
            }
            tracing::error!(
                verified_up_to = from.seq,
                error = %reason,
                "the audit log was tampered with after it was last verified; compare it with a backup or an anchor (`exsec audit verify --anchor`); exsec keeps serving"
            );
            let failed = NewEvent::new(event::AUDIT_VERIFY_FAILED, "system")
                .with("verified_up_to", from.seq)
                .with("reason", reason);
            store
                .write_async(move |w| w.audit(failed.clone()).map(drop))
                .await?;
            Ok(true)
        }
    }
}

/// Verifies everything appended since the last verified position, one
/// [`VERIFY_STEP`] per read transaction.
async fn verify_to_head(store: &Arc<Store>, status: &ChainStatus) -> Result<(), StoreError> {
    while !verify_new_events(store, status, VERIFY_STEP).await? {}
    Ok(())
}

/// Runs until `shutdown` fires: one round at start, then one per
/// `anchor_interval`. Each round verifies what was appended since the last
/// one, so the next start has little left to verify.
pub async fn run(
    store: Arc<Store>,
    config: AuditConfig,
    status: Arc<ChainStatus>,
    mut shutdown: Shutdown,
) {
    let mut ticks = tokio::time::interval(config.anchor_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.recv() => return,
            _ = ticks.tick() => {}
        }
        if let Err(error) = verify_to_head(&store, &status).await {
            tracing::error!(error = %chain(&error), "cannot verify the audit log; retrying at the next interval");
        }
        if let Some(retention) = config.retention
            && let Err(error) = prune(&store, retention).await
        {
            tracing::error!(error = %chain(&error), "audit retention: pruning failed; retrying at the next interval");
        }
        match store.read_async(|r| r.audit_head()).await {
            Ok(head) => tracing::info!(
                target: "exsec::audit::anchor",
                seq = head.seq,
                hash = %head.hash.to_hex(),
                anchor = %head,
                "audit anchor"
            ),
            Err(error) => tracing::error!(error = %chain(&error), "cannot read the audit head"),
        }
    }
}

/// Prunes every event older than `retention`, batch by batch; returns how
/// many went.
pub async fn prune(store: &Arc<Store>, retention: Duration) -> Result<u64, StoreError> {
    let millis = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    let cutoff = Timestamp(Timestamp::now().0.saturating_sub(millis));
    let mut total = 0;
    loop {
        let pruned = store
            .write_async(move |w| w.prune_audit_events(cutoff, PRUNE_BATCH))
            .await?;
        total += pruned;
        if pruned < PRUNE_BATCH as u64 {
            break;
        }
    }
    if total > 0 {
        tracing::info!(pruned = total, cutoff = %cutoff, "audit retention: pruned old events");
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TenantId;
    use crate::store::StoreOptions;

    #[tokio::test]
    async fn pruning_keeps_a_verifiable_chain() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            Store::open(
                &dir.path().join("exsec.redb"),
                StoreOptions::with_cache_size(1024 * 1024),
            )
            .unwrap(),
        );
        for name in ["a1", "a2", "a3"] {
            let id = TenantId::parse(name).unwrap();
            store
                .write_async(move |w| w.put_tenant(&id, "admin"))
                .await
                .unwrap();
        }
        // A zero retention prunes everything written so far.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let pruned = prune(&store, Duration::ZERO).await.unwrap();
        assert_eq!(pruned, 3);
        let (checkpoint, check) = store
            .read_async(|r| Ok((r.audit_checkpoint()?, r.verify_audit_chain(None)?)))
            .await
            .unwrap();
        assert_eq!(checkpoint.seq, 3);
        let head = check.outcome.unwrap();
        // Only the `audit.pruned` event is left, linked to the checkpoint.
        assert_eq!(head.seq, 4);
        assert_eq!(check.events, 1);
        let id = TenantId::parse("a4").unwrap();
        store
            .write_async(move |w| w.put_tenant(&id, "admin"))
            .await
            .unwrap();
        let check = store
            .read_async(|r| r.verify_audit_chain(None))
            .await
            .unwrap();
        assert_eq!(check.outcome.unwrap().seq, 5);
    }

    /// Start-up takes one step and the upkeep the rest; the position moves
    /// with each step; a tail cut below the verified position is a break,
    /// audited once.
    #[tokio::test]
    async fn verification_goes_on_from_the_last_verified_position_in_steps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exsec.redb");
        let open =
            || Arc::new(Store::open(&path, StoreOptions::with_cache_size(1024 * 1024)).unwrap());
        let store = open();
        for n in 0..25 {
            let id = TenantId::parse(&format!("t{n:02}")).unwrap();
            store
                .write_async(move |w| w.put_tenant(&id, "admin"))
                .await
                .unwrap();
        }
        let verified = |store: &Arc<Store>| {
            store
                .read(|r| r.audit_verified())
                .unwrap()
                .map_or(0, |anchor| anchor.seq)
        };
        let status = ChainStatus::default();
        assert!(!verify_new_events(&store, &status, 10).await.unwrap());
        assert!(status.behind());
        assert_eq!(verified(&store), 10);
        verify_to_head(&store, &status).await.unwrap();
        assert!(!status.behind());
        assert_eq!(verified(&store), 25);
        assert!(verify_new_events(&store, &status, 10).await.unwrap());
        assert_eq!(status.broken(), None);
        drop(store);

        crate::store::testing::truncate_audit_log(&path, 20).unwrap();
        let store = open();
        let status = ChainStatus::default();
        assert!(
            verify_new_events(&store, &status, VERIFY_STEP)
                .await
                .unwrap()
        );
        let reason = status.broken().expect("a cut tail is a break");
        assert!(reason.contains("ends at event 20"), "{reason}");
        assert!(!status.behind());
        verify_to_head(&store, &status).await.unwrap();
        let failed = store
            .read(|r| {
                r.audit_events(&crate::store::AuditFilter {
                    event_type: Some(event::AUDIT_VERIFY_FAILED.to_owned()),
                    limit: 10,
                    ..Default::default()
                })
            })
            .unwrap();
        assert_eq!(failed.events.len(), 1, "audited once");
        assert_eq!(failed.events[0].data["verified_up_to"], 25);
        assert_eq!(
            verified(&store),
            25,
            "the position never moves past a break"
        );
    }
}
