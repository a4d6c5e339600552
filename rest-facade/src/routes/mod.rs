//! The `/api/v1` routes, one module per resource. Handlers extract, call one core
//! method and map the answer.

mod access_rules;
mod api_keys;
mod auth;
mod auth_providers;
mod configs;
mod gateway_agent;
mod gateways;
mod networks;
mod pki;
mod sso;
mod users;

use crate::FacadeState;
use crate::error::ApiError;
use axum::Router;
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use gatekey::ErrorCode;

/// Every `/api/v1` route.
pub(crate) fn api_v1() -> Router<FacadeState> {
    Router::new()
        .route("/auth/local/login", post(auth::local_login))
        .route("/auth/logout", post(auth::logout))
        .route("/auth/session", get(auth::session))
        .route("/auth/oidc/login", get(sso::oidc_login))
        .route("/auth/oidc/callback", get(sso::oidc_callback))
        .route("/auth/saml/login", get(sso::saml_login))
        .route("/auth/saml/acs/{provider}", post(sso::saml_acs))
        .route("/auth/saml/metadata/{provider}", get(sso::saml_metadata))
        .route("/admin/auth-providers", get(auth_providers::list).post(auth_providers::create))
        .route("/admin/auth-providers/{id}", put(auth_providers::update).delete(auth_providers::remove))
        .route("/api-keys", get(api_keys::list).post(api_keys::create))
        .route("/api-keys/{id}", delete(api_keys::revoke))
        .route("/configs", get(configs::list_own))
        .route("/configs/generate", post(configs::generate))
        .route("/configs/download/{config_id}", get(configs::download))
        .route("/gateways", get(gateways::list_available))
        .route("/pki/crl", get(pki::crl_der))
        .route("/pki/crl.pem", get(pki::crl_pem))
        .route("/pki/check/{serial}", get(pki::check))
        .route("/admin/configs", get(configs::list_all))
        .route("/admin/pki/revoke", post(pki::revoke))
        .route("/admin/gateways", get(gateways::list).post(gateways::create))
        .route("/admin/gateways/{id}", put(gateways::update).delete(gateways::remove))
        .route("/admin/gateways/{id}/rotate-token", post(gateways::rotate_token))
        .route("/admin/gateways/{id}/users", post(gateways::grant_user))
        .route("/admin/gateways/{id}/users/{user_id}", delete(gateways::revoke_user))
        .route("/admin/gateways/{id}/groups", post(gateways::grant_group))
        .route("/admin/gateways/{id}/groups/{group}", delete(gateways::revoke_group))
        .route("/admin/gateways/{id}/networks", post(gateways::attach_network))
        .route("/admin/gateways/{id}/networks/{network_id}", delete(gateways::detach_network))
        .route("/admin/networks", get(networks::list).post(networks::create))
        .route("/admin/networks/{id}", put(networks::update).delete(networks::remove))
        .route("/admin/access-rules", get(access_rules::list).post(access_rules::create))
        .route("/admin/access-rules/{id}", put(access_rules::update).delete(access_rules::remove))
        .route("/gateway/heartbeat", post(gateway_agent::heartbeat))
        .route("/gateway/verify", post(gateway_agent::verify))
        .route("/gateway/connect", post(gateway_agent::connect))
        .route("/gateway/disconnect", post(gateway_agent::disconnect))
        .route("/gateway/provision", post(gateway_agent::provision))
        .route("/gateway/client-rules", post(gateway_agent::client_rules))
        .route("/gateway/all-rules", post(gateway_agent::all_rules))
        .route("/admin/users", get(users::list).post(users::create))
        .route("/admin/users/{id}", put(users::update))
        .method_not_allowed_fallback(wrong_method)
}

/// Answer for paths that do not exist.
pub(crate) async fn unknown_path() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such endpoint")
}

async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "this endpoint does not accept that method",
    )
}
