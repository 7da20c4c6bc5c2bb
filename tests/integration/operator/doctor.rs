//! `exsec doctor APP`: all ok on a healthy app, and each troubleshooting
//! row reported in a scenario built to trigger it.

use serde_json::Value;

use super::{admin, admin_run, edit_manifest, exsec, register_web, seed_acme_web};
use crate::server::{Options, TestServer};

/// `exsec doctor APP -o json` as the admin: the checks by name.
async fn doctor(server: &TestServer, app: &str) -> (i32, Vec<(String, String, String)>) {
    let run = admin(server, &["doctor", app, "-o", "json"], None).await;
    let report = run.json();
    let checks = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["check"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
                c["detail"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (run.code, checks)
}

fn row<'a>(checks: &'a [(String, String, String)], name: &str) -> (&'a str, &'a str) {
    checks
        .iter()
        .find(|(n, _, _)| n == name)
        .map(|(_, status, detail)| (status.as_str(), detail.as_str()))
        .unwrap_or_else(|| panic!("no check {name}: {checks:?}"))
}

/// The detail of check `name`, which must report a problem.
#[track_caller]
fn problem<'a>(checks: &'a [(String, String, String)], name: &str) -> &'a str {
    let (status, detail) = row(checks, name);
    assert_eq!(status, "problem", "{name}: {detail}");
    detail
}

/// Asserts a check's detail says `text`.
#[track_caller]
fn says(detail: &str, text: &str) {
    assert!(detail.contains(text), "{text:?} not in {detail:?}");
}

async fn set(server: &TestServer, scope: &[&str], key: &str, value: &str) {
    let mut args = vec!["secrets", "set"];
    args.extend_from_slice(scope);
    args.extend_from_slice(&["openai", key]);
    admin(server, &args, Some(value)).await.expect(0);
}

async fn deploy(server: &TestServer) {
    admin_run(server, "deploy web --image nginx:1.27", None)
        .await
        .expect(0);
}

#[tokio::test]
async fn a_healthy_app_passes_every_check() {
    let server = TestServer::start().await;
    seed_acme_web(&server).await;
    set(&server, &["--tenant", "acme"], "OPENAI_API_KEY", "sk-1").await;
    deploy(&server).await;

    let human = admin_run(&server, "doctor web", None).await;
    human.expect(0);
    assert!(
        human.stdout.starts_with("doctor: app web (tenant acme)"),
        "{}",
        human.stdout
    );
    assert!(
        human.stdout.trim_end().ends_with("all checks passed"),
        "{}",
        human.stdout
    );
    let (code, checks) = doctor(&server, "web").await;
    assert_eq!(code, 0);
    for (name, status, detail) in &checks {
        // The manifests target cannot report rollouts.
        let expected = if name == "rollout" { "skipped" } else { "ok" };
        assert_eq!(status, expected, "{name}: {detail}");
    }
    assert_eq!(checks.len(), 13);
    server.stop().await;
}

#[tokio::test]
async fn no_secrets_and_never_deployed_are_problems() {
    let server = TestServer::start().await;
    seed_acme_web(&server).await;
    let (code, checks) = doctor(&server, "web").await;
    assert_eq!(code, 6);
    assert_eq!(row(&checks, "secrets").0, "problem");
    assert_eq!(row(&checks, "envFrom").0, "problem", "no Deployment yet");
    let human = admin_run(&server, "doctor web", None).await;
    human.expect(6);
    human.stdout_has("fix: exsec secrets set --tenant acme PROVIDER KEY");
    human.stderr_has("doctor found");

    set(&server, &["--tenant", "acme"], "OPENAI_API_KEY", "sk-1").await;
    let (_, checks) = doctor(&server, "web").await;
    assert_eq!(row(&checks, "secrets").0, "ok");
    assert_eq!(
        row(&checks, "redeploy"),
        ("problem", "no deploy has injected the app's secrets yet")
    );
    assert_eq!(row(&checks, "cluster secret").0, "problem");
    server.stop().await;
}

#[tokio::test]
async fn a_change_after_the_last_deploy_asks_for_a_redeploy() {
    let server = TestServer::start().await;
    seed_acme_web(&server).await;
    set(&server, &["--tenant", "acme"], "OPENAI_API_KEY", "sk-1").await;
    set(&server, &["--tenant", "acme"], "OLD_KEY", "sk-old").await;
    deploy(&server).await;
    set(&server, &["--tenant", "acme"], "OPENAI_API_KEY", "sk-2").await;
    admin_run(&server, "secrets rm --tenant acme openai OLD_KEY", None)
        .await
        .expect(0);

    let (code, checks) = doctor(&server, "web").await;
    assert_eq!(code, 6);
    let detail = problem(&checks, "redeploy");
    says(detail, "OPENAI_API_KEY changed after deploy");
    says(detail, "OLD_KEY removed after deploy");
    let detail = problem(&checks, "cluster secret");
    says(detail, "holds OLD_KEY which the app no longer has");
    let human = admin_run(&server, "doctor web", None).await;
    human.stdout_has("fix: exsec deploy web --image nginx:1.27");

    deploy(&server).await;
    let (code, _) = doctor(&server, "web").await;
    assert_eq!(code, 0);
    server.stop().await;
}

#[tokio::test]
async fn a_secret_missing_keys_or_an_unreferenced_secret_in_the_cluster_is_found() {
    let server = TestServer::start().await;
    seed_acme_web(&server).await;
    set(&server, &["--tenant", "acme"], "OPENAI_API_KEY", "sk-1").await;
    set(&server, &["--tenant", "acme"], "OTHER_KEY", "sk-2").await;
    deploy(&server).await;

    // Someone edits the Secret by hand and drops a key.
    edit_manifest(&server, "web", |documents| {
        let secret = documents
            .iter_mut()
            .find(|d| d["kind"] == "Secret")
            .unwrap();
        secret["data"].as_object_mut().unwrap().remove("OTHER_KEY");
    });
    let (code, checks) = doctor(&server, "web").await;
    assert_eq!(code, 6);
    let detail = problem(&checks, "cluster secret");
    says(detail, "lacks OTHER_KEY");
    assert_eq!(row(&checks, "envFrom").0, "ok");

    // The Secret disappears, and the Deployment no longer reads it.
    edit_manifest(&server, "web", |documents| {
        documents.retain(|d| d["kind"] != "Secret");
        let deployment = &mut documents[0];
        deployment["spec"]["template"]["spec"]["containers"][0]
            .as_object_mut()
            .unwrap()
            .remove("envFrom");
    });
    let (_, checks) = doctor(&server, "web").await;
    let detail = problem(&checks, "cluster secret");
    says(detail, "does not exist in the cluster");
    let detail = problem(&checks, "envFrom");
    says(detail, "does not read Secret app-web-external-secrets");
    server.stop().await;
}

#[tokio::test]
async fn an_app_override_shadowing_a_tenant_default_is_reported() {
    let server = TestServer::start().await;
    seed_acme_web(&server).await;
    set(
        &server,
        &["--tenant", "acme"],
        "OPENAI_API_KEY",
        "sk-tenant",
    )
    .await;
    set(&server, &["--app", "web"], "OPENAI_API_KEY", "sk-app").await;
    deploy(&server).await;
    let (code, checks) = doctor(&server, "web").await;
    // A warning, not a failure: overrides are often intended.
    assert_eq!(code, 0);
    let (status, detail) = row(&checks, "overrides");
    assert_eq!(status, "warning");
    says(
        detail,
        "the app's own value of OPENAI_API_KEY wins over tenant acme's default",
    );
    let human = admin_run(&server, "doctor web", None).await;
    human.stdout_has("exsec secrets verify --app web openai OPENAI_API_KEY");
    server.stop().await;
}

#[tokio::test]
async fn a_missing_required_env_var_is_a_problem() {
    let server = TestServer::start().await;
    admin_run(&server, "tenants create acme", None)
        .await
        .expect(0);
    register_web(&server, &["OPENAI_API_KEY", "DATABASE_URL"])
        .await
        .expect(0);
    set(&server, &["--app", "web"], "OPENAI_API_KEY", "sk-1").await;
    deploy(&server).await;
    let (code, checks) = doctor(&server, "web").await;
    assert_eq!(code, 6);
    let detail = problem(&checks, "required env");
    says(detail, "requires DATABASE_URL");
    says(detail, "missing_required_env");
    server.stop().await;
}

#[tokio::test]
async fn master_key_problems_and_a_tenant_token_are_reported() {
    // No key at all: degraded.
    let server = TestServer::start_with(Options::without_key()).await;
    seed_acme_web(&server).await;
    let (code, checks) = doctor(&server, "web").await;
    assert_eq!(code, 6);
    let detail = problem(&checks, "master key");
    says(detail, "no master key is loaded");
    let token = server.mint("acme").await;
    let as_tenant = exsec(
        Some(&server),
        Some(token.trim()),
        &["doctor", "web", "-o", "json"],
        None,
    )
    .await;
    let report: Value = as_tenant.json();
    let master = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "master key")
        .unwrap();
    assert_eq!(master["status"], "skipped");
    assert!(master["detail"].as_str().unwrap().contains("admin token"));
    let dir = server.stop().await;

    // A key that sealed records goes missing: records wait for it.
    exsec::crypto::generate_key_file(&dir.path().join("keys.d"), std::time::SystemTime::now())
        .unwrap();
    let server = TestServer::restart(dir).await;
    set(&server, &["--tenant", "acme"], "OPENAI_API_KEY", "sk-1").await;
    deploy(&server).await;
    let keys = server.path("keys.d");
    let old: Vec<_> = std::fs::read_dir(&keys)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let dir = server.stop().await;
    for path in old {
        std::fs::remove_file(path).unwrap();
    }
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    // A later time: a new key under the lost key's id would be refused.
    exsec::crypto::generate_key_file(&dir.path().join("keys.d"), later).unwrap();
    let server = TestServer::restart(dir).await;
    deploy(&server).await;
    let (code, checks) = doctor(&server, "web").await;
    assert_eq!(code, 6);
    let detail = problem(&checks, "master key");
    says(detail, "records are sealed under keys that are not loaded");
    let detail = problem(&checks, "last deploy");
    says(detail, "undecryptable_values");
    server.stop().await;
}
