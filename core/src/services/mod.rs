//! The gRPC services: each module orchestrates auth, validation and the store for
//! one part of the contract.

mod access_rules;
mod activity;
mod agent;
mod api_keys;
mod auth;
mod auth_providers;
mod configs;
mod gateways;
mod geo_fence;
mod mesh;
mod networks;
mod pki;
mod users;

pub use access_rules::AdminAccessRuleApi;
pub use activity::{AdminActivityApi, AdminVpnSessionApi, VpnSessionApi};
pub use agent::GatewayAgentApi;
pub use api_keys::ApiKeyApi;
pub use auth::AuthApi;
pub use auth_providers::AdminAuthProviderApi;
pub use configs::{AdminConfigApi, ConfigApi};
pub use gateways::{AdminGatewayApi, GatewayApi};
pub use geo_fence::AdminGeoFenceApi;
pub use mesh::{AdminMeshApi, MeshApi, MeshSpokeAgentApi};
pub use networks::AdminNetworkApi;
pub use pki::{AdminPkiApi, PkiApi};
pub use users::{AdminUserApi, LOCAL_PROVIDER};

use crate::error::CoreError;
use tonic::{Response, Status};

/// Result type of a gRPC method.
type GrpcResult<T> = Result<Response<T>, Status>;

/// Wraps a core result as a gRPC answer.
fn respond<T>(result: Result<T, CoreError>) -> GrpcResult<T> {
    result.map(Response::new).map_err(Status::from)
}
