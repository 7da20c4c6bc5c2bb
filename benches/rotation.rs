//! Master-key rotation against SPEC §10: "re-seal 100k records on rotation
//! ≤ 1 s, with deploy p99 during it ≤ 2× idle".
//!
//! Two measurements, printed as tables (nothing is asserted on time):
//! 1. **Re-seal pass**: a store of 10k or 100k records under one key, a
//!    second key becomes active, one [`Rotation::pass`] runs until every
//!    record is under the new key. Timed from the call to its return, with
//!    the job's own per-phase times (read, AEAD, write + commit).
//! 2. **Deploy latency**: the real server (`exsec::app::start`) with the
//!    `kubernetes` target against the Kubernetes API stand-in over loopback,
//!    100 apps with 50 keys each among 100k records, 32 clients deploying.
//!    p50/p99 idle, then while a 100k rotation runs (a new key file dropped
//!    into the watched directory; deploys overlapping the pass are counted).
//!
//! 3. **Re-wrap pass** (SPEC §11.4): the same store once its values are
//!    under tenant data keys (100 per tenant); a new master key; one pass
//!    that re-wraps one data key per tenant and reads no value.
//!
//! 4. **One tenant's data-key rotation** (SPEC §10 after §11.4): 10k or
//!    100k values of one tenant re-sealed under its new data key by one
//!    `Rotation::data_key_pass`; then deploys of that tenant's apps idle and
//!    during `POST /v1/tenants/rot/rotate-data-key` (`-- --data-key-only`;
//!    not part of the default run).
//!
//! Run: `cargo bench --bench rotation` (add `-- --quick` for 10k only and
//! fewer deploys, `-- --reseal-only`, `-- --rewrap-only`, `-- --deploy-only`
//! or `-- --data-key-only` for one part). Bounded in count and time; nothing leaves 127.0.0.1.
//! The stand-in, the server and the clients each get their own runtime.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    missing_docs,
    reason = "a measurement program: failing loudly is the point"
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use exsec::config::Config;
use exsec::crypto::SharedKeyring;
use exsec::crypto::{Keyring, MasterKey, SecretLocation};
use exsec::model::{AppId, EnvKey, KeyId, Provider, Scope, SecretValue, TenantId};
use exsec::rotation::{PassReport, Rotation, RotationState};
use exsec::store::{PutSecret, Store, StoreOptions};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::runtime::Runtime;

/// Deploying clients and apps (SPEC §10's deploy setting).
const CLIENTS: usize = 32;
const APPS: usize = 100;
const KEYS_PER_APP: usize = 50;
/// Records per bulk tenant (tenants without apps that fill the store).
const BULK_KEYS: usize = 100;
/// Re-seal passes per store size; the table shows the median and the best.
const PASSES: usize = 3;

/// Records of the smoke run that `cargo test --all-targets` makes.
const SMOKE_RECORDS: usize = 500;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| args.iter().any(|a| a == name);
    let quick = flag("--quick");
    let work = tempfile::tempdir().expect("tempdir");
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
    // binary without it, in debug: then only check that it works, on a
    // size that takes a moment (PITFALLS: harness = false benches).
    if !flag("--bench") {
        println!("# rotation benchmark smoke run (no --bench): one small re-seal pass");
        reseal_passes(work.path(), &[SMOKE_RECORDS]);
        rewrap_passes(work.path(), &[SMOKE_RECORDS]);
        data_key_passes(work.path(), &[SMOKE_RECORDS]);
        return;
    }
    println!(
        "# exsec rotation benchmark ({} cores, load average at start: {})",
        cores(),
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    );
    let options: Vec<&str> = args
        .iter()
        .skip(1)
        .map(String::as_str)
        .filter(|a| a.starts_with("--") && *a != "--bench")
        .collect();
    println!(
        "command: cargo bench --bench rotation{}",
        if options.is_empty() {
            String::new()
        } else {
            format!(" -- {}", options.join(" "))
        }
    );
    let sizes: &[usize] = if quick { &[10_000] } else { &[10_000, 100_000] };
    if !flag("--deploy-only") && !flag("--rewrap-only") && !flag("--data-key-only") {
        reseal_passes(work.path(), sizes);
    }
    if !flag("--deploy-only") && !flag("--data-key-only") {
        rewrap_passes(work.path(), sizes);
    }
    if flag("--data-key-only") {
        data_key_passes(work.path(), sizes);
        data_key_deploy_latency(work.path(), if quick { 10_000 } else { 100_000 }, quick);
        return;
    }
    if !flag("--reseal-only") && !flag("--rewrap-only") {
        deploy_latency(work.path(), if quick { 10_000 } else { 100_000 }, quick);
    }
}

// ---------------------------------------------------------------------------
// 1. Re-seal pass

fn reseal_passes(work: &Path, sizes: &[usize]) {
    println!();
    println!(
        "## re-seal pass: every record sealed directly under the old key moves under its tenant's data key, wrapped by the new key (one Rotation::pass; the first start of schema 5)"
    );
    println!();
    println!(
        "| records | pass (median of {PASSES}) | best | records/s | CPU | read | AEAD | write + commit | writes |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let runtime = runtime(2);
    for &records in sizes {
        let old = key("k1");
        let template = work.join(format!("reseal-{records}.redb"));
        build_store(&template, &old, 0, records);
        let new = key("k2");
        let keyring = SharedKeyring::new(keyring_of(&[&old, &new]));
        let reports = timed_passes(
            &template,
            |_| (),
            |store| pass_to_idle(&runtime, store, &keyring),
            |store, (), _| {
                let usage = store.read(|r| r.key_usage()).expect("usage");
                assert_eq!(
                    usage,
                    BTreeMap::from([("k2".to_owned(), records.div_ceil(BULK_KEYS) as u64)]),
                    "every record under a data key, every data key wrapped by the new key"
                );
            },
        );
        reseal_row(records, &reports);
    }
    println!();
    println!(
        "CPU is the process's user + system time during the pass (both cores). read, AEAD and write + commit are the job's wall time per phase (PassReport); they overlap (the job pipelines), so they may add up to more than the pass."
    );
}

/// One master-key `Rotation::pass` over `store`, which must leave the job
/// idle (everything under the active key).
fn pass_to_idle(runtime: &Runtime, store: &Arc<Store>, keyring: &SharedKeyring) -> PassReport {
    let rotation = Rotation::default();
    let stop = exsec::shutdown::Trigger::new();
    let report = runtime
        .block_on(rotation.pass(store, keyring, &stop.subscribe()))
        .expect("pass");
    assert_eq!(rotation.status().state, RotationState::Idle);
    report
}

/// SPEC §10 after §11.4: a master rotation once every value is under a
/// tenant data key: `records` values in `records / 100` tenants, a new
/// master key, one pass that re-wraps one data key per tenant and reads no
/// value.
fn rewrap_passes(work: &Path, sizes: &[usize]) {
    println!();
    println!(
        "## master rotation with values under tenant data keys (one Rotation::pass: re-wrap only)"
    );
    println!();
    println!("| records | tenants | pass (median of {PASSES}) | best | re-wrap stage | CPU |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let runtime = runtime(2);
    for &records in sizes {
        let tenants = records.div_ceil(BULK_KEYS);
        let old = key("k1");
        let template = work.join(format!("rewrap-{records}.redb"));
        build_store(&template, &old, 0, records);
        move_under_data_keys(
            &runtime,
            &template,
            &SharedKeyring::new(keyring_of(&[&old])),
            records,
        );
        let new = key("k2");
        let keyring = SharedKeyring::new(keyring_of(&[&old, &new]));
        let reports = timed_passes(
            &template,
            |_| (),
            |store| pass_to_idle(&runtime, store, &keyring),
            |store, (), report| {
                assert_eq!((report.rewrapped as usize, report.resealed), (tenants, 0));
                let usage = store.read(|r| r.key_usage()).expect("usage");
                assert_eq!(usage, BTreeMap::from([("k2".to_owned(), tenants as u64)]));
            },
        );
        let (median, cpu, report) = &reports[PASSES / 2];
        println!(
            "| {records} | {tenants} | {} | {} | {} | {} |",
            ms(*median),
            ms(reports[0].0),
            ms(report.rewrap),
            ms(*cpu),
        );
    }
}

/// Moves the values of `template` (sealed directly under the master key)
/// under their tenants' data keys: one pass, as the first start of this
/// version does.
fn move_under_data_keys(
    runtime: &Runtime,
    template: &Path,
    keyring: &SharedKeyring,
    records: usize,
) {
    let store = Arc::new(Store::open(template, store_options()).expect("open"));
    let stop = exsec::shutdown::Trigger::new();
    let report = runtime
        .block_on(Rotation::default().pass(&store, keyring, &stop.subscribe()))
        .expect("move under data keys");
    assert_eq!(report.resealed as usize, records);
}

/// [`PASSES`] timed passes, each on a fresh copy of `template`: `prepare`
/// readies the copy (untimed), `pass` runs one (wall and process CPU time
/// are measured around it), `check` looks at the store it left. Sorted by
/// wall time.
fn timed_passes<S>(
    template: &Path,
    prepare: impl Fn(&Arc<Store>) -> S,
    pass: impl Fn(&Arc<Store>) -> PassReport,
    check: impl Fn(&Store, S, &PassReport),
) -> Vec<(Duration, Duration, PassReport)> {
    let mut reports = Vec::new();
    for n in 0..PASSES {
        let path = template.with_extension(format!("{n}.redb"));
        std::fs::copy(template, &path).expect("copy store");
        let store = Arc::new(Store::open(&path, store_options()).expect("open"));
        let prepared = prepare(&store);
        let cpu_before = process_cpu();
        let begun = Instant::now();
        let report = pass(&store);
        let elapsed = begun.elapsed();
        let cpu = process_cpu() - cpu_before;
        check(&store, prepared, &report);
        drop(store);
        std::fs::remove_file(&path).expect("remove");
        reports.push((elapsed, cpu, report));
    }
    reports.sort_by_key(|(elapsed, _, _)| *elapsed);
    reports
}

/// One row of a re-seal table: median and best pass, rate, CPU, the job's
/// phases.
fn reseal_row(records: usize, reports: &[(Duration, Duration, PassReport)]) {
    let (median, cpu, report) = &reports[PASSES / 2];
    println!(
        "| {records} | {} | {} | {:.0} | {} | {} | {} | {} | {} |",
        ms(*median),
        ms(reports[0].0),
        records as f64 / median.as_secs_f64(),
        ms(*cpu),
        ms(report.read),
        ms(report.reseal),
        ms(report.write),
        report.batches,
    );
}

// ---------------------------------------------------------------------------
// 2. Deploy latency, idle and during a rotation

/// The real server (`kubernetes` target) against the stand-in, each on its
/// own runtime, with a client runtime for the deploying clients.
struct Bench {
    dir: std::path::PathBuf,
    server: exsec::app::Server,
    server_runtime: Runtime,
    standin: kube_standin::StandIn,
    standin_runtime: Runtime,
    clients: Runtime,
    token: String,
}

impl Bench {
    /// Writes the key directory, builds the store with `build` (given the
    /// keyring), starts the stand-in and the server, and waits until the
    /// server's first pass (the move under data keys) is done.
    fn start(work: &Path, build: impl FnOnce(&Path, &Keyring)) -> (Self, KeyId) {
        let dir = work.join("server");
        std::fs::create_dir_all(dir.join("keys.d")).expect("dirs");
        let first = exsec::crypto::generate_key_file(&dir.join("keys.d"), SystemTime::now())
            .expect("key")
            .key_id;
        let scan = exsec::crypto::scan_dir(&dir.join("keys.d"), false).expect("scan");
        let (keyring, _) = Keyring::assemble(scan, &BTreeMap::new(), None);
        build(&dir.join("exsec.redb"), &keyring);

        let standin_runtime = runtime(1);
        let standin = standin_runtime.block_on(async {
            let standin = kube_standin::StandIn::start().await.expect("stand-in");
            standin.create_namespace("paas-apps").expect("namespace");
            standin
        });
        standin
            .write_kubeconfig(dir.join("kubeconfig.yaml"), "paas-apps")
            .expect("kubeconfig");
        std::fs::write(
            dir.join("config.toml"),
            r#"[server]
listen = "127.0.0.1:0"
[storage]
path = "exsec.redb"
cache_size = "8MiB"
[keys]
dir = "keys.d"
[auth]
admin_token_file = "admin.token"
[cluster]
target = "kubernetes"
kubeconfig = "kubeconfig.yaml"
namespace = "paas-apps"
"#,
        )
        .expect("config");
        let config = Config::load(&dir.join("config.toml")).expect("config");
        let server_runtime = runtime(2);
        let server = server_runtime
            .block_on(exsec::app::start(&config, None))
            .expect("server");
        let token = std::fs::read_to_string(dir.join("admin.token"))
            .expect("token")
            .trim()
            .to_owned();
        let bench = Self {
            dir,
            server,
            server_runtime,
            standin,
            standin_runtime,
            clients: runtime(1),
            token,
        };
        let deadline = Instant::now() + Duration::from_secs(300);
        while bench.server.rotation().status().state != RotationState::Idle
            || bench.server.rotation().status().remaining > 0
        {
            assert!(Instant::now() < deadline, "the first pass did not finish");
            std::thread::sleep(Duration::from_millis(10));
        }
        (bench, first)
    }

    /// Every app deployed once (objects exist, connections open), then
    /// `deploys` deploys: their latencies and the rate.
    fn idle(&self, deploys: usize) -> (Vec<Duration>, f64) {
        let addr = self.server.addr();
        self.clients
            .block_on(deploy_burst(addr, self.token.clone(), APPS, None));
        let begun = Instant::now();
        let idle = self
            .clients
            .block_on(deploy_burst(addr, self.token.clone(), deploys, None));
        let rate = idle.len() as f64 / begun.elapsed().as_secs_f64();
        (idle.iter().map(|s| s.latency).collect(), rate)
    }

    /// Continuous deploys while `work` runs (it returns when the work was
    /// seen to start and to finish); the latencies of the deploys that
    /// overlapped it, and how long it took.
    fn during(&self, work: impl FnOnce() -> (Instant, Instant)) -> (Vec<Duration>, Duration) {
        let stop = Arc::new(AtomicBool::new(false));
        let load = self.clients.spawn(deploy_burst(
            self.server.addr(),
            self.token.clone(),
            usize::MAX,
            Some(stop.clone()),
        ));
        // Deploys run before the work starts, so it starts under load.
        std::thread::sleep(Duration::from_millis(300));
        let (started, finished) = work();
        stop.store(true, Ordering::SeqCst);
        let samples = self.clients.block_on(load).expect("load");
        let during = samples
            .into_iter()
            .filter(|s| s.begun < finished && s.begun + s.latency > started)
            .map(|s| s.latency)
            .collect();
        (during, finished - started)
    }

    fn shutdown(self) {
        self.server_runtime.block_on(self.server.shutdown());
        self.standin_runtime.block_on(self.standin.shutdown());
    }
}

fn deploy_latency(work: &Path, records: usize, quick: bool) {
    let deploys = if quick { 2_000 } else { 6_000 };
    let rotations = if quick { 2 } else { 3 };
    println!();
    println!(
        "## deploy latency: {CLIENTS} clients, {APPS} apps × {KEYS_PER_APP} keys, {records} records, kubernetes target → stand-in"
    );
    println!();
    let (bench, first) = Bench::start(work, |path, keyring| {
        build_store_with(path, keyring, APPS, records - APPS * KEYS_PER_APP);
    });
    let (idle, rate) = bench.idle(deploys);

    let mut during = Vec::new();
    let mut passes = Vec::new();
    let mut previous = first;
    for round in 1..=rotations {
        let mut new = None;
        let (latencies, pass) = bench.during(|| {
            new = Some(
                exsec::crypto::generate_key_file(
                    &bench.dir.join("keys.d"),
                    SystemTime::now() + Duration::from_secs(3600 * round),
                )
                .expect("key")
                .key_id,
            );
            watch_pass(&bench.server)
        });
        let new = new.expect("key");
        during.extend(latencies);
        passes.push(pass);
        println!("rotation {round}: {previous} → {new} in {}", ms(pass));
        previous = new;
    }

    println!();
    println!("| phase | deploys | deploys/s | p50 | p99 | max |");
    println!("|---|---:|---:|---:|---:|---:|");
    row("idle", &idle, Some(rate));
    row(&format!("during {records}-record rotation"), &during, None);
    println!();
    passes.sort();
    println!(
        "re-seal pass under deploy load ({records} records): median {}, best {} (from the job going `running` to `idle`, polled every 1 ms)",
        ms(passes[passes.len() / 2]),
        ms(passes[0])
    );
    bench.shutdown();
}

/// Waits for the job to start and finish a pass; returns when each was
/// observed.
fn watch_pass(server: &exsec::app::Server) -> (Instant, Instant) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let rotation = server.rotation();
    let mut started = None;
    loop {
        let status = rotation.status();
        if started.is_none() && status.state == RotationState::Running {
            started = Some(Instant::now());
        }
        if let Some(started) = started
            && status.state == RotationState::Idle
        {
            return (started, Instant::now());
        }
        assert!(Instant::now() < deadline, "rotation did not finish");
        std::thread::sleep(Duration::from_millis(1));
    }
}

// ---------------------------------------------------------------------------
// 4. One tenant's data-key rotation: the re-seal pass, and deploys during it

/// The tenant whose data key rotates: [`DEK_APPS`] apps with
/// [`KEYS_PER_APP`] overrides each (no tenant defaults: every app's
/// effective set stays far below 1 MiB).
const DEK_TENANT: &str = "rot";

/// Apps of [`DEK_TENANT`] for `records` values.
fn dek_apps(records: usize) -> usize {
    records.div_ceil(KEYS_PER_APP)
}

/// SPEC §10: one tenant's data-key rotation re-seals its values: `records`
/// values of one tenant under its data key (wrapped by the one master
/// key), a new data key made as the API makes it, one
/// `Rotation::data_key_pass` timed until every value is under the new key
/// and the old wrap is gone. Without clients the job never rests.
fn data_key_passes(work: &Path, sizes: &[usize]) {
    println!();
    println!(
        "## one tenant's data-key rotation: every value (and kept version) of one tenant re-sealed under its new data key, the old one deleted (one Rotation::data_key_pass)"
    );
    println!();
    println!(
        "| records | pass (median of {PASSES}) | best | records/s | CPU | read | AEAD | write + commit | writes |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let runtime = runtime(2);
    for &records in sizes {
        let master = key("k1");
        let keyring = SharedKeyring::new(keyring_of(&[&master]));
        let template = work.join(format!("dek-{records}.redb"));
        build_tenant_store(&template, &keyring.snapshot(), dek_apps(records));
        move_under_data_keys(&runtime, &template, &keyring, records);
        let reports = timed_passes(
            &template,
            |store| rotate_data_key(store, &keyring.snapshot()),
            |store| {
                let stop = exsec::shutdown::Trigger::new();
                runtime
                    .block_on(Rotation::default().data_key_pass(store, &keyring, &stop.subscribe()))
                    .expect("pass")
            },
            |store, new_id, report| {
                let tenant = TenantId::parse(DEK_TENANT).expect("tenant");
                let (wraps, usage) = store
                    .read(|r| Ok((r.data_keys(&tenant)?, r.data_key_use(&tenant)?)))
                    .expect("read");
                assert_eq!(wraps.len(), 1, "the old wrap is gone");
                assert_eq!(
                    usage,
                    BTreeMap::from([(new_id, records as u64)]),
                    "every value under the new data key"
                );
                assert_eq!(report.resealed as usize, records);
            },
        );
        reseal_row(records, &reports);
    }
}

/// Deploys idle, then during data-key rotations of the tenant whose apps
/// they deploy (`POST /v1/tenants/rot/rotate-data-key`; a deploy counts as
/// "during" if it overlaps the time from the answer to the rotation seen
/// finished).
fn data_key_deploy_latency(work: &Path, records: usize, quick: bool) {
    let deploys = if quick { 2_000 } else { 6_000 };
    let rotations = if quick { 2 } else { 3 };
    println!();
    println!(
        "## deploy latency during one tenant's data-key rotation: {CLIENTS} clients deploying {APPS} of its apps, {records} values in that tenant, kubernetes target → stand-in"
    );
    println!();
    let (bench, _) = Bench::start(work, |path, keyring| {
        build_tenant_store(path, keyring, dek_apps(records));
    });
    let (idle, rate) = bench.idle(deploys);
    let mut during = Vec::new();
    let mut passes = Vec::new();
    for round in 1..=rotations {
        let (latencies, pass) = bench.during(|| {
            let answer = bench.clients.block_on(request(
                hyper::Method::POST,
                bench.server.addr(),
                &bench.token,
                &format!("/v1/tenants/{DEK_TENANT}/rotate-data-key"),
            ));
            let started = Instant::now();
            assert!(answer.contains("\"remaining\""), "{answer}");
            let deadline = started + Duration::from_secs(120);
            loop {
                let tenant = bench.clients.block_on(request(
                    hyper::Method::GET,
                    bench.server.addr(),
                    &bench.token,
                    &format!("/v1/tenants/{DEK_TENANT}"),
                ));
                if tenant.contains("\"resealing\":null") {
                    return (started, Instant::now());
                }
                assert!(Instant::now() < deadline, "the rotation did not finish");
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        during.extend(latencies);
        passes.push(pass);
        println!("data-key rotation {round}: {}", ms(pass));
    }
    println!();
    println!("| phase | deploys | deploys/s | p50 | p99 | max |");
    println!("|---|---:|---:|---:|---:|---:|");
    row("idle", &idle, Some(rate));
    row(
        &format!("during a {records}-value data-key rotation"),
        &during,
        None,
    );
    println!();
    passes.sort();
    println!(
        "data-key re-seal under deploy load ({records} values): median {}, best {} (from the 202 to the old wrap gone, polled every 1 ms)",
        ms(passes[passes.len() / 2]),
        ms(passes[0])
    );
    bench.shutdown();
}

/// A new current data key for [`DEK_TENANT`], made as the API makes it;
/// its id.
fn rotate_data_key(store: &Store, keyring: &Keyring) -> exsec::crypto::DataKeyId {
    let tenant = TenantId::parse(DEK_TENANT).expect("tenant");
    let active = keyring.active().expect("active").clone();
    let fingerprint = keyring.fingerprint(&active).expect("fingerprint");
    let dek_id = exsec::crypto::DataKeyId::generate().expect("id");
    let wrapped = keyring
        .wrap_data_key(
            &tenant,
            &dek_id,
            &exsec::crypto::DataKey::generate().expect("key"),
        )
        .expect("wrap");
    let id = dek_id.clone();
    store
        .write(move |w| {
            w.rotate_data_key(&tenant, &id, wrapped.clone(), fingerprint, "bench")
                .map(drop)
        })
        .expect("rotate");
    dek_id
}

/// One admin request without a body; the answer's body.
async fn request(
    method: hyper::Method,
    addr: std::net::SocketAddr,
    token: &str,
    path: &str,
) -> String {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = sender.send_request(request).await.expect("send");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

/// One finished deploy.
struct Sample {
    begun: Instant,
    latency: Duration,
}

/// `count` deploys spread over [`CLIENTS`] keep-alive connections, each
/// client on its own apps (no per-app queueing); stops early when `stop`
/// is set.
async fn deploy_burst(
    addr: std::net::SocketAddr,
    token: String,
    count: usize,
    stop: Option<Arc<AtomicBool>>,
) -> Vec<Sample> {
    let mut workers = Vec::new();
    for client in 0..CLIENTS {
        let token = token.clone();
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .expect("handshake");
            tokio::spawn(connection);
            let mut samples = Vec::new();
            for (round, n) in (client..count).step_by(CLIENTS).enumerate() {
                if stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)) {
                    break;
                }
                let app = app_name(n % APPS);
                let body = format!(r#"{{"image_ref":"registry.example/{app}:{round}"}}"#);
                let request = Request::post(format!("/v1/apps/{app}/deploys"))
                    .header("host", "127.0.0.1")
                    .header("authorization", format!("Bearer {token}"))
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .expect("request");
                let begun = Instant::now();
                sender.ready().await.expect("ready");
                let response = sender.send_request(request).await.expect("send");
                let status = response.status();
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .expect("body")
                    .to_bytes();
                let latency = begun.elapsed();
                assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
                let injected = br#""status":"injected""#;
                assert!(
                    body.windows(injected.len()).any(|w| w == injected),
                    "{}",
                    String::from_utf8_lossy(&body)
                );
                samples.push(Sample { begun, latency });
            }
            samples
        }));
    }
    let mut samples = Vec::new();
    for worker in workers {
        samples.extend(worker.await.expect("client"));
    }
    samples
}

fn row(phase: &str, latencies: &[Duration], rate: Option<f64>) {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    let at = |q: f64| sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)];
    println!(
        "| {phase} | {} | {} | {} | {} | {} |",
        sorted.len(),
        rate.map_or("-".to_owned(), |r| format!("{r:.0}")),
        ms(at(0.50)),
        ms(at(0.99)),
        ms(sorted[sorted.len() - 1]),
    );
}

// ---------------------------------------------------------------------------
// Stores

/// A key id with its key material (kept to build several keyrings).
struct TestKey {
    id: KeyId,
    bytes: [u8; 32],
}

impl TestKey {
    fn copy(&self) -> MasterKey {
        MasterKey::from_bytes(self.bytes)
    }
}

fn key(id: &str) -> TestKey {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("random");
    TestKey {
        id: KeyId::parse(id).expect("key id"),
        bytes,
    }
}

/// A keyring holding copies of `keys` (the greatest id active).
fn keyring_of(keys: &[&TestKey]) -> Keyring {
    Keyring::from_keys(keys.iter().map(|key| (key.id.clone(), key.copy())))
}

fn build_store(path: &Path, key: &TestKey, apps: usize, bulk: usize) {
    build_store_with(path, &keyring_of(&[key]), apps, bulk);
}

/// `apps` apps (10 per tenant) with [`KEYS_PER_APP`] overrides each, and
/// `bulk` more records as tenant defaults of tenants without apps.
fn build_store_with(path: &Path, keyring: &Keyring, apps: usize, bulk: usize) {
    let store = Store::open(path, store_options()).expect("open");
    let value = SecretValue::parse(format!("sk-{}", "x".repeat(61))).expect("value");
    let seal = |scope: &Scope, key: &str| {
        let provider = Provider::parse("openai").expect("provider");
        let key = EnvKey::parse(key).expect("key");
        let sealed = keyring
            .seal(
                &SecretLocation {
                    scope,
                    provider: &provider,
                    key: &key,
                },
                &value,
            )
            .expect("seal");
        let fingerprint = keyring
            .fingerprint(&sealed.sealer_id())
            .expect("fingerprint");
        PutSecret {
            scope: scope.clone(),
            provider,
            key,
            sealed,
            fingerprint,
        }
    };
    for tenant in 0..apps.div_ceil(10) {
        let tenant_id = TenantId::parse(&format!("apps{tenant}")).expect("tenant");
        let mut puts = Vec::new();
        let mut app_ids = Vec::new();
        for app in (tenant * 10..apps).take(10) {
            let app_id = AppId::parse(&app_name(app)).expect("app");
            let scope = Scope::App(app_id.clone());
            puts.extend((0..KEYS_PER_APP).map(|k| seal(&scope, &format!("KEY_{k}"))));
            app_ids.push(app_id);
        }
        store
            .write(move |w| {
                w.put_tenant(&tenant_id, "bench")?;
                for app_id in &app_ids {
                    w.put_app(app_id, &tenant_id, Default::default(), "bench")?;
                }
                for put in &puts {
                    w.put_secret(put.clone(), "bench")?;
                }
                Ok(())
            })
            .expect("seed apps");
    }
    let tenants: Vec<usize> = (0..bulk.div_ceil(BULK_KEYS)).collect();
    for chunk in tenants.chunks(50) {
        let mut writes = Vec::new();
        for &tenant in chunk {
            let tenant_id = TenantId::parse(&format!("bulk{tenant}")).expect("tenant");
            let scope = Scope::Tenant(tenant_id.clone());
            let keys = BULK_KEYS.min(bulk - tenant * BULK_KEYS);
            let puts: Vec<PutSecret> = (0..keys)
                .map(|k| seal(&scope, &format!("KEY_{k}")))
                .collect();
            writes.push((tenant_id, puts));
        }
        store
            .write(move |w| {
                for (tenant_id, puts) in &writes {
                    w.put_tenant(tenant_id, "bench")?;
                    for put in puts {
                        w.put_secret(put.clone(), "bench")?;
                    }
                }
                Ok(())
            })
            .expect("seed bulk");
    }
    let total: u64 = store.read(|r| r.key_usage()).expect("usage").values().sum();
    assert_eq!(total as usize, apps * KEYS_PER_APP + bulk);
}

/// [`DEK_TENANT`] with `apps` apps (`app0`…), [`KEYS_PER_APP`] values each,
/// sealed under `keyring`'s key (the first pass moves them under the
/// tenant's data key).
fn build_tenant_store(path: &Path, keyring: &Keyring, apps: usize) {
    let store = Store::open(path, store_options()).expect("open");
    let tenant_id = TenantId::parse(DEK_TENANT).expect("tenant");
    let value = SecretValue::parse(format!("sk-{}", "x".repeat(61))).expect("value");
    let provider = Provider::parse("openai").expect("provider");
    let owner = tenant_id.clone();
    store
        .write(move |w| w.put_tenant(&owner, "bench").map(drop))
        .expect("tenant");
    let all: Vec<usize> = (0..apps).collect();
    for chunk in all.chunks(10) {
        let mut writes = Vec::new();
        for &app in chunk {
            let app_id = AppId::parse(&app_name(app)).expect("app");
            let scope = Scope::App(app_id.clone());
            let puts: Vec<PutSecret> = (0..KEYS_PER_APP)
                .map(|k| {
                    let key = EnvKey::parse(&format!("KEY_{k}")).expect("key");
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
                    let fingerprint = keyring
                        .fingerprint(&sealed.sealer_id())
                        .expect("fingerprint");
                    PutSecret {
                        scope: scope.clone(),
                        provider: provider.clone(),
                        key,
                        sealed,
                        fingerprint,
                    }
                })
                .collect();
            writes.push((app_id, puts));
        }
        let tenant_id = tenant_id.clone();
        store
            .write(move |w| {
                for (app_id, puts) in &writes {
                    w.put_app(app_id, &tenant_id, Default::default(), "bench")?;
                    for put in puts {
                        w.put_secret(put.clone(), "bench")?;
                    }
                }
                Ok(())
            })
            .expect("seed apps");
    }
}

fn app_name(n: usize) -> String {
    format!("app{n}")
}

/// The shipped default cache (`storage.cache_size`), as the daemon runs.
fn store_options() -> StoreOptions {
    StoreOptions::with_cache_size(8 * 1024 * 1024)
}

fn runtime(workers: usize) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("runtime")
}

/// User + system CPU time of this process so far (`/proc/self/stat`, in
/// clock ticks of 10 ms).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("comm")
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    Duration::from_millis(ticks * 10)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
