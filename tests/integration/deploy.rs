//! The deploy contract (SPEC §4) end to end over HTTP with the manifests
//! target: the seed's flow and every branch of best-effort injection.

use serde_json::{Value, json};

use crate::server::{Options, TestServer};

fn warning_codes(body: &Value) -> Vec<String> {
    body["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].as_str().unwrap().to_owned())
        .collect()
}

/// The seed document's flow: a tenant default and an app override for the
/// same provider+key, deploy with tenant_id, the Secret holds the merged
/// set with the app's value winning, the Deployment reads it through
/// `envFrom` with `optional: true`, and `external_secret.injected` carries
/// the app id and the key count.
#[tokio::test]
async fn the_seed_flow_injects_the_merged_set_with_the_app_winning() {
    let server = TestServer::start().await;
    server.seed("acme", &["web"]).await;
    assert_eq!(
        server
            .set_secret("/v1/tenants/acme", "openai", "OPENAI_API_KEY", "sk-tenant")
            .await
            .status,
        201
    );
    assert_eq!(
        server
            .set_secret("/v1/tenants/acme", "stripe", "STRIPE_KEY", "rk-tenant")
            .await
            .status,
        201
    );
    assert_eq!(
        server
            .set_secret("/v1/apps/web", "openai", "OPENAI_API_KEY", "sk-app")
            .await
            .status,
        201
    );

    let answer = server.deploy("web", json!({"tenant_id": "acme", "app_id": "web", "image_ref": "nginx:1.27", "replicas": 2, "port": 8080})).await;
    assert_eq!(answer.status, 201, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["status"], "succeeded");
    assert_eq!(body["external_secrets"]["status"], "injected");
    assert_eq!(
        body["external_secrets"]["secret_name"],
        "app-web-external-secrets"
    );
    assert_eq!(body["external_secrets"]["key_count"], 2);
    assert_eq!(
        body["external_secrets"]["keys"],
        json!(["OPENAI_API_KEY", "STRIPE_KEY"])
    );
    assert!(warning_codes(&body).is_empty(), "{body}");

    server.assert_manifest_values(
        "web",
        &[("OPENAI_API_KEY", "sk-app"), ("STRIPE_KEY", "rk-tenant")],
    );
    let secret = server.manifest_secret("web").unwrap();
    assert_eq!(secret["type"], "Opaque");
    assert!(secret.get("stringData").is_none());
    assert_eq!(
        secret["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "exsec"
    );
    assert_eq!(secret["metadata"]["labels"]["exsec.io/tenant-id"], "acme");

    let deployment = server.manifest_deployment("web").unwrap();
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 2);
    assert_eq!(
        spec["selector"]["matchLabels"],
        json!({"app.kubernetes.io/name": "web"})
    );
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    let container = &pod["containers"][0];
    assert_eq!(container["name"], "app");
    assert_eq!(container["image"], "nginx:1.27");
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    assert_eq!(
        container["envFrom"],
        json!([{"secretRef": {"name": "app-web-external-secrets", "optional": true}}])
    );
    // The secrets hash on the pod template (a deploy id there would roll
    // the pods at every deploy); no deploy id in the file at all, so a
    // GitOps diff of a no-op deploy is empty.
    assert!(
        deployment["metadata"].get("annotations").is_none(),
        "{deployment}"
    );
    assert_eq!(
        spec["template"]["metadata"]["annotations"],
        json!({"exsec.io/secrets-hash": body["secrets_hash"]})
    );
    assert_eq!(body["rollout"], "restarted", "{body}");
    assert_eq!(body["trigger"], "api", "{body}");

    let injected = server.the_audit_event("external_secret.injected").await;
    assert_eq!(injected["app_id"], "web");
    assert_eq!(injected["tenant_id"], "acme");
    assert_eq!(injected["data"]["key_count"], 2);
    assert_eq!(injected["data"]["secret_name"], "app-web-external-secrets");
    assert_eq!(injected["data"]["deploy_id"], body["deploy_id"]);
    assert_eq!(server.audit_count("deploy.created").await, 1);
    server.stop().await;
}

/// No tenant_id: exsec knows the app's tenant, injects, and says so.
#[tokio::test]
async fn a_missing_tenant_id_is_inferred_with_a_warning() {
    let server = TestServer::start().await;
    server.seed("acme", &["web"]).await;
    server
        .set_secret_ok("/v1/tenants/acme", "openai", "OPENAI_API_KEY", "sk-1")
        .await;
    for body in [
        json!({"image_ref": "nginx"}),
        json!({"image_ref": "nginx", "tenant_id": ""}),
    ] {
        let answer = server.deploy("web", body).await;
        assert_eq!(answer.status, 201, "{}", answer.text());
        let body = answer.json();
        assert_eq!(body["tenant_id"], "acme");
        assert_eq!(warning_codes(&body), ["tenant_id_inferred"]);
        assert_eq!(body["external_secrets"]["status"], "injected");
    }
    server.stop().await;
}

/// Another tenant's id: refused before anything is applied or recorded.
#[tokio::test]
async fn another_tenants_id_is_refused_and_nothing_is_applied() {
    let server = TestServer::start().await;
    server.seed("acme", &["web"]).await;
    server.seed("evil", &[]).await;
    server
        .set_secret_ok("/v1/tenants/evil", "openai", "OPENAI_API_KEY", "sk-evil")
        .await;
    let before = server.audit_seq().await;
    let answer = server
        .deploy("web", json!({"tenant_id": "evil", "image_ref": "nginx"}))
        .await;
    assert_eq!(answer.status, 422);
    assert_eq!(answer.code(), "tenant_mismatch");
    assert!(server.manifest("web").is_none());
    assert_eq!(server.audit_seq().await, before);
    let history = server
        .admin("GET", "/v1/apps/web/deploys", None)
        .await
        .json();
    assert_eq!(history["deploys"], json!([]));
    server.stop().await;
}

/// No master key at all: the daemon serves, writes answer 503, deploys
/// succeed with injection skipped and never touch the existing Secret.
#[tokio::test]
async fn without_a_master_key_deploys_skip_injection_and_keep_the_secret() {
    let server = TestServer::start().await;
    server
        .web_deployed_with("/v1/tenants/acme", "openai", "OPENAI_API_KEY", "sk-live")
        .await;
    let before = std::fs::read(server.path("manifests/web.yaml")).unwrap();

    let dir = server.stop().await;
    std::fs::remove_dir_all(dir.path().join("keys.d")).unwrap();
    let server = TestServer::restart(dir).await;
    let ready = server.call("GET", "/readyz", None, None).await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["keyring"]["degraded"], true);
    let write = server
        .set_secret("/v1/tenants/acme", "openai", "OTHER", "x")
        .await;
    assert_eq!(write.status, 503);
    assert_eq!(write.code(), "master_key_unavailable");

    let answer = server.deploy("web", json!({"image_ref": "nginx:2"})).await;
    assert_eq!(answer.status, 201, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["external_secrets"]["status"], "skipped");
    assert_eq!(body["external_secrets"]["reason"], "master_key_unavailable");
    let after = std::fs::read_to_string(server.path("manifests/web.yaml")).unwrap();
    let secret_before = secret_document(&String::from_utf8(before).unwrap());
    assert_eq!(
        secret_document(&after),
        secret_before,
        "the Secret must be untouched"
    );
    assert!(after.contains("nginx:2"), "the Deployment is still applied");
    let skipped = server.audit_events_of("external_secret.skipped").await;
    assert_eq!(
        skipped.last().unwrap()["data"]["reason"],
        "master_key_unavailable"
    );
    server.stop().await;
}

/// A daemon started with no key directory at all is ready (degraded).
#[tokio::test]
async fn a_daemon_without_keys_starts_degraded() {
    let server = TestServer::start_with(Options::without_key()).await;
    let ready = server.call("GET", "/readyz", None, None).await;
    assert_eq!(ready.status, 200);
    assert_eq!(
        ready.json()["keyring"],
        json!({"active": null, "keys": 0, "degraded": true})
    );
    let keys = server.admin("GET", "/v1/keys", None).await.json();
    assert_eq!(keys["degraded"], true);
    server.stop().await;
}

/// A key that records still need is gone: the deploy reports the names,
/// leaves the live Secret as it was, and the deploy itself succeeds.
#[tokio::test]
async fn unopenable_values_fail_injection_and_keep_the_secret() {
    let server = TestServer::start().await;
    server
        .web_deployed_with("/v1/apps/web", "openai", "OPENAI_API_KEY", "sk-live")
        .await;
    let before = std::fs::read_to_string(server.path("manifests/web.yaml")).unwrap();

    let dir = server.stop().await;
    let keys = dir.path().join("keys.d");
    std::fs::remove_dir_all(&keys).unwrap();
    // A later name: a new key under the old id would be refused (its
    // fingerprint differs from the one stored).
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    exsec::crypto::generate_key_file(&keys, later).unwrap();
    let server = TestServer::restart(dir).await;
    let answer = server.deploy("web", json!({"image_ref": "nginx:2"})).await;
    assert_eq!(answer.status, 201, "{}", answer.text());
    let injection = &answer.json()["external_secrets"];
    assert_eq!(injection["status"], "failed");
    assert_eq!(injection["reason"], "undecryptable_values");
    assert_eq!(injection["undecryptable"], json!(["OPENAI_API_KEY"]));
    let after = std::fs::read_to_string(server.path("manifests/web.yaml")).unwrap();
    assert_eq!(secret_document(&after), secret_document(&before));
    let failed = server
        .audit_events_of("external_secret.injection_failed")
        .await;
    assert_eq!(failed[0]["data"]["keys"], json!(["OPENAI_API_KEY"]));
    server.stop().await;
}

/// Revoked keys do not linger: one removed key disappears from the Secret,
/// and once the set is empty the Secret itself is deleted.
#[tokio::test]
async fn removed_keys_and_an_empty_set_are_removed_from_the_cluster() {
    let server = TestServer::start().await;
    server.seed("acme", &["web"]).await;
    server
        .set_secrets_ok(&[
            ("/v1/apps/web", "openai", "OPENAI_API_KEY", "sk-1"),
            ("/v1/apps/web", "stripe", "STRIPE_KEY", "rk-1"),
        ])
        .await;
    server.deploy_ok("web").await;
    assert_eq!(server.manifest_values("web").unwrap().len(), 2);

    let gone = server
        .delete_secret("/v1/apps/web", "stripe", "STRIPE_KEY")
        .await;
    assert_eq!(gone.status, 204);
    let effective = server
        .admin("GET", "/v1/apps/web/external-secrets/effective", None)
        .await
        .json();
    assert_eq!(effective["removed_since_deploy"], json!(["STRIPE_KEY"]));
    server.deploy_ok("web").await;
    let values = server.manifest_values("web").unwrap();
    assert_eq!(values.keys().collect::<Vec<_>>(), ["OPENAI_API_KEY"]);

    server
        .delete_secret("/v1/apps/web", "openai", "OPENAI_API_KEY")
        .await;
    let answer = server.deploy("web", json!({"image_ref": "nginx"})).await;
    let body = answer.json();
    assert_eq!(body["external_secrets"]["status"], "skipped");
    assert_eq!(body["external_secrets"]["reason"], "no_secrets");
    assert!(
        server.manifest_secret("web").is_none(),
        "the stale Secret must be deleted"
    );
    assert!(server.manifest_deployment("web").is_some());
    assert_eq!(server.audit_count("external_secret.removed").await, 1);
    // Nothing left to remove: skipped, not removed again.
    server.deploy("web", json!({"image_ref": "nginx"})).await;
    assert_eq!(server.audit_count("external_secret.removed").await, 1);
    server.stop().await;
}

/// `?dry_run=true` answers what would change and applies, records and
/// audits nothing.
#[tokio::test]
async fn a_dry_run_reports_changes_and_changes_nothing() {
    let server = TestServer::start().await;
    server.seed("acme", &["web"]).await;
    server
        .set_secrets_ok(&[
            ("/v1/apps/web", "a", "KEEP", "same"),
            ("/v1/apps/web", "b", "CHANGE", "old"),
            ("/v1/apps/web", "c", "DROP", "x"),
        ])
        .await;
    server.deploy_ok("web").await;
    server
        .set_secret_ok("/v1/apps/web", "b", "CHANGE", "new")
        .await;
    server.delete_secret("/v1/apps/web", "c", "DROP").await;
    server.set_secret_ok("/v1/apps/web", "d", "ADD", "y").await;
    let file_before = std::fs::read(server.path("manifests/web.yaml")).unwrap();
    let seq_before = server.audit_seq().await;

    let answer = server
        .admin(
            "POST",
            "/v1/apps/web/deploys?dry_run=true",
            Some(&json!({"image_ref": "nginx:2"}).to_string()),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["dry_run"], true);
    let injection = &body["external_secrets"];
    assert_eq!(injection["status"], "injected");
    assert_eq!(injection["added"], json!(["ADD"]));
    assert_eq!(injection["removed"], json!(["DROP"]));
    assert_eq!(injection["changed"], json!(["CHANGE"]));
    assert_eq!(injection["unchanged"], json!(["KEEP"]));
    assert!(!answer.text().contains("new") && !answer.text().contains("old"));
    assert_eq!(
        std::fs::read(server.path("manifests/web.yaml")).unwrap(),
        file_before
    );
    assert_eq!(server.audit_seq().await, seq_before);
    let history = server
        .admin("GET", "/v1/apps/web/deploys", None)
        .await
        .json();
    assert_eq!(history["deploys"].as_array().unwrap().len(), 1);
    server.stop().await;
}

/// `required_env` makes a gap visible that `optional: true` would hide.
#[tokio::test]
async fn missing_required_env_is_a_warning() {
    let server = TestServer::start().await;
    server.seed("acme", &[]).await;
    let app = server
        .admin(
            "PUT",
            "/v1/apps/web",
            Some(r#"{"tenant_id":"acme","required_env":["DATABASE_URL","OPENAI_API_KEY"]}"#),
        )
        .await;
    assert_eq!(app.status, 201);
    server
        .set_secret_ok("/v1/tenants/acme", "openai", "OPENAI_API_KEY", "sk")
        .await;
    let body = server
        .deploy("web", json!({"tenant_id": "acme", "image_ref": "nginx"}))
        .await
        .json();
    assert_eq!(warning_codes(&body), ["missing_required_env"]);
    assert!(
        body["warnings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("DATABASE_URL")
    );
    assert!(
        !body["warnings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("OPENAI_API_KEY")
    );
    server.stop().await;
}

/// A retry after a lost answer returns the original deploy; the same key
/// with another body is refused.
#[tokio::test]
async fn an_idempotency_key_replays_the_original_deploy() {
    let server = TestServer::start().await;
    server.seed("acme", &["web"]).await;
    server
        .set_secret_ok("/v1/apps/web", "openai", "OPENAI_API_KEY", "sk")
        .await;
    let body = json!({"image_ref": "nginx:1"}).to_string();
    let headers = [("idempotency-key", "retry-42")];
    let first = server
        .call_with(
            "POST",
            "/v1/apps/web/deploys",
            Some(&server.admin_token),
            Some(&body),
            &headers,
        )
        .await;
    assert_eq!(first.status, 201);
    let spaced = serde_json::to_string_pretty(&json!({ "image_ref": "nginx:1" })).unwrap();
    let again = server
        .call_with(
            "POST",
            "/v1/apps/web/deploys",
            Some(&server.admin_token),
            Some(&spaced),
            &headers,
        )
        .await;
    assert_eq!(again.status, 201);
    assert_eq!(again.json(), first.json());
    let history = server
        .admin("GET", "/v1/apps/web/deploys", None)
        .await
        .json();
    assert_eq!(history["deploys"].as_array().unwrap().len(), 1);
    assert_eq!(server.audit_count("deploy.created").await, 1);

    let other = json!({"image_ref": "nginx:2"}).to_string();
    let reused = server
        .call_with(
            "POST",
            "/v1/apps/web/deploys",
            Some(&server.admin_token),
            Some(&other),
            &headers,
        )
        .await;
    assert_eq!(reused.status, 422);
    assert_eq!(reused.code(), "idempotency_key_reused");
    server.stop().await;
}

/// Concurrent deploys of one app are serialised: all succeed, each is
/// recorded once, and the file ends with the last one's deploy id.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deploys_of_one_app_are_serialised() {
    let server = std::sync::Arc::new(TestServer::start().await);
    server.seed("acme", &["web"]).await;
    server
        .set_secret_ok("/v1/apps/web", "openai", "OPENAI_API_KEY", "sk")
        .await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            server
                .deploy("web", json!({"image_ref": format!("nginx:{i}")}))
                .await
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        let answer = task.await.unwrap();
        assert_eq!(answer.status, 201, "{}", answer.text());
        ids.push(answer.json()["deploy_id"].as_str().unwrap().to_owned());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 8);
    let history = server
        .admin("GET", "/v1/apps/web/deploys", None)
        .await
        .json();
    let newest = history["deploys"][0]["deploy_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(history["deploys"].as_array().unwrap().len(), 8);
    let deployment = server.manifest_deployment("web").unwrap();
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        history["deploys"][0]["image_ref"],
        "the file holds the newest deploy ({newest})"
    );
}

/// The Secret document of a manifest file's text.
fn secret_document(text: &str) -> String {
    text.split("\n---\n")
        .find(|d| d.contains("\"kind\": \"Secret\""))
        .unwrap_or_default()
        .to_owned()
}

/// A layout past the size a deploy opens in place (512 values) is opened
/// with the async worker handed over (`block_in_place`) on a
/// multi-threaded runtime, as the daemon runs, and in place on a
/// single-threaded one (which has no worker to hand over, and where
/// `block_in_place` would panic): either way every value lands in the
/// Secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_scope_of_hundreds_of_keys_is_injected_whole() {
    hundreds_of_tenant_keys_are_injected().await;
}

#[tokio::test]
async fn a_tenant_scope_of_hundreds_of_keys_is_injected_whole_on_one_thread() {
    hundreds_of_tenant_keys_are_injected().await;
}

async fn hundreds_of_tenant_keys_are_injected() {
    let server = TestServer::start().await;
    server.seed("acme", &["web"]).await;
    let names: Vec<String> = (0..600).map(|i| format!("KEY_{i:04}")).collect();
    let values: Vec<String> = (0..600).map(|i| format!("value-{i}")).collect();
    let items: Vec<(&str, &str, &str)> = names
        .iter()
        .zip(&values)
        .map(|(name, value)| ("p", name.as_str(), value.as_str()))
        .collect();
    let written = server.bulk_write("/v1/tenants/acme", &items).await;
    assert_eq!(written.status, 200, "{}", written.text());

    let body = server.deploy_ok("web").await;
    assert_eq!(body["external_secrets"]["status"], "injected", "{body}");
    assert_eq!(body["external_secrets"]["key_count"], 600);
    let expected: Vec<(&str, &str)> = items
        .iter()
        .map(|&(_, name, value)| (name, value))
        .collect();
    server.assert_manifest_values("web", &expected);
}
