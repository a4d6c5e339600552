//! `gatekey-agent spoke`: a remote site joining a mesh hub. It tells the core which
//! local networks it advertises, receives its certificate and an OpenVPN client
//! configuration for the hub, writes them, and runs OpenVPN with them, renewing the
//! certificate at two thirds of its life (and restarting OpenVPN when it exits, after
//! asking the core whether the spoke still exists: a deleted spoke's agent says so and
//! exits with the refusal code instead of retrying a revoked profile forever). Users
//! whose rules allow it then reach those networks through the hub.

use crate::error::AgentError;
use crate::gateway::shutdown_signal;
use crate::link::Backoff;
use crate::material::write_atomically;
use crate::openvpn::{OpenVpn, stop_orphan};
use clap::Args;
use gatekey::v1::mesh_spoke_agent_service_client::MeshSpokeAgentServiceClient;
use gatekey::v1::{DescribeSpokeRequest, ProvisionSpokeRequest};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;
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
    /// Provision, write `spoke.ovpn` and exit, leaving OpenVPN and renewals to you.
    #[arg(long)]
    pub once: bool,
    /// The OpenVPN program to run.
    #[arg(long, env = "GATEKEY_OPENVPN", default_value = "openvpn")]
    pub openvpn: PathBuf,
}

/// What one provisioning produced.
#[derive(Debug, Clone)]
pub struct Provisioned {
    /// The written configuration.
    pub path: PathBuf,
    /// When it was written.
    pub at: Instant,
    /// When it is due for renewal: two thirds into the certificate's life as the core
    /// states it (so the spoke's own clock does not matter), and not within 30 s.
    pub renew_at: Instant,
}

/// The shortest wait before a renewal (a tiny lifetime must not make a busy loop).
const MIN_RENEWAL_WAIT: Duration = Duration::from_secs(30);
/// After OpenVPN exits, provision anew before restarting it (its certificate may have
/// been superseded or the hub moved), at most this often.
const REPROVISION_ON_EXIT_EVERY: Duration = Duration::from_secs(300);

impl std::fmt::Debug for SpokeArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpokeArgs")
            .field("core_url", &self.core_url)
            .field("state_dir", &self.state_dir)
            .field("advertise", &self.advertise)
            .finish_non_exhaustive()
    }
}

/// A client of the core's spoke service, and a request carrying the spoke's token.
fn spoke_service<T>(
    args: &SpokeArgs,
    message: T,
) -> Result<(MeshSpokeAgentServiceClient<tonic::transport::Channel>, tonic::Request<T>), AgentError> {
    let ca = match &args.core_ca {
        Some(path) => Some(std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?),
        None => None,
    };
    let channel = gatekey::connect::channel(&args.core_url, ca.as_deref())
        .map_err(|e| format!("core URL `{}`: {e}", args.core_url))?;
    let mut request = tonic::Request::new(message);
    let token = MetadataValue::try_from(args.token.as_str())
        .map_err(|_| AgentError::Setup("the spoke token is not valid metadata".into()))?;
    request.metadata_mut().insert("x-spoke-token", token);
    Ok((MeshSpokeAgentServiceClient::new(channel), request))
}

/// Asks the core whether the spoke still exists (a refusal if it was deleted or its
/// token rotated).
pub async fn describe_spoke(args: &SpokeArgs) -> Result<(), AgentError> {
    let (mut client, request) = spoke_service(args, DescribeSpokeRequest {})?;
    let spoke = client
        .describe_spoke(request)
        .await
        .map_err(|status| AgentError::from_status("asking for the spoke", &status))?
        .into_inner();
    tracing::debug!(spoke = %spoke.id, "the spoke still exists");
    Ok(())
}

/// Provisions the spoke and writes `spoke.ovpn`.
pub async fn provision_spoke(args: &SpokeArgs) -> Result<Provisioned, AgentError> {
    let (mut client, request) =
        spoke_service(args, ProvisionSpokeRequest { advertised_cidrs: args.advertise.clone() })?;
    let material = client
        .provision_spoke(request)
        .await
        .map_err(|status| AgentError::from_status("provisioning", &status))?
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
    let expires_at = material.expires_at.map_or(0, |t| t.seconds);
    tracing::info!(
        spoke = %spoke.id, hub = %spoke.hub_id, networks = ?spoke.advertised_cidrs, expires_at,
        path = %path.display(), "wrote the spoke's OpenVPN configuration"
    );
    let now = Instant::now();
    let renew_in = Duration::from_secs(material.lifetime_seconds / 3 * 2).max(MIN_RENEWAL_WAIT);
    Ok(Provisioned { path, at: now, renew_at: now + renew_in })
}

/// Starts OpenVPN with the spoke's configuration; it exits on a failed TLS handshake
/// (a revoked or superseded certificate) so that the agent can act.
fn start_openvpn(args: &SpokeArgs, config: &Path) -> Result<OpenVpn, AgentError> {
    OpenVpn::start(&args.openvpn, config, &args.state_dir, &["--tls-exit"])
}

/// Keeps the spoke joined until SIGINT/SIGTERM: provisions (retrying with backoff
/// while the core is unreachable), runs OpenVPN, renews the certificate at two thirds
/// of its life and restarts OpenVPN with it, and restarts OpenVPN when it exits once
/// the core confirms the spoke still exists. A refusal by the core ends it.
pub async fn run_spoke(args: &SpokeArgs) -> Result<(), AgentError> {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
    let mut provisioned = loop {
        match provision_spoke(args).await {
            Ok(provisioned) => break provisioned,
            Err(error) if !error.is_transient() => return Err(error),
            Err(error) => {
                let wait = backoff.next_delay();
                tracing::warn!(%error, retry_in_ms = wait.as_millis() as u64, "cannot provision yet");
                tokio::time::sleep(wait).await;
            }
        }
    };
    backoff.reset();
    stop_orphan(&args.state_dir).await;
    let mut openvpn = start_openvpn(args, &provisioned.path)?;
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => {
                openvpn.stop().await;
                return Ok(());
            }
            status = openvpn.exited() => {
                let wait = backoff.next_delay();
                tracing::warn!(?status, restart_in_ms = wait.as_millis() as u64, "OpenVPN exited");
                tokio::time::sleep(wait).await;
                let reprovision = provisioned.at.elapsed() >= REPROVISION_ON_EXIT_EVERY;
                let asked = if reprovision { provision_spoke(args).await.map(Some) } else { describe_spoke(args).await.map(|()| None) };
                match asked {
                    Ok(Some(renewed)) => provisioned = renewed,
                    Ok(None) => {}
                    Err(error) if !error.is_transient() => return Err(error),
                    Err(error) => tracing::warn!(%error, "cannot reach the core; restarting OpenVPN as it was"),
                }
                openvpn = start_openvpn(args, &provisioned.path)?;
            }
            () = tokio::time::sleep_until(provisioned.renew_at) => match provision_spoke(args).await {
                Ok(renewed) => {
                    tracing::info!("renewed the spoke's certificate; restarting OpenVPN with it");
                    provisioned = renewed;
                    openvpn.stop().await;
                    openvpn = start_openvpn(args, &provisioned.path)?;
                    backoff.reset();
                }
                Err(error) if !error.is_transient() => {
                    openvpn.stop().await;
                    return Err(error);
                }
                Err(error) => {
                    let wait = backoff.next_delay();
                    tracing::warn!(%error, retry_in_ms = wait.as_millis() as u64, "cannot renew yet");
                    provisioned.renew_at = Instant::now() + wait;
                }
            },
        }
    }
}
