//! Gateways and mesh hubs (one `gateways` row in either role): creation, changes, agent
//! tokens, grants and attachments, and deletion, each in one unit of work with what its
//! agent must hear.

use super::UnitOfWork;
use crate::context::CoreContext;
use crate::error::CoreResult;
use crate::fleet::FleetEvent;
use crate::secrets::{GATEWAY_TOKEN_PREFIX, MintedToken, mint_token};
use crate::store::{GatewayChanges, GatewayLink, GatewayRecord, GatewayRole, NewGateway, SessionsOf};

/// Creates a gateway or hub with its first links (checked by the caller) and a new agent
/// token, shown once.
pub async fn create(
    context: &CoreContext,
    gateway: NewGateway,
    links: &[(GatewayLink, Vec<String>)],
) -> CoreResult<(GatewayRecord, MintedToken)> {
    let token = mint_token(GATEWAY_TOKEN_PREFIX);
    let mut work = UnitOfWork::begin(context).await?;
    context.store.create_gateway(&mut work.tx, &gateway, &token, links).await?;
    work.commit().await?;
    Ok((context.store.require_gateway(&gateway.id).await?, token))
}

/// Applies changes to a gateway or hub and replaces the link lists given, with what its
/// agent must hear: fresh rules, and when the change deactivates it, every tunnel
/// through it cut.
pub async fn update(
    context: &CoreContext,
    id: &str,
    role: GatewayRole,
    changes: GatewayChanges,
    links: &[(GatewayLink, Vec<String>)],
) -> CoreResult<GatewayRecord> {
    let deactivating = changes.is_active == Some(false);
    let mut work = UnitOfWork::begin_policy_change(context).await?;
    context.store.update_gateway(&mut work.tx, id, changes).await?;
    for (link, targets) in links {
        context.store.replace_gateway_links(&mut work.tx, id, *link, targets).await?;
    }
    if deactivating {
        let sessions = context.store.open_sessions_in(&mut work.tx, SessionsOf::Gateway(id)).await?;
        work.kill(&sessions, &format!("the {} was deactivated", role.as_str())).await?;
    }
    work.rules_changed(&[id.to_owned()]).await?;
    work.commit().await?;
    context.store.require_gateway(id).await
}

/// Gives a gateway or hub a new agent token, shown once; the old one is dead, and so is
/// any stream it opened.
pub async fn rotate_token(context: &CoreContext, id: &str) -> CoreResult<(GatewayRecord, MintedToken)> {
    let token = mint_token(GATEWAY_TOKEN_PREFIX);
    let rotated = tonic::Status::unauthenticated("this agent's token was rotated");
    let mut work = UnitOfWork::begin(context).await?;
    context.store.set_gateway_token(&mut work.tx, id, &token).await?;
    work.record(FleetEvent::end_stream(id, &rotated, Some(&token.selector))).await?;
    work.commit().await?;
    Ok((context.store.require_gateway(id).await?, token))
}

/// Deletes a gateway or hub: its tunnels (a hub's spokes' among them) are cut, then its
/// agent's stream ends (the stream's queue delivers the kills first); a hub's spokes lose
/// their certificates, with a new CRL.
pub async fn delete(context: &CoreContext, record: &GatewayRecord) -> CoreResult<()> {
    let role = record.role.as_str();
    let mut work = UnitOfWork::begin(context).await?;
    let sessions = context.store.open_sessions_in(&mut work.tx, SessionsOf::Gateway(&record.id)).await?;
    let spoke_certificates_revoked = context.store.delete_gateway(&mut work.tx, &record.id).await?;
    work.kill(&sessions, &format!("the {role} was deleted")).await?;
    let deleted = tonic::Status::not_found(format!("this {role} was deleted"));
    work.record(FleetEvent::end_stream(&record.id, &deleted, None)).await?;
    if spoke_certificates_revoked > 0 {
        work.sign_next_crl().await?;
    }
    work.commit().await?;
    tracing::info!(id = %record.id, role, "deleted");
    Ok(())
}

/// Links a gateway to a user, group or network (`attach`), or removes the link; the
/// caller checks that both ends exist. The gateway's rules change with it.
pub async fn link(
    context: &CoreContext,
    gateway_id: &str,
    link: GatewayLink,
    target: &str,
    attach: bool,
) -> CoreResult<GatewayRecord> {
    let mut work = UnitOfWork::begin_policy_change(context).await?;
    match attach {
        true => context.store.link_gateway(&mut work.tx, gateway_id, link, target).await?,
        false => context.store.unlink_gateway(&mut work.tx, gateway_id, link, target).await?,
    }
    work.rules_changed(&[gateway_id.to_owned()]).await?;
    work.commit().await?;
    context.store.require_gateway(gateway_id).await
}
