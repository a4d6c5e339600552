//! The admin dashboard (figures kept current by the core's events) and the sign-in
//! record.

use super::configs::{PageParam, Paging};
use super::page::{AdminViewer, Nav, Viewer, at, render};
use crate::FacadeState;
use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use gatekey::v1::admin_activity_service_client::AdminActivityServiceClient;
use gatekey::v1::{Dashboard, GetDashboardRequest, ListSignInsRequest, SignIn};
use serde::Deserialize;

/// A sign-in attempt as the console lists it.
pub(super) struct SignInRow {
    pub at: String,
    pub provider: String,
    pub subject: String,
    pub client_address: String,
    pub success: bool,
    pub reason: String,
}

impl From<SignIn> for SignInRow {
    fn from(sign_in: SignIn) -> Self {
        SignInRow {
            at: at(sign_in.at),
            provider: sign_in.provider,
            subject: sign_in.subject,
            client_address: sign_in.client_address,
            success: sign_in.success,
            reason: sign_in.reason,
        }
    }
}

/// The dashboard's figures.
pub(super) struct Figures {
    pub gateways_online: u32,
    pub gateways_offline: u32,
    pub live_sessions: u64,
    pub configs_issued_24h: u64,
    pub users: u64,
    pub recent_sign_ins: Vec<SignInRow>,
    pub recent_refusals: Vec<SignInRow>,
}

impl From<Dashboard> for Figures {
    fn from(dashboard: Dashboard) -> Self {
        Figures {
            gateways_online: dashboard.gateways_online,
            gateways_offline: dashboard.gateways_offline,
            live_sessions: dashboard.live_sessions,
            configs_issued_24h: dashboard.configs_issued_24h,
            users: dashboard.users,
            recent_sign_ins: dashboard.recent_sign_ins.into_iter().map(SignInRow::from).collect(),
            recent_refusals: dashboard.recent_refusals.into_iter().map(SignInRow::from).collect(),
        }
    }
}

/// The dashboard.
#[derive(Template)]
#[template(path = "admin/dashboard.html")]
struct DashboardPage {
    nav: Option<Nav>,
    figures: Figures,
}

/// The figures alone (re-fetched when the core reports a change).
#[derive(Template)]
#[template(path = "admin/figures.html")]
struct FiguresFragment {
    figures: Figures,
}

/// The sign-in record.
#[derive(Template)]
#[template(path = "admin/sign_ins.html")]
struct SignInsPage {
    nav: Option<Nav>,
    sign_ins: Vec<SignInRow>,
    paging: Paging,
    failures_only: bool,
}

async fn figures_of(state: &FacadeState, viewer: &Viewer) -> Result<Figures, Response> {
    let request = viewer.call.request(GetDashboardRequest {});
    match AdminActivityServiceClient::new(state.channel.clone()).get_dashboard(request).await {
        Ok(dashboard) => Ok(dashboard.into_inner().into()),
        Err(status) => Err(viewer.failed(status).into_response()),
    }
}

/// `/admin`.
pub(super) async fn page(State(state): State<FacadeState>, AdminViewer(viewer): AdminViewer) -> Response {
    match figures_of(&state, &viewer).await {
        Ok(figures) => render(&DashboardPage { nav: Some(viewer.nav()), figures }),
        Err(response) => response,
    }
}

/// `/admin/figures`.
pub(super) async fn figures(State(state): State<FacadeState>, AdminViewer(viewer): AdminViewer) -> Response {
    match figures_of(&state, &viewer).await {
        Ok(figures) => render(&FiguresFragment { figures }),
        Err(response) => response,
    }
}

/// `?page=` and `?failures=` of the sign-in record.
#[derive(Debug, Default, Deserialize)]
pub(super) struct SignInParams {
    #[serde(flatten)]
    page: PageParam,
    #[serde(default)]
    failures: bool,
}

/// `/admin/sign-ins`.
pub(super) async fn sign_ins(
    State(state): State<FacadeState>,
    AdminViewer(viewer): AdminViewer,
    Query(params): Query<SignInParams>,
) -> Response {
    let page = Paging::request(params.page.page, 50);
    let request = viewer.call.request(ListSignInsRequest { page: Some(page), failures_only: params.failures });
    match AdminActivityServiceClient::new(state.channel.clone()).list_sign_ins(request).await {
        Ok(listed) => {
            let listed = listed.into_inner();
            let sign_ins = listed.sign_ins.into_iter().map(SignInRow::from).collect();
            render(&SignInsPage {
                nav: Some(viewer.nav()),
                sign_ins,
                paging: Paging::of(listed.page),
                failures_only: params.failures,
            })
        }
        Err(status) => viewer.failed(status).into_response(),
    }
}
