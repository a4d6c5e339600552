//! Mesh spokes: what changes when a spoke's agent provisions and when an admin removes a
//! spoke (hubs are gateways, see [`super::gateways`]).

use super::{CertificateKind, UnitOfWork};
use crate::context::CoreContext;
use crate::error::{CoreError, CoreResult};
use crate::ovpn::{ClientProfile, render_client_profile};
use crate::pki::CertificatePurpose;
use crate::pki::lifecycle::gateway_tls_crypt_key;
use crate::store::{CertificateRecord, SessionsOf, SpokeRecord, unix_now};
use crate::validate;
use ipnet::IpNet;

/// What a spoke's agent gets when it provisions.
#[derive(Debug)]
pub struct ProvisionedSpoke {
    /// The spoke as recorded now.
    pub spoke: SpokeRecord,
    /// Its OpenVPN client profile, with its new private key.
    pub openvpn_config: String,
    /// When its new certificate expires (Unix seconds).
    pub expires_at: i64,
}

/// Provisions a spoke (its agent asks, with the networks it wants to advertise; none
/// means all its local ones) at its active hub: a new certificate, which becomes the
/// spoke's only valid one, in a client profile for the hub.
pub async fn provision(
    context: &CoreContext,
    spoke: &SpokeRecord,
    requested: &[String],
) -> CoreResult<ProvisionedSpoke> {
    let hub = context.store.require_gateway(&spoke.hub_id).await?;
    if !hub.is_active {
        return Err(CoreError::Forbidden(format!("hub `{}` is deactivated", hub.name)));
    }
    let advertised = advertised(spoke, requested)?;
    let issued = context.authority.issue(
        &CertificatePurpose::Spoke { spoke_id: spoke.id.clone() },
        context.settings.spoke_certificate_ttl_seconds,
    )?;
    let certificate = CertificateRecord {
        serial: issued.serial.clone(),
        kind: CertificateKind::Spoke,
        subject: spoke.id.clone(),
        user_id: None,
        gateway_id: Some(hub.id.clone()),
        issued_at: unix_now(),
        expires_at: issued.not_after,
        revoked_at: None,
        revocation_reason: None,
    };
    let spoke = record_provisioning(context, spoke, &advertised, &certificate).await?;
    let tls_crypt_key = gateway_tls_crypt_key(&context.store, &context.sealer, &hub.id).await?;
    let openvpn_config = render_client_profile(&ClientProfile {
        hostname: &hub.hostname,
        port: hub.port,
        protocol: hub.protocol,
        ca_certificate_pem: context.authority.certificate_pem(),
        client_certificate_pem: &issued.certificate_pem,
        client_private_key_pem: &issued.private_key_pem,
        tls_crypt_key: &tls_crypt_key,
    });
    tracing::info!(hub = %hub.id, spoke = %spoke.id, serial = %issued.serial, networks = ?advertised, "provisioned mesh spoke");
    Ok(ProvisionedSpoke { spoke, openvpn_config, expires_at: issued.not_after })
}

/// Records what a spoke's agent provisioned: the networks it advertises and its new
/// certificate. Earlier certificates are revoked as superseded (with a new CRL) and a
/// tunnel on one is cut; the hub learns the advertised networks anew when the agent
/// reconnects with the new certificate.
async fn record_provisioning(
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

/// Removes a hub's spoke: its certificates are revoked (with a new CRL), its tunnels cut,
/// and the hub gets fresh rules.
pub async fn delete_spoke(context: &CoreContext, hub_id: &str, spoke_id: &str) -> CoreResult<()> {
    let mut work = UnitOfWork::begin(context).await?;
    let revoked = context.store.delete_spoke(&mut work.tx, hub_id, spoke_id).await?;
    end_tunnels(context, &mut work, spoke_id, "the spoke was removed").await?;
    // The hub no longer routes to the spoke's networks (its tunnel's end, reported
    // later, is no longer a spoke's).
    work.rules_changed(&[hub_id.to_owned()]).await?;
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

/// The networks a spoke advertises: each inside one of its `local_cidrs`; none means all.
fn advertised(spoke: &SpokeRecord, requested: &[String]) -> CoreResult<Vec<String>> {
    if requested.is_empty() {
        return Ok(spoke.local_cidrs.clone());
    }
    let requested = validate::spoke_networks("advertised_cidrs", requested)?;
    let allowed: Vec<IpNet> = spoke.local_cidrs.iter().filter_map(|cidr| cidr.parse().ok()).collect();
    for cidr in &requested {
        let inside = cidr.parse::<IpNet>().is_ok_and(|net| allowed.iter().any(|local| local.contains(&net)));
        if !inside {
            return Err(CoreError::InvalidArgument(format!(
                "advertised_cidrs: `{cidr}` is not inside the spoke's networks ({})",
                spoke.local_cidrs.join(", ")
            )));
        }
    }
    Ok(requested)
}
