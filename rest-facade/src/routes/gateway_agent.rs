//! `/gateway/*`: the agent interface for simple agents, authenticated by the
//! `X-Gateway-Token` header; each maps to one unary `GatewayAgentService` method.

use crate::FacadeState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, CoreCall};
use crate::openapi::ErrorResponses;
use crate::views::{ClientRulesView, Data, ProvisionView, RuleSnapshotView, VerifyView};
use axum::Json;
use axum::extract::State;
use gatekey::v1::gateway_agent_service_client::GatewayAgentServiceClient;
use gatekey::v1::{
    ClientConnected, ClientDisconnected, GetAllRulesRequest, GetClientRulesRequest, HeartbeatRequest, ProvisionRequest,
    VerifyRequest,
};
use prost_types::Timestamp;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tonic::transport::Channel;

fn agent(state: FacadeState) -> GatewayAgentServiceClient<Channel> {
    GatewayAgentServiceClient::new(state.channel)
}

/// An optional RFC 3339 time field.
fn timestamp(field: &str, value: Option<String>) -> ApiResult<Option<Timestamp>> {
    value
        .map(|text| {
            OffsetDateTime::parse(&text, &Rfc3339)
                .map(|at| Timestamp { seconds: at.unix_timestamp(), nanos: 0 })
                .map_err(|_| ApiError::invalid_request(format!("{field}: `{text}` is not an RFC 3339 time")))
        })
        .transpose()
}

/// Body of `POST /gateway/heartbeat`.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatBody {
    #[serde(default)]
    connected_clients: u32,
    #[serde(default)]
    load_average: f64,
    #[serde(default)]
    openvpn_running: bool,
    #[serde(default)]
    config_version: u64,
}

/// Answer of `POST /gateway/heartbeat`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HeartbeatView {
    config_version: u64,
}

/// Records a heartbeat.
#[utoipa::path(post, operation_id = "gateway_agent_heartbeat", path = "/gateway/heartbeat", tag = "gateway", security(("gateway_token" = [])), request_body = HeartbeatBody, responses((status = 200, description = "Recorded", body = Data<HeartbeatView>), ErrorResponses))]
pub async fn heartbeat(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiJson(body): ApiJson<HeartbeatBody>,
) -> ApiResult<Json<Data<HeartbeatView>>> {
    let request = call.request(HeartbeatRequest {
        connected_clients: body.connected_clients,
        load_average: body.load_average,
        openvpn_running: body.openvpn_running,
        config_version: body.config_version,
        session_bytes: Vec::new(),
    });
    let answer = agent(state).heartbeat(request).await?.into_inner();
    Ok(Json(Data { data: HeartbeatView { config_version: answer.config_version } }))
}

/// Body of `POST /gateway/verify`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    #[schema(schema_with = crate::constraints::common_name)]
    common_name: String,
    #[schema(schema_with = crate::constraints::serial)]
    serial: String,
    #[schema(schema_with = crate::constraints::reported_address)]
    #[serde(default)]
    client_address: String,
}

/// Decides on a connecting client.
#[utoipa::path(post, operation_id = "gateway_agent_verify", path = "/gateway/verify", tag = "gateway", security(("gateway_token" = [])), request_body = VerifyBody, responses((status = 200, description = "The verdict", body = Data<VerifyView>), ErrorResponses))]
pub async fn verify(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiJson(body): ApiJson<VerifyBody>,
) -> ApiResult<Json<Data<VerifyView>>> {
    let request = call.request(VerifyRequest {
        common_name: body.common_name,
        serial: body.serial,
        client_address: body.client_address,
    });
    Ok(Json(Data { data: agent(state).verify(request).await?.into_inner().into() }))
}

/// Body of `POST /gateway/connect`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectBody {
    #[schema(schema_with = crate::constraints::id)]
    session_key: String,
    #[schema(schema_with = crate::constraints::common_name)]
    common_name: String,
    #[schema(schema_with = crate::constraints::serial)]
    serial: String,
    #[schema(schema_with = crate::constraints::reported_address)]
    vpn_address: String,
    #[schema(schema_with = crate::constraints::reported_address)]
    #[serde(default)]
    client_address: String,
    #[schema(schema_with = crate::constraints::date_time)]
    #[serde(default)]
    connected_at: Option<String>,
}

/// Answer of the report endpoints.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RecordedView {
    recorded: bool,
}

/// Records that a client connected.
#[utoipa::path(post, operation_id = "gateway_agent_connect", path = "/gateway/connect", tag = "gateway", security(("gateway_token" = [])), request_body = ConnectBody, responses((status = 200, description = "Recorded", body = Data<RecordedView>), ErrorResponses))]
pub async fn connect(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiJson(body): ApiJson<ConnectBody>,
) -> ApiResult<Json<Data<RecordedView>>> {
    let request = call.request(ClientConnected {
        connected_at: timestamp("connected_at", body.connected_at)?,
        session_key: body.session_key,
        common_name: body.common_name,
        serial: body.serial,
        vpn_address: body.vpn_address,
        client_address: body.client_address,
    });
    agent(state).report_connect(request).await?;
    Ok(Json(Data { data: RecordedView { recorded: true } }))
}

/// Body of `POST /gateway/disconnect`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisconnectBody {
    #[schema(schema_with = crate::constraints::id)]
    session_key: String,
    #[schema(schema_with = crate::constraints::common_name)]
    #[serde(default)]
    common_name: String,
    #[schema(schema_with = crate::constraints::serial)]
    #[serde(default)]
    serial: String,
    #[serde(default)]
    duration_seconds: u64,
    #[serde(default)]
    bytes_received: u64,
    #[serde(default)]
    bytes_sent: u64,
    #[schema(schema_with = crate::constraints::date_time)]
    #[serde(default)]
    disconnected_at: Option<String>,
}

/// Records that a client disconnected.
#[utoipa::path(post, operation_id = "gateway_agent_disconnect", path = "/gateway/disconnect", tag = "gateway", security(("gateway_token" = [])), request_body = DisconnectBody, responses((status = 200, description = "Recorded", body = Data<RecordedView>), ErrorResponses))]
pub async fn disconnect(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiJson(body): ApiJson<DisconnectBody>,
) -> ApiResult<Json<Data<RecordedView>>> {
    let request = call.request(ClientDisconnected {
        disconnected_at: timestamp("disconnected_at", body.disconnected_at)?,
        session_key: body.session_key,
        common_name: body.common_name,
        serial: body.serial,
        duration_seconds: body.duration_seconds,
        bytes_received: body.bytes_received,
        bytes_sent: body.bytes_sent,
    });
    agent(state).report_disconnect(request).await?;
    Ok(Json(Data { data: RecordedView { recorded: true } }))
}

/// An empty JSON object, for endpoints that take no parameters.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParameters {}

/// The gateway's server material.
#[utoipa::path(post, operation_id = "gateway_agent_provision", path = "/gateway/provision", tag = "gateway", security(("gateway_token" = [])), request_body = NoParameters, responses((status = 200, description = "Server material", body = Data<ProvisionView>), ErrorResponses))]
pub async fn provision(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiJson(NoParameters {}): ApiJson<NoParameters>,
) -> ApiResult<Json<Data<ProvisionView>>> {
    Ok(Json(Data { data: agent(state).provision(call.request(ProvisionRequest {})).await?.into_inner().into() }))
}

/// Body of `POST /gateway/client-rules`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientRulesBody {
    #[schema(schema_with = crate::constraints::common_name)]
    common_name: String,
}

/// One identity's rules.
#[utoipa::path(post, operation_id = "gateway_agent_client_rules", path = "/gateway/client-rules", tag = "gateway", security(("gateway_token" = [])), request_body = ClientRulesBody, responses((status = 200, description = "One identity's rules", body = Data<ClientRulesView>), ErrorResponses))]
pub async fn client_rules(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiJson(body): ApiJson<ClientRulesBody>,
) -> ApiResult<Json<Data<ClientRulesView>>> {
    let request = call.request(GetClientRulesRequest { common_name: body.common_name });
    Ok(Json(Data { data: agent(state).get_client_rules(request).await?.into_inner().into() }))
}

/// Every identity's rules.
#[utoipa::path(post, operation_id = "gateway_agent_all_rules", path = "/gateway/all-rules", tag = "gateway", security(("gateway_token" = [])), request_body = NoParameters, responses((status = 200, description = "Every identity's rules", body = Data<RuleSnapshotView>), ErrorResponses))]
pub async fn all_rules(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiJson(NoParameters {}): ApiJson<NoParameters>,
) -> ApiResult<Json<Data<RuleSnapshotView>>> {
    Ok(Json(Data { data: agent(state).get_all_rules(call.request(GetAllRulesRequest {})).await?.into_inner().into() }))
}
