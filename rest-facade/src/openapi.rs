//! The OpenAPI 3.1 document of `/api/v1`, generated from the handlers' annotations and
//! the request and response types they use (the router and the document are built
//! from the same `routes!` registrations, so they cannot drift).

use crate::FacadeState;
use crate::error::ErrorBody;
use axum::Json;
use std::sync::OnceLock;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Security scheme names used in the handlers' annotations.
pub const SESSION_COOKIE: &str = "session_cookie";
/// Bearer API key or session token.
pub const BEARER: &str = "bearer";
/// Gateway agent token.
pub const GATEWAY_TOKEN: &str = "gateway_token";

/// The error answers every endpoint may give, in the seed's error shape.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only its derived documentation is used.
pub enum ErrorResponses {
    /// Bad input.
    #[response(status = 400, description = "Malformed JSON, unknown or wrong-typed fields, or failed validation")]
    BadRequest(#[to_schema] ErrorBody),
    /// No usable credential.
    #[response(status = 401, description = "No credential, or an invalid, expired or revoked one; or a failed login")]
    Unauthorized(#[to_schema] ErrorBody),
    /// Not allowed.
    #[response(
        status = 403,
        description = "The caller lacks the role or scope, the account is disabled, or a change authenticated by the session cookie alone lacked proof that it came from this site (csrf_rejected)"
    )]
    Forbidden(#[to_schema] ErrorBody),
    /// Unknown resource or path.
    #[response(status = 404, description = "No such resource (or endpoint)")]
    NotFound(#[to_schema] ErrorBody),
    /// Wrong method.
    #[response(status = 405, description = "The path exists but not with this method")]
    MethodNotAllowed(#[to_schema] ErrorBody),
    /// Clash with existing state.
    #[response(status = 409, description = "A duplicate name or another conflict")]
    Conflict(#[to_schema] ErrorBody),
    /// Gone.
    #[response(status = 410, description = "The config was downloaded, purged, revoked or expired")]
    Gone(#[to_schema] ErrorBody),
    /// Rate limited.
    #[response(
        status = 429,
        description = "Rate limited",
        headers(
            ("Retry-After" = u64, description = "Seconds until a retry can succeed"),
            ("X-RateLimit-Limit" = u64, description = "Requests allowed per minute"),
            ("X-RateLimit-Remaining" = u64, description = "Requests left now (0)"),
            ("X-RateLimit-Reset" = u64, description = "Seconds until the next request is allowed"),
        )
    )]
    RateLimited(#[to_schema] ErrorBody),
    /// Server failure.
    #[response(status = 500, description = "An unexpected failure; details are in the server log")]
    Internal(#[to_schema] ErrorBody),
    /// A dependency is down.
    #[response(status = 503, description = "The core or an identity provider is unavailable")]
    Unavailable(#[to_schema] ErrorBody),
}

/// Adds the three security schemes.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            SESSION_COOKIE,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::SESSION_COOKIE,
                "The session cookie set by a login",
            ))),
        );
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key (`gk_…`) or a session token"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            GATEWAY_TOKEN,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Gateway-Token",
                "A gateway agent's token",
            ))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "GateKey API", description = "The GateKey zero-trust VPN control plane's REST API."),
    modifiers(&SecuritySchemes),
    components(schemas(ErrorBody, crate::error::ErrorDetail))
    )]
struct ApiDoc;

/// The whole document.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let router: utoipa_axum::router::OpenApiRouter<FacadeState> =
        utoipa_axum::router::OpenApiRouter::with_openapi(ApiDoc::openapi()).nest("/api/v1", crate::routes::api_v1());
    router.into_openapi()
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta", security(()), responses(
    (status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json", body = Object),
    ErrorResponses
))]
pub async fn openapi_json() -> Json<serde_json::Value> {
    static DOCUMENT: OnceLock<serde_json::Value> = OnceLock::new();
    Json(DOCUMENT.get_or_init(|| serde_json::to_value(openapi_document()).unwrap_or(serde_json::Value::Null)).clone())
}
