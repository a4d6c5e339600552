//! The fleet's events (agents coming and going, VPN sessions opening and closing,
//! configs issued, sign-in attempts), whichever node saw them, fanned out to the admins
//! watching this node. Publishing never waits: a watcher that falls behind misses events
//! (and is told so), it never slows the fleet down.

use gatekey::v1::Event;
use tokio::sync::{broadcast, watch};

/// How many events a slow watcher may fall behind before it misses some.
const BACKLOG: usize = 1024;

/// Publishes events to every current watcher.
#[derive(Debug)]
pub struct EventBus {
    sender: broadcast::Sender<Event>,
    closed: watch::Sender<bool>,
}

/// One watcher's view of the bus.
#[derive(Debug)]
pub struct EventWatch {
    /// The events, in order.
    pub events: broadcast::Receiver<Event>,
    /// Becomes `true` when the node shuts down.
    pub closed: watch::Receiver<bool>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus { sender: broadcast::channel(BACKLOG).0, closed: watch::channel(false).0 }
    }
}

impl EventBus {
    /// Hands an event to this node's watchers (see [`crate::domain::watched`] for
    /// publishing one to the watchers of every node).
    pub fn publish(&self, event: Event) {
        // No watcher is not an error.
        let _ = self.sender.send(event);
    }

    /// Starts watching.
    pub fn watch(&self) -> EventWatch {
        EventWatch { events: self.sender.subscribe(), closed: self.closed.subscribe() }
    }

    /// Ends every watch (at shutdown).
    pub fn close(&self) {
        self.closed.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatekey::v1::{GatewayPresence, event};

    #[tokio::test]
    async fn watchers_get_what_is_published_after_they_start_and_learn_of_the_close() {
        let bus = EventBus::default();
        let presence = |gateway_id: &str, connected| Event {
            at: Some(prost_types::Timestamp { seconds: 1, nanos: 0 }),
            kind: Some(event::Kind::Gateway(GatewayPresence { gateway_id: gateway_id.into(), connected })),
        };
        bus.publish(presence("gw-early", true));
        let mut watch = bus.watch();
        bus.publish(presence("gw-1", false));
        let received = watch.events.recv().await.unwrap();
        assert_eq!(
            received.kind,
            Some(event::Kind::Gateway(GatewayPresence { gateway_id: "gw-1".into(), connected: false }))
        );
        assert!(received.at.is_some());
        bus.close();
        watch.closed.changed().await.unwrap();
        assert!(*watch.closed.borrow());
    }
}
