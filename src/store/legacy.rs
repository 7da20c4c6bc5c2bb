//! Record layouts of older schema versions, frozen as they were written, and
//! the forward step of each into today's records. Only the migrations in
//! `schema` read them; nothing writes them.
//!
//! A layout here never changes: a file written by that version must keep
//! decoding. When today's record changes again, the layout it replaces
//! moves here with its version in the name.

use serde::Deserialize;

use super::records::{
    AppRecord, DeployRecord, DeployTrigger, InjectionRecord, SecretRecord, WarningRecord,
};
use crate::crypto::{NONCE_LEN, SealedValue, Sealer};
use crate::model::{AppId, DeployStatus, EnvKey, KeyId, Provider, Scope, TenantId, Timestamp};

/// An app record of schema 1 and 2.
#[derive(Debug, Deserialize)]
pub(super) struct AppRecordV2 {
    tenant_id: TenantId,
    required_env: Vec<EnvKey>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl From<AppRecordV2> for AppRecord {
    fn from(old: AppRecordV2) -> Self {
        AppRecord {
            tenant_id: old.tenant_id,
            required_env: old.required_env,
            created_at: old.created_at,
            updated_at: old.updated_at,
            // Opt-in: nothing redeploys by itself after an upgrade.
            auto_redeploy: false,
        }
    }
}

/// A deploy record of schema 1 and 2.
#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(super) struct DeployRecordV2 {
    deploy_id: String,
    app_id: AppId,
    tenant_id: TenantId,
    image_ref: String,
    replicas: Option<i32>,
    port: Option<u16>,
    status: DeployStatus,
    error: Option<String>,
    created_at: Timestamp,
    injection: InjectionRecord,
    warnings: Vec<WarningRecord>,
}

impl From<DeployRecordV2> for DeployRecord {
    fn from(old: DeployRecordV2) -> Self {
        DeployRecord {
            deploy_id: old.deploy_id,
            app_id: old.app_id,
            tenant_id: old.tenant_id,
            image_ref: old.image_ref,
            replicas: old.replicas,
            port: old.port,
            status: old.status,
            error: old.error,
            created_at: old.created_at,
            injection: old.injection,
            warnings: old.warnings,
            // Before schema 3 every deploy came from the API and put its
            // deploy id, not a secrets hash, on the pod template.
            trigger: DeployTrigger::Api,
            secrets_hash: None,
            restarted_at: None,
            rollout: None,
        }
    }
}

/// A sealed value of schemas 1 to 3: always directly under a master key.
#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(super) struct SealedValueV3 {
    key_id: KeyId,
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
}

/// A secret record of schemas 1 to 3.
#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(super) struct SecretRecordV3 {
    scope: Scope,
    provider: Provider,
    key: EnvKey,
    created_at: Timestamp,
    updated_at: Timestamp,
    version: u64,
    sealed: SealedValueV3,
}

impl From<SecretRecordV3> for SecretRecord {
    fn from(old: SecretRecordV3) -> Self {
        SecretRecord {
            scope: old.scope,
            provider: old.provider,
            key: old.key,
            created_at: old.created_at,
            updated_at: old.updated_at,
            version: old.version,
            // The bytes are unchanged: only the record now says what sealed them.
            sealed: SealedValue {
                sealer: Sealer::MasterKey(old.sealed.key_id),
                nonce: old.sealed.nonce,
                ciphertext: old.sealed.ciphertext,
            },
        }
    }
}
