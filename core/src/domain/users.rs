//! Changes to a user, by an admin or by their identity provider at sign-in.

use super::UnitOfWork;
use crate::context::CoreContext;
use crate::error::CoreResult;
use crate::store::{SessionsOf, UserChanges, UserRecord};

/// Applies changes (checked by the caller) to user `id`. VPN sessions run under the old
/// certificate name, so disabling the user or changing their e-mail address cuts them;
/// the gateways granted to the user before or after get fresh rules.
pub async fn update(context: &CoreContext, id: &str, changes: UserChanges) -> CoreResult<UserRecord> {
    let mut work = UnitOfWork::begin_policy_change(context).await?;
    update_in(context, &mut work, id, changes).await?;
    work.commit().await?;
    context.store.require_user(id).await
}

/// [`update`] as part of a larger unit of work, begun with
/// [`UnitOfWork::begin_policy_change`].
pub async fn update_in(
    context: &CoreContext,
    work: &mut UnitOfWork<'_>,
    id: &str,
    changes: UserChanges,
) -> CoreResult<()> {
    let update = context.store.update_user(&mut work.tx, id, changes).await?;
    if let Some(why) = update.ends_vpn_sessions {
        let sessions = context.store.open_sessions_in(&mut work.tx, SessionsOf::Identity(&update.old_email)).await?;
        work.kill(&sessions, why.reason()).await?;
    }
    work.rules_changed(&update.gateways_changed).await
}
