//! The agent stream against the real core with simulated agents (real gRPC clients):
//! ordering, acks, verdicts, pushes to affected gateways only, coalescing without
//! loss, slow agents, reconnect after a core restart, and the `/gateway/*` REST doors.

use crate::kit::{Backend, Core};
use gatekey::v1::agent_message::Body as AgentBody;
use gatekey::v1::core_message::Body as CoreBody;
use gatekey::v1::gateway_agent_service_client::GatewayAgentServiceClient;
use gatekey::v1::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Streaming};

/// A simulated gateway agent holding a stream to the core.
pub struct SimulatedAgent {
    outbound: mpsc::Sender<AgentMessage>,
    inbound: Streaming<CoreMessage>,
    next_request_id: u64,
    /// The CRL the core sent right after the first snapshot (by [`SimulatedAgent::connect`]).
    pub opening_crl: Option<CrlUpdate>,
}

fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("x-gateway-token", token.parse().unwrap());
    request
}

impl SimulatedAgent {
    /// Opens a stream with `hello`; returns the core's status on refusal.
    pub async fn open(core: &Core, token: &str, first: AgentBody) -> Result<SimulatedAgent, tonic::Status> {
        let (outbound, receiver) = mpsc::channel(1024);
        outbound.send(AgentMessage { request_id: 0, body: Some(first) }).await.unwrap();
        let mut client = GatewayAgentServiceClient::new(core.channel().await);
        let inbound = client.open_stream(with_token(ReceiverStream::new(receiver), token)).await?.into_inner();
        Ok(SimulatedAgent { outbound, inbound, next_request_id: 1, opening_crl: None })
    }

    /// Opens a stream with a plain hello and consumes the opening: the welcome, the first
    /// snapshot (returned) and the current CRL (kept in `opening_crl`).
    pub async fn connect(
        core: &Core,
        token: &str,
        live_sessions: Vec<ClientConnected>,
    ) -> (SimulatedAgent, RuleSnapshot) {
        let hello = AgentBody::Hello(Hello { agent_version: "test".into(), live_sessions, ..Default::default() });
        let mut agent = SimulatedAgent::open(core, token, hello).await.unwrap();
        assert!(matches!(agent.next().await.body, Some(CoreBody::Welcome(_))), "welcome comes first");
        let snapshot = agent.next_snapshot().await;
        match agent.next().await.body {
            Some(CoreBody::CrlUpdate(crl)) => agent.opening_crl = Some(crl),
            other => panic!("the CRL follows the first snapshot, not {other:?}"),
        }
        (agent, snapshot)
    }

    /// Sends a message; returns its request id.
    pub async fn send(&mut self, body: AgentBody) -> u64 {
        self.next_request_id += 1;
        self.outbound.send(AgentMessage { request_id: self.next_request_id, body: Some(body) }).await.unwrap();
        self.next_request_id
    }

    /// The next message from the core (fails after 10 s).
    pub async fn next(&mut self) -> CoreMessage {
        self.next_within(Duration::from_secs(10)).await
    }

    /// The next message from the core (fails after `patience`).
    pub async fn next_within(&mut self, patience: Duration) -> CoreMessage {
        tokio::time::timeout(patience, self.inbound.message())
            .await
            .expect("no message from the core in time")
            .expect("stream error")
            .expect("stream ended")
    }

    /// Whether the stream has ended (within 10 s).
    pub async fn ended(&mut self) -> bool {
        self.ending().await.is_some()
    }

    /// Reads until the stream ends (within 10 s): the messages on the way and the status
    /// it ended with (`None` for a plain end); `None` if it stays open.
    pub async fn ending(&mut self) -> Option<(Vec<CoreMessage>, Option<tonic::Status>)> {
        let mut messages = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_secs(10), self.inbound.message()).await {
                Ok(Ok(Some(message))) => messages.push(message),
                Ok(Ok(None)) => return Some((messages, None)),
                Ok(Err(status)) => return Some((messages, Some(status))),
                Err(_) => return None,
            }
        }
    }

    /// Skips to the next rule snapshot.
    pub async fn next_snapshot(&mut self) -> RuleSnapshot {
        self.next_snapshot_within(Duration::from_secs(10)).await
    }

    /// Skips to the next rule snapshot, waiting up to `patience` for each message.
    pub async fn next_snapshot_within(&mut self, patience: Duration) -> RuleSnapshot {
        loop {
            if let Some(CoreBody::RuleSnapshot(snapshot)) = self.next_within(patience).await.body {
                return snapshot;
            }
        }
    }

    /// A heartbeat round trip: every message the core queued before it is returned.
    pub async fn drain(&mut self) -> Vec<CoreMessage> {
        let id = self.send(AgentBody::Heartbeat(HeartbeatRequest::default())).await;
        let mut before = Vec::new();
        loop {
            let message = self.next().await;
            if message.request_id == id && matches!(message.body, Some(CoreBody::HeartbeatAck(_))) {
                return before;
            }
            before.push(message);
        }
    }
}

/// An admin, gateways with tokens, a network attached to the first `attached` of them,
/// and alice granted all of them with a config for the first.
pub struct Fleet {
    pub admin: String,
    pub alice_id: String,
    pub alice: String,
    pub network_id: String,
    pub gateways: Vec<(String, String)>,
}

pub async fn fleet(core: &Core, count: usize, attached: usize) -> Fleet {
    let admin = core.admin_token().await;
    let (alice_id, alice) = core.create_user(&admin, "alice", &["staff"]).await;
    let network = core.post("/admin/networks", &admin, json!({"name": "office", "cidrs": ["10.90.0.0/16"]})).await;
    let network_id = network.body["data"]["id"].as_str().unwrap().to_owned();
    let mut gateways = Vec::new();
    for i in 0..count {
        let created = core
            .post(
                "/admin/gateways",
                &admin,
                json!({"name": format!("gw{i}"), "hostname": format!("gw{i}.example.com")}),
            )
            .await
            .expect(StatusCode::CREATED);
        let id = created.body["data"]["id"].as_str().unwrap().to_owned();
        if i < attached {
            core.post(&format!("/admin/gateways/{id}/networks"), &admin, json!({"network_id": network_id}))
                .await
                .expect(StatusCode::OK);
        }
        core.post(&format!("/admin/gateways/{id}/groups"), &admin, json!({"group": "staff"}))
            .await
            .expect(StatusCode::OK);
        gateways.push((id, created.body["data"]["token"].as_str().unwrap().to_owned()));
    }
    Fleet { admin, alice_id, alice, network_id, gateways }
}

pub async fn add_rule(core: &Core, fleet: &Fleet, name: &str, destination: &str) -> Value {
    core.post(
        "/admin/access-rules",
        &fleet.admin,
        json!({"name": name, "network_id": fleet.network_id, "groups": ["staff"], "destination_type": "ip",
               "destination": destination, "protocol": "tcp", "port_from": 443}),
    )
    .await
    .expect(StatusCode::CREATED)
    .body
}

/// Generates a config for alice at a gateway and returns its certificate serial.
pub async fn alice_serial(core: &Core, fleet: &Fleet, gateway_id: &str) -> String {
    core.post("/configs/generate", &fleet.alice, json!({"gateway_id": gateway_id})).await.expect(StatusCode::CREATED);
    let configs = core.get("/configs", &fleet.alice).await;
    let config =
        configs.body["data"].as_array().unwrap().iter().find(|c| c["gateway_id"] == gateway_id).unwrap().clone();
    config["serial"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn streams_open_with_welcome_then_a_snapshot_and_refuse_bad_agents() {
    let core = Core::start(Backend::Sqlite).await;
    let fleet = fleet(&core, 1, 1).await;
    let (_, token) = &fleet.gateways[0];
    let hello = || AgentBody::Hello(Hello::default());
    let refused = SimulatedAgent::open(&core, "gkgw_forged", hello()).await.err().unwrap();
    assert_eq!(refused.code(), Code::Unauthenticated);
    let refused =
        SimulatedAgent::open(&core, token, AgentBody::Heartbeat(HeartbeatRequest::default())).await.err().unwrap();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("hello"), "{}", refused.message());

    let (mut agent, snapshot) = SimulatedAgent::connect(&core, token, vec![]).await;
    assert!(snapshot.version >= 1);
    assert!(snapshot.clients.is_empty(), "no rules yet");
    assert!(agent.drain().await.is_empty());
    let listed = core.get("/gateways", &fleet.alice).await;
    assert_eq!(listed.body["data"][0]["status"], "online");
}

#[tokio::test]
async fn rule_changes_reach_only_the_affected_gateways_with_rising_versions() {
    for backend in crate::kit::backends() {
        let core = Core::start(backend).await;
        let fleet = fleet(&core, 2, 1).await;
        let (mut attached, first) = SimulatedAgent::connect(&core, &fleet.gateways[0].1, vec![]).await;
        let (mut unattached, _) = SimulatedAgent::connect(&core, &fleet.gateways[1].1, vec![]).await;

        add_rule(&core, &fleet, "web", "10.90.1.10").await;
        let pushed = attached.next_snapshot().await;
        assert!(pushed.version > first.version);
        assert_eq!(pushed.clients.len(), 1);
        let alice = &pushed.clients[0];
        assert_eq!(
            (alice.common_name.as_str(), alice.user_id.as_str()),
            ("alice@example.com", fleet.alice_id.as_str())
        );
        assert_eq!(
            alice.rules,
            [FirewallRule {
                destination: "10.90.1.10/32".into(),
                protocol: "tcp".into(),
                port_from: 443,
                port_to: 443
            }]
        );
        assert_eq!(alice.push_routes, ["10.90.0.0/16"]);
        attached.send(AgentBody::RulesApplied(RulesApplied { version: pushed.version })).await;
        // Give a wrong push time to arrive before checking there was none.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(unattached.drain().await.is_empty(), "a gateway without the network got a push");

        // Removing alice's group from the gateway takes her out of its snapshot.
        let gateway_id = &fleet.gateways[0].0;
        core.delete(&format!("/admin/gateways/{gateway_id}/groups/staff"), &fleet.admin).await.expect(StatusCode::OK);
        let after = attached.next_snapshot().await;
        assert!(after.version > pushed.version);
        assert!(after.clients.is_empty());
    }
}

#[tokio::test]
async fn verdicts_over_the_stream_match_their_requests_and_explain_denials() {
    let core = Core::start(Backend::Sqlite).await;
    let fleet = fleet(&core, 2, 1).await;
    add_rule(&core, &fleet, "web", "10.90.1.10").await;
    let gateway_id = fleet.gateways[0].0.clone();
    let serial = alice_serial(&core, &fleet, &gateway_id).await;
    let other_gateway_serial = alice_serial(&core, &fleet, &fleet.gateways[1].0).await;
    let (mut agent, _) = SimulatedAgent::connect(&core, &fleet.gateways[0].1, vec![]).await;

    let ask = |serial: &str, name: &str| {
        AgentBody::Verify(VerifyRequest {
            common_name: name.into(),
            serial: serial.into(),
            client_address: "192.0.2.7".into(),
        })
    };
    let allowed = agent.send(ask(&serial, "alice@example.com")).await;
    let unknown = agent.send(ask("abcdef", "alice@example.com")).await;
    let wrong_name = agent.send(ask(&serial, "mallory@example.com")).await;
    let elsewhere = agent.send(ask(&other_gateway_serial, "alice@example.com")).await;
    let mut verdicts = std::collections::HashMap::new();
    while verdicts.len() < 4 {
        let message = agent.next().await;
        if let Some(CoreBody::VerifyResult(verdict)) = message.body {
            verdicts.insert(message.request_id, verdict);
        }
    }
    let verdict = &verdicts[&allowed];
    assert!(verdict.allowed, "{verdict:?}");
    assert_eq!(verdict.user_id, fleet.alice_id);
    assert_eq!(verdict.push_routes, ["10.90.0.0/16"]);
    assert_eq!(verdict.rules.len(), 1);
    for (id, expected) in
        [(unknown, "not issued by GateKey"), (wrong_name, "does not match"), (elsewhere, "another gateway")]
    {
        let verdict = &verdicts[&id];
        assert!(!verdict.allowed && verdict.reason.contains(expected), "{verdict:?}");
        assert!(verdict.rules.is_empty());
    }

    // What verdicts read of the gateway is kept between them; every change shows in the
    // next one: a new rule, a grant withdrawn and given again, and a user made since.
    let verdict_of = async |agent: &mut SimulatedAgent, serial: &str, name: &str| {
        let asked = agent.send(ask(serial, name)).await;
        loop {
            let message = agent.next().await;
            if let (true, Some(CoreBody::VerifyResult(verdict))) = (message.request_id == asked, message.body) {
                return verdict;
            }
        }
    };
    add_rule(&core, &fleet, "ssh", "10.90.1.22").await;
    let verdict = verdict_of(&mut agent, &serial, "alice@example.com").await;
    assert!(verdict.allowed && verdict.rules.len() == 2, "the new rule is missing: {verdict:?}");
    core.delete(&format!("/admin/gateways/{gateway_id}/groups/staff"), &fleet.admin).await.expect(StatusCode::OK);
    let verdict = verdict_of(&mut agent, &serial, "alice@example.com").await;
    assert!(!verdict.allowed && verdict.reason.contains("not granted"), "{verdict:?}");
    core.post(&format!("/admin/gateways/{gateway_id}/groups"), &fleet.admin, json!({"group": "staff"}))
        .await
        .expect(StatusCode::OK);
    let verdict = verdict_of(&mut agent, &serial, "alice@example.com").await;
    assert!(verdict.allowed, "{verdict:?}");
    let (_, bob) = core.create_user(&fleet.admin, "bob", &["staff"]).await;
    core.post("/configs/generate", &bob, json!({"gateway_id": gateway_id})).await.expect(StatusCode::CREATED);
    let bob_serial = core.get("/configs", &bob).await.body["data"][0]["serial"].as_str().unwrap().to_owned();
    let verdict = verdict_of(&mut agent, &bob_serial, "bob@example.com").await;
    assert!(verdict.allowed && verdict.rules.len() == 2, "a user made since is admitted: {verdict:?}");

    // Alice is connected; disabling her kills the session and denies her from then on.
    let report = ClientConnected {
        session_key: "k1".into(),
        common_name: "alice@example.com".into(),
        serial: serial.clone(),
        vpn_address: "10.8.0.2".into(),
        ..Default::default()
    };
    let reported = agent.send(AgentBody::ClientConnected(report)).await;
    while agent.next().await.request_id != reported {}
    core.put(&format!("/admin/users/{}", fleet.alice_id), &fleet.admin, json!({"disabled": true}))
        .await
        .expect(StatusCode::OK);
    let again = agent.send(ask(&serial, "alice@example.com")).await;
    let mut killed = false;
    loop {
        let message = agent.next().await;
        if let Some(CoreBody::KillSession(kill)) = &message.body {
            assert_eq!(kill.common_name, "alice@example.com");
            assert!(kill.reason.contains("disabled"), "{kill:?}");
            killed = true;
        }
        if message.request_id == again {
            let Some(CoreBody::VerifyResult(verdict)) = message.body else { panic!("{message:?}") };
            assert!(!verdict.allowed && verdict.reason.contains("disabled"), "{verdict:?}");
            break;
        }
    }
    assert!(killed, "the disabled user's session was not killed");
}

#[tokio::test]
async fn bursts_lose_nothing_and_a_slow_agent_holds_up_no_one() {
    let core = Core::start(Backend::Sqlite).await;
    let fleet = fleet(&core, 2, 2).await;
    let (mut slow, _) = SimulatedAgent::connect(&core, &fleet.gateways[0].1, vec![]).await;
    let (mut fast, _) = SimulatedAgent::connect(&core, &fleet.gateways[1].1, vec![]).await;
    const CHANGES: usize = 30;
    for i in 0..CHANGES {
        add_rule(&core, &fleet, &format!("rule{i:02}"), &format!("10.90.2.{}", i + 1)).await;
    }
    // The fast agent sees every rule while the slow one has read nothing.
    let mut fast_snapshots = 0;
    loop {
        let snapshot = fast.next_snapshot().await;
        fast_snapshots += 1;
        if snapshot.clients.first().is_some_and(|alice| alice.rules.len() == CHANGES) {
            break;
        }
    }
    assert!(fast_snapshots <= CHANGES);
    // The slow agent, reading at last, catches up to the same final state, never
    // seeing versions go backwards. (How many snapshots it gets depends on what HTTP/2
    // flow control buffered; the core's own queue coalesces, as `agent_hub`'s unit
    // test shows.)
    let mut previous = 0;
    loop {
        let snapshot = slow.next_snapshot().await;
        assert!(snapshot.version >= previous, "versions went backwards");
        previous = snapshot.version;
        if snapshot.clients.first().is_some_and(|alice| alice.rules.len() == CHANGES) {
            break;
        }
    }
}

#[tokio::test]
async fn reports_are_acknowledged_and_kills_follow_revocation_after_a_core_restart() {
    let core = Core::start(Backend::Sqlite).await;
    let fleet = fleet(&core, 1, 1).await;
    let (gateway_id, token) = fleet.gateways[0].clone();
    let serial = alice_serial(&core, &fleet, &gateway_id).await;
    let (mut agent, _) = SimulatedAgent::connect(&core, &token, vec![]).await;

    let session = |key: String, serial: &str| ClientConnected {
        session_key: key,
        common_name: "alice@example.com".into(),
        serial: serial.into(),
        vpn_address: "10.8.0.2".into(),
        client_address: "192.0.2.7".into(),
        connected_at: None,
    };
    let mut pending = std::collections::HashSet::new();
    for i in 0..50 {
        pending.insert(agent.send(AgentBody::ClientConnected(session(format!("old-{i}"), "1234"))).await);
    }
    for i in 0..50 {
        let report = ClientDisconnected { session_key: format!("old-{i}"), ..Default::default() };
        pending.insert(agent.send(AgentBody::ClientDisconnected(report)).await);
    }
    let live = session("live-1".into(), &serial);
    pending.insert(agent.send(AgentBody::ClientConnected(live.clone())).await);
    while !pending.is_empty() {
        let message = agent.next().await;
        if matches!(message.body, Some(CoreBody::ReportAck(_))) {
            pending.remove(&message.request_id);
        }
    }
    let dump = core.dump_database().await;
    assert_eq!(dump.matches("old-").count(), 50, "every connect report is stored once");

    // The core restarts; the agent comes back with its live session.
    drop(agent);
    let core = core.restart().await;
    let (mut agent, _) = SimulatedAgent::connect(&core, &token, vec![live]).await;
    let admin = core.admin_token().await;
    core.post("/admin/pki/revoke", &admin, json!({"serial": serial})).await.expect(StatusCode::OK);
    let mut killed = false;
    for message in agent.drain().await {
        match message.body {
            Some(CoreBody::KillSession(kill)) => {
                assert_eq!((kill.serial.as_str(), kill.common_name.as_str()), (serial.as_str(), "alice@example.com"));
                assert!(kill.reason.contains("revoked"));
                killed = true;
            }
            Some(CoreBody::CrlUpdate(crl)) => assert!(crl.pem.contains("X509 CRL")),
            _ => {}
        }
    }
    assert!(killed, "no kill for the revoked session");
}

#[tokio::test]
async fn a_new_stream_for_a_gateway_replaces_the_old_one() {
    let core = Core::start(Backend::Sqlite).await;
    let fleet = fleet(&core, 1, 1).await;
    let (mut first, _) = SimulatedAgent::connect(&core, &fleet.gateways[0].1, vec![]).await;
    let (mut second, _) = SimulatedAgent::connect(&core, &fleet.gateways[0].1, vec![]).await;
    assert!(first.ended().await, "the replaced stream stayed open");
    add_rule(&core, &fleet, "web", "10.90.1.10").await;
    assert_eq!(second.next_snapshot().await.clients.len(), 1);

    // Rotating the token ends the stream that used it, saying so.
    core.call(Method::POST, &format!("/admin/gateways/{}/rotate-token", fleet.gateways[0].0), Some(&fleet.admin), None)
        .await
        .expect(StatusCode::OK);
    let (_, status) = second.ending().await.expect("a stream outlived its token");
    let status = status.expect("the stream ended without a reason");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("rotated"), "{status:?}");
}

/// Deleting a gateway queues the kills of its sessions and then the end of its stream:
/// the agent receives every kill before the stream ends, with no waiting in between.
#[tokio::test]
async fn a_deleted_gateways_stream_ends_after_its_kills() {
    let core = Core::start(Backend::Sqlite).await;
    let fleet = fleet(&core, 1, 1).await;
    let (gateway_id, token) = fleet.gateways[0].clone();
    let serial = alice_serial(&core, &fleet, &gateway_id).await;
    let (mut agent, _) = SimulatedAgent::connect(&core, &token, vec![]).await;
    let session = ClientConnected {
        session_key: "s1".into(),
        common_name: "alice@example.com".into(),
        serial: serial.clone(),
        vpn_address: "10.8.0.6".into(),
        ..Default::default()
    };
    agent.send(AgentBody::ClientConnected(session)).await;
    agent.drain().await;
    let started = std::time::Instant::now();
    core.delete(&format!("/admin/gateways/{gateway_id}"), &fleet.admin).await.expect(StatusCode::OK);
    let (messages, status) = agent.ending().await.expect("the deleted gateway's stream stayed open");
    let killed = messages.iter().any(|m| matches!(&m.body, Some(CoreBody::KillSession(k)) if k.serial == serial));
    assert!(killed, "the stream ended before the kill: {messages:?}");
    let status = status.expect("the stream ended without a reason");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains("deleted"), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "the end waited: {:?}", started.elapsed());
}

/// SIGTERM stops the core within its bound: agents hear why their stream ends, the
/// heartbeats it buffered are written, and the process exits 0.
#[tokio::test]
async fn the_core_stops_on_sigterm_telling_agents_and_keeping_their_heartbeats() {
    for backend in crate::kit::backends() {
        let core = Core::start(backend).await;
        let fleet = fleet(&core, 1, 1).await;
        let (gateway_id, token) = fleet.gateways[0].clone();
        let (mut agent, _) = SimulatedAgent::connect(&core, &token, vec![]).await;
        let heartbeat_of = |listing: &Value| {
            listing["data"].as_array().unwrap().iter().find(|g| g["id"] == gateway_id.as_str()).unwrap()["last_heartbeat"]
                .as_str()
                .map(str::to_owned)
        };
        let before = heartbeat_of(&core.get("/admin/gateways", &fleet.admin).await.body);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        agent.drain().await; // a heartbeat, buffered in the core for up to 5 s
        let stopping = tokio::spawn(core.stop());
        let (_, status) = agent.ending().await.expect("the stream outlived the core");
        let status = status.expect("the stream ended without a reason");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(status.message().contains("shutting down"), "{status:?}");
        let core = stopping.await.unwrap().start(&[]).await;
        let admin = core.admin_token().await;
        let after = heartbeat_of(&core.get("/admin/gateways", &admin).await.body);
        assert!(after.is_some() && after > before, "the buffered heartbeat was lost: {before:?} → {after:?}");
    }
}

#[tokio::test]
async fn gateway_rest_endpoints_serve_simple_agents() {
    let core = Core::start(Backend::Sqlite).await;
    let fleet = fleet(&core, 1, 1).await;
    add_rule(&core, &fleet, "web", "10.90.1.10").await;
    let (gateway_id, token) = fleet.gateways[0].clone();
    let serial = alice_serial(&core, &fleet, &gateway_id).await;
    let client = reqwest::Client::new();
    let call = |path: &str, token: Option<&str>, body: Value| {
        let mut request = client.post(format!("{}/api/v1/gateway/{path}", core.http_base)).json(&body);
        if let Some(token) = token {
            request = request.header("X-Gateway-Token", token);
        }
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    assert_eq!(core.get("/gateways", &fleet.alice).await.body["data"][0]["status"], "offline");
    let (status, body) = call("heartbeat", Some(&token), json!({"connected_clients": 0})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(core.get("/gateways", &fleet.alice).await.body["data"][0]["status"], "online");
    let (status, body) = call("heartbeat", None, json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")));
    let (status, _) = call("heartbeat", Some("gkgw_wrong"), json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = call("heartbeat", Some(&token), json!({"load": 1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, body) =
        call("verify", Some(&token), json!({"common_name": "alice@example.com", "serial": serial})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["allowed"], true);
    assert_eq!(body["data"]["rules"][0]["destination"], "10.90.1.10/32");
    let (_, body) = call("verify", Some(&token), json!({"common_name": "alice@example.com", "serial": "abc"})).await;
    assert_eq!(body["data"]["allowed"], false);
    assert!(body["data"]["reason"].as_str().unwrap().contains("not issued"));

    let session = json!({"session_key": "s1", "common_name": "alice@example.com", "serial": serial,
                         "vpn_address": "10.8.0.2", "connected_at": "2026-01-01T00:00:00Z"});
    assert_eq!(call("connect", Some(&token), session).await.0, StatusCode::OK);
    let (status, body) = call(
        "connect",
        Some(&token),
        json!({"session_key": "s2", "common_name": "x", "serial": "zz", "vpn_address": "1"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) =
        call("disconnect", Some(&token), json!({"session_key": "s1", "disconnected_at": "yesterday"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        call("disconnect", Some(&token), json!({"session_key": "s1", "bytes_sent": 10})).await.0,
        StatusCode::OK
    );

    let (status, body) = call("provision", Some(&token), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["data"]["server_private_key_pem"].as_str().unwrap().contains("PRIVATE KEY"));
    assert_eq!((&body["data"]["vpn_subnet"], &body["data"]["role"]), (&json!("10.8.0.0/24"), &json!("gateway")));
    let (status, body) = call("client-rules", Some(&token), json!({"common_name": "alice@example.com"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["push_routes"], json!(["10.90.0.0/16"]));
    let (status, _) = call("client-rules", Some(&token), json!({"common_name": "nobody@example.com"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = call("all-rules", Some(&token), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["data"]["version"].as_u64().unwrap() >= 1);
    assert_eq!(body["data"]["clients"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn access_rules_are_validated_and_admin_only() {
    let core = Core::start(Backend::Sqlite).await;
    let fleet = fleet(&core, 1, 1).await;
    let base =
        json!({"name": "r", "network_id": fleet.network_id, "user_ids": [fleet.alice_id], "destination": "10.90.0.5"});
    let with = |patch: Value| {
        let mut body = base.clone();
        for (key, value) in patch.as_object().unwrap() {
            body[key] = value.clone();
        }
        body
    };
    for (patch, status, field) in [
        (json!({"destination": "10.91.0.5"}), StatusCode::BAD_REQUEST, "outside network"),
        (json!({"destination_type": "cidr", "destination": "10.0.0.0/8"}), StatusCode::BAD_REQUEST, "outside network"),
        (json!({"destination_type": "url"}), StatusCode::BAD_REQUEST, "destination_type"),
        (json!({"protocol": "icmp", "port_from": 22}), StatusCode::BAD_REQUEST, "port_from"),
        (json!({"protocol": "tcp", "port_from": 500, "port_to": 400}), StatusCode::BAD_REQUEST, "port_to"),
        (json!({"protocol": "tcp", "port_from": 70000}), StatusCode::BAD_REQUEST, "port_from"),
        (json!({"user_ids": [], "groups": []}), StatusCode::BAD_REQUEST, "user_ids"),
        (json!({"user_ids": ["usr-ghost"]}), StatusCode::NOT_FOUND, "usr-ghost"),
        (json!({"network_id": "net-ghost"}), StatusCode::NOT_FOUND, "net-ghost"),
        (json!({"name": "bad name"}), StatusCode::BAD_REQUEST, "name"),
        (json!({"colour": "red"}), StatusCode::BAD_REQUEST, "colour"),
    ] {
        let reply = core.post("/admin/access-rules", &fleet.admin, with(patch.clone())).await;
        assert_eq!(reply.status, status, "{patch}: {}", reply.body);
        assert!(reply.body["error"]["message"].as_str().unwrap().contains(field), "{patch}: {}", reply.body);
    }
    core.post("/admin/access-rules", &fleet.alice, base.clone()).await.expect_error(StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(
        core.get("/admin/access-rules", &fleet.admin).await.body["meta"]["total"],
        0,
        "refusals created nothing"
    );

    let created = core.post("/admin/access-rules", &fleet.admin, base.clone()).await.expect(StatusCode::CREATED);
    let id = created.body["data"]["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("rule-"));
    assert_eq!(created.body["data"]["protocol"], "any");
    core.post("/admin/access-rules", &fleet.admin, base.clone()).await.expect_error(StatusCode::CONFLICT, "conflict");
    // The network cannot shrink away from a rule's destination.
    let message = core
        .put(&format!("/admin/networks/{}", fleet.network_id), &fleet.admin, json!({"cidrs": ["10.91.0.0/16"]}))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert!(message.contains("`r`"), "{message}");
    let updated = core
        .put(&format!("/admin/access-rules/{id}"), &fleet.admin, with(json!({"protocol": "udp", "port_from": 53})))
        .await;
    assert_eq!(updated.expect(StatusCode::OK).body["data"]["port_to"], 53);
    core.put("/admin/access-rules/rule-ghost", &fleet.admin, base.clone())
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    core.delete(&format!("/admin/access-rules/{id}"), &fleet.admin).await.expect(StatusCode::OK);
    core.delete(&format!("/admin/access-rules/{id}"), &fleet.admin)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
}

/// An agent whose token the core does not know stops at once with exit code 3 and says
/// why, rather than retrying forever.
#[tokio::test]
async fn an_agent_refused_by_the_core_exits_with_code_3() {
    let core = Core::start(Backend::Sqlite).await;
    let dir = crate::kit::TempDir::new("refused-agent");
    let output = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new(crate::kit::binary("gatekey-agent"))
            .args(["run", "--core", &format!("http://{}", core.grpc_address)])
            .args(["--token", "gkgw_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "--no-firewall"])
            .arg("--state-dir")
            .arg(dir.path())
            .output(),
    )
    .await
    .expect("the refused agent kept retrying")
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("invalid gateway token") && stderr.contains("for good"), "{stderr}");
}

#[tokio::test]
async fn a_unary_connect_report_of_a_certificate_that_no_longer_stands_is_refused_and_killed() {
    let core = Core::start(Backend::Sqlite).await;
    let fleet = fleet(&core, 1, 1).await;
    let (gateway_id, token) = fleet.gateways[0].clone();
    let serial = alice_serial(&core, &fleet, &gateway_id).await;
    let (mut agent, _) = SimulatedAgent::connect(&core, &token, vec![]).await;
    // Revoked between the verdict and the report (a hook-mode gateway reports unary).
    core.post("/admin/pki/revoke", &fleet.admin, json!({"serial": serial})).await.expect(StatusCode::OK);
    let report = ClientConnected {
        session_key: "hook-raced".into(),
        common_name: "alice@example.com".into(),
        serial: serial.clone(),
        vpn_address: "10.8.0.9".into(),
        client_address: "192.0.2.9".into(),
        connected_at: None,
    };
    let refused = GatewayAgentServiceClient::new(core.channel().await)
        .report_connect(with_token(report, &token))
        .await
        .expect_err("a revoked certificate's session was accepted");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(refused.message().contains("revoked"), "{refused:?}");
    let killed = agent.drain().await.into_iter().any(|message| {
        matches!(message.body, Some(CoreBody::KillSession(ref kill)) if kill.serial == serial && kill.reason.contains("revoked"))
    });
    assert!(killed, "the gateway's stream was not told to kill the session");
}

#[tokio::test]
async fn an_agent_coming_back_gets_the_crl_and_kills_for_sessions_that_no_longer_stand() {
    let core = Core::start(Backend::Sqlite).await;
    let fleet = fleet(&core, 1, 1).await;
    let (gateway_id, token) = fleet.gateways[0].clone();
    let revoked = alice_serial(&core, &fleet, &gateway_id).await;
    core.post("/configs/generate", &fleet.alice, json!({"gateway_id": gateway_id})).await.expect(StatusCode::CREATED);
    let configs = core.get("/configs", &fleet.alice).await;
    let good =
        configs.body["data"].as_array().unwrap().iter().find_map(|c| c["serial"].as_str().filter(|s| *s != revoked));
    let good = good.expect("a second profile").to_owned();
    // Revoked while the agent held no stream (moving between nodes, say).
    core.post("/admin/pki/revoke", &fleet.admin, json!({"serial": revoked})).await.expect(StatusCode::OK);
    let live = |key: &str, serial: &str| ClientConnected {
        session_key: key.into(),
        common_name: "alice@example.com".into(),
        serial: serial.into(),
        vpn_address: "10.8.0.2".into(),
        client_address: "192.0.2.7".into(),
        connected_at: None,
    };
    let (mut agent, _) =
        SimulatedAgent::connect(&core, &token, vec![live("back-1", &revoked), live("back-2", &good)]).await;
    let crl = agent.opening_crl.clone().expect("no CRL at the opening");
    assert!(crl.pem.contains("X509 CRL") && crl.number >= 1, "{crl:?}");
    let messages = agent.drain().await;
    let kills: Vec<_> = messages
        .iter()
        .filter_map(|m| match &m.body {
            Some(CoreBody::KillSession(kill)) => Some(kill.serial.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(kills, [revoked], "exactly the session on the revoked certificate is ended");
}

#[tokio::test]
async fn deactivating_a_gateway_cuts_its_tunnels_and_pushes_its_rules() {
    let core = Core::start(Backend::Sqlite).await;
    let fleet = fleet(&core, 1, 1).await;
    let (gateway_id, token) = fleet.gateways[0].clone();
    let serial = alice_serial(&core, &fleet, &gateway_id).await;
    let live = ClientConnected {
        session_key: "live-1".into(),
        common_name: "alice@example.com".into(),
        serial: serial.clone(),
        vpn_address: "10.8.0.2".into(),
        client_address: "192.0.2.7".into(),
        connected_at: None,
    };
    let (mut agent, first) = SimulatedAgent::connect(&core, &token, vec![live]).await;
    core.put(&format!("/admin/gateways/{gateway_id}"), &fleet.admin, json!({"is_active": false}))
        .await
        .expect(StatusCode::OK);
    let messages = agent.drain().await;
    let kill = messages.iter().find_map(|m| match &m.body {
        Some(CoreBody::KillSession(kill)) => Some(kill.clone()),
        _ => None,
    });
    let kill = kill.unwrap_or_else(|| panic!("no kill for the live session: {messages:?}"));
    assert_eq!(kill.serial, serial);
    assert!(kill.reason.contains("deactivated"), "{kill:?}");
    let pushed =
        messages.iter().any(|m| matches!(&m.body, Some(CoreBody::RuleSnapshot(s)) if s.version > first.version));
    // The snapshot comes from the gateway's pusher, maybe after the drain's reply.
    assert!(pushed || agent.next_snapshot().await.version > first.version, "no fresh rules after the change");
}
