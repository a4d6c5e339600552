//! Response bodies of the activity routes: open VPN sessions, sign-in attempts and the
//! dashboard.

use super::rfc3339;
use gatekey::v1;
use serde::Serialize;

/// An open VPN session.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VpnSessionView {
    /// `<gateway id>:<the agent's key for the connection>`.
    pub id: String,
    /// The gateway (or hub).
    pub gateway_id: String,
    /// Its name.
    pub gateway_name: String,
    /// The user; empty for a mesh spoke.
    pub user_id: String,
    /// The certificate's common name (the user's e-mail).
    pub common_name: String,
    /// Address inside the tunnel.
    pub vpn_address: String,
    /// The client's real address.
    pub client_address: String,
    /// When it connected.
    #[schema(format = DateTime)]
    pub connected_at: Option<String>,
    /// Bytes from the client, as of the gateway's last report.
    pub bytes_received: u64,
    /// Bytes to the client, as of the gateway's last report.
    pub bytes_sent: u64,
    /// The certificate's serial.
    pub serial: String,
}

impl From<v1::VpnSession> for VpnSessionView {
    fn from(session: v1::VpnSession) -> Self {
        VpnSessionView {
            id: session.id,
            gateway_id: session.gateway_id,
            gateway_name: session.gateway_name,
            user_id: session.user_id,
            common_name: session.common_name,
            vpn_address: session.vpn_address,
            client_address: session.client_address,
            connected_at: rfc3339(session.connected_at),
            bytes_received: session.bytes_received,
            bytes_sent: session.bytes_sent,
            serial: session.serial,
        }
    }
}

/// The answer to disconnecting a session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DisconnectedView {
    /// The session's id.
    pub id: String,
    /// Always true.
    pub disconnected: bool,
    /// Whether the gateway was reached with the order (it holds a stream to a core node).
    pub ordered: bool,
}

/// A core node sharing the database.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CoreNodeView {
    /// The node's id, new at each start.
    pub id: String,
    /// The gRPC address it listens on.
    pub grpc_address: String,
    /// When it started.
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    /// Its last heartbeat (every few seconds).
    #[schema(format = DateTime)]
    pub last_seen_at: Option<String>,
    /// How many gateway (and hub) streams it held at that heartbeat.
    pub gateways_held: u32,
    /// Whether it is the node that answered this request.
    pub answering: bool,
}

impl From<v1::CoreNode> for CoreNodeView {
    fn from(node: v1::CoreNode) -> Self {
        CoreNodeView {
            id: node.id,
            grpc_address: node.grpc_address,
            started_at: rfc3339(node.started_at),
            last_seen_at: rfc3339(node.last_seen_at),
            gateways_held: node.gateways_held,
            answering: node.answering,
        }
    }
}

/// A sign-in attempt.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SignInView {
    /// Opaque id.
    pub id: String,
    /// When.
    #[schema(format = DateTime)]
    pub at: Option<String>,
    /// `local` or the identity provider's name.
    pub provider: String,
    /// Who it claimed to be.
    pub subject: String,
    /// From where.
    pub client_address: String,
    /// Whether it succeeded.
    pub success: bool,
    /// Why it failed; empty on success.
    pub reason: String,
}

impl From<v1::SignIn> for SignInView {
    fn from(sign_in: v1::SignIn) -> Self {
        SignInView {
            id: sign_in.id,
            at: rfc3339(sign_in.at),
            provider: sign_in.provider,
            subject: sign_in.subject,
            client_address: sign_in.client_address,
            success: sign_in.success,
            reason: sign_in.reason,
        }
    }
}

/// The fleet at a glance.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DashboardView {
    /// Active gateways and hubs with a recent heartbeat.
    pub gateways_online: u32,
    /// Active gateways and hubs without one.
    pub gateways_offline: u32,
    /// Open VPN sessions.
    pub live_sessions: u64,
    /// Configs generated in the last 24 hours.
    pub configs_issued_24h: u64,
    /// Users.
    pub users: u64,
    /// The latest sign-in attempts, newest first.
    pub recent_sign_ins: Vec<SignInView>,
    /// The latest refused sign-in attempts, newest first.
    pub recent_refusals: Vec<SignInView>,
}

impl From<v1::Dashboard> for DashboardView {
    fn from(dashboard: v1::Dashboard) -> Self {
        DashboardView {
            gateways_online: dashboard.gateways_online,
            gateways_offline: dashboard.gateways_offline,
            live_sessions: dashboard.live_sessions,
            configs_issued_24h: dashboard.configs_issued_24h,
            users: dashboard.users,
            recent_sign_ins: dashboard.recent_sign_ins.into_iter().map(SignInView::from).collect(),
            recent_refusals: dashboard.recent_refusals.into_iter().map(SignInView::from).collect(),
        }
    }
}
