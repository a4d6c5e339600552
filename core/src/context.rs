//! What every service shares: the store, the authenticator and settings.

use crate::auth::Authenticator;
use crate::store::Store;

/// Settings the services read.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Seconds between agent heartbeats; three missed ones make a gateway offline.
    pub heartbeat_interval_seconds: i64,
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
}
