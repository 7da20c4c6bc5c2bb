//! Criterion benchmarks of the core (SPEC §10): sealing and opening a value,
//! the AEAD floor under them, and resolving + opening an app's 50-key
//! effective set (target ≤ 40 µs).
//!
//! Run: `cargo bench --bench core` (under a minute). The shipped build
//! beside a `-C target-cpu=native` one: `scripts/bench-aead-floor.sh`.

use std::hint::black_box;
use std::time::Duration;

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{Key, KeyInit, XChaCha20Poly1305, XNonce};
use criterion::{Criterion, criterion_group, criterion_main};
use exsec::crypto::{
    DataKey, DataKeyId, Keyring, MasterKey, SealedValue, SecretLocation, SharedKeyring, TenantKeys,
};
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

/// The floor under `seal`/`open`: XChaCha20-Poly1305 alone, on the same
/// sizes and AAD, without the nonce draw, AAD encoding and buffer handling
/// of `exsec::crypto` (the figures of issue 6 and docs/performance.md).
/// The only code outside `src/crypto` that names the AEAD crate: to
/// measure it, never to seal anything.
fn aead_floor(c: &mut Criterion) {
    let (key, nonce) = (FLOOR_KEY, FLOOR_NONCE);
    let scope = Scope::Tenant(TenantId::parse("acme").expect("id"));
    let provider = Provider::parse("openai").expect("provider");
    let key_name = EnvKey::parse("OPENAI_API_KEY").expect("key");
    let aad = exsec::crypto::aad(&SecretLocation {
        scope: &scope,
        provider: &provider,
        key: &key_name,
    });
    for size in [64usize, 1024] {
        let mut buffer = vec![b'v'; size];
        c.bench_function(&format!("aead floor/seal {size} B"), |b| {
            b.iter(|| {
                let cipher = XChaCha20Poly1305::new(Key::cast_from_core(black_box(&key)));
                cipher.encrypt_inout_detached(
                    XNonce::cast_from_core(&nonce),
                    black_box(&aad),
                    buffer.as_mut_slice().into(),
                )
            })
        });
        let (sealed, tag) = floor_sealed(&aad, size);
        c.bench_function(&format!("aead floor/open {size} B"), |b| {
            b.iter(|| {
                // Opening decrypts in place: start from the ciphertext again.
                buffer.copy_from_slice(&sealed);
                let cipher = XChaCha20Poly1305::new(Key::cast_from_core(black_box(&key)));
                cipher.decrypt_inout_detached(
                    XNonce::cast_from_core(&nonce),
                    black_box(&aad),
                    buffer.as_mut_slice().into(),
                    &tag,
                )
            })
        });
    }
    // The rest of a seal: one getrandom(2) call for the 24-byte nonce.
    c.bench_function("aead floor/nonce 24 B", |b| {
        b.iter(|| {
            let mut nonce = [0u8; exsec::crypto::NONCE_LEN];
            getrandom::fill(&mut nonce).map(|()| nonce)
        })
    });
}

/// The key and nonce of the AEAD floors. A fixed nonce is harmless here:
/// nothing sealed leaves the benchmark.
const FLOOR_KEY: [u8; 32] = [7; 32];
const FLOOR_NONCE: [u8; exsec::crypto::NONCE_LEN] = [9; exsec::crypto::NONCE_LEN];

/// `len` bytes sealed by the bare AEAD under the floor's key and nonce,
/// with `aad`: the ciphertext and its detached tag, for a floor to open.
fn floor_sealed(aad: &[u8], len: usize) -> (Vec<u8>, chacha20poly1305::Tag) {
    let mut body = vec![b'v'; len];
    let tag = XChaCha20Poly1305::new(Key::cast_from_core(&FLOOR_KEY))
        .encrypt_inout_detached(
            XNonce::cast_from_core(&FLOOR_NONCE),
            aad,
            body.as_mut_slice().into(),
        )
        .expect("seal");
    (body, tag)
}

fn sealed_record(keys: &TenantKeys, scope: &Scope, provider: &str, key: &str) -> SecretRecord {
    let provider = Provider::parse(provider).expect("provider");
    let key = EnvKey::parse(key).expect("key");
    let value = SecretValue::parse("sk-".to_owned() + &"x".repeat(48)).expect("value");
    let sealed: SealedValue = keys
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
    // As a deploy does it: the tenant's keys from its wraps (a cache hit
    // after the first deploy), then every value opened under the data key.
    let shared = SharedKeyring::new(keyring());
    let tenant_id = TenantId::parse("acme").expect("id");
    let dek_id = DataKeyId::generate().expect("dek id");
    let wrapped = shared
        .snapshot()
        .wrap_data_key(&tenant_id, &dek_id, &DataKey::generate().expect("dek"))
        .expect("wrap");
    let wraps = vec![(dek_id, wrapped)];
    let keys = shared.tenant_keys(&tenant_id, &wraps);
    let tenant = Scope::Tenant(tenant_id.clone());
    let app = Scope::App(AppId::parse("web").expect("id"));
    // 40 tenant defaults, 20 app overrides of which 10 shadow a default: 50 keys.
    let tenant_records: Vec<SecretRecord> = (0..40)
        .map(|i| sealed_record(&keys, &tenant, "p", &format!("KEY_{i:02}")))
        .collect();
    let app_records: Vec<SecretRecord> = (30..50)
        .map(|i| sealed_record(&keys, &app, "p", &format!("KEY_{i:02}")))
        .collect();
    let set = resolve::resolve(&tenant_records, &app_records, &keys);
    assert_eq!(set.values.len(), 50);
    aead_floor_of(c, &resolve::merge(&tenant_records, &app_records));
    c.bench_function("resolve + open 50 keys", |b| {
        b.iter(|| {
            let keys = shared.tenant_keys(&tenant_id, &wraps);
            resolve::resolve(black_box(&tenant_records), black_box(&app_records), &keys)
        })
    });
}

/// The floor under `resolve + open 50 keys`: the bare AEAD opening the
/// same 50 values (same plaintext lengths, same AADs: location and data-key
/// id), each from its ciphertext into a buffer allocated up front. What
/// resolve adds on top (merge, AAD encoding, buffers, UTF-8 and value
/// checks, the key lookup) is the gap between the two (SPEC §10 item 4 of
/// issue 19: ≤ 1.3×).
fn aead_floor_of(c: &mut Criterion, merged: &resolve::Merged<'_>) {
    let (key, nonce) = (FLOOR_KEY, FLOOR_NONCE);
    let sealed: Vec<(Vec<u8>, Vec<u8>, _)> = merged
        .entries
        .iter()
        .map(|entry| {
            let record = entry.record;
            let location = SecretLocation {
                scope: &record.scope,
                provider: &record.provider,
                key: &record.key,
            };
            let aad = match &record.sealed.sealer {
                exsec::crypto::Sealer::DataKey(dek_id) => {
                    exsec::crypto::data_key_aad(&location, dek_id)
                }
                exsec::crypto::Sealer::MasterKey(_) => exsec::crypto::aad(&location),
            };
            let (body, tag) = floor_sealed(&aad, record.sealed.plaintext_len());
            (aad, body, tag)
        })
        .collect();
    let mut buffers: Vec<Vec<u8>> = sealed.iter().map(|(_, body, _)| body.clone()).collect();
    c.bench_function("aead floor/open the 50 values", |b| {
        b.iter(|| {
            for ((aad, body, tag), buffer) in sealed.iter().zip(&mut buffers) {
                buffer.copy_from_slice(body);
                let cipher = XChaCha20Poly1305::new(Key::cast_from_core(black_box(&key)));
                cipher
                    .decrypt_inout_detached(
                        XNonce::cast_from_core(&nonce),
                        black_box(aad),
                        buffer.as_mut_slice().into(),
                        tag,
                    )
                    .expect("open");
            }
        })
    });
}

#[allow(missing_docs, reason = "criterion generates the group function")]
mod group {
    use super::*;
    criterion_group! {
        name = benches;
        // Short runs keep the whole bench under a minute on 2 cores; these
        // are µs-scale loops, so 30 samples over 2 s are plenty.
        config = Criterion::default()
            .sample_size(30)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        targets = seal_open, aead_floor, resolve_50
    }
}
use group::benches;
criterion_main!(benches);
