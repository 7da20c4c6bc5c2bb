//! Health, readiness, metrics, the OpenAPI document and the keyring status.

use std::collections::{BTreeMap, BTreeSet};

use hyper::StatusCode;

use crate::api::dto::{
    ChainState, DataKeyRotationDto, DatabaseState, HealthDto, KeyStatusDto, KeysDto, Readiness,
    ReadyAuditDto, ReadyClusterDto, ReadyDto, ReadyKeyringDto, RotationStatusDto, StorageState,
};
use crate::api::metrics::Gauges;
use crate::api::problem::ApiError;
use crate::api::{Call, Reply, openapi};
use crate::data_key_rotation;
use crate::rotation::RotationState;
use crate::store::StorageHealth;

pub fn healthz() -> Result<Reply, ApiError> {
    Ok(Reply::ok(&HealthDto {
        status: "ok".to_owned(),
    }))
}

/// Ready when the database answers, writes reach the disk and the cluster
/// target is reachable. No master key and a broken audit chain are
/// degraded states: still ready (the daemon serves), flagged `degraded`.
pub async fn readyz(call: Call) -> Result<Reply, ApiError> {
    let database = call.state.store.read_async(|r| r.audit_head()).await;
    let storage = call.state.store.health();
    let keyring = call.state.keyring.snapshot();
    let chain_break = call.state.audit_chain.broken();
    let chain = match (&chain_break, call.state.audit_chain.behind()) {
        (Some(_), _) => ChainState::Broken,
        (None, true) => ChainState::Verifying,
        (None, false) => ChainState::Verified,
    };
    let cluster = call.state.deployer.cluster().clone();
    let reachable = cluster.check().await;
    let ready = database.is_ok() && storage == StorageHealth::Healthy && reachable.is_ok();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let storage_fault = match storage {
        StorageHealth::Healthy => None,
        StorageHealth::Degraded(fault) => Some(fault),
    };
    let ready_dto = ReadyDto {
        status: if ready {
            Readiness::Ready
        } else {
            Readiness::NotReady
        },
        degraded: keyring.is_empty() || chain_break.is_some(),
        database: if database.is_ok() {
            DatabaseState::Ok
        } else {
            DatabaseState::Unavailable
        },
        storage: if storage_fault.is_none() {
            StorageState::Ok
        } else {
            StorageState::Degraded
        },
        storage_fault,
        keyring: ReadyKeyringDto {
            active: keyring.active().map(ToString::to_string),
            keys: keyring.len(),
            degraded: keyring.is_empty(),
        },
        audit: ReadyAuditDto {
            chain,
            error: chain_break,
        },
        cluster: ReadyClusterDto {
            target: cluster.kind(),
            reachable: reachable.is_ok(),
            error: reachable.err().map(|e| e.to_string()),
        },
    };
    Ok(Reply::json_sorted(status, &ready_dto))
}

pub async fn metrics(call: Call) -> Result<Reply, ApiError> {
    let usage = call.state.store.read_async(|r| r.key_usage()).await?;
    let keyring = call.state.keyring.snapshot();
    let active = keyring.active().map(ToString::to_string);
    let rotation_remaining = usage
        .iter()
        .filter(|(id, _)| Some(*id) != active.as_ref())
        .map(|(_, n)| n)
        .sum();
    let text = call.state.metrics.render(&Gauges {
        records_per_key: usage,
        rotation_remaining,
        commits: call.state.store.commit_stats(),
        keyring_degraded: keyring.is_empty(),
        key_reload_failures: call.state.keyring.reload_failures(),
        connections: call.state.connections.stats(),
        storage_degraded: call.state.store.health() != StorageHealth::Healthy,
        redeploy_queue: call.state.redeploys.queued() as u64,
    });
    Ok(Reply::raw(
        StatusCode::OK,
        "text/plain; version=0.0.4",
        text,
    ))
}

pub fn openapi() -> Result<Reply, ApiError> {
    Ok(Reply::ok(&openapi::document()))
}

/// The keyring: every key that is loaded or that records need, and the
/// rotation: its state, the records not yet under the active key, and per
/// missing key how many records wait for it (`waiting_for`), so the
/// operator knows which key file to put back.
pub async fn keys(call: Call) -> Result<Reply, ApiError> {
    let (usage, known) = call
        .state
        .store
        .read_async(|r| Ok((r.key_usage()?, r.known_fingerprints()?)))
        .await?;
    let keyring = call.state.keyring.snapshot();
    let active = keyring.active().map(ToString::to_string);
    let ids: BTreeSet<String> = keyring
        .ids()
        .map(ToString::to_string)
        .chain(usage.keys().cloned())
        .chain(known.keys().map(ToString::to_string))
        .collect();
    let mut remaining = 0u64;
    let mut waiting_for: BTreeMap<&str, u64> = BTreeMap::new();
    let keys: Vec<KeyStatusDto> = ids
        .iter()
        .map(|id| {
            let present = keyring.ids().any(|k| k.as_str() == id);
            let records = usage.get(id).copied().unwrap_or(0);
            if Some(id) != active.as_ref() {
                remaining += records;
                if records > 0 && !present {
                    waiting_for.insert(id, records);
                }
            }
            KeyStatusDto {
                id: id.clone(),
                present,
                records,
                safe_to_remove: records == 0 && Some(id) != active.as_ref(),
            }
        })
        .collect();
    // The job also counts records that do not open under a key that is
    // present (damaged values); it reports them under that key.
    let job = call.state.rotation.status();
    if remaining > 0 && job.state == RotationState::BlockedMissingKey {
        for (id, records) in &job.waiting_for {
            waiting_for.entry(id.as_str()).or_insert(*records);
        }
    }
    let state = if remaining == 0 {
        RotationState::Idle
    } else if !waiting_for.is_empty() {
        RotationState::BlockedMissingKey
    } else {
        RotationState::Running
    };
    let data_key_rotations =
        data_key_rotation::in_progress(&call.state.store, call.state.rotation.data_keys())
            .await?
            .into_iter()
            .map(|(tenant, resealing)| DataKeyRotationDto {
                tenant_id: tenant.to_string(),
                data_key_id: resealing.data_key.to_string(),
                remaining: resealing.remaining,
            })
            .collect();
    Ok(Reply::ok_sorted(&KeysDto {
        data_key_rotations,
        active,
        degraded: keyring.is_empty(),
        keys,
        rotation: RotationStatusDto {
            state,
            remaining,
            waiting_for: waiting_for
                .into_iter()
                .map(|(id, records)| (id.to_owned(), records))
                .collect(),
        },
    }))
}
