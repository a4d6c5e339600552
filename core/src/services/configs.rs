//! `ConfigService` (generate, download, list own) and `AdminConfigService`.

use super::{GrpcResult, respond};
use crate::auth::{Access, client_address};
use crate::context::CoreContext;
use crate::convert;
use crate::domain::{CertificateKind, UnitOfWork, VpnProtocol};
use crate::error::{CoreError, CoreResult};
use crate::ids::{IdKind, new_id};
use crate::ovpn::{ClientProfile, render_client_profile};
use crate::pki::CertificatePurpose;
use crate::pki::lifecycle::gateway_tls_crypt_key;
use crate::store::{CertificateRecord, NewConfig, unix_now};
use crate::validate;
use gatekey::ErrorCode;
use gatekey::v1::admin_config_service_server::AdminConfigService;
use gatekey::v1::config_service_server::ConfigService;
use gatekey::v1::{ConfigIssued, event};
use gatekey::v1::{
    DownloadConfigRequest, DownloadConfigResponse, GenerateConfigRequest, GenerateConfigResponse, ListConfigsRequest,
    ListConfigsResponse,
};
use std::sync::Arc;
use tonic::Request;

/// Implements `ConfigService`.
#[derive(Debug, Clone)]
pub struct ConfigApi(pub Arc<CoreContext>);

/// Implements `AdminConfigService`.
#[derive(Debug, Clone)]
pub struct AdminConfigApi(pub Arc<CoreContext>);

impl ConfigApi {
    async fn generate(
        &self,
        user: &crate::store::UserRecord,
        input: GenerateConfigRequest,
    ) -> CoreResult<GenerateConfigResponse> {
        let context = &self.0;
        let protocol = match input.protocol.as_str() {
            "" => VpnProtocol::OpenVpn,
            word => VpnProtocol::parse_field("protocol", word)?,
        };
        // A hub's id works too: users connect to hubs like to gateways.
        let gateway_id = validate::id("gateway_id", &input.gateway_id)?;
        let gateway = context.store.require_gateway(gateway_id).await?;
        let noun = gateway.role.as_str();
        if !gateway.is_active {
            return Err(CoreError::Forbidden(format!("{noun} `{}` is deactivated", gateway.name)));
        }
        if !context.store.gateway_granted_to(&user.id, gateway_id).await? {
            return Err(CoreError::Forbidden(format!("you have not been granted {noun} `{}`", gateway.name)));
        }
        let tls_crypt_key = gateway_tls_crypt_key(&context.store, &context.sealer, gateway_id).await?;
        let issued = context.authority.issue(
            &CertificatePurpose::Client { email: user.email.clone() },
            context.settings.client_certificate_ttl_seconds,
        )?;
        let profile = render_client_profile(&ClientProfile {
            hostname: &gateway.hostname,
            port: gateway.port,
            protocol: gateway.protocol,
            ca_certificate_pem: context.authority.certificate_pem(),
            client_certificate_pem: &issued.certificate_pem,
            client_private_key_pem: &issued.private_key_pem,
            tls_crypt_key: &tls_crypt_key,
        });
        let config_id = new_id(IdKind::Config);
        let sealed_content = context.sealer.seal(&config_context(&config_id), profile.as_bytes())?;
        let now = unix_now();
        let certificate = CertificateRecord {
            serial: issued.serial.clone(),
            kind: CertificateKind::Client,
            subject: user.email.clone(),
            user_id: Some(user.id.clone()),
            gateway_id: Some(gateway.id.clone()),
            issued_at: now,
            expires_at: issued.not_after,
            revoked_at: None,
            revocation_reason: None,
        };
        let config = NewConfig {
            id: &config_id,
            user_id: &user.id,
            gateway_id: &gateway.id,
            gateway_name: &gateway.name,
            protocol,
            sealed_content: &sealed_content,
            purge_after: now + context.settings.config_download_window_seconds,
            certificate: &certificate,
        };
        let issued_event =
            ConfigIssued { config_id: config_id.clone(), gateway_id: gateway.id.clone(), user_id: user.id.clone() };
        let mut work = UnitOfWork::begin(context).await?;
        context.store.create_config(&mut work.tx, config).await?;
        work.watched(event::Kind::Config(issued_event)).await?;
        work.commit().await?;
        tracing::info!(config = %config_id, user = %user.id, gateway = %gateway.id, serial = %issued.serial, "issued VPN config");
        context.metrics.config_issued();
        Ok(GenerateConfigResponse {
            config_id,
            expires_at: Some(convert::timestamp(issued.not_after)),
            serial: issued.serial.clone(),
        })
    }

    async fn download(&self, user_id: &str, config_id: &str) -> CoreResult<DownloadConfigResponse> {
        let context = &self.0;
        let config = context
            .store
            .find_config(validate::id("config_id", config_id)?)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("config `{config_id}` not found")))?;
        if config.user_id != user_id {
            return Err(CoreError::Forbidden("this config belongs to another user".into()));
        }
        if config.certificate.revoked_at.is_some() {
            return Err(CoreError::Gone(ErrorCode::ConfigRevoked, "this config's certificate has been revoked".into()));
        }
        if config.expires_at <= unix_now() {
            return Err(CoreError::Gone(ErrorCode::ConfigExpired, "this config's certificate has expired".into()));
        }
        let purged = || {
            CoreError::Gone(
                ErrorCode::ConfigPurged,
                "this config was already downloaded or its download window passed; its private key is not kept, \
                 so generate a new config"
                    .into(),
            )
        };
        if config.purge_after <= unix_now() {
            return Err(purged());
        }
        let sealed = context.store.take_config_content(&config.id).await?.ok_or_else(purged)?;
        let content = context.sealer.open_text(&config_context(&config.id), &sealed)?;
        Ok(DownloadConfigResponse { file_name: format!("gatekey-{}.ovpn", config.gateway_name), content })
    }
}

/// The sealing context of a config's content.
fn config_context(config_id: &str) -> String {
    format!("config:{config_id}")
}

#[tonic::async_trait]
impl ConfigService for ConfigApi {
    async fn generate_config(&self, request: Request<GenerateConfigRequest>) -> GrpcResult<GenerateConfigResponse> {
        respond(
            async {
                let caller = self.0.auth.authenticate(&request, Access::Write).await?;
                self.0.limits.config.check(&caller.user.id)?;
                let address = client_address(&request, &self.0.settings.client_address_trust);
                self.0.geo_fence.enforce(&self.0.store, &caller.user, &address).await?;
                self.generate(&caller.user, request.into_inner()).await
            }
            .await,
        )
    }

    async fn download_config(&self, request: Request<DownloadConfigRequest>) -> GrpcResult<DownloadConfigResponse> {
        respond(
            async {
                // The download hands out a private key and consumes the config: a change.
                let caller = self.0.auth.authenticate(&request, Access::Write).await?;
                let address = client_address(&request, &self.0.settings.client_address_trust);
                self.0.geo_fence.enforce(&self.0.store, &caller.user, &address).await?;
                self.download(&caller.user.id, &request.into_inner().config_id).await
            }
            .await,
        )
    }

    async fn list_my_configs(&self, request: Request<ListConfigsRequest>) -> GrpcResult<ListConfigsResponse> {
        respond(
            async {
                let caller = self.0.auth.authenticate(&request, Access::Read).await?;
                list(&self.0, Some(&caller.user.id), request.into_inner()).await
            }
            .await,
        )
    }
}

#[tonic::async_trait]
impl AdminConfigService for AdminConfigApi {
    async fn list_configs(&self, request: Request<ListConfigsRequest>) -> GrpcResult<ListConfigsResponse> {
        respond(
            async {
                self.0.admin(&request, Access::Read).await?;
                list(&self.0, None, request.into_inner()).await
            }
            .await,
        )
    }
}

async fn list(
    context: &CoreContext,
    user_id: Option<&str>,
    input: ListConfigsRequest,
) -> CoreResult<ListConfigsResponse> {
    let page = validate::page(input.page)?;
    let listing = context.store.list_configs(user_id, page).await?;
    Ok(ListConfigsResponse {
        configs: listing.items.into_iter().map(convert::config).collect(),
        page: Some(convert::page_info(listing.total, page)),
    })
}
