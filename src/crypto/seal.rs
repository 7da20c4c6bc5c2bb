//! Sealing and opening one secret value with XChaCha20-Poly1305.
//!
//! This file exists so that the AEAD construction and the AAD encoding live
//! in exactly one place: a sealed value is bound to its scope kind, owner,
//! provider and key (and, under a tenant data key, that key's id), so a
//! record copied anywhere else fails to open. It and `data_key` (which
//! wraps tenant data keys with the same construction) are the only files in
//! exsec that touch `chacha20poly1305`.
//!
//! It must not choose keys (the keyring does), must not log, and must never
//! hold plaintext outside a zeroizing buffer.

use std::fmt;
use std::io;

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{Key, KeyInit, Tag, XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::data_key::DataKeyId;
use crate::model::{EnvKey, KeyId, Provider, Scope};

/// Sealing or opening failed.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The keyring is empty, so nothing can be sealed.
    #[error("no master key is loaded")]
    NoActiveKey,
    /// The record was sealed under a key that is not in the keyring.
    #[error("master key {key_id} is not loaded")]
    MissingKey {
        /// The key the record needs.
        key_id: KeyId,
    },
    /// The record was sealed under a tenant data key whose wrap is not in
    /// the store (the tenant was shredded, or the record was copied from
    /// another tenant).
    #[error("tenant data key {dek_id} is not available")]
    MissingDataKey {
        /// The data key the record names.
        dek_id: DataKeyId,
    },
    /// Authentication failed (wrong key content, tampering, or a record
    /// moved to another location) or the plaintext is not a valid value.
    /// Deliberately one variant: no detail for an oracle.
    #[error("sealed value cannot be opened with master key {key_id}")]
    Unopenable {
        /// The key the record names.
        key_id: KeyId,
    },
    /// The cipher refused to seal (only possible for absurd lengths).
    #[error("sealing under master key {key_id} failed")]
    SealFailed {
        /// The active key.
        key_id: KeyId,
    },
    /// The operating system's random source failed.
    #[error("system random source failed")]
    Random {
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}

// A portable x86 build must hash with poly1305's portable backend, which
// `.cargo/config.toml` selects: the crate's run-time-detected AVX2 backend
// makes every seal and open ~3x slower in a build without AVX2 enabled
// (docs/performance.md). RUSTFLAGS in the environment replaces that file's
// flags; this turns the silent slowdown into a build warning.
#[cfg(all(
    any(target_arch = "x86", target_arch = "x86_64"),
    not(target_feature = "avx2"),
    not(poly1305_backend = "soft")
))]
const _: () = {
    #[deprecated(
        note = "poly1305 falls back to its slow run-time-detected AVX2 backend: build with --cfg 'poly1305_backend=\"soft\"' (see .cargo/config.toml and docs/performance.md)"
    )]
    const POLY1305_BACKEND_NOT_SET: () = ();
    POLY1305_BACKEND_NOT_SET
};

/// Length of the random XChaCha20 nonce stored beside each ciphertext.
pub const NONCE_LEN: usize = 24;
/// Length of the Poly1305 tag at the end of every ciphertext.
pub const TAG_LEN: usize = 16;
/// First bytes of every AAD; bump the version if the encoding ever changes.
const AAD_DOMAIN: &[u8] = b"exsec/secret/v1";

/// The key a value is sealed under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sealer {
    /// Directly under a master key (every value before schema 5; the
    /// migration pass moves them under data keys).
    MasterKey(KeyId),
    /// Under the data key of the owning tenant (SPEC §11.4); the master
    /// key only wraps that data key, so a master rotation never touches
    /// the value.
    DataKey(DataKeyId),
}

/// A secret value as it is stored: the key that sealed it, the nonce, and
/// the ciphertext with its 16-byte tag at the end.
///
/// Stored by the store through bincode, so it keeps plain fields only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedValue {
    /// The key this value was sealed under.
    pub sealer: Sealer,
    /// The random nonce used for this seal; never reused under one key.
    pub nonce: [u8; NONCE_LEN],
    /// Ciphertext followed by the Poly1305 tag (`plaintext length + 16`).
    pub ciphertext: Vec<u8>,
}

impl SealedValue {
    /// Length of the sealed plaintext in bytes (not secret: the ciphertext
    /// shows it). Lets callers check size limits without opening.
    pub fn plaintext_len(&self) -> usize {
        self.ciphertext.len().saturating_sub(TAG_LEN)
    }

    /// The id of the key that sealed this value (a data key's id in the
    /// same form as a master key's); safe to show.
    pub fn sealer_id(&self) -> KeyId {
        sealer_key_id(&self.sealer)
    }

    /// The master key this value was sealed under directly, if it was.
    pub fn master_key_id(&self) -> Option<&KeyId> {
        match &self.sealer {
            Sealer::MasterKey(key_id) => Some(key_id),
            Sealer::DataKey(_) => None,
        }
    }
}

impl fmt::Debug for SealedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Ciphertext is not secret, but dumping it helps nobody and bloats logs.
        f.debug_struct("SealedValue")
            .field("sealer", &self.sealer)
            .field("nonce_len", &self.nonce.len())
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

/// Where a secret lives; everything here is bound into the AAD.
#[derive(Debug, Clone, Copy)]
pub struct SecretLocation<'a> {
    /// Tenant default or app override, with its owner id.
    pub scope: &'a Scope,
    /// The provider, e.g. `openai`.
    pub provider: &'a Provider,
    /// The environment variable name.
    pub key: &'a EnvKey,
}

/// The associated data for a secret at `location`.
///
/// Layout: `exsec/secret/v1`, one scope-kind byte (`t` or `a`), then owner
/// id, provider and key, each as a big-endian `u32` length followed by its
/// bytes. The length prefixes make the encoding injective: `t1`+`openai`
/// and `t1o`+`penai` give different bytes.
pub fn aad(location: &SecretLocation<'_>) -> Vec<u8> {
    Aad::of(location).as_slice().to_vec()
}

/// The associated data of a value at `location` sealed under the data key
/// `dek_id`: the §2 AAD followed by the dek id, length-prefixed, so a value
/// never opens under another of the tenant's data keys or as a directly
/// sealed one.
pub fn data_key_aad(location: &SecretLocation<'_>, dek_id: &DataKeyId) -> Vec<u8> {
    Aad::of_data_key(location, dek_id).as_slice().to_vec()
}

/// Appends `field` as a big-endian `u32` length and its bytes.
pub(super) fn push_field(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&field_len(field));
    out.extend_from_slice(field);
}

/// A field's length prefix.
fn field_len(field: &[u8]) -> [u8; 4] {
    // Model types cap every field at 253 bytes, so the length always fits.
    u32::try_from(field.len()).unwrap_or(u32::MAX).to_be_bytes()
}

/// Bytes an AAD holds without a heap allocation: 64 bytes of fixed parts
/// (domain, kind byte, four length prefixes, a data key id) and 96 of
/// owner, provider and key names, which covers ordinary names. Zeroing
/// and moving a buffer for the longest AAD the model allows (422 bytes)
/// cost more than the allocation it saves.
const AAD_INLINE: usize = 160;

/// An AAD built on the stack, so sealing and opening allocate nothing for
/// it (resolve opens 50 values per deploy); a longer one spills to the
/// heap.
struct Aad {
    inline: [u8; AAD_INLINE],
    len: usize,
    spilled: Vec<u8>,
}

impl Aad {
    /// The §2 AAD of `location`.
    fn of(location: &SecretLocation<'_>) -> Self {
        let mut out = Self {
            inline: [0; AAD_INLINE],
            len: 0,
            spilled: Vec::new(),
        };
        out.push(AAD_DOMAIN);
        out.push(&[location.scope.kind().tag()]);
        for field in [
            location.scope.owner(),
            location.provider.as_str(),
            location.key.as_str(),
        ] {
            out.push_field(field.as_bytes());
        }
        out
    }

    /// The AAD of a value at `location` under the data key `dek_id`.
    fn of_data_key(location: &SecretLocation<'_>, dek_id: &DataKeyId) -> Self {
        let mut out = Self::of(location);
        out.push_field(dek_id.as_str().as_bytes());
        out
    }

    /// The AAD a sealed value was made with, from what it names.
    fn of_sealed(location: &SecretLocation<'_>, sealer: &Sealer) -> Self {
        match sealer {
            Sealer::MasterKey(_) => Self::of(location),
            Sealer::DataKey(dek_id) => Self::of_data_key(location, dek_id),
        }
    }

    fn push_field(&mut self, field: &[u8]) {
        self.push(&field_len(field));
        self.push(field);
    }

    fn push(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        if self.spilled.is_empty() && end <= AAD_INLINE {
            self.inline[self.len..end].copy_from_slice(bytes);
        } else {
            if self.spilled.is_empty() {
                self.spilled.extend_from_slice(&self.inline[..self.len]);
            }
            self.spilled.extend_from_slice(bytes);
        }
        self.len = end;
    }

    fn as_slice(&self) -> &[u8] {
        if self.spilled.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.spilled
        }
    }
}

/// Seals `plaintext` at `location` under `key`, named by `sealer`, with a
/// fresh random nonce.
///
/// The cipher is built from the key on every call: it is a 32-byte copy and
/// no precomputation, far cheaper than the store write that follows.
pub(crate) fn seal(
    sealer: Sealer,
    key: &[u8; 32],
    location: &SecretLocation<'_>,
    plaintext: &[u8],
) -> Result<SealedValue, CryptoError> {
    let aad = Aad::of_sealed(location, &sealer);
    let (nonce, ciphertext) =
        seal_raw(key, aad.as_slice(), plaintext, || CryptoError::SealFailed {
            key_id: sealer_key_id(&sealer),
        })?;
    Ok(SealedValue {
        sealer,
        nonce,
        ciphertext,
    })
}

/// Opens `sealed` with `key`, checking it belongs at `location`.
///
/// Every failure (wrong key, any tampered byte, wrong location, truncated
/// record) is the same [`CryptoError::Unopenable`]: no oracle detail.
pub(crate) fn open(
    key: &[u8; 32],
    location: &SecretLocation<'_>,
    sealed: &SealedValue,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    open_raw(
        key,
        Aad::of_sealed(location, &sealed.sealer).as_slice(),
        &sealed.nonce,
        &sealed.ciphertext,
    )
    .ok_or_else(|| CryptoError::Unopenable {
        key_id: sealer_key_id(&sealed.sealer),
    })
}

/// The id an error names for `sealer` (a data key's id is shown through the
/// same field: both are safe to show).
fn sealer_key_id(sealer: &Sealer) -> KeyId {
    match sealer {
        Sealer::MasterKey(key_id) => key_id.clone(),
        // A dek id is 32 hex characters, always a valid key id.
        Sealer::DataKey(dek_id) => dek_id.as_key_id(),
    }
}

/// XChaCha20-Poly1305 with a fresh random nonce (from the per-thread
/// stream of `nonce`): `(nonce, ciphertext‖tag)`.
/// `refused` is the error if the cipher refuses (only for absurd lengths).
pub(super) fn seal_raw(
    key: &[u8; 32],
    aad: &[u8],
    plaintext: &[u8],
    refused: impl FnOnce() -> CryptoError,
) -> Result<([u8; NONCE_LEN], Vec<u8>), CryptoError> {
    let nonce = super::nonce::fresh()?;
    let cipher = XChaCha20Poly1305::new(Key::cast_from_core(key));
    // Reserve room for the tag up front so pushing it never reallocates and
    // leaves a copy of the plaintext behind in freed memory.
    let mut buffer = Zeroizing::new(Vec::with_capacity(plaintext.len() + TAG_LEN));
    buffer.extend_from_slice(plaintext);
    let tag = cipher
        .encrypt_inout_detached(
            XNonce::cast_from_core(&nonce),
            aad,
            buffer.as_mut_slice().into(),
        )
        .map_err(|_| refused())?;
    buffer.extend_from_slice(tag.as_slice());
    // The buffer now holds ciphertext only; take it out of the zeroizing wrapper.
    Ok((nonce, std::mem::take(&mut *buffer)))
}

/// Opens `ciphertext‖tag`; `None` for every failure (no oracle detail).
pub(super) fn open_raw(
    key: &[u8; 32],
    aad: &[u8],
    nonce: &[u8; NONCE_LEN],
    ciphertext: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    let body_len = ciphertext.len().checked_sub(TAG_LEN)?;
    let (body, tag) = ciphertext.split_at(body_len);
    let tag = Tag::try_from(tag).ok()?;
    let cipher = XChaCha20Poly1305::new(Key::cast_from_core(key));
    let mut plaintext = Zeroizing::new(body.to_vec());
    cipher
        .decrypt_inout_detached(
            XNonce::cast_from_core(nonce),
            aad,
            plaintext.as_mut_slice().into(),
            &tag,
        )
        .ok()?;
    Some(plaintext)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::model::{AppId, TenantId};

    const KEY: [u8; 32] = [7; 32];
    const OTHER_KEY: [u8; 32] = [8; 32];

    fn key_id(raw: &str) -> KeyId {
        KeyId::parse(raw).unwrap()
    }

    #[derive(Debug)]
    struct Owned {
        scope: Scope,
        provider: Provider,
        key: EnvKey,
    }

    impl Owned {
        fn tenant(owner: &str, provider: &str, key: &str) -> Self {
            Self {
                scope: Scope::Tenant(TenantId::parse(owner).unwrap()),
                provider: Provider::parse(provider).unwrap(),
                key: EnvKey::parse(key).unwrap(),
            }
        }

        fn app(owner: &str, provider: &str, key: &str) -> Self {
            Self {
                scope: Scope::App(AppId::parse(owner).unwrap()),
                ..Self::tenant(owner, provider, key)
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

    fn sealed_at(owned: &Owned, plaintext: &[u8]) -> SealedValue {
        seal(
            Sealer::MasterKey(key_id("k1")),
            &KEY,
            &owned.location(),
            plaintext,
        )
        .unwrap()
    }

    #[test]
    fn aad_layout_is_domain_kind_then_length_prefixed_fields() {
        let owned = Owned::tenant("t1", "openai", "OPENAI_API_KEY");
        let mut expected = b"exsec/secret/v1t".to_vec();
        expected.extend_from_slice(&[0, 0, 0, 2]);
        expected.extend_from_slice(b"t1");
        expected.extend_from_slice(&[0, 0, 0, 6]);
        expected.extend_from_slice(b"openai");
        expected.extend_from_slice(&[0, 0, 0, 14]);
        expected.extend_from_slice(b"OPENAI_API_KEY");
        assert_eq!(aad(&owned.location()), expected);
        let app = Owned::app("t1", "openai", "OPENAI_API_KEY");
        assert_eq!(aad(&app.location())[15], b'a');
    }

    #[test]
    fn round_trip_and_layout() {
        let owned = Owned::tenant("t1", "openai", "OPENAI_API_KEY");
        let sealed = sealed_at(&owned, b"sk-123");
        assert_eq!(sealed.ciphertext.len(), 6 + TAG_LEN);
        assert_eq!(sealed.plaintext_len(), 6);
        assert_eq!(sealed.master_key_id(), Some(&key_id("k1")));
        let opened = open(&KEY, &owned.location(), &sealed).unwrap();
        assert_eq!(opened.as_slice(), b"sk-123");
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let owned = Owned::tenant("t1", "openai", "K");
        let first = sealed_at(&owned, b"same");
        let second = sealed_at(&owned, b"same");
        assert_ne!(first.nonce, second.nonce);
        assert_ne!(first.ciphertext, second.ciphertext);
    }

    #[test]
    fn boundary_shifts_do_not_open() {
        // Each pair concatenates to the same bytes without length prefixes.
        let pairs = [
            (
                Owned::tenant("t1", "openai", "K"),
                Owned::tenant("t1o", "penai", "K"),
            ),
            (
                Owned::tenant("t1", "openai", "KEY"),
                Owned::tenant("t", "1openai", "KEY"),
            ),
            (
                Owned::tenant("t1", "openai_", "KEY"),
                Owned::tenant("t1", "openai", "_KEY"),
            ),
            (Owned::app("a1", "p", "KEY"), Owned::app("a", "1p", "KEY")),
        ];
        for (sealed_at_loc, other) in &pairs {
            assert_ne!(aad(&sealed_at_loc.location()), aad(&other.location()));
            let sealed = sealed_at(sealed_at_loc, b"value");
            let err = open(&KEY, &other.location(), &sealed).unwrap_err();
            assert!(matches!(err, CryptoError::Unopenable { .. }), "{err}");
        }
    }

    #[test]
    fn truncated_records_are_unopenable() {
        let owned = Owned::tenant("t1", "openai", "K");
        let mut sealed = sealed_at(&owned, b"v");
        for len in [0, 1, TAG_LEN - 1, TAG_LEN] {
            sealed.ciphertext.truncate(len);
            let err = open(&KEY, &owned.location(), &sealed).unwrap_err();
            assert!(matches!(err, CryptoError::Unopenable { .. }));
        }
    }

    #[test]
    fn debug_shows_lengths_only() {
        let owned = Owned::tenant("t1", "openai", "K");
        let sealed = sealed_at(&owned, b"value");
        let shown = format!("{sealed:?}");
        assert!(shown.contains("\"k1\"") && shown.contains("ciphertext_len: 21"));
        assert!(!shown.contains(&format!("{:?}", sealed.nonce)));
    }

    fn label() -> impl Strategy<Value = String> {
        "[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?"
    }

    fn provider() -> impl Strategy<Value = String> {
        "[a-z0-9][a-z0-9._-]{0,8}"
    }

    fn env_key() -> impl Strategy<Value = String> {
        "[A-Za-z_][A-Za-z0-9_]{0,8}"
    }

    fn owned() -> impl Strategy<Value = Owned> {
        (any::<bool>(), label(), provider(), env_key()).prop_map(|(app, o, p, k)| {
            if app {
                Owned::app(&o, &p, &k)
            } else {
                Owned::tenant(&o, &p, &k)
            }
        })
    }

    fn same_place(a: &Owned, b: &Owned) -> bool {
        a.scope == b.scope && a.provider == b.provider && a.key == b.key
    }

    proptest! {
        #[test]
        fn round_trips_any_value(value in proptest::collection::vec(any::<u8>(), 1..2048), at in owned()) {
            let sealed = sealed_at(&at, &value);
            prop_assert_eq!(sealed.ciphertext.len(), value.len() + TAG_LEN);
            let opened = open(&KEY, &at.location(), &sealed).unwrap();
            prop_assert_eq!(opened.as_slice(), value.as_slice());
        }

        #[test]
        fn any_flipped_byte_fails(value in proptest::collection::vec(any::<u8>(), 1..64), index in any::<prop::sample::Index>(), mask in 1u8..=255) {
            let at = Owned::tenant("t1", "openai", "K");
            let sealed = sealed_at(&at, &value);
            let total = NONCE_LEN + sealed.ciphertext.len();
            let position = index.index(total);
            let mut tampered = sealed.clone();
            if position < NONCE_LEN {
                tampered.nonce[position] ^= mask;
            } else {
                tampered.ciphertext[position - NONCE_LEN] ^= mask;
            }
            let err = open(&KEY, &at.location(), &tampered).unwrap_err();
            prop_assert!(matches!(err, CryptoError::Unopenable { .. }), "{}", err);
        }

        #[test]
        fn moved_records_fail(value in "[ -~]{1,32}", from in owned(), to in owned()) {
            prop_assume!(!same_place(&from, &to));
            let sealed = sealed_at(&from, value.as_bytes());
            let err = open(&KEY, &to.location(), &sealed).unwrap_err();
            prop_assert!(matches!(err, CryptoError::Unopenable { .. }), "{}", err);
        }

        #[test]
        fn each_field_is_bound(value in "[ -~]{1,32}", at in owned(), other in owned()) {
            // Change one component at a time: kind, owner, provider, key.
            let sealed = sealed_at(&at, value.as_bytes());
            let flipped_kind = match &at.scope {
                Scope::Tenant(t) => Scope::App(AppId::parse(t.as_str()).unwrap()),
                Scope::App(a) => Scope::Tenant(TenantId::parse(a.as_str()).unwrap()),
            };
            let mut variants = vec![Owned { scope: flipped_kind, provider: at.provider.clone(), key: at.key.clone() }];
            if other.scope.owner() != at.scope.owner() {
                let scope = match &at.scope {
                    Scope::Tenant(_) => Scope::Tenant(TenantId::parse(other.scope.owner()).unwrap()),
                    Scope::App(_) => Scope::App(AppId::parse(other.scope.owner()).unwrap()),
                };
                variants.push(Owned { scope, provider: at.provider.clone(), key: at.key.clone() });
            }
            if other.provider != at.provider {
                variants.push(Owned { scope: at.scope.clone(), provider: other.provider.clone(), key: at.key.clone() });
            }
            if other.key != at.key {
                variants.push(Owned { scope: at.scope.clone(), provider: at.provider.clone(), key: other.key.clone() });
            }
            for moved in &variants {
                let err = open(&KEY, &moved.location(), &sealed).unwrap_err();
                prop_assert!(matches!(err, CryptoError::Unopenable { .. }), "{}", err);
            }
        }

        #[test]
        fn wrong_key_fails(value in proptest::collection::vec(any::<u8>(), 1..64), at in owned()) {
            let sealed = sealed_at(&at, &value);
            let err = open(&OTHER_KEY, &at.location(), &sealed).unwrap_err();
            prop_assert!(matches!(err, CryptoError::Unopenable { .. }), "{}", err);
        }

        #[test]
        fn aad_is_injective(a in owned(), b in owned()) {
            prop_assert_eq!(same_place(&a, &b), aad(&a.location()) == aad(&b.location()));
        }

        #[test]
        fn aad_is_injective_on_split_strings(whole in "[a-z0-9]{2,12}", cut in any::<prop::sample::Index>()) {
            // Moving the boundary between owner and provider never collides.
            let cut = 1 + cut.index(whole.len() - 1);
            let (owner, provider) = whole.split_at(cut);
            let left = Owned::tenant(owner, provider, "K");
            let shifted = 1 + (cut % (whole.len() - 1));
            prop_assume!(shifted != cut);
            let (owner2, provider2) = whole.split_at(shifted);
            let right = Owned::tenant(owner2, provider2, "K");
            prop_assert_ne!(aad(&left.location()), aad(&right.location()));
        }
    }
}
