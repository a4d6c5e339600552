//! Host names in access rules, resolved off the event path. The firewall asks the cache;
//! a name it does not hold yet is looked up in the background and allows nothing until
//! its answer comes (fail closed), and then the rules are applied again. Answers are
//! looked up again after [`REFRESH_AFTER`], so a name that moves is followed; a lookup
//! that fails or hangs (cut off after [`LOOKUP_TIMEOUT`]) keeps the last answer, but
//! never one older than [`MAX_AGE`]. Names no rule uses any more are forgotten.

use gatekey::v1::FirewallRule;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long an answer is used before the name is looked up again.
pub const REFRESH_AFTER: Duration = Duration::from_secs(60);
/// The oldest answer still used while lookups fail.
pub const MAX_AGE: Duration = Duration::from_secs(300);
/// How long a lookup may take.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A finished lookup: the name and its IPv4 addresses (`None` when it failed or hung).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The host name.
    pub host: String,
    /// Its IPv4 addresses, sorted.
    pub addresses: Option<Vec<Ipv4Addr>>,
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
            let Some(answer) = self.answers.get(&rule.destination).filter(|answer| answer.at.elapsed() <= MAX_AGE)
            else {
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

    /// Takes a finished lookup; answers whether the name now resolves differently. A
    /// failed lookup keeps an answer younger than [`MAX_AGE`] (the name is asked again
    /// at the next refresh), and otherwise leaves the name allowing nothing.
    pub fn learn(&mut self, lookup: Lookup) -> bool {
        self.in_flight.remove(&lookup.host);
        let previous = self.answers.get(&lookup.host);
        let addresses = match lookup.addresses {
            Some(addresses) => addresses,
            None if previous.is_some_and(|answer| answer.at.elapsed() <= MAX_AGE) => return false,
            None => Vec::new(),
        };
        let changed = previous.is_none_or(|answer| answer.addresses != addresses);
        self.answers.insert(lookup.host, Answer { addresses, at: Instant::now() });
        changed
    }

    /// Forgets the names not in `in_use` (no rule names them any more).
    pub fn keep_only(&mut self, in_use: &HashSet<&str>) {
        self.answers.retain(|host, _| in_use.contains(host.as_str()));
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
            let addresses =
                match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host.as_str(), 0))).await {
                    Ok(Ok(found)) => {
                        let mut addresses: Vec<Ipv4Addr> = found
                            .filter_map(|address| match address.ip() {
                                IpAddr::V4(v4) => Some(v4),
                                IpAddr::V6(_) => None,
                            })
                            .collect();
                        addresses.sort();
                        addresses.dedup();
                        Some(addresses)
                    }
                    Ok(Err(error)) => {
                        tracing::warn!(%host, %error, "cannot resolve rule destination");
                        None
                    }
                    Err(_) => {
                        tracing::warn!(%host, "resolving a rule destination timed out");
                        None
                    }
                };
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
        assert!(lookup.addresses.as_ref().is_some_and(|a| a.contains(&Ipv4Addr::LOCALHOST)), "{lookup:?}");
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
        assert!(lookup.addresses.is_none(), "{lookup:?}");
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

    #[tokio::test]
    async fn a_failed_lookup_keeps_a_young_answer_and_drops_an_old_one() {
        let (mut resolver, _finished) = HostResolver::new();
        let host = "intranet.example".to_owned();
        let addresses = vec![Ipv4Addr::new(10, 0, 0, 7)];
        assert!(resolver.learn(Lookup { host: host.clone(), addresses: Some(addresses.clone()) }));
        let rules = [rule(&host, 443)];
        let routes = ["10.0.0.0/8".to_owned()];
        assert_eq!(resolver.resolve(&rules, &routes), vec![rule("10.0.0.7/32", 443)]);
        // DNS fails for a moment: the answer stays.
        assert!(!resolver.learn(Lookup { host: host.clone(), addresses: None }));
        assert_eq!(resolver.resolve(&rules, &routes), vec![rule("10.0.0.7/32", 443)]);
        // Failing for longer than MAX_AGE: the name allows nothing.
        for answer in resolver.answers.values_mut() {
            answer.at = answer.at.checked_sub(MAX_AGE + Duration::from_secs(1)).expect("an older instant");
        }
        assert!(resolver.resolve(&rules, &routes).is_empty(), "too old to use");
        assert!(resolver.learn(Lookup { host: host.clone(), addresses: None }));
        assert!(resolver.resolve(&rules, &routes).is_empty());
        // A name no rule uses any more is forgotten.
        resolver.keep_only(&HashSet::new());
        assert!(resolver.answers.is_empty());
    }
}
