//! `/admin/events`: the core's event stream, re-emitted as Server-Sent Events named by
//! kind (`gateway`, `session`, `config`, `sign_in`), on which the admin pages refresh
//! what they show. The stream lives as long as the core's watch: it ends when the
//! browser leaves, when the credential stops being an admin's, or at shutdown (the
//! browser reconnects by itself).

use super::page::AdminViewer;
use crate::FacadeState;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use gatekey::v1::admin_activity_service_client::AdminActivityServiceClient;
use gatekey::v1::{WatchEventsRequest, event};
use std::convert::Infallible;
use std::time::Duration;

/// The SSE event name and JSON data of a core event.
fn sse_event(kind: event::Kind) -> Event {
    let (name, data) = match kind {
        event::Kind::Gateway(presence) => {
            ("gateway", serde_json::json!({"gateway_id": presence.gateway_id, "connected": presence.connected}))
        }
        event::Kind::Session(session) => (
            "session",
            serde_json::json!({"session_id": session.session_id, "gateway_id": session.gateway_id, "open": session.open}),
        ),
        event::Kind::Config(config) => {
            ("config", serde_json::json!({"config_id": config.config_id, "gateway_id": config.gateway_id}))
        }
        event::Kind::SignIn(sign_in) => ("sign_in", serde_json::json!({"id": sign_in.id, "success": sign_in.success})),
    };
    Event::default().event(name).data(data.to_string())
}

/// `GET /admin/events`.
pub(super) async fn stream(State(state): State<FacadeState>, AdminViewer(viewer): AdminViewer) -> Response {
    let request = viewer.call.request(WatchEventsRequest {});
    let events = match AdminActivityServiceClient::new(state.channel.clone()).watch_events(request).await {
        Ok(events) => events.into_inner(),
        Err(status) => return viewer.failed(status).into_response(),
    };
    let stream = events
        .take_while(|next| std::future::ready(next.is_ok()))
        .filter_map(|next| std::future::ready(next.ok().and_then(|event| event.kind).map(sse_event)))
        .map(Ok::<_, Infallible>);
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}
