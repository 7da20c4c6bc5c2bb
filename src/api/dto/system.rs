//! The daemon itself on the wire: health, readiness, the keyring and
//! rotation, pages of the audit log.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::schema::{
    Schema, array, boolean, count, described, nullable_string, nullable_words, pattern, record,
    reference, reference_to, string, words,
};
use crate::audit::AuditEvent;
use crate::config::TargetKind;
use crate::model::word_enum;
use crate::rotation::RotationState;
use crate::store::StorageFault;

/// `GET /healthz`.
#[derive(Debug, Serialize, Deserialize)]
pub struct HealthDto {
    /// Always `ok`: the process answers.
    pub status: String,
}

word_enum!(
    /// Whether the daemon is ready (`/readyz` answers 200) or not (503).
    Readiness, "readiness" {
        /// The database answers, writes reach the disk, the cluster
        /// target is reachable.
        Ready = "ready",
        /// One of those is not so.
        NotReady = "not_ready",
    }
);

word_enum!(
    /// Whether the database answers reads.
    DatabaseState, "database state" {
        /// It does.
        Ok = "ok",
        /// A read failed.
        Unavailable = "unavailable",
    }
);

word_enum!(
    /// Whether writes reach the disk.
    StorageState, "storage state" {
        /// The last commit succeeded.
        Ok = "ok",
        /// Writes fail (`storage_fault` says why); reads are answered.
        Degraded = "degraded",
    }
);

word_enum!(
    /// What verifying the audit chain found.
    ChainState, "audit chain state" {
        /// Every event up to the newest verified.
        Verified = "verified",
        /// A backlog appended since the last verified position is being
        /// checked (after a start).
        Verifying = "verifying",
        /// An event does not match the chain.
        Broken = "broken",
    }
);

/// `GET /readyz` (200 when ready, else 503 with the same shape).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadyDto {
    /// `ready` or `not_ready`.
    pub status: Readiness,
    /// Serving, but without a master key or with a broken audit chain.
    pub degraded: bool,
    /// `ok` or `unavailable`.
    pub database: DatabaseState,
    /// `ok` or `degraded`.
    pub storage: StorageState,
    /// Why storage is degraded (`null` while it is not).
    pub storage_fault: Option<StorageFault>,
    /// The keyring.
    pub keyring: ReadyKeyringDto,
    /// The audit chain.
    pub audit: ReadyAuditDto,
    /// The cluster target.
    pub cluster: ReadyClusterDto,
}

/// The keyring part of `/readyz`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadyKeyringDto {
    /// The active key id.
    pub active: Option<String>,
    /// Keys loaded.
    pub keys: usize,
    /// No key loaded.
    pub degraded: bool,
}

/// The audit part of `/readyz`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadyAuditDto {
    /// `verified`, `verifying` or `broken`.
    pub chain: ChainState,
    /// The first broken event, when broken.
    pub error: Option<String>,
}

/// The cluster part of `/readyz`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadyClusterDto {
    /// `kubernetes` or `manifests`.
    pub target: TargetKind,
    /// Whether it answered.
    pub reachable: bool,
    /// Why not.
    pub error: Option<String>,
}

/// `GET /v1/keys`: the keyring and the rotation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeysDto {
    /// The active key id.
    pub active: Option<String>,
    /// No key loaded.
    pub degraded: bool,
    /// Every key loaded or needed by records, by id.
    pub keys: Vec<KeyStatusDto>,
    /// The re-sealing job.
    pub rotation: RotationStatusDto,
    /// Tenant data-key rotations in progress, by tenant.
    pub data_key_rotations: Vec<DataKeyRotationDto>,
}

/// A tenant data-key rotation in progress (`GET /v1/keys`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataKeyRotationDto {
    /// The tenant.
    pub tenant_id: String,
    /// Its current data key, which values move under.
    pub data_key_id: String,
    /// Values (live and kept versions) still under older data keys.
    pub remaining: u64,
}

/// One key of `GET /v1/keys`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyStatusDto {
    /// Key id.
    pub id: String,
    /// Its file is loaded.
    pub present: bool,
    /// Records sealed under it.
    pub records: u64,
    /// Not active and no record needs it.
    pub safe_to_remove: bool,
}

/// The rotation part of `GET /v1/keys`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RotationStatusDto {
    /// `idle`, `running` or `blocked_missing_key`.
    pub state: RotationState,
    /// Records not yet under the active key.
    pub remaining: u64,
    /// Per missing key, the records that wait for it.
    pub waiting_for: BTreeMap<String, u64>,
}

/// `GET /v1/audit-events`: a page of the chain. Events go out in their
/// chained form (`crate::audit::AuditEvent`), the form their hashes cover,
/// so a reader can check the links.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditPageDto {
    /// Oldest first.
    pub events: Vec<AuditEvent>,
    /// Pass as `after` to read on; `null` at the end of the log.
    pub next_after: Option<u64>,
}

impl HealthDto {
    /// Its schema (inline in the document).
    pub fn schema() -> Value {
        record([("status", json!({ "const": "ok" }))])
    }
}

impl Schema for ReadyDto {
    const NAME: &'static str = "Ready";

    fn schema() -> Value {
        record([
            ("status", words::<Readiness>()),
            (
                "degraded",
                described(
                    boolean(),
                    "serving, but no master key is loaded or the audit chain is broken",
                ),
            ),
            ("database", words::<DatabaseState>()),
            (
                "storage",
                described(
                    words::<StorageState>(),
                    "`degraded` while writes fail (reads are still answered); heals by itself",
                ),
            ),
            ("storage_fault", nullable_words::<StorageFault>()),
            (
                "keyring",
                record([
                    ("active", nullable_string()),
                    ("keys", count()),
                    ("degraded", boolean()),
                ]),
            ),
            (
                "audit",
                record([
                    (
                        "chain",
                        described(
                            words::<ChainState>(),
                            "what verifying the events appended since the last verified position found (at start and every audit.anchor_interval); `verifying` while a long backlog is checked after start",
                        ),
                    ),
                    ("error", nullable_string()),
                ]),
            ),
            (
                "cluster",
                record([
                    ("target", words::<TargetKind>()),
                    ("reachable", boolean()),
                    ("error", nullable_string()),
                ]),
            ),
        ])
    }
}

impl Schema for KeysDto {
    const NAME: &'static str = "Keyring";

    fn schema() -> Value {
        record([
            ("active", nullable_string()),
            ("degraded", boolean()),
            ("keys", array(reference_to::<KeyStatusDto>())),
            (
                "rotation",
                record([
                    ("state", words::<RotationState>()),
                    ("remaining", count()),
                    (
                        "waiting_for",
                        json!({
                            "type": "object",
                            "propertyNames": reference("KeyId"),
                            "additionalProperties": count(),
                            "description": "per master key id that is not loaded, how many records wait for it (records that do not open under a loaded key are counted under that key); empty unless `state` is `blocked_missing_key`",
                        }),
                    ),
                ]),
            ),
            (
                "data_key_rotations",
                described(
                    array(reference_to::<DataKeyRotationDto>()),
                    "tenant data-key rotations whose background re-seal is not finished (`POST /v1/tenants/{tenant_id}/rotate-data-key`)",
                ),
            ),
        ])
    }
}

impl Schema for DataKeyRotationDto {
    const NAME: &'static str = "DataKeyRotation";

    fn schema() -> Value {
        record([
            ("tenant_id", reference("ResourceId")),
            ("data_key_id", pattern("^[0-9a-f]{32}$")),
            ("remaining", count()),
        ])
    }
}

impl Schema for KeyStatusDto {
    const NAME: &'static str = "KeyStatus";

    fn schema() -> Value {
        record([
            ("id", reference("KeyId")),
            ("present", boolean()),
            ("records", count()),
            ("safe_to_remove", boolean()),
        ])
    }
}

impl Schema for AuditEvent {
    const NAME: &'static str = "AuditEvent";

    fn schema() -> Value {
        record([
            ("seq", json!({ "type": "integer", "minimum": 1 })),
            ("time", reference("Timestamp")),
            ("type", string()),
            ("actor", string()),
            ("tenant_id", nullable_string()),
            ("app_id", nullable_string()),
            (
                "data",
                json!({ "type": "object", "description": "names, counts and reasons; never a value" }),
            ),
            ("prev_hash", reference("Hash")),
            ("hash", reference("Hash")),
        ])
    }
}

impl Schema for AuditPageDto {
    const NAME: &'static str = "AuditPage";

    fn schema() -> Value {
        record([
            ("events", array(reference_to::<AuditEvent>())),
            (
                "next_after",
                json!({ "type": ["integer", "null"], "minimum": 1, "description": "`after` of the next page; null at the end" }),
            ),
        ])
    }
}
