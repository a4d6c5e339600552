//! `MeshService` (the hubs a user may use), `AdminMeshService` (hubs and their
//! spokes), and `MeshSpokeAgentService` (a spoke's agent fetching its tunnel).
//!
//! A hub is a `gateways` row in the hub role, so its agent, stream, verify path, rule
//! pushes, grants and session reports are the gateway ones.

use super::gateways::{gateway_changes, new_gateway};
use super::{GrpcResult, respond};
use crate::auth::Access;
use crate::context::CoreContext;
use crate::convert::{self, GatewayView};
use crate::domain::{UnitOfWork, gateways, mesh};
use crate::error::{CoreError, CoreResult};
use crate::ids::{IdKind, new_id};
use crate::policy::{GatewayPolicy, advertised_networks};
use crate::secrets::{SPOKE_TOKEN_PREFIX, mint_token};
use crate::store::{GatewayLink, GatewayRecord, GatewayRole, SessionsOf};
use crate::validate;
use gatekey::v1::admin_mesh_service_server::AdminMeshService;
use gatekey::v1::mesh_service_server::MeshService;
use gatekey::v1::mesh_spoke_agent_service_server::MeshSpokeAgentService;
use gatekey::v1::{
    CreateMeshHubRequest, CreateMeshHubResponse, CreateMeshSpokeResponse, DeleteMeshHubRequest, DeleteMeshHubResponse,
    DeleteMeshSpokeRequest, DescribeSpokeRequest, GetMeshHubRequest, GetMeshSpokeRequest, ListHubsRequest,
    ListHubsResponse, ListMeshSpokesRequest, ListMeshSpokesResponse, MeshHub, MeshSpoke, ProvisionSpokeRequest,
    ProvisionSpokeResponse, RotateMeshHubTokenRequest, RotateMeshSpokeTokenRequest, UpdateMeshHubRequest,
};
use std::sync::Arc;
use tonic::Request;

/// Address pool of a hub created without one.
const DEFAULT_HUB_SUBNET: &str = "10.9.0.0/24";

/// Implements `MeshService`.
#[derive(Debug, Clone)]
pub struct MeshApi(pub Arc<CoreContext>);

/// Implements `AdminMeshService`.
#[derive(Debug, Clone)]
pub struct AdminMeshApi(pub Arc<CoreContext>);

/// Implements `MeshSpokeAgentService`.
#[derive(Debug, Clone)]
pub struct MeshSpokeAgentApi(pub Arc<CoreContext>);

#[tonic::async_trait]
impl MeshService for MeshApi {
    async fn list_hubs(&self, request: Request<ListHubsRequest>) -> GrpcResult<ListHubsResponse> {
        respond(
            async {
                let caller = self.0.auth.authenticate(&request, Access::Read).await?;
                let page = validate::page(request.into_inner().page)?;
                let listing =
                    self.0.store.list_gateways_for_user(Some(GatewayRole::Hub), &caller.user.id, page).await?;
                let mut hubs = Vec::with_capacity(listing.items.len());
                for hub in listing.items {
                    // The user sees the connected spokes' networks its rules reach.
                    let routes = GatewayPolicy::load(&self.0.store, &hub).await?.entitlement(&caller.user).routes;
                    hubs.push(convert::mesh_hub(
                        hub,
                        GatewayView::User,
                        self.0.settings.offline_after_seconds(),
                        routes,
                    ));
                }
                Ok(ListHubsResponse { hubs, page: Some(convert::page_info(listing.total, page)) })
            }
            .await,
        )
    }
}

impl AdminMeshApi {
    async fn admin_view(&self, hub: GatewayRecord) -> CoreResult<MeshHub> {
        let advertised = advertised_networks(&self.0.store.connected_spokes(&hub.id).await?);
        Ok(convert::mesh_hub(hub, GatewayView::Admin, self.0.settings.offline_after_seconds(), advertised))
    }

    /// The hub named by request field `field`, or `NotFound`.
    async fn require_hub(&self, field: &str, id: &str) -> CoreResult<GatewayRecord> {
        self.0.store.require_gateway_in_role(validate::id(field, id)?, GatewayRole::Hub).await
    }

    /// The given lists of a hub's networks, users and groups as link replacements,
    /// each entry checked (ids exist, group names valid) before anything changes.
    async fn checked_access(
        &self,
        network_ids: Option<Vec<String>>,
        user_ids: Option<Vec<String>>,
        groups: Option<Vec<String>>,
    ) -> CoreResult<Vec<(GatewayLink, Vec<String>)>> {
        let mut replacements = Vec::new();
        if let Some(ids) = network_ids {
            for id in &ids {
                self.0.store.require_network(validate::id("network_ids", id)?).await?;
            }
            replacements.push((GatewayLink::Network, ids));
        }
        if let Some(ids) = user_ids {
            for id in &ids {
                self.0.store.require_user(validate::id("user_ids", id)?).await?;
            }
            replacements.push((GatewayLink::User, ids));
        }
        if let Some(names) = groups {
            replacements.push((GatewayLink::Group, validate::groups("groups", &names)?));
        }
        Ok(replacements)
    }
}

#[tonic::async_trait]
impl AdminMeshService for AdminMeshApi {
    async fn list_hubs(&self, request: Request<ListHubsRequest>) -> GrpcResult<ListHubsResponse> {
        respond(
            async {
                self.0.admin(&request, Access::Read).await?;
                let page = validate::page(request.into_inner().page)?;
                let listing = self.0.store.list_gateways(Some(GatewayRole::Hub), page).await?;
                let mut hubs = Vec::with_capacity(listing.items.len());
                for hub in listing.items {
                    hubs.push(self.admin_view(hub).await?);
                }
                Ok(ListHubsResponse { hubs, page: Some(convert::page_info(listing.total, page)) })
            }
            .await,
        )
    }

    async fn create_hub(&self, request: Request<CreateMeshHubRequest>) -> GrpcResult<CreateMeshHubResponse> {
        respond(
            async {
                self.0.admin(&request, Access::Write).await?;
                let input = request.into_inner();
                let hub = new_gateway(GatewayRole::Hub, input.hub.unwrap_or_default(), DEFAULT_HUB_SUBNET)?;
                let access =
                    self.checked_access(Some(input.network_ids), Some(input.user_ids), Some(input.groups)).await?;
                let (record, token) = gateways::create(&self.0, hub, &access).await?;
                tracing::info!(hub = %record.id, name = %record.name, "created mesh hub");
                Ok(CreateMeshHubResponse { hub: Some(self.admin_view(record).await?), token: token.secret.clone() })
            }
            .await,
        )
    }

    async fn update_hub(&self, request: Request<UpdateMeshHubRequest>) -> GrpcResult<MeshHub> {
        respond(
            async {
                self.0.admin(&request, Access::Write).await?;
                let input = request.into_inner();
                let fields = input.hub.unwrap_or_default();
                let hub = self.require_hub("hub.id", &fields.id).await?;
                let changes = gateway_changes(&fields)?;
                if let Some(pool) = &changes.vpn_subnet {
                    clash_with_spokes(&self.0, &hub.id, "vpn_subnet", std::slice::from_ref(pool)).await?;
                }
                let values = |list: Option<gatekey::v1::StringList>| list.map(|list| list.values);
                let access = self
                    .checked_access(values(input.network_ids), values(input.user_ids), values(input.groups))
                    .await?;
                let record = gateways::update(&self.0, &hub.id, GatewayRole::Hub, changes, &access).await?;
                self.admin_view(record).await
            }
            .await,
        )
    }

    async fn get_hub(&self, request: Request<GetMeshHubRequest>) -> GrpcResult<MeshHub> {
        respond(
            async {
                self.0.admin(&request, Access::Read).await?;
                let hub = self.require_hub("id", &request.get_ref().id).await?;
                self.admin_view(hub).await
            }
            .await,
        )
    }

    async fn get_spoke(&self, request: Request<GetMeshSpokeRequest>) -> GrpcResult<MeshSpoke> {
        respond(
            async {
                self.0.admin(&request, Access::Read).await?;
                let input = request.into_inner();
                let hub = self.require_hub("hub_id", &input.hub_id).await?;
                let spoke = self.0.store.require_spoke(&hub.id, validate::id("spoke_id", &input.spoke_id)?).await?;
                let online = !self.0.store.open_sessions(SessionsOf::Identity(&spoke.id)).await?.is_empty();
                Ok(convert::mesh_spoke(spoke, online))
            }
            .await,
        )
    }

    async fn delete_hub(&self, request: Request<DeleteMeshHubRequest>) -> GrpcResult<DeleteMeshHubResponse> {
        respond(
            async {
                self.0.admin(&request, Access::Write).await?;
                let hub = self.require_hub("id", &request.into_inner().id).await?;
                gateways::delete(&self.0, &hub).await?;
                Ok(DeleteMeshHubResponse {})
            }
            .await,
        )
    }

    async fn rotate_hub_token(&self, request: Request<RotateMeshHubTokenRequest>) -> GrpcResult<CreateMeshHubResponse> {
        respond(
            async {
                self.0.admin(&request, Access::Write).await?;
                let hub = self.require_hub("id", &request.into_inner().id).await?;
                let (record, token) = gateways::rotate_token(&self.0, &hub.id).await?;
                Ok(CreateMeshHubResponse { hub: Some(self.admin_view(record).await?), token: token.secret.clone() })
            }
            .await,
        )
    }

    async fn list_spokes(&self, request: Request<ListMeshSpokesRequest>) -> GrpcResult<ListMeshSpokesResponse> {
        respond(
            async {
                self.0.admin(&request, Access::Read).await?;
                let input = request.into_inner();
                let hub = self.require_hub("hub_id", &input.hub_id).await?;
                let page = validate::page(input.page)?;
                let listing = self.0.store.list_spokes(&hub.id, page).await?;
                let connected: Vec<String> =
                    self.0.store.connected_spokes(&hub.id).await?.into_iter().map(|spoke| spoke.id).collect();
                let spokes = listing
                    .items
                    .into_iter()
                    .map(|spoke| {
                        let online = connected.contains(&spoke.id);
                        convert::mesh_spoke(spoke, online)
                    })
                    .collect();
                Ok(ListMeshSpokesResponse { spokes, page: Some(convert::page_info(listing.total, page)) })
            }
            .await,
        )
    }

    async fn create_spoke(&self, request: Request<MeshSpoke>) -> GrpcResult<CreateMeshSpokeResponse> {
        respond(
            async {
                self.0.admin(&request, Access::Write).await?;
                let input = request.into_inner();
                let hub = self.require_hub("hub_id", &input.hub_id).await?;
                let name = validate::name("name", &input.name)?;
                let local_cidrs = validate::spoke_networks("local_cidrs", &input.local_cidrs)?;
                clash_with_spokes(&self.0, &hub.id, "local_cidrs", &local_cidrs).await?;
                if let Some(cidr) = local_cidrs.iter().find(|cidr| validate::overlap(cidr, &hub.vpn_subnet)) {
                    return Err(CoreError::InvalidArgument(format!(
                        "local_cidrs: `{cidr}` overlaps the hub's address pool {}",
                        hub.vpn_subnet
                    )));
                }
                let token = mint_token(SPOKE_TOKEN_PREFIX);
                let id = new_id(IdKind::MeshSpoke);
                let mut work = UnitOfWork::begin(&self.0).await?;
                self.0.store.create_spoke(&mut work.tx, &id, &hub.id, &name, &local_cidrs, &token).await?;
                work.commit().await?;
                let spoke = self.0.store.require_spoke(&hub.id, &id).await?;
                tracing::info!(hub = %hub.id, spoke = %spoke.id, networks = ?spoke.local_cidrs, "created mesh spoke");
                Ok(CreateMeshSpokeResponse {
                    spoke: Some(convert::mesh_spoke(spoke, false)),
                    token: token.secret.clone(),
                })
            }
            .await,
        )
    }

    async fn rotate_spoke_token(
        &self,
        request: Request<RotateMeshSpokeTokenRequest>,
    ) -> GrpcResult<CreateMeshSpokeResponse> {
        respond(
            async {
                self.0.admin(&request, Access::Write).await?;
                let input = request.into_inner();
                let hub = self.require_hub("hub_id", &input.hub_id).await?;
                let spoke = self.0.store.require_spoke(&hub.id, validate::id("spoke_id", &input.spoke_id)?).await?;
                let token = mint_token(SPOKE_TOKEN_PREFIX);
                let mut work = UnitOfWork::begin(&self.0).await?;
                self.0.store.set_spoke_token(&mut work.tx, &spoke, &token).await?;
                work.commit().await?;
                let spoke = self.0.store.require_spoke(&hub.id, &spoke.id).await?;
                let online = !self.0.store.open_sessions(SessionsOf::Identity(&spoke.id)).await?.is_empty();
                Ok(CreateMeshSpokeResponse {
                    spoke: Some(convert::mesh_spoke(spoke, online)),
                    token: token.secret.clone(),
                })
            }
            .await,
        )
    }

    async fn delete_spoke(&self, request: Request<DeleteMeshSpokeRequest>) -> GrpcResult<DeleteMeshHubResponse> {
        respond(
            async {
                self.0.admin(&request, Access::Write).await?;
                let input = request.into_inner();
                let hub = self.require_hub("hub_id", &input.hub_id).await?;
                let spoke = self.0.store.require_spoke(&hub.id, validate::id("spoke_id", &input.spoke_id)?).await?;
                mesh::delete_spoke(&self.0, &hub.id, &spoke.id).await?;
                Ok(DeleteMeshHubResponse {})
            }
            .await,
        )
    }
}

/// Refuses `cidrs` (request field `field`) that overlap a network of one of the hub's
/// spokes: OpenVPN would route the shared addresses to only one of them.
pub(super) async fn clash_with_spokes(
    context: &CoreContext,
    hub_id: &str,
    field: &str,
    cidrs: &[String],
) -> CoreResult<()> {
    for spoke in context.store.spokes_of_hub(hub_id).await? {
        for cidr in cidrs {
            if let Some(theirs) = spoke.local_cidrs.iter().find(|theirs| validate::overlap(cidr, theirs)) {
                return Err(CoreError::Conflict(format!(
                    "{field}: `{cidr}` overlaps `{theirs}` of spoke `{}`",
                    spoke.name
                )));
            }
        }
    }
    Ok(())
}

#[tonic::async_trait]
impl MeshSpokeAgentService for MeshSpokeAgentApi {
    async fn describe_spoke(&self, request: Request<DescribeSpokeRequest>) -> GrpcResult<MeshSpoke> {
        respond(
            async {
                let spoke = self.0.auth.authenticate_spoke(&request).await?;
                let online = !self.0.store.open_sessions(SessionsOf::Identity(&spoke.id)).await?.is_empty();
                Ok(convert::mesh_spoke(spoke, online))
            }
            .await,
        )
    }

    async fn provision_spoke(&self, request: Request<ProvisionSpokeRequest>) -> GrpcResult<ProvisionSpokeResponse> {
        respond(
            async {
                let context = &self.0;
                let spoke = context.auth.authenticate_spoke(&request).await?;
                let provisioned = mesh::provision(context, &spoke, &request.get_ref().advertised_cidrs).await?;
                Ok(ProvisionSpokeResponse {
                    spoke: Some(convert::mesh_spoke(provisioned.spoke, false)),
                    openvpn_config: provisioned.openvpn_config,
                    expires_at: Some(convert::timestamp(provisioned.expires_at)),
                    lifetime_seconds: u64::try_from(context.settings.spoke_certificate_ttl_seconds).unwrap_or(0),
                })
            }
            .await,
        )
    }
}
