//! `/admin/geo-fence/*`: settings, rules and verdict checks.

use crate::FacadeState;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery, CoreCall, PageQuery};
use crate::openapi::ErrorResponses;
use crate::views::{Data, DeletedView, GeoFenceCheckView, GeoFenceRuleView, GeoFenceSettingsView, Listed};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use gatekey::v1::admin_geo_fence_service_client::AdminGeoFenceServiceClient;
use gatekey::v1::{
    DeleteGeoFenceRuleRequest, GeoFenceCheckRequest, GeoFenceRule, GeoFenceSettings, GetGeoFenceRuleRequest,
    GetGeoFenceSettingsRequest, ListGeoFenceRulesRequest,
};
use serde::Deserialize;

/// Body of `PUT /admin/geo-fence/settings`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GeoFenceSettingsBody {
    /// Whether geo-fencing applies.
    enabled: bool,
    #[schema(schema_with = crate::constraints::geo_fence_mode)]
    /// `enforce` (default) or `audit` (log denials, allow anyway).
    #[serde(default = "enforce")]
    mode: String,
    #[schema(schema_with = crate::constraints::file_path)]
    /// Path, on the core's host, of a MaxMind-format country database; empty for CIDR rules only.
    #[serde(default)]
    database_path: String,
    #[schema(schema_with = crate::constraints::unknown_location_policy)]
    /// `allow` or `deny` (default) for addresses with no known country.
    #[serde(default = "deny")]
    unknown_location_policy: String,
}

fn enforce() -> String {
    "enforce".into()
}

fn deny() -> String {
    "deny".into()
}

/// Body of `POST /admin/geo-fence/rules` and `PUT /admin/geo-fence/rules/{id}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GeoFenceRuleBody {
    #[schema(schema_with = crate::constraints::geo_fence_action)]
    /// `allow` or `deny`.
    action: String,
    #[schema(schema_with = crate::constraints::countries)]
    /// ISO 3166-1 alpha-2 country codes.
    #[serde(default)]
    countries: Vec<String>,
    #[schema(schema_with = crate::constraints::optional_cidrs)]
    /// CIDRs.
    #[serde(default)]
    cidrs: Vec<String>,
    #[schema(schema_with = crate::constraints::geo_fence_scope)]
    /// `global` (default), `group` or `user`.
    #[serde(default = "global")]
    scope: String,
    #[schema(schema_with = crate::constraints::subject)]
    /// The group name or user id, for those scopes.
    #[serde(default)]
    subject: String,
}

fn global() -> String {
    "global".into()
}

impl GeoFenceRuleBody {
    fn into_rule(self, id: String) -> GeoFenceRule {
        GeoFenceRule {
            id,
            action: self.action,
            countries: self.countries,
            cidrs: self.cidrs,
            scope: self.scope,
            subject: self.subject,
        }
    }
}

/// Body of `POST /admin/geo-fence/check`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GeoFenceCheckBody {
    #[schema(schema_with = crate::constraints::id)]
    /// The user's id.
    user_id: String,
    #[schema(schema_with = crate::constraints::ip_address)]
    /// The client address to judge.
    address: String,
}

#[utoipa::path(get, operation_id = "geo_fence_settings_get", path = "/admin/geo-fence/settings", tag = "admin-geo-fence", security(("session_cookie" = []), ("bearer" = [])), responses((status = 200, description = "The settings", body = Data<GeoFenceSettingsView>), ErrorResponses))]
pub async fn get_settings(
    State(state): State<FacadeState>,
    call: CoreCall,
) -> ApiResult<Json<Data<GeoFenceSettingsView>>> {
    let request = call.request(GetGeoFenceSettingsRequest {});
    let settings = AdminGeoFenceServiceClient::new(state.channel).get_settings(request).await?.into_inner();
    Ok(Json(Data { data: settings.into() }))
}

#[utoipa::path(put, operation_id = "geo_fence_settings_update", path = "/admin/geo-fence/settings", tag = "admin-geo-fence", security(("session_cookie" = []), ("bearer" = [])), request_body = GeoFenceSettingsBody, responses((status = 200, description = "The settings", body = Data<GeoFenceSettingsView>), ErrorResponses))]
pub async fn update_settings(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiJson(body): ApiJson<GeoFenceSettingsBody>,
) -> ApiResult<Json<Data<GeoFenceSettingsView>>> {
    let request = call.request(GeoFenceSettings {
        enabled: body.enabled,
        mode: body.mode,
        database_path: body.database_path,
        unknown_location_policy: body.unknown_location_policy,
    });
    let settings = AdminGeoFenceServiceClient::new(state.channel).update_settings(request).await?.into_inner();
    Ok(Json(Data { data: settings.into() }))
}

#[utoipa::path(get, operation_id = "geo_fence_rules_list", path = "/admin/geo-fence/rules", tag = "admin-geo-fence", security(("session_cookie" = []), ("bearer" = [])), params(PageQuery), responses((status = 200, description = "Rules, by creation time", body = Listed<GeoFenceRuleView>), ErrorResponses))]
pub async fn list_rules(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Listed<GeoFenceRuleView>>> {
    let request = call.request(ListGeoFenceRulesRequest { page: Some(page.into_request()?) });
    let listing = AdminGeoFenceServiceClient::new(state.channel).list_rules(request).await?.into_inner();
    Ok(Json(Listed::new(listing.rules, listing.page, GeoFenceRuleView::from)))
}

#[utoipa::path(post, operation_id = "geo_fence_rules_create", path = "/admin/geo-fence/rules", tag = "admin-geo-fence", security(("session_cookie" = []), ("bearer" = [])), request_body = GeoFenceRuleBody, responses((status = 201, description = "The rule", body = Data<GeoFenceRuleView>), ErrorResponses))]
pub async fn create_rule(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiJson(body): ApiJson<GeoFenceRuleBody>,
) -> ApiResult<(StatusCode, Json<Data<GeoFenceRuleView>>)> {
    let request = call.request(body.into_rule(String::new()));
    let rule = AdminGeoFenceServiceClient::new(state.channel).create_rule(request).await?.into_inner();
    Ok((StatusCode::CREATED, Json(Data { data: rule.into() })))
}

/// One rule.
#[utoipa::path(get, operation_id = "geo_fence_rules_get", path = "/admin/geo-fence/rules/{id}", tag = "admin-geo-fence", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The rule's id")), responses((status = 200, description = "The rule", body = Data<GeoFenceRuleView>), ErrorResponses))]
pub async fn get_rule(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Data<GeoFenceRuleView>>> {
    let found = AdminGeoFenceServiceClient::new(state.channel)
        .get_rule(call.request(GetGeoFenceRuleRequest { id }))
        .await?
        .into_inner();
    Ok(Json(Data { data: found.into() }))
}

#[utoipa::path(put, operation_id = "geo_fence_rules_update", path = "/admin/geo-fence/rules/{id}", tag = "admin-geo-fence", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The rule's id")), request_body = GeoFenceRuleBody, responses((status = 200, description = "The rule", body = Data<GeoFenceRuleView>), ErrorResponses))]
pub async fn update_rule(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<GeoFenceRuleBody>,
) -> ApiResult<Json<Data<GeoFenceRuleView>>> {
    let request = call.request(body.into_rule(id));
    let rule = AdminGeoFenceServiceClient::new(state.channel).update_rule(request).await?.into_inner();
    Ok(Json(Data { data: rule.into() }))
}

#[utoipa::path(delete, operation_id = "geo_fence_rules_remove", path = "/admin/geo-fence/rules/{id}", tag = "admin-geo-fence", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The rule's id")), responses((status = 200, description = "Deleted", body = Data<DeletedView>), ErrorResponses))]
pub async fn remove_rule(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Data<DeletedView>>> {
    let request = call.request(DeleteGeoFenceRuleRequest { id: id.clone() });
    AdminGeoFenceServiceClient::new(state.channel).delete_rule(request).await?;
    Ok(Json(Data { data: DeletedView { id, deleted: true } }))
}

#[utoipa::path(post, operation_id = "geo_fence_check", path = "/admin/geo-fence/check", tag = "admin-geo-fence", security(("session_cookie" = []), ("bearer" = [])), request_body = GeoFenceCheckBody, responses((status = 200, description = "The verdict and why", body = Data<GeoFenceCheckView>), ErrorResponses))]
pub async fn check(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiJson(body): ApiJson<GeoFenceCheckBody>,
) -> ApiResult<Json<Data<GeoFenceCheckView>>> {
    let request = call.request(GeoFenceCheckRequest { user_id: body.user_id, address: body.address });
    let verdict = AdminGeoFenceServiceClient::new(state.channel).check(request).await?.into_inner();
    Ok(Json(Data { data: verdict.into() }))
}
