//! STUB: replaced by the real providers pages.

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

pub(super) async fn confirm_delete(AdminViewer(viewer): AdminViewer) -> Response {
    problem(Some(viewer.nav()), StatusCode::NOT_IMPLEMENTED, "Not built", "stub")
}

pub(super) async fn delete(AdminViewer(viewer): AdminViewer) -> Response {
    problem(Some(viewer.nav()), StatusCode::NOT_IMPLEMENTED, "Not built", "stub")
}
