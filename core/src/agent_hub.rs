//! The agent hub: which gateways hold a stream to this core node, and the two ways
//! to reach them. Rule changes only mark a gateway dirty (a `Notify`), and that
//! gateway's own pusher sends one fresh snapshot when the agent has taken the last
//! one: bursts coalesce, nothing is ever dropped, and a slow agent slows no one
//! else. Kills, CRLs, replies and the end of the stream go through one unbounded
//! per-stream queue, in order: a stream ended after kills delivers the kills first.

use crate::error::CoreResult;
use crate::metrics::Metrics;
use crate::store::Store;
use gatekey::v1::CoreMessage;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{Notify, mpsc};
use tonic::Status;

/// What goes down a stream: a message, or the status that ends it.
pub type Outbound = Result<CoreMessage, Status>;

/// One live stream's handles, kept by the hub.
#[derive(Debug, Clone)]
struct LinkHandles {
    connection: u64,
    /// The selector of the token the stream was opened with.
    token_selector: String,
    rules_changed: Arc<Notify>,
    replaced: Arc<Notify>,
    outbound: mpsc::UnboundedSender<Outbound>,
}

/// What a stream handler gets when it attaches.
#[derive(Debug)]
pub struct AgentLink {
    /// Identifies this stream among the gateway's successive ones.
    pub connection: u64,
    /// Signalled when the gateway's rules may have changed.
    pub rules_changed: Arc<Notify>,
    /// Signalled when a newer stream for the same gateway replaced this one.
    pub replaced: Arc<Notify>,
    /// Queue of messages to the agent.
    pub outbound: mpsc::UnboundedSender<Outbound>,
    /// The other end of `outbound`, to feed the response stream.
    pub outbound_receiver: mpsc::UnboundedReceiver<Outbound>,
}

/// Registry of connected gateway agents.
#[derive(Debug)]
pub struct AgentHub {
    links: Mutex<HashMap<String, LinkHandles>>,
    next_connection: AtomicU64,
    /// Stream heartbeats not yet written to the store, by gateway (Unix seconds).
    heartbeats: Mutex<HashMap<String, i64>>,
    /// Rule versions agents applied, not yet written to the store, by gateway.
    rules_applied: Mutex<HashMap<String, u64>>,
    /// Where rule-push latency is recorded.
    metrics: Arc<Metrics>,
}

impl AgentHub {
    /// A hub recording push latency in `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> AgentHub {
        AgentHub {
            links: Mutex::default(),
            next_connection: AtomicU64::default(),
            heartbeats: Mutex::default(),
            rules_applied: Mutex::default(),
            metrics,
        }
    }

    /// Where this node's metrics are recorded.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Notes that a gateway applied rule version `version` (and stops its push clock);
    /// [`AgentHub::flush_reports`] writes it with the heartbeats.
    pub fn rules_applied(&self, gateway_id: &str, version: u64) {
        self.metrics.rules_applied(gateway_id);
        let mut applied = self.rules_applied.lock().unwrap_or_else(PoisonError::into_inner);
        let newest = applied.entry(gateway_id.to_owned()).or_default();
        *newest = (*newest).max(version);
    }

    fn links(&self) -> std::sync::MutexGuard<'_, HashMap<String, LinkHandles>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.links.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a new stream for a gateway, opened with the token of `token_selector`,
    /// replacing (and ending) any older one.
    pub fn attach(&self, gateway_id: &str, token_selector: &str) -> AgentLink {
        let (outbound, outbound_receiver) = mpsc::unbounded_channel();
        let handles = LinkHandles {
            connection: self.next_connection.fetch_add(1, Ordering::Relaxed),
            token_selector: token_selector.to_owned(),
            rules_changed: Arc::new(Notify::new()),
            replaced: Arc::new(Notify::new()),
            outbound: outbound.clone(),
        };
        if let Some(old) = self.links().insert(gateway_id.to_owned(), handles.clone()) {
            old.replaced.notify_one();
        }
        AgentLink {
            connection: handles.connection,
            rules_changed: handles.rules_changed,
            replaced: handles.replaced,
            outbound,
            outbound_receiver,
        }
    }

    /// Ends every stream with `reason`, which the agents are told (as `UNAVAILABLE`),
    /// so they reconnect at once, to another node if they know one.
    pub fn close_all(&self, reason: &str) {
        for (_, link) in self.links().drain() {
            let _ = link.outbound.send(Err(Status::unavailable(reason)));
        }
    }

    /// Forgets a stream, unless a newer one already replaced it.
    pub fn detach(&self, gateway_id: &str, connection: u64) {
        let mut links = self.links();
        if links.get(gateway_id).is_some_and(|link| link.connection == connection) {
            links.remove(gateway_id);
        }
    }

    /// Ends the stream of a gateway (deleted, or its token rotated) with `status`, after
    /// whatever is already queued for it (such as the kills of its sessions); a stream
    /// opened with the token of `keep_token_selector` (the new one) is kept.
    pub fn disconnect(&self, gateway_id: &str, status: Status, keep_token_selector: Option<&str>) {
        let mut links = self.links();
        if links.get(gateway_id).is_some_and(|link| Some(link.token_selector.as_str()) == keep_token_selector) {
            return;
        }
        if let Some(link) = links.remove(gateway_id) {
            let _ = link.outbound.send(Err(status));
        }
    }

    /// Notes a heartbeat; [`AgentHub::flush_reports`] writes them in batches, so
    /// a fleet's heartbeats cost one small transaction every few seconds.
    pub fn heartbeat(&self, gateway_id: &str) {
        let now = crate::store::unix_now();
        self.heartbeats.lock().unwrap_or_else(PoisonError::into_inner).insert(gateway_id.to_owned(), now);
    }

    /// Writes the heartbeats and then the applied rule versions noted since the last
    /// flush, each in a transaction of its own (each locks its gateways in id order, as
    /// every writer of gateway rows does; one transaction would lock two sequences).
    /// What a failed write held is noted again for the next flush, unless something
    /// newer was noted meanwhile.
    pub async fn flush_reports(&self, store: &Store) -> CoreResult<()> {
        let heartbeats: Vec<(String, i64)> =
            self.heartbeats.lock().unwrap_or_else(PoisonError::into_inner).drain().collect();
        if !heartbeats.is_empty() {
            let written = async {
                let mut tx = store.begin_write().await?;
                store.record_heartbeats(&mut tx, &heartbeats).await?;
                tx.commit().await.map_err(crate::error::CoreError::from)
            };
            if let Err(error) = written.await {
                renote(&self.heartbeats, heartbeats);
                return Err(error);
            }
        }
        let applied: Vec<(String, u64)> =
            self.rules_applied.lock().unwrap_or_else(PoisonError::into_inner).drain().collect();
        if !applied.is_empty() {
            let written = async {
                let mut tx = store.begin_write().await?;
                store.record_rules_applied(&mut tx, &applied).await?;
                tx.commit().await.map_err(crate::error::CoreError::from)
            };
            if let Err(error) = written.await {
                renote(&self.rules_applied, applied);
                return Err(error);
            }
        }
        Ok(())
    }

    /// How many gateways hold a stream to this node.
    pub fn connected(&self) -> usize {
        self.links().len()
    }

    /// Queues a message for one gateway; false if it has no stream here.
    pub fn send(&self, gateway_id: &str, message: CoreMessage) -> bool {
        self.links().get(gateway_id).is_some_and(|link| link.outbound.send(Ok(message)).is_ok())
    }

    /// Queues a message for every connected gateway.
    pub fn broadcast(&self, message: &CoreMessage) {
        for link in self.links().values() {
            let _ = link.outbound.send(Ok(message.clone()));
        }
    }

    /// Wakes the pushers of those of these gateways that hold a stream here (their
    /// rules changed) and starts their push clocks.
    pub fn wake_pushers(&self, gateway_ids: &[String]) {
        let links = self.links();
        let here: Vec<&String> = gateway_ids.iter().filter(|id| links.contains_key(*id)).collect();
        self.metrics.rules_changed(here.iter().copied());
        for id in here {
            if let Some(link) = links.get(id) {
                link.rules_changed.notify_one();
            }
        }
    }

    /// Wakes the pusher of every stream this node holds (after events were missed).
    pub fn wake_all_pushers(&self) {
        for link in self.links().values() {
            link.rules_changed.notify_one();
        }
    }

    /// Whether a gateway holds a stream to this node.
    pub fn holds(&self, gateway_id: &str) -> bool {
        self.links().contains_key(gateway_id)
    }
}

/// Sends what `compute` produces each time `changed` is signalled, one message at a
/// time: while the receiver has not taken the last one, further signals coalesce into
/// a single recomputation, so the receiver always ends with the latest state and the
/// queue never grows. `Ok(None)` from `compute` ends the pusher; an error is retried.
pub async fn push_coalesced<F, Fut>(changed: Arc<Notify>, sender: mpsc::Sender<CoreMessage>, mut compute: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = CoreResult<Option<CoreMessage>>>,
{
    loop {
        changed.notified().await;
        match compute().await {
            Ok(Some(message)) => {
                if sender.send(message).await.is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, "cannot compute an update; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                changed.notify_one();
            }
        }
    }
}

/// Notes `entries` again after a failed write; for each gateway the newer of what is
/// put back and what was noted meanwhile stays (heartbeat times and rule versions only
/// grow).
fn renote<V: Ord>(noted: &Mutex<HashMap<String, V>>, entries: Vec<(String, V)>) {
    let mut noted = noted.lock().unwrap_or_else(PoisonError::into_inner);
    for (gateway_id, value) in entries {
        match noted.entry(gateway_id) {
            std::collections::hash_map::Entry::Occupied(mut held) if *held.get() < value => {
                held.insert(value);
            }
            std::collections::hash_map::Entry::Occupied(_) => {}
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[tokio::test]
    async fn bursts_coalesce_and_the_last_message_is_the_latest_state() {
        let state = Arc::new(AtomicU64::new(0));
        let changed = Arc::new(Notify::new());
        let (sender, mut receiver) = mpsc::channel(1);
        let reader = state.clone();
        let pusher = tokio::spawn(push_coalesced(changed.clone(), sender, move || {
            let version = reader.load(Ordering::SeqCst);
            async move { Ok(Some(CoreMessage { request_id: version, body: None })) }
        }));
        // A burst of 100 changes while nobody reads.
        for _ in 0..100 {
            state.fetch_add(1, Ordering::SeqCst);
            changed.notify_one();
            tokio::task::yield_now().await;
        }
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let mut received = Vec::new();
        while let Ok(Some(message)) = tokio::time::timeout(std::time::Duration::from_millis(50), receiver.recv()).await
        {
            received.push(message.request_id);
        }
        assert!(received.len() <= 3, "not coalesced: {received:?}");
        assert_eq!(received.last(), Some(&100), "the latest state was lost: {received:?}");
        pusher.abort();
    }

    #[test]
    fn a_rotation_ends_only_streams_opened_with_an_older_token() {
        let hub = AgentHub::new(Arc::new(Metrics::for_node("node-1")));
        let _back = hub.attach("gw-1", "new-token");
        hub.disconnect("gw-1", Status::unauthenticated("rotated"), Some("new-token"));
        assert!(hub.holds("gw-1"), "the agent already back with its new token was cut off");
        let _old = hub.attach("gw-1", "old-token");
        hub.disconnect("gw-1", Status::unauthenticated("rotated"), Some("new-token"));
        assert!(!hub.holds("gw-1"), "a stream on the old token survived the rotation");
        let _any = hub.attach("gw-1", "new-token");
        hub.disconnect("gw-1", Status::not_found("deleted"), None);
        assert!(!hub.holds("gw-1"), "a deletion ends every stream");
    }

    #[test]
    fn a_new_stream_replaces_the_old_and_only_its_detach_counts() {
        let hub = AgentHub::new(Arc::new(Metrics::for_node("node-1")));
        let first = hub.attach("gw-1", "sel-1");
        let second = hub.attach("gw-1", "sel-1");
        assert_eq!(hub.connected(), 1);
        hub.detach("gw-1", first.connection);
        assert_eq!(hub.connected(), 1, "a stale detach does not remove the new stream");
        assert!(hub.send("gw-1", CoreMessage::default()));
        drop(first);
        hub.detach("gw-1", second.connection);
        assert_eq!(hub.connected(), 0);
        assert!(!hub.send("gw-1", CoreMessage::default()));
    }

    #[tokio::test]
    async fn reports_whose_write_fails_wait_for_the_next_flush() {
        let dir = std::env::temp_dir().join(format!("gatekey-hub-flush-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&format!("sqlite://{}?mode=rwc", dir.join("store.db").display())).await.unwrap();
        let hub = AgentHub::new(Arc::new(Metrics::for_node("node-1")));
        store.close().await;
        // An applied version whose write fails is put back; a newer one noted
        // meanwhile wins, an older one does not.
        hub.rules_applied("gw-1", 4);
        hub.rules_applied("gw-2", 7);
        assert!(hub.flush_reports(&store).await.is_err(), "the store is closed");
        assert_eq!(hub.rules_applied.lock().unwrap().get("gw-1"), Some(&4));
        renote(&hub.rules_applied, vec![("gw-1".to_owned(), 3), ("gw-2".to_owned(), 9)]);
        assert_eq!(hub.rules_applied.lock().unwrap().get("gw-1"), Some(&4));
        assert_eq!(hub.rules_applied.lock().unwrap().get("gw-2"), Some(&9));
        // A heartbeat whose write fails waits too.
        hub.heartbeat("gw-1");
        assert!(hub.flush_reports(&store).await.is_err());
        assert!(hub.heartbeats.lock().unwrap().contains_key("gw-1"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
