//! TEMPORARY STUB replaced by the crypto branch merge.
#![allow(missing_docs, dead_code)]
use serde::{Deserialize, Serialize};
use crate::model::{EnvKey, KeyId, Provider, Scope, SecretValue};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedValue { pub key_id: KeyId, pub nonce: [u8; 24], pub ciphertext: Vec<u8> }
impl SealedValue { pub fn plaintext_len(&self) -> usize { self.ciphertext.len().saturating_sub(16) } }
pub struct SecretLocation<'a> { pub scope: &'a Scope, pub provider: &'a Provider, pub key: &'a EnvKey }
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint(pub [u8; 32]);
#[derive(Debug, thiserror::Error)]
pub enum CryptoError { #[error("missing {key_id}")] MissingKey { key_id: KeyId }, #[error("x")] Unopenable { key_id: KeyId } }
pub struct Keyring;
impl Keyring { pub fn open(&self, _l: &SecretLocation, s: &SealedValue) -> Result<SecretValue, CryptoError> { Err(CryptoError::MissingKey{key_id: s.key_id.clone()}) } }
