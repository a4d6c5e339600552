//! The facade's cookies, made and read in one place (with `axum-extra`):
//! - `__Host-gatekey_session`: the session token (HttpOnly, SameSite=Lax, path `/`;
//!   the prefix keeps a sibling subdomain from planting its own session in a victim's
//!   browser). A plain-HTTP deployment cannot have the prefix: there it is
//!   `gatekey_session`;
//! - `__Host-gatekey_login`: the secret binding an SSO login to the browser that
//!   started it, gone after ten minutes or at the login's end. The `__Host-` prefix
//!   makes browsers refuse it from a sibling subdomain or over plain HTTP, so no one
//!   can plant their own binding in a victim's browser. A plain-HTTP deployment
//!   (no `Secure` cookies) cannot have the prefix: there it is `gatekey_login`, sent
//!   only to `/api/v1/auth`.
//!
//! Every cookie is `Secure` unless the deployment serves plain HTTP.

use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use time::Duration;

/// Name of the session cookie where cookies are `Secure`.
pub const SESSION_COOKIE: &str = "__Host-gatekey_session";
/// Name of the session cookie on plain HTTP.
const PLAIN_SESSION_COOKIE: &str = "gatekey_session";
/// Name of the login-binding cookie where cookies are `Secure`.
const SECURE_LOGIN_COOKIE: &str = "__Host-gatekey_login";
/// Name of the login-binding cookie on plain HTTP.
const PLAIN_LOGIN_COOKIE: &str = "gatekey_login";
/// Where the plain-HTTP login-binding cookie is sent.
const PLAIN_LOGIN_COOKIE_PATH: &str = "/api/v1/auth";
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

fn session_cookie_name(secure: bool) -> &'static str {
    if secure { SESSION_COOKIE } else { PLAIN_SESSION_COOKIE }
}

/// The session cookie for `token`, living `max_age_seconds`.
pub fn session(token: String, max_age_seconds: i64, secure: bool) -> Cookie<'static> {
    build(session_cookie_name(secure), token, "/", max_age_seconds, secure)
}

/// Clears the session cookie.
pub fn session_cleared(secure: bool) -> Cookie<'static> {
    build(session_cookie_name(secure), String::new(), "/", 0, secure)
}

/// The session token the browser presents, if any (only under this deployment's name:
/// where cookies are `Secure`, a `gatekey_session` planted by a sibling domain is
/// ignored).
pub fn presented_session(jar: &CookieJar, secure: bool) -> Option<String> {
    value(jar, session_cookie_name(secure))
}

fn login_binding_cookie(value: String, max_age_seconds: i64, secure: bool) -> Cookie<'static> {
    match secure {
        true => build(SECURE_LOGIN_COOKIE, value, "/", max_age_seconds, true),
        false => build(PLAIN_LOGIN_COOKIE, value, PLAIN_LOGIN_COOKIE_PATH, max_age_seconds, false),
    }
}

/// The login-binding cookie holding `secret`.
pub fn login_binding(secret: String, secure: bool) -> Cookie<'static> {
    login_binding_cookie(secret, LOGIN_COOKIE_SECONDS, secure)
}

/// Clears the login-binding cookie.
pub fn login_binding_cleared(secure: bool) -> Cookie<'static> {
    login_binding_cookie(String::new(), 0, secure)
}

/// The login binding the browser presents, if any.
pub fn presented_login_binding(jar: &CookieJar, secure: bool) -> Option<String> {
    value(jar, if secure { SECURE_LOGIN_COOKIE } else { PLAIN_LOGIN_COOKIE })
}

/// Name of the sign-in form's CSRF nonce cookie where cookies are `Secure`.
const SECURE_NONCE_COOKIE: &str = "__Host-gatekey_csrf";
/// Name of the sign-in form's CSRF nonce cookie on plain HTTP.
const PLAIN_NONCE_COOKIE: &str = "gatekey_csrf";
/// How long a sign-in page may stay open before its form goes stale.
const NONCE_COOKIE_SECONDS: i64 = 3600;

fn nonce_cookie(value: String, max_age_seconds: i64, secure: bool) -> Cookie<'static> {
    let name = if secure { SECURE_NONCE_COOKIE } else { PLAIN_NONCE_COOKIE };
    let mut cookie = build(name, value, "/", max_age_seconds, secure);
    cookie.set_same_site(SameSite::Strict);
    cookie
}

/// The sign-in form's CSRF nonce (see [`crate::csrf`]).
pub fn login_nonce(nonce: String, secure: bool) -> Cookie<'static> {
    nonce_cookie(nonce, NONCE_COOKIE_SECONDS, secure)
}

/// Clears the sign-in form's nonce (after a sign-in).
pub fn login_nonce_cleared(secure: bool) -> Cookie<'static> {
    nonce_cookie(String::new(), 0, secure)
}

/// The sign-in form's nonce the browser presents, if any.
pub fn presented_login_nonce(jar: &CookieJar, secure: bool) -> Option<String> {
    value(jar, if secure { SECURE_NONCE_COOKIE } else { PLAIN_NONCE_COOKIE })
}

/// A non-empty cookie value from `jar`.
pub fn value(jar: &CookieJar, name: &str) -> Option<String> {
    jar.get(name).map(|cookie| cookie.value().to_owned()).filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_cookie_is_host_only_where_cookies_are_secure() {
        let secure = login_binding("s".into(), true).to_string();
        assert!(secure.starts_with("__Host-gatekey_login=s;"), "{secure}");
        assert!(secure.contains("Path=/;") && secure.contains("Secure") && !secure.contains("Domain"), "{secure}");
        let plain = login_binding("s".into(), false).to_string();
        assert!(plain.starts_with("gatekey_login=s;") && plain.contains("Path=/api/v1/auth"), "{plain}");
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Lax"), "{plain}");
    }

    #[test]
    fn the_session_cookie_is_host_only_where_cookies_are_secure() {
        let secure = session("t".into(), 60, true).to_string();
        assert!(secure.starts_with("__Host-gatekey_session=t;") && secure.contains("Secure"), "{secure}");
        let plain = session("t".into(), 60, false).to_string();
        assert!(plain.starts_with("gatekey_session=t;") && !plain.contains("Secure"), "{plain}");
        let planted = CookieJar::new().add(Cookie::new("gatekey_session", "planted"));
        assert_eq!(presented_session(&planted, true), None, "a cookie without the prefix was believed");
        assert_eq!(presented_session(&planted, false).as_deref(), Some("planted"));
    }
}
