//! `/mesh/hubs` (the hubs the caller may use) and `/admin/mesh/hubs` with spokes.

use super::gateways::Protocol;
use crate::FacadeState;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery, CoreCall, PageQuery};
use crate::openapi::ErrorResponses;
use crate::views::{
    AdminMeshHubView, Data, DeletedView, Listed, MeshHubView, MeshHubWithTokenView, MeshSpokeView,
    MeshSpokeWithTokenView,
};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use gatekey::v1::admin_mesh_service_client::AdminMeshServiceClient;
use gatekey::v1::mesh_service_client::MeshServiceClient;
use gatekey::v1::{
    CreateGatewayRequest, CreateMeshHubRequest, DeleteMeshHubRequest, DeleteMeshSpokeRequest, GetMeshHubRequest,
    GetMeshSpokeRequest, ListHubsRequest, ListMeshSpokesRequest, MeshSpoke, RotateMeshHubTokenRequest,
    RotateMeshSpokeTokenRequest, StringList, UpdateGatewayRequest, UpdateMeshHubRequest,
};
use serde::Deserialize;
use tonic::transport::Channel;

/// Body of `POST /admin/mesh/hubs`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateHubBody {
    #[schema(schema_with = crate::constraints::name)]
    name: String,
    #[schema(schema_with = crate::constraints::description)]
    #[serde(default)]
    description: String,
    #[schema(schema_with = crate::constraints::hostname)]
    hostname: String,
    #[schema(schema_with = crate::constraints::port_or_unset)]
    port: Option<u32>,
    protocol: Option<Protocol>,
    #[schema(schema_with = crate::constraints::vpn_subnet_or_unset)]
    vpn_subnet: Option<String>,
    #[schema(schema_with = crate::constraints::ids)]
    /// Networks whose access rules apply at the hub.
    #[serde(default)]
    network_ids: Vec<String>,
    #[schema(schema_with = crate::constraints::ids)]
    /// Users granted the hub.
    #[serde(default)]
    user_ids: Vec<String>,
    #[schema(schema_with = crate::constraints::groups)]
    /// Groups granted the hub.
    #[serde(default)]
    groups: Vec<String>,
}

/// Body of `PUT /admin/mesh/hubs/{id}`; absent fields stay unchanged, given lists
/// replace the current ones.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateHubBody {
    #[schema(schema_with = crate::constraints::name)]
    name: Option<String>,
    #[schema(schema_with = crate::constraints::description)]
    description: Option<String>,
    #[schema(schema_with = crate::constraints::hostname)]
    hostname: Option<String>,
    #[schema(schema_with = crate::constraints::port)]
    port: Option<u32>,
    protocol: Option<Protocol>,
    #[schema(schema_with = crate::constraints::vpn_subnet)]
    vpn_subnet: Option<String>,
    is_active: Option<bool>,
    #[schema(schema_with = crate::constraints::ids)]
    network_ids: Option<Vec<String>>,
    #[schema(schema_with = crate::constraints::ids)]
    user_ids: Option<Vec<String>>,
    #[schema(schema_with = crate::constraints::groups)]
    groups: Option<Vec<String>>,
}

/// Body of `POST /admin/mesh/hubs/{id}/spokes`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSpokeBody {
    #[schema(schema_with = crate::constraints::name)]
    name: String,
    #[schema(schema_with = crate::constraints::spoke_cidrs)]
    /// The networks (IPv4 CIDRs) the spoke may advertise.
    local_cidrs: Vec<String>,
}

fn admin(state: FacadeState) -> AdminMeshServiceClient<Channel> {
    AdminMeshServiceClient::new(state.channel)
}

#[utoipa::path(get, operation_id = "mesh_hubs_list_available", path = "/mesh/hubs", tag = "mesh", security(("session_cookie" = []), ("bearer" = [])), params(PageQuery), responses((status = 200, description = "Hubs the caller may use, with status and the spoke networks it may reach", body = Listed<MeshHubView>), ErrorResponses))]
pub async fn list_available(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Listed<MeshHubView>>> {
    let request = call.request(ListHubsRequest { page: Some(page.into_request()?) });
    let listing = MeshServiceClient::new(state.channel).list_hubs(request).await?.into_inner();
    Ok(Json(Listed::new(listing.hubs, listing.page, MeshHubView::from)))
}

#[utoipa::path(get, operation_id = "mesh_hubs_list", path = "/admin/mesh/hubs", tag = "admin-mesh", security(("session_cookie" = []), ("bearer" = [])), params(PageQuery), responses((status = 200, description = "Every hub", body = Listed<AdminMeshHubView>), ErrorResponses))]
pub async fn list(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Listed<AdminMeshHubView>>> {
    let request = call.request(ListHubsRequest { page: Some(page.into_request()?) });
    let listing = admin(state).list_hubs(request).await?.into_inner();
    Ok(Json(Listed::new(listing.hubs, listing.page, AdminMeshHubView::from)))
}

#[utoipa::path(post, operation_id = "mesh_hubs_create", path = "/admin/mesh/hubs", tag = "admin-mesh", security(("session_cookie" = []), ("bearer" = [])), request_body = CreateHubBody, responses((status = 201, description = "The hub and its agent token (shown once)", body = Data<MeshHubWithTokenView>), ErrorResponses))]
pub async fn create(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiJson(body): ApiJson<CreateHubBody>,
) -> ApiResult<(StatusCode, Json<Data<MeshHubWithTokenView>>)> {
    let hub = CreateGatewayRequest {
        name: body.name,
        description: body.description,
        hostname: body.hostname,
        port: body.port.unwrap_or(0),
        protocol: body.protocol.map_or(0, i32::from),
        vpn_subnet: body.vpn_subnet.unwrap_or_default(),
    };
    let request = call.request(CreateMeshHubRequest {
        hub: Some(hub),
        network_ids: body.network_ids,
        user_ids: body.user_ids,
        groups: body.groups,
    });
    let created = admin(state).create_hub(request).await?.into_inner();
    Ok((StatusCode::CREATED, Json(Data { data: created.into() })))
}

/// One hub.
#[utoipa::path(get, operation_id = "mesh_hubs_get", path = "/admin/mesh/hubs/{id}", tag = "admin-mesh", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The hub's id")), responses((status = 200, description = "The hub", body = Data<AdminMeshHubView>), ErrorResponses))]
pub async fn get(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Data<AdminMeshHubView>>> {
    let hub = admin(state).get_hub(call.request(GetMeshHubRequest { id })).await?.into_inner();
    Ok(Json(Data { data: hub.into() }))
}

#[utoipa::path(put, operation_id = "mesh_hubs_update", path = "/admin/mesh/hubs/{id}", tag = "admin-mesh", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The hub's id")), request_body = UpdateHubBody, responses((status = 200, description = "The hub", body = Data<AdminMeshHubView>), ErrorResponses))]
pub async fn update(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateHubBody>,
) -> ApiResult<Json<Data<AdminMeshHubView>>> {
    let list = |values: Option<Vec<String>>| values.map(|values| StringList { values });
    let hub = UpdateGatewayRequest {
        id,
        name: body.name,
        description: body.description,
        hostname: body.hostname,
        port: body.port,
        protocol: body.protocol.map(i32::from),
        vpn_subnet: body.vpn_subnet,
        is_active: body.is_active,
    };
    let request = call.request(UpdateMeshHubRequest {
        hub: Some(hub),
        network_ids: list(body.network_ids),
        user_ids: list(body.user_ids),
        groups: list(body.groups),
    });
    Ok(Json(Data { data: admin(state).update_hub(request).await?.into_inner().into() }))
}

#[utoipa::path(delete, operation_id = "mesh_hubs_remove", path = "/admin/mesh/hubs/{id}", tag = "admin-mesh", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The hub's id")), responses((status = 200, description = "Deleted with its spokes", body = Data<DeletedView>), ErrorResponses))]
pub async fn remove(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Data<DeletedView>>> {
    admin(state).delete_hub(call.request(DeleteMeshHubRequest { id: id.clone() })).await?;
    Ok(Json(Data { data: DeletedView { id, deleted: true } }))
}

#[utoipa::path(post, operation_id = "mesh_hubs_rotate_token", path = "/admin/mesh/hubs/{id}/rotate-token", tag = "admin-mesh", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The hub's id")), responses((status = 200, description = "The new agent token (shown once)", body = Data<MeshHubWithTokenView>), ErrorResponses))]
pub async fn rotate_token(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Data<MeshHubWithTokenView>>> {
    let rotated = admin(state).rotate_hub_token(call.request(RotateMeshHubTokenRequest { id })).await?;
    Ok(Json(Data { data: rotated.into_inner().into() }))
}

#[utoipa::path(get, operation_id = "mesh_spokes_list", path = "/admin/mesh/hubs/{id}/spokes", tag = "admin-mesh", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The hub's id"), PageQuery), responses((status = 200, description = "The hub's spokes", body = Listed<MeshSpokeView>), ErrorResponses))]
pub async fn list_spokes(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(hub_id): ApiPath<String>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Listed<MeshSpokeView>>> {
    let request = call.request(ListMeshSpokesRequest { hub_id, page: Some(page.into_request()?) });
    let listing = admin(state).list_spokes(request).await?.into_inner();
    Ok(Json(Listed::new(listing.spokes, listing.page, MeshSpokeView::from)))
}

#[utoipa::path(post, operation_id = "mesh_spokes_create", path = "/admin/mesh/hubs/{id}/spokes", tag = "admin-mesh", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The hub's id")), request_body = CreateSpokeBody, responses((status = 201, description = "The spoke and its agent token (shown once)", body = Data<MeshSpokeWithTokenView>), ErrorResponses))]
pub async fn create_spoke(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(hub_id): ApiPath<String>,
    ApiJson(body): ApiJson<CreateSpokeBody>,
) -> ApiResult<(StatusCode, Json<Data<MeshSpokeWithTokenView>>)> {
    let request =
        call.request(MeshSpoke { hub_id, name: body.name, local_cidrs: body.local_cidrs, ..Default::default() });
    let created = admin(state).create_spoke(request).await?.into_inner();
    Ok((StatusCode::CREATED, Json(Data { data: created.into() })))
}

/// One spoke of a hub.
#[utoipa::path(get, operation_id = "mesh_spokes_get", path = "/admin/mesh/hubs/{id}/spokes/{spoke_id}", tag = "admin-mesh", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The hub's id"), ("spoke_id" = String, Path, description = "The spoke's id")), responses((status = 200, description = "The spoke", body = Data<MeshSpokeView>), ErrorResponses))]
pub async fn get_spoke(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath((hub_id, spoke_id)): ApiPath<(String, String)>,
) -> ApiResult<Json<Data<MeshSpokeView>>> {
    let spoke = admin(state).get_spoke(call.request(GetMeshSpokeRequest { hub_id, spoke_id })).await?.into_inner();
    Ok(Json(Data { data: spoke.into() }))
}

#[utoipa::path(delete, operation_id = "mesh_spokes_remove", path = "/admin/mesh/hubs/{id}/spokes/{spoke_id}", tag = "admin-mesh", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The hub's id"), ("spoke_id" = String, Path, description = "The spoke's id")), responses((status = 200, description = "Deleted; its certificate is revoked and its tunnel cut", body = Data<DeletedView>), ErrorResponses))]
pub async fn remove_spoke(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath((hub_id, spoke_id)): ApiPath<(String, String)>,
) -> ApiResult<Json<Data<DeletedView>>> {
    admin(state).delete_spoke(call.request(DeleteMeshSpokeRequest { hub_id, spoke_id: spoke_id.clone() })).await?;
    Ok(Json(Data { data: DeletedView { id: spoke_id, deleted: true } }))
}

#[utoipa::path(post, operation_id = "mesh_spokes_rotate_token", path = "/admin/mesh/hubs/{id}/spokes/{spoke_id}/rotate-token", tag = "admin-mesh", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The hub's id"), ("spoke_id" = String, Path, description = "The spoke's id")), responses((status = 200, description = "The new spoke token (shown once)", body = Data<MeshSpokeWithTokenView>), ErrorResponses))]
pub async fn rotate_spoke_token(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath((hub_id, spoke_id)): ApiPath<(String, String)>,
) -> ApiResult<Json<Data<MeshSpokeWithTokenView>>> {
    let rotated =
        admin(state).rotate_spoke_token(call.request(RotateMeshSpokeTokenRequest { hub_id, spoke_id })).await?;
    Ok(Json(Data { data: rotated.into_inner().into() }))
}
