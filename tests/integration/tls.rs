//! TLS on the listener (SPEC §11.1) as clients see it: a real handshake
//! with Debian's curl and with the exsec CLI; the CLI's errors for a wrong
//! CA, a wrong host name and an expired certificate; a certificate
//! replaced on disk served to new connections without a restart (checked
//! by the served serial); a broken replacement refused, audited once, the
//! old certificate kept; SIGHUP; and the refusals to start (missing files,
//! plaintext on a non-loopback address).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use exsec::tls::{CertificateInfo, GeneratedPair, Reload};
use tokio::net::TcpStream;

use crate::daemon::{Daemon, write_config_with};
use crate::harness::eventually;
use crate::operator::exsec;
use crate::server::{Options, TestServer, exchange};

/// A self-signed pair for `hosts` in `dir` (made as `exsec tls generate`
/// makes it).
fn pair(dir: &Path, hosts: &[&str]) -> GeneratedPair {
    let hosts: Vec<String> = hosts.iter().map(|h| (*h).to_owned()).collect();
    exsec::tls::generate_pair(dir, &hosts, 30, SystemTime::now()).unwrap()
}

/// A server whose `[server]` serves `cert` and `key`; its test client
/// trusts a copy of `cert` (the file may be replaced later).
async fn tls_server(cert: &Path, key: &Path) -> TestServer {
    let trusted = cert.with_extension("trusted.pem");
    std::fs::copy(cert, &trusted).unwrap();
    let mut server = TestServer::start_with(Options {
        server_config: format!(
            "tls_cert = {:?}\ntls_key = {:?}\n",
            cert.display().to_string(),
            key.display().to_string()
        ),
        ..Options::default()
    })
    .await;
    server.cacert = Some(trusted);
    server
}

/// Handshakes with `server` trusting the certificates in `cacert` and
/// checking `name`; the certificate it served.
async fn served(server: &TestServer, cacert: &Path, name: &str) -> Result<CertificateInfo, String> {
    let stream = tls_connect(server, cacert, name).await?;
    let (_, connection) = stream.get_ref();
    let leaf = connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or("no certificate served")?;
    CertificateInfo::from_der(leaf).ok_or_else(|| "not a certificate".to_owned())
}

async fn tls_connect(
    server: &TestServer,
    cacert: &Path,
    name: &str,
) -> Result<exsec::tls::client::ClientStream, String> {
    let config = exsec::tls::client::client_config(Some(cacert)).map_err(|e| e.to_string())?;
    let stream = TcpStream::connect(server.addr)
        .await
        .map_err(|e| e.to_string())?;
    exsec::tls::client::connect(config, name, stream)
        .await
        .map_err(|e| e.to_string())
}

/// Every certificate in `pairs` in one PEM file, to trust them all.
fn bundle(dir: &Path, pairs: &[&GeneratedPair]) -> PathBuf {
    let path = dir.join("bundle.pem");
    let text: String = pairs
        .iter()
        .map(|pair| std::fs::read_to_string(&pair.cert).unwrap())
        .collect();
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_and_the_cli_complete_a_real_handshake() {
    let certs = tempfile::tempdir().unwrap();
    // Made by the binary, as an operator would.
    let out = certs.path().join("tls");
    let made = exsec(
        None,
        None,
        &[
            "tls",
            "generate",
            "--host",
            "localhost",
            "--host",
            "127.0.0.1",
            "--out-dir",
            out.to_str().unwrap(),
        ],
        None,
    )
    .await;
    made.expect(0);
    made.stderr_has("tls_cert = ");
    let (cert, key) = (out.join("tls.crt"), out.join("tls.key"));
    let server = tls_server(&cert, &key).await;
    let port = server.addr.port();

    for host in ["127.0.0.1", "localhost"] {
        let output = Command::new("curl")
            .args(["--silent", "--show-error", "--fail", "--cacert"])
            .arg(&cert)
            .arg("--resolve")
            .arg(format!("localhost:{port}:127.0.0.1"))
            .arg("--header")
            .arg(format!("Authorization: Bearer {}", server.admin_token))
            .arg(format!("https://{host}:{port}/v1/tenants"))
            .stdin(Stdio::null())
            .output()
            .expect("Debian curl is installed (.ci/run installs it)");
        let body = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "curl https://{host}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(body.contains("\"tenants\""), "{body}");
    }
    // Without the CA, curl refuses the self-signed certificate (exit 60).
    let output = Command::new("curl")
        .args(["--silent", "--fail"])
        .arg(format!("https://127.0.0.1:{port}/healthz"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(60), "{output:?}");

    let url = format!("https://127.0.0.1:{port}");
    let cacert = cert.to_str().unwrap();
    let token = server.admin_token.clone();
    exsec(
        None,
        Some(&token),
        &[
            "--url", &url, "--cacert", cacert, "tenants", "create", "acme",
        ],
        None,
    )
    .await
    .expect(0);
    let listed = exsec(
        None,
        Some(&token),
        &[
            "--url", &url, "--cacert", cacert, "-o", "json", "tenants", "list",
        ],
        None,
    )
    .await;
    listed.expect(0);
    listed.stdout_has("acme");

    // Plain HTTP to the TLS port: told to use https://.
    let plain = exsec(
        None,
        Some(&token),
        &[
            "--url",
            &format!("http://127.0.0.1:{port}"),
            "tenants",
            "list",
        ],
        None,
    )
    .await;
    plain.expect(2);
    plain.stderr_has("tls_required");
    plain.stderr_has("https://");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_explains_a_wrong_ca_a_wrong_name_and_an_expired_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let served_pair = pair(
        &certs.path().join("served"),
        &["exsec.internal", "127.0.0.1"],
    );
    let other = pair(&certs.path().join("other"), &["127.0.0.1"]);
    let server = tls_server(&served_pair.cert, &served_pair.key).await;
    let port = server.addr.port();
    let token = server.admin_token.clone();
    let cli = |url: String, cacert: PathBuf| {
        let token = token.clone();
        async move {
            exsec(
                None,
                Some(&token),
                &[
                    "--url",
                    &url,
                    "--cacert",
                    cacert.to_str().unwrap(),
                    "tenants",
                    "list",
                ],
                None,
            )
            .await
        }
    };

    let wrong_ca = cli(format!("https://127.0.0.1:{port}"), other.cert.clone()).await;
    wrong_ca.expect(5);
    wrong_ca.stderr_has("not issued by a CA this client trusts");
    wrong_ca.stderr_has("--cacert");

    // The certificate names exsec.internal and 127.0.0.1, not localhost.
    let wrong_name = cli(
        format!("https://localhost:{port}"),
        served_pair.cert.clone(),
    )
    .await;
    wrong_name.expect(5);
    wrong_name.stderr_has("is not valid for localhost");
    wrong_name.stderr_has("exsec.internal");
    wrong_name.stderr_has("exsec tls generate --host localhost");
    server.stop().await;

    // An expired certificate (served with a warning: clients refuse it).
    let expired = expired_pair(&certs.path().join("expired"));
    let server = tls_server(&expired.0, &expired.1).await;
    let url = format!("https://127.0.0.1:{}", server.addr.port());
    let run = cli(url, expired.0.clone()).await;
    run.expect(5);
    run.stderr_has("expired at 2020-01-02T00:00:00Z");
    run.stderr_has("Renew");
    server.stop().await;
}

/// A pair whose certificate expired on 2020-01-02 (made with rcgen
/// directly: `exsec tls generate` never makes one).
fn expired_pair(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2019, 1, 1);
    params.not_after = rcgen::date_time_ymd(2020, 1, 2);
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

/// The kubelet's and cert-manager's way: the visible names are links into
/// `..data`, itself a link swapped atomically to a new folder.
#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_replaced_on_disk_is_served_without_a_restart() {
    let certs = tempfile::tempdir().unwrap();
    let volume = certs.path().join("volume");
    let first = pair(&volume.join("..v1"), &["127.0.0.1"]);
    std::os::unix::fs::symlink("..v1", volume.join("..data")).unwrap();
    for name in ["tls.crt", "tls.key"] {
        std::os::unix::fs::symlink(format!("..data/{name}"), volume.join(name)).unwrap();
    }
    let mut server = tls_server(&volume.join("tls.crt"), &volume.join("tls.key")).await;
    let second = pair(&volume.join("..v2"), &["127.0.0.1"]);
    let trusted = bundle(certs.path(), &[&first, &second]);
    server.cacert = Some(trusted.clone());
    assert_eq!(
        served(&server, &trusted, "127.0.0.1").await.unwrap(),
        first.info
    );
    // A connection made before the swap keeps working after it.
    let before = tls_connect(&server, &trusted, "127.0.0.1").await.unwrap();

    std::os::unix::fs::symlink("..v2", volume.join("..data_tmp")).unwrap();
    std::fs::rename(volume.join("..data_tmp"), volume.join("..data")).unwrap();

    let now_served = eventually("the new certificate is served", || async {
        let info = served(&server, &trusted, "127.0.0.1").await?;
        if info.serial == second.info.serial {
            Ok(info)
        } else {
            Err(format!("still serial {}", info.serial))
        }
    })
    .await;
    assert_eq!(now_served, second.info);
    assert_ne!(first.info.serial, second.info.serial);
    let answer = exchange(before, "GET", "/healthz", None, None, &[])
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    let inner = server.server.as_ref().unwrap();
    assert_eq!(inner.tls_certificate(), Some(second.info));
    assert!(server.audit_events_of("tls.reload_failed").await.is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_replacement_keeps_the_old_certificate_and_is_audited_once() {
    let certs = tempfile::tempdir().unwrap();
    let good = pair(&certs.path().join("good"), &["127.0.0.1"]);
    let other = pair(&certs.path().join("other"), &["127.0.0.1"]);
    let server = tls_server(&good.cert, &good.key).await;
    let trusted = certs.path().join("good.pem");
    std::fs::copy(&good.cert, &trusted).unwrap();

    // Another certificate's key: the pair no longer matches.
    std::fs::write(&good.key, std::fs::read(&other.key).unwrap()).unwrap();
    let events = eventually("tls.reload_failed is audited", || async {
        let events = server.audit_events_of("tls.reload_failed").await;
        if events.is_empty() {
            Err("no event yet".to_owned())
        } else {
            Ok(events)
        }
    })
    .await;
    assert_eq!(events.len(), 1, "{events:?}");
    let data = &events[0]["data"];
    assert!(
        data["reason"].as_str().unwrap().contains("does not match"),
        "{data}"
    );
    assert_eq!(data["serving_serial"], good.info.serial.as_str());
    assert_eq!(data["key_file"], good.key.display().to_string());
    // The key itself never reaches the audit log.
    let key_text = std::fs::read_to_string(&other.key).unwrap();
    let body = key_text.lines().nth(1).unwrap();
    assert!(!serde_json::to_string(&events).unwrap().contains(body));

    assert_eq!(
        served(&server, &trusted, "127.0.0.1").await.unwrap(),
        good.info
    );
    // SIGHUP's reload sees the same bad content: refused, not audited again.
    let inner = server.server.as_ref().unwrap();
    let reload = inner.reload_tls().await.unwrap();
    assert!(matches!(reload, Reload::Failed { .. }), "{reload:?}");
    assert_eq!(server.audit_count("tls.reload_failed").await, 1);

    // A file that is not PEM at all is a new problem: audited too.
    std::fs::write(&good.cert, "not a certificate\n").unwrap();
    let reload = inner.reload_tls().await.unwrap();
    assert!(matches!(reload, Reload::Failed { .. }), "{reload:?}");
    assert_eq!(server.audit_count("tls.reload_failed").await, 2);
    assert_eq!(
        served(&server, &trusted, "127.0.0.1").await.unwrap(),
        good.info
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_rereads_the_pair_in_a_real_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let tls = pair(&dir.path().join("tls"), &["127.0.0.1"]);
    let config = write_config_with(
        dir.path(),
        "listen = \"127.0.0.1:0\"\ntls_cert = \"tls/tls.crt\"\ntls_key = \"tls/tls.key\"",
    );
    let daemon = Daemon::start(&config, &[]);
    let line = daemon.wait_for_line(|line| line.contains("exsec listening"));
    assert!(line.contains("\"scheme\":\"https\""), "{line}");
    assert!(line.contains(&tls.info.serial), "{line}");
    daemon.signal("HUP");
    daemon.wait_for_line(|line| line.contains("TLS certificate unchanged"));
    daemon.terminate();
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_tls_files_refuse_to_start_instead_of_serving_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config_with(
        dir.path(),
        "listen = \"127.0.0.1:0\"\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"",
    );
    let config = exsec::config::Config::load(&path).unwrap();
    let error = exsec::app::start(&config, None)
        .await
        .err()
        .expect("must refuse");
    let message = exsec::error_chain::chain(&error).to_string();
    assert!(matches!(error, exsec::app::StartError::Tls(_)), "{message}");
    assert!(
        message.contains(&dir.path().join("cert.pem").display().to_string()),
        "{message}"
    );
}

#[test]
fn plaintext_on_a_non_loopback_address_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    // Refused while the config is read: nothing is ever bound.
    let config = write_config_with(dir.path(), "listen = \"0.0.0.0:0\"");
    let mut daemon = Daemon::start(&config, &[]);
    let status = daemon.wait();
    assert_eq!(status.code(), Some(1), "{}", daemon.log_tail());
    let log = daemon.log_tail();
    assert!(log.contains("server.listen"), "{log}");
    assert!(log.contains("allow_plaintext_remote = true"), "{log}");
    assert!(log.contains("server.tls_cert"), "{log}");
    assert!(!dir.path().join("exsec.redb").exists());
}
