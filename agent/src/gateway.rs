//! The agent's event loop: OpenVPN management events on one side, the core's stream
//! on the other. Every connecting client is verified with the core and allowed (with
//! its routes pushed) or denied with the core's reason; nftables follows the clients
//! that are up and the latest rules; kills and CRLs from the core are carried out;
//! connect and disconnect reports are kept until the core acknowledges them.

use crate::config::AgentSettings;
use crate::error::AgentError;
use crate::link::{Backoff, CoreNodes, with_token};
use crate::management::{self, ClientEnv, ManagementClient, ManagementEvent};
use crate::material::{client_config_lines, files, write_atomically};
use crate::nft::{Firewall, SystemRunner};
use crate::spoke_routes::{LEDGER, parse_ledger, render_ledger, route_into_tunnel};
use gatekey::v1::agent_message::Body as AgentBody;
use gatekey::v1::core_message::Body as CoreBody;
use gatekey::v1::*;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

/// A client OpenVPN told us about.
#[derive(Debug, Clone)]
struct LocalClient {
    common_name: String,
    /// Canonical hex serial; empty when learnt from `status` after an agent restart.
    serial: String,
    real_address: String,
    /// Set once the tunnel is up.
    vpn_address: Option<Ipv4Addr>,
    session_key: String,
    connected_at: i64,
    /// Networks behind this client (a mesh spoke), routed into the tunnel while it is up.
    iroutes: Vec<String>,
}

/// A verdict the agent awaits from the core.
#[derive(Debug, Clone, Copy)]
struct AwaitedVerdict {
    cid: u64,
    kid: u64,
    renegotiation: bool,
    asked: Instant,
}

/// How long a verdict may take before the client is refused.
const VERDICT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long live sessions may renegotiate without the core before they are refused.
const OUTAGE_GRACE: Duration = Duration::from_secs(3600);

/// The open stream to the core.
struct CoreStream {
    outbound: mpsc::Sender<AgentMessage>,
    inbound: Streaming<CoreMessage>,
}

/// What woke the loop.
enum Step {
    Management(Option<ManagementEvent>),
    Core(Result<Option<CoreMessage>, tonic::Status>),
    Heartbeat,
    FirewallCheck,
    Retry,
    Shutdown,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// The agent's state.
pub struct Gateway {
    settings: AgentSettings,
    cores: CoreNodes,
    management: Option<ManagementClient>,
    events: Option<mpsc::UnboundedReceiver<ManagementEvent>>,
    firewall: Option<Firewall<SystemRunner>>,
    clients: BTreeMap<u64, LocalClient>,
    awaited: HashMap<u64, AwaitedVerdict>,
    identities: HashMap<String, ClientRules>,
    applied_version: u64,
    /// Reports not yet acknowledged, oldest first, by request id.
    reports: VecDeque<(u64, AgentBody)>,
    next_request_id: u64,
    stream: Option<CoreStream>,
    /// When the stream to the core was lost, while it is down.
    core_lost_at: Option<Instant>,
    heartbeat_every: Duration,
    /// The number of the CRL installed from the stream (0 before the first).
    crl_number: u64,
}

impl Gateway {
    /// A gateway agent for these settings, talking to the core nodes `cores`.
    pub fn new(settings: AgentSettings, cores: CoreNodes, firewall: Option<Firewall<SystemRunner>>) -> Gateway {
        Gateway {
            settings,
            cores,
            management: None,
            events: None,
            firewall,
            clients: BTreeMap::new(),
            awaited: HashMap::new(),
            identities: HashMap::new(),
            applied_version: 0,
            reports: VecDeque::new(),
            next_request_id: 1,
            stream: None,
            core_lost_at: None,
            heartbeat_every: Duration::from_secs(30),
            crl_number: 0,
        }
    }

    fn request_id(&mut self) -> u64 {
        self.next_request_id += 1;
        self.next_request_id
    }

    /// Runs until SIGINT/SIGTERM, or until the core refuses this agent for good.
    pub async fn run(mut self) -> Result<(), AgentError> {
        let mut core_backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
        let mut management_backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let (mut core_retry_at, mut management_retry_at) = (Instant::now(), Instant::now());
        let mut heartbeat = tokio::time::interval(self.heartbeat_every);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut firewall_check = tokio::time::interval(self.settings.firewall_check_every);
        firewall_check.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let shutdown = shutdown_signal();
        tokio::pin!(shutdown);
        loop {
            if self.management.is_none() && Instant::now() >= management_retry_at {
                match self.attach_management().await {
                    Ok(()) => management_backoff.reset(),
                    Err(error) => {
                        tracing::debug!(%error, "OpenVPN management interface not reachable yet");
                        management_retry_at = Instant::now() + management_backoff.next_delay();
                    }
                }
            }
            if self.stream.is_none() && Instant::now() >= core_retry_at {
                match self.open_stream().await {
                    Ok(()) => {
                        core_backoff.reset();
                        heartbeat = tokio::time::interval(self.heartbeat_every);
                        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
                    }
                    Err(error) if !error.is_transient() => return Err(error),
                    Err(error) => {
                        let wait = core_backoff.next_delay();
                        let core = self.cores.url().to_owned();
                        tracing::warn!(%error, %core, retry_in_ms = wait.as_millis() as u64, "cannot reach the core");
                        self.cores.move_on();
                        core_retry_at = Instant::now() + wait;
                    }
                }
            }
            let wake = match (self.management.is_none(), self.stream.is_none()) {
                (true, true) => management_retry_at.min(core_retry_at),
                (true, false) => management_retry_at,
                (false, true) => core_retry_at,
                (false, false) => Instant::now() + Duration::from_secs(3600),
            };
            let step = {
                let events = self.events.as_mut();
                let inbound = self.stream.as_mut().map(|stream| &mut stream.inbound);
                tokio::select! {
                    event = async {
                        match events {
                            Some(events) => events.recv().await,
                            None => std::future::pending().await,
                        }
                    } => Step::Management(event),
                    message = async {
                        match inbound {
                            Some(inbound) => inbound.message().await,
                            None => std::future::pending().await,
                        }
                    } => Step::Core(message),
                    _ = heartbeat.tick() => Step::Heartbeat,
                    _ = firewall_check.tick(), if self.firewall.is_some() => Step::FirewallCheck,
                    () = tokio::time::sleep_until(wake) => Step::Retry,
                    () = &mut shutdown => Step::Shutdown,
                }
            };
            match step {
                Step::Management(Some(ManagementEvent::Closed) | None) => {
                    tracing::warn!("lost the OpenVPN management interface");
                    self.management = None;
                    self.events = None;
                    management_retry_at = Instant::now() + management_backoff.next_delay();
                }
                Step::Management(Some(event)) => self.on_management_event(event).await,
                Step::Core(Ok(Some(message))) => self.on_core_message(message).await,
                Step::Core(result) => {
                    self.lost_core().await;
                    // Another node (if there is one) is tried first.
                    self.cores.move_on();
                    match result.err().map(|status| AgentError::from_status("the stream to the core", &status)) {
                        Some(error) if !error.is_transient() => return Err(error),
                        Some(error) => {
                            // A core that said why (shutting down, say) is left at once:
                            // the next attempt comes within the first backoff step.
                            tracing::warn!(%error, "the stream to the core ended");
                            core_backoff.reset();
                        }
                        None => tracing::warn!("the core closed the stream"),
                    }
                    core_retry_at = Instant::now() + core_backoff.next_delay();
                }
                Step::Heartbeat => {
                    self.expire_verdicts().await;
                    self.send_heartbeat().await;
                }
                Step::FirewallCheck => self.repair_firewall_if_drifted().await,
                Step::Retry => {}
                Step::Shutdown => return Ok(()),
            }
        }
    }

    /// Connects to OpenVPN's management interface and reconciles with its client list.
    async fn attach_management(&mut self) -> Result<(), String> {
        let (management, events) = match self.settings.management.parse::<std::net::SocketAddr>() {
            Ok(_) => management::connect(&self.settings.management).await.map_err(|e| e.to_string())?,
            Err(_) => {
                let socket =
                    tokio::net::UnixStream::connect(&self.settings.management).await.map_err(|e| e.to_string())?;
                ManagementClient::from_stream(socket)
            }
        };
        let live = management.status().await.map_err(|e| e.to_string())?;
        tracing::info!(clients = live.len(), "attached to OpenVPN");
        let mut seen = BTreeMap::new();
        // A client that connected while no one listened here waits for a verdict it will
        // never get (its CLIENT:CONNECT went to no one); it has no tunnel address yet.
        let mut unanswered = Vec::new();
        for client in live {
            let known = self.clients.remove(&client.cid);
            if known.is_none() && client.vpn_address.is_empty() {
                unanswered.push(client.cid);
                continue;
            }
            let vpn_address = client.vpn_address.parse().ok();
            seen.insert(
                client.cid,
                known.unwrap_or(LocalClient {
                    common_name: client.common_name,
                    serial: String::new(),
                    real_address: client.real_address,
                    vpn_address,
                    session_key: format!("{}-{}", client.cid, client.connected_since),
                    connected_at: client.connected_since,
                    // A spoke's networks come back from the ledger just below.
                    iroutes: Vec::new(),
                }),
            );
        }
        // Clients we knew that OpenVPN no longer has went away while we were not looking.
        for (_, gone) in std::mem::replace(&mut self.clients, seen) {
            if gone.vpn_address.is_some() {
                self.report_disconnect(&gone, None).await;
            }
        }
        self.reconcile_spoke_routes().await;
        for cid in unanswered {
            tracing::info!(cid, "restarting a client that connected before the agent attached");
            if let Err(error) = management.client_restart(cid).await {
                tracing::warn!(%error, cid, "client-kill failed");
            }
        }
        self.management = Some(management);
        self.events = Some(events);
        self.enforce().await;
        Ok(())
    }

    /// Opens the stream: hello (with the live sessions), then the core's welcome.
    async fn open_stream(&mut self) -> Result<(), AgentError> {
        let (outbound, receiver) = mpsc::channel(256);
        let live_sessions = self.clients.values().filter(|c| c.vpn_address.is_some()).map(connected_report).collect();
        let hello = AgentBody::Hello(Hello {
            agent_version: env!("CARGO_PKG_VERSION").into(),
            openvpn_version: String::new(),
            live_sessions,
            applied_rules_version: self.applied_version,
        });
        let refused = |status: tonic::Status| AgentError::from_status("opening the stream", &status);
        if outbound.send(AgentMessage { request_id: 0, body: Some(hello) }).await.is_err() {
            return Err(AgentError::Transient("the stream closed before hello".into()));
        }
        let request = with_token(ReceiverStream::new(receiver), &self.settings.token);
        let mut inbound = self.cores.client().open_stream(request).await.map_err(refused)?.into_inner();
        let first = tokio::time::timeout(Duration::from_secs(10), inbound.message())
            .await
            .map_err(|_| AgentError::Transient("no welcome from the core".into()))?
            .map_err(refused)?;
        match first.and_then(|message| message.body) {
            Some(CoreBody::Welcome(welcome)) => {
                tracing::info!(gateway = %welcome.gateway_id, core = %self.cores.url(), "connected to the core");
                self.heartbeat_every = Duration::from_secs(u64::from(welcome.heartbeat_interval_seconds.max(1)));
            }
            _ => return Err(AgentError::Transient("the core did not answer hello with welcome".into())),
        }
        self.stream = Some(CoreStream { outbound, inbound });
        self.core_lost_at = None;
        // Everything the core has not acknowledged goes again, in order.
        let pending: Vec<_> = self.reports.iter().cloned().collect();
        for (request_id, body) in pending {
            self.send(request_id, body).await;
        }
        Ok(())
    }

    /// Queues a message on the stream; a failure closes the stream for a reconnect.
    async fn send(&mut self, request_id: u64, body: AgentBody) {
        let Some(stream) = &self.stream else { return };
        if stream.outbound.send(AgentMessage { request_id, body: Some(body) }).await.is_err() {
            self.lost_core().await;
        }
    }

    async fn lost_core(&mut self) {
        self.stream = None;
        self.core_lost_at.get_or_insert_with(Instant::now);
        // Verdicts that will never come: fail closed.
        let awaited: Vec<_> = self.awaited.drain().map(|(_, verdict)| verdict).collect();
        for verdict in awaited {
            self.deny(verdict, "the control plane is unreachable").await;
        }
    }

    /// Refuses clients whose verdict is overdue: a lost answer must not leave them hanging.
    async fn expire_verdicts(&mut self) {
        let overdue: Vec<u64> =
            self.awaited.iter().filter(|(_, v)| v.asked.elapsed() > VERDICT_TIMEOUT).map(|(id, _)| *id).collect();
        for id in overdue {
            if let Some(verdict) = self.awaited.remove(&id) {
                self.deny(verdict, "the control plane did not answer in time").await;
            }
        }
    }

    async fn send_heartbeat(&mut self) {
        let load_average = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|text| text.split_whitespace().next().and_then(|v| v.parse().ok()))
            .unwrap_or(0.0);
        let heartbeat = HeartbeatRequest {
            connected_clients: u32::try_from(self.clients.len()).unwrap_or(u32::MAX),
            load_average,
            openvpn_running: self.management.is_some(),
            config_version: 0,
            session_bytes: self.session_bytes().await,
        };
        let request_id = self.request_id();
        self.send(request_id, AgentBody::Heartbeat(heartbeat)).await;
    }

    /// What each known session has carried, from OpenVPN's `status`; nothing when
    /// OpenVPN cannot say (the heartbeat goes out regardless).
    async fn session_bytes(&self) -> Vec<SessionBytes> {
        let Some(management) = &self.management else { return Vec::new() };
        let live = match management.status().await {
            Ok(live) => live,
            Err(error) => {
                tracing::debug!(%error, "no byte counts for this heartbeat");
                return Vec::new();
            }
        };
        live.into_iter()
            .filter_map(|client| {
                let known = self.clients.get(&client.cid)?;
                Some(SessionBytes {
                    session_key: known.session_key.clone(),
                    bytes_received: client.bytes_received,
                    bytes_sent: client.bytes_sent,
                })
            })
            .collect()
    }

    async fn on_management_event(&mut self, event: ManagementEvent) {
        match event {
            ManagementEvent::Connect { cid, kid, env } => self.verify(cid, kid, &env, false).await,
            ManagementEvent::Reauth { cid, kid, env } => {
                if self.stream.is_some() {
                    self.verify(cid, kid, &env, true).await;
                } else if self.core_lost_at.is_some_and(|lost| lost.elapsed() > OUTAGE_GRACE) {
                    let awaited = AwaitedVerdict { cid, kid, renegotiation: true, asked: Instant::now() };
                    self.deny(awaited, "the control plane has been unreachable for too long").await;
                } else if let Some(management) = &self.management {
                    // Keep live sessions through a brief control-plane outage; new ones are refused.
                    let _ = management.client_auth_nt(cid, kid).await;
                }
            }
            ManagementEvent::Established { cid, env } => self.established(cid, &env).await,
            ManagementEvent::Disconnect { cid, env } => {
                if let Some(client) = self.clients.remove(&cid) {
                    if client.vpn_address.is_some() {
                        self.report_disconnect(&client, Some(&env)).await;
                    }
                    for network in &client.iroutes {
                        if !self.clients.values().any(|other| other.iroutes.contains(network)) {
                            route_into_tunnel(&self.settings.tun, network, false).await;
                        }
                    }
                    if !client.iroutes.is_empty() {
                        self.save_spoke_routes();
                    }
                    self.enforce().await;
                }
            }
            ManagementEvent::Address { .. } | ManagementEvent::Closed => {}
        }
    }

    async fn verify(&mut self, cid: u64, kid: u64, env: &ClientEnv, renegotiation: bool) {
        let awaited = AwaitedVerdict { cid, kid, renegotiation, asked: Instant::now() };
        let (Some(common_name), Some(serial)) = (env.common_name(), env.serial_hex()) else {
            return self.deny(awaited, "the client presented no certificate name or serial").await;
        };
        if !renegotiation {
            self.clients.insert(
                cid,
                LocalClient {
                    common_name: common_name.to_owned(),
                    serial: serial.clone(),
                    real_address: env.real_address().unwrap_or_default().to_owned(),
                    vpn_address: None,
                    session_key: String::new(),
                    connected_at: 0,
                    iroutes: Vec::new(),
                },
            );
        }
        if self.stream.is_none() {
            return self.deny(awaited, "the control plane is unreachable").await;
        }
        let request_id = self.request_id();
        self.awaited.insert(request_id, awaited);
        let request = VerifyRequest {
            common_name: common_name.to_owned(),
            serial,
            client_address: env.real_address().unwrap_or_default().to_owned(),
        };
        self.send(request_id, AgentBody::Verify(request)).await;
    }

    async fn deny(&mut self, verdict: AwaitedVerdict, reason: &str) {
        tracing::info!(cid = verdict.cid, %reason, "denying client");
        if !verdict.renegotiation {
            self.clients.remove(&verdict.cid);
        }
        if let Some(management) = &self.management
            && let Err(error) = management.client_deny(verdict.cid, verdict.kid, reason, "access denied").await
        {
            tracing::warn!(%error, "client-deny failed");
        }
    }

    async fn on_verdict(&mut self, request_id: u64, verdict: VerifyResponse) {
        let Some(awaited) = self.awaited.remove(&request_id) else { return };
        if !verdict.allowed {
            return self.deny(awaited, &verdict.reason).await;
        }
        let lines = client_config_lines(&verdict.push_routes, &verdict.iroutes);
        // A spoke's networks are learnt when its tunnel comes up (the core renews the
        // tunnel when they change).
        let spoke_joined = match self.clients.get_mut(&awaited.cid) {
            Some(client) if !awaited.renegotiation => {
                client.iroutes.clone_from(&verdict.iroutes);
                !client.iroutes.is_empty()
            }
            _ => false,
        };
        // A snapshot newer than the verdict already holds this identity's current rules.
        if verdict.rules_version >= self.applied_version
            && let Some(client) = self.clients.get(&awaited.cid)
        {
            let rules = ClientRules {
                common_name: client.common_name.clone(),
                user_id: verdict.user_id,
                rules: verdict.rules,
                push_routes: verdict.push_routes,
            };
            self.identities.insert(client.common_name.clone(), rules);
        }
        if let Some(management) = &self.management
            && let Err(error) = management.client_auth(awaited.cid, awaited.kid, &lines).await
        {
            tracing::warn!(%error, "client-auth failed");
        }
        if spoke_joined {
            // The ledger first: a crash in between must not leave a route nobody knows.
            self.save_spoke_routes();
            for network in &verdict.iroutes {
                route_into_tunnel(&self.settings.tun, network, true).await;
            }
        }
        if awaited.renegotiation {
            self.enforce().await;
        }
    }

    async fn established(&mut self, cid: u64, env: &ClientEnv) {
        let Some(client) = self.clients.get_mut(&cid) else { return };
        client.vpn_address = env.vpn_address().and_then(|a| a.parse().ok());
        client.connected_at = env.get("time_unix").and_then(|t| t.parse().ok()).unwrap_or_else(now);
        client.session_key = format!("{cid}-{}", client.connected_at);
        let report = connected_report(client);
        self.enforce().await;
        let request_id = self.request_id();
        self.reports.push_back((request_id, AgentBody::ClientConnected(report.clone())));
        self.send(request_id, AgentBody::ClientConnected(report)).await;
    }

    async fn report_disconnect(&mut self, client: &LocalClient, env: Option<&ClientEnv>) {
        let report = ClientDisconnected {
            session_key: client.session_key.clone(),
            common_name: client.common_name.clone(),
            serial: client.serial.clone(),
            duration_seconds: env.and_then(ClientEnv::duration_seconds).unwrap_or(0),
            bytes_received: env.and_then(ClientEnv::bytes_received).unwrap_or(0),
            bytes_sent: env.and_then(ClientEnv::bytes_sent).unwrap_or(0),
            disconnected_at: Some(prost_types::Timestamp { seconds: now(), nanos: 0 }),
        };
        let request_id = self.request_id();
        self.reports.push_back((request_id, AgentBody::ClientDisconnected(report.clone())));
        self.send(request_id, AgentBody::ClientDisconnected(report)).await;
    }

    async fn on_core_message(&mut self, message: CoreMessage) {
        let request_id = message.request_id;
        match message.body {
            Some(CoreBody::VerifyResult(verdict)) => self.on_verdict(request_id, verdict).await,
            Some(CoreBody::RuleSnapshot(snapshot)) => self.on_snapshot(snapshot).await,
            Some(CoreBody::ReportAck(_)) => self.reports.retain(|(id, _)| *id != request_id),
            Some(CoreBody::KillSession(kill)) => self.kill(&kill).await,
            // CRLs from several core nodes may cross: never go back to an older one.
            Some(CoreBody::CrlUpdate(crl)) if crl.number < self.crl_number => {
                tracing::debug!(number = crl.number, installed = self.crl_number, "ignored an older CRL");
            }
            Some(CoreBody::CrlUpdate(crl)) => {
                match write_atomically(&self.settings.state_dir, files::CRL, &crl.pem, false) {
                    Ok(_) => {
                        self.crl_number = crl.number;
                        tracing::info!(number = crl.number, "installed a new CRL");
                    }
                    Err(error) => tracing::error!(%error, "cannot write the CRL"),
                }
            }
            Some(CoreBody::Reprovision(reprovision)) => {
                tracing::warn!(reason = %reprovision.reason, "the core asks for reprovisioning; restart the agent to apply it")
            }
            Some(CoreBody::Welcome(_) | CoreBody::HeartbeatAck(_)) | None => {}
        }
    }

    async fn on_snapshot(&mut self, snapshot: RuleSnapshot) {
        if snapshot.version < self.applied_version {
            return;
        }
        self.identities = snapshot.clients.into_iter().map(|client| (client.common_name.clone(), client)).collect();
        self.applied_version = snapshot.version;
        tracing::info!(version = snapshot.version, clients = self.identities.len(), "applied rules");
        self.enforce().await;
        self.send(0, AgentBody::RulesApplied(RulesApplied { version: snapshot.version })).await;
    }

    async fn kill(&mut self, kill: &KillSession) {
        let targets: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, c)| {
                c.common_name == kill.common_name
                    && (c.serial.is_empty() || kill.serial.is_empty() || c.serial == kill.serial)
            })
            .map(|(cid, _)| *cid)
            .collect();
        let Some(management) = &self.management else { return };
        for cid in targets {
            tracing::info!(cid, common_name = %kill.common_name, reason = %kill.reason, "killing session");
            if let Err(error) = management.client_kill(cid, &kill.reason).await {
                tracing::warn!(%error, cid, "client-kill failed");
            }
        }
    }

    /// Writes the ledger of the spokes' networks routed into the tunnel now.
    fn save_spoke_routes(&self) {
        let routes = self
            .clients
            .values()
            .filter(|client| !client.iroutes.is_empty())
            .map(|client| (client.common_name.clone(), client.iroutes.clone()))
            .collect();
        if let Err(error) = write_atomically(&self.settings.state_dir, LEDGER, &render_ledger(&routes), false) {
            tracing::warn!(%error, "cannot write the spoke route ledger");
        }
    }

    /// After a restart: gives live spokes their networks back from the ledger, and
    /// removes the routes of spokes that left while the agent was away.
    async fn reconcile_spoke_routes(&mut self) {
        let path = self.settings.state_dir.join(LEDGER);
        let ledger = parse_ledger(&std::fs::read_to_string(&path).unwrap_or_default());
        if ledger.is_empty() {
            return;
        }
        for client in self.clients.values_mut().filter(|client| client.iroutes.is_empty()) {
            if let Some(networks) = ledger.get(&client.common_name) {
                client.iroutes.clone_from(networks);
            }
        }
        for network in ledger.values().flatten() {
            if !self.clients.values().any(|client| client.iroutes.contains(network)) {
                route_into_tunnel(&self.settings.tun, network, false).await;
            }
        }
        self.save_spoke_routes();
    }

    /// Brings nftables in line with the clients that are up and their identities' rules.
    async fn enforce(&mut self) {
        let Some(firewall) = &mut self.firewall else { return };
        let mut desired = BTreeMap::new();
        for client in self.clients.values() {
            if let Some(address) = client.vpn_address {
                let rules = match self.identities.get(&client.common_name) {
                    Some(identity) => resolve_hostnames(identity.rules.clone(), &identity.push_routes).await,
                    None => Vec::new(),
                };
                desired.insert(address, rules);
            }
        }
        if let Err(error) = firewall.apply(desired.clone()).await {
            // Perhaps the table is gone: start over from a fresh table, in full.
            tracing::error!(%error, "applying firewall rules failed; reinstalling the table");
            let reapplied = match firewall.install().await {
                Ok(()) => firewall.apply(desired).await.map(drop),
                Err(error) => Err(error),
            };
            if let Err(error) = reapplied {
                tracing::error!(%error, "reinstalling the firewall failed");
            }
        }
    }

    /// Reinstalls the nftables table and reapplies every client's rules if the table no
    /// longer holds what was applied (someone flushed or deleted it).
    async fn repair_firewall_if_drifted(&mut self) {
        let Some(firewall) = &mut self.firewall else { return };
        if firewall.is_intact().await {
            return;
        }
        tracing::warn!(
            "the nftables table was changed behind the agent's back; reinstalling it and every client's rules"
        );
        if let Err(error) = firewall.install().await {
            tracing::error!(%error, "reinstalling the firewall failed");
            return;
        }
        self.enforce().await;
    }
}

/// Replaces host-name destinations by their IPv4 addresses inside the identity's
/// networks (`routes`), dropping the rest; the result is sorted, so DNS answering in
/// another order does not look like a change.
async fn resolve_hostnames(rules: Vec<FirewallRule>, routes: &[String]) -> Vec<FirewallRule> {
    let networks: Vec<(u32, u32)> = routes
        .iter()
        .filter_map(|cidr| crate::material::network_and_mask(cidr))
        .map(|(network, mask)| (u32::from(network), u32::from(mask)))
        .collect();
    let inside = |address: Ipv4Addr| networks.iter().any(|(network, mask)| u32::from(address) & mask == *network);
    let mut resolved = Vec::with_capacity(rules.len());
    for rule in rules {
        let is_address = rule.destination.split('/').next().is_some_and(|a| a.parse::<std::net::IpAddr>().is_ok());
        if is_address {
            resolved.push(rule);
            continue;
        }
        match tokio::net::lookup_host((rule.destination.as_str(), 0)).await {
            Ok(addresses) => {
                for address in addresses {
                    match address.ip() {
                        std::net::IpAddr::V4(v4) if inside(v4) => {
                            resolved.push(FirewallRule { destination: format!("{v4}/32"), ..rule.clone() });
                        }
                        other => {
                            tracing::warn!(host = %rule.destination, address = %other, "resolved outside the rule's network; ignored")
                        }
                    }
                }
            }
            Err(error) => tracing::warn!(host = %rule.destination, %error, "cannot resolve rule destination"),
        }
    }
    resolved.sort_by(|a, b| {
        (&a.destination, &a.protocol, a.port_from, a.port_to).cmp(&(
            &b.destination,
            &b.protocol,
            b.port_from,
            b.port_to,
        ))
    });
    resolved.dedup();
    resolved
}

fn connected_report(client: &LocalClient) -> ClientConnected {
    ClientConnected {
        session_key: client.session_key.clone(),
        common_name: client.common_name.clone(),
        serial: client.serial.clone(),
        vpn_address: client.vpn_address.map(|a| a.to_string()).unwrap_or_default(),
        client_address: client.real_address.clone(),
        connected_at: Some(prost_types::Timestamp { seconds: client.connected_at, nanos: 0 }),
    }
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! { _ = interrupt => {}, _ = terminate.recv() => {} }
        }
        Err(_) => {
            let _ = interrupt.await;
        }
    }
}
