//! STUB: replaced by the real mesh pages.

use super::page::{AdminViewer, problem};
use axum::http::StatusCode;
use axum::response::Response;

pub(super) async fn list(AdminViewer(viewer): AdminViewer) -> Response {
    problem(Some(viewer.nav()), StatusCode::NOT_IMPLEMENTED, "Not built", "stub")
}

pub(super) async fn create(AdminViewer(viewer): AdminViewer) -> Response {
    problem(Some(viewer.nav()), StatusCode::NOT_IMPLEMENTED, "Not built", "stub")
}

pub(super) async fn hub(AdminViewer(viewer): AdminViewer) -> Response {
    problem(Some(viewer.nav()), StatusCode::NOT_IMPLEMENTED, "Not built", "stub")
}

pub(super) async fn create_spoke(AdminViewer(viewer): AdminViewer) -> Response {
    problem(Some(viewer.nav()), StatusCode::NOT_IMPLEMENTED, "Not built", "stub")
}

pub(super) async fn delete_spoke(AdminViewer(viewer): AdminViewer) -> Response {
    problem(Some(viewer.nav()), StatusCode::NOT_IMPLEMENTED, "Not built", "stub")
}

pub(super) async fn confirm_delete(AdminViewer(viewer): AdminViewer) -> Response {
    problem(Some(viewer.nav()), StatusCode::NOT_IMPLEMENTED, "Not built", "stub")
}

pub(super) async fn delete(AdminViewer(viewer): AdminViewer) -> Response {
    problem(Some(viewer.nav()), StatusCode::NOT_IMPLEMENTED, "Not built", "stub")
}
