//! Request bodies and query strings as the API parses them: every body DTO
//! from arbitrary bytes, and the query decoder. Never a panic; an error never
//! echoes a submitted value (the input's longer strings are checked against
//! the error text).
#![no_main]

use exsec::api::dto::{DeployBody, MintTokenBody, PutAppBody, PutTenantBody, ValueBody};
use exsec::api::{parse_json, query_pairs};
use libfuzzer_sys::fuzz_target;

fn check<T: serde::de::DeserializeOwned>(bytes: &[u8]) {
    let Err(error) = parse_json::<T>(bytes) else {
        return;
    };
    // A value the body carried must not come back in the error.
    if let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(bytes) {
        for value in fields.values() {
            if let Some(text) = value.as_str().filter(|t| t.len() >= 12) {
                assert!(!error.detail.contains(text), "error echoes a value: {}", error.detail);
            }
        }
    }
}

fuzz_target!(|bytes: &[u8]| {
    check::<PutTenantBody>(bytes);
    check::<MintTokenBody>(bytes);
    check::<PutAppBody>(bytes);
    check::<ValueBody>(bytes);
    check::<DeployBody>(bytes);
    if let Ok(query) = std::str::from_utf8(bytes) {
        let _ = query_pairs(query);
    }
});
