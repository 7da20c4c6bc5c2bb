//! Key-file contents (base64 or hex, trailing newline): never a panic; a
//! file that parses gives the same key when parsed again (the fingerprint
//! the store keeps depends on it).
#![no_main]

use exsec::crypto::parse_key_file;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(key) = parse_key_file(bytes) {
        let again = parse_key_file(bytes).expect("parses twice");
        assert!(key.fingerprint() == again.fingerprint());
    }
});
