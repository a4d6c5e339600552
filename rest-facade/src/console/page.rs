//! What every console page shares: who is looking (from the session cookie, as the
//! core says), the navigation, rendering a template into a response, and the pages
//! for refusals and failures.

use crate::FacadeState;
use crate::csrf;
use crate::error::ApiError;
use crate::extract::CoreCall;
use askama::Template;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use gatekey::v1::GetSessionRequest;
use gatekey::v1::auth_service_client::AuthServiceClient;
use std::collections::BTreeMap;

/// The signed-in person looking at a page, as the core knows them.
pub(crate) struct Viewer {
    /// The user.
    pub user: gatekey::v1::User,
    /// The credential, forwarded on every call the page makes.
    pub call: CoreCall,
    /// The token the page's forms carry.
    pub csrf: String,
    /// The path of the page, for the navigation.
    pub path: String,
}

/// A signed-in administrator looking at a page. The core checks the role again on
/// every call; this only spares others pages they cannot use.
pub(crate) struct AdminViewer(pub Viewer);

/// Why a page is not shown.
pub(crate) enum Refusal {
    /// No session: off to the sign-in page (a whole page load when htmx asked).
    SignedOut {
        /// Whether htmx made the request.
        htmx: bool,
    },
    /// A signed-in user who is not an administrator.
    NotAdmin(Box<Nav>),
    /// The core failed or refused in a way the page cannot show in place.
    Failed(Box<(Option<Nav>, ApiError)>),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::SignedOut { htmx: false } => Redirect::to("/").into_response(),
            Refusal::SignedOut { htmx: true } => ([("hx-redirect", "/")], StatusCode::OK).into_response(),
            Refusal::NotAdmin(nav) => problem(
                Some(*nav),
                StatusCode::FORBIDDEN,
                "Administrators only",
                "This page is for GateKey administrators. Ask one if you need something changed.",
            ),
            Refusal::Failed(failed) => failure(failed.0, &failed.1),
        }
    }
}

/// A page for a failed call: its status, and the core's words.
pub(crate) fn failure(nav: Option<Nav>, error: &ApiError) -> Response {
    let title = match error.status() {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::GONE => "No longer available",
        StatusCode::TOO_MANY_REQUESTS => "Too many requests",
        status if status.is_server_error() => "Something went wrong",
        _ => "That did not work",
    };
    problem(nav, error.status(), title, error.message())
}

/// The page that explains a problem.
#[derive(Template)]
#[template(path = "problem.html")]
struct ProblemPage<'a> {
    nav: Option<Nav>,
    title: &'a str,
    message: &'a str,
}

/// A problem page with `status`.
pub(crate) fn problem(nav: Option<Nav>, status: StatusCode, title: &str, message: &str) -> Response {
    render_with(status, &ProblemPage { nav, title, message })
}

/// The page that asks before something is deleted (works without JavaScript).
#[derive(Template)]
#[template(path = "confirm.html")]
pub(crate) struct ConfirmPage {
    /// The navigation.
    pub nav: Option<Nav>,
    /// The token of the form.
    pub csrf: String,
    /// What is deleted, e.g. "the gateway `office-gw`".
    pub what: String,
    /// What deleting it does.
    pub consequences: String,
    /// Where the form posts.
    pub action: String,
    /// Where "Cancel" goes.
    pub back: String,
}

/// Renders a page (200).
pub(crate) fn render(template: &impl Template) -> Response {
    render_with(StatusCode::OK, template)
}

/// Renders a form page: 200 without errors, else the status of the error (400, 409).
pub(crate) fn render_form(errors: &FieldErrors, status: StatusCode, template: &impl Template) -> Response {
    render_with(if errors.any() { status } else { StatusCode::OK }, template)
}

/// Renders a page with `status`.
pub(crate) fn render_with(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, "a console template failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered").into_response()
        }
    }
}

/// The navigation bar and what forms need: who is signed in and the CSRF token.
#[derive(Debug, Clone)]
pub(crate) struct Nav {
    /// The user's name.
    pub username: String,
    /// Whether admin links show.
    pub is_admin: bool,
    /// The token the forms carry.
    pub csrf: String,
    /// The current path, to mark the current link.
    pub path: String,
}

impl Nav {
    /// Whether `prefix` is the current section (for `aria-current`).
    pub fn current(&self, prefix: &str) -> bool {
        match prefix {
            "/" => self.path == "/",
            "/admin" => self.path == "/admin",
            _ => self.path.starts_with(prefix),
        }
    }

    /// The header htmx sends with every request of the page.
    pub fn htmx_headers(&self) -> String {
        format!(r#"{{"X-CSRF-Token": "{}"}}"#, self.csrf)
    }
}

impl Viewer {
    /// The navigation for this viewer.
    pub fn nav(&self) -> Nav {
        Nav {
            username: self.user.username.clone(),
            is_admin: self.user.is_admin,
            csrf: self.csrf.clone(),
            path: self.path.clone(),
        }
    }

    /// After a change: on to `to` (Post/Redirect/Get), or the failure page.
    pub fn then_to<T>(&self, outcome: Result<T, tonic::Status>, to: &str) -> Response {
        match outcome {
            Ok(_) => Redirect::to(to).into_response(),
            Err(status) => self.failed(status).into_response(),
        }
    }

    /// The failure page for an error of a call this viewer made.
    pub fn failed(&self, error: impl Into<ApiError>) -> Refusal {
        Refusal::Failed(Box::new((Some(self.nav()), error.into())))
    }
}

impl FromRequestParts<FacadeState> for Viewer {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &FacadeState) -> Result<Self, Refusal> {
        let call = CoreCall::from_request_parts(parts, state)
            .await
            .map_err(|error| Refusal::Failed(Box::new((None, error))))?;
        let signed_out = Refusal::SignedOut { htmx: from_htmx(&parts.headers) };
        let Some(credential) = call.credential().map(str::to_owned) else {
            return Err(signed_out);
        };
        let info = AuthServiceClient::new(state.channel.clone()).get_session(call.request(GetSessionRequest {})).await;
        let user = match info {
            Ok(info) => info.into_inner().user.ok_or(signed_out)?,
            Err(status) if status.code() == tonic::Code::Unauthenticated => return Err(signed_out),
            Err(status) => return Err(Refusal::Failed(Box::new((None, status.into())))),
        };
        Ok(Viewer { user, call, csrf: csrf::session_token(&credential), path: parts.uri.path().to_owned() })
    }
}

impl FromRequestParts<FacadeState> for AdminViewer {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &FacadeState) -> Result<Self, Refusal> {
        let viewer = Viewer::from_request_parts(parts, state).await?;
        if !viewer.user.is_admin {
            return Err(Refusal::NotAdmin(Box::new(viewer.nav())));
        }
        Ok(AdminViewer(viewer))
    }
}

/// Whether htmx made the request (it then swaps the answer into the page).
pub(crate) fn from_htmx(headers: &HeaderMap) -> bool {
    headers.contains_key("hx-request")
}

/// Errors of a form, by the field they name (the core's messages start `field: …`),
/// and those that name none.
#[derive(Debug, Default, Clone)]
pub(crate) struct FieldErrors {
    by_field: BTreeMap<String, String>,
    /// What names no field.
    pub general: Option<String>,
}

impl FieldErrors {
    /// No errors.
    pub fn none() -> Self {
        FieldErrors::default()
    }

    /// The error of `field`, if it has one.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.by_field.get(field).map(String::as_str)
    }

    /// Whether there is any error.
    pub fn any(&self) -> bool {
        self.general.is_some() || !self.by_field.is_empty()
    }
}

impl From<&ApiError> for FieldErrors {
    fn from(error: &ApiError) -> Self {
        let message = error.message();
        let named = message
            .split_once(": ")
            .filter(|(field, _)| !field.is_empty() && field.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        match named {
            Some((field, problem)) => {
                FieldErrors { by_field: BTreeMap::from([(field.to_owned(), capitalised(problem))]), general: None }
            }
            None => FieldErrors { by_field: BTreeMap::new(), general: Some(capitalised(message)) },
        }
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// A time as the console shows it: RFC 3339 (the browser shows it in local time), or
/// "" for none.
pub(crate) fn at(timestamp: Option<prost_types::Timestamp>) -> String {
    crate::views::rfc3339(timestamp).unwrap_or_default()
}

/// A byte count in binary units.
pub(crate) fn bytes(count: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = count as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{count} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_attach_to_the_field_they_name() {
        let named = FieldErrors::from(&ApiError::invalid_request("name: must be 1 to 64 characters"));
        assert_eq!(named.get("name"), Some("Must be 1 to 64 characters"));
        assert!(named.general.is_none() && named.any());
        let general = FieldErrors::from(&ApiError::invalid_request("a rule needs a user or a group: give one"));
        assert_eq!(general.general.as_deref(), Some("A rule needs a user or a group: give one"));
        assert!(FieldErrors::none().get("name").is_none() && !FieldErrors::none().any());
    }

    #[test]
    fn byte_counts_read_in_binary_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(65_536), "64.0 KiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024 / 2), "1.5 GiB");
    }
}
