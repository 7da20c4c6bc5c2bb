//! Tenant tokens: only SHA-256 hashes are stored, keyed by token id.

use redb::ReadableTable;

use super::error::{Context, Missing, not_found};
use super::records::TokenRecord;
use super::{Snapshot, StoreError, Tables, Writer, decode, encode, tables};
use crate::audit::{NewEvent, event};
use crate::model::TenantId;

impl<T: Tables> Snapshot<T> {
    /// One token by id.
    pub fn token(&self, token_id: &str) -> Result<Option<TokenRecord>, StoreError> {
        let tokens = self.txn().table(tables::TOKENS)?;
        let bytes = tokens.get(token_id).in_table(tables::TOKENS)?;
        bytes.map(|b| decode("tokens", b.value())).transpose()
    }

    /// The tokens of one tenant: `(token_id, record)`.
    pub fn tokens(&self, tenant: &TenantId) -> Result<Vec<(String, TokenRecord)>, StoreError> {
        let tokens = self.txn().table(tables::TOKENS)?;
        let mut out = Vec::new();
        for entry in tokens.iter().in_table(tables::TOKENS)? {
            let (id, bytes) = entry.in_table(tables::TOKENS)?;
            let record: TokenRecord = decode("tokens", bytes.value())?;
            if record.tenant_id == *tenant {
                out.push((id.value().to_owned(), record));
            }
        }
        Ok(out)
    }
}

impl Writer {
    /// Stores a newly minted token's hash.
    pub fn insert_token(
        &mut self,
        token_id: &str,
        record: &TokenRecord,
        actor: &str,
    ) -> Result<(), StoreError> {
        if self.tenant(&record.tenant_id)?.is_none() {
            return Err(not_found(Missing::Tenant, record.tenant_id.as_str()));
        }
        let encoded = encode("tokens", record)?;
        self.txn()
            .table(tables::TOKENS)?
            .insert(token_id, encoded.as_slice())
            .in_table(tables::TOKENS)?;
        self.audit(
            NewEvent::new(event::TOKEN_CREATED, actor)
                .tenant(record.tenant_id.as_str())
                .with("token_id", token_id),
        )?;
        Ok(())
    }

    /// Revokes a token of `tenant`; a token of another tenant is "not found".
    pub fn revoke_token(
        &mut self,
        tenant: &TenantId,
        token_id: &str,
        actor: &str,
    ) -> Result<(), StoreError> {
        match self.token(token_id)? {
            Some(record) if record.tenant_id == *tenant => {}
            _ => return Err(not_found(Missing::Token, token_id)),
        }
        self.txn()
            .table(tables::TOKENS)?
            .remove(token_id)
            .in_table(tables::TOKENS)?;
        self.audit(
            NewEvent::new(event::TOKEN_REVOKED, actor)
                .tenant(tenant.as_str())
                .with("token_id", token_id),
        )?;
        Ok(())
    }

    /// Removes every token of a tenant (tenant deletion); returns how many.
    pub(super) fn remove_tenant_tokens(&mut self, tenant: &TenantId) -> Result<u64, StoreError> {
        let ids: Vec<String> = self.tokens(tenant)?.into_iter().map(|(id, _)| id).collect();
        let mut tokens = self.txn().table(tables::TOKENS)?;
        for id in &ids {
            tokens.remove(id.as_str()).in_table(tables::TOKENS)?;
        }
        Ok(ids.len() as u64)
    }
}
