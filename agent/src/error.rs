//! The agent's errors, typed so that what the core will refuse forever (a revoked or
//! rotated token, a deleted gateway, hub or spoke) ends the agent with a clear message
//! and exit code 3 (the systemd units do not restart on it), a broken local setup ends
//! it with exit code 1, and everything else is retried with backoff and jitter.

use tonic::{Code, Status};

/// Exit code of an agent the core refused for good.
pub const EXIT_REFUSED: u8 = 3;
/// Exit code of an agent whose own setup (flags, files, programs) is wrong.
pub const EXIT_SETUP: u8 = 1;

/// Why an agent operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The core refused this agent's credential or identity, and will keep doing so.
    #[error("{0}")]
    Refused(String),
    /// The agent cannot work as configured (bad flags, unreadable files, missing programs).
    #[error("{0}")]
    Setup(String),
    /// Worth trying again: the core or a local service is away for now.
    #[error("{0}")]
    Transient(String),
}

impl AgentError {
    /// Classifies the core's answer to `what`: an unknown or rotated token, or a deleted
    /// gateway or spoke, is a refusal; bad input is a setup error; the rest (the core
    /// unreachable, shutting down, overloaded, a deactivated gateway that an admin may
    /// activate again) is transient.
    pub fn from_status(what: &str, status: &Status) -> AgentError {
        let said = status.message();
        match status.code() {
            Code::Unauthenticated | Code::NotFound => AgentError::Refused(format!(
                "{what}: the core refused this agent for good ({said}); it was deleted or its token was rotated: \
                 give it a current token"
            )),
            Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
                AgentError::Setup(format!("{what}: the core refused the request as configured: {said}"))
            }
            _ => AgentError::Transient(format!("{what}: {said} ({:?})", status.code())),
        }
    }

    /// Whether trying again can help.
    pub fn is_transient(&self) -> bool {
        matches!(self, AgentError::Transient(_))
    }

    /// The process exit code this error ends the agent with.
    pub fn exit_code(&self) -> u8 {
        match self {
            AgentError::Refused(_) => EXIT_REFUSED,
            AgentError::Setup(_) | AgentError::Transient(_) => EXIT_SETUP,
        }
    }
}

impl From<String> for AgentError {
    /// Local failures described in words are setup errors.
    fn from(message: String) -> AgentError {
        AgentError::Setup(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_setup_errors_and_transient_failures_are_told_apart() {
        let refused = AgentError::from_status("provisioning", &Status::unauthenticated("invalid gateway token"));
        assert!(!refused.is_transient());
        assert_eq!(refused.exit_code(), EXIT_REFUSED);
        assert!(refused.to_string().contains("invalid gateway token"));
        let deleted = AgentError::from_status("stream", &Status::not_found("this gateway was deleted"));
        assert_eq!(deleted.exit_code(), EXIT_REFUSED);
        let bad = AgentError::from_status("provisioning", &Status::invalid_argument("advertised: outside"));
        assert!(!bad.is_transient());
        assert_eq!(bad.exit_code(), EXIT_SETUP);
        for transient in [
            Status::unavailable("the core is shutting down"),
            Status::permission_denied("gateway `gw` is deactivated"),
            Status::resource_exhausted("slow down"),
            Status::internal("boom"),
        ] {
            assert!(AgentError::from_status("stream", &transient).is_transient(), "{transient:?}");
        }
    }
}
