//! Shared test helpers: a temporary store with a keyring, and ids.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use exsec::crypto::{
    CryptoError, DataKeyCache, Fingerprint, Keyring, MasterKey, SealedValue, SecretLocation,
    TenantKeys,
};
use exsec::model::{AppId, EnvKey, KeyId, Provider, Scope, SecretValue, TenantId};
use exsec::resolve::EffectiveSet;
use exsec::store::records::SecretRecord;
use exsec::store::{PutSecret, SecretLayout, Store, StoreOptions};
use tracing_subscriber::fmt::MakeWriter;

/// A store in a temporary directory plus a one-key keyring.
pub struct TestStore {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub keyring: Arc<Keyring>,
}

impl TestStore {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("exsec.redb"), options()).expect("open store");
        let keyring = Arc::new(Keyring::from_keys([(
            key_id("k1"),
            MasterKey::generate().expect("key"),
        )]));
        Self {
            dir,
            store,
            keyring,
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("exsec.redb")
    }

    /// The stored layout of app `id`: its tenant's defaults, its
    /// overrides and the tenant's data keys.
    pub fn layout(&self, id: &str) -> SecretLayout {
        let id = app(id);
        self.store
            .read(move |r| r.secret_layout(&id))
            .expect("read the layout")
            .expect("the app exists")
    }

    /// The effective set of a layout, opened with this store's keyring.
    pub fn resolve<'a>(&self, layout: &'a SecretLayout) -> EffectiveSet<'a> {
        let keys = shared_layout_keys(&self.keyring, layout);
        exsec::resolve::resolve(&layout.tenant, &layout.app, &keys)
    }

    /// Seals `value` for the location and builds the store write.
    pub fn sealed(&self, scope: &Scope, provider: &str, key: &str, value: &str) -> PutSecret {
        seal_with(&self.keyring, scope, provider, key, value)
    }
}

pub fn seal_with(
    keyring: &Keyring,
    scope: &Scope,
    provider: &str,
    key: &str,
    value: &str,
) -> PutSecret {
    let active = keyring.active().expect("an active key");
    let fingerprint = keyring.fingerprint(active).expect("fingerprint");
    put_sealed(
        scope,
        provider,
        key,
        value,
        fingerprint,
        |location, value| keyring.seal(location, value),
    )
}

/// The store write of `value` at the location, sealed by `seal` (under a
/// master key or under a tenant's data key) and recorded as written under
/// the master key `fingerprint` names.
pub fn put_sealed(
    scope: &Scope,
    provider: &str,
    key: &str,
    value: &str,
    fingerprint: Fingerprint,
    seal: impl FnOnce(&SecretLocation<'_>, &SecretValue) -> Result<SealedValue, CryptoError>,
) -> PutSecret {
    let provider = Provider::parse(provider).expect("provider");
    let key = EnvKey::parse(key).expect("key");
    let value = SecretValue::parse(value.to_owned()).expect("value");
    let location = SecretLocation {
        scope,
        provider: &provider,
        key: &key,
    };
    let sealed = seal(&location, &value).expect("seal");
    PutSecret {
        scope: scope.clone(),
        provider,
        key,
        sealed,
        fingerprint,
    }
}

/// Writes tenant `tenant_id`, its `apps` and the sealed `puts` in one
/// commit through the library (as `admin`, no daemon running).
pub fn write_tenant(store: &Store, tenant_id: &str, apps: Vec<String>, puts: Vec<PutSecret>) {
    let tenant = tenant(tenant_id);
    store
        .write(move |w| {
            w.put_tenant(&tenant, "admin")?;
            for app_id in &apps {
                w.put_app(&app(app_id), &tenant, Default::default(), "admin")?;
            }
            for put in &puts {
                w.put_secret(put.clone(), "admin")?;
            }
            Ok(())
        })
        .expect("write the tenant, its apps and values");
}

/// Every key file of a key directory, loaded as a keyring.
pub fn load_keys(keys_dir: &Path) -> Arc<Keyring> {
    let scan = exsec::crypto::scan_dir(keys_dir, false).expect("scan the key directory");
    Arc::new(Keyring::from_keys(scan.keys))
}

/// The keyring and the store of a stopped daemon's directory (`keys.d`,
/// `exsec.redb`).
pub fn open_offline(dir: &Path) -> (Arc<Keyring>, Store) {
    let store = Store::open(&dir.join("exsec.redb"), options()).expect("open the store");
    (load_keys(&dir.join("keys.d")), store)
}

/// The keyrings of a rotation from `k1` to `k2`: before, during (both
/// keys, `k2` active) and after (`k2` alone: what opens only if every
/// value was re-sealed).
pub struct Rotation {
    pub old: Keyring,
    pub rotated: Keyring,
    pub new_only: Keyring,
}

pub fn rotation_keyrings() -> Rotation {
    let mut old_bytes = [0u8; 32];
    let mut new_bytes = [0u8; 32];
    getrandom::fill(&mut old_bytes).expect("random");
    getrandom::fill(&mut new_bytes).expect("random");
    Rotation {
        old: Keyring::from_keys([(key_id("k1"), MasterKey::from_bytes(old_bytes))]),
        rotated: Keyring::from_keys([
            (key_id("k1"), MasterKey::from_bytes(old_bytes)),
            (key_id("k2"), MasterKey::from_bytes(new_bytes)),
        ]),
        new_only: Keyring::from_keys([(key_id("k2"), MasterKey::from_bytes(new_bytes))]),
    }
}

/// The keys an app's layout opens with under `keyring` (a fresh cache).
pub fn layout_keys(keyring: Keyring, layout: &SecretLayout) -> TenantKeys {
    DataKeyCache::default().tenant_keys(Arc::new(keyring), &layout.tenant_id, &layout.data_keys)
}

/// [`layout_keys`] with a shared keyring.
pub fn shared_layout_keys(keyring: &Arc<Keyring>, layout: &SecretLayout) -> TenantKeys {
    DataKeyCache::default().tenant_keys(Arc::clone(keyring), &layout.tenant_id, &layout.data_keys)
}

/// The plaintext of a stored record sealed either way, opened with
/// `keyring` and the data keys of the record's tenant in `store`.
pub fn open_stored(store: &Store, keyring: &Arc<Keyring>, record: &SecretRecord) -> String {
    let scope = record.scope.clone();
    let (tenant, wraps) = store
        .read(move |r| {
            let tenant = match &scope {
                Scope::Tenant(id) => id.clone(),
                Scope::App(id) => r.app(id)?.expect("the record's app").tenant_id,
            };
            let wraps = r.data_keys(&tenant)?;
            Ok((tenant, wraps))
        })
        .expect("read data keys");
    let location = record.location();
    DataKeyCache::default()
        .tenant_keys(Arc::clone(keyring), &tenant, &wraps)
        .open(&location, &record.sealed)
        .expect("open")
        .expose_secret()
        .to_owned()
}

/// The plaintext of a record sealed directly under a master key, opened
/// with `keyring`.
pub fn open_record(keyring: &Keyring, record: &SecretRecord) -> String {
    keyring
        .open(&record.location(), &record.sealed)
        .expect("open")
        .expose_secret()
        .to_owned()
}

pub fn options() -> StoreOptions {
    StoreOptions::with_cache_size(4 * 1024 * 1024)
}

pub fn tenant(id: &str) -> TenantId {
    TenantId::parse(id).expect("tenant id")
}

pub fn app(id: &str) -> AppId {
    AppId::parse(id).expect("app id")
}

pub fn key_id(id: &str) -> KeyId {
    KeyId::parse(id).expect("key id")
}

pub fn tenant_scope(id: &str) -> Scope {
    Scope::Tenant(tenant(id))
}

pub fn app_scope(id: &str) -> Scope {
    Scope::App(app(id))
}

/// Log output captured in memory: a `tracing` writer for tests that must
/// search every line for what must never be logged.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

/// Polls `probe` every 20 ms until it gives a value; fails the test after
/// [`crate::daemon::PATIENCE`] with `what` and the last observation.
pub async fn eventually<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let every = std::time::Duration::from_millis(20);
    eventually_within(what, crate::daemon::PATIENCE, every, probe).await
}

/// [`eventually`] with its own deadline (`limit`) and polling interval.
pub async fn eventually_within<T, F, Fut>(
    what: &str,
    limit: std::time::Duration,
    every: std::time::Duration,
    mut probe: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let last = match probe().await {
            Ok(value) => return value,
            Err(last) => last,
        };
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {limit:?}; last: {last}"
        );
        tokio::time::sleep(every).await;
    }
}
