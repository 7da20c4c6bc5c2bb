//! Deterministic crash points, as redb's own crash tests do them: the
//! store runs on an in-memory disk that loses power after its N-th write,
//! for every N a workload reaches. What the disk kept — everything synced,
//! plus (in the second pass) a seeded random subset of the writes not yet
//! synced, as a real disk may reorder them — is opened again as a file by
//! [`Store::open`] (redb's recovery), and every write the store
//! acknowledged must be there with its value, its version and its audit
//! event, and the chain must verify. The SIGKILL campaign
//! (`tests/integration/campaign`) covers the process; this covers every
//! point inside a commit, which a kill at a random moment almost never hits.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use redb::StorageBackend;

use super::{PutSecret, Store, StoreOptions};
use crate::crypto::{Keyring, MasterKey, SecretLocation};
use crate::model::{AppId, EnvKey, KeyId, Provider, Scope, SecretValue, TenantId};

/// Secret writes the workload tries, each its own commit.
const WRITES: u64 = 12;
/// Keys the writes cycle over (so some writes replace a value).
const KEYS: u64 = 3;

/// What the power cut keeps of the writes not synced yet.
#[derive(Debug, Clone, Copy)]
enum Unsynced {
    /// Nothing: the disk had not written them yet.
    Lost,
    /// A random subset (from this seed), in any order.
    Some(u64),
}

#[test]
fn every_acknowledged_write_survives_a_power_cut_at_every_write() {
    let keyring =
        Keyring::from_keys([(KeyId::parse("k1").unwrap(), MasterKey::generate().unwrap())]);
    let total = writes_of_a_full_run(&keyring);
    assert!(
        total > WRITES * 2,
        "{total} disk writes for {WRITES} commits"
    );
    println!(
        "{} crash points, each with unsynced writes lost and kept at random",
        total + 1
    );
    for budget in 0..=total {
        for unsynced in [Unsynced::Lost, Unsynced::Some(budget)] {
            crash_and_check(&keyring, budget, unsynced);
        }
    }
}

/// The disk writes of the whole workload without a crash.
fn writes_of_a_full_run(keyring: &Keyring) -> u64 {
    let disk = Disk::new();
    let store = store_on(&disk);
    disk.arm(u64::MAX);
    assert_eq!(run_workload(&store, keyring), WRITES);
    let writes = disk.lock().writes;
    drop(store);
    writes
}

/// Runs the workload until the power goes out after `budget` disk writes,
/// reboots, and checks what was acknowledged.
fn crash_and_check(keyring: &Keyring, budget: u64, unsynced: Unsynced) {
    let disk = Disk::new();
    let store = store_on(&disk);
    disk.arm(budget);
    let acknowledged = run_workload(&store, keyring);
    drop(store);
    let image = disk.reboot(unsynced);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exsec.redb");
    std::fs::write(&path, image).unwrap();
    let context = format!("power cut after disk write {budget} ({unsynced:?})");
    let store = Store::open(&path, options())
        .unwrap_or_else(|error| panic!("{context}: the file does not open: {error:?}"));
    let records = store.read(|r| r.secrets(&scope())).unwrap();
    for k in 0..KEYS {
        // Write n (1-based) went to key (n-1) % KEYS; the acknowledged
        // ones set this key's version to the number of them.
        let acked_for_key: Vec<u64> = (1..=acknowledged).filter(|n| (n - 1) % KEYS == k).collect();
        let in_flight = acknowledged + 1;
        let record = records.iter().find(|r| r.key.as_str() == key_name(k));
        let Some(record) = record else {
            assert!(acked_for_key.is_empty(), "{context}: key {k} lost");
            continue;
        };
        let (version, last) = match acked_for_key.last() {
            Some(&last) => (acked_for_key.len() as u64, last),
            None => (0, 0),
        };
        // The write in flight at the cut may have committed.
        let committed_late = in_flight <= WRITES && (in_flight - 1) % KEYS == k;
        let opened = open(keyring, record);
        if record.version == version + 1 && committed_late {
            assert_eq!(opened, value(in_flight), "{context}");
        } else {
            assert_eq!(record.version, version, "{context}: key {k}");
            assert_eq!(opened, value(last), "{context}: key {k}");
        }
    }
    let check = store.read(|r| r.verify_audit_chain(None)).unwrap();
    assert!(check.outcome.is_ok(), "{context}: {check:?}");
    let versions: u64 = records.iter().map(|r| r.version).sum();
    let set_up = store
        .read(|r| r.tenant(&TenantId::parse("acme").unwrap()))
        .unwrap()
        .is_some();
    // tenant.created and app.created (one commit), then one event per
    // committed write.
    let expected = if set_up { 2 } else { 0 } + versions;
    assert_eq!(check.events, expected, "{context}: {check:?}");
    // The rebooted file takes writes.
    store
        .write(|w| w.put_tenant(&TenantId::parse("after").unwrap(), "admin"))
        .unwrap();
}

/// Tenant and app, then [`WRITES`] secret writes; returns how many secret
/// writes were acknowledged before the first failure.
fn run_workload(store: &Store, keyring: &Keyring) -> u64 {
    let setup = store.write(|w| {
        let tenant = TenantId::parse("acme").unwrap();
        w.put_tenant(&tenant, "admin")?;
        w.put_app(
            &AppId::parse("web").unwrap(),
            &tenant,
            Default::default(),
            "admin",
        )
    });
    if setup.is_err() {
        return 0;
    }
    for n in 1..=WRITES {
        let put = sealed(keyring, (n - 1) % KEYS, n);
        if store
            .write(move |w| w.put_secret(put.clone(), "admin"))
            .is_err()
        {
            return n - 1;
        }
    }
    WRITES
}

fn scope() -> Scope {
    Scope::App(AppId::parse("web").unwrap())
}

fn key_name(k: u64) -> String {
    format!("KEY_{k}")
}

fn value(n: u64) -> String {
    format!("value-{n}")
}

fn sealed(keyring: &Keyring, k: u64, n: u64) -> PutSecret {
    let scope = scope();
    let provider = Provider::parse("p").unwrap();
    let key = EnvKey::parse(&key_name(k)).unwrap();
    let location = SecretLocation {
        scope: &scope,
        provider: &provider,
        key: &key,
    };
    let sealed = keyring
        .seal(&location, &SecretValue::parse(value(n)).unwrap())
        .unwrap();
    let fingerprint = keyring.fingerprint(&sealed.sealer_id()).unwrap();
    PutSecret {
        scope,
        provider,
        key,
        sealed,
        fingerprint,
    }
}

fn open(keyring: &Keyring, record: &super::records::SecretRecord) -> String {
    keyring
        .open(&record.location(), &record.sealed)
        .unwrap()
        .expose_secret()
        .to_owned()
}

fn options() -> StoreOptions {
    StoreOptions::with_cache_size(1024 * 1024)
}

/// A store whose file is `disk` (the path is only a name for messages).
fn store_on(disk: &Disk) -> Store {
    let disk = disk.clone();
    let mut store = Store::unopened(Path::new("crash-disk"), options());
    store.opener = Some(Box::new(move |builder, _| {
        builder.create_with_backend(disk.clone())
    }));
    let db = store.open_database().unwrap();
    *store.db.write().unwrap() = Some(db);
    store
}

/// An in-memory disk that loses power after a number of writes.
#[derive(Debug, Clone, Default)]
struct Disk(Arc<Mutex<DiskState>>);

#[derive(Debug, Default)]
struct DiskState {
    /// What a reader sees: everything written.
    visible: Vec<u8>,
    /// What survives a power cut for sure: everything synced.
    durable: Vec<u8>,
    /// Writes (offset, bytes) and truncations (offset, empty) since the
    /// last sync, in order.
    unsynced: Vec<(u64, Option<Vec<u8>>)>,
    /// Writes and length changes so far.
    writes: u64,
    /// Writes allowed before the power goes out.
    budget: u64,
}

impl Disk {
    /// An empty disk with power.
    fn new() -> Disk {
        let disk = Disk::default();
        disk.arm(u64::MAX);
        disk
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DiskState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts writes from now on; the power goes out after `budget`.
    fn arm(&self, budget: u64) {
        let mut state = self.lock();
        state.writes = 0;
        state.budget = budget;
    }

    /// The bytes on the platter after the power came back.
    fn reboot(&self, unsynced: Unsynced) -> Vec<u8> {
        let state = self.lock();
        let mut image = state.durable.clone();
        if let Unsynced::Some(seed) = unsynced {
            let mut draw = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            for (offset, bytes) in &state.unsynced {
                draw ^= draw << 13;
                draw ^= draw >> 7;
                draw ^= draw << 17;
                if draw.is_multiple_of(2) {
                    apply(&mut image, *offset, bytes.as_deref());
                }
            }
        }
        image
    }
}

impl DiskState {
    /// One write: refused once the power is out.
    fn spend(&mut self) -> Result<(), std::io::Error> {
        if self.writes >= self.budget {
            return Err(std::io::Error::other("power cut"));
        }
        self.writes += 1;
        Ok(())
    }
}

/// A write (`Some(bytes)` at `offset`) or a length change (`None`: the
/// length becomes `offset`).
fn apply(image: &mut Vec<u8>, offset: u64, bytes: Option<&[u8]>) {
    let offset = usize::try_from(offset).unwrap();
    match bytes {
        Some(bytes) => {
            if image.len() < offset + bytes.len() {
                image.resize(offset + bytes.len(), 0);
            }
            image[offset..offset + bytes.len()].copy_from_slice(bytes);
        }
        None => image.resize(offset, 0),
    }
}

impl StorageBackend for Disk {
    fn len(&self) -> Result<u64, std::io::Error> {
        Ok(self.lock().visible.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        let state = self.lock();
        let start = usize::try_from(offset).map_err(std::io::Error::other)?;
        let bytes = state
            .visible
            .get(start..start + out.len())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
        out.copy_from_slice(bytes);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        let mut state = self.lock();
        state.spend()?;
        apply(&mut state.visible, len, None);
        state.unsynced.push((len, None));
        Ok(())
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        let mut state = self.lock();
        if state.writes >= state.budget {
            return Err(std::io::Error::other("power cut"));
        }
        let unsynced = std::mem::take(&mut state.unsynced);
        for (offset, bytes) in unsynced {
            apply(&mut state.durable, offset, bytes.as_deref());
        }
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        let mut state = self.lock();
        state.spend()?;
        apply(&mut state.visible, offset, Some(data));
        state.unsynced.push((offset, Some(data.to_vec())));
        Ok(())
    }
}
