//! STUB: replaced by the real gateways pages.

use super::page::{AdminViewer, problem};
use axum::http::StatusCode;
use axum::response::Response;

pub(super) async fn list(AdminViewer(viewer): AdminViewer) -> Response {
    problem(Some(viewer.nav()), StatusCode::NOT_IMPLEMENTED, "Not built", "stub")
}

pub(super) async fn create(AdminViewer(viewer): AdminViewer) -> Response {
    problem(Some(viewer.nav()), StatusCode::NOT_IMPLEMENTED, "Not built", "stub")
}

pub(super) async fn edit(AdminViewer(viewer): AdminViewer) -> Response {
    problem(Some(viewer.nav()), StatusCode::NOT_IMPLEMENTED, "Not built", "stub")
}

pub(super) async fn update(AdminViewer(viewer): AdminViewer) -> Response {
    problem(Some(viewer.nav()), StatusCode::NOT_IMPLEMENTED, "Not built", "stub")
}

pub(super) async fn rotate(AdminViewer(viewer): AdminViewer) -> Response {
    problem(Some(viewer.nav()), StatusCode::NOT_IMPLEMENTED, "Not built", "stub")
}

pub(super) async fn grant(AdminViewer(viewer): AdminViewer) -> Response {
    problem(Some(viewer.nav()), StatusCode::NOT_IMPLEMENTED, "Not built", "stub")
}

pub(super) async fn revoke_user(AdminViewer(viewer): AdminViewer) -> Response {
    problem(Some(viewer.nav()), StatusCode::NOT_IMPLEMENTED, "Not built", "stub")
}

pub(super) async fn revoke_group(AdminViewer(viewer): AdminViewer) -> Response {
    problem(Some(viewer.nav()), StatusCode::NOT_IMPLEMENTED, "Not built", "stub")
}

pub(super) async fn detach(AdminViewer(viewer): AdminViewer) -> Response {
    problem(Some(viewer.nav()), StatusCode::NOT_IMPLEMENTED, "Not built", "stub")
}

pub(super) async fn confirm_delete(AdminViewer(viewer): AdminViewer) -> Response {
    problem(Some(viewer.nav()), StatusCode::NOT_IMPLEMENTED, "Not built", "stub")
}

pub(super) async fn delete(AdminViewer(viewer): AdminViewer) -> Response {
    problem(Some(viewer.nav()), StatusCode::NOT_IMPLEMENTED, "Not built", "stub")
}
