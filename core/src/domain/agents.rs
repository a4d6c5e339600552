//! What gateway agents report (their streams, heartbeats and VPN sessions), and cutting
//! sessions.

use super::UnitOfWork;
use crate::context::CoreContext;
use crate::error::CoreResult;
use crate::store::{GatewayRole, OpenSession, SessionReport, SessionTotals, unix_now};
use gatekey::v1::{GatewayPresence, SessionChange, event};

/// A VPN session's id: its gateway and the agent's key for it.
pub fn session_id(gateway_id: &str, session_key: &str) -> String {
    format!("{gateway_id}:{session_key}")
}

/// What watching admins see of a session opening or closing.
fn session_change(gateway_id: &str, session_key: &str, common_name: &str, open: bool) -> event::Kind {
    event::Kind::Session(SessionChange {
        session_id: session_id(gateway_id, session_key),
        gateway_id: gateway_id.to_owned(),
        common_name: common_name.to_owned(),
        open,
    })
}

/// What watching admins see of an agent's stream opening or closing.
fn presence(gateway_id: &str, connected: bool) -> event::Kind {
    event::Kind::Gateway(GatewayPresence { gateway_id: gateway_id.to_owned(), connected })
}

/// Orders the gateways holding `sessions`, wherever their streams live, to end them for
/// `reason` (an admin's Disconnect, a session that raced a revocation).
pub async fn cut(context: &CoreContext, sessions: &[OpenSession], reason: &str) -> CoreResult<()> {
    if sessions.is_empty() {
        return Ok(());
    }
    let mut work = UnitOfWork::begin(context).await?;
    work.kill(sessions, reason).await?;
    work.commit().await
}

/// Records a connection a gateway reported, and tells the watchers in the same
/// transaction; a hub's spoke coming brings the hub fresh rules (the networks it routes
/// to follow its connected spokes).
pub async fn record_connected(
    context: &CoreContext,
    gateway_id: &str,
    role: GatewayRole,
    report: &SessionReport,
) -> CoreResult<()> {
    let spoke = is_spoke_of_hub(context, gateway_id, role, &report.common_name).await?;
    let mut work = UnitOfWork::begin(context).await?;
    context.store.record_session_connected(&mut work.tx, gateway_id, report).await?;
    work.watched(session_change(gateway_id, &report.session_key, &report.common_name, true)).await?;
    if spoke {
        work.rules_changed(&[gateway_id.to_owned()]).await?;
    }
    work.commit().await
}

/// Records the end of a connection a gateway reported, and tells the watchers in the
/// same transaction; a hub's spoke going brings the hub fresh rules.
pub async fn record_disconnected(
    context: &CoreContext,
    gateway_id: &str,
    role: GatewayRole,
    (session_key, common_name): (&str, &str),
    totals: SessionTotals,
) -> CoreResult<()> {
    let spoke = is_spoke_of_hub(context, gateway_id, role, common_name).await?;
    let mut work = UnitOfWork::begin(context).await?;
    context.store.record_session_disconnected(&mut work.tx, gateway_id, session_key, totals).await?;
    work.watched(session_change(gateway_id, session_key, common_name, false)).await?;
    if spoke {
        work.rules_changed(&[gateway_id.to_owned()]).await?;
    }
    work.commit().await
}

/// An agent opened its stream to this node: the sessions it holds are recorded and
/// every other one the store still had open on its gateway is closed, with its
/// heartbeat and this node as the stream's holder, and the watchers are told. At a hub
/// that may change which spokes are connected, so the hub gets fresh rules.
pub async fn stream_opened(
    context: &CoreContext,
    gateway_id: &str,
    role: GatewayRole,
    live: &[SessionReport],
) -> CoreResult<()> {
    let mut work = UnitOfWork::begin(context).await?;
    context.store.reconcile_sessions(&mut work.tx, gateway_id, live).await?;
    if role == GatewayRole::Hub {
        work.rules_changed(&[gateway_id.to_owned()]).await?;
    }
    context.store.record_heartbeats(&mut work.tx, &[(gateway_id.to_owned(), unix_now())]).await?;
    context.store.record_stream_holder(&mut work.tx, gateway_id, context.fleet.node_id(), true).await?;
    work.watched(presence(gateway_id, true)).await?;
    work.commit().await
}

/// An agent's stream to this node ended (and this node holds no newer one): this node
/// no longer holds it (another node that took it over meanwhile keeps it), and the
/// watchers are told.
pub async fn stream_closed(context: &CoreContext, gateway_id: &str) -> CoreResult<()> {
    let mut work = UnitOfWork::begin(context).await?;
    context.store.record_stream_holder(&mut work.tx, gateway_id, context.fleet.node_id(), false).await?;
    work.watched(presence(gateway_id, false)).await?;
    work.commit().await
}

/// A gateway's heartbeat, heard now.
pub async fn heartbeat(context: &CoreContext, gateway_id: &str) -> CoreResult<()> {
    let mut work = UnitOfWork::begin(context).await?;
    context.store.record_heartbeats(&mut work.tx, &[(gateway_id.to_owned(), unix_now())]).await?;
    work.commit().await
}

/// Whether `common_name` is a spoke of the hub `gateway_id`.
async fn is_spoke_of_hub(
    context: &CoreContext,
    gateway_id: &str,
    role: GatewayRole,
    common_name: &str,
) -> CoreResult<bool> {
    Ok(role == GatewayRole::Hub && context.store.find_spoke(gateway_id, common_name).await?.is_some())
}
