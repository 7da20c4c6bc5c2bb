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
use crate::store::{BulkItem, BulkPut};

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
    let sealing = data_keys::for_sealing(&call, &scope).await?;
    let mut items = Vec::with_capacity(body.secrets.len());
    for (index, item) in body.secrets.into_iter().enumerate() {
        items.push(sealed_item(&sealing, &scope, item).map_err(|error| error.at(index))?);
    }
    let bulk = BulkPut::new(scope, items, body.replace).map_err(|repeated| {
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
    })?;
    let actor = call.actor();
    let written = call
        .state
        .store
        .write_async(move |w| w.put_secrets(bulk.clone(), &actor))
        .await?;
    call.state.redeploys.wake();
    Ok(Reply::ok(&BulkSecretsDto::from(&written)))
}

/// Why one item was refused, before it is placed in the list.
enum ItemError {
    /// A field did not parse.
    Invalid(ValidationError),
    /// Sealing failed (no master key): not the item's fault.
    Seal(ApiError),
}

impl ItemError {
    /// The API error naming item `index`; a sealing failure stays as it is.
    fn at(self, index: usize) -> ApiError {
        match self {
            Self::Invalid(error) => {
                let field = error.field;
                let mut api = ApiError::from(error);
                api.detail = format!("secrets[{index}].{field}: {}", api.detail);
                api.with("index", index).with("field", field)
            }
            Self::Seal(api) => api,
        }
    }
}

/// Parses one item into model types and seals its value; the plaintext
/// is dropped (wiped) before this returns.
fn sealed_item(
    sealing: &Sealing,
    scope: &Scope,
    item: BulkSecretItem,
) -> Result<BulkItem, ItemError> {
    let provider = Provider::parse(&item.provider).map_err(ItemError::Invalid)?;
    let key = EnvKey::parse(&item.key).map_err(ItemError::Invalid)?;
    let value = SecretValue::parse(item.value).map_err(ItemError::Invalid)?;
    let (sealed, fingerprint) =
        seal(sealing, scope, &provider, &key, &value).map_err(ItemError::Seal)?;
    Ok(BulkItem {
        provider,
        key,
        sealed,
        fingerprint,
    })
}
