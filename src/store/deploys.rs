//! Deploy history and idempotency records.
//!
//! Deploy ids are `dep_{seq}` with a zero-padded store-wide sequence, so an
//! id finds its record directly and sorts in time order.

use redb::ReadableTable;

use super::error::Context;
use super::records::{DeployRecord, IdempotencyRecord};
use super::{Snapshot, StoreError, Tables, Writer, decode, encode, tables};
use crate::audit::{NewEvent, event};
use crate::model::{AppId, DeployStatus, Timestamp};

/// Meta key of the last deploy sequence number.
const META_DEPLOY_SEQ: &str = "deploy_seq";
/// `deploy_pending/{deploy_id}` → the record to file if exsec stops before
/// the deploy finishes (see [`Writer::start_deploy`]).
const META_PENDING_PREFIX: &str = "deploy_pending/";
/// How long an idempotency key replays its answer.
pub const IDEMPOTENCY_TTL_MS: i64 = 24 * 60 * 60 * 1000;

/// `dep_{seq}`.
pub fn deploy_id(seq: u64) -> String {
    format!("dep_{seq:012}")
}

/// The sequence number inside a deploy id.
pub fn deploy_seq(deploy_id: &str) -> Option<u64> {
    let digits = deploy_id.strip_prefix("dep_")?;
    if digits.len() != 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl<T: Tables> Snapshot<T> {
    /// The highest deploy sequence number ever recorded (0 if none). The
    /// deploy pipeline hands out ids from memory after it, so a deploy id
    /// costs no commit of its own.
    pub fn last_deploy_seq(&self) -> Result<u64, StoreError> {
        let meta = self.txn().table(tables::META)?;
        match meta.get(META_DEPLOY_SEQ).in_table(tables::META)? {
            Some(bytes) => decode("meta", bytes.value()),
            None => Ok(0),
        }
    }

    /// The newest deploys of an app, newest first.
    pub fn deploys(&self, app_id: &AppId, limit: usize) -> Result<Vec<DeployRecord>, StoreError> {
        let deploys = self.txn().table(tables::DEPLOYS)?;
        let range = deploys
            .range((app_id.as_str(), 0)..=(app_id.as_str(), u64::MAX))
            .in_table(tables::DEPLOYS)?;
        let mut out = Vec::new();
        for entry in range.rev().take(limit) {
            out.push(decode(
                "deploys",
                entry.in_table(tables::DEPLOYS)?.1.value(),
            )?);
        }
        Ok(out)
    }

    /// One deploy of an app.
    pub fn deploy(
        &self,
        app_id: &AppId,
        deploy_id: &str,
    ) -> Result<Option<DeployRecord>, StoreError> {
        let Some(seq) = deploy_seq(deploy_id) else {
            return Ok(None);
        };
        let deploys = self.txn().table(tables::DEPLOYS)?;
        let bytes = deploys
            .get((app_id.as_str(), seq))
            .in_table(tables::DEPLOYS)?;
        bytes.map(|b| decode("deploys", b.value())).transpose()
    }

    /// The newest deploy of an app whose Deployment apply succeeded: what
    /// the cluster's pod template holds now (its secrets hash and restart
    /// mark are carried over by the next deploy).
    pub fn last_succeeded_deploy(
        &self,
        app_id: &AppId,
    ) -> Result<Option<DeployRecord>, StoreError> {
        self.newest_deploy_where(app_id, |record| record.status == DeployStatus::Succeeded)
    }

    /// The newest deploy of an app that left the cluster's Secret matching
    /// the store (see [`super::records::InjectionRecord::synced`]).
    pub fn last_injected_deploy(&self, app_id: &AppId) -> Result<Option<DeployRecord>, StoreError> {
        self.newest_deploy_where(app_id, |record| record.injection.synced())
    }

    /// The newest deploy of an app for which `wanted` holds.
    fn newest_deploy_where(
        &self,
        app_id: &AppId,
        wanted: impl Fn(&DeployRecord) -> bool,
    ) -> Result<Option<DeployRecord>, StoreError> {
        let deploys = self.txn().table(tables::DEPLOYS)?;
        let range = deploys
            .range((app_id.as_str(), 0)..=(app_id.as_str(), u64::MAX))
            .in_table(tables::DEPLOYS)?;
        for entry in range.rev() {
            let record: DeployRecord =
                decode("deploys", entry.in_table(tables::DEPLOYS)?.1.value())?;
            if wanted(&record) {
                return Ok(Some(record));
            }
        }
        Ok(None)
    }

    /// A live (under 24 h old) idempotency record.
    pub fn idempotency(
        &self,
        app_id: &AppId,
        key: &str,
        now: Timestamp,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let records = self.txn().table(tables::IDEMPOTENCY)?;
        let name = format!("{app_id}/{key}");
        let Some(bytes) = records.get(name.as_str()).in_table(tables::IDEMPOTENCY)? else {
            return Ok(None);
        };
        let record: IdempotencyRecord = decode("idempotency_keys", bytes.value())?;
        Ok((now.0 - record.created_at.0 < IDEMPOTENCY_TTL_MS).then_some(record))
    }
}

impl Writer {
    /// Marks a deploy started, before any cluster call: its id is taken for
    /// good (the next start never hands it out again), `events` are
    /// audited now, and `interrupted` — the record as it must read if
    /// exsec stops before [`Writer::record_deploy`] — is kept aside. A crash
    /// in the middle of the cluster calls thus leaves an audit trail and,
    /// after the restart, a failed deploy in the history, never a deploy
    /// the cluster holds and exsec forgot.
    pub fn start_deploy(
        &mut self,
        interrupted: &DeployRecord,
        events: Vec<NewEvent>,
    ) -> Result<(), StoreError> {
        let seq = self.deploy_seq_of(interrupted)?;
        self.raise_deploy_seq(seq)?;
        let name = format!("{META_PENDING_PREFIX}{}", interrupted.deploy_id);
        let encoded = encode("meta", interrupted)?;
        self.txn()
            .table(tables::META)?
            .insert(name.as_str(), encoded.as_slice())
            .in_table(tables::META)?;
        for event in events {
            self.audit(event)?;
        }
        Ok(())
    }

    /// Files every deploy a stop left unfinished, as its `interrupted`
    /// record, with a `deploy.failed` audit event each; returns them.
    pub fn finish_interrupted_deploys(&mut self) -> Result<Vec<DeployRecord>, StoreError> {
        let (start, end) = (
            META_PENDING_PREFIX.to_owned(),
            format!("{META_PENDING_PREFIX}\u{10ffff}"),
        );
        let pending: Vec<DeployRecord> = {
            let meta = self.txn().table(tables::META)?;
            meta.range(start.as_str()..end.as_str())
                .in_table(tables::META)?
                .map(|entry| {
                    let (_, bytes) = entry.in_table(tables::META)?;
                    decode("meta", bytes.value())
                })
                .collect::<Result<_, StoreError>>()?
        };
        for record in &pending {
            let failed = NewEvent::new(event::DEPLOY_FAILED, "system")
                .tenant(record.tenant_id.as_str())
                .app(record.app_id.as_str())
                .with("deploy_id", record.deploy_id.as_str())
                .with("error", record.error.as_deref().unwrap_or("interrupted"));
            self.record_deploy(record, vec![failed], None)?;
        }
        Ok(pending)
    }

    /// Records a deploy with its audit events (in order) and, if given,
    /// the idempotency record that replays it; a deploy marked started is
    /// no longer pending.
    pub fn record_deploy(
        &mut self,
        record: &DeployRecord,
        events: Vec<NewEvent>,
        idempotency: Option<(&str, IdempotencyRecord)>,
    ) -> Result<(), StoreError> {
        let seq = self.deploy_seq_of(record)?;
        let encoded = encode("deploys", record)?;
        self.txn()
            .table(tables::DEPLOYS)?
            .insert((record.app_id.as_str(), seq), encoded.as_slice())
            .in_table(tables::DEPLOYS)?;
        self.raise_deploy_seq(seq)?;
        let pending = format!("{META_PENDING_PREFIX}{}", record.deploy_id);
        self.txn()
            .table(tables::META)?
            .remove(pending.as_str())
            .in_table(tables::META)?;
        if let Some((key, replay)) = idempotency {
            let name = format!("{}/{key}", record.app_id);
            let encoded = encode("idempotency_keys", &replay)?;
            self.txn()
                .table(tables::IDEMPOTENCY)?
                .insert(name.as_str(), encoded.as_slice())
                .in_table(tables::IDEMPOTENCY)?;
        }
        for event in events {
            self.audit(event)?;
        }
        Ok(())
    }

    fn deploy_seq_of(&self, record: &DeployRecord) -> Result<u64, StoreError> {
        deploy_seq(&record.deploy_id).ok_or_else(|| StoreError::CorruptKey {
            table: "deploys",
            key: record.deploy_id.clone(),
        })
    }

    /// Remembers `seq` as handed out, so a restart continues after it.
    fn raise_deploy_seq(&mut self, seq: u64) -> Result<(), StoreError> {
        if seq > self.last_deploy_seq()? {
            let encoded = encode("meta", &seq)?;
            self.txn()
                .table(tables::META)?
                .insert(META_DEPLOY_SEQ, encoded.as_slice())
                .in_table(tables::META)?;
        }
        Ok(())
    }

    /// Drops idempotency records older than 24 h; returns how many.
    pub fn prune_idempotency(&mut self, now: Timestamp) -> Result<u64, StoreError> {
        let mut records = self.txn().table(tables::IDEMPOTENCY)?;
        let mut removed = 0;
        records
            .retain(|_, bytes| {
                let keep = decode::<IdempotencyRecord>("idempotency_keys", bytes)
                    .map(|r| now.0 - r.created_at.0 < IDEMPOTENCY_TTL_MS)
                    .unwrap_or(false);
                removed += u64::from(!keep);
                keep
            })
            .in_table(tables::IDEMPOTENCY)?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deploy_ids_round_trip_and_sort() {
        assert_eq!(deploy_id(7), "dep_000000000007");
        assert_eq!(deploy_seq(&deploy_id(123_456)), Some(123_456));
        assert!(deploy_id(9) < deploy_id(10));
        for bad in ["dep_1", "x_000000000001", "dep_00000000000a", ""] {
            assert_eq!(deploy_seq(bad), None, "{bad}");
        }
    }
}
