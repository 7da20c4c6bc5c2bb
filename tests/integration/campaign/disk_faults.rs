//! The disk-fault campaign: `exsec serve` (a real child process, its store
//! on a small tmpfs, its manifests on the normal disk) under a steady load
//! of concurrent secret writes (tenant token and admin), reads and deploys,
//! while each cycle puts a seeded fault on the tmpfs:
//!
//! - **full**: the tmpfs is filled to the last byte, the load runs on, the
//!   filler is removed (sometimes the daemon is SIGKILLed while the disk is
//!   full and restarted on it first);
//! - **read-only**: `mount -o remount,ro` under load. Linux refuses it
//!   while exsec holds its file open for writing ("busy"), which the cycle
//!   asserts; so the daemon is SIGKILLed, the file system remounted
//!   read-only and the daemon started on it: it comes up degraded (reads
//!   answered, writes 503), and heals without a restart once the file
//!   system is remounted read-write;
//! - **both** in a row.
//!
//! Checked every cycle: while degraded, writes answer 507
//! `insufficient_storage` — never a 500, never past [`REQUEST_TIMEOUT`];
//! reads answer 200 and deploys 201 (or 503 `deploy_record_pending`);
//! `/readyz` says `storage: degraded`, then `ok`; after the fault clears a
//! write succeeds without a restart (the time to heal is measured); a
//! deploy of every app injects every acknowledged value of the cycle.
//! At the end, on the closed file: exactly the keys kept are there with
//! their values, and `exsec audit verify --db` passes.
//!
//! CI runs 3 cycles; `scripts/disk-faults.sh --cycles 100` the full size.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use exsec::crypto::Keyring;
use exsec::store::Store;
use serde_json::json;
use tokio::sync::Mutex;

use super::{Rng, seed, size, verify_audit_chain};
use crate::daemon::{Daemon, PATIENCE};
use crate::harness::{app_scope, open_stored, options, tenant_scope};
use crate::openapi::Contract;
use crate::server::{Answer, Options, TestServer};
use crate::tmpfs::Tmpfs;

/// Size of the store's file system. A deleted secret keeps its versions
/// (a tombstone, and its older values for a restore: issue 16), so deleting
/// frees less than it writes; 100 cycles need about 30 MiB.
const TMPFS_SIZE: &str = "48m";
/// Apps of tenant `acme`; tenant-token writer `w` writes overrides of app `w`.
const APPS: usize = 4;
/// Writers with the admin token, writing tenant defaults of `acme`.
const ADMIN_WRITERS: usize = 2;
/// Value size: every new key needs new pages, so a full disk shows quickly.
const VALUE_BYTES: usize = 2048;
/// Longest any request may take, whatever the disk does.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Of each cycle's acknowledged keys, one in this many is kept; the others
/// are deleted (their live records; their kept versions stay).
const KEEP_EVERY: u64 = 32;
/// What the reader asks for (path, as admin) — answered 200 through every fault.
const READS: [(&str, bool); 5] = [
    ("/v1/apps/app0/external-secrets", false),
    ("/v1/tenants/acme/external-secrets", false),
    ("/v1/tenants/acme", false),
    ("/v1/keys", true),
    ("/v1/audit-events?limit=5", true),
];

/// The fault of one cycle.
#[derive(Debug, Clone, Copy)]
enum Fault {
    Full,
    ReadOnly,
    Both,
}

/// Where writer `w` writes: app overrides for the tenant-token writers,
/// tenant defaults for the admin writers.
fn scope_path(w: usize) -> String {
    if w < APPS {
        format!("/v1/apps/app{w}")
    } else {
        "/v1/tenants/acme".to_owned()
    }
}

/// A value of [`VALUE_BYTES`] naming its key.
fn value(key: &str) -> String {
    format!("{key}-{}", "v".repeat(VALUE_BYTES - key.len() - 1))
}

/// What the campaign counts across cycles.
#[derive(Default)]
struct Totals {
    full: u64,
    read_only: u64,
    kills_while_full: u64,
    restarts_on_full_disk: u64,
    starts_refused_on_full_disk: u64,
    ro_refused_busy: u64,
    ro_started_degraded: u64,
    acked_writes_checked: u64,
    refused_writes: u64,
    reads: u64,
    deploys: u64,
    deploys_refused: u64,
    heal: Vec<Duration>,
    /// `(writer, key)` of the writes acknowledged this cycle.
    acked: Vec<(usize, String)>,
    /// Refused writes found stored all the same (see the README).
    refused_but_kept: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn disk_faults_lose_nothing_acknowledged_and_heal_without_help() {
    let Some(tmpfs) = Tmpfs::mount(
        "disk_faults_lose_nothing_acknowledged_and_heal_without_help",
        TMPFS_SIZE,
    ) else {
        return;
    };
    let seed = seed("disk_faults");
    let cycles = size("EXSEC_CAMPAIGN_CYCLES", 3);
    let mut rng = Rng(seed);
    let server = TestServer::spawn_with(Options {
        storage_path: Some(tmpfs.path().join("exsec.redb")),
        ..Options::default()
    })
    .await;
    let apps: Vec<String> = (0..APPS).map(|a| format!("app{a}")).collect();
    let app_names: Vec<&str> = apps.iter().map(String::as_str).collect();
    server.seed("acme", &app_names).await;
    let token = server.mint("acme").await;
    let mut server = Some(server);
    // scope path → key → value of every key kept.
    let mut kept: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut totals = Totals::default();

    for cycle in 0..cycles {
        let fault = match rng.between(0..3) {
            0 => Fault::Full,
            1 => Fault::ReadOnly,
            _ => Fault::Both,
        };
        let kill_while_full = rng.between(0..3) == 0;
        let mut current = server.take().unwrap();
        if matches!(fault, Fault::Full | Fault::Both) {
            totals.full += 1;
            let (back, heal) =
                full_disk(current, &tmpfs, &token, cycle, kill_while_full, &mut totals).await;
            current = back;
            totals.heal.extend(heal);
            println!(
                "cycle {cycle}: full disk (kill: {kill_while_full}), time to heal {}",
                heal.map_or("- (the start waited for space)".to_owned(), |heal| format!(
                    "{heal:?}"
                ))
            );
        }
        if matches!(fault, Fault::ReadOnly | Fault::Both) {
            totals.read_only += 1;
            current = read_only(current, &tmpfs, &token, cycle, &mut totals).await;
            println!("cycle {cycle}: read-only file system");
        }
        check_and_trim(&current, &mut kept, &mut totals).await;
        server = Some(current);
    }

    // The closed file holds exactly the keys kept, with their values.
    let server = server.take().unwrap();
    let dir = server.dir;
    server.process.unwrap().terminate();
    let database = tmpfs.path().join("exsec.redb");
    let scan = exsec::crypto::scan_dir(&dir.path().join("keys.d"), false).unwrap();
    let (keyring, _) = Keyring::assemble(scan, &BTreeMap::new(), None);
    let keyring = std::sync::Arc::new(keyring);
    let store = Store::open(&database, options()).unwrap();
    let mut checked = 0;
    for (w, scope) in (0..APPS)
        .map(|a| app_scope(&format!("app{a}")))
        .chain([tenant_scope("acme")])
        .enumerate()
    {
        let records = store.read(move |r| r.secrets(&scope)).unwrap();
        let stored: BTreeMap<String, String> = records
            .iter()
            .map(|r| (r.key.as_str().to_owned(), open_stored(&store, &keyring, r)))
            .collect();
        let expected = kept.get(&scope_path(w)).cloned().unwrap_or_default();
        assert_eq!(stored, expected, "{}", scope_path(w));
        checked += stored.len();
    }
    drop(store);
    verify_audit_chain(&database).await;

    let mut heal = totals.heal.clone();
    heal.sort();
    let (min, median, max) = if heal.is_empty() {
        (Duration::ZERO, Duration::ZERO, Duration::ZERO)
    } else {
        (heal[0], heal[heal.len() / 2], heal[heal.len() - 1])
    };
    println!(
        "disk_faults: {cycles} cycles, seed {seed}: {} full-disk faults ({} SIGKILLed while full, {} restarts on the full disk, {} starts refused on it until space was back), {} read-only faults ({} remounts refused busy under load, {} starts on the read-only file system came up degraded and healed without a restart); {} acknowledged writes checked, 0 lost, {checked} kept keys checked on the closed file; {} writes refused, {} reads, {} deploys answered 201 and {} refused or pending; time to heal min {min:?} median {median:?} max {max:?}",
        totals.full,
        totals.kills_while_full,
        totals.restarts_on_full_disk,
        totals.starts_refused_on_full_disk,
        totals.read_only,
        totals.ro_refused_busy,
        totals.ro_started_degraded,
        totals.acked_writes_checked,
        totals.refused_writes,
        totals.reads,
        totals.deploys,
        totals.deploys_refused,
    );
}

/// Fills the tmpfs under load, checks the degraded answers, maybe SIGKILLs
/// and restarts on the full disk, frees it and measures the time until a
/// tenant write succeeds again (no restart, no admin request).
async fn full_disk(
    server: TestServer,
    tmpfs: &Tmpfs,
    token: &str,
    cycle: u64,
    kill: bool,
    totals: &mut Totals,
) -> (TestServer, Option<Duration>) {
    let server = Arc::new(server);
    let load = Load::start(&server, token, cycle);
    load.wait_for("20 acknowledged writes", |t| {
        t.acked_count.load(Ordering::SeqCst) >= 20
    })
    .await;
    let filler = tmpfs.fill();
    load.wait_for("8 writes refused in a row", |t| {
        t.refused_in_a_row.load(Ordering::SeqCst) >= 8
    })
    .await;
    assert_storage(&server, Some("no_space")).await;
    // The load goes on for a moment on the full disk.
    let refused = load.tally.refused.load(Ordering::SeqCst);
    let daemon = server.process.as_ref().unwrap();
    let degraded = daemon.wait_for_line(|line| line.contains("storage degraded"));
    assert!(degraded.contains("no_space"), "{degraded}");
    load.wait_for("16 more refused writes", |t| {
        t.refused.load(Ordering::SeqCst) >= refused + 16
    })
    .await;
    let server = if kill {
        totals.kills_while_full += 1;
        load.killing.store(true, Ordering::SeqCst);
        server.process.as_ref().unwrap().signal("KILL");
        load.stop(totals).await;
        let mut server = Arc::into_inner(server).expect("every task is done");
        server.process.take().unwrap().kill();
        let daemon = Daemon::start(&server.path("config.toml"), &[]);
        match TestServer::try_attached(server.dir, daemon) {
            Ok(restarted) => {
                totals.restarts_on_full_disk += 1;
                // Still full: reads answer, writes are refused as documented.
                let key = format!("C{cycle}RESTARTED");
                let answer = put(&restarted, token, 0, &key).await;
                if matches!(answer.status, 200 | 201) {
                    // A write may still fit in a page the file had free.
                    totals.acked.push((0, key));
                }
                Arc::new(restarted)
            }
            Err((dir, tail)) => {
                // A start-up write hit the full disk: the start is refused
                // with the cause, and succeeds once space is back (systemd
                // restarts it: Restart=on-failure).
                assert!(tail.contains("No space left on device"), "{tail}");
                totals.starts_refused_on_full_disk += 1;
                std::fs::remove_file(&filler).unwrap();
                let daemon = Daemon::start(&dir.path().join("config.toml"), &[]);
                let restarted = TestServer::attached(dir, daemon);
                let key = format!("C{cycle}RESTARTED");
                let answer = put(&restarted, token, 0, &key).await;
                assert!(matches!(answer.status, 200 | 201), "{}", answer.text());
                totals.acked.push((0, key));
                return (restarted, None);
            }
        }
    } else {
        load.stop(totals).await;
        server
    };

    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    for attempt in 0.. {
        let key = format!("C{cycle}HEAL{attempt}");
        let answer = put(&server, token, 0, &key).await;
        match answer.status {
            200 | 201 => {
                totals.acked.push((0, key));
                break;
            }
            507 => {}
            _ => panic!(
                "a write after the disk was freed: {} {}",
                answer.status,
                answer.text()
            ),
        }
        assert!(
            freed.elapsed() < PATIENCE,
            "no write succeeded within {PATIENCE:?} of freeing the disk"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let heal = freed.elapsed();
    if !kill {
        let daemon = server.process.as_ref().unwrap();
        daemon.wait_for_line(|line| line.contains("storage healed"));
    }
    assert_storage(&server, None).await;
    (
        Arc::into_inner(server).expect("every task is done"),
        Some(heal),
    )
}

/// Tries `remount,ro` under load (refused while exsec holds its file open
/// for writing), then SIGKILLs, remounts read-only, tries a start, and
/// starts again once the file system is writable.
async fn read_only(
    server: TestServer,
    tmpfs: &Tmpfs,
    token: &str,
    cycle: u64,
    totals: &mut Totals,
) -> TestServer {
    let server = Arc::new(server);
    let load = Load::start(&server, token, cycle + 1_000_000);
    load.wait_for("20 acknowledged writes", |t| {
        t.acked_count.load(Ordering::SeqCst) >= 20
    })
    .await;
    match tmpfs.remount(true) {
        Err(message) => {
            assert!(message.contains("busy"), "{message}");
            totals.ro_refused_busy += 1;
        }
        Ok(()) => {
            // A kernel that allows it: writes must be refused, as documented.
            load.wait_for("8 writes refused in a row", |t| {
                t.refused_in_a_row.load(Ordering::SeqCst) >= 8
            })
            .await;
            assert_storage(&server, Some("read_only")).await;
            tmpfs.remount(false).unwrap();
        }
    }
    load.killing.store(true, Ordering::SeqCst);
    server.process.as_ref().unwrap().signal("KILL");
    load.stop(totals).await;
    let mut server = Arc::into_inner(server).expect("every task is done");
    server.process.take().unwrap().kill();

    tmpfs.remount(true).unwrap();
    let daemon = Daemon::start(&server.path("config.toml"), &[]);
    let server = TestServer::try_attached(server.dir, daemon).unwrap_or_else(|(_, tail)| {
        panic!("cycle {cycle}: no start on the read-only file system:\n{tail}")
    });
    assert_storage(&server, Some("read_only")).await;
    let key = format!("C{cycle}AFTERRO");
    let refused = put(&server, token, 0, &key).await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    for (path, as_admin) in READS {
        let who = server.token_of(as_admin, token);
        let answer = server.call("GET", path, Some(who), None).await;
        assert_eq!(answer.status, 200, "GET {path}: {}", answer.text());
    }
    totals.ro_started_degraded += 1;
    tmpfs.remount(false).unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let answer = put(&server, token, 0, &key).await;
        if matches!(answer.status, 200 | 201) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cycle {cycle}: no write within {PATIENCE:?} of the read-write remount"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    totals.acked.push((0, key));
    assert_storage(&server, None).await;
    server
}

/// `/readyz` says storage is degraded with `fault` (polled: a write that
/// still fits in a page the file had free heals it for a moment), or ok
/// with `None`.
async fn assert_storage(server: &TestServer, fault: Option<&str>) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let ready = server.call("GET", "/readyz", None, None).await;
        let body = ready.json();
        let Some(fault) = fault else {
            assert_eq!(ready.status, 200, "{body}");
            assert_eq!(body["storage"], "ok", "{body}");
            return;
        };
        if ready.status == 503 {
            assert_eq!(body["storage"], "degraded", "{body}");
            assert_eq!(body["storage_fault"], fault, "{body}");
            return;
        }
        assert_eq!(ready.status, 200, "{body}");
        assert!(
            Instant::now() < deadline,
            "/readyz never said degraded: {body}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One PUT by writer `w` of `key`, within [`REQUEST_TIMEOUT`]; a refusal
/// must be the documented problem.
async fn put(server: &TestServer, token: &str, w: usize, key: &str) -> Answer {
    try_put(server, token, w, key)
        .await
        .unwrap_or_else(|error| panic!("PUT {key}: {error}"))
}

async fn try_put(server: &TestServer, token: &str, w: usize, key: &str) -> Result<Answer, String> {
    let path = format!("{}/external-secrets/p/{key}", scope_path(w));
    let body = Bytes::from(json!({ "value": value(key) }).to_string());
    let answer = bounded(server.try_call_bytes("PUT", &path, Some(token), Some(body), &[])).await?;
    match answer.status {
        200 | 201 => {}
        507 => {
            answer.assert_problem(507, "insufficient_storage");
        }
        503 => {
            answer.assert_problem(503, "storage_unavailable");
        }
        status => panic!("PUT {path}: {status} {}", answer.text()),
    }
    assert!(
        !answer.text().contains("vvvvvvvvvvvvvvvv"),
        "{}",
        answer.text()
    );
    Ok(answer)
}

/// `call` within [`REQUEST_TIMEOUT`]: a hang fails the campaign.
async fn bounded<F: std::future::Future<Output = Result<Answer, String>>>(
    call: F,
) -> Result<Answer, String> {
    tokio::time::timeout(REQUEST_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| panic!("a request took longer than {REQUEST_TIMEOUT:?}"))
}

/// What the load saw.
#[derive(Default)]
struct Tally {
    /// `(writer, key)` of every acknowledged write, in order.
    acked: Mutex<Vec<(usize, String)>>,
    acked_count: AtomicU64,
    refused: AtomicU64,
    refused_in_a_row: AtomicU64,
    reads: AtomicU64,
    deploys: AtomicU64,
    deploys_refused: AtomicU64,
}

/// Writers, readers and a deployer running against one daemon.
struct Load {
    server: Arc<TestServer>,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    /// Set before a SIGKILL: a failed connection then ends a task quietly.
    killing: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(server: &Arc<TestServer>, token: &str, cycle: u64) -> Load {
        let tally = Arc::new(Tally::default());
        let stop = Arc::new(AtomicBool::new(false));
        let killing = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for w in 0..APPS + ADMIN_WRITERS {
            let (server, tally, stop, killing) =
                (server.clone(), tally.clone(), stop.clone(), killing.clone());
            let token = if w < APPS {
                token.to_owned()
            } else {
                server.admin_token.clone()
            };
            tasks.push(tokio::spawn(async move {
                for n in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let key = format!("C{}W{w}N{n}", cycle % 1_000_000);
                    let answer = match try_put(&server, &token, w, &key).await {
                        Ok(answer) => answer,
                        Err(_) if killing.load(Ordering::SeqCst) => return,
                        Err(error) => panic!("PUT {key}: {error}"),
                    };
                    if matches!(answer.status, 200 | 201) {
                        tally.acked.lock().await.push((w, key));
                        tally.acked_count.fetch_add(1, Ordering::SeqCst);
                        tally.refused_in_a_row.store(0, Ordering::SeqCst);
                    } else {
                        tally.refused.fetch_add(1, Ordering::SeqCst);
                        tally.refused_in_a_row.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }));
        }
        {
            let (server, tally, stop, killing) =
                (server.clone(), tally.clone(), stop.clone(), killing.clone());
            let token = token.to_owned();
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    for (path, as_admin) in READS {
                        let who = server.token_of(as_admin, &token);
                        let call = server.try_call_bytes("GET", path, Some(who), None, &[]);
                        let answer = match bounded(call).await {
                            Ok(answer) => answer,
                            Err(_) if killing.load(Ordering::SeqCst) => return,
                            Err(error) => panic!("GET {path}: {error}"),
                        };
                        assert_eq!(
                            answer.status,
                            200,
                            "GET {path}: {}; log tail:\n{}",
                            answer.text(),
                            server.process.as_ref().unwrap().log_tail()
                        );
                        tally.reads.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }));
        }
        {
            let (server, tally, stop, killing) =
                (server.clone(), tally.clone(), stop.clone(), killing.clone());
            tasks.push(tokio::spawn(async move {
                for turn in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let path = format!("/v1/apps/app{}/deploys", turn % APPS);
                    let body = Bytes::from(json!({ "image_ref": "nginx:1.27" }).to_string());
                    let token = server.admin_token.clone();
                    let call = server.try_call_bytes("POST", &path, Some(&token), Some(body), &[]);
                    let answer = match bounded(call).await {
                        Ok(answer) => answer,
                        Err(_) if killing.load(Ordering::SeqCst) => return,
                        Err(error) => panic!("POST {path}: {error}"),
                    };
                    // A deploy whose start record cannot be written is
                    // refused before any cluster call; one whose final
                    // record cannot be is answered with its id.
                    match answer.status {
                        201 => {
                            tally.deploys.fetch_add(1, Ordering::SeqCst);
                        }
                        status => {
                            let code = match status {
                                507 => "insufficient_storage",
                                _ => "deploy_record_pending",
                            };
                            answer.assert_problem(status, code);
                            Contract::new().check("POST", &path, &answer);
                            tally.deploys_refused.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            }));
        }
        Load {
            server: server.clone(),
            tally,
            stop,
            killing,
            tasks,
        }
    }

    /// Polls `done` every 10 ms for at most [`PATIENCE`].
    async fn wait_for(&self, what: &str, done: impl Fn(&Tally) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done(&self.tally) {
            if Instant::now() >= deadline {
                let t = &self.tally;
                panic!(
                    "{what}: not within {PATIENCE:?} ({} writes acknowledged, {} refused, {} in a row; {} reads; {} deploys, {} refused); daemon log tail:\n{}",
                    t.acked_count.load(Ordering::SeqCst),
                    t.refused.load(Ordering::SeqCst),
                    t.refused_in_a_row.load(Ordering::SeqCst),
                    t.reads.load(Ordering::SeqCst),
                    t.deploys.load(Ordering::SeqCst),
                    t.deploys_refused.load(Ordering::SeqCst),
                    self.server
                        .process
                        .as_ref()
                        .map_or_else(String::new, |daemon| daemon.log_tail())
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops every task (a panic in one fails the campaign) and files what
    /// they saw.
    async fn stop(self, totals: &mut Totals) {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await.unwrap();
        }
        totals.refused_writes += self.tally.refused.load(Ordering::SeqCst);
        totals.reads += self.tally.reads.load(Ordering::SeqCst);
        totals.deploys += self.tally.deploys.load(Ordering::SeqCst);
        totals.deploys_refused += self.tally.deploys_refused.load(Ordering::SeqCst);
        totals
            .acked
            .extend(self.tally.acked.lock().await.iter().cloned());
    }
}

/// Deploys every app and checks that it injects every value acknowledged
/// this cycle; then deletes this cycle's keys but one in [`KEEP_EVERY`]
/// (and any refused write that was kept after all).
async fn check_and_trim(
    server: &TestServer,
    kept: &mut BTreeMap<String, BTreeMap<String, String>>,
    totals: &mut Totals,
) {
    let acked = std::mem::take(&mut totals.acked);
    for a in 0..APPS {
        let app = format!("app{a}");
        let deployed = server
            .deploy(&app, json!({ "image_ref": "nginx:1.27" }))
            .await;
        assert_eq!(deployed.status, 201, "{}", deployed.text());
        let injected = server.manifest_values(&app).unwrap_or_default();
        for (_, key) in acked.iter().filter(|(w, _)| *w == a || *w >= APPS) {
            assert_eq!(
                injected.get(key).map(String::as_str),
                Some(value(key).as_str()),
                "{app}: {key} was acknowledged"
            );
        }
    }
    totals.acked_writes_checked += acked.len() as u64;
    for w in 0..=APPS {
        let scope = scope_path(w);
        let kept_here = kept.entry(scope.clone()).or_default();
        for name in server.secret_names(&scope).await {
            let key = name.strip_prefix("p/").unwrap().to_owned();
            if kept_here.contains_key(&key) {
                continue;
            }
            let Some(index) = acked.iter().position(|(_, k)| *k == key) else {
                totals.refused_but_kept += 1;
                delete(server, &scope, &key).await;
                continue;
            };
            if (index as u64).is_multiple_of(KEEP_EVERY) {
                kept_here.insert(key.clone(), value(&key));
            } else {
                delete(server, &scope, &key).await;
            }
        }
    }
}

/// Deletes one key with the admin token.
async fn delete(server: &TestServer, scope: &str, key: &str) {
    let answer = server
        .admin("DELETE", &format!("{scope}/external-secrets/p/{key}"), None)
        .await;
    assert!(
        matches!(answer.status, 200 | 204),
        "DELETE {key}: {}",
        answer.text()
    );
}
