//! The connection to the core: authenticated requests, the core nodes an agent may
//! use (it starts at a random one, so a fleet spreads over them, and moves to the
//! next when its node is lost), and reconnection with exponential backoff and full
//! jitter (so a fleet of agents does not reconnect in lockstep after a core restart).

use gatekey::v1::gateway_agent_service_client::GatewayAgentServiceClient;
use std::time::Duration;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

/// The core nodes an agent knows, and the one it uses now.
#[derive(Debug, Clone)]
pub struct CoreNodes {
    nodes: Vec<(String, GatewayAgentServiceClient<Channel>)>,
    current: usize,
}

impl CoreNodes {
    /// Clients for `(url, channel)` pairs, starting at a random one; none is refused.
    pub fn new(channels: Vec<(String, Channel)>) -> Result<CoreNodes, String> {
        let nodes: Vec<_> =
            channels.into_iter().map(|(url, channel)| (url, GatewayAgentServiceClient::new(channel))).collect();
        if nodes.is_empty() {
            return Err("no core URL".into());
        }
        let start = getrandom::u64().map_or(0, |bits| usize::try_from(bits % nodes.len() as u64).unwrap_or(0));
        Ok(CoreNodes { nodes, current: start })
    }

    /// The client of the node in use.
    pub fn client(&mut self) -> &mut GatewayAgentServiceClient<Channel> {
        &mut self.nodes[self.current].1
    }

    /// The URL of the node in use.
    pub fn url(&self) -> &str {
        &self.nodes[self.current].0
    }

    /// Moves to the next node (after losing this one); answers whether there is another.
    pub fn move_on(&mut self) -> bool {
        self.current = (self.current + 1) % self.nodes.len();
        self.nodes.len() > 1
    }

    /// How many nodes there are (at least one).
    pub fn count(&self) -> usize {
        self.nodes.len()
    }
}

/// A request carrying the gateway token.
pub fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = MetadataValue::try_from(token) {
        request.metadata_mut().insert("x-gateway-token", value);
    }
    request
}

/// Exponential backoff with full jitter: the n-th wait is uniform in
/// `[0, min(cap, base * 2^n)]`.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// A backoff from `base` up to `cap`.
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff { base, cap, attempt: 0 }
    }

    /// The next wait.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.base.saturating_mul(1u32 << self.attempt.min(16)).min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let fraction = getrandom::u64().map_or(0.5, |bits| (bits >> 11) as f64 / (1u64 << 53) as f64);
        ceiling.mul_f64(fraction)
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_agent_goes_round_the_core_nodes() {
        let urls = ["http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3"];
        let channels =
            urls.iter().map(|url| (url.to_string(), gatekey::connect::channel(url, None).unwrap())).collect::<Vec<_>>();
        let mut nodes = CoreNodes::new(channels).unwrap();
        let start = nodes.url().to_owned();
        let mut seen = vec![start.clone()];
        for _ in 0..2 {
            assert!(nodes.move_on());
            seen.push(nodes.url().to_owned());
        }
        seen.sort();
        assert_eq!(seen, urls, "each node once");
        nodes.move_on();
        assert_eq!(nodes.url(), start, "and round again");
        let alone =
            CoreNodes::new(vec![(urls[0].to_owned(), gatekey::connect::channel(urls[0], None).unwrap())]).unwrap();
        assert!(!alone.clone().move_on());
        assert!(CoreNodes::new(vec![]).is_err());
    }

    #[test]
    fn delays_grow_to_the_cap_and_are_jittered() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let delays: Vec<_> = (0..12).map(|_| backoff.next_delay()).collect();
        assert!(delays[0] <= Duration::from_millis(100));
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(2)));
        let late: std::collections::BTreeSet<_> = delays[6..].iter().collect();
        assert!(late.len() > 1, "full jitter varies the waits: {delays:?}");
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }
}
