//! How `gatekey status` and `gatekey disconnect` reach the running connection: a Unix
//! socket in the user's runtime directory (`/run/gatekey/<uid>/`, or
//! `GATEKEY_RUNTIME_DIR`; 0700, the user's own), one line asked (`status` or
//! `disconnect`), one JSON line answered.

use crate::failure::Failure;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// The runtime directory of the user `uid`: `/run/gatekey/<uid>`, or
/// `GATEKEY_RUNTIME_DIR` when the client is not run through `sudo` (root makes that
/// directory the user's own, so under sudo a user must not choose it).
pub fn runtime_dir(uid: u32) -> PathBuf {
    chosen_runtime_dir(uid, std::env::var_os("GATEKEY_RUNTIME_DIR"), std::env::var_os("SUDO_UID").is_some())
}

/// [`runtime_dir`] from the override asked for and whether `sudo` runs the client.
fn chosen_runtime_dir(uid: u32, asked: Option<std::ffi::OsString>, under_sudo: bool) -> PathBuf {
    match asked {
        Some(dir) if !dir.is_empty() && !under_sudo => PathBuf::from(dir),
        _ => PathBuf::from(format!("/run/gatekey/{uid}")),
    }
}

/// The control socket of the user `uid`.
pub fn socket(uid: u32) -> PathBuf {
    runtime_dir(uid).join("control.sock")
}

/// What a running connection says of itself.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Status {
    /// The gateway's name.
    pub gateway: String,
    /// Its address, `host:port`.
    pub endpoint: String,
    /// `connecting`, `connected`, `renewing`, `reconnecting` or `disconnecting`.
    pub state: String,
    /// When the tunnel first came up (RFC 3339).
    pub connected_since: String,
    /// The address inside the tunnel.
    pub tunnel_address: String,
    /// The routes the gateway pushed.
    pub routes: Vec<String>,
    /// Bytes received.
    pub bytes_received: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// When the certificate in use expires (RFC 3339).
    pub certificate_expires: String,
    /// The serial of the certificate in use (what an administrator revokes).
    pub certificate_serial: String,
    /// How many times the certificate was renewed.
    pub renewals: u32,
    /// How long traffic paused at the last renewal, in milliseconds.
    pub last_renewal_gap_ms: Option<u64>,
    /// The client's process id.
    pub pid: u32,
}

impl Status {
    /// The status for people.
    pub fn describe(&self) -> String {
        let mut text = format!("{} to {} ({})", capitalised(&self.state), self.gateway, self.endpoint);
        if !self.tunnel_address.is_empty() {
            text.push_str(&format!("\n  tunnel address  {}", self.tunnel_address));
        }
        if !self.connected_since.is_empty() {
            text.push_str(&format!("\n  since           {}", self.connected_since));
        }
        if !self.routes.is_empty() {
            text.push_str(&format!("\n  routes          {}", self.routes.join(", ")));
        }
        text.push_str(&format!(
            "\n  traffic         {} received, {} sent\n  certificate     {}, expires {}",
            bytes(self.bytes_received),
            bytes(self.bytes_sent),
            self.certificate_serial,
            self.certificate_expires
        ));
        if self.renewals > 0 {
            let gap =
                self.last_renewal_gap_ms.map(|ms| format!(", the last paused traffic {:.2} s", ms as f64 / 1000.0));
            text.push_str(&format!(" (renewed {} times{})", self.renewals, gap.unwrap_or_default()));
        }
        text
    }
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// A byte count in binary units.
pub fn bytes(count: u64) -> String {
    match count {
        0..1024 => format!("{count} B"),
        1024..1_048_576 => format!("{:.1} KiB", count as f64 / 1024.0),
        1_048_576..1_073_741_824 => format!("{:.1} MiB", count as f64 / 1_048_576.0),
        _ => format!("{:.1} GiB", count as f64 / 1_073_741_824.0),
    }
}

/// Asks the running connection of user `uid`; answers its one-line reply.
pub async fn ask(uid: u32, question: &str) -> Result<String, Failure> {
    let not_running =
        || Failure::NotConnected("no GateKey connection is running; start one with `gatekey connect`".into());
    let mut stream = UnixStream::connect(socket(uid)).await.map_err(|_| not_running())?;
    stream.write_all(format!("{question}\n").as_bytes()).await.map_err(|_| not_running())?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).await.map_err(|_| not_running())?;
    if reply.is_empty() {
        return Err(not_running());
    }
    Ok(reply)
}

/// The running connection's status.
pub async fn status(uid: u32) -> Result<Status, Failure> {
    let reply = ask(uid, "status").await?;
    serde_json::from_str(&reply).map_err(|e| Failure::Local(format!("the running client answered nonsense: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_sudo_the_runtime_directory_cannot_be_chosen() {
        let asked = Some(std::ffi::OsString::from("/etc/sudoers.d"));
        assert_eq!(chosen_runtime_dir(1000, asked.clone(), true), PathBuf::from("/run/gatekey/1000"));
        assert_eq!(chosen_runtime_dir(0, asked, false), PathBuf::from("/etc/sudoers.d"));
        assert_eq!(chosen_runtime_dir(1000, None, false), PathBuf::from("/run/gatekey/1000"));
        assert_eq!(chosen_runtime_dir(1000, Some("".into()), false), PathBuf::from("/run/gatekey/1000"));
    }
}
