//! Mesh spokes: what changes when a spoke's agent provisions and when an admin removes a
//! spoke (hubs are gateways, see [`super::gateways`]).

use super::UnitOfWork;
use crate::context::CoreContext;
use crate::error::CoreResult;
use crate::store::{CertificateRecord, SessionsOf, SpokeRecord};

/// Records what a spoke's agent provisioned: the networks it advertises and its new
/// certificate, which becomes its only valid one. Earlier certificates are revoked as
/// superseded (with a new CRL) and a tunnel on one is cut; the hub learns the advertised
/// networks anew when the agent reconnects with the new certificate.
pub async fn record_provisioning(
    context: &CoreContext,
    spoke: &SpokeRecord,
    advertised: &[String],
    certificate: &CertificateRecord,
) -> CoreResult<SpokeRecord> {
    let mut work = UnitOfWork::begin(context).await?;
    let (spoke, superseded) =
        context.store.record_spoke_provisioning(&mut work.tx, spoke, advertised, certificate).await?;
    end_tunnels(context, &mut work, &spoke.id, "the spoke's certificate was renewed").await?;
    if superseded > 0 {
        work.sign_next_crl().await?;
    }
    work.commit().await?;
    Ok(spoke)
}

/// Removes a hub's spoke: its certificates are revoked (with a new CRL) and its tunnels cut.
pub async fn delete_spoke(context: &CoreContext, hub_id: &str, spoke_id: &str) -> CoreResult<()> {
    let mut work = UnitOfWork::begin(context).await?;
    let revoked = context.store.delete_spoke(&mut work.tx, hub_id, spoke_id).await?;
    end_tunnels(context, &mut work, spoke_id, "the spoke was removed").await?;
    if revoked > 0 {
        work.sign_next_crl().await?;
    }
    work.commit().await?;
    tracing::info!(hub = %hub_id, spoke = %spoke_id, "deleted mesh spoke");
    Ok(())
}

/// Records the order cutting the tunnels the spoke has open, for `reason`.
async fn end_tunnels(context: &CoreContext, work: &mut UnitOfWork<'_>, spoke_id: &str, reason: &str) -> CoreResult<()> {
    let sessions = context.store.open_sessions_in(&mut work.tx, SessionsOf::Identity(spoke_id)).await?;
    work.kill(&sessions, reason).await
}
