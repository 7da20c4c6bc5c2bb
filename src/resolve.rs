//! The effective set of an app: tenant defaults ∪ app overrides, app wins.
//!
//! Pure over the records the store returns (SPEC §1):
//! - for the same `(provider, key)` the app override wins;
//! - for the same env var name from *different* providers, the app scope
//!   beats the tenant scope (within one scope the store refuses a second
//!   provider, so a clash there only exists in hand-edited data: the
//!   smallest provider wins deterministically and a warning says so);
//! - the size is the sum of key and value bytes, computable without
//!   opening anything (a sealed value's length is its plaintext length plus
//!   the tag).
//!
//! [`merge`] works on metadata only (for the `effective` route and the write
//! checks); [`resolve`] also opens the values. A value that cannot be opened
//! is reported by name, never fatal here: the deploy decides what to do.

use crate::crypto::{CryptoError, SecretLocation, TenantKeys};
use crate::model::{EnvKey, KeyId, Provider, ScopeKind, SecretValue, Timestamp};
use crate::store::records::SecretRecord;

/// A note attached to an answer: `{"code", "message"}` on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Stable machine code.
    pub code: &'static str,
    /// What it means for the user.
    pub message: String,
}

/// One env var of the merged set, before opening.
#[derive(Debug, Clone, Copy)]
pub struct MergedEntry<'a> {
    /// The record that wins.
    pub record: &'a SecretRecord,
    /// Where it comes from.
    pub source: ScopeKind,
    /// The tenant default it hides, if any (same env var name).
    pub shadows: Option<&'a SecretRecord>,
}

impl<'a> MergedEntry<'a> {
    /// The env var name (the winning record's key).
    pub fn name(&self) -> &'a EnvKey {
        &self.record.key
    }

    /// Whether an app override hides a tenant default.
    pub fn overrides_tenant(&self) -> bool {
        self.shadows.is_some()
    }
}

/// The merged set of an app, by env var name, without values.
#[derive(Debug, Clone, Default)]
pub struct Merged<'a> {
    /// Winning record per env var name, sorted by name, one per name.
    pub entries: Vec<MergedEntry<'a>>,
    /// Notes about the data (clashes inside one scope).
    pub warnings: Vec<Warning>,
}

impl Merged<'_> {
    /// Bytes the set takes in a Kubernetes Secret: keys plus values.
    pub fn size(&self) -> usize {
        self.entries
            .iter()
            .map(|e| e.name().as_str().len() + e.record.sealed.plaintext_len())
            .sum()
    }

    /// Whether the set has an env var `name`.
    pub fn contains(&self, name: &EnvKey) -> bool {
        self.entries
            .binary_search_by(|entry| entry.name().cmp(name))
            .is_ok()
    }
}

/// Merges tenant defaults and app overrides by the rules above.
pub fn merge<'a>(tenant: &'a [SecretRecord], app: &'a [SecretRecord]) -> Merged<'a> {
    let (picks, warnings) = pick(tenant, app);
    let entries = picks
        .into_iter()
        .map(|pick| {
            let record = match pick.source {
                ScopeKind::Tenant => &tenant[pick.index],
                ScopeKind::App => &app[pick.index],
            };
            MergedEntry {
                record,
                source: pick.source,
                shadows: pick.shadows.map(|index| &tenant[index]),
            }
        })
        .collect();
    Merged { entries, warnings }
}

/// The winning record of one env var name, by its index in its scope.
#[derive(Debug, Clone, Copy)]
struct Pick {
    source: ScopeKind,
    index: usize,
    /// The tenant default it hides, by index.
    shadows: Option<usize>,
}

/// The merge itself, by index, sorted by name.
///
/// Sorts each scope by name and walks the two lists side by side: no map
/// is built (a deploy merges on every call; the store already lists a
/// scope in key order when it has one provider, which the sort sees in one
/// pass).
fn pick(tenant: &[SecretRecord], app: &[SecretRecord]) -> (Vec<Pick>, Vec<Warning>) {
    let mut warnings = Vec::new();
    let tenant_order = by_name(tenant, ScopeKind::Tenant, &mut warnings);
    let app_order = by_name(app, ScopeKind::App, &mut warnings);
    let mut picks = Vec::with_capacity(tenant_order.len() + app_order.len());
    let default = |index| Pick {
        source: ScopeKind::Tenant,
        index,
        shadows: None,
    };
    let mut defaults = tenant_order.into_iter().peekable();
    for index in app_order {
        let name = &app[index].key;
        while let Some(hidden) = defaults.next_if(|&d| tenant[d].key < *name) {
            picks.push(default(hidden));
        }
        picks.push(Pick {
            source: ScopeKind::App,
            index,
            shadows: defaults.next_if(|&d| tenant[d].key == *name),
        });
    }
    picks.extend(defaults.map(default));
    (picks, warnings)
}

/// Indices of one record per env var name within a scope, sorted by name;
/// of two providers setting the same name the smaller wins, with a warning.
fn by_name(records: &[SecretRecord], scope: ScopeKind, warnings: &mut Vec<Warning>) -> Vec<usize> {
    let mut order: Vec<usize> = (0..records.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&records[a], &records[b]);
        a.key.cmp(&b.key).then_with(|| a.provider.cmp(&b.provider))
    });
    order.dedup_by(|loser, winner| {
        let (loser, winner) = (&records[*loser], &records[*winner]);
        if loser.key != winner.key {
            return false;
        }
        warnings.push(Warning {
            code: "env_name_conflict",
            message: format!(
                "env var {} is set by providers {} and {} in the {scope} scope; {} is used — delete one of them",
                winner.key, winner.provider, loser.provider, winner.provider
            ),
        });
        true
    });
    order
}

/// One env var of the effective set, opened. Its names are borrowed from
/// the winning record: a deploy keeps the records beside the set, and two
/// `String`s per value were a third of what resolve added to the AEAD
/// (docs/performance.md).
pub struct EffectiveValue<'a> {
    /// Env var name.
    pub key: &'a EnvKey,
    /// Plaintext, zeroized on drop.
    pub value: SecretValue,
    /// Provider of the winning record.
    pub provider: &'a Provider,
    /// Where it comes from.
    pub source: ScopeKind,
    /// Whether it hides a tenant default.
    pub overrides_tenant: bool,
    /// When the winning record was created.
    pub created_at: Timestamp,
    /// When its value last changed.
    pub updated_at: Timestamp,
    /// Its version.
    pub version: u64,
}

/// An env var whose value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undecryptable {
    /// Env var name.
    pub key: EnvKey,
    /// The master key it needs.
    pub key_id: KeyId,
    /// Whether that key is absent (as opposed to present but not opening it).
    pub key_missing: bool,
}

/// The opened effective set of an app.
#[derive(Default)]
pub struct EffectiveSet<'a> {
    /// Opened values, sorted by env var name.
    pub values: Vec<EffectiveValue<'a>>,
    /// Values that could not be opened, by name.
    pub undecryptable: Vec<Undecryptable>,
    /// Notes about the data.
    pub warnings: Vec<Warning>,
}

impl EffectiveSet<'_> {
    /// Env var names of `required` that the set lacks (opened or not).
    pub fn missing<'r>(&self, required: &'r [EnvKey]) -> Vec<&'r EnvKey> {
        required
            .iter()
            .filter(|name| {
                !self.values.iter().any(|v| *v.key == **name)
                    && !self.undecryptable.iter().any(|u| u.key == **name)
            })
            .collect()
    }
}

/// Merges and opens an app's effective set with its tenant's `keys`.
pub fn resolve<'a>(
    tenant: &'a [SecretRecord],
    app: &'a [SecretRecord],
    keys: &TenantKeys,
) -> EffectiveSet<'a> {
    let merged = merge(tenant, app);
    let mut set = EffectiveSet {
        values: Vec::with_capacity(merged.entries.len()),
        undecryptable: Vec::new(),
        warnings: merged.warnings,
    };
    for entry in merged.entries {
        let record = entry.record;
        let location = SecretLocation {
            scope: &record.scope,
            provider: &record.provider,
            key: &record.key,
        };
        match keys.open(&location, &record.sealed) {
            Ok(value) => set.values.push(EffectiveValue {
                key: &record.key,
                value,
                provider: &record.provider,
                source: entry.source,
                overrides_tenant: entry.overrides_tenant(),
                created_at: record.created_at,
                updated_at: record.updated_at,
                version: record.version,
            }),
            Err(error) => set.undecryptable.push(Undecryptable {
                key: record.key.clone(),
                key_missing: matches!(
                    error,
                    CryptoError::MissingKey { .. } | CryptoError::MissingDataKey { .. }
                ),
                // A missing master key is named even when it only wraps
                // the data key: that is the file the operator must restore.
                key_id: match error {
                    CryptoError::MissingKey { key_id } => key_id,
                    _ => record.sealed.sealer_id(),
                },
            }),
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::crypto::{SealedValue, Sealer};
    use crate::model::{AppId, Scope, TenantId};

    fn record(scope: &Scope, provider: &str, key: &str, value_len: usize) -> SecretRecord {
        SecretRecord {
            scope: scope.clone(),
            provider: Provider::parse(provider).unwrap(),
            key: EnvKey::parse(key).unwrap(),
            created_at: Timestamp(1),
            updated_at: Timestamp(2),
            version: 1,
            sealed: SealedValue {
                sealer: Sealer::MasterKey(KeyId::parse("k1").unwrap()),
                nonce: [0; 24],
                ciphertext: vec![0; value_len + crate::crypto::TAG_LEN],
            },
        }
    }

    fn tenant() -> Scope {
        Scope::Tenant(TenantId::parse("t1").unwrap())
    }

    fn app() -> Scope {
        Scope::App(AppId::parse("web").unwrap())
    }

    #[test]
    fn app_wins_for_the_same_provider_and_key() {
        let t = [record(&tenant(), "openai", "OPENAI_API_KEY", 10)];
        let a = [record(&app(), "openai", "OPENAI_API_KEY", 20)];
        let merged = merge(&t, &a);
        let entry = merged.entries.first().unwrap();
        assert_eq!(merged.entries.len(), 1);
        assert_eq!(entry.source, ScopeKind::App);
        assert!(entry.overrides_tenant());
        assert_eq!(merged.size(), "OPENAI_API_KEY".len() + 20);
    }

    #[test]
    fn app_scope_beats_tenant_scope_across_providers() {
        let t = [record(&tenant(), "openai", "API_KEY", 10)];
        let a = [record(&app(), "azure", "API_KEY", 20)];
        let merged = merge(&t, &a);
        let entry = merged.entries.first().unwrap();
        assert_eq!(entry.record.provider.as_str(), "azure");
        assert_eq!(entry.shadows.unwrap().provider.as_str(), "openai");
    }

    #[test]
    fn a_clash_inside_one_scope_is_deterministic_and_warned() {
        let t = [
            record(&tenant(), "zeta", "API_KEY", 1),
            record(&tenant(), "alpha", "API_KEY", 2),
        ];
        let merged = merge(&t, &[]);
        assert_eq!(
            merged.entries.first().unwrap().record.provider.as_str(),
            "alpha"
        );
        assert_eq!(merged.warnings.len(), 1);
        assert_eq!(merged.warnings[0].code, "env_name_conflict");
    }

    /// A layout: tenant and app records over a small alphabet of providers
    /// and keys, so that collisions are frequent.
    /// `(provider index, key index, value length)`.
    type RawRecord = (u8, u8, usize);

    fn layout() -> impl Strategy<Value = (Vec<RawRecord>, Vec<RawRecord>)> {
        let entry = (0u8..3, 0u8..4, 1usize..50);
        (
            proptest::collection::vec(entry.clone(), 0..8),
            proptest::collection::vec(entry, 0..8),
        )
    }

    /// One record per (provider, key) per scope, and one provider per key
    /// per scope: what the store lets exist.
    fn materialise(scope: &Scope, raw: &[(u8, u8, usize)]) -> Vec<SecretRecord> {
        let mut by_key: BTreeMap<u8, (u8, usize)> = BTreeMap::new();
        for &(provider, key, len) in raw {
            by_key.entry(key).or_insert((provider, len));
        }
        by_key
            .into_iter()
            .map(|(key, (provider, len))| {
                record(scope, &format!("p{provider}"), &format!("K{key}"), len)
            })
            .collect()
    }

    proptest! {
        /// Precedence against a plain reference model: a map from env name
        /// to (scope, provider), filled with tenant records and then
        /// overwritten by app records.
        #[test]
        fn precedence_matches_the_reference_model((raw_tenant, raw_app) in layout()) {
            let t = materialise(&tenant(), &raw_tenant);
            let a = materialise(&app(), &raw_app);
            let mut model: BTreeMap<String, (ScopeKind, String, usize, bool)> = BTreeMap::new();
            for r in &t {
                model.insert(r.key.to_string(), (ScopeKind::Tenant, r.provider.to_string(), r.sealed.plaintext_len(), false));
            }
            for r in &a {
                let shadows = model.contains_key(r.key.as_str());
                model.insert(r.key.to_string(), (ScopeKind::App, r.provider.to_string(), r.sealed.plaintext_len(), shadows));
            }
            let merged = merge(&t, &a);
            let got: BTreeMap<String, (ScopeKind, String, usize, bool)> = merged
                .entries
                .iter()
                .map(|e| (e.name().to_string(), (e.source, e.record.provider.to_string(), e.record.sealed.plaintext_len(), e.overrides_tenant())))
                .collect();
            prop_assert_eq!(&got, &model);
            let size: usize = model.iter().map(|(k, v)| k.len() + v.2).sum();
            prop_assert_eq!(merged.size(), size);
            prop_assert!(merged.warnings.is_empty());
        }
    }
}
