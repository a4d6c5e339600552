//! What admins watching the fleet see: each event goes through the outbox, so the
//! watchers of every node get it, whichever node saw it happen.

use super::UnitOfWork;
use crate::context::CoreContext;
use gatekey::v1::event;

/// Publishes an event that happened now, in a unit of work of its own, to the watchers
/// of every node (an operation that writes anyway records it in its own unit with
/// [`UnitOfWork::watched`]). Watching is best effort: an event that cannot be recorded
/// is logged and dropped, and the operation that caused it goes on.
pub async fn publish(context: &CoreContext, kind: event::Kind) {
    let recorded = async {
        let mut work = UnitOfWork::begin(context).await?;
        work.watched(kind).await?;
        work.commit().await
    };
    if let Err(error) = recorded.await {
        tracing::warn!(%error, "cannot publish a watched event");
    }
}
