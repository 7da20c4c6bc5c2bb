//! The audit chain verifier.
//!
//! Two ways in: events decoded from arbitrary JSON (as `exsec audit verify`
//! reads `GET /v1/audit-events`) must never panic the verifier; and a valid
//! chain built from the input, with one event changed (the input picks
//! which event and which field), must never verify against its anchor.
#![no_main]

use exsec::audit::{Anchor, AuditEvent, ChainVerifier, NewEvent, event};
use exsec::model::Timestamp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&[u8], Vec<String>, u8, u8)| {
    let (json, names, which, field) = input;
    if let Ok(events) = serde_json::from_slice::<Vec<AuditEvent>>(json) {
        let mut verifier = ChainVerifier::new(Anchor::GENESIS, None);
        for event in &events {
            if verifier.push(event).is_err() {
                break;
            }
        }
    }

    if names.is_empty() {
        return;
    }
    let mut head = Anchor::GENESIS;
    let mut chain = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let new = NewEvent::new(event::TENANT_CREATED, "admin")
            .tenant(name.clone())
            .with("n", i);
        let linked = new.link(head, Timestamp::now());
        head = linked.anchor();
        chain.push(linked);
    }
    let at = usize::from(which) % chain.len();
    let changed = &mut chain[at];
    match field % 5 {
        0 => changed.actor.push('x'),
        1 => changed.tenant_id = Some(format!("{}x", changed.tenant_id.clone().unwrap_or_default())),
        2 => {
            changed.data.insert("n".into(), serde_json::json!(u64::MAX));
        }
        3 => changed.event_type.push('x'),
        _ => {
            chain.remove(at);
        }
    }
    let mut verifier = ChainVerifier::new(Anchor::GENESIS, Some(head));
    let pushed = chain.iter().try_for_each(|event| verifier.push(event));
    assert!(
        pushed.is_err() || verifier.finish(Some(head)).is_err(),
        "a changed chain verified against its anchor"
    );
});
