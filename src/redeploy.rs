//! Automatic redeploys (SPEC §11.2): runs what secret writes queued in the
//! store (`store::redeploys`), so a changed value reaches the pods of an
//! app that opted in without anyone deploying by hand.
//!
//! - **Debounce per tenant**: a burst of writes to one tenant's secrets is
//!   one rollout. The tenant's queued apps run once
//!   `deploy.auto_redeploy_quiet` passed without a new change, and never
//!   later than `deploy.auto_redeploy_max_delay` after the first one
//!   ([`Debounce`], timed with tokio's clock so tests run it paused).
//! - **Same deploy again**: the last successful deploy's image, replicas and
//!   port, trigger `secret_change`, actor `system:auto-redeploy`, audited
//!   like any deploy. Skipped (and dequeued) when the secrets hash did not
//!   change, when the app has no successful deploy any more, or when its
//!   Deployment is paused (with a warning in the log and the audit log).
//!   An app a rollback pinned waits, queued, until it is unpinned.
//! - **At most `deploy.auto_redeploy_concurrency` at once**; a failure
//!   stays queued and is retried with backoff (1 s doubling to 5 min); the
//!   queue and its failures show in `GET /v1/apps/{id}`, `doctor` and
//!   `exsec_auto_redeploy_queue`.
//! - **Durable**: the queue is written with the change, so a restart
//!   resumes exactly what was queued (after one quiet period) — never a
//!   comparison of every app, never a storm.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::time::Instant;

use crate::audit::{NewEvent, event};
use crate::deploy::{DeployError, DeployRequest, DeployResult, Deployer};
use crate::error_chain::chain;
use crate::model::DeployTrigger;
use crate::model::{AppId, DeployStatus, ImageRef, Port, Replicas, TenantId};
use crate::shutdown::Shutdown;
use crate::store::records::RedeployRecord;
use crate::store::{Store, StoreError};

/// The audit actor of automatic redeploys.
pub const ACTOR: &str = "system:auto-redeploy";

/// First retry delay after a failure; doubles per failure.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Longest retry delay.
const MAX_RETRY: Duration = Duration::from_secs(300);

/// The automatic-redeploy settings (`[deploy]`).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Wait without further changes to the tenant.
    pub quiet: Duration,
    /// Longest wait after the first change.
    pub max_delay: Duration,
    /// Most redeploys at once.
    pub concurrency: usize,
}

/// When each tenant's queued redeploys are due: `quiet` after its last
/// change, at most `max_delay` after its first.
#[derive(Debug)]
pub struct Debounce {
    quiet: Duration,
    max_delay: Duration,
    tenants: HashMap<TenantId, (Instant, Instant)>,
}

impl Debounce {
    /// No tenant waiting.
    pub fn new(quiet: Duration, max_delay: Duration) -> Debounce {
        Debounce {
            quiet,
            max_delay,
            tenants: HashMap::new(),
        }
    }

    /// A change to `tenant`'s secrets at `now`.
    pub fn changed(&mut self, tenant: &TenantId, now: Instant) {
        self.tenants
            .entry(tenant.clone())
            .and_modify(|(_, last)| *last = now)
            .or_insert((now, now));
    }

    /// When `tenant` is due, if it waits.
    pub fn due_at(&self, tenant: &TenantId) -> Option<Instant> {
        self.tenants
            .get(tenant)
            .map(|(first, last)| (*last + self.quiet).min(*first + self.max_delay))
    }

    /// The earliest time a tenant is due.
    pub fn next(&self) -> Option<Instant> {
        self.tenants.keys().filter_map(|t| self.due_at(t)).min()
    }

    /// The tenants due at `now`, no longer waiting.
    pub fn take_due(&mut self, now: Instant) -> Vec<TenantId> {
        let due: Vec<TenantId> = self
            .tenants
            .keys()
            .filter(|t| self.due_at(t).is_some_and(|at| at <= now))
            .cloned()
            .collect();
        for tenant in &due {
            self.tenants.remove(tenant);
        }
        due
    }

    /// Whether `tenant` waits.
    pub fn waits(&self, tenant: &TenantId) -> bool {
        self.tenants.contains_key(tenant)
    }
}

/// How one redeploy ended.
#[derive(Debug)]
enum Ended {
    /// Deployed (or skipped for good): dequeued unless changed meanwhile.
    Done,
    /// Failed: stays queued, retried.
    Failed(String),
}

/// The worker and what it knows; share it as `Arc<Redeployer>`.
pub struct Redeployer {
    store: Arc<Store>,
    deployer: Arc<Deployer>,
    settings: Settings,
    wake: Notify,
    queued: AtomicUsize,
}

impl Redeployer {
    /// A worker over the store's queue.
    pub fn new(store: Arc<Store>, deployer: Arc<Deployer>, settings: Settings) -> Redeployer {
        Redeployer {
            store,
            deployer,
            settings,
            wake: Notify::new(),
            queued: AtomicUsize::new(0),
        }
    }

    /// Tells the worker the queue may have changed (after a secret write).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Apps queued at the worker's last look (`exsec_auto_redeploy_queue`).
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Runs until `shutdown` fires: reads the queue at start and on every
    /// wake, starts each tenant's redeploys when its debounce is due, and
    /// retries failures with backoff.
    pub async fn run(self: Arc<Self>, mut shutdown: Shutdown) {
        let mut debounce = Debounce::new(self.settings.quiet, self.settings.max_delay);
        // Generation of each queued app already counted as a change.
        let mut seen: HashMap<AppId, u64> = HashMap::new();
        let mut running: HashSet<AppId> = HashSet::new();
        let mut retries: HashMap<AppId, (Instant, u32)> = HashMap::new();
        let limit = Arc::new(Semaphore::new(self.settings.concurrency));
        let (done, mut finished) = mpsc::unbounded_channel::<(AppId, u64, Ended)>();
        let mut queue = self.look(&mut seen, &mut debounce).await;
        loop {
            let next = debounce
                .next()
                .into_iter()
                .chain(retries.values().map(|(at, _)| *at))
                .min();
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shutdown.recv() => return,
                () = self.wake.notified() => {
                    queue = self.look(&mut seen, &mut debounce).await;
                    continue;
                }
                Some((app_id, generation, ended)) = finished.recv() => {
                    running.remove(&app_id);
                    self.ended(&app_id, generation, ended, &mut retries).await;
                    queue = self.look(&mut seen, &mut debounce).await;
                    continue;
                }
                () = sleep => {}
            }
            let now = Instant::now();
            let due_tenants = debounce.take_due(now);
            let due_retries: Vec<AppId> = retries
                .iter()
                .filter(|(_, (at, _))| *at <= now)
                .map(|(app, _)| app.clone())
                .collect();
            for (app_id, record) in &queue {
                let due = due_tenants.contains(&record.tenant_id)
                    || (due_retries.contains(app_id) && !debounce.waits(&record.tenant_id));
                if !due || running.contains(app_id) {
                    continue;
                }
                retries.remove(app_id);
                running.insert(app_id.clone());
                let worker = self.clone();
                let limit = limit.clone();
                let done = done.clone();
                let (app_id, generation) = (app_id.clone(), record.generation);
                tokio::spawn(async move {
                    let Ok(_slot) = limit.acquire_owned().await else {
                        return;
                    };
                    let ended = worker.redeploy(&app_id).await;
                    let _ = done.send((app_id, generation, ended));
                });
            }
        }
    }

    /// Reads the queue; an app whose generation is new counts as a change
    /// of its tenant now.
    async fn look(
        &self,
        seen: &mut HashMap<AppId, u64>,
        debounce: &mut Debounce,
    ) -> Vec<(AppId, RedeployRecord)> {
        let queue = match self.store.read_async(|r| r.redeploy_queue()).await {
            Ok(queue) => queue,
            Err(error) => {
                tracing::warn!(error = %chain(&error), "cannot read the automatic-redeploy queue; retrying at the next change");
                return Vec::new();
            }
        };
        let now = Instant::now();
        seen.retain(|app, _| queue.iter().any(|(queued, _)| queued == app));
        for (app_id, record) in &queue {
            if seen.insert(app_id.clone(), record.generation) != Some(record.generation) {
                debounce.changed(&record.tenant_id, now);
            }
        }
        self.queued.store(queue.len(), Ordering::Relaxed);
        queue
    }

    /// Files how a redeploy ended.
    async fn ended(
        &self,
        app_id: &AppId,
        generation: u64,
        ended: Ended,
        retries: &mut HashMap<AppId, (Instant, u32)>,
    ) {
        let app = app_id.clone();
        let written = match ended {
            Ended::Done => {
                retries.remove(app_id);
                self.store
                    .write_async(move |w| w.finish_redeploy(&app, generation).map(drop))
                    .await
            }
            Ended::Failed(error) => {
                let attempts = retries.get(app_id).map_or(0, |(_, n)| *n) + 1;
                let wait = FIRST_RETRY
                    .saturating_mul(1 << attempts.min(16).saturating_sub(1))
                    .min(MAX_RETRY);
                retries.insert(app_id.clone(), (Instant::now() + wait, attempts));
                tracing::warn!(app_id = %app_id, attempts, retry_in = ?wait, error = %error, "automatic redeploy failed; it stays queued");
                self.store
                    .write_async(move |w| w.redeploy_failed(&app, &error).map(drop))
                    .await
            }
        };
        if let Err(error) = written {
            tracing::warn!(app_id = %app_id, error = %chain(&error), "cannot update the automatic-redeploy queue");
        }
    }

    /// Redeploys one app as its last successful deploy did.
    async fn redeploy(&self, app_id: &AppId) -> Ended {
        match self.try_redeploy(app_id).await {
            Ok(ended) => ended,
            Err(error) => Ended::Failed(chain(&error).to_string()),
        }
    }

    async fn try_redeploy(&self, app_id: &AppId) -> Result<Ended, StoreError> {
        let lookup = app_id.clone();
        let (app, last) = self
            .store
            .read_async(move |r| Ok((r.app(&lookup)?, r.last_succeeded_deploy(&lookup)?)))
            .await?;
        let (Some(app), Some(last)) = (app, last) else {
            // Deleted, or never deployed: nothing to repeat.
            return Ok(Ended::Done);
        };
        if !app.auto_redeploy {
            return Ok(Ended::Done);
        }
        // A rollback pinned the app: the change waits (queued, retried)
        // until a normal deploy or an unpin.
        if let Some(pin) = &app.pinned_to {
            return Ok(Ended::Failed(format!(
                "app {app_id} is pinned to {pin} by a rollback; `exsec unpin {app_id}` or a deploy lets the change roll out"
            )));
        }
        let now = self.deployer.current_secrets_hash(app_id).await?;
        if now.is_some() && now == last.secrets_hash {
            tracing::info!(app_id = %app_id, "automatic redeploy skipped: the secrets hash did not change");
            return Ok(Ended::Done);
        }
        if self.paused(app_id).await {
            tracing::warn!(app_id = %app_id, "automatic redeploy skipped: the Deployment is paused; deploy by hand once it is resumed");
            let skipped = NewEvent::new(event::DEPLOY_SKIPPED, ACTOR)
                .tenant(app.tenant_id.as_str())
                .app(app_id.as_str())
                .with("reason", "deployment_paused");
            self.store
                .write_async(move |w| w.audit(skipped.clone()).map(drop))
                .await?;
            return Ok(Ended::Done);
        }
        let (Ok(image_ref), Ok(replicas), Ok(port)) = (
            ImageRef::try_from(last.image_ref.clone()),
            last.replicas
                .map(|r| Replicas::try_from(i64::from(r)))
                .transpose(),
            last.port.map(|p| Port::try_from(i64::from(p))).transpose(),
        ) else {
            return Ok(Ended::Failed(format!(
                "the last successful deploy {} cannot be repeated",
                last.deploy_id
            )));
        };
        let request = DeployRequest {
            app_id: app_id.clone(),
            tenant_id: Some(app.tenant_id.clone()),
            app,
            body_app_id: None,
            image_ref,
            replicas,
            port,
            dry_run: false,
            restart: false,
            trigger: DeployTrigger::SecretChange,
            rollback_to: None,
            idempotency: None,
            actor: ACTOR.to_owned(),
        };
        match self.deployer.deploy(request).await {
            Ok(DeployResult::Done(record)) if record.status == DeployStatus::Succeeded => {
                tracing::info!(app_id = %app_id, deploy_id = %record.deploy_id, "automatic redeploy done");
                Ok(Ended::Done)
            }
            Ok(DeployResult::Done(record)) => {
                Ok(Ended::Failed(record.error.clone().unwrap_or_else(|| {
                    format!("deploy {} failed", record.deploy_id)
                })))
            }
            Ok(DeployResult::DryRun(_)) => Ok(Ended::Done),
            Err(DeployError::Store(error)) => Err(error),
            Err(error) => Ok(Ended::Failed(chain(&error).to_string())),
        }
    }

    /// Whether the app's Deployment is paused (unknown counts as not).
    async fn paused(&self, app_id: &AppId) -> bool {
        let cluster = self.deployer.cluster().clone();
        let budget = self.deployer.settings().timeout;
        matches!(
            tokio::time::timeout(budget, cluster.app_objects(app_id)).await,
            Ok(Ok(objects)) if objects.deployment.as_ref().is_some_and(|d| d.paused)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(id: &str) -> TenantId {
        TenantId::parse(id).unwrap()
    }

    /// A burst of changes is one wait of `quiet` after the last of them;
    /// an endless burst still runs `max_delay` after the first.
    #[tokio::test(start_paused = true)]
    async fn a_burst_waits_for_quiet_and_never_past_the_longest_delay() {
        let quiet = Duration::from_secs(10);
        let mut debounce = Debounce::new(quiet, Duration::from_secs(60));
        let acme = tenant("acme");
        let start = Instant::now();
        // 50 changes in 2 s.
        for _ in 0..50 {
            debounce.changed(&acme, Instant::now());
            tokio::time::advance(Duration::from_millis(40)).await;
        }
        let last = Instant::now() - Duration::from_millis(40);
        assert_eq!(debounce.next(), Some(last + quiet));
        tokio::time::advance(quiet - Duration::from_millis(100)).await;
        assert!(debounce.take_due(Instant::now()).is_empty());
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(debounce.take_due(Instant::now()), vec![acme.clone()]);
        assert_eq!(debounce.next(), None, "one rollout per burst");

        // A change every 5 s forever: due 60 s after the first.
        let first = Instant::now();
        for _ in 0..20 {
            debounce.changed(&acme, Instant::now());
            assert!(
                debounce.take_due(Instant::now()).is_empty()
                    || Instant::now() >= first + Duration::from_secs(60)
            );
            tokio::time::advance(Duration::from_secs(5)).await;
            if Instant::now() >= first + Duration::from_secs(60) {
                break;
            }
        }
        assert_eq!(
            debounce.due_at(&acme),
            Some(first + Duration::from_secs(60))
        );
        assert_eq!(debounce.take_due(Instant::now()), vec![acme]);
        assert!(start < first);
    }

    /// Tenants wait independently.
    #[tokio::test(start_paused = true)]
    async fn tenants_are_debounced_apart() {
        let mut debounce = Debounce::new(Duration::from_secs(10), Duration::from_secs(60));
        debounce.changed(&tenant("acme"), Instant::now());
        tokio::time::advance(Duration::from_secs(6)).await;
        debounce.changed(&tenant("beta"), Instant::now());
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(debounce.take_due(Instant::now()), vec![tenant("acme")]);
        assert!(debounce.waits(&tenant("beta")));
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(debounce.take_due(Instant::now()), vec![tenant("beta")]);
    }
}
