//! Async client for the OpenVPN management interface (run with `--management-client-auth`).
//!
//! The protocol is line based: notifications start with `>` and may arrive at any time,
//! even between a command and its reply; every other line answers the oldest command
//! still waiting (`SUCCESS:`/`ERROR:`, or a multi-line block ending with `END`).
//! A reader task splits the two: notifications go to an event channel, replies
//! complete the waiting commands in order.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

/// How long a command waits for its reply by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Environment OpenVPN sends with a client notification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientEnv(pub HashMap<String, String>);

impl ClientEnv {
    /// A variable by name.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The certificate's common name.
    pub fn common_name(&self) -> Option<&str> {
        self.get("common_name")
    }

    /// Certificate serial as lowercase hex without colons or leading zeros.
    /// Prefers `tls_serial_hex_0`; falls back to decimal `tls_serial_0` (up to 128 bits).
    pub fn serial_hex(&self) -> Option<String> {
        if let Some(hex) = self.get("tls_serial_hex_0") {
            let digits: String = hex.chars().filter(|c| *c != ':').collect::<String>().to_ascii_lowercase();
            if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_hexdigit()) {
                let trimmed = digits.trim_start_matches('0');
                return Some(if trimmed.is_empty() { "0".to_owned() } else { trimmed.to_owned() });
            }
        }
        let decimal = self.get("tls_serial_0")?;
        decimal.parse::<u128>().ok().map(|n| format!("{n:x}"))
    }

    /// The client's public address (`untrusted_ip`, or `untrusted_ip6`).
    pub fn real_address(&self) -> Option<&str> {
        self.get("untrusted_ip").or_else(|| self.get("untrusted_ip6"))
    }

    /// The address assigned inside the tunnel (`ifconfig_pool_remote_ip`, set once established).
    pub fn vpn_address(&self) -> Option<&str> {
        self.get("ifconfig_pool_remote_ip")
    }

    /// Bytes received from the client (disconnect only).
    pub fn bytes_received(&self) -> Option<u64> {
        self.get("bytes_received")?.parse().ok()
    }

    /// Bytes sent to the client (disconnect only).
    pub fn bytes_sent(&self) -> Option<u64> {
        self.get("bytes_sent")?.parse().ok()
    }

    /// Session length in seconds (disconnect only).
    pub fn duration_seconds(&self) -> Option<u64> {
        self.get("time_duration")?.parse().ok()
    }
}

/// A notification from OpenVPN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManagementEvent {
    /// A client wants in; answer with `client_auth`, `client_auth_nt` or `client_deny`.
    Connect {
        /// Client id.
        cid: u64,
        /// Key id.
        kid: u64,
        /// Client environment.
        env: ClientEnv,
    },
    /// A connected client renegotiates; answer as for `Connect`.
    Reauth {
        /// Client id.
        cid: u64,
        /// Key id.
        kid: u64,
        /// Client environment.
        env: ClientEnv,
    },
    /// A client finished connecting and has its VPN address.
    Established {
        /// Client id.
        cid: u64,
        /// Client environment.
        env: ClientEnv,
    },
    /// A client went away.
    Disconnect {
        /// Client id.
        cid: u64,
        /// Client environment, with byte counts and duration.
        env: ClientEnv,
    },
    /// An address was learned for a client.
    Address {
        /// Client id.
        cid: u64,
        /// The address.
        address: String,
    },
    /// The management connection ended; no more events follow.
    Closed,
}

/// A client listed by `status 3`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveClient {
    /// Certificate common name.
    pub common_name: String,
    /// Public address, without the port when it could be split off.
    pub real_address: String,
    /// Address inside the tunnel (may be empty).
    pub vpn_address: String,
    /// Connection time as a Unix timestamp.
    pub connected_since: i64,
    /// Client id, as used by `client-kill`.
    pub cid: u64,
    /// Bytes received from the client so far.
    pub bytes_received: u64,
    /// Bytes sent to the client so far.
    pub bytes_sent: u64,
}

/// Why a management command failed.
#[derive(Debug, thiserror::Error)]
pub enum ManagementError {
    /// Writing to the socket failed.
    #[error("management I/O: {0}")]
    Io(#[from] io::Error),
    /// OpenVPN answered `ERROR:`.
    #[error("OpenVPN refused the command: {0}")]
    Rejected(String),
    /// No reply within the timeout.
    #[error("no reply from OpenVPN within {0:?}")]
    Timeout(Duration),
    /// The connection is closed.
    #[error("management connection closed")]
    Closed,
    /// An argument would have broken the line protocol (e.g. contained a newline).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

type ReplyResult = Result<Vec<String>, String>;

/// A command waiting for its reply.
struct Pending {
    tx: oneshot::Sender<ReplyResult>,
    /// `status` answers many lines ending with `END`; others answer one line.
    multi_line: bool,
    lines: Vec<String>,
}

#[derive(Default)]
struct Shared {
    pending: VecDeque<Pending>,
    closed: bool,
}

type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// A connection to OpenVPN's management interface. Dropping it stops the reader task.
pub struct ManagementClient {
    // The writer lock also orders `pending`: a command is queued and written under it,
    // so queue order equals wire order, which is the order replies come back in.
    writer: Mutex<Writer>,
    shared: Arc<StdMutex<Shared>>,
    reader: JoinHandle<()>,
    timeout: Duration,
}

impl std::fmt::Debug for ManagementClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagementClient").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl Drop for ManagementClient {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Connects to the management interface at `address` (e.g. `127.0.0.1:7505`).
pub async fn connect(address: &str) -> io::Result<(ManagementClient, mpsc::UnboundedReceiver<ManagementEvent>)> {
    let stream = tokio::net::TcpStream::connect(address).await?;
    Ok(ManagementClient::from_stream(stream))
}

impl ManagementClient {
    /// Wraps an already connected stream (a TCP or Unix socket, or a test pipe).
    /// Must be called inside a tokio runtime.
    pub fn from_stream<S>(stream: S) -> (Self, mpsc::UnboundedReceiver<ManagementEvent>)
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read, write) = tokio::io::split(stream);
        let (events, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(StdMutex::new(Shared::default()));
        let reader = tokio::spawn(read_loop(BufReader::new(read), events, shared.clone()));
        let client = Self { writer: Mutex::new(Box::new(write)), shared, reader, timeout: DEFAULT_TIMEOUT };
        (client, rx)
    }

    /// Sets how long commands wait for a reply.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Lets a client in, pushing `config_lines` (e.g. `push "route 10.79.0.0 255.255.255.0"`).
    pub async fn client_auth(&self, cid: u64, kid: u64, config_lines: &[String]) -> Result<(), ManagementError> {
        let mut command = format!("client-auth {cid} {kid}\n");
        for line in config_lines {
            // A newline would end the line early and let the rest run as a management command;
            // a line reading END would close the block early with the same effect.
            if line.contains(['\n', '\r', '\0']) || line.trim().eq_ignore_ascii_case("END") {
                return Err(ManagementError::InvalidArgument(format!("config line {line:?}")));
            }
            command.push_str(line);
            command.push('\n');
        }
        command.push_str("END\n");
        self.command(&command, false).await.map(drop)
    }

    /// Lets a client in without pushing any config.
    pub async fn client_auth_nt(&self, cid: u64, kid: u64) -> Result<(), ManagementError> {
        self.command(&format!("client-auth-nt {cid} {kid}\n"), false).await.map(drop)
    }

    /// Refuses a client: `reason` goes to the server log, `client_reason` (if not empty) to the client.
    pub async fn client_deny(
        &self,
        cid: u64,
        kid: u64,
        reason: &str,
        client_reason: &str,
    ) -> Result<(), ManagementError> {
        let mut command = format!("client-deny {cid} {kid} {}", quote(reason));
        if !client_reason.is_empty() {
            command.push(' ');
            command.push_str(&quote(client_reason));
        }
        command.push('\n');
        self.command(&command, false).await.map(drop)
    }

    /// Disconnects a client for good: OpenVPN sends it `HALT,<reason>`, so a stock client
    /// stops (instead of reconnecting every minute) and logs why.
    pub async fn client_kill(&self, cid: u64, reason: &str) -> Result<(), ManagementError> {
        let message = quote(&format!("HALT,{reason}"));
        self.command(&format!("client-kill {cid} {message}\n"), false).await.map(drop)
    }

    /// Sends a client back to the start (`RESTART`): it reconnects, and is checked anew.
    pub async fn client_restart(&self, cid: u64) -> Result<(), ManagementError> {
        self.command(&format!("client-kill {cid} RESTART\n"), false).await.map(drop)
    }

    /// Lists connected clients (`status 3`).
    pub async fn status(&self) -> Result<Vec<LiveClient>, ManagementError> {
        let lines = self.command("status 3\n", true).await?;
        Ok(lines.iter().filter_map(|line| parse_client_list(line)).collect())
    }

    async fn command(&self, text: &str, multi_line: bool) -> Result<Vec<String>, ManagementError> {
        let (tx, rx) = oneshot::channel();
        {
            let mut writer = self.writer.lock().await;
            {
                let mut shared = self.shared.lock().map_err(|_| ManagementError::Closed)?;
                if shared.closed {
                    return Err(ManagementError::Closed);
                }
                shared.pending.push_back(Pending { tx, multi_line, lines: Vec::new() });
            }
            let written = async {
                writer.write_all(text.as_bytes()).await?;
                writer.flush().await
            };
            if let Err(error) = written.await {
                // We still hold the writer lock, so the newest entry is ours: withdraw it so it
                // does not steal the next command's reply.
                if let Ok(mut shared) = self.shared.lock() {
                    shared.pending.pop_back();
                }
                return Err(error.into());
            }
        }
        match tokio::time::timeout(self.timeout, rx).await {
            Err(_) => Err(ManagementError::Timeout(self.timeout)),
            // The reader dropped our sender: the connection ended.
            Ok(Err(_)) => Err(ManagementError::Closed),
            Ok(Ok(Err(message))) => Err(ManagementError::Rejected(message)),
            Ok(Ok(Ok(lines))) => Ok(lines),
        }
    }
}

/// Quotes an argument the way OpenVPN's parser expects; newlines are dropped because
/// they would end the command.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '\\' | '"' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' | '\0' => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Parses a `CLIENT_LIST` line of `status 3`.
fn parse_client_list(line: &str) -> Option<LiveClient> {
    let fields: Vec<&str> = line.split('\t').collect();
    if fields.first() != Some(&"CLIENT_LIST") || fields.len() < 11 {
        return None;
    }
    Some(LiveClient {
        common_name: fields[1].to_owned(),
        real_address: strip_port(fields[2]).to_owned(),
        vpn_address: fields[3].to_owned(),
        connected_since: fields[8].parse().ok()?,
        cid: fields[10].parse().ok()?,
        bytes_received: fields[5].parse().unwrap_or(0),
        bytes_sent: fields[6].parse().unwrap_or(0),
    })
}

/// `1.2.3.4:5678` -> `1.2.3.4`, `[2001:db8::1]:5678` -> `2001:db8::1`; anything else unchanged.
fn strip_port(text: &str) -> &str {
    match text.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => {
            let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
            if host.parse::<IpAddr>().is_ok() { host } else { text }
        }
        _ => text,
    }
}

/// Which notification an ENV block belongs to.
enum BlockKind {
    Connect(u64, u64),
    Reauth(u64, u64),
    Established(u64),
    Disconnect(u64),
    /// A block we do not handle (e.g. `CR_RESPONSE`): read and discard.
    Other,
}

async fn read_loop<R>(
    mut reader: BufReader<R>,
    events: mpsc::UnboundedSender<ManagementEvent>,
    shared: Arc<StdMutex<Shared>>,
) where
    R: AsyncRead + Unpin,
{
    let mut block: Option<(BlockKind, HashMap<String, String>)> = None;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "reading the OpenVPN management socket failed");
                break;
            }
        }
        // Lossy: a non-UTF-8 byte in a client's env must not kill the connection.
        let text = String::from_utf8_lossy(&buf);
        let line = text.trim_end_matches(['\n', '\r']);
        if let Some(note) = line.strip_prefix('>') {
            if let Some(event) = notification(note, &mut block) {
                // The receiver may be gone; replies must still be processed.
                let _ = events.send(event);
            }
        } else {
            reply(line, &shared);
        }
    }
    if let Ok(mut shared) = shared.lock() {
        shared.closed = true;
        // Dropping the senders fails every waiting command with `Closed`.
        shared.pending.clear();
    }
    let _ = events.send(ManagementEvent::Closed);
}

/// Handles one notification line (without `>`), returning a finished event if any.
fn notification(note: &str, block: &mut Option<(BlockKind, HashMap<String, String>)>) -> Option<ManagementEvent> {
    let client = note.strip_prefix("CLIENT:")?;
    if let Some(var) = client.strip_prefix("ENV,") {
        if var == "END" {
            let (kind, env) = block.take()?;
            let env = ClientEnv(env);
            return match kind {
                BlockKind::Connect(cid, kid) => Some(ManagementEvent::Connect { cid, kid, env }),
                BlockKind::Reauth(cid, kid) => Some(ManagementEvent::Reauth { cid, kid, env }),
                BlockKind::Established(cid) => Some(ManagementEvent::Established { cid, env }),
                BlockKind::Disconnect(cid) => Some(ManagementEvent::Disconnect { cid, env }),
                BlockKind::Other => None,
            };
        }
        if let (Some((_, env)), Some((name, value))) = (block.as_mut(), var.split_once('=')) {
            env.insert(name.to_owned(), value.to_owned());
        }
        return None;
    }
    let mut parts = client.split(',');
    let kind = parts.next().unwrap_or_default();
    let cid = parts.next().and_then(|s| s.parse::<u64>().ok());
    if kind == "ADDRESS" {
        let address = parts.next()?.to_owned();
        return Some(ManagementEvent::Address { cid: cid?, address });
    }
    let kid = parts.next().and_then(|s| s.parse::<u64>().ok());
    let kind = match (kind, cid, kid) {
        ("CONNECT", Some(cid), Some(kid)) => BlockKind::Connect(cid, kid),
        ("REAUTH", Some(cid), Some(kid)) => BlockKind::Reauth(cid, kid),
        ("ESTABLISHED", Some(cid), _) => BlockKind::Established(cid),
        ("DISCONNECT", Some(cid), _) => BlockKind::Disconnect(cid),
        _ => {
            tracing::debug!(notification = note, "unhandled OpenVPN client notification");
            BlockKind::Other
        }
    };
    *block = Some((kind, HashMap::new()));
    None
}

/// Feeds one reply line to the oldest waiting command.
fn reply(line: &str, shared: &StdMutex<Shared>) {
    let Ok(mut shared) = shared.lock() else { return };
    let Some(front) = shared.pending.front_mut() else {
        tracing::debug!(line, "OpenVPN management line with no command waiting");
        return;
    };
    let outcome = if let Some(message) = line.strip_prefix("ERROR:") {
        Err(message.trim().to_owned())
    } else if front.multi_line {
        if line == "END" {
            Ok(std::mem::take(&mut front.lines))
        } else {
            front.lines.push(line.to_owned());
            return;
        }
    } else if line.starts_with("SUCCESS:") {
        Ok(vec![line.to_owned()])
    } else {
        tracing::debug!(line, "unexpected OpenVPN management reply line");
        return;
    };
    if let Some(done) = shared.pending.pop_front() {
        // The caller may have timed out and gone; that is fine.
        let _ = done.tx.send(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{DuplexStream, ReadHalf, WriteHalf};

    /// The OpenVPN side of a test pipe.
    struct Fake {
        read: BufReader<ReadHalf<DuplexStream>>,
        write: WriteHalf<DuplexStream>,
    }

    impl Fake {
        async fn send(&mut self, lines: &[&str]) {
            for line in lines {
                self.write.write_all(format!("{line}\r\n").as_bytes()).await.unwrap();
            }
        }

        async fn expect(&mut self, expected: &str) {
            let mut line = String::new();
            self.read.read_line(&mut line).await.unwrap();
            assert_eq!(line, format!("{expected}\n"));
        }
    }

    fn pair() -> (Arc<ManagementClient>, mpsc::UnboundedReceiver<ManagementEvent>, Fake) {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let (client, events) = ManagementClient::from_stream(ours);
        let (read, write) = tokio::io::split(theirs);
        (Arc::new(client), events, Fake { read: BufReader::new(read), write })
    }

    fn env(pairs: &[(&str, &str)]) -> ClientEnv {
        ClientEnv(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[tokio::test]
    async fn parses_client_notifications() {
        let (_client, mut events, mut fake) = pair();
        fake.send(&[
            ">INFO:OpenVPN Management Interface Version 5 -- type 'help' for more info",
            ">CLIENT:CONNECT,7,1",
            ">CLIENT:ENV,common_name=alice@example.com",
            ">CLIENT:ENV,tls_serial_hex_0=00:3a:4B",
            ">CLIENT:ENV,untrusted_ip=203.0.113.9",
            ">CLIENT:ENV,odd=a=b",
            ">CLIENT:ENV,END",
            ">CLIENT:CR_RESPONSE,7,1,abc",
            ">CLIENT:ENV,common_name=ignored",
            ">CLIENT:ENV,END",
            ">CLIENT:ADDRESS,7,10.78.0.2,1",
            ">CLIENT:DISCONNECT,7",
            ">CLIENT:ENV,bytes_received=100",
            ">CLIENT:ENV,bytes_sent=200",
            ">CLIENT:ENV,time_duration=30",
            ">CLIENT:ENV,END",
        ])
        .await;
        let Some(ManagementEvent::Connect { cid: 7, kid: 1, env }) = events.recv().await else { panic!() };
        assert_eq!(env.common_name(), Some("alice@example.com"));
        assert_eq!(env.serial_hex().as_deref(), Some("3a4b"));
        assert_eq!(env.real_address(), Some("203.0.113.9"));
        assert_eq!(env.get("odd"), Some("a=b"));
        assert_eq!(events.recv().await, Some(ManagementEvent::Address { cid: 7, address: "10.78.0.2".into() }));
        let Some(ManagementEvent::Disconnect { cid: 7, env }) = events.recv().await else { panic!() };
        assert_eq!((env.bytes_received(), env.bytes_sent(), env.duration_seconds()), (Some(100), Some(200), Some(30)));
        drop(fake);
        assert_eq!(events.recv().await, Some(ManagementEvent::Closed));
    }

    #[test]
    fn env_helpers() {
        assert_eq!(env(&[("tls_serial_hex_0", "00:00")]).serial_hex().as_deref(), Some("0"));
        assert_eq!(env(&[("tls_serial_0", "14923")]).serial_hex().as_deref(), Some("3a4b"));
        // Unusable hex falls back to the decimal form.
        let both = env(&[("tls_serial_hex_0", "zz"), ("tls_serial_0", "255")]);
        assert_eq!(both.serial_hex().as_deref(), Some("ff"));
        assert_eq!(env(&[("tls_serial_0", "-1")]).serial_hex(), None);
        assert_eq!(env(&[]).serial_hex(), None);
        let e = env(&[("ifconfig_pool_remote_ip", "10.78.0.6"), ("untrusted_ip6", "2001:db8::1"), ("bytes_sent", "x")]);
        assert_eq!(e.vpn_address(), Some("10.78.0.6"));
        assert_eq!(e.real_address(), Some("2001:db8::1"));
        assert_eq!(e.bytes_sent(), None);
        assert_eq!(e.common_name(), None);
    }

    #[tokio::test]
    async fn client_auth_sends_block_and_interleaved_events_still_arrive() {
        let (client, mut events, mut fake) = pair();
        let c = client.clone();
        let push = vec!["push \"route 10.79.0.0 255.255.255.0\"".to_owned()];
        let call = tokio::spawn(async move { c.client_auth(3, 0, &push).await });
        fake.expect("client-auth 3 0").await;
        fake.expect("push \"route 10.79.0.0 255.255.255.0\"").await;
        fake.expect("END").await;
        fake.send(&[
            ">CLIENT:ESTABLISHED,2",
            ">CLIENT:ENV,ifconfig_pool_remote_ip=10.78.0.4",
            ">CLIENT:ENV,END",
            ">LOG:1700000000,I,something",
            "SUCCESS: client-auth command succeeded",
        ])
        .await;
        call.await.unwrap().unwrap();
        let Some(ManagementEvent::Established { cid: 2, env }) = events.recv().await else { panic!() };
        assert_eq!(env.vpn_address(), Some("10.78.0.4"));
    }

    #[tokio::test]
    async fn error_reply_is_an_error_and_replies_stay_in_order() {
        let (client, _events, mut fake) = pair();
        let c = client.clone();
        let calls = tokio::spawn(async move {
            let first = c.client_kill(9, "revoked").await;
            let second = c.client_auth_nt(4, 2).await;
            (first, second)
        });
        fake.expect(r#"client-kill 9 "HALT,revoked""#).await;
        fake.send(&["ERROR: client-kill command failed"]).await;
        fake.expect("client-auth-nt 4 2").await;
        fake.send(&["SUCCESS: client-auth command succeeded"]).await;
        let (first, second) = calls.await.unwrap();
        assert!(matches!(first, Err(ManagementError::Rejected(m)) if m == "client-kill command failed"));
        second.unwrap();
    }

    #[tokio::test]
    async fn client_deny_quotes_reasons() {
        let (client, _events, mut fake) = pair();
        let c = client.clone();
        let call = tokio::spawn(async move { c.client_deny(5, 1, "bad \"cert\"\nclient-kill 1", "no\\way").await });
        fake.expect(r#"client-deny 5 1 "bad \"cert\"client-kill 1" "no\\way""#).await;
        fake.send(&["SUCCESS: client-deny command succeeded"]).await;
        call.await.unwrap().unwrap();
        let c = client.clone();
        let call = tokio::spawn(async move { c.client_deny(5, 2, "expired", "").await });
        fake.expect(r#"client-deny 5 2 "expired""#).await;
        fake.send(&["SUCCESS: client-deny command succeeded"]).await;
        call.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn injection_attempts_are_rejected_before_writing() {
        let (client, _events, mut fake) = pair();
        for bad in ["push \"x\"\nclient-kill 1", "a\rb", "END", " end "] {
            let result = client.client_auth(1, 0, &["push \"ok\"".to_owned(), bad.to_owned()]).await;
            assert!(matches!(result, Err(ManagementError::InvalidArgument(_))), "{bad:?}");
        }
        // Nothing was written: the next thing OpenVPN reads is this command.
        let c = client.clone();
        let call = tokio::spawn(async move { c.client_kill(1, "gone").await });
        fake.expect(r#"client-kill 1 "HALT,gone""#).await;
        fake.send(&["SUCCESS: client-kill command succeeded"]).await;
        call.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn status_parses_client_list() {
        let (client, mut events, mut fake) = pair();
        let c = client.clone();
        let call = tokio::spawn(async move { c.status().await });
        fake.expect("status 3").await;
        fake.send(&[
            "TITLE\tOpenVPN 2.6.3 x86_64-pc-linux-gnu",
            "TIME\t2024-01-01 00:00:00\t1704067200",
            "HEADER\tCLIENT_LIST\tCommon Name\tReal Address\tVirtual Address\tVirtual IPv6 Address\tBytes Received\tBytes Sent\tConnected Since\tConnected Since (time_t)\tUsername\tClient ID\tPeer ID\tData Channel Cipher",
            "CLIENT_LIST\talice\t203.0.113.9:51234\t10.78.0.2\t\t100\t200\t2024-01-01 00:00:00\t1704067200\tUNDEF\t7\t0\tAES-256-GCM",
            ">CLIENT:ADDRESS,8,10.78.0.3,1",
            "CLIENT_LIST\tbob\t[2001:db8::5]:1194\t\t\t0\t0\t2024-01-01 00:01:00\t1704067260\tUNDEF\t8\t1\tAES-256-GCM",
            "CLIENT_LIST\tbroken\tx\t\t\t0\t0\tnever\tnot-a-number\tUNDEF\t9\t1\tAES-256-GCM",
            "ROUTING_TABLE\t10.78.0.2\talice\t203.0.113.9:51234\t2024-01-01 00:00:00\t1704067200",
            "GLOBAL_STATS\tMax bcast/mcast queue length\t0",
            "END",
        ])
        .await;
        let clients = call.await.unwrap().unwrap();
        let got: Vec<_> = clients
            .iter()
            .map(|c| {
                (c.common_name.as_str(), c.real_address.as_str(), c.vpn_address.as_str(), c.connected_since, c.cid)
            })
            .collect();
        assert_eq!(
            got,
            [("alice", "203.0.113.9", "10.78.0.2", 1704067200, 7), ("bob", "2001:db8::5", "", 1704067260, 8)]
        );
        assert_eq!(events.recv().await, Some(ManagementEvent::Address { cid: 8, address: "10.78.0.3".into() }));
    }

    #[tokio::test]
    async fn timeout_and_close_fail_commands() {
        let (ours, theirs) = tokio::io::duplex(1024);
        let (client, mut events) = ManagementClient::from_stream(ours);
        let client = client.with_timeout(Duration::from_millis(50));
        assert!(matches!(client.client_kill(1, "gone").await, Err(ManagementError::Timeout(_))));
        drop(theirs);
        assert_eq!(events.recv().await, Some(ManagementEvent::Closed));
        assert!(matches!(client.client_kill(1, "gone").await, Err(ManagementError::Closed | ManagementError::Io(_))));
    }

    #[tokio::test]
    async fn connects_over_tcp() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let (read, mut write) = socket.into_split();
            write.write_all(b">INFO:hello\r\n").await.unwrap();
            let mut line = String::new();
            BufReader::new(read).read_line(&mut line).await.unwrap();
            write.write_all(b"SUCCESS: client-kill command succeeded\r\n").await.unwrap();
            line
        });
        let (client, _events) = connect(&address).await.unwrap();
        client.client_kill(12, "revoked").await.unwrap();
        assert_eq!(server.await.unwrap(), "client-kill 12 \"HALT,revoked\"\n");
    }
}
