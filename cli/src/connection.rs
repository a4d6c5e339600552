//! `gatekey connect`: one VPN connection, supervised. It generates a profile, keeps the
//! key material in the user's 0700 runtime directory (removed at exit), runs the
//! system's OpenVPN with a management socket, says in words what happens, renews the
//! certificate at 80% of its life with a soft restart (the tunnel and its routes stay;
//! the pause in traffic is measured and reported), answers `gatekey status` and
//! `gatekey disconnect` on its control socket, and stops cleanly on Ctrl-C or SIGTERM.
//! When the gateway or the core refuses it for good (revoked, disabled, geo-fenced, not
//! granted), it says why and exits non-zero instead of retrying forever.

use crate::control::{self, Status};
use crate::credentials::{Owner, effective_uid};
use crate::failure::Failure;
use crate::listing::{self, Profile, rfc3339};
use crate::openvpn::{self, Management, Report};
use gatekey::Client;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

/// How `connect` runs.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// The gateway's name, a unique prefix of it, or none for the only one.
    pub gateway: Option<String>,
    /// The OpenVPN program.
    pub openvpn: PathBuf,
    /// Extra OpenVPN options.
    pub openvpn_options: Vec<String>,
    /// When to renew, as a share of the certificate's life.
    pub renew_at: f64,
    /// Print progress as JSON lines.
    pub json: bool,
}

/// Reconnections in a row after which the client asks the core whether it is still
/// welcome.
const FAILURES_BEFORE_ASKING: u32 = 3;
/// How long a failed renewal waits before trying again.
const RENEWAL_RETRY: Duration = Duration::from_secs(30);

/// Prints a line of progress (or its JSON form).
fn say(json: bool, event: &str, text: &str) {
    if json {
        println!("{}", serde_json::json!({"event": event, "message": text}));
    } else {
        println!("{text}");
    }
}

/// The runtime directory for user `uid`, made private to them; refused when a
/// connection already runs there.
async fn runtime_dir(uid: u32) -> Result<PathBuf, Failure> {
    if let Ok(running) = control::status(uid).await {
        return Err(Failure::Local(format!(
            "a connection to {} is already running; run `gatekey disconnect` first",
            running.gateway
        )));
    }
    let dir = control::runtime_dir(uid);
    let local = |e: std::io::Error| Failure::Local(format!("cannot prepare {}: {e}", dir.display()));
    std::fs::create_dir_all(&dir).map_err(local)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(local)?;
    std::os::unix::fs::chown(&dir, Some(uid), None).map_err(local)?;
    for stale in ["control.sock", "management.sock"] {
        let _ = std::fs::remove_file(dir.join(stale));
    }
    Ok(dir)
}

/// Removes the key material and sockets.
fn clean(dir: &Path) {
    for file in ["cert.pem", "key.pem", "profile.ovpn", "control.sock", "management.sock", "openvpn.log"] {
        let _ = std::fs::remove_file(dir.join(file));
    }
}

/// The last lines of OpenVPN's log, for an explanation.
fn log_tail(dir: &Path) -> String {
    let log = std::fs::read_to_string(dir.join("openvpn.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().rev().take(3).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" / ")
}

/// Seconds from now until `at`.
fn until(at: Option<prost_types::Timestamp>) -> Duration {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    Duration::from_secs(u64::try_from(at.map_or(0, |at| at.seconds) - now).unwrap_or(0))
}

/// When to renew a certificate valid for `remaining`, as a share `renew_at` of its life.
fn renewal_delay(remaining: Duration, renew_at: f64) -> Duration {
    remaining.mul_f64(renew_at.clamp(0.1, 0.95))
}

/// Answers `status` and `disconnect` on the control socket until the connection ends.
fn serve_control(dir: &Path, uid: u32, status: Arc<Mutex<Status>>, stop: mpsc::Sender<()>) -> Result<(), Failure> {
    let path = dir.join("control.sock");
    let listener =
        UnixListener::bind(&path).map_err(|e| Failure::Local(format!("cannot open {}: {e}", path.display())))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::os::unix::fs::chown(&path, Some(uid), None))
        .map_err(|e| Failure::Local(format!("cannot secure {}: {e}", path.display())))?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (status, stop) = (status.clone(), stop.clone());
            tokio::spawn(async move {
                let (reader, mut writer) = stream.into_split();
                let mut question = String::new();
                if BufReader::new(reader).read_line(&mut question).await.is_err() {
                    return;
                }
                let answer = match question.trim() {
                    "status" => serde_json::to_string(&*status.lock().unwrap_or_else(PoisonError::into_inner)),
                    "disconnect" => {
                        let _ = stop.try_send(());
                        Ok(r#"{"disconnecting":true}"#.to_owned())
                    }
                    _ => Ok(r#"{"error":"ask `status` or `disconnect`"}"#.to_owned()),
                };
                let _ = writer.write_all(format!("{}\n", answer.unwrap_or_default()).as_bytes()).await;
            });
        }
    });
    Ok(())
}

/// `gatekey connect` in the foreground.
pub async fn connect(owner: &Owner, client: &Client, options: &ConnectOptions) -> Result<String, Failure> {
    if effective_uid() != 0 {
        return Err(Failure::Local(
            "connecting creates a tunnel device, which needs root: run `sudo gatekey connect` (the session of \
             `gatekey login` is used)"
                .into(),
        ));
    }
    let program = openvpn::find(&options.openvpn)?;
    client.session().await.map_err(|error| Failure::from_sdk("checking the session", error))?;
    let gateway = listing::choose(client, options.gateway.as_deref()).await?;
    let dir = runtime_dir(owner.uid).await?;
    let outcome = supervise(owner, client, options, &program, &gateway, &dir).await;
    clean(&dir);
    outcome
}

async fn supervise(
    owner: &Owner,
    client: &Client,
    options: &ConnectOptions,
    program: &Path,
    gateway: &gatekey::v1::Gateway,
    dir: &Path,
) -> Result<String, Failure> {
    let json = options.json;
    let endpoint = format!("{}:{}", gateway.hostname, gateway.port);
    say(json, "connecting", &format!("Connecting to {} ({endpoint})…", gateway.name));
    let Profile { content, mut serial, mut expires_at } = listing::profile(client, gateway).await?;
    let config = openvpn::write_profile(dir, &content)?;
    let management_socket = dir.join("management.sock");
    let mut openvpn_options = options.openvpn_options.clone();
    if content.lines().any(|line| line.trim() == "proto udp") {
        // Tell the gateway when this client goes (at a disconnect, and at each renewal's
        // restart), so it drops the session at once instead of after its ping timeout.
        openvpn_options.extend(["--explicit-exit-notify".to_owned(), "1".to_owned()]);
    }
    let mut child = openvpn::spawn(program, &config, &management_socket, &dir.join("openvpn.log"), &openvpn_options)?;
    let (mut management, mut reports) = Management::attach(&management_socket).await?;
    let status = Arc::new(Mutex::new(Status {
        gateway: gateway.name.clone(),
        endpoint: endpoint.clone(),
        state: "connecting".into(),
        certificate_expires: rfc3339(expires_at),
        certificate_serial: serial.clone(),
        pid: std::process::id(),
        ..Default::default()
    }));
    let update = |change: &dyn Fn(&mut Status)| change(&mut status.lock().unwrap_or_else(PoisonError::into_inner));
    let (stop_sender, mut stop) = mpsc::channel(1);
    serve_control(dir, owner.uid, status.clone(), stop_sender)?;
    let (mut interrupt, mut terminate, mut hangup) =
        match (signal(SignalKind::interrupt()), signal(SignalKind::terminate()), signal(SignalKind::hangup())) {
            (Ok(interrupt), Ok(terminate), Ok(hangup)) => (interrupt, terminate, hangup),
            _ => return Err(Failure::Local("cannot watch for Ctrl-C and SIGTERM".into())),
        };

    let mut renew_at = Instant::now() + renewal_delay(until(expires_at), options.renew_at);
    let mut renewing: Option<Instant> = None;
    let mut connected_once = false;
    let mut failures_in_a_row = 0u32;
    let mut ended: Option<Failure> = None;
    let mut stopping = false;
    loop {
        tokio::select! {
            report = reports.recv() => match report {
                None => break,
                Some(Report::Hold) => management.command("hold release").await?,
                Some(Report::Bytes { received, sent }) => update(&|s| {
                    s.bytes_received = received;
                    s.bytes_sent = sent;
                }),
                Some(Report::Log(message)) => {
                    let routes = openvpn::pushed_routes(&message);
                    if !routes.is_empty() {
                        update(&|s| s.routes.clone_from(&routes));
                    }
                    if let Some(reason) = openvpn::ended_by_gateway(&message) {
                        ended = Some(Failure::Connection(reason));
                    }
                }
                Some(Report::State { name, detail, address }) => match name.as_str() {
                    "CONNECTED" => {
                        failures_in_a_row = 0;
                        let now = time::OffsetDateTime::now_utc();
                        update(&|s| {
                            s.state = "connected".into();
                            s.tunnel_address.clone_from(&address);
                            if s.connected_since.is_empty() {
                                s.connected_since = now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
                            }
                        });
                        let routes = status.lock().unwrap_or_else(PoisonError::into_inner).routes.join(", ");
                        let routes = if routes.is_empty() { "none pushed".to_owned() } else { routes };
                        if let Some(started) = renewing.take() {
                            let gap = started.elapsed();
                            let gap_ms = u64::try_from(gap.as_millis()).unwrap_or(u64::MAX);
                            update(&|s| {
                                s.renewals += 1;
                                s.last_renewal_gap_ms = Some(gap_ms);
                            });
                            say(json, "renewed", &format!(
                                "Renewed the certificate (now valid until {}); traffic paused {:.2} s.",
                                rfc3339(expires_at), gap.as_secs_f64()
                            ));
                        } else if connected_once {
                            say(json, "reconnected", &format!("Reconnected to {}: tunnel address {address}.", gateway.name));
                        } else {
                            connected_once = true;
                            say(json, "connected", &format!(
                                "Connected to {}: tunnel address {address}; routes: {routes}.", gateway.name
                            ));
                        }
                    }
                    "RECONNECTING" if renewing.is_none() && !stopping => {
                        update(&|s| s.state = "reconnecting".into());
                        failures_in_a_row += 1;
                        say(json, "reconnecting", &format!("Reconnecting ({detail})…"));
                        if failures_in_a_row >= FAILURES_BEFORE_ASKING
                            && let Some(refusal) = still_welcome(client, &serial).await
                        {
                            ended = Some(refusal);
                            stopping = true;
                            management.command("signal SIGTERM").await?;
                        }
                    }
                    _ => {}
                },
            },
            () = tokio::time::sleep_until(renew_at.into()), if renewing.is_none() && !stopping => {
                say(json, "renewing", &format!("Renewing the certificate (it expires {})…", rfc3339(expires_at)));
                match listing::profile(client, gateway).await {
                    Ok(fresh) => {
                        openvpn::write_credentials(dir, &fresh.content)?;
                        (serial, expires_at) = (fresh.serial, fresh.expires_at);
                        update(&|s| {
                            s.state = "renewing".into();
                            s.certificate_expires = rfc3339(expires_at);
                            s.certificate_serial.clone_from(&serial);
                        });
                        renewing = Some(Instant::now());
                        renew_at = Instant::now() + renewal_delay(until(expires_at), options.renew_at);
                        management.command("signal SIGUSR1").await?;
                    }
                    Err(failure @ (Failure::Refused(_) | Failure::SignedOut(_))) => {
                        ended = Some(failure);
                        stopping = true;
                        management.command("signal SIGTERM").await?;
                    }
                    Err(transient) => {
                        say(json, "renewal-delayed", &format!("Could not renew yet ({transient}); trying again in 30 s."));
                        renew_at = Instant::now() + RENEWAL_RETRY;
                    }
                }
            }
            _ = interrupt.recv() => stopping = stop_openvpn(&mut management, &status, json).await?,
            _ = terminate.recv() => stopping = stop_openvpn(&mut management, &status, json).await?,
            _ = stop.recv() => stopping = stop_openvpn(&mut management, &status, json).await?,
            // A closed terminal does not end the connection (`--background` relies on it).
            _ = hangup.recv() => {}
            exited = child.wait() => {
                let _ = exited;
                break;
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    let _ = child.kill().await;
    match ended {
        Some(failure) => Err(failure),
        None if stopping => Ok(format!("Disconnected from {}.", gateway.name)),
        // Ended from the other side: the core says why when it refuses this client now
        // (a HALT's reason is not in OpenVPN's log when it exits with a notification).
        None => Err(match still_welcome(client, &serial).await {
            Some(refusal) => refusal,
            None => Failure::Connection(format!("OpenVPN stopped: {}", log_tail(dir))),
        }),
    }
}

/// Asks OpenVPN to stop; answers that the connection is stopping.
async fn stop_openvpn(management: &mut Management, status: &Mutex<Status>, json: bool) -> Result<bool, Failure> {
    status.lock().unwrap_or_else(PoisonError::into_inner).state = "disconnecting".into();
    say(json, "disconnecting", "Disconnecting…");
    management.command("signal SIGTERM").await?;
    Ok(true)
}

/// After reconnections that keep failing: whether the core still lets this client in,
/// or why not.
async fn still_welcome(client: &Client, serial: &str) -> Option<Failure> {
    if let Err(error) = client.session().await {
        let failure = Failure::from_sdk("checking the session", error);
        return matches!(failure, Failure::SignedOut(_) | Failure::Refused(_)).then_some(failure);
    }
    match client.certificate_status(serial).await {
        Ok(certificate) if certificate.revoked => Some(Failure::Connection(format!(
            "the certificate was revoked ({}); the gateway will not take it",
            if certificate.reason.is_empty() { "no reason given" } else { certificate.reason.as_str() }
        ))),
        _ => None,
    }
}

/// `gatekey connect --background`: starts the connection as a process of its own and
/// returns once it is connected (or failed).
pub async fn background(owner: &Owner, arguments: Vec<String>) -> Result<String, Failure> {
    let dir = control::runtime_dir(owner.uid);
    std::fs::create_dir_all(&dir).map_err(|e| Failure::Local(format!("cannot prepare {}: {e}", dir.display())))?;
    let log_path = dir.join("client.log");
    let log = std::fs::File::create(&log_path)
        .map_err(|e| Failure::Local(format!("cannot write {}: {e}", log_path.display())))?;
    let program = std::env::current_exe().map_err(|e| Failure::Local(format!("cannot find this program: {e}")))?;
    let mut child = std::process::Command::new(program)
        .args(arguments)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().map_err(|e| Failure::Local(e.to_string()))?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .map_err(|e| Failure::Local(format!("cannot start the background connection: {e}")))?;
    for _ in 0..600 {
        if let Ok(Some(exit)) = child.try_wait() {
            let said = std::fs::read_to_string(&log_path).unwrap_or_default();
            let last = said.lines().last().unwrap_or("no explanation").to_owned();
            return Err(Failure::from_exit(exit.code().unwrap_or(7), last));
        }
        if let Ok(status) = control::status(owner.uid).await
            && status.state == "connected"
        {
            return Ok(format!(
                "Connected in the background to {} (tunnel address {}). `gatekey status` shows it; \
                 `gatekey disconnect` ends it.",
                status.gateway, status.tunnel_address
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(Failure::Connection(format!("not connected after a minute; see {}", log_path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewals_come_at_the_share_of_life_asked_within_bounds() {
        assert_eq!(renewal_delay(Duration::from_secs(100), 0.8), Duration::from_secs(80));
        assert_eq!(renewal_delay(Duration::from_secs(100), 5.0), Duration::from_secs(95));
        assert_eq!(renewal_delay(Duration::from_secs(100), 0.0), Duration::from_secs(10));
    }
}
