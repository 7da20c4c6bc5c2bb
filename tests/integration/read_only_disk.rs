//! A store on a file system that refuses writes (issue 18): a real
//! `exsec serve` SIGKILLed (so its file needs redb's repair), its data
//! file system remounted read-only, started again. It comes up degraded
//! instead of refusing to run: reads and the effective set are answered,
//! writes and deploys answer 503 `storage_unavailable` saying the file
//! system is read-only, `/readyz` says `storage_fault: read_only`, and the
//! file is never written. Once the file system is writable again a tenant's
//! write succeeds without a restart and everything written before is there.
//!
//! Mounting needs root (CI runs as root); see [`crate::tmpfs`].

use std::time::Instant;

use crate::daemon::{Daemon, PATIENCE};
use crate::openapi::Contract;
use crate::operator::admin_run;
use crate::server::{Options, TestServer};
use crate::tmpfs::Tmpfs;

const SECRETS: usize = 20;

fn value(n: usize) -> String {
    format!("sk-read-only-{n:04}-{}", "v".repeat(40))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_file_system_serves_reads_and_heals_without_a_restart() {
    let test = "a_read_only_file_system_serves_reads_and_heals_without_a_restart";
    let Some(tmpfs) = Tmpfs::mount(test, "8m") else {
        return;
    };
    let db = tmpfs.path().join("exsec.redb");
    let server = TestServer::spawn_with(Options {
        storage_path: Some(db.clone()),
        ..Options::default()
    })
    .await;
    server.seed("acme", &["web"]).await;
    let token = server.mint("acme").await;
    for n in 0..SECRETS {
        server
            .set_secret_ok("/v1/apps/web", "openai", &format!("K{n:02}"), &value(n))
            .await;
    }
    let names_before = server.secret_names("/v1/apps/web").await;
    assert_eq!(names_before.len(), SECRETS);

    // A power cut as far as redb is concerned: the file needs a repair.
    let mut server = server;
    server.process.take().unwrap().kill();
    tmpfs.remount(true).unwrap();
    let bytes_before = std::fs::read(&db).unwrap();
    let daemon = Daemon::start(&server.path("config.toml"), &[]);
    let server = TestServer::try_attached(server.dir, daemon)
        .unwrap_or_else(|(_, tail)| panic!("no start on a read-only file system:\n{tail}"));
    let log = server.process.as_ref().unwrap();
    // Logged before the listener, so read from the tail.
    let tail = log.log_tail();
    assert!(
        tail.lines()
            .any(|line| line.contains("storage degraded") && line.contains("read_only")),
        "{tail}"
    );

    let mut contract = Contract::new();
    let ready = server.call("GET", "/readyz", None, None).await;
    contract.check("GET", "/readyz", &ready);
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert_eq!(ready.json()["storage"], "degraded");
    assert_eq!(ready.json()["storage_fault"], "read_only");

    // Reads are answered, by the tenant too.
    assert_eq!(server.secret_names("/v1/apps/web").await, names_before);
    for path in [
        "/v1/apps/web/external-secrets",
        "/v1/apps/web/external-secrets/effective",
        "/v1/apps/web",
    ] {
        let answer = server.call("GET", path, Some(&token), None).await;
        contract.check("GET", path, &answer);
        assert_eq!(answer.status, 200, "GET {path}: {}", answer.text());
    }
    // Writes and deploys are refused as documented, saying why.
    let path = "/v1/apps/web/external-secrets/openai/NEW";
    let body = serde_json::json!({ "value": value(99) }).to_string();
    let answer = server
        .call_with("PUT", path, Some(&token), Some(&body), &[])
        .await;
    contract.check("PUT", path, &answer);
    let problem = answer.assert_problem(503, "storage_unavailable");
    assert!(
        problem["detail"].as_str().unwrap().contains("read-only"),
        "{problem}"
    );
    let deployed = server
        .deploy("web", serde_json::json!({ "image_ref": "nginx:1.27" }))
        .await;
    contract.check("POST", "/v1/apps/web/deploys", &deployed);
    deployed.assert_problem(503, "storage_unavailable");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        bytes_before,
        "the file was written on a read-only start"
    );

    // Writable again: a tenant's write goes through, no restart, no admin.
    tmpfs.remount(false).unwrap();
    let freed = Instant::now();
    loop {
        let answer = server
            .call_with("PUT", path, Some(&token), Some(&body), &[])
            .await;
        match answer.status {
            201 => break,
            503 => {}
            status => panic!("a write once writable: {status} {}", answer.text()),
        }
        assert!(
            freed.elapsed() < PATIENCE,
            "no write succeeded within {PATIENCE:?} of the remount"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    log.wait_for_line(|line| line.contains("storage healed"));
    let ready = server.call("GET", "/readyz", None, None).await;
    assert_eq!(ready.status, 200, "{}", ready.text());

    // Everything written before the crash and after the heal is there.
    server.deploy_ok("web").await;
    let injected = server.manifest_values("web").unwrap();
    for n in 0..SECRETS {
        assert_eq!(injected[&format!("K{n:02}")], value(n));
    }
    assert_eq!(injected["NEW"], value(99));
    admin_run(&server, "audit verify", None).await.expect(0);
}
