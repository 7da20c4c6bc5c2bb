//! `PUT …/external-secrets`: the atomic bulk write of one scope (SPEC
//! §11.2). The whole set is parsed and sealed before the store is touched;
//! one write transaction then sets every listed secret (and, with
//! `replace`, deletes the unlisted), or nothing. A refusal names the item
//! by index and field, never its value.

use hyper::StatusCode;

use super::data_keys::{self, Sealing};
use super::secrets::{scope, seal};
use crate::api::dto::{BulkSecretItem, BulkSecretsBody, BulkSecretsDto};
use crate::api::problem::ApiError;
use crate::api::{Call, Reply};
use crate::model::{EnvKey, Provider, Scope, SecretValue, ValidationError};
use crate::store::{BulkItem, BulkPut, Writer};

pub use crate::api::dto::MAX_BULK_SECRETS;

pub async fn put(call: Call) -> Result<Reply, ApiError> {
    let scope = scope(&call)?;
    let body: BulkSecretsBody = call.json()?;
    if body.secrets.len() > MAX_BULK_SECRETS {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_many_secrets",
            format!(
                "a bulk write lists at most {MAX_BULK_SECRETS} secrets, got {}; split it by scope or provider",
                body.secrets.len()
            ),
        ));
    }
    let mut parsed = Vec::with_capacity(body.secrets.len());
    for (index, item) in body.secrets.into_iter().enumerate() {
        parsed.push(ParsedItem::parse(item).map_err(|error| error.at(index))?);
    }
    let replace = body.replace;
    let actor = call.actor();
    let written = data_keys::seal_and_write(
        &call,
        &scope,
        |sealing| {
            let items = parsed
                .iter()
                .map(|item| item.sealed(sealing, &scope))
                .collect::<Result<Vec<_>, _>>()?;
            BulkPut::new(scope.clone(), items, replace).map_err(|repeated| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "duplicate_key",
                    format!(
                        "secrets[{}].key: the env var name of secrets[{}] is listed again; a scope holds each name once",
                        repeated.second, repeated.first
                    ),
                )
                .with("index", repeated.second)
                .with("field", "key")
            })
        },
        |bulk| {
            let actor = actor.clone();
            move |w: &mut Writer| w.put_secrets(bulk.clone(), &actor)
        },
    )
    .await?;
    // The plaintext values are wiped here, once written.
    drop(parsed);
    call.state.redeploys.wake();
    Ok(Reply::ok(&BulkSecretsDto::from(&written)))
}

/// Why one item was refused, before it is placed in the list.
struct ItemError(ValidationError);

impl ItemError {
    /// The API error naming item `index`.
    fn at(self, index: usize) -> ApiError {
        let field = self.0.field;
        let mut api = ApiError::from(self.0);
        api.detail = format!("secrets[{index}].{field}: {}", api.detail);
        api.with("index", index).with("field", field)
    }
}

/// One item parsed into model types; its value is wiped when it is
/// dropped.
struct ParsedItem {
    provider: Provider,
    key: EnvKey,
    value: SecretValue,
}

impl ParsedItem {
    fn parse(item: BulkSecretItem) -> Result<Self, ItemError> {
        Ok(Self {
            provider: Provider::parse(&item.provider).map_err(ItemError)?,
            key: EnvKey::parse(&item.key).map_err(ItemError)?,
            value: SecretValue::parse(item.value).map_err(ItemError)?,
        })
    }

    /// The item with its value sealed (a sealing failure — no master key —
    /// is not the item's fault, so it names no item).
    fn sealed(&self, sealing: &Sealing, scope: &Scope) -> Result<BulkItem, ApiError> {
        let (sealed, fingerprint) = seal(sealing, scope, &self.provider, &self.key, &self.value)?;
        Ok(BulkItem {
            provider: self.provider.clone(),
            key: self.key.clone(),
            sealed,
            fingerprint,
        })
    }
}
