//! Access rules: who (users, groups) may reach what (an address, a network, a host
//! name; a protocol and ports) inside a network. Listed, made, changed and deleted.

use super::configs::{PageParam, Paging};
use super::form::ConsoleForm;
use super::networks::every_network;
use super::page::{AdminViewer, ConfirmPage, FieldErrors, Nav, Viewer, render, render_form};
use super::users::{UserChoice, first_users, form_failure, invalid_field, user_choices, user_label};
use crate::FacadeState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use gatekey::v1::admin_access_rule_service_client::AdminAccessRuleServiceClient;
use gatekey::v1::{AccessRule, DeleteAccessRuleRequest, GetAccessRuleRequest, ListAccessRulesRequest, Network, User};
use tonic::transport::Channel;

/// Rules on a page of the list.
const RULES_PER_PAGE: u32 = 50;

/// The fields of the rule form.
const RULE_FIELDS: [&str; 10] = [
    "name",
    "description",
    "network_id",
    "destination_type",
    "destination",
    "protocol",
    "port_from",
    "port_to",
    "user_ids",
    "groups",
];

/// A rule as the list shows it.
struct RuleRow {
    /// The rule's id.
    id: String,
    /// Its name.
    name: String,
    /// Its description.
    description: String,
    /// The network's name.
    network: String,
    /// The users granted, by e-mail.
    users: String,
    /// The groups granted.
    groups: String,
    /// `ip`, `cidr` or `hostname`.
    destination_type: String,
    /// The destination.
    destination: String,
    /// Protocol and ports, e.g. `tcp 443` or `any`.
    traffic: String,
}

impl RuleRow {
    /// `rule` with its network and users named.
    fn of(rule: AccessRule, networks: &[Network], users: &[User]) -> Self {
        RuleRow {
            network: networks
                .iter()
                .find(|network| network.id == rule.network_id)
                .map_or_else(|| rule.network_id.clone(), |network| network.name.clone()),
            users: rule.user_ids.iter().map(|id| user_label(users, id)).collect::<Vec<_>>().join(", "),
            groups: rule.groups.join(", "),
            traffic: traffic(&rule.protocol, rule.port_from, rule.port_to),
            id: rule.id,
            name: rule.name,
            description: rule.description,
            destination_type: rule.destination_type,
            destination: rule.destination,
        }
    }
}

/// Protocol and ports in words.
fn traffic(protocol: &str, port_from: u32, port_to: u32) -> String {
    let protocol = if protocol.is_empty() { "any" } else { protocol };
    match (port_from, port_to) {
        (0, _) => match protocol {
            "tcp" | "udp" => format!("{protocol}, all ports"),
            _ => protocol.to_owned(),
        },
        (from, to) if to == 0 || to == from => format!("{protocol} {from}"),
        (from, to) => format!("{protocol} {from}–{to}"),
    }
}

/// What the rule form holds, as entered.
struct RuleFields {
    /// Name.
    name: String,
    /// Description.
    description: String,
    /// The network's id.
    network_id: String,
    /// `ip`, `cidr` or `hostname`.
    destination_type: String,
    /// The destination.
    destination: String,
    /// `any`, `tcp`, `udp` or `icmp`.
    protocol: String,
    /// First port, "" for none.
    port_from: String,
    /// Last port, "" for none.
    port_to: String,
    /// The users granted.
    user_ids: Vec<String>,
    /// The groups granted, comma-separated.
    groups: String,
}

impl Default for RuleFields {
    fn default() -> Self {
        RuleFields {
            name: String::new(),
            description: String::new(),
            network_id: String::new(),
            destination_type: "ip".into(),
            destination: String::new(),
            protocol: "any".into(),
            port_from: String::new(),
            port_to: String::new(),
            user_ids: Vec::new(),
            groups: String::new(),
        }
    }
}

impl From<AccessRule> for RuleFields {
    fn from(rule: AccessRule) -> Self {
        let port = |port: u32| if port == 0 { String::new() } else { port.to_string() };
        RuleFields {
            port_from: port(rule.port_from),
            port_to: port(rule.port_to),
            groups: rule.groups.join(", "),
            name: rule.name,
            description: rule.description,
            network_id: rule.network_id,
            destination_type: rule.destination_type,
            destination: rule.destination,
            protocol: rule.protocol,
            user_ids: rule.user_ids,
        }
    }
}

impl RuleFields {
    /// The fields a form posted.
    fn of(form: &ConsoleForm) -> Self {
        let data = &form.data;
        RuleFields {
            name: data.get("name").trim().to_owned(),
            description: data.get("description").to_owned(),
            network_id: data.get("network_id").to_owned(),
            destination_type: data.get("destination_type").to_owned(),
            destination: data.get("destination").trim().to_owned(),
            protocol: data.get("protocol").to_owned(),
            port_from: data.get("port_from").trim().to_owned(),
            port_to: data.get("port_to").trim().to_owned(),
            user_ids: data.all("user_ids"),
            groups: data.get("groups").to_owned(),
        }
    }

    /// The rule these fields make (with `id`), or the field that is not a number.
    fn rule(&self, id: String, form: &ConsoleForm) -> Result<AccessRule, String> {
        Ok(AccessRule {
            id,
            name: self.name.clone(),
            description: self.description.clone(),
            network_id: self.network_id.clone(),
            user_ids: self.user_ids.clone(),
            groups: form.data.list("groups"),
            destination_type: self.destination_type.clone(),
            destination: self.destination.clone(),
            protocol: self.protocol.clone(),
            port_from: form.data.number("port_from")?,
            port_to: form.data.number("port_to")?,
            ..AccessRule::default()
        })
    }
}

/// A network offered in the form.
struct NetworkChoice {
    /// Its id.
    id: String,
    /// Its name and CIDRs.
    label: String,
    /// Whether it is selected.
    selected: bool,
}

/// What the rule form offers: networks and users.
struct Choices {
    /// The networks.
    networks: Vec<NetworkChoice>,
    /// The users.
    users: Vec<UserChoice>,
}

impl Choices {
    /// The choices with `fields`' network and users selected.
    /// A selected network not among `networks` is offered too (by its id).
    fn of(networks: &[Network], users: &[User], fields: &RuleFields) -> Self {
        let mut network_choices: Vec<NetworkChoice> = networks
            .iter()
            .map(|network| NetworkChoice {
                id: network.id.clone(),
                label: format!("{} ({})", network.name, network.cidrs.join(", ")),
                selected: network.id == fields.network_id,
            })
            .collect();
        if !fields.network_id.is_empty() && !network_choices.iter().any(|choice| choice.selected) {
            let id = fields.network_id.clone();
            network_choices.push(NetworkChoice { label: id.clone(), id, selected: true });
        }
        Choices { networks: network_choices, users: user_choices(users, &fields.user_ids) }
    }
}

/// The list and the form to make a rule.
#[derive(Template)]
#[template(path = "admin/access_rules.html")]
struct RulesPage {
    /// The navigation.
    nav: Option<Nav>,
    /// The token of the form.
    csrf: String,
    /// This page of rules.
    rules: Vec<RuleRow>,
    /// Where the page is in the list.
    paging: Paging,
    /// The form.
    fields: RuleFields,
    /// What the form offers.
    choices: Choices,
    /// The form's errors.
    errors: FieldErrors,
}

/// One rule's form.
#[derive(Template)]
#[template(path = "admin/access_rule.html")]
struct RulePage {
    /// The navigation.
    nav: Option<Nav>,
    /// The token of the form.
    csrf: String,
    /// The rule's id.
    id: String,
    /// The form.
    fields: RuleFields,
    /// What the form offers.
    choices: Choices,
    /// The form's errors.
    errors: FieldErrors,
}

fn client(state: &FacadeState) -> AdminAccessRuleServiceClient<Channel> {
    AdminAccessRuleServiceClient::new(state.channel.clone())
}

/// The networks and the first users, for the form and the list.
async fn networks_and_users(state: &FacadeState, viewer: &Viewer) -> Result<(Vec<Network>, Vec<User>), Response> {
    let (networks, users) = tokio::join!(every_network(state, viewer), first_users(state, viewer));
    Ok((networks?, users?))
}

/// The list page with the form holding `fields` and `errors`.
async fn list_page(
    state: &FacadeState,
    viewer: &Viewer,
    page: Option<u32>,
    fields: RuleFields,
    (status, errors): (StatusCode, FieldErrors),
) -> Response {
    let (networks, users) = match networks_and_users(state, viewer).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let request = viewer.call.request(ListAccessRulesRequest { page: Some(Paging::request(page, RULES_PER_PAGE)) });
    let listed = match client(state).list_access_rules(request).await {
        Ok(listed) => listed.into_inner(),
        Err(status) => return viewer.failed(status).into_response(),
    };
    let page = RulesPage {
        nav: Some(viewer.nav()),
        csrf: viewer.csrf.clone(),
        rules: listed.access_rules.into_iter().map(|rule| RuleRow::of(rule, &networks, &users)).collect(),
        paging: Paging::of(listed.page),
        choices: Choices::of(&networks, &users, &fields),
        fields,
        errors,
    };
    render_form(&page.errors, status, &page)
}

/// One rule's page with the form holding `fields` and `errors`.
async fn rule_page(
    state: &FacadeState,
    viewer: &Viewer,
    id: String,
    fields: RuleFields,
    (status, errors): (StatusCode, FieldErrors),
) -> Response {
    let (networks, users) = match networks_and_users(state, viewer).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let page = RulePage {
        nav: Some(viewer.nav()),
        csrf: viewer.csrf.clone(),
        id,
        choices: Choices::of(&networks, &users, &fields),
        fields,
        errors,
    };
    render_form(&page.errors, status, &page)
}

/// `/admin/access-rules?page=`.
pub(super) async fn list(
    State(state): State<FacadeState>,
    AdminViewer(viewer): AdminViewer,
    Query(param): Query<PageParam>,
) -> Response {
    list_page(&state, &viewer, param.page, RuleFields::default(), (StatusCode::OK, FieldErrors::none())).await
}

/// `POST /admin/access-rules`.
pub(super) async fn create(State(state): State<FacadeState>, form: ConsoleForm) -> Response {
    let fields = RuleFields::of(&form);
    let failed = match fields.rule(String::new(), &form) {
        Ok(rule) => match client(&state).create_access_rule(form.viewer.call.request(rule)).await {
            Ok(_) => return Redirect::to("/admin/access-rules").into_response(),
            Err(status) => match form_failure(status, &RULE_FIELDS) {
                Ok(failed) => failed,
                Err(error) => return form.viewer.failed(error).into_response(),
            },
        },
        Err(not_a_number) => invalid_field(not_a_number),
    };
    list_page(&state, &form.viewer, None, fields, failed).await
}

/// `/admin/access-rules/{id}`.
pub(super) async fn edit(
    State(state): State<FacadeState>,
    AdminViewer(viewer): AdminViewer,
    Path(id): Path<String>,
) -> Response {
    match client(&state).get_access_rule(viewer.call.request(GetAccessRuleRequest { id: id.clone() })).await {
        Ok(rule) => {
            let fields = RuleFields::from(rule.into_inner());
            rule_page(&state, &viewer, id, fields, (StatusCode::OK, FieldErrors::none())).await
        }
        Err(status) => viewer.failed(status).into_response(),
    }
}

/// `POST /admin/access-rules/{id}`: replaces the rule.
pub(super) async fn update(State(state): State<FacadeState>, Path(id): Path<String>, form: ConsoleForm) -> Response {
    let fields = RuleFields::of(&form);
    let failed = match fields.rule(id.clone(), &form) {
        Ok(rule) => match client(&state).update_access_rule(form.viewer.call.request(rule)).await {
            Ok(_) => return Redirect::to("/admin/access-rules").into_response(),
            Err(status) => match form_failure(status, &RULE_FIELDS) {
                Ok(failed) => failed,
                Err(error) => return form.viewer.failed(error).into_response(),
            },
        },
        Err(not_a_number) => invalid_field(not_a_number),
    };
    rule_page(&state, &form.viewer, id, fields, failed).await
}

/// `/admin/access-rules/{id}/delete`: asks first.
pub(super) async fn confirm_delete(
    State(state): State<FacadeState>,
    AdminViewer(viewer): AdminViewer,
    Path(id): Path<String>,
) -> Response {
    match client(&state).get_access_rule(viewer.call.request(GetAccessRuleRequest { id: id.clone() })).await {
        Ok(rule) => {
            let rule = rule.into_inner();
            render(&ConfirmPage {
                nav: Some(viewer.nav()),
                csrf: viewer.csrf.clone(),
                what: format!("the access rule {}", rule.name),
                consequences: format!(
                    "Whoever it lets reach {} loses that access at once, unless another rule grants it; the \
                     gateways get new rules.",
                    rule.destination
                ),
                action: format!("/admin/access-rules/{id}/delete"),
                back: "/admin/access-rules".into(),
            })
        }
        Err(status) => viewer.failed(status).into_response(),
    }
}

/// `POST /admin/access-rules/{id}/delete`.
pub(super) async fn delete(State(state): State<FacadeState>, Path(id): Path<String>, form: ConsoleForm) -> Response {
    form.viewer.then_to(
        client(&state).delete_access_rule(form.viewer.call.request(DeleteAccessRuleRequest { id })).await,
        "/admin/access-rules",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_reads_as_protocol_and_ports() {
        assert_eq!(traffic("any", 0, 0), "any");
        assert_eq!(traffic("", 0, 0), "any");
        assert_eq!(traffic("tcp", 0, 0), "tcp, all ports");
        assert_eq!(traffic("tcp", 443, 443), "tcp 443");
        assert_eq!(traffic("udp", 5000, 5010), "udp 5000–5010");
    }

    #[test]
    fn edited_rules_show_no_port_as_empty() {
        let fields = RuleFields::from(AccessRule { port_from: 0, port_to: 22, ..AccessRule::default() });
        assert_eq!((fields.port_from.as_str(), fields.port_to.as_str()), ("", "22"));
    }

    #[test]
    fn refused_fields_keep_their_values_and_errors_show_where_they_belong() {
        let fields = RuleFields {
            name: "db".into(),
            network_id: "net-1".into(),
            destination: "10.9.9.9".into(),
            protocol: "tcp".into(),
            port_from: "5432".into(),
            user_ids: vec!["usr-1".into()],
            ..RuleFields::default()
        };
        let networks = [Network { id: "net-1".into(), name: "lan".into(), ..Network::default() }];
        let users = [User { id: "usr-1".into(), username: "alice".into(), ..User::default() }];
        let error = crate::error::ApiError::invalid_request("destination: `10.9.9.9` is outside network `lan`");
        let page = RulePage {
            nav: None,
            csrf: "tok".into(),
            id: "rule-1".into(),
            choices: Choices::of(&networks, &users, &fields),
            fields,
            errors: FieldErrors::from(&error),
        };
        let html = page.render().unwrap();
        assert!(html.contains(r#"aria-invalid="true" aria-describedby="destination-error""#));
        assert!(html.contains(r#"value="10.9.9.9""#) && html.contains(r#"value="5432""#));
        assert!(html.contains(r#"<option value="usr-1" selected>"#));
        assert!(html.contains(r#"<option value="net-1" selected>"#));
        assert!(html.contains(r#"<option value="tcp" selected>"#));
        assert!(html.contains(r#"<select id="user_ids" name="user_ids" multiple"#));
        assert!(!html.contains("style="));
    }
}
