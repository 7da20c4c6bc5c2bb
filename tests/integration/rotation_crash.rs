//! A rotation survives SIGKILL (SPEC §3: "the job is resumable after a
//! crash or restart"), and so does the move of records under tenant data
//! keys (SPEC §11.4). Thousands of records across tenants and apps are
//! written sealed directly under the old key, as files from before schema 5
//! hold them; the real `exsec serve` binary moves them under data keys while
//! a new key arrives, is killed with SIGKILL while records or wraps are
//! still under the old key, and is started again on the same files: the job
//! resumes and finishes, every value opens to what was last written, and
//! the audit chain verifies.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, SystemTime};

use exsec::crypto::Keyring;
use exsec::model::KeyId;
use exsec::store::history::KeptValue;
use exsec::store::{PutSecret, Store};
use serde_json::{Value, json};

use crate::daemon::{Daemon, write_config};
use crate::harness::{options, seal_with};
use crate::server::TestServer;

/// Upper bound for the daemon to start or to finish a pass; generous
/// because CI shares two cores with the build.
const PATIENCE: Duration = Duration::from_secs(60);

// Many small scopes: a secret write checks its whole scope, so seeding
// stays quick in debug builds.
const TENANTS: usize = 25;
const APPS_PER_TENANT: usize = 8;
const TENANT_KEYS: usize = 8;
const APP_KEYS: usize = 20;
/// 25 × (8 + 8 × 20) = 4,200 records: more than eight batches of the job,
/// so a kill after the first committed batch lands well before the end.
const RECORDS: u64 = (TENANTS * (TENANT_KEYS + APPS_PER_TENANT * APP_KEYS)) as u64;

/// How many attempts to kill mid-pass before giving up. One is expected to
/// be enough; a pass that outran the kill is retried with another key.
const ATTEMPTS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_killed_mid_pass_resumes_and_loses_nothing() {
    let mut dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys.d");
    let mut old = exsec::crypto::generate_key_file(&keys_dir, SystemTime::now())
        .unwrap()
        .key_id;
    let config = write_config(dir.path());
    seed(dir.path(), &keys_dir);

    // Values rewritten through the API while a pass runs: the final check
    // expects these instead of the seeded ones.
    let mut rewritten = Rewritten::new();
    for attempt in 1..=ATTEMPTS {
        let mut server = TestServer::attached(dir, Daemon::start(&config, &[]));
        let new = exsec::crypto::generate_key_file(
            &keys_dir,
            SystemTime::now() + Duration::from_secs(3600 * attempt as u64),
        )
        .unwrap()
        .key_id;
        wait_for_keys(&server, |s| s["active"] == new.as_str()).await;
        // Live writes race the job; they seal under the new key directly.
        for t in 0..2 {
            let a = attempt % APPS_PER_TENANT;
            let app = app_name(t, a);
            let value = format!("rewritten-{attempt}-{app}");
            let answer = server
                .set_secret(&format!("/v1/apps/{app}"), "p", "APP_1", &value)
                .await;
            assert_eq!(answer.status, 200, "{}", answer.text());
            rewritten
                .entry((t, a))
                .or_default()
                .insert("APP_1".to_owned(), value);
        }
        // The readiness signal: the job committed at least one batch (the
        // two writes above account for at most two records).
        let status = wait_for_keys(&server, |s| {
            s["rotation"]["remaining"].as_u64().unwrap_or(u64::MAX) < RECORDS - 2
        })
        .await;
        server.process.take().unwrap().kill();
        dir = server.dir;
        let (left, completed) = after_the_kill(&dir.path().join("exsec.redb"), &old, &new);
        let seen = status["rotation"]["remaining"].as_u64().unwrap();
        assert!(left <= seen, "records went back to {old}: {left} > {seen}");
        if left == 0 {
            // The pass outran the kill: rotate again, from the new key.
            eprintln!("attempt {attempt}: the pass finished before SIGKILL; rotating again");
            old = new;
            continue;
        }
        assert_eq!(completed, 0, "a pass that was killed cannot have completed");
        return resume(dir, &old, &new, left, &rewritten).await;
    }
    panic!("every pass finished before SIGKILL in {ATTEMPTS} attempts");
}

/// Starts the daemon again on the files of the killed one and checks that
/// the job resumed and finished, that every value opens to what was last
/// written, and that the audit chain verifies.
async fn resume(
    dir: tempfile::TempDir,
    old: &KeyId,
    new: &KeyId,
    left: u64,
    rewritten: &Rewritten,
) {
    let config = dir.path().join("config.toml");
    let mut server = TestServer::attached(dir, Daemon::start(&config, &[]));
    let status = wait_for_keys(&server, |s| {
        s["rotation"]["state"] == "idle" && s["rotation"]["remaining"] == 0
    })
    .await;
    assert_eq!(status["active"], new.as_str());
    assert_eq!(status["rotation"]["waiting_for"], json!({}));
    let keys = status["keys"].as_array().unwrap();
    let records = |id: &KeyId| {
        keys.iter()
            .find(|k| k["id"] == id.as_str())
            .map(|k| k["records"].as_u64().unwrap())
    };
    // Every value moved under its tenant's data key (SPEC §11.4): the new
    // key wraps one data key per tenant and seals nothing directly.
    assert_eq!(records(old), Some(0), "{status}");
    assert_eq!(records(new), Some(TENANTS as u64), "{status}");

    // The resumed pass re-sealed exactly what the kill left behind.
    let started = server.audit_events_of("master_key.rotation_started").await;
    let completed = server
        .audit_events_of("master_key.rotation_completed")
        .await;
    let last_started = started.last().unwrap();
    assert_eq!(last_started["data"]["key_id"], new.as_str());
    assert_eq!(last_started["data"]["remaining"], left);
    let last_completed = completed.last().unwrap();
    assert_eq!(last_completed["data"]["key_id"], new.as_str());
    let moved = last_completed["data"]["count"].as_u64().unwrap()
        + last_completed["data"]["data_keys_rewrapped"]
            .as_u64()
            .unwrap();
    assert_eq!(moved, left, "{last_completed}");
    assert!(
        last_completed["seq"].as_u64() > last_started["seq"].as_u64(),
        "{last_started} {last_completed}"
    );

    // Values open through the daemon: deploy one app per tenant and every
    // app rewritten meanwhile (manifests target), read the Secret back.
    let mut deployed: BTreeSet<(usize, usize)> =
        (0..TENANTS).map(|t| (t, t % APPS_PER_TENANT)).collect();
    deployed.extend(rewritten.keys().copied());
    for (t, a) in deployed {
        let app = app_name(t, a);
        let deploy = server.deploy(&app, json!({ "image_ref": "nginx" })).await;
        deploy.assert_injected();
        let values = server.manifest_values(&app).unwrap();
        let mut expected = tenant_values(t);
        expected.extend(app_values(t, a, rewritten));
        assert_eq!(values, expected, "{app}");
    }

    // The audit chain verifies online, and offline after a clean stop.
    let verified = crate::operator::admin_run(&server, "audit verify", None).await;
    verified.expect(0);
    server.process.take().unwrap().terminate();
    let dir = server.dir;
    let database = dir.path().join("exsec.redb");
    let offline = crate::operator::exsec(
        None,
        None,
        &["audit", "verify", "--db", database.to_str().unwrap()],
        None,
    )
    .await;
    offline.expect(0);

    // Every record, read from the file: under the new key, opening to
    // what was last written.
    let scan = exsec::crypto::scan_dir(&dir.path().join("keys.d"), false).unwrap();
    let (keyring, _) = Keyring::assemble(scan, &BTreeMap::new(), None);
    let keyring = std::sync::Arc::new(keyring);
    let store = Store::open(&database, options()).unwrap();
    for t in 0..TENANTS {
        let tenant = exsec::model::TenantId::parse(&tenant_name(t)).unwrap();
        let lookup = tenant.clone();
        let wraps = store.read(move |r| r.data_keys(&lookup)).unwrap();
        assert!(wraps.iter().all(|(_, wrapped)| wrapped.key_id == *new));
        let keys = exsec::crypto::DataKeyCache::default().tenant_keys(
            std::sync::Arc::clone(&keyring),
            &tenant,
            &wraps,
        );
        let mut scopes = vec![(
            crate::harness::tenant_scope(&tenant_name(t)),
            tenant_values(t),
        )];
        for a in 0..APPS_PER_TENANT {
            scopes.push((
                crate::harness::app_scope(&app_name(t, a)),
                app_values(t, a, rewritten),
            ));
        }
        for (scope, expected) in scopes {
            let lookup = scope.clone();
            let records = store.read(move |r| r.secrets(&lookup)).unwrap();
            let opened: BTreeMap<String, String> = records
                .iter()
                .map(|record| {
                    // Every value moved under the tenant's data key.
                    assert_eq!(record.sealed.master_key_id(), None, "{record:?}");
                    let location = record.location();
                    let value = keys.open(&location, &record.sealed).unwrap();
                    (record.key.to_string(), value.expose_secret().to_owned())
                })
                .collect();
            assert_eq!(opened, expected, "{scope:?}");
            // So did every value a rewrite kept as an older version: the
            // oldest is the seeded one.
            for record in &records {
                let kept = kept_values(&store, &keys, record);
                assert_eq!(kept.last(), Some(&opened[record.key.as_str()]));
                if kept.len() > 1 {
                    let owner = record.scope.owner().to_owned();
                    assert_eq!(kept[0], seeded(&owner, record.key.as_str()));
                }
            }
        }
    }
}

/// Every kept version of `record`'s secret, oldest first, opened with the
/// tenant's `keys`; each must be sealed under a data key.
fn kept_values(
    store: &Store,
    keys: &exsec::crypto::TenantKeys,
    record: &exsec::store::records::SecretRecord,
) -> Vec<String> {
    let (scope, provider, key) = (
        record.scope.clone(),
        record.provider.clone(),
        record.key.clone(),
    );
    let sealed = store
        .read(move |r| {
            let mut out = Vec::new();
            for info in r.secret_versions(&scope, &provider, &key)?.iter().rev() {
                match r.secret_version(&scope, &provider, &key, info.version)? {
                    KeptValue::Sealed(sealed) => out.push(sealed),
                    KeptValue::Tombstone | KeptValue::Missing => {
                        panic!("version {} has no value", info.version)
                    }
                }
            }
            Ok(out)
        })
        .unwrap();
    let location = record.location();
    sealed
        .iter()
        .map(|sealed| {
            assert_eq!(sealed.master_key_id(), None, "{sealed:?}");
            let value = keys.open(&location, sealed).unwrap();
            value.expose_secret().to_owned()
        })
        .collect()
}

/// Env var name → value last written, per app `(tenant, app)`: what the
/// API rewrote while a pass ran (the rest keeps its seeded value).
type Rewritten = BTreeMap<(usize, usize), BTreeMap<String, String>>;

/// The tenant defaults of tenant `t`.
fn tenant_values(t: usize) -> BTreeMap<String, String> {
    let tenant = tenant_name(t);
    (0..TENANT_KEYS)
        .map(|k| {
            let key = format!("TENANT_{k}");
            let value = seeded(&tenant, &key);
            (key, value)
        })
        .collect()
}

/// The overrides of app `a` of tenant `t`.
fn app_values(t: usize, a: usize, rewritten: &Rewritten) -> BTreeMap<String, String> {
    let app = app_name(t, a);
    let mut values: BTreeMap<String, String> = (0..APP_KEYS)
        .map(|k| {
            let key = format!("APP_{k}");
            let value = seeded(&app, &key);
            (key, value)
        })
        .collect();
    values.extend(rewritten.get(&(t, a)).cloned().unwrap_or_default());
    values
}

/// Records still sealed under `old`, and how many passes to `new`
/// completed, read from the file the killed daemon left (opening it runs
/// redb's recovery). The audit chain must verify there too.
fn after_the_kill(database: &Path, old: &KeyId, new: &KeyId) -> (u64, usize) {
    let store = Store::open(database, options()).unwrap();
    let usage = store.read(|r| r.key_usage()).unwrap();
    let check = store.read(|r| r.verify_audit_chain(None)).unwrap();
    assert!(check.outcome.is_ok(), "audit chain broken: {check:?}");
    let filter = exsec::store::AuditFilter {
        event_type: Some("master_key.rotation_completed".to_owned()),
        limit: exsec::store::MAX_AUDIT_PAGE,
        ..exsec::store::AuditFilter::default()
    };
    let completed = store
        .read(move |r| r.audit_events(&filter))
        .unwrap()
        .events
        .iter()
        .filter(|e| e.data["key_id"] == new.as_str())
        .count();
    (usage.get(old.as_str()).copied().unwrap_or(0), completed)
}

/// Tenants, apps and every secret, written straight into the store through
/// the library before the first start (one transaction per tenant).
fn seed(dir: &Path, keys_dir: &Path) {
    let scan = exsec::crypto::scan_dir(keys_dir, false).unwrap();
    let (keyring, problems) = Keyring::assemble(scan, &BTreeMap::new(), None);
    assert!(problems.is_empty(), "{problems:?}");
    let store = Store::open(&dir.join("exsec.redb"), options()).unwrap();
    for t in 0..TENANTS {
        let tenant = tenant_name(t);
        let tenant_scope = crate::harness::tenant_scope(&tenant);
        let mut puts: Vec<PutSecret> = (0..TENANT_KEYS)
            .map(|k| {
                let key = format!("TENANT_{k}");
                seal_with(&keyring, &tenant_scope, "p", &key, &seeded(&tenant, &key))
            })
            .collect();
        let apps: Vec<String> = (0..APPS_PER_TENANT).map(|a| app_name(t, a)).collect();
        for app in &apps {
            let app_scope = crate::harness::app_scope(app);
            puts.extend((0..APP_KEYS).map(|k| {
                let key = format!("APP_{k}");
                seal_with(&keyring, &app_scope, "p", &key, &seeded(app, &key))
            }));
        }
        crate::harness::write_tenant(&store, &tenant, apps, puts);
    }
    let usage = store.read(|r| r.key_usage()).unwrap();
    assert_eq!(usage.values().sum::<u64>(), RECORDS);
}

fn tenant_name(t: usize) -> String {
    format!("t{t}")
}

fn app_name(t: usize, a: usize) -> String {
    format!("t{t}-app{a}")
}

/// The seeded value of `key` in the scope of `owner`.
fn seeded(owner: &str, key: &str) -> String {
    format!("seeded-{owner}-{key}-{}", "x".repeat(32))
}

/// Polls `/v1/keys` every 2 ms until `done` holds.
async fn wait_for_keys(server: &TestServer, done: impl Fn(&Value) -> bool) -> Value {
    crate::rotation::poll_keys(server, PATIENCE, Duration::from_millis(2), done).await
}
