//! `/admin/auth-providers`: identity providers (client secrets are write-only).

use crate::FacadeState;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery, CoreCall, PageQuery};
use crate::openapi::ErrorResponses;
use crate::views::{AuthProviderView, Data, DeletedView, Listed};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use gatekey::v1::admin_auth_provider_service_client::AdminAuthProviderServiceClient;
use gatekey::v1::{AuthProvider, DeleteAuthProviderRequest, GetAuthProviderRequest, ListAuthProvidersRequest};
use serde::Deserialize;

/// Body of `POST /admin/auth-providers` and `PUT /admin/auth-providers/{id}` (which
/// replaces the provider; an absent `client_secret` keeps the stored one).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthProviderBody {
    #[schema(schema_with = crate::constraints::provider_name)]
    name: String,
    #[serde(rename = "type")]
    kind: ProviderKind,
    #[schema(schema_with = crate::constraints::url)]
    #[serde(default)]
    issuer_url: String,
    #[schema(schema_with = crate::constraints::client_id)]
    #[serde(default)]
    client_id: String,
    #[schema(schema_with = crate::constraints::client_secret)]
    #[serde(default)]
    client_secret: String,
    #[schema(schema_with = crate::constraints::oauth_scopes)]
    #[serde(default)]
    scopes: Vec<String>,
    #[schema(schema_with = crate::constraints::claim_name)]
    #[serde(default)]
    groups_claim: String,
    #[schema(schema_with = crate::constraints::optional_group)]
    #[serde(default)]
    admin_group: String,
    #[schema(schema_with = crate::constraints::groups)]
    #[serde(default)]
    allowed_groups: Vec<String>,
    #[schema(schema_with = crate::constraints::saml_metadata)]
    #[serde(default)]
    saml_idp_metadata: String,
    #[schema(schema_with = crate::constraints::short_text)]
    #[serde(default)]
    saml_entity_id: String,
    /// Link a new subject to an existing account of another identity provider with the
    /// same, verified e-mail (never to a local account).
    #[serde(default)]
    link_by_email: bool,
    /// Accept e-mails the provider does not mark verified (they never link accounts).
    #[serde(default)]
    allow_unverified_email: bool,
}

/// Kinds of identity provider.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenID Connect.
    Oidc,
    /// SAML 2.0.
    Saml,
}

impl AuthProviderBody {
    fn into_message(self, id: String) -> AuthProvider {
        AuthProvider {
            id,
            name: self.name,
            r#type: match self.kind {
                ProviderKind::Oidc => "oidc",
                ProviderKind::Saml => "saml",
            }
            .into(),
            issuer_url: self.issuer_url,
            client_id: self.client_id,
            client_secret: self.client_secret,
            scopes: self.scopes,
            groups_claim: self.groups_claim,
            admin_group: self.admin_group,
            allowed_groups: self.allowed_groups,
            saml_idp_metadata: self.saml_idp_metadata,
            saml_entity_id: self.saml_entity_id,
            link_by_email: self.link_by_email,
            allow_unverified_email: self.allow_unverified_email,
        }
    }
}

/// Every provider.
#[utoipa::path(get, operation_id = "auth_providers_list", path = "/admin/auth-providers", tag = "admin-auth-providers", security(("session_cookie" = []), ("bearer" = [])), params(PageQuery), responses((status = 200, description = "Identity providers", body = Listed<AuthProviderView>), ErrorResponses))]
pub async fn list(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<Json<Listed<AuthProviderView>>> {
    let request = call.request(ListAuthProvidersRequest { page: Some(page.into_request()?) });
    let listing = AdminAuthProviderServiceClient::new(state.channel).list_auth_providers(request).await?.into_inner();
    Ok(Json(Listed::new(listing.providers, listing.page, AuthProviderView::from)))
}

/// Creates a provider.
#[utoipa::path(post, operation_id = "auth_providers_create", path = "/admin/auth-providers", tag = "admin-auth-providers", security(("session_cookie" = []), ("bearer" = [])), request_body = AuthProviderBody, responses((status = 201, description = "The provider", body = Data<AuthProviderView>), ErrorResponses))]
pub async fn create(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiJson(body): ApiJson<AuthProviderBody>,
) -> ApiResult<(StatusCode, Json<Data<AuthProviderView>>)> {
    let request = call.request(body.into_message(String::new()));
    let provider = AdminAuthProviderServiceClient::new(state.channel).create_auth_provider(request).await?.into_inner();
    Ok((StatusCode::CREATED, Json(Data { data: provider.into() })))
}

/// One provider.
#[utoipa::path(get, operation_id = "auth_providers_get", path = "/admin/auth-providers/{id}", tag = "admin-auth-providers", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The provider's id")), responses((status = 200, description = "The provider", body = Data<AuthProviderView>), ErrorResponses))]
pub async fn get(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Data<AuthProviderView>>> {
    let found = AdminAuthProviderServiceClient::new(state.channel)
        .get_auth_provider(call.request(GetAuthProviderRequest { id }))
        .await?
        .into_inner();
    Ok(Json(Data { data: found.into() }))
}

/// Replaces a provider.
#[utoipa::path(put, operation_id = "auth_providers_update", path = "/admin/auth-providers/{id}", tag = "admin-auth-providers", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The provider's id")), request_body = AuthProviderBody, responses((status = 200, description = "The provider", body = Data<AuthProviderView>), ErrorResponses))]
pub async fn update(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<AuthProviderBody>,
) -> ApiResult<Json<Data<AuthProviderView>>> {
    let request = call.request(body.into_message(id));
    let provider = AdminAuthProviderServiceClient::new(state.channel).update_auth_provider(request).await?.into_inner();
    Ok(Json(Data { data: provider.into() }))
}

/// Deletes a provider.
#[utoipa::path(delete, operation_id = "auth_providers_remove", path = "/admin/auth-providers/{id}", tag = "admin-auth-providers", security(("session_cookie" = []), ("bearer" = [])), params(("id" = String, Path, description = "The provider's id")), responses((status = 200, description = "Deleted", body = Data<DeletedView>), ErrorResponses))]
pub async fn remove(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Data<DeletedView>>> {
    let request = call.request(DeleteAuthProviderRequest { id: id.clone() });
    AdminAuthProviderServiceClient::new(state.channel).delete_auth_provider(request).await?;
    Ok(Json(Data { data: DeletedView { id, deleted: true } }))
}
