//! `/admin/networks`.

use crate::FacadeState;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery, CoreCall, PageQuery};
use crate::openapi::ErrorResponses;
use crate::views::{Data, DeletedView, Listed, NetworkView};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use gatekey::v1::admin_network_service_client::AdminNetworkServiceClient;
use gatekey::v1::{
    CidrList, CreateNetworkRequest, DeleteNetworkRequest, GetNetworkRequest, ListNetworksRequest, UpdateNetworkRequest,
};
use serde::Deserialize;

/// Body of `POST /admin/networks`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateNetworkBody {
    #[schema(schema_with = crate::constraints::name)]
    name: String,
    #[schema(schema_with = crate::constraints::description)]
    #[serde(default)]
    description: String,
    #[schema(schema_with = crate::constraints::cidrs)]
    cidrs: Vec<String>,
}

/// Body of `PUT /admin/networks/{id}`; absent fields stay unchanged.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateNetworkBody {
    #[schema(schema_with = crate::constraints::name)]
    name: Option<String>,
    #[schema(schema_with = crate::constraints::description)]
    description: Option<String>,
    #[schema(schema_with = crate::constraints::cidrs)]
    cidrs: Option<Vec<String>>,
}

#[utoipa::path(get, operation_id = "networks_list", path = "/admin/networks", tag = "admin-networks", security(("session_cookie" = []), ("bearer" = [])), params(PageQuery), responses((status = 200, description = "Networks", body = Listed<NetworkView>), ErrorResponses))]
pub async fn list(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Listed<NetworkView>>> {
    let request = call.request(ListNetworksRequest { page: Some(page.into_request()?) });
    let listing = AdminNetworkServiceClient::new(state.channel).list_networks(request).await?.into_inner();
    Ok(Json(Listed::new(listing.networks, listing.page, NetworkView::from)))
}

#[utoipa::path(post, operation_id = "networks_create", path = "/admin/networks", tag = "admin-networks", security(("session_cookie" = []), ("bearer" = [])), request_body = CreateNetworkBody, responses((status = 201, description = "The network", body = Data<NetworkView>), ErrorResponses))]
pub async fn create(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiJson(body): ApiJson<CreateNetworkBody>,
) -> ApiResult<(StatusCode, Json<Data<NetworkView>>)> {
    let request =
        call.request(CreateNetworkRequest { name: body.name, description: body.description, cidrs: body.cidrs });
    let network = AdminNetworkServiceClient::new(state.channel).create_network(request).await?.into_inner();
    Ok((StatusCode::CREATED, Json(Data { data: network.into() })))
}

/// One network.
#[utoipa::path(get, operation_id = "networks_get", path = "/admin/networks/{id}", tag = "admin-networks", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The network's id")), responses((status = 200, description = "The network", body = Data<NetworkView>), ErrorResponses))]
pub async fn get(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Data<NetworkView>>> {
    let found = AdminNetworkServiceClient::new(state.channel)
        .get_network(call.request(GetNetworkRequest { id }))
        .await?
        .into_inner();
    Ok(Json(Data { data: found.into() }))
}

#[utoipa::path(put, operation_id = "networks_update", path = "/admin/networks/{id}", tag = "admin-networks", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The network's id")), request_body = UpdateNetworkBody, responses((status = 200, description = "The network", body = Data<NetworkView>), ErrorResponses))]
pub async fn update(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateNetworkBody>,
) -> ApiResult<Json<Data<NetworkView>>> {
    let request = call.request(UpdateNetworkRequest {
        id,
        name: body.name,
        description: body.description,
        cidrs: body.cidrs.map(|cidrs| CidrList { cidrs }),
    });
    let network = AdminNetworkServiceClient::new(state.channel).update_network(request).await?.into_inner();
    Ok(Json(Data { data: network.into() }))
}

#[utoipa::path(delete, operation_id = "networks_remove", path = "/admin/networks/{id}", tag = "admin-networks", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The network's id")), responses((status = 200, description = "Deleted", body = Data<DeletedView>), ErrorResponses))]
pub async fn remove(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Data<DeletedView>>> {
    let request = call.request(DeleteNetworkRequest { id: id.clone() });
    AdminNetworkServiceClient::new(state.channel).delete_network(request).await?;
    Ok(Json(Data { data: DeletedView { id, deleted: true } }))
}
