//! OpenVPN as the agent's child: started with a configuration the agent wrote, its
//! process id kept in the state directory (so a restarted agent stops an orphan a
//! crashed predecessor left running), stopped with SIGTERM (SIGKILL after three
//! seconds), and killed if the agent drops it. Gateways and hubs can have the agent
//! supervise their OpenVPN server (`run --run-openvpn`); spokes always do.

use crate::error::AgentError;
use crate::link::Backoff;
use crate::nft::{CommandRunner, SystemRunner};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::sync::watch;

/// Where OpenVPN writes its process id, in the state directory.
const PID_FILE: &str = "openvpn.pid";

/// A running OpenVPN.
#[derive(Debug)]
pub struct OpenVpn {
    child: Child,
}

impl OpenVpn {
    /// Starts `program --config config` with `extra_args`, writing its pid to `state_dir`.
    pub fn start(program: &Path, config: &Path, state_dir: &Path, extra_args: &[&str]) -> Result<OpenVpn, AgentError> {
        let child = Command::new(program)
            .arg("--config")
            .arg(config)
            .args(extra_args)
            .arg("--writepid")
            .arg(state_dir.join(PID_FILE))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| AgentError::Setup(format!("cannot start {}: {e}", program.display())))?;
        Ok(OpenVpn { child })
    }

    /// Resolves when OpenVPN exits, with its status.
    pub async fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.wait().await.ok()
    }

    /// Stops OpenVPN: SIGTERM, then SIGKILL if it has not exited within three seconds.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = SystemRunner.run("kill", &["-TERM", &pid.to_string()], None).await;
            if tokio::time::timeout(Duration::from_secs(3), self.child.wait()).await.is_ok() {
                return;
            }
        }
        let _ = self.child.kill().await;
    }
}

/// Stops an OpenVPN a previous agent started and left behind (its pid file names a
/// live `openvpn` process), so the host does not end up running two.
pub async fn stop_orphan(state_dir: &Path) {
    let Ok(pid) = std::fs::read_to_string(state_dir.join(PID_FILE)) else { return };
    let pid = pid.trim();
    let is_openvpn = pid.chars().all(|c| c.is_ascii_digit())
        && std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm.trim() == "openvpn");
    if is_openvpn {
        tracing::warn!(pid, "stopping the OpenVPN a previous agent left running");
        let _ = SystemRunner.run("kill", &["-TERM", pid], None).await;
    }
}

/// Keeps a gateway's or hub's OpenVPN server running on `config` until `stop` turns
/// true: it is restarted with backoff whenever it exits, and stopped at the end.
pub async fn supervise(program: PathBuf, config: PathBuf, state_dir: PathBuf, mut stop: watch::Receiver<bool>) {
    stop_orphan(&state_dir).await;
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        let mut openvpn = match OpenVpn::start(&program, &config, &state_dir, &[]) {
            Ok(openvpn) => openvpn,
            Err(error) => {
                tracing::error!(%error, "cannot start OpenVPN");
                tokio::select! {
                    () = tokio::time::sleep(backoff.next_delay()) => continue,
                    _ = stop.wait_for(|stop| *stop) => return,
                }
            }
        };
        tracing::info!(config = %config.display(), "started OpenVPN");
        let exited = tokio::select! {
            status = openvpn.exited() => Some(status),
            _ = stop.wait_for(|stop| *stop) => None,
        };
        let Some(status) = exited else {
            openvpn.stop().await;
            tracing::info!("stopped OpenVPN");
            return;
        };
        let wait = backoff.next_delay();
        tracing::warn!(?status, restart_in_ms = wait.as_millis() as u64, "OpenVPN exited; restarting it");
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}
