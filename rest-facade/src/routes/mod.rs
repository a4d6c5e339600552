//! The `/api/v1` routes, one module per resource. Handlers extract, call one core
//! method and map the answer.

mod access_rules;
mod activity;
mod api_keys;
mod auth;
mod auth_providers;
mod configs;
mod gateway_agent;
mod gateways;
mod geo_fence;
mod mesh;
mod networks;
mod pki;
mod sso;
mod users;

pub(crate) use auth::now_seconds;
pub(crate) use sso::SignInProviderView;

use crate::FacadeState;
use crate::error::ApiError;
use axum::http::StatusCode;
use gatekey::ErrorCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Every `/api/v1` route, each registered with its OpenAPI description.
pub(crate) fn api_v1() -> OpenApiRouter<FacadeState> {
    OpenApiRouter::new()
        .routes(routes!(crate::openapi::openapi_json))
        .routes(routes!(auth::local_login))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::session))
        .routes(routes!(auth::client_start))
        .routes(routes!(auth::client_token))
        .routes(routes!(sso::oidc_login))
        .routes(routes!(sso::oidc_callback))
        .routes(routes!(sso::saml_login))
        .routes(routes!(sso::saml_acs))
        .routes(routes!(sso::saml_finish))
        .routes(routes!(sso::saml_metadata))
        .routes(routes!(sso::providers))
        .routes(routes!(auth_providers::list, auth_providers::create))
        .routes(routes!(auth_providers::get, auth_providers::update, auth_providers::remove))
        .routes(routes!(api_keys::list, api_keys::create))
        .routes(routes!(api_keys::get, api_keys::revoke))
        .routes(routes!(configs::list_own))
        .routes(routes!(configs::generate))
        .routes(routes!(configs::download))
        .routes(routes!(gateways::list_available))
        .routes(routes!(pki::crl_der))
        .routes(routes!(pki::crl_pem))
        .routes(routes!(pki::check))
        .routes(routes!(configs::list_all))
        .routes(routes!(pki::revoke))
        .routes(routes!(gateways::list, gateways::create))
        .routes(routes!(gateways::get, gateways::update, gateways::remove))
        .routes(routes!(gateways::rotate_token))
        .routes(routes!(gateways::grant_user))
        .routes(routes!(gateways::revoke_user))
        .routes(routes!(gateways::grant_group))
        .routes(routes!(gateways::revoke_group))
        .routes(routes!(gateways::attach_network))
        .routes(routes!(gateways::detach_network))
        .routes(routes!(networks::list, networks::create))
        .routes(routes!(networks::get, networks::update, networks::remove))
        .routes(routes!(access_rules::list, access_rules::create))
        .routes(routes!(access_rules::get, access_rules::update, access_rules::remove))
        .routes(routes!(gateway_agent::heartbeat))
        .routes(routes!(gateway_agent::verify))
        .routes(routes!(gateway_agent::connect))
        .routes(routes!(gateway_agent::disconnect))
        .routes(routes!(gateway_agent::provision))
        .routes(routes!(gateway_agent::client_rules))
        .routes(routes!(gateway_agent::all_rules))
        .routes(routes!(activity::list_own))
        .routes(routes!(activity::list))
        .routes(routes!(activity::get, activity::disconnect))
        .routes(routes!(activity::sign_ins))
        .routes(routes!(activity::nodes))
        .routes(routes!(activity::dashboard))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::get, users::update))
        .routes(routes!(geo_fence::get_settings, geo_fence::update_settings))
        .routes(routes!(geo_fence::list_rules, geo_fence::create_rule))
        .routes(routes!(geo_fence::get_rule, geo_fence::update_rule, geo_fence::remove_rule))
        .routes(routes!(geo_fence::check))
        .routes(routes!(mesh::list_available))
        .routes(routes!(mesh::list, mesh::create))
        .routes(routes!(mesh::get, mesh::update, mesh::remove))
        .routes(routes!(mesh::list_spokes, mesh::create_spoke))
        .routes(routes!(mesh::rotate_token))
        .routes(routes!(mesh::get_spoke, mesh::remove_spoke))
        .routes(routes!(mesh::rotate_spoke_token))
}

/// Answer for paths that do not exist.
pub(crate) async fn unknown_path() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such endpoint")
}

/// Answer for known paths with another method.
pub(crate) async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "this endpoint does not accept that method",
    )
}
