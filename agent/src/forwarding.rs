//! IP forwarding on a gateway or hub host: without it the kernel drops every packet a
//! client sends through the tunnel to a protected network (or to a hub's spokes), and
//! nothing says so. The agent checks it at start and turns it on, or refuses to start
//! with a message that says how to, as `--forwarding` chooses.

use crate::error::AgentError;
use std::path::Path;

/// The kernel's IPv4 forwarding switch (per network namespace).
pub const IPV4_FORWARDING: &str = "/proc/sys/net/ipv4/ip_forward";

/// What the agent does about forwarding at start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardingPolicy {
    /// Turn it on if it is off (the default).
    #[default]
    Enable,
    /// Refuse to start if it is off (the host's configuration owns it).
    Check,
}

/// Makes sure the switch at `switch` (normally [`IPV4_FORWARDING`]) is on, per `policy`.
pub fn ensure_forwarding(policy: ForwardingPolicy, switch: &Path) -> Result<(), AgentError> {
    let state = std::fs::read_to_string(switch)
        .map_err(|e| AgentError::Setup(format!("cannot read {}: {e}", switch.display())))?;
    if state.trim() == "1" {
        return Ok(());
    }
    match policy {
        ForwardingPolicy::Check => Err(AgentError::Setup(format!(
            "IP forwarding is off ({} = {}): clients' traffic would be dropped; turn it on \
             (sysctl -w net.ipv4.ip_forward=1, and in /etc/sysctl.d to keep it) or run with --forwarding enable",
            switch.display(),
            state.trim()
        ))),
        ForwardingPolicy::Enable => {
            std::fs::write(switch, "1\n").map_err(|e| {
                AgentError::Setup(format!("IP forwarding is off and cannot be turned on ({}): {e}", switch.display()))
            })?;
            tracing::info!(switch = %switch.display(), "turned IP forwarding on");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding_is_turned_on_or_refused_as_asked() {
        let switch = std::env::temp_dir().join(format!("gatekey-forwarding-{}", std::process::id()));
        std::fs::write(&switch, "0\n").unwrap();
        let refused = ensure_forwarding(ForwardingPolicy::Check, &switch).unwrap_err();
        assert!(refused.to_string().contains("--forwarding enable"), "{refused}");
        assert_eq!(std::fs::read_to_string(&switch).unwrap(), "0\n", "check changes nothing");
        ensure_forwarding(ForwardingPolicy::Enable, &switch).unwrap();
        assert_eq!(std::fs::read_to_string(&switch).unwrap(), "1\n");
        ensure_forwarding(ForwardingPolicy::Check, &switch).unwrap();
        std::fs::remove_file(&switch).unwrap();
    }
}
