//! The user's API keys: made with scopes and a lifetime, the secret shown once with a
//! copy button, and revoked.

use super::form::ConsoleForm;
use super::page::{FieldErrors, Nav, Viewer, at, render_with};
use crate::FacadeState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gatekey::v1::api_key_service_client::ApiKeyServiceClient;
use gatekey::v1::{ApiKey, CreateApiKeyRequest, ListApiKeysRequest, PageRequest, RevokeApiKeyRequest};

/// A key as the console lists it.
struct KeyRow {
    id: String,
    name: String,
    prefix: String,
    scopes: String,
    created_at: String,
    expires_at: String,
    last_used_at: String,
    revoked_at: String,
}

impl From<ApiKey> for KeyRow {
    fn from(key: ApiKey) -> Self {
        KeyRow {
            scopes: if key.scopes.is_empty() { "read, write".into() } else { key.scopes.join(", ") },
            created_at: at(key.created_at),
            expires_at: at(key.expires_at),
            last_used_at: at(key.last_used_at),
            revoked_at: at(key.revoked_at),
            id: key.id,
            name: key.name,
            prefix: key.prefix,
        }
    }
}

/// The keys, the form to make one, and a new key's secret, once.
#[derive(Template)]
#[template(path = "portal/api_keys.html")]
struct KeysPage {
    nav: Option<Nav>,
    csrf: String,
    keys: Vec<KeyRow>,
    errors: FieldErrors,
    name: String,
    /// The secret of the key just made: shown on this answer only.
    secret: Option<String>,
}

/// The lifetimes offered, in seconds (0: never expires).
const LIFETIMES: [(&str, u64); 5] =
    [("never", 0), ("1d", 86_400), ("30d", 2_592_000), ("90d", 7_776_000), ("365d", 31_536_000)];

async fn keys_of(state: &FacadeState, viewer: &Viewer) -> Result<Vec<KeyRow>, Response> {
    let request = viewer.call.request(ListApiKeysRequest { page: Some(PageRequest { page: 1, per_page: 100 }) });
    match ApiKeyServiceClient::new(state.channel.clone()).list_api_keys(request).await {
        Ok(listed) => Ok(listed.into_inner().api_keys.into_iter().map(KeyRow::from).collect()),
        Err(status) => Err(viewer.failed(status).into_response()),
    }
}

async fn keys_page(
    state: &FacadeState,
    viewer: &Viewer,
    errors: FieldErrors,
    name: String,
    secret: Option<String>,
) -> Response {
    let keys = match keys_of(state, viewer).await {
        Ok(keys) => keys,
        Err(response) => return response,
    };
    let status = if errors.any() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    render_with(status, &KeysPage { nav: Some(viewer.nav()), csrf: viewer.csrf.clone(), keys, errors, name, secret })
}

/// `/portal/api-keys`.
pub(super) async fn page(State(state): State<FacadeState>, viewer: Viewer) -> Response {
    keys_page(&state, &viewer, FieldErrors::none(), String::new(), None).await
}

/// `POST /portal/api-keys`: makes a key and shows its secret, once.
pub(super) async fn create(State(state): State<FacadeState>, form: ConsoleForm) -> Response {
    let viewer = form.viewer;
    let name = form.data.get("name").to_owned();
    let lifetime = form.data.get("lifetime");
    let Some(&(_, expires_in_seconds)) = LIFETIMES.iter().find(|(key, _)| *key == lifetime) else {
        let error = crate::error::ApiError::invalid_request("lifetime: choose one of the offered lifetimes");
        return keys_page(&state, &viewer, FieldErrors::from(&error), name, None).await;
    };
    let scopes = form.data.all("scopes");
    let request = viewer.call.request(CreateApiKeyRequest { name: name.clone(), scopes, expires_in_seconds });
    match ApiKeyServiceClient::new(state.channel.clone()).create_api_key(request).await {
        Ok(created) => {
            keys_page(&state, &viewer, FieldErrors::none(), String::new(), Some(created.into_inner().secret)).await
        }
        Err(status) => {
            let error = crate::error::ApiError::from(status);
            if error.status() != StatusCode::BAD_REQUEST {
                return viewer.failed(error).into_response();
            }
            keys_page(&state, &viewer, FieldErrors::from(&error), name, None).await
        }
    }
}

/// `POST /portal/api-keys/{id}/revoke`.
pub(super) async fn revoke(State(state): State<FacadeState>, Path(id): Path<String>, form: ConsoleForm) -> Response {
    let viewer = form.viewer;
    let request = viewer.call.request(RevokeApiKeyRequest { id });
    viewer.then_to(ApiKeyServiceClient::new(state.channel.clone()).revoke_api_key(request).await, "/portal/api-keys")
}
