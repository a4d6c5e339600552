//! Profiles (VPN configs): the user's own, with a second chance to download one not
//! yet downloaded; and every profile for administrators, who revoke certificates.

use super::form::ConsoleForm;
use super::page::{AdminViewer, FieldErrors, Nav, Viewer, at, render, render_with};
use super::portal::profile_download;
use crate::FacadeState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use gatekey::v1::admin_config_service_client::AdminConfigServiceClient;
use gatekey::v1::admin_pki_service_client::AdminPkiServiceClient;
use gatekey::v1::config_service_client::ConfigServiceClient;
use gatekey::v1::{DownloadConfigRequest, ListConfigsRequest, PageRequest, RevokeCertificateRequest, VpnConfig};
use serde::Deserialize;

/// A profile as the console lists it.
pub(super) struct ConfigRow {
    pub id: String,
    pub user_email: String,
    pub gateway: String,
    pub serial: String,
    pub created_at: String,
    pub expires_at: String,
    pub downloaded_at: String,
    pub revoked: bool,
}

impl From<VpnConfig> for ConfigRow {
    fn from(config: VpnConfig) -> Self {
        ConfigRow {
            gateway: if config.gateway_name.is_empty() { config.gateway_id } else { config.gateway_name },
            created_at: at(config.created_at),
            expires_at: at(config.expires_at),
            downloaded_at: at(config.downloaded_at),
            id: config.id,
            user_email: config.user_email,
            serial: config.serial,
            revoked: config.revoked,
        }
    }
}

/// `?page=` of paged console lists.
#[derive(Debug, Default, Deserialize)]
pub(super) struct PageParam {
    #[serde(default)]
    pub page: Option<u32>,
}

/// Paging links of a console list.
pub(super) struct Paging {
    pub page: u32,
    pub pages: u32,
    pub total: u64,
}

impl Paging {
    /// Paging of `info`.
    pub fn of(info: Option<gatekey::v1::PageInfo>) -> Paging {
        let info = info.unwrap_or_default();
        let per_page = u64::from(info.per_page.max(1));
        let pages = u32::try_from(info.total.div_ceil(per_page)).unwrap_or(u32::MAX).max(1);
        Paging { page: info.page.max(1), pages, total: info.total }
    }

    /// The request of page `page` (from 1) of `per_page` items.
    pub fn request(page: Option<u32>, per_page: u32) -> PageRequest {
        PageRequest { page: page.unwrap_or(1).clamp(1, 2_147_483_647), per_page }
    }
}

/// The user's profiles.
#[derive(Template)]
#[template(path = "portal/configs.html")]
struct MyConfigsPage {
    nav: Option<Nav>,
    csrf: String,
    configs: Vec<ConfigRow>,
    paging: Paging,
}

/// Every profile, and the revocation form.
#[derive(Template)]
#[template(path = "admin/configs.html")]
struct AllConfigsPage {
    nav: Option<Nav>,
    csrf: String,
    configs: Vec<ConfigRow>,
    paging: Paging,
    errors: FieldErrors,
    serial: String,
    done: Option<String>,
}

/// `/portal/configs`.
pub(super) async fn mine(State(state): State<FacadeState>, viewer: Viewer, Query(param): Query<PageParam>) -> Response {
    let request = viewer.call.request(ListConfigsRequest { page: Some(Paging::request(param.page, 50)) });
    match ConfigServiceClient::new(state.channel.clone()).list_my_configs(request).await {
        Ok(listed) => {
            let listed = listed.into_inner();
            let configs = listed.configs.into_iter().map(ConfigRow::from).collect();
            render(&MyConfigsPage {
                nav: Some(viewer.nav()),
                csrf: viewer.csrf.clone(),
                configs,
                paging: Paging::of(listed.page),
            })
        }
        Err(status) => viewer.failed(status).into_response(),
    }
}

/// `POST /portal/configs/{id}/download`: a profile not yet downloaded, once; anything
/// else is refused in words.
pub(super) async fn download_mine(
    State(state): State<FacadeState>,
    Path(config_id): Path<String>,
    form: ConsoleForm,
) -> Response {
    let viewer = form.viewer;
    let request = viewer.call.request(DownloadConfigRequest { config_id });
    match ConfigServiceClient::new(state.channel.clone()).download_config(request).await {
        Ok(profile) => {
            let profile = profile.into_inner();
            profile_download(&profile.file_name, None, profile.content)
        }
        Err(status) => viewer.failed(status).into_response(),
    }
}

async fn all_configs_page(
    state: &FacadeState,
    viewer: &Viewer,
    page: Option<u32>,
) -> Result<(Vec<ConfigRow>, Paging), Response> {
    let request = viewer.call.request(ListConfigsRequest { page: Some(Paging::request(page, 50)) });
    match AdminConfigServiceClient::new(state.channel.clone()).list_configs(request).await {
        Ok(listed) => {
            let listed = listed.into_inner();
            Ok((listed.configs.into_iter().map(ConfigRow::from).collect(), Paging::of(listed.page)))
        }
        Err(status) => Err(viewer.failed(status).into_response()),
    }
}

/// `/admin/configs`.
pub(super) async fn all(
    State(state): State<FacadeState>,
    AdminViewer(viewer): AdminViewer,
    Query(param): Query<PageParam>,
) -> Response {
    match all_configs_page(&state, &viewer, param.page).await {
        Ok((configs, paging)) => render(&AllConfigsPage {
            nav: Some(viewer.nav()),
            csrf: viewer.csrf.clone(),
            configs,
            paging,
            errors: FieldErrors::none(),
            serial: String::new(),
            done: None,
        }),
        Err(response) => response,
    }
}

/// `POST /admin/configs/revoke`: revokes a certificate by serial, with a reason.
pub(super) async fn revoke(State(state): State<FacadeState>, form: ConsoleForm) -> Response {
    let viewer = form.viewer;
    let serial = form.data.get("serial").trim().to_owned();
    let request = viewer
        .call
        .request(RevokeCertificateRequest { serial: serial.clone(), reason: form.data.get("reason").to_owned() });
    let outcome = AdminPkiServiceClient::new(state.channel.clone()).revoke_certificate(request).await;
    let (errors, done) = match outcome {
        Ok(revoked) => (
            FieldErrors::none(),
            Some(format!("Certificate {} is revoked; its tunnels are cut.", revoked.into_inner().serial)),
        ),
        Err(status) => {
            let error = crate::error::ApiError::from(status);
            if !matches!(error.status().as_u16(), 400 | 404) {
                return viewer.failed(error).into_response();
            }
            let mut errors = FieldErrors::from(&error);
            if error.status().as_u16() == 404 {
                errors =
                    FieldErrors::from(&crate::error::ApiError::invalid_request(format!("serial: {}", error.message())));
            }
            (errors, None)
        }
    };
    if done.is_some() && !form.from_htmx {
        return Redirect::to("/admin/configs").into_response();
    }
    match all_configs_page(&state, &viewer, None).await {
        Ok((configs, paging)) => {
            let status = if errors.any() { axum::http::StatusCode::BAD_REQUEST } else { axum::http::StatusCode::OK };
            let serial = if errors.any() { serial } else { String::new() };
            render_with(
                status,
                &AllConfigsPage {
                    nav: Some(viewer.nav()),
                    csrf: viewer.csrf.clone(),
                    configs,
                    paging,
                    errors,
                    serial,
                    done,
                },
            )
        }
        Err(response) => response,
    }
}
