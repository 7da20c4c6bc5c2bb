//! The kill-cycle campaign: `exsec serve` (a real child process, the
//! Kubernetes target against the stand-in) runs concurrent secret writes in
//! both scopes, deploys, and now and then a master-key rotation (a new key
//! file dropped into the key directory, over 2,000 records seeded before
//! the first start), and is SIGKILLed at a random moment. After every kill:
//!
//! - on the closed file, through the library: every acknowledged write is
//!   there with its last acknowledged value or a later one sent, at the
//!   version that counts its committed writes, and opens with the keys on
//!   disk; every seeded record opens to its value; `exsec audit verify
//!   --db` passes;
//! - after the restart, through the API: one audit event per committed
//!   write, in version order; every deploy answered `201` is `succeeded` in
//!   the history with its events (`deploy.created`, one injection event,
//!   no `deploy.failed`); every deploy the kill cut short is filed
//!   `failed`/`interrupted`; the stand-in runs the image of the last
//!   acknowledged deploy of each app or of a later one sent.
//!
//! Right after each `201` the stand-in must hold what it claims: this
//! deploy's image and id on the Deployment, and, when injected, exactly the
//! injected names with values no older than the writes acknowledged before
//! the deploy was sent. CI runs 3 cycles in debug; `scripts/kill-cycles.sh
//! --cycles 200` runs a release build.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use exsec::crypto::Keyring;
use exsec::store::{PutSecret, Store};
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::{Rng, seed, size, verify_audit_chain};
use crate::daemon::Daemon;
use crate::harness::{app_scope, open_stored, options, seal_with, tenant_scope};
use crate::kubernetes::{deployment, secret_values};
use crate::server::{Options, TestServer};

/// Concurrent writers, each writing its own key over and over: even ones
/// an app override, odd ones a tenant default (in every app's set).
const WRITERS: usize = 8;
/// Apps deployed, each by one deployer only (so a `201` can be checked
/// against the cluster before anything else touches the app).
const APPS: usize = 4;
const DEPLOYERS: usize = 2;
/// Records seeded through the library before the first start, so that a
/// rotation pass runs long enough for a kill to land in it.
const BULK_APPS: usize = 20;
const BULK_KEYS: usize = 100;

fn app_name(a: usize) -> String {
    format!("web{a}")
}

fn writer_scope(w: usize) -> exsec::model::Scope {
    if w.is_multiple_of(2) {
        app_scope(&app_name(w / 2 % APPS))
    } else {
        tenant_scope("acme")
    }
}

fn writer_key(w: usize) -> String {
    format!("K{w}")
}

/// Write `n` of writer `w`: also its version once committed.
fn value(w: usize, n: u64) -> String {
    format!("w{w}-{n:06}")
}

/// `(writer, n)` of a value written by [`value`].
fn parse_value(value: &str) -> (usize, u64) {
    let (w, n) = value.trim_start_matches('w').split_once('-').unwrap();
    (w.parse().unwrap(), n.parse().unwrap())
}

fn bulk_value(app: &str, key: &str) -> String {
    format!("bulk-{app}-{key}-{}", "x".repeat(24))
}

/// One writer's progress in a cycle: the last write acknowledged and the
/// last one sent (which may or may not have committed).
#[derive(Default)]
struct Progress {
    acked: AtomicU64,
    sent: AtomicU64,
}

/// A deploy answered `201` in the current cycle.
struct Answered {
    app: usize,
}

/// What the driver knows across cycles.
#[derive(Default)]
struct Ledger {
    /// Per writer, the version found committed at the last check.
    stored: Vec<u64>,
    /// Per key, the last version seen in the audit log.
    audited: BTreeMap<String, u64>,
    /// The last audit event checked.
    audit_after: u64,
    /// Per app, the image number last sent and last acknowledged.
    image_sent: Vec<u64>,
    image_acked: Vec<u64>,
    /// Deploys answered `201` this cycle, by id.
    answered: BTreeMap<String, Answered>,
    /// Totals for the report.
    acked_writes: u64,
    acked_deploys: u64,
    interrupted_deploys: u64,
    rotations: u64,
    /// Kills that left records under two keys (a re-sealing pass cut short).
    killed_mid_rotation: u64,
    records_checked: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_cycles_lose_nothing_acknowledged() {
    let seed = seed("kill_cycles");
    let cycles = size("EXSEC_CAMPAIGN_CYCLES", 3);
    let mut rng = Rng(seed);
    let first = TestServer::spawn_with(Options {
        deploy_timeout: "20s",
        ..Options::kubernetes()
    })
    .await;
    let names: Vec<String> = (0..APPS).map(app_name).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    first.seed("acme", &names).await;
    let mut cluster = first.cluster;
    let dir = first.dir;
    first.process.unwrap().terminate();
    seed_bulk(dir.path());
    let mut ledger = Ledger {
        stored: vec![0; WRITERS],
        image_sent: vec![0; APPS],
        image_acked: vec![0; APPS],
        ..Ledger::default()
    };
    let mut next_key_time = SystemTime::now();

    let mut dir = Some(dir);
    for cycle in 0..cycles {
        let mut server = start(dir.take().unwrap(), cluster.take());
        check_after_restart(&server, &mut ledger).await;
        if rng.between(0..3) == 0 {
            next_key_time += Duration::from_secs(3600);
            exsec::crypto::generate_key_file(&server.path("keys.d"), next_key_time).unwrap();
            ledger.rotations += 1;
        }
        let kill_after = rng.between(5..60);
        let linger = Duration::from_millis(rng.between(0..20));
        let (returned, progress) = work_until_killed(server, &mut ledger, kill_after, linger).await;
        server = returned;
        server.process.take().unwrap().kill();
        check_closed_file(server.dir.path(), &progress, &mut ledger).await;
        println!("cycle {cycle}: killed after {kill_after} acknowledged operations (+{linger:?})");
        cluster = server.cluster.take();
        dir = Some(server.dir);
    }

    // The last start: checks, then the rotation must finish.
    let mut server = start(dir.take().unwrap(), cluster.take());
    check_after_restart(&server, &mut ledger).await;
    let keys = wait_for_idle_rotation(&server).await;
    let active = keys["active"].clone();
    for key in keys["keys"].as_array().unwrap() {
        let records = key["records"].as_u64().unwrap();
        assert!(
            key["id"] == active || records == 0,
            "records left under an old key: {keys}"
        );
    }
    server.process.take().unwrap().terminate();
    let database = server.path("exsec.redb");
    verify_audit_chain(&database).await;
    println!(
        "kill_cycles: {cycles} cycles, seed {seed}: {} acknowledged writes checked, 0 lost; {} records re-read and opened; {} deploys acknowledged, {} interrupted deploys filed; {} rotations, {} kills mid-pass",
        ledger.acked_writes,
        ledger.records_checked,
        ledger.acked_deploys,
        ledger.interrupted_deploys,
        ledger.rotations,
        ledger.killed_mid_rotation
    );
}

/// Starts `exsec serve` on `dir` with the stand-in `cluster`.
fn start(dir: tempfile::TempDir, cluster: Option<kube_standin::StandIn>) -> TestServer {
    let daemon = Daemon::start(&dir.path().join("config.toml"), &[]);
    let mut server = TestServer::attached(dir, daemon);
    server.cluster = cluster;
    server
}

/// Runs writers and deployers until `kill_after` operations were
/// acknowledged (and `linger` more), SIGKILLs the daemon, and returns the
/// writers' progress. Checks every `201` against the stand-in on the way.
async fn work_until_killed(
    server: TestServer,
    ledger: &mut Ledger,
    kill_after: u64,
    linger: Duration,
) -> (TestServer, Arc<Vec<Progress>>) {
    let server = Arc::new(server);
    let progress: Arc<Vec<Progress>> = Arc::new(
        ledger
            .stored
            .iter()
            .map(|&n| Progress {
                acked: AtomicU64::new(n),
                sent: AtomicU64::new(n),
            })
            .collect(),
    );
    let acked_total = Arc::new(AtomicU64::new(0));
    let enough = Arc::new(Notify::new());
    let count = {
        let (acked_total, enough) = (acked_total.clone(), enough.clone());
        move || {
            if acked_total.fetch_add(1, Ordering::SeqCst) + 1 == kill_after {
                enough.notify_one();
            }
        }
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (server, progress, count) = (server.clone(), progress.clone(), count.clone());
            tokio::spawn(async move {
                let path = match writer_scope(w) {
                    exsec::model::Scope::App(app) => format!("/v1/apps/{app}"),
                    exsec::model::Scope::Tenant(tenant) => format!("/v1/tenants/{tenant}"),
                };
                let path = format!("{path}/external-secrets/p/{}", writer_key(w));
                let token = server.admin_token.clone();
                let mut n = progress[w].acked.load(Ordering::SeqCst);
                loop {
                    n += 1;
                    progress[w].sent.store(n, Ordering::SeqCst);
                    let body = Bytes::from(json!({ "value": value(w, n) }).to_string());
                    let Ok(answer) = server
                        .try_call_bytes("PUT", &path, Some(&token), Some(body), &[])
                        .await
                    else {
                        return; // killed
                    };
                    assert!(
                        answer.status == 200 || answer.status == 201,
                        "write {n} of writer {w}: {} {}",
                        answer.status,
                        answer.text()
                    );
                    progress[w].acked.store(n, Ordering::SeqCst);
                    count();
                }
            })
        })
        .collect();
    let deployers: Vec<_> = (0..DEPLOYERS)
        .map(|d| {
            let (server, progress, count) = (server.clone(), progress.clone(), count.clone());
            let apps: Vec<(usize, u64)> = (0..APPS)
                .filter(|a| a % DEPLOYERS == d)
                .map(|a| (a, ledger.image_sent[a]))
                .collect();
            tokio::spawn(async move { deploy_until_killed(&server, &progress, apps, count).await })
        })
        .collect();
    enough.notified().await;
    tokio::time::sleep(linger).await;
    server.process.as_ref().unwrap().signal("KILL");
    for writer in writers {
        writer.await.unwrap();
    }
    ledger.answered.clear();
    for deployer in deployers {
        let (sent, answered) = deployer.await.unwrap();
        for (a, n) in sent {
            ledger.image_sent[a] = n;
        }
        for (id, a, n) in answered {
            ledger.image_acked[a] = ledger.image_acked[a].max(n);
            ledger.answered.insert(id, Answered { app: a });
            ledger.acked_deploys += 1;
        }
    }
    for (w, p) in progress.iter().enumerate() {
        ledger.acked_writes += p.acked.load(Ordering::SeqCst) - ledger.stored[w];
    }
    let server = Arc::into_inner(server).expect("every task is done");
    (server, progress)
}

/// Deploys its apps in turn until the server is gone. Returns the image
/// number last sent per app and the deploys answered `201`
/// (id, app, image number).
async fn deploy_until_killed(
    server: &TestServer,
    progress: &[Progress],
    mut apps: Vec<(usize, u64)>,
    count: impl Fn(),
) -> (Vec<(usize, u64)>, Vec<(String, usize, u64)>) {
    let mut answered = Vec::new();
    let token = server.admin_token.clone();
    for turn in 0.. {
        let slot = turn % apps.len();
        let (a, last) = apps[slot];
        let n = last + 1;
        apps[slot].1 = n;
        let floor: Vec<u64> = progress
            .iter()
            .map(|p| p.acked.load(Ordering::SeqCst))
            .collect();
        let body = Bytes::from(json!({ "image_ref": format!("nginx:{n}") }).to_string());
        let path = format!("/v1/apps/{}/deploys", app_name(a));
        let Ok(answer) = server
            .try_call_bytes("POST", &path, Some(&token), Some(body), &[])
            .await
        else {
            break; // killed
        };
        assert_eq!(answer.status, 201, "{}", answer.text());
        let body = answer.json();
        check_answered(server, a, n, &body, &floor, progress);
        answered.push((body["deploy_id"].as_str().unwrap().to_owned(), a, n));
        count();
    }
    (apps, answered)
}

/// What a `201` claims, against the stand-in, right after the answer: the
/// Deployment is this deploy's; an injected Secret holds exactly the names
/// injected, each with a value acknowledged no earlier than `floor` and
/// sent no later than now.
fn check_answered(
    server: &TestServer,
    a: usize,
    n: u64,
    body: &Value,
    floor: &[u64],
    progress: &[Progress],
) {
    let app = app_name(a);
    let live =
        deployment(server, &app).unwrap_or_else(|| panic!("{app}: {body} but no Deployment"));
    let template = &live["spec"]["template"];
    assert_eq!(
        template["spec"]["containers"][0]["image"],
        format!("nginx:{n}"),
        "{body}"
    );
    assert_eq!(
        live["metadata"]["annotations"]["exsec.io/deploy-id"],
        body["deploy_id"]
    );
    assert_eq!(
        template["metadata"]["annotations"]["exsec.io/secrets-hash"],
        body["secrets_hash"]
    );
    let injection = &body["external_secrets"];
    match injection["status"].as_str() {
        Some("injected") => {}
        Some("skipped") if injection["reason"] == "no_secrets" => return,
        _ => panic!("{app}: unexpected injection {body}"),
    }
    let values =
        secret_values(server, &app).unwrap_or_else(|| panic!("{app}: injected, no Secret"));
    let names: BTreeSet<&str> = injection["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(
        values.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        names,
        "{app}"
    );
    for stored in values.values() {
        let (w, m) = parse_value(stored);
        let sent = progress[w].sent.load(Ordering::SeqCst);
        assert!(
            floor[w] <= m && m <= sent,
            "{app}: injected write {m} of writer {w}, acknowledged {} before the deploy, sent {sent}",
            floor[w]
        );
    }
}

/// The checks on the file the kill left, before any restart: writes,
/// seeded records, the audit chain.
async fn check_closed_file(dir: &Path, progress: &[Progress], ledger: &mut Ledger) {
    let database = dir.join("exsec.redb");
    let scan = exsec::crypto::scan_dir(&dir.join("keys.d"), false).unwrap();
    let (keyring, _) = Keyring::assemble(scan, &BTreeMap::new(), None);
    let keyring = std::sync::Arc::new(keyring);
    let store = Store::open(&database, options()).unwrap();
    for (w, p) in progress.iter().enumerate() {
        let (acked, sent) = (
            p.acked.load(Ordering::SeqCst),
            p.sent.load(Ordering::SeqCst),
        );
        let key = writer_key(w);
        let scope = writer_scope(w);
        let records = store.read(move |r| r.secrets(&scope)).unwrap();
        let Some(record) = records.iter().find(|r| r.key.as_str() == key) else {
            assert_eq!(acked, 0, "{key}: acknowledged write {acked} was lost");
            continue;
        };
        let version = record.version;
        assert!(
            acked <= version && version <= sent,
            "{key}: stored version {version}, acknowledged {acked}, sent {sent}"
        );
        assert_eq!(
            open_stored(&store, &keyring, record),
            value(w, version),
            "{key}"
        );
        ledger.stored[w] = version;
        ledger.records_checked += 1;
    }
    for a in 0..BULK_APPS {
        let app = format!("bulk{a}");
        let scope = app_scope(&app);
        let records = store.read(move |r| r.secrets(&scope)).unwrap();
        assert_eq!(records.len(), BULK_KEYS, "{app}");
        for record in &records {
            assert_eq!(
                open_stored(&store, &keyring, record),
                bulk_value(&app, record.key.as_str())
            );
        }
        ledger.records_checked += records.len() as u64;
    }
    let usage = store.read(|r| r.key_usage()).unwrap();
    if usage.values().filter(|&&records| records > 0).count() > 1 {
        ledger.killed_mid_rotation += 1;
    }
    drop(store);
    verify_audit_chain(&database).await;
}

/// The checks after a restart, through the API: the audit events since
/// the last check, the deploy history of the cycle, the stand-in.
async fn check_after_restart(server: &TestServer, ledger: &mut Ledger) {
    // Deploy id → its audit event types, for deploys created since.
    let mut deploys: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for event in server.audit_events_after(ledger.audit_after).await {
        ledger.audit_after = event["seq"].as_u64().unwrap();
        let kind = event["type"].as_str().unwrap().to_owned();
        let data = &event["data"];
        if let Some(id) = data["deploy_id"].as_str() {
            let app = event["app_id"].as_str().unwrap_or_default().to_owned();
            deploys
                .entry(id.to_owned())
                .or_insert((app, Vec::new()))
                .1
                .push(kind);
        } else if kind.starts_with("external_secret.") {
            let owner = if data["scope"] == "app" {
                &event["app_id"]
            } else {
                &event["tenant_id"]
            };
            let key = format!(
                "{}/{}",
                owner.as_str().unwrap(),
                data["key"].as_str().unwrap()
            );
            let version = data["version"].as_u64().unwrap();
            let last = ledger.audited.entry(key.clone()).or_default();
            assert_eq!(
                version,
                *last + 1,
                "{key}: audit event {event} after version {last}"
            );
            *last = version;
        }
    }
    for (w, stored) in ledger.stored.iter().enumerate() {
        let owner = match writer_scope(w) {
            exsec::model::Scope::App(app) => app.to_string(),
            exsec::model::Scope::Tenant(tenant) => tenant.to_string(),
        };
        let key = format!("{owner}/{}", writer_key(w));
        assert_eq!(
            ledger.audited.get(&key).copied().unwrap_or(0),
            *stored,
            "{key}: one audit event per committed write"
        );
    }

    let mut history: BTreeMap<String, Value> = BTreeMap::new();
    for a in 0..APPS {
        let page = server
            .admin(
                "GET",
                &format!("/v1/apps/{}/deploys?limit=500", app_name(a)),
                None,
            )
            .await
            .json();
        for record in page["deploys"].as_array().unwrap() {
            history.insert(
                record["deploy_id"].as_str().unwrap().to_owned(),
                record.clone(),
            );
        }
    }
    for (id, (app, events)) in &deploys {
        let record = history
            .get(id)
            .unwrap_or_else(|| panic!("{app} {id}: audited {events:?} but not in the history"));
        let injection = |kind: &String| kind.starts_with("external_secret.");
        match record["status"].as_str() {
            Some("succeeded") => assert!(
                events.len() == 2 && events[0] == "deploy.created" && injection(&events[1]),
                "{id}: {events:?}"
            ),
            Some("failed") => {
                assert!(
                    !ledger.answered.contains_key(id),
                    "{id} answered 201 but filed as failed: {record}"
                );
                assert_eq!(
                    record["external_secrets"]["reason"], "interrupted",
                    "{record}"
                );
                assert!(
                    record["error"].as_str().unwrap().starts_with("interrupted"),
                    "{record}"
                );
                assert_eq!(events, &["deploy.created", "deploy.failed"], "{id}");
                ledger.interrupted_deploys += 1;
            }
            _ => panic!("{id}: neither succeeded nor failed: {record}"),
        }
    }
    for (id, answered) in &ledger.answered {
        assert!(
            deploys.contains_key(id),
            "{id} answered 201 but never audited"
        );
        assert_eq!(history[id]["app_id"], app_name(answered.app));
    }
    for a in 0..APPS {
        if ledger.image_sent[a] == 0 {
            continue;
        }
        let live = deployment(server, &app_name(a));
        let image = live.as_ref().map_or("", |d| {
            d["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap()
        });
        let n: u64 = image
            .strip_prefix("nginx:")
            .map_or(0, |n| n.parse().unwrap());
        assert!(
            ledger.image_acked[a] <= n && n <= ledger.image_sent[a],
            "{}: the cluster runs {image}; acknowledged nginx:{}, sent nginx:{}",
            app_name(a),
            ledger.image_acked[a],
            ledger.image_sent[a]
        );
    }
}

/// Polls `/v1/keys` until no record waits for re-sealing.
async fn wait_for_idle_rotation(server: &TestServer) -> Value {
    crate::rotation::wait_for_keys(server, crate::daemon::PATIENCE, |keys| {
        keys["rotation"]["state"] == "idle" && keys["rotation"]["remaining"] == 0
    })
    .await
}

/// Apps `bulk0…` of tenant `bulk` with [`BULK_KEYS`] overrides each,
/// written through the library while no daemon runs.
fn seed_bulk(dir: &Path) {
    let scan = exsec::crypto::scan_dir(&dir.join("keys.d"), false).unwrap();
    let (keyring, problems) = Keyring::assemble(scan, &BTreeMap::new(), None);
    assert!(problems.is_empty(), "{problems:?}");
    let store = Store::open(&dir.join("exsec.redb"), options()).unwrap();
    let apps: Vec<String> = (0..BULK_APPS).map(|a| format!("bulk{a}")).collect();
    let puts: Vec<PutSecret> = apps
        .iter()
        .flat_map(|app| {
            let scope = app_scope(app);
            (0..BULK_KEYS)
                .map(|k| {
                    let key = format!("BULK_{k}");
                    seal_with(&keyring, &scope, "p", &key, &bulk_value(app, &key))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    crate::harness::write_tenant(&store, "bulk", apps, puts);
}
