//! GateKey REST facade: `/api/v1` over the core's gRPC contract. It parses and
//! validates the HTTP shape, calls the core, and maps the answer; it holds no state,
//! no keys and no business logic. Mount it in-process or run `gatekey-rest`.

mod console;
mod constraints;
mod cookies;
pub mod core_nodes;
mod csrf;
mod error;
mod extract;
mod guard;
mod openapi;
pub mod public_routes;
mod routes;
mod views;

pub use cookies::SESSION_COOKIE;
pub use error::{ApiError, ApiResult};
pub use extract::MAX_BODY_BYTES;
pub use openapi::openapi_document;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderName;
use tonic::transport::Channel;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// Header carrying a request's id from client to facade to core and back.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// How the facade behaves.
#[derive(Clone)]
pub struct FacadeOptions {
    /// Mark the session cookie `Secure` (only plain-HTTP deployments turn this off).
    pub secure_cookies: bool,
    /// The origin browsers reach the facade at (`https://vpn.example.com`), which
    /// cookie-authenticated changes must come from; `None` compares with `Host`.
    pub public_origin: Option<String>,
    /// Peers (reverse proxies) whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The key that makes the core believe the client addresses this facade resolves.
    pub facade_key: Option<String>,
}

impl std::fmt::Debug for FacadeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FacadeOptions")
            .field("secure_cookies", &self.secure_cookies)
            .field("public_origin", &self.public_origin)
            .field("trusted_proxies", &self.trusted_proxies)
            .finish_non_exhaustive()
    }
}

impl FacadeOptions {
    /// Options for a facade browsers reach at `public_url` (any path is ignored), behind
    /// reverse proxies on this host only, with no facade key.
    pub fn new(secure_cookies: bool, public_url: Option<&str>) -> Self {
        let loopback = ["127.0.0.1/32", "::1/128"].iter().filter_map(|net| net.parse().ok()).collect();
        FacadeOptions {
            secure_cookies,
            public_origin: public_url.and_then(guard::origin_of),
            trusted_proxies: loopback,
            facade_key: None,
        }
    }
}

/// The facade's shared state: a channel to the core and its options.
#[derive(Debug, Clone)]
pub(crate) struct FacadeState {
    channel: Channel,
    options: FacadeOptions,
}

/// The whole REST application, calling the core over `channel`.
pub fn router(channel: Channel, options: FacadeOptions) -> Router {
    // Every request gets an `x-request-id` (kept if the client sent one), which is
    // logged here, forwarded to the core, and returned to the client.
    let request_id = HeaderName::from_static(REQUEST_ID_HEADER);
    let (api, _) = utoipa_axum::router::OpenApiRouter::new().nest("/api/v1", routes::api_v1()).split_for_parts();
    let state = FacadeState { channel, options };
    let api = api
        .method_not_allowed_fallback(routes::wrong_method)
        .fallback(routes::unknown_path)
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard::browser_rules));
    console::router()
        .merge(api)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
            let id = request.headers().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("http", method = %request.method(), path = %request.uri().path(), request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}
