//! Real kubectl against the stand-in. Skipped, with a message saying so, when kubectl is
//! not on PATH. `KUBECTL=/path/to/kubectl` picks another binary (on this machine `kubectl`
//! is a dispatcher that runs the kubectl matching the server's version, 1.33; the
//! 1.32 binary sits beside it as `kubectl.1.32`).

use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use kube::api::{Patch, PatchParams};
use kube_standin::Kind;

use crate::harness::{Cluster, NAMESPACE, deployment, secret};

/// Runs kubectl with the cluster's kubeconfig and a private cache; `None` when kubectl is
/// not installed.
async fn kubectl(cluster: &Cluster, args: &[&str]) -> Option<(bool, String, String)> {
    let program = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_owned());
    let mut command = Command::new(&program);
    command
        .arg("--kubeconfig")
        .arg(&cluster.kubeconfig)
        .arg("--cache-dir")
        .arg(cluster.dir.path().join("kubectl-cache"))
        .args(["-n", NAMESPACE])
        .args(args)
        .env_remove("KUBECONFIG");
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("task");
    match output {
        Ok(output) => Some((
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            // Written to the real stderr, past the test harness's capture, so the skip
            // shows even when the test passes.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: {program} is not on PATH; kubectl tests did not run"
            );
            None
        }
        Err(error) => panic!("cannot run {program}: {error}"),
    }
}

fn exsec() -> PatchParams {
    PatchParams::apply("exsec").force()
}

#[tokio::test]
async fn kubectl_gets_a_secret_as_yaml() {
    let cluster = Cluster::start().await;
    cluster
        .secrets()
        .patch(
            "app-web-external-secrets",
            &exsec(),
            &Patch::Apply(secret(
                "app-web-external-secrets",
                &[("OPENAI_API_KEY", "sk-1")],
            )),
        )
        .await
        .expect("apply");
    let Some((ok, stdout, stderr)) = kubectl(
        &cluster,
        &["get", "secret", "app-web-external-secrets", "-o", "yaml"],
    )
    .await
    else {
        return;
    };
    assert!(ok, "{stderr}");
    assert!(stdout.contains("kind: Secret"), "{stdout}");
    assert!(stdout.contains("OPENAI_API_KEY: c2stMQ=="), "{stdout}");
    assert!(
        stdout.contains("app.kubernetes.io/managed-by: exsec"),
        "{stdout}"
    );
}

#[tokio::test]
async fn kubectl_lists_secrets_as_a_table() {
    let cluster = Cluster::start().await;
    for name in ["first", "second"] {
        cluster
            .secrets()
            .patch(
                name,
                &exsec(),
                &Patch::Apply(secret(name, &[("A", "1"), ("B", "2")])),
            )
            .await
            .expect("apply");
    }
    let Some((ok, stdout, stderr)) = kubectl(&cluster, &["get", "secrets"]).await else {
        return;
    };
    assert!(ok, "{stderr}");
    let lines: Vec<Vec<&str>> = stdout
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], vec!["NAME", "TYPE", "DATA", "AGE"], "{stdout}");
    assert_eq!(lines[1][..3], ["first", "Opaque", "2"], "{stdout}");
    assert_eq!(lines[2][0], "second", "{stdout}");
}

#[tokio::test]
async fn kubectl_gets_a_deployment() {
    let cluster = Cluster::start().await;
    cluster
        .deployments()
        .patch(
            "web",
            &exsec(),
            &Patch::Apply(deployment("web", "registry/web:1", None)),
        )
        .await
        .expect("apply");
    let Some((ok, stdout, stderr)) =
        kubectl(&cluster, &["get", "deploy", "web", "-o", "yaml"]).await
    else {
        return;
    };
    assert!(ok, "{stderr}");
    assert!(stdout.contains("kind: Deployment"), "{stdout}");
    assert!(stdout.contains("image: registry/web:1"), "{stdout}");
    assert!(stdout.contains("availableReplicas: 1"), "{stdout}");
    let Some((ok, stdout, stderr)) = kubectl(&cluster, &["get", "deployments"]).await else {
        return;
    };
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("NAME"), "{stdout}");
    let row: Vec<&str> = stdout
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(row[..4], ["web", "1/1", "1", "1"], "{stdout}");
}

#[tokio::test]
async fn kubectl_applies_server_side() {
    let cluster = Cluster::start().await;
    let manifest = cluster.dir.path().join("secret.yaml");
    write(
        &manifest,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: manual\ntype: Opaque\ndata:\n  TOKEN: dG9rZW4=\nstringData:\n  PLAIN: text\n",
    );
    let path = manifest.to_string_lossy().into_owned();
    let Some((ok, stdout, stderr)) = kubectl(
        &cluster,
        &["apply", "--server-side", "--validate=false", "-f", &path],
    )
    .await
    else {
        return;
    };
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("secret/manual serverside-applied"),
        "{stdout}"
    );
    let stored = cluster
        .standin
        .object(Kind::Secret, NAMESPACE, "manual")
        .expect("stored");
    assert_eq!(stored["data"]["TOKEN"], "dG9rZW4=");
    assert_eq!(stored["data"]["PLAIN"], "dGV4dA==");
    let apply = cluster
        .standin
        .requests()
        .into_iter()
        .find(|request| request.method == "PATCH")
        .expect("a PATCH");
    assert_eq!(
        apply.query_param("fieldManager").as_deref(),
        Some("kubectl")
    );
    assert_eq!(
        apply.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );

    let Some((ok, _, stderr)) = kubectl(
        &cluster,
        &["apply", "--server-side", "--validate=false", "-f", &path],
    )
    .await
    else {
        return;
    };
    assert!(ok, "a second apply is a no-op: {stderr}");
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("manifest written");
}
