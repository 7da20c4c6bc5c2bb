//! The `paas_audit_events` table: appends (inside the caller's write
//! transaction, see [`super::Writer::audit`]) and filtered, paginated reads.

use redb::{ReadableTable, WriteTransaction};

use super::error::Context;
use super::records::StoredAuditEvent;
use super::{Snapshot, StoreError, Tables, Writer, decode, encode, tables};
use crate::audit::{Anchor, AuditEvent, ChainBreak, ChainHash, ChainVerifier, NewEvent, event};
use crate::model::Timestamp;

/// Largest page a caller may ask for.
pub const MAX_PAGE: usize = 1000;

/// Which events to read: all filters must match; `after` is exclusive.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this event type.
    pub event_type: Option<String>,
    /// Only events of this tenant.
    pub tenant_id: Option<String>,
    /// Only events of this app.
    pub app_id: Option<String>,
    /// Only events with a greater sequence number.
    pub after: u64,
    /// At most this many (capped at [`super::MAX_AUDIT_PAGE`]).
    pub limit: usize,
}

/// One page of events, oldest first.
#[derive(Debug, Clone)]
pub struct AuditPage {
    /// The events.
    pub events: Vec<AuditEvent>,
    /// Pass as `after` to read on; `None` when the log was read to its end.
    pub next_after: Option<u64>,
}

impl<T: Tables> Snapshot<T> {
    /// The newest event's anchor, or the checkpoint when the log is empty.
    pub fn audit_head(&self) -> Result<Anchor, StoreError> {
        let last = {
            let audit = self.txn().table(tables::AUDIT)?;
            match audit.last().in_table(tables::AUDIT)? {
                Some((seq, bytes)) => {
                    let stored: StoredAuditEvent = decode("paas_audit_events", bytes.value())?;
                    Some(Anchor {
                        seq: seq.value(),
                        hash: ChainHash(stored.hash),
                    })
                }
                None => None,
            }
        };
        match last {
            Some(anchor) => Ok(anchor),
            None => self.audit_checkpoint(),
        }
    }

    /// Events matching `filter`, oldest first.
    pub fn audit_events(&self, filter: &AuditFilter) -> Result<AuditPage, StoreError> {
        let limit = filter.limit.clamp(1, MAX_PAGE);
        let audit = self.txn().table(tables::AUDIT)?;
        let mut events = Vec::new();
        let start = filter.after.saturating_add(1);
        for entry in audit.range(start..).in_table(tables::AUDIT)? {
            let (seq, bytes) = entry.in_table(tables::AUDIT)?;
            let stored: StoredAuditEvent = decode("paas_audit_events", bytes.value())?;
            if !matches(filter, &stored) {
                continue;
            }
            events.push(stored.into_event(seq.value()));
            if events.len() == limit {
                let next_after = events.last().map(|e| e.seq);
                return Ok(AuditPage { events, next_after });
            }
        }
        Ok(AuditPage {
            events,
            next_after: None,
        })
    }

    /// Visits every event in order (for offline verification and backups).
    pub fn for_each_audit_event(
        &self,
        mut visit: impl FnMut(AuditEvent) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let audit = self.txn().table(tables::AUDIT)?;
        for entry in audit.iter().in_table(tables::AUDIT)? {
            let (seq, bytes) = entry.in_table(tables::AUDIT)?;
            let stored: StoredAuditEvent = decode("paas_audit_events", bytes.value())?;
            visit(stored.into_event(seq.value()))?;
        }
        Ok(())
    }
}

/// The outcome of verifying the stored chain from its checkpoint.
#[derive(Debug, Clone)]
pub struct ChainCheck {
    /// Where verification started (genesis, the pruning checkpoint, or the
    /// last verified position).
    pub checkpoint: Anchor,
    /// Events verified before the end or the first break.
    pub events: u64,
    /// The head reached, or the first broken event.
    pub outcome: Result<Anchor, ChainBreak>,
    /// Whether verification reached the newest event (`false` when it
    /// stopped at a limit with events left).
    pub complete: bool,
}

impl<T: Tables> Snapshot<T> {
    /// Verifies every stored event from the checkpoint on, and the head
    /// against `anchor` when given. Stops at the first break.
    pub fn verify_audit_chain(&self, anchor: Option<Anchor>) -> Result<ChainCheck, StoreError> {
        let checkpoint = self.audit_checkpoint()?;
        let mut verifier = ChainVerifier::new(checkpoint, anchor);
        let mut broken = None;
        self.for_each_audit_event(|event| {
            if broken.is_none()
                && let Err(error) = verifier.push(&event)
            {
                broken = Some(error);
            }
            Ok(())
        })?;
        let events = verifier.events();
        let outcome = match broken {
            Some(error) => Err(error),
            None => verifier.finish(anchor),
        };
        Ok(ChainCheck {
            checkpoint,
            events,
            outcome,
            complete: true,
        })
    }
}

impl<T: Tables> Snapshot<T> {
    /// Verifies the events appended since the last verified position (see
    /// [`Writer::record_audit_verified`]; the pruning checkpoint or genesis
    /// if later or never verified), and that the event at that position
    /// is still the one verified. Cost is proportional to the new events
    /// only, which keeps start-up fast on a long log; at most `max_events`
    /// are verified (`complete` says whether that reached the head).
    pub fn verify_audit_since_verified(&self, max_events: u64) -> Result<ChainCheck, StoreError> {
        let checkpoint = self.audit_checkpoint()?;
        let from = match self.audit_verified()? {
            Some(verified) if verified.seq > checkpoint.seq => verified,
            _ => checkpoint,
        };
        let audit = self.txn().table(tables::AUDIT)?;
        let mut verifier = ChainVerifier::new(from, None);
        let mut broken = None;
        if from.seq > checkpoint.seq {
            broken = match audit.get(from.seq).in_table(tables::AUDIT)? {
                Some(bytes) => {
                    let stored: StoredAuditEvent = decode("paas_audit_events", bytes.value())?;
                    (ChainHash(stored.hash) != from.hash)
                        .then_some(ChainBreak::AnchorMismatch { seq: from.seq })
                }
                None => Some(ChainBreak::Truncated {
                    head_seq: audit
                        .last()
                        .in_table(tables::AUDIT)?
                        .map_or(checkpoint.seq, |(seq, _)| seq.value()),
                    anchor_seq: from.seq,
                }),
            };
        }
        let mut complete = true;
        if broken.is_none() {
            for entry in audit
                .range(from.seq.saturating_add(1)..)
                .in_table(tables::AUDIT)?
            {
                if verifier.events() == max_events {
                    complete = false;
                    break;
                }
                let (seq, bytes) = entry.in_table(tables::AUDIT)?;
                let stored: StoredAuditEvent = decode("paas_audit_events", bytes.value())?;
                if let Err(error) = verifier.push(&stored.into_event(seq.value())) {
                    broken = Some(error);
                    break;
                }
            }
        }
        Ok(ChainCheck {
            checkpoint: from,
            events: verifier.events(),
            outcome: match broken {
                Some(error) => Err(error),
                None => Ok(verifier.head()),
            },
            complete,
        })
    }
}

impl Writer {
    /// Deletes at most `max` of the oldest events stamped before `cutoff`
    /// and records the last one deleted as the checkpoint, in this
    /// transaction, so the chain still verifies from there. Appends an
    /// `audit.pruned` event naming what went. Returns how many were pruned.
    pub fn prune_audit_events(&mut self, cutoff: Timestamp, max: usize) -> Result<u64, StoreError> {
        let mut last = None;
        let mut doomed = Vec::new();
        {
            let audit = self.txn().table(tables::AUDIT)?;
            for entry in audit.iter().in_table(tables::AUDIT)? {
                if doomed.len() >= max {
                    break;
                }
                let (seq, bytes) = entry.in_table(tables::AUDIT)?;
                let stored: StoredAuditEvent = decode("paas_audit_events", bytes.value())?;
                if stored.time >= cutoff {
                    break;
                }
                doomed.push(seq.value());
                last = Some(Anchor {
                    seq: seq.value(),
                    hash: ChainHash(stored.hash),
                });
            }
        }
        let Some(checkpoint) = last else {
            return Ok(0);
        };
        {
            let mut audit = self.txn().table(tables::AUDIT)?;
            for seq in &doomed {
                audit.remove(seq).in_table(tables::AUDIT)?;
            }
            let encoded = encode("meta", &checkpoint)?;
            self.txn()
                .table(tables::META)?
                .insert(tables::META_AUDIT_CHECKPOINT, encoded.as_slice())
                .in_table(tables::META)?;
        }
        let count = doomed.len() as u64;
        self.audit(
            NewEvent::new(event::AUDIT_PRUNED, "system")
                .with("count", count)
                .with("checkpoint_seq", checkpoint.seq)
                .with("checkpoint_hash", checkpoint.hash.to_hex()),
        )?;
        Ok(count)
    }
}

fn matches(filter: &AuditFilter, event: &StoredAuditEvent) -> bool {
    let same = |want: &Option<String>, have: &Option<String>| {
        want.as_ref().is_none_or(|want| have.as_ref() == Some(want))
    };
    filter
        .event_type
        .as_ref()
        .is_none_or(|want| *want == event.event_type)
        && same(&filter.tenant_id, &event.tenant_id)
        && same(&filter.app_id, &event.app_id)
}

/// Inserts a linked event at its sequence number.
pub(super) fn insert(txn: &WriteTransaction, event: &AuditEvent) -> Result<(), StoreError> {
    let encoded = encode("paas_audit_events", &StoredAuditEvent::from_event(event))?;
    txn.table(tables::AUDIT)?
        .insert(event.seq, encoded.as_slice())
        .in_table(tables::AUDIT)?;
    Ok(())
}
