//! What gateway agents report (their streams, heartbeats and VPN sessions), and cutting
//! sessions.

use super::UnitOfWork;
use crate::context::CoreContext;
use crate::error::CoreResult;
use crate::store::{GatewayRole, OpenSession, SessionReport, SessionTotals, unix_now};

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

/// Records a connection a gateway reported; a hub's spoke coming brings the hub fresh
/// rules (the networks it routes to follow its connected spokes).
pub async fn record_connected(
    context: &CoreContext,
    gateway_id: &str,
    role: GatewayRole,
    report: &SessionReport,
) -> CoreResult<()> {
    let spoke = is_spoke_of_hub(context, gateway_id, role, &report.common_name).await?;
    let mut work = UnitOfWork::begin(context).await?;
    context.store.record_session_connected(&mut work.tx, gateway_id, report).await?;
    if spoke {
        work.rules_changed(&[gateway_id.to_owned()]).await?;
    }
    work.commit().await
}

/// Records the end of a connection a gateway reported; a hub's spoke going brings the
/// hub fresh rules.
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
    if spoke {
        work.rules_changed(&[gateway_id.to_owned()]).await?;
    }
    work.commit().await
}

/// An agent opened its stream to this node: the sessions it holds are recorded and
/// every other one the store still had open on its gateway is closed, with its
/// heartbeat and this node as the stream's holder. At a hub that may change which
/// spokes are connected, so the hub gets fresh rules.
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
    work.commit().await
}

/// An agent's stream to this node ended: this node no longer holds it (unless another
/// node took it over meanwhile).
pub async fn stream_closed(context: &CoreContext, gateway_id: &str) -> CoreResult<()> {
    let mut work = UnitOfWork::begin(context).await?;
    context.store.record_stream_holder(&mut work.tx, gateway_id, context.fleet.node_id(), false).await?;
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
