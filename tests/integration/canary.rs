//! A store session with a canary value: the canary must appear in no log
//! line (at any level) and nowhere in the redb file.

use exsec::model::{EnvKey, Provider};

use crate::harness::*;

const CANARY: &str = "CANARY-7d1f0c2a-do-not-log";

#[test]
fn a_canary_value_reaches_no_log_and_not_the_file() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .finish();
    let test = TestStore::new();
    tracing::subscriber::with_default(subscriber, || {
        let put = test.sealed(&tenant_scope("acme"), "openai", "OPENAI_API_KEY", CANARY);
        let clash = test.sealed(&tenant_scope("acme"), "azure", "OPENAI_API_KEY", CANARY);
        let over = test.sealed(&app_scope("web"), "openai", "OPENAI_API_KEY", CANARY);
        write_tenant(&test.store, "acme", vec!["web".to_owned()], vec![put, over]);
        let refused = test
            .store
            .write(move |w| w.put_secret(clash.clone(), "admin"));
        tracing::error!(error = ?refused.err(), "refused write");
        let layout = test.layout("web");
        let set = test.resolve(&layout);
        assert_eq!(set.values[0].value.expose_secret(), CANARY);
        tracing::info!(records = ?layout.app, keyring = ?test.keyring, "debug output of records");
        test.store
            .write(|w| {
                w.delete_secret(
                    &app_scope("web"),
                    &Provider::parse("openai").unwrap(),
                    &EnvKey::parse("OPENAI_API_KEY").unwrap(),
                    "admin",
                )
            })
            .unwrap();
    });
    let logs = capture.text();
    assert!(
        logs.contains("audit event"),
        "the session logged nothing: {logs}"
    );
    assert!(!logs.contains(CANARY), "canary in logs:\n{logs}");

    let path = test.path();
    drop(test.store);
    let file = std::fs::read(path).unwrap();
    assert!(
        !file.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()),
        "canary in the redb file"
    );
}
