//! Live VPN sessions: the user's own, and every one for administrators, who can end one
//! at its gateway.

use super::form::ConsoleForm;
use super::page::{AdminViewer, Nav, Viewer, at, bytes, render};
use crate::FacadeState;
use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use gatekey::v1::admin_vpn_session_service_client::AdminVpnSessionServiceClient;
use gatekey::v1::vpn_session_service_client::VpnSessionServiceClient;
use gatekey::v1::{DisconnectVpnSessionRequest, ListVpnSessionsRequest, PageRequest, VpnSession};

/// A session as the console lists it.
pub(super) struct SessionRow {
    pub id: String,
    pub who: String,
    pub gateway: String,
    pub vpn_address: String,
    pub client_address: String,
    pub connected_at: String,
    pub received: String,
    pub sent: String,
}

impl From<VpnSession> for SessionRow {
    fn from(session: VpnSession) -> Self {
        SessionRow {
            connected_at: at(session.connected_at),
            received: bytes(session.bytes_received),
            sent: bytes(session.bytes_sent),
            id: session.id,
            who: session.common_name,
            gateway: session.gateway_name,
            vpn_address: session.vpn_address,
            client_address: session.client_address,
        }
    }
}

/// Up to this many sessions are shown.
const SHOWN: PageRequest = PageRequest { page: 1, per_page: 100 };

/// The user's own sessions.
#[derive(Template)]
#[template(path = "portal/sessions.html")]
struct MySessionsPage {
    nav: Option<Nav>,
    sessions: Vec<SessionRow>,
}

/// Every live session.
#[derive(Template)]
#[template(path = "admin/sessions.html")]
struct AllSessionsPage {
    nav: Option<Nav>,
    csrf: String,
    sessions: Vec<SessionRow>,
    total: u64,
}

/// The table of every live session, alone (refreshed as sessions come and go).
#[derive(Template)]
#[template(path = "admin/session_table.html")]
struct SessionTable {
    csrf: String,
    sessions: Vec<SessionRow>,
    total: u64,
}

/// `/portal/sessions`.
pub(super) async fn mine(State(state): State<FacadeState>, viewer: Viewer) -> Response {
    let request = viewer.call.request(ListVpnSessionsRequest { page: Some(SHOWN) });
    match VpnSessionServiceClient::new(state.channel.clone()).list_my_sessions(request).await {
        Ok(listed) => {
            let sessions = listed.into_inner().sessions.into_iter().map(SessionRow::from).collect();
            render(&MySessionsPage { nav: Some(viewer.nav()), sessions })
        }
        Err(status) => viewer.failed(status).into_response(),
    }
}

async fn every_session(state: &FacadeState, viewer: &Viewer) -> Result<(Vec<SessionRow>, u64), Response> {
    let request = viewer.call.request(ListVpnSessionsRequest { page: Some(SHOWN) });
    match AdminVpnSessionServiceClient::new(state.channel.clone()).list_sessions(request).await {
        Ok(listed) => {
            let listed = listed.into_inner();
            let total = listed.page.map_or(0, |page| page.total);
            Ok((listed.sessions.into_iter().map(SessionRow::from).collect(), total))
        }
        Err(status) => Err(viewer.failed(status).into_response()),
    }
}

/// `/admin/sessions`.
pub(super) async fn all(State(state): State<FacadeState>, AdminViewer(viewer): AdminViewer) -> Response {
    match every_session(&state, &viewer).await {
        Ok((sessions, total)) => {
            render(&AllSessionsPage { nav: Some(viewer.nav()), csrf: viewer.csrf.clone(), sessions, total })
        }
        Err(response) => response,
    }
}

/// `/admin/sessions/rows`: the table alone.
pub(super) async fn all_rows(State(state): State<FacadeState>, AdminViewer(viewer): AdminViewer) -> Response {
    match every_session(&state, &viewer).await {
        Ok((sessions, total)) => render(&SessionTable { csrf: viewer.csrf.clone(), sessions, total }),
        Err(response) => response,
    }
}

/// `POST /admin/sessions/{id}/disconnect`: ends the session at its gateway.
pub(super) async fn disconnect(
    State(state): State<FacadeState>,
    Path(id): Path<String>,
    form: ConsoleForm,
) -> Response {
    let viewer = form.viewer;
    let request = viewer.call.request(DisconnectVpnSessionRequest { id });
    if let Err(status) = AdminVpnSessionServiceClient::new(state.channel.clone()).disconnect_session(request).await {
        return viewer.failed(status).into_response();
    }
    if form.from_htmx {
        return all_rows(State(state), AdminViewer(viewer)).await;
    }
    Redirect::to("/admin/sessions").into_response()
}
