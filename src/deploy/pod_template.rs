//! The pod template annotations a deploy owns, and whether a deploy
//! changes them: the whole of "restart only on change" (SPEC §11.2).

use crate::model::{RolloutChange, Timestamp};
use crate::store::records::DeployRecord;

/// The annotations a deploy puts on the pod template: they, the image and
/// the port are all of the template that can change, so pods roll exactly
/// when one of them does.
pub(super) struct PodTemplate {
    pub(super) secrets_hash: String,
    pub(super) restarted_at: Option<String>,
}

impl PodTemplate {
    /// The template after a deploy: the new secrets hash when the Secret
    /// was replaced, else the one the pods run with now (the last
    /// successful deploy's; the empty set's when there is none); the
    /// restart mark renewed on `restart`, else carried over — a deploy
    /// that dropped it would roll the pods.
    pub(super) fn after(
        previous: Option<&DeployRecord>,
        replaced: Option<String>,
        restart: bool,
        empty_hash: impl FnOnce() -> String,
    ) -> PodTemplate {
        let carried = previous.and_then(|p| p.secrets_hash.clone());
        PodTemplate {
            secrets_hash: replaced.or(carried).unwrap_or_else(empty_hash),
            restarted_at: if restart {
                Some(Timestamp::now().to_rfc3339())
            } else {
                previous.and_then(|p| p.restarted_at.clone())
            },
        }
    }

    /// Whether this template differs from the one the last successful
    /// deploy applied. A deploy before schema 3 put its deploy id on the
    /// template, so the first one after it always rolls.
    pub(super) fn change_from(
        &self,
        previous: Option<&DeployRecord>,
        image_ref: &str,
        port: Option<u16>,
    ) -> RolloutChange {
        let same = previous.is_some_and(|p| {
            p.secrets_hash.as_deref() == Some(self.secrets_hash.as_str())
                && p.restarted_at == self.restarted_at
                && p.image_ref == image_ref
                && p.port == port
        });
        if same {
            RolloutChange::Unchanged
        } else {
            RolloutChange::Restarted
        }
    }
}
