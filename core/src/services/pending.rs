//! Contract methods of capabilities this build does not contain yet. Each answers
//! `UNIMPLEMENTED` naming the capability, so no client mistakes them for working.

use super::GrpcResult;
use crate::error::CoreError;
use gatekey::v1::*;
use tonic::Request;

/// Answers every method of the capabilities still to be built.
#[derive(Debug, Clone, Copy, Default)]
pub struct PendingCapabilities;

const MESH: &str = "mesh hubs";

/// The answer of a method whose capability is still to be built.
fn pending<T>(capability: &'static str) -> GrpcResult<T> {
    Err(CoreError::NotImplemented(capability).into())
}

macro_rules! pending_service {
    ($service:path, $capability:expr, { $($method:ident($request:ty) -> $response:ty;)* }) => {
        #[tonic::async_trait]
        impl $service for PendingCapabilities {
            $(async fn $method(&self, _: Request<$request>) -> GrpcResult<$response> {
                pending($capability)
            })*
        }
    };
}

pending_service!(mesh_service_server::MeshService, MESH, {
    list_hubs(ListHubsRequest) -> ListHubsResponse;
});

pending_service!(admin_mesh_service_server::AdminMeshService, MESH, {
    list_hubs(ListHubsRequest) -> ListHubsResponse;
    create_hub(MeshHub) -> CreateMeshHubResponse;
    update_hub(MeshHub) -> MeshHub;
    delete_hub(DeleteMeshHubRequest) -> DeleteMeshHubResponse;
    create_spoke(MeshSpoke) -> CreateMeshSpokeResponse;
    delete_spoke(DeleteMeshSpokeRequest) -> DeleteMeshHubResponse;
});
