//! `/auth/*`: local sign-in, sign-out and the current session.

use crate::FacadeState;
use crate::cookies;
use crate::error::ApiResult;
use crate::extract::{ApiJson, CoreCall};
use crate::openapi::ErrorResponses;
use crate::views::{Data, LoginView, SessionView, rfc3339};
use axum::Json;
use axum::extract::State;
use axum_extra::extract::cookie::CookieJar;
use gatekey::v1::auth_service_client::AuthServiceClient;
use gatekey::v1::{
    ExchangeClientCodeRequest, GetSessionRequest, LocalLoginRequest, LogoutRequest, StartClientLoginRequest,
};
use serde::{Deserialize, Serialize};

/// Body of `POST /auth/local/login`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    #[schema(schema_with = crate::constraints::login_name)]
    username: String,
    #[schema(schema_with = crate::constraints::login_password)]
    password: String,
}

#[utoipa::path(post, operation_id = "auth_local_login", path = "/auth/local/login", tag = "auth", security(()), request_body = LoginBody, responses((status = 200, description = "Signed in; sets the gatekey_session cookie", body = Data<LoginView>), ErrorResponses))]
pub async fn local_login(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiJson(body): ApiJson<LoginBody>,
) -> ApiResult<(CookieJar, Json<Data<LoginView>>)> {
    let request = call.request(LocalLoginRequest { username: body.username, password: body.password });
    let login = AuthServiceClient::new(state.channel).local_login(request).await?.into_inner();
    let max_age = login.expires_at.map_or(0, |at| at.seconds - now_seconds());
    let cookie =
        CookieJar::new().add(cookies::session(login.session_token.clone(), max_age, state.options.secure_cookies));
    Ok((cookie, Json(Data { data: LoginView::from(login) })))
}

/// Answer of `POST /auth/logout`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LoggedOut {
    logged_out: bool,
}

#[utoipa::path(post, operation_id = "auth_logout", path = "/auth/logout", tag = "auth", security(("session_cookie" = []), ("bearer" = [])), responses((status = 200, description = "Signed out; clears the cookie", body = Data<LoggedOut>), ErrorResponses))]
pub async fn logout(State(state): State<FacadeState>, call: CoreCall) -> ApiResult<(CookieJar, Json<Data<LoggedOut>>)> {
    AuthServiceClient::new(state.channel).logout(call.request(LogoutRequest {})).await?;
    let cookie = CookieJar::new().add(cookies::session_cleared(state.options.secure_cookies));
    Ok((cookie, Json(Data { data: LoggedOut { logged_out: true } })))
}

#[utoipa::path(get, operation_id = "auth_session", path = "/auth/session", tag = "auth", security(("session_cookie" = []), ("bearer" = [])), responses((status = 200, description = "The caller", body = Data<SessionView>), ErrorResponses))]
pub async fn session(State(state): State<FacadeState>, call: CoreCall) -> ApiResult<Json<Data<SessionView>>> {
    let info = AuthServiceClient::new(state.channel).get_session(call.request(GetSessionRequest {})).await?;
    Ok(Json(Data { data: SessionView::new(info.into_inner(), call.credential()) }))
}

pub(crate) fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
}

/// Body of `POST /auth/client/start`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientLoginStartBody {
    /// The identity provider's name; empty when exactly one exists.
    #[schema(schema_with = crate::constraints::provider_choice)]
    #[serde(default)]
    provider: String,
    /// The client's loopback listener, `http://127.0.0.1:<port>/…` or `http://[::1]:<port>/…`.
    #[schema(schema_with = crate::constraints::loopback_url)]
    redirect_uri: String,
    /// BASE64URL(SHA-256(verifier)) of the verifier the client keeps.
    #[schema(schema_with = crate::constraints::code_challenge)]
    code_challenge: String,
    /// An opaque value the client gets back with the code.
    #[schema(schema_with = crate::constraints::opaque_state)]
    #[serde(default)]
    state: String,
    /// How the client names itself on the consent page.
    #[schema(schema_with = crate::constraints::client_name)]
    #[serde(default)]
    client_name: String,
}

/// Answer of `POST /auth/client/start`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ClientLoginStartView {
    /// The URL the user opens in a browser.
    login_url: String,
    /// When the sign-in must be finished by.
    #[schema(format = DateTime)]
    expires_at: Option<String>,
}

/// Starts a native client's sign-in in the system browser (RFC 8252): the browser
/// signs in at the identity provider, the user allows the client on GateKey's consent
/// page, and the browser brings a one-time code to the client's loopback listener.
#[utoipa::path(post, operation_id = "auth_client_start", path = "/auth/client/start", tag = "auth", security(()), request_body = ClientLoginStartBody, responses((status = 200, description = "The URL to open", body = Data<ClientLoginStartView>), ErrorResponses))]
pub async fn client_start(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiJson(body): ApiJson<ClientLoginStartBody>,
) -> ApiResult<Json<Data<ClientLoginStartView>>> {
    let request = call.request(StartClientLoginRequest {
        provider: body.provider,
        redirect_uri: body.redirect_uri,
        code_challenge: body.code_challenge,
        state: body.state,
        client_name: body.client_name,
    });
    let started = AuthServiceClient::new(state.channel).start_client_login(request).await?.into_inner();
    let view = ClientLoginStartView { login_url: started.login_url, expires_at: rfc3339(started.expires_at) };
    Ok(Json(Data { data: view }))
}

/// Body of `POST /auth/client/token`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientCodeBody {
    /// The one-time code the browser brought.
    #[schema(schema_with = crate::constraints::one_time_code)]
    code: String,
    /// The verifier whose SHA-256 was the challenge.
    #[schema(schema_with = crate::constraints::code_verifier)]
    code_verifier: String,
}

/// Exchanges a client sign-in's one-time code and verifier for a session (once, within
/// two minutes).
#[utoipa::path(post, operation_id = "auth_client_token", path = "/auth/client/token", tag = "auth", security(()), request_body = ClientCodeBody, responses((status = 200, description = "Signed in", body = Data<LoginView>), ErrorResponses))]
pub async fn client_token(
    State(state): State<FacadeState>,
    call: CoreCall,
    ApiJson(body): ApiJson<ClientCodeBody>,
) -> ApiResult<Json<Data<LoginView>>> {
    let request = call.request(ExchangeClientCodeRequest { code: body.code, code_verifier: body.code_verifier });
    let login = AuthServiceClient::new(state.channel).exchange_client_code(request).await?.into_inner();
    Ok(Json(Data { data: LoginView::from(login) }))
}
