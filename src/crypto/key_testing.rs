//! Test helpers shared by the key modules' tests: a key whose encodings
//! are easy to look for, and a check that text holds none of them.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose;

use crate::model::KeyId;

/// A key whose base64 has both `+` and `/` (URL-safe: `-` and `_`).
pub(super) const KEY_BYTES: [u8; 32] = [0xfb; 32];

pub(super) fn key_id(raw: &str) -> KeyId {
    KeyId::parse(raw).unwrap()
}

pub(super) fn b64(bytes: &[u8]) -> String {
    general_purpose::STANDARD.encode(bytes)
}

pub(super) fn hex_key() -> String {
    hex::encode(KEY_BYTES)
}

/// Fails when `text` contains any 8-character window of the key's
/// encodings (a quoted piece of the key would show up here).
pub(super) fn assert_no_key_material(text: &str) {
    let encodings = [
        b64(&KEY_BYTES),
        general_purpose::URL_SAFE.encode(KEY_BYTES),
        hex_key(),
        hex_key().to_uppercase(),
    ];
    for encoding in encodings {
        for window in encoding.as_bytes().windows(8) {
            let window = std::str::from_utf8(window).unwrap();
            assert!(!text.contains(window), "{text:?} contains {window:?}");
        }
    }
    assert!(!text.contains("251, 251"), "{text:?} contains raw bytes");
}

pub(super) fn write_mode(path: &Path, contents: &[u8], mode: u32) {
    fs::write(path, contents).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}
