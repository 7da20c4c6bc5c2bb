//! What a deploy ended as: its status, what injection did and why. Each
//! is an enum whose words are fixed here once (wire, stored records,
//! audit data, metrics labels), so no code compares or writes the words
//! itself.
//!
//! Serialized as the word itself (`"succeeded"`), never as a variant
//! index: stored deploy records held these as strings before they were
//! enums, and bincode writes a string and a `&'static str` identically, so
//! old records read as they are and new ones are written byte for byte as
//! before (`store::records` has the test).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A stored or received word that names no variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {word:?}")]
pub struct UnknownWord {
    /// What the word should have named (`deploy status`, …).
    pub what: &'static str,
    /// The word found.
    pub word: String,
}

/// An enum written as fixed words: `as_str`, `Display`, and serde through
/// the word.
macro_rules! word_enum {
    (
        $(#[$doc:meta])* $name:ident, $what:literal {
            $($(#[$variant_doc:meta])* $variant:ident = $word:literal,)+
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(into = "&'static str", try_from = "String")]
        pub enum $name {
            $($(#[$variant_doc])* $variant,)+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The word for it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }
        }

        impl From<$name> for &'static str {
            fn from(value: $name) -> &'static str {
                value.as_str()
            }
        }

        impl TryFrom<String> for $name {
            type Error = UnknownWord;

            fn try_from(word: String) -> Result<Self, UnknownWord> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|known| known.as_str() == word)
                    .ok_or(UnknownWord { what: $what, word })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
