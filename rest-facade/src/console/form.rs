//! The console's forms: `application/x-www-form-urlencoded` bodies that must come from
//! this site and carry the session's CSRF token (in the `csrf_token` field, or in
//! `X-CSRF-Token` when htmx sends them), read as name-value pairs so that repeated
//! fields (checkboxes, multiple selects) keep every value.

use super::page::{Nav, Refusal, Viewer, problem};
use crate::FacadeState;
use crate::csrf;
use crate::extract::MAX_BODY_BYTES;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// A form's fields in order.
#[derive(Debug, Default, Clone)]
pub(crate) struct FormData(Vec<(String, String)>);

impl FormData {
    /// Parses a urlencoded body.
    pub fn parse(body: &[u8]) -> Option<FormData> {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(body).ok().map(FormData)
    }

    /// The first value of `name`, or "".
    pub fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(key, _)| key == name).map_or("", |(_, value)| value.as_str())
    }

    /// The first value of `name`, trimmed, or `None` when empty.
    pub fn optional(&self, name: &str) -> Option<String> {
        Some(self.get(name).trim().to_owned()).filter(|value| !value.is_empty())
    }

    /// Every non-empty value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(key, value)| key == name && !value.is_empty()).map(|(_, value)| value.clone()).collect()
    }

    /// A comma-separated list in `name`, trimmed, without empty items.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.get(name).split(',').map(str::trim).filter(|item| !item.is_empty()).map(str::to_owned).collect()
    }

    /// Whether a checkbox `name` is checked.
    pub fn checked(&self, name: &str) -> bool {
        self.0.iter().any(|(key, value)| key == name && value != "false")
    }

    /// A number in `name`; 0 when empty, `Err` naming the field when not a number.
    pub fn number<T: std::str::FromStr + Default>(&self, name: &str) -> Result<T, String> {
        match self.get(name).trim() {
            "" => Ok(T::default()),
            text => text.parse().map_err(|_| format!("{name}: `{text}` is not a number")),
        }
    }
}

/// A form posted by a signed-in viewer from a page of this site, with the session's
/// CSRF token.
pub(crate) struct ConsoleForm {
    /// Who posted it.
    pub viewer: Viewer,
    /// The fields.
    pub data: FormData,
    /// Whether htmx sent it (and swaps the answer in).
    pub from_htmx: bool,
}

/// Reads a form body of at most [`MAX_BODY_BYTES`].
pub(crate) async fn read_form(request: Request, state: &FacadeState) -> Result<(HeaderMap, FormData), Response> {
    let headers = request.headers().clone();
    let body = Bytes::from_request(request, state).await.map_err(IntoResponse::into_response)?;
    if body.len() > MAX_BODY_BYTES {
        return Err(problem(None, StatusCode::PAYLOAD_TOO_LARGE, "Too large", "The form is larger than 64 KiB."));
    }
    let data = FormData::parse(&body).ok_or_else(|| {
        problem(None, StatusCode::BAD_REQUEST, "Not a form", "Send the form as application/x-www-form-urlencoded.")
    })?;
    Ok((headers, data))
}

/// Whether `data` (or the `X-CSRF-Token` header) carries `expected`, from a page of this
/// site.
pub(crate) fn carries_token(state: &FacadeState, headers: &HeaderMap, data: &FormData, expected: &str) -> bool {
    let presented = match headers.get(csrf::HEADER).and_then(|value| value.to_str().ok()) {
        Some(header) => header,
        None => data.get(csrf::FIELD),
    };
    crate::guard::same_site(state, headers).is_ok() && csrf::matches(presented, expected)
}

/// The page for a form that fails the CSRF check.
pub(crate) fn stale_form(nav: Option<Nav>) -> Response {
    problem(
        nav,
        StatusCode::FORBIDDEN,
        "This form cannot be accepted",
        "It did not come from a GateKey page of this session (it may have come from another site, or the page is \
         older than your sign-in). Reload the page and try again.",
    )
}

impl FromRequest<FacadeState> for ConsoleForm {
    type Rejection = Response;

    async fn from_request(request: Request, state: &FacadeState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let viewer = <Viewer as axum::extract::FromRequestParts<FacadeState>>::from_request_parts(&mut parts, state)
            .await
            .map_err(Refusal::into_response)?;
        let (headers, data) = read_form(Request::from_parts(parts, body), state).await?;
        if !carries_token(state, &headers, &data, &viewer.csrf) {
            return Err(stale_form(Some(viewer.nav())));
        }
        Ok(ConsoleForm { viewer, data, from_htmx: super::page::from_htmx(&headers) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_keep_repeated_fields_and_read_lists_and_numbers() {
        let form = FormData::parse(b"user_ids=a&user_ids=b&groups=ops%2C+staff%2C&port=443&admin=on&empty=").unwrap();
        assert_eq!(form.all("user_ids"), ["a", "b"]);
        assert_eq!(form.list("groups"), ["ops", "staff"]);
        assert_eq!(form.number::<u32>("port"), Ok(443));
        assert_eq!(form.number::<u32>("missing"), Ok(0));
        assert!(form.number::<u32>("groups").unwrap_err().starts_with("groups:"));
        assert!(form.checked("admin") && !form.checked("missing"));
        assert_eq!(form.optional("empty"), None);
    }
}
