//! What agents must be told, wherever their stream lives. A change made on any core
//! node becomes a [`FleetEvent`] in the store's outbox; the node applies it to the
//! streams it holds at once, and every other node's relay reads it from the outbox by
//! id and applies it to theirs. On PostgreSQL a `NOTIFY` at commit wakes the relays;
//! a relay whose listening connection drops listens again and then catches up from
//! the last id it applied (and polls while it cannot listen). What a relay cannot
//! deliver it makes good where it can: events pruned before a long-cut-off node read
//! them resync its streams, and an agent that attaches (after moving between nodes,
//! say) gets the current CRL and kills for its sessions that no longer stand. A kill
//! for a gateway that holds no stream anywhere at that moment is otherwise not kept.
//! SQLite serves one node: its events are applied in-process and kept in the same
//! outbox.

use crate::agent_hub::AgentHub;
use crate::context::CoreContext;
use crate::error::{CoreError, CoreResult};
use crate::events::EventBus;
use crate::store::{NodeRecord, OpenSession, OutboxEntry, Store};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gatekey::v1::{CoreMessage, CrlUpdate, Event, KillSession, core_message::Body};
use prost::Message;
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// One thing the fleet's agents must hear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FleetEvent {
    /// These gateways' rules changed (their versions were bumped with the event):
    /// their pushers send fresh snapshots.
    RulesChanged {
        /// The gateways.
        gateway_ids: Vec<String>,
    },
    /// These sessions must end at their gateways, for `reason`.
    KillSessions {
        /// The sessions.
        sessions: Vec<SessionToKill>,
        /// Why (the client is told).
        reason: String,
    },
    /// A new CRL for every agent.
    Crl {
        /// The CRL, PEM.
        pem: String,
        /// Its number.
        number: u64,
    },
    /// Something admins watching the fleet see (an agent came or went, a session opened
    /// or closed, a config was issued, a sign-in was tried), for the watchers of every
    /// node.
    Watched {
        /// The `Event`, protobuf-encoded, base64.
        event: String,
    },
    /// A gateway's stream must end (deleted, or its token rotated).
    EndStream {
        /// The gateway.
        gateway_id: String,
        /// The gRPC status code it ends with.
        code: i32,
        /// The message it ends with.
        message: String,
        /// A stream opened with this token (the new one, after a rotation) is kept.
        #[serde(default)]
        keep_token_selector: Option<String>,
    },
}

impl FleetEvent {
    /// The order ending a gateway's stream with `status`, after what is already queued for
    /// it (such as the kills of its sessions); a stream opened with the token of
    /// `keep_token_selector` is kept (an agent already back with its new token).
    pub fn end_stream(gateway_id: &str, status: &tonic::Status, keep_token_selector: Option<&str>) -> FleetEvent {
        FleetEvent::EndStream {
            gateway_id: gateway_id.to_owned(),
            code: status.code() as i32,
            message: status.message().to_owned(),
            keep_token_selector: keep_token_selector.map(str::to_owned),
        }
    }

    /// The order to end `sessions` for `reason`; none when there are none.
    pub fn kill(sessions: &[OpenSession], reason: &str) -> Option<FleetEvent> {
        if sessions.is_empty() {
            return None;
        }
        let sessions = sessions
            .iter()
            .map(|session| SessionToKill {
                gateway_id: session.gateway_id.clone(),
                common_name: session.common_name.clone(),
                serial: session.serial.clone(),
            })
            .collect();
        Some(FleetEvent::KillSessions { sessions, reason: reason.to_owned() })
    }
}

/// An event as the outbox holds it, with when it was made (Unix milliseconds; 0 in the
/// events of earlier releases), for the relay's delay metric.
#[derive(Debug, Serialize, Deserialize)]
struct OutboxPayload<E> {
    #[serde(default)]
    made_at_ms: i64,
    #[serde(flatten)]
    event: E,
}

/// The current time in Unix milliseconds.
fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
}

/// A session to end, as its gateway knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionToKill {
    /// The gateway holding it.
    pub gateway_id: String,
    /// The certificate's common name.
    pub common_name: String,
    /// The certificate's serial.
    pub serial: String,
}

/// A node whose heartbeat is older than this is gone (it beats every few seconds).
pub const NODE_GONE_AFTER_SECONDS: i64 = 30;
/// How long an event stays in the outbox.
const EVENT_RETENTION_SECONDS: i64 = 3600;
/// How often a relay reads the outbox even without a notification (a safety net; the
/// notification and the catch-up after a lost connection are what deliver on time).
const SAFETY_POLL: Duration = Duration::from_secs(30);
/// How long a relay waits for a read of the outbox (over a listening connection that
/// may have stalled without a word) before it listens again.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How many events a relay reads at a time.
const READ_BATCH: u32 = 500;

/// This node's end of the fleet: publishes events and relays the other nodes' ones.
#[derive(Debug)]
pub struct FleetRelay {
    node_id: String,
    grpc_address: String,
    started_at: i64,
    /// The newest event this node has applied (or that was made before it started).
    applied_up_to: AtomicI64,
}

impl FleetRelay {
    /// The relay of a node that starts now, reachable at `grpc_address`, with a new id.
    pub fn new(grpc_address: String) -> FleetRelay {
        FleetRelay {
            node_id: crate::ids::new_id(crate::ids::IdKind::Node),
            grpc_address,
            started_at: crate::store::unix_now(),
            applied_up_to: AtomicI64::new(0),
        }
    }

    /// Starts after the newest event in the outbox: streams that attach from now on get
    /// a full snapshot, so older events do not concern them. Called before the node
    /// serves, so no event made after a stream attaches can be passed over.
    pub async fn start_after_outbox(&self, store: &Store) -> CoreResult<()> {
        self.applied_up_to.store(store.latest_fleet_event_id().await?, Ordering::Release);
        Ok(())
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Records this node's heartbeat, with how many gateway streams it holds.
    pub async fn heartbeat(&self, store: &Store, gateways_held: usize) -> CoreResult<()> {
        let node = NodeRecord {
            id: self.node_id.clone(),
            grpc_address: self.grpc_address.clone(),
            started_at: self.started_at,
            last_seen_at: crate::store::unix_now(),
            gateways_held: i64::try_from(gateways_held).unwrap_or(i64::MAX),
        };
        store.record_node_heartbeat(&node).await
    }

    /// Removes this node's row (when it stops).
    pub async fn leave(&self, store: &Store) -> CoreResult<()> {
        store.remove_node(&self.node_id).await
    }

    /// `event` as this node writes it to the outbox.
    pub(crate) fn outbox_entry(&self, event: &FleetEvent) -> CoreResult<OutboxEntry> {
        let payload = serde_json::to_string(&OutboxPayload { made_at_ms: unix_now_ms(), event })
            .map_err(|e| CoreError::Internal(e.to_string()))?;
        Ok(OutboxEntry { node_id: self.node_id.clone(), payload })
    }

    /// Relays the other nodes' events to the streams this node holds until `stop`
    /// resolves, from where [`FleetRelay::start_after_outbox`] left it.
    pub async fn run(context: Arc<CoreContext>, stop: impl std::future::Future<Output = ()>) -> Result<(), String> {
        let (this, store, hub, watchers) = (&context.fleet, &context.store, &context.hub, &context.events);
        tokio::pin!(stop);
        let mut poll = tokio::time::interval(SAFETY_POLL);
        loop {
            // Listen first, then catch up: an event committed in between is read by
            // the catch-up or announced to the new listener, never neither.
            let listener = match store.fleet_listener(&this.node_id).await {
                Ok(listener) => listener,
                Err(error) => {
                    // Without a listener, read the outbox at each retry instead.
                    tracing::warn!(%error, "cannot listen for the fleet's events; polling and retrying");
                    let _ = this.catch_up(store, None, hub, watchers).await;
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        () = &mut stop => return Ok(()),
                    }
                }
            };
            let Some(mut listener) = listener else {
                // SQLite: one node, whose own events are applied as they are made.
                let _ = this.catch_up(store, None, hub, watchers).await;
                stop.await;
                return Ok(());
            };
            if !this.catch_up(store, Some(&mut listener), hub, watchers).await {
                continue;
            }
            loop {
                // `Ok(Some(true))`: a notification; `Ok(Some(false))`: the safety poll,
                // which reads through the pool (a listening connection that stalled
                // silently would hold it up).
                let heard = tokio::select! {
                    heard = listener.try_recv() => heard.map(|notification| notification.map(|_| true)),
                    _ = poll.tick() => Ok(Some(false)),
                    () = &mut stop => return Ok(()),
                };
                match heard {
                    Ok(Some(true)) => {
                        if !this.catch_up(store, Some(&mut listener), hub, watchers).await {
                            tracing::warn!("the fleet listener cannot read the outbox; listening again");
                            break;
                        }
                    }
                    Ok(Some(false)) => {
                        this.catch_up(store, None, hub, watchers).await;
                    }
                    Ok(None) => {
                        tracing::warn!("the fleet listener lost its connection; listening again");
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "the fleet listener failed; listening again");
                        break;
                    }
                }
            }
        }
    }

    /// Applies the other nodes' events after the last one applied, in order. Ids are
    /// consecutive (each is the newest plus one, taken under a lock, and a rolled-back
    /// append takes none), so a gap means events were pruned before this node read them
    /// (it was cut off for longer than they are kept): then every stream here gets a
    /// fresh snapshot, which is what the missed rule changes would have caused.
    /// Answers whether the outbox could be read (within [`READ_TIMEOUT`]).
    async fn catch_up(
        &self,
        store: &Store,
        mut listener: Option<&mut PgListener>,
        hub: &AgentHub,
        watchers: &EventBus,
    ) -> bool {
        loop {
            let after = self.applied_up_to.load(Ordering::Acquire);
            let read = store.fleet_events_after(listener.as_deref_mut(), after, READ_BATCH);
            let events = match tokio::time::timeout(READ_TIMEOUT, read).await {
                Ok(Ok(events)) => events,
                Ok(Err(error)) => {
                    tracing::warn!(%error, "cannot read the fleet's outbox");
                    return false;
                }
                Err(_) => {
                    tracing::warn!("reading the fleet's outbox timed out");
                    return false;
                }
            };
            let Some(last) = events.last().map(|event| event.id) else { return true };
            if events.first().is_some_and(|first| first.id > after + 1) {
                tracing::warn!(
                    after,
                    next = events[0].id,
                    "fleet events were pruned before this node read them; resyncing its streams"
                );
                hub.wake_all_pushers();
            }
            for record in events.iter().filter(|record| record.node_id != self.node_id) {
                match serde_json::from_str::<OutboxPayload<FleetEvent>>(&record.payload) {
                    Ok(OutboxPayload { made_at_ms, event }) => {
                        apply(hub, watchers, &event);
                        if made_at_ms > 0 {
                            hub.metrics().event_relayed((unix_now_ms() - made_at_ms).max(0) as f64 / 1000.0);
                        }
                    }
                    Err(error) => tracing::warn!(%error, id = record.id, "skipping an event this node cannot read"),
                }
            }
            self.applied_up_to.store(last, Ordering::Release);
        }
    }

    /// Drops old events from the outbox and the rows of nodes long gone (any node may;
    /// it is idempotent).
    pub async fn prune(&self, store: &Store) -> CoreResult<u64> {
        store.prune_nodes(crate::store::unix_now() - NODE_GONE_AFTER_SECONDS * 10).await?;
        store.prune_fleet_events(crate::store::unix_now() - EVENT_RETENTION_SECONDS).await
    }
}

/// Applies an event to the streams and the watchers this node holds.
pub(crate) fn apply(hub: &AgentHub, watchers: &EventBus, event: &FleetEvent) {
    match event {
        FleetEvent::Watched { event } => match STANDARD.decode(event).map(|bytes| Event::decode(bytes.as_slice())) {
            Ok(Ok(event)) => watchers.publish(event),
            _ => tracing::warn!("skipping a watched event this node cannot read"),
        },
        FleetEvent::RulesChanged { gateway_ids } => hub.wake_pushers(gateway_ids),
        FleetEvent::KillSessions { sessions, reason } => {
            for session in sessions {
                let message = CoreMessage {
                    request_id: 0,
                    body: Some(Body::KillSession(KillSession {
                        common_name: session.common_name.clone(),
                        serial: session.serial.clone(),
                        reason: reason.clone(),
                    })),
                };
                if hub.send(&session.gateway_id, message) {
                    tracing::info!(gateway = %session.gateway_id, serial = %session.serial, "kill ordered");
                }
            }
        }
        FleetEvent::Crl { pem, number } => hub.broadcast(&CoreMessage {
            request_id: 0,
            body: Some(Body::CrlUpdate(CrlUpdate { pem: pem.clone(), number: *number })),
        }),
        FleetEvent::EndStream { gateway_id, code, message, keep_token_selector } => hub.disconnect(
            gateway_id,
            tonic::Status::new(tonic::Code::from_i32(*code), message.clone()),
            keep_token_selector.as_deref(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    /// A kill of alice's session at gateway `gw-here`, for `reason`.
    fn kill(reason: &str) -> FleetEvent {
        let session = OpenSession {
            gateway_id: "gw-here".into(),
            common_name: "alice@example.com".into(),
            serial: "0a1b".into(),
        };
        FleetEvent::kill(&[session], reason).unwrap()
    }

    /// Appends `event` as made by `node_id` 5 ms ago, in a transaction of its own.
    async fn append(store: &Store, node_id: &str, event: &FleetEvent) {
        let payload = OutboxPayload { made_at_ms: unix_now_ms() - 5, event };
        let entry = OutboxEntry { node_id: node_id.into(), payload: serde_json::to_string(&payload).unwrap() };
        let mut tx = store.begin_write().await.unwrap();
        store.append_fleet_event(&mut tx, &entry).await.unwrap();
        tx.commit().await.unwrap();
    }

    /// The kill reasons queued for a stream, draining it.
    fn kills(link: &mut crate::agent_hub::AgentLink) -> Vec<String> {
        let mut reasons = Vec::new();
        while let Ok(Ok(message)) = link.outbound_receiver.try_recv() {
            if let Some(Body::KillSession(kill)) = message.body {
                reasons.push(kill.reason);
            }
        }
        reasons
    }

    #[tokio::test]
    async fn the_relay_applies_other_nodes_events_once_in_order_and_resyncs_after_a_gap() {
        let path =
            std::env::temp_dir().join(format!("gatekey-relay-{}.db", hex::encode(crate::secrets::random_bytes::<8>())));
        let store = Store::open(&format!("sqlite://{}?mode=rwc", path.display())).await.unwrap();
        let hub = AgentHub::new(Arc::new(crate::metrics::Metrics::for_node("node-here")));
        let mut here = hub.attach("gw-here", "selector-1");
        let bystander = hub.attach("gw-bystander", "selector-2");
        let relay = FleetRelay::new("127.0.0.1:9090".into());
        let watchers = EventBus::default();
        append(&store, "node-elsewhere", &kill("before this node started")).await;
        relay.start_after_outbox(&store).await.unwrap();

        // Another node's events arrive in order; this node's own were applied when made.
        append(&store, "node-elsewhere", &kill("first")).await;
        append(&store, relay.node_id(), &kill("made here")).await;
        // An event of an earlier release, without the time it was made.
        let legacy =
            OutboxEntry { node_id: "node-elsewhere".into(), payload: serde_json::to_string(&kill("second")).unwrap() };
        let mut tx = store.begin_write().await.unwrap();
        store.append_fleet_event(&mut tx, &legacy).await.unwrap();
        tx.commit().await.unwrap();
        relay.catch_up(&store, None, &hub, &watchers).await;
        assert_eq!(kills(&mut here), ["first", "second"]);
        let gauges = crate::metrics::Gauges { connected_gateways: 0, live_sessions: 0, connected_spokes: 0 };
        let rendered = hub.metrics().render(gauges);
        assert!(
            rendered.contains("gatekey_fleet_relay_delay_seconds_count{node=\"node-here\"} 1"),
            "one relayed event with its time: {rendered}"
        );
        relay.catch_up(&store, None, &hub, &watchers).await;
        assert!(kills(&mut here).is_empty(), "nothing is applied twice");
        assert!(bystander.rules_changed.notified().now_or_never().is_none(), "no resync without a gap");

        // Events pruned before this node read them: every stream here resyncs, and
        // what is left is applied.
        for reason in ["pruned", "pruned too", "kept"] {
            append(&store, "node-elsewhere", &kill(reason)).await;
        }
        assert_eq!(store.prune_fleet_events(crate::store::unix_now() + 1).await.unwrap(), 6);
        relay.catch_up(&store, None, &hub, &watchers).await;
        assert_eq!(kills(&mut here), ["kept"]);
        assert!(bystander.rules_changed.notified().now_or_never().is_some(), "a gap resyncs every stream");
        store.close().await;
        for file in [path.clone(), path.with_extension("db-wal"), path.with_extension("db-shm")] {
            let _ = std::fs::remove_file(file);
        }
    }

    #[test]
    fn events_read_back_as_written() {
        let events = [
            FleetEvent::RulesChanged { gateway_ids: vec!["gw-1".into(), "gw-2".into()] },
            FleetEvent::KillSessions {
                sessions: vec![SessionToKill {
                    gateway_id: "gw-1".into(),
                    common_name: "alice@example.com".into(),
                    serial: "0a1b".into(),
                }],
                reason: "the certificate was revoked".into(),
            },
            FleetEvent::Crl { pem: "-----BEGIN X509 CRL-----".into(), number: 7 },
            FleetEvent::EndStream {
                gateway_id: "gw-1".into(),
                code: 16,
                message: "this agent's token was rotated".into(),
                keep_token_selector: Some("abcd".into()),
            },
        ];
        for event in events {
            let text = serde_json::to_string(&event).unwrap();
            assert_eq!(serde_json::from_str::<FleetEvent>(&text).unwrap(), event, "{text}");
        }
    }
}
