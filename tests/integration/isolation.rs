//! Tenant isolation, driven from [`ROUTES`] so that a new route cannot be
//! forgotten: every non-public route is called with another tenant's
//! token (404, nothing changes), with the owner's token (2xx on `Tenant`
//! routes, 404 on `Admin` routes) and with no, revoked or forged tokens
//! (401 `WWW-Authenticate: Bearer`).
//!
//! Two tenants: `a` with app `a-web`, `b` with app `b-web`; each has a
//! tenant default and an app override, a token and a deploy. Path
//! parameters are filled from one table naming `a`'s resources, and the
//! body of each route comes from an exhaustive `match` on its id, so a new
//! route or a new parameter fails to compile or panics here.

use std::collections::HashSet;

use exsec::api::routes::{Access, Body, ROUTES, Route, RouteId};
use serde_json::Value;

use crate::server::{Answer, TestServer};

const PROVIDER: &str = "openai";
const KEY: &str = "OPENAI_API_KEY";

/// What `a` and `b` hold, by scope path.
const VALUES: [(&str, &str); 4] = [
    ("/v1/tenants/a", "a-tenant-default-value"),
    ("/v1/apps/a-web", "a-app-override-value"),
    ("/v1/tenants/b", "b-tenant-default-value"),
    ("/v1/apps/b-web", "b-app-override-value"),
];

/// The two tenants, their tokens and a deploy of each app.
struct World {
    server: TestServer,
    a_token: String,
    a_token_id: String,
    b_token: String,
    a_deploy_id: String,
    b_deploy_id: String,
}

impl World {
    async fn new() -> Self {
        let server = TestServer::start().await;
        server.seed("a", &["a-web"]).await;
        server.seed("b", &["b-web"]).await;
        for (scope, value) in VALUES {
            let answer = server.set_secret(scope, PROVIDER, KEY, value).await;
            assert_eq!(answer.status, 201, "{}", answer.text());
        }
        let a_token = server.mint("a").await;
        let b_token = server.mint("b").await;
        let a_deploy_id = deploy(&server, "a-web").await;
        let b_deploy_id = deploy(&server, "b-web").await;
        Self {
            a_token_id: token_id(&a_token),
            server,
            a_token,
            b_token,
            a_deploy_id,
            b_deploy_id,
        }
    }

    /// The value of every path parameter, naming a resource of tenant `a`.
    fn a_params<'a>(&'a self, token_id: &'a str) -> [(&'a str, &'a str); 7] {
        [
            ("tenant_id", "a"),
            ("app_id", "a-web"),
            ("provider", PROVIDER),
            ("key", KEY),
            ("token_id", token_id),
            ("deploy_id", &self.a_deploy_id),
            ("version", "1"),
        ]
    }

    /// Everything tenant `a` owns, read back with the admin token, in a
    /// form that compares equal exactly when nothing changed.
    async fn a_state(&self) -> Vec<String> {
        let mut state = Vec::new();
        for path in [
            "/v1/tenants/a",
            "/v1/tenants/a/tokens",
            "/v1/tenants/a/external-secrets",
            "/v1/apps?tenant_id=a",
            "/v1/apps/a-web",
            "/v1/apps/a-web/external-secrets",
            "/v1/apps/a-web/external-secrets/effective",
            "/v1/apps/a-web/deploys",
        ] {
            let answer = self.server.admin("GET", path, None).await;
            assert_eq!(answer.status, 200, "{path}: {}", answer.text());
            state.push(format!("{path}: {}", answer.text()));
        }
        state.push(format!(
            "manifest values: {:?}",
            self.server.manifest_values("a-web")
        ));
        state
    }

    /// Checks with the admin token that `a`'s values are still the ones
    /// set up (verify writes audit events, so call this last).
    async fn assert_a_values_unchanged(&self) {
        for (scope, value) in &VALUES[..2] {
            let body = serde_json::json!({ "value": value }).to_string();
            let path = format!("{scope}/external-secrets/{PROVIDER}/{KEY}/verify");
            let answer = self.server.admin("POST", &path, Some(&body)).await;
            assert_eq!(answer.status, 200, "{path}: {}", answer.text());
            assert_eq!(answer.json()["match"], true, "{path}");
        }
    }
}

async fn deploy(server: &TestServer, app: &str) -> String {
    let body = format!(r#"{{"image_ref":"registry.example/{app}:1"}}"#);
    let answer = server
        .admin("POST", &format!("/v1/apps/{app}/deploys"), Some(&body))
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text());
    answer.json()["deploy_id"].as_str().unwrap().to_owned()
}

/// `exs_<id>_<secret>` → `<id>`.
fn token_id(token: &str) -> String {
    token.split('_').nth(1).unwrap().to_owned()
}

fn non_public() -> impl Iterator<Item = &'static Route> {
    ROUTES.iter().filter(|r| r.access != Access::Public)
}

/// `route.path` with every `{name}` replaced from `params`; a parameter
/// missing from the table is a test to extend, not a route to skip.
fn fill(route: &Route, params: &[(&str, &str)]) -> String {
    route
        .path
        .split('/')
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => {
                    params
                        .iter()
                        .find(|(n, _)| *n == name)
                        .unwrap_or_else(|| {
                            panic!(
                                "no value for {{{name}}} of {}: extend the table",
                                route.path
                            )
                        })
                        .1
                }
                None => segment,
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// A valid body for each route: had authorization let the call through, it
/// would have changed something. Exhaustive on purpose.
fn body_of(route: &Route) -> Option<&'static str> {
    let body = match route.id {
        RouteId::PutApp => Some(r#"{"tenant_id":"a","required_env":["EXTRA_ENV"]}"#),
        RouteId::PutTenantSecret | RouteId::PutAppSecret => Some(r#"{"value":"replacement"}"#),
        RouteId::VerifyTenantSecret | RouteId::VerifyAppSecret => {
            Some(r#"{"value":"replacement"}"#)
        }
        RouteId::PutTenantSecrets | RouteId::PutAppSecrets => Some(
            r#"{"secrets":[{"provider":"openai","key":"OPENAI_API_KEY","value":"replacement"},{"provider":"other","key":"EXTRA_KEY","value":"extra"}],"replace":true}"#,
        ),
        RouteId::Deploy => Some(r#"{"image_ref":"registry.example/other:2"}"#),
        RouteId::Healthz
        | RouteId::Readyz
        | RouteId::Metrics
        | RouteId::OpenApi
        | RouteId::ListTenants
        | RouteId::PutTenant
        | RouteId::GetTenant
        | RouteId::DeleteTenant
        | RouteId::RotateDataKey
        | RouteId::MintToken
        | RouteId::ListTokens
        | RouteId::RevokeToken
        | RouteId::ListApps
        | RouteId::GetApp
        | RouteId::DeleteApp
        | RouteId::ListTenantSecrets
        | RouteId::DeleteTenantSecret
        | RouteId::ListAppSecrets
        | RouteId::DeleteAppSecret
        | RouteId::ListTenantSecretVersions
        | RouteId::ListAppSecretVersions
        | RouteId::RestoreTenantSecret
        | RouteId::RestoreAppSecret
        | RouteId::Unpin
        | RouteId::Effective
        | RouteId::ListDeploys
        | RouteId::GetDeploy
        | RouteId::AppCluster
        | RouteId::ListAuditEvents
        | RouteId::Keys
        | RouteId::Backup => None,
    };
    assert!(
        body.is_some() || route.body != Body::Required,
        "{} requires a body",
        route.path
    );
    body
}

async fn call(server: &TestServer, route: &Route, path: &str, token: Option<&str>) -> Answer {
    server
        .call(route.method.as_str(), path, token, body_of(route))
        .await
}

/// The `tenant_id` of every item of `list` (a JSON array).
fn tenants_of(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|item| item["tenant_id"].as_str().unwrap_or("(none)"))
        .collect()
}

#[tokio::test]
async fn another_tenants_token_gets_404_everywhere_and_changes_nothing() {
    let world = World::new().await;
    let server = &world.server;
    let params = world.a_params(&world.a_token_id);
    let b = Some(world.b_token.as_str());
    let mut seq = server.audit_seq().await;
    let state = world.a_state().await;
    let mut covered = HashSet::new();
    for route in non_public() {
        let label = format!("{} {}", route.method, route.path);
        match route.access {
            Access::Tenant | Access::Admin => {
                let path = fill(route, &params);
                let answer = call(server, route, &path, b).await;
                assert_eq!(answer.status, 404, "{label}: {}", answer.text());
                let code = if route.access == Access::Admin {
                    "not_found"
                } else if route.path.contains("{tenant_id}") {
                    "tenant_not_found"
                } else {
                    "app_not_found"
                };
                answer.assert_problem(404, code);
            }
            Access::Authenticated => {
                let answer = call(server, route, route.path, b).await;
                assert_eq!(answer.status, 200, "{label}: {}", answer.text());
                let text = answer.text();
                for a_data in ["a-web", &world.a_token_id, r#""tenant_id":"a""#] {
                    assert!(!text.contains(a_data), "{label} shows {a_data}: {text}");
                }
                let page = answer.json();
                match route.id {
                    RouteId::ListTenants => {
                        assert_eq!(tenants_of(&page["tenants"]), ["b"], "{label}");
                        // The list takes no filter: naming `a` is refused
                        // and shows nothing of it.
                        let named = call(server, route, "/v1/tenants?tenant_id=a", b).await;
                        named.assert_problem(400, "invalid_query");
                        assert!(!named.text().contains("\"a\""), "{}", named.text());
                    }
                    RouteId::ListApps => {
                        assert_eq!(tenants_of(&page["apps"]), ["b"], "{label}");
                        assert_eq!(page["apps"][0]["app_id"], "b-web");
                        call(server, route, "/v1/apps?tenant_id=a", b)
                            .await
                            .assert_problem(404, "tenant_not_found");
                    }
                    RouteId::ListAuditEvents => {
                        let tenants = tenants_of(&page["events"]);
                        assert!(!tenants.is_empty(), "b sees its own events");
                        assert!(tenants.iter().all(|t| *t == "b"), "{tenants:?}");
                        call(server, route, "/v1/audit-events?tenant_id=a", b)
                            .await
                            .assert_problem(404, "tenant_not_found");
                        let by_app = call(server, route, "/v1/audit-events?app_id=a-web", b).await;
                        assert_eq!(by_app.status, 200, "{}", by_app.text());
                        assert_eq!(by_app.json()["events"], serde_json::json!([]));
                    }
                    other => panic!("{other:?} is a new Authenticated route: add its check"),
                }
            }
            Access::Public => unreachable!("filtered out"),
        }
        let now = server.audit_seq().await;
        assert_eq!(now, seq, "{label} wrote an audit event");
        seq = now;
        assert_eq!(world.a_state().await, state, "{label} changed a's data");
        covered.insert(route.id);
    }
    assert_eq!(covered.len(), non_public().count(), "a route was skipped");
    world.assert_a_values_unchanged().await;
}

#[tokio::test]
async fn another_tenants_token_cannot_reach_a_through_its_own_paths() {
    let world = World::new().await;
    let server = &world.server;
    let b = Some(world.b_token.as_str());
    let seq = server.audit_seq().await;
    let state = world.a_state().await;

    // A token id or deploy id of `a` under `b`'s own path is simply absent.
    let path = format!("/v1/tenants/b/tokens/{}", world.a_token_id);
    server
        .call("DELETE", &path, b, None)
        .await
        .assert_problem(404, "token_not_found");
    let path = format!("/v1/apps/b-web/deploys/{}", world.a_deploy_id);
    server
        .call("GET", &path, b, None)
        .await
        .assert_problem(404, "deploy_not_found");
    // `b` cannot deploy its app as `a`'s.
    let body = r#"{"tenant_id":"a","image_ref":"registry.example/b-web:2"}"#;
    server
        .call("POST", "/v1/apps/b-web/deploys", b, Some(body))
        .await
        .assert_problem(422, "tenant_mismatch");
    // A verify of `a`'s value through `b`'s own scope finds b's secret only.
    let body = serde_json::json!({ "value": VALUES[0].1 }).to_string();
    let path = format!("/v1/tenants/b/external-secrets/{PROVIDER}/{KEY}/verify");
    let answer = server.call("POST", &path, b, Some(&body)).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["match"], false);

    assert_eq!(world.a_state().await, state);
    let audited = server.audit_seq().await - seq;
    assert_eq!(audited, 1, "only the verify is audited");
    // b reads its own deploy, and only b's values ever reached b's app.
    let path = format!("/v1/apps/b-web/deploys/{}", world.b_deploy_id);
    let answer = server.call("GET", &path, b, None).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["external_secrets"]["status"], "injected");
    server.assert_manifest_values("b-web", &[(KEY, VALUES[3].1)]);
    world.assert_a_values_unchanged().await;
}

#[tokio::test]
async fn the_owners_token_succeeds_on_tenant_routes_and_gets_404_on_admin_routes() {
    let world = World::new().await;
    let server = &world.server;
    // RevokeToken needs a token of `a` that is not the one calling.
    let spare = token_id(&server.mint("a").await);
    let params = world.a_params(&spare);
    let a = Some(world.a_token.as_str());

    // Admin routes first: a 404 that changes nothing.
    let seq = server.audit_seq().await;
    let state = world.a_state().await;
    for route in non_public().filter(|r| r.access == Access::Admin) {
        let path = fill(route, &params);
        let answer = call(server, route, &path, a).await;
        assert_eq!(
            answer.status,
            404,
            "{} {path}: {}",
            route.method,
            answer.text()
        );
        answer.assert_problem(404, "not_found");
    }
    assert_eq!(server.audit_seq().await, seq);
    assert_eq!(world.a_state().await, state);

    // Tenant routes: everything works; deletions run last so that the
    // other routes still find what they name.
    let tenant_routes: Vec<&Route> = non_public()
        .filter(|r| r.access == Access::Tenant)
        .collect();
    let (deletes, others): (Vec<&Route>, Vec<&Route>) = tenant_routes
        .iter()
        .copied()
        .partition(|r| r.method == hyper::Method::DELETE);
    let mut covered = HashSet::new();
    for route in others.into_iter().chain(deletes) {
        let path = fill(route, &params);
        let answer = call(server, route, &path, a).await;
        assert!(
            (200..300).contains(&answer.status),
            "{} {path}: {} {}",
            route.method,
            answer.status,
            answer.text()
        );
        covered.insert(route.id);
    }
    assert_eq!(covered.len(), tenant_routes.len());
    // What the calls did is attributed to a's token.
    let page = server
        .admin("GET", "/v1/audit-events?type=external_secret.deleted", None)
        .await
        .json();
    let actors: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    let actor = format!("token:{}", world.a_token_id);
    assert_eq!(actors, [actor.as_str(), actor.as_str()]);
}

#[tokio::test]
async fn missing_revoked_and_forged_tokens_get_401_on_every_non_public_route() {
    let world = World::new().await;
    let server = &world.server;
    let revoked = server.mint("a").await;
    let path = format!("/v1/tenants/a/tokens/{}", token_id(&revoked));
    assert_eq!(server.admin("DELETE", &path, None).await.status, 204);
    let params = world.a_params(&world.a_token_id);
    let seq = server.audit_seq().await;
    let state = world.a_state().await;

    let almost = format!("exs_{}_wrong", world.a_token_id);
    let mut flipped = world.a_token.clone();
    let last = if flipped.ends_with('A') { "B" } else { "A" };
    flipped.replace_range(flipped.len() - 1.., last);
    // The secret part is base64url and may itself contain '_'.
    let b_secret = world.b_token.splitn(3, '_').nth(2).unwrap();
    let other_secret = format!("exs_{}_{b_secret}", world.a_token_id);
    let admin_plus = format!("{}x", server.admin_token);
    let bearer = |token: &str| format!("Bearer {token}");
    let credentials: Vec<(String, Option<String>)> = vec![
        ("no token".into(), None),
        ("revoked token".into(), Some(bearer(&revoked))),
        ("exs_<real id>_wrong".into(), Some(bearer(&almost))),
        ("last character changed".into(), Some(bearer(&flipped))),
        ("a's id with b's secret".into(), Some(bearer(&other_secret))),
        ("admin token plus a byte".into(), Some(bearer(&admin_plus))),
        ("garbage".into(), Some(bearer("garbage"))),
        ("empty bearer".into(), Some("Bearer ".into())),
        (
            "basic scheme".into(),
            Some(format!("Basic {}", server.admin_token)),
        ),
    ];
    let mut covered = HashSet::new();
    for route in non_public() {
        let path = fill(route, &params);
        for (what, authorization) in &credentials {
            let headers: Vec<(&str, &str)> = authorization
                .iter()
                .map(|value| ("authorization", value.as_str()))
                .collect();
            let answer = server
                .call_with(route.method.as_str(), &path, None, body_of(route), &headers)
                .await;
            assert_eq!(
                answer.status,
                401,
                "{} {path} with {what}: {}",
                route.method,
                answer.text()
            );
            answer.assert_problem(401, "unauthenticated");
            assert_eq!(
                answer.headers.get("www-authenticate").unwrap(),
                "Bearer",
                "{what}"
            );
        }
        covered.insert(route.id);
    }
    assert_eq!(covered.len(), non_public().count());
    assert_eq!(server.audit_seq().await, seq);
    assert_eq!(world.a_state().await, state);

    // Public routes need no token.
    for route in ROUTES.iter().filter(|r| r.access == Access::Public) {
        let answer = server
            .call(route.method.as_str(), route.path, None, None)
            .await;
        assert_eq!(answer.status, 200, "{}: {}", route.path, answer.text());
    }
    // The real token still works: the 401s were about the credentials.
    let answer = server
        .call("GET", "/v1/tenants/a", Some(&world.a_token), None)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
}
