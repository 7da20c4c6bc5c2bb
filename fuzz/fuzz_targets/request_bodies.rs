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
    // A value the body carried must not come back in the error. A value can
    // also happen to spell part of the error's own words ("… `image_ref` in
    // the body"): it counts as an echo only if the error follows the value —
    // the same body with that value replaced must show the replacement (a
    // replacement spelled with a letter found nowhere else, so that an
    // unknown field's echoed name cannot spell it).
    if let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(bytes) {
        for (name, value) in &fields {
            let Some(text) = value.as_str().filter(|t| t.len() >= 12) else {
                continue;
            };
            if !error.detail.contains(text) {
                continue;
            }
            // The marker's letter appears nowhere in the input or the
            // error (a field name made of it would be echoed by design).
            let input = String::from_utf8_lossy(bytes);
            let Some(letter) = "QZXJKVWqzxjkvw"
                .chars()
                .find(|c| !input.contains(*c) && !error.detail.contains(*c))
            else {
                continue;
            };
            let marker = letter.to_string().repeat(text.chars().count());
            let mut replaced = fields.clone();
            replaced.insert(name.clone(), serde_json::Value::String(marker.clone()));
            let replaced = serde_json::to_vec(&replaced).expect("JSON of JSON");
            if let Err(again) = parse_json::<T>(&replaced) {
                assert!(!again.detail.contains(&marker), "error echoes a value: {}", error.detail);
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
