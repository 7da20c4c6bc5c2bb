//! `exsec backup` under write load and `exsec restore` into a fresh
//! directory: the snapshot is consistent (exactly the writes committed
//! before its anchor), every value opens to what was written, the chain
//! verifies, counts match; damaged or unwanted restores are refused.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use exsec::audit::event;
use exsec::crypto::{Keyring, SecretLocation, scan_dir};
use exsec::store::{Store, StoreOptions};

use super::{admin, exsec, seed_acme_web};
use crate::server::TestServer;

const WRITERS: usize = 4;
const WRITES_EACH: usize = 100;

fn value_of(key: &str) -> String {
    format!("value-of-{key}")
}

fn options() -> StoreOptions {
    StoreOptions::with_cache_size(4 * 1024 * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_write_load_restores_to_a_consistent_verified_store() {
    let server = Arc::new(TestServer::start().await);
    seed_acme_web(&server).await;
    let written = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let server = server.clone();
            let written = written.clone();
            tokio::spawn(async move {
                for i in 0..WRITES_EACH {
                    let key = format!("KEY_{w}_{i}");
                    let scope = if i % 2 == 0 {
                        "/v1/apps/web"
                    } else {
                        "/v1/tenants/acme"
                    };
                    let answer = server
                        .set_secret(scope, "vendor", &key, &value_of(&key))
                        .await;
                    assert_eq!(answer.status, 201, "{}", answer.text());
                    written.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    // Back up while the writers are busy.
    while written.load(Ordering::SeqCst) < WRITERS * WRITES_EACH / 4 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let backup_file = server.path("exsec.backup");
    let backup = admin(
        &server,
        &[
            "backup",
            "--out",
            backup_file.to_str().unwrap(),
            "-o",
            "json",
        ],
        None,
    )
    .await;
    let during = written.load(Ordering::SeqCst);
    let summary = backup.expect(0).json();
    for writer in writers {
        writer.await.unwrap();
    }
    assert!(
        during < WRITERS * WRITES_EACH,
        "the backup finished after every write; the test did not overlap them"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&backup_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let anchor_seq = summary["header"]["audit_head"]["seq"].as_u64().unwrap();
    let anchor_text = format!(
        "{}:{}",
        anchor_seq,
        summary["header"]["audit_head"]["hash"].as_str().unwrap()
    );

    let server =
        Arc::try_unwrap(server).unwrap_or_else(|_| panic!("writers still hold the server"));
    let dir = server.stop().await;
    let keyring = Keyring::from_keys(scan_dir(&dir.path().join("keys.d"), false).unwrap().keys);

    // Which secrets the live log says existed at the anchor.
    let live = Store::open(&dir.path().join("exsec.redb"), options()).unwrap();
    let expected = live
        .read(|r| {
            let mut expected = BTreeSet::new();
            r.for_each_audit_event(|e| {
                if e.seq <= anchor_seq && e.event_type == event::SECRET_CREATED {
                    expected.insert(e.data["key"].as_str().unwrap().to_owned());
                }
                Ok(())
            })?;
            Ok(expected)
        })
        .unwrap();
    drop(live);
    assert!(!expected.is_empty() && expected.len() < WRITERS * WRITES_EACH);

    // Restore into a fresh directory through the CLI, then reopen.
    let target = tempfile::tempdir().unwrap();
    let data_dir = target.path().join("data");
    let restored = exsec(
        None,
        None,
        &[
            "restore",
            "--from",
            backup_file.to_str().unwrap(),
            "--data-dir",
            data_dir.to_str().unwrap(),
        ],
        None,
    )
    .await;
    restored.expect(0);
    assert!(
        restored.stdout.contains("restored and verified"),
        "{}",
        restored.stdout
    );
    let store = Store::open(&data_dir.join("exsec.redb"), options()).unwrap();
    let (records, check, tenants, apps) = store
        .read(|r| {
            let mut records = r.secrets(&exsec::model::Scope::App(crate::harness::app("web")))?;
            records
                .extend(r.secrets(&exsec::model::Scope::Tenant(crate::harness::tenant("acme")))?);
            Ok((
                records,
                r.verify_audit_chain(None)?,
                r.tenants()?.len(),
                r.apps(None)?.len(),
            ))
        })
        .unwrap();
    let restored_keys: BTreeSet<String> = records.iter().map(|r| r.key.to_string()).collect();
    assert_eq!(
        restored_keys, expected,
        "the snapshot is exactly the writes before its anchor"
    );
    for record in &records {
        let location = SecretLocation {
            scope: &record.scope,
            provider: &record.provider,
            key: &record.key,
        };
        let opened = keyring.open(&location, &record.sealed).unwrap();
        assert_eq!(opened.expose_secret(), value_of(record.key.as_str()));
    }
    let head = check.outcome.unwrap();
    assert_eq!(head.seq, anchor_seq);
    assert_eq!(head.to_string(), anchor_text);
    let tables = &summary["header"]["tables"];
    assert_eq!(tables["external_secrets"], records.len() as u64);
    assert_eq!(tables["tenants"], tenants as u64);
    assert_eq!(tables["apps"], apps as u64);
    assert_eq!(tables["paas_audit_events"], check.events);
    drop(store);

    // The restored file verifies offline against the backup's anchor.
    exsec(
        None,
        None,
        &[
            "audit",
            "verify",
            "--db",
            data_dir.join("exsec.redb").to_str().unwrap(),
            "--anchor",
            &anchor_text,
        ],
        None,
    )
    .await
    .expect(0);

    // Restoring again needs --force, and keeps the old file.
    let again = exsec(
        None,
        None,
        &[
            "restore",
            "--from",
            backup_file.to_str().unwrap(),
            "--data-dir",
            data_dir.to_str().unwrap(),
        ],
        None,
    )
    .await;
    again.expect(4);
    assert!(again.stderr.contains("pass --force"), "{}", again.stderr);
    exsec(
        None,
        None,
        &[
            "restore",
            "--from",
            backup_file.to_str().unwrap(),
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--force",
        ],
        None,
    )
    .await
    .expect(0);
    let kept = std::fs::read_dir(&data_dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("exsec.redb.replaced-")
        })
        .count();
    assert_eq!(kept, 1);
}

#[tokio::test]
async fn a_tampered_or_truncated_backup_is_refused() {
    let server = TestServer::start().await;
    seed_acme_web(&server).await;
    server
        .set_secret("/v1/tenants/acme", "openai", "OPENAI_API_KEY", "sk-1")
        .await;
    let file = server.path("b.backup");
    admin(&server, &["backup", "--out", file.to_str().unwrap()], None)
        .await
        .expect(0);
    let bytes = std::fs::read(&file).unwrap();
    let data_dir = server.path("restore-here");
    let raw = server.admin("GET", "/v1/backup", None).await;
    assert_eq!(raw.status, 200);
    assert_eq!(
        raw.headers["content-type"],
        exsec::api::handlers::BACKUP_CONTENT_TYPE
    );
    assert!(raw.body.starts_with(b"exsec-backup 1\n"));

    let mut tampered = bytes.clone();
    let at = tampered.len() - 60;
    tampered[at] ^= 0x20;
    let tampered_file = server.path("tampered.backup");
    std::fs::write(&tampered_file, &tampered).unwrap();
    let refused = exsec(
        None,
        None,
        &[
            "restore",
            "--from",
            tampered_file.to_str().unwrap(),
            "--data-dir",
            data_dir.to_str().unwrap(),
        ],
        None,
    )
    .await;
    refused.expect(6);
    assert!(
        refused.stderr.contains("checksum mismatch"),
        "{}",
        refused.stderr
    );
    assert!(!data_dir.join("exsec.redb").exists());

    std::fs::write(&tampered_file, &bytes[..bytes.len() / 2]).unwrap();
    exsec(
        None,
        None,
        &[
            "restore",
            "--from",
            tampered_file.to_str().unwrap(),
            "--data-dir",
            data_dir.to_str().unwrap(),
        ],
        None,
    )
    .await
    .expect(6);

    // A tenant token cannot take a backup.
    let token = server.mint("acme").await;
    let denied = exsec(
        Some(&server),
        Some(token.trim()),
        &["backup", "--out", server.path("t.backup").to_str().unwrap()],
        None,
    )
    .await;
    denied.expect(3);
    assert!(!server.path("t.backup").exists());
    server.stop().await;
}
