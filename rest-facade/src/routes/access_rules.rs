//! `/admin/access-rules`.

use crate::FacadeState;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery, CoreCall, PageQuery};
use crate::openapi::ErrorResponses;
use crate::views::{AccessRuleView, Data, DeletedView, Listed};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use gatekey::v1::admin_access_rule_service_client::AdminAccessRuleServiceClient;
use gatekey::v1::{AccessRule, DeleteAccessRuleRequest, GetAccessRuleRequest, ListAccessRulesRequest};
use serde::Deserialize;

/// Body of `POST /admin/access-rules` and `PUT /admin/access-rules/{id}` (which
/// replaces the whole rule).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessRuleBody {
    #[schema(schema_with = crate::constraints::name)]
    name: String,
    #[schema(schema_with = crate::constraints::description)]
    #[serde(default)]
    description: String,
    #[schema(schema_with = crate::constraints::id)]
    network_id: String,
    #[schema(schema_with = crate::constraints::ids)]
    #[serde(default)]
    user_ids: Vec<String>,
    #[schema(schema_with = crate::constraints::groups)]
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    destination_type: Option<DestinationType>,
    #[schema(schema_with = crate::constraints::destination)]
    destination: String,
    #[serde(default)]
    protocol: Option<RuleProtocol>,
    #[schema(schema_with = crate::constraints::port_or_unset)]
    #[serde(default)]
    port_from: Option<u16>,
    #[schema(schema_with = crate::constraints::port_or_unset)]
    #[serde(default)]
    port_to: Option<u16>,
}

/// Kinds of destination.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DestinationType {
    /// One address.
    Ip,
    /// A network.
    Cidr,
    /// A DNS name, resolved by the gateway.
    Hostname,
}

/// Protocols a rule can allow.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuleProtocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP.
    Icmp,
    /// Any protocol.
    Any,
}

impl AccessRuleBody {
    fn into_message(self, id: String) -> AccessRule {
        AccessRule {
            id,
            name: self.name,
            description: self.description,
            network_id: self.network_id,
            user_ids: self.user_ids,
            groups: self.groups,
            destination_type: match self.destination_type.unwrap_or(DestinationType::Ip) {
                DestinationType::Ip => "ip",
                DestinationType::Cidr => "cidr",
                DestinationType::Hostname => "hostname",
            }
            .into(),
            destination: self.destination,
            protocol: match self.protocol.unwrap_or(RuleProtocol::Any) {
                RuleProtocol::Tcp => "tcp",
                RuleProtocol::Udp => "udp",
                RuleProtocol::Icmp => "icmp",
                RuleProtocol::Any => "any",
            }
            .into(),
            port_from: self.port_from.map_or(0, u32::from),
            port_to: self.port_to.map_or(0, u32::from),
            ..Default::default()
        }
    }
}

/// Every rule.
#[utoipa::path(get, operation_id = "access_rules_list", path = "/admin/access-rules", tag = "admin-access-rules", security(("session_cookie" = []), ("bearer" = [])), params(PageQuery), responses((status = 200, description = "Rules", body = Listed<AccessRuleView>), ErrorResponses))]
pub async fn list(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Listed<AccessRuleView>>> {
    let request = call.request(ListAccessRulesRequest { page: Some(page.into_request()?) });
    let listing = AdminAccessRuleServiceClient::new(state.channel).list_access_rules(request).await?.into_inner();
    Ok(Json(Listed::new(listing.access_rules, listing.page, AccessRuleView::from)))
}

/// Creates a rule.
#[utoipa::path(post, operation_id = "access_rules_create", path = "/admin/access-rules", tag = "admin-access-rules", security(("session_cookie" = []), ("bearer" = [])), request_body = AccessRuleBody, responses((status = 201, description = "The rule", body = Data<AccessRuleView>), ErrorResponses))]
pub async fn create(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiJson(body): ApiJson<AccessRuleBody>,
) -> ApiResult<(StatusCode, Json<Data<AccessRuleView>>)> {
    let request = call.request(body.into_message(String::new()));
    let rule = AdminAccessRuleServiceClient::new(state.channel).create_access_rule(request).await?.into_inner();
    Ok((StatusCode::CREATED, Json(Data { data: rule.into() })))
}

/// Replaces a rule.
/// One rule.
#[utoipa::path(get, operation_id = "access_rules_get", path = "/admin/access-rules/{id}", tag = "admin-access-rules", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The rule's id")), responses((status = 200, description = "The rule", body = Data<AccessRuleView>), ErrorResponses))]
pub async fn get(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Data<AccessRuleView>>> {
    let found = AdminAccessRuleServiceClient::new(state.channel)
        .get_access_rule(call.request(GetAccessRuleRequest { id }))
        .await?
        .into_inner();
    Ok(Json(Data { data: found.into() }))
}

#[utoipa::path(put, operation_id = "access_rules_update", path = "/admin/access-rules/{id}", tag = "admin-access-rules", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The rule's id")), request_body = AccessRuleBody, responses((status = 200, description = "The rule", body = Data<AccessRuleView>), ErrorResponses))]
pub async fn update(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<AccessRuleBody>,
) -> ApiResult<Json<Data<AccessRuleView>>> {
    let request = call.request(body.into_message(id));
    let rule = AdminAccessRuleServiceClient::new(state.channel).update_access_rule(request).await?.into_inner();
    Ok(Json(Data { data: rule.into() }))
}

/// Deletes a rule.
#[utoipa::path(delete, operation_id = "access_rules_remove", path = "/admin/access-rules/{id}", tag = "admin-access-rules", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The rule's id")), responses((status = 200, description = "Deleted", body = Data<DeletedView>), ErrorResponses))]
pub async fn remove(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Data<DeletedView>>> {
    let request = call.request(DeleteAccessRuleRequest { id: id.clone() });
    AdminAccessRuleServiceClient::new(state.channel).delete_access_rule(request).await?;
    Ok(Json(Data { data: DeletedView { id, deleted: true } }))
}
