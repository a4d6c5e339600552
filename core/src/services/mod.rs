//! The gRPC services: each module orchestrates auth, validation and the store for
//! one part of the contract.

mod api_keys;
mod auth;
mod gateways;
mod networks;
mod pending;
mod users;

pub use api_keys::ApiKeyApi;
pub use auth::AuthApi;
pub use gateways::{AdminGatewayApi, GatewayApi};
pub use networks::AdminNetworkApi;
pub use pending::PendingCapabilities;
pub use users::{AdminUserApi, LOCAL_PROVIDER};

use crate::error::CoreError;
use tonic::{Response, Status};

/// Result type of a gRPC method.
type GrpcResult<T> = Result<Response<T>, Status>;

/// Wraps a core result as a gRPC answer.
fn respond<T>(result: Result<T, CoreError>) -> GrpcResult<T> {
    result.map(Response::new).map_err(Status::from)
}
