//! `/sessions`, `/admin/sessions`, `/admin/sign-ins`, `/admin/dashboard` and
//! `/admin/nodes`: live VPN sessions (and ending one), the sign-in record, the fleet at
//! a glance and the core nodes.

use crate::FacadeState;
use crate::error::ApiResult;
use crate::extract::{ApiPath, ApiQuery, CoreCall, PageQuery};
use crate::openapi::ErrorResponses;
use crate::views::{CoreNodeView, DashboardView, Data, DisconnectedView, Listed, SignInView, VpnSessionView};
use axum::Json;
use axum::extract::State;
use gatekey::v1::admin_activity_service_client::AdminActivityServiceClient;
use gatekey::v1::admin_vpn_session_service_client::AdminVpnSessionServiceClient;
use gatekey::v1::vpn_session_service_client::VpnSessionServiceClient;
use gatekey::v1::{
    DisconnectVpnSessionRequest, GetDashboardRequest, GetVpnSessionRequest, ListCoreNodesRequest, ListSignInsRequest,
    ListVpnSessionsRequest,
};
use serde::Deserialize;

/// The caller's open VPN sessions.
#[utoipa::path(get, operation_id = "sessions_list_own", path = "/sessions", tag = "sessions", security(("session_cookie" = []), ("bearer" = [])), params(PageQuery), responses((status = 200, description = "The caller's open VPN sessions, newest first", body = Listed<VpnSessionView>), ErrorResponses))]
pub async fn list_own(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Listed<VpnSessionView>>> {
    let request = call.request(ListVpnSessionsRequest { page: Some(page.into_request()?) });
    let listing = VpnSessionServiceClient::new(state.channel).list_my_sessions(request).await?.into_inner();
    Ok(Json(Listed::new(listing.sessions, listing.page, VpnSessionView::from)))
}

/// Every open VPN session.
#[utoipa::path(get, operation_id = "sessions_list", path = "/admin/sessions", tag = "admin-sessions", security(("session_cookie" = []), ("bearer" = [])), params(PageQuery), responses((status = 200, description = "Open VPN sessions, newest first", body = Listed<VpnSessionView>), ErrorResponses))]
pub async fn list(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Listed<VpnSessionView>>> {
    let request = call.request(ListVpnSessionsRequest { page: Some(page.into_request()?) });
    let listing = AdminVpnSessionServiceClient::new(state.channel).list_sessions(request).await?.into_inner();
    Ok(Json(Listed::new(listing.sessions, listing.page, VpnSessionView::from)))
}

/// One open VPN session.
#[utoipa::path(get, operation_id = "sessions_get", path = "/admin/sessions/{id}", tag = "admin-sessions", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The session's id")), responses((status = 200, description = "The session", body = Data<VpnSessionView>), ErrorResponses))]
pub async fn get(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Data<VpnSessionView>>> {
    let session =
        AdminVpnSessionServiceClient::new(state.channel).get_session(call.request(GetVpnSessionRequest { id })).await?;
    Ok(Json(Data { data: session.into_inner().into() }))
}

/// Ends an open VPN session at its gateway (the client stops and says why); the
/// certificate stays valid.
#[utoipa::path(delete, operation_id = "sessions_disconnect", path = "/admin/sessions/{id}", tag = "admin-sessions", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The session's id")), responses((status = 200, description = "The order went out (`ordered`: whether the gateway holds a stream to a core node)", body = Data<DisconnectedView>), ErrorResponses))]
pub async fn disconnect(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Data<DisconnectedView>>> {
    let request = call.request(DisconnectVpnSessionRequest { id: id.clone() });
    let answer = AdminVpnSessionServiceClient::new(state.channel).disconnect_session(request).await?.into_inner();
    Ok(Json(Data { data: DisconnectedView { id, disconnected: true, ordered: answer.ordered } }))
}

/// `?page=`, `?per_page=` and `?failures_only=` of `GET /admin/sign-ins`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SignInQuery {
    /// Page number, from 1.
    #[param(minimum = 1, maximum = 2_147_483_647)]
    page: Option<u32>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    per_page: Option<u32>,
    /// Only the refused attempts.
    #[serde(default)]
    failures_only: bool,
}

/// The sign-in record.
#[utoipa::path(get, operation_id = "sign_ins_list", path = "/admin/sign-ins", tag = "admin-activity", security(("session_cookie" = []), ("bearer" = [])), params(SignInQuery), responses((status = 200, description = "Sign-in attempts, newest first", body = Listed<SignInView>), ErrorResponses))]
pub async fn sign_ins(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiQuery(query): ApiQuery<SignInQuery>,
) -> ApiResult<Json<Listed<SignInView>>> {
    let page = PageQuery { page: query.page, per_page: query.per_page }.into_request()?;
    let request = call.request(ListSignInsRequest { page: Some(page), failures_only: query.failures_only });
    let listing = AdminActivityServiceClient::new(state.channel).list_sign_ins(request).await?.into_inner();
    Ok(Json(Listed::new(listing.sign_ins, listing.page, SignInView::from)))
}

/// The fleet at a glance.
#[utoipa::path(get, operation_id = "dashboard_get", path = "/admin/dashboard", tag = "admin-activity", security(("session_cookie" = []), ("bearer" = [])), responses((status = 200, description = "Gateways online and offline, live sessions, configs issued in 24 h, recent sign-ins and refusals", body = Data<DashboardView>), ErrorResponses))]
pub async fn dashboard(State(state): State<FacadeState>, call: CoreCall) -> ApiResult<Json<Data<DashboardView>>> {
    let dashboard =
        AdminActivityServiceClient::new(state.channel).get_dashboard(call.request(GetDashboardRequest {})).await?;
    Ok(Json(Data { data: dashboard.into_inner().into() }))
}

/// The core nodes sharing the database.
#[utoipa::path(get, operation_id = "nodes_list", path = "/admin/nodes", tag = "admin-activity", security(("session_cookie" = []), ("bearer" = [])), responses((status = 200, description = "The core nodes alive now, oldest first, with the gateway streams each holds", body = Data<Vec<CoreNodeView>>), ErrorResponses))]
pub async fn nodes(State(state): State<FacadeState>, call: CoreCall) -> ApiResult<Json<Data<Vec<CoreNodeView>>>> {
    let listing =
        AdminActivityServiceClient::new(state.channel).list_nodes(call.request(ListCoreNodesRequest {})).await?;
    Ok(Json(Data { data: listing.into_inner().nodes.into_iter().map(CoreNodeView::from).collect() }))
}
