//! What every service shares: the store, the authenticator and settings.

use crate::agent_hub::AgentHub;
use crate::auth::Authenticator;
use crate::auth::{Access, Caller};
use crate::error::CoreResult;
use crate::pki::CertificateAuthority;
use crate::ratelimit::RateLimits;
use crate::sealing::SecretBox;
use crate::store::Store;

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
    /// The facade's endpoints as browsers and identity providers reach them (SSO
    /// callbacks, sign-in pages).
    pub public_routes: gatekey_rest::public_routes::PublicRoutes,
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
    pub hub: std::sync::Arc<AgentHub>,
    /// Geo-fence checks.
    pub geo_fence: crate::geofence::GeoFence,
    /// Rate limits.
    pub limits: RateLimits,
    /// Metrics.
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// The fleet's events, for admins watching them.
    pub events: std::sync::Arc<crate::events::EventBus>,
    /// What agents must be told, relayed between the core nodes.
    pub fleet: std::sync::Arc<crate::fleet::FleetRelay>,
    /// Reads the rule snapshots that the pushers ask for, in batches.
    pub snapshots: crate::snapshot_batch::SnapshotBatcher,
    /// What verdicts read of their gateways, per rule version.
    pub verdict_inputs: crate::verdict_inputs::VerdictInputsCache,
    /// Issued configs waiting for their group commit.
    pub config_commits: crate::domain::configs::ConfigCommits,
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
}
