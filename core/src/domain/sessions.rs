//! VPN sessions: what gateway agents report of them, and cutting them.

use super::UnitOfWork;
use crate::context::CoreContext;
use crate::error::CoreResult;
use crate::store::{GatewayRole, OpenSession, SessionReport, SessionTotals};

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

/// After an agent (re)connects: records the sessions it holds and closes every other one
/// the store still had open on its gateway.
pub async fn reconcile(context: &CoreContext, gateway_id: &str, live: &[SessionReport]) -> CoreResult<()> {
    let mut work = UnitOfWork::begin(context).await?;
    context.store.reconcile_sessions(&mut work.tx, gateway_id, live).await?;
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
