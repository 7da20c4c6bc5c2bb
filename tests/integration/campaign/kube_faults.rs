//! Deploys against a Kubernetes API that fails a fifth of its requests
//! (SPEC §4: injection is best-effort, never a false success). The
//! stand-in's chaos knob answers 500, 503, 504, 429 with `Retry-After`,
//! drops connections before and after the apply took effect, and holds
//! answers back past the deploy budget, while one client per app deploys
//! over and over with a secret changed between deploys. After every answer
//! the cluster is compared with what the answer says:
//!
//! - `201` + `injected`: the Deployment carries this deploy's image and id,
//!   the Secret holds exactly the effective set at the deploy.
//! - `201` + injection `failed`: the Deployment is this deploy's (the Secret
//!   may be either: the answer does not claim it).
//! - `502`: the record says failed; nothing is claimed.
//!
//! Anything else, or a record that disagrees with the answer, fails the
//! test. Once the faults stop, one more deploy per app puts every app right.
//! CI runs 64 deploys; `scripts/kube-faults.sh --deploys 1000` the full size.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube_standin::ChaosRule;
use serde_json::{Value, json};

use super::{Rng, seed, size};
use crate::kubernetes::{deployment, secret_values};
use crate::server::{Options, TestServer};

/// Apps deployed side by side, one client each.
const APPS: usize = 8;
/// Share of the cluster requests that fail.
const FAULT_PERCENT: u8 = 20;

/// What one app's client saw.
#[derive(Debug, Default)]
struct Tally {
    succeeded: u64,
    injected: u64,
    injection_failed: u64,
    failed: u64,
    /// Answers whose claims the cluster or the record contradicts.
    false_claims: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deploys_under_kubernetes_faults_never_claim_a_false_success() {
    let seed = seed("kube_faults");
    let deploys = size("EXSEC_CAMPAIGN_DEPLOYS", 64);
    let server = TestServer::start_with(Options {
        // A held-back answer (3 s) outlasts the budget.
        deploy_timeout: "2s",
        ..Options::kubernetes()
    })
    .await;
    let apps: Vec<String> = (0..APPS).map(|a| format!("web{a}")).collect();
    let names: Vec<&str> = apps.iter().map(String::as_str).collect();
    server.seed("acme", &names).await;
    for key in ["TENANT_A", "TENANT_B"] {
        let answer = server
            .set_secret("/v1/tenants/acme", "p", key, &format!("{key}-value"))
            .await;
        assert_eq!(answer.status, 201, "{}", answer.text());
    }
    let cluster = server.cluster.as_ref().unwrap();
    cluster.faults().chaos(
        ChaosRule::new(FAULT_PERCENT)
            .seed(seed)
            .slow(std::time::Duration::from_secs(3))
            .path_contains("/namespaces/paas-apps/"),
    );

    let server = Arc::new(server);
    let per_app = deploys.div_ceil(APPS as u64);
    let clients: Vec<_> = apps
        .iter()
        .enumerate()
        .map(|(a, app)| {
            let (server, app) = (server.clone(), app.clone());
            let rng = Rng(seed ^ (a as u64 + 1));
            tokio::spawn(async move { deploy_over_and_over(&server, &app, per_app, rng).await })
        })
        .collect();
    let mut tally = Tally::default();
    for client in clients {
        let app = client.await.unwrap();
        tally.succeeded += app.succeeded;
        tally.injected += app.injected;
        tally.injection_failed += app.injection_failed;
        tally.failed += app.failed;
        tally.false_claims.extend(app.false_claims);
    }
    let cluster = server.cluster.as_ref().unwrap();
    let injected_faults = cluster.faults().state().chaos_injected;
    cluster.faults().clear();
    println!(
        "kube_faults: {} deploys under {FAULT_PERCENT}% faults: {} succeeded ({} injected, {} injection failed), {} failed; faults injected {injected_faults:?}; false claims {}",
        per_app * APPS as u64,
        tally.succeeded,
        tally.injected,
        tally.injection_failed,
        tally.failed,
        tally.false_claims.len()
    );
    assert!(
        tally.false_claims.is_empty(),
        "answers the cluster contradicts:\n{}",
        tally.false_claims.join("\n")
    );
    assert!(
        injected_faults.values().sum::<u64>() > 0,
        "no fault was injected: the run proves nothing"
    );

    // The faults stop: one deploy per app puts it right.
    for app in &apps {
        let answer = server
            .deploy(app, json!({ "image_ref": "nginx:final" }))
            .await;
        assert_eq!(answer.status, 201, "{}", answer.text());
        let body = answer.json();
        assert_eq!(body["external_secrets"]["status"], "injected", "{body}");
        let claims = check_success(
            &server,
            app,
            &body,
            &expected_set(app, current_round(&server, app).await),
        );
        assert_eq!(claims, Vec::<String>::new());
    }
    crate::operator::admin_run(&server, "audit verify", None)
        .await
        .expect(0);
}

/// Deploys `app` `count` times, changing its secret before some deploys,
/// and checks every answer against the cluster and the record.
async fn deploy_over_and_over(server: &TestServer, app: &str, count: u64, mut rng: Rng) -> Tally {
    let mut tally = Tally::default();
    let mut round = 0;
    for n in 0..count {
        if rng.between(0..2) == 0 || n == 0 {
            round += 1;
            let answer = server
                .set_secret(
                    &format!("/v1/apps/{app}"),
                    "p",
                    "ROUND",
                    &round_value(app, round),
                )
                .await;
            assert!(
                answer.status == 200 || answer.status == 201,
                "{}",
                answer.text()
            );
        }
        let image = format!("nginx:{n}");
        let answer = server.deploy(app, json!({ "image_ref": image })).await;
        let body = answer.json();
        let id = body["deploy_id"].as_str().unwrap_or_default().to_owned();
        let record = server
            .admin("GET", &format!("/v1/apps/{app}/deploys/{id}"), None)
            .await;
        match answer.status {
            201 => {
                tally.succeeded += 1;
                let claims = check_success(server, app, &body, &expected_set(app, round));
                tally.false_claims.extend(claims);
                match body["external_secrets"]["status"].as_str() {
                    Some("injected") => tally.injected += 1,
                    Some("failed") => tally.injection_failed += 1,
                    other => panic!("{app} deploy {n}: injection {other:?}: {body}"),
                }
            }
            502 => {
                tally.failed += 1;
                assert_eq!(body["code"], "deployment_apply_failed", "{body}");
            }
            status => panic!("{app} deploy {n}: unexpected {status}: {body}"),
        }
        // The record agrees with the answer (read under faults: never a 5xx).
        assert_eq!(record.status, 200, "{}", record.text());
        let record = record.json();
        let expected = if answer.status == 201 {
            "succeeded"
        } else {
            "failed"
        };
        if record["status"] != expected
            || record["external_secrets"]["status"] != body["external_secrets"]["status"]
        {
            tally
                .false_claims
                .push(format!("{app} {id}: answer {body} but record {record}"));
        }
    }
    tally
}

/// What a `201` claims, compared with the cluster: the Deployment is this
/// deploy's, and an `injected` Secret holds exactly `expected`. Returns
/// each contradiction found.
fn check_success(
    server: &TestServer,
    app: &str,
    body: &Value,
    expected: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut claims = Vec::new();
    let id = &body["deploy_id"];
    match deployment(server, app) {
        None => claims.push(format!("{app} {id}: succeeded, but no Deployment")),
        Some(live) => {
            let template = &live["spec"]["template"];
            let image = &template["spec"]["containers"][0]["image"];
            if *image != body["image_ref"]
                || live["metadata"]["annotations"]["exsec.io/deploy-id"] != *id
                || template["metadata"]["annotations"]["exsec.io/secrets-hash"]
                    != body["secrets_hash"]
            {
                claims.push(format!(
                    "{app} {id}: succeeded with {}, but the Deployment runs {image} of {} ({})",
                    body["image_ref"],
                    live["metadata"]["annotations"],
                    template["metadata"]["annotations"]
                ));
            }
        }
    }
    if body["external_secrets"]["status"] == "injected" {
        let live = secret_values(server, app);
        if live.as_ref() != Some(expected) {
            claims.push(format!(
                "{app} {id}: injected, but the Secret holds {live:?} instead of {expected:?}"
            ));
        }
    }
    claims
}

/// The effective set of `app` after `round` changes of its own secret.
fn expected_set(app: &str, round: u64) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("TENANT_A".to_owned(), "TENANT_A-value".to_owned()),
        ("TENANT_B".to_owned(), "TENANT_B-value".to_owned()),
        ("ROUND".to_owned(), round_value(app, round)),
    ])
}

fn round_value(app: &str, round: u64) -> String {
    format!("{app}-round-{round}")
}

/// The round of `app`'s secret as stored (its version: one write per round).
async fn current_round(server: &TestServer, app: &str) -> u64 {
    let listed = server
        .admin("GET", &format!("/v1/apps/{app}/external-secrets"), None)
        .await
        .json();
    listed["secrets"][0]["version"].as_u64().unwrap()
}
