//! Protected networks: a change of one gives the gateways it is attached to fresh rules.

use super::UnitOfWork;
use crate::context::CoreContext;
use crate::error::CoreResult;
use crate::store::{NetworkChanges, NetworkRecord};

/// Applies changes (checked by the caller) to network `id`.
pub async fn update(context: &CoreContext, id: &str, changes: NetworkChanges) -> CoreResult<NetworkRecord> {
    let mut work = UnitOfWork::begin_policy_change(context).await?;
    context.store.update_network(&mut work.tx, id, changes).await?;
    let gateways = context.store.gateways_of_networks(&mut work.tx, &[id]).await?;
    work.rules_changed(&gateways).await?;
    work.commit().await?;
    context.store.require_network(id).await
}

/// Deletes network `id` and detaches it from every gateway.
pub async fn delete(context: &CoreContext, id: &str) -> CoreResult<()> {
    let mut work = UnitOfWork::begin_policy_change(context).await?;
    let gateways = context.store.gateways_of_networks(&mut work.tx, &[id]).await?;
    context.store.delete_network(&mut work.tx, id).await?;
    work.rules_changed(&gateways).await?;
    work.commit().await
}
