//! The daemon's audit log upkeep: every `audit.anchor_interval` it prunes
//! events older than `audit.retention` (when set) and logs the chain's
//! head as an anchor.
//!
//! An anchor is `(seq, hash)` logged at `target: "exsec::audit::anchor"`;
//! kept by whatever collects the logs, it lets `exsec audit verify --anchor
//! SEQ:HASH` catch a log whose tail was cut off later. Pruning deletes in
//! bounded batches, each in one durable transaction that also records the
//! checkpoint the chain then starts from (see
//! [`crate::store::Writer::prune_audit_events`]). This task must not block
//! the executor: every store call runs on the blocking pool.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::api::problem::chain;
use crate::config::AuditConfig;
use crate::model::Timestamp;
use crate::store::{Store, StoreError};

/// Most events deleted in one transaction, so pruning a long backlog never
/// holds the write lock for long.
const PRUNE_BATCH: usize = 5_000;

/// Runs until `shutdown` resolves: one round at start, then one per
/// `anchor_interval`.
pub async fn run(store: Arc<Store>, config: AuditConfig, shutdown: impl Future<Output = ()>) {
    let mut ticks = tokio::time::interval(config.anchor_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = ticks.tick() => {}
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
