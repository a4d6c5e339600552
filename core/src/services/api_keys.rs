//! `ApiKeyService`: the caller's own API keys.

use super::{GrpcResult, respond};
use crate::auth::{Access, Credential};
use crate::context::CoreContext;
use crate::domain::UnitOfWork;
use crate::error::CoreError;
use crate::ids::{IdKind, new_id};
use crate::secrets::{API_KEY_PREFIX, mint_token};
use crate::store::{NewApiKey, unix_now};
use crate::{convert, validate};
use gatekey::v1::api_key_service_server::ApiKeyService;
use gatekey::v1::{
    ApiKey, CreateApiKeyRequest, CreateApiKeyResponse, GetApiKeyRequest, ListApiKeysRequest, ListApiKeysResponse,
    RevokeApiKeyRequest, RevokeApiKeyResponse,
};
use std::sync::Arc;
use tonic::Request;

/// Scopes a key may carry.
const KNOWN_SCOPES: [&str; 2] = ["read", "write"];
/// Longest key lifetime: ten years.
const MAX_LIFETIME_SECONDS: u64 = 10 * 366 * 24 * 3600;

/// Implements `ApiKeyService`.
#[derive(Debug, Clone)]
pub struct ApiKeyApi(pub Arc<CoreContext>);

#[tonic::async_trait]
impl ApiKeyService for ApiKeyApi {
    async fn list_api_keys(&self, request: Request<ListApiKeysRequest>) -> GrpcResult<ListApiKeysResponse> {
        respond(
            async {
                let caller = self.0.auth.authenticate(&request, Access::Read).await?;
                let page = validate::page(request.into_inner().page)?;
                let listing = self.0.store.list_api_keys(&caller.user.id, page).await?;
                Ok(ListApiKeysResponse {
                    api_keys: listing.items.into_iter().map(convert::api_key).collect(),
                    page: Some(convert::page_info(listing.total, page)),
                })
            }
            .await,
        )
    }

    async fn create_api_key(&self, request: Request<CreateApiKeyRequest>) -> GrpcResult<CreateApiKeyResponse> {
        respond(
            async {
                let caller = self.0.auth.authenticate(&request, Access::Write).await?;
                // A key must not mint keys: a leaked one could outlive its own revocation.
                if matches!(caller.credential, Credential::ApiKey { .. }) {
                    return Err(CoreError::Forbidden(
                        "API keys are created from a signed-in session, not with another key".into(),
                    ));
                }
                let input = request.into_inner();
                let name = validate::text("name", &input.name, 100)?;
                if name.is_empty() {
                    return Err(CoreError::InvalidArgument("name: is required".into()));
                }
                let scopes = scopes(&input.scopes)?;
                let expires_at = match input.expires_in_seconds {
                    0 => None,
                    seconds if seconds > MAX_LIFETIME_SECONDS => {
                        return Err(CoreError::InvalidArgument(format!(
                            "expires_in_seconds: must be at most {MAX_LIFETIME_SECONDS} (ten years)"
                        )));
                    }
                    seconds => Some(unix_now() + i64::try_from(seconds).unwrap_or(i64::MAX)),
                };
                let token = mint_token(API_KEY_PREFIX);
                let id = new_id(IdKind::ApiKey);
                let new_key = NewApiKey {
                    id: &id,
                    user_id: &caller.user.id,
                    name: &name,
                    scopes: &scopes,
                    expires_at,
                    token: &token,
                };
                let mut work = UnitOfWork::begin(&self.0).await?;
                self.0.store.create_api_key(&mut work.tx, new_key).await?;
                work.commit().await?;
                let key = self
                    .0
                    .store
                    .find_api_key(&id)
                    .await?
                    .ok_or_else(|| CoreError::NotFound(format!("API key `{id}` not found")))?;
                Ok(CreateApiKeyResponse { api_key: Some(convert::api_key(key)), secret: token.secret.clone() })
            }
            .await,
        )
    }

    async fn get_api_key(&self, request: Request<GetApiKeyRequest>) -> GrpcResult<ApiKey> {
        respond(
            async {
                let caller = self.0.auth.authenticate(&request, Access::Read).await?;
                let id = validate::id("id", &request.get_ref().id)?;
                // Another user's key is as unknown as a made-up one.
                match self.0.store.find_api_key(id).await? {
                    Some(key) if key.user_id == caller.user.id => Ok(convert::api_key(key)),
                    _ => Err(CoreError::NotFound(format!("API key `{id}` not found"))),
                }
            }
            .await,
        )
    }

    async fn revoke_api_key(&self, request: Request<RevokeApiKeyRequest>) -> GrpcResult<RevokeApiKeyResponse> {
        respond(
            async {
                let caller = self.0.auth.authenticate(&request, Access::Write).await?;
                let id = request.into_inner().id;
                let id = validate::id("id", &id)?;
                let mut work = UnitOfWork::begin(&self.0).await?;
                self.0.store.revoke_api_key(&mut work.tx, &caller.user.id, id).await?;
                work.commit().await?;
                let key = self
                    .0
                    .store
                    .find_api_key(id)
                    .await?
                    .ok_or_else(|| CoreError::NotFound(format!("API key `{id}` not found")))?;
                Ok(RevokeApiKeyResponse { api_key: Some(convert::api_key(key)) })
            }
            .await,
        )
    }
}

/// Requested scopes, checked against [`KNOWN_SCOPES`]; none means all.
fn scopes(requested: &[String]) -> Result<Vec<String>, CoreError> {
    if requested.is_empty() {
        return Ok(KNOWN_SCOPES.iter().map(|s| (*s).to_owned()).collect());
    }
    let mut scopes = Vec::with_capacity(requested.len());
    for scope in requested {
        if !KNOWN_SCOPES.contains(&scope.as_str()) {
            return Err(CoreError::InvalidArgument(format!(
                "scopes: `{scope}` is not a scope; use `read` and/or `write`"
            )));
        }
        scopes.push(scope.clone());
    }
    scopes.sort();
    scopes.dedup();
    Ok(scopes)
}
