//! The OpenAPI document against a real server. Every route is driven at
//! least once; every answer — success or problem — must be a status the
//! document declares for that route, with a declared media type, and its
//! body must validate against the declared schema (JSON Schema 2020-12 via
//! `jsonschema`, with the document's components embedded so `$ref`s
//! resolve). The document's patterns must agree with the parsers.

use std::collections::BTreeSet;

use exsec::api::openapi;
use exsec::api::routes::{self, Found, ROUTES};
use exsec::model::{EnvKey, KeyId, Provider, SecretValue, TenantId};
use hyper::Method;
use serde_json::{Value, json};

use crate::server::{Answer, Options, TestServer};

/// A dry run of a deploy of `web`.
const DRY_RUN: &str = "/v1/apps/web/deploys?dry_run=true";

/// The document, and which `(operationId, status)` the answers covered.
pub struct Contract {
    document: Value,
    seen: BTreeSet<(String, u16)>,
}

impl Contract {
    pub fn new() -> Self {
        Self {
            document: openapi::document(),
            seen: BTreeSet::new(),
        }
    }

    /// A 2020-12 validator for `schema`; `#/components/…` resolves into the
    /// document's components.
    fn validator(&self, schema: &Value) -> jsonschema::Validator {
        let mut root = schema.clone();
        root["components"] = json!({ "schemas": self.document["components"]["schemas"] });
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("schema does not compile: {e}\n{schema:#}"))
    }

    fn errors(&self, schema: &Value, instance: &Value) -> Vec<String> {
        self.validator(schema)
            .iter_errors(instance)
            .map(|e| format!("{e} (at {})", e.instance_path()))
            .collect()
    }

    /// Checks one answer to `method target` against the document.
    pub fn check(&mut self, method: &str, target: &str, answer: &Answer) {
        let at = format!("{method} {target} → {}", answer.status);
        let path = target.split('?').next().unwrap();
        let Found::Route(route, _) =
            routes::find(&Method::from_bytes(method.as_bytes()).unwrap(), path)
        else {
            // No route, or not this method: a Problem the description names.
            let schema = json!({
                "$ref": "#/components/schemas/Problem",
                "properties": { "code": { "enum": ["route_not_found", "method_not_allowed"] } },
            });
            self.assert_body(&schema, answer, &at);
            if answer.status == 405 {
                assert!(answer.headers.contains_key("allow"), "{at}: no Allow");
            }
            return;
        };
        let operation = &self.document["paths"][route.path][method.to_ascii_lowercase()];
        let response = operation["responses"]
            .get(answer.status.to_string())
            .unwrap_or_else(|| panic!("{at}: status not in the document: {}", answer.text()));
        if answer.status == 204 {
            assert!(answer.body.is_empty(), "{at}: 204 with a body");
            assert!(
                response.get("content").is_none(),
                "{at}: 204 documented with a body"
            );
        } else {
            let media = answer.headers["content-type"]
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .trim()
                .to_owned();
            let declared = &response["content"][&media];
            assert!(declared.is_object(), "{at}: {media} not in the document");
            if !media.ends_with("json") {
                assert!(!answer.body.is_empty(), "{at}: empty {media}");
            } else {
                self.assert_body(&declared["schema"], answer, &at);
            }
        }
        for (name, header) in response["headers"].as_object().into_iter().flatten() {
            assert!(
                header["required"] != true || answer.headers.contains_key(name.as_str()),
                "{at}: header {name} missing"
            );
        }
        let id = operation["operationId"].as_str().unwrap().to_owned();
        self.seen.insert((id, answer.status));
    }

    fn assert_body(&self, schema: &Value, answer: &Answer, at: &str) {
        let body = answer.json();
        let errors = self.errors(schema, &body);
        assert!(
            errors.is_empty(),
            "{at}: the answer does not match the document:\n{}\n{body:#}",
            errors.join("\n")
        );
    }

    fn statuses(&self) -> BTreeSet<u16> {
        self.seen.iter().map(|(_, status)| *status).collect()
    }
}

/// A test server whose every answer is checked against the document.
struct Checked {
    server: TestServer,
    contract: Contract,
}

impl Checked {
    fn new(server: TestServer) -> Self {
        Self {
            server,
            contract: Contract::new(),
        }
    }

    async fn call(
        &mut self,
        method: &str,
        target: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Answer {
        self.call_with(method, target, token, body, &[]).await
    }

    async fn call_with(
        &mut self,
        method: &str,
        target: &str,
        token: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let answer = self
            .server
            .call_with(method, target, token, body, headers)
            .await;
        self.contract.check(method, target, &answer);
        answer
    }

    async fn admin(&mut self, method: &str, target: &str, body: Option<&str>) -> Answer {
        let token = self.server.admin_token.clone();
        self.call(method, target, Some(&token), body).await
    }

    /// An admin call that must answer `status`.
    async fn expect(
        &mut self,
        status: u16,
        method: &str,
        target: &str,
        body: Option<&str>,
    ) -> Value {
        let answer = self.admin(method, target, body).await;
        assert_eq!(
            answer.status,
            status,
            "{method} {target}: {}",
            answer.text()
        );
        serde_json::from_slice(&answer.body).unwrap_or(Value::Null)
    }

    /// A call with `token` that must answer problem `code` with `status`.
    async fn expect_problem(
        &mut self,
        (status, code): (u16, &str),
        method: &str,
        target: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Answer {
        let answer = self.call(method, target, token, body).await;
        assert_eq!(
            (answer.status, answer.code().as_str()),
            (status, code),
            "{method} {target}: {}",
            answer.text()
        );
        answer
    }
}

/// A request that must answer a problem:
/// `((status, code), token, method, target, body)`.
type ProblemCase<'a> = (
    (u16, &'a str),
    Option<&'a str>,
    &'a str,
    &'a str,
    Option<&'a str>,
);

fn value_body(value: &str) -> String {
    json!({ "value": value }).to_string()
}

#[tokio::test]
async fn every_route_answers_as_documented() {
    let mut api = Checked::new(TestServer::start().await);
    api.call("GET", "/healthz", None, None).await;
    api.call("GET", "/readyz", None, None).await;
    api.call("GET", "/v1/openapi.json", None, None).await;
    api.expect(201, "PUT", "/v1/tenants/acme", None).await;
    api.expect(200, "PUT", "/v1/tenants/acme", Some("{}")).await;
    api.expect(200, "GET", "/v1/tenants", None).await;
    api.expect(200, "GET", "/v1/tenants/acme", None).await;
    let minted = api
        .expect(201, "POST", "/v1/tenants/acme/tokens", None)
        .await;
    let token = minted["token"].as_str().unwrap().to_owned();
    let token = Some(token.as_str());
    api.expect(200, "GET", "/v1/tenants/acme/tokens", None)
        .await;
    let app = r#"{"tenant_id":"acme","required_env":["OPENAI_API_KEY","SENTRY_DSN"]}"#;
    api.expect(201, "PUT", "/v1/apps/web", Some(app)).await;
    api.expect(200, "PUT", "/v1/apps/web", Some(app)).await;
    assert_eq!(
        api.call("GET", "/v1/apps?tenant_id=acme", token, None)
            .await
            .status,
        200
    );
    assert_eq!(
        api.call("GET", "/v1/apps/web", token, None).await.status,
        200
    );

    let tenant_secret = "/v1/tenants/acme/external-secrets/openai/OPENAI_API_KEY";
    let app_secret = "/v1/apps/web/external-secrets/openai/OPENAI_API_KEY";
    for (target, value, status) in [
        (tenant_secret, "sk-tenant", 201),
        (tenant_secret, "sk-tenant-2", 200),
        (app_secret, "sk-app", 201),
        (
            "/v1/apps/web/external-secrets/stripe/STRIPE_KEY",
            "rk-1",
            201,
        ),
    ] {
        let answer = api
            .call("PUT", target, token, Some(&value_body(value)))
            .await;
        assert_eq!(answer.status, status, "{target}: {}", answer.text());
    }
    api.expect(200, "GET", "/v1/tenants/acme/external-secrets", None)
        .await;
    api.expect(200, "GET", "/v1/apps/web/external-secrets", None)
        .await;
    let verify = format!("{tenant_secret}/verify");
    let answer = api
        .call("POST", &verify, token, Some(&value_body("sk-tenant-2")))
        .await;
    assert_eq!(answer.json()["match"], true);
    let verify = format!("{app_secret}/verify");
    let answer = api
        .call("POST", &verify, token, Some(&value_body("wrong")))
        .await;
    assert_eq!(answer.json()["match"], false);
    let bulk =
        r#"{"secrets":[{"provider":"openai","key":"OPENAI_API_KEY","value":"sk-tenant-3"}]}"#;
    let answer = api
        .call(
            "PUT",
            "/v1/tenants/acme/external-secrets",
            token,
            Some(bulk),
        )
        .await;
    assert_eq!(answer.json()["secrets"][0]["outcome"], "updated");
    let bulk = r#"{"secrets":[{"provider":"stripe","key":"STRIPE_KEY","value":"rk-2"}]}"#;
    api.expect(200, "PUT", "/v1/apps/web/external-secrets", Some(bulk))
        .await;
    let effective = api
        .expect(200, "GET", "/v1/apps/web/external-secrets/effective", None)
        .await;
    assert_eq!(effective["warnings"][0]["code"], "missing_required_env");

    let deploy = r#"{"tenant_id":"acme","app_id":"web","image_ref":"registry.example/web:1","replicas":2,"port":8080}"#;
    let audited = api.server.audit_seq().await;
    let dry = api.expect(200, "POST", DRY_RUN, Some(deploy)).await;
    assert_eq!(
        dry["external_secrets"]["added"],
        json!(["OPENAI_API_KEY", "STRIPE_KEY"])
    );
    assert_eq!(
        api.server.audit_seq().await,
        audited,
        "a dry run is not audited"
    );
    let mut deploy_ids = Vec::new();
    for _ in 0..2 {
        let target = "/v1/apps/web/deploys";
        let answer = api
            .call_with(
                "POST",
                target,
                token,
                Some(deploy),
                &[("idempotency-key", "k-1")],
            )
            .await;
        assert_eq!(answer.status, 201, "{}", answer.text());
        assert_eq!(answer.json()["external_secrets"]["status"], "injected");
        deploy_ids.push(answer.json()["deploy_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        deploy_ids[0], deploy_ids[1],
        "the idempotent retry is a replay"
    );
    let injected = api.server.manifest_values("web").unwrap();
    assert_eq!(
        injected["OPENAI_API_KEY"], "sk-app",
        "the app override wins"
    );
    let inferred = r#"{"image_ref":"registry.example/web:2"}"#;
    let inferred = api
        .expect(201, "POST", "/v1/apps/web/deploys", Some(inferred))
        .await;
    assert_eq!(inferred["warnings"][0]["code"], "tenant_id_inferred");
    api.expect(200, "GET", "/v1/apps/web/deploys?limit=10", None)
        .await;
    let one = format!("/v1/apps/web/deploys/{}", deploy_ids[0]);
    api.expect(200, "GET", &one, None).await;
    let held = api.expect(200, "GET", "/v1/apps/web/cluster", None).await;
    assert_eq!(held["secret"]["exists"], true);

    // History, restore, rollback and unpin (SPEC §11.3).
    let versions = api
        .expect(200, "GET", &format!("{tenant_secret}/versions"), None)
        .await;
    assert_eq!(versions["versions"][0]["version"], 3);
    let versions = api
        .expect(200, "GET", &format!("{app_secret}/versions"), None)
        .await;
    assert_eq!(versions["versions"][0]["version"], 1);
    let restored = api
        .expect(
            200,
            "POST",
            &format!("{tenant_secret}/versions/1/restore"),
            None,
        )
        .await;
    assert_eq!(restored["version"], 4);
    let restored = api
        .expect(
            200,
            "POST",
            &format!("{app_secret}/versions/1/restore"),
            None,
        )
        .await;
    assert_eq!(restored["version"], 2);
    let rollback = json!({ "rollback_to": deploy_ids[0] }).to_string();
    let rolled = api
        .expect(201, "POST", "/v1/apps/web/deploys", Some(&rollback))
        .await;
    assert_eq!(rolled["trigger"], "rollback");
    let unpinned = api.expect(200, "POST", "/v1/apps/web/unpin", None).await;
    assert_eq!(unpinned["pinned_to"], Value::Null);

    let stripe = "/v1/apps/web/external-secrets/stripe/STRIPE_KEY";
    assert_eq!(api.call("DELETE", stripe, token, None).await.status, 204);
    let effective = api
        .expect(200, "GET", "/v1/apps/web/external-secrets/effective", None)
        .await;
    assert_eq!(effective["removed_since_deploy"], json!(["STRIPE_KEY"]));

    let page = api
        .expect(200, "GET", "/v1/audit-events?limit=3", None)
        .await;
    assert_eq!(page["next_after"], 3);
    let filtered = "/v1/audit-events?type=external_secret.injected&tenant_id=acme&app_id=web&after=0&limit=1000";
    let injected = api.expect(200, "GET", filtered, None).await;
    assert_eq!(injected["events"][0]["data"]["key_count"], 2);
    assert_eq!(
        api.call("GET", "/v1/audit-events", token, None)
            .await
            .status,
        200
    );
    assert_eq!(
        api.call("GET", "/v1/tenants", token, None).await.status,
        200
    );
    let rotated = api
        .expect(202, "POST", "/v1/tenants/acme/rotate-data-key", None)
        .await;
    assert!(rotated["data_key"]["id"].is_string(), "{rotated}");
    api.expect(200, "GET", "/v1/tenants/acme", None).await;
    api.expect(200, "GET", "/v1/keys", None).await;
    api.expect(200, "GET", "/metrics", None).await;
    api.expect(200, "GET", "/v1/backup", None).await;

    assert_eq!(
        api.call("DELETE", tenant_secret, token, None).await.status,
        204
    );
    let token_id = minted["token_id"].as_str().unwrap();
    api.expect(
        204,
        "DELETE",
        &format!("/v1/tenants/acme/tokens/{token_id}"),
        None,
    )
    .await;
    api.expect(204, "DELETE", "/v1/apps/web", None).await;
    api.expect(204, "DELETE", "/v1/tenants/acme", None).await;

    let answered: BTreeSet<&str> = api
        .contract
        .seen
        .iter()
        .filter(|(_, status)| (200..300).contains(status))
        .map(|(id, _)| id.as_str())
        .collect();
    let unanswered: Vec<String> = operation_ids(&api.contract.document)
        .into_iter()
        .filter(|id| !answered.contains(id.as_str()))
        .collect();
    assert!(unanswered.is_empty(), "routes never driven: {unanswered:?}");
    api.server.stop().await;
}

#[tokio::test]
async fn the_document_is_served_publicly_as_json() {
    let mut api = Checked::new(TestServer::start().await);
    let answer = api.call("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["content-type"], "application/json");
    assert_eq!(answer.json(), openapi::document());
    api.server.stop().await;
}

#[tokio::test]
async fn error_answers_are_documented_problems() {
    let mut api = Checked::new(TestServer::start().await);
    api.server.seed("acme", &["web", "broken"]).await;
    api.server.seed("other", &["api"]).await;
    let shared = api
        .server
        .set_secret("/v1/apps/web", "first", "SHARED", "one");
    assert_eq!(shared.await.status, 201);
    let tenant = api.server.mint("acme").await;
    let admin = api.server.admin_token.clone();
    let (tenant, admin) = (Some(tenant.as_str()), Some(admin.as_str()));
    let stranger = Some("exs_000000000000_nope");
    let one = r#"{"value":"one"}"#;
    let huge = value_body(&"x".repeat(1024 * 1024));
    let web_key = "/v1/apps/web/external-secrets/openai/KEY";
    let deploys = "/v1/apps/web/deploys";
    let bulk_web = "/v1/apps/web/external-secrets";
    let x = r#"{"image_ref":"x"}"#;

    // One line per case reads as a table.
    #[rustfmt::skip]
    let cases: &[ProblemCase] = &[
        ((401, "unauthenticated"), None, "GET", "/v1/tenants", None),
        ((401, "unauthenticated"), stranger, "GET", "/v1/apps/web", None),
        ((404, "not_found"), tenant, "GET", "/v1/keys", None),
        ((404, "not_found"), tenant, "GET", "/metrics", None),
        ((404, "tenant_not_found"), tenant, "GET", "/v1/tenants/other", None),
        ((404, "tenant_not_found"), tenant, "GET", "/v1/apps?tenant_id=other", None),
        ((404, "app_not_found"), tenant, "GET", "/v1/apps/api", None),
        ((404, "deploy_not_found"), admin, "GET", "/v1/apps/web/deploys/dep_000000000099", None),
        ((404, "secret_not_found"), admin, "DELETE", "/v1/apps/web/external-secrets/a/NOPE", None),
        ((404, "token_not_found"), admin, "DELETE", "/v1/tenants/acme/tokens/000000000000", None),
        ((404, "route_not_found"), admin, "GET", "/v1/nope", None),
        ((405, "method_not_allowed"), admin, "PATCH", "/v1/tenants/acme", None),
        ((400, "invalid_tenant_id"), admin, "PUT", "/v1/tenants/Not_A_Label", None),
        ((400, "invalid_app_id"), admin, "GET", "/v1/apps/-web", None),
        ((400, "invalid_key"), admin, "PUT", "/v1/apps/web/external-secrets/a/1BAD", Some(one)),
        ((400, "invalid_value"), admin, "PUT", web_key, Some(r#"{"value":""}"#)),
        ((400, "unknown_field"), admin, "PUT", "/v1/apps/web", Some(r#"{"tenant_id":"acme","x":1}"#)),
        ((400, "missing_field"), admin, "PUT", "/v1/apps/web", Some("{}")),
        ((400, "missing_body"), admin, "PUT", "/v1/apps/web", None),
        ((400, "malformed_json"), admin, "PUT", "/v1/apps/web", Some("{")),
        ((400, "wrong_type"), admin, "POST", deploys, Some(r#"{"image_ref":"x","port":"80"}"#)),
        ((400, "invalid_replicas"), admin, "POST", deploys, Some(r#"{"image_ref":"x","replicas":-1}"#)),
        ((400, "invalid_image_ref"), admin, "POST", deploys, Some(r#"{"image_ref":"a b"}"#)),
        ((400, "invalid_query"), admin, "POST", "/v1/apps/web/deploys?dry_run=maybe", Some(x)),
        ((400, "invalid_query"), admin, "GET", "/v1/audit-events?limit=0", None),
        ((400, "invalid_query"), admin, "GET", "/v1/apps/web/deploys?limit=501", None),
        ((409, "tenant_has_apps"), admin, "DELETE", "/v1/tenants/acme", None),
        ((409, "app_tenant_fixed"), admin, "PUT", "/v1/apps/web", Some(r#"{"tenant_id":"other"}"#)),
        ((409, "env_name_taken"), admin, "PUT", "/v1/apps/web/external-secrets/b/SHARED", Some(one)),
        ((413, "body_too_large"), admin, "PUT", web_key, Some(huge.as_str())),
        ((400, "invalid_value"), admin, "PUT", bulk_web, Some(r#"{"secrets":[{"provider":"a","key":"OK","value":"v"},{"provider":"a","key":"EMPTY","value":""}]}"#)),
        ((400, "invalid_provider"), admin, "PUT", bulk_web, Some(r#"{"secrets":[{"provider":"A B","key":"OK","value":"v"}]}"#)),
        ((409, "env_name_taken"), admin, "PUT", bulk_web, Some(r#"{"secrets":[{"provider":"b","key":"SHARED","value":"v"}]}"#)),
        ((422, "duplicate_key"), admin, "PUT", bulk_web, Some(r#"{"secrets":[{"provider":"a","key":"K","value":"v"},{"provider":"b","key":"K","value":"v"}]}"#)),
        ((422, "app_id_mismatch"), admin, "POST", deploys, Some(r#"{"app_id":"api","image_ref":"x"}"#)),
        ((422, "tenant_mismatch"), admin, "POST", deploys, Some(r#"{"tenant_id":"other","image_ref":"x"}"#)),
    ];
    for &(expected, token, method, target, body) in cases {
        api.expect_problem(expected, method, target, token, body)
            .await;
    }

    // Problems caused by a header.
    let bad_key = [("idempotency-key", "a b")];
    let answer = api
        .call_with("POST", deploys, admin, Some(x), &bad_key)
        .await;
    assert_eq!(answer.code(), "invalid_idempotency_key");
    let text = [("content-type", "text/plain")];
    let answer = api.call_with("PUT", web_key, admin, None, &text).await;
    assert_eq!(answer.code(), "unsupported_media_type");

    // 422 after a first write.
    let key = [("idempotency-key", "k-1")];
    let first = api
        .call_with("POST", deploys, admin, Some(r#"{"image_ref":"x:1"}"#), &key)
        .await;
    assert_eq!(first.status, 201, "{}", first.text());
    let reused = api
        .call_with("POST", deploys, admin, Some(r#"{"image_ref":"x:2"}"#), &key)
        .await;
    assert_eq!(reused.code(), "idempotency_key_reused");
    let big = value_body(&"v".repeat(64 * 1024));
    let mut too_large = None;
    for n in 0..17 {
        let target = format!("/v1/apps/web/external-secrets/bulk/BIG_{n}");
        let answer = api.call("PUT", &target, admin, Some(&big)).await;
        if answer.status != 201 {
            too_large = Some(answer.code());
            break;
        }
    }
    assert_eq!(too_large.as_deref(), Some("effective_set_too_large"));

    // 429: the verify limit is per caller.
    let verify = "/v1/tenants/acme/external-secrets/openai/OPENAI_API_KEY/verify";
    let mut limited = None;
    for _ in 0..40 {
        let answer = api.call("POST", verify, tenant, Some(one)).await;
        if answer.status == 429 {
            limited = Some(answer);
            break;
        }
    }
    assert_eq!(limited.unwrap().code(), "rate_limited");

    // 502: the Deployment cannot be written (its manifest path is a folder);
    // the problem still carries the deploy and what injection did.
    let secret = api
        .server
        .set_secret("/v1/apps/broken", "openai", "KEY", "one");
    assert_eq!(secret.await.status, 201);
    std::fs::create_dir(api.server.path("manifests").join("broken.yaml")).unwrap();
    let failed = api
        .expect_problem(
            (502, "deployment_apply_failed"),
            "POST",
            "/v1/apps/broken/deploys",
            admin,
            Some(r#"{"image_ref":"x"}"#),
        )
        .await
        .json();
    assert_eq!(failed["external_secrets"]["reason"], "secret_apply_failed");

    // 503 from /readyz is a Ready body, not a problem.
    let manifests = api.server.path("manifests");
    let aside = api.server.path("manifests-aside");
    std::fs::rename(&manifests, &aside).unwrap();
    let answer = api.call("GET", "/readyz", None, None).await;
    std::fs::rename(&aside, &manifests).unwrap();
    assert_eq!(
        (answer.status, &answer.json()["status"]),
        (503, &json!("not_ready"))
    );

    let statuses = api.contract.statuses();
    for status in [400, 401, 404, 409, 413, 415, 422, 429, 502, 503] {
        assert!(statuses.contains(&status), "{status} never checked");
    }
    api.server.stop().await;
}

#[tokio::test]
async fn a_keyless_server_answers_as_documented() {
    let options = Options::without_key();
    let mut api = Checked::new(TestServer::start_with(options).await);
    api.server.seed("acme", &["web"]).await;
    let admin = api.server.admin_token.clone();
    let ready = api.call("GET", "/readyz", None, None).await.json();
    assert_eq!(ready["keyring"]["degraded"], true);
    let secret = "/v1/apps/web/external-secrets/openai/OPENAI_API_KEY";
    let body = value_body("sk");
    api.expect_problem(
        (503, "master_key_unavailable"),
        "PUT",
        secret,
        Some(&admin),
        Some(&body),
    )
    .await;
    let bulk = r#"{"secrets":[{"provider":"openai","key":"OPENAI_API_KEY","value":"sk"}]}"#;
    api.expect_problem(
        (503, "master_key_unavailable"),
        "PUT",
        "/v1/apps/web/external-secrets",
        Some(&admin),
        Some(bulk),
    )
    .await;
    assert_eq!(
        api.server.secret_names("/v1/apps/web").await,
        [] as [&str; 0]
    );
    let deploy = r#"{"image_ref":"registry.example/web:1"}"#;
    let dry = api.expect(200, "POST", DRY_RUN, Some(deploy)).await;
    assert_eq!(dry["external_secrets"]["reason"], "master_key_unavailable");
    let done = api
        .expect(201, "POST", "/v1/apps/web/deploys", Some(deploy))
        .await;
    assert_eq!(done["external_secrets"]["status"], "skipped");
    let keys = api.expect(200, "GET", "/v1/keys", None).await;
    assert_eq!(keys["active"], Value::Null);
    api.server.stop().await;
}

/// A keyring whose old key file is gone: `/v1/keys` names it in
/// `rotation.waiting_for` with the records that wait for it.
#[tokio::test]
async fn a_missing_key_answers_as_documented() {
    let server = TestServer::start().await;
    server.seed("acme", &["web"]).await;
    server.set_secret_ok("/v1/apps/web", "p", "K", "v").await;
    let keys_dir = server.path("keys.d");
    let dir = server.stop().await;
    for entry in std::fs::read_dir(&keys_dir).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    exsec::crypto::generate_key_file(&keys_dir, later).unwrap();
    let mut api = Checked::new(TestServer::restart(dir).await);
    let keys = api.expect(200, "GET", "/v1/keys", None).await;
    assert_eq!(keys["rotation"]["state"], "blocked_missing_key");
    let waiting = keys["rotation"]["waiting_for"].as_object().unwrap();
    assert_eq!(waiting.values().collect::<Vec<_>>(), [&json!(1)], "{keys}");
    api.server.stop().await;
}

#[test]
fn every_schema_in_the_document_compiles() {
    fn schemas<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
        match value {
            Value::Object(map) => {
                out.extend(map.get("schema"));
                map.values().for_each(|v| schemas(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| schemas(v, out)),
            _ => {}
        }
    }
    let contract = Contract::new();
    let mut found = Vec::new();
    schemas(&contract.document["paths"], &mut found);
    schemas(&contract.document["components"]["parameters"], &mut found);
    for name in contract.document["components"]["schemas"]
        .as_object()
        .unwrap()
        .keys()
    {
        contract.validator(&json!({ "$ref": format!("#/components/schemas/{name}") }));
    }
    assert!(found.len() > ROUTES.len());
    for schema in found {
        contract.validator(schema);
    }
}

/// The deploy body's schema says what the handler takes: an image, or a
/// rollback naming nothing of the workload — so a generated body that
/// validates is one the server accepts (schema-driven testers depend on it).
#[test]
fn the_deploy_body_schema_matches_what_a_deploy_takes() {
    let contract = Contract::new();
    let schema = json!({ "$ref": "#/components/schemas/DeployRequest" });
    let validator = contract.validator(&schema);
    for accepted in [
        json!({ "image_ref": "nginx:1.27" }),
        json!({ "image_ref": "nginx:1.27", "replicas": 2, "port": 8080, "restart": true }),
        json!({ "image_ref": "nginx:1.27", "replicas": null }),
        json!({ "rollback_to": "dep_000000000001" }),
        json!({ "rollback_to": "dep_000000000001", "replicas": null, "restart": false }),
    ] {
        assert!(validator.is_valid(&accepted), "{accepted}");
    }
    for refused in [
        json!({}),
        json!({ "replicas": 2 }),
        json!({ "image_ref": "nginx:1.27", "rollback_to": "dep_000000000001" }),
        json!({ "rollback_to": "dep_000000000001", "replicas": 1 }),
        json!({ "rollback_to": "dep_000000000001", "restart": true }),
    ] {
        assert!(!validator.is_valid(&refused), "{refused}");
    }
}

#[test]
fn patterns_agree_with_the_parsers() {
    let contract = Contract::new();
    let valid = |component: &str, text: &str| {
        let schema = json!({ "$ref": format!("#/components/schemas/{component}") });
        contract.errors(&schema, &json!(text)).is_empty()
    };
    let samples = [
        "a",
        "acme",
        "a-b",
        "a--b",
        "9",
        "-a",
        "a-",
        "A",
        "a_b",
        "a.b",
        "_x",
        "",
        "x y",
        "OPENAI_API_KEY",
        "_PRIVATE",
        "1KEY",
        "open.ai",
        "open-ai_2",
        ".openai",
        "20260101T000000Z",
        "prod.key",
        "ü",
    ]
    .map(str::to_owned)
    .into_iter()
    .chain([41, 42, 43, 62, 63, 64, 65, 252, 253, 254].map(|n| "k".repeat(n)));
    for sample in samples {
        assert_eq!(
            valid("ResourceId", &sample),
            TenantId::parse(&sample).is_ok(),
            "tenant {sample:?}"
        );
        assert_eq!(
            valid("Provider", &sample),
            Provider::parse(&sample).is_ok(),
            "provider {sample:?}"
        );
        assert_eq!(
            valid("EnvKey", &sample),
            EnvKey::parse(&sample).is_ok(),
            "key {sample:?}"
        );
        assert_eq!(
            valid("KeyId", &sample),
            KeyId::parse(&sample).is_ok(),
            "key id {sample:?}"
        );
    }
    let value_schema = json!({ "$ref": "#/components/schemas/ValueRequest" });
    for value in [
        "x".to_owned(),
        String::new(),
        "a\0b".to_owned(),
        "x".repeat(65_536),
        "x".repeat(65_537),
    ] {
        let accepted = contract
            .errors(&value_schema, &json!({ "value": value }))
            .is_empty();
        assert_eq!(
            accepted,
            SecretValue::parse(value.clone()).is_ok(),
            "value of {} bytes",
            value.len()
        );
    }
}

fn operation_ids(document: &Value) -> Vec<String> {
    document["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|operation| operation["operationId"].as_str())
        .map(str::to_owned)
        .collect()
}

/// Regression (found by the schema-driven run, scripts/api-schema.sh): the
/// Secret of an app with a 42-character id is longer than an id, and
/// `GET /v1/apps/{app_id}/cluster` declared it as one.
#[tokio::test]
async fn the_longest_app_id_answers_as_documented() {
    let mut api = Checked::new(TestServer::start().await);
    let app = "a".repeat(42);
    api.server.seed("acme", &[app.as_str()]).await;
    let secret = format!("/v1/apps/{app}/external-secrets/openai/OPENAI_API_KEY");
    api.expect(201, "PUT", &secret, Some(&value_body("sk-long")))
        .await;
    let deploy = r#"{"image_ref":"registry.example/web:1"}"#;
    let done = api
        .expect(
            201,
            "POST",
            &format!("/v1/apps/{app}/deploys"),
            Some(deploy),
        )
        .await;
    let name = format!("app-{app}-external-secrets");
    assert_eq!(done["external_secrets"]["secret_name"], name.as_str());
    let cluster = api
        .expect(200, "GET", &format!("/v1/apps/{app}/cluster"), None)
        .await;
    assert_eq!(cluster["secret"]["name"], name.as_str());
    api.server.stop().await;
}

/// A rollback refused for a pruned version names it in members the
/// document declares (`SnapshotProblem`), and the version routes' refusals
/// are documented problems too.
#[tokio::test]
async fn refused_restores_and_rollbacks_answer_as_documented() {
    let mut api = Checked::new(
        TestServer::start_with(crate::server::Options {
            secret_history: 1,
            ..crate::server::Options::default()
        })
        .await,
    );
    api.server.seed("acme", &["web"]).await;
    let secret = "/v1/apps/web/external-secrets/openai/OPENAI_API_KEY";
    api.expect(201, "PUT", secret, Some(&value_body("sk-1")))
        .await;
    let first = api
        .expect(
            201,
            "POST",
            "/v1/apps/web/deploys",
            Some(r#"{"image_ref":"nginx"}"#),
        )
        .await;
    api.expect(200, "PUT", secret, Some(&value_body("sk-2")))
        .await;
    let rollback = json!({ "rollback_to": first["deploy_id"] }).to_string();
    let admin = api.server.admin_token.clone();
    let refused = api
        .expect_problem(
            (409, "snapshot_unavailable"),
            "POST",
            "/v1/apps/web/deploys",
            Some(&admin),
            Some(&rollback),
        )
        .await;
    assert_eq!(refused.json()["version"], 1);
    api.expect_problem(
        (404, "version_not_found"),
        "POST",
        &format!("{secret}/versions/1/restore"),
        Some(&admin),
        None,
    )
    .await;
    api.expect(204, "DELETE", secret, None).await;
    api.expect_problem(
        (409, "version_is_tombstone"),
        "POST",
        &format!("{secret}/versions/3/restore"),
        Some(&admin),
        None,
    )
    .await;
    api.server.stop().await;
}
