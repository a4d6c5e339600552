//! Access rules: each change gives the gateways of the networks concerned fresh rules.

use super::UnitOfWork;
use crate::context::CoreContext;
use crate::error::CoreResult;
use crate::ids::{IdKind, new_id};
use crate::store::{AccessRuleFields, AccessRuleRecord};

/// Creates a rule (its fields checked by the caller).
pub async fn create(context: &CoreContext, fields: AccessRuleFields) -> CoreResult<AccessRuleRecord> {
    let id = new_id(IdKind::AccessRule);
    let mut work = UnitOfWork::begin_policy_change(context).await?;
    context.store.create_access_rule(&mut work.tx, &id, &fields).await?;
    let gateways = context.store.gateways_of_networks(&mut work.tx, &[&fields.network_id]).await?;
    work.rules_changed(&gateways).await?;
    work.commit().await?;
    context.store.require_access_rule(&id).await
}

/// Replaces every writable field of rule `id`; the gateways of its old and new network
/// get fresh rules.
pub async fn replace(context: &CoreContext, id: &str, fields: AccessRuleFields) -> CoreResult<AccessRuleRecord> {
    let mut work = UnitOfWork::begin_policy_change(context).await?;
    let old_network = context.store.replace_access_rule(&mut work.tx, id, &fields).await?;
    let networks = [old_network.as_str(), fields.network_id.as_str()];
    let gateways = context.store.gateways_of_networks(&mut work.tx, &networks).await?;
    work.rules_changed(&gateways).await?;
    work.commit().await?;
    context.store.require_access_rule(id).await
}

/// Deletes rule `id`.
pub async fn delete(context: &CoreContext, id: &str) -> CoreResult<()> {
    let mut work = UnitOfWork::begin_policy_change(context).await?;
    let network = context.store.delete_access_rule(&mut work.tx, id).await?;
    let gateways = context.store.gateways_of_networks(&mut work.tx, &[&network]).await?;
    work.rules_changed(&gateways).await?;
    work.commit().await
}
