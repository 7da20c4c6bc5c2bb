//! Step 3 of the deploy contract, best-effort injection, and the dry run
//! that predicts it: what the effective set does to the cluster's Secret.
//! Kept apart from the pipeline in `deploy.rs`, which only sequences the
//! steps and records them.

use std::collections::BTreeSet;

use subtle::ConstantTimeEq;

use super::cleanup::{self, SecretOutcome};
use super::{Budget, DeployRequest, Deployer, DryRunInjection, DryRunReport};
use crate::audit::{NewEvent, event};
use crate::cluster::objects;
use crate::model::InjectionReason::{
    MasterKeyUnavailable, NoSecrets, SecretApplyFailed, UndecryptableValues,
};
use crate::model::{InjectionStatus, TenantId};
use crate::resolve::EffectiveSet;
use crate::store::records::{InjectedKey, InjectionRecord, WarningRecord};

impl Deployer {
    /// Step 3 of the contract: best-effort injection. Returns the outcome,
    /// its audit event (without tenant/app, added by the caller) and what
    /// became of the cluster's Secret.
    pub(super) async fn inject(
        &self,
        request: &DeployRequest,
        tenant_id: &TenantId,
        set: &EffectiveSet<'_>,
        keyless: bool,
        deploy_id: &str,
        budget: &Budget,
    ) -> (InjectionRecord, NewEvent, SecretOutcome) {
        let app_id = &request.app_id;
        let secret_name = objects::secret_name(app_id);
        let outcome = |status, reason| InjectionRecord {
            status,
            reason,
            secret_name: secret_name.clone(),
            injected: Vec::new(),
            undecryptable: Vec::new(),
            warnings: Vec::new(),
        };
        let base_event = |kind: &'static str| {
            NewEvent::new(kind, &request.actor)
                .with("deploy_id", deploy_id)
                .with("secret_name", secret_name.as_str())
        };
        if keyless {
            return (
                outcome(InjectionStatus::Skipped, Some(MasterKeyUnavailable)),
                base_event(event::SECRET_SKIPPED).with("reason", MasterKeyUnavailable.as_str()),
                SecretOutcome::Untouched,
            );
        }
        if !set.undecryptable.is_empty() {
            let names: Vec<String> = set
                .undecryptable
                .iter()
                .map(|u| u.key.to_string())
                .collect();
            let mut record = outcome(InjectionStatus::Failed, Some(UndecryptableValues));
            record.undecryptable = names.clone();
            let missing_keys: BTreeSet<String> = set
                .undecryptable
                .iter()
                .filter(|u| u.key_missing)
                .map(|u| u.key_id.to_string())
                .collect();
            record.warnings.push(WarningRecord {
                code: UndecryptableValues.as_str().to_owned(),
                message: format!(
                    "{} value(s) cannot be opened ({}); the live Secret was left untouched{}",
                    names.len(),
                    names.join(", "),
                    if missing_keys.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; put back master key file(s) {} in the key directory",
                            missing_keys.into_iter().collect::<Vec<_>>().join(", ")
                        )
                    }
                ),
            });
            return (
                record,
                base_event(event::SECRET_INJECTION_FAILED)
                    .with("reason", UndecryptableValues.as_str())
                    .with("keys", names),
                SecretOutcome::Untouched,
            );
        }
        if set.values.is_empty() {
            let deleted = budget
                .run(
                    format!("delete Secret {secret_name}"),
                    self.cluster.delete_secret(app_id),
                )
                .await;
            let mut record = outcome(InjectionStatus::Skipped, Some(NoSecrets));
            return match deleted {
                Ok(true) => (
                    record,
                    base_event(event::SECRET_REMOVED).with("reason", NoSecrets.as_str()),
                    SecretOutcome::Replaced,
                ),
                Ok(false) => (
                    record,
                    base_event(event::SECRET_SKIPPED).with("reason", NoSecrets.as_str()),
                    SecretOutcome::Replaced,
                ),
                Err(error) => {
                    let error = error.to_string();
                    record.warnings.push(cleanup::pending_warning(
                        &format!("the app has no secrets, but {secret_name}"),
                        &error,
                    ));
                    (
                        record,
                        base_event(event::SECRET_SKIPPED)
                            .with("reason", NoSecrets.as_str())
                            .with("error", error.as_str())
                            .with("cleanup_pending", true),
                        SecretOutcome::Stale(error),
                    )
                }
            };
        }
        let secret = objects::secret(app_id, tenant_id, &self.settings.namespace, &set.values);
        let applied = budget
            .run(
                format!("apply Secret {secret_name}"),
                self.cluster.apply_secret(app_id, &secret),
            )
            .await;
        drop(secret);
        match applied {
            Ok(()) => {
                let mut record = outcome(InjectionStatus::Injected, None);
                record.injected = set
                    .values
                    .iter()
                    .map(|v| InjectedKey {
                        key: v.key.to_string(),
                        source: v.source,
                        provider: v.provider.to_string(),
                        version: v.version,
                        updated_at: v.updated_at,
                    })
                    .collect();
                let names: Vec<&str> = set.values.iter().map(|v| v.key.as_str()).collect();
                let event = base_event(event::SECRET_INJECTED)
                    .with("key_count", set.values.len())
                    .with("keys", names);
                (record, event, SecretOutcome::Replaced)
            }
            Err(error) => {
                let mut record = outcome(InjectionStatus::Failed, Some(SecretApplyFailed));
                record.warnings.push(WarningRecord {
                    code: SecretApplyFailed.as_str().to_owned(),
                    message: error.to_string(),
                });
                (
                    record,
                    base_event(event::SECRET_INJECTION_FAILED)
                        .with("reason", SecretApplyFailed.as_str())
                        .with("error", error.to_string()),
                    SecretOutcome::Untouched,
                )
            }
        }
    }

    /// `?dry_run=true`: compares the effective set with the cluster's Secret.
    pub(super) async fn dry_run(
        &self,
        request: &DeployRequest,
        tenant_id: &TenantId,
        set: &EffectiveSet<'_>,
        keyless: bool,
        mut warnings: Vec<WarningRecord>,
        budget: &Budget,
    ) -> DryRunReport {
        let secret_name = objects::secret_name(&request.app_id);
        let live = budget
            .run(
                format!("read Secret {secret_name}"),
                self.cluster.secret_data(&request.app_id),
            )
            .await;
        let live = match live {
            Ok(data) => data.unwrap_or_default(),
            Err(error) => {
                warnings.push(WarningRecord {
                    code: "cluster_unreadable".to_owned(),
                    message: format!("compared against an empty Secret: {error}"),
                });
                Default::default()
            }
        };
        let (status, reason) = if keyless {
            (InjectionStatus::Skipped, Some(MasterKeyUnavailable))
        } else if !set.undecryptable.is_empty() {
            (InjectionStatus::Failed, Some(UndecryptableValues))
        } else if set.values.is_empty() {
            (InjectionStatus::Skipped, Some(NoSecrets))
        } else {
            (InjectionStatus::Injected, None)
        };
        let mut injection = DryRunInjection {
            status,
            reason,
            secret_name,
            added: Vec::new(),
            removed: Vec::new(),
            changed: Vec::new(),
            unchanged: Vec::new(),
        };
        // Only an apply or a delete changes the Secret.
        if status == InjectionStatus::Injected || reason == Some(NoSecrets) {
            for value in &set.values {
                match live.get(value.key.as_str()) {
                    None => injection.added.push(value.key.to_string()),
                    Some(Some(bytes))
                        if bool::from(
                            bytes
                                .as_slice()
                                .ct_eq(value.value.expose_secret().as_bytes()),
                        ) =>
                    {
                        injection.unchanged.push(value.key.to_string());
                    }
                    Some(_) => injection.changed.push(value.key.to_string()),
                }
            }
            injection.removed = live
                .keys()
                .filter(|name| !set.values.iter().any(|v| v.key.as_str() == name.as_str()))
                .cloned()
                .collect();
        }
        DryRunReport {
            app_id: request.app_id.to_string(),
            tenant_id: tenant_id.to_string(),
            external_secrets: injection,
            warnings,
        }
    }
}
