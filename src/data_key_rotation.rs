//! The background half of a tenant data-key rotation (SPEC §11.4): once
//! `POST /v1/tenants/{id}/rotate-data-key` made a new current data key,
//! every value of the tenant and its apps (live records and kept versions)
//! still sealed under an older data key is sealed again under the current
//! one ([`crate::reseal_pipeline`], paced so deploys keep their share), and
//! each older key's wrap is deleted once no value needs it
//! (`tenant.data_key_retired`).
//!
//! The work left is read from the store, never remembered: a tenant with
//! more than one wrap has a rotation to finish, and its values under a
//! non-current data key are what is left, so a restart simply resumes. A
//! wrap is deleted only when one read snapshot, in which it was not
//! current, shows no value under it: the store refuses values freshly
//! sealed under a non-current key (`store::data_keys`), so none can appear
//! later. Values whose keys cannot be opened (a master key file missing)
//! stay, and so does their wrap.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::crypto::{DataKeyId, SharedKeyring};
use crate::model::TenantId;
use crate::reseal_pipeline::{self, Pace, PassReport};
use crate::shutdown::Shutdown;
use crate::store::data_keys::{DataKeyInfo, TenantWraps};
use crate::store::reseal::ResealScope;
use crate::store::{Store, StoreError};

/// How a data-key rotation shares the store: smaller writes than the
/// master-key move, and while clients write, a rest as long as what the
/// job's last batch cost (measured in `docs/performance.md`).
pub const PACE: Pace = Pace {
    max_write: 1024,
    rest_percent: 100,
};

/// The actor of the job's audit events.
const ACTOR: &str = "system:data-key-rotation";

/// One tenant's rotation in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resealing {
    /// The current data key, which values move under.
    pub data_key: DataKeyId,
    /// Values (live and kept) still under older data keys.
    pub remaining: u64,
}

/// Rotations in progress, by tenant, as the job last counted them; read by
/// `GET /v1/tenants/{id}` and `GET /v1/keys` through [`resealing`].
#[derive(Default)]
pub struct Progress(Mutex<BTreeMap<TenantId, Resealing>>);

impl Progress {
    /// Every rotation the job knows of.
    pub fn all(&self) -> BTreeMap<TenantId, Resealing> {
        self.lock().clone()
    }

    /// Records the count of a rotation (the API after making a new key, the
    /// job after each count).
    pub fn set(&self, tenant: &TenantId, resealing: Resealing) {
        self.lock().insert(tenant.clone(), resealing);
    }

    fn of(&self, tenant: &TenantId) -> Option<Resealing> {
        self.lock().get(tenant).cloned()
    }

    fn moved(&self, tenant: &TenantId, count: u64) {
        if let Some(resealing) = self.lock().get_mut(tenant) {
            resealing.remaining = resealing.remaining.saturating_sub(count);
        }
    }

    fn remove(&self, tenant: &TenantId) {
        self.lock().remove(tenant);
    }

    /// Forgets tenants that no longer have a rotation to finish.
    fn retain(&self, tenants: &[TenantId]) {
        self.lock().retain(|tenant, _| tenants.contains(tenant));
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<TenantId, Resealing>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// How far the rotation of `tenant`, whose current data key is `info`,
/// is: `None` when it holds no older key; else the values left, as the job
/// counted them or, before it has, counted now.
pub async fn resealing(
    store: &Arc<Store>,
    progress: &Progress,
    tenant: &TenantId,
    info: &DataKeyInfo,
) -> Result<Option<Resealing>, StoreError> {
    if info.older == 0 {
        return Ok(None);
    }
    if let Some(known) = progress.of(tenant).filter(|r| r.data_key == info.id) {
        return Ok(Some(known));
    }
    let (wraps, usage) = tenant_use(store, tenant).await?;
    Ok(count(&wraps, &usage))
}

/// Every rotation not finished (read from the store), with its progress.
pub async fn in_progress(
    store: &Arc<Store>,
    progress: &Progress,
) -> Result<Vec<(TenantId, Resealing)>, StoreError> {
    let tenants = store
        .read_async(|r| {
            let mut out = Vec::new();
            for tenant in r.tenants_with_older_data_keys()? {
                if let Some(info) = r.data_key_info(&tenant)? {
                    out.push((tenant, info));
                }
            }
            Ok(out)
        })
        .await?;
    let mut out = Vec::with_capacity(tenants.len());
    for (tenant, info) in tenants {
        if let Some(resealing) = resealing(store, progress, &tenant, &info).await? {
            out.push((tenant, resealing));
        }
    }
    Ok(out)
}

/// What one stage over every tenant did.
#[derive(Debug, Default)]
pub struct StageReport {
    /// Values re-sealed.
    pub resealed: u64,
    /// Older wraps deleted.
    pub retired: u64,
    /// Values left because a master key is missing, per key id.
    pub waiting_for: BTreeMap<String, u64>,
    /// Values left although their keys opened (a concurrent write or a
    /// rotation changed them under the job): another stage is due.
    pub changed: u64,
}

/// Finishes the rotation of every tenant that holds older data keys.
pub async fn run(
    store: &Arc<Store>,
    keyring: &SharedKeyring,
    shutdown: &Shutdown,
    progress: &Progress,
    report: &mut PassReport,
) -> Result<StageReport, StoreError> {
    let mut stage = StageReport::default();
    let tenants = store
        .read_async(|r| r.tenants_with_older_data_keys())
        .await?;
    progress.retain(&tenants);
    for tenant in tenants {
        if shutdown.is_shutdown() {
            break;
        }
        reseal_tenant(
            store, keyring, shutdown, progress, &tenant, report, &mut stage,
        )
        .await?;
    }
    Ok(stage)
}

/// Moves one tenant's values under its current data key and retires the
/// older keys nothing needs any more.
async fn reseal_tenant(
    store: &Arc<Store>,
    keyring: &SharedKeyring,
    shutdown: &Shutdown,
    progress: &Progress,
    tenant: &TenantId,
    report: &mut PassReport,
    stage: &mut StageReport,
) -> Result<(), StoreError> {
    let snapshot = keyring.snapshot();
    let Some(fingerprint) = snapshot.active().and_then(|id| snapshot.fingerprint(id)) else {
        // Nothing opens without a master key; the job runs again when one
        // is loaded.
        return Ok(());
    };
    let (wraps, usage) = tenant_use(store, tenant).await?;
    let Some(before) = count(&wraps, &usage) else {
        progress.remove(tenant);
        return Ok(());
    };
    progress.set(tenant, before.clone());
    let mut waiting = 0u64;
    let (wraps, usage) = if before.remaining == 0 {
        (wraps, usage)
    } else {
        tracing::info!(tenant_id = %tenant, data_key_id = %before.data_key, remaining = before.remaining, "re-sealing a tenant's values under its new data key");
        let scope = ResealScope::OlderDataKeys {
            tenant: tenant.clone(),
            current: before.data_key.clone(),
        };
        let moved = reseal_pipeline::run(
            store,
            keyring,
            &snapshot,
            fingerprint,
            scope,
            PACE,
            report,
            || shutdown.is_shutdown(),
            |count| progress.moved(tenant, count),
        )
        .await?;
        stage.resealed += moved.resealed;
        waiting = moved.waiting_for.values().sum();
        for (key_id, count) in &moved.waiting_for {
            *stage.waiting_for.entry(key_id.clone()).or_default() += count;
        }
        if moved.stopped {
            return Ok(());
        }
        tenant_use(store, tenant).await?
    };
    // In this snapshot no older key is current, so one no value uses now
    // is used by none later.
    let unused: Vec<DataKeyId> = older(&wraps)
        .filter(|id| !usage.contains_key(*id))
        .cloned()
        .collect();
    if !unused.is_empty() {
        let owner = tenant.clone();
        let retired = store
            .write_async(move |w| w.retire_data_keys(&owner, &unused, ACTOR))
            .await?;
        tracing::info!(tenant_id = %tenant, retired = retired.len(), "older tenant data keys retired");
        stage.retired += retired.len() as u64;
    }
    match count(&wraps, &usage) {
        Some(after) if after.remaining > 0 => {
            stage.changed += after.remaining.saturating_sub(waiting);
            progress.set(tenant, after);
        }
        _ => progress.remove(tenant),
    }
    Ok(())
}

/// The wraps of `tenant` and how many values each data key seals, in one
/// snapshot.
async fn tenant_use(
    store: &Arc<Store>,
    tenant: &TenantId,
) -> Result<(TenantWraps, BTreeMap<DataKeyId, u64>), StoreError> {
    let lookup = tenant.clone();
    store
        .read_async(move |r| Ok((r.data_keys(&lookup)?, r.data_key_use(&lookup)?)))
        .await
}

/// The ids of the older (not current) wraps.
fn older(wraps: &TenantWraps) -> impl Iterator<Item = &DataKeyId> {
    wraps[..wraps.len().saturating_sub(1)]
        .iter()
        .map(|(id, _)| id)
}

/// The rotation a snapshot shows: `None` without older keys.
fn count(wraps: &TenantWraps, usage: &BTreeMap<DataKeyId, u64>) -> Option<Resealing> {
    let (current, _) = wraps.last()?;
    if wraps.len() < 2 {
        return None;
    }
    let remaining = older(wraps).filter_map(|id| usage.get(id)).sum();
    Some(Resealing {
        data_key: current.clone(),
        remaining,
    })
}
