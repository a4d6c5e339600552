//! The sign-in page (local accounts and a button per identity provider), the local
//! sign-in form and signing out. The sign-in form carries a token bound to a random
//! `gatekey_csrf` cookie the page sets, so no other site can sign a browser in.

use super::form::{read_form, stale_form};
use super::page::{Refusal, Viewer, render_with};
use crate::FacadeState;
use crate::cookies;
use crate::csrf;
use crate::extract::CoreCall;
use crate::routes::SignInProviderView;
use askama::Template;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use gatekey::ErrorCode;
use gatekey::v1::auth_service_client::AuthServiceClient;
use gatekey::v1::{ListSignInProvidersRequest, LocalLoginRequest, LogoutRequest};
use serde::Deserialize;

/// The sign-in page.
#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    nav: Option<super::page::Nav>,
    csrf: String,
    providers: Vec<SignInProviderView>,
    problem: Option<String>,
    username: String,
}

/// `?login_error=` on `/`, where a failed single sign-on sends the browser.
#[derive(Debug, Default, Deserialize)]
pub(super) struct SignInQuery {
    #[serde(default)]
    login_error: String,
}

/// What a sign-in error code means, in words.
fn explained(code: &str) -> Option<&'static str> {
    let words = match code {
        "" => return None,
        "invalid_credentials" | "unauthorized" => "The username or password is wrong.",
        "account_disabled" => "This account is disabled. Ask an administrator.",
        "login_failed" => "Signing in with your identity provider failed. Start again from this page.",
        "provider_unavailable" => "The identity provider cannot be reached right now. Try again in a moment.",
        "rate_limited" => "Too many sign-in attempts from your address. Wait a minute and try again.",
        "forbidden" => "Signing in from your location is not allowed.",
        "invalid_request" => "The sign-in request was malformed. Start again from this page.",
        _ => "Signing in failed. Start again from this page.",
    };
    Some(words)
}

/// The sign-in page with a fresh or kept `gatekey_csrf` nonce.
pub(super) async fn page(
    state: &FacadeState,
    jar: CookieJar,
    call: &CoreCall,
    problem: Option<String>,
    username: String,
    status: StatusCode,
) -> Response {
    let secure = state.options.secure_cookies;
    let (jar, nonce) = match cookies::presented_login_nonce(&jar, secure) {
        Some(nonce) => (jar, nonce),
        None => {
            let nonce = csrf::new_nonce();
            (jar.add(cookies::login_nonce(nonce.clone(), secure)), nonce)
        }
    };
    let providers = AuthServiceClient::new(state.channel.clone())
        .list_sign_in_providers(call.request(ListSignInProvidersRequest {}))
        .await
        .map(|listed| listed.into_inner().providers.into_iter().map(SignInProviderView::from).collect())
        .unwrap_or_else(|status| {
            tracing::warn!(%status, "the sign-in page shows no identity providers");
            Vec::new()
        });
    let template = SignInPage { nav: None, csrf: csrf::login_token(&nonce), providers, problem, username };
    (jar, render_with(status, &template)).into_response()
}

/// `/` for someone signed out.
pub(super) async fn signed_out(state: &FacadeState, jar: CookieJar, call: &CoreCall, query: SignInQuery) -> Response {
    let problem = explained(&query.login_error).map(str::to_owned);
    page(state, jar, call, problem, String::new(), StatusCode::OK).await
}

/// `POST /login`: signs a local account in and sends the browser to its portal.
pub(super) async fn local(
    State(state): State<FacadeState>,
    jar: CookieJar,
    call: CoreCall,
    request: Request,
) -> Response {
    let (headers, form) = match read_form(request, &state).await {
        Ok(read) => read,
        Err(refusal) => return refusal,
    };
    let secure = state.options.secure_cookies;
    let expected =
        cookies::presented_login_nonce(&jar, secure).map(|nonce| csrf::login_token(&nonce)).unwrap_or_default();
    if !super::form::carries_token(&state, &headers, &form, &expected) {
        return stale_form(None);
    }
    let username = form.get("username").to_owned();
    let request =
        call.request(LocalLoginRequest { username: username.clone(), password: form.get("password").to_owned() });
    match AuthServiceClient::new(state.channel.clone()).local_login(request).await {
        Ok(login) => {
            let login = login.into_inner();
            let max_age = login.expires_at.map_or(0, |at| at.seconds - crate::routes::now_seconds());
            let jar = CookieJar::new()
                .add(cookies::session(login.session_token, max_age, secure))
                .add(cookies::login_nonce_cleared(secure));
            (jar, Redirect::to("/")).into_response()
        }
        Err(status) => {
            let error = crate::error::ApiError::from(status);
            let words = match error.code() {
                ErrorCode::InvalidRequest => error.message().to_owned(),
                code => explained(code.as_str()).unwrap_or_default().to_owned(),
            };
            page(&state, jar, &call, Some(words), username, error.status()).await
        }
    }
}

/// `POST /logout`: ends the session at the core and clears the cookie.
pub(super) async fn logout(State(state): State<FacadeState>, form: super::form::ConsoleForm) -> Response {
    let ended = AuthServiceClient::new(state.channel.clone()).logout(form.viewer.call.request(LogoutRequest {})).await;
    if let Err(status) = ended {
        return form.viewer.failed(status).into_response();
    }
    let jar = CookieJar::new().add(cookies::session_cleared(state.options.secure_cookies));
    (jar, Redirect::to("/")).into_response()
}

/// Renders the sign-in page for a viewer whose session the core refused, or `Err`.
pub(super) fn signed_in_viewer(viewer: Result<Viewer, Refusal>) -> Result<Option<Viewer>, Refusal> {
    match viewer {
        Ok(viewer) => Ok(Some(viewer)),
        Err(Refusal::SignedOut { .. }) => Ok(None),
        Err(refusal) => Err(refusal),
    }
}
