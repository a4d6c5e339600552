//! Every signed-in user's portal: the gateways and mesh hubs granted to them (status
//! kept current), and a one-click profile download that keeps the one-time rule.

use super::form::ConsoleForm;
use super::gateways::GatewayRow;
use super::page::{Nav, Refusal, Viewer, render};
use super::sign_in::{SignInQuery, signed_in_viewer};
use crate::FacadeState;
use crate::extract::CoreCall;
use askama::Template;
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use gatekey::v1::config_service_client::ConfigServiceClient;
use gatekey::v1::gateway_service_client::GatewayServiceClient;
use gatekey::v1::mesh_service_client::MeshServiceClient;
use gatekey::v1::{DownloadConfigRequest, GenerateConfigRequest, ListGatewaysRequest, ListHubsRequest, PageRequest};

/// The user's gateways.
#[derive(Template)]
#[template(path = "portal/home.html")]
struct HomePage {
    nav: Option<Nav>,
    csrf: String,
    gateways: Vec<GatewayRow>,
}

/// The table of the user's gateways, alone (polled to keep statuses current).
#[derive(Template)]
#[template(path = "portal/gateway_table.html")]
struct GatewayTable {
    csrf: String,
    gateways: Vec<GatewayRow>,
}

/// A hub as the portal lists it.
struct HubRow {
    gateway: GatewayRow,
    networks: Vec<String>,
}

/// The user's mesh hubs.
#[derive(Template)]
#[template(path = "portal/hubs.html")]
struct HubsPage {
    nav: Option<Nav>,
    csrf: String,
    hubs: Vec<HubRow>,
}

/// Every item on one page (the portal lists what a user has, which is not much).
const ALL: PageRequest = PageRequest { page: 1, per_page: 100 };

async fn granted_gateways(state: &FacadeState, viewer: &Viewer) -> Result<Vec<GatewayRow>, Refusal> {
    let request = viewer.call.request(ListGatewaysRequest { page: Some(ALL) });
    let listed = GatewayServiceClient::new(state.channel.clone()).list_gateways(request).await;
    Ok(listed
        .map_err(|status| viewer.failed(status))?
        .into_inner()
        .gateways
        .into_iter()
        .map(GatewayRow::from)
        .collect())
}

/// `/`: the portal for a signed-in user, the sign-in page for anyone else.
pub(super) async fn home(
    State(state): State<FacadeState>,
    jar: CookieJar,
    Query(query): Query<SignInQuery>,
    request: Request,
) -> Response {
    let (mut parts, _) = request.into_parts();
    let viewer = match signed_in_viewer(Viewer::from_request_parts(&mut parts, &state).await) {
        Ok(Some(viewer)) => viewer,
        Ok(None) => {
            let call = match CoreCall::from_request_parts(&mut parts, &state).await {
                Ok(call) => call,
                Err(error) => return error.into_response(),
            };
            // A stale session cookie goes with the sign-in page.
            let jar = jar.add(crate::cookies::session_cleared(state.options.secure_cookies));
            return super::sign_in::signed_out(&state, jar, &call, query).await;
        }
        Err(refusal) => return refusal.into_response(),
    };
    match granted_gateways(&state, &viewer).await {
        Ok(gateways) => render(&HomePage { nav: Some(viewer.nav()), csrf: viewer.csrf.clone(), gateways }),
        Err(refusal) => refusal.into_response(),
    }
}

/// The gateway table alone.
pub(super) async fn gateway_rows(State(state): State<FacadeState>, viewer: Viewer) -> Response {
    match granted_gateways(&state, &viewer).await {
        Ok(gateways) => render(&GatewayTable { csrf: viewer.csrf.clone(), gateways }),
        Err(refusal) => refusal.into_response(),
    }
}

/// The user's mesh hubs.
pub(super) async fn hubs(State(state): State<FacadeState>, viewer: Viewer) -> Response {
    let request = viewer.call.request(ListHubsRequest { page: Some(ALL) });
    let listed = match MeshServiceClient::new(state.channel.clone()).list_hubs(request).await {
        Ok(listed) => listed.into_inner(),
        Err(status) => return viewer.failed(status).into_response(),
    };
    let hubs = listed
        .hubs
        .into_iter()
        .map(|hub| HubRow {
            networks: hub.advertised_cidrs,
            gateway: GatewayRow::from(hub.gateway.unwrap_or_default()),
        })
        .collect();
    render(&HubsPage { nav: Some(viewer.nav()), csrf: viewer.csrf.clone(), hubs })
}

/// `POST /portal/gateways/{id}/profile`: generates a config and answers its `.ovpn` as
/// a download, in one step; the config is spent by this download, as any other.
pub(super) async fn download_profile(
    State(state): State<FacadeState>,
    Path(gateway_id): Path<String>,
    form: ConsoleForm,
) -> Response {
    let viewer = form.viewer;
    let mut configs = ConfigServiceClient::new(state.channel.clone());
    let request = viewer.call.request(GenerateConfigRequest { gateway_id, protocol: "openvpn".into() });
    let generated = match configs.generate_config(request).await {
        Ok(generated) => generated.into_inner(),
        Err(status) => return viewer.failed(status).into_response(),
    };
    let request = viewer.call.request(DownloadConfigRequest { config_id: generated.config_id });
    match configs.download_config(request).await {
        Ok(profile) => {
            let profile = profile.into_inner();
            profile_download(&profile.file_name, generated.expires_at, profile.content)
        }
        Err(status) => viewer.failed(status).into_response(),
    }
}

/// A profile as a file download named after its gateway and expiry, e.g.
/// `gatekey-office-until-20261130-1312Z.ovpn`.
pub(super) fn profile_download(
    file_name: &str,
    expires_at: Option<prost_types::Timestamp>,
    content: String,
) -> Response {
    let stem = file_name.trim_end_matches(".ovpn");
    let until = expires_at
        .and_then(|at| time::OffsetDateTime::from_unix_timestamp(at.seconds).ok())
        .and_then(|at| at.format(time::macros::format_description!("[year][month][day]-[hour][minute]Z")).ok());
    let name = match until {
        Some(until) => format!("{stem}-until-{until}.ovpn"),
        None => format!("{stem}.ovpn"),
    };
    // Names come from gateway names (letters, digits, `-`, `_`, `.`); anything else goes.
    let name: String = name.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).collect();
    (
        StatusCode::OK,
        [
            (CONTENT_TYPE, "application/x-openvpn-profile".to_owned()),
            (CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
            (CACHE_CONTROL, "no-store".to_owned()),
        ],
        content,
    )
        .into_response()
}
