//! Domain types built by parsing: every id, provider, key and value that
//! enters exsec becomes one of these newtypes at the edge, so nothing deeper
//! re-validates. This module does no I/O and knows nothing of the wire.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

mod outcome;
mod word;
mod workload;

pub use outcome::{
    DeployStatus, DeployTrigger, InjectionReason, InjectionStatus, RolloutChange, RolloutState,
};
pub use word::{UnknownWord, Word};
pub(crate) use word::{impl_word, word_enum};
pub use workload::{ImageRef, MAX_IMAGE_REF_LEN, MAX_REPLICAS, Port, Replicas};

/// Longest tenant or app id: `app-{app_id}-external-secrets` must stay a
/// valid DNS label (≤ 63 bytes), and 63 − len("app--external-secrets") = 42.
pub const MAX_ID_LEN: usize = 42;
/// Longest provider name (SPEC §1).
pub const MAX_PROVIDER_LEN: usize = 63;
/// Longest env var name: a Kubernetes Secret data key is at most 253 bytes.
pub const MAX_KEY_LEN: usize = 253;
/// Largest secret value (SPEC §1).
pub const MAX_VALUE_LEN: usize = 64 * 1024;
/// Largest effective set (sum of key and value bytes): a Kubernetes Secret
/// holds at most 1 MiB of data.
pub const MAX_EFFECTIVE_SET_BYTES: usize = 1024 * 1024;
/// Longest master key id (SPEC §3).
pub const MAX_KEY_ID_LEN: usize = 64;

/// Why a piece of input was refused; `field` names what the user sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct ValidationError {
    /// Which input was wrong (`tenant_id`, `app_id`, `provider`, `key`, `value`, `key_id`).
    pub field: &'static str,
    /// Why, in words a user can act on.
    pub reason: String,
}

impl ValidationError {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// Parses a DNS-1123 label of at most [`MAX_ID_LEN`] bytes.
fn parse_label(field: &'static str, raw: &str) -> Result<(), ValidationError> {
    let bytes = raw.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_ID_LEN {
        return Err(ValidationError::new(
            field,
            format!("must be 1 to {MAX_ID_LEN} characters, got {}", bytes.len()),
        ));
    }
    let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
    if !bytes.iter().all(allowed) {
        return Err(ValidationError::new(
            field,
            "may contain only lowercase letters, digits and '-'",
        ));
    }
    if bytes[0] == b'-' || bytes[bytes.len() - 1] == b'-' {
        return Err(ValidationError::new(
            field,
            "must start and end with a lowercase letter or digit",
        ));
    }
    Ok(())
}

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident, $field:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses `raw`, naming the field and the rule it broke on failure.
            pub fn parse(raw: &str) -> Result<Self, ValidationError> {
                let check: fn(&'static str, &str) -> Result<(), ValidationError> = $check;
                check($field, raw)?;
                Ok(Self(raw.to_owned()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(raw: String) -> Result<Self, ValidationError> {
                Self::parse(&raw)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_newtype!(
    /// A tenant id: DNS-1123 label, 1–42 characters.
    TenantId,
    "tenant_id",
    parse_label
);

string_newtype!(
    /// An app id: DNS-1123 label, 1–42 characters, global across tenants.
    AppId,
    "app_id",
    parse_label
);

string_newtype!(
    /// A provider name such as `openai`: `^[a-z0-9][a-z0-9._-]{0,62}$`.
    Provider,
    "provider",
    |field, raw| {
        let bytes = raw.as_bytes();
        if bytes.is_empty() || bytes.len() > MAX_PROVIDER_LEN {
            return Err(ValidationError::new(
                field,
                format!("must be 1 to {MAX_PROVIDER_LEN} characters, got {}", bytes.len()),
            ));
        }
        if !(bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit()) {
            return Err(ValidationError::new(
                field,
                "must start with a lowercase letter or digit",
            ));
        }
        let allowed =
            |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-');
        if !bytes.iter().all(allowed) {
            return Err(ValidationError::new(
                field,
                "may contain only lowercase letters, digits, '.', '_' and '-'",
            ));
        }
        Ok(())
    }
);

string_newtype!(
    /// An environment variable name: `^[A-Za-z_][A-Za-z0-9_]{0,252}$`.
    EnvKey,
    "key",
    |field, raw| {
        let bytes = raw.as_bytes();
        if bytes.is_empty() || bytes.len() > MAX_KEY_LEN {
            return Err(ValidationError::new(
                field,
                format!("must be 1 to {MAX_KEY_LEN} characters, got {}", bytes.len()),
            ));
        }
        if !(bytes[0].is_ascii_alphabetic() || bytes[0] == b'_') {
            return Err(ValidationError::new(
                field,
                "must start with a letter or '_' (it becomes an environment variable name)",
            ));
        }
        if !bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_') {
            return Err(ValidationError::new(
                field,
                "may contain only letters, digits and '_' (it becomes an environment variable name)",
            ));
        }
        Ok(())
    }
);

string_newtype!(
    /// A master key id: the file stem of `<key_id>.key`, `^[A-Za-z0-9._-]{1,64}$`.
    KeyId,
    "key_id",
    |field, raw| {
        let bytes = raw.as_bytes();
        if bytes.is_empty() || bytes.len() > MAX_KEY_ID_LEN {
            return Err(ValidationError::new(
                field,
                format!("must be 1 to {MAX_KEY_ID_LEN} characters, got {}", bytes.len()),
            ));
        }
        if !bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(ValidationError::new(
                field,
                "may contain only letters, digits, '.', '_' and '-'",
            ));
        }
        if bytes[0] == b'.' {
            return Err(ValidationError::new(field, "must not start with '.'"));
        }
        Ok(())
    }
);

/// Where a secret lives: a tenant-wide default or an app-specific override.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// Inherited by every app of the tenant.
    Tenant(TenantId),
    /// Applies to one app and beats the tenant default for the same provider+key.
    App(AppId),
}

impl Scope {
    /// `tenant` or `app`, as on the wire.
    pub fn kind(&self) -> ScopeKind {
        match self {
            Scope::Tenant(_) => ScopeKind::Tenant,
            Scope::App(_) => ScopeKind::App,
        }
    }

    /// The owning tenant or app id as text.
    pub fn owner(&self) -> &str {
        match self {
            Scope::Tenant(id) => id.as_str(),
            Scope::App(id) => id.as_str(),
        }
    }
}

/// The two kinds of scope, as written on the wire and bound into the AAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScopeKind {
    /// Tenant-wide default.
    Tenant,
    /// App-specific override.
    App,
}

impl ScopeKind {
    /// The byte that stands for this kind in the AAD and in store keys.
    pub fn tag(self) -> u8 {
        match self {
            ScopeKind::Tenant => b't',
            ScopeKind::App => b'a',
        }
    }

    /// `tenant` or `app`.
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeKind::Tenant => "tenant",
            ScopeKind::App => "app",
        }
    }
}

impl_word!(ScopeKind, "scope kind", [Tenant, App]);

/// A plaintext secret value: UTF-8, 1 B – 64 KiB, no NUL byte.
///
/// Zeroized on drop; no `Debug`, `Clone`, `Display` or `Serialize`, so it
/// cannot reach a log line or a response by accident. Read it through
/// [`SecretValue::expose_secret`].
pub struct SecretValue(Zeroizing<String>);

impl SecretValue {
    /// Parses a value, taking ownership so no unzeroized copy is left behind.
    pub fn parse(raw: String) -> Result<Self, ValidationError> {
        let raw = Zeroizing::new(raw);
        if raw.is_empty() {
            return Err(ValidationError::new("value", "must not be empty"));
        }
        if raw.len() > MAX_VALUE_LEN {
            return Err(ValidationError::new(
                "value",
                format!("must be at most {MAX_VALUE_LEN} bytes, got {}", raw.len()),
            ));
        }
        if raw.as_bytes().contains(&0) {
            return Err(ValidationError::new("value", "must not contain a NUL byte"));
        }
        Ok(Self(raw))
    }

    /// Builds a value from bytes that were opened from a sealed record.
    ///
    /// Takes the buffer over (no copy of the plaintext); on refusal it is
    /// zeroized like any other.
    pub fn from_opened(mut bytes: Zeroizing<Vec<u8>>) -> Result<Self, ValidationError> {
        let plaintext = std::mem::take(&mut *bytes);
        // The wrapper now holds an empty Vec: nothing to wipe or free. Not
        // dropping it skips zeroize's memset over a dangling pointer, which
        // costs ~50 ns (an AVX-512 masked-store assist) per value opened.
        std::mem::forget(bytes);
        match String::from_utf8(plaintext) {
            Ok(text) => Self::parse(text),
            Err(not_utf8) => {
                drop(Zeroizing::new(not_utf8.into_bytes()));
                Err(ValidationError::new("value", "is not valid UTF-8"))
            }
        }
    }

    /// The plaintext. Every caller is a place where plaintext leaves the vault.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Length in bytes (not secret).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: an empty value cannot be built.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Milliseconds since the Unix epoch: how every timestamp is stored.
///
/// Decoding refuses values outside [`Timestamp::MAX_MILLIS`] (RFC 3339
/// cannot write them): a damaged or forged record is an error, never a
/// panic when the time is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Timestamp(pub i64);

impl TryFrom<i64> for Timestamp {
    type Error = ValidationError;

    fn try_from(millis: i64) -> Result<Self, ValidationError> {
        if (0..=Self::MAX_MILLIS).contains(&millis) {
            Ok(Self(millis))
        } else {
            Err(ValidationError::new(
                "timestamp",
                "is outside 1970-01-01 to 9999-12-31",
            ))
        }
    }
}

impl From<Timestamp> for i64 {
    fn from(time: Timestamp) -> i64 {
        time.0
    }
}

impl Timestamp {
    /// 9999-12-31T23:59:59.999Z, the last instant RFC 3339 can write.
    pub const MAX_MILLIS: i64 = 253_402_300_799_999;

    /// The current wall-clock time.
    pub fn now() -> Self {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self(i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
    }

    /// Parses RFC 3339 text (as written by [`Timestamp::to_rfc3339`]).
    pub fn parse_rfc3339(text: &str) -> Result<Self, humantime::TimestampError> {
        let time = humantime::parse_rfc3339(text)?;
        let since = time
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Ok(Self(i64::try_from(since.as_millis()).unwrap_or(i64::MAX)))
    }

    /// RFC 3339 with milliseconds, UTC (`2026-11-28T06:15:42.123Z`).
    pub fn to_rfc3339(self) -> String {
        // Clamped: a time built in code past year 9999 prints as its end.
        let millis = u64::try_from(self.0.clamp(0, Self::MAX_MILLIS)).unwrap_or(0);
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(millis);
        humantime::format_rfc3339_millis(time).to_string()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_backup_reader_out_of_range_timestamps_are_refused_not_panicked() {
        // Found by fuzz/fuzz_targets/backup_reader.rs: an audit event with
        // a time past year 9999 in a restored file panicked the chain
        // check (humantime cannot format it).
        for bad in [-1, Timestamp::MAX_MILLIS + 1, i64::MAX, i64::MIN] {
            assert!(serde_json::from_str::<Timestamp>(&bad.to_string()).is_err());
            assert!(!Timestamp(bad).to_rfc3339().is_empty());
        }
        let last: Timestamp = serde_json::from_str(&Timestamp::MAX_MILLIS.to_string()).unwrap();
        assert_eq!(last.to_rfc3339(), "9999-12-31T23:59:59.999Z");
        assert_eq!(
            serde_json::to_string(&last).unwrap(),
            Timestamp::MAX_MILLIS.to_string()
        );
    }

    #[test]
    fn labels_follow_dns_1123() {
        for ok in ["a", "t1", "my-app-2", &"a".repeat(42)] {
            assert!(TenantId::parse(ok).is_ok(), "{ok}");
            assert!(AppId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(43), "é"] {
            let err = AppId::parse(bad).unwrap_err();
            assert_eq!(err.field, "app_id", "{bad}");
        }
        assert_eq!(TenantId::parse("").unwrap_err().field, "tenant_id");
    }

    #[test]
    fn provider_rules() {
        for ok in ["openai", "0x", "a.b_c-d", &"p".repeat(63)] {
            assert!(Provider::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".a", "_a", "-a", "Open", "a/b", &"p".repeat(64)] {
            assert_eq!(Provider::parse(bad).unwrap_err().field, "provider", "{bad}");
        }
    }

    #[test]
    fn env_key_rules() {
        for ok in ["OPENAI_API_KEY", "_x", "a1", &"K".repeat(253)] {
            assert!(EnvKey::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1A", "A-B", "A.B", "A B", &"K".repeat(254)] {
            assert_eq!(EnvKey::parse(bad).unwrap_err().field, "key", "{bad}");
        }
    }

    #[test]
    fn key_id_rules() {
        for ok in ["20261128T061542Z", "prod", "a.b_c-d", &"k".repeat(64)] {
            assert!(KeyId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".hidden", "a/b", "a b", &"k".repeat(65)] {
            assert!(KeyId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn value_rules() {
        assert!(SecretValue::parse("x".into()).is_ok());
        assert!(SecretValue::parse("x".repeat(MAX_VALUE_LEN)).is_ok());
        let too_big = SecretValue::parse("x".repeat(MAX_VALUE_LEN + 1))
            .err()
            .unwrap();
        assert!(too_big.reason.contains("65536"));
        assert!(SecretValue::parse(String::new()).is_err());
        assert!(SecretValue::parse("a\0b".into()).is_err());
        assert!(SecretValue::from_opened(Zeroizing::new(vec![0xff, 0xfe])).is_err());
    }

    #[test]
    fn serde_rejects_invalid_ids() {
        let err = serde_json::from_str::<TenantId>("\"Bad\"").unwrap_err();
        assert!(err.to_string().contains("tenant_id"));
        let ok: AppId = serde_json::from_str("\"web\"").unwrap();
        assert_eq!(ok.as_str(), "web");
    }

    #[test]
    fn timestamps_format_as_rfc3339() {
        assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00.000Z");
        assert_eq!(Timestamp(1_500).to_rfc3339(), "1970-01-01T00:00:01.500Z");
        let now = Timestamp(1_764_310_542_123);
        assert_eq!(Timestamp::parse_rfc3339(&now.to_rfc3339()).unwrap(), now);
    }
}
