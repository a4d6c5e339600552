//! Several core nodes on one PostgreSQL database: a change made through any node
//! reaches the agents whose streams live on the others (rules, kills, CRLs, ended
//! streams), also after a node's listening connection is killed inside PostgreSQL;
//! the sign-in limit holds across nodes; an agent whose node is killed moves to
//! another and resyncs; reports sent again to another node are stored once; an admin
//! watching one node sees what happens on the others.
//! Simulated agents (real gRPC clients) and the real agent on real core processes.

use crate::activity::with_bearer;
use crate::agents::{SimulatedAgent, add_rule, alice_serial, fleet};
use crate::gateway_e2e::text;
use crate::kit::{Backend, Core, TempDir, backends, binary};
use crate::netns::{Graceful, Lab, available, wait_for_text};
use gatekey::v1::admin_activity_service_client::AdminActivityServiceClient;
use gatekey::v1::agent_message::Body as AgentBody;
use gatekey::v1::core_message::Body as CoreBody;
use gatekey::v1::{ClientConnected, CoreMessage, WatchEventsRequest, event};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// `N` core nodes on one fresh PostgreSQL database, each started with `flags`; none when
/// the test setup has no PostgreSQL (reported by `backends`).
async fn cluster_of<const N: usize>(flags: &[&str]) -> Option<[Core; N]> {
    if !backends().contains(&Backend::Postgres) {
        return None;
    }
    let first = Core::start_with(Backend::Postgres, flags).await;
    let mut nodes = Vec::with_capacity(N);
    for _ in 1..N {
        nodes.push(first.join(flags).await);
    }
    nodes.insert(0, first);
    nodes.try_into().ok()
}

/// Reads until a message `wanted` picks arrives (within 10 s).
async fn until<T>(agent: &mut SimulatedAgent, mut wanted: impl FnMut(&CoreMessage) -> Option<T>) -> T {
    loop {
        if let Some(found) = wanted(&agent.next().await) {
            return found;
        }
    }
}

/// Terminates the relay's listening connection of node `node_id` inside PostgreSQL;
/// answers how many backends were terminated.
async fn terminate_listener(database_url: &str, node_id: &str) -> i64 {
    use sqlx::Row;
    let pool = sqlx::AnyPool::connect(database_url).await.unwrap();
    let row = sqlx::query(
        "SELECT COUNT(pg_terminate_backend(pid)) AS terminated FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(format!("gatekey-relay {node_id}"))
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    row.try_get("terminated").unwrap()
}

#[tokio::test]
async fn changes_through_one_node_reach_agents_on_the_others() {
    let Some([a, b, c]) = cluster_of::<3>(&[]).await else {
        return;
    };
    let cluster = fleet(&a, 3, 3).await;
    let mut agents = Vec::new();
    let mut versions = Vec::new();
    for ((_, token), node) in cluster.gateways.iter().zip([&a, &b, &c]) {
        let (agent, snapshot) = SimulatedAgent::connect(node, token, vec![]).await;
        agents.push(agent);
        versions.push(snapshot.version);
    }

    // Every node is listed, by any node, with the streams it holds; each gateway names
    // the node holding its stream.
    let nodes = [&a, &b, &c];
    let mut listed = Value::Null;
    for _ in 0..100 {
        listed = b.get("/admin/nodes", &cluster.admin).await.expect(StatusCode::OK).body["data"].clone();
        let held = |node: &Core| {
            listed.as_array().unwrap().iter().any(|n| n["id"] == node.node_id.as_str() && n["gateways_held"] == 1)
        };
        if nodes.iter().all(|node| held(node)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows = listed.as_array().unwrap();
    assert_eq!(rows.len(), 3, "{listed}");
    for node in nodes {
        let row = rows.iter().find(|row| row["id"] == node.node_id.as_str()).expect("every node listed");
        assert_eq!(row["grpc_address"], node.grpc_address.as_str());
        assert_eq!(row["gateways_held"], 1, "{listed}");
        assert_eq!(row["answering"], node.node_id == b.node_id);
    }
    for ((gateway_id, _), node) in cluster.gateways.iter().zip(nodes) {
        let gateway = a.get(&format!("/admin/gateways/{gateway_id}"), &cluster.admin).await.expect(StatusCode::OK);
        assert_eq!(gateway.body["data"]["stream_node"], node.node_id.as_str(), "{}", gateway.body);
    }
    let (_, alice) = a.create_user(&cluster.admin, "mallory", &[]).await;
    a.get("/admin/nodes", &alice).await.expect_error(StatusCode::FORBIDDEN, "forbidden");

    // A rule made through A: the agents on A, B and C each get a snapshot with it.
    let started = Instant::now();
    add_rule(&a, &cluster, "web", "10.90.0.10").await;
    for ((agent, version), node) in agents.iter_mut().zip(&mut versions).zip(["A", "B", "C"]) {
        let snapshot = agent.next_snapshot().await;
        assert!(snapshot.version > *version, "the agent on {node} got no newer rules: {snapshot:?}");
        *version = snapshot.version;
        println!("rule made on A, snapshot at the agent on {node} after {} ms", started.elapsed().as_millis());
    }

    // alice is connected through the gateway whose stream lives on C; her certificate
    // is revoked through B: the agent on C is told to kill her session, every agent
    // gets the new CRL.
    let (gateway_c, token_c) = cluster.gateways[2].clone();
    let serial = alice_serial(&a, &cluster, &gateway_c).await;
    let session = ClientConnected {
        session_key: "alice-1".into(),
        common_name: "alice@example.com".into(),
        serial: serial.clone(),
        vpn_address: "10.8.0.2".into(),
        client_address: "192.0.2.7".into(),
        connected_at: None,
    };
    let id = agents[2].send(AgentBody::ClientConnected(session)).await;
    until(&mut agents[2], |message| {
        (message.request_id == id && matches!(message.body, Some(CoreBody::ReportAck(_)))).then_some(())
    })
    .await;
    b.post("/admin/pki/revoke", &cluster.admin, json!({"serial": serial})).await.expect(StatusCode::OK);
    let kill = until(&mut agents[2], |message| match &message.body {
        Some(CoreBody::KillSession(kill)) => Some(kill.clone()),
        _ => None,
    })
    .await;
    assert_eq!((kill.serial.as_str(), kill.common_name.as_str()), (serial.as_str(), "alice@example.com"));
    assert!(kill.reason.contains("revoked"), "{kill:?}");
    for agent in &mut agents {
        let crl = until(agent, |message| match &message.body {
            Some(CoreBody::CrlUpdate(crl)) => Some(crl.clone()),
            _ => None,
        })
        .await;
        assert!(crl.pem.contains("X509 CRL"));
    }

    // C's listening connection is killed inside PostgreSQL; a change right after it
    // still reaches C's agent, by the relay listening again and catching up (its
    // safety poll is 30 s away, beyond the 10 s this waits).
    assert_eq!(terminate_listener(a.storage().1, &c.node_id).await, 1, "no listener of C to terminate");
    add_rule(&a, &cluster, "ssh", "10.90.0.22").await;
    let snapshot = agents[2].next_snapshot().await;
    assert!(snapshot.version > versions[2], "{snapshot:?}");
    // And the relay listens again: the next change is announced, not only caught up.
    let mut listening = false;
    for _ in 0..50 {
        if terminate_listener(a.storage().1, &c.node_id).await == 1 {
            listening = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(listening, "the relay of C did not listen again");

    // The token of the gateway on C is rotated through A: C ends its stream.
    a.post(&format!("/admin/gateways/{gateway_c}/rotate-token"), &cluster.admin, json!({}))
        .await
        .expect(StatusCode::OK);
    let (_, ended) = agents[2].ending().await.expect("the stream on C stayed open");
    let status = ended.expect("the stream ended without a status");
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    assert!(SimulatedAgent::open(&c, &token_c, AgentBody::Hello(Default::default())).await.is_err());
}

#[tokio::test]
async fn the_sign_in_limit_holds_across_nodes() {
    let limit = ["--auth-rate-limit-per-minute", "6"];
    let Some([a, b, c]) = cluster_of::<3>(&limit).await else {
        return;
    };
    async fn guess(node: &Core) -> crate::kit::Reply {
        let body = json!({"username": "admin", "password": "a-wrong-guess-123"});
        node.call(reqwest::Method::POST, "/auth/local/login", None, Some(body)).await
    }
    // Six guesses spread over three nodes use up the one allowance of six...
    for node in [&a, &b, &c, &a, &b, &c] {
        guess(node).await.expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    // ...so each node refuses the next, though it saw only two.
    let mut retry_after = 0;
    for node in [&a, &b, &c] {
        let refused = guess(node).await;
        retry_after = refused.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry_after), "{retry_after}");
        refused.expect_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    }
    // The Retry-After is honest: after it, one more guess is allowed (on any node).
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    guess(&c).await.expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    guess(&a).await.expect_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
}

#[tokio::test]
async fn an_agent_moves_to_another_node_when_its_node_is_killed() {
    if !backends().contains(&Backend::Postgres) || !available(&["ip"]) {
        return;
    }
    // The agent runs in a namespace of its own (it turns IP forwarding on there), and
    // reaches the two nodes over a veth.
    let mut lab = Lab::create("failover", &["gateway"]);
    lab.link(None, "10.68.1.1/24", "gateway", "10.68.1.2/24");
    let listen = ["--grpc-listen", "10.68.1.1:0"];
    let a = Core::start_with(Backend::Postgres, &listen).await;
    let b = a.join(&listen).await;
    let cluster = fleet(&a, 1, 1).await;
    let token = &cluster.gateways[0].1;
    let dir = TempDir::new("failover-agent");
    let log = dir.path().join("agent.log");
    let command = format!(
        "RUST_LOG=info exec {} run --core http://{},http://{} --token {token} --no-firewall --state-dir {} > {} 2>&1",
        binary("gatekey-agent").display(),
        a.grpc_address,
        b.grpc_address,
        dir.path().display(),
        log.display()
    );
    let _agent = Graceful(lab.spawn("gateway", "sh", &["-c", &command]));
    assert!(wait_for_text(&log, "connected to the core", Duration::from_secs(20)).await, "{}", text(&log));
    let first = text(&log);
    let (victim, survivor) = if first.contains(&format!("core=http://{}", a.grpc_address)) { (a, b) } else { (b, a) };
    let survivor_url = format!("core=http://{}", survivor.grpc_address);

    // Its node is killed: the agent moves to the other one.
    victim.kill().await;
    let moved = Instant::now();
    let mut reconnected = false;
    while moved.elapsed() < Duration::from_secs(15) {
        if text(&log)
            .lines()
            .filter(|line| line.contains("connected to the core"))
            .any(|line| line.contains(&survivor_url))
        {
            reconnected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reconnected, "the agent did not move to the surviving node: {}", text(&log));
    println!("node killed → agent on the other node after {} ms", moved.elapsed().as_millis());

    // There it takes its rules: a change made through the survivor is applied.
    let applied = text(&log).matches("applied rules").count();
    add_rule(&survivor, &cluster, "after-failover", "10.90.0.30").await;
    let mut applied_again = false;
    for _ in 0..100 {
        if text(&log).matches("applied rules").count() > applied {
            applied_again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(applied_again, "the rule change did not reach the agent: {}", text(&log));
}

#[tokio::test]
async fn session_reports_resent_to_another_node_are_stored_once() {
    let Some([a, b]) = cluster_of::<2>(&[]).await else {
        return;
    };
    let cluster = fleet(&a, 1, 1).await;
    let token = &cluster.gateways[0].1;
    let report = |i: usize| ClientConnected {
        session_key: format!("failover-{i:02}-session"),
        common_name: "alice@example.com".into(),
        serial: "00ff".into(),
        vpn_address: format!("10.8.0.{}", i + 2),
        client_address: "192.0.2.7".into(),
        connected_at: None,
    };
    // Twenty reports stored through B, whose acknowledgements the agent never read...
    let (mut agent, _) = SimulatedAgent::connect(&b, token, vec![]).await;
    let mut pending = std::collections::HashSet::new();
    for i in 0..20 {
        pending.insert(agent.send(AgentBody::ClientConnected(report(i))).await);
    }
    while !pending.is_empty() {
        let message = agent.next().await;
        if matches!(message.body, Some(CoreBody::ReportAck(_))) {
            pending.remove(&message.request_id);
        }
    }
    drop(agent);
    b.kill().await;
    // ...so it sends them again to A, after B died.
    let (mut agent, _) = SimulatedAgent::connect(&a, token, vec![]).await;
    for i in 0..20 {
        pending.insert(agent.send(AgentBody::ClientConnected(report(i))).await);
    }
    while !pending.is_empty() {
        let message = agent.next().await;
        if matches!(message.body, Some(CoreBody::ReportAck(_))) {
            pending.remove(&message.request_id);
        }
    }
    let dump = a.dump_database().await;
    for i in 0..20 {
        assert_eq!(dump.matches(&format!("failover-{i:02}-session")).count(), 1, "report {i} is not stored once");
    }
}

#[tokio::test]
async fn a_standalone_facade_balances_over_the_nodes_and_leaves_a_dead_one_out() {
    let flags = ["--no-http", "--no-rate-limits"];
    let Some([a, b]) = cluster_of::<2>(&flags).await else {
        return;
    };
    let mut facade = tokio::process::Command::new(binary("gatekey-rest"))
        .args(["--core", &format!("http://{},http://{}", a.grpc_address, b.grpc_address)])
        .args(["--listen", "127.0.0.1:0", "--plain-http-cookies"])
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let ready = crate::kit::ready_line(&mut facade, "gatekey-rest ready").await;
    let http = ready.split_whitespace().find_map(|p| p.strip_prefix("http=")).unwrap().to_owned();
    let client = reqwest::Client::new();
    let login = client
        .post(format!("http://{http}/api/v1/auth/local/login"))
        .json(&json!({"username": "admin", "password": crate::kit::ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let token = login.json::<Value>().await.unwrap()["data"]["session_token"].as_str().unwrap().to_owned();
    let answering = || async {
        let reply = client.get(format!("http://{http}/api/v1/admin/nodes")).bearer_auth(&token).send().await.unwrap();
        if reply.status() != 200 {
            return None;
        }
        let body: Value = reply.json().await.unwrap();
        body["data"].as_array().unwrap().iter().find(|node| node["answering"] == true).map(|node| node["id"].clone())
    };
    // Both nodes answer requests made through it.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..40 {
        seen.insert(answering().await.expect("a request failed").to_string());
    }
    assert_eq!(seen.len(), 2, "one node did all the work: {seen:?}");

    // A is killed: after a moment every request goes to B.
    a.kill().await;
    let killed = Instant::now();
    let mut in_a_row = 0;
    while in_a_row < 20 {
        assert!(killed.elapsed() < Duration::from_secs(10), "requests kept failing after the node died");
        match answering().await {
            Some(id) => {
                assert_eq!(id, b.node_id.as_str());
                in_a_row += 1;
            }
            None => {
                in_a_row = 0;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    println!("node killed → 20 requests in a row through the facade after {} ms", killed.elapsed().as_millis());
}

#[tokio::test]
async fn conflicting_admin_writes_on_two_nodes_leave_each_request_whole_or_absent() {
    let Some([a, b]) = cluster_of::<2>(&["--no-rate-limits"]).await else {
        return;
    };
    let admin = a.admin_token().await;
    let nodes = [&a, &b];

    // Ten creations of one name, alternating nodes, at once: exactly one gateway.
    let creations = (0..10).map(|i| {
        nodes[i % 2].post(
            "/admin/gateways",
            &admin,
            json!({"name": "edge", "hostname": format!("edge{i}.example.com")}),
        )
    });
    let statuses: Vec<StatusCode> = futures::future::join_all(creations).await.into_iter().map(|r| r.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CREATED).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT), "{statuses:?}");
    let listed = a.get("/admin/gateways?per_page=100", &admin).await.expect(StatusCode::OK);
    assert_eq!(listed.body["data"].as_array().unwrap().iter().filter(|g| g["name"] == "edge").count(), 1);

    // Replacing a network's CIDR list and a user's groups from both nodes at once: the
    // result is one request's list exactly, never a mix of two.
    let network = a.post("/admin/networks", &admin, json!({"name": "lan", "cidrs": ["10.70.0.0/24"]})).await;
    let network_id = network.body["data"]["id"].as_str().unwrap().to_owned();
    let (user_id, _) = a.create_user(&admin, "carol", &["start"]).await;
    let lists: Vec<Vec<String>> =
        (0..8).map(|i| (0..4).map(|j| format!("10.{}.{}.0/24", 71 + i, j)).collect()).collect();
    let groups: Vec<Vec<String>> = (0..8).map(|i| (0..4).map(|j| format!("team{i}-{j}")).collect()).collect();
    let writes = (0..8).map(|i| {
        let node = nodes[i % 2];
        let (network_path, user_path) = (format!("/admin/networks/{network_id}"), format!("/admin/users/{user_id}"));
        let (cidrs, teams, admin) = (lists[i].clone(), groups[i].clone(), admin.clone());
        async move {
            let (network, user) = tokio::join!(
                node.put(&network_path, &admin, json!({"cidrs": cidrs})),
                node.put(&user_path, &admin, json!({"groups": teams}))
            );
            (network.status, user.status)
        }
    });
    for (network, user) in futures::future::join_all(writes).await {
        assert_eq!((network, user), (StatusCode::OK, StatusCode::OK));
    }
    let network = b.get(&format!("/admin/networks/{network_id}"), &admin).await.expect(StatusCode::OK);
    let cidrs: Vec<String> = serde_json::from_value(network.body["data"]["cidrs"].clone()).unwrap();
    let mut sorted_lists = lists.clone();
    sorted_lists.iter_mut().for_each(|list| list.sort());
    let mut cidrs_sorted = cidrs.clone();
    cidrs_sorted.sort();
    assert!(sorted_lists.contains(&cidrs_sorted), "the CIDRs are a mix of requests: {cidrs:?}");
    let user = b.get(&format!("/admin/users/{user_id}"), &admin).await.expect(StatusCode::OK);
    let mut teams: Vec<String> = serde_json::from_value(user.body["data"]["groups"].clone()).unwrap();
    teams.sort();
    assert!(groups.contains(&teams), "the groups are a mix of requests: {teams:?}");
}

/// An admin watching the events of node A sees what happens on node B: an agent
/// attaching there, a config issued there, a session reported there.
#[tokio::test]
async fn admins_watching_one_node_see_what_happens_on_the_others() {
    let Some([a, b]) = cluster_of::<2>(&[]).await else {
        return;
    };
    let cluster = fleet(&a, 1, 1).await;
    let (gateway_id, token) = cluster.gateways[0].clone();
    let mut activity = AdminActivityServiceClient::new(a.channel().await);
    let mut events =
        activity.watch_events(with_bearer(WatchEventsRequest {}, &cluster.admin)).await.unwrap().into_inner();
    let (mut agent, _) = SimulatedAgent::connect(&b, &token, vec![]).await;
    let serial = alice_serial(&b, &cluster, &gateway_id).await;
    let session = ClientConnected {
        session_key: "alice-1".into(),
        common_name: "alice@example.com".into(),
        serial,
        vpn_address: "10.8.0.2".into(),
        client_address: "192.0.2.7".into(),
        connected_at: None,
    };
    agent.send(AgentBody::ClientConnected(session)).await;
    let mut seen = (false, false, false);
    while seen != (true, true, true) {
        let next = tokio::time::timeout(Duration::from_secs(10), events.message()).await;
        let event = next.expect("no event from the other node within 10 s").unwrap().expect("the watch ended");
        match event.kind {
            Some(event::Kind::Gateway(presence)) if presence.gateway_id == gateway_id && presence.connected => {
                seen.0 = true
            }
            Some(event::Kind::Config(config)) if config.gateway_id == gateway_id => seen.1 = true,
            Some(event::Kind::Session(change)) if change.gateway_id == gateway_id && change.open => seen.2 = true,
            _ => {}
        }
    }
}

/// A node that cannot open its listening connection (PostgreSQL refuses its role any
/// new connection) reads the outbox every second instead: a change made through the
/// other node still reaches the agent on it, and once it may connect again it listens.
#[tokio::test]
async fn a_node_that_cannot_listen_polls_the_outbox() {
    let Some([a]) = cluster_of::<1>(&[]).await else {
        return;
    };
    let admin_url = a.storage().1.to_owned();
    let pool = sqlx::AnyPool::connect(&admin_url).await.unwrap();
    let run = |statement: String| {
        let pool = pool.clone();
        async move { sqlx::raw_sql(sqlx::AssertSqlSafe(statement)).execute(&pool).await }
    };
    // Node B signs in as a role of its own, whose connections the test can cap.
    let role = format!("gatekey_capped_{}", std::process::id());
    run(format!(
        "CREATE ROLE {role} LOGIN; GRANT ALL ON SCHEMA public TO {role}; \
         GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}; GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}"
    ))
    .await
    .unwrap();
    let b_url = admin_url.replacen("postgres@", &format!("{role}@"), 1);
    assert_ne!(b_url, admin_url, "the test database URL names the postgres user");
    let key = a.storage().0.join("secret.key");
    let dir = TempDir::new("core");
    let command = Core::command(dir.path(), &b_url, &["--secret-key-file", key.to_str().unwrap()]);
    let b = Core::launch_command(command, dir, b_url.clone()).await;
    let cluster = fleet(&a, 1, 1).await;
    let (mut agent, first) = SimulatedAgent::connect(&b, &cluster.gateways[0].1, vec![]).await;

    // B may keep the connections it has and open none: its listener is cut.
    let count = |role: String| {
        let pool = pool.clone();
        async move {
            let query = "SELECT COUNT(*) FROM pg_stat_activity WHERE usename = $1";
            sqlx::query_scalar::<_, i64>(query).bind(role).fetch_one(&pool).await.unwrap()
        }
    };
    let held = count(role.clone()).await;
    run(format!("ALTER ROLE {role} CONNECTION LIMIT {}", held - 1)).await.unwrap();
    assert_eq!(terminate_listener(&admin_url, &b.node_id).await, 1, "no listener of B to terminate");

    add_rule(&a, &cluster, "web", "10.90.0.10").await;
    // B's pool is capped too: a statement that needs a new connection waits for sqlx's
    // retries (up to 30 s) on a busy machine.
    let snapshot = agent.next_snapshot_within(Duration::from_secs(45)).await;
    assert!(snapshot.version > first.version, "{snapshot:?}");
    let log = std::fs::read_to_string(b.storage().0.join("core.log")).unwrap();
    assert!(log.contains("cannot listen for the fleet's events; polling"), "B never polled: {log}");

    // Allowed to connect again, B listens again.
    run(format!("ALTER ROLE {role} CONNECTION LIMIT -1")).await.unwrap();
    let mut listening = false;
    for _ in 0..50 {
        if terminate_listener(&admin_url, &b.node_id).await == 1 {
            listening = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(listening, "the relay of B did not listen again");
    drop(agent);
    b.kill().await;
    let _ = run(format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'")).await;
    let _ = run(format!("DROP OWNED BY {role}; DROP ROLE {role}")).await;
}
