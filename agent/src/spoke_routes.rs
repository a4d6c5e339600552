//! A hub's kernel routes for its spokes' networks: pointed at the tunnel while a spoke
//! is connected, and kept in a ledger in the state directory so that an agent
//! restarted in between still knows them and removes them when the spoke leaves.

use crate::material::network_and_mask;
use crate::nft::{CommandRunner, SystemRunner};
use std::collections::BTreeMap;

/// The ledger file: one `<common name> <cidr>,<cidr>…` line per connected spoke.
pub const LEDGER: &str = "spoke-routes";

/// The spokes' networks by common name, from the ledger's text; a line that is not a
/// name and IPv4 CIDRs is skipped (its networks would go to `ip route`).
pub fn parse_ledger(text: &str) -> BTreeMap<String, Vec<String>> {
    text.lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(name, networks)| (name.to_owned(), networks.split(',').map(str::to_owned).collect()))
        .filter(|(name, networks): &(String, Vec<String>)| {
            !name.is_empty() && networks.iter().all(|network| network_and_mask(network).is_some())
        })
        .collect()
}

/// The ledger's text for these spokes' networks.
pub fn render_ledger(routes: &BTreeMap<String, Vec<String>>) -> String {
    routes.iter().map(|(name, networks)| format!("{name} {}\n", networks.join(","))).collect()
}

/// Points the kernel's route for a spoke's network at the tunnel `tun` (OpenVPN's
/// `iroute` then picks the spoke), or removes it.
pub async fn route_into_tunnel(tun: &str, network: &str, present: bool) {
    let verb = if present { "replace" } else { "del" };
    match SystemRunner.run("ip", &["route", verb, network, "dev", tun], None).await {
        Ok(output) if output.success => tracing::info!(%network, %tun, present, "spoke route updated"),
        Ok(output) => tracing::warn!(%network, stderr = %output.stderr.trim(), "ip route {verb} failed"),
        Err(error) => tracing::warn!(%network, %error, "cannot run ip"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_round_trips_and_skips_bad_lines() {
        let routes = BTreeMap::from([
            ("spoke-1".to_owned(), vec!["10.20.0.0/24".to_owned(), "10.21.0.0/24".to_owned()]),
            ("spoke-2".to_owned(), vec!["10.30.0.0/16".to_owned()]),
        ]);
        let text = render_ledger(&routes);
        assert_eq!(text, "spoke-1 10.20.0.0/24,10.21.0.0/24\nspoke-2 10.30.0.0/16\n");
        assert_eq!(parse_ledger(&text), routes);
        assert!(parse_ledger("garbage\n \nspoke-3 \nspoke-4 10.0.0.0/8,\nspoke-5 default\n").is_empty());
    }
}
