//! The web console, served by the facade next to `/api/v1`: the sign-in page, every
//! user's portal and the admin console. Pages are rendered on the server from askama
//! templates (checked at compile time) and made lively with htmx, which is vendored
//! and embedded: no JavaScript build, nothing loaded from elsewhere, and signing in
//! and downloading a profile work with JavaScript off. Every datum comes from the core
//! over gRPC with the visitor's own session, exactly as the REST routes get theirs: the
//! facade keeps no state and the core alone checks roles.
//!
//! Every page is `no-store` and carries a Content-Security-Policy without inline
//! script, and `frame-ancestors 'none'`. Every form that changes something carries the
//! session's CSRF token (see [`crate::csrf`]) and must come from this site.

mod access_rules;
mod api_keys;
mod assets;
mod client_login;
mod configs;
mod dashboard;
mod events;
mod form;
mod gateways;
mod geo_fence;
mod mesh;
mod networks;
mod page;
mod portal;
mod providers;
mod sessions;
mod sign_in;
mod users;

use crate::FacadeState;
use crate::public_routes::CLIENT_CONSENT_PATH;
use axum::Router;
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};

/// What console pages may load and where they may be framed or submit.
const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's routes.
pub(crate) fn router() -> Router<FacadeState> {
    Router::new()
        .route("/", get(portal::home))
        .route("/login", post(sign_in::local))
        .route("/logout", post(sign_in::logout))
        .route(CLIENT_CONSENT_PATH, get(client_login::page).post(client_login::answer))
        .route("/portal/gateways", get(portal::gateway_rows))
        .route("/portal/gateways/{id}/profile", post(portal::download_profile))
        .route("/portal/configs", get(configs::mine))
        .route("/portal/configs/{id}/download", post(configs::download_mine))
        .route("/portal/sessions", get(sessions::mine))
        .route("/portal/hubs", get(portal::hubs))
        .route("/portal/api-keys", get(api_keys::page).post(api_keys::create))
        .route("/portal/api-keys/{id}/revoke", post(api_keys::revoke))
        .route("/admin", get(dashboard::page))
        .route("/admin/figures", get(dashboard::figures))
        .route("/admin/events", get(events::stream))
        .route("/admin/users", get(users::list).post(users::create))
        .route("/admin/users/{id}", get(users::edit).post(users::update))
        .route("/admin/gateways", get(gateways::list).post(gateways::create))
        .route("/admin/gateways/{id}", get(gateways::edit).post(gateways::update))
        .route("/admin/gateways/{id}/rotate", post(gateways::rotate))
        .route("/admin/gateways/{id}/grants", post(gateways::grant))
        .route("/admin/gateways/{id}/revoke-user/{user_id}", post(gateways::revoke_user))
        .route("/admin/gateways/{id}/revoke-group/{group}", post(gateways::revoke_group))
        .route("/admin/gateways/{id}/detach/{network_id}", post(gateways::detach))
        .route("/admin/gateways/{id}/delete", get(gateways::confirm_delete).post(gateways::delete))
        .route("/admin/networks", get(networks::list).post(networks::create))
        .route("/admin/networks/{id}", get(networks::edit).post(networks::update))
        .route("/admin/networks/{id}/delete", get(networks::confirm_delete).post(networks::delete))
        .route("/admin/access-rules", get(access_rules::list).post(access_rules::create))
        .route("/admin/access-rules/{id}", get(access_rules::edit).post(access_rules::update))
        .route("/admin/access-rules/{id}/delete", get(access_rules::confirm_delete).post(access_rules::delete))
        .route("/admin/configs", get(configs::all))
        .route("/admin/configs/revoke", post(configs::revoke))
        .route("/admin/sessions", get(sessions::all))
        .route("/admin/sessions/rows", get(sessions::all_rows))
        .route("/admin/sessions/{id}/disconnect", post(sessions::disconnect))
        .route("/admin/providers", get(providers::list).post(providers::create))
        .route("/admin/providers/{id}", get(providers::edit).post(providers::update))
        .route("/admin/providers/{id}/delete", get(providers::confirm_delete).post(providers::delete))
        .route("/admin/geo-fence", get(geo_fence::page))
        .route("/admin/geo-fence/settings", post(geo_fence::save_settings))
        .route("/admin/geo-fence/rules", post(geo_fence::create_rule))
        .route("/admin/geo-fence/rules/{id}/delete", post(geo_fence::delete_rule))
        .route("/admin/geo-fence/check", post(geo_fence::check))
        .route("/admin/mesh", get(mesh::list).post(mesh::create))
        .route("/admin/mesh/{id}", get(mesh::hub))
        .route("/admin/mesh/{id}/spokes", post(mesh::create_spoke))
        .route("/admin/mesh/{id}/spokes/{spoke_id}/delete", post(mesh::delete_spoke))
        .route("/admin/mesh/{id}/delete", get(mesh::confirm_delete).post(mesh::delete))
        .route("/admin/sign-ins", get(dashboard::sign_ins))
        .layer(axum::middleware::from_fn(page_headers))
        .merge(assets::router())
}

/// The headers of every console page.
async fn page_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.entry(CONTENT_SECURITY_POLICY).or_insert(HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.entry(CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}
