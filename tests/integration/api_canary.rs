//! A whole API session with canary values, with every `tracing` event of
//! the server captured at TRACE level: the canaries must appear in no log
//! line, no response (body or header), no audit event and not in the redb
//! file — only in the manifests file, base64-encoded, which is the one
//! documented place plaintext goes (SPEC §5), and which this test checks
//! so that it cannot pass by injecting nothing.
//!
//! How the logs are captured: tests run in parallel threads of one
//! process, so a global subscriber would mix in other tests' events, and a
//! thread-local default set in a `#[tokio::test]` would miss the store's
//! work, which runs on `spawn_blocking` threads. So this is a plain
//! `#[test]` that builds its own current-thread runtime: the server's
//! tasks all run on the test's thread, inside `with_default`, and the
//! runtime's blocking-pool threads (which belong to this runtime alone)
//! get the same subscriber as their default from `on_thread_start` until
//! `on_thread_stop`. One more trap: while exactly one dispatcher is
//! registered in the process, tracing computes a callsite's interest from
//! the default of whichever thread hits it first — another test's thread
//! with no subscriber would mark our callsites "never" for good. A second,
//! silent dispatcher kept alive for the test makes tracing ask every
//! registered dispatcher instead ("sometimes": each event then checks the
//! subscriber of its own thread). The log must contain both request lines
//! (async tasks) and audit lines (blocking threads), which proves the
//! capture covers both.

use std::cell::RefCell;

use crate::harness::Capture;
use base64::Engine as _;
use tracing::Dispatch;
use tracing::dispatcher::DefaultGuard;

use crate::server::{Answer, TestServer};

/// Common to every canary, to search for any of them at once.
const MARK: &str = "cnry0d5e7c1b";
/// A tenant default that the app override hides: in no file at all.
const TENANT_HIDDEN: &str = "sk-cnry0d5e7c1b-tenant-hidden";
/// A tenant default the app inherits.
const TENANT_SHARED: &str = "sk-cnry0d5e7c1b-tenant-shared";
/// The first value of the app override, replaced before the deploy.
const APP_OLD: &str = "sk-cnry0d5e7c1b-app-old";
/// The app override that is deployed.
const APP_LIVE: &str = "sk-cnry0d5e7c1b-app-live";

const ALL: [&str; 4] = [TENANT_HIDDEN, TENANT_SHARED, APP_OLD, APP_LIVE];

thread_local! {
    /// The subscriber of a blocking-pool thread of the test's runtime.
    static BLOCKING_THREAD_DEFAULT: RefCell<Option<DefaultGuard>> = const { RefCell::new(None) };
}

/// Every form in which a canary could leak: as is, base64 and hex.
fn forms(value: &str) -> [String; 4] {
    let engine = &base64::engine::general_purpose::STANDARD;
    let url = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
    [
        value.to_owned(),
        engine.encode(value),
        url.encode(value),
        hex::encode(value),
    ]
}

/// Panics if `haystack` holds a canary (or its mark) in any form.
#[track_caller]
fn assert_clean(what: &str, haystack: &[u8]) {
    let found = |needle: &str| {
        haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    };
    assert!(!found(MARK), "canary in {what}");
    for canary in ALL {
        for form in forms(canary) {
            assert!(!found(&form), "{canary} ({form}) in {what}");
        }
    }
}

/// Every answer of the session, as text (status, headers, body).
#[derive(Default)]
struct Transcript(Vec<String>);

impl Transcript {
    fn keep(&mut self, what: &str, answer: &Answer) {
        self.0.push(format!(
            "{what} -> {} {:?}\n{}",
            answer.status,
            answer.headers,
            answer.text()
        ));
    }
}

#[test]
fn canary_values_reach_only_the_manifest() {
    let capture = Capture::default();
    // Registered first, so that ours is never the only one (see above).
    let _silent = Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let dispatch = Dispatch::new(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(capture.clone())
            .finish(),
    );
    let for_threads = dispatch.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_start(move || {
            let guard = tracing::dispatcher::set_default(&for_threads);
            BLOCKING_THREAD_DEFAULT.with(|slot| *slot.borrow_mut() = Some(guard));
        })
        .on_thread_stop(|| {
            BLOCKING_THREAD_DEFAULT.with(|slot| slot.borrow_mut().take());
        })
        .build()
        .unwrap();
    let (dir, transcript, audit) =
        tracing::dispatcher::with_default(&dispatch, || runtime.block_on(session()));
    // Joins the blocking threads, so their events are in the capture.
    drop(runtime);

    let logs = capture.text();
    assert!(
        logs.contains(" request ") && logs.contains("deploy finished"),
        "no async-task events captured:\n{logs}"
    );
    assert!(
        logs.contains("audit event") && logs.contains("external_secret.injected"),
        "no blocking-thread events captured:\n{logs}"
    );
    assert_clean("the logs", logs.as_bytes());
    for answer in &transcript.0 {
        assert_clean(&format!("an answer: {answer}"), answer.as_bytes());
    }
    assert!(
        audit.contains("external_secret.verified") && audit.contains("external_secret.injected"),
        "{audit}"
    );
    assert_clean("the audit log", audit.as_bytes());

    // The one exception: the manifest holds the deployed values, base64.
    let manifest = std::fs::read(dir.path().join("manifests/web.yaml")).unwrap();
    let engine = &base64::engine::general_purpose::STANDARD;
    let contains = |needle: &str| {
        manifest
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    };
    for live in [APP_LIVE, TENANT_SHARED] {
        assert!(contains(&engine.encode(live)), "{live} not in the manifest");
        assert!(!contains(live), "{live} in the manifest unencoded");
    }
    for gone in [APP_OLD, TENANT_HIDDEN] {
        assert!(!contains(&engine.encode(gone)), "{gone} in the manifest");
    }
    let db = std::fs::read(dir.path().join("exsec.redb")).unwrap();
    let key_name = b"ANTHROPIC_API_KEY".as_slice();
    assert!(
        db.windows(key_name.len()).any(|w| w == key_name),
        "not the file the session wrote"
    );
    assert_clean("the redb file", &db);
}

/// The session: returns the server's directory (after it stopped), every
/// answer, and the whole audit log as text.
async fn session() -> (tempfile::TempDir, Transcript, String) {
    let server = TestServer::start().await;
    let mut transcript = Transcript::default();
    server.seed("acme", &["web"]).await;
    let admin = server.admin_token.clone();
    let token = server.mint("acme").await;

    let mut call = async |what: &str, method: &str, path: &str, who: &str, body: Option<&str>| {
        let token = if who == "admin" { &admin } else { &token };
        let answer = server.call(method, path, Some(token), body).await;
        transcript.keep(&format!("{what}: {method} {path}"), &answer);
        answer
    };
    let value = |v: &str| serde_json::json!({ "value": v }).to_string();
    let tenant_openai = "/v1/tenants/acme/external-secrets/openai/OPENAI_API_KEY";
    let tenant_anthropic = "/v1/tenants/acme/external-secrets/anthropic/ANTHROPIC_API_KEY";
    let app_openai = "/v1/apps/web/external-secrets/openai/OPENAI_API_KEY";

    for (path, who, v, status) in [
        (tenant_openai, "admin", TENANT_HIDDEN, 201),
        (tenant_anthropic, "tenant", TENANT_SHARED, 201),
        (app_openai, "admin", APP_OLD, 201),
        (app_openai, "tenant", APP_LIVE, 200),
    ] {
        let answer = call("set", "PUT", path, who, Some(&value(v))).await;
        assert_eq!(answer.status, status, "{}", answer.text());
    }
    for path in [
        "/v1/tenants/acme/external-secrets",
        "/v1/apps/web/external-secrets",
        "/v1/apps/web/external-secrets/effective",
    ] {
        let answer = call("list", "GET", path, "tenant", None).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
    }
    let deploy = r#"{"image_ref":"registry.example/web:1","port":8080}"#;
    let answer = call(
        "dry run",
        "POST",
        "/v1/apps/web/deploys?dry_run=true",
        "tenant",
        Some(deploy),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let answer = call(
        "deploy",
        "POST",
        "/v1/apps/web/deploys",
        "tenant",
        Some(deploy),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.text());
    let answer_json = answer.json();
    assert_eq!(answer_json["external_secrets"]["status"], "injected");
    assert_eq!(answer_json["external_secrets"]["key_count"], 2);
    let deploy_id = answer_json["deploy_id"].as_str().unwrap().to_owned();
    let values = server.manifest_values("web").unwrap();
    assert_eq!(values["OPENAI_API_KEY"], APP_LIVE);
    assert_eq!(values["ANTHROPIC_API_KEY"], TENANT_SHARED);

    for (path, candidate, expected) in [
        (app_openai, APP_LIVE, true),
        (app_openai, APP_OLD, false),
        (tenant_openai, TENANT_HIDDEN, true),
        (tenant_openai, APP_LIVE, false),
    ] {
        let verify = format!("{path}/verify");
        let answer = call("verify", "POST", &verify, "tenant", Some(&value(candidate))).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.json()["match"], expected);
    }
    for (path, who) in [
        ("/v1/apps/web/deploys".to_owned(), "tenant"),
        (format!("/v1/apps/web/deploys/{deploy_id}"), "tenant"),
        (
            "/v1/apps/web/external-secrets/effective".to_owned(),
            "tenant",
        ),
        ("/v1/audit-events".to_owned(), "tenant"),
        ("/v1/keys".to_owned(), "admin"),
        ("/metrics".to_owned(), "admin"),
        ("/readyz".to_owned(), "admin"),
    ] {
        let answer = call("read", "GET", &path, who, None).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.text());
    }

    // The canary in wrong places: each refused without repeating it.
    let mistakes = [
        (
            "PUT",
            app_openai,
            format!(r#"{{"value":"{APP_LIVE}","port":"{APP_LIVE}"}}"#),
        ),
        ("PUT", app_openai, format!(r#"{{"value":["{APP_LIVE}"]}}"#)),
        ("PUT", app_openai, format!(r#"{{"value":"{APP_LIVE}"#)),
        (
            "PUT",
            app_openai,
            format!(r#"{{"value":"{APP_LIVE}\u0000"}}"#),
        ),
        (
            "PUT",
            "/v1/apps/web/external-secrets/openai/BAD-KEY",
            value(APP_LIVE),
        ),
        (
            "POST",
            "/v1/apps/web/deploys",
            format!(r#"{{"image_ref":"img:1","port":"{APP_LIVE}"}}"#),
        ),
        (
            "POST",
            "/v1/apps/web/deploys",
            format!(r#"{{"image_ref":"img:1","app_id":"{APP_LIVE}"}}"#),
        ),
        (
            "POST",
            "/v1/apps/web/deploys",
            format!(r#"{{"image_ref":"img:1","tenant_id":"{APP_LIVE}"}}"#),
        ),
        (
            "POST",
            "/v1/apps/web/deploys",
            format!(r#"{{"image_ref":"{APP_LIVE} x"}}"#),
        ),
        (
            "POST",
            "/v1/apps/web/deploys",
            format!(r#"{{"image_ref":"img:1","value":"{APP_LIVE}"}}"#),
        ),
    ];
    for (method, path, body) in &mistakes {
        let answer = call("mistake", method, path, "tenant", Some(body)).await;
        assert!(
            (400..500).contains(&answer.status),
            "{method} {path} {body}: {}",
            answer.text()
        );
    }
    let answer = server
        .call("GET", "/v1/apps/web", Some(TENANT_SHARED), None)
        .await;
    transcript.keep("canary as a token", &answer);
    assert_eq!(answer.status, 401);

    let mut audit = String::new();
    let mut after = 0;
    loop {
        let page = server
            .admin("GET", &format!("/v1/audit-events?after={after}"), None)
            .await;
        audit.push_str(&page.text());
        let page = page.json();
        let Some(next) = page["next_after"].as_u64() else {
            break;
        };
        after = next;
    }
    (server.stop().await, transcript, audit)
}
