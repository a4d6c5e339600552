//! Why a command failed, in words for people, with the documented exit code for
//! scripts.

use std::process::ExitCode;

/// A failed command.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// No session, or the stored one expired or was ended: sign in again (exit 3).
    #[error("{0}")]
    SignedOut(String),
    /// The core refused: not granted, revoked, disabled, geo-fenced, a bad name (exit 4).
    #[error("{0}")]
    Refused(String),
    /// The core cannot be reached, or the server URL is unusable (exit 5).
    #[error("{0}")]
    Unreachable(String),
    /// Something on this computer is missing or wrong: openvpn, privileges, files (exit 6).
    #[error("{0}")]
    Local(String),
    /// The VPN connection failed or was ended by the gateway (exit 7).
    #[error("{0}")]
    Connection(String),
    /// No connection is running (for `status` and `disconnect`) (exit 8).
    #[error("{0}")]
    NotConnected(String),
}

impl Failure {
    /// The process exit code.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Failure::SignedOut(_) => 3,
            Failure::Refused(_) => 4,
            Failure::Unreachable(_) => 5,
            Failure::Local(_) => 6,
            Failure::Connection(_) => 7,
            Failure::NotConnected(_) => 8,
        })
    }

    /// The failure a child process ended with (exit code `code`), saying `message`.
    pub fn from_exit(code: i32, message: String) -> Failure {
        match code {
            3 => Failure::SignedOut(message),
            4 => Failure::Refused(message),
            5 => Failure::Unreachable(message),
            6 => Failure::Local(message),
            8 => Failure::NotConnected(message),
            _ => Failure::Connection(message),
        }
    }

    /// A failure of `what` from the SDK, classified by the core's answer.
    pub fn from_sdk(what: &str, error: gatekey::Error) -> Failure {
        match error {
            gatekey::Error::Transport(error) => {
                Failure::Unreachable(format!("{what}: cannot reach the server ({error})"))
            }
            gatekey::Error::InvalidCredential => {
                Failure::SignedOut(format!("{what}: the stored session is unusable; run `gatekey login`"))
            }
            gatekey::Error::Status(status) => Failure::from_status(what, &status),
        }
    }

    /// A failure of `what` from a gRPC status.
    pub fn from_status(what: &str, status: &tonic::Status) -> Failure {
        use tonic::Code;
        let said = status.message();
        match status.code() {
            Code::Unauthenticated => Failure::SignedOut(format!(
                "{what}: {said}; your session is not valid (it may have expired): run `gatekey login`"
            )),
            Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Internal | Code::Unimplemented => {
                Failure::Unreachable(format!("{what}: the server did not answer properly ({said})"))
            }
            _ => Failure::Refused(format!("{what}: {said}")),
        }
    }
}

/// The exit codes, for `--help`.
pub const EXIT_CODES: &str = "Exit codes: 0 done; 2 bad usage; 3 not signed in or the session expired (run \
`gatekey login`); 4 the server refused (not granted, revoked, disabled, geo-fenced); 5 the server cannot be reached \
or the URL is wrong; 6 a local problem (no openvpn, not root, files); 7 the VPN connection failed or the gateway \
ended it; 8 no connection is running.";
