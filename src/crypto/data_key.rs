//! Tenant data keys (SPEC §11.4): a random 32-byte key per tenant that seals
//! the values of the tenant and its apps, itself stored only wrapped under
//! a master key. A master rotation then re-wraps one small record per
//! tenant instead of re-sealing every value, and deleting a tenant's wraps
//! makes every copy of its values unopenable (crypto-shredding).
//!
//! The wrap is XChaCha20-Poly1305 with the AAD `exsec/tdek/v1 ‖ len‖tenant ‖
//! len‖dek_id`, so a wrap copied to another tenant or id fails to open.
//! This module holds unwrapped keys only in zeroizing memory, never logs,
//! and never touches the store: callers pass the wraps they read.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::seal::{self, NONCE_LEN, SealedValue, Sealer, SecretLocation, push_field};
use super::{CryptoError, Keyring};
use crate::model::{KeyId, SecretValue, TenantId};

/// Length of a data key in bytes.
pub const DATA_KEY_LEN: usize = 32;
/// First bytes of every wrap AAD; bump the version if the encoding changes.
const WRAP_DOMAIN: &[u8] = b"exsec/tdek/v1";
/// Unwrapped keys kept in memory at most; past it the cache starts over
/// (unwrapping is one AEAD open of 48 bytes, so a miss is cheap).
pub const DATA_KEY_CACHE_CAPACITY: usize = 4096;

/// The id of one data key: 32 lowercase hex characters drawn at random, so
/// ids never collide across tenants or concurrent creations.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DataKeyId(String);

impl DataKeyId {
    /// A fresh random id.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|source| CryptoError::Random {
            source: super::random_error(source),
        })?;
        Ok(Self(hex::encode(bytes)))
    }

    /// Parses a stored id (32 lowercase hex characters).
    pub fn parse(raw: &str) -> Option<Self> {
        let valid = raw.len() == 32 && raw.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        valid.then(|| Self(raw.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The same text as a [`KeyId`] (errors name either kind of key in one
    /// field; 32 hex characters always satisfy the key id rules).
    pub(super) fn as_key_id(&self) -> KeyId {
        KeyId::parse(&self.0).unwrap_or_else(|_| unreachable!("hex ids are valid key ids"))
    }
}

impl TryFrom<String> for DataKeyId {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw).ok_or_else(|| "a data key id is 32 lowercase hex characters".to_owned())
    }
}

impl From<DataKeyId> for String {
    fn from(id: DataKeyId) -> Self {
        id.0
    }
}

impl fmt::Display for DataKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An unwrapped data key. Zeroized on drop; no `Debug`, `Clone` or
/// `Serialize`; shared through `Arc`.
pub struct DataKey([u8; DATA_KEY_LEN]);

impl DataKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut key = Self([0; DATA_KEY_LEN]);
        getrandom::fill(&mut key.0).map_err(|source| CryptoError::Random {
            source: super::random_error(source),
        })?;
        Ok(key)
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for DataKey {}

/// A data key as stored: the master key that wraps it, the nonce, and the
/// 32-byte key encrypted with its 16-byte tag.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedDataKey {
    /// The master key this wrap is under.
    pub key_id: KeyId,
    /// The random nonce of this wrap.
    pub nonce: [u8; NONCE_LEN],
    /// The encrypted key followed by the Poly1305 tag.
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for WrappedDataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedDataKey")
            .field("key_id", &self.key_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

/// The wrap AAD: `exsec/tdek/v1`, then tenant and dek id, each as a
/// big-endian `u32` length and its bytes.
pub fn wrap_aad(tenant: &TenantId, dek_id: &DataKeyId) -> Vec<u8> {
    let mut out = Vec::with_capacity(WRAP_DOMAIN.len() + 8 + tenant.as_str().len() + 32);
    out.extend_from_slice(WRAP_DOMAIN);
    push_field(&mut out, tenant.as_str().as_bytes());
    push_field(&mut out, dek_id.as_str().as_bytes());
    out
}

/// Wraps `key` for `tenant` under the master key `key_id`.
pub(super) fn wrap(
    key_id: &KeyId,
    master: &[u8; 32],
    tenant: &TenantId,
    dek_id: &DataKeyId,
    key: &DataKey,
) -> Result<WrappedDataKey, CryptoError> {
    let (nonce, ciphertext) = seal::seal_raw(master, &wrap_aad(tenant, dek_id), &key.0, || {
        CryptoError::SealFailed {
            key_id: key_id.clone(),
        }
    })?;
    Ok(WrappedDataKey {
        key_id: key_id.clone(),
        nonce,
        ciphertext,
    })
}

/// Opens a wrap made for `tenant` and `dek_id`; any mismatch is
/// [`CryptoError::Unopenable`].
pub(super) fn unwrap(
    master: &[u8; 32],
    tenant: &TenantId,
    dek_id: &DataKeyId,
    wrapped: &WrappedDataKey,
) -> Result<DataKey, CryptoError> {
    let unopenable = || CryptoError::Unopenable {
        key_id: wrapped.key_id.clone(),
    };
    let plaintext = seal::open_raw(
        master,
        &wrap_aad(tenant, dek_id),
        &wrapped.nonce,
        &wrapped.ciphertext,
    )
    .ok_or_else(unopenable)?;
    let mut key = DataKey([0; DATA_KEY_LEN]);
    if plaintext.len() != DATA_KEY_LEN {
        return Err(unopenable());
    }
    key.0.copy_from_slice(&plaintext);
    Ok(key)
}

/// Unwrapped data keys by tenant, id and the master key of the wrap they
/// came from; bounded by [`DATA_KEY_CACHE_CAPACITY`]. An entry is used only
/// while that master key is loaded, so removing a key file stops its
/// values opening as it did before data keys.
#[derive(Default)]
pub struct DataKeyCache {
    entries: Mutex<HashMap<(TenantId, DataKeyId, KeyId), Arc<DataKey>>>,
}

impl DataKeyCache {
    /// Drops every cached key of `tenant` (after shredding it).
    pub fn forget_tenant(&self, tenant: &TenantId) {
        self.lock().retain(|(owner, _, _), _| owner != tenant);
    }

    /// How many keys are cached.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(TenantId, DataKeyId, KeyId), Arc<DataKey>>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The unwrapped key of one wrap, from the cache or by unwrapping.
    fn unwrapped(
        &self,
        keyring: &Keyring,
        tenant: &TenantId,
        dek_id: &DataKeyId,
        wrapped: &WrappedDataKey,
    ) -> Result<Arc<DataKey>, CryptoError> {
        if !keyring.contains(&wrapped.key_id) {
            return Err(CryptoError::MissingKey {
                key_id: wrapped.key_id.clone(),
            });
        }
        let cache_key = (tenant.clone(), dek_id.clone(), wrapped.key_id.clone());
        if let Some(key) = self.lock().get(&cache_key) {
            return Ok(Arc::clone(key));
        }
        let key = Arc::new(keyring.unwrap_data_key(tenant, dek_id, wrapped)?);
        let mut entries = self.lock();
        if entries.len() >= DATA_KEY_CACHE_CAPACITY {
            entries.clear();
        }
        entries.insert(cache_key, Arc::clone(&key));
        Ok(key)
    }

    /// The keys of `tenant` for one operation, from its stored wraps (oldest
    /// first; the last is the current one that seals new values).
    pub fn tenant_keys(
        &self,
        keyring: Arc<Keyring>,
        tenant: &TenantId,
        wraps: &[(DataKeyId, WrappedDataKey)],
    ) -> TenantKeys {
        let keys = wraps
            .iter()
            .map(|(dek_id, wrapped)| {
                let key = self
                    .unwrapped(&keyring, tenant, dek_id, wrapped)
                    .map_err(|error| Unwrapped::from_error(error, wrapped));
                (dek_id.clone(), key)
            })
            .collect();
        TenantKeys {
            keyring,
            keys,
            current: wraps.last().map(|(dek_id, _)| dek_id.clone()),
        }
    }
}

/// One tenant's data keys and the master keyring, for one operation: opens
/// values sealed either way and seals new ones under the current data key.
pub struct TenantKeys {
    keyring: Arc<Keyring>,
    /// Oldest first, like the wraps. A tenant has one or a few, and most
    /// values are under the last: a search from the end beats hashing the
    /// id for every value opened.
    keys: Vec<(DataKeyId, Result<Arc<DataKey>, Unwrapped>)>,
    current: Option<DataKeyId>,
}

impl TenantKeys {
    /// Seals `value` at `location` under the tenant's current data key.
    /// [`CryptoError::NoActiveKey`] when the tenant has none (the caller
    /// makes one) or when its current key cannot be unwrapped.
    pub fn seal(
        &self,
        location: &SecretLocation<'_>,
        value: &SecretValue,
    ) -> Result<SealedValue, CryptoError> {
        let dek_id = self.current.as_ref().ok_or(CryptoError::NoActiveKey)?;
        let key = self.key(dek_id)?;
        seal::seal(
            Sealer::DataKey(dek_id.clone()),
            &key.0,
            location,
            value.expose_secret().as_bytes(),
        )
    }

    /// The current data key's id when a new one is needed to seal: the
    /// tenant has none (`Some(None)`), or its current one's master key is
    /// not loaded (`Some(Some(id))`, SPEC §3: writes keep working while a
    /// key file is missing). `None` when the current key seals.
    pub fn needs_new_key(&self) -> Option<Option<DataKeyId>> {
        let Some(current) = &self.current else {
            return Some(None);
        };
        match self.entry(current) {
            Some(Err(Unwrapped::Missing(_))) => Some(Some(current.clone())),
            _ => None,
        }
    }

    /// Opens a value sealed for `location`, under a master key or under
    /// one of the tenant's data keys.
    pub fn open(
        &self,
        location: &SecretLocation<'_>,
        sealed: &SealedValue,
    ) -> Result<SecretValue, CryptoError> {
        let Sealer::DataKey(dek_id) = &sealed.sealer else {
            return self.keyring.open(location, sealed);
        };
        let key = self.key(dek_id)?;
        let plaintext = seal::open(&key.0, location, sealed)?;
        SecretValue::from_opened(plaintext).map_err(|_| CryptoError::Unopenable {
            key_id: dek_id.as_key_id(),
        })
    }

    fn entry(&self, dek_id: &DataKeyId) -> Option<&Result<Arc<DataKey>, Unwrapped>> {
        self.keys
            .iter()
            .rev()
            .find(|(id, _)| id == dek_id)
            .map(|(_, key)| key)
    }

    fn key(&self, dek_id: &DataKeyId) -> Result<&DataKey, CryptoError> {
        match self.entry(dek_id) {
            Some(Ok(key)) => Ok(key),
            Some(Err(unwrapped)) => Err(unwrapped.to_error()),
            None => Err(CryptoError::MissingDataKey {
                dek_id: dek_id.clone(),
            }),
        }
    }
}

/// Why a wrap did not unwrap: its master key is not loaded, or it did not
/// open under it. Kept per key so each value that needs it reports it.
enum Unwrapped {
    Missing(KeyId),
    Unopenable(KeyId),
}

impl Unwrapped {
    fn from_error(error: CryptoError, wrapped: &WrappedDataKey) -> Self {
        match error {
            CryptoError::MissingKey { key_id } => Self::Missing(key_id),
            _ => Self::Unopenable(wrapped.key_id.clone()),
        }
    }

    fn to_error(&self) -> CryptoError {
        match self {
            Self::Missing(key_id) => CryptoError::MissingKey {
                key_id: key_id.clone(),
            },
            Self::Unopenable(key_id) => CryptoError::Unopenable {
                key_id: key_id.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;
    use crate::model::{EnvKey, Provider, Scope};

    fn tenant(raw: &str) -> TenantId {
        TenantId::parse(raw).unwrap()
    }

    fn keyring() -> Arc<Keyring> {
        Arc::new(Keyring::from_keys([(
            KeyId::parse("k1").unwrap(),
            MasterKey::from_bytes([3; 32]),
        )]))
    }

    #[test]
    fn wrap_aad_layout() {
        let id = DataKeyId::parse(&"ab".repeat(16)).unwrap();
        let mut expected = b"exsec/tdek/v1".to_vec();
        expected.extend_from_slice(&[0, 0, 0, 2]);
        expected.extend_from_slice(b"t1");
        expected.extend_from_slice(&[0, 0, 0, 32]);
        expected.extend_from_slice("ab".repeat(16).as_bytes());
        assert_eq!(wrap_aad(&tenant("t1"), &id), expected);
    }

    #[test]
    fn a_wrap_opens_only_for_its_tenant_and_id() {
        let keyring = keyring();
        let id = DataKeyId::generate().unwrap();
        let other_id = DataKeyId::generate().unwrap();
        let key = DataKey::generate().unwrap();
        let wrapped = keyring.wrap_data_key(&tenant("t1"), &id, &key).unwrap();
        let opened = keyring
            .unwrap_data_key(&tenant("t1"), &id, &wrapped)
            .unwrap();
        assert_eq!(opened.0, key.0);
        for (owner, dek) in [("t2", &id), ("t1", &other_id), ("t", &id)] {
            let error = keyring
                .unwrap_data_key(&tenant(owner), dek, &wrapped)
                .err()
                .unwrap();
            assert!(matches!(error, CryptoError::Unopenable { .. }), "{error}");
        }
        assert!(!format!("{wrapped:?}").contains(&format!("{:?}", wrapped.nonce)));
    }

    #[test]
    fn a_value_opens_only_with_its_tenants_key() {
        let keyring = keyring();
        let cache = DataKeyCache::default();
        let scope = Scope::Tenant(tenant("t1"));
        let provider = Provider::parse("openai").unwrap();
        let key = EnvKey::parse("K").unwrap();
        let location = SecretLocation {
            scope: &scope,
            provider: &provider,
            key: &key,
        };
        let wraps = |owner: &str| {
            let id = DataKeyId::generate().unwrap();
            let wrapped = keyring
                .wrap_data_key(&tenant(owner), &id, &DataKey::generate().unwrap())
                .unwrap();
            vec![(id, wrapped)]
        };
        let t1 = cache.tenant_keys(Arc::clone(&keyring), &tenant("t1"), &wraps("t1"));
        let sealed = t1
            .seal(&location, &SecretValue::parse("v".to_owned()).unwrap())
            .unwrap();
        assert_eq!(t1.open(&location, &sealed).unwrap().expose_secret(), "v");
        let t2 = cache.tenant_keys(Arc::clone(&keyring), &tenant("t2"), &wraps("t2"));
        assert!(matches!(
            t2.open(&location, &sealed).err().unwrap(),
            CryptoError::MissingDataKey { .. }
        ));
        assert_eq!(cache.len(), 2);
        cache.forget_tenant(&tenant("t1"));
        assert_eq!(cache.len(), 1);
        let empty = Arc::new(Keyring::empty());
        let cold = DataKeyCache::default().tenant_keys(empty, &tenant("t1"), &wraps("t1"));
        assert!(matches!(
            cold.seal(&location, &SecretValue::parse("v".to_owned()).unwrap())
                .err()
                .unwrap(),
            CryptoError::MissingKey { .. }
        ));
    }
}
