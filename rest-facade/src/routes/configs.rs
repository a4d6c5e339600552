//! `/configs/*` (generate, download, list own) and `/admin/configs`.

use crate::FacadeState;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery, CoreCall, PageQuery};
use crate::openapi::ErrorResponses;
use crate::views::{ConfigView, GeneratedConfigView, Listed};
use axum::Json;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use gatekey::v1::admin_config_service_client::AdminConfigServiceClient;
use gatekey::v1::config_service_client::ConfigServiceClient;
use gatekey::v1::{DownloadConfigRequest, GenerateConfigRequest, ListConfigsRequest};
use serde::Deserialize;

/// Body of `POST /configs/generate`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateConfigBody {
    #[schema(schema_with = crate::constraints::id)]
    /// The gateway's id, or a mesh hub's.
    gateway_id: String,
    #[schema(schema_with = crate::constraints::config_protocol)]
    #[serde(default)]
    protocol: Option<String>,
}

/// Issues a certificate and renders a config for a gateway (or mesh hub) the caller may use.
#[utoipa::path(post, operation_id = "configs_generate", path = "/configs/generate", tag = "configs", security(("session_cookie" = []), ("bearer" = [])), request_body = GenerateConfigBody, responses((status = 201, description = "The config's handle (fields at the top level as in the API overview, and under data)", body = GeneratedConfigView), ErrorResponses))]
pub async fn generate(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiJson(body): ApiJson<GenerateConfigBody>,
) -> ApiResult<(StatusCode, Json<GeneratedConfigView>)> {
    let request = call
        .request(GenerateConfigRequest { gateway_id: body.gateway_id, protocol: body.protocol.unwrap_or_default() });
    let generated = ConfigServiceClient::new(state.channel).generate_config(request).await?.into_inner();
    Ok((StatusCode::CREATED, Json(GeneratedConfigView::from(generated))))
}

/// Hands the owner the `.ovpn` file, once.
#[utoipa::path(get, operation_id = "configs_download", path = "/configs/download/{config_id}", tag = "configs", security(("session_cookie" = []), ("bearer" = [])), params(("config_id" = String, Path, description = "The config's id")), responses((status = 200, description = "The OpenVPN profile (once)", content_type = "application/x-openvpn-profile", body = String), ErrorResponses))]
pub async fn download(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(config_id): ApiPath<String>,
) -> ApiResult<Response> {
    let file = ConfigServiceClient::new(state.channel)
        .download_config(call.request(DownloadConfigRequest { config_id }))
        .await?
        .into_inner();
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", file.file_name))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment; filename=\"gatekey.ovpn\""));
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static("application/x-openvpn-profile")),
        (CONTENT_DISPOSITION, disposition),
        (CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ];
    Ok((headers, file.content).into_response())
}

/// The caller's own configs.
#[utoipa::path(get, operation_id = "configs_list_own", path = "/configs", tag = "configs", security(("session_cookie" = []), ("bearer" = [])), params(PageQuery), responses((status = 200, description = "The caller's configs", body = Listed<ConfigView>), ErrorResponses))]
pub async fn list_own(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Listed<ConfigView>>> {
    let request = call.request(ListConfigsRequest { page: Some(page.into_request()?) });
    let listing = ConfigServiceClient::new(state.channel).list_my_configs(request).await?.into_inner();
    Ok(Json(Listed::new(listing.configs, listing.page, ConfigView::from)))
}

/// Every issued config (admin).
#[utoipa::path(get, operation_id = "configs_list_all", path = "/admin/configs", tag = "admin-configs", security(("session_cookie" = []), ("bearer" = [])), params(PageQuery), responses((status = 200, description = "Every issued config", body = Listed<ConfigView>), ErrorResponses))]
pub async fn list_all(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Listed<ConfigView>>> {
    let request = call.request(ListConfigsRequest { page: Some(page.into_request()?) });
    let listing = AdminConfigServiceClient::new(state.channel).list_configs(request).await?.into_inner();
    Ok(Json(Listed::new(listing.configs, listing.page, ConfigView::from)))
}
