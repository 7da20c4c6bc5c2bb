//! How fast the stand-in answers exsec-shaped deploys: each iteration server-side applies
//! a 50-key Secret and a Deployment through kube-rs, from 32 concurrent clients over
//! loopback. Bounded: a fixed number of deploys, in-process, nothing leaves 127.0.0.1.
//!
//! `cargo run --release -p kube-standin --example apply_throughput [DEPLOYS]`
//!
//! With `STANDIN_KUBECONFIG=PATH` it drives an already running `kube-standin` binary
//! instead of an in-process one, so server and client CPU can be measured apart.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a measurement tool: failing loudly is the point"
)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use kube_standin::StandIn;
use serde_json::json;

const CLIENTS: usize = 32;
const APPS: usize = 100;

#[tokio::main]
async fn main() {
    let deploys: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let (standin, kubeconfig) = match std::env::var("STANDIN_KUBECONFIG") {
        Ok(path) => (None, Kubeconfig::read_from(path).expect("kubeconfig")),
        Err(_) => {
            let standin = StandIn::start().await.expect("start");
            standin.create_namespace("paas-apps").expect("namespace");
            let text = standin.kubeconfig("paas-apps").to_string();
            (
                Some(standin),
                Kubeconfig::from_yaml(&text).expect("kubeconfig"),
            )
        }
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config");
    let client = Client::try_from(config).expect("client");

    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..CLIENTS {
        let client = client.clone();
        workers.push(tokio::spawn(async move {
            let secrets: Api<Secret> = Api::namespaced(client.clone(), "paas-apps");
            let deployments: Api<Deployment> = Api::namespaced(client, "paas-apps");
            let params = PatchParams::apply("exsec").force();
            let mut latencies = Vec::new();
            for round in (worker..deploys).step_by(CLIENTS) {
                let app = format!("app{}", round % APPS);
                let begun = Instant::now();
                secrets
                    .patch(
                        &format!("app-{app}-external-secrets"),
                        &params,
                        &Patch::Apply(secret(&app, round)),
                    )
                    .await
                    .expect("secret apply");
                deployments
                    .patch(&app, &params, &Patch::Apply(deployment(&app, round)))
                    .await
                    .expect("deployment apply");
                latencies.push(begun.elapsed());
            }
            latencies
        }));
    }
    let mut latencies: Vec<Duration> = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.expect("worker"));
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let percentile = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize];
    println!(
        "{deploys} deploys (Secret + Deployment apply) from {CLIENTS} clients in {elapsed:.2?}: {:.0} deploys/s, {:.0} applies/s; p50 {:.2?}, p99 {:.2?}",
        deploys as f64 / elapsed.as_secs_f64(),
        2.0 * deploys as f64 / elapsed.as_secs_f64(),
        percentile(0.5),
        percentile(0.99),
    );
    if let Some(standin) = standin {
        standin.shutdown().await;
    }
}

fn secret(app: &str, round: usize) -> Secret {
    let data: BTreeMap<String, ByteString> = (0..50)
        .map(|key| {
            (
                format!("KEY_{key}"),
                ByteString(format!("value-{key}-{}", round % 3).into_bytes()),
            )
        })
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": format!("app-{app}-external-secrets"), "labels": {"app.kubernetes.io/managed-by": "exsec"}},
        "data": data,
    }))
    .expect("secret")
}

fn deployment(app: &str, round: usize) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": app},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": app}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": app}, "annotations": {"exsec.io/deploy-id": round.to_string()}},
                "spec": {"automountServiceAccountToken": false, "containers": [{
                    "name": "app", "image": "registry/app:1",
                    "envFrom": [{"secretRef": {"name": format!("app-{app}-external-secrets"), "optional": true}}]
                }]}
            }
        }
    }))
    .expect("deployment")
}
