//! The console's static files, embedded in the binary: htmx and its SSE extension
//! (vendored, see `static/vendor/README.md`), our own small script and stylesheet.

use crate::FacadeState;
use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::response::IntoResponse;
use axum::routing::get;

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: [Asset; 5] = [
    Asset {
        path: "/static/htmx.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../static/vendor/htmx-2.0.11.min.js"),
    },
    Asset {
        path: "/static/htmx-sse.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../static/vendor/htmx-ext-sse-2.2.4.min.js"),
    },
    Asset {
        path: "/static/console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../static/console.js"),
    },
    Asset {
        path: "/static/console.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../static/console.css"),
    },
    Asset {
        path: "/static/favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../static/favicon.svg"),
    },
];

/// Routes serving the embedded files; browsers may keep them for an hour.
pub(super) fn router() -> Router<FacadeState> {
    ASSETS.iter().fold(Router::new(), |router, asset| {
        let (content_type, body) = (asset.content_type, asset.body);
        router.route(
            asset.path,
            get(move || async move {
                (
                    [
                        (CONTENT_TYPE, content_type),
                        (CACHE_CONTROL, "public, max-age=3600"),
                        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
                    ],
                    body,
                )
                    .into_response()
            }),
        )
    })
}
