//! `GatewayService` (what a user may use) and `AdminGatewayService`.

use super::{GrpcResult, respond};
use crate::auth::Access;
use crate::context::CoreContext;
use crate::convert::{self, GatewayView};
use crate::domain::{Transport, gateways};
use crate::error::{CoreError, CoreResult};
use crate::ids::{IdKind, new_id};
use crate::store::{GatewayChanges, GatewayLink, GatewayRecord, GatewayRole, Listing, NewGateway, Page};
use crate::validate;
use gatekey::v1::admin_gateway_service_server::AdminGatewayService;
use gatekey::v1::gateway_service_server::GatewayService;
use gatekey::v1::{
    CreateGatewayRequest, CreateGatewayResponse, DeleteGatewayRequest, DeleteGatewayResponse, Gateway,
    GatewayGroupGrant, GatewayNetworkAttachment, GatewayUserGrant, GetGatewayRequest, ListGatewaysRequest,
    ListGatewaysResponse, RotateGatewayTokenRequest, TransportProtocol, UpdateGatewayRequest,
};
use std::sync::Arc;
use tonic::Request;

/// Port of a gateway or hub created without one.
pub(super) const DEFAULT_PORT: u16 = 1194;
/// Client pool of a gateway created without one.
const DEFAULT_VPN_SUBNET: &str = "10.8.0.0/24";

/// Implements `GatewayService`.
#[derive(Debug, Clone)]
pub struct GatewayApi(pub Arc<CoreContext>);

/// Implements `AdminGatewayService`.
#[derive(Debug, Clone)]
pub struct AdminGatewayApi(pub Arc<CoreContext>);

fn listing_response(
    context: &CoreContext,
    listing: Listing<GatewayRecord>,
    page: Page,
    view: GatewayView,
) -> ListGatewaysResponse {
    let offline_after = context.settings.offline_after_seconds();
    ListGatewaysResponse {
        gateways: listing.items.into_iter().map(|g| convert::gateway(g, view, offline_after)).collect(),
        page: Some(convert::page_info(listing.total, page)),
    }
}

#[tonic::async_trait]
impl GatewayService for GatewayApi {
    async fn list_gateways(&self, request: Request<ListGatewaysRequest>) -> GrpcResult<ListGatewaysResponse> {
        respond(
            async {
                let caller = self.0.auth.authenticate(&request, Access::Read).await?;
                let page = validate::page(request.into_inner().page)?;
                let listing = self.0.store.list_gateways_for_user(None, &caller.user.id, page).await?;
                Ok(listing_response(&self.0, listing, page, GatewayView::User))
            }
            .await,
        )
    }
}

impl AdminGatewayApi {
    fn admin_view(&self, record: GatewayRecord) -> Gateway {
        convert::gateway(record, GatewayView::Admin, self.0.settings.offline_after_seconds())
    }

    /// Fails unless the caller is an admin whose credential may write.
    async fn admin_write<T>(&self, request: &Request<T>) -> CoreResult<()> {
        self.0.admin(request, Access::Write).await.map(|_| ())
    }

    async fn link(&self, gateway_id: &str, link: GatewayLink, target: &str, attach: bool) -> CoreResult<Gateway> {
        let gateway_id = validate::id("gateway_id", gateway_id)?;
        self.0.store.require_gateway(gateway_id).await?;
        if attach {
            match link {
                GatewayLink::User => {
                    self.0.store.require_user(validate::id("user_id", target)?).await?;
                }
                GatewayLink::Network => {
                    self.0.store.require_network(validate::id("network_id", target)?).await?;
                }
                GatewayLink::Group => {}
            }
        }
        Ok(self.admin_view(gateways::link(&self.0, gateway_id, link, target, attach).await?))
    }
}

/// A new gateway or hub in `role` from a creation request's fields, checked; with
/// 1194/udp when it names no port or protocol, and `default_subnet` when no pool.
pub(super) fn new_gateway(
    role: GatewayRole,
    input: CreateGatewayRequest,
    default_subnet: &str,
) -> CoreResult<NewGateway> {
    let kind = match role {
        GatewayRole::Gateway => IdKind::Gateway,
        GatewayRole::Hub => IdKind::MeshHub,
    };
    Ok(NewGateway {
        id: new_id(kind),
        role,
        name: validate::name("name", &input.name)?,
        description: validate::text("description", &input.description, 500)?,
        hostname: validate::hostname(&input.hostname)?,
        port: if input.port == 0 { DEFAULT_PORT } else { validate::port(input.port)? },
        protocol: protocol(input.protocol, Some(Transport::Udp))?,
        vpn_subnet: if input.vpn_subnet.is_empty() {
            default_subnet.into()
        } else {
            validate::vpn_subnet(&input.vpn_subnet)?
        },
    })
}

/// The checked changes an update request of a gateway or hub asks for.
pub(super) fn gateway_changes(input: &UpdateGatewayRequest) -> CoreResult<GatewayChanges> {
    Ok(GatewayChanges {
        name: input.name.as_deref().map(|n| validate::name("name", n)).transpose()?,
        description: input.description.as_deref().map(|d| validate::text("description", d, 500)).transpose()?,
        hostname: input.hostname.as_deref().map(validate::hostname).transpose()?,
        port: input.port.map(validate::port).transpose()?,
        protocol: input.protocol.map(|p| protocol(p, None)).transpose()?,
        vpn_subnet: input.vpn_subnet.as_deref().map(validate::vpn_subnet).transpose()?,
        is_active: input.is_active,
    })
}

/// A protocol from the contract's enum; unspecified means `when_unspecified`, if given.
fn protocol(value: i32, when_unspecified: Option<Transport>) -> CoreResult<Transport> {
    match (TransportProtocol::try_from(value), when_unspecified) {
        (Ok(TransportProtocol::Udp), _) => Ok(Transport::Udp),
        (Ok(TransportProtocol::Tcp), _) => Ok(Transport::Tcp),
        (Ok(TransportProtocol::Unspecified), Some(default)) => Ok(default),
        _ => Err(CoreError::InvalidArgument("protocol: must be `udp` or `tcp`".into())),
    }
}

/// A group name as granted to a gateway.
fn group(value: &str) -> CoreResult<String> {
    validate::groups("group", &[value.to_owned()])?
        .pop()
        .ok_or_else(|| CoreError::InvalidArgument("group: is required".into()))
}

#[tonic::async_trait]
impl AdminGatewayService for AdminGatewayApi {
    async fn list_gateways(&self, request: Request<ListGatewaysRequest>) -> GrpcResult<ListGatewaysResponse> {
        respond(
            async {
                self.0.admin(&request, Access::Read).await?;
                let page = validate::page(request.into_inner().page)?;
                let listing = self.0.store.list_gateways(None, page).await?;
                Ok(listing_response(&self.0, listing, page, GatewayView::Admin))
            }
            .await,
        )
    }

    async fn get_gateway(&self, request: Request<GetGatewayRequest>) -> GrpcResult<Gateway> {
        respond(
            async {
                self.0.admin(&request, Access::Read).await?;
                let record = self.0.store.require_gateway(validate::id("id", &request.get_ref().id)?).await?;
                Ok(self.admin_view(record))
            }
            .await,
        )
    }

    async fn create_gateway(&self, request: Request<CreateGatewayRequest>) -> GrpcResult<CreateGatewayResponse> {
        respond(
            async {
                self.admin_write(&request).await?;
                let gateway = new_gateway(GatewayRole::Gateway, request.into_inner(), DEFAULT_VPN_SUBNET)?;
                let (record, token) = gateways::create(&self.0, gateway, &[]).await?;
                Ok(CreateGatewayResponse { gateway: Some(self.admin_view(record)), token: token.secret.clone() })
            }
            .await,
        )
    }

    async fn update_gateway(&self, request: Request<UpdateGatewayRequest>) -> GrpcResult<Gateway> {
        respond(
            async {
                self.admin_write(&request).await?;
                let input = request.into_inner();
                let changes = gateway_changes(&input)?;
                let id = validate::id("id", &input.id)?;
                let before = self.0.store.require_gateway(id).await?;
                if let (GatewayRole::Hub, Some(pool)) = (before.role, &changes.vpn_subnet) {
                    super::mesh::clash_with_spokes(&self.0, id, "vpn_subnet", std::slice::from_ref(pool)).await?;
                }
                Ok(self.admin_view(gateways::update(&self.0, id, before.role, changes, &[]).await?))
            }
            .await,
        )
    }

    async fn delete_gateway(&self, request: Request<DeleteGatewayRequest>) -> GrpcResult<DeleteGatewayResponse> {
        respond(
            async {
                self.admin_write(&request).await?;
                let record = self.0.store.require_gateway(validate::id("id", &request.get_ref().id)?).await?;
                gateways::delete(&self.0, &record).await?;
                Ok(DeleteGatewayResponse {})
            }
            .await,
        )
    }

    async fn rotate_gateway_token(
        &self,
        request: Request<RotateGatewayTokenRequest>,
    ) -> GrpcResult<CreateGatewayResponse> {
        respond(
            async {
                self.admin_write(&request).await?;
                let id = request.into_inner().id;
                self.0.store.require_gateway(validate::id("id", &id)?).await?;
                let (record, token) = gateways::rotate_token(&self.0, &id).await?;
                Ok(CreateGatewayResponse { gateway: Some(self.admin_view(record)), token: token.secret.clone() })
            }
            .await,
        )
    }

    async fn grant_user(&self, request: Request<GatewayUserGrant>) -> GrpcResult<Gateway> {
        respond(
            async {
                self.admin_write(&request).await?;
                let grant = request.into_inner();
                self.link(&grant.gateway_id, GatewayLink::User, &grant.user_id, true).await
            }
            .await,
        )
    }

    async fn revoke_user(&self, request: Request<GatewayUserGrant>) -> GrpcResult<Gateway> {
        respond(
            async {
                self.admin_write(&request).await?;
                let grant = request.into_inner();
                self.link(&grant.gateway_id, GatewayLink::User, &grant.user_id, false).await
            }
            .await,
        )
    }

    async fn grant_group(&self, request: Request<GatewayGroupGrant>) -> GrpcResult<Gateway> {
        respond(
            async {
                self.admin_write(&request).await?;
                let grant = request.into_inner();
                self.link(&grant.gateway_id, GatewayLink::Group, &group(&grant.group)?, true).await
            }
            .await,
        )
    }

    async fn revoke_group(&self, request: Request<GatewayGroupGrant>) -> GrpcResult<Gateway> {
        respond(
            async {
                self.admin_write(&request).await?;
                let grant = request.into_inner();
                self.link(&grant.gateway_id, GatewayLink::Group, &group(&grant.group)?, false).await
            }
            .await,
        )
    }

    async fn attach_network(&self, request: Request<GatewayNetworkAttachment>) -> GrpcResult<Gateway> {
        respond(
            async {
                self.admin_write(&request).await?;
                let attachment = request.into_inner();
                self.link(&attachment.gateway_id, GatewayLink::Network, &attachment.network_id, true).await
            }
            .await,
        )
    }

    async fn detach_network(&self, request: Request<GatewayNetworkAttachment>) -> GrpcResult<Gateway> {
        respond(
            async {
                self.admin_write(&request).await?;
                let attachment = request.into_inner();
                self.link(&attachment.gateway_id, GatewayLink::Network, &attachment.network_id, false).await
            }
            .await,
        )
    }
}
