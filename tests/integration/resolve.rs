//! Resolving an app's effective set from a real store with a real keyring.

use exsec::crypto::{Keyring, MasterKey};
use exsec::model::ScopeKind;
use exsec::resolve;

use crate::harness::*;

fn seeded() -> TestStore {
    let test = TestStore::new();
    let puts = vec![
        test.sealed(
            &tenant_scope("acme"),
            "openai",
            "OPENAI_API_KEY",
            "sk-tenant",
        ),
        test.sealed(&tenant_scope("acme"), "stripe", "STRIPE_KEY", "rk-tenant"),
        test.sealed(&app_scope("web"), "openai", "OPENAI_API_KEY", "sk-app"),
        test.sealed(&app_scope("web"), "sentry", "SENTRY_DSN", "https://dsn"),
    ];
    write_tenant(&test.store, "acme", vec!["web".to_owned()], puts);
    test
}

/// The seed's rule: app overrides beat tenant defaults per provider+key,
/// and every other default is inherited.
#[test]
fn the_app_override_wins_and_defaults_are_inherited() {
    let test = seeded();
    let layout = test.layout("web");
    let set = test.resolve(&layout);
    let got: Vec<(&str, &str, ScopeKind, bool)> = set
        .values
        .iter()
        .map(|v| {
            (
                v.key.as_str(),
                v.value.expose_secret(),
                v.source,
                v.overrides_tenant,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("OPENAI_API_KEY", "sk-app", ScopeKind::App, true),
            ("SENTRY_DSN", "https://dsn", ScopeKind::App, false),
            ("STRIPE_KEY", "rk-tenant", ScopeKind::Tenant, false),
        ]
    );
    assert!(set.undecryptable.is_empty());
    let required = [exsec::model::EnvKey::parse("DATABASE_URL").unwrap()];
    assert_eq!(set.missing(&required).len(), 1);
}

/// Without the key that sealed them, values are reported by name, not
/// fatal, and nothing is opened by a wrong key of the same id.
#[test]
fn unopenable_values_are_named() {
    let test = seeded();
    let layout = test.layout("web");

    let set = resolve::resolve(
        &layout.tenant,
        &layout.app,
        &crate::harness::layout_keys(Keyring::empty(), &layout),
    );
    assert!(set.values.is_empty());
    let names: Vec<&str> = set.undecryptable.iter().map(|u| u.key.as_str()).collect();
    assert_eq!(names, ["OPENAI_API_KEY", "SENTRY_DSN", "STRIPE_KEY"]);
    assert!(set.undecryptable.iter().all(|u| u.key_missing));

    let impostor = Keyring::from_keys([(key_id("k1"), MasterKey::generate().unwrap())]);
    let set = resolve::resolve(
        &layout.tenant,
        &layout.app,
        &crate::harness::layout_keys(impostor, &layout),
    );
    assert_eq!(set.undecryptable.len(), 3);
    assert!(set.undecryptable.iter().all(|u| !u.key_missing));
}
