//! The core's one error type and its one mapping to `tonic::Status`.

use gatekey::{ERROR_CODE_METADATA, ErrorCode, RETRY_AFTER_METADATA};
use tonic::{Code, Status};

/// Why a core operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// Bad input; the message names the field.
    #[error("{0}")]
    InvalidArgument(String),
    /// No credential, or an unusable one.
    #[error("{0}")]
    Unauthenticated(String),
    /// Wrong username or password.
    #[error("invalid username or password")]
    InvalidCredentials,
    /// The account exists but is disabled.
    #[error("the account is disabled")]
    AccountDisabled,
    /// The caller lacks the admin role.
    #[error("{0}")]
    Forbidden(String),
    /// An API key lacks a scope.
    #[error("this API key lacks the `{0}` scope")]
    InsufficientScope(&'static str),
    /// The named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The change clashes with existing state.
    #[error("{0}")]
    Conflict(String),
    /// The resource existed but can no longer be served (answered as HTTP 410).
    #[error("{1}")]
    Gone(ErrorCode, String),
    /// Too many requests; retry after this many seconds.
    #[error("too many requests (limit {limit_per_minute} a minute); retry in {retry_after_seconds} s")]
    RateLimited {
        /// Seconds until a retry can succeed.
        retry_after_seconds: u64,
        /// The limit that was hit.
        limit_per_minute: u32,
    },
    /// A single sign-on attempt failed; the message says why.
    #[error("{0}")]
    LoginFailed(String),
    /// The identity provider could not be reached or answered nonsense.
    #[error("{0}")]
    ProviderUnavailable(String),
    /// A database failure.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// Any other unexpected failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for CoreError {
    /// Database errors are internal, except a value PostgreSQL cannot store or compare
    /// (a NUL byte, SQLSTATE 22021; an untranslatable character, 22P05): that is bad
    /// input every path should have refused already, answered the same on any backend.
    fn from(error: sqlx::Error) -> CoreError {
        let unstorable = match &error {
            sqlx::Error::Database(db) => matches!(db.code().as_deref(), Some("22021" | "22P05")),
            _ => false,
        };
        if unstorable {
            CoreError::InvalidArgument("a value holds a character that cannot be stored, such as a NUL byte".into())
        } else {
            CoreError::Database(error)
        }
    }
}

/// Result alias for core operations.
pub type CoreResult<T> = Result<T, CoreError>;

impl CoreError {
    /// The stable code a client sees.
    pub fn code(&self) -> ErrorCode {
        match self {
            CoreError::InvalidArgument(_) => ErrorCode::InvalidRequest,
            CoreError::Unauthenticated(_) => ErrorCode::Unauthorized,
            CoreError::InvalidCredentials => ErrorCode::InvalidCredentials,
            CoreError::AccountDisabled => ErrorCode::AccountDisabled,
            CoreError::Forbidden(_) => ErrorCode::Forbidden,
            CoreError::InsufficientScope(_) => ErrorCode::InsufficientScope,
            CoreError::NotFound(_) => ErrorCode::NotFound,
            CoreError::Conflict(_) => ErrorCode::Conflict,
            CoreError::Gone(code, _) => *code,
            CoreError::RateLimited { .. } => ErrorCode::RateLimited,
            CoreError::LoginFailed(_) => ErrorCode::LoginFailed,
            CoreError::ProviderUnavailable(_) => ErrorCode::ProviderUnavailable,
            CoreError::Database(_) | CoreError::Internal(_) => ErrorCode::InternalError,
        }
    }

    fn grpc_code(&self) -> Code {
        match self {
            CoreError::InvalidArgument(_) => Code::InvalidArgument,
            CoreError::Unauthenticated(_) | CoreError::InvalidCredentials => Code::Unauthenticated,
            CoreError::AccountDisabled | CoreError::Forbidden(_) | CoreError::InsufficientScope(_) => {
                Code::PermissionDenied
            }
            CoreError::NotFound(_) => Code::NotFound,
            CoreError::Conflict(_) => Code::AlreadyExists,
            CoreError::Gone(..) => Code::FailedPrecondition,
            CoreError::RateLimited { .. } => Code::ResourceExhausted,
            CoreError::LoginFailed(_) => Code::Unauthenticated,
            CoreError::ProviderUnavailable(_) => Code::Unavailable,
            CoreError::Database(_) | CoreError::Internal(_) => Code::Internal,
        }
    }
}

impl From<CoreError> for Status {
    fn from(error: CoreError) -> Status {
        let code = error.code();
        let message = match &error {
            CoreError::Database(_) | CoreError::Internal(_) => {
                tracing::error!(%error, "request failed");
                "internal server error".to_owned()
            }
            _ => error.to_string(),
        };
        let mut status = Status::new(error.grpc_code(), message);
        let metadata = status.metadata_mut();
        metadata.insert(ERROR_CODE_METADATA, tonic::metadata::MetadataValue::from_static(code.as_str()));
        if let CoreError::RateLimited { retry_after_seconds, limit_per_minute } = error {
            metadata.insert(RETRY_AFTER_METADATA, retry_after_seconds.into());
            metadata.insert("x-ratelimit-limit", limit_per_minute.into());
            metadata.insert("x-ratelimit-remaining", 0u32.into());
            metadata.insert("x-ratelimit-reset", retry_after_seconds.into());
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_details_do_not_leak_into_the_status() {
        let status = Status::from(CoreError::Internal("disk /secret/path failed".into()));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("/secret/path"));
        let code = status.metadata().get(ERROR_CODE_METADATA).and_then(|v| v.to_str().ok());
        assert_eq!(code, Some("internal_error"));
    }

    #[test]
    fn conflicts_carry_their_code() {
        let status = Status::from(CoreError::Conflict("a gateway named x exists".into()));
        assert_eq!(status.code(), Code::AlreadyExists);
        assert_eq!(status.message(), "a gateway named x exists");
    }
}
