//! Wire types: one type per JSON shape the API reads or writes, shared by
//! the handlers (which build and serialize them) and the CLI (which
//! decodes answers into them). Domain and stored types never go on the
//! wire directly; they become DTOs here through `From`.
//!
//! Architecture invariant: this module imports nothing of the server
//! (handlers, routes, auth, server) — only the domain and stored types it
//! converts from — so the CLI can decode answers without the server.
//! Request bodies deny unknown fields; answers do not, so a newer daemon
//! may add members without breaking an older CLI. No type here holds a
//! secret value except the request bodies that carry one in (parsed into
//! `SecretValue` at once) and [`MintedTokenDto`] (the token shown once).

mod apps;
mod deploys;
pub mod schema;
mod secrets;
mod system;
mod tenants;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::resolve::Warning;
use crate::store::records::WarningRecord;

pub use apps::{
    AppDeletedDto, AppDto, AppListDto, CleanupDto, ClusterDto, ClusterSecretDto, DeploymentDto,
    EnvFromDto, PutAppBody, QueuedRedeployDto,
};
pub use deploys::{
    DeployBody, DeployDetailDto, DeployDto, DeployFailedDto, DeployListDto, DryRunDto,
    DryRunInjectionDto, InjectionDto, ReplicaCountsDto, RolloutDto,
};
pub use secrets::{
    BulkSecretItem, BulkSecretsBody, BulkSecretsDto, EffectiveDto, EffectiveEntryDto,
    MAX_BULK_SECRETS, SecretListDto, SecretMetaDto, SecretOutcomeDto, SecretOutcomeName,
    SecretVersionDto, SecretVersionListDto, ValueBody, VerifyDto,
};
pub use system::{
    AuditPageDto, ChainState, DataKeyRotationDto, DatabaseState, HealthDto, KeyStatusDto, KeysDto,
    Readiness, ReadyAuditDto, ReadyClusterDto, ReadyDto, ReadyKeyringDto, RotationStatusDto,
    StorageState,
};
pub use tenants::{
    DataKeyDto, MintTokenBody, MintedTokenDto, PutTenantBody, ResealingDto, TenantDetailDto,
    TenantDto, TenantListDto, TenantShreddedDto, TokenDto, TokenListDto,
};

/// `{code, message}`: a note on an answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WarningDto {
    /// Stable code.
    pub code: String,
    /// What it means.
    pub message: String,
}

impl From<&Warning> for WarningDto {
    fn from(w: &Warning) -> Self {
        Self {
            code: w.code.to_owned(),
            message: w.message.clone(),
        }
    }
}

impl From<&WarningRecord> for WarningDto {
    fn from(w: &WarningRecord) -> Self {
        Self {
            code: w.code.clone(),
            message: w.message.clone(),
        }
    }
}

impl schema::Schema for WarningDto {
    const NAME: &'static str = "Warning";

    fn schema() -> Value {
        schema::record([("code", schema::string()), ("message", schema::string())])
    }
}

#[cfg(test)]
mod tests {
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use super::*;
    use crate::model::{
        DeployStatus, DeployTrigger, InjectionReason, InjectionStatus, RolloutChange, RolloutState,
        ScopeKind, Word,
    };
    use crate::rotation::RotationState;
    use crate::store::StorageFault;
    use crate::store::records::CleanupKind;

    /// Every variant of `T` is written in JSON as its word and read back
    /// from it: what the OpenAPI document lists (from [`Word`]) is what
    /// the DTOs carry (through serde, which some of these enums derive
    /// for their stored form).
    fn json_is_the_word<T: Word + Serialize + DeserializeOwned>() {
        for value in T::ALL {
            let json = serde_json::to_string(value).unwrap();
            assert_eq!(json, format!("\"{}\"", value.as_str()), "{}", T::WHAT);
            assert_eq!(serde_json::from_str::<T>(&json).unwrap(), *value);
            assert_eq!(T::parse(value.as_str()), Ok(*value));
        }
    }

    #[test]
    fn every_enum_on_the_wire_is_written_as_its_word() {
        json_is_the_word::<DeployStatus>();
        json_is_the_word::<InjectionStatus>();
        json_is_the_word::<InjectionReason>();
        json_is_the_word::<DeployTrigger>();
        json_is_the_word::<RolloutChange>();
        json_is_the_word::<RolloutState>();
        json_is_the_word::<ScopeKind>();
        json_is_the_word::<CleanupKind>();
        json_is_the_word::<RotationState>();
        json_is_the_word::<StorageFault>();
        json_is_the_word::<Readiness>();
        json_is_the_word::<DatabaseState>();
        json_is_the_word::<StorageState>();
        json_is_the_word::<ChainState>();
        json_is_the_word::<crate::config::TargetKind>();
    }
}
