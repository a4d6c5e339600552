//! Several core nodes on one PostgreSQL database: a change made through any node
//! reaches the agents whose streams live on the others (rules, kills, CRLs, ended
//! streams), also after a node's listening connection is killed inside PostgreSQL.
//! Simulated agents (real gRPC clients) on real core processes.

use crate::agents::{SimulatedAgent, add_rule, alice_serial, fleet};
use crate::kit::{Backend, Core, backends};
use gatekey::v1::agent_message::Body as AgentBody;
use gatekey::v1::core_message::Body as CoreBody;
use gatekey::v1::{ClientConnected, CoreMessage};
use reqwest::StatusCode;
use serde_json::json;
use std::time::{Duration, Instant};

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
    if !backends().contains(&Backend::Postgres) {
        return;
    }
    let a = Core::start(Backend::Postgres).await;
    let b = a.join(&[]).await;
    let c = a.join(&[]).await;
    let cluster = fleet(&a, 3, 3).await;
    let mut agents = Vec::new();
    let mut versions = Vec::new();
    for ((_, token), node) in cluster.gateways.iter().zip([&a, &b, &c]) {
        let (agent, snapshot) = SimulatedAgent::connect(node, token, vec![]).await;
        agents.push(agent);
        versions.push(snapshot.version);
    }

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
    if !backends().contains(&Backend::Postgres) {
        return;
    }
    let limit = ["--auth-rate-limit-per-minute", "6"];
    let a = Core::start_with(Backend::Postgres, &limit).await;
    let b = a.join(&limit).await;
    let c = a.join(&limit).await;
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
