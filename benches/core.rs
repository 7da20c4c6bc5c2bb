//! Criterion benchmarks of the core (SPEC §10): sealing and opening a value,
//! and resolving + opening an app's 50-key effective set (target ≤ 40 µs).
//!
//! Run: `cargo bench --bench core`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use exsec::crypto::{Keyring, MasterKey, SealedValue, SecretLocation};
use exsec::model::{AppId, EnvKey, KeyId, Provider, Scope, SecretValue, TenantId, Timestamp};
use exsec::resolve;
use exsec::store::records::SecretRecord;

fn keyring() -> Keyring {
    let key = MasterKey::generate().expect("key");
    Keyring::from_keys([(KeyId::parse("k1").expect("id"), key)])
}

fn seal_open(c: &mut Criterion) {
    let keyring = keyring();
    let scope = Scope::Tenant(TenantId::parse("acme").expect("id"));
    let provider = Provider::parse("openai").expect("provider");
    let key = EnvKey::parse("OPENAI_API_KEY").expect("key");
    let location = SecretLocation {
        scope: &scope,
        provider: &provider,
        key: &key,
    };
    for size in [64usize, 1024] {
        let value = SecretValue::parse("v".repeat(size)).expect("value");
        c.bench_function(&format!("seal {size} B"), |b| {
            b.iter(|| keyring.seal(black_box(&location), black_box(&value)))
        });
        let sealed = keyring.seal(&location, &value).expect("seal");
        c.bench_function(&format!("open {size} B"), |b| {
            b.iter(|| keyring.open(black_box(&location), black_box(&sealed)))
        });
    }
}

fn sealed_record(keyring: &Keyring, scope: &Scope, provider: &str, key: &str) -> SecretRecord {
    let provider = Provider::parse(provider).expect("provider");
    let key = EnvKey::parse(key).expect("key");
    let value = SecretValue::parse("sk-".to_owned() + &"x".repeat(48)).expect("value");
    let sealed: SealedValue = keyring
        .seal(
            &SecretLocation {
                scope,
                provider: &provider,
                key: &key,
            },
            &value,
        )
        .expect("seal");
    SecretRecord {
        scope: scope.clone(),
        provider,
        key,
        created_at: Timestamp(0),
        updated_at: Timestamp(0),
        version: 1,
        sealed,
    }
}

fn resolve_50(c: &mut Criterion) {
    let keyring = keyring();
    let tenant = Scope::Tenant(TenantId::parse("acme").expect("id"));
    let app = Scope::App(AppId::parse("web").expect("id"));
    // 40 tenant defaults, 20 app overrides of which 10 shadow a default: 50 keys.
    let tenant_records: Vec<SecretRecord> = (0..40)
        .map(|i| sealed_record(&keyring, &tenant, "p", &format!("KEY_{i:02}")))
        .collect();
    let app_records: Vec<SecretRecord> = (30..50)
        .map(|i| sealed_record(&keyring, &app, "p", &format!("KEY_{i:02}")))
        .collect();
    let set = resolve::resolve(&tenant_records, &app_records, &keyring);
    assert_eq!(set.values.len(), 50);
    c.bench_function("resolve + open 50 keys", |b| {
        b.iter(|| {
            resolve::resolve(
                black_box(&tenant_records),
                black_box(&app_records),
                &keyring,
            )
        })
    });
}

#[allow(missing_docs, reason = "criterion generates the group function")]
mod group {
    use super::*;
    criterion_group!(benches, seal_open, resolve_50);
}
use group::benches;
criterion_main!(benches);
