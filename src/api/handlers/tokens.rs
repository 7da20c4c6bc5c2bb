//! Tenant tokens: minted by the admin (shown once), listed and revoked.

use crate::api::auth::mint_token;
use crate::api::dto::{MintTokenBody, MintedTokenDto, TokenDto, TokenListDto};
use crate::api::problem::ApiError;
use crate::api::{Call, Reply};
use crate::model::Timestamp;
use crate::store::records::TokenRecord;
use hyper::StatusCode;

pub async fn mint(call: Call) -> Result<Reply, ApiError> {
    let tenant = call.tenant_param()?;
    let _body: MintTokenBody = call.json()?;
    let minted = mint_token().map_err(|e| ApiError::internal("cannot mint a token", &e))?;
    let record = TokenRecord {
        tenant_id: tenant.clone(),
        token_sha256: minted.sha256,
        created_at: Timestamp::now(),
    };
    let actor = call.actor();
    let token_id = minted.token_id.clone();
    let stored = record.clone();
    call.state
        .store
        .write_async(move |w| w.insert_token(&token_id, &stored, &actor))
        .await?;
    Ok(Reply::json_sorted(
        StatusCode::CREATED,
        &MintedTokenDto {
            token: minted.token.as_str().to_owned(),
            token_id: minted.token_id,
            tenant_id: tenant.to_string(),
            created_at: record.created_at.to_rfc3339(),
        },
    ))
}

pub async fn list(call: Call) -> Result<Reply, ApiError> {
    let tenant = call.tenant_param()?;
    let id = tenant.clone();
    let (exists, tokens) = call
        .state
        .store
        .read_async(move |r| Ok((r.tenant(&id)?.is_some(), r.tokens(&id)?)))
        .await?;
    if !exists {
        return Err(ApiError::not_found(
            "tenant_not_found",
            format!("tenant {tenant}"),
        ));
    }
    let tokens: Vec<TokenDto> = tokens.iter().map(|(id, r)| TokenDto::new(id, r)).collect();
    Ok(Reply::ok_sorted(&TokenListDto { tokens }))
}

pub async fn revoke(call: Call) -> Result<Reply, ApiError> {
    let tenant = call.tenant_param()?;
    let token_id = call.params.get("token_id").to_owned();
    let actor = call.actor();
    call.state
        .store
        .write_async(move |w| w.revoke_token(&tenant, &token_id, &actor))
        .await?;
    Ok(Reply::no_content())
}
