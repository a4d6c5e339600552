//! Request extractors: JSON bodies, queries and paths whose failures answer in the
//! seed's error shape, and the caller's credentials forwarded to the core.

use crate::FacadeState;
use crate::cookies;
use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Query, RawPathParams, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum_extra::extract::cookie::CookieJar;
use gatekey::ErrorCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::net::{IpAddr, SocketAddr};
use tonic::metadata::MetadataValue;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// gRPC metadata key of the client address the facade resolved.
const CLIENT_ADDRESS_METADATA: &str = "x-gatekey-client-address";
/// gRPC metadata key of the facade's key.
const FACADE_KEY_METADATA: &str = "x-gatekey-facade-key";

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

/// Deserialises a JSON body, naming the offending field on failure. A member of the
/// body whose value is `null` counts as absent (as the document's nullable optional
/// members say; an unknown one is still refused), and a number with a zero fraction (`3.0`) counts as the integer it
/// equals, as JSON Schema's `integer` says, so clients that write every number as a
/// float are understood.
fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut value: serde_json::Value =
        serde_json::from_slice(body).map_err(|error| ApiError::invalid_request(format!("malformed JSON: {error}")))?;
    if let serde_json::Value::Object(members) = &mut value {
        // A `null` member still has to be one the body knows.
        for key in members.iter().filter(|(_, member)| member.is_null()).map(|(key, _)| key) {
            let alone = serde_json::Value::Object([(key.clone(), serde_json::Value::Null)].into_iter().collect());
            if let Err(error) = serde_json::from_value::<T>(alone)
                && error.to_string().starts_with("unknown field")
            {
                return Err(ApiError::invalid_request(format!("invalid request body: {error}")));
            }
        }
        members.retain(|_, member| !member.is_null());
    }
    integral_floats_to_integers(&mut value);
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.inner();
        let message = if path == "." || path.is_empty() {
            format!("invalid request body: {inner}")
        } else {
            format!("invalid field `{path}`: {inner}")
        };
        ApiError::invalid_request(message)
    })
}

/// Rewrites every float with a zero fraction that fits an integer as that integer.
fn integral_floats_to_integers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(number) if number.is_f64() => {
            let float = number.as_f64().unwrap_or(f64::NAN);
            if float.fract() == 0.0 && float.abs() < 9.0e15 {
                // Exactly representable: |float| < 2^53.
                *number = serde_json::Number::from(float as i64);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_floats_to_integers),
        serde_json::Value::Object(fields) => fields.values_mut().for_each(integral_floats_to_integers),
        _ => {}
    }
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

/// The last page number a list request may ask for (the largest 32-bit signed integer,
/// which every client can write).
const MAX_PAGE: u32 = 2_147_483_647;

/// `?page=` and `?per_page=` of list endpoints.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Page number, from 1.
    #[param(minimum = 1, maximum = 2_147_483_647)]
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
        if !(1..=MAX_PAGE).contains(&page) {
            return Err(ApiError::invalid_request(format!("page: must be between 1 and {MAX_PAGE}")));
        }
        if !(1..=100).contains(&per_page) {
            return Err(ApiError::invalid_request("per_page: must be between 1 and 100"));
        }
        Ok(gatekey::v1::PageRequest { page, per_page })
    }
}

/// The caller's credential and address, to be forwarded to the core as metadata.
/// The `authorization` header wins over the session cookie. The client address is
/// resolved here, at the HTTP edge: the peer, or, when the peer is a trusted proxy, the
/// nearest `X-Forwarded-For` hop that is not one; the core believes it because the
/// facade presents its key with it.
pub struct CoreCall {
    request_id: Option<String>,
    bearer: Option<String>,
    gateway_token: Option<String>,
    client_address: Option<IpAddr>,
    facade_key: Option<String>,
}

impl FromRequestParts<FacadeState> for CoreCall {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &FacadeState) -> Result<Self, ApiError> {
        // An `authorization` header, usable or not, is the credential: the cookie is used
        // only without one (the CSRF rules in `guard` draw the same line).
        let bearer = match parts.headers.get(AUTHORIZATION) {
            Some(header) => header.to_str().ok().map(str::to_owned),
            None => cookies::presented_session(&CookieJar::from_headers(&parts.headers), state.options.secure_cookies)
                .map(|token| format!("Bearer {token}")),
        };
        let gateway_token =
            parts.headers.get(GATEWAY_TOKEN_HEADER).and_then(|value| value.to_str().ok()).map(str::to_owned);
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
        let client_address = peer.map(|peer| resolve_client(peer, &parts.headers, &state.options.trusted_proxies));
        let request_id =
            parts.headers.get(crate::REQUEST_ID_HEADER).and_then(|value| value.to_str().ok()).map(str::to_owned);
        Ok(CoreCall { request_id, bearer, gateway_token, client_address, facade_key: state.options.facade_key.clone() })
    }
}

/// The client behind a request from `peer`: the peer itself unless it is a trusted
/// proxy; then, walking `X-Forwarded-For` from the nearest hop, the first address that
/// is not a trusted proxy (or the farthest, if all are).
fn resolve_client(peer: IpAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |address: &IpAddr| trusted.iter().any(|net| net.contains(address));
    if !is_trusted(&peer) {
        return peer.to_canonical();
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
        .map(|address| address.to_canonical())
        .collect();
    hops.iter().rev().find(|hop| !is_trusted(hop)).or(hops.first()).copied().unwrap_or(peer.to_canonical())
}

impl CoreCall {
    /// The credential the caller presented (a session token or an API key), if any.
    pub fn credential(&self) -> Option<&str> {
        self.bearer.as_deref().and_then(|bearer| bearer.strip_prefix("Bearer "))
    }

    /// A gRPC request carrying `message` and the caller's metadata.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let metadata = request.metadata_mut();
        let mut insert = |key: &'static str, value: Option<&str>| {
            if let Some(value) = value.and_then(|value| MetadataValue::try_from(value).ok()) {
                metadata.insert(key, value);
            }
        };
        insert("authorization", self.bearer.as_deref());
        insert(crate::REQUEST_ID_HEADER, self.request_id.as_deref());
        insert(GATEWAY_TOKEN_HEADER, self.gateway_token.as_deref());
        if let (Some(address), Some(key)) = (self.client_address, self.facade_key.as_deref()) {
            insert(CLIENT_ADDRESS_METADATA, Some(&address.to_string()));
            insert(FACADE_KEY_METADATA, Some(key));
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
    fn the_client_is_the_nearest_untrusted_hop_behind_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["127.0.0.1/32".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.9, 198.51.100.7, 10.1.1.1".parse().unwrap());
        assert_eq!(
            resolve_client(ip("127.0.0.1"), &headers, &trusted),
            ip("198.51.100.7"),
            "spoofed first hop ignored"
        );
        assert_eq!(
            resolve_client(ip("192.0.2.5"), &headers, &trusted),
            ip("192.0.2.5"),
            "an untrusted peer is the client"
        );
        headers.insert("x-forwarded-for", "10.2.2.2, ::ffff:10.1.1.1".parse().unwrap());
        assert_eq!(resolve_client(ip("127.0.0.1"), &headers, &trusted), ip("10.2.2.2"), "all trusted: the farthest");
        headers.remove("x-forwarded-for");
        assert_eq!(resolve_client(ip("127.0.0.1"), &headers, &trusted), ip("127.0.0.1"));
    }

    #[test]
    fn integral_floats_are_integers() {
        #[derive(Debug, Deserialize)]
        struct Counted {
            count: u64,
        }
        assert_eq!(parse_json::<Counted>(br#"{"count": 307.0}"#).unwrap().count, 307);
        assert!(parse_json::<Counted>(br#"{"count": 307.5}"#).is_err());
        assert!(parse_json::<Counted>(br#"{"count": -1.0}"#).is_err());
    }

    #[test]
    fn null_members_are_absent() {
        #[derive(Debug, Deserialize)]
        struct Optional {
            #[serde(default)]
            description: String,
            port: Option<u16>,
            name: String,
            #[serde(default)]
            groups: Vec<String>,
        }
        let parsed = parse_json::<Optional>(br#"{"description": null, "port": null, "name": "a"}"#).unwrap();
        assert_eq!((parsed.description.as_str(), parsed.port, parsed.name.as_str()), ("", None, "a"));
        assert!(parsed.groups.is_empty());
        // A required member is still required, and nulls inside values are still refused.
        assert!(message_of_optional(br#"{"name": null}"#).contains("missing field `name`"));
        assert!(message_of_optional(br#"{"name": "a", "groups": [null]}"#).contains("`groups[0]`"));

        fn message_of_optional(body: &[u8]) -> String {
            format!("{:?}", parse_json::<Optional>(body).unwrap_err())
        }
    }

    #[test]
    fn json_errors_name_the_field() {
        assert!(message_of(r#"{"name": "a", "port": "x"}"#).contains("`port`"));
        assert!(message_of(r#"{"name": "a", "bogus": 1}"#).contains("bogus"));
        assert!(message_of(r#"{"name": "a", "bogus": null}"#).contains("bogus"), "an unknown null member");
        assert!(message_of(r#"{"": null}"#).contains("unknown field"), "an empty, unknown name");
        assert!(message_of(r#"{"port": 1}"#).contains("missing field `name`"));
        assert!(message_of(r#"{"name": "#).contains("malformed JSON"));
    }
}
