//! `gatekey-agent hook …`: OpenVPN script hooks for setups without the management
//! interface. Each call asks the core directly (unary methods) and answers OpenVPN
//! with its exit status: 0 allows, 1 refuses. These setups get verification, pushed
//! routes and session reports; per-identity nftables enforcement, rule pushes and
//! kills need `gatekey-agent run` with the management interface. A mesh hub in hook
//! mode gets each spoke's `iroute`, but the kernel routes of the spokes' networks
//! (which `run` adds and removes as spokes come and go) are left to the operator.

use crate::config::AgentSettings;
use crate::link::with_token;
use crate::material::client_config_lines;
use gatekey::v1::gateway_agent_service_client::GatewayAgentServiceClient;
use gatekey::v1::{ClientConnected, ClientDisconnected, VerifyRequest};
use std::collections::HashMap;
use std::path::Path;

/// Which OpenVPN script is calling.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum HookKind {
    /// `tls-verify`: OpenVPN passes the certificate depth and subject.
    TlsVerify {
        /// Certificate depth; only the client's own certificate (0) is checked with the core.
        depth: u32,
        /// The subject, as OpenVPN prints it.
        subject: Option<String>,
    },
    /// `client-connect`: OpenVPN passes a file for pushed options.
    ClientConnect {
        /// The file OpenVPN reads pushed options from.
        options_file: Option<String>,
    },
    /// `client-disconnect`.
    ClientDisconnect,
}

/// The canonical form of OpenVPN's `tls_serial_hex_0` (colon hex).
fn serial_from(env: &HashMap<String, String>, depth: u32) -> Option<String> {
    let hex: String = env.get(&format!("tls_serial_hex_{depth}"))?.chars().filter(|c| *c != ':').collect();
    let trimmed = hex.trim_start_matches('0').to_ascii_lowercase();
    Some(if trimmed.is_empty() { "0".into() } else { trimmed })
}

/// The session key both connect and disconnect hooks can compute.
fn session_key(env: &HashMap<String, String>, serial: &str) -> String {
    format!("hook-{serial}-{}", env.get("time_unix").map_or("0", String::as_str))
}

/// How long one core node may take to answer a hook.
const HOOK_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs one hook with OpenVPN's environment; returns whether OpenVPN should go on.
/// A core node that cannot be reached is passed over for the next one.
pub async fn run_hook(settings: &AgentSettings, kind: HookKind, env: HashMap<String, String>) -> Result<bool, String> {
    let mut nodes = settings.core_nodes()?;
    let mut unreachable = Vec::new();
    for _ in 0..nodes.count() {
        // A node that accepts connections but does not answer must not hold OpenVPN up.
        let answer = tokio::time::timeout(HOOK_DEADLINE, hook_at(nodes.client(), settings, kind.clone(), &env))
            .await
            .unwrap_or_else(|_| Err(tonic::Status::unavailable("no answer in time")));
        match answer {
            Err(status) if status.code() == tonic::Code::Unavailable => {
                unreachable.push(format!("{}: {}", nodes.url(), status.message()));
                nodes.move_on();
            }
            Err(status) => return Err(status.to_string()),
            Ok(go_on) => return Ok(go_on),
        }
    }
    Err(format!("no core node answered ({})", unreachable.join("; ")))
}

/// Runs one hook against one core node.
async fn hook_at(
    client: &mut GatewayAgentServiceClient<tonic::transport::Channel>,
    settings: &AgentSettings,
    kind: HookKind,
    env: &HashMap<String, String>,
) -> Result<bool, tonic::Status> {
    let local = |message: String| tonic::Status::failed_precondition(message);
    let value = |name: &str| env.get(name).cloned().unwrap_or_default();
    match kind {
        HookKind::TlsVerify { depth, .. } if depth > 0 => Ok(true),
        HookKind::TlsVerify { .. } | HookKind::ClientConnect { .. } => {
            let serial = serial_from(env, 0).ok_or_else(|| local("OpenVPN passed no tls_serial_hex_0".into()))?;
            let common_name = env.get("common_name").or_else(|| env.get("X509_0_CN")).cloned().unwrap_or_default();
            let request = VerifyRequest {
                common_name: common_name.clone(),
                serial: serial.clone(),
                client_address: value("untrusted_ip"),
            };
            let verdict = client.verify(with_token(request, &settings.token)).await?.into_inner();
            if !verdict.allowed {
                eprintln!("gatekey: access denied: {}", verdict.reason);
                return Ok(false);
            }
            if let HookKind::ClientConnect { options_file } = kind {
                if let Some(file) = options_file {
                    let mut lines = client_config_lines(&verdict.push_routes, &verdict.iroutes).join("\n");
                    lines.push('\n');
                    std::fs::write(Path::new(&file), lines).map_err(|e| local(format!("cannot write {file}: {e}")))?;
                }
                let report = ClientConnected {
                    session_key: session_key(env, &serial),
                    common_name,
                    serial,
                    vpn_address: value("ifconfig_pool_remote_ip"),
                    client_address: value("untrusted_ip"),
                    connected_at: value("time_unix")
                        .parse()
                        .ok()
                        .map(|seconds| prost_types::Timestamp { seconds, nanos: 0 }),
                };
                client.report_connect(with_token(report, &settings.token)).await?;
            }
            Ok(true)
        }
        HookKind::ClientDisconnect => {
            let serial = serial_from(env, 0).unwrap_or_default();
            let report = ClientDisconnected {
                session_key: session_key(env, &serial),
                common_name: value("common_name"),
                serial,
                duration_seconds: value("time_duration").parse().unwrap_or(0),
                bytes_received: value("bytes_received").parse().unwrap_or(0),
                bytes_sent: value("bytes_sent").parse().unwrap_or(0),
                disconnected_at: None,
            };
            // OpenVPN also calls this for clients client-connect refused: nothing to record then.
            match client.report_disconnect(with_token(report, &settings.token)).await {
                Ok(_) => Ok(true),
                Err(status) if status.code() == tonic::Code::InvalidArgument => Ok(true),
                Err(status) => Err(status),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_and_session_keys_come_from_openvpn_env() {
        let env: HashMap<String, String> = [("tls_serial_hex_0", "0a:BC:0d"), ("time_unix", "1700000000")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
        assert_eq!(serial_from(&env, 0).as_deref(), Some("abc0d"));
        assert_eq!(serial_from(&env, 1), None);
        assert_eq!(session_key(&env, "abc0d"), "hook-abc0d-1700000000");
    }
}
