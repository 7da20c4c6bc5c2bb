//! Secret history, restore and rollback (SPEC §11.3, issue 16) over
//! loopback against a real store: versions are listed without values, a
//! restore is a new version, and a rollback applies exactly the secret
//! versions an earlier deploy injected — or nothing, when one was pruned.

use serde_json::{Value, json};

use crate::kubernetes::{deployment, secret_values};
use crate::server::{Answer, Options, TestServer, values};

const SCOPE: &str = "/v1/apps/web";
const VERSIONS: &str = "/v1/apps/web/external-secrets/openai/OPENAI_API_KEY/versions";

fn restore_path(version: u64) -> String {
    format!("{VERSIONS}/{version}/restore")
}

async fn on_kubernetes(secret_history: u32) -> TestServer {
    let server = TestServer::start_with(Options {
        secret_history,
        ..Options::kubernetes()
    })
    .await;
    server.seed("acme", &["web"]).await;
    server
}

async fn deploy(server: &TestServer, body: Value) -> Value {
    let answer = server.deploy("web", body).await;
    assert_eq!(answer.status, 201, "{}", answer.text());
    answer.json()
}

async fn rollback(server: &TestServer, deploy_id: &Value, dry_run: bool) -> Answer {
    let path = if dry_run {
        "/v1/apps/web/deploys?dry_run=true"
    } else {
        "/v1/apps/web/deploys"
    };
    let body = json!({ "rollback_to": deploy_id }).to_string();
    server.admin("POST", path, Some(&body)).await
}

async fn pinned_to(server: &TestServer) -> Value {
    server.admin("GET", "/v1/apps/web", None).await.json()["pinned_to"].clone()
}

#[tokio::test]
async fn versions_are_listed_without_values_and_a_restore_is_a_new_version() {
    let server = TestServer::start().await;
    server.seed("acme", &["web"]).await;
    for value in ["sk-value-one", "sk-value-two", "sk-value-three"] {
        server
            .set_secret_ok(SCOPE, "openai", "OPENAI_API_KEY", value)
            .await;
    }
    let deleted = server
        .delete_secret("/v1/apps/web", "openai", "OPENAI_API_KEY")
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text());

    let listed = server.admin("GET", VERSIONS, None).await;
    assert_eq!(listed.status, 200, "{}", listed.text());
    let text = listed.text();
    assert!(!text.contains("sk-value"), "a value in the answer: {text}");
    let versions = listed.json()["versions"].as_array().unwrap().clone();
    let numbers: Vec<u64> = versions
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [4, 3, 2, 1], "newest first: {text}");
    assert_eq!(versions[0]["tombstone"], true);
    assert!(versions[0]["key_id"].is_null());
    for kept in &versions[1..] {
        assert_eq!(kept["tombstone"], false, "{kept}");
        assert_eq!(kept["actor"], "admin", "{kept}");
        assert!(kept["key_id"].is_string(), "{kept}");
    }

    // A tombstone has no value; an unknown version is not found.
    server
        .admin("POST", &restore_path(4), None)
        .await
        .assert_problem(409, "version_is_tombstone");
    server
        .admin("POST", &restore_path(99), None)
        .await
        .assert_problem(404, "version_not_found");
    server
        .admin("POST", &format!("{VERSIONS}/0/restore"), None)
        .await
        .assert_problem(400, "invalid_version");

    let restored = server.admin("POST", &restore_path(2), None).await;
    assert_eq!(
        restored.status,
        201,
        "the deleted key is back: {}",
        restored.text()
    );
    assert_eq!(restored.json()["version"], 5);
    assert!(!restored.text().contains("sk-value"));

    // The value of v5 is v2's: what a deploy injects.
    server.deploy_ok("web").await;
    server.assert_manifest_values("web", &[("OPENAI_API_KEY", "sk-value-two")]);
    let restored = server.the_audit_event("external_secret.restored").await;
    assert_eq!(restored["data"]["restored_version"], 2);
    assert_eq!(restored["data"]["version"], 5);
    assert!(!restored.to_string().contains("sk-value"));

    // verify reaches every kept version with a value.
    let server = &server;
    let verify = |version: u64, value: &str| {
        let path =
            format!("/v1/apps/web/external-secrets/openai/OPENAI_API_KEY/verify?version={version}");
        let body = json!({ "value": value }).to_string();
        async move { server.admin("POST", &path, Some(&body)).await }
    };
    assert_eq!(verify(1, "sk-value-one").await.json()["match"], true);
    assert_eq!(verify(3, "sk-value-one").await.json()["match"], false);
    verify(4, "sk-value-one")
        .await
        .assert_problem(409, "version_is_tombstone");
    verify(0, "x").await.assert_problem(400, "invalid_query");
}

#[tokio::test]
async fn a_rollback_applies_exactly_the_earlier_set_and_pins_the_app() {
    let server = on_kubernetes(10).await;
    server
        .set_secrets_ok(&[
            ("/v1/tenants/acme", "openai", "OPENAI_API_KEY", "sk-a"),
            (SCOPE, "stripe", "STRIPE_KEY", "rk-a"),
        ])
        .await;
    let a = deploy(
        &server,
        json!({"image_ref": "nginx:1.27", "replicas": 2, "port": 8080}),
    )
    .await;
    let a_values = values(&[("OPENAI_API_KEY", "sk-a"), ("STRIPE_KEY", "rk-a")]);
    assert_eq!(secret_values(&server, "web").unwrap(), a_values);

    // Two values change and a third key appears; deploy B runs them.
    server
        .set_secrets_ok(&[
            ("/v1/tenants/acme", "openai", "OPENAI_API_KEY", "sk-b"),
            (SCOPE, "stripe", "STRIPE_KEY", "rk-b"),
            (SCOPE, "sentry", "SENTRY_DSN", "dsn-b"),
        ])
        .await;
    let b = deploy(&server, json!({"image_ref": "nginx:1.28"})).await;
    assert_ne!(b["secrets_hash"], a["secrets_hash"]);
    assert_eq!(pinned_to(&server).await, Value::Null);

    // A dry run names what would change and applies nothing.
    let seq = server.audit_seq().await;
    let dry = rollback(&server, &a["deploy_id"], true).await;
    assert_eq!(dry.status, 200, "{}", dry.text());
    let injection = &dry.json()["external_secrets"];
    assert_eq!(injection["removed"], json!(["SENTRY_DSN"]), "{injection}");
    assert_eq!(
        injection["changed"],
        json!(["OPENAI_API_KEY", "STRIPE_KEY"]),
        "{injection}"
    );
    assert!(!dry.text().contains("sk-a") && !dry.text().contains("rk-a"));
    assert_eq!(server.audit_seq().await, seq, "a dry run is not audited");
    assert_eq!(pinned_to(&server).await, Value::Null);

    let back = rollback(&server, &a["deploy_id"], false).await;
    assert_eq!(back.status, 201, "{}", back.text());
    let back = back.json();
    assert_eq!(back["trigger"], "rollback");
    assert_eq!(
        back["secrets_hash"], a["secrets_hash"],
        "A's set, so A's hash"
    );
    assert_eq!(secret_values(&server, "web").unwrap(), a_values);
    let live = deployment(&server, "web").unwrap();
    let container = &live["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "nginx:1.27");
    assert_eq!(live["spec"]["replicas"], 2);
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    assert_eq!(pinned_to(&server).await, a["deploy_id"]);
    let effective = server
        .admin("GET", "/v1/apps/web/external-secrets/effective", None)
        .await
        .json();
    assert_eq!(effective["pinned_to"], a["deploy_id"], "{effective}");
    let created = server.audit_events_of("deploy.created").await;
    assert_eq!(
        created.last().unwrap()["data"]["rollback_to"],
        a["deploy_id"]
    );

    // Unpinning changes no value; a normal deploy runs the current set.
    let unpinned = server.admin("POST", "/v1/apps/web/unpin", None).await;
    assert_eq!(unpinned.status, 200, "{}", unpinned.text());
    assert_eq!(unpinned.json()["pinned_to"], Value::Null);
    assert_eq!(server.audit_count("app.unpinned").await, 1);
    assert_eq!(secret_values(&server, "web").unwrap(), a_values);
    assert_eq!(rollback(&server, &a["deploy_id"], false).await.status, 201);
    assert_eq!(pinned_to(&server).await, a["deploy_id"]);
    deploy(&server, json!({"image_ref": "nginx:1.28"})).await;
    assert_eq!(pinned_to(&server).await, Value::Null);
    assert_eq!(
        secret_values(&server, "web").unwrap(),
        values(&[
            ("OPENAI_API_KEY", "sk-b"),
            ("SENTRY_DSN", "dsn-b"),
            ("STRIPE_KEY", "rk-b")
        ])
    );

    // Refusals: an unknown deploy, a body that names another workload.
    rollback(&server, &json!("dep_999999"), false)
        .await
        .assert_problem(404, "deploy_not_found");
    let mixed = json!({ "rollback_to": a["deploy_id"], "image_ref": "nginx:2" }).to_string();
    server
        .admin("POST", "/v1/apps/web/deploys", Some(&mixed))
        .await
        .assert_problem(400, "invalid_rollback");
    server
        .admin("POST", "/v1/apps/web/deploys", Some("{}"))
        .await
        .assert_problem(400, "missing_field");
}

#[tokio::test]
async fn a_pruned_version_refuses_the_rollback_and_leaves_the_cluster_alone() {
    let server = on_kubernetes(2).await;
    server
        .set_secrets_ok(&[
            (SCOPE, "stripe", "STRIPE_KEY", "rk-1"),
            (SCOPE, "openai", "OPENAI_API_KEY", "sk-1"),
        ])
        .await;
    let a = deploy(&server, json!({"image_ref": "nginx:1.27"})).await;
    // Two more versions of STRIPE_KEY: with a history of 2, v1 is pruned.
    server
        .set_secrets_ok(&[
            (SCOPE, "stripe", "STRIPE_KEY", "rk-2"),
            (SCOPE, "stripe", "STRIPE_KEY", "rk-3"),
        ])
        .await;
    let kept = server
        .admin(
            "GET",
            "/v1/apps/web/external-secrets/stripe/STRIPE_KEY/versions",
            None,
        )
        .await
        .json();
    let numbers: Vec<u64> = kept["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [3, 2]);
    deploy(&server, json!({"image_ref": "nginx:1.28"})).await;
    let cluster_before = (
        secret_values(&server, "web"),
        deployment(&server, "web").unwrap()["spec"].clone(),
    );
    let deploys_before = server
        .admin("GET", "/v1/apps/web/deploys", None)
        .await
        .text();

    for dry_run in [true, false] {
        let refused = rollback(&server, &a["deploy_id"], dry_run).await;
        let problem = refused.assert_problem(409, "snapshot_unavailable");
        assert_eq!(problem["key"], "STRIPE_KEY", "{problem}");
        assert_eq!(problem["version"], 1, "{problem}");
        assert_eq!(problem["scope"], "app", "{problem}");
        assert!(problem["detail"].as_str().unwrap().contains("STRIPE_KEY"));
    }
    let cluster_after = (
        secret_values(&server, "web"),
        deployment(&server, "web").unwrap()["spec"].clone(),
    );
    assert_eq!(cluster_after, cluster_before, "the cluster was touched");
    assert_eq!(
        server
            .admin("GET", "/v1/apps/web/deploys", None)
            .await
            .text(),
        deploys_before,
        "a deploy was recorded"
    );
    assert_eq!(pinned_to(&server).await, Value::Null);
}

/// `DELETE …?purge=true`: the secret goes with every kept value; only a
/// tombstone stays, so the numbers go on after it and a deploy that used a
/// dropped version can no longer be rolled back to.
#[tokio::test]
async fn a_purge_drops_every_kept_value_and_refuses_a_rollback_to_one() {
    let server = on_kubernetes(10).await;
    server
        .set_secret_ok(SCOPE, "openai", "OPENAI_API_KEY", "sk-leaked-1")
        .await;
    let a = deploy(&server, json!({"image_ref": "nginx:1.27"})).await;
    for value in ["sk-leaked-2", "sk-leaked-3"] {
        server
            .set_secret_ok(SCOPE, "openai", "OPENAI_API_KEY", value)
            .await;
    }
    let purge = format!("{SCOPE}/external-secrets/openai/OPENAI_API_KEY?purge=true");
    let purged = server.admin("DELETE", &purge, None).await;
    assert_eq!(purged.status, 204, "{}", purged.text());

    let listed = server.admin("GET", VERSIONS, None).await.json();
    let versions = listed["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1, "only the tombstone stays: {listed}");
    assert_eq!(versions[0]["version"], 4, "{listed}");
    assert_eq!(versions[0]["tombstone"], true, "{listed}");
    let event = server.the_audit_event("external_secret.purged").await;
    assert_eq!(event["data"]["values_removed"], 3, "{event}");
    assert_eq!(event["data"]["key"], "OPENAI_API_KEY", "{event}");
    assert!(!event.to_string().contains("sk-leaked"), "{event}");
    assert_eq!(server.audit_count("external_secret.deleted").await, 1);

    for version in 1..=3 {
        server
            .admin("POST", &restore_path(version), None)
            .await
            .assert_problem(404, "version_not_found");
    }
    let refused = rollback(&server, &a["deploy_id"], false).await;
    let problem = refused.assert_problem(409, "snapshot_unavailable");
    assert_eq!(problem["version"], 1, "{problem}");

    // A new value is version 5: no number is handed out twice.
    let written = server
        .set_secret(SCOPE, "openai", "OPENAI_API_KEY", "sk-fresh")
        .await;
    assert_eq!(written.status, 201, "{}", written.text());
    assert_eq!(written.json()["version"], 5);

    // Purging a secret already deleted drops what its history kept; a
    // secret that never existed is not found.
    let deleted = server
        .delete_secret(SCOPE, "openai", "OPENAI_API_KEY")
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text());
    let purged = server.admin("DELETE", &purge, None).await;
    assert_eq!(purged.status, 204, "{}", purged.text());
    let listed = server.admin("GET", VERSIONS, None).await.json();
    assert_eq!(listed["versions"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(server.audit_count("external_secret.purged").await, 2);
    server
        .admin(
            "DELETE",
            &format!("{SCOPE}/external-secrets/openai/NEVER_SET?purge=true"),
            None,
        )
        .await
        .assert_problem(404, "secret_not_found");
}
