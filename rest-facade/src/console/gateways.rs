//! Gateways (mesh hubs are gateways too): listed, made with their agent token shown
//! once beside the command that starts the agent, changed, granted to users, groups and
//! networks, given a new token, and deleted.

use super::configs::{PageParam, Paging};
use super::form::{ConsoleForm, FormData};
use super::networks::{every_network, shown_on_form};
use super::page::{AdminViewer, ConfirmPage, FieldErrors, Nav, Viewer, at, render, render_form, render_with};
use crate::FacadeState;
use crate::error::ApiError;
use askama::Template;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::header::HOST;
use axum::http::request::Parts;
use axum::http::uri::Authority;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use gatekey::v1::admin_gateway_service_client::AdminGatewayServiceClient;
use gatekey::v1::admin_user_service_client::AdminUserServiceClient;
use gatekey::v1::{
    CreateGatewayRequest, DeleteGatewayRequest, Gateway, GatewayGroupGrant, GatewayNetworkAttachment, GatewayRole,
    GatewayStatus, GatewayUserGrant, GetGatewayRequest, ListGatewaysRequest, ListUsersRequest, PageRequest,
    RotateGatewayTokenRequest, TransportProtocol, UpdateGatewayRequest, User,
};
use std::convert::Infallible;
use tonic::transport::Channel;

/// The address pool a new gateway gets when the form leaves it empty.
const DEFAULT_GATEWAY_SUBNET: &str = "10.8.0.0/24";

/// The port of the core's gRPC API in a default deployment.
const CORE_GRPC_PORT: u16 = 9090;

/// A gateway (or hub) as the console lists it, to admins and in the portal.
pub(super) struct GatewayRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub is_hub: bool,
    pub hostname: String,
    pub port: u32,
    /// `udp` or `tcp`.
    pub protocol: &'static str,
    pub online: bool,
    pub last_heartbeat: String,
    /// Admin views only.
    pub vpn_subnet: String,
    /// Admin views only.
    pub is_active: bool,
}

impl From<Gateway> for GatewayRow {
    fn from(gateway: Gateway) -> Self {
        GatewayRow {
            is_hub: gateway.role() == GatewayRole::Hub,
            protocol: protocol_word(gateway.protocol()),
            online: gateway.status() == GatewayStatus::Online,
            last_heartbeat: at(gateway.last_heartbeat),
            id: gateway.id,
            name: gateway.name,
            description: gateway.description,
            hostname: gateway.hostname,
            port: gateway.port,
            vpn_subnet: gateway.vpn_subnet,
            is_active: gateway.is_active,
        }
    }
}

/// What the gateway and hub forms hold, as typed.
#[derive(Default)]
pub(super) struct GatewayFields {
    /// The unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// The public host name.
    pub hostname: String,
    /// The public port, as typed.
    pub port: String,
    /// `udp` or `tcp`.
    pub protocol: String,
    /// The client address pool.
    pub vpn_subnet: String,
    /// Whether it is active (the edit form only).
    pub is_active: bool,
}

impl GatewayFields {
    /// The fields of a posted form.
    pub(super) fn of(data: &FormData) -> Self {
        GatewayFields {
            name: data.get("name").to_owned(),
            description: data.get("description").to_owned(),
            hostname: data.get("hostname").trim().to_owned(),
            port: data.get("port").trim().to_owned(),
            protocol: data.get("protocol").to_owned(),
            vpn_subnet: data.get("vpn_subnet").trim().to_owned(),
            is_active: data.checked("is_active"),
        }
    }

    /// The fields of a gateway, to edit.
    fn from_gateway(gateway: &Gateway) -> Self {
        GatewayFields {
            name: gateway.name.clone(),
            description: gateway.description.clone(),
            hostname: gateway.hostname.clone(),
            port: gateway.port.to_string(),
            protocol: protocol_word(gateway.protocol()).to_owned(),
            vpn_subnet: gateway.vpn_subnet.clone(),
            is_active: gateway.is_active,
        }
    }

    /// The port typed; 0 (the core's default port) when left empty.
    pub(super) fn port(&self) -> Result<u32, ApiError> {
        if self.port.is_empty() {
            return Ok(0);
        }
        self.port.parse().map_err(|_| ApiError::invalid_request("port: must be a number from 1 to 65535"))
    }

    /// The protocol chosen.
    fn transport(&self) -> Result<TransportProtocol, ApiError> {
        match self.protocol.as_str() {
            "udp" => Ok(TransportProtocol::Udp),
            "tcp" => Ok(TransportProtocol::Tcp),
            _ => Err(ApiError::invalid_request("protocol: choose UDP or TCP")),
        }
    }

    /// The creation request of a gateway or hub with these fields.
    pub(super) fn create_request(&self) -> Result<CreateGatewayRequest, ApiError> {
        Ok(CreateGatewayRequest {
            name: self.name.clone(),
            description: self.description.clone(),
            hostname: self.hostname.clone(),
            port: self.port()?,
            protocol: self.transport()?.into(),
            vpn_subnet: self.vpn_subnet.clone(),
        })
    }
}

/// `udp` or `tcp`, as the lists and forms say it (unset is UDP, the core's default).
pub(super) fn protocol_word(protocol: TransportProtocol) -> &'static str {
    match protocol {
        TransportProtocol::Tcp => "tcp",
        _ => "udp",
    }
}

/// The core's gRPC URL as the token pages guess it for agents: the host this console is
/// reached at (the configured public URL's, else the request's `Host`), on port 9090.
pub(super) struct CoreAddress(pub String);

impl FromRequestParts<FacadeState> for CoreAddress {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &FacadeState) -> Result<Self, Infallible> {
        let host = parts.headers.get(HOST).and_then(|host| host.to_str().ok());
        let host = host.or_else(|| parts.uri.authority().map(Authority::as_str));
        Ok(CoreAddress(core_url(state.options.public_origin.as_deref(), host)))
    }
}

/// `https://<host>:9090` for the host of `public_origin`, else of `host` (a `Host`
/// header: `name[:port]`), else a placeholder to replace.
fn core_url(public_origin: Option<&str>, host: Option<&str>) -> String {
    let configured =
        public_origin.and_then(|origin| origin.parse::<Uri>().ok()).and_then(|uri| uri.host().map(str::to_owned));
    let requested =
        || host.and_then(|host| host.parse::<Authority>().ok()).map(|authority| authority.host().to_owned());
    let host = configured.or_else(requested).filter(|host| !host.is_empty()).unwrap_or_else(|| "<core-host>".into());
    format!("https://{host}:{CORE_GRPC_PORT}")
}

/// Which agent a token starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Agent {
    /// A gateway's or a mesh hub's agent (`gatekey-agent run`).
    Gateway,
    /// A mesh spoke's agent (`gatekey-agent spoke`).
    Spoke,
}

/// How to start an agent with a new token: a command line to paste, and the systemd
/// unit's environment file.
pub(super) struct AgentSetup {
    /// Which agent.
    pub agent: Agent,
    /// The token, shown once.
    pub token: String,
    /// The command line that starts the agent.
    pub command: String,
    /// The environment file of the systemd unit.
    pub env: String,
}

impl AgentSetup {
    /// The setup of `agent` with `token`, reaching the core at `core`.
    pub(super) fn new(agent: Agent, token: String, core: &str) -> Self {
        // The token goes in the environment, not the command line, where every local
        // user could read it for the daemon's whole life.
        let command = match agent {
            Agent::Gateway => format!(
                "GATEKEY_GATEWAY_TOKEN={token} gatekey-agent run --core {core} --state-dir /var/lib/gatekey-agent --run-openvpn"
            ),
            Agent::Spoke => {
                format!(
                    "GATEKEY_SPOKE_TOKEN={token} gatekey-agent spoke --core {core} --state-dir /var/lib/gatekey-spoke"
                )
            }
        };
        let env = format!("GATEKEY_CORE_URL={core}\n{}={token}", Self::variable(agent));
        AgentSetup { agent, token, command, env }
    }

    fn variable(agent: Agent) -> &'static str {
        match agent {
            Agent::Gateway => "GATEKEY_GATEWAY_TOKEN",
            Agent::Spoke => "GATEKEY_SPOKE_TOKEN",
        }
    }

    /// The environment variable that carries the token.
    pub fn token_variable(&self) -> &'static str {
        Self::variable(self.agent)
    }

    /// The systemd unit (in `deploy/systemd/`), without `.service`.
    pub fn service(&self) -> &'static str {
        match self.agent {
            Agent::Gateway => "gatekey-agent",
            Agent::Spoke => "gatekey-spoke",
        }
    }

    /// Where the unit reads its environment.
    pub fn env_file(&self) -> &'static str {
        match self.agent {
            Agent::Gateway => "/etc/gatekey/agent.env",
            Agent::Spoke => "/etc/gatekey/spoke.env",
        }
    }
}

/// A new agent token, shown on this answer only, with how to start the agent.
#[derive(Template)]
#[template(path = "admin/gateway_token.html")]
pub(super) struct AgentTokenPage {
    /// The navigation.
    pub nav: Option<Nav>,
    /// What happened, e.g. "Gateway office-gw is created".
    pub heading: String,
    /// The token and how to use it.
    pub setup: AgentSetup,
    /// Where to go next.
    pub next: String,
    /// The words of the link onwards.
    pub next_label: &'static str,
}

/// The list and the form to make one.
#[derive(Template)]
#[template(path = "admin/gateways.html")]
struct GatewaysPage {
    nav: Option<Nav>,
    csrf: String,
    gateways: Vec<GatewayRow>,
    paging: Paging,
    fields: GatewayFields,
    errors: FieldErrors,
    default_subnet: &'static str,
    is_new: bool,
}

/// A user or a network by id, with what the page calls it.
struct Named {
    id: String,
    name: String,
}

/// One gateway: its form, who may use it, what it routes, its token.
#[derive(Template)]
#[template(path = "admin/gateway.html")]
struct GatewayPage {
    nav: Option<Nav>,
    csrf: String,
    id: String,
    is_hub: bool,
    fields: GatewayFields,
    errors: FieldErrors,
    default_subnet: &'static str,
    is_new: bool,
    users: Vec<Named>,
    groups: Vec<String>,
    networks: Vec<Named>,
    user_choices: Vec<Named>,
    network_choices: Vec<Named>,
    grant_errors: FieldErrors,
    group: String,
}

/// What a refused form leaves on the gateway page it comes back to.
#[derive(Default)]
struct Refused {
    /// The gateway form as typed, when that form was refused.
    fields: Option<GatewayFields>,
    /// The errors of the gateway form.
    errors: FieldErrors,
    /// The errors of the grant forms.
    grant_errors: FieldErrors,
    /// The group typed into the grant form.
    group: String,
    /// The status of the answer.
    status: StatusCode,
}

fn client(state: &FacadeState) -> AdminGatewayServiceClient<Channel> {
    AdminGatewayServiceClient::new(state.channel.clone())
}

async fn list_page(
    state: &FacadeState,
    viewer: &Viewer,
    page: Option<u32>,
    fields: GatewayFields,
    error: Option<ApiError>,
) -> Response {
    let request = viewer.call.request(ListGatewaysRequest { page: Some(Paging::request(page, 50)) });
    let listed = match client(state).list_gateways(request).await {
        Ok(listed) => listed.into_inner(),
        Err(status) => return viewer.failed(status).into_response(),
    };
    let status = error.as_ref().map_or(StatusCode::OK, ApiError::status);
    let page = GatewaysPage {
        nav: Some(viewer.nav()),
        csrf: viewer.csrf.clone(),
        gateways: listed.gateways.into_iter().map(GatewayRow::from).collect(),
        paging: Paging::of(listed.page),
        fields,
        errors: error.as_ref().map(FieldErrors::from).unwrap_or_default(),
        default_subnet: DEFAULT_GATEWAY_SUBNET,
        is_new: true,
    };
    render_form(&page.errors, status, &page)
}

/// `/admin/gateways`.
pub(super) async fn list(
    State(state): State<FacadeState>,
    AdminViewer(viewer): AdminViewer,
    Query(param): Query<PageParam>,
) -> Response {
    list_page(&state, &viewer, param.page, GatewayFields::default(), None).await
}

/// `POST /admin/gateways`: makes a gateway and shows its agent token, once.
pub(super) async fn create(
    State(state): State<FacadeState>,
    CoreAddress(core): CoreAddress,
    form: ConsoleForm,
) -> Response {
    let fields = GatewayFields::of(&form.data);
    let outcome = match fields.create_request() {
        Ok(request) => client(&state).create_gateway(form.viewer.call.request(request)).await.map_err(ApiError::from),
        Err(error) => Err(error),
    };
    match outcome {
        Ok(created) => {
            let created = created.into_inner();
            let (id, name) = created.gateway.map(|gateway| (gateway.id, gateway.name)).unwrap_or_default();
            render(&AgentTokenPage {
                nav: Some(form.viewer.nav()),
                heading: format!("Gateway {name} is created"),
                setup: AgentSetup::new(Agent::Gateway, created.token, &core),
                next: format!("/admin/gateways/{id}#access"),
                next_label: "Choose who may use it and the networks it routes",
            })
        }
        Err(error) if shown_on_form(&error) => list_page(&state, &form.viewer, None, fields, Some(error)).await,
        Err(error) => form.viewer.failed(error).into_response(),
    }
}

/// The first 100 users, for the grant picker.
async fn some_users(state: &FacadeState, viewer: &Viewer) -> Result<Vec<User>, Response> {
    let request = viewer
        .call
        .request(ListUsersRequest { page: Some(PageRequest { page: 1, per_page: 100 }), query: String::new() });
    match AdminUserServiceClient::new(state.channel.clone()).list_users(request).await {
        Ok(listed) => Ok(listed.into_inner().users),
        Err(status) => Err(viewer.failed(status).into_response()),
    }
}

/// Splits `known` into those whose ids are in `chosen` (an id not known shows as
/// itself) and the others, still to choose from.
fn split(known: Vec<Named>, chosen: &[String]) -> (Vec<Named>, Vec<Named>) {
    let (mut picked, others): (Vec<Named>, Vec<Named>) = known.into_iter().partition(|item| chosen.contains(&item.id));
    for id in chosen {
        if !picked.iter().any(|item| &item.id == id) {
            picked.push(Named { id: id.clone(), name: id.clone() });
        }
    }
    (picked, others)
}

/// The gateway page, with what a refused form left.
async fn edit_page(state: &FacadeState, viewer: &Viewer, id: String, refused: Refused) -> Response {
    let mut gateways = client(state);
    let (gateway, users, networks) = tokio::join!(
        gateways.get_gateway(viewer.call.request(GetGatewayRequest { id })),
        some_users(state, viewer),
        every_network(state, viewer),
    );
    let gateway = match gateway {
        Ok(gateway) => gateway.into_inner(),
        Err(status) => return viewer.failed(status).into_response(),
    };
    let (users, networks) = match (users, networks) {
        (Ok(users), Ok(networks)) => (users, networks),
        (Err(response), _) | (_, Err(response)) => return response,
    };
    let users = users
        .into_iter()
        .map(|user| Named { name: format!("{} <{}>", user.username, user.email), id: user.id })
        .collect();
    let networks = networks.into_iter().map(|network| Named { id: network.id, name: network.name }).collect();
    let (users, user_choices) = split(users, &gateway.user_ids);
    let (networks, network_choices) = split(networks, &gateway.network_ids);
    let page = GatewayPage {
        nav: Some(viewer.nav()),
        csrf: viewer.csrf.clone(),
        is_hub: gateway.role() == GatewayRole::Hub,
        fields: refused.fields.unwrap_or_else(|| GatewayFields::from_gateway(&gateway)),
        errors: refused.errors,
        default_subnet: DEFAULT_GATEWAY_SUBNET,
        is_new: false,
        users,
        groups: gateway.groups,
        networks,
        user_choices,
        network_choices,
        grant_errors: refused.grant_errors,
        group: refused.group,
        id: gateway.id,
    };
    render_with(refused.status, &page)
}

/// `/admin/gateways/{id}`.
pub(super) async fn edit(
    State(state): State<FacadeState>,
    AdminViewer(viewer): AdminViewer,
    Path(id): Path<String>,
) -> Response {
    edit_page(&state, &viewer, id, Refused::default()).await
}

/// The changes the gateway form asks for.
fn changes(id: String, fields: &GatewayFields) -> Result<UpdateGatewayRequest, ApiError> {
    Ok(UpdateGatewayRequest {
        id,
        name: Some(fields.name.clone()),
        description: Some(fields.description.clone()),
        hostname: Some(fields.hostname.clone()),
        port: Some(fields.port()?),
        protocol: Some(fields.transport()?.into()),
        vpn_subnet: Some(fields.vpn_subnet.clone()),
        is_active: Some(fields.is_active),
    })
}

/// `POST /admin/gateways/{id}`.
pub(super) async fn update(State(state): State<FacadeState>, Path(id): Path<String>, form: ConsoleForm) -> Response {
    let fields = GatewayFields::of(&form.data);
    let outcome = match changes(id.clone(), &fields) {
        Ok(request) => client(&state).update_gateway(form.viewer.call.request(request)).await.map_err(ApiError::from),
        Err(error) => Err(error),
    };
    match outcome {
        Ok(_) => Redirect::to("/admin/gateways").into_response(),
        Err(error) if shown_on_form(&error) => {
            let refused = Refused {
                fields: Some(fields),
                errors: FieldErrors::from(&error),
                status: error.status(),
                ..Refused::default()
            };
            edit_page(&state, &form.viewer, id, refused).await
        }
        Err(error) => form.viewer.failed(error).into_response(),
    }
}

/// `POST /admin/gateways/{id}/rotate`: a new agent token, shown once; the old one stops
/// working.
pub(super) async fn rotate(
    State(state): State<FacadeState>,
    CoreAddress(core): CoreAddress,
    Path(id): Path<String>,
    form: ConsoleForm,
) -> Response {
    let request = form.viewer.call.request(RotateGatewayTokenRequest { id: id.clone() });
    match client(&state).rotate_gateway_token(request).await {
        Ok(rotated) => {
            let rotated = rotated.into_inner();
            let name = rotated.gateway.map(|gateway| gateway.name).unwrap_or_default();
            render(&AgentTokenPage {
                nav: Some(form.viewer.nav()),
                heading: format!("New agent token for {name}"),
                setup: AgentSetup::new(Agent::Gateway, rotated.token, &core),
                next: format!("/admin/gateways/{id}"),
                next_label: "Back to the gateway",
            })
        }
        Err(status) => form.viewer.failed(status).into_response(),
    }
}

/// After a change to a gateway's grants: back to its page, or the page again with the
/// refusal next to the grant forms.
async fn regranted(
    state: &FacadeState,
    viewer: &Viewer,
    id: String,
    outcome: Result<tonic::Response<Gateway>, tonic::Status>,
    group: String,
) -> Response {
    match outcome.map_err(ApiError::from) {
        Ok(_) => Redirect::to(&format!("/admin/gateways/{id}#access")).into_response(),
        Err(error) if shown_on_form(&error) => {
            let refused = Refused {
                grant_errors: FieldErrors::from(&error),
                group,
                status: error.status(),
                ..Refused::default()
            };
            edit_page(state, viewer, id, refused).await
        }
        Err(error) => viewer.failed(error).into_response(),
    }
}

/// `POST /admin/gateways/{id}/grants`: grants a user (`kind=user`) or a group
/// (`kind=group`) the gateway, or routes a network through it (`kind=network`); the
/// `value` names which.
pub(super) async fn grant(State(state): State<FacadeState>, Path(id): Path<String>, form: ConsoleForm) -> Response {
    let (kind, value) = (form.data.get("kind"), form.data.get("value").trim().to_owned());
    let group = if kind == "group" { value.clone() } else { String::new() };
    let (call, gateway_id) = (&form.viewer.call, id.clone());
    let outcome = match kind {
        "user" => client(&state).grant_user(call.request(GatewayUserGrant { gateway_id, user_id: value })).await,
        "group" => client(&state).grant_group(call.request(GatewayGroupGrant { gateway_id, group: value })).await,
        "network" => {
            let request = call.request(GatewayNetworkAttachment { gateway_id, network_id: value });
            client(&state).attach_network(request).await
        }
        _ => {
            let error = ApiError::invalid_request("Choose what to grant: a user, a group or a network.");
            let refused =
                Refused { grant_errors: FieldErrors::from(&error), status: error.status(), ..Refused::default() };
            return edit_page(&state, &form.viewer, id, refused).await;
        }
    };
    regranted(&state, &form.viewer, id, outcome, group).await
}

/// `POST /admin/gateways/{id}/revoke-user/{user_id}`.
pub(super) async fn revoke_user(
    State(state): State<FacadeState>,
    Path((id, user_id)): Path<(String, String)>,
    form: ConsoleForm,
) -> Response {
    let request = form.viewer.call.request(GatewayUserGrant { gateway_id: id.clone(), user_id });
    let outcome = client(&state).revoke_user(request).await;
    regranted(&state, &form.viewer, id, outcome, String::new()).await
}

/// `POST /admin/gateways/{id}/revoke-group/{group}`.
pub(super) async fn revoke_group(
    State(state): State<FacadeState>,
    Path((id, group)): Path<(String, String)>,
    form: ConsoleForm,
) -> Response {
    let request = form.viewer.call.request(GatewayGroupGrant { gateway_id: id.clone(), group });
    let outcome = client(&state).revoke_group(request).await;
    regranted(&state, &form.viewer, id, outcome, String::new()).await
}

/// `POST /admin/gateways/{id}/detach/{network_id}`.
pub(super) async fn detach(
    State(state): State<FacadeState>,
    Path((id, network_id)): Path<(String, String)>,
    form: ConsoleForm,
) -> Response {
    let request = form.viewer.call.request(GatewayNetworkAttachment { gateway_id: id.clone(), network_id });
    let outcome = client(&state).detach_network(request).await;
    regranted(&state, &form.viewer, id, outcome, String::new()).await
}

/// `/admin/gateways/{id}/delete`: asks first.
pub(super) async fn confirm_delete(
    State(state): State<FacadeState>,
    AdminViewer(viewer): AdminViewer,
    Path(id): Path<String>,
) -> Response {
    match client(&state).get_gateway(viewer.call.request(GetGatewayRequest { id: id.clone() })).await {
        Ok(gateway) => {
            let gateway = gateway.into_inner();
            let (what, spokes) = match gateway.role() {
                GatewayRole::Hub => ("the mesh hub", " Its spokes are deleted with it."),
                _ => ("the gateway", ""),
            };
            render(&ConfirmPage {
                nav: Some(viewer.nav()),
                csrf: viewer.csrf.clone(),
                what: format!("{what} {}", gateway.name),
                consequences: format!(
                    "Every tunnel through it is cut at once, its grants and network attachments go, and its agent \
                     stops: its token no longer works.{spokes}"
                ),
                action: format!("/admin/gateways/{id}/delete"),
                back: format!("/admin/gateways/{id}"),
            })
        }
        Err(status) => viewer.failed(status).into_response(),
    }
}

/// `POST /admin/gateways/{id}/delete`.
pub(super) async fn delete(State(state): State<FacadeState>, Path(id): Path<String>, form: ConsoleForm) -> Response {
    form.viewer.then_to(
        client(&state).delete_gateway(form.viewer.call.request(DeleteGatewayRequest { id })).await,
        "/admin/gateways",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_core_url_is_guessed_from_the_public_url_then_the_host() {
        assert_eq!(core_url(Some("https://vpn.example.com"), Some("10.0.0.1:8080")), "https://vpn.example.com:9090");
        assert_eq!(core_url(None, Some("gk.example.org:8443")), "https://gk.example.org:9090");
        assert_eq!(core_url(None, Some("[2001:db8::1]:8443")), "https://[2001:db8::1]:9090");
        assert_eq!(core_url(None, Some("bad host")), "https://<core-host>:9090");
        assert_eq!(core_url(None, None), "https://<core-host>:9090");
    }

    #[test]
    fn agent_setups_carry_the_token_where_each_agent_reads_it() {
        let gateway = AgentSetup::new(Agent::Gateway, "gkgw_abc".into(), "https://core:9090");
        assert_eq!(
            gateway.command,
            "GATEKEY_GATEWAY_TOKEN=gkgw_abc gatekey-agent run --core https://core:9090 --state-dir /var/lib/gatekey-agent --run-openvpn"
        );
        assert_eq!(gateway.env, "GATEKEY_CORE_URL=https://core:9090\nGATEKEY_GATEWAY_TOKEN=gkgw_abc");
        let spoke = AgentSetup::new(Agent::Spoke, "gksp_abc".into(), "https://core:9090");
        assert_eq!(
            spoke.command,
            "GATEKEY_SPOKE_TOKEN=gksp_abc gatekey-agent spoke --core https://core:9090 --state-dir /var/lib/gatekey-spoke"
        );
        assert_eq!((spoke.service(), spoke.env_file()), ("gatekey-spoke", "/etc/gatekey/spoke.env"));
    }

    #[test]
    fn form_ports_and_protocols_are_checked_before_the_core() {
        let form = FormData::parse(b"port=&protocol=tcp").unwrap_or_default();
        let fields = GatewayFields::of(&form);
        assert_eq!(fields.port().ok(), Some(0));
        assert_eq!(fields.transport().ok(), Some(TransportProtocol::Tcp));
        let bad = GatewayFields::of(&FormData::parse(b"port=ssh&protocol=icmp").unwrap_or_default());
        assert!(FieldErrors::from(&bad.port().unwrap_err()).get("port").is_some());
        assert!(FieldErrors::from(&bad.transport().unwrap_err()).get("protocol").is_some());
    }

    #[test]
    fn grants_split_known_items_and_keep_unknown_ids() {
        let known = vec![Named { id: "a".into(), name: "A".into() }, Named { id: "b".into(), name: "B".into() }];
        let (picked, others) = split(known, &["b".into(), "z".into()]);
        let names = |items: &[Named]| items.iter().map(|item| item.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&picked), ["B", "z"]);
        assert_eq!(names(&others), ["A"]);
    }

    fn nav() -> Option<Nav> {
        Some(Nav { username: "admin".into(), is_admin: true, csrf: "tok".into(), path: "/admin/gateways".into() })
    }

    #[test]
    fn the_gateway_page_escapes_groups_in_paths_and_marks_refused_fields() {
        let error = ApiError::invalid_request("hostname: must be a DNS name");
        let page = GatewayPage {
            nav: nav(),
            csrf: "tok".into(),
            id: "gw-1".into(),
            is_hub: false,
            fields: GatewayFields { name: "office".into(), protocol: "tcp".into(), ..GatewayFields::default() },
            errors: FieldErrors::from(&error),
            default_subnet: DEFAULT_GATEWAY_SUBNET,
            is_new: false,
            users: vec![Named { id: "usr-1".into(), name: "alice <a@example.com>".into() }],
            groups: vec!["/ops team".into()],
            networks: vec![],
            user_choices: vec![],
            network_choices: vec![Named { id: "net-1".into(), name: "lan".into() }],
            grant_errors: FieldErrors::none(),
            group: String::new(),
        };
        let html = page.render().unwrap_or_default();
        assert!(html.contains(r#"action="/admin/gateways/gw-1/revoke-group/%2Fops%20team""#));
        assert!(html.contains(r#"aria-invalid="true" aria-describedby="hostname-error""#));
        assert!(html.contains("alice &#60;a@example.com&#62;") || html.contains("alice &lt;a@example.com&gt;"));
        assert!(html.contains(r#"<option value="tcp" selected>"#));
        assert!(!html.contains("style="));
    }

    #[test]
    fn the_token_page_shows_the_command_to_paste() {
        let page = AgentTokenPage {
            nav: nav(),
            heading: "Gateway office is created".into(),
            setup: AgentSetup::new(Agent::Gateway, "gkgw_abc".into(), "https://vpn.example.com:9090"),
            next: "/admin/gateways/gw-1#access".into(),
            next_label: "Next",
        };
        let html = page.render().unwrap_or_default();
        assert!(
            html.contains(r##"data-copy="#agent-token""##) && html.contains("deploy/systemd/gatekey-agent.service")
        );
        assert!(html.contains("GATEKEY_GATEWAY_TOKEN"));
    }
}
