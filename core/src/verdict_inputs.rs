//! What a verdict reads of its gateway (the gateway, its policy, who is granted it),
//! kept per gateway at its rule version. Every change that could alter a verdict there
//! (the gateway itself, its grants, networks and rules, a granted user's groups or
//! state, a hub's connected spokes) bumps the version in its own transaction, so inputs
//! read at the version the store holds now are current: a verdict costs one indexed
//! read of the version, then the certificate and its holder, instead of a dozen queries.

use crate::error::CoreResult;
use crate::policy::GatewayPolicy;
use crate::store::{GatewayRecord, Store};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

/// A gateway's verdict inputs at one rule version.
pub struct VerdictInputs {
    /// The rule version they were read at (or after).
    pub version: u64,
    /// The gateway or hub.
    pub gateway: GatewayRecord,
    /// Its rules and networks (and at a hub, its connected spokes' networks).
    pub policy: GatewayPolicy,
    /// The enabled users granted it, directly or through a group (a user created since is
    /// not among them: a verdict looks up who is missing).
    pub granted: HashSet<String>,
}

/// The newest verdict inputs of each gateway verified on this node.
#[derive(Default)]
pub struct VerdictInputsCache {
    entries: Mutex<HashMap<String, Arc<VerdictInputs>>>,
}

impl std::fmt::Debug for VerdictInputsCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerdictInputsCache").finish_non_exhaustive()
    }
}

impl VerdictInputsCache {
    /// The inputs of `gateway_id` at its current rule version, read from the store when
    /// this node holds none at that version; `NotFound` when the gateway is gone.
    pub async fn current(&self, store: &Store, gateway_id: &str) -> CoreResult<Arc<VerdictInputs>> {
        // The version first: what is read after it is at least as new.
        let version = match store.rules_version(gateway_id).await {
            Ok(version) => version,
            Err(error) => {
                self.entries.lock().unwrap_or_else(PoisonError::into_inner).remove(gateway_id);
                return Err(error);
            }
        };
        let held = self.entries.lock().unwrap_or_else(PoisonError::into_inner).get(gateway_id).cloned();
        if let Some(inputs) = held.filter(|inputs| inputs.version == version) {
            return Ok(inputs);
        }
        let gateway = store.require_gateway(gateway_id).await?;
        let policy = GatewayPolicy::load(store, &gateway).await?;
        let (mut granted, _) = store.users_granted_gateways(&[gateway_id.to_owned()]).await?;
        let granted = granted.remove(gateway_id).unwrap_or_default().into_iter().collect();
        let inputs = Arc::new(VerdictInputs { version, gateway, policy, granted });
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        // A newer version read meanwhile by another verdict stays.
        if entries.get(gateway_id).is_none_or(|held| held.version <= version) {
            entries.insert(gateway_id.to_owned(), inputs.clone());
        }
        Ok(inputs)
    }
}
