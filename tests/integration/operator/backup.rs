//! `exsec backup` under write load and `exsec restore` into a fresh
//! directory: the snapshot is consistent (exactly the writes committed
//! before its anchor), every value opens to what was written, the chain
//! verifies, counts match; forged, damaged, foreign, unauthenticated or
//! unwanted restores are refused; a huge file is refused in bounded
//! memory; a FIFO or a device is refused without waiting.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use exsec::audit::event;
use exsec::model::Scope;
use exsec::store::{Store, StoreOptions};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Run, admin, admin_run, exsec, seed_acme_web, verify_offline};
use crate::daemon::PATIENCE;
use crate::harness::open_stored;
use crate::server::{Options, TestServer};

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
    let keys_dir = dir.path().join("keys.d");
    let keyring = crate::harness::load_keys(&keys_dir);

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
    let restored = restore(&backup_file, &data_dir, &keys_dir, &[]).await;
    restored.expect(0);
    restored.stdout_has("restored and verified");
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
        assert_eq!(
            open_stored(&store, &keyring, record),
            value_of(record.key.as_str())
        );
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
    verify_offline(&data_dir.join("exsec.redb"), &["--anchor", &anchor_text])
        .await
        .expect(0);

    // Restoring again needs --force, and keeps the old file.
    let again = restore(&backup_file, &data_dir, &keys_dir, &[]).await;
    again.expect(4);
    again.stderr_has("pass --force");
    restore(&backup_file, &data_dir, &keys_dir, &["--force"])
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

/// `exsec restore --from FILE --data-dir DIR --keys-dir KEYS [extra…]`.
async fn restore(from: &Path, data_dir: &Path, keys_dir: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "restore",
        "--from",
        from.to_str().unwrap(),
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--keys-dir",
        keys_dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    tokio::time::timeout(PATIENCE, exsec(None, None, &args, None))
        .await
        .expect("exsec restore did not finish: it must never wait on its input")
}

/// The backup with its trailer replaced by a SHA-256 of the rest: what a
/// forger without the master key can compute (format 1's checksum).
fn with_sha256_trailer(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.truncate(bytes.len() - 32);
    let digest = Sha256::digest(&bytes);
    bytes.extend_from_slice(&digest);
    bytes
}

/// Regression test for issue 13 ("backups can be forged"): a token record
/// moved from tenant beta to acme, the SHA-256 recomputed, is refused — and
/// so is any changed byte, a cut file, a file relabelled as format 1, and
/// a key directory without the backup's key. `GET /v1/backup` streams a
/// backup that restores.
#[tokio::test]
async fn a_forged_or_damaged_backup_is_refused() {
    let server = TestServer::start().await;
    seed_acme_web(&server).await;
    admin_run(&server, "tenants create beta", None)
        .await
        .expect(0);
    server
        .set_secret_ok("/v1/tenants/acme", "openai", "OPENAI_API_KEY", "sk-1")
        .await;
    server.mint("beta").await;
    let file = server.path("b.backup");
    admin(&server, &["backup", "--out", file.to_str().unwrap()], None)
        .await
        .expect(0);
    let bytes = std::fs::read(&file).unwrap();
    assert!(bytes.starts_with(b"exsec-backup 2\n"));
    let keys_dir = server.path("keys.d");
    let data_dir = server.path("restore-here");
    let forged_file = server.path("forged.backup");
    let refused = |content: Vec<u8>, code: i32, says: &'static str| {
        let forged_file = forged_file.clone();
        let data_dir = data_dir.clone();
        let keys_dir = keys_dir.clone();
        async move {
            std::fs::write(&forged_file, &content).unwrap();
            let run = restore(&forged_file, &data_dir, &keys_dir, &[]).await;
            run.expect(code);
            run.stderr_has(says);
            assert!(!data_dir.join("exsec.redb").exists());
        }
    };

    // The token of beta made acme's, checksum recomputed.
    let tokens = bytes
        .windows(7)
        .position(|w| w == b"\x06tokens")
        .expect("a token record");
    let beta = tokens
        + bytes[tokens..]
            .windows(4)
            .position(|w| w == b"beta")
            .unwrap();
    let mut moved = bytes.clone();
    moved[beta..beta + 4].copy_from_slice(b"acme");
    refused(
        with_sha256_trailer(moved),
        6,
        "altered, or made with a key you don't have",
    )
    .await;
    // Any byte changed; the file cut short.
    for at in [bytes.len() / 3, bytes.len() - 1] {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x20;
        refused(flipped, 6, "altered, or made with a key you don't have").await;
    }
    refused(
        bytes[..bytes.len() / 2].to_vec(),
        6,
        "altered, or made with a key you don't have",
    )
    .await;
    // Relabelled as an old, checksum-only backup: refused unless accepted.
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let header_line = text.lines().nth(1).unwrap();
    let mut header: Value = serde_json::from_str(header_line).unwrap();
    header["format"] = 1.into();
    header.as_object_mut().unwrap().remove("key_id");
    let mut relabelled = format!("exsec-backup 1\n{header}\n").into_bytes();
    relabelled.extend_from_slice(&bytes[16 + header_line.len()..]);
    refused(
        with_sha256_trailer(relabelled),
        4,
        "--accept-unauthenticated",
    )
    .await;

    // A key directory without the backup's key.
    let other_keys = server.path("other-keys.d");
    exsec::crypto::generate_key_file(&other_keys, std::time::SystemTime::UNIX_EPOCH).unwrap();
    let run = restore(&file, &data_dir, &other_keys, &[]).await;
    run.expect(6);
    run.stderr_has("which is not in the key directory");

    // The streamed download restores, and says what it is.
    let raw = server.admin("GET", "/v1/backup", None).await;
    assert_eq!(raw.status, 200);
    assert_eq!(
        raw.headers["content-type"],
        exsec::api::handlers::BACKUP_CONTENT_TYPE
    );
    assert_eq!(raw.headers["transfer-encoding"], "chunked");
    let streamed = server.path("streamed.backup");
    std::fs::write(&streamed, &raw.body).unwrap();
    let run = restore(&streamed, &data_dir, &keys_dir, &["-o", "json"]).await;
    run.expect(0);
    let summary = run.json();
    assert_eq!(summary["header"]["format"], 2);
    assert_eq!(summary["header"]["tables"]["tokens"], 1);
    let store = Store::open(&data_dir.join("exsec.redb"), options()).unwrap();
    assert_eq!(store.read(|r| r.tenants()).unwrap().len(), 2);
    drop(store);

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
    // A missing output directory is an I/O failure: exit 1, not "not found".
    let missing = admin(
        &server,
        &[
            "backup",
            "--out",
            server.path("missing-dir/x").to_str().unwrap(),
        ],
        None,
    )
    .await;
    missing.expect(1);
    server.stop().await;
}

/// Without a master key no backup can be authenticated: 503
/// `master_key_unavailable`, and the CLI says so (exit 5).
#[tokio::test]
async fn no_backup_without_a_master_key() {
    let server = TestServer::start_with(Options::without_key()).await;
    server
        .admin("GET", "/v1/backup", None)
        .await
        .assert_problem(503, "master_key_unavailable");
    let out = server.path("x.backup");
    admin(&server, &["backup", "--out", out.to_str().unwrap()], None)
        .await
        .expect(5);
    assert!(!out.exists());
    server.stop().await;
}

/// Regression test for issue 13 ("restore reads the whole file into
/// memory"): a 2 GiB backup (a valid header naming the daemon's key, then a
/// sparse hole) is read whole to check its MAC and refused, and the restore
/// process's peak RSS stays under 64 MiB. A FIFO and /dev/zero are refused
/// at once.
#[tokio::test]
async fn a_huge_backup_is_refused_in_bounded_memory_and_special_files_at_once() {
    const SIZE: u64 = 2 << 30;
    const LIMIT_KIB: u64 = 64 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys.d");
    let key = exsec::crypto::generate_key_file(&keys_dir, std::time::SystemTime::now()).unwrap();
    let huge = dir.path().join("huge.backup");
    let header = json!({
        "format": 2, "schema_version": 2, "created_at": "2026-11-30T00:00:00.000Z",
        "exsec_version": "0.1.0", "key_id": key.key_id.as_str(),
        "audit_head": {"seq": 0, "hash": "0".repeat(64)},
        "audit_checkpoint": {"seq": 0, "hash": "0".repeat(64)},
        "tables": {},
    });
    std::fs::write(&huge, format!("exsec-backup 2\n{header}\n")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&huge)
        .unwrap()
        .set_len(SIZE)
        .unwrap();
    let data_dir = dir.path().join("data");

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_exsec"))
        .args(["restore", "--from"])
        .arg(&huge)
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--keys-dir")
        .arg(&keys_dir)
        .env_remove("EXSEC_URL")
        .env_remove("EXSEC_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let deadline = Instant::now() + Duration::from_secs(300);
    let (mut peak_kib, mut samples) = (0u64, 0u32);
    let status = loop {
        // VmHWM is the peak so far; the last reading before exit is the
        // peak of the whole run (a zombie has no Vm lines).
        if let Some(hwm) = std::fs::read_to_string(&status_file)
            .ok()
            .and_then(|status| vm_hwm_kib(&status))
        {
            peak_kib = peak_kib.max(hwm);
            samples += 1;
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "restore of 2 GiB did not end");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains("altered, or made with a key you don't have"),
        "{stderr}"
    );
    assert!(samples > 0, "the restore process was never sampled");
    assert!(
        peak_kib < LIMIT_KIB,
        "restore peaked at {peak_kib} KiB RSS on a 2 GiB file"
    );
    assert!(!data_dir.join("exsec.redb").exists());

    let fifo = dir.path().join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    for (path, says) in [
        (fifo.as_path(), "is a FIFO"),
        (Path::new("/dev/zero"), "is a character device"),
        (dir.path(), "is a directory"),
    ] {
        let run = restore(path, &data_dir, &keys_dir, &[]).await;
        run.expect(2);
        run.stderr_has(says);
    }
}

fn vm_hwm_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The format-1 fixture (fixtures/README.md), made by exsec at f5899ed:
/// refused without `--accept-unauthenticated`, restored with it, values
/// opening with the fixture's key, the schema migrated forward.
#[tokio::test]
async fn a_format_1_backup_restores_only_when_accepted_unauthenticated() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/format1");
    let dir = tempfile::tempdir().unwrap();
    // Git does not keep the key file's 0600; the daemon's rule needs it.
    let keys_dir = dir.path().join("keys.d");
    std::fs::create_dir(&keys_dir).unwrap();
    for entry in std::fs::read_dir(fixtures.join("keys.d")).unwrap() {
        let entry = entry.unwrap();
        let copy = keys_dir.join(entry.file_name());
        std::fs::copy(entry.path(), &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let backup = fixtures.join("exsec.backup");
    let data_dir = dir.path().join("data");

    let run = restore(&backup, &data_dir, &keys_dir, &[]).await;
    run.expect(4);
    run.stderr_has("cannot be authenticated");
    run.stderr_has("--accept-unauthenticated");
    assert!(!data_dir.join("exsec.redb").exists());

    let run = restore(&backup, &data_dir, &keys_dir, &["--accept-unauthenticated"]).await;
    run.expect(0);
    run.stdout_has("format 1, unauthenticated");
    run.stderr_has("take a new backup now");

    let store = Store::open(&data_dir.join("exsec.redb"), options()).unwrap();
    let keyring = crate::harness::load_keys(&keys_dir);
    let (tenants, records, chain) = store
        .read(|r| {
            let mut records = r.secrets(&Scope::Tenant(crate::harness::tenant("acme")))?;
            records.extend(r.secrets(&Scope::App(crate::harness::app("web")))?);
            Ok((r.tenants()?, records, r.verify_audit_chain(None)?))
        })
        .unwrap();
    let names: Vec<String> = tenants.iter().map(|(id, _)| id.to_string()).collect();
    assert_eq!(names, ["acme", "beta"]);
    let mut values: Vec<String> = records
        .iter()
        .map(|record| open_stored(&store, &keyring, record))
        .collect();
    values.sort();
    assert_eq!(
        values,
        ["sk-fixture-app-override", "sk-fixture-tenant-default"]
    );
    assert_eq!(chain.outcome.unwrap().seq, 5);
}
