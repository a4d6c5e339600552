//! The consent page of a native client's sign-in (see the core's `sso::client`): after
//! signing in at the identity provider, the user lets the client (the `gatekey`
//! command on their computer) sign in as them, or refuses; the browser then takes the
//! answer to the client's loopback listener.

use super::form::ConsoleForm;
use super::page::{Nav, Viewer, at, render};
use crate::FacadeState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::HeaderValue;
use axum::http::header::CONTENT_SECURITY_POLICY;
use axum::response::{IntoResponse, Redirect, Response};
use gatekey::v1::auth_service_client::AuthServiceClient;
use gatekey::v1::{AuthorizeClientLoginRequest, DescribeClientLoginRequest};
use serde::Deserialize;

/// The console's policy, except that this page's form may lead to the client's
/// loopback listener.
const CONSENT_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self' http://127.0.0.1:* http://[::1]:*; frame-ancestors 'none'; base-uri 'none'";

/// `?flow=` of the consent page.
#[derive(Debug, Deserialize)]
pub(super) struct FlowParam {
    #[serde(default)]
    flow: String,
}

/// The question.
#[derive(Template)]
#[template(path = "client_login.html")]
struct ConsentPage {
    nav: Option<Nav>,
    csrf: String,
    flow: String,
    client_name: String,
    redirect_uri: String,
    expires_at: String,
    username: String,
}

/// `GET /client-login?flow=…`.
pub(super) async fn page(State(state): State<FacadeState>, viewer: Viewer, Query(param): Query<FlowParam>) -> Response {
    let request = viewer.call.request(DescribeClientLoginRequest { flow: param.flow.clone() });
    let described = match AuthServiceClient::new(state.channel.clone()).describe_client_login(request).await {
        Ok(described) => described.into_inner(),
        Err(status) => return viewer.failed(status).into_response(),
    };
    let page = ConsentPage {
        nav: Some(viewer.nav()),
        csrf: viewer.csrf.clone(),
        flow: param.flow,
        client_name: described.client_name,
        redirect_uri: described.redirect_uri,
        expires_at: at(described.expires_at),
        username: viewer.user.username.clone(),
    };
    let mut response = render(&page);
    response.headers_mut().insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONSENT_POLICY));
    response
}

/// `POST /client-login`: the answer, then on to the client.
pub(super) async fn answer(State(state): State<FacadeState>, form: ConsoleForm) -> Response {
    let allow = form.data.get("decision") == "allow";
    let request =
        form.viewer.call.request(AuthorizeClientLoginRequest { flow: form.data.get("flow").to_owned(), allow });
    match AuthServiceClient::new(state.channel.clone()).authorize_client_login(request).await {
        Ok(answered) => Redirect::to(&answered.into_inner().redirect_url).into_response(),
        Err(status) => form.viewer.failed(status).into_response(),
    }
}
