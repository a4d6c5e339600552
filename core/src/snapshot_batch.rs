//! Rule snapshots computed in batches. A change that touches many gateways wakes all
//! their pushers at once, and each asks for its gateway's snapshot: the requests that
//! arrive while no batch is being read join one batch, whose first requester reads the
//! inputs of all of them with [`policy::snapshots`] (a handful of queries, whatever the
//! number of gateways) while the others wait for it. One batch is read at a time: the
//! requests made during a read gather into the next batch. A batch is read only after every
//! request in it was made, so it sees every change committed before any of them.

use crate::error::CoreResult;
use crate::policy;
use crate::store::Store;
use gatekey::v1::RuleSnapshot;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::OnceCell;

/// What a read batch answers: each requested gateway's snapshot (absent once it is
/// deleted), or why the read failed.
type BatchResult = Result<Arc<HashMap<String, RuleSnapshot>>, String>;

/// Requests that will be read together.
#[derive(Debug, Default)]
struct Batch {
    gateway_ids: Mutex<BTreeSet<String>>,
    result: OnceCell<BatchResult>,
}

/// Gathers snapshot requests into batches; one per core node.
#[derive(Debug, Default)]
pub struct SnapshotBatcher {
    /// The batch new requests join, until its reading starts.
    open: Mutex<Option<Arc<Batch>>>,
    /// Held while a batch is read.
    reading: tokio::sync::Mutex<()>,
}

impl SnapshotBatcher {
    /// The current rule snapshot of `gateway_id`, read with the other requests made
    /// meanwhile; `None` once it is deleted.
    pub async fn snapshot(&self, store: &Store, gateway_id: &str) -> CoreResult<Option<RuleSnapshot>> {
        let batch = {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            let batch = open.get_or_insert_with(Arc::default).clone();
            batch.gateway_ids.lock().unwrap_or_else(PoisonError::into_inner).insert(gateway_id.to_owned());
            batch
        };
        match batch.result.get_or_init(|| self.read(store, &batch)).await {
            Ok(snapshots) => Ok(snapshots.get(gateway_id).cloned()),
            Err(error) => {
                // One gateway's unreadable input must not hold up the others: each
                // reads its own, and only the one at fault keeps failing.
                tracing::warn!(%error, gateway = %gateway_id, "a batch of rule snapshots failed; reading this one alone");
                Ok(policy::snapshots(store, &[gateway_id.to_owned()]).await?.remove(gateway_id))
            }
        }
    }

    /// Waits for its turn (one batch is read at a time), then closes `batch` to new
    /// requests and reads the snapshots of its gateways.
    async fn read(&self, store: &Store, batch: &Arc<Batch>) -> BatchResult {
        // The other pushers woken with this one get a turn to join first, and while
        // another batch is read, this one gathers every request made meanwhile (rather
        // than many small batches competing for the database).
        tokio::task::yield_now().await;
        let turn = self.reading.lock().await;
        let gateway_ids: Vec<String> = {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            if open.as_ref().is_some_and(|current| Arc::ptr_eq(current, batch)) {
                *open = None;
            }
            batch.gateway_ids.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect()
        };
        let read = policy::snapshots(store, &gateway_ids).await.map(Arc::new).map_err(|error| error.to_string());
        drop(turn);
        read
    }
}
