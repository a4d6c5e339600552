//! `AdminAccessRuleService`: who may reach what inside a network. Every change is
//! pushed to the gateways the rule's network is attached to.

use super::{GrpcResult, respond};
use crate::auth::Access;
use crate::context::CoreContext;
use crate::convert;
use crate::domain::access_rules;
use crate::domain::{DestinationType, RuleProtocol};
use crate::error::{CoreError, CoreResult};
use crate::store::{AccessRuleFields, NetworkRecord};
use crate::validate;
use gatekey::v1::admin_access_rule_service_server::AdminAccessRuleService;
use gatekey::v1::{
    AccessRule, DeleteAccessRuleRequest, DeleteAccessRuleResponse, GetAccessRuleRequest, ListAccessRulesRequest,
    ListAccessRulesResponse,
};
use ipnet::IpNet;
use std::net::IpAddr;
use std::sync::Arc;
use tonic::Request;

/// Implements `AdminAccessRuleService`.
#[derive(Debug, Clone)]
pub struct AdminAccessRuleApi(pub Arc<CoreContext>);

fn invalid(message: impl Into<String>) -> CoreError {
    CoreError::InvalidArgument(message.into())
}

/// Whether an address or network lies inside one of the network's CIDRs.
fn inside(network: &NetworkRecord, destination: &IpNet) -> bool {
    network.cidrs.iter().filter_map(|cidr| cidr.parse::<IpNet>().ok()).any(|cidr| cidr.contains(destination))
}

/// The destination, normalised, after checking it fits its type and the network.
pub(super) fn destination(kind: DestinationType, value: &str, network: &NetworkRecord) -> CoreResult<String> {
    let value = value.trim();
    let outside = || {
        invalid(format!("destination: `{value}` is outside network `{}` ({})", network.name, network.cidrs.join(", ")))
    };
    match kind {
        DestinationType::Ip => {
            let address: IpAddr =
                value.parse().map_err(|_| invalid(format!("destination: `{value}` is not an IP address")))?;
            if !inside(network, &IpNet::from(address)) {
                return Err(outside());
            }
            Ok(address.to_string())
        }
        DestinationType::Cidr => {
            let cidr = validate::cidr("destination", value)?;
            let parsed: IpNet = cidr.parse().map_err(|_| invalid("destination: not a CIDR"))?;
            if !inside(network, &parsed) {
                return Err(outside());
            }
            Ok(cidr)
        }
        DestinationType::Hostname => {
            if value.parse::<IpAddr>().is_ok() {
                return Err(invalid("destination: use destination_type `ip` for an address"));
            }
            validate::hostname(value).map_err(|_| invalid(format!("destination: `{value}` is not a host name")))
        }
    }
}

/// The protocol and port range, checked together; no protocol means any.
fn protocol_and_ports(protocol: &str, port_from: u32, port_to: u32) -> CoreResult<(RuleProtocol, u16, u16)> {
    let protocol =
        if protocol.is_empty() { RuleProtocol::Any } else { RuleProtocol::parse_field("protocol", protocol)? };
    match protocol {
        RuleProtocol::Tcp | RuleProtocol::Udp => {
            let port_to = if port_to == 0 { port_from } else { port_to };
            if port_from == 0 && port_to == 0 {
                return Ok((protocol, 0, 0));
            }
            let from = validate::port(port_from).map_err(|_| invalid("port_from: must be between 1 and 65535"))?;
            let to = validate::port(port_to).map_err(|_| invalid("port_to: must be between 1 and 65535"))?;
            if to < from {
                return Err(invalid("port_to: must not be below port_from"));
            }
            Ok((protocol, from, to))
        }
        RuleProtocol::Icmp | RuleProtocol::Any if port_from == 0 && port_to == 0 => Ok((protocol, 0, 0)),
        RuleProtocol::Icmp | RuleProtocol::Any => {
            Err(invalid(format!("port_from: ports apply to tcp and udp only, not `{protocol}`")))
        }
    }
}

impl AdminAccessRuleApi {
    /// Validates a rule message into storable fields; unknown network or users are 404s.
    async fn fields(&self, rule: AccessRule) -> CoreResult<AccessRuleFields> {
        let store = &self.0.store;
        let network = store.require_network(validate::id("network_id", &rule.network_id)?).await?;
        let mut user_ids = rule.user_ids;
        user_ids.sort();
        user_ids.dedup();
        for user_id in &user_ids {
            store.require_user(user_id).await?;
        }
        let groups = validate::groups("groups", &rule.groups)?;
        if user_ids.is_empty() && groups.is_empty() {
            return Err(invalid("user_ids: name at least one user or group (in user_ids or groups)"));
        }
        let destination_type = match rule.destination_type.as_str() {
            "" => DestinationType::Ip,
            word => DestinationType::parse_field("destination_type", word)?,
        };
        let destination = destination(destination_type, &rule.destination, &network)?;
        let (protocol, port_from, port_to) = protocol_and_ports(&rule.protocol, rule.port_from, rule.port_to)?;
        Ok(AccessRuleFields {
            name: validate::name("name", &rule.name)?,
            description: validate::text("description", &rule.description, 500)?,
            network_id: network.id,
            user_ids,
            groups,
            destination_type,
            destination,
            protocol,
            port_from,
            port_to,
        })
    }
}

#[tonic::async_trait]
impl AdminAccessRuleService for AdminAccessRuleApi {
    async fn list_access_rules(&self, request: Request<ListAccessRulesRequest>) -> GrpcResult<ListAccessRulesResponse> {
        respond(
            async {
                self.0.admin(&request, Access::Read).await?;
                let page = validate::page(request.into_inner().page)?;
                let listing = self.0.store.list_access_rules(page).await?;
                Ok(ListAccessRulesResponse {
                    access_rules: listing.items.into_iter().map(convert::access_rule).collect(),
                    page: Some(convert::page_info(listing.total, page)),
                })
            }
            .await,
        )
    }

    async fn create_access_rule(&self, request: Request<AccessRule>) -> GrpcResult<AccessRule> {
        respond(
            async {
                self.0.admin(&request, Access::Write).await?;
                let fields = self.fields(request.into_inner()).await?;
                Ok(convert::access_rule(access_rules::create(&self.0, fields).await?))
            }
            .await,
        )
    }

    async fn get_access_rule(&self, request: Request<GetAccessRuleRequest>) -> GrpcResult<AccessRule> {
        respond(
            async {
                self.0.admin(&request, Access::Read).await?;
                let rule = self.0.store.require_access_rule(validate::id("id", &request.get_ref().id)?).await?;
                Ok(convert::access_rule(rule))
            }
            .await,
        )
    }

    async fn update_access_rule(&self, request: Request<AccessRule>) -> GrpcResult<AccessRule> {
        respond(
            async {
                self.0.admin(&request, Access::Write).await?;
                let input = request.into_inner();
                let before = self.0.store.require_access_rule(validate::id("id", &input.id)?).await?;
                let fields = self.fields(input).await?;
                Ok(convert::access_rule(access_rules::replace(&self.0, &before.id, fields).await?))
            }
            .await,
        )
    }

    async fn delete_access_rule(
        &self,
        request: Request<DeleteAccessRuleRequest>,
    ) -> GrpcResult<DeleteAccessRuleResponse> {
        respond(
            async {
                self.0.admin(&request, Access::Write).await?;
                let rule = self.0.store.require_access_rule(validate::id("id", &request.into_inner().id)?).await?;
                access_rules::delete(&self.0, &rule.id).await?;
                Ok(DeleteAccessRuleResponse {})
            }
            .await,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_fit_their_protocol() {
        assert_eq!(protocol_and_ports("tcp", 443, 0).unwrap(), (RuleProtocol::Tcp, 443, 443));
        assert_eq!(protocol_and_ports("udp", 0, 0).unwrap(), (RuleProtocol::Udp, 0, 0));
        assert_eq!(protocol_and_ports("", 0, 0).unwrap(), (RuleProtocol::Any, 0, 0));
        assert!(protocol_and_ports("tcp", 500, 400).is_err());
        assert!(protocol_and_ports("tcp", 70000, 0).is_err());
        assert!(protocol_and_ports("icmp", 22, 22).is_err());
        assert!(protocol_and_ports("gre", 0, 0).is_err());
    }

    #[test]
    fn destinations_must_lie_inside_the_network() {
        let network = NetworkRecord {
            id: "net-1".into(),
            name: "office".into(),
            description: String::new(),
            cidrs: vec!["10.20.0.0/16".into()],
            gateway_ids: vec![],
            created_at: 0,
            updated_at: 0,
        };
        assert_eq!(destination(DestinationType::Ip, "10.20.1.5", &network).unwrap(), "10.20.1.5");
        assert_eq!(destination(DestinationType::Cidr, "10.20.1.7/24", &network).unwrap(), "10.20.1.0/24");
        assert!(destination(DestinationType::Ip, "10.21.0.1", &network).is_err());
        assert!(destination(DestinationType::Cidr, "10.0.0.0/8", &network).is_err());
        assert!(destination(DestinationType::Hostname, "db.internal.example", &network).is_ok());
        assert!(destination(DestinationType::Hostname, "10.20.1.5", &network).is_err());
    }
}
