//! `VpnSessionService`, `AdminVpnSessionService` and `AdminActivityService`: live VPN
//! sessions (and ending one), the sign-in record, the dashboard's figures and the
//! stream of events the console updates itself from.

use super::{GrpcResult, respond};
use crate::auth::Access;
use crate::context::CoreContext;
use crate::domain::agents::session_id;
use crate::error::CoreError;
use crate::store::{LoginEventRecord, OpenSession, OpenSessionRecord, Page};
use crate::{convert, validate};
use gatekey::v1::admin_activity_service_server::AdminActivityService;
use gatekey::v1::admin_vpn_session_service_server::AdminVpnSessionService;
use gatekey::v1::vpn_session_service_server::VpnSessionService;
use gatekey::v1::{
    CoreNode, Dashboard, DisconnectVpnSessionRequest, DisconnectVpnSessionResponse, Event, GetDashboardRequest,
    GetVpnSessionRequest, ListCoreNodesRequest, ListCoreNodesResponse, ListSignInsRequest, ListSignInsResponse,
    ListVpnSessionsRequest, ListVpnSessionsResponse, SignIn, VpnSession, WatchEventsRequest,
};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio_stream::Stream;
use tonic::{Request, Status};

/// How many recent sign-ins (and refusals) the dashboard shows.
const RECENT_SIGN_INS: u32 = 10;
/// How often a watch checks that its caller is still an admin.
const WATCH_RECHECK: Duration = Duration::from_secs(60);
/// The reason a gateway gives a client an administrator disconnected.
const DISCONNECT_REASON: &str = "disconnected by an administrator";

/// Implements `VpnSessionService`.
#[derive(Debug, Clone)]
pub struct VpnSessionApi(pub Arc<CoreContext>);

/// Implements `AdminVpnSessionService`.
#[derive(Debug, Clone)]
pub struct AdminVpnSessionApi(pub Arc<CoreContext>);

/// Implements `AdminActivityService`.
#[derive(Debug, Clone)]
pub struct AdminActivityApi(pub Arc<CoreContext>);

fn vpn_session(record: OpenSessionRecord) -> VpnSession {
    VpnSession {
        id: session_id(&record.gateway_id, &record.session_key),
        gateway_id: record.gateway_id,
        gateway_name: record.gateway_name,
        user_id: record.user_id.unwrap_or_default(),
        common_name: record.common_name,
        vpn_address: record.vpn_address,
        client_address: record.client_address,
        connected_at: Some(convert::timestamp(record.connected_at)),
        bytes_received: record.bytes_received,
        bytes_sent: record.bytes_sent,
        serial: record.serial,
    }
}

/// A sign-in message.
pub fn sign_in(record: LoginEventRecord) -> SignIn {
    SignIn {
        id: record.id,
        at: Some(convert::timestamp(record.at)),
        provider: record.provider,
        subject: record.subject,
        client_address: record.client_address,
        success: record.success,
        reason: if record.success { String::new() } else { record.reason },
    }
}

fn listed(listing: crate::store::Listing<OpenSessionRecord>, page: Page) -> ListVpnSessionsResponse {
    ListVpnSessionsResponse {
        sessions: listing.items.into_iter().map(vpn_session).collect(),
        page: Some(convert::page_info(listing.total, page)),
    }
}

impl AdminVpnSessionApi {
    /// The open session an id names, or 404.
    async fn require_session(&self, id: &str) -> Result<OpenSessionRecord, CoreError> {
        let id = validate::id("id", id)?;
        let not_found = || CoreError::NotFound(format!("no open VPN session `{id}`"));
        let (gateway_id, session_key) = id.split_once(':').ok_or_else(not_found)?;
        self.0.store.find_open_session(gateway_id, session_key).await?.ok_or_else(not_found)
    }
}

#[tonic::async_trait]
impl VpnSessionService for VpnSessionApi {
    async fn list_my_sessions(&self, request: Request<ListVpnSessionsRequest>) -> GrpcResult<ListVpnSessionsResponse> {
        respond(
            async {
                let caller = self.0.auth.authenticate(&request, Access::Read).await?;
                let page = validate::page(request.into_inner().page)?;
                let listing = self.0.store.list_open_sessions(page, Some(&caller.user.email)).await?;
                Ok(listed(listing, page))
            }
            .await,
        )
    }
}

#[tonic::async_trait]
impl AdminVpnSessionService for AdminVpnSessionApi {
    async fn list_sessions(&self, request: Request<ListVpnSessionsRequest>) -> GrpcResult<ListVpnSessionsResponse> {
        respond(
            async {
                self.0.admin(&request, Access::Read).await?;
                let page = validate::page(request.into_inner().page)?;
                Ok(listed(self.0.store.list_open_sessions(page, None).await?, page))
            }
            .await,
        )
    }

    async fn get_session(&self, request: Request<GetVpnSessionRequest>) -> GrpcResult<VpnSession> {
        respond(
            async {
                self.0.admin(&request, Access::Read).await?;
                Ok(vpn_session(self.require_session(&request.get_ref().id).await?))
            }
            .await,
        )
    }

    async fn disconnect_session(
        &self,
        request: Request<DisconnectVpnSessionRequest>,
    ) -> GrpcResult<DisconnectVpnSessionResponse> {
        respond(
            async {
                let caller = self.0.admin(&request, Access::Write).await?;
                let session = self.require_session(&request.get_ref().id).await?;
                let open = OpenSession {
                    gateway_id: session.gateway_id.clone(),
                    common_name: session.common_name.clone(),
                    serial: session.serial.clone(),
                };
                crate::domain::agents::cut(&self.0, std::slice::from_ref(&open), DISCONNECT_REASON).await?;
                // Its stream is held here, or by another node that is alive.
                let ordered = self.0.hub.holds(&session.gateway_id) || {
                    let holder = self.0.store.find_gateway(&session.gateway_id).await?.and_then(|g| g.stream_node);
                    let alive_since = crate::store::unix_now() - crate::fleet::NODE_GONE_AFTER_SECONDS;
                    match holder {
                        Some(node) => self.0.store.live_nodes(alive_since).await?.iter().any(|live| live.id == node),
                        None => false,
                    }
                };
                tracing::info!(
                    session = %session_id(&session.gateway_id, &session.session_key),
                    common_name = %session.common_name,
                    by = %caller.user.id,
                    ordered,
                    "VPN session disconnected by an administrator"
                );
                Ok(DisconnectVpnSessionResponse { ordered })
            }
            .await,
        )
    }
}

/// The events a watch sends.
type EventStream = Pin<Box<dyn Stream<Item = Result<Event, Status>> + Send>>;

#[tonic::async_trait]
impl AdminActivityService for AdminActivityApi {
    async fn get_dashboard(&self, request: Request<GetDashboardRequest>) -> GrpcResult<Dashboard> {
        respond(
            async {
                self.0.admin(&request, Access::Read).await?;
                let online_since = crate::store::unix_now() - self.0.settings.offline_after_seconds();
                let counts = self.0.store.fleet_counts(online_since).await?;
                let recent = Page { number: 1, size: RECENT_SIGN_INS };
                let sign_ins = self.0.store.list_login_events(recent, false).await?;
                let refusals = self.0.store.list_login_events(recent, true).await?;
                Ok(Dashboard {
                    gateways_online: u32::try_from(counts.gateways_online).unwrap_or(u32::MAX),
                    gateways_offline: u32::try_from(counts.gateways_offline).unwrap_or(u32::MAX),
                    live_sessions: counts.live_sessions,
                    configs_issued_24h: counts.configs_issued_24h,
                    recent_sign_ins: sign_ins.items.into_iter().map(sign_in).collect(),
                    recent_refusals: refusals.items.into_iter().map(sign_in).collect(),
                    users: counts.users,
                })
            }
            .await,
        )
    }

    async fn list_nodes(&self, request: Request<ListCoreNodesRequest>) -> GrpcResult<ListCoreNodesResponse> {
        respond(
            async {
                self.0.admin(&request, Access::Read).await?;
                let since = crate::store::unix_now() - crate::fleet::NODE_GONE_AFTER_SECONDS;
                let nodes = self.0.store.live_nodes(since).await?;
                let this_node = self.0.fleet.node_id();
                Ok(ListCoreNodesResponse {
                    nodes: nodes
                        .into_iter()
                        .map(|node| CoreNode {
                            answering: node.id == this_node,
                            started_at: Some(convert::timestamp(node.started_at)),
                            last_seen_at: Some(convert::timestamp(node.last_seen_at)),
                            gateways_held: u32::try_from(node.gateways_held).unwrap_or(u32::MAX),
                            id: node.id,
                            grpc_address: node.grpc_address,
                        })
                        .collect(),
                })
            }
            .await,
        )
    }

    async fn list_sign_ins(&self, request: Request<ListSignInsRequest>) -> GrpcResult<ListSignInsResponse> {
        respond(
            async {
                self.0.admin(&request, Access::Read).await?;
                let input = request.into_inner();
                let page = validate::page(input.page)?;
                let listing = self.0.store.list_login_events(page, input.failures_only).await?;
                Ok(ListSignInsResponse {
                    sign_ins: listing.items.into_iter().map(sign_in).collect(),
                    page: Some(convert::page_info(listing.total, page)),
                })
            }
            .await,
        )
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(&self, request: Request<WatchEventsRequest>) -> GrpcResult<EventStream> {
        let caller = self.0.admin(&request, Access::Read).await.map_err(Status::from)?;
        let context = self.0.clone();
        let credential = request.metadata().clone();
        let mut watch = context.events.watch();
        let (sender, receiver) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            let mut recheck = tokio::time::interval(WATCH_RECHECK);
            recheck.tick().await;
            loop {
                let next = tokio::select! {
                    () = sender.closed() => break,
                    received = watch.events.recv() => match received {
                        Ok(event) => Ok(event),
                        Err(RecvError::Lagged(missed)) => {
                            tracing::debug!(missed, "an event watcher fell behind");
                            continue;
                        }
                        Err(RecvError::Closed) => break,
                    },
                    _ = watch.closed.changed() => Err(Status::unavailable("the core is shutting down")),
                    _ = recheck.tick() => {
                        // A watch lasts only as long as its credential is an admin's.
                        let mut probe = Request::new(());
                        *probe.metadata_mut() = credential.clone();
                        let again = context.auth.authenticate(&probe, Access::Read).await;
                        match again {
                            Ok(again) if again.user.is_admin && again.user.id == caller.user.id => continue,
                            _ => Err(Status::permission_denied("the credential no longer belongs to an admin")),
                        }
                    }
                };
                let last = next.is_err();
                if sender.send(next).await.is_err() || last {
                    break;
                }
            }
        });
        let stream = tokio_stream::wrappers::ReceiverStream::new(receiver);
        Ok(tonic::Response::new(Box::pin(stream)))
    }
}
