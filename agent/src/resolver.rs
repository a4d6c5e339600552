//! Host names in access rules, resolved off the event path. The firewall asks the cache;
//! a name it does not hold yet is looked up in the background and allows nothing until
//! its answer comes (fail closed), and then the rules are applied again. Answers are
//! looked up again after [`REFRESH_AFTER`], so a name that moves is followed.

use gatekey::v1::FirewallRule;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long an answer is used before the name is looked up again.
pub const REFRESH_AFTER: Duration = Duration::from_secs(60);

/// A finished lookup: the name and its IPv4 addresses (none when it failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The host name.
    pub host: String,
    /// Its IPv4 addresses, sorted.
    pub addresses: Vec<Ipv4Addr>,
}

/// An answer held for a name.
#[derive(Debug, Clone)]
struct Answer {
    addresses: Vec<Ipv4Addr>,
    at: Instant,
}

/// The cache of host names and the lookups under way.
#[derive(Debug)]
pub struct HostResolver {
    answers: HashMap<String, Answer>,
    in_flight: HashSet<String>,
    finished: mpsc::UnboundedSender<Lookup>,
}

impl HostResolver {
    /// A resolver with an empty cache, and the receiver of its finished lookups (hand
    /// each to [`HostResolver::learn`]).
    pub fn new() -> (HostResolver, mpsc::UnboundedReceiver<Lookup>) {
        let (finished, receiver) = mpsc::unbounded_channel();
        (HostResolver { answers: HashMap::new(), in_flight: HashSet::new(), finished }, receiver)
    }

    /// `rules` with host-name destinations replaced by their cached IPv4 addresses inside
    /// the identity's networks (`routes`), the others dropped; a name not cached yet is
    /// looked up in the background and left out until then. The result is sorted, so
    /// DNS answering in another order does not look like a change.
    pub fn resolve(&mut self, rules: &[FirewallRule], routes: &[String]) -> Vec<FirewallRule> {
        let networks: Vec<(u32, u32)> = routes
            .iter()
            .filter_map(|cidr| crate::material::network_and_mask(cidr))
            .map(|(network, mask)| (u32::from(network), u32::from(mask)))
            .collect();
        let inside = |address: Ipv4Addr| networks.iter().any(|(network, mask)| u32::from(address) & mask == *network);
        let mut resolved = Vec::with_capacity(rules.len());
        for rule in rules {
            let is_address = rule.destination.split('/').next().is_some_and(|a| a.parse::<IpAddr>().is_ok());
            if is_address {
                resolved.push(rule.clone());
                continue;
            }
            let Some(answer) = self.answers.get(&rule.destination) else {
                self.look_up(&rule.destination);
                continue;
            };
            for address in &answer.addresses {
                if inside(*address) {
                    resolved.push(FirewallRule { destination: format!("{address}/32"), ..rule.clone() });
                } else {
                    tracing::warn!(host = %rule.destination, %address, "resolved outside the rule's network; ignored");
                }
            }
        }
        resolved.sort_by(|a, b| {
            (&a.destination, &a.protocol, a.port_from, a.port_to).cmp(&(
                &b.destination,
                &b.protocol,
                b.port_from,
                b.port_to,
            ))
        });
        resolved.dedup();
        resolved
    }

    /// Takes a finished lookup; answers whether the name now resolves differently.
    pub fn learn(&mut self, lookup: Lookup) -> bool {
        self.in_flight.remove(&lookup.host);
        let answer = Answer { addresses: lookup.addresses, at: Instant::now() };
        match self.answers.insert(lookup.host, answer.clone()) {
            Some(previous) => previous.addresses != answer.addresses,
            None => true,
        }
    }

    /// Looks up again every name whose answer is older than [`REFRESH_AFTER`] (the
    /// old answer stays in use meanwhile).
    pub fn refresh_stale(&mut self) {
        let stale: Vec<String> = self
            .answers
            .iter()
            .filter(|(_, answer)| answer.at.elapsed() > REFRESH_AFTER)
            .map(|(host, _)| host.clone())
            .collect();
        for host in stale {
            self.look_up(&host);
        }
    }

    /// Starts a lookup of `host` unless one is under way.
    fn look_up(&mut self, host: &str) {
        if !self.in_flight.insert(host.to_owned()) {
            return;
        }
        let (host, finished) = (host.to_owned(), self.finished.clone());
        tokio::spawn(async move {
            let mut addresses: Vec<Ipv4Addr> = match tokio::net::lookup_host((host.as_str(), 0)).await {
                Ok(found) => found
                    .filter_map(|address| match address.ip() {
                        IpAddr::V4(v4) => Some(v4),
                        IpAddr::V6(_) => None,
                    })
                    .collect(),
                Err(error) => {
                    tracing::warn!(%host, %error, "cannot resolve rule destination");
                    Vec::new()
                }
            };
            addresses.sort();
            addresses.dedup();
            let _ = finished.send(Lookup { host, addresses });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(destination: &str, port: u32) -> FirewallRule {
        FirewallRule { destination: destination.into(), protocol: "tcp".into(), port_from: port, port_to: port }
    }

    #[tokio::test]
    async fn host_names_allow_nothing_until_resolved_then_only_inside_the_networks() {
        let (mut resolver, mut finished) = HostResolver::new();
        let rules = [rule("10.0.0.9/32", 22), rule("localhost", 443), rule("localhost", 80)];
        let routes = ["127.0.0.0/8".to_owned()];
        // Not cached yet: only the address rule, and one lookup starts for the two rules.
        assert_eq!(resolver.resolve(&rules, &routes), vec![rule("10.0.0.9/32", 22)]);
        assert_eq!(resolver.resolve(&rules, &routes).len(), 1, "still resolving");
        let lookup = finished.recv().await.expect("the lookup finishes");
        assert_eq!(lookup.host, "localhost");
        assert!(lookup.addresses.contains(&Ipv4Addr::LOCALHOST), "{lookup:?}");
        assert!(finished.try_recv().is_err(), "one lookup per name at a time");
        assert!(resolver.learn(lookup.clone()), "a new answer is a change");
        assert!(!resolver.learn(lookup), "the same answer again is not");
        assert_eq!(
            resolver.resolve(&rules, &routes),
            vec![rule("10.0.0.9/32", 22), rule("127.0.0.1/32", 80), rule("127.0.0.1/32", 443)],
            "sorted, the host name replaced by its address"
        );
        // Outside the identity's networks, a resolved address is not allowed.
        assert_eq!(resolver.resolve(&rules, &["192.0.2.0/24".to_owned()]), vec![rule("10.0.0.9/32", 22)]);
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_allows_nothing_and_is_asked_again_when_stale() {
        let (mut resolver, mut finished) = HostResolver::new();
        let rules = [rule("no-such-host.invalid", 443)];
        assert!(resolver.resolve(&rules, &["10.0.0.0/8".to_owned()]).is_empty());
        let lookup = finished.recv().await.expect("the lookup finishes");
        assert!(lookup.addresses.is_empty());
        resolver.learn(lookup);
        assert!(resolver.resolve(&rules, &["10.0.0.0/8".to_owned()]).is_empty());
        // A fresh answer is not looked up again; a stale one is.
        resolver.refresh_stale();
        assert!(finished.try_recv().is_err());
        for answer in resolver.answers.values_mut() {
            answer.at = answer.at.checked_sub(REFRESH_AFTER + Duration::from_secs(1)).expect("an older instant");
        }
        resolver.refresh_stale();
        assert_eq!(finished.recv().await.expect("looked up again").host, "no-such-host.invalid");
    }
}
