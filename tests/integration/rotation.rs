//! Master-key rotation without a restart (SPEC §3): a new key file is
//! picked up by the directory watcher, every record is re-sealed under it
//! while clients keep writing and deploying, and bad key files never take
//! a good key away.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::harness::{eventually, eventually_within};
use crate::server::{Options, TestServer};

/// The harness keeps the default `rescan_interval` (30 s), far beyond
/// these tests' waits: only filesystem events can explain a reload.
fn watch_only() -> Options {
    Options::default()
}

async fn keys(server: &TestServer) -> Value {
    server.admin("GET", "/v1/keys", None).await.json()
}

/// Polls `/v1/keys` (the operator's view) until `done` holds, for at most
/// `limit`.
pub(crate) async fn wait_for_keys(
    server: &TestServer,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    poll_keys(server, limit, Duration::from_millis(20), done).await
}

/// [`wait_for_keys`] polling `every` (a short interval catches states that
/// pass quickly).
pub(crate) async fn poll_keys(
    server: &TestServer,
    limit: Duration,
    every: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let what = "the keys (GET /v1/keys) reach the awaited state";
    eventually_within(what, limit, every, || async {
        let status = keys(server).await;
        if done(&status) {
            Ok(status)
        } else {
            Err(status.to_string())
        }
    })
    .await
}

/// Writes `{prefix}_{k}` = `v1-{owner}-{k}` for each `k < count` into the
/// scope at `scope_path` (`/v1/tenants/t0`, owner `t0`); each is new.
async fn first_values(server: &TestServer, scope_path: &str, prefix: &str, count: usize) {
    let owner = scope_path.rsplit('/').next().unwrap();
    for k in 0..count {
        let key = format!("{prefix}_{k}");
        let answer = server
            .set_secret(scope_path, "p", &key, &format!("v1-{owner}-{k}"))
            .await;
        assert_eq!(answer.status, 201, "{scope_path} {key}: {}", answer.text());
    }
}

pub(crate) fn later_key(server: &TestServer, hours: u64) -> String {
    let generated = exsec::crypto::generate_key_file(
        &server.path("keys.d"),
        SystemTime::now() + Duration::from_secs(hours * 3600),
    )
    .unwrap();
    generated.key_id.to_string()
}

/// Thousands of records across tenants and apps; a new key is dropped in;
/// without a restart every record ends under it, while a concurrent client
/// keeps writing and deploying with zero failures and zero stale values.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_key_reseals_everything_under_live_traffic() {
    let server = std::sync::Arc::new(TestServer::start_with(watch_only()).await);
    let tenants = 10;
    let apps_per_tenant = 5;
    let mut writers = Vec::new();
    for t in 0..tenants {
        let server = server.clone();
        writers.push(tokio::spawn(async move {
            let tenant = format!("t{t}");
            let apps: Vec<String> = (0..apps_per_tenant)
                .map(|a| format!("t{t}-app{a}"))
                .collect();
            let refs: Vec<&str> = apps.iter().map(String::as_str).collect();
            server.seed(&tenant, &refs).await;
            first_values(&server, &format!("/v1/tenants/{tenant}"), "TENANT", 100).await;
            for app in &apps {
                first_values(&server, &format!("/v1/apps/{app}"), "APP", 20).await;
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let before = keys(&server).await;
    let old = before["active"].as_str().unwrap().to_owned();
    // 2,000 values under ten tenant data keys: the old key wraps ten keys.
    assert_eq!(before["keys"][0]["records"], tenants);

    let new = later_key(&server, 1);
    // Live traffic during the rotation: overwrite values and deploy.
    let traffic = {
        let server = server.clone();
        tokio::spawn(async move {
            for round in 0..40 {
                let t = round % tenants;
                let app = format!("t{t}-app{}", round % apps_per_tenant);
                let answer = server
                    .set_secret(
                        &format!("/v1/apps/{app}"),
                        "p",
                        "APP_0",
                        &format!("v2-{app}-0"),
                    )
                    .await;
                assert!(answer.status == 200, "{}", answer.text());
                let answer = server
                    .set_secret(
                        &format!("/v1/tenants/t{t}"),
                        "p",
                        "TENANT_0",
                        &format!("v2-t{t}-0"),
                    )
                    .await;
                assert!(answer.status == 200, "{}", answer.text());
                let deploy = server.deploy(&app, json!({"image_ref": "nginx"})).await;
                deploy.assert_injected();
            }
        })
    };
    let status = wait_for_keys(&server, Duration::from_secs(60), |s| {
        s["active"] == new.as_str()
            && s["rotation"]["remaining"] == 0
            && s["rotation"]["state"] == "idle"
    })
    .await;
    traffic.await.unwrap();
    let old_entry = status["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == old.as_str())
        .unwrap()
        .clone();
    assert_eq!(old_entry["records"], 0);
    assert_eq!(old_entry["safe_to_remove"], true);

    // Every value opens to what was last written: deploy every app and read
    // the injected values back.
    for t in 0..tenants {
        for a in 0..apps_per_tenant {
            let app = format!("t{t}-app{a}");
            let deploy = server.deploy(&app, json!({"image_ref": "nginx"})).await;
            assert_eq!(deploy.status, 201);
            let values = server.manifest_values(&app).unwrap();
            assert_eq!(values.len(), 120);
            for k in 0..100 {
                // The traffic rewrote TENANT_0 of every tenant (40 rounds over 10).
                let expected = if k == 0 {
                    format!("v2-t{t}-0")
                } else {
                    format!("v1-t{t}-{k}")
                };
                assert_eq!(values[&format!("TENANT_{k}")], expected, "{app} TENANT_{k}");
            }
            for k in 1..20 {
                assert_eq!(values[&format!("APP_{k}")], format!("v1-{app}-{k}"));
            }
            // Round r rewrote APP_0 of app (r % 10, r % 5): app a of tenant t when a == t % 5.
            let version = if a == t % apps_per_tenant { "v2" } else { "v1" };
            assert_eq!(values["APP_0"], format!("{version}-{app}-0"));
        }
    }
    let started = server
        .admin(
            "GET",
            "/v1/audit-events?type=master_key.rotation_completed",
            None,
        )
        .await
        .json();
    assert!(!started["events"].as_array().unwrap().is_empty());
}

/// Bad key files are refused with one audit event per distinct content and
/// never replace a good key; the server keeps serving.
#[tokio::test]
async fn bad_key_files_never_take_a_good_key_away() {
    let server = TestServer::start_with(watch_only()).await;
    server.seed("acme", &["web"]).await;
    assert_eq!(
        server
            .set_secret("/v1/apps/web", "p", "K", "v")
            .await
            .status,
        201
    );
    let good = keys(&server).await["active"].as_str().unwrap().to_owned();
    let dir = server.path("keys.d");
    let write = |name: &str, content: &[u8], mode: u32| {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    // Names sort above the good key, so a wrongly accepted one would become active.
    write("zz-short.key", b"c2hvcnQ=\n", 0o600);
    write(
        "zz-encoding.key",
        b"not base64 or hex at all!!!!!!!!!!!!!!!!!!!!\n",
        0o600,
    );
    write("zz-group.key", &key_text(), 0o640);
    write(".zz-dotfile.key", &key_text(), 0o600);
    std::fs::create_dir(dir.join("zz-dir.key")).unwrap();
    write(&format!("{good}.key"), &key_text(), 0o600);
    // Half-written: the first half of a valid key.
    write("zz-half.key", &key_text()[..20], 0o600);

    let reload_failures = || async {
        let path = "/v1/audit-events?type=master_key.reload_failed";
        let page = server.admin("GET", path, None).await.json();
        page["events"].as_array().unwrap().clone()
    };
    let failures = eventually("six reload failures audited", || async {
        let events = reload_failures().await;
        if events.len() >= 6 {
            Ok(events)
        } else {
            Err(format!("{events:?}"))
        }
    })
    .await;
    let files: std::collections::BTreeSet<&str> = failures
        .iter()
        .map(|e| e["data"]["file"].as_str().unwrap())
        .collect();
    for file in [
        "zz-short.key",
        "zz-encoding.key",
        "zz-group.key",
        "zz-dir.key",
        "zz-half.key",
    ] {
        assert!(files.contains(file), "{file} not reported: {files:?}");
    }
    assert!(
        files.contains(format!("{good}.key").as_str()),
        "changed content under a known id"
    );
    assert!(!files.contains(".zz-dotfile.key"));
    let status = keys(&server).await;
    assert_eq!(status["active"], good.as_str());
    assert_eq!(status["degraded"], false);

    // The good key (its last good copy) still opens the value and seals new ones.
    server
        .deploy("web", json!({"image_ref": "nginx"}))
        .await
        .assert_injected();
    assert_eq!(
        server
            .set_secret("/v1/apps/web", "p", "K2", "v2")
            .await
            .status,
        201
    );

    // A rescan of unchanged bad files reports nothing new.
    write("trigger-rescan", b"x", 0o600);
    let count = failures.len();
    assert!(reload_failures().await.len() <= count + 1);
}

/// An operator edits a new key file in place (an editor or a shell
/// redirect truncates, then writes): the watcher wakes on the truncated
/// file, finds it bad, reads it again after the settle time and loads the
/// finished key without reporting a refused file.
#[tokio::test]
async fn a_key_file_caught_half_written_is_not_reported() {
    let server = TestServer::start_with(watch_only()).await;
    let before = keys(&server).await["active"].as_str().unwrap().to_owned();
    let path = server.path("keys.d").join("zz-edited.key");
    let text = key_text();
    std::fs::write(&path, &text[..10]).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The editor's pause between the truncation and the rest of the write:
    // past the watcher's debounce (150 ms), within its settle time (500 ms).
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(&path, &text).unwrap();

    let status = wait_for_keys(&server, Duration::from_secs(30), |s| {
        s["active"] == "zz-edited"
    })
    .await;
    assert_ne!(status["active"], before.as_str());
    let refused = server.audit_events_of("master_key.reload_failed").await;
    assert!(
        refused.is_empty(),
        "a half-written file was reported: {refused:?}"
    );
    server.stop().await;
}

/// The layout the kubelet builds for a Secret volume: the visible names
/// are links into `..data`, which is swapped atomically on update.
#[tokio::test]
async fn a_kubernetes_secret_volume_swap_rotates_the_key() {
    let server = TestServer::start_with(Options::without_key()).await;
    let dir = server.path("keys.d");
    let version = |name: &str, keys: &[(&str, Vec<u8>)]| {
        let folder = dir.join(name);
        std::fs::create_dir(&folder).unwrap();
        for (id, content) in keys {
            let path = folder.join(format!("{id}.key"));
            std::fs::write(&path, content).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    };
    version("..2026_11_28_01", &[("a", key_text())]);
    std::os::unix::fs::symlink("..2026_11_28_01", dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/a.key", dir.join("a.key")).unwrap();
    std::os::unix::fs::symlink("..data/b.key", dir.join("b.key")).unwrap();
    let status = wait_for_keys(&server, Duration::from_secs(10), |s| s["active"] == "a").await;
    assert_eq!(status["degraded"], false);
    server.seed("acme", &["web"]).await;
    assert_eq!(
        server
            .set_secret("/v1/apps/web", "p", "K", "value")
            .await
            .status,
        201
    );

    // The kubelet's update: new folder, temporary link, atomic rename over ..data.
    version(
        "..2026_11_28_02",
        &[
            ("a", std::fs::read(dir.join("a.key")).unwrap()),
            ("b", key_text()),
        ],
    );
    std::os::unix::fs::symlink("..2026_11_28_02", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    let status = wait_for_keys(&server, Duration::from_secs(10), |s| {
        s["active"] == "b" && s["rotation"]["remaining"] == 0
    })
    .await;
    let a = status["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == "a")
        .unwrap();
    assert_eq!(a["records"], 0);
    server
        .deploy("web", json!({"image_ref": "nginx"}))
        .await
        .assert_injected();
    assert_eq!(server.manifest_values("web").unwrap()["K"], "value");
}

/// SPEC §3: "status shows what waits for which key". Records sealed under
/// two keys that both went missing are counted per key in
/// `rotation.waiting_for` (API and `exsec keys status`); putting each file
/// back re-seals its records and takes it off the list.
#[tokio::test]
async fn status_shows_how_many_records_wait_for_each_missing_key() {
    let server = TestServer::start_with(watch_only()).await;
    server.seed("acme", &["web"]).await;
    for key in ["A", "B"] {
        let answer = server.set_secret("/v1/apps/web", "p", key, key).await;
        assert_eq!(answer.status, 201, "{}", answer.text());
    }
    let first = keys(&server).await["active"].as_str().unwrap().to_owned();
    let keys_dir = server.path("keys.d");
    let first_text = std::fs::read(keys_dir.join(format!("{first}.key"))).unwrap();

    // The first key goes missing; three values are written under a second.
    let dir = server.stop().await;
    std::fs::remove_file(keys_dir.join(format!("{first}.key"))).unwrap();
    let server = TestServer::restart(dir).await;
    let second = later_key(&server, 1);
    wait_for_keys(&server, Duration::from_secs(10), |s| {
        s["active"] == second.as_str()
    })
    .await;
    for key in ["C", "D", "E"] {
        let answer = server.set_secret("/v1/tenants/acme", "p", key, key).await;
        assert_eq!(answer.status, 201, "{}", answer.text());
    }
    let second_text = std::fs::read(keys_dir.join(format!("{second}.key"))).unwrap();

    // The second goes missing too; a third is active.
    let dir = server.stop().await;
    std::fs::remove_file(keys_dir.join(format!("{second}.key"))).unwrap();
    let server = TestServer::restart(dir).await;
    let third = later_key(&server, 2);
    let status = wait_for_keys(&server, Duration::from_secs(10), |s| {
        s["active"] == third.as_str()
    })
    .await;
    assert_eq!(
        status["rotation"]["state"], "blocked_missing_key",
        "{status}"
    );
    // A and B are under the data key the first key wraps; C, D and E under
    // the one made when that key was missing, wrapped by the second.
    assert_eq!(status["rotation"]["remaining"], 2, "{status}");
    assert_eq!(
        status["rotation"]["waiting_for"],
        serde_json::json!({ first.as_str(): 1, second.as_str(): 1 }),
        "{status}"
    );
    let json = crate::operator::admin_run(&server, "keys status -o json", None).await;
    assert_eq!(json.expect(5).json()["rotation"], status["rotation"]);
    let human = crate::operator::admin_run(&server, "keys status", None).await;
    human.expect(5);
    for (id, count) in [(&first, 1), (&second, 1)] {
        let line = format!("waiting for {id}: {count} records");
        assert!(
            human.stdout.contains(&line),
            "{line} not in {}",
            human.stdout
        );
        human.stderr_has(&format!("{id} ({count} records)"));
    }

    // The first file comes back: its records move to the active key.
    let restore = |id: &str, text: &[u8]| {
        let path = keys_dir.join(format!("{id}.key"));
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    restore(&first, &first_text);
    let status = wait_for_keys(&server, Duration::from_secs(10), |s| {
        s["rotation"]["remaining"] == 1
    })
    .await;
    assert_eq!(
        status["rotation"]["waiting_for"],
        serde_json::json!({ second.as_str(): 1 }),
        "{status}"
    );
    assert_eq!(status["rotation"]["state"], "blocked_missing_key");
    restore(&second, &second_text);
    let status = wait_for_keys(&server, Duration::from_secs(10), |s| {
        s["rotation"]["state"] == "idle"
    })
    .await;
    assert_eq!(status["rotation"]["remaining"], 0);
    assert_eq!(status["rotation"]["waiting_for"], serde_json::json!({}));
    let human = crate::operator::admin_run(&server, "keys status", None).await;
    assert!(
        !human.expect(0).stdout.contains("waiting for"),
        "{}",
        human.stdout
    );
    let deploy = server
        .deploy("web", serde_json::json!({ "image_ref": "nginx" }))
        .await;
    assert_eq!(deploy.json()["external_secrets"]["status"], "injected");
    let values = server.manifest_values("web").unwrap();
    for key in ["A", "B", "C", "D", "E"] {
        assert_eq!(values[key], key);
    }
    server.stop().await;
}

fn key_text() -> Vec<u8> {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).unwrap();
    format!(
        "{}\n",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
    .into_bytes()
}

/// The key directory disappears under a running daemon (SPEC §3, issue
/// 13): it warns and audits `master_key.unavailable` once, serves degraded,
/// and audits `master_key.available` when the directory is back.
#[tokio::test]
async fn a_vanished_key_directory_is_audited_and_so_is_its_return() {
    let server = TestServer::start_with(Options {
        rescan_interval: "100ms",
        ..Options::default()
    })
    .await;
    server.seed("acme", &["web"]).await;
    let dir = server.path("keys.d");
    let away = server.path("keys.d.away");
    std::fs::rename(&dir, &away).unwrap();
    let status = wait_for_keys(&server, Duration::from_secs(30), |k| k["degraded"] == true).await;
    assert_eq!(status["active"], Value::Null);
    // Audited right after the keyring is swapped.
    let gone = audit_events_soon(&server, "master_key.unavailable").await;
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert_eq!(gone[0]["data"]["reason"], "the key directory is missing");
    let ready = server.call("GET", "/readyz", None, None).await.json();
    assert_eq!(ready["keyring"]["degraded"], true, "{ready}");
    assert_eq!(ready["degraded"], true, "{ready}");

    std::fs::rename(&away, &dir).unwrap();
    wait_for_keys(&server, Duration::from_secs(30), |k| k["degraded"] == false).await;
    let back = audit_events_soon(&server, "master_key.available").await;
    assert_eq!(back.len(), 1, "{back:?}");
    assert_eq!(
        server.audit_count("master_key.unavailable").await,
        1,
        "rescans of a missing directory audit nothing more"
    );
    let written = server
        .set_secret("/v1/tenants/acme", "openai", "OPENAI_API_KEY", "sk-1")
        .await;
    assert_eq!(written.status, 201, "{}", written.text());
    server.stop().await;
}

/// The audit events of `kind`, once there is one (for at most 30 s).
async fn audit_events_soon(server: &TestServer, kind: &str) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let events = server.audit_events_of(kind).await;
        if !events.is_empty() {
            return events;
        }
        assert!(tokio::time::Instant::now() < deadline, "no {kind} event");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
