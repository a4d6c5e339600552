//! `AdminNetworkService`: protected networks.

use super::{GrpcResult, respond};
use crate::auth::Access;
use crate::context::CoreContext;
use crate::domain::{UnitOfWork, networks};
use crate::error::CoreError;
use crate::ids::{IdKind, new_id};
use crate::store::{NetworkChanges, NewNetwork};
use crate::{convert, validate};
use gatekey::v1::admin_network_service_server::AdminNetworkService;
use gatekey::v1::{
    CreateNetworkRequest, DeleteNetworkRequest, DeleteNetworkResponse, GetNetworkRequest, ListNetworksRequest,
    ListNetworksResponse, Network, UpdateNetworkRequest,
};
use std::sync::Arc;
use tonic::Request;

/// Implements `AdminNetworkService`.
#[derive(Debug, Clone)]
pub struct AdminNetworkApi(pub Arc<CoreContext>);

#[tonic::async_trait]
impl AdminNetworkService for AdminNetworkApi {
    async fn get_network(&self, request: Request<GetNetworkRequest>) -> GrpcResult<Network> {
        respond(
            async {
                self.0.admin(&request, Access::Read).await?;
                let network = self.0.store.require_network(validate::id("id", &request.get_ref().id)?).await?;
                Ok(convert::network(network))
            }
            .await,
        )
    }

    async fn list_networks(&self, request: Request<ListNetworksRequest>) -> GrpcResult<ListNetworksResponse> {
        respond(
            async {
                self.0.admin(&request, Access::Read).await?;
                let page = validate::page(request.into_inner().page)?;
                let listing = self.0.store.list_networks(page).await?;
                Ok(ListNetworksResponse {
                    networks: listing.items.into_iter().map(convert::network).collect(),
                    page: Some(convert::page_info(listing.total, page)),
                })
            }
            .await,
        )
    }

    async fn create_network(&self, request: Request<CreateNetworkRequest>) -> GrpcResult<Network> {
        respond(
            async {
                self.0.admin(&request, Access::Write).await?;
                let input = request.into_inner();
                let network = NewNetwork {
                    id: new_id(IdKind::Network),
                    name: validate::name("name", &input.name)?,
                    description: validate::text("description", &input.description, 500)?,
                    cidrs: validate::cidrs("cidrs", &input.cidrs)?,
                };
                let id = network.id.clone();
                let mut work = UnitOfWork::begin(&self.0).await?;
                self.0.store.create_network(&mut work.tx, network).await?;
                work.commit().await?;
                Ok(convert::network(self.0.store.require_network(&id).await?))
            }
            .await,
        )
    }

    async fn update_network(&self, request: Request<UpdateNetworkRequest>) -> GrpcResult<Network> {
        respond(
            async {
                self.0.admin(&request, Access::Write).await?;
                let input = request.into_inner();
                let changes = NetworkChanges {
                    name: input.name.as_deref().map(|n| validate::name("name", n)).transpose()?,
                    description: input
                        .description
                        .as_deref()
                        .map(|d| validate::text("description", d, 500))
                        .transpose()?,
                    cidrs: input.cidrs.map(|list| validate::cidrs("cidrs", &list.cidrs)).transpose()?,
                };
                let id = validate::id("id", &input.id)?;
                if let Some(cidrs) = &changes.cidrs {
                    // The network must keep holding every destination its rules name.
                    let mut reshaped = self.0.store.require_network(id).await?;
                    reshaped.cidrs.clone_from(cidrs);
                    for rule in self.0.store.access_rules_of_network(id).await? {
                        super::access_rules::destination(
                            rule.fields.destination_type,
                            &rule.fields.destination,
                            &reshaped,
                        )
                        .map_err(|_| {
                            CoreError::InvalidArgument(format!(
                                "cidrs: access rule `{}` reaches {}, outside the new CIDRs",
                                rule.fields.name, rule.fields.destination
                            ))
                        })?;
                    }
                }
                Ok(convert::network(networks::update(&self.0, id, changes).await?))
            }
            .await,
        )
    }

    async fn delete_network(&self, request: Request<DeleteNetworkRequest>) -> GrpcResult<DeleteNetworkResponse> {
        respond(
            async {
                self.0.admin(&request, Access::Write).await?;
                let network = self.0.store.require_network(validate::id("id", &request.into_inner().id)?).await?;
                networks::delete(&self.0, &network.id).await?;
                Ok(DeleteNetworkResponse {})
            }
            .await,
        )
    }
}
