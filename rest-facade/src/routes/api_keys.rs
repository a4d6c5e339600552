//! `/api-keys`: the signed-in user's API keys.

use crate::FacadeState;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery, CoreCall, PageQuery};
use crate::openapi::ErrorResponses;
use crate::views::{ApiKeyView, CreatedApiKeyView, Data, Listed};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use gatekey::v1::api_key_service_client::ApiKeyServiceClient;
use gatekey::v1::{CreateApiKeyRequest, GetApiKeyRequest, ListApiKeysRequest, RevokeApiKeyRequest};
use serde::Deserialize;

/// Body of `POST /api-keys`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyBody {
    #[schema(schema_with = crate::constraints::label)]
    name: String,
    #[schema(schema_with = crate::constraints::api_key_scopes)]
    #[serde(default)]
    scopes: Vec<String>,
    #[schema(schema_with = crate::constraints::lifetime_seconds)]
    #[serde(default)]
    expires_in_seconds: Option<u64>,
}

#[utoipa::path(get, operation_id = "api_keys_list", path = "/api-keys", tag = "api-keys", security(("session_cookie" = []), ("bearer" = [])), params(PageQuery), responses((status = 200, description = "The caller's API keys", body = Listed<ApiKeyView>), ErrorResponses))]
pub async fn list(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Listed<ApiKeyView>>> {
    let request = call.request(ListApiKeysRequest { page: Some(page.into_request()?) });
    let listing = ApiKeyServiceClient::new(state.channel).list_api_keys(request).await?.into_inner();
    Ok(Json(Listed::new(listing.api_keys, listing.page, ApiKeyView::from)))
}

#[utoipa::path(post, operation_id = "api_keys_create", path = "/api-keys", tag = "api-keys", security(("session_cookie" = []), ("bearer" = [])), request_body = CreateApiKeyBody, responses((status = 201, description = "The key; its secret is shown only here", body = Data<CreatedApiKeyView>), ErrorResponses))]
pub async fn create(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiJson(body): ApiJson<CreateApiKeyBody>,
) -> ApiResult<(StatusCode, Json<Data<CreatedApiKeyView>>)> {
    let request = call.request(CreateApiKeyRequest {
        name: body.name,
        scopes: body.scopes,
        expires_in_seconds: body.expires_in_seconds.unwrap_or(0),
    });
    let created = ApiKeyServiceClient::new(state.channel).create_api_key(request).await?.into_inner();
    let view = CreatedApiKeyView { key: ApiKeyView::from(created.api_key.unwrap_or_default()), secret: created.secret };
    Ok((StatusCode::CREATED, Json(Data { data: view })))
}

/// One key.
#[utoipa::path(get, operation_id = "api_keys_get", path = "/api-keys/{id}", tag = "api-keys", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The key's id")), responses((status = 200, description = "The key", body = Data<ApiKeyView>), ErrorResponses))]
pub async fn get(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Data<ApiKeyView>>> {
    let found =
        ApiKeyServiceClient::new(state.channel).get_api_key(call.request(GetApiKeyRequest { id })).await?.into_inner();
    Ok(Json(Data { data: found.into() }))
}

#[utoipa::path(delete, operation_id = "api_keys_revoke", path = "/api-keys/{id}", tag = "api-keys", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The key's id")), responses((status = 200, description = "The revoked key", body = Data<ApiKeyView>), ErrorResponses))]
pub async fn revoke(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Data<ApiKeyView>>> {
    let revoked =
        ApiKeyServiceClient::new(state.channel).revoke_api_key(call.request(RevokeApiKeyRequest { id })).await?;
    Ok(Json(Data { data: ApiKeyView::from(revoked.into_inner().api_key.unwrap_or_default()) }))
}
