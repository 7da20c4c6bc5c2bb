//! Tenant data keys (SPEC §11.4, issue 17): what binds a wrap and a value
//! to their tenant, what a master rotation touches (one wrap per tenant,
//! no value), and the move of a schema-2 file's values under data keys.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use exsec::crypto::{
    CryptoError, DataKey, DataKeyCache, DataKeyId, Keyring, MasterKey, Sealer, SecretLocation,
    SharedKeyring,
};
use exsec::model::{Scope, TenantId};
use exsec::rotation::Rotation;
use exsec::store::history::KeptValue;
use exsec::store::records::SecretRecord;
use exsec::store::{PutSecret, Store};

use crate::harness::{app, app_scope, key_id, open_stored, options, tenant, tenant_scope};
use crate::rotation::wait_for_keys;
use crate::server::TestServer;

/// A value written through the API lands under the tenant's data key; the
/// same bytes copied to another tenant do not open there, whether with that
/// tenant's own keys or with the first tenant's wrap handed to it.
#[tokio::test]
async fn a_value_or_a_wrap_copied_to_another_tenant_does_not_open() {
    let server = TestServer::start().await;
    server.seed("acme", &["web"]).await;
    server.seed("beta", &["shop"]).await;
    created_openai_keys(
        &server,
        &[
            ("/v1/tenants/acme", "sk-acme"),
            ("/v1/tenants/beta", "sk-beta"),
        ],
    )
    .await;
    let dir = server.stop().await;
    let (keyring, store) = crate::harness::open_offline(dir.path());
    let read = |owner: &str| {
        let id = tenant(owner);
        store
            .read(move |r| Ok((r.secrets(&Scope::Tenant(id.clone()))?, r.data_keys(&id)?)))
            .unwrap()
    };
    let (acme_records, acme_wraps) = read("acme");
    let (_, beta_wraps) = read("beta");
    let record = &acme_records[0];
    assert!(matches!(record.sealed.sealer, Sealer::DataKey(_)));
    assert_eq!(acme_wraps.len(), 1);
    assert_eq!(open_stored(&store, &keyring, record), "sk-acme");

    let beta = tenant_scope("beta");
    let at_beta = SecretLocation {
        scope: &beta,
        provider: &record.provider,
        key: &record.key,
    };
    let cache = DataKeyCache::default();
    let beta_keys = cache.tenant_keys(Arc::clone(&keyring), &tenant("beta"), &beta_wraps);
    let error = beta_keys.open(&at_beta, &record.sealed).err().unwrap();
    assert!(
        matches!(error, CryptoError::MissingDataKey { .. }),
        "{error}"
    );

    // acme's wrap, copied under beta: the wrap's AAD names acme.
    let stolen = cache.tenant_keys(Arc::clone(&keyring), &tenant("beta"), &acme_wraps);
    let error = stolen.open(&at_beta, &record.sealed).err().unwrap();
    assert!(matches!(error, CryptoError::Unopenable { .. }), "{error}");
    let (dek_id, wrapped) = &acme_wraps[0];
    assert!(
        keyring
            .unwrap_data_key(&tenant("beta"), dek_id, wrapped)
            .is_err()
    );
    assert!(
        keyring
            .unwrap_data_key(&tenant("acme"), dek_id, wrapped)
            .is_ok()
    );
}

/// SPEC §11.4 and §10: a master rotation re-wraps one data key per tenant
/// and touches no value: every record keeps its bytes, and every value
/// opens with the new master key alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_rotation_rewraps_data_keys_and_leaves_every_value_as_it_was() {
    const TENANTS: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("exsec.redb"), options()).unwrap());
    let old = [1u8; 32];
    let new = [2u8; 32];
    let shared = SharedKeyring::new(Keyring::from_keys([(
        key_id("k1"),
        MasterKey::from_bytes(old),
    )]));
    for t in 0..TENANTS {
        let owner = tenant(&format!("t{t}"));
        let web = app(&format!("t{t}-web"));
        let (write_owner, write_app) = (owner.clone(), web.clone());
        store
            .write(move |w| {
                w.put_tenant(&write_owner, "test")?;
                w.put_app(&write_app, &write_owner, Default::default(), "test")?;
                Ok(())
            })
            .unwrap();
        for (scope, key) in [
            (Scope::Tenant(owner.clone()), "TENANT_KEY"),
            (Scope::App(web.clone()), "APP_KEY"),
        ] {
            let put =
                seal_under_data_key(&store, &shared, &owner, &scope, key, &format!("{key}-{t}"));
            store
                .write(move |w| w.put_secret(put.clone(), "test"))
                .unwrap();
        }
    }
    let records = |store: &Store| -> Vec<SecretRecord> {
        let mut all = Vec::new();
        for t in 0..TENANTS {
            let (owner, web) = (tenant(&format!("t{t}")), app(&format!("t{t}-web")));
            all.extend(
                store
                    .read(move |r| {
                        let mut records = r.secrets(&Scope::Tenant(owner.clone()))?;
                        records.extend(r.secrets(&Scope::App(web.clone()))?);
                        Ok(records)
                    })
                    .unwrap(),
            );
        }
        all
    };
    let before = records(&store);
    assert_eq!(before.len(), 2 * TENANTS);
    assert_eq!(
        store.read(|r| r.key_usage()).unwrap(),
        BTreeMap::from([("k1".to_owned(), TENANTS as u64)])
    );

    shared.replace(Keyring::from_keys([
        (key_id("k1"), MasterKey::from_bytes(old)),
        (key_id("k2"), MasterKey::from_bytes(new)),
    ]));
    let stop = exsec::shutdown::Trigger::new();
    let report = Rotation::default()
        .pass(&store, &shared, &stop.subscribe())
        .await
        .unwrap();
    assert_eq!((report.rewrapped, report.resealed), (TENANTS as u64, 0));
    assert_eq!(records(&store), before, "no record changed");
    assert_eq!(
        store.read(|r| r.key_usage()).unwrap(),
        BTreeMap::from([("k2".to_owned(), TENANTS as u64)])
    );

    // The old key is gone: every value opens with the new one alone.
    let only_new = Arc::new(Keyring::from_keys([(
        key_id("k2"),
        MasterKey::from_bytes(new),
    )]));
    for record in &before {
        let opened = open_stored(&store, &only_new, record);
        assert!(
            opened.ends_with(&format!("-{}", tenant_of(record))),
            "{opened}"
        );
    }
}

/// The fixture of schema 2 (values sealed directly under its master key):
/// at the first start of this build the daemon serves while a background
/// pass moves every value under its tenant's data key; then the master key
/// seals nothing directly, wraps one key per tenant, and every value opens
/// through a deploy and from the file. The secrets hash is over plaintext:
/// the move changes no app's hash (an automatic redeploy after the upgrade
/// is skipped as unchanged, no pod restarts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema2_file_moves_its_values_under_data_keys() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/schema2");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixtures.join("exsec.redb"), dir.path().join("exsec.redb")).unwrap();
    let keys_dir = dir.path().join("keys.d");
    std::fs::create_dir(&keys_dir).unwrap();
    for entry in std::fs::read_dir(fixtures.join("keys.d")).unwrap() {
        let entry = entry.unwrap();
        let to = keys_dir.join(entry.file_name());
        std::fs::copy(entry.path(), &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // web's secrets hash before anything moved, from the migrated file
    // (values still sealed directly under the fixture's master key).
    let hash_before = {
        let keyring = crate::harness::load_keys(&keys_dir);
        let store = Store::open(&dir.path().join("exsec.redb"), options()).unwrap();
        let (layout, installation) = store
            .read(|r| {
                Ok((
                    r.secret_layout(&app("web"))?.unwrap(),
                    r.installation_key()?,
                ))
            })
            .unwrap();
        assert!(layout.data_keys.is_empty());
        let keys = crate::harness::shared_layout_keys(&keyring, &layout);
        let set = exsec::resolve::resolve(&layout.tenant, &layout.app, &keys);
        assert!(set.undecryptable.is_empty());
        exsec::crypto::secrets_hash(
            &installation,
            set.values.iter().map(|v| exsec::crypto::HashedEntry {
                name: v.key.as_str(),
                provider: v.provider.as_str(),
                value: v.value.expose_secret().as_bytes(),
            }),
        )
    };
    let config = crate::daemon::write_config(dir.path());
    let server = TestServer::start_config(dir, &config).await;
    // Done when the master key is needed by two wraps (one per tenant)
    // and nothing else: four values sealed directly under it before.
    let status = wait_for_keys(&server, Duration::from_secs(30), |s| {
        s["keys"][0]["records"] == 2
    })
    .await;
    assert_eq!(status["rotation"]["remaining"], 0, "{status}");
    let deploy = server.deploy_ok("web").await;
    assert_eq!(deploy["external_secrets"]["status"], "injected", "{deploy}");
    assert_eq!(deploy["secrets_hash"], hash_before.as_str(), "{deploy}");
    let values = server.manifest_values("web").unwrap();
    assert_eq!(values["OPENAI_API_KEY"], "sk-fixture-app-override");
    assert_eq!(values["STRIPE_KEY"], "rk-fixture-stripe");

    let dir = server.stop().await;
    let (keyring, store) = crate::harness::open_offline(dir.path());
    let records = store
        .read(|r| {
            let mut all = Vec::new();
            for scope in [tenant_scope("acme"), tenant_scope("beta"), app_scope("web")] {
                all.extend(r.secrets(&scope)?);
            }
            Ok(all)
        })
        .unwrap();
    assert_eq!(records.len(), 4);
    let mut opened: Vec<String> = records
        .iter()
        .map(|record| {
            assert!(
                matches!(record.sealed.sealer, Sealer::DataKey(_)),
                "{record:?}"
            );
            open_stored(&store, &keyring, record)
        })
        .collect();
    opened.sort();
    assert_eq!(
        opened,
        [
            "rk-fixture-stripe",
            "sk-fixture-app-override",
            "sk-fixture-beta",
            "sk-fixture-tenant-default",
        ]
    );
}

/// What the API does for a write: the tenant's current data key (made on
/// first use), the value sealed under it.
fn seal_under_data_key(
    store: &Store,
    shared: &SharedKeyring,
    owner: &TenantId,
    scope: &Scope,
    key: &str,
    value: &str,
) -> PutSecret {
    let lookup = owner.clone();
    let mut wraps = store.read(move |r| r.data_keys(&lookup)).unwrap();
    let keyring = shared.snapshot();
    let active = keyring.active().unwrap().clone();
    let fingerprint = keyring.fingerprint(&active).unwrap();
    if wraps.is_empty() {
        let dek_id = DataKeyId::generate().unwrap();
        let wrapped = keyring
            .wrap_data_key(owner, &dek_id, &DataKey::generate().unwrap())
            .unwrap();
        let owner = owner.clone();
        wraps = store
            .write(move |w| w.add_data_key(&owner, None, &dek_id, wrapped.clone(), fingerprint))
            .unwrap();
    }
    crate::harness::put_sealed(scope, "p", key, value, fingerprint, |location, value| {
        shared.tenant_keys(owner, &wraps).seal(location, value)
    })
}

/// The tenant number in a record's owner id (`t7` or `t7-web` → `7`).
fn tenant_of(record: &SecretRecord) -> String {
    let owner = record.scope.owner();
    owner
        .trim_start_matches('t')
        .split('-')
        .next()
        .unwrap()
        .to_owned()
}

/// SPEC §11.4 crypto-shredding: `exsec tenants shred` removes the tenant,
/// its apps (and their manifests, pins and queued redeploys), secrets and
/// their kept versions, tokens and wrapped data keys in one transaction,
/// audited with names and counts; a sealed value copied from the file
/// before, live or kept, cannot be opened with the master key afterwards;
/// the other tenant is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shredded_tenant_is_gone_and_its_copied_values_do_not_open() {
    // Queued redeploys wait (a quiet period longer than the test).
    let server = TestServer::start_with(crate::server::Options {
        deploy_config: "auto_redeploy_quiet = \"1h\"\nauto_redeploy_max_delay = \"1h\"\n"
            .to_owned(),
        ..crate::server::Options::default()
    })
    .await;
    server.seed("acme", &["web", "api"]).await;
    server.seed("beta", &["shop"]).await;
    let auto = serde_json::json!({"tenant_id": "acme", "auto_redeploy": true}).to_string();
    let answer = server.admin("PUT", "/v1/apps/api", Some(&auto)).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    created_openai_keys(
        &server,
        &[
            ("/v1/tenants/acme", "sk-acme-tenant-old"),
            ("/v1/apps/web", "sk-acme-web"),
            ("/v1/tenants/beta", "sk-beta"),
        ],
    )
    .await;
    server.mint("acme").await;
    let first = server.deploy_ok("web").await;
    server.deploy_ok("api").await;
    // web pinned to its first deploy, then a new tenant value: the old one
    // becomes a kept version and api's redeploy is queued (it reads the
    // tenant value; web overrides it).
    let rollback = server
        .deploy(
            "web",
            serde_json::json!({ "rollback_to": first["deploy_id"] }),
        )
        .await;
    assert_eq!(rollback.status, 201, "{}", rollback.text());
    server
        .set_secret_ok(
            "/v1/tenants/acme",
            "openai",
            "OPENAI_API_KEY",
            "sk-acme-tenant",
        )
        .await;
    let web = server.admin("GET", "/v1/apps/web", None).await.json();
    assert_eq!(web["pinned_to"], first["deploy_id"], "{web}");
    let api = server.admin("GET", "/v1/apps/api", None).await.json();
    assert!(api.get("redeploy_queued").is_some(), "{api}");
    assert!(server.manifest("web").is_some());

    // A copy of acme's sealed values (live and kept) and wraps, taken from
    // the file.
    let dir = server.stop().await;
    let (copied, copied_wraps) = {
        let store = Store::open(&dir.path().join("exsec.redb"), options()).unwrap();
        store
            .read(|r| {
                let mut records = r.secrets(&tenant_scope("acme"))?;
                records.extend(r.secrets(&app_scope("web"))?);
                let old = kept_version(r, &records[0], 1)?;
                records.push(old);
                Ok((records, r.data_keys(&tenant("acme"))?))
            })
            .unwrap()
    };
    assert_eq!((copied.len(), copied_wraps.len()), (3, 1));
    let server = TestServer::restart(dir).await;

    crate::operator::admin_run(&server, "tenants shred acme", None)
        .await
        .expect(2);
    let shred = crate::operator::admin_run(&server, "tenants shred acme --yes", None).await;
    shred.expect(0);
    shred.stdout_has("shredded tenant acme");
    assert_eq!(
        server.admin("GET", "/v1/tenants/acme", None).await.status,
        404
    );
    assert_eq!(server.admin("GET", "/v1/apps/web", None).await.status, 404);
    assert!(
        server.manifest("web").is_none(),
        "the app's plaintext left the cluster"
    );
    let shredded = server.the_audit_event("tenant.crypto_shredded").await;
    let data = &shredded["data"];
    assert_eq!(data["apps"], serde_json::json!(["api", "web"]));
    assert_eq!(data["secrets_removed"], 1);
    assert_eq!(data["tokens_revoked"], 1);
    assert_eq!(data["data_keys_destroyed"], 1);
    assert!(!shredded.to_string().contains("sk-acme"));
    let deploy = server.deploy_ok("shop").await;
    assert_eq!(deploy["external_secrets"]["status"], "injected");
    assert_eq!(
        server.manifest_values("shop").unwrap()["OPENAI_API_KEY"],
        "sk-beta"
    );

    let dir = server.stop().await;
    let (keyring, store) = crate::harness::open_offline(dir.path());
    let (left, versions, wraps, tokens, queued, usage) = store
        .read(|r| {
            let mut left = r.secrets(&tenant_scope("acme"))?;
            left.extend(r.secrets(&app_scope("web"))?);
            let mut versions = Vec::new();
            for record in &copied {
                versions.extend(r.secret_versions(&record.scope, &record.provider, &record.key)?);
            }
            Ok((
                left,
                versions,
                r.data_keys(&tenant("acme"))?,
                r.tokens(&tenant("acme"))?.len(),
                r.redeploy_queue()?,
                r.key_usage()?,
            ))
        })
        .unwrap();
    assert!(left.is_empty() && versions.is_empty() && wraps.is_empty() && tokens == 0);
    assert!(queued.is_empty(), "{queued:?}");
    // The master key now wraps beta's data key only.
    assert_eq!(usage.values().sum::<u64>(), 1, "{usage:?}");
    let keys_now =
        DataKeyCache::default().tenant_keys(Arc::clone(&keyring), &tenant("acme"), &wraps);
    let keys_before =
        DataKeyCache::default().tenant_keys(Arc::clone(&keyring), &tenant("acme"), &copied_wraps);
    for record in &copied {
        let location = record.location();
        assert!(keys_now.open(&location, &record.sealed).is_err());
        assert!(keyring.open(&location, &record.sealed).is_err());
        // Proof the copy was good: with the wrap as it was, it opens.
        assert!(keys_before.open(&location, &record.sealed).is_ok());
    }
    let old = &copied[2];
    let location = SecretLocation {
        scope: &old.scope,
        provider: &old.provider,
        key: &old.key,
    };
    let opened = keys_before.open(&location, &old.sealed).unwrap();
    assert_eq!(opened.expose_secret(), "sk-acme-tenant-old");
}

/// Kept `version` of `record`'s secret as a record (its sealed value).
fn kept_version(
    r: &exsec::store::Reader,
    record: &SecretRecord,
    version: u64,
) -> Result<SecretRecord, exsec::store::StoreError> {
    let KeptValue::Sealed(sealed) =
        r.secret_version(&record.scope, &record.provider, &record.key, version)?
    else {
        panic!("version {version} of {} has no value", record.key);
    };
    Ok(SecretRecord {
        sealed,
        version,
        ..record.clone()
    })
}

/// Sets `openai/OPENAI_API_KEY` to each value in its scope; each is new
/// (201).
async fn created_openai_keys(server: &TestServer, values: &[(&str, &str)]) {
    for (scope, value) in values {
        let answer = server
            .set_secret(scope, "openai", "OPENAI_API_KEY", value)
            .await;
        assert_eq!(answer.status, 201, "{scope}: {}", answer.text());
    }
}
