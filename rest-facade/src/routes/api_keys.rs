//! `/api-keys`: the signed-in user's API keys.

use crate::FacadeState;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery, CoreCall, PageQuery};
use crate::views::{ApiKeyView, CreatedApiKeyView, Data, Listed};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use gatekey::v1::api_key_service_client::ApiKeyServiceClient;
use gatekey::v1::{CreateApiKeyRequest, ListApiKeysRequest, RevokeApiKeyRequest};
use serde::Deserialize;

/// Body of `POST /api-keys`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyBody {
    name: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    expires_in_seconds: Option<u64>,
}

pub async fn list(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Listed<ApiKeyView>>> {
    let request = call.request(ListApiKeysRequest { page: Some(page.into_request()?) });
    let listing = ApiKeyServiceClient::new(state.channel).list_api_keys(request).await?.into_inner();
    Ok(Json(Listed::new(listing.api_keys, listing.page, ApiKeyView::from)))
}

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
    let view = CreatedApiKeyView { key: created.api_key.map(ApiKeyView::from), secret: created.secret };
    Ok((StatusCode::CREATED, Json(Data { data: view })))
}

pub async fn revoke(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Data<Option<ApiKeyView>>>> {
    let revoked =
        ApiKeyServiceClient::new(state.channel).revoke_api_key(call.request(RevokeApiKeyRequest { id })).await?;
    Ok(Json(Data { data: revoked.into_inner().api_key.map(ApiKeyView::from) }))
}
