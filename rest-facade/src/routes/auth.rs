//! `/auth/*`: local sign-in, sign-out and the current session.

use crate::FacadeState;
use crate::cookies;
use crate::error::ApiResult;
use crate::extract::{ApiJson, CoreCall};
use crate::openapi::ErrorResponses;
use crate::views::{Data, LoginView, SessionView};
use axum::Json;
use axum::extract::State;
use axum_extra::extract::cookie::CookieJar;
use gatekey::v1::auth_service_client::AuthServiceClient;
use gatekey::v1::{GetSessionRequest, LocalLoginRequest, LogoutRequest};
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
