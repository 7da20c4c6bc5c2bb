//! The store against a real redb file: durability across reopen, the write
//! rules, audit events committed with their change, and the lock error.

use exsec::audit::{self, Anchor, event};
use exsec::crypto::SecretLocation;
use exsec::model::{EnvKey, Provider, Scope};
use exsec::store::reseal::ResealScope;
use exsec::store::{AuditFilter, Missing, OpenError, Rejected, Store, StoreError};

use crate::harness::*;

/// Everything written through one handle reads back after reopening the
/// file, including the audit chain, and values open to what was written.
#[test]
fn everything_survives_a_reopen() {
    let test = TestStore::new();
    let put_tenant = test.sealed(
        &tenant_scope("acme"),
        "openai",
        "OPENAI_API_KEY",
        "sk-tenant",
    );
    let put_app = test.sealed(&app_scope("web"), "openai", "OPENAI_API_KEY", "sk-app");
    test.store
        .write(move |w| {
            w.put_tenant(&tenant("acme"), "admin")?;
            w.put_app(&app("web"), &tenant("acme"), Default::default(), "admin")?;
            w.put_secret(put_tenant.clone(), "admin")?;
            w.put_secret(put_app.clone(), "admin")?;
            Ok(())
        })
        .unwrap();
    let path = test.path();
    let TestStore {
        dir,
        store,
        keyring,
    } = test;
    drop(store);

    let store = Store::open(&path, options()).unwrap();
    let (tenant_records, app_records, events) = store
        .read(|r| {
            assert!(r.tenant(&tenant("acme"))?.is_some());
            assert_eq!(r.app(&app("web"))?.unwrap().tenant_id, tenant("acme"));
            let mut events = Vec::new();
            r.for_each_audit_event(|e| {
                events.push(e);
                Ok(())
            })?;
            Ok((
                r.secrets(&tenant_scope("acme"))?,
                r.secrets(&app_scope("web"))?,
                events,
            ))
        })
        .unwrap();
    let open = |record| crate::harness::open_record(&keyring, record);
    assert_eq!(open(&tenant_records[0]), "sk-tenant");
    assert_eq!(open(&app_records[0]), "sk-app");
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            event::TENANT_CREATED,
            event::APP_CREATED,
            event::SECRET_CREATED,
            event::SECRET_CREATED
        ]
    );
    let head = audit::verify(Anchor::GENESIS, &events).unwrap();
    assert_eq!(store.read(|r| r.audit_head()).unwrap(), head);
    drop(dir);
}

/// A second open of a held file names the problem instead of panicking.
#[test]
fn a_held_file_gives_a_clear_error() {
    let test = TestStore::new();
    let error = Store::open(&test.path(), options())
        .err()
        .expect("second open must fail");
    assert!(matches!(error, OpenError::InUse { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("is in use by another exsec process"),
        "{error}"
    );
}

/// A failing closure leaves nothing behind: not the change, not its event.
#[test]
fn a_failed_write_keeps_nothing() {
    let test = TestStore::new();
    let result: Result<(), StoreError> = test.store.write(|w| {
        w.put_tenant(&tenant("acme"), "admin")?;
        w.put_app(&app("web"), &tenant("nope"), Default::default(), "admin")?;
        Ok(())
    });
    assert!(matches!(
        result,
        Err(StoreError::Rejected(Rejected::NotFound {
            kind: Missing::Tenant,
            ..
        }))
    ));
    test.store
        .read(|r| {
            assert!(r.tenant(&tenant("acme"))?.is_none());
            assert_eq!(r.audit_head()?, Anchor::GENESIS);
            Ok(())
        })
        .unwrap();
}

#[test]
fn write_rules_are_enforced() {
    let test = TestStore::new();
    test.store
        .write(|w| {
            w.put_tenant(&tenant("acme"), "admin")?;
            w.put_tenant(&tenant("other"), "admin")?;
            w.put_app(&app("web"), &tenant("acme"), Default::default(), "admin")?;
            Ok(())
        })
        .unwrap();

    // An app cannot move to another tenant.
    let moved = test
        .store
        .write(|w| w.put_app(&app("web"), &tenant("other"), Default::default(), "admin"));
    assert!(matches!(
        moved,
        Err(StoreError::Rejected(Rejected::AppTenantFixed { .. }))
    ));

    // A second provider for an env var name in the same scope is refused;
    // the same name in the other scope is fine.
    let first = test.sealed(&tenant_scope("acme"), "openai", "API_KEY", "a");
    let second = test.sealed(&tenant_scope("acme"), "azure", "API_KEY", "b");
    let other_scope = test.sealed(&app_scope("web"), "azure", "API_KEY", "c");
    test.store
        .write(move |w| w.put_secret(first.clone(), "admin"))
        .unwrap();
    let taken = test
        .store
        .write(move |w| w.put_secret(second.clone(), "admin"));
    assert!(matches!(
        taken,
        Err(StoreError::Rejected(Rejected::EnvNameTaken { .. }))
    ));
    test.store
        .write(move |w| w.put_secret(other_scope.clone(), "admin"))
        .unwrap();

    // A tenant with apps cannot be deleted.
    let busy = test
        .store
        .write(|w| w.delete_tenant(&tenant("acme"), "admin"));
    assert!(matches!(
        busy,
        Err(StoreError::Rejected(Rejected::TenantHasApps { .. }))
    ));
}

#[test]
fn versions_and_timestamps_follow_replacements() {
    let test = TestStore::new();
    test.store
        .write(|w| w.put_tenant(&tenant("acme"), "admin").map(drop))
        .unwrap();
    let v1 = test.sealed(&tenant_scope("acme"), "openai", "K", "one");
    let v2 = test.sealed(&tenant_scope("acme"), "openai", "K", "two");
    let first = test
        .store
        .write(move |w| w.put_secret(v1.clone(), "admin"))
        .unwrap();
    let second = test
        .store
        .write(move |w| w.put_secret(v2.clone(), "admin"))
        .unwrap();
    assert!(first.created);
    assert!(!second.created);
    assert_eq!(first.record.version, 1);
    assert_eq!(second.record.version, 2);
    assert_eq!(second.record.created_at, first.record.created_at);
    assert!(second.record.updated_at >= first.record.updated_at);
    // Version 1 is kept in the history: two sealed values under k1.
    let usage = test.store.read(|r| r.key_usage()).unwrap();
    assert_eq!(usage.get("k1"), Some(&2));
}

/// A tenant-wide write that would push one of its apps over 1 MiB is
/// refused, naming the app.
#[test]
fn the_effective_set_size_limit_holds_for_every_app() {
    let test = TestStore::new();
    test.store
        .write(|w| {
            w.put_tenant(&tenant("acme"), "admin")?;
            w.put_app(&app("small"), &tenant("acme"), Default::default(), "admin")?;
            w.put_app(&app("big"), &tenant("acme"), Default::default(), "admin")?;
            Ok(())
        })
        .unwrap();
    let big_value = "x".repeat(60 * 1024);
    // 17 app overrides of ~60 KiB each: just under 1 MiB for `big`.
    for i in 0..17 {
        let put = test.sealed(&app_scope("big"), "p", &format!("BIG_{i}"), &big_value);
        test.store
            .write(move |w| w.put_secret(put.clone(), "admin"))
            .unwrap();
    }
    let tenant_wide = test.sealed(&tenant_scope("acme"), "p", "SHARED", &big_value);
    let refused = test
        .store
        .write(move |w| w.put_secret(tenant_wide.clone(), "admin"));
    match refused {
        Err(StoreError::Rejected(Rejected::EffectiveSetTooLarge { app_id, bytes })) => {
            assert_eq!(app_id, "big");
            assert!(bytes > 1024 * 1024);
        }
        other => panic!("expected effective_set_too_large, got {other:?}"),
    }
    // The app without overrides is unaffected by the refusal: nothing was written.
    let shared = test
        .store
        .read(|r| r.secrets(&tenant_scope("acme")))
        .unwrap();
    assert!(shared.is_empty());
}

/// Overrides that shadow tenant defaults count once: the stored records
/// of both scopes exceed 1 MiB (the quick bound fails), the exact merge
/// stays under it and the writes are accepted; the write that really
/// crosses the limit is refused.
#[test]
fn shadowed_defaults_count_once_toward_the_size_limit() {
    let test = TestStore::new();
    test.store
        .write(|w| {
            w.put_tenant(&tenant("acme"), "admin")?;
            w.put_app(&app("web"), &tenant("acme"), Default::default(), "admin")?;
            Ok(())
        })
        .unwrap();
    let value = "x".repeat(60 * 1024);
    let put = |scope: &Scope, key: String| {
        let put = test.sealed(scope, "p", &key, &value);
        test.store
            .write(move |w| w.put_secret(put.clone(), "admin"))
    };
    for i in 0..9 {
        put(&tenant_scope("acme"), format!("KEY_{i:02}")).unwrap();
        put(&app_scope("web"), format!("KEY_{i:02}")).unwrap();
    }
    // 9 shadowed + 8 new keys: 17 × 60 KiB, just under 1 MiB.
    for i in 9..17 {
        put(&app_scope("web"), format!("KEY_{i:02}")).unwrap();
    }
    match put(&app_scope("web"), "KEY_17".to_owned()) {
        Err(StoreError::Rejected(Rejected::EffectiveSetTooLarge { app_id, bytes })) => {
            assert_eq!(app_id, "web");
            assert!(bytes > 1024 * 1024, "{bytes}");
        }
        other => panic!("expected effective_set_too_large, got {other:?}"),
    }
}

#[test]
fn deleting_an_app_removes_its_secrets_but_not_its_audit_events() {
    let test = TestStore::new();
    let put = test.sealed(&app_scope("web"), "openai", "K", "v");
    test.store
        .write(move |w| {
            w.put_tenant(&tenant("acme"), "admin")?;
            w.put_app(&app("web"), &tenant("acme"), Default::default(), "admin")?;
            w.put_secret(put.clone(), "admin")?;
            Ok(())
        })
        .unwrap();
    test.store
        .write(|w| w.delete_app(&app("web"), "admin", None))
        .unwrap();
    test.store
        .read(|r| {
            assert!(r.app(&app("web"))?.is_none());
            assert!(r.secrets(&app_scope("web"))?.is_empty());
            assert!(r.key_usage()?.is_empty());
            let page = r.audit_events(&AuditFilter {
                app_id: Some("web".into()),
                limit: 100,
                ..AuditFilter::default()
            })?;
            let types: Vec<&str> = page.events.iter().map(|e| e.event_type.as_str()).collect();
            assert_eq!(
                types,
                [
                    event::APP_CREATED,
                    event::SECRET_CREATED,
                    event::APP_DELETED
                ]
            );
            Ok(())
        })
        .unwrap();
    let missing = test.store.write(|w| {
        w.delete_secret(
            &app_scope("web"),
            &Provider::parse("openai").unwrap(),
            &EnvKey::parse("K").unwrap(),
            "admin",
        )
    });
    assert!(matches!(
        missing,
        Err(StoreError::Rejected(Rejected::NotFound {
            kind: Missing::App,
            ..
        }))
    ));
}

#[test]
fn audit_pages_are_filtered_and_continue_where_they_stopped() {
    let test = TestStore::new();
    test.store
        .write(|w| {
            for i in 0..7 {
                w.put_tenant(&tenant(&format!("t{i}")), "admin")?;
            }
            Ok(())
        })
        .unwrap();
    let mut after = 0;
    let mut seen = Vec::new();
    loop {
        let page = test
            .store
            .read(|r| {
                r.audit_events(&AuditFilter {
                    event_type: Some(event::TENANT_CREATED.into()),
                    after,
                    limit: 3,
                    ..AuditFilter::default()
                })
            })
            .unwrap();
        seen.extend(page.events.iter().map(|e| e.tenant_id.clone().unwrap()));
        match page.next_after {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(seen, ["t0", "t1", "t2", "t3", "t4", "t5", "t6"]);
    let only_t3 = test
        .store
        .read(|r| {
            r.audit_events(&AuditFilter {
                tenant_id: Some("t3".into()),
                limit: 10,
                ..AuditFilter::default()
            })
        })
        .unwrap();
    assert_eq!(only_t3.events.len(), 1);
    assert_eq!(only_t3.next_after, None);
}

/// A fingerprint differs for a key id that already sealed values: refused.
#[test]
fn a_changed_key_under_a_known_id_is_refused() {
    let test = TestStore::new();
    test.store
        .write(|w| w.put_tenant(&tenant("acme"), "admin").map(drop))
        .unwrap();
    let put = test.sealed(&tenant_scope("acme"), "p", "A", "v");
    test.store
        .write(move |w| w.put_secret(put.clone(), "admin"))
        .unwrap();
    let impostor = exsec::crypto::Keyring::from_keys([(
        key_id("k1"),
        exsec::crypto::MasterKey::generate().unwrap(),
    )]);
    let put = seal_with(&impostor, &tenant_scope("acme"), "p", "B", "v");
    let refused = test
        .store
        .write(move |w| w.put_secret(put.clone(), "admin"));
    assert!(matches!(
        refused,
        Err(StoreError::Rejected(
            Rejected::KeyFingerprintMismatch { .. }
        ))
    ));
    let known = test.store.read(|r| r.known_fingerprints()).unwrap();
    assert_eq!(
        known.get(&key_id("k1")),
        test.keyring.fingerprint(&key_id("k1")).as_ref()
    );
}

/// A re-seal batch replaces only records that are unchanged since their
/// page was read: a value rewritten or deleted meanwhile stays as written,
/// `version` and `updated_at` never move, and the key-usage counts follow
/// what was actually written.
#[test]
fn a_reseal_batch_never_overwrites_a_newer_value() {
    let test = TestStore::new();
    let Rotation { old, rotated, .. } = rotation_keyrings();
    let scope = tenant_scope("acme");
    let puts: Vec<_> = ["A", "B", "C"]
        .into_iter()
        .map(|key| seal_with(&old, &scope, "p", key, &format!("{key}-1")))
        .collect();
    test.store
        .write(move |w| {
            w.put_tenant(&tenant("acme"), "admin")?;
            for put in puts.clone() {
                w.put_secret(put, "admin")?;
            }
            Ok(())
        })
        .unwrap();

    let page = |store: &Store| {
        store
            .read(|r| r.reseal_page(&ResealScope::MasterSealed, None, 10))
            .unwrap()
    };
    let page_read = page(&test.store);
    let (candidates, cursor) = (page_read.candidates, page_read.next);
    assert_eq!(candidates.len(), 3);
    assert_eq!(cursor, None);
    let before: Vec<_> = candidates.iter().map(|c| c.record.clone()).collect();

    // Meanwhile B gets a new value (still under k1) and C is deleted.
    let rewrite = seal_with(&old, &scope, "p", "B", "B-2");
    test.store
        .write(move |w| {
            w.put_secret(rewrite.clone(), "admin")?;
            w.delete_secret(
                &tenant_scope("acme"),
                &Provider::parse("p").unwrap(),
                &EnvKey::parse("C").unwrap(),
                "admin",
            )?;
            Ok(())
        })
        .unwrap();

    let reseal = |candidates: Vec<exsec::store::reseal::ResealCandidate>| {
        candidates
            .into_iter()
            .map(|c| {
                let location = SecretLocation {
                    scope: &c.record.scope,
                    provider: &c.record.provider,
                    key: &c.record.key,
                };
                let sealed = rotated.reseal(&location, &c.record.sealed).unwrap();
                (c, sealed)
            })
            .collect::<Vec<_>>()
    };
    let batch = reseal(candidates);
    let fingerprint = rotated.fingerprint(&key_id("k2")).unwrap();
    let written = test
        .store
        .write(move |w| w.reseal_batch(&batch, fingerprint))
        .unwrap();
    assert_eq!(written, 1, "only A was unchanged");

    let opened = |store: &Store| {
        let records = store.read(|r| r.secrets(&tenant_scope("acme"))).unwrap();
        records
            .into_iter()
            .map(|record| {
                let location = record.location();
                let value = rotated.open(&location, &record.sealed).unwrap();
                (
                    record.key.to_string(),
                    record.sealed.sealer_id().to_string(),
                    record.version,
                    value.expose_secret().to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        opened(&test.store),
        [
            ("A".to_owned(), "k2".to_owned(), 1, "A-1".to_owned()),
            ("B".to_owned(), "k1".to_owned(), 2, "B-2".to_owned()),
        ]
    );
    let a = test
        .store
        .read(|r| {
            r.secret(
                &tenant_scope("acme"),
                &Provider::parse("p").unwrap(),
                &EnvKey::parse("A").unwrap(),
            )
        })
        .unwrap()
        .unwrap();
    assert_eq!(
        (a.created_at, a.updated_at, a.version),
        (before[0].created_at, before[0].updated_at, 1)
    );
    // Under k1 still: B's new value, and the kept older versions of B and
    // C (the replaced and the deleted value).
    let usage = |store: &Store| store.read(|r| r.key_usage()).unwrap();
    assert_eq!(
        usage(&test.store),
        [("k1".to_owned(), 3), ("k2".to_owned(), 1)].into()
    );

    // The next page holds B, the two kept versions and A too: every value
    // sealed directly under a master key, live or kept, is a candidate
    // (they move under tenant data keys).
    let candidates = page(&test.store).candidates;
    assert_eq!(candidates.len(), 4);
    let batch = reseal(candidates);
    let written = test
        .store
        .write(move |w| w.reseal_batch(&batch, fingerprint))
        .unwrap();
    assert_eq!(written, 4);
    assert_eq!(usage(&test.store), [("k2".to_owned(), 4)].into());
    assert_eq!(opened(&test.store)[1].3, "B-2");
}

/// A bounded layout read (what a deploy runs on its async worker) returns
/// the whole layout up to the limit and stops past it, counting both
/// scopes together.
#[test]
fn a_bounded_layout_read_stops_past_its_limit() {
    use exsec::store::LayoutRead;

    let test = TestStore::new();
    let mut puts: Vec<_> = (0..3)
        .map(|i| test.sealed(&tenant_scope("acme"), "p", &format!("T{i}"), "v"))
        .collect();
    puts.extend((0..2).map(|i| test.sealed(&app_scope("web"), "p", &format!("A{i}"), "v")));
    write_tenant(&test.store, "acme", vec!["web".to_owned()], puts);

    let read = |max: usize| {
        test.store
            .read(|r| r.secret_layout_up_to(&app("web"), max))
            .unwrap()
    };
    match read(5) {
        LayoutRead::Found(layout) => {
            assert_eq!((layout.tenant.len(), layout.app.len()), (3, 2));
        }
        other => panic!("5 records within a limit of 5: {other:?}"),
    }
    // Past the limit in the app scope, then already in the tenant scope.
    assert!(matches!(read(4), LayoutRead::TooLarge));
    assert!(matches!(read(2), LayoutRead::TooLarge));
    assert!(matches!(
        test.store
            .read(|r| r.secret_layout_up_to(&app("nope"), 5))
            .unwrap(),
        LayoutRead::NoApp
    ));
}
