//! Criterion benchmarks of durable writes (SPEC §10: ≥ 5,000 durable
//! secret writes/s with 32 concurrent clients), each next to its floor.
//!
//! - `commit/empty` — an empty two-phase, immediately durable commit: the
//!   floor of any durable write on this disk.
//! - `write/secret alone` — one secret write (already sealed) at a time.
//! - `write/secret 32 writers` — 32 threads writing at once, with group
//!   commit (`grouped`) and with every write committed alone (`serial`,
//!   the behaviour before group commit) — same run, same disk.
//! - `write/audit append` — one audit event appended durably.
//! - `audit verify at start/…` — what start-up verification of the audit
//!   chain costs with 100k events: everything (a log never verified, the
//!   first start after an upgrade), nothing new since the last verified
//!   position (every other start), 1k new events, and the one step of
//!   `VERIFY_STEP` events start-up takes before serving.
//!
//! Run: `cargo bench --bench store`. Throughput benches print elements/s.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use exsec::audit::NewEvent;
use exsec::crypto::{Keyring, MasterKey, SecretLocation};
use exsec::model::{EnvKey, KeyId, Provider, Scope, SecretValue, TenantId};
use exsec::store::{PutSecret, Store, StoreOptions};

const WRITERS: usize = 32;
/// Keys written in turn, so the store stays the same size however long
/// criterion runs.
const KEYS: usize = 50;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    puts: Vec<PutSecret>,
}

fn fixture(max_batch: usize) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = StoreOptions::with_cache_size(8 * 1024 * 1024);
    options.max_batch = max_batch;
    let store = Arc::new(Store::open(&dir.path().join("exsec.redb"), options).expect("open"));
    let tenant = TenantId::parse("acme").expect("id");
    let id = tenant.clone();
    store
        .write(move |w| w.put_tenant(&id, "admin"))
        .expect("tenant");
    let key_id = KeyId::parse("k1").expect("id");
    let keyring = Keyring::from_keys([(key_id.clone(), MasterKey::generate().expect("key"))]);
    let scope = Scope::Tenant(tenant);
    let provider = Provider::parse("openai").expect("provider");
    let value = SecretValue::parse("sk-".to_owned() + &"x".repeat(48)).expect("value");
    let fingerprint = keyring.fingerprint(&key_id).expect("fingerprint");
    let puts = (0..KEYS)
        .map(|i| {
            let key = EnvKey::parse(&format!("KEY_{i:02}")).expect("key");
            let sealed = keyring
                .seal(
                    &SecretLocation {
                        scope: &scope,
                        provider: &provider,
                        key: &key,
                    },
                    &value,
                )
                .expect("seal");
            PutSecret {
                scope: scope.clone(),
                provider: provider.clone(),
                key,
                sealed,
                fingerprint,
            }
        })
        .collect();
    Fixture {
        _dir: dir,
        store,
        puts,
    }
}

fn put(store: &Store, put: &PutSecret) {
    let put = put.clone();
    store
        .write(move |w| w.put_secret(put.clone(), "bench"))
        .expect("durable write");
}

fn durable_writes(c: &mut Criterion) {
    let mut group = c.benchmark_group("commit");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(4));
    let floor = fixture(1);
    group.bench_function("empty", |b| {
        b.iter(|| floor.store.write(|_| Ok(())).expect("commit"))
    });
    group.finish();

    let mut group = c.benchmark_group("write");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(1));
    let alone = fixture(exsec::store::MAX_BATCH);
    let mut turn = 0usize;
    group.bench_function("secret alone", |b| {
        b.iter(|| {
            put(&alone.store, &alone.puts[turn % KEYS]);
            turn += 1;
        })
    });
    for (name, max_batch) in [("grouped", exsec::store::MAX_BATCH), ("serial", 1)] {
        let shared = fixture(max_batch);
        group.bench_function(format!("secret {WRITERS} writers {name}"), |b| {
            b.iter_custom(|iters| concurrent_writes(&shared, iters))
        });
    }
    let audit = fixture(exsec::store::MAX_BATCH);
    group.bench_function("audit append", |b| {
        b.iter(|| {
            audit
                .store
                .write(|w| {
                    w.audit(NewEvent::new("bench.event", "bench"))
                        .map(|event| black_box(event.seq))
                })
                .expect("append")
        })
    });
    group.finish();
}

/// `iters` writes spread over [`WRITERS`] threads; the time until the last
/// one is durable.
fn concurrent_writes(fixture: &Fixture, iters: u64) -> Duration {
    let per_writer = iters.div_ceil(WRITERS as u64);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for writer in 0..WRITERS {
            let store = &fixture.store;
            let puts = &fixture.puts;
            scope.spawn(move || {
                for i in 0..per_writer {
                    put(store, &puts[(writer + i as usize) % KEYS]);
                }
            });
        }
    });
    // Per write, as criterion expects for `iters` iterations.
    start
        .elapsed()
        .mul_f64(iters as f64 / (per_writer * WRITERS as u64) as f64)
}

/// Events in the log of the start-up verification benches.
const AUDIT_EVENTS: u64 = 100_000;

fn startup_verification(c: &mut Criterion) {
    let mut group = c.benchmark_group("audit verify at start");
    group.sample_size(10);
    let log = fixture(exsec::store::MAX_BATCH);
    append_events(&log.store, AUDIT_EVENTS);
    let verify = |store: &Store| {
        let check = store
            .read(|r| r.verify_audit_since_verified(u64::MAX))
            .expect("read");
        black_box(check.outcome.expect("an unbroken chain"))
    };
    group.bench_function("100k events, never verified", |b| {
        b.iter(|| verify(&log.store))
    });
    let head = verify(&log.store);
    log.store
        .write(move |w| w.record_audit_verified(head))
        .expect("record");
    group.bench_function("100k events, none new", |b| b.iter(|| verify(&log.store)));
    append_events(&log.store, 1_000);
    group.bench_function("100k events, 1k new", |b| b.iter(|| verify(&log.store)));
    // What start-up verifies before serving, whatever the backlog.
    let step = exsec::audit_maintenance::VERIFY_STEP;
    log.store
        .write(|w| w.record_audit_verified(exsec::audit::Anchor::GENESIS))
        .expect("reset");
    group.bench_function("one start-up step (10k events)", |b| {
        b.iter(|| {
            let check = log
                .store
                .read(|r| r.verify_audit_since_verified(step))
                .expect("read");
            black_box(check.outcome.expect("an unbroken chain"))
        })
    });
    group.finish();
}

/// Appends `count` audit events, 10k per transaction.
fn append_events(store: &Store, count: u64) {
    let mut left = count;
    while left > 0 {
        let batch = left.min(10_000);
        store
            .write(move |w| {
                for n in 0..batch {
                    w.audit(NewEvent::new("bench.event", "bench").with("n", n))?;
                }
                Ok(())
            })
            .expect("append");
        left -= batch;
    }
}

#[allow(missing_docs, reason = "criterion generates the group function")]
mod group {
    use super::*;
    criterion_group!(benches, durable_writes, startup_verification);
}
use group::benches;
criterion_main!(benches);
