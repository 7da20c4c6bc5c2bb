//! The audit log's hash chain: the canonical form of an event, its hash, and
//! the verification that names the first broken event.
//!
//! Pure functions over events: the store appends with them inside the write
//! transaction that makes the change, `exsec audit verify` checks with them
//! online (from `GET /v1/audit-events`) or offline (from the redb file). The
//! chain is defined in SPEC §7:
//!
//! ```text
//! hash = SHA-256(prev_hash_hex ‖ canonical_json({seq, time, type, actor, tenant_id, app_id, data}))
//! ```
//!
//! `prev_hash_hex` is the previous hash as 64 lowercase hex characters (the
//! first event's is 64 zeros), canonical JSON has sorted keys and no
//! whitespace, and `time` is the RFC 3339 text exactly as served. Event data
//! never holds a secret value: key names and counts only.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::model::Timestamp;

/// Stable event type names, part of the wire contract.
pub mod event {
    #![allow(missing_docs, reason = "each constant is its own name")]
    pub const TENANT_CREATED: &str = "tenant.created";
    pub const TENANT_DELETED: &str = "tenant.deleted";
    pub const TENANT_CRYPTO_SHREDDED: &str = "tenant.crypto_shredded";
    pub const TENANT_DATA_KEY_ROTATED: &str = "tenant.data_key_rotated";
    /// An older data key of a tenant deleted once no value needed it.
    pub const TENANT_DATA_KEY_RETIRED: &str = "tenant.data_key_retired";
    pub const APP_CREATED: &str = "app.created";
    pub const APP_UPDATED: &str = "app.updated";
    pub const APP_DELETED: &str = "app.deleted";
    pub const TOKEN_CREATED: &str = "token.created";
    pub const TOKEN_REVOKED: &str = "token.revoked";
    pub const SECRET_CREATED: &str = "external_secret.created";
    pub const SECRET_UPDATED: &str = "external_secret.updated";
    pub const SECRET_DELETED: &str = "external_secret.deleted";
    pub const SECRET_VERIFIED: &str = "external_secret.verified";
    pub const SECRET_RESTORED: &str = "external_secret.restored";
    /// A secret deleted with every kept value (`DELETE …?purge=true`).
    pub const SECRET_PURGED: &str = "external_secret.purged";
    pub const APP_UNPINNED: &str = "app.unpinned";
    pub const DEPLOY_CREATED: &str = "deploy.created";
    pub const DEPLOY_FAILED: &str = "deploy.failed";
    /// An automatic redeploy that was not run (a paused Deployment).
    pub const DEPLOY_SKIPPED: &str = "deploy.skipped";
    pub const SECRET_INJECTED: &str = "external_secret.injected";
    pub const SECRET_SKIPPED: &str = "external_secret.skipped";
    pub const SECRET_REMOVED: &str = "external_secret.removed";
    pub const SECRET_INJECTION_FAILED: &str = "external_secret.injection_failed";
    pub const ROTATION_STARTED: &str = "master_key.rotation_started";
    pub const ROTATION_COMPLETED: &str = "master_key.rotation_completed";
    pub const KEY_RELOAD_FAILED: &str = "master_key.reload_failed";
    pub const TLS_RELOAD_FAILED: &str = "tls.reload_failed";
    pub const AUDIT_PRUNED: &str = "audit.pruned";
    pub const CLEANUP_COMPLETED: &str = "cleanup.completed";
    pub const AUDIT_VERIFY_FAILED: &str = "audit.verify_failed";
    pub const KEY_UNAVAILABLE: &str = "master_key.unavailable";
    pub const KEY_AVAILABLE: &str = "master_key.available";
}

/// A SHA-256 link of the chain; hex on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ChainHash(pub [u8; 32]);

impl ChainHash {
    /// The `prev_hash` of the very first event: 64 zeros.
    pub const GENESIS: ChainHash = ChainHash([0; 32]);

    /// Lowercase hex, as on the wire and inside the hash input.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters.
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).ok()?;
        Some(Self(out))
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for ChainHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_hex())
        } else {
            self.0.serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for ChainHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            Self::from_hex(&text)
                .ok_or_else(|| serde::de::Error::custom("expected 64 hex characters"))
        } else {
            <[u8; 32]>::deserialize(deserializer).map(Self)
        }
    }
}

/// A point of the chain: the head `(seq, hash)` logged as an anchor, stored
/// in backups, and kept as a checkpoint when old events are pruned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// Sequence number of the event (0 before the first event).
    pub seq: u64,
    /// Hash of that event ([`ChainHash::GENESIS`] before the first event).
    pub hash: ChainHash,
}

impl Anchor {
    /// The start of an unpruned chain.
    pub const GENESIS: Anchor = Anchor {
        seq: 0,
        hash: ChainHash::GENESIS,
    };
}

/// What an event records, before it is given a place in the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// One of [`event`].
    pub event_type: &'static str,
    /// `admin`, `token:<id>` or `system`.
    pub actor: String,
    /// The tenant concerned, if any.
    pub tenant_id: Option<String>,
    /// The app concerned, if any.
    pub app_id: Option<String>,
    /// Small free-form data: names, counts, reasons — never a value.
    pub data: Map<String, Value>,
}

impl NewEvent {
    /// An event with empty data.
    pub fn new(event_type: &'static str, actor: impl Into<String>) -> Self {
        Self {
            event_type,
            actor: actor.into(),
            tenant_id: None,
            app_id: None,
            data: Map::new(),
        }
    }

    /// Sets the tenant concerned.
    pub fn tenant(mut self, tenant_id: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant_id.into());
        self
    }

    /// Sets the app concerned.
    pub fn app(mut self, app_id: impl Into<String>) -> Self {
        self.app_id = Some(app_id.into());
        self
    }

    /// Adds one data entry.
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.data.insert(name.to_owned(), value.into());
        self
    }

    /// Links this event after `prev`, computing its hash.
    pub fn link(self, prev: Anchor, time: Timestamp) -> AuditEvent {
        let mut linked = AuditEvent {
            seq: prev.seq + 1,
            time,
            event_type: self.event_type.to_owned(),
            actor: self.actor,
            tenant_id: self.tenant_id,
            app_id: self.app_id,
            data: self.data,
            prev_hash: prev.hash,
            hash: ChainHash::GENESIS,
        };
        linked.hash = linked.compute_hash();
        linked
    }
}

/// One event of the chain, exactly as served by `GET /v1/audit-events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEvent {
    /// Position in the chain, from 1, without gaps.
    pub seq: u64,
    /// When it was appended.
    #[serde(with = "rfc3339")]
    pub time: Timestamp,
    /// One of [`event`] (any text when read back).
    #[serde(rename = "type")]
    pub event_type: String,
    /// Who caused it.
    pub actor: String,
    /// The tenant concerned, if any.
    pub tenant_id: Option<String>,
    /// The app concerned, if any.
    pub app_id: Option<String>,
    /// Names, counts and reasons; never a secret value.
    pub data: Map<String, Value>,
    /// Hash of the previous event.
    pub prev_hash: ChainHash,
    /// Hash of this event.
    pub hash: ChainHash,
}

impl AuditEvent {
    /// This event's place as an anchor.
    pub fn anchor(&self) -> Anchor {
        Anchor {
            seq: self.seq,
            hash: self.hash,
        }
    }

    /// The canonical JSON text that the hash covers.
    pub fn canonical_json(&self) -> String {
        // serde_json without `preserve_order` keeps object keys sorted, and
        // `to_string` writes no whitespace: that is the canonical form.
        let body = serde_json::json!({
            "seq": self.seq,
            "time": self.time.to_rfc3339(),
            "type": self.event_type,
            "actor": self.actor,
            "tenant_id": self.tenant_id,
            "app_id": self.app_id,
            "data": sorted(&self.data),
        });
        body.to_string()
    }

    /// `SHA-256(prev_hash_hex ‖ canonical_json)`.
    pub fn compute_hash(&self) -> ChainHash {
        let mut hasher = Sha256::new();
        hasher.update(self.prev_hash.to_hex().as_bytes());
        hasher.update(self.canonical_json().as_bytes());
        ChainHash(hasher.finalize().into())
    }
}

/// Where and why a chain failed to verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// The event's own content no longer matches its hash: it was edited.
    #[error("audit event {seq} was altered: its content does not match its hash")]
    Altered {
        /// The edited event.
        seq: u64,
    },
    /// Events are missing between two present ones (removed, or moved
    /// elsewhere: a swap shows up here first).
    #[error(
        "audit {} missing or out of place: event {next} follows event {after}",
        missing_events(*.after, *.next)
    )]
    Missing {
        /// The last event that verified.
        after: u64,
        /// The event found next.
        next: u64,
    },
    /// An event comes after one with a number at least as great: events
    /// were reordered or duplicated.
    #[error("audit event {seq} comes after event {after}: events were reordered or duplicated")]
    OutOfOrder {
        /// The event out of place.
        seq: u64,
        /// The event before it.
        after: u64,
    },
    /// The event has the next number but does not link to the event before
    /// it: that one was replaced (edited and rehashed), or events were
    /// removed and the rest renumbered.
    #[error(
        "audit event {seq} does not link to event {previous} before it: event {previous} was replaced, or events were removed and renumbered"
    )]
    Unlinked {
        /// The event that does not link.
        seq: u64,
        /// The event before it.
        previous: u64,
    },
    /// The chain ends before an anchor recorded earlier: its tail was cut off.
    #[error(
        "audit log ends at event {head_seq}, but an anchor recorded event {anchor_seq}: events were removed from the end"
    )]
    Truncated {
        /// The last event present.
        head_seq: u64,
        /// The anchor's event.
        anchor_seq: u64,
    },
    /// The chain holds the anchor's sequence number with another hash.
    #[error("audit event {seq} differs from the anchor recorded for it")]
    AnchorMismatch {
        /// The event the anchor names.
        seq: u64,
    },
}

/// "event 4 is" or "events 4 to 6 are": the events between two present ones.
fn missing_events(after: u64, next: u64) -> String {
    if next == after + 2 {
        format!("event {} is", after + 1)
    } else {
        format!("events {} to {} are", after + 1, next.saturating_sub(1))
    }
}

/// Verifies events in order, starting after `start` (genesis, or the
/// checkpoint left by pruning). Returns the head reached.
pub fn verify<'a>(
    start: Anchor,
    events: impl IntoIterator<Item = &'a AuditEvent>,
) -> Result<Anchor, ChainBreak> {
    let mut head = start;
    for event in events {
        head = verify_next(head, event)?;
    }
    Ok(head)
}

/// Verifies one event against the head before it; returns the new head.
/// Streaming verifiers (pages of the API, table scans) call this per event.
pub fn verify_next(head: Anchor, event: &AuditEvent) -> Result<Anchor, ChainBreak> {
    if event.seq > head.seq + 1 {
        return Err(ChainBreak::Missing {
            after: head.seq,
            next: event.seq,
        });
    }
    if event.seq <= head.seq {
        return Err(ChainBreak::OutOfOrder {
            seq: event.seq,
            after: head.seq,
        });
    }
    if event.prev_hash != head.hash {
        return Err(ChainBreak::Unlinked {
            seq: event.seq,
            previous: head.seq,
        });
    }
    if event.compute_hash() != event.hash {
        return Err(ChainBreak::Altered { seq: event.seq });
    }
    Ok(event.anchor())
}

/// Checks a verified head against an anchor recorded earlier: the anchor
/// must be at or before the head, and if the anchor's event was seen its
/// hash must match (`seen` is the hash of that event, when verification
/// passed it).
pub fn check_anchor(
    head: Anchor,
    anchor: Anchor,
    seen: Option<ChainHash>,
) -> Result<(), ChainBreak> {
    if anchor.seq > head.seq {
        return Err(ChainBreak::Truncated {
            head_seq: head.seq,
            anchor_seq: anchor.seq,
        });
    }
    match seen {
        Some(hash) if hash != anchor.hash => Err(ChainBreak::AnchorMismatch { seq: anchor.seq }),
        _ => Ok(()),
    }
}

/// Verifies a chain one event at a time (pages of the API, a table scan)
/// and remembers what an anchor check needs: the head reached, how many
/// events were seen, and the hash of the event an anchor names.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    head: Anchor,
    events: u64,
    watch_seq: Option<u64>,
    watched: Option<ChainHash>,
}

impl ChainVerifier {
    /// Starts after `start` (genesis, or the checkpoint left by pruning);
    /// `anchor` is the anchor the head will be checked against, if any.
    pub fn new(start: Anchor, anchor: Option<Anchor>) -> Self {
        Self {
            head: start,
            events: 0,
            watch_seq: anchor.map(|a| a.seq),
            watched: anchor.filter(|a| a.seq == start.seq).map(|_| start.hash),
        }
    }

    /// Verifies the next event; the first error names the broken event.
    pub fn push(&mut self, event: &AuditEvent) -> Result<(), ChainBreak> {
        self.head = verify_next(self.head, event)?;
        self.events += 1;
        if self.watch_seq == Some(event.seq) {
            self.watched = Some(event.hash);
        }
        Ok(())
    }

    /// The head reached so far.
    pub fn head(&self) -> Anchor {
        self.head
    }

    /// How many events verified.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Ends verification: checks the head against `anchor`, if given.
    pub fn finish(self, anchor: Option<Anchor>) -> Result<Anchor, ChainBreak> {
        if let Some(anchor) = anchor {
            check_anchor(self.head, anchor, self.watched)?;
        }
        Ok(self.head)
    }
}

impl std::str::FromStr for Anchor {
    type Err = String;

    /// Parses `SEQ:HASH`, as logged by the daemon (`seq=… hash=…`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (seq, hash) = text
            .split_once(':')
            .ok_or_else(|| "expected SEQ:HASH (e.g. 1042:9f86d0…)".to_owned())?;
        let seq = seq
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("{seq:?} is not a sequence number"))?;
        let hash = ChainHash::from_hex(hash.trim())
            .ok_or_else(|| "the hash must be 64 hex characters".to_owned())?;
        Ok(Anchor { seq, hash })
    }
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash.to_hex())
    }
}

/// Recursively sorts object keys. serde_json's `Map` is a `BTreeMap` in this
/// build, so this is a clone; it stays explicit so that a dependency turning
/// on `preserve_order` cannot silently change the canonical form.
fn sorted(map: &Map<String, Value>) -> Value {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    Value::Object(
        entries
            .into_iter()
            .map(|(k, v)| (k.clone(), sort_value(v)))
            .collect(),
    )
}

fn sort_value(value: &Value) -> Value {
    match value {
        Value::Object(map) => sorted(map),
        Value::Array(items) => Value::Array(items.iter().map(sort_value).collect()),
        other => other.clone(),
    }
}

/// Serde for [`Timestamp`] as RFC 3339 text.
mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::model::Timestamp;

    pub fn serialize<S: Serializer>(time: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&time.to_rfc3339())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        let text = String::deserialize(deserializer)?;
        Timestamp::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chain(n: usize) -> Vec<AuditEvent> {
        let mut head = Anchor::GENESIS;
        (0..n)
            .map(|i| {
                let event = NewEvent::new(event::SECRET_CREATED, "admin")
                    .tenant("t1")
                    .with("provider", "openai")
                    .with("key", format!("KEY_{i}"))
                    .link(head, Timestamp(1_700_000_000_000 + i as i64));
                head = event.anchor();
                event
            })
            .collect()
    }

    #[test]
    fn a_fresh_chain_verifies() {
        let events = chain(5);
        assert_eq!(events[0].prev_hash, ChainHash::GENESIS);
        assert_eq!(verify(Anchor::GENESIS, &events), Ok(events[4].anchor()));
    }

    #[test]
    fn canonical_json_is_sorted_and_compact() {
        let event = NewEvent::new(event::DEPLOY_CREATED, "admin")
            .app("web")
            .with("z", 1)
            .with("a", serde_json::json!({"y": 2, "b": 3}))
            .link(Anchor::GENESIS, Timestamp(0));
        assert_eq!(
            event.canonical_json(),
            r#"{"actor":"admin","app_id":"web","data":{"a":{"b":3,"y":2},"z":1},"seq":1,"tenant_id":null,"time":"1970-01-01T00:00:00.000Z","type":"deploy.created"}"#
        );
    }

    #[test]
    fn hash_matches_an_independent_computation() {
        let event = chain(1).remove(0);
        let mut input = "0".repeat(64);
        input.push_str(&event.canonical_json());
        let expected: [u8; 32] = Sha256::digest(input.as_bytes()).into();
        assert_eq!(event.hash, ChainHash(expected));
    }

    #[test]
    fn wire_round_trip_keeps_the_hash() {
        let events = chain(3);
        let json = serde_json::to_string(&events).unwrap();
        let back: Vec<AuditEvent> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, events);
        assert!(verify(Anchor::GENESIS, &back).is_ok());
        let first: Value = serde_json::from_str(&json).unwrap();
        let keys: Vec<&str> = first[0]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "actor",
                "app_id",
                "data",
                "hash",
                "prev_hash",
                "seq",
                "tenant_id",
                "time",
                "type"
            ]
        );
    }

    proptest! {
        #[test]
        fn an_edited_event_is_named(n in 2usize..20, pick in any::<prop::sample::Index>(), field in 0u8..5) {
            let mut events = chain(n);
            let i = pick.index(n);
            let target = &mut events[i];
            match field {
                0 => target.actor.push('x'),
                1 => target.time = Timestamp(target.time.0 + 1),
                2 => { target.data.insert("key".into(), "OTHER".into()); }
                3 => target.tenant_id = Some("t2".into()),
                _ => target.event_type = event::SECRET_DELETED.into(),
            }
            prop_assert_eq!(verify(Anchor::GENESIS, &events), Err(ChainBreak::Altered { seq: i as u64 + 1 }));
        }

        #[test]
        fn a_removed_event_is_named(n in 2usize..20, pick in any::<prop::sample::Index>()) {
            let mut events = chain(n);
            let i = pick.index(n - 1);
            events.remove(i);
            prop_assert_eq!(
                verify(Anchor::GENESIS, &events),
                Err(ChainBreak::Missing { after: i as u64, next: i as u64 + 2 })
            );
            let message = verify(Anchor::GENESIS, &events).unwrap_err().to_string();
            let expected = format!("audit event {} is missing or out of place", i + 1);
            prop_assert!(message.starts_with(&expected), "{}", message);
        }

        #[test]
        fn reordered_events_are_caught(n in 2usize..20, pick in any::<prop::sample::Index>()) {
            let mut events = chain(n);
            let i = pick.index(n - 1);
            events.swap(i, i + 1);
            // The first event out of place is named: i + 1 is not where it belongs.
            prop_assert_eq!(
                verify(Anchor::GENESIS, &events),
                Err(ChainBreak::Missing { after: i as u64, next: i as u64 + 2 })
            );
        }
    }

    #[test]
    fn a_rehashed_forgery_still_breaks_the_link() {
        let mut events = chain(4);
        events[1].actor = "intruder".into();
        events[1].hash = events[1].compute_hash();
        assert_eq!(
            verify(Anchor::GENESIS, &events),
            Err(ChainBreak::Unlinked {
                seq: 3,
                previous: 2
            })
        );
        assert_eq!(
            verify(Anchor::GENESIS, &events).unwrap_err().to_string(),
            "audit event 3 does not link to event 2 before it: event 2 was replaced, or events were removed and renumbered"
        );
    }

    #[test]
    fn a_pruned_chain_verifies_from_its_checkpoint() {
        let events = chain(6);
        let checkpoint = events[2].anchor();
        assert!(verify(checkpoint, &events[3..]).is_ok());
        assert!(verify(Anchor::GENESIS, &events[3..]).is_err());
    }

    #[test]
    fn the_streaming_verifier_checks_anchors() {
        let events = chain(6);
        let anchor = events[3].anchor();
        let mut verifier = ChainVerifier::new(Anchor::GENESIS, Some(anchor));
        for event in &events {
            verifier.push(event).unwrap();
        }
        assert_eq!(verifier.events(), 6);
        assert_eq!(verifier.finish(Some(anchor)), Ok(events[5].anchor()));

        let forged = Anchor {
            seq: 4,
            hash: events[2].hash,
        };
        let mut verifier = ChainVerifier::new(Anchor::GENESIS, Some(forged));
        for event in &events {
            verifier.push(event).unwrap();
        }
        assert_eq!(
            verifier.finish(Some(forged)),
            Err(ChainBreak::AnchorMismatch { seq: 4 })
        );

        let text = anchor.to_string();
        assert_eq!(text.parse::<Anchor>(), Ok(anchor));
        assert!("12".parse::<Anchor>().is_err());
        assert!("x:00".parse::<Anchor>().is_err());
    }

    #[test]
    fn anchors_catch_a_cut_tail() {
        let events = chain(6);
        let head = verify(Anchor::GENESIS, &events[..4]).unwrap();
        let anchor = events[5].anchor();
        assert_eq!(
            check_anchor(head, anchor, None),
            Err(ChainBreak::Truncated {
                head_seq: 4,
                anchor_seq: 6
            })
        );
        let full = verify(Anchor::GENESIS, &events).unwrap();
        assert_eq!(check_anchor(full, anchor, Some(events[5].hash)), Ok(()));
        assert_eq!(
            check_anchor(full, anchor, Some(events[4].hash)),
            Err(ChainBreak::AnchorMismatch { seq: 6 })
        );
    }
}
