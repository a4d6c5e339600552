//! The OpenAPI 3.1 document of `/api/v1`, generated from the handlers' annotations and
//! the request and response types they use (the router and the document are built
//! from the same `routes!` registrations, so they cannot drift).

use crate::FacadeState;
use crate::constraints;
use crate::error::ErrorBody;
use axum::Json;
use serde_json::{Value, json};
use std::collections::HashSet;
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
                "The session cookie set by a login (`gatekey_session` where the core serves plain HTTP with `--plain-http-cookies`)",
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

/// The whole document: the handlers' annotations, refined with what they cannot say.
pub fn openapi_document() -> serde_json::Value {
    let router: utoipa_axum::router::OpenApiRouter<FacadeState> =
        utoipa_axum::router::OpenApiRouter::with_openapi(ApiDoc::openapi()).nest("/api/v1", crate::routes::api_v1());
    let mut document = serde_json::to_value(router.into_openapi()).unwrap_or_default();
    constrain_path_parameters(&mut document);
    let bodies = request_body_schemas(&document);
    if let Some(schemas) = document.pointer_mut("/components/schemas").and_then(Value::as_object_mut) {
        for (name, schema) in schemas.iter_mut().filter(|(name, _)| bodies.contains(name.as_str())) {
            nullable_optional_members(schema);
            if let Some(rules) = constraints::cross_field_rules(name) {
                schema["allOf"] = rules;
            }
        }
    }
    document
}

/// Gives every path parameter the shape the core accepts, by its name: ids, group
/// names, provider names and certificate serials.
fn constrain_path_parameters(document: &mut Value) {
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else { return };
    let operations = paths.values_mut().filter_map(Value::as_object_mut).flat_map(|item| item.values_mut());
    let parameters = operations.filter_map(|operation| operation.get_mut("parameters")?.as_array_mut()).flatten();
    for parameter in parameters.filter(|parameter| parameter["in"] == "path") {
        let shape = match parameter["name"].as_str() {
            Some("group") => constraints::group(),
            Some("provider") => constraints::name(),
            Some("serial") => constraints::serial(),
            _ => constraints::id(),
        };
        parameter["schema"] = serde_json::to_value(shape).unwrap_or_default();
    }
}

/// The names of the component schemas that are request bodies.
fn request_body_schemas(document: &Value) -> HashSet<String> {
    let Some(paths) = document.get("paths").and_then(Value::as_object) else { return HashSet::new() };
    let operations = paths.values().filter_map(Value::as_object).flat_map(|item| item.values());
    let contents = operations.filter_map(|operation| operation.pointer("/requestBody/content")?.as_object()).flatten();
    let references = contents.filter_map(|(_, content)| content.pointer("/schema/$ref")?.as_str());
    references.filter_map(|reference| reference.strip_prefix("#/components/schemas/")).map(str::to_owned).collect()
}

/// Lets every optional member of a request body be `null`, which the facade reads as
/// absent.
fn nullable_optional_members(schema: &mut Value) {
    let required: HashSet<String> = schema["required"]
        .as_array()
        .map(|names| names.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    let Some(members) = schema.get_mut("properties").and_then(Value::as_object_mut) else { return };
    for member in members.iter_mut().filter(|(name, _)| !required.contains(name.as_str())).map(|(_, member)| member) {
        if !allows_null(member) {
            // Annotations stay with the member; the shape becomes one of two.
            let annotations: Vec<_> = ["description", "default"]
                .into_iter()
                .filter_map(|key| Some((key, member.as_object_mut()?.remove(key)?)))
                .collect();
            let mut nullable = json!({"oneOf": [member.take(), {"type": "null"}]});
            for (key, value) in annotations {
                nullable[key] = value;
            }
            *member = nullable;
        }
    }
}

/// Whether a schema already admits `null`.
fn allows_null(schema: &Value) -> bool {
    let null_type = |types: &Value| match types {
        Value::String(name) => name == "null",
        Value::Array(names) => names.iter().any(|name| name == "null"),
        _ => false,
    };
    null_type(&schema["type"])
        || ["oneOf", "anyOf"]
            .iter()
            .filter_map(|keyword| schema[keyword].as_array())
            .any(|alternatives| alternatives.iter().any(allows_null))
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta", security(()), responses(
    (status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json", body = Object),
    ErrorResponses
))]
pub async fn openapi_json() -> Json<serde_json::Value> {
    static DOCUMENT: OnceLock<serde_json::Value> = OnceLock::new();
    Json(DOCUMENT.get_or_init(openapi_document).clone())
}
