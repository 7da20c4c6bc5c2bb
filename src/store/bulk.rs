//! Atomic bulk writes of one scope (SPEC §11.2): every listed secret set,
//! and with `replace` every unlisted one deleted, in one write transaction,
//! so a user/password pair never lands half-updated. The rules of a single
//! write hold for the set as a whole: the env-name rule against what the
//! scope keeps, the 1 MiB effective-set limit on the final state (an
//! intermediate state never refuses a set whose end state fits).

use std::collections::BTreeSet;

use super::records::SecretRecord;
use super::secrets::env_name_taken;
use super::{StoreError, Writer};
use crate::crypto::{Fingerprint, SealedValue};
use crate::model::{EnvKey, Provider, Scope};

/// One secret of a bulk write, its value already sealed.
#[derive(Clone)]
pub struct BulkItem {
    /// Provider name.
    pub provider: Provider,
    /// Env var name.
    pub key: EnvKey,
    /// The sealed value.
    pub sealed: SealedValue,
    /// Fingerprint of the key that sealed it.
    pub fingerprint: Fingerprint,
}

/// A bulk write of one scope. Built by [`BulkPut::new`], so no env var name
/// appears twice.
#[derive(Clone)]
pub struct BulkPut {
    scope: Scope,
    items: Vec<BulkItem>,
    replace: bool,
}

/// Two items of a bulk write name the same env var.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("items {first} and {second} both set env var name")]
pub struct RepeatedKey {
    /// Index of the first item with the name.
    pub first: usize,
    /// Index of the repetition.
    pub second: usize,
}

impl BulkPut {
    /// A bulk write; refuses an env var name listed twice (under one
    /// provider or two: a scope holds each name once).
    pub fn new(scope: Scope, items: Vec<BulkItem>, replace: bool) -> Result<Self, RepeatedKey> {
        for (second, item) in items.iter().enumerate() {
            if let Some(first) = items[..second].iter().position(|i| i.key == item.key) {
                return Err(RepeatedKey { first, second });
            }
        }
        Ok(Self {
            scope,
            items,
            replace,
        })
    }
}

/// What a bulk write did to one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretOutcome {
    /// The key was new.
    Created,
    /// A value was replaced (a new version).
    Updated,
    /// The key was not listed and `replace` removed it.
    Deleted,
}

/// One key of a bulk write's answer.
#[derive(Debug, Clone)]
pub struct KeyOutcome {
    /// Provider name.
    pub provider: Provider,
    /// Env var name.
    pub key: EnvKey,
    /// What happened to it.
    pub outcome: SecretOutcome,
    /// The stored version; `None` once deleted.
    pub version: Option<u64>,
}

/// What a bulk write changed: listed keys in request order, then the
/// deleted ones. Every entry is a change of the scope's secrets (and one
/// audit event).
#[derive(Debug, Clone)]
pub struct BulkWrite {
    /// Per key.
    pub outcomes: Vec<KeyOutcome>,
}

impl Writer {
    /// Applies a bulk write in this transaction, all or nothing: an error
    /// from any step aborts the whole transaction.
    pub fn put_secrets(&mut self, bulk: BulkPut, actor: &str) -> Result<BulkWrite, StoreError> {
        let BulkPut {
            scope,
            items,
            replace,
        } = bulk;
        let tenant_id = self.owner_tenant(&scope)?;
        let listed: BTreeSet<(&Provider, &EnvKey)> =
            items.iter().map(|i| (&i.provider, &i.key)).collect();
        let (removed, kept): (Vec<SecretRecord>, Vec<SecretRecord>) = self
            .secrets(&scope)?
            .into_iter()
            .partition(|r| replace && !listed.contains(&(&r.provider, &r.key)));
        // Checked before anything is written, against what the scope keeps.
        for (index, item) in items.iter().enumerate() {
            if let Some(taken) = kept
                .iter()
                .find(|r| r.key == item.key && r.provider != item.provider)
            {
                return Err(env_name_taken(
                    &item.key,
                    taken.provider.as_str(),
                    &scope,
                    Some(index),
                ));
            }
        }
        let mut outcomes = Vec::with_capacity(items.len() + removed.len());
        for item in items {
            let existing = kept
                .iter()
                .find(|r| r.provider == item.provider && r.key == item.key);
            let record = self.next_record(
                scope.clone(),
                item.provider,
                item.key,
                item.sealed,
                existing,
            )?;
            let written =
                self.write_record(record, item.fingerprint, existing, &tenant_id, actor)?;
            outcomes.push(KeyOutcome {
                outcome: if written.created {
                    SecretOutcome::Created
                } else {
                    SecretOutcome::Updated
                },
                version: Some(written.record.version),
                provider: written.record.provider,
                key: written.record.key,
            });
        }
        for record in removed {
            self.remove_record(&record, &tenant_id, actor)?;
            outcomes.push(KeyOutcome {
                provider: record.provider,
                key: record.key,
                outcome: SecretOutcome::Deleted,
                version: None,
            });
        }
        let stored = self.secrets(&scope)?;
        self.check_effective_sizes_with(&tenant_id, &scope, &stored)?;
        // One queued redeploy per affected app for the whole set, in this
        // same transaction: a half-written set never rolls out.
        let changed: BTreeSet<EnvKey> = outcomes.iter().map(|o| o.key.clone()).collect();
        self.queue_redeploys(&scope, &changed)?;
        Ok(BulkWrite { outcomes })
    }
}
