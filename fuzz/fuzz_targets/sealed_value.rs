//! The sealed envelope: a value sealed at one location opens only there and
//! only intact. The input chooses the plaintext, the byte to flip and the
//! location to open at; any change must fail to open, never panic.
#![no_main]

use exsec::crypto::{Keyring, MasterKey, SealedValue, SecretLocation};
use exsec::model::{AppId, EnvKey, KeyId, Provider, Scope, SecretValue, TenantId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, u16, u8, bool)| {
    let (text, at, flip, other_location) = input;
    let Ok(value) = SecretValue::parse(text.to_owned()) else {
        return;
    };
    let keyring = Keyring::from_keys([(
        KeyId::parse("fuzz").unwrap(),
        MasterKey::from_bytes([7; 32]),
    )]);
    let scope = Scope::Tenant(TenantId::parse("acme").unwrap());
    let provider = Provider::parse("openai").unwrap();
    let key = EnvKey::parse("OPENAI_API_KEY").unwrap();
    let here = SecretLocation { scope: &scope, provider: &provider, key: &key };
    let sealed = keyring.seal(&here, &value).unwrap();
    assert!(keyring.open(&here, &sealed).is_ok());

    let other_scope = Scope::App(AppId::parse("acme").unwrap());
    let there = SecretLocation { scope: &other_scope, provider: &provider, key: &key };
    if other_location {
        assert!(keyring.open(&there, &sealed).is_err(), "opened at another location");
    }
    let mut tampered: SealedValue = sealed.clone();
    let total = tampered.nonce.len() + tampered.ciphertext.len();
    let at = usize::from(at) % total;
    let flip = flip | 1;
    if at < tampered.nonce.len() {
        tampered.nonce[at] ^= flip;
    } else {
        tampered.ciphertext[at - tampered.nonce.len()] ^= flip;
    }
    assert!(keyring.open(&here, &tampered).is_err(), "a flipped byte opened");
});
