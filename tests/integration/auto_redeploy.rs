//! Automatic redeploys (SPEC §11.2) against the Kubernetes API stand-in: a
//! burst of secret writes rolls each affected app once with the last
//! values; the queue survives a SIGKILL; a restart with nothing queued
//! rolls nothing; a refused bulk write queues nothing. The debounce itself
//! is timed under tokio's paused clock in `exsec::redeploy`'s unit tests;
//! here readiness is polled (the queue draining), never slept on.

use serde_json::{Value, json};

use crate::harness::eventually;
use crate::kubernetes::secret_values;
use crate::server::{Options, TestServer};

fn options(quiet: &str) -> Options {
    Options {
        deploy_config: format!(
            "auto_redeploy_quiet = \"{quiet}\"\nauto_redeploy_max_delay = \"30s\"\n"
        ),
        ..Options::kubernetes()
    }
}

/// A server on a 1 s quiet period with `web` of acme registered for
/// automatic redeploys, one value set and deployed by hand.
async fn auto_web_deployed() -> TestServer {
    let server = TestServer::start_with(options("1s")).await;
    server.seed("acme", &[]).await;
    register(&server, "web", true).await;
    server
        .set_secret_ok("/v1/apps/web", "openai", "OPENAI_API_KEY", "sk-1")
        .await;
    server.deploy_ok("web").await;
    server
}

/// Registers `app` under acme with `auto_redeploy` as given.
async fn register(server: &TestServer, app: &str, auto: bool) {
    let body = json!({"tenant_id": "acme", "auto_redeploy": auto}).to_string();
    let answer = server
        .admin("PUT", &format!("/v1/apps/{app}"), Some(&body))
        .await;
    assert!(
        answer.status == 201 || answer.status == 200,
        "{}",
        answer.text()
    );
    assert_eq!(answer.json()["auto_redeploy"], auto);
}

/// The app's deploys, newest first.
async fn deploys(server: &TestServer, app: &str) -> Vec<Value> {
    let answer = server
        .admin("GET", &format!("/v1/apps/{app}/deploys?limit=100"), None)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()["deploys"].as_array().unwrap().clone()
}

fn by_trigger(deploys: &[Value], trigger: &str) -> usize {
    deploys.iter().filter(|d| d["trigger"] == trigger).count()
}

/// Waits until `app` has a deploy started by a secret change.
async fn redeployed(server: &TestServer, app: &str) {
    eventually(&format!("{app} redeployed by a secret change"), || async {
        match by_trigger(&deploys(server, app).await, "secret_change") {
            0 => Err("not yet".to_owned()),
            _ => Ok(()),
        }
    })
    .await;
}

/// Waits until no redeploy is queued for any of `apps`.
async fn drained(server: &TestServer, apps: &[&str]) {
    eventually("the automatic-redeploy queue drains", || async {
        for app in apps {
            let answer = server.admin("GET", &format!("/v1/apps/{app}"), None).await;
            if let Some(queued) = answer.json().get("redeploy_queued") {
                return Err(format!("{app}: {queued}"));
            }
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_writes_roll_each_affected_app_once_with_the_last_values() {
    let server = TestServer::start_with(options("3s")).await;
    server.seed("acme", &[]).await;
    register(&server, "web", true).await;
    register(&server, "api", true).await;
    register(&server, "batch", false).await;
    register(&server, "own", true).await;
    server
        .set_secret_ok("/v1/tenants/acme", "openai", "OPENAI_API_KEY", "sk-0")
        .await;
    // `own` overrides the key: tenant changes do not reach it.
    server
        .set_secret_ok("/v1/apps/own", "openai", "OPENAI_API_KEY", "sk-own")
        .await;
    for app in ["web", "api", "batch", "own"] {
        server.deploy_ok(app).await;
    }
    // Deploying counted nothing as a change: nothing is queued.
    drained(&server, &["web", "api", "own"]).await;

    for n in 1..=50 {
        server
            .set_secret_ok(
                "/v1/tenants/acme",
                "openai",
                "OPENAI_API_KEY",
                &format!("sk-{n}"),
            )
            .await;
    }
    // Queued durably with the writes, visible on the app.
    let queued = server.admin("GET", "/v1/apps/web", None).await.json();
    assert!(queued["redeploy_queued"].is_object(), "{queued}");
    assert_eq!(
        server.admin("GET", "/v1/apps/batch", None).await.json()["redeploy_queued"],
        Value::Null
    );

    redeployed(&server, "web").await;
    redeployed(&server, "api").await;
    drained(&server, &["web", "api", "own"]).await;

    for app in ["web", "api"] {
        let history = deploys(&server, app).await;
        assert_eq!(
            by_trigger(&history, "secret_change"),
            1,
            "{app}: {history:?}"
        );
        let newest = &history[0];
        assert_eq!(newest["trigger"], "secret_change");
        assert_eq!(newest["rollout"], "restarted", "{newest}");
        assert_eq!(newest["image_ref"], "nginx");
        assert_eq!(
            secret_values(&server, app).unwrap()["OPENAI_API_KEY"],
            "sk-50",
            "{app} runs the last value"
        );
    }
    for app in ["batch", "own"] {
        assert_eq!(
            deploys(&server, app).await.len(),
            1,
            "{app} was not redeployed"
        );
    }
    let audited = server.audit_events_of("deploy.created").await;
    assert_eq!(
        audited
            .iter()
            .filter(|e| e["actor"] == "system:auto-redeploy")
            .count(),
        2,
        "one audited automatic deploy per app"
    );
    let metrics = server.admin("GET", "/metrics", None).await.text();
    assert!(
        metrics.lines().any(|l| l == "exsec_auto_redeploy_queue 0"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_redeploy_survives_a_sigkill_and_a_restart_rolls_nothing_else() {
    let server = TestServer::spawn_with(options("2s")).await;
    server.seed("acme", &[]).await;
    register(&server, "web", true).await;
    register(&server, "api", true).await;
    server
        .set_secret_ok("/v1/apps/web", "openai", "OPENAI_API_KEY", "sk-1")
        .await;
    server.deploy_ok("web").await;
    server.deploy_ok("api").await;

    // The write is answered with its redeploy queued; the kill lands well
    // inside the 2 s quiet time.
    server
        .set_secret_ok("/v1/apps/web", "openai", "OPENAI_API_KEY", "sk-2")
        .await;
    let server = server.crash_and_restart().await;
    redeployed(&server, "web").await;
    drained(&server, &["web", "api"]).await;
    assert_eq!(
        secret_values(&server, "web").unwrap()["OPENAI_API_KEY"],
        "sk-2"
    );
    let web_deploys = deploys(&server, "web").await.len();

    // Nothing queued: a restart rolls nothing. A write to `api` after it
    // proves the worker ran its start-up pass before `api` redeployed.
    let server = server.crash_and_restart().await;
    server
        .set_secret_ok("/v1/apps/api", "openai", "OPENAI_API_KEY", "sk-api")
        .await;
    redeployed(&server, "api").await;
    assert_eq!(deploys(&server, "web").await.len(), web_deploys);
}

#[tokio::test]
async fn a_bulk_write_refused_on_its_last_item_queues_nothing() {
    let server = auto_web_deployed().await;
    let good = [
        ("openai", "OPENAI_API_KEY", "sk-2"),
        ("stripe", "STRIPE_KEY", "rk-1"),
    ];
    let mut bad_last = good;
    bad_last[1].1 = "not a key";
    let refused = server.bulk_write("/v1/apps/web", &bad_last).await;
    assert_eq!(refused.status, 400, "{}", refused.text());
    let app = server.admin("GET", "/v1/apps/web", None).await.json();
    assert_eq!(app["redeploy_queued"], Value::Null, "{app}");
    // A good bulk write queues one redeploy for the whole set.
    let written = server.bulk_write("/v1/apps/web", &good).await;
    assert_eq!(written.status, 200, "{}", written.text());
    redeployed(&server, "web").await;
    drained(&server, &["web"]).await;
    assert_eq!(
        by_trigger(&deploys(&server, "web").await, "secret_change"),
        1
    );
    let values = secret_values(&server, "web").unwrap();
    assert_eq!(values["OPENAI_API_KEY"], "sk-2");
    assert_eq!(values["STRIPE_KEY"], "rk-1");
}

/// An operator paused the Deployment (`kubectl patch … spec.paused`): the
/// automatic redeploy leaves it alone, says so in the audit log, and
/// dequeues; a deploy by hand still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_deployment_is_skipped_and_audited() {
    let Ok(kubectl) = crate::kubernetes::which_kubectl() else {
        eprintln!(
            "SKIPPED LOUDLY: kubectl is not on PATH; the paused-Deployment skip was not checked"
        );
        return;
    };
    let server = auto_web_deployed().await;
    let pause = r#"{"spec":{"paused":true}}"#;
    crate::kubernetes::run_kubectl(
        &kubectl,
        &server,
        &[
            "-n",
            "paas-apps",
            "patch",
            "deployment",
            "web",
            "--type",
            "merge",
            "-p",
            pause,
        ],
    );

    server
        .set_secret_ok("/v1/apps/web", "openai", "OPENAI_API_KEY", "sk-2")
        .await;
    let skipped = eventually("deploy.skipped is audited", || async {
        let events = server.audit_events_of("deploy.skipped").await;
        match events.first() {
            Some(event) => Ok(event.clone()),
            None => Err("not yet".to_owned()),
        }
    })
    .await;
    assert_eq!(skipped["app_id"], "web");
    assert_eq!(skipped["actor"], "system:auto-redeploy");
    assert_eq!(skipped["data"]["reason"], "deployment_paused");
    drained(&server, &["web"]).await;
    assert_eq!(
        by_trigger(&deploys(&server, "web").await, "secret_change"),
        0
    );
    assert_eq!(
        secret_values(&server, "web").unwrap()["OPENAI_API_KEY"],
        "sk-1"
    );
}
