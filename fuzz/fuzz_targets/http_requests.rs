//! Whole HTTP requests, answered in-process by a real server
//! (`exsec::app::Server::handle`: routing, auth, query and body limits,
//! handlers, the redb store, deploys to the manifests target). The input
//! picks the method, the credentials (admin, a tenant's token, a made-up
//! token, none), the path with its query, and the body.
//!
//! Checked on every answer: never a 500; an error answer is
//! `application/problem+json`; the seeded secret value never comes back,
//! and neither does a body's `value` of 12 bytes or more (a value must not
//! echo, not even in an error).
#![no_main]

use std::sync::OnceLock;

use exsec::app::Server;
use hyper::Request;
use http_body_util::{BodyExt, Full};
use libfuzzer_sys::fuzz_target;
use bytes::Bytes;

/// The canary: a secret value written once at start-up.
const CANARY: &str = "sk-fuzz-canary-9f1c2b7e5a";

struct Fixture {
    runtime: tokio::runtime::Runtime,
    server: Server,
    admin: String,
    tenant: String,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        exsec::crypto::generate_key_file(&dir.path().join("keys.d"), std::time::SystemTime::now())
            .unwrap();
        let config_path = dir.path().join("config.toml");
        let text = r#"[server]
listen = "127.0.0.1:0"
[storage]
path = "exsec.redb"
cache_size = "4MiB"
[keys]
dir = "keys.d"
[auth]
admin_token_file = "admin.token"
[cluster]
target = "manifests"
[manifests]
dir = "manifests"
[log]
format = "json"
"#;
        std::fs::write(&config_path, text).unwrap();
        let config = exsec::config::Config::load(&config_path).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let server = runtime.block_on(exsec::app::start(&config, None)).unwrap();
        let admin = std::fs::read_to_string(server.admin_token_file()).unwrap().trim().to_owned();
        let mut fixture = Fixture { runtime, server, admin, tenant: String::new(), _dir: dir };
        let seed = [
            ("PUT", "/v1/tenants/acme", String::new()),
            ("PUT", "/v1/apps/web", r#"{"tenant_id":"acme"}"#.to_owned()),
            ("PUT", "/v1/tenants/acme/external-secrets/openai/OPENAI_API_KEY", format!(r#"{{"value":"{CANARY}"}}"#)),
            ("POST", "/v1/apps/web/deploys", r#"{"image_ref":"nginx"}"#.to_owned()),
        ];
        for (method, path, body) in seed {
            let (status, _) = fixture.call(method, path, Some(&fixture.admin.clone()), body.into_bytes());
            assert!(status < 300, "seeding {method} {path}: {status}");
        }
        let (status, minted) = fixture.call("POST", "/v1/tenants/acme/tokens", Some(&fixture.admin.clone()), b"{}".to_vec());
        assert_eq!(status, 201, "minting a tenant token");
        let minted: serde_json::Value = serde_json::from_slice(&minted).unwrap();
        fixture.tenant = minted["token"].as_str().unwrap().to_owned();
        fixture
    })
}

impl Fixture {
    /// One request; `None` when it cannot be built (hyper refuses such a
    /// request line before exsec sees it).
    fn try_call(&self, method: &[u8], path: &str, token: Option<&str>, body: Vec<u8>) -> Option<(u16, Option<String>, Vec<u8>)> {
        let mut request = Request::builder()
            .method(hyper::Method::from_bytes(method).ok()?)
            .uri(path)
            .header("content-type", "application/json");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request.body(Full::new(Bytes::from(body))).ok()?;
        let response = self.runtime.block_on(self.server.handle(request));
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = self.runtime.block_on(response.into_body().collect()).ok()?.to_bytes().to_vec();
        Some((status, content_type, body))
    }

    fn call(&self, method: &str, path: &str, token: Option<&str>, body: Vec<u8>) -> (u16, Vec<u8>) {
        let (status, _, body) = self.try_call(method.as_bytes(), path, token, body).unwrap();
        (status, body)
    }
}

const METHODS: [&[u8]; 6] = [b"GET", b"PUT", b"POST", b"DELETE", b"PATCH", b"BREW"];
const PREFIXES: [&str; 6] = ["/v1/tenants/acme", "/v1/apps/web", "/v1/", "/v1/audit", "/", "/v1/apps/web/deploys/"];

fuzz_target!(|input: &[u8]| {
    let fixture = fixture();
    let [pick, who, rest @ ..] = input else { return };
    let method = METHODS[usize::from(*pick) % METHODS.len()];
    let prefix = PREFIXES[usize::from(pick / 6) % PREFIXES.len()];
    // The path suffix runs to the first 0 byte; the rest is the body.
    let split = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
    let Ok(suffix) = std::str::from_utf8(&rest[..split]) else { return };
    let body = rest.get(split + 1..).unwrap_or_default().to_vec();
    let token = match who % 4 {
        0 => Some(fixture.admin.as_str()),
        1 => Some(fixture.tenant.as_str()),
        2 => Some("exsec_tok_made_up_0123456789abcdef0123456789"),
        _ => None,
    };
    let path = format!("{prefix}{suffix}");
    let Some((status, content_type, answer)) = fixture.try_call(method, &path, token, body.clone()) else { return };
    let text = String::from_utf8_lossy(&answer);
    assert_ne!(status, 500, "500 for {} {path}: {text}", String::from_utf8_lossy(method));
    if status >= 400 {
        assert_eq!(content_type.as_deref(), Some("application/problem+json"), "{status} {path}: {text}");
    }
    assert!(!text.contains(CANARY), "the canary came back: {path}: {text}");
    // A secret value travels only in a body's `value`; no answer carries it.
    if let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(&body)
        && let Some(sent) = fields.get("value").and_then(|v| v.as_str()).filter(|t| t.len() >= 12)
        // A 404 echoes (up to 128 bytes of) the path, by design.
        && !path.contains(sent)
    {
        assert!(!text.contains(sent), "a submitted value came back: {path}: {text}");
    }
});
