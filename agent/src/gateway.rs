//! The gateway agent's drivers and event loop: OpenVPN management events on one side,
//! the core's stream on the other, and nftables, routes and files to keep in line. What
//! to do is decided by [`GatewayState`] (no I/O there); this module turns what happens
//! into its [`Event`]s and carries out the [`Effect`]s it answers.

use crate::config::AgentSettings;
use crate::error::AgentError;
use crate::gateway_state::{Effect, Event, GatewayState, Presented, SessionUsage};
use crate::link::{Backoff, CoreNodes, with_token};
use crate::management::{self, ClientEnv, ManagementClient, ManagementEvent};
use crate::material::{files, write_atomically};
use crate::nft::{Firewall, SystemRunner};
use crate::resolver::{HostResolver, Lookup};
use crate::spoke_routes::{LEDGER, parse_ledger, render_ledger, route_into_tunnel};
use gatekey::v1::agent_message::Body as AgentBody;
use gatekey::v1::core_message::Body as CoreBody;
use gatekey::v1::*;
use std::collections::{BTreeMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

/// The open stream to the core.
struct CoreStream {
    outbound: mpsc::Sender<AgentMessage>,
    inbound: Streaming<CoreMessage>,
}

/// What woke the loop.
enum Step {
    Management(Option<ManagementEvent>),
    Core(Result<Option<CoreMessage>, tonic::Status>),
    Resolved(Lookup),
    VerdictCheck,
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

/// The nftables driver: the firewall, the host names its rules name (and the receiver
/// of their finished lookups), and the desired state last asked for (applied again when
/// a name resolves differently or the table drifted).
struct FirewallDriver {
    firewall: Firewall<SystemRunner>,
    resolver: HostResolver,
    lookups: mpsc::UnboundedReceiver<Lookup>,
    desired: BTreeMap<Ipv4Addr, ClientRules>,
}

impl FirewallDriver {
    /// Brings nftables in line with `desired` (each tunnel address's identity rules).
    async fn enforce(&mut self, desired: BTreeMap<Ipv4Addr, ClientRules>) {
        self.desired = desired;
        self.apply().await;
    }

    /// Applies the desired state, host names as the cache resolves them now (the cache
    /// keeps only the names the desired state names).
    async fn apply(&mut self) {
        let in_use: std::collections::HashSet<&str> = self
            .desired
            .values()
            .flat_map(|identity| identity.rules.iter().map(|rule| rule.destination.as_str()))
            .collect();
        self.resolver.keep_only(&in_use);
        let resolved: BTreeMap<Ipv4Addr, Vec<FirewallRule>> = self
            .desired
            .iter()
            .map(|(address, identity)| (*address, self.resolver.resolve(&identity.rules, &identity.push_routes)))
            .collect();
        if let Err(error) = self.firewall.apply(resolved.clone()).await {
            // Perhaps the table is gone: start over from a fresh table, in full.
            tracing::error!(%error, "applying firewall rules failed; reinstalling the table");
            let reapplied = match self.firewall.install().await {
                Ok(()) => self.firewall.apply(resolved).await.map(drop),
                Err(error) => Err(error),
            };
            if let Err(error) = reapplied {
                tracing::error!(%error, "reinstalling the firewall failed");
            }
        }
    }

    /// Takes a finished lookup, and applies the rules again if the name moved.
    async fn resolved(&mut self, lookup: Lookup) {
        if self.resolver.learn(lookup) {
            self.apply().await;
        }
    }

    /// Reinstalls the table and applies every client's rules again if the table no
    /// longer holds what was applied (someone flushed or deleted it); looks up stale
    /// host names again.
    async fn check(&mut self) {
        self.resolver.refresh_stale();
        if self.firewall.is_intact().await {
            return;
        }
        tracing::warn!(
            "the nftables table was changed behind the agent's back; reinstalling it and every client's rules"
        );
        if let Err(error) = self.firewall.install().await {
            tracing::error!(%error, "reinstalling the firewall failed");
            return;
        }
        self.apply().await;
    }
}

/// The gateway agent: its state and the drivers that carry out what it decides.
pub struct Gateway {
    settings: AgentSettings,
    cores: CoreNodes,
    state: GatewayState,
    management: Option<ManagementClient>,
    events: Option<mpsc::UnboundedReceiver<ManagementEvent>>,
    firewall: Option<FirewallDriver>,
    stream: Option<CoreStream>,
    heartbeat_every: Duration,
}

impl Gateway {
    /// A gateway agent for these settings, talking to the core nodes `cores`.
    pub fn new(settings: AgentSettings, cores: CoreNodes, firewall: Option<Firewall<SystemRunner>>) -> Gateway {
        let firewall = firewall.map(|firewall| {
            let (resolver, lookups) = HostResolver::new();
            FirewallDriver { firewall, resolver, lookups, desired: BTreeMap::new() }
        });
        Gateway {
            settings,
            cores,
            state: GatewayState::new(std::time::Instant::now()),
            management: None,
            events: None,
            firewall,
            stream: None,
            heartbeat_every: Duration::from_secs(30),
        }
    }

    /// Runs until SIGINT/SIGTERM, or until the core refuses this agent for good.
    pub async fn run(mut self) -> Result<(), AgentError> {
        let mut core_backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
        let mut management_backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let (mut core_retry_at, mut management_retry_at) = (Instant::now(), Instant::now());
        let mut heartbeat = tokio::time::interval(self.heartbeat_every);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Overdue verdicts are refused within a second of their deadline.
        let mut verdict_check = tokio::time::interval(Duration::from_secs(1));
        verdict_check.set_missed_tick_behavior(MissedTickBehavior::Delay);
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
                let has_firewall = self.firewall.is_some();
                let lookups = self.firewall.as_mut().map(|firewall| &mut firewall.lookups);
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
                    Some(lookup) = async {
                        match lookups {
                            Some(lookups) => lookups.recv().await,
                            None => std::future::pending().await,
                        }
                    } => Step::Resolved(lookup),
                    _ = verdict_check.tick() => Step::VerdictCheck,
                    _ = heartbeat.tick() => Step::Heartbeat,
                    _ = firewall_check.tick(), if has_firewall => Step::FirewallCheck,
                    () = tokio::time::sleep_until(wake) => Step::Retry,
                    () = &mut shutdown => Step::Shutdown,
                }
            };
            match step {
                Step::Management(Some(ManagementEvent::Closed) | None) => {
                    tracing::warn!("lost the OpenVPN management interface");
                    self.management = None;
                    self.events = None;
                    self.handle(Event::ServerLost).await;
                    management_retry_at = Instant::now() + management_backoff.next_delay();
                }
                Step::Management(Some(event)) => {
                    if let Some(event) = Gateway::event_of(event) {
                        self.handle(event).await;
                    }
                }
                Step::Core(Ok(Some(message))) => self.handle(Event::FromCore(message)).await,
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
                Step::Resolved(lookup) => {
                    if let Some(firewall) = &mut self.firewall {
                        firewall.resolved(lookup).await;
                    }
                }
                Step::VerdictCheck => self.handle(Event::Tick { at: std::time::Instant::now() }).await,
                Step::Heartbeat => self.heartbeat().await,
                Step::FirewallCheck => {
                    if let Some(firewall) = &mut self.firewall {
                        firewall.check().await;
                    }
                }
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
        let ledger = parse_ledger(&std::fs::read_to_string(self.settings.state_dir.join(LEDGER)).unwrap_or_default());
        self.management = Some(management);
        self.events = Some(events);
        self.handle(Event::ServerAttached { live, ledger, at: now() }).await;
        Ok(())
    }

    /// Opens the stream: hello (with the live sessions), then the core's welcome.
    async fn open_stream(&mut self) -> Result<(), AgentError> {
        let (outbound, receiver) = mpsc::channel(256);
        let refused = |status: tonic::Status| AgentError::from_status("opening the stream", &status);
        let hello = AgentMessage { request_id: 0, body: Some(AgentBody::Hello(self.state.hello())) };
        if outbound.send(hello).await.is_err() {
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
        self.handle(Event::CoreConnected).await;
        Ok(())
    }

    /// The stream to the core is gone.
    async fn lost_core(&mut self) {
        self.stream = None;
        self.handle(Event::CoreLost { at: std::time::Instant::now() }).await;
    }

    /// What OpenVPN told, as an event of the state (none for what it need not hear).
    fn event_of(event: ManagementEvent) -> Option<Event> {
        let asks = |cid, kid, env: &ClientEnv, renegotiation| Event::ClientAsks {
            cid,
            kid,
            presented: Presented {
                common_name: env.common_name().map(str::to_owned),
                serial: env.serial_hex(),
                real_address: env.real_address().unwrap_or_default().to_owned(),
            },
            renegotiation,
            at: std::time::Instant::now(),
        };
        match event {
            ManagementEvent::Connect { cid, kid, env } => Some(asks(cid, kid, &env, false)),
            ManagementEvent::Reauth { cid, kid, env } => Some(asks(cid, kid, &env, true)),
            ManagementEvent::Established { cid, env } => Some(Event::ClientUp {
                cid,
                vpn_address: env.vpn_address().and_then(|a| a.parse().ok()),
                connected_at: env.get("time_unix").and_then(|t| t.parse().ok()).unwrap_or_else(now),
            }),
            ManagementEvent::Disconnect { cid, env } => Some(Event::ClientGone {
                cid,
                usage: SessionUsage {
                    duration_seconds: env.duration_seconds().unwrap_or(0),
                    bytes_received: env.bytes_received().unwrap_or(0),
                    bytes_sent: env.bytes_sent().unwrap_or(0),
                },
                at: now(),
            }),
            ManagementEvent::Address { .. } | ManagementEvent::Closed => None,
        }
    }

    /// A heartbeat, with what OpenVPN says each session carried (nothing when it cannot
    /// say: the heartbeat goes out regardless).
    async fn heartbeat(&mut self) {
        let live = match &self.management {
            Some(management) => match management.status().await {
                Ok(live) => Some(live),
                Err(error) => {
                    tracing::debug!(%error, "no byte counts for this heartbeat");
                    None
                }
            },
            None => None,
        };
        let load_average = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|text| text.split_whitespace().next().and_then(|v| v.parse().ok()))
            .unwrap_or(0.0);
        let server_attached = self.management.is_some();
        self.handle(Event::HeartbeatDue { live, load_average, server_attached }).await;
    }

    /// Hands `event` to the state and carries out what it answers, in order. A message
    /// the stream cannot take loses the stream, whose effects follow.
    async fn handle(&mut self, event: Event) {
        let mut effects: VecDeque<Effect> = self.state.handle(event).into();
        while let Some(effect) = effects.pop_front() {
            match effect {
                Effect::Send(message) => {
                    let Some(stream) = &self.stream else { continue };
                    if stream.outbound.send(message).await.is_err() {
                        self.stream = None;
                        effects.extend(self.state.handle(Event::CoreLost { at: std::time::Instant::now() }));
                    }
                }
                Effect::Enforce(desired) => {
                    if let Some(firewall) = &mut self.firewall {
                        firewall.enforce(desired).await;
                    }
                }
                Effect::Route { network, present } => route_into_tunnel(&self.settings.tun, &network, present).await,
                Effect::SaveSpokeRoutes(routes) => {
                    if let Err(error) =
                        write_atomically(&self.settings.state_dir, LEDGER, &render_ledger(&routes), false)
                    {
                        tracing::warn!(%error, "cannot write the spoke route ledger");
                    }
                }
                Effect::InstallCrl { pem, number } => {
                    match write_atomically(&self.settings.state_dir, files::CRL, &pem, false) {
                        Ok(_) => {
                            tracing::info!(number, "installed a new CRL");
                            effects.extend(self.state.handle(Event::CrlInstalled { number }));
                        }
                        Err(error) => tracing::error!(%error, "cannot write the CRL"),
                    }
                }
                effect => self.answer_client(effect).await,
            }
        }
    }

    /// Carries out an answer to OpenVPN about one client.
    async fn answer_client(&self, effect: Effect) {
        let Some(management) = &self.management else { return };
        let (done, what) = match effect {
            Effect::Allow { cid, kid, config_lines } => {
                (management.client_auth(cid, kid, &config_lines).await, "client-auth")
            }
            Effect::KeepSession { cid, kid } => (management.client_auth_nt(cid, kid).await, "client-auth-nt"),
            Effect::Deny { cid, kid, reason } => {
                tracing::info!(cid, %reason, "denying client");
                (management.client_deny(cid, kid, &reason, "access denied").await, "client-deny")
            }
            Effect::Kill { cid, reason } => {
                tracing::info!(cid, %reason, "killing session");
                (management.client_kill(cid, &reason).await, "client-kill")
            }
            Effect::Restart { cid } => {
                tracing::info!(cid, "restarting a client that connected before the agent attached");
                (management.client_restart(cid).await, "client-kill")
            }
            _ => return,
        };
        if let Err(error) = done {
            tracing::warn!(%error, "{what} failed");
        }
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
