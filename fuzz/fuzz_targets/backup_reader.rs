//! The backup reader (`exsec restore`, and the check `exsec backup` runs on
//! a download): never a panic, whatever the file holds.
//!
//! A forger cannot produce a valid MAC, but the reader behind the MAC must
//! hold against a backup made with a stolen key or a format-1 file accepted
//! unauthenticated. So the input is tried three ways: as it is (structure
//! only, as `inspect` reads a format-2 file); with a correct SHA-256
//! appended (the format-1 checksum, restored with
//! `accept_unauthenticated`); and with a correct MAC under a fixed key
//! appended (a format-2 restore all the way into a redb file).
#![no_main]

use std::sync::OnceLock;

use exsec::crypto::{Keyring, MasterKey};
use exsec::model::KeyId;
use exsec::store::StoreOptions;
use exsec::store::backup::{self, RestoreOptions};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

/// The key id the MAC is made with; seeds' headers name it.
const KEY_ID: &str = "fuzz";

fn keyring() -> &'static Keyring {
    static KEYRING: OnceLock<Keyring> = OnceLock::new();
    KEYRING.get_or_init(|| {
        Keyring::from_keys([(KeyId::parse(KEY_ID).unwrap(), MasterKey::from_bytes([9; 32]))])
    })
}

fuzz_target!(|body: &[u8]| {
    let dir = tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()).unwrap();
    let file = dir.path().join("in.backup");

    std::fs::write(&file, body).unwrap();
    let _ = backup::inspect(&file);

    let options = RestoreOptions {
        keyring: keyring(),
        accept_unauthenticated: true,
        force: true,
        store: StoreOptions::with_cache_size(1 << 20),
    };
    let mut checksummed = body.to_vec();
    checksummed.extend_from_slice(&Sha256::digest(body));
    std::fs::write(&file, &checksummed).unwrap();
    let _ = backup::inspect(&file);
    let _ = backup::restore(&file, &dir.path().join("a.redb"), &options);

    let (_, mut mac) = keyring().active_backup_mac().unwrap();
    mac.update(body);
    let mut authenticated = body.to_vec();
    authenticated.extend_from_slice(&mac.finalize());
    std::fs::write(&file, &authenticated).unwrap();
    let _ = backup::restore(&file, &dir.path().join("b.redb"), &options);
});
