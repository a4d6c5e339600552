//! `/auth/oidc/*` and `/auth/saml/*`: browser-facing single sign-on. Answers are redirects for browsers
//! and JSON for clients that ask for it (`Accept: application/json`).

use super::auth::session_cookie;
use crate::FacadeState;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery, CoreCall};
use crate::openapi::ErrorResponses;
use crate::views::{Data, LoginView, UserView, rfc3339};
use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use gatekey::v1::auth_service_client::AuthServiceClient;
use gatekey::v1::{
    CompleteOidcLoginRequest, CompleteSamlLoginRequest, GetSamlMetadataRequest, LoginResponse, StartOidcLoginRequest,
    StartSamlLoginRequest,
};
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

/// Query of `GET /auth/oidc/login` and `GET /auth/saml/login`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LoginStartQuery {
    #[serde(default)]
    provider: String,
    #[serde(default)]
    redirect_to: String,
}

/// Answer of `GET /auth/oidc/login` for JSON clients.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuthorizationView {
    authorization_url: String,
}

/// Starts an OIDC login: a redirect to the provider.
#[utoipa::path(get, operation_id = "sso_oidc_login", path = "/auth/oidc/login", tag = "sso", security(()), params(LoginStartQuery), responses((status = 302, description = "To the identity provider"), (status = 200, description = "For JSON clients", body = Data<AuthorizationView>), ErrorResponses))]
pub async fn oidc_login(
    State(state): State<FacadeState>,
    headers: HeaderMap,
    call: CoreCall,
    ApiQuery(query): ApiQuery<LoginStartQuery>,
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
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
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
#[utoipa::path(get, operation_id = "sso_oidc_callback", path = "/auth/oidc/callback", tag = "sso", security(()), params(OidcCallbackQuery), responses((status = 302, description = "Signed in (cookie set) or failed (to /?login_error=code)"), (status = 200, description = "For JSON clients", body = Data<LoginView>), ErrorResponses))]
pub async fn oidc_callback(
    State(state): State<FacadeState>,
    headers: HeaderMap,
    call: CoreCall,
    ApiQuery(query): ApiQuery<OidcCallbackQuery>,
) -> Response {
    let request = call.request(CompleteOidcLoginRequest { code: query.code, state: query.state, error: query.error });
    let outcome = AuthServiceClient::new(state.channel.clone()).complete_oidc_login(request).await;
    finish_login(&state, &headers, outcome)
}

/// The end of every browser login: cookie and redirect (or JSON), or the error.
fn finish_login(
    state: &FacadeState,
    headers: &HeaderMap,
    outcome: Result<tonic::Response<LoginResponse>, tonic::Status>,
) -> Response {
    let json = wants_json(headers);
    match outcome {
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

/// Starts a SAML login: a redirect to the IdP with the AuthnRequest.
#[utoipa::path(get, operation_id = "sso_saml_login", path = "/auth/saml/login", tag = "sso", security(()), params(LoginStartQuery), responses((status = 302, description = "To the identity provider"), (status = 200, description = "For JSON clients", body = Data<AuthorizationView>), ErrorResponses))]
pub async fn saml_login(
    State(state): State<FacadeState>,
    headers: HeaderMap,
    call: CoreCall,
    ApiQuery(query): ApiQuery<LoginStartQuery>,
) -> Result<Response, ApiError> {
    let request = call.request(StartSamlLoginRequest { provider: query.provider, redirect_to: query.redirect_to });
    let started = AuthServiceClient::new(state.channel).start_saml_login(request).await?.into_inner();
    if wants_json(&headers) {
        return Ok(Json(Data { data: AuthorizationView { authorization_url: started.redirect_url } }).into_response());
    }
    Ok(redirect(&started.redirect_url, HeaderMap::new()))
}

/// The form an IdP POSTs to the assertion consumer service.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SamlPost {
    #[serde(rename = "SAMLResponse")]
    saml_response: String,
    #[serde(rename = "RelayState", default)]
    relay_state: String,
}

/// The assertion consumer service (HTTP-POST binding).
#[utoipa::path(post, operation_id = "sso_saml_acs", path = "/auth/saml/acs/{provider}", tag = "sso", security(()), params(("provider" = String, Path, description = "The SAML provider's name")), request_body(content = SamlPost, content_type = "application/x-www-form-urlencoded"), responses((status = 302, description = "Signed in (cookie set) or failed (to /?login_error=code)"), (status = 200, description = "For JSON clients", body = Data<LoginView>), ErrorResponses))]
pub async fn saml_acs(
    State(state): State<FacadeState>,
    headers: HeaderMap,
    call: CoreCall,
    ApiPath(provider): ApiPath<String>,
    form: Result<Form<SamlPost>, FormRejection>,
) -> Response {
    let Ok(Form(post)) = form else {
        return ApiError::invalid_request("expected a form with SAMLResponse and RelayState").into_response();
    };
    let request = call.request(CompleteSamlLoginRequest {
        provider,
        saml_response: post.saml_response,
        relay_state: post.relay_state,
    });
    let outcome = AuthServiceClient::new(state.channel.clone()).complete_saml_login(request).await;
    finish_login(&state, &headers, outcome)
}

/// The SP metadata for a SAML provider.
#[utoipa::path(get, operation_id = "sso_saml_metadata", path = "/auth/saml/metadata/{provider}", tag = "sso", security(()), params(("provider" = String, Path, description = "The SAML provider's name")), responses((status = 200, description = "SP metadata", content_type = "application/samlmetadata+xml", body = String), ErrorResponses))]
pub async fn saml_metadata(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiPath(provider): ApiPath<String>,
) -> Result<Response, ApiError> {
    let metadata = AuthServiceClient::new(state.channel)
        .get_saml_metadata(call.request(GetSamlMetadataRequest { provider }))
        .await?
        .into_inner();
    Ok(([(CONTENT_TYPE, HeaderValue::from_static("application/samlmetadata+xml"))], metadata.xml).into_response())
}
