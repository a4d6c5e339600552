//! `/auth/oidc/*`: browser-facing single sign-on. Answers are redirects for browsers
//! and JSON for clients that ask for it (`Accept: application/json`).

use super::auth::session_cookie;
use crate::FacadeState;
use crate::error::ApiError;
use crate::extract::{ApiQuery, CoreCall};
use crate::views::{Data, LoginView, UserView, rfc3339};
use axum::Json;
use axum::extract::State;
use axum::http::header::{ACCEPT, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use gatekey::v1::auth_service_client::AuthServiceClient;
use gatekey::v1::{CompleteOidcLoginRequest, StartOidcLoginRequest};
use serde::{Deserialize, Serialize};

/// Whether the client asked for JSON rather than a redirect.
fn wants_json(headers: &HeaderMap) -> bool {
    headers.get(ACCEPT).and_then(|value| value.to_str().ok()).is_some_and(|accept| accept.contains("application/json"))
}

fn redirect(location: &str, extra: HeaderMap) -> Response {
    let mut headers = extra;
    if let Ok(value) = HeaderValue::from_str(location) {
        headers.insert(LOCATION, value);
    }
    (StatusCode::FOUND, headers).into_response()
}

/// Query of `GET /auth/oidc/login`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcLoginQuery {
    #[serde(default)]
    provider: String,
    #[serde(default)]
    redirect_to: String,
}

/// Answer of `GET /auth/oidc/login` for JSON clients.
#[derive(Serialize)]
pub struct AuthorizationView {
    authorization_url: String,
}

/// Starts an OIDC login: a redirect to the provider.
pub async fn oidc_login(
    State(state): State<FacadeState>,
    headers: HeaderMap,
    call: CoreCall,
    ApiQuery(query): ApiQuery<OidcLoginQuery>,
) -> Result<Response, ApiError> {
    let request = call.request(StartOidcLoginRequest { provider: query.provider, redirect_to: query.redirect_to });
    let started = AuthServiceClient::new(state.channel).start_oidc_login(request).await?.into_inner();
    if wants_json(&headers) {
        return Ok(
            Json(Data { data: AuthorizationView { authorization_url: started.authorization_url } }).into_response()
        );
    }
    Ok(redirect(&started.authorization_url, HeaderMap::new()))
}

/// Query of `GET /auth/oidc/callback`.
#[derive(Deserialize)]
pub struct OidcCallbackQuery {
    #[serde(default)]
    code: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    error: String,
}

/// Completes an OIDC login: sets the session cookie and sends the browser on; a
/// failure sends it to `/?login_error=<code>` (or answers JSON to JSON clients).
pub async fn oidc_callback(
    State(state): State<FacadeState>,
    headers: HeaderMap,
    call: CoreCall,
    ApiQuery(query): ApiQuery<OidcCallbackQuery>,
) -> Response {
    let request = call.request(CompleteOidcLoginRequest { code: query.code, state: query.state, error: query.error });
    let json = wants_json(&headers);
    match AuthServiceClient::new(state.channel).complete_oidc_login(request).await {
        Ok(login) => {
            let login = login.into_inner();
            let max_age = login.expires_at.map_or(0, |at| at.seconds - super::auth::now_seconds()).max(0);
            let cookie = session_cookie(&login.session_token, max_age, state.options.secure_cookies);
            if json {
                let view = LoginView {
                    user: login.user.map(UserView::from),
                    expires_at: rfc3339(login.expires_at),
                    session_token: login.session_token,
                };
                return (cookie, Json(Data { data: view })).into_response();
            }
            let target = if login.redirect_to.is_empty() { "/".to_owned() } else { login.redirect_to };
            redirect(&target, cookie)
        }
        Err(status) => {
            let error = ApiError::from(status);
            if json {
                return error.into_response();
            }
            redirect(&format!("/?login_error={}", error.code().as_str()), HeaderMap::new())
        }
    }
}
