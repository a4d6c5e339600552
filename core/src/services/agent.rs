//! `GatewayAgentService`: what gateway agents call with their `x-gateway-token`.
//! Provisioning works; the stream, heartbeat, verify and rules come with the
//! gateway-agent capability.

use super::pending::{AGENT_STREAM, pending};
use super::{GrpcResult, respond};
use crate::context::CoreContext;
use crate::pki::CertificatePurpose;
use crate::pki::lifecycle::{current_crl, gateway_tls_crypt_key};
use crate::store::{CertificateRecord, unix_now};
use gatekey::v1::gateway_agent_service_server::GatewayAgentService;
use gatekey::v1::*;
use std::pin::Pin;
use std::sync::Arc;
use tonic::{Request, Status, Streaming};

/// Implements `GatewayAgentService`.
#[derive(Debug, Clone)]
pub struct GatewayAgentApi(pub Arc<CoreContext>);

/// The stream type of `OpenStream`.
type CoreMessageStream = Pin<Box<dyn futures::Stream<Item = Result<CoreMessage, Status>> + Send>>;

#[tonic::async_trait]
impl GatewayAgentService for GatewayAgentApi {
    type OpenStreamStream = CoreMessageStream;

    async fn provision(&self, request: Request<ProvisionRequest>) -> GrpcResult<ProvisionResponse> {
        respond(
            async {
                let context = &self.0;
                let gateway = context.auth.authenticate_gateway(&request).await?;
                let issued = context.authority.issue(
                    &CertificatePurpose::Server { hostname: gateway.hostname.clone() },
                    context.settings.server_certificate_ttl_seconds,
                )?;
                context
                    .store
                    .record_certificate(&CertificateRecord {
                        serial: issued.serial.clone(),
                        kind: "server".into(),
                        subject: gateway.hostname.clone(),
                        user_id: None,
                        gateway_id: Some(gateway.id.clone()),
                        issued_at: unix_now(),
                        expires_at: issued.not_after,
                        revoked_at: None,
                        revocation_reason: None,
                    })
                    .await?;
                let tls_crypt_key = gateway_tls_crypt_key(&context.store, &context.sealer, &gateway.id).await?;
                let crl = current_crl(&context.store, &context.authority).await?;
                tracing::info!(gateway = %gateway.id, serial = %issued.serial, "provisioned gateway");
                Ok(ProvisionResponse {
                    gateway_id: gateway.id,
                    ca_certificate_pem: context.authority.certificate_pem().to_owned(),
                    server_certificate_pem: issued.certificate_pem,
                    server_private_key_pem: issued.private_key_pem,
                    tls_crypt_key,
                    vpn_subnet: gateway.vpn_subnet,
                    port: u32::from(gateway.port),
                    protocol: gateway.protocol,
                    crl_pem: crl.signed.pem,
                    config_version: u64::try_from(gateway.updated_at).unwrap_or(0),
                })
            }
            .await,
        )
    }

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
    async fn get_client_rules(&self, _: Request<GetClientRulesRequest>) -> GrpcResult<ClientRules> {
        pending(AGENT_STREAM)
    }
    async fn get_all_rules(&self, _: Request<GetAllRulesRequest>) -> GrpcResult<RuleSnapshot> {
        pending(AGENT_STREAM)
    }
}
