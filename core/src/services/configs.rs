//! `ConfigService` (generate, download, list own) and `AdminConfigService`.

use super::{GrpcResult, respond};
use crate::auth::{Access, client_address};
use crate::context::CoreContext;
use crate::convert;
use crate::domain::{VpnProtocol, configs};
use crate::error::CoreResult;
use crate::validate;
use gatekey::v1::admin_config_service_server::AdminConfigService;
use gatekey::v1::config_service_server::ConfigService;
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

#[tonic::async_trait]
impl ConfigService for ConfigApi {
    async fn generate_config(&self, request: Request<GenerateConfigRequest>) -> GrpcResult<GenerateConfigResponse> {
        respond(
            async {
                let caller = self.0.auth.authenticate(&request, Access::Write).await?;
                self.0.limits.config.check(&caller.user.id)?;
                let address = client_address(&request, &self.0.settings.client_address_trust);
                self.0.geo_fence.enforce(&self.0.store, &caller.user, &address).await?;
                let input = request.into_inner();
                let protocol = match input.protocol.as_str() {
                    "" => VpnProtocol::OpenVpn,
                    word => VpnProtocol::parse_field("protocol", word)?,
                };
                let gateway_id = validate::id("gateway_id", &input.gateway_id)?;
                let issued = configs::issue(&self.0, &caller.user, gateway_id, protocol).await?;
                Ok(GenerateConfigResponse {
                    config_id: issued.config_id,
                    expires_at: Some(convert::timestamp(issued.expires_at)),
                    serial: issued.serial,
                })
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
                let config_id = request.into_inner().config_id;
                let downloaded =
                    configs::download(&self.0, &caller.user.id, validate::id("config_id", &config_id)?).await?;
                Ok(DownloadConfigResponse { file_name: downloaded.file_name, content: downloaded.content })
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
