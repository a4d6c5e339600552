//! Protected networks: listed, made, changed and deleted.

use super::form::ConsoleForm;
use super::page::{AdminViewer, ConfirmPage, FieldErrors, Nav, Viewer, at, render, render_form};
use crate::FacadeState;
use crate::error::ApiError;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use gatekey::v1::admin_network_service_client::AdminNetworkServiceClient;
use gatekey::v1::{
    CidrList, CreateNetworkRequest, DeleteNetworkRequest, GetNetworkRequest, ListNetworksRequest, Network, PageRequest,
    UpdateNetworkRequest,
};
use tonic::transport::Channel;

/// A network as the console shows it.
pub(super) struct NetworkRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub cidrs: String,
    pub gateways: usize,
    pub updated_at: String,
}

impl From<Network> for NetworkRow {
    fn from(network: Network) -> Self {
        NetworkRow {
            cidrs: network.cidrs.join(", "),
            gateways: network.gateway_ids.len(),
            updated_at: at(network.updated_at),
            id: network.id,
            name: network.name,
            description: network.description,
        }
    }
}

/// What the network form holds.
#[derive(Default)]
struct NetworkFields {
    name: String,
    description: String,
    cidrs: String,
}

/// The list and the form to make one.
#[derive(Template)]
#[template(path = "admin/networks.html")]
struct NetworksPage {
    nav: Option<Nav>,
    csrf: String,
    networks: Vec<NetworkRow>,
    fields: NetworkFields,
    errors: FieldErrors,
}

/// One network's form.
#[derive(Template)]
#[template(path = "admin/network.html")]
struct NetworkPage {
    nav: Option<Nav>,
    csrf: String,
    id: String,
    fields: NetworkFields,
    errors: FieldErrors,
}

fn client(state: &FacadeState) -> AdminNetworkServiceClient<Channel> {
    AdminNetworkServiceClient::new(state.channel.clone())
}

/// Every network (at most 100, by name), for lists and pickers.
pub(super) async fn every_network(state: &FacadeState, viewer: &Viewer) -> Result<Vec<Network>, Response> {
    let request = viewer.call.request(ListNetworksRequest { page: Some(PageRequest { page: 1, per_page: 100 }) });
    match client(state).list_networks(request).await {
        Ok(listed) => Ok(listed.into_inner().networks),
        Err(status) => Err(viewer.failed(status).into_response()),
    }
}

async fn list_page(state: &FacadeState, viewer: &Viewer, fields: NetworkFields, error: Option<ApiError>) -> Response {
    let networks = match every_network(state, viewer).await {
        Ok(networks) => networks.into_iter().map(NetworkRow::from).collect(),
        Err(response) => return response,
    };
    let status = error.as_ref().map_or(StatusCode::OK, ApiError::status);
    let errors = error.as_ref().map(FieldErrors::from).unwrap_or_default();
    let page = NetworksPage { nav: Some(viewer.nav()), csrf: viewer.csrf.clone(), networks, fields, errors };
    render_form(&page.errors, status, &page)
}

/// `/admin/networks`.
pub(super) async fn list(State(state): State<FacadeState>, AdminViewer(viewer): AdminViewer) -> Response {
    list_page(&state, &viewer, NetworkFields::default(), None).await
}

fn fields_of(form: &ConsoleForm) -> NetworkFields {
    NetworkFields {
        name: form.data.get("name").to_owned(),
        description: form.data.get("description").to_owned(),
        cidrs: form.data.get("cidrs").to_owned(),
    }
}

/// Whether an error belongs on the form (bad input, a clash) rather than on a page of
/// its own.
pub(super) fn shown_on_form(error: &ApiError) -> bool {
    matches!(error.status(), StatusCode::BAD_REQUEST | StatusCode::CONFLICT)
}

/// `POST /admin/networks`.
pub(super) async fn create(State(state): State<FacadeState>, form: ConsoleForm) -> Response {
    let fields = fields_of(&form);
    let request = form.viewer.call.request(CreateNetworkRequest {
        name: fields.name.clone(),
        description: fields.description.clone(),
        cidrs: form.data.list("cidrs"),
    });
    match client(&state).create_network(request).await {
        Ok(_) => Redirect::to("/admin/networks").into_response(),
        Err(status) => {
            let error = ApiError::from(status);
            if !shown_on_form(&error) {
                return form.viewer.failed(error).into_response();
            }
            list_page(&state, &form.viewer, fields, Some(error)).await
        }
    }
}

/// `/admin/networks/{id}`.
pub(super) async fn edit(
    State(state): State<FacadeState>,
    AdminViewer(viewer): AdminViewer,
    Path(id): Path<String>,
) -> Response {
    match client(&state).get_network(viewer.call.request(GetNetworkRequest { id: id.clone() })).await {
        Ok(network) => {
            let network = network.into_inner();
            let fields =
                NetworkFields { name: network.name, description: network.description, cidrs: network.cidrs.join(", ") };
            render(&NetworkPage {
                nav: Some(viewer.nav()),
                csrf: viewer.csrf.clone(),
                id,
                fields,
                errors: FieldErrors::none(),
            })
        }
        Err(status) => viewer.failed(status).into_response(),
    }
}

/// `POST /admin/networks/{id}`.
pub(super) async fn update(State(state): State<FacadeState>, Path(id): Path<String>, form: ConsoleForm) -> Response {
    let fields = fields_of(&form);
    let request = form.viewer.call.request(UpdateNetworkRequest {
        id: id.clone(),
        name: Some(fields.name.clone()),
        description: Some(fields.description.clone()),
        cidrs: Some(CidrList { cidrs: form.data.list("cidrs") }),
    });
    match client(&state).update_network(request).await {
        Ok(_) => Redirect::to("/admin/networks").into_response(),
        Err(status) => {
            let error = ApiError::from(status);
            if !shown_on_form(&error) {
                return form.viewer.failed(error).into_response();
            }
            let errors = FieldErrors::from(&error);
            let viewer = &form.viewer;
            let page = NetworkPage { nav: Some(viewer.nav()), csrf: viewer.csrf.clone(), id, fields, errors };
            render_form(&page.errors, error.status(), &page)
        }
    }
}

/// `/admin/networks/{id}/delete`: asks first.
pub(super) async fn confirm_delete(
    State(state): State<FacadeState>,
    AdminViewer(viewer): AdminViewer,
    Path(id): Path<String>,
) -> Response {
    match client(&state).get_network(viewer.call.request(GetNetworkRequest { id: id.clone() })).await {
        Ok(network) => render(&ConfirmPage {
            nav: Some(viewer.nav()),
            csrf: viewer.csrf.clone(),
            what: format!("the network {}", network.into_inner().name),
            consequences: "Its access rules go with it, and gateways stop routing it.".into(),
            action: format!("/admin/networks/{id}/delete"),
            back: "/admin/networks".into(),
        }),
        Err(status) => viewer.failed(status).into_response(),
    }
}

/// `POST /admin/networks/{id}/delete`.
pub(super) async fn delete(State(state): State<FacadeState>, Path(id): Path<String>, form: ConsoleForm) -> Response {
    form.viewer.then_to(
        client(&state).delete_network(form.viewer.call.request(DeleteNetworkRequest { id })).await,
        "/admin/networks",
    )
}
