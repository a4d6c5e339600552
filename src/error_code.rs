//! The stable error codes GateKey answers with, over gRPC (in the
//! [`ERROR_CODE_METADATA`] trailer) and REST (in `error.code`). Listed once, here.

/// Metadata key under which the core puts the [`ErrorCode`] of a failed call.
pub const ERROR_CODE_METADATA: &str = "x-gatekey-error-code";
/// Metadata key with the seconds to wait after a `rate_limited` error.
pub const RETRY_AFTER_METADATA: &str = "retry-after";

macro_rules! error_codes {
    ($($variant:ident => $text:literal: $doc:literal,)*) => {
        /// A machine-readable reason for a failure.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $(#[doc = $doc] $variant,)*
        }

        impl ErrorCode {
            /// Every code, for documentation and tests.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The snake_case wire form.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $text,)* }
            }

            /// Parses the wire form.
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some(ErrorCode::$variant),)* _ => None }
            }
        }
    };
}

error_codes! {
    InvalidRequest => "invalid_request": "The request body, query or path is malformed or fails validation.",
    BodyTooLarge => "body_too_large": "The request body exceeds the size limit.",
    Unauthorized => "unauthorized": "No credential, or an invalid, expired or revoked one.",
    InvalidCredentials => "invalid_credentials": "Wrong username or password.",
    AccountDisabled => "account_disabled": "The account is disabled.",
    Forbidden => "forbidden": "The caller lacks the role for this method, or a geo-fence refuses its address.",
    CsrfRejected => "csrf_rejected": "A change authenticated by the session cookie alone lacked proof that it came from this site.",
    InsufficientScope => "insufficient_scope": "The API key lacks the scope for this method.",
    NotFound => "not_found": "The named resource does not exist (or is not visible to the caller).",
    MethodNotAllowed => "method_not_allowed": "The path exists but not with this HTTP method.",
    ConfigExpired => "config_expired": "The config's certificate has expired.",
    ConfigRevoked => "config_revoked": "The config's certificate has been revoked.",
    ConfigPurged => "config_purged": "The config was already downloaded or its download window passed; its key is gone.",
    Conflict => "conflict": "The change clashes with an existing resource, such as a duplicate name.",
    RateLimited => "rate_limited": "Too many requests; retry after the `Retry-After` delay.",
    NotImplemented => "not_implemented": "The capability is not part of this build.",
    LoginFailed => "login_failed": "Single sign-on failed: bad or replayed state, invalid token or assertion, or a refused user.",
    ProviderUnavailable => "provider_unavailable": "The identity provider cannot be reached or answered nonsense.",
    Unavailable => "unavailable": "The core (or a service it needs) cannot be reached.",
    InternalError => "internal_error": "An unexpected failure; details are in the server log only.",
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn every_code_round_trips_and_is_snake_case() {
        for code in ErrorCode::ALL {
            let text = code.as_str();
            assert_eq!(ErrorCode::parse(text), Some(*code));
            assert!(text.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{text}");
        }
        assert_eq!(ErrorCode::parse("no_such_code"), None);
    }
}
