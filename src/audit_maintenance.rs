//! The daemon's audit log upkeep: at start and every
//! `audit.anchor_interval` it verifies the events appended since the last
//! verified position, prunes events older than `audit.retention` (when
//! set) and logs the chain's head as an anchor.
//!
//! Verification goes on from the position it reached before (kept in the
//! store's meta table), so start-up costs what was appended since, not the
//! whole log. A break is logged, audited (`audit.verify_failed`) and shown
//! by `/readyz` (degraded) and `exsec doctor`; the daemon keeps serving.
//!
//! An anchor is `(seq, hash)` logged at `target: "exsec::audit::anchor"`;
//! kept by whatever collects the logs, it lets `exsec audit verify --anchor
//! SEQ:HASH` catch a log whose tail was cut off later. Pruning deletes in
//! bounded batches, each in one durable transaction that also records the
//! checkpoint the chain then starts from (see
//! [`crate::store::Writer::prune_audit_events`]). This task must not block
//! the executor: every store call runs on the blocking pool.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::api::problem::chain;
use crate::audit::{NewEvent, event};
use crate::config::AuditConfig;
use crate::model::Timestamp;
use crate::store::{Store, StoreError};

/// Most events deleted in one transaction, so pruning a long backlog never
/// holds the write lock for long.
const PRUNE_BATCH: usize = 5_000;

/// What verification found about the audit chain, for `/readyz`.
#[derive(Debug, Default)]
pub struct ChainStatus {
    /// The first break found, worded for the operator.
    broken: RwLock<Option<String>>,
}

impl ChainStatus {
    /// The first break found since start, if any.
    pub fn broken(&self) -> Option<String> {
        self.broken
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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

/// Verifies the events appended since the last verified position and moves
/// that position to the head. A break is logged and audited once per
/// process (`audit.verify_failed`), remembered in `status`, and the position
/// stays where it was, so the next start finds the break again.
pub async fn verify_new_events(store: &Arc<Store>, status: &ChainStatus) -> Result<(), StoreError> {
    if status.broken().is_some() {
        return Ok(());
    }
    let check = store
        .read_async(|r| r.verify_audit_since_verified())
        .await?;
    let from = check.checkpoint;
    match check.outcome {
        Ok(head) => {
            if head != from {
                store
                    .write_async(move |w| w.record_audit_verified(head))
                    .await?;
            }
            tracing::debug!(
                from = from.seq,
                to = head.seq,
                events = check.events,
                "audit chain verified"
            );
            Ok(())
        }
        Err(chain_break) => {
            let reason = chain_break.to_string();
            if !status.set_broken(reason.clone()) {
                return Ok(());
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
                .await
        }
    }
}

/// Runs until `shutdown` resolves: one round at start, then one per
/// `anchor_interval`. Each round verifies what was appended since the last
/// one, so the next start has little left to verify.
pub async fn run(
    store: Arc<Store>,
    config: AuditConfig,
    status: Arc<ChainStatus>,
    shutdown: impl Future<Output = ()>,
) {
    let mut ticks = tokio::time::interval(config.anchor_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = ticks.tick() => {}
        }
        if let Err(error) = verify_new_events(&store, &status).await {
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
}
