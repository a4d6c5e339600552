//! `/gateways` (what the caller may use) and `/admin/gateways`.

use crate::FacadeState;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery, CoreCall, PageQuery};
use crate::views::{AdminGatewayView, Data, DeletedView, GatewayView, GatewayWithTokenView, Listed};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use gatekey::v1::admin_gateway_service_client::AdminGatewayServiceClient;
use gatekey::v1::gateway_service_client::GatewayServiceClient;
use gatekey::v1::{
    CreateGatewayRequest, DeleteGatewayRequest, GatewayGroupGrant, GatewayNetworkAttachment, GatewayUserGrant,
    ListGatewaysRequest, RotateGatewayTokenRequest, TransportProtocol, UpdateGatewayRequest,
};
use serde::Deserialize;
use tonic::transport::Channel;

/// `udp` or `tcp` in JSON.
#[derive(Debug, Clone, Copy, Deserialize)]
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
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateGatewayBody {
    name: String,
    #[serde(default)]
    description: String,
    hostname: String,
    port: Option<u32>,
    protocol: Option<Protocol>,
    vpn_subnet: Option<String>,
}

/// Body of `PUT /admin/gateways/{id}`; absent fields stay unchanged.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateGatewayBody {
    name: Option<String>,
    description: Option<String>,
    hostname: Option<String>,
    port: Option<u32>,
    protocol: Option<Protocol>,
    vpn_subnet: Option<String>,
    is_active: Option<bool>,
}

/// Body of `POST /admin/gateways/{id}/users`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserGrantBody {
    user_id: String,
}

/// Body of `POST /admin/gateways/{id}/groups`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupGrantBody {
    group: String,
}

/// Body of `POST /admin/gateways/{id}/networks`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkAttachmentBody {
    network_id: String,
}

fn admin(state: FacadeState) -> AdminGatewayServiceClient<Channel> {
    AdminGatewayServiceClient::new(state.channel)
}

type GatewayAnswer = ApiResult<Json<Data<AdminGatewayView>>>;

pub async fn list_available(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Listed<GatewayView>>> {
    let request = call.request(ListGatewaysRequest { page: Some(page.into_request()?) });
    let listing = GatewayServiceClient::new(state.channel).list_gateways(request).await?.into_inner();
    Ok(Json(Listed::new(listing.gateways, listing.page, GatewayView::from)))
}

pub async fn list(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Listed<AdminGatewayView>>> {
    let request = call.request(ListGatewaysRequest { page: Some(page.into_request()?) });
    let listing = admin(state).list_gateways(request).await?.into_inner();
    Ok(Json(Listed::new(listing.gateways, listing.page, AdminGatewayView::from)))
}

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

pub async fn remove(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Data<DeletedView>>> {
    admin(state).delete_gateway(call.request(DeleteGatewayRequest { id: id.clone() })).await?;
    Ok(Json(Data { data: DeletedView { id, deleted: true } }))
}

pub async fn rotate_token(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Data<GatewayWithTokenView>>> {
    let rotated = admin(state).rotate_gateway_token(call.request(RotateGatewayTokenRequest { id })).await?;
    Ok(Json(Data { data: rotated.into_inner().into() }))
}

pub async fn grant_user(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(gateway_id): ApiPath<String>,
    ApiJson(body): ApiJson<UserGrantBody>,
) -> GatewayAnswer {
    let request = call.request(GatewayUserGrant { gateway_id, user_id: body.user_id });
    Ok(Json(Data { data: admin(state).grant_user(request).await?.into_inner().into() }))
}

pub async fn revoke_user(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath((gateway_id, user_id)): ApiPath<(String, String)>,
) -> GatewayAnswer {
    let request = call.request(GatewayUserGrant { gateway_id, user_id });
    Ok(Json(Data { data: admin(state).revoke_user(request).await?.into_inner().into() }))
}

pub async fn grant_group(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(gateway_id): ApiPath<String>,
    ApiJson(body): ApiJson<GroupGrantBody>,
) -> GatewayAnswer {
    let request = call.request(GatewayGroupGrant { gateway_id, group: body.group });
    Ok(Json(Data { data: admin(state).grant_group(request).await?.into_inner().into() }))
}

pub async fn revoke_group(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath((gateway_id, group)): ApiPath<(String, String)>,
) -> GatewayAnswer {
    let request = call.request(GatewayGroupGrant { gateway_id, group });
    Ok(Json(Data { data: admin(state).revoke_group(request).await?.into_inner().into() }))
}

pub async fn attach_network(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(gateway_id): ApiPath<String>,
    ApiJson(body): ApiJson<NetworkAttachmentBody>,
) -> GatewayAnswer {
    let request = call.request(GatewayNetworkAttachment { gateway_id, network_id: body.network_id });
    Ok(Json(Data { data: admin(state).attach_network(request).await?.into_inner().into() }))
}

pub async fn detach_network(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath((gateway_id, network_id)): ApiPath<(String, String)>,
) -> GatewayAnswer {
    let request = call.request(GatewayNetworkAttachment { gateway_id, network_id });
    Ok(Json(Data { data: admin(state).detach_network(request).await?.into_inner().into() }))
}
