//! Atomic bulk writes (`PUT …/external-secrets`, SPEC §11.2) against a
//! real server over loopback: all or nothing, one audit event per changed
//! key, `replace`, never a value in an answer or the audit log; and the
//! same rule one layer down, on a real redb file.

use exsec::store::{BulkItem, BulkPut, RepeatedKey, SecretOutcome, StoreError};
use serde_json::{Value, json};

use crate::harness::{TestStore, app, app_scope, open_record, tenant, tenant_scope};
use crate::server::{TestServer, bulk_body, provider_keys};

const APP_SECRETS: &str = "/v1/apps/web/external-secrets";
const TENANT_SECRETS: &str = "/v1/tenants/acme/external-secrets";

/// What a scope holds (metadata, versions and times) plus the audit head:
/// equal before and after exactly when nothing was written.
async fn state(server: &TestServer) -> (String, String, u64) {
    let tenant = server.admin("GET", TENANT_SECRETS, None).await.text();
    let app = server.admin("GET", APP_SECRETS, None).await.text();
    (tenant, app, server.audit_seq().await)
}

/// `(provider/key, outcome)` of a bulk answer, in its order.
fn outcomes(answer: &Value) -> Vec<(String, String)> {
    let outcomes = answer["secrets"].as_array().unwrap().iter();
    provider_keys(&answer["secrets"])
        .into_iter()
        .zip(outcomes.map(|s| s["outcome"].as_str().unwrap().to_owned()))
        .collect()
}

/// Whether `value` is what the scope stores for `provider/key`.
async fn stored(server: &TestServer, scope: &str, provider: &str, key: &str, value: &str) -> bool {
    let path = format!("{scope}/external-secrets/{provider}/{key}/verify");
    let body = json!({ "value": value }).to_string();
    let answer = server.admin("POST", &path, Some(&body)).await;
    assert_eq!(answer.status, 200, "{path}: {}", answer.text());
    answer.json()["match"] == true
}

#[tokio::test]
async fn a_bulk_write_refused_on_its_last_item_changes_nothing() {
    let server = TestServer::start().await;
    server.seed("acme", &["web"]).await;
    server
        .set_secret_ok("/v1/apps/web", "db", "DB_USER", "old-user")
        .await;
    let before = state(&server).await;

    // Refused while parsing: the problem names the item and field.
    let answer = server
        .bulk_write(
            "/v1/apps/web",
            &[
                ("db", "DB_USER", "new-user-value"),
                ("db", "DB_PASSWORD", "new-password-value"),
                ("db", "DB_HOST", "bad\u{0}value"),
            ],
        )
        .await;
    let problem = answer.assert_problem(400, "invalid_value");
    assert_eq!(problem["index"], 2, "{problem}");
    assert_eq!(problem["field"], "value", "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .starts_with("secrets[2].value: ")
    );
    assert!(!answer.text().contains("bad\\u0000"), "{}", answer.text());
    assert!(!answer.text().contains("bad\u{0}"), "{}", answer.text());
    assert!(!answer.text().contains("new-"), "{}", answer.text());
    assert_eq!(state(&server).await, before);

    // The same env var twice.
    let answer = server
        .bulk_write(
            "/v1/apps/web",
            &[
                ("db", "DB_USER", "new-user-value"),
                ("other", "DB_USER", "x"),
            ],
        )
        .await;
    let problem = answer.assert_problem(422, "duplicate_key");
    assert_eq!(problem["index"], 1, "{problem}");
    assert_eq!(state(&server).await, before);

    // Refused inside the write transaction, after the earlier items were
    // written in it: the app's effective set would pass 1 MiB only once
    // the last item lands (the tenant holds 15 × 64 KiB).
    let big = "t".repeat(64 * 1024);
    for n in 0..15 {
        server
            .set_secret_ok("/v1/tenants/acme", "fill", &format!("FILL_{n}"), &big)
            .await;
    }
    let before = state(&server).await;
    let chunk = "a".repeat(40 * 1024);
    let answer = server
        .bulk_write(
            "/v1/apps/web",
            &[
                ("db", "DB_USER", "new-user-value"),
                ("db", "DB_PASSWORD", &chunk),
                ("db", "DB_HOST", &chunk),
            ],
        )
        .await;
    answer.assert_problem(422, "effective_set_too_large");
    assert!(!answer.text().contains("new-user-value"));
    assert_eq!(state(&server).await, before);
    assert!(stored(&server, "/v1/apps/web", "db", "DB_USER", "old-user").await);
    server.stop().await;
}

#[tokio::test]
async fn a_bulk_write_sets_every_key_with_one_audit_event_each_and_no_value() {
    let server = TestServer::start().await;
    server.seed("acme", &["web"]).await;
    server
        .set_secrets_ok(&[
            ("/v1/apps/web", "db", "DB_USER", "old-user"),
            ("/v1/apps/web", "cache", "REDIS_URL", "redis-untouched"),
        ])
        .await;
    let seq = server.audit_seq().await;

    let answer = server
        .bulk_write(
            "/v1/apps/web",
            &[
                ("db", "DB_USER", "user-value-2"),
                ("db", "DB_PASSWORD", "password-value-1"),
            ],
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert!(!answer.text().contains("-value-"), "{}", answer.text());
    let answer = answer.json();
    assert_eq!(
        outcomes(&answer),
        [
            ("db/DB_USER".to_owned(), "updated".to_owned()),
            ("db/DB_PASSWORD".to_owned(), "created".to_owned()),
        ]
    );
    assert_eq!(answer["secrets"][0]["version"], 2);
    assert_eq!(answer["secrets"][1]["version"], 1);

    let events: Vec<Value> = server
        .audit_events()
        .await
        .into_iter()
        .filter(|e| e["seq"].as_u64().unwrap() > seq)
        .collect();
    let written: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["data"]["key"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        written,
        [
            ("external_secret.updated", "DB_USER"),
            ("external_secret.created", "DB_PASSWORD"),
        ]
    );
    assert!(
        events
            .iter()
            .all(|e| e["app_id"] == "web" && e["tenant_id"] == "acme")
    );
    let audit = serde_json::to_string(&events).unwrap();
    assert!(!audit.contains("-value-"), "{audit}");

    assert!(stored(&server, "/v1/apps/web", "db", "DB_USER", "user-value-2").await);
    assert!(
        stored(
            &server,
            "/v1/apps/web",
            "db",
            "DB_PASSWORD",
            "password-value-1"
        )
        .await
    );
    assert!(
        stored(
            &server,
            "/v1/apps/web",
            "cache",
            "REDIS_URL",
            "redis-untouched"
        )
        .await
    );
    server.stop().await;
}

#[tokio::test]
async fn replace_deletes_the_unlisted_and_may_move_a_key_to_another_provider() {
    let server = TestServer::start().await;
    server.seed("acme", &["web"]).await;
    for (provider, key) in [
        ("openai", "OPENAI_API_KEY"),
        ("legacy", "OLD_TOKEN"),
        ("legacy", "MOVED"),
    ] {
        server
            .set_secret_ok("/v1/tenants/acme", provider, key, "before")
            .await;
    }

    // Without replace, MOVED is still set by `legacy`: refused, naming the item.
    let items = [
        ("openai", "OPENAI_API_KEY", "after"),
        ("vault", "MOVED", "after"),
    ];
    let answer = server.bulk_write("/v1/tenants/acme", &items).await;
    let problem = answer.assert_problem(409, "env_name_taken");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .starts_with("secrets[1].key: "),
        "{problem}"
    );

    let answer = server
        .admin("PUT", TENANT_SECRETS, Some(&bulk_body(&items, true)))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let answer = answer.json();
    assert_eq!(
        outcomes(&answer),
        [
            ("openai/OPENAI_API_KEY".to_owned(), "updated".to_owned()),
            ("vault/MOVED".to_owned(), "created".to_owned()),
            ("legacy/MOVED".to_owned(), "deleted".to_owned()),
            ("legacy/OLD_TOKEN".to_owned(), "deleted".to_owned()),
        ]
    );
    assert_eq!(answer["secrets"][2]["version"], Value::Null);
    let names = server.secret_names("/v1/tenants/acme").await;
    assert_eq!(names, ["openai/OPENAI_API_KEY", "vault/MOVED"]);
    assert_eq!(server.audit_count("external_secret.deleted").await, 2);

    // An empty list with replace empties the scope.
    let answer = server
        .admin("PUT", TENANT_SECRETS, Some(&bulk_body(&[], true)))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let listed = server.admin("GET", TENANT_SECRETS, None).await.json();
    assert_eq!(listed["secrets"], json!([]));
    server.stop().await;
}

#[tokio::test]
async fn a_tenant_token_writes_its_own_scopes_and_sees_no_other_tenant() {
    let server = TestServer::start().await;
    server.seed("acme", &["web"]).await;
    server.seed("globex", &["shop"]).await;
    let acme = server.mint("acme").await;
    let body = bulk_body(&[("db", "DB_USER", "user")], false);
    for path in [
        "/v1/tenants/globex/external-secrets",
        "/v1/apps/shop/external-secrets",
    ] {
        let answer = server.call("PUT", path, Some(&acme), Some(&body)).await;
        assert_eq!(answer.status, 404, "{path}: {}", answer.text());
        let listed = server.admin("GET", path, None).await.json();
        assert_eq!(listed["secrets"], json!([]), "{path}");
    }
    for path in [TENANT_SECRETS, APP_SECRETS] {
        let answer = server.call("PUT", path, Some(&acme), Some(&body)).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.text());
    }
    server.stop().await;
}

#[tokio::test]
async fn too_many_items_are_refused_before_anything_is_sealed() {
    let server = TestServer::start().await;
    server.seed("acme", &["web"]).await;
    let keys: Vec<String> = (0..=exsec::api::handlers::MAX_BULK_SECRETS)
        .map(|n| format!("K{n}"))
        .collect();
    let items: Vec<(&str, &str, &str)> = keys.iter().map(|k| ("p", k.as_str(), "v")).collect();
    let answer = server.bulk_write("/v1/apps/web", &items).await;
    answer.assert_problem(422, "too_many_secrets");
    let listed = server.admin("GET", APP_SECRETS, None).await.json();
    assert_eq!(listed["secrets"], json!([]));
    server.stop().await;
}

/// One layer down: a bulk write whose last item breaks a rule only the
/// written state can show (the effective-set limit, checked after every
/// item is in the transaction) leaves the file as it was.
#[test]
fn store_bulk_write_is_all_or_nothing() {
    let t = TestStore::new();
    t.store
        .write(|w| {
            w.put_tenant(&tenant("acme"), "admin")?;
            w.put_app(&app("web"), &tenant("acme"), Default::default(), "admin")
                .map(drop)
        })
        .unwrap();
    let big = "t".repeat(64 * 1024);
    for n in 0..15 {
        let fill = t.sealed(&tenant_scope("acme"), "fill", &format!("FILL_{n}"), &big);
        t.store
            .write(move |w| w.put_secret(fill.clone(), "admin").map(drop))
            .unwrap();
    }
    let scope = app_scope("web");
    let first = t.sealed(&scope, "db", "DB_USER", "old-user");
    t.store
        .write(move |w| w.put_secret(first.clone(), "admin").map(drop))
        .unwrap();
    let snapshot = |t: &TestStore| {
        t.store
            .read(|r| {
                Ok((
                    r.secrets(&app_scope("web"))?,
                    r.key_usage()?,
                    r.audit_head()?,
                ))
            })
            .unwrap()
    };
    let before = snapshot(&t);
    let item = |key: &str, value: &str| {
        let put = t.sealed(&scope, "db", key, value);
        BulkItem {
            provider: put.provider,
            key: put.key,
            sealed: put.sealed,
            fingerprint: put.fingerprint,
        }
    };
    let chunk = "a".repeat(40 * 1024);
    let items = vec![
        item("DB_USER", "new-user"),
        item("DB_PASSWORD", &chunk),
        item("DB_HOST", &chunk),
    ];
    let bulk = BulkPut::new(scope.clone(), items, false).unwrap();
    let error = t
        .store
        .write(move |w| w.put_secrets(bulk.clone(), "admin"))
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::Rejected(exsec::store::Rejected::EffectiveSetTooLarge { .. })
        ),
        "{error}"
    );
    let after = snapshot(&t);
    assert_eq!(after.0, before.0);
    assert_eq!(after.1, before.1);
    assert_eq!(after.2.seq, before.2.seq);
    assert_eq!(open_record(&t.keyring, &after.0[0]), "old-user");

    // Each env var name once, whatever the provider.
    let repeated = BulkPut::new(scope.clone(), vec![item("A", "1"), item("A", "2")], false);
    assert!(matches!(
        repeated.err(),
        Some(RepeatedKey {
            first: 0,
            second: 1
        })
    ));

    // Within the limit, with replace: DB_PASSWORD created, the unlisted
    // DB_USER deleted.
    let bulk = BulkPut::new(scope.clone(), vec![item("DB_PASSWORD", "pw")], true).unwrap();
    let written = t
        .store
        .write(move |w| w.put_secrets(bulk.clone(), "admin"))
        .unwrap();
    let done: Vec<(&str, SecretOutcome)> = written
        .outcomes
        .iter()
        .map(|o| (o.key.as_str(), o.outcome))
        .collect();
    assert_eq!(
        done,
        [
            ("DB_PASSWORD", SecretOutcome::Created),
            ("DB_USER", SecretOutcome::Deleted),
        ]
    );
    let records = t.store.read(|r| r.secrets(&app_scope("web"))).unwrap();
    assert_eq!(open_record(&t.keyring, &records[0]), "pw");
    assert_eq!(records.len(), 1);
}
