//! Rules every `/api/v1` request and answer passes, as a browser-facing API needs them:
//! - no answer is cached (`Cache-Control: no-store` unless a handler chose otherwise):
//!   sign-ins, new API keys and agent tokens, provisioning and profiles carry secrets;
//! - a state-changing request that authenticates with the session cookie alone must
//!   prove it comes from a page of this site: the `X-CSRF-Token` header with the
//!   session's token (see [`crate::csrf`]; sign-ins and `GET /auth/session` hand it
//!   out), an `Origin` matching this site's when one is sent, and no
//!   `Sec-Fetch-Site: cross-site`; a profile download (a `GET` that spends the profile)
//!   riding the cookie must come from this site too. Bearer tokens, API keys and gateway tokens are not
//!   sent by browsers on their own and need no such proof; the SAML ACS takes the
//!   IdP's cross-site POST and authenticates nobody by cookie.

use crate::FacadeState;
use crate::cookies;
use crate::csrf;
use crate::error::ApiError;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, HOST, ORIGIN};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use gatekey::ErrorCode;

/// Paths that take cross-site POSTs by design.
const CROSS_SITE_ENTRY_PREFIX: &str = crate::public_routes::SAML_ACS_PATH;
/// The one `GET` that spends something: a profile's single download.
const DOWNLOAD_PREFIX: &str = crate::public_routes::CONFIG_DOWNLOAD_PATH;

/// Applies the rules in the module header.
pub(crate) async fn browser_rules(State(state): State<FacadeState>, request: Request, next: Next) -> Response {
    if let Err(refusal) = check_cookie_request(&state, request.method(), request.uri(), request.headers()) {
        return with_no_store(refusal.into_response());
    }
    with_no_store(next.run(request).await)
}

fn with_no_store(mut response: Response) -> Response {
    response.headers_mut().entry(CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

fn check_cookie_request(state: &FacadeState, method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<(), ApiError> {
    let unsafe_method = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    let jar = CookieJar::from_headers(headers);
    let session = cookies::presented_session(&jar, state.options.secure_cookies);
    // The cookie is the credential whenever no `Authorization` header is (see `CoreCall`).
    let cookie_only = headers.get(AUTHORIZATION).is_none() && session.is_some();
    if !cookie_only || uri.path().starts_with(CROSS_SITE_ENTRY_PREFIX) {
        return Ok(());
    }
    let refused_download = |why: &str| {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::CsrfRejected,
            format!("a profile download riding the session cookie {why}; follow the download link from this site"),
        ))
    };
    if !unsafe_method {
        // A profile downloads once: a link on another site must not spend it.
        if uri.path().starts_with(DOWNLOAD_PREFIX)
            && let Err(why) = same_site(state, headers)
        {
            return refused_download(why);
        }
        return Ok(());
    }
    let refuse = |why: &str| {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::CsrfRejected,
            format!(
                "a change authenticated by the session cookie {why}; send the session's `X-CSRF-Token` from this site, or use a bearer token"
            ),
        ))
    };
    if let Err(why) = same_site(state, headers) {
        return refuse(why);
    }
    let expected = csrf::session_token(session.as_deref().unwrap_or_default());
    let presented = headers.get(csrf::HEADER).and_then(|value| value.to_str().ok()).unwrap_or_default();
    if !csrf::matches(presented, &expected) {
        return refuse("lacks this session's `X-CSRF-Token`");
    }
    Ok(())
}

/// Whether a browser's request comes from this site, as far as its headers tell:
/// no `Sec-Fetch-Site: cross-site`, and an `Origin` (when sent) equal to `--public-url`'s,
/// or, without one, naming the request's own `Host`. Answers why not.
pub(crate) fn same_site(state: &FacadeState, headers: &HeaderMap) -> Result<(), &'static str> {
    if headers.get("sec-fetch-site").is_some_and(|site| site.as_bytes() == b"cross-site") {
        return Err("came from another site");
    }
    if let Some(origin) = headers.get(ORIGIN) {
        let allowed = match &state.options.public_origin {
            Some(public) => origin.to_str().is_ok_and(|origin| same_origin(origin, public)),
            None => {
                let host = headers.get(HOST).and_then(|host| host.to_str().ok()).unwrap_or_default();
                origin.to_str().ok().and_then(|origin| origin.parse::<Uri>().ok()).is_some_and(|origin| {
                    origin.authority().is_some_and(|authority| authority.as_str().eq_ignore_ascii_case(host))
                })
            }
        };
        if !allowed {
            return Err("came from another origin");
        }
    }
    Ok(())
}

/// The origin (`scheme://host[:port]`, default ports left out) of a URL, lower-cased.
pub(crate) fn origin_of(url: &str) -> Option<String> {
    let uri = url.parse::<Uri>().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let host = uri.host()?.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    Some(match uri.port_u16() {
        Some(port) if port != default_port => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    })
}

fn same_origin(origin: &str, public_origin: &str) -> bool {
    origin_of(origin).is_some_and(|origin| origin == public_origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_without_default_ports_or_case() {
        assert_eq!(origin_of("https://VPN.example.com:443/gatekey").as_deref(), Some("https://vpn.example.com"));
        assert_eq!(origin_of("http://127.0.0.1:8080").as_deref(), Some("http://127.0.0.1:8080"));
        assert!(same_origin("https://vpn.example.com", "https://vpn.example.com"));
        assert!(!same_origin("https://evil.example", "https://vpn.example.com"));
        assert!(!same_origin("null", "https://vpn.example.com"));
        assert!(!same_origin("http://vpn.example.com", "https://vpn.example.com"));
    }
}
