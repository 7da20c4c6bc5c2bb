//! The immutable [`Keyring`] snapshot that seals and opens secret values:
//! which key is active (the greatest id), and what a reload may replace
//! ([`Keyring::assemble`], SPEC §3). Key files are read by `keydir`; this
//! module never touches the disk, never logs, and never lets key bytes
//! reach a `Debug` or an error.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::backup_mac::BackupMac;
use super::data_key::{self, DataKey, DataKeyId, WrappedDataKey};
use super::seal::{self, SealedValue, Sealer, SecretLocation};
use super::{CryptoError, Fingerprint, KeyDirScan, KeyFileError, KeyFileProblem, MasterKey};
use crate::model::{KeyId, SecretValue, TenantId};

/// One loaded key and its fingerprint, computed once.
struct Entry {
    key: Arc<MasterKey>,
    fingerprint: Fingerprint,
}

impl Entry {
    fn new(key: Arc<MasterKey>) -> Self {
        let fingerprint = key.fingerprint();
        Self { key, fingerprint }
    }

    fn share(&self) -> Self {
        Self {
            key: Arc::clone(&self.key),
            fingerprint: self.fingerprint,
        }
    }
}

/// An immutable snapshot of the loaded master keys.
///
/// Callers share it through `Arc` and replace the whole snapshot on reload
/// ([`Keyring::assemble`]); snapshots share key memory, so keeping a
/// previous key copies no key bytes. The active key is the greatest key id
/// in byte order.
#[derive(Default)]
pub struct Keyring {
    entries: BTreeMap<KeyId, Entry>,
}

impl Keyring {
    /// No keys: nothing can be sealed or opened (a valid state, SPEC §3).
    pub fn empty() -> Self {
        Self::default()
    }

    /// A keyring holding exactly `keys`.
    pub fn from_keys(keys: impl IntoIterator<Item = (KeyId, MasterKey)>) -> Self {
        let entries = keys
            .into_iter()
            .map(|(key_id, key)| (key_id, Entry::new(Arc::new(key))))
            .collect();
        Self { entries }
    }

    /// The key new values are sealed under: the greatest key id in byte order.
    pub fn active(&self) -> Option<&KeyId> {
        self.entries.last_key_value().map(|(key_id, _)| key_id)
    }

    /// Whether `key_id` is loaded.
    pub fn contains(&self, key_id: &KeyId) -> bool {
        self.entries.contains_key(key_id)
    }

    /// The loaded key ids, in byte order (the active one last).
    pub fn ids(&self) -> impl Iterator<Item = &KeyId> {
        self.entries.keys()
    }

    /// How many keys are loaded.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is loaded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The fingerprint of a loaded key.
    pub fn fingerprint(&self, key_id: &KeyId) -> Option<Fingerprint> {
        self.entries.get(key_id).map(|entry| entry.fingerprint)
    }

    /// Seals `value` for `location` under the active key.
    pub fn seal(
        &self,
        location: &SecretLocation<'_>,
        value: &SecretValue,
    ) -> Result<SealedValue, CryptoError> {
        let (key_id, entry) = self
            .entries
            .last_key_value()
            .ok_or(CryptoError::NoActiveKey)?;
        seal::seal(
            Sealer::MasterKey(key_id.clone()),
            entry.key.expose_secret(),
            location,
            value.expose_secret().as_bytes(),
        )
    }

    /// Wraps a tenant's data key under the active master key.
    pub fn wrap_data_key(
        &self,
        tenant: &TenantId,
        dek_id: &DataKeyId,
        key: &DataKey,
    ) -> Result<WrappedDataKey, CryptoError> {
        let (key_id, entry) = self
            .entries
            .last_key_value()
            .ok_or(CryptoError::NoActiveKey)?;
        data_key::wrap(key_id, entry.key.expose_secret(), tenant, dek_id, key)
    }

    /// Opens a data key wrapped for `tenant` with the master key it names.
    pub fn unwrap_data_key(
        &self,
        tenant: &TenantId,
        dek_id: &DataKeyId,
        wrapped: &WrappedDataKey,
    ) -> Result<DataKey, CryptoError> {
        let entry = self.entry(&wrapped.key_id)?;
        data_key::unwrap(entry.key.expose_secret(), tenant, dek_id, wrapped)
    }

    /// Unwraps a data key and wraps it again under the active master key
    /// (a master rotation: the data key, and so every value, stays).
    pub fn rewrap_data_key(
        &self,
        tenant: &TenantId,
        dek_id: &DataKeyId,
        wrapped: &WrappedDataKey,
    ) -> Result<WrappedDataKey, CryptoError> {
        let key = self.unwrap_data_key(tenant, dek_id, wrapped)?;
        self.wrap_data_key(tenant, dek_id, &key)
    }

    fn entry(&self, key_id: &KeyId) -> Result<&Entry, CryptoError> {
        self.entries
            .get(key_id)
            .ok_or_else(|| CryptoError::MissingKey {
                key_id: key_id.clone(),
            })
    }

    /// The MAC that authenticates a backup, keyed from the active key;
    /// returns that key's id too (the backup header names it).
    pub fn active_backup_mac(&self) -> Result<(KeyId, BackupMac), CryptoError> {
        let (key_id, entry) = self
            .entries
            .last_key_value()
            .ok_or(CryptoError::NoActiveKey)?;
        Ok((key_id.clone(), BackupMac::new(entry.key.expose_secret())))
    }

    /// The MAC of a backup made under `key_id`, to check one.
    pub fn backup_mac(&self, key_id: &KeyId) -> Result<BackupMac, CryptoError> {
        let entry = self.entry(key_id)?;
        Ok(BackupMac::new(entry.key.expose_secret()))
    }

    /// Opens a record sealed directly under a master key for `location`
    /// with the key it names. A record under a tenant data key needs the
    /// tenant's keys ([`super::TenantKeys::open`]).
    pub fn open(
        &self,
        location: &SecretLocation<'_>,
        sealed: &SealedValue,
    ) -> Result<SecretValue, CryptoError> {
        let key_id = match &sealed.sealer {
            Sealer::MasterKey(key_id) => key_id,
            Sealer::DataKey(dek_id) => {
                return Err(CryptoError::MissingDataKey {
                    dek_id: dek_id.clone(),
                });
            }
        };
        let entry = self.entry(key_id)?;
        let plaintext = seal::open(entry.key.expose_secret(), location, sealed)?;
        SecretValue::from_opened(plaintext).map_err(|_| CryptoError::Unopenable {
            key_id: key_id.clone(),
        })
    }

    /// Opens a record with its key and seals it again under the active key
    /// (a fresh nonce even when it already was under the active key).
    pub fn reseal(
        &self,
        location: &SecretLocation<'_>,
        sealed: &SealedValue,
    ) -> Result<SealedValue, CryptoError> {
        let value = self.open(location, sealed)?;
        self.seal(location, &value)
    }

    /// Builds the next snapshot from a directory scan (SPEC §3 reload rule).
    ///
    /// - A scanned key whose fingerprint differs from the `known` (stored)
    ///   one for its id is refused ([`KeyFileError::FingerprintMismatch`]);
    ///   if `previous` holds that id with the known fingerprint, the previous
    ///   copy stays.
    /// - A `.key` entry that failed to load keeps the previous copy of its
    ///   id (a bad edit keeps the last good key), unless that copy
    ///   contradicts `known`.
    /// - An id with no entry in the directory any more is gone.
    ///
    /// Returns the snapshot and every problem (the scan's, then the
    /// fingerprint mismatches).
    pub fn assemble(
        scan: KeyDirScan,
        known: &BTreeMap<KeyId, Fingerprint>,
        previous: Option<&Keyring>,
    ) -> (Keyring, Vec<KeyFileProblem>) {
        let KeyDirScan {
            dir,
            keys,
            mut problems,
        } = scan;
        // A previous copy may stay only if it agrees with the stored fingerprint.
        let previous_copy = |key_id: &KeyId| {
            let entry = previous?.entries.get(key_id)?;
            match known.get(key_id) {
                Some(expected) if *expected != entry.fingerprint => None,
                _ => Some(entry.share()),
            }
        };

        let mut entries = BTreeMap::new();
        for problem in &problems {
            if let Some(key_id) = &problem.key_id
                && let Some(entry) = previous_copy(key_id)
            {
                entries.insert(key_id.clone(), entry);
            }
        }
        for (key_id, key) in keys {
            let entry = Entry::new(Arc::new(key));
            match known.get(&key_id) {
                Some(expected) if *expected != entry.fingerprint => {
                    if let Some(previous) = previous_copy(&key_id) {
                        entries.insert(key_id.clone(), previous);
                    }
                    problems.push(KeyFileProblem {
                        path: dir.join(format!("{key_id}.key")),
                        key_id: Some(key_id),
                        error: KeyFileError::FingerprintMismatch {
                            expected: *expected,
                            found: entry.fingerprint,
                        },
                        content_digest: None,
                    });
                }
                _ => {
                    entries.insert(key_id, entry);
                }
            }
        }
        (Keyring { entries }, problems)
    }
}

impl fmt::Debug for Keyring {
    /// Ids and fingerprints only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("active", &self.active())
            .field(
                "keys",
                &self
                    .entries
                    .iter()
                    .map(|(key_id, entry)| (key_id, entry.fingerprint))
                    .collect::<BTreeMap<_, _>>(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use super::*;
    use crate::crypto::key_testing::{assert_no_key_material, b64, key_id, write_mode};
    use crate::crypto::scan_dir;
    use crate::model::{EnvKey, Provider, Scope, TenantId};

    struct Place {
        scope: Scope,
        provider: Provider,
        key: EnvKey,
    }

    impl Place {
        fn new(owner: &str) -> Self {
            Self {
                scope: Scope::Tenant(TenantId::parse(owner).unwrap()),
                provider: Provider::parse("openai").unwrap(),
                key: EnvKey::parse("OPENAI_API_KEY").unwrap(),
            }
        }

        fn location(&self) -> SecretLocation<'_> {
            SecretLocation {
                scope: &self.scope,
                provider: &self.provider,
                key: &self.key,
            }
        }
    }

    fn value(text: &str) -> SecretValue {
        SecretValue::parse(text.to_owned()).unwrap()
    }

    #[test]
    fn active_is_the_greatest_id() {
        let keyring = Keyring::from_keys([
            (key_id("20261128T061542Z"), MasterKey::from_bytes([1; 32])),
            (key_id("prod"), MasterKey::from_bytes([2; 32])),
            (key_id("20271128T061542Z"), MasterKey::from_bytes([3; 32])),
        ]);
        assert_eq!(keyring.active(), Some(&key_id("prod")));
        assert_eq!(keyring.len(), 3);
        assert!(keyring.contains(&key_id("20261128T061542Z")));
        assert!(!keyring.contains(&key_id("other")));
        let ids: Vec<_> = keyring.ids().map(KeyId::as_str).collect();
        assert_eq!(ids, ["20261128T061542Z", "20271128T061542Z", "prod"]);
        assert_eq!(
            keyring.fingerprint(&key_id("prod")),
            Some(MasterKey::from_bytes([2; 32]).fingerprint())
        );
        assert_eq!(keyring.fingerprint(&key_id("other")), None);
        let debug = format!("{keyring:?}");
        assert!(debug.contains("prod") && !debug.contains("[2, 2"));
    }

    #[test]
    fn seal_open_and_reseal() {
        let place = Place::new("t1");
        let old = Keyring::from_keys([(key_id("a"), MasterKey::from_bytes([1; 32]))]);
        let sealed = old.seal(&place.location(), &value("sk-1")).unwrap();
        assert_eq!(sealed.master_key_id(), Some(&key_id("a")));
        assert_eq!(
            old.open(&place.location(), &sealed)
                .unwrap()
                .expose_secret(),
            "sk-1"
        );

        let rotated = Keyring::from_keys([
            (key_id("a"), MasterKey::from_bytes([1; 32])),
            (key_id("b"), MasterKey::from_bytes([2; 32])),
        ]);
        let resealed = rotated.reseal(&place.location(), &sealed).unwrap();
        assert_eq!(resealed.master_key_id(), Some(&key_id("b")));
        assert_eq!(
            rotated
                .open(&place.location(), &resealed)
                .unwrap()
                .expose_secret(),
            "sk-1"
        );

        let without_b = Keyring::from_keys([(key_id("a"), MasterKey::from_bytes([1; 32]))]);
        assert!(matches!(
            without_b.open(&place.location(), &resealed).err().unwrap(),
            CryptoError::MissingKey { key_id } if key_id.as_str() == "b"
        ));
        let elsewhere = Place::new("t2");
        assert!(matches!(
            rotated
                .reseal(&elsewhere.location(), &sealed)
                .err()
                .unwrap(),
            CryptoError::Unopenable { .. }
        ));
    }

    #[test]
    fn empty_keyring_cannot_seal() {
        let keyring = Keyring::empty();
        assert!(keyring.is_empty() && keyring.active().is_none());
        let place = Place::new("t1");
        let error = keyring.seal(&place.location(), &value("v")).err().unwrap();
        assert!(matches!(error, CryptoError::NoActiveKey));
        assert_eq!(error.to_string(), "no master key is loaded");
    }

    #[test]
    fn same_id_with_other_content_is_unopenable() {
        let place = Place::new("t1");
        let original = Keyring::from_keys([(key_id("a"), MasterKey::from_bytes([1; 32]))]);
        let replaced = Keyring::from_keys([(key_id("a"), MasterKey::from_bytes([9; 32]))]);
        let sealed = original.seal(&place.location(), &value("v")).unwrap();
        let error = replaced.open(&place.location(), &sealed).err().unwrap();
        assert_eq!(
            error.to_string(),
            "sealed value cannot be opened with master key a"
        );
    }

    #[test]
    fn invalid_plaintext_is_unopenable() {
        let place = Place::new("t1");
        let keyring = Keyring::from_keys([(key_id("a"), MasterKey::from_bytes([1; 32]))]);
        for plaintext in [&[0xff, 0xfe][..], b"a\0b"] {
            let sealed = seal::seal(
                Sealer::MasterKey(key_id("a")),
                &[1; 32],
                &place.location(),
                plaintext,
            )
            .unwrap();
            assert!(matches!(
                keyring.open(&place.location(), &sealed).err().unwrap(),
                CryptoError::Unopenable { .. }
            ));
        }
    }

    proptest::proptest! {
        #[test]
        fn keyring_round_trips_any_valid_value(text in "[^\\x00]{1,300}", key in proptest::prelude::any::<[u8; 32]>()) {
            let place = Place::new("t1");
            let keyring = Keyring::from_keys([(key_id("k"), MasterKey::from_bytes(key))]);
            let sealed = keyring.seal(&place.location(), &value(&text)).unwrap();
            let opened = keyring.open(&place.location(), &sealed).unwrap();
            proptest::prop_assert_eq!(opened.expose_secret(), text.as_str());
        }
    }

    // ---- reload ----

    fn scan_of(dir: &Path, keys: Vec<(&str, [u8; 32])>, problems: Vec<&str>) -> KeyDirScan {
        KeyDirScan {
            dir: dir.to_path_buf(),
            keys: keys
                .into_iter()
                .map(|(id, bytes)| (key_id(id), MasterKey::from_bytes(bytes)))
                .collect(),
            problems: problems
                .into_iter()
                .map(|id| KeyFileProblem {
                    path: dir.join(format!("{id}.key")),
                    key_id: Some(key_id(id)),
                    error: KeyFileError::Empty,
                    content_digest: Some([0; 32]),
                })
                .collect(),
        }
    }

    #[test]
    fn fingerprint_mismatch_is_refused_and_previous_kept() {
        let dir = Path::new("/keys");
        let good = MasterKey::from_bytes([1; 32]).fingerprint();
        let known = BTreeMap::from([(key_id("a"), good)]);
        let previous = Keyring::from_keys([(key_id("a"), MasterKey::from_bytes([1; 32]))]);

        let (keyring, problems) = Keyring::assemble(
            scan_of(dir, vec![("a", [9; 32])], vec![]),
            &known,
            Some(&previous),
        );
        assert_eq!(keyring.fingerprint(&key_id("a")), Some(good));
        let [problem] = problems.as_slice() else {
            panic!("{problems:?}")
        };
        assert_eq!(problem.path, Path::new("/keys/a.key"));
        assert_eq!(problem.key_id, Some(key_id("a")));
        assert!(matches!(
            problem.error,
            KeyFileError::FingerprintMismatch { expected, found }
                if expected == good && found == MasterKey::from_bytes([9; 32]).fingerprint()
        ));
        assert_no_key_material(&problem.to_string());

        // At start-up there is no previous copy: the id is simply not loaded.
        let (keyring, problems) =
            Keyring::assemble(scan_of(dir, vec![("a", [9; 32])], vec![]), &known, None);
        assert!(keyring.is_empty());
        assert_eq!(problems.len(), 1);

        // A matching file loads.
        let (keyring, problems) =
            Keyring::assemble(scan_of(dir, vec![("a", [1; 32])], vec![]), &known, None);
        assert_eq!(keyring.fingerprint(&key_id("a")), Some(good));
        assert!(problems.is_empty());
    }

    #[test]
    fn bad_edit_keeps_previous_copy() {
        let dir = Path::new("/keys");
        let previous = Keyring::from_keys([
            (key_id("a"), MasterKey::from_bytes([1; 32])),
            (key_id("b"), MasterKey::from_bytes([2; 32])),
        ]);
        let (keyring, problems) = Keyring::assemble(
            scan_of(dir, vec![("b", [2; 32])], vec!["a"]),
            &BTreeMap::new(),
            Some(&previous),
        );
        assert_eq!(keyring.len(), 2);
        assert_eq!(
            keyring.fingerprint(&key_id("a")),
            previous.fingerprint(&key_id("a"))
        );
        assert_eq!(problems.len(), 1);
        // The snapshots share key memory rather than copying it.
        assert!(Arc::ptr_eq(
            &keyring.entries[&key_id("a")].key,
            &previous.entries[&key_id("a")].key
        ));

        // A previous copy that contradicts the stored fingerprint is not kept.
        let known = BTreeMap::from([(key_id("a"), MasterKey::from_bytes([7; 32]).fingerprint())]);
        let (keyring, _) =
            Keyring::assemble(scan_of(dir, vec![], vec!["a"]), &known, Some(&previous));
        assert!(!keyring.contains(&key_id("a")));
    }

    #[test]
    fn removed_file_is_gone_and_new_files_load() {
        let dir = Path::new("/keys");
        let previous = Keyring::from_keys([
            (key_id("a"), MasterKey::from_bytes([1; 32])),
            (key_id("b"), MasterKey::from_bytes([2; 32])),
        ]);
        let (keyring, problems) = Keyring::assemble(
            scan_of(dir, vec![("b", [2; 32]), ("c", [3; 32])], vec![]),
            &BTreeMap::new(),
            Some(&previous),
        );
        assert!(problems.is_empty());
        let ids: Vec<_> = keyring.ids().map(KeyId::as_str).collect();
        assert_eq!(ids, ["b", "c"]);
        assert_eq!(keyring.active(), Some(&key_id("c")));
    }

    #[test]
    fn reload_from_disk_end_to_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.key");
        write_mode(&path, b64(&[1; 32]).as_bytes(), 0o600);
        let (first, problems) =
            Keyring::assemble(scan_dir(dir.path(), false).unwrap(), &BTreeMap::new(), None);
        assert!(problems.is_empty());
        let known = BTreeMap::from([(key_id("a"), first.fingerprint(&key_id("a")).unwrap())]);

        // A half-written file keeps the good key.
        write_mode(&path, &b64(&[1; 32]).as_bytes()[..20], 0o600);
        let (second, problems) =
            Keyring::assemble(scan_dir(dir.path(), false).unwrap(), &known, Some(&first));
        assert!(second.contains(&key_id("a")));
        assert!(matches!(
            problems[0].error,
            KeyFileError::WrongLength { .. } | KeyFileError::BadEncoding { .. }
        ));

        // Overwritten with another key: refused, good key kept.
        write_mode(&path, b64(&[5; 32]).as_bytes(), 0o600);
        let (third, problems) =
            Keyring::assemble(scan_dir(dir.path(), false).unwrap(), &known, Some(&second));
        assert_eq!(
            third.fingerprint(&key_id("a")),
            known.get(&key_id("a")).copied()
        );
        assert!(matches!(
            problems[0].error,
            KeyFileError::FingerprintMismatch { .. }
        ));

        fs::remove_file(&path).unwrap();
        let (fourth, problems) =
            Keyring::assemble(scan_dir(dir.path(), false).unwrap(), &known, Some(&third));
        assert!(fourth.is_empty() && problems.is_empty());
    }
}
