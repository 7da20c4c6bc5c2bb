//! Schema migrations from files written by older releases
//! (fixtures/README.md): the file is opened by this build, migrated
//! forward in one transaction, and everything in it reads back and works.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::json;

use crate::server::TestServer;

/// A directory holding a copy of `fixtures/{name}/`'s store and key, and a
/// config pointing at them (manifests target).
fn from_fixture(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.d");
    std::fs::create_dir(&keys).unwrap();
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o700)).unwrap();
    for entry in std::fs::read_dir(fixtures.join("keys.d")).unwrap() {
        let entry = entry.unwrap();
        let copy = keys.join(entry.file_name());
        std::fs::copy(entry.path(), &copy).unwrap();
        // Git keeps no 0600; exsec refuses a readable key file.
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::copy(fixtures.join("exsec.redb"), dir.path().join("exsec.redb")).unwrap();
    let config = crate::daemon::write_config(dir.path());
    std::fs::create_dir(dir.path().join("manifests")).unwrap();
    (dir, config)
}

#[tokio::test]
async fn a_schema_2_file_migrates_and_everything_in_it_works() {
    let (dir, config) = from_fixture("schema2");
    let server = TestServer::start_config(dir, &config).await;

    // Apps: the new setting off (opt-in), nothing else changed.
    let apps = server.admin("GET", "/v1/apps", None).await.json();
    let names: Vec<&str> = apps["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["app_id"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api", "shop", "web"], "{apps}");
    assert!(
        apps["apps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["auto_redeploy"] == false),
        "{apps}"
    );
    assert_eq!(
        server.admin("GET", "/v1/apps/web", None).await.json()["tenant_id"],
        "acme"
    );

    // Deploys: both of web's kept, newest first, as recorded by schema 2.
    let history = server
        .admin("GET", "/v1/apps/web/deploys", None)
        .await
        .json();
    let deploys = history["deploys"].as_array().unwrap();
    assert_eq!(deploys.len(), 2, "{history}");
    assert_eq!(deploys[0]["image_ref"], "nginx:1.28");
    assert_eq!(deploys[1]["image_ref"], "nginx:1.27");
    assert_eq!(deploys[1]["replicas"], 2);
    assert_eq!(deploys[1]["port"], 8080);
    for deploy in deploys {
        assert_eq!(deploy["status"], "succeeded", "{deploy}");
        assert_eq!(deploy["trigger"], "api", "{deploy}");
        assert_eq!(deploy["rollout"], json!(null), "{deploy}");
        assert_eq!(deploy["external_secrets"]["status"], "injected", "{deploy}");
    }

    // Secrets open with the fixture's key: a deploy injects the merged set.
    let deployed = server.deploy_ok("web").await;
    // The template changes from deploy-id to secrets-hash once.
    assert_eq!(deployed["rollout"], "restarted", "{deployed}");
    let values = server.manifest_values("web").unwrap();
    assert_eq!(
        values.get("OPENAI_API_KEY").map(String::as_str),
        Some("sk-fixture-app-override")
    );
    assert_eq!(
        values.get("STRIPE_KEY").map(String::as_str),
        Some("rk-fixture-stripe")
    );
    // Deploy ids go on after the migrated ones.
    assert_eq!(deployed["deploy_id"], "dep_000000000004", "{deployed}");
    let again = server.deploy_ok("web").await;
    assert_eq!(again["rollout"], "unchanged", "{again}");

    // The audit chain written by schema 2 still verifies, and a second
    // start finds nothing to migrate.
    let dir = server.stop().await;
    let config = dir.path().join("config.toml");
    let server = TestServer::start_config(dir, &config).await;
    // Start-up verifies what the last verification did not cover.
    let ready = server.call("GET", "/readyz", None, None).await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    assert_eq!(ready.json()["degraded"], false, "{}", ready.text());
    assert_eq!(
        ready.json()["audit"]["chain"],
        "verified",
        "{}",
        ready.text()
    );
    let beta = server
        .admin("GET", "/v1/tenants/beta/external-secrets", None)
        .await
        .json();
    assert_eq!(beta["secrets"][0]["key"], "OPENAI_API_KEY", "{beta}");
}
