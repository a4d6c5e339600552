//! The gateway agent's state, without I/O. It takes what happens (a client asking to
//! connect, a verdict or a rule snapshot from the core, the core lost, a tick) as
//! [`Event`]s and answers the [`Effect`]s to carry out: messages for the core, answers
//! for the VPN server, kills, the firewall's desired state, spoke routes and files. The
//! drivers in [`crate::gateway`] do the I/O. Time comes in with the events, so every
//! rule here (verdict timeouts, the outage grace, renegotiation, report resending) is
//! tested without a clock, a socket or a VPN server.

use crate::management::LiveClient;
use crate::material::client_config_lines;
use gatekey::v1::agent_message::Body as AgentBody;
use gatekey::v1::core_message::Body as CoreBody;
use gatekey::v1::*;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// How long a verdict may take before the client is refused.
pub const VERDICT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long live sessions may renegotiate without the core before they are refused.
pub const OUTAGE_GRACE: Duration = Duration::from_secs(3600);

/// Who a connecting client says it is, from its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    /// The certificate's common name; `None` when the VPN server gave none.
    pub common_name: Option<String>,
    /// The certificate's serial, canonical hex; `None` when the VPN server gave none.
    pub serial: Option<String>,
    /// The client's public address.
    pub real_address: String,
}

/// What a session carried, as the VPN server tells it when the client goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionUsage {
    /// How long the session lasted, in seconds.
    pub duration_seconds: u64,
    /// Bytes received from the client.
    pub bytes_received: u64,
    /// Bytes sent to the client.
    pub bytes_sent: u64,
}

/// Something that happened, for [`GatewayState::handle`].
#[derive(Debug, Clone)]
pub enum Event {
    /// A client asks to connect (`renegotiation`: a connected one renews its keys).
    ClientAsks {
        /// The VPN server's client id.
        cid: u64,
        /// The VPN server's key id.
        kid: u64,
        /// Who it says it is.
        presented: Presented,
        /// Whether it is a renegotiation of a live session.
        renegotiation: bool,
        /// When it asked.
        at: Instant,
    },
    /// A client's tunnel is up.
    ClientUp {
        /// The VPN server's client id.
        cid: u64,
        /// Its address inside the tunnel.
        vpn_address: Option<Ipv4Addr>,
        /// When it connected (Unix seconds).
        connected_at: i64,
    },
    /// A client went away.
    ClientGone {
        /// The VPN server's client id.
        cid: u64,
        /// What its session carried.
        usage: SessionUsage,
        /// When (Unix seconds).
        at: i64,
    },
    /// The VPN server was (re)attached: the clients it lists now, and the ledger of spoke
    /// routes written before (empty when there is none).
    ServerAttached {
        /// The clients it lists.
        live: Vec<LiveClient>,
        /// Spoke common name → networks routed into the tunnel, from the ledger.
        ledger: BTreeMap<String, Vec<String>>,
        /// Now, Unix seconds.
        at: i64,
    },
    /// The VPN server's management connection is gone (the server may restart, and
    /// number its clients from scratch).
    ServerLost,
    /// A CRL was written where the VPN server reads it.
    CrlInstalled {
        /// Its number.
        number: u64,
    },
    /// A stream to the core is open (its welcome received).
    CoreConnected,
    /// The stream to the core is gone.
    CoreLost {
        /// When.
        at: Instant,
    },
    /// A message from the core.
    FromCore(CoreMessage),
    /// Time passed: overdue verdicts are refused.
    Tick {
        /// Now.
        at: Instant,
    },
    /// A heartbeat is due.
    HeartbeatDue {
        /// The clients the VPN server lists with their byte counts (`None`: it cannot say).
        live: Option<Vec<LiveClient>>,
        /// The host's one-minute load average.
        load_average: f64,
        /// Whether the VPN server is attached.
        server_attached: bool,
    },
}

/// What to do, in order, as [`GatewayState::handle`] answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send this to the core (dropped while no stream is open: what must arrive is kept
    /// and sent again when one opens).
    Send(AgentMessage),
    /// Let the client in, with these lines of client config.
    Allow {
        /// Client id.
        cid: u64,
        /// Key id.
        kid: u64,
        /// Config lines pushed to it.
        config_lines: Vec<String>,
    },
    /// Let a renegotiating client keep its session unchanged (the core is away).
    KeepSession {
        /// Client id.
        cid: u64,
        /// Key id.
        kid: u64,
    },
    /// Refuse the client, telling it why.
    Deny {
        /// Client id.
        cid: u64,
        /// Key id.
        kid: u64,
        /// Why.
        reason: String,
    },
    /// End a live session.
    Kill {
        /// Client id.
        cid: u64,
        /// Why.
        reason: String,
    },
    /// Make a client that connected unanswered start over (it will ask again).
    Restart {
        /// Client id.
        cid: u64,
    },
    /// Bring the firewall in line: each tunnel address's rules (destinations may still be
    /// host names) and the networks they may resolve into.
    Enforce(BTreeMap<Ipv4Addr, ClientRules>),
    /// Route a spoke's network into the tunnel, or stop routing it.
    Route {
        /// The network, CIDR.
        network: String,
        /// Whether the route should exist.
        present: bool,
    },
    /// Write the ledger of the spokes' networks routed into the tunnel now.
    SaveSpokeRoutes(BTreeMap<String, Vec<String>>),
    /// Install this CRL.
    InstallCrl {
        /// The CRL, PEM.
        pem: String,
        /// Its number.
        number: u64,
    },
}

/// A client the VPN server told us about.
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

impl LocalClient {
    /// Whether the core knows of this client's session (it was reported connected, or
    /// learnt from the server's list): its end must be reported too.
    fn has_session(&self) -> bool {
        !self.session_key.is_empty()
    }
}

/// A verdict the agent awaits from the core.
#[derive(Debug, Clone, Copy)]
struct AwaitedVerdict {
    cid: u64,
    kid: u64,
    renegotiation: bool,
    asked: Instant,
}

/// The agent's state: clients, awaited verdicts, rules, unacknowledged reports.
#[derive(Debug)]
pub struct GatewayState {
    clients: BTreeMap<u64, LocalClient>,
    awaited: HashMap<u64, AwaitedVerdict>,
    identities: HashMap<String, ClientRules>,
    applied_version: u64,
    /// Reports not yet acknowledged, oldest first, by request id.
    reports: VecDeque<(u64, AgentBody)>,
    next_request_id: u64,
    core_connected: bool,
    /// When the stream to the core was lost, while it is down.
    core_lost_at: Option<Instant>,
    /// The number of the CRL installed from the stream (0 before the first).
    crl_number: u64,
}

impl GatewayState {
    /// The state of an agent started at `at`: no clients, and no core yet (the outage
    /// grace runs from the start).
    pub fn new(at: Instant) -> GatewayState {
        GatewayState {
            clients: BTreeMap::new(),
            awaited: HashMap::new(),
            identities: HashMap::new(),
            applied_version: 0,
            reports: VecDeque::new(),
            next_request_id: 1,
            core_connected: false,
            core_lost_at: Some(at),
            crl_number: 0,
        }
    }

    /// The hello that opens a stream: the live sessions and the rules applied.
    pub fn hello(&self) -> Hello {
        Hello {
            agent_version: env!("CARGO_PKG_VERSION").into(),
            openvpn_version: String::new(),
            live_sessions: self.clients.values().filter(|c| c.vpn_address.is_some()).map(connected_report).collect(),
            applied_rules_version: self.applied_version,
        }
    }

    /// Carries `event` into the state; answers what to do, in order.
    pub fn handle(&mut self, event: Event) -> Vec<Effect> {
        let mut effects = Vec::new();
        match event {
            Event::ClientAsks { cid, kid, presented, renegotiation, at } => {
                let awaited = AwaitedVerdict { cid, kid, renegotiation, asked: at };
                self.client_asks(awaited, presented, &mut effects);
            }
            Event::ClientUp { cid, vpn_address, connected_at } => {
                self.client_up(cid, vpn_address, connected_at, &mut effects)
            }
            Event::ClientGone { cid, usage, at } => self.client_gone(cid, usage, at, &mut effects),
            Event::ServerAttached { live, ledger, at } => self.server_attached(live, ledger, at, &mut effects),
            Event::ServerLost => {
                // Its answers can no longer be given, and a restarted server reuses the
                // client ids: verdicts still awaited are dropped unanswered.
                self.awaited.clear();
            }
            Event::CrlInstalled { number } => self.crl_number = self.crl_number.max(number),
            Event::CoreConnected => {
                self.core_connected = true;
                self.core_lost_at = None;
                // Everything the core has not acknowledged goes again, in order.
                effects.extend(self.reports.iter().map(|(request_id, body)| send(*request_id, body.clone())));
            }
            Event::CoreLost { at } => {
                self.core_connected = false;
                self.core_lost_at.get_or_insert(at);
                // Verdicts that will never come: fail closed.
                let awaited: Vec<_> = self.awaited.drain().map(|(_, verdict)| verdict).collect();
                for verdict in awaited {
                    self.deny(verdict, "the control plane is unreachable", &mut effects);
                }
            }
            Event::FromCore(message) => self.on_core_message(message, &mut effects),
            Event::Tick { at } => {
                let overdue: Vec<u64> = self
                    .awaited
                    .iter()
                    .filter(|(_, verdict)| at.saturating_duration_since(verdict.asked) > VERDICT_TIMEOUT)
                    .map(|(id, _)| *id)
                    .collect();
                for id in overdue {
                    if let Some(verdict) = self.awaited.remove(&id) {
                        self.deny(verdict, "the control plane did not answer in time", &mut effects);
                    }
                }
            }
            Event::HeartbeatDue { live, load_average, server_attached } => {
                let session_bytes = live
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|client| {
                        let known = self.clients.get(&client.cid)?;
                        Some(SessionBytes {
                            session_key: known.session_key.clone(),
                            bytes_received: client.bytes_received,
                            bytes_sent: client.bytes_sent,
                        })
                    })
                    .collect();
                let heartbeat = HeartbeatRequest {
                    connected_clients: u32::try_from(self.clients.len()).unwrap_or(u32::MAX),
                    load_average,
                    openvpn_running: server_attached,
                    config_version: 0,
                    session_bytes,
                };
                let request_id = self.request_id();
                effects.push(send(request_id, AgentBody::Heartbeat(heartbeat)));
            }
        }
        effects
    }

    fn request_id(&mut self) -> u64 {
        self.next_request_id += 1;
        self.next_request_id
    }

    fn client_asks(&mut self, awaited: AwaitedVerdict, presented: Presented, effects: &mut Vec<Effect>) {
        if awaited.renegotiation && !self.core_connected {
            if self.core_lost_at.is_some_and(|lost| awaited.asked.saturating_duration_since(lost) > OUTAGE_GRACE) {
                return self.deny(awaited, "the control plane has been unreachable for too long", effects);
            }
            // Live sessions are kept through a brief control-plane outage; new ones are refused.
            return effects.push(Effect::KeepSession { cid: awaited.cid, kid: awaited.kid });
        }
        let (Some(common_name), Some(serial)) = (presented.common_name, presented.serial) else {
            return self.deny(awaited, "the client presented no certificate name or serial", effects);
        };
        if !awaited.renegotiation {
            let client = LocalClient {
                common_name: common_name.clone(),
                serial: serial.clone(),
                real_address: presented.real_address.clone(),
                vpn_address: None,
                session_key: String::new(),
                connected_at: 0,
                iroutes: Vec::new(),
            };
            self.clients.insert(awaited.cid, client);
        }
        if !self.core_connected {
            return self.deny(awaited, "the control plane is unreachable", effects);
        }
        let request_id = self.request_id();
        self.awaited.insert(request_id, awaited);
        let request = VerifyRequest { common_name, serial, client_address: presented.real_address };
        effects.push(send(request_id, AgentBody::Verify(request)));
    }

    fn deny(&mut self, verdict: AwaitedVerdict, reason: &str, effects: &mut Vec<Effect>) {
        if !verdict.renegotiation {
            self.clients.remove(&verdict.cid);
        }
        effects.push(Effect::Deny { cid: verdict.cid, kid: verdict.kid, reason: reason.to_owned() });
    }

    fn on_verdict(&mut self, request_id: u64, verdict: VerifyResponse, effects: &mut Vec<Effect>) {
        let Some(awaited) = self.awaited.remove(&request_id) else { return };
        if !verdict.allowed {
            return self.deny(awaited, &verdict.reason, effects);
        }
        let config_lines = client_config_lines(&verdict.push_routes, &verdict.iroutes);
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
        effects.push(Effect::Allow { cid: awaited.cid, kid: awaited.kid, config_lines });
        if spoke_joined {
            // The ledger first: a crash in between must not leave a route nobody knows.
            effects.push(Effect::SaveSpokeRoutes(self.spoke_routes()));
            effects.extend(
                verdict.iroutes.iter().map(|network| Effect::Route { network: network.clone(), present: true }),
            );
        }
        if awaited.renegotiation {
            effects.push(self.enforce());
        }
    }

    fn client_up(&mut self, cid: u64, vpn_address: Option<Ipv4Addr>, connected_at: i64, effects: &mut Vec<Effect>) {
        let Some(client) = self.clients.get_mut(&cid) else { return };
        client.vpn_address = vpn_address;
        client.connected_at = connected_at;
        client.session_key = format!("{cid}-{connected_at}");
        let report = connected_report(client);
        effects.push(self.enforce());
        self.report(AgentBody::ClientConnected(report), effects);
    }

    fn client_gone(&mut self, cid: u64, usage: SessionUsage, at: i64, effects: &mut Vec<Effect>) {
        let Some(client) = self.clients.remove(&cid) else { return };
        if client.has_session() {
            self.report_disconnect(&client, usage, at, effects);
        }
        for network in &client.iroutes {
            if !self.clients.values().any(|other| other.iroutes.contains(network)) {
                effects.push(Effect::Route { network: network.clone(), present: false });
            }
        }
        if !client.iroutes.is_empty() {
            effects.push(Effect::SaveSpokeRoutes(self.spoke_routes()));
        }
        effects.push(self.enforce());
    }

    fn server_attached(
        &mut self,
        live: Vec<LiveClient>,
        ledger: BTreeMap<String, Vec<String>>,
        at: i64,
        effects: &mut Vec<Effect>,
    ) {
        let mut seen = BTreeMap::new();
        // A client that connected while no one listened here waits for a verdict it will
        // never get (its CLIENT:CONNECT went to no one); it has no tunnel address yet.
        let mut unanswered = Vec::new();
        // A client id names the same client only while the server keeps running: a
        // restarted server numbers its clients from scratch, and a known client whose id
        // now names someone else went away.
        let mut replaced = Vec::new();
        for client in live {
            let known = match self.clients.remove(&client.cid) {
                Some(known) if known.common_name == client.common_name => Some(known),
                Some(other) => {
                    replaced.push(other);
                    None
                }
                None => None,
            };
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
        // Clients we knew that the server no longer has went away while we were not looking.
        let vanished = std::mem::replace(&mut self.clients, seen).into_values();
        for gone in vanished.chain(replaced) {
            if gone.has_session() {
                self.report_disconnect(&gone, SessionUsage::default(), at, effects);
            }
        }
        if !ledger.is_empty() {
            // After a restart: live spokes get their networks back, and the routes of
            // spokes that left while the agent was away go.
            for client in self.clients.values_mut().filter(|client| client.iroutes.is_empty()) {
                if let Some(networks) = ledger.get(&client.common_name) {
                    client.iroutes.clone_from(networks);
                }
            }
            for network in ledger.values().flatten() {
                if !self.clients.values().any(|client| client.iroutes.contains(network)) {
                    effects.push(Effect::Route { network: network.clone(), present: false });
                }
            }
            effects.push(Effect::SaveSpokeRoutes(self.spoke_routes()));
        }
        effects.extend(unanswered.into_iter().map(|cid| Effect::Restart { cid }));
        effects.push(self.enforce());
    }

    fn on_core_message(&mut self, message: CoreMessage, effects: &mut Vec<Effect>) {
        let request_id = message.request_id;
        match message.body {
            Some(CoreBody::VerifyResult(verdict)) => self.on_verdict(request_id, verdict, effects),
            Some(CoreBody::RuleSnapshot(snapshot)) => {
                if snapshot.version < self.applied_version {
                    return;
                }
                self.identities =
                    snapshot.clients.into_iter().map(|client| (client.common_name.clone(), client)).collect();
                self.applied_version = snapshot.version;
                tracing::info!(version = snapshot.version, clients = self.identities.len(), "applied rules");
                effects.push(self.enforce());
                effects.push(send(0, AgentBody::RulesApplied(RulesApplied { version: snapshot.version })));
            }
            Some(CoreBody::ReportAck(_)) => self.reports.retain(|(id, _)| *id != request_id),
            Some(CoreBody::KillSession(kill)) => {
                let targets = self.clients.iter().filter(|(_, client)| {
                    client.common_name == kill.common_name
                        && (client.serial.is_empty() || kill.serial.is_empty() || client.serial == kill.serial)
                });
                effects.extend(targets.map(|(cid, _)| Effect::Kill { cid: *cid, reason: kill.reason.clone() }));
            }
            // CRLs from several core nodes may cross: never go back to an older one.
            Some(CoreBody::CrlUpdate(crl)) if crl.number < self.crl_number => {
                tracing::debug!(number = crl.number, installed = self.crl_number, "ignored an older CRL");
            }
            // The number advances once the driver reports the CRL written
            // ([`Event::CrlInstalled`]): a failed write must not make an older CRL
            // from another node look stale.
            Some(CoreBody::CrlUpdate(crl)) => effects.push(Effect::InstallCrl { pem: crl.pem, number: crl.number }),
            Some(CoreBody::Reprovision(reprovision)) => {
                tracing::warn!(reason = %reprovision.reason, "the core asks for reprovisioning; restart the agent to apply it")
            }
            Some(CoreBody::Welcome(_) | CoreBody::HeartbeatAck(_)) | None => {}
        }
    }

    /// Keeps a report until the core acknowledges it, and sends it.
    fn report(&mut self, body: AgentBody, effects: &mut Vec<Effect>) {
        let request_id = self.request_id();
        self.reports.push_back((request_id, body.clone()));
        effects.push(send(request_id, body));
    }

    fn report_disconnect(&mut self, client: &LocalClient, usage: SessionUsage, at: i64, effects: &mut Vec<Effect>) {
        let report = ClientDisconnected {
            session_key: client.session_key.clone(),
            common_name: client.common_name.clone(),
            serial: client.serial.clone(),
            duration_seconds: usage.duration_seconds,
            bytes_received: usage.bytes_received,
            bytes_sent: usage.bytes_sent,
            disconnected_at: Some(prost_types::Timestamp { seconds: at, nanos: 0 }),
        };
        self.report(AgentBody::ClientDisconnected(report), effects);
    }

    /// The firewall's desired state: each client that is up, with its identity's rules
    /// (none when the identity has none).
    fn enforce(&self) -> Effect {
        let desired = self
            .clients
            .values()
            .filter_map(|client| {
                let address = client.vpn_address?;
                let rules = self.identities.get(&client.common_name).cloned().unwrap_or_default();
                Some((address, rules))
            })
            .collect();
        Effect::Enforce(desired)
    }

    /// The spokes' networks routed into the tunnel now, by common name.
    fn spoke_routes(&self) -> BTreeMap<String, Vec<String>> {
        self.clients
            .values()
            .filter(|client| !client.iroutes.is_empty())
            .map(|client| (client.common_name.clone(), client.iroutes.clone()))
            .collect()
    }
}

fn send(request_id: u64, body: AgentBody) -> Effect {
    Effect::Send(AgentMessage { request_id, body: Some(body) })
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

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "alice@example.com";

    fn presented(common_name: &str, serial: &str) -> Presented {
        Presented {
            common_name: Some(common_name.into()),
            serial: Some(serial.into()),
            real_address: "198.51.100.7".into(),
        }
    }

    fn asks(cid: u64, renegotiation: bool, at: Instant) -> Event {
        Event::ClientAsks { cid, kid: 1, presented: presented(ALICE, "0A"), renegotiation, at }
    }

    fn from_core(request_id: u64, body: CoreBody) -> Event {
        Event::FromCore(CoreMessage { request_id, body: Some(body) })
    }

    fn web_rule() -> FirewallRule {
        FirewallRule { destination: "10.9.0.5/32".into(), protocol: "tcp".into(), port_from: 443, port_to: 443 }
    }

    fn allowed(rules_version: u64) -> CoreBody {
        CoreBody::VerifyResult(VerifyResponse {
            allowed: true,
            user_id: "usr-alice".into(),
            rules: vec![web_rule()],
            push_routes: vec!["10.9.0.0/24".into()],
            rules_version,
            ..Default::default()
        })
    }

    fn refused(reason: &str) -> CoreBody {
        CoreBody::VerifyResult(VerifyResponse { allowed: false, reason: reason.into(), ..Default::default() })
    }

    /// The request id of the verify request among `effects`.
    fn verify_request(effects: &[Effect]) -> u64 {
        match effects {
            [Effect::Send(AgentMessage { request_id, body: Some(AgentBody::Verify(request)) })] => {
                assert_eq!((request.common_name.as_str(), request.serial.as_str()), (ALICE, "0A"));
                assert_eq!(request.client_address, "198.51.100.7");
                *request_id
            }
            other => panic!("expected one verify request, got {other:?}"),
        }
    }

    /// The request ids of the reports sent among `effects`, in order.
    fn reports_sent(effects: &[Effect]) -> Vec<u64> {
        effects
            .iter()
            .filter_map(|effect| match effect {
                Effect::Send(AgentMessage {
                    request_id,
                    body: Some(AgentBody::ClientConnected(_) | AgentBody::ClientDisconnected(_)),
                }) => Some(*request_id),
                _ => None,
            })
            .collect()
    }

    /// A state with the core connected and alice's client 7 up at 10.8.0.2.
    fn with_alice_up(at: Instant) -> GatewayState {
        let mut state = GatewayState::new(at);
        state.handle(Event::CoreConnected);
        let request_id = verify_request(&state.handle(asks(7, false, at)));
        state.handle(from_core(request_id, allowed(1)));
        state.handle(Event::ClientUp { cid: 7, vpn_address: Some(Ipv4Addr::new(10, 8, 0, 2)), connected_at: 1_000 });
        state
    }

    #[test]
    fn a_client_is_verified_allowed_with_its_routes_and_enforced_once_up() {
        let (mut state, at) = {
            let at = Instant::now();
            (GatewayState::new(at), at)
        };
        state.handle(Event::CoreConnected);
        let request_id = verify_request(&state.handle(asks(7, false, at)));
        let effects = state.handle(from_core(request_id, allowed(1)));
        let config_lines = vec!["push \"route 10.9.0.0 255.255.255.0\"".to_owned()];
        assert_eq!(effects, vec![Effect::Allow { cid: 7, kid: 1, config_lines }]);
        assert!(state.hello().live_sessions.is_empty(), "not up yet");

        let effects = state.handle(Event::ClientUp {
            cid: 7,
            vpn_address: Some(Ipv4Addr::new(10, 8, 0, 2)),
            connected_at: 1_000,
        });
        let Effect::Enforce(desired) = &effects[0] else { panic!("{effects:?}") };
        assert_eq!(desired.len(), 1);
        assert_eq!(desired[&Ipv4Addr::new(10, 8, 0, 2)].rules, vec![web_rule()]);
        assert_eq!(reports_sent(&effects).len(), 1);
        let live = state.hello().live_sessions;
        assert_eq!((live[0].session_key.as_str(), live[0].vpn_address.as_str()), ("7-1000", "10.8.0.2"));
        // A verdict arriving twice (or for an id never asked) does nothing.
        assert!(state.handle(from_core(request_id, allowed(1))).is_empty());
    }

    #[test]
    fn a_refusal_denies_with_the_cores_reason_and_forgets_the_client() {
        let (mut state, at) = {
            let at = Instant::now();
            (GatewayState::new(at), at)
        };
        state.handle(Event::CoreConnected);
        let request_id = verify_request(&state.handle(asks(7, false, at)));
        let effects = state.handle(from_core(request_id, refused("certificate revoked")));
        assert_eq!(effects, vec![Effect::Deny { cid: 7, kid: 1, reason: "certificate revoked".into() }]);
        let up = Event::ClientUp { cid: 7, vpn_address: Some(Ipv4Addr::new(10, 8, 0, 2)), connected_at: 1 };
        assert!(state.handle(up).is_empty(), "a refused client is not tracked");
        // A client without a certificate name or serial never reaches the core.
        let nameless = Presented { common_name: None, serial: Some("0B".into()), real_address: String::new() };
        let effects = state.handle(Event::ClientAsks { cid: 8, kid: 2, presented: nameless, renegotiation: false, at });
        assert!(matches!(&effects[..], [Effect::Deny { cid: 8, reason, .. }] if reason.contains("no certificate")));
    }

    #[test]
    fn overdue_and_lost_verdicts_fail_closed() {
        let (mut state, at) = {
            let at = Instant::now();
            (GatewayState::new(at), at)
        };
        state.handle(Event::CoreConnected);
        let first = verify_request(&state.handle(asks(7, false, at)));
        assert!(state.handle(Event::Tick { at: at + VERDICT_TIMEOUT - Duration::from_secs(1) }).is_empty());
        let effects = state.handle(Event::Tick { at: at + VERDICT_TIMEOUT + Duration::from_secs(1) });
        assert!(
            matches!(&effects[..], [Effect::Deny { cid: 7, reason, .. }] if reason.contains("did not answer in time"))
        );
        assert!(state.handle(from_core(first, allowed(1))).is_empty(), "a late verdict lets no one in");

        verify_request(&state.handle(asks(8, false, at)));
        let effects = state.handle(Event::CoreLost { at });
        assert!(matches!(&effects[..], [Effect::Deny { cid: 8, reason, .. }] if reason.contains("unreachable")));
    }

    #[test]
    fn without_the_core_new_clients_are_refused_and_live_ones_renegotiate_within_the_grace() {
        let at = Instant::now();
        let mut state = with_alice_up(at);
        let lost_at = at + Duration::from_secs(60);
        state.handle(Event::CoreLost { at: lost_at });
        let effects = state.handle(asks(9, false, lost_at));
        assert!(matches!(&effects[..], [Effect::Deny { cid: 9, reason, .. }] if reason.contains("unreachable")));
        let within = lost_at + OUTAGE_GRACE - Duration::from_secs(1);
        assert_eq!(state.handle(asks(7, true, within)), vec![Effect::KeepSession { cid: 7, kid: 1 }]);
        let beyond = lost_at + OUTAGE_GRACE + Duration::from_secs(1);
        let effects = state.handle(asks(7, true, beyond));
        assert!(matches!(&effects[..], [Effect::Deny { cid: 7, reason, .. }] if reason.contains("too long")));
        // Back with the core, renegotiations are verified again.
        state.handle(Event::CoreConnected);
        verify_request(&state.handle(asks(7, true, beyond)));
    }

    #[test]
    fn a_renegotiation_refused_keeps_the_session_record_and_one_allowed_enforces_again() {
        let at = Instant::now();
        let mut state = with_alice_up(at);
        let request_id = verify_request(&state.handle(asks(7, true, at)));
        let effects = state.handle(from_core(request_id, refused("user disabled")));
        assert_eq!(effects, vec![Effect::Deny { cid: 7, kid: 1, reason: "user disabled".into() }]);
        assert_eq!(state.hello().live_sessions.len(), 1, "the session ends when OpenVPN says it went");

        let request_id = verify_request(&state.handle(asks(7, true, at)));
        let effects = state.handle(from_core(request_id, allowed(2)));
        assert!(matches!(&effects[..], [Effect::Allow { cid: 7, .. }, Effect::Enforce(_)]), "{effects:?}");
    }

    #[test]
    fn reports_are_sent_again_on_every_reconnect_until_acknowledged() {
        let at = Instant::now();
        let mut state = with_alice_up(at);
        let gone = state.handle(Event::ClientGone { cid: 7, usage: SessionUsage::default(), at: 2_000 });
        let disconnected = reports_sent(&gone);
        assert_eq!(disconnected.len(), 1);
        assert!(matches!(gone.last(), Some(Effect::Enforce(desired)) if desired.is_empty()));
        state.handle(Event::CoreLost { at });
        let resent = reports_sent(&state.handle(Event::CoreConnected));
        assert_eq!(resent.len(), 2, "connected, then disconnected, in order");
        assert_eq!(resent[1], disconnected[0]);
        assert!(resent[0] < resent[1]);
        state.handle(from_core(resent[0], CoreBody::ReportAck(ReportResponse::default())));
        state.handle(Event::CoreLost { at });
        assert_eq!(reports_sent(&state.handle(Event::CoreConnected)), vec![resent[1]]);
        state.handle(from_core(resent[1], CoreBody::ReportAck(ReportResponse::default())));
        assert!(reports_sent(&state.handle(Event::CoreConnected)).is_empty());
    }

    #[test]
    fn snapshots_never_go_back_and_an_older_verdict_does_not_override_them() {
        let at = Instant::now();
        let mut state = with_alice_up(at);
        let snapshot = |version, rules: Vec<FirewallRule>| {
            let client = ClientRules { common_name: ALICE.into(), rules, ..Default::default() };
            from_core(0, CoreBody::RuleSnapshot(RuleSnapshot { version, clients: vec![client] }))
        };
        let effects = state.handle(snapshot(5, Vec::new()));
        assert!(
            matches!(&effects[0], Effect::Enforce(desired) if desired[&Ipv4Addr::new(10, 8, 0, 2)].rules.is_empty())
        );
        assert!(matches!(
            &effects[1],
            Effect::Send(AgentMessage { body: Some(AgentBody::RulesApplied(RulesApplied { version: 5 })), .. })
        ));
        assert!(state.handle(snapshot(4, vec![web_rule()])).is_empty(), "an older snapshot is ignored");
        assert_eq!(state.hello().applied_rules_version, 5);
        // A renegotiation verdict computed at version 3 leaves version 5's rules in place.
        let request_id = verify_request(&state.handle(asks(7, true, at)));
        let effects = state.handle(from_core(request_id, allowed(3)));
        assert!(
            matches!(&effects[1], Effect::Enforce(desired) if desired[&Ipv4Addr::new(10, 8, 0, 2)].rules.is_empty())
        );
    }

    #[test]
    fn kills_match_the_name_and_the_serial_and_older_crls_are_ignored() {
        let at = Instant::now();
        let mut state = with_alice_up(at);
        let kill = |common_name: &str, serial: &str| {
            from_core(
                0,
                CoreBody::KillSession(KillSession {
                    common_name: common_name.into(),
                    serial: serial.into(),
                    reason: "revoked".into(),
                }),
            )
        };
        assert!(state.handle(kill(ALICE, "0B")).is_empty(), "another certificate of alice's");
        assert!(state.handle(kill("bob@example.com", "0A")).is_empty());
        assert_eq!(state.handle(kill(ALICE, "0A")), vec![Effect::Kill { cid: 7, reason: "revoked".into() }]);
        assert_eq!(
            state.handle(kill(ALICE, "")),
            vec![Effect::Kill { cid: 7, reason: "revoked".into() }],
            "every session of the name"
        );

        let crl = |number| from_core(0, CoreBody::CrlUpdate(CrlUpdate { pem: format!("crl {number}"), number }));
        assert_eq!(state.handle(crl(3)), vec![Effect::InstallCrl { pem: "crl 3".into(), number: 3 }]);
        state.handle(Event::CrlInstalled { number: 3 });
        assert!(state.handle(crl(2)).is_empty(), "an older CRL from another node");
        assert_eq!(state.handle(crl(4)).len(), 1);
    }

    #[test]
    fn attaching_to_the_server_reconciles_clients_and_spoke_routes() {
        let at = Instant::now();
        let mut state = with_alice_up(at);
        let live_client = |cid, common_name: &str, vpn_address: &str| LiveClient {
            common_name: common_name.into(),
            real_address: "203.0.113.9".into(),
            vpn_address: vpn_address.into(),
            connected_since: 500,
            cid,
            bytes_received: 0,
            bytes_sent: 0,
        };
        // Alice (7) went while the agent was away; the spoke (11) is up; 12 connected
        // while no one listened and still awaits a verdict.
        let live = vec![live_client(11, "spoke-1", "10.8.0.9"), live_client(12, "carol@example.com", "")];
        let ledger = BTreeMap::from([
            ("spoke-1".to_owned(), vec!["192.168.50.0/24".to_owned()]),
            ("spoke-gone".to_owned(), vec!["192.168.60.0/24".to_owned()]),
        ]);
        let effects = state.handle(Event::ServerAttached { live, ledger, at: 3_000 });
        assert_eq!(reports_sent(&effects).len(), 1, "alice's disconnect");
        assert!(effects.contains(&Effect::Route { network: "192.168.60.0/24".into(), present: false }));
        assert!(!effects.iter().any(|e| matches!(e, Effect::Route { network, .. } if network == "192.168.50.0/24")));
        let kept = BTreeMap::from([("spoke-1".to_owned(), vec!["192.168.50.0/24".to_owned()])]);
        assert!(effects.contains(&Effect::SaveSpokeRoutes(kept)));
        assert!(effects.contains(&Effect::Restart { cid: 12 }));
        assert!(
            matches!(effects.last(), Some(Effect::Enforce(desired)) if desired.keys().eq([&Ipv4Addr::new(10, 8, 0, 9)]))
        );
        // When the spoke goes, its network leaves the tunnel.
        let gone = state.handle(Event::ClientGone { cid: 11, usage: SessionUsage::default(), at: 3_100 });
        assert!(gone.contains(&Effect::Route { network: "192.168.50.0/24".into(), present: false }));
        assert!(gone.contains(&Effect::SaveSpokeRoutes(BTreeMap::new())));
    }

    #[test]
    fn an_agent_started_without_the_core_keeps_sessions_only_within_the_grace() {
        let started = Instant::now();
        let mut state = GatewayState::new(started);
        let within = started + OUTAGE_GRACE - Duration::from_secs(1);
        assert_eq!(state.handle(asks(7, true, within)), vec![Effect::KeepSession { cid: 7, kid: 1 }]);
        let beyond = started + OUTAGE_GRACE + Duration::from_secs(1);
        assert!(
            matches!(&state.handle(asks(7, true, beyond))[..], [Effect::Deny { reason, .. }] if reason.contains("too long"))
        );
    }

    #[test]
    fn the_crl_number_advances_only_once_the_crl_is_written() {
        let mut state = GatewayState::new(Instant::now());
        let crl = |number| from_core(0, CoreBody::CrlUpdate(CrlUpdate { pem: format!("crl {number}"), number }));
        assert_eq!(state.handle(crl(5)).len(), 1);
        // Writing CRL 5 failed: CRL 4 from another node is still worth installing.
        assert_eq!(state.handle(crl(4)), vec![Effect::InstallCrl { pem: "crl 4".into(), number: 4 }]);
        state.handle(Event::CrlInstalled { number: 4 });
        assert!(state.handle(crl(3)).is_empty());
        assert_eq!(state.handle(crl(5)).len(), 1);
    }

    #[test]
    fn a_restarted_server_reusing_client_ids_gets_no_stale_verdict_or_identity() {
        let at = Instant::now();
        let mut state = with_alice_up(at);
        // Alice's second client (8) awaits its verdict when the server goes away.
        let pending = verify_request(&state.handle(asks(8, false, at)));
        state.handle(Event::ServerLost);
        // The restarted server lists bob under alice's old client id 7.
        let bob = LiveClient {
            common_name: "bob@example.com".into(),
            real_address: "203.0.113.5".into(),
            vpn_address: "10.8.0.2".into(),
            connected_since: 900,
            cid: 7,
            bytes_received: 0,
            bytes_sent: 0,
        };
        let effects = state.handle(Event::ServerAttached { live: vec![bob], ledger: BTreeMap::new(), at: 950 });
        assert_eq!(reports_sent(&effects).len(), 1, "alice's session ended");
        let Some(Effect::Enforce(desired)) = effects.last() else { panic!("{effects:?}") };
        assert!(desired[&Ipv4Addr::new(10, 8, 0, 2)].rules.is_empty(), "bob does not inherit alice's rules");
        assert_eq!(state.hello().live_sessions[0].common_name, "bob@example.com");
        assert!(state.handle(from_core(pending, allowed(1))).is_empty(), "alice's verdict lets no one in");
    }

    #[test]
    fn a_session_reported_up_is_reported_down_even_without_a_tunnel_address() {
        let (mut state, at) = (GatewayState::new(Instant::now()), Instant::now());
        state.handle(Event::CoreConnected);
        let request_id = verify_request(&state.handle(asks(7, false, at)));
        state.handle(from_core(request_id, allowed(1)));
        let up = state.handle(Event::ClientUp { cid: 7, vpn_address: None, connected_at: 1_000 });
        assert_eq!(reports_sent(&up).len(), 1);
        let gone = state.handle(Event::ClientGone { cid: 7, usage: SessionUsage::default(), at: 1_100 });
        assert_eq!(reports_sent(&gone).len(), 1);
    }
}
