//! `gatekey-agent spoke`: a remote site joining a mesh hub. It tells the core which
//! local networks it advertises, receives its certificate and an OpenVPN client
//! configuration for the hub, and writes them for OpenVPN to run. Users whose rules
//! allow it then reach those networks through the hub.

use crate::material::write_atomically;
use clap::Args;
use gatekey::v1::ProvisionSpokeRequest;
use gatekey::v1::mesh_spoke_agent_service_client::MeshSpokeAgentServiceClient;
use std::path::PathBuf;
use tonic::metadata::MetadataValue;

/// The file OpenVPN runs at the spoke (it holds the private key: written 0600).
pub const SPOKE_CONFIG: &str = "spoke.ovpn";

/// Flags of `gatekey-agent spoke`.
#[derive(Clone, Args)]
pub struct SpokeArgs {
    /// gRPC URL of the core, e.g. `https://gatekey.example.com:9090`.
    #[arg(long = "core", env = "GATEKEY_CORE_URL")]
    pub core_url: String,
    /// CA certificate (PEM) to trust for an `https://` core; default: the web PKI roots.
    #[arg(long, env = "GATEKEY_CORE_CA")]
    pub core_ca: Option<PathBuf>,
    /// The spoke's token (shown once when the spoke was created).
    #[arg(long, env = "GATEKEY_SPOKE_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Where to write `spoke.ovpn`.
    #[arg(long, env = "GATEKEY_STATE_DIR", default_value = "/var/lib/gatekey-spoke")]
    pub state_dir: PathBuf,
    /// A local network to advertise (repeatable); each must be inside the spoke's
    /// networks as the admin set them. None advertises all of them.
    #[arg(long = "advertise")]
    pub advertise: Vec<String>,
    /// Extra lines appended to `spoke.ovpn` (repeatable), e.g. `disable-dco`.
    #[arg(long = "openvpn-extra")]
    pub openvpn_extra: Vec<String>,
}

impl std::fmt::Debug for SpokeArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpokeArgs")
            .field("core_url", &self.core_url)
            .field("state_dir", &self.state_dir)
            .field("advertise", &self.advertise)
            .finish_non_exhaustive()
    }
}

/// Provisions the spoke and writes `spoke.ovpn`; returns its path.
pub async fn provision_spoke(args: &SpokeArgs) -> Result<PathBuf, String> {
    let ca = match &args.core_ca {
        Some(path) => Some(std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?),
        None => None,
    };
    let channel = gatekey::connect::channel(&args.core_url, ca.as_deref())
        .map_err(|e| format!("core URL `{}`: {e}", args.core_url))?;
    let mut request = tonic::Request::new(ProvisionSpokeRequest { advertised_cidrs: args.advertise.clone() });
    let token = MetadataValue::try_from(args.token.as_str()).map_err(|_| "the spoke token is not valid metadata")?;
    request.metadata_mut().insert("x-spoke-token", token);
    let material = MeshSpokeAgentServiceClient::new(channel)
        .provision_spoke(request)
        .await
        .map_err(|status| format!("provisioning failed: {}", status.message()))?
        .into_inner();
    let mut config = material.openvpn_config;
    for line in &args.openvpn_extra {
        config.push_str(line);
        config.push('\n');
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(&args.state_dir).map_err(|e| format!("cannot create {}: {e}", args.state_dir.display()))?;
    let path = write_atomically(&args.state_dir, SPOKE_CONFIG, &config, true)
        .map_err(|e| format!("cannot write {SPOKE_CONFIG}: {e}"))?;
    let spoke = material.spoke.unwrap_or_default();
    tracing::info!(
        spoke = %spoke.id, hub = %spoke.hub_id, networks = ?spoke.advertised_cidrs,
        expires_at = material.expires_at.map_or(0, |t| t.seconds), path = %path.display(),
        "wrote the spoke's OpenVPN configuration; run it with `openvpn --config` and provision again before it expires"
    );
    Ok(path)
}
