//! Request extractors: JSON bodies, queries and paths whose failures answer in the
//! seed's error shape, and the caller's credentials forwarded to the core.

use crate::cookies::{self, SESSION_COOKIE};
use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Query, RawPathParams, Request};
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum_extra::extract::cookie::CookieJar;
use gatekey::ErrorCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use tonic::metadata::MetadataValue;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Header (and gRPC metadata key) carrying a gateway agent's token.
pub const GATEWAY_TOKEN_HEADER: &str = "x-gateway-token";

/// A JSON body; malformed JSON, wrong types and unknown fields are 400s naming the field.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ApiError::invalid_request(
                "the request body must be JSON with `Content-Type: application/json`",
            ));
        }
        let body = Bytes::from_request(request, state).await.map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::BodyTooLarge,
                format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
            )
        })?;
        parse_json(&body).map(ApiJson)
    }
}

/// Deserialises a JSON body, naming the offending field on failure.
fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.inner();
        let message = if inner.is_syntax() || inner.is_eof() {
            format!("malformed JSON: {inner}")
        } else if path == "." || path.is_empty() {
            format!("invalid request body: {inner}")
        } else {
            format!("invalid field `{path}`: {inner}")
        };
        ApiError::invalid_request(message)
    })
}

/// A query string; bad values are 400s naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection: QueryRejection| ApiError::invalid_request(rejection.body_text()))
    }
}

/// Path parameters; undecodable ones, and ones holding control characters (which no
/// id or name may hold, on any backend), are 400s naming the parameter.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::invalid_request(rejection.body_text()))?;
        if let Some((name, _)) = raw.iter().find(|(_, value)| value.chars().any(char::is_control)) {
            return Err(ApiError::invalid_request(format!("{name}: must not contain control characters")));
        }
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ApiPath(value))
            .map_err(|rejection: PathRejection| ApiError::invalid_request(rejection.body_text()))
    }
}

/// `?page=` and `?per_page=` of list endpoints.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Page number, from 1.
    #[param(minimum = 1)]
    pub page: Option<u32>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<u32>,
}

impl PageQuery {
    /// The contract's page request, after checking the bounds.
    pub fn into_request(self) -> Result<gatekey::v1::PageRequest, ApiError> {
        let page = self.page.unwrap_or(1);
        let per_page = self.per_page.unwrap_or(20);
        if page == 0 {
            return Err(ApiError::invalid_request("page: must be 1 or more"));
        }
        if !(1..=100).contains(&per_page) {
            return Err(ApiError::invalid_request("per_page: must be between 1 and 100"));
        }
        Ok(gatekey::v1::PageRequest { page, per_page })
    }
}

/// The caller's credential and address, to be forwarded to the core as metadata.
/// The `authorization` header wins over the session cookie.
pub struct CoreCall {
    request_id: Option<String>,
    bearer: Option<String>,
    gateway_token: Option<String>,
    client_address: Option<SocketAddr>,
}

impl<S: Send + Sync> FromRequestParts<S> for CoreCall {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        // An `authorization` header, usable or not, is the credential: the cookie is used
        // only without one (the CSRF rules in `guard` draw the same line).
        let bearer = match parts.headers.get(AUTHORIZATION) {
            Some(header) => header.to_str().ok().map(str::to_owned),
            None => cookies::value(&CookieJar::from_headers(&parts.headers), SESSION_COOKIE)
                .map(|token| format!("Bearer {token}")),
        };
        let gateway_token =
            parts.headers.get(GATEWAY_TOKEN_HEADER).and_then(|value| value.to_str().ok()).map(str::to_owned);
        let client_address = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0);
        let request_id =
            parts.headers.get(crate::REQUEST_ID_HEADER).and_then(|value| value.to_str().ok()).map(str::to_owned);
        Ok(CoreCall { request_id, bearer, gateway_token, client_address })
    }
}

impl CoreCall {
    /// A gRPC request carrying `message` and the caller's metadata.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let metadata = request.metadata_mut();
        if let Some(value) = self.bearer.as_deref().and_then(|b| MetadataValue::try_from(b).ok()) {
            metadata.insert("authorization", value);
        }
        if let Some(value) = self.request_id.as_deref().and_then(|id| MetadataValue::try_from(id).ok()) {
            metadata.insert(crate::REQUEST_ID_HEADER, value);
        }
        if let Some(value) = self.gateway_token.as_deref().and_then(|t| MetadataValue::try_from(t).ok()) {
            metadata.insert(GATEWAY_TOKEN_HEADER, value);
        }
        if let Some(value) = self.client_address.and_then(|a| MetadataValue::try_from(a.ip().to_string()).ok()) {
            metadata.insert("x-forwarded-for", value);
        }
        request
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        port: Option<u16>,
    }

    fn message_of(body: &str) -> String {
        let error = parse_json::<Body>(body.as_bytes()).unwrap_err();
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        format!("{error:?}")
    }

    #[test]
    fn json_errors_name_the_field() {
        assert!(message_of(r#"{"name": "a", "port": "x"}"#).contains("`port`"));
        assert!(message_of(r#"{"name": "a", "bogus": 1}"#).contains("bogus"));
        assert!(message_of(r#"{"port": 1}"#).contains("missing field `name`"));
        assert!(message_of(r#"{"name": "#).contains("malformed JSON"));
    }
}
