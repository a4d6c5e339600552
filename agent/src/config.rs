//! Agent settings: command-line flags and environment variables, over an optional
//! TOML file whose keys are the flags' names (`core_url = "…"`).

use crate::forwarding::ForwardingPolicy;
use clap::Args;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Flags of `gatekey-agent run` and `gatekey-agent provision`.
#[derive(Default, Clone, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentArgs {
    /// gRPC URL of the core, e.g. `https://gatekey.example.com:9090`; several core
    /// nodes comma-separated (the agent starts at a random one and moves on when its
    /// node is lost).
    #[arg(long = "core", env = "GATEKEY_CORE_URL")]
    pub core_url: Option<String>,
    /// CA certificate (PEM) to trust for an `https://` core; default: the web PKI roots.
    #[arg(long, env = "GATEKEY_CORE_CA")]
    pub core_ca: Option<PathBuf>,
    /// The gateway's agent token (shown once when the gateway was created).
    #[arg(long, env = "GATEKEY_GATEWAY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Where the agent writes the OpenVPN material and `openvpn.conf`.
    #[arg(long, env = "GATEKEY_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// OpenVPN's management interface: a Unix socket path (default
    /// `<state-dir>/management.sock`) or a `host:port`.
    #[arg(long, env = "GATEKEY_MANAGEMENT")]
    pub management: Option<String>,
    /// The OpenVPN tunnel interface.
    #[arg(long, env = "GATEKEY_TUN")]
    pub tun: Option<String>,
    /// Extra lines appended to the generated `openvpn.conf` (repeatable).
    #[arg(long = "openvpn-extra")]
    #[serde(default)]
    pub openvpn_extra: Vec<String>,
    /// Write an `openvpn.conf` that calls `gatekey-agent hook …` scripts instead of
    /// using the management interface (for `provision`; `run` needs the interface).
    #[arg(long, env = "GATEKEY_HOOKS")]
    #[serde(default)]
    pub hooks: bool,
    /// Do not touch nftables (for hosts where something else enforces rules).
    #[arg(long, env = "GATEKEY_NO_FIREWALL")]
    #[serde(default)]
    pub no_firewall: bool,
    /// At start, turn IP forwarding on (`enable`, the default) or refuse to start while
    /// it is off (`check`).
    #[arg(long, env = "GATEKEY_FORWARDING", value_enum)]
    pub forwarding: Option<ForwardingPolicy>,
    /// Masquerade clients' traffic leaving the tunnel behind the host's own address,
    /// for protected networks that have no route back to the VPN pool.
    #[arg(long, env = "GATEKEY_NAT")]
    #[serde(default)]
    pub nat: bool,
    /// Run the OpenVPN server as the agent's child (restarted if it exits, stopped with
    /// the agent), instead of beside it.
    #[arg(long, env = "GATEKEY_RUN_OPENVPN")]
    #[serde(default)]
    pub run_openvpn: bool,
    /// The OpenVPN program `--run-openvpn` starts.
    #[arg(long, env = "GATEKEY_OPENVPN")]
    pub openvpn: Option<PathBuf>,
    /// Seconds between checks that the nftables table is still as applied (it is
    /// reinstalled and reapplied if someone flushed or deleted it).
    #[arg(long, env = "GATEKEY_FIREWALL_CHECK_SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub firewall_check_seconds: Option<u64>,
}

impl std::fmt::Debug for AgentArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentArgs")
            .field("core_url", &self.core_url)
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

/// Resolved settings.
#[derive(Clone)]
pub struct AgentSettings {
    /// The core nodes' gRPC URLs (at least one).
    pub core_urls: Vec<String>,
    /// CA certificate file for an `https://` core.
    pub core_ca: Option<PathBuf>,
    /// Gateway token.
    pub token: String,
    /// State directory.
    pub state_dir: PathBuf,
    /// Management interface address.
    pub management: String,
    /// Tunnel interface.
    pub tun: String,
    /// Extra `openvpn.conf` lines.
    pub openvpn_extra: Vec<String>,
    /// Whether nftables enforcement is on.
    pub firewall: bool,
    /// Whether OpenVPN calls script hooks instead of using the management interface.
    pub hooks: bool,
    /// What to do about IP forwarding at start.
    pub forwarding: ForwardingPolicy,
    /// Whether clients' traffic leaving the tunnel is masqueraded.
    pub nat: bool,
    /// The OpenVPN program the agent runs, if it supervises OpenVPN.
    pub run_openvpn: Option<PathBuf>,
    /// Between checks of the nftables table.
    pub firewall_check_every: std::time::Duration,
}

impl std::fmt::Debug for AgentSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentSettings")
            .field("core_urls", &self.core_urls)
            .field("state_dir", &self.state_dir)
            .field("management", &self.management)
            .field("tun", &self.tun)
            .field("firewall", &self.firewall)
            .finish_non_exhaustive()
    }
}

impl AgentSettings {
    /// A lazily connecting channel to each core node (TLS for `https://` URLs).
    pub fn channels(&self) -> Result<Vec<(String, tonic::transport::Channel)>, String> {
        let ca = match &self.core_ca {
            Some(path) => {
                Some(std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?)
            }
            None => None,
        };
        self.core_urls
            .iter()
            .map(|url| {
                let channel =
                    gatekey::connect::channel(url, ca.as_deref()).map_err(|e| format!("core URL `{url}`: {e}"))?;
                Ok((url.clone(), channel))
            })
            .collect()
    }

    /// The core nodes, as the agent uses them.
    pub fn core_nodes(&self) -> Result<crate::link::CoreNodes, String> {
        crate::link::CoreNodes::new(self.channels()?)
    }

    /// Flags over the file over defaults; the core URL and token are required.
    pub fn resolve(flags: AgentArgs, file: Option<&Path>) -> Result<AgentSettings, String> {
        let from_file: AgentArgs = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => AgentArgs::default(),
        };
        let openvpn_extra = if flags.openvpn_extra.is_empty() { from_file.openvpn_extra } else { flags.openvpn_extra };
        let state_dir =
            flags.state_dir.or(from_file.state_dir).unwrap_or_else(|| PathBuf::from("/var/lib/gatekey-agent"));
        Ok(AgentSettings {
            core_urls: split_urls(
                &flags
                    .core_url
                    .or(from_file.core_url)
                    .ok_or("the core URL is required (--core or GATEKEY_CORE_URL)")?,
            )?,
            core_ca: flags.core_ca.or(from_file.core_ca),
            token: flags
                .token
                .or(from_file.token)
                .ok_or("the gateway token is required (--token or GATEKEY_GATEWAY_TOKEN)")?,
            state_dir: state_dir.clone(),
            management: flags
                .management
                .or(from_file.management)
                .unwrap_or_else(|| state_dir.join("management.sock").to_string_lossy().into_owned()),
            tun: flags.tun.or(from_file.tun).unwrap_or_else(|| "tun0".into()),
            openvpn_extra,
            firewall: !(flags.no_firewall || from_file.no_firewall),
            hooks: flags.hooks || from_file.hooks,
            forwarding: flags.forwarding.or(from_file.forwarding).unwrap_or_default(),
            nat: flags.nat || from_file.nat,
            run_openvpn: (flags.run_openvpn || from_file.run_openvpn)
                .then(|| flags.openvpn.or(from_file.openvpn).unwrap_or_else(|| PathBuf::from("openvpn"))),
            firewall_check_every: std::time::Duration::from_secs(
                flags.firewall_check_seconds.or(from_file.firewall_check_seconds).unwrap_or(10),
            ),
        })
    }
}

/// The URLs of a comma-separated list; an empty entry is refused.
fn split_urls(list: &str) -> Result<Vec<String>, String> {
    list.split(',')
        .map(|url| {
            let url = url.trim();
            if url.is_empty() { Err(format!("an empty core URL in `{list}`")) } else { Ok(url.to_owned()) }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_and_secrets_stay_out_of_debug() {
        let path = std::env::temp_dir().join(format!("gatekey-agent-config-{}.toml", std::process::id()));
        std::fs::write(&path, "core_url = \"http://file:9090\"\ntoken = \"gkgw_from_file\"\ntun = \"tun7\"\n").unwrap();
        let flags = AgentArgs { core_url: Some("http://flag:9090".into()), ..Default::default() };
        let settings = AgentSettings::resolve(flags, Some(&path)).unwrap();
        assert_eq!(settings.core_urls, ["http://flag:9090"]);
        assert_eq!(settings.token, "gkgw_from_file");
        assert_eq!(settings.tun, "tun7");
        assert!(settings.management.ends_with("/var/lib/gatekey-agent/management.sock"), "{}", settings.management);
        assert!(!format!("{settings:?}").contains("gkgw_from_file"));
        std::fs::write(&path, "colour = 1\n").unwrap();
        assert!(AgentSettings::resolve(AgentArgs::default(), Some(&path)).is_err());
        std::fs::remove_file(&path).unwrap();
        assert!(AgentSettings::resolve(AgentArgs::default(), None).is_err(), "URL and token are required");
        let several = AgentArgs {
            core_url: Some("http://a:9090, http://b:9090,http://c:9090".into()),
            token: Some("gkgw_x".into()),
            ..Default::default()
        };
        let settings = AgentSettings::resolve(several, None).unwrap();
        assert_eq!(settings.core_urls, ["http://a:9090", "http://b:9090", "http://c:9090"]);
        let gap = AgentArgs { core_url: Some("http://a:9090,,http://b:9090".into()), ..Default::default() };
        assert!(AgentSettings::resolve(AgentArgs { token: Some("gkgw_x".into()), ..gap }, None).is_err());
    }
}
