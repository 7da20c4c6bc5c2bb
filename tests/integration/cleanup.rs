//! No plaintext left behind (issue 13): a cluster object holding secret
//! values that could not be removed — a deleted app's manifests file on a
//! read-only directory, a stale Secret the cluster refused to delete — is
//! reported (`cleanup_pending`), recorded, shown by doctor, and removed by
//! the retry once removal works again, with no further request.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kube_standin::{FailRule, Kind};
use serde_json::{Value, json};

use crate::daemon::PATIENCE;
use crate::operator::admin_run;
use crate::server::{Options, TestServer};

/// A directory made read-only for everyone, root included, by a read-only
/// bind mount over itself (mode bits do not stop root). Unmounted on drop.
struct ReadOnly {
    dir: PathBuf,
}

impl ReadOnly {
    /// `None` (after saying so loudly) where mounting is not allowed.
    fn mount(dir: &Path) -> Option<ReadOnly> {
        let mount = |args: &[&str]| {
            Command::new("mount")
                .args(args)
                .arg(dir)
                .arg(dir)
                .output()
                .map(|out| {
                    (
                        out.status.success(),
                        String::from_utf8_lossy(&out.stderr).into_owned(),
                    )
                })
        };
        match mount(&["--bind"]) {
            Ok((true, _)) => {}
            other => {
                eprintln!(
                    "SKIPPED LOUDLY: cannot bind-mount {} ({other:?}); needs root (CI runs as root)",
                    dir.display()
                );
                return None;
            }
        }
        let guard = ReadOnly {
            dir: dir.to_owned(),
        };
        match mount(&["-o", "remount,bind,ro"]) {
            Ok((true, _)) => Some(guard),
            other => {
                eprintln!(
                    "SKIPPED LOUDLY: cannot remount {} read-only ({other:?})",
                    dir.display()
                );
                None
            }
        }
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(&self.dir).status();
        assert!(
            unmounted.is_ok_and(|s| s.success()),
            "cannot unmount {}",
            self.dir.display()
        );
    }
}

/// Polls `done` until it holds, for at most [`PATIENCE`].
async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done().await {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Issue 17: a shred whose cluster cleanup fails answers like an app
/// deletion does — 200 with `cleanup_pending` naming the app — instead of
/// 204; the tenant is gone all the same and the file goes once the
/// directory is writable again.
#[tokio::test]
async fn a_shred_that_leaves_cluster_objects_says_cleanup_pending() {
    let server = TestServer::start().await;
    server
        .web_deployed_with("/v1/apps/web", "openai", "OPENAI_API_KEY", "sk-shredded")
        .await;
    let file = server.path("manifests").join("web.yaml");
    assert!(file.exists());

    let Some(read_only) = ReadOnly::mount(&server.path("manifests")) else {
        return;
    };
    let answer = server
        .admin("DELETE", "/v1/tenants/acme?shred=true", None)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["tenant_id"], "acme");
    assert_eq!(body["shredded"], true);
    assert_eq!(body["warnings"][0]["code"], "cleanup_pending", "{body}");
    assert!(
        body["warnings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("web"),
        "{body}"
    );
    assert!(!answer.text().contains("sk-shredded"));
    assert_eq!(
        server.admin("GET", "/v1/tenants/acme", None).await.status,
        404
    );
    let shredded = server.audit_events_of("tenant.crypto_shredded").await;
    assert_eq!(shredded[0]["data"]["cleanup_pending"], true);

    drop(read_only);
    eventually("cleanup.completed", async || {
        !server.audit_events_of("cleanup.completed").await.is_empty()
    })
    .await;
    assert!(!file.exists());
}

/// Regression test for issue 13: manifests dir read-only during `DELETE
/// /v1/apps/web` → 200 with `cleanup_pending`, `app.deleted` says so; the
/// file with the decrypted value goes once the directory is writable again,
/// by the retry alone, which audits `cleanup.completed`.
#[tokio::test]
async fn a_manifest_left_by_a_delete_is_removed_once_the_dir_is_writable() {
    let server = TestServer::start().await;
    server.seed("acme", &["web"]).await;
    server
        .set_secret_ok("/v1/apps/web", "openai", "OPENAI_API_KEY", "sk-left-behind")
        .await;
    let answer = server.deploy("web", json!({"image_ref": "nginx"})).await;
    assert_eq!(answer.status, 201, "{}", answer.text());
    let file = server.path("manifests").join("web.yaml");
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains(&base64("sk-left-behind"))
    );

    let Some(read_only) = ReadOnly::mount(&server.path("manifests")) else {
        return;
    };
    let answer = server.admin("DELETE", "/v1/apps/web", None).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["deleted"], true);
    assert_eq!(body["warnings"][0]["code"], "cleanup_pending", "{body}");
    assert_eq!(server.admin("GET", "/v1/apps/web", None).await.status, 404);
    assert!(file.exists(), "the read-only directory kept the file");
    let deleted = server.audit_events_of("app.deleted").await;
    let data = &deleted.last().unwrap()["data"];
    assert_eq!(data["cleanup_pending"], true, "{data}");
    assert!(
        data["cleanup_error"]
            .as_str()
            .unwrap()
            .contains("Read-only"),
        "{data}"
    );

    drop(read_only);
    // The file goes first, then the record and its audit event: wait for
    // the event, not the file, or the event may not be committed yet.
    eventually("cleanup.completed", async || {
        !server.audit_events_of("cleanup.completed").await.is_empty()
    })
    .await;
    assert!(!file.exists(), "the cleanup removed web.yaml");
    let completed = server.the_audit_event("cleanup.completed").await;
    assert_eq!(completed["app_id"], "web");
    assert_eq!(completed["data"]["kind"], "app_objects");
    server.stop().await;
}

/// The kubernetes target: the cluster refuses to delete the Secret of an
/// app whose set became empty → the deploy warns `cleanup_pending`, the
/// cluster route and `exsec doctor` show it; once the cluster allows it,
/// the retry deletes the Secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_secret_the_cluster_refused_to_delete_is_deleted_later() {
    let server = TestServer::start_with(Options::kubernetes()).await;
    server
        .web_deployed_with("/v1/apps/web", "openai", "OPENAI_API_KEY", "sk-stale")
        .await;
    let cluster = server.cluster.as_ref().unwrap();
    let secret = || cluster.object(Kind::Secret, "paas-apps", "app-web-external-secrets");
    assert!(secret().is_some());
    let removed = server
        .delete_secret("/v1/apps/web", "openai", "OPENAI_API_KEY")
        .await;
    assert_eq!(removed.status, 204);

    cluster.faults().fail(
        FailRule::new(403)
            .times(u64::MAX)
            .method("DELETE")
            .path_contains("/secrets/"),
    );
    let answer = server.deploy("web", json!({"image_ref": "nginx"})).await;
    assert_eq!(answer.status, 201, "{}", answer.text());
    let injection = &answer.json()["external_secrets"];
    assert_eq!(injection["reason"], "no_secrets", "{injection}");
    assert_eq!(
        injection["warnings"][0]["code"], "cleanup_pending",
        "{injection}"
    );
    assert!(secret().is_some(), "the refused delete left the Secret");
    let objects = server
        .admin("GET", "/v1/apps/web/cluster", None)
        .await
        .json();
    assert_eq!(
        objects["cleanup_pending"]["kind"], "stale_secret",
        "{objects}"
    );
    let doctor = admin_run(&server, "doctor web", None).await;
    doctor.expect(6);
    let row = doctor
        .stdout
        .lines()
        .find(|line| line.contains("cleanup"))
        .unwrap_or_else(|| panic!("no cleanup row: {doctor:?}"))
        .to_owned();
    assert!(row.contains("problem"), "{doctor:?}");

    cluster.faults().clear();
    eventually("deletion of the stale Secret", async || secret().is_none()).await;
    let objects = server
        .admin("GET", "/v1/apps/web/cluster", None)
        .await
        .json();
    assert_eq!(objects["cleanup_pending"], Value::Null, "{objects}");
    let completed = server.audit_events_of("cleanup.completed").await;
    assert_eq!(completed.last().unwrap()["data"]["kind"], "stale_secret");
    server.stop().await;
}

fn base64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}
