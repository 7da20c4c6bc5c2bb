//! Secret history in the store, on real redb files (issue 16): the move
//! under tenant data keys covers every kept version and a master rotation
//! then only re-wraps (issue 17), a backup carries the history, pruning
//! releases key-usage counts, and a file written by schema 2 migrates
//! through 3 and 4 to 5 with every record intact.

use std::path::Path;
use std::sync::Arc;

use exsec::crypto::{
    DataKey, DataKeyCache, DataKeyId, Keyring, MasterKey, SecretLocation, SharedKeyring,
    parse_key_file,
};
use exsec::model::{AppId, EnvKey, Provider, Scope};
use exsec::rotation::Rotation as RotationJob;
use exsec::store::backup::{RestoreOptions, restore};
use exsec::store::history::KeptValue;
use exsec::store::reseal::ResealScope;
use exsec::store::{Store, StoreOptions};

use crate::harness::*;

/// `(scope, provider, key)` of the test secret.
fn name() -> (Scope, Provider, EnvKey) {
    (
        tenant_scope("acme"),
        Provider::parse("openai").unwrap(),
        EnvKey::parse("OPENAI_API_KEY").unwrap(),
    )
}

/// Every kept version of the test secret, sealed as stored, newest first
/// (a tombstone is `None`).
fn kept_sealed(store: &Store) -> Vec<(u64, Option<exsec::crypto::SealedValue>)> {
    let (scope, provider, key) = name();
    store
        .read(|r| {
            let mut out = Vec::new();
            for info in r.secret_versions(&scope, &provider, &key)? {
                let sealed = match r.secret_version(&scope, &provider, &key, info.version)? {
                    KeptValue::Sealed(sealed) => Some(sealed),
                    KeptValue::Tombstone => None,
                    KeptValue::Missing => panic!("version {} listed but missing", info.version),
                };
                out.push((info.version, sealed));
            }
            Ok(out)
        })
        .unwrap()
}

/// The plaintext of every kept version of the test secret (a tombstone
/// reads `None`), newest first, opened with `keyring` and acme's data keys.
fn kept_values(store: &Store, keyring: &Arc<Keyring>) -> Vec<(u64, Option<String>)> {
    let (scope, provider, key) = name();
    let wraps = store.read(|r| r.data_keys(&tenant("acme"))).unwrap();
    let keys = DataKeyCache::default().tenant_keys(Arc::clone(keyring), &tenant("acme"), &wraps);
    let location = SecretLocation {
        scope: &scope,
        provider: &provider,
        key: &key,
    };
    kept_sealed(store)
        .into_iter()
        .map(|(version, sealed)| {
            let value = sealed.map(|sealed| {
                let opened = keys.open(&location, &sealed).expect("opens");
                opened.expose_secret().to_owned()
            });
            (version, value)
        })
        .collect()
}

/// Writes v1, v2, v3 of the test secret under `keyring`, then deletes it.
fn three_versions_and_a_delete(store: &Store, keyring: &Keyring) {
    let (scope, provider, key) = name();
    let puts: Vec<_> = ["sk-1", "sk-2", "sk-3"]
        .into_iter()
        .map(|value| seal_with(keyring, &scope, "openai", "OPENAI_API_KEY", value))
        .collect();
    store
        .write(move |w| {
            w.put_tenant(&tenant("acme"), "admin")?;
            for put in puts.clone() {
                w.put_secret(put, "admin")?;
            }
            w.delete_secret(&scope, &provider, &key, "admin")?;
            Ok(())
        })
        .unwrap();
}

fn expected() -> Vec<(u64, Option<String>)> {
    vec![
        (4, None),
        (3, Some("sk-3".to_owned())),
        (2, Some("sk-2".to_owned())),
        (1, Some("sk-1".to_owned())),
    ]
}

/// Values sealed directly under a master key (a file from before schema
/// 5) move under acme's data key page by page, kept versions included (pages
/// of 2, so the cursor crosses from the live records to the history); then
/// only the wrap counts. A master rotation after that re-wraps the data key
/// and rewrites no kept version, and every one opens with the new key alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kept_version_moves_under_the_data_key_and_a_rotation_only_rewraps() {
    let test = TestStore::new();
    let Rotation {
        old,
        rotated: both,
        new_only,
    } = rotation_keyrings();
    three_versions_and_a_delete(&test.store, &old);
    let usage = |store: &Store| store.read(|r| r.key_usage()).unwrap();
    assert_eq!(usage(&test.store), [("k1".to_owned(), 3)].into());

    // acme's first data key, as the migration pass makes it.
    let fingerprint = old.fingerprint(&key_id("k1")).unwrap();
    let dek_id = DataKeyId::generate().unwrap();
    let wrapped = old
        .wrap_data_key(&tenant("acme"), &dek_id, &DataKey::generate().unwrap())
        .unwrap();
    test.store
        .write(move |w| {
            w.add_data_key(&tenant("acme"), None, &dek_id, wrapped.clone(), fingerprint)
        })
        .unwrap();
    let old = Arc::new(old);
    let mut after: Option<String> = None;
    let mut moved = 0;
    loop {
        let cursor = after.clone();
        let page = test
            .store
            .read(|r| r.reseal_page(&ResealScope::MasterSealed, cursor.as_deref(), 2))
            .unwrap();
        let keys = DataKeyCache::default().tenant_keys(
            Arc::clone(&old),
            &tenant("acme"),
            &page.wraps[&tenant("acme")],
        );
        let batch: Vec<_> = page
            .candidates
            .into_iter()
            .map(|candidate| {
                let record = &candidate.record;
                let location = record.location();
                let value = keys.open(&location, &record.sealed).unwrap();
                let sealed = keys.seal(&location, &value).unwrap();
                (candidate, sealed)
            })
            .collect();
        moved += test
            .store
            .write(move |w| w.reseal_batch(&batch, fingerprint))
            .unwrap();
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(moved, 3, "three kept values, one tombstone");
    assert_eq!(
        usage(&test.store),
        [("k1".to_owned(), 1)].into(),
        "the wrap alone"
    );
    assert!(
        kept_sealed(&test.store)
            .iter()
            .filter_map(|(_, sealed)| sealed.as_ref())
            .all(|sealed| sealed.master_key_id().is_none())
    );
    assert_eq!(kept_values(&test.store, &old), expected());

    // A master rotation: the wrap moves to k2, no kept version is rewritten.
    let before = kept_sealed(&test.store);
    let store = Arc::new(test.store);
    let shared = SharedKeyring::new(both);
    let stop = exsec::shutdown::Trigger::new();
    let report = RotationJob::default()
        .pass(&store, &shared, &stop.subscribe())
        .await
        .unwrap();
    assert_eq!((report.rewrapped, report.resealed), (1, 0));
    assert_eq!(kept_sealed(&store), before);
    assert_eq!(usage(&store), [("k2".to_owned(), 1)].into());
    assert_eq!(kept_values(&store, &Arc::new(new_only)), expected());
}

#[test]
fn a_backup_restores_with_its_history() {
    let test = TestStore::new();
    three_versions_and_a_delete(&test.store, &test.keyring);
    let (active, mac) = test.keyring.active_backup_mac().unwrap();
    let mut bytes = Vec::new();
    let header = test.store.backup(&mut bytes, &active, mac, |_| {}).unwrap();
    assert_eq!(header.tables["external_secret_versions"], 4);
    let file = test.dir.path().join("backup");
    std::fs::write(&file, &bytes).unwrap();
    let target = test.dir.path().join("restored/exsec.redb");
    restore(
        &file,
        &target,
        &RestoreOptions {
            keyring: &test.keyring,
            accept_unauthenticated: false,
            force: false,
            store: options(),
        },
    )
    .unwrap();
    let restored = Store::open(&target, options()).unwrap();
    assert_eq!(kept_values(&restored, &test.keyring), expected());
    assert_eq!(
        restored.read(|r| r.key_usage()).unwrap(),
        test.store.read(|r| r.key_usage()).unwrap()
    );
}

#[test]
fn pruning_keeps_the_newest_and_releases_key_usage() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        &dir.path().join("exsec.redb"),
        StoreOptions {
            secret_history: 2,
            ..options()
        },
    )
    .unwrap();
    let keyring = Arc::new(Keyring::from_keys([(
        key_id("k1"),
        MasterKey::generate().unwrap(),
    )]));
    three_versions_and_a_delete(&store, &keyring);
    assert_eq!(
        kept_values(&store, &keyring),
        [(4, None), (3, Some("sk-3".to_owned()))]
    );
    assert_eq!(
        store.read(|r| r.key_usage()).unwrap(),
        [("k1".to_owned(), 1)].into()
    );
    // Written again after its deletion, the key counts on from the tombstone.
    let (scope, ..) = name();
    let put = seal_with(&keyring, &scope, "openai", "OPENAI_API_KEY", "sk-5");
    let written = store
        .write(move |w| w.put_secret(put.clone(), "admin"))
        .unwrap();
    assert_eq!(written.record.version, 5);
    assert!(written.created);
}

/// fixtures/schema2 (fixtures/README.md): written by exsec at schema 2.
#[test]
fn a_schema_2_file_migrates_to_5_and_every_record_reads_back() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/schema2");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exsec.redb");
    std::fs::copy(fixtures.join("exsec.redb"), &path).unwrap();
    let key_file = fixtures.join("keys.d/20261130T043308Z.key");
    let key = parse_key_file(&std::fs::read(&key_file).unwrap()).unwrap();
    let keyring = Keyring::from_keys([(key_id("20261130T043308Z"), key)]);

    let store = Store::open(&path, options()).unwrap();
    let tenants: Vec<String> = store
        .read(|r| r.tenants())
        .unwrap()
        .into_iter()
        .map(|(id, _)| id.to_string())
        .collect();
    assert_eq!(tenants, ["acme", "beta"]);
    let apps = store.read(|r| r.apps(None)).unwrap();
    let app_ids: Vec<String> = apps.iter().map(|(id, _)| id.to_string()).collect();
    assert_eq!(app_ids, ["api", "shop", "web"]);
    assert!(
        apps.iter()
            .all(|(_, app)| app.pinned_to.is_none() && !app.auto_redeploy)
    );

    let scopes = [
        (
            tenant_scope("acme"),
            vec![("OPENAI_API_KEY", "sk-fixture-tenant-default")],
        ),
        (
            tenant_scope("beta"),
            vec![("OPENAI_API_KEY", "sk-fixture-beta")],
        ),
        (
            app_scope("web"),
            vec![
                ("OPENAI_API_KEY", "sk-fixture-app-override"),
                ("STRIPE_KEY", "rk-fixture-stripe"),
            ],
        ),
    ];
    for (scope, wanted) in scopes {
        let records = store.read(|r| r.secrets(&scope)).unwrap();
        let read: Vec<(String, String)> = records
            .iter()
            .map(|record| (record.key.to_string(), open_record(&keyring, record)))
            .collect();
        let wanted: Vec<(String, String)> = wanted
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(read, wanted, "{scope:?}");
        // Each live secret has its current version in the history.
        for record in &records {
            let versions = store
                .read(|r| r.secret_versions(&record.scope, &record.provider, &record.key))
                .unwrap();
            assert_eq!(versions.len(), 1, "{}", record.key);
            assert_eq!(versions[0].version, record.version);
            assert_eq!(versions[0].actor, "migration");
            // Schema 5 names the sealer: the fixture's master key, until
            // the daemon's background pass moves the value under a data key.
            assert_eq!(
                versions[0].key_id.as_ref(),
                Some(&key_id("20261130T043308Z"))
            );
            assert_eq!(record.sealed.sealer_id(), key_id("20261130T043308Z"));
            let kept = store
                .read(|r| {
                    r.secret_version(&record.scope, &record.provider, &record.key, record.version)
                })
                .unwrap();
            let KeptValue::Sealed(sealed) = kept else {
                panic!("{}: the current version has no value", record.key);
            };
            let kept_record = exsec::store::records::SecretRecord {
                sealed,
                ..record.clone()
            };
            assert_eq!(
                open_record(&keyring, &kept_record),
                open_record(&keyring, record)
            );
        }
    }
    let web = AppId::parse("web").unwrap();
    let deploys = store.read(|r| r.deploys(&web, 10)).unwrap();
    assert_eq!(deploys.len(), 2);
    assert!(
        deploys
            .iter()
            .any(|d| d.replicas == Some(2) && d.port == Some(8080))
    );
    let api = AppId::parse("api").unwrap();
    assert_eq!(store.read(|r| r.deploys(&api, 10)).unwrap().len(), 1);
    drop(store);

    // Opened again, the migrated file still reads (nothing migrates twice).
    let again = Store::open(&path, options()).unwrap();
    let records = again.read(|r| r.secrets(&app_scope("web"))).unwrap();
    let versions = again
        .read(|r| r.secret_versions(&records[0].scope, &records[0].provider, &records[0].key))
        .unwrap();
    assert_eq!(versions.len(), 1);
}

/// Deleting a tenant deletes the kept versions of its secrets with them,
/// and their key-usage counts (nothing of it is left to restore).
#[test]
fn deleting_a_scope_deletes_its_history() {
    let test = TestStore::new();
    three_versions_and_a_delete(&test.store, &test.keyring);
    let (scope, provider, key) = name();
    let put = seal_with(&test.keyring, &scope, "openai", "OPENAI_API_KEY", "sk-5");
    test.store
        .write(move |w| w.put_secret(put.clone(), "admin"))
        .unwrap();
    assert_eq!(test.store.read(|r| r.key_usage()).unwrap()["k1"], 4);
    test.store
        .write(|w| w.delete_tenant(&tenant("acme"), "admin"))
        .unwrap();
    assert!(
        test.store
            .read(|r| r.secret_versions(&scope, &provider, &key))
            .unwrap()
            .is_empty()
    );
    assert!(test.store.read(|r| r.key_usage()).unwrap().is_empty());
}
