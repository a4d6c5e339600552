//! The system's OpenVPN, driven for one connection: the profile written so that a
//! renewal is a soft restart (the certificate and key live in files OpenVPN reads
//! again on `SIGUSR1`, while `persist-tun` keeps the tunnel and its routes), and the
//! client side of the management interface on a Unix socket.

use crate::failure::Failure;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::mpsc;

/// The program `openvpn` names on `PATH`, or a clear refusal.
pub fn find(program: &Path) -> Result<PathBuf, Failure> {
    let missing = || {
        Failure::Local(format!(
            "`{}` was not found: install OpenVPN 2.6 (Debian and Ubuntu: `sudo apt install openvpn`) or name it with --openvpn",
            program.display()
        ))
    };
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_owned()).ok_or_else(missing);
    }
    let path = std::env::var_os("PATH").ok_or_else(missing)?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| candidate.is_file()).ok_or_else(missing)
}

/// The PEM between `<tag>` and `</tag>` of a profile.
fn inline_block<'a>(profile: &'a str, tag: &str) -> Option<&'a str> {
    let start = profile.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = profile.find(&format!("</{tag}>"))?;
    profile.get(start..end)
}

fn write_private(path: &Path, text: &str) -> Result<(), Failure> {
    let temporary = path.with_extension("new");
    let _ = std::fs::remove_file(&temporary);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .and_then(|mut file| std::io::Write::write_all(&mut file, text.as_bytes()))
        .and_then(|()| std::fs::rename(&temporary, path));
    written.map_err(|e| Failure::Local(format!("cannot write {}: {e}", path.display())))
}

/// Writes the certificate and key of `profile` into `dir`.
pub fn write_credentials(dir: &Path, profile: &str) -> Result<(), Failure> {
    let damaged = || Failure::Refused("the server sent a profile without a certificate and key".into());
    write_private(&dir.join("cert.pem"), inline_block(profile, "cert").ok_or_else(damaged)?.trim())?;
    write_private(&dir.join("key.pem"), inline_block(profile, "key").ok_or_else(damaged)?.trim())
}

/// Writes `profile` into `dir` for OpenVPN: the certificate and key as files, without
/// `persist-key` (so a restart reads them again); answers the config's path.
pub fn write_profile(dir: &Path, profile: &str) -> Result<PathBuf, Failure> {
    write_credentials(dir, profile)?;
    let mut config = String::new();
    let mut skipping = false;
    for line in profile.lines() {
        match line.trim() {
            "<cert>" | "<key>" => skipping = true,
            "</cert>" | "</key>" => skipping = false,
            "persist-key" => {}
            _ if skipping => {}
            _ => {
                config.push_str(line);
                config.push('\n');
            }
        }
    }
    config.push_str(&format!("cert {}\nkey {}\n", dir.join("cert.pem").display(), dir.join("key.pem").display()));
    let path = dir.join("profile.ovpn");
    write_private(&path, &config)?;
    Ok(path)
}

/// Starts OpenVPN on `config`, holding until the management client releases it.
pub fn spawn(
    program: &Path,
    config: &Path,
    management: &Path,
    log: &Path,
    extra: &[String],
) -> Result<tokio::process::Child, Failure> {
    tokio::process::Command::new(program)
        .arg("--config")
        .arg(config)
        .args(["--management"])
        .arg(management)
        .args(["unix", "--management-hold", "--auth-retry", "none"])
        .arg("--log")
        .arg(log)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Failure::Local(format!("cannot start {}: {e}", program.display())))
}

/// What OpenVPN reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// A state change (`CONNECTING`, `WAIT`, `AUTH`, `GET_CONFIG`, `ASSIGN_IP`,
    /// `ADD_ROUTES`, `CONNECTED`, `RECONNECTING`, `EXITING`), its detail and the tunnel
    /// address.
    State { name: String, detail: String, address: String },
    /// A log line.
    Log(String),
    /// Bytes received and sent so far.
    Bytes { received: u64, sent: u64 },
    /// OpenVPN waits for `hold release` (at start, and after each restart).
    Hold,
}

/// Parses one line of the management interface.
pub fn parse(line: &str) -> Option<Report> {
    if let Some(rest) = line.strip_prefix(">STATE:") {
        let fields: Vec<&str> = rest.split(',').collect();
        return Some(Report::State {
            name: fields.get(1).copied().unwrap_or_default().to_owned(),
            detail: fields.get(2).copied().unwrap_or_default().to_owned(),
            address: fields.get(3).copied().unwrap_or_default().to_owned(),
        });
    }
    if let Some(rest) = line.strip_prefix(">BYTECOUNT:") {
        let (received, sent) = rest.split_once(',')?;
        return Some(Report::Bytes { received: received.trim().parse().ok()?, sent: sent.trim().parse().ok()? });
    }
    if line.starts_with(">HOLD:") {
        return Some(Report::Hold);
    }
    if let Some(rest) = line.strip_prefix(">LOG:") {
        // `time,flags,message`
        let message = rest.splitn(3, ',').nth(2).unwrap_or_default();
        return Some(Report::Log(message.to_owned()));
    }
    None
}

/// The routes a `PUSH_REPLY` log line carries, as CIDRs.
pub fn pushed_routes(message: &str) -> Vec<String> {
    let Some(reply) = message.split("PUSH_REPLY,").nth(1) else { return Vec::new() };
    reply
        .trim_end_matches(['\'', ' '])
        .split(',')
        .filter_map(|option| {
            let mut words = option.split_whitespace();
            (words.next() == Some("route")).then(|| (words.next(), words.next()))
        })
        .filter_map(|(network, mask)| {
            let network = network?;
            let mask: std::net::Ipv4Addr = mask.unwrap_or("255.255.255.255").parse().ok()?;
            Some(format!("{network}/{}", u32::from(mask).count_ones()))
        })
        .collect()
}

/// Why the gateway ended or refused the connection, if a log line says so.
pub fn ended_by_gateway(message: &str) -> Option<String> {
    for marker in ["HALT,", "AUTH_FAILED,"] {
        if let Some(reason) = message.split(marker).nth(1) {
            let reason = reason.trim_end_matches(['\'', ' ']).trim();
            let reason = if reason.is_empty() { "no reason given" } else { reason };
            return Some(match marker {
                "AUTH_FAILED," => format!("the gateway refused the connection: {reason}"),
                _ => format!("the gateway ended the connection: {reason}"),
            });
        }
    }
    message.contains("AUTH_FAILED").then(|| "the gateway refused the connection".to_owned())
}

/// The client side of the management interface.
pub struct Management {
    writer: OwnedWriteHalf,
}

impl Management {
    /// Attaches to OpenVPN's socket (waiting up to 10 s for it), turns on state, log and
    /// byte-count reports and releases the hold; answers the reports as they come.
    pub async fn attach(socket: &Path) -> Result<(Management, mpsc::UnboundedReceiver<Report>), Failure> {
        let mut stream = None;
        for _ in 0..100 {
            match UnixStream::connect(socket).await {
                Ok(connected) => {
                    stream = Some(connected);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let stream = stream.ok_or_else(|| {
            Failure::Local("OpenVPN did not open its management socket; see the log in the runtime directory".into())
        })?;
        let (reader, writer) = stream.into_split();
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(reader).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(report) = parse(&line)
                    && sender.send(report).is_err()
                {
                    break;
                }
            }
        });
        let mut management = Management { writer };
        for command in ["state on", "log on", "bytecount 2", "hold release"] {
            management.command(command).await?;
        }
        Ok((management, receiver))
    }

    /// Sends one command.
    pub async fn command(&mut self, command: &str) -> Result<(), Failure> {
        self.writer
            .write_all(format!("{command}\n").as_bytes())
            .await
            .map_err(|e| Failure::Connection(format!("OpenVPN's management interface went away: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE: &str = "client\ndev tun\npersist-key\npersist-tun\n<ca>\nCA\n</ca>\n<cert>\nCERT\n</cert>\n<key>\nKEY\n</key>\n<tls-crypt>\nTLS\n</tls-crypt>\n";

    #[test]
    fn profiles_keep_their_credentials_in_files_read_again_on_restart() {
        let dir = std::env::temp_dir().join(format!("gatekey-cli-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = std::fs::read_to_string(write_profile(&dir, PROFILE).unwrap()).unwrap();
        assert!(!config.contains("persist-key") && config.contains("persist-tun"), "{config}");
        assert!(
            !config.contains("CERT") && !config.contains("KEY\n") && config.contains("<ca>\nCA\n</ca>"),
            "{config}"
        );
        assert!(config.contains(&format!("cert {}", dir.join("cert.pem").display())), "{config}");
        assert_eq!(std::fs::read_to_string(dir.join("key.pem")).unwrap(), "KEY");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(dir.join("key.pem")).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn management_reports_and_push_replies_read_as_they_should() {
        assert_eq!(
            parse(">STATE:1700000000,CONNECTED,SUCCESS,10.8.0.6,192.0.2.1,1194,,"),
            Some(Report::State { name: "CONNECTED".into(), detail: "SUCCESS".into(), address: "10.8.0.6".into() })
        );
        assert_eq!(parse(">BYTECOUNT:1024,2048"), Some(Report::Bytes { received: 1024, sent: 2048 }));
        let log = ">LOG:1700000000,I,PUSH: Received control message: 'PUSH_REPLY,route 10.90.0.0 255.255.0.0,route-gateway 10.8.0.1,route 10.91.1.5'";
        let Some(Report::Log(message)) = parse(log) else { panic!("not a log line") };
        assert_eq!(pushed_routes(&message), ["10.90.0.0/16", "10.91.1.5/32"]);
        assert_eq!(
            ended_by_gateway("Received control message: 'HALT,the certificate was revoked'").as_deref(),
            Some("the gateway ended the connection: the certificate was revoked")
        );
        assert!(
            ended_by_gateway("AUTH: Received control message: AUTH_FAILED,not granted").unwrap().contains("refused")
        );
        assert_eq!(ended_by_gateway("Initialization Sequence Completed"), None);
    }
}
