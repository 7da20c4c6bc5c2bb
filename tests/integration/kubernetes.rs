//! The `kubernetes` target against the Kubernetes API stand-in: the same
//! production kube-rs code that talks to a real cluster, server-side apply
//! with field ownership, faults, and the seed's Verify with real kubectl.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use kube_standin::{DropRule, FailRule, HangRule, Kind};
use serde_json::{Value, json};

use crate::server::{Options, TestServer};

fn cluster(server: &TestServer) -> &kube_standin::StandIn {
    server.cluster.as_ref().expect("a kubernetes test server")
}

/// Decoded `data` of the app's Secret in the cluster (shared with `campaign`).
pub(crate) fn secret_values(server: &TestServer, app: &str) -> Option<BTreeMap<String, String>> {
    let secret = cluster(server).object(
        Kind::Secret,
        "paas-apps",
        &format!("app-{app}-external-secrets"),
    )?;
    Some(
        secret["data"]
            .as_object()
            .map(crate::server::decode_data)
            .unwrap_or_default(),
    )
}

pub(crate) fn deployment(server: &TestServer, app: &str) -> Option<Value> {
    cluster(server).object(Kind::Deployment, "paas-apps", app)
}

async fn seeded() -> TestServer {
    let server = TestServer::start_with(Options::kubernetes()).await;
    server.seed("acme", &["web"]).await;
    server
        .set_secrets_ok(&[
            ("/v1/tenants/acme", "openai", "OPENAI_API_KEY", "sk-tenant"),
            ("/v1/tenants/acme", "stripe", "STRIPE_KEY", "rk-tenant"),
            ("/v1/apps/web", "openai", "OPENAI_API_KEY", "sk-app"),
        ])
        .await;
    server
}

/// The seed's flow through kube-rs: server-side apply with field manager
/// `exsec` and force, values in `data`, the app's value winning.
#[tokio::test]
async fn the_seed_flow_applies_through_server_side_apply() {
    let server = seeded().await;
    let answer = server
        .deploy(
            "web",
            json!({"tenant_id": "acme", "app_id": "web", "image_ref": "nginx:1.27"}),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text());
    assert_eq!(answer.json()["external_secrets"]["status"], "injected");
    let values = secret_values(&server, "web").unwrap();
    assert_eq!(values["OPENAI_API_KEY"], "sk-app");
    assert_eq!(values["STRIPE_KEY"], "rk-tenant");
    let secret = cluster(&server)
        .object(Kind::Secret, "paas-apps", "app-web-external-secrets")
        .unwrap();
    assert!(secret.get("stringData").is_none());
    assert_eq!(secret["metadata"]["managedFields"][0]["manager"], "exsec");
    let env_from = &deployment(&server, "web").unwrap()["spec"]["template"]["spec"]["containers"]
        [0]["envFrom"];
    assert_eq!(
        env_from,
        &json!([{"secretRef": {"name": "app-web-external-secrets", "optional": true}}])
    );

    let patches: Vec<_> = cluster(&server)
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 2, "{patches:?}");
    for patch in &patches {
        assert_eq!(
            patch.content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
        assert_eq!(patch.query_param("fieldManager").as_deref(), Some("exsec"));
        assert_eq!(patch.query_param("force").as_deref(), Some("true"));
    }

    // What the cluster holds, as the API reports it: names, never values.
    let view = server.admin("GET", "/v1/apps/web/cluster", None).await;
    assert_eq!(view.status, 200, "{}", view.text());
    let view = view.json();
    assert_eq!(
        view["secret"]["keys"],
        json!(["OPENAI_API_KEY", "STRIPE_KEY"])
    );
    assert_eq!(
        view["deployment"]["env_from"],
        json!([{"secret_name": "app-web-external-secrets", "optional": true}])
    );
    assert_eq!(view["deployment"]["rollout"]["status"], "complete");
    assert!(!view.to_string().contains("sk-app"));
    let deploy_id = answer.json()["deploy_id"].as_str().unwrap().to_owned();
    let read = server
        .admin("GET", &format!("/v1/apps/web/deploys/{deploy_id}"), None)
        .await
        .json();
    assert_eq!(read["rollout_status"]["status"], "complete");
}

/// Server-side apply semantics: a removed key disappears (exsec sends
/// `data` and owns each key), an empty set deletes the Secret, and
/// replicas set by another manager survive a deploy that sends none.
#[tokio::test]
async fn removed_keys_disappear_and_other_managers_keep_their_fields() {
    let server = seeded().await;
    server.deploy_ok("web").await;
    server
        .delete_secret("/v1/tenants/acme", "stripe", "STRIPE_KEY")
        .await;
    server.deploy_ok("web").await;
    let values = secret_values(&server, "web").unwrap();
    assert_eq!(values.keys().collect::<Vec<_>>(), ["OPENAI_API_KEY"]);

    // An autoscaler owns replicas; exsec does not send them.
    let scaler = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"replicas":5}}"#;
    let scaled = kube_patch(
        &server,
        "/apis/apps/v1/namespaces/paas-apps/deployments/web?fieldManager=hpa&force=true",
        scaler,
    )
    .await;
    assert!(scaled < 300, "{scaled}");
    assert_eq!(
        server
            .deploy("web", json!({"image_ref": "nginx:2"}))
            .await
            .status,
        201
    );
    let spec = &deployment(&server, "web").unwrap()["spec"];
    assert_eq!(spec["replicas"], 5);
    assert_eq!(
        spec["template"]["spec"]["containers"][0]["image"],
        "nginx:2"
    );

    server
        .delete_secret("/v1/tenants/acme", "openai", "OPENAI_API_KEY")
        .await;
    server
        .delete_secret("/v1/apps/web", "openai", "OPENAI_API_KEY")
        .await;
    let answer = server
        .deploy("web", json!({"image_ref": "nginx:2"}))
        .await
        .json();
    assert_eq!(answer["external_secrets"]["reason"], "no_secrets");
    assert!(secret_values(&server, "web").is_none());
}

/// The stand-in models kubernetes#108008: keys applied as `stringData`
/// are never removed by a later apply, while exsec's `data` apply removes
/// them — so the trap is known to be modelled.
#[tokio::test]
async fn string_data_leaves_a_removed_key_behind_but_data_does_not() {
    let server = TestServer::start_with(Options::kubernetes()).await;
    let path = "/api/v1/namespaces/paas-apps/secrets/trap?fieldManager=legacy&force=true";
    let with_two = r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"trap"},"stringData":{"A":"1","B":"2"}}"#;
    let with_one =
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"trap"},"stringData":{"A":"1"}}"#;
    assert!(kube_patch(&server, path, with_two).await < 300);
    assert!(kube_patch(&server, path, with_one).await < 300);
    let trap = cluster(&server)
        .object(Kind::Secret, "paas-apps", "trap")
        .unwrap();
    assert!(
        trap["data"].get("B").is_some(),
        "stringData keys must linger: {trap}"
    );

    server.seed("acme", &["web"]).await;
    server
        .set_secrets_ok(&[
            ("/v1/apps/web", "p", "A", "1"),
            ("/v1/apps/web", "p", "B", "2"),
        ])
        .await;
    server.deploy("web", json!({"image_ref": "nginx"})).await;
    server.delete_secret("/v1/apps/web", "p", "B").await;
    server.deploy("web", json!({"image_ref": "nginx"})).await;
    assert_eq!(
        secret_values(&server, "web")
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["A"]
    );
}

/// Faults: a failing Secret apply fails only the injection; a failing
/// Deployment apply fails the deploy with 502 (deploy_id included,
/// recorded as failed); 429 with Retry-After is retried by kube itself; a
/// dropped connection is never a success.
#[tokio::test]
async fn cluster_faults_are_reported_and_never_a_false_success() {
    let server = seeded().await;
    let faults = cluster(&server).faults();

    faults.fail(FailRule::new(500).times(1).path_contains("/secrets/"));
    let answer = server.deploy("web", json!({"image_ref": "nginx"})).await;
    assert_eq!(answer.status, 201, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["external_secrets"]["status"], "failed");
    assert_eq!(body["external_secrets"]["reason"], "secret_apply_failed");
    assert!(deployment(&server, "web").is_some());

    faults.fail(FailRule::new(500).times(1).path_contains("/deployments/"));
    let answer = server.deploy("web", json!({"image_ref": "nginx:2"})).await;
    assert_eq!(answer.status, 502, "{}", answer.text());
    let problem = answer.json();
    assert_eq!(problem["code"], "deployment_apply_failed");
    assert_eq!(problem["status"], 502);
    let deploy_id = problem["deploy_id"].as_str().unwrap().to_owned();
    assert_eq!(problem["external_secrets"]["status"], "injected");
    let recorded = server
        .admin("GET", &format!("/v1/apps/web/deploys/{deploy_id}"), None)
        .await
        .json();
    assert_eq!(recorded["status"], "failed");

    faults.fail(
        FailRule::new(429)
            .times(1)
            .retry_after(1)
            .path_contains("/deployments/"),
    );
    let started = Instant::now();
    let answer = server.deploy("web", json!({"image_ref": "nginx:3"})).await;
    assert_eq!(answer.status, 201, "{}", answer.text());
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After was not honoured"
    );

    faults.drop_connections(DropRule::next(1).path_contains("/deployments/"));
    let answer = server.deploy("web", json!({"image_ref": "nginx:4"})).await;
    assert_eq!(answer.status, 502, "{}", answer.text());
}

/// A hung API server: the deploy ends within its budget with a clear error.
#[tokio::test]
async fn a_hung_cluster_cannot_hold_a_deploy_past_its_budget() {
    let server = TestServer::start_with(Options {
        deploy_timeout: "1s",
        ..Options::kubernetes()
    })
    .await;
    server.seed("acme", &["web"]).await;
    server.set_secret_ok("/v1/apps/web", "p", "K", "v").await;
    cluster(&server)
        .faults()
        .hang(HangRule::all().path_contains("/paas-apps/"));
    let started = Instant::now();
    let answer = server.deploy("web", json!({"image_ref": "nginx"})).await;
    let elapsed = started.elapsed();
    assert_eq!(answer.status, 502, "{}", answer.text());
    assert!(
        answer.json()["detail"]
            .as_str()
            .unwrap()
            .contains("timed out")
    );
    assert_eq!(answer.json()["external_secrets"]["status"], "failed");
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    cluster(&server).faults().clear();
}

/// The seed's Verify section with real kubectl: the Secret shows the keys
/// with the right decoded values, the Deployment shows the envFrom reference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_sees_what_the_seed_document_says() {
    let Ok(kubectl) = which_kubectl() else {
        eprintln!(
            "SKIPPED LOUDLY: kubectl is not on PATH; the seed's Verify section was not checked"
        );
        return;
    };
    let server = seeded().await;
    assert_eq!(
        server
            .deploy("web", json!({"tenant_id": "acme", "image_ref": "nginx"}))
            .await
            .status,
        201
    );
    let run = |args: &[&str]| run_kubectl(&kubectl, &server, args);
    let get_secret = |format: &str| {
        run(&[
            "-n",
            "paas-apps",
            "get",
            "secret",
            "app-web-external-secrets",
            "-o",
            format,
        ])
    };
    let secret = get_secret("json");
    let secret: Value = serde_json::from_str(&secret).unwrap();
    let decode = |key: &str| {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(secret["data"][key].as_str().unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(decode("OPENAI_API_KEY"), "sk-app");
    assert_eq!(decode("STRIPE_KEY"), "rk-tenant");
    let yaml = get_secret("yaml");
    assert!(yaml.contains("OPENAI_API_KEY:"), "{yaml}");
    let deploy_yaml = run(&["-n", "paas-apps", "get", "deploy", "web", "-o", "yaml"]);
    assert!(deploy_yaml.contains("envFrom"), "{deploy_yaml}");
    assert!(
        deploy_yaml.contains("name: app-web-external-secrets"),
        "{deploy_yaml}"
    );
    assert!(deploy_yaml.contains("optional: true"), "{deploy_yaml}");
}

/// `kubectl ARGS` against the server's stand-in cluster (its kubeconfig);
/// asserts success and returns standard output. kubectl blocks, so the
/// test runtime needs a second worker thread for the stand-in.
pub(crate) fn run_kubectl(kubectl: &std::path::Path, server: &TestServer, args: &[&str]) -> String {
    let kubeconfig = server.path("kubeconfig.yaml");
    let out = tokio::task::block_in_place(|| {
        std::process::Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .output()
    })
    .unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub(crate) fn which_kubectl() -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("kubectl"))
        .find(|path| path.is_file())
        .ok_or(())
}

/// A raw server-side apply to the stand-in, as another field manager.
async fn kube_patch(server: &TestServer, path: &str, body: &str) -> u16 {
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::TokioIo;
    let stream = tokio::net::TcpStream::connect(cluster(server).addr())
        .await
        .unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = hyper::Request::builder()
        .method("PATCH")
        .uri(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/apply-patch+yaml")
        .body(Full::new(bytes::Bytes::from(body.to_owned())))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    status
}
