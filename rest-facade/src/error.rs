//! The facade's one error type: its HTTP body is the seed's
//! `{"error": {"code", "message"}}`, and gRPC statuses map to it in one table.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gatekey::{ERROR_CODE_METADATA, ErrorCode, RETRY_AFTER_METADATA};
use serde::Serialize;
use tonic::Code;

/// An error answered to a REST client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    /// `Retry-After` and `X-RateLimit-*` values of a 429, copied from the core.
    rate_limit_headers: Vec<(&'static str, String)>,
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with an explicit status and code.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), rate_limit_headers: Vec::new() }
    }

    /// A 400 `invalid_request` whose message names the problem.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, message)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable error code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message, naming the field at fault when one is.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The gRPC-status-to-HTTP table, with the code used when the core sent none.
fn http_for(code: Code) -> (StatusCode, ErrorCode) {
    match code {
        Code::InvalidArgument | Code::OutOfRange => (StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest),
        Code::Unauthenticated => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized),
        Code::PermissionDenied => (StatusCode::FORBIDDEN, ErrorCode::Forbidden),
        Code::NotFound => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
        Code::AlreadyExists => (StatusCode::CONFLICT, ErrorCode::Conflict),
        // The core answers FailedPrecondition only for things that existed and are gone.
        Code::FailedPrecondition => (StatusCode::GONE, ErrorCode::ConfigPurged),
        Code::ResourceExhausted => (StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited),
        Code::Unimplemented => (StatusCode::NOT_IMPLEMENTED, ErrorCode::NotImplemented),
        Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::InternalError),
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        let core_code =
            status.metadata().get(ERROR_CODE_METADATA).and_then(|value| value.to_str().ok()).and_then(ErrorCode::parse);
        // The core labels every error it answers; an unlabelled `Unknown` or `Cancelled`
        // is a broken connection to the core (tonic reports transport failures so, the
        // latter when the connection closes under a request in flight).
        let grpc_code = match (status.code(), core_code) {
            (Code::Unknown | Code::Cancelled, None) => Code::Unavailable,
            (code, _) => code,
        };
        let (http_status, default_code) = http_for(grpc_code);
        let code = core_code.unwrap_or(default_code);
        let rate_limit_headers = [
            (RETRY_AFTER_METADATA, "retry-after"),
            ("x-ratelimit-limit", "x-ratelimit-limit"),
            ("x-ratelimit-remaining", "x-ratelimit-remaining"),
            ("x-ratelimit-reset", "x-ratelimit-reset"),
        ]
        .into_iter()
        .filter_map(|(key, header)| {
            let value = status.metadata().get(key)?.to_str().ok()?;
            value.parse::<u64>().ok().map(|number| (header, number.to_string()))
        })
        .collect();
        let message = match http_status {
            StatusCode::INTERNAL_SERVER_ERROR => {
                tracing::error!(grpc_code = ?status.code(), message = status.message(), "core call failed");
                "internal server error".to_owned()
            }
            StatusCode::SERVICE_UNAVAILABLE if core_code.is_none() => {
                tracing::warn!(message = status.message(), "core unavailable");
                "the GateKey core is unavailable; try again shortly".to_owned()
            }
            _ => status.message().to_owned(),
        };
        ApiError { status: http_status, code, message, rate_limit_headers }
    }
}

/// The seed's error shape: `{"error": {"code", "message"}}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

/// What went wrong.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable snake_case code.
    code: String,
    /// A sentence for people.
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code.as_str().to_owned(), message: self.message } };
        let mut response = (self.status, Json(body)).into_response();
        for (name, value) in self.rate_limit_headers {
            if let Ok(value) = axum::http::HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_the_table_and_keep_the_core_code() {
        let mut status = tonic::Status::permission_denied("this API key lacks the `write` scope");
        status.metadata_mut().insert(ERROR_CODE_METADATA, "insufficient_scope".parse().unwrap());
        let error = ApiError::from(status);
        assert_eq!(error.status, StatusCode::FORBIDDEN);
        assert_eq!(error.code, ErrorCode::InsufficientScope);

        let error = ApiError::from(tonic::Status::already_exists("dup"));
        assert_eq!((error.status, error.code), (StatusCode::CONFLICT, ErrorCode::Conflict));

        for broken in [tonic::Status::unknown("transport error"), tonic::Status::cancelled("operation was canceled")] {
            let error = ApiError::from(broken);
            assert_eq!((error.status, error.code), (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable));
        }

        let error = ApiError::from(tonic::Status::internal("db at /var/secret broke"));
        assert_eq!(error.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!error.message.contains("/var/secret"));
    }
}
