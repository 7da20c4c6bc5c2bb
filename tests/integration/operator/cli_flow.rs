//! The client commands end to end: values only from standard input, lists
//! without values, the override winning, the deploy's injection outcome,
//! JSON output, tokens, and the documented exit codes with their hints.

use super::{admin, admin_run, exsec, register_web, seed_acme_web};
use crate::server::TestServer;

#[tokio::test]
async fn a_secret_set_from_stdin_is_listed_without_its_value_and_the_override_wins() {
    let server = TestServer::start().await;
    admin_run(&server, "tenants create acme", None)
        .await
        .expect(0);
    let registered = register_web(&server, &["OPENAI_API_KEY"]).await;
    registered.expect(0);
    assert_eq!(registered.stdout.trim(), "registered app web (tenant acme)");

    let set = admin_run(
        &server,
        "secrets set --tenant acme openai OPENAI_API_KEY",
        Some("sk-tenant-default\n"),
    )
    .await;
    set.expect(0);
    assert_eq!(
        set.stdout.trim(),
        "created openai/OPENAI_API_KEY for tenant acme (version 1)"
    );
    admin_run(
        &server,
        "secrets set --app web openai OPENAI_API_KEY",
        Some("sk-app-override"),
    )
    .await
    .expect(0);
    let replaced = admin_run(
        &server,
        "secrets set --app web openai OPENAI_API_KEY",
        Some("sk-app-override-2\r\n"),
    )
    .await;
    assert_eq!(
        replaced.expect(0).stdout.trim(),
        "replaced openai/OPENAI_API_KEY for app web (version 2)"
    );

    let listed = admin_run(&server, "secrets list --app web", None).await;
    listed.expect(0);
    let lines: Vec<&str> = listed.stdout.lines().collect();
    assert!(lines[0].starts_with("PROVIDER  KEY"), "{}", listed.stdout);
    assert!(
        lines[1].starts_with("openai    OPENAI_API_KEY  2"),
        "{}",
        listed.stdout
    );
    let listed_json = admin_run(&server, "secrets list --tenant acme --output json", None).await;
    let secrets = listed_json.expect(0).json();
    assert_eq!(secrets["secrets"][0]["key"], "OPENAI_API_KEY");
    assert!(secrets["secrets"][0].get("value").is_none());
    for run in [&set, &listed, &listed_json] {
        assert!(!run.all().contains("sk-"), "a value was printed: {run:?}");
    }

    let effective = admin_run(&server, "secrets effective --app web", None).await;
    effective.expect(0);
    let row = effective
        .stdout
        .lines()
        .find(|l| l.starts_with("OPENAI_API_KEY"))
        .unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells,
        ["OPENAI_API_KEY", "openai", "app", "yes", "yes", "2"]
    );
    let effective = admin_run(&server, "secrets effective --app web -o json", None)
        .await
        .json();
    assert_eq!(effective["keys"][0]["source"], "app");
    assert_eq!(effective["keys"][0]["overrides_tenant"], true);

    let deployed = admin_run(&server, "deploy web --image nginx:1.27", None).await;
    deployed.expect(0);
    deployed.stdout_has(
        "external secrets: injected 1 keys into Secret app-web-external-secrets: OPENAI_API_KEY",
    );
    assert!(
        deployed.stdout.contains("warning:"),
        "tenant inferred: {}",
        deployed.stdout
    );
    let values = server.manifest_values("web").unwrap();
    assert_eq!(values["OPENAI_API_KEY"], "sk-app-override-2");

    let again = admin_run(
        &server,
        "deploy web --image nginx:1.28 --tenant acme --replicas 2 --output json",
        None,
    )
    .await
    .expect(0)
    .json();
    assert_eq!(again["external_secrets"]["status"], "injected");
    assert_eq!(again["replicas"], 2);
    let deploy_id = again["deploy_id"].as_str().unwrap().to_owned();

    let dry = admin_run(&server, "deploy web --image nginx:1.28 --dry-run", None).await;
    dry.expect(0).stdout_has("unchanged: OPENAI_API_KEY");

    let history = admin_run(&server, "deploys web", None).await;
    history.expect(0);
    assert_eq!(history.stdout.lines().count(), 3, "{}", history.stdout);
    assert!(
        history
            .stdout
            .lines()
            .nth(1)
            .unwrap()
            .starts_with(&deploy_id)
    );
    let one = admin(&server, &["deploys", "web", &deploy_id], None).await;
    one.expect(0).stdout_has("image: nginx:1.28");

    let injected = admin_run(
        &server,
        "audit list --type external_secret.injected --output json",
        None,
    )
    .await
    .expect(0)
    .json();
    let events = injected["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["data"]["key_count"], 1);

    let matched = admin_run(
        &server,
        "secrets verify --app web openai OPENAI_API_KEY",
        Some("sk-app-override-2"),
    )
    .await;
    assert!(matched.expect(0).stdout.starts_with("match:"));
    let mismatch = admin_run(
        &server,
        "secrets verify --app web openai OPENAI_API_KEY",
        Some("sk-tenant-default"),
    )
    .await;
    mismatch.expect(6);
    mismatch.stderr_has("no match");
    assert!(!mismatch.all().contains("sk-"));

    let removed = admin_run(&server, "secrets rm --app web openai OPENAI_API_KEY", None).await;
    removed.expect(0);
    let effective = admin_run(&server, "secrets effective --app web -o json", None)
        .await
        .json();
    assert_eq!(effective["keys"][0]["source"], "tenant");
    server.stop().await;
}

#[tokio::test]
async fn a_value_on_the_command_line_is_refused_and_never_echoed() {
    let server = TestServer::start().await;
    seed_acme_web(&server).await;
    for line in [
        "secrets set --app web openai OPENAI_API_KEY sk-live-abc",
        "secrets set --app web openai OPENAI_API_KEY --value sk-live-abc",
        "secrets set --app web openai OPENAI_API_KEY --value=sk-live-abc",
        "secrets verify --app web openai OPENAI_API_KEY --sk-live-abc",
    ] {
        let refused = admin_run(&server, line, Some("")).await;
        refused.expect(2);
        refused.stderr_has("secret values are never taken from the command line");
        refused.stderr_has("hint: Pipe the value");
        assert!(!refused.all().contains("sk-live-abc"), "{refused:?}");
    }
    let empty = admin_run(&server, "secrets set --app web openai OPENAI_API_KEY", None).await;
    empty.expect(2);
    empty.stderr_has("no value on standard input");
    let listed = admin_run(&server, "secrets list --app web -o json", None)
        .await
        .json();
    assert_eq!(listed["secrets"], serde_json::json!([]));
    server.stop().await;
}

#[tokio::test]
async fn import_reads_a_dotenv_file_and_names_a_bad_line() {
    let server = TestServer::start().await;
    seed_acme_web(&server).await;
    let file = server.path("app.env");
    std::fs::write(
        &file,
        "# keys for web\nexport OPENAI_API_KEY='sk-one'\n\nSTRIPE_KEY=\"sk-two\\n\" # test\nPLAIN=sk-three\n",
    )
    .unwrap();
    let imported = import(&server, &file, &[]).await;
    imported.expect(0);
    imported.stdout_has("imported 3 keys into app web");
    assert!(!imported.all().contains("sk-"));
    admin_run(&server, "deploy web --image nginx", None)
        .await
        .expect(0);
    let values = server.manifest_values("web").unwrap();
    assert_eq!(values["OPENAI_API_KEY"], "sk-one");
    assert_eq!(values["STRIPE_KEY"], "sk-two\n");
    assert_eq!(values["PLAIN"], "sk-three");

    let bad = server.path("bad.env");
    std::fs::write(&bad, "GOOD=sk-fine\nsk-live-leaked-line\n").unwrap();
    let refused = admin(
        &server,
        &[
            "secrets",
            "import",
            "--tenant",
            "acme",
            "--provider",
            "vendor",
            "--from-env-file",
            bad.to_str().unwrap(),
        ],
        None,
    )
    .await;
    refused.expect(2);
    refused.stderr_has("line 2 of the env file: expected KEY=VALUE");
    assert!(!refused.all().contains("sk-"), "{refused:?}");
    // Nothing of a malformed file is written.
    let listed = admin_run(&server, "secrets list --tenant acme -o json", None)
        .await
        .json();
    assert_eq!(listed["secrets"], serde_json::json!([]));
    server.stop().await;
}

/// `exsec secrets import --app web --provider vendor --from-env-file FILE [extra]`.
async fn import(server: &TestServer, file: &std::path::Path, extra: &[&str]) -> super::Run {
    let file = file.to_str().unwrap();
    let mut args = vec![
        "secrets",
        "import",
        "--app",
        "web",
        "--provider",
        "vendor",
        "--from-env-file",
        file,
    ];
    args.extend_from_slice(extra);
    admin(server, &args, None).await
}

#[tokio::test]
async fn import_is_one_atomic_write_and_replace_deletes_the_unlisted() {
    let server = TestServer::start().await;
    seed_acme_web(&server).await;
    server
        .set_secret_ok("/v1/apps/web", "stripe", "SHARED", "sk-stripe")
        .await;

    // The daemon refuses the last line (another provider sets SHARED):
    // the first two are not written either.
    let clash = server.path("clash.env");
    std::fs::write(
        &clash,
        "FIRST=sk-first\nSECOND=sk-second\nSHARED=sk-shared\n",
    )
    .unwrap();
    let refused = import(&server, &clash, &[]).await;
    refused.expect(4);
    refused.stderr_has("nothing was imported");
    refused.stderr_has("env var SHARED");
    assert!(!refused.all().contains("sk-"), "{refused:?}");
    assert_eq!(server.secret_names("/v1/apps/web").await, ["stripe/SHARED"]);

    // A value the daemon refuses is named by its line, never printed.
    let long = server.path("long.env");
    let value = "sk-".to_owned() + &"x".repeat(64 * 1024);
    std::fs::write(&long, format!("# header\nFIRST=sk-first\nLONG={value}\n")).unwrap();
    let refused = import(&server, &long, &[]).await;
    refused.expect(2);
    refused.stderr_has("line 3 of the env file was refused; nothing was imported");
    assert!(!refused.all().contains("sk-"), "{}", refused.stderr);
    assert_eq!(server.secret_names("/v1/apps/web").await, ["stripe/SHARED"]);

    // --replace: one write sets the file's keys and deletes the rest.
    let good = server.path("good.env");
    std::fs::write(&good, "FIRST=sk-first\nSHARED=sk-shared\n").unwrap();
    let imported = import(&server, &good, &["--replace"]).await;
    imported.expect(0);
    imported.stdout_has("imported 2 keys into app web and deleted 1 not in the file");
    imported.stdout_has("stripe/SHARED");
    assert!(!imported.all().contains("sk-"), "{imported:?}");
    assert_eq!(
        server.secret_names("/v1/apps/web").await,
        ["vendor/FIRST", "vendor/SHARED"]
    );
    server.stop().await;
}

#[tokio::test]
async fn tokens_and_errors_map_to_documented_exit_codes() {
    let server = TestServer::start().await;
    seed_acme_web(&server).await;
    admin_run(&server, "tenants create globex", None)
        .await
        .expect(0);
    admin_run(&server, "apps register shop --tenant globex", None)
        .await
        .expect(0);

    let minted = admin_run(&server, "tokens mint acme", None).await;
    minted.expect(0);
    let token = minted.stdout.trim().to_owned();
    assert!(
        token.starts_with("exs_"),
        "only the token on stdout: {minted:?}"
    );
    assert!(minted.stderr.contains("shown once"));
    let token_id = token.split('_').nth(1).unwrap().to_owned();

    // A tenant token sees its own tenant only; others are "not found".
    let tenants = exsec(Some(&server), Some(&token), &["tenants", "list"], None).await;
    assert_eq!(
        tenants.expect(0).stdout.lines().count(),
        2,
        "{}",
        tenants.stdout
    );
    let other = exsec(Some(&server), Some(&token), &["apps", "get", "shop"], None).await;
    other.expect(3);
    other.stderr_has("app_not_found");
    other.stderr_has("hint: The app does not exist");
    let keys = exsec(Some(&server), Some(&token), &["keys", "status"], None).await;
    keys.expect(3);
    keys.stderr_has("needs the admin token");

    let listed = admin_run(&server, "tokens list acme -o json", None)
        .await
        .expect(0)
        .json();
    assert_eq!(listed["tokens"][0]["token_id"], token_id.as_str());
    admin(&server, &["tokens", "revoke", "acme", &token_id], None)
        .await
        .expect(0);
    let revoked = exsec(Some(&server), Some(&token), &["tenants", "list"], None).await;
    revoked.expect(4);
    revoked.stderr_has("unauthenticated");
    revoked.stderr_has("--token-file");

    let conflict = admin_run(&server, "tenants delete acme", None).await;
    conflict.expect(4);
    conflict.stderr_has("Delete its apps first");
    let invalid = admin_run(&server, "tenants create Not_A_Label", None).await;
    invalid.expect(2);
    let json_error = admin_run(&server, "apps get nope -o json", None).await;
    json_error.expect(3);
    let error: serde_json::Value = serde_json::from_str(json_error.stderr.trim()).unwrap();
    assert_eq!(error["exit_code"], 3);
    assert_eq!(error["problem"]["code"], "app_not_found");

    let status = admin_run(&server, "keys status", None).await;
    status.expect(0);
    status.stdout_has("rotation: idle");

    let dir = server.stop().await;
    let unreachable = exsec(
        None,
        None,
        &["--url", "http://127.0.0.1:9", "tenants", "list"],
        None,
    )
    .await;
    unreachable.expect(5);
    assert!(unreachable.stderr.contains("cannot reach the exsec daemon"));
    // An unreadable --cacert is a usage error, found before any connection.
    let https = exsec(
        None,
        None,
        &[
            "--url",
            "https://127.0.0.1:9",
            "--cacert",
            "/nonexistent/ca.pem",
            "tenants",
            "list",
        ],
        None,
    )
    .await;
    https.expect(2);
    https.stderr_has("cannot read the CA certificate file /nonexistent/ca.pem");
    drop(dir);
}

#[tokio::test]
async fn completions_and_the_man_page_come_from_the_same_definitions() {
    let bash = exsec(None, None, &["completions", "bash"], None).await;
    assert!(bash.expect(0).stdout.contains("doctor"));
    let man = exsec(None, None, &["man"], None).await;
    man.expect(0);
    assert!(
        man.stdout.starts_with(".ie") || man.stdout.contains(".TH exsec"),
        "{}",
        &man.stdout[..200.min(man.stdout.len())]
    );
    assert!(man.stdout.contains("doctor"));
    let help = exsec(None, None, &["--help"], None).await;
    assert!(help.expect(0).stdout.contains("6  a check found a problem"));
}

/// Rotation as an operator runs it: a new key, `keys status` until the old
/// key is safe to remove, then `keys retire` moves its file aside; the
/// active key and a key still sealing records are refused.
#[tokio::test]
async fn keys_status_and_retire_follow_a_rotation() {
    let server = TestServer::start().await;
    seed_acme_web(&server).await;
    server
        .set_secret_ok("/v1/tenants/acme", "openai", "OPENAI_API_KEY", "sk-1")
        .await;
    let status = admin_run(&server, "keys status -o json", None)
        .await
        .expect(0)
        .json();
    let old = status["active"].as_str().unwrap().to_owned();
    let keys_dir = server.path("keys.d");
    let dir_arg = keys_dir.to_str().unwrap().to_owned();
    let active = admin(&server, &["keys", "retire", &old, "--dir", &dir_arg], None).await;
    active.expect(4);
    active.stderr_has("is the active key");
    admin_run(&server, "keys retire nope", None).await.expect(3);

    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    let new = exsec::crypto::generate_key_file(&keys_dir, later)
        .unwrap()
        .key_id
        .to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let status = admin_run(&server, "keys status -o json", None).await.json();
        let old_entry = status["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == old.as_str())
            .cloned();
        if status["active"] == new.as_str()
            && old_entry.is_some_and(|k| k["safe_to_remove"] == true)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "rotation did not finish: {status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let human = admin_run(&server, "keys status", None).await;
    human.expect(0).stdout_has("rotation: idle");

    let retired = admin(&server, &["keys", "retire", &old, "--dir", &dir_arg], None).await;
    retired.expect(0);
    assert!(
        retired.stdout.starts_with(&format!("retired {old}")),
        "{}",
        retired.stdout
    );
    assert!(!keys_dir.join(format!("{old}.key")).exists());
    assert!(keys_dir.join(format!("{old}.key.retired")).exists());
    let retired_again = admin(&server, &["keys", "retire", &new], None).await;
    retired_again.expect(4);
    // Values still open under the new key.
    admin_run(&server, "deploy web --image nginx", None)
        .await
        .expect(0);
    assert_eq!(
        server.manifest_values("web").unwrap()["OPENAI_API_KEY"],
        "sk-1"
    );
    server.stop().await;
}

/// `exsec secrets history|restore`, `exsec rollback` (the plan by name,
/// then `--yes`; refused without a terminal), `exsec deploys` marking the
/// pinned deploy and `exsec unpin`, as a person would run them.
#[tokio::test]
async fn history_restore_and_rollback_through_the_cli() {
    let server = TestServer::start().await;
    seed_acme_web(&server).await;
    let set = |value: &'static str| {
        let server = &server;
        async move {
            admin_run(
                server,
                "secrets set --app web openai OPENAI_API_KEY",
                Some(value),
            )
            .await
            .expect(0);
        }
    };
    set("sk-first").await;
    let deploy = |image: &'static str| {
        let server = &server;
        async move {
            let run = admin(
                server,
                &["-o", "json", "deploy", "web", "--image", image],
                None,
            )
            .await;
            run.expect(0);
            run.json()["deploy_id"].as_str().unwrap().to_owned()
        }
    };
    let first = deploy("nginx:1").await;
    set("sk-second").await;
    admin_run(
        &server,
        "secrets set --app web sentry SENTRY_DSN",
        Some("dsn-second"),
    )
    .await
    .expect(0);
    deploy("nginx:2").await;

    let history_of_the_key = || {
        admin_run(
            &server,
            "secrets history --app web openai OPENAI_API_KEY",
            None,
        )
    };
    let history = history_of_the_key().await;
    history.expect(0);
    let rows: Vec<&str> = history.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{history:?}");
    assert!(
        rows[0].starts_with('2') && rows[1].starts_with('1'),
        "{history:?}"
    );
    assert!(!history.all().contains("sk-"), "{history:?}");

    // Without a terminal and without --yes: the plan, then a refusal.
    let refused = admin(&server, &["rollback", "web", &first], None).await;
    refused.expect(2);
    refused.stderr_has("removed: SENTRY_DSN");
    refused.stderr_has("changed: OPENAI_API_KEY");
    refused.stderr_has("--yes");
    assert_eq!(
        server.manifest_values("web").unwrap()["OPENAI_API_KEY"],
        "sk-second",
        "nothing applied"
    );

    let applied = admin(&server, &["rollback", "web", &first, "--yes"], None).await;
    applied.expect(0);
    applied.stdout_has(&format!("pinned to {first}"));
    assert!(!applied.all().contains("sk-"), "{applied:?}");
    server.assert_manifest_values("web", &[("OPENAI_API_KEY", "sk-first")]);
    let deploys = admin_run(&server, "deploys web", None).await;
    deploys.expect(0);
    deploys.stdout_has(&format!("{first} (pinned)"));
    deploys.stdout_has("runs the secret set of");

    // Restore version 1 as version 3; unpin.
    let restored = admin_run(
        &server,
        "secrets restore --app web openai OPENAI_API_KEY --version 1",
        None,
    )
    .await;
    restored.expect(0);
    restored.stdout_has("as version 3");
    admin_run(&server, "unpin web", None).await.expect(0);
    let deploys = admin_run(&server, "deploys web", None).await;
    assert!(!deploys.stdout.contains("(pinned)"), "{deploys:?}");

    // rm keeps the history and says so; rm --purge drops every kept value.
    let removed = admin_run(&server, "secrets rm --app web openai OPENAI_API_KEY", None).await;
    removed.expect(0);
    removed.stdout_has("--purge drops them");
    let purged = admin_run(
        &server,
        "secrets rm --app web openai OPENAI_API_KEY --purge",
        None,
    )
    .await;
    purged.expect(0);
    purged.stdout_has("every kept value was dropped");
    let history = history_of_the_key().await;
    history.expect(0);
    assert_eq!(
        history
            .stdout
            .lines()
            .filter(|l| l.contains("admin"))
            .count(),
        1,
        "only the tombstone is left: {history:?}"
    );
}
