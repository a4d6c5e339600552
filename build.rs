//! Compiles `proto/gatekey/v1/*.proto` into Rust and emits the descriptor set used by
//! server reflection. protoc comes from the `protoc-bin-vendored` crate, so a fresh
//! machine needs nothing installed by hand.

use std::path::PathBuf;

/// Messages that carry passwords, tokens or private keys: their `Debug` is written by
/// hand in `src/redacted_debug.rs` so secrets never reach logs.
const SECRET_MESSAGES: &[&str] = &[
    ".gatekey.v1.LocalLoginRequest",
    ".gatekey.v1.LoginResponse",
    ".gatekey.v1.StartOidcLoginResponse",
    ".gatekey.v1.CompleteOidcLoginRequest",
    ".gatekey.v1.StartSamlLoginResponse",
    ".gatekey.v1.AcceptSamlResponseRequest",
    ".gatekey.v1.AcceptSamlResponseResponse",
    ".gatekey.v1.CompleteSamlLoginRequest",
    ".gatekey.v1.CreateApiKeyResponse",
    ".gatekey.v1.CreateGatewayResponse",
    ".gatekey.v1.CreateUserRequest",
    ".gatekey.v1.UpdateUserRequest",
    ".gatekey.v1.DownloadConfigResponse",
    ".gatekey.v1.ProvisionResponse",
    ".gatekey.v1.AuthProvider",
    ".gatekey.v1.CreateMeshHubResponse",
    ".gatekey.v1.CreateMeshSpokeResponse",
    ".gatekey.v1.ProvisionSpokeResponse",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = PathBuf::from("proto");
    let mut protos = Vec::new();
    for entry in std::fs::read_dir(proto_dir.join("gatekey/v1"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "proto") {
            protos.push(path);
        }
    }
    protos.sort();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut prost_config = tonic_prost_build::Config::new();
    prost_config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("gatekey_descriptor.bin"))
        .skip_debug(SECRET_MESSAGES.iter().copied())
        .compile_with_config(prost_config, &protos, &[proto_dir])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
