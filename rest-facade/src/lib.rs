//! GateKey REST facade: `/api/v1` over the core's gRPC contract. It parses and
//! validates the HTTP shape, calls the core, and maps the answer; it holds no state,
//! no keys and no business logic. Mount it in-process or run `gatekey-rest`.

mod error;
mod extract;
mod routes;
pub mod telemetry;
mod views;

pub use error::{ApiError, ApiResult};
pub use extract::{MAX_BODY_BYTES, SESSION_COOKIE};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tonic::transport::Channel;
use tower_http::trace::TraceLayer;

/// How the facade behaves.
#[derive(Debug, Clone)]
pub struct FacadeOptions {
    /// Mark the session cookie `Secure` (only plain-HTTP deployments turn this off).
    pub secure_cookies: bool,
}

/// The facade's shared state: a channel to the core and its options.
#[derive(Debug, Clone)]
pub(crate) struct FacadeState {
    channel: Channel,
    options: FacadeOptions,
}

/// The whole REST application, calling the core over `channel`.
pub fn router(channel: Channel, options: FacadeOptions) -> Router {
    Router::new()
        .nest("/api/v1", routes::api_v1())
        .fallback(routes::unknown_path)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http())
        .with_state(FacadeState { channel, options })
}
