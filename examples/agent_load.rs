//! Load tool for the agent stream: connects N simulated gateway agents (real gRPC
//! streams) to real `gatekey-core` processes on loopback, spread over `nodes` core
//! nodes sharing one database, and prints rule-change-to-ack latency (split by whether
//! the agent's node made the change), rule changes relayed per second, verify round
//! trips under heartbeat load, heartbeats absorbed per second, and core memory per
//! connected agent.
//!
//! `cargo build --release --bins --example agent_load && target/release/examples/agent_load [agents] [changes] [seconds] [nodes]`
//!
//! With `DATABASE_URL` (PostgreSQL) the nodes share that database; without it, one
//! node runs on SQLite.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use futures::StreamExt;
use gatekey::v1::agent_message::Body as AgentBody;
use gatekey::v1::core_message::Body as CoreBody;
use gatekey::v1::gateway_agent_service_client::GatewayAgentServiceClient;
use gatekey::v1::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

const ADMIN_PASSWORD: &str = "load-admin-password";
const VERIFYING_AGENTS: usize = 10;

enum Event {
    Snapshot { agent: usize, version: u64, at: Instant },
    Heartbeat,
}

struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    /// Signs in and keeps the session token.
    async fn login(client: &reqwest::Client, base: &str, username: &str, password: &str) -> Api {
        let login: Value = client
            .post(format!("{base}/auth/local/login"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = login["data"]["session_token"].as_str().unwrap().to_owned();
        Api { client: client.clone(), base: base.to_owned(), token }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let response =
            self.client.post(format!("{}{path}", self.base)).bearer_auth(&self.token).json(&body).send().await.unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.json().await.unwrap()
    }
}

fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// One verdict asked through one of the verifying agents; its round trip.
async fn verify_round_trip(
    senders: &[mpsc::Sender<AgentMessage>],
    verdicts: &mut mpsc::UnboundedReceiver<(u64, Instant)>,
    serials: &[String],
    request_id: u64,
) -> Duration {
    let agent = (request_id as usize) % VERIFYING_AGENTS;
    let request = VerifyRequest {
        common_name: "alice@example.com".into(),
        serial: serials[agent].clone(),
        client_address: "192.0.2.1".into(),
    };
    let sent = Instant::now();
    senders[agent].send(AgentMessage { request_id, body: Some(AgentBody::Verify(request)) }).await.unwrap();
    loop {
        let (id, at) = verdicts.recv().await.unwrap();
        if id == request_id {
            return at - sent;
        }
    }
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0
}

fn summary(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{label}: n={} p50={:.2} ms p99={:.2} ms max={:.2} ms",
        samples.len(),
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        percentile(&samples, 1.0)
    );
}

/// The relay-delay histogram of these nodes (`gatekey_fleet_relay_delay_seconds`),
/// summed: the count at or under each bucket's bound (seconds).
async fn relay_delay_buckets(client: &reqwest::Client, http_addresses: &[String]) -> Vec<(f64, u64)> {
    let mut buckets: Vec<(f64, u64)> = Vec::new();
    for http in http_addresses {
        let text = client.get(format!("http://{http}/metrics")).send().await.unwrap().text().await.unwrap();
        for line in text.lines().filter(|line| line.starts_with("gatekey_fleet_relay_delay_seconds_bucket")) {
            let bound = line.split("le=\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap();
            let bound: f64 = if bound == "+Inf" { f64::INFINITY } else { bound.parse().unwrap() };
            let count: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
            match buckets.iter_mut().find(|(le, _)| *le == bound) {
                Some((_, total)) => *total += count,
                None => buckets.push((bound, count)),
            }
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets
}

/// Prints how long events took from the node that made them to the others, from the
/// histogram's growth between `before` and `after` (a quantile is the bucket bound it
/// falls under).
fn relay_delay_summary(before: &[(f64, u64)], after: &[(f64, u64)]) {
    let grown: Vec<(f64, u64)> = after
        .iter()
        .map(|(le, count)| (*le, count - before.iter().find(|(b, _)| b == le).map_or(0, |(_, c)| *c)))
        .collect();
    let total = grown.last().map_or(0, |(_, count)| *count);
    let under = |q: f64| {
        let wanted = (total as f64 * q).ceil() as u64;
        grown.iter().find(|(_, count)| *count >= wanted).map_or(f64::INFINITY, |(le, _)| le * 1000.0)
    };
    println!(
        "  relay delay, event made on the first node → applied on the others: n={total} p50 ≤ {} ms p99 ≤ {} ms",
        under(0.5),
        under(0.99)
    );
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let agents: usize = args.next().map_or(1000, |n| n.parse().unwrap());
    let changes: usize = args.next().map_or(5, |n| n.parse().unwrap());
    let seconds: u64 = args.next().map_or(5, |n| n.parse().unwrap());

    let nodes: usize = args.next().map_or(1, |n| n.parse().unwrap());
    let database_url = std::env::var("DATABASE_URL").ok();
    assert!(nodes == 1 || database_url.is_some(), "several nodes need DATABASE_URL (PostgreSQL)");

    // The cores, as processes of their own so their memory can be read; the first
    // creates the database and the secret key, the others join it.
    let exe = std::env::current_exe().unwrap();
    let core_binary = exe.parent().unwrap().parent().unwrap().join("gatekey-core");
    let base_dir = std::env::temp_dir().join(format!("gatekey-load-{}", std::process::id()));
    let mut cores = Vec::new();
    for node in 0..nodes {
        let data_dir = base_dir.join(format!("node{node}"));
        let mut command = tokio::process::Command::new(&core_binary);
        command
            .args(["serve", "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
            .args(["--plain-http-cookies", "--no-rate-limits"])
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--secret-key-file")
            .arg(base_dir.join("node0").join("secret.key"))
            .env("GATEKEY_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true);
        if let Some(url) = &database_url {
            command.env("DATABASE_URL", url);
        }
        let mut core = command.spawn().unwrap_or_else(|e| {
            panic!("cannot start {}: {e} (build it with cargo build --release --bins)", core_binary.display())
        });
        let pid = core.id().unwrap();
        let mut lines = BufReader::new(core.stdout.take().unwrap()).lines();
        let ready = loop {
            let line = lines.next_line().await.unwrap().expect("core exited");
            if line.starts_with("gatekey-core ready") {
                break line;
            }
        };
        let field = |name: &str| ready.split_whitespace().find_map(|p| p.strip_prefix(name)).unwrap().to_owned();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        cores.push((core, pid, field("grpc="), field("http=")));
    }
    let http = cores[0].3.clone();

    let client = reqwest::Client::new();
    let base = format!("http://{http}/api/v1");
    let api = Api::login(&client, &base, "admin", ADMIN_PASSWORD).await;
    let user = api.post("/admin/users", json!({"username": "alice", "email": "alice@example.com", "password": "alice-password-1", "groups": ["staff"]})).await;
    let alice_id = user["data"]["id"].as_str().unwrap().to_owned();
    let network = api.post("/admin/networks", json!({"name": "office", "cidrs": ["10.0.0.0/8"]})).await;
    let network_id = network["data"]["id"].as_str().unwrap().to_owned();

    println!("creating {agents} gateways…");
    let gateways: Vec<(String, String)> = futures::stream::iter(0..agents)
        .map(|i| {
            let (api, network_id) = (&api, &network_id);
            async move {
                let created = api
                    .post("/admin/gateways", json!({"name": format!("gw{i:05}"), "hostname": "vpn.example.com"}))
                    .await;
                let id = created["data"]["id"].as_str().unwrap().to_owned();
                api.post(&format!("/admin/gateways/{id}/networks"), json!({"network_id": network_id})).await;
                api.post(&format!("/admin/gateways/{id}/groups"), json!({"group": "staff"})).await;
                (id, created["data"]["token"].as_str().unwrap().to_owned())
            }
        })
        .buffered(16)
        .collect()
        .await;
    // Configs (and so certificates) for the agents that will ask for verdicts.
    let alice = Api::login(&api.client, &api.base, "alice", "alice-password-1").await;
    let mut serials = Vec::new();
    for (gateway_id, _) in gateways.iter().take(VERIFYING_AGENTS) {
        alice.post("/configs/generate", json!({"gateway_id": gateway_id})).await;
        let configs: Value = alice
            .client
            .get(format!("{}/configs?per_page=100", alice.base))
            .bearer_auth(&alice.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let serial =
            configs["data"].as_array().unwrap().iter().find(|c| c["gateway_id"] == *gateway_id).unwrap()["serial"]
                .as_str()
                .unwrap()
                .to_owned();
        serials.push(serial);
    }

    let memory = || cores.iter().map(|(_, pid, _, _)| resident_kib(*pid)).sum::<u64>();
    let before_kib = memory();
    println!("connecting {agents} agents to {nodes} node(s)…");
    let (events, mut event_receiver) = mpsc::unbounded_channel();
    let (verdicts, mut verdict_receiver) = mpsc::unbounded_channel::<(u64, Instant)>();
    let (phase, phase_receiver) = watch::channel(false);
    let mut senders = Vec::with_capacity(agents);
    let started = Instant::now();
    for (index, (_, token)) in gateways.iter().enumerate() {
        // Agent i holds its stream to node i mod nodes; changes are made through node 0.
        let grpc = &cores[index % nodes].2;
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{grpc}")).unwrap().connect().await.unwrap();
        let (outbound, receiver) = mpsc::channel::<AgentMessage>(64);
        outbound.send(AgentMessage { request_id: 0, body: Some(AgentBody::Hello(Hello::default())) }).await.unwrap();
        let mut request = tonic::Request::new(ReceiverStream::new(receiver));
        request.metadata_mut().insert("x-gateway-token", token.parse().unwrap());
        let mut inbound = GatewayAgentServiceClient::new(channel).open_stream(request).await.unwrap().into_inner();
        let (events, verdicts, phase, sender) =
            (events.clone(), verdicts.clone(), phase_receiver.clone(), outbound.clone());
        tokio::spawn(async move {
            while let Ok(Some(message)) = inbound.message().await {
                match message.body {
                    Some(CoreBody::RuleSnapshot(snapshot)) => {
                        let at = Instant::now();
                        let _ = sender
                            .send(AgentMessage {
                                request_id: 0,
                                body: Some(AgentBody::RulesApplied(RulesApplied { version: snapshot.version })),
                            })
                            .await;
                        let _ = events.send(Event::Snapshot { agent: index, version: snapshot.version, at });
                    }
                    Some(CoreBody::HeartbeatAck(_)) => {
                        let _ = events.send(Event::Heartbeat);
                        if *phase.borrow() {
                            let _ = sender
                                .send(AgentMessage {
                                    request_id: 1,
                                    body: Some(AgentBody::Heartbeat(HeartbeatRequest::default())),
                                })
                                .await;
                        }
                    }
                    Some(CoreBody::VerifyResult(_)) => {
                        let _ = verdicts.send((message.request_id, Instant::now()));
                    }
                    _ => {}
                }
            }
        });
        senders.push(outbound);
    }
    // Every agent's first snapshot.
    let mut versions = vec![0u64; agents];
    let mut first = 0;
    while first < agents {
        if let Some(Event::Snapshot { agent, version, .. }) = event_receiver.recv().await {
            versions[agent] = version;
            first += 1;
        }
    }
    println!("{agents} agents connected in {:.2} s", started.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_kib = memory();
    println!(
        "core memory (all nodes): {:.1} MiB before, {:.1} MiB with {agents} agents: {:.1} KiB per connected agent",
        before_kib as f64 / 1024.0,
        after_kib as f64 / 1024.0,
        after_kib.saturating_sub(before_kib) as f64 / agents as f64
    );

    // Rule change → every agent has the new snapshot and has acknowledged it.
    let others: Vec<String> = cores.iter().skip(1).map(|core| core.3.clone()).collect();
    let relayed_before = relay_delay_buckets(&client, &others).await;
    let mut latencies = Vec::with_capacity(agents * changes);
    let (mut on_origin, mut on_others) = (Vec::new(), Vec::new());
    for change in 0..changes {
        let sent = Instant::now();
        api.post("/admin/access-rules", json!({"name": format!("rule{change}"), "network_id": network_id, "user_ids": [alice_id],
                                               "destination_type": "ip", "destination": format!("10.1.0.{}", change + 1)}))
            .await;
        let mut updated = vec![false; agents];
        let mut remaining = agents;
        while remaining > 0 {
            if let Some(Event::Snapshot { agent, version, at }) = event_receiver.recv().await
                && version > versions[agent]
            {
                versions[agent] = version;
                if !updated[agent] {
                    updated[agent] = true;
                    remaining -= 1;
                    latencies.push(at - sent);
                    if agent % nodes == 0 { on_origin.push(at - sent) } else { on_others.push(at - sent) }
                }
            }
        }
    }
    summary(&format!("rule change → ack at {agents} agents on {nodes} node(s) ({changes} changes)"), latencies);
    if nodes > 1 {
        summary("  of which agents on the node that made the change", on_origin);
        summary("  of which agents on the other nodes (relayed)", on_others);
        relay_delay_summary(&relayed_before, &relay_delay_buckets(&client, &others).await);
    }

    // Rule changes back to back for `seconds`: how many a second the cluster commits and
    // relays while every agent keeps up (until each has acknowledged the last one).
    let burst = Instant::now();
    let mut made = 0u64;
    while burst.elapsed() < Duration::from_secs(seconds) {
        api.post("/admin/access-rules", json!({"name": format!("burst{made}"), "network_id": network_id, "user_ids": [alice_id],
                                               "destination_type": "ip", "destination": format!("10.2.{}.{}", made / 250, made % 250 + 1)}))
            .await;
        made += 1;
    }
    let committed = burst.elapsed();
    // Each change bumps every gateway's rules once: wait until every agent has
    // acknowledged its last version (or 30 s pass).
    let mut remaining = agents;
    let mut last_ack = committed;
    let mut done = vec![false; agents];
    while remaining > 0 && burst.elapsed() < committed + Duration::from_secs(30) {
        if let Ok(Some(Event::Snapshot { agent, version, at })) =
            tokio::time::timeout(Duration::from_secs(1), event_receiver.recv()).await
            && !done[agent]
            && version >= versions[agent] + made
        {
            done[agent] = true;
            remaining -= 1;
            last_ack = at - burst;
        }
    }
    println!(
        "rule changes back to back: {made} in {:.1} s = {:.0} changes/s committed and relayed to {agents} agents \
         (the last agent acknowledged the last change {:.2} s after it; {remaining} agents behind)",
        committed.as_secs_f64(),
        made as f64 / committed.as_secs_f64(),
        last_ack.saturating_sub(committed).as_secs_f64()
    );

    // Verdicts one after another on an otherwise idle core.
    let mut idle_rtts = Vec::new();
    for id in 0..200 {
        idle_rtts.push(verify_round_trip(&senders, &mut verdict_receiver, &serials, 500_000 + id).await);
    }
    summary("verify round trip, idle", idle_rtts);

    // Heartbeats as fast as the core acknowledges them, with verdicts asked meanwhile.
    phase.send(true).unwrap();
    while event_receiver.try_recv().is_ok() {}
    let window = Instant::now();
    for sender in &senders {
        sender
            .send(AgentMessage { request_id: 1, body: Some(AgentBody::Heartbeat(HeartbeatRequest::default())) })
            .await
            .unwrap();
    }
    let mut verify_rtts = Vec::new();
    let mut next_id = 1_000_000u64;
    let deadline = window + Duration::from_secs(seconds);
    let mut heartbeats = 0u64;
    while Instant::now() < deadline {
        next_id += 1;
        verify_rtts.push(verify_round_trip(&senders, &mut verdict_receiver, &serials, next_id).await);
        while let Ok(event) = event_receiver.try_recv() {
            if matches!(event, Event::Heartbeat) {
                heartbeats += 1;
            }
        }
    }
    phase.send(false).unwrap();
    let elapsed = window.elapsed().as_secs_f64();
    println!(
        "heartbeats absorbed: {:.0} per second ({heartbeats} in {elapsed:.1} s from {agents} agents)",
        heartbeats as f64 / elapsed
    );
    summary("verify round trip under heartbeat load", verify_rtts);
    drop(senders);
    for (mut core, ..) in cores {
        let _ = core.kill().await;
    }
    let _ = std::fs::remove_dir_all(&base_dir);
}
