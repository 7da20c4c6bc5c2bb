//! A tenant data-key rotation (SPEC §11.4, issue 17 item 3): `POST
//! /v1/tenants/{id}/rotate-data-key` makes a new current data key, and the
//! job re-seals the tenant's values (live and kept versions) under it in
//! the background and deletes the older key once nothing needs it. Under
//! concurrent writes and deploys nothing is lost; a SIGKILL in the middle
//! resumes at the next start; a pass that fails on a read-only disk runs
//! again once the store heals, without a key change or a restart.

use std::collections::BTreeMap;

use std::sync::Arc;

use exsec::crypto::{DataKey, DataKeyCache, DataKeyId, Keyring, Sealer};
use exsec::store::data_keys::DataKeyInfo;
use exsec::store::{AuditFilter, Rejected, Store};
use serde_json::{Value, json};

use crate::daemon::Daemon;
use crate::harness::{TestStore, eventually, key_id, options, put_sealed, tenant, tenant_scope};
use crate::operator::admin_run;
use crate::server::{Options, TestServer};
use crate::tmpfs::Tmpfs;

const APPS: [&str; 2] = ["web", "api"];
/// Values per scope (the tenant's and each app's); each is written twice,
/// so every one also has a kept version.
const KEYS: usize = 150;

/// `{scope path → {env var → value}}`: the last acknowledged writes.
type Written = BTreeMap<String, BTreeMap<String, String>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_key_rotation_under_writes_and_deploys_loses_nothing() {
    let server = TestServer::start().await;
    server.seed("acme", &APPS).await;
    server.seed("beta", &["shop"]).await;
    let mut written = seed_values(&server, "acme", 2).await;
    server
        .set_secret_ok("/v1/tenants/beta", "openai", "BETA_KEY", "sk-beta")
        .await;
    for app in APPS {
        server.deploy_ok(app).await;
    }
    let old = data_key(&server, "acme").await;
    let beta = data_key(&server, "beta").await;
    assert_eq!(old["resealing"], Value::Null, "{old}");

    let rotated = admin_run(&server, "tenants rotate-key acme --output json", None).await;
    rotated.expect(0);
    let answer: Value = serde_json::from_str(&rotated.stdout).unwrap();
    let new = &answer["data_key"];
    assert_ne!(new["id"], old["id"], "{answer}");
    // Every value and every kept version of acme moves: 3 scopes × KEYS
    // keys × (live + one kept version).
    let values = (1 + APPS.len()) * KEYS * 2;
    assert_eq!(new["resealing"]["remaining"], values, "{answer}");

    // Writes and deploys while the job runs; each acknowledged write is
    // remembered as what a deploy must inject afterwards.
    let writes = async {
        for round in 0..20 {
            for scope in scopes("acme") {
                let key = format!("KEY_{:03}", (round * 7) % KEYS);
                let value = format!("sk-{}-round-{round}", scope.replace('/', "-"));
                let answer = server.set_secret(&scope, "openai", &key, &value).await;
                assert_eq!(answer.status, 200, "{}", answer.text());
                written.entry(scope).or_default().insert(key, value);
            }
        }
        written
    };
    let deploys = async {
        for round in 0..10 {
            let answer = server
                .deploy(
                    APPS[round % 2],
                    json!({ "image_ref": format!("nginx:1.{round}") }),
                )
                .await;
            assert_eq!(answer.status, 201, "{}", answer.text());
            assert_eq!(answer.json()["external_secrets"]["status"], "injected");
        }
    };
    let (written, ()) = tokio::join!(writes, deploys);

    let done = resealed(&server, "acme", "the rotation finishes").await;
    assert_eq!(done["id"], new["id"]);
    let keys = server.admin("GET", "/v1/keys", None).await.json();
    assert_eq!(keys["data_key_rotations"], json!([]), "{keys}");

    // A deploy injects exactly the last acknowledged value of every key.
    for app in APPS {
        server.deploy_ok(app).await;
        let mut expected = written["/v1/tenants/acme"].clone();
        expected.extend(written[&format!("/v1/apps/{app}")].clone());
        assert_eq!(server.manifest_values(app).unwrap(), expected, "{app}");
    }
    // A kept version still opens: version 1 of a key the writers never
    // touched is its first value.
    let verify = server
        .admin(
            "POST",
            "/v1/tenants/acme/external-secrets/openai/KEY_001/verify?version=1",
            Some(&json!({ "value": first_value("/v1/tenants/acme", 1) }).to_string()),
        )
        .await;
    assert_eq!(verify.json()["match"], true, "{}", verify.text());

    // Audited: the rotation, then the old key's retirement; ids only.
    let rotation = server.the_audit_event("tenant.data_key_rotated").await;
    assert_eq!(rotation["data"]["data_key_id"], new["id"]);
    assert_eq!(rotation["data"]["previous_data_key_id"], old["id"]);
    let retired = server.the_audit_event("tenant.data_key_retired").await;
    assert_eq!(retired["tenant_id"], "acme");
    assert_eq!(retired["data"]["data_key_id"], old["id"]);
    assert!(!retired.to_string().contains("sk-"), "{retired}");
    admin_run(&server, "audit verify", None).await.expect(0);

    // In the file: one wrap left, every value of acme under it; beta as it
    // was.
    let dir = server.stop().await;
    let store = Store::open(&dir.path().join("exsec.redb"), options()).unwrap();
    let (wraps, usage, beta_info) = store
        .read(|r| {
            Ok((
                r.data_keys(&tenant("acme"))?,
                r.data_key_use(&tenant("acme"))?,
                r.data_key_info(&tenant("beta"))?,
            ))
        })
        .unwrap();
    let new_id = DataKeyId::parse(new["id"].as_str().unwrap()).unwrap();
    assert_eq!(
        wraps.iter().map(|(id, _)| id).collect::<Vec<_>>(),
        [&new_id]
    );
    assert_eq!(usage.keys().collect::<Vec<_>>(), [&new_id], "{usage:?}");
    assert_eq!(beta_info.unwrap().id.as_str(), beta["id"].as_str().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_key_rotation_killed_mid_way_resumes_at_the_next_start() {
    let mut server = TestServer::spawn_with(Options::default()).await;
    server.seed("acme", &APPS).await;
    let written = seed_values(&server, "acme", 4).await;
    let mut rotations = Vec::new();
    // A pass that outran the kill is retried with another rotation.
    for attempt in 1..=4 {
        let answer = server
            .admin("POST", "/v1/tenants/acme/rotate-data-key", None)
            .await;
        assert_eq!(answer.status, 202, "{}", answer.text());
        let started = answer.json()["data_key"].clone();
        rotations.push(started["id"].clone());
        let total = started["resealing"]["remaining"].as_u64().unwrap();
        // The readiness signal: at least one batch landed.
        let seen = eventually("a first batch lands", || async {
            let key = data_key(&server, "acme").await;
            match key["resealing"]["remaining"].as_u64() {
                Some(left) if left < total => Ok(Some(left)),
                Some(_) => Err(key.to_string()),
                None => Ok(None),
            }
        })
        .await;
        server.process.take().unwrap().kill();
        // What the kill left: values still under older data keys.
        let left = {
            let store = Store::open(&server.path("exsec.redb"), options()).unwrap();
            let (wraps, usage) = store
                .read(|r| {
                    Ok((
                        r.data_keys(&tenant("acme"))?,
                        r.data_key_use(&tenant("acme"))?,
                    ))
                })
                .unwrap();
            let current = &wraps.last().unwrap().0;
            usage
                .iter()
                .filter(|(id, _)| *id != current)
                .map(|(_, n)| n)
                .sum::<u64>()
        };
        let config = server.path("config.toml");
        server = TestServer::attached(server.dir, Daemon::start(&config, &[]));
        let Some(seen) = seen.filter(|_| left > 0) else {
            eprintln!("attempt {attempt}: the pass finished before SIGKILL; rotating again");
            continue;
        };
        assert!(
            left <= seen,
            "values went back under older keys: {left} > {seen}"
        );
        let done = resealed(&server, "acme", "the resumed rotation finishes").await;
        assert_eq!(&done["id"], rotations.last().unwrap());
        for app in APPS {
            server.deploy_ok(app).await;
            let mut expected = written["/v1/tenants/acme"].clone();
            expected.extend(written[&format!("/v1/apps/{app}")].clone());
            assert_eq!(server.manifest_values(app).unwrap(), expected, "{app}");
        }
        let retired = server.audit_events_of("tenant.data_key_retired").await;
        assert_eq!(retired.len(), rotations.len(), "{retired:?}");
        admin_run(&server, "audit verify", None).await.expect(0);
        return;
    }
    panic!("every pass finished before SIGKILL");
}

/// Issue 17: a re-seal pass that fails on a storage fault used to wait for
/// the next key change or restart; it now runs again once the store heals.
#[tokio::test(flavor = "multi_thread")]
async fn a_rotation_that_failed_on_a_read_only_disk_resumes_once_it_heals() {
    let test = "a_rotation_that_failed_on_a_read_only_disk_resumes_once_it_heals";
    let Some(tmpfs) = Tmpfs::mount(test, "8m") else {
        return;
    };
    let db = tmpfs.path().join("exsec.redb");
    let mut server = TestServer::spawn_with(Options {
        storage_path: Some(db.clone()),
        ..Options::default()
    })
    .await;
    server.seed("acme", &["web"]).await;
    let written = seed_values(&server, "acme", 1).await;
    let old = data_key(&server, "acme").await;

    // Stopped with a rotation made but no value moved yet: a new data key
    // added to the file offline, as the API adds it.
    server.process.take().unwrap().kill();
    let keys_dir = server.path("keys.d");
    let scan = exsec::crypto::scan_dir(&keys_dir, false).unwrap();
    let (keyring, _) = Keyring::assemble(scan, &BTreeMap::new(), None);
    {
        let store = Store::open(&db, options()).unwrap();
        rotate_data_key(&store, &keyring, "acme");
    }
    tmpfs.remount(true).unwrap();
    let daemon = Daemon::start(&server.path("config.toml"), &[]);
    let server = TestServer::try_attached(server.dir, daemon)
        .unwrap_or_else(|(_, tail)| panic!("no start on a read-only file system:\n{tail}"));
    let log = server.process.as_ref().unwrap();
    log.wait_for_line(|line| {
        line.contains("re-sealing pass failed") && line.contains("once the store is healthy")
    });
    let stuck = data_key(&server, "acme").await;
    assert_eq!(
        stuck["resealing"]["remaining"].as_u64(),
        // The tenant's and web's values, each live and one kept version.
        Some((2 * KEYS * 2) as u64),
        "{stuck}"
    );

    // Writable again: the probe heals the store and the job resumes; no
    // write, key change or restart asks it to.
    tmpfs.remount(false).unwrap();
    let done = resealed(&server, "acme", "the rotation finishes after the heal").await;
    assert_ne!(done["id"], old["id"]);
    server.deploy_ok("web").await;
    let mut expected = written["/v1/tenants/acme"].clone();
    expected.extend(written["/v1/apps/web"].clone());
    assert_eq!(server.manifest_values("web").unwrap(), expected);
    admin_run(&server, "audit verify", None).await.expect(0);
}

/// The store-level rule that makes retiring an older key safe: a value
/// freshly sealed under a data key that is no longer current is refused
/// (`data_key_changed`; the API seals it again), and retiring never
/// deletes the current key.
#[test]
fn a_value_sealed_under_a_replaced_data_key_is_refused() {
    let test = TestStore::new();
    let store = &test.store;
    store
        .write(|w| w.put_tenant(&tenant("acme"), "test").map(drop))
        .unwrap();
    let rotate = || rotate_data_key(store, &test.keyring, "acme");
    let first = rotate();
    assert_eq!(first.older, 0);
    let wraps = store.read(|r| r.data_keys(&tenant("acme"))).unwrap();
    let keys =
        DataKeyCache::default().tenant_keys(Arc::clone(&test.keyring), &tenant("acme"), &wraps);
    let put = put_sealed(
        &tenant_scope("acme"),
        "openai",
        "K",
        "v1",
        test.keyring.fingerprint(&key_id("k1")).unwrap(),
        |location, value| keys.seal(location, value),
    );
    assert!(matches!(&put.sealed.sealer, Sealer::DataKey(id) if *id == first.id));
    let stored = put.clone();
    store
        .write(move |w| w.put_secret(stored.clone(), "test").map(drop))
        .unwrap();

    let second = rotate();
    assert_eq!(second.older, 1);
    let refused = store
        .write(move |w| w.put_secret(put.clone(), "test").map(drop))
        .unwrap_err();
    assert!(
        matches!(refused.rejected(), Some(Rejected::DataKeyChanged { .. })),
        "{refused}"
    );
    // One value still under the first key, none under the second.
    let usage = store.read(|r| r.data_key_use(&tenant("acme"))).unwrap();
    assert_eq!(usage, BTreeMap::from([(first.id.clone(), 1)]));
    // The current key is never retired, whatever the caller asks.
    let current = second.id.clone();
    let retired = store
        .write(move |w| w.retire_data_keys(&tenant("acme"), std::slice::from_ref(&current), "test"))
        .unwrap();
    assert!(retired.is_empty(), "{retired:?}");
    let rotations = store
        .read(|r| {
            r.audit_events(&AuditFilter {
                event_type: Some("tenant.data_key_rotated".to_owned()),
                limit: 10,
                ..AuditFilter::default()
            })
        })
        .unwrap();
    assert_eq!(rotations.events.len(), 2);
}

/// `/v1/tenants/{tenant}`, then `/v1/apps/{app}` for each of [`APPS`].
fn scopes(tenant: &str) -> Vec<String> {
    std::iter::once(format!("/v1/tenants/{tenant}"))
        .chain(APPS.iter().map(|app| format!("/v1/apps/{app}")))
        .collect()
}

/// The first value of key `n` in `scope`.
fn first_value(scope: &str, n: usize) -> String {
    format!("sk-first-{}-{n:03}", scope.replace('/', "-"))
}

/// [`KEYS`] keys in the tenant's scope and in each of the first `apps` of
/// [`APPS`], each written twice (bulk writes), so every key also has a kept
/// version; returns the values now current.
async fn seed_values(server: &TestServer, tenant: &str, apps: usize) -> Written {
    let mut written = Written::new();
    let scopes: Vec<String> = scopes(tenant).into_iter().take(1 + apps).collect();
    for round in ["first", "second"] {
        for scope in &scopes {
            let secrets: Vec<Value> = (0..KEYS)
                .map(|n| {
                    let value = if round == "first" {
                        first_value(scope, n)
                    } else {
                        format!("sk-second-{}-{n:03}", scope.replace('/', "-"))
                    };
                    json!({ "provider": "openai", "key": format!("KEY_{n:03}"), "value": value })
                })
                .collect();
            let answer = server
                .admin(
                    "PUT",
                    &format!("{scope}/external-secrets"),
                    Some(&json!({ "secrets": secrets, "replace": false }).to_string()),
                )
                .await;
            assert_eq!(answer.status, 200, "{}", answer.text());
            let values = written.entry(scope.clone()).or_default();
            for secret in &secrets {
                values.insert(
                    secret["key"].as_str().unwrap().to_owned(),
                    secret["value"].as_str().unwrap().to_owned(),
                );
            }
        }
    }
    written
}

/// `data_key` of `GET /v1/tenants/{tenant}` once no value waits for a
/// re-seal (`resealing` is null); `what` names the wait in a failure.
async fn resealed(server: &TestServer, tenant: &str, what: &str) -> Value {
    eventually(what, || async {
        let key = data_key(server, tenant).await;
        if key["resealing"].is_null() {
            Ok(key)
        } else {
            Err(key.to_string())
        }
    })
    .await
}

/// `data_key` of `GET /v1/tenants/{tenant}`.
async fn data_key(server: &TestServer, tenant: &str) -> Value {
    let answer = server
        .admin("GET", &format!("/v1/tenants/{tenant}"), None)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["data_key"].clone()
}

/// Starts a data-key rotation of `tenant_id` as the API does: a new data
/// key wrapped under the active master key, the tenant's writes moved to it.
fn rotate_data_key(store: &Store, keyring: &Keyring, tenant_id: &str) -> DataKeyInfo {
    let dek_id = DataKeyId::generate().unwrap();
    let wrapped = keyring
        .wrap_data_key(&tenant(tenant_id), &dek_id, &DataKey::generate().unwrap())
        .unwrap();
    let fingerprint = keyring
        .fingerprint(keyring.active().expect("an active key"))
        .unwrap();
    let owner = tenant(tenant_id);
    store
        .write(move |w| w.rotate_data_key(&owner, &dek_id, wrapped.clone(), fingerprint, "test"))
        .unwrap()
}
