//! GateKey contract and SDK: the gRPC types and clients generated from
//! `proto/gatekey/v1`, the typed [`Client`], and the file descriptor set that powers
//! server reflection.

/// Generated types and service stubs of package `gatekey.v1`.
#[allow(missing_docs, clippy::all)]
pub mod v1 {
    tonic::include_proto!("gatekey.v1");
}

/// The encoded `FileDescriptorSet` of every GateKey proto, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("gatekey_descriptor");

mod browser_login;
mod client;
pub mod connect;
mod error_code;
mod redacted_debug;
#[cfg(feature = "telemetry")]
pub mod telemetry;

pub use browser_login::BrowserLogin;
pub use client::{Client, Error};
pub use error_code::{ERROR_CODE_METADATA, ErrorCode, RETRY_AFTER_METADATA};
