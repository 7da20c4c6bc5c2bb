//! Enums written as fixed words (`"succeeded"`, `"secret_change"`): on the
//! wire, in audit data, in metrics labels and in the OpenAPI document.
//! [`Word`] is what every such enum offers, so a DTO field can carry the
//! enum itself and its schema can list the words from the enum: each word
//! is written once, next to its variant.

use std::fmt;

/// A stored or received word that names no variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {word:?}")]
pub struct UnknownWord {
    /// What the word should have named (`deploy status`, …).
    pub what: &'static str,
    /// The word found.
    pub word: String,
}

/// An enum whose variants each have one fixed word.
pub trait Word: Copy + fmt::Debug + PartialEq + 'static {
    /// What the words name, for errors (`deploy status`).
    const WHAT: &'static str;
    /// Every variant, in declaration order.
    const ALL: &'static [Self];

    /// The word for it.
    fn as_str(self) -> &'static str;

    /// The variant a word names.
    fn parse(word: &str) -> Result<Self, UnknownWord> {
        Self::ALL
            .iter()
            .copied()
            .find(|known| known.as_str() == word)
            .ok_or_else(|| UnknownWord {
                what: Self::WHAT,
                word: word.to_owned(),
            })
    }

    /// Every word, in declaration order (an OpenAPI `enum`).
    fn words() -> Vec<&'static str> {
        Self::ALL.iter().map(|value| value.as_str()).collect()
    }
}

/// An enum written as fixed words, serialized through the word
/// (`as_str`, `Display`, [`Word`], serde into `&'static str` and from
/// `String`).
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

        impl $crate::model::Word for $name {
            const WHAT: &'static str = $what;
            const ALL: &'static [$name] = $name::ALL;

            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }
        }

        impl From<$name> for &'static str {
            fn from(value: $name) -> &'static str {
                value.as_str()
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::model::UnknownWord;

            fn try_from(word: String) -> Result<Self, $crate::model::UnknownWord> {
                <$name as $crate::model::Word>::parse(&word)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use word_enum;

/// [`Word`] and `Display` (the word) for an enum that already has an
/// inherent `as_str` (one whose serde form is fixed elsewhere, such as a
/// config or stored enum).
macro_rules! impl_word {
    ($name:ident, $what:literal, [$($variant:ident),+ $(,)?]) => {
        impl $crate::model::Word for $name {
            const WHAT: &'static str = $what;
            const ALL: &'static [$name] = &[$($name::$variant),+];

            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($name::as_str(*self))
            }
        }
    };
}

pub(crate) use impl_word;
