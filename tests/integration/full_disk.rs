//! Storage that heals (SPEC §2, §11.1; issue 13): a real `exsec serve`
//! whose data directory is a size-limited tmpfs, filled under concurrent
//! writers and freed again. Reads answer 200 throughout; writes answer 507
//! `insufficient_storage` while the disk is full and `/readyz` says
//! `storage: degraded`; once space is back a tenant's write succeeds within
//! seconds without any admin request; every acknowledged value is intact
//! and the audit chain verifies. A deploy whose final record hits the full
//! disk answers 503 with its `deploy_id`, and the record is written as soon
//! as the disk has room again.
//!
//! Mounting needs root (CI runs as root); see [`crate::tmpfs`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::json;
use tokio::sync::Mutex;

use crate::daemon::PATIENCE;
use crate::openapi::Contract;
use crate::operator::admin_run;
use crate::server::{Options, TestServer};
use crate::tmpfs::Tmpfs;

/// Size of the data file system: room for a few thousand small secrets.
const TMPFS_SIZE: &str = "8m";
/// Concurrent writers, each writing new keys of its own app.
const WRITERS: usize = 8;
/// Value size: every write needs new pages, so a full disk shows quickly.
const VALUE_BYTES: usize = 2048;

/// A value of [`VALUE_BYTES`] that names its writer and write.
fn value(writer: usize, n: u64) -> String {
    let head = format!("w{writer}-n{n}-");
    format!("{head}{}", "v".repeat(VALUE_BYTES - head.len()))
}

/// One PUT of a new key into `app{writer}` with a tenant token.
async fn put(server: &TestServer, token: &str, writer: usize, n: u64) -> Result<u16, String> {
    let path = format!("/v1/apps/app{writer}/external-secrets/fill/K{n:05}");
    let body = Bytes::from(json!({ "value": value(writer, n) }).to_string());
    let answer = server
        .try_call_bytes("PUT", &path, Some(token), Some(body), &[])
        .await?;
    if answer.status == 507 {
        let problem = answer.assert_problem(507, "insufficient_storage");
        assert!(
            !problem["detail"]
                .as_str()
                .unwrap()
                .contains("v".repeat(64).as_str())
        );
    }
    Ok(answer.status)
}

/// What the writers saw.
#[derive(Default)]
struct Tally {
    /// `(writer, n)` of every acknowledged write.
    acked: Mutex<Vec<(usize, u64)>>,
    acked_count: AtomicU64,
    /// 507 answers since the last success, across writers.
    failing_in_a_row: AtomicU64,
    /// Any answer that is neither 2xx nor 507.
    unexpected: Mutex<Vec<String>>,
}

/// Reads that must answer 200 whatever the disk does.
const READS: [(&str, bool); 5] = [
    ("/v1/apps/app0/external-secrets", false),
    ("/v1/tenants/acme", false),
    ("/v1/audit-events?limit=5", true),
    ("/v1/keys", true),
    ("/metrics", true),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_degrades_writes_only_and_heals_without_help() {
    let Some(tmpfs) = Tmpfs::mount(
        "a_full_disk_degrades_writes_only_and_heals_without_help",
        TMPFS_SIZE,
    ) else {
        return;
    };
    let server = TestServer::spawn_with(Options {
        storage_path: Some(tmpfs.path().join("exsec.redb")),
        ..Options::default()
    })
    .await;
    let apps: Vec<String> = (0..WRITERS).map(|w| format!("app{w}")).collect();
    let app_names: Vec<&str> = apps.iter().map(String::as_str).collect();
    server.seed("acme", &app_names).await;
    let token = server.mint("acme").await;
    let server = Arc::new(server);
    let tally = Arc::new(Tally::default());
    let stop_writing = Arc::new(AtomicBool::new(false));
    let stop_reading = Arc::new(AtomicBool::new(false));

    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (server, token, stop) = (server.clone(), token.clone(), stop_reading.clone());
            tokio::spawn(async move {
                let mut refused = Vec::new();
                let mut reads = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    for (path, as_admin) in READS {
                        let who = server.token_of(as_admin, &token);
                        let answer = server.call("GET", path, Some(who), None).await;
                        reads += 1;
                        if answer.status != 200 {
                            refused.push(format!(
                                "GET {path}: {} {}",
                                answer.status,
                                answer.text()
                            ));
                        }
                    }
                }
                (reads, refused)
            })
        })
        .collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (server, token, tally, stop) = (
                server.clone(),
                token.clone(),
                tally.clone(),
                stop_writing.clone(),
            );
            tokio::spawn(async move {
                for n in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    match put(&server, &token, writer, n).await {
                        Ok(200 | 201) => {
                            tally.acked.lock().await.push((writer, n));
                            tally.acked_count.fetch_add(1, Ordering::SeqCst);
                            tally.failing_in_a_row.store(0, Ordering::SeqCst);
                        }
                        Ok(507) => {
                            tally.failing_in_a_row.fetch_add(1, Ordering::SeqCst);
                            // Nobody waits on a full disk at full speed.
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        Ok(status) => tally
                            .unexpected
                            .lock()
                            .await
                            .push(format!("write {n} of writer {writer}: {status}")),
                        Err(error) => panic!("write {n} of writer {writer}: {error}"),
                    }
                }
            })
        })
        .collect();
    let daemon = server.process.as_ref().unwrap();

    // Some writes land on a disk with room.
    wait_until("100 acknowledged writes", || {
        tally.acked_count.load(Ordering::SeqCst) >= 100
    })
    .await;

    // Fill the disk; the writers run into it.
    let filler = tmpfs.fill();
    wait_until("32 refused writes in a row", || {
        tally.failing_in_a_row.load(Ordering::SeqCst) >= 32
    })
    .await;
    let degraded = daemon.wait_for_line(|line| line.contains("storage degraded"));
    assert!(degraded.contains("no_space"), "{degraded}");
    // The refusal as documented (a write that got through meanwhile is
    // acknowledged like any other).
    let mut contract = Contract::new();
    for n in 900_000.. {
        let path = format!("/v1/apps/app1/external-secrets/fill/K{n:05}");
        let body = json!({ "value": value(1, n) }).to_string();
        let answer = server
            .call_with("PUT", &path, Some(&token), Some(&body), &[])
            .await;
        contract.check("PUT", &path, &answer);
        if answer.status == 507 {
            break;
        }
        assert!(n < 900_020, "the full disk kept taking writes");
        tally.acked.lock().await.push((1, n));
    }
    // A bulk write is refused the same way, whole.
    let bulk = json!({"secrets": [{"provider": "fill", "key": "BULK", "value": value(1, 0)}]});
    let answer = server
        .call_with(
            "PUT",
            "/v1/apps/app1/external-secrets",
            Some(&token),
            Some(&bulk.to_string()),
            &[],
        )
        .await;
    contract.check("PUT", "/v1/apps/app1/external-secrets", &answer);
    answer.assert_problem(507, "insufficient_storage");
    let ready = server.call("GET", "/readyz", None, None).await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    contract.check("GET", "/readyz", &ready);
    let ready = ready.json();
    assert_eq!(ready["storage"], "degraded", "{ready}");
    assert_eq!(ready["storage_fault"], "no_space", "{ready}");
    assert_eq!(ready["database"], "ok", "{ready}");
    let metrics = server.admin("GET", "/metrics", None).await.text();
    assert!(metrics.contains("exsec_storage_degraded 1"), "{metrics}");
    stop_writing.store(true, Ordering::SeqCst);
    for writer in writers {
        writer.await.unwrap();
    }

    // Space comes back; no admin request, only a tenant's write.
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        match put(&server, &token, 0, 1_000_000 + attempts).await.unwrap() {
            200 | 201 => break,
            507 | 503 => {}
            status => panic!("a write after the disk was freed: {status}"),
        }
        assert!(
            freed.elapsed() < PATIENCE,
            "no tenant write succeeded within {PATIENCE:?} of freeing the disk"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tally.acked.lock().await.push((0, 1_000_000 + attempts));
    println!(
        "a tenant write succeeded {:?} after the disk was freed ({attempts} attempts)",
        freed.elapsed()
    );
    daemon.wait_for_line(|line| line.contains("storage healed"));
    let ready = server.call("GET", "/readyz", None, None).await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    contract.check("GET", "/readyz", &ready);
    assert_eq!(ready.json()["storage"], "ok");

    stop_reading.store(true, Ordering::SeqCst);
    let mut reads = 0;
    for reader in readers {
        let (count, refused) = reader.await.unwrap();
        assert!(refused.is_empty(), "reads refused: {refused:#?}");
        reads += count;
    }
    assert!(reads > 0);
    let unexpected = tally.unexpected.lock().await;
    assert!(unexpected.is_empty(), "{unexpected:#?}");

    // Every acknowledged value is there, as written: deploy each app and
    // read what the manifests target injected.
    let acked = tally.acked.lock().await.clone();
    println!(
        "{} writes acknowledged, {reads} reads answered 200",
        acked.len()
    );
    for (writer, app) in apps.iter().enumerate() {
        let deployed = server
            .deploy(app, json!({ "image_ref": "nginx:1.27" }))
            .await;
        assert_eq!(deployed.status, 201, "{}", deployed.text());
        let injected = server.manifest_values(app).unwrap_or_default();
        for (_, n) in acked.iter().filter(|(w, _)| *w == writer) {
            let key = format!("K{n:05}");
            assert_eq!(
                injected.get(&key).map(String::as_str),
                Some(value(writer, *n).as_str()),
                "{app}/{key} was acknowledged"
            );
        }
    }
    admin_run(&server, "audit verify", None).await.expect(0);
}

/// The deploy's final record hits the full disk: 503 with the deploy id,
/// and the record is finished once space is back, with no request at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deploy_record_held_back_by_a_full_disk_is_written_when_it_heals() {
    let Some(tmpfs) = Tmpfs::mount(
        "a_deploy_record_held_back_by_a_full_disk_is_written_when_it_heals",
        TMPFS_SIZE,
    ) else {
        return;
    };
    let server = TestServer::spawn_with(Options {
        storage_path: Some(tmpfs.path().join("exsec.redb")),
        deploy_timeout: "60s",
        ..Options::kubernetes()
    })
    .await;
    server.seed("acme", &["web", "app0"]).await;
    let token = server.mint("acme").await;
    server
        .set_secret_ok("/v1/apps/web", "openai", "OPENAI_API_KEY", "sk-1")
        .await;
    let server = Arc::new(server);
    // Readiness: the deploy's start record is written (it comes before any
    // cluster call) and its Deployment apply reached the (hung) cluster.
    let deploy = crate::server::deploy_held_at_apply(&server).await;

    // Fill the disk until small writes fail too.
    let filler = tmpfs.fill();
    let mut in_a_row = 0;
    let deadline = Instant::now() + PATIENCE;
    for n in 0.. {
        match put(&server, &token, 0, n).await.unwrap() {
            507 => in_a_row += 1,
            _ => in_a_row = 0,
        }
        if in_a_row == 8 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the full disk kept taking writes"
        );
    }

    server.cluster.as_ref().unwrap().faults().clear();
    let answer = deploy.await.unwrap().expect("the deploy's answer");
    let problem = answer.assert_problem(503, "deploy_record_pending");
    Contract::new().check("POST", "/v1/apps/web/deploys", &answer);
    assert_eq!(problem["deploy_status"], "succeeded", "{problem}");
    assert_eq!(problem["app_id"], "web", "{problem}");
    let deploy_id = problem["deploy_id"].as_str().unwrap().to_owned();
    let path = format!("/v1/apps/web/deploys/{deploy_id}");
    // Reads still work (the history shows the deploy once it is recorded).
    let history = server.admin("GET", "/v1/apps/web/deploys", None).await;
    assert_eq!(history.status, 200, "{}", history.text());

    // Space comes back: nobody writes, the record is finished anyway.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let answer = server.admin("GET", &path, None).await;
        let record = if answer.status == 404 {
            answer.assert_problem(404, "deploy_not_found")
        } else {
            answer.json()
        };
        if record["status"] == "succeeded" {
            assert_eq!(record["external_secrets"]["status"], "injected", "{record}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the deploy record was not finished after the disk was freed: {record}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events = server.audit_events_of("external_secret.injected").await;
    assert!(
        events
            .iter()
            .any(|e| e["data"]["deploy_id"] == deploy_id.as_str()),
        "{events:?}"
    );
    admin_run(&server, "audit verify", None).await.expect(0);
}

/// Polls `done` every 10 ms for at most [`PATIENCE`].
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
