//! The fleet benchmark: every hot path against its target, next to a floor measured in
//! the same run. Starts real `gatekey-core` processes on loopback (spread over `nodes`
//! core nodes sharing one database), connects `gateways` simulated agents (real gRPC
//! streams), and prints one table: rule change → acknowledged by every agent (beside a
//! bare tonic server's push to as many streams, in a process of its own), verify round
//! trips with heartbeats at the real interval and under a 10× flood, configs per
//! second through REST, a REST call beside the same gRPC call, a REST list under 16
//! connections, core memory per connected agent, and the cold start. Multi-node runs
//! also split the push latency by whether the agent's node made the change, and give
//! the relay delay between nodes.
//!
//! `cargo build --release --workspace --bins --example fleet_bench && target/release/examples/fleet_bench [gateways] [changes] [seconds] [nodes]`
//!
//! `fleet_bench cluster [agents] [changes] [seconds]` (PostgreSQL only) compares, in one
//! run, the agents on one node with the same agents spread over three: change →
//! acknowledged by every agent, changes sustained by admins writing through every node,
//! memory per agent, and for three nodes a relay probe (see [`compare_layouts`]).
//!
//! With `DATABASE_URL` (an empty PostgreSQL database) the nodes share it; without it,
//! one node runs on SQLite. With `FLEET_BENCH_PERF_DIR`, `perf record` samples the first
//! node during each measured phase, into `<dir>/<phase>.data` (`perf report -i …`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use futures::StreamExt;
use gatekey::v1::admin_gateway_service_client::AdminGatewayServiceClient;
use gatekey::v1::agent_message::Body as AgentBody;
use gatekey::v1::core_message::Body as CoreBody;
use gatekey::v1::gateway_agent_service_client::GatewayAgentServiceClient;
use gatekey::v1::*;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const ADMIN_PASSWORD: &str = "bench-admin-password";
/// Agents that ask for verdicts (each with a certificate of alice's).
const VERIFYING_AGENTS: usize = 10;
/// Verdicts asked per second in the verify figures.
const VERIFIES_PER_SECOND: u64 = 500;
/// Concurrent connections of the REST and gRPC throughput figures.
const CONNECTIONS: usize = 16;

/// What the simulated agents hear.
enum Heard {
    Snapshot { agent: usize, version: u64, at: Instant },
    Verdict { request_id: u64, at: Instant },
}

/// One row of the final table.
struct Row {
    figure: String,
    target: &'static str,
    measured: String,
    floor: String,
    met: bool,
}

/// A core process.
struct Node {
    process: tokio::process::Child,
    pid: u32,
    grpc: String,
    http: String,
}

/// `perf record` sampling a core process during one measured phase, when
/// `FLEET_BENCH_PERF_DIR` asks for it.
struct PhaseProfile(Option<std::process::Child>);

impl PhaseProfile {
    /// Starts sampling process `pid` for `phase` (nothing without `FLEET_BENCH_PERF_DIR`).
    fn start(pid: u32, phase: &str) -> PhaseProfile {
        let Ok(dir) = std::env::var("FLEET_BENCH_PERF_DIR") else { return PhaseProfile(None) };
        std::fs::create_dir_all(&dir).unwrap();
        let output = format!("{dir}/{phase}.data");
        let recorder = std::process::Command::new("perf")
            .args(["record", "-q", "-F", "997", "-p", &pid.to_string(), "-o", &output])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("perf record");
        PhaseProfile(Some(recorder))
    }

    /// Stops sampling and waits for the profile to be written.
    fn finish(self) {
        if let Some(mut recorder) = self.0 {
            std::process::Command::new("kill").args(["-INT", &recorder.id().to_string()]).status().unwrap();
            recorder.wait().unwrap();
        }
    }
}

/// The admin's (or a user's) REST session.
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

    async fn put(&self, path: &str, body: Value) -> Value {
        let response =
            self.client.put(format!("{}{path}", self.base)).bearer_auth(&self.token).json(&body).send().await.unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.json().await.unwrap()
    }

    async fn get(&self, path: &str) -> Value {
        let response = self.client.get(format!("{}{path}", self.base)).bearer_auth(&self.token).send().await.unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.json().await.unwrap()
    }
}

fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The `q` quantile of sorted samples, in milliseconds.
fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0
}

fn summary(label: &str, samples: &mut [Duration]) {
    samples.sort();
    println!(
        "{label}: n={} min={:.2} ms p50={:.2} ms p99={:.2} ms max={:.2} ms",
        samples.len(),
        quantile_ms(samples, 0.0),
        quantile_ms(samples, 0.5),
        quantile_ms(samples, 0.99),
        quantile_ms(samples, 1.0)
    );
}

/// Starts a core node; the first makes the database and the secret key, the others join
/// them. Answers the node and how long it took from the start to serving.
async fn start_node(base_dir: &std::path::Path, node: usize, database_url: Option<&str>) -> (Node, Duration) {
    let exe = std::env::current_exe().unwrap();
    let core_binary = exe.parent().unwrap().parent().unwrap().join("gatekey-core");
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
    if let Some(url) = database_url {
        command.env("DATABASE_URL", url);
    }
    let started = Instant::now();
    let mut process = command.spawn().unwrap_or_else(|e| {
        panic!("cannot start {}: {e} (build it with cargo build --release --bins)", core_binary.display())
    });
    let pid = process.id().unwrap();
    let mut lines = BufReader::new(process.stdout.take().unwrap()).lines();
    let ready = loop {
        let line = lines.next_line().await.unwrap().expect("core exited");
        if line.starts_with("gatekey-core ready") {
            break line;
        }
    };
    let cold_start = started.elapsed();
    let field = |name: &str| ready.split_whitespace().find_map(|p| p.strip_prefix(name)).unwrap().to_owned();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (Node { process, pid, grpc: field("grpc="), http: field("http=") }, cold_start)
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
    let (total, p50, p99) = relay_delay_quantiles(before, after);
    println!(
        "  relay delay, event made on the first node → applied on the others: n={total} p50 ≤ {p50} ms p99 ≤ {p99} ms"
    );
}

/// How many events the relay-delay histogram gained between `before` and `after`, and
/// the bucket bounds (ms) their p50 and p99 fall under.
fn relay_delay_quantiles(before: &[(f64, u64)], after: &[(f64, u64)]) -> (u64, f64, f64) {
    let grown: Vec<(f64, u64)> = after
        .iter()
        .map(|(le, count)| (*le, count - before.iter().find(|(b, _)| b == le).map_or(0, |(_, c)| *c)))
        .collect();
    let total = grown.last().map_or(0, |(_, count)| *count);
    let under = |q: f64| {
        let wanted = (total as f64 * q).ceil() as u64;
        grown.iter().find(|(_, count)| *count >= wanted).map_or(f64::INFINITY, |(le, _)| le * 1000.0)
    };
    (total, under(0.5), under(0.99))
}

/// The simulated fleet: a stream per gateway, and what the agents heard.
struct Fleet {
    senders: Vec<mpsc::Sender<AgentMessage>>,
    heard: mpsc::UnboundedReceiver<Heard>,
    versions: Vec<u64>,
    serials: Vec<String>,
    heartbeat_interval: Duration,
}

/// Connects agent `index` with `token` to the node at `grpc`; answers its outbound queue
/// and the heartbeat interval its welcome names. The agent acknowledges snapshots at once.
async fn connect_agent(
    index: usize,
    grpc: &str,
    token: &str,
    heard_sender: mpsc::UnboundedSender<Heard>,
) -> (mpsc::Sender<AgentMessage>, u32) {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc}"))
        .unwrap()
        .tcp_nodelay(true)
        .connect()
        .await
        .unwrap();
    let (outbound, receiver) = mpsc::channel::<AgentMessage>(64);
    outbound.send(AgentMessage { request_id: 0, body: Some(AgentBody::Hello(Hello::default())) }).await.unwrap();
    let mut request = tonic::Request::new(ReceiverStream::new(receiver));
    request.metadata_mut().insert("x-gateway-token", token.parse().unwrap());
    let mut inbound = GatewayAgentServiceClient::new(channel).open_stream(request).await.unwrap().into_inner();
    let sender = outbound.clone();
    let (interval_sender, interval_receiver) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut interval_sender = Some(interval_sender);
        while let Ok(Some(message)) = inbound.message().await {
            match message.body {
                Some(CoreBody::Welcome(welcome)) => {
                    if let Some(reply) = interval_sender.take() {
                        let _ = reply.send(welcome.heartbeat_interval_seconds);
                    }
                }
                Some(CoreBody::RuleSnapshot(snapshot)) => {
                    let at = Instant::now();
                    let applied = RulesApplied { version: snapshot.version };
                    let _ =
                        sender.send(AgentMessage { request_id: 0, body: Some(AgentBody::RulesApplied(applied)) }).await;
                    let _ = heard_sender.send(Heard::Snapshot { agent: index, version: snapshot.version, at });
                }
                Some(CoreBody::VerifyResult(_)) => {
                    let _ = heard_sender.send(Heard::Verdict { request_id: message.request_id, at: Instant::now() });
                }
                _ => {}
            }
        }
    });
    (outbound, interval_receiver.await.unwrap_or(30))
}

/// Connects an agent to every gateway, agent i to node i mod nodes, and waits for every
/// first snapshot.
async fn connect_fleet(nodes: &[Node], gateways: &[(String, String)], serials: Vec<String>) -> Fleet {
    let (heard_sender, mut heard) = mpsc::unbounded_channel();
    let connected: Vec<(mpsc::Sender<AgentMessage>, u32)> = futures::stream::iter(gateways.iter().enumerate())
        .map(|(index, (_, token))| {
            let (grpc, heard_sender) = (nodes[index % nodes.len()].grpc.clone(), heard_sender.clone());
            async move { connect_agent(index, &grpc, token, heard_sender).await }
        })
        .buffered(32)
        .collect()
        .await;
    let heartbeat_interval =
        Duration::from_secs(u64::from(connected.iter().map(|(_, s)| *s).max().unwrap_or(30).max(1)));
    let senders: Vec<mpsc::Sender<AgentMessage>> = connected.into_iter().map(|(sender, _)| sender).collect();
    let mut versions = vec![0u64; gateways.len()];
    let mut first = 0;
    while first < gateways.len() {
        if let Some(Heard::Snapshot { agent, version, .. }) = heard.recv().await {
            versions[agent] = version;
            first += 1;
        }
    }
    Fleet { senders, heard, versions, serials, heartbeat_interval }
}

impl Fleet {
    /// `changes` rule changes, each made by `change(i)` and heard by every agent: see
    /// [`Fleet::measure_pushes_to`].
    async fn measure_pushes<F, Fut>(
        &mut self,
        changes: usize,
        node_count: usize,
        change: F,
    ) -> (Vec<Duration>, Vec<Duration>, Vec<Duration>)
    where
        F: FnMut(usize) -> Fut,
        Fut: Future,
    {
        let agents = self.versions.len();
        self.measure_pushes_to(agents, changes, node_count, change).await
    }

    /// `changes` rule changes, each made by `change(i)` and heard by the first `agents`
    /// agents: for each, how long each of them took to hear it (from the call), all of
    /// them and split into the agents on the first of `node_count` nodes (agent i is on
    /// node i mod `node_count`) and the rest, in the order they heard.
    async fn measure_pushes_to<F, Fut>(
        &mut self,
        agents: usize,
        changes: usize,
        node_count: usize,
        mut change: F,
    ) -> (Vec<Duration>, Vec<Duration>, Vec<Duration>)
    where
        F: FnMut(usize) -> Fut,
        Fut: Future,
    {
        let (mut latencies, mut on_origin, mut on_others) =
            (Vec::with_capacity(agents * changes), Vec::new(), Vec::new());
        for index in 0..changes {
            let sent = Instant::now();
            change(index).await;
            let mut updated = vec![false; agents];
            let mut remaining = agents;
            while remaining > 0 {
                if let Some(Heard::Snapshot { agent, version, at }) = self.heard.recv().await
                    && version > self.versions[agent]
                {
                    self.versions[agent] = version;
                    if agent < agents && !updated[agent] {
                        updated[agent] = true;
                        remaining -= 1;
                        latencies.push(at - sent);
                        if agent % node_count == 0 { on_origin.push(at - sent) } else { on_others.push(at - sent) }
                    }
                }
            }
        }
        (latencies, on_origin, on_others)
    }

    /// Rule changes, each raising every gateway's rule version by one, made back to back
    /// for `seconds` by `writers` concurrent calls of `change(writer, i)`. Answers how
    /// many were made, how many a second while they were made, and how many a second
    /// until every agent had acknowledged the last (none if the fleet had not within a
    /// minute).
    async fn sustain_changes<F, Fut>(&mut self, seconds: u64, writers: usize, change: F) -> (usize, f64, Option<f64>)
    where
        F: Fn(usize, usize) -> Fut,
        Fut: Future,
    {
        let started = Instant::now();
        let made: usize = futures::future::join_all((0..writers).map(|writer| {
            let change = &change;
            async move {
                let mut made = 0;
                while started.elapsed() < Duration::from_secs(seconds) {
                    change(writer, made).await;
                    made += 1;
                }
                made
            }
        }))
        .await
        .into_iter()
        .sum();
        let making = started.elapsed();
        let wanted: Vec<u64> = self.versions.iter().map(|version| version + made as u64).collect();
        let mut behind = wanted.iter().zip(&self.versions).filter(|(want, have)| have < want).count();
        let mut last_ack = started;
        let deadline = Instant::now() + Duration::from_secs(60);
        while behind > 0 {
            let Ok(heard) = tokio::time::timeout_at(deadline.into(), self.heard.recv()).await else { break };
            if let Some(Heard::Snapshot { agent, version, at }) = heard
                && version > self.versions[agent]
            {
                if self.versions[agent] < wanted[agent] && version >= wanted[agent] {
                    behind -= 1;
                    last_ack = last_ack.max(at);
                }
                self.versions[agent] = version;
            }
        }
        let per_second = |elapsed: Duration| made as f64 / elapsed.as_secs_f64();
        (made, per_second(making), (behind == 0).then(|| per_second(last_ack - started)))
    }

    /// Verdict round trips while every agent heartbeats `heartbeat_speedup` times as
    /// often as the core asks, with `VERIFIES_PER_SECOND` verdicts asked (open loop)
    /// over `seconds`.
    async fn verify_under_heartbeats(&mut self, heartbeat_speedup: u32, seconds: u64) -> Vec<Duration> {
        let agents = self.senders.len();
        let heartbeats_per_second =
            agents as f64 * f64::from(heartbeat_speedup) / self.heartbeat_interval.as_secs_f64();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let heartbeating = {
            let (senders, stop) = (self.senders.clone(), stop.clone());
            tokio::spawn(async move {
                let tick = Duration::from_millis(10);
                let per_tick = heartbeats_per_second * tick.as_secs_f64();
                let (mut owed, mut next) = (0.0, 0usize);
                let mut ticks = tokio::time::interval(tick);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    ticks.tick().await;
                    owed += per_tick;
                    while owed >= 1.0 {
                        owed -= 1.0;
                        let heartbeat = AgentMessage {
                            request_id: 1,
                            body: Some(AgentBody::Heartbeat(HeartbeatRequest::default())),
                        };
                        let _ = senders[next % senders.len()].try_send(heartbeat);
                        next += 1;
                    }
                }
            })
        };
        let sent: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
        let asking = {
            let (senders, serials, sent) = (self.senders.clone(), self.serials.clone(), sent.clone());
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 / VERIFIES_PER_SECOND));
                let total = VERIFIES_PER_SECOND * seconds;
                for request_id in 10_000..10_000 + total {
                    ticks.tick().await;
                    let agent = (request_id as usize) % VERIFYING_AGENTS;
                    let request = VerifyRequest {
                        common_name: "alice@example.com".into(),
                        serial: serials[agent].clone(),
                        client_address: "192.0.2.1".into(),
                    };
                    sent.lock().unwrap().insert(request_id, Instant::now());
                    let message = AgentMessage { request_id, body: Some(AgentBody::Verify(request)) };
                    senders[agent].send(message).await.unwrap();
                }
                total
            })
        };
        let mut round_trips = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(seconds + 10);
        loop {
            let asked_all = asking.is_finished();
            if asked_all && sent.lock().unwrap().is_empty() || Instant::now() > deadline {
                break;
            }
            if let Ok(Some(Heard::Verdict { request_id, at })) =
                tokio::time::timeout(Duration::from_millis(100), self.heard.recv()).await
                && let Some(asked) = sent.lock().unwrap().remove(&request_id)
            {
                round_trips.push(at - asked);
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        heartbeating.await.unwrap();
        round_trips
    }
}

/// Runs `call` from `CONNECTIONS` workers, each on its own connection (from `connect`),
/// one request after another, for `seconds`; answers requests per second.
async fn throughput<C, F, Fut>(seconds: u64, connect: impl Fn() -> C, call: F) -> f64
where
    C: Send + 'static,
    F: Fn(C) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = C> + Send,
{
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..CONNECTIONS {
        let (mut connection, call) = (connect(), call.clone());
        workers.spawn(async move {
            let mut done = 0u64;
            while started.elapsed() < Duration::from_secs(seconds) {
                connection = call(connection).await;
                done += 1;
            }
            done
        });
    }
    let mut total = 0;
    while let Some(done) = workers.join_next().await {
        total += done.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// REST requests per second from `CONNECTIONS` connections, each sending what `request`
/// builds, one after another, for `seconds`; every answer must be a success.
async fn rest_throughput<R>(seconds: u64, request: R) -> f64
where
    R: Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync + Clone + 'static,
{
    throughput(seconds, reqwest::Client::new, move |connection: reqwest::Client| {
        let request = request(&connection);
        async move {
            let response = request.send().await.unwrap();
            assert!(response.status().is_success(), "{}", response.status());
            response.bytes().await.unwrap();
            connection
        }
    })
    .await
}

/// The median of `requests` sequential calls (after a warm-up).
async fn sequential_median<F, Fut>(requests: usize, mut call: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    for _ in 0..requests / 10 {
        call().await;
    }
    let mut samples = Vec::with_capacity(requests);
    for _ in 0..requests {
        let sent = Instant::now();
        call().await;
        samples.push(sent.elapsed());
    }
    samples.sort();
    samples[samples.len() / 2]
}

/// The floor of the verify figures: a bare tonic round trip (the health check of a
/// server in this process, which does nothing else), p99 of sequential calls.
/// What the push floor sends an agent through.
type FloorStream = mpsc::Sender<Result<CoreMessage, tonic::Status>>;

/// The floor of the rule push: a bare tonic server in a process of its own, as the core
/// is, holding the agents' streams and doing nothing but push a snapshot of the same
/// shape to every stream when asked (by a unary `Heartbeat` call), reading the
/// acknowledgements and dropping them.
#[derive(Clone)]
struct PushFloorServer {
    streams: Arc<Mutex<Vec<FloorStream>>>,
    version: Arc<std::sync::atomic::AtomicU64>,
}

impl PushFloorServer {
    /// The snapshot pushed: one client with ten rules and a route, as the real fleet
    /// holds after ten changes.
    fn snapshot(version: u64) -> CoreMessage {
        let rules = (1..=10)
            .map(|i| FirewallRule {
                destination: format!("10.1.0.{i}/32"),
                protocol: "any".into(),
                ..Default::default()
            })
            .collect();
        let client = ClientRules {
            common_name: "alice@example.com".into(),
            user_id: "usr-0123456789abcdef".into(),
            rules,
            push_routes: vec!["10.0.0.0/8".into()],
        };
        CoreMessage {
            request_id: 0,
            body: Some(CoreBody::RuleSnapshot(RuleSnapshot { version, clients: vec![client] })),
        }
    }

    /// Serves on loopback and prints `listening <address>`, until killed.
    async fn serve() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("listening {}", listener.local_addr().unwrap());
        let server = PushFloorServer { streams: Arc::default(), version: Arc::default() };
        tonic::transport::Server::builder()
            .add_service(gatekey::v1::gateway_agent_service_server::GatewayAgentServiceServer::new(server))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener).map(|stream| {
                stream.inspect(|stream| {
                    let _ = stream.set_nodelay(true);
                })
            }))
            .await
            .unwrap();
    }
}

#[tonic::async_trait]
impl gatekey::v1::gateway_agent_service_server::GatewayAgentService for PushFloorServer {
    type OpenStreamStream = ReceiverStream<Result<CoreMessage, tonic::Status>>;

    async fn open_stream(
        &self,
        request: tonic::Request<tonic::Streaming<AgentMessage>>,
    ) -> Result<tonic::Response<Self::OpenStreamStream>, tonic::Status> {
        let (sender, receiver) = mpsc::channel(16);
        let welcome = Welcome { heartbeat_interval_seconds: 30, ..Default::default() };
        let _ = sender.send(Ok(CoreMessage { request_id: 0, body: Some(CoreBody::Welcome(welcome)) })).await;
        let version = self.version.load(std::sync::atomic::Ordering::Acquire);
        let _ = sender.send(Ok(Self::snapshot(version))).await;
        self.streams.lock().unwrap().push(sender);
        let mut inbound = request.into_inner();
        tokio::spawn(async move { while let Ok(Some(_)) = inbound.message().await {} });
        Ok(tonic::Response::new(ReceiverStream::new(receiver)))
    }

    async fn heartbeat(
        &self,
        _: tonic::Request<HeartbeatRequest>,
    ) -> Result<tonic::Response<HeartbeatResponse>, tonic::Status> {
        let version = self.version.fetch_add(1, std::sync::atomic::Ordering::AcqRel) + 1;
        let message = Self::snapshot(version);
        let streams = self.streams.lock().unwrap().clone();
        for stream in streams {
            let _ = stream.try_send(Ok(message.clone()));
        }
        Ok(tonic::Response::new(HeartbeatResponse::default()))
    }

    async fn verify(&self, _: tonic::Request<VerifyRequest>) -> Result<tonic::Response<VerifyResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("the push floor only pushes"))
    }

    async fn report_connect(
        &self,
        _: tonic::Request<ClientConnected>,
    ) -> Result<tonic::Response<ReportResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("the push floor only pushes"))
    }

    async fn report_disconnect(
        &self,
        _: tonic::Request<ClientDisconnected>,
    ) -> Result<tonic::Response<ReportResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("the push floor only pushes"))
    }

    async fn provision(
        &self,
        _: tonic::Request<ProvisionRequest>,
    ) -> Result<tonic::Response<ProvisionResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("the push floor only pushes"))
    }

    async fn get_client_rules(
        &self,
        _: tonic::Request<GetClientRulesRequest>,
    ) -> Result<tonic::Response<ClientRules>, tonic::Status> {
        Err(tonic::Status::unimplemented("the push floor only pushes"))
    }

    async fn get_all_rules(
        &self,
        _: tonic::Request<GetAllRulesRequest>,
    ) -> Result<tonic::Response<RuleSnapshot>, tonic::Status> {
        Err(tonic::Status::unimplemented("the push floor only pushes"))
    }
}

/// The push floor for `agents` agents: starts [`PushFloorServer`] (this program, again),
/// connects the agents, and answers the p99 of `changes` pushes, each from the call that
/// asks for it to every agent's receipt.
async fn push_floor_p99(agents: usize, changes: usize) -> f64 {
    let mut process = tokio::process::Command::new(std::env::current_exe().unwrap())
        .arg("push-floor-server")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = process.id().unwrap();
    let mut lines = BufReader::new(process.stdout.take().unwrap()).lines();
    let address = lines.next_line().await.unwrap().unwrap().strip_prefix("listening ").unwrap().to_owned();
    let node = Node { process, pid, grpc: address.clone(), http: String::new() };
    let tokens: Vec<(String, String)> = (0..agents).map(|i| (format!("gw-{i}"), format!("token-{i}"))).collect();
    let mut fleet = connect_fleet(std::slice::from_ref(&node), &tokens, Vec::new()).await;
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap();
    let trigger = GatewayAgentServiceClient::new(channel);
    let (mut latencies, _, _) = fleet
        .measure_pushes(changes, 1, |_| {
            let mut trigger = trigger.clone();
            async move {
                trigger.heartbeat(HeartbeatRequest::default()).await.unwrap();
            }
        })
        .await;
    latencies.sort();
    drop(fleet);
    drop(node);
    quantile_ms(&latencies, 0.99)
}

async fn tonic_echo_p99() -> f64 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (_reporter, service) = tonic_health::server::health_reporter();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .tcp_nodelay(true)
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    let mut samples = Vec::new();
    for round in 0..2200 {
        let sent = Instant::now();
        health.check(HealthCheckRequest { service: String::new() }).await.unwrap();
        if round >= 200 {
            samples.push(sent.elapsed());
        }
    }
    samples.sort();
    quantile_ms(&samples, 0.99)
}

/// The floor of config generation: the same key generation and signing with no storage
/// or network, on every core, per second.
async fn crypto_floor(seconds: u64) -> f64 {
    let (authority, _) = gatekey_core::pki::CertificateAuthority::create("bench CA", 365).unwrap();
    let authority = Arc::new(authority);
    let started = Instant::now();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut workers = Vec::new();
    for _ in 0..threads {
        let authority = authority.clone();
        workers.push(tokio::task::spawn_blocking(move || {
            let purpose = gatekey_core::pki::CertificatePurpose::Client { email: "alice@example.com".into() };
            let mut done = 0u64;
            while started.elapsed() < Duration::from_secs(seconds) {
                authority.issue(&purpose, 3600).unwrap();
                done += 1;
            }
            done
        }));
    }
    let mut total = 0;
    for worker in workers {
        total += worker.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// Creates `count` gateways, each attached to `network_id` and granted to the group
/// `staff`; answers their ids and agent tokens.
async fn create_gateways(api: &Api, count: usize, network_id: &str) -> Vec<(String, String)> {
    println!("creating {count} gateways…");
    futures::stream::iter(0..count)
        .map(|i| async move {
            let created =
                api.post("/admin/gateways", json!({"name": format!("gw{i:05}"), "hostname": "vpn.example.com"})).await;
            let id = created["data"]["id"].as_str().unwrap().to_owned();
            api.post(&format!("/admin/gateways/{id}/networks"), json!({"network_id": network_id})).await;
            api.post(&format!("/admin/gateways/{id}/groups"), json!({"group": "staff"})).await;
            (id, created["data"]["token"].as_str().unwrap().to_owned())
        })
        .buffered(16)
        .collect()
        .await
}

/// Admin sessions writing concurrently in the sustained-changes figure.
const WRITERS: usize = 4;
/// Changes made before the measured ones of each layout.
const WARM_UP_CHANGES: usize = 2;
/// Changes of the relay probe (each heard by one agent per node).
const PROBE_CHANGES: usize = 200;

/// The body replacing the rule `name` on `network_id` for `user_id`, its destination an
/// address in `prefix` (two octets) chosen by `n`.
fn rule_body(name: &str, network_id: &str, prefix: &str, user_id: &str, n: usize) -> Value {
    json!({"name": name, "network_id": network_id, "user_ids": [user_id], "destination_type": "ip",
           "destination": format!("{prefix}.{}.{}", n / 250 % 250, 1 + n % 250)})
}

/// What one layout of [`compare_layouts`] measured.
struct LayoutFigures {
    push: Vec<Duration>,
    sustained: (usize, f64, Option<f64>),
    per_agent_kib: f64,
    relay: Option<RelayFigures>,
}

/// The relay between nodes, from the probe: agents on the node making each change and
/// on the others, and the core's own delay histogram.
struct RelayFigures {
    on_origin: Vec<Duration>,
    on_others: Vec<Duration>,
    /// Per change and relayed agent: its latency less the origin agent's.
    added: Vec<f64>,
    histogram: (u64, f64, f64),
    /// The same histogram during the measured changes of the whole fleet.
    during_push: (u64, f64, f64),
}

/// `cluster` mode: in one run, `agents` agents on one node against the same agents spread
/// over three nodes, on the PostgreSQL database at `database_url` (empty). For each:
/// change → acknowledged by every agent, changes sustained by `WRITERS` admins writing
/// through every node, and core memory per agent; for three nodes also the relay probe,
/// `PROBE_CHANGES` changes each heard by one agent per node.
async fn compare_layouts(agents: usize, changes: usize, seconds: u64, database_url: &str) {
    println!("the push floor: a bare tonic server pushing to {agents} streams…");
    let push_floor = push_floor_p99(agents, changes).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let base_dir = std::env::temp_dir().join(format!("gatekey-fleet-bench-{}", std::process::id()));
    let client = reqwest::Client::new();

    // The store: gateways on `office` for the group staff, alice in it, one rule the
    // changes replace, and the probe network on the first three gateways only.
    let (mut setup, _) = start_node(&base_dir, 0, Some(database_url)).await;
    let api = Api::login(&client, &format!("http://{}/api/v1", setup.http), "admin", ADMIN_PASSWORD).await;
    let user = api.post("/admin/users", json!({"username": "alice", "email": "alice@example.com", "password": "alice-password-1", "groups": ["staff"]})).await;
    let alice_id = user["data"]["id"].as_str().unwrap().to_owned();
    let office = api.post("/admin/networks", json!({"name": "office", "cidrs": ["10.0.0.0/8"]})).await;
    let office_id = office["data"]["id"].as_str().unwrap().to_owned();
    let gateways = create_gateways(&api, agents, &office_id).await;
    let rule = api.post("/admin/access-rules", rule_body("changing", &office_id, "10.1", &alice_id, 0)).await;
    let rule_path = format!("/admin/access-rules/{}", rule["data"]["id"].as_str().unwrap());
    let probe = api.post("/admin/networks", json!({"name": "probe", "cidrs": ["172.16.0.0/12"]})).await;
    let probe_id = probe["data"]["id"].as_str().unwrap().to_owned();
    for (gateway_id, _) in gateways.iter().take(3) {
        api.post(&format!("/admin/gateways/{gateway_id}/networks"), json!({"network_id": probe_id})).await;
    }
    let probe_rule = api.post("/admin/access-rules", rule_body("probe", &probe_id, "172.16", &alice_id, 0)).await;
    let probe_path = format!("/admin/access-rules/{}", probe_rule["data"]["id"].as_str().unwrap());
    let _ = setup.process.kill().await;

    let mut figures = Vec::new();
    for node_count in [1, 3] {
        let mut nodes = Vec::new();
        for node in 0..node_count {
            nodes.push(start_node(&base_dir, node, Some(database_url)).await.0);
        }
        let mut apis = Vec::new();
        for node in &nodes {
            apis.push(Api::login(&client, &format!("http://{}/api/v1", node.http), "admin", ADMIN_PASSWORD).await);
        }
        let memory = || nodes.iter().map(|node| resident_kib(node.pid)).sum::<u64>();
        let before_kib = memory();
        println!("connecting {agents} agents to {node_count} node(s)…");
        let mut fleet = connect_fleet(&nodes, &gateways, Vec::new()).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let per_agent_kib = memory().saturating_sub(before_kib) as f64 / agents as f64;

        // Two changes first warm the new processes (their connections prepare the
        // snapshot statements at first use).
        let others: Vec<String> = nodes.iter().skip(1).map(|node| node.http.clone()).collect();
        let mut made = 0;
        let mut push = Vec::new();
        let mut relay_during_push = relay_delay_buckets(&client, &others).await;
        for (round, changes) in [(0, WARM_UP_CHANGES), (1, changes)] {
            let (latencies, _, _) = fleet
                .measure_pushes(changes, node_count, |_| {
                    made += 1;
                    apis[0].put(&rule_path, rule_body("changing", &office_id, "10.1", &alice_id, made))
                })
                .await;
            if round == 0 {
                relay_during_push = relay_delay_buckets(&client, &others).await;
            } else {
                push = latencies;
            }
        }
        let relay_during_push = relay_delay_quantiles(&relay_during_push, &relay_delay_buckets(&client, &others).await);
        summary(&format!("rule change → ack at {agents} agents on {node_count} node(s)"), &mut push);
        // Each writer replaces the rule with destinations of its own.
        let sustained = fleet
            .sustain_changes(seconds, WRITERS, |writer, n| {
                apis[writer % apis.len()]
                    .put(&rule_path, rule_body("changing", &office_id, "10.1", &alice_id, (writer + 1) * 100_000 + n))
            })
            .await;
        let acknowledged = sustained.2.map_or("not all within a minute".into(), |rate| format!("{rate:.1}/s"));
        println!(
            "  sustained: {} changes, {:.1}/s made, {acknowledged} acknowledged by every agent",
            sustained.0, sustained.1
        );

        let relay = if node_count > 1 {
            let before = relay_delay_buckets(&client, &others).await;
            let (_, mut on_origin, mut on_others) = fleet
                .measure_pushes_to(node_count, PROBE_CHANGES, node_count, |n| {
                    apis[0].put(&probe_path, rule_body("probe", &probe_id, "172.16", &alice_id, n + 1))
                })
                .await;
            let added: Vec<f64> = on_others
                .chunks(node_count - 1)
                .zip(&on_origin)
                .flat_map(|(relayed, origin)| relayed.iter().map(|r| (r.as_secs_f64() - origin.as_secs_f64()) * 1000.0))
                .collect();
            let histogram = relay_delay_quantiles(&before, &relay_delay_buckets(&client, &others).await);
            on_origin.sort();
            on_others.sort();
            Some(RelayFigures { on_origin, on_others, added, histogram, during_push: relay_during_push })
        } else {
            None
        };
        figures.push((node_count, LayoutFigures { push, sustained, per_agent_kib, relay }));
        drop(fleet);
        for mut node in nodes {
            let _ = node.process.kill().await;
        }
        // The agents' connections close before the next layout's open.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    println!();
    println!(
        "| agents × nodes | change → ack by every agent, p50 / p99 | bare tonic push floor, p99 | changes sustained ({WRITERS} admins): made / acknowledged by every agent | core memory per agent |"
    );
    println!("|---|---|---|---|---|");
    for (node_count, layout) in &figures {
        let (made, made_per_second, acknowledged) = layout.sustained;
        let acknowledged = acknowledged.map_or("not all within a minute".into(), |rate| format!("{rate:.1}/s"));
        println!(
            "| {agents} × {node_count} | {:.0} / {:.0} ms | {push_floor:.0} ms | {made_per_second:.1}/s / {acknowledged} ({made} changes in {seconds} s) | {:.0} KiB |",
            quantile_ms(&layout.push, 0.5),
            quantile_ms(&layout.push, 0.99),
            layout.per_agent_kib,
        );
    }
    for (node_count, layout) in &figures {
        let Some(relay) = &layout.relay else { continue };
        let mut added = relay.added.clone();
        added.sort_by(f64::total_cmp);
        let added_at = |q: f64| added[((added.len() - 1) as f64 * q).round() as usize];
        let (count, p50, p99) = relay.histogram;
        println!();
        println!(
            "relay probe, {PROBE_CHANGES} changes through the first of {node_count} nodes, each heard by one agent per node (beside the {agents} others):"
        );
        println!(
            "  change → ack on the node that made it p50 {:.1} / p99 {:.1} ms; on the others p50 {:.1} / p99 {:.1} ms",
            quantile_ms(&relay.on_origin, 0.5),
            quantile_ms(&relay.on_origin, 0.99),
            quantile_ms(&relay.on_others, 0.5),
            quantile_ms(&relay.on_others, 0.99)
        );
        println!(
            "  added by the relay (relayed agent less origin agent, per change): p50 {:.1} / p99 {:.1} ms",
            added_at(0.5),
            added_at(0.99)
        );
        println!(
            "  the nodes' relay-delay histogram (event written → applied on another node): n={count} p50 ≤ {p50} ms p99 ≤ {p99} ms"
        );
        let (count, p50, p99) = relay.during_push;
        println!(
            "  the same histogram during the changes heard by all {agents} agents: n={count} p50 ≤ {p50} ms p99 ≤ {p99} ms"
        );
    }
    let _ = std::fs::remove_dir_all(&base_dir);
}

fn bearer(request: &mut tonic::Request<impl Sized>, token: &str) {
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
}

#[tokio::main]
async fn main() {
    if std::env::args().nth(1).as_deref() == Some("push-floor-server") {
        PushFloorServer::serve().await;
        return;
    }
    if std::env::args().nth(1).as_deref() == Some("cluster") {
        let mut args = std::env::args().skip(2);
        let agents: usize = args.next().map_or(3000, |n| n.parse().unwrap());
        let changes: usize = args.next().map_or(10, |n| n.parse().unwrap());
        let seconds: u64 = args.next().map_or(10, |n| n.parse().unwrap());
        let database_url = std::env::var("DATABASE_URL").expect("cluster mode needs DATABASE_URL (PostgreSQL)");
        compare_layouts(agents, changes, seconds, &database_url).await;
        return;
    }
    let mut args = std::env::args().skip(1);
    let gateways_wanted: usize = args.next().map_or(1000, |n| n.parse().unwrap());
    let changes: usize = args.next().map_or(10, |n| n.parse().unwrap());
    let seconds: u64 = args.next().map_or(5, |n| n.parse().unwrap());
    let node_count: usize = args.next().map_or(1, |n| n.parse().unwrap());
    let database_url = std::env::var("DATABASE_URL").ok();
    assert!(node_count == 1 || database_url.is_some(), "several nodes need DATABASE_URL (PostgreSQL)");
    let backend = if database_url.is_some() { "PostgreSQL" } else { "SQLite" };
    let mut rows = Vec::new();

    // The floors first, on a quiet machine.
    println!("floors: a bare tonic round trip, and key generation and signing alone…");
    let echo_p99 = tonic_echo_p99().await;
    let crypto_per_second = crypto_floor(seconds.min(3)).await;
    println!("the push floor: a bare tonic server pushing to {gateways_wanted} streams…");
    let push_floor = push_floor_p99(gateways_wanted, changes).await;
    // Its streams' connections close before the fleet's open (a file each).
    tokio::time::sleep(Duration::from_secs(1)).await;

    let base_dir = std::env::temp_dir().join(format!("gatekey-fleet-bench-{}", std::process::id()));
    let mut nodes = Vec::new();
    let mut cold_start = Duration::ZERO;
    for node in 0..node_count {
        let (started, took) = start_node(&base_dir, node, database_url.as_deref()).await;
        if node == 0 {
            cold_start = took;
        }
        nodes.push(started);
    }
    println!("cold start of the first node ({backend}): {:.0} ms", cold_start.as_secs_f64() * 1000.0);
    rows.push(Row {
        figure: format!("core cold start to serving, empty store ({backend})"),
        target: "≤ 1 s",
        measured: format!("{:.0} ms", cold_start.as_secs_f64() * 1000.0),
        floor: "—".into(),
        met: cold_start <= Duration::from_secs(1),
    });

    let client = reqwest::Client::new();
    let base = format!("http://{}/api/v1", nodes[0].http);
    let api = Api::login(&client, &base, "admin", ADMIN_PASSWORD).await;
    let user = api.post("/admin/users", json!({"username": "alice", "email": "alice@example.com", "password": "alice-password-1", "groups": ["staff"]})).await;
    let alice_id = user["data"]["id"].as_str().unwrap().to_owned();
    let network = api.post("/admin/networks", json!({"name": "office", "cidrs": ["10.0.0.0/8"]})).await;
    let network_id = network["data"]["id"].as_str().unwrap().to_owned();

    let gateways = create_gateways(&api, gateways_wanted, &network_id).await;
    // Configs (and so certificates) for the agents that will ask for verdicts.
    let alice = Api::login(&client, &base, "alice", "alice-password-1").await;
    let mut serials = Vec::new();
    for (gateway_id, _) in gateways.iter().take(VERIFYING_AGENTS) {
        alice.post("/configs/generate", json!({"gateway_id": gateway_id})).await;
        let configs = alice.get("/configs?per_page=100").await;
        let config = configs["data"].as_array().unwrap().iter().find(|c| c["gateway_id"] == *gateway_id).unwrap();
        serials.push(config["serial"].as_str().unwrap().to_owned());
    }

    let memory = || nodes.iter().map(|node| resident_kib(node.pid)).sum::<u64>();
    let before_kib = memory();
    println!("connecting {gateways_wanted} agents to {node_count} node(s)…");
    let started = Instant::now();
    let mut fleet = connect_fleet(&nodes, &gateways, serials).await;
    println!("{gateways_wanted} agents connected in {:.2} s", started.elapsed().as_secs_f64());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let per_agent_kib = memory().saturating_sub(before_kib) as f64 / gateways_wanted as f64;
    rows.push(Row {
        figure: format!("core memory per connected agent, {gateways_wanted} agents"),
        target: "≤ 64 KiB at 10,000",
        measured: format!("{per_agent_kib:.1} KiB"),
        floor: "—".into(),
        met: per_agent_kib <= 64.0,
    });

    // Verdicts with heartbeats at the real interval, then under a tenfold flood.
    for (speedup, target, limit) in [(1, "≤ 2 ms", 2.0), (10, "≤ 20 ms", 20.0)] {
        let profile = PhaseProfile::start(nodes[0].pid, &format!("verify-heartbeats-x{speedup}"));
        let mut round_trips = fleet.verify_under_heartbeats(speedup, seconds).await;
        profile.finish();
        let label = match speedup {
            1 => format!("verify round trip, {gateways_wanted} agents heartbeating, {VERIFIES_PER_SECOND}/s"),
            _ => format!("verify round trip under a {speedup}× heartbeat flood, {VERIFIES_PER_SECOND}/s"),
        };
        summary(&label, &mut round_trips);
        let p99 = quantile_ms(&round_trips, 0.99);
        rows.push(Row {
            figure: format!("{label}, p99"),
            target,
            measured: format!("{p99:.2} ms (n={})", round_trips.len()),
            floor: format!("tonic round trip p99 {echo_p99:.2} ms"),
            met: p99 <= limit,
        });
    }
    // Rule change → every agent has the new snapshot and has acknowledged it.
    let others: Vec<String> = nodes.iter().skip(1).map(|node| node.http.clone()).collect();
    let relayed_before = relay_delay_buckets(&client, &others).await;
    let profile = PhaseProfile::start(nodes[0].pid, "rule-push");
    let (mut latencies, mut on_origin, mut on_others) = fleet
        .measure_pushes(changes, node_count, |change| {
            let (api, network_id, alice_id) = (&api, &network_id, &alice_id);
            async move {
                api.post("/admin/access-rules", json!({"name": format!("rule{change}"), "network_id": network_id, "user_ids": [alice_id],
                                                       "destination_type": "ip", "destination": format!("10.1.0.{}", change + 1)}))
                    .await;
            }
        })
        .await;
    profile.finish();
    summary(
        &format!("rule change → ack at {gateways_wanted} agents on {node_count} node(s) ({changes} changes)"),
        &mut latencies,
    );
    if node_count > 1 {
        summary("  of which agents on the node that made the change", &mut on_origin);
        summary("  of which agents on the other nodes (relayed)", &mut on_others);
        relay_delay_summary(&relayed_before, &relay_delay_buckets(&client, &others).await);
    }
    let push_p99 = quantile_ms(&latencies, 0.99);
    let (push_target, push_limit) =
        if gateways_wanted > 1000 { ("≤ 1 s at 10,000", 1000.0) } else { ("≤ 100 ms", 100.0) };
    drop(fleet);
    rows.push(Row {
        figure: format!("rule change → acknowledged by all {gateways_wanted} gateways, p99 ({node_count} node(s))"),
        target: push_target,
        measured: format!("{push_p99:.0} ms (p50 {:.0} ms)", quantile_ms(&latencies, 0.5)),
        floor: format!("bare tonic push to {gateways_wanted} streams p99 {push_floor:.0} ms"),
        met: push_p99 <= push_limit,
    });

    // One REST call beside the same gRPC call.
    let gateway_id = gateways[0].0.clone();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", nodes[0].grpc))
        .unwrap()
        .tcp_nodelay(true)
        .connect()
        .await
        .unwrap();
    let admin_grpc = AdminGatewayServiceClient::new(channel.clone());
    let grpc_median = sequential_median(2000, || {
        let (mut admin_grpc, token, id) = (admin_grpc.clone(), api.token.clone(), gateway_id.clone());
        async move {
            let mut request = tonic::Request::new(GetGatewayRequest { id });
            bearer(&mut request, &token);
            admin_grpc.get_gateway(request).await.unwrap();
        }
    })
    .await;
    let rest_median = sequential_median(2000, || {
        let request = client.get(format!("{base}/admin/gateways/{gateway_id}")).bearer_auth(&api.token);
        async move {
            let response = request.send().await.unwrap();
            assert!(response.status().is_success(), "{}", response.status());
            response.bytes().await.unwrap();
        }
    })
    .await;
    let ratio = rest_median.as_secs_f64() / grpc_median.as_secs_f64();
    rows.push(Row {
        figure: "REST GET of one gateway, p50 / the same gRPC call, p50".into(),
        target: "≤ 1.3",
        measured: format!("{ratio:.2}"),
        floor: format!("{:.3} ms / {:.3} ms", rest_median.as_secs_f64() * 1000.0, grpc_median.as_secs_f64() * 1000.0),
        met: ratio <= 1.3,
    });

    // A REST list of 20 gateways under 16 connections, beside the gRPC health check.
    let grpc_address = format!("http://{}", nodes[0].grpc);
    let health_per_second = throughput(
        seconds,
        || {
            let channel = tonic::transport::Endpoint::from_shared(grpc_address.clone()).unwrap().tcp_nodelay(true);
            HealthClient::new(channel.connect_lazy())
        },
        |mut health: HealthClient<Channel>| async move {
            health.check(HealthCheckRequest { service: String::new() }).await.unwrap();
            health
        },
    )
    .await;
    let list_url = format!("{base}/admin/gateways?per_page=20");
    let token = api.token.clone();
    let profile = PhaseProfile::start(nodes[0].pid, "rest-list");
    let list_per_second =
        rest_throughput(seconds, move |connection| connection.get(&list_url).bearer_auth(&token)).await;
    profile.finish();
    rows.push(Row {
        figure: format!("REST list of 20 gateways, requests/s, {CONNECTIONS} connections"),
        target: "≥ 5,000",
        measured: format!("{list_per_second:.0}/s"),
        floor: format!("gRPC health check {health_per_second:.0}/s"),
        met: list_per_second >= 5000.0,
    });

    // Configs through REST (limits off), as alice, from 16 connections.
    let generate_url = format!("{base}/configs/generate");
    let (token, gateway_id) = (alice.token.clone(), gateways[0].0.clone());
    let profile = PhaseProfile::start(nodes[0].pid, "configs");
    let configs_per_second = rest_throughput(seconds, move |connection| {
        let body = json!({"gateway_id": gateway_id, "protocol": "openvpn"});
        connection.post(&generate_url).bearer_auth(&token).json(&body)
    })
    .await;
    profile.finish();
    rows.push(Row {
        figure: "configs per second through REST, limits off".into(),
        target: "≥ 5,000",
        measured: format!("{configs_per_second:.0}/s"),
        floor: format!("key generation and signing alone {crypto_per_second:.0}/s"),
        met: configs_per_second >= 5000.0,
    });

    println!();
    println!("| figure | target | measured | floor (same run) | met |");
    println!("|---|---|---|---|---|");
    for row in &rows {
        let met = if row.met { "yes" } else { "no" };
        println!("| {} | {} | {} | {} | {met} |", row.figure, row.target, row.measured, row.floor);
    }
    for mut node in nodes {
        let _ = node.process.kill().await;
    }
    let _ = std::fs::remove_dir_all(&base_dir);
}
