//! Metrics in Prometheus format, request ids from the facade into the core's logs,
//! and JSON logs.

use crate::agents::{SimulatedAgent, fleet};
use crate::kit::{ADMIN_PASSWORD, Backend, Core, TempDir, fresh_database_url};
use gatekey::v1::agent_message::Body as AgentBody;
use gatekey::v1::{ClientConnected, RulesApplied};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn metrics(url: String) -> String {
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    response.text().await.unwrap()
}

fn value(text: &str, series: &str) -> f64 {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok()).unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_requests_gateways_sessions_pushes_and_configs() {
    let core = Core::start(Backend::Sqlite).await;
    let fleet = fleet(&core, 1, 1).await;
    core.call(
        Method::POST,
        "/auth/local/login",
        None,
        Some(json!({"username": "admin", "password": "nope-nope-nope"})),
    )
    .await;
    let (gateway_id, token) = fleet.gateways[0].clone();
    core.post("/configs/generate", &fleet.alice, json!({"gateway_id": gateway_id})).await.expect(StatusCode::CREATED);
    let (mut agent, _) = SimulatedAgent::connect(&core, &token, vec![]).await;
    let serial = core.get("/configs", &fleet.alice).await.body["data"][0]["serial"].as_str().unwrap().to_owned();
    let report = ClientConnected {
        session_key: "s".into(),
        common_name: "alice@example.com".into(),
        serial,
        vpn_address: "10.8.0.2".into(),
        ..Default::default()
    };
    agent.send(AgentBody::ClientConnected(report)).await;
    core.post(
        "/admin/access-rules",
        &fleet.admin,
        json!({"name": "r", "network_id": fleet.network_id, "groups": ["staff"], "destination": "10.90.0.1"}),
    )
    .await
    .expect(StatusCode::CREATED);
    let snapshot = agent.next_snapshot().await;
    agent.send(AgentBody::RulesApplied(RulesApplied { version: snapshot.version })).await;
    agent.drain().await;

    let text = metrics(format!("{}/metrics", core.http_base)).await;
    // Every series carries the node's id.
    let node = format!("node=\"{}\"", core.node_id);
    let login = format!("gatekey_grpc_requests_total{{{node},method=\"/gatekey.v1.AuthService/LocalLogin\"");
    assert!(value(&text, &format!("{login},code=\"0\"}}")) >= 1.0, "{text}");
    assert_eq!(value(&text, &format!("{login},code=\"16\"}}")), 1.0, "{text}");
    let durations =
        format!("gatekey_grpc_request_duration_seconds_count{{{node},method=\"/gatekey.v1.AuthService/LocalLogin\"}}");
    assert!(value(&text, &durations) >= 2.0, "{text}");
    let gauge = |name: &str| value(&text, &format!("{name}{{{node}}}"));
    assert_eq!(gauge("gatekey_connected_gateways"), 1.0);
    assert_eq!(gauge("gatekey_live_vpn_sessions"), 1.0);
    assert_eq!(gauge("gatekey_configs_issued_total"), 1.0);
    assert_eq!(gauge("gatekey_rule_push_seconds_count"), 1.0, "{text}");
}

#[tokio::test]
async fn a_request_id_follows_a_request_into_the_core_and_logs_can_be_json() {
    let data = TempDir::new("core");
    let url = fresh_database_url(Backend::Sqlite, data.path()).await;
    let mut command = Core::command(data.path(), &url, &["--log-json"]);
    command.env("RUST_LOG", "info");
    let core = Core::launch_command(command, data, url).await;
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/local/login", core.http_base))
        .header("x-request-id", "trace-me-42")
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
    let generated = reqwest::get(format!("{}/api/v1/gateways", core.http_base)).await.unwrap();
    assert!(!generated.headers()["x-request-id"].is_empty(), "an id is made when the client sends none");

    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let log = core.log();
    let lines: Vec<serde_json::Value> =
        log.lines().map(|line| serde_json::from_str(line).expect("a JSON log line")).collect();
    let login = lines
        .iter()
        .find(|line| line["fields"]["message"] == "login")
        .unwrap_or_else(|| panic!("no login event in:\n{log}"));
    let spans = login["spans"].as_array().unwrap();
    assert!(
        spans.iter().any(|span| span["name"] == "grpc" && span["request_id"] == "trace-me-42"),
        "the core's span lacks the request id: {login}"
    );
}
