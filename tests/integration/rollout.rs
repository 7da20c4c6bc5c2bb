//! Rollouts follow the secrets (SPEC §11.2), against the Kubernetes API
//! stand-in: the pod template carries the secrets hash, so a deploy rolls
//! the pods exactly when the image, the port or a value changed, or when
//! `restart: true` asks for it — and never because of a master-key
//! rotation, which re-seals values without changing them.

use std::time::Duration;

use kube_standin::{FailRule, Kind};
use serde_json::{Value, json};

use crate::rotation::{later_key, wait_for_keys};
use crate::server::{Options, TestServer};

async fn seeded() -> TestServer {
    let server = TestServer::start_with(Options::kubernetes()).await;
    server.seed("acme", &["web"]).await;
    server
        .set_secrets_ok(&[
            ("/v1/tenants/acme", "openai", "OPENAI_API_KEY", "sk-1"),
            ("/v1/apps/web", "stripe", "STRIPE_KEY", "rk-1"),
        ])
        .await;
    server
}

/// The live Deployment's pod template (as the stand-in stores it, in
/// bytes) and its `metadata.generation`.
fn live(server: &TestServer) -> (Vec<u8>, i64, Value) {
    let deployment = server
        .cluster
        .as_ref()
        .unwrap()
        .object(Kind::Deployment, "paas-apps", "web")
        .expect("a Deployment");
    let template = serde_json::to_vec(&deployment["spec"]["template"]).unwrap();
    let generation = deployment["metadata"]["generation"].as_i64().unwrap();
    (template, generation, deployment)
}

async fn deploy(server: &TestServer, body: Value) -> Value {
    let answer = server.deploy("web", body).await;
    assert_eq!(answer.status, 201, "{}", answer.text());
    answer.json()
}

#[tokio::test]
async fn an_identical_deploy_leaves_the_pod_template_and_generation_alone() {
    let server = seeded().await;
    let first = deploy(&server, json!({"image_ref": "nginx:1.27", "replicas": 2})).await;
    assert_eq!(first["rollout"], "restarted", "{first}");
    let (template, generation, _) = live(&server);

    let second = deploy(&server, json!({"image_ref": "nginx:1.27", "replicas": 2})).await;
    assert_eq!(second["rollout"], "unchanged", "{second}");
    assert_eq!(second["secrets_hash"], first["secrets_hash"]);
    let (after, after_generation, deployment) = live(&server);
    assert_eq!(
        String::from_utf8_lossy(&after),
        String::from_utf8_lossy(&template),
        "the pod template changed"
    );
    assert_eq!(after_generation, generation, "the spec changed");
    // The newest deploy is named on the Deployment itself.
    assert_eq!(
        deployment["metadata"]["annotations"]["exsec.io/deploy-id"],
        second["deploy_id"]
    );
    // Replicas are not part of the template: scaling rolls nothing.
    let scaled = deploy(&server, json!({"image_ref": "nginx:1.27", "replicas": 3})).await;
    assert_eq!(scaled["rollout"], "unchanged", "{scaled}");
    assert_eq!(live(&server).0, template);
    // A new image does.
    let upgraded = deploy(&server, json!({"image_ref": "nginx:1.28", "replicas": 3})).await;
    assert_eq!(upgraded["rollout"], "restarted", "{upgraded}");
    assert_ne!(live(&server).0, template);
}

#[tokio::test]
async fn a_changed_value_rolls_the_pods_and_a_master_key_rotation_does_not() {
    let server = seeded().await;
    let first = deploy(&server, json!({"image_ref": "nginx"})).await;
    let (template, generation, _) = live(&server);

    server
        .set_secret_ok("/v1/apps/web", "stripe", "STRIPE_KEY", "rk-2")
        .await;
    let changed = deploy(&server, json!({"image_ref": "nginx"})).await;
    assert_eq!(changed["rollout"], "restarted", "{changed}");
    assert_ne!(changed["secrets_hash"], first["secrets_hash"]);
    let (changed_template, changed_generation, deployment) = live(&server);
    assert_ne!(changed_template, template);
    assert_eq!(changed_generation, generation + 1);
    assert_eq!(
        deployment["spec"]["template"]["metadata"]["annotations"]["exsec.io/secrets-hash"],
        changed["secrets_hash"]
    );

    // A new master key: every value is re-sealed, none changes.
    let new_key = later_key(&server, 1);
    wait_for_keys(&server, Duration::from_secs(20), |s| {
        s["active"] == new_key.as_str() && s["rotation"]["remaining"] == 0
    })
    .await;
    let after_rotation = deploy(&server, json!({"image_ref": "nginx"})).await;
    assert_eq!(after_rotation["rollout"], "unchanged", "{after_rotation}");
    assert_eq!(after_rotation["secrets_hash"], changed["secrets_hash"]);
    let (rotated_template, rotated_generation, _) = live(&server);
    assert_eq!(rotated_template, changed_template);
    assert_eq!(rotated_generation, changed_generation);
}

#[tokio::test]
async fn restart_true_rolls_once_and_later_deploys_keep_its_mark() {
    let server = seeded().await;
    deploy(&server, json!({"image_ref": "nginx"})).await;
    let (template, _, _) = live(&server);

    let forced = deploy(&server, json!({"image_ref": "nginx", "restart": true})).await;
    assert_eq!(forced["rollout"], "restarted", "{forced}");
    let (forced_template, _, deployment) = live(&server);
    assert_ne!(forced_template, template);
    let mark = &deployment["spec"]["template"]["metadata"]["annotations"]["exsec.io/restarted-at"];
    assert!(
        mark.as_str().is_some_and(|m| m.ends_with('Z')),
        "{deployment}"
    );

    // Dropping the mark would roll the pods again: it is carried over.
    let next = deploy(&server, json!({"image_ref": "nginx"})).await;
    assert_eq!(next["rollout"], "unchanged", "{next}");
    assert_eq!(live(&server).0, forced_template);
}

#[tokio::test]
async fn a_deploy_that_leaves_the_secret_untouched_keeps_the_pods_as_they_are() {
    let server = seeded().await;
    let first = deploy(&server, json!({"image_ref": "nginx"})).await;
    let (template, _, _) = live(&server);
    // The Secret apply fails: the cluster keeps the old values, so the pods
    // must keep the old hash (a new one would restart them onto old values
    // and claim they run new ones).
    server
        .set_secret_ok("/v1/apps/web", "stripe", "STRIPE_KEY", "rk-2")
        .await;
    server
        .cluster
        .as_ref()
        .unwrap()
        .faults()
        .fail(FailRule::new(500).times(100).path_contains("/secrets/"));
    let failed = deploy(&server, json!({"image_ref": "nginx"})).await;
    assert_eq!(failed["external_secrets"]["status"], "failed", "{failed}");
    assert_eq!(failed["rollout"], "unchanged", "{failed}");
    assert_eq!(failed["secrets_hash"], first["secrets_hash"]);
    assert_eq!(live(&server).0, template);
}
