//! What a deploy ended as: its status, what injection did and why. Each
//! is an enum whose words are fixed here once (wire, stored records,
//! audit data, metrics labels), so no code compares or writes the words
//! itself.
//!
//! [`DeployStatus`], [`InjectionStatus`] and [`InjectionReason`] are
//! serialized as the word itself (`"succeeded"`), never as a variant index:
//! stored deploy records held these as strings before they were enums, and
//! bincode writes a string and a `&'static str` identically, so old records
//! read as they are and new ones are written byte for byte as before
//! (`store::records` has the test). [`DeployTrigger`] and [`RolloutChange`]
//! came later as enums and are stored as serde's variant index; in JSON
//! serde writes their snake_case name, which is their word (a test here
//! holds the two together).

use serde::{Deserialize, Serialize};

use super::word::{impl_word, word_enum};

word_enum!(
    /// How a deploy ended: only the Deployment apply decides it.
    DeployStatus, "deploy status" {
        /// The Deployment was applied.
        Succeeded = "succeeded",
        /// The Deployment apply failed (or exsec stopped mid-deploy).
        Failed = "failed",
    }
);

word_enum!(
    /// What a deploy did with the app's external secrets.
    InjectionStatus, "injection status" {
        /// The Secret was applied with the effective set.
        Injected = "injected",
        /// Nothing to inject, or no key to open values with.
        Skipped = "skipped",
        /// Values could not be opened, or the Secret apply failed.
        Failed = "failed",
    }
);

word_enum!(
    /// Why injection was skipped or failed.
    InjectionReason, "injection reason" {
        /// No master key is loaded (skipped; the Secret is untouched).
        MasterKeyUnavailable = "master_key_unavailable",
        /// Some values cannot be opened (failed; the Secret is untouched).
        UndecryptableValues = "undecryptable_values",
        /// The effective set is empty (skipped; the Secret is removed).
        NoSecrets = "no_secrets",
        /// The cluster refused the Secret (failed).
        SecretApplyFailed = "secret_apply_failed",
        /// exsec stopped during the deploy (failed).
        Interrupted = "interrupted",
    }
);

/// What started a deploy (SPEC §11.2). Stored by variant index: append new
/// variants at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployTrigger {
    /// `POST /v1/apps/{id}/deploys`.
    Api,
    /// An automatic redeploy after the app's effective set changed.
    SecretChange,
    /// A rollback to an earlier deploy.
    Rollback,
}

impl DeployTrigger {
    /// The word on the wire and in audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            DeployTrigger::Api => "api",
            DeployTrigger::SecretChange => "secret_change",
            DeployTrigger::Rollback => "rollback",
        }
    }
}

impl_word!(
    DeployTrigger,
    "deploy trigger",
    [Api, SecretChange, Rollback]
);

/// Whether a deploy changed the pod template. Stored by variant index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutChange {
    /// The pod template changed: the pods roll.
    Restarted,
    /// The same template as before: no pod restarts.
    Unchanged,
}

impl RolloutChange {
    /// The word on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutChange::Restarted => "restarted",
            RolloutChange::Unchanged => "unchanged",
        }
    }
}

impl_word!(RolloutChange, "rollout change", [Restarted, Unchanged]);

word_enum!(
    /// Where the rollout of a deploy stands, as far as the cluster tells.
    RolloutState, "rollout state" {
        /// Every replica runs the deploy's pod template and is available.
        Complete = "complete",
        /// Replicas are still being replaced or are not yet available.
        Progressing = "progressing",
        /// The target cannot tell, or the cluster did not answer.
        Unknown = "unknown",
        /// A later deploy of the app runs now.
        Superseded = "superseded",
        /// The cluster holds no Deployment for the app.
        Absent = "absent",
    }
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Word;

    #[test]
    fn words_round_trip_and_unknown_words_are_refused() {
        for status in DeployStatus::ALL {
            let json = serde_json::to_string(status).unwrap();
            assert_eq!(json, format!("\"{status}\""));
            assert_eq!(
                serde_json::from_str::<DeployStatus>(&json).unwrap(),
                *status
            );
        }
        for reason in InjectionReason::ALL {
            assert_eq!(
                InjectionReason::try_from(reason.as_str().to_owned()),
                Ok(*reason)
            );
        }
        let error = InjectionStatus::try_from("partial".to_owned()).unwrap_err();
        assert_eq!(error.to_string(), "unknown injection status \"partial\"");
    }

    #[test]
    fn an_unknown_trigger_is_named() {
        assert_eq!(
            DeployTrigger::parse("cron").unwrap_err().to_string(),
            "unknown deploy trigger \"cron\""
        );
    }
}
