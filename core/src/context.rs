//! What every service shares: the store, the authenticator and settings.

use crate::agent_hub::AgentHub;
use crate::auth::Authenticator;
use crate::auth::{Access, Caller};
use crate::error::CoreResult;
use crate::pki::CertificateAuthority;
use crate::ratelimit::RateLimits;
use crate::sealing::SecretBox;
use crate::store::Store;
use gatekey::v1::{CoreMessage, CrlUpdate, core_message};

/// Settings the services read.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Seconds between agent heartbeats; three missed ones make a gateway offline.
    pub heartbeat_interval_seconds: i64,
    /// Lifetime of client certificates, in seconds.
    pub client_certificate_ttl_seconds: i64,
    /// Lifetime of mesh spoke certificates, in seconds.
    pub spoke_certificate_ttl_seconds: i64,
    /// Lifetime of gateway server certificates, in seconds.
    pub server_certificate_ttl_seconds: i64,
    /// Seconds a generated config stays downloadable (once) before it is purged.
    pub config_download_window_seconds: i64,
    /// The URL browsers reach the REST facade at (for SSO callbacks), no trailing `/`.
    pub public_url: String,
    /// Whose word on a request's client address is believed.
    pub client_address_trust: crate::auth::ClientAddressTrust,
}

impl Settings {
    /// Seconds without a heartbeat after which a gateway counts as offline.
    pub fn offline_after_seconds(&self) -> i64 {
        self.heartbeat_interval_seconds * 3
    }
}

/// Shared state of the gRPC services.
#[derive(Debug)]
pub struct CoreContext {
    /// Storage.
    pub store: Store,
    /// Credential checks.
    pub auth: Authenticator,
    /// Settings.
    pub settings: Settings,
    /// The certificate authority.
    pub authority: CertificateAuthority,
    /// At-rest encryption of secrets.
    pub sealer: SecretBox,
    /// The gateway agents connected to this node.
    pub hub: AgentHub,
    /// Geo-fence checks.
    pub geo_fence: crate::geofence::GeoFence,
    /// Rate limits.
    pub limits: RateLimits,
    /// Metrics.
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// The fleet's events, for admins watching them.
    pub events: crate::events::EventBus,
}

impl CoreContext {
    /// Authenticates an admin whose credential allows `access`, and charges the
    /// caller's admin-operation limit. Every admin method starts here.
    pub async fn admin<T>(&self, request: &tonic::Request<T>, access: Access) -> CoreResult<Caller> {
        let caller = self.auth.authenticate(request, access).await?;
        caller.require_admin()?;
        self.limits.admin.check(&caller.user.id)?;
        Ok(caller)
    }

    /// Signs a CRL with every revocation so far and sends it to every connected agent.
    pub async fn publish_crl(&self) -> CoreResult<()> {
        let crl = crate::pki::lifecycle::rebuild_crl(&self.store, &self.authority).await?;
        let update = CrlUpdate { pem: crl.signed.pem, number: crl.number };
        self.hub.broadcast(&CoreMessage { request_id: 0, body: Some(core_message::Body::CrlUpdate(update)) });
        Ok(())
    }
}
