//! The facade's cookies, made and read in one place (with `axum-extra`):
//! - `gatekey_session`: the session token (HttpOnly, SameSite=Lax, path `/`);
//! - `gatekey_login`: the secret binding an SSO login to the browser that started it,
//!   sent only to `/api/v1/auth` and gone after ten minutes or at the login's end.
//!
//! Every cookie is `Secure` unless the deployment serves plain HTTP.

use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use time::Duration;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "gatekey_session";
/// Name of the login-binding cookie.
pub const LOGIN_COOKIE: &str = "gatekey_login";
/// Where the login-binding cookie is sent.
const LOGIN_COOKIE_PATH: &str = "/api/v1/auth";
/// How long a login may take, as the core keeps its state.
const LOGIN_COOKIE_SECONDS: i64 = 600;

fn build(name: &'static str, value: String, path: &'static str, max_age_seconds: i64, secure: bool) -> Cookie<'static> {
    Cookie::build((name, value))
        .path(path)
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(Duration::seconds(max_age_seconds.max(0)))
        .build()
}

/// The session cookie for `token`, living `max_age_seconds`.
pub fn session(token: String, max_age_seconds: i64, secure: bool) -> Cookie<'static> {
    build(SESSION_COOKIE, token, "/", max_age_seconds, secure)
}

/// Clears the session cookie.
pub fn session_cleared(secure: bool) -> Cookie<'static> {
    build(SESSION_COOKIE, String::new(), "/", 0, secure)
}

/// The login-binding cookie holding `secret`.
pub fn login_binding(secret: String, secure: bool) -> Cookie<'static> {
    build(LOGIN_COOKIE, secret, LOGIN_COOKIE_PATH, LOGIN_COOKIE_SECONDS, secure)
}

/// Clears the login-binding cookie.
pub fn login_binding_cleared(secure: bool) -> Cookie<'static> {
    build(LOGIN_COOKIE, String::new(), LOGIN_COOKIE_PATH, 0, secure)
}

/// A non-empty cookie value from `jar`.
pub fn value(jar: &CookieJar, name: &str) -> Option<String> {
    jar.get(name).map(|cookie| cookie.value().to_owned()).filter(|value| !value.is_empty())
}
