//! `/auth/oidc/*` and `/auth/saml/*`: browser-facing single sign-on. Answers are redirects for browsers
//! and JSON for clients that ask for it (`Accept: application/json`). Every login is bound to the
//! browser that starts it: the start sets the `gatekey_login` cookie, and the completion (the OIDC
//! callback, the SAML finish) is refused without it. A SAML response arrives by a cross-site POST,
//! which carries no cookie, so the ACS verifies it and sends the browser on to `/auth/saml/finish`,
//! a same-site GET that does.

use crate::FacadeState;
use crate::cookies;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery, CoreCall};
use crate::openapi::ErrorResponses;
use crate::views::{Data, LoginView};
use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use gatekey::v1::auth_service_client::AuthServiceClient;
use gatekey::v1::{
    AcceptSamlResponseRequest, CompleteOidcLoginRequest, CompleteSamlLoginRequest, GetSamlMetadataRequest,
    LoginResponse, StartOidcLoginRequest, StartSamlLoginRequest,
};
use serde::{Deserialize, Serialize};

/// Where a browser finishes a SAML login the ACS accepted.
const SAML_FINISH_PATH: &str = "/api/v1/auth/saml/finish";

/// Whether the client asked for JSON rather than a redirect.
fn wants_json(headers: &HeaderMap) -> bool {
    headers.get(ACCEPT).and_then(|value| value.to_str().ok()).is_some_and(|accept| accept.contains("application/json"))
}

fn redirect(status: StatusCode, location: &str, jar: CookieJar) -> Response {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(location) {
        headers.insert(LOCATION, value);
    }
    (status, jar, headers).into_response()
}

/// Query of `GET /auth/oidc/login` and `GET /auth/saml/login`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LoginStartQuery {
    /// The provider's name; empty when there is only one of the kind.
    #[param(schema_with = crate::constraints::provider_choice)]
    #[serde(default)]
    provider: String,
    /// The same-site path to return to once signed in (default `/`).
    #[param(schema_with = crate::constraints::same_site_path)]
    #[serde(default)]
    redirect_to: String,
}

/// Answer of `GET /auth/oidc/login` and `GET /auth/saml/login` for JSON clients.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuthorizationView {
    authorization_url: String,
}

/// The start of every browser login: the login cookie and the way to the provider.
fn start_login(state: &FacadeState, headers: &HeaderMap, provider_url: String, binding: String) -> Response {
    let jar = CookieJar::new().add(cookies::login_binding(binding, state.options.secure_cookies));
    if wants_json(headers) {
        return (jar, Json(Data { data: AuthorizationView { authorization_url: provider_url } })).into_response();
    }
    redirect(StatusCode::FOUND, &provider_url, jar)
}

/// Starts an OIDC login: a redirect to the provider, and the login cookie.
#[utoipa::path(get, operation_id = "sso_oidc_login", path = "/auth/oidc/login", tag = "sso", security(()), params(LoginStartQuery), responses((status = 302, description = "To the identity provider; sets the gatekey_login cookie"), (status = 200, description = "For JSON clients; sets the gatekey_login cookie", body = Data<AuthorizationView>), ErrorResponses))]
pub async fn oidc_login(
    State(state): State<FacadeState>,
    headers: HeaderMap,
    call: CoreCall,
    ApiQuery(query): ApiQuery<LoginStartQuery>,
) -> Result<Response, ApiError> {
    let request = call.request(StartOidcLoginRequest { provider: query.provider, redirect_to: query.redirect_to });
    let started = AuthServiceClient::new(state.channel.clone()).start_oidc_login(request).await?.into_inner();
    Ok(start_login(&state, &headers, started.authorization_url, started.browser_binding))
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

/// Completes an OIDC login in the browser that started it: sets the session cookie and
/// sends the browser on; a failure sends it to `/?login_error=<code>` (or answers JSON
/// to JSON clients).
#[utoipa::path(get, operation_id = "sso_oidc_callback", path = "/auth/oidc/callback", tag = "sso", security(()), params(OidcCallbackQuery), responses((status = 302, description = "Signed in (cookie set) or failed (to /?login_error=code)"), (status = 200, description = "For JSON clients", body = Data<LoginView>), ErrorResponses))]
pub async fn oidc_callback(
    State(state): State<FacadeState>,
    headers: HeaderMap,
    jar: CookieJar,
    call: CoreCall,
    ApiQuery(query): ApiQuery<OidcCallbackQuery>,
) -> Response {
    let request = call.request(CompleteOidcLoginRequest {
        code: query.code,
        state: query.state,
        error: query.error,
        browser_binding: cookies::presented_login_binding(&jar, state.options.secure_cookies).unwrap_or_default(),
    });
    let outcome = AuthServiceClient::new(state.channel.clone()).complete_oidc_login(request).await;
    finish_login(&state, &headers, outcome)
}

/// Where a failed browser login lands: the sign-in page, with the error's code, by a
/// `status` redirect (303 after a POST).
fn failed_login(state: &FacadeState, headers: &HeaderMap, error: ApiError, status: StatusCode) -> Response {
    if wants_json(headers) {
        return error.into_response();
    }
    let jar = CookieJar::new().add(cookies::login_binding_cleared(state.options.secure_cookies));
    redirect(status, &format!("/?login_error={}", error.code().as_str()), jar)
}

/// The end of every browser login: the session cookie (the login cookie cleared) and a
/// redirect (or JSON), or the error.
fn finish_login(
    state: &FacadeState,
    headers: &HeaderMap,
    outcome: Result<tonic::Response<LoginResponse>, tonic::Status>,
) -> Response {
    let login = match outcome {
        Ok(login) => login.into_inner(),
        Err(status) => return failed_login(state, headers, ApiError::from(status), StatusCode::FOUND),
    };
    let secure = state.options.secure_cookies;
    let max_age = login.expires_at.map_or(0, |at| at.seconds - super::auth::now_seconds());
    let jar = CookieJar::new().add(cookies::login_binding_cleared(secure)).add(cookies::session(
        login.session_token.clone(),
        max_age,
        secure,
    ));
    if wants_json(headers) {
        return (jar, Json(Data { data: LoginView::from(login) })).into_response();
    }
    let target = if login.redirect_to.is_empty() { "/".to_owned() } else { login.redirect_to };
    redirect(StatusCode::FOUND, &target, jar)
}

/// Starts a SAML login: a redirect to the IdP with the AuthnRequest, and the login cookie.
#[utoipa::path(get, operation_id = "sso_saml_login", path = "/auth/saml/login", tag = "sso", security(()), params(LoginStartQuery), responses((status = 302, description = "To the identity provider; sets the gatekey_login cookie"), (status = 200, description = "For JSON clients; sets the gatekey_login cookie", body = Data<AuthorizationView>), ErrorResponses))]
pub async fn saml_login(
    State(state): State<FacadeState>,
    headers: HeaderMap,
    call: CoreCall,
    ApiQuery(query): ApiQuery<LoginStartQuery>,
) -> Result<Response, ApiError> {
    let request = call.request(StartSamlLoginRequest { provider: query.provider, redirect_to: query.redirect_to });
    let started = AuthServiceClient::new(state.channel.clone()).start_saml_login(request).await?.into_inner();
    Ok(start_login(&state, &headers, started.redirect_url, started.browser_binding))
}

/// The form an IdP POSTs to the assertion consumer service.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct SamlPost {
    #[serde(rename = "SAMLResponse")]
    saml_response: String,
    #[serde(rename = "RelayState", default)]
    relay_state: String,
}

/// Answer of the ACS for JSON clients.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SamlAcceptedView {
    /// Where the browser that started the login finishes it (with its login cookie).
    finish_url: String,
}

/// The assertion consumer service (HTTP-POST binding): verifies the response and sends
/// the browser on to finish the login.
#[utoipa::path(post, operation_id = "sso_saml_acs", path = "/auth/saml/acs/{provider}", tag = "sso", security(()), params(("provider" = String, Path, description = "The SAML provider's name")), request_body(content = SamlPost, content_type = "application/x-www-form-urlencoded"), responses((status = 303, description = "Verified: on to /api/v1/auth/saml/finish?code=…; or failed: to /?login_error=code"), (status = 200, description = "For JSON clients", body = Data<SamlAcceptedView>), ErrorResponses))]
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
    let request = call.request(AcceptSamlResponseRequest {
        provider,
        saml_response: post.saml_response,
        relay_state: post.relay_state,
    });
    let accepted = match AuthServiceClient::new(state.channel.clone()).accept_saml_response(request).await {
        Ok(accepted) => accepted.into_inner(),
        // A malformed post (no such provider name, no response) is no sign-in attempt
        // to send a browser back from: it is answered as bad input.
        Err(status) if status.code() == tonic::Code::InvalidArgument => return ApiError::from(status).into_response(),
        Err(status) => return failed_login(&state, &headers, ApiError::from(status), StatusCode::SEE_OTHER),
    };
    let finish_url = format!("{SAML_FINISH_PATH}?code={}", accepted.finish_code);
    if wants_json(&headers) {
        return Json(Data { data: SamlAcceptedView { finish_url } }).into_response();
    }
    redirect(StatusCode::SEE_OTHER, &finish_url, CookieJar::new())
}

/// Query of `GET /auth/saml/finish`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SamlFinishQuery {
    /// The single-use code the ACS handed out.
    #[serde(default)]
    code: String,
}

/// Finishes a SAML login in the browser that started it: sets the session cookie and
/// sends the browser on; a failure sends it to `/?login_error=<code>`.
#[utoipa::path(get, operation_id = "sso_saml_finish", path = "/auth/saml/finish", tag = "sso", security(()), params(SamlFinishQuery), responses((status = 302, description = "Signed in (cookie set) or failed (to /?login_error=code)"), (status = 200, description = "For JSON clients", body = Data<LoginView>), ErrorResponses))]
pub async fn saml_finish(
    State(state): State<FacadeState>,
    headers: HeaderMap,
    jar: CookieJar,
    call: CoreCall,
    ApiQuery(query): ApiQuery<SamlFinishQuery>,
) -> Response {
    let request = call.request(CompleteSamlLoginRequest {
        finish_code: query.code,
        browser_binding: cookies::presented_login_binding(&jar, state.options.secure_cookies).unwrap_or_default(),
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

/// An identity provider one can sign in with.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SignInProviderView {
    /// Its name.
    pub name: String,
    /// `oidc` or `saml`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Where a browser starts signing in with it.
    pub login_url: String,
}

impl From<gatekey::v1::SignInProvider> for SignInProviderView {
    fn from(provider: gatekey::v1::SignInProvider) -> Self {
        let login_url = format!("/api/v1/auth/{}/login?provider={}", provider.kind, provider.name);
        SignInProviderView { name: provider.name, kind: provider.kind, login_url }
    }
}

/// The identity providers one can sign in with, for sign-in pages.
#[utoipa::path(get, operation_id = "sso_providers", path = "/auth/providers", tag = "sso", security(()), responses((status = 200, description = "The identity providers, by name", body = Data<Vec<SignInProviderView>>), ErrorResponses))]
pub async fn providers(
    State(state): State<FacadeState>,
    call: CoreCall,
) -> Result<Json<Data<Vec<SignInProviderView>>>, ApiError> {
    let listed = AuthServiceClient::new(state.channel)
        .list_sign_in_providers(call.request(gatekey::v1::ListSignInProvidersRequest {}))
        .await?
        .into_inner();
    Ok(Json(Data { data: listed.providers.into_iter().map(SignInProviderView::from).collect() }))
}
