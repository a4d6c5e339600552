//! Contract methods of capabilities this build does not contain yet. Each answers
//! `UNIMPLEMENTED` naming the capability, so no client mistakes them for working.

use super::GrpcResult;
use crate::error::CoreError;
use gatekey::v1::*;
use std::pin::Pin;
use tonic::{Request, Status, Streaming};

/// Answers every method of the capabilities still to be built.
#[derive(Debug, Clone, Copy, Default)]
pub struct PendingCapabilities;

const PKI_AND_CONFIGS: &str = "VPN config generation and the PKI (CA, CRL, revocation)";
const AGENT_STREAM: &str = "the gateway agent interface (heartbeat, verify, rules)";
const ACCESS_RULES: &str = "access-rule administration";
const MESH: &str = "mesh hubs";
const GEO_FENCE: &str = "geo-fencing";
const AUTH_PROVIDERS: &str = "identity-provider administration (OIDC and SAML)";

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

pending_service!(config_service_server::ConfigService, PKI_AND_CONFIGS, {
    generate_config(GenerateConfigRequest) -> GenerateConfigResponse;
    download_config(DownloadConfigRequest) -> DownloadConfigResponse;
    list_my_configs(ListConfigsRequest) -> ListConfigsResponse;
});

pending_service!(admin_config_service_server::AdminConfigService, PKI_AND_CONFIGS, {
    list_configs(ListConfigsRequest) -> ListConfigsResponse;
});

pending_service!(pki_service_server::PkiService, PKI_AND_CONFIGS, {
    get_crl(GetCrlRequest) -> GetCrlResponse;
    check_serial(CheckSerialRequest) -> CheckSerialResponse;
});

pending_service!(admin_pki_service_server::AdminPkiService, PKI_AND_CONFIGS, {
    revoke_certificate(RevokeCertificateRequest) -> CheckSerialResponse;
});

pending_service!(admin_access_rule_service_server::AdminAccessRuleService, ACCESS_RULES, {
    list_access_rules(ListAccessRulesRequest) -> ListAccessRulesResponse;
    create_access_rule(AccessRule) -> AccessRule;
    update_access_rule(AccessRule) -> AccessRule;
    delete_access_rule(DeleteAccessRuleRequest) -> DeleteAccessRuleResponse;
});

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

pending_service!(admin_geo_fence_service_server::AdminGeoFenceService, GEO_FENCE, {
    get_settings(GetGeoFenceSettingsRequest) -> GeoFenceSettings;
    update_settings(GeoFenceSettings) -> GeoFenceSettings;
    list_rules(ListGeoFenceRulesRequest) -> ListGeoFenceRulesResponse;
    create_rule(GeoFenceRule) -> GeoFenceRule;
    update_rule(GeoFenceRule) -> GeoFenceRule;
    delete_rule(DeleteGeoFenceRuleRequest) -> DeleteGeoFenceRuleResponse;
    check(GeoFenceCheckRequest) -> GeoFenceCheckResponse;
});

pending_service!(admin_auth_provider_service_server::AdminAuthProviderService, AUTH_PROVIDERS, {
    list_auth_providers(ListAuthProvidersRequest) -> ListAuthProvidersResponse;
    create_auth_provider(AuthProvider) -> AuthProvider;
    update_auth_provider(AuthProvider) -> AuthProvider;
    delete_auth_provider(DeleteAuthProviderRequest) -> DeleteAuthProviderResponse;
});

/// The stream type of `OpenStream`.
type CoreMessageStream = Pin<Box<dyn futures::Stream<Item = Result<CoreMessage, Status>> + Send>>;

#[tonic::async_trait]
impl gateway_agent_service_server::GatewayAgentService for PendingCapabilities {
    type OpenStreamStream = CoreMessageStream;

    async fn open_stream(&self, _: Request<Streaming<AgentMessage>>) -> GrpcResult<CoreMessageStream> {
        pending(AGENT_STREAM)
    }
    async fn heartbeat(&self, _: Request<HeartbeatRequest>) -> GrpcResult<HeartbeatResponse> {
        pending(AGENT_STREAM)
    }
    async fn verify(&self, _: Request<VerifyRequest>) -> GrpcResult<VerifyResponse> {
        pending(AGENT_STREAM)
    }
    async fn report_connect(&self, _: Request<ClientConnected>) -> GrpcResult<ReportResponse> {
        pending(AGENT_STREAM)
    }
    async fn report_disconnect(&self, _: Request<ClientDisconnected>) -> GrpcResult<ReportResponse> {
        pending(AGENT_STREAM)
    }
    async fn provision(&self, _: Request<ProvisionRequest>) -> GrpcResult<ProvisionResponse> {
        pending(AGENT_STREAM)
    }
    async fn get_client_rules(&self, _: Request<GetClientRulesRequest>) -> GrpcResult<ClientRules> {
        pending(AGENT_STREAM)
    }
    async fn get_all_rules(&self, _: Request<GetAllRulesRequest>) -> GrpcResult<RuleSnapshot> {
        pending(AGENT_STREAM)
    }
}
