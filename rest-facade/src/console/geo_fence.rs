//! STUB: replaced by the real geo_fence pages.

use super::page::{AdminViewer, problem};
use axum::http::StatusCode;
use axum::response::Response;

pub(super) async fn page(AdminViewer(viewer): AdminViewer) -> Response {
    problem(Some(viewer.nav()), StatusCode::NOT_IMPLEMENTED, "Not built", "stub")
}

pub(super) async fn save_settings(AdminViewer(viewer): AdminViewer) -> Response {
    problem(Some(viewer.nav()), StatusCode::NOT_IMPLEMENTED, "Not built", "stub")
}

pub(super) async fn create_rule(AdminViewer(viewer): AdminViewer) -> Response {
    problem(Some(viewer.nav()), StatusCode::NOT_IMPLEMENTED, "Not built", "stub")
}

pub(super) async fn delete_rule(AdminViewer(viewer): AdminViewer) -> Response {
    problem(Some(viewer.nav()), StatusCode::NOT_IMPLEMENTED, "Not built", "stub")
}

pub(super) async fn check(AdminViewer(viewer): AdminViewer) -> Response {
    problem(Some(viewer.nav()), StatusCode::NOT_IMPLEMENTED, "Not built", "stub")
}
