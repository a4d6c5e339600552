//! Mesh hubs and their spokes: hubs listed and made (the hub's agent token shown once
//! with the command that starts the agent), a hub's spokes listed, added (the spoke's
//! token shown once) and removed, and hubs deleted. A hub is a gateway: its settings,
//! grants and networks are on its gateway page.

use super::configs::{PageParam, Paging};
use super::form::ConsoleForm;
use super::gateways::{Agent, AgentSetup, AgentTokenPage, CoreAddress, GatewayFields, GatewayRow};
use super::networks::shown_on_form;
use super::page::{AdminViewer, ConfirmPage, FieldErrors, Nav, Viewer, at, render, render_form};
use crate::FacadeState;
use crate::error::ApiError;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gatekey::v1::admin_mesh_service_client::AdminMeshServiceClient;
use gatekey::v1::{
    CreateMeshHubRequest, DeleteMeshHubRequest, DeleteMeshSpokeRequest, GetMeshHubRequest, ListHubsRequest,
    ListMeshSpokesRequest, MeshHub, MeshSpoke, PageRequest,
};
use tonic::transport::Channel;

/// The address pool a new hub gets when the form leaves it empty.
const DEFAULT_HUB_SUBNET: &str = "10.9.0.0/24";

/// A hub as the console shows it: the gateway it is, and its mesh side.
struct HubRow {
    gateway: GatewayRow,
    advertised: String,
    created_at: String,
    /// How many spokes it has, when the core said.
    spokes: Option<u64>,
}

impl From<MeshHub> for HubRow {
    fn from(hub: MeshHub) -> Self {
        let gateway = hub.gateway.unwrap_or_default();
        HubRow {
            advertised: hub.advertised_cidrs.join(", "),
            created_at: at(gateway.created_at),
            gateway: GatewayRow::from(gateway),
            spokes: None,
        }
    }
}

/// A spoke as the hub page lists it.
struct SpokeRow {
    id: String,
    name: String,
    local_cidrs: String,
    advertised: String,
    online: bool,
    created_at: String,
}

impl From<MeshSpoke> for SpokeRow {
    fn from(spoke: MeshSpoke) -> Self {
        SpokeRow {
            local_cidrs: spoke.local_cidrs.join(", "),
            advertised: spoke.advertised_cidrs.join(", "),
            online: spoke.status == "online",
            created_at: at(spoke.created_at),
            id: spoke.id,
            name: spoke.name,
        }
    }
}

/// The hubs and the form to make one.
#[derive(Template)]
#[template(path = "admin/mesh.html")]
struct HubsPage {
    nav: Option<Nav>,
    csrf: String,
    hubs: Vec<HubRow>,
    paging: Paging,
    fields: GatewayFields,
    errors: FieldErrors,
    default_subnet: &'static str,
    is_new: bool,
}

/// What the spoke form holds.
#[derive(Default)]
struct SpokeFields {
    name: String,
    local_cidrs: String,
}

/// One hub: its details, its spokes and the form to add one.
#[derive(Template)]
#[template(path = "admin/mesh_hub.html")]
struct HubPage {
    nav: Option<Nav>,
    csrf: String,
    hub: HubRow,
    spokes: Vec<SpokeRow>,
    paging: Paging,
    /// The page's own path, for the paging links.
    path: String,
    fields: SpokeFields,
    errors: FieldErrors,
}

/// A hub's id.
fn hub_id(hub: &MeshHub) -> String {
    hub.gateway.as_ref().map(|gateway| gateway.id.clone()).unwrap_or_default()
}

fn client(state: &FacadeState) -> AdminMeshServiceClient<Channel> {
    AdminMeshServiceClient::new(state.channel.clone())
}

/// How many spokes a hub has, or `None` when the core does not say.
async fn spoke_count(state: &FacadeState, viewer: &Viewer, hub_id: String) -> Option<u64> {
    let request =
        viewer.call.request(ListMeshSpokesRequest { hub_id, page: Some(PageRequest { page: 1, per_page: 1 }) });
    let listed = client(state).list_spokes(request).await.ok()?;
    listed.into_inner().page.map(|page| page.total)
}

async fn list_page(
    state: &FacadeState,
    viewer: &Viewer,
    page: Option<u32>,
    fields: GatewayFields,
    error: Option<ApiError>,
) -> Response {
    let request = viewer.call.request(ListHubsRequest { page: Some(Paging::request(page, 50)) });
    let listed = match client(state).list_hubs(request).await {
        Ok(listed) => listed.into_inner(),
        Err(status) => return viewer.failed(status).into_response(),
    };
    let counts = futures::future::join_all(listed.hubs.iter().map(|hub| spoke_count(state, viewer, hub_id(hub)))).await;
    let hubs =
        listed.hubs.into_iter().zip(counts).map(|(hub, spokes)| HubRow { spokes, ..HubRow::from(hub) }).collect();
    let status = error.as_ref().map_or(StatusCode::OK, ApiError::status);
    let page = HubsPage {
        nav: Some(viewer.nav()),
        csrf: viewer.csrf.clone(),
        hubs,
        paging: Paging::of(listed.page),
        fields,
        errors: error.as_ref().map(FieldErrors::from).unwrap_or_default(),
        default_subnet: DEFAULT_HUB_SUBNET,
        is_new: true,
    };
    render_form(&page.errors, status, &page)
}

/// `/admin/mesh`.
pub(super) async fn list(
    State(state): State<FacadeState>,
    AdminViewer(viewer): AdminViewer,
    Query(param): Query<PageParam>,
) -> Response {
    list_page(&state, &viewer, param.page, GatewayFields::default(), None).await
}

/// `POST /admin/mesh`: makes a hub and shows its agent token, once.
pub(super) async fn create(
    State(state): State<FacadeState>,
    CoreAddress(core): CoreAddress,
    form: ConsoleForm,
) -> Response {
    let fields = GatewayFields::of(&form.data);
    let outcome = match fields.create_request() {
        Ok(hub) => {
            let request = form.viewer.call.request(CreateMeshHubRequest { hub: Some(hub), ..Default::default() });
            client(&state).create_hub(request).await.map_err(ApiError::from)
        }
        Err(error) => Err(error),
    };
    match outcome {
        Ok(created) => {
            let created = created.into_inner();
            let (id, name) = created.hub.and_then(|hub| hub.gateway).map(|hub| (hub.id, hub.name)).unwrap_or_default();
            render(&AgentTokenPage {
                nav: Some(form.viewer.nav()),
                heading: format!("Mesh hub {name} is created"),
                setup: AgentSetup::new(Agent::Gateway, created.token, &core),
                next: format!("/admin/mesh/{id}"),
                next_label: "Add its spokes",
            })
        }
        Err(error) if shown_on_form(&error) => list_page(&state, &form.viewer, None, fields, Some(error)).await,
        Err(error) => form.viewer.failed(error).into_response(),
    }
}

/// The hub page, with the spoke form as typed and its error.
async fn hub_page(
    state: &FacadeState,
    viewer: &Viewer,
    id: String,
    page: Option<u32>,
    fields: SpokeFields,
    error: Option<ApiError>,
) -> Response {
    let (mut hubs, mut spokes) = (client(state), client(state));
    let (hub, listed) = tokio::join!(
        hubs.get_hub(viewer.call.request(GetMeshHubRequest { id: id.clone() })),
        spokes.list_spokes(
            viewer.call.request(ListMeshSpokesRequest { hub_id: id, page: Some(Paging::request(page, 100)) })
        ),
    );
    let (hub, listed) = match (hub, listed) {
        (Ok(hub), Ok(listed)) => (hub.into_inner(), listed.into_inner()),
        (Err(status), _) | (_, Err(status)) => return viewer.failed(status).into_response(),
    };
    let paging = Paging::of(listed.page);
    let status = error.as_ref().map_or(StatusCode::OK, ApiError::status);
    let page = HubPage {
        nav: Some(viewer.nav()),
        csrf: viewer.csrf.clone(),
        path: format!("/admin/mesh/{}", hub_id(&hub)),
        hub: HubRow { spokes: Some(paging.total), ..HubRow::from(hub) },
        spokes: listed.spokes.into_iter().map(SpokeRow::from).collect(),
        paging,
        fields,
        errors: error.as_ref().map(FieldErrors::from).unwrap_or_default(),
    };
    render_form(&page.errors, status, &page)
}

/// `/admin/mesh/{id}`.
pub(super) async fn hub(
    State(state): State<FacadeState>,
    AdminViewer(viewer): AdminViewer,
    Path(id): Path<String>,
    Query(param): Query<PageParam>,
) -> Response {
    hub_page(&state, &viewer, id, param.page, SpokeFields::default(), None).await
}

/// `POST /admin/mesh/{id}/spokes`: adds a spoke and shows its token, once.
pub(super) async fn create_spoke(
    State(state): State<FacadeState>,
    CoreAddress(core): CoreAddress,
    Path(id): Path<String>,
    form: ConsoleForm,
) -> Response {
    let fields =
        SpokeFields { name: form.data.get("name").to_owned(), local_cidrs: form.data.get("local_cidrs").to_owned() };
    let request = form.viewer.call.request(MeshSpoke {
        hub_id: id.clone(),
        name: fields.name.clone(),
        local_cidrs: form.data.list("local_cidrs"),
        ..MeshSpoke::default()
    });
    match client(&state).create_spoke(request).await.map_err(ApiError::from) {
        Ok(created) => {
            let created = created.into_inner();
            let name = created.spoke.map(|spoke| spoke.name).unwrap_or_default();
            render(&AgentTokenPage {
                nav: Some(form.viewer.nav()),
                heading: format!("Spoke {name} is added"),
                setup: AgentSetup::new(Agent::Spoke, created.token, &core),
                next: format!("/admin/mesh/{id}"),
                next_label: "Back to the hub",
            })
        }
        Err(error) if shown_on_form(&error) => hub_page(&state, &form.viewer, id, None, fields, Some(error)).await,
        Err(error) => form.viewer.failed(error).into_response(),
    }
}

/// `POST /admin/mesh/{id}/spokes/{spoke_id}/delete`: removes a spoke, revoking its
/// certificate and cutting its tunnel.
pub(super) async fn delete_spoke(
    State(state): State<FacadeState>,
    Path((id, spoke_id)): Path<(String, String)>,
    form: ConsoleForm,
) -> Response {
    let request = form.viewer.call.request(DeleteMeshSpokeRequest { hub_id: id.clone(), spoke_id });
    form.viewer.then_to(client(&state).delete_spoke(request).await, &format!("/admin/mesh/{id}"))
}

/// `/admin/mesh/{id}/delete`: asks first.
pub(super) async fn confirm_delete(
    State(state): State<FacadeState>,
    AdminViewer(viewer): AdminViewer,
    Path(id): Path<String>,
) -> Response {
    match client(&state).get_hub(viewer.call.request(GetMeshHubRequest { id: id.clone() })).await {
        Ok(hub) => render(&ConfirmPage {
            nav: Some(viewer.nav()),
            csrf: viewer.csrf.clone(),
            what: format!("the mesh hub {}", hub.into_inner().gateway.unwrap_or_default().name),
            consequences: "Its spokes are deleted and their certificates revoked, every tunnel through it is cut, \
                           and its agent stops: its token no longer works."
                .into(),
            action: format!("/admin/mesh/{id}/delete"),
            back: format!("/admin/mesh/{id}"),
        }),
        Err(status) => viewer.failed(status).into_response(),
    }
}

/// `POST /admin/mesh/{id}/delete`.
pub(super) async fn delete(State(state): State<FacadeState>, Path(id): Path<String>, form: ConsoleForm) -> Response {
    form.viewer
        .then_to(client(&state).delete_hub(form.viewer.call.request(DeleteMeshHubRequest { id })).await, "/admin/mesh")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hub_page_lists_spokes_and_keeps_a_refused_spoke_form() {
        let gateway = gatekey::v1::Gateway {
            id: "gw-9".into(),
            name: "hub".into(),
            status: gatekey::v1::GatewayStatus::Online.into(),
            ..Default::default()
        };
        let hub = MeshHub { gateway: Some(gateway), ..MeshHub::default() };
        let spoke = MeshSpoke {
            id: "spoke-1".into(),
            name: "branch".into(),
            local_cidrs: vec!["192.168.20.0/24".into()],
            ..MeshSpoke::default()
        };
        let error = ApiError::invalid_request("local_cidrs: `x` is not a CIDR such as 10.0.0.0/24");
        let page = HubPage {
            nav: None,
            csrf: "tok".into(),
            hub: HubRow::from(hub),
            spokes: vec![SpokeRow::from(spoke)],
            paging: Paging::of(None),
            path: "/admin/mesh/gw-9".into(),
            fields: SpokeFields { name: "x".into(), local_cidrs: "x".into() },
            errors: FieldErrors::from(&error),
        };
        let html = page.render().unwrap_or_default();
        assert!(html.contains(r#"action="/admin/mesh/gw-9/spokes/spoke-1/delete""#));
        assert!(
            html.contains(r#"aria-describedby="local_cidrs-error""#) && html.contains(r#"href="/admin/gateways/gw-9""#)
        );
        assert!(html.contains("<code>192.168.20.0/24</code>") && !html.contains("style="));
    }
}
