//! Policy: may this identity use this gateway (or hub), and what may it reach there.
//! Default deny: a client gets exactly the destinations of the access rules that
//! name it (or one of its groups) in the networks attached to the gateway. At a mesh
//! hub the routes are further limited to the networks of the spokes connected now,
//! and a spoke's own certificate admits it with its advertised networks routed to it.

use crate::domain::{CertificateKind, DestinationType};
use crate::error::CoreResult;
use crate::geofence::GeoFence;
use crate::pki::serial;
use crate::store::{
    AccessRuleFields, AccessRuleRecord, CertificateRecord, GatewayRecord, GatewayRole, NetworkRecord, SnapshotSubject,
    SpokeRecord, Store, UserRecord, unix_now,
};
use crate::verdict_inputs::{VerdictInputs, VerdictInputsCache};
use gatekey::v1::{ClientRules, FirewallRule, RuleSnapshot, VerifyRequest, VerifyResponse};
use ipnet::IpNet;
use std::collections::{BTreeSet, HashMap};

/// What one user may reach at one gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entitlement {
    /// The allow-list.
    pub rules: Vec<FirewallRule>,
    /// CIDRs of the networks that hold at least one of those rules.
    pub routes: Vec<String>,
}

/// Whether an access rule names this user, directly or through a group.
fn names(rule: &AccessRuleFields, user: &UserRecord) -> bool {
    rule.user_ids.contains(&user.id) || rule.groups.iter().any(|group| user.groups.contains(group))
}

/// The firewall form of a rule's destination: a CIDR for `ip`, as given otherwise.
fn firewall_rule(rule: &AccessRuleFields) -> FirewallRule {
    let destination = match rule.destination_type {
        DestinationType::Ip if rule.destination.contains(':') => format!("{}/128", rule.destination),
        DestinationType::Ip => format!("{}/32", rule.destination),
        DestinationType::Cidr | DestinationType::Hostname => rule.destination.clone(),
    };
    FirewallRule {
        destination,
        protocol: rule.protocol.as_str().into(),
        port_from: u32::from(rule.port_from),
        port_to: u32::from(rule.port_to),
    }
}

/// A user's entitlement given the gateway's rules and networks (pure).
pub fn entitlement(user: &UserRecord, rules: &[AccessRuleRecord], networks: &[NetworkRecord]) -> Entitlement {
    let mut entitlement = Entitlement::default();
    let mut route_networks = BTreeSet::new();
    for rule in rules.iter().map(|rule| &rule.fields).filter(|rule| names(rule, user)) {
        let firewall = firewall_rule(rule);
        if !entitlement.rules.contains(&firewall) {
            entitlement.rules.push(firewall);
        }
        route_networks.insert(rule.network_id.as_str());
    }
    for network in networks.iter().filter(|network| route_networks.contains(network.id.as_str())) {
        for cidr in &network.cidrs {
            if !entitlement.routes.contains(cidr) {
                entitlement.routes.push(cidr.clone());
            }
        }
    }
    entitlement
}

/// The parts of `routes` reachable through the spokes' networks (pure): for every
/// overlapping pair, the more specific of the two, once.
pub fn routes_through_spokes(routes: &[String], spoke_networks: &[String]) -> Vec<String> {
    let parse = |cidrs: &[String]| cidrs.iter().filter_map(|c| c.parse::<IpNet>().ok()).collect::<Vec<_>>();
    let (routes, spokes) = (parse(routes), parse(spoke_networks));
    let mut reachable = Vec::new();
    for spoke in &spokes {
        for route in &routes {
            let narrower = if spoke.contains(route) {
                route
            } else if route.contains(spoke) {
                spoke
            } else {
                continue;
            };
            let text = narrower.trunc().to_string();
            if !reachable.contains(&text) {
                reachable.push(text);
            }
        }
    }
    reachable
}

/// The rules and networks that matter at a gateway or hub, loaded once.
pub struct GatewayPolicy {
    rules: Vec<AccessRuleRecord>,
    networks: Vec<NetworkRecord>,
    /// At a hub: the networks advertised by the spokes connected now.
    spoke_networks: Option<Vec<String>>,
}

impl GatewayPolicy {
    /// Loads the access rules and networks attached to a gateway, and at a hub the
    /// networks of its connected spokes.
    pub async fn load(store: &Store, gateway: &GatewayRecord) -> CoreResult<GatewayPolicy> {
        let rules = store.access_rules_of_gateway(&gateway.id).await?;
        // In the gateway's order (by id), as the snapshots list them.
        let mut networks = store.networks_for_policies(&gateway.network_ids).await?;
        networks.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(GatewayPolicy { rules, networks, spoke_networks: spoke_networks(store, gateway.role, &gateway.id).await? })
    }

    /// What a user may reach through this gateway or hub.
    pub fn entitlement(&self, user: &UserRecord) -> Entitlement {
        let mut entitlement = entitlement(user, &self.rules, &self.networks);
        if let Some(spoke_networks) = &self.spoke_networks {
            entitlement.routes = routes_through_spokes(&entitlement.routes, spoke_networks);
        }
        entitlement
    }
}

/// At a hub, the networks its connected spokes advertise; nothing at a gateway.
async fn spoke_networks(store: &Store, role: GatewayRole, gateway_id: &str) -> CoreResult<Option<Vec<String>>> {
    Ok(match role {
        GatewayRole::Gateway => None,
        GatewayRole::Hub => Some(advertised_networks(&store.connected_spokes(gateway_id).await?)),
    })
}

/// Every network the spokes advertise, once, in order.
pub fn advertised_networks(spokes: &[SpokeRecord]) -> Vec<String> {
    let mut networks: Vec<String> = Vec::new();
    for cidr in spokes.iter().flat_map(|spoke| &spoke.advertised_cidrs) {
        if !networks.contains(cidr) {
            networks.push(cidr.clone());
        }
    }
    networks
}

/// The spoke a spoke certificate was issued to, while it is that spoke's current
/// certificate; otherwise why not (the spoke is gone, or a newer one superseded it).
pub async fn current_spoke(store: &Store, certificate: &CertificateRecord) -> CoreResult<Result<SpokeRecord, String>> {
    let hub_id = certificate.gateway_id.as_deref().unwrap_or_default();
    Ok(match store.find_spoke(hub_id, &certificate.subject).await? {
        Some(spoke) if spoke.certificate_serial.as_deref() == Some(certificate.serial.as_str()) => Ok(spoke),
        Some(spoke) => {
            Err(format!("certificate {} of spoke `{}` was superseded by a newer one", certificate.serial, spoke.name))
        }
        None => Err(format!("spoke `{}` no longer exists", certificate.subject)),
    })
}

/// Who holds a certificate that still stands.
pub enum Holder {
    /// A user (exists, enabled, and still has the certificate's e-mail address).
    User(UserRecord),
    /// A mesh spoke, whose current certificate it is.
    Spoke(SpokeRecord),
}

/// Whether the certificate `serial` still stands, and who holds it; otherwise why not.
/// It stands while GateKey issued it as a client or spoke certificate, it is neither
/// revoked nor expired, and its holder is still there: the user exists, is enabled and
/// has the e-mail address it names, or the spoke exists and this is its current
/// certificate. The one rule for both the verdict on a connecting client and the
/// check on a session an agent reports.
pub async fn certificate_standing(
    store: &Store,
    serial: &str,
) -> CoreResult<Result<(CertificateRecord, Holder), String>> {
    let Some(certificate) = store.find_certificate(serial).await? else {
        return Ok(Err(format!("certificate {serial} was not issued by GateKey")));
    };
    if certificate.kind == CertificateKind::Server {
        return Ok(Err(format!("certificate {serial} is not a client certificate")));
    }
    if certificate.revoked_at.is_some() {
        return Ok(Err(format!("certificate {serial} is revoked")));
    }
    if certificate.expires_at <= unix_now() {
        return Ok(Err(format!("certificate {serial} has expired")));
    }
    if certificate.kind == CertificateKind::Spoke {
        return Ok(current_spoke(store, &certificate).await?.map(|spoke| (certificate, Holder::Spoke(spoke))));
    }
    let Some(user) = (match &certificate.user_id {
        Some(user_id) => store.find_user(user_id).await?,
        None => None,
    }) else {
        return Ok(Err("the certificate's user no longer exists".into()));
    };
    if user.disabled {
        return Ok(Err(format!("user `{}` is disabled", user.username)));
    }
    if certificate.subject != user.email {
        return Ok(Err(format!(
            "certificate {serial} was issued for a previous e-mail address of `{}`",
            user.username
        )));
    }
    Ok(Ok((certificate, Holder::User(user))))
}

/// Who a certificate admits at a gateway or hub.
enum Admitted {
    /// A user, with what it may reach.
    User(UserRecord, Entitlement),
    /// A mesh spoke at its hub; its advertised networks are routed to it.
    Spoke(SpokeRecord),
}

/// The rules of a gateway for every identity that may use it, at its current version.
pub async fn snapshot(store: &Store, gateway_id: &str) -> CoreResult<RuleSnapshot> {
    snapshots(store, &[gateway_id.to_owned()])
        .await?
        .remove(gateway_id)
        .ok_or_else(|| crate::error::CoreError::NotFound(format!("gateway `{gateway_id}` not found")))
}

/// The rule snapshots of these gateways (of those that exist), read in a handful of
/// queries however many they are, and derived in memory. Each carries the rule version
/// read with its gateway, before anything else: a change that commits meanwhile has a
/// higher version, and brings its own push.
pub async fn snapshots(store: &Store, gateway_ids: &[String]) -> CoreResult<HashMap<String, RuleSnapshot>> {
    let gateways = store.snapshot_subjects(gateway_ids).await?;
    let active: Vec<&SnapshotSubject> = gateways.iter().filter(|gateway| gateway.is_active).collect();
    let network_ids: Vec<String> = active
        .iter()
        .flat_map(|gateway| gateway.network_ids.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let networks: HashMap<String, NetworkRecord> = store
        .networks_for_policies(&network_ids)
        .await?
        .into_iter()
        .map(|network| (network.id.clone(), network))
        .collect();
    let mut rules_of_network: HashMap<String, Vec<AccessRuleRecord>> = HashMap::new();
    for rule in store.access_rules_of_networks(&network_ids).await? {
        rules_of_network.entry(rule.fields.network_id.clone()).or_default().push(rule);
    }
    let active_ids: Vec<String> = active.iter().map(|gateway| gateway.id.clone()).collect();
    let (granted, users) = store.users_granted_gateways(&active_ids).await?;
    // Gateways with the same networks and the same granted users have the same clients:
    // each such set is worked out once (a change that touches a whole fleet of alike
    // gateways, once). A hub's clients also follow its connected spokes: worked out alone.
    let mut clients_of_alike: HashMap<(&[String], &[String]), Vec<ClientRules>> = HashMap::new();
    let mut snapshots = HashMap::with_capacity(gateways.len());
    for gateway in &gateways {
        let mut clients = Vec::new();
        if gateway.is_active {
            let granted_here = granted.get(&gateway.id).map_or(&[][..], Vec::as_slice);
            let policy_here = |spoke_networks| {
                let mut rules: Vec<AccessRuleRecord> = gateway
                    .network_ids
                    .iter()
                    .flat_map(|id| rules_of_network.get(id).into_iter().flatten().cloned())
                    .collect();
                rules.sort_by(|a, b| a.fields.name.cmp(&b.fields.name));
                let networks = gateway.network_ids.iter().filter_map(|id| networks.get(id).cloned()).collect();
                GatewayPolicy { rules, networks, spoke_networks }
            };
            clients = match spoke_networks(store, gateway.role, &gateway.id).await? {
                None => clients_of_alike
                    .entry((gateway.network_ids.as_slice(), granted_here))
                    .or_insert_with(|| clients_of(&policy_here(None), granted_here, &users))
                    .clone(),
                spoke_networks => clients_of(&policy_here(spoke_networks), granted_here, &users),
            };
        }
        snapshots.insert(gateway.id.clone(), RuleSnapshot { version: gateway.rules_version, clients });
    }
    Ok(snapshots)
}

/// The clients of a snapshot under `policy`: each of the `granted` users whom a rule
/// lets reach something, with their rules and routes.
fn clients_of(policy: &GatewayPolicy, granted: &[String], users: &HashMap<String, UserRecord>) -> Vec<ClientRules> {
    let mut clients = Vec::new();
    for user in granted.iter().filter_map(|id| users.get(id)) {
        let entitlement = policy.entitlement(user);
        if !entitlement.rules.is_empty() {
            clients.push(ClientRules {
                common_name: user.email.clone(),
                user_id: user.id.clone(),
                rules: entitlement.rules,
                push_routes: entitlement.routes,
            });
        }
    }
    clients
}

/// Decides whether a connecting client may use the gateway or hub `gateway_id`, from its
/// current verdict inputs (see [`crate::verdict_inputs`]). Every denial carries a reason
/// and is logged.
pub async fn verify(
    store: &Store,
    geo_fence: &GeoFence,
    cache: &VerdictInputsCache,
    gateway_id: &str,
    request: &VerifyRequest,
) -> CoreResult<VerifyResponse> {
    // The inputs are read at the current version: a change after this point carries a
    // higher one.
    let inputs = cache.current(store, gateway_id).await?;
    let (gateway, rules_version) = (&inputs.gateway, inputs.version);
    let decision = decide(store, geo_fence, &inputs, request).await?;
    match &decision {
        Ok(Admitted::User(user, _)) => tracing::info!(
            gateway = %gateway.id, common_name = %request.common_name, user = %user.id,
            client_address = %request.client_address, "connection allowed"
        ),
        Ok(Admitted::Spoke(spoke)) => tracing::info!(
            hub = %gateway.id, spoke = %spoke.id, networks = ?spoke.advertised_cidrs,
            client_address = %request.client_address, "spoke connection allowed"
        ),
        Err(reason) => tracing::warn!(
            gateway = %gateway.id, common_name = %request.common_name, serial = %request.serial,
            client_address = %request.client_address, %reason, "connection denied"
        ),
    }
    Ok(match decision {
        Ok(Admitted::User(user, entitlement)) => VerifyResponse {
            allowed: true,
            user_id: user.id,
            rules: entitlement.rules,
            push_routes: entitlement.routes,
            rules_version,
            ..Default::default()
        },
        Ok(Admitted::Spoke(spoke)) => {
            VerifyResponse { allowed: true, iroutes: spoke.advertised_cidrs, rules_version, ..Default::default() }
        }
        Err(reason) => VerifyResponse { allowed: false, reason, rules_version, ..Default::default() },
    })
}

/// The verdict: who is admitted, or the reason for denial.
async fn decide(
    store: &Store,
    geo_fence: &GeoFence,
    inputs: &VerdictInputs,
    request: &VerifyRequest,
) -> CoreResult<Result<Admitted, String>> {
    let gateway = &inputs.gateway;
    let Ok(serial) = serial::parse(&request.serial) else {
        return Ok(Err(format!("malformed certificate serial `{}`", request.serial)));
    };
    let (certificate, holder) = match certificate_standing(store, &serial).await? {
        Ok(standing) => standing,
        Err(reason) => return Ok(Err(reason)),
    };
    if certificate.subject != request.common_name {
        return Ok(Err(format!("common name `{}` does not match certificate {serial}", request.common_name)));
    }
    if certificate.gateway_id.as_deref() != Some(gateway.id.as_str()) {
        return Ok(Err(format!("certificate {serial} was issued for another gateway")));
    }
    if !gateway.is_active {
        return Ok(Err(format!("{} `{}` is deactivated", gateway.role.as_str(), gateway.name)));
    }
    let user = match holder {
        Holder::Spoke(spoke) if gateway.role == GatewayRole::Hub => return Ok(Ok(Admitted::Spoke(spoke))),
        Holder::Spoke(spoke) => return Ok(Err(format!("spoke `{}` does not belong to a hub", spoke.name))),
        Holder::User(user) => user,
    };
    if let Some(reason) = geo_fence.refusal(store, &user, &request.client_address).await? {
        return Ok(Err(format!("geo-fence: {reason}")));
    }
    // A user made since the inputs were read (creating one bumps no version) is looked
    // up in the store.
    if !inputs.granted.contains(&user.id) && !store.gateway_granted_to(&user.id, &gateway.id).await? {
        return Ok(Err(format!(
            "user `{}` is not granted {} `{}`",
            user.username,
            gateway.role.as_str(),
            gateway.name
        )));
    }
    let entitlement = inputs.policy.entitlement(&user);
    Ok(Ok(Admitted::User(user, entitlement)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RuleProtocol;

    fn rule(
        id: &str,
        network: &str,
        users: &[&str],
        groups: &[&str],
        kind: DestinationType,
        destination: &str,
    ) -> AccessRuleRecord {
        AccessRuleRecord {
            id: id.into(),
            fields: AccessRuleFields {
                name: id.into(),
                description: String::new(),
                network_id: network.into(),
                user_ids: users.iter().map(|u| (*u).to_owned()).collect(),
                groups: groups.iter().map(|g| (*g).to_owned()).collect(),
                destination_type: kind,
                destination: destination.into(),
                protocol: RuleProtocol::Tcp,
                port_from: 443,
                port_to: 443,
            },
            created_at: 0,
            updated_at: 0,
        }
    }

    fn network(id: &str, cidr: &str) -> NetworkRecord {
        NetworkRecord {
            id: id.into(),
            name: id.into(),
            description: String::new(),
            cidrs: vec![cidr.into()],
            gateway_ids: vec![],
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn users_get_exactly_the_rules_that_name_them_or_their_groups() {
        let rules = [
            rule("r1", "n1", &["alice"], &[], DestinationType::Ip, "10.0.0.5"),
            rule("r2", "n2", &[], &["eng"], DestinationType::Cidr, "10.1.0.0/24"),
            rule("r3", "n2", &["bob"], &[], DestinationType::Ip, "10.1.0.9"),
        ];
        let networks = [network("n1", "10.0.0.0/24"), network("n2", "10.1.0.0/16")];
        let alice = entitlement(&UserRecord::sample("alice", &["eng"]), &rules, &networks);
        let destinations: Vec<_> = alice.rules.iter().map(|r| r.destination.as_str()).collect();
        assert_eq!(destinations, ["10.0.0.5/32", "10.1.0.0/24"]);
        assert_eq!(alice.routes, ["10.0.0.0/24", "10.1.0.0/16"]);

        let carol = entitlement(&UserRecord::sample("carol", &["sales"]), &rules, &networks);
        assert_eq!(carol, Entitlement::default(), "default deny");
    }

    #[test]
    fn hub_routes_are_the_overlap_of_entitled_networks_and_connected_spokes() {
        let routes = ["10.20.0.0/16".to_owned(), "10.30.1.0/24".to_owned(), "10.40.0.0/24".to_owned()];
        let spokes = ["10.20.5.0/24".to_owned(), "10.30.0.0/16".to_owned(), "10.50.0.0/24".to_owned()];
        assert_eq!(routes_through_spokes(&routes, &spokes), ["10.20.5.0/24", "10.30.1.0/24"]);
        assert!(routes_through_spokes(&routes, &[]).is_empty(), "no spoke connected: no routes");
        assert!(routes_through_spokes(&[], &spokes).is_empty(), "no rules: no routes");
    }
}
