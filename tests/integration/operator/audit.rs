//! `exsec audit verify`: online through the daemon, offline on the redb
//! file; an edited event is named, a cut tail is caught against an anchor,
//! the live file is refused; retention prunes and the chain still verifies;
//! the daemon logs anchors.

use std::time::{Duration, Instant};

use super::{admin, admin_run, exsec, seed_acme_web, verify_offline};
use crate::daemon::Daemon;
use crate::server::{Options, TestServer};

async fn activity(server: &TestServer) {
    seed_acme_web(server).await;
    for (key, value) in [("A_KEY", "sk-a"), ("B_KEY", "sk-b"), ("C_KEY", "sk-c")] {
        server
            .set_secret_ok("/v1/apps/web", "openai", key, value)
            .await;
    }
    admin_run(server, "deploy web --image nginx", None)
        .await
        .expect(0);
}

#[tokio::test]
async fn an_edited_event_is_named_and_a_cut_tail_is_caught_by_its_anchor() {
    let server = TestServer::start().await;
    activity(&server).await;

    // Online: the whole chain, and the head as an anchor to keep.
    let online = admin_run(&server, "audit verify -o json", None).await;
    let report = online.expect(0).json();
    assert_eq!(report["ok"], true);
    let head = report["head"].clone();
    let head_seq = head["seq"].as_u64().unwrap();
    assert_eq!(report["events"], head_seq);
    let anchor = format!("{}:{}", head_seq, head["hash"].as_str().unwrap());
    admin(&server, &["audit", "verify", "--anchor", &anchor], None)
        .await
        .expect(0);
    let forged = format!("{}:{}", head_seq, "0".repeat(64));
    let mismatch = admin(&server, &["audit", "verify", "--anchor", &forged], None).await;
    mismatch.expect(6);
    assert!(
        mismatch
            .stderr
            .contains(&format!("audit event {head_seq} differs from the anchor")),
        "{}",
        mismatch.stderr
    );
    let token = server.mint("acme").await;
    exsec(
        Some(&server),
        Some(token.trim()),
        &["audit", "verify"],
        None,
    )
    .await
    .expect(4);

    // Offline on the live file: refused while the daemon holds it.
    let live = server.path("exsec.redb");
    let busy = verify_offline(&live, &[]).await;
    busy.expect(5);
    busy.stderr_has("is in use by another exsec process");

    let dir = server.stop().await;
    let original = dir.path().join("exsec.redb");
    let clean = verify_offline(&original, &["--anchor", &anchor]).await;
    assert!(
        clean.expect(0).stdout.starts_with("audit log verified"),
        "{}",
        clean.stdout
    );

    // One event edited in a copy: verification fails and names it.
    let edited = dir.path().join("edited.redb");
    std::fs::copy(&original, &edited).unwrap();
    let found = exsec::store::testing::tamper_audit_event(&edited, 4, |event| {
        event.actor = "intruder".to_owned();
    })
    .unwrap();
    assert!(found);
    let broken = verify_offline(&edited, &[]).await;
    broken.expect(6);
    broken.stderr_has("audit event 4 was altered: its content does not match its hash");
    let json = verify_offline(&edited, &["-o", "json"]).await;
    assert_eq!(json.expect(6).json()["broken_seq"], 4);

    // The tail cut off a copy: the chain alone still verifies, the anchor
    // does not.
    let cut = dir.path().join("cut.redb");
    std::fs::copy(&original, &cut).unwrap();
    // Events after the anchor (the token minted above) go too.
    let removed = exsec::store::testing::truncate_audit_log(&cut, head_seq - 2).unwrap();
    assert!(removed >= 2, "{removed}");
    verify_offline(&cut, &[]).await.expect(0);
    let truncated = verify_offline(&cut, &["--anchor", &anchor]).await;
    truncated.expect(6);
    truncated.stderr_has(&format!(
        "audit log ends at event {}, but an anchor recorded event {head_seq}",
        head_seq - 2
    ));

    let missing = verify_offline(&dir.path().join("nope.redb"), &[]).await;
    missing.expect(3);
    assert!(
        !dir.path().join("nope.redb").exists(),
        "verify must not create a database"
    );
}

#[tokio::test]
async fn retention_prunes_old_events_and_the_chain_still_verifies() {
    let server = TestServer::start_with(Options {
        extra_config: "[audit]\nanchor_interval = \"1s\"\nretention = \"1s\"\n".to_owned(),
        ..Options::default()
    })
    .await;
    activity(&server).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pruned = admin_run(&server, "audit list --type audit.pruned -o json", None)
            .await
            .json();
        if pruned["events"].as_array().is_some_and(|e| !e.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "nothing was pruned");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let first = admin_run(&server, "audit list --limit 1 -o json", None)
        .await
        .json();
    assert!(
        first["events"][0]["seq"].as_u64().unwrap() > 1,
        "old events are gone"
    );
    let online = admin_run(&server, "audit verify", None).await;
    assert!(
        online
            .expect(0)
            .stdout
            .contains("from the checkpoint at seq"),
        "{}",
        online.stdout
    );
    let dir = server.stop().await;
    let offline = verify_offline(&dir.path().join("exsec.redb"), &[]).await;
    assert!(
        offline
            .expect(0)
            .stdout
            .contains("from the checkpoint at seq"),
        "{}",
        offline.stdout
    );
}

/// The daemon run as a user would (`exsec serve`) logs an anchor at start.
#[test]
fn the_daemon_logs_an_anchor_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::daemon::write_config(dir.path());
    let daemon = Daemon::start(&config, &[]);
    let line = daemon.wait_for_line(|line| line.contains("exsec::audit::anchor"));
    daemon.kill();
    let logged: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(logged["fields"]["seq"], 0);
    assert_eq!(logged["fields"]["hash"], "0".repeat(64));
    assert_eq!(logged["target"], "exsec::audit::anchor");
}

/// Start-up integrity: the daemon verifies what was appended since the
/// position it verified last; an event edited after that position is found
/// at the next start, logged, audited `audit.verify_failed`, shown by
/// `/readyz` (ready, degraded) and `exsec doctor`, and the daemon keeps
/// serving.
#[tokio::test]
async fn a_log_tampered_while_stopped_is_found_at_the_next_start() {
    let server = TestServer::start().await;
    activity(&server).await;
    let verified = server.audit_seq().await;
    // A clean restart verifies up to the head and records that position.
    let server = TestServer::restart(server.stop().await).await;
    let ready = server.call("GET", "/readyz", None, None).await.json();
    assert_eq!(ready["audit"]["chain"], "verified", "{ready}");
    assert_eq!(ready["degraded"], false, "{ready}");
    server
        .set_secrets_ok(&[
            ("/v1/apps/web", "openai", "D_KEY", "sk-d"),
            ("/v1/apps/web", "openai", "E_KEY", "sk-e"),
        ])
        .await;
    let head = server.audit_seq().await;
    let dir = server.stop().await;

    let edited = verified + 1;
    assert!(edited < head);
    let found = exsec::store::testing::tamper_audit_event(
        &dir.path().join("exsec.redb"),
        edited,
        |event| event.actor = "someone-else".to_owned(),
    )
    .unwrap();
    assert!(found);

    let server = TestServer::restart(dir).await;
    let answer = server.call("GET", "/readyz", None, None).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let ready = answer.json();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["degraded"], true, "{ready}");
    assert_eq!(ready["audit"]["chain"], "broken", "{ready}");
    let error = ready["audit"]["error"].as_str().unwrap();
    assert!(error.contains(&format!("event {edited}")), "{error}");

    let failed = server.the_audit_event("audit.verify_failed").await;
    assert_eq!(failed["data"]["verified_up_to"], verified, "{failed:?}");
    assert!(
        failed["data"]["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("event {edited}")),
        "{failed:?}"
    );
    // Still serving writes.
    let written = server
        .set_secret("/v1/apps/web", "openai", "F_KEY", "sk-f")
        .await;
    assert_eq!(written.status, 201, "{}", written.text());
    let doctor = admin_run(&server, "doctor web", None).await;
    doctor.expect(6);
    doctor.stdout_has("audit log");
    doctor.stdout_has(&format!("event {edited}"));
    server.stop().await;
}
