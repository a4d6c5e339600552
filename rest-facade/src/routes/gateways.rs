//! `/gateways` (what the caller may use) and `/admin/gateways`.

use crate::FacadeState;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery, CoreCall, PageQuery};
use crate::openapi::ErrorResponses;
use crate::views::{AdminGatewayView, Data, DeletedView, GatewayView, GatewayWithTokenView, Listed};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use gatekey::v1::admin_gateway_service_client::AdminGatewayServiceClient;
use gatekey::v1::gateway_service_client::GatewayServiceClient;
use gatekey::v1::{
    CreateGatewayRequest, DeleteGatewayRequest, GatewayGroupGrant, GatewayNetworkAttachment, GatewayUserGrant,
    GetGatewayRequest, ListGatewaysRequest, RotateGatewayTokenRequest, TransportProtocol, UpdateGatewayRequest,
};
use serde::Deserialize;
use tonic::transport::Channel;

/// `udp` or `tcp` in JSON.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// OpenVPN over UDP.
    Udp,
    /// OpenVPN over TCP.
    Tcp,
}

impl From<Protocol> for i32 {
    fn from(protocol: Protocol) -> i32 {
        match protocol {
            Protocol::Udp => TransportProtocol::Udp.into(),
            Protocol::Tcp => TransportProtocol::Tcp.into(),
        }
    }
}

/// Body of `POST /admin/gateways`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGatewayBody {
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
}

/// Body of `PUT /admin/gateways/{id}`; absent fields stay unchanged.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateGatewayBody {
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
}

/// Body of `POST /admin/gateways/{id}/users`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserGrantBody {
    #[schema(schema_with = crate::constraints::id)]
    user_id: String,
}

/// Body of `POST /admin/gateways/{id}/groups`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupGrantBody {
    #[schema(schema_with = crate::constraints::group)]
    group: String,
}

/// Body of `POST /admin/gateways/{id}/networks`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkAttachmentBody {
    #[schema(schema_with = crate::constraints::id)]
    network_id: String,
}

fn admin(state: FacadeState) -> AdminGatewayServiceClient<Channel> {
    AdminGatewayServiceClient::new(state.channel)
}

type GatewayAnswer = ApiResult<Json<Data<AdminGatewayView>>>;

#[utoipa::path(get, operation_id = "gateways_list_available", path = "/gateways", tag = "gateways", security(("session_cookie" = []), ("bearer" = [])), params(PageQuery), responses((status = 200, description = "Gateways the caller may use", body = Listed<GatewayView>), ErrorResponses))]
pub async fn list_available(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Listed<GatewayView>>> {
    let request = call.request(ListGatewaysRequest { page: Some(page.into_request()?) });
    let listing = GatewayServiceClient::new(state.channel).list_gateways(request).await?.into_inner();
    Ok(Json(Listed::new(listing.gateways, listing.page, GatewayView::from)))
}

#[utoipa::path(get, operation_id = "gateways_list", path = "/admin/gateways", tag = "admin-gateways", security(("session_cookie" = []), ("bearer" = [])), params(PageQuery), responses((status = 200, description = "Every gateway", body = Listed<AdminGatewayView>), ErrorResponses))]
pub async fn list(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Listed<AdminGatewayView>>> {
    let request = call.request(ListGatewaysRequest { page: Some(page.into_request()?) });
    let listing = admin(state).list_gateways(request).await?.into_inner();
    Ok(Json(Listed::new(listing.gateways, listing.page, AdminGatewayView::from)))
}

#[utoipa::path(post, operation_id = "gateways_create", path = "/admin/gateways", tag = "admin-gateways", security(("session_cookie" = []), ("bearer" = [])), request_body = CreateGatewayBody, responses((status = 201, description = "The gateway and its agent token (shown once)", body = Data<GatewayWithTokenView>), ErrorResponses))]
pub async fn create(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiJson(body): ApiJson<CreateGatewayBody>,
) -> ApiResult<(StatusCode, Json<Data<GatewayWithTokenView>>)> {
    let request = call.request(CreateGatewayRequest {
        name: body.name,
        description: body.description,
        hostname: body.hostname,
        port: body.port.unwrap_or(0),
        protocol: body.protocol.map_or(TransportProtocol::Unspecified.into(), i32::from),
        vpn_subnet: body.vpn_subnet.unwrap_or_default(),
    });
    let created = admin(state).create_gateway(request).await?.into_inner();
    Ok((StatusCode::CREATED, Json(Data { data: created.into() })))
}

/// One gateway.
#[utoipa::path(get, operation_id = "gateways_get", path = "/admin/gateways/{id}", tag = "admin-gateways", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The gateway's id")), responses((status = 200, description = "The gateway", body = Data<AdminGatewayView>), ErrorResponses))]
pub async fn get(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Data<AdminGatewayView>>> {
    let found = AdminGatewayServiceClient::new(state.channel)
        .get_gateway(call.request(GetGatewayRequest { id }))
        .await?
        .into_inner();
    Ok(Json(Data { data: found.into() }))
}

#[utoipa::path(put, operation_id = "gateways_update", path = "/admin/gateways/{id}", tag = "admin-gateways", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The gateway's id")), request_body = UpdateGatewayBody, responses((status = 200, description = "The gateway", body = Data<AdminGatewayView>), ErrorResponses))]
pub async fn update(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateGatewayBody>,
) -> GatewayAnswer {
    let request = call.request(UpdateGatewayRequest {
        id,
        name: body.name,
        description: body.description,
        hostname: body.hostname,
        port: body.port,
        protocol: body.protocol.map(i32::from),
        vpn_subnet: body.vpn_subnet,
        is_active: body.is_active,
    });
    Ok(Json(Data { data: admin(state).update_gateway(request).await?.into_inner().into() }))
}

#[utoipa::path(delete, operation_id = "gateways_remove", path = "/admin/gateways/{id}", tag = "admin-gateways", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The gateway's id")), responses((status = 200, description = "Deleted", body = Data<DeletedView>), ErrorResponses))]
pub async fn remove(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Data<DeletedView>>> {
    admin(state).delete_gateway(call.request(DeleteGatewayRequest { id: id.clone() })).await?;
    Ok(Json(Data { data: DeletedView { id, deleted: true } }))
}

#[utoipa::path(post, operation_id = "gateways_rotate_token", path = "/admin/gateways/{id}/rotate-token", tag = "admin-gateways", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The gateway's id")), responses((status = 200, description = "The new agent token (shown once)", body = Data<GatewayWithTokenView>), ErrorResponses))]
pub async fn rotate_token(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Data<GatewayWithTokenView>>> {
    let rotated = admin(state).rotate_gateway_token(call.request(RotateGatewayTokenRequest { id })).await?;
    Ok(Json(Data { data: rotated.into_inner().into() }))
}

#[utoipa::path(post, operation_id = "gateways_grant_user", path = "/admin/gateways/{id}/users", tag = "admin-gateways", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The gateway's id")), request_body = UserGrantBody, responses((status = 200, description = "The gateway", body = Data<AdminGatewayView>), ErrorResponses))]
pub async fn grant_user(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(gateway_id): ApiPath<String>,
    ApiJson(body): ApiJson<UserGrantBody>,
) -> GatewayAnswer {
    let request = call.request(GatewayUserGrant { gateway_id, user_id: body.user_id });
    Ok(Json(Data { data: admin(state).grant_user(request).await?.into_inner().into() }))
}

#[utoipa::path(delete, operation_id = "gateways_revoke_user", path = "/admin/gateways/{id}/users/{user_id}", tag = "admin-gateways", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The gateway's id"), ("user_id" = String, Path, description = "The user's id")), responses((status = 200, description = "The gateway", body = Data<AdminGatewayView>), ErrorResponses))]
pub async fn revoke_user(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath((gateway_id, user_id)): ApiPath<(String, String)>,
) -> GatewayAnswer {
    let request = call.request(GatewayUserGrant { gateway_id, user_id });
    Ok(Json(Data { data: admin(state).revoke_user(request).await?.into_inner().into() }))
}

#[utoipa::path(post, operation_id = "gateways_grant_group", path = "/admin/gateways/{id}/groups", tag = "admin-gateways", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The gateway's id")), request_body = GroupGrantBody, responses((status = 200, description = "The gateway", body = Data<AdminGatewayView>), ErrorResponses))]
pub async fn grant_group(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(gateway_id): ApiPath<String>,
    ApiJson(body): ApiJson<GroupGrantBody>,
) -> GatewayAnswer {
    let request = call.request(GatewayGroupGrant { gateway_id, group: body.group });
    Ok(Json(Data { data: admin(state).grant_group(request).await?.into_inner().into() }))
}

#[utoipa::path(delete, operation_id = "gateways_revoke_group", path = "/admin/gateways/{id}/groups/{group}", tag = "admin-gateways", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The gateway's id"), ("group" = String, Path, description = "The group")), responses((status = 200, description = "The gateway", body = Data<AdminGatewayView>), ErrorResponses))]
pub async fn revoke_group(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath((gateway_id, group)): ApiPath<(String, String)>,
) -> GatewayAnswer {
    let request = call.request(GatewayGroupGrant { gateway_id, group });
    Ok(Json(Data { data: admin(state).revoke_group(request).await?.into_inner().into() }))
}

#[utoipa::path(post, operation_id = "gateways_attach_network", path = "/admin/gateways/{id}/networks", tag = "admin-gateways", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The gateway's id")), request_body = NetworkAttachmentBody, responses((status = 200, description = "The gateway", body = Data<AdminGatewayView>), ErrorResponses))]
pub async fn attach_network(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(gateway_id): ApiPath<String>,
    ApiJson(body): ApiJson<NetworkAttachmentBody>,
) -> GatewayAnswer {
    let request = call.request(GatewayNetworkAttachment { gateway_id, network_id: body.network_id });
    Ok(Json(Data { data: admin(state).attach_network(request).await?.into_inner().into() }))
}

#[utoipa::path(delete, operation_id = "gateways_detach_network", path = "/admin/gateways/{id}/networks/{network_id}", tag = "admin-gateways", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The gateway's id"), ("network_id" = String, Path, description = "The network's id")), responses((status = 200, description = "The gateway", body = Data<AdminGatewayView>), ErrorResponses))]
pub async fn detach_network(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath((gateway_id, network_id)): ApiPath<(String, String)>,
) -> GatewayAnswer {
    let request = call.request(GatewayNetworkAttachment { gateway_id, network_id });
    Ok(Json(Data { data: admin(state).detach_network(request).await?.into_inner().into() }))
}
