//! Nothing lost on a crash. Durable before acknowledged, under group
//! commit: concurrent writers hammer a real `exsec serve` process, which is
//! SIGKILLed at a random moment; after a restart every acknowledged write
//! is there with its last acknowledged value, its version and its audit
//! event, and the audit chain verifies. A deploy killed in the middle of
//! its cluster calls is in the history (failed, interrupted) and the audit
//! log after the restart, and its id is never handed out again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::operator::admin_run;
use crate::server::{Options, TestServer};

/// Concurrent writers, each writing its own key over and over.
const WRITERS: usize = 16;

fn key(writer: usize) -> String {
    format!("KEY_{writer:02}")
}

fn value(writer: usize, n: u64) -> String {
    format!("w{writer:02}-{n:06}")
}

/// Write number `n` of a value written by [`value`].
fn number(value: &str) -> u64 {
    value.rsplit('-').next().unwrap().parse().unwrap()
}

/// What one writer did before the kill: the last write the server
/// acknowledged, and the last one it sent (which may or may not have
/// committed).
#[derive(Default)]
struct Progress {
    acked: AtomicU64,
    sent: AtomicU64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_write_survives_a_sigkill() {
    let server = Arc::new(TestServer::spawn_with(Options::default()).await);
    server.seed("acme", &["web"]).await;
    // A random moment, printed so a failure can be replayed.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let kill_after = 200 + u64::from(nanos % 600);
    println!("SIGKILL after {kill_after} acknowledged writes");

    let progress: Arc<Vec<Progress>> =
        Arc::new((0..WRITERS).map(|_| Progress::default()).collect());
    let acked_total = Arc::new(AtomicU64::new(0));
    let enough = Arc::new(Notify::new());
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (server, progress, acked_total, enough) = (
                server.clone(),
                progress.clone(),
                acked_total.clone(),
                enough.clone(),
            );
            tokio::spawn(async move {
                let token = server.admin_token.clone();
                let path = format!("/v1/apps/web/external-secrets/bench/{}", key(writer));
                for n in 1.. {
                    progress[writer].sent.store(n, Ordering::SeqCst);
                    let body = Bytes::from(json!({ "value": value(writer, n) }).to_string());
                    let Ok(answer) = server
                        .try_call_bytes("PUT", &path, Some(&token), Some(body), &[])
                        .await
                    else {
                        return; // the server is gone
                    };
                    assert!(
                        answer.status == 200 || answer.status == 201,
                        "write {n} of writer {writer}: {} {}",
                        answer.status,
                        answer.text()
                    );
                    progress[writer].acked.store(n, Ordering::SeqCst);
                    if acked_total.fetch_add(1, Ordering::SeqCst) + 1 == kill_after {
                        enough.notify_one();
                    }
                }
            })
        })
        .collect();
    enough.notified().await;
    server.process.as_ref().unwrap().signal("KILL");
    for writer in writers {
        writer.await.unwrap();
    }
    let server = Arc::into_inner(server).expect("the writers are done");
    let server = server.crash_and_restart().await;

    // Versions as stored: one per committed write of each key.
    let listed = server
        .admin("GET", "/v1/apps/web/external-secrets", None)
        .await
        .json();
    let versions: BTreeMap<String, u64> = listed["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["key"].as_str().unwrap().to_owned(),
                s["version"].as_u64().unwrap(),
            )
        })
        .collect();
    // Values as injected.
    let deployed = server
        .deploy("web", json!({ "image_ref": "nginx:1.27" }))
        .await;
    assert_eq!(deployed.status, 201, "{}", deployed.text());
    let values = server.manifest_values("web").unwrap_or_default();
    let events = secret_events(&server).await;

    for (writer, progress) in progress.iter().enumerate() {
        let (acked, sent) = (
            progress.acked.load(Ordering::SeqCst),
            progress.sent.load(Ordering::SeqCst),
        );
        let key = key(writer);
        let Some(stored) = values.get(&key) else {
            assert_eq!(acked, 0, "{key}: acknowledged write {acked} was lost");
            continue;
        };
        let n = number(stored);
        assert!(
            n >= acked && n <= sent,
            "{key}: stored write {n}, acknowledged {acked}, sent {sent}"
        );
        assert_eq!(stored, &value(writer, n));
        assert_eq!(
            versions.get(&key),
            Some(&n),
            "{key}: version is not the write count"
        );
        let audited: Vec<u64> = events
            .iter()
            .filter(|e| e["data"]["key"] == key.as_str())
            .map(|e| e["data"]["version"].as_u64().unwrap())
            .collect();
        assert_eq!(
            audited,
            (1..=n).collect::<Vec<_>>(),
            "{key}: one audit event per committed write, in order"
        );
    }
    admin_run(&server, "audit verify", None).await.expect(0);
}

/// Every external-secret audit event, oldest first.
async fn secret_events(server: &TestServer) -> Vec<Value> {
    let mut events = server.audit_events().await;
    events.retain(|event| {
        event["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("external_secret."))
    });
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_killed_mid_apply_is_filed_as_interrupted() {
    let server = TestServer::spawn_with(Options {
        deploy_timeout: "60s",
        ..Options::kubernetes()
    })
    .await;
    server.seed("acme", &["web"]).await;
    server
        .set_secret_ok("/v1/apps/web", "openai", "OPENAI_API_KEY", "sk-1")
        .await;
    let server = Arc::new(server);
    let deploy = crate::server::deploy_held_at_apply(&server).await;
    server.process.as_ref().unwrap().signal("KILL");
    assert!(deploy.await.unwrap().is_err(), "a killed server answered");
    let server = Arc::into_inner(server).expect("the deploy task is done");
    let server = server.crash_and_restart().await;
    server.cluster.as_ref().unwrap().faults().clear();

    let history = server
        .admin("GET", "/v1/apps/web/deploys", None)
        .await
        .json();
    let deploys = history["deploys"].as_array().unwrap();
    assert_eq!(deploys.len(), 1, "{history}");
    let interrupted = &deploys[0];
    assert_eq!(interrupted["status"], "failed", "{interrupted}");
    assert!(
        interrupted["error"]
            .as_str()
            .unwrap()
            .starts_with("interrupted"),
        "{interrupted}"
    );
    assert_eq!(interrupted["external_secrets"]["reason"], "interrupted");
    let id = interrupted["deploy_id"].as_str().unwrap().to_owned();
    let audited: Vec<String> = server
        .audit_events()
        .await
        .into_iter()
        .filter(|e| e["data"]["deploy_id"] == id.as_str())
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(audited, ["deploy.created", "deploy.failed"]);

    let next = server
        .deploy("web", json!({ "image_ref": "nginx:1.27" }))
        .await;
    assert_eq!(next.status, 201, "{}", next.text());
    let next_id = next.json()["deploy_id"].as_str().unwrap().to_owned();
    assert!(next_id > id, "{next_id} reuses or precedes {id}");
    admin_run(&server, "audit verify", None).await.expect(0);
}
